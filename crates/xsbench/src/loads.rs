//! The loads. Each returns [`Stats`]; all are bounded in count.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use xenstore::DomId;
use xenstore::wire::{MsgType, Request, Response};

use crate::conn::Conn;
use crate::servers::Server;

#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub ops: u64,
    pub secs: f64,
    pub lat_us: Vec<f64>,
}

impl Stats {
    /// Add another run of the same load (ops, time and latencies).
    pub fn merge(&mut self, other: Stats) {
        self.ops += other.ops;
        self.secs += other.secs;
        self.lat_us.extend(other.lat_us);
    }

    pub fn ops_per_s(&self) -> f64 {
        if self.secs > 0.0 {
            self.ops as f64 / self.secs
        } else {
            0.0
        }
    }

    pub fn pct(&self, p: f64) -> f64 {
        if self.lat_us.is_empty() {
            return 0.0;
        }
        let mut v = self.lat_us.clone();
        v.sort_by(f64::total_cmp);
        let i = ((v.len() - 1) as f64 * p).round() as usize;
        v[i.min(v.len() - 1)]
    }
}

fn timed(mut op: impl FnMut(u64) -> Result<()>, n: u64) -> Result<Stats> {
    // Untimed warm-up on the same connection (indices past `n`, so loads
    // that create nodes still create fresh ones when timed): lets a fresh
    // connection's server thread settle on a CPU, for every server alike.
    for i in n..n + warmup(n) {
        op(i)?;
    }
    timed_cold(op, n)
}

/// Untimed operations before a timed run of `n`.
pub fn warmup(n: u64) -> u64 {
    (n / 10).min(1000)
}

/// Operations a load of `n` really performs (warm-up included): what the
/// cost figures divide by.
pub fn total_ops(n: u64) -> u64 {
    n + warmup(n)
}

/// [`timed`] without the warm-up.
fn timed_cold(mut op: impl FnMut(u64) -> Result<()>, n: u64) -> Result<Stats> {
    let mut lat = Vec::with_capacity(n as usize);
    let t0 = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        op(i)?;
        lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Ok(Stats {
        ops: n,
        secs: t0.elapsed().as_secs_f64(),
        lat_us: lat,
    })
}

const VALUE: &[u8] = b"0123456789abcdef";

pub fn write_1c(sock: &Path, n: u64) -> Result<Stats> {
    let mut c = Conn::connect(sock)?;
    let keys: Vec<String> = (0..100).map(|k| format!("/bench/w/k{k}")).collect();
    timed(|i| c.write(&keys[(i % 100) as usize], VALUE), n)
}

pub fn read_1c(sock: &Path, n: u64) -> Result<Stats> {
    let mut c = Conn::connect(sock)?;
    c.write("/bench/r", VALUE)?;
    let req = Request::Read("/bench/r".into());
    timed(
        |_| {
            c.call(&req, 0)?;
            Ok(())
        },
        n,
    )
}

/// One op = TRANSACTION_START, 10 WRITEs, TRANSACTION_END (12 round trips).
pub fn tx10(sock: &Path, n: u64) -> Result<Stats> {
    let mut c = Conn::connect(sock)?;
    let keys: Vec<String> = (0..10).map(|k| format!("/bench/t/k{k}")).collect();
    let mut eagain = 0u64;
    let st = timed(
        |_| loop {
            let p = c.call(&Request::TransactionStart, 0)?;
            let tx = match Response::decode(p.msg_type, MsgType::TransactionStart, &p.payload)
                .map_err(xenstore::Error::from)?
            {
                Response::TxId(t) => t,
                other => bail!("unexpected TRANSACTION_START reply {other:?}"),
            };
            for k in &keys {
                c.call(&Request::Write(k.clone(), VALUE.to_vec()), tx)?;
            }
            match c.call_raw(&Request::TransactionEnd(true), tx)? {
                Ok(_) => return Ok(()),
                Err(e) if e == "EAGAIN" => eagain += 1,
                Err(e) => bail!("TRANSACTION_END: {e}"),
            }
        },
        n,
    )?;
    ensure!(eagain < n, "every transaction conflicted");
    Ok(st)
}

/// `depth` requests in flight on one connection. One thread keeps the
/// window full: it writes as many requests as replies came back, in one
/// write, and handles every reply that one read brought. Requests are
/// encoded before the clock starts, so the client costs a read and a
/// write per batch and the server's speed shows (a thread per direction
/// with a channel message per request measured the client instead).
pub fn pipelined(sock: &Path, n: u64, depth: usize) -> Result<Stats> {
    let mut c = Conn::connect(sock)?;
    let mut bytes = Vec::new();
    let mut ends = Vec::with_capacity(n as usize + 1);
    ends.push(0usize);
    for i in 0..n {
        let req = Request::Write(format!("/bench/p/k{}", i % 1000), VALUE.to_vec());
        c.encode(&req, 0, &mut bytes);
        ends.push(bytes.len());
    }
    let n = n as usize;
    let mut sent_at = std::collections::VecDeque::with_capacity(depth);
    let mut lat = Vec::with_capacity(n);
    let (mut sent, mut done) = (0usize, 0usize);
    let t0 = Instant::now();
    while done < n {
        let k = (depth - (sent - done)).min(n - sent);
        if k > 0 {
            c.write_raw(&bytes[ends[sent]..ends[sent + k]])?;
            let now = Instant::now();
            sent_at.extend(std::iter::repeat_n(now, k));
            sent += k;
        }
        // one blocking read, then whatever else it brought
        let mut next = Some(c.recv_reply()?);
        while let Some(p) = next {
            ensure!(p.kind() != Some(MsgType::Error), "pipelined write failed");
            let t = sent_at.pop_front().unwrap_or(t0);
            lat.push(t.elapsed().as_secs_f64() * 1e6);
            done += 1;
            next = c.recv_buffered()?;
        }
    }
    Ok(Stats {
        ops: n as u64,
        secs: t0.elapsed().as_secs_f64(),
        lat_us: lat,
    })
}

/// `conns` connections, each doing `n` synchronous writes to its own keys.
pub fn concurrent(sock: &Path, conns: usize, n: u64) -> Result<Stats> {
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(conns + 1));
    let mut handles = Vec::new();
    for c in 0..conns {
        let sock = sock.to_path_buf();
        let b = barrier.clone();
        handles.push(std::thread::spawn(move || -> Result<Stats> {
            let mut conn = Conn::connect(&sock)?;
            let keys: Vec<String> = (0..100).map(|k| format!("/bench/c{c}/k{k}")).collect();
            for i in 0..warmup(n) {
                conn.write(&keys[(i % 100) as usize], VALUE)?;
            }
            b.wait(); // the clock starts when all are warm
            timed_cold(|i| conn.write(&keys[(i % 100) as usize], VALUE), n)
        }));
    }
    barrier.wait();
    let t0 = Instant::now();
    let mut all = Stats::default();
    for h in handles {
        let s = h.join().map_err(|_| anyhow::anyhow!("worker panicked"))??;
        all.ops += s.ops;
        all.lat_us.extend(s.lat_us);
    }
    all.secs = t0.elapsed().as_secs_f64();
    Ok(all)
}

/// Time from sending a WRITE until the watcher has the event.
pub fn watch_latency(sock: &Path, n: u64) -> Result<Stats> {
    let mut watcher = Conn::connect(sock)?;
    let mut writer = Conn::connect(sock)?;
    writer.write("/bench/wl", b"")?;
    watcher.call(
        &Request::Watch {
            path: "/bench/wl".into(),
            token: "lat".into(),
        },
        0,
    )?;
    watcher.recv_event()?; // the initial event
    let req = Request::Write("/bench/wl/k".into(), VALUE.to_vec());
    // The clock stops when the event is in: reading the writer's reply is
    // not part of the event's latency (it is read after, untimed, so the
    // next round starts from the same quiet state for every server).
    let mut lat = Vec::with_capacity(n as usize);
    let mut t0 = Instant::now();
    for round in 0..warmup(n) + n {
        if round == warmup(n) {
            lat.clear();
            t0 = Instant::now();
        }
        let t = Instant::now();
        writer.send(&req, 0)?;
        let ev = watcher.recv_event()?;
        lat.push(t.elapsed().as_secs_f64() * 1e6);
        ensure!(
            ev.payload.starts_with(b"/bench/wl/k\0"),
            "unexpected watch event {:?}",
            String::from_utf8_lossy(&ev.payload)
        );
        let p = writer.recv_reply()?;
        ensure!(p.kind() != Some(MsgType::Error), "watched write failed");
    }
    Ok(Stats {
        ops: n,
        secs: t0.elapsed().as_secs_f64(),
        lat_us: lat,
    })
}

/// Write `count` nodes `/bench/<name>/<i/1000>/<i%1000>` with 256 requests
/// in flight per batch (fast fill; not measured).
pub fn fill(c: &mut Conn, name: &str, from: u64, count: u64) -> Result<()> {
    let mut i = from;
    let end = from + count;
    let mut out = Vec::with_capacity(256 * 64);
    while i < end {
        out.clear();
        let batch = (end - i).min(256);
        for j in 0..batch {
            let k = i + j;
            c.encode(
                &Request::Write(
                    format!("/bench/{name}/{}/{}", k / 1000, k % 1000),
                    VALUE.to_vec(),
                ),
                0,
                &mut out,
            );
        }
        c.write_raw(&out)?;
        for _ in 0..batch {
            let p = c.recv_reply()?;
            ensure!(
                p.kind() != Some(MsgType::Error),
                "fill write failed at node {i}"
            );
        }
        i += batch;
    }
    Ok(())
}

/// A connection holding `watches` watches that never fire
/// (`/other/nw<i>`); they last as long as it does.
pub fn hold_watches(sock: &Path, watches: u64) -> Result<Conn> {
    let mut w = Conn::connect(sock)?;
    let mut out = Vec::new();
    let mut pending = 0u64;
    for i in 0..watches {
        w.encode(
            &Request::Watch {
                path: format!("/other/nw{i}"),
                token: format!("t{i}"),
            },
            0,
            &mut out,
        );
        pending += 1;
        if pending == 256 || i + 1 == watches {
            w.write_raw(&out)?;
            out.clear();
            for _ in 0..pending {
                let p = w.recv_reply()?;
                ensure!(
                    p.kind() != Some(MsgType::Error),
                    "WATCH {i} failed: {}",
                    String::from_utf8_lossy(&p.payload)
                );
            }
            pending = 0;
        }
    }
    w.events.clear();
    Ok(w)
}

/// Domains `from..=to` connected: ours introduces each and holds a
/// connection on its socket; a peer (every client is dom0 there) gets one
/// plain connection each.
pub fn hold_domains(server: &Server, from: u16, to: u16) -> Result<Vec<Conn>> {
    let mut dom0 = Conn::connect(&server.socket)?;
    let mut held = Vec::new();
    for d in from..=to {
        match &server.domain_dir {
            Some(dir) => {
                dom0.call(
                    &Request::Introduce {
                        domid: DomId(d),
                        gfn: 0,
                        evtchn: 1,
                    },
                    0,
                )
                .with_context(|| format!("INTRODUCE {d}"))?;
                let p = dir.join(format!("{d}.sock"));
                held.push(Conn::connect(&p).with_context(|| format!("domain {d} socket"))?);
            }
            None => held.push(Conn::connect(&server.socket)?),
        }
    }
    Ok(held)
}

/// Create `children` children and list them; checks the listing is exact.
pub fn big_directory(sock: &Path, children: u64) -> Result<(Duration, usize)> {
    let mut c = Conn::connect(sock)?;
    let mut out = Vec::new();
    // Batches of 256: a server that stops reading while its replies are
    // unread (oxenstored) would otherwise deadlock with us.
    for chunk in (0..children).collect::<Vec<_>>().chunks(256) {
        out.clear();
        for i in chunk {
            c.encode(
                &Request::Write(format!("/bench/dir/child{i}"), b"".to_vec()),
                0,
                &mut out,
            );
        }
        c.write_raw(&out)?;
        for _ in chunk {
            let p = c.recv_reply()?;
            ensure!(p.kind() != Some(MsgType::Error), "child write failed");
        }
    }
    let t0 = Instant::now();
    let names = list(&mut c, "/bench/dir")?;
    let took = t0.elapsed();
    let want: HashSet<String> = (0..children).map(|i| format!("child{i}")).collect();
    let got: HashSet<String> = names.iter().cloned().collect();
    ensure!(
        names.len() as u64 == children && got == want,
        "directory listing wrong: {} names, {} distinct, expected {children}",
        names.len(),
        got.len()
    );
    c.call(&Request::Rm("/bench/dir".into()), 0)?;
    Ok((took, names.len()))
}

/// DIRECTORY, or the DIRECTORY_PART loop when the list is over 4096 bytes.
fn list(c: &mut Conn, path: &str) -> Result<Vec<String>> {
    match c.call_raw(&Request::Directory(path.into()), 0)? {
        Ok(p) => match Response::decode(p.msg_type, MsgType::Directory, &p.payload)
            .map_err(xenstore::Error::from)?
        {
            Response::Children(v) => return Ok(v),
            other => bail!("unexpected DIRECTORY reply {other:?}"),
        },
        Err(e) if e == "E2BIG" => {}
        Err(e) => bail!("DIRECTORY {path}: {e}"),
    }
    'restart: loop {
        let mut names = Vec::new();
        let mut offset = 0u64;
        let mut generation = None;
        loop {
            let p = c.call(&Request::DirectoryPart(path.into(), offset), 0)?;
            match Response::decode(p.msg_type, MsgType::DirectoryPart, &p.payload)
                .map_err(xenstore::Error::from)?
            {
                Response::DirectoryPart {
                    generation: g,
                    children,
                    complete,
                } => {
                    if generation.is_some_and(|old| old != g) {
                        continue 'restart;
                    }
                    generation = Some(g);
                    for n in &children {
                        offset += n.len() as u64 + 1;
                    }
                    names.extend(children);
                    if complete {
                        return Ok(names);
                    }
                }
                other => bail!("unexpected DIRECTORY_PART reply {other:?}"),
            }
        }
    }
}

/// RSS after creating `count` nodes as xsload's `nodes` mode does.
pub fn rss_at_nodes(server: &Server, count: u64) -> Result<(u64, u64)> {
    let idle = server.rss_kb().unwrap_or(0);
    let mut c = Conn::connect(&server.socket)?;
    let mut i = 0;
    let mut out = Vec::new();
    while i < count {
        out.clear();
        let batch = (count - i).min(256);
        for j in 0..batch {
            let k = i + j;
            c.encode(
                &Request::Write(format!("/bench/n/{}/{}", k / 100, k % 100), VALUE.to_vec()),
                0,
                &mut out,
            );
        }
        c.write_raw(&out)?;
        for _ in 0..batch {
            let p = c.recv_reply()?;
            ensure!(p.kind() != Some(MsgType::Error), "node write failed");
        }
        i += batch;
    }
    let full = server.rss_kb().unwrap_or(0);
    c.call(&Request::Rm("/bench/n".into()), 0)?;
    Ok((idle, full))
}
