//! Live changes on a running lab: `vif attach/detach` cycles, `bridge
//! show`, and a hostile guest that attacks xenstore through its own
//! domain socket.

mod lab_support;

use lab_support::TestLab;
use xenstore::{Client, XsErrno};

fn has_link(lab: &TestLab, domain: &str, name: &str) -> bool {
    lab.link(domain, name).is_some()
}

#[test]
fn vif_attach_detach_cycles_on_a_live_lab() {
    let _bins = require_lab!();
    let lab = TestLab::new();
    lab.up_detached(2);
    for cycle in 0..3 {
        let out = lab.ok(&[
            "vif",
            "attach",
            "guest1",
            "--backend",
            "netdd",
            "--mac",
            "00:16:3e:00:01:01",
            "--lab",
            &lab.name,
            "--json",
        ]);
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(v["backend_state"], "Connected", "cycle {cycle}: {v}");
        assert_eq!(v["frontend_state"], "Connected", "cycle {cycle}: {v}");
        let devid = v["devid"].as_u64().unwrap();
        assert_eq!(devid, 1, "cycle {cycle}: the freed devid is reused");
        let vif = format!("vif2.{devid}");
        let eth = format!("eth{devid}");
        // Both ends exist: the backend vif on the bridge, the guest's NIC
        // with the requested MAC.
        let ports = lab.bridge_ports("netdd", "xenbr0");
        assert!(ports.contains(&vif), "cycle {cycle}: {ports:?}");
        let e = lab.link("guest1", &eth).unwrap();
        assert_eq!(e.mac.as_deref(), Some("00:16:3e:00:01:01"));
        // bridge show, from dom0, names the guest and the state, once the
        // agent has published the new port (it publishes link changes
        // after a short settle).
        let find_port = || -> Option<serde_json::Value> {
            let show = lab.ok(&[
                "bridge", "show", "--lab", &lab.name, "--domain", "netdd", "--json",
            ]);
            let rows: serde_json::Value = serde_json::from_str(&show).unwrap();
            rows["bridges"][0]["ports"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["port"] == vif.as_str())
                .cloned()
        };
        lab_support::wait("bridge show lists the new vif", || find_port().is_some());
        let port = find_port().unwrap();
        assert_eq!(port["guest"], "guest1");
        assert_eq!(port["backend_state"], "Connected");
        assert_eq!(port["hotplug_status"], "connected");

        let out = lab.ok(&[
            "vif",
            "detach",
            "guest1",
            &devid.to_string(),
            "--lab",
            &lab.name,
            "--json",
        ]);
        let d: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(d["reached_closed"], true, "{d}");
        lab_support::wait("vif removed from the driver domain", || {
            !has_link(&lab, "netdd", &vif)
        });
        assert!(!has_link(&lab, "guest1", &eth));
        let c = Client::connect(lab.socket_of(0)).unwrap();
        assert!(
            !c.exists(&format!("/local/domain/1/backend/vif/2/{devid}"))
                .unwrap()
        );
        assert!(
            !c.exists(&format!("/local/domain/2/device/vif/{devid}"))
                .unwrap()
        );
        assert!(!c.exists(&format!("/libxl/2/device/vif/{devid}")).unwrap());
    }
    // bridge show run inside the driver domain itself, as an admin would:
    // its namespace, its xenstore socket (lab exec sets XENSTORED_PATH),
    // no lab bookkeeping.
    let drvdom = lab_support::drvdom();
    let show_inside = || -> serde_json::Value {
        let out = lab
            .cmd()
            .args(["lab", "exec", "netdd", "--lab", &lab.name, "--"])
            .arg(&drvdom)
            .args(["bridge", "show", "--json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let names = |rows: &serde_json::Value| -> Vec<String> {
        rows["bridges"][0]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["port"].as_str().unwrap().to_string())
            .collect()
    };
    // The agent publishes the last detach's port removal after a settle.
    // (Until then `bridge show` may report the leaving port as a problem
    // and exit 1: keep asking.)
    let show_settled = || -> Option<serde_json::Value> {
        let out = lab
            .cmd()
            .args(["lab", "exec", "netdd", "--lab", &lab.name, "--"])
            .arg(&drvdom)
            .args(["bridge", "show", "--json"])
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).unwrap())
    };
    lab_support::wait("bridge show without the detached vifs", || {
        show_settled().is_some_and(|r| names(&r) == ["nic0", "vif2.0", "vif3.0"])
    });
    let rows = show_inside();
    assert_eq!(rows["bridges"][0]["bridge"], "xenbr0");
    let ports = rows["bridges"][0]["ports"].as_array().unwrap();
    for p in &ports[1..] {
        assert_eq!(p["backend_state"], "Connected", "{p}");
        assert_eq!(p["hotplug_status"], "connected", "{p}");
        assert!(p["guest"].is_string(), "{p}");
    }
    assert_eq!(ports[1]["domid"], 2);
    // The original vifs carried traffic throughout.
    assert!(lab.ping("guest1", "198.51.100.12"));
    let bad = lab.run(&[
        "vif",
        "attach",
        "nosuch",
        "--backend",
        "netdd",
        "--lab",
        &lab.name,
    ]);
    assert_eq!(bad.status.code(), Some(2));
    lab.ok(&["lab", "down", "--lab", &lab.name]);
    lab.assert_gone();
}

#[test]
fn hostile_guest_is_confined_to_its_own_nodes() {
    let _bins = require_lab!();
    let lab = TestLab::new();
    lab.up_detached(2);
    let agent = lab.pid_of("agent");
    let netback = lab.pid_of("netback");
    // guest1 is domid 2, guest2 domid 3, the driver domain domid 1.
    let evil = Client::connect(lab.socket_of(2)).unwrap();
    let denied = |r: xenstore::Result<()>| {
        let e = r.expect_err("write should be refused");
        assert_eq!(e.errno(), Some(XsErrno::Eacces), "{e}");
    };
    // Into its own backend directory (owned by the driver domain).
    denied(evil.write("/local/domain/1/backend/vif/2/0/state", "4"));
    denied(evil.write("/local/domain/1/backend/vif/2/0/script", "/bin/evil"));
    denied(evil.write("/local/domain/1/backend/vif/2/0/bridge", "other"));
    denied(evil.write("/local/domain/1/backend/vif/2/9/state", "1"));
    // Into another guest's nodes and that guest's backend.
    denied(evil.write("/local/domain/3/device/vif/0/state", "6"));
    denied(evil.write("/local/domain/3/device/vif/0/mac", "00:16:3e:66:66:66"));
    denied(evil.write("/local/domain/1/backend/vif/3/0/online", "0"));
    denied(evil.rm("/local/domain/3/device/vif/0"));
    // Into the toolstack's own records.
    denied(evil.write("/libxl/3/device/vif/0/backend", "/local/domain/2"));

    // Garbage in its own frontend: the guest owns these, so they succeed.
    let fe = "/local/domain/2/device/vif/0";
    evil.write(&format!("{fe}/state"), b"\xff\xfe garbage \x00")
        .unwrap();
    evil.write(&format!("{fe}/mac"), "not a mac").unwrap();
    evil.write(&format!("{fe}/tx-ring-ref"), "-1").unwrap();
    evil.write(&format!("{fe}/event-channel"), vec![b'9'; 1000])
        .unwrap();
    evil.write(&format!("{fe}/backend"), "/local/domain/1/backend/vif/3/0")
        .unwrap();
    evil.write(&format!("{fe}/handle"), "../../../etc").unwrap();
    for i in 0..50 {
        evil.write(&format!("{fe}/junk{i}"), format!("{i}"))
            .unwrap();
    }
    evil.write(&format!("{fe}/state"), "5").unwrap();
    evil.write(&format!("{fe}/state"), "6").unwrap();
    evil.write(&format!("{fe}/state"), "4").unwrap();

    // The agent and the netback are alive, guest2 is untouched and still
    // passes packets both ways.
    let dom0 = Client::connect(lab.socket_of(0)).unwrap();
    lab_support::wait("a guest2 ping gets through", || {
        lab.ping("guest2", "198.51.100.1")
    });
    assert!(lab.ping("guest2", "198.51.100.1"));
    assert!(
        lab_support::lab_pids(&lab.name).contains(&agent),
        "agent died"
    );
    assert!(
        lab_support::lab_pids(&lab.name).contains(&netback),
        "netback died"
    );
    assert_eq!(
        dom0.read_string("/local/domain/1/backend/vif/3/0/state")
            .unwrap(),
        "4"
    );
    assert_eq!(
        dom0.read_string("/local/domain/3/device/vif/0/state")
            .unwrap(),
        "4"
    );
    assert_eq!(
        dom0.read_string("/local/domain/1/backend/vif/3/0/hotplug-status")
            .unwrap(),
        "connected"
    );
    assert!(
        lab.bridge_ports("netdd", "xenbr0")
            .contains(&"vif3.0".to_string())
    );
    // The toolstack can still manage the vandalised guest: a new vif on it
    // connects, proving the agent still serves it.
    let out = lab.ok(&[
        "vif",
        "attach",
        "guest2",
        "--backend",
        "netdd",
        "--lab",
        &lab.name,
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["backend_state"], "Connected", "{v}");
    lab.ok(&["lab", "down", "--lab", &lab.name]);
    lab.assert_gone();
}

#[test]
fn netback_refuses_a_backend_without_script() {
    let _bins = require_lab!();
    let lab = TestLab::new();
    lab.up_detached(1);
    let dom0 = Client::connect(lab.socket_of(0)).unwrap();
    // A vif as libxl would write it, but without the `script` key.
    let be = "/local/domain/1/backend/vif/2/5";
    let fe = "/local/domain/2/device/vif/5";
    let be_perms: xenstore::PermList = "n1 r2".parse().unwrap();
    let fe_perms: xenstore::PermList = "n2 r1".parse().unwrap();
    dom0.transaction(|tx| {
        tx.mkdir(fe)?;
        tx.set_perms(fe, &fe_perms)?;
        for (k, v) in [
            ("backend", be),
            ("backend-id", "1"),
            ("state", "1"),
            ("handle", "5"),
        ] {
            tx.write(&format!("{fe}/{k}"), v)?;
        }
        tx.write(&format!("{fe}/mac"), "00:16:3e:00:05:05")?;
        tx.mkdir(be)?;
        tx.set_perms(be, &be_perms)?;
        for (k, v) in [
            ("frontend", fe),
            ("frontend-id", "2"),
            ("online", "1"),
            ("state", "1"),
            ("mac", "00:16:3e:00:05:05"),
            ("bridge", "xenbr0"),
            ("handle", "5"),
            ("type", "vif"),
        ] {
            tx.write(&format!("{be}/{k}"), v)?;
        }
        Ok(())
    })
    .unwrap();
    // xenbus_dev_fatal: an error node in the driver domain, then Closing.
    let err_node = "/local/domain/1/error/backend/vif/2/5/error";
    lab_support::wait("netback reports the missing script", || {
        dom0.read_opt(err_node).unwrap().is_some()
    });
    let msg = dom0.read_string(err_node).unwrap();
    assert!(msg.contains("reading script"), "{msg}");
    lab_support::wait("backend goes Closing", || {
        dom0.read_string(&format!("{be}/state")).unwrap() == "5"
    });
    assert!(!has_link(&lab, "netdd", "vif2.5"));
    assert!(!has_link(&lab, "guest1", "eth5"));
    // The lab's own vif is unaffected.
    assert!(lab.ping("guest1", "198.51.100.1"));
    lab.ok(&["lab", "down", "--lab", &lab.name]);
    lab.assert_gone();
}
