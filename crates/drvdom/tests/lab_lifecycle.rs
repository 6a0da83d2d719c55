//! Issue 13 on the simulated host: guests stay connected while their
//! driver domains restart (each in turn, then both at once), vifs move
//! between driver domains live (and back when the new one does not
//! connect), and the safety cases: a driver domain that never comes back,
//! a dead domain's home left behind (`--keep-home`), a guest destroyed
//! during a reconnect, the reconcile daemon SIGKILLed mid-way.
//!
//! Real processes throughout: the lab's xenstored, netbacks, netfronts,
//! agents and the `drvdom reconcile` daemon `lab up` starts in dom0; real
//! namespaces, bridges and ICMP. Every wait is on a condition with a
//! deadline.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers outside #[test] fns

mod lab_support;
mod schema_support;

use std::collections::BTreeMap;

use lab_support::TestLab;
use schema_support::assert_valid;
use serde_json::Value;
use xenstore::AsyncClient;

/// Two driver domains; `web` has a vif on each; `db` is on dd2 only and
/// `app` on dd1 only, so every guest has a peer through each driver
/// domain it uses.
const HOST: &str = r#"
version = 1

[[driver_domain]]
name = "dd1"
nics = ["0000:03:00.0"]

[[driver_domain.bridge]]
name = "xenbr0"
uplink = "0000:03:00.0"

[[driver_domain]]
name = "dd2"
nics = ["0000:05:00.0"]

[[driver_domain.bridge]]
name = "inner"

[[guest]]
name = "web"

[[guest.vif]]
backend = "dd1"
mac = "00:16:3e:4c:00:01"
ip = ["198.51.100.41/24"]

[[guest.vif]]
backend = "dd2"
bridge = "inner"
mac = "00:16:3e:4c:00:02"
ip = ["192.0.2.41/24"]

[[guest]]
name = "db"

[[guest.vif]]
backend = "dd2"
bridge = "inner"
mac = "00:16:3e:4c:00:03"
ip = ["192.0.2.42/24"]

[[guest]]
name = "app"

[[guest.vif]]
backend = "dd1"
mac = "00:16:3e:4c:00:04"
ip = ["198.51.100.43/24"]
"#;

/// (guest, devid, driver domain, bridge, mac) of every vif of [`HOST`].
const VIFS: &[(&str, u32, &str, &str, &str)] = &[
    ("web", 0, "dd1", "xenbr0", "00:16:3e:4c:00:01"),
    ("web", 1, "dd2", "inner", "00:16:3e:4c:00:02"),
    ("db", 0, "dd2", "inner", "00:16:3e:4c:00:03"),
    ("app", 0, "dd1", "xenbr0", "00:16:3e:4c:00:04"),
];

/// The outside host beyond dd1's NIC.
const OUTSIDE: &str = "198.51.100.254";

struct Lab {
    lab: TestLab,
    file: String,
    rt: tokio::runtime::Runtime,
    xs: AsyncClient,
}

impl Lab {
    fn up() -> Lab {
        let lab = TestLab::new();
        let file = lab.root.path().join("host.toml");
        std::fs::write(&file, HOST).unwrap();
        let file = file.to_str().unwrap().to_string();
        let v = lab.up_detached_with(&["--topology", &file]);
        lab_support::assert_all_pass(&v);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let xs = rt.block_on(AsyncClient::connect(lab.socket_of(0))).unwrap();
        let l = Lab { lab, file, rt, xs };
        // The daemon has seen every domain running before anything dies.
        l.wait_event("reconcile saw every domain running", |e| {
            e["kind"] == "domain" && e["domain"] == "app" && e["what"] == "running"
        });
        l
    }

    fn name(&self) -> &str {
        &self.lab.name
    }

    fn domid(&self, name: &str) -> Option<u16> {
        self.lab.state()["domains"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == name)
            .map(|d| u16::try_from(d["domid"].as_u64().unwrap()).unwrap())
    }

    /// `lab restart DOMAINS... [extra] --json`, validated: old → new domid.
    fn restart(&self, domains: &[&str], extra: &[&str]) -> BTreeMap<String, (u16, Option<u16>)> {
        let mut args = vec!["lab", "restart"];
        args.extend_from_slice(domains);
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--json", "--lab", self.name()]);
        let out = self.lab.ok(&args);
        assert_valid(&out, "drvdom/lab-restart/1");
        let v: Value = serde_json::from_str(&out).unwrap();
        let mut m = BTreeMap::new();
        for d in v["domains"].as_array().unwrap() {
            let old = u16::try_from(d["old_domid"].as_u64().unwrap()).unwrap();
            let new = d["new_domid"].as_u64().map(|n| u16::try_from(n).unwrap());
            if let Some(n) = new {
                assert_ne!(n, old, "{v:#}");
            }
            m.insert(d["domain"].as_str().unwrap().to_string(), (old, new));
        }
        assert_eq!(m.len(), domains.len(), "{v:#}");
        m
    }

    /// `lab status --json`'s vif `devid` of `guest`, if any.
    fn vif(&self, guest: &str, devid: u32) -> Option<Value> {
        let o = self
            .lab
            .run(&["lab", "status", "--json", "--lab", self.name()]);
        let v: Value = serde_json::from_slice(&o.stdout).ok()?;
        v["domains"]
            .as_array()?
            .iter()
            .find(|d| d["name"] == guest)?["vifs"]
            .as_array()?
            .iter()
            .find(|x| x["devid"] == devid)
            .cloned()
    }

    /// Wait until vif `devid` of `guest` is Connected on both ends, hotplug
    /// connected, toward `dd`'s current domid, on `bridge` there, with
    /// `mac`, and its port is on that bridge in `dd`.
    fn wait_connected(&self, guest: &str, devid: u32, dd: &str, bridge: &str, mac: &str) {
        let be = self.domid(dd).unwrap();
        let mut last = None;
        lab_support::wait(&format!("{guest}/{devid} Connected toward {dd}"), || {
            let v = self.vif(guest, devid);
            let ok = v.as_ref().is_some_and(|v| {
                v["frontend_state"] == "Connected"
                    && v["backend_state"] == "Connected"
                    && v["hotplug_status"] == "connected"
                    && v["backend"] == be
            });
            last = v;
            ok
        });
        let v = last.unwrap();
        assert_eq!(v["mac"], mac, "{v:#}");
        assert_eq!(v["bridge"], bridge, "{v:#}");
        let fe = self.domid(guest).unwrap();
        let port = format!("vif{fe}.{devid}");
        lab_support::wait(&format!("{port} on {bridge} in {dd}"), || {
            self.lab.bridge_ports(dd, bridge).contains(&port)
        });
        // The guest's interface carries the same MAC.
        let eth = self.lab.link(guest, &format!("eth{devid}")).unwrap();
        assert_eq!(eth.mac.as_deref(), Some(mac), "{eth:?}");
    }

    fn wait_all_connected(&self) {
        for (g, d, dd, br, mac) in VIFS {
            self.wait_connected(g, *d, dd, br, mac);
        }
    }

    /// Every guest reaches its peers through each driver domain.
    fn assert_pings(&self) {
        for (from, to) in [
            ("web", "192.0.2.42"),
            ("db", "192.0.2.41"),
            ("web", "198.51.100.43"),
            ("app", "198.51.100.41"),
            ("web", OUTSIDE),
            ("app", OUTSIDE),
        ] {
            assert!(self.lab.ping(from, to), "{from} -> {to}");
        }
    }

    /// `verify --lab L FILE` exits 0 (its JSON validated).
    fn assert_verify(&self) {
        let out = self
            .lab
            .run(&["verify", "--lab", self.name(), &self.file, "--json"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "verify failed: {text}");
        assert_valid(&text, "drvdom/verify/1");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["ok"], true, "{v:#}");
    }

    /// `events --json`, every line validated.
    fn events(&self) -> Vec<Value> {
        let out = self.lab.ok(&["events", "--json", "--lab", self.name()]);
        if out.trim().is_empty() {
            return Vec::new(); // the daemon has just created its journal
        }
        assert_valid(&out, "drvdom/event/1");
        out.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn wait_event(&self, what: &str, mut f: impl FnMut(&Value) -> bool) -> Value {
        let mut found = None;
        let journal = self.lab.dir().join("events.jsonl");
        lab_support::wait(&format!("event: {what}"), || {
            // The daemon creates its journal when it starts.
            if !journal.exists() {
                return false;
            }
            found = self.events().into_iter().find(&mut f);
            found.is_some()
        });
        found.unwrap()
    }

    /// `reconcile --status --json`, validated: (guest, devid) → entry.
    fn status(&self) -> BTreeMap<(String, u64), Value> {
        let out = self
            .lab
            .ok(&["reconcile", "--status", "--json", "--lab", self.name()]);
        assert_valid(&out, "drvdom/reconcile-status/1");
        let v: Value = serde_json::from_str(&out).unwrap();
        v["vifs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| {
                (
                    (
                        w["guest"].as_str().unwrap().to_string(),
                        w["devid"].as_u64().unwrap(),
                    ),
                    w.clone(),
                )
            })
            .collect()
    }

    fn ls(&self, dir: &str) -> Vec<String> {
        match self.rt.block_on(self.xs.directory(dir)) {
            Ok(v) => v,
            Err(e) if e.is_not_found() => Vec::new(),
            Err(e) => panic!("list {dir}: {e}"),
        }
    }

    fn read(&self, path: &str) -> Option<String> {
        self.rt
            .block_on(self.xs.read_opt(path))
            .unwrap()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    /// Every backend directory in any domain's home naming `fe` as its
    /// frontend: `(backend domid, kind, devid)`.
    fn backends_toward(&self, fe: u16) -> Vec<String> {
        let mut out = Vec::new();
        for be in self.ls("/local/domain") {
            for kind in self.ls(&format!("/local/domain/{be}/backend")) {
                for d in self.ls(&format!("/local/domain/{be}/backend/{kind}/{fe}")) {
                    out.push(format!("/local/domain/{be}/backend/{kind}/{fe}/{d}"));
                }
            }
        }
        out
    }

    /// No node of the dead domain `old` is left anywhere a domain given
    /// that domid later would inherit it, and no frontend points at it.
    fn assert_nothing_of(&self, old: u16) {
        assert!(self.read(&format!("/local/domain/{old}/name")).is_none());
        assert!(self.ls(&format!("/local/domain/{old}")).is_empty());
        assert!(self.ls(&format!("/libxl/{old}")).is_empty());
        assert_eq!(self.backends_toward(old), Vec::<String>::new());
        for fe in self.ls("/local/domain") {
            for d in self.ls(&format!("/local/domain/{fe}/device/vif")) {
                let be = self.read(&format!("/local/domain/{fe}/device/vif/{d}/backend-id"));
                assert_ne!(
                    be.as_deref(),
                    Some(old.to_string().as_str()),
                    "frontend {fe}/{d} still points at dead domain {old}"
                );
            }
        }
    }

    /// Each MAC is used by exactly one vif (frontend node and xl record)
    /// and each guest has one interface per vif: nothing stale that a
    /// re-attach would collide with ("MAC already exists").
    fn assert_macs_unique(&self) {
        let mut fe_macs = Vec::new();
        let mut libxl_macs = Vec::new();
        for fe in self.ls("/local/domain") {
            for d in self.ls(&format!("/local/domain/{fe}/device/vif")) {
                fe_macs.extend(self.read(&format!("/local/domain/{fe}/device/vif/{d}/mac")));
            }
            for d in self.ls(&format!("/libxl/{fe}/device/vif")) {
                let be = self.read(&format!("/libxl/{fe}/device/vif/{d}/backend"));
                if let Some(be) = be {
                    libxl_macs.extend(self.read(&format!("{be}/mac")));
                }
            }
        }
        for m in [&mut fe_macs, &mut libxl_macs] {
            m.sort();
        }
        let mut want: Vec<String> = VIFS.iter().map(|v| v.4.to_string()).collect();
        want.sort();
        assert_eq!(fe_macs, want, "frontend MACs");
        assert_eq!(libxl_macs, want, "MACs of xl's records' backends");
        for g in ["web", "db", "app"] {
            let eths = self
                .lab
                .links(g)
                .into_iter()
                .filter(|l| l.name.starts_with("eth"))
                .count();
            let n = VIFS.iter().filter(|v| v.0 == g).count();
            assert_eq!(eths, n, "{g}'s interfaces");
        }
    }

    /// The reconcile actions for vif `devid` of `guest` after its driver
    /// domain came back as `new`: cleanup, re-create toward it, reconnected.
    fn assert_reconciled(&self, guest: &str, devid: u32, dd: &str, old: u16, new: u16) {
        let dev = format!("vif/{devid}");
        let is = |e: &Value, what: &str| {
            e["kind"] == "action" && e["domain"] == guest && e["device"] == dev && e["what"] == what
        };
        self.wait_event(&format!("{guest} {dev} reconnected toward {new}"), |e| {
            is(e, "reconnected")
                && e["reason"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("toward {dd} (domain {new})"))
        });
        let evs = self.events();
        let cleanup = format!("its backend {dd} (domain {old}) is gone");
        assert!(
            evs.iter()
                .any(|e| is(e, "cleanup") && e["reason"].as_str().unwrap().contains(&cleanup)),
            "no cleanup of {guest} {dev} after {dd} ({old}) died"
        );
        let recreate = format!("{dd} is back as domain {new}");
        assert!(
            evs.iter()
                .any(|e| is(e, "re-create") && e["reason"].as_str().unwrap().contains(&recreate)),
            "no re-create of {guest} {dev} toward {new}"
        );
    }

    /// Everything is back: vifs, peers, verify, reconcile status.
    fn assert_all_back(&self) {
        self.wait_all_connected();
        self.assert_pings();
        self.assert_verify();
        self.assert_macs_unique();
        let st = self.status();
        for (g, d, dd, _, mac) in VIFS {
            let w = &st[&((*g).to_string(), u64::from(*d))];
            assert_eq!(w["backend"], *dd, "{w:#}");
            assert_eq!(w["mac"], *mac, "{w:#}");
            assert_eq!(w["backend_domid"], self.domid(dd).unwrap(), "{w:#}");
        }
        lab_support::wait("reconcile keeps every vif active", || {
            self.status().values().all(|w| w["phase"] == "active")
        });
    }

    fn pid_of(&self, role: &str) -> i32 {
        self.lab.pid_of(role)
    }
}

/// `drvdom events --follow`, killed if the test fails first.
struct Follower(std::process::Child);

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn signal(pid: i32, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig).unwrap();
}

#[test]
fn guests_reconnect_when_driver_domains_restart_in_turn_and_together() {
    let _bins = require_lab!();
    let l = Lab::up();
    l.assert_pings();
    // `events --follow --json` prints the history as it is written.
    let mut follow = Follower(
        l.lab
            .cmd()
            .args(["events", "--follow", "--json", "--lab", l.name()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stdout = follow.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut expected = 0;
    for round in [&["dd1"][..], &["dd2"][..], &["dd1", "dd2"][..]] {
        expected += VIFS.iter().filter(|v| round.contains(&v.2)).count();
        let r = l.restart(round, &[]);
        for (g, d, dd, _, _) in VIFS {
            if let Some((old, Some(new))) = r.get(*dd) {
                l.assert_reconciled(g, *d, dd, *old, *new);
            }
        }
        l.assert_all_back();
        for (old, _) in r.values() {
            l.assert_nothing_of(*old);
        }
    }
    // The follower saw the reconnections as they happened, each line valid.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut reconnected = 0;
    while reconnected < expected {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("events --follow: {e} after {reconnected} reconnections"));
        assert_valid(&line, "drvdom/event/1");
        let e: Value = serde_json::from_str(&line).unwrap();
        if e["what"] == "reconnected" {
            reconnected += 1;
        }
    }
    signal(
        i32::try_from(follow.0.id()).unwrap(),
        nix::sys::signal::Signal::SIGTERM,
    );
    assert!(follow.0.wait().unwrap().success());
    // The history says what happened, with the state changes seen.
    let evs = l.events();
    assert!(
        evs.iter()
            .any(|e| e["kind"] == "state" && e["what"] == "backend state Connected (4)"),
        "no backend state change recorded"
    );
    assert!(evs.iter().all(|e| e["kind"] != "error"), "errors: {evs:#?}");
    l.lab.ok(&["lab", "down", "--lab", l.name()]);
    l.lab.assert_gone();
}

#[test]
fn vif_moves_there_and_back_and_a_move_to_a_dead_agent_rolls_back() {
    let _bins = require_lab!();
    let l = Lab::up();
    let mac = "00:16:3e:4c:00:01";
    let mv = |to: &str, bridge: &str, extra: &[&str]| {
        let mut args = vec![
            "vif", "move", "web", "0", "--to", to, "--bridge", bridge, "--json", "--lab",
        ];
        args.push(l.name());
        args.extend_from_slice(extra);
        l.lab.run(&args)
    };
    // There: web's vif 0 from dd1/xenbr0 to dd2/inner, same MAC and devid.
    let o = mv("dd2", "inner", &[]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_valid(&out, "drvdom/vif-move/1");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["moved"], true, "{v:#}");
    assert_eq!(v["from"], "dd1");
    assert_eq!(v["mac"], mac);
    l.wait_connected("web", 0, "dd2", "inner", mac);
    let fe = l.domid("web").unwrap();
    assert!(
        !l.lab
            .bridge_ports("dd1", "xenbr0")
            .contains(&format!("vif{fe}.0"))
    );
    assert!(
        l.backends_toward(fe)
            .iter()
            .all(|b| !b.starts_with(&format!("/local/domain/{}/", l.domid("dd1").unwrap())))
    );
    // And back.
    let o = mv("dd1", "xenbr0", &[]);
    assert!(o.status.success(), "{o:?}");
    l.wait_connected("web", 0, "dd1", "xenbr0", mac);
    l.assert_pings();
    l.assert_verify();

    // dd2's agent is dead: the move does not connect and is rolled back.
    signal(l.pid_of("agent-dd2"), nix::sys::signal::Signal::SIGKILL);
    let o = mv("dd2", "inner", &["--timeout", "2"]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert_valid(&out, "drvdom/vif-move/1");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["moved"], false, "{v:#}");
    assert_eq!(v["rolled_back"], true, "{v:#}");
    let why = v["reason"].as_str().unwrap();
    assert!(
        why.contains("not connected") && why.contains("agent"),
        "{why}"
    );
    l.wait_connected("web", 0, "dd1", "xenbr0", mac);
    assert!(l.lab.ping("web", OUTSIDE));
    let ev = l.wait_event("rolled back", |e| e["what"] == "rolled back");
    assert_eq!(ev["domain"], "web");
    l.lab.ok(&["lab", "down", "--lab", l.name()]);
    l.lab.assert_gone();
}

#[test]
fn a_driver_domain_that_stays_down_leaves_its_guests_waiting_and_nothing_stale() {
    let _bins = require_lab!();
    let l = Lab::up();
    // dd2 dies and is not created again.
    let r = l.restart(&["dd2"], &["--stay-down"]);
    let (old2, new2) = r["dd2"];
    assert_eq!(new2, None);
    for (g, d) in [("web", 1u32), ("db", 0)] {
        let dev = format!("vif/{d}");
        let ev = l.wait_event(&format!("{g} {dev} waiting for dd2"), |e| {
            e["kind"] == "wait" && e["domain"] == g && e["device"] == dev
        });
        assert!(
            ev["what"].as_str().unwrap().contains("waiting for dd2"),
            "{ev:#}"
        );
    }
    let st = l.status();
    for k in [("web", 1u64), ("db", 0)] {
        let w = &st[&(k.0.to_string(), k.1)];
        assert_eq!(w["phase"], "waiting", "{w:#}");
        assert_eq!(w["backend"], "dd2", "{w:#}");
    }
    assert_eq!(st[&("web".to_string(), 0)]["phase"], "active");
    // Nothing of the dead backend is left: no home, no backend toward
    // anyone, no frontend or xl record of the vifs it served, and the
    // guests unregistered their devices (Linux's xennet_remove).
    l.assert_nothing_of(old2);
    let web = l.domid("web").unwrap();
    let db = l.domid("db").unwrap();
    assert_eq!(l.ls(&format!("/local/domain/{web}/device/vif")), ["0"]);
    assert!(l.ls(&format!("/local/domain/{db}/device/vif")).is_empty());
    assert_eq!(l.ls(&format!("/libxl/{web}/device/vif")), ["0"]);
    assert!(l.ls(&format!("/libxl/{db}/device/vif")).is_empty());
    lab_support::wait("the guests' dd2 interfaces unregistered", || {
        l.lab.link("web", "eth1").is_none() && l.lab.link("db", "eth0").is_none()
    });
    // The rest is untouched.
    l.wait_connected("web", 0, "dd1", "xenbr0", "00:16:3e:4c:00:01");
    assert!(l.lab.ping("web", OUTSIDE));
    assert!(l.lab.ping("web", "198.51.100.43"));

    // The host file brings dd2 back (apply creates it); the waiting vifs
    // connect to it with their MACs, nothing collides.
    l.lab.ok(&["apply", "--lab", l.name(), &l.file]);
    l.assert_all_back();

    // dd1 dies with its toolstack (its home left behind, no longer
    // introduced: what a recycled domid would inherit): the daemon removes
    // the home and every backend naming the dead domid.
    let r = l.restart(&["dd1"], &["--keep-home"]);
    let (old1, Some(new1)) = r["dd1"] else {
        panic!("{r:?}")
    };
    l.wait_event("the left home removed", |e| {
        e["kind"] == "domain"
            && e["domid"] == old1
            && e["what"] == "gone"
            && e["reason"]
                .as_str()
                .unwrap()
                .contains("no longer introduced")
    });
    l.wait_event("its PCI backend in dom0 removed", |e| {
        e["what"] == "remove stale backends"
            && e["reason"]
                .as_str()
                .unwrap()
                .contains(&format!("/local/domain/0/backend/pci/{old1}"))
    });
    l.assert_reconciled("web", 0, "dd1", old1, new1);
    l.assert_reconciled("app", 0, "dd1", old1, new1);
    l.assert_all_back();
    l.assert_nothing_of(old1);
    l.lab.ok(&["lab", "down", "--lab", l.name()]);
    l.lab.assert_gone();
}

#[test]
fn reconcile_killed_mid_way_converges_and_a_guest_destroyed_during_a_reconnect_is_let_go() {
    let _bins = require_lab!();
    let l = Lab::up();
    // SIGKILL the daemon right after it cleaned up the first vif of the
    // dead dd1 and before it re-created it.
    let daemon = l.pid_of("reconcile");
    let r = l.restart(&["dd1"], &[]);
    let (old1, Some(new1)) = r["dd1"] else {
        panic!("{r:?}")
    };
    l.wait_event("a cleanup", |e| e["what"] == "cleanup");
    signal(daemon, nix::sys::signal::Signal::SIGKILL);
    lab_support::wait("reconcile dead", || {
        !std::path::Path::new(&format!("/proc/{daemon}")).exists()
            || std::fs::read_to_string(format!("/proc/{daemon}/stat"))
                .is_ok_and(|s| s.contains(") Z "))
    });
    // Its memory survived it: the vifs it was handling are not active.
    let st = l.status();
    assert!(
        st.values()
            .any(|w| w["backend"] == "dd1" && w["phase"] != "active"),
        "{st:#?}"
    );
    // A new daemon converges from what it observes.
    let out = l
        .lab
        .ok(&["lab", "restart", "reconcile", "--lab", l.name()]);
    assert!(out.contains("reconcile restarted"), "{out}");
    assert_ne!(l.pid_of("reconcile"), daemon);
    l.assert_reconciled("web", 0, "dd1", old1, new1);
    l.assert_reconciled("app", 0, "dd1", old1, new1);
    l.assert_all_back();
    l.assert_nothing_of(old1);

    // db's kernel is frozen (its frontend cannot connect), dd2 restarts,
    // the daemon re-creates db's vif, and db is destroyed while that vif
    // is reconnecting.
    let netfront_db = l.pid_of("netfront-db");
    signal(netfront_db, nix::sys::signal::Signal::SIGSTOP);
    let r = l.restart(&["dd2"], &[]);
    let (_, Some(new2)) = r["dd2"] else {
        panic!("{r:?}")
    };
    l.wait_event("db's vif re-created", |e| {
        e["what"] == "re-create"
            && e["domain"] == "db"
            && e["reason"]
                .as_str()
                .unwrap()
                .contains(&format!("as domain {new2}"))
    });
    assert_eq!(l.status()[&("db".to_string(), 0)]["phase"], "attaching");
    let db = l.domid("db").unwrap();
    let r = l.restart(&["db"], &["--stay-down"]);
    assert_eq!(r["db"], (db, None));
    // Let go: forgotten, its backend in dd2 removed (the agent unplugs the
    // port), web's vif on dd2 unaffected.
    l.wait_event("db's vif forgotten", |e| {
        e["what"] == "forget" && e["domain"] == "db"
    });
    lab_support::wait("db's backend in dd2 removed", || {
        l.backends_toward(db).is_empty()
    });
    l.assert_nothing_of(db);
    lab_support::wait("db's port gone from dd2's bridge", || {
        !l.lab
            .bridge_ports("dd2", "inner")
            .contains(&format!("vif{db}.0"))
    });
    assert!(!l.status().contains_key(&("db".to_string(), 0)));
    l.wait_connected("web", 1, "dd2", "inner", "00:16:3e:4c:00:02");
    let evs = l.events();
    assert!(evs.iter().all(|e| e["kind"] != "error"), "errors: {evs:#?}");
    l.lab.ok(&["lab", "down", "--lab", l.name()]);
    l.lab.assert_gone();
}
