//! pciback assign/release against the sysfs fixture with kernel emulation.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use pci::checks::IommuStatus;
use pci::fixture::{Fixture, FixtureDevice};
use pci::{AssignOptions, Bdf, DriverRecord, Error, NetSnapshot, Pciback, StateFile};

const EBUSY: i32 = 16;
const ENODEV: i32 = 19;

fn bdf(s: &str) -> Bdf {
    s.parse().unwrap()
}

fn iommu_on() -> IommuStatus {
    IommuStatus::Enabled {
        source: "test".to_string(),
    }
}

/// A host with pciback, an IOMMU and one Intel NIC on igb with eth9.
fn host() -> (Fixture, tempfile::TempDir) {
    let f = Fixture::new().unwrap();
    f.add_pciback().unwrap();
    f.add_iommu().unwrap();
    f.add_device(
        &FixtureDevice::new(bdf("0000:03:00.0"), 0x8086, 0x10c9, 0x020000)
            .driver("igb")
            .iommu_group(7)
            .reset_method("flr bus")
            .flr(true)
            .net("eth9", "up"),
    )
    .unwrap();
    (f, tempfile::tempdir().unwrap())
}

#[test]
fn assign_happy_path_records_driver_and_binds_pciback() {
    let (f, state) = host();
    let sysfs = f.sysfs();
    let rec = StateFile::in_dir(state.path());
    let pb = Pciback::new(&sysfs, &rec);
    let b = bdf("03:00.0");
    let out = pb
        .assign(
            b,
            AssignOptions::new(true, false),
            &NetSnapshot::empty(),
            &iommu_on(),
        )
        .unwrap();
    assert_eq!(out.previous_driver.as_deref(), Some("igb"));
    assert!(!out.already_assigned);
    assert!(out.permissive);
    assert_eq!(f.driver_of(b).as_deref(), Some("pciback"));
    assert_eq!(sysfs.pciback_slots().unwrap(), [b]);
    assert_eq!(sysfs.pciback_permissive().unwrap(), [b]);
    assert_eq!(rec.get(b).unwrap().as_deref(), Some("igb"));
    assert_eq!(pb.assignable().unwrap(), [b]);
}

#[test]
fn assign_refuses_device_dom0_uses_unless_forced() {
    let (f, state) = host();
    let sysfs = f.sysfs();
    let rec = StateFile::in_dir(state.path());
    let pb = Pciback::new(&sysfs, &rec);
    let b = bdf("03:00.0");
    let net = NetSnapshot::empty().with_iface("eth9", true, vec!["192.0.2.7".parse().unwrap()]);
    let err = pb
        .assign(b, AssignOptions::default(), &net, &iommu_on())
        .unwrap_err();
    assert!(matches!(err, Error::InUse { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("0000:03:00.0") && msg.contains("eth9") && msg.contains("192.0.2.7"),
        "{msg}"
    );
    // nothing changed
    assert_eq!(f.driver_of(b).as_deref(), Some("igb"));
    assert_eq!(rec.get(b).unwrap(), None);

    let route = NetSnapshot::empty().with_default_route("eth9");
    let err = pb
        .assign(b, AssignOptions::default(), &route, &iommu_on())
        .unwrap_err();
    assert!(err.to_string().contains("default route"), "{err}");

    let out = pb
        .assign(b, AssignOptions::new(false, true), &net, &iommu_on())
        .unwrap();
    assert_eq!(f.driver_of(b).as_deref(), Some("pciback"));
    assert!(out.warnings[0].contains("--force"), "{:?}", out.warnings);
}

#[test]
fn assign_twice_is_idempotent() {
    let (f, state) = host();
    let sysfs = f.sysfs();
    let rec = StateFile::in_dir(state.path());
    let pb = Pciback::new(&sysfs, &rec);
    let b = bdf("03:00.0");
    let net = NetSnapshot::empty();
    pb.assign(b, AssignOptions::default(), &net, &iommu_on())
        .unwrap();
    let again = pb
        .assign(b, AssignOptions::new(true, false), &net, &iommu_on())
        .unwrap();
    assert!(again.already_assigned);
    assert!(again.permissive, "permissive added on re-run");
    assert_eq!(again.previous_driver.as_deref(), Some("igb"), "record kept");
    assert_eq!(f.driver_of(b).as_deref(), Some("pciback"));
    assert_eq!(sysfs.pciback_slots().unwrap(), [b], "slot listed once");
}

#[test]
fn crash_between_unbind_and_bind_then_rerun_completes_and_release_restores() {
    let (f, state) = host();
    let sysfs = f.sysfs();
    let rec = StateFile::in_dir(state.path());
    let b = bdf("03:00.0");
    // What an interrupted run leaves: record written, device unbound,
    // new_slot done, bind never happened.
    rec.set(b, "igb").unwrap();
    f.kernel_write("bus/pci/drivers/igb/unbind", "0000:03:00.0")
        .unwrap();
    f.kernel_write("bus/pci/drivers/pciback/new_slot", "0000:03:00.0")
        .unwrap();
    assert_eq!(f.driver_of(b), None);

    let pb = Pciback::new(&sysfs, &rec);
    let out = pb
        .assign(
            b,
            AssignOptions::default(),
            &NetSnapshot::empty(),
            &iommu_on(),
        )
        .unwrap();
    assert_eq!(
        out.previous_driver.as_deref(),
        Some("igb"),
        "taken from the record"
    );
    assert_eq!(f.driver_of(b).as_deref(), Some("pciback"));
    assert_eq!(sysfs.pciback_slots().unwrap(), [b]);

    let rel = pb.release(b, None).unwrap();
    assert_eq!(rel.driver, "igb");
    assert_eq!(f.driver_of(b).as_deref(), Some("igb"));
    assert_eq!(rec.get(b).unwrap(), None);
}

#[test]
fn crash_during_release_then_rerun_finishes() {
    let (f, state) = host();
    let sysfs = f.sysfs();
    let rec = StateFile::in_dir(state.path());
    let pb = Pciback::new(&sysfs, &rec);
    let b = bdf("03:00.0");
    pb.assign(
        b,
        AssignOptions::default(),
        &NetSnapshot::empty(),
        &iommu_on(),
    )
    .unwrap();
    // interrupted release: unbound from pciback only
    f.kernel_write("bus/pci/drivers/pciback/unbind", "0000:03:00.0")
        .unwrap();
    let rel = pb.release(b, None).unwrap();
    assert!(!rel.already_released);
    assert_eq!(f.driver_of(b).as_deref(), Some("igb"));
    assert!(sysfs.pciback_slots().unwrap().is_empty());
    // and once more: nothing to do
    let again = pb.release(b, None).unwrap();
    assert!(again.already_released);
    assert_eq!(again.driver, "igb");
}

#[test]
fn release_restores_original_driver_or_the_given_one() {
    let (f, state) = host();
    f.add_driver("e1000e").unwrap();
    let sysfs = f.sysfs();
    let rec = StateFile::in_dir(state.path());
    let pb = Pciback::new(&sysfs, &rec);
    let b = bdf("03:00.0");
    let net = NetSnapshot::empty();
    pb.assign(b, AssignOptions::new(true, false), &net, &iommu_on())
        .unwrap();
    let rel = pb.release(b, None).unwrap();
    assert_eq!(rel.driver, "igb");
    assert_eq!(f.driver_of(b).as_deref(), Some("igb"));
    assert!(
        sysfs.pciback_slots().unwrap().is_empty(),
        "remove_slot done"
    );
    assert!(sysfs.pciback_permissive().unwrap().is_empty());

    pb.assign(b, AssignOptions::default(), &net, &iommu_on())
        .unwrap();
    let rel = pb.release(b, Some("e1000e")).unwrap();
    assert_eq!(rel.driver, "e1000e");
    assert_eq!(f.driver_of(b).as_deref(), Some("e1000e"));
}

#[test]
fn release_without_record_asks_for_driver() {
    let f = Fixture::new().unwrap();
    f.add_device(
        &FixtureDevice::new(bdf("0000:05:00.0"), 0x8086, 0x10c9, 0x020000).driver("pciback"),
    )
    .unwrap();
    let state = tempfile::tempdir().unwrap();
    let sysfs = f.sysfs();
    let rec = StateFile::in_dir(state.path());
    let pb = Pciback::new(&sysfs, &rec);
    let err = pb.release(bdf("05:00.0"), None).unwrap_err();
    assert!(matches!(err, Error::NoOriginalDriver { .. }), "{err}");
    assert!(err.to_string().contains("--driver"));
    let err = pb.release(bdf("05:00.0"), Some("nosuch")).unwrap_err();
    assert!(
        err.to_string().contains("nosuch") && err.to_string().contains("does not exist"),
        "{err}"
    );
    assert_eq!(
        f.driver_of(bdf("05:00.0")).as_deref(),
        Some("pciback"),
        "untouched"
    );
}

#[test]
fn missing_device_is_named() {
    let (f, state) = host();
    let sysfs = f.sysfs();
    let rec = StateFile::in_dir(state.path());
    let pb = Pciback::new(&sysfs, &rec);
    let err = pb
        .assign(
            bdf("0000:09:00.0"),
            AssignOptions::default(),
            &NetSnapshot::empty(),
            &iommu_on(),
        )
        .unwrap_err();
    assert!(matches!(err, Error::DeviceNotFound { .. }));
    assert!(
        err.to_string().contains("0000:09:00.0") && err.to_string().contains("bus/pci/devices"),
        "{err}"
    );
    let err = pb.release(bdf("0000:09:00.0"), None).unwrap_err();
    assert!(matches!(err, Error::DeviceNotFound { .. }));
}

#[test]
fn device_unplugged_between_runs_is_reported() {
    let (f, state) = host();
    let sysfs = f.sysfs();
    let rec = StateFile::in_dir(state.path());
    let pb = Pciback::new(&sysfs, &rec);
    let b = bdf("03:00.0");
    pb.assign(
        b,
        AssignOptions::default(),
        &NetSnapshot::empty(),
        &iommu_on(),
    )
    .unwrap();
    f.remove_device(b).unwrap();
    let err = pb.release(b, None).unwrap_err();
    assert!(matches!(err, Error::DeviceNotFound { .. }), "{err}");
}

#[test]
fn iommu_absent_refuses_unless_forced() {
    let f = Fixture::new().unwrap();
    f.add_pciback().unwrap();
    f.add_device(&FixtureDevice::new(bdf("0000:03:00.0"), 0x8086, 0x10c9, 0x020000).driver("igb"))
        .unwrap();
    let state = tempfile::tempdir().unwrap();
    let sysfs = f.sysfs();
    let iommu = pci::checks::iommu_status(&sysfs, None);
    assert!(matches!(iommu, IommuStatus::Absent { .. }), "{iommu:?}");
    let rec = StateFile::in_dir(state.path());
    let pb = Pciback::new(&sysfs, &rec);
    let b = bdf("03:00.0");
    let err = pb
        .assign(b, AssignOptions::default(), &NetSnapshot::empty(), &iommu)
        .unwrap_err();
    assert!(matches!(err, Error::NoIommu { .. }), "{err}");
    assert!(err.to_string().contains("IOMMU"));
    assert_eq!(f.driver_of(b).as_deref(), Some("igb"));
    let out = pb
        .assign(
            b,
            AssignOptions::new(false, true),
            &NetSnapshot::empty(),
            &iommu,
        )
        .unwrap();
    assert!(out.warnings.iter().any(|w| w.contains("no IOMMU")));
    assert_eq!(f.driver_of(b).as_deref(), Some("pciback"));
}

#[test]
fn pciback_missing_is_explained() {
    let f = Fixture::new().unwrap();
    f.add_iommu().unwrap();
    f.add_device(&FixtureDevice::new(bdf("0000:03:00.0"), 0x8086, 0x10c9, 0x020000).driver("igb"))
        .unwrap();
    let state = tempfile::tempdir().unwrap();
    let sysfs = f.sysfs();
    let rec = StateFile::in_dir(state.path());
    let err = Pciback::new(&sysfs, &rec)
        .assign(
            bdf("03:00.0"),
            AssignOptions::default(),
            &NetSnapshot::empty(),
            &iommu_on(),
        )
        .unwrap_err();
    assert!(matches!(err, Error::PcibackMissing { .. }));
    assert!(err.to_string().contains("modprobe xen-pciback"));
}

#[test]
fn bind_failure_rolls_back_to_original_driver_with_errno_in_words() {
    let (f, state) = host();
    let sysfs = f.sysfs();
    let rec = StateFile::in_dir(state.path());
    let pb = Pciback::new(&sysfs, &rec);
    let b = bdf("03:00.0");
    f.fail_next_write("bus/pci/drivers/pciback/bind", ENODEV)
        .unwrap();
    let err = pb
        .assign(
            b,
            AssignOptions::default(),
            &NetSnapshot::empty(),
            &iommu_on(),
        )
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("0000:03:00.0"), "{msg}");
    assert!(msg.contains("bus/pci/drivers/pciback/bind"), "{msg}");
    assert!(msg.contains("ENODEV (No such device)"), "{msg}");
    assert!(msg.contains("slot list"), "{msg}");
    // rolled back
    assert_eq!(f.driver_of(b).as_deref(), Some("igb"));
    assert!(sysfs.pciback_slots().unwrap().is_empty());
    assert_eq!(rec.get(b).unwrap(), None);
}

#[test]
fn ebusy_on_bind_names_the_driver_that_holds_the_device() {
    let f = Fixture::new().unwrap();
    f.add_pciback().unwrap();
    f.add_device(&FixtureDevice::new(bdf("0000:03:00.0"), 0x8086, 0x10c9, 0x020000).driver("igb"))
        .unwrap();
    // pciback bind onto a device igb still holds: the kernel says EBUSY.
    let sysfs = f.sysfs();
    f.kernel_write("bus/pci/drivers/pciback/new_slot", "0000:03:00.0")
        .unwrap();
    let err = f
        .kernel_write("bus/pci/drivers/pciback/bind", "0000:03:00.0")
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(EBUSY));
    // Through the library, an injected EBUSY after unbind is explained too.
    let state = tempfile::tempdir().unwrap();
    let rec = StateFile::in_dir(state.path());
    f.fail_next_write("bus/pci/drivers/pciback/bind", EBUSY)
        .unwrap();
    let err = Pciback::new(&sysfs, &rec)
        .assign(
            bdf("03:00.0"),
            AssignOptions::default(),
            &NetSnapshot::empty(),
            &iommu_on(),
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("EBUSY (Device or resource busy)"),
        "{err}"
    );
    assert!(
        err.to_string().contains("device still claimed by driver"),
        "{err}"
    );
    assert_eq!(f.driver_of(bdf("03:00.0")).as_deref(), Some("igb"));
}

#[test]
fn failed_rebind_on_release_goes_back_to_pciback() {
    let (f, state) = host();
    let sysfs = f.sysfs();
    let rec = StateFile::in_dir(state.path());
    let pb = Pciback::new(&sysfs, &rec);
    let b = bdf("03:00.0");
    pb.assign(
        b,
        AssignOptions::default(),
        &NetSnapshot::empty(),
        &iommu_on(),
    )
    .unwrap();
    f.fail_next_write("bus/pci/drivers/igb/bind", ENODEV)
        .unwrap();
    let err = pb.release(b, None).unwrap_err();
    assert!(
        err.to_string()
            .contains("driver igb does not handle this device"),
        "{err}"
    );
    assert_eq!(f.driver_of(b).as_deref(), Some("pciback"), "rolled back");
    assert_eq!(
        rec.get(b).unwrap().as_deref(),
        Some("igb"),
        "record kept for a retry"
    );
    pb.release(b, None).unwrap();
    assert_eq!(f.driver_of(b).as_deref(), Some("igb"));
}

#[test]
fn kernel_emulation_follows_driver_core_rules() {
    let (f, _state) = host();
    // unbind from a driver that does not hold it
    let e = f
        .kernel_write("bus/pci/drivers/pciback/unbind", "0000:03:00.0")
        .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(ENODEV));
    f.kernel_write("bus/pci/drivers/igb/unbind", "0000:03:00.0")
        .unwrap();
    // pciback refuses devices not in its slot list
    let e = f
        .kernel_write("bus/pci/drivers/pciback/bind", "0000:03:00.0")
        .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(ENODEV));
    // permissive needs the device bound to pciback
    assert!(
        f.kernel_write("bus/pci/drivers/pciback/permissive", "0000:03:00.0")
            .is_err()
    );
    // remove_slot of an unlisted slot
    assert!(
        f.kernel_write("bus/pci/drivers/pciback/remove_slot", "0000:03:00.0")
            .is_err()
    );
    assert!(!f.path("bus/pci/devices/0000:03:00.0/driver").exists());
}
