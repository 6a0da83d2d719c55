//! Start-up the C daemon's way (no `--socket`): fork with the parent
//! exiting only once the socket answers, the pid file locked, a second
//! instance refused with a clear message, a live socket never replaced.
//! (`--xen off`: this test host is not a Xen dom0; the ring path is tested
//! in `ringd` and proven in the real-Xen lab.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_drvdom-xenstored"))
        .args(["--xen", "off"])
        .args(args)
        .env("XENSTORED_PATH", dir.join("socket"))
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

/// Stop the daemon we started, by the pid it wrote; wait until it is gone.
fn stop(pid_file: &Path) {
    let pid = std::fs::read_to_string(pid_file)
        .unwrap()
        .trim()
        .to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let proc = format!("/proc/{pid}");
    testutil::wait_until("the daemon exits", Duration::from_secs(20), || {
        !Path::new(&proc).exists()
    });
}

#[test]
fn forks_after_binding_locks_pid_file_and_refuses_a_second_instance() {
    let d = tempfile::tempdir().unwrap();
    let pid = d.path().join("xenstore.pid");
    let pid_s = pid.to_str().unwrap();
    // as Debian's init script: $XENSTORED $XENSTORED_ARGS --pid-file FILE
    let out = run(d.path(), &["-P", "--pid-file", pid_s]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // the parent is gone and the socket answers already (no waiting)
    UnixStream::connect(d.path().join("socket")).expect("socket bound before the parent exited");
    let daemon_pid = std::fs::read_to_string(&pid).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        daemon_pid.trim()
    );
    assert_ne!(daemon_pid.trim(), "");

    // same pid file: refused, saying who holds it
    let again = run(d.path(), &["--pid-file", pid_s]);
    assert_eq!(again.status.code(), Some(1));
    let msg = String::from_utf8_lossy(&again.stderr);
    assert!(msg.contains("another xenstored is running"), "{msg}");
    assert!(msg.contains(daemon_pid.trim()), "{msg}");

    // another pid file, same socket: refused, the socket still served
    let other = d.path().join("other.pid");
    let again = run(d.path(), &["-N", "--pid-file", other.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1));
    let msg = String::from_utf8_lossy(&again.stderr);
    assert!(msg.contains("answers on"), "{msg}");
    assert!(!other.exists(), "a refused instance leaves no pid file");
    UnixStream::connect(d.path().join("socket")).unwrap();

    stop(&pid);
    assert!(!pid.exists(), "pid file removed on exit");
}

#[test]
fn start_up_error_reaches_the_waiting_parent() {
    let d = tempfile::tempdir().unwrap();
    // an unknown -Q quota fails in the daemon, after the fork
    let out = run(d.path(), &["-Q", "bogus=1"]);
    assert_eq!(out.status.code(), Some(1));
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(msg.contains("unknown quota"), "{msg}");
    assert!(!d.path().join("socket").exists());
}
