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

impl ActionKind {
    /// The action's name in JSON and reports (`assign-nic`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            ActionKind::AssignNic { .. } => "assign-nic",
            ActionKind::ReleaseNic { .. } => "release-nic",
            ActionKind::WriteConfig { .. } => "write-config",
            ActionKind::CreateDomain { .. } => "create-domain",
            ActionKind::DestroyDomain { .. } => "destroy-domain",
            ActionKind::ConfigureBridges { .. } => "configure-bridges",
            ActionKind::GrantNameRead { .. } => "grant-name-read",
            ActionKind::AttachVif { .. } => "attach-vif",
            ActionKind::DetachVif { .. } => "detach-vif",
        }
    }

    /// What it acts on: a BDF, a domain, `guest/devid`, `guest->dd`.
    pub fn target(&self) -> String {
        match self {
            ActionKind::AssignNic { bdf } | ActionKind::ReleaseNic { bdf } => bdf.to_string(),
            ActionKind::WriteConfig { domain }
            | ActionKind::CreateDomain { domain }
            | ActionKind::DestroyDomain { domain }
            | ActionKind::ConfigureBridges { domain } => domain.clone(),
            ActionKind::GrantNameRead { guest, backend } => format!("{guest}->{backend}"),
            ActionKind::AttachVif { guest, devid } | ActionKind::DetachVif { guest, devid } => {
                format!("{guest}/{devid}")
            }
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind.name(), self.kind.target())
    }
}

impl serde::Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Action", 4)?;
        st.serialize_field("id", &self.id())?;
        st.serialize_field("action", self.kind.name())?;
        st.serialize_field("target", &self.kind.target())?;
        st.serialize_field("reason", &self.reason)?;
        st.end()
    }
}

impl Action {
    /// The stable id of the step: `<action>/<target>`
    /// (`attach-vif/web/0`), the first field of its JSON form.
    pub fn id(&self) -> String {
        format!("{}/{}", self.kind.name(), self.kind.target())
    }

    /// An action with its reason.
    pub fn new(kind: ActionKind, reason: impl Into<String>) -> Action {
        Action {
            kind,
            reason: reason.into(),
        }
    }
}
