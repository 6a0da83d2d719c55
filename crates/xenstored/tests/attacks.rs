//! A hostile guest attacks over its own domain socket while dom0 and
//! another guest keep working: issue 15's attacks, each against the real
//! binary over real sockets. For each: dom0's read latency (p99) and the
//! other guest's attach/detach (a vif's nodes written in a transaction)
//! stay bounded, and the attacker gets its protocol errors.
//!
//! The bounds asserted here are generous (ten times the targets: p99
//! under 5 ms, attach under 100 ms) because tests run a debug build on a
//! shared machine; the figures themselves are measured by
//! `drvdom-xsbench` (release build, same attacks).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)] // test helpers; figures on stderr

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{Daemon, Raw, write};
use xenstore::wire::{MsgType, Request, Response};
use xenstore::{DomId, XsErrno};

const ATTACKER: u16 = 7;
/// The attacks load the CPU: one at a time, or they measure each other.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
const VICTIM: u16 = 8;
/// dom0's read latency p99 bound (target 5 ms, ×10 slack).
const DOM0_P99: Duration = Duration::from_millis(50);
/// Another guest's attach or detach (target 100 ms, ×10 slack).
const ATTACH_MAX: Duration = Duration::from_secs(1);

/// dom0 introduces both guests and gives each its home; the attacker may
/// get a bigger quota (the worst case: a driver domain's).
fn setup(d: &Daemon, attacker_quota: &[(&str, &str)]) -> Raw {
    let mut c = d.dom0();
    for g in [ATTACKER, VICTIM] {
        c.ok(Request::Introduce {
            domid: DomId(g),
            gfn: 1,
            evtchn: 1,
        });
        c.ok(Request::Mkdir(format!("/local/domain/{g}")));
        c.ok(Request::SetPerms(
            format!("/local/domain/{g}"),
            format!("n{g} r0").parse().unwrap(),
        ));
    }
    if !attacker_quota.is_empty() {
        let mut args = vec![b"quota-set".to_vec(), ATTACKER.to_string().into_bytes()];
        for (k, v) in attacker_quota {
            args.push(k.as_bytes().to_vec());
            args.push(v.as_bytes().to_vec());
        }
        assert!(matches!(
            c.rpc(Request::Control(args)),
            Response::Data(_) | Response::Ok
        ));
    }
    // dom0 watches, as a toolstack has: changes fire through them
    for p in ["/local/domain", "/local", "/"] {
        c.ok(common::watch(p, "tool"));
        c.event();
    }
    c.ok(write("/tool/probe", "x"));
    c
}

/// What an attack thread saw: replies by error name ("OK" for success).
type Tally = HashMap<String, u64>;

/// Run `attack` on its own thread (with its own connections) until
/// stopped; it returns its tally.
struct Attack {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Tally>,
}

impl Attack {
    fn start(f: impl FnOnce(&AtomicBool) -> Tally + Send + 'static) -> Attack {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || f(&s));
        Attack { stop, handle }
    }

    fn finish(self) -> Tally {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().unwrap()
    }
}

/// Send `reqs` back to back (512 at a time: the server stops reading a
/// client that does not read its replies), reading the replies; tally them.
fn pipeline(c: &mut Raw, reqs: &[(Request, u32)], tally: &mut Tally) {
    for chunk in reqs.chunks(512) {
        pipeline_chunk(c, chunk, tally);
    }
}

fn pipeline_chunk(c: &mut Raw, reqs: &[(Request, u32)], tally: &mut Tally) {
    let mut bytes = Vec::new();
    for (i, (r, tx)) in reqs.iter().enumerate() {
        r.to_packet(i as u32 + 1, *tx).encode_into(&mut bytes);
    }
    c.s.write_all(&bytes).unwrap();
    let mut got = 0;
    while got < reqs.len() {
        let p = c.recv().expect("attacker connection closed");
        if p.kind() == Some(MsgType::WatchEvent) {
            continue;
        }
        got += 1;
        let key = if p.kind() == Some(MsgType::Error) {
            String::from_utf8_lossy(&p.payload)
                .trim_end_matches('\0')
                .to_string()
        } else {
            "OK".to_string()
        };
        *tally.entry(key).or_default() += 1;
    }
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// While an attack runs: dom0 reads (p99), and the other guest attaches
/// and detaches a vif (worst time).
fn measure(d: &Daemon, dom0: &mut Raw, what: &str) -> (Duration, Duration) {
    let mut lat = Vec::new();
    let mut worst = Duration::ZERO;
    let mut g = Raw::connect(&d.domain_socket(VICTIM));
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut round = 0u32;
    while Instant::now() < deadline || lat.len() < 300 {
        for _ in 0..20 {
            let t = Instant::now();
            assert_eq!(
                dom0.rpc(Request::Read("/tool/probe".into())),
                Response::Data(b"x".to_vec())
            );
            lat.push(t.elapsed());
        }
        let t = Instant::now();
        vif(&mut g, round % 4, true);
        vif(&mut g, round % 4, false);
        worst = worst.max(t.elapsed() / 2);
        round += 1;
        if lat.len() > 5000 {
            break;
        }
    }
    let p99 = pct(&mut lat, 0.99);
    eprintln!(
        "{what}: dom0 read p50 {:?} p99 {p99:?} ({} reads); guest attach/detach worst {worst:?} ({round} rounds)",
        pct(&mut lat, 0.5),
        lat.len()
    );
    (p99, worst)
}

/// The frontend's share of a vif attach (or its removal), in one
/// transaction, retried on EAGAIN, as netfront and libxl do.
fn vif(g: &mut Raw, devid: u32, attach: bool) {
    let base = format!("device/vif/{devid}");
    loop {
        let tx = match g.rpc(Request::TransactionStart) {
            Response::TxId(t) => t,
            other => panic!("TRANSACTION_START: {other:?}"),
        };
        if attach {
            for (k, v) in [
                ("backend", "/local/domain/0/backend/vif/8/0"),
                ("backend-id", "0"),
                ("mac", "00:16:3e:00:00:08"),
                ("handle", "0"),
                ("state", "1"),
                ("tx-ring-ref", "8"),
                ("rx-ring-ref", "9"),
                ("event-channel", "10"),
                ("request-rx-copy", "1"),
                ("feature-rx-notify", "1"),
            ] {
                assert_eq!(g.rpc_tx(write(&format!("{base}/{k}"), v), tx), Response::Ok);
            }
        } else {
            assert_eq!(g.rpc_tx(Request::Rm(base.clone()), tx), Response::Ok);
        }
        match g.rpc_tx(Request::TransactionEnd(true), tx) {
            Response::Ok => return,
            Response::Error(XsErrno::Eagain) => continue,
            other => panic!("TRANSACTION_END: {other:?}"),
        }
    }
}

fn check(p99: Duration, attach: Duration) {
    assert!(p99 < DOM0_P99, "dom0 read p99 {p99:?} over {DOM0_P99:?}");
    assert!(
        attach < ATTACH_MAX,
        "guest attach {attach:?} over {ATTACH_MAX:?}"
    );
}

/// Fill `/local/domain/7/<dir>` with `n` children through dom0 (fast, and
/// owned by the attacker as its own writes would be).
fn fill(dom0: &mut Raw, dir: &str, n: u32, fanout: u32) {
    let mut batch = Vec::new();
    let mut t = Tally::new();
    for i in 0..n {
        let p = match (i.checked_div(fanout), i.checked_rem(fanout)) {
            (Some(a), Some(b)) => format!("/local/domain/{ATTACKER}/{dir}/{a}/{b}"),
            _ => format!("/local/domain/{ATTACKER}/{dir}/c{i}"),
        };
        batch.push((write(&p, "v"), 0));
        if batch.len() == 512 {
            pipeline(dom0, &batch, &mut t);
            batch.clear();
        }
    }
    pipeline(dom0, &batch, &mut t);
    assert_eq!(t.len(), 1, "fill failed: {t:?}");
}

#[test]
fn deep_path_write_flood() {
    let _one = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let d = Daemon::start(&[]);
    let mut dom0 = setup(&d, &[("nodes", "70000"), ("memory", "67108864")]);
    let sock = d.domain_socket(ATTACKER);
    // a legal path: the relative part is 2002 bytes (path-max 2048)
    let deep = format!("data{}", "/a".repeat(999));
    let attack = Attack::start(move |stop| {
        let mut c = Raw::connect(&sock);
        let mut t = Tally::new();
        let reqs: Vec<(Request, u32)> =
            (0..64).map(|i| (write(&deep, &i.to_string()), 0)).collect();
        while !stop.load(Ordering::SeqCst) {
            pipeline(&mut c, &reqs, &mut t);
        }
        t
    });
    let (p99, attach) = measure(&d, &mut dom0, "deep-path write flood");
    let t = attack.finish();
    assert!(t.get("OK").copied().unwrap_or(0) > 64, "{t:?}");
    check(p99, attach);
    // and the attacker cannot go one level deeper than path-max allows
    let mut g = Raw::connect(&d.domain_socket(ATTACKER));
    assert_eq!(
        g.err(write(&format!("data{}", "/a".repeat(1030)), "x")),
        XsErrno::Einval
    );
}

#[test]
fn directory_flood_of_a_60000_child_node() {
    let _one = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let d = Daemon::start(&[]);
    let mut dom0 = setup(&d, &[("nodes", "70000"), ("memory", "67108864")]);
    fill(&mut dom0, "big", 60_000, 0);
    let sock = d.domain_socket(ATTACKER);
    let attack = Attack::start(move |stop| {
        let mut c = Raw::connect(&sock);
        let mut t = Tally::new();
        let mut reqs: Vec<(Request, u32)> = (0..32)
            .map(|_| (Request::Directory("big".into()), 0))
            .collect();
        // DIRECTORY_PART far into the list costs the walk to its offset
        reqs.extend((0..32).map(|i| (Request::DirectoryPart("big".into(), 400_000 + i), 0)));
        while !stop.load(Ordering::SeqCst) {
            pipeline(&mut c, &reqs, &mut t);
        }
        t
    });
    let (p99, attach) = measure(&d, &mut dom0, "DIRECTORY flood, 60,000 children");
    let t = attack.finish();
    assert!(t.get("E2BIG").copied().unwrap_or(0) >= 32, "{t:?}");
    check(p99, attach);
}

#[test]
fn rm_of_a_61000_node_subtree_in_a_transaction() {
    let _one = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let d = Daemon::start(&[]);
    let mut dom0 = setup(&d, &[("nodes", "70000"), ("memory", "67108864")]);
    fill(&mut dom0, "sub", 61_000, 100);
    let before = rss_kb(&d);
    let sock = d.domain_socket(ATTACKER);
    let attack = Attack::start(move |stop| {
        let mut c = Raw::connect(&sock);
        let mut t = Tally::new();
        while !stop.load(Ordering::SeqCst) {
            // ten transactions (the quota), each RMs the subtree
            let txs: Vec<u32> = (0..10)
                .map(|_| match c.rpc(Request::TransactionStart) {
                    Response::TxId(x) => x,
                    other => panic!("{other:?}"),
                })
                .collect();
            let reqs: Vec<(Request, u32)> = txs
                .iter()
                .map(|&x| (Request::Rm("sub".into()), x))
                .collect();
            pipeline(&mut c, &reqs, &mut t);
            let ends: Vec<(Request, u32)> = txs
                .iter()
                .map(|&x| (Request::TransactionEnd(false), x))
                .collect();
            pipeline(&mut c, &ends, &mut t);
        }
        t
    });
    let (p99, attach) = measure(&d, &mut dom0, "RM of a 61,000-node subtree in transactions");
    let t = attack.finish();
    assert!(t.get("ENOSPC").copied().unwrap_or(0) >= 10, "{t:?}");
    check(p99, attach);
    // nothing pinned: the subtree is whole, memory did not grow
    assert!(matches!(
        dom0.rpc(Request::Read(format!(
            "/local/domain/{ATTACKER}/sub/609/99"
        ))),
        Response::Data(_)
    ));
    let after = rss_kb(&d);
    assert!(
        after < before + 20_000,
        "RSS grew from {before} to {after} KiB"
    );
}

#[test]
fn ten_parallel_transactions_stay_under_the_node_quota() {
    let _one = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let d = Daemon::start(&[]);
    let mut dom0 = setup(&d, &[]);
    let sock = d.domain_socket(ATTACKER);
    let attack = Attack::start(move |stop| {
        let mut c = Raw::connect(&sock);
        let mut t = Tally::new();
        let mut round = 0u32;
        while !stop.load(Ordering::SeqCst) {
            let txs: Vec<u32> = (0..10)
                .map(|_| match c.rpc(Request::TransactionStart) {
                    Response::TxId(x) => x,
                    other => panic!("{other:?}"),
                })
                .collect();
            // each transaction alone fits the quota (1000 nodes)
            let mut reqs = Vec::new();
            for (k, &x) in txs.iter().enumerate() {
                for i in 0..900 {
                    reqs.push((write(&format!("p{round}-{k}/{i}"), "v"), x));
                }
            }
            pipeline(&mut c, &reqs, &mut t);
            let ends: Vec<(Request, u32)> = txs
                .iter()
                .map(|&x| (Request::TransactionEnd(true), x))
                .collect();
            pipeline(&mut c, &ends, &mut t);
            // start over
            for k in 0..10 {
                c.rpc(Request::Rm(format!("p{round}-{k}")));
            }
            round += 1;
        }
        t
    });
    let (p99, attach) = measure(&d, &mut dom0, "10 parallel transactions vs the node quota");
    let t = attack.finish();
    assert!(t.get("ENOSPC").copied().unwrap_or(0) >= 9, "{t:?}");
    check(p99, attach);
    let q = quota_of(&mut dom0, ATTACKER);
    assert!(q["nodes"] <= 1000, "{q:?}");
}

#[test]
fn memory_flood_hits_the_memory_quota() {
    let _one = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let d = Daemon::start(&[]);
    let mut dom0 = setup(&d, &[]);
    let before = rss_kb(&d);
    let sock = d.domain_socket(ATTACKER);
    let attack = Attack::start(move |stop| {
        let mut c = Raw::connect(&sock);
        let mut t = Tally::new();
        let big = "x".repeat(2048);
        let dir = "y".repeat(1500);
        // 1. maximal values under long paths until a quota stops it
        let mut n = 0u32;
        while !t.contains_key("ENOSPC") && !t.contains_key("ENOMEM") {
            let reqs: Vec<(Request, u32)> = (0..64)
                .map(|k| (write(&format!("m/{dir}/{}", n + k), &big), 0))
                .collect();
            pipeline(&mut c, &reqs, &mut t);
            n += 64;
        }
        // 2. then transactions full of big values, and watches with long
        // tokens, over and over: all of it is memory the domain holds
        let mut round = 0u32;
        while !stop.load(Ordering::SeqCst) {
            let txs: Vec<u32> = (0..10)
                .filter_map(|_| match c.rpc(Request::TransactionStart) {
                    Response::TxId(x) => Some(x),
                    _ => None,
                })
                .collect();
            // rewriting existing nodes: each transaction holds a copy
            let mut reqs = Vec::new();
            for &x in &txs {
                for i in 0..100 {
                    reqs.push((
                        write(&format!("m/{dir}/{i}"), &big[..2000 + round as usize % 48]),
                        x,
                    ));
                }
            }
            pipeline(&mut c, &reqs, &mut t);
            for k in 0..20u32 {
                match c.rpc(common::watch(&format!("w{round}-{k}"), &"t".repeat(3000))) {
                    Response::Ok => {
                        c.event();
                    }
                    Response::Error(e) => *t.entry(e.name().to_string()).or_default() += 1,
                    other => panic!("{other:?}"),
                }
            }
            let ends: Vec<(Request, u32)> = txs
                .iter()
                .map(|&x| (Request::TransactionEnd(false), x))
                .collect();
            pipeline(&mut c, &ends, &mut t);
            c.rpc(Request::ResetWatches);
            round += 1;
        }
        t
    });
    let (p99, attach) = measure(&d, &mut dom0, "memory flood");
    let mid = quota_of(&mut dom0, ATTACKER);
    let t = attack.finish();
    assert!(t.get("ENOMEM").copied().unwrap_or(0) > 0, "{t:?}");
    check(p99, attach);
    let limit = u64::from(xenstored::DEFAULT_MEMORY);
    assert!(mid["memory"] <= limit, "{mid:?}");
    assert!(
        mid["memory"] > limit / 2,
        "the flood filled its quota: {mid:?}"
    );
    // aborted transactions and reset watches gave their memory back
    let q = quota_of(&mut dom0, ATTACKER);
    assert!(q["memory"] <= mid["memory"], "{q:?} after {mid:?}");
    let after = rss_kb(&d);
    assert!(
        after < before + 16_000,
        "RSS grew from {before} to {after} KiB for a 2.5 MiB quota"
    );
}

/// `CONTROL quota <domid>` as a map.
fn quota_of(dom0: &mut Raw, dom: u16) -> HashMap<String, u64> {
    let r = dom0.rpc(Request::Control(vec![
        b"quota".to_vec(),
        dom.to_string().into_bytes(),
    ]));
    let Response::Data(b) = r else {
        panic!("{r:?}")
    };
    String::from_utf8_lossy(&b)
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((
                k.trim().to_string(),
                v.trim().trim_end_matches('\0').parse().ok()?,
            ))
        })
        .collect()
}

fn rss_kb(d: &Daemon) -> u64 {
    std::fs::read_to_string(format!("/proc/{}/status", d.child.id()))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[test]
fn a_guest_that_never_reads_stops_being_read() {
    let _one = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let d = Daemon::start(&[]);
    let mut dom0 = setup(&d, &[]);
    let flood = std::os::unix::net::UnixStream::connect(d.domain_socket(ATTACKER)).unwrap();
    flood.set_nonblocking(true).unwrap();
    let mut batch = Vec::new();
    for i in 0..4096u32 {
        Request::Read("device".into())
            .to_packet(i, 0)
            .encode_into(&mut batch);
    }
    // Write until the socket takes no more. A server that kept reading
    // (and queueing replies nobody reads) would take all 16 MiB.
    let mut sent = 0usize;
    let mut f = &flood;
    let mut stalled = 0;
    while sent < 16 << 20 && stalled < 1000 {
        match f.write(&batch) {
            Ok(n) => {
                sent += n;
                stalled = 0;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                // the server may still be catching up: ask dom0 something
                // (a real round trip) before trying again
                dom0.rpc(Request::Read("/tool/probe".into()));
                stalled += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    eprintln!("a guest that never reads: the server took {sent} bytes, then stopped reading");
    assert!(
        sent < 4 << 20,
        "the server kept reading: {sent} bytes taken"
    );
    // what it holds for the guest stays within the guest's memory quota
    let q = quota_of(&mut dom0, ATTACKER);
    assert!(q["memory"] <= u64::from(xenstored::DEFAULT_MEMORY), "{q:?}");
    // and dom0 is served meanwhile
    let mut lat = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        dom0.rpc(Request::Read("/tool/probe".into()));
        lat.push(t.elapsed());
    }
    check(pct(&mut lat, 0.99), Duration::ZERO);
    drop(flood);
}
