//! Step 2: attach many vifs from dom0 and time them to Connected on both
//! ends, seen through watches (one on the driver domain's `backend/vif`,
//! one per guest on its `device/vif`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use futures::future::FutureExt;
use futures::stream::SelectAll;
use tokio::sync::watch;
use xenbus::{DevId, VifConfig, XenbusState};
use xenstore::{AsyncClient, DomId};

use crate::env::DD;

/// Which end of a vif a state node belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Back,
    Front,
}

/// What a watched node is: a vif's `state` (either end) or its backend's
/// `hotplug-status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    State(End),
    HotplugStatus,
}

/// `(node, fe, devid)` of a path
/// `/local/domain/<be>/backend/vif/<fe>/<devid>/{state,hotplug-status}` or
/// `/local/domain/<fe>/device/vif/<devid>/state`.
fn vif_node(path: &str) -> Option<(Node, u16, u32)> {
    let rest = path.strip_prefix("/local/domain/")?;
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        [_be, "backend", "vif", fe, devid, key] => {
            let node = match *key {
                "state" => Node::State(End::Back),
                "hotplug-status" => Node::HotplugStatus,
                _ => return None,
            };
            Some((node, fe.parse().ok()?, devid.parse().ok()?))
        }
        [fe, "device", "vif", devid, "state"] => Some((
            Node::State(End::Front),
            fe.parse().ok()?,
            devid.parse().ok()?,
        )),
        _ => None,
    }
}

/// When each vif was first seen in each phase.
#[derive(Debug, Default)]
struct Seen {
    /// Backend InitWait or later (netback created the interface).
    initwait: HashMap<(u16, u32), Instant>,
    /// `hotplug-status = connected` (the agent's hotplug done).
    hotplug: HashMap<(u16, u32), Instant>,
    back: HashMap<(u16, u32), Instant>,
    front: HashMap<(u16, u32), Instant>,
    /// Time both ends were Connected.
    both: HashMap<(u16, u32), Instant>,
}

/// Follows state nodes through watches and counts vifs Connected on both ends.
struct Tracker {
    seen: Arc<Mutex<Seen>>,
    count: watch::Receiver<usize>,
    task: tokio::task::JoinHandle<()>,
}

impl Tracker {
    async fn start(dom0: &AsyncClient, guests: &[DomId]) -> anyhow::Result<Tracker> {
        let mut streams = SelectAll::new();
        let be = format!("{}/backend/vif", DD.path());
        streams.push(
            dom0.watch(&be, "labbench-be")
                .await
                .context("watch backends")?,
        );
        for g in guests {
            let p = format!("{}/device/vif", g.path());
            streams.push(
                dom0.watch(&p, &format!("labbench-fe{}", g.0))
                    .await
                    .with_context(|| format!("watch {p}"))?,
            );
        }
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (tx, count) = watch::channel(0usize);
        let client = dom0.clone();
        let seen2 = seen.clone();
        let task = tokio::spawn(async move {
            while let Some(ev) = streams.next().await {
                let Ok(ev) = ev else { continue };
                let now = Instant::now();
                let Some((node, fe, devid)) = vif_node(&ev.path) else {
                    continue;
                };
                let Some(value) = client.read_opt(&ev.path).await.ok().flatten() else {
                    continue;
                };
                let state = XenbusState::parse_bytes(&value).ok();
                let key = (fe, devid);
                let mut s = match seen2.lock() {
                    Ok(s) => s,
                    Err(p) => p.into_inner(),
                };
                match (node, state) {
                    (Node::HotplugStatus, _) => {
                        if value == b"connected" {
                            s.hotplug.entry(key).or_insert(now);
                        }
                        continue;
                    }
                    (
                        Node::State(End::Back),
                        Some(XenbusState::InitWait | XenbusState::Initialised),
                    ) => {
                        s.initwait.entry(key).or_insert(now);
                        continue;
                    }
                    (Node::State(End::Back), Some(XenbusState::Connected)) => {
                        s.initwait.entry(key).or_insert(now);
                        s.back.entry(key).or_insert(now);
                    }
                    (Node::State(End::Front), Some(XenbusState::Connected)) => {
                        s.front.entry(key).or_insert(now);
                    }
                    _ => continue,
                }
                if !s.both.contains_key(&key)
                    && let (Some(b), Some(f)) = (s.back.get(&key), s.front.get(&key))
                {
                    let t = (*b).max(*f);
                    s.both.insert(key, t);
                    let n = s.both.len();
                    drop(s);
                    let _ = tx.send(n);
                }
            }
        });
        Ok(Tracker { seen, count, task })
    }

    /// Wait until at least `n` vifs are Connected on both ends.
    async fn wait_for(&mut self, n: usize, deadline: Instant) -> anyhow::Result<()> {
        let left = deadline.saturating_duration_since(Instant::now());
        let r = tokio::time::timeout(left, self.count.wait_for(|c| *c >= n))
            .await
            .map(|r| r.map(|_| ()));
        match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => bail!("the watch on xenstore ended"),
            Err(_) => bail!(
                "timed out: {} of {n} vifs Connected on both ends",
                *self.count.borrow()
            ),
        }
    }

    /// (InitWait, hotplug connected, both Connected) of a vif.
    fn phases(&self, key: (u16, u32)) -> (Option<Instant>, Option<Instant>, Option<Instant>) {
        let s = match self.seen.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        (
            s.initwait.get(&key).copied(),
            s.hotplug.get(&key).copied(),
            s.both.get(&key).copied(),
        )
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One attached vif.
#[derive(Debug, Clone, Copy)]
pub struct Attached {
    /// Guest.
    pub fe: DomId,
    /// Device id.
    pub devid: DevId,
    /// Attach → Connected on both ends.
    pub latency: Duration,
    /// Attach → backend InitWait (netback made the interface), if seen.
    pub to_initwait: Option<Duration>,
    /// Attach → `hotplug-status = connected` (agent done), if seen.
    pub to_hotplug: Option<Duration>,
}

/// One batch (consecutive attaches, waited for together).
#[derive(Debug, Clone)]
pub struct Batch {
    /// Vifs in it.
    pub vifs: Vec<Attached>,
    /// First attach → last vif Connected.
    pub wall: Duration,
    /// Time spent in dom0's `attach_vif` calls (the toolstack's part).
    pub attach_calls: Duration,
}

impl Batch {
    /// Wall time per vif (throughput cost), ms.
    pub fn per_vif_ms(&self) -> f64 {
        ms(self.wall) / self.vifs.len().max(1) as f64
    }

    /// Median attach→Connected latency, ms.
    pub fn median_latency_ms(&self) -> f64 {
        median(self.vifs.iter().map(|a| ms(a.latency)).collect())
    }

    /// Medians of attach→InitWait and attach→hotplug connected, ms.
    pub fn median_phases_ms(&self) -> (f64, f64) {
        (
            median(
                self.vifs
                    .iter()
                    .filter_map(|a| a.to_initwait)
                    .map(ms)
                    .collect(),
            ),
            median(
                self.vifs
                    .iter()
                    .filter_map(|a| a.to_hotplug)
                    .map(ms)
                    .collect(),
            ),
        )
    }
}

/// Everything step 2 measured.
#[derive(Debug, Clone)]
pub struct AttachResult {
    /// Batches in order.
    pub batches: Vec<Batch>,
    /// First attach → all Connected.
    pub total: Duration,
}

impl AttachResult {
    /// All vifs, in attach order.
    pub fn vifs(&self) -> impl Iterator<Item = &Attached> {
        self.batches.iter().flat_map(|b| b.vifs.iter())
    }
}

/// The median (robust to the bursts of a shared machine).
fn median_duration(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Milliseconds as a float.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Median cost of a small dom0 transaction (list a guest's `device/vif`,
/// write one key) over `n` runs on an otherwise idle store: how the
/// server's transaction cost grows with the tree, free of conflicts.
pub async fn probe_transaction(
    dom0: &AsyncClient,
    guest: DomId,
    n: u32,
) -> anyhow::Result<Duration> {
    let dir = format!("{}/device/vif", guest.path());
    let mut each = Vec::new();
    for i in 0..n {
        let t = Instant::now();
        let dir = dir.clone();
        dom0.transaction(move |tx| {
            let dir = dir.clone();
            async move {
                match tx.directory(&dir).await {
                    Ok(_) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e),
                }
                tx.write("/labbench-probe", i.to_string()).await
            }
            .boxed()
        })
        .await
        .context("probe transaction")?;
        each.push(t.elapsed());
    }
    dom0.rm("/labbench-probe")
        .await
        .context("remove probe node")?;
    Ok(median_duration(each))
}

/// Median cost of `xenbus::attach_vif` on an idle store: `n` vifs attached to
/// `idle` with itself as backend (no netback, netfront or agent reacts), so
/// it measures the toolstack and server alone, without contention.
pub async fn probe_attach(dom0: &AsyncClient, idle: DomId, n: u32) -> anyhow::Result<Duration> {
    let mut each = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        xenbus::attach_vif(dom0, idle, &VifConfig::new(idle))
            .await
            .context("probe attach")?;
        each.push(t.elapsed());
    }
    Ok(median_duration(each))
}

/// Attach `total` vifs round-robin over `guests`, in batches of `batch`:
/// each batch is attached one vif after the other (xl-style, one
/// transaction each, devid = next free) and then waited for until every vif
/// of it is Connected on both ends.
pub async fn run(
    dom0: &AsyncClient,
    guests: &[DomId],
    total: usize,
    batch: usize,
    deadline: Instant,
    progress: &mut dyn FnMut(usize, &Batch),
) -> anyhow::Result<AttachResult> {
    if guests.is_empty() || batch == 0 {
        bail!("need at least one guest and a batch size of at least 1");
    }
    let mut tracker = Tracker::start(dom0, guests).await?;
    let start = Instant::now();
    let mut batches = Vec::new();
    let mut k = 0usize;
    while k < total {
        let n = batch.min(total - k);
        let t0 = Instant::now();
        let mut started = Vec::with_capacity(n);
        for _ in 0..n {
            let fe = guests[k % guests.len()];
            let t = Instant::now();
            let devid = xenbus::attach_vif(dom0, fe, &VifConfig::new(DD))
                .await
                .with_context(|| format!("attach vif {} to domain {fe}", k + 1))?;
            started.push((fe, devid, t));
            k += 1;
        }
        let attach_calls = t0.elapsed();
        tracker
            .wait_for(k, deadline)
            .await
            .with_context(|| format!("wait for vifs {}..={k} to be Connected", k - n + 1))?;
        let mut vifs = Vec::with_capacity(n);
        let mut last = t0;
        for (fe, devid, t) in started {
            let (initwait, hotplug, done) = tracker.phases((fe.0, devid.0));
            let done =
                done.with_context(|| format!("vif {devid} of domain {fe} not seen Connected"))?;
            last = last.max(done);
            vifs.push(Attached {
                fe,
                devid,
                latency: done.saturating_duration_since(t),
                to_initwait: initwait.map(|i| i.saturating_duration_since(t)),
                to_hotplug: hotplug.map(|h| h.saturating_duration_since(t)),
            });
        }
        let b = Batch {
            vifs,
            wall: last.saturating_duration_since(t0),
            attach_calls,
        };
        progress(k, &b);
        batches.push(b);
    }
    Ok(AttachResult {
        total: start.elapsed(),
        batches,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vif_nodes_parse() {
        assert_eq!(
            vif_node("/local/domain/1/backend/vif/3/17/state"),
            Some((Node::State(End::Back), 3, 17))
        );
        assert_eq!(
            vif_node("/local/domain/1/backend/vif/3/17/hotplug-status"),
            Some((Node::HotplugStatus, 3, 17))
        );
        assert_eq!(
            vif_node("/local/domain/3/device/vif/17/state"),
            Some((Node::State(End::Front), 3, 17))
        );
        assert_eq!(vif_node("/local/domain/3/device/vif/17/mac"), None);
        assert_eq!(
            vif_node("/local/domain/3/device/vif/17/hotplug-status"),
            None
        );
        assert_eq!(vif_node("/local/domain/3/device/vbd/17/state"), None);
        assert_eq!(vif_node("/local/domain/1/backend/vif/x/0/state"), None);
        assert_eq!(vif_node("/local/domain/1/backend/vif/3/17"), None);
    }

    #[test]
    fn batch_figures() {
        let a = |l| Attached {
            fe: DomId(2),
            devid: DevId(0),
            latency: Duration::from_millis(l),
            to_initwait: Some(Duration::from_millis(l / 2)),
            to_hotplug: None,
        };
        let b = Batch {
            vifs: vec![a(5), a(1), a(3)],
            wall: Duration::from_millis(30),
            attach_calls: Duration::from_millis(3),
        };
        assert!((b.per_vif_ms() - 10.0).abs() < 1e-9);
        assert!((b.median_latency_ms() - 3.0).abs() < 1e-9);
        let (iw, hp) = b.median_phases_ms();
        assert!((iw - 1.0).abs() < 1e-9, "{iw}");
        assert_eq!(hp, 0.0);
    }
}
