//! The xenstore shared ring, sans IO: one domain's request and response
//! rings on its 4 KiB interface page, read and written through the
//! [`SharedPage`] trait so the same code runs on a mapped Xen page, on a
//! page in plain memory (tests, property tests, the `xenstored_ring` fuzz
//! target) and on anything a test wants to make hostile.
//!
//! Layout (xen: `xen/include/public/io/xs_wire.h`, `struct
//! xenstore_domain_interface`; `docs/misc/xenstore-ring.txt`): `req[1024]`
//! at 0, `rsp[1024]` at 1024, then the `u32` indices `req_cons`, `req_prod`,
//! `rsp_cons`, `rsp_prod` at 2048..2064, `server_features` at 2064,
//! `connection` at 2068 and `error` at 2072. Indices run free modulo 2^32;
//! a ring holds at most 1024 bytes.
//!
//! Trust boundary: the other domain writes the whole page whenever it
//! likes, including the indices we own. So every index is read once into a
//! local (a snapshot), checked (`prod - cons <= 1024`, else the `error`
//! field gets `RINGIDX`) and only the local is used; offsets are masked to
//! the ring, so no access leaves the page; the bytes are copied into
//! private memory before anything parses them; a header announcing more
//! than 4096 payload bytes sets `PROTO`. A broken ring stays broken (the
//! C server's `ignore_connection`): nothing is read or written again until
//! the domain is introduced anew or dies. Nothing here panics.

#![forbid(unsafe_code)]

use std::sync::Mutex;

use xenstore::wire::{HEADER_LEN, Header, PAYLOAD_MAX};

/// Size of the interface page.
pub const PAGE_SIZE: usize = 4096;
/// Bytes in each ring (xs_wire.h `XENSTORE_RING_SIZE`).
pub const RING_SIZE: u32 = 1024;
/// Offset of the request ring.
pub const REQ: usize = 0;
/// Offset of the response ring.
pub const RSP: usize = 1024;
/// Offset of `req_cons` (ours: how far we consumed requests).
pub const REQ_CONS: usize = 2048;
/// Offset of `req_prod` (the guest's: how far it produced requests).
pub const REQ_PROD: usize = 2052;
/// Offset of `rsp_cons` (the guest's).
pub const RSP_CONS: usize = 2056;
/// Offset of `rsp_prod` (ours).
pub const RSP_PROD: usize = 2060;
/// Offset of `server_features`.
pub const SERVER_FEATURES: usize = 2064;
/// Offset of `connection`.
pub const CONNECTION: usize = 2068;
/// Offset of `error`.
pub const ERROR: usize = 2072;
/// `connection` values (xs_wire.h `XENSTORE_CONNECTED`, `XENSTORE_RECONNECT`).
pub const CONNECTED: u32 = 0;
/// The guest asks for a reset (only honoured at INTRODUCE, see ringd).
pub const RECONNECT: u32 = 1;
/// The longest frame: header plus the largest payload.
pub const MAX_FRAME: usize = HEADER_LEN + PAYLOAD_MAX;

/// Why a ring was given up (the value written to the page's `error` field,
/// xs_wire.h `XENSTORE_ERROR_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingError {
    /// An index pair was more than a ring apart (`XENSTORE_ERROR_RINGIDX`).
    Index,
    /// A header announced a payload over 4096 bytes (`XENSTORE_ERROR_PROTO`).
    Proto,
}

impl RingError {
    /// The code written to the `error` field.
    pub fn code(self) -> u32 {
        match self {
            RingError::Index => 2,
            RingError::Proto => 3,
        }
    }
}

impl std::fmt::Display for RingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RingError::Index => "ring indices more than a ring apart (RINGIDX)",
            RingError::Proto => "request payload over 4096 bytes (PROTO)",
        })
    }
}

/// The interface page as shared memory: every access is a copy, nothing
/// hands out a reference into it. Implementations must ignore (not panic
/// on) an access outside the page; the ring code never makes one.
pub trait SharedPage {
    /// Load the `u32` at `off` (4-aligned), as one volatile access.
    fn load(&self, off: usize) -> u32;
    /// Store `v` at `off` (4-aligned), as one volatile access.
    fn store(&self, off: usize, v: u32);
    /// Copy `dst.len()` bytes starting at `off` out of the page.
    fn copy_out(&self, off: usize, dst: &mut [u8]);
    /// Copy `src` into the page at `off`.
    fn copy_in(&self, off: usize, src: &[u8]);
    /// A full memory barrier (Xen's `xen_mb()`: `mfence` on x86).
    fn fence(&self) {
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
    }
}

/// A page in plain memory, for tests and fuzzing. Accesses outside the
/// page panic here (they are bugs in the ring code, and the tests must
/// see them), unlike the real mapping, which ignores them.
#[derive(Debug)]
pub struct MemPage {
    bytes: Mutex<Vec<u8>>,
}

impl Default for MemPage {
    fn default() -> Self {
        MemPage {
            bytes: Mutex::new(vec![0; PAGE_SIZE]),
        }
    }
}

impl MemPage {
    fn with<R>(&self, f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
        let mut g = self
            .bytes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut g)
    }
}

#[allow(clippy::panic)] // test double: out-of-page access is a bug to report
fn check_range(off: usize, len: usize) {
    if off.checked_add(len).is_none_or(|end| end > PAGE_SIZE) {
        panic!("access outside the page: {off}+{len}");
    }
}

impl SharedPage for MemPage {
    fn load(&self, off: usize) -> u32 {
        check_range(off, 4);
        self.with(|b| u32::from_ne_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]]))
    }
    fn store(&self, off: usize, v: u32) {
        check_range(off, 4);
        self.with(|b| b[off..off + 4].copy_from_slice(&v.to_ne_bytes()));
    }
    fn copy_out(&self, off: usize, dst: &mut [u8]) {
        check_range(off, dst.len());
        self.with(|b| dst.copy_from_slice(&b[off..off + dst.len()]));
    }
    fn copy_in(&self, off: usize, src: &[u8]) {
        check_range(off, src.len());
        self.with(|b| b[off..off + src.len()].copy_from_slice(src));
    }
}

/// One domain's ring connection: requests read so far (framed) and whether
/// the ring was given up. Replies are written from the caller's output
/// queue ([`Ring::write`] takes what fits; the caller keeps the rest).
#[derive(Debug, Default)]
pub struct Ring {
    /// Bytes read from the request ring, starting at a frame boundary.
    inbuf: Vec<u8>,
    /// Length of the prefix of `inbuf` made of complete frames.
    framed: usize,
    broken: Option<RingError>,
}

/// Request bytes buffered (framed or not) before we stop taking more from
/// the ring: the guest then waits for ring space (backpressure). Room for
/// a largest frame stays whenever the complete ones were handled.
const READ_AHEAD: usize = 2 * MAX_FRAME;

impl Ring {
    /// A fresh connection state.
    pub fn new() -> Ring {
        Ring::default()
    }

    /// Why the ring was given up, if it was.
    pub fn broken(&self) -> Option<RingError> {
        self.broken
    }

    /// Give the ring up: write the error code to the page, serve it no more.
    pub fn fail(&mut self, page: &(impl SharedPage + ?Sized), e: RingError) -> RingError {
        if self.broken.is_none() {
            page.store(ERROR, e.code());
            page.fence();
            self.broken = Some(e);
            self.inbuf = Vec::new();
            self.framed = 0;
        }
        e
    }

    /// Zero the four indices and forget buffered input (XS_INTRODUCE does
    /// this on every introduction: xen `domain_conn_reset`). A guest asking
    /// for `RECONNECT` is told it is connected again.
    pub fn reset(&mut self, page: &(impl SharedPage + ?Sized)) {
        for off in [REQ_CONS, REQ_PROD, RSP_CONS, RSP_PROD] {
            page.store(off, 0);
        }
        page.fence();
        if page.load(CONNECTION) == RECONNECT {
            page.store(CONNECTION, CONNECTED);
            page.fence();
        }
        self.inbuf = Vec::new();
        self.framed = 0;
    }

    /// Complete request frames read so far (header + payload each), for
    /// the server's `feed`; drop what it used with [`Ring::consume`].
    pub fn frames(&self) -> &[u8] {
        &self.inbuf[..self.framed]
    }

    /// True if complete frames are waiting.
    pub fn has_frames(&self) -> bool {
        self.framed > 0
    }

    /// Drop `n` bytes of handled frames from the front (`n` is clamped to
    /// what [`Ring::frames`] returned).
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.framed);
        self.inbuf.drain(..n);
        self.framed -= n;
        if self.inbuf.is_empty() && self.inbuf.capacity() > MAX_FRAME {
            self.inbuf = Vec::new();
        }
    }

    /// True if the guest produced request bytes we have not taken yet
    /// (one snapshot of the indices; a bad pair counts as nothing: the
    /// next [`Ring::read`] reports it).
    pub fn unread(&self, page: &(impl SharedPage + ?Sized)) -> bool {
        if self.broken.is_some() {
            return false;
        }
        page.fence();
        let cons = page.load(REQ_CONS);
        let prod = page.load(REQ_PROD);
        let n = prod.wrapping_sub(cons);
        n != 0 && n <= RING_SIZE
    }

    /// True if replies we published are not all taken by the guest yet
    /// (one snapshot of the indices).
    pub fn replies_pending(&self, page: &(impl SharedPage + ?Sized)) -> bool {
        if self.broken.is_some() {
            return false;
        }
        page.fence();
        let cons = page.load(RSP_CONS);
        let prod = page.load(RSP_PROD);
        let n = prod.wrapping_sub(cons);
        n != 0 && n <= RING_SIZE
    }

    /// Take request bytes from the ring into private memory, both halves
    /// of a wrapped region, until the ring is empty or enough is buffered,
    /// then frame them. Returns whether `req_cons` moved (the guest may be
    /// waiting for space: notify it).
    pub fn read(&mut self, page: &(impl SharedPage + ?Sized)) -> Result<bool, RingError> {
        if let Some(e) = self.broken {
            return Err(e);
        }
        let mut moved = false;
        loop {
            let room = READ_AHEAD.saturating_sub(self.inbuf.len());
            if room == 0 {
                break;
            }
            // snapshot, then a barrier before the data is read (xen: readchn)
            let cons = page.load(REQ_CONS);
            let prod = page.load(REQ_PROD);
            page.fence();
            let avail = prod.wrapping_sub(cons);
            if avail > RING_SIZE {
                return Err(self.fail(page, RingError::Index));
            }
            if avail == 0 {
                break;
            }
            let off = (cons & (RING_SIZE - 1)) as usize;
            let contiguous = RING_SIZE as usize - off;
            let n = (avail as usize).min(contiguous).min(room);
            let start = self.inbuf.len();
            self.inbuf.resize(start + n, 0);
            page.copy_out(REQ + off, &mut self.inbuf[start..]);
            // our copy is complete before the guest may reuse the space
            page.fence();
            page.store(REQ_CONS, cons.wrapping_add(n as u32));
            // and published before we look at req_prod again: without it
            // (a store then a load: the one reordering x86 does) we could
            // miss bytes the guest added after seeing our old req_cons, and
            // it kicks only when it saw the ring empty (linux xb_write)
            page.fence();
            moved = true;
        }
        self.frame(page)?;
        Ok(moved)
    }

    /// Extend the framed prefix over every complete frame now buffered.
    fn frame(&mut self, page: &(impl SharedPage + ?Sized)) -> Result<(), RingError> {
        while let Some(h) = Header::decode(&self.inbuf[self.framed..]) {
            let len = h.len as usize;
            if len > PAYLOAD_MAX {
                return Err(self.fail(page, RingError::Proto));
            }
            if self.inbuf.len() - self.framed < HEADER_LEN + len {
                break;
            }
            self.framed += HEADER_LEN + len;
        }
        Ok(())
    }

    /// Put as much of `data` as fits on the response ring (both halves of
    /// a wrapped region). Returns the bytes written; the caller keeps the
    /// rest queued and retries when the guest signals it made space.
    pub fn write(
        &mut self,
        page: &(impl SharedPage + ?Sized),
        data: &[u8],
    ) -> Result<usize, RingError> {
        if let Some(e) = self.broken {
            return Err(e);
        }
        let mut done = 0;
        while done < data.len() {
            let cons = page.load(RSP_CONS);
            let prod = page.load(RSP_PROD);
            page.fence();
            let used = prod.wrapping_sub(cons);
            if used > RING_SIZE {
                return Err(self.fail(page, RingError::Index));
            }
            let space = (RING_SIZE - used) as usize;
            if space == 0 {
                break;
            }
            let off = (prod & (RING_SIZE - 1)) as usize;
            let n = (data.len() - done).min(space).min(RING_SIZE as usize - off);
            page.copy_in(RSP + off, &data[done..done + n]);
            // the bytes are visible before the index that publishes them
            page.fence();
            page.store(RSP_PROD, prod.wrapping_add(n as u32));
            // published before we read rsp_cons again (store-load order):
            // the guest kicks only if it saw a full ring after consuming
            // (linux xb_read), so a stale rsp_cons would make us wait for
            // ring space that was freed without a kick
            page.fence();
            done += n;
        }
        Ok(done)
    }
}

/// The `xenstored_ring` fuzz target's driver: `data` is a script of
/// guest moves (set any index or byte of the page, produce request bytes)
/// interleaved with our reads, writes and consumption. Panics only if the
/// ring code touched memory outside the page (MemPage checks every access)
/// or broke an invariant: framed bytes are whole frames within 4096 bytes
/// each, buffered input stays bounded, a reported error is on the page.
#[doc(hidden)]
#[allow(clippy::panic, clippy::missing_panics_doc)]
pub fn fuzz_drive(data: &[u8]) {
    let page = MemPage::default();
    let mut r = Ring::new();
    let mut it = data.iter().copied();
    let word = |it: &mut std::iter::Copied<std::slice::Iter<'_, u8>>| {
        u32::from_le_bytes([
            it.next().unwrap_or(0),
            it.next().unwrap_or(0),
            it.next().unwrap_or(0),
            it.next().unwrap_or(0),
        ])
    };
    while let Some(op) = it.next() {
        match op % 6 {
            0 => {
                let v = word(&mut it);
                let off = [REQ_CONS, REQ_PROD, RSP_CONS, RSP_PROD][usize::from(op / 6) % 4];
                page.store(off, v);
            }
            1 => {
                // the guest produces n bytes (well-formed indices or not)
                let n = usize::from(it.next().unwrap_or(0));
                let prod = page.load(REQ_PROD);
                for i in 0..n {
                    let b = it.next().unwrap_or(0);
                    let at = (prod.wrapping_add(i as u32) & (RING_SIZE - 1)) as usize;
                    page.copy_in(REQ + at, &[b]);
                }
                page.store(REQ_PROD, prod.wrapping_add(n as u32));
            }
            2 => {
                if let Err(e) = r.read(&page) {
                    assert_eq!(page.load(ERROR), e.code());
                }
            }
            3 => {
                let n = usize::from(it.next().unwrap_or(0)) * 8;
                let _ = r.write(&page, &vec![0x5a; n]);
            }
            4 => {
                let mut f = r.frames();
                while let Some(h) = Header::decode(f) {
                    let len = h.len as usize;
                    assert!(len <= PAYLOAD_MAX && f.len() >= HEADER_LEN + len);
                    f = &f[HEADER_LEN + len..];
                }
                assert!(f.is_empty(), "framed prefix ends inside a frame");
                let n = r.frames().len();
                r.consume(n);
            }
            _ => {
                // the guest consumes responses
                let prod = page.load(RSP_PROD);
                page.store(RSP_CONS, prod);
            }
        }
        assert!(r.inbuf.len() <= READ_AHEAD);
    }
}

#[cfg(test)]
#[path = "ring_tests.rs"]
mod tests;
