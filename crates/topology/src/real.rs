//! [`RealHost`]: a Xen host's dom0. `xl` stays the engine for domains
//! (`xl create` of the user's xl.cfg, kept equal to the host file by
//! [`crate::xlconfig`]; `xl destroy`), crate `pci` moves NICs to and from
//! pciback, and everything else (vifs on running guests, the agents'
//! settings, grants, observation) goes through the host's xenstore like on
//! any host. It never goes through the simulator.
//!
//! Root operations: sysfs writes (pciback) and `xl`. Nothing here runs a
//! shell; `xl` gets its arguments as separate strings.

use std::path::{Path, PathBuf};
use std::time::Duration;

use pci::{AssignOptions, DriverRecord, NetSnapshot, Pciback, StateFile, Sysfs};
use tokio::process::Command;
use xenbus::XenbusState;
use xenstore::AsyncClient;
use xentypes::{Bdf, DomId};

use crate::error::{Error, Result};
use crate::host::{DomainRole, Host, HostKind, ProbeOutcome, ProbeTarget};
use crate::model::Vif;
use crate::observe::{self, nic_unknown, read_text};
use crate::observed::ObservedNic;
use crate::xlconfig;

/// How long `xl create` may take (a driver domain boots its kernel).
pub const XL_CREATE_TIMEOUT: Duration = Duration::from_secs(600);
/// How long `xl destroy` may take.
pub const XL_DESTROY_TIMEOUT: Duration = Duration::from_secs(120);

/// Where a real host's pieces are (each with the real default).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RealHostConfig {
    /// The `xl` program.
    pub xl: PathBuf,
    /// sysfs root.
    pub sysfs_root: PathBuf,
    /// Where original NIC drivers are recorded (besides xenstore, as xl).
    pub state_dir: PathBuf,
}

impl Default for RealHostConfig {
    fn default() -> Self {
        RealHostConfig {
            xl: PathBuf::from("xl"),
            sysfs_root: PathBuf::from("/sys"),
            state_dir: PathBuf::from(pci::DEFAULT_STATE_DIR),
        }
    }
}

/// A real Xen host, seen from dom0.
#[derive(Debug)]
pub struct RealHost {
    xs: AsyncClient,
    cfg: RealHostConfig,
    sysfs: Sysfs,
}

impl RealHost {
    /// Connect to the host's xenstore (`XENSTORED_PATH`, the xenstored
    /// socket, or `/dev/xen/xenbus`).
    pub async fn open(cfg: RealHostConfig) -> Result<RealHost> {
        let xs = AsyncClient::connect_default().await.map_err(Error::xs(
            "connect to the host's xenstore (is this dom0 of a Xen host?)",
        ))?;
        Ok(RealHost::with_client(xs, cfg))
    }

    /// A host on an existing connection.
    pub fn with_client(xs: AsyncClient, cfg: RealHostConfig) -> RealHost {
        let sysfs = Sysfs::new(cfg.sysfs_root.clone());
        RealHost { xs, cfg, sysfs }
    }

    async fn xl(&self, args: &[&str], cwd: Option<&Path>, limit: Duration) -> Result<String> {
        let mut cmd = Command::new(&self.cfg.xl);
        cmd.args(args).kill_on_drop(true);
        if let Some(d) = cwd {
            cmd.current_dir(d);
        }
        let shown = format!("{} {}", self.cfg.xl.display(), args.join(" "));
        let out = tokio::time::timeout(limit, cmd.output())
            .await
            .map_err(|_| {
                Error::Timeout(format!("`{shown}` did not finish in {}s", limit.as_secs()))
            })?
            .map_err(|e| Error::Host(format!("cannot run `{shown}`: {e} (is xl installed?)")))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let last: Vec<&str> = err.lines().rev().take(6).collect();
            let last: Vec<&str> = last.into_iter().rev().collect();
            return Err(Error::Host(format!(
                "`{shown}` failed ({}): {}",
                out.status,
                last.join(" | ")
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn record(&self) -> StateFile {
        StateFile::in_dir(&self.cfg.state_dir)
    }
}

fn pci_err(context: String) -> impl FnOnce(pci::Error) -> Error {
    move |e| Error::Host(format!("{context}: {}", crate::apply::error_chain(&e)))
}

impl Host for RealHost {
    fn kind(&self) -> HostKind {
        HostKind::Real
    }

    fn xenstore(&self) -> &AsyncClient {
        &self.xs
    }

    async fn config_drift(&self, role: DomainRole<'_>) -> Result<Option<String>> {
        let path = xlconfig::config_path(&role)?;
        let doc = xlconfig::read(path)?;
        xlconfig::drift(&role, &doc, path)
    }

    async fn write_config(&self, role: DomainRole<'_>) -> Result<()> {
        let path = xlconfig::config_path(&role)?;
        let mut doc = xlconfig::read(path)?;
        if xlconfig::drift(&role, &doc, path)?.is_none() {
            return Ok(());
        }
        xlconfig::edit(&role, &mut doc)?;
        xlconfig::write_atomic(path, &doc.to_bytes())
    }

    async fn create_domain(&self, role: DomainRole<'_>) -> Result<DomId> {
        let path = xlconfig::config_path(&role)?;
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
        let p = path.display().to_string();
        self.xl(&["create", &p], dir, XL_CREATE_TIMEOUT).await?;
        observe::domid_of(&self.xs, role.name())
            .await?
            .ok_or_else(|| {
                Error::Host(format!(
                    "`xl create {p}` succeeded but no domain {} is in xenstore",
                    role.name()
                ))
            })
    }

    async fn destroy_domain(&self, name: &str, domid: DomId) -> Result<()> {
        // By domid: the name may already have been reused.
        let id = domid.to_string();
        match self.xl(&["destroy", &id], None, XL_DESTROY_TIMEOUT).await {
            Ok(_) => Ok(()),
            Err(e) => {
                if read_text(&self.xs, &format!("{}/name", domid.path()))
                    .await?
                    .as_deref()
                    != Some(name)
                {
                    // Gone anyway (destroyed meanwhile): done.
                    return Ok(());
                }
                Err(e)
            }
        }
    }

    async fn assign_nic(&self, bdf: Bdf, permissive: bool) -> Result<()> {
        let xl_info = self.xl(&["info"], None, Duration::from_secs(30)).await.ok();
        let out = {
            let record = self.record();
            let pb = Pciback::new(&self.sysfs, &record);
            let net = NetSnapshot::capture(Path::new("/proc"));
            let iommu = pci::checks::iommu_status(&self.sysfs, xl_info.as_deref());
            pb.assign(bdf, AssignOptions::new(permissive, false), &net, &iommu)
                .map_err(pci_err(format!("assign {bdf} to pciback")))?
        };
        // Record the original driver where xl looks too, so that
        // `xl pci-assignable-remove -r` and drvdom agree.
        if let Some(prev) = &out.previous_driver {
            let key = pci::xenstore_driver_path_key(bdf);
            if let Err(e) = self.xs.write(&key, pci::driver_path_value(prev)).await {
                tracing::warn!(%bdf, error = %e, "cannot record the original driver in xenstore");
            }
        }
        Ok(())
    }

    async fn release_nic(&self, bdf: Bdf) -> Result<()> {
        let recorded = matches!(self.record().get(bdf), Ok(Some(_)));
        let driver = if recorded {
            None
        } else {
            read_text(&self.xs, &pci::xenstore_driver_path_key(bdf))
                .await?
                .and_then(|v| pci::driver_from_path_value(&v))
        };
        {
            let record = self.record();
            let pb = Pciback::new(&self.sysfs, &record);
            pb.release(bdf, driver.as_deref())
                .map_err(pci_err(format!("release {bdf} from pciback")))?;
        }
        let key = pci::xenstore_driver_path_key(bdf);
        let dir = key.trim_end_matches("/driver_path").to_string();
        let _ = self.xs.rm(&dir).await;
        Ok(())
    }

    async fn nics(&self, bdfs: &[Bdf]) -> Result<Vec<ObservedNic>> {
        let mut out = Vec::with_capacity(bdfs.len());
        for b in bdfs {
            let mut n = nic_unknown(*b);
            match self.sysfs.current_driver(*b) {
                Ok(d) => n.driver = d,
                Err(e) => n.detail = Some(format!("not found in sysfs: {e}")),
            }
            let orig = self.record().get(*b).ok().flatten();
            if let (None, Some(orig)) = (&n.detail, orig) {
                n.detail = Some(format!("original driver {orig}"));
            }
            n.visible_in_domain = Some(pcifront_sees(&self.xs, *b).await?);
            out.push(n);
        }
        Ok(out)
    }

    async fn vif_connected(&self, _guest: &str, _domid: DomId, _vif: &Vif) -> Result<()> {
        // The guest's own OS configures its interface.
        Ok(())
    }

    async fn probe(&self, _from: &str, _to: &ProbeTarget) -> Result<ProbeOutcome> {
        Ok(ProbeOutcome::Unsupported)
    }
}

/// True when some domain's pcifront has connected to the pci backend that
/// holds `bdf` and pciback gave it a guest address (`vdev-<i>`): the
/// device is visible inside that domain (DEVICES.md §7).
async fn pcifront_sees(xs: &AsyncClient, bdf: Bdf) -> Result<bool> {
    for fe in observe::list_domids(xs).await? {
        let bp = xenbus::pci::pci_backend_path(fe);
        let Some(n) = read_text(xs, &bp.key("num_devs"))
            .await?
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        for i in 0..n.min(64) {
            let dev = read_text(xs, &bp.key(&format!("dev-{i}"))).await?;
            if dev.and_then(|d| d.parse::<Bdf>().ok()) != Some(bdf) {
                continue;
            }
            let state = read_text(xs, &bp.state())
                .await?
                .and_then(|s| XenbusState::parse_bytes(s.as_bytes()).ok());
            let vdev = read_text(xs, &bp.key(&format!("vdev-{i}"))).await?;
            return Ok(state == Some(XenbusState::Connected) && vdev.is_some());
        }
    }
    Ok(false)
}
