//! What the agent tells dom0 about itself, under its own writable home
//! `/local/domain/<self>/data/drvdom` (AGENT_XS_SCHEMA.md, paths and
//! encodings in `xenbus::agent`): its state, version and pid, and every
//! bridge of this domain with its uplink, MTU and ports — the `brctl show`
//! of the driver domain, readable from dom0.
//!
//! The kernel's links are read once (a dump at start, and again only if
//! notifications were lost) and then followed from link notifications
//! applied to a model in memory, so a publish costs no kernel dump however
//! many vifs the domain has. Publishing writes only what changed since the
//! last time (a driver domain with 1000 vifs must not rewrite 1000 nodes
//! per event) and removes what is gone, including what an earlier run of
//! the agent left.

use std::collections::{BTreeMap, HashMap};

use hotplug::{Hotplug, LinkState, LinkUpdate, OperState};
use tracing::debug;
use xenbus::agent::{AgentState, PortRecord, agent_dir, node_name, published_bridges_dir};
use xenstore::{AsyncClient, DomId};

/// Writes the agent's publication, remembering what is there.
#[derive(Debug)]
pub(crate) struct Publisher {
    client: AsyncClient,
    domid: DomId,
    /// Path → value of every leaf published under `bridges`.
    published: BTreeMap<String, String>,
    /// Bridge directories published.
    bridge_dirs: BTreeMap<String, ()>,
    seeded: bool,
    error: Option<String>,
    /// The kernel's links, by interface index.
    links: HashMap<u32, LinkState>,
}

impl Publisher {
    pub(crate) fn new(client: AsyncClient, domid: DomId) -> Publisher {
        Publisher {
            client,
            domid,
            published: BTreeMap::new(),
            bridge_dirs: BTreeMap::new(),
            seeded: false,
            error: None,
            links: HashMap::new(),
        }
    }

    /// `agent/state`, with `version` and `pid`.
    pub(crate) async fn state(&self, st: AgentState) -> xenstore::Result<()> {
        let dir = agent_dir(self.domid);
        self.client
            .write(&format!("{dir}/version"), env!("CARGO_PKG_VERSION"))
            .await?;
        self.client
            .write(&format!("{dir}/pid"), std::process::id().to_string())
            .await?;
        self.client
            .write(&format!("{dir}/state"), st.as_str())
            .await
    }

    /// `agent/error`: the bridge problems, or nothing.
    pub(crate) async fn error(&mut self, problems: &[String]) -> xenstore::Result<()> {
        let text = (!problems.is_empty()).then(|| problems.join("; "));
        if text == self.error {
            return Ok(());
        }
        let p = format!("{}/error", agent_dir(self.domid));
        match &text {
            Some(t) => {
                let mut t = t.clone();
                t.truncate(1024);
                self.client.write(&p, t).await?;
            }
            None => match self.client.rm(&p).await {
                Err(e) if !e.is_not_found() => return Err(e),
                _ => {}
            },
        }
        self.error = text;
        Ok(())
    }

    /// What an earlier run left: every leaf under `bridges`.
    async fn seed(&mut self) -> xenstore::Result<()> {
        let dir = published_bridges_dir(self.domid);
        let client = self.client.clone();
        let client = &client;
        let list = |p: String| async move {
            match client.directory(&p).await {
                Ok(v) => Ok(v),
                Err(e) if e.is_not_found() => Ok(Vec::new()),
                Err(e) => Err(e),
            }
        };
        let mut leaves = Vec::new();
        let mut dirs = Vec::new();
        for b in list(dir.clone()).await? {
            let bdir = format!("{dir}/{b}");
            dirs.push(bdir.clone());
            for k in ["uplink", "mtu"] {
                leaves.push(format!("{bdir}/{k}"));
            }
            for p in list(format!("{bdir}/ports")).await? {
                leaves.push(format!("{bdir}/ports/{p}"));
            }
        }
        for l in leaves {
            // An impossible value: every one of them is rewritten or removed.
            self.published.insert(l, String::from("\0"));
        }
        for d in dirs {
            self.bridge_dirs.insert(d, ());
        }
        self.seeded = true;
        Ok(())
    }

    /// Read every link from the kernel (one dump).
    pub(crate) async fn resync(&mut self, hp: &Hotplug) -> Result<(), String> {
        let links = hotplug::link_states(hp.ops())
            .await
            .map_err(|e| e.to_string())?;
        self.links = links.into_iter().map(|l| (l.link.index, l)).collect();
        Ok(())
    }

    /// Apply link notifications to the model; false if some were lost
    /// (then [`Publisher::resync`]).
    pub(crate) fn apply(&mut self, updates: Vec<LinkUpdate>) -> bool {
        let mut complete = true;
        for u in updates {
            match u {
                LinkUpdate::Link(l) => {
                    self.links.insert(l.link.index, l);
                }
                LinkUpdate::Port {
                    index,
                    master,
                    forwarding,
                } => {
                    if let Some(l) = self.links.get_mut(&index) {
                        l.link.master = master;
                        l.forwarding = forwarding;
                    }
                }
                LinkUpdate::Gone { index } => {
                    self.links.remove(&index);
                }
                LinkUpdate::Overflow => complete = false,
            }
        }
        complete
    }

    /// Publish every bridge of this domain as the model has it, each vif
    /// port with its filter and drop counters (read from the kernel).
    /// `uplinks`: the uplink interface of each bridge this agent built.
    pub(crate) async fn bridges(
        &mut self,
        hp: &Hotplug,
        uplinks: &HashMap<String, String>,
    ) -> Result<(), String> {
        if !self.seeded {
            self.seed().await.map_err(|e| e.to_string())?;
        }
        let links = &self.links;
        // Every vif filter and its counters in one pass (two dumps).
        // `None` when unreadable: the ports are then published without.
        let filters: Option<HashMap<String, hotplug::FilterStatus>> =
            match hp.filter_statuses().await {
                Ok(v) => Some(v.into_iter().map(|s| (s.ifname.clone(), s)).collect()),
                Err(e) => {
                    debug!(error = %e, "cannot read the vif filters");
                    None
                }
            };
        let dir = published_bridges_dir(self.domid);
        let mut want: BTreeMap<String, String> = BTreeMap::new();
        let mut want_dirs: BTreeMap<String, ()> = BTreeMap::new();
        for b in links.values().filter(|l| l.link.is_bridge()) {
            let b = &b.link;
            let bdir = format!("{dir}/{}", node_name(&b.name));
            want_dirs.insert(bdir.clone(), ());
            want.insert(format!("{bdir}/mtu"), b.mtu.to_string());
            let uplink = uplinks.get(&b.name);
            let ports = links.values().filter(|p| p.link.master == Some(b.index));
            for p in ports {
                let name = &p.link.name;
                if Some(name) == uplink {
                    want.insert(format!("{bdir}/uplink"), name.clone());
                }
                let vif = if Some(name) == uplink {
                    None
                } else {
                    vif_of(name)
                };
                // The vif's filter and its drop counters (not the uplink's:
                // it has none).
                let (filter, drops) = if Some(name) == uplink {
                    (None, None)
                } else {
                    match filters.as_ref().map(|f| f.get(name)) {
                        Some(Some(st)) => (
                            Some(st.mode.to_string()),
                            Some(crate::vif_filter::port_drops(st)),
                        ),
                        Some(None) => (Some("off".to_string()), None),
                        None => (None, None),
                    }
                };
                let rec = PortRecord {
                    name: String::new(),
                    vif,
                    up: p.link.oper == OperState::Up,
                    fwd: p.forwarding.unwrap_or(false),
                    filter,
                    drops,
                };
                want.insert(format!("{bdir}/ports/{}", node_name(name)), rec.to_json());
            }
        }
        let c = &self.client;
        let mut writes = 0usize;
        for (path, value) in &want {
            if self.published.get(path) != Some(value) {
                c.write(path, value).await.map_err(|e| e.to_string())?;
                writes += 1;
            }
        }
        let stale: Vec<String> = self
            .published
            .keys()
            .filter(|p| !want.contains_key(*p))
            .cloned()
            .collect();
        for p in &stale {
            // Under a bridge that is gone as a whole: removed with it below.
            let dir_gone = self
                .bridge_dirs
                .keys()
                .any(|d| !want_dirs.contains_key(d) && p.starts_with(&format!("{d}/")));
            if !dir_gone {
                rm(c, p).await?;
            }
        }
        for d in self.bridge_dirs.keys() {
            if !want_dirs.contains_key(d) {
                rm(c, d).await?;
            }
        }
        if writes > 0 || !stale.is_empty() {
            debug!(writes, removed = stale.len(), "bridges published");
        }
        self.published = want;
        self.bridge_dirs = want_dirs;
        Ok(())
    }
}

async fn rm(c: &AsyncClient, p: &str) -> Result<(), String> {
    match c.rm(p).await {
        Err(e) if !e.is_not_found() => Err(e.to_string()),
        _ => Ok(()),
    }
}

/// `(frontend, devid)` of a vif named as netback names it (`vif<fe>.<devid>`,
/// Linux `xenvif_alloc`); renamed vifs (`vifname`) publish without it.
fn vif_of(ifname: &str) -> Option<(u16, u32)> {
    let rest = ifname.strip_prefix("vif")?;
    let (fe, devid) = rest.split_once('.')?;
    let fe: u16 = fe.parse().ok()?;
    let devid: u32 = devid.parse().ok()?;
    // Canonical numbers only (`vif01.0` is not netback's).
    (format!("vif{fe}.{devid}") == ifname).then_some((fe, devid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vif_names_give_their_ids() {
        assert_eq!(vif_of("vif5.0"), Some((5, 0)));
        assert_eq!(vif_of("vif12.3"), Some((12, 3)));
        assert_eq!(vif_of("vif01.0"), None);
        assert_eq!(vif_of("nic0"), None);
        assert_eq!(vif_of("vif5"), None);
    }
}
