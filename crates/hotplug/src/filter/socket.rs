//! The nfnetlink I/O: one long-lived `NETLINK_NETFILTER` socket, opened in
//! the namespace of the thread that creates the [`Nft`] handle.
//!
//! Long-lived on purpose: closing an nfnetlink socket makes nf_tables
//! flush its deferred destruction work synchronously (an RCU grace
//! period, `nft_rcv_nl_event`), which costs milliseconds on a busy host
//! after a batch that deleted anything; one socket per operation made each
//! vif online 10 ms slower.
//!
//! nfnetlink handles a request inside the `sendmsg` call (batches
//! included), so the replies are queued by the time it returns; a receive
//! timeout only guards against a kernel that never answers. Replies are
//! matched by sequence number, and anything left over from a failed
//! request is drained before the next one.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rtnetlink::sys::Socket;

use super::rules::{Batch, TABLE_PREFIX, USERDATA_TAG, table_name};
use super::wire::{
    Attrs, Msg, MsgBuf, NETLINK_NETFILTER, NFNL_SUBSYS_NFTABLES, NFPROTO_NETDEV, NLM_F_DUMP,
    NLM_F_MULTI, NLMSG_DONE, NLMSG_ERROR, NlMsg, counter, messages, obj, table,
};
use super::{DropCounters, DropReason, FilterMode, FilterSpec, FilterStatus};
use crate::error::{Error, Result};

/// How long to wait for the kernel's answer.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// Receive buffer per `recv` (dump parts are at most a few pages).
const RECV_BUF: usize = 64 * 1024;

fn nft_err(what: impl Into<String>, source: std::io::Error) -> Error {
    Error::Nftables {
        what: what.into(),
        source,
    }
}

/// A sequence number source shared by all sockets of the process.
fn next_seq(n: u32) -> u32 {
    static SEQ: AtomicU32 = AtomicU32::new(1);
    SEQ.fetch_add(n, Ordering::Relaxed)
}

struct Conn {
    sock: Socket,
}

/// The nf_tables socket of a [`crate::NetlinkOps`].
#[derive(Debug)]
pub(crate) struct Nft {
    conn: std::sync::Mutex<Conn>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Conn")
    }
}

impl Nft {
    /// Open the socket in the calling thread's network namespace.
    pub(crate) fn open() -> Result<Nft> {
        Ok(Nft {
            conn: std::sync::Mutex::new(Conn::open("open an nf_tables socket")?),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&Conn) -> Result<T>) -> Result<T> {
        // A poisoned lock only means another request panicked; the socket
        // itself is fine (stale replies are drained below).
        let c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        c.drain();
        f(&c)
    }
}

impl Conn {
    fn open(what: &str) -> Result<Conn> {
        let mut sock = Socket::new(NETLINK_NETFILTER).map_err(|e| nft_err(what, e))?;
        sock.bind_auto().map_err(|e| nft_err(what, e))?;
        let tv =
            nix::sys::time::TimeVal::new(i64::try_from(REPLY_TIMEOUT.as_secs()).unwrap_or(5), 0);
        nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::ReceiveTimeout, &tv)
            .map_err(|e| nft_err(what, e.into()))?;
        Ok(Conn { sock })
    }

    fn send(&self, what: &str, bytes: &[u8]) -> Result<()> {
        let n = self.sock.send(bytes, 0).map_err(|e| nft_err(what, e))?;
        if n != bytes.len() {
            return Err(nft_err(
                what,
                std::io::Error::other(format!("short send: {n} of {} bytes", bytes.len())),
            ));
        }
        Ok(())
    }

    /// Drop replies left over from an earlier request that failed early.
    fn drain(&self) {
        let mut buf: Vec<u8> = Vec::with_capacity(RECV_BUF);
        while self.sock.recv(&mut buf, nix::libc::MSG_DONTWAIT).is_ok() {
            buf.clear();
        }
    }

    /// Receive one datagram (one or more netlink messages).
    fn recv(&self, what: &str) -> Result<Vec<u8>> {
        let mut buf: Vec<u8> = Vec::with_capacity(RECV_BUF);
        match self.sock.recv(&mut buf, 0) {
            Ok(_) => Ok(buf),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Err(nft_err(
                what,
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer from the kernel within {REPLY_TIMEOUT:?}"),
                ),
            )),
            Err(e) => Err(nft_err(what, e)),
        }
    }

    /// Send a batch (BEGIN = `first`, acknowledged message = `last`) and
    /// wait for its acknowledgement; an error for any of its messages (or
    /// for the batch as a whole) fails it, and the kernel has rolled it back.
    fn batch(&self, what: &str, bytes: &[u8], first: u32, last: u32) -> Result<()> {
        self.send(what, bytes)?;
        loop {
            let data = self.recv(what)?;
            for m in messages(&data) {
                let ours = m.seq.wrapping_sub(first) <= last.wrapping_sub(first);
                match m.error_code() {
                    Some(0) if m.seq == last => return Ok(()),
                    Some(errno) if errno != 0 && ours => {
                        return Err(nft_err(what, std::io::Error::from_raw_os_error(errno)));
                    }
                    Some(_) | None => {}
                }
            }
        }
    }

    /// One GET (sequence number `seq`): `Ok(None)` on ENOENT.
    fn get(&self, what: &str, seq: u32, req: Vec<u8>) -> Result<Option<Vec<u8>>> {
        self.send(what, &req)?;
        loop {
            let data = self.recv(what)?;
            let Some(m) = messages(&data).find(|m| m.seq == seq) else {
                continue;
            };
            return match m.error_code() {
                Some(0) => Ok(None),
                Some(errno) if errno == nix::libc::ENOENT => Ok(None),
                Some(errno) => Err(nft_err(what, std::io::Error::from_raw_os_error(errno))),
                None => Ok(Some(data)),
            };
        }
    }

    /// A dump (sequence number `seq`): call `f` on every object message
    /// until `NLMSG_DONE`.
    fn dump(
        &self,
        what: &str,
        seq: u32,
        req: Vec<u8>,
        mut f: impl FnMut(&NlMsg<'_>),
    ) -> Result<()> {
        self.send(what, &req)?;
        loop {
            let data = self.recv(what)?;
            let mut more = false;
            for m in messages(&data).filter(|m| m.seq == seq) {
                match m.ty {
                    NLMSG_DONE => return Ok(()),
                    NLMSG_ERROR => match m.error_code() {
                        Some(0) | None => {}
                        Some(errno) => {
                            return Err(nft_err(what, std::io::Error::from_raw_os_error(errno)));
                        }
                    },
                    _ => {
                        more |= m.flags & NLM_F_MULTI != 0;
                        f(&m);
                    }
                }
            }
            if !more {
                return Ok(());
            }
        }
    }
}

fn nft_type(msg: Msg) -> u16 {
    (NFNL_SUBSYS_NFTABLES << 8) | msg as u16
}

/// The userdata of a vif's table, if the table exists.
fn table_userdata(c: &Conn, ifname: &str) -> Result<Option<String>> {
    let name = table_name(ifname);
    let seq = next_seq(1);
    let mut m = MsgBuf::nft(Msg::GetTable, 0, seq, NFPROTO_NETDEV);
    m.str(table::NAME, &name);
    let what = format!("look up table netdev {name}");
    let Some(data) = c.get(&what, seq, m.finish())? else {
        return Ok(None);
    };
    let ud = messages(&data)
        .find(|m| m.ty == nft_type(Msg::NewTable))
        .and_then(|m| m.attrs().get(table::USERDATA))
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default();
    Ok(Some(ud))
}

/// Install (or replace) the filter of `spec.ifname`. Returns false when the
/// identical filter was already in force (its counters are kept).
pub(crate) fn install(nft: &Nft, spec: &FilterSpec) -> Result<bool> {
    let what = format!("install filter on {}", spec.ifname);
    nft.with(|c| install_on(c, &what, spec))
}

fn install_on(c: &Conn, what: &str, spec: &FilterSpec) -> Result<bool> {
    let existing = table_userdata(c, &spec.ifname)?;
    if existing.as_deref() == Some(spec.userdata().as_str()) {
        return Ok(false);
    }
    // The lock of `Nft` is held from the lookup to the commit, so the
    // table cannot appear in between (the agent is its only writer).
    let mut b = Batch::new(next_seq(1024));
    if existing.is_some() {
        b.delete_table(&table_name(&spec.ifname));
    }
    b.create_filter(spec);
    let (bytes, first, last) = b.finish();
    c.batch(what, &bytes, first, last)?;
    Ok(true)
}

/// Remove the filter of `ifname`; returns whether there was one.
pub(crate) fn remove(nft: &Nft, ifname: &str) -> Result<bool> {
    let what = format!("remove filter of {ifname}");
    nft.with(|c| {
        let existed = table_userdata(c, ifname)?.is_some();
        if existed {
            let mut b = Batch::new(next_seq(16));
            b.delete_table(&table_name(ifname));
            let (bytes, first, last) = b.finish();
            c.batch(&what, &bytes, first, last)?;
        }
        Ok(existed)
    })
}

/// The filter in force on `ifname` and its counters; `None` if none.
pub(crate) fn status(nft: &Nft, ifname: &str) -> Result<Option<FilterStatus>> {
    let what = format!("read filter of {ifname}");
    nft.with(|c| status_on(c, &what, ifname))
}

fn status_on(c: &Conn, what: &str, ifname: &str) -> Result<Option<FilterStatus>> {
    let Some(ud) = table_userdata(c, ifname)? else {
        return Ok(None);
    };
    let mode = ud
        .strip_prefix(USERDATA_TAG)
        .and_then(|r| r.split_whitespace().next())
        .and_then(FilterMode::parse)
        .ok_or_else(|| {
            nft_err(
                what,
                std::io::Error::other(format!("table {} is not ours ({ud:?})", table_name(ifname))),
            )
        })?;
    let mut drops = DropCounters::default();
    let seq = next_seq(1);
    let mut m = MsgBuf::nft(Msg::GetObj, NLM_F_DUMP, seq, NFPROTO_NETDEV);
    m.str(obj::TABLE, &table_name(ifname))
        .be32(obj::TYPE, obj::COUNTER);
    c.dump(what, seq, m.finish(), |msg| {
        let a = msg.attrs();
        if a.get_str(obj::TABLE) != Some(table_name(ifname).as_str()) {
            return;
        }
        let Some(name) = a.get_str(obj::NAME) else {
            return;
        };
        let Some(reason) = DropReason::ALL.into_iter().find(|r| r.as_str() == name) else {
            return;
        };
        let packets = a
            .get(obj::DATA)
            .and_then(|d| Attrs::nested(d).get_be64(counter::PACKETS))
            .unwrap_or(0);
        *drops.slot(reason) = packets;
    })?;
    Ok(Some(FilterStatus {
        ifname: ifname.to_string(),
        mode,
        drops,
    }))
}

/// Every vif filter with its counters, in two dumps (tables, then counter
/// objects) whatever the number of vifs: for publishing all ports at once.
pub(crate) fn all_status(nft: &Nft) -> Result<Vec<FilterStatus>> {
    let what = "read all filters";
    nft.with(|c| {
        let mut out: Vec<FilterStatus> = Vec::new();
        let seq = next_seq(1);
        let m = MsgBuf::nft(Msg::GetTable, NLM_F_DUMP, seq, NFPROTO_NETDEV);
        c.dump(what, seq, m.finish(), |msg| {
            let a = msg.attrs();
            let Some(ifname) = a
                .get_str(table::NAME)
                .and_then(|n| n.strip_prefix(TABLE_PREFIX))
            else {
                return;
            };
            let ud = a.get(table::USERDATA).map(String::from_utf8_lossy);
            let mode = ud
                .as_deref()
                .and_then(|u| u.strip_prefix(USERDATA_TAG))
                .and_then(|r| r.split_whitespace().next())
                .and_then(FilterMode::parse);
            if let Some(mode) = mode {
                out.push(FilterStatus {
                    ifname: ifname.to_string(),
                    mode,
                    drops: DropCounters::default(),
                });
            }
        })?;
        out.sort_by(|a, b| a.ifname.cmp(&b.ifname));
        let seq = next_seq(1);
        let mut m = MsgBuf::nft(Msg::GetObj, NLM_F_DUMP, seq, NFPROTO_NETDEV);
        m.be32(obj::TYPE, obj::COUNTER);
        c.dump(what, seq, m.finish(), |msg| {
            let a = msg.attrs();
            let Some(ifname) = a
                .get_str(obj::TABLE)
                .and_then(|n| n.strip_prefix(TABLE_PREFIX))
            else {
                return;
            };
            let Some(reason) = a
                .get_str(obj::NAME)
                .and_then(|n| DropReason::ALL.into_iter().find(|r| r.as_str() == n))
            else {
                return;
            };
            if let Ok(i) = out.binary_search_by(|s| s.ifname.as_str().cmp(ifname)) {
                let packets = a
                    .get(obj::DATA)
                    .and_then(|d| Attrs::nested(d).get_be64(counter::PACKETS))
                    .unwrap_or(0);
                *out[i].drops.slot(reason) = packets;
            }
        })?;
        Ok(out)
    })
}

/// The vifs that have a filter table (by interface name).
pub(crate) fn filtered(nft: &Nft) -> Result<Vec<String>> {
    let what = "list filter tables";
    nft.with(|c| {
        let mut out = Vec::new();
        let seq = next_seq(1);
        let m = MsgBuf::nft(Msg::GetTable, NLM_F_DUMP, seq, NFPROTO_NETDEV);
        c.dump(what, seq, m.finish(), |msg| {
            if let Some(name) = msg.attrs().get_str(table::NAME) {
                if let Some(ifname) = name.strip_prefix(TABLE_PREFIX) {
                    out.push(ifname.to_string());
                }
            }
        })?;
        out.sort();
        Ok(out)
    })
}
