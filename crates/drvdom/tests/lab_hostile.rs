//! Issue 14: a hostile guest on the simulated host, with real packets.
//!
//! `lab up --topology` with `ip` on every vif; guest1 is the attacker and
//! acts through `drvdom lab exec guest1 -- drvdom-hostile-guest ...` (its
//! own namespace, /sys and xenstore socket): frames with guest2's MAC and
//! with the uplink router's, a flood of random source MACs, an STP BPDU, a
//! router advertisement, DHCP and DHCPv6 server replies, foreign IPv4 and
//! IPv6 sources, a gratuitous ARP for guest2's address, a MAC change, a
//! foreign address added to its interface and used, and a flood of writes
//! into its frontend directory. Meanwhile the outside pings guest2 every
//! 10 ms and captures what reaches it from the uplink. Then:
//! * the attacker's drop counters, as the agent publishes them (read with
//!   `drvdom bridge show --json`, and `show --format json`), rose by at
//!   least what each attack must raise, per reason;
//! * nothing hostile reached the uplink, while a legitimate frame did;
//! * the bridge's forwarding table did not grow (one static entry for the
//!   attacker's port);
//! * not one of guest2's pings went unanswered;
//! * the agent kept serving: same process, `ready`, and `drvdom verify`
//!   passes every check (vifs Connected, traffic between guests and out).
//!
//! The same again after `drvdom lab restart agent`.

// Helpers outside #[test] fns unwrap and print too: failing loudly is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod lab_support;

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hotplug::LinkOps;
use lab_support::{TestLab, drvdom};
use serde_json::Value;
use testutil::packet::{RawSocket, contains, in_named_netns};

const HOST: &str = r#"
version = 1

[[driver_domain]]
name = "netdd"
nics = ["0000:03:00.0"]

[[driver_domain.bridge]]
name = "xenbr0"
uplink = "0000:03:00.0"

[[guest]]
name = "guest1"

[[guest.vif]]
backend = "netdd"
mac = "00:16:3e:00:00:01"
ip = ["198.51.100.11/24"]

[[guest]]
name = "guest2"

[[guest.vif]]
backend = "netdd"
mac = "00:16:3e:00:00:02"
ip = ["198.51.100.12/24"]
"#;

const ATTACKER_IP: &str = "198.51.100.11";
const VICTIM_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 12);
const VICTIM_MAC: &str = "00:16:3e:00:00:02";
const ROUTER_IP: &str = "198.51.100.1";
const FLOOD: u32 = 500;
const REASONS: [&str; 5] = ["mac", "l2ctl", "ra", "dhcp", "spoof"];

fn hostile_bin() -> Option<PathBuf> {
    let p = drvdom().parent()?.join("drvdom-hostile-guest");
    p.is_file().then_some(p)
}

/// Pings `dst` every 10 ms from the calling thread's namespace until
/// `stop`; returns (sent, answered, longest run of unanswered requests,
/// slowest answer). A request counts as answered if its reply comes within
/// 2 s.
fn pinger(dst: Ipv4Addr, stop: Arc<AtomicBool>) -> (u32, u32, u32, Duration) {
    use nix::sys::socket::{
        AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, SockaddrIn, recv, sendto, socket,
    };
    let fd = socket(
        AddressFamily::Inet,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        SockProtocol::Icmp,
    )
    .unwrap();
    let id = (std::process::id() as u16)
        .wrapping_mul(7)
        .wrapping_add(0x5a5a);
    let dest = SockaddrIn::from(std::net::SocketAddrV4::new(dst, 0));
    let mut sent_at: Vec<Instant> = Vec::new();
    let mut answered: Vec<Option<Duration>> = Vec::new();
    let mut buf = [0u8; 1500];
    let mut next = Instant::now();
    let mut stop_at: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if stop_at.is_none() && stop.load(Ordering::Relaxed) {
            stop_at = Some(now + Duration::from_secs(2));
        }
        if stop_at.is_some_and(|t| now >= t) {
            break;
        }
        if stop_at.is_none() && now >= next {
            let seq = sent_at.len() as u16;
            let mut m = vec![8u8, 0, 0, 0];
            m.extend_from_slice(&id.to_be_bytes());
            m.extend_from_slice(&seq.to_be_bytes());
            m.extend_from_slice(b"drvdom-hostile-ping");
            let mut sum: u32 = m
                .chunks(2)
                .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
                .sum();
            while sum > 0xffff {
                sum = (sum & 0xffff) + (sum >> 16);
            }
            m[2..4].copy_from_slice(&(!(sum as u16)).to_be_bytes());
            let _ = sendto(fd.as_raw_fd(), &m, &dest, MsgFlags::empty());
            sent_at.push(Instant::now());
            answered.push(None);
            next += Duration::from_millis(10);
        }
        loop {
            match recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Ok(n) if sim::icmp::is_echo_reply(false, &buf[..n], id) => {
                    let ihl = usize::from(buf[0] & 0x0f) * 4;
                    let seq = u16::from_be_bytes([buf[ihl + 6], buf[ihl + 7]]) as usize;
                    if let (Some(t), Some(a)) = (sent_at.get(seq), answered.get_mut(seq)) {
                        let rtt = t.elapsed();
                        if a.is_none() && rtt <= Duration::from_secs(2) {
                            *a = Some(rtt);
                        }
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let ok = answered.iter().filter(|a| a.is_some()).count() as u32;
    let mut gap = 0u32;
    let mut run = 0u32;
    for a in &answered {
        if a.is_none() {
            run += 1;
            gap = gap.max(run);
        } else {
            run = 0;
        }
    }
    let slowest = answered.iter().flatten().max().copied().unwrap_or_default();
    (sent_at.len() as u32, ok, gap, slowest)
}

/// Frames from the uplink in the outside namespace: (those carrying one of
/// `hostile`, those carrying `legit`), until `stop`.
fn capture(
    ifname: String,
    hostile: Vec<Vec<u8>>,
    legit: Vec<u8>,
    stop: Arc<AtomicBool>,
) -> (Vec<Vec<u8>>, u32) {
    let sock = RawSocket::open(&ifname).unwrap();
    let mut bad = Vec::new();
    let mut good = 0;
    while !stop.load(Ordering::Relaxed) {
        if let Some(f) = sock.recv(Duration::from_millis(100)).unwrap() {
            if hostile.iter().any(|m| contains(&f, m)) {
                bad.push(f);
            } else if contains(&f, &legit) {
                good += 1;
            }
        }
    }
    (bad, good)
}

struct Lab {
    lab: TestLab,
    file: PathBuf,
    hostile: PathBuf,
}

impl Lab {
    /// `drvdom lab exec guest1 -- drvdom-hostile-guest --marker M ARGS`:
    /// its JSON line.
    fn attack(&self, marker: &str, args: &[&str]) -> Value {
        let mut a: Vec<String> = ["lab", "exec", "guest1", "--lab", &self.lab.name, "--"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.push(self.hostile.display().to_string());
        a.push("--marker".into());
        a.push(marker.into());
        a.extend(args.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        let out = self.lab.ok(&refs);
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{out:?}: {e}"))
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut a = vec!["--lab", self.lab.name.as_str()];
        a.extend_from_slice(args);
        let out = self.lab.ok(&a);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{out}: {e}"))
    }

    /// The attacker's port as `drvdom bridge show --json` has it.
    fn attacker_port(&self) -> Value {
        self.attacker_port_opt()
            .unwrap_or_else(|| panic!("no port of guest1 in `bridge show`"))
    }

    fn attacker_port_opt(&self) -> Option<Value> {
        let doc = self.json(&["bridge", "show", "--domain", "netdd", "--json"]);
        doc["bridges"]
            .as_array()?
            .iter()
            .flat_map(|b| b["ports"].as_array().into_iter().flatten())
            .find(|p| p["guest"] == "guest1")
            .cloned()
    }

    /// Wait (20 s at most) until the published counters rose by `expect`
    /// over `before`; returns the last reading.
    fn drops_risen(&self, before: [u64; 5], expect: [u64; 5]) -> [u64; 5] {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let after = self.drops();
            let ok = (0..5).all(|i| after[i] - before[i] >= expect[i]);
            if ok || Instant::now() > deadline {
                return after;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn drops(&self) -> [u64; 5] {
        let p = self.attacker_port();
        REASONS.map(|r| p["drops"][r].as_u64().unwrap_or(0))
    }

    /// xenbr0's forwarding table in netdd: (every entry as
    /// "mac port static", those on `port`).
    fn fdb(&self, port: &str) -> (Vec<String>, Vec<String>) {
        let port = port.to_string();
        in_named_netns(&self.lab.ns("netdd"), move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let ops = hotplug::NetlinkOps::connect().unwrap();
                let br = ops.link_by_name("xenbr0").await.unwrap().unwrap();
                let p = ops.link_by_name(&port).await.unwrap().unwrap();
                let all = ops.fdb(&br).await.unwrap();
                let show = |e: &hotplug::FdbEntry| {
                    format!(
                        "{} {} {}",
                        e.mac,
                        e.port,
                        if e.static_ { "static" } else { "learned" }
                    )
                };
                let on: Vec<String> = all.iter().filter(|e| e.port == p.index).map(show).collect();
                (all.iter().map(show).collect(), on)
            })
        })
        .join()
        .unwrap()
    }
}

/// One round of every attack, with every check (`n`: the round's number).
fn round(l: &Lab, n: u8) {
    let tag = format!("round{n}");
    let tag = tag.as_str();
    let lab = &l.lab;
    let port = l.attacker_port();
    let vif = port["port"].as_str().unwrap().to_string();
    assert_eq!(port["filter"], "l2+ip", "{port:#}");
    let router_mac = lab
        .link("outside", sim::lab::OUTSIDE_BRIDGE)
        .and_then(|x| x.mac)
        .expect("the outside bridge's MAC");
    let uplink_end = lab
        .links("outside")
        .into_iter()
        .find(|x| x.master.as_deref() == Some(sim::lab::OUTSIDE_BRIDGE))
        .expect("the NIC's cable end in the outside network")
        .name;
    let before = l.drops();
    let (fdb_all, fdb_on) = l.fdb(&vif);
    assert!(
        fdb_on
            .iter()
            .any(|e| e.starts_with("00:16:3e:00:00:01 ") && e.ends_with(" static"))
            && !fdb_on.iter().any(|e| e.ends_with(" learned")),
        "{tag}: the attacker's port has its static entry and learns nothing: {fdb_on:?}"
    );

    // The watchers: the outside pings guest2 every 10 ms and captures the
    // uplink.
    let m = |k: &str| format!("HOSTILE-{tag}-{k}");
    let markers: Vec<Vec<u8>> = ["frames", "newmac", "foreign"]
        .iter()
        .map(|k| m(k).into_bytes())
        .collect();
    let legit = format!("LEGIT-{tag}");
    let stop = Arc::new(AtomicBool::new(false));
    let s1 = stop.clone();
    let ping = in_named_netns(&lab.ns("outside"), move || pinger(VICTIM_IP, s1));
    let s2 = stop.clone();
    let (lg, mk) = (legit.clone().into_bytes(), markers.clone());
    let cap = in_named_netns(&lab.ns("outside"), move || capture(uplink_end, mk, lg, s2));

    // Crafted frames.
    let flood = FLOOD.to_string();
    let r = l.attack(
        &m("frames"),
        &[
            "attack",
            "--own-ip",
            ATTACKER_IP,
            "--peer-mac",
            VICTIM_MAC,
            "--peer-ip",
            &VICTIM_IP.to_string(),
            "--router-mac",
            &router_mac,
            "--router-ip",
            ROUTER_IP,
            "--flood",
            &flood,
        ],
    );
    let mut expect = REASONS.map(|k| r["expect"][k].as_u64().unwrap());
    // A legitimate frame gets through.
    l.attack(
        &legit,
        &["legit", "--own-ip", ATTACKER_IP, "--to", ROUTER_IP],
    );
    // A MAC change: the guest's own kernel then sends with the new MAC (the
    // change flushed its neighbours: its ARP for the router goes out first,
    // with the new MAC, and is dropped). The old MAC comes back only once
    // that drop is counted (the change back flushes the datagram queued
    // behind the ARP).
    l.attack("-", &["set-mac", "00:16:3e:00:00:99"]);
    let to = format!("{ROUTER_IP}:9");
    l.attack(&m("newmac"), &["udp", "--from", ATTACKER_IP, "--to", &to]);
    expect[0] += 1;
    l.drops_risen(before, expect);
    l.attack("-", &["set-mac", "00:16:3e:00:00:01"]);
    // A foreign address on its interface, used by its kernel (the ARP for
    // the router, or the datagram itself, carries it).
    let foreign = format!("198.51.100.{}", 90 + n);
    l.attack("-", &["add-ip", &format!("{foreign}/24")]);
    l.attack(&m("foreign"), &["udp", "--from", &foreign, "--to", &to]);
    expect[4] += 1;
    // Writes flooding its frontend directory.
    let xs = l.attack("-", &["xs-flood", "--count", "2000"]);
    eprintln!("{tag}: frontend flood: {xs}");
    assert_eq!(
        xs["writes"].as_u64().unwrap() + xs["refused"].as_u64().unwrap(),
        2000
    );

    // The counters, as the agent republishes them (every second).
    let after = l.drops_risen(before, expect);
    for (i, r) in REASONS.iter().enumerate() {
        assert!(
            after[i] - before[i] >= expect[i],
            "{tag}: drops.{r} rose by {} (from {} to {}), want at least {}",
            after[i] - before[i],
            before[i],
            after[i],
            expect[i]
        );
    }
    eprintln!("{tag}: drops before {before:?}, after {after:?}, expected rise {expect:?}");
    stop.store(true, Ordering::Relaxed);
    let (bad, good) = cap.join().unwrap();
    let (sent, answered, gap, slowest) = ping.join().unwrap();
    eprintln!(
        "{tag}: victim pings {answered}/{sent} answered, longest gap {gap}, slowest {slowest:?}; \
         uplink saw {} hostile and {good} legitimate frame(s)",
        bad.len()
    );
    assert!(
        bad.is_empty(),
        "{tag}: hostile frames reached the uplink: {:02x?}",
        bad.first()
    );
    assert!(
        good >= 1,
        "{tag}: the legitimate frame did not reach the uplink"
    );
    assert!(sent >= 50, "{tag}: only {sent} pings sent");
    assert_eq!(
        answered, sent,
        "{tag}: guest2 missed pings (longest gap {gap} x 10 ms)"
    );
    // The forwarding table did not grow: no random MAC, no stolen MAC
    // (the uplink may learn the router meanwhile: one entry of slack).
    let (fdb_all2, fdb_on2) = l.fdb(&vif);
    assert_eq!(fdb_on2, fdb_on, "{tag}: entries on {vif}");
    assert!(
        fdb_all2.len() <= fdb_all.len() + 1,
        "{tag}: the FDB grew from {} to {} entries: {fdb_all2:?}",
        fdb_all.len(),
        fdb_all2.len()
    );
    assert!(
        !fdb_all2
            .iter()
            .any(|e| e.starts_with("02:") || e.starts_with("00:16:3e:00:00:99")),
        "{tag}: hostile MACs learned: {fdb_all2:?}"
    );
}

/// The agent serves: alive, `ready`, and every check of `verify` passes.
fn agent_serves(l: &Lab, pid: i32) {
    assert!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok(),
        "the agent (pid {pid}) died"
    );
    assert_eq!(l.lab.pid_of("agent"), pid);
    let file = l.file.display().to_string();
    let v = l.json(&["verify", &file, "--json"]);
    assert_eq!(v["failed"], 0, "{v:#}");
    assert!(v["passed"].as_u64().unwrap() > 0, "{v:#}");
    // `show --format json` has the attacker's vif with its filter and drops.
    let s = l.json(&["show", &file, "--format", "json"]);
    let g1 = s["domains"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "guest1")
        .unwrap();
    let vif = &g1["vifs"][0];
    assert_eq!(vif["filter"], "l2+ip", "{vif:#}");
    assert!(vif["drops"]["total"].as_u64().unwrap() > 0, "{vif:#}");
    assert_eq!(vif["l2_hygiene"], true, "{vif:#}");
}

#[test]
fn a_hostile_guest_is_contained_before_and_after_an_agent_restart() {
    let _bins = require_lab!();
    let Some(hostile) = hostile_bin() else {
        testutil::skip(
            module_path!(),
            "needs drvdom-hostile-guest next to the drvdom test binary (cargo build --workspace)",
        );
        return;
    };
    let lab = TestLab::new();
    let file = lab.root.path().join("host.toml");
    std::fs::write(&file, HOST).unwrap();
    let up = lab.up_detached_with(&["--topology", file.to_str().unwrap()]);
    lab_support::assert_all_pass(&up);
    let l = Lab { lab, file, hostile };
    let pid = l.lab.pid_of("agent");
    round(&l, 1);
    agent_serves(&l, pid);

    let out = l.lab.ok(&["lab", "restart", "agent", "--lab", &l.lab.name]);
    eprintln!("{}", out.trim());
    let pid2 = l.lab.pid_of("agent");
    assert_ne!(pid2, pid);
    // Ready again and publishing: its port record is back with the filter.
    lab_support::wait("the restarted agent publishes guest1's port", || {
        l.attacker_port_opt()
            .is_some_and(|p| p["filter"] == "l2+ip")
    });
    round(&l, 2);
    agent_serves(&l, pid2);
}

/// `l2_hygiene = false` in the host file (a guest that routes or bridges):
/// the backend says so, the agent installs no filter for a vif without
/// `ip`, and what the hygiene would drop (here the whole battery) reaches
/// the uplink.
#[test]
fn relaxed_layer2_hygiene_reaches_the_backend_and_lets_frames_through() {
    let _bins = require_lab!();
    let Some(hostile) = hostile_bin() else {
        testutil::skip(
            module_path!(),
            "needs drvdom-hostile-guest next to the drvdom test binary (cargo build --workspace)",
        );
        return;
    };
    let lab = TestLab::new();
    let file = lab.root.path().join("host.toml");
    let relaxed = HOST.replacen("ip = [\"198.51.100.11/24\"]", "l2_hygiene = false", 1);
    std::fs::write(&file, &relaxed).unwrap();
    let up = lab.up_detached_with(&["--topology", file.to_str().unwrap()]);
    lab_support::assert_all_pass(&up);
    let l = Lab { lab, file, hostile };
    let port = l.attacker_port();
    assert_eq!(port["filter"], "off", "{port:#}");
    let s = l.json(&["show", l.file.to_str().unwrap(), "--format", "json"]);
    let g1 = s["domains"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "guest1")
        .unwrap();
    assert_eq!(g1["vifs"][0]["l2_hygiene"], false, "{g1:#}");
    // The plan of the applied file is empty: the key matches.
    let p = l.json(&["plan", l.file.to_str().unwrap(), "--json"]);
    assert_eq!(p["changes"], 0, "{p:#}");

    let uplink_end = l
        .lab
        .links("outside")
        .into_iter()
        .find(|x| x.master.as_deref() == Some(sim::lab::OUTSIDE_BRIDGE))
        .unwrap()
        .name;
    let router_mac = l
        .lab
        .link("outside", sim::lab::OUTSIDE_BRIDGE)
        .and_then(|x| x.mac)
        .unwrap();
    let marker = "RELAXED-frames";
    // The battery without a flood is 9 frames; all but the BPDU (the bridge
    // consumes link-local frames itself) must reach the uplink.
    let want = 8;
    let ns = l.lab.ns("outside");
    let cap = in_named_netns(&ns, move || {
        let sock = RawSocket::open(&uplink_end).unwrap();
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while seen.len() < want && Instant::now() < deadline {
            if let Some(f) = sock.recv(Duration::from_millis(200)).unwrap() {
                if contains(&f, marker.as_bytes()) {
                    seen.push(f);
                }
            }
        }
        seen
    });
    let r = l.attack(
        marker,
        &[
            "attack",
            "--own-ip",
            ATTACKER_IP,
            "--peer-mac",
            VICTIM_MAC,
            "--peer-ip",
            &VICTIM_IP.to_string(),
            "--router-mac",
            &router_mac,
            "--router-ip",
            ROUTER_IP,
            "--flood",
            "0",
        ],
    );
    let sent = r["sent"].as_u64().unwrap();
    assert_eq!(sent, 9);
    let seen = cap.join().unwrap();
    eprintln!(
        "relaxed: {} of {sent} frames reached the uplink",
        seen.len()
    );
    assert_eq!(seen.len(), want, "frames that reached the uplink");
    assert!(
        seen.iter()
            .any(|f| f.len() > 54 && f[12..14] == [0x86, 0xdd] && f[54] == 134),
        "the router advertisement did not reach the uplink"
    );
}
