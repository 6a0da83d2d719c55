//! The per-vif ruleset, built sans-IO from a [`FilterSpec`].
//!
//! One nf_tables table per vif, family `netdev`, named `drvdom-<ifname>`:
//!
//! ```text
//! table netdev drvdom-vif5.0 {            # userdata: "drvdom/1 <mode> <fingerprint>"
//!   counter mac; counter l2ctl; counter ra; counter dhcp; counter spoof
//!   chain ingress { type filter hook ingress device vif5.0 priority -500; policy accept;
//!     ether saddr != <mac>                                 counter mac drop    # l2 or ip
//!     ether daddr & ff:ff:ff:ff:ff:f0 == 01:80:c2:00:00:00 counter l2ctl drop  # l2
//!     ether type ip jump ip4; ether type ip6 jump ip6      # l2 or ip
//!     ether type arp jump arp                              # ip
//!     ether type { 8021q, 8021ad, 0x9100 } counter l2ctl drop                  # l2 without ip
//!     counter spoof drop                                                       # ip
//!   }
//!   chain ip4 { tcp, ip saddr <each allowed> accept                            # l2 and ip
//!               icmp type redirect counter ra drop; udp sport 67 counter dhcp drop  # l2
//!               ip saddr <each allowed> accept; ip saddr 0.0.0.0 udp 68->67 accept;
//!               counter spoof drop }                                           # ip
//!   chain ip6 { icmpv6 type { nd-router-advert, nd-redirect } counter ra drop;
//!               udp sport 547 counter dhcp drop                                # l2
//!               icmpv6 type nd-neighbor-advert jump na; ip6 saddr <link-local> accept;
//!               ip6 saddr <each allowed> accept;
//!               ip6 saddr :: icmpv6 type { rs, ns, mld2 report } accept; counter spoof drop }  # ip
//!   chain na  { target <link-local or allowed> return; counter spoof drop }
//!   chain arp { arp header != ethernet/ipv4 drop; arp sha != <mac> drop;
//!               arp spa <each allowed> accept; arp spa 0.0.0.0 accept; counter spoof drop }
//! }
//! ```
//!
//! A stale table is replaced in one nfnetlink batch (`DELTABLE` of the old
//! one, then everything anew), so a re-install never leaves the vif
//! unfiltered and never duplicates a rule.

use std::net::IpAddr;

use super::expr::{Base, CmpOp, Expr, MetaKey, Verdict};
use super::wire::{
    Msg, MsgBuf, NF_NETDEV_INGRESS, NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END, NFNL_SUBSYS_NFTABLES,
    NFPROTO_NETDEV, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_REQUEST, chain, hook, obj, rule,
    table,
};
use super::{Allowed, DropReason, FilterSpec};

/// Prefix of every table this crate owns.
pub const TABLE_PREFIX: &str = "drvdom-";
/// Version tag at the start of the table's userdata.
pub(crate) const USERDATA_TAG: &str = "drvdom/1";
/// Priority of the ingress hook: before ordinary `netdev` filter chains (0).
pub(crate) const INGRESS_PRIORITY: i32 = -500;

/// `NF_ACCEPT` as a chain policy.
const POLICY_ACCEPT: u32 = 1;

const ETH_P_IP: [u8; 2] = [0x08, 0x00];
const ETH_P_ARP: [u8; 2] = [0x08, 0x06];
const ETH_P_IPV6: [u8; 2] = [0x86, 0xdd];
/// 802.1Q, 802.1ad and the pre-standard QinQ type: a guest port is an
/// access port, never a trunk.
const VLAN_TYPES: [[u8; 2]; 3] = [[0x81, 0x00], [0x88, 0xa8], [0x91, 0x00]];
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ICMPV6: u8 = 58;
/// ICMPv6 router advertisement and redirect (RFC 4861 §4.2, §4.5).
const ND_ROUTER_ADVERT: u8 = 134;
const ND_REDIRECT: u8 = 137;
/// ICMPv6 router solicitation, neighbour solicitation/advertisement, MLDv2 report.
const ND_ROUTER_SOLICIT: u8 = 133;
const ND_NEIGHBOR_SOLICIT: u8 = 135;
const ND_NEIGHBOR_ADVERT: u8 = 136;
const MLD2_REPORT: u8 = 143;
/// ICMP redirect (RFC 792).
const ICMP_REDIRECT: u8 = 5;
/// DHCP server port (RFC 2131) and DHCPv6 server/relay port (RFC 8415).
const DHCP_SERVER_PORT: u16 = 67;
const DHCP_CLIENT_PORT: u16 = 68;
const DHCPV6_SERVER_PORT: u16 = 547;
/// ARP header of Ethernet/IPv4: htype 1, ptype 0x0800, hlen 6, plen 4 (RFC 826).
const ARP_ETH_IPV4: [u8; 6] = [0x00, 0x01, 0x08, 0x00, 0x06, 0x04];
/// `ff:ff:ff:ff:ff:f0` / `01:80:c2:00:00:00`: IEEE 802.1D reserved
/// link-local group addresses 01:80:c2:00:00:00..0f (STP, pause, LACP, LLDP…).
const LINK_LOCAL_MASK: [u8; 6] = [0xff, 0xff, 0xff, 0xff, 0xff, 0xf0];
const LINK_LOCAL_GROUP: [u8; 6] = [0x01, 0x80, 0xc2, 0x00, 0x00, 0x00];

/// The table of a vif.
pub fn table_name(ifname: &str) -> String {
    format!("{TABLE_PREFIX}{ifname}")
}

/// A rule: the chain it goes in and its expressions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rule {
    pub chain: &'static str,
    pub exprs: Vec<Expr>,
}

fn payload(base: Base, offset: u32, len: u32) -> Expr {
    Expr::Payload { base, offset, len }
}

fn eq(data: &[u8]) -> Expr {
    Expr::Cmp(CmpOp::Eq, data.to_vec())
}

fn drop(reason: DropReason) -> [Expr; 2] {
    [
        Expr::Counter(reason.as_str().to_string()),
        Expr::Verdict(Verdict::Drop),
    ]
}

fn ether_type() -> Expr {
    payload(Base::Link, 12, 2)
}

fn l4(proto: u8) -> [Expr; 2] {
    [Expr::Meta(MetaKey::L4Proto), eq(&[proto])]
}

/// `<value at base/offset> within <allowed>`: load, mask if a range, compare.
fn matches_addr(base: Base, offset: u32, a: &Allowed) -> Vec<Expr> {
    let bytes = match a.addr {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    };
    let len = u32::try_from(bytes.len()).unwrap_or(16);
    let mut v = vec![payload(base, offset, len)];
    let bits = usize::from(a.prefix);
    if bits < bytes.len() * 8 {
        let mask: Vec<u8> = (0..bytes.len())
            .map(|i| {
                let keep = bits.saturating_sub(i * 8).min(8);
                if keep == 0 { 0 } else { 0xffu8 << (8 - keep) }
            })
            .collect();
        v.push(Expr::Mask(mask));
    }
    v.push(eq(&bytes));
    v
}

/// The rules of one vif's table, in order. The common case leaves early:
/// a frame is dispatched on its ethertype right after the two Ethernet
/// checks, and a TCP segment from an allowed IPv4 source is accepted
/// before the ICMP/UDP checks that cannot concern it.
pub(crate) fn rules(spec: &FilterSpec) -> Vec<Rule> {
    let mut out = Vec::new();
    let mut push = |chain: &'static str, exprs: Vec<Expr>| out.push(Rule { chain, exprs });
    let mac = spec.mac.0.to_vec();
    let allowed = spec.allowed();
    let ip = spec.ip.is_some();
    let accept = Expr::Verdict(Verdict::Accept);
    let v4: Vec<&Allowed> = allowed.iter().filter(|a| a.addr.is_ipv4()).collect();
    let v6: Vec<&Allowed> = allowed.iter().filter(|a| a.addr.is_ipv6()).collect();
    let l4_port = |proto: u8, port: u16, reason: DropReason| {
        let mut r = l4(proto).to_vec();
        r.extend([payload(Base::Transport, 0, 2), eq(&port.to_be_bytes())]);
        r.extend(drop(reason));
        r
    };
    let icmp_type = |proto: u8, ty: u8| {
        let mut r = l4(proto).to_vec();
        r.extend([payload(Base::Transport, 0, 1), eq(&[ty])]);
        r.extend(drop(DropReason::RouterAdvert));
        r
    };

    // ingress: Ethernet source, link-local groups, then by ethertype.
    if spec.l2 || ip {
        let mut r = vec![
            payload(Base::Link, 6, 6),
            Expr::Cmp(CmpOp::Neq, mac.clone()),
        ];
        r.extend(drop(DropReason::Mac));
        push("ingress", r);
    }
    if spec.l2 {
        let mut r = vec![
            payload(Base::Link, 0, 6),
            Expr::Mask(LINK_LOCAL_MASK.to_vec()),
            eq(&LINK_LOCAL_GROUP),
        ];
        r.extend(drop(DropReason::L2Control));
        push("ingress", r);
    }
    let mut dispatch = vec![(ETH_P_IP, "ip4"), (ETH_P_IPV6, "ip6")];
    if ip {
        dispatch.push((ETH_P_ARP, "arp"));
    }
    if spec.l2 || ip {
        for (t, chain) in &dispatch {
            push(
                "ingress",
                vec![ether_type(), eq(t), Expr::Verdict(Verdict::Jump(chain))],
            );
        }
    }
    // With an allow-list every other ethertype is dropped below anyway
    // (counted as `spoof`); without one, VLAN tags are dropped here.
    if spec.l2 && !ip {
        for t in VLAN_TYPES {
            let mut r = vec![ether_type(), eq(&t)];
            r.extend(drop(DropReason::L2Control));
            push("ingress", r);
        }
    }
    if ip {
        push("ingress", drop(DropReason::Spoof).to_vec());
    }

    // ip4: TCP from an allowed source first; ICMP redirects and DHCP
    // server replies; then the allowed sources, a DHCP client without an
    // address, and nothing else.
    if ip && spec.l2 {
        for a in &v4 {
            let mut r = l4(IPPROTO_TCP).to_vec();
            r.extend(matches_addr(Base::Network, 12, a));
            r.push(accept.clone());
            push("ip4", r);
        }
    }
    if spec.l2 {
        push("ip4", icmp_type(IPPROTO_ICMP, ICMP_REDIRECT));
        push(
            "ip4",
            l4_port(IPPROTO_UDP, DHCP_SERVER_PORT, DropReason::DhcpServer),
        );
    }
    if ip {
        for a in &v4 {
            let mut r = matches_addr(Base::Network, 12, a);
            r.push(accept.clone());
            push("ip4", r);
        }
        let mut r = vec![payload(Base::Network, 12, 4), eq(&[0; 4])];
        r.extend(l4(IPPROTO_UDP));
        let mut ports = DHCP_CLIENT_PORT.to_be_bytes().to_vec();
        ports.extend(DHCP_SERVER_PORT.to_be_bytes());
        r.extend([payload(Base::Transport, 0, 4), eq(&ports), accept.clone()]);
        push("ip4", r);
        push("ip4", drop(DropReason::Spoof).to_vec());
    }

    // ip6: router advertisements, redirects and DHCPv6 server messages;
    // then neighbour advertisements only for our own addresses, and the
    // source: the MAC's link-local address, an allowed one, or :: for the
    // messages a host sends before it has an address (RFC 4862 DAD, RFC 3810).
    if spec.l2 {
        push("ip6", icmp_type(IPPROTO_ICMPV6, ND_ROUTER_ADVERT));
        push("ip6", icmp_type(IPPROTO_ICMPV6, ND_REDIRECT));
        push(
            "ip6",
            l4_port(IPPROTO_UDP, DHCPV6_SERVER_PORT, DropReason::DhcpServer),
        );
    }
    if !ip {
        return out;
    }
    let ll = Allowed {
        addr: IpAddr::V6(spec.mac.to_link_local()),
        prefix: 128,
    };
    let mut r = l4(IPPROTO_ICMPV6).to_vec();
    r.extend([
        payload(Base::Transport, 0, 1),
        eq(&[ND_NEIGHBOR_ADVERT]),
        Expr::Verdict(Verdict::Jump("na")),
    ]);
    push("ip6", r);
    for a in std::iter::once(&ll).chain(v6.iter().copied()) {
        let mut r = matches_addr(Base::Network, 8, a);
        r.push(accept.clone());
        push("ip6", r);
    }
    for ty in [ND_ROUTER_SOLICIT, ND_NEIGHBOR_SOLICIT, MLD2_REPORT] {
        let mut r = vec![payload(Base::Network, 8, 16), eq(&[0; 16])];
        r.extend(l4(IPPROTO_ICMPV6));
        r.extend([payload(Base::Transport, 0, 1), eq(&[ty]), accept.clone()]);
        push("ip6", r);
    }
    push("ip6", drop(DropReason::Spoof).to_vec());
    // The NA target is at offset 8 of the ICMPv6 message (RFC 4861 §4.4).
    for a in std::iter::once(&ll).chain(v6.iter().copied()) {
        let mut r = matches_addr(Base::Transport, 8, a);
        r.push(Expr::Verdict(Verdict::Return));
        push("na", r);
    }
    push("na", drop(DropReason::Spoof).to_vec());

    // ARP: Ethernet/IPv4 only, our MAC as sender, an allowed sender address
    // or 0.0.0.0 (RFC 5227 probes).
    let mut r = vec![
        payload(Base::Network, 0, 6),
        Expr::Cmp(CmpOp::Neq, ARP_ETH_IPV4.to_vec()),
    ];
    r.extend(drop(DropReason::Spoof));
    push("arp", r);
    let mut r = vec![payload(Base::Network, 8, 6), Expr::Cmp(CmpOp::Neq, mac)];
    r.extend(drop(DropReason::Spoof));
    push("arp", r);
    for a in &v4 {
        let mut r = matches_addr(Base::Network, 14, a);
        r.push(accept.clone());
        push("arp", r);
    }
    push(
        "arp",
        vec![payload(Base::Network, 14, 4), eq(&[0; 4]), accept.clone()],
    );
    push("arp", drop(DropReason::Spoof).to_vec());
    out
}

/// The regular chains `spec` needs, in creation order.
pub(crate) fn chains(spec: &FilterSpec) -> Vec<&'static str> {
    let mut v = Vec::new();
    if spec.l2 || spec.ip.is_some() {
        v.extend(["ip4", "ip6"]);
    }
    if spec.ip.is_some() {
        v.extend(["arp", "na"]);
    }
    v
}

/// One nfnetlink batch under construction.
#[derive(Debug)]
pub(crate) struct Batch {
    seq: u32,
    first: u32,
    msgs: Vec<Vec<u8>>,
}

impl Batch {
    pub(crate) fn new(seq: u32) -> Batch {
        let mut b = Batch {
            seq,
            first: 0,
            msgs: Vec::new(),
        };
        b.first = b.next();
        let m = MsgBuf::new(
            NFNL_MSG_BATCH_BEGIN,
            NLM_F_REQUEST,
            b.first,
            0,
            NFNL_SUBSYS_NFTABLES,
        );
        b.msgs.push(m.finish());
        b
    }

    fn next(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Start an nf_tables message.
    fn msg(&mut self, msg: Msg, flags: u16) -> MsgBuf {
        let seq = self.next();
        MsgBuf::nft(msg, flags, seq, NFPROTO_NETDEV)
    }

    fn push(&mut self, m: MsgBuf) {
        self.msgs.push(m.finish());
    }

    /// `NEWTABLE` (create if missing) then `DELTABLE`: removes the table
    /// whether or not it existed, without a lookup and without ENOENT.
    pub(crate) fn delete_table(&mut self, name: &str) {
        let mut m = self.msg(Msg::NewTable, NLM_F_CREATE);
        m.str(table::NAME, name);
        self.push(m);
        let mut m = self.msg(Msg::DelTable, 0);
        m.str(table::NAME, name);
        self.push(m);
    }

    /// Create the whole table of `spec` (after [`Batch::delete_table`]).
    pub(crate) fn create_filter(&mut self, spec: &FilterSpec) {
        let name = table_name(&spec.ifname);
        let mut m = self.msg(Msg::NewTable, NLM_F_CREATE);
        m.str(table::NAME, &name)
            .attr(table::USERDATA, spec.userdata().as_bytes());
        self.push(m);
        for reason in DropReason::ALL {
            let mut m = self.msg(Msg::NewObj, NLM_F_CREATE);
            m.str(obj::TABLE, &name)
                .str(obj::NAME, reason.as_str())
                .be32(obj::TYPE, obj::COUNTER);
            // An empty NFTA_OBJ_DATA: the counter starts at zero.
            m.begin(obj::DATA).end();
            self.push(m);
        }
        for c in chains(spec) {
            let mut m = self.msg(Msg::NewChain, NLM_F_CREATE);
            m.str(chain::TABLE, &name).str(chain::NAME, c);
            self.push(m);
        }
        let mut m = self.msg(Msg::NewChain, NLM_F_CREATE);
        m.str(chain::TABLE, &name).str(chain::NAME, "ingress");
        m.begin(chain::HOOK)
            .be32(hook::HOOKNUM, NF_NETDEV_INGRESS)
            .attr(hook::PRIORITY, &INGRESS_PRIORITY.to_be_bytes())
            .str(hook::DEV, &spec.ifname)
            .end();
        m.be32(chain::POLICY, POLICY_ACCEPT)
            .str(chain::TYPE, "filter");
        self.push(m);
        for r in rules(spec) {
            let mut m = self.msg(Msg::NewRule, NLM_F_CREATE | NLM_F_APPEND);
            m.str(rule::TABLE, &name).str(rule::CHAIN, r.chain);
            m.begin(rule::EXPRESSIONS);
            for e in &r.exprs {
                e.encode(&mut m);
            }
            m.end();
            self.push(m);
        }
    }

    /// Close the batch. Only its last message asks for an acknowledgement:
    /// the kernel reports an error for every failing message, in order,
    /// before that last acknowledgement (and aborts the whole batch), so
    /// the acknowledgement arriving with no error before it means success.
    /// Returns the datagram, the BEGIN sequence number and the one
    /// acknowledged.
    pub(crate) fn finish(mut self) -> (Vec<u8>, u32, u32) {
        let last = self.seq;
        if let Some(m) = self.msgs.last_mut().filter(|_| last != self.first) {
            let flags = u16::from_ne_bytes([m[6], m[7]]) | NLM_F_ACK;
            m[6..8].copy_from_slice(&flags.to_ne_bytes());
        }
        let seq = self.next();
        let m = MsgBuf::new(
            NFNL_MSG_BATCH_END,
            NLM_F_REQUEST,
            seq,
            0,
            NFNL_SUBSYS_NFTABLES,
        );
        self.msgs.push(m.finish());
        (self.msgs.concat(), self.first, last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::wire::messages;
    use xentypes::IpCidr;

    fn spec(ip: Option<&str>) -> FilterSpec {
        FilterSpec {
            ifname: "vif5.0".into(),
            mac: "00:16:3e:00:00:05".parse().unwrap(),
            l2: true,
            ip: ip.map(|s| IpCidr::parse_list(s).unwrap()),
        }
    }

    #[test]
    fn l2_only_has_no_address_chains() {
        let s = spec(None);
        let r = rules(&s);
        assert_eq!(chains(&s), ["ip4", "ip6"]);
        let count = |c: &str| r.iter().filter(|r| r.chain == c).count();
        // mac, link-local group, 2 jumps, 3 VLAN types.
        assert_eq!(count("ingress"), 7);
        assert_eq!(count("ip4"), 2);
        assert_eq!(count("ip6"), 3);
        assert!(
            r.iter()
                .all(|r| ["ingress", "ip4", "ip6"].contains(&r.chain))
        );
    }

    #[test]
    fn host_entries_compare_exactly_and_ranges_are_masked() {
        let r = rules(&spec(Some("192.0.2.10/24 10.1.0.0/16 2001:db8::5/64")));
        // Skip the TCP fast path (2 rules) and the two hygiene rules.
        let ip4: Vec<&Rule> = r.iter().filter(|r| r.chain == "ip4").skip(4).collect();
        // Sorted: 10.1.0.0/16 first. 192.0.2.10/24 is a host address:
        // exact compare, no mask.
        assert_eq!(
            ip4[1].exprs,
            vec![
                payload(Base::Network, 12, 4),
                eq(&[192, 0, 2, 10]),
                Expr::Verdict(Verdict::Accept)
            ]
        );
        // 10.1.0.0/16 is a network: masked.
        assert_eq!(ip4[0].exprs[1], Expr::Mask(vec![255, 255, 0, 0]));
        assert_eq!(ip4[0].exprs[2], eq(&[10, 1, 0, 0]));
        let ip6: Vec<&Rule> = r.iter().filter(|r| r.chain == "ip6").collect();
        // RA, redirect, DHCPv6; NA jump, link-local, 2001:db8::5, 3 x "::", drop.
        assert_eq!(ip6.len(), 3 + 1 + 1 + 1 + 3 + 1);
        let ll = "fe80::216:3eff:fe00:5"
            .parse::<std::net::Ipv6Addr>()
            .unwrap();
        assert_eq!(ip6[4].exprs[1], eq(&ll.octets()));
    }

    #[test]
    fn batch_is_framed_and_every_message_acked() {
        let mut b = Batch::new(100);
        b.delete_table("drvdom-vif5.0");
        b.create_filter(&spec(Some("192.0.2.10")));
        let (bytes, first, acked) = b.finish();
        let msgs: Vec<_> = messages(&bytes).collect();
        assert_eq!(msgs.first().unwrap().ty, NFNL_MSG_BATCH_BEGIN);
        assert_eq!(msgs.last().unwrap().ty, NFNL_MSG_BATCH_END);
        assert_eq!(msgs[0].seq, first);
        let seqs: Vec<u32> = msgs.iter().map(|m| m.seq).collect();
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
        // Only the last nf_tables message asks for an acknowledgement.
        let with_ack: Vec<u32> = msgs
            .iter()
            .filter(|m| m.flags & NLM_F_ACK != 0)
            .map(|m| m.seq)
            .collect();
        assert_eq!(with_ack, [acked]);
        assert_eq!(acked, msgs[msgs.len() - 2].seq);
    }
}
