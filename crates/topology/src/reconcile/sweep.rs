//! Backend nodes a dead domain leaves in *other* domains' homes.
//!
//! When a domain dies, its own devices' backends live in the homes of the
//! domains that served them: `/local/domain/<backend>/backend/<kind>/<dead
//! domid>/<devid>` (a guest's vifs in its driver domain, a driver domain's
//! PCI backend in dom0). `xl destroy` removes them; a toolstack that died
//! with the domain (or a host that crashed) does not. Left there, they
//! would be *inherited* by the next domain Xen gives that domid: its
//! backends would see a device it never asked for, with another domain's
//! MAC and settings. So when the daemon buries a dead domain it removes
//! every backend directory naming that domid as frontend — unless xl's
//! own record says the device belongs to the domain that holds the domid
//! now (`/libxl/<domid>/device/<kind>/<devid>/backend` names that very
//! directory), which is the case only when the domid was already reused
//! and the new domain's devices are being set up.

use xenstore::{AsyncClient, DomId};

use crate::error::{Error, Result};
use crate::observe::{self, read_text};

async fn list(xs: &AsyncClient, dir: &str) -> Result<Vec<String>> {
    match xs.directory(dir).await {
        Ok(v) => Ok(v),
        Err(e) if e.is_not_found() => Ok(Vec::new()),
        Err(e) => Err(Error::xs(format!("list {dir}"))(e)),
    }
}

/// Remove the backend directories (in any domain's home) whose frontend
/// was domain `dead` and that the domain now holding that domid (if any)
/// did not record as its own. Returns the directories removed.
pub(super) async fn stale_backends_of(xs: &AsyncClient, dead: u16) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for be in observe::list_domids(xs).await? {
        let base = format!("{}/backend", be.path());
        for kind in list(xs, &base).await? {
            let dir = format!("{base}/{kind}/{dead}");
            for devid in list(xs, &dir).await? {
                let bdir = format!("{dir}/{devid}");
                let record = format!(
                    "{}/device/{kind}/{devid}/backend",
                    xenbus::paths::libxl_domain_dir(DomId(dead))
                );
                if read_text(xs, &record).await?.as_deref() == Some(bdir.as_str()) {
                    continue; // the current holder's own device
                }
                match xs.rm(&bdir).await {
                    Ok(()) => removed.push(bdir),
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(Error::xs(format!("remove {bdir}"))(e)),
                }
            }
            if !removed.is_empty() && list(xs, &dir).await?.is_empty() {
                match xs.rm(&dir).await {
                    Ok(()) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(Error::xs(format!("remove {dir}"))(e)),
                }
            }
        }
    }
    Ok(removed)
}
