//! One reconcile pass: observe domains and vifs, clean up what dead
//! backends left, re-create waiting vifs toward returned backends, and
//! notice reconnections. Every decision is taken from what is observed
//! now plus the remembered [`WantVif`]s, so a pass can be interrupted at
//! any point (SIGKILL) and the next daemon's first pass carries on.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use xenbus::VifInfo;
use xenstore::{Access, AsyncClient, DomId};

use super::Reconciler;
use super::journal::{EventKind, now_ms};
use super::memory::{self, Phase, WantVif};
use crate::error::{Error, Result};
use crate::host::Host;
use crate::observe::{self, read_text};

/// Vifs re-created (or configured in the guest) at once.
const PARALLEL: usize = 32;

/// A domain as one pass sees it.
#[derive(Debug, Clone)]
struct Dom {
    name: Option<String>,
    introduced: bool,
    agent: Option<String>,
}

impl Dom {
    fn running(&self) -> bool {
        self.introduced && self.name.is_some()
    }
}

fn vif_up(i: &VifInfo) -> bool {
    use xenbus::XenbusState::Connected;
    i.frontend_state == Some(Connected)
        && i.backend_state == Some(Connected)
        && i.hotplug_status.as_deref() == Some(xenbus::vif::HOTPLUG_CONNECTED)
}

fn dev(devid: u32) -> Option<String> {
    Some(format!("vif/{devid}"))
}

/// Let driver domain `be` read guest `fe`'s `name` node (what apply's
/// `grant-name-read` does), so its agent and `bridge show` name the guest.
pub(crate) async fn grant_name_read(xs: &AsyncClient, fe: DomId, be: DomId) -> Result<bool> {
    let path = format!("{}/name", fe.path());
    let p2 = path.clone();
    xs.transaction(move |tx| {
        let path = p2.clone();
        async move {
            let perms = tx.get_perms(&path).await?;
            if perms.access_of(be).can_read() {
                return Ok(false);
            }
            tx.set_perms(&path, &perms.with(Access::Read, be)).await?;
            Ok(true)
        }
        .boxed()
    })
    .await
    .map_err(Error::xs(format!("let domain {be} read {path}")))
}

impl<H: Host> Reconciler<'_, H> {
    /// Report a wait once per (vif, reason).
    fn wait_once(&mut self, w: &WantVif, fe: Option<u16>, what: String, reason: String) {
        let k = w.key();
        let tag = format!("{what}|{reason}");
        if self.reported.get(&k) == Some(&tag) {
            return;
        }
        self.reported.insert(k, tag);
        self.event(EventKind::Wait, &w.guest, fe, dev(w.devid), what, reason);
    }

    async fn save(&mut self, w: WantVif) -> Result<()> {
        memory::save_vif(self.xs(), &w).await?;
        self.wants.insert(w.key(), w);
        Ok(())
    }

    async fn forget(&mut self, key: &(String, u32)) -> Result<()> {
        memory::forget_vif(self.xs(), &key.0, key.1).await?;
        self.wants.remove(key);
        self.reported.remove(key);
        Ok(())
    }

    async fn observe_domains(&mut self) -> Result<BTreeMap<u16, Dom>> {
        let xs = self.xs().clone();
        let mut doms = BTreeMap::new();
        for id in observe::list_domids(&xs).await? {
            let base = DomId(id.0).path();
            let name = read_text(&xs, &format!("{base}/name")).await?;
            let introduced = id.0 == 0
                || match xs.is_introduced(id).await {
                    Ok(b) => b,
                    // A server without the query: trust the home.
                    Err(e) => {
                        tracing::debug!(domid = id.0, error = %e, "is_introduced");
                        true
                    }
                };
            let agent = read_text(&xs, &format!("{}/state", xenbus::agent::agent_dir(id))).await?;
            if let Some(n) = &name {
                self.names.insert(id.0, n.clone());
            }
            doms.insert(
                id.0,
                Dom {
                    name,
                    introduced,
                    agent,
                },
            );
        }
        Ok(doms)
    }

    /// Domains seen running that are gone or dead: forget them, and
    /// remove what a dead one left in xenstore (as xl would have).
    async fn bury_dead(&mut self, doms: &mut BTreeMap<u16, Dom>) -> Result<()> {
        let xs = self.xs().clone();
        for (id, d) in doms.iter() {
            if *id != 0 && d.running() {
                let name = d.name.clone().unwrap_or_default();
                if self.seen.get(id) != Some(&name) {
                    memory::save_seen(&xs, *id, &name).await?;
                    self.seen.insert(*id, name.clone());
                    self.event(
                        EventKind::Domain,
                        &name,
                        Some(*id),
                        None,
                        "running",
                        if d.agent.is_some() {
                            "introduced; it has a drvdom agent home"
                        } else {
                            "introduced"
                        },
                    );
                }
            }
        }
        for (id, name) in self.seen.clone() {
            let reason = match doms.get(&id) {
                None => {
                    Some("its xenstore home was removed (@releaseDomain, xl destroy)".to_string())
                }
                Some(d) if !d.introduced => {
                    xenbus::destroy_domain(&xs, DomId(id))
                        .await
                        .map_err(Error::xb(format!("remove what dead domain {id} left")))?;
                    doms.remove(&id);
                    Some(
                        "no longer introduced (@releaseDomain); removed the xenstore home it left"
                            .to_string(),
                    )
                }
                Some(d) if d.name.as_deref() != Some(name.as_str()) => Some(format!(
                    "its domid now belongs to {}",
                    d.name.as_deref().unwrap_or("a domain being built")
                )),
                Some(_) => None,
            };
            if let Some(reason) = reason {
                self.event(EventKind::Domain, &name, Some(id), None, "gone", reason);
                let removed = super::sweep::stale_backends_of(&xs, id).await?;
                if !removed.is_empty() {
                    self.event(
                        EventKind::Action,
                        &name,
                        Some(id),
                        None,
                        "remove stale backends",
                        format!(
                            "left by the dead domain {id}, so that no domain given domid {id} \
                             later inherits them: {}",
                            removed.join(", ")
                        ),
                    );
                }
                memory::forget_seen(&xs, id).await?;
                self.seen.remove(&id);
            }
        }
        Ok(())
    }

    /// xl mode: remember the bridge settings dom0 gave running driver
    /// domains, to give them back when they return.
    async fn learn_bridges(&mut self, doms: &BTreeMap<u16, Dom>) -> Result<()> {
        if self.opts.topology.is_some() {
            return Ok(());
        }
        for (id, d) in doms {
            let (Some(name), true, Some(_)) = (&d.name, d.running(), &d.agent) else {
                continue;
            };
            let (settings, _) = xenbus::agent::read_config(self.xs(), DomId(*id))
                .await
                .map_err(Error::xb(format!("read the bridge settings of {name}")))?;
            if !settings.is_empty() && self.bridges.get(name) != Some(&settings) {
                memory::save_bridges(self.xs(), name, &settings).await?;
                self.bridges.insert(name.clone(), settings);
            }
        }
        Ok(())
    }

    /// xl mode: a vif xl recorded toward a running backend.
    async fn learn_vif(
        &self,
        guest: &str,
        fe: u16,
        i: &VifInfo,
        be: u16,
        be_name: &str,
    ) -> Option<WantVif> {
        let xs = self.xs();
        let mac = i.mac?;
        let l = xenbus::LibxlPath::new(DomId(fe), xenbus::DeviceKind::Vif, i.devid);
        let key = |k: &'static str| {
            let p = l.key(k);
            async move { read_text(xs, &p).await.ok().flatten() }
        };
        let ip = key(xenbus::keys::IP)
            .await
            .map(|s| s.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default();
        let mtu = key(xenbus::keys::MTU).await.and_then(|m| m.parse().ok());
        let route = key(xenbus::keys::SCRIPT)
            .await
            .is_some_and(|s| s.ends_with("vif-route"));
        let trusted = read_text(xs, &i.frontend.key(xenbus::keys::TRUSTED))
            .await
            .ok()
            .flatten()
            .is_none_or(|t| t != "0");
        let l2_hygiene = match &i.backend {
            Some(bp) => read_text(xs, &bp.key(xenbus::keys::L2_HYGIENE))
                .await
                .ok()
                .flatten()
                .is_none_or(|t| t != "0"),
            None => true,
        };
        Some(WantVif {
            guest: guest.to_string(),
            devid: i.devid.0,
            backend: be_name.to_string(),
            mac: mac.to_string(),
            bridge: i.bridge.clone(),
            ip,
            mtu,
            route,
            trusted,
            l2_hygiene,
            phase: Phase::Active,
            since_ms: now_ms(),
            backend_domid: Some(be),
        })
    }

    /// One pass; returns when the next one is due at the latest.
    pub(super) async fn pass(&mut self) -> Result<Option<Duration>> {
        let xs = self.xs().clone();
        let file_mode = self.opts.topology.is_some();
        let mut next: Option<Duration> = None;
        let soon = |d: Duration, next: &mut Option<Duration>| {
            *next = Some(next.map_or(d, |n| n.min(d)));
        };
        let mut doms = self.observe_domains().await?;
        self.bury_dead(&mut doms).await?;
        self.learn_bridges(&doms).await?;
        let by_name: HashMap<String, u16> = doms
            .iter()
            .filter(|(_, d)| d.running())
            .filter_map(|(id, d)| d.name.clone().map(|n| (n, *id)))
            .collect();

        // 1. Every vif of every running guest.
        let mut observed: HashSet<(String, u32)> = HashSet::new();
        let mut connected: Vec<(WantVif, u16)> = Vec::new();
        for (fe, d) in &doms {
            let (true, Some(guest), false) = (d.running(), d.name.clone(), *fe == 0) else {
                continue;
            };
            let infos = match xenbus::list_vifs(&xs, DomId(*fe)).await {
                Ok(v) => v,
                Err(e) => {
                    tracing::debug!(fe, error = %e, "list vifs");
                    continue;
                }
            };
            for i in infos {
                let Some(bp) = i.backend else { continue };
                let key = (guest.clone(), i.devid.0);
                observed.insert(key.clone());
                let be = bp.be.0;
                let be_dom = doms.get(&be);
                let be_alive = be == 0 || be_dom.is_some_and(Dom::running);
                let be_name = if be == 0 {
                    Some(observe::DOM0_NAME.to_string())
                } else {
                    be_dom.and_then(|d| d.name.clone())
                };
                let want = self.wants.get(&key).cloned();
                let recycled = want.as_ref().is_some_and(|w| {
                    be_alive
                        && w.backend_domid == Some(be)
                        && be_name.as_deref() != Some(&w.backend)
                });
                if !be_alive || recycled {
                    let Some(mut w) = want else {
                        let w = WantVif {
                            guest: guest.clone(),
                            devid: i.devid.0,
                            backend: format!("domain {be}"),
                            mac: String::new(),
                            bridge: None,
                            ip: Vec::new(),
                            mtu: None,
                            route: false,
                            trusted: true,
                            l2_hygiene: true,
                            phase: Phase::Waiting,
                            since_ms: 0,
                            backend_domid: None,
                        };
                        self.wait_once(
                            &w,
                            Some(*fe),
                            "left alone".into(),
                            format!(
                                "its backend domain {be} is gone and this daemon never saw it \
                                 running, so it cannot know whom to re-create it toward \
                                 (remove it with `xl network-detach {guest} {}`)",
                                i.devid
                            ),
                        );
                        continue;
                    };
                    xenbus::remove_device_nodes(&xs, bp)
                        .await
                        .map_err(Error::xb(format!("clean up vif {} of {guest}", i.devid)))?;
                    let why = if recycled {
                        format!(
                            "its backend's domid {be} now belongs to {} (recycled), not {}",
                            be_name.as_deref().unwrap_or("?"),
                            w.backend
                        )
                    } else {
                        format!("its backend {} (domain {be}) is gone", w.backend)
                    };
                    self.event(
                        EventKind::Action,
                        &guest,
                        Some(*fe),
                        dev(i.devid.0),
                        "cleanup",
                        format!(
                            "{why}: removed the frontend, backend and /libxl nodes \
                             (mac {}); waiting for {} to come back",
                            w.mac, w.backend
                        ),
                    );
                    w.phase = Phase::Waiting;
                    w.since_ms = now_ms();
                    w.backend_domid = None;
                    self.reported.remove(&key);
                    self.save(w).await?;
                    soon(self.opts.reprobe_guard, &mut next);
                    continue;
                }
                let be_name = be_name.unwrap_or_default();
                let Some(mut w) = want else {
                    if !file_mode {
                        if let Some(w) = self.learn_vif(&guest, *fe, &i, be, &be_name).await {
                            self.event(
                                EventKind::Action,
                                &guest,
                                Some(*fe),
                                dev(w.devid),
                                "remember",
                                format!(
                                    "xl recorded it toward {be_name} (domain {be}), mac {}{}",
                                    w.mac,
                                    w.bridge
                                        .as_deref()
                                        .map(|b| format!(", bridge {b}"))
                                        .unwrap_or_default()
                                ),
                            );
                            self.save(w).await?;
                        }
                    }
                    continue;
                };
                if w.backend != be_name && w.backend_domid != Some(be) {
                    self.event(
                        EventKind::Action,
                        &guest,
                        Some(*fe),
                        dev(w.devid),
                        "follow",
                        format!("now served by {be_name} (domain {be}), was {}", w.backend),
                    );
                    w.backend = be_name;
                    w.backend_domid = Some(be);
                    w.phase = Phase::Active;
                    self.save(w).await?;
                    continue;
                }
                match w.phase {
                    Phase::Active => {
                        if w.backend_domid != Some(be) {
                            w.backend_domid = Some(be);
                            self.save(w).await?;
                        }
                    }
                    Phase::Waiting | Phase::Attaching => {
                        let since = now_ms().saturating_sub(w.since_ms);
                        if vif_up(&i) {
                            self.event(
                                EventKind::Action,
                                &guest,
                                Some(*fe),
                                dev(w.devid),
                                "reconnected",
                                format!(
                                    "both ends Connected toward {be_name} (domain {be}), \
                                     hotplug connected, {since} ms after the re-create"
                                ),
                            );
                            w.phase = Phase::Active;
                            w.backend_domid = Some(be);
                            w.since_ms = now_ms();
                            self.reported.remove(&key);
                            connected.push((w.clone(), *fe));
                            self.save(w).await?;
                        } else if w.phase == Phase::Attaching
                            && Duration::from_millis(since) > self.opts.vif_timeout
                        {
                            xenbus::remove_device_nodes(&xs, bp)
                                .await
                                .map_err(Error::xb(format!(
                                    "clean up vif {} of {guest}",
                                    i.devid
                                )))?;
                            self.event(
                                EventKind::Error,
                                &guest,
                                Some(*fe),
                                dev(w.devid),
                                "re-create timed out",
                                format!(
                                    "not Connected within {} s toward {be_name} (backend {}, \
                                     frontend {}, hotplug {}); removed it, will try again",
                                    self.opts.vif_timeout.as_secs(),
                                    i.backend_state.map_or("absent", |s| s.name()),
                                    i.frontend_state.map_or("absent", |s| s.name()),
                                    i.hotplug_status.as_deref().unwrap_or("absent")
                                ),
                            );
                            w.phase = Phase::Waiting;
                            w.since_ms = now_ms();
                            w.backend_domid = None;
                            self.save(w).await?;
                            soon(self.opts.reprobe_guard, &mut next);
                        } else {
                            if w.phase == Phase::Waiting {
                                // Re-created by someone else (apply): watch it connect.
                                w.phase = Phase::Attaching;
                                w.since_ms = now_ms();
                                w.backend_domid = Some(be);
                                self.save(w).await?;
                            }
                            soon(self.opts.vif_timeout, &mut next);
                        }
                    }
                }
            }
        }

        // 2. Remembered vifs that are not there.
        let mut to_attach: Vec<(WantVif, u16, u16)> = Vec::new();
        let mut configured: BTreeSet<u16> = BTreeSet::new();
        let keys: Vec<(String, u32)> = self
            .wants
            .keys()
            .filter(|k| !observed.contains(*k))
            .cloned()
            .collect();
        for key in keys {
            let Some(mut w) = self.wants.get(&key).cloned() else {
                continue;
            };
            let Some(&fe) = by_name.get(&w.guest) else {
                if w.phase != Phase::Active || !file_mode {
                    self.event(
                        EventKind::Action,
                        &w.guest,
                        None,
                        dev(w.devid),
                        "forget",
                        format!(
                            "guest {} is not running any more ({})",
                            w.guest,
                            w.phase.as_str()
                        ),
                    );
                    self.forget(&key).await?;
                }
                continue;
            };
            if w.phase == Phase::Active {
                if !file_mode {
                    self.event(
                        EventKind::Action,
                        &w.guest,
                        Some(fe),
                        dev(w.devid),
                        "forget",
                        format!("removed while its backend {} runs (detached)", w.backend),
                    );
                    self.forget(&key).await?;
                }
                continue;
            }
            if w.phase == Phase::Attaching {
                w.phase = Phase::Waiting;
                w.since_ms = now_ms();
                w.backend_domid = None;
                self.save(w.clone()).await?;
            }
            // Waiting: is its backend back, with a ready agent?
            let Some(&be) = by_name.get(&w.backend) else {
                let reason = format!("no running domain is called {}", w.backend);
                self.wait_once(&w, Some(fe), format!("waiting for {}", w.backend), reason);
                continue;
            };
            let agent = doms.get(&be).and_then(|d| d.agent.clone());
            if agent.as_deref() != Some("ready") {
                let reason = format!(
                    "{} is back as domain {be}; its agent is {}",
                    w.backend,
                    agent.as_deref().unwrap_or("not started")
                );
                self.wait_once(
                    &w,
                    Some(fe),
                    format!("waiting for {}'s agent", w.backend),
                    reason,
                );
                continue;
            }
            if let Some(settings) = self.bridges.get(&w.backend).cloned() {
                if !settings.is_empty() && !configured.contains(&be) {
                    let (have, _) =
                        xenbus::agent::read_config(&xs, DomId(be))
                            .await
                            .map_err(Error::xb(format!(
                                "read the bridge settings of {}",
                                w.backend
                            )))?;
                    if have != settings {
                        xenbus::agent::write_config(&xs, DomId(be), &settings)
                            .await
                            .map_err(Error::xb(format!(
                                "configure the bridges of {}",
                                w.backend
                            )))?;
                        let names: Vec<&str> = settings.iter().map(|b| b.name.as_str()).collect();
                        self.event(
                            EventKind::Action,
                            &w.backend,
                            Some(be),
                            None,
                            "configure bridges",
                            format!("back with no bridge settings; gave it {}", names.join(", ")),
                        );
                    }
                    configured.insert(be);
                }
            }
            if let (Some(br), false) = (&w.bridge, w.route) {
                let p = format!(
                    "{}/{}",
                    xenbus::agent::published_bridges_dir(DomId(be)),
                    xenbus::agent::node_name(br)
                );
                if !xs.exists(&p).await.unwrap_or(false) {
                    let reason = format!("{}'s agent has not built bridge {br} yet", w.backend);
                    self.wait_once(
                        &w,
                        Some(fe),
                        format!("waiting for {}'s bridge", w.backend),
                        reason,
                    );
                    continue;
                }
            }
            let age = Duration::from_millis(now_ms().saturating_sub(w.since_ms));
            if age < self.opts.reprobe_guard {
                soon(self.opts.reprobe_guard - age, &mut next);
                continue;
            }
            to_attach.push((w, fe, be));
        }

        // 3. Re-create: guests in parallel, each guest's vifs one after
        //    the other (creating sibling nodes — a guest's vifs — in
        //    concurrent transactions makes them conflict and retry).
        let mut by_guest: BTreeMap<u16, Vec<(WantVif, u16)>> = BTreeMap::new();
        for (w, fe, be) in to_attach {
            by_guest.entry(fe).or_default().push((w, be));
        }
        let results: Vec<(WantVif, u16, u16, Result<()>)> = futures::stream::iter(by_guest)
            .map(|(fe, vifs)| {
                let xs = xs.clone();
                async move {
                    let mut out = Vec::with_capacity(vifs.len());
                    for (w, be) in vifs {
                        let r = recreate(&xs, &w, fe, be).await;
                        out.push((w, fe, be, r));
                    }
                    out
                }
            })
            .buffer_unordered(PARALLEL)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .flatten()
            .collect();
        for (mut w, fe, be, r) in results {
            match r {
                Ok(()) => {
                    self.event(
                        EventKind::Action,
                        &w.guest,
                        Some(fe),
                        dev(w.devid),
                        "re-create",
                        format!(
                            "{} is back as domain {be} with its agent ready: same devid, mac {}{}",
                            w.backend,
                            w.mac,
                            w.bridge
                                .as_deref()
                                .map(|b| format!(", bridge {b}"))
                                .unwrap_or_default()
                        ),
                    );
                    w.phase = Phase::Attaching;
                    w.since_ms = now_ms();
                    w.backend_domid = Some(be);
                    self.save(w).await?;
                    soon(self.opts.vif_timeout, &mut next);
                }
                Err(e) => {
                    let msg = crate::apply::error_chain(&e);
                    self.event(
                        EventKind::Error,
                        &w.guest,
                        Some(fe),
                        dev(w.devid),
                        "re-create failed",
                        msg,
                    );
                    soon(Duration::from_secs(1), &mut next);
                }
            }
        }

        // 4. The guest's own configuration of reconnected vifs (the
        //    simulated host's ifup; nothing on a real host), in the
        //    background: a guest's interface may take a second to come up,
        //    and the next vifs must not wait for it.
        let host = self.host;
        for (w, fe) in connected {
            self.configuring.push(Box::pin(async move {
                let r = match w.to_vif() {
                    Some(v) => host.vif_connected(&w.guest, DomId(fe), &v).await,
                    None => Ok(()),
                };
                (w, fe, r)
            }));
        }
        Ok(next)
    }
}

/// Re-create one waiting vif toward `be`: the guest's name readable to
/// it, then the vif with the remembered devid, MAC and settings (one
/// transaction, stale nodes removed first).
async fn recreate(xs: &AsyncClient, w: &WantVif, fe: u16, be: u16) -> Result<()> {
    let vif = w
        .to_vif()
        .ok_or_else(|| Error::Host(format!("remembered MAC {:?} does not parse", w.mac)))?;
    grant_name_read(xs, DomId(fe), DomId(be)).await?;
    let cfg = crate::apply::vif_config(&vif, DomId(be));
    xenbus::attach_vif(xs, DomId(fe), &cfg)
        .await
        .map_err(Error::xb(format!(
            "re-create vif {} of {}",
            w.devid, w.guest
        )))?;
    Ok(())
}
