//! The steps of a plan, each idempotent.

use xentypes::{Bdf, DevId};

/// What an action does.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ActionKind {
    /// Hide a NIC from dom0 (pciback).
    AssignNic {
        /// The NIC.
        bdf: Bdf,
    },
    /// Give a NIC back to its original driver.
    ReleaseNic {
        /// The NIC.
        bdf: Bdf,
    },
    /// Bring a domain's xl.cfg in line with the file (real host).
    WriteConfig {
        /// The domain.
        domain: String,
    },
    /// Create a domain.
    CreateDomain {
        /// The domain.
        domain: String,
    },
    /// Destroy a domain.
    DestroyDomain {
        /// The domain.
        domain: String,
    },
    /// Tell a driver domain's agent which bridges to build, and wait for it.
    ConfigureBridges {
        /// The driver domain.
        domain: String,
    },
    /// Let a driver domain read a guest's name.
    GrantNameRead {
        /// The guest.
        guest: String,
        /// The driver domain.
        backend: String,
    },
    /// Attach a vif.
    AttachVif {
        /// The guest.
        guest: String,
        /// Its devid.
        devid: DevId,
    },
    /// Detach a vif.
    DetachVif {
        /// The guest.
        guest: String,
        /// Its devid.
        devid: DevId,
    },
}

/// One step of a plan, with why it is needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    /// What to do.
    pub kind: ActionKind,
    /// Why (what was observed).
    pub reason: String,
}
