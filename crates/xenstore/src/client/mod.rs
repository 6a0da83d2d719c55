//! Xenstore clients: [`AsyncClient`] (tokio, many requests in flight on one
//! connection, watches as streams) and [`Client`] (blocking, one request at
//! a time, watch events queued for [`Client::next_event`]).
//!
//! Both connect to `$XENSTORED_PATH`, else `/run/xenstored/socket`, else the
//! `/dev/xen/xenbus` device, and check paths and tokens before sending
//! (refused ones give [`Error::InvalidPath`](crate::Error::InvalidPath),
//! whose [`errno`](crate::Error::errno) is `EINVAL`).

pub mod async_client;
pub mod blocking;
mod common;

pub use async_client::{AsyncClient, Transaction, WatchStream};
pub use blocking::{BlockingTransaction, Client};
pub use common::{
    DEFAULT_SOCKET, TRANSACTION_MAX_ATTEMPTS, WatchEvent, XENBUS_DEVICE, default_endpoint,
};
