//! Ethernet (MAC) addresses as xl.cfg, libxl and netlink carry them.

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::io::Read;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// The Xen OUI (00:16:3e) libxl uses for the MACs it picks
/// (libxl_nic.c `libxl__device_nic_setdefault`).
pub const XEN_OUI: [u8; 3] = [0x00, 0x16, 0x3e];

/// A 48-bit Ethernet address.
///
/// `FromStr` takes six colon-separated hex octets of one or two digits
/// each (what libxl reads back from xenstore); [`MacAddr::parse_strict`]
/// wants exactly two digits per octet (what xl accepts in `mac=`).
/// Displayed as `aa:bb:cc:dd:ee:ff`, lower case, as libxl writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The all-zero address (libxl's "unset": pick one).
    pub const ZERO: MacAddr = MacAddr([0; 6]);
    /// The address a backend gives its side of a vif (netback's
    /// `fe:ff:ff:ff:ff:ff`, so the bridge never learns it).
    pub const BACKEND: MacAddr = MacAddr([0xfe, 0xff, 0xff, 0xff, 0xff, 0xff]);

    /// The octets.
    pub fn octets(self) -> [u8; 6] {
        self.0
    }

    /// True when the address is in the Xen OUI 00:16:3e.
    pub fn is_xen_oui(&self) -> bool {
        self.0[..3] == XEN_OUI
    }

    /// True for 00:00:00:00:00:00.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }

    /// True for group (multicast and broadcast) addresses: bit 0 of the
    /// first octet.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }

    /// True for an address one host may own: not multicast, not zero.
    pub fn is_unicast(&self) -> bool {
        !self.is_multicast() && !self.is_zero()
    }

    /// The IPv6 link-local address a host derives from this MAC by
    /// modified EUI-64 (RFC 4291 §2.5.1, appendix A; RFC 4862 §5.3):
    /// `fe80::` + the MAC with the universal/local bit flipped and
    /// `ff:fe` inserted in the middle.
    pub fn to_link_local(&self) -> std::net::Ipv6Addr {
        let m = self.0;
        std::net::Ipv6Addr::from([
            0xfe,
            0x80,
            0,
            0,
            0,
            0,
            0,
            0,
            m[0] ^ 0x02,
            m[1],
            m[2],
            0xff,
            0xfe,
            m[3],
            m[4],
            m[5],
        ])
    }

    /// True for locally administered addresses (bit 1 of the first octet).
    pub fn is_local(&self) -> bool {
        self.0[0] & 2 == 2
    }

    /// A random address in the Xen OUI with bit 7 of the fourth octet
    /// clear, as libxl picks one (`mac[3] = r[0] & 0x7f`).
    pub fn random_xen() -> MacAddr {
        let r = random_bytes();
        MacAddr::xen_with_tail(r)
    }

    /// A stable address in the Xen OUI derived from `seed` (64-bit FNV-1a
    /// of the bytes, folded into the last three octets, bit 7 of the
    /// fourth octet clear as libxl's): the same seed gives the same
    /// address on every run and every host.
    ///
    /// ```
    /// let a = xentypes::MacAddr::derived_xen(b"web/0");
    /// assert_eq!(a, xentypes::MacAddr::derived_xen(b"web/0"));
    /// assert_ne!(a, xentypes::MacAddr::derived_xen(b"web/1"));
    /// assert!(a.is_xen_oui() && a.is_unicast());
    /// ```
    pub fn derived_xen(seed: &[u8]) -> MacAddr {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in seed {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        let folded = h ^ (h >> 24) ^ (h >> 48);
        let b = folded.to_le_bytes();
        MacAddr::xen_with_tail([b[0], b[1], b[2]])
    }

    fn xen_with_tail(t: [u8; 3]) -> MacAddr {
        MacAddr([XEN_OUI[0], XEN_OUI[1], XEN_OUI[2], t[0] & 0x7f, t[1], t[2]])
    }

    /// Parse xenstore bytes (the lenient form).
    pub fn parse_bytes(raw: &[u8]) -> Result<MacAddr> {
        let s = std::str::from_utf8(raw).map_err(|_| Error::InvalidMac {
            input: String::from_utf8_lossy(raw).into_owned(),
            reason: "not UTF-8",
        })?;
        s.parse()
    }

    /// Parse the strict form: six two-digit hex octets separated by `:`.
    pub fn parse_strict(s: &str) -> Result<MacAddr> {
        parse(s, 2)
    }
}

fn parse(s: &str, min_digits: usize) -> Result<MacAddr> {
    let bad = |reason| Error::InvalidMac {
        input: s.to_string(),
        reason,
    };
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for o in &mut out {
        let p = parts
            .next()
            .ok_or_else(|| bad("expected six octets like 00:16:3e:01:02:03"))?;
        if p.len() < min_digits || p.is_empty() || p.len() > 2 {
            return Err(bad(
                "expected two hex digits per octet, like 00:16:3e:01:02:03",
            ));
        }
        if !p.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("expected hex octets like 00:16:3e:01:02:03"));
        }
        *o = u8::from_str_radix(p, 16).map_err(|_| bad("bad hex octet"))?;
    }
    if parts.next().is_some() {
        return Err(bad("expected six octets like 00:16:3e:01:02:03"));
    }
    Ok(MacAddr(out))
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
        parse(s, 1)
    }
}

impl From<[u8; 6]> for MacAddr {
    fn from(o: [u8; 6]) -> Self {
        MacAddr(o)
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        MacAddr::parse_strict(&s).map_err(serde::de::Error::custom)
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
            "00:16:3e::0b:ff",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
        assert!(MacAddr::parse_strict("00:16:3e:0a:b:ff").is_err());
        assert_eq!(
            MacAddr::parse_strict("00:16:3e:0a:0b:ff").unwrap(),
            MacAddr([0, 0x16, 0x3e, 0x0a, 0x0b, 0xff])
        );
        let e = "zz".parse::<MacAddr>().unwrap_err().to_string();
        assert!(e.contains("\"zz\""), "{e}");
    }

    #[test]
    fn link_local_is_modified_eui64() {
        // RFC 4291 appendix A: 00:16:3e:12:34:56 -> fe80::216:3eff:fe12:3456.
        let m: MacAddr = "00:16:3e:12:34:56".parse().unwrap();
        assert_eq!(m.to_link_local().to_string(), "fe80::216:3eff:fe12:3456");
        let local: MacAddr = "02:00:00:00:00:01".parse().unwrap();
        assert_eq!(local.to_link_local().to_string(), "fe80::ff:fe00:1");
    }

    #[test]
    fn classifies_addresses() {
        let m = |s: &str| s.parse::<MacAddr>().unwrap();
        assert!(m("01:16:3e:aa:bb:cc").is_multicast());
        assert!(!m("01:16:3e:aa:bb:cc").is_unicast());
        assert!(m("ff:ff:ff:ff:ff:ff").is_multicast());
        assert!(!MacAddr::ZERO.is_unicast());
        assert!(m("00:16:3e:aa:bb:cc").is_unicast());
        assert!(m("00:16:3e:aa:bb:cc").is_xen_oui());
        assert!(!m("00:16:3f:aa:bb:cc").is_xen_oui());
        assert!(MacAddr::BACKEND.is_local());
    }

    #[test]
    fn random_is_xen_oui_with_bit7_clear() {
        for _ in 0..32 {
            let m = MacAddr::random_xen();
            assert_eq!(&m.0[..3], &XEN_OUI);
            assert_eq!(m.0[3] & 0x80, 0);
        }
    }

    #[test]
    fn derived_is_stable_golden() {
        // Fixed forever: hosts rely on derived MACs not changing.
        assert_eq!(
            MacAddr::derived_xen(b"web/0").to_string(),
            "00:16:3e:01:31:2c"
        );
        assert_eq!(
            MacAddr::derived_xen(b"guest1/0").to_string(),
            "00:16:3e:67:d6:49"
        );
        let a = MacAddr::derived_xen(b"");
        assert_eq!(&a.0[..3], &XEN_OUI);
        assert_eq!(a.0[3] & 0x80, 0);
    }

    #[test]
    fn serde_is_the_string_form() {
        let m = MacAddr([0, 0x16, 0x3e, 1, 2, 3]);
        assert_eq!(serde_json::to_string(&m).unwrap(), "\"00:16:3e:01:02:03\"");
        let back: MacAddr = serde_json::from_str("\"00:16:3e:01:02:03\"").unwrap();
        assert_eq!(back, m);
        assert!(serde_json::from_str::<MacAddr>("\"00:16:3e:1:2:3\"").is_err());
    }

    proptest! {
        #[test]
        fn round_trip(b in any::<[u8; 6]>()) {
            let m = MacAddr(b);
            prop_assert_eq!(m.to_string().parse::<MacAddr>().unwrap(), m);
            prop_assert_eq!(MacAddr::parse_strict(&m.to_string()).unwrap(), m);
        }

        #[test]
        fn never_panics(s in ".{0,40}") {
            let _ = s.parse::<MacAddr>();
            let _ = MacAddr::parse_strict(&s);
        }
    }
}
