//! The blocking client: its own connection, one request at a time.
//!
//! Watch events that arrive while a reply is awaited are queued and handed
//! out by [`Client::next_event`]. Methods take `&self` (the connection sits
//! behind a mutex), so a `Client` can be shared between threads, but a call
//! waits while another thread is inside `next_event`: for concurrent use
//! prefer [`AsyncClient`](super::AsyncClient).

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::common::{self, DirParts, DirStep, WatchEvent};
use crate::error::{Error, Result};
use crate::perms::PermList;
use crate::wire::{MsgType, Packet, Request, Response};
use crate::{DomId, TxId, XsErrno};

enum Io {
    Sock {
        sock: UnixStream,
        /// The read timeout currently set on the socket.
        timeout: Option<Duration>,
    },
    /// The xenbus device: a thread does the blocking reads.
    Dev {
        file: std::fs::File,
        chunks: mpsc::Receiver<io::Result<Vec<u8>>>,
    },
}

struct Inner {
    io: Io,
    buf: Vec<u8>,
    events: VecDeque<Result<WatchEvent>>,
    next_req: u32,
    /// Set after an IO or framing error: the stream is out of sync.
    broken: bool,
}

/// A blocking xenstore client.
pub struct Client {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

fn io_error(context: &str, source: io::Error) -> Error {
    Error::Io {
        context: context.to_string(),
        source,
    }
}

impl Inner {
    fn send(&mut self, bytes: &[u8]) -> Result<()> {
        let r = match &mut self.io {
            Io::Sock { sock, .. } => sock.write_all(bytes),
            Io::Dev { file, .. } => file.write_all(bytes),
        };
        r.map_err(|e| {
            self.broken = true;
            io_error("sending request", e)
        })
    }

    /// Read more bytes into `buf`. `Ok(false)` if `deadline` passed first.
    fn fill(&mut self, deadline: Option<Instant>) -> Result<bool> {
        let remaining = match deadline {
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(r) if !r.is_zero() => Some(r),
                _ => return Ok(false),
            },
            None => None,
        };
        match &mut self.io {
            Io::Sock { sock, timeout } => {
                if *timeout != remaining {
                    sock.set_read_timeout(remaining)
                        .map_err(|e| io_error("setting read timeout", e))?;
                    *timeout = remaining;
                }
                let mut chunk = [0u8; 16 * 1024];
                match sock.read(&mut chunk) {
                    Ok(0) => {
                        self.broken = true;
                        Err(Error::Closed)
                    }
                    Ok(n) => {
                        self.buf.extend_from_slice(&chunk[..n]);
                        Ok(true)
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                    {
                        Ok(false)
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(true),
                    Err(e) => {
                        self.broken = true;
                        Err(io_error("reading reply", e))
                    }
                }
            }
            Io::Dev { chunks, .. } => {
                let got = match remaining {
                    Some(r) => match chunks.recv_timeout(r) {
                        Ok(c) => Some(c),
                        Err(mpsc::RecvTimeoutError::Timeout) => return Ok(false),
                        Err(mpsc::RecvTimeoutError::Disconnected) => None,
                    },
                    None => chunks.recv().ok(),
                };
                match got {
                    Some(Ok(c)) if !c.is_empty() => {
                        self.buf.extend_from_slice(&c);
                        Ok(true)
                    }
                    Some(Err(e)) => {
                        self.broken = true;
                        Err(io_error("reading reply", e))
                    }
                    _ => {
                        self.broken = true;
                        Err(Error::Closed)
                    }
                }
            }
        }
    }

    /// Next packet from the stream, `None` if `deadline` passed.
    fn next_packet(&mut self, deadline: Option<Instant>) -> Result<Option<Packet>> {
        loop {
            match Packet::decode(&self.buf, common::REPLY_MAX) {
                Ok(Some((pkt, used))) => {
                    self.buf.drain(..used);
                    return Ok(Some(pkt));
                }
                Ok(None) => {}
                Err(e) => {
                    self.broken = true;
                    return Err(Error::Frame(e));
                }
            }
            if !self.fill(deadline)? {
                return Ok(None);
            }
        }
    }

    fn queue_event(&mut self, payload: &[u8]) {
        let ev = match Response::decode(MsgType::WatchEvent.to_u32(), MsgType::WatchEvent, payload)
        {
            Ok(Response::WatchEvent { path, token }) => Ok(WatchEvent { path, token }),
            Ok(other) => Err(Error::Protocol(format!("malformed watch event: {other:?}"))),
            Err(e) => Err(Error::Protocol(format!("malformed watch event: {e}"))),
        };
        self.events.push_back(ev);
    }

    fn call(&mut self, tx: u32, req: Request, what: &str) -> Result<Response> {
        if self.broken {
            return Err(Error::Closed);
        }
        let kind = req.kind();
        let payload = common::payload_of(&req)?;
        self.next_req = self.next_req.wrapping_add(1).max(1);
        let id = self.next_req;
        self.send(&Packet::new(kind, id, tx, payload).encode())?;
        loop {
            let Some(pkt) = self.next_packet(None)? else {
                continue;
            };
            if pkt.msg_type == MsgType::WatchEvent.to_u32() {
                self.queue_event(&pkt.payload);
                continue;
            }
            if pkt.req_id != id {
                tracing::trace!(req_id = pkt.req_id, "stale reply ignored");
                continue;
            }
            return common::decode_reply(kind, what, pkt.msg_type, &pkt.payload);
        }
    }
}

impl Client {
    /// Connect to `$XENSTORED_PATH`, else `/run/xenstored/socket`, else the
    /// `/dev/xen/xenbus` device.
    pub fn connect_default() -> Result<Client> {
        Client::connect(common::default_endpoint())
    }

    /// Connect to a unix socket, or open the xenbus device file.
    pub fn connect(path: impl AsRef<Path>) -> Result<Client> {
        let path = path.as_ref();
        let ctx = |what: &str| format!("{what} {}", path.display());
        let meta = std::fs::metadata(path).map_err(|e| io_error(&ctx("connecting to"), e))?;
        let io = if std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()) {
            let sock = UnixStream::connect(path).map_err(|e| io_error(&ctx("connecting to"), e))?;
            Io::Sock {
                sock,
                timeout: None,
            }
        } else {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .map_err(|e| io_error(&ctx("opening"), e))?;
            let mut rfile = file.try_clone().map_err(|e| io_error(&ctx("opening"), e))?;
            let (tx, rx) = mpsc::channel();
            std::thread::Builder::new()
                .name("xenbus-read".into())
                .spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        match rfile.read(&mut buf) {
                            Ok(n) => {
                                if tx.send(Ok(buf[..n].to_vec())).is_err() || n == 0 {
                                    return;
                                }
                            }
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) => {
                                let _ = tx.send(Err(e));
                                return;
                            }
                        }
                    }
                })
                .map_err(|e| io_error(&ctx("starting reader for"), e))?;
            Io::Dev { file, chunks: rx }
        };
        Ok(Client {
            inner: Mutex::new(Inner {
                io,
                buf: Vec::with_capacity(16 * 1024),
                events: VecDeque::new(),
                next_req: 0,
                broken: false,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn call(&self, tx: u32, req: Request, what: &str) -> Result<Response> {
        self.lock().call(tx, req, what)
    }

    // --- operations parameterised by transaction id ---

    fn read_in(&self, tx: u32, p: &str) -> Result<Vec<u8>> {
        common::check_path(p)?;
        common::want_data(MsgType::Read, self.call(tx, Request::Read(p.into()), p)?)
    }

    fn read_opt_in(&self, tx: u32, p: &str) -> Result<Option<Vec<u8>>> {
        match self.read_in(tx, p) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn write_in(&self, tx: u32, p: &str, v: &[u8]) -> Result<()> {
        common::check_path(p)?;
        common::want_ok(
            MsgType::Write,
            self.call(tx, Request::Write(p.into(), v.to_vec()), p)?,
        )
    }

    fn mkdir_in(&self, tx: u32, p: &str) -> Result<()> {
        common::check_path(p)?;
        common::want_ok(MsgType::Mkdir, self.call(tx, Request::Mkdir(p.into()), p)?)
    }

    fn rm_in(&self, tx: u32, p: &str) -> Result<()> {
        common::check_path(p)?;
        common::want_ok(MsgType::Rm, self.call(tx, Request::Rm(p.into()), p)?)
    }

    fn directory_in(&self, tx: u32, p: &str) -> Result<Vec<String>> {
        common::check_path(p)?;
        match self.call(tx, Request::Directory(p.into()), p) {
            Ok(r) => common::want_children(r),
            Err(e) if e.errno() == Some(XsErrno::E2big) => {
                let mut parts = DirParts::default();
                let mut offset = parts.offset();
                loop {
                    let r = self.call(tx, Request::DirectoryPart(p.into(), offset), p)?;
                    match parts.feed(r)? {
                        DirStep::More(o) => offset = o,
                        DirStep::Done(children) => return Ok(children),
                    }
                }
            }
            Err(e) => Err(e),
        }
    }

    fn get_perms_in(&self, tx: u32, p: &str) -> Result<PermList> {
        common::check_path(p)?;
        common::want_perms(self.call(tx, Request::GetPerms(p.into()), p)?)
    }

    fn set_perms_in(&self, tx: u32, p: &str, perms: &PermList) -> Result<()> {
        common::check_path(p)?;
        common::want_ok(
            MsgType::SetPerms,
            self.call(tx, Request::SetPerms(p.into(), perms.clone()), p)?,
        )
    }

    // --- public API ---

    /// Read a node's value.
    pub fn read(&self, path: &str) -> Result<Vec<u8>> {
        self.read_in(0, path)
    }

    /// Read a node's value as text (lossy UTF-8).
    pub fn read_string(&self, path: &str) -> Result<String> {
        Ok(String::from_utf8_lossy(&self.read_in(0, path)?).into_owned())
    }

    /// Read a node's value; `None` if it does not exist.
    pub fn read_opt(&self, path: &str) -> Result<Option<Vec<u8>>> {
        self.read_opt_in(0, path)
    }

    /// Create or replace a value.
    pub fn write(&self, path: &str, value: impl AsRef<[u8]>) -> Result<()> {
        self.write_in(0, path, value.as_ref())
    }

    /// Create a node (keeping an existing value).
    pub fn mkdir(&self, path: &str) -> Result<()> {
        self.mkdir_in(0, path)
    }

    /// Remove a subtree.
    pub fn rm(&self, path: &str) -> Result<()> {
        self.rm_in(0, path)
    }

    /// List children (DIRECTORY_PART fallback on `E2BIG`).
    pub fn directory(&self, path: &str) -> Result<Vec<String>> {
        self.directory_in(0, path)
    }

    /// True if the node exists.
    pub fn exists(&self, path: &str) -> Result<bool> {
        Ok(self.read_opt_in(0, path)?.is_some())
    }

    /// A node's permissions.
    pub fn get_perms(&self, path: &str) -> Result<PermList> {
        self.get_perms_in(0, path)
    }

    /// Set a node's permissions.
    pub fn set_perms(&self, path: &str, perms: &PermList) -> Result<()> {
        self.set_perms_in(0, path, perms)
    }

    /// Register a watch; its events (starting with the initial one) come
    /// from [`next_event`](Client::next_event).
    pub fn watch(&self, path: &str, token: &str) -> Result<()> {
        common::check_path(path)?;
        common::check_token(token)?;
        let req = Request::Watch {
            path: path.into(),
            token: token.into(),
        };
        common::want_ok(MsgType::Watch, self.call(0, req, path)?)
    }

    /// Remove a watch.
    pub fn unwatch(&self, path: &str, token: &str) -> Result<()> {
        common::check_path(path)?;
        common::check_token(token)?;
        let req = Request::Unwatch {
            path: path.into(),
            token: token.into(),
        };
        common::want_ok(MsgType::Unwatch, self.call(0, req, path)?)
    }

    /// The next watch event: queued ones first, else wait up to `timeout`
    /// (`None` = forever). `Ok(None)` on timeout. A malformed event gives
    /// one `Err(Protocol)`; the connection stays usable.
    pub fn next_event(&self, timeout: Option<Duration>) -> Result<Option<WatchEvent>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut inner = self.lock();
        loop {
            if let Some(ev) = inner.events.pop_front() {
                return ev.map(Some);
            }
            if inner.broken {
                return Err(Error::Closed);
            }
            match inner.next_packet(deadline)? {
                None => return Ok(None),
                Some(pkt) if pkt.msg_type == MsgType::WatchEvent.to_u32() => {
                    inner.queue_event(&pkt.payload);
                }
                Some(pkt) => {
                    tracing::trace!(req_id = pkt.req_id, "reply nobody waits for ignored");
                }
            }
        }
    }

    /// Start a transaction (aborted on drop unless committed or aborted).
    pub fn transaction_start(&self) -> Result<BlockingTransaction<'_>> {
        let id = common::want_txid(self.call(0, Request::TransactionStart, "")?)?;
        Ok(BlockingTransaction {
            client: self,
            id: TxId(id),
            finished: false,
        })
    }

    /// Run `f` in a transaction and commit, starting over on `EAGAIN` up to
    /// [`TRANSACTION_MAX_ATTEMPTS`](super::TRANSACTION_MAX_ATTEMPTS) times
    /// with jittered exponential backoff. Other errors abort and return.
    pub fn transaction<T, F>(&self, mut f: F) -> Result<T>
    where
        F: FnMut(&BlockingTransaction<'_>) -> Result<T>,
    {
        let max = super::TRANSACTION_MAX_ATTEMPTS;
        for attempt in 0..max {
            let tx = self.transaction_start()?;
            match f(&tx) {
                Ok(v) => {
                    if tx.commit()? {
                        return Ok(v);
                    }
                }
                Err(e) if e.errno() == Some(XsErrno::Eagain) => {
                    let _ = tx.abort();
                }
                Err(e) => {
                    let _ = tx.abort();
                    return Err(e);
                }
            }
            std::thread::sleep(common::backoff(attempt));
        }
        Err(Error::TooManyRetries { attempts: max })
    }

    /// `/local/domain/<domid>` as the server reports it.
    pub fn get_domain_path(&self, domid: DomId) -> Result<String> {
        common::want_domain_path(self.call(0, Request::GetDomainPath(domid), &domid.to_string())?)
    }

    /// Introduce a domain (privileged).
    pub fn introduce(&self, domid: DomId, gfn: i64, evtchn: u32) -> Result<()> {
        let req = Request::Introduce { domid, gfn, evtchn };
        common::want_ok(MsgType::Introduce, self.call(0, req, &domid.to_string())?)
    }

    /// Release a domain (privileged).
    pub fn release(&self, domid: DomId) -> Result<()> {
        common::want_ok(
            MsgType::Release,
            self.call(0, Request::Release(domid), &domid.to_string())?,
        )
    }

    /// Whether the server knows the domain.
    pub fn is_introduced(&self, domid: DomId) -> Result<bool> {
        common::want_bool(self.call(0, Request::IsDomainIntroduced(domid), &domid.to_string())?)
    }

    /// Give `domid` the rights of `target` (privileged).
    pub fn set_target(&self, domid: DomId, target: DomId) -> Result<()> {
        common::want_ok(
            MsgType::SetTarget,
            self.call(0, Request::SetTarget { domid, target }, &domid.to_string())?,
        )
    }

    /// Remove all watches of this connection (queued events are dropped).
    pub fn reset_watches(&self) -> Result<()> {
        let mut inner = self.lock();
        common::want_ok(
            MsgType::ResetWatches,
            inner.call(0, Request::ResetWatches, "")?,
        )?;
        inner.events.clear();
        Ok(())
    }

    /// Send a CONTROL command; returns its output.
    pub fn control(&self, args: &[&str]) -> Result<Vec<u8>> {
        let req = Request::Control(args.iter().map(|a| a.as_bytes().to_vec()).collect());
        common::want_data(MsgType::Control, self.call(0, req, &args.join(" "))?)
    }
}

/// An open transaction of a blocking [`Client`].
pub struct BlockingTransaction<'c> {
    client: &'c Client,
    id: TxId,
    finished: bool,
}

impl std::fmt::Debug for BlockingTransaction<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingTransaction")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl BlockingTransaction<'_> {
    /// The transaction id.
    pub fn id(&self) -> TxId {
        self.id
    }

    /// Read inside the transaction.
    pub fn read(&self, path: &str) -> Result<Vec<u8>> {
        self.client.read_in(self.id.0, path)
    }

    /// Read as text (lossy UTF-8).
    pub fn read_string(&self, path: &str) -> Result<String> {
        Ok(String::from_utf8_lossy(&self.read(path)?).into_owned())
    }

    /// Read; `None` if absent.
    pub fn read_opt(&self, path: &str) -> Result<Option<Vec<u8>>> {
        self.client.read_opt_in(self.id.0, path)
    }

    /// Write inside the transaction.
    pub fn write(&self, path: &str, value: impl AsRef<[u8]>) -> Result<()> {
        self.client.write_in(self.id.0, path, value.as_ref())
    }

    /// Create a node inside the transaction.
    pub fn mkdir(&self, path: &str) -> Result<()> {
        self.client.mkdir_in(self.id.0, path)
    }

    /// Remove a subtree inside the transaction.
    pub fn rm(&self, path: &str) -> Result<()> {
        self.client.rm_in(self.id.0, path)
    }

    /// List children inside the transaction.
    pub fn directory(&self, path: &str) -> Result<Vec<String>> {
        self.client.directory_in(self.id.0, path)
    }

    /// True if the node exists in the transaction's view.
    pub fn exists(&self, path: &str) -> Result<bool> {
        Ok(self.client.read_opt_in(self.id.0, path)?.is_some())
    }

    /// Permissions inside the transaction.
    pub fn get_perms(&self, path: &str) -> Result<PermList> {
        self.client.get_perms_in(self.id.0, path)
    }

    /// Set permissions inside the transaction.
    pub fn set_perms(&self, path: &str, perms: &PermList) -> Result<()> {
        self.client.set_perms_in(self.id.0, path, perms)
    }

    /// Commit; `Ok(false)` on `EAGAIN` (conflict, nothing applied).
    pub fn commit(mut self) -> Result<bool> {
        self.finished = true;
        common::commit_result(
            self.client
                .call(self.id.0, Request::TransactionEnd(true), "commit"),
        )
    }

    /// Abort: discard the transaction.
    pub fn abort(mut self) -> Result<()> {
        self.finished = true;
        common::want_ok(
            MsgType::TransactionEnd,
            self.client
                .call(self.id.0, Request::TransactionEnd(false), "abort")?,
        )
    }
}

impl Drop for BlockingTransaction<'_> {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self
                .client
                .call(self.id.0, Request::TransactionEnd(false), "abort");
        }
    }
}
