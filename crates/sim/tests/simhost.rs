//! [`sim::SimHost`] under the real toolstack (crate `topology`), as root:
//! a host file with two driver domains is planned, applied and verified
//! (real namespaces, the real agent and xenstored, real packets), a second
//! plan is empty, destroy returns the host to its start, and `down`
//! leaves nothing behind.

// Helpers outside #[test] fns unwrap and report too: failing loudly is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::ops::ControlFlow;
use std::path::PathBuf;

use sim::SimHost;
use sim::lab::{self, Bins, StartConfig};
use topology::{Host, LoadOptions};

const HOSTFILE: &str = r#"
version = 1

[[driver_domain]]
name = "netdd"
nics = ["0000:03:00.0"]

[[driver_domain.bridge]]
name = "xenbr0"
uplink = "0000:03:00.0"

[[driver_domain]]
name = "storedd"
nics = ["0000:04:00.0"]

[[driver_domain.bridge]]
name = "lan1"
uplink = "0000:04:00.0"
mtu = 9000

[[driver_domain.bridge]]
name = "private"

[[guest]]
name = "web"

[[guest.vif]]
backend = "netdd"
ip = ["198.51.100.21/24"]

[[guest.vif]]
backend = "storedd"
bridge = "private"
mac = "00:16:3e:aa:00:01"
ip = ["192.0.2.21/24"]

[[guest]]
name = "db"

[[guest.vif]]
backend = "storedd"
bridge = "private"
ip = ["192.0.2.22/24"]

[[guest.vif]]
backend = "storedd"
bridge = "lan1"
ip = ["203.0.113.22/24"]
mtu = 9000
"#;

/// drvdom-xenstored and drvdom-agent beside this test's target dir, and
/// sim's own drvdom-simkernel.
fn bins() -> Option<Bins> {
    let simkernel = PathBuf::from(env!("CARGO_BIN_EXE_drvdom-simkernel"));
    let dir = simkernel.parent()?.to_path_buf();
    let b = Bins {
        xenstored: dir.join("drvdom-xenstored"),
        agent: dir.join("drvdom-agent"),
        simkernel,
    };
    (b.xenstored.is_file() && b.agent.is_file()).then_some(b)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn apply_all(host: &SimHost, topo: &topology::Topology) -> topology::apply::ApplyReport {
    let planned = topology::plan::plan(host, topo).await.unwrap();
    let mut progress = |_: topology::apply::Progress<'_>| ControlFlow::Continue(());
    topology::apply::apply(host, topo, &planned.actions, &mut progress).await
}

#[test]
fn two_driver_domains_apply_verify_destroy_and_leave_nothing() {
    testutil::require_root!();
    let Some(bins) = bins() else {
        testutil::skip(
            module_path!(),
            "needs drvdom-xenstored and drvdom-agent built (cargo build --workspace)",
        );
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let name = testutil::unique_name("s");
    let topo = topology::parse_str(HOSTFILE, "test.toml", None, &LoadOptions::new(false))
        .unwrap()
        .topology;
    let rt = rt();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(async {
            let cfg = StartConfig {
                name: name.clone(),
                run_root: root.path().to_path_buf(),
                bins,
                agent_args: Vec::new(),
            };
            let host = SimHost::start(&cfg).await.unwrap();
            let before = topology::observe::observe(&host, &topology::observe::file_nics(&topo))
                .await
                .unwrap();

            let rep = apply_all(&host, &topo).await;
            assert!(rep.completed, "apply failed: {:#?}", rep.failure());
            let v = topology::verify::verify(&host, &topo, &mut |_| {})
                .await
                .unwrap();
            let failed: Vec<_> = v
                .checks
                .iter()
                .filter(|c| c.status == topology::verify::Status::Fail)
                .collect();
            assert!(failed.is_empty(), "verify failed: {failed:#?}");
            let pings = v.checks.iter().filter(|c| c.check.contains("ping")).count();
            assert!(pings >= 3, "traffic was checked: {:#?}", v.checks);

            // The file's domains, each in its own namespace, with ids in
            // creation order.
            let st = host.state();
            let names: Vec<&str> = st.domains.iter().map(|d| d.name.as_str()).collect();
            assert_eq!(names, ["Domain-0", "netdd", "storedd", "web", "db"]);
            // Jumbo MTU on db's lan1 vif, configured by the guest.
            let db = host.netns_of("db").unwrap();
            let links = sim::link::list_in(&db).await.unwrap();
            let eth1 = links.iter().find(|l| l.name == "eth1").unwrap();
            assert_eq!(eth1.mtu, 9000);

            // Applied: nothing left to do.
            let again = topology::plan::plan(&host, &topo).await.unwrap();
            assert!(again.actions.is_empty(), "{:#?}", again.actions);

            // A reopened host (as a later command would) sees the same.
            let other = SimHost::open(&name, root.path()).await.unwrap();
            assert_eq!(other.state().domains.len(), 5);
            assert!(matches!(other.kind(), topology::HostKind::Simulated(n) if n == name));

            // Destroy: back to the start.
            let planned = topology::plan::plan_destroy(&host, &topo).await.unwrap();
            let mut progress = |_: topology::apply::Progress<'_>| ControlFlow::Continue(());
            let rep = topology::apply::apply(&host, &topo, &planned.actions, &mut progress).await;
            assert!(rep.completed, "destroy failed: {:#?}", rep.failure());
            let after = topology::observe::observe(&host, &topology::observe::file_nics(&topo))
                .await
                .unwrap();
            assert_eq!(after.domains, before.domains);
            assert_eq!(
                after
                    .nics
                    .iter()
                    .map(|n| n.driver.clone())
                    .collect::<Vec<_>>(),
                before
                    .nics
                    .iter()
                    .map(|n| n.driver.clone())
                    .collect::<Vec<_>>()
            );
            let st = host.state();
            assert_eq!(st.domains.len(), 1, "{:?}", st.domains);
            let ns = sim::netns::list_with_prefix(&sim::netns::lab_prefix(&name)).unwrap();
            assert_eq!(ns.len(), 3, "only dom0, pciback, outside remain: {ns:?}");
            assert_eq!(st.procs.len(), 1, "only xenstored remains: {:?}", st.procs);
        })
    }));
    if std::env::var_os("DRVDOM_TEST_KEEP_LAB").is_some() {
        eprintln!("keeping lab {name} under {}", root.keep().display());
        return;
    }
    let rep = rt.block_on(lab::down(root.path(), &name)).unwrap();
    assert!(rep.dir_removed);
    // `down` keeps only the processes' logs; `purge` removes them too.
    if let Some(logs) = &rep.logs {
        let left: Vec<_> = std::fs::read_dir(root.path().join(&name))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        assert_eq!(left, vec![logs.clone()], "only the logs stay after down");
    }
    rt.block_on(lab::purge(root.path(), &name)).unwrap();
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
    assert!(
        sim::netns::list_with_prefix(&sim::netns::lab_prefix(&name))
            .unwrap()
            .is_empty()
    );
    assert!(sim::lab::procs_of(&name).is_empty(), "processes left");
    // Only the kept logs remain of the lab's directory.
    let left: Vec<String> = std::fs::read_dir(root.path().join(&name))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty() || left == ["logs"], "{left:?}");
}
