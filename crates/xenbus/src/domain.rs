//! `/local/domain/<id>` as xl writes it (DEVICES.md §2; libxl_create.c
//! `libxl__domain_make`, libxl_dom.c `libxl__build_post`), for the simulator
//! and tests. On real Xen, `xl create` does this.

use futures::FutureExt;
use tracing::info;
use xenstore::{Access, AsyncClient, DomId, PermList, XsErrno};

use crate::error::{Error, Result};
use crate::paths::{domain_path, libxl_domain_dir, vm_path};

/// Domain type (`/libxl/<D>/type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DomainType {
    /// Paravirtualised.
    #[default]
    Pv,
    /// Hardware virtualised.
    Hvm,
    /// PVH.
    Pvh,
}

impl DomainType {
    /// The xenstore value.
    pub fn as_str(self) -> &'static str {
        match self {
            DomainType::Pv => "pv",
            DomainType::Hvm => "hvm",
            DomainType::Pvh => "pvh",
        }
    }
}

/// What to write for one domain.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DomainSpec {
    /// Domain id.
    pub domid: DomId,
    /// Name.
    pub name: String,
    /// UUID text (`xxxxxxxx-xxxx-...`).
    pub uuid: String,
    /// Type.
    pub kind: DomainType,
    /// `driver_domain = 1`: the domain owns `libxl` and `device-model`.
    pub driver_domain: bool,
    /// Memory in KiB (`memory/static-max`, `memory/target`).
    pub memory_kib: u64,
    /// Number of vcpus (`cpu/<n>/availability` = online).
    pub vcpus: u32,
}

impl DomainSpec {
    /// A PV domain with 128 MiB and one vcpu; the UUID is derived from the
    /// domid so it is stable across runs.
    pub fn new(domid: DomId, name: impl Into<String>) -> DomainSpec {
        DomainSpec {
            domid,
            name: name.into(),
            uuid: format!("00000000-0000-4000-8000-{:012x}", domid.0),
            kind: DomainType::Pv,
            driver_domain: false,
            memory_kib: 128 * 1024,
            vcpus: 1,
        }
    }

    /// Mark as driver domain.
    pub fn driver_domain(mut self, yes: bool) -> Self {
        self.driver_domain = yes;
        self
    }
}

fn enoent_ok(r: xenstore::Result<()>) -> xenstore::Result<()> {
    match r {
        Err(e) if e.errno() == Some(XsErrno::Enoent) => Ok(()),
        o => o,
    }
}

/// Write `/local/domain/<id>`, `/vm/<uuid>` and `/libxl/<id>` in one
/// transaction, with libxl's permissions. The server must already know the
/// domain (INTRODUCE) since it owns some nodes.
pub async fn make_domain(client: &AsyncClient, spec: &DomainSpec) -> Result<()> {
    let domid = spec.domid;
    if !domid.is_valid_domain() {
        return Err(Error::invalid(
            "domid",
            domid.to_string().as_bytes(),
            "reserved domain id",
        ));
    }
    let spec2 = spec.clone();
    client
        .transaction(move |tx| {
            let spec = spec2.clone();
            async move {
                let d = spec.domid;
                let dom = domain_path(d);
                let vm = vm_path(&spec.uuid);
                let lib = libxl_domain_dir(d);
                // roperm: n0 r<D>; rwperm: n<D>; noperm: n0.
                let ro = PermList::owned_by(DomId::DOM0, Access::None).with(Access::Read, d);
                let rw = PermList::owned_by(d, Access::None);
                let no = PermList::owned_by(DomId::DOM0, Access::None);
                let mknod = |p: String, perms: PermList| async move {
                    tx.write(&p, "").await?;
                    tx.set_perms(&p, &perms).await
                };
                enoent_ok(tx.rm(&dom).await)?;
                mknod(dom.clone(), ro.clone()).await?;
                enoent_ok(tx.rm(&vm).await)?;
                mknod(vm.clone(), ro.clone()).await?;
                enoent_ok(tx.rm(&lib).await)?;
                mknod(lib.clone(), no.clone()).await?;
                mknod(format!("{lib}/device"), no.clone()).await?;
                tx.write(&format!("{lib}/type"), spec.kind.as_str()).await?;
                tx.write(&format!("{dom}/vm"), &vm).await?;
                tx.write(&format!("{dom}/name"), &spec.name).await?;
                for sub in ["cpu", "memory", "device", "control"] {
                    mknod(format!("{dom}/{sub}"), ro.clone()).await?;
                }
                if spec.kind == DomainType::Hvm {
                    mknod(format!("{dom}/hvmloader"), ro.clone()).await?;
                }
                let mut guest = vec![
                    "control/shutdown",
                    "control/feature-poweroff",
                    "control/feature-reboot",
                    "control/feature-suspend",
                ];
                if spec.kind == DomainType::Hvm {
                    guest.extend(["control/feature-s3", "control/feature-s4"]);
                }
                guest.extend([
                    "control/sysrq",
                    "device/suspend/event-channel",
                    "data",
                    "drivers",
                    "feature",
                    "attr",
                    "error",
                ]);
                if spec.driver_domain {
                    guest.extend(["libxl", "device-model"]);
                }
                for sub in guest {
                    mknod(format!("{dom}/{sub}"), rw.clone()).await?;
                }
                tx.write(&format!("{vm}/uuid"), &spec.uuid).await?;
                tx.write(&format!("{vm}/name"), &spec.name).await?;
                tx.write(
                    &format!("{dom}/control/platform-feature-multiprocessor-suspend"),
                    "1",
                )
                .await?;
                tx.write(
                    &format!("{dom}/control/platform-feature-xs_reset_watches"),
                    "1",
                )
                .await?;
                // libxl__build_post.
                let mem = spec.memory_kib.to_string();
                tx.write(&format!("{dom}/memory/static-max"), &mem).await?;
                tx.write(&format!("{dom}/memory/target"), &mem).await?;
                tx.write(&format!("{dom}/memory/videoram"), "-1").await?;
                tx.write(&format!("{dom}/domid"), d.to_string()).await?;
                for n in 0..spec.vcpus.max(1) {
                    tx.write(&format!("{dom}/cpu/{n}/availability"), "online")
                        .await?;
                }
                Ok(())
            }
            .boxed()
        })
        .await
        .map_err(Error::xs(format!(
            "create xenstore nodes of domain {domid}"
        )))?;
    info!(domid = domid.0, name = %spec.name, driver_domain = spec.driver_domain, "domain nodes written");
    Ok(())
}

/// Remove a domain's nodes (`/local/domain/<id>`, its `/vm` and `/libxl`
/// entries), as libxl does on destroy. Missing nodes are fine.
pub async fn destroy_domain(client: &AsyncClient, domid: DomId) -> Result<()> {
    client
        .transaction(move |tx| {
            async move {
                let dom = domain_path(domid);
                if let Some(vm) = tx.read_opt(&format!("{dom}/vm")).await? {
                    let vm = String::from_utf8_lossy(&vm).into_owned();
                    if vm.starts_with("/vm/") && !vm.contains("..") {
                        enoent_ok(tx.rm(&vm).await)?;
                    }
                }
                enoent_ok(tx.rm(&dom).await)?;
                enoent_ok(tx.rm(&libxl_domain_dir(domid)).await)?;
                Ok(())
            }
            .boxed()
        })
        .await
        .map_err(Error::xs(format!(
            "remove xenstore nodes of domain {domid}"
        )))
}
