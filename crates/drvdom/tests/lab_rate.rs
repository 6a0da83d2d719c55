//! Issue 14: the simulated netback reads a vif's `rate` as Linux netback
//! does (`xen_net_read_rate`, at connect and on every change of the key)
//! and reports the transmit credit it applies: a vif attached from dom0
//! with libxl's `rate` gets that credit; a rate Linux cannot parse leaves
//! the vif unlimited (and says why); removing the key makes it unlimited;
//! detaching it removes the report.

// Helpers outside #[test] fns unwrap and print too: failing loudly is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod lab_support;

use std::time::Duration;

use lab_support::TestLab;
use xenbus::{DetachOptions, MacAddr, VifConfig, VifRate, XenbusState};
use xenstore::{AsyncClient, DomId};

#[test]
fn netback_applies_libxl_rate_as_linux_reads_it() {
    let _bins = require_lab!();
    let lab = TestLab::new();
    lab.up_detached(1);
    let (dd, guest) = (DomId(1), DomId(2));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dom0 = rt.block_on(AsyncClient::connect(lab.socket_of(0))).unwrap();
    let mac: MacAddr = "00:16:3e:00:20:01".parse().unwrap();
    let rate = VifRate {
        bytes_per_interval: 25_000,
        interval_usecs: 20_000,
    };
    let devid = rt
        .block_on(xenbus::attach_vif(
            &dom0,
            guest,
            &VifConfig::new(dd).mac(mac).rate(rate),
        ))
        .unwrap();
    let bp = xenbus::BackendPath::vif(dd, guest, devid);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    rt.block_on(xenbus::wait_for_state(
        &dom0,
        &bp.state(),
        &[XenbusState::Connected],
        deadline,
    ))
    .unwrap();
    let node = format!(
        "{}/{}/{}/{}",
        dd.path(),
        sim::rate::CREDIT_DIR,
        guest.0,
        devid.0
    );
    let credit = || {
        rt.block_on(dom0.read_opt(&node))
            .unwrap()
            .map(|v| String::from_utf8(v).unwrap())
    };
    // libxl's value, as written (`<bytes>,<usecs>`), is the credit.
    assert_eq!(
        rt.block_on(dom0.read_string(&bp.key(xenbus::keys::RATE)))
            .unwrap(),
        "25000,20000"
    );
    lab_support::wait("the credit of the rate-limited vif", || {
        credit().as_deref() == Some("25000,20000")
    });
    // The vif attached by the lab, without `rate`: unlimited.
    let plain = format!("{}/{}/{}/0", dd.path(), sim::rate::CREDIT_DIR, guest.0);
    assert_eq!(
        rt.block_on(dom0.read_opt(&plain))
            .unwrap()
            .map(|v| String::from_utf8(v).unwrap())
            .as_deref(),
        Some("unlimited")
    );
    // A change is followed (Linux watches `rate`); junk is unlimited.
    let key = bp.key(xenbus::keys::RATE);
    rt.block_on(dom0.write(&key, "62500,50000")).unwrap();
    lab_support::wait("the new credit", || {
        credit().as_deref() == Some("62500,50000")
    });
    rt.block_on(dom0.write(&key, "10Mb/s")).unwrap();
    lab_support::wait("an invalid rate leaves the vif unlimited", || {
        credit().is_some_and(|c| c.starts_with("unlimited: invalid rate \"10Mb/s\""))
    });
    rt.block_on(dom0.rm(&key)).unwrap();
    lab_support::wait("no rate: unlimited", || {
        credit().as_deref() == Some("unlimited")
    });
    // Still serving traffic on the lab's own vif meanwhile.
    assert!(lab.ping("guest1", "198.51.100.1"));
    // Detached: the report goes with the interface.
    let out = rt
        .block_on(xenbus::detach_vif(
            &dom0,
            guest,
            devid,
            &DetachOptions::default(),
        ))
        .unwrap();
    assert!(out.reached_closed);
    lab_support::wait("the credit report removed with the vif", || {
        credit().is_none()
    });
}
