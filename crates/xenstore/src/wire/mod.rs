//! The xenstore wire format, sans IO (`xen/include/public/io/xs_wire.h`).
//!
//! Every message in both directions is a 16-byte header (`type`, `req_id`,
//! `tx_id`, `len`, native-endian `u32`s) and `len` payload bytes. This module
//! frames packets ([`Packet::decode`] returns `Ok(None)` when it needs more
//! bytes), and converts payloads to typed [`Request`]s and [`Response`]s.
//! Nothing here does IO; the clients and the server are layered on top.

mod fields;
mod frame;
mod msgtype;
mod request;
mod response;
#[cfg(test)]
mod tests;

pub use frame::{FrameError, Header, Packet};
pub use msgtype::MsgType;
pub use request::{DecodeError, Request};
pub use response::Response;

/// Header length in bytes (`struct xsd_sockmsg`).
pub const HEADER_LEN: usize = 16;
/// `XENSTORE_PAYLOAD_MAX`: the largest request payload.
pub const PAYLOAD_MAX: usize = 4096;
