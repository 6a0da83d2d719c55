//! The Xen layer for serving rings on a real host: event channels
//! (`/dev/xen/evtchn`), grant mapping of a domain's xenstore page
//! (`/dev/xen/gntdev`, grant reference 1, as Xen 4.17's C server does),
//! dom0's own kernel ring (`/proc/xen/xsd_kva` + `xsd_port`) and the
//! `getdomaininfo` hypercall (`/dev/xen/privcmd`) to notice shut-down,
//! crashed and dying domains. Safe wrappers here; the unsafe calls are in
//! `sys`; the numbers in [`abi`].
//!
//! [`XenHost`] is the real implementation of [`crate::ringd::XenOps`];
//! the ring service logic is tested against a fake of that trait. (No
//! `forbid(unsafe_code)` here: it would forbid it in `sys` too; the crate
//! denies it everywhere else.)

pub mod abi;
mod sys;

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::{debug, warn};
use xenstore::DomId;

pub(crate) use sys::{Forked, exit_now, fork, pipe, redirect_stdio, setsid, try_lock, wait_child};

use crate::error::Error;
use crate::ring::{PAGE_SIZE, SharedPage};
use crate::ringd::{DomainState, XenOps};
use abi::DomainInfo;

fn open_dev(path: &Path, nonblock: bool) -> io::Result<File> {
    let mut flags = libc::O_CLOEXEC;
    if nonblock {
        flags |= libc::O_NONBLOCK;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(flags)
        .open(path)
}

fn dev_err(path: &Path, what: &str) -> impl FnOnce(io::Error) -> Error {
    let path = path.to_path_buf();
    let what = what.to_string();
    move |source| Error::Xen { what, path, source }
}

/// `/dev/xen/evtchn`: one file for every port we bind.
#[derive(Debug)]
pub struct Evtchn {
    file: File,
}

impl Evtchn {
    /// Open the device (non-blocking: the daemon polls it).
    pub fn open(path: &Path) -> io::Result<Evtchn> {
        Ok(Evtchn {
            file: open_dev(path, true)?,
        })
    }

    /// Bind a VIRQ; returns the local port.
    pub fn bind_virq(&self, virq: u32) -> io::Result<u32> {
        let mut a = abi::BindVirq { virq };
        port(sys::ioctl(
            self.file.as_fd(),
            abi::EVTCHN_BIND_VIRQ,
            Some(&mut a),
        )?)
    }

    /// Bind to `remote_port` of `domid`; returns the local port.
    pub fn bind_interdomain(&self, domid: DomId, remote_port: u32) -> io::Result<u32> {
        let mut a = abi::BindInterdomain {
            remote_domain: u32::from(domid.0),
            remote_port,
        };
        port(sys::ioctl(
            self.file.as_fd(),
            abi::EVTCHN_BIND_INTERDOMAIN,
            Some(&mut a),
        )?)
    }

    /// Unbind a local port.
    pub fn unbind(&self, port: u32) -> io::Result<()> {
        let mut a = abi::Port { port };
        sys::ioctl(self.file.as_fd(), abi::EVTCHN_UNBIND, Some(&mut a)).map(|_| ())
    }

    /// Send an event on a local port.
    pub fn notify(&self, port: u32) -> io::Result<()> {
        let mut a = abi::Port { port };
        sys::ioctl(self.file.as_fd(), abi::EVTCHN_NOTIFY, Some(&mut a)).map(|_| ())
    }

    /// Take every pending port and unmask each again (a delivered port
    /// stays masked until written back: linux `evtchn_write`). On queue
    /// overflow the queue is reset and `Ok(true)` says events were lost:
    /// check everything.
    pub fn pending(&self, out: &mut Vec<u32>) -> io::Result<bool> {
        let mut buf = [0u8; 4 * 64];
        let mut overflow = false;
        loop {
            match (&self.file).read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    for c in buf[..n - n % 4].chunks_exact(4) {
                        out.push(u32::from_ne_bytes([c[0], c[1], c[2], c[3]]));
                    }
                    if n < buf.len() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(libc::EFBIG) => {
                    sys::ioctl::<()>(self.file.as_fd(), abi::EVTCHN_RESET, None)?;
                    overflow = true;
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        if !out.is_empty() {
            let bytes: Vec<u8> = out.iter().flat_map(|p| p.to_ne_bytes()).collect();
            (&self.file).write_all(&bytes)?;
        }
        Ok(overflow)
    }
}

impl AsRawFd for Evtchn {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

fn port(r: i32) -> io::Result<u32> {
    u32::try_from(r).map_err(|_| io::Error::other("negative port"))
}

/// `/dev/xen/gntdev`: maps other domains' granted pages.
#[derive(Debug, Clone)]
pub struct Gntdev {
    file: Arc<File>,
}

/// A granted page mapped through gntdev: on drop it is unmapped, then the
/// grant released (in that order, as xen `tools/libs/gnttab/linux.c`), so a
/// dying domain is not kept a zombie by us.
#[derive(Debug)]
pub struct GrantMap {
    mapping: Option<sys::Mapping>,
    index: u64,
    dev: Arc<File>,
}

impl Gntdev {
    /// Open the device.
    pub fn open(path: &Path) -> io::Result<Gntdev> {
        Ok(Gntdev {
            file: Arc::new(open_dev(path, false)?),
        })
    }

    /// Map grant `gref` of `domid`.
    pub fn map(&self, domid: DomId, gref: u32) -> io::Result<GrantMap> {
        let mut a = abi::MapGrantRef {
            count: 1,
            pad: 0,
            index: 0,
            domid: u32::from(domid.0),
            gref,
        };
        sys::ioctl(self.file.as_fd(), abi::GNTDEV_MAP_GRANT_REF, Some(&mut a))?;
        let mut g = GrantMap {
            mapping: None,
            index: a.index,
            dev: self.file.clone(),
        };
        // the map may race with the grant being set up: retry EAGAIN
        let mut tries = 0;
        loop {
            match sys::Mapping::shared(self.file.as_fd(), PAGE_SIZE, a.index) {
                Ok(m) => {
                    g.mapping = Some(m);
                    return Ok(g);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && tries < 100 => tries += 1,
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for GrantMap {
    fn drop(&mut self) {
        drop(self.mapping.take());
        let mut a = abi::UnmapGrantRef {
            index: self.index,
            count: 1,
            pad: 0,
        };
        if let Err(e) = sys::ioctl(self.dev.as_fd(), abi::GNTDEV_UNMAP_GRANT_REF, Some(&mut a)) {
            warn!(error = %e, "cannot release a grant mapping");
        }
    }
}

impl SharedPage for GrantMap {
    fn load(&self, off: usize) -> u32 {
        self.mapping.as_ref().map_or(0, |m| m.load(off))
    }
    fn store(&self, off: usize, v: u32) {
        if let Some(m) = &self.mapping {
            m.store(off, v);
        }
    }
    fn copy_out(&self, off: usize, dst: &mut [u8]) {
        match &self.mapping {
            Some(m) => m.copy_out(off, dst),
            None => dst.fill(0),
        }
    }
    fn copy_in(&self, off: usize, src: &[u8]) {
        if let Some(m) = &self.mapping {
            m.copy_in(off, src);
        }
    }
}

/// dom0's own ring page (`/proc/xen/xsd_kva`), munmap()ed on drop (it is
/// the kernel's page, not a grant: xen `xenstored_domain.c`).
#[derive(Debug)]
pub struct Dom0Page(sys::Mapping);

impl SharedPage for Dom0Page {
    fn load(&self, off: usize) -> u32 {
        self.0.load(off)
    }
    fn store(&self, off: usize, v: u32) {
        self.0.store(off, v);
    }
    fn copy_out(&self, off: usize, dst: &mut [u8]) {
        self.0.copy_out(off, dst);
    }
    fn copy_in(&self, off: usize, src: &[u8]) {
        self.0.copy_in(off, src);
    }
}

/// Map dom0's kernel ring and read its port (`xsd_port`, decimal text),
/// from the xenfs mount `proc_xen` (only the initial domain has them).
pub fn map_dom0_ring(proc_xen: &Path) -> Result<(Dom0Page, u32), Error> {
    let port_path = proc_xen.join("xsd_port");
    let text = std::fs::read_to_string(&port_path).map_err(dev_err(&port_path, "read"))?;
    let port = text.trim().parse::<u32>().map_err(|_| Error::Xen {
        what: format!("parse {text:?} as a port from"),
        path: port_path.clone(),
        source: io::Error::from(io::ErrorKind::InvalidData),
    })?;
    let kva = proc_xen.join("xsd_kva");
    let f = open_dev(&kva, false).map_err(dev_err(&kva, "open"))?;
    let m = sys::Mapping::shared(f.as_fd(), PAGE_SIZE, 0).map_err(dev_err(&kva, "mmap"))?;
    Ok((Dom0Page(m), port))
}

/// `/dev/xen/privcmd` with a hypercall buffer, for `getdomaininfo`.
#[derive(Debug)]
pub struct Privcmd {
    file: File,
    buf: sys::Mapping,
}

impl Privcmd {
    /// Open privcmd and get a hypercall-safe buffer: a page of
    /// `/dev/xen/hypercall` (never paged out, never copied to children),
    /// else locked anonymous memory.
    pub fn open(privcmd: &Path, hypercall: &Path) -> io::Result<Privcmd> {
        let file = open_dev(privcmd, false)?;
        let buf = match open_dev(hypercall, false)
            .and_then(|h| sys::Mapping::shared(h.as_fd(), PAGE_SIZE, 0))
        {
            Ok(b) => b,
            Err(e) => {
                debug!(error = %e, "no /dev/xen/hypercall buffer; using locked memory");
                sys::Mapping::locked_anonymous(PAGE_SIZE)?
            }
        };
        Ok(Privcmd { file, buf })
    }

    /// `XEN_DOMCTL_getdomaininfo` for `domid`: `None` if it no longer
    /// exists (ESRCH, or 4.17 answered for a later domain).
    pub fn domain_info(&mut self, domid: DomId) -> io::Result<Option<DomainInfo>> {
        self.buf.copy_in(0, &abi::getdomaininfo_request(domid.0));
        let mut h = abi::Hypercall {
            op: abi::HYPERVISOR_DOMCTL,
            arg: [self.buf.addr(), 0, 0, 0, 0],
        };
        match sys::ioctl(self.file.as_fd(), abi::PRIVCMD_HYPERCALL, Some(&mut h)) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(None),
            Err(e) => return Err(e),
        }
        let mut out = [0u8; abi::DOMCTL_SIZE];
        self.buf.copy_out(0, &mut out);
        let info = DomainInfo::decode(&out);
        Ok((info.domid == domid.0).then_some(info))
    }
}

/// Where the Xen device files are (tests or odd hosts may move them).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Paths {
    /// `/dev/xen/evtchn`.
    pub evtchn: PathBuf,
    /// `/dev/xen/gntdev`.
    pub gntdev: PathBuf,
    /// `/dev/xen/privcmd`.
    pub privcmd: PathBuf,
    /// `/dev/xen/hypercall`.
    pub hypercall: PathBuf,
    /// The xenfs mount, `/proc/xen`.
    pub proc_xen: PathBuf,
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            evtchn: "/dev/xen/evtchn".into(),
            gntdev: "/dev/xen/gntdev".into(),
            privcmd: "/dev/xen/privcmd".into(),
            hypercall: "/dev/xen/hypercall".into(),
            proc_xen: "/proc/xen".into(),
        }
    }
}

/// True if this is Xen's control domain (`control_d` in
/// `/proc/xen/capabilities`): where the C daemons serve rings.
pub fn is_control_domain(paths: &Paths) -> bool {
    std::fs::read_to_string(paths.proc_xen.join("capabilities")).is_ok_and(|c| {
        c.split(|ch: char| ch == ',' || ch.is_whitespace())
            .any(|w| w == "control_d")
    })
}

/// The real Xen devices behind [`XenOps`].
#[derive(Debug)]
pub struct XenHost {
    evtchn: Evtchn,
    gntdev: Gntdev,
    privcmd: Privcmd,
    /// A second handle, moved into the core's domain oracle.
    oracle: Option<Privcmd>,
    virq_port: u32,
}

impl XenHost {
    /// Open the devices and bind `VIRQ_DOM_EXC`, which fails when another
    /// xenstored (oxenstored, cxenstored) already runs: the VIRQ can be
    /// bound only once in the whole system.
    pub fn open(paths: &Paths) -> Result<XenHost, Error> {
        let evtchn = Evtchn::open(&paths.evtchn).map_err(dev_err(&paths.evtchn, "open"))?;
        let virq_port = evtchn.bind_virq(abi::VIRQ_DOM_EXC).map_err(|source| {
            Error::AlreadyRunning(format!(
                "cannot bind VIRQ_DOM_EXC through {} ({source}): it is bound once per host, \
                 so another xenstored (oxenstored or cxenstored) is probably running; stop it \
                 (Debian: XENSTORED in /etc/default/xen selects the one started at boot)",
                paths.evtchn.display()
            ))
        })?;
        let gntdev = Gntdev::open(&paths.gntdev).map_err(dev_err(&paths.gntdev, "open"))?;
        let privcmd = Privcmd::open(&paths.privcmd, &paths.hypercall)
            .map_err(dev_err(&paths.privcmd, "open"))?;
        let oracle = Privcmd::open(&paths.privcmd, &paths.hypercall)
            .map_err(dev_err(&paths.privcmd, "open"))?;
        Ok(XenHost {
            evtchn,
            gntdev,
            privcmd,
            oracle: Some(oracle),
            virq_port,
        })
    }
}

impl XenOps for XenHost {
    fn poll_fd(&self) -> io::Result<OwnedFd> {
        Ok(self.evtchn.file.try_clone()?.into())
    }
    fn virq_port(&self) -> u32 {
        self.virq_port
    }
    fn map_ring(&mut self, domid: DomId) -> io::Result<Box<dyn SharedPage + Send>> {
        Ok(Box::new(
            self.gntdev.map(domid, abi::GNTTAB_RESERVED_XENSTORE)?,
        ))
    }
    fn bind(&mut self, domid: DomId, remote_port: u32) -> io::Result<u32> {
        self.evtchn.bind_interdomain(domid, remote_port)
    }
    fn unbind(&mut self, port: u32) {
        if let Err(e) = self.evtchn.unbind(port) {
            debug!(port, error = %e, "unbind failed");
        }
    }
    fn notify(&mut self, port: u32) {
        if let Err(e) = self.evtchn.notify(port) {
            debug!(port, error = %e, "notify failed");
        }
    }
    fn pending(&mut self, out: &mut Vec<u32>) -> io::Result<bool> {
        self.evtchn.pending(out)
    }
    fn domain_oracle(&mut self) -> Option<crate::server::DomainOracle> {
        let mut p = self.oracle.take()?;
        Some(Box::new(
            move |d: DomId| matches!(p.domain_info(d), Ok(Some(i)) if !i.dying),
        ))
    }
    fn domain_state(&mut self, domid: DomId) -> io::Result<DomainState> {
        Ok(match self.privcmd.domain_info(domid)? {
            None => DomainState::Gone,
            Some(i) if i.dying => DomainState::Dying,
            Some(i) if i.shutdown => DomainState::Shutdown,
            Some(_) => DomainState::Running,
        })
    }
}
