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

use super::usage_error;

/// The real host or a simulated one.
#[derive(Debug)]
pub enum AnyHost {
    /// dom0 of a Xen host.
    Real(RealHost),
    /// A `drvdom lab` host.
    Sim(Box<sim::SimHost>),
}

/// Open the host the command line names.
pub async fn open(lab: Option<&str>) -> anyhow::Result<AnyHost> {
    match lab {
        None => Ok(AnyHost::Real(
            RealHost::open(RealHostConfig::default())
                .await
                .context("open the real host (use --lab NAME for a simulated one)")?,
        )),
        Some(name) => {
            let root = sim::lab::run_root();
            if !sim::lab::exists(&root, name) {
                return Err(usage_error(format!(
                    "no lab {name:?} is running (start one with `drvdom lab up --detach --lab {name}`)"
                )));
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
            #[allow(clippy::print_stderr, clippy::print_stdout)] // the diagnostics
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "error": format!("{file}: {n} error(s)"), "diagnostics": diagnostics })
                );
            } else {
                eprint!(
                    "{}",
                    xlcfg::render_all(&diagnostics, Some(source_text.as_bytes()))
                );
            }
            Err(usage_error(format!(
                "{file}: {n} error(s) in the host file; nothing was changed"
            )))
        }
        Err(e) => Err(anyhow::Error::new(e)),
    }
}
