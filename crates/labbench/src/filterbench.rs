//! `drvdom-filterbench`: what the per-vif filter (issue 14) costs, in one
//! run, filter on against filter off.
//!
//! ```text
//! cargo build --release -p labbench && sudo target/release/drvdom-filterbench
//! ```
//!
//! Needs root, `ip` (iproute2) and `iperf3`. Everything lives in network
//! namespaces it creates (`dvfb<pid>-*`) and removes at the end.
//!
//! 1. **Hotplug online cost.** In a driver-domain namespace with a bridge,
//!    `--vifs` veth pairs are brought online with the filter (hygiene +
//!    anti-spoofing: nf_tables table, port flags, pinned MAC) and as many
//!    without (`l2(false)`, no `ip`), interleaved one by one so that machine
//!    noise hits both alike; the first `--warmup` of each are not counted.
//!    It prints the median and mean wall time per vif and the added time
//!    (target ≤ 0.5 ms).
//! 2. **Forwarding cost.** Two guests (namespaces) on one bridge; iperf3
//!    from guest 1 to guest 2, TCP bulk and UDP with 64-byte payloads, with
//!    both vifs filtered and with no filter, alternating `--rounds` times;
//!    it prints medians and the loss (target ≤ 5 %).

#![forbid(unsafe_code)]
// A benchmark command: its table goes to stdout.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use hotplug::{Hotplug, VifOnline};
use xenbus::MacAddr;
use xentypes::IpCidr;

/// Measure the cost of the per-vif filter.
#[derive(Debug, Parser)]
#[command(name = "drvdom-filterbench", version)]
struct Args {
    /// Vifs brought online with the filter, and as many without.
    #[arg(long, default_value_t = 100)]
    vifs: usize,
    /// Leading vifs of each kind not counted (warm-up).
    #[arg(long, default_value_t = 10)]
    warmup: usize,
    /// iperf3 rounds per mode (alternating).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds per iperf3 run.
    #[arg(long, default_value_t = 3)]
    seconds: u32,
}

fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ip(args: &str) -> anyhow::Result<String> {
    run(Command::new("ip").args(args.split_whitespace()))
}

/// Named namespaces removed on drop.
struct Namespaces(Vec<String>);

impl Namespaces {
    fn add(&mut self, tag: &str) -> anyhow::Result<String> {
        let n = format!("dvfb{}-{tag}", std::process::id());
        ip(&format!("netns add {n}"))?;
        ip(&format!("-n {n} link set lo up"))?;
        self.0.push(n.clone());
        Ok(n)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

/// Run `f` on a thread inside namespace `ns`, on a current-thread runtime.
fn in_ns<T: Send + 'static, F>(
    ns: &str,
    f: impl FnOnce() -> F + Send + 'static,
) -> anyhow::Result<T>
where
    F: std::future::Future<Output = anyhow::Result<T>>,
{
    let path = std::path::Path::new("/run/netns").join(ns);
    std::thread::spawn(move || -> anyhow::Result<T> {
        let file =
            std::fs::File::open(&path).with_context(|| format!("open {}", path.display()))?;
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).context("setns")?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("tokio runtime")?;
        rt.block_on(f())
    })
    .join()
    .map_err(|_| anyhow::anyhow!("benchmark thread panicked"))?
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

fn guest_mac(i: usize) -> MacAddr {
    let b = (i as u32).to_be_bytes();
    MacAddr([0x00, 0x16, 0x3e, b[1], b[2], b[3]])
}

/// Step 1: per-vif online time, filter on vs off, interleaved.
fn online_cost(dd: &str, n: usize, warmup: usize) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let mut batch = String::from("link add xenbr0 type bridge\nlink set xenbr0 up\n");
    for i in 0..n {
        batch.push_str(&format!("link add von{i} type veth peer name gon{i}\n"));
        batch.push_str(&format!("link add vof{i} type veth peer name gof{i}\n"));
    }
    let path = std::env::temp_dir().join(format!("dvfb{}.batch", std::process::id()));
    std::fs::write(&path, batch).context("write ip batch")?;
    let r = run(Command::new("ip").args(["-n", dd, "-batch"]).arg(&path));
    let _ = std::fs::remove_file(&path);
    r?;
    in_ns(dd, move || async move {
        let hp = Hotplug::connect().context("netlink")?;
        let (mut on, mut off) = (Vec::new(), Vec::new());
        for i in 0..n {
            let req = VifOnline::new(format!("von{i}"))
                .guest_mac(guest_mac(i))
                .ip(IpCidr::parse_list(&format!(
                    "10.{}.{}.1/16",
                    i / 250,
                    i % 250
                ))?);
            let t = Instant::now();
            hp.vif_online(&req).await.context("online with filter")?;
            let t_on = t.elapsed();
            let req = VifOnline::new(format!("vof{i}")).l2(false);
            let t = Instant::now();
            hp.vif_online(&req).await.context("online without filter")?;
            let t_off = t.elapsed();
            if i >= warmup {
                on.push(t_on.as_secs_f64() * 1e3);
                off.push(t_off.as_secs_f64() * 1e3);
            }
        }
        for i in 0..n {
            hp.vif_offline(&format!("von{i}")).await?;
        }
        Ok((on, off))
    })
}

/// iperf3 client result in bits per second (received side).
fn iperf(g1: &str, g2: &str, udp: bool, seconds: u32) -> anyhow::Result<f64> {
    let mut server = Command::new("ip")
        .args(["netns", "exec", g2, "iperf3", "-s", "-1", "-p", "5299"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start iperf3 server")?;
    // Start the client once the server listens (`ss` in its namespace).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ss =
            run(Command::new("ip").args(["netns", "exec", g2, "ss", "-Hltn", "sport", "= :5299"]))?;
        if !ss.trim().is_empty() {
            break;
        }
        if Instant::now() > deadline {
            let _ = server.kill();
            bail!("iperf3 server did not start listening");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut c = Command::new("ip");
    c.args([
        "netns",
        "exec",
        g1,
        "iperf3",
        "-J",
        "--connect-timeout",
        "3000",
        "-p",
        "5299",
    ])
    .args(["-c", "10.9.0.2", "-t", &seconds.to_string()]);
    if udp {
        c.args(["-u", "-b", "0", "-l", "64"]);
    }
    let out = c.output().context("run iperf3 client")?;
    if !out.status.success() {
        let _ = server.kill();
        let _ = server.wait();
        bail!(
            "iperf3 failed: {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _ = server.wait();
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("parse iperf3 -J output")?;
    let end = &json["end"];
    let bps = if udp {
        end["sum"]["bits_per_second"].as_f64().map(|b| {
            // Delivered, not offered: scale by the received share.
            let lost = end["sum"]["lost_percent"].as_f64().unwrap_or(0.0);
            b * (1.0 - lost / 100.0)
        })
    } else {
        end["sum_received"]["bits_per_second"].as_f64()
    };
    bps.context("no throughput in iperf3 output")
}

/// Step 2: forwarding between two guests, filter on vs off, alternating.
fn forwarding(
    dd: &str,
    g1: &str,
    g2: &str,
    rounds: usize,
    secs: u32,
) -> anyhow::Result<Vec<(String, f64, f64)>> {
    // A bridge of their own, away from step 1's 200 ports.
    ip(&format!("-n {dd} link add xenbr1 type bridge"))?;
    ip(&format!("-n {dd} link set xenbr1 up"))?;
    for (g, vif, addr, mac) in [(g1, "vfw1", "10.9.0.1", 1), (g2, "vfw2", "10.9.0.2", 2)] {
        ip(&format!(
            "-n {dd} link add {vif} type veth peer name eth0 netns {g}"
        ))?;
        ip(&format!(
            "-n {g} link set eth0 address {} up",
            guest_mac(1000 + mac)
        ))?;
        ip(&format!("-n {g} addr add {addr}/24 dev eth0"))?;
    }
    let set = |filtered: bool| -> anyhow::Result<()> {
        in_ns(dd, move || async move {
            let hp = Hotplug::connect()?;
            for (vif, addr, mac) in [("vfw1", "10.9.0.1", 1), ("vfw2", "10.9.0.2", 2)] {
                let req = if filtered {
                    VifOnline::new(vif)
                        .bridge("xenbr1")
                        .guest_mac(guest_mac(1000 + mac))
                        .ip(IpCidr::parse_list(addr)?)
                } else {
                    VifOnline::new(vif).bridge("xenbr1").l2(false)
                };
                hp.vif_online(&req).await?;
            }
            Ok(())
        })
    };
    let mut rows = Vec::new();
    for (label, udp) in [("TCP bulk", false), ("UDP 64-byte", true)] {
        let (mut on, mut off) = (Vec::new(), Vec::new());
        for r in 0..rounds {
            eprintln!("  {label} round {}", r + 1);
            set(false)?;
            off.push(iperf(g1, g2, udp, secs)?);
            set(true)?;
            on.push(iperf(g1, g2, udp, secs)?);
        }
        rows.push((label.to_string(), median(&mut off), median(&mut on)));
    }
    Ok(rows)
}

fn main_result(args: Args) -> anyhow::Result<bool> {
    let mut ns = Namespaces(Vec::new());
    let dd = ns.add("dd")?;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at start: {}", load.trim());

    eprintln!(
        "step 1: {} vifs online with the filter, {} without",
        args.vifs, args.vifs
    );
    let (mut on, mut off) = online_cost(&dd, args.vifs, args.warmup)?;
    let (mean_on, mean_off) = (mean(&on), mean(&off));
    let (med_on, med_off) = (median(&mut on), median(&mut off));
    let added = med_on - med_off;

    let g1 = ns.add("g1")?;
    let g2 = ns.add("g2")?;
    eprintln!(
        "step 2: iperf3 guest to guest, {} rounds per mode",
        args.rounds
    );
    let rows = forwarding(&dd, &g1, &g2, args.rounds, args.seconds)?;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at end:   {}", load.trim());

    println!();
    println!("| measure | filter off | filter on | added | target | met |");
    println!("|---|---|---|---|---|---|");
    let ok1 = added <= 0.5;
    println!(
        "| hotplug online per vif, median ({} vifs each) | {med_off:.3} ms | {med_on:.3} ms | {added:.3} ms | ≤ 0.5 ms | {} |",
        on.len(),
        if ok1 { "yes" } else { "NO" }
    );
    println!(
        "| hotplug online per vif, mean | {mean_off:.3} ms | {mean_on:.3} ms | {:.3} ms | | |",
        mean_on - mean_off
    );
    let mut all = ok1;
    for (label, off, on) in rows {
        let loss = (1.0 - on / off) * 100.0;
        let ok = loss <= 5.0;
        all &= ok;
        println!(
            "| {label} guest→guest, median of {} | {:.2} Gbit/s | {:.2} Gbit/s | {loss:.1} % loss | ≤ 5 % | {} |",
            args.rounds,
            off / 1e9,
            on / 1e9,
            if ok { "yes" } else { "NO" }
        );
    }
    Ok(all)
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match main_result(args) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(3),
        Err(e) => {
            #[allow(clippy::print_stderr)] // the binary's one error report
            {
                eprintln!("error: {e:#}");
            }
            std::process::ExitCode::from(1)
        }
    }
}
