//! Running a plan: each action idempotent (it starts from what the host
//! shows now, so it can run again after a crash at any point), progress
//! reported per action with its result and time, stopping at the first
//! failure with the action named. A second `apply` re-plans from the host
//! and so resumes where the first one stopped.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::FutureExt;
use xenbus::agent::{BridgeSetting, UplinkSetting};
use xenbus::{BackendPath, DetachOptions, VifConfig, XenbusState, keys};
use xenstore::{Access, AsyncClient};
use xentypes::{Bdf, DomId, IpCidr};

use crate::action::{Action, ActionKind};
use crate::error::{Error, Result};
use crate::host::{DomainRole, Host};
use crate::hostfile::DOM0;
use crate::model::{DriverDomain, Guest, Topology, Uplink, Vif, VifMode};
use crate::observe::{self, read_opt, read_text};
use crate::plan::{bridges_gap, desired_bridges};

/// How long a driver domain's agent may take to build its bridges: on a
/// real host `xl create` returns before the domain has booted its kernel
/// and started the agent (minutes under emulation).
pub const BRIDGES_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a vif may take to connect: libxl's 10 s to InitWait plus its
/// 40 s hotplug limit (`LIBXL_INIT_TIMEOUT`, `LIBXL_HOTPLUG_TIMEOUT`).
pub const VIF_TIMEOUT: Duration = Duration::from_secs(50);
/// Hotplug script for routed vifs (Xen's `vif-route`).
pub const VIF_ROUTE_SCRIPT: &str = "/etc/xen/scripts/vif-route";

/// Limits of [`apply_with`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ApplyOptions {
    /// How long a driver domain's agent may take to serve its bridges
    /// after `configure-bridges` ([`BRIDGES_TIMEOUT`]).
    pub agent_timeout: Duration,
    /// How long a vif may take to connect ([`VIF_TIMEOUT`]).
    pub vif_timeout: Duration,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            agent_timeout: BRIDGES_TIMEOUT,
            vif_timeout: VIF_TIMEOUT,
        }
    }
}

impl ApplyOptions {
    /// Options with these limits.
    pub fn new(agent_timeout: Duration, vif_timeout: Duration) -> Self {
        ApplyOptions {
            agent_timeout,
            vif_timeout,
        }
    }
}

/// Progress of [`apply`], one call before and one after each action.
#[derive(Debug)]
#[non_exhaustive]
pub enum Progress<'a> {
    /// Action `index` (0-based) of `total` starts.
    Started {
        /// Its index.
        index: usize,
        /// Number of actions.
        total: usize,
        /// The action.
        action: &'a Action,
    },
    /// Action `index` ended.
    Finished {
        /// Its index.
        index: usize,
        /// Number of actions.
        total: usize,
        /// Its result.
        result: &'a ActionResult,
    },
}

/// What one action did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ActionResult {
    /// The action.
    #[serde(flatten)]
    pub action: Action,
    /// It succeeded.
    pub ok: bool,
    /// What it did or why it failed.
    pub detail: String,
    /// Its duration in milliseconds.
    pub millis: u128,
}

/// What [`apply`] did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ApplyReport {
    /// Every action run, in order.
    pub results: Vec<ActionResult>,
    /// Every action ran and succeeded.
    pub completed: bool,
    /// The progress callback asked to stop before the end.
    pub interrupted: bool,
}

impl ApplyReport {
    /// The failed action, if one failed.
    pub fn failure(&self) -> Option<&ActionResult> {
        self.results.iter().find(|r| !r.ok)
    }
}

/// Run `actions` (from [`crate::plan::plan`] or [`crate::plan::plan_destroy`]
/// of the same `topo`) in order. `progress` is called before and after
/// each one; returning `Break` stops after the current action (Ctrl-C).
pub async fn apply<H: Host>(
    host: &H,
    topo: &Topology,
    actions: &[Action],
    progress: &mut (dyn FnMut(Progress<'_>) -> ControlFlow<()> + Send),
) -> ApplyReport {
    apply_with(host, topo, actions, &ApplyOptions::default(), progress).await
}

/// [`apply`] with explicit limits.
pub async fn apply_with<H: Host>(
    host: &H,
    topo: &Topology,
    actions: &[Action],
    opts: &ApplyOptions,
    progress: &mut (dyn FnMut(Progress<'_>) -> ControlFlow<()> + Send),
) -> ApplyReport {
    let mut cx = Exec::new(host, topo);
    cx.opts = *opts;
    let total = actions.len();
    let mut report = ApplyReport {
        results: Vec::with_capacity(total),
        completed: false,
        interrupted: false,
    };
    for (index, action) in actions.iter().enumerate() {
        if progress(Progress::Started {
            index,
            total,
            action,
        })
        .is_break()
        {
            report.interrupted = true;
            return report;
        }
        let t = Instant::now();
        let outcome = cx.run(action).await;
        let result = ActionResult {
            action: action.clone(),
            ok: outcome.is_ok(),
            detail: match outcome {
                Ok(d) => d,
                Err(e) => error_chain(&e),
            },
            millis: t.elapsed().as_millis(),
        };
        let ok = result.ok;
        let flow = progress(Progress::Finished {
            index,
            total,
            result: &result,
        });
        report.results.push(result);
        if !ok {
            return report;
        }
        if flow.is_break() && index + 1 < total {
            report.interrupted = true;
            return report;
        }
    }
    report.completed = true;
    report
}

/// An error and its causes on one line.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = c.source();
    }
    s
}

/// Runs single actions, remembering domids it learnt.
pub(crate) struct Exec<'a, H: Host> {
    host: &'a H,
    topo: &'a Topology,
    domids: Mutex<HashMap<String, DomId>>,
    /// The cache holds every running domain (one scan at the first lookup,
    /// then kept by our own creates and destroys): a name missing from it
    /// is not running, without a scan (per-guest cost stays flat).
    scanned: Mutex<bool>,
    opts: ApplyOptions,
}

impl<'a, H: Host> Exec<'a, H> {
    pub(crate) fn new(host: &'a H, topo: &'a Topology) -> Self {
        Exec {
            host,
            topo,
            domids: Mutex::new(HashMap::new()),
            scanned: Mutex::new(false),
            opts: ApplyOptions::default(),
        }
    }

    fn xs(&self) -> &AsyncClient {
        self.host.xenstore()
    }

    fn remember(&self, name: &str, id: Option<DomId>) {
        if let Ok(mut m) = self.domids.lock() {
            match id {
                Some(d) => {
                    m.insert(name.to_string(), d);
                }
                None => {
                    m.remove(name);
                }
            }
        }
    }

    /// Fill the cache with every running domain.
    async fn scan(&self) -> Result<()> {
        let xs = self.xs();
        let mut found = HashMap::new();
        for d in observe::list_domids(xs).await? {
            if let Some(n) = read_text(xs, &format!("{}/name", d.path())).await? {
                found.insert(n, d);
            }
        }
        if let Ok(mut m) = self.domids.lock() {
            *m = found;
        }
        if let Ok(mut s) = self.scanned.lock() {
            *s = true;
        }
        Ok(())
    }

    /// The running domain's domid: from the cache (its `name` read back
    /// to confirm, one read); the first lookup scans `/local/domain`, and
    /// so does a cached entry that no longer holds.
    pub(crate) async fn domid(&self, name: &str) -> Result<Option<DomId>> {
        if name == DOM0 {
            return Ok(Some(DomId::DOM0));
        }
        let scanned = self.scanned.lock().map(|s| *s).unwrap_or(false);
        if !scanned {
            self.scan().await?;
        }
        let cached = self.domids.lock().ok().and_then(|m| m.get(name).copied());
        let Some(d) = cached else {
            return Ok(None);
        };
        if read_text(self.xs(), &format!("{}/name", d.path()))
            .await?
            .as_deref()
            == Some(name)
        {
            return Ok(Some(d));
        }
        // Renamed or gone under us: look again.
        self.scan().await?;
        Ok(self.domids.lock().ok().and_then(|m| m.get(name).copied()))
    }

    async fn need_domid(&self, name: &str) -> Result<DomId> {
        self.domid(name)
            .await?
            .ok_or_else(|| Error::Host(format!("domain {name} is not running")))
    }

    fn dd(&self, name: &str) -> Result<&'a DriverDomain> {
        self.topo
            .driver_domains
            .iter()
            .find(|d| d.name == name)
            .ok_or_else(|| Error::Host(format!("{name} is not a driver domain of the file")))
    }

    fn guest(&self, name: &str) -> Result<&'a Guest> {
        self.topo
            .guests
            .iter()
            .find(|g| g.name == name)
            .ok_or_else(|| Error::Host(format!("{name} is not a guest of the file")))
    }

    fn role(&self, name: &str) -> Result<DomainRole<'a>> {
        if let Ok(d) = self.dd(name) {
            return Ok(DomainRole::Driver(d));
        }
        Ok(DomainRole::Guest(self.guest(name)?))
    }

    fn permissive(&self, bdf: Bdf) -> bool {
        self.topo
            .driver_domains
            .iter()
            .any(|d| d.permissive && d.nics.contains(&bdf))
    }

    /// Run one action; `Ok(detail)`.
    pub(crate) async fn run(&self, a: &Action) -> Result<String> {
        match &a.kind {
            ActionKind::WriteConfig { domain } => {
                self.host.write_config(self.role(domain)?).await?;
                Ok(format!("{domain}'s configuration matches the file"))
            }
            ActionKind::AssignNic { bdf } => {
                self.host.assign_nic(*bdf, self.permissive(*bdf)).await?;
                Ok(format!("{bdf} on pciback"))
            }
            ActionKind::ReleaseNic { bdf } => {
                self.host.release_nic(*bdf).await?;
                Ok(format!("{bdf} back on its original driver"))
            }
            ActionKind::CreateDomain { domain } => {
                if let Some(d) = self.domid(domain).await? {
                    return Ok(format!("{domain} already runs as domain {d}"));
                }
                let d = self.host.create_domain(self.role(domain)?).await?;
                self.remember(domain, Some(d));
                Ok(format!("{domain} is domain {d}"))
            }
            ActionKind::DestroyDomain { domain } => {
                let Some(d) = self.domid(domain).await? else {
                    return Ok(format!("{domain} was not running"));
                };
                self.host.destroy_domain(domain, d).await?;
                self.remember(domain, None);
                Ok(format!("domain {d} destroyed"))
            }
            ActionKind::ConfigureBridges { domain } => self.configure_bridges(domain).await,
            ActionKind::GrantNameRead { guest, backend } => self.grant(guest, backend).await,
            ActionKind::AttachVif { guest, devid } => {
                let g = self.guest(guest)?;
                let v = g.vifs.iter().find(|v| v.devid == *devid).ok_or_else(|| {
                    Error::Host(format!("{guest} has no vif {devid} in the file"))
                })?;
                self.attach(g, v).await
            }
            ActionKind::DetachVif { guest, devid } => {
                let Some(fe) = self.domid(guest).await? else {
                    return Ok(format!("{guest} is not running"));
                };
                self.detach(fe, *devid).await
            }
        }
    }

    async fn configure_bridges(&self, domain: &str) -> Result<String> {
        let dd = self.dd(domain)?;
        let id = self.need_domid(domain).await?;
        let want = desired_bridges(dd);
        let settings = bridge_settings(dd);
        xenbus::agent::write_config(self.xs(), id, &settings)
            .await
            .map_err(Error::xb(format!(
                "write the bridge configuration of {domain}"
            )))?;
        // Wait for the agent to publish what we asked for.
        let deadline = tokio::time::Instant::now() + self.opts.agent_timeout;
        let token = xenbus::unique_token("bridges");
        let watched = xenbus::agent::published_dir(id);
        let mut events = self
            .xs()
            .watch(&watched, &token)
            .await
            .map_err(Error::xs(format!("watch {watched}")))?;
        loop {
            let observed = crate::observed::Observed {
                domains: observe_one(self.xs(), id).await?.into_iter().collect(),
                ..Default::default()
            };
            let gap = bridges_gap(dd, &observed);
            let Some(gap) = gap else {
                let names: Vec<&str> = want.iter().map(|b| b.name.as_str()).collect();
                return Ok(format!(
                    "agent ready with {}",
                    if names.is_empty() {
                        "no bridges".to_string()
                    } else {
                        names.join(", ")
                    }
                ));
            };
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(e))) => return Err(Error::xs(format!("watch {watched}"))(e)),
                Ok(None) => return Err(Error::Host(format!("watch on {watched} ended"))),
                Err(_) => {
                    return Err(Error::Timeout(format!(
                        "{domain}'s agent did not serve its bridges within {}s: {gap}{} \
                         (is drvdom-agent running in {domain}?)",
                        self.opts.agent_timeout.as_secs(),
                        observed
                            .domains
                            .first()
                            .and_then(|d| d.agent.as_ref())
                            .and_then(|a| a.error.as_ref())
                            .map(|e| format!(" (agent: {e})"))
                            .unwrap_or_default()
                    )));
                }
            }
        }
    }

    async fn grant(&self, guest: &str, backend: &str) -> Result<String> {
        let g = self.need_domid(guest).await?;
        let b = self.need_domid(backend).await?;
        let path = format!("{}/name", g.path());
        let path2 = path.clone();
        let changed = self
            .xs()
            .transaction(move |tx| {
                let path = path2.clone();
                async move {
                    let perms = tx.get_perms(&path).await?;
                    if perms.access_of(b).can_read() {
                        return Ok(false);
                    }
                    tx.set_perms(&path, &perms.with(Access::Read, b)).await?;
                    Ok(true)
                }
                .boxed()
            })
            .await
            .map_err(Error::xs(format!("let {backend} read {path}")))?;
        Ok(if changed {
            format!("{backend} (domain {b}) may read {path}")
        } else {
            format!("{backend} (domain {b}) could already read {path}")
        })
    }

    async fn attach(&self, g: &Guest, v: &Vif) -> Result<String> {
        let fe = self.need_domid(&g.name).await?;
        let be = self.need_domid(&v.backend).await?;
        let xs = self.xs();
        let bp = BackendPath::vif(be, fe, v.devid);
        // An existing vif that matches is kept (xl create made it, or a
        // previous apply did); one that differs is replaced.
        let existing = xenbus::find_backend(xs, fe, xenbus::DeviceKind::Vif, v.devid)
            .await
            .map_err(Error::xb(format!("look up vif {} of {}", v.devid, g.name)))?;
        let mut reuse = false;
        if let Some(ebp) = existing {
            let obs = observe::observe_vif(xs, fe, v.devid, ebp).await?;
            let failed = obs.hotplug_status.as_deref() == Some(xenbus::vif::HOTPLUG_ERROR);
            if crate::plan::vif_mismatch(v, Some(be), &obs).is_none() && !failed {
                reuse = true;
            } else {
                self.detach(fe, v.devid).await?;
            }
        }
        if !reuse {
            let cfg = vif_config(v, be);
            xenbus::attach_vif(xs, fe, &cfg)
                .await
                .map_err(Error::xb(format!("attach vif {} of {}", v.devid, g.name)))?;
        }
        let deadline = tokio::time::Instant::now() + self.opts.vif_timeout;
        wait_vif_up(xs, &bp, &g.name, deadline).await?;
        if let (VifMode::Bridge, Some(br), false) = (v.mode, &v.bridge, be == DomId::DOM0) {
            wait_port_published(xs, be, fe, v.devid, br, deadline).await?;
        }
        self.host.vif_connected(&g.name, fe, v).await?;
        Ok(format!(
            "vif{fe}.{} in {} Connected, mac {}{}",
            v.devid,
            v.backend,
            v.mac,
            v.bridge
                .as_deref()
                .map(|b| format!(", bridge {b}"))
                .unwrap_or_default()
        ))
    }

    async fn detach(&self, fe: DomId, devid: xentypes::DevId) -> Result<String> {
        match xenbus::detach_vif(self.xs(), fe, devid, &DetachOptions::default()).await {
            Ok(o) => Ok(format!(
                "vif{fe}.{devid} removed (backend closed: {}, cleaned by its driver domain: {})",
                o.reached_closed, o.removed_by_backend
            )),
            Err(xenbus::Error::NoSuchDevice { .. }) => Ok(format!("vif{fe}.{devid} was absent")),
            Err(e) => Err(Error::xb(format!("detach vif {devid} of domain {fe}"))(e)),
        }
    }
}

/// The bridge settings dom0 writes for a driver domain's agent.
pub fn bridge_settings(dd: &DriverDomain) -> Vec<BridgeSetting> {
    dd.bridges
        .iter()
        .map(|b| BridgeSetting {
            name: b.name.clone(),
            uplink: b.uplink.as_ref().map(|u| match u {
                Uplink::Nic(bdf) => UplinkSetting::Nic(*bdf),
                Uplink::Iface(i) => UplinkSetting::Iface(i.clone()),
            }),
            mtu: b.mtu,
        })
        .collect()
}

async fn observe_one(
    xs: &AsyncClient,
    id: DomId,
) -> Result<Option<crate::observed::ObservedDomain>> {
    observe::observe_domain(xs, id).await
}

/// The xenbus settings of a file's vif.
pub fn vif_config(v: &Vif, backend: DomId) -> VifConfig {
    let mut cfg = VifConfig::new(backend)
        .devid(v.devid)
        .mac(v.mac)
        .trusted(v.trusted);
    if let Some(b) = &v.bridge {
        cfg = cfg.bridge(b.clone());
    }
    if let Some(m) = v.mtu {
        cfg = cfg.mtu(m);
    }
    if !v.ip.is_empty() {
        cfg = cfg.ip(IpCidr::format_list(&v.ip));
    }
    if v.mode == VifMode::Route {
        cfg = cfg.script(VIF_ROUTE_SCRIPT);
    }
    // Absent means on: only the relaxed setting is written.
    if !v.l2_hygiene {
        cfg = cfg.l2_hygiene(false);
    }
    cfg
}

/// Wait until both ends of a vif are Connected and `hotplug-status` is
/// "connected", watching the backend directory and the frontend state;
/// fails at once on `hotplug-status = error` with the agent's message.
pub async fn wait_vif_up(
    xs: &AsyncClient,
    bp: &BackendPath,
    guest: &str,
    deadline: tokio::time::Instant,
) -> Result<()> {
    let started = tokio::time::Instant::now();
    let fstate = bp.frontend().state();
    let token = xenbus::unique_token("vifup");
    let bdir = bp.path();
    let mut wb = xs
        .watch(&bdir, &token)
        .await
        .map_err(Error::xs(format!("watch {bdir}")))?;
    let token2 = xenbus::unique_token("vifup");
    let mut wf = xs
        .watch(&fstate, &token2)
        .await
        .map_err(Error::xs(format!("watch {fstate}")))?;
    loop {
        let bs = read_state(xs, &bp.state()).await?;
        let fs = read_state(xs, &fstate).await?;
        let hs = read_text(xs, &bp.key(keys::HOTPLUG_STATUS)).await?;
        if hs.as_deref() == Some(xenbus::vif::HOTPLUG_ERROR) {
            let msg = read_text(xs, &bp.key(keys::HOTPLUG_ERROR))
                .await?
                .unwrap_or_else(|| "no hotplug-error given".into());
            return Err(Error::Host(format!(
                "hotplug of vif{}.{} of {guest} failed in its driver domain: {msg}",
                bp.fe, bp.devid
            )));
        }
        if bs.is_none() && read_opt(xs, &bdir).await?.is_none() {
            return Err(Error::Host(format!("{bdir} disappeared while connecting")));
        }
        if bs == Some(XenbusState::Connected)
            && fs == Some(XenbusState::Connected)
            && hs.as_deref() == Some(xenbus::vif::HOTPLUG_CONNECTED)
        {
            return Ok(());
        }
        let waited = tokio::select! {
            r = tokio::time::timeout_at(deadline, wb.recv()) => r,
            r = tokio::time::timeout_at(deadline, wf.recv()) => r,
        };
        match waited {
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => return Err(Error::xs(format!("watch {bdir}"))(e)),
            Ok(None) => return Err(Error::Host(format!("watch on {bdir} ended"))),
            Err(_) => {
                return Err(Error::Timeout(format!(
                    "vif{}.{} of {guest} not connected after {:.1} s: backend {}, frontend {}, \
                     hotplug-status {} (is the driver domain's agent running?)",
                    bp.fe,
                    bp.devid,
                    started.elapsed().as_secs_f64(),
                    bs.map_or("absent", |s| s.name()),
                    fs.map_or("absent", |s| s.name()),
                    match hs.as_deref() {
                        None => "absent",
                        Some("") => "(empty)",
                        Some(h) => h,
                    }
                )));
            }
        }
    }
}

/// Wait until driver domain `be`'s agent publishes vif `devid` of `fe` as
/// a port of `bridge` (its `brctl show` view, AGENT_XS_SCHEMA): hotplug is
/// reported before the agent republishes its bridges.
pub async fn wait_port_published(
    xs: &AsyncClient,
    be: DomId,
    fe: DomId,
    devid: xentypes::DevId,
    bridge: &str,
    deadline: tokio::time::Instant,
) -> Result<()> {
    // The one port node (netback names a vif's backend interface
    // vif<fe>.<devid>; the file sets no vifname): O(1) per vif, whatever
    // the number of ports.
    let bdir = format!(
        "{}/{}",
        xenbus::agent::published_bridges_dir(be),
        xenbus::agent::node_name(bridge)
    );
    let node = format!(
        "{bdir}/ports/{}",
        xenbus::agent::node_name(&format!("vif{fe}.{devid}"))
    );
    let token = xenbus::unique_token("port");
    let mut w = xs
        .watch(&node, &token)
        .await
        .map_err(Error::xs(format!("watch {node}")))?;
    loop {
        let rec = read_opt(xs, &node)
            .await?
            .and_then(|raw| xenbus::agent::PortRecord::from_json(&raw));
        if rec.is_some_and(|r| r.vif_ids() == Some((fe, devid))) {
            return Ok(());
        }
        match tokio::time::timeout_at(deadline, w.recv()).await {
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => return Err(Error::xs(format!("watch {node}"))(e)),
            Ok(None) => return Err(Error::Host(format!("watch on {node} ended"))),
            Err(_) => {
                let err = read_text(xs, &format!("{}/error", xenbus::agent::agent_dir(be))).await?;
                return Err(Error::Timeout(format!(
                    "vif{fe}.{devid} is connected but domain {be}'s agent does not show it \
                     on bridge {bridge} ({node}){}",
                    err.map(|e| format!("; agent: {e}")).unwrap_or_default()
                )));
            }
        }
    }
}

async fn read_state(xs: &AsyncClient, path: &str) -> Result<Option<XenbusState>> {
    Ok(read_opt(xs, path)
        .await?
        .and_then(|r| XenbusState::parse_bytes(&r).ok()))
}
