//! Shared helpers of the `lab_*` integration tests: run the real `drvdom`
//! binary against real namespaces, each test with its own lab name and
//! its own lab root directory.
//!
//! The lab needs `drvdom-xenstored` and `drvdom-agent` built beforehand
//! (`cargo build --workspace`, as `.ci/run` does): they are looked up next
//! to `target/<profile>/drvdom`. Tests never build them.

#![allow(dead_code)] // each test file uses a subset
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)] // test helpers: failing loudly is the point

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// The drvdom binary under test.
pub fn drvdom() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_drvdom"))
}

/// `drvdom-xenstored` and `drvdom-agent` next to it, if built.
pub fn sibling_bins() -> Option<(PathBuf, PathBuf)> {
    let dir = drvdom().parent()?.to_path_buf();
    let xs = dir.join("drvdom-xenstored");
    let agent = dir.join("drvdom-agent");
    (xs.is_file() && agent.is_file()).then_some((xs, agent))
}

/// Skip (or fail under DRVDOM_REQUIRE_ROOT_TESTS=1) unless root and the
/// sibling binaries exist.
#[macro_export]
macro_rules! require_lab {
    () => {{
        testutil::require_root!();
        let _ping = testutil::require_cmd!("ping");
        let _ip = testutil::require_cmd!("ip");
        match lab_support::sibling_bins() {
            Some(b) => b,
            None => {
                testutil::skip(
                    module_path!(),
                    "needs drvdom-xenstored and drvdom-agent next to the drvdom test binary \
                     (run `cargo build --workspace` first)",
                );
                return;
            }
        }
    }};
}

/// One lab for one test: unique name, private root, torn down on drop.
pub struct TestLab {
    /// Lab name.
    pub name: String,
    /// Root directory (DRVDOM_LAB_ROOT).
    pub root: tempfile::TempDir,
}

impl TestLab {
    /// A fresh name and root.
    pub fn new() -> TestLab {
        let name = testutil::unique_name("l");
        assert!(name.len() <= 12, "lab name {name} too long");
        TestLab {
            name,
            root: tempfile::Builder::new()
                .prefix("dl")
                .tempdir_in("/tmp")
                .unwrap(),
        }
    }

    /// A `drvdom` command with this lab's root in its environment.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(drvdom());
        c.env("DRVDOM_LAB_ROOT", self.root.path());
        c
    }

    /// Run `drvdom args...` to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    /// Run and require exit code 0; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "drvdom {args:?} failed: {}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `lab up --detach --json`: the parsed report; asserts success.
    pub fn up_detached(&self, guests: u16) -> serde_json::Value {
        let g = guests.to_string();
        let out = self.ok(&[
            "lab", "up", "--detach", "--json", "--guests", &g, "--name", &self.name,
        ]);
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(v["ok"], true, "lab up failed: {v:#}");
        v
    }

    /// The lab's directory.
    pub fn dir(&self) -> PathBuf {
        self.root.path().join(&self.name)
    }

    /// The parsed state file.
    pub fn state(&self) -> serde_json::Value {
        let text = std::fs::read(self.dir().join("state.json")).unwrap();
        serde_json::from_slice(&text).unwrap()
    }

    /// Pid of the process with `role` (`agent`, `netback`, ...).
    pub fn pid_of(&self, role: &str) -> i32 {
        let st = self.state();
        let procs = st["procs"].as_array().unwrap();
        let p = procs
            .iter()
            .find(|p| p["role"] == role)
            .unwrap_or_else(|| panic!("no {role}"));
        i32::try_from(p["pid"].as_i64().unwrap()).unwrap()
    }

    /// The socket through which domain `domid` talks to xenstored.
    pub fn socket_of(&self, domid: u16) -> PathBuf {
        if domid == 0 {
            self.dir().join("xenstored.sock")
        } else {
            self.dir().join("sockets").join(format!("{domid}.sock"))
        }
    }

    /// Namespace name of domain `domain`.
    pub fn ns(&self, domain: &str) -> String {
        format!("drvdom-{}-{domain}", self.name)
    }

    /// `ip netns exec <guest ns> ping -c1 -W2 <ip>` succeeded?
    pub fn ping(&self, from: &str, ip: &str) -> bool {
        Command::new("ip")
            .args(["netns", "exec", &self.ns(from), "ping", "-c1", "-W2", ip])
            .output()
            .unwrap()
            .status
            .success()
    }

    /// Link names in a domain's namespace.
    pub fn links(&self, domain: &str) -> Vec<serde_json::Value> {
        let out = Command::new("ip")
            .args(["-n", &self.ns(domain), "-json", "-details", "link", "show"])
            .output()
            .unwrap();
        assert!(out.status.success());
        serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).unwrap()
    }

    /// Ports of bridge `br` in a domain's namespace.
    pub fn bridge_ports(&self, domain: &str, br: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .links(domain)
            .iter()
            .filter(|l| l["master"] == br)
            .map(|l| l["ifname"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    }

    /// Assert that nothing of this lab is left: namespaces, processes,
    /// state directory.
    pub fn assert_gone(&self) {
        assert_no_leftovers(&self.name, &self.dir());
    }
}

impl Drop for TestLab {
    fn drop(&mut self) {
        // Best effort, so that a failed assertion does not leak a lab.
        // DRVDOM_TEST_KEEP_LAB=1 keeps it (and its logs) for debugging.
        if std::env::var_os("DRVDOM_TEST_KEEP_LAB").is_some() {
            let root = std::mem::replace(&mut self.root, tempfile::tempdir().unwrap());
            eprintln!("keeping lab {} under {}", self.name, root.keep().display());
            return;
        }
        let _ = self.run(&["lab", "down", "--name", &self.name]);
    }
}

/// Pids whose environment carries `DRVDOM_LAB=<name>`.
pub fn lab_pids(name: &str) -> Vec<i32> {
    let want = format!("DRVDOM_LAB={name}");
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                s.rsplit_once(')')
                    .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
            })
            .unwrap_or(true);
        if !zombie && env.split(|b| *b == 0).any(|kv| kv == want.as_bytes()) {
            out.push(pid);
        }
    }
    out
}

/// No namespace, process or directory of lab `name` remains.
pub fn assert_no_leftovers(name: &str, dir: &Path) {
    let prefix = format!("drvdom-{name}-");
    let ns: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default();
    assert!(ns.is_empty(), "namespaces left: {ns:?}");
    let pids = lab_pids(name);
    assert!(pids.is_empty(), "processes left: {pids:?}");
    assert!(!dir.exists(), "lab directory left: {}", dir.display());
}

/// Poll helper with a generous default for the lab.
pub fn wait(what: &str, cond: impl FnMut() -> bool) {
    testutil::wait_until(what, Duration::from_secs(20), cond);
}
