//! `drvdom lab up/down/status`: the whole simulated host, as root, with
//! real namespaces and real packets, applied and verified by the
//! toolstack.

mod lab_support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use lab_support::{TestLab, assert_all_pass, checks};

/// Every kind of check the seed scenario must pass, with how many.
const SEED_CHECKS: &[(&str, usize)] = &[
    ("domain-running", 3),
    ("nic-pciback", 1),
    ("nic-passed-through", 1),
    ("nic-visible", 1),
    ("agent-ready", 1),
    ("bridge", 1),
    ("name-readable", 2),
    ("vif-connected", 2),
    ("vif-on-bridge", 2),
    ("ping", 1),
    ("ping-outside", 2),
];

#[test]
fn lab_up_once_passes_every_check_and_leaves_nothing() {
    let _bins = require_lab!();
    let lab = TestLab::new();
    let out = lab.ok(&["lab", "up", "--once", "--json", "--lab", &lab.name]);
    let v = lab_support::fold(&out);
    assert_eq!(v["ok"], true, "{v:#}");
    assert_all_pass(&v);
    for (check, n) in SEED_CHECKS {
        assert_eq!(checks(&v, check).len(), *n, "{check}: {v:#}");
    }
    // The actions a fresh host needs, in order.
    let kinds: Vec<&str> = v["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(kinds.len(), 9, "{kinds:?}");
    // The brctl view of the driver domain, from dom0: the NIC and both
    // guests' vifs on xenbr0.
    let br = checks(&v, "bridge")[0]["detail"].as_str().unwrap();
    assert!(br.contains("uplink nic0"), "{br}");
    assert!(br.contains("guest1") && br.contains("guest2"), "{br}");
    lab.assert_gone();
}

#[test]
fn lab_up_text_output_marks_checks_pass() {
    let _bins = require_lab!();
    let lab = TestLab::new();
    let out = lab.ok(&["lab", "up", "--once", "--guests", "1", "--lab", &lab.name]);
    for step in [
        "nic-pciback",
        "agent-ready",
        "vif-on-bridge",
        "ping-outside",
    ] {
        assert!(
            out.lines()
                .any(|l| l.starts_with("PASS") && l.contains(step)),
            "no PASS line for {step}:\n{out}"
        );
    }
    assert!(
        out.lines()
            .any(|l| l.starts_with("ok") && l.contains("create guest1")),
        "{out}"
    );
    assert!(!out.contains("FAIL"), "{out}");
    assert!(out.contains("checks PASS"), "{out}");
    lab.assert_gone();
}

#[test]
fn lab_down_cleans_up_after_crashed_parts_and_is_idempotent() {
    let _bins = require_lab!();
    let lab = TestLab::new();
    lab.up_detached(2);
    let status = lab.ok(&["lab", "status", "--json", "--lab", &lab.name]);
    let st: serde_json::Value = serde_json::from_str(&status).unwrap();
    let domains = st["domains"].as_array().unwrap();
    assert_eq!(domains.len(), 4, "{st:#}");
    let g1 = domains.iter().find(|d| d["name"] == "guest1").unwrap();
    assert_eq!(g1["vifs"][0]["frontend_state"], "Connected");
    assert_eq!(g1["vifs"][0]["backend_state"], "Connected");
    assert_eq!(g1["vifs"][0]["hotplug_status"], "connected");
    assert!(
        st["processes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["alive"] == true),
        "{st:#}"
    );

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
    let out = lab.ok(&["lab", "down", "--lab", &lab.name]);
    assert!(out.contains("namespace(s) removed"), "{out}");
    lab.assert_gone();
    // A lab that no longer exists: an error naming it (exit 2); --name
    // is still accepted as a hidden alias.
    let again = lab.run(&["lab", "down", "--name", &lab.name]);
    assert_eq!(again.status.code(), Some(2), "{again:?}");
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("no running lab"), "{err}");
    // --purge removes the kept logs.
    assert!(lab.dir().join("logs").is_dir());
    lab.ok(&["lab", "down", "--purge", "--lab", &lab.name]);
    assert!(!lab.dir().exists());
}

#[test]
fn lab_up_in_foreground_tears_down_on_sigterm() {
    let _bins = require_lab!();
    let lab = TestLab::new();
    let mut child = lab
        .cmd()
        .args(["lab", "up", "--guests", "1", "--lab", &lab.name])
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
        lines.iter().any(|l| l.contains("checks PASS")),
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
    let again = lab.run(&["lab", "up", "--detach", "--lab", &lab.name]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    // The running lab was not disturbed.
    assert!(lab.ping("guest1", "198.51.100.1"));
    let bad = lab.run(&["lab", "up", "--detach", "--lab", "Bad-Name"]);
    assert_eq!(bad.status.code(), Some(2));
    lab.ok(&["lab", "down", "--lab", &lab.name]);
    lab.assert_gone();
}

#[test]
fn lab_up_refuses_a_bad_host_file_and_creates_nothing() {
    let _bins = require_lab!();
    let lab = TestLab::new();
    let file = lab.root.path().join("bad.toml");
    std::fs::write(
        &file,
        "version = 1\n\n[[driver_domain]]\nname = \"netdd\"\n\n[[guest]]\nname = \"web\"\n\n\
         [[guest.vif]]\nbackend = \"nosuchdd\"\n",
    )
    .unwrap();
    let out = lab.run(&[
        "lab",
        "up",
        "--once",
        "--lab",
        &lab.name,
        "--topology",
        file.to_str().unwrap(),
    ]);
    // A host file that was read and has errors exits 1 (docs/json.md).
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:10:11"),
        "file:line:column expected: {err}"
    );
    assert!(err.contains("nothing was changed"), "{err}");
    assert!(err.contains("nosuchdd"), "{err}");
    lab.assert_gone();
}

#[test]
fn lab_seed_prints_the_built_in_host_file() {
    let lab = TestLab::new();
    let out = lab.ok(&["lab", "seed"]);
    assert!(out.contains("name = \"netdd\""), "{out}");
    assert!(out.contains("uplink = \"0000:03:00.0\""), "{out}");
    let three = lab.ok(&["lab", "seed", "--guests", "3"]);
    assert!(
        three.contains("guest3") && three.contains("198.51.100.13/24"),
        "{three}"
    );
}
