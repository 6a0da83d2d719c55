//! The algorithm properties of plan/apply/destroy (issue 11), on the model
//! host (real xenstored, modelled kernels and agent):
//! * the plan of an applied host is empty;
//! * apply then destroy returns the observed host to its start;
//! * for every action index k, an apply stopped at action k (between
//!   actions, or by a failure inside the host at that point) followed by a
//!   second apply converges to the same host as one uninterrupted apply.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod model;

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use model::ModelHost;
use proptest::prelude::*;
use topology::apply::{Progress, apply};
use topology::observed::Observed;
use topology::plan::{plan, plan_destroy};
use topology::{LoadOptions, Topology, parse_str};
use xentypes::Bdf;

fn host_file(n_dd: usize, guests: &[usize], inner: bool) -> String {
    let mut s = String::from("version = 1\n");
    for d in 0..n_dd {
        s.push_str(&format!(
            "[[driver_domain]]\nname = \"dd{d}\"\nnics = [\"0000:0{d}:00.0\"]\n\
             [[driver_domain.bridge]]\nname = \"xenbr0\"\nuplink = \"0{d}:00.0\"\n"
        ));
        if inner {
            s.push_str("[[driver_domain.bridge]]\nname = \"inner\"\nmtu = 9000\n");
        }
    }
    for (g, nvifs) in guests.iter().enumerate() {
        s.push_str(&format!("[[guest]]\nname = \"g{g}\"\n"));
        for v in 0..*nvifs {
            s.push_str(&format!(
                "[[guest.vif]]\nbackend = \"dd{}\"\nip = [\"10.{v}.{g}.1/16\"]\n",
                (g + v) % n_dd
            ));
            if inner && v == 1 {
                s.push_str("bridge = \"inner\"\n");
            }
        }
    }
    s
}

fn topo(text: &str) -> Topology {
    parse_str(text, "t.toml", None, &LoadOptions::default())
        .unwrap()
        .topology
}

fn nics(t: &Topology) -> Vec<Bdf> {
    t.driver_domains
        .iter()
        .flat_map(|d| d.nics.clone())
        .collect()
}

/// The observed host with domids replaced by names: what "the same host"
/// means across runs that may number domains differently.
fn normal(o: &Observed) -> BTreeSet<String> {
    let name = |d: xentypes::DomId| {
        o.domain_by_id(d)
            .map_or(format!("#{}", d.0), |x| x.name.clone())
    };
    let mut s = BTreeSet::new();
    for d in &o.domains {
        let mut readers: Vec<String> = d.name_readers.iter().map(|r| name(*r)).collect();
        readers.sort();
        s.insert(format!(
            "domain {} dd={} agent={:?} readers={readers:?} config={:?}",
            d.name,
            d.driver_domain,
            d.agent.as_ref().map(|a| a.ready),
            d.configured_bridges
        ));
        for b in &d.bridges {
            let mut ports: Vec<String> = b
                .ports
                .iter()
                .map(|p| match p.vif {
                    Some((fe, dv)) => format!("{}/{dv}", name(fe)),
                    None => p.ifname.clone(),
                })
                .collect();
            ports.sort();
            s.insert(format!(
                "bridge {}/{} up={:?} mtu={:?} ports={ports:?}",
                d.name, b.name, b.uplink, b.mtu
            ));
        }
    }
    for n in &o.nics {
        s.insert(format!(
            "nic {} {:?} in {:?}",
            n.bdf,
            n.driver,
            n.assigned_to.map(name)
        ));
    }
    for v in &o.vifs {
        s.insert(format!(
            "vif {}/{} be={} mac={:?} br={:?} ip={:?} {:?}/{:?} {:?}",
            name(v.frontend),
            v.devid,
            name(v.backend),
            v.mac,
            v.bridge,
            v.ip,
            v.state_frontend,
            v.state_backend,
            v.hotplug_status
        ));
    }
    s
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn full_apply(h: &ModelHost, t: &Topology) -> usize {
    let p = plan(h, t).await.unwrap();
    let n = p.actions.len();
    let r = apply(h, t, &p.actions, &mut |_| ControlFlow::Continue(())).await;
    assert!(r.completed, "apply failed: {:?}", r.failure());
    n
}

#[test]
fn seed_applies_then_plans_nothing_and_destroys_to_start() {
    rt().block_on(async {
        let t = topo(&host_file(2, &[2, 1, 1], true));
        let h = ModelHost::start(&nics(&t)).await;
        let start = normal(&topology::observe::observe(&h, &nics(&t)).await.unwrap());
        let p = plan(&h, &t).await.unwrap();
        let names: Vec<String> = p.actions.iter().map(|a| a.to_string()).collect();
        assert_eq!(
            &names[..5],
            [
                "assign-nic 0000:00:00.0",
                "create-domain dd0",
                "configure-bridges dd0",
                "assign-nic 0000:01:00.0",
                "create-domain dd1"
            ],
            "{names:#?}"
        );
        assert!(names.contains(&"grant-name-read g0->dd0".to_string()));
        assert!(names.contains(&"attach-vif g0/1".to_string()));
        let mut seen = Vec::new();
        let r = apply(&h, &t, &p.actions, &mut |ev| {
            if let Progress::Finished { result, .. } = ev {
                seen.push((result.action.to_string(), result.ok));
            }
            ControlFlow::Continue(())
        })
        .await;
        assert!(r.completed, "{:?}", r.failure());
        assert_eq!(seen.len(), p.actions.len());
        let again = plan(&h, &t).await.unwrap();
        assert!(again.actions.is_empty(), "{:#?}", again.actions);
        let v = topology::verify::verify(&h, &t, &mut |_| {}).await.unwrap();
        let failed: Vec<_> = v
            .checks
            .iter()
            .filter(|c| c.status == topology::verify::Status::Fail)
            .collect();
        assert!(v.ok(), "{failed:#?}");
        assert!(v.passed >= 20, "{}", v.passed);
        assert_eq!(
            v.notes.len(),
            1,
            "no traffic on the model host: {:?}",
            v.notes
        );
        let d = plan_destroy(&h, &t).await.unwrap();
        let r = apply(&h, &t, &d.actions, &mut |_| ControlFlow::Continue(())).await;
        assert!(r.completed, "{:?}", r.failure());
        let end = normal(&topology::observe::observe(&h, &nics(&t)).await.unwrap());
        assert_eq!(start, end);
        assert!(plan_destroy(&h, &t).await.unwrap().actions.is_empty());
    });
}

#[test]
fn a_file_that_grows_by_one_guest_plans_only_that_guest() {
    rt().block_on(async {
        let t = topo(&host_file(1, &[1, 1], false));
        let h = ModelHost::start(&nics(&t)).await;
        full_apply(&h, &t).await;
        let t2 = topo(&host_file(1, &[1, 1, 2], false));
        let p = plan(&h, &t2).await.unwrap();
        let targets: Vec<String> = p.actions.iter().map(|a| a.kind.target()).collect();
        assert_eq!(
            targets,
            ["g2", "g2->dd0", "g2/0", "g2/1"],
            "{:#?}",
            p.actions
        );
    });
}

#[test]
fn a_changed_vif_is_detached_and_attached_again() {
    rt().block_on(async {
        let t = topo(&host_file(1, &[1], true));
        let h = ModelHost::start(&nics(&t)).await;
        full_apply(&h, &t).await;
        let t2 = topo(&host_file(1, &[1], true).replace(
            "ip = [\"10.0.0.1/16\"]",
            "ip = [\"10.0.0.2/16\"]\nmac = \"00:16:3e:00:00:42\"",
        ));
        let p = plan(&h, &t2).await.unwrap();
        let names: Vec<String> = p.actions.iter().map(|a| a.to_string()).collect();
        assert_eq!(names, ["detach-vif g0/0", "attach-vif g0/0"]);
        assert!(
            p.actions[0].reason.contains("MAC"),
            "{}",
            p.actions[0].reason
        );
        full_apply(&h, &t2).await;
        assert!(plan(&h, &t2).await.unwrap().actions.is_empty());
    });
}

#[test]
fn relaxing_layer2_hygiene_reattaches_the_vif_with_the_backend_key() {
    rt().block_on(async {
        let t = topo(&host_file(1, &[1], false));
        assert!(t.guests[0].vifs[0].l2_hygiene, "on by default");
        let h = ModelHost::start(&nics(&t)).await;
        full_apply(&h, &t).await;
        let xs = topology::Host::xenstore(&h).clone();
        let dd = topology::observe::domid_of(&xs, "dd0")
            .await
            .unwrap()
            .unwrap();
        let g = topology::observe::domid_of(&xs, "g0")
            .await
            .unwrap()
            .unwrap();
        let key = xenbus::BackendPath::vif(dd, g, xentypes::DevId(0)).key(xenbus::keys::L2_HYGIENE);
        assert_eq!(xs.read_opt(&key).await.unwrap(), None, "absent means on");
        let relaxed = host_file(1, &[1], false).replace(
            "ip = [\"10.0.0.1/16\"]",
            "ip = [\"10.0.0.1/16\"]\nl2_hygiene = false",
        );
        let t2 = topo(&relaxed);
        assert!(!t2.guests[0].vifs[0].l2_hygiene);
        let p = plan(&h, &t2).await.unwrap();
        let names: Vec<String> = p.actions.iter().map(|a| a.to_string()).collect();
        assert_eq!(names, ["detach-vif g0/0", "attach-vif g0/0"]);
        assert!(
            p.actions[0]
                .reason
                .contains("layer-2 hygiene is on, not off"),
            "{}",
            p.actions[0].reason
        );
        full_apply(&h, &t2).await;
        let g = topology::observe::domid_of(&xs, "g0")
            .await
            .unwrap()
            .unwrap();
        let key = xenbus::BackendPath::vif(dd, g, xentypes::DevId(0)).key(xenbus::keys::L2_HYGIENE);
        assert_eq!(xs.read_opt(&key).await.unwrap().as_deref(), Some(&b"0"[..]));
        assert!(plan(&h, &t2).await.unwrap().actions.is_empty());
        let o = topology::observe::observe(&h, &nics(&t2)).await.unwrap();
        let v = topology::show::view(&o, Some(&t2));
        let gv = v.domains.iter().find(|d| d.name == "g0").unwrap();
        assert!(!gv.vifs[0].l2_hygiene);
        assert!(topology::show::to_text(&v).contains("l2-hygiene off"));
    });
}

/// Stop after `k` actions (or fail the host's k-th operation), then apply
/// again: the host must end where one uninterrupted apply ends.
fn interrupted_converges(text: &str) {
    let t = topo(text);
    let reference = rt().block_on(async {
        let h = ModelHost::start(&nics(&t)).await;
        let n = full_apply(&h, &t).await;
        (
            n,
            normal(&topology::observe::observe(&h, &nics(&t)).await.unwrap()),
            h.ops(),
        )
    });
    let (n, want, ops) = reference;
    for k in 0..n {
        rt().block_on(async {
            let h = ModelHost::start(&nics(&t)).await;
            let p = plan(&h, &t).await.unwrap();
            let mut done = 0;
            let r = apply(&h, &t, &p.actions, &mut |ev| {
                if let Progress::Finished { .. } = ev {
                    done += 1;
                }
                if done >= k {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
            .await;
            assert!(r.interrupted || r.completed);
            full_apply(&h, &t).await;
            let got = normal(&topology::observe::observe(&h, &nics(&t)).await.unwrap());
            assert_eq!(got, want, "stopped after {k} actions");
            assert!(plan(&h, &t).await.unwrap().actions.is_empty());
        });
    }
    for k in 0..ops {
        rt().block_on(async {
            let h = ModelHost::start(&nics(&t)).await;
            *h.fail_at.lock().unwrap() = Some(k);
            let p = plan(&h, &t).await.unwrap();
            let r = apply(&h, &t, &p.actions, &mut |_| ControlFlow::Continue(())).await;
            let failure = r.failure().map(|f| f.detail.clone());
            assert!(
                failure.as_deref().is_some_and(|d| d.contains("injected")),
                "op {k}: {failure:?}"
            );
            full_apply(&h, &t).await;
            let got = normal(&topology::observe::observe(&h, &nics(&t)).await.unwrap());
            assert_eq!(got, want, "host operation {k} failed");
            assert!(plan(&h, &t).await.unwrap().actions.is_empty());
        });
    }
}

#[test]
fn interrupted_apply_of_the_seed_converges_at_every_k() {
    interrupted_converges(&host_file(1, &[1, 1], false));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn interrupted_apply_converges(
        n_dd in 1usize..=2,
        guests in proptest::collection::vec(1usize..=2, 0..=3),
        inner in any::<bool>(),
    ) {
        interrupted_converges(&host_file(n_dd, &guests, inner));
    }

    #[test]
    fn apply_then_destroy_returns_to_start(
        n_dd in 1usize..=2,
        guests in proptest::collection::vec(1usize..=2, 0..=3),
        inner in any::<bool>(),
    ) {
        let t = topo(&host_file(n_dd, &guests, inner));
        rt().block_on(async {
            let h = ModelHost::start(&nics(&t)).await;
            let start = normal(&topology::observe::observe(&h, &nics(&t)).await.unwrap());
            full_apply(&h, &t).await;
            assert!(plan(&h, &t).await.unwrap().actions.is_empty());
            let d = plan_destroy(&h, &t).await.unwrap();
            let r = apply(&h, &t, &d.actions, &mut |_| ControlFlow::Continue(())).await;
            assert!(r.completed, "{:?}", r.failure());
            let end = normal(&topology::observe::observe(&h, &nics(&t)).await.unwrap());
            assert_eq!(start, end);
        });
    }
}
