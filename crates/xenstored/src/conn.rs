//! Per-connection state: who it is, its pending output, transactions and
//! watches (cxenstored `struct connection`).

use std::collections::HashMap;

use xenstore::DomId;
use xenstore::wire::{Header, MsgType};

use crate::hash::FastState;
use crate::server::ConnId;
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

/// The connections, in slots: a [`ConnId`] is a slot index (low 32 bits)
/// and that slot's generation (high 32 bits), so lookups are an index,
/// not a hash, and a stale id never finds a newer connection.
#[derive(Default)]
pub(crate) struct Conns {
    slots: Vec<(u32, Option<Conn>)>,
    free: Vec<u32>,
    len: usize,
}

fn split(id: ConnId) -> (usize, u32) {
    // truncations intended: the two halves of the id
    ((id.0 & 0xffff_ffff) as usize, (id.0 >> 32) as u32)
}

impl Conns {
    pub(crate) fn insert(&mut self, c: Conn) -> ConnId {
        self.len += 1;
        let i = match self.free.pop() {
            Some(i) => i as usize,
            None => {
                self.slots.push((0, None));
                self.slots.len() - 1
            }
        };
        let slot = &mut self.slots[i];
        slot.0 = slot.0.wrapping_add(1);
        slot.1 = Some(c);
        ConnId((u64::from(slot.0) << 32) | i as u64)
    }

    pub(crate) fn get(&self, id: ConnId) -> Option<&Conn> {
        let (i, g) = split(id);
        match self.slots.get(i) {
            Some((sg, Some(c))) if *sg == g => Some(c),
            _ => None,
        }
    }

    pub(crate) fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        let (i, g) = split(id);
        match self.slots.get_mut(i) {
            Some((sg, Some(c))) if *sg == g => Some(c),
            _ => None,
        }
    }

    pub(crate) fn remove(&mut self, id: ConnId) -> Option<Conn> {
        let (i, g) = split(id);
        let slot = self.slots.get_mut(i)?;
        if slot.0 != g {
            return None;
        }
        let c = slot.1.take()?;
        self.free.push(i as u32);
        self.len -= 1;
        Some(c)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (ConnId, &Conn)> {
        self.slots.iter().enumerate().filter_map(|(i, (g, c))| {
            c.as_ref()
                .map(|c| (ConnId((u64::from(*g) << 32) | i as u64), c))
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}
