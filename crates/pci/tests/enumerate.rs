//! Enumeration, checks and boot parameters on the fixture; enumeration on
//! this machine's real sysfs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use pci::checks::{CheckInput, Status, run_checks};
use pci::fixture::{Fixture, FixtureDevice};
use pci::{Bdf, InfoSources, NetSnapshot, Sysfs};

fn bdf(s: &str) -> Bdf {
    s.parse().unwrap()
}

fn two_port_nic() -> Fixture {
    let f = Fixture::new().unwrap();
    f.add_pciback().unwrap();
    f.add_iommu().unwrap();
    for func in 0..2 {
        f.add_device(
            &FixtureDevice::new(bdf(&format!("0000:03:00.{func}")), 0x8086, 0x10c9, 0x020000)
                .subsystem(0x8086, 0xa03c)
                .driver("igb")
                .iommu_group(7)
                .reset_method("flr bus")
                .flr(true)
                .net(&format!("eth{func}"), "up"),
        )
        .unwrap();
    }
    f.add_device(&FixtureDevice::new(bdf("0000:00:1c.0"), 0x8086, 0x1c10, 0x060400).iommu_group(7))
        .unwrap();
    f.add_device(
        &FixtureDevice::new(bdf("0000:04:00.0"), 0x10ec, 0x8168, 0x020000)
            .driver("r8169")
            .iommu_group(8),
    )
    .unwrap();
    f.add_device(&FixtureDevice::new(bdf("0000:04:00.1"), 0x10ec, 0x5555, 0x0c0330).iommu_group(8))
        .unwrap();
    f
}

#[test]
fn lists_devices_with_names_drivers_groups_and_interfaces() {
    let f = two_port_nic();
    let src = InfoSources {
        net: NetSnapshot::empty().with_iface("eth0", true, vec!["192.0.2.1".parse().unwrap()]),
        ..InfoSources::default()
    };
    let list = f.sysfs().list(&src).unwrap();
    let bdfs: Vec<String> = list.iter().map(|d| d.bdf.to_string()).collect();
    assert_eq!(
        bdfs,
        [
            "0000:00:1c.0",
            "0000:03:00.0",
            "0000:03:00.1",
            "0000:04:00.0",
            "0000:04:00.1"
        ]
    );
    let d = &list[1];
    assert_eq!(d.vendor_name.as_deref(), Some("Intel Corporation"));
    assert_eq!(
        d.device_name.as_deref(),
        Some("82576 Gigabit Network Connection")
    );
    assert_eq!(d.class_name.as_deref(), Some("Ethernet controller"));
    assert_eq!(d.driver.as_deref(), Some("igb"));
    assert_eq!(d.iommu_group, Some(7));
    assert_eq!(d.iommu_group_peers, [bdf("00:1c.0"), bdf("03:00.1")]);
    assert_eq!(d.reset_methods, ["flr", "bus"]);
    assert_eq!(d.flr, Some(true));
    assert_eq!(d.siblings, [bdf("03:00.1")]);
    assert_eq!(d.net[0].name, "eth0");
    assert_eq!(d.net[0].operstate.as_deref(), Some("up"));
    assert!(d.net[0].up && d.net[0].addresses.len() == 1);
    assert!(d.is_network());
    assert!(list[0].is_bridge());
}

#[test]
fn doctor_checks_judge_reset_groups_and_siblings() {
    let f = two_port_nic();
    let sysfs = f.sysfs();
    let devs = [bdf("03:00.0")];
    let checks = run_checks(&sysfs, &CheckInput::new(&devs, None, None)).unwrap();
    let get = |n: &str| {
        checks
            .iter()
            .find(|c| c.name == n)
            .unwrap_or_else(|| panic!("{n} in {checks:?}"))
    };
    assert_eq!(get("iommu").status, Status::Pass);
    assert_eq!(get("xen-pciback").status, Status::Pass);
    assert_eq!(get("reset 0000:03:00.0").status, Status::Pass);
    let g = get("iommu-group 0000:03:00.0");
    assert_eq!(g.status, Status::Warn, "{g:?}");
    assert!(
        g.detail.contains("0000:03:00.1") && !g.detail.contains("00:1c.0"),
        "bridge ignored: {g:?}"
    );
    assert!(g.fix.is_some());
    assert_eq!(get("multifunction 0000:03:00.0").status, Status::Warn);

    // both functions together: no warnings
    let devs = [bdf("03:00.0"), bdf("03:00.1")];
    let checks = run_checks(&sysfs, &CheckInput::new(&devs, None, None)).unwrap();
    assert!(
        checks
            .iter()
            .filter(|c| c.name.contains("03:00."))
            .all(|c| c.status == Status::Pass),
        "{checks:?}"
    );

    // the Realtek has no reset at all, and shares its group with a USB controller
    let devs = [bdf("04:00.0")];
    let checks = run_checks(&sysfs, &CheckInput::new(&devs, None, None)).unwrap();
    let r = checks
        .iter()
        .find(|c| c.name == "reset 0000:04:00.0")
        .unwrap();
    assert_eq!(r.status, Status::Fail);
    assert!(r.fix.as_deref().unwrap().ends_with('.'));
}

#[test]
fn doctor_without_iommu_or_pciback_fails_with_fixes() {
    let f = Fixture::new().unwrap();
    f.add_device(
        &FixtureDevice::new(bdf("0000:03:00.0"), 0x8086, 0x10c9, 0x020000).reset_method("bus"),
    )
    .unwrap();
    let checks = run_checks(&f.sysfs(), &CheckInput::new(&[], None, None)).unwrap();
    assert_eq!(checks[0].name, "iommu");
    assert_eq!(checks[0].status, Status::Fail);
    assert!(checks[0].fix.as_deref().unwrap().contains("iommu=1"));
    assert_eq!(checks[1].status, Status::Fail);
    let reset = checks
        .iter()
        .find(|c| c.name == "reset 0000:03:00.0")
        .unwrap();
    assert_eq!(reset.status, Status::Warn);
    let g = checks
        .iter()
        .find(|c| c.name == "iommu-group 0000:03:00.0")
        .unwrap();
    assert_eq!(g.status, Status::Skip);
    // xl info overrides sysfs
    let checks = run_checks(
        &f.sysfs(),
        &CheckInput::new(
            &[],
            Some("virt_caps : pv hvm hvm_directio pv_directio\n"),
            None,
        ),
    )
    .unwrap();
    assert_eq!(checks[0].status, Status::Pass);
}

#[test]
fn detects_builtin_or_module_pciback() {
    let f = Fixture::new().unwrap();
    let mods = tempfile::tempdir().unwrap();
    let d = pci::bootparams::detect(&f.sysfs(), Some(mods.path()));
    assert_eq!(d.kind, None);
    std::fs::write(
        mods.path().join("modules.dep"),
        "kernel/drivers/xen/xen-pciback/xen-pciback.ko.zst: \n",
    )
    .unwrap();
    let d = pci::bootparams::detect(&f.sysfs(), Some(mods.path()));
    assert_eq!(d.kind, Some(pci::bootparams::PcibackKind::Module), "{d:?}");
    f.add_pciback().unwrap();
    let d = pci::bootparams::detect(&f.sysfs(), Some(mods.path()));
    assert!(d.evidence.contains("initstate"), "{d:?}");
    std::fs::write(
        mods.path().join("modules.builtin"),
        "kernel/drivers/xen/xen-pciback/xen-pciback.ko\n",
    )
    .unwrap();
    let d = pci::bootparams::detect(&f.sysfs(), Some(mods.path()));
    assert_eq!(d.kind, Some(pci::bootparams::PcibackKind::Builtin));
    assert!(d.evidence.contains("modules.builtin"));
}

#[test]
fn real_sysfs_enumerates_read_only() {
    let sysfs = Sysfs::default();
    let list = sysfs
        .list(&InfoSources::load(
            pci::running_modules_dir().as_deref(),
            "/proc".as_ref(),
        ))
        .unwrap();
    let dir_count = std::fs::read_dir("/sys/bus/pci/devices")
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(list.len(), dir_count);
    for d in &list {
        assert!(d.vendor_id != 0 && d.vendor_id != 0xffff, "{d:?}");
    }
}
