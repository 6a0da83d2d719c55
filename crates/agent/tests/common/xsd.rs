//! A real `drvdom-xenstored` in a temp dir (same harness as xenbus's tests).
//!
//! The server binary is found, in order, at `$DRVDOM_XENSTORED_BIN`, next to
//! this test's target dir (`<target>/debug/drvdom-xenstored`, which
//! `cargo test --workspace` builds), or built on demand with
//! `cargo build -p xenstored` into `<target>/xenstored-for-tests` (a separate
//! target dir, so it never waits on the lock of the running `cargo test`).

#![allow(dead_code)]
// Test-only harness: failing loudly is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use xenbus::DomainSpec;
use xenstore::{AsyncClient, DomId};

/// Path of the `drvdom-xenstored` binary (see module doc).
pub fn xenstored_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("DRVDOM_XENSTORED_BIN") {
            return PathBuf::from(p);
        }
        let exe = std::env::current_exe().unwrap();
        // <target>/<profile>/deps/<test-exe>
        let profile_dir = exe.parent().unwrap().parent().unwrap();
        let beside = profile_dir.join("drvdom-xenstored");
        if beside.exists() {
            return beside;
        }
        let target = profile_dir.parent().unwrap().join("xenstored-for-tests");
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let st = Command::new(cargo)
            .args([
                "build",
                "-q",
                "-p",
                "xenstored",
                "--bin",
                "drvdom-xenstored",
                "--manifest-path",
            ])
            .arg(&manifest)
            .arg("--target-dir")
            .arg(&target)
            .status()
            .expect("run cargo build -p xenstored");
        assert!(st.success(), "cargo build -p xenstored failed");
        target.join("debug/drvdom-xenstored")
    })
    .clone()
}

/// A running server, killed on drop.
pub struct Xsd {
    _dir: tempfile::TempDir,
    child: Child,
    /// dom0 socket.
    pub socket: PathBuf,
    /// Domain socket directory.
    pub domdir: PathBuf,
}

impl Xsd {
    /// Start a server and wait for its socket.
    pub fn start() -> Xsd {
        Xsd::start_with(&[])
    }

    /// Start a server with extra arguments (e.g. quotas).
    pub fn start_with(extra: &[&str]) -> Xsd {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("socket");
        let domdir = dir.path().join("domains");
        let child = Command::new(xenstored_bin())
            .arg("--socket")
            .arg(&socket)
            .arg("--domain-socket-dir")
            .arg(&domdir)
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("DRVDOM_XENSTORED_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn drvdom-xenstored");
        let s = socket.clone();
        testutil::wait_until("drvdom-xenstored socket", Duration::from_secs(20), || {
            std::os::unix::net::UnixStream::connect(&s).is_ok()
        });
        Xsd {
            _dir: dir,
            child,
            socket,
            domdir,
        }
    }

    /// Connect as dom0.
    pub async fn dom0(&self) -> AsyncClient {
        AsyncClient::connect(&self.socket).await.unwrap()
    }

    /// Connect as domain `d` (must be introduced).
    pub async fn as_domain(&self, d: DomId) -> AsyncClient {
        AsyncClient::connect(self.domdir.join(format!("{}.sock", d.0)))
            .await
            .unwrap()
    }

    /// Introduce `d` and write its `/local/domain` nodes like xl.
    pub async fn create_domain(&self, c: &AsyncClient, d: DomId, name: &str, driver: bool) {
        c.introduce(d, 0, 0).await.unwrap();
        xenbus::make_domain(c, &DomainSpec::new(d, name).driver_domain(driver))
            .await
            .unwrap();
    }
}

impl Drop for Xsd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
