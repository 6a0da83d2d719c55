//! Waiting for things the simulated host starts: a xenstore value (on a
//! watch), a process's marker while checking it still runs, a socket.

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use xenstore::AsyncClient;

use crate::error::{Error, Result};

/// How often a wait also checks that the process it waits for still runs
/// (a dead process sends no xenstore event).
const LIVENESS: Duration = Duration::from_millis(100);

/// Why a wait ended without its value.
#[derive(Debug)]
pub(crate) enum WaitEnd {
    /// The deadline passed; the last value seen.
    Timeout(Option<Vec<u8>>),
    /// The process exited with this status.
    Exited(String),
}

/// Wait (on a watch) until `path` satisfies `ok`, failing early if `child`
/// exits. Returns the value.
pub(crate) async fn value_while_alive(
    client: &AsyncClient,
    path: &str,
    ok: impl Fn(&[u8]) -> bool,
    timeout: Duration,
    mut child: Option<&mut Child>,
) -> Result<std::result::Result<Vec<u8>, WaitEnd>> {
    let token = xenbus::unique_token("sim");
    let mut w = client
        .watch(path, &token)
        .await
        .map_err(Error::xs(format!("watch {path}")))?;
    let deadline = tokio::time::Instant::now() + timeout;
    let result = loop {
        let last = client
            .read_opt(path)
            .await
            .map_err(Error::xs(format!("read {path}")))?;
        if let Some(v) = &last {
            if ok(v) {
                break Ok(v.clone());
            }
        }
        if let Some(c) = child.as_deref_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                break Err(WaitEnd::Exited(status.to_string()));
            }
        }
        let tick = (tokio::time::Instant::now() + LIVENESS).min(deadline);
        match tokio::time::timeout_at(tick, w.recv()).await {
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => return Err(Error::xs(format!("watch {path}"))(e)),
            Ok(None) => return Err(Error::xs(format!("watch {path}"))(xenstore::Error::Closed)),
            Err(_) if tokio::time::Instant::now() >= deadline => {
                break Err(WaitEnd::Timeout(last));
            }
            Err(_) => {}
        }
    };
    let _ = client.unwatch(path, &token).await;
    Ok(result)
}

/// Poll `cond` (for conditions without an event, such as a socket file
/// appearing) until true or `timeout`.
pub(crate) async fn poll_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Connect to a socket that a just-started server will create.
pub(crate) async fn connect_when_up(sock: &Path, timeout: Duration) -> Result<AsyncClient> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    loop {
        match AsyncClient::connect(sock).await {
            Ok(c) => return Ok(c),
            Err(e) if Instant::now() >= deadline => {
                return Err(Error::xs(format!("connect to {}", sock.display()))(e));
            }
            Err(_) => {}
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}
