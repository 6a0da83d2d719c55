//! The [`Host`] trait: what differs between a real Xen host and the
//! simulated one. Everything done through xenstore (vifs, the agent's
//! bridge settings, permissions, observation of devices) is the same on
//! both and lives in this crate, using [`Host::xenstore`].

use std::future::Future;
use std::net::IpAddr;

use xenstore::AsyncClient;
use xentypes::{Bdf, DomId};

use crate::error::Result;
use crate::model::{DriverDomain, Guest};
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
    /// A guest, with its vifs as `xl create` would make them.
    Guest(&'a Guest),
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
pub trait Host: Send + Sync {
    /// Real or simulated.
    fn kind(&self) -> HostKind;

    /// dom0's (privileged) xenstore connection.
    fn xenstore(&self) -> &AsyncClient;

    /// Create a domain as `xl create` does; returns its domid.
    fn create_domain(&self, role: DomainRole<'_>) -> impl Future<Output = Result<DomId>> + Send;

    /// Destroy a domain as `xl destroy` does (nothing left in xenstore).
    fn destroy_domain(&self, name: &str, domid: DomId) -> impl Future<Output = Result<()>> + Send;

    /// Hide a NIC from dom0 (pciback), remembering its driver.
    fn assign_nic(&self, bdf: Bdf, permissive: bool) -> impl Future<Output = Result<()>> + Send;

    /// Give a NIC back to the driver it had.
    fn release_nic(&self, bdf: Bdf) -> impl Future<Output = Result<()>> + Send;

    /// The state of these NICs.
    fn nics(&self, bdfs: &[Bdf]) -> impl Future<Output = Result<Vec<ObservedNic>>> + Send;

    /// Send traffic from inside domain `from` to `addr` (an IP address).
    fn probe(&self, from: &str, addr: &str) -> impl Future<Output = Result<ProbeOutcome>> + Send;

    /// An address beyond the driver domains' uplinks that answers
    /// [`Host::probe`]s, for `verify`'s "each uplinked bridge reaches the
    /// outside" check: the simulated host's outside network; `None` when
    /// the host knows no such address (the check is then skipped, saying
    /// why).
    fn outside_address(&self) -> Option<IpAddr> {
        None
    }
}
