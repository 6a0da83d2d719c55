//! `drvdom config` (being written).

use std::process::ExitCode;

/// `drvdom config` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum ConfigCmd {
    /// Not built yet.
    Todo,
}

/// Run `drvdom config`.
pub fn run(_cmd: ConfigCmd) -> anyhow::Result<ExitCode> {
    anyhow::bail!("drvdom config is not built yet")
}
