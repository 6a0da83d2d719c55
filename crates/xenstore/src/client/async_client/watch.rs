//! [`WatchStream`]: one watch's events.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::mpsc;

use super::super::common::WatchEvent;
use super::AsyncClient;
use super::conn::lock;
use crate::error::Result;
use crate::wire::Request;

/// Events of one watch, as a [`Stream`]. Ends (after an error item) when
/// the connection closes or a malformed event arrives for this watch.
/// Dropping it unwatches (best effort).
pub struct WatchStream {
    pub(super) client: AsyncClient,
    pub(super) token: String,
    pub(super) id: u64,
    pub(super) events: mpsc::UnboundedReceiver<Result<WatchEvent>>,
}

impl std::fmt::Debug for WatchStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchStream")
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl WatchStream {
    /// The watch's token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Wait for the next event (`None` once the stream has ended).
    pub async fn recv(&mut self) -> Option<Result<WatchEvent>> {
        self.events.recv().await
    }
}

impl Stream for WatchStream {
    type Item = Result<WatchEvent>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.events.poll_recv(cx)
    }
}

impl Drop for WatchStream {
    fn drop(&mut self) {
        let path = lock(&self.client.conn.state).remove_watch(&self.token, self.id);
        if let Some(path) = path {
            self.client.send_detached(
                &Request::Unwatch {
                    path,
                    token: self.token.clone(),
                },
                0,
            );
        }
    }
}
