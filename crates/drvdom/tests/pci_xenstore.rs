//! `drvdom pci assign/release` record the original driver where xl does,
//! in xenstore `/libxl/pci/<dddd-bb-dd-f>/driver_path`, when a xenstore
//! server is reachable: here our own drvdom-xenstored on a private socket,
//! with the sysfs fixture standing in for the PCI hardware.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::path::Path;
use std::process::Command;

use pci::Bdf;
use pci::fixture::{Fixture, FixtureDevice};
use testutil::xenstored::Xenstored;

fn drvdom(xs: &Xenstored, f: &Fixture, state: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_drvdom"))
        .args(args)
        .arg("--sysfs-root")
        .arg(f.root())
        .arg("--state-dir")
        .arg(state)
        .env("XENSTORED_PATH", &xs.socket)
        .output()
        .unwrap()
}

#[test]
fn assign_records_driver_in_xenstore_and_release_uses_it() {
    let xs = Xenstored::start();
    let f = Fixture::new().unwrap();
    f.add_pciback().unwrap();
    f.add_iommu().unwrap();
    let bdf: Bdf = "0000:03:00.0".parse().unwrap();
    f.add_device(
        &FixtureDevice::new(bdf, 0x8086, 0x10c9, 0x020000)
            .driver("igb")
            .iommu_group(3)
            .reset_method("flr")
            .flr(true),
    )
    .unwrap();
    let state = tempfile::tempdir().unwrap();

    let o = drvdom(&xs, &f, state.path(), &["pci", "assign", "03:00.0"]);
    assert!(o.status.success(), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("xenstore /libxl/pci"),
        "{o:?}"
    );
    let client = xenstore::Client::connect(&xs.socket).unwrap();
    let key = "/libxl/pci/0000-03-00-0/driver_path";
    assert_eq!(client.read_string(key).unwrap(), "/sys/bus/pci/drivers/igb");
    assert_eq!(f.driver_of(bdf).as_deref(), Some("pciback"));

    // Lose the local state file: xenstore alone must be enough to release.
    std::fs::remove_file(state.path().join(pci::STATE_FILE_NAME)).unwrap();
    let o = drvdom(&xs, &f, state.path(), &["pci", "release", "03:00.0"]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(f.driver_of(bdf).as_deref(), Some("igb"));
    assert!(!client.exists("/libxl/pci/0000-03-00-0").unwrap());
}

#[test]
fn doctor_checks_xenstore_quota_for_vifs() {
    let xs = Xenstored::start();
    let doctor = |vifs: &str| {
        let o = Command::new(env!("CARGO_BIN_EXE_drvdom"))
            .args(["doctor", "--only", "xenstore", "--json", "--vifs", vifs])
            .env("XENSTORED_PATH", &xs.socket)
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let quota = v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == "xenstore/quota")
            .cloned()
            .unwrap();
        (o.status.code(), quota)
    };
    // The default node quota (1000, as cxenstored) is not enough for 64 vifs.
    let (code, q) = doctor("64");
    assert_eq!(code, Some(0));
    assert_eq!(q["status"], "WARN", "{q}");
    assert!(q["fix"].as_str().unwrap().contains("--quota-nodes"), "{q}");
    let (_, q) = doctor("10");
    assert_eq!(q["status"], "PASS", "{q}");
}
