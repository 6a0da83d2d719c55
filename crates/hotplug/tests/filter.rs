//! The vif filter against the real kernel with real packets: a hostile
//! guest on a bridge with a victim guest and an uplink to an "outside"
//! host, each guest and the outside in its own network namespace, the
//! driver domain in the test thread's namespace, veths standing in for
//! netback's vifs, crafted frames sent on raw sockets.

// Test harness: failing loudly is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{in_netns, ip};
use hotplug::{BridgeConfig, DropCounters, FilterMode, Hotplug, LinkOps, VifOffline, VifOnline};
use testutil::packet::{self, RawSocket, contains, in_named_netns};
use xentypes::{IpCidr, MacAddr};

const G1_MAC: [u8; 6] = [0x00, 0x16, 0x3e, 0x00, 0x00, 0x01];
const G2_MAC: [u8; 6] = [0x00, 0x16, 0x3e, 0x00, 0x00, 0x02];
const ROUTER_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
const BCAST: [u8; 6] = [0xff; 6];
const ATTACK: &[u8] = b"DRVDOM-ATTACK";
const SENTINEL: &[u8] = b"DRVDOM-SENTINEL";
/// Random source MACs per flood.
const FLOOD: u32 = 400;

/// The tests of this file flood the host's shared receive backlog: one at
/// a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// Named namespaces (guests, outside), deleted on drop.
struct Ns(String);

impl Ns {
    fn new(tag: &str) -> Ns {
        let n = testutil::unique_name(tag);
        ip(&format!("netns add {n}"));
        ip(&format!("-n {n} link set lo up"));
        Ns(n)
    }
    fn ip(&self, args: &str) -> String {
        ip(&format!("-n {} {args}", self.0))
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// The driver domain (this thread's namespace): `xenbr0` with uplink `up0`
/// to the outside (192.0.2.1, MAC 02:00:00:00:00:01), guests g1 (vif1.0,
/// .11) and g2 (vif2.0, .12), both with their `eth0` in their own namespace.
struct World {
    hp: Hotplug,
    g1: Ns,
    g2: Ns,
    out: Ns,
}

fn guest_req(vif: &str, mac: [u8; 6], ips: &str) -> VifOnline {
    VifOnline::new(vif)
        .guest_mac(MacAddr(mac))
        .ip(IpCidr::parse_list(ips).unwrap())
}

async fn world(filtered: bool) -> World {
    let (g1, g2, out) = (Ns::new("dvg1"), Ns::new("dvg2"), Ns::new("dvout"));
    ip("link add up0 type veth peer name out0");
    ip(&format!("link set out0 netns {}", out.0));
    out.ip("link set out0 address 02:00:00:00:00:01 up");
    out.ip("addr add 192.0.2.1/24 dev out0");
    out.ip("addr add 2001:db8::1/64 dev out0 nodad");
    ip("link set up0 up");
    let hp = Hotplug::connect().unwrap();
    hp.bridge_up(&BridgeConfig {
        bridge: "xenbr0".into(),
        uplink: Some("up0".into()),
    })
    .await
    .unwrap();
    for (ns, vif, mac, addr) in [
        (&g1, "vif1.0", "00:16:3e:00:00:01", "11"),
        (&g2, "vif2.0", "00:16:3e:00:00:02", "12"),
    ] {
        ip(&format!(
            "link add {vif} type veth peer name eth0 netns {}",
            ns.0
        ));
        ns.ip(&format!("link set eth0 address {mac} up"));
        ns.ip(&format!("addr add 192.0.2.{addr}/24 dev eth0"));
        ns.ip(&format!("addr add 2001:db8::{addr}/64 dev eth0 nodad"));
    }
    for (vif, mac, ips) in [
        ("vif1.0", G1_MAC, "192.0.2.11/24 2001:db8::11/64"),
        ("vif2.0", G2_MAC, "192.0.2.12/24 2001:db8::12/64"),
    ] {
        let req = if filtered {
            guest_req(vif, mac, ips)
        } else {
            VifOnline::new(vif).l2(false)
        };
        let r = hp.vif_online(&req).await.unwrap();
        let want = if filtered {
            FilterMode::L2Ip
        } else {
            FilterMode::Off
        };
        assert_eq!(r.filter, want);
    }
    // The outside and g2 know each other (also teaches the bridge the
    // router's MAC on up0).
    let ok = Command::new("ip")
        .args([
            "netns",
            "exec",
            &out.0,
            "ping",
            "-c",
            "5",
            "-i",
            "0.2",
            "-W",
            "5",
            "192.0.2.12",
        ])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    if !ok.success() {
        let st1 = hp.filter_status("vif1.0").await;
        let st2 = hp.filter_status("vif2.0").await;
        panic!(
            "outside cannot ping g2 before the attack: {st1:?} {st2:?}\n{}\n{}",
            ip("-d link show"),
            String::from_utf8_lossy(
                &Command::new("bridge")
                    .args(["fdb", "show"])
                    .output()
                    .unwrap()
                    .stdout
            )
        );
    }
    World { hp, g1, g2, out }
}

/// Every hostile frame guest 1 sends, each carrying [`ATTACK`]; returns
/// them with the drop counters they must raise.
fn attack_frames() -> (Vec<Vec<u8>>, DropCounters) {
    let g1_ll = MacAddr(G1_MAC).to_link_local();
    let mut f = Vec::new();
    let mut c = DropCounters::default();
    let udp_out = |src: &str| packet::ipv4_udp(v4(src), v4("192.0.2.1"), 4000, 4000, ATTACK);
    // Another guest's MAC, the uplink router's MAC.
    f.push(packet::eth(
        BCAST,
        G2_MAC,
        packet::ETH_P_IP,
        &udp_out("192.0.2.12"),
    ));
    f.push(packet::eth(
        ROUTER_MAC,
        ROUTER_MAC,
        packet::ETH_P_IP,
        &udp_out("192.0.2.1"),
    ));
    c.mac += 2;
    // A flood of random source MACs (locally administered unicast); kept
    // under the kernel's per-CPU receive backlog (netdev_max_backlog,
    // 1000), shared by every namespace: a bigger burst loses frames before
    // any filter sees them, the probe's included.
    for i in 0..FLOOD {
        let b = i.to_be_bytes();
        let src = [0x02, 0xaa, b[0], b[1], b[2], b[3]];
        f.push(packet::eth(
            BCAST,
            src,
            packet::ETH_P_IP,
            &udp_out("192.0.2.11"),
        ));
        c.mac += 1;
    }
    // STP BPDU, VLAN-tagged frame.
    f.push(packet::bpdu(G1_MAC, ATTACK));
    let mut tagged = vec![0x00, 0x05, 0x08, 0x00];
    tagged.extend(udp_out("192.0.2.11"));
    f.push(packet::eth(BCAST, G1_MAC, packet::ETH_P_8021Q, &tagged));
    // With an allow-list a VLAN tag is just another ethertype: `spoof`.
    c.l2ctl += 1;
    c.spoof += 1;
    // Router advertisement from the guest's own link-local address.
    f.push(packet::eth(
        [0x33, 0x33, 0, 0, 0, 1],
        G1_MAC,
        packet::ETH_P_IPV6,
        &packet::router_advert(g1_ll, ATTACK),
    ));
    c.ra += 1;
    // DHCP offer and DHCPv6 advertise from the guest's own addresses.
    f.push(packet::eth(
        BCAST,
        G1_MAC,
        packet::ETH_P_IP,
        &packet::ipv4_udp(v4("192.0.2.11"), v4("255.255.255.255"), 67, 68, ATTACK),
    ));
    f.push(packet::eth(
        [0x33, 0x33, 0, 1, 0, 2],
        G1_MAC,
        packet::ETH_P_IPV6,
        &packet::ipv6_udp(g1_ll, v6("ff02::1:2"), 547, 546, ATTACK),
    ));
    c.dhcp += 2;
    // A foreign IPv4 and IPv6 source, a gratuitous ARP for g2's address, a
    // neighbour advertisement for g2's IPv6 address.
    f.push(packet::eth(
        BCAST,
        G1_MAC,
        packet::ETH_P_IP,
        &udp_out("192.0.2.99"),
    ));
    f.push(packet::eth(
        [0x33, 0x33, 0, 0, 0, 1],
        G1_MAC,
        packet::ETH_P_IPV6,
        &packet::ipv6_udp(v6("2001:db8::99"), v6("ff02::1"), 4000, 4000, ATTACK),
    ));
    let mut garp = packet::arp(2, G1_MAC, v4("192.0.2.12"), BCAST, v4("192.0.2.12"));
    garp.extend_from_slice(ATTACK);
    f.push(packet::eth(BCAST, G1_MAC, packet::ETH_P_ARP, &garp));
    f.push(packet::eth(
        [0x33, 0x33, 0, 0, 0, 1],
        G1_MAC,
        packet::ETH_P_IPV6,
        &packet::neighbor_advert(g1_ll, v6("2001:db8::12"), ATTACK),
    ));
    c.spoof += 4;
    (f, c)
}

/// A legitimate frame from guest 1 that must get through.
fn sentinel() -> Vec<u8> {
    packet::eth(
        BCAST,
        G1_MAC,
        packet::ETH_P_IP,
        &packet::ipv4_udp(v4("192.0.2.11"), v4("192.0.2.255"), 4000, 4000, SENTINEL),
    )
}

/// Capture on `ifname` in namespace `ns` until the sentinel arrives (or
/// 10 s pass); returns how many frames carried [`ATTACK`] and whether the
/// sentinel was seen. `ready` is signalled once the socket is open.
fn capture(
    ns: &str,
    ifname: &'static str,
    ready: std::sync::mpsc::Sender<()>,
) -> std::thread::JoinHandle<(usize, bool)> {
    in_named_netns(ns, move || {
        let s = RawSocket::open(ifname).unwrap();
        ready.send(()).unwrap();
        let mut hits = 0;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match s.recv(left).unwrap() {
                Some(frame) if contains(&frame, SENTINEL) => return (hits, true),
                Some(frame) if contains(&frame, ATTACK) => hits += 1,
                Some(_) => {}
                None => break,
            }
        }
        (hits, false)
    })
}

/// Send every attack frame from guest 1, then the sentinel.
fn send_from_g1(ns: &str, frames: Vec<Vec<u8>>) {
    in_named_netns(ns, move || {
        let s = RawSocket::open("eth0").unwrap();
        for f in &frames {
            s.send(f).unwrap();
        }
        s.send(&sentinel()).unwrap();
    })
    .join()
    .unwrap();
}

/// Ping every 10 ms from `ns` to `dst`, `n` times; returns (sent, received).
fn ping_probe(ns: &str, dst: &str, n: u32) -> std::process::Child {
    Command::new("ip")
        .args(["netns", "exec", ns, "ping", "-n", "-i", "0.01", "-W", "1"])
        .arg("-c")
        .arg(n.to_string())
        .arg(dst)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn probe_result(child: std::process::Child) -> (u32, u32) {
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_else(|| panic!("no ping summary in {text}"));
    let num = |key: &str| -> u32 {
        let before = line.split(key).next().unwrap();
        before.split_whitespace().last().unwrap().parse().unwrap()
    };
    (num(" packets transmitted"), num(" received"))
}

fn nft_table(name: &str) -> String {
    let out = Command::new("nft")
        .args(["list", "table", "netdev", name])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "nft list table netdev {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every unicast entry of the bridge's FDB (not the ports' own address
/// fe:ff:ff:ff:ff:ff nor the devices' multicast lists), as (mac, port index).
async fn fdb(hp: &Hotplug) -> Vec<(MacAddr, u32)> {
    let br = hp.ops().link_by_name("xenbr0").await.unwrap().unwrap();
    let mut v: Vec<(MacAddr, u32)> = hp
        .ops()
        .fdb(&br)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.mac.is_unicast() && e.mac != MacAddr::BACKEND)
        .map(|e| (e.mac, e.port))
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Run the whole attack while the outside pings guest 2 every 10 ms.
/// Returns (frames captured at the outside, at guest 2, probe result).
async fn run_attack(w: &World, frames: Vec<Vec<u8>>) -> (usize, usize, (u32, u32)) {
    let probe = ping_probe(&w.out.0, "192.0.2.12", 200);
    let (tx, rx) = std::sync::mpsc::channel();
    let out_cap = capture(&w.out.0, "out0", tx.clone());
    let g2_cap = capture(&w.g2.0, "eth0", tx);
    rx.recv().unwrap();
    rx.recv().unwrap();
    send_from_g1(&w.g1.0, frames);
    let (out_hits, out_seen) = out_cap.join().unwrap();
    let (g2_hits, g2_seen) = g2_cap.join().unwrap();
    assert!(out_seen, "the sentinel never reached the outside");
    assert!(g2_seen, "the sentinel never reached guest 2");
    (out_hits, g2_hits, probe_result(probe))
}

#[test]
fn hostile_guest_is_contained_and_others_keep_working() {
    testutil::require_root!();
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    testutil::require_cmd!("ip");
    testutil::require_cmd!("ping");
    testutil::require_cmd!("nft");
    in_netns(|| async {
        let w = world(true).await;
        let before = fdb(&w.hp).await;
        let vif1 = w.hp.ops().link_by_name("vif1.0").await.unwrap().unwrap();
        let vif2 = w.hp.ops().link_by_name("vif2.0").await.unwrap().unwrap();
        let up0 = w.hp.ops().link_by_name("up0").await.unwrap().unwrap();
        assert!(
            before.contains(&(MacAddr(G1_MAC), vif1.index)),
            "{before:?}"
        );
        assert!(
            before.contains(&(MacAddr(G2_MAC), vif2.index)),
            "{before:?}"
        );

        let (frames, want) = attack_frames();
        let n = frames.len();
        let (out_hits, g2_hits, (sent, got)) = run_attack(&w, frames).await;
        assert_eq!(out_hits, 0, "attack frames reached the uplink");
        assert_eq!(g2_hits, 0, "attack frames reached guest 2");
        assert_eq!(
            (sent, got),
            (200, 200),
            "the 10 ms probe to guest 2 lost replies"
        );

        // Every attack frame was counted, under its reason.
        let st = w.hp.filter_status("vif1.0").await.unwrap().unwrap();
        assert_eq!(st.mode, FilterMode::L2Ip);
        eprintln!("{n} attack frames; drops {:?}", st.drops);
        for r in hotplug::DropReason::ALL {
            assert!(
                st.drops.get(r) >= want.get(r),
                "{}: {} < {}",
                r.as_str(),
                st.drops.get(r),
                want.get(r)
            );
        }
        assert!(st.drops.total() >= n as u64);

        // The FDB did not grow, and nobody took g2's or the router's MAC.
        let after = fdb(&w.hp).await;
        assert!(
            after
                .iter()
                .all(|(m, p)| *p != vif1.index || *m == MacAddr(G1_MAC)),
            "entries learned on vif1.0: {after:?}"
        );
        assert!(after.contains(&(MacAddr(G2_MAC), vif2.index)), "{after:?}");
        assert!(
            after.contains(&(MacAddr(ROUTER_MAC), up0.index)),
            "{after:?}"
        );
        assert!(
            after.len() <= before.len(),
            "fdb grew: {before:?} -> {after:?}"
        );

        // The kernel's own nft reads our table back.
        let text = nft_table("drvdom-vif1.0");
        for needle in [
            // nft prints our matches as raw payload (no protocol
            // dependency expressions are spent on it).
            "hook ingress device \"vif1.0\" priority -500; policy accept;",
            "@ll,48,48 != 0x163e000001 counter name \"mac\" drop",
            "@nh,96,32 0xc000020b accept",
            "@nh,64,128 0x20010db8000000000000000000000011 accept",
            "@nh,64,128 0xfe8000000000000002163efffe000001 accept",
            "@th,64,128 0x20010db8000000000000000000000011 return",
        ] {
            assert!(text.contains(needle), "{needle} missing in:\n{text}");
        }

        // A replay (agent restart) changes nothing: same table, counters kept.
        let again =
            w.hp.vif_online(&guest_req(
                "vif1.0",
                G1_MAC,
                "192.0.2.11/24 2001:db8::11/64",
            ))
            .await
            .unwrap();
        assert!(!again.changed);
        let st2 = w.hp.filter_status("vif1.0").await.unwrap().unwrap();
        assert!(st2.drops.total() >= st.drops.total());
        let strip = |t: &str| -> String {
            t.lines()
                .map(|l| l.split(" packets ").next().unwrap_or(l))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(strip(&nft_table("drvdom-vif1.0")), strip(&text));

        // The guest changes its MAC: its traffic is dropped.
        let mac_before = st2.drops.mac;
        w.g1.ip("link set eth0 address 00:16:3e:00:00:99");
        let (tx, rx) = std::sync::mpsc::channel();
        let out_cap = capture(&w.out.0, "out0", tx);
        rx.recv().unwrap();
        let pinged = Command::new("ip")
            .args([
                "netns",
                "exec",
                &w.g1.0,
                "ping",
                "-c",
                "3",
                "-i",
                "0.01",
                "-W",
                "1",
                "192.0.2.1",
            ])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(
            !pinged.success(),
            "a guest with a new MAC still reaches the outside"
        );
        w.g1.ip("link set eth0 address 00:16:3e:00:00:01");
        send_from_g1(&w.g1.0, Vec::new());
        let (_, seen) = out_cap.join().unwrap();
        assert!(seen, "after restoring its MAC the guest is reachable again");
        let st3 = w.hp.filter_status("vif1.0").await.unwrap().unwrap();
        assert!(st3.drops.mac > mac_before, "{:?}", st3.drops);

        // Offline removes the table; nothing of it is left.
        assert_eq!(
            w.hp.vif_offline("vif1.0").await.unwrap(),
            VifOffline::Detached
        );
        assert!(w.hp.filter_status("vif1.0").await.unwrap().is_none());
        drop(w);
    });
}

#[test]
fn without_the_filter_the_same_attacks_get_through() {
    // The negative control: proves the harness sees what it checks for.
    testutil::require_root!();
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    testutil::require_cmd!("ip");
    testutil::require_cmd!("ping");
    in_netns(|| async {
        let w = world(false).await;
        let before = fdb(&w.hp).await;
        let (frames, _) = attack_frames();
        let (out_hits, _, _) = run_attack(&w, frames).await;
        // Unfiltered, (nearly) the whole flood gets through and is learned.
        assert!(
            out_hits > FLOOD as usize * 3 / 4,
            "only {out_hits} attack frames reached the outside"
        );
        let after = fdb(&w.hp).await;
        assert!(
            after.len() > before.len() + FLOOD as usize * 3 / 4,
            "fdb did not grow: {}",
            after.len()
        );
    });
}
