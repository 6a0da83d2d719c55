//! `drvdom-topobench`: the toolstack at scale on the simulated host
//! (issue 11's benchmark; not a test).
//!
//! ```text
//! cargo build --release --workspace && sudo target/release/drvdom-topobench
//! ```
//!
//! For each layout (default: 1 driver domain × 100 guests, then 4 × 25),
//! it starts an empty simulated host (`sim::SimHost`), writes a host file
//! (each driver domain one NIC uplinked to `xenbr0`; each guest one vif
//! with an address), and times, through `topology` exactly as
//! `drvdom apply/plan/verify/destroy --lab` do:
//!
//! * `apply`: wall time; each guest's cost (the sum of its actions:
//!   create, name grant, vif attach) for the first 10 and the last 10
//!   guests of the file, and their ratio (target ≤ 1.5);
//! * `plan` on the applied host (target ≤ 0.5 s; it must be empty);
//! * `verify` (every check, ping between every pair of guests on a bridge
//!   and from each to the outside) and its check count;
//! * `destroy`.
//!
//! Timings are wall clock on this (shared, 2-core) machine; the load
//! average is printed with them. Everything is torn down at the end
//! (`sim::lab::down`), also on error.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use sim::lab::Bins;
use sim::{SimHost, StartConfig};
use topology::apply::{Progress, apply};
use topology::plan::{plan, plan_destroy};
use topology::{LoadOptions, Topology, parse_str};

/// Benchmark plan/apply/verify/destroy on a simulated host.
#[derive(Debug, Parser)]
#[command(name = "drvdom-topobench", version)]
struct Args {
    /// Layouts as DRIVER_DOMAINSxGUESTS, comma separated.
    #[arg(long, default_value = "1x100,4x25")]
    layouts: String,
    /// Directory for the labs (default: a temporary one).
    #[arg(long)]
    run_root: Option<PathBuf>,
    /// Skip verify (its pings dominate at large sizes).
    #[arg(long)]
    no_verify: bool,
}

fn host_file(dds: usize, per_dd: usize) -> String {
    let mut s = String::from("version = 1\n");
    for d in 0..dds {
        s.push_str(&format!(
            "[[driver_domain]]\nname = \"dd{d}\"\nnics = [\"0000:{:02x}:00.0\"]\n\
             [[driver_domain.bridge]]\nname = \"xenbr0\"\nuplink = \"0000:{:02x}:00.0\"\n",
            d + 3,
            d + 3
        ));
    }
    // Guests interleaved over the driver domains, in file order.
    for g in 0..dds * per_dd {
        let d = g % dds;
        s.push_str(&format!(
            "[[guest]]\nname = \"g{g}\"\n[[guest.vif]]\nbackend = \"dd{d}\"\nip = [\"10.{d}.{}.{}/16\"]\n",
            g / 200,
            g % 200 + 10
        ));
    }
    s
}

fn bins() -> anyhow::Result<Bins> {
    Ok(Bins {
        xenstored: sim::lab::find_binary("drvdom-xenstored", "DRVDOM_XENSTORED_BIN")?,
        agent: sim::lab::find_binary("drvdom-agent", "DRVDOM_AGENT_BIN")?,
        simkernel: sim::lab::find_binary("drvdom-simkernel", "DRVDOM_SIMKERNEL_BIN")?,
    })
}

struct Row {
    layout: String,
    actions: usize,
    apply: Duration,
    first10: f64,
    last10: f64,
    plan: Duration,
    plan_actions: usize,
    verify: Option<(Duration, usize, usize)>,
    destroy: Duration,
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

async fn one(
    args: &Args,
    root: &std::path::Path,
    idx: usize,
    dds: usize,
    per_dd: usize,
) -> anyhow::Result<Row> {
    let text = host_file(dds, per_dd);
    let topo: Topology = parse_str(&text, "bench.toml", None, &LoadOptions::default())
        .map_err(|d| anyhow::anyhow!("bench file: {d:?}"))?
        .topology;
    let name = format!("tb{}x{idx}", std::process::id() % 10000);
    let cfg = StartConfig {
        name: name.clone(),
        run_root: root.to_path_buf(),
        bins: bins()?,
        agent_args: Vec::new(),
    };
    let host = SimHost::start(&cfg)
        .await
        .context("start the simulated host")?;
    let res = measure(args, &host, &topo, dds, per_dd).await;
    drop(host);
    let _ = sim::lab::down(root, &name).await;
    res
}

#[allow(clippy::print_stdout)] // the benchmark's report: failing checks
async fn measure(
    args: &Args,
    host: &SimHost,
    topo: &Topology,
    dds: usize,
    per_dd: usize,
) -> anyhow::Result<Row> {
    let guests = dds * per_dd;
    let p = plan(host, topo).await?;
    let t = Instant::now();
    let mut per_guest = vec![0f64; guests];
    let r = apply(host, topo, &p.actions, &mut |ev| {
        if let Progress::Finished { result, .. } = ev {
            let target = result.action.kind.target();
            let g = target
                .strip_prefix('g')
                .and_then(|s| s.split(['/', '-']).next())
                .and_then(|s| s.parse::<usize>().ok());
            if let Some(g) = g.filter(|g| *g < guests) {
                per_guest[g] += result.millis as f64;
            }
        }
        ControlFlow::Continue(())
    })
    .await;
    let apply_time = t.elapsed();
    if let Some(f) = r.failure() {
        bail!("apply failed at {}: {}", f.action, f.detail);
    }
    let avg = |s: &[f64]| s.iter().sum::<f64>() / s.len().max(1) as f64;
    let first10 = avg(&per_guest[..10.min(guests)]);
    let last10 = avg(&per_guest[guests.saturating_sub(10)..]);
    // plan on the applied host: best of 3 (the first warms caches).
    let mut best = Duration::MAX;
    let mut plan_actions = 0;
    for _ in 0..3 {
        let t = Instant::now();
        let p = plan(host, topo).await?;
        best = best.min(t.elapsed());
        plan_actions = p.actions.len();
    }
    let verify = if args.no_verify {
        None
    } else {
        let t = Instant::now();
        let v = topology::verify::verify(host, topo, &mut |_| {}).await?;
        for c in v
            .checks
            .iter()
            .filter(|c| c.status == topology::verify::Status::Fail)
            .take(5)
        {
            #[allow(clippy::print_stdout)] // the benchmark's report
            {
                println!("  FAIL {} {}: {}", c.check, c.target, c.detail);
            }
        }
        Some((t.elapsed(), v.passed, v.failed))
    };
    let t = Instant::now();
    let d = plan_destroy(host, topo).await?;
    let r = apply(host, topo, &d.actions, &mut |_| ControlFlow::Continue(())).await;
    if let Some(f) = r.failure() {
        bail!("destroy failed at {}: {}", f.action, f.detail);
    }
    Ok(Row {
        layout: format!("{dds} x {per_dd}"),
        actions: p.actions.len(),
        apply: apply_time,
        first10,
        last10,
        plan: best,
        plan_actions,
        verify,
        destroy: t.elapsed(),
    })
}

#[allow(clippy::print_stdout)] // the benchmark's report
fn main() -> ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("error: start the runtime: {e}");
            }
            return ExitCode::FAILURE;
        }
    };
    let res: anyhow::Result<Vec<Row>> = rt.block_on(async {
        let tmp = tempfile::Builder::new().prefix("tb").tempdir_in("/tmp")?;
        let root = args
            .run_root
            .clone()
            .unwrap_or_else(|| tmp.path().to_path_buf());
        let mut rows = Vec::new();
        for (i, l) in args.layouts.split(',').enumerate() {
            let (a, b) = l
                .split_once('x')
                .with_context(|| format!("layout {l:?}: want DDxGUESTS"))?;
            let (dds, per): (usize, usize) = (a.trim().parse()?, b.trim().parse()?);
            println!("layout {dds} x {per}: load average {}", loadavg());
            rows.push(one(&args, &root, i, dds, per).await?);
        }
        Ok(rows)
    });
    let rows = match res {
        Ok(r) => r,
        Err(e) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("error: {e:#}");
            }
            return ExitCode::FAILURE;
        }
    };
    println!(
        "\n| layout | actions | apply | per guest first 10 | last 10 | ratio (≤1.5) | plan applied (≤0.5 s) | verify (checks) | destroy |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut ok = true;
    for r in &rows {
        let ratio = r.last10 / r.first10.max(0.001);
        ok &= ratio <= 1.5 && r.plan.as_secs_f64() <= 0.5 && r.plan_actions == 0;
        let verify = match r.verify {
            Some((d, p, f)) => {
                ok &= f == 0;
                format!("{:.2} s ({p} pass, {f} fail)", d.as_secs_f64())
            }
            None => "skipped".into(),
        };
        println!(
            "| {} | {} | {:.2} s | {:.1} ms | {:.1} ms | {:.2} | {:.3} s ({} actions) | {} | {:.2} s |",
            r.layout,
            r.actions,
            r.apply.as_secs_f64(),
            r.first10,
            r.last10,
            ratio,
            r.plan.as_secs_f64(),
            r.plan_actions,
            verify,
            r.destroy.as_secs_f64()
        );
    }
    println!("load average after: {}", loadavg());
    if ok {
        ExitCode::SUCCESS
    } else {
        println!("a target was missed (see the table)");
        ExitCode::FAILURE
    }
}
