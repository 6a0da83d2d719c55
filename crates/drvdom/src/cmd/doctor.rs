//! `drvdom doctor`: is this host ready for driver domains? First a verdict
//! line (is this Xen, is it dom0, is xenstore reachable), then each check
//! says PASS, WARN, FAIL or SKIP, what it found and, unless it passed, one
//! sentence saying how to fix it. Check groups: `pci` (IOMMU, pciback,
//! reset, IOMMU groups, the management NIC) and `xenstore` (server
//! reachable — a FAIL on a Xen dom0 —, quotas large enough for a driver
//! domain's vifs). Every check has a stable id (`pci/iommu`,
//! `xenstore/reachable`, ...).

use std::process::ExitCode;

use serde::Serialize;

use super::output::{self, paint, schema};
use super::pci::{ModulesOpts, ProcOpts, SysfsOpts, lib_err, parse_bdfs};

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
    #[command(flatten)]
    pub proc_: ProcOpts,
    /// Where Xen's /proc/xen is (a fixture directory in tests).
    #[arg(
        long,
        env = "DRVDOM_PROC_XEN",
        default_value = "/proc/xen",
        value_name = "DIR",
        hide = true
    )]
    pub proc_xen: std::path::PathBuf,
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
    /// Stable id: `<group>/<check>` (`pci/reset/0000:03:00.0`).
    pub id: String,
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
            id: format!("pci/{}", c.name.replace(' ', "/")),
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
fn xenstore_checks(vifs: u32, host: &Verdict) -> Vec<Check> {
    let check = |name: &str, status, detail: String, fix: Option<&str>| Check {
        id: format!("xenstore/{name}"),
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
            // On a Xen dom0 nothing works without it; elsewhere there is
            // nothing to check.
            let status = if host.dom0 {
                Status::Fail
            } else {
                Status::Skip
            };
            return vec![check(
                "reachable",
                status,
                format!("no xenstore server reachable at {} ({e})", where_.display()),
                Some(if host.dom0 {
                    "Start xenstored in dom0: systemctl start xenstored (Debian: xen-utils-common)."
                } else {
                    "On a Xen dom0 start xenstored (systemctl start xenstored); elsewhere set XENSTORED_PATH."
                }),
            )];
        }
    };
    let mut out = vec![check(
        "reachable",
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
            "quota",
            Status::Pass,
            format!(
                "{n} nodes per domain: room for about {} vifs per driver domain ({NODES_PER_VIF} nodes each)",
                n / NODES_PER_VIF
            ),
            None,
        ),
        Some(n) => check(
            "quota",
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
            "quota",
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

/// What kind of host this is: the first line of `doctor`.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// `/proc/xen` exists (a Xen domain).
    pub xen: bool,
    /// `/proc/xen/capabilities` lists `control_d` (dom0).
    pub dom0: bool,
    /// A xenstore server answered.
    pub xenstore: bool,
    /// One sentence.
    pub summary: String,
}

fn verdict(proc_xen: &std::path::Path) -> Verdict {
    let xen = proc_xen.is_dir();
    let dom0 = std::fs::read_to_string(proc_xen.join("capabilities")).is_ok_and(|c| {
        c.split(|ch: char| !ch.is_ascii_alphanumeric() && ch != '_')
            .any(|w| w == "control_d")
    });
    let xenstore = xenstore::Client::connect_default().is_ok();
    let summary = match (xen, dom0, xenstore) {
        (false, _, false) => format!(
            "this is not a Xen host (no {}): passthrough checks only; on a lab use --lab NAME",
            proc_xen.display()
        ),
        (false, _, true) => format!(
            "this is not a Xen host (no {}), but a xenstore server answers (XENSTORED_PATH)",
            proc_xen.display()
        ),
        (true, true, true) => "Xen dom0, xenstore reachable".to_string(),
        (true, true, false) => "Xen dom0, but xenstore is NOT reachable".to_string(),
        (true, false, true) => {
            "a Xen domain but not dom0 (a driver domain or guest); xenstore reachable".to_string()
        }
        (true, false, false) => "a Xen domain but not dom0; xenstore not reachable".to_string(),
    };
    Verdict {
        xen,
        dom0,
        xenstore,
        summary,
    }
}

/// The management NIC check: the NIC carrying dom0's default route must
/// stay in dom0.
fn mgmt_checks(args: &DoctorArgs) -> Vec<Check> {
    let fs = pci::Sysfs::new(&args.sysfs.sysfs_root);
    let found = pci::management_nics(&fs, &args.proc_.net());
    let check = |status, detail: String, fix: Option<&str>| Check {
        id: "pci/management-nic".to_string(),
        group: "pci",
        name: "management-nic".to_string(),
        status,
        detail,
        fix: fix.map(str::to_string),
    };
    if found.is_empty() {
        return vec![check(
            Status::Pass,
            "no PCI NIC carries dom0's default route".to_string(),
            None,
        )];
    }
    found
        .iter()
        .map(|m| {
            check(
                Status::Warn,
                m.warning(),
                Some("Keep this NIC in dom0: pass another NIC to the driver domain (drvdom pci assign refuses it without --force)."),
            )
        })
        .collect()
}

/// Run `drvdom doctor`: exit 0 if nothing failed, 1 otherwise.
#[allow(clippy::print_stdout)] // the command's output
pub fn run(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let wants = |g: &str| args.only.is_empty() || args.only.iter().any(|o| o == g);
    let host = verdict(&args.proc_xen);
    let mut checks = Vec::new();
    if wants("pci") {
        checks.extend(pci_checks(&args)?);
        checks.extend(mgmt_checks(&args));
    }
    if wants("xenstore") {
        checks.extend(xenstore_checks(args.vifs, &host));
    }

    let count = |s: Status| checks.iter().filter(|c| c.status == s).count();
    let failed = count(Status::Fail) > 0;
    if args.json {
        output::print_json(
            schema::DOCTOR,
            &serde_json::json!({
                "host": host,
                "checks": checks,
                "summary": {
                    "pass": count(Status::Pass),
                    "warn": count(Status::Warn),
                    "fail": count(Status::Fail),
                    "skip": count(Status::Skip),
                },
                "ok": !failed,
            }),
        )?;
    } else {
        println!("host: {}", host.summary);
        let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for c in &checks {
            println!(
                "{}  {:width$}  {}",
                paint(c.status.label()),
                c.name,
                c.detail
            );
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
