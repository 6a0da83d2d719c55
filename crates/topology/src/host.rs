//! The [`Host`] trait: what differs between a real Xen host and the
//! simulated one. Everything done through xenstore (vifs, the agent's
//! bridge settings, permissions, observation of domains and devices) is
//! the same on both and lives in this crate, using [`Host::xenstore`].
//!
//! | method | real host ([`crate::RealHost`]) | simulated host (`sim::SimHost`) |
//! |---|---|---|
//! | [`Host::config_drift`], [`Host::write_config`] | the domain's xl.cfg vs the file (`pci`, `driver_domain`, `vif`), lossless edit | no config files: `None`, nothing |
//! | [`Host::create_domain`] | `xl create` of the xl.cfg (vifs included) | INTRODUCE + libxl's nodes, a namespace, netback + agent (driver) or netfront (guest); no vifs |
//! | [`Host::destroy_domain`] | `xl destroy` | the reverse of create |
//! | [`Host::assign_nic`], [`Host::release_nic`] | pciback through crate `pci` | the simulated NIC |
//! | [`Host::nics`] | sysfs driver; pcifront's `vdev-<i>` for visibility | the simulated NIC's place |
//! | [`Host::vif_connected`] | nothing (the guest's OS configures itself) | the vif's `ip` addresses on the guest's interface |
//! | [`Host::probe`] | [`ProbeOutcome::Unsupported`] (dom0 cannot send from a guest) | ICMP from inside the guest |

use std::future::Future;
use std::net::IpAddr;

use xenstore::AsyncClient;
use xentypes::{Bdf, DomId, IpCidr};

use crate::error::Result;
use crate::model::{DriverDomain, Guest, Vif};
use crate::observed::ObservedNic;

/// Which kind of host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKind {
    /// A real Xen host: xl, pciback, the host's xenstored.
    Real,
    /// A simulated host (`drvdom lab`), by name.
    Simulated(String),
}

/// A domain to create.
#[derive(Debug, Clone, Copy)]
pub enum DomainRole<'a> {
    /// A driver domain: its NICs passed through, its agent started (where
    /// the host starts it).
    Driver(&'a DriverDomain),
    /// A guest. The host may create its vifs as `xl create` does (real
    /// host) or leave them to the toolstack's `AttachVif` actions, which
    /// are idempotent and accept a vif that already matches.
    Guest(&'a Guest),
}

impl DomainRole<'_> {
    /// The domain's name.
    pub fn name(&self) -> &str {
        match self {
            DomainRole::Driver(d) => &d.name,
            DomainRole::Guest(g) => &g.name,
        }
    }
}

/// Where a traffic probe goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeTarget {
    /// An address inside the host (another guest's).
    Addr(IpAddr),
    /// The world outside the host, through the NIC `nic` (a bridge's
    /// uplink): the host answers at `addr` on the far side of that NIC's
    /// cable (the simulated host puts `addr` there, idempotently; the
    /// toolstack picks an address of the guest's subnet that no vif of the
    /// file uses).
    Outside {
        /// The uplink NIC.
        nic: Bdf,
        /// The address to answer at, with the subnet's prefix.
        addr: IpCidr,
    },
}

/// The result of a traffic probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// An answer came back (detail: what was seen).
    Answered(String),
    /// No answer (detail: what was tried).
    NoAnswer(String),
    /// This host cannot send traffic from that domain.
    Unsupported,
}

/// A Xen host the toolstack can act on.
///
/// Every method is idempotent: called again after it succeeded (or after
/// it was interrupted), it converges and succeeds. Errors name the object
/// and the reason ([`crate::Error::Host`]).
pub trait Host: Send + Sync {
    /// Real or simulated.
    fn kind(&self) -> HostKind;

    /// dom0's (privileged) xenstore connection.
    fn xenstore(&self) -> &AsyncClient;

    /// Why the configuration this host creates the domain from differs
    /// from the file (real host: the xl.cfg's `pci`, `driver_domain`,
    /// `vif`), or `None` when it matches or the host has none.
    fn config_drift(
        &self,
        role: DomainRole<'_>,
    ) -> impl Future<Output = Result<Option<String>>> + Send;

    /// Bring that configuration in line with the file (a lossless edit).
    fn write_config(&self, role: DomainRole<'_>) -> impl Future<Output = Result<()>> + Send;

    /// Create a domain as `xl create` does; returns its domid once its
    /// xenstore nodes exist. A driver domain's NICs must then appear in
    /// dom0's pci backend of it (`/local/domain/0/backend/pci/<dd>/0/dev-<i>`,
    /// as libxl writes them: `xenbus::attach_pci`), which `observe` reads
    /// to tell where a NIC is passed through; its agent reads its bridges
    /// from `xenbus::agent` settings that `apply` writes next.
    fn create_domain(&self, role: DomainRole<'_>) -> impl Future<Output = Result<DomId>> + Send;

    /// Destroy a domain as `xl destroy` does (nothing of it left in
    /// xenstore). The toolstack detaches its vifs first.
    fn destroy_domain(&self, name: &str, domid: DomId) -> impl Future<Output = Result<()>> + Send;

    /// Hide a NIC from dom0 (pciback), remembering its driver.
    fn assign_nic(&self, bdf: Bdf, permissive: bool) -> impl Future<Output = Result<()>> + Send;

    /// Give a NIC back to the driver it had.
    fn release_nic(&self, bdf: Bdf) -> impl Future<Output = Result<()>> + Send;

    /// The state of these NICs, one entry per BDF asked, in that order.
    /// Hosts fill `driver` and `visible_in_domain`; the toolstack fills
    /// `assigned_to` from xenstore (a host may leave it `None`).
    fn nics(&self, bdfs: &[Bdf]) -> impl Future<Output = Result<Vec<ObservedNic>>> + Send;

    /// Called once a vif of guest `guest` (domid `domid`) is Connected on
    /// both ends: the simulated host configures the vif's `ip` addresses
    /// and MTU on the guest's interface (what the guest's own OS does on a
    /// real host, where this does nothing).
    fn vif_connected(
        &self,
        guest: &str,
        domid: DomId,
        vif: &Vif,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Send traffic from inside domain `from` to `to`.
    fn probe(
        &self,
        from: &str,
        to: &ProbeTarget,
    ) -> impl Future<Output = Result<ProbeOutcome>> + Send;
}
