//! Per-vif packet filter: layer-2 hygiene and anti-spoofing, in nf_tables,
//! driven over nfnetlink directly (no `nft` binary, no C library).
//!
//! Each vif gets its own table `netdev drvdom-<ifname>` whose base chain
//! hangs on the vif's **ingress** hook: it sees every frame the guest sends
//! before anything else in the driver domain does — before the bridge
//! (FDB learning, its link-local shortcut), before `br_netfilter` and the
//! FORWARD chain, and before routing in routed mode. So the same rules
//! protect bridged and routed vifs, whatever the host's iptables policy and
//! whether `br_netfilter` is loaded. The ruleset is drawn at the top of `src/filter/rules.rs`
//! and in the crate's README.
//!
//! What the filter does per [`FilterSpec`]:
//! * `l2` (hygiene, on by default): only the guest's MAC as Ethernet
//!   source; no IEEE link-local control frames (01:80:c2:00:00:0x: STP
//!   BPDUs, pause, LACP, LLDP…), no VLAN-tagged frames, no ICMPv6 router
//!   advertisements or redirects, no ICMP redirects, no DHCP/DHCPv6 server
//!   messages (UDP source port 67 / 547).
//! * `ip` (anti-spoofing, when the vif has an `ip` list): IPv4 only from the
//!   listed addresses (or 0.0.0.0 to a DHCP server), ARP only Ethernet/IPv4
//!   with the guest's MAC and a listed (or 0.0.0.0) sender address, IPv6 only
//!   from the listed addresses, the link-local address derived from the MAC,
//!   or `::` for router/neighbour solicitations and MLDv2 reports; neighbour
//!   advertisements only for those addresses; other ethertypes dropped.
//!
//! Every drop is counted by reason ([`DropReason`]) in a named counter of
//! the vif's table; [`FilterStatus`] reads them back.

mod expr;
pub(crate) mod rules;
pub(crate) mod socket;
mod wire;

use std::fmt;
use std::net::IpAddr;

use xentypes::{IpCidr, MacAddr};

pub use rules::{TABLE_PREFIX, table_name};

/// What to filter on one vif.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterSpec {
    /// The vif (its final name, after any rename).
    pub ifname: String,
    /// The guest's MAC (the backend's `mac` node, written by the toolstack;
    /// never the guest-writable frontend copy).
    pub mac: MacAddr,
    /// Layer-2 hygiene.
    pub l2: bool,
    /// Anti-spoofing allow-list (the backend's `ip` node); `None`: none.
    pub ip: Option<Vec<IpCidr>>,
}

/// One entry of the allow-list as the rules use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Allowed {
    pub addr: IpAddr,
    pub prefix: u8,
}

fn host_bits_zero(addr: IpAddr, prefix: u8) -> bool {
    match addr {
        IpAddr::V4(v) => {
            let x = u32::from(v);
            prefix < 32 && x.checked_shl(u32::from(prefix)).unwrap_or(0) == 0
        }
        IpAddr::V6(v) => {
            let x = u128::from(v);
            prefix < 128 && x.checked_shl(u32::from(prefix)).unwrap_or(0) == 0
        }
    }
}

impl FilterSpec {
    /// The filter's mode.
    pub fn mode(&self) -> FilterMode {
        match (self.l2, self.ip.is_some()) {
            (false, false) => FilterMode::Off,
            (true, false) => FilterMode::L2,
            (false, true) => FilterMode::Ip,
            (true, true) => FilterMode::L2Ip,
        }
    }

    /// The allow-list: an entry whose host bits are all zero (`10.1.0.0/16`,
    /// `2001:db8::/64`) allows that whole network, as a range routed to the
    /// guest; any other entry (`192.0.2.10/24`) allows exactly that address,
    /// its prefix being the guest's on-link netmask, not a range it owns.
    pub(crate) fn allowed(&self) -> Vec<Allowed> {
        let mut v: Vec<Allowed> = self
            .ip
            .iter()
            .flatten()
            .map(|c| {
                let full = if c.is_ipv4() { 32 } else { 128 };
                let prefix = if host_bits_zero(c.addr(), c.prefix()) {
                    c.prefix()
                } else {
                    full
                };
                Allowed {
                    addr: c.addr(),
                    prefix,
                }
            })
            .collect();
        v.sort_by_key(|a| (a.addr, a.prefix));
        v.dedup();
        v
    }

    /// The table's userdata: version tag, mode and a fingerprint of the
    /// whole spec, so a replay can tell an identical filter from a stale one.
    pub(crate) fn userdata(&self) -> String {
        // FNV-1a 64 over a canonical description.
        let desc = format!(
            "{}|{}|{}|{:?}",
            self.ifname,
            self.mac,
            self.mode(),
            self.allowed()
        );
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in desc.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{} {} {h:016x}", rules::USERDATA_TAG, self.mode())
    }
}

/// The filter in force on a vif, as reported to dom0 (`"filter"` in the
/// port JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FilterMode {
    /// No filter (hygiene relaxed, no `ip`).
    Off,
    /// Layer-2 hygiene only.
    L2,
    /// Anti-spoofing only (hygiene relaxed).
    Ip,
    /// Both.
    L2Ip,
}

impl FilterMode {
    /// `off`, `l2`, `ip`, `l2+ip`.
    pub fn as_str(self) -> &'static str {
        match self {
            FilterMode::Off => "off",
            FilterMode::L2 => "l2",
            FilterMode::Ip => "ip",
            FilterMode::L2Ip => "l2+ip",
        }
    }

    /// Parse [`FilterMode::as_str`].
    pub fn parse(s: &str) -> Option<FilterMode> {
        [
            FilterMode::Off,
            FilterMode::L2,
            FilterMode::Ip,
            FilterMode::L2Ip,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
    }
}

impl fmt::Display for FilterMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a frame from a guest was dropped (one counter each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Ethernet source is not the guest's MAC.
    Mac,
    /// IEEE link-local control frame (STP, LLDP, pause…), or a VLAN tag
    /// on a vif without an allow-list (with one it counts as `Spoof`).
    L2Control,
    /// Router advertisement or redirect.
    RouterAdvert,
    /// DHCP or DHCPv6 server message.
    DhcpServer,
    /// Source address (IPv4, ARP, IPv6, ND target) not allowed, or an
    /// ethertype other than IPv4/ARP/IPv6 on a vif with `ip`.
    Spoof,
}

impl DropReason {
    /// Every reason, in report order.
    pub const ALL: [DropReason; 5] = [
        DropReason::Mac,
        DropReason::L2Control,
        DropReason::RouterAdvert,
        DropReason::DhcpServer,
        DropReason::Spoof,
    ];

    /// The counter's name (also the key in the port JSON's `"drops"`).
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Mac => "mac",
            DropReason::L2Control => "l2ctl",
            DropReason::RouterAdvert => "ra",
            DropReason::DhcpServer => "dhcp",
            DropReason::Spoof => "spoof",
        }
    }
}

/// Dropped packets per reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DropCounters {
    /// Wrong source MAC.
    pub mac: u64,
    /// Link-local control frames and VLAN tags.
    pub l2ctl: u64,
    /// Router advertisements and redirects.
    pub ra: u64,
    /// DHCP/DHCPv6 server messages.
    pub dhcp: u64,
    /// Spoofed addresses and disallowed ethertypes.
    pub spoof: u64,
}

impl DropCounters {
    /// The counter of one reason.
    pub fn get(&self, r: DropReason) -> u64 {
        match r {
            DropReason::Mac => self.mac,
            DropReason::L2Control => self.l2ctl,
            DropReason::RouterAdvert => self.ra,
            DropReason::DhcpServer => self.dhcp,
            DropReason::Spoof => self.spoof,
        }
    }

    fn slot(&mut self, r: DropReason) -> &mut u64 {
        match r {
            DropReason::Mac => &mut self.mac,
            DropReason::L2Control => &mut self.l2ctl,
            DropReason::RouterAdvert => &mut self.ra,
            DropReason::DhcpServer => &mut self.dhcp,
            DropReason::Spoof => &mut self.spoof,
        }
    }

    /// All drops.
    pub fn total(&self) -> u64 {
        DropReason::ALL
            .iter()
            .fold(0u64, |a, r| a.saturating_add(self.get(*r)))
    }
}

/// The filter installed on a vif, read back from the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FilterStatus {
    /// The vif.
    pub ifname: String,
    /// Mode in force (from the table's userdata).
    pub mode: FilterMode,
    /// Packets dropped so far, per reason.
    pub drops: DropCounters,
}

impl FilterStatus {
    /// The port-JSON fields: `"filter":"l2+ip","drops":{"mac":0,...,"total":0}`
    /// (without the enclosing braces), for the agent's publisher.
    pub fn json_fields(&self) -> String {
        let mut s = format!("\"filter\":\"{}\",\"drops\":{{", self.mode);
        for r in DropReason::ALL {
            s.push_str(&format!("\"{}\":{},", r.as_str(), self.drops.get(r)));
        }
        s.push_str(&format!("\"total\":{}}}", self.drops.total()));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(ip: &str) -> FilterSpec {
        FilterSpec {
            ifname: "vif5.0".into(),
            mac: "00:16:3e:00:00:05".parse().unwrap(),
            l2: true,
            ip: Some(IpCidr::parse_list(ip).unwrap()),
        }
    }

    #[test]
    fn network_entries_are_ranges_host_entries_are_hosts() {
        let a = spec("192.0.2.10/24 10.1.0.0/16 2001:db8::/64 2001:db8::7/64 0.0.0.0/0").allowed();
        let got: Vec<String> = a
            .iter()
            .map(|a| format!("{}/{}", a.addr, a.prefix))
            .collect();
        assert_eq!(
            got,
            [
                "0.0.0.0/0",
                "10.1.0.0/16",
                "192.0.2.10/32",
                "2001:db8::/64",
                "2001:db8::7/128"
            ]
        );
    }

    #[test]
    fn userdata_changes_with_the_spec_only() {
        let a = spec("192.0.2.10");
        assert_eq!(a.userdata(), spec("192.0.2.10/32").userdata());
        assert!(a.userdata().starts_with("drvdom/1 l2+ip "));
        assert_ne!(a.userdata(), spec("192.0.2.11").userdata());
        let mut b = a.clone();
        b.l2 = false;
        assert!(b.userdata().starts_with("drvdom/1 ip "));
    }

    #[test]
    fn status_json_fields() {
        let s = FilterStatus {
            ifname: "vif5.0".into(),
            mode: FilterMode::L2Ip,
            drops: DropCounters {
                mac: 3,
                spoof: 2,
                ..DropCounters::default()
            },
        };
        assert_eq!(
            s.json_fields(),
            "\"filter\":\"l2+ip\",\"drops\":{\"mac\":3,\"l2ctl\":0,\"ra\":0,\"dhcp\":0,\"spoof\":2,\"total\":5}"
        );
        assert_eq!(FilterMode::parse("l2+ip"), Some(FilterMode::L2Ip));
        assert_eq!(FilterMode::parse("x"), None);
    }
}
