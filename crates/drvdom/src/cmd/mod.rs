//! One module per subcommand. Each exposes its clap type and
//! `run(..) -> anyhow::Result<ExitCode>`.

pub mod bridge;
pub mod config;
pub mod doctor;
pub mod host;
pub mod lab;
pub mod pci;
mod pci_record;
pub mod toolstack;
pub mod vif;

/// An error in what the user gave us (arguments, a config file): exit code 2.
///
/// Wrap with `anyhow::Error::new(UsageError(msg))` or `usage_error(msg)`;
/// everything else is a runtime failure (exit code 1).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Build a usage error (exit code 2).
#[allow(dead_code)]
pub fn usage_error(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(msg.into()))
}

/// 2 for usage/config errors anywhere in the chain, else 1.
pub fn exit_code_for(err: &anyhow::Error) -> u8 {
    if err.chain().any(|e| e.is::<UsageError>()) {
        2
    } else {
        1
    }
}
