//! `XenbusState` (xen/include/public/io/xenbus.h `enum xenbus_state`).

use std::fmt;
use std::str::FromStr;

/// The state of one end of a split device, as written to its `state` node.
///
/// `Display` prints the wire form (the decimal number); [`XenbusState::name`]
/// gives the human name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum XenbusState {
    /// 0: unknown.
    Unknown,
    /// 1: written by the toolstack when it creates the device.
    Initialising,
    /// 2: early init done, waiting for the peer (or hotplug).
    InitWait,
    /// 3: waiting for the peer to connect.
    Initialised,
    /// 4: normal operation.
    Connected,
    /// 5: being torn down.
    Closing,
    /// 6: closed.
    Closed,
    /// 7: reconfiguring (PCI function add/remove).
    Reconfiguring,
    /// 8: reconfigured.
    Reconfigured,
}

/// All states in numeric order.
pub const ALL_STATES: [XenbusState; 9] = [
    XenbusState::Unknown,
    XenbusState::Initialising,
    XenbusState::InitWait,
    XenbusState::Initialised,
    XenbusState::Connected,
    XenbusState::Closing,
    XenbusState::Closed,
    XenbusState::Reconfiguring,
    XenbusState::Reconfigured,
];

/// Error parsing a [`XenbusState`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid xenbus state {0:?}: expected a number 0..=8 or a state name")]
pub struct ParseStateError(pub String);

impl XenbusState {
    /// The numeric value (xenbus.h).
    pub fn as_u8(self) -> u8 {
        match self {
            XenbusState::Unknown => 0,
            XenbusState::Initialising => 1,
            XenbusState::InitWait => 2,
            XenbusState::Initialised => 3,
            XenbusState::Connected => 4,
            XenbusState::Closing => 5,
            XenbusState::Closed => 6,
            XenbusState::Reconfiguring => 7,
            XenbusState::Reconfigured => 8,
        }
    }

    /// The state with numeric value `n`, if any.
    pub fn from_u8(n: u8) -> Option<XenbusState> {
        ALL_STATES.get(usize::from(n)).copied()
    }

    /// Human name, as in xenbus.h without the prefix (`Connected`).
    pub fn name(self) -> &'static str {
        match self {
            XenbusState::Unknown => "Unknown",
            XenbusState::Initialising => "Initialising",
            XenbusState::InitWait => "InitWait",
            XenbusState::Initialised => "Initialised",
            XenbusState::Connected => "Connected",
            XenbusState::Closing => "Closing",
            XenbusState::Closed => "Closed",
            XenbusState::Reconfiguring => "Reconfiguring",
            XenbusState::Reconfigured => "Reconfigured",
        }
    }

    /// Parse the raw bytes of a `state` node.
    ///
    /// Accepts a decimal number with optional surrounding ASCII whitespace
    /// and trailing NULs (some writers include the terminator). Anything
    /// else, including numbers outside 0..=8, is an error. Never panics.
    pub fn parse_bytes(raw: &[u8]) -> Result<XenbusState, ParseStateError> {
        let bad =
            || ParseStateError(String::from_utf8_lossy(&raw[..raw.len().min(32)]).into_owned());
        let mut s = raw;
        while let [rest @ .., 0] = s {
            s = rest;
        }
        let s = s.trim_ascii();
        // At most a few digits: "004" is fine, a 4 KiB string of digits is not.
        if s.is_empty() || s.len() > 3 || !s.iter().all(u8::is_ascii_digit) {
            return Err(bad());
        }
        let n = s.iter().fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
        u8::try_from(n)
            .ok()
            .and_then(XenbusState::from_u8)
            .ok_or_else(bad)
    }

    /// The wire form (`"4"`), as written to a `state` node.
    pub fn to_wire(self) -> String {
        self.as_u8().to_string()
    }
}

impl fmt::Display for XenbusState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_u8())
    }
}

impl FromStr for XenbusState {
    type Err = ParseStateError;
    /// A number (`"4"`) or a name, case-insensitive (`"connected"`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(st) = XenbusState::parse_bytes(s.as_bytes()) {
            return Ok(st);
        }
        let t = s.trim();
        ALL_STATES
            .iter()
            .copied()
            .find(|st| st.name().eq_ignore_ascii_case(t))
            .ok_or_else(|| ParseStateError(s.chars().take(32).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn golden_values_match_xenbus_h() {
        let golden = [
            ("0", XenbusState::Unknown, "Unknown"),
            ("1", XenbusState::Initialising, "Initialising"),
            ("2", XenbusState::InitWait, "InitWait"),
            ("3", XenbusState::Initialised, "Initialised"),
            ("4", XenbusState::Connected, "Connected"),
            ("5", XenbusState::Closing, "Closing"),
            ("6", XenbusState::Closed, "Closed"),
            ("7", XenbusState::Reconfiguring, "Reconfiguring"),
            ("8", XenbusState::Reconfigured, "Reconfigured"),
        ];
        for (wire, st, name) in golden {
            assert_eq!(XenbusState::parse_bytes(wire.as_bytes()), Ok(st));
            assert_eq!(st.to_string(), wire);
            assert_eq!(st.name(), name);
            assert_eq!(name.parse::<XenbusState>(), Ok(st));
            assert_eq!(name.to_lowercase().parse::<XenbusState>(), Ok(st));
        }
    }

    #[test]
    fn tolerates_whitespace_and_nul_but_not_junk() {
        assert_eq!(XenbusState::parse_bytes(b"4\0"), Ok(XenbusState::Connected));
        assert_eq!(XenbusState::parse_bytes(b" 6\n"), Ok(XenbusState::Closed));
        assert_eq!(XenbusState::parse_bytes(b"004"), Ok(XenbusState::Connected));
        for junk in [
            &b""[..],
            b"9",
            b"-1",
            b"4x",
            b"0x4",
            b"255",
            b"999",
            b"\xff",
            b"4 4",
            b"0004",
        ] {
            assert!(XenbusState::parse_bytes(junk).is_err(), "{junk:?}");
        }
    }

    proptest! {
        #[test]
        fn parse_bytes_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = XenbusState::parse_bytes(&raw);
        }

        #[test]
        fn wire_round_trip(n in 0u8..=8) {
            let st = XenbusState::from_u8(n).unwrap();
            prop_assert_eq!(XenbusState::parse_bytes(st.to_wire().as_bytes()), Ok(st));
            prop_assert_eq!(st.to_string().parse::<XenbusState>(), Ok(st));
        }

        #[test]
        fn from_str_never_panics(s in ".{0,40}") {
            let _ = s.parse::<XenbusState>();
        }
    }
}
