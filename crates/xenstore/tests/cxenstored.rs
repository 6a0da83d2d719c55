//! The client suite against Xen 4.17's C xenstored (Debian xen-utils-4.17).

#[macro_use]
mod suite;

client_suite!(suite::peers::Kind::Cx);

/// cx answers a DIRECTORY over 4096 bytes with E2BIG; the client then lists
/// it with DIRECTORY_PART (several chunks) and gets every child.
#[test]
fn big_directory_falls_back_to_directory_part() {
    use xenstore::wire::Response;
    let Some(server) = suite::peers::start(suite::peers::Kind::Cx, "big_directory_part") else {
        return;
    };
    let names = suite::fill_big_directory(server.socket(), "/t/parts", 1000);
    assert_eq!(
        suite::raw_directory(server.socket(), "/t/parts"),
        Response::Error(xenstore::XsErrno::E2big)
    );
    let c = xenstore::Client::connect(server.socket()).unwrap();
    let got: std::collections::BTreeSet<String> =
        c.directory("/t/parts").unwrap().into_iter().collect();
    assert_eq!(got, names);
}
