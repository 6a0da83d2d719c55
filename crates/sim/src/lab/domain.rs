//! Creating and destroying simulated domains, as Xen and `xl` would: a
//! namespace for the machine, INTRODUCE to xenstored, `/local/domain/<id>`
//! as xl writes it, the domain's kernel (netback in a driver domain,
//! netfront in a guest), a driver domain's passed-through NICs and its
//! `drvdom-agent`.

use std::time::Duration;

use topology::DomainRole;
use tracing::{debug, info};
use xenbus::{DetachOptions, DomainSpec, PciFunction};
use xenstore::DomId;

use super::host::{SimHost, write_netns_map};
use super::state::{self, DomainRec, NicPlace, Role};
use super::wait;
use crate::error::{Error, Result, chain};
use crate::link::Netlink;
use crate::netback::READY_KEY as NETBACK_READY;
use crate::netfront::READY_KEY as NETFRONT_READY;
use crate::netns;

/// Dummy ring page frame for INTRODUCE: there is no shared page in the
/// simulation (the domain talks through its socket instead).
const DUMMY_GFN: i64 = 0xfeff0;
/// Dummy event channel for INTRODUCE.
const DUMMY_EVTCHN: u32 = 1;
/// Where the agent says it is ready (AGENT_XS_SCHEMA.md).
const AGENT_STATE: &str = "data/drvdom/agent/state";
/// How long `destroy` waits for a guest's vifs to close.
const DETACH_TIMEOUT: Duration = Duration::from_secs(5);

/// `xl create`.
pub(super) async fn create(host: &SimHost, role: DomainRole<'_>) -> Result<DomId> {
    let (name, is_driver) = match role {
        DomainRole::Driver(d) => (d.name.as_str(), true),
        DomainRole::Guest(g) => (g.name.as_str(), false),
    };
    state::check_domain_name(name)?;
    if let Some(old) = host.state().domain(name).cloned() {
        // A record without the domain's xenstore home is what a crash in
        // the middle of a create leaves: clean it up and start over.
        let p = format!("{}/name", DomId(old.domid).path());
        if host
            .dom0()
            .read_opt(&p)
            .await
            .map_err(Error::xs(format!("read {p}")))?
            .is_some()
        {
            return Err(Error::Invalid(format!(
                "domain {name} already exists (domid {})",
                old.domid
            )));
        }
        info!(domain = name, "cleaning up a half-created domain");
        destroy(host, name, DomId(old.domid)).await?;
    }
    if let DomainRole::Driver(d) = role {
        check_nics_assigned(host, name, &d.nics)?;
    }
    let lab = host.name().to_string();
    let ns = netns::ns_name(&lab, name);
    let rec = host.update(|st| {
        let domid = st.next_domid;
        st.next_domid = st.next_domid.saturating_add(1);
        let rec = DomainRec {
            domid,
            name: name.to_string(),
            role: if is_driver { Role::Driver } else { Role::Guest },
            netns: ns.clone(),
        };
        st.domains.push(rec.clone());
        rec
    })?;
    let domid = DomId(rec.domid);
    match boot(host, role, &rec).await {
        Ok(()) => {
            info!(domain = name, domid = domid.0, "domain created");
            Ok(domid)
        }
        Err(e) => {
            // Undo, so that a second apply creates it afresh (the logs
            // stay in the lab directory).
            if let Err(undo) = destroy(host, name, domid).await {
                debug!(domain = name, error = %chain(&undo), "undo a failed create");
            }
            Err(e)
        }
    }
}

/// Everything of a create after the domid is recorded.
async fn boot(host: &SimHost, role: DomainRole<'_>, rec: &DomainRec) -> Result<()> {
    let name = rec.name.as_str();
    let is_driver = rec.role == Role::Driver;
    let ns = rec.netns.clone();
    if !DomId(rec.domid).is_valid_domain() {
        return Err(Error::Invalid(format!(
            "no domain id left for {name} (next would be {})",
            rec.domid
        )));
    }
    let domid = DomId(rec.domid);
    netns::create(&ns)?;
    Netlink::connect_in(&netns::ns_path(&ns))
        .await?
        .set_up("lo")
        .await?;
    write_netns_map(&host.state(), rec.domid, &ns)?;

    // The hypervisor part: xenstored learns the domain (and opens its
    // socket), then the toolstack writes its home.
    let dom0 = host.dom0();
    if !dom0
        .is_introduced(domid)
        .await
        .map_err(Error::xs(format!("ask whether {domid} is introduced")))?
    {
        dom0.introduce(domid, DUMMY_GFN + i64::from(domid.0), DUMMY_EVTCHN)
            .await
            .map_err(Error::xs(format!("introduce domain {domid}")))?;
    }
    if is_driver {
        let (id, n, m) = (
            domid.0.to_string(),
            super::LAB_QUOTA_NODES.to_string(),
            super::LAB_QUOTA_MEMORY.to_string(),
        );
        dom0.control(&["quota-set", &id, "nodes", &n, "memory", &m])
            .await
            .map_err(Error::xs(format!(
                "raise the quotas of driver domain {name} ({domid})"
            )))?;
    }
    xenbus::make_domain(dom0, &DomainSpec::new(domid, name).driver_domain(is_driver))
        .await
        .map_err(Error::xb(format!("write the xenstore home of {name}")))?;
    let sock = host.state().socket_of(rec.domid);
    if !wait::poll_until(super::BOOT_TIMEOUT, || sock.exists()).await {
        return Err(Error::Timeout {
            what: format!("{} (xenstored's socket for {name})", sock.display()),
            secs: super::BOOT_TIMEOUT.as_secs_f64(),
        });
    }
    match role {
        DomainRole::Driver(d) => boot_driver(host, rec, d).await,
        DomainRole::Guest(_) => boot_guest(host, rec).await,
    }
}

fn check_nics_assigned(host: &SimHost, name: &str, nics: &[xentypes::Bdf]) -> Result<()> {
    let st = host.state();
    for bdf in nics {
        match st.nic(*bdf).map(|n| &n.place) {
            Some(NicPlace::Pciback) => {}
            Some(NicPlace::Domain(d)) if d == name => {}
            Some(NicPlace::Domain(d)) => {
                return Err(Error::Invalid(format!(
                    "NIC {bdf} is passed through to {d} already"
                )));
            }
            Some(NicPlace::Dom0) | None => {
                return Err(Error::Invalid(format!(
                    "NIC {bdf} is not assignable: assign it to pciback first \
                     (xl: \"device {bdf} is not assignable\")"
                )));
            }
        }
    }
    Ok(())
}

fn env_for(host: &SimHost, domid: u16) -> Vec<(String, String)> {
    vec![
        (
            "XENSTORED_PATH".into(),
            host.state().socket_of(domid).display().to_string(),
        ),
        (
            "RUST_LOG".into(),
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        ),
        // Logs go to files: no colour codes.
        ("NO_COLOR".into(), "1".into()),
    ]
}

/// A driver domain's NICs (passthrough), netback and agent.
async fn boot_driver(host: &SimHost, rec: &DomainRec, dd: &topology::DriverDomain) -> Result<()> {
    let domid = DomId(rec.domid);
    if !dd.nics.is_empty() {
        let funcs: Vec<PciFunction> = dd.nics.iter().map(|b| PciFunction::new(*b)).collect();
        xenbus::attach_pci(host.dom0(), domid, &rec.name, &funcs)
            .await
            .map_err(Error::xb(format!("write the pci backend of {}", rec.name)))?;
    }
    let st = host.state();
    let pciback = Netlink::connect_in(&crate::netns::ns_path(&st.pciback_ns)).await?;
    let mut nic_args = Vec::new();
    for bdf in &dd.nics {
        let Some(nic) = st.nic(*bdf) else { continue };
        if nic.place == NicPlace::Pciback {
            pciback
                .move_to(&nic.ifname, &netns::ns_path(&rec.netns))
                .await?;
            host.update(|st| {
                if let Some(n) = st.nics.iter_mut().find(|n| n.bdf == *bdf) {
                    n.place = NicPlace::Domain(rec.name.clone());
                }
            })?;
        }
        nic_args.push("--nic".to_string());
        nic_args.push(format!("{bdf}={}", nic.ifname));
    }

    let simkernel = st.bins.simkernel.clone();
    let role = format!("netback-{}", rec.name);
    let pid = host.spawn(
        &role,
        &rec.name,
        &rec.netns,
        &simkernel,
        vec![
            "netback".into(),
            "--domid".into(),
            rec.domid.to_string(),
            "--netns-map".into(),
            st.netns_map().display().to_string(),
        ],
        env_for(host, rec.domid),
    )?;
    let marker = format!("{}/{NETBACK_READY}", domid.path());
    host.wait_for_marker(
        &format!("netback of {}", rec.name),
        pid,
        &st.log_dir().join(format!("{role}.log")),
        &marker,
        |v| v == b"ready",
    )
    .await?;

    let role = format!("agent-{}", rec.name);
    let mut args = vec!["--domid".to_string(), rec.domid.to_string()];
    args.extend(nic_args);
    args.extend(st.agent_args.iter().cloned());
    let pid = host.spawn(
        &role,
        &rec.name,
        &rec.netns,
        &st.bins.agent,
        args,
        env_for(host, rec.domid),
    )?;
    let marker = format!("{}/{AGENT_STATE}", domid.path());
    host.wait_for_marker(
        &format!("drvdom-agent of {}", rec.name),
        pid,
        &st.log_dir().join(format!("{role}.log")),
        &marker,
        |v| v == b"ready",
    )
    .await
}

/// A guest's netfront.
async fn boot_guest(host: &SimHost, rec: &DomainRec) -> Result<()> {
    let st = host.state();
    let args = vec![
        "netfront".to_string(),
        "--domid".into(),
        rec.domid.to_string(),
    ];
    let role = format!("netfront-{}", rec.name);
    let pid = host.spawn(
        &role,
        &rec.name,
        &rec.netns,
        &st.bins.simkernel,
        args,
        env_for(host, rec.domid),
    )?;
    let marker = format!("{}/{NETFRONT_READY}", DomId(rec.domid).path());
    host.wait_for_marker(
        &format!("netfront of {}", rec.name),
        pid,
        &st.log_dir().join(format!("{role}.log")),
        &marker,
        |v| v == b"ready",
    )
    .await
}

/// `xl destroy`. Idempotent; whatever is already gone is skipped.
pub(super) async fn destroy(host: &SimHost, name: &str, domid: DomId) -> Result<()> {
    let st = host.state();
    let rec = st
        .domain(name)
        .cloned()
        .or_else(|| st.domain_by_id(domid.0).cloned());
    let dom0 = host.dom0();
    if rec.as_ref().is_some_and(|r| r.role == Role::Dom0) || domid == DomId::DOM0 {
        return Err(Error::Invalid("dom0 cannot be destroyed".into()));
    }
    let domid = rec.as_ref().map(|r| DomId(r.domid)).unwrap_or(domid);
    let role = rec.as_ref().map(|r| r.role);
    // A guest's vifs first, while its netfront still answers, as libxl
    // removes a dying domain's devices.
    if role != Some(Role::Driver) {
        let vifs = xenbus::list_vifs(dom0, domid).await.unwrap_or_default();
        let mut opts = DetachOptions::default();
        opts.closed_timeout = DETACH_TIMEOUT;
        opts.backend_removal_timeout = Some(DETACH_TIMEOUT);
        opts.force = true;
        for v in vifs {
            if let Err(e) = xenbus::detach_vif(dom0, domid, v.devid, &opts).await {
                debug!(domid = domid.0, devid = v.devid.0, error = %chain(&e), "detach on destroy");
            }
        }
    }
    if let Some(rec) = &rec {
        host.stop_procs_of(&rec.name).await?;
        // Passed-through NICs stay with pciback when their domain dies.
        nics_to_pciback(host, &st, rec).await?;
    }
    // The toolstack's records: the domain's home, its pci backend in dom0.
    let pci_dir = format!("{}/backend/pci/{}", DomId::DOM0.path(), domid.0);
    match dom0.rm(&pci_dir).await {
        Ok(()) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(Error::xs(format!("remove {pci_dir}"))(e)),
    }
    xenbus::destroy_domain(dom0, domid)
        .await
        .map_err(Error::xb(format!("remove the xenstore home of {name}")))?;
    if dom0
        .is_introduced(domid)
        .await
        .map_err(Error::xs(format!("ask whether {domid} is introduced")))?
    {
        dom0.release(domid)
            .await
            .map_err(Error::xs(format!("release domain {domid}")))?;
    }
    if let Some(rec) = &rec {
        netns::delete(&rec.netns)?;
        let _ = std::fs::remove_file(st.netns_map().join(rec.domid.to_string()));
        host.update(|st| st.domains.retain(|d| d.name != rec.name))?;
    }
    info!(domain = name, domid = domid.0, "domain destroyed");
    Ok(())
}

/// A dying domain's passed-through NICs go back to pciback: out of its
/// namespace (the agent enslaved them to a bridge; a NIC leaving the
/// domain leaves its bridge too, the kernel does it) and so recorded.
async fn nics_to_pciback(host: &SimHost, st: &state::LabState, rec: &DomainRec) -> Result<()> {
    let mine = |n: &state::NicRec| n.place == NicPlace::Domain(rec.name.clone());
    if st.nics.iter().any(mine) && netns::exists(&rec.netns) {
        let nl = Netlink::connect_in(&netns::ns_path(&rec.netns)).await?;
        for n in st.nics.iter().filter(|n| mine(n)) {
            if nl.index_of(&n.ifname).await?.is_some() {
                nl.move_to(&n.ifname, &netns::ns_path(&st.pciback_ns))
                    .await?;
            }
        }
    }
    host.update(|st| {
        for n in st.nics.iter_mut() {
            if mine(n) {
                n.place = NicPlace::Pciback;
            }
        }
    })
}

/// What a domain restart did (`SimHost::restart_domain`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restarted {
    /// The domain's name.
    pub name: String,
    /// The domid it had.
    pub old_domid: u16,
    /// The domid it has now (`None`: left down).
    pub new_domid: Option<u16>,
    /// When it died (ms since the epoch).
    pub died_ms: u64,
    /// When it was running again with its agent (driver domain) or
    /// netfront (guest) ready (ms since the epoch).
    pub ready_ms: Option<u64>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A domain dies as Xen kills it, and xl cleans up after it: its
/// processes are killed at once (SIGKILL: a dying domain's kernel does not
/// shut down), its passed-through NICs go back to pciback, its namespace
/// goes (and every link in it: its vifs' backend ends), xenstored releases
/// it (`@releaseDomain`), and — unless `keep_home` (a toolstack that died
/// too) — its xenstore home, `/libxl` and pci backend nodes are removed as
/// `xl destroy` does. Devices it *served* are not touched: guests'
/// frontends keep pointing at its (gone) backend directories, as on Xen.
/// Then, unless `stay_down`, a domain of the same name is created again
/// with a new domid (its NICs, netback and agent, or netfront).
pub(super) async fn restart(
    host: &SimHost,
    name: &str,
    stay_down: bool,
    keep_home: bool,
) -> Result<Restarted> {
    let st = host.state();
    let Some(rec) = st.domain(name).cloned() else {
        let known: Vec<&str> = st
            .domains
            .iter()
            .filter(|d| d.role != Role::Dom0)
            .map(|d| d.name.as_str())
            .collect();
        return Err(Error::Invalid(format!(
            "no domain {name:?} in lab {} (domains: {})",
            st.name,
            known.join(", ")
        )));
    };
    if rec.role == Role::Dom0 {
        return Err(Error::Invalid("dom0 cannot be restarted".into()));
    }
    let domid = DomId(rec.domid);
    let nics: Vec<xentypes::Bdf> = st
        .nics
        .iter()
        .filter(|n| n.place == NicPlace::Domain(rec.name.clone()))
        .map(|n| n.bdf)
        .collect();
    // The domain dies: its processes at once.
    let pids: Vec<i32> = st
        .procs
        .iter()
        .filter(|p| p.domain == rec.name && super::procs::belongs_to(p.pid, host.name()))
        .map(|p| p.pid)
        .collect();
    super::procs::kill_all(pids).await;
    host.reap();
    host.update(|st| st.procs.retain(|p| p.domain != rec.name))?;
    // Its PCI devices return to pciback.
    nics_to_pciback(host, &st, &rec).await?;
    // The machine is gone, with every link in it.
    netns::delete(&rec.netns)?;
    let _ = std::fs::remove_file(st.netns_map().join(rec.domid.to_string()));
    let dom0 = host.dom0();
    if dom0
        .is_introduced(domid)
        .await
        .map_err(Error::xs(format!("ask whether {domid} is introduced")))?
    {
        dom0.release(domid)
            .await
            .map_err(Error::xs(format!("release domain {domid}")))?;
    }
    let died_ms = now_ms();
    if !keep_home {
        let pci_dir = format!("{}/backend/pci/{}", DomId::DOM0.path(), domid.0);
        match dom0.rm(&pci_dir).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(Error::xs(format!("remove {pci_dir}"))(e)),
        }
        xenbus::destroy_domain(dom0, domid)
            .await
            .map_err(Error::xb(format!("remove the xenstore home of {name}")))?;
    }
    host.update(|st| st.domains.retain(|d| d.name != rec.name))?;
    info!(domain = name, domid = domid.0, keep_home, "domain died");
    let mut out = Restarted {
        name: name.to_string(),
        old_domid: rec.domid,
        new_domid: None,
        died_ms,
        ready_ms: None,
    };
    if stay_down {
        return Ok(out);
    }
    let new = match rec.role {
        Role::Driver => {
            let dd = topology::DriverDomain {
                name: name.to_string(),
                config: None,
                nics,
                permissive: false,
                bridges: Vec::new(),
            };
            create(host, DomainRole::Driver(&dd)).await?
        }
        _ => {
            let g = topology::Guest {
                name: name.to_string(),
                config: None,
                vifs: Vec::new(),
            };
            create(host, DomainRole::Guest(&g)).await?
        }
    };
    out.new_domid = Some(new.0);
    out.ready_ms = Some(now_ms());
    Ok(out)
}
