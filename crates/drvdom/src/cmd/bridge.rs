//! `drvdom bridge show`: the `brctl show` of a driver domain — its
//! bridges, uplinks and ports with the guest behind each vif and the vif's
//! xenbus state and the vif's packet filter with its drop counters — from
//! what its agent publishes in xenstore
//! (`xenbus::agent`). Works from dom0 (`--domain DD`, real host or `--lab`)
//! and inside the driver domain itself (its own publication).

use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;
use topology::Host;
use topology::observe::{domid_of, list_domids};
use xenbus::{BackendPath, XenbusState};
use xenstore::{AsyncClient, DomId};

use super::host;
use super::output::{self, not_found, paint, schema};

/// `drvdom bridge` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum BridgeCmd {
    /// List bridges and their ports, with guest names and vif states;
    /// exit 1 when a vif port is not Connected with hotplug connected.
    Show {
        /// The driver domain (from dom0); default: every driver domain, or
        /// this domain when run inside one.
        #[arg(long)]
        domain: Option<String>,
        /// This domain's id, inside a driver domain (default: xenstore `domid`).
        #[arg(long, conflicts_with = "domain")]
        domid: Option<u16>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// One port as shown.
#[derive(Debug, Serialize)]
struct PortRow {
    port: String,
    up: bool,
    forwarding: bool,
    guest: Option<String>,
    domid: Option<u16>,
    devid: Option<u32>,
    backend_state: Option<String>,
    hotplug_status: Option<String>,
    /// The vif's packet filter (`l2+ip`, `l2`, `ip`, `off`), as published.
    filter: Option<String>,
    /// Frames its filter dropped, per reason, as last published.
    drops: Option<xenbus::agent::PortDrops>,
}

/// One bridge as shown.
#[derive(Debug, Serialize)]
struct BridgeRow {
    domain: String,
    bridge: String,
    uplink: Option<String>,
    mtu: Option<u32>,
    ports: Vec<PortRow>,
}

/// Run `drvdom bridge`.
pub fn run(cmd: BridgeCmd, lab: Option<String>) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    match cmd {
        BridgeCmd::Show {
            domain,
            domid,
            json,
        } => rt.block_on(show(lab, domain, domid, json)),
    }
}

async fn read_text(c: &AsyncClient, path: &str) -> Option<String> {
    c.read_opt(path)
        .await
        .ok()
        .flatten()
        .map(|v| String::from_utf8_lossy(&v).trim().to_string())
}

#[allow(clippy::print_stdout)] // the command's report
async fn show(
    lab: Option<String>,
    domain: Option<String>,
    domid: Option<u16>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    // Inside a driver domain (its own socket; its `domid` is not 0): its
    // own publication. From dom0 (real host or --lab): the named driver
    // domain, or every domain whose agent publishes.
    let inside = match (&lab, &domain, domid) {
        (None, None, Some(id)) => Some(DomId(id)),
        (None, None, None) => match AsyncClient::connect_default().await {
            Ok(c) => read_text(&c, "domid")
                .await
                .and_then(|s| s.parse::<u16>().ok())
                .filter(|id| *id != 0)
                .map(DomId),
            Err(_) => None,
        },
        _ => None,
    };
    let (client, targets): (AsyncClient, Vec<(DomId, String)>) = if let Some(id) = inside {
        let c = AsyncClient::connect_default()
            .await
            .context("connect to xenstore (set XENSTORED_PATH)")?;
        (c, vec![(id, "this domain".to_string())])
    } else {
        let h = host::open(lab.as_deref()).await?;
        let xs = h.xenstore().clone();
        match &domain {
            Some(d) => {
                let Some(id) = domid_of(&xs, d).await? else {
                    let known: Vec<String> = super::vif::driver_domains(&h)
                        .await?
                        .into_iter()
                        .map(|(_, n)| n)
                        .collect();
                    return Err(not_found(
                        &format!("driver domain on {}", h.describe()),
                        d,
                        &known,
                        "",
                    ));
                };
                (xs, vec![(id, d.clone())])
            }
            None => {
                let mut v = Vec::new();
                for id in list_domids(&xs).await? {
                    if xs
                        .exists(&xenbus::agent::agent_dir(id))
                        .await
                        .unwrap_or(false)
                    {
                        let name = read_text(&xs, &format!("{}/name", id.path()))
                            .await
                            .unwrap_or_else(|| format!("domain {id}"));
                        v.push((id, name));
                    }
                }
                (xs, v)
            }
        }
    };
    let mut rows = Vec::new();
    for (id, name) in &targets {
        let p = xenbus::agent::read_published(&client, *id)
            .await
            .with_context(|| format!("read what {name}'s agent publishes"))?;
        for b in p.bridges {
            let mut ports = Vec::new();
            for r in &b.ports {
                ports.push(port_row(&client, *id, r).await);
            }
            rows.push(BridgeRow {
                domain: name.clone(),
                bridge: b.name,
                uplink: b.uplink,
                mtu: b.mtu,
                ports,
            });
        }
    }
    let problems: Vec<String> = rows
        .iter()
        .flat_map(|b| {
            b.ports.iter().filter_map(move |p| {
                p.devid?;
                let ok = p.backend_state.as_deref() == Some("Connected")
                    && p.hotplug_status.as_deref() == Some("connected");
                (!ok).then(|| {
                    format!(
                        "{} port {} ({}): backend {}, hotplug {}",
                        b.bridge,
                        p.port,
                        p.guest.as_deref().unwrap_or("-"),
                        p.backend_state.as_deref().unwrap_or("-"),
                        p.hotplug_status.as_deref().unwrap_or("-")
                    )
                })
            })
        })
        .collect();
    let code = if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(output::exit::FAILED)
    };
    if json {
        output::print_json(
            schema::BRIDGE_SHOW,
            &serde_json::json!({
                "bridges": rows,
                "healthy": problems.is_empty(),
                "problems": problems,
            }),
        )?;
        return Ok(code);
    }
    println!(
        "{:<10} {:<12} {:<16} {:<10} {:<12} {:<10} filter",
        "domain", "bridge name", "interfaces", "guest", "state", "hotplug"
    );
    for b in &rows {
        if b.ports.is_empty() {
            println!("{:<10} {}", b.domain, b.bridge);
        }
        for (i, p) in b.ports.iter().enumerate() {
            let (dn, br) = if i == 0 {
                (b.domain.as_str(), b.bridge.as_str())
            } else {
                ("", "")
            };
            let guest = match (&p.guest, b.uplink.as_deref() == Some(p.port.as_str())) {
                (Some(g), _) => g.clone(),
                (None, true) => "(uplink)".to_string(),
                (None, false) => "-".to_string(),
            };
            let filter = topology::show::filter_text(p.filter.as_deref(), p.drops.as_ref());
            println!(
                "{dn:<10} {br:<12} {:<16} {:<10} {:<12} {:<10} {}",
                p.port,
                guest,
                p.backend_state.as_deref().unwrap_or("-"),
                p.hotplug_status.as_deref().unwrap_or("-"),
                filter.strip_prefix(" filter ").unwrap_or("-"),
            );
        }
    }
    for p in &problems {
        println!("{}: {p}", paint("FAIL"));
    }
    Ok(code)
}

async fn port_row(c: &AsyncClient, me: DomId, p: &xenbus::agent::PortRecord) -> PortRow {
    let Some((fe, devid)) = p.vif_ids() else {
        return PortRow {
            port: p.name.clone(),
            up: p.up,
            forwarding: p.fwd,
            guest: None,
            domid: None,
            devid: None,
            backend_state: None,
            hotplug_status: None,
            filter: p.filter.clone(),
            drops: p.drops,
        };
    };
    // The guest's name: readable once `apply` granted it (GrantNameRead);
    // dom0 reads everything.
    let guest = read_text(c, &format!("{}/name", fe.path()))
        .await
        .or_else(|| Some(format!("domain {fe}")));
    let bp = BackendPath::vif(me, fe, devid);
    let backend_state =
        read_text(c, &bp.state())
            .await
            .map(|s| match XenbusState::parse_bytes(s.as_bytes()) {
                Ok(st) => st.name().to_string(),
                Err(_) => format!("invalid {s:?}"),
            });
    PortRow {
        port: p.name.clone(),
        up: p.up,
        forwarding: p.fwd,
        guest,
        domid: Some(fe.0),
        devid: Some(devid.0),
        backend_state,
        hotplug_status: read_text(c, &bp.key("hotplug-status")).await,
        filter: p.filter.clone(),
        drops: p.drops,
    }
}
