//! The simulated netback: the kernel half of a driver domain's vif.
//!
//! Runs as the driver domain (its xenstore connection is the driver
//! domain's socket, its rtnetlink socket is in the driver domain's
//! namespace) and follows Linux `drivers/net/xen-netback/xenbus.c`:
//!
//! * `netback_probe`: a new `backend/vif/<fe>/<devid>` without a `script`
//!   key is refused (`xenbus_dev_fatal`: an `error` node and Closing); else
//!   the interface `vif<fe>.<devid>` is created (here a veth whose peer
//!   appears in the guest's namespace as `eth<devid>` with the `mac` of the
//!   backend dir, standing for the guest's netfront device), the `feature-*`
//!   keys are written and the backend goes InitWait.
//! * `frontend_changed`/`hotplug_status_changed`: Connected once the
//!   frontend is Connected with its ring references *and* `hotplug-status`
//!   is `connected`; frontend Closing/Closed are followed; with `online` = 0
//!   the interface is unregistered (the veth deleted).
//! * `connect` + `xen_net_read_rate` and its watch on `rate`: the vif's
//!   transmit credit, decided as Linux decides it ([`crate::rate`]) when the
//!   vif connects and again whenever `rate` changes, logged, and reported
//!   under the driver domain's `data/sim-netback-credit/<fe>/<devid>`
//!   (the veth itself is not slowed down).
//!
//! Trust boundary: everything under the frontend directory is written by
//! the guest. It is only parsed (never used as a path or a name) and a bad
//! value fails only that guest's device.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use futures::StreamExt;
use futures::future::FutureExt;
use futures::stream::SelectAll;
use tokio::sync::{Semaphore, mpsc};
use tracing::{debug, info, warn};
use xenbus::{MacAddr, XenbusState};
use xenstore::{AsyncClient, DomId};

use crate::error::{Error, Result, chain};
use crate::link::Netlink;
use crate::rate::{CREDIT_DIR, Credit};

/// Keys netback writes before InitWait [netif.h; xen-netback `netback_probe`].
const FEATURES: &[(&str, &str)] = &[
    ("feature-sg", "1"),
    ("feature-gso-tcpv4", "1"),
    ("feature-gso-tcpv6", "1"),
    ("feature-ipv6-csum-offload", "1"),
    ("feature-rx-copy", "1"),
    ("feature-rx-flip", "0"),
    ("feature-multicast-control", "1"),
    ("feature-dynamic-multicast-control", "1"),
    ("feature-split-event-channels", "1"),
    ("multi-queue-max-queues", "1"),
    ("feature-ctrl-ring", "1"),
];

/// `hotplug-status` value the hotplug script writes on success
/// [tools/hotplug/Linux/xen-hotplug-common.sh `success`].
const HOTPLUG_CONNECTED: &str = "connected";

/// Key under the driver domain's `data` directory that says the netback
/// is running (lab bookkeeping; Linux writes nothing when netback loads).
pub const READY_KEY: &str = "data/sim-netback";

/// How the netback finds guests' namespaces.
#[derive(Debug, Clone)]
pub struct NetbackConfig {
    /// The driver domain this netback runs in.
    pub domid: DomId,
    /// Directory holding one file per domain, named by domid, whose content
    /// is the domain's namespace name (written by the lab).
    pub netns_map: PathBuf,
}

/// Transactions in flight at once. Linux serialises probes on the xenbus
/// workqueue; so do we, which also leaves the driver domain's transaction
/// quota (10 in C xenstored) to the agent however many vifs arrive
/// together.
const TX_PARALLEL: usize = 1;

/// Run the netback until the xenstore connection closes.
///
/// Watches: one on `backend/vif` and one per guest on its
/// `device/vif` directory (events arrive only for nodes the driver domain
/// may read), so the count stays within the per-domain watch quota with
/// any number of vifs. Each device is a task kicked on every event that
/// concerns it; it re-reads everything (level-triggered), so lost or
/// merged events cannot leave it behind.
pub async fn run(client: AsyncClient, cfg: NetbackConfig) -> Result<()> {
    let nl = Netlink::connect()?;
    let base = format!("{}/backend/vif", cfg.domid.path());
    let mut watch = client
        .watch(&base, "sim-netback")
        .await
        .map_err(Error::xs(format!("watch {base}")))?;
    let ready = format!("{}/{READY_KEY}", cfg.domid.path());
    if let Err(e) = client.write(&ready, "ready").await {
        warn!(error = %e, "cannot write the netback ready marker");
    }
    info!(domid = cfg.domid.0, "netback running");
    let tx_slots = Arc::new(Semaphore::new(TX_PARALLEL));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(u16, u32)>();
    let mut devices: HashMap<(u16, u32), mpsc::UnboundedSender<()>> = HashMap::new();
    let mut fe_watches = SelectAll::new();
    let mut watched: HashSet<u16> = HashSet::new();
    loop {
        let keys: Vec<(u16, u32)> = tokio::select! {
            ev = watch.next() => match ev {
                None => return Err(Error::xs("netback watch")(xenstore::Error::Closed)),
                Some(Err(e)) => return Err(Error::xs("netback watch")(e)),
                // The initial event (or one on `base` itself): rescan all.
                Some(Ok(ev)) => match device_of(&base, &ev.path) {
                    Some(k) => vec![k],
                    None => scan(&client, &base).await?,
                },
            },
            Some(ev) = fe_watches.next(), if !fe_watches.is_empty() => match ev {
                Ok(ev) => {
                    let ev: xenstore::WatchEvent = ev;
                    match frontend_of(&ev.path) {
                        (Some(fe), Some(devid)) => vec![(fe, devid)],
                        // On the guest's vif directory itself: all of its devices.
                        (Some(fe), None) => devices.keys().filter(|k| k.0 == fe).copied().collect(),
                        _ => Vec::new(),
                    }
                }
                Err(e) => {
                    debug!(error = %e, "frontend watch");
                    Vec::new()
                }
            },
            Some(key) = done_rx.recv() => {
                devices.remove(&key);
                vec![key]
            }
        };
        for key in keys {
            if let Some(kick) = devices.get(&key) {
                if kick.send(()).is_ok() {
                    continue;
                }
                devices.remove(&key);
            }
            let dir = format!("{base}/{}/{}", key.0, key.1);
            if !client.exists(&dir).await.unwrap_or(false) {
                continue;
            }
            if watched.insert(key.0) {
                let fe_base = format!("{}/device/vif", DomId(key.0).path());
                match client
                    .watch(&fe_base, &format!("sim-netback-fe{}", key.0))
                    .await
                {
                    Ok(w) => fe_watches.push(w),
                    Err(e) => {
                        warn!(fe = key.0, error = %e, "cannot watch frontends");
                        watched.remove(&key.0);
                    }
                }
            }
            let dev = Device {
                client: client.clone(),
                nl: nl.clone(),
                cfg: cfg.clone(),
                tx_slots: tx_slots.clone(),
                fe: DomId(key.0),
                devid: key.1,
                dir,
                created: false,
                refused: false,
                credit: None,
            };
            let (kick_tx, kick_rx) = mpsc::unbounded_channel();
            devices.insert(key, kick_tx);
            let done = done_tx.clone();
            tokio::spawn(async move {
                dev.run(kick_rx).await;
                let _ = done.send(key);
            });
        }
    }
}

/// `(fe, devid)` of a path `/local/domain/<fe>/device/vif[/<devid>/...]`.
fn frontend_of(path: &str) -> (Option<u16>, Option<u32>) {
    let Some(rest) = path.strip_prefix("/local/domain/") else {
        return (None, None);
    };
    let mut it = rest.split('/');
    let fe = it.next().and_then(|f| f.parse().ok());
    if it.next() != Some("device") || it.next() != Some("vif") {
        return (None, None);
    }
    (fe, it.next().and_then(|d| d.parse().ok()))
}

/// `(fe, devid)` of an event path below `base/<fe>/<devid>`.
fn device_of(base: &str, path: &str) -> Option<(u16, u32)> {
    let rest = path.strip_prefix(base)?.strip_prefix('/')?;
    let mut it = rest.split('/');
    let fe = it.next()?.parse().ok()?;
    let devid = it.next()?.parse().ok()?;
    Some((fe, devid))
}

/// Every `(fe, devid)` currently under `base`.
async fn scan(client: &AsyncClient, base: &str) -> Result<Vec<(u16, u32)>> {
    let mut out = Vec::new();
    let fes = match client.directory(base).await {
        Ok(v) => v,
        Err(e) if e.is_not_found() => return Ok(out),
        Err(e) => return Err(Error::xs(format!("list {base}"))(e)),
    };
    for fe in fes {
        let Ok(fe_id) = fe.parse::<u16>() else {
            continue;
        };
        let devs = client
            .directory(&format!("{base}/{fe}"))
            .await
            .unwrap_or_default();
        out.extend(
            devs.iter()
                .filter_map(|d| d.parse().ok())
                .map(|d| (fe_id, d)),
        );
    }
    Ok(out)
}

/// Parse a state node; garbage reads as `None` (treated as "no news").
fn parse_state(raw: Option<Vec<u8>>) -> Option<XenbusState> {
    raw.and_then(|r| XenbusState::parse_bytes(&r).ok())
}

/// Parse a MAC `aa:bb:cc:dd:ee:ff` as netback reads the frontend's `mac`
/// (two hex digits per octet).
pub fn parse_mac(s: &str) -> Option<MacAddr> {
    MacAddr::parse_strict(s.trim()).ok()
}

/// What to do after one reconcile pass.
enum Flow {
    Continue,
    Done,
}

/// One backend device and its watches.
struct Device {
    client: AsyncClient,
    nl: Netlink,
    cfg: NetbackConfig,
    tx_slots: Arc<Semaphore>,
    fe: DomId,
    devid: u32,
    dir: String,
    created: bool,
    refused: bool,
    /// The credit last applied (connected vifs).
    credit: Option<Credit>,
}

impl Device {
    fn vif(&self) -> String {
        format!("vif{}.{}", self.fe.0, self.devid)
    }

    /// Where the frontend must be: we never follow the `frontend` key to
    /// somewhere else (libxl writes exactly this path).
    fn fe_dir(&self) -> String {
        format!("{}/device/vif/{}", self.fe.path(), self.devid)
    }

    async fn run(mut self, mut kicks: mpsc::UnboundedReceiver<()>) {
        loop {
            match self.reconcile().await {
                Ok(Flow::Done) => break,
                Ok(Flow::Continue) => {}
                Err(e) => warn!(vif = %self.vif(), error = %chain(&e), "netback step failed"),
            }
            if kicks.recv().await.is_none() {
                break;
            }
            // Several events may have queued up: one pass covers them all.
            while kicks.try_recv().is_ok() {}
        }
        if self.created {
            let _ = self.nl.delete(&self.vif()).await;
        }
        debug!(vif = %self.vif(), "netback device gone");
    }

    async fn read(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let p = format!("{}/{key}", self.dir);
        self.client
            .read_opt(&p)
            .await
            .map_err(Error::xs(format!("read {p}")))
    }

    async fn set_state(&self, st: XenbusState) -> Result<()> {
        crate::xs::switch_state(&self.client, &self.tx_slots, &self.dir, st).await
    }

    /// `xenbus_dev_fatal`: record the error under the driver domain's
    /// `error/<nodename>` and switch to Closing.
    async fn fatal(&mut self, msg: &str) -> Result<()> {
        warn!(vif = %self.vif(), msg, "refusing device");
        let node = format!(
            "{}/error/backend/vif/{}/{}/error",
            self.cfg.domid.path(),
            self.fe.0,
            self.devid
        );
        if let Err(e) = self.client.write(&node, msg).await {
            debug!(error = %e, "cannot write error node");
        }
        self.refused = true;
        self.set_state(XenbusState::Closing).await
    }

    async fn reconcile(&mut self) -> Result<Flow> {
        let Some(raw) = self.read("state").await? else {
            return Ok(Flow::Done);
        };
        if self.refused {
            return Ok(Flow::Continue);
        }
        let Some(be) = parse_state(Some(raw)) else {
            return Ok(Flow::Continue);
        };
        let online = self.read("online").await?.is_some_and(|v| v == b"1");
        if !self.created {
            if matches!(be, XenbusState::Closing | XenbusState::Closed) {
                return Ok(Flow::Continue);
            }
            return self.probe(be).await;
        }
        let fe_raw = self
            .client
            .read_opt(&format!("{}/state", self.fe_dir()))
            .await
            .unwrap_or(None);
        let fe = parse_state(fe_raw);
        use XenbusState as S;
        if be == S::Connected && self.credit.is_some() {
            // The watch on `rate` (xen_register_credit_watch).
            self.read_rate().await?;
        }
        match (be, fe) {
            (S::InitWait | S::Initialised, Some(S::Connected)) => {
                let hp = self.read("hotplug-status").await?;
                if hp.as_deref() == Some(HOTPLUG_CONNECTED.as_bytes()) {
                    self.connect().await?;
                }
            }
            (S::InitWait | S::Initialised | S::Connected, Some(S::Closing)) => {
                self.set_state(S::Closing).await?;
            }
            (s, Some(S::Closed)) if s != S::Closed => {
                self.set_state(S::Closed).await?;
                if !online {
                    self.unregister().await?;
                }
            }
            // The toolstack asked to close and the frontend is gone (or
            // reads as garbage): nothing to wait for.
            (S::Closing, None | Some(S::Unknown)) => {
                self.set_state(S::Closed).await?;
                if !online {
                    self.unregister().await?;
                }
            }
            (S::Closed, _) if !online => self.unregister().await?,
            (S::Closed, Some(S::Initialising)) if online => {
                self.set_state(S::InitWait).await?;
            }
            _ => {}
        }
        Ok(Flow::Continue)
    }

    /// `netback_probe` + `backend_create_xenvif`.
    async fn probe(&mut self, be: XenbusState) -> Result<Flow> {
        if self.read("script").await?.is_none() {
            self.fatal("2 reading script").await?;
            return Ok(Flow::Continue);
        }
        let mac = self
            .read("mac")
            .await?
            .and_then(|m| parse_mac(&String::from_utf8_lossy(&m)));
        let Some(mac) = mac else {
            self.fatal("22 parsing mac").await?;
            return Ok(Flow::Continue);
        };
        let Some(ns) = self.guest_ns() else {
            self.fatal("19 frontend domain has no namespace").await?;
            return Ok(Flow::Continue);
        };
        let vif = self.vif();
        if self.nl.index_of(&vif).await?.is_none() {
            let peer = format!("eth{}", self.devid);
            self.nl
                .add_veth_into(&vif, &crate::netns::ns_path(&ns), &peer, Some(mac.0))
                .await?;
            info!(%vif, guest_ns = %ns, "vif created");
        }
        self.created = true;
        let dir = self.dir.clone();
        let write_state = be == XenbusState::Initialising;
        let _slot = self.tx_slots.acquire().await;
        self.client
            .transaction(|tx| {
                let dir = dir.clone();
                async move {
                    for (k, v) in FEATURES {
                        tx.write(&format!("{dir}/{k}"), v).await?;
                    }
                    if write_state {
                        tx.write(&format!("{dir}/state"), XenbusState::InitWait.to_wire())
                            .await?;
                    }
                    Ok(())
                }
                .boxed()
            })
            .await
            .map_err(Error::xs(format!("write features of {}", self.dir)))?;
        Ok(Flow::Continue)
    }

    /// `connect`: the frontend's rings must be readable numbers.
    async fn connect(&mut self) -> Result<()> {
        let fe = self.fe_dir();
        let num = |v: Option<Vec<u8>>| {
            v.and_then(|v| String::from_utf8(v).ok())
                .and_then(|s| s.trim().parse::<u32>().ok())
        };
        let c = &self.client;
        let tx = num(c
            .read_opt(&format!("{fe}/tx-ring-ref"))
            .await
            .unwrap_or(None));
        let rx = num(c
            .read_opt(&format!("{fe}/rx-ring-ref"))
            .await
            .unwrap_or(None));
        let ev = match num(c
            .read_opt(&format!("{fe}/event-channel"))
            .await
            .unwrap_or(None))
        {
            Some(e) => Some(e),
            None => num(c
                .read_opt(&format!("{fe}/event-channel-tx"))
                .await
                .unwrap_or(None)),
        };
        if tx.is_none() || rx.is_none() || ev.is_none() {
            return self.fatal("22 reading ring references").await;
        }
        self.read_rate().await?;
        self.set_state(XenbusState::Connected).await?;
        info!(vif = %self.vif(), "vif connected");
        Ok(())
    }

    fn credit_node(&self) -> String {
        format!(
            "{}/{CREDIT_DIR}/{}/{}",
            self.cfg.domid.path(),
            self.fe.0,
            self.devid
        )
    }

    /// `xen_net_read_rate`: decide the credit from `rate`; log and report
    /// it when it changed.
    async fn read_rate(&mut self) -> Result<()> {
        let raw = self.read(xenbus::keys::RATE).await?;
        let credit = Credit::from_rate(raw.as_deref());
        if self.credit.as_ref() == Some(&credit) {
            return Ok(());
        }
        match &credit {
            Credit::Invalid(why) => warn!(
                vif = %self.vif(),
                rate = %why,
                "Failed to parse network rate limit. Traffic unlimited."
            ),
            c => {
                info!(vif = %self.vif(), credit = %c, bytes_per_second = ?c.bytes_per_second(), "transmit credit")
            }
        }
        let node = self.credit_node();
        self.client
            .write(&node, credit.report())
            .await
            .map_err(Error::xs(format!("write {node}")))?;
        self.credit = Some(credit);
        Ok(())
    }

    async fn unregister(&mut self) -> Result<()> {
        if self.credit.take().is_some() {
            let node = self.credit_node();
            if let Err(e) = self.client.rm(&node).await {
                debug!(error = %e, %node, "cannot remove the credit report");
            }
        }
        if self.created {
            self.nl.delete(&self.vif()).await?;
            self.created = false;
            info!(vif = %self.vif(), "vif removed");
        }
        Ok(())
    }

    /// The guest's namespace from the lab's map; the name must look like
    /// one (no path separators).
    fn guest_ns(&self) -> Option<String> {
        let f = self.cfg.netns_map.join(self.fe.0.to_string());
        let name = std::fs::read_to_string(f).ok()?;
        let name = name.trim();
        let ok = !name.is_empty()
            && name.len() < 200
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
            && name != "."
            && name != "..";
        ok.then(|| name.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_parsing() {
        assert_eq!(
            parse_mac("00:16:3e:01:02:0a"),
            Some(MacAddr([0, 0x16, 0x3e, 1, 2, 0x0a]))
        );
        assert_eq!(parse_mac("00:16:3e:01:02"), None);
        assert_eq!(parse_mac("00:16:3e:01:02:03:04"), None);
        assert_eq!(parse_mac("0:16:3e:01:02:03"), None);
        assert_eq!(parse_mac("zz:16:3e:01:02:03"), None);
    }

    #[test]
    fn device_paths_parse() {
        let base = "/local/domain/1/backend/vif";
        assert_eq!(
            device_of(base, "/local/domain/1/backend/vif/3/0/state"),
            Some((3, 0))
        );
        assert_eq!(
            device_of(base, "/local/domain/1/backend/vif/3/1"),
            Some((3, 1))
        );
        assert_eq!(device_of(base, "/local/domain/1/backend/vif/3"), None);
        assert_eq!(device_of(base, "/local/domain/1/backend/vif"), None);
        assert_eq!(device_of(base, "/local/domain/1/backend/vifx/3/0"), None);
        assert_eq!(
            frontend_of("/local/domain/3/device/vif/2/state"),
            (Some(3), Some(2))
        );
        assert_eq!(frontend_of("/local/domain/3/device/vif"), (Some(3), None));
        assert_eq!(frontend_of("/local/domain/3/device/vbd/2"), (None, None));
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn macs_round_trip(mac in any::<[u8; 6]>()) {
            let text = mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
            prop_assert_eq!(parse_mac(&text), Some(MacAddr(mac)));
            prop_assert_eq!(parse_mac(&text.to_uppercase()), Some(MacAddr(mac)));
        }

        #[test]
        fn event_paths_round_trip(be in any::<u16>(), fe in any::<u16>(), devid in any::<u32>(), tail in "[a-z-]{0,12}") {
            let base = format!("/local/domain/{be}/backend/vif");
            let p = format!("{base}/{fe}/{devid}/{tail}");
            prop_assert_eq!(device_of(&base, &p), Some((fe, devid)));
            let f = format!("/local/domain/{fe}/device/vif/{devid}/{tail}");
            prop_assert_eq!(frontend_of(&f), (Some(fe), Some(devid)));
        }

        #[test]
        fn arbitrary_text_never_panics(s in ".{0,100}") {
            let _ = parse_mac(&s);
            let _ = device_of("/local/domain/1/backend/vif", &s);
            let _ = frontend_of(&s);
        }
    }
}
