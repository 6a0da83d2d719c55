//! An in-memory model host for the algorithm properties of plan/apply/
//! destroy: a real `drvdom-xenstored` (so every xenstore path of the
//! toolstack runs for real) plus a reactor task playing the kernels and
//! the agent the way DEVICES.md and AGENT_XS_SCHEMA.md describe them:
//! netback (InitWait, Connected once the frontend is and hotplug is done),
//! netfront (Connected once the backend waits), the agent (bridges from
//! dom0's config, hotplug-status, ports, removal of closed backends).
//! NICs are a map BDF -> driver. Host operations can be made to fail
//! (the k-th one), to test resumption.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use topology::observed::ObservedNic;
use topology::{DomainRole, Error, Host, HostKind, ProbeOutcome, ProbeTarget, Result, Vif};
use xenbus::agent::node_name;
use xenbus::{DomainSpec, PciFunction};
use xenstore::{AsyncClient, DomId};
use xentypes::Bdf;

/// The original driver of every model NIC.
pub const ORIGINAL_DRIVER: &str = "e1000e";

#[derive(Default)]
struct State {
    next_domid: u16,
    drivers: BTreeMap<Bdf, String>,
    passed: HashMap<Bdf, DomId>,
    /// Driver domains whose agent runs (domid -> nics).
    agents: HashMap<DomId, Vec<Bdf>>,
    connected: Vec<(String, u32)>,
}

/// The model host.
pub struct ModelHost {
    pub xsd: testutil::xenstored::Xenstored,
    xs: AsyncClient,
    state: Arc<Mutex<State>>,
    ops: AtomicUsize,
    /// Fail the host operation with this index (0-based), once.
    pub fail_at: Mutex<Option<usize>>,
    reactor: tokio::task::JoinHandle<()>,
}

impl Drop for ModelHost {
    fn drop(&mut self) {
        self.reactor.abort();
    }
}

impl ModelHost {
    /// A fresh host: dom0 only, `nics` on their original driver.
    pub async fn start(nics: &[Bdf]) -> ModelHost {
        let xsd = testutil::xenstored::Xenstored::start();
        let xs = AsyncClient::connect(&xsd.socket).await.unwrap();
        xs.write("/local/domain/0/name", "Domain-0").await.unwrap();
        let state = Arc::new(Mutex::new(State {
            next_domid: 1,
            drivers: nics
                .iter()
                .map(|b| (*b, ORIGINAL_DRIVER.to_string()))
                .collect(),
            ..State::default()
        }));
        let reactor = tokio::spawn(reactor(xs.clone(), state.clone()));
        ModelHost {
            xsd,
            xs,
            state,
            ops: AtomicUsize::new(0),
            fail_at: Mutex::new(None),
            reactor,
        }
    }

    /// Count an operation; fail it if asked.
    fn op(&self, what: &str) -> Result<()> {
        let n = self.ops.fetch_add(1, Ordering::SeqCst);
        let mut f = self.fail_at.lock().unwrap();
        if *f == Some(n) {
            *f = None;
            return Err(Error::Host(format!("injected failure of {what}")));
        }
        Ok(())
    }

    /// Host operations so far.
    pub fn ops(&self) -> usize {
        self.ops.load(Ordering::SeqCst)
    }
}

impl Host for ModelHost {
    fn kind(&self) -> HostKind {
        HostKind::Simulated("model".into())
    }

    fn xenstore(&self) -> &AsyncClient {
        &self.xs
    }

    async fn config_drift(&self, _role: DomainRole<'_>) -> Result<Option<String>> {
        Ok(None)
    }

    async fn write_config(&self, _role: DomainRole<'_>) -> Result<()> {
        Ok(())
    }

    async fn create_domain(&self, role: DomainRole<'_>) -> Result<DomId> {
        let domid = {
            let mut s = self.state.lock().unwrap();
            let d = DomId(s.next_domid);
            s.next_domid += 1;
            d
        };
        let xs = &self.xs;
        xs.introduce(domid, 0xfeff0 + i64::from(domid.0), 1)
            .await
            .map_err(|e| Error::Host(e.to_string()))?;
        let spec = DomainSpec::new(domid, role.name())
            .driver_domain(matches!(role, DomainRole::Driver(_)));
        xenbus::make_domain(xs, &spec)
            .await
            .map_err(|e| Error::Host(e.to_string()))?;
        // A failure here leaves a half-made domain, as a crash of xl would.
        self.op("create_domain")?;
        if let DomainRole::Driver(dd) = role {
            if !dd.nics.is_empty() {
                let f: Vec<PciFunction> = dd.nics.iter().map(|b| PciFunction::new(*b)).collect();
                xenbus::attach_pci(xs, domid, &dd.name, &f)
                    .await
                    .map_err(|e| Error::Host(e.to_string()))?;
            }
            let mut s = self.state.lock().unwrap();
            for b in &dd.nics {
                s.passed.insert(*b, domid);
            }
            s.agents.insert(domid, dd.nics.clone());
        }
        // Nudge the reactor.
        let _ = xs
            .write(&format!("{}/model-created", domid.path()), "1")
            .await;
        Ok(domid)
    }

    async fn destroy_domain(&self, _name: &str, domid: DomId) -> Result<()> {
        self.op("destroy_domain")?;
        {
            let mut s = self.state.lock().unwrap();
            s.agents.remove(&domid);
            s.passed.retain(|_, d| *d != domid);
        }
        let xs = &self.xs;
        let pci = format!("/local/domain/0/backend/pci/{}", domid.0);
        let _ = xs.rm(&pci).await;
        let _ = xs.rm(&format!("/libxl/{}/device/pci", domid.0)).await;
        xenbus::destroy_domain(xs, domid)
            .await
            .map_err(|e| Error::Host(e.to_string()))?;
        let _ = xs.release(domid).await;
        Ok(())
    }

    async fn assign_nic(&self, bdf: Bdf, _permissive: bool) -> Result<()> {
        self.op("assign_nic")?;
        let mut s = self.state.lock().unwrap();
        match s.drivers.get_mut(&bdf) {
            Some(d) => {
                *d = "pciback".into();
                Ok(())
            }
            None => Err(Error::Host(format!("no NIC {bdf}"))),
        }
    }

    async fn release_nic(&self, bdf: Bdf) -> Result<()> {
        self.op("release_nic")?;
        let mut s = self.state.lock().unwrap();
        if s.passed.contains_key(&bdf) {
            return Err(Error::Host(format!("{bdf} is still passed through")));
        }
        if let Some(d) = s.drivers.get_mut(&bdf) {
            *d = ORIGINAL_DRIVER.into();
        }
        Ok(())
    }

    async fn nics(&self, bdfs: &[Bdf]) -> Result<Vec<ObservedNic>> {
        let s = self.state.lock().unwrap();
        Ok(bdfs
            .iter()
            .map(|b| {
                let mut n = topology::observe::nic_unknown(*b);
                n.driver = s.drivers.get(b).cloned();
                n.visible_in_domain = Some(s.passed.contains_key(b));
                n
            })
            .collect())
    }

    async fn vif_connected(&self, guest: &str, _domid: DomId, vif: &Vif) -> Result<()> {
        self.op("vif_connected")?;
        self.state
            .lock()
            .unwrap()
            .connected
            .push((guest.to_string(), vif.devid.0));
        Ok(())
    }

    async fn probe(&self, _from: &str, _to: &ProbeTarget) -> Result<ProbeOutcome> {
        Ok(ProbeOutcome::Unsupported)
    }
}

async fn dir(xs: &AsyncClient, p: &str) -> Vec<String> {
    xs.directory(p).await.unwrap_or_default()
}

async fn read(xs: &AsyncClient, p: &str) -> Option<String> {
    xs.read_opt(p)
        .await
        .ok()
        .flatten()
        .map(|v| String::from_utf8_lossy(&v).into_owned())
}

/// Play netback, netfront and the agent until the tree is stable, on
/// every change under /local/domain.
async fn reactor(xs: AsyncClient, state: Arc<Mutex<State>>) {
    let Ok(mut w) = xs.watch("/local/domain", "model-reactor").await else {
        return;
    };
    loop {
        // Drain what is queued, then work once.
        if w.recv().await.is_none() {
            return;
        }
        while let Some(Some(_)) = w.recv().now_or_never() {}
        let agents: Vec<(DomId, Vec<Bdf>)> = {
            let s = state.lock().unwrap();
            s.agents.iter().map(|(d, n)| (*d, n.clone())).collect()
        };
        for (dd, nics) in agents {
            let _ = step_agent(&xs, dd, &nics).await;
        }
    }
}

async fn step_agent(xs: &AsyncClient, dd: DomId, nics: &[Bdf]) -> xenstore::Result<()> {
    let base = dd.path();
    if !xs.exists(&format!("{base}/name")).await? {
        return Ok(());
    }
    // Bridges as configured by dom0.
    let cdir = format!("{base}/drvdom/config/bridges");
    let mut bridges: Vec<(String, Option<String>, u32)> = Vec::new();
    for node in dir(xs, &cdir).await {
        let b = xenbus::agent::ifname_of_node(&node).unwrap_or_default();
        let up = read(xs, &format!("{cdir}/{node}/uplink"))
            .await
            .map(|u| match u.parse::<Bdf>() {
                Ok(bdf) if nics.contains(&bdf) => format!("eth{}", bdf.bus()),
                _ => u,
            });
        let mtu = read(xs, &format!("{cdir}/{node}/mtu"))
            .await
            .and_then(|m| m.parse().ok())
            .unwrap_or(1500);
        bridges.push((b, up, mtu));
    }
    let pub_dir = format!("{base}/data/drvdom");
    for (b, up, mtu) in &bridges {
        let p = format!("{pub_dir}/bridges/{}", node_name(b));
        if read(xs, &format!("{p}/mtu")).await.as_deref() != Some(&mtu.to_string()) {
            xs.write(&format!("{p}/mtu"), mtu.to_string()).await?;
        }
        if let Some(u) = up {
            if read(xs, &format!("{p}/uplink")).await.as_deref() != Some(u) {
                xs.write(&format!("{p}/uplink"), u).await?;
                xs.write(
                    &format!("{p}/ports/{}", node_name(u)),
                    r#"{"up":true,"fwd":true}"#,
                )
                .await?;
            }
        }
    }
    if read(xs, &format!("{pub_dir}/agent/state")).await.as_deref() != Some("ready") {
        xs.write(&format!("{pub_dir}/agent/version"), "model")
            .await?;
        xs.write(&format!("{pub_dir}/agent/pid"), "1").await?;
        xs.write(&format!("{pub_dir}/agent/state"), "ready").await?;
    }
    // Backends.
    let vdir = format!("{base}/backend/vif");
    for fe in dir(xs, &vdir).await {
        for devid in dir(xs, &format!("{vdir}/{fe}")).await {
            let b = format!("{vdir}/{fe}/{devid}");
            let r = step_vif(xs, &b, &fe, &devid, &bridges, &pub_dir).await;
            if std::env::var_os("MODEL_DEBUG").is_some() {
                eprintln!(
                    "step_vif {b}: {r:?} st={:?} hs={:?}",
                    read(xs, &format!("{b}/state")).await,
                    read(xs, &format!("{b}/hotplug-status")).await
                );
            }
        }
    }
    Ok(())
}

async fn step_vif(
    xs: &AsyncClient,
    b: &str,
    fe: &str,
    devid: &str,
    bridges: &[(String, Option<String>, u32)],
    pub_dir: &str,
) -> xenstore::Result<()> {
    let st = read(xs, &format!("{b}/state")).await;
    let online = read(xs, &format!("{b}/online")).await;
    let fpath = read(xs, &format!("{b}/frontend")).await.unwrap_or_default();
    let fst = read(xs, &format!("{fpath}/state")).await;
    let port = format!("vif{fe}.{devid}");
    let br = read(xs, &format!("{b}/bridge")).await.unwrap_or_default();
    let port_path = format!(
        "{pub_dir}/bridges/{}/ports/{}",
        node_name(&br),
        node_name(&port)
    );
    match (st.as_deref(), online.as_deref()) {
        (Some("1"), Some("1")) => xs.write(&format!("{b}/state"), "2").await?,
        (Some("5"), _) => {
            if fst.is_some() {
                xs.write(&format!("{fpath}/state"), "6").await?;
            }
            xs.write(&format!("{b}/state"), "6").await?;
        }
        (Some("6"), Some("0")) => {
            let _ = xs.rm(&port_path).await;
            xs.rm(b).await?;
        }
        (Some("2" | "4"), Some("1")) => {
            let hs = read(xs, &format!("{b}/hotplug-status")).await;
            if hs.as_deref() == Some("") {
                if bridges.iter().any(|(n, _, _)| *n == br) {
                    xs.write(
                        &port_path,
                        format!(r#"{{"vif":[{fe},{devid}],"up":true,"fwd":true}}"#),
                    )
                    .await?;
                    xs.write(&format!("{b}/hotplug-status"), "connected")
                        .await?;
                } else {
                    xs.write(&format!("{b}/hotplug-error"), format!("no bridge {br}"))
                        .await?;
                    xs.write(&format!("{b}/hotplug-status"), "error").await?;
                }
            }
            if fst.as_deref() == Some("1") {
                xs.write(&format!("{fpath}/state"), "4").await?;
            }
            let hs = read(xs, &format!("{b}/hotplug-status")).await;
            if st.as_deref() == Some("2")
                && fst.as_deref() == Some("4")
                && hs.as_deref() == Some("connected")
            {
                xs.write(&format!("{b}/state"), "4").await?;
            }
        }
        _ => {}
    }
    Ok(())
}
