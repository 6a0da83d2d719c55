//! Daemon start-up as Debian's init script expects of a xenstored (xen
//! 4.17 `xenstored_core.c` main: daemonize, `write_pidfile`; Debian
//! `/etc/init.d/xen` `xenstored_start`; RINGS.md §6):
//!
//! * [`daemonize`]: fork, setsid, fork; the original parent waits on a
//!   pipe and exits only once the daemon says it is ready (socket bound,
//!   dom0's ring served), or with the daemon's start-up error. The init
//!   script starts the binary without `--background` and then polls
//!   `xenstore-read -s /`: a parent that exits early would let that fall
//!   back to `/dev/xen/xenbus` and block.
//! * [`PidFile`]: `lockf` on the pid file, as the C daemon, so a second
//!   instance (ours or C's) started with the same file is refused.
//! * [`check_socket_free`]: a server already answering on the socket is
//!   refused, not replaced.
//!
//! The library never prints or exits: `main` reports what these return.

#![forbid(unsafe_code)]

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::xen;

/// The daemon's end of the start-up handshake.
#[derive(Debug, Default)]
pub struct Readiness {
    pipe: Mutex<Option<File>>,
    detached: bool,
}

impl Readiness {
    /// Not forked: nothing to tell anyone.
    pub fn foreground() -> Readiness {
        Readiness::default()
    }

    /// Tell the waiting parent we serve (it exits 0 and prints our pid if
    /// asked), then detach stdio to `/dev/null` as the C daemon does.
    pub fn ready(&self) {
        let pipe = self.pipe.lock().map(|mut p| p.take()).unwrap_or(None);
        if let Some(mut p) = pipe {
            let _ = write!(p, "R{}", std::process::id());
            drop(p);
            if self.detached {
                if let Ok(null) = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open("/dev/null")
                {
                    let _ = xen::redirect_stdio(null.as_fd());
                }
            }
        }
    }

    /// Tell the waiting parent start-up failed (it prints `msg`, exits 1).
    /// No-op once [`Readiness::ready`] was called or when not forked.
    pub fn fail(&self, msg: &str) {
        let pipe = self.pipe.lock().map(|mut p| p.take()).unwrap_or(None);
        if let Some(mut p) = pipe {
            let _ = write!(p, "E{msg}");
        }
    }

    /// True if the parent still waits (errors must go through [`Readiness::fail`]).
    pub fn parent_waiting(&self) -> bool {
        self.pipe.lock().is_ok_and(|p| p.is_some())
    }
}

/// What [`daemonize`] returns in each process that leaves it.
#[derive(Debug)]
pub enum Daemonized {
    /// The original process, after the daemon reported: its pid, or the
    /// error that stopped its start-up.
    Parent(std::result::Result<u32, String>),
    /// The daemon (a grandchild, in its own session, cwd `/`).
    Daemon(Readiness),
}

/// Fork into the background (before any thread exists: call it before
/// signals are blocked and their waiter thread starts).
pub fn daemonize() -> Result<Daemonized> {
    let err = |what: &str, e: std::io::Error| Error::Startup(format!("{what}: {e}"));
    let (mut rd, wr) = xen::pipe().map_err(|e| err("pipe", e))?;
    match xen::fork().map_err(|e| err("fork", e))? {
        xen::Forked::Parent(child) => {
            drop(wr);
            let _ = xen::wait_child(child);
            let mut msg = String::new();
            let _ = rd.read_to_string(&mut msg);
            Ok(Daemonized::Parent(parse_report(&msg)))
        }
        xen::Forked::Child => {
            drop(rd);
            let _ = xen::setsid();
            match xen::fork() {
                Ok(xen::Forked::Parent(_)) => xen::exit_now(0),
                Ok(xen::Forked::Child) => {}
                Err(e) => {
                    let mut wr = wr;
                    let _ = write!(wr, "Efork: {e}");
                    xen::exit_now(1);
                }
            }
            let _ = std::env::set_current_dir("/");
            Ok(Daemonized::Daemon(Readiness {
                pipe: Mutex::new(Some(wr)),
                detached: true,
            }))
        }
    }
}

fn parse_report(msg: &str) -> std::result::Result<u32, String> {
    if let Some(pid) = msg.strip_prefix('R') {
        return pid
            .trim()
            .parse()
            .map_err(|_| format!("bad start-up report {msg:?}"));
    }
    if let Some(e) = msg.strip_prefix('E') {
        return Err(e.to_string());
    }
    Err("the daemon exited during start-up without a report (see its log: -T FILE)".into())
}

/// A locked pid file holding our pid; removed when dropped.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
    _file: File,
}

impl PidFile {
    /// Create (or take over) `path`, lock it with `lockf` and write our
    /// pid. A lock held by another process means another xenstored.
    pub fn create(path: &Path) -> Result<PidFile> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(path)
            .map_err(|source| Error::File {
                path: path.to_path_buf(),
                source,
            })?;
        if let Err(e) = xen::try_lock(file.as_fd()) {
            let holder = std::fs::read_to_string(path).unwrap_or_default();
            return Err(Error::AlreadyRunning(format!(
                "pid file {} is locked ({e}) by process {}; stop that xenstored first",
                path.display(),
                holder.trim()
            )));
        }
        file.set_len(0).map_err(|source| Error::File {
            path: path.to_path_buf(),
            source,
        })?;
        (&file)
            .write_all(format!("{}\n", std::process::id()).as_bytes())
            .map_err(|source| Error::File {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(PidFile {
            path: path.to_path_buf(),
            _file: file,
        })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Refuse to replace a live server's socket (a stale socket file, nobody
/// listening, is fine: it gets replaced).
pub fn check_socket_free(path: &Path) -> Result<()> {
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(Error::AlreadyRunning(format!(
            "a xenstore server answers on {}; stop it first (oxenstored, xenstored or \
             another drvdom-xenstored)",
            path.display()
        ))),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(_) => Ok(()),
    }
}

/// The socket the C daemon binds when given none: `$XENSTORED_PATH`, else
/// `$XENSTORED_RUNDIR/socket`, else `/var/run/xenstored/socket` (xen
/// `tools/xenstore/xs_lib.c`).
pub fn default_socket() -> PathBuf {
    let var = |n: &str| std::env::var_os(n).filter(|v| !v.is_empty());
    if let Some(p) = var("XENSTORED_PATH") {
        return p.into();
    }
    let dir: PathBuf =
        var("XENSTORED_RUNDIR").map_or_else(|| "/var/run/xenstored".into(), Into::into);
    dir.join("socket")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_parsing() {
        assert_eq!(parse_report("R42"), Ok(42));
        assert_eq!(parse_report("Eboom"), Err("boom".into()));
        assert!(parse_report("").is_err());
    }

    /// (A second process is refused: `tests/startup.rs`; lockf locks
    /// belong to a process, so this one can only check the file.)
    #[test]
    fn pid_file_holds_our_pid_and_goes_on_drop() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.pid");
        std::fs::write(&p, "stale junk that is longer\n").unwrap();
        let held = PidFile::create(&p).unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            format!("{}\n", std::process::id())
        );
        drop(held);
        assert!(!p.exists());
    }

    #[test]
    fn live_socket_is_refused_stale_one_is_not() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s");
        assert!(check_socket_free(&p).is_ok());
        let l = std::os::unix::net::UnixListener::bind(&p).unwrap();
        assert!(matches!(
            check_socket_free(&p),
            Err(Error::AlreadyRunning(_))
        ));
        drop(l);
        assert!(check_socket_free(&p).is_ok());
    }
}
