//! Host selection: the one place outside `cmd::lab` that knows the
//! simulator. `--lab NAME` picks the simulated host NAME; without it the
//! command works on the real host (xl and the host's xenstore). Every
//! toolstack command takes an [`AnyHost`] and sees only `topology::Host`.

use std::path::Path;

use anyhow::Context;
use topology::observed::ObservedNic;
use topology::{
    DomainRole, Host, HostKind, ProbeOutcome, ProbeTarget, RealHost, RealHostConfig, Vif,
};
use xenstore::{AsyncClient, DomId};
use xentypes::Bdf;

use super::output::{Code, cli_error, cli_error_with, not_found};

/// The real host or a simulated one.
#[derive(Debug)]
pub enum AnyHost {
    /// dom0 of a Xen host.
    Real(RealHost),
    /// A `drvdom lab` host.
    Sim(Box<sim::SimHost>),
}

/// The off-Xen message: what to do when the real host is not Xen.
pub const NOT_XEN: &str = "this is not a Xen host (no /proc/xen): on a lab use --lab NAME";

/// True when a real-host command can expect a xenstore: `/proc/xen`
/// exists, or `XENSTORED_PATH` names a server (tests, a driver domain).
pub fn xen_reachable() -> bool {
    std::path::Path::new("/proc/xen").exists()
        || std::env::var_os("XENSTORED_PATH").is_some_and(|v| !v.is_empty())
}

/// The labs that exist under the run root (sorted).
pub fn known_labs() -> Vec<String> {
    sim::lab::list(&sim::lab::run_root())
        .into_iter()
        .filter(sim::lab::LabSummary::exists)
        .map(|l| l.name)
        .collect()
}

/// "no lab NAME" with the running labs listed.
pub fn no_such_lab(name: &str) -> anyhow::Error {
    not_found(
        "running lab",
        name,
        &known_labs(),
        &format!("start one with `drvdom lab up --detach --lab {name}`"),
    )
}

/// Open the host the command line names.
pub async fn open(lab: Option<&str>) -> anyhow::Result<AnyHost> {
    match lab {
        None => {
            if !xen_reachable() {
                return Err(cli_error(Code::NotXen, NOT_XEN));
            }
            Ok(AnyHost::Real(
                RealHost::open(RealHostConfig::default())
                    .await
                    .context("open the real host (use --lab NAME for a simulated one)")?,
            ))
        }
        Some(name) => {
            let root = sim::lab::run_root();
            if sim::lab::state::check_name(name).is_err() || !sim::lab::exists(&root, name) {
                return Err(no_such_lab(name));
            }
            Ok(AnyHost::Sim(Box::new(
                sim::SimHost::open(name, &root)
                    .await
                    .with_context(|| format!("open lab {name}"))?,
            )))
        }
    }
}

impl AnyHost {
    /// True on the real host (xl.cfg files are required there).
    pub fn is_real(&self) -> bool {
        matches!(self, AnyHost::Real(_))
    }

    /// "the real host" / "lab NAME".
    pub fn describe(&self) -> String {
        match self.kind() {
            HostKind::Real => "the real host".to_string(),
            HostKind::Simulated(n) => format!("lab {n}"),
        }
    }
}

macro_rules! each {
    ($self:ident, $h:ident => $e:expr) => {
        match $self {
            AnyHost::Real($h) => $e,
            AnyHost::Sim($h) => $e,
        }
    };
}

impl Host for AnyHost {
    fn kind(&self) -> HostKind {
        each!(self, h => h.kind())
    }

    fn xenstore(&self) -> &AsyncClient {
        each!(self, h => h.xenstore())
    }

    async fn config_drift(&self, role: DomainRole<'_>) -> topology::Result<Option<String>> {
        each!(self, h => h.config_drift(role).await)
    }

    async fn write_config(&self, role: DomainRole<'_>) -> topology::Result<()> {
        each!(self, h => h.write_config(role).await)
    }

    async fn create_domain(&self, role: DomainRole<'_>) -> topology::Result<DomId> {
        each!(self, h => h.create_domain(role).await)
    }

    async fn destroy_domain(&self, name: &str, domid: DomId) -> topology::Result<()> {
        each!(self, h => h.destroy_domain(name, domid).await)
    }

    async fn assign_nic(&self, bdf: Bdf, permissive: bool) -> topology::Result<()> {
        each!(self, h => h.assign_nic(bdf, permissive).await)
    }

    async fn release_nic(&self, bdf: Bdf) -> topology::Result<()> {
        each!(self, h => h.release_nic(bdf).await)
    }

    async fn nics(&self, bdfs: &[Bdf]) -> topology::Result<Vec<ObservedNic>> {
        each!(self, h => h.nics(bdfs).await)
    }

    async fn vif_connected(&self, guest: &str, domid: DomId, vif: &Vif) -> topology::Result<()> {
        each!(self, h => h.vif_connected(guest, domid, vif).await)
    }

    async fn probe(&self, from: &str, to: &ProbeTarget) -> topology::Result<ProbeOutcome> {
        each!(self, h => h.probe(from, to).await)
    }
}

/// Load a host file for this host (xl.cfg files required on a real host),
/// rendering its diagnostics (carets, or JSON) on error.
pub fn load(path: &Path, real: bool, json: bool) -> anyhow::Result<topology::Loaded> {
    match topology::load(path, &topology::LoadOptions::new(real)) {
        Ok(l) => {
            if !l.warnings.is_empty() && !json {
                #[allow(clippy::print_stderr)] // warnings with carets
                {
                    eprint!(
                        "{}",
                        xlcfg::render_all(&l.warnings, Some(l.source.as_bytes()))
                    );
                }
            }
            Ok(l)
        }
        Err(topology::Error::HostFile {
            file,
            source_text,
            diagnostics,
        }) => {
            let n = diagnostics.iter().filter(|d| d.is_error()).count();
            if !json {
                #[allow(clippy::print_stderr)] // the diagnostics, with carets
                {
                    eprint!(
                        "{}",
                        xlcfg::render_all(&diagnostics, Some(source_text.as_bytes()))
                    );
                }
            }
            Err(cli_error_with(
                Code::InvalidFile,
                format!("{file}: {n} error(s) in the host file; nothing was changed"),
                serde_json::json!({ "diagnostics": diagnostics }),
            ))
        }
        Err(e) => Err(anyhow::Error::new(e)),
    }
}
