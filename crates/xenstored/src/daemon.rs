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

use std::collections::HashMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};
use xenstore::DomId;

use crate::error::{Error, Result};
use crate::quota::Quotas;
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

struct State {
    server: Server,
    wakers: HashMap<ConnId, Arc<Notify>>,
    listeners: HashMap<u16, (PathBuf, JoinHandle<()>)>,
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
    if let Some(dir) = &config.domain_socket_dir {
        std::fs::create_dir_all(dir).map_err(|source| Error::File {
            path: dir.clone(),
            source,
        })?;
    }
    let listener = bind(&config.socket)?;
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            server: Server::new(config.quotas.clone()),
            wakers: HashMap::new(),
            listeners: HashMap::new(),
        }),
        domain_dir: config.domain_socket_dir.clone(),
    });
    info!(socket = %config.socket.display(), "xenstored listening");
    let acceptor = tokio::spawn(accept_loop(shared.clone(), listener, DomId::DOM0));
    shutdown.await;
    acceptor.abort();
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

async fn serve_conn(shared: Arc<Shared>, stream: UnixStream, domid: DomId, slot: ConnSlot) {
    let notify = Arc::new(Notify::new());
    let (cid, max) = {
        let mut st = shared.lock();
        let cid = st.server.connect(domid);
        st.wakers.insert(cid, notify.clone());
        let max = if domid == DomId::DOM0 {
            usize::MAX
        } else {
            (st.server.quotas().outstanding as usize).max(1)
        };
        (cid, max)
    };
    debug!(conn = cid.0, domid = domid.0, "connection opened");
    let (rd, mut wr) = stream.into_split();
    // An idle connection holds no buffers: the input buffer is allocated
    // when the socket is readable and freed once fully consumed, and output
    // buffers are dropped after each write (1000 idle domains cost little).
    let mut inbuf: Vec<u8> = Vec::new();
    'conn: loop {
        tokio::select! {
            r = rd.readable() => {
                if let Err(e) = r {
                    debug!(conn = cid.0, error = %e, "read failed");
                    break 'conn;
                }
                if inbuf.capacity() - inbuf.len() < 4096 {
                    inbuf.reserve(READ_CHUNK.min(inbuf.len() + 4096));
                }
                match rd.try_read_buf(&mut inbuf) {
                    Ok(0) => break 'conn,
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        // spurious readiness (e.g. right after accept)
                        if inbuf.is_empty() {
                            inbuf = Vec::new();
                        }
                        continue 'conn;
                    }
                    Err(e) => {
                        debug!(conn = cid.0, error = %e, "read failed");
                        break 'conn;
                    }
                }
            }
            () = notify.notified() => {}
        }
        loop {
            let (out, more, broken, closing) = {
                let mut st = shared.lock();
                let (broken, more) = match st.server.feed(cid, &inbuf, max) {
                    Ok((used, handled)) => {
                        inbuf.drain(..used);
                        (false, handled == max)
                    }
                    Err(e) => {
                        debug!(conn = cid.0, domid = domid.0, error = %e, "closing connection");
                        (true, false)
                    }
                };
                let out = st.server.take_output(cid);
                for d in st.server.take_dirty() {
                    if d != cid {
                        if let Some(w) = st.wakers.get(&d) {
                            w.notify_one();
                        }
                    }
                }
                let effects = st.server.take_effects();
                if !effects.is_empty() {
                    apply_effects(&shared, &mut st, effects);
                }
                let closing = st.server.is_closing(cid);
                (out, more, broken, closing)
            };
            if !out.is_empty() {
                if let Err(e) = wr.write_all(&out).await {
                    debug!(conn = cid.0, error = %e, "write failed");
                    break 'conn;
                }
            }
            if broken || closing {
                break 'conn;
            }
            if !more {
                if inbuf.is_empty() {
                    inbuf = Vec::new();
                }
                break;
            }
        }
    }
    let mut st = shared.lock();
    st.server.disconnect(cid);
    st.wakers.remove(&cid);
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
            state: Mutex::new(State {
                server: Server::new(Quotas::default()),
                wakers: HashMap::new(),
                listeners: HashMap::new(),
            }),
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
