//! Processes of the simulated host: started inside a domain's namespace
//! through `drvdom-simkernel exec` (which enters the namespace, gives the
//! process its own `/sys` as `ip netns exec` does, and execs in place, so
//! the recorded pid is the program's), in their own process group (a
//! Ctrl-C meant for `lab up` does not hit them before the orderly
//! teardown), marked with `DRVDOM_LAB=<name>` in their environment so that
//! `lab down` can tell them from an unrelated process that reused a pid.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::error::{Error, Result};
use crate::netns;

/// Environment variable marking a lab's processes.
pub const MARK_VAR: &str = "DRVDOM_LAB";

/// How to start one process.
#[derive(Debug, Clone)]
pub(crate) struct Spawn<'a> {
    /// The lab (for the mark).
    pub lab: &'a str,
    /// `drvdom-simkernel`.
    pub simkernel: &'a Path,
    /// Namespace name.
    pub ns: &'a str,
    /// The program and its arguments.
    pub program: &'a Path,
    pub args: &'a [String],
    pub env: &'a [(String, String)],
    /// Output (stdout and stderr) appended here.
    pub log: &'a Path,
}

/// Start a process in a namespace.
pub(crate) fn spawn_in(s: &Spawn<'_>) -> Result<Child> {
    let open_log = || {
        File::options()
            .create(true)
            .append(true)
            .open(s.log)
            .map_err(|source| Error::File {
                what: "open log",
                path: s.log.to_path_buf(),
                source,
            })
    };
    let mut cmd = Command::new(s.simkernel);
    cmd.arg("exec")
        .arg("--netns")
        .arg(netns::ns_path(s.ns))
        .arg("--")
        .arg(s.program)
        .args(s.args)
        .env(MARK_VAR, s.lab)
        .stdin(Stdio::null())
        .stdout(open_log()?)
        .stderr(open_log()?)
        .process_group(0);
    for (k, v) in s.env {
        cmd.env(k, v);
    }
    cmd.spawn().map_err(|source| Error::Spawn {
        program: format!(
            "{} exec --netns {} -- {}",
            s.simkernel.display(),
            s.ns,
            s.program.display()
        ),
        source,
    })
}

/// True if `pid` is a live (not zombie) process.
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "pid (comm) S ..." — the state follows the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|st| st != "Z" && st != "X"),
        Err(_) => false,
    }
}

/// True if `pid` carries `DRVDOM_LAB=<lab>` in its environment.
pub fn belongs_to(pid: i32, lab: &str) -> bool {
    let want = format!("{MARK_VAR}={lab}");
    std::fs::read(format!("/proc/{pid}/environ"))
        .map(|env| env.split(|b| *b == 0).any(|e| e == want.as_bytes()))
        .unwrap_or(false)
}

/// Every live process marked as belonging to `lab`.
pub fn marked(lab: &str) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out: Vec<i32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .filter(|pid| belongs_to(*pid, lab) && alive(*pid))
        .collect();
    out.sort_unstable();
    out
}

/// SIGTERM, wait up to `grace`, then SIGKILL; returns whether it was alive.
/// Blocking: call from a blocking context.
pub fn stop(pid: i32, grace: Duration) -> bool {
    if pid <= 1 || !alive(pid) {
        return false;
    }
    let p = Pid::from_raw(pid);
    let _ = kill(p, Signal::SIGTERM);
    // No event tells us another process's exit (it is not our child in
    // general): poll /proc with a short backoff.
    let deadline = Instant::now() + grace;
    let mut pause = Duration::from_millis(2);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
    if alive(pid) {
        let _ = kill(p, Signal::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(2);
        while alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    true
}

/// Stop several processes at once (each SIGTERM, then SIGKILL after
/// `grace`); returns those that were alive.
pub async fn stop_all(pids: Vec<i32>, grace: Duration) -> Vec<i32> {
    let stops: Vec<_> = pids
        .into_iter()
        .map(|pid| tokio::task::spawn_blocking(move || (pid, stop(pid, grace))))
        .collect();
    let mut out = Vec::new();
    for s in stops {
        if let Ok((pid, true)) = s.await {
            out.push(pid);
        }
    }
    out
}

/// Kill several processes at once with SIGKILL (a domain dying) and wait
/// for them to be gone (up to 2 s each); returns those that were alive.
pub async fn kill_all(pids: Vec<i32>) -> Vec<i32> {
    let kills: Vec<_> = pids
        .into_iter()
        .map(|pid| {
            tokio::task::spawn_blocking(move || {
                if pid <= 1 || !alive(pid) {
                    return (pid, false);
                }
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                let deadline = Instant::now() + Duration::from_secs(2);
                while alive(pid) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(2));
                }
                (pid, true)
            })
        })
        .collect();
    let mut out = Vec::new();
    for k in kills {
        if let Ok((pid, true)) = k.await {
            out.push(pid);
        }
    }
    out
}

/// The last `n` lines of a log file (for error messages).
pub fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Find a lab binary: `env_var` if set, else next to the running
/// executable (and its parent, for test binaries under `target/*/deps`).
pub fn find_binary(name: &str, env_var: &str) -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(env_var).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        return Err(Error::Missing(format!(
            "{env_var}={} does not exist",
            p.display()
        )));
    }
    let exe = std::env::current_exe().map_err(|source| Error::File {
        what: "find the running executable",
        path: PathBuf::from("/proc/self/exe"),
        source,
    })?;
    let mut dir = exe.parent();
    for _ in 0..2 {
        let Some(d) = dir else { break };
        let cand = d.join(name);
        if cand.is_file() {
            return Ok(cand);
        }
        dir = d.parent();
    }
    Err(Error::Missing(format!(
        "{name} not found next to {} (set {env_var})",
        exe.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_unmarked() {
        let me = i32::try_from(std::process::id()).unwrap();
        assert!(alive(me));
        assert!(!belongs_to(me, "nolabhere"));
        assert!(!alive(i32::MAX));
    }

    #[test]
    fn log_tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.log");
        std::fs::write(&p, "a\nb\nc\n").unwrap();
        assert_eq!(log_tail(&p, 2), "b\nc");
        assert_eq!(log_tail(&p, 10), "a\nb\nc");
        assert_eq!(log_tail(&dir.path().join("none"), 3), "");
    }
}
