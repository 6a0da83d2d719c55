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

/// The filter of a port and its drop counters, as the extra fields of the
/// port's JSON node (`"filter":"l2+ip","drops":{"mac":0,...,"total":0}`,
/// without braces); `"filter":"off"` when the vif has none. For the
/// publisher of `data/drvdom/bridges/<name>/ports/<ifname>`.
pub async fn port_filter_fields(hp: &Hotplug, ifname: &str) -> hotplug::Result<String> {
    Ok(match hp.filter_status(ifname).await? {
        Some(st) => st.json_fields(),
        None => "\"filter\":\"off\"".to_string(),
    })
}

/// The filter of a port, as data (`None`: no filter).
pub async fn port_filter(hp: &Hotplug, ifname: &str) -> hotplug::Result<Option<FilterStatus>> {
    hp.filter_status(ifname).await
}
