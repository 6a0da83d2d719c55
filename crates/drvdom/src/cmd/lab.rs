//! `drvdom lab`: the simulated Xen host (crate `sim`).
//!
//! `up` builds it and checks every step, `status` shows it as a tree,
//! `down` removes it. The hidden `_netback` / `_netfront` subcommands are
//! the simulated kernels that `up` starts inside the domains' namespaces.

use std::process::ExitCode;

use anyhow::Context;
use sim::lab::{self, Bins, LabConfig, Step};
use xenstore::{AsyncClient, DomId};

use super::usage_error;

/// Default lab name.
const DEFAULT_LAB: &str = "lab";

/// `drvdom lab` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum LabCmd {
    /// Build the simulated host (xenstored, dom0, a driver domain with its
    /// NIC, the agent, guests) and check every step with real packets.
    Up {
        /// Number of guests.
        #[arg(long, default_value_t = 2)]
        guests: u16,
        /// Name of the driver domain.
        #[arg(long, default_value = "netdd")]
        driver_domain: String,
        /// Lab name (namespaces are `drvdom-<name>-*`).
        #[arg(long, default_value = DEFAULT_LAB)]
        name: String,
        /// Leave the lab running and return.
        #[arg(long, conflicts_with = "once")]
        detach: bool,
        /// Tear the lab down right after the checks.
        #[arg(long)]
        once: bool,
        /// Print the steps as JSON.
        #[arg(long)]
        json: bool,
        /// Agent policy for hotplug scripts: `non-default` (native hotplug
        /// unless a vif names another script), `always` (run the backend's
        /// script, e.g. Debian's /etc/xen/scripts/vif-bridge), `never`.
        #[arg(long, value_name = "WHEN")]
        legacy_scripts: Option<String>,
    },
    /// Show domains, devices and states of a running lab as a tree.
    Status {
        /// Lab name.
        #[arg(long, default_value = DEFAULT_LAB)]
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove every namespace, link and process of a lab (idempotent).
    Down {
        /// Lab name.
        #[arg(long, default_value = DEFAULT_LAB)]
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Restart one process of a running lab (agent, netback,
    /// `netfront-<guest>`, ...) as `up` started it; the old one is stopped
    /// first if it still runs.
    Restart {
        /// The process role, as `lab status` lists it.
        role: String,
        /// Lab name.
        #[arg(long, default_value = DEFAULT_LAB)]
        name: String,
    },
    /// (internal) The simulated netback of a driver domain.
    #[command(name = "_netback", hide = true)]
    Netback {
        /// This driver domain's id.
        #[arg(long)]
        domid: u16,
        /// Directory mapping domids to namespace names.
        #[arg(long)]
        netns_map: std::path::PathBuf,
    },
    /// (internal) The simulated netfront of a guest.
    #[command(name = "_netfront", hide = true)]
    Netfront {
        /// This guest's id.
        #[arg(long)]
        domid: u16,
    },
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("start the async runtime")
}

/// The binaries a lab runs, found next to this executable or via env.
pub fn bins() -> anyhow::Result<Bins> {
    let drvdom = std::env::current_exe().context("find the drvdom executable")?;
    Ok(Bins {
        xenstored: lab::find_binary("drvdom-xenstored", "DRVDOM_XENSTORED_BIN")?,
        agent: lab::find_binary("drvdom-agent", "DRVDOM_AGENT_BIN")?,
        drvdom,
    })
}

/// Run `drvdom lab`.
pub fn run(cmd: LabCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        LabCmd::Up {
            guests,
            driver_domain,
            name,
            detach,
            once,
            json,
            legacy_scripts,
        } => {
            let mode = if detach {
                Mode::Detach
            } else if once {
                Mode::Once
            } else {
                Mode::Foreground
            };
            let agent_args = legacy_scripts
                .map(|w| vec!["--legacy-scripts".to_string(), w])
                .unwrap_or_default();
            runtime()?.block_on(up(guests, driver_domain, name, mode, json, agent_args))
        }
        LabCmd::Status { name, json } => runtime()?.block_on(status(name, json)),
        LabCmd::Down { name, json } => runtime()?.block_on(down(name, json)),
        LabCmd::Restart { role, name } => runtime()?.block_on(restart(role, name)),
        LabCmd::Netback { domid, netns_map } => runtime()?.block_on(async {
            let client = AsyncClient::connect_default()
                .await
                .context("connect to xenstored (XENSTORED_PATH)")?;
            let cfg = sim::netback::NetbackConfig {
                domid: DomId(domid),
                netns_map,
            };
            sim::netback::run(client, cfg).await.context("netback")?;
            Ok(ExitCode::SUCCESS)
        }),
        LabCmd::Netfront { domid } => runtime()?.block_on(async {
            let client = AsyncClient::connect_default()
                .await
                .context("connect to xenstored (XENSTORED_PATH)")?;
            sim::netfront::run(client, DomId(domid))
                .await
                .context("netfront")?;
            Ok(ExitCode::SUCCESS)
        }),
    }
}

/// Bad lab or domain names are usage errors (exit code 2).
fn check_names(lab_name: &str, domain: Option<&str>) -> anyhow::Result<()> {
    lab::state::check_name(lab_name).map_err(|e| usage_error(e.to_string()))?;
    if let Some(d) = domain {
        lab::state::check_domain_name(d).map_err(|e| usage_error(e.to_string()))?;
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Foreground,
    Detach,
    Once,
}

#[allow(clippy::print_stdout)] // the command's report
fn print_step(s: &Step) {
    let mark = if s.ok { "PASS" } else { "FAIL" };
    println!("{mark}  {:<40} {:>6} ms", s.name, s.millis);
    for line in s.detail.lines() {
        println!("      {line}");
    }
}

/// Ctrl-C and SIGTERM listeners. Installed before the lab is built, so a
/// signal that arrives during set-up (or right after the "is up" line) is
/// not lost: it is seen by [`StopSignals::wait`] and the lab is torn down.
struct StopSignals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> anyhow::Result<StopSignals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(StopSignals {
            int: signal(SignalKind::interrupt()).context("install SIGINT handler")?,
            term: signal(SignalKind::terminate()).context("install SIGTERM handler")?,
        })
    }

    /// Wait for Ctrl-C or SIGTERM.
    async fn wait(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
    }
}

#[allow(clippy::print_stdout)] // the command's report
async fn up(
    guests: u16,
    driver_domain: String,
    name: String,
    mode: Mode,
    json: bool,
    agent_args: Vec<String>,
) -> anyhow::Result<ExitCode> {
    check_names(&name, Some(&driver_domain))?;
    let mut stop = match mode {
        Mode::Foreground => Some(StopSignals::install()?),
        Mode::Detach | Mode::Once => None,
    };
    let root = lab::run_root();
    if lab::exists(&root, &name) {
        return Err(usage_error(format!(
            "lab {name:?} already exists; remove it with `drvdom lab down --name {name}`"
        )));
    }
    let cfg = LabConfig {
        name: name.clone(),
        guests,
        driver_domain,
        run_root: root.clone(),
        bins: bins()?,
        agent_args,
    };
    let started = std::time::Instant::now();
    let mut steps: Vec<Step> = Vec::new();
    let mut report = |s: &Step| {
        if !json {
            print_step(s);
        }
        steps.push(s.clone());
    };
    let res = lab::up(&cfg, &mut report).await;
    let (mut lab, ok) = match res {
        Ok(v) => v,
        Err(e) => {
            if mode != Mode::Detach {
                let _ = lab::down(&root, &name).await;
            }
            return Err(anyhow::Error::new(e).context(format!("lab {name} up")));
        }
    };
    let elapsed = started.elapsed();
    if json {
        let out = serde_json::json!({
            "lab": name,
            "ok": ok,
            "millis": elapsed.as_millis(),
            "steps": steps,
        });
        println!("{out}");
    } else {
        let verdict = if ok {
            "all steps PASS"
        } else {
            "some steps FAILED"
        };
        println!("lab {name}: {verdict} in {:.2} s", elapsed.as_secs_f64());
    }
    match mode {
        Mode::Detach => {
            if !json {
                println!(
                    "lab {name} left running; `drvdom lab status --name {name}`, `drvdom lab down --name {name}`"
                );
            }
        }
        Mode::Once => {
            lab::down(&root, &name).await.context("tear the lab down")?;
        }
        Mode::Foreground => {
            if !json {
                println!("lab {name} is up; Ctrl-C or SIGTERM tears it down");
            }
            if let Some(stop) = stop.as_mut() {
                stop.wait().await;
            }
            lab.reap();
            lab::down(&root, &name).await.context("tear the lab down")?;
            lab.reap();
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[allow(clippy::print_stdout)] // the command's report
async fn status(name: String, json: bool) -> anyhow::Result<ExitCode> {
    check_names(&name, None)?;
    let root = lab::run_root();
    if !lab::exists(&root, &name) {
        return Err(usage_error(format!("no lab {name:?} is running")));
    }
    let lab = lab::open(&root, &name).await?;
    let st = lab::status(&lab).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&st)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("lab {}", st.name);
    println!("├─ processes");
    for (i, (p, alive)) in st.processes.iter().enumerate() {
        let branch = if i + 1 == st.processes.len() {
            "└─"
        } else {
            "├─"
        };
        let life = if *alive { "running" } else { "DEAD" };
        println!("│  {branch} {:<20} pid {:<8} {life}", p.role, p.pid);
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
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::print_stdout)] // the command's report
async fn restart(role: String, name: String) -> anyhow::Result<ExitCode> {
    check_names(&name, None)?;
    let root = lab::run_root();
    if !lab::exists(&root, &name) {
        return Err(usage_error(format!("no lab {name:?} is running")));
    }
    let pid = lab::restart(&root, &name, &role)
        .await
        .with_context(|| format!("restart {role} of lab {name}"))?;
    println!("lab {name}: {role} restarted, pid {pid}");
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::print_stdout)] // the command's report
async fn down(name: String, json: bool) -> anyhow::Result<ExitCode> {
    check_names(&name, None)?;
    let rep = lab::down(&lab::run_root(), &name)
        .await
        .with_context(|| format!("lab {name} down"))?;
    if json {
        println!("{}", serde_json::to_string(&rep)?);
    } else {
        println!(
            "lab {name} down: {} process(es) stopped, {} namespace(s) removed{}",
            rep.processes.len(),
            rep.namespaces.len(),
            if rep.dir_removed {
                ", state removed"
            } else {
                ""
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}
