//! The dom0 toolstack part of the lab: what `xl create` and `xl
//! network-attach/-detach` do to xenstore, through `xenbus`.

use xenbus::{
    Bdf, DetachOptions, DetachOutcome, DevId, DomainSpec, MacAddr, PciFunction, VifConfig,
    XenbusState,
};
use xenstore::{AsyncClient, DomId};

use crate::error::{Error, Result};

/// Dummy ring page frame for INTRODUCE: there is no shared page in the
/// simulation (the domain talks through its socket instead).
const DUMMY_GFN: i64 = 0xfeff0;
/// Dummy event channel for INTRODUCE.
const DUMMY_EVTCHN: u32 = 1;

/// INTRODUCE the domain (so the server knows it and opens its socket),
/// then write `/local/domain/<id>` as xl does.
pub(crate) async fn create_domain(
    dom0: &AsyncClient,
    domid: DomId,
    name: &str,
    driver_domain: bool,
) -> Result<()> {
    let introduced = dom0.is_introduced(domid).await.map_err(Error::xs(format!(
        "ask whether domain {domid} is introduced"
    )))?;
    if !introduced {
        dom0.introduce(domid, DUMMY_GFN + i64::from(domid.0), DUMMY_EVTCHN)
            .await
            .map_err(Error::xs(format!("introduce domain {domid}")))?;
    }
    if driver_domain {
        let (id, n, m) = (
            domid.0.to_string(),
            super::LAB_QUOTA_NODES.to_string(),
            super::LAB_QUOTA_MEMORY.to_string(),
        );
        dom0.control(&["quota-set", &id, "nodes", &n, "memory", &m])
            .await
            .map_err(Error::xs(format!(
                "raise the quotas of driver domain {domid}"
            )))?;
    }
    xenbus::make_domain(
        dom0,
        &DomainSpec::new(domid, name).driver_domain(driver_domain),
    )
    .await
    .map_err(Error::xb(format!("create domain {name} ({domid})")))
}

/// Pass the NIC through: the PCI backend nodes libxl writes for `pci =
/// ['<bdf>']` in the driver domain's config.
pub(crate) async fn assign_pci(
    dom0: &AsyncClient,
    dd: DomId,
    dd_name: &str,
    bdf: &str,
) -> Result<()> {
    let bdf: Bdf = bdf
        .parse::<Bdf>()
        .map_err(|e| Error::xb(format!("parse pci address {bdf}"))(e.into()))?;
    xenbus::attach_pci(dom0, dd, dd_name, &[PciFunction::new(bdf)])
        .await
        .map_err(Error::xb(format!(
            "write pci backend of {dd_name} for {bdf}"
        )))
}

/// The `dev-<i>` values of the driver domain's PCI backend.
pub(crate) async fn pci_nodes(dom0: &AsyncClient, dd: DomId) -> Result<Vec<String>> {
    let bp = xenbus::pci::pci_backend_path(dd);
    let n = dom0
        .read_opt(&bp.key("num_devs"))
        .await
        .map_err(Error::xs(format!("read {bp}/num_devs")))?
        .and_then(|v| String::from_utf8(v).ok())
        .and_then(|s| s.parse::<u32>().ok())
        .unwrap_or(0);
    let mut out = Vec::new();
    for i in 0..n.min(32) {
        if let Some(v) = dom0
            .read_opt(&bp.key(&format!("dev-{i}")))
            .await
            .map_err(Error::xs(format!("read {bp}/dev-{i}")))?
        {
            out.push(String::from_utf8_lossy(&v).into_owned());
        }
    }
    Ok(out)
}

/// `xl network-attach <fe> backend=<be> [mac=..] [bridge=..]`, then wait
/// until both ends are Connected. Returns the devid and both states.
pub async fn attach_guest_vif(
    dom0: &AsyncClient,
    fe: DomId,
    be: DomId,
    mac: Option<&str>,
    bridge: Option<&str>,
) -> Result<(DevId, XenbusState, XenbusState)> {
    let mut cfg = VifConfig::new(be);
    if let Some(m) = mac {
        let m: MacAddr = m
            .parse()
            .map_err(|e: xentypes::Error| Error::xb(format!("parse mac {m}"))(e.into()))?;
        cfg = cfg.mac(m);
    }
    if let Some(b) = bridge {
        cfg = cfg.bridge(b);
    }
    let devid = xenbus::attach_vif(dom0, fe, &cfg)
        .await
        .map_err(Error::xb(format!("attach vif to domain {fe}")))?;
    let (b, f) = super::wait_connected(dom0, fe, be, devid).await?;
    Ok((devid, b, f))
}

/// `xl network-detach <fe> <devid>`: Closing, wait Closed, wait for the
/// driver domain to clean up, remove the nodes.
pub async fn detach_guest_vif(
    dom0: &AsyncClient,
    fe: DomId,
    devid: DevId,
) -> Result<DetachOutcome> {
    xenbus::detach_vif(dom0, fe, devid, &DetachOptions::default())
        .await
        .map_err(Error::xb(format!("detach vif {devid} of domain {fe}")))
}
