//! `vif = [ … ]` entries: network interface specs (SPEC.md §3), parsed as
//! xl's `parse_nic_config` does, and written back in canonical form.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use serde::Serialize;

use crate::cnum::strtoul;
use crate::error::{Error, Result};

/// A problem the reference only warns about (or silently accepts); the
/// span is a byte range inside the spec string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpecWarning {
    /// What happened.
    pub message: String,
    /// Byte range in the spec string.
    pub span: Range<usize>,
}

pub use xentypes::MacAddr;

/// `type=`: the NIC type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NicType {
    /// `vif`: PV only.
    Vif,
    /// `ioemu`: emulated (and PV) NIC.
    Ioemu,
}

/// `rate=`: a credit-based rate limit (SPEC.md §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rate {
    /// Bytes per second after unit scaling.
    pub bytes_per_sec: u64,
    /// Replenishment interval in µs (default 50 000).
    pub interval_usecs: u32,
}

/// Default replenishment interval, 50 ms (libxlu_vif.c).
pub const DEFAULT_RATE_INTERVAL_USECS: u32 = 50_000;

impl Rate {
    /// Bytes that may be sent per interval (libxl's `rate_bytes_per_interval`).
    pub fn bytes_per_interval(&self) -> u64 {
        ((u128::from(self.bytes_per_sec) * u128::from(self.interval_usecs)) / 1_000_000) as u64
    }

    /// Parse `RATE[@INTERVAL]`.
    pub fn parse(text: &str) -> std::result::Result<Rate, String> {
        let (rate, interval) = match text.split_once('@') {
            Some((r, i)) => (r, Some(i)),
            None => (text, None),
        };
        if rate.is_empty() {
            return Err(format!("no rate specified in `{rate}'"));
        }
        let bytes_per_sec = parse_bytes_per_sec(rate)?;
        let interval_usecs = match interval {
            Some(i) => parse_interval(i)?,
            None => DEFAULT_RATE_INTERVAL_USECS,
        };
        if bytes_per_sec > u64::MAX / u64::from(interval_usecs) {
            return Err(format!("rate overflow in `{text}'"));
        }
        Ok(Rate {
            bytes_per_sec,
            interval_usecs,
        })
    }
}

impl fmt::Display for Rate {
    /// Canonical form: the largest unit that keeps the number exact and in
    /// range, then `@<n>us` unless the interval is the default.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.bytes_per_sec;
        let mut written = false;
        for (unit, mul) in [
            ("G", 1_000_000_000u64),
            ("M", 1_000_000),
            ("K", 1_000),
            ("", 1),
        ] {
            if b % mul == 0 && b / mul >= 1 && b / mul <= u64::from(u32::MAX) {
                write!(f, "{}{unit}B/s", b / mul)?;
                written = true;
                break;
            }
        }
        if !written {
            // Not representable in bytes: it came from a bit rate, which was
            // divided by 8 rounding down; find that bit rate again.
            'found: for (unit, mul) in [
                ("G", 1_000_000_000u128),
                ("M", 1_000_000),
                ("K", 1_000),
                ("", 1),
            ] {
                for extra in 0..8u128 {
                    let x = u128::from(b) * 8 + extra;
                    if x % mul == 0 && x / mul >= 1 && x / mul <= u128::from(u32::MAX) {
                        write!(f, "{}{unit}b/s", x / mul)?;
                        break 'found;
                    }
                }
            }
        }
        if self.interval_usecs != DEFAULT_RATE_INTERVAL_USECS {
            write!(f, "@{}us", self.interval_usecs)?;
        }
        Ok(())
    }
}

/// C `strtoull(s, &end, 0)` over a digits-only prefix: leading 0 = octal.
fn strtoull0_digits(s: &[u8]) -> (u64, usize, bool) {
    let (base, start) = if s.first() == Some(&b'0') {
        (8u32, 0)
    } else {
        (10, 0)
    };
    let mut i = start;
    let mut v: u64 = 0;
    let mut of = false;
    while i < s.len() {
        let Some(d) = (s[i] as char).to_digit(base) else {
            break;
        };
        match v
            .checked_mul(u64::from(base))
            .and_then(|x| x.checked_add(u64::from(d)))
        {
            Some(n) => v = n,
            None => of = true,
        }
        i += 1;
    }
    (v, i, of)
}

fn parse_bytes_per_sec(s: &str) -> std::result::Result<u64, String> {
    // ^[0-9]+[GMK]?[Bb]/s$
    let b = s.as_bytes();
    let digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
    let rest = &b[digits..];
    let ok = digits > 0
        && matches!(
            rest,
            [b'G' | b'M' | b'K', b'B' | b'b', b'/', b's'] | [b'B' | b'b', b'/', b's']
        );
    if !ok {
        return Err(format!("invalid rate in `{s}'"));
    }
    let (mut v, used, of) = strtoull0_digits(b);
    if v == 0 || v > u64::from(u32::MAX) || of {
        return Err(format!("rate overflow in `{s}'"));
    }
    let p = &b[used..];
    match p.first() {
        Some(b'G') => v *= 1_000_000_000,
        Some(b'M') => v *= 1_000_000,
        Some(b'K') => v *= 1_000,
        _ => {}
    }
    if p.first() == Some(&b'b') || p.get(1) == Some(&b'b') {
        v /= 8;
    }
    Ok(v)
}

fn parse_interval(s: &str) -> std::result::Result<u32, String> {
    // ^[0-9]+[mu]?s?$
    let b = s.as_bytes();
    let digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
    let rest = &b[digits..];
    let ok = digits > 0 && matches!(rest, [] | [b's'] | [b'm' | b'u'] | [b'm' | b'u', b's']);
    if !ok {
        return Err(format!("invalid replenishment interval in `{s}'"));
    }
    let (mut v, used, of) = strtoull0_digits(b);
    if v == 0 || v > u64::from(u32::MAX) || of {
        return Err(format!("replenishment interval overflow in `{s}'"));
    }
    match b.get(used) {
        Some(b's') | None => v *= 1_000_000,
        Some(b'm') => v *= 1_000,
        _ => {}
    }
    u32::try_from(v).map_err(|_| format!("replenishment interval overflow in `{s}'"))
}

/// One `vif` entry, as xl understands it. `None` = not given (libxl or the
/// hotplug script decides).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct VifSpec {
    /// `mac=`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    /// `bridge=`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
    /// `backend=`: the backend (driver) domain's name; unset = dom0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// `script=`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    /// `ip=` (space-separated addresses)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// `vifname=`: the backend interface name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vifname: Option<String>,
    /// `type=`
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub nictype: Option<NicType>,
    /// `model=`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `mtu=` (C int; 0 = unset)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<i32>,
    /// `devid=` (default: position in the list)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub devid: Option<i32>,
    /// `rate=`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<Rate>,
    /// `gatewaydev=` (or the deprecated `netdev=`)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gatewaydev: Option<String>,
    /// `trusted` / `untrusted`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trusted: Option<bool>,
    /// `forwarddev=` (COLO)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forwarddev: Option<String>,
    /// `colo_*=` keys (COLO), verbatim.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub colo: BTreeMap<String, String>,
}

/// Parsed `vif` entry plus the warnings xl would print (or that we add for
/// silent surprises).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VifParse {
    /// The interface.
    pub spec: VifSpec,
    /// Warnings.
    pub warnings: Vec<SpecWarning>,
}

fn fatal(spec: &str, message: String) -> Error {
    Error::Spec {
        device: "vif",
        spec: spec.to_owned(),
        message,
        exit_status: 1,
    }
}

/// xl's `parse_ulong`: decimal `strtoul`, fatal with no digits or ULONG_MAX;
/// stored in a C int.
fn parse_c_int(
    spec: &str,
    v: &str,
    at: Range<usize>,
    warnings: &mut Vec<SpecWarning>,
) -> Result<i32> {
    let c = strtoul(v.as_bytes(), 10);
    if c.used == 0 || c.value == u64::MAX {
        return Err(fatal(spec, format!("failed to convert \"{v}\" to number")));
    }
    if c.used < v.len() {
        warnings.push(SpecWarning {
            message: format!("xl reads only the leading number of `{v}` and ignores the rest"),
            span: at.clone(),
        });
    }
    let n = c.value as i32;
    if i64::from(n) as u64 != c.value || n < 0 {
        warnings.push(SpecWarning {
            message: format!("`{v}` does not fit a C int: xl stores {n}"),
            span: at,
        });
    }
    Ok(n)
}

impl VifSpec {
    /// Parse one `vif` list entry. Fatal problems (bad `rate`, `mtu`,
    /// `devid`) are errors; the rest are warnings, as in `xl create`.
    pub fn parse(spec: &str) -> Result<VifParse> {
        let mut v = VifSpec::default();
        let mut w = Vec::new();
        let mut pos = 0;
        for field in spec.split(',') {
            let fstart = pos;
            pos += field.len() + 1;
            if field.is_empty() {
                continue; // strtok skips empty fields
            }
            let stripped = field.trim_start_matches(' ');
            let start = fstart + (field.len() - stripped.len());
            let span = start..start + stripped.len();
            let tok = stripped;
            let Some((key, val)) = tok.split_once('=') else {
                match tok {
                    "trusted" => v.trusted = Some(true),
                    "untrusted" => v.trusted = Some(false),
                    _ => w.push(SpecWarning {
                        message: format!("unrecognized argument `{tok}'"),
                        span,
                    }),
                }
                continue;
            };
            let vspan = span.start + key.len() + 1..span.end;
            if val.ends_with(' ') && key != "ip" {
                w.push(SpecWarning {
                    message: format!(
                        "value of `{key}` ends with spaces, which xl keeps as part of it"
                    ),
                    span: vspan.clone(),
                });
            }
            let s = || Some(val.to_owned());
            match key {
                "type" => match val {
                    "vif" => v.nictype = Some(NicType::Vif),
                    "ioemu" => v.nictype = Some(NicType::Ioemu),
                    _ => w.push(SpecWarning {
                        message: "Invalid parameter `type'.".into(),
                        span: vspan,
                    }),
                },
                "mac" => parse_mac(val, &mut v.mac, vspan, &mut w),
                "bridge" => v.bridge = s(),
                "netdev" => {
                    w.push(SpecWarning {
                        message:
                            "the netdev parameter is deprecated, please use gatewaydev instead"
                                .into(),
                        span,
                    });
                    v.gatewaydev = s();
                }
                "gatewaydev" => v.gatewaydev = s(),
                "ip" => v.ip = s(),
                "script" => v.script = s(),
                "backend" => v.backend = s(),
                "vifname" => v.vifname = s(),
                "model" => v.model = s(),
                "rate" => v.rate = Some(Rate::parse(val).map_err(|m| fatal(spec, m))?),
                "forwarddev" => v.forwarddev = s(),
                "accel" => w.push(SpecWarning {
                    message: "the accel parameter for vifs is currently not supported".into(),
                    span,
                }),
                "devid" => {
                    if val.starts_with("0x") || val.starts_with("0X") {
                        w.push(SpecWarning {
                            message: format!("devid is read as decimal: `{val}` means 0"),
                            span: vspan.clone(),
                        });
                    }
                    v.devid = Some(parse_c_int(spec, val, vspan, &mut w)?);
                }
                "mtu" => v.mtu = Some(parse_c_int(spec, val, vspan, &mut w)?),
                k if k.starts_with("colo_") => {
                    v.colo.insert(k.to_owned(), val.to_owned());
                }
                _ => w.push(SpecWarning {
                    message: format!("unrecognized argument `{tok}'"),
                    span,
                }),
            }
        }
        Ok(VifParse {
            spec: v,
            warnings: w,
        })
    }

    /// Canonical spec string: `key=value` joined by `,`, in a fixed order.
    /// Fails when a value cannot be written so that xl reads it back
    /// identically (a `,` in it, or leading spaces).
    pub fn to_spec(&self) -> Result<String> {
        let mut parts: Vec<String> = Vec::new();
        let mut put = |k: &'static str, v: &Option<String>| -> Result<()> {
            if let Some(v) = v {
                if v.contains(',') {
                    return Err(Error::Unrepresentable {
                        field: k,
                        value: v.clone(),
                        why: "a vif value cannot contain `,`",
                    });
                }
                if v.starts_with(' ') {
                    return Err(Error::Unrepresentable {
                        field: k,
                        value: v.clone(),
                        why: "xl strips leading spaces of vif values",
                    });
                }
                parts.push(format!("{k}={v}"));
            }
            Ok(())
        };
        put("mac", &self.mac.map(|m| m.to_string()))?;
        put("bridge", &self.bridge)?;
        put("backend", &self.backend)?;
        put("script", &self.script)?;
        put("ip", &self.ip)?;
        put("vifname", &self.vifname)?;
        put(
            "type",
            &self.nictype.map(|t| match t {
                NicType::Vif => "vif".to_owned(),
                NicType::Ioemu => "ioemu".to_owned(),
            }),
        )?;
        put("model", &self.model)?;
        put("mtu", &self.mtu.map(|m| m.to_string()))?;
        put("devid", &self.devid.map(|m| m.to_string()))?;
        put("rate", &self.rate.map(|r| r.to_string()))?;
        put("gatewaydev", &self.gatewaydev)?;
        put("forwarddev", &self.forwarddev)?;
        for (k, v) in &self.colo {
            if v.contains(',') || v.starts_with(' ') || k.contains(['=', ',']) {
                return Err(Error::Unrepresentable {
                    field: "colo",
                    value: v.clone(),
                    why: "not a plain value",
                });
            }
            parts.push(format!("{k}={v}"));
        }
        match self.trusted {
            Some(true) => parts.push("trusted".into()),
            Some(false) => parts.push("untrusted".into()),
            None => {}
        }
        Ok(parts.join(","))
    }
}

/// xl's mac parser: six `strtoul(…,16)` octets, each followed by exactly one
/// separator character of any kind; octets read before an error stay set.
fn parse_mac(val: &str, mac: &mut Option<MacAddr>, span: Range<usize>, w: &mut Vec<SpecWarning>) {
    let b = val.as_bytes();
    let mut arr = mac.map_or([0u8; 6], |m| m.0);
    let mut p = 0usize;
    let mut wrote = false;
    let mut ok = true;
    let mut odd_sep = false;
    for (i, octet) in arr.iter_mut().enumerate() {
        if p > b.len() {
            ok = false;
            break;
        }
        let c = strtoul(&b[p..], 16);
        if c.used == 0 || c.value > 255 {
            ok = false;
            break;
        }
        *octet = c.value as u8;
        wrote = true;
        p += c.used;
        if i < 5 && p < b.len() && !matches!(b[p], b':' | b'-') {
            odd_sep = true;
        }
        p += 1;
    }
    if wrote {
        *mac = Some(MacAddr(arr));
    }
    if !ok {
        w.push(SpecWarning {
            message: "Invalid parameter `mac'.".into(),
            span,
        });
    } else if p < b.len() {
        w.push(SpecWarning {
            message: format!("xl ignores text after the sixth octet of `{val}`"),
            span,
        });
    } else if odd_sep {
        w.push(SpecWarning {
            message: format!("unusual separator in MAC `{val}`: xl accepts any character"),
            span,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_examples_from_spec() {
        let r = Rate::parse("10Mb/s").unwrap();
        assert_eq!((r.bytes_per_interval(), r.interval_usecs), (62500, 50000));
        let r = Rate::parse("10MB/s@20ms").unwrap();
        assert_eq!((r.bytes_per_interval(), r.interval_usecs), (200000, 20000));
        let r = Rate::parse("100Kb/s@500us").unwrap();
        assert_eq!((r.bytes_per_interval(), r.interval_usecs), (6, 500));
        let r = Rate::parse("1MB/s@2").unwrap();
        assert_eq!(
            (r.bytes_per_interval(), r.interval_usecs),
            (2000000, 2000000)
        );
        assert!(Rate::parse("10mb/s").is_err());
        assert!(Rate::parse("10Mb/s@0").is_err());
    }

    #[test]
    fn rate_display_round_trips() {
        for t in [
            "10Mb/s",
            "10MB/s@20ms",
            "100Kb/s@500us",
            "1GB/s@1s",
            "7B/s",
            "4294967295GB/s@1us",
            "1b/s",
            "4294967295Gb/s@1us",
            "3Kb/s",
        ] {
            let r = Rate::parse(t).unwrap();
            assert_eq!(Rate::parse(&r.to_string()).unwrap(), r, "{t} -> {r}");
        }
    }

    #[test]
    fn built_spec_writes_canonically() {
        let mut v = VifSpec {
            mac: Some(MacAddr([0x00, 0x16, 0x3e, 0, 0, 1])),
            bridge: Some("xenbr0".into()),
            backend: Some("net-dd".into()),
            ..VifSpec::default()
        };
        assert_eq!(
            v.to_spec().unwrap(),
            "mac=00:16:3e:00:00:01,bridge=xenbr0,backend=net-dd"
        );
        v.bridge = Some("a,b".into());
        assert!(v.to_spec().is_err());
    }

    #[test]
    fn mac_golden() {
        let m: MacAddr = "00:16:3e:0a:0b:0c".parse().unwrap();
        assert_eq!(m.to_string(), "00:16:3e:0a:0b:0c");
        assert!(m.is_xen_oui());
        assert!("00:16:3e:0a:0b".parse::<MacAddr>().is_err());
    }

    #[test]
    fn canonical_spec_round_trips() {
        let p =
            VifSpec::parse("bridge=xenbr0, mac=00:16:3E:AA:BB:CC,backend=dd,rate=10Mb/s,trusted")
                .unwrap();
        let s = p.spec.to_spec().unwrap();
        assert_eq!(
            s,
            "mac=00:16:3e:aa:bb:cc,bridge=xenbr0,backend=dd,rate=1250KB/s,trusted"
        );
        assert_eq!(VifSpec::parse(&s).unwrap().spec, p.spec);
    }
}
