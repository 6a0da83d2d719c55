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
//! * [`hostfile`]: reading the host file, every SPEC.md §2 check as a
//!   placed, coded diagnostic (derived MACs: `"<guest>/<index>"`).
//! * [`observe`]: domains, devices and the agents' publication from
//!   xenstore, NICs through [`Host::nics`].
//! * [`plan`]: the ordered actions, each with its reason ([`action`]).
//! * [`apply`]: runs them, each idempotent; stops at a failure; resumable.
//! * [`verify`]: every setup step checked, PASS/FAIL with evidence.
//! * [`show`]: the host as text, JSON, Graphviz or libvirt XML.
//! * [`reconcile`]: the dom0 daemon that re-creates guests' vifs when
//!   their driver domain comes back, `vif move`, the event journal.
//! * [`RealHost`] and [`xlconfig`]: the real host (xl, pciback, the
//!   lossless xl.cfg sync).
//!
//! ```
//! let t = topology::parse_str(
//!     "version = 1\n[[driver_domain]]\nname = \"dd\"\n[[driver_domain.bridge]]\nname = \"br0\"\n\
//!      [[guest]]\nname = \"web\"\n[[guest.vif]]\nbackend = \"dd\"\n",
//!     "host.toml", None, &topology::LoadOptions::default(),
//! ).unwrap().topology;
//! assert_eq!(t.guests[0].vifs[0].bridge.as_deref(), Some("br0"));
//! assert_eq!(t.guests[0].vifs[0].mac, xentypes::MacAddr::derived_xen(b"web/0"));
//! ```
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
pub mod reconcile;
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
