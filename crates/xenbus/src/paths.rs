//! Typed xenstore paths of the libxl device model (DEVICES.md §2–§3;
//! libxl_device.c `libxl__device_frontend_path`, `libxl__device_backend_path`,
//! `libxl__device_libxl_path`).
//!
//! Every device path in drvdom is built here; other crates never `format!`
//! a `/local/domain/...` string themselves.

use std::fmt;
use std::str::FromStr;

use xenstore::DomId;

use crate::error::{Error, Result};

/// Device kinds this crate models (libxl `libxl__device_kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum DeviceKind {
    /// Network interface (netfront/netback).
    Vif,
    /// PCI passthrough (pcifront/pciback).
    Pci,
}

impl DeviceKind {
    /// The xenstore name (`vif`, `pci`).
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceKind::Vif => "vif",
            DeviceKind::Pci => "pci",
        }
    }
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeviceKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "vif" => Ok(DeviceKind::Vif),
            "pci" => Ok(DeviceKind::Pci),
            _ => Err(Error::invalid(
                "device kind",
                s.as_bytes(),
                "expected vif or pci",
            )),
        }
    }
}

pub use xentypes::DevId;

/// Parse a domid component of a path strictly (no leading zeros, real domain).
fn parse_domid(s: &str) -> Option<DomId> {
    if s.len() > 1 && s.starts_with('0') {
        return None;
    }
    s.parse::<DomId>().ok().filter(|d| d.is_valid_domain())
}

/// `/local/domain/<domid>`.
pub fn domain_path(domid: DomId) -> String {
    domid.path()
}

/// `/local/domain/<be>/backend`: the one directory a driver domain watches.
pub fn backend_root(be: DomId) -> String {
    format!("{}/backend", domid_path(be))
}

/// `/local/domain/<be>/backend/<kind>`.
pub fn backend_kind_dir(be: DomId, kind: DeviceKind) -> String {
    format!("{}/{}", backend_root(be), kind)
}

/// `/local/domain/<be>/backend/<kind>/<fe>`: all devices of one guest.
pub fn backend_guest_dir(be: DomId, kind: DeviceKind, fe: DomId) -> String {
    format!("{}/{}", backend_kind_dir(be, kind), fe)
}

/// `/local/domain/<fe>/device/<kind>`.
pub fn frontend_kind_dir(fe: DomId, kind: DeviceKind) -> String {
    format!("{}/device/{}", domid_path(fe), kind)
}

/// `/libxl/<domid>`: the toolstack's private directory for a domain.
pub fn libxl_domain_dir(domid: DomId) -> String {
    format!("/libxl/{domid}")
}

/// `/libxl/<fe>/device/<kind>`.
pub fn libxl_kind_dir(fe: DomId, kind: DeviceKind) -> String {
    format!("{}/device/{}", libxl_domain_dir(fe), kind)
}

/// `/vm/<uuid>`.
pub fn vm_path(uuid: &str) -> String {
    format!("/vm/{uuid}")
}

fn domid_path(d: DomId) -> String {
    d.path()
}

/// `<dir>/<key>`.
fn key_of(dir: &str, key: &str) -> String {
    format!("{dir}/{key}")
}

/// The frontend directory of a device: `/local/domain/<fe>/device/<kind>/<devid>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrontendPath {
    /// Frontend (guest) domain.
    pub fe: DomId,
    /// Device kind.
    pub kind: DeviceKind,
    /// Device id.
    pub devid: DevId,
}

impl FrontendPath {
    /// Build.
    pub fn new(fe: DomId, kind: DeviceKind, devid: DevId) -> FrontendPath {
        FrontendPath { fe, kind, devid }
    }

    /// A vif frontend.
    pub fn vif(fe: DomId, devid: DevId) -> FrontendPath {
        FrontendPath::new(fe, DeviceKind::Vif, devid)
    }

    /// The directory path.
    pub fn path(&self) -> String {
        format!("{}/{}", frontend_kind_dir(self.fe, self.kind), self.devid)
    }

    /// A key inside the directory.
    pub fn key(&self, key: &str) -> String {
        key_of(&self.path(), key)
    }

    /// The `state` node.
    pub fn state(&self) -> String {
        self.key(keys::STATE)
    }
}

impl fmt::Display for FrontendPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

/// The backend directory of a device:
/// `/local/domain/<be>/backend/<kind>/<fe>/<devid>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackendPath {
    /// Backend (driver) domain.
    pub be: DomId,
    /// Device kind.
    pub kind: DeviceKind,
    /// Frontend (guest) domain.
    pub fe: DomId,
    /// Device id.
    pub devid: DevId,
}

impl BackendPath {
    /// Build.
    pub fn new(be: DomId, kind: DeviceKind, fe: DomId, devid: DevId) -> BackendPath {
        BackendPath {
            be,
            kind,
            fe,
            devid,
        }
    }

    /// A vif backend.
    pub fn vif(be: DomId, fe: DomId, devid: DevId) -> BackendPath {
        BackendPath::new(be, DeviceKind::Vif, fe, devid)
    }

    /// The directory path.
    pub fn path(&self) -> String {
        format!(
            "{}/{}",
            backend_guest_dir(self.be, self.kind, self.fe),
            self.devid
        )
    }

    /// A key inside the directory.
    pub fn key(&self, key: &str) -> String {
        key_of(&self.path(), key)
    }

    /// The `state` node.
    pub fn state(&self) -> String {
        self.key(keys::STATE)
    }

    /// The path relative to the backend domain's home
    /// (`backend/<kind>/<fe>/<devid>`), as hotplug scripts get it in
    /// `XENBUS_PATH`.
    pub fn relative(&self) -> String {
        format!("backend/{}/{}/{}", self.kind, self.fe, self.devid)
    }

    /// The matching frontend directory.
    pub fn frontend(&self) -> FrontendPath {
        FrontendPath::new(self.fe, self.kind, self.devid)
    }

    /// The matching `/libxl` copy.
    pub fn libxl(&self) -> LibxlPath {
        LibxlPath::new(self.fe, self.kind, self.devid)
    }

    /// The default backend interface name for a vif: `vif<fe>.<devid>`
    /// (Linux netback `xenvif_alloc`).
    pub fn default_vif_name(&self) -> String {
        format!("vif{}.{}", self.fe, self.devid)
    }

    /// Parse an absolute path at or below a backend device directory.
    ///
    /// Returns the device and the rest of the path below it (`""` for the
    /// directory itself, `"state"`, `"queue-0/x"` …). Paths that are not a
    /// device of a known kind with valid domid/devid components give `None`:
    /// this is the filter the agent applies to every watch event.
    pub fn parse(path: &str) -> Option<(BackendPath, &str)> {
        let rest = path.strip_prefix("/local/domain/")?;
        let (be, rest) = rest.split_once('/')?;
        let be = parse_domid(be)?;
        let rest = rest.strip_prefix("backend/")?;
        let mut it = rest.splitn(4, '/');
        let kind = it.next()?.parse::<DeviceKind>().ok()?;
        let fe = parse_domid(it.next()?)?;
        let devid = it.next()?.parse::<DevId>().ok()?;
        let tail = it.next().unwrap_or("");
        Some((BackendPath::new(be, kind, fe, devid), tail))
    }

    /// [`BackendPath::parse`], accepting only devices of backend domain `be`.
    pub fn parse_under(be: DomId, path: &str) -> Option<(BackendPath, &str)> {
        BackendPath::parse(path).filter(|(p, _)| p.be == be)
    }
}

impl fmt::Display for BackendPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

/// The toolstack's copy of a device: `/libxl/<fe>/device/<kind>/<devid>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LibxlPath {
    /// Frontend (guest) domain.
    pub fe: DomId,
    /// Device kind.
    pub kind: DeviceKind,
    /// Device id.
    pub devid: DevId,
}

impl LibxlPath {
    /// Build.
    pub fn new(fe: DomId, kind: DeviceKind, devid: DevId) -> LibxlPath {
        LibxlPath { fe, kind, devid }
    }

    /// The directory path.
    pub fn path(&self) -> String {
        format!("{}/{}", libxl_kind_dir(self.fe, self.kind), self.devid)
    }

    /// A key inside the directory.
    pub fn key(&self, key: &str) -> String {
        key_of(&self.path(), key)
    }
}

impl fmt::Display for LibxlPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

/// Key names used in device directories (DEVICES.md §3–§4, §7).
pub mod keys {
    /// Generic: the peer's state (xenbus.h).
    pub const STATE: &str = "state";
    /// Backend: "1" while the device should exist, "0" to remove it.
    pub const ONLINE: &str = "online";
    /// Backend: path of the frontend directory.
    pub const FRONTEND: &str = "frontend";
    /// Backend: frontend domid.
    pub const FRONTEND_ID: &str = "frontend-id";
    /// Frontend: path of the backend directory.
    pub const BACKEND: &str = "backend";
    /// Frontend: backend domid.
    pub const BACKEND_ID: &str = "backend-id";
    /// vif: hotplug script path.
    pub const SCRIPT: &str = "script";
    /// vif: custom backend interface name.
    pub const VIFNAME: &str = "vifname";
    /// vif: guest MAC.
    pub const MAC: &str = "mac";
    /// vif: IP list.
    pub const IP: &str = "ip";
    /// vif: gateway device.
    pub const GATEWAYDEV: &str = "gatewaydev";
    /// vif: rate limit `<bytes>,<usecs>`.
    pub const RATE: &str = "rate";
    /// vif: MTU.
    pub const MTU: &str = "mtu";
    /// vif: bridge.
    pub const BRIDGE: &str = "bridge";
    /// vif: device handle (= devid).
    pub const HANDLE: &str = "handle";
    /// vif: "vif" or "vif_ioemu".
    pub const TYPE: &str = "type";
    /// vif frontend: "1"/"0".
    pub const TRUSTED: &str = "trusted";
    /// Backend: written by the hotplug script: "connected" or "error".
    pub const HOTPLUG_STATUS: &str = "hotplug-status";
    /// Backend: error text from the hotplug script.
    pub const HOTPLUG_ERROR: &str = "hotplug-error";
    /// vif backend, drvdom's own: "1" (default when absent) keeps the vif's
    /// layer-2 hygiene on, "0" relaxes it (a guest that is a router or a
    /// bridge). Written by the toolstack (dom0) into the backend directory,
    /// which the guest can read but not write; read by `drvdom-agent`.
    pub const L2_HYGIENE: &str = "drvdom-l2-hygiene";
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn parse_never_panics(s in "(/local/domain/[0-9]{1,6}/backend/(vif|pci|vbd)/[0-9x]{0,6}/[0-9a-z]{0,4}(/state)?)|.{0,60}") {
            if let Some((bp, rest)) = BackendPath::parse(&s) {
                prop_assert!(s.starts_with(&bp.path()));
                let printed = bp.path();
                prop_assert_eq!(BackendPath::parse(&printed), Some((bp, "")));
                if !rest.is_empty() {
                    prop_assert_eq!(bp.key(rest), s);
                }
            }
        }

        #[test]
        fn printed_paths_parse_back(be in 0u16..0x7ff0, fe in 0u16..0x7ff0, devid in 0u32..=DevId::MAX) {
            let bp = BackendPath::vif(DomId(be), DomId(fe), DevId(devid));
            let printed = bp.state();
            prop_assert_eq!(BackendPath::parse(&printed), Some((bp, "state")));
        }
    }

    #[test]
    fn golden_paths() {
        let be = BackendPath::vif(DomId(1), DomId(5), DevId(0));
        assert_eq!(be.path(), "/local/domain/1/backend/vif/5/0");
        assert_eq!(be.state(), "/local/domain/1/backend/vif/5/0/state");
        assert_eq!(be.relative(), "backend/vif/5/0");
        assert_eq!(be.frontend().path(), "/local/domain/5/device/vif/0");
        assert_eq!(be.libxl().path(), "/libxl/5/device/vif/0");
        assert_eq!(be.default_vif_name(), "vif5.0");
        assert_eq!(backend_root(DomId(1)), "/local/domain/1/backend");
        assert_eq!(
            libxl_kind_dir(DomId(5), DeviceKind::Pci),
            "/libxl/5/device/pci"
        );
    }

    #[test]
    fn parses_backend_paths_strictly() {
        let (p, rest) = BackendPath::parse("/local/domain/1/backend/vif/5/3/state").unwrap();
        assert_eq!(p, BackendPath::vif(DomId(1), DomId(5), DevId(3)));
        assert_eq!(rest, "state");
        let (_, rest) = BackendPath::parse("/local/domain/1/backend/vif/5/3").unwrap();
        assert_eq!(rest, "");
        let (_, rest) = BackendPath::parse("/local/domain/1/backend/vif/5/3/queue-0/x").unwrap();
        assert_eq!(rest, "queue-0/x");
        for bad in [
            "/local/domain/1/backend/vif/5",
            "/local/domain/1/backend/vbd/5/0/state",
            "/local/domain/1/backend/vif/05/0/state",
            "/local/domain/1/backend/vif/5/00/state",
            "/local/domain/1/backend/vif/5/x/state",
            "/local/domain/1/backend/vif/70000/0",
            "/local/domain/1/backend/vif/32752/0",
            "/local/domain/x/backend/vif/5/0",
            "/local/domain/1/device/vif/5/0",
            "local/domain/1/backend/vif/5/0",
            "",
        ] {
            assert!(BackendPath::parse(bad).is_none(), "{bad}");
        }
        assert!(BackendPath::parse_under(DomId(2), "/local/domain/1/backend/vif/5/3").is_none());
    }

    #[test]
    fn devid_parsing() {
        assert_eq!("0".parse::<DevId>().unwrap(), DevId(0));
        assert_eq!("2147483647".parse::<DevId>().unwrap(), DevId(DevId::MAX));
        for bad in ["", "-1", "2147483648", "99999999999", "01", "1a", " 1"] {
            assert!(bad.parse::<DevId>().is_err(), "{bad}");
        }
    }
}
