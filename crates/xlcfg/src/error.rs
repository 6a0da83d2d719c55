//! The crate's one error type.

use std::path::PathBuf;

use crate::diag::Diagnostic;

/// Errors from reading, parsing, interpreting or editing xl.cfg data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file does not parse (xl would refuse it); every error found is listed.
    #[error("{file}: {} error(s); first: {}", diagnostics.len(), first_message(diagnostics))]
    Parse {
        /// The source name used in the diagnostics.
        file: String,
        /// Every error (and warning) found, in order of discovery.
        diagnostics: Vec<Diagnostic>,
    },
    /// A device spec string (`vif`, `pci`, `disk` list entry) is invalid.
    #[error("invalid {device} spec `{spec}`: {message}")]
    Spec {
        /// `vif`, `pci` or `disk`.
        device: &'static str,
        /// The spec string.
        spec: String,
        /// What is wrong.
        message: String,
        /// The exit status `xl create` uses for this error.
        exit_status: i32,
    },
    /// A top-level key has a value xl refuses (fatal in `xl create`).
    #[error("{message}")]
    Domain {
        /// What is wrong, in xl's words where possible.
        message: String,
        /// The key at fault, when there is one.
        key: Option<String>,
    },
    /// A typed value cannot be written in a form xl reads back identically.
    #[error("cannot write {field} value `{value}`: {why}")]
    Unrepresentable {
        /// The field.
        field: &'static str,
        /// The value.
        value: String,
        /// Why not.
        why: &'static str,
    },
}

fn first_message(diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .find(|d| d.severity == crate::diag::Severity::Error)
        .map(|d| format!("{}:{}: {}", d.line, d.column, d.message))
        .unwrap_or_default()
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
