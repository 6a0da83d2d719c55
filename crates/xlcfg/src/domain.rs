//! The typed view of a domain: the top-level keys a driver-domain toolstack
//! needs and the device lists, interpreted as `xl create` does (SPEC.md §2).

use std::ops::Range;

use serde::Serialize;

use crate::diag::{Diagnostic, Kind, Locator, Severity};
use crate::disk::DiskSpec;
use crate::document::{Document, Value};
use crate::error::Error;
use crate::pci::{PciSpec, RdmPolicy};
use crate::settings::{GetterWarning, Settings};
use crate::vif::{SpecWarning, VifSpec};

/// The guest type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DomainType {
    /// Hardware virtualised.
    Hvm,
    /// Paravirtualised.
    Pv,
    /// PVH.
    Pvh,
}

impl DomainType {
    /// The keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hvm => "hvm",
            Self::Pv => "pv",
            Self::Pvh => "pvh",
        }
    }
}

/// An `on_*` action (xl's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// `destroy`
    Destroy,
    /// `restart`
    Restart,
    /// `rename-restart`
    RenameRestart,
    /// `preserve`
    Preserve,
    /// `coredump-destroy`
    CoredumpDestroy,
    /// `coredump-restart`
    CoredumpRestart,
    /// `soft-reset`
    SoftReset,
}

impl Action {
    const ALL: [(&'static str, Action); 7] = [
        ("destroy", Action::Destroy),
        ("restart", Action::Restart),
        ("rename-restart", Action::RenameRestart),
        ("preserve", Action::Preserve),
        ("coredump-destroy", Action::CoredumpDestroy),
        ("coredump-restart", Action::CoredumpRestart),
        ("soft-reset", Action::SoftReset),
    ];

    /// Parse xl's action name (exact match).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == s).map(|(_, a)| *a)
    }

    /// xl's name.
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, a)| *a == self)
            .map_or("destroy", |(n, _)| n)
    }
}

/// The `on_*` actions as given (`None` = xl's default).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Actions {
    /// `on_poweroff`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub poweroff: Option<Action>,
    /// `on_reboot` (default restart)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reboot: Option<Action>,
    /// `on_watchdog`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watchdog: Option<Action>,
    /// `on_crash`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crash: Option<Action>,
    /// `on_soft_reset` (default soft-reset)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub soft_reset: Option<Action>,
}

/// A network interface of the domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Nic {
    /// Effective device id (`devid=` or the position in the list).
    pub devid: i32,
    /// The parsed entry.
    #[serde(flatten)]
    pub spec: VifSpec,
    /// Byte span of the entry in the file.
    #[serde(skip)]
    pub span: Option<Range<usize>>,
}

/// A passed-through PCI device, with the domain-wide defaults applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PciDevice {
    /// The parsed entry.
    #[serde(flatten)]
    pub spec: PciSpec,
    /// Effective `permissive`.
    pub effective_permissive: bool,
    /// Effective `msitranslate`.
    pub effective_msitranslate: bool,
    /// Effective `seize`.
    pub effective_seize: bool,
    /// Effective `power_mgmt`.
    pub effective_power_mgmt: bool,
    /// Effective `rdm_policy`.
    pub effective_rdm_policy: RdmPolicy,
    /// Byte span of the entry in the file.
    #[serde(skip)]
    pub span: Option<Range<usize>>,
}

/// A block device of the domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Disk {
    /// The parsed entry.
    #[serde(flatten)]
    pub spec: DiskSpec,
    /// Byte span of the entry in the file.
    #[serde(skip)]
    pub span: Option<Range<usize>>,
}

/// The typed view of one xl.cfg file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct DomainConfig {
    /// `name` (required).
    pub name: String,
    /// `type` / `builder` (default pv).
    #[serde(rename = "type")]
    pub domain_type: DomainType,
    /// `uuid`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// `memory` in MiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<i64>,
    /// `maxmem` in MiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maxmem: Option<i64>,
    /// `vcpus`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vcpus: Option<i64>,
    /// `maxvcpus`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maxvcpus: Option<i64>,
    /// `kernel`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    /// `ramdisk`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ramdisk: Option<String>,
    /// The kernel command line: `cmdline`, else composed from `root` and `extra`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmdline: Option<String>,
    /// `bootloader`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bootloader: Option<String>,
    /// `driver_domain` (`None` when not given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver_domain: Option<bool>,
    /// `pci_permissive` (default for every pci entry).
    pub pci_permissive: bool,
    /// `pci_msitranslate`
    pub pci_msitranslate: bool,
    /// `pci_seize`
    pub pci_seize: bool,
    /// `pci_power_mgmt`
    pub pci_power_mgmt: bool,
    /// `rdm` policy (default for every pci entry).
    pub rdm_policy: RdmPolicy,
    /// `on_*` actions.
    pub actions: Actions,
    /// PV with PCI devices: xl forces `e820_host`.
    pub e820_host: bool,
    /// `vif` entries.
    pub vifs: Vec<Nic>,
    /// `pci` entries.
    pub pcis: Vec<PciDevice>,
    /// `disk` entries.
    pub disks: Vec<Disk>,
}

impl DomainConfig {
    /// True when `driver_domain` is set to a non-zero value.
    pub fn is_driver_domain(&self) -> bool {
        self.driver_domain == Some(true)
    }

    /// Effective `max_memkb` (`maxmem`, else `memory`), in KiB.
    pub fn max_memkb(&self) -> Option<i64> {
        self.maxmem.or(self.memory).map(|m| m.saturating_mul(1024))
    }
}

/// A successful interpretation: the view and the warnings xl (or we) print.
#[derive(Debug, Clone)]
pub struct Interpreted {
    /// The typed view.
    pub config: DomainConfig,
    /// Warnings, in the order found.
    pub warnings: Vec<Diagnostic>,
}

/// A device list item: index, spec string, and its token span in the file
/// with whether the token is exactly the quoted spec.
type DeviceItem = (usize, String, Option<(Range<usize>, bool)>);

struct Cx<'a> {
    settings: &'a Settings,
    file: &'a str,
    source: &'a [u8],
    loc: Locator<'a>,
    diags: Vec<Diagnostic>,
}

impl Cx<'_> {
    fn value_span(&self, key: &str) -> Option<Range<usize>> {
        self.settings
            .get(key)?
            .origin
            .as_ref()
            .map(|o| o.value_span.clone())
    }

    fn diag_at(
        &self,
        sev: Severity,
        kind: Kind,
        msg: String,
        span: Option<Range<usize>>,
    ) -> Diagnostic {
        match span {
            Some(s) if !self.source.is_empty() => self.loc.diag(sev, kind, msg, self.file, s),
            _ => Diagnostic::unplaced(sev, kind, msg, self.file),
        }
    }

    fn warn_key(&mut self, key: &str, kind: Kind, msg: String) {
        let d = self.diag_at(Severity::Warning, kind, msg, self.value_span(key));
        self.diags.push(d);
    }

    fn fatal_key(&mut self, key: Option<&str>, msg: String) -> Diagnostic {
        let span = key.and_then(|k| self.value_span(k));
        self.diag_at(Severity::Error, Kind::Domain, msg, span)
    }

    fn getter<T>(&mut self, r: Result<Option<T>, GetterWarning>) -> Option<T> {
        match r {
            Ok(v) => v,
            Err(w) => {
                self.warn_key(&w.key.clone(), Kind::Value, w.message);
                None
            }
        }
    }

    fn string(&mut self, key: &str) -> Option<String> {
        let r = self.settings.string(key).map(|o| o.map(str::to_owned));
        self.getter(r)
    }

    fn long(&mut self, key: &str) -> Option<i64> {
        let r = self.settings.long(key);
        let v = self.getter(r);
        if v.is_some() {
            if let Some(s) = self.settings.get(key).and_then(|s| s.value.as_str()) {
                let t = s.trim_start();
                let t = t.strip_prefix(['+', '-']).unwrap_or(t);
                if t.len() > 1 && t.starts_with('0') && !t.starts_with("0x") && !t.starts_with("0X")
                {
                    self.warn_key(
                        key,
                        Kind::Quirk,
                        format!(
                            "`{s}` has a leading zero, so xl reads it as octal ({})",
                            v.unwrap_or(0)
                        ),
                    );
                }
            }
        }
        v
    }

    /// A device list's string items, stopping at the first non-string (xl
    /// does the same, silently).
    fn device_items(&mut self, key: &str) -> Vec<DeviceItem> {
        let r = self.settings.list(key).map(|o| o.map(<[Value]>::to_vec));
        let Some(items) = self.getter(r) else {
            return Vec::new();
        };
        let origin_items = self
            .settings
            .get(key)
            .and_then(|s| s.origin.as_ref())
            .map(|o| o.items.clone());
        let mut out = Vec::new();
        for (i, it) in items.iter().enumerate() {
            let pos = origin_items.as_ref().and_then(|v| v.get(i).cloned());
            match it {
                Value::Str(s) => out.push((i, s.clone(), pos)),
                Value::List(_) => {
                    let d = self.diag_at(
                        Severity::Warning,
                        Kind::Quirk,
                        format!("nested list in `{key}`: xl silently ignores this entry and every one after it"),
                        pos.map(|p| p.0),
                    );
                    self.diags.push(d);
                    break;
                }
            }
        }
        out
    }

    fn spec_warnings(
        &mut self,
        device: &str,
        ws: Vec<SpecWarning>,
        pos: &Option<(Range<usize>, bool)>,
    ) {
        for w in ws {
            let span = pos.as_ref().map(|(s, plain)| {
                if *plain {
                    s.start + 1 + w.span.start..s.start + 1 + w.span.end
                } else {
                    s.clone()
                }
            });
            let d = self.diag_at(
                Severity::Warning,
                Kind::Device,
                format!("{device}: {}", w.message),
                span,
            );
            self.diags.push(d);
        }
    }
}

fn uuid_ok(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                *c == b'-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

/// The prefix rule xl applies to `type` and `builder` values.
fn prefix_of(v: &str, word: &str) -> bool {
    word.starts_with(v)
}

impl DomainConfig {
    /// Interpret a parsed document as `xl create` would. `source` is the
    /// file's bytes (for positions; may be empty). On a fatal problem the
    /// error list ends with the fatal diagnostic.
    pub fn from_document(
        doc: &Document,
        file: &str,
        source: &[u8],
    ) -> Result<Interpreted, Vec<Diagnostic>> {
        let settings = match doc.settings() {
            Ok(s) => s,
            Err(e) => {
                return Err(vec![Diagnostic::unplaced(
                    Severity::Error,
                    Kind::TypeMismatch,
                    e.to_string(),
                    file,
                )]);
            }
        };
        Self::from_settings(&settings, file, source)
    }

    /// Interpret effective settings (see [`DomainConfig::from_document`]).
    pub fn from_settings(
        settings: &Settings,
        file: &str,
        source: &[u8],
    ) -> Result<Interpreted, Vec<Diagnostic>> {
        let mut cx = Cx {
            settings,
            file,
            source,
            loc: Locator::new(source),
            diags: Vec::new(),
        };
        match interpret(&mut cx) {
            Ok(config) => {
                for key in settings.keys() {
                    if !crate::keys::is_known_key(key) {
                        let span = settings
                            .get(key)
                            .and_then(|s| s.origin.as_ref())
                            .map(|o| o.span.start..o.span.start + key.len());
                        let d = cx
                            .diag_at(
                                Severity::Warning,
                                Kind::Domain,
                                crate::keys::unknown_key_message(key),
                                span,
                            )
                            .with_code(crate::keys::UNKNOWN_KEY);
                        cx.diags.push(d);
                    }
                    if let Some(s) = settings.get(key) {
                        if s.assignments > 1 && s.op == crate::document::Op::Assign {
                            cx.warn_key(
                                key,
                                Kind::Quirk,
                                format!(
                                    "`{key}` is assigned {} times; only the last one counts",
                                    s.assignments
                                ),
                            );
                        }
                    }
                }
                Ok(Interpreted {
                    config,
                    warnings: cx.diags,
                })
            }
            Err(fatal) => {
                let mut v = cx.diags;
                v.push(fatal);
                Err(v)
            }
        }
    }
}

fn interpret(cx: &mut Cx<'_>) -> Result<DomainConfig, Diagnostic> {
    // Type first, as xl does: `type` by prefix, then the deprecated `builder`.
    let mut domain_type = None;
    if let Some(t) = cx.string("type") {
        let ty = if prefix_of(&t, "hvm") {
            DomainType::Hvm
        } else if prefix_of(&t, "pv") {
            DomainType::Pv
        } else if prefix_of(&t, "pvh") {
            DomainType::Pvh
        } else {
            return Err(cx.fatal_key(Some("type"), format!("Invalid domain type {t}.")));
        };
        if t != ty.as_str() {
            cx.warn_key(
                "type",
                Kind::Quirk,
                format!(
                    "type `{t}` is matched as a prefix: xl selects {}",
                    ty.as_str()
                ),
            );
        }
        domain_type = Some(ty);
    }
    if let Some(b) = cx.string("builder") {
        let ty = if prefix_of(&b, "hvm") {
            DomainType::Hvm
        } else if prefix_of(&b, "generic") {
            DomainType::Pv
        } else {
            return Err(cx.fatal_key(Some("builder"), format!("Invalid domain type {b}.")));
        };
        if domain_type.is_some_and(|t| t != ty) {
            return Err(cx.fatal_key(
                Some("builder"),
                "Contradicting \"builder\" and \"type\" options specified.".into(),
            ));
        }
        cx.warn_key(
            "builder",
            Kind::Value,
            "`builder` is deprecated; use `type`".into(),
        );
        domain_type = Some(ty);
    }
    let domain_type = domain_type.unwrap_or(DomainType::Pv);

    let Some(name) = cx.string("name") else {
        return Err(cx.fatal_key(None, "Domain name must be specified.".into()));
    };
    let uuid = cx.string("uuid");
    if let Some(u) = &uuid {
        if !uuid_ok(u) {
            return Err(cx.fatal_key(Some("uuid"), format!("Failed to parse UUID: {u}")));
        }
    }
    let driver_domain = cx.long("driver_domain").map(|v| v != 0);

    let vcpus = cx.long("vcpus");
    let maxvcpus = cx.long("maxvcpus");
    let memory = cx.long("memory");
    let maxmem = cx.long("maxmem");

    let mut actions = Actions::default();
    for (key, slot) in [
        ("on_poweroff", &mut actions.poweroff),
        ("on_reboot", &mut actions.reboot),
        ("on_watchdog", &mut actions.watchdog),
        ("on_crash", &mut actions.crash),
        ("on_soft_reset", &mut actions.soft_reset),
    ] {
        if let Some(v) = cx.string(key) {
            match Action::parse(&v) {
                Some(a) => *slot = Some(a),
                None => {
                    let short = key.trim_start_matches("on_");
                    return Err(cx.fatal_key(
                        Some(key),
                        format!("Unknown on_{short} action \"{v}\" specified"),
                    ));
                }
            }
        }
    }

    let kernel = cx.string("kernel");
    let ramdisk = cx.string("ramdisk");
    let bootloader = cx.string("bootloader");
    let root = cx.string("root");
    let extra = cx.string("extra");
    let cmdline = match (cx.string("cmdline"), root, extra) {
        (Some(c), r, e) => {
            if r.is_some() || e.is_some() {
                cx.warn_key(
                    "cmdline",
                    Kind::Value,
                    "ignoring root= and extra= in favour of cmdline=".into(),
                );
            }
            Some(c)
        }
        (None, Some(r), Some(e)) => Some(format!("root={r} {e}")),
        (None, Some(r), None) => Some(format!("root={r}")),
        (None, None, Some(e)) => Some(e),
        (None, None, None) => None,
    };

    let pci_permissive = cx.long("pci_permissive").is_some_and(|v| v != 0);
    let pci_msitranslate = cx.long("pci_msitranslate").is_some_and(|v| v != 0);
    let pci_seize = cx.long("pci_seize").is_some_and(|v| v != 0);
    let pci_power_mgmt = cx.long("pci_power_mgmt").is_some_and(|v| v != 0);
    let mut rdm_policy = RdmPolicy::Strict;
    if let Some(r) = cx.string("rdm") {
        match parse_rdm(&r) {
            Some(p) => rdm_policy = p.unwrap_or(rdm_policy),
            None => return Err(cx.fatal_key(Some("rdm"), format!("Failed to parse rdm \"{r}\""))),
        }
    }

    let mut disks = Vec::new();
    for (_, s, pos) in cx.device_items("disk") {
        match DiskSpec::parse(&s) {
            Ok(p) => {
                cx.spec_warnings("disk", p.warnings, &pos);
                disks.push(Disk {
                    spec: p.spec,
                    span: pos.map(|p| p.0),
                });
            }
            Err(e) => return Err(spec_error(cx, e, pos)),
        }
    }
    let mut vifs = Vec::new();
    for (i, s, pos) in cx.device_items("vif") {
        match VifSpec::parse(&s) {
            Ok(p) => {
                cx.spec_warnings("vif", p.warnings, &pos);
                let devid = p.spec.devid.unwrap_or(i32::try_from(i).unwrap_or(i32::MAX));
                vifs.push(Nic {
                    devid,
                    spec: p.spec,
                    span: pos.map(|p| p.0),
                });
            }
            Err(e) => return Err(spec_error(cx, e, pos)),
        }
    }
    let mut pcis = Vec::new();
    for (_, s, pos) in cx.device_items("pci") {
        match PciSpec::parse(&s) {
            Ok(p) => {
                cx.spec_warnings("pci", p.warnings, &pos);
                let sp = p.spec;
                pcis.push(PciDevice {
                    effective_permissive: sp.permissive.unwrap_or(pci_permissive),
                    effective_msitranslate: sp.msitranslate.unwrap_or(pci_msitranslate),
                    effective_seize: sp.seize.unwrap_or(pci_seize),
                    effective_power_mgmt: sp.power_mgmt.unwrap_or(pci_power_mgmt),
                    effective_rdm_policy: sp.rdm_policy.unwrap_or(rdm_policy),
                    spec: sp,
                    span: pos.map(|p| p.0),
                });
            }
            Err(e) => return Err(spec_error(cx, e, pos)),
        }
    }
    let e820_host = domain_type == DomainType::Pv && !pcis.is_empty();
    Ok(DomainConfig {
        name,
        domain_type,
        uuid,
        memory,
        maxmem,
        vcpus,
        maxvcpus,
        kernel,
        ramdisk,
        cmdline,
        bootloader,
        driver_domain,
        pci_permissive,
        pci_msitranslate,
        pci_seize,
        pci_power_mgmt,
        rdm_policy,
        actions,
        e820_host,
        vifs,
        pcis,
        disks,
    })
}

/// `rdm = "strategy=host,policy=relaxed"`: `Some(policy if given)`, or
/// `None` when invalid.
fn parse_rdm(s: &str) -> Option<Option<RdmPolicy>> {
    let mut policy = None;
    for part in s.split(',') {
        let (k, v) = part.split_once('=')?;
        match (k, v) {
            ("strategy", "host") => {}
            ("policy", "strict") => policy = Some(RdmPolicy::Strict),
            ("policy", "relaxed") => policy = Some(RdmPolicy::Relaxed),
            _ => return None,
        }
    }
    Some(policy)
}

fn spec_error(cx: &mut Cx<'_>, e: Error, pos: Option<(Range<usize>, bool)>) -> Diagnostic {
    let msg = match &e {
        Error::Spec {
            device,
            spec,
            message,
            ..
        } => format!("invalid {device} entry `{spec}`: {message}"),
        other => other.to_string(),
    };
    cx.diag_at(Severity::Error, Kind::Device, msg, pos.map(|p| p.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interp(src: &str) -> Result<Interpreted, Vec<Diagnostic>> {
        let d = Document::parse_str(src, "t").unwrap().document;
        DomainConfig::from_document(&d, "t", src.as_bytes())
    }

    #[test]
    fn driver_domain_view() {
        let i = interp("name='dd'\ndriver_domain=1\npci_permissive=1\npci=['03:00.0','03:00.1,permissive=0']\nmemory=512\n")
            .unwrap();
        let c = i.config;
        assert!(c.is_driver_domain());
        assert_eq!(c.pcis.len(), 2);
        assert!(c.pcis[0].effective_permissive);
        assert!(!c.pcis[1].effective_permissive);
        assert!(c.e820_host);
        assert_eq!(c.max_memkb(), Some(512 * 1024));
    }

    #[test]
    fn appended_list_items_keep_their_positions() {
        let src = "name='x'\nvif=['bridge=a']\nvif+=['bridge=b','mac=zz']\n";
        let i = interp(src).unwrap();
        assert_eq!(i.config.vifs.len(), 3);
        assert_eq!(i.config.vifs[1].span, Some(32..42));
        let w = i
            .warnings
            .iter()
            .find(|w| w.message.contains("mac"))
            .unwrap();
        assert_eq!((w.line, w.column), (3, 23));
    }

    #[test]
    fn type_prefix_warns() {
        let i = interp("name='x'\ntype='p'\n").unwrap();
        assert_eq!(i.config.domain_type, DomainType::Pv);
        assert!(i.warnings.iter().any(|w| w.message.contains("prefix")));
    }

    #[test]
    fn bad_vif_rate_is_fatal_with_position() {
        let e = interp("name='x'\nvif=['rate=10mb/s']\n").unwrap_err();
        let last = e.last().unwrap();
        assert!(last.is_error());
        assert_eq!(last.line, 2);
        assert_eq!(last.column, 6);
    }
}
