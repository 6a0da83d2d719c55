//! `drvdom-xsbench`: one run, the same loads against drvdom-xenstored,
//! Debian's cxenstored and oxenstored (Xen 4.17, started without Xen by the
//! peer kit in `peers/xenstored`), and a raw unix-socket echo server that
//! marks the speed limit of a synchronous round trip. A benchmark, not a
//! test: it asserts nothing, it prints figures and their ratios to the
//! targets of issue 15.
//!
//! * Cost rows count instead of timing (`costs`): user-space instructions
//!   per operation (callgrind) and system calls per operation (strace),
//!   each from two runs of the same load with N1 and N2 operations.
//! * Timed rows (throughput, latency, attacks) run in warm-CPU mode unless
//!   `--cold` (`host`); the report prints the machine's load before and
//!   after.
//! * `--quick` runs everything bounded (about a tenth of the work).

#![allow(clippy::print_stdout, clippy::print_stderr)] // a report printer
#![allow(missing_docs)]

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

mod attacks;
mod conn;
mod costs;
mod host;
mod loads;
mod report;
mod servers;

use loads::Stats;
use servers::{Kind, Server};

/// Benchmark drvdom-xenstored against the reference xenstore servers.
#[derive(Parser, Debug)]
#[command(name = "drvdom-xsbench", version)]
pub struct Args {
    /// Bounded run: about a tenth of the operations, 100k nodes instead of
    /// 1M, shorter attacks.
    #[arg(long)]
    quick: bool,
    /// Multiply every timed operation count.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Tree size of the instructions-per-write scaling row (ours).
    #[arg(long)]
    nodes: Option<u64>,
    /// Do not keep the CPUs warm during timed rows.
    #[arg(long)]
    cold: bool,
    /// Skip the reference servers (when Debian's xen-utils-4.17 is absent).
    #[arg(long)]
    no_peers: bool,
    /// Run only these sections (comma separated: costs,speed,scaling,memory,attacks).
    #[arg(long, value_delimiter = ',')]
    sections: Vec<String>,
    /// Run only these servers (comma separated: echo,drvdom,cxenstored,oxenstored).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Internal: serve the raw echo protocol on this socket (the benchmark
    /// starts itself this way).
    #[arg(long, hide = true)]
    serve_echo: Option<std::path::PathBuf>,
}

impl Args {
    fn n(&self, base: u64) -> u64 {
        let q = if self.quick { 0.1 } else { 1.0 };
        ((base as f64 * self.scale * q) as u64).max(10)
    }

    fn wants(&self, section: &str) -> bool {
        self.sections.is_empty() || self.sections.iter().any(|s| s == section)
    }
}

/// Everything measured for one server.
#[derive(Default)]
pub struct Results {
    pub cost: [costs::Cost; 4],
    pub write: Option<Stats>,
    pub read: Option<Stats>,
    pub tx10: Option<Stats>,
    pub pipe: Option<Stats>,
    pub conns8: Option<Stats>,
    pub watch: Option<Stats>,
    pub dir: Option<(std::time::Duration, usize)>,
    pub rss: Option<(u64, u64)>,
}

/// The loads of the cost rows: (label, load, N1, N2).
pub const COST_LOADS: [(&str, costs::Load, u64, u64); 4] = [
    ("sync read", loads::read_1c, 1000, 6000),
    ("sync write", loads::write_1c, 1000, 6000),
    ("tx of 10 writes", loads::tx10, 100, 600),
    ("watch delivery", loads::watch_latency, 500, 3000),
];

/// Our server's instructions per write before/after (scaling rows).
#[derive(Default)]
pub struct Scaling {
    pub nodes: Option<(u64, f64, f64)>,
    pub watches: Option<(f64, f64)>,
    pub domains: Option<(f64, f64)>,
}

fn step<T>(what: &str, kind: &str, f: impl FnOnce() -> Result<T>) -> Option<T> {
    eprint!("  {kind:<11} {what:<44}");
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

/// N1 and N2 of a cost row (a third of them in a quick run).
pub fn cost_ns(quick: bool, n1: u64, n2: u64) -> (u64, u64) {
    if quick { (n1 / 3, n2 / 3) } else { (n1, n2) }
}

fn costs_of(kind: Kind, a: &Args, r: &mut Results) {
    for (i, (label, load, n1, n2)) in COST_LOADS.iter().enumerate() {
        let (n1, n2) = cost_ns(a.quick, *n1, *n2);
        r.cost[i].instr = step(
            &format!("{label}: instructions (callgrind)"),
            kind.name(),
            || costs::instructions(kind, *load, n1, n2),
        );
        r.cost[i].syscalls = step(
            &format!("{label}: system calls (strace)"),
            kind.name(),
            || costs::syscalls(kind, *load, n1, n2),
        );
    }
}

/// The timed rows, interleaved: every server runs, then each row runs in
/// `ROUNDS` rounds, and in each round on every server one after the
/// other, so the servers share the machine's ups and downs (other
/// engineers' builds, a VM) instead of one of them getting a bad minute.
fn speed_all(results: &mut [(Kind, Results)], a: &Args) {
    const ROUNDS: u64 = 5;
    let servers: Vec<Option<Server>> = results
        .iter()
        .map(|(k, _)| match Server::start(*k, &[]) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("error: {}: {e:#}", k.name());
                None
            }
        })
        .collect();
    type Row = (
        &'static str,
        fn(&std::path::Path, u64) -> Result<Stats>,
        u64,
        bool,
    );
    let rows: [Row; 6] = [
        ("write, 1 connection", loads::write_1c, 20_000, true),
        ("read, 1 connection", loads::read_1c, 20_000, true),
        ("transactions of 10 writes", loads::tx10, 1_000, true),
        (
            "write, 64 in flight",
            |s, n| loads::pipelined(s, n, 64),
            100_000,
            true,
        ),
        (
            "write, 8 connections",
            |s, n| loads::concurrent(s, 8, n),
            5_000,
            true,
        ),
        ("watch event latency", loads::watch_latency, 5_000, false),
    ];
    for (ri, (label, load, base, echo_too)) in rows.iter().enumerate() {
        for round in 0..ROUNDS {
            for ((k, r), s) in results.iter_mut().zip(&servers) {
                let Some(s) = s else { continue };
                if *k == Kind::Echo && !echo_too {
                    continue;
                }
                let what = format!("{label} (round {}/{ROUNDS})", round + 1);
                let n = (a.n(*base) / ROUNDS).max(10);
                if let Some(st) = step(&what, k.name(), || load(&s.socket, n)) {
                    let slot = match ri {
                        0 => &mut r.write,
                        1 => &mut r.read,
                        2 => &mut r.tx10,
                        3 => &mut r.pipe,
                        4 => &mut r.conns8,
                        _ => &mut r.watch,
                    };
                    match slot {
                        Some(acc) => acc.merge(st),
                        None => *slot = Some(st),
                    }
                }
            }
        }
    }
}

fn memory_of(kind: Kind, r: &mut Results) -> Result<()> {
    // a fresh server for each: RSS is what holding 100k nodes costs
    let s = Server::start(kind, &[])?;
    r.rss = step("RSS at 100k nodes", kind.name(), || {
        loads::rss_at_nodes(&s, 100_000)
    });
    drop(s);
    let s = Server::start(kind, &[])?;
    r.dir = step("10,000-child directory", kind.name(), || {
        loads::big_directory(&s.socket, 10_000)
    });
    Ok(())
}

fn scaling(a: &Args) -> Scaling {
    let nodes = a.nodes.unwrap_or(if a.quick { 100_000 } else { 1_000_000 });
    let (n1, n2) = if a.quick { (300, 1300) } else { (1000, 6000) };
    let name = Kind::Ours.name();
    let mut s = Scaling::default();
    s.nodes = step(
        &format!("write instructions: 1k → {nodes} nodes"),
        name,
        || {
            let r = costs::write_scaling(
                n1,
                n2,
                |s| {
                    let mut c = conn::Conn::connect(&s.socket)?;
                    loads::fill(&mut c, "s", 0, 1_000)
                },
                |s| {
                    let mut c = conn::Conn::connect(&s.socket)?;
                    loads::fill(&mut c, "s", 1_000, nodes.saturating_sub(1_000))
                },
            )?;
            // (the fills' connections closed; the nodes stay)
            Ok((nodes, r.0, r.1))
        },
    );
    s.watches = step("write instructions: 0 → 10,000 watches", name, || {
        costs::write_scaling(
            n1,
            n2,
            |_| Ok(()),
            |s| loads::hold_watches(&s.socket, 10_000),
        )
    });
    s.domains = step("write instructions: 1 → 1,000 domains", name, || {
        costs::write_scaling(
            n1,
            n2,
            |s| loads::hold_domains(s, 1, 1),
            |s| loads::hold_domains(s, 2, 1000),
        )
    });
    s
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
    let load_before = host::loadavg();
    let started = std::time::Instant::now();
    let mut results: Vec<(Kind, Results)> =
        kinds.iter().map(|k| (*k, Results::default())).collect();
    if a.wants("costs") {
        eprintln!("== cost per operation (callgrind, strace)");
        for (k, r) in results.iter_mut().filter(|(k, _)| *k != Kind::Echo) {
            costs_of(*k, &a, r);
        }
    }
    let scale = if a.wants("scaling") && kinds.contains(&Kind::Ours) {
        eprintln!("== scaling of our write cost (callgrind)");
        scaling(&a)
    } else {
        Scaling::default()
    };
    if a.wants("memory") {
        eprintln!("== memory");
        for (k, r) in results.iter_mut().filter(|(k, _)| *k != Kind::Echo) {
            if let Err(e) = memory_of(*k, r) {
                eprintln!("error: {}: {e:#}", k.name());
            }
        }
    }
    let warm = if a.cold {
        None
    } else {
        match host::Warm::start() {
            Ok(w) => Some(w),
            Err(e) => {
                eprintln!(
                    "warning: cannot start the warm-CPU busy loops ({e}); timed rows run cold"
                );
                None
            }
        }
    };
    let warm_loops = warm.as_ref().map_or(0, host::Warm::count);
    if a.wants("speed") {
        eprintln!("== throughput and latency (interleaved rounds)");
        speed_all(&mut results, &a);
    }
    let mut attacks = Vec::new();
    if a.wants("attacks") && kinds.contains(&Kind::Ours) {
        eprintln!("== attacks on drvdom-xenstored");
        let reads = if a.quick { 600 } else { 3000 };
        for (i, name) in attacks::ATTACKS.iter().enumerate() {
            if let Some(r) = step(name, Kind::Ours.name(), || attacks::run(i, reads)) {
                attacks.push(r);
            }
        }
    }
    drop(warm);
    let run = report::Run {
        load_before,
        load_after: host::loadavg(),
        cores: host::cores(),
        warm_loops,
        quick: a.quick,
        minutes: started.elapsed().as_secs_f64() / 60.0,
    };
    report::print(&run, &results, &scale, &attacks);
    ExitCode::SUCCESS
}
