//! Test helpers shared by drvdom's test suites (dev-dependency only).
//!
//! * [`require_root!`] and [`require_cmd!`] gate tests that need root,
//!   network namespaces or a peer program. They print `SKIPPED <test>: <why>`
//!   and return; when `DRVDOM_REQUIRE_ROOT_TESTS=1` is set (as `.ci/run`
//!   does) a skip becomes a failure, so CI never counts a skip as a pass.
//! * [`wait_until`] is the one polling helper, for conditions that have no
//!   event to wait on (sysfs, process exit); it fails naming the condition.
//! * [`unique_name`] makes short unique names for links and namespaces so
//!   tests can run in parallel.
//! * [`xenstored::Xenstored`] runs a real `drvdom-xenstored` for a test.
//! * [`packet`] crafts frames and sends/captures them on raw sockets.

#![allow(clippy::print_stderr, clippy::panic)] // test helpers report skips on stderr by design
// Test-only harness: failing loudly is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod packet;
pub mod xenstored;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// True when CI asked that no root/peer test may skip.
pub fn skips_forbidden() -> bool {
    std::env::var("DRVDOM_REQUIRE_ROOT_TESTS").is_ok_and(|v| v == "1")
}

/// True when running as root (effective uid 0).
pub fn is_root() -> bool {
    // /proc/self/status "Uid:\treal\teffective\t..." avoids unsafe geteuid.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// Report a skip: prints the reason, or panics under `DRVDOM_REQUIRE_ROOT_TESTS=1`.
pub fn skip(test: &str, why: &str) {
    if skips_forbidden() {
        panic!("{test}: would skip ({why}) but DRVDOM_REQUIRE_ROOT_TESTS=1 forbids skips");
    }
    eprintln!("SKIPPED {test}: {why}");
}

/// Find a program on `PATH` (or an absolute path that exists and is executable).
pub fn find_program(name: &str) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let is_exec = |p: &std::path::Path| {
        p.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    let p = std::path::Path::new(name);
    if p.is_absolute() {
        return is_exec(p).then(|| p.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|c| is_exec(c))
}

/// Return early from a test (after printing why) unless running as root.
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::is_root() {
            $crate::skip(module_path!(), "needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN)");
            return;
        }
    };
}

/// Return early from a test unless the program exists; evaluates to its path.
#[macro_export]
macro_rules! require_cmd {
    ($name:expr) => {
        match $crate::find_program($name) {
            Some(p) => p,
            None => {
                $crate::skip(
                    module_path!(),
                    &format!("needs {} (installed by .ci/run)", $name),
                );
                return;
            }
        }
    };
}

/// Poll `cond` until it returns true or `timeout` passes; panics naming `what`.
///
/// Only for conditions that have no event to wait on.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        if cond() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        std::thread::park_timeout(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// A short name unique within this machine for this test run, e.g. `t1a2b3`.
/// At most 15 characters so it fits an interface name.
pub fn unique_name(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id() % 0xfffff;
    let mut s = format!("{prefix}{pid:x}{n:x}");
    s.truncate(15);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_fit_interfaces_and_differ() {
        let a = unique_name("dv");
        let b = unique_name("dv");
        assert_ne!(a, b);
        assert!(a.len() <= 15);
    }

    #[test]
    fn wait_until_returns_when_condition_holds() {
        let mut n = 0;
        wait_until("counter reaches 3", Duration::from_secs(5), || {
            n += 1;
            n >= 3
        });
        assert_eq!(n, 3);
    }

    #[test]
    fn find_program_finds_sh() {
        assert!(find_program("sh").is_some());
        assert!(find_program("definitely-not-a-program-xyz").is_none());
    }
}
