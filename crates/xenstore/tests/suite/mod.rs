//! The client suite: every case is a function taking the server's socket,
//! so the same cases run against cxenstored, oxenstored and our
//! `drvdom-xenstored` (see `client_suite!` and the `tests/*.rs` files).
//!
//! Cases use unique base paths, but each test also gets its own fresh
//! server, so they can run in parallel.

#![allow(dead_code)]
// test helpers: a failed step fails the test
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod peers;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::{FutureExt, StreamExt, TryStreamExt};
use xenstore::{Access, AsyncClient, Client, DomId, Error, PermList, WatchEvent, XsErrno};

/// Generous bound for waits that should finish in milliseconds.
const WAIT: Duration = Duration::from_secs(30);

async fn connect(sock: &Path) -> AsyncClient {
    AsyncClient::connect(sock).await.expect("connect")
}

async fn next_event(s: &mut xenstore::WatchStream) -> WatchEvent {
    tokio::time::timeout(WAIT, s.next())
        .await
        .expect("timed out waiting for a watch event")
        .expect("watch stream ended")
        .expect("watch stream error")
}

/// READ/WRITE of text, binary (with NULs) and empty values; read_opt/exists.
pub async fn read_write(sock: &Path) {
    let c = connect(sock).await;
    c.write("/t/rw/a", "hello").await.unwrap();
    assert_eq!(c.read("/t/rw/a").await.unwrap(), b"hello");
    assert_eq!(c.read_string("/t/rw/a").await.unwrap(), "hello");
    let bin = [0u8, 1, 2, 0, 255, 0];
    c.write("/t/rw/bin", bin).await.unwrap();
    assert_eq!(c.read("/t/rw/bin").await.unwrap(), bin);
    c.write("/t/rw/empty", "").await.unwrap();
    assert_eq!(c.read("/t/rw/empty").await.unwrap(), b"");
    c.write("/t/rw/a", "second").await.unwrap();
    assert_eq!(c.read("/t/rw/a").await.unwrap(), b"second");
    // parents are created implicitly, with empty values
    assert_eq!(c.read("/t/rw").await.unwrap(), b"");
    assert_eq!(c.read_opt("/t/rw/missing").await.unwrap(), None);
    assert_eq!(
        c.read_opt("/t/rw/a").await.unwrap().as_deref(),
        Some(&b"second"[..])
    );
    assert!(c.exists("/t/rw/a").await.unwrap());
    assert!(!c.exists("/t/rw/missing").await.unwrap());
    // a value of 2048 bytes is accepted by every server
    let big = vec![b'x'; 2048];
    c.write("/t/rw/big", &big).await.unwrap();
    assert_eq!(c.read("/t/rw/big").await.unwrap(), big);
}

/// MKDIR keeps values; DIRECTORY lists children; RM removes subtrees.
pub async fn mkdir_rm_directory(sock: &Path) {
    let c = connect(sock).await;
    c.mkdir("/t/d/x/y").await.unwrap();
    assert_eq!(c.read("/t/d/x/y").await.unwrap(), b"");
    c.write("/t/d/x", "keep").await.unwrap();
    c.mkdir("/t/d/x").await.unwrap();
    assert_eq!(c.read("/t/d/x").await.unwrap(), b"keep");
    for n in ["b", "a", "c"] {
        c.write(&format!("/t/d/{n}"), n).await.unwrap();
    }
    let mut kids = c.directory("/t/d").await.unwrap();
    kids.sort();
    assert_eq!(kids, ["a", "b", "c", "x"]);
    assert_eq!(c.directory("/t/d/a").await.unwrap(), Vec::<String>::new());
    c.rm("/t/d/x").await.unwrap();
    assert!(!c.exists("/t/d/x/y").await.unwrap());
    assert!(!c.exists("/t/d/x").await.unwrap());
    // removing a missing node whose parent exists is fine
    c.rm("/t/d/x").await.unwrap();
    let e = c.directory("/t/d/x").await.unwrap_err();
    assert!(e.is_not_found(), "{e}");
    let e = c.rm("/t/d/nope/deeper").await.unwrap_err();
    assert!(e.is_not_found(), "{e}");
}

/// A directory whose listing exceeds 4096 bytes (cx: E2BIG, so the client
/// falls back to DIRECTORY_PART; ox answers DIRECTORY whole).
pub async fn big_directory(sock: &Path) {
    let c = connect(sock).await;
    let names: BTreeSet<String> = (0..700)
        .map(|i| format!("child-with-a-long-name-{i:05}"))
        .collect();
    let total: usize = names.iter().map(|n| n.len() + 1).sum();
    assert!(
        total > 3 * 4096,
        "listing must need several parts ({total})"
    );
    futures::stream::iter(names.iter())
        .map(|n| {
            let c = c.clone();
            async move { c.write(&format!("/t/big/{n}"), "v").await }
        })
        .buffer_unordered(64)
        .try_collect::<Vec<()>>()
        .await
        .unwrap();
    let got: BTreeSet<String> = c.directory("/t/big").await.unwrap().into_iter().collect();
    assert_eq!(got.len(), 700);
    assert_eq!(got, names);
    // also inside a transaction
    let tx = c.transaction_start().await.unwrap();
    assert_eq!(tx.directory("/t/big").await.unwrap().len(), 700);
    tx.abort().await.unwrap();
}

/// SET_PERMS / GET_PERMS, inheritance by new children, ENOENT on a missing
/// node.
pub async fn perms(sock: &Path) {
    let c = connect(sock).await;
    c.write("/t/p", "").await.unwrap();
    let perms = PermList::owned_by(DomId(0), Access::None)
        .with(Access::Read, DomId(5))
        .with(Access::Both, DomId(3));
    c.set_perms("/t/p", &perms).await.unwrap();
    assert_eq!(c.get_perms("/t/p").await.unwrap(), perms);
    c.write("/t/p/child", "x").await.unwrap();
    assert_eq!(
        c.get_perms("/t/p/child").await.unwrap(),
        perms,
        "children inherit"
    );
    let ro: PermList = "r0".parse().unwrap();
    c.set_perms("/t/p/child", &ro).await.unwrap();
    assert_eq!(c.get_perms("/t/p/child").await.unwrap().to_string(), "r0");
    let e = c.set_perms("/t/p/missing", &ro).await.unwrap_err();
    assert!(e.is_not_found(), "{e}");
    let e = c.get_perms("/t/nothing-here").await.unwrap_err();
    assert!(e.is_not_found(), "{e}");
}

/// Initial event, prefix matching, unrelated paths, two watches routed by
/// token, unwatch ends the stream, dropping a stream unwatches.
pub async fn watches(sock: &Path) {
    let c = connect(sock).await;
    c.mkdir("/t/w").await.unwrap();
    let mut w = c.watch("/t/w", "tok-w").await.unwrap();
    let first = next_event(&mut w).await;
    assert_eq!(
        first,
        WatchEvent {
            path: "/t/w".into(),
            token: "tok-w".into()
        }
    );
    let mut v = c.watch("/t/v", "tok-v").await.unwrap();
    assert_eq!(next_event(&mut v).await.path, "/t/v");

    c.write("/t/w/x/y", "1").await.unwrap();
    // created ancestors may fire as well; the written path must come
    let mut seen = Vec::new();
    loop {
        let ev = next_event(&mut w).await;
        assert_eq!(ev.token, "tok-w");
        assert!(ev.path.starts_with("/t/w"), "{ev:?}");
        seen.push(ev.path.clone());
        if ev.path == "/t/w/x/y" {
            break;
        }
    }
    // /t/wx is not below /t/w: no event; the sentinel comes next
    c.write("/t/wx", "no").await.unwrap();
    c.write("/t/w/sentinel", "s").await.unwrap();
    assert_eq!(next_event(&mut w).await.path, "/t/w/sentinel");
    c.write("/t/v", "v").await.unwrap();
    assert_eq!(next_event(&mut v).await.path, "/t/v");
    // rm fires the watch on the removed path
    c.rm("/t/w/x").await.unwrap();
    assert_eq!(next_event(&mut w).await.path, "/t/w/x");

    // duplicate registration is EEXIST and leaves the first one working
    let e = c.watch("/t/w", "tok-w").await.unwrap_err();
    assert_eq!(e.errno(), Some(XsErrno::Eexist), "{e}");

    c.unwatch("/t/w", "tok-w").await.unwrap();
    let end = tokio::time::timeout(WAIT, w.next())
        .await
        .expect("stream should end");
    assert!(end.is_none(), "{end:?}");
    let e = c.unwatch("/t/w", "tok-w").await.unwrap_err();
    assert!(e.is_not_found(), "{e}");

    // dropping the stream unwatches, so the same watch can be made again
    drop(v);
    let mut v2 = c.watch("/t/v", "tok-v").await.unwrap();
    assert_eq!(next_event(&mut v2).await.path, "/t/v");
}

/// 10,000 changes under a watch, written with many requests in flight;
/// every event arrives, none lost or duplicated.
pub async fn watch_burst(sock: &Path) {
    const N: usize = 10_000;
    let c = connect(sock).await;
    let writer = connect(sock).await;
    c.mkdir("/t/burst").await.unwrap();
    let mut w = c.watch("/t/burst", "burst").await.unwrap();
    assert_eq!(next_event(&mut w).await.path, "/t/burst");
    // Do not read events while writing: they must queue without loss.
    futures::stream::iter(0..N)
        .map(|i| {
            let writer = writer.clone();
            async move { writer.write(&format!("/t/burst/k{i}"), "v").await }
        })
        .buffer_unordered(256)
        .try_collect::<Vec<()>>()
        .await
        .unwrap();
    let mut seen = BTreeSet::new();
    while seen.len() < N {
        let ev = next_event(&mut w).await;
        assert!(seen.insert(ev.path.clone()), "duplicate event {ev:?}");
    }
    let expected: BTreeSet<String> = (0..N).map(|i| format!("/t/burst/k{i}")).collect();
    assert_eq!(seen, expected);
}

/// Reads and writes inside a transaction are private until commit; abort
/// discards; a conflicting outside change makes commit answer EAGAIN.
pub async fn transactions(sock: &Path) {
    let c = connect(sock).await;
    let other = connect(sock).await;
    c.write("/t/tx/base", "0").await.unwrap();

    let tx = c.transaction_start().await.unwrap();
    assert_ne!(tx.id().0, 0);
    tx.write("/t/tx/new", "1").await.unwrap();
    assert_eq!(
        tx.read("/t/tx/new").await.unwrap(),
        b"1",
        "a transaction sees its own writes"
    );
    assert!(tx.exists("/t/tx/new").await.unwrap());
    assert_eq!(
        other.read_opt("/t/tx/new").await.unwrap(),
        None,
        "not visible outside"
    );
    assert_eq!(
        c.read_opt("/t/tx/new").await.unwrap(),
        None,
        "not visible outside the tx"
    );
    assert!(tx.commit().await.unwrap());
    assert_eq!(other.read("/t/tx/new").await.unwrap(), b"1");

    let tx = c.transaction_start().await.unwrap();
    tx.write("/t/tx/aborted", "x").await.unwrap();
    tx.rm("/t/tx/new").await.unwrap();
    tx.abort().await.unwrap();
    assert!(!other.exists("/t/tx/aborted").await.unwrap());
    assert!(other.exists("/t/tx/new").await.unwrap());

    // conflict: tx reads base, someone else changes it, tx writes it
    let tx = c.transaction_start().await.unwrap();
    assert_eq!(tx.read("/t/tx/base").await.unwrap(), b"0");
    other.write("/t/tx/base", "changed").await.unwrap();
    tx.write("/t/tx/base", "mine").await.unwrap();
    assert!(
        !tx.commit().await.unwrap(),
        "commit must report the conflict (EAGAIN)"
    );
    assert_eq!(other.read("/t/tx/base").await.unwrap(), b"changed");

    // dropping an open transaction aborts it
    {
        let tx = c.transaction_start().await.unwrap();
        tx.write("/t/tx/dropped", "x").await.unwrap();
    }
    assert!(!other.exists("/t/tx/dropped").await.unwrap());
}

/// The retry helper starts over after EAGAIN and returns the last result.
pub async fn transaction_retry(sock: &Path) {
    let c = connect(sock).await;
    let other = connect(sock).await;
    c.write("/t/retry/n", "10").await.unwrap();
    let attempts = Arc::new(AtomicU32::new(0));
    let result = c
        .transaction(|tx| {
            let other = other.clone();
            let attempts = attempts.clone();
            async move {
                let n: u32 = tx.read_string("/t/retry/n").await?.parse().unwrap();
                if attempts.fetch_add(1, Ordering::SeqCst) == 0 {
                    // make the first attempt conflict
                    other.write("/t/retry/n", "20").await?;
                }
                tx.write("/t/retry/n", (n + 1).to_string()).await?;
                Ok(n + 1)
            }
            .boxed()
        })
        .await
        .unwrap();
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    assert_eq!(result, 21);
    assert_eq!(c.read_string("/t/retry/n").await.unwrap(), "21");

    // a non-EAGAIN error aborts and is returned, nothing applied
    let e = c
        .transaction(|tx| {
            async move {
                tx.write("/t/retry/partial", "x").await?;
                tx.read("/t/retry/absent").await?;
                Ok(())
            }
            .boxed()
        })
        .await
        .unwrap_err();
    assert!(e.is_not_found(), "{e}");
    assert!(!c.exists("/t/retry/partial").await.unwrap());
}

/// Many requests in flight on one connection, replies matched by req_id.
pub async fn pipelining(sock: &Path) {
    const N: usize = 2000;
    let c = connect(sock).await;
    futures::future::try_join_all((0..N).map(|i| {
        let c = c.clone();
        async move { c.write(&format!("/t/pipe/{i}"), format!("value-{i}")).await }
    }))
    .await
    .unwrap();
    let values = futures::future::try_join_all((0..N).map(|i| {
        let c = c.clone();
        async move { c.read_string(&format!("/t/pipe/{i}")).await }
    }))
    .await
    .unwrap();
    for (i, v) in values.iter().enumerate() {
        assert_eq!(v, &format!("value-{i}"));
    }
    // errors and successes interleaved are matched to the right request
    let mixed = futures::future::join_all((0..200).map(|i| {
        let c = c.clone();
        async move {
            if i % 2 == 0 {
                c.read(&format!("/t/pipe/{i}")).await.map(Some)
            } else {
                c.read(&format!("/t/pipe/missing{i}")).await.map(Some)
            }
        }
    }))
    .await;
    for (i, r) in mixed.into_iter().enumerate() {
        if i % 2 == 0 {
            assert_eq!(r.unwrap().unwrap(), format!("value-{i}").into_bytes());
        } else {
            assert!(r.unwrap_err().is_not_found());
        }
    }
}

/// GET_DOMAIN_PATH, IS_DOMAIN_INTRODUCED for dom0's answer type.
pub async fn domain_path(sock: &Path) {
    let c = connect(sock).await;
    assert_eq!(
        c.get_domain_path(DomId(0)).await.unwrap(),
        "/local/domain/0"
    );
    assert_eq!(
        c.get_domain_path(DomId(5)).await.unwrap(),
        "/local/domain/5"
    );
    assert_eq!(
        c.get_domain_path(DomId(32000)).await.unwrap(),
        "/local/domain/32000"
    );
    // a never-introduced domain is not introduced
    assert!(!c.is_introduced(DomId(4321)).await.unwrap());
}

/// Errors carry the operation, the path and the server's error name; bad
/// arguments are refused before sending and the connection stays usable.
pub async fn errors(sock: &Path) {
    let c = connect(sock).await;
    let e = c.read("/t/err/missing").await.unwrap_err();
    match &e {
        Error::Xs { op, path, errno } => {
            assert_eq!(*op, "READ");
            assert_eq!(path, "/t/err/missing");
            assert_eq!(*errno, XsErrno::Enoent);
        }
        other => panic!("expected a server error, got {other:?}"),
    }
    assert!(e.is_not_found());
    assert!(e.to_string().contains("/t/err/missing"), "{e}");
    for bad in ["", "/a//b", "/a/", "/a b", "/a.b", "/a\0b"] {
        let e = c.write(bad, "x").await.unwrap_err();
        assert!(matches!(e, Error::InvalidPath { .. }), "{bad:?}: {e:?}");
        assert_eq!(e.errno(), Some(XsErrno::Einval));
    }
    let e = c.read(&format!("/{}", "a".repeat(3000))).await.unwrap_err();
    assert_eq!(e.errno(), Some(XsErrno::Einval), "{e}");
    let e = c.watch("/t/err", "bad\0token").await.unwrap_err();
    assert_eq!(e.errno(), Some(XsErrno::Einval), "{e}");
    let e = c.write("/t/err/huge", vec![b'x'; 5000]).await.unwrap_err();
    assert!(matches!(e, Error::TooLarge { .. }), "{e:?}");
    c.write("/t/err/ok", "fine").await.unwrap();
    assert_eq!(
        c.read("/t/err/ok").await.unwrap(),
        b"fine",
        "connection still usable"
    );
    let e = c.unwatch("/t/err", "never-registered").await.unwrap_err();
    assert_eq!(e.errno(), Some(XsErrno::Enoent), "{e}");
}

/// N connections × M transactional increments of one counter: exactly N×M.
pub async fn counter_concurrency(sock: &Path) {
    const N: u32 = 6;
    const M: u32 = 30;
    let c = connect(sock).await;
    c.write("/t/counter", "0").await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..N {
        let client = connect(sock).await;
        tasks.push(tokio::spawn(async move {
            for _ in 0..M {
                client
                    .transaction(|tx| {
                        async move {
                            let n: u32 = tx.read_string("/t/counter").await?.parse().unwrap();
                            tx.write("/t/counter", (n + 1).to_string()).await?;
                            Ok(())
                        }
                        .boxed()
                    })
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        c.read_string("/t/counter").await.unwrap(),
        (N * M).to_string()
    );
}

/// RESET_WATCHES drops all watches: their streams end, new ones work.
pub async fn reset_watches(sock: &Path) {
    let c = connect(sock).await;
    let mut a = c.watch("/t/ra", "a").await.unwrap();
    let mut b = c.watch("/t/rb", "b").await.unwrap();
    next_event(&mut a).await;
    next_event(&mut b).await;
    c.reset_watches().await.unwrap();
    for s in [&mut a, &mut b] {
        let end = tokio::time::timeout(WAIT, s.next())
            .await
            .expect("stream should end");
        assert!(end.is_none());
    }
    // the server forgot them too: registering again is not EEXIST
    let mut a2 = c.watch("/t/ra", "a").await.unwrap();
    assert_eq!(next_event(&mut a2).await.path, "/t/ra");
}

/// Relative paths are under the caller's home (`/local/domain/0` for a
/// socket client); a relative watch gets relative event paths; special
/// `@` watches fire their initial event.
pub async fn relative_and_special(sock: &Path) {
    let c = connect(sock).await;
    c.write("rel/x", "r").await.unwrap();
    assert_eq!(c.read("/local/domain/0/rel/x").await.unwrap(), b"r");
    assert_eq!(c.read("rel/x").await.unwrap(), b"r");
    let mut w = c.watch("rel", "relw").await.unwrap();
    assert_eq!(next_event(&mut w).await.path, "rel");
    c.write("/local/domain/0/rel/y", "abs").await.unwrap();
    assert_eq!(next_event(&mut w).await.path, "rel/y");
    let mut s = c.watch("@releaseDomain", "rd").await.unwrap();
    assert_eq!(
        next_event(&mut s).await,
        WatchEvent {
            path: "@releaseDomain".into(),
            token: "rd".into()
        }
    );
}

// --- blocking client ---

/// The blocking client: the same operations, events queued while waiting.
pub fn blocking_basics(sock: &Path) {
    let c = Client::connect(sock).unwrap();
    c.write("/t/b/a", "1").unwrap();
    assert_eq!(c.read_string("/t/b/a").unwrap(), "1");
    assert_eq!(c.read_opt("/t/b/none").unwrap(), None);
    c.mkdir("/t/b/d").unwrap();
    let mut kids = c.directory("/t/b").unwrap();
    kids.sort();
    assert_eq!(kids, ["a", "d"]);
    let perms: PermList = "n0 r5".parse().unwrap();
    c.set_perms("/t/b/a", &perms).unwrap();
    assert_eq!(c.get_perms("/t/b/a").unwrap(), perms);
    assert!(c.read("/t/b/none").unwrap_err().is_not_found());
    assert!(matches!(
        c.read("bad path").unwrap_err(),
        Error::InvalidPath { .. }
    ));
    assert_eq!(c.get_domain_path(DomId(3)).unwrap(), "/local/domain/3");

    // events that arrive while a reply is awaited are queued
    c.watch("/t/b", "bw").unwrap();
    c.write("/t/b/a", "2").unwrap();
    c.write("/t/b/d/e", "3").unwrap();
    let mut paths = Vec::new();
    while let Some(ev) = c.next_event(Some(WAIT)).unwrap() {
        assert_eq!(ev.token, "bw");
        paths.push(ev.path.clone());
        if ev.path == "/t/b/d/e" {
            break;
        }
    }
    assert_eq!(
        paths.first().map(String::as_str),
        Some("/t/b"),
        "initial event first"
    );
    assert!(paths.contains(&"/t/b/a".to_string()), "{paths:?}");
    assert_eq!(c.next_event(Some(Duration::from_millis(50))).unwrap(), None);
    c.unwatch("/t/b", "bw").unwrap();

    // transactions
    let tx = c.transaction_start().unwrap();
    tx.write("/t/b/tx", "x").unwrap();
    assert_eq!(tx.read("/t/b/tx").unwrap(), b"x");
    let other = Client::connect(sock).unwrap();
    assert!(!other.exists("/t/b/tx").unwrap());
    assert!(tx.commit().unwrap());
    assert!(other.exists("/t/b/tx").unwrap());
    let v = c
        .transaction(|tx| {
            tx.write("/t/b/tx", "y")?;
            tx.read_string("/t/b/tx")
        })
        .unwrap();
    assert_eq!(v, "y");
}

/// Blocking client: N threads × M transactional increments.
pub fn blocking_counter(sock: &Path) {
    const N: u32 = 4;
    const M: u32 = 25;
    let c = Client::connect(sock).unwrap();
    c.write("/t/bcounter", "0").unwrap();
    std::thread::scope(|s| {
        for _ in 0..N {
            s.spawn(|| {
                let c = Client::connect(sock).unwrap();
                for _ in 0..M {
                    c.transaction(|tx| {
                        let n: u32 = tx.read_string("/t/bcounter")?.parse().unwrap();
                        tx.write("/t/bcounter", (n + 1).to_string())
                    })
                    .unwrap();
                }
            });
        }
    });
    assert_eq!(c.read_string("/t/bcounter").unwrap(), (N * M).to_string());
}

/// Blocking client: a big directory (DIRECTORY_PART on cx).
pub fn blocking_big_directory(sock: &Path) {
    let c = Client::connect(sock).unwrap();
    for i in 0..400 {
        c.write(&format!("/t/bbig/a-rather-long-child-name-{i:04}"), "")
            .unwrap();
    }
    let kids = c.directory("/t/bbig").unwrap();
    assert_eq!(kids.len(), 400);
    assert!(kids.contains(&"a-rather-long-child-name-0399".to_string()));
}

/// Define one test per suite case against the server started by
/// `peers::start($kind, ..)`.
macro_rules! client_suite {
    ($kind:expr) => {
        client_suite!(@async $kind; read_write, mkdir_rm_directory, big_directory, perms,
            watches, watch_burst, transactions, transaction_retry, pipelining, domain_path,
            errors, counter_concurrency, reset_watches, relative_and_special);
        client_suite!(@blocking $kind; blocking_basics, blocking_counter,
            blocking_big_directory);
    };
    (@async $kind:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(server) = suite::peers::start($kind, stringify!($case)) else {
                    return;
                };
                suite::$case(server.socket()).await;
            }
        )*
    };
    (@blocking $kind:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let Some(server) = suite::peers::start($kind, stringify!($case)) else {
                    return;
                };
                suite::$case(server.socket());
            }
        )*
    };
}

/// Send one DIRECTORY request on a fresh raw connection and return the
/// decoded reply (for checking how a server answers big directories).
pub fn raw_directory(sock: &Path, path: &str) -> xenstore::wire::Response {
    use std::io::{Read, Write};
    use xenstore::wire::{HEADER_LEN, Header, MsgType, Request, Response};
    let mut s = std::os::unix::net::UnixStream::connect(sock).unwrap();
    s.write_all(&Request::Directory(path.into()).to_packet(1, 0).encode())
        .unwrap();
    let mut head = [0u8; HEADER_LEN];
    s.read_exact(&mut head).unwrap();
    let h = Header::decode(&head).unwrap();
    assert_eq!(h.req_id, 1);
    let mut payload = vec![0u8; h.len as usize];
    s.read_exact(&mut payload).unwrap();
    Response::decode(h.msg_type, MsgType::Directory, &payload).unwrap()
}

/// Fill `path` with `n` children whose listing is well over 4096 bytes.
pub fn fill_big_directory(sock: &Path, path: &str, n: usize) -> BTreeSet<String> {
    let c = Client::connect(sock).unwrap();
    let names: BTreeSet<String> = (0..n)
        .map(|i| format!("a-rather-long-child-name-{i:05}"))
        .collect();
    for name in &names {
        c.write(&format!("{path}/{name}"), "").unwrap();
    }
    names
}
