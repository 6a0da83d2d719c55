//! `drvdom-xenstored`: a xenstore server (the C daemon's protocol and
//! semantics, WIRE.md) for drvdom's simulated and real hosts.
//!
//! * [`Server`]: the synchronous core — node tree, permissions,
//!   transactions with conflict detection, watches (incl.
//!   `@introduceDomain`/`@releaseDomain`), per-domain quotas. Requests in,
//!   replies and watch events out; no IO, so it is fuzzed and unit-tested
//!   directly.
//! * [`daemon`]: the IO layer — one thread, one epoll, a unix socket for
//!   dom0 and, for simulation, one socket per introduced domain
//!   (`DIR/<domid>.sock`) whose clients act as that (unprivileged) domain;
//!   connections are served in turns by the fair scheduler of [`sched`].
//!   On a real Xen host the same loop also serves dom0's kernel ring and
//!   every introduced domain's shared ring (`ring`: the sans-IO ring
//!   reader/writer; `ringd`: the ring service; [`xen`]: event channels,
//!   grant mapping, hypercalls — the crate's only `unsafe`, in `xen::sys`).
//! * [`startup`]: start-up as the C daemon does it (fork, pid file,
//!   refusing to run beside another xenstored).
//!
//! It sits under everything else in drvdom: the toolstack, the agent and
//! the simulator all talk to it through the `xenstore` crate's clients.
//! Input from clients is untrusted: it never panics on it, never lets one
//! connection hurt another, and logs guest-triggerable events at `debug`.
//!
//! ```
//! use xenstore::wire::{Packet, Request, PAYLOAD_MAX};
//! use xenstored::{Quotas, Server};
//! let mut s = Server::new(Quotas::default());
//! let c = s.connect(xenstore::DomId(0));
//! s.handle(c, &Request::Write("/a".into(), b"1".to_vec()).to_packet(1, 0));
//! s.handle(c, &Request::Read("/a".into()).to_packet(2, 0));
//! let out = s.take_output(c);
//! let (_, n) = Packet::decode(&out, PAYLOAD_MAX).unwrap().unwrap();
//! let (read, _) = Packet::decode(&out[n..], PAYLOAD_MAX).unwrap().unwrap();
//! assert_eq!(read.payload, b"1");
//! ```

// Denied everywhere but in `xen::sys` (which allows it, with a SAFETY
// comment per block); each other new module also forbids it.
#![deny(unsafe_code)]

mod arena;
mod conn;
mod control;
pub mod daemon;
mod domain;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod hash;
mod intern;
mod ops;
mod perms;
mod quota;
mod request;
pub mod ring;
mod ringd;
pub mod sched;
mod server;
pub mod startup;
mod store;
mod transaction;
mod tree;
mod watch;
pub mod xen;

pub use error::{Error, Result};
pub use quota::{DEFAULT_MEMORY, Quotas};
pub use ringd::{DomainState, RingSet, XenOps};
pub use server::{Budget, ConnId, DomainOracle, Effect, Server};
