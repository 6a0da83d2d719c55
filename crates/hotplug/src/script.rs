//! Legacy hotplug script runner: runs `/etc/xen/scripts/vif-bridge` (or any
//! script named by the backend's `script` key) exactly as `xl devd` does.
//!
//! Arguments and environment follow libxl [tools/libs/light/libxl_linux.c
//! `libxl__hotplug_nic`, `get_hotplug_env`]: argv is `<script> online
//! type_if=vif` / `<script> offline type_if=vif` (or `add|remove
//! type_if=tap` for the emulated twin), and the inherited environment gains
//! `script`, `XENBUS_TYPE`, `XENBUS_PATH=backend/<kind>/<fe>/<devid>`,
//! `XENBUS_BASE_PATH=backend`, `netdev` (the `gatewaydev` key or empty),
//! `vif` (and `INTERFACE` for tap). The script writes `hotplug-status`
//! itself; the caller only reports failures.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::error::{Error, Result};

/// libxl's `LIBXL_HOTPLUG_TIMEOUT` (40 s) [tools/libs/light/libxl_internal.h].
pub const DEFAULT_SCRIPT_TIMEOUT: Duration = Duration::from_secs(40);

/// Bytes of each output stream kept in [`ScriptOutcome`].
const TAIL_BYTES: usize = 4096;

/// How long to keep reading output after the script exits (a background
/// child may hold the pipe open).
const DRAIN_GRACE: Duration = Duration::from_millis(500);

/// The hotplug action (first argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptAction {
    /// `online type_if=vif`: PV vif connect.
    Online,
    /// `offline type_if=vif`: PV vif disconnect.
    Offline,
    /// `add type_if=tap`: emulated (ioemu) twin connect.
    Add,
    /// `remove type_if=tap`: emulated twin disconnect.
    Remove,
}

impl ScriptAction {
    fn args(self) -> [&'static str; 2] {
        match self {
            ScriptAction::Online => ["online", "type_if=vif"],
            ScriptAction::Offline => ["offline", "type_if=vif"],
            ScriptAction::Add => ["add", "type_if=tap"],
            ScriptAction::Remove => ["remove", "type_if=tap"],
        }
    }
}

impl fmt::Display for ScriptAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.args()[0])
    }
}

/// One run of a hotplug script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptRun {
    /// Absolute script path (the backend's `script` key).
    pub script: PathBuf,
    /// Action.
    pub action: ScriptAction,
    /// Device kind, `vif` (`XENBUS_TYPE`).
    pub kind: String,
    /// Frontend domain id.
    pub frontend_domid: u32,
    /// Device id.
    pub devid: u32,
    /// Backend interface name (`vif` variable), e.g. `vif5.0`.
    pub vif: String,
    /// Tap interface name (`INTERFACE`), for [`ScriptAction::Add`]/[`ScriptAction::Remove`].
    pub interface: Option<String>,
    /// The backend's `gatewaydev` key (`netdev`), empty if unset.
    pub netdev: String,
    /// Extra environment (e.g. how to reach xenstored in the lab).
    pub extra_env: Vec<(String, String)>,
    /// Kill the script (and its process group) after this long.
    pub timeout: Duration,
}

impl ScriptRun {
    /// A PV vif run with libxl's defaults.
    pub fn vif(
        script: impl Into<PathBuf>,
        action: ScriptAction,
        frontend_domid: u32,
        devid: u32,
        vif: impl Into<String>,
    ) -> Self {
        ScriptRun {
            script: script.into(),
            action,
            kind: "vif".to_string(),
            frontend_domid,
            devid,
            vif: vif.into(),
            interface: None,
            netdev: String::new(),
            extra_env: Vec::new(),
            timeout: DEFAULT_SCRIPT_TIMEOUT,
        }
    }

    /// `XENBUS_PATH`: relative to the caller's domain path, as libxl writes it.
    pub fn xenbus_path(&self) -> String {
        format!(
            "backend/{}/{}/{}",
            self.kind, self.frontend_domid, self.devid
        )
    }

    /// The environment libxl adds (in libxl's order).
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("script".to_string(), self.script.display().to_string()),
            ("XENBUS_TYPE".to_string(), self.kind.clone()),
            ("XENBUS_PATH".to_string(), self.xenbus_path()),
            ("XENBUS_BASE_PATH".to_string(), "backend".to_string()),
            ("netdev".to_string(), self.netdev.clone()),
        ];
        if let Some(i) = &self.interface {
            env.push(("INTERFACE".to_string(), i.clone()));
        }
        env.push(("vif".to_string(), self.vif.clone()));
        env.extend(self.extra_env.iter().cloned());
        env
    }
}

/// How a script run ended.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ScriptOutcome {
    /// Exit status.
    pub status: ExitStatus,
    /// Last bytes of standard output.
    pub stdout: String,
    /// Last bytes of standard error (vif-bridge's `fatal` messages land here).
    pub stderr: String,
    /// Wall time.
    pub elapsed: Duration,
}

impl ScriptOutcome {
    /// True on exit status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }
}

/// Read lines from a script stream into the log, keeping a tail.
async fn pump(stream: impl AsyncRead + Unpin, name: &'static str) -> String {
    let mut lines = BufReader::new(stream).lines();
    let mut tail = String::new();
    while let Ok(Some(line)) = lines.next_line().await {
        // stderr carries vif-bridge's `fatal` messages; stdout is chatter.
        if name == "stderr" {
            info!(stream = name, "{line}");
        } else {
            debug!(stream = name, "{line}");
        }
        tail.push_str(&line);
        tail.push('\n');
        if tail.len() > 2 * TAIL_BYTES {
            let mut cut = tail.len() - TAIL_BYTES;
            while !tail.is_char_boundary(cut) {
                cut += 1;
            }
            tail.drain(..cut);
        }
    }
    tail
}

async fn drain(task: tokio::task::JoinHandle<String>) -> String {
    let abort = task.abort_handle();
    match tokio::time::timeout(DRAIN_GRACE, task).await {
        Ok(Ok(s)) => s,
        Ok(Err(_)) => String::new(),
        Err(_) => {
            abort.abort();
            String::new()
        }
    }
}

/// Run the script, logging its output, killing its whole process group if
/// it exceeds the timeout. A non-zero exit is returned in the outcome, not
/// as an error.
pub async fn run_script(run: &ScriptRun) -> Result<ScriptOutcome> {
    let span = info_span!("hotplug_script", script = %run.script.display(), action = %run.action, vif = %run.vif);
    run_inner(run).instrument(span).await
}

async fn run_inner(run: &ScriptRun) -> Result<ScriptOutcome> {
    let start = Instant::now();
    let script: &Path = &run.script;
    let mut cmd = Command::new(script);
    cmd.args(run.action.args())
        .envs(run.env())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Own process group, so a timeout kills the `ip`/`brctl` children too.
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|source| Error::SpawnScript {
        script: script.to_path_buf(),
        source,
    })?;
    debug!(pid = child.id(), "hotplug script started");
    let out = child.stdout.take().map(|s| tokio::spawn(pump(s, "stdout")));
    let err = child.stderr.take().map(|s| tokio::spawn(pump(s, "stderr")));
    let pgid = child
        .id()
        .and_then(|p| i32::try_from(p).ok())
        .map(Pid::from_raw);

    let status = match tokio::time::timeout(run.timeout, child.wait()).await {
        Ok(r) => r.map_err(|source| Error::WaitScript {
            script: script.to_path_buf(),
            source,
        })?,
        Err(_) => {
            if let Some(pg) = pgid {
                // ESRCH only means the group is already gone.
                let _ = killpg(pg, Signal::SIGKILL);
            }
            let _ = child.kill().await;
            warn!(timeout = ?run.timeout, "hotplug script timed out, killed");
            if let Some(t) = out {
                t.abort();
            }
            if let Some(t) = err {
                t.abort();
            }
            return Err(Error::ScriptTimeout {
                script: script.to_path_buf(),
                timeout: run.timeout,
            });
        }
    };
    let stdout = match out {
        Some(t) => drain(t).await,
        None => String::new(),
    };
    let stderr = match err {
        Some(t) => drain(t).await,
        None => String::new(),
    };
    let elapsed = start.elapsed();
    debug!(?status, ?elapsed, "hotplug script finished");
    Ok(ScriptOutcome {
        status,
        stdout,
        stderr,
        elapsed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_and_args_match_libxl() {
        let r = ScriptRun::vif(
            "/etc/xen/scripts/vif-bridge",
            ScriptAction::Online,
            5,
            0,
            "vif5.0",
        );
        assert_eq!(ScriptAction::Online.args(), ["online", "type_if=vif"]);
        assert_eq!(ScriptAction::Remove.args(), ["remove", "type_if=tap"]);
        let env = r.env();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("script"), Some("/etc/xen/scripts/vif-bridge"));
        assert_eq!(get("XENBUS_TYPE"), Some("vif"));
        assert_eq!(get("XENBUS_PATH"), Some("backend/vif/5/0"));
        assert_eq!(get("XENBUS_BASE_PATH"), Some("backend"));
        assert_eq!(get("netdev"), Some(""));
        assert_eq!(get("vif"), Some("vif5.0"));
        assert_eq!(get("INTERFACE"), None);
    }
}
