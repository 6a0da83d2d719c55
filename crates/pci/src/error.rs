//! The crate's one error type.

use std::path::PathBuf;

use crate::Bdf;

/// Everything that can go wrong in this crate.
///
/// Messages name the device, the sysfs file and, for kernel refusals, the
/// errno explained in words; the `#[source]` is left out of the text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A BDF string that does not parse.
    #[error(transparent)]
    InvalidBdf(#[from] xentypes::Error),
    /// A sysfs attribute whose content does not parse.
    #[error("cannot parse {path}: {reason}")]
    ParseAttr {
        /// The attribute file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// Reading a sysfs (or other kernel) file failed.
    #[error("cannot read {path}")]
    ReadSysfs {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The kernel refused a write to a sysfs file.
    #[error("{bdf}: writing {path} failed: {errno} ({meaning})")]
    WriteSysfs {
        /// The device concerned.
        bdf: Bdf,
        /// The sysfs file that refused.
        path: PathBuf,
        /// The errno name and text, e.g. `EBUSY (Device or resource busy)`.
        errno: String,
        /// What it means in this context.
        meaning: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// No such device under the sysfs root.
    #[error("{bdf}: no such PCI device ({path} does not exist)")]
    DeviceNotFound {
        /// The device asked for.
        bdf: Bdf,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// The pciback driver is not registered with the kernel.
    #[error(
        "xen-pciback is not available ({path} does not exist): load it with `modprobe xen-pciback` or boot a kernel with CONFIG_XEN_PCIDEV_BACKEND"
    )]
    PcibackMissing {
        /// The driver directory looked for.
        path: PathBuf,
    },
    /// A driver named by the user or the record is not registered.
    #[error("{bdf}: driver {driver:?} is not available ({path} does not exist)")]
    DriverMissing {
        /// The device concerned.
        bdf: Bdf,
        /// The driver name.
        driver: String,
        /// The driver directory looked for.
        path: PathBuf,
    },
    /// dom0 is using the device; `--force` overrides.
    #[error("{bdf}: dom0 is using this device: {reason}; take it down first or use --force")]
    InUse {
        /// The device concerned.
        bdf: Bdf,
        /// Which interface, and how it is used.
        reason: String,
    },
    /// No IOMMU: passing the device through would be unsafe.
    #[error(
        "{bdf}: no IOMMU is enabled ({detail}); enable VT-d/AMD-Vi in the firmware and `iommu=1` for Xen, or use --force"
    )]
    NoIommu {
        /// The device concerned.
        bdf: Bdf,
        /// What was checked.
        detail: String,
    },
    /// After all steps the device is not where it should be.
    #[error("{bdf}: expected driver {expected}, found {found}")]
    VerifyFailed {
        /// The device concerned.
        bdf: Bdf,
        /// The driver it should be bound to.
        expected: String,
        /// What it is bound to (or "none").
        found: String,
    },
    /// Release without a known driver to return to.
    #[error("{bdf}: no original driver recorded; pass --driver NAME")]
    NoOriginalDriver {
        /// The device concerned.
        bdf: Bdf,
    },
    /// A step failed and rolling back failed too.
    #[error("{bdf}: {step} failed and rollback failed too ({rollback}); check the device by hand")]
    RollbackFailed {
        /// The device concerned.
        bdf: Bdf,
        /// The step that failed first.
        step: String,
        /// The rollback failure, as text.
        rollback: String,
        /// The original failure.
        #[source]
        source: Box<Error>,
    },
    /// A driver record store other than the state file (xenstore) failed.
    #[error("{store}: {what}")]
    Record {
        /// The store, e.g. "xenstore /libxl/pci/0000-03-00-0/driver_path".
        store: String,
        /// What went wrong.
        what: String,
    },
    /// The local state file could not be read or written.
    #[error("state file {path}: {what}")]
    StateFile {
        /// The state file.
        path: PathBuf,
        /// What went wrong.
        what: String,
        /// The I/O error, if any.
        #[source]
        source: Option<std::io::Error>,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// True when the error is the user's input rather than the system's state
    /// (a CLI maps these to exit code 2).
    pub fn is_usage(&self) -> bool {
        match self {
            Error::InvalidBdf(_) | Error::NoOriginalDriver { .. } => true,
            Error::ParseAttr { .. }
            | Error::ReadSysfs { .. }
            | Error::WriteSysfs { .. }
            | Error::DeviceNotFound { .. }
            | Error::PcibackMissing { .. }
            | Error::DriverMissing { .. }
            | Error::InUse { .. }
            | Error::NoIommu { .. }
            | Error::VerifyFailed { .. }
            | Error::RollbackFailed { .. }
            | Error::Record { .. }
            | Error::StateFile { .. } => false,
        }
    }
}
