//! PCI passthrough backend nodes (DEVICES.md §7; libxl_pci.c
//! `libxl__create_pci_backend`, `libxl_create_pci_backend_device`).
//!
//! In Xen 4.17 the PCI backend is always dom0, one backend device (devid 0)
//! per guest, functions numbered `0..num_devs`.

use futures::FutureExt;
use tracing::info;
use xenstore::{Access, AsyncClient, DomId, PermList, XsErrno};

use crate::error::{Error, Result};
use crate::paths::{BackendPath, DevId, DeviceKind, domain_path, keys};
use crate::state::XenbusState;
use crate::vif::frontend_perms;

pub use xentypes::Bdf;

/// `rdm_policy` of a PCI function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RdmPolicy {
    /// `strict`.
    #[default]
    Strict,
    /// `relaxed`.
    Relaxed,
}

impl RdmPolicy {
    fn as_str(self) -> &'static str {
        match self {
            RdmPolicy::Strict => "strict",
            RdmPolicy::Relaxed => "relaxed",
        }
    }
}

/// One function to pass through.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PciFunction {
    /// Host address.
    pub bdf: Bdf,
    /// Guest devfn, if fixed.
    pub vdevfn: Option<u32>,
    /// Name, if set.
    pub name: Option<String>,
    /// `msitranslate`.
    pub msitranslate: bool,
    /// `power_mgmt`.
    pub power_mgmt: bool,
    /// `permissive`.
    pub permissive: bool,
    /// `rdm_policy`.
    pub rdm_policy: RdmPolicy,
}

impl PciFunction {
    /// A function with libxl's default options.
    pub fn new(bdf: Bdf) -> PciFunction {
        PciFunction {
            bdf,
            vdevfn: None,
            name: None,
            msitranslate: false,
            power_mgmt: false,
            permissive: false,
            rdm_policy: RdmPolicy::Strict,
        }
    }

    /// The `opts-<i>` value.
    pub fn opts(&self) -> String {
        format!(
            "msitranslate={},power_mgmt={},permissive={},rdm_policy={}",
            u8::from(self.msitranslate),
            u8::from(self.power_mgmt),
            u8::from(self.permissive),
            self.rdm_policy.as_str()
        )
    }
}

/// The PCI backend device of one guest.
pub fn pci_backend_path(fe: DomId) -> BackendPath {
    BackendPath::new(DomId::DOM0, DeviceKind::Pci, fe, DevId(0))
}

/// Write the PCI backend, frontend and `/libxl` nodes for `functions` of
/// guest `fe` (named `guest_name`) in one transaction, replacing stale ones.
pub async fn attach_pci(
    client: &AsyncClient,
    fe: DomId,
    guest_name: &str,
    functions: &[PciFunction],
) -> Result<()> {
    let bp = pci_backend_path(fe);
    let mut bents: Vec<(String, String)> = vec![
        (keys::FRONTEND_ID.into(), fe.to_string()),
        (keys::ONLINE.into(), "1".into()),
        (keys::STATE.into(), XenbusState::Initialising.to_wire()),
        ("domain".into(), guest_name.to_string()),
    ];
    for (i, f) in functions.iter().enumerate() {
        bents.push((format!("key-{i}"), f.bdf.to_string()));
        bents.push((format!("dev-{i}"), f.bdf.to_string()));
        if let Some(v) = f.vdevfn {
            bents.push((format!("vdevfn-{i}"), format!("{v:x}")));
        }
        if let Some(n) = &f.name {
            bents.push((format!("name-{i}"), n.clone()));
        }
        bents.push((format!("opts-{i}"), f.opts()));
        bents.push((format!("state-{i}"), XenbusState::Initialising.to_wire()));
    }
    bents.push(("num_devs".into(), functions.len().to_string()));
    let result = client
        .transaction(move |tx| {
            let bents = bents.clone();
            async move {
                for d in [fe, bp.be] {
                    // dom0 always exists, even before its nodes are written.
                    if d != DomId::DOM0 && !tx.exists(&domain_path(d)).await? {
                        return Ok(Err(Error::NoSuchDomain(d)));
                    }
                }
                let (fpath, lpath) = (bp.frontend(), bp.libxl());
                let (fdir, bdir, ldir) = (fpath.path(), bp.path(), lpath.path());
                let enoent_ok = |r: xenstore::Result<()>| match r {
                    Err(e) if e.errno() == Some(XsErrno::Enoent) => Ok(()),
                    o => o,
                };
                let fperms = frontend_perms(fe, bp.be);
                enoent_ok(tx.rm(&fdir).await)?;
                tx.mkdir(&fdir).await?;
                tx.set_perms(&fdir, &fperms).await?;
                tx.write(&fpath.key(keys::BACKEND), &bdir).await?;
                for (k, v) in [
                    (keys::BACKEND_ID, bp.be.to_string()),
                    (keys::STATE, XenbusState::Initialising.to_wire()),
                ] {
                    tx.write(&fpath.key(k), v).await?;
                    tx.set_perms(&fpath.key(k), &fperms).await?;
                }
                enoent_ok(tx.rm(&bdir).await)?;
                tx.mkdir(&bdir).await?;
                tx.set_perms(
                    &bdir,
                    &PermList::owned_by(bp.be, Access::None).with(Access::Read, fe),
                )
                .await?;
                tx.write(&bp.key(keys::FRONTEND), &fdir).await?;
                for (k, v) in &bents {
                    tx.write(&bp.key(k), v).await?;
                }
                enoent_ok(tx.rm(&ldir).await)?;
                tx.write(&lpath.key(keys::FRONTEND), &fdir).await?;
                tx.write(&lpath.key(keys::BACKEND), &bdir).await?;
                for (k, v) in &bents {
                    tx.write(&lpath.key(k), v).await?;
                }
                Ok(Ok(()))
            }
            .boxed()
        })
        .await
        .map_err(Error::xs(format!("attach pci to domain {fe}")))?;
    result?;
    info!(fe = fe.0, count = functions.len(), "pci backend written");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_options_as_libxl_writes_them() {
        let b: Bdf = "0000:03:00.1".parse().unwrap();
        assert_eq!(
            PciFunction::new(b).opts(),
            "msitranslate=0,power_mgmt=0,permissive=0,rdm_policy=strict"
        );
    }
}
