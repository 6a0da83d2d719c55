//! Unit tests of the IO loop.

use super::*;

/// An idle connection must stay cheap (1000 domains = 1000 of them).
#[test]
fn idle_connection_state_is_small() {
    let size = std::mem::size_of::<ConnIo>();
    assert!(size <= 96, "{size}");
}

/// A "ring" made of a socket pair: its other end plays the event
/// channel (readable = a ring needs a turn) and the server core sees
/// one more dom0 connection fed through `turn`.
struct FakeRings {
    evtchn: std::os::unix::net::UnixStream,
    cid: Option<ConnId>,
    input: Vec<u8>,
    output: Arc<std::sync::Mutex<Vec<u8>>>,
}

impl Rings for FakeRings {
    fn poll_fd(&self) -> std::io::Result<std::os::fd::OwnedFd> {
        Ok(self.evtchn.try_clone()?.into())
    }
    fn turn(&mut self, server: &mut Server) {
        use std::io::Read;
        let mut b = [0u8; 64];
        self.evtchn.set_nonblocking(true).unwrap();
        while matches!(self.evtchn.read(&mut b), Ok(n) if n > 0) {}
        let cid = *self.cid.get_or_insert_with(|| server.connect(DomId::DOM0));
        let input = std::mem::take(&mut self.input);
        server.feed(cid, &input, Budget::UNLIMITED).unwrap();
        self.flush(server, cid);
    }
    fn serves(&self, cid: ConnId) -> bool {
        self.cid == Some(cid)
    }
    fn flush(&mut self, server: &mut Server, cid: ConnId) {
        let out = server.take_output(cid);
        self.output.lock().unwrap().extend_from_slice(&out);
    }
    fn on_effects(&mut self, _server: &mut Server, _effects: &[Effect]) {}
    fn more_work(&self) -> bool {
        false
    }
}

#[test]
fn rings_are_served_by_the_same_loop() {
    use std::io::Write;
    use xenstore::wire::{Packet, Request};
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s");
    let mut d = Daemon::bind(&Config::new(&sock)).unwrap();
    let (evtchn, mut kick) = std::os::unix::net::UnixStream::pair().unwrap();
    let output = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut input = Vec::new();
    Request::Watch {
        path: "/r".into(),
        token: "ring".into(),
    }
    .to_packet(1, 0)
    .encode_into(&mut input);
    d.add_rings(Box::new(FakeRings {
        evtchn,
        cid: None,
        input,
        output: output.clone(),
    }))
    .unwrap();
    let stop = d.stopper();
    let t = std::thread::spawn(move || d.run());
    // a socket client's write fires the ring connection's watch
    let mut c = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    let want = |out: &[u8]| {
        let mut at = 0;
        let mut n = 0;
        while let Some((p, used)) = Packet::decode(&out[at..], 4096).unwrap() {
            at += used;
            if p.payload.starts_with(b"/r/x\0") {
                n += 1;
            }
        }
        n
    };
    testutil::wait_until(
        "the ring's WATCH is registered",
        Duration::from_secs(20),
        || output.lock().unwrap().len() >= 19,
    );
    c.write_all(
        &Request::Write("/r/x".into(), b"1".to_vec())
            .to_packet(2, 0)
            .encode(),
    )
    .unwrap();
    testutil::wait_until(
        "the event reaches the ring",
        Duration::from_secs(20),
        || want(&output.lock().unwrap()) == 1,
    );
    kick.write_all(b"k").unwrap();
    stop.stop();
    t.join().unwrap().unwrap();
}

#[test]
fn serves_and_stops() {
    use std::io::{Read, Write};
    use xenstore::wire::{Packet, Request};
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s");
    let config = Config::new(&sock);
    let d = Daemon::bind(&config).unwrap();
    let stop = d.stopper();
    let t = std::thread::spawn(move || d.run());
    let mut c = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    c.write_all(
        &Request::Write("/a".into(), b"1".to_vec())
            .to_packet(1, 0)
            .encode(),
    )
    .unwrap();
    c.write_all(&Request::Read("/a".into()).to_packet(2, 0).encode())
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 256];
    let mut got = Vec::new();
    while got.len() < 2 {
        let n = c.read(&mut chunk).unwrap();
        assert!(n > 0);
        buf.extend_from_slice(&chunk[..n]);
        while let Some((p, used)) = Packet::decode(&buf, 4096).unwrap() {
            buf.drain(..used);
            got.push(p);
        }
    }
    assert_eq!(got[1].payload, b"1");
    stop.stop();
    t.join().unwrap().unwrap();
    assert!(!sock.exists(), "socket removed on stop");
}
