//! Checks for values that end up as interface names, MTUs, script paths.
//!
//! These run on everything the agent reads from xenstore: a value that fails
//! here produces `hotplug-error` for that one device.

use crate::error::{Error, Result};

/// Longest interface name Linux accepts (`IFNAMSIZ` - 1).
pub const IFNAME_MAX: usize = 15;
/// Smallest MTU we accept (IPv4 minimum, RFC 791).
pub const MTU_MIN: u32 = 68;
/// Largest MTU we accept (netback's maximum for a vif is 65535).
pub const MTU_MAX: u32 = 65535;
/// Default vif MTU (libxl_nic.c: `nic->mtu = 1500`).
pub const DEFAULT_MTU: u32 = 1500;
/// Longest value we accept for a script path.
pub const SCRIPT_PATH_MAX: usize = 1024;

/// Validate a Linux interface name: 1..=15 bytes of `A-Z a-z 0-9 . _ -`,
/// not `.`/`..`, not starting with `-` (so it can never look like an option
/// to a legacy script's `ip`/`brctl` call).
pub fn ifname(what: &'static str, raw: &[u8]) -> Result<String> {
    let bad = |reason| Error::invalid(what, raw, reason);
    if raw.is_empty() {
        return Err(bad("empty interface name"));
    }
    if raw.len() > IFNAME_MAX {
        return Err(bad("interface names are at most 15 characters"));
    }
    if !raw
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(bad("only A-Z a-z 0-9 . _ - are allowed"));
    }
    if raw == b"." || raw == b".." || raw[0] == b'-' {
        return Err(bad("not a usable interface name"));
    }
    Ok(String::from_utf8_lossy(raw).into_owned())
}

/// Validate an MTU: decimal, [`MTU_MIN`]..=[`MTU_MAX`].
pub fn mtu(raw: &[u8]) -> Result<u32> {
    let bad = |reason| Error::invalid("mtu", raw, reason);
    let s = raw.trim_ascii();
    if s.is_empty() || s.len() > 5 || !s.iter().all(u8::is_ascii_digit) {
        return Err(bad("expected a decimal number"));
    }
    let n = s.iter().fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'));
    if !(MTU_MIN..=MTU_MAX).contains(&n) {
        return Err(bad("out of range 68..=65535"));
    }
    Ok(n)
}

/// Validate a hotplug script path: absolute, printable ASCII without spaces
/// or shell metacharacters, no `..` component.
pub fn script_path(raw: &[u8]) -> Result<String> {
    let bad = |reason| Error::invalid("script", raw, reason);
    if raw.first() != Some(&b'/') {
        return Err(bad("must be an absolute path"));
    }
    if raw.len() > SCRIPT_PATH_MAX {
        return Err(bad("too long"));
    }
    if !raw
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'-' | b'+'))
    {
        return Err(bad("only A-Z a-z 0-9 / . _ - + are allowed"));
    }
    if raw.split(|b| *b == b'/').any(|c| c == b"..") {
        return Err(bad("\"..\" is not allowed"));
    }
    Ok(String::from_utf8_lossy(raw).into_owned())
}

/// Validate free text that goes into xenstore or a script's environment
/// (ip lists, rate): printable ASCII, at most `max` bytes.
pub fn printable(what: &'static str, raw: &[u8], max: usize) -> Result<String> {
    if raw.len() > max {
        return Err(Error::invalid(what, raw, "too long"));
    }
    if !raw.iter().all(|b| (0x20..0x7f).contains(b)) {
        return Err(Error::invalid(what, raw, "only printable ASCII is allowed"));
    }
    Ok(String::from_utf8_lossy(raw).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ifnames() {
        assert_eq!(ifname("bridge", b"xenbr0").unwrap(), "xenbr0");
        assert_eq!(ifname("vif", b"vif5.0").unwrap(), "vif5.0");
        assert!(ifname("bridge", b"0123456789abcde").is_ok());
        for bad in [
            &b""[..],
            b"0123456789abcdef",
            b"br 0",
            b"br/0",
            b"..",
            b".",
            b"-x",
            b"br\0",
            b"br;rm",
            b"\xff",
        ] {
            assert!(ifname("bridge", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn mtus() {
        assert_eq!(mtu(b"1500").unwrap(), 1500);
        assert_eq!(mtu(b"68").unwrap(), 68);
        assert_eq!(mtu(b"65535").unwrap(), 65535);
        for bad in [
            &b""[..],
            b"67",
            b"65536",
            b"-1",
            b"abc",
            b"1500x",
            b"99999999999999",
        ] {
            assert!(mtu(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn scripts() {
        assert!(script_path(b"/etc/xen/scripts/vif-bridge").is_ok());
        for bad in [
            &b"vif-bridge"[..],
            b"/etc/../bin/sh",
            b"/x y",
            b"/x;y",
            b"/x$y",
            b"",
        ] {
            assert!(script_path(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn never_panic(raw in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = ifname("x", &raw);
            let _ = mtu(&raw);
            let _ = script_path(&raw);
            let _ = printable("x", &raw, 16);
        }
    }
}
