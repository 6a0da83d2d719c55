//! The IO layer around [`Server`]: one thread, one `epoll` (through `mio`),
//! and the fair scheduler of [`crate::sched`].
//!
//! * The main socket: every connection is dom0 (privileged), as with the
//!   4.17 daemons.
//! * With a domain socket directory: when dom0 INTRODUCEs domain N the
//!   daemon creates `DIR/N.sock`; connections there act as domain N
//!   (unprivileged, quotas apply). RELEASE removes the socket and closes
//!   those connections.
//!
//! Each loop iteration waits for readiness (without blocking while some
//! connection is ready), then gives every group of ready connections one
//! turn (`Daemon::turn`): read what the socket holds, handle requests
//! within the turn's [`Budget`], write the replies and the watch events
//! they caused for others. A synchronous round trip costs three system
//! calls (wait, read, write); pipelined requests share them.
//!
//! Why not tokio: a task wake-up, its `Notify` and the shared lock cost as
//! many instructions as the request itself (measured with callgrind), and
//! fairness across connections needs one place that sees them all. The
//! loop is single-threaded like cxenstored's, so the core needs no lock.
//!
//! Shared rings (real Xen) plug in two ways. Today: a ring set implements
//! [`Rings`] — its event channel descriptor joins the same epoll, and it
//! gets one turn per round between the socket groups' turns, serving each
//! ring within the same budgets ([`Budget`]: the domain's outstanding
//! quota, [`DOMU_TURN_WORK`]). Finer, later: a ring becomes another
//! `Transport` variant of one connection (read/write the ring, notify the
//! port after writing); the ring set only maps event channel ports to
//! connections, sets their `readable` flag and calls [`Daemon::wake`],
//! and each ring then takes its turns in its domain's group like any
//! socket.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mio::net::{UnixListener, UnixStream};
use mio::{Events, Interest, Poll, Token, Waker};
use tracing::{debug, info, warn};
use xenstore::DomId;

use crate::error::{Error, Result};
use crate::hash::FastState;
use crate::quota::Quotas;
use crate::sched::{Group, Sched};
use crate::server::{Budget, ConnId, Effect, Server};

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

/// Connections one unprivileged domain may hold open on its socket (on
/// real Xen a domain has exactly one ring; this bounds what a guest can
/// take of the daemon's file descriptors).
const MAX_DOMAIN_CONNECTIONS: usize = 64;
/// Bytes read per system call.
const READ_CHUNK: usize = 32 * 1024;
/// A turn ends early once this much output is queued for the connection.
const OUT_HIGH: usize = 64 * 1024;
/// A privileged connection's turn (dom0's kernel ring's too).
pub(crate) const DOM0_TURN: Budget = Budget {
    requests: 256,
    work: 16_384,
};
/// Work units in an unprivileged connection's turn (its request count is
/// the domain's `outstanding` quota, 20 by default, as Xen 4.17 serves at
/// most 20 outstanding requests of a domain). Well under 0.1 ms of work: a
/// write to a 1000-level path costs about 1000 units (70 µs), a simple
/// request about 25.
pub const DOMU_TURN_WORK: u64 = 1_024;
/// Retry `accept` after this long when it failed (EMFILE and friends).
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

const WAKER: Token = Token(0);
/// The token of [`Rings::poll_fd`] (slot tokens count up from 1).
const RINGS: Token = Token(usize::MAX);

/// Connections that are not unix sockets, served by the same loop: on a
/// real Xen host, dom0's kernel ring and every introduced domain's shared
/// ring with its event channel. The loop registers [`Rings::poll_fd`]
/// (the event channel device) with its epoll, and gives the rings one
/// turn per round whenever that descriptor is readable or
/// [`Rings::more_work`] says so — the same round in which every group of
/// socket connections gets its turn, so neither can starve the other.
/// Inside its turn a ring set serves each ring within a bounded budget
/// (the outstanding quota, as a socket connection's turn).
pub trait Rings: Send {
    /// A descriptor that becomes readable when a ring needs a turn.
    fn poll_fd(&self) -> std::io::Result<std::os::fd::OwnedFd>;
    /// Serve what is pending.
    fn turn(&mut self, server: &mut Server);
    /// True if `cid` is one of the ring connections.
    fn serves(&self, cid: ConnId) -> bool;
    /// Write the output queued for ring connection `cid`.
    fn flush(&mut self, server: &mut Server, cid: ConnId);
    /// React to the core's effects (INTRODUCE maps a ring, RELEASE
    /// unmaps it).
    fn on_effects(&mut self, server: &mut Server, effects: &[Effect]);
    /// True if a ring has work left (serve it again without waiting).
    fn more_work(&self) -> bool;
    /// If set, give the rings a turn after this long even without an
    /// event (a safety net while a ring waits for its peer, e.g. for
    /// response space: a lost kick then costs a delay, not a wedged
    /// guest).
    fn recheck_after(&self) -> Option<Duration> {
        None
    }
}

enum Slot {
    Conn(ConnIo),
    Listener(ListenerIo),
}

struct ListenerIo {
    listener: UnixListener,
    domid: DomId,
    path: PathBuf,
    open: usize,
}

/// Wakes a running [`Daemon`] to stop it (from another thread or a signal
/// waiter).
#[derive(Clone)]
pub struct Stopper {
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
}

impl std::fmt::Debug for Stopper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stopper").finish_non_exhaustive()
    }
}

impl Stopper {
    /// Make [`Daemon::run`] return (after removing its sockets).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.waker.wake();
    }
}

/// The daemon: sockets bound, ready to [`Daemon::run`].
pub struct Daemon {
    poll: Poll,
    server: Server,
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    by_cid: HashMap<ConnId, usize, FastState>,
    by_domain: HashMap<u16, usize, FastState>,
    sched: Sched,
    scratch: Box<[u8]>,
    domain_dir: Option<PathBuf>,
    main_socket: PathBuf,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    accept_retry: bool,
    /// Shared rings (real Xen) and their event channel descriptor.
    rings: Option<(Box<dyn Rings>, std::os::fd::OwnedFd)>,
    rings_ready: bool,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("socket", &self.main_socket)
            .field("server", &self.server)
            .finish_non_exhaustive()
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

fn token(slot: usize) -> Token {
    Token(slot + 1)
}

impl Daemon {
    /// Bind the dom0 socket (and create the domain socket directory).
    pub fn bind(config: &Config) -> Result<Daemon> {
        if let Some(dir) = &config.domain_socket_dir {
            std::fs::create_dir_all(dir).map_err(|source| Error::File {
                path: dir.clone(),
                source,
            })?;
        }
        let poll = Poll::new().map_err(Error::Poll)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER).map_err(Error::Poll)?);
        let mut d = Daemon {
            poll,
            server: Server::new(config.quotas),
            slots: Vec::new(),
            free: Vec::new(),
            by_cid: HashMap::default(),
            by_domain: HashMap::default(),
            sched: Sched::default(),
            scratch: vec![0u8; READ_CHUNK].into_boxed_slice(),
            domain_dir: config.domain_socket_dir.clone(),
            main_socket: config.socket.clone(),
            stop: Arc::new(AtomicBool::new(false)),
            waker,
            accept_retry: false,
            rings: None,
            rings_ready: false,
        };
        let l = bind(&config.socket)?;
        d.add_listener(l, DomId::DOM0, config.socket.clone())
            .map_err(|source| Error::Bind {
                path: config.socket.clone(),
                source,
            })?;
        info!(socket = %config.socket.display(), "xenstored listening");
        Ok(d)
    }

    /// Serve `rings` too (see [`Rings`]).
    pub fn add_rings(&mut self, rings: Box<dyn Rings>) -> Result<()> {
        use std::os::fd::AsRawFd;
        let fd = rings.poll_fd().map_err(Error::Poll)?;
        self.poll
            .registry()
            .register(
                &mut mio::unix::SourceFd(&fd.as_raw_fd()),
                RINGS,
                Interest::READABLE,
            )
            .map_err(Error::Poll)?;
        self.rings = Some((rings, fd));
        // serve whatever was queued before we polled
        self.rings_ready = true;
        Ok(())
    }

    /// The server core, to set up before serving (e.g. the dom0 ring).
    pub fn server_mut(&mut self) -> &mut Server {
        &mut self.server
    }

    /// A handle that stops [`Daemon::run`].
    pub fn stopper(&self) -> Stopper {
        Stopper {
            stop: self.stop.clone(),
            waker: self.waker.clone(),
        }
    }

    /// The server core (for tests and reports).
    pub fn server(&self) -> &Server {
        &self.server
    }

    fn alloc_slot(&mut self, s: Slot) -> usize {
        match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(s);
                i
            }
            None => {
                self.slots.push(Some(s));
                self.slots.len() - 1
            }
        }
    }

    fn add_listener(
        &mut self,
        mut l: UnixListener,
        domid: DomId,
        path: PathBuf,
    ) -> std::io::Result<usize> {
        let i = self.free.last().copied().unwrap_or(self.slots.len());
        self.poll
            .registry()
            .register(&mut l, token(i), Interest::READABLE)?;
        let got = self.alloc_slot(Slot::Listener(ListenerIo {
            listener: l,
            domid,
            path,
            open: 0,
        }));
        debug_assert_eq!(got, i);
        Ok(i)
    }

    /// Serve until stopped, then remove every socket created.
    pub fn run(mut self) -> Result<()> {
        let mut events = Events::with_capacity(256);
        while !self.stop.load(Ordering::SeqCst) {
            let recheck = self.rings.as_ref().and_then(|(r, _)| r.recheck_after());
            let timeout = if !self.sched.is_idle() || self.rings_ready {
                Some(Duration::ZERO)
            } else {
                let retry = self.accept_retry.then_some(ACCEPT_RETRY);
                match (retry, recheck) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                return Err(Error::Poll(e));
            }
            if recheck.is_some() && events.is_empty() {
                self.rings_ready = true;
            }
            if self.accept_retry && events.is_empty() && self.sched.is_idle() {
                self.accept_retry = false;
                let listeners: Vec<usize> = (0..self.slots.len())
                    .filter(|&i| matches!(self.slots[i], Some(Slot::Listener(_))))
                    .collect();
                for i in listeners {
                    self.accept(i);
                }
            }
            for ev in events.iter() {
                if ev.token() == WAKER {
                    continue;
                }
                if ev.token() == RINGS {
                    self.rings_ready = true;
                    continue;
                }
                let i = ev.token().0 - 1;
                match self.slots.get_mut(i) {
                    Some(Some(Slot::Listener(_))) => self.accept(i),
                    Some(Some(Slot::Conn(c))) => {
                        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                            c.readable = true;
                        }
                        let writable = ev.is_writable() || ev.is_write_closed();
                        if writable && c.blocked {
                            self.flush(i);
                        }
                        self.wake(i);
                    }
                    _ => {}
                }
            }
            // one round: every group with work gets one turn, the rings
            // one between them
            if std::mem::take(&mut self.rings_ready) {
                self.rings_turn();
            }
            for _ in 0..self.sched.groups_ready() {
                let Some(i) = self.sched.next_turn() else {
                    break;
                };
                self.turn(i);
            }
        }
        self.shutdown();
        Ok(())
    }

    fn rings_turn(&mut self) {
        let Some((mut r, fd)) = self.rings.take() else {
            return;
        };
        r.turn(&mut self.server);
        self.rings = Some((r, fd));
        if self.server.has_effects() {
            let effects = self.server.take_effects();
            self.apply_effects(effects);
        }
        self.flush_others(None);
        self.rings_ready |= self.rings.as_ref().is_some_and(|(r, _)| r.more_work());
    }

    fn shutdown(&mut self) {
        for s in self.slots.iter().flatten() {
            if let Slot::Listener(l) = s {
                let _ = std::fs::remove_file(&l.path);
            }
        }
        info!("xenstored stopped");
    }

    /// Queue connection `i` for a turn if it has work and may be served.
    pub fn wake(&mut self, i: usize) {
        if let Some(Some(Slot::Conn(c))) = self.slots.get(i) {
            if !c.blocked && (c.readable || has_request(c.inbuf.data())) {
                self.sched.ready(i);
            }
        }
    }

    fn accept(&mut self, i: usize) {
        loop {
            let Some(Some(Slot::Listener(l))) = self.slots.get_mut(i) else {
                return;
            };
            let domid = l.domid;
            match l.listener.accept() {
                Ok((stream, _)) => {
                    if domid != DomId::DOM0 && l.open >= MAX_DOMAIN_CONNECTIONS {
                        debug!(domid = domid.0, "connection refused: too many open");
                        drop(stream);
                        continue;
                    }
                    l.open += 1;
                    self.add_conn(stream, domid, i);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    // EMFILE and friends: keep serving existing connections
                    // and retry a little later (a guest can cause this:
                    // debug level).
                    debug!(domid = domid.0, error = %e, "accept failed");
                    self.accept_retry = true;
                    return;
                }
            }
        }
    }

    fn add_conn(&mut self, mut stream: UnixStream, domid: DomId, listener: usize) {
        let i = self.free.last().copied().unwrap_or(self.slots.len());
        if let Err(e) = self.poll.registry().register(
            &mut stream,
            token(i),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            debug!(error = %e, "cannot register connection");
            self.listener_closed(listener);
            return;
        }
        let cid = self.server.connect(domid);
        let got = self.alloc_slot(Slot::Conn(ConnIo {
            transport: Transport::Socket(stream),
            cid,
            domid,
            inbuf: InBuf::default(),
            readable: true,
            blocked: false,
            write_interest: false,
            listener: Some(listener),
        }));
        debug_assert_eq!(got, i);
        self.by_cid.insert(cid, i);
        self.sched.add(i, Group::of(domid));
        self.sched.ready(i);
        debug!(conn = cid.0, domid = domid.0, "connection opened");
    }

    fn listener_closed(&mut self, listener: usize) {
        if let Some(Some(Slot::Listener(l))) = self.slots.get_mut(listener) {
            l.open = l.open.saturating_sub(1);
        }
    }

    fn close(&mut self, i: usize) {
        let Some(Some(Slot::Conn(_))) = self.slots.get(i) else {
            return;
        };
        let Some(Slot::Conn(mut c)) = self.slots[i].take() else {
            return;
        };
        match &mut c.transport {
            Transport::Socket(s) => {
                let _ = self.poll.registry().deregister(s);
            }
        }
        self.free.push(i);
        self.sched.remove(i);
        self.by_cid.remove(&c.cid);
        self.server.disconnect(c.cid);
        if let Some(l) = c.listener {
            self.listener_closed(l);
        }
        debug!(conn = c.cid.0, domid = c.domid.0, "connection closed");
    }

    /// Write as much of connection `i`'s queued output as the transport
    /// takes. Returns false if the connection broke (and was closed).
    fn flush(&mut self, i: usize) -> bool {
        let Some(Some(Slot::Conn(c))) = self.slots.get_mut(i) else {
            return false;
        };
        let cid = c.cid;
        let mut broken = false;
        loop {
            let out = self.server.output(cid);
            if out.is_empty() {
                c.blocked = false;
                break;
            }
            match c.transport.write(out) {
                Ok(0) => {
                    broken = true;
                    break;
                }
                Ok(n) => self.server.consume_output(cid, n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    c.blocked = true;
                    break;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    debug!(conn = cid.0, error = %e, "write failed");
                    broken = true;
                    break;
                }
            }
        }
        if c.blocked != c.write_interest && !broken {
            let interest = if c.blocked {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            let r = match &mut c.transport {
                Transport::Socket(s) => self.poll.registry().reregister(s, token(i), interest),
            };
            match r {
                Ok(()) => c.write_interest = c.blocked,
                Err(e) => {
                    debug!(conn = cid.0, error = %e, "cannot watch for writability");
                    broken = true;
                }
            }
        }
        let done = !c.blocked && self.server.is_closing(cid);
        if broken || done {
            self.close(i);
            return false;
        }
        true
    }

    /// One turn of connection `i`: read, handle within the budget, write.
    fn turn(&mut self, i: usize) {
        let Some(Some(Slot::Conn(c))) = self.slots.get_mut(i) else {
            return;
        };
        let cid = c.cid;
        let domid = c.domid;
        let budget = if domid == DomId::DOM0 {
            DOM0_TURN
        } else {
            Budget {
                requests: (self.server.quotas_of(domid).outstanding as usize).max(1),
                work: DOMU_TURN_WORK,
            }
        };
        let start_work = self.server.work();
        let mut requests = 0usize;
        // Input is read into the shared scratch buffer (allocated and
        // zeroed once) and handled from there; only what is left over is
        // copied into the connection's own buffer. At most one of the two
        // holds data.
        let mut scratch = std::mem::take(&mut self.scratch);
        let (mut pos, mut len) = (0usize, 0usize);
        let mut broken = false;
        loop {
            let left = Budget {
                requests: budget.requests - requests,
                work: budget.work.saturating_sub(self.server.work() - start_work),
            };
            if left.requests == 0 || left.work == 0 {
                break;
            }
            // 1. requests already buffered
            let from_scratch = c.inbuf.is_empty();
            let src: &[u8] = if from_scratch {
                &scratch[pos..len]
            } else {
                c.inbuf.data()
            };
            if has_request(src) {
                match self.server.feed(cid, src, left) {
                    Ok((used, handled)) => {
                        if from_scratch {
                            pos += used;
                        } else {
                            c.inbuf.consume(used);
                        }
                        requests += handled;
                        if self.server.output_len(cid) > OUT_HIGH {
                            break;
                        }
                        continue;
                    }
                    Err(e) => {
                        debug!(conn = cid.0, domid = domid.0, error = %e, "closing connection");
                        broken = true;
                        break;
                    }
                }
            }
            // 2. a partial request at most: read more
            if !c.readable {
                break;
            }
            if from_scratch && pos < len {
                c.inbuf.extend(&scratch[pos..len]);
            }
            (pos, len) = (0, 0);
            let r = c.transport.read(&mut scratch);
            match r {
                Ok(0) => {
                    broken = true;
                    break;
                }
                Ok(n) => {
                    // A read that does not fill the buffer drained the
                    // socket: with edge-triggered readiness, data arriving
                    // later raises a new event, so no second read that
                    // would fail with EAGAIN.
                    if n < scratch.len() {
                        c.readable = false;
                    }
                    if c.inbuf.is_empty() {
                        len = n;
                    } else {
                        c.inbuf.extend(&scratch[..n]);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => c.readable = false,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    debug!(conn = cid.0, error = %e, "read failed");
                    broken = true;
                    break;
                }
            }
        }
        if pos < len {
            c.inbuf.extend(&scratch[pos..len]);
        }
        c.inbuf.shrink();
        self.scratch = scratch;
        // effects first: a client told "introduced" may connect at once
        // (and a request's effects hold even if its client is gone)
        if self.server.has_effects() {
            let effects = self.server.take_effects();
            self.apply_effects(effects);
        }
        if broken {
            self.close(i);
            self.flush_others(None);
            return;
        }
        // watch events for others first: they are what other clients wait
        // on, while our client gets its replies a write later
        self.flush_others(Some(cid));
        if self.flush(i) {
            self.wake(i);
        }
    }

    /// Write output queued for other connections (watch events, closing).
    fn flush_others(&mut self, except: Option<ConnId>) {
        while let Some(d) = self.server.pop_dirty() {
            if Some(d) == except {
                continue;
            }
            if let Some(&j) = self.by_cid.get(&d) {
                if self.flush(j) {
                    self.wake(j);
                }
            } else if let Some((r, _)) = self.rings.as_mut() {
                if r.serves(d) {
                    r.flush(&mut self.server, d);
                    // replies held back while its ring was full may go on
                    self.rings_ready |= r.more_work();
                }
            }
        }
    }

    fn apply_effects(&mut self, effects: Vec<Effect>) {
        if let Some((r, _)) = self.rings.as_mut() {
            r.on_effects(&mut self.server, &effects);
        }
        let Some(dir) = self.domain_dir.clone() else {
            return;
        };
        for e in effects {
            match e {
                Effect::Introduced(d) => {
                    let path = dir.join(format!("{}.sock", d.0));
                    match bind(&path).and_then(|l| {
                        self.add_listener(l, d, path.clone())
                            .map_err(|source| Error::Bind {
                                path: path.clone(),
                                source,
                            })
                    }) {
                        Ok(i) => {
                            if let Some(old) = self.by_domain.insert(d.0, i) {
                                self.remove_listener(old, false);
                            }
                        }
                        Err(err) => warn!(domid = d.0, error = %err, "cannot create domain socket"),
                    }
                }
                Effect::Released(d) => {
                    if let Some(i) = self.by_domain.remove(&d.0) {
                        self.remove_listener(i, true);
                    }
                    // its connections were marked closing: flush and close
                    let conns: Vec<usize> = self
                        .slots
                        .iter()
                        .enumerate()
                        .filter_map(|(i, s)| match s {
                            Some(Slot::Conn(c)) if c.domid == d => Some(i),
                            _ => None,
                        })
                        .collect();
                    for i in conns {
                        self.flush(i);
                    }
                }
                #[allow(unreachable_patterns)]
                _ => {}
            }
        }
    }

    fn remove_listener(&mut self, i: usize, unlink: bool) {
        if let Some(Some(Slot::Listener(_))) = self.slots.get(i) {
            if let Some(Slot::Listener(mut l)) = self.slots[i].take() {
                let _ = self.poll.registry().deregister(&mut l.listener);
                if unlink {
                    let _ = std::fs::remove_file(&l.path);
                }
                self.free.push(i);
            }
        }
        // connections keep their (now stale) listener index; only the
        // count is affected, so clear it
        for c in self.slots.iter_mut().flatten() {
            if let Slot::Conn(c) = c {
                if c.listener == Some(i) {
                    c.listener = None;
                }
            }
        }
    }
}

/// Serve `config` on this thread until `stopper` (see [`Daemon::stopper`])
/// is used; `ready` runs once the socket is bound.
pub fn serve(config: &Config, ready: impl FnOnce(Stopper)) -> Result<()> {
    let d = Daemon::bind(config)?;
    ready(d.stopper());
    d.run()
}

#[path = "daemon_conn.rs"]
mod conn;
use conn::{ConnIo, InBuf, Transport, has_request};

#[cfg(test)]
#[path = "daemon_tests.rs"]
mod tests;
