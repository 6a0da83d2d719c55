//! Tests of the ring reader/writer on a page in plain memory: a model
//! guest on the other side, wrap-around, torn headers, oversize payloads,
//! hostile indices, partial writes.

use proptest::prelude::*;
use xenstore::wire::{Header, MsgType};

use super::*;

/// The guest's side: produce requests, consume responses (what Linux's
/// xenbus_comms.c does), with the chunking a test asks for.
fn guest_put(page: &MemPage, data: &[u8]) -> usize {
    let cons = page.load(REQ_CONS);
    let prod = page.load(REQ_PROD);
    let space = RING_SIZE - prod.wrapping_sub(cons);
    let n = (space as usize).min(data.len());
    for (i, b) in data[..n].iter().enumerate() {
        let at = (prod.wrapping_add(i as u32) & (RING_SIZE - 1)) as usize;
        page.copy_in(REQ + at, std::slice::from_ref(b));
    }
    page.store(REQ_PROD, prod.wrapping_add(n as u32));
    n
}

fn guest_take(page: &MemPage, max: usize) -> Vec<u8> {
    let cons = page.load(RSP_CONS);
    let prod = page.load(RSP_PROD);
    let n = (prod.wrapping_sub(cons) as usize).min(max);
    let mut out = vec![0u8; n];
    for (i, b) in out.iter_mut().enumerate() {
        let at = (cons.wrapping_add(i as u32) & (RING_SIZE - 1)) as usize;
        let mut one = [0u8];
        page.copy_out(RSP + at, &mut one);
        *b = one[0];
    }
    page.store(RSP_CONS, cons.wrapping_add(n as u32));
    out
}

fn frame(req_id: u32, payload: &[u8]) -> Vec<u8> {
    let h = Header {
        msg_type: MsgType::Read.to_u32(),
        req_id,
        tx_id: 0,
        len: payload.len() as u32,
    };
    let mut v = h.encode().to_vec();
    v.extend_from_slice(payload);
    v
}

fn start_at(page: &MemPage, idx: u32) {
    for off in [REQ_CONS, REQ_PROD, RSP_CONS, RSP_PROD] {
        page.store(off, idx);
    }
}

#[test]
fn reads_a_request_across_the_ring_end_and_index_wrap() {
    let page = MemPage::default();
    // indices just below 2^32 and 10 bytes before the ring's end: the
    // header is torn across the wrap of both the offset and the index
    start_at(&page, u32::MAX - 9);
    let f = frame(7, b"/local/domain/0\0");
    assert_eq!(guest_put(&page, &f), f.len());
    let mut r = Ring::new();
    assert!(r.read(&page).unwrap());
    assert_eq!(r.frames(), &f[..]);
    assert_eq!(page.load(REQ_CONS), page.load(REQ_PROD));
    r.consume(f.len());
    assert!(!r.has_frames());
}

#[test]
fn header_torn_across_calls_is_framed_once_complete() {
    let page = MemPage::default();
    let f = frame(1, b"abc\0");
    let mut r = Ring::new();
    guest_put(&page, &f[..5]);
    assert!(r.read(&page).unwrap());
    assert!(!r.has_frames());
    guest_put(&page, &f[5..17]);
    r.read(&page).unwrap();
    assert!(!r.has_frames());
    guest_put(&page, &f[17..]);
    r.read(&page).unwrap();
    assert_eq!(r.frames(), &f[..]);
}

#[test]
fn rejects_payload_over_4096_with_proto() {
    let page = MemPage::default();
    let h = Header {
        msg_type: 2,
        req_id: 0,
        tx_id: 0,
        len: 4097,
    };
    guest_put(&page, &h.encode());
    let mut r = Ring::new();
    assert_eq!(r.read(&page), Err(RingError::Proto));
    assert_eq!(page.load(ERROR), 3);
    // given up: nothing more is read or written
    guest_put(&page, b"more");
    let cons = page.load(REQ_CONS);
    assert_eq!(r.read(&page), Err(RingError::Proto));
    assert_eq!(r.write(&page, b"x"), Err(RingError::Proto));
    assert_eq!(page.load(REQ_CONS), cons);
    assert_eq!(page.load(RSP_PROD), 0);
}

#[test]
fn accepts_payload_of_exactly_4096() {
    let page = MemPage::default();
    let f = frame(1, &[b'x'; 4096]);
    let mut r = Ring::new();
    let mut sent = 0;
    while !r.has_frames() {
        sent += guest_put(&page, &f[sent..]);
        r.read(&page).unwrap();
    }
    assert_eq!(r.frames(), &f[..]);
    assert_eq!(r.broken(), None);
}

#[test]
fn hostile_request_indices_set_ringidx() {
    let page = MemPage::default();
    page.store(REQ_CONS, 5);
    page.store(REQ_PROD, 5 + RING_SIZE + 1);
    let mut r = Ring::new();
    assert_eq!(r.read(&page), Err(RingError::Index));
    assert_eq!(page.load(ERROR), 2);
    // a prod behind cons is a huge distance too
    let page = MemPage::default();
    page.store(REQ_CONS, 100);
    page.store(REQ_PROD, 99);
    assert_eq!(Ring::new().read(&page), Err(RingError::Index));
}

#[test]
fn hostile_response_indices_set_ringidx() {
    let page = MemPage::default();
    page.store(RSP_CONS, 0);
    page.store(RSP_PROD, 2000);
    let mut r = Ring::new();
    assert_eq!(r.write(&page, b"reply"), Err(RingError::Index));
    assert_eq!(page.load(ERROR), 2);
}

#[test]
fn exactly_full_rings_are_legal() {
    let page = MemPage::default();
    page.store(REQ_PROD, RING_SIZE);
    let mut r = Ring::new();
    assert!(r.read(&page).unwrap());
    assert_eq!(page.load(REQ_CONS), RING_SIZE);
    page.store(RSP_PROD, RING_SIZE);
    assert_eq!(Ring::new().write(&page, b"x"), Ok(0));
}

#[test]
fn partial_writes_resume_where_they_stopped() {
    let page = MemPage::default();
    start_at(&page, 1000);
    let data: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
    let mut r = Ring::new();
    let mut sent = 0;
    let mut got = Vec::new();
    while got.len() < data.len() {
        sent += r.write(&page, &data[sent..]).unwrap();
        assert!(sent <= data.len());
        got.extend(guest_take(&page, 700));
    }
    assert_eq!(got, data);
}

#[test]
fn write_fills_both_halves_of_a_wrapped_ring_at_once() {
    let page = MemPage::default();
    start_at(&page, 1000);
    let mut r = Ring::new();
    assert_eq!(r.write(&page, &[1u8; 1024]).unwrap(), 1024);
    assert_eq!(r.write(&page, &[1u8; 10]).unwrap(), 0);
    assert_eq!(guest_take(&page, 2048), vec![1u8; 1024]);
}

#[test]
fn read_ahead_is_bounded_until_frames_are_consumed() {
    let page = MemPage::default();
    let f = frame(1, b"");
    let mut r = Ring::new();
    let mut n = 0;
    // keep the guest producing; we never consume
    for _ in 0..100 {
        n += guest_put(&page, &f.repeat(64)[..]);
        r.read(&page).unwrap();
    }
    assert!(r.frames().len() <= READ_AHEAD, "{}", r.frames().len());
    assert!(n > 0);
    // once consumed, reading goes on
    let all = r.frames().len();
    r.consume(all);
    assert!(r.read(&page).unwrap() || !r.unread(&page));
}

#[test]
fn reset_zeroes_indices_and_answers_reconnect() {
    let page = MemPage::default();
    start_at(&page, 77);
    page.store(CONNECTION, RECONNECT);
    let mut r = Ring::new();
    guest_put(&page, b"partial");
    r.read(&page).unwrap();
    r.reset(&page);
    for off in [REQ_CONS, REQ_PROD, RSP_CONS, RSP_PROD] {
        assert_eq!(page.load(off), 0);
    }
    assert_eq!(page.load(CONNECTION), CONNECTED);
    assert!(r.frames().is_empty());
}

/// A page whose guest rewrites indices and bytes between any two of our
/// accesses (a second vCPU racing us): nothing may panic or leave the page.
struct RacingPage {
    page: MemPage,
    noise: Mutex<(Vec<u32>, usize)>,
}

impl RacingPage {
    fn poke(&self) {
        let mut g = self.noise.lock().unwrap();
        let (vals, i) = &mut *g;
        if vals.is_empty() {
            return;
        }
        let v = vals[*i % vals.len()];
        *i += 1;
        let off = [REQ_PROD, REQ_CONS, RSP_CONS, RSP_PROD, 12][v as usize % 5];
        if off == 12 {
            // scribble a header length into the request ring
            self.page
                .copy_in((v as usize >> 8) % 1020, &v.to_ne_bytes());
        } else {
            self.page.store(off, v);
        }
    }
}

impl SharedPage for RacingPage {
    fn load(&self, off: usize) -> u32 {
        self.poke();
        self.page.load(off)
    }
    fn store(&self, off: usize, v: u32) {
        self.page.store(off, v);
        self.poke();
    }
    fn copy_out(&self, off: usize, dst: &mut [u8]) {
        self.poke();
        self.page.copy_out(off, dst);
    }
    fn copy_in(&self, off: usize, src: &[u8]) {
        self.page.copy_in(off, src);
        self.poke();
    }
}

/// Records the order of index accesses and fences.
#[derive(Default)]
struct Recording {
    page: MemPage,
    ops: Mutex<Vec<String>>,
}

impl SharedPage for Recording {
    fn load(&self, off: usize) -> u32 {
        self.ops.lock().unwrap().push(format!("load {off}"));
        self.page.load(off)
    }
    fn store(&self, off: usize, v: u32) {
        self.ops.lock().unwrap().push(format!("store {off}"));
        self.page.store(off, v);
    }
    fn copy_out(&self, off: usize, dst: &mut [u8]) {
        self.page.copy_out(off, dst);
    }
    fn copy_in(&self, off: usize, src: &[u8]) {
        self.page.copy_in(off, src);
    }
    fn fence(&self) {
        self.ops.lock().unwrap().push("fence".into());
    }
}

/// Dekker's pattern with the guest (linux xb_read/xb_write kick only on
/// what they saw after publishing their own index): every index we publish
/// is fenced before we load an index again, or a store-load reordering
/// loses the guest's kick and wedges the ring (seen in the real-Xen lab).
#[test]
fn every_published_index_is_fenced_before_the_next_load() {
    let rec = Recording::default();
    start_at(&rec.page, 1000);
    rec.page.store(REQ_PROD, 1000 + 600);
    let mut r = Ring::new();
    r.read(&rec).unwrap();
    r.write(&rec, &[7u8; 900]).unwrap(); // wraps: two publishes
    let _ = r.unread(&rec);
    let ops = rec.ops.lock().unwrap().clone();
    let mut stores = 0;
    for (i, op) in ops.iter().enumerate() {
        if op.starts_with("store") {
            stores += 1;
            let next_load = ops[i..].iter().position(|o| o.starts_with("load"));
            let next_fence = ops[i..].iter().position(|o| o == "fence");
            if let Some(l) = next_load {
                assert!(
                    next_fence.is_some_and(|f| f < l),
                    "{op} at {i} not fenced: {ops:?}"
                );
            }
        }
    }
    assert!(stores >= 3, "{ops:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A well-behaved guest's requests arrive intact and in order, whatever
    /// the starting index and the guest's chunking; replies likewise.
    #[test]
    fn frames_and_replies_survive_any_chunking(
        start in any::<u32>(),
        payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..600), 1..12),
        chunks in proptest::collection::vec(1usize..1500, 1..40),
        takes in proptest::collection::vec(1usize..1500, 1..40),
    ) {
        let page = MemPage::default();
        start_at(&page, start);
        let stream: Vec<u8> = payloads.iter().enumerate()
            .flat_map(|(i, p)| frame(i as u32, p)).collect();
        let mut r = Ring::new();
        let (mut sent, mut got, mut k) = (0, Vec::new(), 0);
        while got.len() < stream.len() {
            let c = chunks[k % chunks.len()];
            k += 1;
            let end = (sent + c).min(stream.len());
            sent += guest_put(&page, &stream[sent..end]);
            r.read(&page).unwrap();
            // framing: every prefix handed out ends on a frame boundary
            let f = r.frames().to_vec();
            let mut at = 0;
            while at < f.len() {
                let h = Header::decode(&f[at..]).unwrap();
                at += HEADER_LEN + h.len as usize;
            }
            prop_assert_eq!(at, f.len());
            got.extend_from_slice(&f);
            r.consume(f.len());
            prop_assert!(k < 10_000);
        }
        prop_assert_eq!(&got, &stream);

        // replies: the same stream back through the response ring
        let (mut out_sent, mut back, mut k) = (0, Vec::new(), 0);
        while back.len() < stream.len() {
            out_sent += r.write(&page, &stream[out_sent..]).unwrap();
            back.extend(guest_take(&page, takes[k % takes.len()]));
            k += 1;
            prop_assert!(k < 10_000);
        }
        prop_assert_eq!(back, stream);
    }

    /// Arbitrary page contents: read and write return or set an error,
    /// never panic, never touch memory outside the page (MemPage panics on
    /// that), and a set error is the one written to the page.
    #[test]
    fn arbitrary_pages_never_panic(
        idx in proptest::collection::vec(any::<u32>(), 4),
        ring in proptest::collection::vec(any::<u8>(), 1024),
        out in proptest::collection::vec(any::<u8>(), 0..3000),
    ) {
        let page = MemPage::default();
        page.copy_in(REQ, &ring);
        for (off, v) in [REQ_CONS, REQ_PROD, RSP_CONS, RSP_PROD].into_iter().zip(idx) {
            page.store(off, v);
        }
        let mut r = Ring::new();
        let res = r.read(&page);
        if let Err(e) = res {
            prop_assert_eq!(page.load(ERROR), e.code());
        }
        let w = r.write(&page, &out);
        if let Ok(n) = w {
            prop_assert!(n <= out.len().min(RING_SIZE as usize));
        }
        prop_assert!(r.frames().len() <= READ_AHEAD);
    }

    /// The fuzz target's driver on random scripts (its invariants are
    /// asserts inside).
    #[test]
    fn fuzz_driver_scripts_hold_invariants(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
        fuzz_drive(&data);
    }

    /// A guest rewriting indices and bytes between our accesses.
    #[test]
    fn racing_guest_never_panics(
        noise in proptest::collection::vec(any::<u32>(), 1..64),
        rounds in 1usize..20,
    ) {
        let page = RacingPage { page: MemPage::default(), noise: Mutex::new((noise, 0)) };
        let mut r = Ring::new();
        for _ in 0..rounds {
            let _ = r.read(&page);
            let n = r.frames().len();
            r.consume(n);
            let _ = r.write(&page, &[0xab; 1500]);
            prop_assert!(r.frames().len() <= READ_AHEAD);
        }
    }
}
