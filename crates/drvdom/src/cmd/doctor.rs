//! `drvdom doctor`: is this host ready for driver domains? Each check says
//! PASS, WARN, FAIL or SKIP, what it found and, unless it passed, one
//! sentence saying how to fix it. Check groups: `pci` (IOMMU, pciback,
//! reset, IOMMU groups) and `xenstore` (server reachable, quotas large
//! enough for a driver domain's vifs).

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
    /// Run only these check groups (repeatable): pci, xenstore.
    #[arg(long = "only", value_name = "GROUP", value_parser = ["pci", "xenstore"])]
    pub only: Vec<String>,
    /// How many vifs one driver domain should be able to serve (for the
    /// xenstore quota check).
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub vifs: u32,
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

/// Nodes a driver domain owns per vif: the backend directory and the
/// toolstack's keys (frontend, frontend-id, online, state, script, mac, mtu,
/// bridge, handle, type, hotplug-status: libxl_nic.c
/// `libxl__set_xenstore_nic`), netback's feature and queue keys (netif.h),
/// the hotplug keys, and the parent directories. Measured at about 30 in
/// the simulator; rounded up.
const NODES_PER_VIF: u32 = 32;

/// The xenstore checks: is a server reachable, and do its per-domain node
/// quota let one driver domain serve `vifs` vifs?
fn xenstore_checks(vifs: u32) -> Vec<Check> {
    let check = |name: &str, status, detail: String, fix: Option<&str>| Check {
        group: "xenstore",
        name: name.to_string(),
        status,
        detail,
        fix: fix.map(str::to_string),
    };
    let where_ = xenstore::client::default_endpoint();
    let client = match xenstore::Client::connect_default() {
        Ok(c) => c,
        Err(e) => {
            return vec![check(
                "xenstore",
                Status::Skip,
                format!("no xenstore server reachable ({e})"),
                Some(
                    "On a Xen host start xenstored in dom0 (systemctl start xenstored); elsewhere set XENSTORED_PATH.",
                ),
            )];
        }
    };
    let mut out = vec![check(
        "xenstore",
        Status::Pass,
        format!("server reachable ({})", where_.display()),
        None,
    )];
    let quota = client
        .control(&["quota"])
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let nodes = quota.as_ref().ok().and_then(|q| {
        q.lines()
            .find(|l| l.trim_start().starts_with("nodes"))
            .and_then(|l| l.split(':').nth(1))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u32>().ok())
    });
    out.push(match nodes {
        Some(n) if n / NODES_PER_VIF >= vifs => check(
            "xenstore-quota",
            Status::Pass,
            format!(
                "{n} nodes per domain: room for about {} vifs per driver domain ({NODES_PER_VIF} nodes each)",
                n / NODES_PER_VIF
            ),
            None,
        ),
        Some(n) => check(
            "xenstore-quota",
            Status::Warn,
            format!(
                "{n} nodes per domain: room for only about {} vifs per driver domain ({NODES_PER_VIF} nodes each), {vifs} wanted",
                n / NODES_PER_VIF
            ),
            Some(&format!(
                "Raise the node quota to at least {}: xenstored -E {0} (oxenstored: quota-maxentity), or drvdom-xenstored --quota-nodes {0}.",
                vifs.saturating_mul(NODES_PER_VIF)
            )),
        ),
        None => check(
            "xenstore-quota",
            Status::Skip,
            match quota {
                Ok(_) => "the server did not report its node quota".to_string(),
                Err(e) => format!("CONTROL quota failed: {e}"),
            },
            Some("Check the node quota by hand (xenstore-control quota) against the vifs you plan."),
        ),
    });
    out
}

/// Run `drvdom doctor`: exit 0 if nothing failed, 1 otherwise.
#[allow(clippy::print_stdout)] // the command's output
pub fn run(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let wants = |g: &str| args.only.is_empty() || args.only.iter().any(|o| o == g);
    let mut checks = Vec::new();
    if wants("pci") {
        checks.extend(pci_checks(&args)?);
    }
    if wants("xenstore") {
        checks.extend(xenstore_checks(args.vifs));
    }

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
