//! Driver-domain sanity checks across one or more interpreted files: what
//! `xl create` does not check but a driver-domain setup gets wrong.

use std::collections::HashMap;
use std::ops::Range;

use crate::diag::{Diagnostic, Kind, Locator, Severity};
use crate::domain::DomainConfig;
use crate::pci::PciAddr;
use crate::vif::MacAddr;

/// Code of the warning for a `backend=` naming no file checked.
pub const UNKNOWN_BACKEND: &str = "XLCFG-UNKNOWN-BACKEND";

/// One file that parsed and interpreted.
#[derive(Debug, Clone)]
pub struct CheckedFile {
    /// Source name.
    pub file: String,
    /// The bytes (for positions).
    pub source: Vec<u8>,
    /// The typed view.
    pub config: DomainConfig,
}

struct Located<'a> {
    f: &'a CheckedFile,
    loc: Locator<'a>,
}

impl Located<'_> {
    fn diag(&self, sev: Severity, msg: String, span: Option<&Range<usize>>) -> Diagnostic {
        let f = self.f;
        match span {
            Some(s) => self.loc.diag(sev, Kind::Sanity, msg, &f.file, s.clone()),
            None => Diagnostic::unplaced(sev, Kind::Sanity, msg, &f.file),
        }
    }
}

/// Run the checks; diagnostics come out grouped by file in input order.
///
/// - a driver domain (`driver_domain = 1`) with no `pci` device (it has no
///   hardware to serve), and `pci` devices in a domain without
///   `driver_domain = 1` that other files name as a backend;
/// - a `backend=` (vif or disk) naming a domain that is not among the files
///   given, or that is given but is not a driver domain;
/// - the same MAC address on two interfaces (error);
/// - a MAC outside the Xen OUI 00:16:3e (warning);
/// - one PCI device given to two domains (error).
pub fn cross_check(files: &[CheckedFile]) -> Vec<Vec<Diagnostic>> {
    let mut out: Vec<Vec<Diagnostic>> = files.iter().map(|_| Vec::new()).collect();
    let located: Vec<Located<'_>> = files
        .iter()
        .map(|f| Located {
            f,
            loc: Locator::new(&f.source),
        })
        .collect();
    let by_name: HashMap<&str, usize> = files
        .iter()
        .enumerate()
        .map(|(i, f)| (f.config.name.as_str(), i))
        .collect();
    let mut macs: HashMap<MacAddr, (usize, Option<Range<usize>>)> = HashMap::new();
    let mut bdfs: Vec<(PciAddr, usize, Option<Range<usize>>)> = Vec::new();
    let mut backends_named: HashMap<&str, ()> = HashMap::new();

    for (fi, f) in files.iter().enumerate() {
        let c = &f.config;
        if c.is_driver_domain() && c.pcis.is_empty() {
            out[fi].push(located[fi].diag(
                Severity::Warning,
                format!(
                    "`{}` is a driver domain but has no pci device to drive",
                    c.name
                ),
                None,
            ));
        }
        let backends = c
            .vifs
            .iter()
            .filter_map(|n| n.spec.backend.as_deref().map(|b| (b, n.span.as_ref())))
            .chain(
                c.disks
                    .iter()
                    .filter_map(|d| d.spec.backend.as_deref().map(|b| (b, d.span.as_ref()))),
            );
        for (be, span) in backends {
            backends_named.insert(be, ());
            if be == c.name {
                out[fi].push(located[fi].diag(
                    Severity::Error,
                    format!("`{}` names itself as its backend", c.name),
                    span,
                ));
                continue;
            }
            match by_name.get(be) {
                None => {
                    let drivers = files
                        .iter()
                        .filter(|f| f.config.is_driver_domain())
                        .map(|f| f.config.name.as_str());
                    let hint = crate::keys::did_you_mean(be, drivers)
                        .and_then(|n| by_name.get(n).map(|&i| (n, &files[i].file)))
                        .map(|(n, file)| format!("; did you mean `{n}` ({file})?"))
                        .unwrap_or_default();
                    out[fi].push(
                        located[fi]
                            .diag(
                                Severity::Warning,
                                format!("backend domain `{be}` is not among the files checked; make sure it exists and has driver_domain = 1{hint}"),
                                span,
                            )
                            .with_code(UNKNOWN_BACKEND),
                    );
                }
                Some(&bi) if !files[bi].config.is_driver_domain() => {
                    out[fi].push(located[fi].diag(
                        Severity::Warning,
                        format!(
                            "backend domain `{be}` ({}) does not set driver_domain = 1",
                            files[bi].file
                        ),
                        span,
                    ))
                }
                Some(_) => {}
            }
        }
        for n in &c.vifs {
            let Some(mac) = n.spec.mac else { continue };
            if mac.is_zero() {
                continue;
            }
            if !mac.is_xen_oui() {
                out[fi].push(located[fi].diag(
                    Severity::Warning,
                    format!("MAC {mac} is not in the Xen OUI 00:16:3e"),
                    n.span.as_ref(),
                ));
            }
            match macs.get(&mac) {
                Some((oi, _)) => {
                    let other = &files[*oi];
                    out[fi].push(located[fi].diag(
                        Severity::Error,
                        format!(
                            "duplicate MAC {mac}: also used by `{}` ({})",
                            other.config.name, other.file
                        ),
                        n.span.as_ref(),
                    ));
                }
                None => {
                    macs.insert(mac, (fi, n.span.clone()));
                }
            }
        }
        for p in &c.pcis {
            let Some(b) = p.spec.bdf() else { continue };
            if let Some((ob, oi, _)) = bdfs.iter().find(|(ob, _, _)| ob.overlaps(&b)) {
                let other = &files[*oi];
                let whom = if *oi == fi {
                    "this domain already".to_owned()
                } else {
                    format!("`{}` ({})", other.config.name, other.file)
                };
                out[fi].push(located[fi].diag(
                    Severity::Error,
                    format!("PCI device {b} is also given to {whom} as {ob}"),
                    p.span.as_ref(),
                ));
            } else {
                bdfs.push((b, fi, p.span.clone()));
            }
        }
    }
    for (fi, f) in files.iter().enumerate() {
        let c = &f.config;
        if !c.pcis.is_empty()
            && !c.is_driver_domain()
            && backends_named.contains_key(c.name.as_str())
        {
            out[fi].push(located[fi].diag(
                Severity::Warning,
                format!("`{}` serves other domains' devices and has pci devices but does not set driver_domain = 1", c.name),
                None,
            ));
        }
    }
    out
}
