//! `drvdom-xenstored`: parse arguments, set up logging, run the daemon.
//!
//! Prints nothing on stdout; logs go to stderr (`RUST_LOG` sets the level,
//! default `info`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser};
use xenstored::Quotas;
use xenstored::daemon::{self, Config};

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
    /// Requests of a domain handled per batch before its replies are sent.
    #[arg(long, value_name = "N", default_value_t = 20)]
    quota_outstanding: u32,
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

async fn run(args: Args) -> anyhow::Result<()> {
    let mut quotas = Quotas::default();
    quotas.nodes = args.quota_nodes;
    quotas.watches = args.quota_watches;
    quotas.transactions = args.quota_transactions;
    quotas.node_size = args.quota_node_size;
    quotas.perms = args.quota_perms;
    quotas.outstanding = args.quota_outstanding;
    let mut config = Config::new(&args.socket);
    config.domain_socket_dir = args.domain_socket_dir.clone();
    config.quotas = quotas;
    if let Some(pid) = &args.pid_file {
        std::fs::write(pid, format!("{}\n", std::process::id()))
            .with_context(|| format!("write pid file {}", pid.display()))?;
    }
    // Install the handlers before serving so an early SIGTERM is not lost.
    let (tx, rx) = tokio::sync::oneshot::channel::<anyhow::Result<()>>();
    tokio::spawn(async move {
        let _ = tx.send(shutdown_signal().await);
    });
    let mut sig_err = None;
    let result = daemon::run(config, async {
        if let Ok(Err(e)) = rx.await {
            sig_err = Some(e);
        }
    })
    .await
    .with_context(|| format!("serve xenstore on {}", args.socket.display()));
    if let Some(pid) = &args.pid_file {
        let _ = std::fs::remove_file(pid);
    }
    result?;
    if let Some(e) = sig_err {
        return Err(e);
    }
    Ok(())
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
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            #[allow(clippy::print_stderr)] // the binary's one error report
            {
                eprintln!("error: cannot start the async runtime: {e}");
            }
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(args)) {
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
