//! `drvdom-xsbench`: one run, the same loads against drvdom-xenstored,
//! Debian's cxenstored and oxenstored (Xen 4.17, started without Xen by the
//! peer kit in `peers/xenstored`), and a raw unix-socket echo server that
//! marks the speed limit of a synchronous round trip. Prints a table of
//! ops/s, p50/p99 latency, RSS, and the ratios the xenstore issue sets as
//! targets. A benchmark, not a test: it asserts nothing about speed.

#![allow(clippy::print_stdout, clippy::print_stderr)] // a report printer
#![allow(missing_docs)]

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

mod conn;
mod loads;
mod servers;

use loads::Stats;
use servers::{Kind, Server};

/// Benchmark drvdom-xenstored against the reference xenstore servers.
#[derive(Parser, Debug)]
#[command(name = "drvdom-xsbench", version)]
struct Args {
    /// Multiply every operation count (0.1 for a quick smoke run).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Largest tree for the node-scaling test on our server.
    #[arg(long, default_value_t = 1_000_000)]
    nodes: u64,
    /// Largest tree for the peers (cxenstored slows to ~2k writes/s past 100k nodes).
    #[arg(long, default_value_t = 100_000)]
    peer_nodes: u64,
    /// Skip the reference servers (when Debian's xen-utils-4.17 is absent).
    #[arg(long)]
    no_peers: bool,
    /// Internal: serve the raw echo protocol on this socket (the benchmark
    /// starts itself this way).
    #[arg(long, hide = true)]
    serve_echo: Option<std::path::PathBuf>,
    /// Run only these servers (comma separated: echo,drvdom,cxenstored,oxenstored).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

fn n(args: &Args, base: u64) -> u64 {
    ((base as f64 * args.scale) as u64).max(10)
}

#[derive(Default)]
struct Results {
    write: Option<Stats>,
    read: Option<Stats>,
    tx10: Option<Stats>,
    pipe: Option<Stats>,
    conns8: Option<Stats>,
    watch: Option<Stats>,
    cost_small: Option<Stats>,
    cost_big: Option<(u64, Stats)>,
    watches0: Option<Stats>,
    watches10k: Option<Stats>,
    doms1: Option<Stats>,
    doms1000: Option<Stats>,
    dir: Option<(std::time::Duration, usize)>,
    rss: Option<(u64, u64)>,
}

fn step<T>(what: &str, kind: Kind, f: impl FnOnce() -> Result<T>) -> Option<T> {
    eprint!("  {:<11} {what:<38}", kind.name());
    let t = std::time::Instant::now();
    match f() {
        Ok(v) => {
            eprintln!(" {:>7.2}s", t.elapsed().as_secs_f64());
            Some(v)
        }
        Err(e) => {
            eprintln!(" FAILED: {e:#}");
            None
        }
    }
}

fn run_server(kind: Kind, a: &Args) -> Result<Results> {
    let mut r = Results::default();
    {
        let s = Server::start(kind, &[])?;
        let sock = &s.socket;
        r.write = step("write, 1 connection", kind, || {
            loads::write_1c(sock, n(a, 20_000))
        });
        r.read = step("read, 1 connection", kind, || {
            loads::read_1c(sock, n(a, 20_000))
        });
        r.tx10 = step("transactions of 10 writes", kind, || {
            loads::tx10(sock, n(a, 1_000))
        });
        r.pipe = step("write, 64 in flight", kind, || {
            loads::pipelined(sock, n(a, 100_000), 64)
        });
        r.conns8 = step("write, 8 connections", kind, || {
            loads::concurrent(sock, 8, n(a, 5_000))
        });
        if kind != Kind::Echo {
            r.watch = step("watch event latency", kind, || {
                loads::watch_latency(sock, n(a, 5_000))
            });
        }
    }
    if kind == Kind::Echo {
        return Ok(r);
    }
    let big = if kind == Kind::Ours {
        a.nodes
    } else {
        a.peer_nodes
    };
    {
        let s = Server::start(kind, &[])?;
        r.cost_small = step("write cost at 1k nodes", kind, || {
            loads::write_cost_at(&s.socket, 1_000, n(a, 5_000))
        });
        r.cost_big = step(&format!("write cost at {big} nodes"), kind, || {
            Ok((big, loads::write_cost_at(&s.socket, big, n(a, 5_000))?))
        });
    }
    {
        let s = Server::start(kind, &[])?;
        r.watches0 = step("write cost, no watches", kind, || {
            loads::write_cost_with_watches(&s.socket, 0, n(a, 5_000))
        });
        r.watches10k = step("write cost, 10,000 other watches", kind, || {
            loads::write_cost_with_watches(&s.socket, 10_000, n(a, 5_000))
        });
    }
    {
        let s = Server::start(kind, &[])?;
        r.doms1 = step("write cost, 1 domain connected", kind, || {
            loads::write_cost_with_domains(&s, 1, n(a, 5_000))
        });
        r.doms1000 = step("write cost, 1,000 domains connected", kind, || {
            loads::write_cost_with_domains(&s, 1000, n(a, 5_000))
        });
    }
    {
        let s = Server::start(kind, &[])?;
        r.dir = step("10,000-child directory", kind, || {
            loads::big_directory(&s.socket, 10_000)
        });
        r.rss = step("RSS at 100k nodes", kind, || {
            loads::rss_at_nodes(&s, 100_000)
        });
    }
    Ok(r)
}

fn cell(s: &Option<Stats>) -> String {
    match s {
        Some(s) => format!(
            "{:.0}/s p50 {:.1} p99 {:.1}",
            s.ops_per_s(),
            s.pct(0.5),
            s.pct(0.99)
        ),
        None => "-".into(),
    }
}

fn main() -> ExitCode {
    let a = Args::parse();
    if let Some(sock) = &a.serve_echo {
        return match servers::echo_serve(sock) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("echo server: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    servers::raise_nofile();
    let mut kinds = vec![Kind::Echo, Kind::Ours];
    if !a.no_peers {
        if servers::peers_installed() {
            kinds.extend([Kind::Cx, Kind::Ox]);
        } else {
            eprintln!(
                "note: Debian's xen-utils-4.17 is not installed; running without peers (apt-get install xen-utils-4.17)"
            );
        }
    }
    if !a.only.is_empty() {
        kinds.retain(|k| a.only.iter().any(|o| o == k.name()));
    }
    let mut results = Vec::new();
    for k in &kinds {
        eprintln!("== {}", k.name());
        match run_server(*k, &a) {
            Ok(r) => results.push((*k, r)),
            Err(e) => {
                eprintln!("error: {}: {e:#}", k.name());
                return ExitCode::FAILURE;
            }
        }
    }
    report(&results);
    ExitCode::SUCCESS
}

fn get(results: &[(Kind, Results)], k: Kind) -> Option<&Results> {
    results.iter().find(|(kk, _)| *kk == k).map(|(_, r)| r)
}

fn report(results: &[(Kind, Results)]) {
    let names: Vec<&str> = results.iter().map(|(k, _)| k.name()).collect();
    println!("\n| test | {} |", names.join(" | "));
    println!("|---|{}", "---|".repeat(names.len()));
    type Pick = fn(&Results) -> &Option<Stats>;
    let rows: [(&str, Pick); 6] = [
        ("write, 1 conn (sync)", |r| &r.write),
        ("read, 1 conn (sync)", |r| &r.read),
        ("tx of 10 writes, 1 conn", |r| &r.tx10),
        ("write, 64 in flight", |r| &r.pipe),
        ("write, 8 connections", |r| &r.conns8),
        ("watch event latency", |r| &r.watch),
    ];
    for (label, pick) in rows {
        let cols: Vec<String> = results.iter().map(|(_, r)| cell(pick(r))).collect();
        println!("| {label} | {} |", cols.join(" | "));
    }
    let p50 = |s: &Option<Stats>| s.as_ref().map(|s| s.pct(0.5));
    let scale_row = |label: &str, f: &dyn Fn(&Results) -> String| {
        let cols: Vec<String> = results.iter().map(|(_, r)| f(r)).collect();
        println!("| {label} | {} |", cols.join(" | "));
    };
    scale_row(
        "write p50 µs: 1k nodes → big tree",
        &|r| match (p50(&r.cost_small), &r.cost_big) {
            (Some(a), Some((n, b))) => {
                format!("{a:.1} → {:.1} at {n} ({:.2}×)", b.pct(0.5), b.pct(0.5) / a)
            }
            _ => "-".into(),
        },
    );
    scale_row("write p50 µs: 0 → 10k other watches", &|r| match (
        p50(&r.watches0),
        p50(&r.watches10k),
    ) {
        (Some(a), Some(b)) => format!("{a:.1} → {b:.1} ({:.2}×)", b / a),
        _ => "-".into(),
    });
    scale_row(
        "write p50 µs: 1 → 1000 domains*",
        &|r| match (p50(&r.doms1), p50(&r.doms1000)) {
            (Some(a), Some(b)) => format!("{a:.1} → {b:.1} ({:.2}×)", b / a),
            _ => "-".into(),
        },
    );
    scale_row("10,000-child directory", &|r| match &r.dir {
        Some((d, n)) => format!("{n} listed OK in {:.1} ms", d.as_secs_f64() * 1e3),
        None => "-".into(),
    });
    scale_row("RSS idle → 100k nodes", &|r| match &r.rss {
        Some((i, f)) => format!("{i} KB → {f} KB"),
        None => "-".into(),
    });
    println!(
        "\n*domains: drvdom-xenstored serves each introduced domain on its own socket; the 4.17 peers see every socket client as dom0, so they get 1000 plain connections."
    );

    // Ratios against the targets of the xenstore issue.
    let Some(ours) = get(results, Kind::Ours) else {
        return;
    };
    let echo = get(results, Kind::Echo);
    let peers: Vec<&Results> = [Kind::Cx, Kind::Ox]
        .iter()
        .filter_map(|k| get(results, *k))
        .collect();
    let rate = |s: &Option<Stats>| s.as_ref().map(Stats::ops_per_s);
    let best_peer_rate = |pick: Pick| {
        peers
            .iter()
            .filter_map(|r| rate(pick(r)))
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
    };
    println!("\n| target | measured | goal | met |");
    println!("|---|---|---|---|");
    let line = |what: &str, v: Option<f64>, goal: &str, ok: fn(f64) -> bool| match v {
        Some(v) => println!(
            "| {what} | {v:.2}× | {goal} | {} |",
            if ok(v) { "yes" } else { "NO" }
        ),
        None => println!("| {what} | - | {goal} | n/a |"),
    };
    // A synchronous round trip's speed is 1/latency: compare medians, which
    // a shared, noisy machine disturbs far less than means.
    let vs_echo = |pick: Pick| match (p50(pick(ours)), echo.and_then(|e| p50(pick(e)))) {
        (Some(o), Some(e)) if o > 0.0 => Some(e / o),
        _ => None,
    };
    line(
        "sync read vs echo (p50)",
        vs_echo(|r| &r.read),
        "≥0.8×",
        |v| v >= 0.8,
    );
    line(
        "sync write vs echo",
        vs_echo(|r| &r.write),
        "≥0.8×",
        |v| v >= 0.8,
    );
    line(
        "tx of 10 writes vs echo (12 round trips)",
        vs_echo(|r| &r.tx10),
        "≥0.8×",
        |v| v >= 0.8,
    );
    let vs_peer = |pick: Pick| match (rate(pick(ours)), best_peer_rate(pick)) {
        (Some(o), Some(p)) if p > 0.0 => Some(o / p),
        _ => None,
    };
    line(
        "64 in flight vs best peer",
        vs_peer(|r| &r.pipe),
        "≥3×",
        |v| v >= 3.0,
    );
    line(
        "8 connections vs best peer",
        vs_peer(|r| &r.conns8),
        "≥3×",
        |v| v >= 3.0,
    );
    let best_watch = peers
        .iter()
        .filter_map(|r| p50(&r.watch))
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.min(v))));
    line(
        "watch latency p50 vs best peer",
        p50(&ours.watch).zip(best_watch).map(|(o, p)| o / p),
        "≤0.6×",
        |v| v <= 0.6,
    );
    line(
        "write cost at 1M nodes vs 1k",
        p50(&ours.cost_small)
            .zip(ours.cost_big.as_ref().map(|(_, s)| s.pct(0.5)))
            .map(|(a, b)| b / a),
        "≤1.5×",
        |v| v <= 1.5,
    );
    line(
        "write cost with 10k watches vs none",
        p50(&ours.watches0)
            .zip(p50(&ours.watches10k))
            .map(|(a, b)| b / a),
        "≤1.5×",
        |v| v <= 1.5,
    );
    line(
        "write cost with 1000 domains vs 1",
        p50(&ours.doms1)
            .zip(p50(&ours.doms1000))
            .map(|(a, b)| b / a),
        "≤1.5×",
        |v| v <= 1.5,
    );
    let best_rss = peers
        .iter()
        .filter_map(|r| r.rss.map(|(_, f)| f as f64))
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.min(v))));
    line(
        "RSS at 100k nodes vs best peer",
        ours.rss
            .map(|(_, f)| f as f64)
            .zip(best_rss)
            .map(|(o, p)| o / p),
        "≤0.6×",
        |v| v <= 0.6,
    );
}
