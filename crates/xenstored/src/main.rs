//! `drvdom-xenstored`: parse arguments, set up logging, run the daemon.
//!
//! Prints nothing on stdout; logs go to stderr (`RUST_LOG` sets the level,
//! default `info`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser};
use xenstored::Quotas;
use xenstored::daemon::{self, Config, Stopper};

/// A xenstore server on a unix socket.
#[derive(Debug, Parser)]
#[command(name = "drvdom-xenstored", version)]
struct Args {
    /// Socket for dom0 (privileged) clients.
    #[arg(long, value_name = "PATH")]
    socket: PathBuf,
    /// Create DIR/DOMID.sock for each introduced domain; clients there act
    /// as that (unprivileged) domain.
    #[arg(long, value_name = "DIR")]
    domain_socket_dir: Option<PathBuf>,
    /// Nodes a domain may own.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    quota_nodes: u32,
    /// Watches per domain.
    #[arg(long, value_name = "N", default_value_t = 128)]
    quota_watches: u32,
    /// Open transactions per domain.
    #[arg(long, value_name = "N", default_value_t = 10)]
    quota_transactions: u32,
    /// Largest value a domain may write, in bytes.
    #[arg(long, value_name = "N", default_value_t = 2048)]
    quota_node_size: u32,
    /// Permission entries per node.
    #[arg(long, value_name = "N", default_value_t = 5)]
    quota_perms: u32,
    /// Requests of a domain handled per turn before its replies are sent.
    #[arg(long, value_name = "N", default_value_t = 20)]
    quota_outstanding: u32,
    /// Bytes a domain may make the server hold: nodes, watches,
    /// transactions, queued output (cxenstored -Q memory=; 0: no limit).
    /// Default: Xen's 2.5 MiB, or 2.5 KiB per node of --quota-nodes if
    /// that is more.
    #[arg(long, value_name = "BYTES")]
    quota_memory: Option<u32>,
    /// Nodes one transaction may touch (cxenstored -Q transaction-nodes=).
    #[arg(long, value_name = "N", default_value_t = 1024)]
    quota_transaction_nodes: u32,
    /// Write the process id to this file (removed on exit).
    #[arg(long, value_name = "FILE")]
    pid_file: Option<PathBuf>,
    /// Write the man page (drvdom-xenstored.8) into DIR and exit (packaging).
    #[arg(long, value_name = "DIR", hide = true, exclusive = true)]
    generate_man: Option<PathBuf>,
}

/// `--generate-man DIR`: checked before the rest, since it needs no --socket.
fn generate_man(dir: &std::path::Path) -> ExitCode {
    match clidoc::write_man_pages(Args::command(), "8", &["drvdom(1)", "drvdom-agent(8)"], dir) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            #[allow(clippy::print_stderr)] // the binary's one error report
            {
                eprintln!("error: {:#}", anyhow::Error::new(e));
            }
            ExitCode::from(1)
        }
    }
}

/// Stop the daemon on SIGTERM or SIGINT: the signals are blocked in this
/// (the main) thread before any other starts, so every thread inherits
/// the mask, and one thread waits for them with sigwait.
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

fn run(args: Args) -> anyhow::Result<()> {
    let mut quotas = Quotas::default();
    quotas.nodes = args.quota_nodes;
    quotas.watches = args.quota_watches;
    quotas.transactions = args.quota_transactions;
    quotas.node_size = args.quota_node_size;
    quotas.perms = args.quota_perms;
    quotas.outstanding = args.quota_outstanding;
    quotas.transaction_nodes = args.quota_transaction_nodes;
    quotas.memory = args
        .quota_memory
        .unwrap_or_else(|| Quotas::memory_for_nodes(args.quota_nodes));
    let mut config = Config::new(&args.socket);
    config.domain_socket_dir = args.domain_socket_dir.clone();
    config.quotas = quotas;
    // Block the signals before anything else: an early SIGTERM is then
    // kept pending until the waiter takes it, not lost.
    let on_ready = stop_on_signals()?;
    if let Some(pid) = &args.pid_file {
        std::fs::write(pid, format!("{}\n", std::process::id()))
            .with_context(|| format!("write pid file {}", pid.display()))?;
    }
    let result = daemon::serve(&config, on_ready)
        .with_context(|| format!("serve xenstore on {}", args.socket.display()));
    if let Some(pid) = &args.pid_file {
        let _ = std::fs::remove_file(pid);
    }
    result
}

fn main() -> ExitCode {
    // A plain level from RUST_LOG (error|warn|info|debug|trace|off); no
    // per-target filter, which keeps the regex engine out of the binary
    // (smaller binary, smaller resident set).
    let level = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<tracing_subscriber::filter::LevelFilter>().ok())
        .unwrap_or(tracing_subscriber::filter::LevelFilter::INFO);
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_max_level(level)
        .init();
    let matches = Args::command().get_matches();
    if let Some(dir) = matches.get_one::<PathBuf>("generate_man") {
        return generate_man(dir);
    }
    let args = Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            #[allow(clippy::print_stderr)] // the binary's one error report
            {
                eprintln!("error: {e:#}");
            }
            ExitCode::from(1)
        }
    }
}
