//! What dom0 does with the network interfaces of a device: up or down,
//! addresses, default routes. Captured once per command as a snapshot so
//! the decisions in [`crate::pciback`] are plain functions of data.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;

use serde::Serialize;

use crate::attrs;

/// One interface's state as seen by dom0's network stack.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct IfState {
    /// IFF_UP is set.
    pub up: bool,
    /// Its addresses (IPv4 and IPv6, link-local included).
    pub addresses: Vec<IpAddr>,
}

/// Interfaces with their state, and which ones carry a default route.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct NetSnapshot {
    /// By interface name.
    pub ifaces: BTreeMap<String, IfState>,
    /// Interfaces carrying an IPv4 or IPv6 default route.
    pub default_route: BTreeSet<String>,
}

impl NetSnapshot {
    /// An empty snapshot (no interfaces known).
    pub fn empty() -> Self {
        Self::default()
    }

    /// The current network namespace's interfaces (`getifaddrs`) and default
    /// routes (`/proc/net/route`, `/proc/net/ipv6_route` under `proc_root`).
    /// Unreadable parts are left empty and logged.
    pub fn capture(proc_root: &Path) -> Self {
        let mut snap = NetSnapshot::default();
        match nix::ifaddrs::getifaddrs() {
            Ok(addrs) => {
                for a in addrs {
                    let st = snap.ifaces.entry(a.interface_name.clone()).or_default();
                    st.up |= a.flags.contains(nix::net::if_::InterfaceFlags::IFF_UP);
                    let ip = a.address.as_ref().and_then(|s| {
                        s.as_sockaddr_in()
                            .map(|v4| IpAddr::V4(v4.ip()))
                            .or_else(|| s.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
                    });
                    if let Some(ip) = ip {
                        st.addresses.push(ip);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "getifaddrs failed; interface use not checked"),
        }
        for (file, parse) in [
            (
                "net/route",
                attrs::parse_proc_net_route as fn(&str) -> BTreeSet<String>,
            ),
            ("net/ipv6_route", attrs::parse_proc_net_ipv6_route),
        ] {
            match std::fs::read_to_string(proc_root.join(file)) {
                Ok(t) => snap.default_route.extend(parse(&t)),
                Err(e) => tracing::debug!(file, error = %e, "cannot read routes"),
            }
        }
        snap
    }

    /// Add or replace an interface (for tests and callers with other sources).
    pub fn with_iface(mut self, name: &str, up: bool, addresses: Vec<IpAddr>) -> Self {
        self.ifaces
            .insert(name.to_string(), IfState { up, addresses });
        self
    }

    /// Mark an interface as carrying a default route.
    pub fn with_default_route(mut self, name: &str) -> Self {
        self.default_route.insert(name.to_string());
        self
    }

    /// Why dom0 is using this interface, or `None` if it is not:
    /// up with addresses, or carrying a default route.
    pub fn in_use_reason(&self, name: &str) -> Option<String> {
        if self.default_route.contains(name) {
            return Some(format!(
                "interface {name} carries the default route (the management NIC)"
            ));
        }
        let st = self.ifaces.get(name)?;
        if st.up && !st.addresses.is_empty() {
            let a: Vec<String> = st.addresses.iter().map(ToString::to_string).collect();
            return Some(format!(
                "interface {name} is up with addresses {}",
                a.join(", ")
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_use_needs_up_and_address_or_default_route() {
        let s = NetSnapshot::empty()
            .with_iface("a", true, vec!["192.0.2.1".parse().unwrap()])
            .with_iface("b", true, vec![])
            .with_iface("c", false, vec!["192.0.2.3".parse().unwrap()])
            .with_default_route("d");
        assert!(s.in_use_reason("a").unwrap().contains("192.0.2.1"));
        assert_eq!(s.in_use_reason("b"), None);
        assert_eq!(s.in_use_reason("c"), None);
        assert!(s.in_use_reason("d").unwrap().contains("default route"));
        assert_eq!(s.in_use_reason("zz"), None);
    }

    #[test]
    fn capture_sees_loopback() {
        let s = NetSnapshot::capture(Path::new("/proc"));
        let lo = s.ifaces.get("lo").expect("lo exists in every namespace");
        assert!(lo.up);
    }
}
