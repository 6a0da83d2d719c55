//! The main loop: one watch on `/local/domain/<self>/backend`, a replay of
//! existing devices at start, and one task per device (DEVICES.md §5,
//! libxl_device.c `libxl_device_events_handler`).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use hotplug::Hotplug;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{Instrument, debug, info, info_span, warn};
use xenbus::paths::{backend_guest_dir, backend_kind_dir, backend_root};
use xenbus::{BackendPath, DevId, DeviceKind};
use xenstore::{AsyncClient, DomId};

use crate::config::AgentConfig;
use crate::device::{Shared, run_device};
use crate::error::{Error, Result};

/// A running device task.
struct Handle {
    pokes: mpsc::Sender<()>,
    generation: u64,
}

/// Connect to xenstore as configured.
pub async fn connect(cfg: &AgentConfig) -> Result<AsyncClient> {
    match &cfg.xenstore {
        Some(p) => AsyncClient::connect(p)
            .await
            .map_err(|source| Error::Connect {
                at: p.display().to_string(),
                source,
            }),
        None => AsyncClient::connect_default()
            .await
            .map_err(|source| Error::Connect {
                at: "the default socket".to_string(),
                source,
            }),
    }
}

/// Our domid: the relative node `domid` (written by the toolstack at build
/// time), i.e. `/local/domain/<self>/domid` as the server resolves it.
pub async fn own_domid(client: &AsyncClient) -> Result<DomId> {
    let raw = client.read("domid").await.map_err(|e| Error::Domid {
        source: Box::new(e),
    })?;
    let text = String::from_utf8_lossy(&raw);
    text.trim().parse::<DomId>().map_err(|e| Error::Domid {
        source: Box::new(e),
    })
}

/// Every vif backend device already present under our backend directory.
async fn scan(client: &AsyncClient, domid: DomId) -> Result<Vec<BackendPath>> {
    let list = |p: String| async move {
        match client.directory(&p).await {
            Ok(v) => Ok(v),
            Err(e) if e.is_not_found() => Ok(Vec::new()),
            Err(source) => Err(Error::Xenstore {
                context: format!("list {p}"),
                source,
            }),
        }
    };
    let mut out = Vec::new();
    for fe_name in list(backend_kind_dir(domid, DeviceKind::Vif)).await? {
        // Strict: the name must be the canonical form of a real domid.
        let Some(fe) = fe_name
            .parse::<DomId>()
            .ok()
            .filter(|d| d.is_valid_domain() && d.to_string() == fe_name)
        else {
            debug!(name = %fe_name, "ignoring non-domid entry");
            continue;
        };
        for dev_name in list(backend_guest_dir(domid, DeviceKind::Vif, fe)).await? {
            match dev_name.parse::<DevId>() {
                Ok(devid) => out.push(BackendPath::vif(domid, fe, devid)),
                Err(_) => debug!(name = %dev_name, "ignoring non-devid entry"),
            }
        }
    }
    Ok(out)
}

/// The agent's state while running.
struct Agent {
    shared: Arc<Shared>,
    devices: HashMap<BackendPath, Handle>,
    tasks: JoinSet<()>,
    done_tx: mpsc::UnboundedSender<(BackendPath, u64, bool)>,
    next_generation: u64,
}

impl Agent {
    /// Wake the device's task, starting one if needed.
    fn poke(&mut self, bp: BackendPath) {
        if let Some(h) = self.devices.get(&bp) {
            match h.pokes.try_send(()) {
                // Full: a wake-up is already pending, which is enough.
                Ok(()) | Err(mpsc::error::TrySendError::Full(())) => return,
                Err(mpsc::error::TrySendError::Closed(())) => {
                    self.devices.remove(&bp);
                }
            }
        }
        let (tx, rx) = mpsc::channel(1);
        let generation = self.next_generation;
        self.next_generation += 1;
        self.devices.insert(
            bp,
            Handle {
                pokes: tx,
                generation,
            },
        );
        let shared = self.shared.clone();
        let done = self.done_tx.clone();
        let span = info_span!("vif", fe = bp.fe.0, devid = bp.devid.0);
        self.tasks.spawn(
            async move {
                debug!("device task started");
                let pending = run_device(shared, bp, rx).await;
                let _ = done.send((bp, generation, pending));
            }
            .instrument(span),
        );
    }

    /// Route one watch event (absolute path).
    fn dispatch(&mut self, path: &str) {
        let me = self.shared.domid;
        if let Some((bp, rest)) = BackendPath::parse_under(me, path) {
            if bp.kind != DeviceKind::Vif {
                debug!(path, "ignoring non-vif device");
                return;
            }
            // xl devd only reacts to `state` and `online`; a change of the
            // directory itself matters only for devices we know (removal).
            match rest {
                "state" | "online" => self.poke(bp),
                "" if self.devices.contains_key(&bp) => self.poke(bp),
                _ => {}
            }
            return;
        }
        // A whole subtree (e.g. backend/vif/<fe>) appeared or vanished:
        // re-check every known device under it.
        let root = backend_root(me);
        if path == root || path.starts_with(&format!("{root}/")) {
            let prefix = format!("{path}/");
            let hit: Vec<BackendPath> = self
                .devices
                .keys()
                .filter(|bp| bp.path().starts_with(&prefix))
                .copied()
                .collect();
            for bp in hit {
                self.poke(bp);
            }
        }
    }
}

/// Run the agent until `shutdown` completes or the xenstore connection is
/// lost. Devices are left as they are on shutdown (vifs keep working).
pub async fn run(cfg: AgentConfig, shutdown: impl Future<Output = ()>) -> Result<()> {
    let client = connect(&cfg).await?;
    let domid = match cfg.domid {
        Some(d) => d,
        None => own_domid(&client).await?,
    };
    let hotplug = Hotplug::connect().map_err(|source| Error::Hotplug {
        context: "open netlink socket".to_string(),
        source,
    })?;
    // Filters of vifs that vanished while we were not running.
    match hotplug.prune_filters().await {
        Ok(gone) if !gone.is_empty() => info!(vifs = ?gone, "removed filters of vanished vifs"),
        Ok(_) => {}
        Err(e) => warn!(error = %crate::error::chain(&e), "cannot prune stale vif filters"),
    }
    // Bridges (dom0's settings and the command line) before the replay,
    // so that replayed vifs find them.
    let manager = crate::manage::start(&client, domid, &cfg, &hotplug).await?;
    let root = backend_root(domid);
    let mut events = client
        .watch(&root, &xenbus::unique_token("agent"))
        .await
        .map_err(|source| Error::Xenstore {
            context: format!("watch {root}"),
            source,
        })?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_rx_manager = stop_rx.clone();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let grace = cfg.shutdown_grace;
    let mut agent = Agent {
        shared: Arc::new(Shared {
            client: client.clone(),
            hotplug,
            cfg,
            domid,
            shutdown: stop_rx,
            tx_slots: tokio::sync::Semaphore::new(crate::device::MAX_OPEN_TRANSACTIONS),
        }),
        devices: HashMap::new(),
        tasks: JoinSet::new(),
        done_tx,
        next_generation: 0,
    };
    // Replay: every device already there is handled as if its watch fired.
    let existing = scan(&client, domid).await?;
    info!(domid = domid.0, devices = existing.len(), watch = %root, "agent running");
    for bp in existing {
        agent.poke(bp);
    }
    let manager = manager.map(|m| m.run(stop_rx_manager));

    tokio::pin!(shutdown);
    let result = loop {
        tokio::select! {
            () = &mut shutdown => {
                info!("shutting down; devices are left as they are");
                break Ok(());
            }
            ev = events.recv() => match ev {
                Some(Ok(ev)) => agent.dispatch(&ev.path),
                Some(Err(source)) => break Err(Error::Xenstore { context: format!("watch {root}"), source }),
                None => break Err(Error::WatchEnded { path: root.clone() }),
            },
            Some((bp, generation, pending)) = done_rx.recv() => {
                if agent.devices.get(&bp).is_some_and(|h| h.generation == generation) {
                    agent.devices.remove(&bp);
                }
                if pending {
                    agent.poke(bp);
                }
            }
            Some(joined) = agent.tasks.join_next() => {
                if let Err(e) = joined {
                    if e.is_panic() {
                        warn!(error = %e, "device task panicked");
                    }
                }
            }
        }
    };
    let _ = stop_tx.send(true);
    if let Some(m) = manager {
        let _ = m.await;
        crate::manage::stopping(&client, domid).await;
    }
    let drain = async { while agent.tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, drain).await.is_err() {
        warn!(
            ?grace,
            "device tasks still busy after grace period; abandoning them"
        );
        agent.tasks.abort_all();
    }
    result
}
