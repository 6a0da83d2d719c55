//! A connection as the IO loop sees it: its transport, its unhandled
//! input, its readiness.

use std::io::{Read, Write};

use mio::net::UnixStream;
use xenstore::DomId;
use xenstore::wire::{HEADER_LEN, Header, PAYLOAD_MAX};

use crate::server::ConnId;

/// How a connection's bytes move.
pub(super) enum Transport {
    /// A unix stream socket.
    Socket(UnixStream),
}

impl Transport {
    pub(super) fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Transport::Socket(s) => s.read(buf),
        }
    }

    pub(super) fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Transport::Socket(s) => s.write(buf),
        }
    }
}

/// Input read but not handled yet. Handled requests are consumed by
/// moving a start offset (no copying per turn); the rest is moved to the
/// front only when more input is appended.
#[derive(Default)]
pub(super) struct InBuf {
    pub(super) buf: Vec<u8>,
    pub(super) start: usize,
}

impl InBuf {
    pub(super) fn is_empty(&self) -> bool {
        self.start == self.buf.len()
    }

    pub(super) fn data(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    pub(super) fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.buf.len());
        if self.is_empty() {
            self.buf.clear();
            self.start = 0;
        }
    }

    pub(super) fn extend(&mut self, bytes: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Free the buffer of an idle connection.
    pub(super) fn shrink(&mut self) {
        if self.is_empty() && self.buf.capacity() > 0 {
            *self = InBuf::default();
        }
    }
}

/// What the daemon keeps for each open connection.
pub(super) struct ConnIo {
    pub(super) transport: Transport,
    pub(super) cid: ConnId,
    pub(super) domid: DomId,
    /// Requests read but not handled yet (a partial one, or what a turn's
    /// budget left); empty (and unallocated) for an idle connection.
    pub(super) inbuf: InBuf,
    /// The transport may have bytes to read.
    pub(super) readable: bool,
    /// Output is waiting for the transport to take it.
    pub(super) blocked: bool,
    /// Registered for writability (only while blocked: a socket that is
    /// always writable would wake the loop each time its peer reads).
    pub(super) write_interest: bool,
    /// The listener (domain) it came from, for the connection limit.
    pub(super) listener: Option<usize>,
}

/// True if `buf` starts with a complete request (or a header announcing
/// an oversized one, which the server refuses at once).
pub(super) fn has_request(buf: &[u8]) -> bool {
    match Header::decode(buf) {
        Some(h) => h.len as usize > PAYLOAD_MAX || buf.len() >= HEADER_LEN + h.len as usize,
        None => false,
    }
}
