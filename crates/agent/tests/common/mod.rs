//! Test harness for the agent: xenstored, a driver-domain netns, the agent
//! process inside it, and a fake netback driven by the test.

#![allow(dead_code)]
// Test-only harness: failing loudly is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

pub mod xsd;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;
use xenbus::BackendPath;
use xenstore::{AsyncClient, DomId};

pub use xsd::Xsd;

/// Run a command, panicking with its stderr on failure; returns stdout.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new() -> Netns {
        let name = testutil::unique_name("dvag");
        sh(&["ip", "netns", "add", &name]);
        sh(&["ip", "-n", &name, "link", "set", "lo", "up"]);
        Netns { name }
    }

    /// `ip -n <ns> <args>`.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut v = vec!["ip", "-n", &self.name];
        v.extend_from_slice(args);
        sh(&v)
    }

    /// Create a bridge, up.
    pub fn bridge(&self, name: &str) {
        self.ip(&["link", "add", name, "type", "bridge"]);
        self.ip(&["link", "set", name, "up"]);
    }

    /// What the fake netback does: create `vif<fe>.<devid>` as a veth (the
    /// peer stays in the namespace, down).
    pub fn netback_vif(&self, bp: &BackendPath) -> String {
        let vif = bp.default_vif_name();
        let peer = format!("p{}x{}", bp.fe.0, bp.devid.0);
        self.ip(&["link", "add", &vif, "type", "veth", "peer", "name", &peer]);
        vif
    }

    /// Parsed `ip -o link show dev <name>`, or None if absent.
    pub fn link(&self, name: &str) -> Option<LinkInfo> {
        let out = Command::new("ip")
            .args(["-n", &self.name, "-o", "link", "show", "dev", name])
            .output()
            .unwrap();
        if !out.status.success() {
            return None;
        }
        Some(LinkInfo::parse(&String::from_utf8_lossy(&out.stdout)))
    }

    /// Names of all links in the namespace.
    pub fn links(&self) -> Vec<String> {
        self.ip(&["-o", "link", "show"])
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap().to_string())
            .collect()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// The bits of a link the tests check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub mtu: u32,
    pub master: Option<String>,
    pub mac: String,
    pub up: bool,
}

impl LinkInfo {
    fn parse(line: &str) -> LinkInfo {
        let toks: Vec<&str> = line.split_whitespace().collect();
        let after = |k: &str| {
            toks.iter()
                .position(|t| *t == k)
                .map(|i| toks[i + 1].to_string())
        };
        let flags = toks
            .iter()
            .find(|t| t.starts_with('<'))
            .copied()
            .unwrap_or("");
        LinkInfo {
            mtu: after("mtu").unwrap().parse().unwrap(),
            master: after("master"),
            mac: after("link/ether").unwrap_or_default(),
            up: flags
                .trim_matches(|c| c == '<' || c == '>')
                .split(',')
                .any(|f| f == "UP"),
        }
    }
}

/// Path of the agent binary under test.
pub fn agent_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_drvdom-agent"))
}

/// A running `drvdom-agent` inside a netns; killed on drop; its log is
/// printed if the test fails.
pub struct AgentProc {
    pub child: Child,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl AgentProc {
    /// Start `ip netns exec <ns> drvdom-agent --xenstore <sock> <extra...>`.
    pub fn start(ns: &Netns, sock: &Path, extra: &[&str]) -> AgentProc {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("agent.log");
        let f = std::fs::File::create(&log).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name])
            .arg(agent_bin())
            .arg("--xenstore")
            .arg(sock)
            .args(extra)
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(f)
            .spawn()
            .unwrap();
        AgentProc {
            child,
            log,
            _dir: dir,
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("DRVDOM_TEST_SHOW_AGENT_LOG").is_some() {
            eprintln!(
                "---- agent log ----\n{}\n-------------------",
                self.log_text()
            );
        }
        self.kill9();
    }
}

/// Wait (watch-driven) until `path` holds a value satisfying `ok`.
pub async fn wait_value(
    c: &AsyncClient,
    path: &str,
    timeout: Duration,
    ok: impl Fn(Option<&[u8]>) -> bool,
) -> Option<Vec<u8>> {
    let deadline = Instant::now() + timeout;
    let mut w = c.watch(path, &xenbus::unique_token("test")).await.unwrap();
    loop {
        let v = c.read_opt(path).await.unwrap();
        if ok(v.as_deref()) {
            return v;
        }
        match tokio::time::timeout_at(deadline, w.recv()).await {
            Ok(Some(Ok(_))) => {}
            Ok(other) => panic!("watch on {path} ended: {other:?}"),
            Err(_) => panic!(
                "timed out after {timeout:?} waiting on {path} (last: {:?})",
                v.map(|b| String::from_utf8_lossy(&b).into_owned())
            ),
        }
    }
}

/// Wait for `hotplug-status` = `want` of a device; returns it.
pub async fn wait_hotplug(c: &AsyncClient, bp: &BackendPath, want: &str) {
    let want = want.as_bytes().to_vec();
    wait_value(c, &bp.key("hotplug-status"), Duration::from_secs(30), |v| {
        v == Some(&want[..])
    })
    .await;
}

/// Driver domain id used by the tests.
pub const BE: DomId = DomId(1);

/// Server + domains: the driver domain (1) and guests `guests`.
pub async fn world(guests: &[u16]) -> (Xsd, AsyncClient, AsyncClient) {
    world_with(guests, &[]).await
}

/// [`world`] with extra server arguments.
pub async fn world_with(guests: &[u16], server_args: &[&str]) -> (Xsd, AsyncClient, AsyncClient) {
    let xsd = Xsd::start_with(server_args);
    let c = xsd.dom0().await;
    xsd.create_domain(&c, BE, "drv", true).await;
    for g in guests {
        xsd.create_domain(&c, DomId(*g), &format!("guest{g}"), false)
            .await;
    }
    let drv = xsd.as_domain(BE).await;
    (xsd, c, drv)
}

/// Resident set size of a process, in KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap()
}
