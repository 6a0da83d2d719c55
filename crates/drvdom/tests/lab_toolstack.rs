//! The toolstack commands on a simulated host (`--lab`), as root with real
//! namespaces: a host file applied on a lab started empty, a file that
//! grows by one guest plans only that guest's actions, verify/show/bridge
//! show/vif on the lab, destroy back to nothing, bad files creating
//! nothing.

mod lab_support;

use lab_support::TestLab;

fn host_file(guests: usize) -> String {
    let mut s = String::from(
        r#"version = 1

[[driver_domain]]
name = "netdd"
nics = ["0000:03:00.0"]

[[driver_domain.bridge]]
name = "xenbr0"
uplink = "0000:03:00.0"

[[driver_domain.bridge]]
name = "inner"
mtu = 9000
"#,
    );
    for g in 1..=guests {
        s.push_str(&format!(
            "\n[[guest]]\nname = \"g{g}\"\n\n[[guest.vif]]\nbackend = \"netdd\"\nip = [\"198.51.100.{}/24\"]\n\n[[guest.vif]]\nbackend = \"netdd\"\nbridge = \"inner\"\nip = [\"192.0.2.{g}/24\"]\n",
            40 + g
        ));
        if g == 1 {
            s.push_str("mac = \"00:16:3e:0e:00:01\"\n");
        }
    }
    s
}

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn toolstack_commands_on_a_lab() {
    let _bins = require_lab!();
    let lab = TestLab::new();
    let dir = lab.root.path();
    let f2 = dir.join("two.toml");
    let f3 = dir.join("three.toml");
    std::fs::write(&f2, host_file(2)).unwrap();
    std::fs::write(&f3, host_file(3)).unwrap();
    let (f2, f3) = (f2.to_str().unwrap(), f3.to_str().unwrap());
    let l = ["--lab", lab.name.as_str()];
    let with = |args: &[&str]| -> Vec<String> {
        args.iter().chain(l.iter()).map(|s| s.to_string()).collect()
    };
    let ok = |args: &[&str]| {
        let a = with(args);
        let r: Vec<&str> = a.iter().map(String::as_str).collect();
        lab.ok(&r)
    };
    let run = |args: &[&str]| {
        let a = with(args);
        let r: Vec<&str> = a.iter().map(String::as_str).collect();
        lab.run(&r)
    };

    let v = lab.up_detached_with(&["--topology", f2]);
    lab_support::assert_all_pass(&v);

    // Applied: plan is empty, exit 0.
    let o = run(&["plan", f2, "--json"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(json(&String::from_utf8_lossy(&o.stdout))["changes"], 0);

    // One more guest: only its actions, exit 2.
    let o = run(&["plan", f3, "--json"]);
    assert_eq!(o.status.code(), Some(2));
    let p = json(&String::from_utf8_lossy(&o.stdout));
    let targets: Vec<&str> = p["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["target"].as_str().unwrap())
        .collect();
    assert_eq!(targets, ["g3", "g3->netdd", "g3/0", "g3/1"], "{p:#}");

    // A bad file creates nothing.
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        host_file(3).replace("name = \"g3\"", "name = \"g3\"\nmemory = 1"),
    )
    .unwrap();
    let o = run(&["apply", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("bad.toml:") && e.contains("TOPO-UNKNOWN-KEY"),
        "{e}"
    );
    let show = json(&ok(&["show", "--format", "json"]));
    assert!(
        !show["domains"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["name"] == "g3"),
        "{show:#}"
    );

    // Apply the grown file: human progress, then verify everything.
    let out = ok(&["apply", f3]);
    assert!(out.contains("[1/4] create-domain g3 ... ok"), "{out}");
    assert!(out.contains("apply complete: 4 action(s)"), "{out}");
    let vj = json(&ok(&["verify", f3, "--json"]));
    assert_eq!(vj["failed"], 0, "{vj:#}");
    let kinds: Vec<&str> = vj["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    for k in [
        "nic-pciback",
        "nic-visible",
        "agent-ready",
        "bridge",
        "name-readable",
        "vif-connected",
        "vif-on-bridge",
        "ping",
        "ping-outside",
    ] {
        assert!(kinds.contains(&k), "{k} missing: {kinds:?}");
    }
    // every pair on each bridge: 3 pairs on xenbr0, 3 on inner.
    assert_eq!(kinds.iter().filter(|k| **k == "ping").count(), 6, "{vj:#}");
    assert_eq!(kinds.iter().filter(|k| **k == "ping-outside").count(), 3);

    // show: the file's view, JSON shape, libvirt.
    let sj = json(&ok(&["show", f3, "--format", "json"]));
    let g1 = sj["domains"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "g1")
        .unwrap()
        .clone();
    assert_eq!(g1["role"], "guest");
    assert_eq!(g1["vifs"][1]["mac"], "00:16:3e:0e:00:01");
    assert_eq!(g1["vifs"][0]["state_backend"], "Connected");
    assert_eq!(g1["vifs"][0]["hotplug_status"], "connected");
    assert!(g1["problems"].as_array().unwrap().is_empty(), "{g1:#}");
    let x = ok(&["show", f3, "--format", "libvirt"]);
    assert!(x.contains("<backenddomain name='netdd'/>"), "{x}");

    // bridge show from dom0 names the guests.
    let bj = json(&ok(&["bridge", "show", "--domain", "netdd", "--json"]));
    let inner = bj["bridges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["bridge"] == "inner")
        .unwrap()
        .clone();
    assert_eq!(inner["mtu"], 9000);
    let guests: Vec<&str> = inner["ports"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["guest"].as_str())
        .collect();
    assert_eq!(guests.len(), 3, "{inner:#}");
    for g in ["g1", "g2", "g3"] {
        assert!(guests.contains(&g), "{guests:?}");
    }

    // A live vif on the lab, then the file detaches it again.
    let a = json(&ok(&[
        "vif",
        "attach",
        "g3",
        "--backend",
        "netdd",
        "--bridge",
        "inner",
        "--json",
    ]));
    assert_eq!(a["devid"], 2);
    let p = json(&String::from_utf8_lossy(
        &run(&["plan", f3, "--json"]).stdout,
    ));
    assert_eq!(p["actions"][0]["action"], "detach-vif", "{p:#}");
    assert_eq!(p["actions"][0]["target"], "g3/2", "{p:#}");
    ok(&["apply", f3]);

    // destroy: nothing of the file is left, the NIC is back.
    let d = ok(&["destroy", f3]);
    assert!(d.contains("nothing of the file is left"), "{d}");
    let sj = json(&ok(&["show", "--format", "json"]));
    assert_eq!(sj["domains"].as_array().unwrap().len(), 1, "{sj:#}");
    let o = run(&["plan", f3, "--json"]);
    assert_eq!(o.status.code(), Some(2));
    // destroy again: nothing to do.
    ok(&["destroy", f3]);
    lab.ok(&["lab", "down", "--lab", &lab.name]);
    lab.assert_gone();
}
