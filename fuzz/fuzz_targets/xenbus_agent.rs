//! Fuzz what dom0 parses from a driver domain's publication and what the
//! agent parses from dom0's settings (`xenbus::agent`): node names that
//! encode interface names, port objects (JSON written by the driver
//! domain), uplink and agent-state values. None may panic; a decoded node
//! name encodes back to the same node.
#![no_main]

use libfuzzer_sys::{Corpus, fuzz_target};
use xenbus::agent::{AgentState, PortRecord, UplinkSetting, ifname_of_node, node_name};

fuzz_target!(|data: &[u8]| -> Corpus {
    let _ = PortRecord::from_json(data);
    let _ = UplinkSetting::parse(data);
    let _ = AgentState::parse(data);
    let Ok(s) = std::str::from_utf8(data) else {
        return Corpus::Keep;
    };
    if let Some(name) = ifname_of_node(s) {
        assert_eq!(node_name(&name), s);
    }
    assert_eq!(ifname_of_node(&node_name(s)).as_deref(), Some(s));
    Corpus::Keep
});
