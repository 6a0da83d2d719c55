//! Reading a vif backend directory from inside the driver domain, with every
//! value validated (what `xl devd` and `vif-bridge` read, DEVICES.md §5–§6).
//!
//! Trust boundary: the backend directory is owned by the driver domain and
//! written by the toolstack, but nothing here assumes it is well formed:
//! every malformed value is an [`Error::InvalidValue`] naming the key.

use xenstore::AsyncClient;

use crate::error::{Error, Result};
use crate::paths::{BackendPath, keys};
use crate::state::XenbusState;
use crate::validate;
use crate::vif::VifType;
use xentypes::{IpCidr, MacAddr};

/// Longest `ip` list accepted.
const IP_MAX: usize = 1024;

/// The two nodes `xl devd` looks at on every event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackendStatus {
    /// `state`: `None` if the node (or the device) is gone.
    pub state: Option<XenbusState>,
    /// `online`: `Some(true)` for "1", `Some(false)` for "0", `None` if
    /// absent (any other value is an error).
    pub online: Option<bool>,
    /// `hotplug-status`, if present (lossy UTF-8, at most 64 bytes kept).
    pub hotplug_status: Option<String>,
}

async fn read_opt(client: &AsyncClient, path: &str) -> Result<Option<Vec<u8>>> {
    client
        .read_opt(path)
        .await
        .map_err(Error::xs(format!("read {path}")))
}

/// Read `state`, `online`, `hotplug-status` of a backend device.
/// An unparsable `state` is an error ([`Error::InvalidValue`]).
pub async fn read_status(client: &AsyncClient, bp: &BackendPath) -> Result<BackendStatus> {
    let state = match read_opt(client, &bp.state()).await? {
        None => None,
        Some(raw) => Some(
            XenbusState::parse_bytes(&raw)
                .map_err(|_| Error::invalid("state", &raw, "expected 0..=8"))?,
        ),
    };
    let online = match read_opt(client, &bp.key(keys::ONLINE)).await? {
        None => None,
        Some(raw) => Some(match raw.trim_ascii() {
            b"1" => true,
            b"0" => false,
            _ => return Err(Error::invalid("online", &raw, "expected 0 or 1")),
        }),
    };
    let hotplug_status = read_opt(client, &bp.key(keys::HOTPLUG_STATUS))
        .await?
        .map(|r| String::from_utf8_lossy(&r[..r.len().min(64)]).into_owned());
    Ok(BackendStatus {
        state,
        online,
        hotplug_status,
    })
}

/// The hotplug-relevant settings of a vif backend, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VifSettings {
    /// `script`.
    pub script: Option<String>,
    /// `bridge`.
    pub bridge: Option<String>,
    /// `mtu`.
    pub mtu: Option<u32>,
    /// `vifname`.
    pub vifname: Option<String>,
    /// `mac` (the guest's).
    pub mac: Option<MacAddr>,
    /// `type` (default vif).
    pub vif_type: VifType,
    /// `gatewaydev`.
    pub gatewaydev: Option<String>,
    /// `ip`, as written.
    pub ip: Option<String>,
    /// `ip`, parsed: the anti-spoofing allow-list (and routed mode's host
    /// routes). `None` when `ip` is absent or blank.
    pub addresses: Option<Vec<IpCidr>>,
    /// `drvdom-l2-hygiene` (default true).
    pub l2_hygiene: bool,
}

impl VifSettings {
    /// True when `script` names Xen's `vif-route` (any directory): drvdom
    /// handles that natively.
    pub fn is_route_script(&self) -> bool {
        self.script
            .as_deref()
            .is_some_and(|s| s.rsplit('/').next() == Some("vif-route"))
    }

    /// The backend interface name: `vifname` if set, else `vif<fe>.<devid>`.
    pub fn interface(&self, bp: &BackendPath) -> String {
        self.vifname
            .clone()
            .unwrap_or_else(|| bp.default_vif_name())
    }
}

/// Read and validate the settings of a vif backend. The first bad value is
/// returned as [`Error::InvalidValue`].
pub async fn read_vif_settings(client: &AsyncClient, bp: &BackendPath) -> Result<VifSettings> {
    let get = |k: &'static str| {
        let path = bp.key(k);
        async move { read_opt(client, &path).await }
    };
    let script = get(keys::SCRIPT)
        .await?
        .map(|r| validate::script_path(&r))
        .transpose()?;
    let bridge = get(keys::BRIDGE)
        .await?
        .map(|r| validate::ifname("bridge", &r))
        .transpose()?;
    let mtu = get(keys::MTU)
        .await?
        .map(|r| validate::mtu(&r))
        .transpose()?;
    let vifname = get(keys::VIFNAME)
        .await?
        .map(|r| validate::ifname("vifname", &r))
        .transpose()?;
    let mac = get(keys::MAC)
        .await?
        .map(|r| MacAddr::parse_bytes(&r))
        .transpose()?;
    let vif_type = get(keys::TYPE)
        .await?
        .map(|r| VifType::parse_bytes(&r))
        .transpose()?
        .unwrap_or_default();
    let gatewaydev = get(keys::GATEWAYDEV)
        .await?
        .filter(|r| !r.is_empty())
        .map(|r| validate::ifname("gatewaydev", &r))
        .transpose()?;
    let ip = get(keys::IP)
        .await?
        .map(|r| validate::printable("ip", &r, IP_MAX))
        .transpose()?;
    // A malformed list must fail the device: running it without its
    // anti-spoofing filter would be worse than not running it.
    let addresses = match &ip {
        Some(s) if !s.trim().is_empty() => Some(IpCidr::parse_list(s).map_err(|e| match e {
            xentypes::Error::InvalidIp { input, reason } => {
                Error::invalid("ip", input.as_bytes(), reason)
            }
            _ => Error::invalid("ip", s.as_bytes(), "expected addresses like 192.0.2.10/24"),
        })?),
        _ => None,
    };
    let l2_hygiene = match get(keys::L2_HYGIENE).await? {
        None => true,
        Some(r) => match r.trim_ascii() {
            b"1" => true,
            b"0" => false,
            _ => return Err(Error::invalid(keys::L2_HYGIENE, &r, "expected 0 or 1")),
        },
    };
    Ok(VifSettings {
        script,
        bridge,
        mtu,
        vifname,
        mac,
        vif_type,
        gatewaydev,
        ip,
        addresses,
        l2_hygiene,
    })
}
