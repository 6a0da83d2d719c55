//! `drvdom vif`: attach or detach a guest's vif live, on the real host or
//! a lab (`--lab`), through xenstore with `xenbus` doing what
//! `xl network-attach/-detach` does (README: why xenbus rather than xl).
//!
//! `attach` checks its input before writing anything (the guest exists;
//! the MAC is well-formed, unicast and not zero; the backend is dom0 or a
//! running driver domain whose agent publishes the bridge), and a vif
//! that does not connect in time is removed again: a failed attach leaves
//! nothing behind.

use std::process::ExitCode;

use anyhow::Context;
use topology::Host;
use topology::observe::domid_of;
use xenbus::{BackendPath, DetachOptions, DevId, MacAddr, VifConfig};
use xenstore::DomId;

use super::host;
use super::output::{self, Code, cli_error, cli_error_with, not_found, schema};

/// `drvdom vif` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum VifCmd {
    /// Attach a new vif to GUEST with its backend in DOMAIN and wait until
    /// both ends are Connected and the driver domain's hotplug is done.
    Attach {
        /// Guest (frontend) domain name.
        guest: String,
        /// Backend (driver) domain name, or dom0 (default: the only
        /// driver domain).
        #[arg(long, visible_alias = "domain")]
        backend: Option<String>,
        /// MAC address, unicast (default: random, Xen OUI 00:16:3e).
        #[arg(long)]
        mac: Option<String>,
        /// Bridge in the driver domain (default xenbr0); must exist.
        #[arg(long)]
        bridge: Option<String>,
        /// Device id (default: the next free one).
        #[arg(long)]
        devid: Option<u32>,
        /// Seconds to wait for both ends to connect; after that the vif is
        /// removed again.
        #[arg(long, value_name = "SECS", default_value_t = topology::apply::VIF_TIMEOUT.as_secs())]
        timeout: u64,
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

/// Every domain: (domid, name).
async fn domains(h: &host::AnyHost) -> anyhow::Result<Vec<(DomId, String)>> {
    let xs = h.xenstore();
    let mut v = Vec::new();
    for id in topology::observe::list_domids(xs).await? {
        let name = xs
            .read_opt(&format!("{}/name", id.path()))
            .await
            .ok()
            .flatten()
            .map(|b| String::from_utf8_lossy(&b).trim().to_string())
            .unwrap_or_else(|| format!("domain {}", id.0));
        v.push((id, name));
    }
    Ok(v)
}

/// The driver domains: domains whose agent publishes its bridges.
pub async fn driver_domains(h: &host::AnyHost) -> anyhow::Result<Vec<(DomId, String)>> {
    let xs = h.xenstore();
    let mut v = Vec::new();
    for (id, name) in domains(h).await? {
        if id != DomId::DOM0
            && xs
                .exists(&xenbus::agent::agent_dir(id))
                .await
                .unwrap_or(false)
        {
            v.push((id, name));
        }
    }
    Ok(v)
}

/// The domain called `name`, or a not-found error listing them all.
async fn domid(h: &host::AnyHost, name: &str) -> anyhow::Result<DomId> {
    if let Some(id) = domid_of(h.xenstore(), name).await? {
        return Ok(id);
    }
    let known: Vec<String> = domains(h).await?.into_iter().map(|(_, n)| n).collect();
    Err(not_found(
        &format!("running domain on {}", h.describe()),
        name,
        &known,
        "",
    ))
}

/// The backend: the one named (dom0, or a driver domain), else the only
/// driver domain.
async fn backend_of(h: &host::AnyHost, name: Option<&str>) -> anyhow::Result<(DomId, String)> {
    let dds = driver_domains(h).await?;
    let names: Vec<String> = dds.iter().map(|(_, n)| n.clone()).collect();
    match name {
        None => match dds.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(cli_error(
                Code::NotFound,
                format!("no driver domain runs on {}: give --backend", h.describe()),
            )),
            _ => Err(cli_error_with(
                Code::Usage,
                format!(
                    "{} driver domains run on {} ({}): give --backend",
                    dds.len(),
                    h.describe(),
                    names.join(", ")
                ),
                serde_json::json!({ "known": names }),
            )),
        },
        Some(n) => {
            let id = domid(h, n).await?;
            if id == DomId::DOM0 || dds.iter().any(|(d, _)| *d == id) {
                return Ok((id, n.to_string()));
            }
            Err(cli_error_with(
                Code::Invalid,
                format!(
                    "{n} is not a driver domain (no drvdom-agent publishes its bridges there); \
                     driver domains: {}",
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                ),
                serde_json::json!({ "known": names }),
            ))
        }
    }
}

/// A `--mac`: well-formed, unicast, not zero.
fn check_mac(m: &str) -> anyhow::Result<MacAddr> {
    let mac = MacAddr::parse_strict(m)
        .map_err(|e| cli_error(Code::Invalid, format!("--mac {m}: {e}")))?;
    if mac.is_multicast() {
        return Err(cli_error(
            Code::Invalid,
            format!(
                "--mac {m}: a multicast address (the low bit of the first octet is set); \
                 a vif needs a unicast MAC, e.g. 00:16:3e:xx:xx:xx"
            ),
        ));
    }
    if mac.is_zero() {
        return Err(cli_error(
            Code::Invalid,
            format!("--mac {m}: the zero address"),
        ));
    }
    Ok(mac)
}

#[allow(clippy::print_stdout)] // the command's report
async fn run_async(cmd: VifCmd, lab: Option<String>) -> anyhow::Result<ExitCode> {
    match cmd {
        VifCmd::Attach {
            guest,
            backend,
            mac,
            bridge,
            devid,
            timeout,
            json,
        } => {
            // Input first: nothing is written until all of it is good.
            let mac = mac.as_deref().map(check_mac).transpose()?;
            let h = host::open(lab.as_deref()).await?;
            let xs = h.xenstore();
            let fe = domid(&h, &guest).await?;
            let (be, backend) = backend_of(&h, backend.as_deref()).await?;
            if be == fe {
                return Err(cli_error(
                    Code::Invalid,
                    format!("{guest} cannot be its own backend"),
                ));
            }
            let bridge_name = bridge
                .clone()
                .unwrap_or_else(|| xenbus::DEFAULT_BRIDGE.to_string());
            if be != DomId::DOM0 {
                let p = xenbus::agent::read_published(xs, be)
                    .await
                    .with_context(|| format!("read the bridges {backend}'s agent publishes"))?;
                let bridges: Vec<String> = p.bridges.iter().map(|b| b.name.clone()).collect();
                if !bridges.contains(&bridge_name) {
                    return Err(not_found(
                        &format!("bridge in {backend}"),
                        &bridge_name,
                        &bridges,
                        "",
                    ));
                }
            }
            let mut cfg = VifConfig::new(be);
            if let Some(m) = mac {
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
            let devid = xenbus::attach_vif(xs, fe, &cfg)
                .await
                .with_context(|| format!("attach a vif of {guest} to {backend}"))?;
            let bp = BackendPath::vif(be, fe, devid);
            let limit = std::time::Duration::from_secs(timeout);
            let deadline = tokio::time::Instant::now() + limit;
            let waited = async {
                topology::apply::wait_vif_up(xs, &bp, &guest, deadline)
                    .await
                    .with_context(|| format!("wait for vif{}.{devid} to connect", fe.0))?;
                if be != DomId::DOM0 {
                    // Done when the driver domain shows it on its bridge.
                    topology::apply::wait_port_published(xs, be, fe, devid, &bridge_name, deadline)
                        .await
                        .with_context(|| {
                            format!("wait for vif{}.{devid} on {bridge_name}", fe.0)
                        })?;
                }
                anyhow::Ok(())
            }
            .await;
            if let Err(e) = waited {
                // Undo: ask the backend to close, briefly, then remove
                // every node written, whatever the backend did.
                let mut opts = DetachOptions::default();
                opts.closed_timeout = UNDO_TIMEOUT;
                opts.backend_removal_timeout = Some(UNDO_TIMEOUT);
                opts.force = true;
                let _ = xenbus::detach_vif(xs, fe, devid, &opts).await;
                let undone = xenbus::remove_device_nodes(xs, bp).await;
                let what = match undone {
                    Ok(()) => "the vif was removed again; nothing is left behind".to_string(),
                    Err(u) => format!(
                        "removing it again failed too ({u}): run `drvdom vif detach {guest} {devid}`"
                    ),
                };
                return Err(cli_error(
                    Code::Timeout,
                    format!(
                        "vif {devid} of {guest} did not connect to {backend} within {timeout} s ({e:#}); {what}"
                    ),
                ));
            }
            let mac = xs
                .read_opt(&bp.key("mac"))
                .await
                .ok()
                .flatten()
                .map(|b| String::from_utf8_lossy(&b).trim().to_string());
            if json {
                output::print_json(
                    schema::VIF_ATTACH,
                    &serde_json::json!({
                        "guest": guest, "domid": fe.0, "backend": backend,
                        "backend_domid": be.0, "devid": devid.0,
                        "vif": format!("vif{}.{}", fe.0, devid.0),
                        "mac": mac, "bridge": bridge_name,
                        "backend_state": "Connected", "frontend_state": "Connected",
                        "hotplug_status": "connected",
                    }),
                )?;
            } else {
                println!(
                    "{guest}: vif {devid} attached as vif{}.{devid} in {backend} on {bridge_name}, mac {} (backend Connected, frontend Connected, hotplug connected)",
                    fe.0,
                    mac.as_deref().unwrap_or("?")
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
            let h = host::open(lab.as_deref()).await?;
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
            let h = host::open(lab.as_deref()).await?;
            let xs = h.xenstore();
            let fe = domid(&h, &guest).await?;
            let vifs = xenbus::list_vifs(xs, fe)
                .await
                .with_context(|| format!("list the vifs of {guest}"))?;
            if !vifs.iter().any(|v| v.devid.0 == devid) {
                let known: Vec<String> = vifs.iter().map(|v| v.devid.0.to_string()).collect();
                return Err(not_found(
                    &format!("vif of {guest}"),
                    &devid.to_string(),
                    &known,
                    "",
                ));
            }
            let out = xenbus::detach_vif(xs, fe, DevId(devid), &DetachOptions::default())
                .await
                .with_context(|| format!("detach vif {devid} of {guest}"))?;
            if json {
                output::print_json(
                    schema::VIF_DETACH,
                    &serde_json::json!({
                        "guest": guest, "devid": devid,
                        "reached_closed": out.reached_closed,
                        "removed_by_backend": out.removed_by_backend,
                        "removed": true,
                    }),
                )?;
            } else if out.reached_closed {
                println!(
                    "{guest}: vif {devid} detached (backend reached Closed, cleaned up by the driver domain: {})",
                    out.removed_by_backend
                );
            } else {
                println!(
                    "{guest}: vif {devid} removed, but its backend never reached Closed (the driver domain did not answer); its nodes were removed anyway"
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

/// How long undoing a failed attach waits for the backend to close.
const UNDO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
