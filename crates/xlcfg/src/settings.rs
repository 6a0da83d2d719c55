//! Effective settings and xl's typed getters (SPEC.md §1.5): the last
//! assignment of a key wins, `+=` concatenates onto it, and the getters warn
//! and treat a key as absent when its value has the wrong type.

use std::collections::HashMap;

use serde::Serialize;

use crate::document::{Entry, Op, Origin, Value};
use crate::error::{Error, Result};

/// The effective setting of one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Setting {
    /// The operator of the last assignment.
    pub op: Op,
    /// The value after `+=` concatenation.
    pub value: Value,
    /// Line where the last assignment's value starts (0 if unknown).
    pub line: usize,
    /// Where the last assignment came from.
    #[serde(skip)]
    pub origin: Option<Origin>,
    /// How many assignments of this key there are.
    #[serde(skip)]
    pub assignments: usize,
}

/// A getter problem: xl prints a warning and treats the key as absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetterWarning {
    /// The key.
    pub key: String,
    /// The warning (in the spirit of xl's text).
    pub message: String,
}

/// Every key's effective setting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    map: HashMap<String, Setting>,
    order: Vec<String>,
}

/// Outcome of C `strtol(s, &end, 0)` over a whole string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CLong {
    /// Parsed and the whole string was consumed.
    Ok(i64),
    /// Out of range (ERANGE).
    Range,
    /// Not a number, or trailing text.
    Invalid,
}

/// C `strtol(s, &end, 0)` requiring the whole string to be consumed
/// (`xlu_cfg_get_long`): leading blanks and a sign allowed, `0x` hex,
/// leading `0` octal.
pub fn c_strtol0(s: &str) -> CLong {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r') {
        i += 1;
    }
    let mut neg = false;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        neg = b[i] == b'-';
        i += 1;
    }
    let (base, start) = if b.len() > i + 2
        && b[i] == b'0'
        && (b[i + 1] | 0x20) == b'x'
        && b[i + 2].is_ascii_hexdigit()
    {
        (16u32, i + 2)
    } else if i < b.len() && b[i] == b'0' {
        (8, i)
    } else {
        (10, i)
    };
    let mut j = start;
    let mut val: u128 = 0;
    let mut overflow = false;
    while j < b.len() {
        let Some(d) = (b[j] as char).to_digit(base) else {
            break;
        };
        val = val * u128::from(base) + u128::from(d);
        if val > u128::from(u64::MAX) {
            overflow = true;
            val = u128::from(u64::MAX);
        }
        j += 1;
    }
    if j == start || j != b.len() {
        return CLong::Invalid;
    }
    let limit = if neg { 1u128 << 63 } else { (1u128 << 63) - 1 };
    if overflow || val > limit {
        return CLong::Range;
    }
    let v = if neg {
        (val as i128).wrapping_neg() as i64
    } else {
        val as i64
    };
    CLong::Ok(v)
}

impl Settings {
    /// Resolve entries in order (last `=` wins, `+=` concatenates).
    pub fn from_entries<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> Result<Self> {
        let mut s = Settings::default();
        for e in entries {
            let origin = e.origin().cloned();
            let line = origin.as_ref().map_or(0, |o| o.line);
            match s.map.get_mut(e.key()) {
                Some(prev) => {
                    let mut origin = origin;
                    if let (Op::Append, Value::List(prev_items), Some(o)) =
                        (e.op(), &prev.value, origin.as_mut())
                    {
                        // Item positions of the concatenated list: the
                        // earlier items' positions, then this entry's.
                        match prev
                            .origin
                            .as_ref()
                            .filter(|po| po.items.len() == prev_items.len())
                        {
                            Some(po) => {
                                let mut items = po.items.clone();
                                items.append(&mut o.items);
                                o.items = items;
                            }
                            None => o.items.clear(),
                        }
                    }
                    // In place, so that many `+=` lines stay linear.
                    match (e.op(), &mut prev.value, e.value()) {
                        (Op::Assign, v, new) => *v = new.clone(),
                        (Op::Append, Value::Str(a), Value::Str(b)) => a.push_str(b),
                        (Op::Append, Value::List(a), Value::List(b)) => a.extend(b.iter().cloned()),
                        (Op::Append, _, _) => {
                            return Err(Error::Domain {
                                message: format!(
                                    "can't add [list] to \"string\" or vice versa (key `{}`)",
                                    e.key()
                                ),
                                key: Some(e.key().to_owned()),
                            });
                        }
                    }
                    prev.op = e.op();
                    prev.line = line;
                    prev.origin = origin;
                    prev.assignments += 1;
                }
                None => {
                    s.order.push(e.key().to_owned());
                    s.map.insert(
                        e.key().to_owned(),
                        Setting {
                            op: e.op(),
                            value: e.value().clone(),
                            line,
                            origin,
                            assignments: 1,
                        },
                    );
                }
            }
        }
        Ok(s)
    }

    /// The effective setting of `key`.
    pub fn get(&self, key: &str) -> Option<&Setting> {
        self.map.get(key)
    }

    /// Keys in order of first assignment.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.order.iter().map(String::as_str)
    }

    /// Number of distinct keys.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// True when no key is set.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// xl's string getter: `Ok(None)` when absent, `Err` (a warning; xl
    /// treats the key as absent) when it is a list.
    pub fn string(&self, key: &str) -> std::result::Result<Option<&str>, GetterWarning> {
        match self.map.get(key).map(|s| &s.value) {
            None => Ok(None),
            Some(Value::Str(s)) => Ok(Some(s)),
            Some(Value::List(_)) => Err(GetterWarning {
                key: key.to_owned(),
                message: format!("parameter `{key}' is a list but should be a single value"),
            }),
        }
    }

    /// xl's integer getter (`xlu_cfg_get_long`).
    pub fn long(&self, key: &str) -> std::result::Result<Option<i64>, GetterWarning> {
        let Some(set) = self.map.get(key) else {
            return Ok(None);
        };
        let warn = |message: String| GetterWarning {
            key: key.to_owned(),
            message,
        };
        let s = match &set.value {
            Value::List(_) => {
                return Err(warn(format!(
                    "parameter `{key}' is a list but should be a single value"
                )));
            }
            Value::Str(s) => s,
        };
        if set.op == Op::Append {
            return Err(warn(format!(
                "can't use += with numbers for parameter `{key}'"
            )));
        }
        match c_strtol0(s) {
            CLong::Ok(v) => Ok(Some(v)),
            CLong::Range => Err(warn(format!(
                "parameter `{key}' could not be parsed as a number: Numerical result out of range"
            ))),
            CLong::Invalid => Err(warn(format!("parameter `{key}' is not a valid number"))),
        }
    }

    /// xl's list getter: `Err` when the key is a single value.
    pub fn list(&self, key: &str) -> std::result::Result<Option<&[Value]>, GetterWarning> {
        match self.map.get(key).map(|s| &s.value) {
            None => Ok(None),
            Some(Value::List(v)) => Ok(Some(v)),
            Some(Value::Str(_)) => Err(GetterWarning {
                key: key.to_owned(),
                message: format!("parameter `{key}' is a single value but should be a list"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strtol_follows_c_rules() {
        assert_eq!(c_strtol0("010"), CLong::Ok(8));
        assert_eq!(c_strtol0("0x1f"), CLong::Ok(31));
        assert_eq!(c_strtol0("0XFF"), CLong::Ok(255));
        assert_eq!(c_strtol0(" 42"), CLong::Ok(42));
        assert_eq!(c_strtol0("-7"), CLong::Ok(-7));
        assert_eq!(c_strtol0("09"), CLong::Invalid);
        assert_eq!(c_strtol0("0x"), CLong::Invalid);
        assert_eq!(c_strtol0(""), CLong::Invalid);
        assert_eq!(c_strtol0("12abc"), CLong::Invalid);
        assert_eq!(c_strtol0("99999999999999999999"), CLong::Range);
        assert_eq!(c_strtol0("-9223372036854775808"), CLong::Ok(i64::MIN));
    }
}
