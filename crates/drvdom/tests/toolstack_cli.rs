//! `drvdom plan|apply|verify|destroy|show` through the binary, on the real
//! host path (RealHost) pointed at a real `drvdom-xenstored` with
//! `XENSTORED_PATH`: bad files refused with file:line:col and nothing
//! created, exit codes, JSON shapes, show formats (libvirt XML checked by
//! libvirt's own `virt-xml-validate`, SVG drawn by Graphviz).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use testutil::xenstored::Xenstored;

fn drvdom(xsd: &Xenstored, args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_drvdom"))
        .args(args)
        .current_dir(dir)
        .env("XENSTORED_PATH", &xsd.socket)
        // Never touch a real xl if one is installed: plan/verify/show do
        // not run it, and the apply test below fails before any action.
        .env("PATH", "/nonexistent")
        .output()
        .unwrap_or_else(|e| panic!("run drvdom: {e}"))
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const HOST: &str = r#"version = 1

[[driver_domain]]
name = "netdd"
config = "netdd.cfg"
nics = ["0000:7f:1f.7"]

[[driver_domain.bridge]]
name = "xenbr0"
uplink = "0000:7f:1f.7"

[[driver_domain.bridge]]
name = "inner"
mtu = 9000

[[guest]]
name = "web"
config = "web.cfg"

[[guest.vif]]
backend = "netdd"
ip = ["192.0.2.10/24"]

[[guest.vif]]
backend = "netdd"
bridge = "inner"
mac = "00:16:3e:12:34:56"
"#;

fn setup() -> (Xenstored, tempfile::TempDir, PathBuf) {
    let xsd = Xenstored::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("netdd.cfg"),
        "name = \"netdd\"\nkernel = \"/boot/vmlinuz\"\nmemory = 256\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("web.cfg"),
        "name = \"web\"\nkernel = \"/boot/vmlinuz\"\nmemory = 128\n",
    )
    .unwrap();
    let f = dir.path().join("host.toml");
    std::fs::write(&f, HOST).unwrap();
    (xsd, dir, f)
}

/// Every node of the store, for "nothing was touched".
fn tree(xsd: &Xenstored) -> Vec<String> {
    let c = xenstore::Client::connect(&xsd.socket).unwrap();
    let mut out = Vec::new();
    let mut todo = vec!["/".to_string()];
    while let Some(p) = todo.pop() {
        let v = c.read_opt(&p).unwrap_or(None).unwrap_or_default();
        out.push(format!("{p}={}", String::from_utf8_lossy(&v)));
        for k in c.directory(&p).unwrap_or_default() {
            todo.push(if p == "/" {
                format!("/{k}")
            } else {
                format!("{p}/{k}")
            });
        }
    }
    out.sort();
    out
}

#[test]
fn a_bad_file_is_refused_with_its_position_and_nothing_is_touched() {
    let (xsd, dir, f) = setup();
    let bad = HOST.replace("mtu = 9000", "mtu = 9000\ncolour = \"red\"");
    std::fs::write(&f, bad).unwrap();
    let cfg_before = std::fs::read(dir.path().join("netdd.cfg")).unwrap();
    let before = tree(&xsd);
    for cmd in ["plan", "apply", "verify", "destroy"] {
        let o = drvdom(&xsd, &[cmd, "host.toml"], dir.path());
        assert_eq!(o.status.code(), Some(1), "{cmd}: {}{}", out(&o), err(&o));
        let e = err(&o);
        assert!(
            e.contains("error[TOPO-UNKNOWN-KEY]: unknown key `colour`"),
            "{cmd}: {e}"
        );
        assert!(e.contains("--> host.toml:15:1"), "{cmd}: {e}");
        assert!(e.contains("15 | colour = \"red\"\n"), "{cmd}: {e}");
        assert!(e.contains("   | ^^^^^^\n"), "{cmd}: {e}");
        assert!(e.contains("nothing was changed"), "{cmd}: {e}");
    }
    let o = drvdom(&xsd, &["plan", "host.toml", "--json"], dir.path());
    assert_eq!(o.status.code(), Some(1));
    let j: serde_json::Value = serde_json::from_str(out(&o).trim()).unwrap();
    assert_eq!(j["schema"], "drvdom/error/1");
    assert_eq!(j["error"]["code"], "DRVDOM-INVALID-FILE");
    assert_eq!(j["error"]["diagnostics"][0]["code"], "TOPO-UNKNOWN-KEY");
    assert_eq!(j["error"]["diagnostics"][0]["line"], 15);
    assert_eq!(j["error"]["diagnostics"][0]["column"], 1);
    assert_eq!(tree(&xsd), before, "the store changed");
    assert_eq!(
        std::fs::read(dir.path().join("netdd.cfg")).unwrap(),
        cfg_before
    );
}

#[test]
fn a_missing_xl_cfg_is_an_error_on_the_real_host() {
    let (xsd, dir, _f) = setup();
    std::fs::remove_file(dir.path().join("web.cfg")).unwrap();
    let o = drvdom(&xsd, &["plan", "host.toml"], dir.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("TOPO-CONFIG-NOT-FOUND"), "{}", err(&o));
}

#[test]
fn plan_lists_actions_with_reasons_and_exits_2() {
    let (xsd, dir, _f) = setup();
    let o = drvdom(&xsd, &["plan", "host.toml", "--json"], dir.path());
    assert_eq!(o.status.code(), Some(2), "{}{}", out(&o), err(&o));
    let j: serde_json::Value = serde_json::from_str(out(&o).trim()).unwrap();
    let actions = j["actions"].as_array().unwrap();
    assert_eq!(j["changes"].as_u64().unwrap() as usize, actions.len());
    for a in actions {
        for k in ["action", "target", "reason"] {
            assert!(a[k].as_str().is_some_and(|s| !s.is_empty()), "{a}");
        }
    }
    let names: Vec<String> = actions
        .iter()
        .map(|a| {
            format!(
                "{} {}",
                a["action"].as_str().unwrap(),
                a["target"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            "write-config netdd",
            "assign-nic 0000:7f:1f.7",
            "create-domain netdd",
            "configure-bridges netdd",
            "write-config web",
            "create-domain web",
            "grant-name-read web->netdd",
            "attach-vif web/0",
            "attach-vif web/1",
        ]
    );
    assert!(
        actions[0]["reason"]
            .as_str()
            .unwrap()
            .contains("driver_domain is not 1")
    );
    let o = drvdom(&xsd, &["plan", "host.toml"], dir.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(
        out(&o).contains("9 action(s) on the real host"),
        "{}",
        out(&o)
    );
    assert!(out(&o).contains("1. write-config netdd:"), "{}", out(&o));
    // plan never writes the configs.
    let cfg = std::fs::read_to_string(dir.path().join("netdd.cfg")).unwrap();
    assert!(!cfg.contains("driver_domain"), "{cfg}");
}

#[test]
fn verify_reports_every_check_as_json_and_fails() {
    let (xsd, dir, _f) = setup();
    let o = drvdom(&xsd, &["verify", "host.toml", "--json"], dir.path());
    assert_eq!(o.status.code(), Some(1), "{}{}", out(&o), err(&o));
    let j: serde_json::Value = serde_json::from_str(out(&o).trim()).unwrap();
    let checks = j["checks"].as_array().unwrap();
    assert_eq!(j["failed"].as_u64().unwrap() as usize, checks.len());
    assert_eq!(j["passed"], 0);
    for c in checks {
        assert_eq!(c["status"], "fail");
        for k in ["check", "target", "detail"] {
            assert!(c[k].as_str().is_some(), "{c}");
        }
    }
    let kinds: Vec<&str> = checks
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    for k in [
        "domain-running",
        "nic-pciback",
        "nic-passed-through",
        "nic-visible",
    ] {
        assert!(kinds.contains(&k), "{kinds:?}");
    }
    let o = drvdom(&xsd, &["verify", "host.toml"], dir.path());
    assert!(out(&o).contains("FAIL domain-running"), "{}", out(&o));
    assert!(out(&o).contains("passed, "), "{}", out(&o));
}

#[test]
fn destroy_of_an_absent_host_does_nothing_and_succeeds() {
    let (xsd, dir, _f) = setup();
    let before = tree(&xsd);
    let o = drvdom(&xsd, &["destroy", "host.toml"], dir.path());
    assert_eq!(o.status.code(), Some(0), "{}{}", out(&o), err(&o));
    assert!(
        out(&o).contains("nothing of the file is left"),
        "{}",
        out(&o)
    );
    assert_eq!(tree(&xsd), before);
}

#[test]
fn apply_stops_at_the_failing_action_and_names_it() {
    let (xsd, dir, _f) = setup();
    let o = drvdom(&xsd, &["apply", "host.toml"], dir.path());
    assert_eq!(o.status.code(), Some(1), "{}{}", out(&o), err(&o));
    // write-config succeeds (a lossless edit); assign-nic fails: the NIC
    // does not exist on this machine.
    assert!(
        out(&o).contains("[1/9] write-config netdd ... ok"),
        "{}",
        out(&o)
    );
    assert!(
        out(&o).contains("[2/9] assign-nic 0000:7f:1f.7 ... FAILED"),
        "{}",
        out(&o)
    );
    assert!(
        err(&o).contains("apply stopped at action 2/9 (assign-nic 0000:7f:1f.7)"),
        "{}",
        err(&o)
    );
    let cfg = std::fs::read_to_string(dir.path().join("netdd.cfg")).unwrap();
    assert!(
        cfg.starts_with("name = \"netdd\"\nkernel = \"/boot/vmlinuz\"\nmemory = 256\n"),
        "{cfg}"
    );
    assert!(
        cfg.contains("driver_domain = 1") && cfg.contains("0000:7f:1f.7"),
        "{cfg}"
    );
    // The second apply resumes: the config is no longer planned.
    let o = drvdom(&xsd, &["plan", "host.toml", "--json"], dir.path());
    let j: serde_json::Value = serde_json::from_str(out(&o).trim()).unwrap();
    assert_eq!(j["actions"][0]["action"], "assign-nic", "{j}");
}

#[test]
fn show_formats() {
    let (xsd, dir, _f) = setup();
    let o = drvdom(&xsd, &["show", "host.toml", "--format", "json"], dir.path());
    assert!(o.status.success(), "{}", err(&o));
    let j: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    let doms = j["domains"].as_array().unwrap();
    assert_eq!(doms.len(), 3);
    assert_eq!(doms[1]["role"], "driver");
    assert_eq!(doms[2]["vifs"].as_array().unwrap().len(), 2);
    for k in ["name", "domid", "role", "nics", "bridges", "vifs"] {
        assert!(doms[1].get(k).is_some(), "{k}");
    }
    let o = drvdom(&xsd, &["show", "--format", "text"], dir.path());
    assert!(
        o.status.success() && out(&o).contains("Domain-0 (dom0"),
        "{}",
        out(&o)
    );
    let o = drvdom(&xsd, &["show", "host.toml", "--format", "dot"], dir.path());
    assert!(out(&o).starts_with("digraph host {"), "{}", out(&o));
    assert!(out(&o).contains("color=red"), "{}", out(&o));
}

#[test]
fn show_svg_is_drawn_by_graphviz() {
    let dot = testutil::require_cmd!("dot");
    let (xsd, dir, _f) = setup();
    let o = Command::new(env!("CARGO_BIN_EXE_drvdom"))
        .args(["show", "host.toml", "--format", "svg"])
        .current_dir(dir.path())
        .env("XENSTORED_PATH", &xsd.socket)
        .env("PATH", dot.parent().unwrap())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    let s = out(&o);
    assert!(s.contains("<svg") && s.contains("</svg>"), "{s}");
    assert!(s.contains("web"), "{s}");
}

#[test]
fn show_libvirt_is_accepted_by_virt_xml_validate() {
    let validate = testutil::require_cmd!("virt-xml-validate");
    let (xsd, dir, _f) = setup();
    let o = drvdom(
        &xsd,
        &["show", "host.toml", "--format", "libvirt"],
        dir.path(),
    );
    assert!(o.status.success(), "{}", err(&o));
    let text = out(&o);
    let docs: Vec<&str> = text
        .split("\n\n")
        .filter(|d| !d.trim().is_empty())
        .collect();
    assert_eq!(docs.len(), 2, "{text}");
    assert!(
        docs[0].contains("<hostdev mode='subsystem' type='pci'"),
        "{}",
        docs[0]
    );
    assert!(
        docs[1].contains("<backenddomain name='netdd'/>"),
        "{}",
        docs[1]
    );
    assert!(docs[1].contains("<interface type='bridge'>"), "{}", docs[1]);
    for (i, d) in docs.iter().enumerate() {
        let f = dir.path().join(format!("dom{i}.xml"));
        std::fs::write(&f, d).unwrap();
        let v = Command::new(&validate)
            .arg(&f)
            .arg("domain")
            .output()
            .unwrap();
        assert!(
            v.status.success(),
            "virt-xml-validate refused:\n{d}\n{}{}",
            out(&v),
            err(&v)
        );
    }
}
