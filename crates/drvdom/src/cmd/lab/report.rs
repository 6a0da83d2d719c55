//! `lab status`, `lab list`, `lab down` and `lab restart`: reading a lab
//! back, judging its health, and removing it.

use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;
use sim::SimHost;
use sim::lab;

use crate::cmd::host::no_such_lab;
use crate::cmd::output::{self, paint, schema};

/// Open a running lab (unknown names list the running ones).
pub(super) async fn open(name: &str) -> anyhow::Result<SimHost> {
    let root = lab::run_root();
    if !lab::exists(&root, name) {
        return Err(no_such_lab(name));
    }
    SimHost::open(name, &root)
        .await
        .with_context(|| format!("open lab {name}"))
}

/// What is wrong with a lab, one sentence each (empty: healthy).
fn problems(st: &lab::Status) -> Vec<String> {
    let mut v = Vec::new();
    for p in &st.processes {
        if !p.alive {
            v.push(format!(
                "process {} (pid {}) is not running; its log: {}",
                p.process.role,
                p.process.pid,
                p.process.log.display()
            ));
        }
    }
    for d in &st.domains {
        if !d.introduced {
            v.push(format!(
                "domain {} is not introduced to xenstored",
                d.domain.name
            ));
        }
        for vif in &d.vifs {
            let ok = vif.frontend_state.as_deref() == Some("Connected")
                && vif.backend_state.as_deref() == Some("Connected")
                && vif.hotplug_status.as_deref() == Some("connected");
            if !ok {
                v.push(format!(
                    "vif {}/{}: frontend {}, backend {}, hotplug {}",
                    d.domain.name,
                    vif.devid,
                    vif.frontend_state.as_deref().unwrap_or("-"),
                    vif.backend_state.as_deref().unwrap_or("-"),
                    vif.hotplug_status.as_deref().unwrap_or("-"),
                ));
            }
        }
    }
    v
}

/// `lab status`: exit 0 when healthy, 1 when something is wrong (a dead
/// process, a vif not Connected), listed under `problems`.
#[allow(clippy::print_stdout)] // the command's report
pub(super) async fn status(name: String, json: bool) -> anyhow::Result<ExitCode> {
    let host = open(&name).await?;
    let st = lab::status(&host).await?;
    let problems = problems(&st);
    let code = if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(output::exit::FAILED)
    };
    if json {
        #[derive(Serialize)]
        struct Body<'a> {
            healthy: bool,
            problems: &'a [String],
            #[serde(flatten)]
            status: &'a lab::Status,
        }
        output::print_json(
            schema::LAB_STATUS,
            &Body {
                healthy: problems.is_empty(),
                problems: &problems,
                status: &st,
            },
        )?;
        return Ok(code);
    }
    println!(
        "lab {} ({})",
        st.name,
        paint(if problems.is_empty() {
            "healthy"
        } else {
            "unhealthy"
        })
    );
    println!("├─ processes");
    for (i, p) in st.processes.iter().enumerate() {
        let branch = if i + 1 == st.processes.len() {
            "└─"
        } else {
            "├─"
        };
        let life = if p.alive { "running" } else { "DEAD" };
        println!(
            "│  {branch} {:<22} pid {:<8} {}",
            p.process.role,
            p.process.pid,
            paint(life)
        );
    }
    println!("├─ NICs");
    for (i, n) in st.nics.iter().enumerate() {
        let branch = if i + 1 == st.nics.len() {
            "└─"
        } else {
            "├─"
        };
        let place = match &n.place {
            lab::NicPlace::Dom0 => "in dom0".to_string(),
            lab::NicPlace::Pciback => "pciback".to_string(),
            lab::NicPlace::Domain(d) => format!("passed through to {d}"),
        };
        println!("│  {branch} {} {} ({place})", n.bdf, n.ifname);
    }
    for (di, d) in st.domains.iter().enumerate() {
        let last = di + 1 == st.domains.len();
        let (branch, cont) = if last {
            ("└─", "   ")
        } else {
            ("├─", "│  ")
        };
        let intro = if d.introduced {
            ""
        } else {
            " (not introduced)"
        };
        println!(
            "{branch} {} (domid {}, {:?}, netns {}){intro}",
            d.domain.name, d.domain.domid, d.domain.role, d.domain.netns
        );
        let mut items: Vec<String> = Vec::new();
        for v in &d.vifs {
            items.push(format!(
                "vif {} -> backend dom {}: frontend {}, backend {}, hotplug {}, mac {}, bridge {}",
                v.devid,
                v.backend
                    .map(|b| b.to_string())
                    .unwrap_or_else(|| "?".into()),
                v.frontend_state.as_deref().unwrap_or("-"),
                v.backend_state.as_deref().unwrap_or("-"),
                v.hotplug_status.as_deref().unwrap_or("-"),
                v.mac.as_deref().unwrap_or("-"),
                v.bridge.as_deref().unwrap_or("-"),
            ));
        }
        for l in &d.links {
            let master = l
                .master
                .as_deref()
                .map(|m| format!(" master {m}"))
                .unwrap_or_default();
            let kind = l.kind.as_deref().unwrap_or("link");
            let up = if l.up { "up" } else { "down" };
            items.push(format!("link {} ({kind}, {up}){master}", l.name));
        }
        for (i, it) in items.iter().enumerate() {
            let b = if i + 1 == items.len() {
                "└─"
            } else {
                "├─"
            };
            println!("{cont}{b} {it}");
        }
    }
    for p in &problems {
        println!("{}: {p}", paint("FAIL"));
    }
    Ok(code)
}

/// `lab list`: every lab, running or with logs kept.
#[allow(clippy::print_stdout)] // the command's report
pub(super) fn list(json: bool) -> anyhow::Result<ExitCode> {
    let root = lab::run_root();
    let labs = lab::list(&root);
    if json {
        output::print_json(
            schema::LAB_LIST,
            &serde_json::json!({ "run_root": root, "labs": labs }),
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    if labs.is_empty() {
        println!(
            "no labs under {} (start one with `drvdom lab up --detach --lab NAME`)",
            root.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<13} {:<9} {:>7} {:>9}  logs",
        "lab", "state", "domains", "processes"
    );
    for l in &labs {
        let procs = if l.dead > 0 {
            format!("{} ({} dead)", l.processes, l.dead)
        } else {
            l.processes.to_string()
        };
        println!(
            "{:<13} {:<9} {:>7} {:>9}  {}",
            l.name,
            l.state,
            l.domains,
            procs,
            l.logs
                .as_ref()
                .map_or_else(|| "-".to_string(), |p| p.display().to_string())
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `lab down`: a lab that does not exist is an error (listing the known
/// ones) unless `--purge` finds its kept logs to remove.
#[allow(clippy::print_stdout)] // the command's report
pub(super) async fn down(name: String, purge: bool, json: bool) -> anyhow::Result<ExitCode> {
    let root = lab::run_root();
    let known = lab::list(&root);
    let this = known.iter().find(|l| l.name == name);
    let exists = this.is_some_and(lab::LabSummary::exists);
    let purgeable = purge && this.is_some();
    if !(exists || purgeable) {
        return Err(no_such_lab(&name));
    }
    let rep = if purge {
        lab::purge(&root, &name).await
    } else {
        lab::down(&root, &name).await
    }
    .with_context(|| format!("lab {name} down"))?;
    if json {
        output::print_json(
            schema::LAB_DOWN,
            &serde_json::json!({ "lab": name, "purged": purge, "report": rep }),
        )?;
    } else {
        let logs = match &rep.logs {
            Some(p) => format!(
                "; logs kept in {} (`drvdom lab down --purge --lab {name}` removes them)",
                p.display()
            ),
            None if purge => "; logs removed".to_string(),
            None => String::new(),
        };
        println!(
            "lab {name} down: {} process(es) stopped, {} namespace(s) removed{logs}",
            rep.processes.len(),
            rep.namespaces.len(),
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Refuse a lab command as non-root, naming what needs root.
pub(super) fn need_root(what: &str) -> anyhow::Result<()> {
    super::bins::require_root(what)
}
