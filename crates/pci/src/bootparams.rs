//! Boot-time persistence: the exact parameters that hide devices from dom0
//! at boot (drivers/xen/xen-pciback/pci_stub.c module parameters `hide`
//! and `permissive`), in the form right for a built-in pciback (kernel
//! command line) or a modular one (`/etc/modprobe.d`).

use std::path::Path;

use serde::Serialize;

use crate::{Bdf, Sysfs, attrs};

/// The module's name as modprobe and the kernel command line spell it.
pub const MODULE: &str = "xen-pciback";

/// How pciback is provided by the running kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PcibackKind {
    /// Compiled into the kernel: parameters go on the kernel command line.
    Builtin,
    /// A loadable module: parameters go in modprobe.d.
    Module,
}

/// Which kind applies, and the evidence for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Detection {
    /// The kind, `None` when nothing shows pciback exists.
    pub kind: Option<PcibackKind>,
    /// What was looked at, in one sentence.
    pub evidence: String,
}

/// Detect built-in vs module from `modules.builtin` and `module.dep` in
/// `modules_dir` and from `/sys/module/xen_pciback` (a loadable module has
/// an `initstate` file there; built-in ones do not).
pub fn detect(sysfs: &Sysfs, modules_dir: Option<&Path>) -> Detection {
    let name = attrs::module_name(MODULE);
    if let Some(dir) = modules_dir {
        if let Ok(t) = std::fs::read_to_string(dir.join("modules.builtin")) {
            if attrs::parse_modules_builtin(&t).contains(&name) {
                return Detection {
                    kind: Some(PcibackKind::Builtin),
                    evidence: format!("{} lists {MODULE}", dir.join("modules.builtin").display()),
                };
            }
        }
    }
    let sysmod = sysfs.module_dir(MODULE);
    if sysmod.is_dir() {
        return if sysmod.join("initstate").exists() {
            Detection {
                kind: Some(PcibackKind::Module),
                evidence: format!(
                    "{} is loaded as a module ({} exists)",
                    MODULE,
                    sysmod.join("initstate").display()
                ),
            }
        } else {
            Detection {
                kind: Some(PcibackKind::Builtin),
                evidence: format!(
                    "{} exists without initstate, so it is built in",
                    sysmod.display()
                ),
            }
        };
    }
    if let Some(dir) = modules_dir {
        if let Ok(t) = std::fs::read_to_string(dir.join("modules.dep")) {
            let found = t.lines().any(|l| {
                l.split(':')
                    .next()
                    .and_then(|f| f.rsplit('/').next())
                    .is_some_and(|f| {
                        f.split(".ko").next().map(attrs::module_name) == Some(name.clone())
                    })
            });
            if found {
                return Detection {
                    kind: Some(PcibackKind::Module),
                    evidence: format!(
                        "{} lists {MODULE} as a module (not loaded yet)",
                        dir.join("modules.dep").display()
                    ),
                };
            }
        }
    }
    Detection {
        kind: None,
        evidence: match modules_dir {
            Some(d) => format!(
                "neither {} nor {} mention {MODULE}",
                d.display(),
                sysmod.display()
            ),
            None => format!(
                "{} does not exist and no modules directory was found",
                sysmod.display()
            ),
        },
    }
}

/// The parameters to hide `bdfs` at boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct BootParams {
    /// The form they are for.
    pub kind: PcibackKind,
    /// `(0000:03:00.0)(0000:03:00.1)`.
    pub hide: String,
    /// Words for the kernel command line (built-in form).
    pub kernel_cmdline: Option<String>,
    /// Lines for `/etc/modprobe.d/xen-pciback.conf` (module form).
    pub modprobe_conf: Option<String>,
}

/// Build the parameters for `bdfs` (sorted, deduplicated).
pub fn boot_params(bdfs: &[Bdf], permissive: bool, kind: PcibackKind) -> BootParams {
    let mut v = bdfs.to_vec();
    v.sort();
    v.dedup();
    let hide: String = v.iter().map(|b| format!("({b})")).collect();
    match kind {
        PcibackKind::Builtin => {
            let mut s = format!("{MODULE}.hide={hide}");
            if permissive {
                s.push_str(&format!(" {MODULE}.permissive=1"));
            }
            BootParams {
                kind,
                hide,
                kernel_cmdline: Some(s),
                modprobe_conf: None,
            }
        }
        PcibackKind::Module => {
            let mut s = format!("options {MODULE} hide={hide}");
            if permissive {
                s.push_str(" permissive=1");
            }
            s.push('\n');
            BootParams {
                kind,
                hide,
                kernel_cmdline: None,
                modprobe_conf: Some(s),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bdfs(s: &[&str]) -> Vec<Bdf> {
        s.iter().map(|b| b.parse().unwrap()).collect()
    }

    #[test]
    fn builtin_form_is_kernel_cmdline() {
        let p = boot_params(
            &bdfs(&["03:00.1", "0000:03:00.0", "3:0.0"]),
            true,
            PcibackKind::Builtin,
        );
        assert_eq!(
            p.kernel_cmdline.as_deref(),
            Some("xen-pciback.hide=(0000:03:00.0)(0000:03:00.1) xen-pciback.permissive=1")
        );
        assert_eq!(p.modprobe_conf, None);
    }

    #[test]
    fn module_form_is_modprobe_options() {
        let p = boot_params(&bdfs(&["03:00.0"]), false, PcibackKind::Module);
        assert_eq!(
            p.modprobe_conf.as_deref(),
            Some("options xen-pciback hide=(0000:03:00.0)\n")
        );
        assert_eq!(p.kernel_cmdline, None);
    }
}
