//! Shared helpers for the root tests: a private network namespace per test.
// Test-only helpers: a failed setup step should panic the test.
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use std::future::Future;
use std::process::Command;

use nix::sched::{CloneFlags, unshare};

/// Run `f` on a fresh thread that first moves itself into a brand-new,
/// anonymous network namespace (`unshare(CLONE_NEWNET)`), on a
/// current-thread tokio runtime so every task (and every child process it
/// spawns) stays in that namespace.
///
/// Nothing names the namespace, so it is freed by the kernel as soon as the
/// thread, its sockets and its children are gone, whether the test passed or
/// panicked: there is nothing to clean up and the host namespace is never
/// touched.
pub fn in_netns<F, Fut>(f: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let t = std::thread::spawn(move || {
        unshare(CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        rt.block_on(f());
    });
    if let Err(p) = t.join() {
        std::panic::resume_unwind(p);
    }
}

/// Run `ip ARGS` (in the calling thread's namespace), assert success, return stdout.
pub fn ip(args: &str) -> String {
    let out = Command::new("ip")
        .args(args.split_whitespace())
        .output()
        .expect("run ip");
    assert!(
        out.status.success(),
        "ip {args} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ip -o link show dev NAME` as one line.
pub fn link_line(name: &str) -> String {
    ip(&format!("-o link show dev {name}"))
}

/// The flags field of `ip -o link`, e.g. `BROADCAST,MULTICAST,UP,LOWER_UP`.
pub fn flags(name: &str) -> Vec<String> {
    let line = link_line(name);
    let start = line.find('<').expect("flags start") + 1;
    let end = line.find('>').expect("flags end");
    line[start..end].split(',').map(str::to_string).collect()
}
