//! Passthrough readiness checks for `drvdom doctor`: IOMMU, pciback,
//! reset capability, IOMMU group sharing, multifunction siblings. Each
//! check gives a status and, unless it passed, one sentence saying what to do.

use std::path::Path;

use serde::Serialize;

use crate::device::{InfoSources, PciDevice};
use crate::error::Result;
use crate::sysfs::PCIBACK;
use crate::{Bdf, Sysfs, attrs, bootparams};

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    /// Fine.
    Pass,
    /// Works, with a caveat.
    Warn,
    /// Passthrough will not work (or is unsafe) until fixed.
    Fail,
    /// Could not be checked here.
    Skip,
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Check {
    /// Short name, e.g. `iommu` or `reset 0000:03:00.0`.
    pub name: String,
    /// Outcome.
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// One sentence saying what to do (for WARN and FAIL).
    pub fix: Option<String>,
}

impl Check {
    fn new(
        name: impl Into<String>,
        status: Status,
        detail: impl Into<String>,
        fix: Option<&str>,
    ) -> Self {
        Check {
            name: name.into(),
            status,
            detail: detail.into(),
            fix: fix.map(str::to_string),
        }
    }
}

/// Whether devices can be passed through safely.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum IommuStatus {
    /// An IOMMU is enabled; `source` says how we know.
    Enabled {
        /// Evidence.
        source: String,
    },
    /// No IOMMU found.
    Absent {
        /// What was checked.
        detail: String,
    },
}

/// Decide IOMMU status: `xl info` (`virt_caps` with `*_directio`) when its
/// output is given and has `virt_caps`; otherwise the IOMMUs the dom0 kernel
/// drives (`class/iommu`, `kernel/iommu_groups`).
pub fn iommu_status(sysfs: &Sysfs, xl_info: Option<&str>) -> IommuStatus {
    if let Some(direct) = xl_info.and_then(attrs::xl_info_directio) {
        return if direct {
            IommuStatus::Enabled {
                source: "xl info virt_caps lists directio".to_string(),
            }
        } else {
            IommuStatus::Absent {
                detail: "xl info virt_caps has no hvm_directio/pv_directio".to_string(),
            }
        };
    }
    let nonempty = |p: &Path| {
        std::fs::read_dir(p)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false)
    };
    let class = sysfs.class_iommu_dir();
    let groups = sysfs.iommu_groups_dir();
    if nonempty(&class) {
        IommuStatus::Enabled {
            source: format!("{} has entries", class.display()),
        }
    } else if nonempty(&groups) {
        IommuStatus::Enabled {
            source: format!("{} has entries", groups.display()),
        }
    } else {
        IommuStatus::Absent {
            detail: format!("{} and {} are empty", class.display(), groups.display()),
        }
    }
}

/// Run `xl info` if `xl` is on PATH; `None` if absent or failing.
pub fn xl_info() -> Option<String> {
    let out = std::process::Command::new("xl").arg("info").output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Inputs for [`run_checks`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct CheckInput<'a> {
    /// Devices to judge; empty means every network-class device.
    pub devices: &'a [Bdf],
    /// `xl info` output, when `xl` exists.
    pub xl_info: Option<&'a str>,
    /// `/lib/modules/<release>`, for pciback availability.
    pub modules_dir: Option<&'a Path>,
}

impl<'a> CheckInput<'a> {
    /// Inputs with every field given.
    pub fn new(
        devices: &'a [Bdf],
        xl_info: Option<&'a str>,
        modules_dir: Option<&'a Path>,
    ) -> Self {
        CheckInput {
            devices,
            xl_info,
            modules_dir,
        }
    }
}

/// All PCI checks.
pub fn run_checks(sysfs: &Sysfs, input: &CheckInput<'_>) -> Result<Vec<Check>> {
    let mut out = Vec::new();
    out.push(match iommu_status(sysfs, input.xl_info) {
        IommuStatus::Enabled { source } => Check::new(
            "iommu",
            Status::Pass,
            format!("IOMMU enabled ({source})"),
            None,
        ),
        IommuStatus::Absent { detail } => Check::new(
            "iommu",
            Status::Fail,
            format!("no IOMMU ({detail})"),
            Some("Enable VT-d or AMD-Vi in the firmware setup and boot Xen with iommu=1."),
        ),
    });
    out.push(pciback_check(sysfs, input.modules_dir));

    let src = InfoSources::default();
    let devices: Vec<PciDevice> = if input.devices.is_empty() {
        sysfs
            .list(&src)?
            .into_iter()
            .filter(PciDevice::is_network)
            .collect()
    } else {
        input
            .devices
            .iter()
            .map(|b| sysfs.device_info(*b, &src))
            .collect::<Result<_>>()?
    };
    if devices.is_empty() {
        out.push(Check::new(
            "devices",
            Status::Skip,
            "no network devices to check",
            None,
        ));
    }
    let chosen: Vec<Bdf> = devices.iter().map(|d| d.bdf).collect();
    for d in &devices {
        out.push(reset_check(d));
        out.push(group_check(sysfs, d, &chosen, &src)?);
        out.push(siblings_check(d, &chosen));
    }
    Ok(out)
}

fn pciback_check(sysfs: &Sysfs, modules_dir: Option<&Path>) -> Check {
    if sysfs.has_driver(PCIBACK) {
        return Check::new(
            "xen-pciback",
            Status::Pass,
            format!("{} exists", sysfs.driver_dir(PCIBACK).display()),
            None,
        );
    }
    let det = bootparams::detect(sysfs, modules_dir);
    match det.kind {
        Some(bootparams::PcibackKind::Module) => Check::new(
            "xen-pciback",
            Status::Warn,
            format!("xen-pciback is a module but not loaded: {}", det.evidence),
            Some("Run `modprobe xen-pciback` (and add it to /etc/modules for boot)."),
        ),
        Some(bootparams::PcibackKind::Builtin) => Check::new(
            "xen-pciback",
            Status::Fail,
            format!(
                "xen-pciback is built in but registered no driver (not running on Xen?): {}",
                det.evidence
            ),
            Some("Boot this kernel as dom0 under the Xen hypervisor."),
        ),
        None => Check::new(
            "xen-pciback",
            Status::Fail,
            format!("xen-pciback not found: {}", det.evidence),
            Some("Install a dom0 kernel built with CONFIG_XEN_PCIDEV_BACKEND (m or y)."),
        ),
    }
}

fn reset_check(d: &PciDevice) -> Check {
    let name = format!("reset {}", d.bdf);
    let m = &d.reset_methods;
    if m.iter().any(|x| x == "flr" || x == "af_flr") || (m.is_empty() && d.flr == Some(true)) {
        return Check::new(
            name,
            Status::Pass,
            "function level reset (FLR) supported",
            None,
        );
    }
    if !m.is_empty() {
        return Check::new(
            name,
            Status::Warn,
            format!("no FLR; the kernel resets it by: {}", m.join(", ")),
            Some(
                "Expect slower or less complete resets between guests; prefer a NIC with FLR for production.",
            ),
        );
    }
    if d.resettable {
        return Check::new(
            name,
            Status::Warn,
            "no FLR advertised, but the kernel has some reset method",
            Some(
                "Expect slower or less complete resets between guests; prefer a NIC with FLR for production.",
            ),
        );
    }
    Check::new(
        name,
        Status::Fail,
        "no reset method: device state can leak between guests",
        Some(
            "Use a device with function level reset, or give it to only one driver domain for its whole life.",
        ),
    )
}

fn group_check(sysfs: &Sysfs, d: &PciDevice, chosen: &[Bdf], src: &InfoSources) -> Result<Check> {
    let name = format!("iommu-group {}", d.bdf);
    let Some(g) = d.iommu_group else {
        return Ok(Check::new(
            name,
            Status::Skip,
            "no IOMMU group in sysfs (normal in a Xen dom0, which does not drive the IOMMU)",
            None,
        ));
    };
    let mut others = Vec::new();
    for p in &d.iommu_group_peers {
        if chosen.contains(p) {
            continue;
        }
        // Bridges sit in groups without being assignable devices.
        if sysfs
            .device_info(*p, src)
            .map(|i| i.is_bridge())
            .unwrap_or(false)
        {
            continue;
        }
        others.push(p.to_string());
    }
    Ok(if others.is_empty() {
        Check::new(
            name,
            Status::Pass,
            format!("alone in IOMMU group {g}"),
            None,
        )
    } else {
        Check::new(
            name,
            Status::Warn,
            format!("IOMMU group {g} also holds {}", others.join(", ")),
            Some(
                "Assign those devices to the same driver domain too, since they cannot be isolated from this one.",
            ),
        )
    })
}

fn siblings_check(d: &PciDevice, chosen: &[Bdf]) -> Check {
    let name = format!("multifunction {}", d.bdf);
    if d.siblings.is_empty() {
        return Check::new(name, Status::Pass, "single-function device", None);
    }
    let left: Vec<String> = d
        .siblings
        .iter()
        .filter(|s| !chosen.contains(s))
        .map(ToString::to_string)
        .collect();
    if left.is_empty() {
        Check::new(
            name,
            Status::Pass,
            "all functions of the device are being assigned together",
            None,
        )
    } else {
        Check::new(
            name,
            Status::Warn,
            format!(
                "other functions of this device stay in dom0: {}",
                left.join(", ")
            ),
            Some(
                "Assign all functions together unless you know they are independent (a device reset may hit them all).",
            ),
        )
    }
}
