//! C number conversions as glibc does them, for the device spec parsers
//! (`strtoul`, `atoi`, `sscanf("%x")`): the reference's quirks come from them.

/// Result of a C unsigned conversion: value (wrapped like C) and bytes used
/// (0 when no digits were found).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Conv {
    pub value: u64,
    pub used: usize,
    /// The number saturated (C sets ERANGE and returns ULONG_MAX).
    pub overflow: bool,
}

fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// C `strtoul(s, &end, base)` for base 10 or 16 (with optional `0x` for 16).
pub(crate) fn strtoul(s: &[u8], base: u32) -> Conv {
    let mut i = 0;
    while i < s.len() && is_c_space(s[i]) {
        i += 1;
    }
    let mut neg = false;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        neg = s[i] == b'-';
        i += 1;
    }
    if base == 16
        && i + 2 < s.len() + 1
        && s.get(i) == Some(&b'0')
        && matches!(s.get(i + 1), Some(b'x' | b'X'))
    {
        if s.get(i + 2).is_some_and(u8::is_ascii_hexdigit) {
            i += 2;
        } else {
            // "0x" with no hex digit after it: glibc reads the "0" and stops.
            return Conv {
                value: 0,
                used: i + 1,
                overflow: false,
            };
        }
    }
    let start = i;
    let mut v: u64 = 0;
    let mut overflow = false;
    while i < s.len() {
        let Some(d) = (s[i] as char).to_digit(base) else {
            break;
        };
        match v
            .checked_mul(u64::from(base))
            .and_then(|x| x.checked_add(u64::from(d)))
        {
            Some(n) => v = n,
            None => overflow = true,
        }
        i += 1;
    }
    if i == start {
        return Conv {
            value: 0,
            used: 0,
            overflow: false,
        };
    }
    if overflow {
        return Conv {
            value: u64::MAX,
            used: i,
            overflow: true,
        };
    }
    Conv {
        value: if neg { v.wrapping_neg() } else { v },
        used: i,
        overflow: false,
    }
}

/// glibc `sscanf("%x")` into an `unsigned int`: like `strtoul(…,16)`, except
/// that a bare `0x` prefix is consumed as the number 0 (SPEC.md §4.1 quirk),
/// and the result is truncated to 32 bits.
pub(crate) fn scan_hex(s: &[u8]) -> Option<(u32, usize)> {
    let mut i = 0;
    while i < s.len() && is_c_space(s[i]) {
        i += 1;
    }
    let mut j = i;
    if j < s.len() && (s[j] == b'+' || s[j] == b'-') {
        j += 1;
    }
    if s.get(j) == Some(&b'0')
        && matches!(s.get(j + 1), Some(b'x' | b'X'))
        && !s.get(j + 2).is_some_and(u8::is_ascii_hexdigit)
    {
        return Some((0, j + 2));
    }
    let c = strtoul(&s[i..], 16);
    if c.used == 0 {
        return None;
    }
    Some((c.value as u32, i + c.used))
}

/// C `atoi`: `(int) strtol(s, NULL, 10)`; no digits gives 0.
pub(crate) fn atoi(s: &[u8]) -> i32 {
    let mut i = 0;
    while i < s.len() && is_c_space(s[i]) {
        i += 1;
    }
    let mut neg = false;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        neg = s[i] == b'-';
        i += 1;
    }
    let mut v: i64 = 0;
    while i < s.len() && s[i].is_ascii_digit() {
        v = v.saturating_mul(10).saturating_add(i64::from(s[i] - b'0'));
        i += 1;
    }
    let v = if neg { v.saturating_neg() } else { v };
    v as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strtoul_wraps_negative_and_saturates() {
        assert_eq!(strtoul(b"-1", 10).value, u64::MAX);
        assert_eq!(strtoul(b"-2", 10).value as i32, -2);
        assert!(strtoul(b"99999999999999999999999", 10).overflow);
        assert_eq!(
            strtoul(b"1500bytes", 10),
            Conv {
                value: 1500,
                used: 4,
                overflow: false
            }
        );
        assert_eq!(strtoul(b"abc", 10).used, 0);
        assert_eq!(strtoul(b"0x1f", 16).value, 31);
    }

    #[test]
    fn scan_hex_eats_bare_0x() {
        assert_eq!(scan_hex(b"0x"), Some((0, 2)));
        assert_eq!(scan_hex(b"07"), Some((7, 2)));
        assert_eq!(scan_hex(b"zz"), None);
    }

    #[test]
    fn atoi_is_lenient() {
        assert_eq!(atoi(b"yes"), 0);
        assert_eq!(atoi(b" 2x"), 2);
        assert_eq!(atoi(b"4294967296"), 0);
    }
}
