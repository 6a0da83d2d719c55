//! Xenstore for drvdom: the wire protocol and clients.
//!
//! * [`wire`]: the sans-IO codec (`xs_wire.h`): framing, typed requests and
//!   replies, error names ([`XsErrno`]).
//! * [`path`], [`perms`]: path rules and permission lists.
//! * [`client`]: [`AsyncClient`] (tokio; one connection shared by clones,
//!   many requests in flight, watches as streams) and [`Client`] (blocking).
//!   Both connect to `XENSTORED_PATH`, else `/run/xenstored/socket`, else
//!   `/dev/xen/xenbus`.
//!
//! This crate is the bottom of the data flow: everything that talks to
//! xenstore goes through it. It never prints and never panics on input from
//! the socket.
//!
//! ```no_run
//! # async fn demo() -> xenstore::Result<()> {
//! use futures::StreamExt;
//! let xs = xenstore::AsyncClient::connect_default().await?;
//! xs.write("/local/domain/0/name", "Domain-0").await?;
//! let mut events = xs.watch("/local/domain/0", "tok").await?;
//! while let Some(ev) = events.next().await {
//!     let ev = ev?;
//!     println!("{} changed", ev.path);
//! }
//! # Ok(()) }
//! ```
//!
//! The codec on its own:
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

pub mod client;
pub mod errno;
mod error;
pub mod path;
pub mod perms;
mod types;
pub mod wire;

pub use client::{AsyncClient, BlockingTransaction, Client, Transaction, WatchEvent, WatchStream};
pub use errno::XsErrno;
pub use error::{Error, Result};
pub use perms::{Access, Perm, PermList};
pub use types::{ReqId, TxId};
pub use xentypes::DomId;
