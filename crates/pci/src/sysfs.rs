//! The sysfs tree under a configurable root, and the one place that writes
//! to it ([`KernelIo`]).

use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::Bdf;
use crate::attrs;
use crate::error::{Error, Result};

/// The name pciback registers its PCI driver under
/// (drivers/xen/xen-pciback/pci_stub.c: `#define DRV_NAME "pciback"`).
pub const PCIBACK: &str = "pciback";

/// The kernel side of sysfs writes. The real one opens and writes the file;
/// the test fixture (feature `fixture`) emulates the kernel.
pub trait KernelIo: Send + Sync + fmt::Debug {
    /// Write `value` to the sysfs attribute at `path`, as `echo -n` would.
    fn write(&self, path: &Path, value: &[u8]) -> io::Result<()>;
}

/// Writes to the real kernel's sysfs.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealKernel;

impl KernelIo for RealKernel {
    fn write(&self, path: &Path, value: &[u8]) -> io::Result<()> {
        // sysfs attributes take one write(2); never create files.
        let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
        f.write_all(value)
    }
}

/// A sysfs tree: `/sys` in production, a fixture directory in tests.
///
/// Never reads or writes outside its root.
#[derive(Debug, Clone)]
pub struct Sysfs {
    root: PathBuf,
    io: Arc<dyn KernelIo>,
}

impl Default for Sysfs {
    fn default() -> Self {
        Sysfs::new("/sys")
    }
}

/// The kind of write, so a refusal can be explained in words.
#[derive(Debug, Clone, Copy)]
pub(crate) enum WriteKind<'a> {
    Unbind { driver: &'a str },
    Bind { driver: &'a str },
    NewSlot,
    RemoveSlot,
    Permissive,
}

impl Sysfs {
    /// A tree rooted at `root`, writing through the real kernel.
    ///
    /// With the crate feature `fixture` (tests only), a root that holds the
    /// fixture marker file gets the fixture's kernel emulation instead.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        #[cfg(feature = "fixture")]
        if let Some(k) = crate::fixture::kernel_for(&root) {
            return Sysfs {
                root,
                io: Arc::new(k),
            };
        }
        Sysfs {
            root,
            io: Arc::new(RealKernel),
        }
    }

    /// A tree rooted at `root` with an explicit kernel side.
    pub fn with_kernel(root: impl Into<PathBuf>, io: Arc<dyn KernelIo>) -> Self {
        Sysfs {
            root: root.into(),
            io,
        }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `bus/pci/devices`.
    pub fn devices_dir(&self) -> PathBuf {
        self.root.join("bus/pci/devices")
    }

    /// `bus/pci/devices/<bdf>`.
    pub fn device_dir(&self, bdf: Bdf) -> PathBuf {
        self.devices_dir().join(bdf.to_string())
    }

    /// `bus/pci/drivers/<name>`.
    pub fn driver_dir(&self, name: &str) -> PathBuf {
        self.root.join("bus/pci/drivers").join(name)
    }

    /// `kernel/iommu_groups`.
    pub fn iommu_groups_dir(&self) -> PathBuf {
        self.root.join("kernel/iommu_groups")
    }

    /// `class/iommu` (one entry per IOMMU unit the kernel drives).
    pub fn class_iommu_dir(&self) -> PathBuf {
        self.root.join("class/iommu")
    }

    /// `module/<name>` (present for loaded modules and for built-in ones
    /// with parameters).
    pub fn module_dir(&self, name: &str) -> PathBuf {
        self.root.join("module").join(attrs::module_name(name))
    }

    /// Error unless the device exists.
    pub fn require_device(&self, bdf: Bdf) -> Result<PathBuf> {
        let dir = self.device_dir(bdf);
        if dir.exists() {
            Ok(dir)
        } else {
            Err(Error::DeviceNotFound { bdf, path: dir })
        }
    }

    /// All devices under `bus/pci/devices`, sorted.
    pub fn device_bdfs(&self) -> Result<Vec<Bdf>> {
        let dir = self.devices_dir();
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            // No PCI bus at all (some VMs and containers): no devices.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(Error::ReadSysfs { path: dir, source }),
        };
        let mut v: Vec<Bdf> = rd
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
            .collect();
        v.sort();
        Ok(v)
    }

    /// Read a text attribute.
    pub fn read(&self, path: &Path) -> Result<String> {
        std::fs::read_to_string(path).map_err(|source| Error::ReadSysfs {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Read a text attribute, `None` if it does not exist.
    pub fn read_opt(&self, path: &Path) -> Result<Option<String>> {
        match std::fs::read_to_string(path) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::ReadSysfs {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// The last component of a symlink's target, `None` if there is no link.
    pub fn link_name(&self, path: &Path) -> Option<String> {
        std::fs::read_link(path)
            .ok()
            .and_then(|t| t.file_name().and_then(|n| n.to_str()).map(str::to_string))
    }

    /// The driver the device is bound to (`driver` symlink), if any.
    pub fn current_driver(&self, bdf: Bdf) -> Result<Option<String>> {
        let dir = self.require_device(bdf)?;
        Ok(self.link_name(&dir.join("driver")))
    }

    /// Whether a PCI driver of that name is registered.
    pub fn has_driver(&self, name: &str) -> bool {
        self.driver_dir(name).is_dir()
    }

    /// BDFs listed in pciback's `slots` file (its new_slot list).
    pub fn pciback_slots(&self) -> Result<Vec<Bdf>> {
        let p = self.driver_dir(PCIBACK).join("slots");
        Ok(self
            .read_opt(&p)?
            .map(|t| attrs::parse_bdf_list(&t))
            .unwrap_or_default())
    }

    /// BDFs listed in pciback's `permissive` file.
    pub fn pciback_permissive(&self) -> Result<Vec<Bdf>> {
        let p = self.driver_dir(PCIBACK).join("permissive");
        Ok(self
            .read_opt(&p)?
            .map(|t| attrs::parse_bdf_list(&t))
            .unwrap_or_default())
    }

    /// Write a BDF to a driver attribute, explaining a refusal.
    pub(crate) fn write_bdf(&self, bdf: Bdf, path: &Path, kind: WriteKind<'_>) -> Result<()> {
        tracing::debug!(%bdf, path = %path.display(), "sysfs write");
        self.io
            .write(path, bdf.to_string().as_bytes())
            .map_err(|source| {
                let (errno, meaning) = self.explain(bdf, kind, &source);
                Error::WriteSysfs {
                    bdf,
                    path: path.to_path_buf(),
                    errno,
                    meaning,
                    source,
                }
            })
    }

    fn explain(&self, bdf: Bdf, kind: WriteKind<'_>, e: &io::Error) -> (String, String) {
        let Some(raw) = e.raw_os_error() else {
            return ("error".to_string(), e.to_string());
        };
        let errno = nix::errno::Errno::from_raw(raw);
        let name = format!("{errno:?} ({})", errno.desc());
        use nix::errno::Errno as E;
        let holder = || {
            self.current_driver(bdf)
                .ok()
                .flatten()
                .unwrap_or_else(|| "another driver".to_string())
        };
        let meaning = match (errno, kind) {
            (E::EACCES | E::EPERM, _) => "permission denied: run as root".to_string(),
            (E::ENOENT, WriteKind::RemoveSlot) => {
                "the device is not in pciback's slot list".to_string()
            }
            (E::ENOENT, _) => "the file is missing: is the driver loaded?".to_string(),
            (E::EBUSY, WriteKind::Bind { .. }) => {
                format!("device still claimed by driver {}", holder())
            }
            (E::ENODEV, WriteKind::Bind { driver }) if driver == PCIBACK => {
                "pciback did not claim it: the device is not in pciback's slot list (new_slot)"
                    .to_string()
            }
            (E::ENODEV, WriteKind::Bind { driver }) => {
                format!(
                    "driver {driver} does not handle this device (its IDs are not in the driver's table)"
                )
            }
            (E::ENODEV, WriteKind::Unbind { driver }) => {
                format!("the device is not bound to {driver}")
            }
            (E::ENODEV | E::ENXIO, WriteKind::Permissive) => {
                "the device is not bound to pciback".to_string()
            }
            (E::EINVAL, _) => "the kernel rejected the value as malformed".to_string(),
            (E::EEXIST, WriteKind::NewSlot) => "the slot is already listed".to_string(),
            (E::ENOMEM, _) => "the kernel is out of memory".to_string(),
            _ => "unexpected refusal from the kernel".to_string(),
        };
        (name, meaning)
    }
}
