//! The tokio client: one connection shared by cheap clones, many requests
//! in flight at once.
//!
//! A reader task owns the receiving side. Replies are matched to requests
//! by `req_id` and handed over through oneshot channels; watch events are
//! routed by token to unbounded per-watch channels, so a burst of events is
//! queued, never dropped. A writer task (or thread, for the xenbus device)
//! sends requests in the order they were issued, batching what is queued.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use futures::Stream;
use futures::future::BoxFuture;
use tokio::io::AsyncReadExt;
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot};

use super::common::{self, DirParts, DirStep, WatchEvent};
use crate::error::{Error, Result};
use crate::path;
use crate::perms::PermList;
use crate::wire::{MsgType, Packet, Request, Response};
use crate::{DomId, TxId, XsErrno};

/// A reply as received, before decoding against its request type.
type Reply = Result<Packet>;

/// One registered watch on this connection.
struct WatchEntry {
    id: u64,
    path: String,
    events: mpsc::UnboundedSender<Result<WatchEvent>>,
}

/// State shared between the handles and the reader task.
#[derive(Default)]
struct State {
    pending: HashMap<u32, oneshot::Sender<Reply>>,
    /// token → watches with that token (usually one).
    watches: HashMap<String, Vec<WatchEntry>>,
    next_watch: u64,
    /// Set once the connection is gone; holds the reason.
    closed: Option<String>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic while holding this lock cannot leave the maps inconsistent
    // (every critical section is a single insert/remove), so keep going.
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl State {
    /// Fail everything: pending requests get `Closed`, watch streams end
    /// after one `Closed` error.
    fn shut(&mut self, why: String) {
        if self.closed.is_none() {
            tracing::debug!(reason = %why, "xenstore connection closed");
            self.closed = Some(why);
        }
        for (_, tx) in self.pending.drain() {
            let _ = tx.send(Err(Error::Closed));
        }
        for (_, entries) in self.watches.drain() {
            for e in entries {
                let _ = e.events.send(Err(Error::Closed));
            }
        }
    }

    /// Remove the watch entry `id`; returns its (path, token) if present.
    fn remove_watch(&mut self, token: &str, id: u64) -> Option<String> {
        let entries = self.watches.get_mut(token)?;
        let pos = entries.iter().position(|e| e.id == id)?;
        let e = entries.remove(pos);
        if entries.is_empty() {
            self.watches.remove(token);
        }
        Some(e.path)
    }
}

/// The connection proper; dropped when the last handle goes.
struct Conn {
    state: Arc<Mutex<State>>,
    out: Out,
    next_req: AtomicU32,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// The sending side. Requests must reach the server in the order they were
/// issued (a detached UNWATCH before a new WATCH of the same watch, ...).
enum Out {
    /// Unix socket: the caller writes directly when nothing is queued (no
    /// task hop on the common path); otherwise bytes are queued for the
    /// writer task, which clears `busy` only once the queue is empty, under
    /// the same lock, so direct writes never overtake queued ones.
    Sock {
        wr: Arc<OwnedWriteHalf>,
        busy: Arc<Mutex<bool>>,
        queue: mpsc::UnboundedSender<Vec<u8>>,
    },
    /// Device file: every message goes to the writer thread.
    Dev(mpsc::UnboundedSender<Vec<u8>>),
}

impl Out {
    /// Send (or queue) one encoded message.
    fn send(&self, bytes: Vec<u8>) -> std::result::Result<(), io::Error> {
        let closed = || io::Error::new(io::ErrorKind::BrokenPipe, "writer gone");
        match self {
            Out::Dev(q) => q.send(bytes).map_err(|_| closed()),
            Out::Sock { wr, busy, queue } => {
                let mut busy = busy
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if *busy {
                    return queue.send(bytes).map_err(|_| closed());
                }
                let done = match wr.try_write(&bytes) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
                    Err(e) => return Err(e),
                };
                if done < bytes.len() {
                    *busy = true;
                    queue.send(bytes[done..].to_vec()).map_err(|_| closed())?;
                }
                Ok(())
            }
        }
    }
}

/// A tokio xenstore client. Clones share one connection.
#[derive(Clone)]
pub struct AsyncClient {
    conn: Arc<Conn>,
}

impl std::fmt::Debug for AsyncClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncClient").finish_non_exhaustive()
    }
}

/// Where the reader task gets bytes from.
enum Source {
    Sock(OwnedReadHalf),
    /// Chunks read by a blocking thread (the xenbus device file).
    Chan(mpsc::UnboundedReceiver<io::Result<Vec<u8>>>),
}

impl Source {
    /// Append bytes to `buf`; `Ok(0)` at end of stream.
    async fn fill(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            Source::Sock(r) => r.read_buf(buf).await,
            Source::Chan(rx) => match rx.recv().await {
                Some(Ok(chunk)) => {
                    buf.extend_from_slice(&chunk);
                    Ok(chunk.len())
                }
                Some(Err(e)) => Err(e),
                None => Ok(0),
            },
        }
    }
}

impl AsyncClient {
    /// Connect to `$XENSTORED_PATH`, else `/run/xenstored/socket`, else the
    /// `/dev/xen/xenbus` device.
    pub async fn connect_default() -> Result<AsyncClient> {
        AsyncClient::connect(common::default_endpoint()).await
    }

    /// Connect to a unix socket, or open the xenbus device file (anything
    /// at `path` that is not a socket is opened read/write as a device).
    pub async fn connect(path: impl AsRef<Path>) -> Result<AsyncClient> {
        let path = path.as_ref();
        let io_err = |what: &str, source| Error::Io {
            context: format!("{what} {}", path.display()),
            source,
        };
        let meta = tokio::fs::metadata(path)
            .await
            .map_err(|e| io_err("connecting to", e))?;
        let state = Arc::new(Mutex::new(State::default()));
        let (out_tx, out_rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let (source, out) = if std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()) {
            let sock = connect_socket(path)
                .await
                .map_err(|e| io_err("connecting to", e))?;
            let (rd, wr) = sock.into_split();
            let wr = Arc::new(wr);
            let busy = Arc::new(Mutex::new(false));
            tokio::spawn(write_socket(
                wr.clone(),
                busy.clone(),
                out_rx,
                state.clone(),
            ));
            let out = Out::Sock {
                wr,
                busy,
                queue: out_tx,
            };
            (Source::Sock(rd), out)
        } else {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .map_err(|e| io_err("opening", e))?;
            let wfile = file.try_clone().map_err(|e| io_err("opening", e))?;
            let (in_tx, in_rx) = mpsc::unbounded_channel();
            spawn_device_threads(file, wfile, in_tx, out_rx, state.clone())
                .map_err(|e| io_err("starting reader for", e))?;
            (Source::Chan(in_rx), Out::Dev(out_tx))
        };
        let reader = tokio::spawn(read_loop(source, state.clone()));
        tracing::debug!(path = %path.display(), "xenstore connected");
        Ok(AsyncClient {
            conn: Arc::new(Conn {
                state,
                out,
                next_req: AtomicU32::new(1),
                reader,
            }),
        })
    }

    /// Send a request without waiting for (or expecting) its reply.
    fn send_detached(&self, req: &Request, tx: u32) {
        let id = self.next_id();
        let _ = self.conn.out.send(req.to_packet(id, tx).encode());
    }

    fn next_id(&self) -> u32 {
        loop {
            let id = self.conn.next_req.fetch_add(1, Ordering::Relaxed);
            if id != 0 {
                return id;
            }
        }
    }

    /// Send `req` in transaction `tx` and wait for its reply.
    async fn call(&self, tx: u32, req: Request, what: &str) -> Result<Response> {
        let kind = req.kind();
        let payload = common::payload_of(&req)?;
        let id = self.next_id();
        let (reply_tx, reply_rx) = oneshot::channel();
        {
            let mut st = lock(&self.conn.state);
            if st.closed.is_some() {
                return Err(Error::Closed);
            }
            st.pending.insert(id, reply_tx);
        }
        let pkt = Packet::new(kind, id, tx, payload).encode();
        if let Err(e) = self.conn.out.send(pkt) {
            let mut st = lock(&self.conn.state);
            st.pending.remove(&id);
            st.shut(format!("write failed: {e}"));
            return Err(Error::Closed);
        }
        let pkt = reply_rx.await.map_err(|_| Error::Closed)??;
        common::decode_reply(kind, what, pkt.msg_type, &pkt.payload)
    }

    // --- operations, parameterised by transaction id (0 = none) ---

    async fn read_in(&self, tx: u32, p: &str) -> Result<Vec<u8>> {
        common::check_path(p)?;
        let r = self.call(tx, Request::Read(p.into()), p).await?;
        common::want_data(MsgType::Read, r)
    }

    async fn read_opt_in(&self, tx: u32, p: &str) -> Result<Option<Vec<u8>>> {
        match self.read_in(tx, p).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn write_in(&self, tx: u32, p: &str, value: &[u8]) -> Result<()> {
        common::check_path(p)?;
        let r = self
            .call(tx, Request::Write(p.into(), value.to_vec()), p)
            .await?;
        common::want_ok(MsgType::Write, r)
    }

    async fn mkdir_in(&self, tx: u32, p: &str) -> Result<()> {
        common::check_path(p)?;
        let r = self.call(tx, Request::Mkdir(p.into()), p).await?;
        common::want_ok(MsgType::Mkdir, r)
    }

    async fn rm_in(&self, tx: u32, p: &str) -> Result<()> {
        common::check_path(p)?;
        let r = self.call(tx, Request::Rm(p.into()), p).await?;
        common::want_ok(MsgType::Rm, r)
    }

    async fn directory_in(&self, tx: u32, p: &str) -> Result<Vec<String>> {
        common::check_path(p)?;
        match self.call(tx, Request::Directory(p.into()), p).await {
            Ok(r) => common::want_children(r),
            Err(e) if e.errno() == Some(XsErrno::E2big) => {
                let mut parts = DirParts::default();
                let mut offset = parts.offset();
                loop {
                    let r = self
                        .call(tx, Request::DirectoryPart(p.into(), offset), p)
                        .await?;
                    match parts.feed(r)? {
                        DirStep::More(o) => offset = o,
                        DirStep::Done(children) => return Ok(children),
                    }
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn exists_in(&self, tx: u32, p: &str) -> Result<bool> {
        Ok(self.read_opt_in(tx, p).await?.is_some())
    }

    async fn get_perms_in(&self, tx: u32, p: &str) -> Result<PermList> {
        common::check_path(p)?;
        let r = self.call(tx, Request::GetPerms(p.into()), p).await?;
        common::want_perms(r)
    }

    async fn set_perms_in(&self, tx: u32, p: &str, perms: &PermList) -> Result<()> {
        common::check_path(p)?;
        let r = self
            .call(tx, Request::SetPerms(p.into(), perms.clone()), p)
            .await?;
        common::want_ok(MsgType::SetPerms, r)
    }

    // --- public API ---

    /// Read a node's value.
    pub async fn read(&self, path: &str) -> Result<Vec<u8>> {
        self.read_in(0, path).await
    }

    /// Read a node's value as text (invalid UTF-8 replaced).
    pub async fn read_string(&self, path: &str) -> Result<String> {
        Ok(String::from_utf8_lossy(&self.read_in(0, path).await?).into_owned())
    }

    /// Read a node's value; `None` if it does not exist.
    pub async fn read_opt(&self, path: &str) -> Result<Option<Vec<u8>>> {
        self.read_opt_in(0, path).await
    }

    /// Create or replace a value (missing parents are created).
    pub async fn write(&self, path: &str, value: impl AsRef<[u8]>) -> Result<()> {
        self.write_in(0, path, value.as_ref()).await
    }

    /// Create a node (keeping an existing value).
    pub async fn mkdir(&self, path: &str) -> Result<()> {
        self.mkdir_in(0, path).await
    }

    /// Remove a node and its subtree.
    pub async fn rm(&self, path: &str) -> Result<()> {
        self.rm_in(0, path).await
    }

    /// List a node's children; big directories are fetched with
    /// DIRECTORY_PART when the server answers `E2BIG`.
    pub async fn directory(&self, path: &str) -> Result<Vec<String>> {
        self.directory_in(0, path).await
    }

    /// True if the node exists (and is readable).
    pub async fn exists(&self, path: &str) -> Result<bool> {
        self.exists_in(0, path).await
    }

    /// A node's permissions.
    pub async fn get_perms(&self, path: &str) -> Result<PermList> {
        self.get_perms_in(0, path).await
    }

    /// Set a node's permissions.
    pub async fn set_perms(&self, path: &str, perms: &PermList) -> Result<()> {
        self.set_perms_in(0, path, perms).await
    }

    /// Register a watch. The stream yields the initial event the server
    /// sends on registration, then one event per change at or below
    /// `path`. Dropping the stream unwatches (best effort).
    pub async fn watch(&self, path: &str, token: &str) -> Result<WatchStream> {
        common::check_path(path)?;
        common::check_token(token)?;
        // Register locally before sending: the initial event follows the
        // reply immediately and must find its channel.
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let id = {
            let mut st = lock(&self.conn.state);
            if st.closed.is_some() {
                return Err(Error::Closed);
            }
            st.next_watch += 1;
            let id = st.next_watch;
            st.watches
                .entry(token.to_string())
                .or_default()
                .push(WatchEntry {
                    id,
                    path: path.to_string(),
                    events: ev_tx,
                });
            id
        };
        let req = Request::Watch {
            path: path.into(),
            token: token.into(),
        };
        // If this future is dropped mid-call, the stream's Drop undoes the
        // registration (and unwatches on the server, best effort).
        let stream = WatchStream {
            client: self.clone(),
            token: token.to_string(),
            id,
            events: ev_rx,
        };
        let result = self
            .call(0, req, path)
            .await
            .and_then(|r| common::want_ok(MsgType::Watch, r));
        if let Err(e) = result {
            // not registered on the server: drop the stream without UNWATCH
            lock(&self.conn.state).remove_watch(token, id);
            return Err(e);
        }
        Ok(stream)
    }

    /// Remove a watch; its stream (if any) ends.
    pub async fn unwatch(&self, path: &str, token: &str) -> Result<()> {
        common::check_path(path)?;
        common::check_token(token)?;
        {
            let mut st = lock(&self.conn.state);
            if let Some(entries) = st.watches.get_mut(token) {
                entries.retain(|e| e.path != path);
                if entries.is_empty() {
                    st.watches.remove(token);
                }
            }
        }
        let req = Request::Unwatch {
            path: path.into(),
            token: token.into(),
        };
        let r = self.call(0, req, path).await?;
        common::want_ok(MsgType::Unwatch, r)
    }

    /// Start a transaction. Dropping it without `commit`/`abort` aborts it
    /// (best effort).
    pub async fn transaction_start(&self) -> Result<Transaction> {
        let r = self.call(0, Request::TransactionStart, "").await?;
        Ok(Transaction {
            client: self.clone(),
            id: TxId(common::want_txid(r)?),
            finished: false,
        })
    }

    /// Run `f` in a transaction and commit; on `EAGAIN` (from the commit or
    /// from an operation inside) start over, up to
    /// [`TRANSACTION_MAX_ATTEMPTS`](super::TRANSACTION_MAX_ATTEMPTS)
    /// attempts with jittered exponential backoff. Any other error aborts
    /// the transaction and is returned.
    ///
    /// ```no_run
    /// # async fn f(c: xenstore::AsyncClient) -> xenstore::Result<()> {
    /// use futures::FutureExt;
    /// let n = c.transaction(|tx| async move {
    ///     let n: u64 = tx.read_string("/counter").await?.parse().unwrap_or(0);
    ///     tx.write("/counter", (n + 1).to_string()).await?;
    ///     Ok(n + 1)
    /// }.boxed()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn transaction<T, F>(&self, mut f: F) -> Result<T>
    where
        F: for<'t> FnMut(&'t Transaction) -> BoxFuture<'t, Result<T>>,
    {
        let max = super::TRANSACTION_MAX_ATTEMPTS;
        for attempt in 0..max {
            let tx = self.transaction_start().await?;
            match f(&tx).await {
                Ok(v) => {
                    if tx.commit().await? {
                        return Ok(v);
                    }
                }
                Err(e) if e.errno() == Some(XsErrno::Eagain) => {
                    let _ = tx.abort().await;
                }
                Err(e) => {
                    let _ = tx.abort().await;
                    return Err(e);
                }
            }
            tracing::trace!(attempt, "xenstore transaction conflict, retrying");
            tokio::time::sleep(common::backoff(attempt)).await;
        }
        Err(Error::TooManyRetries { attempts: max })
    }

    /// `/local/domain/<domid>` as the server reports it.
    pub async fn get_domain_path(&self, domid: DomId) -> Result<String> {
        let r = self
            .call(0, Request::GetDomainPath(domid), &domid.to_string())
            .await?;
        common::want_domain_path(r)
    }

    /// Introduce a domain (privileged).
    pub async fn introduce(&self, domid: DomId, gfn: i64, evtchn: u32) -> Result<()> {
        let req = Request::Introduce { domid, gfn, evtchn };
        let r = self.call(0, req, &domid.to_string()).await?;
        common::want_ok(MsgType::Introduce, r)
    }

    /// Release a domain (privileged).
    pub async fn release(&self, domid: DomId) -> Result<()> {
        let r = self
            .call(0, Request::Release(domid), &domid.to_string())
            .await?;
        common::want_ok(MsgType::Release, r)
    }

    /// Whether the server knows the domain.
    pub async fn is_introduced(&self, domid: DomId) -> Result<bool> {
        let r = self
            .call(0, Request::IsDomainIntroduced(domid), &domid.to_string())
            .await?;
        common::want_bool(r)
    }

    /// Give `domid` the rights of `target` (privileged).
    pub async fn set_target(&self, domid: DomId, target: DomId) -> Result<()> {
        let r = self
            .call(0, Request::SetTarget { domid, target }, &domid.to_string())
            .await?;
        common::want_ok(MsgType::SetTarget, r)
    }

    /// Remove all watches of this connection; their streams end.
    pub async fn reset_watches(&self) -> Result<()> {
        let r = self.call(0, Request::ResetWatches, "").await?;
        common::want_ok(MsgType::ResetWatches, r)?;
        lock(&self.conn.state).watches.clear();
        Ok(())
    }

    /// Send an implementation-specific CONTROL command; returns its output.
    pub async fn control(&self, args: &[&str]) -> Result<Vec<u8>> {
        let req = Request::Control(args.iter().map(|a| a.as_bytes().to_vec()).collect());
        let r = self.call(0, req, &args.join(" ")).await?;
        common::want_data(MsgType::Control, r)
    }
}

/// Connect to a unix socket. A non-blocking connect fails with `EAGAIN`
/// while the server's listen backlog is full (cxenstored's is small), so
/// retry that for a while with backoff, as a blocking connect would wait.
async fn connect_socket(path: &Path) -> io::Result<UnixStream> {
    const PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);
    let start = std::time::Instant::now();
    let mut pause = std::time::Duration::from_micros(200);
    loop {
        match UnixStream::connect(path).await {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && start.elapsed() < PATIENCE => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

/// The reader task: frame packets, route replies and events.
async fn read_loop(mut src: Source, state: Arc<Mutex<State>>) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let why = loop {
        match src.fill(&mut buf).await {
            Ok(0) => break "server closed the connection".to_string(),
            Ok(_) => {}
            Err(e) => break format!("read failed: {e}"),
        }
        let mut failed = None;
        loop {
            match Packet::decode(&buf, common::REPLY_MAX) {
                Ok(Some((pkt, used))) => {
                    buf.advance(used);
                    dispatch(&state, pkt);
                }
                Ok(None) => break,
                Err(e) => {
                    failed = Some(format!("bad frame from server: {e}"));
                    break;
                }
            }
        }
        if let Some(why) = failed {
            break why;
        }
    };
    lock(&state).shut(why);
}

fn dispatch(state: &Mutex<State>, pkt: Packet) {
    if pkt.msg_type == MsgType::WatchEvent.to_u32() {
        route_event(state, &pkt.payload);
        return;
    }
    let tx = lock(state).pending.remove(&pkt.req_id);
    match tx {
        Some(tx) => {
            let _ = tx.send(Ok(pkt));
        }
        None => tracing::trace!(req_id = pkt.req_id, "reply to a request nobody waits for"),
    }
}

fn route_event(state: &Mutex<State>, payload: &[u8]) {
    let mut st = lock(state);
    match Response::decode(MsgType::WatchEvent.to_u32(), MsgType::WatchEvent, payload) {
        Ok(Response::WatchEvent { path: epath, token }) => {
            let Some(entries) = st.watches.get(&token) else {
                tracing::trace!(%token, path = %epath, "event for an unknown watch");
                return;
            };
            let matching: Vec<&WatchEntry> = entries
                .iter()
                .filter(|e| path::is_prefix_of(&e.path, &epath))
                .collect();
            // Same token on several paths: deliver by prefix; if the path
            // matches none (server quirk), deliver to all of them.
            let targets = if matching.is_empty() {
                entries.iter().collect()
            } else {
                matching
            };
            for e in targets {
                let _ = e.events.send(Ok(WatchEvent {
                    path: epath.clone(),
                    token: token.clone(),
                }));
            }
        }
        other => {
            // Malformed: if a token can be made out, end that watch's stream
            // with the error; the connection and other watches carry on.
            let mut fields = payload.split(|&b| b == 0);
            let token = fields
                .nth(1)
                .map(|t| String::from_utf8_lossy(t).into_owned());
            let why = match other {
                Err(e) => e.to_string(),
                Ok(r) => format!("unexpected {r:?}"),
            };
            let Some(entries) = token.as_ref().and_then(|t| st.watches.remove(t)) else {
                tracing::warn!(error = %why, "malformed watch event for no known watch, ignored");
                return;
            };
            tracing::warn!(error = %why, token = ?token, "malformed watch event, closing that watch");
            for e in entries {
                let _ = e.events.send(Err(Error::Protocol(format!(
                    "malformed watch event: {why}"
                ))));
            }
        }
    }
}

/// The socket writer task: writes what callers could not write directly.
async fn write_socket(
    wr: Arc<OwnedWriteHalf>,
    busy: Arc<Mutex<bool>>,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
    state: Arc<Mutex<State>>,
) {
    const BATCH: usize = 64 * 1024;
    let mut batch = Vec::new();
    while let Some(first) = rx.recv().await {
        batch.extend_from_slice(&first);
        loop {
            {
                // Under the senders' lock: take what is queued, or, if
                // nothing is, hand writing back to the callers.
                let mut b = busy
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                while batch.len() < BATCH {
                    match rx.try_recv() {
                        Ok(more) => batch.extend_from_slice(&more),
                        Err(_) => break,
                    }
                }
                if batch.is_empty() {
                    *b = false;
                    break;
                }
            }
            if let Err(e) = write_all_shared(&wr, &batch).await {
                lock(&state).shut(format!("write failed: {e}"));
                return;
            }
            batch.clear();
        }
    }
}

/// `write_all` through a shared write half.
async fn write_all_shared(wr: &OwnedWriteHalf, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        wr.writable().await?;
        match wr.try_write(buf) {
            Ok(n) => buf = &buf[n..],
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Blocking threads for the xenbus device: one reads chunks, one writes
/// each message with a single write (the kernel expects whole messages).
fn spawn_device_threads(
    mut rfile: std::fs::File,
    mut wfile: std::fs::File,
    in_tx: mpsc::UnboundedSender<io::Result<Vec<u8>>>,
    mut out_rx: mpsc::UnboundedReceiver<Vec<u8>>,
    state: Arc<Mutex<State>>,
) -> io::Result<()> {
    use std::io::{Read, Write};
    std::thread::Builder::new()
        .name("xenbus-read".into())
        .spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match rfile.read(&mut buf) {
                    Ok(n) => {
                        let stop = n == 0;
                        if in_tx.send(Ok(buf[..n].to_vec())).is_err() || stop {
                            return;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = in_tx.send(Err(e));
                        return;
                    }
                }
            }
        })?;
    std::thread::Builder::new()
        .name("xenbus-write".into())
        .spawn(move || {
            while let Some(msg) = out_rx.blocking_recv() {
                if let Err(e) = wfile.write_all(&msg) {
                    lock(&state).shut(format!("write failed: {e}"));
                    return;
                }
            }
        })?;
    Ok(())
}

/// Events of one watch, as a [`Stream`]. Ends (after an error item) when
/// the connection closes or a malformed event arrives for this watch.
/// Dropping it unwatches (best effort).
pub struct WatchStream {
    client: AsyncClient,
    token: String,
    id: u64,
    events: mpsc::UnboundedReceiver<Result<WatchEvent>>,
}

impl std::fmt::Debug for WatchStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchStream")
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl WatchStream {
    /// The watch's token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Wait for the next event (`None` once the stream has ended).
    pub async fn recv(&mut self) -> Option<Result<WatchEvent>> {
        self.events.recv().await
    }
}

impl Stream for WatchStream {
    type Item = Result<WatchEvent>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.events.poll_recv(cx)
    }
}

impl Drop for WatchStream {
    fn drop(&mut self) {
        let path = lock(&self.client.conn.state).remove_watch(&self.token, self.id);
        if let Some(path) = path {
            self.client.send_detached(
                &Request::Unwatch {
                    path,
                    token: self.token.clone(),
                },
                0,
            );
        }
    }
}

/// An open transaction. Operations see the transaction's private view;
/// nothing is visible to others until [`commit`](Transaction::commit).
/// Dropping it without commit or abort aborts it (best effort).
pub struct Transaction {
    client: AsyncClient,
    id: TxId,
    finished: bool,
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Transaction {
    /// The transaction id.
    pub fn id(&self) -> TxId {
        self.id
    }

    /// Read a value inside the transaction.
    pub async fn read(&self, path: &str) -> Result<Vec<u8>> {
        self.client.read_in(self.id.0, path).await
    }

    /// Read a value as text (lossy UTF-8).
    pub async fn read_string(&self, path: &str) -> Result<String> {
        Ok(String::from_utf8_lossy(&self.read(path).await?).into_owned())
    }

    /// Read a value; `None` if absent.
    pub async fn read_opt(&self, path: &str) -> Result<Option<Vec<u8>>> {
        self.client.read_opt_in(self.id.0, path).await
    }

    /// Write a value inside the transaction.
    pub async fn write(&self, path: &str, value: impl AsRef<[u8]>) -> Result<()> {
        self.client.write_in(self.id.0, path, value.as_ref()).await
    }

    /// Create a node inside the transaction.
    pub async fn mkdir(&self, path: &str) -> Result<()> {
        self.client.mkdir_in(self.id.0, path).await
    }

    /// Remove a subtree inside the transaction.
    pub async fn rm(&self, path: &str) -> Result<()> {
        self.client.rm_in(self.id.0, path).await
    }

    /// List children inside the transaction.
    pub async fn directory(&self, path: &str) -> Result<Vec<String>> {
        self.client.directory_in(self.id.0, path).await
    }

    /// True if the node exists in the transaction's view.
    pub async fn exists(&self, path: &str) -> Result<bool> {
        self.client.exists_in(self.id.0, path).await
    }

    /// Permissions inside the transaction.
    pub async fn get_perms(&self, path: &str) -> Result<PermList> {
        self.client.get_perms_in(self.id.0, path).await
    }

    /// Set permissions inside the transaction.
    pub async fn set_perms(&self, path: &str, perms: &PermList) -> Result<()> {
        self.client.set_perms_in(self.id.0, path, perms).await
    }

    /// Commit. `Ok(false)` means the server answered `EAGAIN` (a conflict):
    /// nothing was applied and the caller should start over.
    pub async fn commit(mut self) -> Result<bool> {
        self.finished = true;
        let r = self
            .client
            .call(self.id.0, Request::TransactionEnd(true), "commit")
            .await;
        common::commit_result(r)
    }

    /// Abort: discard everything done in the transaction.
    pub async fn abort(mut self) -> Result<()> {
        self.finished = true;
        let r = self
            .client
            .call(self.id.0, Request::TransactionEnd(false), "abort")
            .await?;
        common::want_ok(MsgType::TransactionEnd, r)
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if !self.finished {
            self.client
                .send_detached(&Request::TransactionEnd(false), self.id.0);
        }
    }
}
