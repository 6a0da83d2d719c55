//! Bridge bring-up and listing against the real kernel, each test in its own
//! network namespace.

mod common;

use common::{flags, in_netns, ip, link_line};

use hotplug::{BridgeConfig, Hotplug, LinkOps, OperState};

fn cfg(bridge: &str, uplink: Option<&str>) -> BridgeConfig {
    BridgeConfig {
        bridge: bridge.into(),
        uplink: uplink.map(str::to_string),
    }
}

#[test]
fn bridge_up_moves_addresses_and_routes_then_rerun_changes_nothing() {
    testutil::require_root!();
    testutil::require_cmd!("ip");
    in_netns(|| async {
        ip("link add up0 type veth peer name up0p");
        ip("link set up0p up");
        ip("link set up0 up");
        ip("addr add 192.0.2.10/24 dev up0");
        ip("route add default via 192.0.2.1 dev up0");
        ip("route add 198.51.100.0/24 via 192.0.2.254 dev up0 metric 7");
        let up0_mac = link_line("up0")
            .split("link/ether ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .to_string();

        let hp = Hotplug::connect().unwrap();
        let r = hp.bridge_up(&cfg("xenbr0", Some("up0"))).await.unwrap();
        assert!(r.created_bridge && r.enslaved_uplink, "{r:?}");
        assert_eq!(r.moved_addresses.len(), 1, "{r:?}");
        assert_eq!(r.moved_routes.len(), 2, "{r:?}");

        // Addresses: on the bridge, gone from the uplink.
        assert!(ip("-o addr show dev xenbr0").contains("inet 192.0.2.10/24"));
        assert!(!ip("-o addr show dev up0").contains("inet "));
        // Routes, incl. default, now through the bridge; none through up0.
        let routes = ip("route show");
        assert!(
            routes.contains("default via 192.0.2.1 dev xenbr0"),
            "{routes}"
        );
        assert!(
            routes.contains("198.51.100.0/24 via 192.0.2.254 dev xenbr0 metric 7"),
            "{routes}"
        );
        assert!(!routes.contains("dev up0"), "{routes}");
        // Uplink enslaved, both up, bridge carries the uplink's MAC.
        assert!(link_line("up0").contains("master xenbr0"));
        assert!(flags("up0").contains(&"UP".to_string()));
        assert!(flags("xenbr0").contains(&"UP".to_string()));
        assert!(link_line("xenbr0").contains(&format!("link/ether {up0_mac}")));

        let before = (ip("-o addr show"), ip("route show"), ip("-o link show"));
        let again = hp.bridge_up(&cfg("xenbr0", Some("up0"))).await.unwrap();
        assert!(!again.changed(), "re-run changed something: {again:?}");
        let after = (ip("-o addr show"), ip("route show"), ip("-o link show"));
        assert_eq!(before.0, after.0);
        assert_eq!(before.1, after.1);
    });
}

#[test]
fn bridge_up_without_uplink_only_creates_the_bridge() {
    testutil::require_root!();
    testutil::require_cmd!("ip");
    in_netns(|| async {
        let hp = Hotplug::connect().unwrap();
        let r = hp.bridge_up(&BridgeConfig::default()).await.unwrap();
        assert!(r.created_bridge);
        assert!(link_line("xenbr0").contains("xenbr0"));
        assert!(ip("-d link show dev xenbr0").contains("bridge"));
        assert!(
            !hp.bridge_up(&BridgeConfig::default())
                .await
                .unwrap()
                .changed()
        );
    });
}

#[test]
fn bridge_up_errors_name_the_interface() {
    testutil::require_root!();
    testutil::require_cmd!("ip");
    in_netns(|| async {
        let hp = Hotplug::connect().unwrap();
        let e = hp
            .bridge_up(&cfg("xenbr0", Some("eth9")))
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "interface eth9 does not exist");

        ip("link add notbr type veth peer name notbrp");
        let e = hp.bridge_up(&cfg("notbr", None)).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "notbr exists but is not a bridge (kind veth)"
        );

        ip("link add other type bridge");
        ip("link add up1 type veth peer name up1p");
        ip("link set up1 master other");
        let e = hp.bridge_up(&cfg("xenbr0", Some("up1"))).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "uplink up1 is already enslaved to other, not to xenbr0"
        );

        let e = hp.bridge_up(&cfg("bad/name", None)).await.unwrap_err();
        assert_eq!(e.to_string(), "invalid interface name \"bad/name\"");
    });
}

#[test]
fn bridges_lists_ports_with_state() {
    testutil::require_root!();
    testutil::require_cmd!("ip");
    in_netns(|| async {
        ip("link add xenbr0 type bridge");
        ip("link add xenbr1 type bridge");
        ip("link add vif1.0 type veth peer name g1");
        ip("link add vif2.0 type veth peer name g2");
        ip("link set vif1.0 master xenbr0");
        ip("link set vif2.0 master xenbr0");
        ip("link set g1 up");
        ip("link set vif1.0 up");
        ip("link set xenbr0 up");
        // Operstate changes are applied by the kernel's linkwatch worker,
        // later than the request; no event reaches `ip`, so poll it.
        testutil::wait_until(
            "vif1.0 operstate UP",
            std::time::Duration::from_secs(5),
            || link_line("vif1.0").contains("state UP"),
        );

        let hp = Hotplug::connect().unwrap();
        let all = hp.bridges().await.unwrap();
        let names: Vec<&str> = all.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["xenbr0", "xenbr1"]);
        let ports: Vec<(&str, bool)> = all[0]
            .ports
            .iter()
            .map(|p| (p.name.as_str(), p.admin_up))
            .collect();
        assert_eq!(ports, [("vif1.0", true), ("vif2.0", false)]);
        assert_eq!(all[0].ports[0].oper, OperState::Up);
        assert_eq!(all[0].ports[1].oper, OperState::Down);
        assert!(all[1].ports.is_empty());

        let p = hp.bridge_ports("xenbr0").await.unwrap();
        assert_eq!(p.len(), 2);
        let e = hp.bridge_ports("xenbr9").await.unwrap_err();
        assert_eq!(e.to_string(), "bridge xenbr9 does not exist");
    });
}

#[test]
fn bridge_up_finishes_a_half_done_move() {
    testutil::require_root!();
    testutil::require_cmd!("ip");
    in_netns(|| async {
        // As if a previous run died after enslaving the uplink: the bridge
        // exists and owns the uplink, but the address and route are still
        // on the uplink.
        ip("link add up0 type veth peer name up0p");
        ip("link add xenbr0 type bridge");
        ip("link set up0 master xenbr0");
        ip("link set up0 up");
        ip("addr add 198.51.100.20/24 dev up0");
        ip("route add default via 198.51.100.1 dev up0");

        let hp = Hotplug::connect().unwrap();
        let r = hp.bridge_up(&cfg("xenbr0", Some("up0"))).await.unwrap();
        assert!(!r.created_bridge && !r.enslaved_uplink, "{r:?}");
        assert_eq!(r.brought_up, ["xenbr0"]);
        assert_eq!(r.moved_addresses.len(), 1);
        assert!(ip("-o addr show dev xenbr0").contains("inet 198.51.100.20/24"));
        let via = ip("route get 192.0.2.77");
        assert!(via.contains("via 198.51.100.1 dev xenbr0"), "{via}");
        assert!(
            !hp.bridge_up(&cfg("xenbr0", Some("up0")))
                .await
                .unwrap()
                .changed()
        );
    });
}

/// Many hotplugs at once share one rtnetlink socket, and the kernel
/// refuses a second dump on a socket while the first runs (EBUSY): every
/// dump (links, addresses, routes, the bridge's FDB) must wait its turn.
#[test]
fn concurrent_dumps_on_one_socket_all_succeed() {
    testutil::require_root!();
    testutil::require_cmd!("ip");
    in_netns(|| async {
        ip("link add up0 type veth peer name up0p");
        ip("addr add 192.0.2.10/24 dev up0");
        let hp = Hotplug::connect().unwrap();
        hp.bridge_up(&cfg("xenbr0", Some("up0"))).await.unwrap();
        let ops = hp.ops();
        let br = ops.link_by_name("xenbr0").await.unwrap().unwrap();
        let mut jobs = Vec::new();
        for i in 0..64 {
            let (ops, br) = (ops.clone(), br.clone());
            jobs.push(tokio::spawn(async move {
                match i % 4 {
                    0 => ops.fdb(&br).await.map(|v| v.len()),
                    1 => ops.links().await.map(|v| v.len()),
                    2 => ops.addresses(&br).await.map(|v| v.len()),
                    _ => ops.routes(&br).await.map(|v| v.len()),
                }
            }));
        }
        for j in jobs {
            let n = j.await.unwrap().unwrap();
            assert!(n > 0, "every dump sees something");
        }
    });
}
