//! The xenstore schema between the toolstack and a driver domain's agent
//! (AGENT_XS_SCHEMA.md, fixed by the lead): what dom0 writes for the agent,
//! what the agent publishes for dom0.
//!
//! Trust: everything under `data/drvdom` is written by the driver domain
//! and parsed defensively here (length limits, no panics); a malformed
//! value shows up as "unknown" in reports, never as an error of dom0.

use serde::Deserialize;
use xentypes::{DevId, DomId};

/// `/local/domain/<dd>/drvdom`: dom0-owned, readable by the driver domain.
pub fn drvdom_dir(dd: DomId) -> String {
    format!("{}/drvdom", dd.path())
}

/// `/local/domain/<dd>/drvdom/config/bridges`: the desired bridges.
pub fn config_bridges_dir(dd: DomId) -> String {
    format!("{}/drvdom/config/bridges", dd.path())
}

/// `/local/domain/<dd>/data/drvdom`: what the agent publishes.
pub fn published_dir(dd: DomId) -> String {
    format!("{}/data/drvdom", dd.path())
}

/// `.../data/drvdom/agent`.
pub fn agent_dir(dd: DomId) -> String {
    format!("{}/data/drvdom/agent", dd.path())
}

/// `.../data/drvdom/bridges`.
pub fn published_bridges_dir(dd: DomId) -> String {
    format!("{}/data/drvdom/bridges", dd.path())
}

/// The agent's `state` once replay is done and every configured bridge
/// is built.
pub const AGENT_READY: &str = "ready";

/// Longest published value we read (a port object is tiny).
pub const MAX_VALUE: usize = 4096;

/// One port node's JSON object (unknown fields ignored).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct PortNode {
    /// `[frontend domid, devid]`, absent for the uplink.
    #[serde(default)]
    pub vif: Option<(u16, u32)>,
    /// Link up.
    #[serde(default)]
    pub up: bool,
    /// Forwarding.
    #[serde(default)]
    pub fwd: bool,
}

impl PortNode {
    /// Parse a port node's value; `None` if it is not the expected JSON.
    pub fn parse(raw: &[u8]) -> Option<PortNode> {
        if raw.len() > MAX_VALUE {
            return None;
        }
        serde_json::from_slice(raw).ok()
    }

    /// The vif as typed ids.
    pub fn vif_ids(&self) -> Option<(DomId, DevId)> {
        self.vif.map(|(d, v)| (DomId(d), DevId(v)))
    }
}

/// A short, printable rendering of a value another domain wrote.
pub fn text(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(&raw[..raw.len().min(256)]);
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            config_bridges_dir(DomId(3)),
            "/local/domain/3/drvdom/config/bridges"
        );
        assert_eq!(agent_dir(DomId(3)), "/local/domain/3/data/drvdom/agent");
    }

    #[test]
    fn ports_parse_leniently() {
        let p = PortNode::parse(br#"{"vif":[5,0],"up":true,"fwd":true,"filter":"x"}"#).unwrap();
        assert_eq!(p.vif_ids(), Some((DomId(5), DevId(0))));
        assert!(p.up && p.fwd);
        let u = PortNode::parse(br#"{"up":true,"fwd":false}"#).unwrap();
        assert_eq!(u.vif, None);
        assert!(PortNode::parse(b"garbage").is_none());
        assert!(PortNode::parse(br#"{"vif":[70000,0]}"#).is_none());
        assert_eq!(text(b"a\x01b "), "a?b");
    }
}
