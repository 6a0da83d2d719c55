//! `drvdom-agent`: parse arguments, set up logging, check that this host is
//! a Xen driver domain, run the agent until SIGTERM/SIGINT.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use agent::{AgentConfig, HostKind, LegacyMode};
use anyhow::Context;
use clap::{CommandFactory, Parser};
use tracing::warn;
use tracing_subscriber::EnvFilter;
use xenstore::DomId;

/// The driver-domain hotplug agent (replaces `xl devd` and `vif-bridge`).
#[derive(Debug, Parser)]
#[command(
    name = "drvdom-agent",
    version,
    long_about = LONG_ABOUT,
    after_long_help = FILES
)]
struct Args {
    /// Our domain id (default: read the `domid` node of our xenstore home).
    #[arg(long, value_name = "N")]
    domid: Option<DomId>,
    /// Bridge for vifs without a `bridge` key, and the one brought up with --uplink.
    #[arg(long, value_name = "NAME", env = "DRVDOM_AGENT_BRIDGE",
          default_value = xenbus::DEFAULT_BRIDGE,
          value_parser = clap::builder::NonEmptyStringValueParser::new())]
    bridge: String,
    /// NIC to enslave to the bridge at start (moves its addresses and routes); empty: none.
    #[arg(long, value_name = "IFACE", env = "DRVDOM_AGENT_UPLINK")]
    uplink: Option<String>,
    /// The interface of a passed-through NIC, for bridges whose uplink dom0
    /// names by PCI address (repeatable; default: found in sysfs).
    #[arg(long, value_name = "BDF=IFNAME", value_parser = parse_nic)]
    nic: Vec<(xentypes::Bdf, String)>,
    /// Xenstore socket (default: $XENSTORED_PATH, /run/xenstored/socket, /dev/xen/xenbus).
    /// Giving one (or $XENSTORED_PATH) skips the driver-domain check: for simulators and tests.
    #[arg(long, value_name = "PATH")]
    xenstore: Option<PathBuf>,
    /// When to run the backend's hotplug script instead of native hotplug.
    #[arg(long, value_name = "WHEN", default_value = "non-default",
          value_parser = ["always", "never", "non-default"])]
    legacy_scripts: String,
    /// More logging (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Write the man page (drvdom-agent.8) into DIR and exit (packaging).
    #[arg(long, value_name = "DIR", hide = true, exclusive = true)]
    generate_man: Option<PathBuf>,
}

fn parse_nic(s: &str) -> Result<(xentypes::Bdf, String), String> {
    let (bdf, ifname) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected BDF=IFNAME, e.g. 0000:03:00.0=eth1"))?;
    let bdf = bdf.parse().map_err(|e| format!("{bdf:?}: {e}"))?;
    hotplug::validate_ifname(ifname).map_err(|e| e.to_string())?;
    Ok((bdf, ifname.to_string()))
}

const LONG_ABOUT: &str = "\
The driver-domain hotplug agent: replaces `xl devd`, `network-bridge` and `vif-bridge`.

It watches this domain's backend directory in xenstore, brings every guest vif served here \
onto its bridge over netlink, writes hotplug-status, and replays existing devices when it \
starts, so a restart (or a crash) converges. With --uplink it first creates the bridge, \
enslaves the NIC and moves its addresses and default route onto the bridge.

It only runs in a Xen driver domain. Started without --xenstore and without \
$XENSTORED_PATH, it first checks the host and exits with status 0, after logging why, when:
  - /proc/xen/capabilities lists control_d: this is dom0, whose backends libxl runs;
  - neither /dev/xen/xenbus nor /proc/xen exists: this is not a Xen domain;
  - its domain id (--domid, or the `domid` node once connected) is 0: dom0.
So the packaged service can be enabled on any host and does nothing where it has no job.";

const FILES: &str = "\
Files:
  /etc/default/drvdom-agent          settings of drvdom-agent.service: DRVDOM_AGENT_BRIDGE,
                                     DRVDOM_AGENT_UPLINK, DRVDOM_AGENT_OPTS (other options)
  /usr/lib/systemd/system/drvdom-agent.service
                                     the unit (Restart=on-failure; conflicts with xendriverdomain)

Exit status: 0 after SIGTERM/SIGINT or when this is not a driver domain; 1 on an error; \
2 on bad arguments.";

/// True when the user chose the xenstore endpoint (simulator, tests): no host check then.
fn endpoint_is_explicit(args: &Args) -> bool {
    args.xenstore.is_some() || std::env::var_os("XENSTORED_PATH").is_some_and(|p| !p.is_empty())
}

/// Why this host is not a driver domain, if it is not (the test of the module doc of
/// `agent::host`, on the real root).
fn not_a_driver_domain() -> Option<&'static str> {
    match agent::probe_host(Path::new("/")) {
        HostKind::NotXen => Some(
            "not a Xen domain (no /dev/xen/xenbus, no /proc/xen): drvdom-agent only serves \
             backends inside a Xen driver domain; nothing to do, exiting",
        ),
        HostKind::Dom0 => Some(
            "this is dom0 (/proc/xen/capabilities lists control_d), not a driver domain: \
             libxl runs dom0's backends; nothing to do, exiting",
        ),
        HostKind::XenDomain => None,
    }
}

const DOM0_BY_DOMID: &str = "this is dom0 (domain id 0), not a driver domain: libxl runs \
                             dom0's backends; nothing to do, exiting";

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
    let check_host = !endpoint_is_explicit(&args);
    if let Some(why) = not_a_driver_domain().filter(|_| check_host) {
        warn!("{why}");
        return Ok(());
    }
    let mut cfg = AgentConfig::default();
    cfg.domid = args.domid;
    cfg.bridge = args.bridge;
    cfg.uplink = args.uplink.filter(|u| !u.is_empty());
    cfg.nics = args.nic;
    cfg.xenstore = args.xenstore;
    cfg.legacy = legacy;
    // One thread: the work is I/O-bound and this keeps the footprint small.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the tokio runtime")?;
    rt.block_on(async {
        if check_host {
            let domid = match cfg.domid {
                Some(d) => d,
                None => {
                    let client = agent::connect(&cfg).await?;
                    agent::own_domid(&client).await?
                }
            };
            if domid == DomId::DOM0 {
                warn!("{DOM0_BY_DOMID}");
                return Ok(());
            }
            cfg.domid = Some(domid);
        }
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
    if let Some(dir) = &args.generate_man {
        return match clidoc::write_man_pages(
            Args::command(),
            "8",
            &["drvdom(1)", "drvdom-xenstored(8)", "xl(1)"],
            dir,
        ) {
            Ok(_) => ExitCode::SUCCESS,
            Err(err) => {
                #[allow(clippy::print_stderr)] // the binary's one error report
                {
                    eprintln!("error: {:#}", anyhow::Error::new(err));
                }
                ExitCode::from(1)
            }
        };
    }
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
