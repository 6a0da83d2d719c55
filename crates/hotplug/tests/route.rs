//! Routed vifs (`vif-route`) against the real kernel: the driver domain in
//! the test thread's namespace with its "eth0" towards an outside host,
//! the guest in its own namespace behind a veth.

// Test harness: failing loudly is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};

use common::{in_netns, ip};
use hotplug::{FilterMode, Hotplug, VifOffline, VifOnline};
use xentypes::{IpCidr, MacAddr};

struct Ns(String);

impl Ns {
    fn new(tag: &str) -> Ns {
        let n = testutil::unique_name(tag);
        ip(&format!("netns add {n}"));
        ip(&format!("-n {n} link set lo up"));
        Ns(n)
    }
    fn ip(&self, args: &str) -> String {
        ip(&format!("-n {} {args}", self.0))
    }
    fn ping(&self, args: &str) -> bool {
        Command::new("ip")
            .args([
                "netns", "exec", &self.0, "ping", "-c", "3", "-i", "0.2", "-W", "3",
            ])
            .args(args.split_whitespace())
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success()
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn sysctl(path: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/net/ipv4/conf/{path}"))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn routed_vif_gets_address_proxy_arp_forwarding_host_routes_and_the_filter() {
    testutil::require_root!();
    testutil::require_cmd!("ip");
    testutil::require_cmd!("ping");
    in_netns(|| async {
        let (guest, out) = (Ns::new("dvrg"), Ns::new("dvro"));
        // The driver domain's uplink: "eth0" 192.0.2.10/24, outside .1.
        ip(&format!(
            "link add eth0 type veth peer name out0 netns {}",
            out.0
        ));
        ip("addr add 192.0.2.10/24 dev eth0");
        ip("link set eth0 up");
        out.ip("link set out0 up");
        out.ip("addr add 192.0.2.1/24 dev out0");
        out.ip("route add 198.51.100.16/32 via 192.0.2.10");
        // The guest: 198.51.100.16, default route via the vif's borrowed address.
        ip(&format!(
            "link add vif9.0 type veth peer name eth0 netns {}",
            guest.0
        ));
        guest.ip("link set eth0 address 00:16:3e:00:09:00 up");
        guest.ip("addr add 198.51.100.16/32 dev eth0");
        guest.ip("route add 192.0.2.10/32 dev eth0");
        guest.ip("route add default via 192.0.2.10");

        let hp = Hotplug::connect().unwrap();
        let req = VifOnline::new("vif9.0")
            .routed(None)
            .guest_mac(MacAddr([0, 0x16, 0x3e, 0, 9, 0]))
            .ip(IpCidr::parse_list("198.51.100.16").unwrap());
        let r = hp.vif_online(&req).await.unwrap();
        assert!(r.routed && r.changed);
        assert_eq!(r.filter, FilterMode::L2Ip);
        assert!(ip("-o addr show dev vif9.0").contains("inet 192.0.2.10/32"));
        assert_eq!(sysctl("vif9.0/proxy_arp"), "1");
        assert_eq!(sysctl("vif9.0/forwarding"), "1");
        assert_eq!(sysctl("eth0/forwarding"), "1");
        let routes = ip("route show dev vif9.0");
        assert!(
            routes.contains("198.51.100.16 proto static scope link src 192.0.2.10 metric 2"),
            "{routes}"
        );

        // Traffic is routed both ways; the replay changes nothing.
        assert!(
            out.ping("198.51.100.16"),
            "outside cannot reach the routed guest: {:?}\n{}",
            hp.filter_status("vif9.0").await,
            String::from_utf8_lossy(
                &Command::new("nft")
                    .args(["list", "table", "netdev", "drvdom-vif9.0"])
                    .output()
                    .unwrap()
                    .stdout
            )
        );
        assert!(!hp.vif_online(&req).await.unwrap().changed);

        // A foreign source address is dropped and counted.
        guest.ip("addr add 198.51.100.99/32 dev eth0");
        assert!(
            !guest.ping("-I 198.51.100.99 192.0.2.1"),
            "spoofed ping was answered"
        );
        assert!(guest.ping("-I 198.51.100.16 192.0.2.1"));
        let st = hp.filter_status("vif9.0").await.unwrap().unwrap();
        assert!(st.drops.spoof >= 1, "{st:?}");

        // Offline removes routes, the address and the filter.
        assert_eq!(
            hp.vif_offline("vif9.0").await.unwrap(),
            VifOffline::Detached
        );
        assert!(ip("route show dev vif9.0").trim().is_empty());
        assert!(!ip("-o addr show dev vif9.0").contains("192.0.2.10"));
        assert!(hp.filter_status("vif9.0").await.unwrap().is_none());
    });
}

#[test]
fn routed_vif_without_a_gateway_address_says_which_device() {
    testutil::require_root!();
    testutil::require_cmd!("ip");
    in_netns(|| async {
        ip("link add vif9.1 type veth peer name g91");
        ip("link add eth1 type veth peer name eth1p");
        let hp = Hotplug::connect().unwrap();
        let e = hp
            .vif_online(
                &VifOnline::new("vif9.1")
                    .routed(Some("eth1".into()))
                    .l2(false),
            )
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "routed vif vif9.1: gateway device eth1 has no IPv4 address (vif-route's dom0_ip)"
        );
    });
}
