//! The connection shared by an [`super::AsyncClient`]'s clones: pending
//! replies, registered watches, the outgoing queue, and the tasks (or
//! threads, for the xenbus device) that read and write it.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use bytes::{Buf, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot};

use super::super::common::{self, WatchEvent};
use crate::error::{Error, Result};
use crate::path;
use crate::wire::{MsgType, Packet, Response};

/// A reply as received, before decoding against its request type.
pub(super) type Reply = Result<Packet>;

/// One registered watch on this connection.
pub(super) struct WatchEntry {
    pub(super) id: u64,
    pub(super) path: String,
    pub(super) events: mpsc::UnboundedSender<Result<WatchEvent>>,
}

/// State shared between the handles and the reader task.
#[derive(Default)]
pub(super) struct State {
    pub(super) pending: HashMap<u32, oneshot::Sender<Reply>>,
    /// token → watches with that token (usually one).
    pub(super) watches: HashMap<String, Vec<WatchEntry>>,
    pub(super) next_watch: u64,
    /// Set once the connection is gone; holds the reason.
    pub(super) closed: Option<String>,
    /// Device file only: requests written and not yet answered, and the
    /// condition the writer thread waits on (see [`spawn_device_threads`]).
    pub(super) dev_inflight: usize,
    pub(super) dev_answered: Option<Arc<Condvar>>,
}

pub(super) fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic while holding this lock cannot leave the maps inconsistent
    // (every critical section is a single insert/remove), so keep going.
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl State {
    /// Fail everything: pending requests get `Closed`, watch streams end
    /// after one `Closed` error.
    pub(super) fn shut(&mut self, why: String) {
        if self.closed.is_none() {
            tracing::debug!(reason = %why, "xenstore connection closed");
            self.closed = Some(why);
        }
        if let Some(cv) = &self.dev_answered {
            cv.notify_all();
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
    pub(super) fn remove_watch(&mut self, token: &str, id: u64) -> Option<String> {
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
pub(super) struct Conn {
    pub(super) state: Arc<Mutex<State>>,
    pub(super) out: Out,
    pub(super) next_req: AtomicU32,
    pub(super) reader: tokio::task::JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// The sending side. Requests must reach the server in the order they were
/// issued (a detached UNWATCH before a new WATCH of the same watch, ...).
pub(super) enum Out {
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
    pub(super) fn send(&self, bytes: Vec<u8>) -> std::result::Result<(), io::Error> {
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

/// Where the reader task gets bytes from.
pub(super) enum Source {
    Sock(OwnedReadHalf),
    /// Chunks read by a blocking thread (the xenbus device file).
    Chan(mpsc::UnboundedReceiver<io::Result<Vec<u8>>>),
}

impl Source {
    /// Append bytes to `buf`; `Ok(0)` at end of stream.
    pub(super) async fn fill(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
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

/// Connect to a unix socket. A non-blocking connect fails with `EAGAIN`
/// while the server's listen backlog is full (cxenstored's is small), so
/// retry that for a while with backoff, as a blocking connect would wait.
pub(super) async fn connect_socket(path: &Path) -> io::Result<UnixStream> {
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
pub(super) async fn read_loop(mut src: Source, state: Arc<Mutex<State>>) {
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

pub(super) fn dispatch(state: &Mutex<State>, pkt: Packet) {
    if pkt.msg_type == MsgType::WatchEvent.to_u32() {
        route_event(state, &pkt.payload);
        return;
    }
    let tx = {
        let mut st = lock(state);
        if let Some(cv) = st.dev_answered.clone() {
            st.dev_inflight = st.dev_inflight.saturating_sub(1);
            cv.notify_all();
        }
        st.pending.remove(&pkt.req_id)
    };
    match tx {
        Some(tx) => {
            let _ = tx.send(Ok(pkt));
        }
        None => tracing::trace!(req_id = pkt.req_id, "reply to a request nobody waits for"),
    }
}

pub(super) fn route_event(state: &Mutex<State>, payload: &[u8]) {
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
pub(super) async fn write_socket(
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
pub(super) async fn write_all_shared(wr: &OwnedWriteHalf, mut buf: &[u8]) -> io::Result<()> {
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
///
/// WATCH and UNWATCH are written only when every earlier request on this
/// file has been answered. Linux's xenbus device (6.1) handles them inside
/// `write()`, holding the file's message mutex while it waits for
/// xenstored's reply; its xenbus thread takes that same mutex to queue any
/// other reply for this file, so a reply still due when a WATCH is written
/// blocks the thread that would deliver the WATCH's own reply: the guest's
/// whole xenstore connection hangs (seen on real Xen when the agent
/// restarted: `xenbus_dev_queue_reply` against `register_xenbus_watch`).
/// libxenstore never pipelines on the device, so it never meets this.
pub(super) fn spawn_device_threads(
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
    let answered = Arc::new(Condvar::new());
    lock(&state).dev_answered = Some(answered.clone());
    std::thread::Builder::new()
        .name("xenbus-write".into())
        .spawn(move || {
            while let Some(msg) = out_rx.blocking_recv() {
                let kind = crate::wire::Header::decode(&msg).map(|h| h.msg_type);
                let exclusive = kind == Some(MsgType::Watch.to_u32())
                    || kind == Some(MsgType::Unwatch.to_u32());
                {
                    let mut st = lock(&state);
                    while exclusive && st.dev_inflight > 0 && st.closed.is_none() {
                        st = answered
                            .wait(st)
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                    }
                    if st.closed.is_some() {
                        return;
                    }
                    st.dev_inflight += 1;
                }
                if let Err(e) = wfile.write_all(&msg) {
                    lock(&state).shut(format!("write failed: {e}"));
                    return;
                }
            }
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // a failing test should fail loudly

    use super::*;
    use std::io::Read;
    use std::os::fd::OwnedFd;
    use std::os::unix::net::UnixStream as StdStream;
    use std::time::Duration;

    /// Read one whole message as the kernel's device would get it.
    fn next_msg(dev: &mut StdStream) -> Packet {
        let mut hdr = [0u8; crate::wire::HEADER_LEN];
        dev.read_exact(&mut hdr).unwrap();
        let h = crate::wire::Header::decode(&hdr).unwrap();
        let mut body = vec![0u8; h.len as usize];
        dev.read_exact(&mut body).unwrap();
        Packet::new(
            MsgType::from_u32(h.msg_type).unwrap(),
            h.req_id,
            h.tx_id,
            body,
        )
    }

    // Multi-threaded: this test blocks on the fake device while the reader
    // task runs.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_watch_reaches_the_device_only_when_every_earlier_request_is_answered() {
        let (ours, mut dev) = StdStream::pair().unwrap();
        let rfile = std::fs::File::from(OwnedFd::from(ours.try_clone().unwrap()));
        let wfile = std::fs::File::from(OwnedFd::from(ours));
        let state = Arc::new(Mutex::new(State::default()));
        let (in_tx, in_rx) = mpsc::unbounded_channel();
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        spawn_device_threads(rfile, wfile, in_tx, out_rx, state.clone()).unwrap();
        tokio::spawn(read_loop(Source::Chan(in_rx), state.clone()));

        let read = Packet::new(MsgType::Read, 1, 0, b"/a\0".to_vec());
        let watch = Packet::new(MsgType::Watch, 2, 0, b"/b\0tok\0".to_vec());
        out_tx.send(read.encode()).unwrap();
        out_tx.send(watch.encode()).unwrap();

        let first = next_msg(&mut dev);
        assert_eq!(first.msg_type, MsgType::Read.to_u32());
        // The READ is unanswered: the WATCH must not follow (within 300 ms,
        // long enough for the writer thread to have written it).
        dev.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut one = [0u8; 1];
        let early = dev.read(&mut one);
        assert!(
            matches!(&early, Err(e) if e.kind() == io::ErrorKind::WouldBlock
                || e.kind() == io::ErrorKind::TimedOut),
            "a WATCH was written while a READ was unanswered: {early:?}"
        );
        assert_eq!(lock(&state).dev_inflight, 1);

        // Answer the READ: now the WATCH comes.
        use std::io::Write;
        dev.write_all(&Packet::new(MsgType::Read, 1, 0, b"x".to_vec()).encode())
            .unwrap();
        dev.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let second = next_msg(&mut dev);
        assert_eq!(second.msg_type, MsgType::Watch.to_u32());
        assert_eq!(second.req_id, 2);
        assert_eq!(lock(&state).dev_inflight, 1);
    }
}
