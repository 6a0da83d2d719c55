//! The per-vif filter, seen from the agent: how a backend directory turns
//! into a [`VifOnline`] request (mode, MAC, hygiene switch, allow-list), and
//! what the agent reports about a port's filter.
//!
//! Trust boundary: everything comes from the backend directory, which dom0
//! writes and the guest may only read. The guest MAC is the backend's `mac`
//! (libxl writes the same value to the frontend, but the frontend copy is
//! guest-writable and never read); the relax switch is the backend's
//! `drvdom-l2-hygiene` (a guest cannot turn its own filter off).

use hotplug::{FilterStatus, Hotplug, VifOnline};
use xenbus::agent::PortDrops;
use xenbus::{BackendPath, VifSettings};

/// The native online request for a vif's validated backend settings
/// (`default_bridge` when the backend names none).
pub fn online_request(bp: &BackendPath, s: &VifSettings, default_bridge: &str) -> VifOnline {
    let mut req = VifOnline::new(bp.default_vif_name())
        .bridge(
            s.bridge
                .clone()
                .unwrap_or_else(|| default_bridge.to_string()),
        )
        .l2(s.l2_hygiene);
    if let Some(mac) = s.mac {
        req = req.guest_mac(mac);
    }
    if let Some(list) = &s.addresses {
        req = req.ip(list.clone());
    }
    if s.is_route_script() {
        req = req.routed(s.gatewaydev.clone());
    }
    req
}

/// The drop counters of a filter as the port record publishes them
/// (`"drops":{"mac":..,"l2ctl":..,"ra":..,"dhcp":..,"spoof":..,"total":..}`
/// next to `"filter":"l2+ip"` in `data/drvdom/bridges/<br>/ports/<ifname>`).
pub fn port_drops(st: &FilterStatus) -> PortDrops {
    let d = &st.drops;
    PortDrops {
        mac: d.mac,
        l2ctl: d.l2ctl,
        ra: d.ra,
        dhcp: d.dhcp,
        spoof: d.spoof,
        total: d.total(),
    }
}

/// The filter of a port and its counters (`None`: no filter).
pub async fn port_filter(hp: &Hotplug, ifname: &str) -> hotplug::Result<Option<FilterStatus>> {
    hp.filter_status(ifname).await
}
