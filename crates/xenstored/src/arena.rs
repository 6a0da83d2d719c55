//! A byte arena for node values and names: size-classed slots carved from
//! fixed 256 KiB chunks, freed slots kept on one free list per class.
//!
//! Why not a `Box<[u8]>` per value: the allocator adds 8–16 bytes of
//! header and rounds to 16 per block, and a store of 100,000 small values
//! then costs twice its payload (RSS is benchmarked against cxenstored).
//! Here a 16-byte value takes exactly 16 bytes, chunks are never
//! reallocated (no copy, no latency spike when the store grows), and a
//! freed slot is reused by the next value of its class, so memory returns
//! to the arena at once (a guest's removed nodes make room for anyone's).
//!
//! A slot is addressed by a `u32` byte offset (chunk × CHUNK + offset);
//! the caller keeps the length. Lengths are at most [`MAX_LEN`].

/// Bytes per chunk.
const CHUNK: usize = 1 << 18;
/// Largest slot (a value can be at most one payload, 4096 bytes).
pub(crate) const MAX_LEN: usize = 4096;
/// Slots up to this size come in steps of 8 bytes, larger ones in steps
/// of 128 (waste under 6% for a maximal 2048-byte guest value).
const FINE_MAX: usize = 128;
const FINE_STEP: usize = 8;
const COARSE_STEP: usize = 128;
const CLASSES: usize = FINE_MAX / FINE_STEP + (MAX_LEN - FINE_MAX) / COARSE_STEP;
/// "No free slot" marker in the free lists (offset 0 is a real slot).
const NONE: u32 = u32::MAX;

/// The size class of a length in 1..=MAX_LEN, and the slot size.
fn class(len: usize) -> (usize, usize) {
    if len <= FINE_MAX {
        let c = len.div_ceil(FINE_STEP).max(1);
        (c - 1, c * FINE_STEP)
    } else {
        let c = (len - FINE_MAX).div_ceil(COARSE_STEP);
        (FINE_MAX / FINE_STEP + c - 1, FINE_MAX + c * COARSE_STEP)
    }
}

/// The arena.
pub(crate) struct Arena {
    /// Each with capacity [`CHUNK`], its length grown as slots are carved:
    /// memory is touched (and resident) only as it is used.
    chunks: Vec<Vec<u8>>,
    /// Next unused byte in the last chunk.
    top: usize,
    /// Head of each class's free list; the next link is stored in the
    /// first 4 bytes of the free slot.
    free: [u32; CLASSES],
    /// Bytes in live slots (slot sizes, not payload lengths).
    used: usize,
}

impl Arena {
    pub(crate) fn new() -> Arena {
        Arena {
            chunks: Vec::new(),
            top: CHUNK,
            free: [NONE; CLASSES],
            used: 0,
        }
    }

    /// Store `bytes` (1..=MAX_LEN long) and return its offset. Longer
    /// inputs are cut to MAX_LEN (callers check lengths before).
    pub(crate) fn alloc(&mut self, bytes: &[u8]) -> u32 {
        let bytes = &bytes[..bytes.len().min(MAX_LEN)];
        let (c, size) = class(bytes.len());
        let off = match self.free[c] {
            NONE => self.carve(size),
            head => {
                let next = self.read_link(head);
                self.free[c] = next;
                head
            }
        };
        self.used += size;
        self.slot_mut(off, bytes.len()).copy_from_slice(bytes);
        off
    }

    /// Give back the slot at `off` that holds `len` bytes.
    pub(crate) fn free(&mut self, off: u32, len: usize) {
        let (c, size) = class(len.clamp(1, MAX_LEN));
        let head = self.free[c];
        self.write_link(off, head);
        self.free[c] = off;
        self.used = self.used.saturating_sub(size);
    }

    /// The `len` bytes at `off`.
    pub(crate) fn get(&self, off: u32, len: usize) -> &[u8] {
        let off = off as usize;
        let (chunk, at) = (off / CHUNK, off % CHUNK);
        self.chunks
            .get(chunk)
            .and_then(|c| c.get(at..at + len))
            .unwrap_or(&[])
    }

    /// Overwrite the slot at `off` (holding `old_len` bytes) with `bytes`
    /// if they fit its class; otherwise move to a new slot. Returns the
    /// (possibly new) offset.
    pub(crate) fn replace(&mut self, off: u32, old_len: usize, bytes: &[u8]) -> u32 {
        if class(old_len.clamp(1, MAX_LEN)).0 == class(bytes.len().clamp(1, MAX_LEN)).0 {
            self.slot_mut(off, bytes.len()).copy_from_slice(bytes);
            return off;
        }
        self.free(off, old_len);
        self.alloc(bytes)
    }

    /// Bytes held in slots (for tests and reports).
    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        self.used
    }

    fn carve(&mut self, size: usize) -> u32 {
        if self.top + size > CHUNK {
            // The tail of the old chunk (< MAX_LEN bytes) is left unused.
            self.chunks.push(Vec::with_capacity(CHUNK));
            self.top = 0;
        }
        let off = (self.chunks.len() - 1) * CHUNK + self.top;
        self.top += size;
        if let Some(c) = self.chunks.last_mut() {
            c.resize(self.top, 0);
        }
        // Offsets stay below 2^32: 16,384 chunks = 4 GiB of slots, far past
        // what the quotas let anyone store.
        u32::try_from(off).unwrap_or(NONE)
    }

    fn slot_mut(&mut self, off: u32, len: usize) -> &mut [u8] {
        let off = off as usize;
        let (chunk, at) = (off / CHUNK, off % CHUNK);
        match self
            .chunks
            .get_mut(chunk)
            .and_then(|c| c.get_mut(at..at + len))
        {
            Some(s) => s,
            None => &mut [],
        }
    }

    fn read_link(&self, off: u32) -> u32 {
        let b = self.get(off, 4);
        b.try_into().map_or(NONE, u32::from_le_bytes)
    }

    fn write_link(&mut self, off: u32, next: u32) {
        let s = self.slot_mut(off, 4);
        if s.len() == 4 {
            s.copy_from_slice(&next.to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_cover_every_length() {
        let mut last = 0;
        for len in 1..=MAX_LEN {
            let (c, size) = class(len);
            assert!(size >= len && c < CLASSES, "{len}");
            assert!(c >= last);
            last = c;
        }
        assert_eq!(class(16), (1, 16));
        assert_eq!(class(2048).1, 2048);
        assert_eq!(class(MAX_LEN).0, CLASSES - 1);
    }

    #[test]
    fn stores_frees_and_reuses() {
        let mut a = Arena::new();
        let x = a.alloc(b"0123456789abcdef");
        let y = a.alloc(b"hello");
        assert_eq!(a.get(x, 16), b"0123456789abcdef");
        assert_eq!(a.get(y, 5), b"hello");
        assert_eq!(a.used(), 24);
        a.free(x, 16);
        let z = a.alloc(b"fedcba9876543210");
        assert_eq!(z, x, "a freed slot of the class is reused");
        let big = vec![7u8; 3000];
        let w = a.replace(y, 5, &big);
        assert_ne!(w, y);
        assert_eq!(a.get(w, 3000), &big[..]);
        let w2 = a.replace(w, 3000, &[1u8; 2950]);
        assert_eq!(w2, w, "same class: in place");
        // many chunks
        let offs: Vec<u32> = (0..200u32).map(|i| a.alloc(&[i as u8; 4000])).collect();
        for (i, &o) in offs.iter().enumerate() {
            assert_eq!(a.get(o, 4000)[3999], i as u8);
        }
    }
}
