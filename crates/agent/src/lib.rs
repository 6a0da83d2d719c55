//! `drvdom-agent`: the hotplug agent that runs inside a driver domain, in
//! place of `xl devd` + the `vif-bridge` scripts.
//!
//! It keeps one watch on `/local/domain/<self>/backend`, replays every
//! device already there at start (so a restart converges), and runs one
//! task per vif: wait for InitWait, bring the vif onto its bridge over
//! netlink (or run a legacy script), write `hotplug-status`; on Closed with
//! `online` = 0, take it offline and remove the backend directory
//! (DEVICES.md §5).
//!
//! It also builds the bridges dom0 asks for
//! (`/local/domain/<self>/drvdom/config`, watched) besides the one given on
//! its command line, and publishes its state and every bridge with its
//! ports under `/local/domain/<self>/data/drvdom` for dom0 to read
//! (`AGENT_XS_SCHEMA.md`; paths in `xenbus::agent`).
//!
//! It must never act on another domain's devices or trust guest data: it
//! reads only its own backend directory, validates every value, and turns
//! bad input into that device's `hotplug-error`. On shutdown it leaves
//! devices as they are.
//!
//! Data flow: xenstore → agent → hotplug → netlink.
//!
//! ```no_run
//! # async fn f() -> agent::Result<()> {
//! let cfg = agent::AgentConfig::default();
//! agent::run(cfg, async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```

#![forbid(unsafe_code)]

mod agent;
mod bridges;
mod config;
mod device;
mod error;
mod host;
mod manage;
mod publish;

pub use agent::{connect, own_domid, run};
pub use config::{AgentConfig, LegacyMode};
pub use error::{Error, Result};
pub use host::{HostKind, PROC_XEN_REL, XENBUS_DEVICE_REL, probe_host};
