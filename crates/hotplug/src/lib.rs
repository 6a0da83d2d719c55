//! Host networking for the driver-domain agent: bridge bring-up, native vif
//! hotplug over rtnetlink, bridge listing, and a runner for legacy Xen
//! hotplug scripts.
//!
//! Everything acts on the **current** network namespace (the namespace of
//! the thread that opened the [`NetlinkOps`] socket, or that spawns a
//! script). The crate knows nothing about xenstore: the agent reads the
//! backend keys, calls in here, and writes `hotplug-status` /
//! `hotplug-error` from the result. It never creates or deletes vifs (that
//! is netback's job), and never touches interfaces other than the ones it
//! is named.
//!
//! Data flow: agent → [`Hotplug`] → [`LinkOps`] → netlink.
//!
//! ```no_run
//! # async fn demo() -> hotplug::Result<()> {
//! use hotplug::{BridgeConfig, Hotplug, VifOnline};
//! let hp = Hotplug::connect()?;
//! hp.bridge_up(&BridgeConfig { bridge: "xenbr0".into(), uplink: Some("eth0".into()) }).await?;
//! match hp.vif_online(&VifOnline::new("vif5.0")).await {
//!     Ok(_) => { /* hotplug-status = connected */ }
//!     Err(e) => { let _reason = e.to_string(); /* hotplug-error */ }
//! }
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

mod bridge;
mod error;
pub mod filter;
mod hotplug;
mod monitor;
mod netlink;
mod ops;
mod route;
mod script;
mod vif;

pub use bridge::{
    BridgeConfig, BridgeInfo, BridgeReport, DEFAULT_BRIDGE, PortInfo, bridge_ports, bridge_up,
    bridges,
};
pub use error::{Error, Result};
pub use filter::{DropCounters, DropReason, FilterMode, FilterSpec, FilterStatus};
pub use hotplug::Hotplug;
pub use monitor::{LinkEvents, LinkState, LinkUpdate, decode_updates, delete_bridge, link_states};
pub use netlink::NetlinkOps;
pub use ops::{
    FdbEntry, IFNAMSIZ, IfAddress, Link, LinkChange, LinkOps, Master, OperState, PortSettings,
    Route, validate_ifname,
};
pub use route::DEFAULT_GATEWAY;
pub use script::{DEFAULT_SCRIPT_TIMEOUT, ScriptAction, ScriptOutcome, ScriptRun, run_script};
pub use vif::{
    DEFAULT_LINK_TIMEOUT, VIF_MAC, VifConnected, VifMode, VifOffline, VifOnline, vif_offline,
    vif_online,
};
