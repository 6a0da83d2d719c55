//! The checked steps of `lab up` after xenstored runs, and their helpers.

use std::path::Path;
use std::time::{Duration, Instant};

use xenstore::{AsyncClient, DomId};

use super::state::{DomainRec, LabState, Role};
use super::{
    Lab, LabConfig, Launch, Runner, STEP_TIMEOUT, StepResult, err_text, launch, procs, toolstack,
};
use crate::cmd::{ip_in, run};
use crate::error::Result;
use crate::link::{self, LinkView};
use crate::netback::READY_KEY;

/// Poll `cond` (for conditions without an event, such as a link
/// appearing in another namespace) until true or `timeout`.
pub(super) async fn poll_until<F, Fut>(timeout: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    poll_for(timeout, || {
        let f = cond();
        async move { (f.await, ()) }
    })
    .await
    .0
}

/// Like [`poll_until`], also returning the last value seen.
async fn poll_for<F, Fut, T>(timeout: Duration, mut cond: F) -> (bool, T)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = (bool, T)>,
{
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    loop {
        let (ok, v) = cond().await;
        if ok || Instant::now() >= deadline {
            return (ok, v);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

fn has_link(links: &[LinkView], name: &str) -> bool {
    links.iter().any(|l| l.name == name)
}

pub(super) async fn links_of(ns: &str) -> Vec<LinkView> {
    link::list(Some(ns)).await.unwrap_or_default()
}

/// Wait for `path` to hold `want`, driven by a watch.
async fn wait_value(client: &AsyncClient, path: &str, want: &[u8], timeout: Duration) -> bool {
    let token = xenbus::unique_token("lab");
    let Ok(mut w) = client.watch(path, &token).await else {
        return false;
    };
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if client.read_opt(path).await.ok().flatten().as_deref() == Some(want) {
            return true;
        }
        match tokio::time::timeout_at(deadline, w.recv()).await {
            Ok(Some(Ok(_))) => {}
            _ => return false,
        }
    }
}

/// The steps after xenstored is up. Returns false when it had to stop early.
pub(super) async fn build(cfg: &LabConfig, lab: &mut Lab, r: &mut Runner<'_>) -> bool {
    let st = lab.state.clone();
    let dom0 = lab.dom0.clone();
    let dd = st.domains[1].clone();
    let dom0_ns = st.domains[0].netns.clone();
    let guests: Vec<DomainRec> = st
        .domains
        .iter()
        .filter(|d| d.role == Role::Guest)
        .cloned()
        .collect();
    let dir = st.dir.clone();
    let log = |role: &str| dir.join("logs").join(format!("{role}.log"));

    // The toolstack creates the domains as xl does and introduces them.
    let ok = r
        .step("domains created and introduced", async {
            let mut names = Vec::new();
            for d in st.domains.iter().skip(1) {
                toolstack::create_domain(&dom0, DomId(d.domid), &d.name, d.role == Role::Driver)
                    .await
                    .map_err(err_text)?;
                let sock = st.socket_of(d.domid);
                if !poll_until(STEP_TIMEOUT, || async { sock.exists() }).await {
                    return Err(format!("{} did not appear", sock.display()));
                }
                names.push(format!("{}={}", d.name, d.domid));
            }
            Ok(names.join(" "))
        })
        .await;
    if !ok {
        return false;
    }

    // The physical NIC: in dom0 at first, its cable plugged into "outside".
    let nic = st.nic.clone();
    let ok = r
        .step("NIC found", async {
            let out = &st.outside_ns;
            ip_in(
                &dom0_ns,
                &[
                    "link", "add", &nic, "type", "veth", "peer", "name", "ext0", "netns", out,
                ],
            )
            .await
            .map_err(err_text)?;
            ip_in(out, &["addr", "add", &st.outside_addr, "dev", "ext0"])
                .await
                .map_err(err_text)?;
            ip_in(out, &["link", "set", "ext0", "up"])
                .await
                .map_err(err_text)?;
            if !has_link(&links_of(&dom0_ns).await, &nic) {
                return Err(format!("{nic} not in {dom0_ns}"));
            }
            Ok(format!(
                "{nic} (PCI {}) in dom0, cabled to {} {}",
                st.nic_bdf, out, st.outside_addr
            ))
        })
        .await;
    if !ok {
        return false;
    }

    // Passthrough: pci backend nodes as libxl writes them, then the device
    // leaves dom0 and shows up in the driver domain.
    let ok = r
        .step("NIC hidden from dom0", async {
            toolstack::assign_pci(&dom0, DomId(dd.domid), &dd.name, &st.nic_bdf)
                .await
                .map_err(err_text)?;
            ip_in(&dom0_ns, &["link", "set", &nic, "netns", &dd.netns])
                .await
                .map_err(err_text)?;
            if has_link(&links_of(&dom0_ns).await, &nic) {
                return Err(format!("{nic} still in dom0"));
            }
            let nodes = toolstack::pci_nodes(&dom0, DomId(dd.domid))
                .await
                .map_err(err_text)?;
            if !nodes.contains(&st.nic_bdf) {
                return Err(format!("pci backend nodes lack {}: {nodes:?}", st.nic_bdf));
            }
            Ok(format!(
                "not in dom0's namespace; pci backend: {}",
                nodes.join(", ")
            ))
        })
        .await;
    if !ok {
        return false;
    }
    let ok = r
        .step("NIC visible in the driver domain", async {
            if has_link(&links_of(&dd.netns).await, &nic) {
                Ok(format!("{nic} in {}", dd.netns))
            } else {
                Err(format!("{nic} not in {}", dd.netns))
            }
        })
        .await;
    if !ok {
        return false;
    }

    // The driver domain's kernel (netback).
    let res = spawn_role(
        lab,
        "netback",
        &dd.netns,
        &cfg.bins.drvdom,
        vec![
            "lab".into(),
            "_netback".into(),
            "--domid".into(),
            dd.domid.to_string(),
            "--netns-map".into(),
            dir.join("netns").display().to_string(),
        ],
        dd.domid,
        &log("netback"),
    );
    let ok = r
        .step("backend ready", async {
            res.map_err(err_text)?;
            let key = format!("{}/{READY_KEY}", DomId(dd.domid).path());
            if wait_value(&dom0, &key, b"ready", STEP_TIMEOUT).await {
                Ok(format!(
                    "netback running in {} as domain {}",
                    dd.name, dd.domid
                ))
            } else {
                Err(format!(
                    "{key} never became \"ready\" (see {})",
                    log("netback").display()
                ))
            }
        })
        .await;
    if !ok {
        return false;
    }

    // The agent: bridge bring-up with the NIC, then hotplug.
    let res = spawn_role(
        lab,
        "agent",
        &dd.netns,
        &cfg.bins.agent,
        vec![
            "--domid".into(),
            dd.domid.to_string(),
            "--bridge".into(),
            st.bridge.clone(),
            "--uplink".into(),
            nic.clone(),
        ]
        .into_iter()
        .chain(cfg.agent_args.iter().cloned())
        .collect(),
        dd.domid,
        &log("agent"),
    );
    let agent_pid = lab
        .state
        .procs
        .iter()
        .rev()
        .find(|p| p.role == "agent")
        .map(|p| p.pid);
    let ok = r
        .step("agent up, bridge with the NIC", async {
            res.map_err(err_text)?;
            let br = st.bridge.clone();
            let found = poll_until(STEP_TIMEOUT, || async {
                links_of(&dd.netns)
                    .await
                    .iter()
                    .any(|l| l.name == nic && l.master.as_deref() == Some(br.as_str()))
            })
            .await;
            let alive = agent_pid.is_some_and(procs::alive);
            match (found, alive) {
                (true, true) => Ok(format!(
                    "drvdom-agent pid {}; {nic} on {br}",
                    agent_pid.unwrap_or(0)
                )),
                (_, false) => Err(format!("agent exited (see {})", log("agent").display())),
                (false, true) => Err(format!(
                    "{nic} not on {br} (see {})",
                    log("agent").display()
                )),
            }
        })
        .await;
    if !ok {
        return false;
    }

    // Guests: their kernels (netfront), then their vifs.
    for g in &guests {
        let role = format!("netfront-{}", g.name);
        let res = spawn_role(
            lab,
            &role,
            &g.netns,
            &cfg.bins.drvdom,
            vec![
                "lab".into(),
                "_netfront".into(),
                "--domid".into(),
                g.domid.to_string(),
            ],
            g.domid,
            &log(&role),
        );
        if let Err(e) = res {
            r.step(&format!("{} netfront", g.name), async { Err(err_text(e)) })
                .await;
            return false;
        }
    }
    let ok = r
        .step("guests' vifs Connected on both ends", async {
            let mut lines = Vec::new();
            for (i, g) in guests.iter().enumerate() {
                let mac = format!("00:16:3e:00:00:{:02x}", i + 1);
                let (devid, be, fe) = toolstack::attach_guest_vif(
                    &dom0,
                    DomId(g.domid),
                    DomId(dd.domid),
                    Some(&mac),
                    None,
                )
                .await
                .map_err(err_text)?;
                lines.push(format!(
                    "{} vif{}.{devid}: backend {} frontend {} (mac {mac})",
                    g.name,
                    g.domid,
                    be.name(),
                    fe.name()
                ));
            }
            Ok(lines.join("\n"))
        })
        .await;
    if !ok {
        return false;
    }

    // The guests configure their interface (what ifup would do).
    for g in &guests {
        let addr = g.addr.clone().unwrap_or_default();
        let res = async {
            ip_in(&g.netns, &["addr", "add", &addr, "dev", "eth0"]).await?;
            ip_in(&g.netns, &["link", "set", "eth0", "up"]).await
        }
        .await;
        if let Err(e) = res {
            r.step(&format!("{} ifup", g.name), async { Err(err_text(e)) })
                .await;
            return false;
        }
    }

    let ok = r
        .step("every vif on the bridge", async {
            // Every guest's vif and the NIC: enslaved, up, and forwarding.
            // A port only forwards once the kernel's link watcher has seen
            // its carrier (up to a second after the guest's ifup); until
            // then the bridge drops frames, so wait for it here.
            let mut want: Vec<String> =
                guests.iter().map(|g| format!("vif{}.0", g.domid)).collect();
            want.push(nic.clone());
            let br = st.bridge.clone();
            let (found, links) = poll_for(STEP_TIMEOUT, || async {
                let links = links_of(&dd.netns).await;
                let ok = want.iter().all(|w| {
                    links.iter().any(|l| {
                        &l.name == w
                            && l.master.as_deref() == Some(br.as_str())
                            && l.up
                            && l.port_state.as_deref() == Some("forwarding")
                    })
                });
                (ok, links)
            })
            .await;
            let view = brctl_view(&st, &links);
            if found {
                Ok(view)
            } else {
                Err(format!("missing ports; bridge now:\n{view}"))
            }
        })
        .await;
    if !ok {
        return false;
    }

    // Real packets.
    let outside_ip = st
        .outside_addr
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let ip_of = |g: &DomainRec| {
        g.addr
            .clone()
            .unwrap_or_default()
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string()
    };
    if guests.len() >= 2 {
        let (a, b) = (&guests[0], &guests[1]);
        let target = ip_of(b);
        r.step(
            &format!("ping {} -> {}", a.name, b.name),
            ping(&a.netns, target),
        )
        .await;
        r.step(
            &format!("ping {} -> {}", b.name, a.name),
            ping(&b.netns, ip_of(a)),
        )
        .await;
    }
    for g in &guests {
        r.step(
            &format!("ping {} -> outside", g.name),
            ping(&g.netns, outside_ip.clone()),
        )
        .await;
    }
    true
}

fn spawn_role(
    lab: &mut Lab,
    role: &str,
    ns: &str,
    prog: &Path,
    args: Vec<String>,
    domid: u16,
    log: &Path,
) -> Result<()> {
    let env = vec![
        (
            "XENSTORED_PATH",
            lab.state.socket_of(domid).display().to_string(),
        ),
        (
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        ),
        // Logs go to files: no colour codes.
        ("NO_COLOR", "1".to_string()),
    ];
    let child = launch(
        &mut lab.state,
        Launch {
            role,
            ns,
            program: prog,
            args,
            env: env.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            log: log.to_path_buf(),
        },
    )?;
    lab.children.push(child);
    Ok(())
}

/// `ping -c1 -W2 <ip>` from namespace `ns`.
async fn ping(ns: &str, ip: String) -> StepResult {
    match run("ip", &["netns", "exec", ns, "ping", "-c1", "-W2", &ip]).await {
        Ok(out) => Ok(out
            .stdout
            .lines()
            .find(|l| l.contains("bytes from"))
            .unwrap_or("reply received")
            .trim()
            .to_string()),
        Err(e) => Err(err_text(e)),
    }
}

/// The `brctl show` view of the driver domain, ports labelled with guest names.
pub fn brctl_view(st: &LabState, links: &[LinkView]) -> String {
    let mut out = format!("{:<12} {:<20} {}\n", "bridge name", "interfaces", "guest");
    for b in link::bridges(links) {
        let mut first = true;
        for p in &b.ports {
            let guest = link::parse_vif_name(&p.name)
                .and_then(|(fe, _)| st.domain_by_id(fe))
                .map(|d| d.name.as_str())
                .unwrap_or(if p.name == st.nic { "(uplink NIC)" } else { "" });
            let br = if first { b.bridge.name.as_str() } else { "" };
            out.push_str(&format!("{br:<12} {:<20} {guest}\n", p.name));
            first = false;
        }
        if first {
            out.push_str(&format!("{:<12}\n", b.bridge.name));
        }
    }
    out.trim_end().to_string()
}
