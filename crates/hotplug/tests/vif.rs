//! Native vif hotplug against the real kernel, each test in its own network
//! namespace, with veth pairs standing in for netback's vifs.

mod common;

use std::time::{Duration, Instant};

use common::{flags, in_netns, ip, link_line};
use hotplug::{Error, Hotplug, VifOffline, VifOnline};

fn assert_online(vif: &str, bridge: &str, mtu: u32) {
    let line = link_line(vif);
    assert!(line.contains(&format!("mtu {mtu} ")), "{line}");
    assert!(line.contains(&format!("master {bridge} ")), "{line}");
    assert!(line.contains("link/ether fe:ff:ff:ff:ff:ff "), "{line}");
    assert!(flags(vif).contains(&"UP".to_string()), "{line}");
}

#[test]
fn online_sets_mtu_mac_master_up_and_rerun_is_a_no_op() {
    testutil::require_root!();
    testutil::require_cmd!("ip");
    in_netns(|| async {
        ip("link add xenbr0 type bridge");
        ip("link add vif5.0 type veth peer name g5");
        let hp = Hotplug::connect().unwrap();

        let r = hp
            .vif_online(&VifOnline::new("vif5.0").l2(false).mtu(1400))
            .await
            .unwrap();
        assert_eq!(
            (r.bridge.as_str(), r.mtu, r.changed),
            ("xenbr0", 1400, true)
        );
        assert_online("vif5.0", "xenbr0", 1400);

        let before = link_line("vif5.0");
        let again = hp
            .vif_online(&VifOnline::new("vif5.0").l2(false).mtu(1400))
            .await
            .unwrap();
        assert!(!again.changed);
        assert_eq!(before, link_line("vif5.0"));
    });
}

#[test]
fn online_takes_the_bridge_mtu_by_default_and_fixes_an_up_link() {
    testutil::require_root!();
    testutil::require_cmd!("ip");
    in_netns(|| async {
        ip("link add xenbr1 mtu 1450 type bridge");
        ip("link add vif3.1 type veth peer name g3");
        ip("link set vif3.1 up");
        let hp = Hotplug::connect().unwrap();
        hp.vif_online(&VifOnline::new("vif3.1").l2(false).bridge("xenbr1"))
            .await
            .unwrap();
        assert_online("vif3.1", "xenbr1", 1450);
    });
}

#[test]
fn offline_detaches_and_tolerates_a_gone_link() {
    testutil::require_root!();
    testutil::require_cmd!("ip");
    in_netns(|| async {
        ip("link add xenbr0 type bridge");
        ip("link add vif5.0 type veth peer name g5");
        let hp = Hotplug::connect().unwrap();
        hp.vif_online(&VifOnline::new("vif5.0").l2(false))
            .await
            .unwrap();

        assert_eq!(
            hp.vif_offline("vif5.0").await.unwrap(),
            VifOffline::Detached
        );
        let line = link_line("vif5.0");
        assert!(!line.contains("master"), "{line}");
        assert!(!flags("vif5.0").contains(&"UP".to_string()), "{line}");
        assert!(hp.bridge_ports("xenbr0").await.unwrap().is_empty());

        assert_eq!(
            hp.vif_offline("vif5.0").await.unwrap(),
            VifOffline::AlreadyDetached
        );
        ip("link del vif5.0");
        assert_eq!(hp.vif_offline("vif5.0").await.unwrap(), VifOffline::Gone);
    });
}

#[test]
fn online_with_missing_bridge_gives_a_clear_reason() {
    testutil::require_root!();
    testutil::require_cmd!("ip");
    in_netns(|| async {
        ip("link add vif5.0 type veth peer name g5");
        let hp = Hotplug::connect().unwrap();
        let e = hp
            .vif_online(&VifOnline::new("vif5.0").l2(false).bridge("xenbr1"))
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "bridge xenbr1 does not exist");
        assert!(!link_line("vif5.0").contains("master"));
    });
}

#[test]
fn online_of_a_missing_link_times_out_with_a_clear_reason() {
    testutil::require_root!();
    in_netns(|| async {
        let hp = Hotplug::connect().unwrap();
        let t0 = Instant::now();
        let e = hp
            .vif_online(
                &VifOnline::new("vif9.0")
                    .l2(false)
                    .link_timeout(Duration::from_millis(200)),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, Error::LinkTimeout { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "interface vif9.0 did not appear within 200ms"
        );
        assert!(t0.elapsed() >= Duration::from_millis(200));
    });
}

/// True when some NETLINK_ROUTE socket of this thread's namespace is a
/// member of RTNLGRP_LINK (group bit 0).
#[allow(clippy::unwrap_used)] // test helper: an unreadable /proc fails the test
fn link_group_subscribed() -> bool {
    let table = std::fs::read_to_string("/proc/thread-self/net/netlink").unwrap();
    table.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 3 && f[1] == "0" && u32::from_str_radix(f[3], 16).is_ok_and(|g| g & 1 != 0)
    })
}

#[test]
fn online_waits_for_a_link_created_later() {
    testutil::require_root!();
    testutil::require_cmd!("ip");
    in_netns(|| async {
        ip("link add xenbr0 type bridge");
        let hp = Hotplug::connect().unwrap();
        let req = VifOnline::new("vif7.0")
            .l2(false)
            .link_timeout(Duration::from_secs(10));
        let online = hp.vif_online(&req);
        let create = async {
            // Create the link only once the waiter has subscribed to link
            // notifications (an RTNLGRP_LINK member shows up in this
            // namespace's /proc/thread-self/net/netlink), so the event path
            // is the one tested. Yield, never sleep, between looks.
            let t0 = Instant::now();
            while !link_group_subscribed() {
                assert!(
                    t0.elapsed() < Duration::from_secs(10),
                    "waiter never subscribed"
                );
                tokio::task::yield_now().await;
            }
            let st = tokio::process::Command::new("ip")
                .args([
                    "link", "add", "vif7.0", "type", "veth", "peer", "name", "g7",
                ])
                .status()
                .await
                .unwrap();
            assert!(st.success());
        };
        let (r, ()) = tokio::join!(online, create);
        r.unwrap();
        assert_online("vif7.0", "xenbr0", 1500);
    });
}

#[test]
fn hundred_vifs_online_and_offline() {
    testutil::require_root!();
    testutil::require_cmd!("ip");
    in_netns(|| async {
        let mut batch = String::from("link add xenbr0 type bridge\n");
        for i in 0..100 {
            batch.push_str(&format!("link add vif{i}.0 type veth peer name g{i}\n"));
        }
        let mut child = std::process::Command::new("ip")
            .args(["-batch", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(batch.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success());

        let hp = Hotplug::connect().unwrap();
        let t0 = Instant::now();
        for i in 0..100 {
            hp.vif_online(&VifOnline::new(format!("vif{i}.0")).l2(false))
                .await
                .unwrap();
        }
        let online = t0.elapsed();
        assert_eq!(hp.bridge_ports("xenbr0").await.unwrap().len(), 100);
        let t1 = Instant::now();
        for i in 0..100 {
            assert_eq!(
                hp.vif_offline(&format!("vif{i}.0")).await.unwrap(),
                VifOffline::Detached
            );
        }
        let offline = t1.elapsed();
        assert!(hp.bridge_ports("xenbr0").await.unwrap().is_empty());
        eprintln!(
            "100 vifs sequentially: online {:?} ({:?}/vif), offline {:?} ({:?}/vif)",
            online,
            online / 100,
            offline,
            offline / 100
        );
    });
}

#[test]
fn online_renames_to_vifname_and_a_replay_converges() {
    testutil::require_root!();
    testutil::require_cmd!("ip");
    in_netns(|| async {
        ip("link add xenbr0 type bridge");
        ip("link add vif6.0 type veth peer name g6");
        ip("link set vif6.0 up");
        let hp = Hotplug::connect().unwrap();
        let req = VifOnline::new("vif6.0").l2(false).rename("web6");
        let r = hp.vif_online(&req).await.unwrap();
        assert_eq!(r.vif, "web6");
        assert_online("web6", "xenbr0", 1500);
        assert!(!ip("-o link show").contains("vif6.0"));

        let again = hp.vif_online(&req).await.unwrap();
        assert!(!again.changed);
        assert_eq!(again.vif, "web6");

        ip("link add vif6.1 type veth peer name g61");
        let e = hp
            .vif_online(&VifOnline::new("vif6.1").l2(false).rename("web6"))
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot rename vif6.1 to web6: web6 already exists"
        );
    });
}
