//! The agent's side of AGENT_XS_SCHEMA.md, as root with the real
//! xenstored: bridges follow dom0's settings (uplink by PCI address through
//! `--nic`, guest-only bridges, MTU, removal) and everything is published
//! under the driver domain's `data/drvdom` for dom0 to read.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{AgentProc, BE, Netns, wait_hotplug, world};
use xenbus::agent::{
    AgentState, BridgeSetting, Published, UplinkSetting, read_published, write_config,
};
use xenbus::{BackendPath, VifConfig, XenbusState, attach_vif};
use xenstore::{AsyncClient, DomId};

fn sock(xsd: &common::Xsd, d: DomId) -> std::path::PathBuf {
    xsd.domdir.join(format!("{}.sock", d.0))
}

/// Wait (on a watch of the publication) until `ok` holds; returns it.
async fn published_until(
    c: &AsyncClient,
    what: &str,
    ok: impl Fn(&Published) -> bool,
) -> Published {
    let dir = xenbus::agent::published_dir(BE);
    let mut w = c.watch(&dir, &xenbus::unique_token("t")).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let p = read_published(c, BE).await.unwrap();
        if ok(&p) {
            return p;
        }
        match tokio::time::timeout_at(deadline, w.recv()).await {
            Ok(Some(Ok(_))) => {}
            other => panic!("waiting for {what}: {other:?}; last publication: {p:#?}"),
        }
    }
}

fn bridge<'a>(p: &'a Published, name: &str) -> Option<&'a xenbus::agent::PublishedBridge> {
    p.bridges.iter().find(|b| b.name == name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_converges_bridges_from_xenstore_and_publishes_them() {
    testutil::require_root!();
    let (xsd, c, drv) = world(&[5]).await;
    let ns = Netns::new();
    // The "passed-through NIC": a veth whose peer stays in the namespace.
    ns.ip(&[
        "link", "add", "nic0", "type", "veth", "peer", "name", "nic0p",
    ]);
    ns.ip(&["link", "set", "nic0p", "up"]);
    let bdf = "0000:03:00.0";
    let mut agent = AgentProc::start(&ns, &sock(&xsd, BE), &["--nic", &format!("{bdf}=nic0")]);

    // Nothing asked yet: ready, no bridges.
    let p = published_until(&c, "agent ready", |p| p.state == Some(AgentState::Ready)).await;
    assert_eq!(p.version.as_deref(), Some(env!("CARGO_PKG_VERSION")));
    assert_eq!(p.pid, Some(agent.child.id()));
    assert!(p.bridges.is_empty(), "{p:#?}");
    assert_eq!(p.error, None);

    // dom0 asks for an uplinked bridge (by BDF) with a custom MTU and a
    // guest-only one.
    write_config(
        &c,
        BE,
        &[
            BridgeSetting {
                name: "xenbr0".into(),
                uplink: Some(UplinkSetting::Nic(bdf.parse().unwrap())),
                mtu: Some(9000),
            },
            BridgeSetting {
                name: "guests".into(),
                uplink: None,
                mtu: None,
            },
        ],
    )
    .await
    .unwrap();
    // The driver domain may read its settings but not change them.
    let e = drv
        .write(&format!("{}/x", xenbus::agent::config_dir(BE)), "1")
        .await
        .unwrap_err();
    assert_eq!(e.errno(), Some(xenstore::XsErrno::Eacces));
    let p = published_until(&c, "both bridges", |p| {
        bridge(p, "xenbr0")
            .is_some_and(|b| b.uplink.as_deref() == Some("nic0") && b.mtu == Some(9000))
            && bridge(p, "guests").is_some()
    })
    .await;
    let x = bridge(&p, "xenbr0").unwrap();
    assert_eq!(x.ports.len(), 1, "{x:?}");
    assert_eq!(x.ports[0].name, "nic0");
    assert_eq!(x.ports[0].vif, None);
    let nic = ns.link("nic0").unwrap();
    assert_eq!(nic.master.as_deref(), Some("xenbr0"));
    assert_eq!(nic.mtu, 9000);
    assert_eq!(ns.link("xenbr0").unwrap().mtu, 9000);
    assert!(ns.link("guests").is_some());

    // A vif on the bridge shows up as a port with its frontend and devid.
    let d = attach_vif(&c, DomId(5), &VifConfig::new(BE).bridge("xenbr0"))
        .await
        .unwrap();
    let bp = BackendPath::vif(BE, DomId(5), d);
    let vif = ns.netback_vif(&bp);
    ns.ip(&["link", "set", &format!("p{}x{}", bp.fe.0, bp.devid.0), "up"]);
    drv.write(&bp.state(), XenbusState::InitWait.to_wire())
        .await
        .unwrap();
    wait_hotplug(&c, &bp, "connected").await;
    let p = published_until(&c, "the vif's port, up and forwarding", |p| {
        bridge(p, "xenbr0").is_some_and(|b| {
            b.ports
                .iter()
                .any(|port| port.name == vif && port.vif == Some((5, d.0)) && port.up && port.fwd)
        })
    })
    .await;
    assert_eq!(bridge(&p, "xenbr0").unwrap().ports.len(), 2);
    // The raw node names encode the '.' (xenstore paths cannot hold it).
    let raw = c
        .directory(&format!(
            "{}/xenbr0/ports",
            xenbus::agent::published_bridges_dir(BE)
        ))
        .await
        .unwrap();
    assert!(raw.contains(&format!("vif5@2e{}", d.0)), "{raw:?}");

    // dom0 drops the guest-only bridge and changes the MTU.
    write_config(
        &c,
        BE,
        &[BridgeSetting {
            name: "xenbr0".into(),
            uplink: Some(UplinkSetting::Nic(bdf.parse().unwrap())),
            mtu: Some(4000),
        }],
    )
    .await
    .unwrap();
    let p = published_until(&c, "guests gone, mtu 4000", |p| {
        bridge(p, "guests").is_none() && bridge(p, "xenbr0").is_some_and(|b| b.mtu == Some(4000))
    })
    .await;
    assert!(ns.link("guests").is_none(), "the unused bridge was deleted");
    assert_eq!(p.error, None);

    // A setting the agent cannot satisfy is reported, the rest still holds.
    write_config(
        &c,
        BE,
        &[
            BridgeSetting {
                name: "xenbr0".into(),
                uplink: Some(UplinkSetting::Nic(bdf.parse().unwrap())),
                mtu: Some(4000),
            },
            BridgeSetting {
                name: "xenbr1".into(),
                uplink: Some(UplinkSetting::Nic("0000:09:00.0".parse().unwrap())),
                mtu: None,
            },
        ],
    )
    .await
    .unwrap();
    let p = published_until(&c, "an error for xenbr1", |p| p.error.is_some()).await;
    let err = p.error.clone().unwrap();
    assert!(
        err.contains("xenbr1") && err.contains("0000:09:00.0"),
        "{err}"
    );
    assert!(bridge(&p, "xenbr0").is_some());
    assert!(agent.alive());

    // A new agent (after SIGKILL) republishes, with its own pid, and
    // removes what no longer exists.
    agent.kill9();
    ns.ip(&["link", "del", &vif]);
    let agent2 = AgentProc::start(&ns, &sock(&xsd, BE), &["--nic", &format!("{bdf}=nic0")]);
    let p = published_until(&c, "the new agent's publication", |p| {
        p.pid == Some(agent2.child.id())
            && p.state == Some(AgentState::Ready)
            && bridge(p, "xenbr0").is_some_and(|b| b.ports.len() == 1)
    })
    .await;
    assert_eq!(bridge(&p, "xenbr0").unwrap().ports[0].name, "nic0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_line_bridge_still_works_and_is_published() {
    testutil::require_root!();
    let (xsd, c, _drv) = world(&[]).await;
    let ns = Netns::new();
    ns.ip(&[
        "link", "add", "eth7", "type", "veth", "peer", "name", "eth7p",
    ]);
    ns.ip(&["addr", "add", "192.0.2.7/24", "dev", "eth7"]);
    let mut agent = AgentProc::start(
        &ns,
        &sock(&xsd, BE),
        &["--bridge", "lanbr", "--uplink", "eth7"],
    );
    let p = published_until(&c, "lanbr", |p| {
        p.state == Some(AgentState::Ready) && bridge(p, "lanbr").is_some()
    })
    .await;
    assert_eq!(bridge(&p, "lanbr").unwrap().uplink.as_deref(), Some("eth7"));
    assert_eq!(ns.link("eth7").unwrap().master.as_deref(), Some("lanbr"));
    // The address moved to the bridge, as network-bridge did.
    assert!(
        ns.ip(&["-o", "addr", "show", "dev", "lanbr"])
            .contains("192.0.2.7/24")
    );
    assert!(agent.alive());
    // On SIGTERM it says so.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(agent.child.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    published_until(&c, "stopping", |p| p.state == Some(AgentState::Stopping)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_command_line_uplink_stops_the_agent_with_a_clear_error() {
    testutil::require_root!();
    let (xsd, _c, _drv) = world(&[]).await;
    let ns = Netns::new();
    let mut agent = AgentProc::start(&ns, &sock(&xsd, BE), &["--uplink", "nosuch0"]);
    let status = tokio::task::spawn_blocking(move || {
        let st = agent.child.wait().unwrap();
        (st, agent.log_text())
    })
    .await
    .unwrap();
    assert!(!status.0.success());
    assert!(
        status.1.contains("nosuch0") && status.1.contains("xenbr0"),
        "{}",
        status.1
    );
}
