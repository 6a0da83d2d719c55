//! IP addresses with a prefix length: a vif's `ip` list (xl.cfg `ip=`,
//! the backend's `ip` node, the host file's `ip = [...]`).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// An address and a prefix length, `192.0.2.10/24` or `2001:db8::10/64`.
///
/// A bare address parses with the host prefix (/32 or /128), as Xen's
/// hotplug scripts treat the entries of a vif's `ip` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpCidr {
    addr: IpAddr,
    prefix: u8,
}

impl IpCidr {
    /// Build one, checking the prefix length against the family.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<IpCidr> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(Error::InvalidIp {
                input: format!("{addr}/{prefix}"),
                reason: "prefix length is longer than the address",
            });
        }
        Ok(IpCidr { addr, prefix })
    }

    /// The address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// True for IPv4.
    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// Parse a whitespace-separated list (the backend's `ip` node).
    pub fn parse_list(s: &str) -> Result<Vec<IpCidr>> {
        s.split_whitespace().map(str::parse).collect()
    }

    /// Format a list the way the backend's `ip` node holds it: addresses
    /// separated by one space.
    pub fn format_list(list: &[IpCidr]) -> String {
        list.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl fmt::Display for IpCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for IpCidr {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason| Error::InvalidIp {
            input: s.to_string(),
            reason,
        };
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .parse()
            .map_err(|_| bad("expected an address like 192.0.2.10/24 or 2001:db8::10/64"))?;
        let prefix = match p {
            None => {
                if addr.is_ipv4() {
                    32
                } else {
                    128
                }
            }
            Some(p) => {
                if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad("the prefix length is not a number"));
                }
                p.parse::<u8>()
                    .map_err(|_| bad("the prefix length is not a number"))?
            }
        };
        IpCidr::new(addr, prefix).map_err(|_| bad("prefix length is longer than the address"))
    }
}

impl Serialize for IpCidr {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IpCidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn golden() {
        let a: IpCidr = "192.0.2.10/24".parse().unwrap();
        assert_eq!(
            (a.addr().to_string(), a.prefix()),
            ("192.0.2.10".into(), 24)
        );
        assert_eq!(a.to_string(), "192.0.2.10/24");
        assert_eq!("192.0.2.10".parse::<IpCidr>().unwrap().prefix(), 32);
        assert_eq!("2001:db8::1".parse::<IpCidr>().unwrap().prefix(), 128);
        assert_eq!(
            "2001:db8::1/64".parse::<IpCidr>().unwrap().to_string(),
            "2001:db8::1/64"
        );
        for bad in [
            "",
            "1.2.3",
            "1.2.3.4/33",
            "::1/129",
            "1.2.3.4/",
            "1.2.3.4/x",
            "a/1",
        ] {
            assert!(bad.parse::<IpCidr>().is_err(), "{bad}");
        }
        let l = IpCidr::parse_list(" 192.0.2.1  192.0.2.2/24 ").unwrap();
        assert_eq!(IpCidr::format_list(&l), "192.0.2.1/32 192.0.2.2/24");
    }

    proptest! {
        #[test]
        fn round_trip(a in any::<[u8; 4]>(), p in 0u8..=32, b in any::<[u16; 8]>(), q in 0u8..=128) {
            let v4 = IpCidr::new(IpAddr::from(a), p).unwrap();
            prop_assert_eq!(v4.to_string().parse::<IpCidr>().unwrap(), v4);
            let v6 = IpCidr::new(IpAddr::from(b), q).unwrap();
            prop_assert_eq!(v6.to_string().parse::<IpCidr>().unwrap(), v6);
        }

        #[test]
        fn never_panics(s in ".{0,60}") {
            let _ = s.parse::<IpCidr>();
        }
    }
}
