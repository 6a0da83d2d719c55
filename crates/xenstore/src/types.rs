//! Small domain value types: [`DomId`], [`TxId`], [`ReqId`].

use std::fmt;
use std::str::FromStr;

/// A Xen domain id (`domid_t`, 16 bits). Dom0 is `DomId(0)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
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

/// Error parsing a [`DomId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid domain id {0:?}: expected a decimal number 0..=65535")]
pub struct ParseDomIdError(pub String);

impl FromStr for DomId {
    type Err = ParseDomIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseDomIdError(s.to_string()));
        }
        s.parse::<u16>()
            .map(DomId)
            .map_err(|_| ParseDomIdError(s.to_string()))
    }
}

/// A transaction id as carried in the header (`0` = no transaction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TxId(pub u32);

impl TxId {
    /// Outside any transaction.
    pub const NONE: TxId = TxId(0);
}

impl fmt::Display for TxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A request id chosen by the client and echoed in the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ReqId(pub u32);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domid_parses_decimal_only() {
        assert_eq!("0".parse::<DomId>(), Ok(DomId(0)));
        assert_eq!("65535".parse::<DomId>(), Ok(DomId(65535)));
        assert!("65536".parse::<DomId>().is_err());
        assert!("-1".parse::<DomId>().is_err());
        assert!("".parse::<DomId>().is_err());
        assert!(" 5".parse::<DomId>().is_err());
        assert_eq!(DomId(7).path(), "/local/domain/7");
    }
}
