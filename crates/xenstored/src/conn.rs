//! Per-connection state: who it is, its pending output, transactions and
//! watches (cxenstored `struct connection`).

use std::collections::HashMap;

use xenstore::DomId;
use xenstore::wire::{Header, MsgType};

use crate::hash::FastState;
use crate::transaction::Transaction;

/// Cap on queued output for an unprivileged connection: past it, watch
/// events for that connection are dropped (a guest that never reads must
/// not make the server grow without bound; oxenstored limits queued events
/// the same way, cxenstored drops events older than 20 s). The memory
/// quota usually bites first: queued output is charged to the domain.
pub(crate) const MAX_PENDING_OUTPUT: usize = 1 << 20;

/// Bytes a watch costs its domain besides its path and token.
pub(crate) const WATCH_OVERHEAD: u64 = 64;

/// One client connection.
pub(crate) struct Conn {
    /// The domain it acts as.
    pub domid: DomId,
    /// Encoded replies and events not yet taken by the IO layer.
    pub out: Vec<u8>,
    /// Bytes of `out` charged to the domain's memory.
    pub charged: usize,
    /// Open transactions by id.
    pub txs: HashMap<u32, Transaction, FastState>,
    /// Registered watches: (absolute path or `@name`, token).
    pub watches: Vec<(Box<str>, Box<str>)>,
    /// Set when the server wants the connection closed (domain released).
    pub closing: bool,
    /// True while on the server's dirty list.
    pub dirty: bool,
    /// Events dropped because `out` was full or the domain over quota.
    pub dropped_events: u64,
}

impl Conn {
    pub(crate) fn new(domid: DomId) -> Conn {
        Conn {
            domid,
            out: Vec::new(),
            charged: 0,
            txs: HashMap::default(),
            watches: Vec::new(),
            closing: false,
            dirty: false,
            dropped_events: 0,
        }
    }

    /// Append a WATCH_EVENT.
    pub(crate) fn push_event(&mut self, epath: &str, token: &str) {
        let len = epath.len() + token.len() + 2;
        let h = Header {
            msg_type: MsgType::WatchEvent.to_u32(),
            req_id: 0,
            tx_id: 0,
            len: u32::try_from(len).unwrap_or(u32::MAX),
        };
        self.out.extend_from_slice(&h.encode());
        self.out.extend_from_slice(epath.as_bytes());
        self.out.push(0);
        self.out.extend_from_slice(token.as_bytes());
        self.out.push(0);
    }
}
