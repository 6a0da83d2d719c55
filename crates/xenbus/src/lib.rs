//! The libxl xenbus device model for drvdom: XenbusState, the frontend /
//! backend / `/libxl` layout of `vif` and `pci` devices with libxl's keys,
//! defaults and permissions, and attach / detach / list / wait operations.
//!
//! Sits between the toolstack (CLI, topology, simulator) and the xenstore
//! client; the agent uses it to read backend directories. It never talks to
//! the kernel, never prints, and never trusts values read from xenstore:
//! every parser here returns an error instead of panicking.
//! The layout follows `shared/spec/xenstore/DEVICES.md` (Xen 4.17 libxl).
//!
//! ```
//! use xenbus::{BackendPath, DevId, XenbusState};
//! use xenstore::DomId;
//! let be = BackendPath::vif(DomId(1), DomId(5), DevId(0));
//! assert_eq!(be.state(), "/local/domain/1/backend/vif/5/0/state");
//! assert_eq!(XenbusState::parse_bytes(b"4").unwrap(), XenbusState::Connected);
//! ```

#![forbid(unsafe_code)]

pub mod agent;
pub mod backend;
pub mod domain;
mod error;

pub mod paths;
pub mod pci;
mod state;
pub mod validate;
pub mod vif;
mod wait;

pub use backend::{BackendStatus, VifSettings, read_status, read_vif_settings};
pub use domain::{DomainSpec, DomainType, destroy_domain, make_domain};
pub use error::{Error, Result};
pub use paths::{BackendPath, DevId, DeviceKind, FrontendPath, LibxlPath, keys};
pub use pci::{Bdf, PciFunction, RdmPolicy, attach_pci};
pub use state::{ALL_STATES, ParseStateError, XenbusState};
pub use vif::{
    DEFAULT_BRIDGE, DEFAULT_VIF_SCRIPT, DetachOptions, DetachOutcome, VifConfig, VifInfo, VifRate,
    VifType, attach_vif, detach_vif, find_backend, list_vifs, remove_device_nodes,
};
pub use wait::{read_state, unique_token, wait_for_removal, wait_for_state, write_state};
pub use xentypes::{MacAddr, XEN_OUI};
