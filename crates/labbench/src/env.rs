//! The bench's own simulated host: xenstored, dom0, a driver domain with
//! the real agent and the simulated netback, guests with the simulated
//! netfront. Everything lives in namespaces named `drvdom-lb<pid>-*` and a
//! temporary directory; [`Env`]'s `Drop` removes all of it, on success, on
//! error, on a panic and after Ctrl-C (the caller turns signals into an
//! early return).

use std::fs::File;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use nix::sched::{CloneFlags, setns};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use sim::link::Netlink;
use xenbus::DomainSpec;
use xenstore::{AsyncClient, DomId};

/// The driver domain's id.
pub const DD: DomId = DomId(1);
/// The driver domain's bridge.
pub const BRIDGE: &str = "xenbr0";
/// The driver domain's "physical" NIC (a veth) given to the agent as uplink.
pub const UPLINK: &str = "nic0";

/// Paths of the programs the bench runs.
#[derive(Debug, Clone)]
pub struct Bins {
    /// `drvdom-xenstored`.
    pub xenstored: PathBuf,
    /// `drvdom-agent`.
    pub agent: PathBuf,
    /// `drvdom`.
    pub drvdom: PathBuf,
    /// `drvdom-simkernel` (starts processes inside a namespace).
    pub simkernel: PathBuf,
}

impl Bins {
    /// The programs in `dir`, all of which must exist.
    pub fn in_dir(dir: &Path) -> anyhow::Result<Bins> {
        let find = |name: &str| {
            let p = dir.join(name);
            if p.is_file() {
                Ok(p)
            } else {
                bail!(
                    "{} not found (build it: cargo build --release --workspace)",
                    p.display()
                )
            }
        };
        Ok(Bins {
            xenstored: find("drvdom-xenstored")?,
            agent: find("drvdom-agent")?,
            drvdom: find("drvdom")?,
            simkernel: find("drvdom-simkernel")?,
        })
    }
}

/// The running bench host. Dropping it tears everything down.
#[derive(Debug)]
pub struct Env {
    /// Temporary directory: sockets, netns map, logs.
    pub dir: tempfile::TempDir,
    /// Namespace prefix (`drvdom-lb<pid>-`).
    pub prefix: String,
    /// The driver domain's namespace.
    pub dd_ns: String,
    /// Guests: (domid, namespace).
    pub guests: Vec<(DomId, String)>,
    /// dom0's connection.
    pub dom0: Option<AsyncClient>,
    /// The main xenstored's socket.
    pub xs_socket: PathBuf,
    namespaces: Vec<String>,
    children: Vec<(String, Child)>,
}

impl Env {
    /// An empty host (nothing created yet) for `guests` guests.
    pub fn new(guests: u16) -> anyhow::Result<Env> {
        let dir = tempfile::Builder::new()
            .prefix("drvdom-labbench-")
            .tempdir()
            .context("create the bench's temporary directory")?;
        let lab = format!("lb{}", std::process::id());
        let prefix = sim::netns::lab_prefix(&lab);
        let dd_ns = sim::netns::ns_name(&lab, "netdd");
        let guests = (1..=guests)
            .map(|i| (DomId(i + 1), sim::netns::ns_name(&lab, &format!("g{i}"))))
            .collect();
        let xs_socket = dir.path().join("xenstored.sock");
        Ok(Env {
            dir,
            prefix,
            dd_ns,
            guests,
            dom0: None,
            xs_socket,
            namespaces: Vec::new(),
            children: Vec::new(),
        })
    }

    /// The directory of per-domain sockets.
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("sockets")
    }

    /// A domain's xenstore socket (created by INTRODUCE).
    pub fn socket_of(&self, domid: DomId) -> PathBuf {
        self.socket_dir().join(format!("{}.sock", domid.0))
    }

    /// A log file in the bench directory.
    pub fn log(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    /// dom0's client (after [`Env::start_xenstored`]).
    pub fn dom0(&self) -> anyhow::Result<&AsyncClient> {
        self.dom0.as_ref().context("xenstored not started")
    }

    /// Create the namespaces (driver domain with a veth NIC, guests) and
    /// the netns map the simulated netback reads, in process (crate `sim`).
    pub async fn create_namespaces(&mut self) -> anyhow::Result<()> {
        let map = self.dir.path().join("netns");
        std::fs::create_dir_all(&map).context("create netns map")?;
        std::fs::create_dir_all(self.socket_dir()).context("create socket dir")?;
        let mut all = vec![(DD, self.dd_ns.clone())];
        all.extend(self.guests.iter().cloned());
        for (domid, ns) in all {
            // Recorded first, so that a half-made namespace is removed too.
            self.namespaces.push(ns.clone());
            sim::netns::create(&ns).with_context(|| format!("create namespace {ns}"))?;
            Netlink::connect_in(&sim::netns::ns_path(&ns))
                .await?
                .set_up("lo")
                .await?;
            std::fs::write(map.join(domid.0.to_string()), &ns).context("write netns map")?;
        }
        // The NIC: a veth whose far end stays in the driver domain too
        // (no `dummy` module needed, nothing in the host's namespace).
        let dd = sim::netns::ns_path(&self.dd_ns);
        Netlink::connect_in(&dd)
            .await?
            .add_veth_into(UPLINK, &dd, "nic0peer", None)
            .await?;
        Ok(())
    }

    /// The driver domain's links.
    pub async fn dd_links(&self) -> anyhow::Result<Vec<sim::link::LinkView>> {
        Ok(sim::link::list_in(&sim::netns::ns_path(&self.dd_ns)).await?)
    }

    /// Start `program args` as a child, output to `log`, optionally inside
    /// a namespace (through `drvdom-simkernel exec`, which execs in place,
    /// so the child's pid is the program's).
    pub fn spawn(
        &mut self,
        bins: &Bins,
        role: &str,
        ns: Option<&str>,
        program: &Path,
        args: &[String],
        env: &[(&str, String)],
    ) -> anyhow::Result<u32> {
        let log = self.log(role);
        let out = File::create(&log).with_context(|| format!("create {}", log.display()))?;
        let err = out.try_clone().context("dup log fd")?;
        let mut cmd = match ns {
            Some(ns) => {
                let mut c = Command::new(&bins.simkernel);
                c.arg("exec")
                    .arg("--netns")
                    .arg(sim::netns::ns_path(ns))
                    .arg("--")
                    .arg(program);
                c
            }
            None => Command::new(program),
        };
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .env("NO_COLOR", "1");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("start {}", program.display()))?;
        let pid = child.id();
        self.children.push((role.to_string(), child));
        Ok(pid)
    }

    /// Stop one child: SIGTERM, up to `grace`, then SIGKILL.
    pub fn stop(&mut self, role: &str, grace: Duration) {
        if let Some(i) = self.children.iter().position(|(r, _)| r == role) {
            let (_, mut child) = self.children.remove(i);
            stop_child(&mut child, grace);
        }
    }

    /// Start `drvdom-xenstored` with the given node quota and connect dom0.
    pub async fn start_xenstored(&mut self, bins: &Bins, quota_nodes: u32) -> anyhow::Result<()> {
        let args = vec![
            "--socket".to_string(),
            self.xs_socket.display().to_string(),
            "--domain-socket-dir".to_string(),
            self.socket_dir().display().to_string(),
            "--quota-nodes".to_string(),
            quota_nodes.to_string(),
        ];
        self.spawn(bins, "xenstored", None, &bins.xenstored, &args, &[])?;
        self.dom0 = Some(connect_when_up(&self.xs_socket, Duration::from_secs(20)).await?);
        Ok(())
    }

    /// INTRODUCE a domain and write its `/local/domain/<id>` as xl does.
    pub async fn create_domain(
        &self,
        domid: DomId,
        name: &str,
        driver: bool,
    ) -> anyhow::Result<()> {
        let dom0 = self.dom0()?;
        // Dummy ring frame and event channel: the domain talks through its socket.
        dom0.introduce(domid, 0xfeff0 + i64::from(domid.0), 1)
            .await
            .with_context(|| format!("introduce domain {domid}"))?;
        xenbus::make_domain(dom0, &DomainSpec::new(domid, name).driver_domain(driver))
            .await
            .with_context(|| format!("write /local/domain/{domid}"))?;
        Ok(())
    }

    /// Remove every process, namespace and file of the bench.
    pub fn teardown(&mut self) {
        self.dom0 = None;
        // The agent first (SIGTERM: it leaves devices alone), xenstored last.
        while let Some((_, mut child)) = self.children.pop() {
            stop_child(&mut child, Duration::from_secs(3));
        }
        for ns in self.namespaces.drain(..).rev() {
            let _ = sim::netns::delete(&ns);
        }
    }

    /// Namespaces with the bench's prefix that still exist.
    pub fn leftover_namespaces(&self) -> Vec<String> {
        sim::netns::list_with_prefix(&self.prefix).unwrap_or_default()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.teardown();
    }
}

fn stop_child(child: &mut Child, grace: Duration) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Connect to a socket that a just-started server will create.
pub async fn connect_when_up(sock: &Path, timeout: Duration) -> anyhow::Result<AsyncClient> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    loop {
        match AsyncClient::connect(sock).await {
            Ok(c) => return Ok(c),
            Err(e) if Instant::now() >= deadline => {
                return Err(e).with_context(|| format!("connect to {}", sock.display()));
            }
            Err(_) => {}
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Wait, with a watch, until `path` reads `want`.
pub async fn wait_value(
    client: &AsyncClient,
    path: &str,
    want: &[u8],
    timeout: Duration,
) -> anyhow::Result<()> {
    let mut w = client
        .watch(path, &xenbus::unique_token("labbench"))
        .await
        .with_context(|| format!("watch {path}"))?;
    let fut = async {
        loop {
            if client.read_opt(path).await?.as_deref() == Some(want) {
                return Ok::<_, xenstore::Error>(());
            }
            match w.next().await {
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Err(xenstore::Error::Closed),
            }
        }
    };
    tokio::time::timeout(timeout, fut)
        .await
        .with_context(|| format!("{path} did not become {:?}", String::from_utf8_lossy(want)))?
        .with_context(|| format!("wait for {path}"))
}

/// Run `make()`'s future on a new thread that has entered namespace `ns`
/// (sockets it opens and processes it spawns are in `ns`), on its own
/// single-threaded runtime.
pub fn in_netns<F, Fut, T>(ns: &str, make: F) -> std::thread::JoinHandle<anyhow::Result<T>>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<T>>,
    T: Send + 'static,
{
    let path = sim::netns::ns_path(ns);
    std::thread::spawn(move || {
        let f = File::open(&path).with_context(|| format!("open {}", path.display()))?;
        setns(&f, CloneFlags::CLONE_NEWNET)
            .with_context(|| format!("enter namespace {}", path.display()))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("start a runtime")?;
        rt.block_on(make())
    })
}

/// Resident set size (`VmRSS`) and its peak (`VmHWM`) of a process, in KiB.
pub fn rss_kib(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    match (field("VmRSS:"), field("VmHWM:")) {
        (Some(r), Some(h)) => Ok((r, h)),
        _ => bail!("no VmRSS/VmHWM in /proc/{pid}/status"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_rss_is_read() {
        let (rss, hwm) = rss_kib(std::process::id()).unwrap();
        assert!(rss > 0 && hwm >= rss, "rss {rss} hwm {hwm}");
    }
}
