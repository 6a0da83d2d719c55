//! Per-connection state: who it is, its pending output, transactions and
//! watches (cxenstored `struct connection`).

use std::collections::HashMap;

use tracing::debug;
use xenstore::DomId;
use xenstore::wire::{Header, MsgType};

use crate::hash::FastState;
use crate::server::ConnId;

use crate::transaction::Transaction;

/// Cap on queued output for an unprivileged connection: past it, watch
/// events for that connection are dropped (a guest that never reads must
/// not make the server grow without bound; oxenstored limits queued events
/// the same way, cxenstored drops events older than 20 s).
pub(crate) const MAX_PENDING_OUTPUT: usize = 1 << 20;

/// One client connection.
pub(crate) struct Conn {
    /// The domain it acts as.
    pub domid: DomId,
    /// Encoded replies and events not yet taken by the IO layer.
    pub out: Vec<u8>,
    /// Open transactions by id.
    pub txs: HashMap<u32, Transaction>,
    /// Registered watches: (absolute path or `@name`, token).
    pub watches: Vec<(Box<str>, Box<str>)>,
    /// Set when the server wants the connection closed (domain released).
    pub closing: bool,
    /// True while on the server's dirty list.
    pub dirty: bool,
    /// Events dropped because `out` was full.
    pub dropped_events: u64,
}

impl Conn {
    pub(crate) fn new(domid: DomId) -> Conn {
        Conn {
            domid,
            out: Vec::new(),
            txs: HashMap::new(),
            watches: Vec::new(),
            closing: false,
            dirty: false,
            dropped_events: 0,
        }
    }
}

/// Queue a WATCH_EVENT on connection `cid` of `conns`, marking it dirty
/// (dropped if an unprivileged connection has too much unread output).
pub(crate) fn queue_event(
    conns: &mut HashMap<ConnId, Conn, FastState>,
    dirty: &mut Vec<ConnId>,
    cid: ConnId,
    epath: &str,
    token: &str,
    force: bool,
) {
    let Some(c) = conns.get_mut(&cid) else {
        return;
    };
    if !force && c.domid != DomId::DOM0 && c.out.len() > MAX_PENDING_OUTPUT {
        c.dropped_events += 1;
        debug!(
            conn = cid.0,
            domid = c.domid.0,
            dropped = c.dropped_events,
            "watch event dropped: output full"
        );
        return;
    }
    let len = epath.len() + token.len() + 2;
    let h = Header {
        msg_type: MsgType::WatchEvent.to_u32(),
        req_id: 0,
        tx_id: 0,
        len: u32::try_from(len).unwrap_or(u32::MAX),
    };
    c.out.extend_from_slice(&h.encode());
    c.out.extend_from_slice(epath.as_bytes());
    c.out.push(0);
    c.out.extend_from_slice(token.as_bytes());
    c.out.push(0);
    if !c.dirty {
        c.dirty = true;
        dirty.push(cid);
    }
}
