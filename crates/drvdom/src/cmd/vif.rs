//! `drvdom vif`: attach or detach a guest's vif live, on a running lab
//! (through the lab's dom0 xenstore socket, with `xenbus` doing what
//! `xl network-attach/-detach` does).

use std::process::ExitCode;

use anyhow::Context;
use sim::lab;
use xenbus::DevId;
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
        /// Lab name.
        #[arg(long, default_value = "lab")]
        lab: String,
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
        /// Lab name.
        #[arg(long, default_value = "lab")]
        lab: String,
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

/// Run `drvdom vif`.
pub fn run(cmd: VifCmd) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(run_async(cmd))
}

async fn open(name: &str) -> anyhow::Result<lab::Lab> {
    let root = lab::run_root();
    if !lab::exists(&root, name) {
        return Err(usage_error(format!(
            "no lab {name:?} is running (start one with `drvdom lab up --detach --name {name}`)"
        )));
    }
    Ok(lab::open(&root, name).await?)
}

fn domid_of(lab: &lab::Lab, name: &str) -> anyhow::Result<DomId> {
    lab.state
        .domain(name)
        .map(|d| DomId(d.domid))
        .ok_or_else(|| {
            let known: Vec<&str> = lab.state.domains.iter().map(|d| d.name.as_str()).collect();
            usage_error(format!(
                "no domain {name:?} in the lab (domains: {})",
                known.join(", ")
            ))
        })
}

#[allow(clippy::print_stdout)] // the command's report
async fn run_async(cmd: VifCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        VifCmd::Attach {
            guest,
            backend,
            mac,
            bridge,
            lab: name,
            json,
        } => {
            let lab = open(&name).await?;
            let fe = domid_of(&lab, &guest)?;
            let be = domid_of(&lab, &backend)?;
            let (devid, bs, fs) =
                lab::attach_guest_vif(&lab.dom0, fe, be, mac.as_deref(), bridge.as_deref())
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
        VifCmd::Detach {
            guest,
            devid,
            lab: name,
            json,
        } => {
            let lab = open(&name).await?;
            let fe = domid_of(&lab, &guest)?;
            let out = lab::detach_guest_vif(&lab.dom0, fe, DevId(devid))
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
