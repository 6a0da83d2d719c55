//! Xenstore for drvdom: the wire protocol and clients.
//!
//! * [`wire`]: the sans-IO codec (`xs_wire.h`): framing, typed requests and
//!   replies, error names ([`XsErrno`]).
//! * [`path`], [`perms`]: path rules and permission lists.
//! * Clients (blocking and tokio) connect to `XENSTORED_PATH`, else
//!   `/run/xenstored/socket`, else `/dev/xen/xenbus`.
//!
//! This crate is the bottom of the data flow: everything that talks to
//! xenstore goes through it. It never prints and never panics on input from
//! the socket.
//!
//! ```
//! use xenstore::wire::{Packet, Request, PAYLOAD_MAX};
//! let bytes = Request::Read("/local/domain/0/name".into()).to_packet(1, 0).encode();
//! let (pkt, used) = Packet::decode(&bytes, PAYLOAD_MAX).unwrap().unwrap();
//! assert_eq!(used, bytes.len());
//! assert_eq!(Request::decode(pkt.msg_type, &pkt.payload).unwrap(),
//!            Request::Read("/local/domain/0/name".into()));
//! ```

#![forbid(unsafe_code)]

mod error;
pub mod errno;
pub mod path;
pub mod perms;
mod types;
pub mod wire;

pub use errno::XsErrno;
pub use error::{Error, Result};
pub use perms::{Access, Perm, PermList};
pub use types::{DomId, ParseDomIdError, ReqId, TxId};
