//! `pci = [ … ]` entries: PCI passthrough specs (SPEC.md §4), parsed as
//! libxlutil's `xlu_pci_parse_spec_string` (4.17) does.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::cnum::{atoi, scan_hex};
use crate::error::{Error, Result};
use crate::vif::SpecWarning;

pub use xentypes::Bdf;

/// `ERROR_INVAL`: xl's exit status for most pci spec errors.
const EXIT_INVAL: i32 = 6;
/// `ERROR_FAIL`: xl's exit status for an unknown `rdm_policy`.
const EXIT_FAIL: i32 = 3;

/// Limits from SPEC.md §4.1.
const MAX_DOMAIN: u32 = 0xffff;
const MAX_BUS: u32 = 0xff;
const MAX_DEV: u32 = 0x1f;
const MAX_FUNC: u32 = 7;
const MAX_VSLOT: u32 = 0x1f;

/// A PCI function number, or `*` (all functions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Func {
    /// One function, 0–7.
    One(u8),
    /// `*`: every function of the device.
    All,
}

/// What an xl `pci` entry addresses: one PCI function (a [`Bdf`]), or
/// with `*` every function of a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PciAddr {
    /// The address; its function is 0 when `func` is [`Func::All`].
    pub bdf: Bdf,
    /// The function as written.
    pub func: Func,
}

impl PciAddr {
    /// One function.
    pub fn one(bdf: Bdf) -> PciAddr {
        PciAddr {
            bdf,
            func: Func::One(bdf.function()),
        }
    }

    /// True when the two addresses can name the same function.
    pub fn overlaps(&self, o: &PciAddr) -> bool {
        self.bdf.domain() == o.bdf.domain()
            && self.bdf.bus() == o.bdf.bus()
            && self.bdf.device() == o.bdf.device()
            && (self.func == o.func || self.func == Func::All || o.func == Func::All)
    }

    /// The single function addressed, or `None` for `*`.
    pub fn function(&self) -> Option<Bdf> {
        match self.func {
            Func::One(_) => Some(self.bdf),
            Func::All => None,
        }
    }
}

impl fmt::Display for PciAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.bdf;
        write!(f, "{:04x}:{:02x}:{:02x}.", b.domain(), b.bus(), b.device())?;
        match self.func {
            Func::One(n) => write!(f, "{n}"),
            Func::All => f.write_str("*"),
        }
    }
}

impl Serialize for PciAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl FromStr for PciAddr {
    type Err = Error;
    /// The xl forms: `[dddd:]bb:dd.f` with hex numbers, `f` may be `*`.
    fn from_str(s: &str) -> Result<Self> {
        match parse_bdf(s.as_bytes()) {
            Some((b, used)) if used == s.len() => Ok(b),
            _ => Err(Error::Spec {
                device: "pci",
                spec: s.to_owned(),
                message: "not a PCI address ([dddd:]bb:dd.f)".into(),
                exit_status: EXIT_INVAL,
            }),
        }
    }
}

/// Scan a BDF at the start of `s` like libxlutil's `parse_bdf`: count the
/// colons in the leading run of hex digits and `:`, then `sscanf` with
/// `%x`. Returns the address and the bytes used.
pub(crate) fn parse_bdf(s: &[u8]) -> Option<(PciAddr, usize)> {
    let colons = s
        .iter()
        .take_while(|c| c.is_ascii_hexdigit() || **c == b':')
        .filter(|c| **c == b':')
        .count();
    let mut p = 0;
    let mut nums = Vec::with_capacity(3);
    let want = match colons {
        1 => 2,
        2 => 3,
        _ => return None,
    };
    for i in 0..want {
        let (v, used) = scan_hex(&s[p..])?;
        nums.push(v);
        p += used;
        let sep = if i + 1 < want { b':' } else { b'.' };
        if s.get(p) != Some(&sep) {
            return None;
        }
        p += 1;
    }
    let (domain, bus, dev) = if want == 2 {
        (0, nums[0], nums[1])
    } else {
        (nums[0], nums[1], nums[2])
    };
    if domain > MAX_DOMAIN || bus > MAX_BUS || dev > MAX_DEV {
        return None;
    }
    let func = if s.get(p) == Some(&b'*') {
        p += 1;
        Func::All
    } else {
        let (f, used) = scan_hex(&s[p..])?;
        if f > MAX_FUNC {
            return None;
        }
        p += used;
        Func::One(f as u8)
    };
    let f = match func {
        Func::One(f) => f,
        Func::All => 0,
    };
    let bdf = Bdf::new(domain, bus as u8, dev as u8, f).ok()?;
    Some((PciAddr { bdf, func }, p))
}

/// What the entry names: a device address, or a name from the assignable list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PciTarget {
    /// A device address.
    Bdf(PciAddr),
    /// `name=`
    Name(String),
}

/// `rdm_policy=`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RdmPolicy {
    /// Fail if reserved memory conflicts.
    Strict,
    /// Warn only.
    Relaxed,
}

impl RdmPolicy {
    fn parse(s: &str) -> Option<Self> {
        // libxl_rdm_reserve_policy_from_string compares case-insensitively.
        if s.eq_ignore_ascii_case("strict") {
            Some(Self::Strict)
        } else if s.eq_ignore_ascii_case("relaxed") {
            Some(Self::Relaxed)
        } else {
            None
        }
    }

    /// The keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Strict => "strict",
            Self::Relaxed => "relaxed",
        }
    }
}

/// One `pci` entry. Boolean options are `None` when not given in the entry
/// (the domain-wide `pci_*` defaults then apply).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PciSpec {
    /// The device.
    pub target: PciTarget,
    /// Virtual slot in the guest (`@vslot` or `vslot=`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vslot: Option<u8>,
    /// `permissive=`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permissive: Option<bool>,
    /// `msitranslate=`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msitranslate: Option<bool>,
    /// `seize=`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seize: Option<bool>,
    /// `power_mgmt=`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub power_mgmt: Option<bool>,
    /// `rdm_policy=`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rdm_policy: Option<RdmPolicy>,
}

/// A parsed `pci` entry and its warnings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciParse {
    /// The entry.
    pub spec: PciSpec,
    /// Warnings.
    pub warnings: Vec<SpecWarning>,
}

fn err(spec: &str, message: impl Into<String>, exit_status: i32) -> Error {
    Error::Spec {
        device: "pci",
        spec: spec.to_owned(),
        message: message.into(),
        exit_status,
    }
}

fn flag(v: &str, key: &str, at: std::ops::Range<usize>, w: &mut Vec<SpecWarning>) -> bool {
    let b = v.as_bytes();
    let n = atoi(b);
    let plain = !b.is_empty() && b.iter().all(u8::is_ascii_digit);
    if !plain {
        w.push(SpecWarning {
            message: format!(
                "`{key}={v}`: xl reads the value with atoi, so this means {}",
                u8::from(n != 0)
            ),
            span: at,
        });
    }
    n != 0
}

impl PciSpec {
    /// A spec for a device address with no options.
    pub fn new(bdf: PciAddr) -> Self {
        Self {
            target: PciTarget::Bdf(bdf),
            vslot: None,
            permissive: None,
            msitranslate: None,
            seize: None,
            power_mgmt: None,
            rdm_policy: None,
        }
    }

    /// The address, when the entry names one.
    pub fn bdf(&self) -> Option<PciAddr> {
        match self.target {
            PciTarget::Bdf(b) => Some(b),
            PciTarget::Name(_) => None,
        }
    }

    /// Parse one `pci` entry; every error is fatal in `xl create`.
    pub fn parse(spec: &str) -> Result<PciParse> {
        let b = spec.as_bytes();
        let mut w = Vec::new();
        let mut bdf = None;
        let mut name = None;
        let mut vslot = None;
        let mut out = PciSpec::new(PciAddr {
            bdf: Bdf::default(),
            func: Func::One(0),
        });
        let mut p = 0;
        if let Some((addr, used)) = parse_bdf(b) {
            bdf = Some(addr);
            p = used;
            if used >= 2
                && b[used - 2..used].eq_ignore_ascii_case(b"0x")
                && !matches!(addr.func, Func::All)
            {
                w.push(SpecWarning {
                    message: "the function `0x` is read as 0".into(),
                    span: used - 2..used,
                });
            }
            if b.get(p) == Some(&b'@') {
                p += 1;
                let (v, used) =
                    scan_hex(&b[p..]).ok_or_else(|| err(spec, "empty or bad vslot", EXIT_INVAL))?;
                if v > MAX_VSLOT {
                    return Err(err(spec, format!("vslot {v:#x} is over 0x1f"), EXIT_INVAL));
                }
                vslot = Some(v as u8);
                p += used;
            }
            match b.get(p) {
                Some(b',') => p += 1,
                None => {}
                Some(_) => return Err(err(spec, "unexpected text after the address", EXIT_INVAL)),
            }
        }
        while p < b.len() {
            let rest = &spec[p..];
            let Some(eq) = rest.find('=') else {
                return Err(err(
                    spec,
                    format!("option `{rest}` has no `=value`"),
                    EXIT_INVAL,
                ));
            };
            let key = &rest[..eq];
            let vstart = p + eq + 1;
            let vlen = spec[vstart..].find(',').unwrap_or(spec.len() - vstart);
            let val = &spec[vstart..vstart + vlen];
            let vspan = vstart..vstart + vlen;
            p = vstart + vlen;
            if p < b.len() {
                p += 1; // the ','
            }
            match key {
                "bdf" => {
                    if let Some((addr, used)) = parse_bdf(val.as_bytes()) {
                        if used < val.len() {
                            w.push(SpecWarning {
                                message: format!(
                                    "xl ignores `{}` after the address in bdf=",
                                    &val[used..]
                                ),
                                span: vspan.start + used..vspan.end,
                            });
                        }
                        bdf = Some(addr);
                    }
                    // An unparsable bdf= is not an error by itself in the
                    // reference; the "no address" check below catches it.
                }
                "vslot" => match scan_hex(val.as_bytes()) {
                    Some((v, _)) if v <= MAX_VSLOT => vslot = Some(v as u8),
                    _ => return Err(err(spec, format!("bad vslot `{val}`"), EXIT_INVAL)),
                },
                "permissive" => out.permissive = Some(flag(val, key, vspan, &mut w)),
                "msitranslate" => out.msitranslate = Some(flag(val, key, vspan, &mut w)),
                "seize" => out.seize = Some(flag(val, key, vspan, &mut w)),
                "power_mgmt" => out.power_mgmt = Some(flag(val, key, vspan, &mut w)),
                "rdm_policy" => {
                    out.rdm_policy = Some(RdmPolicy::parse(val).ok_or_else(|| {
                        err(spec, format!("Unknown RDM policy: {val}"), EXIT_FAIL)
                    })?)
                }
                "name" => name = Some(val.to_owned()),
                _ => {
                    return Err(err(
                        spec,
                        format!("Unknown PCI_SPEC_STRING option: {key}"),
                        EXIT_INVAL,
                    ));
                }
            }
        }
        out.vslot = vslot;
        out.target = match (bdf, name) {
            (Some(a), None) => PciTarget::Bdf(a),
            (None, Some(n)) => PciTarget::Name(n),
            (Some(_), Some(_)) => {
                return Err(err(
                    spec,
                    "give either an address or name=, not both",
                    EXIT_INVAL,
                ));
            }
            (None, None) => return Err(err(spec, "no device address or name=", EXIT_INVAL)),
        };
        Ok(PciParse {
            spec: out,
            warnings: w,
        })
    }

    /// Canonical spec string: the address (with `@vslot`) first, then options.
    pub fn to_spec(&self) -> Result<String> {
        let mut parts = Vec::new();
        match &self.target {
            PciTarget::Bdf(b) => match self.vslot {
                Some(v) => parts.push(format!("{b}@{v:x}")),
                None => parts.push(b.to_string()),
            },
            PciTarget::Name(n) => {
                if n.contains(',') {
                    return Err(Error::Unrepresentable {
                        field: "name",
                        value: n.clone(),
                        why: "cannot contain `,`",
                    });
                }
                parts.push(format!("name={n}"));
                if let Some(v) = self.vslot {
                    parts.push(format!("vslot={v:x}"));
                }
            }
        }
        for (k, v) in [
            ("permissive", self.permissive),
            ("msitranslate", self.msitranslate),
            ("seize", self.seize),
            ("power_mgmt", self.power_mgmt),
        ] {
            if let Some(v) = v {
                parts.push(format!("{k}={}", u8::from(v)));
            }
        }
        if let Some(r) = self.rdm_policy {
            parts.push(format!("rdm_policy={}", r.as_str()));
        }
        Ok(parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bdf_golden() {
        let b: PciAddr = "0000:03:00.1".parse().unwrap();
        assert_eq!(b, PciAddr::one(Bdf::new(0, 3, 0, 1).unwrap()));
        assert_eq!(b.to_string(), "0000:03:00.1");
        let all: PciAddr = "3:0.*".parse().unwrap();
        assert_eq!(all.to_string(), "0000:03:00.*");
        assert_eq!(all.function(), None);
        assert!(all.overlaps(&b));
        assert!("03:20.0".parse::<PciAddr>().is_err());
    }

    #[test]
    fn canonical_round_trips() {
        let p = PciSpec::parse("3:0.0@8,permissive=1,rdm_policy=relaxed")
            .unwrap()
            .spec;
        let s = p.to_spec().unwrap();
        assert_eq!(s, "0000:03:00.0@8,permissive=1,rdm_policy=relaxed");
        assert_eq!(PciSpec::parse(&s).unwrap().spec, p);
    }

    #[test]
    fn exit_status_follows_xl() {
        match PciSpec::parse("03:00.0,rdm_policy=bogus") {
            Err(Error::Spec { exit_status, .. }) => assert_eq!(exit_status, 3),
            other => panic!("{other:?}"),
        }
    }
}
