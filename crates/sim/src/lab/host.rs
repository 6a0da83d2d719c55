//! [`SimHost`]: starting, opening and holding a simulated host, and its
//! [`Host`] implementation (the methods live in `domain.rs` and `nic.rs`).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use topology::{DomainRole, Host, HostKind, ObservedNic, ProbeOutcome, ProbeTarget, Vif};
use xenstore::{AsyncClient, DomId};
use xentypes::{Bdf, IpCidr};

use super::procs::{self, Spawn};
use super::state::{self, Bins, DomainRec, LabState, NicPlace, ProcRec, Role};
use super::wait::{self, WaitEnd};
use super::{OUTSIDE_ADDR, OUTSIDE_BRIDGE, PROBE_TIMEOUT, load};
use crate::error::{Error, Result, chain};
use crate::link::Netlink;
use crate::{icmp, netns};

/// What [`SimHost::start`] builds.
#[derive(Debug, Clone)]
pub struct StartConfig {
    /// Lab name (see [`state::check_name`]).
    pub name: String,
    /// Root of lab directories ([`super::RUN_ROOT`]).
    pub run_root: PathBuf,
    /// The programs.
    pub bins: Bins,
    /// Extra arguments for every driver domain's agent (e.g.
    /// `--legacy-scripts always`).
    pub agent_args: Vec<String>,
}

/// A child of the simulated host that exited ([`SimHost::take_exited`]).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Exited {
    /// Its role (`agent-netdd`, `netfront-guest1`, ...).
    pub role: String,
    /// Its pid.
    pub pid: u32,
    /// How it ended (`exit status: 3`, `signal: 9 (SIGKILL)`).
    pub status: String,
    /// Its log file.
    pub log: PathBuf,
    /// The last lines of its log.
    pub tail: String,
}

/// A simulated Xen host. Cheap to share by reference; every change is
/// recorded in the lab's state file before the next step.
#[derive(Debug)]
pub struct SimHost {
    name: String,
    dom0: AsyncClient,
    /// Boxed: the record is large and hosts are held in enums.
    state: Box<Mutex<LabState>>,
    children: Mutex<Vec<Child>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves the value whole: keep going after a
    // panic elsewhere.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SimHost {
    /// Start a simulated host with no domain but dom0: namespaces for
    /// dom0, pciback and the outside network, and `drvdom-xenstored` in
    /// dom0. Refuses a lab that already exists. On failure the parts made
    /// so far stay for [`super::down`].
    pub async fn start(cfg: &StartConfig) -> Result<SimHost> {
        state::check_name(&cfg.name)?;
        for b in [&cfg.bins.xenstored, &cfg.bins.agent, &cfg.bins.simkernel] {
            if !b.is_file() {
                return Err(Error::Missing(format!("{} not found", b.display())));
            }
        }
        if super::exists(&cfg.run_root, &cfg.name) {
            return Err(Error::Invalid(format!(
                "lab {:?} already exists; remove it with `drvdom lab down --lab {}`",
                cfg.name, cfg.name
            )));
        }
        let dir = state::lab_dir(&cfg.run_root, &cfg.name);
        let mkdir = |p: &Path| {
            std::fs::create_dir_all(p).map_err(|source| Error::File {
                what: "create directory",
                path: p.to_path_buf(),
                source,
            })
        };
        // Logs a previous lab of this name left (`lab down` keeps them)
        // belong to that lab: start afresh.
        let _ = std::fs::remove_dir_all(dir.join(state::LOG_DIR));
        mkdir(&dir)?;
        for sub in ["sockets", "netns", state::LOG_DIR] {
            mkdir(&dir.join(sub))?;
        }
        let ns = |d: &str| netns::ns_name(&cfg.name, d);
        let mut st = LabState {
            name: cfg.name.clone(),
            dir: dir.clone(),
            xenstored_socket: dir.join("xenstored.sock"),
            domain_socket_dir: dir.join("sockets"),
            outside_ns: ns("outside"),
            pciback_ns: ns("pciback"),
            outside_bridge: OUTSIDE_BRIDGE.into(),
            outside_addr: OUTSIDE_ADDR.into(),
            bins: cfg.bins.clone(),
            agent_args: cfg.agent_args.clone(),
            next_domid: 1,
            domains: vec![DomainRec {
                domid: 0,
                name: "Domain-0".into(),
                role: Role::Dom0,
                netns: ns("dom0"),
            }],
            nics: Vec::new(),
            procs: Vec::new(),
        };
        st.save()?;
        for n in [&st.domains[0].netns, &st.pciback_ns, &st.outside_ns] {
            netns::create(n)?;
            Netlink::connect_in(&netns::ns_path(n))
                .await?
                .set_up("lo")
                .await?;
        }
        write_netns_map(&st, 0, &st.domains[0].netns)?;
        // The outside network: one bridge (the switch the NICs' cables
        // plug into) carrying the outside's address.
        let out = Netlink::connect_in(&netns::ns_path(&st.outside_ns)).await?;
        out.add_bridge(&st.outside_bridge).await?;
        let addr: IpCidr = st
            .outside_addr
            .parse()
            .map_err(|e| Error::Invalid(format!("outside address: {e}")))?;
        out.add_address(&st.outside_bridge, addr).await?;
        out.set_up(&st.outside_bridge).await?;

        let args = vec![
            "--socket".to_string(),
            st.xenstored_socket.display().to_string(),
            "--domain-socket-dir".to_string(),
            st.domain_socket_dir.display().to_string(),
        ];
        let dom0_ns = st.domains[0].netns.clone();
        let xs = cfg.bins.xenstored.clone();
        let child = launch(
            &mut st,
            "xenstored",
            "Domain-0",
            &dom0_ns,
            &xs,
            args,
            Vec::new(),
        )?;
        let dom0 = wait::connect_when_up(&st.xenstored_socket, super::BOOT_TIMEOUT).await?;
        // What Xen's xen-init-dom0 writes for dom0.
        for (k, v) in [("name", "Domain-0"), ("domid", "0")] {
            let p = format!("{}/{k}", DomId::DOM0.path());
            dom0.write(&p, v)
                .await
                .map_err(Error::xs(format!("write {p}")))?;
        }
        Ok(SimHost {
            name: cfg.name.clone(),
            dom0,
            state: Box::new(Mutex::new(st)),
            children: Mutex::new(vec![child]),
        })
    }

    /// Open a running simulated host: its record and a dom0 connection.
    pub async fn open(lab_name: &str, run_root: &Path) -> Result<SimHost> {
        let st = load(run_root, lab_name)?;
        let dom0 = AsyncClient::connect(&st.xenstored_socket)
            .await
            .map_err(Error::xs(format!("connect to lab {lab_name}'s xenstored")))?;
        Ok(SimHost {
            name: lab_name.to_string(),
            dom0,
            state: Box::new(Mutex::new(st)),
            children: Mutex::new(Vec::new()),
        })
    }

    /// The lab's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Read the lab's record back from its file. Another process (`lab
    /// restart` in a shell) may have changed it since this host was
    /// opened: a long-lived dom0 program (`drvdom reconcile`) calls this
    /// before it relies on the record (domain names, domids, namespaces).
    pub fn reload(&self) -> Result<()> {
        let dir = lock(&self.state).dir.clone();
        if let Some(st) = LabState::load(&dir)? {
            *lock(&self.state) = st;
        }
        Ok(())
    }

    /// A copy of the lab's record as it is now.
    pub fn state(&self) -> LabState {
        lock(&self.state).clone()
    }

    /// dom0's xenstore connection.
    pub fn dom0(&self) -> &AsyncClient {
        &self.dom0
    }

    /// Change the record and save it.
    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut LabState) -> R) -> Result<R> {
        let mut st = lock(&self.state);
        let r = f(&mut st);
        st.save()?;
        Ok(r)
    }

    /// Reap children that have exited (keeps `ps` free of zombies).
    pub fn reap(&self) {
        lock(&self.children).retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_))));
    }

    /// The children (started by this `SimHost`) that exited since the last
    /// call, each with its role, exit status and the end of its log: what
    /// `lab up` reports at once while it keeps a lab running.
    pub fn take_exited(&self, log_lines: usize) -> Vec<Exited> {
        let mut gone = Vec::new();
        lock(&self.children).retain_mut(|c| match c.try_wait() {
            Ok(Some(status)) => {
                gone.push((c.id(), status));
                false
            }
            _ => true,
        });
        let st = lock(&self.state);
        gone.into_iter()
            .map(|(pid, status)| {
                let rec = st.procs.iter().find(|p| i64::from(p.pid) == i64::from(pid));
                let log = rec.map(|r| r.log.clone()).unwrap_or_default();
                Exited {
                    role: rec.map_or_else(|| format!("pid {pid}"), |r| r.role.clone()),
                    pid,
                    status: status.to_string(),
                    tail: procs::log_tail(&log, log_lines),
                    log,
                }
            })
            .collect()
    }

    /// Start a process of domain `domain` in namespace `ns` and record it.
    pub(crate) fn spawn(
        &self,
        role: &str,
        domain: &str,
        ns: &str,
        program: &Path,
        args: Vec<String>,
        env: Vec<(String, String)>,
    ) -> Result<u32> {
        let mut st = lock(&self.state);
        let child = launch(&mut st, role, domain, ns, program, args, env)?;
        let pid = child.id();
        lock(&self.children).push(child);
        Ok(pid)
    }

    /// Wait (on a watch) for `path` to satisfy `ok` while the process
    /// `pid` (a child of ours) runs; on failure the error names what was
    /// awaited and shows the end of the process's log.
    pub(crate) async fn wait_for_marker(
        &self,
        what: &str,
        pid: u32,
        log: &Path,
        path: &str,
        ok: impl Fn(&[u8]) -> bool,
    ) -> Result<()> {
        let mut child = {
            let mut children = lock(&self.children);
            children
                .iter()
                .position(|c| c.id() == pid)
                .map(|i| children.swap_remove(i))
        };
        let res =
            wait::value_while_alive(&self.dom0, path, ok, super::BOOT_TIMEOUT, child.as_mut())
                .await;
        if let Some(c) = child {
            lock(&self.children).push(c);
        }
        let end = match res? {
            Ok(_) => return Ok(()),
            Err(end) => end,
        };
        let tail = procs::log_tail(log, 8);
        let why = match end {
            WaitEnd::Exited(status) => format!("{what} exited ({status})"),
            WaitEnd::Timeout(last) => format!(
                "{what}: {path} not ready after {:.0} s (last value: {})",
                super::BOOT_TIMEOUT.as_secs_f64(),
                last.map(|v| format!("{:?}", String::from_utf8_lossy(&v)))
                    .unwrap_or_else(|| "none".into())
            ),
        };
        Err(Error::Invalid(format!(
            "{why}; last lines of {}:\n{tail}",
            log.display()
        )))
    }

    /// Restart process `role` (`agent-netdd`, `netback-netdd`,
    /// `netfront-guest1`, or a bare `agent` when there is one) the way it
    /// was started: stop the old one if it still runs, start a new one.
    /// Returns the role and the new pid.
    pub async fn restart(&self, role: &str) -> Result<(String, i32)> {
        let rec = lock(&self.state).proc(role)?.clone();
        if rec.program.as_os_str().is_empty() {
            return Err(Error::Invalid(format!(
                "lab {} has no launch record for {}",
                self.name, rec.role
            )));
        }
        if procs::belongs_to(rec.pid, &self.name) {
            procs::stop_all(vec![rec.pid], Duration::from_secs(3)).await;
        }
        let pid = self.spawn(
            &rec.role,
            &rec.domain,
            &rec.netns,
            &rec.program,
            rec.args.clone(),
            rec.env.clone(),
        )?;
        Ok((rec.role, i32::try_from(pid).unwrap_or(-1)))
    }

    /// Restart domain `name` as Xen would: it dies (processes killed,
    /// namespace and links gone, `@releaseDomain`, its xenstore home removed
    /// as `xl destroy` does unless `keep_home`) and, unless `stay_down`, is
    /// created again with a new domid, its NICs and agent (or netfront)
    /// back. Devices it served are left as Xen leaves them.
    pub async fn restart_domain(
        &self,
        name: &str,
        stay_down: bool,
        keep_home: bool,
    ) -> Result<super::domain::Restarted> {
        super::domain::restart(self, name, stay_down, keep_home).await
    }

    /// Start a dom0 service (e.g. the toolstack's `drvdom reconcile`) in
    /// dom0's namespace, recorded under `role` so that `lab down` stops it
    /// and `lab restart ROLE` restarts it. `program` is the caller's; this
    /// crate only launches it.
    pub fn start_dom0_service(
        &self,
        role: &str,
        program: &Path,
        args: Vec<String>,
        env: Vec<(String, String)>,
    ) -> Result<u32> {
        let (ns, sock) = {
            let st = lock(&self.state);
            let ns = st
                .domain_by_id(0)
                .map(|d| d.netns.clone())
                .ok_or_else(|| Error::Invalid("lab has no dom0".into()))?;
            (ns, st.xenstored_socket.clone())
        };
        let mut env = env;
        env.push(("XENSTORED_PATH".into(), sock.display().to_string()));
        env.push(("NO_COLOR".into(), "1".into()));
        self.spawn(role, "Domain-0", &ns, program, args, env)
    }

    /// Stop the recorded processes of `domain` and forget them.
    pub(crate) async fn stop_procs_of(&self, domain: &str) -> Result<()> {
        let pids: Vec<i32> = lock(&self.state)
            .procs
            .iter()
            .filter(|p| p.domain == domain && procs::belongs_to(p.pid, &self.name))
            .map(|p| p.pid)
            .collect();
        procs::stop_all(pids, Duration::from_secs(3)).await;
        self.reap();
        self.update(|st| st.procs.retain(|p| p.domain != domain))
    }

    /// The namespace file of domain `name` (or `outside`, `pciback`).
    pub fn netns_of(&self, name: &str) -> Option<PathBuf> {
        let st = lock(&self.state);
        match name {
            "outside" => Some(netns::ns_path(&st.outside_ns)),
            "pciback" => Some(netns::ns_path(&st.pciback_ns)),
            _ => st.domain(name).map(|d| netns::ns_path(&d.netns)),
        }
    }

    /// The error the toolstack sees for a failure of this host.
    pub(crate) fn host_error(&self, what: &str, e: &Error) -> topology::Error {
        topology::Error::Host(format!(
            "simulated host {}: {what}: {}",
            self.name,
            chain(e)
        ))
    }

    async fn probe_impl(&self, from: &str, to: &ProbeTarget) -> Result<ProbeOutcome> {
        let ip: IpAddr = match to {
            ProbeTarget::Addr(a) => *a,
            ProbeTarget::Outside { nic, addr } => {
                // The far side of the NIC's cable is the outside network's
                // bridge: answer there at `addr` (idempotent).
                let st = self.state();
                let Some(rec) = st.nic(*nic).cloned() else {
                    return Err(Error::Invalid(format!(
                        "NIC {nic} is not on this simulated host"
                    )));
                };
                let out_ns = netns::ns_path(&st.outside_ns);
                let out = Netlink::connect_in(&out_ns).await?;
                out.add_address(&st.outside_bridge, *addr).await?;
                // The cable is live once both ends are operationally up
                // (the kernel's link watcher, at most once a second for
                // the whole machine, activates them).
                let nic_ns = match &rec.place {
                    NicPlace::Domain(d) => st.domain(d).map(|r| netns::ns_path(&r.netns)),
                    NicPlace::Dom0 => st.domain_by_id(0).map(|r| netns::ns_path(&r.netns)),
                    NicPlace::Pciback => Some(netns::ns_path(&st.pciback_ns)),
                };
                Netlink::wait_oper_up(&out_ns, &rec.ext, PORT_TIMEOUT).await?;
                if let Some(ns) = nic_ns {
                    Netlink::wait_oper_up(&ns, &rec.ifname, PORT_TIMEOUT).await?;
                }
                addr.addr()
            }
        };
        let Some(ns) = self.netns_of(from) else {
            return Err(Error::Invalid(format!("no domain {from:?} to probe from")));
        };
        Ok(match icmp::echo(&ns, ip, PROBE_TIMEOUT).await? {
            Some(r) => ProbeOutcome::Answered(format!(
                "ICMP echo reply from {ip} after {} request(s), {:.1} ms",
                r.sent,
                r.elapsed.as_secs_f64() * 1000.0
            )),
            None => ProbeOutcome::NoAnswer(format!(
                "no ICMP echo reply from {ip} within {:.1} s",
                PROBE_TIMEOUT.as_secs_f64()
            )),
        })
    }

    /// The guest's own configuration of a connected vif's interface
    /// `eth<devid>` (made by the simulated netback): MTU, addresses, up.
    async fn configure_guest_vif(&self, guest: &str, vif: &Vif) -> Result<()> {
        let Some(ns) = self.netns_of(guest) else {
            return Err(Error::Invalid(format!("no domain {guest:?}")));
        };
        let nl = Netlink::connect_in(&ns).await?;
        let eth = format!("eth{}", vif.devid.0);
        if nl.index_of(&eth).await?.is_none() {
            return Err(Error::Invalid(format!(
                "{guest} has no interface {eth} for its vif {}",
                vif.devid
            )));
        }
        if let Some(mtu) = vif.mtu {
            nl.set_mtu(&eth, mtu).await?;
        }
        for ip in &vif.ip {
            nl.add_address(&eth, *ip).await?;
        }
        nl.set_up(&eth).await?;
        // Until the kernel's link watcher has seen the carrier (it runs at
        // most once a second for the whole machine), the interface drops
        // what it sends: the guest's ifup is done when it is UP.
        let t = std::time::Instant::now();
        let up = Netlink::wait_oper_up(&ns, &eth, PORT_TIMEOUT).await?;
        tracing::debug!(%guest, %eth, waited_ms = t.elapsed().as_millis(), up, "guest interface up");
        if !up {
            tracing::warn!(%guest, %eth, "interface not operationally up in time");
        }
        Ok(())
    }

    /// After the guest's ifup: wait until the backend's agent publishes
    /// the vif's bridge port up and forwarding (the link needs the
    /// guest's side up to get carrier), so that what the toolstack reads
    /// next is settled. A timeout is not an error here: `verify` reports
    /// the port as it is.
    async fn wait_port_forwarding(&self, guest_domid: DomId, vif: &Vif) -> Result<()> {
        if vif.bridge.is_none() {
            return Ok(());
        }
        let Some(be) = self.state().domain(&vif.backend).map(|d| DomId(d.domid)) else {
            return Ok(());
        };
        let dir = xenbus::agent::published_bridges_dir(be);
        let token = xenbus::unique_token("sim-port");
        let mut w = self
            .dom0
            .watch(&dir, &token)
            .await
            .map_err(Error::xs(format!("watch {dir}")))?;
        let want = Some((guest_domid.0, vif.devid.0));
        let deadline = tokio::time::Instant::now() + PORT_TIMEOUT;
        let settled = loop {
            let p = xenbus::agent::read_published(&self.dom0, be)
                .await
                .map_err(Error::xb(format!("read the publication of domain {be}")))?;
            let ok = p.bridges.iter().any(|b| {
                b.ports
                    .iter()
                    .any(|port| port.vif == want && port.up && port.fwd)
            });
            if ok {
                break true;
            }
            match tokio::time::timeout_at(deadline, w.recv()).await {
                Ok(Some(Ok(_))) => {}
                _ => break false,
            }
        };
        let _ = self.dom0.unwatch(&dir, &token).await;
        tracing::debug!(
            domid = guest_domid.0,
            devid = vif.devid.0,
            settled,
            "vif port published forwarding"
        );
        if !settled {
            tracing::warn!(
                domid = guest_domid.0,
                devid = vif.devid.0,
                "the vif's bridge port was not published forwarding in time"
            );
        }
        Ok(())
    }
}

/// How long [`SimHost`]'s `vif_connected` waits for the vif's bridge port.
const PORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Record that domain `domid` lives in namespace `ns` (the netbacks read
/// it to find a guest's namespace).
pub(crate) fn write_netns_map(st: &LabState, domid: u16, ns: &str) -> Result<()> {
    let f = st.netns_map().join(domid.to_string());
    std::fs::write(&f, ns).map_err(|source| Error::File {
        what: "write",
        path: f,
        source,
    })
}

/// Start a process and record it (so `down` finds it even if we die).
fn launch(
    st: &mut LabState,
    role: &str,
    domain: &str,
    ns: &str,
    program: &Path,
    args: Vec<String>,
    env: Vec<(String, String)>,
) -> Result<Child> {
    let log = st.log_dir().join(format!("{role}.log"));
    let child = procs::spawn_in(&Spawn {
        lab: &st.name,
        simkernel: &st.bins.simkernel,
        ns,
        program,
        args: &args,
        env: &env,
        log: &log,
    })?;
    let rec = ProcRec {
        role: role.to_string(),
        domain: domain.to_string(),
        pid: i32::try_from(child.id()).unwrap_or(-1),
        log,
        netns: ns.to_string(),
        program: program.to_path_buf(),
        args,
        env,
    };
    match st.procs.iter_mut().find(|p| p.role == rec.role) {
        Some(old) => *old = rec,
        None => st.procs.push(rec),
    }
    st.save()?;
    Ok(child)
}

impl Host for SimHost {
    fn kind(&self) -> HostKind {
        HostKind::Simulated(self.name.clone())
    }

    fn xenstore(&self) -> &AsyncClient {
        &self.dom0
    }

    async fn create_domain(&self, role: DomainRole<'_>) -> topology::Result<DomId> {
        let name = match role {
            DomainRole::Driver(d) => d.name.clone(),
            DomainRole::Guest(g) => g.name.clone(),
        };
        super::domain::create(self, role)
            .await
            .map_err(|e| self.host_error(&format!("create domain {name}"), &e))
    }

    async fn destroy_domain(&self, name: &str, domid: DomId) -> topology::Result<()> {
        super::domain::destroy(self, name, domid)
            .await
            .map_err(|e| self.host_error(&format!("destroy domain {name} ({domid})"), &e))
    }

    async fn assign_nic(&self, bdf: Bdf, permissive: bool) -> topology::Result<()> {
        super::nic::assign(self, bdf, permissive)
            .await
            .map_err(|e| self.host_error(&format!("assign NIC {bdf}"), &e))
    }

    async fn release_nic(&self, bdf: Bdf) -> topology::Result<()> {
        super::nic::release(self, bdf)
            .await
            .map_err(|e| self.host_error(&format!("release NIC {bdf}"), &e))
    }

    async fn nics(&self, bdfs: &[Bdf]) -> topology::Result<Vec<ObservedNic>> {
        super::nic::observe(self, bdfs)
            .await
            .map_err(|e| self.host_error("observe NICs", &e))
    }

    async fn config_drift(&self, _role: DomainRole<'_>) -> topology::Result<Option<String>> {
        // No configuration files on the simulated host.
        Ok(None)
    }

    async fn write_config(&self, _role: DomainRole<'_>) -> topology::Result<()> {
        Ok(())
    }

    async fn vif_connected(&self, guest: &str, domid: DomId, vif: &Vif) -> topology::Result<()> {
        let what = format!("configure {guest}'s vif {}", vif.devid);
        // The caller may be the reconcile daemon, opened long before the
        // driver domain came back with a new domid.
        self.reload().map_err(|e| self.host_error(&what, &e))?;
        self.configure_guest_vif(guest, vif)
            .await
            .map_err(|e| self.host_error(&what, &e))?;
        self.wait_port_forwarding(domid, vif)
            .await
            .map_err(|e| self.host_error(&what, &e))
    }

    async fn probe(&self, from: &str, to: &ProbeTarget) -> topology::Result<ProbeOutcome> {
        let what = match to {
            ProbeTarget::Addr(a) => a.to_string(),
            ProbeTarget::Outside { addr, .. } => format!("the outside at {}", addr.addr()),
        };
        self.probe_impl(from, to)
            .await
            .map_err(|e| self.host_error(&format!("probe {what} from {from}"), &e))
    }
}
