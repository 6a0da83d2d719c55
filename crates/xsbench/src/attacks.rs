//! Issue 15's attacks on our server, with dom0's read latency and another
//! guest's attach/detach measured while each runs. Only our server serves
//! guests on their own sockets (the 4.17 peers see every socket client as
//! dom0), so these rows have no peer columns. The same attacks are
//! asserted with generous bounds by `crates/xenstored/tests/attacks.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use xenstore::DomId;
use xenstore::wire::{MsgType, Request, Response};

use crate::conn::Conn;
use crate::loads::Stats;
use crate::servers::{Kind, Server};

const ATTACKER: u16 = 7;
const VICTIM: u16 = 8;

/// One attack's figures.
#[derive(Debug, Clone)]
pub struct AttackResult {
    pub name: &'static str,
    /// dom0 reads while the attack ran.
    pub dom0: Stats,
    /// The other guest's attach/detach transactions (each one op).
    pub attach: Stats,
    /// The attacker's replies: (error name or "OK", count), most first.
    pub attacker: Vec<(String, u64)>,
    /// The attacker's requests answered per second.
    pub attacker_rate: f64,
}

/// The attacks, by name.
pub const ATTACKS: [&str; 5] = [
    "deep-path write flood (1000 levels)",
    "DIRECTORY flood, 60,000 children",
    "RM of a 61,000-node subtree in transactions",
    "10 parallel transactions vs node quota",
    "memory flood",
];

fn control(c: &mut Conn, args: &[&str]) -> Result<()> {
    c.call(
        &Request::Control(args.iter().map(|a| a.as_bytes().to_vec()).collect()),
        0,
    )?;
    Ok(())
}

fn setup(s: &Server, raise_attacker: bool) -> Result<Conn> {
    let mut c = Conn::connect(&s.socket)?;
    for g in [ATTACKER, VICTIM] {
        c.call(
            &Request::Introduce {
                domid: DomId(g),
                gfn: 1,
                evtchn: 1,
            },
            0,
        )?;
        c.call(&Request::Mkdir(format!("/local/domain/{g}")), 0)?;
        c.call(
            &Request::SetPerms(
                format!("/local/domain/{g}"),
                format!("n{g} r0").parse().map_err(anyhow::Error::msg)?,
            ),
            0,
        )?;
    }
    if raise_attacker {
        // the worst case: a guest with a driver domain's quotas
        control(
            &mut c,
            &[
                "quota-set",
                &ATTACKER.to_string(),
                "nodes",
                "70000",
                "memory",
                "67108864",
            ],
        )?;
    }
    // dom0 watches, as a toolstack has
    for p in ["/local/domain", "/local", "/"] {
        c.call(
            &Request::Watch {
                path: p.into(),
                token: "tool".into(),
            },
            0,
        )?;
    }
    c.write("/tool/probe", b"x")?;
    Ok(c)
}

/// Tally of the attacker's replies.
#[derive(Default)]
struct Tally {
    counts: std::collections::HashMap<String, u64>,
}

/// Send `reqs` (512 at a time), read all replies, count them.
fn pipeline(c: &mut Conn, reqs: &[(Request, u32)], t: &mut Tally) -> Result<()> {
    for chunk in reqs.chunks(512) {
        let mut out = Vec::new();
        for (r, tx) in chunk {
            c.encode(r, *tx, &mut out);
        }
        c.write_raw(&out)?;
        for _ in chunk {
            let p = c.recv_reply()?;
            let key = if p.kind() == Some(MsgType::Error) {
                String::from_utf8_lossy(&p.payload)
                    .trim_end_matches('\0')
                    .to_string()
            } else {
                "OK".to_string()
            };
            *t.counts.entry(key).or_default() += 1;
        }
        c.events.clear();
    }
    Ok(())
}

fn fill(dom0: &mut Conn, dir: &str, n: u64, fanout: u64) -> Result<()> {
    let mut t = Tally::default();
    let mut reqs = Vec::new();
    for i in 0..n {
        let p = match (i.checked_div(fanout), i.checked_rem(fanout)) {
            (Some(a), Some(b)) => format!("/local/domain/{ATTACKER}/{dir}/{a}/{b}"),
            _ => format!("/local/domain/{ATTACKER}/{dir}/c{i}"),
        };
        reqs.push((Request::Write(p, b"v".to_vec()), 0));
    }
    pipeline(dom0, &reqs, &mut t)?;
    if t.counts.len() != 1 {
        bail!("filling {dir}: {:?}", t.counts);
    }
    Ok(())
}

fn tx_start(c: &mut Conn) -> Result<u32> {
    let p = c.call(&Request::TransactionStart, 0)?;
    match Response::decode(p.msg_type, MsgType::TransactionStart, &p.payload)
        .map_err(xenstore::Error::from)?
    {
        Response::TxId(t) => Ok(t),
        other => bail!("TRANSACTION_START: {other:?}"),
    }
}

/// The frontend's share of a vif attach (or its removal), in one
/// transaction, retried on EAGAIN.
fn vif(g: &mut Conn, devid: u32, attach: bool) -> Result<()> {
    let base = format!("device/vif/{devid}");
    loop {
        let tx = tx_start(g)?;
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
                g.call(
                    &Request::Write(format!("{base}/{k}"), v.as_bytes().to_vec()),
                    tx,
                )?;
            }
        } else {
            g.call(&Request::Rm(base.clone()), tx)?;
        }
        match g.call_raw(&Request::TransactionEnd(true), tx)? {
            Ok(_) => return Ok(()),
            Err(e) if e == "EAGAIN" => continue,
            Err(e) => bail!("TRANSACTION_END: {e}"),
        }
    }
}

/// Run attack `which` for `reads` dom0 reads (and an attach/detach every
/// 20 of them).
pub fn run(which: usize, reads: u64) -> Result<AttackResult> {
    let s = Server::start(Kind::Ours, &[])?;
    let dir = s
        .domain_dir
        .clone()
        .context("our server was started without domain sockets")?;
    let raise = which != 3 && which != 4;
    let mut dom0 = setup(&s, raise)?;
    match which {
        1 => fill(&mut dom0, "big", 60_000, 0)?,
        2 => fill(&mut dom0, "sub", 61_000, 100)?,
        _ => {}
    }
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let sock = dir.join(format!("{ATTACKER}.sock"));
    let (st, an) = (stop.clone(), answered.clone());
    let attacker = std::thread::spawn(move || -> Result<Tally> {
        let mut c = Conn::connect(&sock)?;
        let mut t = Tally::default();
        let mut round = 0u32;
        while !st.load(Ordering::SeqCst) {
            attack_round(which, &mut c, &mut t, round)?;
            an.store(t.counts.values().sum(), Ordering::Relaxed);
            round += 1;
        }
        Ok(t)
    });
    let t0 = Instant::now();
    let mut g = Conn::connect(&dir.join(format!("{VICTIM}.sock")))?;
    let mut lat = Vec::new();
    let mut att = Vec::new();
    let read = Request::Read("/tool/probe".into());
    let mut round = 0u32;
    while (lat.len() as u64) < reads {
        for _ in 0..20 {
            let t = Instant::now();
            dom0.call(&read, 0)?;
            lat.push(t.elapsed().as_secs_f64() * 1e6);
            dom0.events.clear();
        }
        let t = Instant::now();
        vif(&mut g, round % 4, true)?;
        att.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        vif(&mut g, round % 4, false)?;
        att.push(t.elapsed().as_secs_f64() * 1e6);
        round += 1;
    }
    let secs = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::SeqCst);
    let tally = attacker
        .join()
        .map_err(|_| anyhow::anyhow!("attacker thread panicked"))??;
    let mut counts: Vec<(String, u64)> = tally.counts.into_iter().collect();
    counts.sort_by_key(|c| std::cmp::Reverse(c.1));
    let total: u64 = counts.iter().map(|(_, n)| n).sum();
    drop(s);
    Ok(AttackResult {
        name: ATTACKS[which],
        dom0: Stats {
            ops: lat.len() as u64,
            secs,
            lat_us: lat,
        },
        attach: Stats {
            ops: att.len() as u64,
            secs,
            lat_us: att,
        },
        attacker: counts,
        attacker_rate: total as f64 / secs,
    })
}

fn attack_round(which: usize, c: &mut Conn, t: &mut Tally, round: u32) -> Result<()> {
    match which {
        0 => {
            // a legal path: the relative part is 2002 bytes (path-max 2048)
            let deep = format!("data{}", "/a".repeat(999));
            let reqs: Vec<(Request, u32)> = (0..64)
                .map(|i| (Request::Write(deep.clone(), i.to_string().into_bytes()), 0))
                .collect();
            pipeline(c, &reqs, t)
        }
        1 => {
            let mut reqs: Vec<(Request, u32)> = (0..32)
                .map(|_| (Request::Directory("big".into()), 0))
                .collect();
            reqs.extend((0..32).map(|i| (Request::DirectoryPart("big".into(), 400_000 + i), 0)));
            pipeline(c, &reqs, t)
        }
        2 => {
            let txs: Vec<u32> = (0..10).map(|_| tx_start(c)).collect::<Result<_>>()?;
            let reqs: Vec<(Request, u32)> = txs
                .iter()
                .map(|&x| (Request::Rm("sub".into()), x))
                .collect();
            pipeline(c, &reqs, t)?;
            let ends: Vec<(Request, u32)> = txs
                .iter()
                .map(|&x| (Request::TransactionEnd(false), x))
                .collect();
            pipeline(c, &ends, t)
        }
        3 => {
            let txs: Vec<u32> = (0..10).map(|_| tx_start(c)).collect::<Result<_>>()?;
            let mut reqs = Vec::new();
            for (k, &x) in txs.iter().enumerate() {
                for i in 0..900 {
                    reqs.push((
                        Request::Write(format!("p{round}-{k}/{i}"), b"v".to_vec()),
                        x,
                    ));
                }
            }
            pipeline(c, &reqs, t)?;
            let ends: Vec<(Request, u32)> = txs
                .iter()
                .map(|&x| (Request::TransactionEnd(true), x))
                .collect();
            pipeline(c, &ends, t)?;
            let rms: Vec<(Request, u32)> = (0..10)
                .map(|k| (Request::Rm(format!("p{round}-{k}")), 0))
                .collect();
            pipeline(c, &rms, t)
        }
        _ => {
            let big = vec![b'x'; 2048];
            let dir = "y".repeat(1500);
            if round == 0 {
                let mut n = 0u32;
                while !t.counts.contains_key("ENOSPC") && !t.counts.contains_key("ENOMEM") {
                    let reqs: Vec<(Request, u32)> = (0..64)
                        .map(|k| (Request::Write(format!("m/{dir}/{}", n + k), big.clone()), 0))
                        .collect();
                    pipeline(c, &reqs, t)?;
                    n += 64;
                }
            }
            let txs: Vec<u32> = (0..10).filter_map(|_| tx_start(c).ok()).collect();
            let mut reqs = Vec::new();
            for &x in &txs {
                for i in 0..100 {
                    reqs.push((Request::Write(format!("m/{dir}/{i}"), big.clone()), x));
                }
            }
            pipeline(c, &reqs, t)?;
            let ends: Vec<(Request, u32)> = txs
                .iter()
                .map(|&x| (Request::TransactionEnd(false), x))
                .collect();
            pipeline(c, &ends, t)
        }
    }
}
