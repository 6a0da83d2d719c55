//! MAC addresses as libxl writes them (`aa:bb:cc:dd:ee:ff`).

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::io::Read;
use std::str::FromStr;

use crate::error::{Error, Result};

/// The Xen OUI libxl uses for random MACs (libxl_nic.c
/// `libxl__device_nic_setdefault`).
pub const XEN_OUI: [u8; 3] = [0x00, 0x16, 0x3e];

/// A 48-bit Ethernet address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// A random address in the Xen OUI, with bit 7 of the fourth byte clear,
    /// as libxl picks it (`mac[3] = r[0] & 0x7f`).
    pub fn random_xen() -> MacAddr {
        let r = random_bytes();
        MacAddr([XEN_OUI[0], XEN_OUI[1], XEN_OUI[2], r[0] & 0x7f, r[1], r[2]])
    }

    /// The octets.
    pub fn octets(self) -> [u8; 6] {
        self.0
    }

    /// Parse from xenstore bytes.
    pub fn parse_bytes(raw: &[u8]) -> Result<MacAddr> {
        let s = std::str::from_utf8(raw).map_err(|_| Error::invalid("mac", raw, "not UTF-8"))?;
        s.parse()
    }
}

/// Three random bytes from the kernel, or from std's per-process random
/// hash keys if /dev/urandom is unavailable.
fn random_bytes() -> [u8; 3] {
    let mut buf = [0u8; 3];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .is_ok()
    {
        return buf;
    }
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    let v = h.finish().to_le_bytes();
    [v[0], v[1], v[2]]
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl FromStr for MacAddr {
    type Err = Error;
    /// Six colon-separated hex octets (one or two digits each).
    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason| Error::invalid("mac", s.as_bytes(), reason);
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for o in &mut out {
            let p = parts.next().ok_or_else(|| bad("expected six octets"))?;
            if p.is_empty() || p.len() > 2 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad("expected hex octets like 00:16:3e:01:02:03"));
            }
            *o = u8::from_str_radix(p, 16).map_err(|_| bad("bad hex octet"))?;
        }
        if parts.next().is_some() {
            return Err(bad("expected six octets"));
        }
        Ok(MacAddr(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn golden() {
        let m: MacAddr = "00:16:3E:0a:b:ff".parse().unwrap();
        assert_eq!(m.0, [0x00, 0x16, 0x3e, 0x0a, 0x0b, 0xff]);
        assert_eq!(m.to_string(), "00:16:3e:0a:0b:ff");
        for bad in [
            "",
            "00:16:3e:0a:0b",
            "00:16:3e:0a:0b:ff:00",
            "00:16:3e:0a:0b:fff",
            "0g:16:3e:0a:0b:ff",
            "+0:16:3e:0a:0b:ff",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn random_is_xen_oui_with_bit7_clear() {
        for _ in 0..32 {
            let m = MacAddr::random_xen();
            assert_eq!(&m.0[..3], &XEN_OUI);
            assert_eq!(m.0[3] & 0x80, 0);
        }
    }

    proptest! {
        #[test]
        fn round_trip(b in any::<[u8; 6]>()) {
            let m = MacAddr(b);
            prop_assert_eq!(m.to_string().parse::<MacAddr>().unwrap(), m);
        }
    }
}
