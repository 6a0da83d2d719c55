//! vif devices: the libxl layout (DEVICES.md §3–§4; libxl_nic.c
//! `libxl__set_xenstore_nic`, `libxl__device_nic_setdefault`; libxl_device.c
//! `libxl__device_generic_add`, `libxl__initiate_device_generic_remove`,
//! `libxl__device_destroy`).

use std::fmt;
use std::time::Duration;

use futures::FutureExt;
use tokio::time::Instant;
use tracing::{debug, info, warn};
use xenstore::{Access, AsyncClient, DomId, PermList, Transaction, XsErrno};

use crate::error::{Error, Result};
use crate::paths::{
    BackendPath, DevId, DeviceKind, FrontendPath, LibxlPath, backend_guest_dir, domain_path,
    frontend_kind_dir, keys, libxl_kind_dir,
};
use crate::state::XenbusState;
use crate::validate;
use crate::wait::{wait_for_removal, wait_for_state};
use xentypes::MacAddr;

/// Default hotplug script (`<XEN_SCRIPT_DIR>/vif-bridge`, Debian's path).
pub const DEFAULT_VIF_SCRIPT: &str = "/etc/xen/scripts/vif-bridge";
/// Default bridge (libxl_nic.c `libxl__device_nic_setdefault`).
pub const DEFAULT_BRIDGE: &str = "xenbr0";
/// `LIBXL_INIT_TIMEOUT`: wait for the backend to reach InitWait.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// `LIBXL_DESTROY_TIMEOUT`: wait for Closed / for the backend's removal.
pub const DESTROY_TIMEOUT: Duration = Duration::from_secs(10);
/// `LIBXL_HOTPLUG_TIMEOUT`: limit for one hotplug script run.
pub const HOTPLUG_TIMEOUT: Duration = Duration::from_secs(40);
/// `hotplug-status` value meaning success (vif-common.sh `success`).
pub const HOTPLUG_CONNECTED: &str = "connected";
/// `hotplug-status` value meaning failure (xen-hotplug-common.sh `fatal`).
pub const HOTPLUG_ERROR: &str = "error";

/// Longest `ip` list we accept.
const IP_MAX: usize = 1024;

/// The backend `type` of a vif.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VifType {
    /// `vif`: a PV interface.
    #[default]
    Vif,
    /// `vif_ioemu`: HVM, emulated NIC plus PV.
    VifIoemu,
}

impl VifType {
    /// The xenstore value.
    pub fn as_str(self) -> &'static str {
        match self {
            VifType::Vif => "vif",
            VifType::VifIoemu => "vif_ioemu",
        }
    }

    /// Parse the xenstore value.
    pub fn parse_bytes(raw: &[u8]) -> Result<VifType> {
        match raw {
            b"vif" => Ok(VifType::Vif),
            b"vif_ioemu" => Ok(VifType::VifIoemu),
            _ => Err(Error::invalid("type", raw, "expected vif or vif_ioemu")),
        }
    }
}

/// A rate limit: `rate` = `<bytes_per_interval>,<interval_usecs>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VifRate {
    /// Bytes allowed per interval.
    pub bytes_per_interval: u64,
    /// Interval length in microseconds.
    pub interval_usecs: u32,
}

impl fmt::Display for VifRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},{}", self.bytes_per_interval, self.interval_usecs)
    }
}

/// What to attach: the xl.cfg `vif=[...]` settings of one interface.
/// `None` fields get libxl's defaults.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct VifConfig {
    /// Backend (driver) domain (`backend=`), default dom0.
    pub backend: DomId,
    /// Device id; default: next free.
    pub devid: Option<DevId>,
    /// Guest MAC; default: random in the Xen OUI.
    pub mac: Option<MacAddr>,
    /// Bridge; default [`DEFAULT_BRIDGE`].
    pub bridge: Option<String>,
    /// Hotplug script; default [`DEFAULT_VIF_SCRIPT`].
    pub script: Option<String>,
    /// Space-separated IP list.
    pub ip: Option<String>,
    /// Rate limit.
    pub rate: Option<VifRate>,
    /// MTU; default 1500.
    pub mtu: Option<u32>,
    /// Backend interface name.
    pub vifname: Option<String>,
    /// `type`.
    pub vif_type: VifType,
    /// Emulated NIC model (HVM only; kept for the toolstack's own use, libxl
    /// does not write it to xenstore).
    pub model: Option<String>,
    /// Gateway device (vif-route/vif-nat).
    pub gatewaydev: Option<String>,
    /// Frontend `trusted`; default: true when the backend is dom0, false
    /// otherwise (a driver domain is not trusted with the guest's memory:
    /// Linux netfront then copies into bounce buffers instead of granting
    /// its own pages, drivers/net/xen-netfront.c `xennet_trusted`/`bounce`).
    pub trusted: Option<bool>,
    /// drvdom's per-vif layer-2 hygiene switch (backend
    /// `drvdom-l2-hygiene`); `None` writes nothing (the agent's default: on).
    pub l2_hygiene: Option<bool>,
}

impl VifConfig {
    /// Defaults with the given backend domain.
    pub fn new(backend: DomId) -> VifConfig {
        VifConfig {
            backend,
            ..VifConfig::default()
        }
    }

    /// Set the device id.
    pub fn devid(mut self, devid: DevId) -> Self {
        self.devid = Some(devid);
        self
    }

    /// Set the MAC.
    pub fn mac(mut self, mac: MacAddr) -> Self {
        self.mac = Some(mac);
        self
    }

    /// Set the bridge.
    pub fn bridge(mut self, bridge: impl Into<String>) -> Self {
        self.bridge = Some(bridge.into());
        self
    }

    /// Set the hotplug script.
    pub fn script(mut self, script: impl Into<String>) -> Self {
        self.script = Some(script.into());
        self
    }

    /// Set the MTU.
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = Some(mtu);
        self
    }

    /// Set the backend interface name.
    pub fn vifname(mut self, name: impl Into<String>) -> Self {
        self.vifname = Some(name.into());
        self
    }

    /// Set the IP list.
    pub fn ip(mut self, ip: impl Into<String>) -> Self {
        self.ip = Some(ip.into());
        self
    }

    /// Set the rate limit.
    pub fn rate(mut self, rate: VifRate) -> Self {
        self.rate = Some(rate);
        self
    }

    /// Set `trusted`.
    pub fn trusted(mut self, trusted: bool) -> Self {
        self.trusted = Some(trusted);
        self
    }

    /// Set the layer-2 hygiene switch.
    pub fn l2_hygiene(mut self, on: bool) -> Self {
        self.l2_hygiene = Some(on);
        self
    }

    /// The frontend `trusted` value this config writes.
    pub fn trusted_value(&self) -> bool {
        self.trusted.unwrap_or(self.backend == DomId::DOM0)
    }

    /// Set the gateway device.
    pub fn gatewaydev(mut self, dev: impl Into<String>) -> Self {
        self.gatewaydev = Some(dev.into());
        self
    }

    /// Set the type.
    pub fn vif_type(mut self, t: VifType) -> Self {
        self.vif_type = t;
        self
    }

    /// Check every set value the way the agent will check it on the other
    /// side.
    pub fn validate(&self) -> Result<()> {
        if !self.backend.is_valid_domain() {
            return Err(Error::invalid(
                "backend",
                self.backend.to_string().as_bytes(),
                "reserved domain id",
            ));
        }
        if let Some(b) = &self.bridge {
            validate::ifname("bridge", b.as_bytes())?;
        }
        if let Some(v) = &self.vifname {
            validate::ifname("vifname", v.as_bytes())?;
        }
        if let Some(g) = &self.gatewaydev {
            validate::ifname("gatewaydev", g.as_bytes())?;
        }
        if let Some(s) = &self.script {
            validate::script_path(s.as_bytes())?;
        }
        if let Some(m) = self.mtu {
            validate::mtu(m.to_string().as_bytes())?;
        }
        if let Some(ip) = &self.ip {
            validate::printable("ip", ip.as_bytes(), IP_MAX)?;
        }
        if let Some(d) = self.devid {
            if d.0 > DevId::MAX {
                return Err(Error::invalid(
                    "devid",
                    d.to_string().as_bytes(),
                    "out of range",
                ));
            }
        }
        Ok(())
    }

    /// Backend keys (libxl `back` flexarray order), without `frontend`.
    fn backend_entries(
        &self,
        fe: DomId,
        devid: DevId,
        mac: MacAddr,
    ) -> Vec<(&'static str, String)> {
        let mut v = vec![
            (keys::FRONTEND_ID, fe.to_string()),
            (keys::ONLINE, "1".to_string()),
            (keys::STATE, XenbusState::Initialising.to_wire()),
            (
                keys::SCRIPT,
                self.script
                    .clone()
                    .unwrap_or_else(|| DEFAULT_VIF_SCRIPT.to_string()),
            ),
        ];
        if let Some(n) = &self.vifname {
            v.push((keys::VIFNAME, n.clone()));
        }
        v.push((keys::MAC, mac.to_string()));
        if let Some(ip) = &self.ip {
            v.push((keys::IP, ip.clone()));
        }
        if let Some(g) = &self.gatewaydev {
            v.push((keys::GATEWAYDEV, g.clone()));
        }
        if let Some(r) = self.rate {
            // libxl_nic.c: "%"PRIu64",%"PRIu32 (bytes per interval, interval
            // in µs), which netback parses in xen_net_read_rate().
            v.push((keys::RATE, r.to_string()));
        }
        if let Some(on) = self.l2_hygiene {
            v.push((keys::L2_HYGIENE, if on { "1" } else { "0" }.to_string()));
        }
        v.push((
            keys::MTU,
            self.mtu.unwrap_or(validate::DEFAULT_MTU).to_string(),
        ));
        v.push((
            keys::BRIDGE,
            self.bridge
                .clone()
                .unwrap_or_else(|| DEFAULT_BRIDGE.to_string()),
        ));
        v.push((keys::HANDLE, devid.to_string()));
        v.push((keys::TYPE, self.vif_type.as_str().to_string()));
        // Written empty so that netback waits for the hotplug script
        // (libxl commit "force netback to wait for hotplug execution").
        v.push((keys::HOTPLUG_STATUS, String::new()));
        v
    }

    /// Frontend keys owned by the guest (libxl `front`), without `backend`.
    fn frontend_entries(&self, devid: DevId, mac: MacAddr) -> Vec<(&'static str, String)> {
        vec![
            (keys::BACKEND_ID, self.backend.to_string()),
            (keys::STATE, XenbusState::Initialising.to_wire()),
            (keys::HANDLE, devid.to_string()),
            (keys::MAC, mac.to_string()),
            (
                keys::TRUSTED,
                if self.trusted_value() { "1" } else { "0" }.to_string(),
            ),
        ]
    }
}

/// Frontend perms: guest owns, backend may read (`n<FE> r<BE>`).
pub fn frontend_perms(fe: DomId, be: DomId) -> PermList {
    PermList::owned_by(fe, Access::None).with(Access::Read, be)
}

/// Backend perms, also for read-only frontend keys: `n<BE> r<FE>`.
pub fn backend_perms(fe: DomId, be: DomId) -> PermList {
    PermList::owned_by(be, Access::None).with(Access::Read, fe)
}

fn ignore_enoent(r: xenstore::Result<()>) -> xenstore::Result<()> {
    match r {
        Err(e) if e.errno() == Some(XsErrno::Enoent) => Ok(()),
        other => other,
    }
}

/// Device ids in a directory, ignoring entries that are not devids.
async fn devids_in(tx: &Transaction, dir: &str) -> xenstore::Result<Vec<DevId>> {
    match tx.directory(dir).await {
        Ok(names) => Ok(names.iter().filter_map(|n| n.parse().ok()).collect()),
        Err(e) if e.errno() == Some(XsErrno::Enoent) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Write a vif in one transaction (retried on `EAGAIN`): frontend, backend
/// and `/libxl` copy, removing stale nodes first, with libxl's permissions.
/// Returns the device id used.
pub async fn attach_vif(client: &AsyncClient, fe: DomId, cfg: &VifConfig) -> Result<DevId> {
    cfg.validate()?;
    let be = cfg.backend;
    // Chosen once, so that a retried transaction writes the same MAC.
    let mac = cfg.mac.unwrap_or_else(MacAddr::random_xen);
    let cfg_owned = cfg.clone();
    let outcome = client
        .transaction(move |tx| {
            let cfg = cfg_owned.clone();
            async move { attach_in_tx(tx, fe, &cfg, mac).await }.boxed()
        })
        .await
        .map_err(Error::xs(format!(
            "attach vif of domain {fe} (backend {be})"
        )))?;
    let devid = outcome?;
    info!(fe = fe.0, be = be.0, devid = devid.0, %mac, "vif attached");
    Ok(devid)
}

/// The body of [`attach_vif`]: checks first (a refusal commits nothing),
/// then the writes.
async fn attach_in_tx(
    tx: &Transaction,
    fe: DomId,
    cfg: &VifConfig,
    mac: MacAddr,
) -> xenstore::Result<Result<DevId>> {
    let be = cfg.backend;
    for d in [fe, be] {
        // dom0 always exists, even before its nodes are written.
        if d != DomId::DOM0 && !tx.exists(&domain_path(d)).await? {
            return Ok(Err(Error::NoSuchDomain(d)));
        }
    }
    let devid = match cfg.devid {
        Some(d) => d,
        None => {
            // libxl__device_nextid: one more than the highest in use.
            let mut used = devids_in(tx, &libxl_kind_dir(fe, DeviceKind::Vif)).await?;
            used.extend(devids_in(tx, &frontend_kind_dir(fe, DeviceKind::Vif)).await?);
            match used.iter().max() {
                None => DevId(0),
                Some(m) if m.0 < DevId::MAX => DevId(m.0 + 1),
                Some(_) => {
                    return Ok(Err(Error::NoFreeDevid {
                        kind: "vif",
                        domid: fe,
                    }));
                }
            }
        }
    };
    let fpath = FrontendPath::vif(fe, devid);
    let bpath = BackendPath::vif(be, fe, devid);
    let lpath = LibxlPath::new(fe, DeviceKind::Vif, devid);
    let (fdir, bdir, ldir) = (fpath.path(), bpath.path(), lpath.path());
    let fperms = frontend_perms(fe, be);
    let bperms = backend_perms(fe, be);
    let bents = cfg.backend_entries(fe, devid, mac);

    // The very same device already there (another toolstack writer, e.g.
    // `apply` and the reconcile daemon re-creating a vif at once): keep
    // it. Replacing it in one step would remove and re-create the
    // frontend directory between two of the guest's xenwatch events, and
    // a Linux guest would keep its old device bound to nothing.
    if cfg.devid.is_some() && same_device(tx, &fpath, &bpath, &lpath, &bents).await? {
        return Ok(Ok(devid));
    }

    // Frontend: guest-owned dir and keys; `mtu` read-only for the guest.
    ignore_enoent(tx.rm(&fdir).await)?;
    tx.mkdir(&fdir).await?;
    tx.set_perms(&fdir, &fperms).await?;
    tx.write(&fpath.key(keys::BACKEND), &bdir).await?;
    for (k, v) in cfg.frontend_entries(devid, mac) {
        let p = fpath.key(k);
        tx.write(&p, v).await?;
        tx.set_perms(&p, &fperms).await?;
    }
    let mtu_key = fpath.key(keys::MTU);
    tx.write(
        &mtu_key,
        cfg.mtu.unwrap_or(validate::DEFAULT_MTU).to_string(),
    )
    .await?;
    tx.set_perms(&mtu_key, &bperms).await?;

    // Backend: owned by the driver domain, keys inherit.
    ignore_enoent(tx.rm(&bdir).await)?;
    tx.mkdir(&bdir).await?;
    tx.set_perms(&bdir, &bperms).await?;
    tx.write(&bpath.key(keys::FRONTEND), &fdir).await?;
    for (k, v) in &bents {
        tx.write(&bpath.key(k), v).await?;
    }

    // The toolstack's copy (inherits n0 from /libxl/<fe>/device).
    ignore_enoent(tx.rm(&ldir).await)?;
    tx.write(&lpath.key(keys::FRONTEND), &fdir).await?;
    tx.write(&lpath.key(keys::BACKEND), &bdir).await?;
    for (k, v) in &bents {
        tx.write(&lpath.key(k), v).await?;
    }
    Ok(Ok(devid))
}

/// Is the vif at these paths the device `bents` describes, live (not
/// closing)? Decided from the toolstack's own record (`/libxl`, dom0-only:
/// neither the guest nor the driver domain can forge it) plus the two
/// directories pointing at each other.
async fn same_device(
    tx: &Transaction,
    fpath: &FrontendPath,
    bpath: &BackendPath,
    lpath: &LibxlPath,
    bents: &[(&'static str, String)],
) -> xenstore::Result<bool> {
    let text = |raw: Option<Vec<u8>>| raw.map(|b| String::from_utf8_lossy(&b).into_owned());
    let (fdir, bdir) = (fpath.path(), bpath.path());
    if text(tx.read_opt(&lpath.key(keys::BACKEND)).await?).as_deref() != Some(bdir.as_str())
        || text(tx.read_opt(&lpath.key(keys::FRONTEND)).await?).as_deref() != Some(fdir.as_str())
        || text(tx.read_opt(&fpath.key(keys::BACKEND)).await?).as_deref() != Some(bdir.as_str())
        || text(tx.read_opt(&bpath.key(keys::FRONTEND)).await?).as_deref() != Some(fdir.as_str())
    {
        return Ok(false);
    }
    for (k, v) in bents {
        if *k == keys::STATE {
            continue;
        }
        if text(tx.read_opt(&lpath.key(k)).await?).as_deref() != Some(v.as_str()) {
            return Ok(false);
        }
    }
    let state = text(tx.read_opt(&bpath.key(keys::STATE)).await?);
    let closing = state.as_deref().is_none_or(|s| {
        XenbusState::parse_bytes(s.as_bytes()).map_or(true, |s| {
            matches!(s, XenbusState::Closing | XenbusState::Closed)
        })
    });
    Ok(!closing)
}

/// How [`detach_vif`] waits.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DetachOptions {
    /// Limit for the backend to reach Closed ([`DESTROY_TIMEOUT`]).
    pub closed_timeout: Duration,
    /// For a backend in a driver domain: how long to wait for that domain
    /// to run hotplug `offline` and remove its backend directory (libxl
    /// `device_destroy_be_watch_cb`). `None`: don't wait.
    pub backend_removal_timeout: Option<Duration>,
    /// Remove the nodes even if a wait timed out (libxl does, after logging).
    pub force: bool,
}

impl Default for DetachOptions {
    fn default() -> Self {
        DetachOptions {
            closed_timeout: DESTROY_TIMEOUT,
            backend_removal_timeout: Some(DESTROY_TIMEOUT),
            force: true,
        }
    }
}

/// What [`detach_vif`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DetachOutcome {
    /// The backend directory that was used.
    pub backend: BackendPath,
    /// The backend reached Closed (or was removed) in time.
    pub reached_closed: bool,
    /// The backend domain removed its directory itself in time.
    pub removed_by_backend: bool,
}

/// Find the backend of a device of `fe`: from the `/libxl` copy (trusted),
/// else from the guest's frontend `backend` key, accepted only if it names
/// the backend of this very device.
pub async fn find_backend(
    client: &AsyncClient,
    fe: DomId,
    kind: DeviceKind,
    devid: DevId,
) -> Result<Option<BackendPath>> {
    let candidates = [
        LibxlPath::new(fe, kind, devid).key(keys::BACKEND),
        FrontendPath::new(fe, kind, devid).key(keys::BACKEND),
    ];
    for key in candidates {
        let raw = client
            .read_opt(&key)
            .await
            .map_err(Error::xs(format!("read {key}")))?;
        let Some(raw) = raw else { continue };
        let Ok(text) = std::str::from_utf8(&raw) else {
            continue;
        };
        match BackendPath::parse(text) {
            Some((bp, "")) if bp.fe == fe && bp.kind == kind && bp.devid == devid => {
                return Ok(Some(bp));
            }
            _ => debug!(key, "ignoring invalid backend path"),
        }
    }
    Ok(None)
}

/// Remove a vif: `online` = 0 and `state` = Closing in one transaction, wait
/// (watch-driven) for Closed, for a driver-domain backend wait for that
/// domain to remove its directory, then remove frontend, backend and
/// `/libxl` copy.
pub async fn detach_vif(
    client: &AsyncClient,
    fe: DomId,
    devid: DevId,
    opts: &DetachOptions,
) -> Result<DetachOutcome> {
    let bp = find_backend(client, fe, DeviceKind::Vif, devid)
        .await?
        .ok_or_else(|| Error::NoSuchDevice {
            path: FrontendPath::vif(fe, devid).path(),
        })?;
    let start = Instant::now();
    let present = client
        .transaction(move |tx| {
            async move {
                let Some(raw) = tx.read_opt(&bp.state()).await? else {
                    return Ok(false);
                };
                tx.write(&bp.key(keys::ONLINE), "0").await?;
                if XenbusState::parse_bytes(&raw).ok() != Some(XenbusState::Closed) {
                    tx.write(&bp.state(), XenbusState::Closing.to_wire())
                        .await?;
                }
                Ok(true)
            }
            .boxed()
        })
        .await
        .map_err(Error::xs(format!("start removal of {bp}")))?;

    let mut reached_closed = !present;
    let mut removed_by_backend = !present;
    if present {
        match wait_for_state(
            client,
            &bp.state(),
            &[XenbusState::Closed],
            start + opts.closed_timeout,
        )
        .await
        {
            Ok(_) => reached_closed = true,
            Err(Error::DeviceGone { .. }) => {
                reached_closed = true;
                removed_by_backend = true;
            }
            Err(e @ Error::StateTimeout { .. }) if opts.force => {
                warn!(error = %e, "backend did not close; removing anyway");
            }
            Err(e) => return Err(e),
        }
    }
    if !removed_by_backend && bp.be != DomId::DOM0 {
        if let Some(t) = opts.backend_removal_timeout {
            match wait_for_removal(client, &bp.path(), Instant::now() + t).await {
                Ok(()) => removed_by_backend = true,
                Err(e @ Error::RemovalTimeout { .. }) if opts.force => {
                    warn!(error = %e, "driver domain did not remove its backend; removing it");
                }
                Err(e) => return Err(e),
            }
        }
    }
    remove_device_nodes(client, bp).await?;
    info!(
        fe = fe.0,
        be = bp.be.0,
        devid = devid.0,
        reached_closed,
        "vif detached"
    );
    Ok(DetachOutcome {
        backend: bp,
        reached_closed,
        removed_by_backend,
    })
}

/// Remove frontend, backend and `/libxl` directories of a device in one
/// transaction (missing ones are fine), then the backend's per-guest
/// directory if it became empty (libxl `libxl__xs_path_cleanup`).
pub async fn remove_device_nodes(client: &AsyncClient, bp: BackendPath) -> Result<()> {
    client
        .transaction(move |tx| {
            async move {
                for p in [bp.frontend().path(), bp.path(), bp.libxl().path()] {
                    ignore_enoent(tx.rm(&p).await)?;
                }
                let guest_dir = backend_guest_dir(bp.be, bp.kind, bp.fe);
                if let Ok(children) = tx.directory(&guest_dir).await {
                    if children.is_empty() {
                        ignore_enoent(tx.rm(&guest_dir).await)?;
                    }
                }
                Ok(())
            }
            .boxed()
        })
        .await
        .map_err(Error::xs(format!("remove {bp}")))
}

/// One vif of a guest, as [`list_vifs`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VifInfo {
    /// Device id.
    pub devid: DevId,
    /// Frontend directory.
    pub frontend: FrontendPath,
    /// Backend directory, if known.
    pub backend: Option<BackendPath>,
    /// Frontend state (`None`: absent or invalid).
    pub frontend_state: Option<XenbusState>,
    /// Backend state (`None`: absent or invalid).
    pub backend_state: Option<XenbusState>,
    /// MAC (from the `/libxl` copy, else the backend).
    pub mac: Option<MacAddr>,
    /// Bridge (from the `/libxl` copy, else the backend).
    pub bridge: Option<String>,
    /// Backend `hotplug-status`.
    pub hotplug_status: Option<String>,
    /// Backend `online` is "1".
    pub online: bool,
}

/// List the vifs of domain `fe` (devids from the `/libxl` copy and the
/// frontend directory), in devid order.
pub async fn list_vifs(client: &AsyncClient, fe: DomId) -> Result<Vec<VifInfo>> {
    let mut devids = Vec::new();
    for dir in [
        libxl_kind_dir(fe, DeviceKind::Vif),
        frontend_kind_dir(fe, DeviceKind::Vif),
    ] {
        match client.directory(&dir).await {
            Ok(names) => devids.extend(names.iter().filter_map(|n| n.parse::<DevId>().ok())),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(Error::xs(format!("list {dir}"))(e)),
        }
    }
    devids.sort();
    devids.dedup();
    let mut out = Vec::with_capacity(devids.len());
    for devid in devids {
        out.push(vif_info(client, fe, devid).await?);
    }
    Ok(out)
}

async fn read_opt(client: &AsyncClient, path: &str) -> Result<Option<Vec<u8>>> {
    client
        .read_opt(path)
        .await
        .map_err(Error::xs(format!("read {path}")))
}

async fn vif_info(client: &AsyncClient, fe: DomId, devid: DevId) -> Result<VifInfo> {
    let frontend = FrontendPath::vif(fe, devid);
    let backend = find_backend(client, fe, DeviceKind::Vif, devid).await?;
    let libxl = LibxlPath::new(fe, DeviceKind::Vif, devid);
    let parse_state = |raw: Option<Vec<u8>>| raw.and_then(|r| XenbusState::parse_bytes(&r).ok());
    let frontend_state = parse_state(read_opt(client, &frontend.state()).await?);
    let mut info = VifInfo {
        devid,
        frontend,
        backend,
        frontend_state,
        backend_state: None,
        mac: None,
        bridge: None,
        hotplug_status: None,
        online: false,
    };
    let lmac = read_opt(client, &libxl.key(keys::MAC)).await?;
    let lbridge = read_opt(client, &libxl.key(keys::BRIDGE)).await?;
    info.mac = lmac.and_then(|r| MacAddr::parse_bytes(&r).ok());
    info.bridge = lbridge.and_then(|r| validate::ifname("bridge", &r).ok());
    if let Some(bp) = backend {
        info.backend_state = parse_state(read_opt(client, &bp.state()).await?);
        info.hotplug_status = read_opt(client, &bp.key(keys::HOTPLUG_STATUS))
            .await?
            .map(|r| String::from_utf8_lossy(&r).into_owned());
        info.online = read_opt(client, &bp.key(keys::ONLINE)).await?.as_deref() == Some(b"1");
        if info.mac.is_none() {
            info.mac = read_opt(client, &bp.key(keys::MAC))
                .await?
                .and_then(|r| MacAddr::parse_bytes(&r).ok());
        }
        if info.bridge.is_none() {
            info.bridge = read_opt(client, &bp.key(keys::BRIDGE))
                .await?
                .and_then(|r| validate::ifname("bridge", &r).ok());
        }
    }
    Ok(info)
}
