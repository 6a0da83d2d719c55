//! `drvdom vif`: attach or detach a guest's vif live, on a running lab
//! (through the lab's dom0 xenstore socket, with `xenbus` doing what
//! `xl network-attach/-detach` does).

use std::process::ExitCode;

use anyhow::Context;
use sim::SimHost;
use sim::lab;
use xenbus::{DetachOptions, DevId, MacAddr, VifConfig, XenbusState};
use xenstore::DomId;

use super::usage_error;

/// `drvdom vif` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum VifCmd {
    /// Attach a new vif to GUEST with its backend in DOMAIN and wait until
    /// both ends are Connected.
    Attach {
        /// Guest (frontend) domain name.
        guest: String,
        /// Backend (driver) domain name.
        #[arg(long)]
        backend: String,
        /// MAC address (default: random, Xen OUI 00:16:3e).
        #[arg(long)]
        mac: Option<String>,
        /// Bridge in the driver domain (default xenbr0).
        #[arg(long)]
        bridge: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Detach vif DEVID of GUEST (Closing, Closed, nodes removed).
    Detach {
        /// Guest (frontend) domain name.
        guest: String,
        /// Device id.
        devid: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the async runtime")
}

/// Run `drvdom vif` on the lab named by the global `--lab` (default `lab`).
pub fn run(cmd: VifCmd, lab: Option<&str>) -> anyhow::Result<ExitCode> {
    let name = lab.unwrap_or("lab").to_string();
    runtime()?.block_on(run_async(cmd, name))
}

async fn open(name: &str) -> anyhow::Result<SimHost> {
    let root = lab::run_root();
    if !lab::exists(&root, name) {
        return Err(usage_error(format!(
            "no lab {name:?} is running (start one with `drvdom lab up --detach --lab {name}`)"
        )));
    }
    Ok(SimHost::open(name, &root).await?)
}

fn domid_of(lab: &SimHost, name: &str) -> anyhow::Result<DomId> {
    let st = lab.state();
    st.domain(name).map(|d| DomId(d.domid)).ok_or_else(|| {
        let known: Vec<&str> = st.domains.iter().map(|d| d.name.as_str()).collect();
        usage_error(format!(
            "no domain {name:?} in the lab (domains: {})",
            known.join(", ")
        ))
    })
}

#[allow(clippy::print_stdout)] // the command's report
async fn run_async(cmd: VifCmd, name: String) -> anyhow::Result<ExitCode> {
    match cmd {
        VifCmd::Attach {
            guest,
            backend,
            mac,
            bridge,
            json,
        } => {
            let lab = open(&name).await?;
            let fe = domid_of(&lab, &guest)?;
            let be = domid_of(&lab, &backend)?;
            let mut cfg = VifConfig::new(be);
            if let Some(m) = &mac {
                let m: MacAddr = m
                    .parse()
                    .map_err(|e| usage_error(format!("--mac {m}: {e}")))?;
                cfg = cfg.mac(m);
            }
            if let Some(b) = &bridge {
                cfg = cfg.bridge(b.clone());
            }
            let dom0 = lab.dom0();
            let (devid, bs, fs) = async {
                let devid = xenbus::attach_vif(dom0, fe, &cfg).await?;
                let bp = xenbus::BackendPath::vif(be, fe, devid);
                let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
                let want = [XenbusState::Connected];
                let b = xenbus::wait_for_state(dom0, &bp.state(), &want, deadline).await?;
                let f =
                    xenbus::wait_for_state(dom0, &bp.frontend().state(), &want, deadline).await?;
                Ok::<_, xenbus::Error>((devid, b, f))
            }
            .await
            .with_context(|| format!("attach a vif of {guest} to {backend}"))?;
            if json {
                let out = serde_json::json!({
                    "guest": guest, "domid": fe.0, "backend": backend, "devid": devid.0,
                    "vif": format!("vif{}.{}", fe.0, devid.0),
                    "backend_state": bs.name(), "frontend_state": fs.name(),
                });
                println!("{out}");
            } else {
                println!(
                    "{guest}: vif {devid} attached as vif{}.{devid} in {backend} (backend {}, frontend {})",
                    fe.0,
                    bs.name(),
                    fs.name()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        VifCmd::Detach { guest, devid, json } => {
            let lab = open(&name).await?;
            let fe = domid_of(&lab, &guest)?;
            let out = xenbus::detach_vif(lab.dom0(), fe, DevId(devid), &DetachOptions::default())
                .await
                .with_context(|| format!("detach vif {devid} of {guest}"))?;
            if json {
                let j = serde_json::json!({
                    "guest": guest, "devid": devid,
                    "reached_closed": out.reached_closed,
                    "removed_by_backend": out.removed_by_backend,
                });
                println!("{j}");
            } else {
                println!(
                    "{guest}: vif {devid} detached (backend reached Closed: {}, cleaned up by the driver domain: {})",
                    out.reached_closed, out.removed_by_backend
                );
            }
            Ok(if out.reached_closed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}
