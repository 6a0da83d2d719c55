//! The drvdom toolstack: one host file describes a host's driver domains,
//! their NICs and bridges, and the guests whose vifs they serve
//! (`shared/spec/topology/SPEC.md`); this crate plans, applies, verifies
//! and destroys it on any [`Host`].
//!
//! * [`model`]: the desired host, validated, every default resolved.
//! * [`observed`]: the host as it is.
//! * [`host`]: the [`Host`] trait — what differs between a real Xen host
//!   (xl, pciback, the host's xenstore) and the simulated one (crate
//!   `sim`). Everything that is the same on both (vifs, bridges' desired
//!   state, permissions: all xenstore) lives here, not behind the trait.
//! * [`action`]: the steps of a plan.
//!
//! Dependencies: this crate knows no simulator.

#![forbid(unsafe_code)]

pub mod action;
pub mod apply;
mod check;
mod error;
pub mod host;
pub mod hostfile;
pub mod model;
pub mod observe;
pub mod observed;
pub mod plan;
mod real;
pub mod show;
pub mod verify;
pub mod xlconfig;

pub use action::{Action, ActionKind};
pub use error::{Error, Result};
pub use host::{DomainRole, Host, HostKind, ProbeOutcome, ProbeTarget};
pub use hostfile::{LoadOptions, Loaded, load, parse_str};
pub use model::{Bridge, DriverDomain, Guest, Topology, Uplink, Vif, VifMode};
pub use observed::{
    AgentStatus, Observed, ObservedBridge, ObservedDomain, ObservedNic, ObservedPort, ObservedVif,
};
pub use real::{RealHost, RealHostConfig};
