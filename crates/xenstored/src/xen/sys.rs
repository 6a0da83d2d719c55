//! Every `unsafe` of the crate: ioctls on the Xen device files, mappings
//! of shared pages, and the few process calls daemon start-up needs (fork,
//! setsid, lockf, dup2). The rest of the crate is `forbid(unsafe_code)`.
//!
//! JUSTIFICATION: no licence-neutral, runtime-agnostic crate covers the
//! eight ioctls, two mmaps and one hypercall (RINGS.md §7), and nix has no
//! wrapper for Xen's ioctls nor for `lockf`.

#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::ptr::NonNull;

use crate::ring::SharedPage;

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `ioctl(fd, request, arg)` with a `repr(C)` argument struct (or none).
/// Returns the ioctl's non-negative result (a port, a hypercall result).
pub(crate) fn ioctl<T>(fd: BorrowedFd<'_>, request: u32, arg: Option<&mut T>) -> io::Result<i32> {
    let ptr = arg.map_or(std::ptr::null_mut(), |a| {
        std::ptr::from_mut(a).cast::<libc::c_void>()
    });
    loop {
        // SAFETY: `fd` is an open descriptor borrowed for the call. `ptr` is
        // null (requests without an argument: IOCTL_EVTCHN_RESET) or points
        // to a live, exclusively borrowed `repr(C)` value whose size is the
        // one encoded in `request` (the `abi` constants are built from
        // `size_of` of these very types and tested against the kernel's
        // numbers); the kernel reads and writes only those bytes during the
        // call and keeps no reference after it returns.
        let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::c_ulong::from(request), ptr) };
        match check(r) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// A shared mapping of one page (a granted ring, dom0's `xsd_kva`, a
/// hypercall buffer), unmapped on drop. Accessed only by copies through
/// [`SharedPage`]; no Rust reference into it ever exists, since the other
/// domain writes it at any time.
#[derive(Debug)]
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; it is accessed
// only with volatile copies through `&self` methods that never hand out
// references, so moving the owner to another thread is sound (the ring
// task may run on any runtime thread, always under the daemon's lock).
unsafe impl Send for Mapping {}

impl Mapping {
    /// `mmap(NULL, len, PROT_READ|PROT_WRITE, MAP_SHARED, fd, offset)`.
    pub(crate) fn shared(fd: BorrowedFd<'_>, len: usize, offset: u64) -> io::Result<Mapping> {
        let off = libc::off_t::try_from(offset)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "mmap offset too large"))?;
        // SAFETY: a fresh mapping chosen by the kernel (addr NULL), so no
        // existing memory is replaced; `fd` is open for the call; the
        // result is checked against MAP_FAILED before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                off,
            )
        };
        Self::from_mmap(p, len)
    }

    /// Anonymous memory locked in RAM and not inherited by children: a
    /// hypercall buffer where `/dev/xen/hypercall` is missing (xen:
    /// `tools/libs/call/linux.c` does the same).
    pub(crate) fn locked_anonymous(len: usize) -> io::Result<Mapping> {
        // SAFETY: a fresh private anonymous mapping (addr NULL, no fd),
        // checked against MAP_FAILED below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_LOCKED,
                -1,
                0,
            )
        };
        let m = Self::from_mmap(p, len)?;
        // SAFETY: advice on exactly the range just mapped and owned by `m`.
        check(unsafe { libc::madvise(m.ptr.as_ptr().cast(), len, libc::MADV_DONTFORK) })?;
        Ok(m)
    }

    fn from_mmap(p: *mut libc::c_void, len: usize) -> io::Result<Mapping> {
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        NonNull::new(p.cast::<u8>())
            .map(|ptr| Mapping { ptr, len })
            .ok_or_else(|| io::Error::other("mmap returned NULL"))
    }

    /// The mapping's address (for a hypercall argument).
    pub(crate) fn addr(&self) -> u64 {
        self.ptr.as_ptr() as u64
    }

    fn in_range(&self, off: usize, len: usize) -> bool {
        off.checked_add(len).is_some_and(|end| end <= self.len)
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what mmap returned for this
        // value, unmapped once here; no reference into it exists.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

impl SharedPage for Mapping {
    fn load(&self, off: usize) -> u32 {
        if !self.in_range(off, 4) || off % 4 != 0 {
            return 0;
        }
        // SAFETY: in range (checked), 4-aligned (page-aligned base, off % 4
        // == 0), mapped for our lifetime; volatile because the other
        // domain changes it concurrently (a torn or stale value is only a
        // wrong number, which the ring code validates).
        unsafe { self.ptr.as_ptr().add(off).cast::<u32>().read_volatile() }
    }

    fn store(&self, off: usize, v: u32) {
        if !self.in_range(off, 4) || off % 4 != 0 {
            return;
        }
        // SAFETY: as in `load`; the page is mapped writable.
        unsafe { self.ptr.as_ptr().add(off).cast::<u32>().write_volatile(v) }
    }

    fn copy_out(&self, off: usize, dst: &mut [u8]) {
        if !self.in_range(off, dst.len()) {
            dst.fill(0);
            return;
        }
        for (i, d) in dst.iter_mut().enumerate() {
            // SAFETY: off + i < off + dst.len() <= len (checked above).
            *d = unsafe { self.ptr.as_ptr().add(off + i).read_volatile() };
        }
    }

    fn copy_in(&self, off: usize, src: &[u8]) {
        if !self.in_range(off, src.len()) {
            return;
        }
        for (i, s) in src.iter().enumerate() {
            // SAFETY: off + i < off + src.len() <= len (checked above);
            // the mapping is writable.
            unsafe { self.ptr.as_ptr().add(off + i).write_volatile(*s) }
        }
    }
}

/// What [`fork`] returned in this process.
pub(crate) enum Forked {
    /// The parent, with the child's pid.
    Parent(i32),
    /// The child.
    Child,
}

/// `fork()`. Only for daemon start-up, before any thread exists.
pub(crate) fn fork() -> io::Result<Forked> {
    // SAFETY: called from `startup::daemonize` in `main` before the signal
    // waiter (or any other thread) is created, so the child gets a
    // consistent copy of the one thread's state; the child only continues
    // the same single-threaded start-up code.
    let pid = check(unsafe { libc::fork() })?;
    Ok(if pid == 0 {
        Forked::Child
    } else {
        Forked::Parent(pid)
    })
}

/// `setsid()`: leave the controlling terminal's session.
pub(crate) fn setsid() -> io::Result<()> {
    // SAFETY: no pointers; fails harmlessly if already a group leader.
    check(unsafe { libc::setsid() }).map(|_| ())
}

/// `_exit(code)`: leave a forked intermediate process without running
/// the parent's exit handlers or flushing its copies of stdio buffers.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: terminates the process; nothing runs after it.
    unsafe { libc::_exit(code) }
}

/// `waitpid(pid, &status, 0)`: reap a child.
pub(crate) fn wait_child(pid: i32) -> io::Result<()> {
    let mut status = 0;
    // SAFETY: `status` is a live local the kernel writes once.
    check(unsafe { libc::waitpid(pid, &mut status, 0) }).map(|_| ())
}

/// `pipe2(O_CLOEXEC)`: (read end, write end).
pub(crate) fn pipe() -> io::Result<(std::fs::File, std::fs::File)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: both descriptors were just created by pipe2 and are owned
    // by nothing else; each File takes sole ownership of one.
    Ok(unsafe {
        use std::os::fd::FromRawFd;
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    })
}

/// `lockf(fd, F_TLOCK, 0)`: the C xenstored's pid-file lock (a POSIX
/// record lock, so a running C daemon's lock is seen too).
pub(crate) fn try_lock(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: no pointers; `fd` is open for the call.
    check(unsafe { libc::lockf(fd.as_raw_fd(), libc::F_TLOCK, 0) }).map(|_| ())
}

/// Point stdin, stdout and stderr at `fd` (`/dev/null` once started).
pub(crate) fn redirect_stdio(fd: BorrowedFd<'_>) -> io::Result<()> {
    for target in 0..3 {
        // SAFETY: dup2 onto the standard descriptors, which this process
        // owns; Rust's std handles keep working on the new files.
        check(unsafe { libc::dup2(fd.as_raw_fd(), target) })?;
    }
    Ok(())
}
