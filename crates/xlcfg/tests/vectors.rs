//! Runs every test vector recorded from the reference implementation
//! (`tests/vectors/*.json`, form documented in its README.md). Set
//! `XLCFG_VECTORS_DIR` to run another directory of vectors in the same form
//! (for instance the real-world set, whose files.json has the same shape).

use std::path::{Path, PathBuf};

use serde_json::{Map, Value as J, json};
use xlcfg::{
    Action, DiskFormat, Document, DomainConfig, DomainType, Error, Kind, NicType, Severity, Value,
};

fn vectors_dir() -> PathBuf {
    match std::env::var_os("XLCFG_VECTORS_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors"),
    }
}

fn load(dir: &Path, name: &str) -> Option<Vec<J>> {
    let p = dir.join(name);
    let text = std::fs::read_to_string(&p).ok()?;
    let v: J = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    Some(
        v.as_array()
            .unwrap_or_else(|| panic!("{}: not an array", p.display()))
            .clone(),
    )
}

fn to_json(v: &Value) -> J {
    match v {
        Value::Str(s) => J::String(s.clone()),
        Value::List(items) => J::Array(items.iter().map(to_json).collect()),
    }
}

/// The reference prints `line - 1` for errors whose token is a newline
/// (SPEC.md §1.7): we report the right line, so expect one more there.
fn expected_error_line(e: &J) -> i64 {
    let line = e["line"].as_i64().unwrap_or(-1);
    let msg = e["message"].as_str().unwrap_or("");
    if msg.contains("near <newline>") || msg.contains("near `#") && e["kind"] == "syntax" {
        line + 1
    } else {
        line
    }
}

thread_local! {
    /// Differences in the *later* errors of a failing file (the first error's
    /// kind and line must match; after it, the reference's bison recovery is
    /// only approximated). Reported, not failed.
    static REPORT_DIFFS: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Every error line the reference printed (`<src>:N: config parsing error
/// near …`) against ours, with the newline-token rule applied.
fn compare_report(report: &[String], src: &str, diags: &[xlcfg::Diagnostic]) -> Result<(), String> {
    let prefix = format!("{src}:");
    let want: Vec<i64> = report
        .iter()
        .filter(|l| l.starts_with(&prefix) && l.contains("config parsing error"))
        .filter_map(|l| {
            let n: i64 = l[prefix.len()..].split(':').next()?.parse().ok()?;
            let at_newline =
                l.contains("near <newline>") || l.contains("near `#") && l.contains("syntax error");
            Some(if at_newline { n + 1 } else { n })
        })
        .collect();
    let got: Vec<i64> = diags
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.line as i64)
        .collect();
    if want != got {
        return Err(format!("error lines {got:?}, reference printed {want:?}"));
    }
    Ok(())
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Lexical => "lexical",
        Kind::Syntax => "syntax",
        Kind::Escape => "escape",
        Kind::TypeMismatch => "type_mismatch",
        _ => "other",
    }
}

fn run_syntax(v: &J) -> Result<(), String> {
    let input = v["input"].as_str().ok_or("no input")?;
    let expect = &v["expect"];
    let parsed = Document::parse_str(input, "config");
    if let Some(err) = expect.get("error") {
        let diags = match parsed {
            Ok(_) => return Err("accepted, reference rejects".into()),
            Err(Error::Parse { diagnostics, .. }) => diagnostics,
            Err(e) => return Err(format!("unexpected error {e}")),
        };
        let first = diags
            .iter()
            .find(|d| d.severity == Severity::Error)
            .ok_or("no error diagnostic")?;
        let want_kind = err["kind"].as_str().unwrap_or("");
        if kind_name(first.kind) != want_kind {
            return Err(format!(
                "kind {:?}, want {want_kind} ({})",
                first.kind, first.message
            ));
        }
        let want_line = expected_error_line(err);
        if first.line as i64 != want_line {
            return Err(format!("line {}, want {want_line}", first.line));
        }
        let report: Vec<String> = err["report"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l.as_str().map(str::to_owned))
            .collect();
        if let Err(e) = compare_report(&report, "config", &diags) {
            REPORT_DIFFS.with(|d| d.borrow_mut().push(format!("{}: {e}", v["name"])));
        }
        return Ok(());
    }
    let doc = parsed
        .map_err(|e| format!("rejected, reference accepts: {e:?}"))?
        .document;
    if doc.to_bytes() != input.as_bytes() {
        return Err("write(parse(x)) != x".into());
    }
    let settings = doc.settings().map_err(|e| e.to_string())?;
    let want = expect["settings"].as_object().ok_or("no settings")?;
    if settings.len() != want.len() {
        return Err(format!("{} keys, want {}", settings.len(), want.len()));
    }
    for (key, w) in want {
        let s = settings
            .get(key)
            .ok_or_else(|| format!("missing key {key}"))?;
        if s.op.as_str() != w["op"].as_str().unwrap_or("") {
            return Err(format!("{key}: op {}", s.op.as_str()));
        }
        if s.line as i64 != w["line"].as_i64().unwrap_or(-1) {
            return Err(format!("{key}: line {}", s.line));
        }
        if to_json(&s.value) != w["value"] {
            return Err(format!("{key}: value {:?}", s.value));
        }
        let got = settings.long(key);
        if let Some(n) = w.get("long") {
            if got != Ok(Some(n.as_i64().unwrap_or(i64::MIN))) {
                return Err(format!("{key}: long {got:?}, want {n}"));
            }
        }
        if let Some(m) = w.get("long_error") {
            match got {
                Err(warn) => {
                    let m = m.as_str().unwrap_or("");
                    if !m.contains(&warn.message) {
                        return Err(format!(
                            "{key}: long warning `{}`, want `{m}`",
                            warn.message
                        ));
                    }
                }
                Ok(v) => return Err(format!("{key}: long {v:?}, want warning")),
            }
        }
    }
    Ok(())
}

fn opt_str(m: &mut Map<String, J>, k: &str, v: &Option<String>) {
    if let Some(v) = v {
        m.insert(k.into(), J::String(v.clone()));
    }
}

fn tf(b: bool) -> J {
    J::String(if b { "True" } else { "False" }.into())
}

fn nic_json(n: &xlcfg::Nic) -> J {
    let s = &n.spec;
    let mut m = Map::new();
    m.insert("devid".into(), json!(n.devid));
    if let Some(mac) = s.mac.filter(|m| !m.is_zero()) {
        m.insert("mac".into(), J::String(mac.to_string()));
    }
    opt_str(&mut m, "bridge", &s.bridge);
    opt_str(&mut m, "backend_domname", &s.backend);
    opt_str(&mut m, "script", &s.script);
    opt_str(&mut m, "ip", &s.ip);
    opt_str(&mut m, "ifname", &s.vifname);
    opt_str(&mut m, "gatewaydev", &s.gatewaydev);
    opt_str(&mut m, "model", &s.model);
    opt_str(&mut m, "coloft_forwarddev", &s.forwarddev);
    if let Some(t) = s.nictype {
        m.insert(
            "nictype".into(),
            json!(if t == NicType::Vif {
                "vif"
            } else {
                "vif_ioemu"
            }),
        );
    }
    if let Some(mtu) = s.mtu.filter(|m| *m != 0) {
        m.insert("mtu".into(), json!(mtu));
    }
    if let Some(r) = s.rate {
        m.insert(
            "rate_bytes_per_interval".into(),
            json!(r.bytes_per_interval()),
        );
        m.insert("rate_interval_usecs".into(), json!(r.interval_usecs));
    }
    if let Some(t) = s.trusted {
        m.insert("trusted".into(), tf(t));
    }
    for (k, v) in &s.colo {
        m.insert(k.clone(), J::String(v.clone()));
    }
    J::Object(m)
}

fn pci_json(p: &xlcfg::PciDevice) -> J {
    let mut m = Map::new();
    match &p.spec.target {
        xlcfg::PciTarget::Bdf(b) => {
            for (k, v) in [
                ("domain", b.bdf.domain()),
                ("bus", u32::from(b.bdf.bus())),
                ("dev", u32::from(b.bdf.device())),
            ] {
                if v != 0 {
                    m.insert(k.into(), json!(v));
                }
            }
            match b.func {
                xlcfg::Func::One(f) => {
                    if f != 0 {
                        m.insert("func".into(), json!(f));
                    }
                    m.insert("vfunc_mask".into(), json!(1));
                }
                xlcfg::Func::All => {
                    m.insert("vfunc_mask".into(), json!(4294967295u32));
                }
            }
        }
        xlcfg::PciTarget::Name(n) => {
            m.insert("name".into(), J::String(n.clone()));
        }
    }
    if let Some(v) = p.spec.vslot.filter(|v| *v != 0) {
        m.insert("vdevfn".into(), json!(u32::from(v) << 3));
    }
    for (k, v) in [
        ("permissive", p.effective_permissive),
        ("msitranslate", p.effective_msitranslate),
        ("seize", p.effective_seize),
        ("power_mgmt", p.effective_power_mgmt),
    ] {
        if v {
            m.insert(k.into(), J::Bool(true));
        }
    }
    m.insert("rdm_policy".into(), json!(p.effective_rdm_policy.as_str()));
    J::Object(m)
}

fn disk_json(d: &xlcfg::Disk) -> J {
    let s = &d.spec;
    let mut m = Map::new();
    opt_str(&mut m, "pdev_path", &s.target);
    m.insert("vdev".into(), J::String(s.vdev.clone()));
    opt_str(&mut m, "backend_domname", &s.backend);
    if let Some(b) = s.backendtype {
        m.insert("backend".into(), json!(b.as_str()));
    }
    m.insert("format".into(), json!(s.format.as_str()));
    opt_str(&mut m, "script", &s.script);
    if s.removable() {
        m.insert("removable".into(), json!(1));
    }
    if s.readwrite {
        m.insert("readwrite".into(), json!(1));
    }
    if s.is_cdrom {
        m.insert("is_cdrom".into(), json!(1));
    }
    if s.direct_io_safe {
        m.insert("direct_io_safe".into(), J::Bool(true));
    }
    if let Some(b) = s.discard {
        m.insert("discard_enable".into(), tf(b));
    }
    if let Some(sp) = s.specification {
        m.insert(
            "specification".into(),
            json!(if sp == xlcfg::DiskSpecification::Xen {
                "xen"
            } else {
                "virtio"
            }),
        );
    }
    if let Some(b) = s.colo {
        m.insert("colo_enable".into(), tf(b));
    }
    opt_str(&mut m, "colo_host", &s.colo_host);
    if let Some(p) = s.colo_port {
        m.insert("colo_port".into(), json!(p));
    }
    opt_str(&mut m, "colo_export", &s.colo_export);
    opt_str(&mut m, "active_disk", &s.active_disk);
    opt_str(&mut m, "hidden_disk", &s.hidden_disk);
    let _ = DiskFormat::Raw;
    J::Object(m)
}

/// Phrases of xl warnings this crate reproduces; other warnings in the
/// vectors come from keys outside SPEC.md's scope.
const WARNING_PHRASES: &[&str] = &[
    "Invalid parameter `",
    "unrecognized argument",
    "netdev parameter is deprecated",
    "accel parameter",
    "ignoring root= and extra=",
    "can't use += with numbers",
    "is a list but should be",
    "is not a valid number",
];

fn check_warnings(expect: &J, got: &[xlcfg::Diagnostic]) -> Result<(), String> {
    for w in expect["warnings"].as_array().into_iter().flatten() {
        let w = w.as_str().unwrap_or("");
        let Some(phrase) = WARNING_PHRASES.iter().find(|p| w.contains(*p)) else {
            continue;
        };
        let found = got.iter().any(|d| {
            d.severity == Severity::Warning && w.contains(d.message.trim_start_matches("vif: "))
        }) || got.iter().any(|d| d.message.contains(phrase));
        if !found {
            return Err(format!(
                "missing warning `{w}`; got {:?}",
                got.iter().map(|d| &d.message).collect::<Vec<_>>()
            ));
        }
    }
    Ok(())
}

/// Fatal `xl create` messages from keys outside SPEC.md's scope (the
/// real-world set uses them); such vectors are reported, not failed.
const OUT_OF_SCOPE: &[&str] = &["in vdispl spec", "Invalid pcpu range"];

fn interpret(input: &str) -> Result<xlcfg::Interpreted, String> {
    let doc = Document::parse_str(input, "CONFIG")
        .map_err(|e| format!("parse: {e}"))?
        .document;
    DomainConfig::from_document(&doc, "CONFIG", input.as_bytes()).map_err(|d| {
        d.iter()
            .filter(|d| d.is_error())
            .map(|d| d.message.clone())
            .collect::<Vec<_>>()
            .join("; ")
    })
}

fn run_device(kind: &str, v: &J) -> Result<(), String> {
    let input = v["input"].as_str().ok_or("no input")?;
    let expect = &v["expect"];
    let escaped = input.replace('\\', "\\\\").replace('\'', "\\'");
    let wrapper = format!(
        "name = \"vectest\"\ntype = \"pv\"\nmemory = 256\nkernel = \"/boot/vmlinuz\"\n{kind} = [ '{escaped}' ]\n"
    );
    let direct_status = match kind {
        "vif" => xlcfg::VifSpec::parse(input).err(),
        "pci" => xlcfg::PciSpec::parse(input).err(),
        _ => xlcfg::DiskSpec::parse(input).err(),
    }
    .map(|e| match e {
        Error::Spec { exit_status, .. } => exit_status,
        _ => -1,
    });
    let got = interpret(&wrapper);
    if let Some(err) = expect.get("error") {
        if got.is_ok() {
            return Err("accepted, reference rejects".into());
        }
        let want = err["exit_status"].as_i64().unwrap_or(-2);
        if direct_status.map(i64::from) != Some(want) {
            return Err(format!("exit status {direct_status:?}, want {want}"));
        }
        return Ok(());
    }
    let got = got.map_err(|e| format!("rejected, reference accepts: {e}"))?;
    let c = &got.config;
    let devices: Vec<J> = match kind {
        "vif" => c.vifs.iter().map(nic_json).collect(),
        "pci" => c.pcis.iter().map(pci_json).collect(),
        _ => c.disks.iter().map(disk_json).collect(),
    };
    if J::Array(devices.clone()) != expect["devices"] {
        return Err(format!(
            "devices {}, want {}",
            J::Array(devices),
            expect["devices"]
        ));
    }
    if let Some(e) = expect.get("e820_host") {
        if tf(c.e820_host) != *e {
            return Err(format!("e820_host {}", c.e820_host));
        }
    }
    check_warnings(expect, &got.warnings)
}

fn action_json(a: Action) -> &'static str {
    match a {
        Action::Destroy => "destroy",
        Action::Restart => "restart",
        Action::RenameRestart => "restart_rename",
        Action::Preserve => "preserve",
        Action::CoredumpDestroy => "coredump_destroy",
        Action::CoredumpRestart => "coredump_restart",
        Action::SoftReset => "soft_reset",
    }
}

/// The part of libxl's domain_config this crate models.
fn project_expected(dc: &J, ty: &str) -> J {
    let mut m = Map::new();
    let ci = &dc["c_info"];
    for k in ["type", "name", "uuid", "driver_domain"] {
        if !ci[k].is_null() {
            m.insert(format!("c_info.{k}"), ci[k].clone());
        }
    }
    let bi = &dc["b_info"];
    let mut keys = vec!["max_memkb", "target_memkb", "max_vcpus", "avail_vcpus"];
    if ty != "hvm" {
        keys.extend(["kernel", "ramdisk", "cmdline", "bootloader"]);
    }
    for k in keys {
        if !bi[k].is_null() {
            m.insert(format!("b_info.{k}"), bi[k].clone());
        }
    }
    if !bi["type.pv"]["e820_host"].is_null() {
        m.insert("e820_host".into(), bi["type.pv"]["e820_host"].clone());
    }
    for k in [
        "nics",
        "disks",
        "pcidevs",
        "on_poweroff",
        "on_reboot",
        "on_watchdog",
        "on_crash",
        "on_soft_reset",
    ] {
        if !dc[k].is_null() {
            m.insert(k.into(), dc[k].clone());
        }
    }
    J::Object(m)
}

fn project_ours(c: &DomainConfig) -> J {
    let mut m = Map::new();
    let ty = c.domain_type.as_str();
    m.insert("c_info.type".into(), json!(ty));
    m.insert("c_info.name".into(), json!(c.name));
    if let Some(u) = &c.uuid {
        m.insert("c_info.uuid".into(), json!(u));
    }
    if let Some(d) = c.driver_domain {
        m.insert("c_info.driver_domain".into(), tf(d));
    }
    if let Some(mem) = c.memory {
        m.insert("b_info.target_memkb".into(), json!(mem * 1024));
    }
    if let Some(mx) = c.max_memkb() {
        m.insert("b_info.max_memkb".into(), json!(mx));
    }
    if let Some(mv) = c.maxvcpus.or(c.vcpus) {
        m.insert("b_info.max_vcpus".into(), json!(mv));
    }
    if let Some(v) = c.vcpus {
        m.insert(
            "b_info.avail_vcpus".into(),
            J::Array((0..v).map(|i| json!(i)).collect()),
        );
    }
    if c.domain_type != DomainType::Hvm {
        for (k, v) in [
            ("kernel", &c.kernel),
            ("ramdisk", &c.ramdisk),
            ("cmdline", &c.cmdline),
            ("bootloader", &c.bootloader),
        ] {
            if let Some(v) = v {
                m.insert(format!("b_info.{k}"), json!(v));
            }
        }
    }
    if c.e820_host {
        m.insert("e820_host".into(), json!("True"));
    }
    if !c.vifs.is_empty() {
        m.insert(
            "nics".into(),
            J::Array(c.vifs.iter().map(nic_json).collect()),
        );
    }
    if !c.disks.is_empty() {
        m.insert(
            "disks".into(),
            J::Array(c.disks.iter().map(disk_json).collect()),
        );
    }
    if !c.pcis.is_empty() {
        m.insert(
            "pcidevs".into(),
            J::Array(c.pcis.iter().map(pci_json).collect()),
        );
    }
    let a = &c.actions;
    let reboot = a.reboot.or(Some(Action::Restart));
    let soft = a.soft_reset.or(Some(Action::SoftReset));
    for (k, v) in [
        ("on_poweroff", a.poweroff),
        ("on_reboot", reboot),
        ("on_watchdog", a.watchdog),
        ("on_crash", a.crash),
        ("on_soft_reset", soft),
    ] {
        // libxl omits the default value, destroy.
        if let Some(v) = v.filter(|v| *v != Action::Destroy) {
            m.insert(k.into(), json!(action_json(v)));
        }
    }
    J::Object(m)
}

enum Outcome {
    Pass,
    OutOfScope(String),
}

/// Lossless write and a canonical form that keeps the settings.
fn check_round_trips(input: &str) -> Result<(), String> {
    let Ok(p) = Document::parse_str(input, "CONFIG") else {
        return Ok(());
    };
    if p.document.to_bytes() != input.as_bytes() {
        return Err("write(parse(x)) != x".into());
    }
    let canon = p.document.canonical();
    let back = Document::parse(&canon.to_bytes(), "CONFIG")
        .map_err(|e| format!("canonical form does not parse: {e}"))?;
    let (a, b) = (
        p.document.settings().map_err(|e| e.to_string())?,
        back.document.settings().map_err(|e| e.to_string())?,
    );
    if a.len() != b.len()
        || a.keys()
            .any(|k| a.get(k).map(|s| &s.value) != b.get(k).map(|s| &s.value))
    {
        return Err("canonical form changes the settings".into());
    }
    Ok(())
}

fn run_file(v: &J) -> Result<Outcome, String> {
    let input = v["input"].as_str().ok_or("no input")?;
    let expect = &v["expect"];
    check_round_trips(input)?;
    let got = interpret(input);
    if let Some(err) = expect.get("error") {
        let msg = err["message"].as_str().unwrap_or("");
        if let Err(Error::Parse { diagnostics, .. }) = Document::parse_str(input, "CONFIG") {
            let report: Vec<String> = msg.lines().map(str::to_owned).collect();
            if let Err(e) = compare_report(&report, "CONFIG", &diagnostics) {
                REPORT_DIFFS.with(|d| d.borrow_mut().push(format!("{}: {e}", v["name"])));
            }
        }
        if got.is_ok() {
            if let Some(p) = OUT_OF_SCOPE.iter().find(|p| msg.contains(*p)) {
                return Ok(Outcome::OutOfScope(format!(
                    "xl refuses it for a key outside our scope (`{p}`)"
                )));
            }
            return Err(format!("accepted, reference rejects: {msg}"));
        }
        return Ok(Outcome::Pass);
    }
    let got = got.map_err(|e| format!("rejected, reference accepts: {e}"))?;
    let dc = &expect["domain_config"];
    let ty = dc["c_info"]["type"].as_str().unwrap_or("");
    let want = project_expected(dc, ty);
    let ours = project_ours(&got.config);
    if want != ours {
        return Err(format!("\n  ours {ours}\n  want {want}"));
    }
    check_warnings(expect, &got.warnings)?;
    Ok(Outcome::Pass)
}

#[test]
fn every_vector_matches_the_reference() {
    run_dir(&vectors_dir());
}

/// The real-world files of the spec (40 configs from public repositories,
/// results recorded from the reference). They are not copied into this
/// repository (their README asks not to); this runs them where they are, or
/// from `XLCFG_REALWORLD_DIR`.
#[test]
fn real_world_files_match_the_reference() {
    let dir = match std::env::var_os("XLCFG_REALWORLD_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/spec/xlcfg/realworld"),
    };
    if !dir.join("files.json").is_file() {
        eprintln!(
            "SKIPPED real_world_files_match_the_reference: no files.json in {}",
            dir.display()
        );
        return;
    }
    run_dir(&dir);
}

#[allow(clippy::print_stderr)] // the test reports what it ran
fn run_dir(dir: &Path) {
    let mut failures = Vec::new();
    let mut ran = 0;
    let mut out_of_scope = Vec::new();
    for file in [
        "syntax.json",
        "vif.json",
        "pci.json",
        "disk.json",
        "files.json",
    ] {
        let Some(vectors) = load(dir, file) else {
            continue;
        };
        for v in &vectors {
            let name = v["name"].as_str().unwrap_or("?");
            ran += 1;
            let r = match file {
                "syntax.json" => run_syntax(v).map(|()| Outcome::Pass),
                "files.json" => run_file(v),
                f => run_device(f.trim_end_matches(".json"), v).map(|()| Outcome::Pass),
            };
            match r {
                Ok(Outcome::Pass) => {}
                Ok(Outcome::OutOfScope(why)) => out_of_scope.push(format!("{file}:{name}: {why}")),
                Err(e) => failures.push(format!("{file}:{name}: {e}")),
            }
        }
    }
    eprintln!(
        "{ran} vectors from {}, {} failed, {} out of scope",
        dir.display(),
        failures.len(),
        out_of_scope.len()
    );
    for o in &out_of_scope {
        eprintln!("  out of scope: {o}");
    }
    REPORT_DIFFS.with(|d| {
        for r in d.borrow_mut().drain(..) {
            eprintln!("  later errors differ: {r}");
        }
    });
    assert!(ran > 0, "no vectors found in {}", dir.display());
    assert!(
        failures.is_empty(),
        "{} failing vectors:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
