//! The management NIC: the PCI network device whose interface carries
//! dom0's default route (directly, or as the port of a bridge that does).
//! Hiding it from dom0 (pciback) or giving it to a driver domain cuts dom0
//! off the network, so `doctor`, `pci cmdline` and `pci assign` warn about
//! it (and `assign` refuses it without `--force`).

use std::path::Path;

use serde::Serialize;

use crate::net::NetSnapshot;
use crate::{Bdf, Sysfs};

/// One device carrying dom0's default route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ManagementNic {
    /// The device.
    pub bdf: Bdf,
    /// Its interface in dom0.
    pub iface: String,
    /// The interface the default route uses (`iface`, or its bridge).
    pub route_via: String,
}

/// The interfaces of one device with their bridge master, if any
/// (`net/<if>/master` links to the master's directory).
fn ifaces_of(dir: &Path) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for net in crate::device::net_dirs(dir) {
        for e in std::fs::read_dir(&net).into_iter().flatten().flatten() {
            let Ok(name) = e.file_name().into_string() else {
                continue;
            };
            let master = std::fs::read_link(e.path().join("master"))
                .ok()
                .and_then(|p| p.file_name()?.to_str().map(str::to_string));
            out.push((name, master));
        }
    }
    out.sort();
    out
}

/// Every PCI device of `sysfs` whose interface (or its bridge) carries a
/// default route in `net`.
pub fn management_nics(sysfs: &Sysfs, net: &NetSnapshot) -> Vec<ManagementNic> {
    let Ok(bdfs) = sysfs.device_bdfs() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for bdf in bdfs {
        for (iface, master) in ifaces_of(&sysfs.device_dir(bdf)) {
            let via = if net.default_route.contains(&iface) {
                Some(iface.clone())
            } else {
                master.filter(|m| net.default_route.contains(m))
            };
            if let Some(route_via) = via {
                out.push(ManagementNic {
                    bdf,
                    iface,
                    route_via,
                });
            }
        }
    }
    out
}

/// The management NIC among `bdfs`, if one is.
pub fn management_nic_among(
    sysfs: &Sysfs,
    net: &NetSnapshot,
    bdfs: &[Bdf],
) -> Option<ManagementNic> {
    management_nics(sysfs, net)
        .into_iter()
        .find(|m| bdfs.contains(&m.bdf))
}

impl ManagementNic {
    /// One sentence: what it is and why not to hide it.
    pub fn warning(&self) -> String {
        let via = if self.route_via == self.iface {
            String::new()
        } else {
            format!(" through bridge {}", self.route_via)
        };
        format!(
            "{} ({}) is the management NIC: it carries dom0's default route{via}; \
             hiding it from dom0 cuts dom0 off the network",
            self.bdf, self.iface
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::{Fixture, FixtureDevice};

    #[test]
    fn finds_the_nic_with_the_default_route_and_through_its_bridge() {
        let fx = Fixture::new().unwrap();
        let a: Bdf = "0000:03:00.0".parse().unwrap();
        let b: Bdf = "0000:04:00.0".parse().unwrap();
        fx.add_device(&FixtureDevice::new(a, 0x8086, 0x10d3, 0x020000).net("eth0", "up"))
            .unwrap();
        fx.add_device(&FixtureDevice::new(b, 0x8086, 0x10d3, 0x020000).net("eth1", "up"))
            .unwrap();
        let sysfs = fx.sysfs();
        let net = NetSnapshot::empty().with_default_route("eth0");
        let m = management_nics(&sysfs, &net);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].bdf, a);
        assert!(
            m[0].warning().contains("management NIC"),
            "{}",
            m[0].warning()
        );
        assert!(management_nic_among(&sysfs, &net, &[b]).is_none());
        // A bridge in dom0 carrying the route, with eth1 as its port.
        let port = sysfs.device_dir(b).join("net/eth1/master");
        std::os::unix::fs::symlink("../../../../../../class/net/xenbr0", &port).unwrap();
        let net = NetSnapshot::empty().with_default_route("xenbr0");
        let m = management_nic_among(&sysfs, &net, &[b]).unwrap();
        assert_eq!(m.route_via, "xenbr0");
        assert!(m.warning().contains("through bridge xenbr0"));
    }
}
