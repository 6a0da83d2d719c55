//! Shared helpers of the `lab_*` integration tests: run the real `drvdom`
//! binary against real namespaces, each test with its own lab name and
//! its own lab root directory. Links and pings go through crate `sim`'s
//! own netlink and ICMP code: the tests need neither `ip` nor `ping`.
//!
//! The lab needs `drvdom-xenstored`, `drvdom-agent` and `drvdom-simkernel`
//! built beforehand (`cargo build --workspace`, as `.ci/run` does): they
//! are looked up next to `target/<profile>/drvdom`. Tests never build them.

#![allow(dead_code)] // each test file uses a subset
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)] // test helpers: failing loudly is the point

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

pub use sim::link::LinkView;

/// The drvdom binary under test.
pub fn drvdom() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_drvdom"))
}

/// The lab's other programs next to it, if built.
pub fn sibling_bins() -> Option<Vec<PathBuf>> {
    let dir = drvdom().parent()?.to_path_buf();
    let all: Vec<PathBuf> = ["drvdom-xenstored", "drvdom-agent", "drvdom-simkernel"]
        .iter()
        .map(|n| dir.join(n))
        .collect();
    all.iter().all(|p| p.is_file()).then_some(all)
}

/// Skip (or fail under DRVDOM_REQUIRE_ROOT_TESTS=1) unless root and the
/// sibling binaries exist.
#[macro_export]
macro_rules! require_lab {
    () => {{
        testutil::require_root!();
        match lab_support::sibling_bins() {
            Some(b) => b,
            None => {
                testutil::skip(
                    module_path!(),
                    "needs drvdom-xenstored, drvdom-agent and drvdom-simkernel next to the \
                     drvdom test binary (run `cargo build --workspace` first)",
                );
                return;
            }
        }
    }};
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
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

    /// `lab up --detach --json` with extra arguments: the parsed report;
    /// asserts success.
    pub fn up_detached_with(&self, extra: &[&str]) -> serde_json::Value {
        let mut args = vec!["lab", "up", "--detach", "--json", "--lab", &self.name];
        args.extend_from_slice(extra);
        let out = self.ok(&args);
        let v = fold(&out);
        assert_eq!(v["ok"], true, "lab up failed: {v:#}");
        v
    }

    /// `lab up --detach --json --guests N`.
    pub fn up_detached(&self, guests: u16) -> serde_json::Value {
        let g = guests.to_string();
        self.up_detached_with(&["--guests", &g])
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

    /// Pid of the process with `role` (`agent-netdd`, `xenstored`, or a
    /// bare `agent`/`netback` for the only one).
    pub fn pid_of(&self, role: &str) -> i32 {
        let st = self.state();
        let procs = st["procs"].as_array().unwrap();
        let prefix = format!("{role}-");
        let found: Vec<&serde_json::Value> = procs
            .iter()
            .filter(|p| p["role"] == role || p["role"].as_str().unwrap().starts_with(&prefix))
            .collect();
        assert_eq!(found.len(), 1, "process {role} in {procs:#?}");
        i32::try_from(found[0]["pid"].as_i64().unwrap()).unwrap()
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

    /// An ICMP echo from `from`'s namespace to `ip` answered (within 3 s)?
    pub fn ping(&self, from: &str, ip: &str) -> bool {
        let ns = sim::netns::ns_path(&self.ns(from));
        let ip: IpAddr = ip.parse().unwrap();
        rt().block_on(sim::icmp::echo(&ns, ip, Duration::from_secs(3)))
            .unwrap()
            .is_some()
    }

    /// Links in a domain's namespace.
    pub fn links(&self, domain: &str) -> Vec<LinkView> {
        let ns = sim::netns::ns_path(&self.ns(domain));
        rt().block_on(sim::link::list_in(&ns)).unwrap()
    }

    /// The link `name` in a domain's namespace.
    pub fn link(&self, domain: &str, name: &str) -> Option<LinkView> {
        self.links(domain).into_iter().find(|l| l.name == name)
    }

    /// Ports of bridge `br` in a domain's namespace, sorted.
    pub fn bridge_ports(&self, domain: &str, br: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .links(domain)
            .into_iter()
            .filter(|l| l.master.as_deref() == Some(br))
            .map(|l| l.name)
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
        let _ = self.run(&["lab", "down", "--lab", &self.name]);
    }
}

/// Pids whose environment carries `DRVDOM_LAB=<name>`.
pub fn lab_pids(name: &str) -> Vec<i32> {
    sim::lab::procs_of(name)
}

/// No namespace, process or state of lab `name` remains: its directory
/// is gone or holds only the kept logs.
pub fn assert_no_leftovers(name: &str, dir: &Path) {
    let ns = sim::netns::list_with_prefix(&sim::netns::lab_prefix(name)).unwrap();
    assert!(ns.is_empty(), "namespaces left: {ns:?}");
    let pids = lab_pids(name);
    assert!(pids.is_empty(), "processes left: {pids:?}");
    if dir.exists() {
        let left: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            left,
            ["logs"],
            "lab directory {} holds more than its logs",
            dir.display()
        );
    }
}

/// Fold the JSON Lines of `lab up --json` (one `drvdom/lab-up-event/1`
/// object per line) into one report: `actions`, `checks`, `exited`, and
/// the `done` event's fields (`ok`, `passed`, `failed`, ...).
pub fn fold(out: &str) -> serde_json::Value {
    let mut actions = Vec::new();
    let mut checks = Vec::new();
    let mut exited = Vec::new();
    let mut done = serde_json::Map::new();
    for line in out.lines().filter(|l| !l.trim().is_empty()) {
        let e: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {line}"));
        assert!(line.starts_with(r#"{"schema":"#), "schema first: {line}");
        if e["schema"] == "drvdom/error/1" {
            done.insert("ok".into(), false.into());
            done.insert("error".into(), e["error"].clone());
            continue;
        }
        assert_eq!(e["schema"], "drvdom/lab-up-event/1", "{line}");
        match e["event"].as_str().unwrap_or("") {
            "action" => actions.push(e),
            "check" => checks.push(e),
            "exited" => exited.push(e),
            "done" => {
                for (k, v) in e.as_object().unwrap() {
                    done.insert(k.clone(), v.clone());
                }
            }
            _ => {}
        }
    }
    done.insert("actions".into(), actions.into());
    done.insert("checks".into(), checks.into());
    done.insert("exited".into(), exited.into());
    serde_json::Value::Object(done)
}

/// Poll helper with a generous default for the lab.
pub fn wait(what: &str, cond: impl FnMut() -> bool) {
    testutil::wait_until(what, Duration::from_secs(20), cond);
}

/// The checks of a `lab up --json` report with name `check`.
pub fn checks<'a>(v: &'a serde_json::Value, check: &str) -> Vec<&'a serde_json::Value> {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["check"] == check)
        .collect()
}

/// Every check and action of a `lab up --json` report passed.
pub fn assert_all_pass(v: &serde_json::Value) {
    for a in v["actions"].as_array().unwrap() {
        assert_eq!(a["ok"], true, "action failed: {a:#}");
    }
    let checks = v["checks"].as_array().unwrap();
    assert!(!checks.is_empty(), "no checks: {v:#}");
    for c in checks {
        assert_eq!(c["status"], "pass", "check failed: {c:#}");
    }
    assert_eq!(v["failed"], 0, "{v:#}");
}
