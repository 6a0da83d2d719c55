//! Simulated Xen host: domains as network namespaces, a simulated netback
//! and netfront, and the `drvdom lab` orchestration.
//!
//! * [`netns`]: the namespaces (`drvdom-<lab>-<domain>`) that stand for
//!   domains' machines.
//! * [`netback`] / [`netfront`]: the kernel halves of a vif, speaking the
//!   same XenbusState handshake as Linux `xen-netback` / `xen-netfront`,
//!   each through its own domain's xenstore socket so that the server
//!   enforces permissions exactly as on Xen.
//! * [`lab`]: bring a whole host up (xenstored, dom0, a driver domain with
//!   its NIC, the agent, guests), check every step, tear it down.
//!
//! Everything this crate creates is inside namespaces carrying the lab's
//! prefix or under the lab's run directory; it never touches the host's
//! own namespace except to create and delete those namespaces. It sits
//! beside the real agent: dom0 writes devices through `xenbus`, the agent
//! does hotplug, this crate plays the kernels.
//!
//! ```
//! assert_eq!(sim::netns::ns_name("demo", "guest1"), "drvdom-demo-guest1");
//! assert_eq!(sim::netback::parse_mac("00:16:3e:00:00:01").map(|m| m.0), Some([0, 0x16, 0x3e, 0, 0, 1]));
//! ```

#![forbid(unsafe_code)]

mod cmd;
mod error;
pub mod lab;
pub mod link;
pub mod netback;
pub mod netfront;
pub mod netns;
mod xs;

pub use error::{Error, Result};
