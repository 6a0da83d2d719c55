//! `drvdom vif`: attach or detach a guest's vif live, on the real host or
//! a lab (`--lab`), through xenstore with `xenbus` doing what
//! `xl network-attach/-detach` does (README: why xenbus rather than xl).

use std::process::ExitCode;

use anyhow::Context;
use topology::Host;
use topology::observe::domid_of;
use xenbus::{BackendPath, DetachOptions, DevId, MacAddr, VifConfig};
use xenstore::DomId;

use super::host;
use super::usage_error;

/// `drvdom vif` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum VifCmd {
    /// Attach a new vif to GUEST with its backend in DOMAIN and wait until
    /// both ends are Connected and the driver domain's hotplug is done.
    Attach {
        /// Guest (frontend) domain name.
        guest: String,
        /// Backend (driver) domain name, or dom0.
        #[arg(long)]
        backend: String,
        /// MAC address (default: random, Xen OUI 00:16:3e).
        #[arg(long)]
        mac: Option<String>,
        /// Bridge in the driver domain (default xenbr0).
        #[arg(long)]
        bridge: Option<String>,
        /// Device id (default: the next free one).
        #[arg(long)]
        devid: Option<u32>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Detach vif DEVID of GUEST (Closing, Closed, nodes removed).
    Detach {
        /// Guest (frontend) domain name.
        guest: String,
        /// Device id.
        devid: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Move vif DEVID of GUEST to driver domain DOMAIN with the same devid
    /// and MAC; if it is not Connected there (both ends, hotplug, on its
    /// bridge) within --timeout, it goes back where it was and the command
    /// says why (exit 1).
    Move {
        /// Guest (frontend) domain name.
        guest: String,
        /// Device id.
        devid: u32,
        /// The driver domain to move it to.
        #[arg(long, value_name = "DOMAIN")]
        to: String,
        /// Bridge there (default: the same bridge name).
        #[arg(long)]
        bridge: Option<String>,
        /// Seconds the new backend has to connect before the rollback.
        #[arg(long, value_name = "S", default_value_t = 20)]
        timeout: u64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the async runtime")
}

/// Run `drvdom vif`.
pub fn run(cmd: VifCmd, lab: Option<String>) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(run_async(cmd, lab))
}

async fn domid(h: &host::AnyHost, name: &str) -> anyhow::Result<DomId> {
    domid_of(h.xenstore(), name)
        .await?
        .ok_or_else(|| usage_error(format!("no running domain {name:?} on {}", h.describe())))
}

#[allow(clippy::print_stdout)] // the command's report
async fn run_async(cmd: VifCmd, lab: Option<String>) -> anyhow::Result<ExitCode> {
    let h = host::open(lab.as_deref()).await?;
    let xs = h.xenstore();
    match cmd {
        VifCmd::Attach {
            guest,
            backend,
            mac,
            bridge,
            devid,
            json,
        } => {
            let fe = domid(&h, &guest).await?;
            let be = domid(&h, &backend).await?;
            let mut cfg = VifConfig::new(be);
            if let Some(m) = mac {
                let m: MacAddr =
                    MacAddr::parse_strict(&m).map_err(|e| usage_error(format!("--mac: {e}")))?;
                cfg = cfg.mac(m);
            }
            if let Some(b) = bridge {
                cfg = cfg.bridge(b);
            }
            if let Some(d) = devid {
                cfg = cfg.devid(DevId(d));
            }
            if be != DomId::DOM0 {
                // Netback in a driver domain does not trust guests' frontends.
                cfg = cfg.trusted(false);
            }
            let bridge_name = cfg
                .bridge
                .clone()
                .unwrap_or_else(|| xenbus::DEFAULT_BRIDGE.to_string());
            let devid = xenbus::attach_vif(xs, fe, &cfg)
                .await
                .with_context(|| format!("attach a vif of {guest} to {backend}"))?;
            let bp = BackendPath::vif(be, fe, devid);
            let deadline = tokio::time::Instant::now() + topology::apply::VIF_TIMEOUT;
            topology::apply::wait_vif_up(xs, &bp, &guest, deadline)
                .await
                .with_context(|| format!("wait for vif{}.{devid} to connect", fe.0))?;
            if be != DomId::DOM0 {
                // Done when the driver domain shows it on its bridge.
                topology::apply::wait_port_published(xs, be, fe, devid, &bridge_name, deadline)
                    .await
                    .with_context(|| format!("wait for vif{}.{devid} on {bridge_name}", fe.0))?;
            }
            if json {
                let out = serde_json::json!({
                    "guest": guest, "domid": fe.0, "backend": backend, "devid": devid.0,
                    "vif": format!("vif{}.{}", fe.0, devid.0),
                    "backend_state": "Connected", "frontend_state": "Connected",
                    "hotplug_status": "connected",
                });
                println!("{out}");
            } else {
                println!(
                    "{guest}: vif {devid} attached as vif{}.{devid} in {backend} (backend Connected, frontend Connected, hotplug connected)",
                    fe.0
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        VifCmd::Move {
            guest,
            devid,
            to,
            bridge,
            timeout,
            json,
        } => {
            domid(&h, &guest).await?;
            domid(&h, &to).await?;
            let jpath = super::reconcile::journal_of(&h, None);
            let mut journal = topology::reconcile::journal::Journal::open(&jpath)
                .unwrap_or_else(|_| topology::reconcile::journal::Journal::disabled());
            let rep = topology::reconcile::vif_move::move_vif(
                &h,
                &guest,
                DevId(devid),
                &to,
                bridge.as_deref(),
                std::time::Duration::from_secs(timeout),
                &mut journal,
            )
            .await
            .with_context(|| format!("move vif {devid} of {guest} to {to}"))?;
            if json {
                super::output::print_json(super::output::schema::VIF_MOVE, &rep)?;
            } else if rep.moved {
                println!(
                    "{guest}: vif {devid} (mac {}) moved from {} to {} in {} ms",
                    rep.mac, rep.from, rep.to, rep.millis
                );
            } else {
                println!(
                    "{guest}: vif {devid} NOT moved to {}: {}; rolled back to {} (Connected)",
                    rep.to,
                    rep.reason.as_deref().unwrap_or("unknown reason"),
                    rep.from
                );
            }
            Ok(if rep.moved {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        VifCmd::Detach { guest, devid, json } => {
            let fe = domid(&h, &guest).await?;
            let out = xenbus::detach_vif(xs, fe, DevId(devid), &DetachOptions::default())
                .await
                .with_context(|| format!("detach vif {devid} of {guest}"))?;
            if json {
                let j = serde_json::json!({
                    "guest": guest, "devid": devid,
                    "reached_closed": out.reached_closed,
                    "removed_by_backend": out.removed_by_backend,
                });
                println!("{j}");
            } else {
                println!(
                    "{guest}: vif {devid} detached (backend reached Closed: {}, cleaned up by the driver domain: {})",
                    out.reached_closed, out.removed_by_backend
                );
            }
            Ok(if out.reached_closed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}
