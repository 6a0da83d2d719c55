//! Hand devices to xen-pciback and take them back, the way
//! `xl pci-assignable-add/-remove` does (libxl_pci.c,
//! `libxl__device_pci_assignable_add/remove`): unbind from the current
//! driver, remember it, `new_slot` + `bind` on pciback; and the reverse.
//!
//! Every step is checked against sysfs. A failure rolls back the steps
//! already done. Each operation starts from what sysfs shows now, so it is
//! idempotent and can be re-run after a crash at any point: the original
//! driver is recorded *before* the device is unbound.

use serde::Serialize;

use crate::checks::IommuStatus;
use crate::error::{Error, Result};
use crate::net::NetSnapshot;
use crate::record::DriverRecord;
use crate::sysfs::{PCIBACK, WriteKind};
use crate::{Bdf, Sysfs};

/// Options of [`Pciback::assign`].
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct AssignOptions {
    /// Let the guest write config space freely (pciback `permissive`).
    pub permissive: bool,
    /// Assign even if dom0 uses the device or there is no IOMMU.
    pub force: bool,
}

impl AssignOptions {
    /// Options with the given flags.
    pub fn new(permissive: bool, force: bool) -> Self {
        AssignOptions { permissive, force }
    }
}

/// What [`Pciback::assign`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct AssignOutcome {
    /// The device.
    pub bdf: Bdf,
    /// The driver it had (now recorded), if known.
    pub previous_driver: Option<String>,
    /// It was already on pciback: nothing but `permissive` was changed.
    pub already_assigned: bool,
    /// Permissive mode is set.
    pub permissive: bool,
    /// Things the user should know (e.g. a check overridden by --force).
    pub warnings: Vec<String>,
}

/// What [`Pciback::release`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ReleaseOutcome {
    /// The device.
    pub bdf: Bdf,
    /// The driver it is bound to now.
    pub driver: String,
    /// It was not on pciback any more: only leftovers were cleaned.
    pub already_released: bool,
}

/// pciback operations on one sysfs tree with one driver record.
#[derive(Debug)]
pub struct Pciback<'a> {
    sysfs: &'a Sysfs,
    record: &'a dyn DriverRecord,
}

impl<'a> Pciback<'a> {
    /// Operations on `sysfs`, remembering original drivers in `record`.
    pub fn new(sysfs: &'a Sysfs, record: &'a dyn DriverRecord) -> Self {
        Pciback { sysfs, record }
    }

    fn pciback_file(&self, name: &str) -> std::path::PathBuf {
        self.sysfs.driver_dir(PCIBACK).join(name)
    }

    fn require_pciback(&self) -> Result<()> {
        let dir = self.sysfs.driver_dir(PCIBACK);
        if dir.is_dir() {
            Ok(())
        } else {
            Err(Error::PcibackMissing { path: dir })
        }
    }

    fn unbind(&self, bdf: Bdf, driver: &str) -> Result<()> {
        let p = self.sysfs.driver_dir(driver).join("unbind");
        self.sysfs.write_bdf(bdf, &p, WriteKind::Unbind { driver })
    }

    fn bind(&self, bdf: Bdf, driver: &str) -> Result<()> {
        let p = self.sysfs.driver_dir(driver).join("bind");
        self.sysfs.write_bdf(bdf, &p, WriteKind::Bind { driver })
    }

    fn verify(&self, bdf: Bdf, expected: &str) -> Result<()> {
        let found = self.sysfs.current_driver(bdf)?;
        if found.as_deref() == Some(expected) {
            Ok(())
        } else {
            Err(Error::VerifyFailed {
                bdf,
                expected: expected.to_string(),
                found: found.unwrap_or_else(|| "none".to_string()),
            })
        }
    }

    /// Devices currently bound to pciback (what `xl pci-assignable-list` shows).
    pub fn assignable(&self) -> Result<Vec<Bdf>> {
        let mut v = Vec::new();
        for b in self.sysfs.device_bdfs()? {
            if self.sysfs.current_driver(b)?.as_deref() == Some(PCIBACK) {
                v.push(b);
            }
        }
        Ok(v)
    }

    /// Why dom0 is using the device, if it is (first reason found).
    pub fn in_use(&self, bdf: Bdf, net: &NetSnapshot) -> Result<Option<String>> {
        let dir = self.sysfs.require_device(bdf)?;
        let mut names: Vec<String> = crate::device::net_dirs(&dir)
            .iter()
            .flat_map(|net| std::fs::read_dir(net).into_iter().flatten())
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        names.sort();
        Ok(names.iter().find_map(|n| net.in_use_reason(n)))
    }

    /// Hand `bdf` to pciback.
    #[tracing::instrument(skip_all, fields(%bdf))]
    pub fn assign(
        &self,
        bdf: Bdf,
        opts: AssignOptions,
        net: &NetSnapshot,
        iommu: &IommuStatus,
    ) -> Result<AssignOutcome> {
        self.sysfs.require_device(bdf)?;
        self.require_pciback()?;
        let current = self.sysfs.current_driver(bdf)?;
        let mut out = AssignOutcome {
            bdf,
            previous_driver: None,
            already_assigned: false,
            permissive: false,
            warnings: Vec::new(),
        };

        if current.as_deref() == Some(PCIBACK) {
            out.already_assigned = true;
            out.previous_driver = self.record.get(bdf)?;
            if opts.permissive {
                self.set_permissive(bdf)?;
            }
            out.permissive = self.sysfs.pciback_permissive()?.contains(&bdf);
            tracing::info!("already assigned to pciback");
            return Ok(out);
        }

        if let IommuStatus::Absent { detail } = iommu {
            if !opts.force {
                return Err(Error::NoIommu {
                    bdf,
                    detail: detail.clone(),
                });
            }
            out.warnings.push(format!(
                "no IOMMU ({detail}); assigned anyway because of --force"
            ));
        }
        if let Some(reason) = self.in_use(bdf, net)? {
            if !opts.force {
                return Err(Error::InUse { bdf, reason });
            }
            out.warnings.push(format!(
                "dom0 is using it ({reason}); assigned anyway because of --force"
            ));
        }

        // Record before unbinding: after a crash between unbind and bind the
        // device has no driver, and only the record says where it came from.
        let had_record = self.record.get(bdf)?;
        if let Some(d) = &current {
            self.record.set(bdf, d)?;
        }
        out.previous_driver = current.clone().or_else(|| had_record.clone());

        if let Some(d) = &current {
            if let Err(e) = self.unbind(bdf, d) {
                if had_record.is_none() {
                    // Nothing changed in sysfs; forget what we just wrote.
                    let _ = self.record.remove(bdf);
                }
                return Err(e);
            }
        }

        let added_slot = !self.sysfs.pciback_slots()?.contains(&bdf);
        let attempt = (|| {
            if added_slot {
                let p = self.pciback_file("new_slot");
                self.sysfs.write_bdf(bdf, &p, WriteKind::NewSlot)?;
            }
            self.bind(bdf, PCIBACK)?;
            if opts.permissive {
                self.set_permissive(bdf)?;
            }
            self.verify(bdf, PCIBACK)
        })();
        if let Err(e) = attempt {
            tracing::error!(error = %e, "assign failed; rolling back");
            return Err(self.rollback_assign(bdf, added_slot, out.previous_driver.as_deref(), e));
        }
        out.permissive = opts.permissive;
        tracing::info!(previous = ?out.previous_driver, "assigned to pciback");
        Ok(out)
    }

    fn set_permissive(&self, bdf: Bdf) -> Result<()> {
        if self.sysfs.pciback_permissive()?.contains(&bdf) {
            return Ok(());
        }
        let p = self.pciback_file("permissive");
        self.sysfs.write_bdf(bdf, &p, WriteKind::Permissive)
    }

    /// Undo a failed assign: off pciback, out of its slot list, back on the
    /// original driver. Returns the error to report.
    fn rollback_assign(
        &self,
        bdf: Bdf,
        added_slot: bool,
        original: Option<&str>,
        err: Error,
    ) -> Error {
        let undo = || -> Result<()> {
            if self.sysfs.current_driver(bdf)?.as_deref() == Some(PCIBACK) {
                self.unbind(bdf, PCIBACK)?;
            }
            if added_slot && self.sysfs.pciback_slots()?.contains(&bdf) {
                let p = self.pciback_file("remove_slot");
                self.sysfs.write_bdf(bdf, &p, WriteKind::RemoveSlot)?;
            }
            if let Some(d) = original {
                if self.sysfs.current_driver(bdf)?.is_none() {
                    self.bind(bdf, d)?;
                }
                self.verify(bdf, d)?;
                self.record.remove(bdf)?;
            }
            Ok(())
        };
        match undo() {
            Ok(()) => err,
            Err(r) => Error::RollbackFailed {
                bdf,
                step: "assign".to_string(),
                rollback: r.to_string(),
                source: Box::new(err),
            },
        }
    }

    /// Take `bdf` back from pciback and bind `driver`, or the recorded
    /// original driver.
    #[tracing::instrument(skip_all, fields(%bdf))]
    pub fn release(&self, bdf: Bdf, driver: Option<&str>) -> Result<ReleaseOutcome> {
        self.sysfs.require_device(bdf)?;
        let current = self.sysfs.current_driver(bdf)?;
        let recorded = self.record.get(bdf)?;
        let in_slots = self.sysfs.pciback_slots()?.contains(&bdf);

        if let Some(d) = current.as_deref().filter(|d| *d != PCIBACK) {
            // Already on a normal driver (released before, or never
            // assigned): clean leftovers of an interrupted release.
            if in_slots {
                let p = self.pciback_file("remove_slot");
                self.sysfs.write_bdf(bdf, &p, WriteKind::RemoveSlot)?;
            }
            if recorded.is_some() {
                self.record.remove(bdf)?;
            }
            return Ok(ReleaseOutcome {
                bdf,
                driver: d.to_string(),
                already_released: true,
            });
        }

        let target = driver
            .map(str::to_string)
            .or(recorded)
            .ok_or(Error::NoOriginalDriver { bdf })?;
        if !self.sysfs.has_driver(&target) {
            return Err(Error::DriverMissing {
                bdf,
                path: self.sysfs.driver_dir(&target),
                driver: target,
            });
        }

        let on_pciback = current.as_deref() == Some(PCIBACK);
        if on_pciback {
            self.unbind(bdf, PCIBACK)?;
        }
        let attempt = (|| {
            if in_slots {
                let p = self.pciback_file("remove_slot");
                self.sysfs.write_bdf(bdf, &p, WriteKind::RemoveSlot)?;
            }
            self.bind(bdf, &target)?;
            self.verify(bdf, &target)
        })();
        if let Err(e) = attempt {
            tracing::error!(error = %e, "release failed; rolling back");
            return Err(self.rollback_release(bdf, on_pciback || in_slots, e));
        }
        self.record.remove(bdf)?;
        tracing::info!(driver = %target, "released from pciback");
        Ok(ReleaseOutcome {
            bdf,
            driver: target,
            already_released: false,
        })
    }

    fn rollback_release(&self, bdf: Bdf, was_pciback: bool, err: Error) -> Error {
        if !was_pciback {
            return err;
        }
        let undo = || -> Result<()> {
            if !self.sysfs.pciback_slots()?.contains(&bdf) {
                let p = self.pciback_file("new_slot");
                self.sysfs.write_bdf(bdf, &p, WriteKind::NewSlot)?;
            }
            if self.sysfs.current_driver(bdf)?.is_none() {
                self.bind(bdf, PCIBACK)?;
            }
            self.verify(bdf, PCIBACK)
        };
        match undo() {
            Ok(()) => err,
            Err(r) => Error::RollbackFailed {
                bdf,
                step: "release".to_string(),
                rollback: r.to_string(),
                source: Box::new(err),
            },
        }
    }
}
