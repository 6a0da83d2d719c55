//! `show`: the host as it is (with a file: as it is against the file), as
//! one serializable [`HostView`] rendered as text, JSON (SPEC.md §4), a
//! Graphviz graph, or libvirt domain XML.

use std::fmt::Write as _;

use serde::Serialize;
use xentypes::{DomId, IpCidr, MacAddr};

use crate::hostfile::DOM0;
use crate::model::{Topology, Uplink, VifMode};
use crate::observe::{DOM0_NAME, vif_is_up};
use crate::observed::Observed;
use crate::plan::PCIBACK;

/// The whole host.
#[derive(Debug, Clone, Serialize)]
pub struct HostView {
    /// Domains: dom0, driver domains, guests.
    pub domains: Vec<DomainView>,
}

/// One domain.
#[derive(Debug, Clone, Serialize)]
pub struct DomainView {
    /// Name.
    pub name: String,
    /// Domid, if running.
    pub domid: Option<u16>,
    /// `dom0`, `driver` or `guest`.
    pub role: &'static str,
    /// Running.
    pub running: bool,
    /// Memory in KiB (running domains).
    pub memory_kib: Option<u64>,
    /// PCI NICs passed through to it.
    pub nics: Vec<NicView>,
    /// Bridges (driver domains, as its agent publishes them).
    pub bridges: Vec<BridgeView>,
    /// Its vifs (guests).
    pub vifs: Vec<VifView>,
    /// Its agent's state (driver domains).
    pub agent: Option<String>,
    /// What is wrong, against the file.
    pub problems: Vec<String>,
}

/// A NIC.
#[derive(Debug, Clone, Serialize)]
pub struct NicView {
    /// BDF.
    pub bdf: String,
    /// Bound driver.
    pub driver: Option<String>,
    /// Visible in the domain.
    pub visible: Option<bool>,
}

/// A bridge.
#[derive(Debug, Clone, Serialize)]
pub struct BridgeView {
    /// Name.
    pub name: String,
    /// Uplink interface.
    pub uplink: Option<String>,
    /// MTU.
    pub mtu: Option<u32>,
    /// Ports.
    pub ports: Vec<PortView>,
}

/// A bridge port.
#[derive(Debug, Clone, Serialize)]
pub struct PortView {
    /// Interface.
    pub ifname: String,
    /// The guest behind it (vif ports).
    pub guest: Option<String>,
    /// The vif's devid.
    pub devid: Option<u32>,
    /// Up.
    pub up: bool,
    /// Forwarding.
    pub forwarding: bool,
    /// The vif's packet filter (`l2+ip`, `l2`, `ip`, `off`), as its agent
    /// reports it; `None` for the uplink or an agent that does not say.
    pub filter: Option<String>,
    /// Frames from the guest its filter dropped, per reason.
    pub drops: Option<xenbus::agent::PortDrops>,
}

/// A vif.
#[derive(Debug, Clone, Serialize)]
pub struct VifView {
    /// Device id.
    pub devid: u32,
    /// Backend domain name.
    pub backend: String,
    /// Bridge.
    pub bridge: Option<String>,
    /// MAC.
    pub mac: Option<MacAddr>,
    /// Frontend state.
    pub state_frontend: Option<&'static str>,
    /// Backend state.
    pub state_backend: Option<&'static str>,
    /// Backend `hotplug-status`.
    pub hotplug_status: Option<String>,
    /// Backend interface name (`vif<domid>.<devid>`).
    pub ifname: Option<String>,
    /// Frontend `trusted`.
    pub trusted: Option<bool>,
    /// Addresses.
    pub ip: Vec<IpCidr>,
    /// `bridge` or `route`.
    pub mode: &'static str,
    /// Connected on both ends with hotplug done.
    pub up: bool,
    /// Layer-2 hygiene wanted for it (backend `drvdom-l2-hygiene`; absent
    /// means on).
    pub l2_hygiene: bool,
    /// Its filter in the driver domain (`l2+ip`, `l2`, `ip`, `off`), from
    /// the port its backend's agent publishes; `None`: not reported (a dom0
    /// backend, a routed vif, the agent not running).
    pub filter: Option<String>,
    /// The filter's drop counters, from the same port record.
    pub drops: Option<xenbus::agent::PortDrops>,
}

fn name_of(obs: &Observed, d: DomId) -> String {
    obs.domain_by_id(d)
        .map_or(format!("domain {d}"), |x| x.name.clone())
}

/// Build the view of `obs`; with `topo`, the file's domains come first (in
/// file order, present or not) with their problems, then the rest.
pub fn view(obs: &Observed, topo: Option<&Topology>) -> HostView {
    let mut out = Vec::new();
    let mut listed: Vec<String> = Vec::new();
    let dom0 = obs.domain_by_id(DomId::DOM0);
    out.push(domain_view(obs, DOM0_NAME, dom0.map(|d| d.domid), "dom0"));
    listed.push(dom0.map_or(DOM0_NAME.to_string(), |d| d.name.clone()));
    if let Some(t) = topo {
        for dd in &t.driver_domains {
            let mut v = domain_view(
                obs,
                &dd.name,
                obs.domain(&dd.name).map(|d| d.domid),
                "driver",
            );
            for bdf in &dd.nics {
                if !v.nics.iter().any(|n| n.bdf == bdf.to_string()) {
                    let n = obs.nic(*bdf);
                    v.nics.push(NicView {
                        bdf: bdf.to_string(),
                        driver: n.and_then(|n| n.driver.clone()),
                        visible: Some(false),
                    });
                    v.problems.push(format!("NIC {bdf} not passed through"));
                }
                if obs.nic(*bdf).and_then(|n| n.driver.as_deref()) != Some(PCIBACK) {
                    v.problems.push(format!("NIC {bdf} not on pciback"));
                }
            }
            for b in &dd.bridges {
                match v.bridges.iter().find(|x| x.name == b.name) {
                    None => {
                        v.problems.push(format!("bridge {} not built", b.name));
                        v.bridges.push(BridgeView {
                            name: b.name.clone(),
                            uplink: b.uplink.as_ref().map(|u| match u {
                                Uplink::Nic(n) => n.to_string(),
                                Uplink::Iface(i) => i.clone(),
                            }),
                            mtu: b.mtu,
                            ports: Vec::new(),
                        });
                    }
                    Some(x) if b.uplink.is_some() && x.uplink.is_none() => {
                        v.problems.push(format!("bridge {} has no uplink", b.name));
                    }
                    Some(_) => {}
                }
            }
            if v.running && v.agent.as_deref() != Some("ready") {
                v.problems.push("agent not ready".to_string());
            }
            listed.push(dd.name.clone());
            out.push(v);
        }
        for g in &t.guests {
            let mut v = domain_view(obs, &g.name, obs.domain(&g.name).map(|d| d.domid), "guest");
            for want in &g.vifs {
                match v.vifs.iter_mut().find(|x| x.devid == want.devid.0) {
                    Some(x) => {
                        x.mode = mode_name(want.mode);
                        if !x.up {
                            v.problems.push(format!("vif {} not connected", want.devid));
                        }
                    }
                    None => {
                        v.problems.push(format!("vif {} absent", want.devid));
                        v.vifs.push(VifView {
                            devid: want.devid.0,
                            backend: want.backend.clone(),
                            bridge: want.bridge.clone(),
                            mac: Some(want.mac),
                            state_frontend: None,
                            state_backend: None,
                            hotplug_status: None,
                            ifname: None,
                            trusted: Some(want.trusted),
                            ip: want.ip.clone(),
                            mode: mode_name(want.mode),
                            up: false,
                            l2_hygiene: want.l2_hygiene,
                            filter: None,
                            drops: None,
                        });
                    }
                }
            }
            listed.push(g.name.clone());
            out.push(v);
        }
    }
    for d in &obs.domains {
        if listed.contains(&d.name) || d.domid == DomId::DOM0 {
            continue;
        }
        let role = if d.driver_domain { "driver" } else { "guest" };
        out.push(domain_view(obs, &d.name, Some(d.domid), role));
    }
    HostView { domains: out }
}

fn mode_name(m: VifMode) -> &'static str {
    match m {
        VifMode::Bridge => "bridge",
        VifMode::Route => "route",
    }
}

fn domain_view(obs: &Observed, name: &str, domid: Option<DomId>, role: &'static str) -> DomainView {
    let od = domid.and_then(|d| obs.domain_by_id(d));
    let mut v = DomainView {
        name: name.to_string(),
        domid: domid.map(|d| d.0),
        role,
        running: od.is_some(),
        memory_kib: od.and_then(|d| d.memory_kib),
        nics: Vec::new(),
        bridges: Vec::new(),
        vifs: Vec::new(),
        agent: od.and_then(|d| d.agent.as_ref().map(|a| a.state.clone())),
        problems: Vec::new(),
    };
    if od.is_none() && role != "dom0" {
        v.problems.push("not running".to_string());
    }
    let Some(od) = od else { return v };
    for n in obs.nics.iter().filter(|n| n.assigned_to == Some(od.domid)) {
        v.nics.push(NicView {
            bdf: n.bdf.to_string(),
            driver: n.driver.clone(),
            visible: n.visible_in_domain,
        });
    }
    for b in &od.bridges {
        v.bridges.push(BridgeView {
            name: b.name.clone(),
            uplink: b.uplink.clone(),
            mtu: b.mtu,
            ports: b
                .ports
                .iter()
                .map(|p| PortView {
                    ifname: p.ifname.clone(),
                    guest: p.vif.map(|(d, _)| name_of(obs, d)),
                    devid: p.vif.map(|(_, x)| x.0),
                    up: p.up,
                    forwarding: p.forwarding,
                    filter: p.filter.clone(),
                    drops: p.drops,
                })
                .collect(),
        });
    }
    for o in obs.vifs_of(od.domid) {
        let port = obs
            .domain_by_id(o.backend)
            .into_iter()
            .flat_map(|b| &b.bridges)
            .flat_map(|b| &b.ports)
            .find(|p| p.vif == Some((o.frontend, o.devid)));
        v.vifs.push(VifView {
            devid: o.devid.0,
            backend: if o.backend == DomId::DOM0 {
                DOM0.to_string()
            } else {
                name_of(obs, o.backend)
            },
            bridge: o.bridge.clone(),
            mac: o.mac,
            state_frontend: o.state_frontend.map(|s| s.name()),
            state_backend: o.state_backend.map(|s| s.name()),
            hotplug_status: o.hotplug_status.clone(),
            ifname: Some(format!("vif{}.{}", o.frontend, o.devid)),
            trusted: o.trusted,
            ip: o.ip.clone(),
            mode: if o.routed { "route" } else { "bridge" },
            up: vif_is_up(o),
            l2_hygiene: o.l2_hygiene.unwrap_or(true),
            filter: port.and_then(|p| p.filter.clone()),
            drops: port.and_then(|p| p.drops),
        });
    }
    v
}

/// Human text: one block per domain.
pub fn to_text(v: &HostView) -> String {
    let mut s = String::new();
    for d in &v.domains {
        let id = d.domid.map_or("-".to_string(), |x| x.to_string());
        let _ = write!(s, "{} ({}, domid {id}", d.name, d.role);
        if let Some(a) = &d.agent {
            let _ = write!(s, ", agent {a}");
        }
        let _ = writeln!(s, "){}", if d.running { "" } else { " NOT RUNNING" });
        for n in &d.nics {
            let _ = writeln!(
                s,
                "  nic {} driver {} visible {}",
                n.bdf,
                n.driver.as_deref().unwrap_or("-"),
                n.visible.map_or("?", |b| if b { "yes" } else { "no" })
            );
        }
        for b in &d.bridges {
            let _ = writeln!(
                s,
                "  bridge {} uplink {} mtu {}",
                b.name,
                b.uplink.as_deref().unwrap_or("-"),
                b.mtu.map_or("-".to_string(), |m| m.to_string())
            );
            for p in &b.ports {
                let who = match (&p.guest, p.devid) {
                    (Some(g), Some(dv)) => format!(" ({g} vif {dv})"),
                    _ => String::new(),
                };
                let _ = writeln!(
                    s,
                    "    port {}{who} {}{}{}",
                    p.ifname,
                    if p.up { "up" } else { "down" },
                    if p.forwarding { " forwarding" } else { "" },
                    filter_text(p.filter.as_deref(), p.drops.as_ref())
                );
            }
        }
        for x in &d.vifs {
            let _ = writeln!(
                s,
                "  vif {} -> {}/{} mac {} {}/{} hotplug {}{}{}{}",
                x.devid,
                x.backend,
                x.bridge.as_deref().unwrap_or("-"),
                x.mac.map_or("-".to_string(), |m| m.to_string()),
                x.state_frontend.unwrap_or("-"),
                x.state_backend.unwrap_or("-"),
                x.hotplug_status.as_deref().unwrap_or("-"),
                if x.ip.is_empty() {
                    String::new()
                } else {
                    format!(" ip {}", IpCidr::format_list(&x.ip))
                },
                if x.l2_hygiene { "" } else { " l2-hygiene off" },
                filter_text(x.filter.as_deref(), x.drops.as_ref())
            );
        }
        for p in &d.problems {
            let _ = writeln!(s, "  PROBLEM: {p}");
        }
    }
    s
}

/// ` filter l2+ip drops 12 (mac 2, spoof 10)`, or nothing when the filter
/// is not reported.
pub fn filter_text(filter: Option<&str>, drops: Option<&xenbus::agent::PortDrops>) -> String {
    let Some(f) = filter else {
        return String::new();
    };
    let mut s = format!(" filter {f}");
    if let Some(d) = drops {
        let _ = write!(s, " drops {}", d.total);
        let parts: Vec<String> = [
            ("mac", d.mac),
            ("l2ctl", d.l2ctl),
            ("ra", d.ra),
            ("dhcp", d.dhcp),
            ("spoof", d.spoof),
        ]
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
        if !parts.is_empty() {
            let _ = write!(s, " ({})", parts.join(", "));
        }
    }
    s
}

fn dot_id(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                o.push('\\');
                o.push(c);
            }
            c if c.is_control() => o.push(' '),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// A Graphviz graph: domains as clusters, NICs, bridges, vifs with their
/// states; anything failing is red.
pub fn to_dot(v: &HostView) -> String {
    const RED: &str = "color=red, fontcolor=red";
    let mut s = String::from(
        "digraph host {\n  rankdir=LR;\n  node [shape=box, fontname=\"sans-serif\", fontsize=10];\n",
    );
    for (i, d) in v.domains.iter().enumerate() {
        let bad = !d.problems.is_empty();
        let _ = writeln!(s, "  subgraph cluster_{i} {{");
        let id = d.domid.map_or("-".to_string(), |x| x.to_string());
        let mut label = format!("{} ({}, domid {id})", d.name, d.role);
        if let Some(a) = &d.agent {
            label.push_str(&format!("\\nagent {a}"));
        }
        for p in &d.problems {
            label.push_str(&format!("\\n{p}"));
        }
        let _ = writeln!(
            s,
            "    label={}; style=rounded;{}",
            dot_id(&label).replace("\\\\n", "\\n"),
            if bad {
                " color=red; fontcolor=red;"
            } else {
                ""
            }
        );
        let _ = writeln!(
            s,
            "    {} [shape=point, style=invis];",
            dot_id(&format!("dom:{}", d.name))
        );
        for n in &d.nics {
            let ok = n.driver.as_deref() == Some(PCIBACK) && n.visible != Some(false);
            let _ = writeln!(
                s,
                "    {} [label={}, shape=component{}];",
                dot_id(&format!("nic:{}", n.bdf)),
                dot_id(&format!(
                    "NIC {} ({})",
                    n.bdf,
                    n.driver.as_deref().unwrap_or("no driver")
                )),
                if ok {
                    String::new()
                } else {
                    format!(", {RED}")
                }
            );
        }
        for b in &d.bridges {
            let _ = writeln!(
                s,
                "    {} [label={}, shape=ellipse];",
                dot_id(&format!("br:{}:{}", d.name, b.name)),
                dot_id(&format!(
                    "{}{}",
                    b.name,
                    b.mtu.map_or(String::new(), |m| format!(" mtu {m}"))
                ))
            );
        }
        for x in &d.vifs {
            let _ = writeln!(
                s,
                "    {} [label={}, shape=note{}];",
                dot_id(&format!("vif:{}:{}", d.name, x.devid)),
                dot_id(&format!(
                    "vif {} {}\\n{}/{} {}{}",
                    x.devid,
                    x.mac.map_or("-".to_string(), |m| m.to_string()),
                    x.state_frontend.unwrap_or("absent"),
                    x.state_backend.unwrap_or("absent"),
                    x.hotplug_status.as_deref().unwrap_or("-"),
                    match &x.filter {
                        Some(f) => format!(
                            "\\nfilter {f}{}",
                            x.drops
                                .map(|d| format!(", {} dropped", d.total))
                                .unwrap_or_default()
                        ),
                        None => String::new(),
                    }
                ))
                .replace("\\\\n", "\\n"),
                if x.up {
                    String::new()
                } else {
                    format!(", {RED}")
                }
            );
        }
        let _ = writeln!(s, "  }}");
    }
    // Edges: uplinks, vifs to their bridges.
    for d in &v.domains {
        for b in &d.bridges {
            if let Some(u) = &b.uplink {
                let nic = d.nics.iter().find(|n| &n.bdf == u).map(|n| n.bdf.clone());
                if let Some(n) = nic {
                    let _ = writeln!(
                        s,
                        "  {} -> {} [label=\"uplink\"];",
                        dot_id(&format!("nic:{n}")),
                        dot_id(&format!("br:{}:{}", d.name, b.name))
                    );
                } else if d.nics.len() == 1 {
                    let _ = writeln!(
                        s,
                        "  {} -> {} [label={}];",
                        dot_id(&format!("nic:{}", d.nics[0].bdf)),
                        dot_id(&format!("br:{}:{}", d.name, b.name)),
                        dot_id(&format!("uplink {u}"))
                    );
                }
            }
        }
        for x in &d.vifs {
            let Some(br) = &x.bridge else { continue };
            let _ = writeln!(
                s,
                "  {} -> {}{};",
                dot_id(&format!("vif:{}:{}", d.name, x.devid)),
                dot_id(&format!("br:{}:{br}", x.backend)),
                if x.up { "" } else { " [color=red]" }
            );
        }
    }
    s.push_str("}\n");
    s
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&apos;")
        .replace('"', "&quot;")
}

/// libvirt domain XML, one `<domain type='xen'>` document per domain
/// other than dom0: `<hostdev>` for passed-through NICs, `<interface
/// type='bridge'>` with `<backenddomain name='…'/>` for vifs (libvirt's
/// formatdomain: "backenddomain"). Documents are separated by a blank line.
pub fn to_libvirt(v: &HostView) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for d in v.domains.iter().filter(|d| d.role != "dom0") {
        let mut s = String::new();
        let _ = writeln!(s, "<domain type='xen'>");
        let _ = writeln!(s, "  <name>{}</name>", xml(&d.name));
        let _ = writeln!(
            s,
            "  <memory unit='KiB'>{}</memory>",
            d.memory_kib.unwrap_or(131_072)
        );
        let _ = writeln!(s, "  <os>\n    <type>linux</type>\n  </os>");
        let _ = writeln!(s, "  <devices>");
        for n in &d.nics {
            let Ok(b) = n.bdf.parse::<xentypes::Bdf>() else {
                continue;
            };
            let _ = writeln!(
                s,
                "    <hostdev mode='subsystem' type='pci' managed='yes'>\n      <source>\n        \
                 <address domain='0x{:04x}' bus='0x{:02x}' slot='0x{:02x}' function='0x{:x}'/>\n      \
                 </source>\n    </hostdev>",
                b.domain(),
                b.bus(),
                b.device(),
                b.function()
            );
        }
        for x in &d.vifs {
            let _ = writeln!(s, "    <interface type='bridge'>");
            if let Some(m) = x.mac {
                let _ = writeln!(s, "      <mac address='{m}'/>");
            }
            if let Some(b) = &x.bridge {
                let _ = writeln!(s, "      <source bridge='{}'/>", xml(b));
            }
            if x.backend != DOM0 {
                let _ = writeln!(s, "      <backenddomain name='{}'/>", xml(&x.backend));
            }
            for ip in &x.ip {
                let _ = writeln!(
                    s,
                    "      <ip address='{}' prefix='{}'/>",
                    ip.addr(),
                    ip.prefix()
                );
            }
            let _ = writeln!(s, "    </interface>");
        }
        let _ = writeln!(s, "  </devices>\n</domain>");
        out.push((d.name.clone(), s));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LoadOptions, parse_str};

    fn file() -> Topology {
        parse_str(
            "version = 1\n[[driver_domain]]\nname = \"dd\"\nnics = [\"03:00.0\"]\n\
             [[driver_domain.bridge]]\nname = \"xenbr0\"\nuplink = \"03:00.0\"\n\
             [[guest]]\nname = \"web\"\n[[guest.vif]]\nbackend = \"dd\"\nip = [\"192.0.2.1/24\"]\n",
            "h",
            None,
            &LoadOptions::default(),
        )
        .unwrap()
        .topology
    }

    #[test]
    fn an_empty_host_shows_the_file_as_missing() {
        let v = view(&Observed::default(), Some(&file()));
        let names: Vec<&str> = v.domains.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["Domain-0", "dd", "web"]);
        assert!(v.domains[1].problems.contains(&"not running".to_string()));
        assert!(v.domains[2].problems.contains(&"vif 0 absent".to_string()));
        let j = serde_json::to_value(&v).unwrap();
        for k in ["name", "domid", "role", "nics", "bridges", "vifs"] {
            assert!(j["domains"][1].get(k).is_some(), "{k}");
        }
        for k in [
            "devid",
            "backend",
            "bridge",
            "mac",
            "state_frontend",
            "state_backend",
            "hotplug_status",
            "ifname",
            "trusted",
            "ip",
            "mode",
        ] {
            assert!(j["domains"][2]["vifs"][0].get(k).is_some(), "{k}");
        }
        let dot = to_dot(&v);
        assert!(
            dot.starts_with("digraph host {") && dot.ends_with("}\n"),
            "{dot}"
        );
        assert!(dot.contains("color=red"), "{dot}");
        let text = to_text(&v);
        assert!(text.contains("web (guest, domid -) NOT RUNNING"), "{text}");
        let x = to_libvirt(&v);
        assert_eq!(x.len(), 2);
        assert!(
            x[0].1
                .contains("<address domain='0x0000' bus='0x03' slot='0x00' function='0x0'/>")
        );
        assert!(x[1].1.contains("<backenddomain name='dd'/>"), "{}", x[1].1);
        assert!(x[1].1.contains("<source bridge='xenbr0'/>"), "{}", x[1].1);
    }
}
