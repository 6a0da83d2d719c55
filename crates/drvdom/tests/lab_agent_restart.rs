//! The agent is SIGKILLed in the middle of attaching 50 vifs and
//! restarted: every vif converges to Connected, with no duplicate or
//! leaked link; detaching them all leaves no trace.

mod lab_support;

use std::time::Duration;

use lab_support::TestLab;
use xenbus::{DetachOptions, DevId, MacAddr, VifConfig, XenbusState};
use xenstore::{AsyncClient, DomId};

const N: u32 = 50;

#[test]
fn agent_killed_mid_attach_of_50_vifs_converges_after_restart() {
    let _bins = require_lab!();
    let lab = TestLab::new();
    lab.up_detached(1);
    let guest = DomId(2);
    let dd = DomId(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dom0 = rt.block_on(AsyncClient::connect(lab.socket_of(0))).unwrap();
    let agent = lab.pid_of("agent");
    let mut devids = Vec::new();
    for i in 1..=N {
        let mac: MacAddr = format!("00:16:3e:00:10:{i:02x}").parse().unwrap();
        let devid = rt
            .block_on(xenbus::attach_vif(
                &dom0,
                guest,
                &VifConfig::new(dd).mac(mac),
            ))
            .unwrap();
        devids.push(devid);
        if i == 20 {
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(agent),
                nix::sys::signal::Signal::SIGKILL,
            )
            .unwrap();
        }
        if i == 35 {
            let out = lab.ok(&["lab", "restart", "agent", "--lab", &lab.name]);
            assert!(out.contains("agent-netdd restarted"), "{out}");
        }
    }
    assert_ne!(lab.pid_of("agent"), agent);
    let mut sorted: Vec<u32> = devids.iter().map(|d| d.0).collect();
    sorted.sort_unstable();
    assert_eq!(sorted, (1..=N).collect::<Vec<_>>());

    // All converge, both ends, hotplug done.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for d in &devids {
        let bp = xenbus::BackendPath::vif(dd, guest, *d);
        let want = [XenbusState::Connected];
        rt.block_on(xenbus::wait_for_state(&dom0, &bp.state(), &want, deadline))
            .unwrap_or_else(|e| panic!("backend {bp}: {e}"));
        rt.block_on(xenbus::wait_for_state(
            &dom0,
            &bp.frontend().state(),
            &want,
            deadline,
        ))
        .unwrap_or_else(|e| panic!("frontend of {bp}: {e}"));
        let hp = rt
            .block_on(dom0.read_string(&bp.key("hotplug-status")))
            .unwrap();
        assert_eq!(hp, "connected", "{bp}");
    }

    // Exactly one port per vif, each on the bridge and up; no stray vif.
    let mut want: Vec<String> = (0..=N).map(|d| format!("vif2.{d}")).collect();
    want.push("nic0".into());
    want.sort();
    let ports = lab.bridge_ports("netdd", "xenbr0");
    assert_eq!(ports, want);
    let links = lab.links("netdd");
    let vifs: Vec<&lab_support::LinkView> =
        links.iter().filter(|l| l.name.starts_with("vif")).collect();
    assert_eq!(
        vifs.len(),
        usize::try_from(N).unwrap() + 1,
        "stray vif links"
    );
    for l in &vifs {
        assert_eq!(l.master.as_deref(), Some("xenbr0"), "{l:?}");
        assert!(l.up, "{l:?}");
    }
    let guest_eths = lab
        .links("guest1")
        .iter()
        .filter(|l| l.name.starts_with("eth"))
        .count();
    assert_eq!(guest_eths, usize::try_from(N).unwrap() + 1);
    assert!(lab.ping("guest1", "198.51.100.1"));

    // Detach them all: nothing of them is left anywhere.
    for d in &devids {
        let out = rt
            .block_on(xenbus::detach_vif(
                &dom0,
                guest,
                *d,
                &DetachOptions::default(),
            ))
            .unwrap();
        assert!(out.reached_closed, "vif {d}");
    }
    lab_support::wait("all detached vifs gone from the driver domain", || {
        lab.bridge_ports("netdd", "xenbr0") == ["nic0", "vif2.0"]
    });
    // The netback deletes each interface when its backend reaches Closed
    // (like Linux's device_unregister), concurrently with the agent's
    // cleanup: wait for it, then nothing but vif2.0 may remain.
    let stray = || -> Vec<String> {
        lab.links("netdd")
            .into_iter()
            .map(|l| l.name)
            .filter(|n| n.starts_with("vif") && n != "vif2.0")
            .collect()
    };
    lab_support::wait("detached vif links deleted", || stray().is_empty());
    let eths = lab
        .links("guest1")
        .iter()
        .filter(|l| l.name.starts_with("eth"))
        .count();
    assert_eq!(eths, 1, "guest-side interfaces left");
    // No node of a detached device was left or resurrected.
    let be_dir = rt
        .block_on(dom0.directory("/local/domain/1/backend/vif/2"))
        .unwrap();
    assert_eq!(be_dir, ["0"]);
    let fe_dir = rt
        .block_on(dom0.directory("/local/domain/2/device/vif"))
        .unwrap();
    assert_eq!(fe_dir, ["0"]);
    let vifs = rt.block_on(xenbus::list_vifs(&dom0, guest)).unwrap();
    assert_eq!(vifs.len(), 1);
    assert_eq!(vifs[0].devid, DevId(0));
    assert!(lab.ping("guest1", "198.51.100.1"));
    lab.ok(&["lab", "down", "--lab", &lab.name]);
    lab.assert_gone();
}
