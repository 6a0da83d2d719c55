//! xenbus against the real `drvdom-xenstored`: layout, permissions,
//! transactions, watches.

// Helpers outside #[test] fns unwrap too: failing loudly is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::Xsd;
use tokio::time::Instant;
use xenbus::{
    BackendPath, DetachOptions, DevId, FrontendPath, MacAddr, VifConfig, XenbusState, attach_vif,
    detach_vif, keys, list_vifs, wait_for_state,
};
use xenstore::{AsyncClient, DomId, XsErrno};

const BE: DomId = DomId(1);
const FE: DomId = DomId(5);
const OTHER: DomId = DomId(6);

async fn setup() -> (Xsd, AsyncClient) {
    let xsd = Xsd::start();
    let c = xsd.dom0().await;
    xsd.create_domain(&c, BE, "drv", true).await;
    xsd.create_domain(&c, FE, "guest1", false).await;
    xsd.create_domain(&c, OTHER, "guest2", false).await;
    (xsd, c)
}

async fn read(c: &AsyncClient, p: &str) -> String {
    c.read_string(p)
        .await
        .unwrap_or_else(|e| panic!("read {p}: {e}"))
}

async fn perms(c: &AsyncClient, p: &str) -> String {
    c.get_perms(p).await.unwrap().to_string()
}

#[tokio::test]
async fn attach_writes_libxl_layout_and_permissions() {
    let (_xsd, c) = setup().await;
    let mac: MacAddr = "00:16:3e:01:02:03".parse().unwrap();
    let devid = attach_vif(&c, FE, &VifConfig::new(BE).mac(mac))
        .await
        .unwrap();
    assert_eq!(devid, DevId(0));
    let fp = FrontendPath::vif(FE, devid);
    let bp = BackendPath::vif(BE, FE, devid);
    let lp = bp.libxl();

    // Backend keys and defaults (DEVICES.md §3, §4.1).
    for (k, v) in [
        ("frontend", "/local/domain/5/device/vif/0"),
        ("frontend-id", "5"),
        ("online", "1"),
        ("state", "1"),
        ("script", "/etc/xen/scripts/vif-bridge"),
        ("mac", "00:16:3e:01:02:03"),
        ("mtu", "1500"),
        ("bridge", "xenbr0"),
        ("handle", "0"),
        ("type", "vif"),
        ("hotplug-status", ""),
    ] {
        assert_eq!(read(&c, &bp.key(k)).await, v, "backend {k}");
        // The /libxl copy has every backend key too.
        assert_eq!(read(&c, &lp.key(k)).await, v, "libxl {k}");
    }
    assert!(!c.exists(&bp.key("vifname")).await.unwrap());
    assert!(!c.exists(&bp.key("ip")).await.unwrap());
    for (k, v) in [
        ("backend", "/local/domain/1/backend/vif/5/0"),
        ("backend-id", "1"),
        ("state", "1"),
        ("handle", "0"),
        ("mac", "00:16:3e:01:02:03"),
        // The backend is a driver domain, not dom0: untrusted by default.
        ("trusted", "0"),
        ("mtu", "1500"),
    ] {
        assert_eq!(read(&c, &fp.key(k)).await, v, "frontend {k}");
    }
    assert_eq!(read(&c, &lp.key("backend")).await, bp.path());

    // Permissions (owner first).
    assert_eq!(perms(&c, &fp.path()).await, "n5 r1");
    assert_eq!(perms(&c, &fp.state()).await, "n5 r1");
    assert_eq!(perms(&c, &fp.key("mac")).await, "n5 r1");
    assert_eq!(perms(&c, &fp.key("mtu")).await, "n1 r5");
    assert_eq!(perms(&c, &bp.path()).await, "n1 r5");
    assert_eq!(perms(&c, &bp.key("script")).await, "n1 r5");
    assert_eq!(perms(&c, &lp.path()).await, "n0");

    // Next free devid.
    let d1 = attach_vif(&c, FE, &VifConfig::new(BE)).await.unwrap();
    assert_eq!(d1, DevId(1));
    let random: MacAddr = c
        .read_string(&BackendPath::vif(BE, FE, d1).key("mac"))
        .await
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(&random.0[..3], &xenbus::XEN_OUI);
    assert_eq!(random.0[3] & 0x80, 0);
}

#[tokio::test]
async fn optional_keys_are_written_when_configured() {
    let (_xsd, c) = setup().await;
    let mut cfg = VifConfig::new(BE)
        .devid(DevId(7))
        .bridge("br-lab")
        .mtu(9000)
        .vifname("web0")
        .ip("192.0.2.10 192.0.2.11")
        .script("/etc/xen/scripts/vif-route")
        .gatewaydev("eth0")
        .l2_hygiene(false)
        .trusted(false);
    cfg.rate = Some(xenbus::VifRate {
        bytes_per_interval: 1250,
        interval_usecs: 50000,
    });
    assert_eq!(attach_vif(&c, FE, &cfg).await.unwrap(), DevId(7));
    let bp = BackendPath::vif(BE, FE, DevId(7));
    for (k, v) in [
        ("bridge", "br-lab"),
        ("mtu", "9000"),
        ("vifname", "web0"),
        ("ip", "192.0.2.10 192.0.2.11"),
        ("script", "/etc/xen/scripts/vif-route"),
        ("gatewaydev", "eth0"),
        ("rate", "1250,50000"),
        ("drvdom-l2-hygiene", "0"),
        ("handle", "7"),
    ] {
        assert_eq!(read(&c, &bp.key(k)).await, v, "{k}");
    }
    assert_eq!(read(&c, &bp.frontend().key("trusted")).await, "0");
    assert_eq!(read(&c, &bp.frontend().key("mtu")).await, "9000");
    // Invalid config is refused before anything is written.
    let bad = VifConfig::new(BE).bridge("bad bridge name");
    assert!(attach_vif(&c, FE, &bad).await.is_err());
    let bad = VifConfig::new(BE).mtu(10);
    assert!(attach_vif(&c, FE, &bad).await.is_err());
    assert_eq!(list_vifs(&c, FE).await.unwrap().len(), 1);
}

#[tokio::test]
async fn frontend_trusts_only_dom0_backends_unless_overridden() {
    let (_xsd, c) = setup().await;
    let trusted = |d: DevId| {
        let c = c.clone();
        async move { read(&c, &FrontendPath::vif(FE, d).key("trusted")).await }
    };
    let d = attach_vif(&c, FE, &VifConfig::new(DomId::DOM0))
        .await
        .unwrap();
    assert_eq!(trusted(d).await, "1", "dom0 backend");
    let d = attach_vif(&c, FE, &VifConfig::new(BE)).await.unwrap();
    assert_eq!(trusted(d).await, "0", "driver-domain backend");
    let d = attach_vif(&c, FE, &VifConfig::new(BE).trusted(true))
        .await
        .unwrap();
    assert_eq!(trusted(d).await, "1", "explicit override");
    // No hygiene switch unless asked for: the agent's default (on) applies.
    let bp = BackendPath::vif(BE, FE, d);
    assert!(!c.exists(&bp.key("drvdom-l2-hygiene")).await.unwrap());
}

#[tokio::test]
async fn attach_removes_stale_nodes_and_refuses_unknown_domains() {
    let (_xsd, c) = setup().await;
    let fp = FrontendPath::vif(FE, DevId(3));
    let bp = BackendPath::vif(BE, FE, DevId(3));
    c.write(&fp.key("stale-junk"), "x").await.unwrap();
    c.write(&bp.key("hotplug-status"), "connected")
        .await
        .unwrap();
    c.write(&bp.key("old"), "x").await.unwrap();
    attach_vif(&c, FE, &VifConfig::new(BE).devid(DevId(3)))
        .await
        .unwrap();
    assert!(!c.exists(&fp.key("stale-junk")).await.unwrap());
    assert!(!c.exists(&bp.key("old")).await.unwrap());
    assert_eq!(read(&c, &bp.key("hotplug-status")).await, "");

    let err = attach_vif(&c, DomId(42), &VifConfig::new(BE))
        .await
        .unwrap_err();
    assert!(
        matches!(err, xenbus::Error::NoSuchDomain(DomId(42))),
        "{err}"
    );
    assert!(!c.exists("/local/domain/42").await.unwrap());
    let err = attach_vif(&c, FE, &VifConfig::new(DomId(43)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, xenbus::Error::NoSuchDomain(DomId(43))),
        "{err}"
    );
}

#[tokio::test]
async fn attaching_the_same_device_again_keeps_it_a_different_one_replaces_it() {
    let (_xsd, c) = setup().await;
    let mac: MacAddr = "00:16:3e:00:00:21".parse().unwrap();
    let cfg = VifConfig::new(BE).devid(DevId(2)).mac(mac).bridge("br0");
    attach_vif(&c, FE, &cfg).await.unwrap();
    let bp = BackendPath::vif(BE, FE, DevId(2));
    // It connected (as a driver domain and a guest would write it).
    c.write(&bp.state(), "4").await.unwrap();
    c.write(&bp.key("hotplug-status"), "connected")
        .await
        .unwrap();
    // A second writer with the same device: nothing is rewritten.
    attach_vif(&c, FE, &cfg).await.unwrap();
    assert_eq!(read(&c, &bp.state()).await, "4");
    assert_eq!(read(&c, &bp.key("hotplug-status")).await, "connected");
    // A different bridge is a different device: replaced.
    let other = VifConfig::new(BE).devid(DevId(2)).mac(mac).bridge("br1");
    attach_vif(&c, FE, &other).await.unwrap();
    assert_eq!(read(&c, &bp.state()).await, "1");
    assert_eq!(read(&c, &bp.key("bridge")).await, "br1");
    // A closing one is replaced too.
    c.write(&bp.state(), "5").await.unwrap();
    attach_vif(&c, FE, &other).await.unwrap();
    assert_eq!(read(&c, &bp.state()).await, "1");
}

#[tokio::test]
async fn concurrent_attaches_get_distinct_devids() {
    let (_xsd, c) = setup().await;
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            attach_vif(&c, FE, &VifConfig::new(BE)).await
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap().unwrap().0);
    }
    ids.sort();
    assert_eq!(ids, (0..12).collect::<Vec<_>>());
    let vifs = list_vifs(&c, FE).await.unwrap();
    assert_eq!(vifs.len(), 12);
    assert!(
        vifs.iter()
            .all(|v| v.backend.map(|b| b.be) == Some(BE) && v.online)
    );
}

#[tokio::test]
async fn domains_see_only_what_libxl_grants() {
    let (xsd, c) = setup().await;
    let devid = attach_vif(&c, FE, &VifConfig::new(BE)).await.unwrap();
    let bp = BackendPath::vif(BE, FE, devid);
    let fp = bp.frontend();
    let guest = xsd.as_domain(FE).await;
    let other = xsd.as_domain(OTHER).await;
    let drv = xsd.as_domain(BE).await;

    // The guest owns its frontend, reads the backend, can't write it.
    guest.write(&fp.state(), "4").await.unwrap();
    assert_eq!(read(&guest, &bp.key("mac")).await.len(), 17);
    let e = guest
        .write(&bp.key("hotplug-status"), "connected")
        .await
        .unwrap_err();
    assert_eq!(e.errno(), Some(XsErrno::Eacces));
    let e = guest.write(&fp.key("mtu"), "9000").await.unwrap_err();
    assert_eq!(e.errno(), Some(XsErrno::Eacces));
    // Another guest sees nothing of it.
    let e = other.read(&fp.state()).await.unwrap_err();
    assert_eq!(e.errno(), Some(XsErrno::Eacces));
    let e = other.write(&bp.state(), "6").await.unwrap_err();
    assert_eq!(e.errno(), Some(XsErrno::Eacces));
    // The driver domain owns the backend and reads the frontend.
    drv.write(&bp.key("hotplug-status"), "connected")
        .await
        .unwrap();
    drv.write(&bp.state(), "2").await.unwrap();
    assert_eq!(read(&drv, &fp.state()).await, "4");
    let e = drv.write(&fp.state(), "1").await.unwrap_err();
    assert_eq!(e.errno(), Some(XsErrno::Eacces));
    // The driver domain reads its own domid relative to its home.
    assert_eq!(read(&drv, "domid").await, "1");
    // driver_domain=1 gives it its own libxl dir.
    assert_eq!(perms(&c, "/local/domain/1/libxl").await, "n1");
    assert!(!c.exists("/local/domain/5/libxl").await.unwrap());
}

#[tokio::test]
async fn wait_for_state_follows_watch_and_times_out() {
    let (xsd, c) = setup().await;
    let devid = attach_vif(&c, FE, &VifConfig::new(BE)).await.unwrap();
    let bp = BackendPath::vif(BE, FE, devid);
    let drv = xsd.as_domain(BE).await;
    let state = bp.state();
    let waiter = {
        let c = c.clone();
        let state = state.clone();
        tokio::spawn(async move {
            wait_for_state(
                &c,
                &state,
                &[XenbusState::InitWait],
                Instant::now() + Duration::from_secs(10),
            )
            .await
        })
    };
    // Junk and intermediate values don't end the wait.
    drv.write(&state, "garbage").await.unwrap();
    drv.write(&state, "3").await.unwrap();
    xenbus::write_state(&drv, &state, XenbusState::InitWait)
        .await
        .unwrap();
    let got = waiter.await.unwrap().unwrap();
    assert_eq!(got, XenbusState::InitWait);

    let started = Instant::now();
    let err = wait_for_state(
        &c,
        &state,
        &[XenbusState::Connected],
        Instant::now() + Duration::from_millis(300),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, xenbus::Error::StateTimeout { .. }), "{err}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    let err = wait_for_state(
        &c,
        "/local/domain/1/backend/vif/5/99/state",
        &[XenbusState::Closed],
        Instant::now() + Duration::from_secs(1),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, xenbus::Error::DeviceGone { .. }), "{err}");
}

/// A stand-in for netback + agent in the driver domain: on Closing, go
/// Closed; on Closed with online=0, remove the backend directory.
async fn fake_driver_domain(drv: AsyncClient, bp: BackendPath) {
    let mut w = drv.watch(&bp.path(), "fake-drv").await.unwrap();
    while w.recv().await.is_some() {
        let st = drv.read_opt(&bp.state()).await.unwrap();
        let online = drv.read_opt(&bp.key(keys::ONLINE)).await.unwrap();
        match (st.as_deref(), online.as_deref()) {
            (None, _) => return,
            (Some(b"5"), _) => drv.write(&bp.state(), "6").await.unwrap(),
            (Some(b"6"), Some(b"0")) => {
                drv.rm(&bp.path()).await.unwrap();
                return;
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn detach_closes_waits_and_removes_all_three_dirs() {
    let (xsd, c) = setup().await;
    let devid = attach_vif(&c, FE, &VifConfig::new(BE)).await.unwrap();
    let keep = attach_vif(&c, FE, &VifConfig::new(BE)).await.unwrap();
    let bp = BackendPath::vif(BE, FE, devid);
    let drv = xsd.as_domain(BE).await;
    drv.write(&bp.state(), "4").await.unwrap();
    let fake = tokio::spawn(fake_driver_domain(drv, bp));
    let out = detach_vif(&c, FE, devid, &DetachOptions::default())
        .await
        .unwrap();
    fake.await.unwrap();
    assert_eq!(out.backend, bp);
    assert!(out.reached_closed);
    assert!(out.removed_by_backend);
    for p in [bp.path(), bp.frontend().path(), bp.libxl().path()] {
        assert!(!c.exists(&p).await.unwrap(), "{p} left behind");
    }
    let left = list_vifs(&c, FE).await.unwrap();
    assert_eq!(left.iter().map(|v| v.devid).collect::<Vec<_>>(), vec![keep]);
    // Unknown device.
    let err = detach_vif(&c, FE, DevId(9), &DetachOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, xenbus::Error::NoSuchDevice { .. }), "{err}");
}

#[tokio::test]
async fn detach_without_backend_driver_times_out_then_forces() {
    let (_xsd, c) = setup().await;
    let devid = attach_vif(&c, FE, &VifConfig::new(BE)).await.unwrap();
    let bp = BackendPath::vif(BE, FE, devid);
    let mut opts = DetachOptions::default();
    opts.closed_timeout = Duration::from_millis(200);
    opts.backend_removal_timeout = Some(Duration::from_millis(200));
    opts.force = false;
    let err = detach_vif(&c, FE, devid, &opts).await.unwrap_err();
    assert!(matches!(err, xenbus::Error::StateTimeout { .. }), "{err}");
    // The removal request stays visible to the backend.
    assert_eq!(read(&c, &bp.key("online")).await, "0");
    assert_eq!(read(&c, &bp.state()).await, "5");
    opts.force = true;
    let out = detach_vif(&c, FE, devid, &opts).await.unwrap();
    assert!(!out.reached_closed && !out.removed_by_backend);
    assert!(!c.exists(&bp.path()).await.unwrap());
    assert!(!c.exists(&bp.frontend().path()).await.unwrap());
}

#[tokio::test]
async fn detach_ignores_a_forged_frontend_backend_key() {
    let (xsd, c) = setup().await;
    let devid = attach_vif(&c, FE, &VifConfig::new(BE)).await.unwrap();
    // Another guest's device that a hostile guest would like us to remove.
    let victim = attach_vif(&c, OTHER, &VifConfig::new(BE)).await.unwrap();
    let victim_bp = BackendPath::vif(BE, OTHER, victim);
    // Lose the trusted copy, then forge the guest-owned key.
    c.rm(&BackendPath::vif(BE, FE, devid).libxl().path())
        .await
        .unwrap();
    let guest = xsd.as_domain(FE).await;
    guest
        .write(
            &FrontendPath::vif(FE, devid).key("backend"),
            victim_bp.path(),
        )
        .await
        .unwrap();
    let err = detach_vif(&c, FE, devid, &DetachOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, xenbus::Error::NoSuchDevice { .. }), "{err}");
    assert_eq!(read(&c, &victim_bp.key("online")).await, "1");
    assert_eq!(read(&c, &victim_bp.state()).await, "1");
}

#[tokio::test]
async fn make_domain_writes_xl_layout() {
    let (_xsd, c) = setup().await;
    let d = "/local/domain/5";
    assert_eq!(perms(&c, d).await, "n0 r5");
    assert_eq!(read(&c, &format!("{d}/name")).await, "guest1");
    assert_eq!(read(&c, &format!("{d}/domid")).await, "5");
    assert_eq!(perms(&c, &format!("{d}/device")).await, "n0 r5");
    assert_eq!(perms(&c, &format!("{d}/control/shutdown")).await, "n5");
    assert_eq!(perms(&c, &format!("{d}/data")).await, "n5");
    assert_eq!(
        perms(&c, &format!("{d}/device/suspend/event-channel")).await,
        "n5"
    );
    let vm = read(&c, &format!("{d}/vm")).await;
    assert_eq!(read(&c, &format!("{vm}/name")).await, "guest1");
    assert_eq!(perms(&c, &vm).await, "n0 r5");
    assert_eq!(perms(&c, "/libxl/5").await, "n0");
    assert_eq!(read(&c, "/libxl/5/type").await, "pv");
    assert_eq!(
        read(
            &c,
            &format!("{d}/control/platform-feature-xs_reset_watches")
        )
        .await,
        "1"
    );
    xenbus::destroy_domain(&c, FE).await.unwrap();
    assert!(!c.exists(d).await.unwrap());
    assert!(!c.exists(&vm).await.unwrap());
    assert!(!c.exists("/libxl/5").await.unwrap());
}

#[tokio::test]
async fn attach_pci_writes_section_7_layout() {
    let (_xsd, c) = setup().await;
    let f0 = xenbus::PciFunction::new("0000:03:00.0".parse().unwrap());
    let mut f1 = xenbus::PciFunction::new("0000:03:00.1".parse().unwrap());
    f1.permissive = true;
    xenbus::attach_pci(&c, BE, "drv", &[f0, f1]).await.unwrap();
    let b = "/local/domain/0/backend/pci/1/0";
    for (k, v) in [
        ("frontend", "/local/domain/1/device/pci/0"),
        ("frontend-id", "1"),
        ("online", "1"),
        ("state", "1"),
        ("domain", "drv"),
        ("num_devs", "2"),
        ("key-0", "0000:03:00.0"),
        ("dev-1", "0000:03:00.1"),
        (
            "opts-1",
            "msitranslate=0,power_mgmt=0,permissive=1,rdm_policy=strict",
        ),
        ("state-0", "1"),
    ] {
        assert_eq!(read(&c, &format!("{b}/{k}")).await, v, "{k}");
    }
    assert_eq!(perms(&c, b).await, "n0 r1");
    let f = "/local/domain/1/device/pci/0";
    assert_eq!(perms(&c, f).await, "n1 r0");
    assert_eq!(read(&c, &format!("{f}/backend")).await, b);
    assert_eq!(read(&c, &format!("{f}/backend-id")).await, "0");
    assert_eq!(read(&c, "/libxl/1/device/pci/0/num_devs").await, "2");
}

#[tokio::test]
async fn watcher_sees_a_complete_device_on_its_first_event() {
    // The attach is one transaction: the first event a watcher of the
    // backend directory gets for the device comes after the commit, so the
    // last key written (`hotplug-status`) is already there.
    let (xsd, c) = setup().await;
    let drv = xsd.as_domain(BE).await;
    let root = xenbus::paths::backend_root(BE);
    let mut w = drv.watch(&root, "atomic").await.unwrap();
    let first = w.recv().await.unwrap().unwrap();
    assert_eq!(first.path, root);
    let devid = attach_vif(&c, FE, &VifConfig::new(BE)).await.unwrap();
    let bp = BackendPath::vif(BE, FE, devid);
    let ev = w.recv().await.unwrap().unwrap();
    assert!(ev.path.starts_with(&bp.path()), "{}", ev.path);
    assert_eq!(
        drv.read_string(&bp.key("hotplug-status")).await.unwrap(),
        ""
    );
    assert_eq!(drv.read_string(&bp.key("type")).await.unwrap(), "vif");
}
