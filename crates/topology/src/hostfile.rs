//! Reading a host file (SPEC.md §1): TOML to [`Topology`], with every
//! problem reported as an [`xlcfg::Diagnostic`] at file:line:column with a
//! stable code (`TOPO-UNKNOWN-KEY`, ...). The checks across entries
//! (§2: duplicates, references, MACs, addresses) are in the private `check` module.
//!
//! Nothing here touches the host: a file with errors produces diagnostics
//! and no [`Topology`].

use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeArray, DeTable, DeValue};
use xentypes::{Bdf, DevId, IpCidr, MacAddr};
use xlcfg::{Diagnostic, Kind, Severity};

use crate::check;
use crate::error::{Error, Result};
use crate::model::{Bridge, DriverDomain, Guest, Topology, Uplink, Vif, VifMode};

/// The host file versions this build reads.
pub const SUPPORTED_VERSIONS: &[i64] = &[1];
/// Largest host file we read (a 10,000-guest file is well under this).
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// How strict to be.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct LoadOptions {
    /// Every domain needs a `config` naming an existing xl.cfg (real host).
    pub require_configs: bool,
}

impl LoadOptions {
    /// Options for a real host (`config` required) or not.
    pub fn new(require_configs: bool) -> Self {
        LoadOptions { require_configs }
    }
}

/// A valid host file: the model and any warnings.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The desired host.
    pub topology: Topology,
    /// Warnings (e.g. a MAC outside the Xen OUI).
    pub warnings: Vec<Diagnostic>,
    /// The file's text (to render the warnings' carets).
    pub source: String,
}

/// Read and check a host file. Errors: [`Error::ReadFile`], or
/// [`Error::HostFile`] with every diagnostic.
pub fn load(path: &Path, opts: &LoadOptions) -> Result<Loaded> {
    let meta = std::fs::metadata(path).map_err(|source| Error::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(Error::ReadFile {
            path: path.to_path_buf(),
            source: std::io::Error::other(format!(
                "larger than {MAX_FILE_BYTES} bytes: not a host file"
            )),
        });
    }
    let bytes = std::fs::read(path).map_err(|source| Error::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    let file = path.display().to_string();
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let src = String::from_utf8_lossy(e.as_bytes()).into_owned();
            let d = Diagnostic::at(
                Severity::Error,
                Kind::Topology,
                "the file is not UTF-8 text",
                &file,
                src.as_bytes(),
                at..at + 1,
            )
            .with_code("TOPO-SYNTAX");
            return Err(Error::HostFile {
                file,
                source_text: src,
                diagnostics: vec![d],
            });
        }
    };
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut loaded =
        parse_str(&text, &file, Some(&base), opts).map_err(|diagnostics| Error::HostFile {
            file: file.clone(),
            source_text: text.clone(),
            diagnostics,
        })?;
    loaded.topology.source = Some(path.to_path_buf());
    Ok(loaded)
}

/// Parse and check host file text. `file` names it in diagnostics;
/// `base` is the directory `config` paths are relative to. On error,
/// every diagnostic (errors and warnings) in file order.
pub fn parse_str(
    text: &str,
    file: &str,
    base: Option<&Path>,
    opts: &LoadOptions,
) -> std::result::Result<Loaded, Vec<Diagnostic>> {
    let mut cx = Cx {
        src: text,
        file,
        base,
        opts: *opts,
        diags: Vec::new(),
    };
    let doc = match DeTable::parse(text) {
        Ok(d) => d,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            cx.error(
                span,
                "TOPO-SYNTAX",
                format!("not valid TOML: {}", e.message()),
            );
            return Err(cx.diags);
        }
    };
    let mut spans = Spans::default();
    let topo = cx.document(doc.get_ref(), doc.span(), &mut spans);
    let topo = match topo {
        Some(t) if !cx.has_errors() => t,
        _ => {
            cx.sort();
            return Err(cx.diags);
        }
    };
    check::check(&topo, &spans, &mut cx);
    cx.sort();
    if cx.has_errors() {
        return Err(cx.diags);
    }
    let mut topo = topo;
    check::resolve_bridges(&mut topo);
    Ok(Loaded {
        topology: topo,
        warnings: cx.diags,
        source: text.to_string(),
    })
}

/// Where things are in the file, for the checks across entries.
#[derive(Debug, Default)]
pub(crate) struct Spans {
    /// Each driver domain: its name's span.
    pub dd_name: Vec<Range<usize>>,
    /// Each driver domain: each NIC's span.
    pub dd_nics: Vec<Vec<Range<usize>>>,
    /// Each driver domain, each bridge: (name span, uplink span).
    pub bridges: Vec<Vec<BridgeSpans>>,
    /// Each guest: its name's span.
    pub guest_name: Vec<Range<usize>>,
    /// Each guest, each vif: where it is.
    pub vifs: Vec<Vec<VifSpans>>,
}

/// A bridge's name and uplink positions.
pub(crate) type BridgeSpans = (Range<usize>, Option<Range<usize>>);

/// Where a vif's values are.
#[derive(Debug, Default, Clone)]
pub(crate) struct VifSpans {
    /// The `[[guest.vif]]` table.
    pub table: Range<usize>,
    /// `backend`.
    pub backend: Range<usize>,
    /// `bridge`, if given.
    pub bridge: Option<Range<usize>>,
    /// `mac`, if given.
    pub mac: Option<Range<usize>>,
    /// Each `ip` entry.
    pub ip: Vec<Range<usize>>,
    /// `mode`, if given.
    pub mode: Option<Range<usize>>,
}

/// The parse context: the source and the diagnostics so far.
pub(crate) struct Cx<'a> {
    src: &'a str,
    file: &'a str,
    base: Option<&'a Path>,
    opts: LoadOptions,
    diags: Vec<Diagnostic>,
}

type Table<'i> = DeTable<'i>;

const TOP_KEYS: &[&str] = &["version", "driver_domain", "guest"];
const DD_KEYS: &[&str] = &["name", "config", "nics", "permissive", "bridge"];
const BRIDGE_KEYS: &[&str] = &["name", "uplink", "mtu"];
const GUEST_KEYS: &[&str] = &["name", "config", "vif"];
const VIF_KEYS: &[&str] = &[
    "backend",
    "bridge",
    "mac",
    "ip",
    "mtu",
    "mode",
    "trusted",
    "l2_hygiene",
];

/// The name a vif's `backend` uses for dom0.
pub const DOM0: &str = "dom0";

impl Cx<'_> {
    pub(crate) fn diag(
        &mut self,
        severity: Severity,
        span: Range<usize>,
        code: &'static str,
        msg: impl Into<String>,
    ) {
        let d = Diagnostic::at(
            severity,
            Kind::Topology,
            msg,
            self.file,
            self.src.as_bytes(),
            span,
        )
        .with_code(code);
        self.diags.push(d);
    }

    pub(crate) fn error(&mut self, span: Range<usize>, code: &'static str, msg: impl Into<String>) {
        self.diag(Severity::Error, span, code, msg);
    }

    pub(crate) fn warning(
        &mut self,
        span: Range<usize>,
        code: &'static str,
        msg: impl Into<String>,
    ) {
        self.diag(Severity::Warning, span, code, msg);
    }

    /// 1-based line of a byte offset.
    pub(crate) fn line_of(&self, pos: usize) -> usize {
        let pos = pos.min(self.src.len());
        self.src.as_bytes()[..pos]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    fn has_errors(&self) -> bool {
        self.diags.iter().any(Diagnostic::is_error)
    }

    fn sort(&mut self) {
        self.diags
            .sort_by_key(|d| (d.line == 0, d.line, d.column, d.span.end));
    }

    /// Report keys not in `known` (a typo must not be ignored).
    fn unknown_keys(&mut self, t: &Table<'_>, known: &[&str], what: &str) {
        for (k, _) in t.iter() {
            let name = k.get_ref().as_ref();
            if known.contains(&name) {
                continue;
            }
            let hint = known
                .iter()
                .filter(|c| close(name, c))
                .map(|c| format!("; did you mean `{c}`?"))
                .next()
                .unwrap_or_default();
            self.error(
                k.span(),
                "TOPO-UNKNOWN-KEY",
                format!(
                    "unknown key `{name}` in {what} (known: {}){hint}",
                    known.join(", ")
                ),
            );
        }
    }

    fn wrong_type(&mut self, v: &Spanned<DeValue<'_>>, key: &str, want: &str) {
        self.error(
            v.span(),
            "TOPO-WRONG-TYPE",
            format!(
                "`{key}` must be {want}, not {}",
                a_type(v.get_ref().type_str())
            ),
        );
    }

    fn str_of<'t>(&mut self, t: &'t Table<'_>, key: &str) -> Option<(&'t str, Range<usize>)> {
        let v = get(t, key)?;
        match v.get_ref() {
            DeValue::String(s) => Some((s.as_ref(), v.span())),
            _ => {
                self.wrong_type(v, key, "a string");
                None
            }
        }
    }

    fn required_str<'t>(
        &mut self,
        t: &'t Table<'_>,
        key: &str,
        table_span: &Range<usize>,
        what: &str,
    ) -> Option<(&'t str, Range<usize>)> {
        if get(t, key).is_none() {
            self.error(
                table_span.clone(),
                "TOPO-MISSING-KEY",
                format!("{what} has no `{key}` (required)"),
            );
            return None;
        }
        self.str_of(t, key)
    }

    fn bool_of(&mut self, t: &Table<'_>, key: &str) -> Option<bool> {
        let v = get(t, key)?;
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(v, key, "true or false");
                None
            }
        }
    }

    fn mtu_of(&mut self, t: &Table<'_>, key: &str) -> Option<u32> {
        let v = get(t, key)?;
        let n = match v.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).ok(),
            _ => {
                self.wrong_type(v, key, "an integer");
                return None;
            }
        };
        match n.and_then(|n| u32::try_from(n).ok()) {
            Some(m) if (xenbus::validate::MTU_MIN..=xenbus::validate::MTU_MAX).contains(&m) => {
                Some(m)
            }
            _ => {
                self.error(
                    v.span(),
                    "TOPO-BAD-MTU",
                    format!(
                        "`{key}` must be in {}..={}",
                        xenbus::validate::MTU_MIN,
                        xenbus::validate::MTU_MAX
                    ),
                );
                None
            }
        }
    }

    /// An array of strings, each with its span.
    fn str_list(&mut self, t: &Table<'_>, key: &str) -> Vec<(String, Range<usize>)> {
        let Some(v) = get(t, key) else {
            return Vec::new();
        };
        let DeValue::Array(a) = v.get_ref() else {
            self.wrong_type(v, key, "a list of strings");
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in a.iter() {
            match item.get_ref() {
                DeValue::String(s) => out.push((s.to_string(), item.span())),
                _ => self.wrong_type(item, key, "a list of strings"),
            }
        }
        out
    }

    /// An array of tables (`[[key]]` or `key = [{...}]`).
    fn tables<'t, 'i>(
        &mut self,
        t: &'t Table<'i>,
        key: &str,
    ) -> Vec<(&'t Table<'i>, Range<usize>)> {
        let Some(v) = get(t, key) else {
            return Vec::new();
        };
        let DeValue::Array(a) = v.get_ref() else {
            self.wrong_type(v, key, &format!("a list of tables (`[[{key}]]`)"));
            return Vec::new();
        };
        tables_in(self, a, key)
    }

    fn document(
        &mut self,
        doc: &Table<'_>,
        doc_span: Range<usize>,
        spans: &mut Spans,
    ) -> Option<Topology> {
        self.unknown_keys(doc, TOP_KEYS, "the host file");
        match get(doc, "version") {
            None => self.error(
                0..0,
                "TOPO-VERSION-MISSING",
                format!(
                    "the host file has no `version`; add `version = 1` at the top (supported: {})",
                    versions()
                ),
            ),
            Some(v) => match v.get_ref() {
                DeValue::Integer(i)
                    if i64::from_str_radix(i.as_str(), i.radix())
                        .is_ok_and(|n| SUPPORTED_VERSIONS.contains(&n)) => {}
                DeValue::Integer(_) => self.error(
                    v.span(),
                    "TOPO-VERSION-UNSUPPORTED",
                    format!("unsupported `version`; this drvdom reads {}", versions()),
                ),
                _ => self.wrong_type(v, "version", "an integer"),
            },
        }
        let _ = doc_span;
        let mut topo = Topology::default();
        for (t, span) in self.tables(doc, "driver_domain") {
            let (dd, nics, bridges, name_span) = self.driver_domain(t, span);
            spans.dd_name.push(name_span);
            spans.dd_nics.push(nics);
            spans.bridges.push(bridges);
            topo.driver_domains.push(dd);
        }
        for (t, span) in self.tables(doc, "guest") {
            let (g, name_span, vifs) = self.guest(t, span);
            spans.guest_name.push(name_span);
            spans.vifs.push(vifs);
            topo.guests.push(g);
        }
        Some(topo)
    }

    fn name(&mut self, t: &Table<'_>, span: &Range<usize>, what: &str) -> (String, Range<usize>) {
        match self.required_str(t, "name", span, what) {
            Some((n, s)) => {
                if let Err(why) = check_domain_name(n) {
                    self.error(
                        s.clone(),
                        "TOPO-BAD-NAME",
                        format!("bad domain name {n:?}: {why}"),
                    );
                }
                (n.to_string(), s)
            }
            None => (String::new(), span.clone()),
        }
    }

    fn config(&mut self, t: &Table<'_>, span: &Range<usize>, what: &str) -> Option<PathBuf> {
        let got = self.str_of(t, "config");
        match got {
            None => {
                if self.opts.require_configs && get(t, "config").is_none() {
                    self.error(
                        span.clone(),
                        "TOPO-CONFIG-MISSING",
                        format!(
                            "{what} has no `config`: a real host creates every domain with \
                             `xl create` from its xl.cfg (add `config = \"<name>.cfg\"`)"
                        ),
                    );
                }
                None
            }
            Some((c, s)) => {
                let p = Path::new(c);
                let abs = match self.base {
                    Some(b) if p.is_relative() => b.join(p),
                    _ => p.to_path_buf(),
                };
                if c.is_empty() {
                    self.error(s, "TOPO-BAD-VALUE", "`config` is empty");
                    return None;
                }
                if self.opts.require_configs && !abs.is_file() {
                    self.error(
                        s,
                        "TOPO-CONFIG-NOT-FOUND",
                        format!("xl.cfg {} does not exist", abs.display()),
                    );
                }
                Some(abs)
            }
        }
    }

    fn driver_domain(
        &mut self,
        t: &Table<'_>,
        span: Range<usize>,
    ) -> (
        DriverDomain,
        Vec<Range<usize>>,
        Vec<BridgeSpans>,
        Range<usize>,
    ) {
        self.unknown_keys(t, DD_KEYS, "[[driver_domain]]");
        let (name, name_span) = self.name(t, &span, "[[driver_domain]]");
        let what = format!("driver domain {name:?}");
        let config = self.config(t, &span, &what);
        let mut nics = Vec::new();
        let mut nic_spans = Vec::new();
        for (s, sp) in self.str_list(t, "nics") {
            match s.parse::<Bdf>() {
                Ok(b) => {
                    nics.push(b);
                    nic_spans.push(sp);
                }
                Err(e) => self.error(sp, "TOPO-BAD-BDF", e.to_string()),
            }
        }
        let permissive = self.bool_of(t, "permissive").unwrap_or(false);
        let mut bridges = Vec::new();
        let mut bridge_spans = Vec::new();
        for (bt, bspan) in self.tables(t, "bridge") {
            self.unknown_keys(bt, BRIDGE_KEYS, "[[driver_domain.bridge]]");
            let (bname, bname_span) =
                match self.required_str(bt, "name", &bspan, "[[driver_domain.bridge]]") {
                    Some((n, s)) => {
                        if let Err(e) = xenbus::validate::ifname("bridge", n.as_bytes()) {
                            self.error(
                                s.clone(),
                                "TOPO-BAD-NAME",
                                format!("bad bridge name {n:?}: {}", inner_reason(&e)),
                            );
                        }
                        (n.to_string(), s)
                    }
                    None => (String::new(), bspan.clone()),
                };
            let uplink = match self.str_of(bt, "uplink") {
                None => None,
                Some((u, us)) => {
                    let up = if looks_like_bdf(u) {
                        match u.parse::<Bdf>() {
                            Ok(b) => Some(Uplink::Nic(b)),
                            Err(e) => {
                                self.error(us.clone(), "TOPO-BAD-UPLINK", e.to_string());
                                None
                            }
                        }
                    } else {
                        match xenbus::validate::ifname("uplink", u.as_bytes()) {
                            Ok(_) => Some(Uplink::Iface(u.to_string())),
                            Err(e) => {
                                self.error(
                                    us.clone(),
                                    "TOPO-BAD-UPLINK",
                                    format!(
                                        "uplink {u:?} is neither one of this domain's `nics` (a BDF) \
                                         nor an interface name: {}",
                                        inner_reason(&e)
                                    ),
                                );
                                None
                            }
                        }
                    };
                    up.map(|x| (x, us))
                }
            };
            let mtu = self.mtu_of(bt, "mtu");
            bridge_spans.push((bname_span, uplink.as_ref().map(|(_, s)| s.clone())));
            bridges.push(Bridge {
                name: bname,
                uplink: uplink.map(|(u, _)| u),
                mtu,
            });
        }
        (
            DriverDomain {
                name,
                config,
                nics,
                permissive,
                bridges,
            },
            nic_spans,
            bridge_spans,
            name_span,
        )
    }

    fn guest(&mut self, t: &Table<'_>, span: Range<usize>) -> (Guest, Range<usize>, Vec<VifSpans>) {
        self.unknown_keys(t, GUEST_KEYS, "[[guest]]");
        let (name, name_span) = self.name(t, &span, "[[guest]]");
        let what = format!("guest {name:?}");
        let config = self.config(t, &span, &what);
        let mut vifs = Vec::new();
        let mut vspans = Vec::new();
        for (i, (vt, vspan)) in self.tables(t, "vif").into_iter().enumerate() {
            self.unknown_keys(vt, VIF_KEYS, "[[guest.vif]]");
            let mut sp = VifSpans {
                table: vspan.clone(),
                ..VifSpans::default()
            };
            let backend = match self.required_str(vt, "backend", &vspan, "[[guest.vif]]") {
                Some((b, s)) => {
                    sp.backend = s;
                    b.to_string()
                }
                None => {
                    sp.backend = vspan.clone();
                    String::new()
                }
            };
            let bridge = self.str_of(vt, "bridge").map(|(b, s)| {
                if let Err(e) = xenbus::validate::ifname("bridge", b.as_bytes()) {
                    self.error(
                        s.clone(),
                        "TOPO-BAD-NAME",
                        format!("bad bridge name {b:?}: {}", inner_reason(&e)),
                    );
                }
                sp.bridge = Some(s);
                b.to_string()
            });
            let mac = match self.str_of(vt, "mac") {
                Some((m, s)) => {
                    sp.mac = Some(s.clone());
                    match MacAddr::parse_strict(m) {
                        Ok(m) => m,
                        Err(e) => {
                            self.error(s, "TOPO-BAD-MAC", e.to_string());
                            MacAddr::ZERO
                        }
                    }
                }
                None => default_mac(&name, i),
            };
            let mut ip = Vec::new();
            for (a, s) in self.str_list(vt, "ip") {
                match a.parse::<IpCidr>() {
                    Ok(c) if a.contains('/') => ip.push(c),
                    Ok(_) => self.error(
                        s.clone(),
                        "TOPO-BAD-IP",
                        format!(
                            "ip {a:?} has no prefix length; write it as address/prefix, e.g. {a}/24"
                        ),
                    ),
                    Err(e) => self.error(s.clone(), "TOPO-BAD-IP", e.to_string()),
                }
                sp.ip.push(s);
            }
            let mtu = self.mtu_of(vt, "mtu");
            let mode = match self.str_of(vt, "mode") {
                None => VifMode::Bridge,
                Some((m, s)) => {
                    sp.mode = Some(s.clone());
                    match m {
                        "bridge" => VifMode::Bridge,
                        "route" => VifMode::Route,
                        _ => {
                            self.error(
                                s,
                                "TOPO-BAD-VALUE",
                                format!("`mode` must be \"bridge\" or \"route\", not {m:?}"),
                            );
                            VifMode::Bridge
                        }
                    }
                }
            };
            let trusted = self.bool_of(vt, "trusted").unwrap_or(backend == DOM0);
            let l2_hygiene = self.bool_of(vt, "l2_hygiene").unwrap_or(true);
            let devid = DevId(u32::try_from(i).unwrap_or(u32::MAX));
            vspans.push(sp);
            vifs.push(Vif {
                devid,
                backend,
                bridge,
                mac,
                ip,
                mtu,
                mode,
                trusted,
                l2_hygiene,
            });
        }
        (Guest { name, config, vifs }, name_span, vspans)
    }
}

fn tables_in<'t, 'i>(
    cx: &mut Cx<'_>,
    a: &'t DeArray<'i>,
    key: &str,
) -> Vec<(&'t Table<'i>, Range<usize>)> {
    let mut out = Vec::new();
    for item in a.iter() {
        match item.get_ref() {
            DeValue::Table(t) => out.push((t, item.span())),
            _ => cx.wrong_type(item, key, &format!("a table (`[[{key}]]`)")),
        }
    }
    out
}

fn get<'t, 'i>(t: &'t Table<'i>, key: &str) -> Option<&'t Spanned<DeValue<'i>>> {
    t.iter()
        .find(|(k, _)| k.get_ref().as_ref() == key)
        .map(|(_, v)| v)
}

fn versions() -> String {
    SUPPORTED_VERSIONS
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn a_type(t: &str) -> String {
    match t.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => format!("an {t}"),
        _ => format!("a {t}"),
    }
}

/// The reason part of a xenbus validation error.
fn inner_reason(e: &xenbus::Error) -> String {
    e.to_string()
}

/// A BDF has a `.` and a `:` (`03:00.0`); interface names may have one of
/// them but not both... except VLAN-like names, which have no `:`.
fn looks_like_bdf(s: &str) -> bool {
    s.contains(':') && s.contains('.')
}

/// Edit distance at most 2 (for "did you mean").
fn close(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a.len().abs_diff(b.len()) > 2 || a.len() > 64 {
        return false;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()] <= 2
}

/// The default MAC of vif `index` of `guest`: stable across runs and hosts
/// (a hash of `"<guest>/<index>"` in the Xen OUI).
pub fn default_mac(guest: &str, index: usize) -> MacAddr {
    MacAddr::derived_xen(format!("{guest}/{index}").as_bytes())
}

/// xl's rules for a domain name, plus what drvdom needs to use it in
/// paths and namespace names: 1..=64 characters of `A-Z a-z 0-9 _ . -`,
/// not starting with `-` or `.`, not all digits (xl would read a domid),
/// not `Domain-0`/`dom0`.
pub fn check_domain_name(n: &str) -> std::result::Result<(), &'static str> {
    if n.is_empty() {
        return Err("empty");
    }
    if n.len() > 64 {
        return Err("longer than 64 characters");
    }
    if !n
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Err("only A-Z a-z 0-9 _ . - are allowed");
    }
    if n.starts_with(['-', '.']) {
        return Err("must not start with - or .");
    }
    if n.bytes().all(|b| b.is_ascii_digit()) {
        return Err("all digits: xl would read it as a domain id");
    }
    if n == "Domain-0" || n == DOM0 {
        return Err("reserved for dom0");
    }
    Ok(())
}

#[cfg(test)]
mod tests;
