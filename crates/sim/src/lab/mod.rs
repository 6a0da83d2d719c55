//! `drvdom lab`: a whole simulated Xen host, checked step by step.
//!
//! [`up`] builds it (each step reported through a callback as it passes or
//! fails), [`down`] removes everything a lab made (idempotent, and working
//! from the namespaces alone after a crash), [`status`] reads it back.
//!
//! Layout of lab `L` with driver domain `netdd` and two guests:
//!
//! | domain | domid | namespace | connects through |
//! |---|---|---|---|
//! | dom0 (toolstack, xenstored) | 0 | `drvdom-L-dom0` | the xenstored socket |
//! | netdd (netback, agent, bridge, NIC) | 1 | `drvdom-L-netdd` | `sockets/1.sock` |
//! | guest1, guest2 (netfront) | 2, 3 | `drvdom-L-guest1`.. | `sockets/<id>.sock` |
//! | the outside world | - | `drvdom-L-outside` | - |
//!
//! Addresses (documentation range, RFC 5737): outside 198.51.100.1/24,
//! guest *i* 198.51.100.(10+*i*)/24.

mod inspect;
mod procs;
pub mod state;
mod steps;
mod toolstack;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use xenbus::{DevId, XenbusState};
use xenstore::{AsyncClient, DomId};

pub use inspect::{DomainStatus, DownReport, Status, VifStatus, down, status};
pub use procs::{MARK_VAR, find_binary};
pub use state::{DomainRec, LabState, ProcRec, RUN_ROOT, Role};
pub use steps::brctl_view;
pub use toolstack::{attach_guest_vif, detach_guest_vif};

use crate::error::{Error, Result};
use crate::netns;

/// The subnet of the lab network (RFC 5737 TEST-NET-2).
pub const LAB_NET: &str = "198.51.100";
/// Made-up PCI address of the lab's NIC.
pub const NIC_BDF: &str = "0000:03:00.0";
/// Default bridge (libxl's default `bridge`).
pub const BRIDGE: &str = "xenbr0";
/// Vifs a driver domain of the lab can serve. Guests keep xenstored's
/// defaults (Xen's: 1000 nodes, 2.5 MiB); only a driver domain gets more,
/// because each vif puts about 30 nodes in *its* quota (the backend
/// directory and toolstack keys dom0 writes for it, netback's feature and
/// queue keys, the hotplug status; doctor counts 32), so the default caps
/// a driver domain at about 30 vifs.
pub const DRIVER_DOMAIN_VIFS: u32 = 1024;
/// A driver domain's node quota: the default for its own keys plus 32 per
/// vif (33,768). On a real host raise it the same way (cxenstored `-E`
/// applies to every domain; drvdom-xenstored `CONTROL quota-set` to one).
pub const LAB_QUOTA_NODES: u32 = 1000 + 32 * DRIVER_DOMAIN_VIFS;
/// A driver domain's memory quota: the default (2.5 MiB, cxenstored 4.17's
/// `quota_memory_per_domain_hard`) plus 4 KiB per vif (32 nodes of about
/// 100 bytes each: record, name, value, two permissions).
pub const LAB_QUOTA_MEMORY: u32 = 2_621_440 + 4096 * DRIVER_DOMAIN_VIFS;
/// How long each waited-for step may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(20);

/// The programs a lab runs.
#[derive(Debug, Clone)]
pub struct Bins {
    /// `drvdom-xenstored`.
    pub xenstored: PathBuf,
    /// `drvdom-agent`.
    pub agent: PathBuf,
    /// A program whose `lab _netback` / `lab _netfront` subcommands run
    /// the simulated kernels (the `drvdom` binary).
    pub drvdom: PathBuf,
}

/// What to build.
#[derive(Debug, Clone)]
pub struct LabConfig {
    /// Lab name (see [`state::check_name`]).
    pub name: String,
    /// Number of guests.
    pub guests: u16,
    /// Driver domain name.
    pub driver_domain: String,
    /// Root of lab directories ([`RUN_ROOT`]).
    pub run_root: PathBuf,
    /// Programs.
    pub bins: Bins,
    /// Extra arguments for the agent (e.g. `--legacy-scripts always`).
    pub agent_args: Vec<String>,
}

/// One reported step.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// What was checked.
    pub name: String,
    /// Passed?
    pub ok: bool,
    /// Details (what was seen, or why it failed); may span lines.
    pub detail: String,
    /// Time the step took, in milliseconds.
    pub millis: u128,
}

/// A running lab (as built by [`up`] or found by [`open`]).
#[derive(Debug)]
pub struct Lab {
    /// Its record.
    pub state: LabState,
    /// dom0's xenstore connection.
    pub dom0: AsyncClient,
    children: Vec<std::process::Child>,
}

impl Lab {
    /// Reap children that have exited (keeps `ps` free of zombies).
    pub fn reap(&mut self) {
        self.children
            .retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_))));
    }
}

/// Outcome of a step body: detail on success, detail on failure.
type StepResult = std::result::Result<String, String>;

struct Runner<'a> {
    report: &'a mut dyn FnMut(&Step),
    all_ok: bool,
}

impl Runner<'_> {
    async fn step<F>(&mut self, name: &str, f: F) -> bool
    where
        F: std::future::Future<Output = StepResult>,
    {
        let t = Instant::now();
        let res = f.await;
        let (ok, detail) = match res {
            Ok(d) => (true, d),
            Err(d) => (false, d),
        };
        self.all_ok &= ok;
        (self.report)(&Step {
            name: name.to_string(),
            ok,
            detail,
            millis: t.elapsed().as_millis(),
        });
        ok
    }
}

fn err_text(e: impl std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// Build the lab and run every check, reporting each step. Returns the lab
/// (for the caller to keep, detach from or tear down) and whether every
/// step passed. A setup failure that makes later steps meaningless stops
/// early (the steps so far were reported); the lab is left for [`down`].
pub async fn up(cfg: &LabConfig, report: &mut dyn FnMut(&Step)) -> Result<(Lab, bool)> {
    state::check_name(&cfg.name)?;
    state::check_domain_name(&cfg.driver_domain)?;
    if cfg.guests == 0 || cfg.guests > 200 {
        return Err(Error::Invalid(format!(
            "--guests {} out of range 1..=200",
            cfg.guests
        )));
    }
    for b in [&cfg.bins.xenstored, &cfg.bins.agent, &cfg.bins.drvdom] {
        if !b.is_file() {
            return Err(Error::Missing(format!(
                "{} not found (build it: cargo build --release --workspace)",
                b.display()
            )));
        }
    }
    let dir = state::lab_dir(&cfg.run_root, &cfg.name);
    let prefix = netns::lab_prefix(&cfg.name);
    if LabState::file(&dir).exists() || !netns::list_with_prefix(&prefix)?.is_empty() {
        return Err(Error::Invalid(format!(
            "lab {:?} already exists; remove it with `drvdom lab down --name {}`",
            cfg.name, cfg.name
        )));
    }
    let mkdir = |p: &Path| {
        std::fs::create_dir_all(p).map_err(|source| Error::File {
            what: "create directory",
            path: p.to_path_buf(),
            source,
        })
    };
    mkdir(&dir)?;
    for sub in ["sockets", "netns", "logs"] {
        mkdir(&dir.join(sub))?;
    }
    let mut domains = vec![
        DomainRec {
            domid: 0,
            name: "Domain-0".into(),
            role: Role::Dom0,
            netns: netns::ns_name(&cfg.name, "dom0"),
            addr: None,
        },
        DomainRec {
            domid: 1,
            name: cfg.driver_domain.clone(),
            role: Role::Driver,
            netns: netns::ns_name(&cfg.name, &cfg.driver_domain),
            addr: None,
        },
    ];
    for i in 1..=cfg.guests {
        let name = format!("guest{i}");
        if name == cfg.driver_domain {
            return Err(Error::Invalid(format!(
                "driver domain name {name:?} clashes with a guest"
            )));
        }
        domains.push(DomainRec {
            domid: i + 1,
            netns: netns::ns_name(&cfg.name, &name),
            name,
            role: Role::Guest,
            addr: Some(format!("{LAB_NET}.{}/24", 10 + i)),
        });
    }
    let mut st = LabState {
        name: cfg.name.clone(),
        dir: dir.clone(),
        xenstored_socket: dir.join("xenstored.sock"),
        domain_socket_dir: dir.join("sockets"),
        outside_ns: netns::ns_name(&cfg.name, "outside"),
        nic: "nic0".into(),
        nic_bdf: NIC_BDF.into(),
        outside_addr: format!("{LAB_NET}.1/24"),
        bridge: BRIDGE.into(),
        domains,
        procs: Vec::new(),
    };
    st.save()?;

    // Namespaces first: everything else lives in them.
    let mut all_ns: Vec<String> = st.domains.iter().map(|d| d.netns.clone()).collect();
    all_ns.push(st.outside_ns.clone());
    for ns in &all_ns {
        netns::create(ns).await?;
    }
    for d in &st.domains {
        let f = dir.join("netns").join(d.domid.to_string());
        std::fs::write(&f, &d.netns).map_err(|source| Error::File {
            what: "write",
            path: f.clone(),
            source,
        })?;
    }

    let mut children = Vec::new();
    let dom0_ns = st.domains[0].netns.clone();
    let log = |role: &str| dir.join("logs").join(format!("{role}.log"));

    // xenstored, in dom0.
    let xs_args = vec![
        "--socket".to_string(),
        st.xenstored_socket.display().to_string(),
        "--domain-socket-dir".to_string(),
        st.domain_socket_dir.display().to_string(),
    ];
    let child = launch(
        &mut st,
        Launch {
            role: "xenstored",
            ns: &dom0_ns,
            program: &cfg.bins.xenstored,
            args: xs_args,
            env: Vec::new(),
            log: log("xenstored"),
        },
    )?;
    children.push(child);
    let dom0 = connect_when_up(&st.xenstored_socket, STEP_TIMEOUT).await?;

    let mut lab = Lab {
        state: st,
        dom0,
        children,
    };
    let mut r = Runner {
        report,
        all_ok: true,
    };
    let ok = steps::build(cfg, &mut lab, &mut r).await;
    Ok((lab, ok && r.all_ok))
}

/// How a lab process is started (kept in the record for `restart`).
struct Launch<'a> {
    role: &'a str,
    ns: &'a str,
    program: &'a Path,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
}

/// Start a process and record it (so `down` can find it even if `up` dies).
fn launch(st: &mut LabState, l: Launch<'_>) -> Result<std::process::Child> {
    let child = procs::spawn_in(&st.name, l.ns, l.program, &l.args, &l.env, &l.log)?;
    let rec = ProcRec {
        role: l.role.to_string(),
        pid: i32::try_from(child.id()).unwrap_or(-1),
        log: l.log,
        netns: l.ns.to_string(),
        program: l.program.to_path_buf(),
        args: l.args,
        env: l.env,
    };
    match st.procs.iter_mut().find(|p| p.role == rec.role) {
        Some(old) => *old = rec,
        None => st.procs.push(rec),
    }
    st.save()?;
    Ok(child)
}

/// Restart the lab process `role` (`agent`, `netback`, `netfront-guest1`,
/// ...) the way `up` started it: stop the old one if it still runs, start
/// a new one. Returns the new pid. For crash-recovery tests and for
/// picking up a rebuilt binary.
pub async fn restart(run_root: &Path, name: &str, role: &str) -> Result<i32> {
    state::check_name(name)?;
    let dir = state::lab_dir(run_root, name);
    let mut st = LabState::load(&dir)?.ok_or_else(|| Error::Invalid(format!("no lab {name:?}")))?;
    let rec = st
        .procs
        .iter()
        .find(|p| p.role == role)
        .cloned()
        .ok_or_else(|| {
            let roles: Vec<&str> = st.procs.iter().map(|p| p.role.as_str()).collect();
            Error::Invalid(format!(
                "no process {role:?} in lab {name} (roles: {})",
                roles.join(", ")
            ))
        })?;
    if rec.program.as_os_str().is_empty() {
        return Err(Error::Invalid(format!(
            "lab {name} has no launch record for {role}"
        )));
    }
    if procs::belongs_to(rec.pid, name) {
        let pid = rec.pid;
        let _ = tokio::task::spawn_blocking(move || procs::stop(pid, Duration::from_secs(3))).await;
    }
    let child = launch(
        &mut st,
        Launch {
            role,
            ns: &rec.netns,
            program: &rec.program,
            args: rec.args.clone(),
            env: rec.env.clone(),
            log: rec.log.clone(),
        },
    )?;
    Ok(i32::try_from(child.id()).unwrap_or(-1))
}

/// Connect to a socket that a just-started server will create.
async fn connect_when_up(sock: &Path, timeout: Duration) -> Result<AsyncClient> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    loop {
        match AsyncClient::connect(sock).await {
            Ok(c) => return Ok(c),
            Err(e) if Instant::now() >= deadline => {
                return Err(Error::xs(format!("connect to {}", sock.display()))(e));
            }
            Err(_) => {}
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// True if lab `name` has a record or any namespace.
pub fn exists(run_root: &Path, name: &str) -> bool {
    LabState::file(&state::lab_dir(run_root, name)).exists()
        || netns::list_with_prefix(&netns::lab_prefix(name)).is_ok_and(|v| !v.is_empty())
}

/// The root of lab directories: `$DRVDOM_LAB_ROOT`, else [`RUN_ROOT`].
pub fn run_root() -> PathBuf {
    std::env::var_os("DRVDOM_LAB_ROOT")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(RUN_ROOT))
}

/// Open a running lab: its record and a dom0 connection.
pub async fn open(run_root: &Path, name: &str) -> Result<Lab> {
    state::check_name(name)?;
    let dir = state::lab_dir(run_root, name);
    let st = LabState::load(&dir)?.ok_or_else(|| {
        Error::Invalid(format!(
            "no lab {name:?} (no {})",
            LabState::file(&dir).display()
        ))
    })?;
    let dom0 = AsyncClient::connect(&st.xenstored_socket)
        .await
        .map_err(Error::xs(format!("connect to lab {name}'s xenstored")))?;
    Ok(Lab {
        state: st,
        dom0,
        children: Vec::new(),
    })
}

/// Wait for a vif's both ends to be Connected (used by attach).
pub(crate) async fn wait_connected(
    client: &AsyncClient,
    fe: DomId,
    be: DomId,
    devid: DevId,
) -> Result<(XenbusState, XenbusState)> {
    let bp = xenbus::BackendPath::vif(be, fe, devid);
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    let want = [XenbusState::Connected];
    let b = xenbus::wait_for_state(client, &bp.state(), &want, deadline)
        .await
        .map_err(Error::xb(format!("wait for backend {bp}")))?;
    let fp = bp.frontend();
    let f = xenbus::wait_for_state(client, &fp.state(), &want, deadline)
        .await
        .map_err(Error::xb(format!("wait for frontend {fp}")))?;
    Ok((b, f))
}
