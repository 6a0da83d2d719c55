//! `drvdom config check|fmt|show` end to end, on files in a temp dir.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn drvdom(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_drvdom"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("run drvdom: {e}"))
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    p
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const NET_DD: &str = "# network driver domain\nname = \"net-dd\"\ntype = \"pvh\"\nkernel = \"/boot/vmlinuz\"\nmemory = 512\ndriver_domain = 1\npci = [ '0000:03:00.0' ]\n";
const WEB: &str = "name = \"web\"\ntype = \"pvh\"\nkernel = \"/boot/vmlinuz\"\nmemory = 1024\nvif = [ 'mac=00:16:3e:00:00:01,bridge=xenbr0,backend=net-dd' ]\n";

#[test]
fn check_accepts_a_consistent_driver_domain_setup() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "net-dd.cfg", NET_DD);
    write(dir.path(), "web.cfg", WEB);
    let o = drvdom(&["config", "check", "net-dd.cfg", "web.cfg"], dir.path());
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("net-dd.cfg: ok"), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("0 error(s), 0 warning(s)"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
}

#[test]
fn check_reports_syntax_error_with_caret_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "bad.cfg", "name = \"x\"\nmemory = 1.5\n");
    let o = drvdom(&["config", "check", "bad.cfg"], dir.path());
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("--> bad.cfg:2:11"), "{err}");
    assert!(err.contains("2 | memory = 1.5\n"), "{err}");
    assert!(err.contains("  |           ^^\n"), "{err}");
}

#[test]
fn check_json_lists_cross_file_problems() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "net-dd.cfg", NET_DD);
    write(dir.path(), "web.cfg", WEB);
    // Same MAC as web, a MAC outside the Xen OUI, and net-dd's NIC again.
    write(
        dir.path(),
        "db.cfg",
        "name = 'db'\nvif = [ 'mac=00:16:3e:00:00:01,backend=net-dd', 'mac=02:00:00:00:00:09,backend=net-dd' ]\npci = [ '03:00.0' ]\n",
    );
    let o = drvdom(
        &[
            "config",
            "check",
            "--json",
            "net-dd.cfg",
            "web.cfg",
            "db.cfg",
        ],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["valid"], false);
    let files = v["files"].as_array().unwrap();
    assert_eq!(files[0]["valid"], true);
    assert_eq!(files[1]["valid"], true);
    assert_eq!(files[2]["valid"], false);
    let msgs: Vec<String> = files[2]["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["message"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        msgs.iter()
            .any(|m| m.contains("duplicate MAC 00:16:3e:00:00:01")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter().any(|m| m.contains("not in the Xen OUI")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains("PCI device 0000:03:00.0 is also given to `net-dd`")),
        "{msgs:?}"
    );
    let dup = files[2]["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["message"].as_str().unwrap().contains("duplicate"))
        .unwrap();
    assert_eq!(dup["line"], 2);
    assert_eq!(dup["severity"], "error");
}

#[test]
fn check_warns_about_backend_that_is_not_a_driver_domain() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "net-dd.cfg",
        &NET_DD.replace("driver_domain = 1\n", ""),
    );
    write(dir.path(), "web.cfg", WEB);
    let o = drvdom(&["config", "check", "net-dd.cfg", "web.cfg"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("backend domain `net-dd` (net-dd.cfg) does not set driver_domain = 1"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn check_of_missing_file_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let o = drvdom(&["config", "check", "nope.cfg"], dir.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot read file"), "{}", stderr(&o));
}

#[test]
fn fmt_check_then_fmt_rewrites_keeping_comments() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "g.cfg",
        "# guest\nname=\"g\" ;memory=512   # MiB\n\n\n\nvif=['bridge=br0']\n",
    );
    let o = drvdom(&["config", "fmt", "--check", "g.cfg"], dir.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("would reformat g.cfg"));
    assert_eq!(
        std::fs::read_to_string(&p).unwrap(),
        "# guest\nname=\"g\" ;memory=512   # MiB\n\n\n\nvif=['bridge=br0']\n"
    );
    let o = drvdom(&["config", "fmt", "g.cfg"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let out = std::fs::read_to_string(&p).unwrap();
    assert_eq!(
        out,
        "# guest\nname = 'g'\nmemory = 512 # MiB\n\nvif = [ 'bridge=br0' ]\n"
    );
    let o = drvdom(&["config", "fmt", "--check", "g.cfg"], dir.path());
    assert!(o.status.success(), "already formatted: {}", stdout(&o));
}

#[test]
fn fmt_leaves_unparsable_file_alone() {
    let dir = tempfile::tempdir().unwrap();
    let text = "name = 'x'\nmemory = int(512)\n";
    let p = write(dir.path(), "py.cfg", text);
    let o = drvdom(&["config", "fmt", "py.cfg"], dir.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("py.cfg:2:10"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&p).unwrap(), text);
}

#[test]
fn show_json_gives_the_typed_view() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "net-dd.cfg",
        &NET_DD.replace("'0000:03:00.0'", "'0000:03:00.0', '03:00.1@5,permissive=1'"),
    );
    let o = drvdom(&["config", "show", "--json", "net-dd.cfg"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let d = &v["domain"];
    assert_eq!(d["name"], "net-dd");
    assert_eq!(d["type"], "pvh");
    assert_eq!(d["driver_domain"], true);
    assert_eq!(d["memory"], 512);
    assert_eq!(d["pcis"][1]["target"]["bdf"], "0000:03:00.1");
    assert_eq!(d["pcis"][1]["vslot"], 5);
    assert_eq!(d["pcis"][1]["effective_permissive"], true);
    assert_eq!(d["pcis"][0]["effective_permissive"], false);
}

#[test]
fn show_prints_devices_in_canonical_form() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "web.cfg", &WEB.replace("00:16:3e", "00:16:3E"));
    let o = drvdom(&["config", "show", "web.cfg"], dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("devid 0: mac=00:16:3e:00:00:01,bridge=xenbr0,backend=net-dd"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn show_of_invalid_file_fails_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "t.cfg", "name = 'x'\ntype = 'xen'\n");
    let o = drvdom(&["config", "show", "t.cfg"], dir.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("Invalid domain type xen."),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("t.cfg:2:8"), "{}", stderr(&o));
}
