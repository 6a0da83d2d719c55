//! A fake sysfs tree in a temporary directory plus a small emulation of the
//! kernel's side of driver binding, for tests (crate feature `fixture`).
//!
//! Emulated, after drivers/base/bus.c and drivers/xen/xen-pciback/pci_stub.c:
//! * `drivers/X/bind`: ENODEV if the device does not exist or, for
//!   pciback, is not in its slot list; EBUSY if the device already has a
//!   driver; else creates the `driver` symlink and the driver's device link.
//! * `drivers/X/unbind`: ENODEV unless bound to X; removes both links (and,
//!   for pciback, the device's permissive flag, as `pcistub_remove` frees it).
//! * `drivers/pciback/new_slot` / `remove_slot` (ENOENT if not listed) keep
//!   the `slots` file; `permissive` needs the device bound to pciback.
//!
//! [`Sysfs::new`](crate::Sysfs::new) uses this emulation for any root
//! holding the marker file, so the drvdom binary built for its tests gets it
//! too. Faults can be injected for the next write to a file, also across
//! processes (they are kept in a file in the root).

use std::io;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use crate::sysfs::{KernelIo, PCIBACK};
use crate::{Bdf, Sysfs};

/// Marker file that makes [`Sysfs::new`] emulate the kernel.
pub const MARKER: &str = ".drvdom-sysfs-fixture";
const FAULTS: &str = ".drvdom-sysfs-faults";

pub(crate) fn kernel_for(root: &Path) -> Option<FixtureKernel> {
    root.join(MARKER).exists().then(|| FixtureKernel {
        root: root.to_path_buf(),
    })
}

/// The emulated kernel side of a fixture tree.
#[derive(Debug, Clone)]
pub struct FixtureKernel {
    root: PathBuf,
}

fn errno(e: i32) -> io::Error {
    io::Error::from_raw_os_error(e)
}

fn read_list(path: &Path) -> Vec<Bdf> {
    std::fs::read_to_string(path)
        .map(|t| crate::attrs::parse_bdf_list(&t))
        .unwrap_or_default()
}

fn write_list(path: &Path, v: &[Bdf]) -> io::Result<()> {
    let text: String = v.iter().map(|b| format!("{b}\n")).collect();
    std::fs::write(path, text)
}

fn dev_rel(bdf: Bdf) -> String {
    format!("devices/pci{:04x}:{:02x}/{bdf}", bdf.domain(), bdf.bus())
}

impl FixtureKernel {
    fn take_fault(&self, rel: &str) -> io::Result<Option<i32>> {
        let p = self.root.join(FAULTS);
        let Ok(text) = std::fs::read_to_string(&p) else {
            return Ok(None);
        };
        let mut found = None;
        let mut rest = String::new();
        for line in text.lines() {
            match line.split_once(' ') {
                Some((path, e)) if found.is_none() && path == rel => found = e.trim().parse().ok(),
                _ => {
                    rest.push_str(line);
                    rest.push('\n');
                }
            }
        }
        std::fs::write(&p, rest)?;
        Ok(found)
    }

    fn driver_of(&self, bdf: Bdf) -> Option<String> {
        let l = std::fs::read_link(self.root.join(dev_rel(bdf)).join("driver")).ok()?;
        l.file_name()?.to_str().map(str::to_string)
    }

    fn bind(&self, drv: &str, bdf: Bdf) -> io::Result<()> {
        let dev = self.root.join(dev_rel(bdf));
        if !dev.is_dir() {
            return Err(errno(libc_errno::ENODEV));
        }
        if self.driver_of(bdf).is_some() {
            return Err(errno(libc_errno::EBUSY));
        }
        let ddir = self.root.join("bus/pci/drivers").join(drv);
        if drv == PCIBACK && !read_list(&ddir.join("slots")).contains(&bdf) {
            return Err(errno(libc_errno::ENODEV));
        }
        symlink(
            format!("../../../bus/pci/drivers/{drv}"),
            dev.join("driver"),
        )?;
        symlink(
            format!("../../../../{}", dev_rel(bdf)),
            ddir.join(bdf.to_string()),
        )
    }

    fn unbind(&self, drv: &str, bdf: Bdf) -> io::Result<()> {
        if self.driver_of(bdf).as_deref() != Some(drv) {
            return Err(errno(libc_errno::ENODEV));
        }
        let ddir = self.root.join("bus/pci/drivers").join(drv);
        std::fs::remove_file(self.root.join(dev_rel(bdf)).join("driver"))?;
        std::fs::remove_file(ddir.join(bdf.to_string()))?;
        if drv == PCIBACK {
            let p = ddir.join("permissive");
            let v: Vec<Bdf> = read_list(&p).into_iter().filter(|b| *b != bdf).collect();
            write_list(&p, &v)?;
        }
        Ok(())
    }
}

/// errno values (asm-generic/errno-base.h), kept here to avoid a libc dep.
mod libc_errno {
    pub const ENOENT: i32 = 2;
    pub const EBUSY: i32 = 16;
    pub const ENODEV: i32 = 19;
    pub const EINVAL: i32 = 22;
}

impl KernelIo for FixtureKernel {
    fn write(&self, path: &Path, value: &[u8]) -> io::Result<()> {
        let rel = path
            .strip_prefix(&self.root)
            .map_err(|_| errno(libc_errno::ENOENT))?;
        let rel_s = rel.to_string_lossy().into_owned();
        if let Some(e) = self.take_fault(&rel_s)? {
            return Err(errno(e));
        }
        if !path.exists() {
            return Err(errno(libc_errno::ENOENT));
        }
        let parts: Vec<&str> = rel_s.split('/').collect();
        let ["bus", "pci", "drivers", drv, attr] = parts.as_slice() else {
            return std::fs::write(path, value);
        };
        let text = String::from_utf8_lossy(value);
        let bdf: Bdf = text.trim().parse().map_err(|_| errno(libc_errno::EINVAL))?;
        let ddir = self.root.join("bus/pci/drivers").join(drv);
        match (*drv, *attr) {
            (_, "bind") => self.bind(drv, bdf),
            (_, "unbind") => self.unbind(drv, bdf),
            (PCIBACK, "new_slot") => {
                let p = ddir.join("slots");
                let mut v = read_list(&p);
                if !v.contains(&bdf) {
                    v.push(bdf);
                }
                write_list(&p, &v)
            }
            (PCIBACK, "remove_slot") => {
                let p = ddir.join("slots");
                let v = read_list(&p);
                if !v.contains(&bdf) {
                    return Err(errno(libc_errno::ENOENT));
                }
                write_list(&p, &v.into_iter().filter(|b| *b != bdf).collect::<Vec<_>>())
            }
            (PCIBACK, "permissive") => {
                // pcistub_device_find only knows devices pciback seized.
                if self.driver_of(bdf).as_deref() != Some(PCIBACK) {
                    return Err(errno(libc_errno::ENODEV));
                }
                let p = ddir.join("permissive");
                let mut v = read_list(&p);
                if !v.contains(&bdf) {
                    v.push(bdf);
                }
                write_list(&p, &v)
            }
            _ => std::fs::write(path, value),
        }
    }
}

/// One device to put in the fixture.
#[derive(Debug, Clone)]
pub struct FixtureDevice {
    bdf: Bdf,
    vendor: u16,
    device: u16,
    class: u32,
    subsystem: Option<(u16, u16)>,
    driver: Option<String>,
    iommu_group: Option<u32>,
    reset_method: Option<String>,
    flr: bool,
    net: Vec<(String, String)>,
}

impl FixtureDevice {
    /// A device with ids and class; no driver, group, reset or interfaces.
    pub fn new(bdf: Bdf, vendor: u16, device: u16, class: u32) -> Self {
        FixtureDevice {
            bdf,
            vendor,
            device,
            class,
            subsystem: None,
            driver: None,
            iommu_group: None,
            reset_method: None,
            flr: false,
            net: Vec::new(),
        }
    }
    /// Subsystem ids.
    pub fn subsystem(mut self, vendor: u16, device: u16) -> Self {
        self.subsystem = Some((vendor, device));
        self
    }
    /// Bound to `driver` (which [`Fixture::add_device`] registers if needed).
    pub fn driver(mut self, driver: &str) -> Self {
        self.driver = Some(driver.to_string());
        self
    }
    /// In IOMMU group `g`.
    pub fn iommu_group(mut self, g: u32) -> Self {
        self.iommu_group = Some(g);
        self
    }
    /// `reset_method` content (also creates `reset`).
    pub fn reset_method(mut self, m: &str) -> Self {
        self.reset_method = Some(m.to_string());
        self
    }
    /// Advertise FLR in config space.
    pub fn flr(mut self, flr: bool) -> Self {
        self.flr = flr;
        self
    }
    /// A network interface with an operstate.
    pub fn net(mut self, name: &str, operstate: &str) -> Self {
        self.net.push((name.to_string(), operstate.to_string()));
        self
    }
}

/// A fake sysfs root in a temporary directory.
#[derive(Debug)]
pub struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    /// An empty tree: `bus/pci/{devices,drivers}`, `kernel/iommu_groups`,
    /// `class/iommu`, `module`, and the marker.
    pub fn new() -> io::Result<Self> {
        let dir = tempfile::tempdir()?;
        for d in [
            "bus/pci/devices",
            "bus/pci/drivers",
            "kernel/iommu_groups",
            "class/iommu",
            "module",
        ] {
            std::fs::create_dir_all(dir.path().join(d))?;
        }
        std::fs::write(dir.path().join(MARKER), "")?;
        Ok(Fixture { dir })
    }

    /// The root directory (pass it as `--sysfs-root`).
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// A [`Sysfs`] on this tree, with the kernel emulation.
    pub fn sysfs(&self) -> Sysfs {
        Sysfs::new(self.root())
    }

    /// Register a PCI driver (idempotent).
    pub fn add_driver(&self, name: &str) -> io::Result<()> {
        let d = self.root().join("bus/pci/drivers").join(name);
        std::fs::create_dir_all(&d)?;
        for f in ["bind", "unbind", "new_id", "remove_id"] {
            if !d.join(f).exists() {
                std::fs::write(d.join(f), "")?;
            }
        }
        Ok(())
    }

    /// Register pciback (and `module/xen_pciback/initstate`, as a module).
    pub fn add_pciback(&self) -> io::Result<()> {
        self.add_driver(PCIBACK)?;
        let d = self.root().join("bus/pci/drivers").join(PCIBACK);
        for f in ["new_slot", "remove_slot", "permissive", "slots", "quirks"] {
            if !d.join(f).exists() {
                std::fs::write(d.join(f), "")?;
            }
        }
        let m = self.root().join("module/xen_pciback");
        std::fs::create_dir_all(&m)?;
        std::fs::write(m.join("initstate"), "live\n")
    }

    /// Show an IOMMU unit in `class/iommu`.
    pub fn add_iommu(&self) -> io::Result<()> {
        std::fs::create_dir_all(self.root().join("class/iommu/dmar0"))
    }

    /// Take the IOMMU away: no units, no groups, no `iommu_group` links.
    pub fn remove_iommu(&self) -> io::Result<()> {
        for d in [
            self.root().join("class/iommu"),
            self.root().join("kernel/iommu_groups"),
        ] {
            std::fs::remove_dir_all(&d)?;
            std::fs::create_dir_all(&d)?;
        }
        for e in std::fs::read_dir(self.root().join("bus/pci/devices"))? {
            let link = e?.path().join("iommu_group");
            if link.symlink_metadata().is_ok() {
                std::fs::remove_file(link)?;
            }
        }
        Ok(())
    }

    /// Add a device, its driver binding, group membership and interfaces.
    pub fn add_device(&self, d: &FixtureDevice) -> io::Result<()> {
        let rel = dev_rel(d.bdf);
        let dir = self.root().join(&rel);
        std::fs::create_dir_all(&dir)?;
        let w = |name: &str, v: String| std::fs::write(dir.join(name), v);
        w("vendor", format!("0x{:04x}\n", d.vendor))?;
        w("device", format!("0x{:04x}\n", d.device))?;
        w("class", format!("0x{:06x}\n", d.class))?;
        w("revision", "0x01\n".to_string())?;
        let (sv, sd) = d.subsystem.unwrap_or((d.vendor, 0));
        w("subsystem_vendor", format!("0x{sv:04x}\n"))?;
        w("subsystem_device", format!("0x{sd:04x}\n"))?;
        w(
            "modalias",
            format!(
                "pci:v{:08X}d{:08X}sv{:08X}sd{:08X}bc{:02X}sc{:02X}i{:02X}\n",
                d.vendor,
                d.device,
                sv,
                sd,
                (d.class >> 16) & 0xff,
                (d.class >> 8) & 0xff,
                d.class & 0xff
            ),
        )?;
        w("driver_override", "(null)\n".to_string())?;
        // Config space: capability list with a PCIe capability at 0x40
        // whose Device Capabilities has FLR (bit 28) when asked.
        let mut config = vec![0u8; 256];
        config[0..2].copy_from_slice(&d.vendor.to_le_bytes());
        config[2..4].copy_from_slice(&d.device.to_le_bytes());
        config[0x06] = 0x10;
        config[0x34] = 0x40;
        config[0x40] = 0x10;
        if d.flr {
            config[0x47] = 0x10;
        }
        std::fs::write(dir.join("config"), config)?;
        if let Some(m) = &d.reset_method {
            w("reset_method", format!("{m}\n"))?;
            w("reset", String::new())?;
        }
        for (name, state) in &d.net {
            let n = dir.join("net").join(name);
            std::fs::create_dir_all(&n)?;
            std::fs::write(n.join("operstate"), format!("{state}\n"))?;
            std::fs::write(n.join("address"), "02:00:00:00:00:01\n")?;
        }
        let link = self.root().join("bus/pci/devices").join(d.bdf.to_string());
        symlink(format!("../../../{rel}"), link)?;
        if let Some(g) = d.iommu_group {
            let gd = self.root().join(format!("kernel/iommu_groups/{g}/devices"));
            std::fs::create_dir_all(&gd)?;
            symlink(format!("../../../../{rel}"), gd.join(d.bdf.to_string()))?;
            symlink(
                format!("../../../kernel/iommu_groups/{g}"),
                dir.join("iommu_group"),
            )?;
        }
        if let Some(drv) = &d.driver {
            if drv == PCIBACK {
                self.add_pciback()?;
                let slots = self.root().join("bus/pci/drivers/pciback/slots");
                let mut v = read_list(&slots);
                v.push(d.bdf);
                write_list(&slots, &v)?;
            } else {
                self.add_driver(drv)?;
            }
            FixtureKernel {
                root: self.root().to_path_buf(),
            }
            .bind(drv, d.bdf)?;
        }
        Ok(())
    }

    /// Make the next write to `rel` (relative to the root, e.g.
    /// `bus/pci/drivers/pciback/bind`) fail with `errno`.
    pub fn fail_next_write(&self, rel: &str, errno: i32) -> io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root().join(FAULTS))?;
        writeln!(f, "{rel} {errno}")
    }

    /// The driver a device is bound to now.
    pub fn driver_of(&self, bdf: Bdf) -> Option<String> {
        FixtureKernel {
            root: self.root().to_path_buf(),
        }
        .driver_of(bdf)
    }

    /// Write through the emulated kernel (as a crashed run would have).
    pub fn kernel_write(&self, rel: &str, value: &str) -> io::Result<()> {
        FixtureKernel {
            root: self.root().to_path_buf(),
        }
        .write(&self.root().join(rel), value.as_bytes())
    }

    /// Remove a device as hot-unplug would (links and directory).
    pub fn remove_device(&self, bdf: Bdf) -> io::Result<()> {
        if let Some(d) = self.driver_of(bdf) {
            FixtureKernel {
                root: self.root().to_path_buf(),
            }
            .unbind(&d, bdf)?;
        }
        std::fs::remove_file(self.root().join("bus/pci/devices").join(bdf.to_string()))?;
        std::fs::remove_dir_all(self.root().join(dev_rel(bdf)))
    }

    /// Path of a file under the root.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }
}
