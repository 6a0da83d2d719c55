//! One module per subcommand. Each exposes its clap type and
//! `run(..) -> anyhow::Result<ExitCode>`.

pub mod bridge;
pub mod config;
pub mod doctor;
pub mod host;
pub mod lab;
pub mod output;
pub mod pci;
mod pci_record;
pub mod reconcile;
pub mod toolstack;
pub mod vif;

pub use output::usage_error;
