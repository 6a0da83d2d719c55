//! The simulated netfront: the guest half of the vif handshake, modelled on
//! what a Linux guest does (Linux 6.1, Debian 12's guest kernel, which the
//! real-Xen lab runs):
//!
//! * **Probe** (`xenbus_probe_frontend.c`: the `device` watch,
//!   `frontend_changed` → `xenbus_dev_changed`): a directory
//!   `device/vif/<devid>` that no bound device has is probed
//!   (`xenbus_probe_node`); the probe reads the otherend details *once*
//!   (`xenbus_read_otherend_details`: `backend`, `backend-id`) and watches
//!   `<backend>/state` (`watch_otherend`). A device keeps that backend for
//!   its whole life: rewriting `backend` later changes nothing.
//! * **Handshake** (`xen-netfront.c` `netback_changed`): backend InitWait
//!   while the frontend is Initialising → ring references, event channel
//!   and features, then Connected (`talk_to_netback`, `xennet_connect`,
//!   `xenbus_switch_state`); backend Connected → nothing but
//!   `netdev_notify_peers`; backend Closing, or Closed when the frontend is
//!   not Closed yet ("missed the backend's CLOSING state") →
//!   `xenbus_frontend_closed`: the frontend goes straight to Closed.
//! * **Backend vanished** (its driver domain died; its directory is
//!   gone): `xenbus_otherend_changed` reads the otherend state, the read
//!   fails and yields `XenbusStateUnknown`, and `netback_changed` ignores
//!   Unknown. The frontend stays as it was (Connected), the guest's
//!   interface stays registered, and nothing reconnects by itself: only
//!   the toolstack can help (`drvdom reconcile`).
//! * **Frontend directory removed** (`xenbus_dev_changed` on a path that no
//!   longer exists → `xenbus_cleanup_devices` → `xenbus_dev_remove` →
//!   `xennet_remove`): the device is removed and its interface
//!   unregistered (`xennet_bus_close` first tries Closing/Closed, but
//!   `__xenbus_switch_state` writes nothing once the `state` node is gone,
//!   and it does not wait for a backend reading Unknown).
//! * **A new directory for the same devid**: probed as a new device
//!   (first bullet), which connects to whatever backend it names. If the
//!   directory were re-created before the guest handled the removal,
//!   Linux would find the old device still bound at that path and probe
//!   nothing: the toolstack leaves time between the two
//!   (`topology::reconcile::REPROBE_GUARD`).
//!
//! Where the simulation differs: the guest's interface `eth<devid>` is the
//! peer of the simulated netback's veth, so it disappears with the driver
//! domain's namespace instead of lingering until the frontend is removed;
//! what the guest sees afterwards (a new interface once a new device
//! connects) is the same.
//!
//! Once a device is Connected the guest's interface `eth<devid>` is brought
//! up, as a guest's hotplug `ifup` would; its addresses and MTU are the
//! guest's own configuration, which the simulated host applies when the
//! toolstack reports the vif connected (`Host::vif_connected`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use futures::future::FutureExt;
use futures::stream::SelectAll;
use tokio::sync::{Semaphore, mpsc};
use tracing::{debug, info, warn};
use xenbus::{BackendPath, XenbusState};
use xenstore::{AsyncClient, DomId};

use crate::error::{Error, Result, chain};
use crate::link::Netlink;

/// Transactions in flight at once (the guest's transaction quota is small).
const TX_PARALLEL: usize = 4;

/// Key under the guest's `data` directory that says the netfront runs
/// (lab bookkeeping; a real guest writes nothing when its driver loads).
pub const READY_KEY: &str = "data/sim-netfront";

/// Run the netfront for domain `domid` until the connection closes.
///
/// Watches: one on its own `device/vif`, and one per backend domain on
/// `/local/domain/<be>/backend/vif/<domid>` (events arrive for the backend
/// nodes this guest may read). Each device is a task kicked by the events
/// that concern it.
pub async fn run(client: AsyncClient, domid: DomId) -> Result<()> {
    let nl = Netlink::connect()?;
    let base = format!("{}/device/vif", domid.path());
    let mut watch = client
        .watch(&base, "sim-netfront")
        .await
        .map_err(Error::xs(format!("watch {base}")))?;
    let ready = format!("{}/{READY_KEY}", domid.path());
    if let Err(e) = client.write(&ready, "ready").await {
        warn!(error = %e, "cannot write the netfront ready marker");
    }
    info!(domid = domid.0, "netfront running");
    let tx_slots = Arc::new(Semaphore::new(TX_PARALLEL));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<u32>();
    let mut devices: HashMap<u32, mpsc::UnboundedSender<()>> = HashMap::new();
    let mut be_watches = SelectAll::new();
    let mut watched: HashSet<DomId> = HashSet::new();
    loop {
        let devids: Vec<u32> = tokio::select! {
            ev = watch.next() => match ev {
                None => return Err(Error::xs("netfront watch")(xenstore::Error::Closed)),
                Some(Err(e)) => return Err(Error::xs("netfront watch")(e)),
                Some(Ok(ev)) => match ev
                    .path
                    .strip_prefix(&base)
                    .and_then(|r| r.strip_prefix('/'))
                    .and_then(|r| r.split('/').next())
                    .and_then(|d| d.parse::<u32>().ok())
                {
                    Some(d) => vec![d],
                    None => match client.directory(&base).await {
                        Ok(v) => v.iter().filter_map(|d| d.parse().ok()).collect(),
                        Err(e) if e.is_not_found() => Vec::new(),
                        Err(e) => return Err(Error::xs(format!("list {base}"))(e)),
                    },
                },
            },
            Some(ev) = be_watches.next(), if !be_watches.is_empty() => match ev {
                Ok(ev) => {
                    let ev: xenstore::WatchEvent = ev;
                    match BackendPath::parse(&ev.path) {
                        Some((bp, _)) if bp.fe == domid => vec![bp.devid.0],
                        _ => devices.keys().copied().collect(),
                    }
                }
                Err(e) => {
                    debug!(error = %e, "backend watch");
                    Vec::new()
                }
            },
            Some(d) = done_rx.recv() => {
                devices.remove(&d);
                vec![d]
            }
        };
        for devid in devids {
            if let Some(kick) = devices.get(&devid) {
                if kick.send(()).is_ok() {
                    continue;
                }
                devices.remove(&devid);
            }
            let dir = format!("{base}/{devid}");
            if !client.exists(&dir).await.unwrap_or(false) {
                continue;
            }
            // The backend domain, from our own `backend` key.
            let be = client
                .read_opt(&format!("{dir}/backend"))
                .await
                .ok()
                .flatten()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|b| BackendPath::parse(&b).map(|(bp, _)| bp.be));
            if let Some(be) = be
                && watched.insert(be)
            {
                let path = format!("{}/backend/vif/{}", be.path(), domid.0);
                match client
                    .watch(&path, &format!("sim-netfront-be{}", be.0))
                    .await
                {
                    Ok(w) => be_watches.push(w),
                    Err(e) => {
                        warn!(be = be.0, error = %e, "cannot watch backends");
                        watched.remove(&be);
                    }
                }
            }
            let dev = Front {
                client: client.clone(),
                tx_slots: tx_slots.clone(),
                devid,
                dir,
                nl: nl.clone(),
                up: None,
                otherend: None,
            };
            let (kick_tx, kick_rx) = mpsc::unbounded_channel();
            devices.insert(devid, kick_tx);
            let done = done_tx.clone();
            tokio::spawn(async move {
                dev.run(kick_rx).await;
                let _ = done.send(devid);
            });
        }
    }
}

/// One frontend device (a `struct xenbus_device` bound to netfront).
struct Front {
    client: AsyncClient,
    tx_slots: Arc<Semaphore>,
    devid: u32,
    dir: String,
    nl: Netlink,
    /// The guest's interface, once up: its ifindex (the netdev this device
    /// registered; a later device's interface of the same name is not ours).
    up: Option<u32>,
    /// The backend directory read at probe time (`dev->otherend`).
    otherend: Option<String>,
}

impl Front {
    async fn run(mut self, mut kicks: mpsc::UnboundedReceiver<()>) {
        loop {
            if self.otherend.is_none() {
                // xenbus_read_otherend_details, once.
                self.otherend = match self.client.read_opt(&format!("{}/backend", self.dir)).await {
                    Ok(Some(b)) => Some(String::from_utf8_lossy(&b).into_owned()),
                    Ok(None) => None,
                    Err(e) => {
                        debug!(error = %e, "read backend path");
                        None
                    }
                };
            }
            let be_dir = self.otherend.clone();
            match self.reconcile(be_dir.as_deref()).await {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => warn!(devid = self.devid, error = %chain(&e), "netfront step failed"),
            }
            if kicks.recv().await.is_none() {
                break;
            }
            while kicks.try_recv().is_ok() {}
        }
        self.remove().await;
        debug!(devid = self.devid, "netfront device gone");
    }

    /// `xennet_remove`: the device's directory is gone; unregister its
    /// interface (if it is still the one this device brought up).
    async fn remove(&mut self) {
        let Some(idx) = self.up.take() else { return };
        let eth = format!("eth{}", self.devid);
        if let Ok(Some(i)) = self.nl.index_of(&eth).await {
            if i == idx {
                match self.nl.delete(&eth).await {
                    Ok(()) => info!(%eth, "device removed: interface unregistered"),
                    Err(e) => debug!(%eth, error = %chain(&e), "unregister"),
                }
            }
        }
    }

    async fn set_state(&self, st: XenbusState) -> Result<()> {
        crate::xs::switch_state(&self.client, &self.tx_slots, &self.dir, st).await
    }

    /// The guest's hotplug `ifup eth<devid>`. Idempotent.
    async fn ifup(&mut self) -> Result<()> {
        let eth = format!("eth{}", self.devid);
        let Some(idx) = self.nl.index_of(&eth).await? else {
            debug!(%eth, "no interface to bring up");
            return Ok(());
        };
        if self.up == Some(idx) {
            return Ok(());
        }
        self.nl.set_up(&eth).await?;
        self.up = Some(idx);
        info!(%eth, "interface up");
        Ok(())
    }

    /// One pass; `false` once the frontend directory is gone.
    async fn reconcile(&mut self, be_dir: Option<&str>) -> Result<bool> {
        let p = format!("{}/state", self.dir);
        let Some(raw) = self
            .client
            .read_opt(&p)
            .await
            .map_err(Error::xs(format!("read {p}")))?
        else {
            return Ok(false);
        };
        let Some(be_dir) = be_dir else {
            return Ok(true);
        };
        let fe = XenbusState::parse_bytes(&raw).ok();
        // xenbus_read_driver_state: a failed read is XenbusStateUnknown.
        let be = self
            .client
            .read_opt(&format!("{be_dir}/state"))
            .await
            .ok()
            .flatten()
            .and_then(|r| XenbusState::parse_bytes(&r).ok())
            .unwrap_or(XenbusState::Unknown);
        use XenbusState as S;
        match (fe, be) {
            (Some(S::Initialising), S::InitWait) => {
                self.connect().await?;
                self.ifup().await?;
            }
            // xenbus_frontend_closed: straight to Closed.
            (Some(f), S::Closing) if f != S::Closed => self.set_state(S::Closed).await?,
            (Some(f), S::Closed) if f != S::Closed => self.set_state(S::Closed).await?,
            // After a restart of the netfront: the guest's side stays up.
            (Some(S::Connected), S::Connected) => self.ifup().await?,
            // Unknown (backend gone), Initialising, Initialised,
            // Reconfiguring, Reconfigured: nothing.
            _ => {}
        }
        Ok(true)
    }

    /// `talk_to_netback` + `xennet_connect`: one transaction with the ring
    /// references, event channel, requests and `state` = Connected.
    async fn connect(&self) -> Result<()> {
        let dir = self.dir.clone();
        // Dummy grant references and event channel, distinct per device.
        let base = 8 + self.devid.saturating_mul(4);
        let _slot = self.tx_slots.acquire().await;
        let keys: Vec<(String, String)> = vec![
            ("tx-ring-ref".into(), base.to_string()),
            ("rx-ring-ref".into(), (base + 1).to_string()),
            ("event-channel".into(), (base + 2).to_string()),
            ("request-rx-copy".into(), "1".into()),
            ("feature-rx-notify".into(), "1".into()),
            ("feature-sg".into(), "1".into()),
            ("feature-gso-tcpv4".into(), "1".into()),
            ("feature-gso-tcpv6".into(), "1".into()),
            ("feature-ipv6-csum-offload".into(), "1".into()),
            ("state".into(), XenbusState::Connected.to_wire()),
        ];
        self.client
            .transaction(|tx| {
                let dir = dir.clone();
                let keys = keys.clone();
                async move {
                    for (k, v) in &keys {
                        tx.write(&format!("{dir}/{k}"), v).await?;
                    }
                    Ok(())
                }
                .boxed()
            })
            .await
            .map_err(Error::xs(format!("connect {}", self.dir)))?;
        info!(devid = self.devid, "netfront connected");
        Ok(())
    }
}
