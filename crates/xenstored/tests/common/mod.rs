//! Shared helpers for the integration tests: start the real binary on a
//! socket in a TempDir, and a raw-protocol client over std's UnixStream.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // test helpers

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use xenstore::XsErrno;
use xenstore::wire::{MsgType, PAYLOAD_MAX, Packet, Request, Response};

/// A running `drvdom-xenstored`, killed on drop.
pub struct Daemon {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub domain_dir: PathBuf,
}

impl Daemon {
    /// Start with a domain socket directory and extra arguments.
    pub fn start(extra: &[&str]) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("socket");
        let domain_dir = dir.path().join("domains");
        let child = Command::new(env!("CARGO_BIN_EXE_drvdom-xenstored"))
            .arg("--socket")
            .arg(&socket)
            .arg("--domain-socket-dir")
            .arg(&domain_dir)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let s = socket.clone();
        testutil::wait_until("xenstored socket accepts", Duration::from_secs(20), || {
            UnixStream::connect(&s).is_ok()
        });
        Daemon {
            child,
            dir,
            socket,
            domain_dir,
        }
    }

    pub fn dom0(&self) -> Raw {
        Raw::connect(&self.socket)
    }

    pub fn domain_socket(&self, domid: u16) -> PathBuf {
        self.domain_dir.join(format!("{domid}.sock"))
    }

    /// Send SIGTERM (through kill(1): no unsafe in tests).
    pub fn terminate(&self) {
        let st = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(st.success());
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw xenstore connection: one request at a time, events kept aside.
pub struct Raw {
    pub s: UnixStream,
    req: u32,
    buf: Vec<u8>,
    pub events: VecDeque<(String, String)>,
}

impl Raw {
    pub fn connect(p: &Path) -> Raw {
        let s = UnixStream::connect(p).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Raw {
            s,
            req: 0,
            buf: Vec::new(),
            events: VecDeque::new(),
        }
    }

    /// Read one packet; `None` on EOF/reset.
    pub fn recv(&mut self) -> Option<Packet> {
        loop {
            if let Some((p, n)) = Packet::decode(&self.buf, usize::MAX).unwrap() {
                self.buf.drain(..n);
                return Some(p);
            }
            let mut chunk = [0u8; 65536];
            match self.s.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    pub fn send(&mut self, r: &Request, tx: u32) -> u32 {
        self.req += 1;
        self.s
            .write_all(&r.to_packet(self.req, tx).encode())
            .unwrap();
        self.req
    }

    pub fn rpc_tx(&mut self, r: Request, tx: u32) -> Response {
        let kind = r.to_packet(0, 0).kind().unwrap();
        let id = self.send(&r, tx);
        loop {
            let p = self
                .recv()
                .expect("connection closed while waiting for a reply");
            match Response::decode(p.msg_type, kind, &p.payload).unwrap() {
                Response::WatchEvent { path, token } => self.events.push_back((path, token)),
                other => {
                    assert_eq!(p.req_id, id);
                    return other;
                }
            }
        }
    }

    /// Like `rpc`, but `None` if the server closed the connection.
    pub fn rpc_checked(&mut self, r: Request) -> Option<Response> {
        let kind = r.to_packet(0, 0).kind().unwrap();
        self.req += 1;
        if self
            .s
            .write_all(&r.to_packet(self.req, 0).encode())
            .is_err()
        {
            return None;
        }
        loop {
            let p = self.recv()?;
            match Response::decode(p.msg_type, kind, &p.payload).unwrap() {
                Response::WatchEvent { path, token } => self.events.push_back((path, token)),
                other => return Some(other),
            }
        }
    }

    pub fn rpc(&mut self, r: Request) -> Response {
        self.rpc_tx(r, 0)
    }

    pub fn ok(&mut self, r: Request) {
        let d = format!("{r:?}");
        assert_eq!(self.rpc(r), Response::Ok, "{d}");
    }

    pub fn err(&mut self, r: Request) -> XsErrno {
        let d = format!("{r:?}");
        match self.rpc(r) {
            Response::Error(e) => e,
            other => panic!("{d}: expected an error, got {other:?}"),
        }
    }

    pub fn event(&mut self) -> (String, String) {
        if let Some(e) = self.events.pop_front() {
            return e;
        }
        let p = self
            .recv()
            .expect("connection closed while waiting for an event");
        match Response::decode(p.msg_type, MsgType::WatchEvent, &p.payload).unwrap() {
            Response::WatchEvent { path, token } => (path, token),
            other => panic!("expected an event, got {other:?}"),
        }
    }
}

pub fn write(p: &str, v: &str) -> Request {
    Request::Write(p.into(), v.as_bytes().to_vec())
}

pub fn watch(p: &str, t: &str) -> Request {
    Request::Watch {
        path: p.into(),
        token: t.into(),
    }
}

pub const MAX: usize = PAYLOAD_MAX;
