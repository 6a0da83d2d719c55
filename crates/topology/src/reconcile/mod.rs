//! `drvdom reconcile`: the dom0 daemon that keeps guests' vifs alive
//! across driver-domain restarts (DESIGN.md "Lifecycle").
//!
//! libxl keeps no watch on backends: after `xl destroy netdd; xl create
//! netdd.cfg` every guest vif netdd served stays dead (its frontend points
//! at a backend directory that is gone, its `/libxl` record names a domid
//! that no longer exists) until someone detaches and re-attaches it by
//! hand. This daemon does that, level-triggered, from what it observes:
//!
//! 1. **Desired vifs** ([`memory::WantVif`]): from the host file when given
//!    (its guests' vifs), else learnt from what xl recorded for each
//!    running guest (`/libxl/<domid>/device/vif/<devid>`: backend, MAC,
//!    bridge, `ip`, `mtu`, `script`), with the backend's *name* read while
//!    it runs. Remembered in xenstore ([`memory`]), so a SIGKILLed daemon's
//!    successor knows what the dead backend served.
//! 2. **A backend domain died** (`@releaseDomain`; its home removed by xl,
//!    or left behind and no longer introduced; or its domid now carries
//!    another domain's name — a recycled domid): every vif it served is
//!    cleaned up — frontend directory, backend directory, `/libxl` record,
//!    in one transaction — so nothing stale blocks a re-attach ("MAC
//!    already exists") and no other domain inherits the nodes; so are the
//!    backends it left in other domains' homes as a frontend (its PCI
//!    backend in dom0, a dead guest's vifs in a driver domain: module `sweep`),
//!    which a domain given the same domid later would inherit. A Linux
//!    guest reacts to the removal of its frontend directory by
//!    unregistering the device (`xenbus_dev_changed` →
//!    `xenbus_cleanup_devices` → `xennet_remove`, see
//!    `sim::netfront`); the vif is then *waiting*.
//! 3. **A domain of that name is back** (new domid) with its agent ready
//!    (`data/drvdom/agent/state = ready`): its remembered bridge settings
//!    are written back if it has none, the guests' `name` nodes are made
//!    readable to it, and every waiting vif is re-created toward it with
//!    the same devid and MAC. The guest probes a new device for the new
//!    frontend directory (`xenbus_probe_node`) and connects
//!    (`netback_changed`: InitWait → Connected).
//!
//! Each step is idempotent and decided from the host as it is, so the
//! daemon can be killed at any point and restarted. Every device state
//! change it sees and every action it takes is an [`journal::Event`].

pub mod journal;
pub mod memory;
mod pass;
mod sweep;
pub mod vif_move;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use futures::future::LocalBoxFuture;
use futures::stream::FuturesUnordered;
use xenbus::agent::BridgeSetting;
use xenstore::AsyncClient;

use crate::error::{Error, Result};
use crate::host::Host;
use crate::model::Topology;
use crate::observe::read_text;
use journal::{Event, EventKind, Journal};
use memory::WantVif;

/// Between a stale frontend's removal and its re-creation with the same
/// devid, at least this long: a Linux guest handles the removal on its
/// xenwatch thread and probes a new device only if the directory is new
/// to it when the event is handled (`xenbus_dev_changed` looks the device
/// up by path; a directory removed and re-created before that would find
/// the old device, still bound to the dead backend).
pub const REPROBE_GUARD: Duration = Duration::from_millis(200);
/// A full re-scan at least this often, whatever the watches say.
pub const RESCAN: Duration = Duration::from_secs(5);
/// Events arriving within this window are handled by one pass.
pub const DEBOUNCE: Duration = Duration::from_millis(10);

/// How the daemon runs.
#[derive(Debug)]
#[non_exhaustive]
pub struct Options {
    /// The host file, if given (else: what xl recorded).
    pub topology: Option<Topology>,
    /// Where events go.
    pub journal: Journal,
    /// How long a re-created vif may take to connect before it is
    /// cleaned and tried again.
    pub vif_timeout: Duration,
    /// See [`REPROBE_GUARD`].
    pub reprobe_guard: Duration,
    /// See [`RESCAN`].
    pub rescan: Duration,
}

impl Options {
    /// Defaults: no host file, no journal.
    pub fn new(topology: Option<Topology>, journal: Journal) -> Options {
        Options {
            topology,
            journal,
            vif_timeout: crate::apply::VIF_TIMEOUT,
            reprobe_guard: REPROBE_GUARD,
            rescan: RESCAN,
        }
    }
}

/// The daemon's state between passes.
pub struct Reconciler<'a, H: Host> {
    host: &'a H,
    opts: Options,
    wants: BTreeMap<(String, u32), WantVif>,
    bridges: BTreeMap<String, Vec<BridgeSetting>>,
    seen: BTreeMap<u16, String>,
    /// Last value seen per state path (for state-change events).
    states: HashMap<String, String>,
    /// Domain names by domid (for events).
    names: HashMap<u16, String>,
    /// Waits already reported (key → what), so each is reported once.
    reported: HashMap<(String, u32), String>,
    /// Guest-side configuration of reconnected vifs, running while the
    /// daemon goes on ([`Host::vif_connected`]).
    configuring: FuturesUnordered<Configuring<'a>>,
}

/// A reconnected vif's guest-side configuration under way.
type Configuring<'a> = LocalBoxFuture<'a, (WantVif, u16, Result<()>)>;

impl<'a, H: Host> Reconciler<'a, H> {
    /// A daemon over `host`, its memory read back from xenstore.
    pub async fn new(host: &'a H, opts: Options) -> Result<Reconciler<'a, H>> {
        let xs = host.xenstore();
        let wants = memory::load_vifs(xs).await?;
        let bridges = memory::load_bridges(xs).await?;
        let seen = memory::load_seen(xs).await?;
        let mut r = Reconciler {
            host,
            opts,
            wants,
            bridges,
            seen,
            states: HashMap::new(),
            names: HashMap::new(),
            reported: HashMap::new(),
            configuring: FuturesUnordered::new(),
        };
        r.seed_from_file().await?;
        Ok(r)
    }

    fn xs(&self) -> &AsyncClient {
        self.host.xenstore()
    }

    fn event(
        &mut self,
        kind: EventKind,
        domain: &str,
        domid: Option<u16>,
        device: Option<String>,
        what: impl Into<String>,
        reason: impl Into<String>,
    ) {
        let ev = Event::now(kind, domain, domid, device, what, reason);
        self.opts.journal.append(&ev);
    }

    /// Host-file mode: every vif of the file is desired (phase kept from
    /// memory after a restart of the daemon; the file's settings win).
    async fn seed_from_file(&mut self) -> Result<()> {
        let Some(topo) = self.opts.topology.clone() else {
            return Ok(());
        };
        let now = journal::now_ms();
        for dd in &topo.driver_domains {
            let settings = crate::apply::bridge_settings(dd);
            if self.bridges.get(&dd.name) != Some(&settings) {
                memory::save_bridges(self.xs(), &dd.name, &settings).await?;
                self.bridges.insert(dd.name.clone(), settings);
            }
        }
        for g in &topo.guests {
            for v in &g.vifs {
                if !topo.driver_domains.iter().any(|d| d.name == v.backend) {
                    continue; // dom0 backends do not restart
                }
                let mut w = WantVif::from_file(&g.name, v, now);
                if let Some(old) = self.wants.get(&w.key()) {
                    w.phase = old.phase;
                    w.since_ms = old.since_ms;
                    w.backend_domid = old.backend_domid;
                    // A vif moved to another driver domain stays there.
                    w.backend.clone_from(&old.backend);
                }
                if self.wants.get(&w.key()) != Some(&w) {
                    memory::save_vif(self.xs(), &w).await?;
                    self.wants.insert(w.key(), w);
                }
            }
        }
        Ok(())
    }

    /// The remembered vifs as they are now (for `reconcile --status`).
    pub fn wants(&self) -> impl Iterator<Item = &WantVif> {
        self.wants.values()
    }

    /// Run until `stop` completes: one pass at start, then one after each
    /// burst of watch events (and at least every [`RESCAN`]).
    pub async fn run(&mut self, stop: impl Future<Output = ()>) -> Result<()> {
        let xs = self.xs().clone();
        let mut watches = Vec::new();
        for p in [
            "@releaseDomain",
            "@introduceDomain",
            "/local/domain",
            "/libxl",
        ] {
            let token = xenbus::unique_token("reconcile");
            watches.push(
                xs.watch(p, &token)
                    .await
                    .map_err(Error::xs(format!("watch {p}")))?,
            );
        }
        let mut events = futures::stream::select_all(watches);
        tokio::pin!(stop);
        self.event(
            EventKind::Action,
            "Domain-0",
            Some(0),
            None,
            "reconcile started",
            match &self.opts.topology {
                Some(t) => format!(
                    "desired vifs from the host file {}",
                    t.source
                        .as_ref()
                        .map_or("-".into(), |p| p.display().to_string())
                ),
                None => "desired vifs from what xl recorded (/libxl)".to_string(),
            },
        );
        let mut next = self.pass_logged().await;
        loop {
            let wake = tokio::time::Instant::now() + next.unwrap_or(self.opts.rescan);
            tokio::select! {
                () = &mut stop => break,
                ev = events.next() => match ev {
                    None => return Err(Error::Host("xenstore watches ended".into())),
                    Some(Err(e)) => return Err(Error::xs("xenstore watch")(e)),
                    Some(Ok(ev)) => {
                        self.note_state(&ev.path).await;
                        // Debounce: take everything that arrives together.
                        let until = tokio::time::Instant::now() + DEBOUNCE;
                        while let Ok(Some(Ok(ev))) = tokio::time::timeout_at(until, events.next()).await {
                            self.note_state(&ev.path).await;
                        }
                    }
                },
                Some(done) = self.configuring.next(), if !self.configuring.is_empty() => {
                    self.configured(done);
                    continue;
                }
                () = tokio::time::sleep_until(wake) => {}
            }
            next = self.pass_logged().await;
        }
        // Finish what was started (bounded: each has its own deadline).
        while let Some(done) = self.configuring.next().await {
            self.configured(done);
        }
        self.event(
            EventKind::Action,
            "Domain-0",
            Some(0),
            None,
            "reconcile stopped",
            "asked to stop",
        );
        Ok(())
    }

    /// A guest-side configuration finished: report a failure.
    fn configured(&mut self, (w, fe, r): (WantVif, u16, Result<()>)) {
        if let Err(e) = r {
            let msg = crate::apply::error_chain(&e);
            self.event(
                EventKind::Error,
                &w.guest,
                Some(fe),
                Some(format!("vif/{}", w.devid)),
                "guest configuration failed",
                msg,
            );
        }
    }

    async fn pass_logged(&mut self) -> Option<Duration> {
        let t = std::time::Instant::now();
        let r = self.pass().await;
        tracing::debug!(
            millis = t.elapsed().as_millis(),
            ok = r.is_ok(),
            "reconcile pass"
        );
        match r {
            Ok(n) => n,
            Err(e) => {
                let msg = crate::apply::error_chain(&e);
                self.event(
                    EventKind::Error,
                    "Domain-0",
                    Some(0),
                    None,
                    "pass failed",
                    msg,
                );
                Some(Duration::from_secs(1))
            }
        }
    }

    /// A watch event: if it is a vif's state or hotplug status, record
    /// the change as an event.
    async fn note_state(&mut self, path: &str) {
        let Some((fe, devid, side)) = state_path(path) else {
            return;
        };
        let value = read_text(self.xs(), path).await.ok().flatten();
        let shown = value.clone().unwrap_or_else(|| "removed".to_string());
        if self.states.get(path) == Some(&shown) {
            return;
        }
        if value.is_none() && !self.states.contains_key(path) {
            return;
        }
        self.states.insert(path.to_string(), shown.clone());
        let guest = self.name_of(fe).await;
        let (what, reason) = match side {
            Side::Frontend => (
                format!("frontend state {}", state_word(&shown)),
                String::new(),
            ),
            Side::Backend(be) => (
                format!("backend state {}", state_word(&shown)),
                format!("backend in {}", self.name_of(be).await),
            ),
            Side::Hotplug(be) => (
                format!(
                    "hotplug-status {}",
                    if shown.is_empty() { "(empty)" } else { &shown }
                ),
                format!("agent of {}", self.name_of(be).await),
            ),
        };
        self.event(
            EventKind::State,
            &guest,
            Some(fe),
            Some(format!("vif/{devid}")),
            what,
            reason,
        );
    }

    async fn name_of(&mut self, domid: u16) -> String {
        if let Some(n) = self.names.get(&domid) {
            return n.clone();
        }
        let n = read_text(self.xs(), &format!("/local/domain/{domid}/name"))
            .await
            .ok()
            .flatten();
        match n {
            Some(n) => {
                self.names.insert(domid, n.clone());
                n
            }
            None => format!("domain {domid}"),
        }
    }
}

enum Side {
    Frontend,
    Backend(u16),
    Hotplug(u16),
}

/// `(frontend, devid, side)` of a vif's `state` / `hotplug-status` path.
fn state_path(path: &str) -> Option<(u16, u32, Side)> {
    let rest = path.strip_prefix("/local/domain/")?;
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        [fe, "device", "vif", n, "state"] => {
            Some((fe.parse().ok()?, n.parse().ok()?, Side::Frontend))
        }
        [be, "backend", "vif", fe, n, key] => {
            let be = be.parse().ok()?;
            let side = match *key {
                "state" => Side::Backend(be),
                "hotplug-status" => Side::Hotplug(be),
                _ => return None,
            };
            Some((fe.parse().ok()?, n.parse().ok()?, side))
        }
        _ => None,
    }
}

fn state_word(v: &str) -> String {
    match xenbus::XenbusState::parse_bytes(v.as_bytes()) {
        Ok(s) => format!("{} ({v})", s.name()),
        Err(_) => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_paths() {
        assert!(matches!(
            state_path("/local/domain/5/device/vif/0/state"),
            Some((5, 0, Side::Frontend))
        ));
        assert!(matches!(
            state_path("/local/domain/3/backend/vif/5/1/state"),
            Some((5, 1, Side::Backend(3)))
        ));
        assert!(matches!(
            state_path("/local/domain/3/backend/vif/5/1/hotplug-status"),
            Some((5, 1, Side::Hotplug(3)))
        ));
        assert!(state_path("/local/domain/3/backend/vif/5/1/mac").is_none());
        assert!(state_path("/libxl/5/device/vif/0/state").is_none());
    }
}
