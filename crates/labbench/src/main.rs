//! `drvdom-labbench`: the driver-domain benchmark of issue 6, in one run.
//!
//! # Running it
//!
//! ```text
//! cargo build --release --workspace && sudo target/release/drvdom-labbench
//! ```
//!
//! It needs root (namespaces, links), Debian's
//! `/etc/xen/scripts/vif-bridge` (package `xen-utils-common`, which calls
//! `ip` from iproute2) with `xenstore-read`/`xenstore-write` (package
//! `xenstore-utils`) for the comparison, and the workspace's `drvdom`,
//! `drvdom-xenstored`, `drvdom-agent` and `drvdom-simkernel` next to it (or
//! in `--bin-dir`). Its own namespaces and links are made in process
//! (crate `sim`). The whole run takes one to a few minutes; `-h`
//! lists the knobs (guests, vifs per guest, batch size, time limits).
//!
//! # What it does
//!
//! 1. Shows that `drvdom doctor --only xenstore --vifs N` warns under the
//!    default node quota (1000), then starts `drvdom-xenstored` with the
//!    quota raised (`--quota-nodes`, 40 per vif, at least 40000) and says so.
//!    It creates dom0, a driver domain (a network namespace with a veth
//!    NIC, its xenstore home written by `xenbus::make_domain`) and guests
//!    (namespaces), runs the real `drvdom-agent` in the driver domain
//!    (bridge `xenbr0` with the NIC), the simulated netback of crate `sim`
//!    on a thread inside the driver domain's namespace, and one simulated
//!    netfront per guest, each on its own domain's xenstore socket.
//! 2. Attaches the vifs from dom0 (`xenbus::attach_vif`, batches of 100,
//!    round-robin over the guests) and waits with watches until every one
//!    is Connected on both ends: total time, per-vif cost of the first and
//!    the last batch (target: last ≤ 1.5 × first, both as batch wall time
//!    per vif and as median attach→Connected latency), and the agent's
//!    VmRSS with all vifs (target ≤ 10 MiB). Per batch it also prints the
//!    time spent in dom0's attach calls and the median time to backend
//!    InitWait (netback) and to `hotplug-status = connected` (agent), and
//!    it probes a small transaction and an `attach_vif` into a domain no
//!    driver serves before and after, to tell growth with the tree size
//!    from contention. The machine's load average is printed too.
//! 3. Stops the agent and, on the same 100 vifs, times native hotplug
//!    online (read settings, netlink, write `hotplug-status`) against
//!    Debian's `vif-bridge online` run as `xl devd` runs it (target: native
//!    ≥ 50 × faster).
//! 4. Tears its host down, then times `drvdom lab up --once --guests 2`.
//!
//! It ends with a table of figures, targets and whether each was met.
//! Everything it creates (namespaces `drvdom-lb<pid>-*`, a temporary
//! directory, child processes) is removed on exit, also on error or Ctrl-C.

mod attach;
mod env;
mod hp;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use tracing_subscriber::EnvFilter;
use xenstore::DomId;

use crate::attach::ms;
use crate::env::{BRIDGE, Bins, DD, Env, UPLINK};

/// drvdom-xenstored's (and C xenstored's) default node quota.
const DEFAULT_QUOTA_NODES: u32 = 1000;

/// Benchmark the driver domain at scale on a simulated host.
#[derive(Debug, Parser)]
#[command(name = "drvdom-labbench", version)]
struct Args {
    /// Guests.
    #[arg(long, default_value_t = 10)]
    guests: u16,
    /// Vifs per guest.
    #[arg(long, default_value_t = 100)]
    vifs_per_guest: u16,
    /// Vifs attached (and waited for) together.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Vifs for the native vs vif-bridge hotplug comparison.
    #[arg(long, default_value_t = 100)]
    hotplug_vifs: usize,
    /// Node quota for xenstored (default: 40000 or 40 per vif if more).
    #[arg(long)]
    quota_nodes: Option<u32>,
    /// Time limit for attaching everything, in seconds.
    #[arg(long, default_value_t = 180)]
    attach_timeout: u64,
    /// Time limit for `drvdom lab up`, in seconds.
    #[arg(long, default_value_t = 120)]
    lab_timeout: u64,
    /// Skip step 4 (`drvdom lab up`).
    #[arg(long)]
    skip_lab: bool,
    /// Directory holding drvdom, drvdom-xenstored and drvdom-agent
    /// (default: the directory of this program).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// The legacy hotplug script to compare with.
    #[arg(long, default_value = xenbus::DEFAULT_VIF_SCRIPT)]
    script: PathBuf,
}

/// One line of the final table.
#[derive(Debug, Clone)]
struct Row {
    figure: String,
    measured: String,
    target: String,
    /// `None`: no target (information only).
    met: Option<bool>,
}

fn row(figure: &str, measured: String, target: &str, met: Option<bool>) -> Row {
    Row {
        figure: figure.to_string(),
        measured,
        target: target.to_string(),
        met,
    }
}

/// Progress lines: this program's report goes to stdout.
#[allow(clippy::print_stdout)] // the bench's report
fn say(s: &str) {
    println!("{s}");
}

#[allow(clippy::print_stdout)] // the bench's report
fn print_table(rows: &[Row]) {
    let w0 = rows
        .iter()
        .map(|r| r.figure.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let w1 = rows
        .iter()
        .map(|r| r.measured.len())
        .max()
        .unwrap_or(8)
        .max(8);
    let w2 = rows
        .iter()
        .map(|r| r.target.len())
        .max()
        .unwrap_or(6)
        .max(6);
    println!();
    println!(
        "| {:<w0$} | {:<w1$} | {:<w2$} | met |",
        "figure", "measured", "target"
    );
    println!(
        "|{}|{}|{}|-----|",
        "-".repeat(w0 + 2),
        "-".repeat(w1 + 2),
        "-".repeat(w2 + 2)
    );
    for r in rows {
        let met = match r.met {
            Some(true) => "met",
            Some(false) => "NO",
            None => "-",
        };
        println!(
            "| {:<w0$} | {:<w1$} | {:<w2$} | {met:<3} |",
            r.figure, r.measured, r.target
        );
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn stop_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("install SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("install SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

/// Run `drvdom doctor --only xenstore --vifs N` against `socket`; returns
/// its output and whether it reported a quota too small for N vifs.
async fn doctor(
    bins: &Bins,
    socket: &std::path::Path,
    vifs: u32,
) -> anyhow::Result<(String, bool)> {
    let out = tokio::process::Command::new(&bins.drvdom)
        .args(["doctor", "--only", "xenstore", "--vifs", &vifs.to_string()])
        .env("XENSTORED_PATH", socket)
        .env("NO_COLOR", "1")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), out)
        .await
        .context("drvdom doctor timed out")?
        .context("run drvdom doctor")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let quota_lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("quota") || l.contains("nodes per domain"))
        .collect();
    let warns = text.contains("room for only");
    Ok((quota_lines.join("\n"), warns))
}

/// Steps 1–3 on the bench's own host.
async fn bench(env: &mut Env, args: &Args, bins: &Bins, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let total = usize::from(args.guests) * usize::from(args.vifs_per_guest);
    let total_u32 = u32::try_from(total).unwrap_or(u32::MAX);
    let quota = args
        .quota_nodes
        .unwrap_or_else(|| 40_000u32.max(total_u32.saturating_mul(40)));

    // 1. doctor under the default quota, then the raised one.
    say("== 1. xenstored, domains, agent, simulated netback/netfront");
    std::fs::create_dir_all(env.dir.path().join("sockets-default")).context("mkdir")?;
    let def_sock = env.dir.path().join("default.sock");
    let def_args = vec![
        "--socket".to_string(),
        def_sock.display().to_string(),
        "--domain-socket-dir".to_string(),
        env.dir.path().join("sockets-default").display().to_string(),
    ];
    env.spawn(
        bins,
        "xenstored-default",
        None,
        &bins.xenstored,
        &def_args,
        &[],
    )?;
    drop(env::connect_when_up(&def_sock, Duration::from_secs(20)).await?);
    let (text, warns) = doctor(bins, &def_sock, total_u32).await?;
    env.stop("xenstored-default", Duration::from_secs(2));
    say(&format!(
        "drvdom doctor --only xenstore --vifs {total} under the default quota ({DEFAULT_QUOTA_NODES} nodes):"
    ));
    for l in text.lines() {
        say(&format!("    {l}"));
    }
    rows.push(row(
        &format!("doctor warns at default quota ({total} vifs)"),
        if warns {
            "warns".into()
        } else {
            "no warning".into()
        },
        "warns",
        Some(warns),
    ));

    env.start_xenstored(bins, quota).await?;
    say(&format!(
        "raised xenstored's node quota (it bounds the driver domain's nodes) from the default \
         {DEFAULT_QUOTA_NODES} to --quota-nodes {quota} for {total} vifs; drvdom doctor now says:"
    ));
    let (text, warns_raised) = doctor(bins, &env.xs_socket, total_u32).await?;
    for l in text.lines() {
        say(&format!("    {l}"));
    }
    rows.push(row(
        &format!("doctor at --quota-nodes {quota}"),
        if warns_raised {
            "warns".into()
        } else {
            "ok".into()
        },
        "ok",
        Some(!warns_raised),
    ));

    env.create_namespaces().await?;
    env.create_domain(DD, "netdd", true).await?;
    for (i, (domid, _)) in env.guests.clone().iter().enumerate() {
        env.create_domain(*domid, &format!("guest{}", i + 1), false)
            .await?;
    }

    // The simulated netback, in-process on a thread inside the driver domain.
    let dd_sock = env.socket_of(DD);
    let cfg = sim::netback::NetbackConfig {
        domid: DD,
        netns_map: env.dir.path().join("netns"),
    };
    let sock = dd_sock.clone();
    let _netback = env::in_netns(&env.dd_ns, move || async move {
        let c = env::connect_when_up(&sock, Duration::from_secs(20)).await?;
        sim::netback::run(c, cfg).await.context("simulated netback")
    });
    let dom0 = env.dom0()?.clone();
    env::wait_value(
        &dom0,
        &format!("{}/{}", DD.path(), sim::netback::READY_KEY),
        b"ready",
        Duration::from_secs(20),
    )
    .await
    .context("simulated netback did not start")?;
    for (domid, _) in env.guests.clone() {
        let c = env::connect_when_up(&env.socket_of(domid), Duration::from_secs(20)).await?;
        tokio::spawn(async move {
            if let Err(e) = sim::netfront::run(c, domid).await {
                tracing::debug!(domid = domid.0, error = %e, "netfront ended");
            }
        });
    }
    let agent_args: Vec<String> = [
        "--domid",
        &DD.0.to_string(),
        "--bridge",
        BRIDGE,
        "--uplink",
        UPLINK,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let dd_ns = env.dd_ns.clone();
    let agent_pid = env.spawn(
        bins,
        "agent",
        Some(&dd_ns),
        &bins.agent,
        &agent_args,
        &[
            ("XENSTORED_PATH", dd_sock.display().to_string()),
            ("RUST_LOG", "warn".to_string()),
        ],
    )?;
    // No event for "a link got a master" here: poll the links briefly.
    let t = Instant::now();
    loop {
        let links = env.dd_links().await?;
        if links
            .iter()
            .any(|l| l.name == UPLINK && l.master.as_deref() == Some(BRIDGE))
        {
            break;
        }
        if t.elapsed() > Duration::from_secs(20) {
            bail!(
                "agent did not put {UPLINK} on {BRIDGE} (see {})",
                env.log("agent").display()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    say(&format!(
        "domains: dom0, netdd ({DD}) in {dd_ns}, {} guests; drvdom-agent pid {agent_pid} in netdd \
         with {BRIDGE} and uplink {UPLINK}",
        env.guests.len()
    ));
    say(
        "netback/netfront: crate sim's simulated drivers (netback on a thread inside netdd's namespace \
         creating veth vif<fe>.<devid> with the peer in the guest's namespace; one netfront per guest), \
         each on its own domain's xenstore socket",
    );

    // 2. Attach.
    say(&format!(
        "== 2. attach {total} vifs (batches of {}, round-robin over {} guests)",
        args.batch,
        env.guests.len()
    ));
    let guests: Vec<DomId> = env.guests.iter().map(|g| g.0).collect();
    // A domain nobody serves, for probing attach cost without contention.
    let idle = DomId(90);
    env.create_domain(idle, "idle", false).await?;
    let probe_before = attach::probe_transaction(&dom0, guests[0], 50).await?;
    let attach_before = attach::probe_attach(&dom0, idle, 20).await?;
    let deadline = Instant::now() + Duration::from_secs(args.attach_timeout);
    say(
        "  (medians from attach: ->InitWait = netback made the vif, ->hotplug = agent wrote \
         hotplug-status, ->Connected = both ends)",
    );
    let res = attach::run(&dom0, &guests, total, args.batch, deadline, &mut |k, b| {
        let (iw, hp) = b.median_phases_ms();
        say(&format!(
            "  {k:>5} Connected: batch {:>7.1} ms (attach calls {:>6.1}), {:>6.2} ms/vif; medians \
             ->InitWait {iw:>6.1} ->hotplug {hp:>6.1} ->Connected {:>6.1} ms",
            ms(b.wall),
            ms(b.attach_calls),
            b.per_vif_ms(),
            b.median_latency_ms()
        ));
    })
    .await?;
    let ports = env
        .dd_links()
        .await?
        .iter()
        .filter(|l| l.master.as_deref() == Some(BRIDGE) && l.name.starts_with("vif"))
        .count();
    let (rss, hwm) = env::rss_kib(agent_pid)?;
    let probe_after = attach::probe_transaction(&dom0, guests[0], 50).await?;
    let attach_after = attach::probe_attach(&dom0, idle, 20).await?;
    let first = res.batches.first().context("no batch")?;
    let last = res.batches.last().context("no batch")?;
    let ratio = last.per_vif_ms() / first.per_vif_ms().max(1e-9);
    let lat_ratio = last.median_latency_ms() / first.median_latency_ms().max(1e-9);
    rows.push(row(
        &format!("attach {total} vifs -> all Connected (both ends)"),
        format!(
            "{:.2} s ({:.0} vifs/s)",
            res.total.as_secs_f64(),
            total as f64 / res.total.as_secs_f64().max(1e-9)
        ),
        "-",
        None,
    ));
    rows.push(row(
        "vif ports on the bridge afterwards",
        ports.to_string(),
        &total.to_string(),
        Some(ports == total),
    ));
    rows.push(row(
        &format!("per-vif cost, first {} (batch wall/vif)", first.vifs.len()),
        format!("{:.2} ms", first.per_vif_ms()),
        "-",
        None,
    ));
    rows.push(row(
        &format!("per-vif cost, last {} (batch wall/vif)", last.vifs.len()),
        format!("{:.2} ms", last.per_vif_ms()),
        "-",
        None,
    ));
    rows.push(row(
        "per-vif cost last/first (batch wall/vif)",
        format!("{ratio:.3}x"),
        "<= 1.5x",
        Some(ratio <= 1.5),
    ));
    rows.push(row(
        "median attach->Connected, first / last 100",
        format!(
            "{:.1} / {:.1} ms ({lat_ratio:.3}x)",
            first.median_latency_ms(),
            last.median_latency_ms()
        ),
        "<= 1.5x",
        Some(lat_ratio <= 1.5),
    ));
    rows.push(row(
        &format!("idle dom0 transaction (list+write), median, 0 / {total} vifs"),
        format!(
            "{:.3} / {:.3} ms ({:.2}x)",
            ms(probe_before),
            ms(probe_after),
            ms(probe_after) / ms(probe_before).max(1e-9)
        ),
        "-",
        None,
    ));
    rows.push(row(
        &format!("idle attach_vif (unserved domain), median, 0 / {total} vifs"),
        format!(
            "{:.3} / {:.3} ms ({:.2}x)",
            ms(attach_before),
            ms(attach_after),
            ms(attach_after) / ms(attach_before).max(1e-9)
        ),
        "-",
        None,
    ));
    rows.push(row(
        &format!("drvdom-agent VmRSS with {total} vifs"),
        format!(
            "{:.2} MiB (peak {:.2} MiB)",
            rss as f64 / 1024.0,
            hwm as f64 / 1024.0
        ),
        "<= 10 MiB",
        Some(rss <= 10 * 1024),
    ));

    // 3. Hotplug native vs vif-bridge.
    let n = args.hotplug_vifs.min(total);
    say(&format!(
        "== 3. hotplug online of {n} vifs: native vs {} (agent stopped first)",
        args.script.display()
    ));
    env.stop("agent", Duration::from_secs(5));
    let vifs: Vec<attach::Attached> = res.vifs().take(n).copied().collect();
    let script = args.script.clone();
    let sock = dd_sock.clone();
    let h = env::in_netns(&dd_ns, move || hp::run(sock, vifs, script));
    let hres = tokio::task::spawn_blocking(move || h.join())
        .await
        .context("join the hotplug thread")?
        .map_err(|_| anyhow::anyhow!("the hotplug thread panicked"))??;
    let nat = ms(hres.native) / hres.vifs.max(1) as f64;
    let scr = ms(hres.script) / hres.vifs.max(1) as f64;
    let hp_ratio = scr / nat.max(1e-9);
    let nl = ms(hres.native_netlink) / hres.vifs.max(1) as f64;
    say(&format!(
        "  native {nat:.3} ms/vif (netlink {nl:.3}, xenstore {:.3}), vif-bridge {scr:.1} ms/vif over {} vifs",
        nat - nl,
        hres.vifs
    ));
    rows.push(row(
        "hotplug online per vif, native",
        format!("{nat:.3} ms"),
        "-",
        None,
    ));
    rows.push(row(
        "hotplug online per vif, Debian vif-bridge",
        format!("{scr:.1} ms"),
        "-",
        None,
    ));
    rows.push(row(
        &format!("hotplug speed-up native vs vif-bridge ({} vifs)", hres.vifs),
        format!("{hp_ratio:.0}x"),
        ">= 50x",
        Some(hp_ratio >= 50.0),
    ));
    Ok(())
}

/// Step 4: `drvdom lab up --once --guests 2`, timed.
async fn lab_up(bins: &Bins, timeout: Duration, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let name = format!("lbu{}", std::process::id() % 1_000_000);
    say(&format!(
        "== 4. drvdom lab up --once --guests 2 --name {name}"
    ));
    let t = Instant::now();
    let fut = tokio::process::Command::new(&bins.drvdom)
        .args(["lab", "up", "--once", "--guests", "2", "--name", &name])
        .env("NO_COLOR", "1")
        .kill_on_drop(true)
        .output();
    let res = tokio::time::timeout(timeout, fut).await;
    let wall = t.elapsed();
    // Whatever happened, leave no lab behind.
    let down = tokio::process::Command::new(&bins.drvdom)
        .args(["lab", "down", "--name", &name])
        .kill_on_drop(true)
        .output();
    let _ = tokio::time::timeout(Duration::from_secs(60), down).await;
    match res {
        Err(_) => {
            rows.push(row(
                "drvdom lab up --once --guests 2, wall",
                format!("timed out after {} s", timeout.as_secs()),
                "exit 0",
                Some(false),
            ));
        }
        Ok(Err(e)) => return Err(e).context("run drvdom lab up"),
        Ok(Ok(out)) => {
            let stdout = String::from_utf8_lossy(&out.stdout);
            let pass = stdout.lines().filter(|l| l.starts_with("PASS")).count();
            let fail: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL")).collect();
            for l in &fail {
                say(&format!("  {l}"));
            }
            if !out.status.success() {
                for l in String::from_utf8_lossy(&out.stderr).lines().rev().take(5) {
                    say(&format!("  stderr: {l}"));
                }
            }
            rows.push(row(
                "drvdom lab up --once --guests 2, wall",
                format!(
                    "{:.2} s ({}; {pass} PASS, {} FAIL)",
                    wall.as_secs_f64(),
                    out.status,
                    fail.len()
                ),
                "exit 0",
                Some(out.status.success()),
            ));
        }
    }
    Ok(())
}

/// The first three fields of `/proc/loadavg` (the machine may be shared).
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_string())
}

async fn run(args: Args, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    if !nix::unistd::Uid::effective().is_root() {
        bail!("run as root (it creates network namespaces and links)");
    }
    if !args.script.is_file() {
        bail!(
            "{} not found (install Debian's xen-utils-common)",
            args.script.display()
        );
    }
    let bin_dir = match &args.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()
            .context("find this program")?
            .parent()
            .context("this program has no directory")?
            .to_path_buf(),
    };
    let bins = Bins::in_dir(&bin_dir)?;
    let started = Instant::now();
    let load0 = loadavg();
    say(&format!("load average at start: {load0}"));
    {
        let mut env = Env::new(args.guests)?;
        let r = tokio::select! {
            r = bench(&mut env, &args, &bins, rows) => r,
            s = stop_signal() => s.and_then(|()| bail!("interrupted")),
        };
        let t = Instant::now();
        env.teardown();
        let left = env.leftover_namespaces();
        say(&format!(
            "teardown: {:.1} s, namespaces left: {}",
            t.elapsed().as_secs_f64(),
            if left.is_empty() {
                "none".to_string()
            } else {
                left.join(" ")
            }
        ));
        r?;
    }
    if !args.skip_lab {
        let timeout = Duration::from_secs(args.lab_timeout);
        tokio::select! {
            r = lab_up(&bins, timeout, rows) => r?,
            s = stop_signal() => s.and_then(|()| bail!("interrupted"))?,
        }
    }
    rows.push(row(
        "load average (1/5/15 min) at start / end",
        format!("{load0} / {}", loadavg()),
        "-",
        None,
    ));
    rows.push(row(
        "whole benchmark run",
        format!("{:.1} s", started.elapsed().as_secs_f64()),
        "< ~5 min",
        Some(started.elapsed() < Duration::from_secs(300)),
    ));
    Ok(())
}

#[allow(clippy::print_stderr)] // top-level error report
fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut rows = Vec::new();
    let res = rt.block_on(run(args, &mut rows));
    print_table(&rows);
    // Background tasks (netfronts) and the netback thread end with the process.
    rt.shutdown_timeout(Duration::from_millis(100));
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
