//! `drvdom lab up --topology FILE` with two driver domains, `lab exec`
//! into the domains, and `lab up` on a machine without `ip` and `ping`
//! (PATH stripped to an empty directory), as root with real namespaces.

mod lab_support;

use lab_support::{TestLab, assert_all_pass, checks};

const TWO_DRIVER_DOMAINS: &str = r#"
version = 1

[[driver_domain]]
name = "netdd"
nics = ["0000:03:00.0"]

[[driver_domain.bridge]]
name = "xenbr0"
uplink = "0000:03:00.0"

[[driver_domain]]
name = "backdd"
nics = ["0000:05:00.0"]

[[driver_domain.bridge]]
name = "jumbo"
uplink = "0000:05:00.0"
mtu = 9000

[[driver_domain.bridge]]
name = "internal"

[[guest]]
name = "web"

[[guest.vif]]
backend = "netdd"
ip = ["198.51.100.31/24"]

[[guest.vif]]
backend = "backdd"
bridge = "internal"
mac = "00:16:3e:5e:00:01"
ip = ["192.0.2.31/24"]

[[guest]]
name = "db"

[[guest.vif]]
backend = "backdd"
bridge = "internal"
ip = ["192.0.2.32/24"]

[[guest.vif]]
backend = "backdd"
bridge = "jumbo"
ip = ["203.0.113.32/24"]
mtu = 9000
"#;

#[test]
fn lab_up_applies_a_host_file_with_two_driver_domains() {
    let _bins = require_lab!();
    let lab = TestLab::new();
    let file = lab.root.path().join("two.toml");
    std::fs::write(&file, TWO_DRIVER_DOMAINS).unwrap();
    let v = lab.up_detached_with(&["--topology", file.to_str().unwrap()]);
    assert_all_pass(&v);
    assert_eq!(checks(&v, "agent-ready").len(), 2, "{v:#}");
    assert_eq!(checks(&v, "bridge").len(), 3, "{v:#}");
    assert_eq!(checks(&v, "vif-on-bridge").len(), 4, "{v:#}");
    // web <-> db on the guest-only bridge of backdd, each uplinked
    // bridge to the outside.
    assert!(!checks(&v, "ping").is_empty(), "{v:#}");
    assert_eq!(checks(&v, "ping-outside").len(), 2, "{v:#}");

    // The NICs went to their own driver domains, the bridges exist there.
    assert_eq!(lab.bridge_ports("netdd", "xenbr0"), ["nic0", "vif3.0"]);
    assert_eq!(lab.bridge_ports("backdd", "jumbo"), ["nic1", "vif4.1"]);
    assert_eq!(lab.bridge_ports("backdd", "internal"), ["vif3.1", "vif4.0"]);
    assert_eq!(lab.link("backdd", "nic1").unwrap().mtu, 9000);
    assert_eq!(lab.link("db", "eth1").unwrap().mtu, 9000);
    assert_eq!(
        lab.link("web", "eth1").unwrap().mac.as_deref(),
        Some("00:16:3e:5e:00:01")
    );
    // Real packets across the guest-only bridge.
    assert!(lab.ping("web", "192.0.2.32"));
    assert!(lab.ping("db", "192.0.2.31"));
    // Two separate driver domains: web's first vif is not on backdd.
    assert!(lab.link("backdd", "vif3.0").is_none());

    // Applying the same file again changes nothing.
    let again = lab.ok(&["--lab", &lab.name, "lab", "status", "--json"]);
    let st: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(st["domains"].as_array().unwrap().len(), 5, "{st:#}");
    lab.ok(&["lab", "down", "--lab", &lab.name]);
    lab.assert_gone();
}

#[test]
fn lab_exec_runs_commands_inside_a_domain() {
    let _bins = require_lab!();
    let lab = TestLab::new();
    lab.up_detached(1);
    // The domain's own network: guest1's eth0, seen in its own /sys, with
    // the MAC of its vif.
    let mac = lab.ok(&[
        "lab",
        "exec",
        "guest1",
        "--lab",
        &lab.name,
        "--",
        "/bin/sh",
        "-c",
        "cat /sys/class/net/eth0/address; echo $XENSTORED_PATH",
    ]);
    let mut lines = mac.lines();
    assert_eq!(lines.next(), Some("00:16:3e:00:00:01"), "{mac}");
    assert!(
        lines.next().is_some_and(|p| p.ends_with("sockets/2.sock")),
        "{mac}"
    );
    // The driver domain has the bridge; dom0 does not.
    let dd = lab.ok(&[
        "lab",
        "exec",
        "netdd",
        "--lab",
        &lab.name,
        "--",
        "/bin/ls",
        "/sys/class/net",
    ]);
    assert!(dd.lines().any(|l| l == "xenbr0"), "{dd}");
    let outside = lab.ok(&[
        "lab",
        "exec",
        "outside",
        "--lab",
        &lab.name,
        "--",
        "/bin/ls",
        "/sys/class/net",
    ]);
    assert!(outside.lines().any(|l| l == "outbr"), "{outside}");
    assert!(!outside.lines().any(|l| l == "xenbr0"), "{outside}");
    // The command's exit status is the command's.
    let st = lab.run(&[
        "lab", "exec", "guest1", "--lab", &lab.name, "--", "/bin/sh", "-c", "exit 7",
    ]);
    assert_eq!(st.status.code(), Some(7));
    // An unknown domain is a usage error naming the known ones.
    let bad = lab.run(&[
        "lab",
        "exec",
        "nosuch",
        "--lab",
        &lab.name,
        "--",
        "/bin/true",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("guest1") && err.contains("netdd"), "{err}");
    lab.ok(&["lab", "down", "--lab", &lab.name]);
    lab.assert_gone();
}

#[test]
fn lab_up_needs_neither_ip_nor_ping() {
    let _bins = require_lab!();
    let lab = TestLab::new();
    // A PATH with nothing on it: no ip, no ping, no other tool.
    let empty = tempfile::tempdir().unwrap();
    for tool in ["ip", "ping", "bridge", "brctl"] {
        assert!(!empty.path().join(tool).exists());
    }
    let out = lab
        .cmd()
        .env("PATH", empty.path())
        .args(["lab", "up", "--once", "--json", "--lab", &lab.name])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "lab up failed without ip/ping: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let v = lab_support::fold(&String::from_utf8_lossy(&out.stdout));
    assert_all_pass(&v);
    assert_eq!(checks(&v, "ping-outside").len(), 2, "{v:#}");
    lab.assert_gone();
}
