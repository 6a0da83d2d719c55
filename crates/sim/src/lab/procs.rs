//! Processes of the lab: started inside a domain's namespace with
//! `ip netns exec`, in their own process group (so a Ctrl-C meant for
//! `lab up` does not hit them before the orderly teardown), marked with
//! `DRVDOM_LAB=<name>` in their environment so that `lab down` can tell
//! them from an unrelated process that reused a recorded pid.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::error::{Error, Result};

/// Environment variable marking a lab's processes.
pub const MARK_VAR: &str = "DRVDOM_LAB";

/// Start `program args` in namespace `ns`, output appended to `log`.
pub fn spawn_in(
    lab: &str,
    ns: &str,
    program: &Path,
    args: &[String],
    env: &[(String, String)],
    log: &Path,
) -> Result<Child> {
    let open_log = || {
        File::options()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|source| Error::File {
                what: "open log",
                path: log.to_path_buf(),
                source,
            })
    };
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns])
        .arg(program)
        .args(args)
        .env(MARK_VAR, lab)
        .stdin(Stdio::null())
        .stdout(open_log()?)
        .stderr(open_log()?)
        .process_group(0);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().map_err(|source| Error::Spawn {
        program: format!("ip netns exec {ns} {}", program.display()),
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

/// SIGTERM, wait up to `grace`, then SIGKILL; returns whether it was alive.
pub fn stop(pid: i32, grace: Duration) -> bool {
    if pid <= 1 || !alive(pid) {
        return false;
    }
    let p = Pid::from_raw(pid);
    let _ = kill(p, Signal::SIGTERM);
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
        "{name} not found next to {} (set {env_var}, or build it: cargo build --release --workspace)",
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
}
