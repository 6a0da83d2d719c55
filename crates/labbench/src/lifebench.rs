//! `drvdom-lifebench`: issue 13's benchmark. A driver domain serving 100
//! vifs (10 guests × 10) restarts; how long until every vif is Connected
//! again toward its new domid, and how long each guest was cut off.
//!
//! # Running it
//!
//! ```text
//! cargo build --release --workspace && sudo target/release/drvdom-lifebench
//! ```
//!
//! Needs root and `drvdom`, `drvdom-xenstored`, `drvdom-agent` and
//! `drvdom-simkernel` next to it (or in `--bin-dir`). It brings up a lab
//! with `drvdom lab up --topology` (the lab's dom0 runs `drvdom
//! reconcile`), then, per round:
//!
//! 1. starts one prober per guest, on a thread inside the guest's network
//!    namespace: an ICMP echo to the outside host (beyond the driver
//!    domain's NIC, through its bridge) every `--probe-ms` (10 ms), each
//!    waiting at most that long for its answer;
//! 2. runs `drvdom lab restart dd --json` (the domain dies as Xen kills
//!    it, comes back with a new domid; the command returns when its agent
//!    is ready: `ready_ms`);
//! 3. waits with xenstore watches for every vif's backend (under the new
//!    domid) and frontend to be Connected with hotplug done, noting when;
//! 4. stops the probers once every guest answers again.
//!
//! Figures: ready → all Connected (total, per vif), first and last vif,
//! and per guest the connectivity gap (first lost probe → first answered
//! one after it), p50 and p99 over the guests. Timings are wall clock on
//! a shared machine (its load average is printed); xl alone does nothing
//! here until a person detaches and re-attaches each vif.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Parser;
use xenbus::{BackendPath, DevId, XenbusState};
use xenstore::{AsyncClient, DomId};

/// The outside host beyond the driver domain's NIC (the lab's).
const OUTSIDE: &str = "198.51.100.254";

/// Benchmark a driver-domain restart under `drvdom reconcile`.
#[derive(Debug, Parser)]
#[command(name = "drvdom-lifebench", version)]
struct Args {
    /// Guests.
    #[arg(long, default_value_t = 10)]
    guests: u8,
    /// Vifs per guest (the first of each carries the guest's address).
    #[arg(long, default_value_t = 10)]
    vifs_per_guest: u8,
    /// Restarts measured.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Probe interval (and each probe's timeout), ms.
    #[arg(long, default_value_t = 10)]
    probe_ms: u64,
    /// Where drvdom and the lab's programs are (default: next to this).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The lab, torn down on drop.
struct Lab {
    drvdom: PathBuf,
    root: tempfile::TempDir,
    name: String,
}

impl Lab {
    fn cmd(&self) -> Command {
        let mut c = Command::new(&self.drvdom);
        c.env("DRVDOM_LAB_ROOT", self.root.path());
        c
    }

    fn ok(&self, args: &[&str]) -> anyhow::Result<String> {
        let o = self
            .cmd()
            .args(args)
            .output()
            .with_context(|| format!("run drvdom {args:?}"))?;
        if !o.status.success() {
            bail!(
                "drvdom {args:?} failed: {}\n{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    }

    fn domid(&self, name: &str) -> anyhow::Result<u16> {
        let text = std::fs::read(self.root.path().join(&self.name).join("state.json"))?;
        let st: serde_json::Value = serde_json::from_slice(&text)?;
        st["domains"]
            .as_array()
            .and_then(|a| a.iter().find(|d| d["name"] == name))
            .and_then(|d| d["domid"].as_u64())
            .and_then(|d| u16::try_from(d).ok())
            .with_context(|| format!("no domain {name} in the lab"))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self
            .cmd()
            .args(["lab", "down", "--lab", &self.name])
            .output();
    }
}

fn host_file(guests: u8, vifs: u8) -> String {
    let mut s = String::from(
        "version = 1\n\n[[driver_domain]]\nname = \"dd\"\nnics = [\"0000:03:00.0\"]\n\n\
         [[driver_domain.bridge]]\nname = \"xenbr0\"\nuplink = \"0000:03:00.0\"\n",
    );
    for g in 0..guests {
        s.push_str(&format!("\n[[guest]]\nname = \"g{g}\"\n"));
        for v in 0..vifs {
            s.push_str(&format!(
                "\n[[guest.vif]]\nbackend = \"dd\"\nmac = \"00:16:3e:b0:{g:02x}:{v:02x}\"\n"
            ));
            if v == 0 {
                s.push_str(&format!("ip = [\"198.51.100.{}/24\"]\n", 10 + u16::from(g)));
            }
        }
    }
    s
}

/// Probe `addr` every `every` from inside namespace `ns` until `stop`:
/// (send time in ms since the epoch, answered).
async fn prober(
    ns: PathBuf,
    addr: IpAddr,
    every: Duration,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Vec<(u64, bool)>> {
    let v = sim::netns::on_thread_in(&ns, move || {
        let mut out = Vec::new();
        let mut next = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let t = now_ms();
            let ok = matches!(sim::icmp::probe_here(addr, every), Ok(Some(_)));
            out.push((t, ok));
            next += every;
            // The probe cadence of a benchmark, not a wait in a test.
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        Ok(out)
    })
    .await?;
    Ok(v)
}

/// First probe lost from `from` on → first answered one after it, ms.
fn gap(samples: &[(u64, bool)], from: u64) -> Option<u64> {
    let lost = samples.iter().position(|s| s.0 >= from && !s.1)?;
    let back = samples[lost..].iter().find(|s| s.1)?;
    Some(back.0 - samples[lost].0)
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Wait until vif `devid` of `fe` is Connected on both ends toward `be`
/// with hotplug done; when (ms since the epoch).
async fn connected(xs: AsyncClient, fe: DomId, be: DomId, devid: DevId) -> anyhow::Result<u64> {
    let bp = BackendPath::vif(be, fe, devid);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    // The backend directory does not exist yet: watch where it appears
    // (a watch fires for changes below its path, also on creation) and
    // the frontend's state.
    let (t1, t2) = (
        xenbus::unique_token("lifebench"),
        xenbus::unique_token("lifebench"),
    );
    let mut wb = xs.watch(&bp.path(), &t1).await?;
    let mut wf = xs.watch(&bp.frontend().state(), &t2).await?;
    let connected = XenbusState::Connected.to_wire();
    loop {
        let read = |p: String| {
            let xs = xs.clone();
            async move { xs.read_opt(&p).await.ok().flatten() }
        };
        let bs = read(bp.state()).await;
        let fs = read(bp.frontend().state()).await;
        let hp = read(bp.key("hotplug-status")).await;
        if bs.as_deref() == Some(connected.as_bytes())
            && fs.as_deref() == Some(connected.as_bytes())
            && hp.as_deref() == Some(b"connected".as_slice())
        {
            return Ok(now_ms());
        }
        let woke = tokio::select! {
            r = tokio::time::timeout_at(deadline, wb.recv()) => r,
            r = tokio::time::timeout_at(deadline, wf.recv()) => r,
        };
        match woke {
            Ok(Some(Ok(_))) => {}
            _ => bail!("{} not Connected in time", bp.path()),
        }
    }
}

struct Round {
    restart_ms: u64,
    total_ms: u64,
    first_ms: u64,
    gaps: Vec<u64>,
    lost_guests: usize,
}

async fn round(lab: &Lab, xs: &AsyncClient, args: &Args) -> anyhow::Result<Round> {
    let stop = Arc::new(AtomicBool::new(false));
    let outside: IpAddr = OUTSIDE.parse()?;
    let every = Duration::from_millis(args.probe_ms);
    let mut probers = Vec::new();
    let mut guests = Vec::new();
    for g in 0..args.guests {
        let name = format!("g{g}");
        guests.push(DomId(lab.domid(&name)?));
        let ns = sim::netns::ns_path(&sim::netns::ns_name(&lab.name, &name));
        probers.push(tokio::spawn(prober(ns, outside, every, stop.clone())));
    }
    // Let every prober get answers before the restart.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let out = lab.ok(&["lab", "restart", "dd", "--json", "--lab", &lab.name])?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    let d = &v["domains"][0];
    let (died, ready) = (
        d["died_ms"].as_u64().context("died_ms")?,
        d["ready_ms"].as_u64().context("ready_ms")?,
    );
    let be = DomId(u16::try_from(
        d["new_domid"].as_u64().context("new_domid")?,
    )?);
    let mut waits = Vec::new();
    for fe in &guests {
        for n in 0..args.vifs_per_guest {
            waits.push(tokio::spawn(connected(
                xs.clone(),
                *fe,
                be,
                DevId(u32::from(n)),
            )));
        }
    }
    let mut times = Vec::new();
    for w in waits {
        times.push(w.await??);
    }
    times.sort_unstable();
    // Probe on for a while after the last vif is back: a guest answers
    // once its interface is configured again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let mut gaps = Vec::new();
    let mut lost_guests = 0;
    for p in probers {
        let s = p.await??;
        match gap(&s, died) {
            Some(g) => gaps.push(g),
            None if s.iter().any(|x| x.0 >= died && !x.1) => lost_guests += 1,
            None => gaps.push(0),
        }
    }
    gaps.sort_unstable();
    Ok(Round {
        restart_ms: ready.saturating_sub(died),
        total_ms: times[times.len() - 1].saturating_sub(ready),
        first_ms: times[0].saturating_sub(ready),
        gaps,
        lost_guests,
    })
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

#[allow(clippy::print_stdout)] // the benchmark's report
async fn run(args: Args) -> anyhow::Result<()> {
    let dir = match &args.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()?
            .parent()
            .map(Path::to_path_buf)
            .context("the directory of this program")?,
    };
    let drvdom = dir.join("drvdom");
    if !drvdom.is_file() {
        bail!("no drvdom in {} (build the workspace first)", dir.display());
    }
    let lab = Lab {
        drvdom,
        root: tempfile::Builder::new().prefix("lifebench").tempdir()?,
        name: format!("lb{:x}", std::process::id() % 0xffff),
    };
    let file = lab.root.path().join("host.toml");
    std::fs::write(&file, host_file(args.guests, args.vifs_per_guest))?;
    let n = usize::from(args.guests) * usize::from(args.vifs_per_guest);
    println!(
        "lab up: 1 driver domain, {} guests x {} vifs = {n} vifs (load {})",
        args.guests,
        args.vifs_per_guest,
        loadavg()
    );
    let t = Instant::now();
    lab.ok(&[
        "lab",
        "up",
        "--detach",
        "--lab",
        &lab.name,
        "--topology",
        file.to_str().context("path")?,
    ])?;
    println!("  up in {:.1} s", t.elapsed().as_secs_f64());
    let xs = AsyncClient::connect(lab.root.path().join(&lab.name).join("xenstored.sock")).await?;
    println!();
    println!(
        "round  dd restart  ready->all {n} Connected  per vif  first vif  guest gap p50  p99  max  load"
    );
    let mut worst = 0;
    for r in 0..args.rounds {
        let x = round(&lab, &xs, &args).await?;
        worst = worst.max(x.total_ms);
        println!(
            "{r:>5}  {:>7} ms  {:>19} ms  {:>5.1} ms  {:>6} ms  {:>10} ms  {:>4}  {:>4}  {}{}",
            x.restart_ms,
            x.total_ms,
            x.total_ms as f64 / n as f64,
            x.first_ms,
            pct(&x.gaps, 0.5),
            pct(&x.gaps, 0.99),
            x.gaps.last().copied().unwrap_or(0),
            loadavg(),
            if x.lost_guests > 0 {
                format!("  ({} guests never answered again)", x.lost_guests)
            } else {
                String::new()
            }
        );
    }
    println!();
    println!(
        "target: all {n} back within 2000 ms of the agent being ready: worst {worst} ms ({})",
        if worst <= 2000 { "met" } else { "NOT met" }
    );
    println!("xl alone: no vif comes back until a person detaches and re-attaches each one.");
    Ok(())
}

#[allow(clippy::print_stderr)] // the program's own error report
fn main() -> ExitCode {
    let args = Args::parse();
    if !nix::unistd::geteuid().is_root() {
        eprintln!("drvdom-lifebench needs root (namespaces, links)");
        return ExitCode::from(2);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("drvdom-lifebench: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("drvdom-lifebench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
