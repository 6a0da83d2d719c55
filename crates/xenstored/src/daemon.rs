//! The tokio IO layer around [`Server`].
//!
//! * The main socket: every connection is dom0 (privileged), as with the
//!   4.17 daemons.
//! * With a domain socket directory: when dom0 INTRODUCEs domain N the
//!   daemon creates `DIR/N.sock`; connections there act as domain N
//!   (unprivileged, quotas apply). RELEASE removes the socket and closes
//!   those connections.
//!
//! Each connection task reads as much as the socket holds, handles every
//! complete request in order under one short lock (no await while held),
//! and writes all replies with one write: pipelined requests cost one
//! read and one write per batch. Watch events for other connections are
//! queued in the server and their tasks are woken to write them. A client
//! that does not read blocks only its own task.
//!
//! On a real Xen host ([`run_with`] given a [`RingSet`]) one more task
//! serves every shared ring (dom0's kernel ring, introduced domains): it
//! waits on the event channel file and drives the same core under the same
//! lock; ring connections dirtied by others' requests are written at once
//! by whoever holds the lock (`flush_others`).

use std::collections::HashMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::io::Interest;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};
use xenstore::DomId;

use crate::error::{Error, Result};
use crate::hash::FastState;
use crate::quota::Quotas;
use crate::ringd::RingSet;
use crate::server::{ConnId, Effect, Server};

/// Daemon settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// The dom0 socket.
    pub socket: PathBuf,
    /// Where per-domain sockets are created, if anywhere.
    pub domain_socket_dir: Option<PathBuf>,
    /// Quotas for unprivileged domains.
    pub quotas: Quotas,
}

impl Config {
    /// Settings with default quotas and no domain sockets.
    pub fn new(socket: impl Into<PathBuf>) -> Config {
        Config {
            socket: socket.into(),
            domain_socket_dir: None,
            quotas: Quotas::default(),
        }
    }
}

/// What the daemon keeps for each open connection.
struct ConnIo {
    /// The socket, shared with its task: whoever holds the state lock may
    /// write the connection's queued output (watch events go out from the
    /// task of the request that caused them, without a task switch).
    stream: Arc<UnixStream>,
    /// Wakes the connection's task when output is left that could not be
    /// written at once (or when it must close).
    notify: Arc<Notify>,
}

struct State {
    server: Server,
    io: HashMap<ConnId, ConnIo, FastState>,
    listeners: HashMap<u16, (PathBuf, JoinHandle<()>)>,
    /// One read buffer for all connections (reads happen under the lock);
    /// a connection only keeps a buffer of its own for a partial request.
    scratch: Vec<u8>,
    /// Shared rings, on a real Xen host.
    rings: Option<RingSet>,
}

impl State {
    fn new(quotas: Quotas) -> State {
        State {
            server: Server::new(quotas),
            io: HashMap::default(),
            listeners: HashMap::new(),
            scratch: Vec::new(),
            rings: None,
        }
    }
}

struct Shared {
    state: Mutex<State>,
    domain_dir: Option<PathBuf>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock would be a bug in the core; keep
        // serving the other connections with the state as it is.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn bind(path: &Path) -> Result<UnixListener> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(source) => {
            return Err(Error::Bind {
                path: path.to_path_buf(),
                source,
            });
        }
    }
    UnixListener::bind(path).map_err(|source| Error::Bind {
        path: path.to_path_buf(),
        source,
    })
}

/// Serve until `shutdown` completes, then remove every socket created.
pub async fn run(config: Config, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
    run_with(config, None, || {}, shutdown).await
}

/// [`run`], also serving shared rings if `rings` is given (dom0's kernel
/// ring at once, if it was set), and calling `ready` once the socket is
/// bound and the rings are served: a client may connect from then on and
/// finds `/`, `/tool` and `/tool/xenstored`.
pub async fn run_with(
    config: Config,
    rings: Option<RingSet>,
    ready: impl FnOnce(),
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    if let Some(dir) = &config.domain_socket_dir {
        std::fs::create_dir_all(dir).map_err(|source| Error::File {
            path: dir.clone(),
            source,
        })?;
    }
    let listener = bind(&config.socket)?;
    let shared = Arc::new(Shared {
        state: Mutex::new(State::new(config.quotas.clone())),
        domain_dir: config.domain_socket_dir.clone(),
    });
    info!(socket = %config.socket.display(), "xenstored listening");
    let ring_task = match rings {
        Some(mut r) => {
            let fd = r.poll_fd().map_err(|source| Error::Xen {
                what: "duplicate".into(),
                path: "/dev/xen/evtchn".into(),
                source,
            })?;
            {
                let mut guard = shared.lock();
                let st = &mut *guard;
                if let Err(e) = r.start(&mut st.server) {
                    let _ = std::fs::remove_file(&config.socket);
                    return Err(e);
                }
                st.rings = Some(r);
            }
            let wake = Arc::new(Notify::new());
            Some(tokio::spawn(ring_loop(shared.clone(), fd, wake)))
        }
        None => None,
    };
    ready();
    let acceptor = tokio::spawn(accept_loop(shared.clone(), listener, DomId::DOM0));
    shutdown.await;
    acceptor.abort();
    if let Some(t) = ring_task {
        t.abort();
    }
    let _ = std::fs::remove_file(&config.socket);
    let listeners: Vec<(PathBuf, JoinHandle<()>)> =
        shared.lock().listeners.drain().map(|(_, v)| v).collect();
    for (path, task) in listeners {
        task.abort();
        let _ = std::fs::remove_file(path);
    }
    info!("xenstored stopped");
    Ok(())
}

/// Connections one unprivileged domain may hold open on its socket (on
/// real Xen a domain has exactly one ring; this bounds what a guest can
/// take of the daemon's file descriptors).
const MAX_DOMAIN_CONNECTIONS: usize = 64;

/// Decrements a domain's connection count when its task ends.
struct ConnSlot(Arc<AtomicUsize>);

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: UnixListener, domid: DomId) {
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                if domid != DomId::DOM0 && open.load(Ordering::Relaxed) >= MAX_DOMAIN_CONNECTIONS {
                    debug!(domid = domid.0, "connection refused: too many open");
                    drop(stream);
                    continue;
                }
                open.fetch_add(1, Ordering::Relaxed);
                let slot = ConnSlot(open.clone());
                tokio::spawn(serve_conn(shared.clone(), stream, domid, slot));
            }
            Err(e) => {
                // EMFILE and friends: keep serving existing connections and
                // retry a little later (a guest can cause this: debug level).
                debug!(domid = domid.0, error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

fn apply_effects(shared: &Arc<Shared>, st: &mut State, effects: Vec<Effect>) {
    if let Some(r) = &mut st.rings {
        r.on_effects(&mut st.server, &effects);
    }
    let Some(dir) = &shared.domain_dir else {
        return;
    };
    for e in effects {
        match e {
            Effect::Introduced(d) => {
                let path = dir.join(format!("{}.sock", d.0));
                match bind(&path) {
                    Ok(l) => {
                        let task = tokio::spawn(accept_loop(shared.clone(), l, d));
                        if let Some((_, old)) = st.listeners.insert(d.0, (path, task)) {
                            old.abort();
                        }
                    }
                    Err(err) => warn!(domid = d.0, error = %err, "cannot create domain socket"),
                }
            }
            Effect::Released(d) => {
                if let Some((path, task)) = st.listeners.remove(&d.0) {
                    task.abort();
                    let _ = std::fs::remove_file(path);
                }
            }
            #[allow(unreachable_patterns)]
            _ => {}
        }
    }
}

const READ_CHUNK: usize = 64 * 1024;
/// Output buffers up to this size are kept between writes (an idle
/// connection's reply buffer is small); bigger ones are freed.
const KEEP_OUTPUT: usize = 4096;

/// Read what the socket holds into `buf`. `Ok(None)`: nothing to read
/// (spurious readiness); `Ok(Some(0))`: end of stream. A read that does
/// not fill the buffer drained the socket, so its readiness is cleared
/// at once: the next wait goes straight to the reactor instead of
/// costing another `recvfrom` that would fail with `EAGAIN` (the epoll
/// registration is edge-triggered, so data arriving later is not missed).
fn read_some(stream: &UnixStream, buf: &mut Vec<u8>) -> std::io::Result<Option<usize>> {
    let spare = buf.capacity() - buf.len();
    let mut got = 0;
    let r = stream.try_io(Interest::READABLE, || {
        got = stream.try_read_buf(buf)?;
        if got > 0 && got < spare {
            Err(ErrorKind::WouldBlock.into())
        } else {
            Ok(got)
        }
    });
    match r {
        Ok(n) => Ok(Some(n)),
        Err(e) if e.kind() == ErrorKind::WouldBlock => Ok((got > 0).then_some(got)),
        Err(e) => Err(e),
    }
}

/// Write as much of `cid`'s queued output as the socket takes without
/// blocking. `Ok(true)`: all of it went out.
fn flush(server: &mut Server, stream: &UnixStream, cid: ConnId) -> std::io::Result<bool> {
    let Some(out) = server.output_mut(cid) else {
        return Ok(true);
    };
    let mut done = 0;
    let res = loop {
        if done == out.len() {
            break Ok(true);
        }
        match stream.try_write(&out[done..]) {
            Ok(n) => done += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break Ok(false),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    out.drain(..done);
    if out.is_empty() && out.capacity() > KEEP_OUTPUT {
        *out = Vec::new();
    }
    res
}

/// After requests were handled: write the output they queued for other
/// connections now (ring connections too); wake the task of any whose
/// socket is full.
fn flush_others(
    server: &mut Server,
    io: &HashMap<ConnId, ConnIo, FastState>,
    rings: &mut Option<RingSet>,
    cid: ConnId,
) {
    while let Some(d) = server.pop_dirty() {
        if d == cid {
            continue;
        }
        if let Some(c) = io.get(&d) {
            if server.is_closing(d) || !matches!(flush(server, &c.stream, d), Ok(true)) {
                c.notify.notify_one();
            }
        } else if let Some(r) = rings {
            r.flush(server, d);
        }
    }
}

/// While a ring's replies wait for space, look again this often even
/// without an event.
const RING_RECHECK: std::time::Duration = std::time::Duration::from_millis(500);

/// Serve the shared rings: wait for the event channel file to be readable
/// (or for a turn asked for because work is left), then one turn of every
/// ring under the lock, its effects, and the output it caused for others.
async fn ring_loop(shared: Arc<Shared>, fd: std::os::fd::OwnedFd, wake: Arc<Notify>) {
    let afd = match crate::xen::async_fd(fd) {
        Ok(a) => a,
        Err(e) => {
            warn!(error = %e, "cannot poll the event channel device; rings are not served");
            return;
        }
    };
    // the first turn serves whatever was queued before we polled
    wake.notify_one();
    let mut recheck = false;
    loop {
        tokio::select! {
            r = afd.readable() => match r {
                Ok(mut g) => g.clear_ready(),
                Err(e) => {
                    warn!(error = %e, "event channel device failed; rings are not served");
                    return;
                }
            },
            () = wake.notified() => {}
            () = tokio::time::sleep(RING_RECHECK), if recheck => {}
        }
        let more = {
            let mut guard = shared.lock();
            let st = &mut *guard;
            let Some(r) = st.rings.as_mut() else { return };
            r.turn(&mut st.server);
            if st.server.has_effects() {
                let effects = st.server.take_effects();
                apply_effects(&shared, st, effects);
            }
            flush_others(&mut st.server, &st.io, &mut st.rings, ConnId(u64::MAX));
            recheck = st.rings.as_ref().is_some_and(RingSet::waiting_for_space);
            st.rings.as_ref().is_some_and(RingSet::more_work)
        };
        if more {
            // let the socket tasks in between turns, then go on
            tokio::task::yield_now().await;
            wake.notify_one();
        }
    }
}

async fn serve_conn(shared: Arc<Shared>, stream: UnixStream, domid: DomId, slot: ConnSlot) {
    let notify = Arc::new(Notify::new());
    let stream = Arc::new(stream);
    let (cid, max) = {
        let mut st = shared.lock();
        let cid = st.server.connect(domid);
        st.io.insert(
            cid,
            ConnIo {
                stream: stream.clone(),
                notify: notify.clone(),
            },
        );
        let max = if domid == DomId::DOM0 {
            usize::MAX
        } else {
            (st.server.quotas().outstanding as usize).max(1)
        };
        (cid, max)
    };
    debug!(conn = cid.0, domid = domid.0, "connection opened");
    // An idle connection holds no buffers: requests are read into the
    // shared scratch buffer and only a partial request is kept here;
    // replies are written from the server's output buffer, under the lock,
    // as soon as they exist (one read and one write per batch).
    let mut inbuf: Vec<u8> = Vec::new();
    // Our output is stuck behind a full socket: stop reading requests
    // until it drains (a client that does not read blocks only itself).
    let mut blocked = false;
    'conn: loop {
        let mut readable = false;
        if blocked {
            if let Err(e) = stream.writable().await {
                debug!(conn = cid.0, error = %e, "write failed");
                break 'conn;
            }
        } else {
            tokio::select! {
                r = stream.readable() => {
                    if let Err(e) = r {
                        debug!(conn = cid.0, error = %e, "read failed");
                        break 'conn;
                    }
                    readable = true;
                }
                () = notify.notified() => {}
            }
        }
        let mut guard = shared.lock();
        let st = &mut *guard;
        // 1. read (the scratch buffer holds only what this read brings)
        let mut pos = 0;
        st.scratch.clear();
        if readable {
            let buf = if inbuf.is_empty() {
                if st.scratch.capacity() < READ_CHUNK {
                    st.scratch.reserve(READ_CHUNK);
                }
                &mut st.scratch
            } else {
                if inbuf.capacity() - inbuf.len() < 4096 {
                    inbuf.reserve(READ_CHUNK.min(inbuf.len() + 4096));
                }
                &mut inbuf
            };
            match read_some(&stream, buf) {
                Ok(Some(0)) => break 'conn,
                Ok(_) => {}
                Err(e) => {
                    debug!(conn = cid.0, error = %e, "read failed");
                    break 'conn;
                }
            }
        }
        // 2. handle, `max` requests per batch, writing each batch's replies
        let mut broken = false;
        loop {
            let from_scratch = inbuf.is_empty();
            let src: &[u8] = if from_scratch {
                &st.scratch[pos..]
            } else {
                &inbuf
            };
            if src.is_empty() {
                break;
            }
            let (used, handled) = match st.server.feed(cid, src, max) {
                Ok(r) => r,
                Err(e) => {
                    debug!(conn = cid.0, domid = domid.0, error = %e, "closing connection");
                    broken = true;
                    (0, 0)
                }
            };
            if from_scratch {
                pos += used;
            } else {
                inbuf.drain(..used);
            }
            // effects first: a client told "introduced" may connect at once
            if st.server.has_effects() {
                let effects = st.server.take_effects();
                apply_effects(&shared, st, effects);
            }
            // watch events for others first: they are what other clients
            // wait on, while our client gets its replies a write later
            flush_others(&mut st.server, &st.io, &mut st.rings, cid);
            match flush(&mut st.server, &stream, cid) {
                Ok(true) => blocked = false,
                Ok(false) => blocked = true,
                Err(e) => {
                    debug!(conn = cid.0, error = %e, "write failed");
                    broken = true;
                }
            }
            if broken || blocked || handled < max {
                break;
            }
        }
        if pos < st.scratch.len() {
            inbuf.extend_from_slice(&st.scratch[pos..]);
        }
        if inbuf.is_empty() && inbuf.capacity() > 0 {
            inbuf = Vec::new();
        }
        // 3. output queued by others (we were woken) or left from before
        if !broken {
            match flush(&mut st.server, &stream, cid) {
                Ok(all) => blocked = !all,
                Err(e) => {
                    debug!(conn = cid.0, error = %e, "write failed");
                    broken = true;
                }
            }
        }
        if broken || (st.server.is_closing(cid) && !blocked) {
            break 'conn;
        }
    }
    let mut st = shared.lock();
    st.server.disconnect(cid);
    st.io.remove(&cid);
    drop(st);
    drop(slot);
    debug!(conn = cid.0, domid = domid.0, "connection closed");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An idle connection must stay cheap (1000 domains = 1000 of them).
    #[tokio::test]
    async fn connection_task_is_small() {
        let (a, _b) = UnixStream::pair().unwrap();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(Quotas::default())),
            domain_dir: None,
        });
        let fut = serve_conn(
            shared,
            a,
            DomId::DOM0,
            ConnSlot(Arc::new(AtomicUsize::new(1))),
        );
        let size = std::mem::size_of_val(&fut);
        eprintln!("serve_conn future: {size} bytes");
        assert!(size < 2048, "{size}");
    }
}
