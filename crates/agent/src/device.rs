//! One task per backend device: the `xl devd` logic of DEVICES.md §5 for a
//! vif (libxl_device.c `backend_watch_callback`, `device_backend_callback`).
//!
//! Trust boundary: only nodes under our own backend directory are read, and
//! every value is validated by `xenbus` before use. The frontend (guest-
//! owned) is never read. A bad value or a failed hotplug step is reported in
//! this device's `hotplug-error` / `hotplug-status` and affects nothing else.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::FutureExt as _;
use hotplug::{Hotplug, ScriptAction, ScriptRun};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};
use xenbus::vif::{HOTPLUG_CONNECTED, HOTPLUG_ERROR};
use xenbus::{BackendPath, BackendStatus, DEFAULT_VIF_SCRIPT, VifSettings, XenbusState, keys};
use xenstore::{AsyncClient, DomId, XsErrno};

use crate::config::{AgentConfig, LegacyMode};
use crate::error::chain;

/// Longest `hotplug-error` text written.
const ERROR_TEXT_MAX: usize = 1024;

/// Transactions the agent keeps open at once. Xenstore limits open
/// transactions per domain (cxenstored `-t`, default 10; past it
/// TRANSACTION_START fails with ENOSPC), and legacy scripts need some too.
pub(crate) const MAX_OPEN_TRANSACTIONS: usize = 4;

/// Consecutive xenstore failures (other than a lost connection) after
/// which a warning is logged (retries go on).
const MAX_RETRIES: u32 = 8;

/// What every device task shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub client: AsyncClient,
    pub hotplug: Hotplug,
    pub cfg: AgentConfig,
    pub domid: DomId,
    pub shutdown: watch::Receiver<bool>,
    /// Bounds the agent's open transactions ([`MAX_OPEN_TRANSACTIONS`]).
    pub tx_slots: tokio::sync::Semaphore,
}

/// How the device is brought online (remembered for `offline`).
#[derive(Debug, Clone)]
struct Active {
    /// Interface name now (after any rename).
    iface: String,
    /// Legacy script, if one was used.
    script: Option<PathBuf>,
    /// `gatewaydev` for the script's `netdev`.
    netdev: String,
}

#[derive(Debug)]
enum Phase {
    /// Not online yet; waiting for InitWait since `since`.
    New { since: Instant, timed_out: bool },
    /// Online hotplug failed; retried on the next state/online change.
    Failed,
    /// Online.
    Online(Active),
}

/// What to do after one evaluation.
enum Next {
    /// Wait for a poke (optionally with a deadline).
    Wait(Option<Instant>),
    /// A transient xenstore failure: evaluate again after this long.
    Retry(std::time::Duration),
    /// The device is finished with; the task ends.
    Exit,
}

/// Run one device until it is removed, the xenstore connection is lost or
/// the agent shuts down. Returns true if pokes were pending when it ended
/// (the caller then starts a fresh task for the same path).
pub(crate) async fn run_device(
    shared: Arc<Shared>,
    bp: BackendPath,
    mut rx: mpsc::Receiver<()>,
) -> bool {
    let mut shutdown = shared.shutdown.clone();
    let mut dev = Device {
        shared: &shared,
        bp,
        phase: Phase::New {
            since: Instant::now(),
            timed_out: false,
        },
        last_error: None,
    };
    let mut failures = 0u32;
    loop {
        if *shutdown.borrow() {
            return false;
        }
        let next = match dev.step().await {
            Ok(n) => {
                failures = 0;
                n
            }
            Err(e) if e.is_disconnect() => {
                warn!(error = %chain(&e), "xenstore connection lost; device task stops");
                Next::Exit
            }
            Err(e) => {
                // E.g. ENOSPC from a quota, EAGAIN: try again, backing off
                // to at most 1.6 s; complain once when it persists.
                failures = failures.saturating_add(1);
                if failures == MAX_RETRIES {
                    warn!(error = %chain(&e), "xenstore keeps failing; still retrying");
                } else {
                    debug!(error = %chain(&e), failures, "xenstore failure; retrying");
                }
                Next::Retry(std::time::Duration::from_millis(50 << failures.min(5)))
            }
        };
        let (deadline, retry) = match next {
            Next::Exit => break,
            Next::Wait(d) => (d, false),
            Next::Retry(d) => (Some(Instant::now() + d), true),
        };
        let wait = async {
            tokio::select! {
                p = rx.recv() => p.is_none(),
                _ = shutdown.changed() => true,
            }
        };
        let woke = match deadline {
            Some(d) => tokio::time::timeout_at(d, wait).await,
            None => Ok(wait.await),
        };
        match woke {
            Ok(true) => return false,
            Ok(false) => while rx.try_recv().is_ok() {},
            Err(_) if retry => {}
            Err(_) => dev.init_deadline_passed().await,
        }
    }
    rx.close();
    rx.try_recv().is_ok()
}

struct Device<'a> {
    shared: &'a Shared,
    bp: BackendPath,
    phase: Phase,
    /// Last error written, so a repeated failure is not rewritten.
    last_error: Option<String>,
}

impl Device<'_> {
    fn client(&self) -> &AsyncClient {
        &self.shared.client
    }

    /// One evaluation of `state` + `online`, as on each xl devd event.
    async fn step(&mut self) -> Result<Next, xenbus::Error> {
        let status = match xenbus::read_status(self.client(), &self.bp).await {
            Ok(s) => s,
            Err(e) if e.xenstore_error().is_some() => return Err(e),
            Err(e) => {
                self.report_error(&chain(&e)).await?;
                return Ok(Next::Wait(None));
            }
        };
        let BackendStatus { state, online, .. } = status.clone();
        let Some(state) = state else {
            // The whole device vanished (dom0 removed it).
            if let Phase::Online(active) = &self.phase {
                let active = active.clone();
                info!("backend removed; taking vif offline");
                self.offline(&active).await;
            }
            return Ok(Next::Exit);
        };
        if state == XenbusState::Closed && online == Some(false) {
            let active = match &self.phase {
                Phase::Online(a) => a.clone(),
                // After a restart, or a device that never came up: work out
                // what it would have been, so offline is still done.
                Phase::New { .. } | Phase::Failed => self.active_guess().await?,
            };
            info!(vif = %active.iface, "device closed; removing");
            self.offline(&active).await;
            self.remove_nodes().await?;
            return Ok(Next::Exit);
        }
        match &self.phase {
            Phase::Online(_) => Ok(Next::Wait(None)),
            Phase::New { .. } | Phase::Failed => match state {
                XenbusState::InitWait
                | XenbusState::Initialised
                | XenbusState::Connected
                | XenbusState::Reconfiguring
                | XenbusState::Reconfigured => {
                    if online == Some(false) {
                        // Being removed: don't bring it up.
                        return Ok(Next::Wait(None));
                    }
                    self.online(&status).await?;
                    Ok(Next::Wait(None))
                }
                XenbusState::Unknown | XenbusState::Initialising => match self.phase {
                    Phase::New {
                        since,
                        timed_out: false,
                    } => Ok(Next::Wait(Some(since + self.shared.cfg.init_timeout))),
                    _ => Ok(Next::Wait(None)),
                },
                XenbusState::Closing | XenbusState::Closed => Ok(Next::Wait(None)),
            },
        }
    }

    /// InitWait did not come within `init_timeout` (libxl
    /// `LIBXL_INIT_TIMEOUT`): report it, keep listening.
    async fn init_deadline_passed(&mut self) {
        if let Phase::New { since, .. } = self.phase {
            self.phase = Phase::New {
                since,
                timed_out: true,
            };
            let msg = format!(
                "backend did not reach InitWait within {:?}",
                self.shared.cfg.init_timeout
            );
            warn!("{msg}");
            if let Err(e) = self.report_error(&msg).await {
                debug!(error = %e, "cannot write hotplug-error");
            }
        }
    }

    /// Bring the vif online (native or legacy) and write `hotplug-status`.
    async fn online(&mut self, status: &BackendStatus) -> Result<(), xenbus::Error> {
        let settings = match xenbus::read_vif_settings(self.client(), &self.bp).await {
            Ok(s) => s,
            Err(e) if e.xenstore_error().is_some() => return Err(e),
            Err(e) => {
                self.phase = Phase::Failed;
                return self.report_error(&chain(&e)).await;
            }
        };
        let script = match self.legacy_script(&settings) {
            Ok(s) => s,
            Err(msg) => {
                self.phase = Phase::Failed;
                return self.report_error(&msg).await;
            }
        };
        let netdev = settings.gatewaydev.clone().unwrap_or_default();
        match script {
            Some(script) => {
                let iface = self.bp.default_vif_name();
                let run = self.script_run(&script, ScriptAction::Online, &iface, &netdev);
                match hotplug::run_script(&run).await {
                    Ok(out) if out.success() => {
                        info!(script = %script.display(), elapsed = ?out.elapsed, "legacy hotplug script done");
                        self.phase = Phase::Online(Active {
                            iface: settings.interface(&self.bp),
                            script: Some(script),
                            netdev,
                        });
                    }
                    Ok(out) => {
                        self.phase = Phase::Failed;
                        // The script's `fatal` writes hotplug-error itself;
                        // only fill in when it did not.
                        let now = xenbus::read_status(self.client(), &self.bp).await?;
                        if now.hotplug_status.as_deref() != Some(HOTPLUG_ERROR) {
                            let tail = out.stderr.lines().last().unwrap_or("").to_string();
                            let msg = format!(
                                "{} online failed ({}): {tail}",
                                script.display(),
                                out.status
                            );
                            self.report_error(&msg).await?;
                        } else {
                            warn!(status = %out.status, "legacy hotplug script failed");
                        }
                    }
                    Err(e) => {
                        self.phase = Phase::Failed;
                        self.report_error(&chain(&e)).await?;
                    }
                }
            }
            None => {
                let mut req =
                    crate::vif_filter::online_request(&self.bp, &settings, &self.shared.cfg.bridge)
                        .link_timeout(self.shared.cfg.link_timeout);
                if let Some(mtu) = settings.mtu {
                    req = req.mtu(mtu);
                }
                if let Some(name) = &settings.vifname {
                    req = req.rename(name.clone());
                }
                match self.shared.hotplug.vif_online(&req).await {
                    Ok(conn) => {
                        if status.hotplug_status.as_deref() == Some(HOTPLUG_CONNECTED) {
                            debug!(
                                changed = conn.changed,
                                "vif verified, hotplug-status already connected"
                            );
                        } else {
                            // On failure the phase stays as it was, so the
                            // retry runs the (idempotent) online again.
                            self.write_connected().await?;
                            info!(vif = %conn.vif, bridge = %conn.bridge, mtu = conn.mtu, filter = %conn.filter, routed = conn.routed, "vif online");
                        }
                        self.phase = Phase::Online(Active {
                            iface: conn.vif.clone(),
                            script: None,
                            netdev,
                        });
                    }
                    Err(e) => {
                        self.phase = Phase::Failed;
                        self.report_error(&chain(&e)).await?;
                    }
                }
            }
        }
        Ok(())
    }

    fn script_run(
        &self,
        script: &Path,
        action: ScriptAction,
        iface: &str,
        netdev: &str,
    ) -> ScriptRun {
        let mut run = ScriptRun::vif(
            script,
            action,
            u32::from(self.bp.fe.0),
            self.bp.devid.0,
            iface,
        );
        run.netdev = netdev.to_string();
        run.timeout = self.shared.cfg.hotplug_timeout;
        if let Some(sock) = &self.shared.cfg.xenstore {
            // So the script's xenstore-read/-write reach our server.
            run.extra_env
                .push(("XENSTORED_PATH".to_string(), sock.display().to_string()));
        }
        run
    }

    /// The legacy script to run, per `--legacy-scripts` (see [`LegacyMode`]).
    fn legacy_script(&self, s: &VifSettings) -> Result<Option<PathBuf>, String> {
        let named = s.script.as_deref();
        match self.shared.cfg.legacy {
            LegacyMode::Never => Ok(None),
            LegacyMode::Always => {
                let p = PathBuf::from(named.unwrap_or(DEFAULT_VIF_SCRIPT));
                if p.is_file() {
                    Ok(Some(p))
                } else {
                    Err(format!("hotplug script {} not found", p.display()))
                }
            }
            LegacyMode::NonDefault => match named {
                None => Ok(None),
                Some(p) if p == DEFAULT_VIF_SCRIPT => Ok(None),
                // vif-route is native too (routed mode, with the filter).
                Some(_) if s.is_route_script() => Ok(None),
                Some(p) if Path::new(p).is_file() => Ok(Some(PathBuf::from(p))),
                Some(p) => {
                    warn!(script = p, "script not found; using native hotplug");
                    Ok(None)
                }
            },
        }
    }

    /// After a restart: how the device would have been brought up.
    async fn active_guess(&self) -> Result<Active, xenbus::Error> {
        match xenbus::read_vif_settings(self.client(), &self.bp).await {
            Ok(s) => Ok(Active {
                iface: s.interface(&self.bp),
                script: self.legacy_script(&s).ok().flatten(),
                netdev: s.gatewaydev.clone().unwrap_or_default(),
            }),
            Err(e) if e.xenstore_error().is_some() => Err(e),
            Err(_) => Ok(Active {
                iface: self.bp.default_vif_name(),
                script: None,
                netdev: String::new(),
            }),
        }
    }

    /// Hotplug `offline`; failures are logged (the device is going away).
    async fn offline(&self, a: &Active) {
        match &a.script {
            Some(script) => {
                let run = self.script_run(script, ScriptAction::Offline, &a.iface, &a.netdev);
                match hotplug::run_script(&run).await {
                    Ok(out) if out.success() => debug!("legacy offline done"),
                    Ok(out) => warn!(status = %out.status, "legacy offline script failed"),
                    Err(e) => warn!(error = %chain(&e), "legacy offline script failed"),
                }
            }
            None => match self.shared.hotplug.vif_offline(&a.iface).await {
                Ok(r) => debug!(result = ?r, vif = %a.iface, "vif offline"),
                Err(e) => warn!(error = %chain(&e), vif = %a.iface, "vif offline failed"),
            },
        }
    }

    /// Remove our backend directory; the frontend and `/libxl` copy too when
    /// this domain may (normally only dom0 may).
    async fn remove_nodes(&self) -> Result<(), xenbus::Error> {
        let c = self.client();
        let tolerable =
            |e: &xenstore::Error| matches!(e.errno(), Some(XsErrno::Enoent | XsErrno::Eacces));
        match c.rm(&self.bp.path()).await {
            Ok(()) => {}
            Err(e) if tolerable(&e) => debug!(error = %e, "backend already gone"),
            Err(e) => {
                return Err(xenbus::Error::Xenstore {
                    context: format!("remove {}", self.bp),
                    source: e,
                });
            }
        }
        for p in [self.bp.frontend().path(), self.bp.libxl().path()] {
            if let Err(e) = c.rm(&p).await {
                if !tolerable(&e) {
                    debug!(error = %e, path = %p, "cannot remove");
                }
            }
        }
        info!("backend removed");
        Ok(())
    }

    /// Write `key = value` pairs, but only while the device still exists
    /// (a plain write would re-create a removed backend directory).
    async fn write_if_present(&self, pairs: Vec<(String, String)>) -> Result<bool, xenbus::Error> {
        let state = self.bp.state();
        // Closed only when the agent shuts down; then just don't write.
        let Ok(_slot) = self.shared.tx_slots.acquire().await else {
            return Ok(false);
        };
        self.client()
            .transaction(move |tx| {
                let (pairs, state) = (pairs.clone(), state.clone());
                async move {
                    if !tx.exists(&state).await? {
                        return Ok(false);
                    }
                    for (k, v) in &pairs {
                        tx.write(k, v).await?;
                    }
                    Ok(true)
                }
                .boxed()
            })
            .await
            .map_err(|source| xenbus::Error::Xenstore {
                context: format!("update {}", self.bp),
                source,
            })
    }

    async fn write_connected(&mut self) -> Result<(), xenbus::Error> {
        let err_key = self.bp.key(keys::HOTPLUG_ERROR);
        if self.last_error.take().is_some() || self.client().exists(&err_key).await.unwrap_or(false)
        {
            if let Err(e) = self.client().rm(&err_key).await {
                debug!(error = %e, "cannot remove old hotplug-error");
            }
        }
        self.write_if_present(vec![(
            self.bp.key(keys::HOTPLUG_STATUS),
            HOTPLUG_CONNECTED.to_string(),
        )])
        .await?;
        Ok(())
    }

    /// `hotplug-error` = msg, `hotplug-status` = error (xen-hotplug-common.sh
    /// `fatal`), once per distinct message.
    async fn report_error(&mut self, msg: &str) -> Result<(), xenbus::Error> {
        let mut text = msg.to_string();
        if text.len() > ERROR_TEXT_MAX {
            let mut cut = ERROR_TEXT_MAX;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        if self.last_error.as_deref() == Some(text.as_str()) {
            return Ok(());
        }
        // A guest can trigger this path: one line per distinct failure.
        warn!(error = %text, "hotplug failed");
        let written = self
            .write_if_present(vec![
                (self.bp.key(keys::HOTPLUG_ERROR), text.clone()),
                (self.bp.key(keys::HOTPLUG_STATUS), HOTPLUG_ERROR.to_string()),
            ])
            .await?;
        if written {
            self.last_error = Some(text);
        }
        Ok(())
    }
}
