//! The client suite against Xen 4.17's OCaml oxenstored (Debian xen-utils-4.17).

#[macro_use]
mod suite;

client_suite!(suite::peers::Kind::Ox);

/// ox answers a big DIRECTORY whole (reply over 4096 bytes); the client
/// accepts the oversized reply.
#[test]
fn big_directory_answered_whole() {
    use xenstore::wire::Response;
    let Some(server) = suite::peers::start(suite::peers::Kind::Ox, "big_directory_whole") else {
        return;
    };
    let names = suite::fill_big_directory(server.socket(), "/t/whole", 1000);
    let Response::Children(raw) = suite::raw_directory(server.socket(), "/t/whole") else {
        panic!("expected the whole listing");
    };
    assert_eq!(raw.len(), 1000);
    let c = xenstore::Client::connect(server.socket()).unwrap();
    let got: std::collections::BTreeSet<String> =
        c.directory("/t/whole").unwrap().into_iter().collect();
    assert_eq!(got, names);
}

/// ox checks the node-size quota even for dom0: a 3000-byte value is
/// refused with E2BIG, reported as a server error for that WRITE and path.
#[tokio::test]
async fn oversized_value_is_e2big() {
    let Some(server) = suite::peers::start(suite::peers::Kind::Ox, "oversized_value") else {
        return;
    };
    let c = xenstore::AsyncClient::connect(server.socket())
        .await
        .unwrap();
    let e = c.write("/t/huge", vec![b'v'; 3000]).await.unwrap_err();
    match e {
        xenstore::Error::Xs { op, path, errno } => {
            assert_eq!(
                (op, path.as_str(), errno),
                ("WRITE", "/t/huge", xenstore::XsErrno::E2big)
            );
        }
        other => panic!("expected a server error, got {other:?}"),
    }
    assert!(!c.exists("/t/huge").await.unwrap());
}
