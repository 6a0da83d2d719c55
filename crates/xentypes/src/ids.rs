//! Domain and device ids.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A Xen domain id (`domid_t`, 16 bits). Dom0 is `DomId(0)`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct DomId(pub u16);

impl DomId {
    /// The control domain.
    pub const DOM0: DomId = DomId(0);
    /// First reserved id (`DOMID_FIRST_RESERVED`, xen/include/public/xen.h):
    /// ids at or above it are not real domains.
    pub const FIRST_RESERVED: u16 = 0x7ff0;

    /// True for ids of real domains (below `DOMID_FIRST_RESERVED`).
    pub fn is_valid_domain(self) -> bool {
        self.0 < Self::FIRST_RESERVED
    }

    /// `/local/domain/<domid>`, as GET_DOMAIN_PATH answers.
    pub fn path(self) -> String {
        format!("/local/domain/{}", self.0)
    }
}

impl fmt::Display for DomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for DomId {
    type Err = Error;
    /// Decimal digits only, 0..=65535.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::InvalidDomId {
            input: s.to_string(),
        };
        if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse::<u16>().map(DomId).map_err(|_| bad())
    }
}

/// A device id (libxl `devid`, the `handle` of a vif): vif `N` of a guest
/// is `vif<domid>.<N>` in its backend.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct DevId(pub u32);

impl DevId {
    /// Largest devid accepted: libxl keeps devids in a C `int`.
    pub const MAX: u32 = i32::MAX as u32;

    /// Parse a devid from xenstore bytes: decimal digits only, no leading
    /// zeros, at most [`DevId::MAX`].
    pub fn parse_bytes(raw: &[u8]) -> Result<DevId> {
        let bad = |reason| Error::InvalidDevId {
            input: String::from_utf8_lossy(raw).into_owned(),
            reason,
        };
        if raw.is_empty() || raw.len() > 10 || !raw.iter().all(u8::is_ascii_digit) {
            return Err(bad("expected a decimal number"));
        }
        if raw.len() > 1 && raw[0] == b'0' {
            return Err(bad("leading zeros are not allowed"));
        }
        let n = raw
            .iter()
            .fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0'));
        u32::try_from(n)
            .ok()
            .filter(|n| *n <= DevId::MAX)
            .map(DevId)
            .ok_or_else(|| bad("out of range"))
    }
}

impl fmt::Display for DevId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for DevId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        DevId::parse_bytes(s.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn domid_parses_decimal_only() {
        assert_eq!("0".parse::<DomId>(), Ok(DomId(0)));
        assert_eq!("65535".parse::<DomId>(), Ok(DomId(65535)));
        for bad in ["65536", "-1", "", " 5", "0x1", "123456"] {
            assert!(bad.parse::<DomId>().is_err(), "{bad}");
        }
        assert_eq!(DomId(7).path(), "/local/domain/7");
        assert!(DomId(0x7fef).is_valid_domain());
        assert!(!DomId(0x7ff0).is_valid_domain());
    }

    #[test]
    fn devid_parses_like_libxl() {
        assert_eq!("0".parse::<DevId>(), Ok(DevId(0)));
        assert_eq!("2147483647".parse::<DevId>(), Ok(DevId(DevId::MAX)));
        for bad in ["", "01", "2147483648", "-1", "1a", "99999999999"] {
            assert!(bad.parse::<DevId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn serde_is_the_number() {
        assert_eq!(serde_json::to_string(&DomId(3)).unwrap(), "3");
        assert_eq!(serde_json::to_string(&DevId(1)).unwrap(), "1");
    }

    proptest! {
        #[test]
        fn round_trips(d in any::<u16>(), v in 0..=DevId::MAX) {
            prop_assert_eq!(DomId(d).to_string().parse::<DomId>().unwrap(), DomId(d));
            prop_assert_eq!(DevId(v).to_string().parse::<DevId>().unwrap(), DevId(v));
        }
    }
}
