//! `drvdom bridge` (being written).

use std::process::ExitCode;

/// `drvdom bridge` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum BridgeCmd {
    /// Not built yet.
    Todo,
}

/// Run `drvdom bridge`.
pub fn run(_cmd: BridgeCmd) -> anyhow::Result<ExitCode> {
    anyhow::bail!("drvdom bridge is not built yet")
}
