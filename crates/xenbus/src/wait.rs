//! Waiting on xenstore nodes with watches (no polling): the equivalent of
//! libxl's `libxl__xswait` / `libxl__wait_for_backend`.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::time::Instant;
use tracing::trace;
use xenstore::AsyncClient;

use crate::error::{Error, Result, states_text};
use crate::state::XenbusState;

/// A watch token unique within this process (`drvdom-<what>-<pid>-<n>`).
pub fn unique_token(what: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("drvdom-{what}-{}-{n}", std::process::id())
}

/// Read a `state` node. `Ok(None)` if it does not exist; unparsable
/// contents are an [`Error::InvalidValue`].
pub async fn read_state(client: &AsyncClient, state_path: &str) -> Result<Option<XenbusState>> {
    let raw = client
        .read_opt(state_path)
        .await
        .map_err(Error::xs(format!("read {state_path}")))?;
    match raw {
        None => Ok(None),
        Some(raw) => XenbusState::parse_bytes(&raw)
            .map(Some)
            .map_err(|_| Error::invalid("xenbus state", &raw, "expected 0..=8")),
    }
}

/// Write a `state` node (the wire form, e.g. `"4"`).
pub async fn write_state(client: &AsyncClient, state_path: &str, state: XenbusState) -> Result<()> {
    client
        .write(state_path, state.to_wire())
        .await
        .map_err(Error::xs(format!("write {state_path}")))
}

/// Wait until the node `state_path` holds one of `wanted`, driven by a watch
/// on it. Returns the state reached.
///
/// Errors: [`Error::StateTimeout`] at `deadline`; [`Error::DeviceGone`] if
/// the node does not exist (or is removed while waiting). Unparsable
/// contents count as "not yet" (a guest may scribble on its own `state`).
pub async fn wait_for_state(
    client: &AsyncClient,
    state_path: &str,
    wanted: &[XenbusState],
    deadline: Instant,
) -> Result<XenbusState> {
    let started = Instant::now();
    let token = unique_token("state");
    let mut events = client
        .watch(state_path, &token)
        .await
        .map_err(Error::xs(format!("watch {state_path}")))?;
    let mut last;
    loop {
        // Read after the watch is registered, so no change can be missed.
        match client
            .read_opt(state_path)
            .await
            .map_err(Error::xs(format!("read {state_path}")))?
        {
            None => {
                return Err(Error::DeviceGone {
                    path: state_path.to_string(),
                    wanted: states_text(wanted),
                });
            }
            Some(raw) => match XenbusState::parse_bytes(&raw) {
                Ok(st) if wanted.contains(&st) => return Ok(st),
                Ok(st) => {
                    trace!(path = state_path, state = st.name(), "waiting");
                    last = st.name().to_string();
                }
                Err(_) => {
                    last = format!(
                        "invalid {:?}",
                        String::from_utf8_lossy(&raw[..raw.len().min(16)])
                    );
                }
            },
        }
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Err(_) => {
                return Err(Error::StateTimeout {
                    path: state_path.to_string(),
                    wanted: states_text(wanted),
                    waited: started.elapsed(),
                    last,
                });
            }
            Ok(None) => {
                return Err(Error::WatchEnded {
                    path: state_path.to_string(),
                });
            }
            Ok(Some(Err(e))) => return Err(Error::xs(format!("watch {state_path}"))(e)),
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// Wait until the node `path` no longer exists, driven by a watch on it.
pub async fn wait_for_removal(client: &AsyncClient, path: &str, deadline: Instant) -> Result<()> {
    let started = Instant::now();
    let token = unique_token("gone");
    let mut events = client
        .watch(path, &token)
        .await
        .map_err(Error::xs(format!("watch {path}")))?;
    loop {
        if !client
            .exists(path)
            .await
            .map_err(Error::xs(format!("check {path}")))?
        {
            return Ok(());
        }
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Err(_) => {
                return Err(Error::RemovalTimeout {
                    path: path.to_string(),
                    waited: started.elapsed(),
                });
            }
            Ok(None) => {
                return Err(Error::WatchEnded {
                    path: path.to_string(),
                });
            }
            Ok(Some(Err(e))) => return Err(Error::xs(format!("watch {path}"))(e)),
            Ok(Some(Ok(_))) => {}
        }
    }
}
