//! `disk = [ … ]` entries: DISKSPEC strings (SPEC.md §5), tokenised the
//! way libxlutil's flex scanner (`libxlu_disk_l.l`, 4.17) does: at each
//! position the longest-matching rule wins, the earlier rule on a tie.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::vif::SpecWarning;

/// `format=`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiskFormat {
    /// raw
    Raw,
    /// qcow
    Qcow,
    /// qcow2
    Qcow2,
    /// vhd
    Vhd,
    /// qed
    Qed,
    /// empty (CD-ROM drive with no media)
    Empty,
}

impl DiskFormat {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "" | "raw" => Self::Raw,
            "qcow" => Self::Qcow,
            "qcow2" => Self::Qcow2,
            "vhd" => Self::Vhd,
            "empty" => Self::Empty,
            "qed" => Self::Qed,
            _ => return None,
        })
    }
    /// The keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Qcow => "qcow",
            Self::Qcow2 => "qcow2",
            Self::Vhd => "vhd",
            Self::Qed => "qed",
            Self::Empty => "empty",
        }
    }
}

/// `backendtype=`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiskBackend {
    /// phy
    Phy,
    /// tap
    Tap,
    /// qdisk
    Qdisk,
    /// standalone
    Standalone,
}

impl DiskBackend {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "phy" => Self::Phy,
            "tap" => Self::Tap,
            "qdisk" => Self::Qdisk,
            "standalone" => Self::Standalone,
            _ => return None,
        })
    }
    /// The keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Phy => "phy",
            Self::Tap => "tap",
            Self::Qdisk => "qdisk",
            Self::Standalone => "standalone",
        }
    }
}

/// `specification=`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiskSpecification {
    /// xen (PV block protocol)
    Xen,
    /// virtio
    Virtio,
}

/// One `disk` entry after xl's post-processing (defaults applied).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct DiskSpec {
    /// The target (`pdev_path`): a path, or other backend-specific text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Guest device name (`xvda`, `hdc`…).
    pub vdev: String,
    /// Image format (raw when unspecified).
    pub format: DiskFormat,
    /// Writable.
    pub readwrite: bool,
    /// A CD-ROM drive (removable, read-only).
    pub is_cdrom: bool,
    /// Backend (driver) domain name; unset = dom0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// Backend type; unset = libxl decides.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backendtype: Option<DiskBackend>,
    /// Hotplug script.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    /// `specification=`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub specification: Option<DiskSpecification>,
    /// `direct-io-safe`
    pub direct_io_safe: bool,
    /// `discard` / `no-discard`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discard: Option<bool>,
    /// `colo` / `no-colo`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub colo: Option<bool>,
    /// `colo-host=`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub colo_host: Option<String>,
    /// `colo-port=`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub colo_port: Option<i32>,
    /// `colo-export=`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub colo_export: Option<String>,
    /// `active-disk=`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_disk: Option<String>,
    /// `hidden-disk=`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hidden_disk: Option<String>,
}

impl DiskSpec {
    /// A writable raw disk `target` seen by the guest as `vdev`; set the
    /// other (public) fields as needed.
    pub fn new(target: impl Into<String>, vdev: impl Into<String>) -> Self {
        Self {
            target: Some(target.into()),
            vdev: vdev.into(),
            format: DiskFormat::Raw,
            readwrite: true,
            is_cdrom: false,
            backend: None,
            backendtype: None,
            script: None,
            specification: None,
            direct_io_safe: false,
            discard: None,
            colo: None,
            colo_host: None,
            colo_port: None,
            colo_export: None,
            active_disk: None,
            hidden_disk: None,
        }
    }

    /// libxl's `removable` (true for CD-ROMs).
    pub fn removable(&self) -> bool {
        self.is_cdrom
    }
}

/// A parsed `disk` entry and its warnings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskParse {
    /// The entry.
    pub spec: DiskSpec,
    /// Warnings.
    pub warnings: Vec<SpecWarning>,
}

#[derive(Default)]
struct Ctx {
    target: Option<String>,
    vdev: Option<String>,
    format: Option<DiskFormat>,
    readwrite: bool,
    access_set: bool,
    is_cdrom: bool,
    backend: Option<String>,
    backendtype: Option<DiskBackend>,
    script: Option<String>,
    specification: Option<DiskSpecification>,
    direct_io_safe: bool,
    discard: Option<bool>,
    colo: Option<bool>,
    colo_host: Option<String>,
    colo_port: Option<i32>,
    colo_export: Option<String>,
    active_disk: Option<String>,
    hidden_disk: Option<String>,
    had_depr_prefix: bool,
    err: Option<String>,
}

impl Ctx {
    fn error(&mut self, near: Option<&str>, msg: &str) {
        if self.err.is_none() {
            self.err = Some(match near {
                Some(n) => format!("{msg}: near `{n}'"),
                None => msg.to_owned(),
            });
        }
    }
    fn save(&mut self, which: &'static str, near: &str, value: &str) {
        let slot = match which {
            "target" => &mut self.target,
            "vdev" => &mut self.vdev,
            "backend" => &mut self.backend,
            "script" => &mut self.script,
            "colo-host" => &mut self.colo_host,
            "colo-export" => &mut self.colo_export,
            "active-disk" => &mut self.active_disk,
            _ => &mut self.hidden_disk,
        };
        if slot.as_deref().is_some_and(|s| !s.is_empty()) {
            self.error(Some(near), &format!("{which} respecified"));
            return;
        }
        *slot = Some(value.to_owned());
    }
    fn set_format(&mut self, s: &str) {
        match DiskFormat::parse(s) {
            Some(f) if self.format.is_none_or(|g| g == f) => self.format = Some(f),
            Some(_) => self.error(Some(s), "format respecified"),
            None => self.error(Some(s), "unknown value for format"),
        }
    }
    fn set_access(&mut self, s: &str) {
        match s {
            "r" | "ro" => self.readwrite = false,
            "rw" | "w" | "" => self.readwrite = true,
            _ => self.error(Some(s), "unknown value for access"),
        }
    }
    /// `vdev:cdrom` / `vdev:disk`; false (doing nothing) without a colon.
    fn vdev_and_devtype(&mut self, s: &str) -> bool {
        let Some(colon) = s.rfind(':') else {
            return false;
        };
        let (v, t) = (&s[..colon], &s[colon + 1..]);
        self.save("vdev", v, v);
        match t {
            "cdrom" => self.is_cdrom = true,
            "disk" => self.is_cdrom = false,
            _ => self.error(Some(t), "unknown deprecated type"),
        }
        true
    }
}

/// Keyed rules `KEY=[^,]*,?`, in the scanner's order.
const KEYED: &[&str] = &[
    "format=",
    "access=",
    "backend=",
    "backendtype=",
    "specification=",
    "vdev=",
    "script=",
    "colo-host=",
    "colo-port=",
    "colo-export=",
    "active-disk=",
    "hidden-disk=",
];
/// Flag rules `FLAG,?`, in the scanner's order (4.17: no trusted/untrusted).
const FLAGS: &[&str] = &[
    "cdrom",
    "direct-io-safe",
    "discard",
    "no-discard",
    "colo",
    "no-colo",
];
/// Deprecated target prefixes that are accepted and dropped.
const DROPPED_PREFIXES: &[&str] = &[
    "tapdisk:", "tap:", "tap2:", "aio:", "ioemu:", "file:", "phy:",
];

/// Length of `[^,]*,?` at the start of `s`.
fn to_comma(s: &str) -> usize {
    match s.find(',') {
        Some(i) => i + 1,
        None => s.len(),
    }
}

/// Length of the rest of the line (flex `.*` stops at a newline).
fn line_len(s: &str) -> usize {
    s.find('\n').unwrap_or(s.len())
}

enum Rule<'a> {
    Keyed(&'a str),
    Flag(&'a str),
    DevtypeCdrom,
    DevtypeDisk,
    DevtypeBad,
    Target,
    UnknownParam,
    FormatPrefix,
    ScriptPrefix,
    DroppedPrefix,
    UnknownPrefix,
    Positional,
    Bad,
}

/// Pick the rule at the start of `s`: (rule, bytes consumed). Longest match
/// wins, earlier rule on a tie; trailing context counts for the length but
/// is not consumed (flex semantics).
fn next_rule(s: &str) -> (Rule<'static>, usize) {
    let b = s.as_bytes();
    let mut best: Option<(Rule<'static>, usize, usize)> = None; // rule, match len, consumed
    let mut offer = |r: Rule<'static>, len: usize, consumed: usize| {
        if len > 0 && best.as_ref().is_none_or(|(_, l, _)| len > *l) {
            best = Some((r, len, consumed));
        }
    };
    // format= comes first in the scanner.
    if let Some(rest) = s.strip_prefix("format=") {
        let n = 7 + to_comma(rest);
        offer(Rule::Keyed("format="), n, n);
    }
    for f in ["cdrom"] {
        if s.starts_with(f) {
            let n = f.len() + usize::from(b.get(f.len()) == Some(&b','));
            offer(Rule::Flag(f), n, n);
        }
    }
    for (lit, r) in [("devtype=cdrom", 0), ("devtype=disk", 1)] {
        if s.starts_with(lit) {
            let n = lit.len() + usize::from(b.get(lit.len()) == Some(&b','));
            offer(
                if r == 0 {
                    Rule::DevtypeCdrom
                } else {
                    Rule::DevtypeDisk
                },
                n,
                n,
            );
        }
    }
    if let Some(rest) = s.strip_prefix("devtype=") {
        let n = 8 + to_comma(rest);
        offer(Rule::DevtypeBad, n, n);
    }
    for k in &KEYED[1..] {
        if let Some(rest) = s.strip_prefix(k) {
            let n = k.len() + to_comma(rest);
            offer(Rule::Keyed(k), n, n);
        }
    }
    for f in &FLAGS[1..] {
        if s.starts_with(f) {
            let n = f.len() + usize::from(b.get(f.len()) == Some(&b','));
            offer(Rule::Flag(f), n, n);
        }
    }
    if s.starts_with("target=") {
        let n = line_len(s);
        offer(Rule::Target, n, n);
    }
    // [a-z][-a-z0-9]*=[^,],?
    if b.first().is_some_and(u8::is_ascii_lowercase) {
        let k = b
            .iter()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || **c == b'-')
            .count();
        // flex reads bytes; we keep whole characters so the token stays a str.
        let c = if b.get(k) == Some(&b'=') {
            s[k + 1..].chars().next()
        } else {
            None
        };
        if let Some(c) = c.filter(|c| *c != ',' && *c != '\n') {
            let e = k + 1 + c.len_utf8();
            let n = e + usize::from(b.get(e) == Some(&b','));
            offer(Rule::UnknownParam, n, n);
        }
    }
    // Deprecated prefixes: PREFIX:/.* (the context makes them win).
    let ll = line_len(s);
    for p in ["raw:", "qcow:", "qcow2:", "vhd:"] {
        if s.starts_with(p) {
            offer(Rule::FormatPrefix, ll, p.len());
        }
    }
    for p in ["iscsi:", "nbd:", "enbd:", "drbd:"] {
        if s.starts_with(p) {
            offer(Rule::ScriptPrefix, ll, p.len());
        }
    }
    for p in DROPPED_PREFIXES {
        if s.starts_with(p) {
            offer(Rule::DroppedPrefix, ll, p.len());
        }
    }
    // [a-z][a-z0-9]*:/([^a-z0-9].*)?
    if b.first().is_some_and(u8::is_ascii_lowercase) {
        let k = b
            .iter()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            .count();
        if b.get(k) == Some(&b':') {
            let ctx = match b.get(k + 1) {
                Some(c) if !c.is_ascii_lowercase() && !c.is_ascii_digit() && *c != b'\n' => {
                    line_len(&s[k + 1..])
                }
                _ => 0,
            };
            offer(Rule::UnknownPrefix, k + 1 + ctx, k + 1);
        }
    }
    // [^=,]*,|[^=,]+,?
    let run = b.iter().take_while(|c| **c != b'=' && **c != b',').count();
    let n = run + usize::from(b.get(run) == Some(&b','));
    offer(Rule::Positional, n, n);
    match best {
        Some((r, _, consumed)) => (r, consumed),
        None => (Rule::Bad, line_len(s).max(1)),
    }
}

fn strip_comma(s: &str) -> &str {
    s.strip_suffix(',').unwrap_or(s)
}

impl DiskSpec {
    /// Parse one `disk` entry; every error is fatal in `xl create` (exit 1).
    pub fn parse(spec: &str) -> Result<DiskParse> {
        let mut c = Ctx {
            readwrite: true,
            ..Ctx::default()
        };
        let mut w = Vec::new();
        let mut p = 0;
        while p < spec.len() {
            let rest = &spec[p..];
            let ws = rest
                .bytes()
                .take_while(|b| matches!(b, b' ' | b'\t' | b'\n'))
                .count();
            if ws > 0 {
                p += ws;
                continue;
            }
            let (rule, n) = next_rule(rest);
            let tok = &rest[..n];
            let start = p;
            p += n;
            match rule {
                Rule::Keyed(k) => {
                    let v = strip_comma(&tok[k.len()..]);
                    match k {
                        "format=" => c.set_format(v),
                        "access=" => c.set_access(v),
                        "backendtype=" => match DiskBackend::parse(v) {
                            Some(b) if c.backendtype.is_none_or(|x| x == b) => {
                                c.backendtype = Some(b)
                            }
                            Some(_) => c.error(Some(v), "backend respecified"),
                            None => c.error(Some(v), "unknown value for backendtype"),
                        },
                        "specification=" => match v {
                            "xen" => c.specification = Some(DiskSpecification::Xen),
                            "virtio" => c.specification = Some(DiskSpecification::Virtio),
                            _ => c.error(Some(v), "unknown value for specification"),
                        },
                        "colo-port=" => match crate::cnum::atoi(v.as_bytes()) {
                            0 => c.error(Some(v), "unknown value for colo_port"),
                            n => c.colo_port = Some(n),
                        },
                        _ => {
                            let which = match k {
                                "backend=" => "backend",
                                "vdev=" => "vdev",
                                "script=" => "script",
                                "colo-host=" => "colo-host",
                                "colo-export=" => "colo-export",
                                "active-disk=" => "active-disk",
                                _ => "hidden-disk",
                            };
                            c.save(which, v, v);
                        }
                    }
                }
                Rule::Flag(f) => match f {
                    "cdrom" => c.is_cdrom = true,
                    "direct-io-safe" => c.direct_io_safe = true,
                    "discard" => c.discard = Some(true),
                    "no-discard" => c.discard = Some(false),
                    "colo" => c.colo = Some(true),
                    _ => c.colo = Some(false),
                },
                Rule::DevtypeCdrom => c.is_cdrom = true,
                Rule::DevtypeDisk => c.is_cdrom = false,
                Rule::DevtypeBad => c.error(Some(tok), "unknown value for type"),
                Rule::Target => {
                    let v = strip_comma(&tok[7..]);
                    if v.contains(',') {
                        w.push(SpecWarning {
                            message: "target= takes the rest of the spec, commas included".into(),
                            span: start + 7..start + 7 + v.len(),
                        });
                    }
                    c.save("target", v, v);
                }
                Rule::UnknownParam => c.error(Some(tok), "unknown parameter"),
                Rule::FormatPrefix => {
                    c.had_depr_prefix = true;
                    c.set_format(&tok[..tok.len() - 1]);
                }
                Rule::ScriptPrefix => {
                    c.had_depr_prefix = true;
                    let s = format!("block-{}", &tok[..tok.len() - 1]);
                    c.save("script", &s, &s);
                }
                Rule::DroppedPrefix => c.had_depr_prefix = true,
                Rule::UnknownPrefix => {
                    c.error(Some(tok), "unknown deprecated disk prefix");
                    break;
                }
                Rule::Positional => {
                    let v = strip_comma(tok);
                    if c.err.is_some() {
                        // Later errors are consequences of the first.
                    } else if c.target.is_none() {
                        c.save("target", v, v);
                    } else if !c.had_depr_prefix && c.format.is_none() {
                        if c.target.as_deref() == Some("") && c.vdev_and_devtype(v) {
                            c.format = Some(DiskFormat::Empty);
                        } else {
                            c.set_format(v);
                        }
                    } else if c.vdev.is_none() {
                        if !c.vdev_and_devtype(v) {
                            c.save("vdev", v, v);
                        }
                    } else if !c.access_set {
                        c.access_set = true;
                        c.set_access(v);
                    } else {
                        c.error(Some(v), "too many positional parameters");
                        break;
                    }
                }
                Rule::Bad => {
                    c.error(Some(&rest[..line_len(rest)]), "bad disk syntax");
                    break;
                }
            }
        }
        if let Some(e) = c.err.take() {
            return Err(disk_err(spec, e));
        }
        let mut format = c.format.unwrap_or(DiskFormat::Raw);
        let mut readwrite = c.readwrite;
        if c.is_cdrom {
            readwrite = false;
            if c.target.as_deref().is_none_or(str::is_empty) {
                format = DiskFormat::Empty;
            }
        }
        let Some(vdev) = c.vdev else {
            return Err(disk_err(spec, "no vdev specified".into()));
        };
        if c.target.is_none() && !c.is_cdrom {
            return Err(disk_err(
                spec,
                "no target specified (and device not removable)".into(),
            ));
        }
        Ok(DiskParse {
            spec: DiskSpec {
                target: c.target,
                vdev,
                format,
                readwrite,
                is_cdrom: c.is_cdrom,
                backend: c.backend,
                backendtype: c.backendtype,
                script: c.script,
                specification: c.specification,
                direct_io_safe: c.direct_io_safe,
                discard: c.discard,
                colo: c.colo,
                colo_host: c.colo_host,
                colo_port: c.colo_port,
                colo_export: c.colo_export,
                active_disk: c.active_disk,
                hidden_disk: c.hidden_disk,
            },
            warnings: w,
        })
    }

    /// Canonical spec string, all keyed, `target=` last (SPEC.md §5a).
    pub fn to_spec(&self) -> Result<String> {
        let mut parts = vec![format!("format={}", self.format.as_str())];
        let plain = |field: &'static str, v: &str| -> Result<()> {
            if v.contains(',') || v.starts_with([' ', '\t', '\n']) || v.contains('\n') {
                return Err(Error::Unrepresentable {
                    field,
                    value: v.to_owned(),
                    why: "not a plain disk spec value",
                });
            }
            Ok(())
        };
        plain("vdev", &self.vdev)?;
        if self.vdev.is_empty() {
            return Err(Error::Unrepresentable {
                field: "vdev",
                value: String::new(),
                why: "vdev is required",
            });
        }
        parts.push(format!("vdev={}", self.vdev));
        parts.push(format!(
            "access={}",
            if self.readwrite { "rw" } else { "ro" }
        ));
        if self.is_cdrom {
            parts.push("devtype=cdrom".into());
        }
        for (k, v) in [
            ("backend", &self.backend),
            ("script", &self.script),
            ("colo-host", &self.colo_host),
            ("colo-export", &self.colo_export),
            ("active-disk", &self.active_disk),
            ("hidden-disk", &self.hidden_disk),
        ] {
            if let Some(v) = v {
                plain(k_static(k), v)?;
                parts.push(format!("{k}={v}"));
            }
        }
        if let Some(b) = self.backendtype {
            parts.push(format!("backendtype={}", b.as_str()));
        }
        if let Some(s) = self.specification {
            parts.push(format!(
                "specification={}",
                match s {
                    DiskSpecification::Xen => "xen",
                    DiskSpecification::Virtio => "virtio",
                }
            ));
        }
        if let Some(p) = self.colo_port {
            if p == 0 {
                return Err(Error::Unrepresentable {
                    field: "colo-port",
                    value: "0".into(),
                    why: "must be non-zero",
                });
            }
            parts.push(format!("colo-port={p}"));
        }
        if self.direct_io_safe {
            parts.push("direct-io-safe".into());
        }
        match self.discard {
            Some(true) => parts.push("discard".into()),
            Some(false) => parts.push("no-discard".into()),
            None => {}
        }
        match self.colo {
            Some(true) => parts.push("colo".into()),
            Some(false) => parts.push("no-colo".into()),
            None => {}
        }
        if let Some(t) = &self.target {
            if t.contains('\n') || t.ends_with(',') {
                return Err(Error::Unrepresentable {
                    field: "target",
                    value: t.clone(),
                    why: "not a plain target",
                });
            }
            parts.push(format!("target={t}"));
        }
        Ok(parts.join(","))
    }
}

fn k_static(k: &'static str) -> &'static str {
    k
}

fn disk_err(spec: &str, message: String) -> Error {
    Error::Spec {
        device: "disk",
        spec: spec.to_owned(),
        message,
        exit_status: 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positional_and_keyed_agree() {
        let a = DiskSpec::parse("phy:/dev/vg/guest,xvda,w").unwrap().spec;
        let b = DiskSpec::parse("format=raw,vdev=xvda,access=rw,target=/dev/vg/guest")
            .unwrap()
            .spec;
        assert_eq!(a, b);
        assert_eq!(
            a.to_spec().unwrap(),
            "format=raw,vdev=xvda,access=rw,target=/dev/vg/guest"
        );
    }

    #[test]
    fn unknown_parameter_with_multibyte_value_is_an_error_not_a_panic() {
        // Found by the property tests: the one-character value of the
        // unknown-parameter rule was cut inside a UTF-8 sequence.
        assert!(DiskSpec::parse("a=\u{e9}x,/img,,xvda").is_err());
        assert!(DiskSpec::parse("zz=\u{1F600}").is_err());
    }

    #[test]
    fn built_spec_writes_canonically() {
        let mut d = DiskSpec::new("/dev/vg0/web", "xvda");
        d.backend = Some("storage-dd".into());
        let w = d.to_spec().unwrap();
        assert_eq!(
            w,
            "format=raw,vdev=xvda,access=rw,backend=storage-dd,target=/dev/vg0/web"
        );
        assert_eq!(DiskSpec::parse(&w).unwrap().spec, d);
    }

    #[test]
    fn cdrom_round_trips() {
        for s in [",,hdc:cdrom,r", "cdrom,vdev=hdc", "/iso/x.iso,,hdc:cdrom,r"] {
            let a = DiskSpec::parse(s).unwrap().spec;
            let w = a.to_spec().unwrap();
            assert_eq!(DiskSpec::parse(&w).unwrap().spec, a, "{s} -> {w}");
        }
    }
}
