//! Pieces shared by the blocking and the tokio client: argument checks
//! before sending, reply unpacking, DIRECTORY_PART assembly, retry policy.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::path::{self, PathProblem};
use crate::perms::PermList;
use crate::wire::{MsgType, PAYLOAD_MAX, Request, Response};
use crate::{DomId, XsErrno};

/// How many times the `transaction` helpers start a transaction before
/// giving up with [`Error::TooManyRetries`].
pub const TRANSACTION_MAX_ATTEMPTS: u32 = 100;

/// Largest reply the clients accept. Servers keep replies within 4096
/// bytes, except oxenstored which answers big DIRECTORY requests whole.
pub(crate) const REPLY_MAX: usize = 16 << 20;

/// Where the clients look for the server, in order: `$XENSTORED_PATH`,
/// then [`DEFAULT_SOCKET`], then [`XENBUS_DEVICE`].
pub const DEFAULT_SOCKET: &str = "/run/xenstored/socket";
/// The kernel's xenstore device inside a Xen guest or dom0.
pub const XENBUS_DEVICE: &str = "/dev/xen/xenbus";

/// A watch event: the path that changed and the token of the watch.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WatchEvent {
    /// The changed path (relative if the watch was registered relative).
    pub path: String,
    /// The token given when the watch was registered.
    pub token: String,
}

/// The endpoint `connect_default` uses: `$XENSTORED_PATH` (if non-empty),
/// else [`DEFAULT_SOCKET`] if it exists, else [`XENBUS_DEVICE`].
pub fn default_endpoint() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("XENSTORED_PATH").filter(|p| !p.is_empty()) {
        return p.into();
    }
    if std::path::Path::new(DEFAULT_SOCKET).exists() {
        return DEFAULT_SOCKET.into();
    }
    XENBUS_DEVICE.into()
}

/// Refuse a path the server would answer with `EINVAL`, before sending.
pub(crate) fn check_path(p: &str) -> Result<()> {
    let problem = |problem: PathProblem| Error::InvalidPath {
        path: p.to_string(),
        problem,
    };
    path::check_syntax(p).map_err(problem)?;
    if path::is_special(p) {
        if p.len() > path::REL_PATH_MAX {
            return Err(problem(PathProblem::TooLong {
                len: p.len(),
                max: path::REL_PATH_MAX,
            }));
        }
        return Ok(());
    }
    path::resolve(p, DomId::DOM0, path::REL_PATH_MAX)
        .map(drop)
        .map_err(problem)
}

/// Refuse a watch token that cannot travel in a NUL-separated payload.
pub(crate) fn check_token(token: &str) -> Result<()> {
    if token.as_bytes().contains(&0) {
        return Err(Error::InvalidToken(token.to_string()));
    }
    Ok(())
}

/// Encode a request payload, refusing one over the payload limit.
pub(crate) fn payload_of(req: &Request) -> Result<Vec<u8>> {
    let payload = req.payload();
    if payload.len() > PAYLOAD_MAX {
        return Err(Error::TooLarge {
            op: req.kind().name(),
            len: payload.len(),
        });
    }
    Ok(payload)
}

/// Turn a raw reply into a typed one; `ERROR` replies become [`Error::Xs`].
pub(crate) fn decode_reply(
    kind: MsgType,
    what: &str,
    msg_type: u32,
    payload: &[u8],
) -> Result<Response> {
    match Response::decode(msg_type, kind, payload) {
        Ok(Response::Error(errno)) => Err(Error::Xs {
            op: kind.name(),
            path: what.to_string(),
            errno,
        }),
        Ok(Response::WatchEvent { .. }) => Err(Error::Protocol(format!(
            "watch event where the reply to {} was expected",
            kind.name()
        ))),
        Ok(r) => Ok(r),
        Err(e) => Err(Error::Protocol(format!(
            "reply to {} {what}: {e}",
            kind.name()
        ))),
    }
}

fn unexpected(kind: MsgType, r: &Response) -> Error {
    Error::Protocol(format!("unexpected reply to {}: {r:?}", kind.name()))
}

pub(crate) fn want_ok(kind: MsgType, r: Response) -> Result<()> {
    match r {
        Response::Ok => Ok(()),
        other => Err(unexpected(kind, &other)),
    }
}

pub(crate) fn want_data(kind: MsgType, r: Response) -> Result<Vec<u8>> {
    match r {
        Response::Data(d) => Ok(d),
        other => Err(unexpected(kind, &other)),
    }
}

pub(crate) fn want_children(r: Response) -> Result<Vec<String>> {
    match r {
        Response::Children(c) => Ok(c),
        other => Err(unexpected(MsgType::Directory, &other)),
    }
}

pub(crate) fn want_perms(r: Response) -> Result<PermList> {
    match r {
        Response::Perms(p) => Ok(p),
        other => Err(unexpected(MsgType::GetPerms, &other)),
    }
}

pub(crate) fn want_txid(r: Response) -> Result<u32> {
    match r {
        Response::TxId(0) => Err(Error::Protocol("server started transaction 0".into())),
        Response::TxId(t) => Ok(t),
        other => Err(unexpected(MsgType::TransactionStart, &other)),
    }
}

pub(crate) fn want_domain_path(r: Response) -> Result<String> {
    match r {
        Response::DomainPath(p) => Ok(p),
        other => Err(unexpected(MsgType::GetDomainPath, &other)),
    }
}

pub(crate) fn want_bool(r: Response) -> Result<bool> {
    match r {
        Response::Bool(b) => Ok(b),
        other => Err(unexpected(MsgType::IsDomainIntroduced, &other)),
    }
}

/// Result of a `TRANSACTION_END T`: `Ok(false)` on `EAGAIN`.
pub(crate) fn commit_result(r: Result<Response>) -> Result<bool> {
    match r {
        Ok(r) => want_ok(MsgType::TransactionEnd, r).map(|()| true),
        Err(e) if e.errno() == Some(XsErrno::Eagain) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Accumulates DIRECTORY_PART chunks (the libxenstore algorithm: the offset
/// advances by the bytes of names received, NULs included; a changed
/// generation restarts the listing).
#[derive(Debug, Default)]
pub(crate) struct DirParts {
    generation: Option<u64>,
    offset: u64,
    children: Vec<String>,
    restarts: u32,
}

/// What to do after a chunk.
pub(crate) enum DirStep {
    /// Ask again from this offset.
    More(u64),
    /// Finished.
    Done(Vec<String>),
}

impl DirParts {
    /// Restarts allowed before giving up (the directory keeps changing).
    const MAX_RESTARTS: u32 = 1000;

    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    pub(crate) fn feed(&mut self, r: Response) -> Result<DirStep> {
        let Response::DirectoryPart {
            generation,
            children,
            complete,
        } = r
        else {
            return Err(unexpected(MsgType::DirectoryPart, &r));
        };
        if self.generation.is_some_and(|g| g != generation) {
            self.restarts += 1;
            if self.restarts > Self::MAX_RESTARTS {
                return Err(Error::Protocol(
                    "DIRECTORY_PART: directory kept changing while being listed".into(),
                ));
            }
            *self = DirParts {
                restarts: self.restarts,
                ..DirParts::default()
            };
            return Ok(DirStep::More(0));
        }
        self.generation = Some(generation);
        if !complete && children.is_empty() {
            return Err(Error::Protocol(
                "DIRECTORY_PART: empty chunk that is not the end of the list".into(),
            ));
        }
        for c in children {
            self.offset += c.len() as u64 + 1;
            self.children.push(c);
        }
        if complete {
            Ok(DirStep::Done(std::mem::take(&mut self.children)))
        } else {
            Ok(DirStep::More(self.offset))
        }
    }
}

/// Pause before transaction attempt `attempt + 1`: exponential from 1 ms up
/// to 64 ms, with ±50 % jitter so that competing clients spread out.
pub(crate) fn backoff(attempt: u32) -> Duration {
    let base_us = 1000u64 << attempt.min(6);
    let jitter = next_random() % base_us;
    Duration::from_micros(base_us / 2 + jitter)
}

fn next_random() -> u64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let mut x = STATE.load(Ordering::Relaxed);
    if x == 0 {
        x = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9_7f4a_7c15)
            ^ u64::from(std::process::id()).rotate_left(32)
            | 1;
    }
    // xorshift64
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    STATE.store(x, Ordering::Relaxed);
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_checked_before_sending() {
        assert!(check_path("/a/b").is_ok());
        assert!(check_path("rel").is_ok());
        assert!(check_path("@releaseDomain").is_ok());
        for bad in ["", "/a/", "/a//b", "/a b", "/a.b"] {
            let e = check_path(bad).unwrap_err();
            assert_eq!(e.errno(), Some(XsErrno::Einval), "{bad:?}");
        }
        assert!(check_path(&format!("/{}", "a".repeat(2048))).is_err());
        assert!(check_token("t\0x").is_err());
    }

    #[test]
    fn dir_parts_restart_on_generation_change() {
        let mut d = DirParts::default();
        let chunk = |g, c: &[&str], complete| Response::DirectoryPart {
            generation: g,
            children: c.iter().map(|s| s.to_string()).collect(),
            complete,
        };
        assert!(matches!(
            d.feed(chunk(1, &["ab", "c"], false)).unwrap(),
            DirStep::More(5)
        ));
        assert!(matches!(
            d.feed(chunk(2, &["x"], false)).unwrap(),
            DirStep::More(0)
        ));
        assert!(matches!(
            d.feed(chunk(2, &["ab"], false)).unwrap(),
            DirStep::More(3)
        ));
        match d.feed(chunk(2, &["z"], true)).unwrap() {
            DirStep::Done(v) => assert_eq!(v, ["ab", "z"]),
            DirStep::More(_) => panic!("expected the end"),
        }
        assert!(DirParts::default().feed(chunk(1, &[], false)).is_err());
    }

    #[test]
    fn backoff_is_bounded() {
        for a in 0..200 {
            let d = backoff(a);
            assert!(
                d >= Duration::from_micros(500) && d < Duration::from_millis(97),
                "{d:?}"
            );
        }
    }
}
