//! Starting the servers under test, and the raw echo server that marks the
//! speed limit of a synchronous round trip over a unix socket.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use xenstore::wire::{HEADER_LEN, Header, MsgType, Packet};

/// What kind of server a run talks to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// drvdom-xenstored.
    Ours,
    /// Debian's C xenstored 4.17.
    Cx,
    /// Debian's OCaml oxenstored 4.17.
    Ox,
    /// The raw echo server.
    Echo,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Ours => "drvdom",
            Kind::Cx => "cxenstored",
            Kind::Ox => "oxenstored",
            Kind::Echo => "echo",
        }
    }
}

/// A tool the server runs under (for the cost figures).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wrap {
    /// Run it as it is.
    None,
    /// valgrind's callgrind, output in this file (`%p` becomes the pid).
    Callgrind(PathBuf),
    /// `strace -c -f`, summary in this file.
    Strace(PathBuf),
}

impl Wrap {
    fn argv(&self) -> Vec<String> {
        match self {
            Wrap::None => Vec::new(),
            Wrap::Callgrind(f) => vec![
                "valgrind".into(),
                "--tool=callgrind".into(),
                "--quiet".into(),
                format!("--callgrind-out-file={}", f.display()),
            ],
            Wrap::Strace(f) => vec![
                "strace".into(),
                "-c".into(),
                "-f".into(),
                "-o".into(),
                f.display().to_string(),
            ],
        }
    }
}

pub struct Server {
    pub kind: Kind,
    pub socket: PathBuf,
    /// Directory where domain sockets appear (ours only).
    pub domain_dir: Option<PathBuf>,
    /// The process we started (the wrapper, if any).
    pub pid: u32,
    wrap: Wrap,
    child: Option<Child>,
    _dir: TempDir,
}

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Result<TempDir> {
        let base = std::env::temp_dir();
        for i in 0..1000u32 {
            let p = base.join(format!("xsbench-{tag}-{}-{i}", std::process::id()));
            if std::fs::create_dir(&p).is_ok() {
                return Ok(TempDir(p));
            }
        }
        bail!("cannot create a scratch directory in {}", base.display())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn wait_socket(p: &Path, child: &mut Option<Child>, what: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if UnixStream::connect(p).is_ok() {
            return Ok(());
        }
        if let Some(c) = child.as_mut() {
            if let Some(st) = c.try_wait()? {
                bail!("{what} exited ({st}) before listening on {}", p.display());
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("{what} did not listen on {} within 60 s", p.display())
}

/// Find `drvdom-xenstored`: env, then next to this binary.
fn ours_binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("DRVDOM_XENSTORED_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    let cand = exe.with_file_name("drvdom-xenstored");
    if cand.exists() {
        return Ok(cand);
    }
    bail!(
        "drvdom-xenstored not found next to {} (build it: cargo build --release -p xenstored, or set DRVDOM_XENSTORED_BIN)",
        exe.display()
    )
}

/// The repository's peer kit (peers/xenstored), found from the source tree.
pub fn peer_kit() -> PathBuf {
    if let Some(p) = std::env::var_os("DRVDOM_PEER_KIT") {
        return PathBuf::from(p);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../peers/xenstored")
}

/// True if Debian's reference daemons are installed.
pub fn peers_installed() -> bool {
    Path::new("/usr/lib/xen-4.17/bin/xenstored").exists()
        && Path::new("/usr/lib/xen-4.17/bin/oxenstored").exists()
}

impl Server {
    pub fn start(kind: Kind, extra: &[String]) -> Result<Server> {
        Server::start_wrapped(kind, extra, Wrap::None)
    }

    /// Start `kind` under `wrap` (valgrind or strace): our server directly,
    /// the peers through their start scripts' `XS_WRAP` hook.
    pub fn start_wrapped(kind: Kind, extra: &[String], wrap: Wrap) -> Result<Server> {
        let dir = TempDir::new(kind.name())?;
        let socket = dir.0.join("socket");
        let mut domain_dir = None;
        let mut cmd = match kind {
            Kind::Echo => {
                // A separate process, like the real servers.
                let mut c = Command::new(std::env::current_exe()?);
                c.arg("--serve-echo").arg(&socket);
                c
            }
            Kind::Ours => {
                let dd = dir.0.join("domains");
                std::fs::create_dir_all(&dd)?;
                let argv = wrap.argv();
                let mut c = match argv.split_first() {
                    Some((prog, args)) => {
                        let mut c = Command::new(prog);
                        c.args(args).arg(ours_binary()?);
                        c
                    }
                    None => Command::new(ours_binary()?),
                };
                c.arg("--socket")
                    .arg(&socket)
                    .arg("--domain-socket-dir")
                    .arg(&dd);
                domain_dir = Some(dd);
                c
            }
            Kind::Cx | Kind::Ox => {
                let script = peer_kit().join(if kind == Kind::Cx {
                    "start-cxenstored.sh"
                } else {
                    "start-oxenstored.sh"
                });
                let mut c = Command::new("bash");
                c.arg(script).arg("-f").arg(&dir.0);
                if wrap != Wrap::None {
                    c.env("XS_WRAP", wrap.argv().join(" "));
                }
                c
            }
        };
        cmd.args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(
                dir.0.join("server.log"),
            )?));
        let child = cmd
            .spawn()
            .with_context(|| format!("start {}", kind.name()))?;
        let pid = child.id();
        let mut child = Some(child);
        // valgrind starts slowly: give every server the same generous wait
        wait_socket(&socket, &mut child, kind.name())?;
        Ok(Server {
            kind,
            socket,
            domain_dir,
            pid,
            wrap,
            child,
            _dir: dir,
        })
    }

    /// The process that does the serving: the one we started, or (under
    /// strace) the one strace traces.
    pub fn server_pid(&self) -> u32 {
        match self.wrap {
            Wrap::Strace(_) => first_child(self.pid).unwrap_or(self.pid),
            Wrap::None | Wrap::Callgrind(_) => self.pid,
        }
    }

    /// Stop the server and wait for it (its wrapper writes its report on
    /// the server's exit).
    pub fn stop(mut self) -> Result<()> {
        let Some(mut c) = self.child.take() else {
            return Ok(());
        };
        let target = self.server_pid();
        // SAFETY: kill(2) with a pid we started (or its traced child, which
        // lives as long as the wrapper we have not reaped).
        unsafe {
            libc::kill(target as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if c.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        bail!("{} did not stop within 120 s of SIGTERM", self.kind.name())
    }

    /// Resident set size of the server process in KiB.
    pub fn rss_kb(&self) -> Option<u64> {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.server_pid())).ok()?;
        s.lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let target = self.server_pid();
        if let Some(mut c) = self.child.take() {
            // SIGTERM first so the server can clean up, then make sure.
            // SAFETY: kill(2) with a pid we spawned and still own (not
            // reaped), or its traced child (alive while the tracer is).
            unsafe {
                libc::kill(target as libc::pid_t, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The first child of process `pid` (strace's tracee).
fn first_child(pid: u32) -> Option<u32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// Answer every request with the smallest valid reply of the same shape:
/// `OK\0` for writes, a 16-byte value for reads, a decimal id for
/// TRANSACTION_START, and a one-line event per WATCH. This is the cost of
/// the round trip itself, with no store behind it.
pub fn echo_serve(socket: &Path) -> Result<()> {
    let listener = UnixListener::bind(socket)?;
    for stream in listener.incoming() {
        let stream = stream?;
        std::thread::spawn(move || echo_conn(stream));
    }
    Ok(())
}

fn echo_conn(mut s: UnixStream) {
    let mut buf = Vec::with_capacity(65536);
    let mut out = Vec::with_capacity(65536);
    let mut chunk = vec![0u8; 65536];
    loop {
        let n = match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut used = 0;
        while let Some(h) = Header::decode(&buf[used..]) {
            let total = HEADER_LEN + h.len as usize;
            if buf.len() - used < total {
                break;
            }
            let payload: &[u8] = match h.kind() {
                Some(MsgType::Read) => b"0123456789abcdef",
                Some(MsgType::TransactionStart) => b"1\0",
                _ => b"OK\0",
            };
            Packet {
                msg_type: h.msg_type,
                req_id: h.req_id,
                tx_id: h.tx_id,
                payload: payload.to_vec(),
            }
            .encode_into(&mut out);
            used += total;
        }
        buf.drain(..used);
        if !out.is_empty() {
            if s.write_all(&out).is_err() {
                return;
            }
            out.clear();
        }
    }
}

/// Raise the open-file limit to its hard maximum (1,000 connections).
pub fn raise_nofile() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
