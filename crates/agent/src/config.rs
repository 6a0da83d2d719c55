//! Agent settings.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use xenstore::DomId;
use xentypes::Bdf;

/// When to run a legacy hotplug script instead of native hotplug.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LegacyMode {
    /// Always run the backend's `script` (or the default vif-bridge).
    Always,
    /// Never: native hotplug for every vif.
    Never,
    /// Only when `script` names an existing script other than the default
    /// `vif-bridge` (which native hotplug replaces).
    #[default]
    NonDefault,
}

impl FromStr for LegacyMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "always" => Ok(LegacyMode::Always),
            "never" => Ok(LegacyMode::Never),
            "non-default" => Ok(LegacyMode::NonDefault),
            _ => Err(format!(
                "invalid legacy mode {s:?}: expected always, never or non-default"
            )),
        }
    }
}

impl fmt::Display for LegacyMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LegacyMode::Always => "always",
            LegacyMode::Never => "never",
            LegacyMode::NonDefault => "non-default",
        })
    }
}

/// Everything the agent needs to run.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AgentConfig {
    /// Our domain id; `None`: read the relative node `domid`.
    pub domid: Option<DomId>,
    /// Xenstore socket; `None`: the client's default lookup.
    pub xenstore: Option<PathBuf>,
    /// Bridge for vifs whose backend has no `bridge` key, and the bridge
    /// brought up with `uplink`.
    pub bridge: String,
    /// NIC to enslave to `bridge` at start (network-bridge's job).
    pub uplink: Option<String>,
    /// Interface names of passed-through NICs, by PCI address (`--nic
    /// BDF=IFNAME`), for uplinks dom0 names by BDF; a NIC not listed is
    /// looked up in sysfs.
    pub nics: Vec<(Bdf, String)>,
    /// Where sysfs is (`/sys`): `bus/pci/devices/<bdf>/net/<ifname>`.
    pub sysfs_root: PathBuf,
    /// Watch and follow dom0's bridge settings
    /// (`/local/domain/<self>/drvdom/config`) and publish the agent's state
    /// and bridges under `/local/domain/<self>/data/drvdom`.
    pub manage_bridges: bool,
    /// Legacy script policy.
    pub legacy: LegacyMode,
    /// Wait for the backend to reach InitWait (`LIBXL_INIT_TIMEOUT`).
    pub init_timeout: Duration,
    /// Limit for one legacy script run (`LIBXL_HOTPLUG_TIMEOUT`).
    pub hotplug_timeout: Duration,
    /// Wait for netback's interface to appear.
    pub link_timeout: Duration,
    /// On shutdown, how long to let in-flight device work finish.
    pub shutdown_grace: Duration,
    /// How often the vif filters' drop counters are read and, where they
    /// changed, republished in the port records (link changes publish at
    /// once regardless).
    pub counters_interval: Duration,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            domid: None,
            xenstore: None,
            bridge: xenbus::DEFAULT_BRIDGE.to_string(),
            uplink: None,
            nics: Vec::new(),
            sysfs_root: PathBuf::from("/sys"),
            manage_bridges: true,
            legacy: LegacyMode::NonDefault,
            init_timeout: xenbus::vif::INIT_TIMEOUT,
            hotplug_timeout: xenbus::vif::HOTPLUG_TIMEOUT,
            link_timeout: hotplug::DEFAULT_LINK_TIMEOUT,
            shutdown_grace: Duration::from_secs(5),
            counters_interval: Duration::from_secs(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_mode_round_trips_and_rejects_junk() {
        for m in [
            LegacyMode::Always,
            LegacyMode::Never,
            LegacyMode::NonDefault,
        ] {
            assert_eq!(m.to_string().parse::<LegacyMode>(), Ok(m));
        }
        assert_eq!(LegacyMode::default(), LegacyMode::NonDefault);
        assert!("sometimes".parse::<LegacyMode>().is_err());
    }

    #[test]
    fn defaults_follow_libxl() {
        let c = AgentConfig::default();
        assert_eq!(c.bridge, "xenbr0");
        assert_eq!(c.init_timeout, Duration::from_secs(10));
        assert_eq!(c.hotplug_timeout, Duration::from_secs(40));
    }
}
