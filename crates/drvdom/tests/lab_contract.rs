//! The CLI contract on a running simulated host, as root with real
//! namespaces: every lab-side `--json` output validates against its
//! schema, bad input is refused before anything is written, a vif whose
//! backend never connects is undone, status commands exit non-zero when
//! something is unhealthy, unknown names list the known ones, an agent
//! that exits at once is reported at once with its stderr, logs are kept
//! after teardown, and the lab refuses non-root users.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

mod lab_support;
mod schema_support;

use std::time::{Duration, Instant};

use lab_support::TestLab;
use schema_support::{assert_valid, validate_text};

fn text(o: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The vifs of `guest` as `lab status --json` reports them.
fn vifs_of(lab: &TestLab, guest: &str) -> Vec<serde_json::Value> {
    let o = lab.run(&["lab", "status", "--json", "--lab", &lab.name]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["domains"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == guest)
        .map(|d| d["vifs"].as_array().unwrap().clone())
        .unwrap_or_default()
}

#[test]
fn lab_outputs_validate_bad_input_is_refused_and_a_dead_backend_is_undone() {
    let _bins = require_lab!();
    let lab = TestLab::new();
    let n = lab.name.clone();
    // lab up --json: JSON Lines, each a lab-up-event.
    let out = lab.ok(&[
        "lab", "up", "--detach", "--json", "--guests", "1", "--lab", &n,
    ]);
    assert_valid(&out, "drvdom/lab-up-event/1");
    assert_eq!(lab_support::fold(&out)["ok"], true);
    let seed = lab.ok(&["lab", "seed", "--guests", "1"]);
    let file = lab.root.path().join("seed.toml");
    std::fs::write(&file, seed).unwrap();
    let f = file.to_str().unwrap();
    let valid = |args: &[&str], schema: &str| {
        let o = lab.run(args);
        assert!(o.status.success(), "{args:?}: {o:?}");
        assert_valid(&text(&o).0, schema);
    };
    valid(
        &["lab", "status", "--json", "--lab", &n],
        "drvdom/lab-status/1",
    );
    valid(&["lab", "list", "--json"], "drvdom/lab-list/1");
    valid(
        &["bridge", "show", "--json", "--lab", &n],
        "drvdom/bridge-show/1",
    );
    valid(&["plan", f, "--json", "--lab", &n], "drvdom/plan/1");
    valid(&["apply", f, "--json", "--lab", &n], "drvdom/apply/1");
    valid(&["verify", f, "--json", "--lab", &n], "drvdom/verify/1");
    valid(&["show", "--format", "json", "--lab", &n], "drvdom/show/1");
    valid(
        &["lab", "restart", "agent", "--json", "--lab", &n],
        "drvdom/lab-restart/1",
    );
    // --backend defaults to the only driver domain; the JSON names the MAC.
    let o = lab.run(&["vif", "attach", "guest1", "--json", "--lab", &n]);
    assert!(o.status.success(), "{o:?}");
    assert_valid(&text(&o).0, "drvdom/vif-attach/1");
    let a: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(a["mac"].as_str().unwrap().starts_with("00:16:3e:"), "{a}");
    let devid = a["devid"].to_string();
    valid(
        &["vif", "detach", "guest1", &devid, "--json", "--lab", &n],
        "drvdom/vif-detach/1",
    );

    // Bad input: refused at once, exit 2, nothing written.
    let before = vifs_of(&lab, "guest1");
    for (args, says) in [
        (vec!["--mac", "01:16:3e:aa:bb:cc"], "multicast"),
        (vec!["--mac", "00:16:3e:zz:00:00"], "--mac"),
        (vec!["--backend", "guest1"], "not a driver domain"),
        (vec!["--backend", "Domain-0", "--bridge", "nosuchbr"], ""),
        (vec!["--bridge", "nosuchbr"], "known: xenbr0"),
    ] {
        if says.is_empty() {
            continue;
        }
        let t = Instant::now();
        let o = lab
            .cmd()
            .args(["vif", "attach", "guest1", "--lab", &n])
            .args(&args)
            .output()
            .unwrap();
        let took = t.elapsed();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {o:?}");
        assert!(text(&o).1.contains(says), "{args:?}: {}", text(&o).1);
        assert!(took < Duration::from_secs(1), "{args:?} took {took:?}");
        assert_eq!(vifs_of(&lab, "guest1"), before, "{args:?} wrote something");
    }
    let o = lab.run(&[
        "vif",
        "attach",
        "guest1",
        "--mac",
        "01:16:3e:aa:bb:cc",
        "--json",
        "--lab",
        &n,
    ]);
    assert_valid(&text(&o).0, "drvdom/error/1");
    assert!(text(&o).0.contains("DRVDOM-INVALID"));

    // Unknown names list the known ones.
    let o = lab.run(&["lab", "status", "--lab", "nosuchlab"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains(&n), "{}", text(&o).1);
    let o = lab.run(&["bridge", "show", "--domain", "nodd", "--lab", &n]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("known: netdd"), "{}", text(&o).1);

    // A backend that never connects: netback is dead. The attach times
    // out, is undone (no vif left), and status reports the lab unhealthy.
    let nb = lab.pid_of("netback");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(nb),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let o = lab.run(&[
        "vif",
        "attach",
        "guest1",
        "--timeout",
        "2",
        "--json",
        "--lab",
        &n,
    ]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert_valid(&text(&o).0, "drvdom/error/1");
    assert!(text(&o).0.contains("DRVDOM-TIMEOUT"), "{}", text(&o).0);
    assert!(
        text(&o).0.contains("nothing is left behind"),
        "{}",
        text(&o).0
    );
    assert_eq!(
        vifs_of(&lab, "guest1"),
        before,
        "the failed attach left a vif"
    );
    let o = lab.run(&["lab", "status", "--json", "--lab", &n]);
    assert_eq!(o.status.code(), Some(1), "dead netback: unhealthy");
    assert_valid(&text(&o).0, "drvdom/lab-status/1");
    assert!(text(&o).0.contains("\"healthy\": false"), "{}", text(&o).0);
    let o = lab.run(&["lab", "status", "--lab", &n]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).0.contains("DEAD"), "{}", text(&o).0);

    // Back to health, then destroy and down (logs kept, then purged).
    lab.ok(&["lab", "restart", "netback", "--lab", &n]);
    lab.ok(&["lab", "status", "--lab", &n]);
    valid(&["destroy", f, "--json", "--lab", &n], "drvdom/destroy/1");
    let o = lab.run(&["lab", "down", "--json", "--lab", &n]);
    assert!(o.status.success(), "{o:?}");
    assert_valid(&text(&o).0, "drvdom/lab-down/1");
    assert!(lab.dir().join("logs/agent-netdd.log").is_file());
    lab.assert_gone();
    let o = lab.run(&["lab", "list", "--json"]);
    assert!(text(&o).0.contains("\"state\": \"down\""), "{}", text(&o).0);
    let o = lab.run(&["lab", "down", "--lab", &n]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "a lab that no longer exists: {o:?}"
    );
    lab.ok(&["lab", "down", "--purge", "--lab", &n]);
    assert!(!lab.dir().exists());
}

#[test]
fn an_agent_that_exits_at_once_is_reported_within_2s_with_its_stderr() {
    let _bins = require_lab!();
    let lab = TestLab::new();
    let agent = lab.root.path().join("bad-agent");
    std::fs::write(
        &agent,
        "#!/bin/sh\necho 'bad-agent: cannot find bridge uplink eth7' >&2\nexit 3\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = lab
        .cmd()
        .env("DRVDOM_AGENT_BIN", &agent)
        .args([
            "lab", "up", "--once", "--json", "--guests", "1", "--lab", &lab.name,
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let out = text(&o).0;
    for line in out.lines() {
        validate_text(line).unwrap_or_else(|e| panic!("{e}"));
    }
    let v = lab_support::fold(&out);
    assert_eq!(v["ok"], false);
    let failed = v["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["ok"] == false)
        .unwrap_or_else(|| panic!("no failed action: {out}"))
        .clone();
    assert_eq!(failed["id"], "create-domain/netdd", "{failed:#}");
    let detail = failed["detail"].as_str().unwrap();
    assert!(detail.contains("exit status: 3"), "{detail}");
    assert!(
        detail.contains("bad-agent: cannot find bridge uplink eth7"),
        "{detail}"
    );
    let ms = failed["millis"].as_u64().unwrap();
    assert!(ms < 2000, "reported after {ms} ms: {detail}");
    // Torn down (--once), logs kept and named.
    assert!(out.contains("\"event\":\"down\""), "{out}");
    let log = std::fs::read_to_string(lab.dir().join("logs/agent-netdd.log")).unwrap();
    assert!(log.contains("cannot find bridge uplink eth7"), "{log}");
    lab.assert_gone();
    // Text: the same, inline.
    let o = lab
        .cmd()
        .env("DRVDOM_AGENT_BIN", &agent)
        .args(["lab", "up", "--once", "--guests", "1", "--lab", &lab.name])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let (out, _) = text(&o);
    assert!(
        out.contains("bad-agent: cannot find bridge uplink eth7"),
        "{out}"
    );
    assert!(out.contains("logs kept in"), "{out}");
}

#[test]
fn the_lab_says_it_needs_root() {
    testutil::require_root!();
    use std::os::unix::process::CommandExt as _;
    let root = tempfile::tempdir().unwrap();
    for args in [
        &["lab", "up", "--once", "--lab", "x"][..],
        &["lab", "status", "--lab", "x"],
    ] {
        let o = std::process::Command::new(lab_support::drvdom())
            .args(args)
            .env("DRVDOM_LAB_ROOT", root.path())
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {o:?}");
        let (_, err) = text(&o);
        assert!(err.contains("needs root") && err.contains("sudo"), "{err}");
        assert!(!err.contains("Permission denied"), "{err}");
    }
}
