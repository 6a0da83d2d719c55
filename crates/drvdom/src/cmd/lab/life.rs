//! The lifecycle parts of `drvdom lab`: `lab restart DOMAIN` (a domain
//! dies as Xen kills it and comes back with a new domid) and the
//! simulated dom0's `drvdom reconcile` daemon, started by `lab up`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use sim::SimHost;
use sim::lab;

use super::super::output::{self, schema};
use super::super::usage_error;

/// Start `drvdom reconcile` in the lab's dom0 (this very program, with
/// `--lab`), recorded as the lab's process `reconcile`: `lab down` stops
/// it, `lab restart reconcile` restarts it. `file`: the host file it keeps
/// (else it learns what the toolstack recorded, as on a real host).
pub fn start_reconcile(host: &SimHost, file: Option<&Path>) -> anyhow::Result<u32> {
    let exe = std::env::current_exe().context("find the drvdom program")?;
    let mut args = vec![
        "--lab".to_string(),
        host.name().to_string(),
        "reconcile".to_string(),
    ];
    if let Some(f) = file {
        let abs = std::fs::canonicalize(f).with_context(|| format!("find {}", f.display()))?;
        args.push(abs.display().to_string());
    }
    let env = vec![
        (
            "DRVDOM_LAB_ROOT".to_string(),
            lab::run_root().display().to_string(),
        ),
        (
            "RUST_LOG".to_string(),
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        ),
    ];
    host.start_dom0_service("reconcile", &exe, args, env)
        .context("start drvdom reconcile in the lab's dom0")
}

/// `lab restart TARGET...`: domains (each dies and comes back, or stays
/// down with `stay_down`; several at once, concurrently) or one process of
/// the lab.
#[allow(clippy::print_stdout)] // the command's report
pub async fn restart(
    host: &SimHost,
    targets: &[String],
    stay_down: bool,
    keep_home: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let name = host.name().to_string();
    let st = host.state();
    let domains: Vec<&String> = targets.iter().filter(|t| st.domain(t).is_some()).collect();
    if !domains.is_empty() {
        if domains.len() != targets.len() {
            let unknown: Vec<&String> = targets.iter().filter(|t| st.domain(t).is_none()).collect();
            return Err(usage_error(format!(
                "lab {name} has no domain {unknown:?} (processes restart one at a time)"
            )));
        }
        let results = futures::future::join_all(
            domains
                .iter()
                .map(|d| host.restart_domain(d, stay_down, keep_home)),
        )
        .await;
        let mut out = Vec::new();
        for (d, r) in domains.iter().zip(results) {
            let r = r.with_context(|| format!("restart domain {d} of lab {name}"))?;
            out.push(r);
        }
        if json {
            let list: Vec<serde_json::Value> = out
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "domain": r.name, "old_domid": r.old_domid, "new_domid": r.new_domid,
                        "died_ms": r.died_ms, "ready_ms": r.ready_ms,
                    })
                })
                .collect();
            output::print_json(
                schema::LAB_RESTART,
                &serde_json::json!({ "lab": name, "domains": list }),
            )?;
        } else {
            for r in &out {
                match r.new_domid {
                    Some(d) => println!(
                        "lab {name}: {} died (domid {}) and is back as domain {d}, ready after {} ms",
                        r.name,
                        r.old_domid,
                        r.ready_ms.unwrap_or(r.died_ms).saturating_sub(r.died_ms)
                    ),
                    None => println!(
                        "lab {name}: {} (domid {}) destroyed and left down",
                        r.name, r.old_domid
                    ),
                }
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let [target] = targets else {
        return Err(usage_error(format!(
            "lab {name} has no domains {targets:?}; a process restarts one at a time"
        )));
    };
    if stay_down || keep_home {
        return Err(usage_error(format!(
            "--stay-down and --keep-home are for domains; lab {name} has no domain {target:?}"
        )));
    }
    let (role, pid) = host.restart(target).await.map_err(|e| {
        let known: Vec<String> = host.state().procs.iter().map(|p| p.role.clone()).collect();
        let domains: Vec<String> = host
            .state()
            .domains
            .iter()
            .map(|d| d.name.clone())
            .collect();
        output::cli_error_with(
            output::Code::NotFound,
            format!("restart {target} of lab {name}: {e}"),
            serde_json::json!({ "known": known, "domains": domains }),
        )
    })?;
    if json {
        output::print_json(
            schema::LAB_RESTART,
            &serde_json::json!({ "lab": name, "role": role, "pid": pid }),
        )?;
    } else {
        println!("lab {name}: {role} restarted, pid {pid}");
    }
    Ok(ExitCode::SUCCESS)
}
