//! `drvdom doctor` (being written).

use std::process::ExitCode;

/// `drvdom doctor` arguments.
#[derive(clap::Args, Debug)]
pub struct DoctorArgs {
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

/// Run `drvdom doctor`.
pub fn run(_args: DoctorArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("drvdom doctor is not built yet")
}
