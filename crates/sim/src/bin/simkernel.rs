//! `drvdom-simkernel`: the simulated host's helper processes, run by
//! crate `sim` itself (never through the `drvdom` CLI).
//!
//! * `exec --netns FILE -- PROGRAM ARGS...`: what `ip netns exec` does —
//!   enter the network namespace, give the process its own `/sys` for it,
//!   and exec the program in place (same pid). This is how the simulated
//!   host starts every process inside a domain.
//! * `netback --domid N --netns-map DIR`: a driver domain's simulated
//!   netback (`sim::netback`).
//! * `netfront --domid N`: a guest's simulated netfront
//!   (`sim::netfront`).
//!
//! netback and netfront talk to xenstore through `XENSTORED_PATH` (the
//! domain's own socket) and act on the namespace they run in.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use xenstore::{AsyncClient, DomId};

/// The kernels and process launcher of drvdom's simulated Xen host.
#[derive(Debug, Parser)]
#[command(name = "drvdom-simkernel", version)]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run PROGRAM inside a network namespace (as `ip netns exec`).
    Exec {
        /// The namespace file (`/run/netns/NAME`).
        #[arg(long, value_name = "FILE")]
        netns: PathBuf,
        /// Keep the host's `/sys` (by default the process gets a sysfs of
        /// its namespace, so `/sys/class/net` lists its own interfaces).
        #[arg(long)]
        keep_sys: bool,
        /// The program and its arguments.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        argv: Vec<OsString>,
    },
    /// A driver domain's simulated netback.
    Netback {
        /// This driver domain's id.
        #[arg(long)]
        domid: u16,
        /// Directory mapping domids to namespace names.
        #[arg(long, value_name = "DIR")]
        netns_map: PathBuf,
    },
    /// A guest's simulated netfront.
    Netfront {
        /// This guest's id.
        #[arg(long)]
        domid: u16,
    },
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("start the async runtime")
}

fn run(args: Args) -> anyhow::Result<()> {
    match args.cmd {
        Cmd::Exec {
            netns,
            keep_sys,
            argv,
        } => {
            // Single-threaded here: entering namespaces is safe for the
            // whole process, which exec replaces right after.
            sim::netns::enter(&netns).with_context(|| format!("enter {}", netns.display()))?;
            if !keep_sys {
                let name = netns
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("netns")
                    .to_string();
                sim::netns::remount_sysfs(&name).context("mount a sysfs for the namespace")?;
            }
            let Some((program, rest)) = argv.split_first() else {
                bail!("no program to run");
            };
            let err = std::process::Command::new(program).args(rest).exec();
            Err(err).with_context(|| format!("exec {}", program.to_string_lossy()))
        }
        Cmd::Netback { domid, netns_map } => runtime()?.block_on(async {
            let client = AsyncClient::connect_default()
                .await
                .context("connect to xenstored (XENSTORED_PATH)")?;
            let cfg = sim::netback::NetbackConfig {
                domid: DomId(domid),
                netns_map,
            };
            sim::netback::run(client, cfg).await.context("netback")
        }),
        Cmd::Netfront { domid } => runtime()?.block_on(async {
            let client = AsyncClient::connect_default()
                .await
                .context("connect to xenstored (XENSTORED_PATH)")?;
            sim::netfront::run(client, DomId(domid))
                .await
                .context("netfront")
        }),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            #[allow(clippy::print_stderr)] // the binary's one error report
            {
                eprintln!("error: {err:#}");
            }
            ExitCode::from(1)
        }
    }
}
