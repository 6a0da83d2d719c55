//! `drvdom`: the command line of the drvdom toolstack.
//!
//! Thin: parses arguments, sets up logging and colour, and calls one
//! `cmd::*` module per subcommand. Exit statuses and error reports are
//! `cmd::output`'s (docs/json.md): 0 success, 1 a check or action failed or
//! something is unhealthy, 2 usage or input error (plan: 2 changes pending).

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

mod cmd;

use cmd::output::{self, ColorChoice};

/// `drvdom --version`: the version, the commit it was built from and the
/// Xen interfaces this build expects.
const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    "\ncommit: ",
    env!("DRVDOM_GIT_COMMIT"),
    "\nxen: tested with Xen 4.17 (xl 4.17 and libxl's xenstore device layout; domains are created by xl, no domctl is used directly)",
    "\nxenstore: wire protocol of xs_wire.h (16-byte header, payload up to 4096 bytes), XS_CONTROL quota commands of drvdom-xenstored",
    "\nxenbus: XenbusState 1-6 (io/xenbus.h), vif and pci backends as libxl writes them (netif.h, libxl_nic.c, libxl_pci.c)",
);

/// Shown after `drvdom --help`: exit statuses and JSON.
const AFTER_HELP: &str = "\
Exit status: 0 success; 1 a check or action failed, or a status found something unhealthy; \
2 usage or input error (bad arguments, unknown names, input refused before anything was written). \
The host-file commands follow Terraform: every error is 1, and `plan` exits 2 when changes are pending.

JSON: with --json (show: --format json) every command prints one object whose first key is \
`schema` (e.g. \"drvdom/lab-status/1\"); `lab up --json` prints one object per line (JSON Lines). \
Errors under --json are {\"schema\":\"drvdom/error/1\",\"error\":{\"code\":...,\"message\":...}} on stdout. \
Every schema and code: /usr/share/doc/drvdom/json.md (docs/json.md in the source).";

/// Xen driver domains made easy: one host file describes the driver
/// domains, their NICs and bridges and the guests they serve; `plan`,
/// `apply`, `verify`, `destroy` and `show` bring a Xen host (or, with
/// `--lab`, a simulated one) to it and check every step.
#[derive(Parser, Debug)]
#[command(
    name = "drvdom",
    version,
    long_version = LONG_VERSION,
    propagate_version = true,
    after_long_help = AFTER_HELP
)]
struct Cli {
    /// More log output on stderr (-v info, -vv debug, -vvv trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    /// Work on the simulated host NAME (`drvdom lab up`) instead of the
    /// real one (xl and the host's xenstore).
    #[arg(long, global = true, value_name = "NAME")]
    lab: Option<String>,

    /// Colour: `auto` (on a terminal, unless NO_COLOR is set), `always`, `never`.
    #[arg(long, global = true, value_enum, value_name = "WHEN", default_value_t = ColorChoice::Auto)]
    color: ColorChoice,

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
    /// The dom0 daemon that keeps guests' vifs across driver-domain
    /// restarts: when a driver domain dies it cleans up what it left; when
    /// a domain of that name is back with its agent ready it re-creates
    /// every guest vif it served (same devid and MAC). Runs as the
    /// drvdom-reconcile.service unit.
    Reconcile(cmd::reconcile::ReconcileArgs),
    /// Every device state change and every reconcile action, with a time,
    /// the domain, the device and the reason (the journal the reconcile
    /// daemon writes).
    Events(cmd::reconcile::EventsArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell to generate completions for.
        shell: clap_complete::Shell,
    },
    /// List every command that prints JSON (`--json`, `show --format
    /// json`), one per line, for the test that validates them all against
    /// docs/schemas.
    #[command(hide = true)]
    JsonCommands,
    /// Write the man pages of drvdom and every subcommand into DIR (packaging).
    #[command(hide = true)]
    GenerateMan {
        /// Where drvdom.1, drvdom-pci.1, drvdom-pci-assign.1, ... go (must exist).
        dir: std::path::PathBuf,
    },
}

/// Leaf commands with a `--json` flag or a `--format` offering json.
fn json_commands(cmd: &clap::Command, prefix: &str, out: &mut Vec<String>) {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let path = if prefix.is_empty() {
            sub.get_name().to_string()
        } else {
            format!("{prefix} {}", sub.get_name())
        };
        if sub.has_subcommands() {
            json_commands(sub, &path, out);
            continue;
        }
        let json = sub.get_arguments().any(|a| {
            a.get_long() == Some("json")
                || (a.get_long() == Some("format")
                    && a.get_possible_values()
                        .iter()
                        .any(|v| v.get_name() == "json"))
        });
        if json {
            out.push(path);
        }
    }
}

fn init_tracing(verbose: u8, ansi: bool) {
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
        .with_ansi(ansi)
        .try_init();
}

fn main() -> ExitCode {
    let json = output::json_requested(std::env::args_os().skip(1));
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind as K;
            if json
                && !matches!(
                    e.kind(),
                    K::DisplayHelp
                        | K::DisplayVersion
                        | K::DisplayHelpOnMissingArgumentOrSubcommand
                )
            {
                let msg = e.kind().as_str().map_or_else(
                    || e.to_string().trim().to_string(),
                    |k| {
                        let text = e.to_string();
                        let first = text.lines().next().unwrap_or(k).trim();
                        first.strip_prefix("error: ").unwrap_or(first).to_string()
                    },
                );
                output::report_error(&output::usage_error(msg), true);
                return ExitCode::from(output::exit::USAGE);
            }
            e.exit()
        }
    };
    output::init_colour(cli.color);
    init_tracing(cli.verbose, output::stderr_colour());
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
        Command::Reconcile(a) => cmd::reconcile::run(a, lab),
        Command::Events(a) => cmd::reconcile::run_events(a, lab),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "drvdom", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::JsonCommands => {
            let mut out = Vec::new();
            json_commands(&Cli::command(), "", &mut out);
            #[allow(clippy::print_stdout)] // the command's output
            for c in out {
                println!("{c}");
            }
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
            output::report_error(&err, json);
            ExitCode::from(if toolstack {
                output::exit::FAILED
            } else {
                output::exit_code_for(&err)
            })
        }
    }
}
