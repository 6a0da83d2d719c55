//! What sysfs says about one PCI device.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::attrs::{self, ModAlias};
use crate::error::{Error, Result};
use crate::net::NetSnapshot;
use crate::{Bdf, Sysfs, names};

/// PCI base class "network controller" (PCI Code and ID Assignment spec).
pub const CLASS_NETWORK: u8 = 0x02;
/// PCI class "PCI-to-PCI bridge" (base 0x06, subclass 0x04).
pub const CLASS_PCI_BRIDGE: u16 = 0x0604;

/// A network interface of the device (`net/<name>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct NetIface {
    /// Interface name.
    pub name: String,
    /// `operstate` (up, down, unknown, ...).
    pub operstate: Option<String>,
    /// MAC address.
    pub mac: Option<String>,
    /// IFF_UP, from the network snapshot.
    pub up: bool,
    /// Addresses, from the network snapshot.
    pub addresses: Vec<std::net::IpAddr>,
    /// Carries a default route.
    pub default_route: bool,
}

/// SR-IOV state of a physical function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Sriov {
    /// `sriov_totalvfs`.
    pub total_vfs: u32,
    /// `sriov_numvfs`.
    pub num_vfs: u32,
    /// The enabled virtual functions (`virtfnN` links).
    pub vfs: Vec<Bdf>,
}

/// Everything `drvdom pci show` reports about a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PciDevice {
    /// Address.
    pub bdf: Bdf,
    /// 24-bit class code.
    pub class: u32,
    /// Class name ("Ethernet controller").
    pub class_name: Option<String>,
    /// Vendor id.
    pub vendor_id: u16,
    /// Device id.
    pub device_id: u16,
    /// Subsystem vendor id.
    pub subsystem_vendor_id: Option<u16>,
    /// Subsystem device id.
    pub subsystem_device_id: Option<u16>,
    /// Vendor name from pci.ids.
    pub vendor_name: Option<String>,
    /// Device name from pci.ids.
    pub device_name: Option<String>,
    /// Subsystem name from pci.ids.
    pub subsystem_name: Option<String>,
    /// Revision.
    pub revision: Option<u8>,
    /// Bound driver.
    pub driver: Option<String>,
    /// Modules that can drive it (`modules.alias` matched against `modalias`).
    pub modules: Vec<String>,
    /// IOMMU group number.
    pub iommu_group: Option<u32>,
    /// The other devices in its IOMMU group.
    pub iommu_group_peers: Vec<Bdf>,
    /// `reset_method`, in the order the kernel tries them.
    pub reset_methods: Vec<String>,
    /// Function Level Reset advertised in config space (`None`: unreadable).
    pub flr: Option<bool>,
    /// A `reset` attribute exists (the kernel has some way to reset it).
    pub resettable: bool,
    /// Other functions of the same device present.
    pub siblings: Vec<Bdf>,
    /// Network interfaces.
    pub net: Vec<NetIface>,
    /// SR-IOV, for physical functions.
    pub sriov: Option<Sriov>,
    /// The physical function, for virtual functions.
    pub physfn: Option<Bdf>,
}

impl PciDevice {
    /// Base class is "network controller".
    pub fn is_network(&self) -> bool {
        self.class >> 16 == u32::from(CLASS_NETWORK)
    }

    /// A PCI-to-PCI bridge (ignored when judging IOMMU group sharing).
    pub fn is_bridge(&self) -> bool {
        self.class >> 8 == u32::from(CLASS_PCI_BRIDGE)
    }
}

/// Extra sources for [`Sysfs::device_info`]: network state and module aliases.
#[derive(Debug, Clone, Default)]
pub struct InfoSources {
    /// dom0's network state.
    pub net: NetSnapshot,
    /// `modules.alias` entries for `pci:` devices.
    pub aliases: Vec<ModAlias>,
}

impl InfoSources {
    /// Capture the network state and load `modules.alias` from
    /// `modules_dir` (missing files give empty sources).
    pub fn load(modules_dir: Option<&Path>, proc_root: &Path) -> Self {
        let aliases = modules_dir
            .and_then(|d| std::fs::read_to_string(d.join("modules.alias")).ok())
            .map(|t| attrs::parse_modules_alias(&t))
            .unwrap_or_default();
        InfoSources {
            net: NetSnapshot::capture(proc_root),
            aliases,
        }
    }
}

/// `/lib/modules/$(uname -r)` for the running kernel.
pub fn running_modules_dir() -> Option<PathBuf> {
    let u = nix::sys::utsname::uname().ok()?;
    let rel = u.release().to_str()?.to_string();
    Some(PathBuf::from("/lib/modules").join(rel))
}

/// The `net` directories of a device: its own, and those of child devices
/// one level down (virtio puts interfaces under `virtioN/net`).
pub(crate) fn net_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if dir.join("net").is_dir() {
        v.push(dir.join("net"));
    }
    for e in std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
    {
        // Real subdirectories only: symlinks lead to other devices.
        if e.file_type().is_ok_and(|t| t.is_dir()) && e.path().join("net").is_dir() {
            v.push(e.path().join("net"));
        }
    }
    v
}

fn bdf_link(path: &Path) -> Option<Bdf> {
    std::fs::read_link(path)
        .ok()?
        .file_name()?
        .to_str()?
        .parse()
        .ok()
}

impl Sysfs {
    fn parsed<T>(
        &self,
        dir: &Path,
        attr: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<T>> {
        let path = dir.join(attr);
        match self.read_opt(&path)? {
            None => Ok(None),
            Some(t) => parse(&t).map(Some).ok_or_else(|| Error::ParseAttr {
                path,
                reason: format!("unexpected content {:?}", t.trim()),
            }),
        }
    }

    /// The device's IOMMU group number.
    pub fn iommu_group(&self, bdf: Bdf) -> Option<u32> {
        self.link_name(&self.device_dir(bdf).join("iommu_group"))?
            .parse()
            .ok()
    }

    /// Members of an IOMMU group.
    pub fn iommu_group_members(&self, group: u32) -> Vec<Bdf> {
        let dir = self
            .iommu_groups_dir()
            .join(group.to_string())
            .join("devices");
        let mut v: Vec<Bdf> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Everything about one device.
    pub fn device_info(&self, bdf: Bdf, src: &InfoSources) -> Result<PciDevice> {
        let dir = self.require_device(bdf)?;
        let req = |attr: &str, v: Option<u16>| {
            v.ok_or_else(|| Error::ParseAttr {
                path: dir.join(attr),
                reason: "missing".to_string(),
            })
        };
        let vendor_id = req("vendor", self.parsed(&dir, "vendor", attrs::parse_hex_u16)?)?;
        let device_id = req("device", self.parsed(&dir, "device", attrs::parse_hex_u16)?)?;
        let class = self.parsed(&dir, "class", attrs::parse_class)?.unwrap_or(0);
        let subsystem_vendor_id = self.parsed(&dir, "subsystem_vendor", attrs::parse_hex_u16)?;
        let subsystem_device_id = self.parsed(&dir, "subsystem_device", attrs::parse_hex_u16)?;
        let subsystem_name = match (subsystem_vendor_id, subsystem_device_id) {
            (Some(sv), Some(sd)) => {
                names::subsystem_name(vendor_id, device_id, sv, sd).map(str::to_string)
            }
            _ => None,
        };
        let modules = self
            .read_opt(&dir.join("modalias"))?
            .map(|m| attrs::modules_for(&m, &src.aliases))
            .unwrap_or_default();
        let iommu_group = self.iommu_group(bdf);
        let iommu_group_peers = iommu_group
            .map(|g| {
                self.iommu_group_members(g)
                    .into_iter()
                    .filter(|b| *b != bdf)
                    .collect()
            })
            .unwrap_or_default();
        let reset_methods = self
            .read_opt(&dir.join("reset_method"))?
            .map(|t| attrs::parse_reset_methods(&t))
            .unwrap_or_default();
        let flr = std::fs::read(dir.join("config"))
            .ok()
            .and_then(|c| attrs::config_has_flr(&c));
        let siblings = self
            .device_bdfs()?
            .into_iter()
            .filter(|b| {
                b.domain() == bdf.domain()
                    && b.bus() == bdf.bus()
                    && b.device() == bdf.device()
                    && *b != bdf
            })
            .collect();
        Ok(PciDevice {
            bdf,
            class,
            class_name: names::class_name(class).map(str::to_string),
            vendor_id,
            device_id,
            subsystem_vendor_id,
            subsystem_device_id,
            vendor_name: names::vendor_name(vendor_id).map(str::to_string),
            device_name: names::device_name(vendor_id, device_id).map(str::to_string),
            subsystem_name,
            revision: self.parsed(&dir, "revision", attrs::parse_hex_u8)?,
            driver: self.link_name(&dir.join("driver")),
            modules,
            iommu_group,
            iommu_group_peers,
            reset_methods,
            flr,
            resettable: dir.join("reset").exists(),
            siblings,
            net: self.net_ifaces(&dir, &src.net)?,
            sriov: self.sriov(&dir)?,
            physfn: bdf_link(&dir.join("physfn")),
        })
    }

    /// Every device, sorted by address.
    pub fn list(&self, src: &InfoSources) -> Result<Vec<PciDevice>> {
        self.device_bdfs()?
            .into_iter()
            .map(|b| self.device_info(b, src))
            .collect()
    }

    fn net_ifaces(&self, dir: &Path, snap: &NetSnapshot) -> Result<Vec<NetIface>> {
        let mut found: Vec<(String, PathBuf)> = net_dirs(dir)
            .into_iter()
            .flat_map(|net| {
                std::fs::read_dir(&net)
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .map(move |n| (n.clone(), net.join(n)))
            })
            .collect();
        found.sort();
        found
            .into_iter()
            .map(|(name, d)| {
                let st = snap.ifaces.get(&name);
                Ok(NetIface {
                    operstate: self
                        .read_opt(&d.join("operstate"))?
                        .map(|s| s.trim().to_string()),
                    mac: self
                        .read_opt(&d.join("address"))?
                        .map(|s| s.trim().to_string()),
                    up: st.is_some_and(|s| s.up),
                    addresses: st.map(|s| s.addresses.clone()).unwrap_or_default(),
                    default_route: snap.default_route.contains(&name),
                    name,
                })
            })
            .collect()
    }

    fn sriov(&self, dir: &Path) -> Result<Option<Sriov>> {
        let Some(total_vfs) = self.parsed(dir, "sriov_totalvfs", attrs::parse_u32)? else {
            return Ok(None);
        };
        let num_vfs = self
            .parsed(dir, "sriov_numvfs", attrs::parse_u32)?
            .unwrap_or(0);
        let mut vfs: Vec<Bdf> = (0..total_vfs.min(4096))
            .map_while(|i| bdf_link(&dir.join(format!("virtfn{i}"))))
            .collect();
        vfs.sort();
        Ok(Some(Sriov {
            total_vfs,
            num_vfs,
            vfs,
        }))
    }
}
