//! `drvdom lab` (being written).

use std::process::ExitCode;

/// `drvdom lab` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum LabCmd {
    /// Not built yet.
    Todo,
}

/// Run `drvdom lab`.
pub fn run(_cmd: LabCmd) -> anyhow::Result<ExitCode> {
    anyhow::bail!("drvdom lab is not built yet")
}
