//! Client robustness against a server that misbehaves. The reference
//! servers never send malformed events, so these tests drive the client
//! from a scripted peer: a real unix socket in a TempDir whose other end
//! the test writes raw protocol bytes to.

// test helpers: a failed step fails the test
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use xenstore::wire::{HEADER_LEN, MsgType, PAYLOAD_MAX, Packet, Request, Response};
use xenstore::{AsyncClient, Client, Error};

const WAIT: Duration = Duration::from_secs(10);

/// Read one request from the client.
async fn recv_request(s: &mut UnixStream) -> (Packet, Request) {
    let mut head = [0u8; HEADER_LEN];
    s.read_exact(&mut head).await.unwrap();
    let h = xenstore::wire::Header::decode(&head).unwrap();
    let mut payload = vec![0u8; h.len as usize];
    s.read_exact(&mut payload).await.unwrap();
    let mut raw = head.to_vec();
    raw.extend_from_slice(&payload);
    let (pkt, _) = Packet::decode(&raw, PAYLOAD_MAX).unwrap().unwrap();
    let req = Request::decode(pkt.msg_type, &pkt.payload).unwrap();
    (pkt, req)
}

async fn reply(s: &mut UnixStream, to: &Packet, kind: MsgType, r: Response) {
    s.write_all(&r.to_packet(kind, to.req_id, to.tx_id).encode())
        .await
        .unwrap();
}

async fn next(s: &mut xenstore::WatchStream) -> Option<xenstore::Result<xenstore::WatchEvent>> {
    tokio::time::timeout(WAIT, s.next())
        .await
        .expect("timed out")
}

async fn raw_event(s: &mut UnixStream, payload: &[u8]) {
    let pkt = Packet::new(MsgType::WatchEvent, 0, 0, payload.to_vec());
    s.write_all(&pkt.encode()).await.unwrap();
}

/// Accept a WATCH, answer OK and send the initial event.
async fn serve_watch(s: &mut UnixStream) {
    let (pkt, req) = recv_request(s).await;
    let Request::Watch { path, token } = req else {
        panic!("expected WATCH, got {req:?}");
    };
    reply(s, &pkt, MsgType::Watch, Response::Ok).await;
    s.write_all(
        &Response::WatchEvent { path, token }
            .to_packet(MsgType::Watch, 0, 0)
            .encode(),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn malformed_event_closes_only_its_watch() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        serve_watch(&mut s).await; // /a ta
        serve_watch(&mut s).await; // /b tb
        // path is not UTF-8: malformed, for token tb
        raw_event(&mut s, b"/b/\xff\xfe\0tb\0").await;
        // no token at all: nothing to close, ignored
        raw_event(&mut s, b"junk-without-nul").await;
        // still fine for the other watch
        raw_event(&mut s, b"/a/x\0ta\0").await;
        let (pkt, req) = recv_request(&mut s).await;
        assert_eq!(req, Request::Read("/a/x".into()));
        reply(
            &mut s,
            &pkt,
            MsgType::Read,
            Response::Data(b"alive".to_vec()),
        )
        .await;
        s
    });
    let c = AsyncClient::connect(&sock).await.unwrap();
    let mut a = c.watch("/a", "ta").await.unwrap();
    let mut b = c.watch("/b", "tb").await.unwrap();
    assert_eq!(next(&mut a).await.unwrap().unwrap().path, "/a");
    assert_eq!(next(&mut b).await.unwrap().unwrap().path, "/b");
    let err = next(&mut b).await.unwrap().unwrap_err();
    assert!(matches!(err, Error::Protocol(_)), "{err:?}");
    assert!(
        next(&mut b).await.is_none(),
        "the malformed watch's stream ends"
    );
    let ev = next(&mut a).await.unwrap().unwrap();
    assert_eq!((ev.path.as_str(), ev.token.as_str()), ("/a/x", "ta"));
    assert_eq!(
        c.read("/a/x").await.unwrap(),
        b"alive",
        "connection still works"
    );
    let _keep = server.await.unwrap();
}

#[tokio::test]
async fn server_hangup_fails_pending_requests_and_ends_streams() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        serve_watch(&mut s).await;
        // take the READ, then hang up without answering
        let (_pkt, req) = recv_request(&mut s).await;
        assert_eq!(req, Request::Read("/x".into()));
    });
    let c = AsyncClient::connect(&sock).await.unwrap();
    let mut w = c.watch("/w", "t").await.unwrap();
    assert_eq!(w.next().await.unwrap().unwrap().path, "/w");
    let e = tokio::time::timeout(WAIT, c.read("/x"))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(e, Error::Closed), "{e:?}");
    let end = tokio::time::timeout(WAIT, w.next()).await.unwrap();
    assert!(matches!(end, Some(Err(Error::Closed))), "{end:?}");
    assert!(w.next().await.is_none());
    assert!(matches!(c.read("/y").await.unwrap_err(), Error::Closed));
    server.await.unwrap();
}

#[tokio::test]
async fn replies_out_of_order_are_matched_by_req_id() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut reqs = Vec::new();
        for _ in 0..3 {
            reqs.push(recv_request(&mut s).await);
        }
        // answer in reverse order, with an event in between
        for (pkt, req) in reqs.iter().rev() {
            let Request::Read(p) = req else {
                panic!("{req:?}")
            };
            reply(
                &mut s,
                pkt,
                MsgType::Read,
                Response::Data(p.as_bytes().to_vec()),
            )
            .await;
            raw_event(&mut s, b"/nobody\0listens\0").await;
        }
        s
    });
    let c = AsyncClient::connect(&sock).await.unwrap();
    let (x, y, z) = tokio::join!(c.read("/x"), c.read("/y"), c.read("/z"));
    assert_eq!(x.unwrap(), b"/x");
    assert_eq!(y.unwrap(), b"/y");
    assert_eq!(z.unwrap(), b"/z");
    let _keep = server.await.unwrap();
}

/// The blocking client queues a malformed event as one error and goes on.
#[test]
fn blocking_client_reports_malformed_event_and_continues() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut head = [0u8; HEADER_LEN];
        s.read_exact(&mut head).unwrap();
        let h = xenstore::wire::Header::decode(&head).unwrap();
        let mut payload = vec![0u8; h.len as usize];
        s.read_exact(&mut payload).unwrap();
        assert_eq!(
            Request::decode(h.msg_type, &payload).unwrap(),
            Request::Read("/r".into())
        );
        // events before the reply: one malformed, one good
        let bad = Packet::new(MsgType::WatchEvent, 0, 0, b"\xff\0t\0".to_vec());
        s.write_all(&bad.encode()).unwrap();
        let good = Packet::new(MsgType::WatchEvent, 0, 0, b"/p\0t\0".to_vec());
        s.write_all(&good.encode()).unwrap();
        let r = Response::Data(b"v".to_vec()).to_packet(MsgType::Read, h.req_id, 0);
        s.write_all(&r.encode()).unwrap();
        s
    });
    let c = Client::connect(&sock).unwrap();
    assert_eq!(c.read("/r").unwrap(), b"v");
    assert!(matches!(
        c.next_event(Some(WAIT)).unwrap_err(),
        Error::Protocol(_)
    ));
    let ev = c.next_event(Some(WAIT)).unwrap().unwrap();
    assert_eq!((ev.path.as_str(), ev.token.as_str()), ("/p", "t"));
    assert_eq!(c.next_event(Some(Duration::from_millis(20))).unwrap(), None);
    let _keep = server.join().unwrap();
}

/// A FIFO opened read/write loops every write back to the reader. Used as a
/// stand-in for `/dev/xen/xenbus` (which does not exist without Xen), it
/// drives the clients' device-file transport (blocking reader thread, one
/// write per message): a READ request comes back as its own "reply", whose
/// payload is the request's, `<path>\0`.
fn loopback_device(dir: &std::path::Path) -> std::path::PathBuf {
    let fifo = dir.join("xenbus");
    let st = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(st.success(), "mkfifo failed");
    fifo
}

#[tokio::test]
async fn device_file_transport_async() {
    let dir = tempfile::tempdir().unwrap();
    let dev = loopback_device(dir.path());
    let c = AsyncClient::connect(&dev).await.unwrap();
    let (a, b) = tokio::join!(c.read("/loop/a"), c.read("/loop/b"));
    assert_eq!(a.unwrap(), b"/loop/a\0");
    assert_eq!(b.unwrap(), b"/loop/b\0");
}

#[test]
fn device_file_transport_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let dev = loopback_device(dir.path());
    let c = Client::connect(&dev).unwrap();
    assert_eq!(c.read("/loop/x").unwrap(), b"/loop/x\0");
    assert_eq!(c.next_event(Some(Duration::from_millis(20))).unwrap(), None);
}
