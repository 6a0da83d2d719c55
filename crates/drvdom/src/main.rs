//! `drvdom`: the command line of the drvdom toolstack.
//!
//! Thin: parses arguments, sets up logging, and calls one `cmd::*` module per
//! subcommand. Exit codes: 0 success, 1 a check or action failed, 2 usage or
//! configuration error.

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

mod cmd;

/// Xen driver domains made easy: one host file describes the driver
/// domains, their NICs and bridges and the guests they serve; `plan`,
/// `apply`, `verify`, `destroy` and `show` bring a Xen host (or, with
/// `--lab`, a simulated one) to it and check every step.
#[derive(Parser, Debug)]
#[command(name = "drvdom", version, propagate_version = true)]
struct Cli {
    /// More log output on stderr (-v info, -vv debug, -vvv trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    /// Work on the simulated host NAME (`drvdom lab up`) instead of the
    /// real one (xl and the host's xenstore).
    #[arg(long, global = true, value_name = "NAME")]
    lab: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show the actions that would bring the host to FILE (exit 0: none,
    /// 2: changes pending, 1: error).
    Plan(cmd::toolstack::FileArgs),
    /// Bring the host to FILE, action by action; a second apply resumes.
    Apply(cmd::toolstack::FileArgs),
    /// Check every step of FILE's setup on the host, PASS/FAIL with evidence.
    Verify(cmd::toolstack::FileArgs),
    /// Remove what FILE describes: vifs, guests, driver domains; NICs back
    /// to their drivers.
    Destroy(cmd::toolstack::FileArgs),
    /// Show the host (against FILE if given) as text, JSON, a graph or
    /// libvirt XML.
    Show(cmd::toolstack::ShowArgs),
    /// Check, format and show xl.cfg files.
    #[command(subcommand)]
    Config(cmd::config::ConfigCmd),
    /// Find PCI devices, hide them from dom0 (pciback), release them.
    #[command(subcommand)]
    Pci(cmd::pci::PciCmd),
    /// Check this host for driver-domain readiness; each check says how to fix it.
    Doctor(cmd::doctor::DoctorArgs),
    /// The simulated Xen host: dom0, a driver domain and guests as namespaces.
    #[command(subcommand)]
    Lab(cmd::lab::LabCmd),
    /// Attach or detach guests' network devices (vifs) live.
    #[command(subcommand)]
    Vif(cmd::vif::VifCmd),
    /// Inspect bridges in a driver domain: ports, guest names, vif states.
    #[command(subcommand)]
    Bridge(cmd::bridge::BridgeCmd),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell to generate completions for.
        shell: clap_complete::Shell,
    },
    /// Write the man pages of drvdom and every subcommand into DIR (packaging).
    #[command(hide = true)]
    GenerateMan {
        /// Where drvdom.1, drvdom-pci.1, drvdom-pci-assign.1, ... go (must exist).
        dir: std::path::PathBuf,
    },
}

fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    let lab = cli.lab.clone();
    // The host file's commands follow Terraform: every error exits 1 (2
    // means "changes pending" for plan).
    let toolstack = matches!(
        cli.command,
        Command::Plan(_)
            | Command::Apply(_)
            | Command::Verify(_)
            | Command::Destroy(_)
            | Command::Show(_)
    );
    use cmd::toolstack::Which;
    let result = match cli.command {
        Command::Plan(a) => cmd::toolstack::run(Which::Plan, a, lab),
        Command::Apply(a) => cmd::toolstack::run(Which::Apply, a, lab),
        Command::Destroy(a) => cmd::toolstack::run(Which::Destroy, a, lab),
        Command::Verify(a) => cmd::toolstack::run_verify(a, lab),
        Command::Show(a) => cmd::toolstack::run_show(a, lab),
        Command::Config(c) => cmd::config::run(c),
        Command::Pci(c) => cmd::pci::run(c),
        Command::Doctor(a) => cmd::doctor::run(a),
        Command::Lab(c) => cmd::lab::run(c, lab.as_deref()),
        Command::Vif(c) => cmd::vif::run(c, lab),
        Command::Bridge(c) => cmd::bridge::run(c, lab),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "drvdom", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::GenerateMan { dir } => {
            let see_also = [
                "drvdom-agent(8)",
                "drvdom-xenstored(8)",
                "xl(1)",
                "xl.cfg(5)",
            ];
            clidoc::write_man_pages(Cli::command(), "1", &see_also, &dir)
                .map(|_| ExitCode::SUCCESS)
                .map_err(anyhow::Error::new)
        }
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            #[allow(clippy::print_stderr)] // the binary's one error report
            {
                eprintln!("error: {err:#}");
            }
            ExitCode::from(if toolstack {
                1
            } else {
                cmd::exit_code_for(&err)
            })
        }
    }
}
