//! `drvdom pci` (being written).

use std::process::ExitCode;

/// `drvdom pci` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum PciCmd {
    /// Not built yet.
    Todo,
}

/// Run `drvdom pci`.
pub fn run(_cmd: PciCmd) -> anyhow::Result<ExitCode> {
    anyhow::bail!("drvdom pci is not built yet")
}
