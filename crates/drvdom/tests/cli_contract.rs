//! The CLI's contract with scripts and terminals, through the binary:
//! every `--json` command is listed with its schema (the walk), the
//! outputs that need no lab validate against docs/schemas, errors under
//! `--json` are `drvdom/error/1` with their exit status, off-Xen
//! messages, the management NIC, colour only on request or a terminal,
//! `--version`. The lab's outputs are validated in lab_contract.rs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

mod schema_support;

use std::path::Path;
use std::process::{Command, Output};

use pci::Bdf;
use pci::fixture::{Fixture, FixtureDevice};
use schema_support::{CASES, assert_valid, schema_dir};

fn drvdom(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_drvdom"));
    c.args(args)
        .env_remove("DRVDOM_SYSFS_ROOT")
        .env_remove("DRVDOM_STATE_DIR")
        .env_remove("XENSTORED_PATH")
        .env_remove("NO_COLOR");
    c
}

fn run(args: &[&str]) -> Output {
    drvdom(args).output().unwrap()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn bdf(s: &str) -> Bdf {
    s.parse().unwrap()
}

#[test]
fn every_json_command_has_a_schema_and_a_case() {
    let o = run(&["json-commands"]);
    assert!(o.status.success(), "{o:?}");
    let listed: Vec<String> = out(&o).lines().map(str::to_string).collect();
    assert!(listed.len() >= 20, "{listed:?}");
    for c in &listed {
        let case = CASES.iter().find(|(cmd, _)| cmd == c);
        assert!(
            case.is_some(),
            "`drvdom {c}` prints JSON but has no case in tests/schema_support CASES: \
             add its schema to docs/schemas, docs/json.md and a run to the contract tests"
        );
    }
    for (cmd, file) in CASES {
        assert!(
            listed.iter().any(|c| c == cmd),
            "CASES names {cmd}, which has no --json"
        );
        assert!(
            schema_dir().join(format!("{file}.json")).is_file(),
            "no schema for {cmd}"
        );
        let doc = std::fs::read_to_string(schema_dir().join("../json.md")).unwrap();
        assert!(
            doc.contains(&format!("drvdom/{file}/1")),
            "docs/json.md lacks drvdom/{file}/1"
        );
    }
    assert!(schema_dir().join("error.json").is_file());
}

fn pci_host() -> (Fixture, tempfile::TempDir) {
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
    f.add_device(
        &FixtureDevice::new(bdf("0000:04:00.0"), 0x8086, 0x10c9, 0x020000)
            .driver("igb")
            .iommu_group(4)
            .net("eth9", "up"),
    )
    .unwrap();
    (f, tempfile::tempdir().unwrap())
}

/// A procfs with a default route through `iface`.
fn proc_with_default_route(iface: &str) -> tempfile::TempDir {
    let p = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(p.path().join("net")).unwrap();
    std::fs::write(
        p.path().join("net/route"),
        format!(
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
             {iface}\t00000000\t0102A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
        ),
    )
    .unwrap();
    p
}

fn pci(f: &Fixture, state: &Path, proc_: &Path, args: &[&str]) -> Output {
    drvdom(args)
        .env("DRVDOM_SYSFS_ROOT", f.root())
        .env("DRVDOM_STATE_DIR", state)
        .env("DRVDOM_PROC_ROOT", proc_)
        .env("DRVDOM_PROC_XEN", "/nonexistent/proc/xen")
        .output()
        .unwrap()
}

#[test]
fn pci_and_doctor_json_validate_and_the_management_nic_is_guarded() {
    let (f, state) = pci_host();
    let proc_ = proc_with_default_route("eth9");
    let p = proc_.path();
    let ok = |args: &[&str], schema: &str| {
        let o = pci(&f, state.path(), p, args);
        assert!(o.status.success(), "{args:?}: {o:?}");
        assert_valid(&out(&o), schema);
        out(&o)
    };
    ok(&["pci", "list", "--json"], "drvdom/pci-list/1");
    ok(&["pci", "show", "03:00.0", "--json"], "drvdom/pci-show/1");
    ok(
        &["pci", "cmdline", "03:00.0", "--builtin", "--json"],
        "drvdom/pci-cmdline/1",
    );
    ok(
        &["pci", "assign", "03:00.0", "--json"],
        "drvdom/pci-assign/1",
    );
    ok(&["pci", "assignable", "--json"], "drvdom/pci-assignable/1");
    ok(
        &["pci", "release", "03:00.0", "--json"],
        "drvdom/pci-release/1",
    );

    // The management NIC: pci assign refuses it without --force, writing
    // nothing; cmdline and doctor warn.
    let o = pci(&f, state.path(), p, &["pci", "assign", "04:00.0"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(
        err(&o).contains("0000:04:00.0 (eth9) is the management NIC"),
        "{o:?}"
    );
    assert_eq!(f.driver_of(bdf("04:00.0")).as_deref(), Some("igb"));
    let o = pci(&f, state.path(), p, &["pci", "assign", "04:00.0", "--json"]);
    assert_eq!(o.status.code(), Some(2));
    assert_valid(&out(&o), "drvdom/error/1");
    assert!(out(&o).contains("DRVDOM-INVALID"), "{}", out(&o));
    let o = pci(
        &f,
        state.path(),
        p,
        &["pci", "assign", "04:00.0", "--force", "--json"],
    );
    assert!(o.status.success(), "{o:?}");
    assert!(out(&o).contains("management NIC"), "{}", out(&o));
    let o = pci(
        &f,
        state.path(),
        p,
        &["pci", "cmdline", "04:00.0", "--module"],
    );
    assert!(o.status.success(), "{o:?}");
    assert!(err(&o).contains("is the management NIC"), "{o:?}");

    let o = pci(&f, state.path(), p, &["doctor", "--only", "pci", "--json"]);
    assert_valid(&out(&o), "drvdom/doctor/1");
    let v: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    let m = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "pci/management-nic")
        .unwrap_or_else(|| panic!("{v:#}"));
    assert_eq!(m["status"], "WARN");
    assert_eq!(v["host"]["xen"], false);
    // The text form starts with the verdict line.
    let o = pci(&f, state.path(), p, &["doctor", "--only", "pci"]);
    assert!(
        out(&o).starts_with("host: this is not a Xen host (no /nonexistent/proc/xen)"),
        "{}",
        out(&o)
    );
}

#[test]
fn doctor_fails_a_missing_xenstore_on_a_xen_dom0() {
    let xen = tempfile::tempdir().unwrap();
    std::fs::write(xen.path().join("capabilities"), "control_d\n").unwrap();
    let o = drvdom(&["doctor", "--only", "xenstore", "--json"])
        .env("DRVDOM_PROC_XEN", xen.path())
        .env("XENSTORED_PATH", "/nonexistent/xenstored.sock")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert_valid(&out(&o), "drvdom/doctor/1");
    let v: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(v["host"]["dom0"], true);
    assert_eq!(v["checks"][0]["id"], "xenstore/reachable");
    assert_eq!(v["checks"][0]["status"], "FAIL");
    // Not on Xen: a SKIP, not a failure.
    let o = drvdom(&["doctor", "--only", "xenstore"])
        .env("DRVDOM_PROC_XEN", "/nonexistent")
        .env("XENSTORED_PATH", "/nonexistent/xenstored.sock")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(out(&o).contains("SKIP"), "{}", out(&o));
}

#[test]
fn config_json_validates_and_parse_errors_exit_1_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("netdd.cfg"),
        "name = 'netdd'\ndriver_domain = 1\npci = ['03:00.0']\nmemroy = 512\n",
    )
    .unwrap();
    std::fs::write(
        d.join("web.cfg"),
        "name = 'web'\nvif = ['backend=netdom']\n",
    )
    .unwrap();
    std::fs::write(d.join("bad.cfg"), "name = \"abc\nmemory = 1\n").unwrap();
    let c = |args: &[&str]| drvdom(args).current_dir(d).output().unwrap();
    let o = c(&["config", "check", "--json", "netdd.cfg", "web.cfg"]);
    assert!(o.status.success(), "{o:?}");
    assert_valid(&out(&o), "drvdom/config-check/1");
    let v: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    let codes: Vec<&str> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["diagnostics"].as_array().unwrap())
        .filter_map(|d| d["code"].as_str())
        .collect();
    assert!(codes.contains(&"XLCFG-UNKNOWN-KEY"), "{codes:?}");
    assert!(codes.contains(&"XLCFG-UNKNOWN-BACKEND"), "{codes:?}");
    // Text: warnings with did-you-mean; --strict refuses them.
    let o = c(&["config", "check", "netdd.cfg", "web.cfg"]);
    assert!(o.status.success());
    assert!(
        err(&o).contains("unknown key `memroy`") && err(&o).contains("did you mean `memory`?"),
        "{}",
        err(&o)
    );
    assert!(
        err(&o).contains("did you mean `netdd` (netdd.cfg)?"),
        "{}",
        err(&o)
    );
    let o = c(&["config", "check", "--strict", "netdd.cfg", "web.cfg"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    // An open quote is named, and the same parse error exits 1 in check,
    // fmt and show.
    for args in [
        &["config", "check", "bad.cfg"][..],
        &["config", "fmt", "bad.cfg"],
        &["config", "show", "bad.cfg"],
    ] {
        let o = c(args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {o:?}");
        assert!(
            err(&o).contains("unterminated string"),
            "{args:?}: {}",
            err(&o)
        );
    }
    let o = c(&["config", "show", "--json", "bad.cfg"]);
    assert_eq!(o.status.code(), Some(1));
    assert_valid(&out(&o), "drvdom/error/1");
    assert!(out(&o).contains("XLCFG-UNTERMINATED-STRING"), "{}", out(&o));
    let o = c(&["config", "show", "--json", "netdd.cfg"]);
    assert_valid(&out(&o), "drvdom/config-show/1");
    // fmt --diff previews and writes nothing; `-` is a filter.
    let before = std::fs::read_to_string(d.join("web.cfg")).unwrap();
    let o = c(&["config", "fmt", "--diff", "web.cfg"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(
        out(&o).contains("-vif = ['backend=netdom']\n+vif = [ 'backend=netdom' ]"),
        "{}",
        out(&o)
    );
    assert_eq!(std::fs::read_to_string(d.join("web.cfg")).unwrap(), before);
    let mut child = drvdom(&["config", "fmt", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(before.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    assert_eq!(out(&o), "name = 'web'\nvif = [ 'backend=netdom' ]\n");
}

#[test]
fn errors_under_json_are_objects_with_codes_and_exit_statuses() {
    // A usage error from clap itself.
    let o = run(&["lab", "status", "--bogus", "--json"]);
    assert_eq!(o.status.code(), Some(2));
    assert_valid(&out(&o), "drvdom/error/1");
    assert!(out(&o).contains("DRVDOM-USAGE"));
    // Off Xen, a real-host command says so.
    if !Path::new("/proc/xen").exists() {
        let o = run(&["bridge", "show"]);
        assert_eq!(o.status.code(), Some(2), "{o:?}");
        assert!(
            err(&o).contains("this is not a Xen host (no /proc/xen): on a lab use --lab NAME"),
            "{}",
            err(&o)
        );
        let o = run(&["vif", "attach", "g", "--json"]);
        assert_valid(&out(&o), "drvdom/error/1");
        assert!(out(&o).contains("DRVDOM-NOT-XEN"), "{}", out(&o));
    }
    // An unknown lab lists the running ones.
    let root = tempfile::tempdir().unwrap();
    let o = drvdom(&["show", "--lab", "nosuchlab", "--format", "json"])
        .env("DRVDOM_LAB_ROOT", root.path())
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(1),
        "toolstack commands exit 1 on errors"
    );
    assert_valid(&out(&o), "drvdom/error/1");
    assert!(out(&o).contains("\"known\":["), "{}", out(&o));
}

#[test]
fn colour_only_when_asked_or_on_a_terminal_and_version_names_the_commit() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.cfg"), "name = 'a'\nmemroy = 1\n").unwrap();
    let c = |extra: &[&str], no_color: bool| {
        let mut cmd = drvdom(&[&["config", "check", "a.cfg", "-vvv"][..], extra].concat());
        cmd.current_dir(dir.path()).env("RUST_LOG", "trace");
        if no_color {
            cmd.env("NO_COLOR", "1");
        }
        cmd.output().unwrap()
    };
    let piped = c(&[], false);
    assert!(
        !out(&piped).contains('\x1b') && !err(&piped).contains('\x1b'),
        "{piped:?}"
    );
    let forced = c(&["--color", "always"], false);
    assert!(out(&forced).contains("\x1b[32mok\x1b[0m"), "{forced:?}");
    let never = c(&["--color", "never"], false);
    assert!(!out(&never).contains('\x1b'));
    let o = run(&["--version"]);
    let v = out(&o);
    assert!(v.starts_with("drvdom "), "{v}");
    assert!(v.contains("commit: "), "{v}");
    assert!(v.contains("xen: tested with Xen 4.17"), "{v}");
    assert!(v.contains("xenstore: wire protocol"), "{v}");
}
