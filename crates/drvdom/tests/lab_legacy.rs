//! Legacy mode: the agent runs Debian's own `/etc/xen/scripts/vif-bridge`
//! (package xen-utils-common; it calls `xenstore-write` from
//! xenstore-utils) against the lab, and the vifs reach Connected.

mod lab_support;

use lab_support::TestLab;

const VIF_BRIDGE: &str = "/etc/xen/scripts/vif-bridge";

#[test]
fn debian_vif_bridge_script_connects_the_lab_vifs() {
    let _bins = require_lab!();
    let _script = testutil::require_cmd!(VIF_BRIDGE);
    let _xsw = testutil::require_cmd!("xenstore-write");
    // Debian's vif-bridge itself calls ip (the lab does not).
    let _ip = testutil::require_cmd!("ip");
    let lab = TestLab::new();
    let out = lab.ok(&[
        "lab",
        "up",
        "--detach",
        "--json",
        "--legacy-scripts",
        "always",
        "--lab",
        &lab.name,
    ]);
    let v = lab_support::fold(&out);
    assert_eq!(v["ok"], true, "{v:#}");
    // The agent really ran the script, once per vif.
    let log = std::fs::read_to_string(lab.dir().join("logs/agent-netdd.log")).unwrap();
    let runs = log
        .lines()
        .filter(|l| l.contains("legacy hotplug script done") && l.contains(VIF_BRIDGE))
        .count();
    assert_eq!(runs, 2, "agent log:\n{log}");
    let status = lab.ok(&["lab", "status", "--json", "--lab", &lab.name]);
    let st: serde_json::Value = serde_json::from_str(&status).unwrap();
    for g in ["guest1", "guest2"] {
        let d = st["domains"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == g)
            .unwrap();
        assert_eq!(d["vifs"][0]["backend_state"], "Connected", "{d}");
        assert_eq!(d["vifs"][0]["hotplug_status"], "connected", "{d}");
    }
    assert!(lab.ping("guest1", "198.51.100.12"));
    lab.ok(&["lab", "down", "--lab", &lab.name]);
    lab.assert_gone();
}
