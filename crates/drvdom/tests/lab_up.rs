//! `drvdom lab up/down/status`: the whole simulated host, as root, with
//! real namespaces and real packets.

mod lab_support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use lab_support::TestLab;

/// Every step `lab up` must report, in order.
const STEPS: &[&str] = &[
    "domains created and introduced",
    "NIC found",
    "NIC hidden from dom0",
    "NIC visible in the driver domain",
    "backend ready",
    "agent up, bridge with the NIC",
    "guests' vifs Connected on both ends",
    "every vif on the bridge",
    "ping guest1 -> guest2",
    "ping guest2 -> guest1",
    "ping guest1 -> outside",
    "ping guest2 -> outside",
];

#[test]
fn lab_up_once_passes_every_step_and_leaves_nothing() {
    let _bins = require_lab!();
    let lab = TestLab::new();
    let out = lab.ok(&["lab", "up", "--once", "--json", "--name", &lab.name]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["ok"], true, "{v:#}");
    let steps = v["steps"].as_array().unwrap();
    let names: Vec<&str> = steps.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, STEPS);
    for s in steps {
        assert_eq!(s["ok"], true, "step failed: {s:#}");
    }
    // The brctl view names the guests behind their vifs.
    let bridge = steps
        .iter()
        .find(|s| s["name"] == "every vif on the bridge")
        .unwrap();
    let view = bridge["detail"].as_str().unwrap();
    assert!(view.contains("xenbr0"), "{view}");
    assert!(view.contains("nic0"), "{view}");
    assert!(
        view.lines()
            .any(|l| l.contains("vif2.0") && l.contains("guest1")),
        "{view}"
    );
    assert!(
        view.lines()
            .any(|l| l.contains("vif3.0") && l.contains("guest2")),
        "{view}"
    );
    lab.assert_gone();
}

#[test]
fn lab_up_text_output_marks_steps_pass() {
    let _bins = require_lab!();
    let lab = TestLab::new();
    let out = lab.ok(&["lab", "up", "--once", "--guests", "1", "--name", &lab.name]);
    for step in ["NIC found", "backend ready", "ping guest1 -> outside"] {
        assert!(
            out.lines()
                .any(|l| l.starts_with("PASS") && l.contains(step)),
            "no PASS line for {step}:\n{out}"
        );
    }
    assert!(!out.contains("FAIL"), "{out}");
    assert!(out.contains("all steps PASS"), "{out}");
    lab.assert_gone();
}

#[test]
fn lab_down_cleans_up_after_crashed_parts_and_is_idempotent() {
    let _bins = require_lab!();
    let lab = TestLab::new();
    lab.up_detached(2);
    let status = lab.ok(&["lab", "status", "--json", "--name", &lab.name]);
    let st: serde_json::Value = serde_json::from_str(&status).unwrap();
    let domains = st["domains"].as_array().unwrap();
    assert_eq!(domains.len(), 4, "{st:#}");
    let g1 = domains.iter().find(|d| d["name"] == "guest1").unwrap();
    assert_eq!(g1["vifs"][0]["frontend_state"], "Connected");
    assert_eq!(g1["vifs"][0]["backend_state"], "Connected");
    assert_eq!(g1["vifs"][0]["hotplug_status"], "connected");

    // Crash the agent, the netback and the server itself.
    for role in ["agent", "netback", "xenstored"] {
        let pid = lab.pid_of(role);
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
    }
    // And remove the record: down must still find everything by prefix.
    std::fs::remove_file(lab.dir().join("state.json")).unwrap();
    let out = lab.ok(&["lab", "down", "--name", &lab.name]);
    assert!(out.contains("namespace(s) removed"), "{out}");
    lab.assert_gone();
    let again = lab.ok(&["lab", "down", "--name", &lab.name]);
    assert!(
        again.contains("0 process(es) stopped, 0 namespace(s) removed"),
        "{again}"
    );
}

#[test]
fn lab_up_in_foreground_tears_down_on_sigterm() {
    let _bins = require_lab!();
    let lab = TestLab::new();
    let mut child = lab
        .cmd()
        .args(["lab", "up", "--guests", "1", "--name", &lab.name])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        let done = line.contains("is up; Ctrl-C");
        lines.push(line);
        if done {
            break;
        }
    }
    assert!(
        lines.iter().any(|l| l.contains("all steps PASS")),
        "{lines:#?}"
    );
    assert!(!lab_support::lab_pids(&lab.name).is_empty());
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    lab.assert_gone();
}

#[test]
fn lab_up_refuses_an_existing_lab_and_bad_names() {
    let _bins = require_lab!();
    let lab = TestLab::new();
    lab.up_detached(1);
    let again = lab.run(&["lab", "up", "--detach", "--name", &lab.name]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    // The running lab was not disturbed.
    assert!(lab.ping("guest1", "198.51.100.1"));
    let bad = lab.run(&["lab", "up", "--detach", "--name", "Bad-Name"]);
    assert_eq!(bad.status.code(), Some(2));
    lab.ok(&["lab", "down", "--name", &lab.name]);
    lab.assert_gone();
}
