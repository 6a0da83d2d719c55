//! `drvdom-agent`: parse arguments, set up logging, run the agent until
//! SIGTERM/SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;

use agent::{AgentConfig, LegacyMode};
use anyhow::Context;
use clap::Parser;
use tracing_subscriber::EnvFilter;
use xenstore::DomId;

/// The driver-domain hotplug agent (replaces `xl devd` and `vif-bridge`).
#[derive(Debug, Parser)]
#[command(name = "drvdom-agent", version)]
struct Args {
    /// Our domain id (default: read the `domid` node of our xenstore home).
    #[arg(long, value_name = "N")]
    domid: Option<DomId>,
    /// Bridge for vifs without a `bridge` key, and the one brought up with --uplink.
    #[arg(long, value_name = "NAME", default_value = xenbus::DEFAULT_BRIDGE)]
    bridge: String,
    /// NIC to enslave to the bridge at start (moves its addresses and routes).
    #[arg(long, value_name = "IFACE")]
    uplink: Option<String>,
    /// The interface of a passed-through NIC, for bridges whose uplink dom0
    /// names by PCI address (repeatable; default: found in sysfs).
    #[arg(long, value_name = "BDF=IFNAME", value_parser = parse_nic)]
    nic: Vec<(xentypes::Bdf, String)>,
    /// Xenstore socket (default: $XENSTORED_PATH, /run/xenstored/socket, /dev/xen/xenbus).
    #[arg(long, value_name = "PATH")]
    xenstore: Option<PathBuf>,
    /// When to run the backend's hotplug script instead of native hotplug.
    #[arg(long, value_name = "WHEN", default_value = "non-default",
          value_parser = ["always", "never", "non-default"])]
    legacy_scripts: String,
    /// More logging (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

fn parse_nic(s: &str) -> Result<(xentypes::Bdf, String), String> {
    let (bdf, ifname) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected BDF=IFNAME, e.g. 0000:03:00.0=eth1"))?;
    let bdf = bdf.parse().map_err(|e| format!("{bdf:?}: {e}"))?;
    hotplug::validate_ifname(ifname).map_err(|e| e.to_string())?;
    Ok((bdf, ifname.to_string()))
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        // Without handlers the default action (exit) still applies.
        _ => std::future::pending::<()>().await,
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let legacy: LegacyMode = args
        .legacy_scripts
        .parse()
        .map_err(|e: String| anyhow::anyhow!(e))?;
    let mut cfg = AgentConfig::default();
    cfg.domid = args.domid;
    cfg.bridge = args.bridge;
    cfg.uplink = args.uplink;
    cfg.nics = args.nic;
    cfg.xenstore = args.xenstore;
    cfg.legacy = legacy;
    // One thread: the work is I/O-bound and this keeps the footprint small.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the tokio runtime")?;
    rt.block_on(async {
        // Handlers first, so an early SIGTERM is not lost.
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            shutdown_signal().await;
            let _ = tx.send(());
        });
        agent::run(cfg, async {
            let _ = rx.await;
        })
        .await
    })
    .context("drvdom-agent")
}

fn main() -> ExitCode {
    let args = Args::parse();
    let default = match args.verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
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
