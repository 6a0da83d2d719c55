//! Per-connection state: who it is, its pending output, transactions and
//! watches (cxenstored `struct connection`).

use std::collections::HashMap;

use xenstore::DomId;

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
