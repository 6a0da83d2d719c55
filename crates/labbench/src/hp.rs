//! Step 3: hotplug time per vif, native (crate `hotplug`, what the agent
//! does) against Debian's `/etc/xen/scripts/vif-bridge` run the way `xl
//! devd` runs it, on the same vifs. Runs inside the driver domain's
//! namespace, with the driver domain's own xenstore connection, after the
//! agent has been stopped (so nothing else touches these vifs).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hotplug::{Hotplug, ScriptAction, ScriptRun, VifOnline};
use xenbus::BackendPath;
use xenstore::AsyncClient;

use crate::attach::Attached;
use crate::env::{BRIDGE, DD};

/// `hotplug-status` key.
const HOTPLUG_STATUS: &str = "hotplug-status";

/// Times for the whole set of vifs.
#[derive(Debug, Clone, Copy)]
pub struct HotplugResult {
    /// Vifs measured.
    pub vifs: usize,
    /// Native online of all of them (read settings, netlink, write status).
    pub native: Duration,
    /// Of `native`: the netlink part (`vif_online`).
    pub native_netlink: Duration,
    /// vif-bridge online of all of them.
    pub script: Duration,
}

/// Bring every vif offline (native; not timed) and drop its
/// `hotplug-status`, so that the next online does the full work.
async fn reset(hp: &Hotplug, dd: &AsyncClient, vifs: &[Attached]) -> anyhow::Result<()> {
    for v in vifs {
        let bp = BackendPath::vif(DD, v.fe, v.devid);
        let name = bp.default_vif_name();
        hp.vif_offline(&name)
            .await
            .with_context(|| format!("offline {name}"))?;
        match dd.rm(&bp.key(HOTPLUG_STATUS)).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e).context("remove hotplug-status"),
        }
    }
    Ok(())
}

/// Check every vif is a port of the bridge and has `hotplug-status = connected`.
async fn verify(
    hp: &Hotplug,
    dd: &AsyncClient,
    vifs: &[Attached],
    who: &str,
) -> anyhow::Result<()> {
    let ports = hp.bridge_ports(BRIDGE).await.context("list bridge ports")?;
    for v in vifs {
        let bp = BackendPath::vif(DD, v.fe, v.devid);
        let name = bp.default_vif_name();
        if !ports.iter().any(|p| p.name == name) {
            bail!("after {who}: {name} is not on {BRIDGE}");
        }
        let st = dd.read_opt(&bp.key(HOTPLUG_STATUS)).await?;
        if st.as_deref() != Some(b"connected") {
            bail!(
                "after {who}: {} is {:?}",
                bp.key(HOTPLUG_STATUS),
                st.map(|s| String::from_utf8_lossy(&s).into_owned())
            );
        }
    }
    Ok(())
}

/// Measure on `vifs`. Must run inside the driver domain's namespace
/// (see [`crate::env::in_netns`]); `dd_socket` is its xenstore socket.
pub async fn run(
    dd_socket: PathBuf,
    vifs: Vec<Attached>,
    script: PathBuf,
) -> anyhow::Result<HotplugResult> {
    let hp = Hotplug::connect().context("open rtnetlink in the driver domain")?;
    let dd = AsyncClient::connect(&dd_socket)
        .await
        .with_context(|| format!("connect to {}", dd_socket.display()))?;

    // Native: what the agent does for one vif.
    reset(&hp, &dd, &vifs).await?;
    let t0 = Instant::now();
    let mut netlink = Duration::ZERO;
    for v in &vifs {
        let bp = BackendPath::vif(DD, v.fe, v.devid);
        let s = xenbus::read_vif_settings(&dd, &bp)
            .await
            .with_context(|| format!("read settings of {bp}"))?;
        // What the agent does: the vif's filter (hygiene on by default).
        let mut req = VifOnline::new(s.interface(&bp))
            .bridge(s.bridge.clone().unwrap_or_else(|| BRIDGE.to_string()))
            .l2(s.l2_hygiene);
        if let Some(mac) = s.mac {
            req = req.guest_mac(mac);
        }
        if let Some(ip) = &s.addresses {
            req = req.ip(ip.clone());
        }
        if let Some(mtu) = s.mtu {
            req = req.mtu(mtu);
        }
        let t = Instant::now();
        hp.vif_online(&req)
            .await
            .with_context(|| format!("native online of {}", req.vif))?;
        netlink += t.elapsed();
        dd.write(&bp.key(HOTPLUG_STATUS), "connected")
            .await
            .context("write hotplug-status")?;
    }
    let native = t0.elapsed();
    verify(&hp, &dd, &vifs, "native online").await?;

    // Legacy: Debian's vif-bridge, as xl devd runs it.
    reset(&hp, &dd, &vifs).await?;
    let xs_path = dd_socket.display().to_string();
    let t0 = Instant::now();
    for v in &vifs {
        let bp = BackendPath::vif(DD, v.fe, v.devid);
        let mut run = ScriptRun::vif(
            &script,
            ScriptAction::Online,
            u32::from(v.fe.0),
            v.devid.0,
            bp.default_vif_name(),
        );
        run.extra_env
            .push(("XENSTORED_PATH".to_string(), xs_path.clone()));
        let out = hotplug::run_script(&run)
            .await
            .with_context(|| format!("run {} for {}", script.display(), run.vif))?;
        if !out.success() {
            bail!(
                "{} online {} failed ({}): {}",
                script.display(),
                run.vif,
                out.status,
                out.stderr.trim()
            );
        }
    }
    let script_time = t0.elapsed();
    verify(&hp, &dd, &vifs, "vif-bridge online").await?;
    Ok(HotplugResult {
        vifs: vifs.len(),
        native,
        native_netlink: netlink,
        script: script_time,
    })
}
