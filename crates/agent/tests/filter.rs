//! The agent's per-vif filter end to end, as root: real xenstored, the
//! agent in its driver-domain netns, guests and an "outside" host in their
//! own namespaces behind veths, crafted frames from a hostile guest, and an
//! agent restart (SIGKILL) in the middle.

// Test harness: failing loudly is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{AgentProc, BE, Netns, sh, wait_hotplug, world};
use testutil::packet::{self, RawSocket, contains, in_named_netns};
use xenbus::MacAddr;
use xenbus::{BackendPath, DevId, VifConfig, XenbusState, attach_vif};
use xenstore::{AsyncClient, DomId};

const G5_MAC: [u8; 6] = [0x00, 0x16, 0x3e, 0x00, 0x05, 0x00];
const G6_MAC: [u8; 6] = [0x00, 0x16, 0x3e, 0x00, 0x06, 0x00];
const ROUTER_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
const BCAST: [u8; 6] = [0xff; 6];
const ATTACK: &[u8] = b"DRVDOM-ATTACK";
const SENTINEL: &[u8] = b"DRVDOM-SENTINEL";

fn sock(xsd: &common::Xsd, d: DomId) -> std::path::PathBuf {
    xsd.domdir.join(format!("{}.sock", d.0))
}

fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// Netback's part for a guest in its own namespace `gns`: the vif in the
/// driver domain, its peer as the guest's `eth0` with the guest's MAC and
/// address, then backend state InitWait.
async fn netback_up(
    dd: &Netns,
    gns: &Netns,
    drv: &AsyncClient,
    bp: &BackendPath,
    mac: &str,
    addr: &str,
) {
    let vif = bp.default_vif_name();
    dd.ip(&[
        "link", "add", &vif, "type", "veth", "peer", "name", "eth0", "netns", &gns.name,
    ]);
    gns.ip(&["link", "set", "eth0", "address", mac, "up"]);
    gns.ip(&["addr", "add", addr, "dev", "eth0"]);
    drv.write(&bp.state(), XenbusState::InitWait.to_wire())
        .await
        .unwrap();
}

/// `nft list table netdev drvdom-<vif>` in the driver domain.
fn nft_table(dd: &Netns, vif: &str) -> Option<String> {
    let out = Command::new("ip")
        .args(["netns", "exec", &dd.name, "nft", "list", "table", "netdev"])
        .arg(format!("drvdom-{vif}"))
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The packet count of counter `name` in an `nft list table` text.
fn counter(text: &str, name: &str) -> u64 {
    let start = text
        .find(&format!("counter {name} {{"))
        .unwrap_or_else(|| panic!("no counter {name} in {text}"));
    let rest = &text[start..];
    let p = rest.find("packets ").unwrap() + "packets ".len();
    rest[p..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// The table without its counter values (for comparing rule sets).
fn rules_only(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim_start().starts_with("packets "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Hostile frames from guest 5: guest 6's and the router's MAC, a random
/// source MAC flood, a BPDU, a gratuitous ARP for guest 6's address, a
/// foreign IPv4 source. Then the sentinel, a legitimate frame.
fn attack(gns: &str, flood: u32) {
    let udp = |src: &str| packet::ipv4_udp(v4(src), v4("192.0.2.1"), 4000, 4000, ATTACK);
    let mut f = vec![
        packet::eth(BCAST, G6_MAC, packet::ETH_P_IP, &udp("192.0.2.12")),
        packet::eth(ROUTER_MAC, ROUTER_MAC, packet::ETH_P_IP, &udp("192.0.2.1")),
        packet::bpdu(G5_MAC, ATTACK),
        packet::eth(BCAST, G5_MAC, packet::ETH_P_IP, &udp("192.0.2.99")),
    ];
    let mut garp = packet::arp(2, G5_MAC, v4("192.0.2.12"), BCAST, v4("192.0.2.12"));
    garp.extend_from_slice(ATTACK);
    f.push(packet::eth(BCAST, G5_MAC, packet::ETH_P_ARP, &garp));
    for i in 0..flood {
        let b = i.to_be_bytes();
        f.push(packet::eth(
            BCAST,
            [0x02, 0xbb, b[0], b[1], b[2], b[3]],
            packet::ETH_P_IP,
            &udp("192.0.2.11"),
        ));
    }
    let sentinel = packet::eth(
        BCAST,
        G5_MAC,
        packet::ETH_P_IP,
        &packet::ipv4_udp(v4("192.0.2.11"), v4("192.0.2.255"), 4000, 4000, SENTINEL),
    );
    in_named_netns(gns, move || {
        let s = RawSocket::open("eth0").unwrap();
        for x in &f {
            s.send(x).unwrap();
        }
        s.send(&sentinel).unwrap();
    })
    .join()
    .unwrap();
}

/// Capture on the outside until the sentinel: (attack frames seen, sentinel seen).
fn capture(
    ns: &str,
) -> (
    std::thread::JoinHandle<(usize, bool)>,
    std::sync::mpsc::Receiver<()>,
) {
    let (tx, rx) = std::sync::mpsc::channel();
    let h = in_named_netns(ns, move || {
        let s = RawSocket::open("out0").unwrap();
        tx.send(()).unwrap();
        let mut hits = 0;
        while let Some(f) = s.recv(Duration::from_secs(10)).unwrap() {
            if contains(&f, SENTINEL) {
                return (hits, true);
            }
            if contains(&f, ATTACK) {
                hits += 1;
            }
        }
        (hits, false)
    });
    (h, rx)
}

/// One attack round while the outside pings guest 6 every 10 ms.
fn attack_round(out: &Netns, g5: &Netns, flood: u32) {
    let probe = Command::new("ip")
        .args([
            "netns",
            "exec",
            &out.name,
            "ping",
            "-n",
            "-q",
            "-i",
            "0.01",
            "-W",
            "1",
            "-c",
            "100",
            "192.0.2.12",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (cap, ready) = capture(&out.name);
    ready.recv().unwrap();
    attack(&g5.name, flood);
    let (hits, seen) = cap.join().unwrap();
    assert!(seen, "the sentinel from guest 5 never reached the outside");
    assert_eq!(hits, 0, "attack frames reached the uplink");
    let text = String::from_utf8_lossy(&probe.wait_with_output().unwrap().stdout).into_owned();
    assert!(
        text.contains("100 packets transmitted, 100 received"),
        "the 10 ms probe to guest 6 lost replies: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_guest_is_filtered_and_a_restarted_agent_keeps_the_filters() {
    testutil::require_root!();
    testutil::require_cmd!("nft");
    testutil::require_cmd!("ping");
    let (xsd, c, drv) = world(&[5, 6]).await;
    let dd = Netns::new();
    let (g5, g6, out) = (Netns::new(), Netns::new(), Netns::new());
    let br = testutil::unique_name("br");
    dd.bridge(&br);
    dd.ip(&[
        "link", "add", "up0", "type", "veth", "peer", "name", "out0", "netns", &out.name,
    ]);
    dd.ip(&["link", "set", "up0", "master", &br, "up"]);
    out.ip(&["link", "set", "out0", "address", "02:00:00:00:00:01", "up"]);
    out.ip(&["addr", "add", "192.0.2.1/24", "dev", "out0"]);
    let mut agent = AgentProc::start(&dd, &sock(&xsd, BE), &[]);

    let mut bps = Vec::new();
    for (fe, mac, addr, g) in [
        (5, G5_MAC, "192.0.2.11", &g5),
        (6, G6_MAC, "192.0.2.12", &g6),
    ] {
        let cfg = VifConfig::new(BE)
            .devid(DevId(0))
            .bridge(&br)
            .mac(MacAddr(mac))
            .ip(format!("{addr}/24"));
        attach_vif(&c, DomId(fe), &cfg).await.unwrap();
        let bp = BackendPath::vif(BE, DomId(fe), DevId(0));
        netback_up(
            &dd,
            g,
            &drv,
            &bp,
            &MacAddr(mac).to_string(),
            &format!("{addr}/24"),
        )
        .await;
        bps.push(bp);
    }
    for bp in &bps {
        wait_hotplug(&c, bp, "connected").await;
    }
    let table = nft_table(&dd, "vif5.0").expect("vif5.0 has its filter");
    assert!(table.contains("hook ingress device \"vif5.0\""), "{table}");
    assert!(table.contains("@nh,96,32 0xc000020b accept"), "{table}");
    // Learning is off on the guest ports and their MACs are pinned.
    let links = sh(&["ip", "-n", &dd.name, "-d", "link", "show", "dev", "vif5.0"]);
    assert!(links.contains("learning off"), "{links}");
    let fdb = sh(&["bridge", "-n", &dd.name, "fdb", "show", "br", &br]);
    let pinned = fdb
        .lines()
        .find(|l| l.starts_with("00:16:3e:00:05:00 dev vif5.0 "))
        .unwrap_or_else(|| panic!("guest 5's MAC is not pinned to vif5.0: {fdb}"));
    assert!(
        pinned.contains("sticky") && pinned.contains("static"),
        "{pinned}"
    );

    let ping_g6 = || {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &out.name,
                "ping",
                "-c",
                "1",
                "-W",
                "5",
                "192.0.2.12",
            ])
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success()
    };
    assert!(ping_g6(), "outside cannot reach guest 6");

    attack_round(&out, &g5, 500);
    let t1 = nft_table(&dd, "vif5.0").unwrap();
    assert!(counter(&t1, "mac") >= 502, "{t1}");
    assert!(counter(&t1, "l2ctl") >= 1, "{t1}");
    assert!(counter(&t1, "spoof") >= 2, "{t1}");
    let fdb_count = |s: &str| s.lines().filter(|l| l.contains(" dev vif5.0 ")).count();
    let fdb1 = sh(&["bridge", "-n", &dd.name, "fdb", "show", "br", &br]);
    assert!(
        !fdb1.contains("02:bb:"),
        "flooded MACs were learned: {fdb1}"
    );

    // SIGKILL the agent and start a new one: the replay must keep the very
    // same filters (counters not reset, no rule duplicated).
    agent.kill9();
    let mut agent = AgentProc::start(&dd, &sock(&xsd, BE), &[]);
    testutil::wait_until(
        "the new agent replayed both vifs",
        Duration::from_secs(30),
        || agent.log_text().matches("vif verified").count() >= 2,
    );
    let t2 = nft_table(&dd, "vif5.0").unwrap();
    assert_eq!(
        rules_only(&t2),
        rules_only(&t1),
        "the replay changed the filter"
    );
    assert!(
        counter(&t2, "mac") >= counter(&t1, "mac"),
        "counters were reset"
    );
    let tables = sh(&["ip", "netns", "exec", &dd.name, "nft", "list", "tables"]);
    assert_eq!(tables.matches("drvdom-vif5.0").count(), 1, "{tables}");
    let fdb2 = sh(&["bridge", "-n", &dd.name, "fdb", "show", "br", &br]);
    assert_eq!(fdb_count(&fdb2), fdb_count(&fdb1), "{fdb1}\n---\n{fdb2}");

    attack_round(&out, &g5, 200);
    let t3 = nft_table(&dd, "vif5.0").unwrap();
    assert!(counter(&t3, "mac") >= counter(&t2, "mac") + 202, "{t3}");
    assert!(ping_g6());
    assert!(agent.alive());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_ip_list_fails_the_device_and_relaxed_vif_has_no_filter() {
    testutil::require_root!();
    testutil::require_cmd!("nft");
    let (xsd, c, drv) = world(&[5]).await;
    let dd = Netns::new();
    let br = testutil::unique_name("br");
    dd.bridge(&br);
    let _agent = AgentProc::start(&dd, &sock(&xsd, BE), &[]);

    let bad = VifConfig::new(BE)
        .devid(DevId(0))
        .bridge(&br)
        .ip("192.0.2.300");
    attach_vif(&c, DomId(5), &bad).await.unwrap();
    let bp0 = BackendPath::vif(BE, DomId(5), DevId(0));
    dd.netback_vif(&bp0);
    drv.write(&bp0.state(), XenbusState::InitWait.to_wire())
        .await
        .unwrap();
    wait_hotplug(&c, &bp0, "error").await;
    let err = c.read_string(&bp0.key("hotplug-error")).await.unwrap();
    assert!(err.contains("ip") && err.contains("192.0.2.300"), "{err}");
    assert!(
        dd.link("vif5.0").unwrap().master.is_none(),
        "a vif with a bad ip list was bridged"
    );

    let relaxed = VifConfig::new(BE)
        .devid(DevId(1))
        .bridge(&br)
        .l2_hygiene(false);
    attach_vif(&c, DomId(5), &relaxed).await.unwrap();
    let bp1 = BackendPath::vif(BE, DomId(5), DevId(1));
    dd.netback_vif(&bp1);
    drv.write(&bp1.state(), XenbusState::InitWait.to_wire())
        .await
        .unwrap();
    wait_hotplug(&c, &bp1, "connected").await;
    assert!(
        nft_table(&dd, "vif5.1").is_none(),
        "a relaxed vif got a filter"
    );
}
