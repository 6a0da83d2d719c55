//! `drvdom-xenstored`: parse arguments, set up logging, start up (fork,
//! pid file, Xen devices), run the daemon.
//!
//! Two ways to invoke it:
//! * drvdom's (`--socket PATH`, as the simulator, tests and benchmarks
//!   do): stays in the foreground unless `--fork`.
//! * the C daemon's (no `--socket`, as Debian's `/etc/init.d/xen` runs
//!   `$XENSTORED $XENSTORED_ARGS --pid-file /run/xenstore.pid`): binds
//!   `$XENSTORED_PATH` or `/var/run/xenstored/socket`, forks unless `-N`,
//!   and on Xen's control domain serves dom0's kernel ring and every
//!   introduced domain's ring. The C daemon's flags are accepted.
//!
//! Prints nothing on stdout (except the pid with `-P`); logs go to stderr,
//! or to the `-T` file (`RUST_LOG` sets the level, default `info`; `-V`
//! means `debug`). Once forked, stderr is `/dev/null`: use `-T`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{ArgAction, Parser, ValueEnum};
use tracing::{info, warn};
use xenstored::daemon::{self, Config};
use xenstored::startup::{self, Daemonized, PidFile, Readiness};
use xenstored::{Quotas, RingSet, xen};

/// When to serve Xen's shared rings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum XenMode {
    /// On Xen's control domain (`control_d` in /proc/xen/capabilities),
    /// unless --domain-socket-dir is given.
    Auto,
    /// Always (fail if Xen's devices are missing).
    On,
    /// Never: unix sockets only.
    Off,
}

/// A xenstore server: a unix socket for dom0's tools and, on a Xen host,
/// dom0's kernel ring and every introduced domain's shared ring.
#[derive(Debug, Parser)]
#[command(
    name = "drvdom-xenstored",
    version,
    disable_help_flag = true,
    disable_version_flag = true,
    args_override_self = true
)]
#[allow(clippy::struct_excessive_bools)] // one flag per C daemon option
struct Args {
    /// Print help (-H, as the C daemon).
    #[arg(short = 'h', long, short_alias = 'H', action = ArgAction::Help)]
    help: Option<bool>,
    /// Print the version (no -V: that is --verbose, as the C daemon).
    #[arg(long, action = ArgAction::Version)]
    version: Option<bool>,
    /// Socket for dom0 (privileged) clients. Without it: $XENSTORED_PATH,
    /// else $XENSTORED_RUNDIR/socket, else /var/run/xenstored/socket, and
    /// the C daemon's start-up (fork unless -N).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Create DIR/DOMID.sock for each introduced domain; clients there act
    /// as that (unprivileged) domain (simulated hosts).
    #[arg(long, value_name = "DIR")]
    domain_socket_dir: Option<PathBuf>,
    /// Serve Xen's shared rings (dom0's kernel ring, introduced domains).
    #[arg(long, value_enum, default_value_t = XenMode::Auto)]
    xen: XenMode,
    /// Stay in the foreground (the C daemon's -N).
    #[arg(short = 'N', long)]
    no_fork: bool,
    /// Fork into the background even with --socket.
    #[arg(long, conflicts_with = "no_fork")]
    fork: bool,
    /// Do not serve dom0's kernel ring (the C daemon's -D).
    #[arg(short = 'D', long)]
    no_domain_init: bool,
    /// Write the daemon's pid to this file, locked while it runs (removed
    /// on exit); a locked file means another xenstored runs.
    #[arg(short = 'F', long, value_name = "FILE")]
    pid_file: Option<PathBuf>,
    /// Print the daemon's pid on stdout.
    #[arg(short = 'P', long)]
    output_pid: bool,
    /// Log to this file (appended) instead of stderr.
    #[arg(short = 'T', long, value_name = "FILE")]
    trace_file: Option<PathBuf>,
    /// Log at debug level.
    #[arg(short = 'V', long)]
    verbose: bool,
    /// Nodes a domain may own.
    #[arg(
        short = 'E',
        long,
        alias = "entry-nb",
        value_name = "N",
        default_value_t = 1000
    )]
    quota_nodes: u32,
    /// Watches per domain.
    #[arg(
        short = 'W',
        long,
        alias = "watch-nb",
        value_name = "N",
        default_value_t = 128
    )]
    quota_watches: u32,
    /// Open transactions per domain.
    #[arg(
        short = 't',
        long,
        alias = "transaction",
        value_name = "N",
        default_value_t = 10
    )]
    quota_transactions: u32,
    /// Largest value a domain may write, in bytes.
    #[arg(
        short = 'S',
        long,
        alias = "entry-size",
        value_name = "N",
        default_value_t = 2048
    )]
    quota_node_size: u32,
    /// Permission entries per node.
    #[arg(
        short = 'A',
        long,
        alias = "perm-nb",
        value_name = "N",
        default_value_t = 5
    )]
    quota_perms: u32,
    /// Requests of a domain handled per batch before its replies are sent.
    #[arg(long, value_name = "N", default_value_t = 20)]
    quota_outstanding: u32,
    /// Longest node path (after /local/domain/<id>/).
    #[arg(short = 'M', long, value_name = "CHARS")]
    path_max: Option<u32>,
    /// Set a quota, as the C daemon: transaction-nodes, outstanding,
    /// nodes, watches, transactions, node-size, node-permissions,
    /// path-length (memory is accepted and not enforced by this build).
    #[arg(short = 'Q', long = "quota", value_name = "WHAT=N")]
    quota: Vec<String>,
    /// Soft quota (the C daemon only warns; accepted and ignored).
    #[arg(short = 'q', long = "quota-soft", value_name = "WHAT=N")]
    quota_soft: Vec<String>,
    /// Timeouts (the C daemon's watch-event; accepted and ignored).
    #[arg(short = 'w', long = "timeout", value_name = "WHAT=SECONDS")]
    timeout: Vec<String>,
    /// Accepted for compatibility (there is no database to recover).
    #[arg(short = 'R', long)]
    no_recovery: bool,
    /// Accepted for compatibility (the store is always in memory).
    #[arg(short = 'I', long, value_name = "on|off", num_args = 0..=1, default_missing_value = "on")]
    internal_db: Option<String>,
    /// Accepted for compatibility: nodes of a removed domain are always
    /// kept (the toolstack removes /local/domain/N itself).
    #[arg(short = 'K', long)]
    keep_orphans: bool,
}

fn quotas_of(args: &Args) -> anyhow::Result<Quotas> {
    let mut q = Quotas::default();
    q.nodes = args.quota_nodes;
    q.watches = args.quota_watches;
    q.transactions = args.quota_transactions;
    q.node_size = args.quota_node_size;
    q.perms = args.quota_perms;
    q.outstanding = args.quota_outstanding;
    if let Some(m) = args.path_max {
        q.path_max = m;
    }
    for spec in &args.quota {
        let (name, value) = spec
            .split_once('=')
            .with_context(|| format!("-Q {spec}: expected WHAT=N"))?;
        let v: u32 = value
            .parse()
            .with_context(|| format!("-Q {spec}: {value:?} is not a number"))?;
        match name {
            "transaction-nodes" => q.transaction_nodes = v,
            "outstanding" => q.outstanding = v,
            "nodes" => q.nodes = v,
            "watches" => q.watches = v,
            "transactions" => q.transactions = v,
            "node-size" => q.node_size = v,
            "node-permissions" | "permissions" => q.perms = v,
            "path-length" | "path-max" => q.path_max = v,
            "memory" => warn!("-Q memory={v}: not enforced by this build"),
            _ => anyhow::bail!(
                "-Q {spec}: unknown quota {name:?} (transaction-nodes, outstanding, nodes, \
                 watches, transactions, node-size, node-permissions, path-length, memory)"
            ),
        }
    }
    Ok(q)
}

/// Everything opened before serving: a failure here is reported to the
/// waiting parent.
struct Prepared {
    config: Config,
    rings: Option<RingSet>,
    _pid: Option<PidFile>,
}

fn prepare(args: &Args, socket: PathBuf) -> anyhow::Result<Prepared> {
    let quotas = quotas_of(args)?;
    let pid = match &args.pid_file {
        Some(p) => Some(PidFile::create(p)?),
        None => None,
    };
    startup::check_socket_free(&socket)?;
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let paths = xen::Paths::default();
    let serve_rings = match args.xen {
        XenMode::On => true,
        XenMode::Off => false,
        XenMode::Auto => args.domain_socket_dir.is_none() && xen::is_control_domain(&paths),
    };
    let rings = if serve_rings {
        let host = xen::XenHost::open(&paths)?;
        let mut set = RingSet::new(Box::new(host));
        if !args.no_domain_init {
            let (page, port) = xen::map_dom0_ring(&paths.proc_xen)?;
            set.set_dom0(Box::new(page), port);
        }
        Some(set)
    } else {
        None
    };
    let mut config = Config::new(&socket);
    config.domain_socket_dir = args.domain_socket_dir.clone();
    config.quotas = quotas;
    Ok(Prepared {
        config,
        rings,
        _pid: pid,
    })
}

async fn shutdown_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(xenstored::Error::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(xenstored::Error::Signal)?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

async fn serve(p: Prepared, readiness: &Readiness, output_pid: bool) -> anyhow::Result<()> {
    let socket = p.config.socket.clone();
    let rings = p.rings.is_some();
    // Install the handlers before serving so an early SIGTERM is not lost.
    let (tx, rx) = tokio::sync::oneshot::channel::<anyhow::Result<()>>();
    tokio::spawn(async move {
        let _ = tx.send(shutdown_signal().await);
    });
    let mut sig_err = None;
    daemon::run_with(
        p.config,
        p.rings,
        || {
            info!(socket = %socket.display(), rings, "ready");
            if output_pid && !readiness.parent_waiting() {
                #[allow(clippy::print_stdout)] // -P: the pid on stdout, as the C daemon
                {
                    println!("{}", std::process::id());
                }
            }
            readiness.ready();
        },
        async {
            if let Ok(Err(e)) = rx.await {
                sig_err = Some(e);
            }
        },
    )
    .await
    .with_context(|| format!("serve xenstore on {}", socket.display()))?;
    if let Some(e) = sig_err {
        return Err(e);
    }
    Ok(())
}

fn init_logging(args: &Args) -> anyhow::Result<()> {
    // A plain level from RUST_LOG (error|warn|info|debug|trace|off); no
    // per-target filter, which keeps the regex engine out of the binary.
    let level = if args.verbose {
        tracing_subscriber::filter::LevelFilter::DEBUG
    } else {
        std::env::var("RUST_LOG")
            .ok()
            .and_then(|v| v.parse::<tracing_subscriber::filter::LevelFilter>().ok())
            .unwrap_or(tracing_subscriber::filter::LevelFilter::INFO)
    };
    let builder = tracing_subscriber::fmt().with_max_level(level);
    match &args.trace_file {
        Some(path) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("open trace file {}", path.display()))?;
            builder
                .with_writer(std::sync::Mutex::new(f))
                .with_ansi(false)
                .init();
        }
        None => builder
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
    Ok(())
}

#[allow(clippy::print_stderr)] // the binary's one error report
fn report(e: &anyhow::Error) -> ExitCode {
    eprintln!("drvdom-xenstored: error: {e:#}");
    ExitCode::from(1)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let c_style = args.socket.is_none();
    let socket = args.socket.clone().unwrap_or_else(startup::default_socket);
    let fork = if c_style { !args.no_fork } else { args.fork };
    // Fork first, while this is the only thread (no runtime yet).
    let readiness = if fork {
        match startup::daemonize() {
            Ok(Daemonized::Parent(Ok(pid))) => {
                if args.output_pid {
                    #[allow(clippy::print_stdout)] // -P: the daemon's pid
                    {
                        println!("{pid}");
                    }
                }
                return ExitCode::SUCCESS;
            }
            Ok(Daemonized::Parent(Err(msg))) => return report(&anyhow::anyhow!(msg)),
            Ok(Daemonized::Daemon(r)) => r,
            Err(e) => return report(&e.into()),
        }
    } else {
        Readiness::foreground()
    };
    let fail = |e: anyhow::Error| {
        if readiness.parent_waiting() {
            readiness.fail(&format!("{e:#}"));
        }
        report(&e)
    };
    if let Err(e) = init_logging(&args) {
        return fail(e);
    }
    for s in args.quota_soft.iter().chain(&args.timeout) {
        info!(option = %s, "accepted for compatibility; has no effect here");
    }
    let prepared = match prepare(&args, socket) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(anyhow::anyhow!("cannot start the async runtime: {e}")),
    };
    match rt.block_on(serve(prepared, &readiness, args.output_pid)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent_and_takes_the_c_daemons_flags() {
        Args::command().debug_assert();
        let a = Args::try_parse_from([
            "x",
            "-N",
            "-D",
            "-V",
            "-F",
            "/run/p",
            "-T",
            "/tmp/t",
            "-E",
            "5",
            "-W",
            "6",
            "-t",
            "7",
            "-S",
            "8",
            "-A",
            "9",
            "-M",
            "100",
            "-Q",
            "transaction-nodes=11",
            "-Q",
            "memory=2",
            "-q",
            "memory=1",
            "-w",
            "watch-event=20",
            "-R",
            "-I",
            "-K",
            "-P",
            "--pid-file",
            "/run/xenstore.pid",
        ])
        .unwrap();
        assert!(a.no_fork && a.no_domain_init && a.verbose && a.keep_orphans);
        assert_eq!(
            a.pid_file.as_deref(),
            Some(std::path::Path::new("/run/xenstore.pid"))
        );
        let q = quotas_of(&a).unwrap();
        assert_eq!((q.nodes, q.watches, q.transactions), (5, 6, 7));
        assert_eq!(
            (q.node_size, q.perms, q.path_max, q.transaction_nodes),
            (8, 9, 100, 11)
        );
        let bad = Args::try_parse_from(["x", "-Q", "bogus=1"]).unwrap();
        assert!(quotas_of(&bad).is_err());
    }
}
