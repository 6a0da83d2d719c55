//! `drvdom doctor`: is this host ready for driver domains? Each check says
//! PASS, WARN, FAIL or SKIP, what it found and, unless it passed, one
//! sentence saying how to fix it. Check groups: `pci` (more to come).

use std::process::ExitCode;

use serde::Serialize;

use super::pci::{ModulesOpts, SysfsOpts, lib_err, parse_bdfs};

/// `drvdom doctor` arguments.
#[derive(clap::Args, Debug)]
pub struct DoctorArgs {
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    /// Devices to judge for passthrough (default: every network device).
    #[arg(long = "device", value_name = "BDF")]
    pub devices: Vec<String>,
    #[command(flatten)]
    pub sysfs: SysfsOpts,
    #[command(flatten)]
    pub modules: ModulesOpts,
}

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    /// Fine.
    Pass,
    /// Works, with a caveat.
    Warn,
    /// Will not work until fixed.
    Fail,
    /// Could not be checked here.
    Skip,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
        }
    }
}

/// One check, from any group.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// The group (`pci`, later `xenstore`, `netback`, ...).
    pub group: &'static str,
    /// Short name.
    pub name: String,
    /// Outcome.
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// One sentence saying what to do.
    pub fix: Option<String>,
}

/// The PCI passthrough checks.
fn pci_checks(args: &DoctorArgs) -> anyhow::Result<Vec<Check>> {
    let bdfs = parse_bdfs(&args.devices)?;
    let xl = args.sysfs.xl_info();
    let modules_dir = args.modules.dir();
    let input = pci::checks::CheckInput::new(&bdfs, xl.as_deref(), modules_dir.as_deref());
    let sysfs = pci::Sysfs::new(&args.sysfs.sysfs_root);
    let checks = pci::checks::run_checks(&sysfs, &input).map_err(lib_err)?;
    Ok(checks
        .into_iter()
        .map(|c| Check {
            group: "pci",
            name: c.name,
            status: match c.status {
                pci::checks::Status::Pass => Status::Pass,
                pci::checks::Status::Warn => Status::Warn,
                pci::checks::Status::Fail => Status::Fail,
                pci::checks::Status::Skip => Status::Skip,
            },
            detail: c.detail,
            fix: c.fix,
        })
        .collect())
}

/// Run `drvdom doctor`: exit 0 if nothing failed, 1 otherwise.
#[allow(clippy::print_stdout)] // the command's output
pub fn run(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let mut checks = Vec::new();
    checks.extend(pci_checks(&args)?);

    let count = |s: Status| checks.iter().filter(|c| c.status == s).count();
    let failed = count(Status::Fail) > 0;
    if args.json {
        let v = serde_json::json!({
            "checks": checks,
            "summary": {
                "pass": count(Status::Pass),
                "warn": count(Status::Warn),
                "fail": count(Status::Fail),
                "skip": count(Status::Skip),
            },
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for c in &checks {
            println!("{}  {:width$}  {}", c.status.label(), c.name, c.detail);
            if let Some(f) = &c.fix {
                println!("      {:width$}  fix: {f}", "");
            }
        }
        println!(
            "{} passed, {} warnings, {} failed, {} skipped",
            count(Status::Pass),
            count(Status::Warn),
            count(Status::Fail),
            count(Status::Skip)
        );
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
