//! `drvdom pci` and `drvdom doctor` end to end: read-only against this
//! machine's sysfs (compared with `lspci`), write paths against the sysfs
//! fixture (whose kernel emulation the test build of the binary carries).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use pci::Bdf;
use pci::fixture::{Fixture, FixtureDevice};

const EBUSY: i32 = 16;

fn drvdom(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_drvdom"));
    c.args(args)
        .env_remove("DRVDOM_SYSFS_ROOT")
        .env_remove("DRVDOM_STATE_DIR");
    c
}

fn run(args: &[&str]) -> Output {
    drvdom(args).output().unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn bdf(s: &str) -> Bdf {
    s.parse().unwrap()
}

/// `lspci -D -vmm` records as Slot → (Class, Vendor, Device).
fn lspci_records(out: &str) -> BTreeMap<String, (String, String, String)> {
    out.split("\n\n")
        .filter(|r| !r.trim().is_empty())
        .map(|r| {
            let field = |k: &str| {
                r.lines()
                    .find_map(|l| l.strip_prefix(&format!("{k}:\t")))
                    .unwrap_or_default()
                    .to_string()
            };
            (
                field("Slot"),
                (field("Class"), field("Vendor"), field("Device")),
            )
        })
        .collect()
}

#[test]
fn pci_list_json_matches_lspci() {
    let lspci = testutil::require_cmd!("lspci");
    // lspci reads the same database the pci crate embeds, so a name
    // mismatch is ours, not an older /usr/share/misc/pci.ids.
    let dir = tempfile::tempdir().unwrap();
    let ids = dir.path().join("pci.ids");
    let mut f = std::fs::File::create(&ids).unwrap();
    pci::names::write_pci_ids(&mut f).unwrap();
    drop(f);
    let l = Command::new(lspci)
        .args(["-D", "-vmm", "-i"])
        .arg(&ids)
        .output()
        .unwrap();
    assert!(l.status.success(), "{l:?}");
    let want = lspci_records(&String::from_utf8_lossy(&l.stdout));
    assert!(!want.is_empty(), "lspci found no devices");

    let o = run(&["pci", "list", "--json"]);
    assert!(o.status.success(), "{o:?}");
    let got: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(got["schema"], "drvdom/pci-list/1");
    let got: Vec<serde_json::Value> = got["devices"].as_array().unwrap().clone();
    let got: BTreeMap<String, (String, String, String)> = got
        .iter()
        .map(|d| {
            let s = |k: &str| d[k].as_str().map(str::to_string);
            let class = s("class_name").unwrap_or_default();
            let vendor = s("vendor_name")
                .unwrap_or_else(|| format!("Vendor {:04x}", d["vendor_id"].as_u64().unwrap()));
            let device = s("device_name")
                .unwrap_or_else(|| format!("Device {:04x}", d["device_id"].as_u64().unwrap()));
            (s("bdf").unwrap(), (class, vendor, device))
        })
        .collect();
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "same devices"
    );
    for (slot, (class, vendor, device)) in &want {
        let g = &got[slot];
        // lspci appends " [ccss]" when only the base class is known.
        let class = class.split(" [").next().unwrap();
        assert_eq!(
            (g.0.as_str(), &g.1, &g.2),
            (class, vendor, device),
            "{slot}"
        );
    }
}

#[test]
fn pci_show_real_device_and_bad_bdf() {
    let first = std::fs::read_dir("/sys/bus/pci/devices")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .min()
        .expect("this machine has a PCI device");
    let o = run(&["pci", "show", &first, "--json"]);
    assert!(o.status.success(), "{o:?}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["bdf"], first.as_str());
    let vendor = std::fs::read_to_string(format!("/sys/bus/pci/devices/{first}/vendor")).unwrap();
    assert_eq!(
        format!("0x{:04x}", v["vendor_id"].as_u64().unwrap()),
        vendor.trim()
    );

    let o = run(&["pci", "show", "0000:03:00.8"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).1.contains("function 8 is out of range 0-7"),
        "{o:?}"
    );
}

fn host() -> (Fixture, tempfile::TempDir) {
    let f = Fixture::new().unwrap();
    f.add_pciback().unwrap();
    f.add_iommu().unwrap();
    f.add_device(
        &FixtureDevice::new(bdf("0000:03:00.0"), 0x8086, 0x10c9, 0x020000)
            .driver("igb")
            .iommu_group(3)
            .reset_method("flr bus")
            .flr(true)
            .net("enp3s0f0", "down"),
    )
    .unwrap();
    (f, tempfile::tempdir().unwrap())
}

fn with_roots<'a>(f: &'a Fixture, state: &'a Path, args: &[&'a str]) -> Vec<String> {
    let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    v.extend(["--sysfs-root".to_string(), f.root().display().to_string()]);
    v.extend(["--state-dir".to_string(), state.display().to_string()]);
    v
}

fn run_s(args: Vec<String>) -> Output {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&a)
}

#[test]
fn assign_assignable_release_round_trip() {
    let (f, state) = host();
    let o = run_s(with_roots(
        &f,
        state.path(),
        &["pci", "assign", "03:00.0", "--permissive"],
    ));
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(
        out.contains("0000:03:00.0: assigned to pciback, permissive (original driver igb"),
        "{out}"
    );
    assert_eq!(f.driver_of(bdf("03:00.0")).as_deref(), Some("pciback"));
    let saved = std::fs::read_to_string(state.path().join(pci::STATE_FILE_NAME)).unwrap();
    assert!(saved.contains("\"igb\""), "{saved}");

    // idempotent
    let o = run_s(with_roots(
        &f,
        state.path(),
        &["pci", "assign", "0000:03:00.0"],
    ));
    assert!(o.status.success());
    assert!(text(&o).0.contains("already assigned"), "{o:?}");

    let o = drvdom(&["pci", "assignable", "--json"])
        .env("DRVDOM_SYSFS_ROOT", f.root())
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["schema"], "drvdom/pci-assignable/1");
    assert_eq!(v["devices"], serde_json::json!(["0000:03:00.0"]));

    let o = drvdom(&["pci", "release", "3:0.0"])
        .env("DRVDOM_SYSFS_ROOT", f.root())
        .env("DRVDOM_STATE_DIR", state.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    assert!(
        text(&o).0.contains("0000:03:00.0: released to igb"),
        "{o:?}"
    );
    assert_eq!(f.driver_of(bdf("03:00.0")).as_deref(), Some("igb"));
    assert!(
        std::fs::read_to_string(f.path("bus/pci/drivers/pciback/slots"))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn assign_refuses_interface_dom0_uses() {
    // `lo` is up with 127.0.0.1 in every namespace: a real in-use interface.
    let f = Fixture::new().unwrap();
    f.add_pciback().unwrap();
    f.add_iommu().unwrap();
    f.add_device(
        &FixtureDevice::new(bdf("0000:03:00.0"), 0x8086, 0x10c9, 0x020000)
            .driver("igb")
            .net("lo", "unknown"),
    )
    .unwrap();
    let state = tempfile::tempdir().unwrap();
    let o = run_s(with_roots(&f, state.path(), &["pci", "assign", "03:00.0"]));
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o).1;
    assert!(
        err.contains("0000:03:00.0: dom0 is using this device: interface lo is up with addresses"),
        "{err}"
    );
    assert!(err.contains("--force"), "{err}");
    assert_eq!(f.driver_of(bdf("03:00.0")).as_deref(), Some("igb"));
    let o = run_s(with_roots(
        &f,
        state.path(),
        &["pci", "assign", "03:00.0", "--force"],
    ));
    assert!(o.status.success(), "{o:?}");
    assert!(text(&o).1.contains("warning: 0000:03:00.0"), "{o:?}");
}

#[test]
fn kernel_refusal_names_bdf_file_and_errno_in_words() {
    let (f, state) = host();
    f.fail_next_write("bus/pci/drivers/pciback/bind", EBUSY)
        .unwrap();
    let o = run_s(with_roots(&f, state.path(), &["pci", "assign", "03:00.0"]));
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o).1;
    assert!(err.contains("assign 0000:03:00.0 to pciback"), "{err}");
    assert!(err.contains("bus/pci/drivers/pciback/bind"), "{err}");
    assert!(err.contains("EBUSY (Device or resource busy)"), "{err}");
    assert!(err.contains("device still claimed by driver"), "{err}");
    assert_eq!(
        f.driver_of(bdf("03:00.0")).as_deref(),
        Some("igb"),
        "rolled back"
    );
}

#[test]
fn missing_device_and_no_iommu_fail_with_reasons() {
    let (f, state) = host();
    let o = run_s(with_roots(
        &f,
        state.path(),
        &["pci", "assign", "0000:0a:00.0"],
    ));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).1.contains("0000:0a:00.0: no such PCI device"),
        "{o:?}"
    );

    f.remove_iommu().unwrap();
    let o = run_s(with_roots(&f, state.path(), &["pci", "assign", "03:00.0"]));
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).1.contains("no IOMMU is enabled"), "{o:?}");
    assert_eq!(f.driver_of(bdf("03:00.0")).as_deref(), Some("igb"));
}

#[test]
fn rerun_after_crash_between_unbind_and_bind() {
    let (f, state) = host();
    // An earlier run recorded igb and unbound the device, then died.
    let rec = pci::StateFile::in_dir(state.path());
    pci::DriverRecord::set(&rec, bdf("03:00.0"), "igb").unwrap();
    f.kernel_write("bus/pci/drivers/igb/unbind", "0000:03:00.0")
        .unwrap();
    let o = run_s(with_roots(
        &f,
        state.path(),
        &["pci", "assign", "03:00.0", "--json"],
    ));
    assert!(o.status.success(), "{o:?}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let v = &v["devices"];
    assert_eq!(v[0]["previous_driver"], "igb");
    assert_eq!(f.driver_of(bdf("03:00.0")).as_deref(), Some("pciback"));
    let o = run_s(with_roots(&f, state.path(), &["pci", "release", "03:00.0"]));
    assert!(o.status.success(), "{o:?}");
    assert_eq!(f.driver_of(bdf("03:00.0")).as_deref(), Some("igb"));
}

#[test]
fn release_without_record_is_a_usage_error() {
    let f = Fixture::new().unwrap();
    f.add_device(
        &FixtureDevice::new(bdf("0000:03:00.0"), 0x8086, 0x10c9, 0x020000).driver("pciback"),
    )
    .unwrap();
    let state = tempfile::tempdir().unwrap();
    let o = run_s(with_roots(&f, state.path(), &["pci", "release", "03:00.0"]));
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(text(&o).1.contains("pass --driver NAME"), "{o:?}");
}

#[test]
fn cmdline_detects_builtin_or_module() {
    let f = Fixture::new().unwrap();
    let mods = tempfile::tempdir().unwrap();
    let m = mods.path().display().to_string();
    let root = f.root().display().to_string();
    let base = [
        "pci",
        "cmdline",
        "03:00.1",
        "03:00.0",
        "--sysfs-root",
        &root,
        "--modules-dir",
        &m,
    ];

    // Devices that do not exist get no hide= line.
    let o = run(&base);
    assert_eq!(o.status.code(), Some(2), "missing devices: {o:?}");
    assert!(
        text(&o)
            .1
            .contains("no PCI device 0000:03:00.1, 0000:03:00.0"),
        "{o:?}"
    );
    for b in ["0000:03:00.0", "0000:03:00.1"] {
        f.add_device(
            &FixtureDevice::new(bdf(b), 0x8086, 0x10c9, 0x020000)
                .net(if b.ends_with('0') { "eth0" } else { "eth1" }, "up"),
        )
        .unwrap();
    }

    // Undetectable: both forms, with the reason, exit 0.
    let o = run(&base);
    assert!(o.status.success(), "undetectable: {o:?}");
    let out = text(&o).0;
    assert!(
        out.contains("cannot tell whether xen-pciback is built in"),
        "{out}"
    );
    assert!(
        out.contains("xen-pciback.hide=(0000:03:00.0)(0000:03:00.1)"),
        "{out}"
    );
    assert!(
        out.contains("options xen-pciback hide=(0000:03:00.0)(0000:03:00.1)"),
        "{out}"
    );

    // The management NIC (dom0's default route) is warned about.
    let proc_ = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(proc_.path().join("net")).unwrap();
    std::fs::write(
        proc_.path().join("net/route"),
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
         eth1\t00000000\t0102A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n",
    )
    .unwrap();
    let o = drvdom(&base)
        .env("DRVDOM_PROC_ROOT", proc_.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    assert!(
        text(&o)
            .1
            .contains("0000:03:00.1 (eth1) is the management NIC"),
        "{o:?}"
    );

    std::fs::write(
        mods.path().join("modules.builtin"),
        "kernel/drivers/xen/xen-pciback/xen-pciback.ko\n",
    )
    .unwrap();
    let o = run(&[&base[..], &["--permissive"]].concat());
    assert!(o.status.success(), "{o:?}");
    let out = text(&o).0;
    assert!(out.contains("built into the kernel"), "{out}");
    assert!(
        out.lines()
            .any(|l| l == "xen-pciback.hide=(0000:03:00.0)(0000:03:00.1) xen-pciback.permissive=1"),
        "{out}"
    );

    let o = run(&[&base[..], &["--module"]].concat());
    assert!(
        text(&o)
            .0
            .lines()
            .any(|l| l == "options xen-pciback hide=(0000:03:00.0)(0000:03:00.1)"),
        "{o:?}"
    );

    let o = run(&[&base[..], &["--json"]].concat());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["schema"], "drvdom/pci-cmdline/1");
    assert_eq!(v["params"][0]["kind"], "builtin");
    assert!(
        v["detection"]["evidence"]
            .as_str()
            .unwrap()
            .contains("modules.builtin")
    );
}

#[test]
fn doctor_json_reports_each_check_with_fix() {
    let (f, state) = host();
    drop(state);
    let root = f.root().display().to_string();
    let o = run(&[
        "doctor",
        "--json",
        "--sysfs-root",
        &root,
        "--device",
        "03:00.0",
        "--only",
        "pci",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let checks = v["checks"].as_array().unwrap();
    let status = |n: &str| {
        checks
            .iter()
            .find(|c| c["name"] == n)
            .map(|c| c["status"].clone())
    };
    assert_eq!(status("iommu"), Some("PASS".into()));
    assert_eq!(status("xen-pciback"), Some("PASS".into()));
    assert_eq!(status("reset 0000:03:00.0"), Some("PASS".into()));
    assert_eq!(status("iommu-group 0000:03:00.0"), Some("PASS".into()));
    assert_eq!(status("multifunction 0000:03:00.0"), Some("PASS".into()));
    assert!(checks.iter().all(|c| c["group"] == "pci"));
    assert_eq!(o.status.code(), Some(0), "{o:?}");

    // take the IOMMU away: FAIL with a fix, exit 1
    f.remove_iommu().unwrap();
    let o = run(&["doctor", "--sysfs-root", &root, "--only", "pci"]);
    assert_eq!(o.status.code(), Some(1));
    let out = text(&o).0;
    assert!(out.lines().any(|l| l.starts_with("FAIL  iommu")), "{out}");
    assert!(out.contains("fix: Enable VT-d or AMD-Vi"), "{out}");
}

#[test]
fn assign_warns_about_functions_left_in_dom0() {
    let (f, state) = host();
    f.add_device(
        &FixtureDevice::new(bdf("0000:03:00.1"), 0x8086, 0x10c9, 0x020000)
            .driver("igb")
            .iommu_group(3),
    )
    .unwrap();
    let o = run_s(with_roots(&f, state.path(), &["pci", "assign", "03:00.0"]));
    assert!(o.status.success(), "{o:?}");
    let err = text(&o).1;
    assert!(err.contains("IOMMU group also holds 0000:03:00.1"), "{err}");
    assert!(err.contains("other functions 0000:03:00.1"), "{err}");
    // both together: no warnings
    let o = run_s(with_roots(
        &f,
        state.path(),
        &["pci", "assign", "03:00.0", "03:00.1", "--json"],
    ));
    assert!(o.status.success(), "{o:?}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let v = v["devices"].clone();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .all(|x| x["warnings"].as_array().unwrap().is_empty()),
        "{v}"
    );
    let root = f.root().display().to_string();
    let o = run(&["pci", "list", "--class", "network", "--sysfs-root", &root]);
    let out = text(&o).0;
    assert_eq!(
        out.lines()
            .filter(|l| l.contains("driver=pciback assignable"))
            .count(),
        2,
        "{out}"
    );
}
