//! `drvdom-agent` started the way its systemd unit starts it (no
//! `--xenstore`, no `$XENSTORED_PATH`) on this machine, which is no Xen
//! domain: it must log why and exit 0 at once, so that the packaged
//! service does nothing (and is not restarted) outside a driver domain.
//! Also: the hidden `--generate-man` the packaging uses.

// Helpers outside #[test] fns unwrap too: failing loudly is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

fn agent() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_drvdom-agent"));
    c.env_remove("XENSTORED_PATH")
        .env_remove("RUST_LOG")
        .env_remove("DRVDOM_AGENT_BRIDGE")
        .env_remove("DRVDOM_AGENT_UPLINK")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Wait for the child with a deadline (a regression would leave it running).
fn finish(mut child: Child, what: &str) -> Output {
    testutil::wait_until(what, Duration::from_secs(30), || {
        child.try_wait().map(|s| s.is_some()).unwrap_or(true)
    });
    child.wait_with_output().unwrap()
}

#[test]
fn exits_0_with_a_clear_message_on_a_host_that_is_not_xen() {
    if agent::probe_host(Path::new("/")) != agent::HostKind::NotXen {
        testutil::skip(
            module_path!(),
            "this machine is a Xen domain (it has /dev/xen/xenbus or /proc/xen); \
             the test needs a host without Xen",
        );
        return;
    }
    // With options as the unit passes them from /etc/default/drvdom-agent.
    let child = agent()
        .args(["--bridge", "xenbr0", "--uplink", "eth0"])
        .spawn()
        .unwrap();
    let out = finish(child, "drvdom-agent to exit on a non-Xen host");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {err}");
    assert!(
        err.contains("not a Xen domain (no /dev/xen/xenbus, no /proc/xen)")
            && err.contains("nothing to do, exiting"),
        "stderr: {err}"
    );
    assert!(err.contains("WARN"), "logged as a warning: {err}");
    assert_eq!(err.lines().count(), 1, "one line, not a stack: {err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn settings_come_from_the_environment_file_variables() {
    if agent::probe_host(Path::new("/")) != agent::HostKind::NotXen {
        testutil::skip(module_path!(), "this machine is a Xen domain");
        return;
    }
    // An empty bridge is refused (exit 2), naming the variable.
    let out = finish(
        agent().env("DRVDOM_AGENT_BRIDGE", "").spawn().unwrap(),
        "drvdom-agent to reject an empty bridge",
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--bridge"), "{err}");
    // An empty uplink (the conffile's default) is no uplink: still the clean exit.
    let out = finish(
        agent().env("DRVDOM_AGENT_UPLINK", "").spawn().unwrap(),
        "drvdom-agent to exit with an empty uplink",
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn explicit_endpoint_skips_the_host_check() {
    // --xenstore given: the simulator's way; no host check, so the missing
    // socket is the error (exit 1), not a silent exit 0.
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("none.sock");
    let out = finish(
        agent().arg("--xenstore").arg(&sock).spawn().unwrap(),
        "drvdom-agent to fail on a missing socket",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot connect to xenstore"), "{err}");
    assert!(!err.contains("not a Xen domain"), "{err}");
}

#[test]
fn generate_man_writes_drvdom_agent_8() {
    let dir = tempfile::tempdir().unwrap();
    let out = finish(
        agent()
            .arg("--generate-man")
            .arg(dir.path())
            .spawn()
            .unwrap(),
        "drvdom-agent --generate-man",
    );
    assert!(out.status.success(), "{out:?}");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["drvdom-agent.8"]);
    let page = std::fs::read_to_string(dir.path().join("drvdom-agent.8")).unwrap();
    assert!(page.contains(".TH drvdom-agent 8"), "{page}");
    for want in [
        "/etc/default/drvdom\\-agent",
        "DRVDOM_AGENT_UPLINK",
        "control_d",
        "\\-\\-uplink",
    ] {
        assert!(page.contains(want), "no {want:?} in the page:\n{page}");
    }
    assert!(!page.contains("generate\\-man"), "hidden option documented");
}
