//! Running helper programs (`ip`, `ping`) and reporting their failures.
//!
//! Namespace plumbing is done with iproute2's `ip`, which is what an
//! administrator would type; the simulated netback's own link work goes
//! through rtnetlink ([`crate::link`]).

use std::process::Stdio;

use tokio::process::Command;

use crate::error::{Error, Result};

/// The output of a command that succeeded.
#[derive(Debug)]
pub(crate) struct Output {
    /// Standard output, lossy UTF-8.
    pub stdout: String,
}

/// Run `program args...`, failing with its stderr if it exits non-zero.
pub(crate) async fn run(program: &str, args: &[&str]) -> Result<Output> {
    let command = format!("{program} {}", args.join(" "));
    tracing::trace!(%command, "run");
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|source| Error::Spawn {
            program: program.to_string(),
            source,
        })?;
    if !out.status.success() {
        return Err(Error::Command {
            command,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(Output {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
    })
}

/// Run `ip args...`.
pub(crate) async fn ip(args: &[&str]) -> Result<Output> {
    run("ip", args).await
}

/// Run `ip -n <ns> args...` (the command acts inside namespace `ns`).
pub(crate) async fn ip_in(ns: &str, args: &[&str]) -> Result<Output> {
    let mut all = vec!["-n", ns];
    all.extend_from_slice(args);
    run("ip", &all).await
}
