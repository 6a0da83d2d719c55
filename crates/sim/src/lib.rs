//! The simulated Xen host: domains as network namespaces, simulated PCI
//! NICs, a simulated netback and netfront, and [`SimHost`], the
//! implementation of the toolstack's [`topology::Host`] on them.
//!
//! * [`netns`]: the namespaces (`drvdom-<lab>-<domain>`) that stand for
//!   domains' machines, made and removed in process.
//! * [`link`] and [`icmp`]: links over rtnetlink and an ICMP echo, both
//!   from inside any namespace (no `ip`, no `ping`).
//! * [`netback`] / [`netfront`]: the kernel halves of a vif, speaking the
//!   same XenbusState handshake as Linux `xen-netback` / `xen-netfront`,
//!   each through its own domain's xenstore socket so that the server
//!   enforces permissions exactly as on Xen. They run as processes of this
//!   crate's own binary, `drvdom-simkernel`. [`rate`]: the vif's `rate`
//!   key as netback reads it.
//! * [`lab`]: [`SimHost`] (start, open, create and destroy domains as Xen
//!   and `xl` would, pass NICs through, probe), `down` and `status`.
//!
//! What this crate does not do: the dom0 toolstack. Domains, vifs and
//! bridges are decided by crate `topology`, which drives this host through
//! the `Host` trait and xenstore exactly as it drives a real one.
//!
//! Everything this crate creates is inside namespaces carrying the lab's
//! prefix or under the lab's run directory; it never touches the host's
//! own namespace except to create and delete those namespaces.
//!
//! ```
//! assert_eq!(sim::netns::ns_name("demo", "guest1"), "drvdom-demo-guest1");
//! assert_eq!(sim::netback::parse_mac("00:16:3e:00:00:01").map(|m| m.0), Some([0, 0x16, 0x3e, 0, 0, 1]));
//! ```

#![forbid(unsafe_code)]

mod error;
pub mod icmp;
pub mod lab;
pub mod link;
pub mod netback;
pub mod netfront;
pub mod netns;
pub mod rate;
mod xs;

pub use error::{Error, Result};
pub use lab::{SimHost, StartConfig};
