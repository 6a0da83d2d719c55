//! The tokio client: one connection shared by cheap clones, many requests
//! in flight at once.
//!
//! A reader task owns the receiving side. Replies are matched to requests
//! by `req_id` and handed over through oneshot channels; watch events are
//! routed by token to unbounded per-watch channels, so a burst of events is
//! queued, never dropped. A writer task (or thread, for the xenbus device)
//! sends requests in the order they were issued, batching what is queued.

mod conn;
mod transaction;
mod watch;

pub use transaction::Transaction;
pub use watch::WatchStream;

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

use super::common::{self, DirParts, DirStep};
use crate::error::{Error, Result};
use crate::perms::PermList;
use crate::wire::{MsgType, Packet, Request, Response};
use crate::{DomId, TxId, XsErrno};
use conn::{
    Conn, Out, Source, State, WatchEntry, connect_socket, lock, read_loop, spawn_device_threads,
    write_socket,
};

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
