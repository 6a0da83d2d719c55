//! The vif rate limit as Linux netback reads it, for the simulated netback.
//!
//! libxl writes the backend key `rate` as `<bytes>,<usecs>`: a credit of
//! `bytes` the guest may send per `usecs` interval (xl.cfg
//! `rate=10Mb/s@20ms` becomes `25000,20000`). Linux `drivers/net/xen-netback/xenbus.c`
//! `xen_net_read_rate()` parses it when the vif connects and again on every
//! change of the key (a watch): two decimal numbers joined by one comma
//! and nothing else (`simple_strtoul` twice, the first must stop at `,`,
//! the second at the end); anything else is logged ("Failed to parse
//! network rate limit. Traffic unlimited.") and leaves the vif unlimited,
//! as does an absent key. `xenvif` then refills the guest's credit every
//! interval and holds its transmit queue once the credit is spent.
//!
//! The simulated data path is a kernel veth, which nothing here can slow
//! down; the simulated netback applies these same rules to decide the
//! credit, logs what Linux logs, and reports the credit it would enforce
//! under the driver domain's lab bookkeeping ([`CREDIT_DIR`]).
//!
//! One difference: Linux's `simple_strtoul` wraps on overflow; a number
//! that does not fit 64 bits is refused here (unlimited, with the reason).

use std::fmt;

/// Under the driver domain's home: `<CREDIT_DIR>/<frontend>/<devid>` holds
/// the credit the simulated netback applies to that vif (lab bookkeeping;
/// Linux writes nothing).
pub const CREDIT_DIR: &str = "data/sim-netback-credit";

/// The transmit credit of a vif.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credit {
    /// No `rate` key: unlimited.
    Unlimited,
    /// `bytes` per `usecs` microseconds.
    Limited {
        /// Credit per interval, in bytes.
        bytes: u64,
        /// Interval, in microseconds.
        usecs: u64,
    },
    /// A `rate` Linux cannot parse: unlimited, and why.
    Invalid(String),
}

impl Credit {
    /// The credit for a backend's `rate` value (`None`: no key).
    pub fn from_rate(raw: Option<&[u8]>) -> Credit {
        let Some(raw) = raw else {
            return Credit::Unlimited;
        };
        let text = String::from_utf8_lossy(raw);
        let bad = |why: &str| Credit::Invalid(format!("{text:?}: {why}"));
        let Some((b, u)) = text.split_once(',') else {
            return bad("no comma between bytes and microseconds");
        };
        match (decimal(b), decimal(u)) {
            (Some(bytes), Some(usecs)) => Credit::Limited { bytes, usecs },
            (None, _) => bad("bytes are not a decimal number"),
            (_, None) => bad("microseconds are not a decimal number (or text follows)"),
        }
    }

    /// Bytes per second, when limited with a non-zero interval.
    pub fn bytes_per_second(&self) -> Option<u64> {
        match self {
            Credit::Limited { bytes, usecs } if *usecs > 0 => {
                let bps = u128::from(*bytes) * 1_000_000 / u128::from(*usecs);
                Some(u64::try_from(bps).unwrap_or(u64::MAX))
            }
            _ => None,
        }
    }

    /// The report written under [`CREDIT_DIR`]: `<bytes>,<usecs>`,
    /// `unlimited`, or `unlimited: invalid rate "...": why`.
    pub fn report(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Credit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credit::Unlimited => f.write_str("unlimited"),
            Credit::Limited { bytes, usecs } => write!(f, "{bytes},{usecs}"),
            Credit::Invalid(why) => write!(f, "unlimited: invalid rate {why}"),
        }
    }
}

/// `simple_strtoul(s, &e, 10)` that must consume all of `s` (at least one
/// digit, nothing else: no sign, no space).
fn decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn linux_parsing_rules() {
        assert_eq!(Credit::from_rate(None), Credit::Unlimited);
        assert_eq!(
            Credit::from_rate(Some(b"12500,10000")),
            Credit::Limited {
                bytes: 12500,
                usecs: 10000
            }
        );
        assert_eq!(
            Credit::from_rate(Some(b"12500,10000")).bytes_per_second(),
            Some(1_250_000)
        );
        assert_eq!(
            Credit::from_rate(Some(b"0,0")),
            Credit::Limited { bytes: 0, usecs: 0 }
        );
        for bad in [
            &b""[..],
            b"12500",
            b",10000",
            b"12500,",
            b"12500,10000\n",
            b" 12500,10000",
            b"+1,2",
            b"1,2,3",
            b"10Mb/s",
            b"1,0x10",
            b"99999999999999999999,1",
        ] {
            let c = Credit::from_rate(Some(bad));
            assert!(
                matches!(c, Credit::Invalid(_)),
                "{:?} -> {c:?}",
                String::from_utf8_lossy(bad)
            );
            assert!(c.report().starts_with("unlimited: invalid rate"));
            assert_eq!(c.bytes_per_second(), None);
        }
        assert_eq!(Credit::Unlimited.report(), "unlimited");
    }

    proptest! {
        #[test]
        fn written_pairs_read_back(b in any::<u64>(), u in any::<u64>()) {
            let s = format!("{b},{u}");
            prop_assert_eq!(Credit::from_rate(Some(s.as_bytes())), Credit::Limited { bytes: b, usecs: u });
            prop_assert_eq!(Credit::from_rate(Some(s.as_bytes())).report(), s);
        }

        #[test]
        fn any_bytes_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..40)) {
            let c = Credit::from_rate(Some(&raw));
            let _ = c.bytes_per_second();
            let _ = c.report();
        }
    }
}
