//! The bridges this driver domain should have, and making it so.
//!
//! Desired bridges come from dom0's settings
//! (`/local/domain/<self>/drvdom/config/bridges`, see `xenbus::agent`) and
//! from the command line (`--bridge` with `--uplink`, for hosts without a
//! host file); a setting from dom0 wins over the command line for the same
//! bridge. Converging is idempotent (`hotplug::bridge_up` changes only
//! what differs), so it runs at start, on every settings change and, while
//! something is not built yet, on link changes (a NIC may show up late).
//!
//! Uplinks named by PCI address are found through `--nic BDF=IFNAME`
//! mappings, else in sysfs (`bus/pci/devices/<bdf>/net/<ifname>`, Linux
//! `Documentation/ABI/testing/sysfs-bus-pci`).

use std::collections::HashMap;
use std::path::Path;

use hotplug::{BridgeConfig, Hotplug, LinkChange, LinkOps, Master};
use tracing::{info, warn};
use xenbus::agent::{BridgeSetting, UplinkSetting};
use xentypes::Bdf;

use crate::config::AgentConfig;
use crate::error::chain;

/// Find the interface of NIC `bdf`: the `--nic` mappings, else sysfs.
pub(crate) fn nic_ifname(cfg: &AgentConfig, bdf: Bdf) -> Result<String, String> {
    if let Some((_, n)) = cfg.nics.iter().find(|(b, _)| *b == bdf) {
        return Ok(n.clone());
    }
    let dir = sysfs_net_dir(&cfg.sysfs_root, bdf);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map_err(|e| {
            format!(
                "no interface for NIC {bdf}: not in --nic mappings and {} unreadable ({e})",
                dir.display()
            )
        })?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names.into_iter().next().ok_or_else(|| {
        format!(
            "NIC {bdf} has no network interface ({} is empty)",
            dir.display()
        )
    })
}

fn sysfs_net_dir(root: &Path, bdf: Bdf) -> std::path::PathBuf {
    root.join("bus/pci/devices")
        .join(bdf.to_string())
        .join("net")
}

/// The bridges wanted: the command line's, overridden and extended by
/// dom0's settings.
pub(crate) fn desired(cfg: &AgentConfig, settings: &[BridgeSetting]) -> Vec<BridgeSetting> {
    let mut out: Vec<BridgeSetting> = Vec::new();
    if let Some(up) = &cfg.uplink {
        out.push(BridgeSetting {
            name: cfg.bridge.clone(),
            uplink: Some(UplinkSetting::Iface(up.clone())),
            mtu: None,
        });
    }
    for s in settings {
        out.retain(|b| b.name != s.name);
        out.push(s.clone());
    }
    out
}

/// What was built for a bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Built {
    uplink: Option<String>,
}

/// The bridges this agent built, and their uplinks.
#[derive(Debug, Default)]
pub(crate) struct Bridges {
    built: HashMap<String, Built>,
}

impl Bridges {
    /// Uplink interface of each bridge built (for publishing).
    pub(crate) fn uplinks(&self) -> HashMap<String, String> {
        self.built
            .iter()
            .filter_map(|(b, x)| x.uplink.clone().map(|u| (b.clone(), u)))
            .collect()
    }

    /// Build or adjust every desired bridge; remove the ones built earlier
    /// that are no longer wanted and have no port but their uplink.
    /// Returns one line per problem (empty: all built).
    pub(crate) async fn converge(
        &mut self,
        hp: &Hotplug,
        cfg: &AgentConfig,
        want: &[BridgeSetting],
    ) -> Vec<String> {
        let mut problems = Vec::new();
        for b in want {
            if let Err(e) = self.build(hp, cfg, b).await {
                problems.push(format!("bridge {}: {e}", b.name));
            }
        }
        let gone: Vec<String> = self
            .built
            .keys()
            .filter(|n| !want.iter().any(|b| &b.name == *n))
            .cloned()
            .collect();
        for name in gone {
            match self.remove(hp, &name).await {
                Ok(()) => {
                    self.built.remove(&name);
                }
                Err(e) => problems.push(format!("bridge {name}: {e}")),
            }
        }
        problems
    }

    async fn build(
        &mut self,
        hp: &Hotplug,
        cfg: &AgentConfig,
        b: &BridgeSetting,
    ) -> Result<(), String> {
        let uplink = match &b.uplink {
            None => None,
            Some(UplinkSetting::Iface(n)) => Some(n.clone()),
            Some(UplinkSetting::Nic(bdf)) => Some(nic_ifname(cfg, *bdf)?),
        };
        let ops = hp.ops();
        // A changed uplink: release the old one first.
        if let Some(old) = self.built.get(&b.name).and_then(|x| x.uplink.clone()) {
            if Some(&old) != uplink.as_ref() {
                if let (Some(l), Some(br)) = (
                    ops.link_by_name(&old).await.map_err(|e| chain(&e))?,
                    ops.link_by_name(&b.name).await.map_err(|e| chain(&e))?,
                ) {
                    if l.master == Some(br.index) {
                        let change = LinkChange {
                            master: Some(Master::Detach),
                            ..LinkChange::default()
                        };
                        ops.set_link(&l, &change).await.map_err(|e| chain(&e))?;
                        info!(bridge = %b.name, uplink = %old, "old uplink released");
                    }
                }
            }
        }
        let report = hp
            .bridge_up(&BridgeConfig {
                bridge: b.name.clone(),
                uplink: uplink.clone(),
            })
            .await
            .map_err(|e| chain(&e))?;
        if let Some(mtu) = b.mtu {
            // The uplink first: the path is only as wide as its narrowest
            // link, and vifs get theirs from their backend's `mtu`.
            for name in uplink.iter().chain(std::iter::once(&b.name)) {
                if let Some(l) = ops.link_by_name(name).await.map_err(|e| chain(&e))? {
                    if l.mtu != mtu {
                        let change = LinkChange {
                            mtu: Some(mtu),
                            ..LinkChange::default()
                        };
                        ops.set_link(&l, &change).await.map_err(|e| chain(&e))?;
                    }
                }
            }
        }
        if report.changed() {
            info!(bridge = %b.name, uplink = uplink.as_deref().unwrap_or("-"), mtu = ?b.mtu, "bridge ready");
        }
        self.built.insert(b.name.clone(), Built { uplink });
        Ok(())
    }

    async fn remove(&self, hp: &Hotplug, name: &str) -> Result<(), String> {
        let uplink = self.built.get(name).and_then(|b| b.uplink.clone());
        let ports = match hp.bridge_ports(name).await {
            Ok(p) => p,
            Err(hotplug::Error::BridgeMissing { .. }) => return Ok(()),
            Err(e) => return Err(chain(&e)),
        };
        let others: Vec<&str> = ports
            .iter()
            .map(|p| p.name.as_str())
            .filter(|p| Some(*p) != uplink.as_deref())
            .collect();
        if !others.is_empty() {
            warn!(bridge = name, ports = ?others, "no longer wanted but still has ports; kept");
            return Err(format!(
                "no longer wanted but kept: ports {} still on it",
                others.join(", ")
            ));
        }
        hotplug::delete_bridge(hp.ops(), name)
            .await
            .map_err(|e| chain(&e))?;
        info!(bridge = name, "bridge removed (no longer wanted)");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_override_the_command_line() {
        let mut cfg = AgentConfig {
            uplink: Some("eth0".into()),
            ..AgentConfig::default()
        };
        let from_dom0 = vec![
            BridgeSetting {
                name: "xenbr0".into(),
                uplink: Some(UplinkSetting::Iface("eth1".into())),
                mtu: Some(9000),
            },
            BridgeSetting {
                name: "guests".into(),
                uplink: None,
                mtu: None,
            },
        ];
        let d = desired(&cfg, &from_dom0);
        assert_eq!(d, from_dom0);
        let d = desired(&cfg, &[]);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].uplink, Some(UplinkSetting::Iface("eth0".into())));
        cfg.uplink = None;
        assert!(desired(&cfg, &[]).is_empty());
    }

    #[test]
    fn nics_are_found_by_mapping_then_sysfs() {
        let root = tempfile::tempdir().unwrap();
        let bdf: Bdf = "0000:03:00.0".parse().unwrap();
        let other: Bdf = "0000:04:00.0".parse().unwrap();
        let cfg = AgentConfig {
            sysfs_root: root.path().to_path_buf(),
            nics: vec![(other, "nic9".into())],
            ..AgentConfig::default()
        };
        assert_eq!(nic_ifname(&cfg, other).unwrap(), "nic9");
        let e = nic_ifname(&cfg, bdf).unwrap_err();
        assert!(e.contains("0000:03:00.0"), "{e}");
        let net = sysfs_net_dir(root.path(), bdf);
        std::fs::create_dir_all(net.join("enp3s0")).unwrap();
        assert_eq!(nic_ifname(&cfg, bdf).unwrap(), "enp3s0");
    }
}
