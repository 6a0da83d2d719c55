//! `drvdom bridge show`: the `brctl show` of a driver domain, with the
//! guest behind each vif and the vif's xenbus state.
//!
//! Run inside the driver domain (its namespace, `XENSTORED_PATH` set), or
//! from anywhere with `--lab NAME --domain DD`.

use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;
use sim::lab;
use sim::link::{self, LinkView};
use sim::netns;
use xenbus::XenbusState;
use xenstore::{AsyncClient, DomId};

use super::usage_error;

/// `drvdom bridge` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum BridgeCmd {
    /// List bridges and their ports, with guest names and vif states.
    Show {
        /// The driver domain (with the global --lab).
        #[arg(long)]
        domain: Option<String>,
        /// This domain's id (default: xenstore `domid`).
        #[arg(long)]
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
    guest: Option<String>,
    domid: Option<u16>,
    devid: Option<u32>,
    backend_state: Option<String>,
    hotplug_status: Option<String>,
}

/// One bridge as shown.
#[derive(Debug, Serialize)]
struct BridgeRow {
    bridge: String,
    up: bool,
    ports: Vec<PortRow>,
}

/// Run `drvdom bridge`; `lab`: the global `--lab`.
pub fn run(cmd: BridgeCmd, lab: Option<&str>) -> anyhow::Result<ExitCode> {
    let lab = lab.map(str::to_string);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    match cmd {
        BridgeCmd::Show {
            domain,
            domid,
            json,
        } => {
            if lab.is_some() != domain.is_some() {
                return Err(usage_error(
                    "--lab and --domain go together (the driver domain of that lab)",
                ));
            }
            rt.block_on(show(lab, domain, domid, json))
        }
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
    lab_name: Option<String>,
    domain: Option<String>,
    domid: Option<u16>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    // Where to look: the lab's namespace and socket, or here.
    let (ns, client, self_id, names) = match (lab_name, domain) {
        (Some(l), Some(d)) => {
            let root = lab::run_root();
            if !lab::exists(&root, &l) {
                return Err(usage_error(format!("no lab {l:?} is running")));
            }
            let st = lab::load(&root, &l)?;
            let rec = st
                .domain(&d)
                .ok_or_else(|| usage_error(format!("no domain {d:?} in lab {l:?}")))?
                .clone();
            let c = AsyncClient::connect(st.socket_of(rec.domid))
                .await
                .with_context(|| format!("connect to xenstore as {d}"))?;
            let names: Vec<(u16, String)> = st
                .domains
                .iter()
                .map(|d| (d.domid, d.name.clone()))
                .collect();
            (Some(rec.netns), c, Some(DomId(rec.domid)), names)
        }
        _ => {
            let c = AsyncClient::connect_default()
                .await
                .context("connect to xenstore (set XENSTORED_PATH)")?;
            (None, c, domid.map(DomId), Vec::new())
        }
    };
    let self_id = match self_id {
        Some(d) => d,
        None => read_text(&client, "domid")
            .await
            .and_then(|s| s.parse().ok())
            .context("cannot tell this domain's id (xenstore `domid`); pass --domid")?,
    };
    let links = match ns.as_deref() {
        Some(ns) => link::list_in(&netns::ns_path(ns)).await?,
        None => link::Netlink::connect()?.list().await?,
    };
    let mut rows = Vec::new();
    for b in link::bridges(&links) {
        let mut ports = Vec::new();
        for p in &b.ports {
            ports.push(port_row(&client, self_id, p, &names).await);
        }
        rows.push(BridgeRow {
            bridge: b.bridge.name.clone(),
            up: b.bridge.up,
            ports,
        });
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<12} {:<16} {:<10} {:<12} hotplug",
        "bridge name", "interfaces", "guest", "state"
    );
    for b in &rows {
        if b.ports.is_empty() {
            println!("{}", b.bridge);
        }
        for (i, p) in b.ports.iter().enumerate() {
            let br = if i == 0 { b.bridge.as_str() } else { "" };
            println!(
                "{br:<12} {:<16} {:<10} {:<12} {}",
                p.port,
                p.guest.as_deref().unwrap_or("-"),
                p.backend_state.as_deref().unwrap_or("-"),
                p.hotplug_status.as_deref().unwrap_or("-"),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn port_row(c: &AsyncClient, me: DomId, p: &LinkView, names: &[(u16, String)]) -> PortRow {
    let Some((fe, devid)) = link::parse_vif_name(&p.name) else {
        return PortRow {
            port: p.name.clone(),
            up: p.up,
            guest: None,
            domid: None,
            devid: None,
            backend_state: None,
            hotplug_status: None,
        };
    };
    // The guest's name: xenstore if readable from here (a driver domain
    // usually may not read /local/domain/<fe>), else what the lab knows.
    let guest = match read_text(c, &format!("{}/name", DomId(fe).path())).await {
        Some(n) => Some(n),
        None => names
            .iter()
            .find(|(d, _)| *d == fe)
            .map(|(_, n)| n.clone())
            .or_else(|| Some(format!("domain {fe}"))),
    };
    let bdir = format!("{}/backend/vif/{fe}/{devid}", me.path());
    let backend_state = read_text(c, &format!("{bdir}/state")).await.map(|s| {
        match XenbusState::parse_bytes(s.as_bytes()) {
            Ok(st) => st.name().to_string(),
            Err(_) => format!("invalid {s:?}"),
        }
    });
    PortRow {
        port: p.name.clone(),
        up: p.up,
        guest,
        domid: Some(fe),
        devid: Some(devid),
        backend_state,
        hotplug_status: read_text(c, &format!("{bdir}/hotplug-status")).await,
    }
}
