//! Native vif hotplug: what Xen's `vif-bridge online|offline` does
//! [tools/hotplug/Linux/vif-bridge, vif-common.sh, xen-network-common.sh],
//! in a few netlink requests instead of a dozen `ip`/`brctl` processes.

use std::time::Duration;

use tracing::{debug, info, instrument};

use crate::bridge::{DEFAULT_BRIDGE, require_bridge};
use crate::error::{Error, Result};
use crate::filter::{FilterMode, FilterSpec};
use crate::route;
use xentypes::{IpCidr, MacAddr};

use crate::ops::{Link, LinkChange, LinkOps, Master, PortSettings, validate_ifname};

/// The MAC every backend vif gets, so that the bridge never adopts a
/// guest-facing address as its own (`setup_virtual_bridge_port` in
/// tools/hotplug/Linux/xen-network-common.sh).
pub const VIF_MAC: MacAddr = MacAddr::BACKEND;

/// Default time to wait for the vif to appear. Netback creates the
/// interface before it switches to InitWait, so normally it is already
/// there; 10 s matches libxl's `LIBXL_INIT_TIMEOUT` [libxl_internal.h].
pub const DEFAULT_LINK_TIMEOUT: Duration = Duration::from_secs(10);

/// How the vif reaches the network.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum VifMode {
    /// A port of a bridge (`vif-bridge`).
    #[default]
    Bridge,
    /// Routed (`vif-route`): no bridge; the vif gets the IPv4 address of
    /// `gateway` (default `eth0`, xl's `gatewaydev`), proxy ARP and
    /// forwarding, and a host route per allowed address.
    Route {
        /// The device whose address the vif borrows (`netdev`).
        gateway: Option<String>,
    },
}

/// A request to bring a vif online.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VifOnline {
    /// Backend interface name, e.g. `vif5.0` (or the `vifname` key).
    pub vif: String,
    /// Bridge (backend `bridge` key); `None` = [`DEFAULT_BRIDGE`].
    pub bridge: Option<String>,
    /// MTU (backend `mtu` key); `None` = the bridge's MTU.
    pub mtu: Option<u32>,
    /// Rename the interface to this (backend `vifname` key), as vif-bridge
    /// does; `None` keeps netback's name.
    pub rename: Option<String>,
    /// How long to wait for the interface to appear.
    pub link_timeout: Duration,
    /// The guest's MAC (backend `mac`); required for the filter.
    pub mac: Option<MacAddr>,
    /// Layer-2 hygiene (default on): see [`crate::filter`]; on a bridge
    /// also learning off, `locked` and a static sticky FDB entry.
    pub l2: bool,
    /// Anti-spoofing allow-list (backend `ip`).
    pub ip: Option<Vec<IpCidr>>,
    /// Bridged (default) or routed.
    pub mode: VifMode,
}

impl VifOnline {
    /// A request with the default bridge, the bridge's MTU and the default
    /// timeout, hygiene on, no `ip`. Without [`VifOnline::guest_mac`] the
    /// hygiene cannot be applied: set it, or relax with `l2(false)`.
    pub fn new(vif: impl Into<String>) -> Self {
        VifOnline {
            vif: vif.into(),
            bridge: None,
            mtu: None,
            rename: None,
            link_timeout: DEFAULT_LINK_TIMEOUT,
            mac: None,
            l2: true,
            ip: None,
            mode: VifMode::Bridge,
        }
    }

    /// Set the guest's MAC.
    pub fn guest_mac(mut self, mac: MacAddr) -> Self {
        self.mac = Some(mac);
        self
    }

    /// Turn layer-2 hygiene on or off.
    pub fn l2(mut self, on: bool) -> Self {
        self.l2 = on;
        self
    }

    /// Set the anti-spoofing allow-list.
    pub fn ip(mut self, ip: Vec<IpCidr>) -> Self {
        self.ip = Some(ip);
        self
    }

    /// Routed instead of bridged.
    pub fn routed(mut self, gateway: Option<String>) -> Self {
        self.mode = VifMode::Route { gateway };
        self
    }

    /// The filter for the vif once it has its final name; `None` when off.
    pub(crate) fn filter_spec(&self, ifname: &str) -> Result<Option<FilterSpec>> {
        if !self.l2 && self.ip.is_none() {
            return Ok(None);
        }
        let mac = self.mac.ok_or_else(|| Error::MissingMac {
            name: ifname.to_string(),
        })?;
        Ok(Some(FilterSpec {
            ifname: ifname.to_string(),
            mac,
            l2: self.l2,
            ip: self.ip.clone(),
        }))
    }

    /// Rename the interface (backend `vifname` key).
    pub fn rename(mut self, name: impl Into<String>) -> Self {
        self.rename = Some(name.into());
        self
    }

    /// Set the bridge.
    pub fn bridge(mut self, bridge: impl Into<String>) -> Self {
        self.bridge = Some(bridge.into());
        self
    }

    /// Set the MTU.
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = Some(mtu);
        self
    }

    /// Set how long to wait for the interface.
    pub fn link_timeout(mut self, t: Duration) -> Self {
        self.link_timeout = t;
        self
    }

    fn bridge_name(&self) -> &str {
        self.bridge.as_deref().unwrap_or(DEFAULT_BRIDGE)
    }
}

/// A vif that is up on its bridge: the agent writes `hotplug-status =
/// connected` on receiving this.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VifConnected {
    /// Interface name.
    pub vif: String,
    /// Interface index.
    pub index: u32,
    /// Bridge it is a port of.
    pub bridge: String,
    /// MTU applied.
    pub mtu: u32,
    /// False when everything was already in place (a replay after restart).
    pub changed: bool,
    /// The filter in force.
    pub filter: FilterMode,
    /// Routed (no bridge; `bridge` is empty).
    pub routed: bool,
}

/// What [`vif_offline`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum VifOffline {
    /// Removed from its bridge and/or brought down.
    Detached,
    /// It was already down and on no bridge.
    AlreadyDetached,
    /// The interface no longer exists (netback removed it).
    Gone,
}

/// Bring a vif online: wait for it, rename it, put its filter in place
/// (before it can pass a frame), then as `vif-bridge` set MTU, MAC
/// `fe:ff:ff:ff:ff:ff` and master, with hygiene turn learning off, lock the
/// port and pin the guest's MAC to it, bring it up and verify. Routed vifs
/// are configured as `vif-route` does instead. Idempotent: a re-run only checks (and
/// replaces a filter whose spec changed, atomically).
///
/// On error, `err.to_string()` is the `hotplug-error` text.
#[instrument(skip_all, fields(vif = %req.vif, bridge = req.bridge_name()))]
pub async fn vif_online<O: LinkOps>(ops: &O, req: &VifOnline) -> Result<VifConnected> {
    validate_ifname(&req.vif)?;
    if let Some(new) = &req.rename {
        validate_ifname(new)?;
    }
    let routed = matches!(req.mode, VifMode::Route { .. });
    let bridge_name = req.bridge_name();
    if !routed {
        validate_ifname(bridge_name)?;
    }

    let mut link = find_vif(ops, req).await?;
    let bridge = if routed {
        None
    } else {
        Some(require_bridge(ops, bridge_name).await?)
    };
    let rename = match &req.rename {
        Some(new) if *new != link.name => {
            if ops.link_by_name(new).await?.is_some() {
                return Err(Error::NameTaken {
                    name: link.name.clone(),
                    to: new.clone(),
                });
            }
            Some(new.clone())
        }
        _ => None,
    };
    let final_name = rename.clone().unwrap_or_else(|| link.name.clone());
    let spec = req.filter_spec(&final_name)?;

    // vif-bridge takes the link down before changing the MAC (drivers
    // without IFF_LIVE_ADDR_CHANGE refuse a new address while up), and the
    // kernel refuses to rename an up interface (EBUSY).
    let mut changed = false;
    let wants_mac = !routed && link.mac != Some(VIF_MAC);
    if link.admin_up && (wants_mac || rename.is_some()) {
        ops.set_link(&link, &LinkChange::down()).await?;
        link.admin_up = false;
        changed = true;
    }
    if let Some(new) = rename {
        // Renamed on its own first, so the filter hooks the final name.
        let change = LinkChange {
            name: Some(new.clone()),
            ..LinkChange::default()
        };
        ops.set_link(&link, &change).await?;
        link.name = new;
        changed = true;
    }
    // The filter goes in while the link is still down (or, on a replay,
    // replaces the old one atomically): no frame passes unfiltered.
    let mut relaxed = false;
    match &spec {
        Some(s) => changed |= ops.install_filter(s).await?,
        None => {
            relaxed = ops.remove_filter(&link.name).await?;
            changed |= relaxed;
        }
    }
    if let Some(gw) = match &req.mode {
        VifMode::Route { gateway } => Some(gateway.as_deref()),
        VifMode::Bridge => None,
    } {
        let r = route::online(ops, req, &link, gw).await?;
        return Ok(VifConnected {
            vif: link.name,
            index: link.index,
            bridge: String::new(),
            mtu: r.mtu,
            changed: changed || r.changed,
            filter: spec.map_or(FilterMode::Off, |s| s.mode()),
            routed: true,
        });
    }
    let Some(bridge) = bridge else {
        return Err(Error::BridgeMissing {
            bridge: bridge_name.to_string(),
        });
    };
    let mtu = req.mtu.unwrap_or(bridge.mtu);
    let enslave = link.master != Some(bridge.index);
    let change = LinkChange {
        mtu: (link.mtu != mtu).then_some(mtu),
        mac: wants_mac.then_some(VIF_MAC),
        master: enslave.then_some(Master::Set(bridge.index)),
        // With hygiene the port is set up first, then brought up below.
        up: (!req.l2 && (!link.admin_up || changed)).then_some(true),
        ..LinkChange::default()
    };
    if !change.is_empty() {
        debug!(%change, "configuring vif");
        ops.set_link(&link, &change).await?;
        changed = true;
    }
    if relaxed && !req.l2 && link.master == Some(bridge.index) {
        // Hygiene was just relaxed on a port that had it: learn again,
        // unlock (the pinned MAC entry goes with the next detach).
        ops.set_port(
            &link,
            PortSettings {
                learning: true,
                locked: false,
            },
        )
        .await?;
    }
    if req.l2 {
        let now = ops
            .link_by_index(link.index)
            .await?
            .ok_or_else(|| Error::LinkVanished {
                name: link.name.clone(),
            })?;
        // Nothing is learned from the guest's port: its one MAC is pinned
        // there (static, sticky: another port's frames cannot move it), and
        // the locked port takes frames from that MAC only.
        ops.set_port(
            &now,
            PortSettings {
                learning: false,
                locked: true,
            },
        )
        .await?;
        if let Some(mac) = req.mac {
            ops.add_static_fdb(&now, mac).await?;
        }
        if !now.admin_up {
            ops.set_link(&now, &LinkChange::up()).await?;
            changed = true;
        }
    }

    let now = ops
        .link_by_index(link.index)
        .await?
        .ok_or_else(|| Error::LinkVanished {
            name: link.name.clone(),
        })?;
    verify(&now, mtu, &bridge)?;
    let filter = spec.map_or(FilterMode::Off, |s| s.mode());
    info!(mtu, changed, %filter, "vif connected");
    Ok(VifConnected {
        vif: now.name,
        index: now.index,
        bridge: bridge.name,
        mtu,
        changed,
        filter,
        routed: false,
    })
}

/// Find the vif: by netback's name, or, on a replay after a restart, by
/// the name it was already renamed to; otherwise wait for netback's name.
async fn find_vif<O: LinkOps>(ops: &O, req: &VifOnline) -> Result<Link> {
    if let Some(new) = &req.rename {
        if ops.link_by_name(&req.vif).await?.is_none() {
            if let Some(l) = ops.link_by_name(new).await? {
                return Ok(l);
            }
        }
    }
    ops.wait_for_link(&req.vif, req.link_timeout).await
}

fn verify(l: &Link, mtu: u32, bridge: &Link) -> Result<()> {
    let fail = |what, wanted: String, got: String| {
        Err(Error::Verify {
            name: l.name.clone(),
            what,
            wanted,
            got,
        })
    };
    if l.mtu != mtu {
        return fail("mtu", mtu.to_string(), l.mtu.to_string());
    }
    if l.mac != Some(VIF_MAC) {
        let got = l.mac.map_or_else(|| "none".to_string(), |m| m.to_string());
        return fail("mac", VIF_MAC.to_string(), got);
    }
    if l.master != Some(bridge.index) {
        let got = l
            .master
            .map_or_else(|| "none".to_string(), |m| format!("#{m}"));
        return fail("master", bridge.name.clone(), got);
    }
    if !l.admin_up {
        return fail("state", "up".to_string(), "down".to_string());
    }
    Ok(())
}

/// Take a vif offline: bring it down and remove it from its bridge (as
/// `vif-bridge offline`), or for a routed vif remove its routes and
/// addresses (as `vif-route offline`); then remove its filter. A vanished
/// interface is not an error.
#[instrument(skip_all, fields(vif = %vif))]
pub async fn vif_offline<O: LinkOps>(ops: &O, vif: &str) -> Result<VifOffline> {
    validate_ifname(vif)?;
    let Some(link) = ops.link_by_name(vif).await? else {
        debug!("vif already gone");
        // Its filter table outlives it (chains, counters): remove it.
        ops.remove_filter(vif).await?;
        return Ok(VifOffline::Gone);
    };
    let change = LinkChange {
        master: link.master.map(|_| Master::Detach),
        up: link.admin_up.then_some(false),
        ..LinkChange::default()
    };
    let mut result = VifOffline::AlreadyDetached;
    if !change.is_empty() {
        match ops.set_link(&link, &change).await {
            Ok(()) => {
                info!("vif detached");
                result = VifOffline::Detached;
            }
            Err(Error::LinkVanished { .. }) => result = VifOffline::Gone,
            Err(e) => return Err(e),
        }
    }
    if link.master.is_none() && result != VifOffline::Gone && route::offline(ops, &link).await? {
        result = VifOffline::Detached;
    }
    if ops.remove_filter(vif).await? && result == VifOffline::AlreadyDetached {
        result = VifOffline::Detached;
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::FilterStatus;
    use crate::ops::{FdbEntry, IfAddress, OperState, Route};
    use std::sync::Mutex;

    /// A recording fake with a tiny in-memory link table.
    #[derive(Default)]
    struct Fake {
        links: Mutex<Vec<Link>>,
        calls: Mutex<Vec<String>>,
        /// (ifname, userdata) of installed filters.
        filters: Mutex<Vec<(String, String)>>,
    }

    fn link(index: u32, name: &str, kind: Option<&str>) -> Link {
        Link {
            index,
            name: name.into(),
            kind: kind.map(str::to_string),
            mtu: 1500,
            mac: Some(MacAddr([0, 0x16, 0x3e, 0, 0, index as u8])),
            master: None,
            admin_up: false,
            oper: OperState::Down,
        }
    }

    impl LinkOps for Fake {
        async fn link_by_name(&self, name: &str) -> Result<Option<Link>> {
            Ok(self
                .links
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.name == name)
                .cloned())
        }
        async fn link_by_index(&self, index: u32) -> Result<Option<Link>> {
            Ok(self
                .links
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.index == index)
                .cloned())
        }
        async fn links(&self) -> Result<Vec<Link>> {
            Ok(self.links.lock().unwrap().clone())
        }
        async fn wait_for_link(&self, name: &str, timeout: Duration) -> Result<Link> {
            self.link_by_name(name).await?.ok_or(Error::LinkTimeout {
                name: name.into(),
                timeout,
            })
        }
        async fn create_bridge(&self, _: &str, _: Option<MacAddr>) -> Result<()> {
            unimplemented!()
        }
        async fn set_link(&self, l: &Link, c: &LinkChange) -> Result<()> {
            self.calls.lock().unwrap().push(format!("{} {c}", l.name));
            let mut links = self.links.lock().unwrap();
            let t = links.iter_mut().find(|x| x.index == l.index).unwrap();
            if let Some(n) = &c.name {
                t.name = n.clone();
            }
            if let Some(m) = c.mtu {
                t.mtu = m;
            }
            if let Some(m) = c.mac {
                t.mac = Some(m);
            }
            match c.master {
                Some(Master::Set(i)) => t.master = Some(i),
                Some(Master::Detach) => t.master = None,
                None => {}
            }
            if let Some(u) = c.up {
                t.admin_up = u;
            }
            Ok(())
        }
        async fn addresses(&self, _: &Link) -> Result<Vec<IfAddress>> {
            Ok(vec![])
        }
        async fn add_address(&self, _: &Link, _: &IfAddress) -> Result<()> {
            Ok(())
        }
        async fn del_address(&self, _: &Link, _: &IfAddress) -> Result<()> {
            Ok(())
        }
        async fn routes(&self, _: &Link) -> Result<Vec<Route>> {
            Ok(vec![])
        }
        async fn add_route(&self, _: &Route) -> Result<()> {
            Ok(())
        }
        async fn del_route(&self, _: &Route) -> Result<()> {
            Ok(())
        }
        async fn set_port(&self, l: &Link, p: PortSettings) -> Result<()> {
            self.calls.lock().unwrap().push(format!(
                "{} learning {} locked {}",
                l.name, p.learning, p.locked
            ));
            Ok(())
        }
        async fn add_static_fdb(&self, l: &Link, mac: MacAddr) -> Result<()> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("{} fdb {mac}", l.name));
            Ok(())
        }
        async fn fdb(&self, _: &Link) -> Result<Vec<FdbEntry>> {
            Ok(vec![])
        }
        async fn set_ipv4_conf(&self, _: &Link, _: bool, _: bool) -> Result<()> {
            Ok(())
        }
        async fn install_filter(&self, spec: &FilterSpec) -> Result<bool> {
            let mut f = self.filters.lock().unwrap();
            let ud = spec.userdata();
            if f.iter().any(|(n, u)| *n == spec.ifname && *u == ud) {
                return Ok(false);
            }
            f.retain(|(n, _)| *n != spec.ifname);
            f.push((spec.ifname.clone(), ud));
            self.calls
                .lock()
                .unwrap()
                .push(format!("{} filter {}", spec.ifname, spec.mode()));
            Ok(true)
        }
        async fn remove_filter(&self, ifname: &str) -> Result<bool> {
            let mut f = self.filters.lock().unwrap();
            let before = f.len();
            f.retain(|(n, _)| n != ifname);
            if f.len() != before {
                self.calls
                    .lock()
                    .unwrap()
                    .push(format!("{ifname} unfilter"));
            }
            Ok(f.len() != before)
        }
        async fn filter_status(&self, _: &str) -> Result<Option<FilterStatus>> {
            Ok(None)
        }
        async fn filter_statuses(&self) -> Result<Vec<FilterStatus>> {
            Ok(vec![])
        }
        async fn filtered(&self) -> Result<Vec<String>> {
            Ok(self
                .filters
                .lock()
                .unwrap()
                .iter()
                .map(|(n, _)| n.clone())
                .collect())
        }
    }

    fn fake() -> Fake {
        let f = Fake::default();
        let mut br = link(1, "xenbr0", Some("bridge"));
        br.mtu = 9000;
        f.links
            .lock()
            .unwrap()
            .extend([br, link(2, "vif5.0", Some("veth"))]);
        f
    }

    #[tokio::test]
    async fn online_configures_in_one_request_then_is_a_no_op() {
        let f = fake();
        let r = vif_online(&f, &VifOnline::new("vif5.0").l2(false))
            .await
            .unwrap();
        assert_eq!((r.mtu, r.changed), (9000, true));
        assert_eq!(
            f.calls.lock().unwrap().as_slice(),
            ["vif5.0 mtu 9000 address fe:ff:ff:ff:ff:ff master #1 up"]
        );
        let again = vif_online(&f, &VifOnline::new("vif5.0").l2(false))
            .await
            .unwrap();
        assert!(!again.changed);
        assert_eq!(
            f.calls.lock().unwrap().len(),
            1,
            "re-run must not touch the link"
        );
    }

    #[tokio::test]
    async fn online_takes_an_up_link_down_before_changing_its_mac() {
        let f = fake();
        f.links.lock().unwrap()[1].admin_up = true;
        vif_online(&f, &VifOnline::new("vif5.0").l2(false).mtu(1400))
            .await
            .unwrap();
        assert_eq!(
            f.calls.lock().unwrap().as_slice(),
            [
                "vif5.0 down",
                "vif5.0 mtu 1400 address fe:ff:ff:ff:ff:ff master #1 up"
            ]
        );
    }

    #[tokio::test]
    async fn online_names_a_missing_or_wrong_bridge() {
        let f = fake();
        let e = vif_online(&f, &VifOnline::new("vif5.0").l2(false).rename("xenbr0"))
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot rename vif5.0 to xenbr0: xenbr0 already exists"
        );
        let e = vif_online(&f, &VifOnline::new("vif5.0").l2(false).bridge("xenbr1"))
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "bridge xenbr1 does not exist");
        let e = vif_online(&f, &VifOnline::new("vif5.0").l2(false).bridge("vif5.0"))
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "vif5.0 exists but is not a bridge (kind veth)"
        );
        assert!(f.calls.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn online_renames_and_a_replay_finds_the_renamed_vif() {
        let f = fake();
        f.links.lock().unwrap()[1].admin_up = true;
        let req = VifOnline::new("vif5.0").l2(false).rename("web0");
        let r = vif_online(&f, &req).await.unwrap();
        assert_eq!(r.vif, "web0");
        assert_eq!(
            f.calls.lock().unwrap().as_slice(),
            [
                "vif5.0 down",
                "vif5.0 name web0",
                "web0 mtu 9000 address fe:ff:ff:ff:ff:ff master #1 up"
            ]
        );
        let again = vif_online(&f, &req).await.unwrap();
        assert!(!again.changed);
        assert_eq!(f.calls.lock().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn hygiene_filters_before_enslaving_and_pins_the_mac_before_up() {
        let f = fake();
        f.links.lock().unwrap()[1].admin_up = true;
        let mac: MacAddr = "00:16:3e:00:00:05".parse().unwrap();
        let req = VifOnline::new("vif5.0")
            .rename("web0")
            .guest_mac(mac)
            .ip(IpCidr::parse_list("192.0.2.5").unwrap());
        let r = vif_online(&f, &req).await.unwrap();
        assert_eq!(r.filter, FilterMode::L2Ip);
        assert_eq!(
            f.calls.lock().unwrap().as_slice(),
            [
                "vif5.0 down",
                "vif5.0 name web0",
                "web0 filter l2+ip",
                "web0 mtu 9000 address fe:ff:ff:ff:ff:ff master #1",
                "web0 learning false locked true",
                "web0 fdb 00:16:3e:00:00:05",
                "web0 up",
            ]
        );
        // A replay keeps the filter, re-asserts the port settings only.
        let again = vif_online(&f, &req).await.unwrap();
        assert!(!again.changed);
        assert_eq!(f.calls.lock().unwrap().len(), 9);
        // Offline: detach, then drop the filter.
        assert_eq!(vif_offline(&f, "web0").await.unwrap(), VifOffline::Detached);
        assert_eq!(
            f.calls.lock().unwrap()[9..],
            ["web0 nomaster down", "web0 unfilter"]
        );
    }

    #[tokio::test]
    async fn hygiene_without_a_mac_is_refused_before_touching_the_link() {
        let f = fake();
        let e = vif_online(&f, &VifOnline::new("vif5.0")).await.unwrap_err();
        assert!(matches!(e, Error::MissingMac { .. }), "{e}");
        assert!(f.calls.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn offline_detaches_once_and_tolerates_absence() {
        let f = fake();
        vif_online(&f, &VifOnline::new("vif5.0").l2(false))
            .await
            .unwrap();
        assert_eq!(
            vif_offline(&f, "vif5.0").await.unwrap(),
            VifOffline::Detached
        );
        assert_eq!(
            vif_offline(&f, "vif5.0").await.unwrap(),
            VifOffline::AlreadyDetached
        );
        assert_eq!(vif_offline(&f, "vif9.9").await.unwrap(), VifOffline::Gone);
        assert_eq!(
            f.calls.lock().unwrap().last().unwrap(),
            "vif5.0 nomaster down"
        );
    }
}
