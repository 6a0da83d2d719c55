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
//!
//! Order (RINGS.md §6): fork first, while this is the only thread; then
//! block SIGTERM/SIGINT (every later thread inherits the mask; one waits
//! for them with sigwait), bind the socket, open the Xen devices, serve
//! dom0's kernel ring, tell the waiting parent, and run the one-thread
//! epoll loop of [`xenstored::daemon`].

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{ArgAction, CommandFactory, FromArgMatches, Parser, ValueEnum};
use tracing::info;
use xenstored::daemon::{Config, Daemon, Stopper};
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
    /// Requests of a domain handled per turn before its replies are sent.
    #[arg(long, value_name = "N", default_value_t = 20)]
    quota_outstanding: u32,
    /// Bytes a domain may make the server hold: nodes, watches,
    /// transactions, queued output (the C daemon's -Q memory=; 0: no
    /// limit). Default: Xen's 2.5 MiB, or 2.5 KiB per node of
    /// --quota-nodes if that is more.
    #[arg(long, value_name = "BYTES")]
    quota_memory: Option<u32>,
    /// Nodes one transaction may touch (the C daemon's -Q
    /// transaction-nodes=).
    #[arg(long, value_name = "N", default_value_t = 1024)]
    quota_transaction_nodes: u32,
    /// Longest node path (after `/local/domain/<id>/`).
    #[arg(short = 'M', long, value_name = "CHARS")]
    path_max: Option<u32>,
    /// Set a quota, as the C daemon: transaction-nodes, outstanding,
    /// nodes, watches, transactions, node-size, node-permissions,
    /// path-length, memory.
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
    /// Write the man page (drvdom-xenstored.8) into DIR and exit (packaging).
    #[arg(long, value_name = "DIR", hide = true, exclusive = true)]
    generate_man: Option<PathBuf>,
}

fn quotas_of(args: &Args) -> anyhow::Result<Quotas> {
    let mut q = Quotas::default();
    q.nodes = args.quota_nodes;
    q.watches = args.quota_watches;
    q.transactions = args.quota_transactions;
    q.node_size = args.quota_node_size;
    q.perms = args.quota_perms;
    q.outstanding = args.quota_outstanding;
    q.transaction_nodes = args.quota_transaction_nodes;
    q.memory = args
        .quota_memory
        .unwrap_or_else(|| Quotas::memory_for_nodes(args.quota_nodes));
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
            "memory" => q.memory = v,
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

/// Stop the daemon on SIGTERM or SIGINT: the signals are blocked in this
/// (the main) thread before any other starts, so every thread inherits
/// the mask (and an early SIGTERM stays pending instead of being lost),
/// and one thread waits for them with sigwait. Call after forking.
fn stop_on_signals() -> anyhow::Result<impl FnOnce(Stopper)> {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set.thread_block()
        .map_err(|e| xenstored::Error::Signal(e.into()))?;
    Ok(move |stopper: Stopper| {
        std::thread::spawn(move || {
            if set.wait().is_ok() {
                stopper.stop();
            }
        });
    })
}

/// Bind, serve dom0's kernel ring (if any), report readiness, and run the
/// loop until SIGTERM/SIGINT.
fn serve(p: Prepared, readiness: &Readiness, output_pid: bool) -> anyhow::Result<()> {
    let on_signal = stop_on_signals()?;
    let socket = p.config.socket.clone();
    let mut d = Daemon::bind(&p.config)
        .with_context(|| format!("serve xenstore on {}", socket.display()))?;
    let rings = p.rings.is_some();
    if let Some(mut set) = p.rings {
        // sets the core's domain oracle and serves dom0's kernel ring
        let started = set
            .start(d.server_mut())
            .map_err(anyhow::Error::from)
            .and_then(|()| d.add_rings(Box::new(set)).map_err(anyhow::Error::from));
        if let Err(e) = started {
            let _ = std::fs::remove_file(&socket);
            return Err(e);
        }
    }
    on_signal(d.stopper());
    info!(socket = %socket.display(), rings, "ready");
    if output_pid && !readiness.parent_waiting() {
        #[allow(clippy::print_stdout)] // -P: the pid on stdout, as the C daemon
        {
            println!("{}", std::process::id());
        }
    }
    readiness.ready();
    d.run()
        .with_context(|| format!("serve xenstore on {}", socket.display()))
}

/// `--generate-man DIR`: checked before the rest.
fn generate_man(dir: &std::path::Path) -> ExitCode {
    match clidoc::write_man_pages(Args::command(), "8", &["drvdom(1)", "drvdom-agent(8)"], dir) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => report(&anyhow::Error::new(e)),
    }
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
    let matches = Args::command().get_matches();
    if let Some(dir) = matches.get_one::<PathBuf>("generate_man") {
        return generate_man(dir);
    }
    let args = Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let c_style = args.socket.is_none();
    let socket = args.socket.clone().unwrap_or_else(startup::default_socket);
    let fork = if c_style { !args.no_fork } else { args.fork };
    // Fork first, while this is the only thread.
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
    match serve(prepared, &readiness, args.output_pid) {
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
        assert_eq!(q.memory, 2, "-Q memory= is enforced now");
        let a =
            Args::try_parse_from(["x", "--quota-memory", "0", "--quota-transaction-nodes", "3"])
                .unwrap();
        let q = quotas_of(&a).unwrap();
        assert_eq!((q.memory, q.transaction_nodes), (0, 3));
        let bad = Args::try_parse_from(["x", "-Q", "bogus=1"]).unwrap();
        assert!(quotas_of(&bad).is_err());
    }
}
