//! sysfs PCI enumeration and xen-pciback management for drvdom.
//!
//! * [`Bdf`]: PCI addresses in every form users and xl write.
//! * [`Sysfs`]: the sysfs tree under a configurable root (default `/sys`);
//!   [`Sysfs::list`] / [`Sysfs::device_info`] report ids and pci.ids names,
//!   driver, modules, IOMMU group, reset methods, interfaces, SR-IOV.
//! * [`Pciback`]: assign devices to xen-pciback and release them, checked,
//!   rolled back on failure, idempotent and safe to re-run after a crash;
//!   the original driver goes to a [`DriverRecord`] ([`StateFile`] locally,
//!   xenstore `/libxl/pci/<dddd-bb-dd-f>/driver_path` when reachable).
//! * [`bootparams`]: `xen-pciback.hide=(BDF)...` for the command line or
//!   modprobe.d, depending on how the running kernel provides pciback.
//! * [`checks`]: passthrough readiness checks for `drvdom doctor`.
//!
//! This crate never writes outside its sysfs root and the state file, and
//! sits below `topology` and the CLI in drvdom's data flow.
//!
//! ```
//! let bdf: pci::Bdf = "03:00.0".parse().unwrap();
//! let p = pci::bootparams::boot_params(&[bdf], false, pci::bootparams::PcibackKind::Builtin);
//! assert_eq!(p.kernel_cmdline.as_deref(), Some("xen-pciback.hide=(0000:03:00.0)"));
//! ```

#![forbid(unsafe_code)]

pub mod attrs;

pub mod bootparams;
pub mod checks;
mod device;
mod error;
#[cfg(feature = "fixture")]
pub mod fixture;
mod mgmt;
pub mod names;
mod net;
mod pciback;
mod record;
mod sysfs;

pub use device::{CLASS_NETWORK, InfoSources, NetIface, PciDevice, Sriov, running_modules_dir};
pub use error::{Error, Result};
pub use mgmt::{ManagementNic, management_nic_among, management_nics};
pub use net::{IfState, NetSnapshot};
pub use pciback::{AssignOptions, AssignOutcome, Pciback, ReleaseOutcome};
pub use record::{
    DEFAULT_STATE_DIR, DriverRecord, STATE_FILE_NAME, StateFile, driver_from_path_value,
    driver_path_value, xenstore_driver_path_key,
};
pub use sysfs::{KernelIo, PCIBACK, RealKernel, Sysfs};
pub use xentypes::{Bdf, MAX_DEVICE, MAX_FUNCTION};
