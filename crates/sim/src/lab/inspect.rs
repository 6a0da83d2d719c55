//! `lab down` and `lab status`.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use xenstore::DomId;

use super::state::{self, DomainRec, LabState, ProcRec};
use super::{SimHost, procs};
use crate::error::{Error, Result};
use crate::link::{self, LinkView};
use crate::netns;

/// What [`down`] removed.
#[derive(Debug, Default, Clone, Serialize)]
pub struct DownReport {
    /// Processes stopped.
    pub processes: Vec<i32>,
    /// Namespaces deleted.
    pub namespaces: Vec<String>,
    /// Whether the lab's state (record, sockets, namespace map) existed
    /// and was removed.
    pub dir_removed: bool,
    /// Where the processes' logs were kept (`None`: purged, or none).
    pub logs: Option<std::path::PathBuf>,
}

/// Remove everything lab `name` made: its recorded processes and any
/// other process carrying its `DRVDOM_LAB` mark, every process inside a
/// namespace with the lab's prefix, those namespaces (and so every link in
/// them) and its directory except the processes' logs, which stay in
/// `<dir>/logs` for a post-mortem ([`DownReport::logs`]; [`purge`] removes
/// them too). Idempotent; needs neither xenstored nor a readable record.
pub async fn down(run_root: &Path, name: &str) -> Result<DownReport> {
    down_impl(run_root, name, false).await
}

/// [`down`], and the logs removed as well.
pub async fn purge(run_root: &Path, name: &str) -> Result<DownReport> {
    down_impl(run_root, name, true).await
}

async fn down_impl(run_root: &Path, name: &str, purge: bool) -> Result<DownReport> {
    state::check_name(name)?;
    let dir = state::lab_dir(run_root, name);
    let mut rep = DownReport::default();
    let mut pids: Vec<i32> = procs::marked(name);
    // A damaged state file must not stop the cleanup.
    if let Ok(Some(st)) = LabState::load(&dir) {
        pids.extend(
            st.procs
                .iter()
                .map(|p| p.pid)
                .filter(|p| procs::belongs_to(*p, name)),
        );
    }
    let namespaces = netns::list_with_prefix(&netns::lab_prefix(name))?;
    for ns in &namespaces {
        pids.extend(netns::pids(ns).unwrap_or_default());
    }
    pids.sort_unstable();
    pids.dedup();
    let me = i32::try_from(std::process::id()).unwrap_or(-1);
    pids.retain(|p| *p != me && *p > 1);
    // All at once: each gets SIGTERM, then SIGKILL after a grace period.
    rep.processes = procs::stop_all(pids, Duration::from_secs(3)).await;
    for ns in namespaces {
        netns::delete(&ns)?;
        rep.namespaces.push(ns);
    }
    let remove = |p: &Path| {
        let r = if p.is_dir() {
            std::fs::remove_dir_all(p)
        } else {
            std::fs::remove_file(p)
        };
        r.map_err(|source| Error::File {
            what: "remove",
            path: p.to_path_buf(),
            source,
        })
    };
    if dir.exists() {
        let logs = dir.join(state::LOG_DIR);
        let has_logs = std::fs::read_dir(&logs).is_ok_and(|mut d| d.next().is_some());
        if purge || !has_logs {
            remove(&dir)?;
        } else {
            // Everything but the logs: the lab no longer exists (no
            // record, no namespaces), its logs stay for a post-mortem.
            for e in std::fs::read_dir(&dir)
                .map_err(|source| Error::File {
                    what: "list",
                    path: dir.clone(),
                    source,
                })?
                .flatten()
            {
                if e.file_name() != state::LOG_DIR {
                    remove(&e.path())?;
                }
            }
            rep.logs = Some(logs);
        }
        rep.dir_removed = true;
    }
    Ok(rep)
}

/// One lab under the run root, for `lab list`.
#[derive(Debug, Clone, Serialize)]
pub struct LabSummary {
    /// Its name.
    pub name: String,
    /// `running` (a record), `down` (only its logs are left) or `orphaned`
    /// (namespaces without a record: `lab down` removes them).
    pub state: &'static str,
    /// Its directory.
    pub dir: std::path::PathBuf,
    /// Domains (with dom0), when running.
    pub domains: usize,
    /// Processes recorded, when running.
    pub processes: usize,
    /// Of those, how many are dead.
    pub dead: usize,
    /// The logs directory, if it has logs.
    pub logs: Option<std::path::PathBuf>,
}

impl LabSummary {
    /// A lab that exists (`running` or `orphaned`), not just its logs.
    pub fn exists(&self) -> bool {
        self.state != "down"
    }
}

/// Every lab under `run_root`, and labs whose namespaces exist without a
/// record, sorted by name.
pub fn list(run_root: &Path) -> Vec<LabSummary> {
    let mut out: Vec<LabSummary> = Vec::new();
    for e in std::fs::read_dir(run_root).into_iter().flatten().flatten() {
        let Ok(name) = e.file_name().into_string() else {
            continue;
        };
        if state::check_name(&name).is_err() || !e.path().is_dir() {
            continue;
        }
        let dir = e.path();
        let logs_dir = dir.join(state::LOG_DIR);
        let logs = std::fs::read_dir(&logs_dir)
            .is_ok_and(|mut d| d.next().is_some())
            .then_some(logs_dir);
        let rec = LabState::load(&dir).ok().flatten();
        let (state, domains, processes, dead) = match &rec {
            Some(st) => (
                "running",
                st.domains.len(),
                st.procs.len(),
                st.procs
                    .iter()
                    .filter(|p| !(procs::alive(p.pid) && procs::belongs_to(p.pid, &st.name)))
                    .count(),
            ),
            None if !netns::list_with_prefix(&netns::lab_prefix(&name))
                .unwrap_or_default()
                .is_empty() =>
            {
                ("orphaned", 0, 0, 0)
            }
            None if logs.is_some() => ("down", 0, 0, 0),
            None => continue,
        };
        out.push(LabSummary {
            name,
            state,
            dir,
            domains,
            processes,
            dead,
            logs,
        });
    }
    // Namespaces of labs without a directory at all.
    for ns in netns::list_with_prefix("drvdom-").unwrap_or_default() {
        let Some(name) = ns
            .strip_prefix("drvdom-")
            .and_then(|r| r.split_once('-'))
            .map(|(n, _)| n.to_string())
        else {
            continue;
        };
        if state::check_name(&name).is_err() || out.iter().any(|l| l.name == name) {
            continue;
        }
        out.push(LabSummary {
            dir: state::lab_dir(run_root, &name),
            name,
            state: "orphaned",
            domains: 0,
            processes: 0,
            dead: 0,
            logs: None,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// One vif in [`status`].
#[derive(Debug, Clone, Serialize)]
pub struct VifStatus {
    /// Device id.
    pub devid: u32,
    /// Backend domain id.
    pub backend: Option<u16>,
    /// Frontend state name.
    pub frontend_state: Option<String>,
    /// Backend state name.
    pub backend_state: Option<String>,
    /// `hotplug-status`.
    pub hotplug_status: Option<String>,
    /// MAC.
    pub mac: Option<String>,
    /// Bridge.
    pub bridge: Option<String>,
}

/// One domain in [`status`].
#[derive(Debug, Clone, Serialize)]
pub struct DomainStatus {
    /// The record.
    #[serde(flatten)]
    pub domain: DomainRec,
    /// Introduced to xenstored?
    pub introduced: bool,
    /// Its vifs (as frontend).
    pub vifs: Vec<VifStatus>,
    /// Its links (name, master, up).
    pub links: Vec<LinkView>,
}

/// One process in [`status`].
#[derive(Debug, Clone, Serialize)]
pub struct ProcStatus {
    /// The record.
    #[serde(flatten)]
    pub process: ProcRec,
    /// Still running.
    pub alive: bool,
}

/// Everything `lab status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Lab name.
    pub name: String,
    /// Processes.
    pub processes: Vec<ProcStatus>,
    /// Domains.
    pub domains: Vec<DomainStatus>,
    /// NICs.
    pub nics: Vec<state::NicRec>,
}

/// Read the lab's domains, devices, links and processes.
pub async fn status(host: &SimHost) -> Result<Status> {
    let st = host.state();
    let dom0 = host.dom0();
    let mut domains = Vec::new();
    for d in &st.domains {
        let introduced = d.domid == 0 || dom0.is_introduced(DomId(d.domid)).await.unwrap_or(false);
        let vifs = xenbus::list_vifs(dom0, DomId(d.domid))
            .await
            .map_err(Error::xb(format!("list vifs of {}", d.name)))?
            .into_iter()
            .map(|v| VifStatus {
                devid: v.devid.0,
                backend: v.backend.as_ref().map(|b| b.be.0),
                frontend_state: v.frontend_state.map(|s| s.name().to_string()),
                backend_state: v.backend_state.map(|s| s.name().to_string()),
                hotplug_status: v.hotplug_status.clone(),
                mac: v.mac.map(|m| m.to_string()),
                bridge: v.bridge.clone(),
            })
            .collect();
        let links = link::list_in(&netns::ns_path(&d.netns))
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|l| l.name != "lo")
            .collect();
        domains.push(DomainStatus {
            domain: d.clone(),
            introduced,
            vifs,
            links,
        });
    }
    let processes = st
        .procs
        .iter()
        .map(|p| ProcStatus {
            process: p.clone(),
            alive: procs::alive(p.pid) && procs::belongs_to(p.pid, &st.name),
        })
        .collect();
    Ok(Status {
        name: st.name.clone(),
        processes,
        domains,
        nics: st.nics.clone(),
    })
}
