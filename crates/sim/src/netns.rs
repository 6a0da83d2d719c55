//! Network namespaces, the simulated domains' "machines", managed in
//! process (no `ip` binary).
//!
//! Namespaces are named `drvdom-<lab>-<domain>` and bind-mounted under
//! [`NETNS_DIR`], exactly where and how `ip netns add` keeps them (so `ip
//! netns` lists them and `lab down` finds every namespace of a lab by its
//! prefix even after a crash):
//!
//! * create: make [`NETNS_DIR`] a shared mount point (binding it onto
//!   itself the first time), create an empty file, and on a dedicated
//!   thread `unshare(CLONE_NEWNET)` and bind-mount that thread's
//!   `/proc/thread-self/ns/net` onto the file (iproute2 `ip/ipnetns.c`
//!   `netns_add`);
//! * delete: detach-unmount the file and unlink it (`netns_delete`);
//! * processes in a namespace: every `/proc/<pid>/ns/net` with the same
//!   nsfs inode (`netns_pids`).
//!
//! Entering a namespace changes only the calling thread, so async code
//! never does it on a runtime thread: [`on_thread_in`] runs a closure on a
//! fresh thread that has entered the namespace, and processes are started
//! through `drvdom-simkernel exec`, which enters before it execs.

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};

use crate::error::{Error, Result};

/// Where `ip netns` bind-mounts named namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// Prefix of every namespace a lab creates.
pub fn lab_prefix(lab: &str) -> String {
    format!("drvdom-{lab}-")
}

/// The namespace of domain `domain` of lab `lab`.
pub fn ns_name(lab: &str, domain: &str) -> String {
    format!("{}{domain}", lab_prefix(lab))
}

/// The file of a named namespace (open it to get a namespace fd).
pub fn ns_path(ns: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(ns)
}

/// True if the named namespace exists (its file is there).
pub fn exists(ns: &str) -> bool {
    ns_path(ns).exists()
}

/// True if `path` is a namespace (a bind mount of an nsfs inode), not the
/// empty file a crash between creating and mounting it leaves.
fn is_mounted_ns(path: &Path) -> bool {
    let nsfs_dev = std::fs::metadata("/proc/self/ns/net").map(|m| m.dev());
    match (std::fs::metadata(path), nsfs_dev) {
        (Ok(m), Ok(dev)) => m.dev() == dev,
        _ => false,
    }
}

fn sys<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(Errno) -> Error + 'a {
    move |e| Error::File {
        what,
        path: path.to_path_buf(),
        source: io::Error::from(e),
    }
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::File {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Make [`NETNS_DIR`] a shared mount point, so that namespaces mounted
/// later are seen by every mount namespace (iproute2 does the same).
fn prepare_dir() -> Result<()> {
    let dir = Path::new(NETNS_DIR);
    std::fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
    let mut bound = false;
    loop {
        match mount(
            None::<&str>,
            dir,
            Some("none"),
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        ) {
            Ok(()) => return Ok(()),
            // Not a mount point yet: bind it onto itself, then retry.
            Err(Errno::EINVAL) if !bound => {
                mount(
                    Some(dir),
                    dir,
                    Some("none"),
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None::<&str>,
                )
                .map_err(sys("bind-mount", dir))?;
                bound = true;
            }
            Err(e) => return Err(sys("make shared mount", dir)(e)),
        }
    }
}

/// Create the named namespace (if missing). Its loopback stays down; see
/// [`crate::link::Netlink::set_up`].
pub fn create(ns: &str) -> Result<()> {
    check_ns_name(ns)?;
    let path = ns_path(ns);
    if path.exists() {
        if is_mounted_ns(&path) {
            return Ok(());
        }
        // Left half-made by a crash: start over.
        std::fs::remove_file(&path).map_err(io_err("remove stale namespace file", &path))?;
    }
    prepare_dir()?;
    File::options()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(io_err("create namespace file", &path))?;
    let target = path.clone();
    let made = std::thread::spawn(move || -> Result<()> {
        // Only this thread moves to the new namespace; it ends right after.
        unshare(CloneFlags::CLONE_NEWNET).map_err(sys("unshare network namespace", &target))?;
        mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            Some("none"),
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(sys("bind-mount namespace onto", &target))
    })
    .join()
    .unwrap_or_else(|_| {
        Err(Error::Invalid(format!(
            "namespace thread for {ns} panicked"
        )))
    });
    if let Err(e) = made {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    Ok(())
}

/// Delete the namespace; missing is fine. Virtual links inside it (veths,
/// bridges) go with it, and so do their peers elsewhere.
pub fn delete(ns: &str) -> Result<()> {
    check_ns_name(ns)?;
    let path = ns_path(ns);
    if !path.exists() {
        return Ok(());
    }
    match umount2(&path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(sys("unmount namespace", &path)(e)),
    }
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("remove namespace file", &path)(e)),
    }
}

/// Namespace names end up as file names: refuse separators and dot names.
fn check_ns_name(ns: &str) -> Result<()> {
    let ok = !ns.is_empty()
        && ns.len() < 200
        && ns != "."
        && ns != ".."
        && ns
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!("invalid namespace name {ns:?}")))
    }
}

/// Every namespace whose name starts with `prefix`.
pub fn list_with_prefix(prefix: &str) -> Result<Vec<String>> {
    let dir = match std::fs::read_dir(NETNS_DIR) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(Error::File {
                what: "list namespaces in",
                path: NETNS_DIR.into(),
                source,
            });
        }
    };
    let mut out: Vec<String> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .collect();
    out.sort();
    Ok(out)
}

/// Pids of processes whose network namespace is `ns` (`ip netns pids`).
pub fn pids(ns: &str) -> Result<Vec<i32>> {
    let path = ns_path(ns);
    let want = match std::fs::metadata(&path) {
        Ok(m) => (m.dev(), m.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("stat namespace", &path)(e)),
    };
    let proc_dir = Path::new("/proc");
    let entries = std::fs::read_dir(proc_dir).map_err(io_err("list", proc_dir))?;
    let mut out = Vec::new();
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        // Processes come and go while we look: unreadable ones are skipped.
        if let Ok(m) = std::fs::metadata(e.path().join("ns/net")) {
            if (m.dev(), m.ino()) == want {
                out.push(pid);
            }
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Move the calling thread into the namespace at `path`.
///
/// Only for threads this crate owns (see [`on_thread_in`]) and for a
/// single-threaded process about to exec (`drvdom-simkernel`).
pub fn enter(path: &Path) -> Result<()> {
    let f = File::open(path).map_err(io_err("open namespace", path))?;
    setns(&f, CloneFlags::CLONE_NEWNET).map_err(sys("enter namespace", path))
}

/// What `ip netns exec` does besides `setns`, for a process about to exec
/// a program inside the namespace: a private mount namespace in which
/// `/sys` is a fresh sysfs, so `/sys/class/net` lists the namespace's own
/// interfaces (hotplug scripts look there). Must be called by a
/// single-threaded process.
pub fn remount_sysfs(ns: &str) -> Result<()> {
    let sys_dir = Path::new("/sys");
    unshare(CloneFlags::CLONE_NEWNS).map_err(sys("unshare mount namespace for", sys_dir))?;
    // Our mounts must not propagate back to the host's mount namespace.
    mount(
        None::<&str>,
        "/",
        Some("none"),
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(sys("make mounts private under", Path::new("/")))?;
    match umount2(sys_dir, MntFlags::MNT_DETACH) {
        Ok(()) | Err(Errno::EINVAL) => {}
        Err(e) => return Err(sys("unmount", sys_dir)(e)),
    }
    mount(
        Some(ns),
        sys_dir,
        Some("sysfs"),
        MsFlags::empty(),
        None::<&str>,
    )
    .map_err(sys("mount sysfs on", sys_dir))
}

/// Run `f` on a new thread that has entered the namespace at `path`; the
/// thread ends with `f`, so no thread of a runtime ever changes namespace.
/// Sockets `f` opens stay bound to that namespace wherever they are used.
pub async fn on_thread_in<T, F>(path: &Path, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    let path = path.to_path_buf();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let what = path.display().to_string();
    std::thread::Builder::new()
        .name("sim-netns".into())
        .spawn(move || {
            let r = enter(&path).and_then(|()| f());
            let _ = tx.send(r);
        })
        .map_err(|source| Error::Spawn {
            program: format!("thread in namespace {what}"),
            source,
        })?;
    rx.await
        .map_err(|_| Error::Invalid(format!("thread in namespace {what} panicked")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_lab_prefix() {
        assert_eq!(ns_name("l1", "dom0"), "drvdom-l1-dom0");
        assert!(ns_name("l1", "guest1").starts_with(&lab_prefix("l1")));
        assert_eq!(ns_path("x"), Path::new("/run/netns/x"));
    }

    #[test]
    fn namespace_names_are_checked() {
        assert!(check_ns_name("drvdom-l1-web_1.a").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "x\0"] {
            assert!(check_ns_name(bad).is_err(), "{bad:?}");
        }
    }
}
