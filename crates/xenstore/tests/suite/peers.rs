//! Starting xenstore servers for the client suite: Debian's Xen 4.17
//! `cxenstored` and `oxenstored` (under the LD_PRELOAD shim from
//! `peers/xenstored/xsshim.c` at the repository root) and our own `drvdom-xenstored`. Each server runs
//! in the foreground on a socket in a fresh `TempDir` and is killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// Where Debian's xen-utils-4.17 puts the daemons.
pub const XEN_BIN: &str = "/usr/lib/xen-4.17/bin";

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Xen's C xenstored 4.17.
    Cx,
    /// Xen's OCaml oxenstored 4.17.
    Ox,
    /// Ours (`drvdom-xenstored`).
    Drvdom,
}

/// A running server.
pub struct Server {
    pub kind: Kind,
    child: Child,
    socket: PathBuf,
    dir: tempfile::TempDir,
}

impl Server {
    /// Its socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Compile the shim once per test process (into Cargo's test temp dir).
fn shim() -> PathBuf {
    static SHIM: OnceLock<PathBuf> = OnceLock::new();
    SHIM.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../peers/xenstored/xsshim.c");
        let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let out = out_dir.join("xsshim.so");
        let tmp = out_dir.join(format!("xsshim.so.{}", std::process::id()));
        let st = Command::new("cc")
            .args(["-O2", "-Wall", "-shared", "-fPIC", "-o"])
            .arg(&tmp)
            .arg(&src)
            .arg("-ldl")
            .status()
            .expect("run cc");
        assert!(st.success(), "building {} failed", src.display());
        std::fs::rename(&tmp, &out).expect("install xsshim.so");
        out
    })
    .clone()
}

fn drvdom_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("DRVDOM_XENSTORED_BIN") {
        return Some(p.into());
    }
    // cargo test --workspace builds the binary next to the test's deps dir.
    let exe = std::env::current_exe().ok()?;
    let cand = exe.parent()?.parent()?.join("drvdom-xenstored");
    cand.exists().then_some(cand)
}

/// Start a server of `kind`, or report a skip (a failure under
/// `DRVDOM_REQUIRE_ROOT_TESTS=1`) and return `None` if it is not installed.
pub fn start(kind: Kind, test: &str) -> Option<Server> {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("socket");
    let log = std::fs::File::create(dir.path().join("server.log")).expect("log file");
    let mut cmd = match kind {
        Kind::Cx | Kind::Ox => {
            let prog = if kind == Kind::Cx {
                "xenstored"
            } else {
                "oxenstored"
            };
            let bin = Path::new(XEN_BIN).join(prog);
            if testutil::find_program(bin.to_str()?).is_none() {
                testutil::skip(
                    test,
                    &format!("needs {} (Debian xen-utils-4.17)", bin.display()),
                );
                return None;
            }
            if testutil::find_program("cc").is_none() {
                testutil::skip(test, "needs cc (gcc) to build the xsshim preload library");
                return None;
            }
            let mut cmd = Command::new(bin);
            cmd.env("LD_PRELOAD", shim())
                .env("XS_SHIM_RUNDIR", dir.path())
                .env("XENSTORED_RUNDIR", dir.path())
                .env("XENSTORED_PATH", &socket)
                // domains cx treats as existing (for SET_PERMS owners/ACLs)
                .env("XS_SHIM_DOMAINS", "0,1,2,3,4,5,6,7");
            if kind == Kind::Cx {
                // -N: foreground. Never -D: 4.17 crashes with it.
                cmd.arg("-N");
            } else {
                let conf = dir.path().join("oxenstored.conf");
                std::fs::write(&conf, ox_config(dir.path())).expect("write oxenstored.conf");
                cmd.args([
                    "--no-fork",
                    "--no-domain-init",
                    "--no-access-log",
                    "--config-file",
                ])
                .arg(&conf);
            }
            cmd
        }
        Kind::Drvdom => {
            let Some(bin) = drvdom_bin() else {
                testutil::skip(
                    test,
                    "needs drvdom-xenstored (set DRVDOM_XENSTORED_BIN or build the workspace)",
                );
                return None;
            };
            let mut cmd = Command::new(bin);
            cmd.arg("--socket").arg(&socket);
            cmd
        }
    };
    let child = cmd
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("dup log"))
        .stderr(log)
        .spawn()
        .expect("spawn xenstore server");
    let mut server = Server {
        kind,
        child,
        socket,
        dir,
    };
    let mut exited = None;
    testutil::wait_until(
        &format!("{kind:?} server accepting on {}", server.socket.display()),
        Duration::from_secs(20),
        || {
            if let Ok(Some(st)) = server.child.try_wait() {
                exited = Some(st);
                return true;
            }
            std::os::unix::net::UnixStream::connect(&server.socket).is_ok()
        },
    );
    if let Some(st) = exited {
        panic!(
            "{kind:?} server exited ({st}) during start-up:\n{}",
            server.log()
        );
    }
    Some(server)
}

/// oxenstored's settings: Debian's defaults, files in `dir`.
fn ox_config(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "pid-file = {d}/oxenstored.pid
test-eagain = false
merge-activate = true
conflict-burst-limit = 5.0
conflict-max-history-seconds = 0.05
conflict-rate-limit-is-aggregate = true
perms-activate = true
perms-watch-activate = true
quota-activate = true
quota-maxentity = 1000
quota-maxsize = 2048
quota-maxwatch = 100
quota-transaction = 10
quota-maxrequests = 1024
quota-path-max = 1024
quota-maxoutstanding = 1024
quota-maxwatchevents = 1024
persistent = false
xenstored-log-file = {d}/xenstored.log
xenstored-log-level = warn
access-log-file = {d}/access.log
xenstored-kva = /proc/xen/xsd_kva
xenstored-port = /proc/xen/xsd_port
"
    )
}
