//! xl.cfg: a parser and lossless writer compatible with Xen's `xl`
//! (libxlutil 4.17), the `vif`/`pci`/`disk` device spec parsers with
//! canonical writers, a typed view of a domain, and diagnostics with spans.
//!
//! It sits below `topology` and the `drvdom` CLI and depends on nothing in
//! the workspace. It never touches files other than those it is asked to
//! read, and never panics, prints or exits on input: every problem is a
//! [`Diagnostic`] or an [`Error`].
//!
//! ```
//! use xlcfg::{Document, DomainConfig, Value};
//!
//! let src = "name = 'net-dd'  # the driver domain\ndriver_domain = 1\npci = [ '03:00.0' ]\n";
//! let mut doc = Document::parse_str(src, "net-dd.cfg").unwrap().document;
//! assert_eq!(doc.to_bytes(), src.as_bytes()); // lossless
//!
//! let view = DomainConfig::from_document(&doc, "net-dd.cfg", src.as_bytes()).unwrap();
//! assert!(view.config.is_driver_domain());
//! assert_eq!(view.config.pcis[0].spec.bdf().unwrap().to_string(), "0000:03:00.0");
//!
//! doc.append("pci", Value::Str("0000:03:00.1".into())).unwrap();
//! assert!(String::from_utf8(doc.to_bytes()).unwrap().contains("pci = [ '03:00.0', '0000:03:00.1' ]"));
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod check;
mod cnum;
mod diag;
mod disk;
mod document;
mod domain;
mod error;
mod format;
pub mod keys;
mod lexer;
mod parser;
mod pci;
mod settings;
mod vif;

pub use check::{CheckedFile, UNKNOWN_BACKEND, cross_check};
pub use diag::{Diagnostic, Kind, Severity, render_all};
pub use disk::{DiskBackend, DiskFormat, DiskParse, DiskSpec, DiskSpecification};
pub use document::{Document, Entry, Op, Origin, Parsed, Piece, Value, quote};
pub use domain::{Action, Actions, Disk, DomainConfig, DomainType, Interpreted, Nic, PciDevice};
pub use error::{Error, Result};
pub use pci::{Bdf, Func, PciAddr, PciParse, PciSpec, PciTarget, RdmPolicy};
pub use settings::{CLong, GetterWarning, Setting, Settings, c_strtol0};
pub use vif::{
    DEFAULT_RATE_INTERVAL_USECS, MacAddr, NicType, Rate, SpecWarning, VifParse, VifSpec,
};
