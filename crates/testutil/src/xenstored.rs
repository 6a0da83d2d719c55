//! A real `drvdom-xenstored` for tests, in a temp dir, killed on drop.
//!
//! The server binary is found, in order, at `$DRVDOM_XENSTORED_BIN`, next to
//! the running test's target dir (`<target>/<profile>/drvdom-xenstored`,
//! which `cargo test --workspace` builds), or built on demand with
//! `cargo build -p xenstored` into `<target>/xenstored-for-tests` (a separate
//! target dir, so it never waits on the lock of the running `cargo test`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// Path of the `drvdom-xenstored` binary (see the module doc).
pub fn xenstored_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("DRVDOM_XENSTORED_BIN") {
            return PathBuf::from(p);
        }
        let exe = std::env::current_exe().expect("current test executable");
        // <target>/<profile>/deps/<test-exe>
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test executable lives in <target>/<profile>/deps");
        let beside = profile_dir.join("drvdom-xenstored");
        if beside.exists() {
            return beside;
        }
        let target = profile_dir
            .parent()
            .expect("target dir")
            .join("xenstored-for-tests");
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
            ])
            .arg("--manifest-path")
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

/// A running `drvdom-xenstored`, killed on drop.
pub struct Xenstored {
    _dir: tempfile::TempDir,
    child: Child,
    /// The dom0 socket.
    pub socket: PathBuf,
    /// Where domain sockets (`<domid>.sock`) appear on INTRODUCE.
    pub domdir: PathBuf,
}

impl Xenstored {
    /// Start a server with default quotas and wait until it listens.
    pub fn start() -> Xenstored {
        Xenstored::start_with(&[])
    }

    /// Start a server with extra arguments (e.g. quotas).
    pub fn start_with(extra: &[&str]) -> Xenstored {
        let dir = tempfile::tempdir().expect("temp dir");
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
        crate::wait_until("drvdom-xenstored socket", Duration::from_secs(20), || {
            std::os::unix::net::UnixStream::connect(&s).is_ok()
        });
        Xenstored {
            _dir: dir,
            child,
            socket,
            domdir,
        }
    }

    /// The socket domain `domid` connects on (exists once introduced).
    pub fn domain_socket(&self, domid: u16) -> PathBuf {
        self.domdir.join(format!("{domid}.sock"))
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Xenstored {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
