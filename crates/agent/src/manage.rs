//! The bridge manager: builds the desired bridges at start, then follows
//! dom0's settings (a xenstore watch) and the kernel's links (netlink
//! notifications), converging and publishing after each change.

use std::time::Duration;

use hotplug::{BridgeConfig, Hotplug, LinkEvents};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};
use xenbus::agent::{AgentState, BridgeSetting, config_dir, read_config};
use xenstore::{AsyncClient, DomId};

use crate::bridges::{Bridges, desired};
use crate::config::AgentConfig;
use crate::error::{Error, Result, chain};
use crate::publish::Publisher;

/// Link notifications come in bursts (a vif appears, is renamed, enslaved,
/// brought up): wait this long for the burst to end before publishing...
const SETTLE: Duration = Duration::from_millis(20);
/// ...but publish at least this often while links keep changing.
const SETTLE_MAX: Duration = Duration::from_millis(250);

/// The manager between start and the end of replay.
pub(crate) struct Manager {
    client: AsyncClient,
    domid: DomId,
    cfg: AgentConfig,
    hp: Hotplug,
    bridges: Bridges,
    publisher: Publisher,
    problems: Vec<String>,
    settings: Vec<BridgeSetting>,
    /// Link notifications, subscribed before the first read of the links.
    links: Option<LinkEvents>,
}

/// Publish `starting`, build the desired bridges (a failure of the
/// command line's `--uplink` bridge stops the agent, as before; a bad
/// setting from dom0 is published in `agent/error` and retried) and
/// publish them. With `manage_bridges` off, only the command line's bridge
/// is built and nothing is published.
pub(crate) async fn start(
    client: &AsyncClient,
    domid: DomId,
    cfg: &AgentConfig,
    hp: &Hotplug,
) -> Result<Option<Manager>> {
    if !cfg.manage_bridges {
        if let Some(uplink) = &cfg.uplink {
            let bc = BridgeConfig {
                bridge: cfg.bridge.clone(),
                uplink: Some(uplink.clone()),
            };
            hp.bridge_up(&bc).await.map_err(|source| Error::Hotplug {
                context: format!("bring up bridge {} with uplink {uplink}", cfg.bridge),
                source,
            })?;
        }
        return Ok(None);
    }
    let publisher = Publisher::new(client.clone(), domid);
    publisher
        .state(AgentState::Starting)
        .await
        .map_err(|source| Error::Xenstore {
            context: "publish the agent's state".into(),
            source,
        })?;
    // Subscribed first, so no change between the dump and the stream is
    // missed.
    let links = match LinkEvents::subscribe() {
        Ok(l) => Some(l),
        Err(e) => {
            warn!(error = %chain(&e), "no link notifications; bridges published at settings changes only");
            None
        }
    };
    let mut m = Manager {
        client: client.clone(),
        domid,
        cfg: cfg.clone(),
        hp: hp.clone(),
        bridges: Bridges::default(),
        publisher,
        problems: Vec::new(),
        settings: Vec::new(),
        links,
    };
    m.reread().await;
    m.converge().await;
    m.resync().await;
    if let Some(up) = &cfg.uplink {
        if let Some(p) = m
            .problems
            .iter()
            .find(|p| p.starts_with(&format!("bridge {}:", cfg.bridge)))
        {
            return Err(Error::Bridge {
                bridge: cfg.bridge.clone(),
                uplink: up.clone(),
                reason: p.clone(),
            });
        }
    }
    m.publish().await;
    Ok(Some(m))
}

impl Manager {
    /// Read dom0's settings (a failure keeps the previous ones).
    async fn reread(&mut self) {
        match read_config(&self.client, self.domid).await {
            Ok((settings, bad)) => {
                for b in &bad {
                    warn!(path = %b.path, reason = %b.reason, "ignoring a bridge setting");
                }
                self.settings = settings;
                self.problems.retain(|p| !p.starts_with("setting "));
                self.problems.extend(
                    bad.into_iter()
                        .map(|b| format!("setting {}: {}", b.path, b.reason)),
                );
            }
            Err(e) => warn!(error = %chain(&e), "cannot read the bridge settings"),
        }
    }

    async fn converge(&mut self) {
        let want = desired(&self.cfg, &self.settings);
        let mut problems: Vec<String> = self
            .problems
            .iter()
            .filter(|p| p.starts_with("setting "))
            .cloned()
            .collect();
        let built = self.bridges.converge(&self.hp, &self.cfg, &want).await;
        for p in &built {
            warn!(problem = %p, "bridge not as wanted");
        }
        problems.extend(built);
        self.problems = problems;
    }

    async fn publish(&mut self) {
        if let Err(e) = self.publisher.error(&self.problems).await {
            debug!(error = %e, "cannot publish the agent's error");
        }
        let uplinks = self.bridges.uplinks();
        if let Err(e) = self.publisher.bridges(&self.hp, &uplinks).await {
            debug!(error = %e, "cannot publish bridges");
        }
    }

    /// Read the kernel's links again (start, lost notifications, no
    /// notifications at all).
    async fn resync(&mut self) {
        if let Err(e) = self.publisher.resync(&self.hp).await {
            debug!(error = %e, "cannot read the links");
        }
    }

    /// Replay is done: publish `ready` and follow changes until `stop`.
    pub(crate) fn run(mut self, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
        tokio::spawn(async move {
            if let Err(e) = self.publisher.state(AgentState::Ready).await {
                warn!(error = %e, "cannot publish the agent's state");
            }
            info!(bridges = ?self.bridges.uplinks().keys().collect::<Vec<_>>(), "agent ready");
            let dir = config_dir(self.domid);
            let mut settings = match self
                .client
                .watch(&dir, &xenbus::unique_token("agent-config"))
                .await
            {
                Ok(w) => Some(w),
                Err(e) => {
                    warn!(error = %e, path = %dir, "cannot watch the bridge settings");
                    None
                }
            };
            let mut links = self.links.take();
            // Drop counters change without any link event: read them again
            // now and then (only changed port records are rewritten).
            let mut counters =
                tokio::time::interval(self.cfg.counters_interval.max(Duration::from_millis(100)));
            counters.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            counters.tick().await;
            loop {
                tokio::select! {
                    _ = stop.changed() => break,
                    _ = counters.tick() => {
                        if links.is_none() {
                            self.resync().await;
                        }
                        self.publish().await;
                    }
                    ev = async { settings.as_mut()?.recv().await }, if settings.is_some() => {
                        match ev {
                            Some(Ok(_)) => {
                                self.reread().await;
                                self.converge().await;
                                if links.is_none() {
                                    self.resync().await;
                                }
                                self.publish().await;
                            }
                            _ => {
                                debug!("settings watch ended");
                                settings = None;
                            }
                        }
                    }
                    ev = async { links.as_mut()?.next().await }, if links.is_some() => {
                        let Some(updates) = ev else {
                            links = None;
                            continue;
                        };
                        let mut complete = self.publisher.apply(updates);
                        if let Some(l) = links.as_mut() {
                            complete &= settle(l, &mut self.publisher).await;
                        }
                        if !self.problems.is_empty() {
                            self.converge().await;
                        }
                        if !complete {
                            self.resync().await;
                        }
                        self.publish().await;
                    }
                }
            }
        })
    }
}

/// Let a burst of link notifications end (bounded by [`SETTLE_MAX`]),
/// applying them; false if some were lost.
async fn settle(l: &mut LinkEvents, p: &mut Publisher) -> bool {
    let until = tokio::time::Instant::now() + SETTLE_MAX;
    let mut complete = true;
    loop {
        let t = (tokio::time::Instant::now() + SETTLE).min(until);
        match tokio::time::timeout_at(t, l.next()).await {
            Ok(Some(updates)) => {
                complete &= p.apply(updates);
                if tokio::time::Instant::now() >= until {
                    return complete;
                }
            }
            _ => return complete,
        }
    }
}

/// Publish `stopping` (on shutdown).
pub(crate) async fn stopping(client: &AsyncClient, domid: DomId) {
    if let Err(e) = Publisher::new(client.clone(), domid)
        .state(AgentState::Stopping)
        .await
    {
        debug!(error = %e, "cannot publish the agent's state");
    }
}
