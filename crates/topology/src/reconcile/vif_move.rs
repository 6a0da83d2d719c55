//! `drvdom vif move GUEST DEVID --to DOMAIN`: move a live vif to another
//! driver domain with the same devid and MAC, and back to where it was if
//! the new backend does not connect in time.
//!
//! The guest sees what a Linux guest sees on `xl network-detach` then
//! `xl network-attach`: its frontend closes (Closing/Closed handshake with
//! the old backend), its directory goes (the device is unregistered), and
//! a new directory with the same devid appears (a new device is probed and
//! connects to the new backend). Between the removal and the new
//! directory we leave [`super::REPROBE_GUARD`], for the guest's xenwatch
//! thread to handle the removal first.

use std::time::{Duration, Instant};

use serde::Serialize;
use xenbus::{BackendPath, DetachOptions, DeviceKind, keys};
use xenstore::DomId;
use xentypes::DevId;

use super::journal::{Event, EventKind, Journal};
use super::memory::{self, Phase};
use crate::apply::{vif_config, wait_port_published, wait_vif_up};
use crate::error::{Error, Result};
use crate::host::Host;
use crate::model::{Vif, VifMode};
use crate::observe::{self, read_text};

/// What a move did.
#[derive(Debug, Clone, Serialize)]
pub struct MoveReport {
    /// The guest.
    pub guest: String,
    /// The device.
    pub devid: u32,
    /// Where it was.
    pub from: String,
    /// Where it was asked to go.
    pub to: String,
    /// The MAC it kept.
    pub mac: String,
    /// It is now served by `to`.
    pub moved: bool,
    /// The move failed and the vif is back on `from`.
    pub rolled_back: bool,
    /// Why the move failed, if it did.
    pub reason: Option<String>,
    /// How long it took.
    pub millis: u128,
}

/// Move vif `devid` of `guest` to driver domain `to` (bridge `bridge`, else
/// the same bridge name), waiting up to `deadline` for it to connect there.
pub async fn move_vif<H: Host>(
    host: &H,
    guest: &str,
    devid: DevId,
    to: &str,
    bridge: Option<&str>,
    deadline: Duration,
    journal: &mut Journal,
) -> Result<MoveReport> {
    let t0 = Instant::now();
    let xs = host.xenstore();
    let fe = observe::domid_of(xs, guest)
        .await?
        .ok_or_else(|| Error::Host(format!("guest {guest} is not running")))?;
    let to_id = observe::domid_of(xs, to)
        .await?
        .ok_or_else(|| Error::Host(format!("driver domain {to} is not running")))?;
    let old_bp = xenbus::find_backend(xs, fe, DeviceKind::Vif, devid)
        .await
        .map_err(Error::xb(format!("look up vif {devid} of {guest}")))?
        .ok_or_else(|| Error::Host(format!("{guest} has no vif {devid}")))?;
    let old = observe::observe_vif(xs, fe, devid, old_bp).await?;
    let from = read_text(xs, &format!("{}/name", old_bp.be.path()))
        .await?
        .unwrap_or_else(|| format!("domain {}", old_bp.be));
    let mac = old
        .mac
        .ok_or_else(|| Error::Host(format!("vif {devid} of {guest} has no MAC")))?;
    let script = read_text(xs, &old_bp.libxl().key(keys::SCRIPT)).await?;
    let route = script.as_deref().is_some_and(|s| s.ends_with("vif-route"));
    let old_vif = Vif {
        devid,
        backend: from.clone(),
        bridge: old.bridge.clone(),
        mac,
        ip: old.ip.clone(),
        mtu: old.mtu,
        mode: if route {
            VifMode::Route
        } else {
            VifMode::Bridge
        },
        trusted: old.trusted.unwrap_or(true),
        l2_hygiene: old.l2_hygiene.unwrap_or(true),
    };
    let mut report = MoveReport {
        guest: guest.to_string(),
        devid: devid.0,
        from: from.clone(),
        to: to.to_string(),
        mac: mac.to_string(),
        moved: false,
        rolled_back: false,
        reason: None,
        millis: 0,
    };
    if old_bp.be == to_id {
        report.moved = true;
        report.reason = Some(format!("already served by {to}"));
        return Ok(report);
    }
    let new_vif = Vif {
        backend: to.to_string(),
        bridge: bridge.map(str::to_string).or_else(|| old.bridge.clone()),
        ..old_vif.clone()
    };
    let ev = |journal: &mut Journal, kind, what: &str, reason: String| {
        journal.append(&Event::now(
            kind,
            guest,
            Some(fe.0),
            Some(format!("vif/{devid}")),
            what,
            reason,
        ));
    };
    ev(
        journal,
        EventKind::Action,
        "move",
        format!(
            "from {from} (domain {}) to {to} (domain {to_id}), mac {mac}",
            old_bp.be
        ),
    );
    detach(host, fe, devid).await?;
    tokio::time::sleep(super::REPROBE_GUARD).await;
    match attach_wait(host, guest, fe, &new_vif, to_id, deadline).await {
        Ok(()) => {
            report.moved = true;
            remember(host, guest, devid, to, to_id).await?;
            ev(
                journal,
                EventKind::Action,
                "moved",
                format!(
                    "Connected on both ends in {to} after {} ms",
                    t0.elapsed().as_millis()
                ),
            );
        }
        Err(e) => {
            let why = crate::apply::error_chain(&e);
            ev(journal, EventKind::Error, "move failed", why.clone());
            report.reason = Some(why.clone());
            detach(host, fe, devid).await?;
            tokio::time::sleep(super::REPROBE_GUARD).await;
            attach_wait(host, guest, fe, &old_vif, old_bp.be, deadline)
                .await
                .map_err(|e2| {
                    Error::Host(format!(
                        "moving vif {devid} of {guest} to {to} failed ({why}) and so did the \
                         rollback to {from}: {}",
                        crate::apply::error_chain(&e2)
                    ))
                })?;
            report.rolled_back = true;
            ev(
                journal,
                EventKind::Action,
                "rolled back",
                format!(
                    "back on {from} (domain {}), Connected; the move failed: {why}",
                    old_bp.be
                ),
            );
        }
    }
    report.millis = t0.elapsed().as_millis();
    Ok(report)
}

async fn detach<H: Host>(host: &H, fe: DomId, devid: DevId) -> Result<()> {
    let mut opts = DetachOptions::default();
    opts.closed_timeout = Duration::from_secs(5);
    opts.backend_removal_timeout = Some(Duration::from_secs(5));
    opts.force = true;
    match xenbus::detach_vif(host.xenstore(), fe, devid, &opts).await {
        Ok(_) | Err(xenbus::Error::NoSuchDevice { .. }) => Ok(()),
        Err(e) => Err(Error::xb(format!("detach vif {devid} of domain {fe}"))(e)),
    }
}

async fn attach_wait<H: Host>(
    host: &H,
    guest: &str,
    fe: DomId,
    v: &Vif,
    be: DomId,
    deadline: Duration,
) -> Result<()> {
    let xs = host.xenstore();
    let until = tokio::time::Instant::now() + deadline;
    if be != DomId::DOM0 {
        super::pass::grant_name_read(xs, fe, be).await?;
    }
    xenbus::attach_vif(xs, fe, &vif_config(v, be))
        .await
        .map_err(Error::xb(format!("attach vif {} of {guest}", v.devid)))?;
    let bp = BackendPath::vif(be, fe, v.devid);
    wait_vif_up(xs, &bp, guest, until).await?;
    if let (VifMode::Bridge, Some(br), false) = (v.mode, &v.bridge, be == DomId::DOM0) {
        wait_port_published(xs, be, fe, v.devid, br, until).await?;
    }
    host.vif_connected(guest, fe, v).await
}

/// Tell the reconcile daemon's memory where the vif lives now.
async fn remember<H: Host>(
    host: &H,
    guest: &str,
    devid: DevId,
    to: &str,
    to_id: DomId,
) -> Result<()> {
    let xs = host.xenstore();
    let node = memory::vif_node(guest, devid.0);
    let Some(raw) = observe::read_opt(xs, &node).await? else {
        return Ok(());
    };
    if let Ok(mut w) = serde_json::from_slice::<memory::WantVif>(&raw) {
        w.backend = to.to_string();
        w.backend_domid = Some(to_id.0);
        w.phase = Phase::Active;
        w.since_ms = super::journal::now_ms();
        memory::save_vif(xs, &w).await?;
    }
    Ok(())
}
