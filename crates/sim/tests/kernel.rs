//! The simulated kernel's plumbing against the real kernel, as root:
//! namespaces made and removed in process, links and addresses over
//! rtnetlink inside them, and the in-process ICMP echo. No `ip`, no
//! `ping`.

// Helpers outside #[test] fns unwrap too: failing loudly is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::time::Duration;

use sim::link::Netlink;
use sim::{icmp, netns};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Two namespaces joined by a veth, deleted on drop.
struct Pair {
    a: String,
    b: String,
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = netns::delete(&self.a);
        let _ = netns::delete(&self.b);
    }
}

#[test]
fn namespaces_links_and_echo_work_in_process() {
    testutil::require_root!();
    let tag = testutil::unique_name("k");
    let pair = Pair {
        a: format!("drvdom-{tag}-a"),
        b: format!("drvdom-{tag}-b"),
    };
    netns::create(&pair.a).unwrap();
    netns::create(&pair.b).unwrap();
    // Creating again is fine.
    netns::create(&pair.a).unwrap();
    assert_eq!(
        netns::list_with_prefix(&format!("drvdom-{tag}-")).unwrap(),
        [pair.a.clone(), pair.b.clone()]
    );
    let rt = rt();
    rt.block_on(async {
        let pa = netns::ns_path(&pair.a);
        let pb = netns::ns_path(&pair.b);
        let a = Netlink::connect_in(&pa).await.unwrap();
        let b = Netlink::connect_in(&pb).await.unwrap();
        a.set_up("lo").await.unwrap();
        b.set_up("lo").await.unwrap();
        a.add_veth_into("va", &pb, "vb", Some([2, 0, 0, 0, 0, 0xb]))
            .await
            .unwrap();
        a.add_address("va", "192.0.2.1/24".parse().unwrap())
            .await
            .unwrap();
        // Twice is fine.
        a.add_address("va", "192.0.2.1/24".parse().unwrap())
            .await
            .unwrap();
        b.add_address("vb", "192.0.2.2/24".parse().unwrap())
            .await
            .unwrap();
        a.set_up("va").await.unwrap();
        b.set_up("vb").await.unwrap();
        let links = b.list().await.unwrap();
        let vb = links.iter().find(|l| l.name == "vb").unwrap();
        assert_eq!(vb.mac.as_deref(), Some("02:00:00:00:00:0b"));
        assert_eq!(vb.kind.as_deref(), Some("veth"));
        let addrs = b.addresses("vb").await.unwrap();
        assert!(
            addrs.contains(&"192.0.2.2".parse::<IpAddr>().unwrap()),
            "{addrs:?}"
        );
        // Our own namespace never saw these links.
        let here = Netlink::connect().unwrap();
        assert_eq!(here.index_of("va").await.unwrap(), None);

        let r = icmp::echo(&pa, "192.0.2.2".parse().unwrap(), Duration::from_secs(3))
            .await
            .unwrap();
        let r = r.expect("no echo reply across the veth");
        assert!(r.sent >= 1);
        let none = icmp::echo(
            &pa,
            "192.0.2.99".parse().unwrap(),
            Duration::from_millis(600),
        )
        .await
        .unwrap();
        assert_eq!(none, None, "nobody has 192.0.2.99");

        // A bridge in b with the veth end as a port.
        b.add_bridge("br0").await.unwrap();
        b.set_master("vb", "br0").await.unwrap();
        b.set_up("br0").await.unwrap();
        let links = b.list().await.unwrap();
        let vb = links.iter().find(|l| l.name == "vb").unwrap();
        assert_eq!(vb.master.as_deref(), Some("br0"));
        let br = sim::link::bridges(&links);
        assert_eq!(br.len(), 1);
        assert_eq!(br[0].ports[0].name, "vb");

        // Moving a link to another namespace.
        a.add_veth_into("mv", &pa, "mvpeer", None).await.unwrap();
        a.move_to("mv", &pb).await.unwrap();
        assert_eq!(a.index_of("mv").await.unwrap(), None);
        assert!(b.index_of("mv").await.unwrap().is_some());
    });
    // A process in the namespace is found, then the namespaces go.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_drvdom-simkernel"))
        .args(["exec", "--netns"])
        .arg(netns::ns_path(&pair.a))
        .args(["--", "sleep", "30"])
        .spawn()
        .unwrap();
    let pid = i32::try_from(child.id()).unwrap();
    testutil::wait_until(
        "the exec'd process is in the namespace",
        Duration::from_secs(10),
        || netns::pids(&pair.a).unwrap().contains(&pid),
    );
    child.kill().unwrap();
    child.wait().unwrap();
    netns::delete(&pair.a).unwrap();
    netns::delete(&pair.b).unwrap();
    netns::delete(&pair.b).unwrap();
    assert!(!netns::exists(&pair.a) && !netns::exists(&pair.b));
    assert!(
        netns::list_with_prefix(&format!("drvdom-{tag}-"))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_half_made_namespace_file_is_replaced() {
    testutil::require_root!();
    let ns = format!("drvdom-{}-half", testutil::unique_name("k"));
    std::fs::create_dir_all(netns::NETNS_DIR).unwrap();
    // What a crash between creating the file and mounting leaves.
    std::fs::write(netns::ns_path(&ns), b"").unwrap();
    netns::create(&ns).unwrap();
    let rt = rt();
    rt.block_on(async {
        let nl = Netlink::connect_in(&netns::ns_path(&ns)).await.unwrap();
        nl.set_up("lo").await.unwrap();
        let links = nl.list().await.unwrap();
        assert_eq!(links.len(), 1, "a fresh namespace has only lo: {links:?}");
    });
    netns::delete(&ns).unwrap();
    assert!(!netns::exists(&ns));
}
