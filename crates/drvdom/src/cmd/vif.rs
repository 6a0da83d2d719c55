//! `drvdom vif` (being written).

use std::process::ExitCode;

/// `drvdom vif` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum VifCmd {
    /// Not built yet.
    Todo,
}

/// Run `drvdom vif`.
pub fn run(_cmd: VifCmd) -> anyhow::Result<ExitCode> {
    anyhow::bail!("drvdom vif is not built yet")
}
