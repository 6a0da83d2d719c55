use super::*;
use proptest::prelude::*;

const SEED: &str = r#"
version = 1

[[driver_domain]]
name = "netdd"
config = "netdd.cfg"
nics = ["03:00.0"]

[[driver_domain.bridge]]
name = "xenbr0"
uplink = "0000:03:00.0"

[[driver_domain.bridge]]
name = "inner"
mtu = 9000

[[guest]]
name = "web"

[[guest.vif]]
backend = "netdd"
ip = ["192.0.2.10/24"]

[[guest.vif]]
backend = "netdd"
bridge = "inner"
mac = "00:16:3e:12:34:56"
mtu = 9000

[[guest]]
name = "db"
[[guest.vif]]
backend = "dom0"
"#;

fn parse(s: &str) -> std::result::Result<Loaded, Vec<Diagnostic>> {
    parse_str(s, "host.toml", None, &LoadOptions::default())
}

fn errors(s: &str) -> Vec<Diagnostic> {
    match parse(s) {
        Ok(l) => panic!("accepted: {:?}", l.topology),
        Err(d) => d,
    }
}

fn codes(s: &str) -> Vec<&'static str> {
    errors(s)
        .into_iter()
        .filter(Diagnostic::is_error)
        .filter_map(|d| d.code)
        .collect()
}

fn with(extra: &str) -> String {
    format!("{SEED}{extra}")
}

#[test]
fn parses_the_seed_with_defaults_resolved() {
    let l = parse(SEED).unwrap();
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    let t = l.topology;
    assert_eq!(t.driver_domains.len(), 1);
    let dd = &t.driver_domains[0];
    assert_eq!(dd.nics, vec!["0000:03:00.0".parse::<Bdf>().unwrap()]);
    assert_eq!(dd.config.as_deref(), Some(Path::new("netdd.cfg")));
    assert_eq!(dd.bridges[0].uplink, Some(Uplink::Nic(dd.nics[0])));
    assert_eq!(dd.bridges[1].uplink, None);
    assert_eq!(dd.bridges[1].mtu, Some(9000));
    let web = &t.guests[0];
    assert_eq!(web.vifs[0].devid, DevId(0));
    assert_eq!(web.vifs[1].devid, DevId(1));
    assert_eq!(
        web.vifs[0].bridge.as_deref(),
        Some("xenbr0"),
        "first bridge"
    );
    assert_eq!(web.vifs[0].mac, default_mac("web", 0));
    assert_eq!(web.vifs[0].mac, MacAddr::derived_xen(b"web/0"));
    assert!(
        !web.vifs[0].trusted,
        "untrusted when the backend is a driver domain"
    );
    assert_eq!(web.vifs[1].mac.to_string(), "00:16:3e:12:34:56");
    assert_eq!(web.vifs[1].mtu, Some(9000));
    let db = &t.guests[1];
    assert!(db.vifs[0].trusted, "dom0 backend: trusted by default");
    assert_eq!(db.vifs[0].bridge.as_deref(), Some("xenbr0"));
}

#[test]
fn default_macs_are_stable() {
    // Fixed forever: a host keeps its MACs across drvdom versions.
    assert_eq!(default_mac("web", 0).to_string(), "00:16:3e:01:31:2c");
}

#[test]
fn config_is_relative_to_the_file() {
    let l = parse_str(
        SEED,
        "x/host.toml",
        Some(Path::new("/etc/drvdom")),
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(
        l.topology.driver_domains[0].config.as_deref(),
        Some(Path::new("/etc/drvdom/netdd.cfg"))
    );
}

#[test]
fn unknown_key_is_an_error_at_its_position_with_a_hint() {
    let src = "version = 1\n[[driver_domain]]\nname = \"dd\"\nnic = [\"03:00.0\"]\n";
    let d = errors(src);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].code, Some("TOPO-UNKNOWN-KEY"));
    assert_eq!((d[0].line, d[0].column), (4, 1));
    assert!(
        d[0].message.contains("did you mean `nics`"),
        "{}",
        d[0].message
    );
    let r = d[0].render(Some(src.as_bytes()));
    assert!(
        r.starts_with("error[TOPO-UNKNOWN-KEY]: unknown key `nic`"),
        "{r}"
    );
    assert!(r.contains("--> host.toml:4:1"), "{r}");
    assert!(r.contains("4 | nic = [\"03:00.0\"]\n"), "{r}");
    assert!(r.contains("  | ^^^\n"), "{r}");
}

#[test]
fn diagnostics_serialize_with_code_and_position() {
    let d = errors("version = 2\n");
    let j = serde_json::to_value(&d).unwrap();
    assert_eq!(j[0]["code"], "TOPO-VERSION-UNSUPPORTED");
    assert_eq!(j[0]["line"], 1);
    assert_eq!(j[0]["column"], 11);
    assert_eq!(j[0]["severity"], "error");
    assert_eq!(j[0]["file"], "host.toml");
}

#[test]
fn version_missing_or_unsupported() {
    assert_eq!(codes("[[guest]]\nname = \"a\"\n"), ["TOPO-VERSION-MISSING"]);
    assert_eq!(codes("version = 7\n"), ["TOPO-VERSION-UNSUPPORTED"]);
    assert_eq!(codes("version = \"1\"\n"), ["TOPO-WRONG-TYPE"]);
    let d = errors("version = 7\n");
    assert!(d[0].message.contains("reads 1"), "{}", d[0].message);
}

#[test]
fn toml_syntax_errors_are_placed() {
    let d = errors("version = 1\n[[guest]\nname = \"a\"\n");
    assert_eq!(d[0].code, Some("TOPO-SYNTAX"));
    assert_eq!(d[0].line, 2, "{d:?}");
}

#[test]
fn wrong_types() {
    assert_eq!(
        codes("version = 1\n[[driver_domain]]\nname = 5\n"),
        ["TOPO-WRONG-TYPE"]
    );
    assert_eq!(
        codes("version = 1\n[[driver_domain]]\nname = \"d\"\npermissive = \"yes\"\n"),
        ["TOPO-WRONG-TYPE"]
    );
    assert_eq!(
        codes("version = 1\n[[driver_domain]]\nname = \"d\"\nnics = \"03:00.0\"\n"),
        ["TOPO-WRONG-TYPE"]
    );
    assert_eq!(codes("version = 1\nguest = 3\n"), ["TOPO-WRONG-TYPE"]);
    let d = errors("version = 1\n[[driver_domain]]\nname = 5\n");
    assert_eq!(d[0].message, "`name` must be a string, not an integer");
}

#[test]
fn missing_required_keys() {
    assert_eq!(codes("version = 1\n[[guest]]\n"), ["TOPO-MISSING-KEY"]);
    assert_eq!(
        codes("version = 1\n[[guest]]\nname = \"g\"\n[[guest.vif]]\nmac = \"00:16:3e:00:00:01\"\n"),
        ["TOPO-MISSING-KEY"]
    );
}

#[test]
fn bad_names_bdfs_macs_ips_mtus() {
    assert_eq!(
        codes("version = 1\n[[guest]]\nname = \"a b\"\n"),
        ["TOPO-BAD-NAME"]
    );
    assert_eq!(
        codes("version = 1\n[[guest]]\nname = \"123\"\n"),
        ["TOPO-BAD-NAME"]
    );
    assert_eq!(
        codes("version = 1\n[[guest]]\nname = \"dom0\"\n"),
        ["TOPO-BAD-NAME"]
    );
    assert_eq!(
        codes("version = 1\n[[driver_domain]]\nname = \"d\"\nnics = [\"03:20.0\"]\n"),
        ["TOPO-BAD-BDF"]
    );
    assert_eq!(
        codes(&with(
            "[[guest]]\nname = \"x\"\n[[guest.vif]]\nbackend = \"netdd\"\nmac = \"00:16:3e:1:2:3\"\n"
        )),
        ["TOPO-BAD-MAC"]
    );
    assert_eq!(
        codes(&with(
            "[[guest]]\nname = \"x\"\n[[guest.vif]]\nbackend = \"netdd\"\nip = [\"10.0.0.300/24\"]\n"
        )),
        ["TOPO-BAD-IP"]
    );
    assert_eq!(
        codes(&with(
            "[[guest]]\nname = \"x\"\n[[guest.vif]]\nbackend = \"netdd\"\nip = [\"10.0.0.3\"]\n"
        )),
        ["TOPO-BAD-IP"]
    );
    assert_eq!(
        codes(&with(
            "[[guest]]\nname = \"x\"\n[[guest.vif]]\nbackend = \"netdd\"\nmtu = 70000\n"
        )),
        ["TOPO-BAD-MTU"]
    );
    assert_eq!(
        codes(&with(
            "[[guest]]\nname = \"x\"\n[[guest.vif]]\nbackend = \"netdd\"\nmode = \"nat\"\n"
        )),
        ["TOPO-BAD-VALUE"]
    );
}

#[test]
fn duplicate_names_and_shared_nics() {
    let d = errors(&with("[[guest]]\nname = \"netdd\"\n"));
    assert_eq!(d[0].code, Some("TOPO-DUPLICATE-NAME"));
    assert!(d[0].message.contains("first at line 5"), "{}", d[0].message);
    assert_eq!(
        codes(&with(
            "[[driver_domain]]\nname = \"dd2\"\nnics = [\"0000:03:00.0\"]\n"
        )),
        ["TOPO-NIC-SHARED"]
    );
    assert_eq!(
        codes("version = 1\n[[driver_domain]]\nname = \"d\"\nnics = [\"03:00.0\", \"0:3:0.0\"]\n"),
        ["TOPO-NIC-SHARED"]
    );
}

#[test]
fn uplinks() {
    let base = "version = 1\n[[driver_domain]]\nname = \"d\"\nnics = [\"03:00.0\"]\n";
    assert_eq!(
        codes(&format!(
            "{base}[[driver_domain.bridge]]\nname = \"b\"\nuplink = \"04:00.0\"\n"
        )),
        ["TOPO-BAD-UPLINK"]
    );
    assert_eq!(
        codes(&format!(
            "{base}[[driver_domain.bridge]]\nname = \"b\"\nuplink = \"not an if\"\n"
        )),
        ["TOPO-BAD-UPLINK"]
    );
    assert_eq!(
        codes(&format!(
            "{base}[[driver_domain.bridge]]\nname = \"b\"\nuplink = \"03:00.0\"\n[[driver_domain.bridge]]\nname = \"c\"\nuplink = \"03:00.0\"\n"
        )),
        ["TOPO-UPLINK-SHARED"]
    );
    assert_eq!(
        codes(&format!(
            "{base}[[driver_domain.bridge]]\nname = \"b\"\n[[driver_domain.bridge]]\nname = \"b\"\n"
        )),
        ["TOPO-DUPLICATE-BRIDGE"]
    );
    let ok = parse(&format!(
        "{base}[[driver_domain.bridge]]\nname = \"b\"\nuplink = \"eth1\"\n"
    ))
    .unwrap();
    assert_eq!(
        ok.topology.driver_domains[0].bridges[0].uplink,
        Some(Uplink::Iface("eth1".into()))
    );
}

#[test]
fn backends_and_bridges_must_exist() {
    let d = errors(&with(
        "[[guest]]\nname = \"x\"\n[[guest.vif]]\nbackend = \"nosuch\"\n",
    ));
    assert_eq!(d[0].code, Some("TOPO-UNKNOWN-BACKEND"));
    assert!(
        d[0].message.contains("known: netdd, dom0"),
        "{}",
        d[0].message
    );
    let d = errors(&with(
        "[[guest]]\nname = \"x\"\n[[guest.vif]]\nbackend = \"netdd\"\nbridge = \"xenbr9\"\n",
    ));
    assert_eq!(d[0].code, Some("TOPO-UNKNOWN-BRIDGE"));
    assert!(
        d[0].message.contains("its bridges: xenbr0, inner"),
        "{}",
        d[0].message
    );
    assert_eq!(
        codes(
            "version = 1\n[[driver_domain]]\nname = \"d\"\n[[guest]]\nname = \"g\"\n[[guest.vif]]\nbackend = \"d\"\n"
        ),
        ["TOPO-NO-BRIDGE"]
    );
}

#[test]
fn layer2_hygiene_is_on_unless_relaxed_per_vif() {
    let l = parse(SEED).unwrap();
    assert!(l.topology.guests[0].vifs.iter().all(|v| v.l2_hygiene));
    let l = parse(&with(
        "[[guest]]\nname = \"rt\"\n[[guest.vif]]\nbackend = \"netdd\"\nl2_hygiene = false\n\
         [[guest.vif]]\nbackend = \"netdd\"\nl2_hygiene = true\n",
    ))
    .unwrap();
    let rt = &l.topology.guests[2];
    assert!(!rt.vifs[0].l2_hygiene);
    assert!(rt.vifs[1].l2_hygiene);
    assert_eq!(
        codes(&with(
            "[[guest]]\nname = \"x\"\n[[guest.vif]]\nbackend = \"netdd\"\nl2_hygiene = \"no\"\n"
        )),
        ["TOPO-WRONG-TYPE"]
    );
    // The relaxed setting reaches the backend; the default writes nothing.
    let cfg = crate::apply::vif_config(&rt.vifs[0], xentypes::DomId(1));
    assert_eq!(cfg.l2_hygiene, Some(false));
    let cfg = crate::apply::vif_config(&rt.vifs[1], xentypes::DomId(1));
    assert_eq!(cfg.l2_hygiene, None);
}

#[test]
fn route_mode_rules() {
    assert_eq!(
        codes(&with(
            "[[guest]]\nname = \"x\"\n[[guest.vif]]\nbackend = \"netdd\"\nmode = \"route\"\n"
        )),
        ["TOPO-ROUTE-NEEDS-IP"]
    );
    assert_eq!(
        codes(&with(
            "[[guest]]\nname = \"x\"\n[[guest.vif]]\nbackend = \"netdd\"\nmode = \"route\"\nbridge = \"xenbr0\"\nip = [\"10.1.1.1/32\"]\n"
        )),
        ["TOPO-ROUTE-BRIDGE"]
    );
    let l = parse(&with(
        "[[guest]]\nname = \"x\"\n[[guest.vif]]\nbackend = \"netdd\"\nmode = \"route\"\nip = [\"10.1.1.1/32\"]\n",
    ))
    .unwrap();
    assert_eq!(l.topology.guests[2].vifs[0].bridge, None);
}

#[test]
fn macs_duplicate_multicast_foreign() {
    let d = errors(&with(
        "[[guest]]\nname = \"x\"\n[[guest.vif]]\nbackend = \"netdd\"\nmac = \"00:16:3e:12:34:56\"\n",
    ));
    assert_eq!(d[0].code, Some("TOPO-DUPLICATE-MAC"));
    assert!(d[0].message.contains("web/1"), "{}", d[0].message);
    // A derived MAC taken explicitly by another vif.
    let derived = default_mac("web", 0);
    let d = errors(&with(&format!(
        "[[guest]]\nname = \"x\"\n[[guest.vif]]\nbackend = \"netdd\"\nmac = \"{derived}\"\n"
    )));
    assert_eq!(d[0].code, Some("TOPO-DUPLICATE-MAC"));
    assert!(d[0].message.contains("web/0 (derived)"), "{}", d[0].message);
    assert_eq!(
        codes(&with(
            "[[guest]]\nname = \"x\"\n[[guest.vif]]\nbackend = \"netdd\"\nmac = \"01:16:3e:00:00:01\"\n"
        )),
        ["TOPO-MULTICAST-MAC"]
    );
    let l = parse(&with(
        "[[guest]]\nname = \"x\"\n[[guest.vif]]\nbackend = \"netdd\"\nmac = \"52:54:00:00:00:01\"\n",
    ))
    .unwrap();
    assert_eq!(l.warnings.len(), 1);
    assert_eq!(l.warnings[0].code, Some("TOPO-FOREIGN-MAC"));
    assert!(!l.warnings[0].is_error());
}

#[test]
fn duplicate_addresses() {
    let d = errors(&with(
        "[[guest]]\nname = \"x\"\n[[guest.vif]]\nbackend = \"netdd\"\nip = [\"192.0.2.10/25\"]\n",
    ));
    assert_eq!(d[0].code, Some("TOPO-DUPLICATE-IP"));
    assert!(d[0].message.contains("web/0"), "{}", d[0].message);
}

#[test]
fn every_error_is_reported_in_file_order() {
    let src =
        "version = 1\n[[guest]]\nname = \"a b\"\ncolour = 1\n[[guest.vif]]\nbackend = \"none\"\n";
    let d = errors(src);
    let c: Vec<_> = d.iter().map(|d| d.code.unwrap()).collect();
    assert_eq!(c, ["TOPO-BAD-NAME", "TOPO-UNKNOWN-KEY"], "{d:?}");
    assert!(d.windows(2).all(|w| w[0].line <= w[1].line));
}

#[test]
fn real_host_requires_existing_configs() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LoadOptions::new(true);
    let d = parse_str(SEED, "h.toml", Some(dir.path()), &opts).unwrap_err();
    let c: Vec<_> = d.iter().filter_map(|d| d.code).collect();
    assert_eq!(
        c,
        [
            "TOPO-CONFIG-NOT-FOUND",
            "TOPO-CONFIG-MISSING",
            "TOPO-CONFIG-MISSING"
        ],
        "{d:?}"
    );
    std::fs::write(dir.path().join("netdd.cfg"), "name = \"netdd\"\n").unwrap();
    let src = SEED
        .replace("name = \"web\"\n", "name = \"web\"\nconfig = \"web.cfg\"\n")
        .replace(
            "name = \"db\"\n",
            "name = \"db\"\nconfig = \"/nonexistent/db.cfg\"\n",
        );
    std::fs::write(dir.path().join("web.cfg"), "").unwrap();
    let d = parse_str(&src, "h.toml", Some(dir.path()), &opts).unwrap_err();
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].code, Some("TOPO-CONFIG-NOT-FOUND"));
}

#[test]
fn load_reads_a_file_and_reports_errors_with_its_text() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("host.toml");
    std::fs::write(&p, "version = 1\nbogus = true\n").unwrap();
    match load(&p, &LoadOptions::default()) {
        Err(Error::HostFile {
            diagnostics,
            source_text,
            ..
        }) => {
            assert_eq!(diagnostics[0].line, 2);
            assert!(source_text.contains("bogus"));
        }
        other => panic!("{other:?}"),
    }
    std::fs::write(&p, SEED).unwrap();
    let l = load(&p, &LoadOptions::default()).unwrap();
    assert_eq!(l.topology.source.as_deref(), Some(p.as_path()));
    assert!(matches!(
        load(&dir.path().join("nope.toml"), &LoadOptions::default()),
        Err(Error::ReadFile { .. })
    ));
}

proptest! {
    #[test]
    fn never_panics_on_any_text(s in "\\PC{0,300}") {
        let _ = parse(&s);
    }

    #[test]
    fn never_panics_on_near_valid_files(
        cut in 0usize..SEED.len(),
        insert in "[\\[\\]=\"a-z0-9 .:\n]{0,12}",
    ) {
        let mut s = SEED.to_string();
        let cut = (0..=cut).rev().find(|c| s.is_char_boundary(*c)).unwrap_or(0);
        s.insert_str(cut, &insert);
        if let Err(d) = parse(&s) {
            prop_assert!(d.iter().any(Diagnostic::is_error));
            for x in &d {
                prop_assert!(x.code.is_some_and(|c| c.starts_with("TOPO-")));
                prop_assert!(x.line >= 1 || x.code == Some("TOPO-VERSION-MISSING"));
            }
        }
    }

    #[test]
    fn generated_hosts_parse_back(n_dd in 1usize..4, n_guests in 0usize..12, vifs in 1usize..3) {
        let mut s = String::from("version = 1\n");
        for d in 0..n_dd {
            s.push_str(&format!("[[driver_domain]]\nname = \"dd{d}\"\nnics = [\"0000:0{d}:00.0\"]\n"));
            s.push_str(&format!("[[driver_domain.bridge]]\nname = \"br{d}\"\nuplink = \"0{d}:00.0\"\n"));
        }
        for g in 0..n_guests {
            s.push_str(&format!("[[guest]]\nname = \"g{g}\"\n"));
            for v in 0..vifs {
                s.push_str(&format!("[[guest.vif]]\nbackend = \"dd{}\"\nip = [\"10.{v}.{g}.1/16\"]\n", (g + v) % n_dd));
            }
        }
        let t = parse(&s).map_err(|d| TestCaseError::fail(format!("{d:?}")))?.topology;
        prop_assert_eq!(t.driver_domains.len(), n_dd);
        prop_assert_eq!(t.guests.len(), n_guests);
        let mut macs: Vec<_> = t.guests.iter().flat_map(|g| g.vifs.iter().map(|v| v.mac)).collect();
        let n = macs.len();
        macs.sort();
        macs.dedup();
        prop_assert_eq!(macs.len(), n, "derived MACs are distinct");
    }
}
