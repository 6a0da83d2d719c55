//! Simulated PCI NICs: created in dom0 when a host file first names them
//! (a veth `nicK` whose far end `extK` is plugged into the outside
//! network's bridge), hidden from dom0 by "binding pciback" (moved to the
//! pciback namespace) and given back by "releasing" them.

use topology::ObservedNic;
use tracing::info;
use xentypes::Bdf;

use super::host::SimHost;
use super::state::{NIC_DRIVER, NicPlace, NicRec};
use crate::error::{Error, Result};
use crate::link::Netlink;
use crate::netns;

/// `xl pci-assignable-add` / `drvdom pci assign`.
pub(super) async fn assign(host: &SimHost, bdf: Bdf, _permissive: bool) -> Result<()> {
    let nic = match host.state().nic(bdf).cloned() {
        Some(n) => n,
        None => materialize(host, bdf).await?,
    };
    if nic.place != NicPlace::Dom0 {
        return Ok(());
    }
    let st = host.state();
    move_nic(&st.domains[0].netns, &nic.ifname, &st.pciback_ns).await?;
    host.update(|st| set_place(st, bdf, NicPlace::Pciback))?;
    info!(%bdf, nic = %nic.ifname, "NIC bound to pciback");
    Ok(())
}

/// `xl pci-assignable-remove` / `drvdom pci release`.
pub(super) async fn release(host: &SimHost, bdf: Bdf) -> Result<()> {
    let st = host.state();
    let Some(nic) = st.nic(bdf).cloned() else {
        return Ok(());
    };
    match &nic.place {
        NicPlace::Dom0 => Ok(()),
        NicPlace::Domain(d) => Err(Error::Invalid(format!(
            "NIC {bdf} is passed through to {d}; destroy that domain first"
        ))),
        NicPlace::Pciback => {
            move_nic(&st.pciback_ns, &nic.ifname, &st.domains[0].netns).await?;
            host.update(|st| set_place(st, bdf, NicPlace::Dom0))?;
            info!(%bdf, nic = %nic.ifname, "NIC back with its driver in dom0");
            Ok(())
        }
    }
}

/// What `pci list` would say about these NICs. A NIC the simulated host
/// has not made yet is reported as it will be made: in dom0 with its own
/// driver.
pub(super) async fn observe(host: &SimHost, bdfs: &[Bdf]) -> Result<Vec<ObservedNic>> {
    let st = host.state();
    let mut out = Vec::new();
    for bdf in bdfs {
        let Some(nic) = st.nic(*bdf) else {
            out.push(ObservedNic {
                bdf: *bdf,
                driver: Some(NIC_DRIVER.into()),
                assigned_to: None,
                visible_in_domain: None,
                detail: Some("simulated NIC, not made yet (made in dom0 when assigned)".into()),
            });
            continue;
        };
        let (assigned_to, visible) = match &nic.place {
            NicPlace::Domain(d) => match st.domain(d) {
                Some(rec) => {
                    let seen = Netlink::connect_in(&netns::ns_path(&rec.netns))
                        .await?
                        .index_of(&nic.ifname)
                        .await?
                        .is_some();
                    (Some(xentypes::DomId(rec.domid)), Some(seen))
                }
                None => (None, None),
            },
            NicPlace::Dom0 | NicPlace::Pciback => (None, None),
        };
        let place = match &nic.place {
            NicPlace::Dom0 => "in dom0".to_string(),
            NicPlace::Pciback => "hidden from dom0 (pciback)".to_string(),
            NicPlace::Domain(d) => format!("passed through to {d}"),
        };
        out.push(ObservedNic {
            bdf: *bdf,
            driver: Some(nic.driver().into()),
            assigned_to,
            visible_in_domain: visible,
            detail: Some(format!(
                "simulated NIC {} (cabled to {} in the outside network), {place}; \
                 original driver {NIC_DRIVER}",
                nic.ifname, nic.ext
            )),
        });
    }
    Ok(out)
}

fn set_place(st: &mut super::LabState, bdf: Bdf, place: NicPlace) {
    if let Some(n) = st.nics.iter_mut().find(|n| n.bdf == bdf) {
        n.place = place;
    }
}

async fn move_nic(from_ns: &str, ifname: &str, to_ns: &str) -> Result<()> {
    let nl = Netlink::connect_in(&netns::ns_path(from_ns)).await?;
    if nl.index_of(ifname).await?.is_none() {
        return Err(Error::Invalid(format!(
            "NIC {ifname} is not in {from_ns} where the lab's record puts it"
        )));
    }
    nl.move_to(ifname, &netns::ns_path(to_ns)).await
}

/// Make the NIC: `nicK` in dom0, cabled to the outside bridge.
async fn materialize(host: &SimHost, bdf: Bdf) -> Result<NicRec> {
    let st = host.state();
    let k = (0..)
        .find(|k| !st.nics.iter().any(|n| n.ifname == format!("nic{k}")))
        .unwrap_or(0);
    let nic = NicRec {
        bdf,
        ifname: format!("nic{k}"),
        ext: format!("ext{k}"),
        place: NicPlace::Dom0,
    };
    let dom0 = Netlink::connect_in(&netns::ns_path(&st.domains[0].netns)).await?;
    if dom0.index_of(&nic.ifname).await?.is_none() {
        dom0.add_veth_into(&nic.ifname, &netns::ns_path(&st.outside_ns), &nic.ext, None)
            .await?;
    }
    let out = Netlink::connect_in(&netns::ns_path(&st.outside_ns)).await?;
    out.set_master(&nic.ext, &st.outside_bridge).await?;
    out.set_up(&nic.ext).await?;
    host.update(|st| st.nics.push(nic.clone()))?;
    info!(%bdf, nic = %nic.ifname, "simulated NIC made, cabled to the outside network");
    Ok(nic)
}
