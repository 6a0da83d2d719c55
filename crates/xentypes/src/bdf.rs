//! PCI addresses: `domain:bus:device.function`.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

use crate::error::Error;

/// Largest device number on a bus (5 bits, PCI Local Bus spec).
pub const MAX_DEVICE: u8 = 0x1f;
/// Largest function number of a device (3 bits).
pub const MAX_FUNCTION: u8 = 7;

/// A PCI address (segment/domain, bus, device, function).
///
/// Parses every form users and xl write: `0000:03:00.0`, `03:00.0`,
/// `3:0.0` (domain 0 when omitted); prints the canonical sysfs form
/// `0000:03:00.0`. Ordered by domain, bus, device, function.
///
/// ```
/// let b: xentypes::Bdf = "3:0.1".parse().unwrap();
/// assert_eq!(b.to_string(), "0000:03:00.1");
/// assert_eq!(b.xenstore_key(), "0000-03-00-1");
/// ```
/// `Default` is `0000:00:00.0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Bdf {
    domain: u32,
    bus: u8,
    device: u8,
    function: u8,
}

impl Bdf {
    /// Build a BDF, checking device (0–31) and function (0–7).
    pub fn new(domain: u32, bus: u8, device: u8, function: u8) -> Result<Self, Error> {
        let b = Bdf {
            domain,
            bus,
            device,
            function,
        };
        if device > MAX_DEVICE {
            return Err(Error::InvalidBdf {
                input: format!("{domain:04x}:{bus:02x}:{device:02x}.{function}"),
                reason: format!("device {device:#x} is out of range 0-1f"),
            });
        }
        if function > MAX_FUNCTION {
            return Err(Error::InvalidBdf {
                input: format!("{domain:04x}:{bus:02x}:{device:02x}.{function}"),
                reason: format!("function {function} is out of range 0-7"),
            });
        }
        Ok(b)
    }

    /// The PCI segment (domain).
    pub fn domain(&self) -> u32 {
        self.domain
    }
    /// The bus number.
    pub fn bus(&self) -> u8 {
        self.bus
    }
    /// The device (slot) number, 0–31.
    pub fn device(&self) -> u8 {
        self.device
    }
    /// The function number, 0–7.
    pub fn function(&self) -> u8 {
        self.function
    }

    /// The same device with another function number (multifunction siblings).
    pub fn with_function(&self, function: u8) -> Result<Self, Error> {
        Bdf::new(self.domain, self.bus, self.device, function)
    }

    /// The key libxl uses under `/libxl/pci/`: `dddd-bb-dd-f`
    /// (libxl_pci.c, `pci_info_xs_path`).
    pub fn xenstore_key(&self) -> String {
        format!(
            "{:04x}-{:02x}-{:02x}-{:x}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

fn hex_part(input: &str, part: &str, name: &str, max_digits: usize) -> Result<u32, Error> {
    let bad = |reason: String| Error::InvalidBdf {
        input: input.to_string(),
        reason,
    };
    if part.is_empty() {
        return Err(bad(format!("{name} is empty")));
    }
    if part.len() > max_digits {
        return Err(bad(format!(
            "{name} {part:?} has more than {max_digits} hex digits"
        )));
    }
    if !part.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(bad(format!("{name} {part:?} is not hexadecimal")));
    }
    u32::from_str_radix(part, 16).map_err(|e| bad(format!("{name} {part:?}: {e}")))
}

impl FromStr for Bdf {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let input = s;
        let s = s.trim();
        let bad = |reason: &str| Error::InvalidBdf {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        let (left, function) = s
            .rsplit_once('.')
            .ok_or_else(|| bad("expected [DOMAIN:]BUS:DEVICE.FUNCTION, e.g. 0000:03:00.0"))?;
        let parts: Vec<&str> = left.split(':').collect();
        let (domain, bus, device) = match parts.as_slice() {
            [bus, device] => ("0", *bus, *device),
            [domain, bus, device] => (*domain, *bus, *device),
            _ => {
                return Err(bad(
                    "expected [DOMAIN:]BUS:DEVICE.FUNCTION, e.g. 0000:03:00.0",
                ));
            }
        };
        let domain = hex_part(input, domain, "domain", 8)?;
        let bus = hex_part(input, bus, "bus", 2)?;
        let device = hex_part(input, device, "device", 2)?;
        let function = hex_part(input, function, "function", 1)?;
        let bus = u8::try_from(bus).map_err(|_| bad("bus is out of range 0-ff"))?;
        let device = u8::try_from(device).map_err(|_| bad("device is out of range 0-1f"))?;
        if device > MAX_DEVICE {
            return Err(Error::InvalidBdf {
                input: input.to_string(),
                reason: format!("device {device:#x} is out of range 0-1f"),
            });
        }
        let function = u8::try_from(function).map_err(|_| bad("function is out of range 0-7"))?;
        if function > MAX_FUNCTION {
            return Err(Error::InvalidBdf {
                input: input.to_string(),
                reason: format!("function {function:x} is out of range 0-7"),
            });
        }
        Ok(Bdf {
            domain,
            bus,
            device,
            function,
        })
    }
}

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

impl Serialize for Bdf {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Bdf {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        for s in [
            "0000:03:00.0",
            "03:00.0",
            "3:0.0",
            " 0000:3:00.0\n",
            "0:03:0.0",
        ] {
            let b: Bdf = s.parse().unwrap();
            assert_eq!(b.to_string(), "0000:03:00.0", "{s}");
        }
        let b: Bdf = "abcd:ff:1f.7".parse().unwrap();
        assert_eq!(
            (b.domain(), b.bus(), b.device(), b.function()),
            (0xabcd, 0xff, 0x1f, 7)
        );
        assert_eq!(b.to_string(), "abcd:ff:1f.7");
        assert_eq!(
            "10000:00:00.0".parse::<Bdf>().unwrap().to_string(),
            "10000:00:00.0"
        );
    }

    #[test]
    fn rejects_out_of_range_parts_with_reason() {
        let msg = |s: &str| s.parse::<Bdf>().unwrap_err().to_string();
        assert!(msg("0000:03:00.8").contains("function 8 is out of range 0-7"));
        assert!(msg("0000:03:20.0").contains("device 0x20 is out of range 0-1f"));
        assert!(msg("0000:100:00.0").contains("bus \"100\" has more than 2 hex digits"));
        assert!(msg("0000:0g:00.0").contains("not hexadecimal"));
        assert!(msg("03:00").contains("expected [DOMAIN:]BUS:DEVICE.FUNCTION"));
        assert!(msg("1:2:3:4.0").contains("expected"));
        assert!(msg(":00.0").contains("bus is empty"));
        assert!(msg("+3:00.0").contains("not hexadecimal"));
    }

    #[test]
    fn orders_by_domain_bus_device_function() {
        let mut v: Vec<Bdf> = [
            "0001:00:00.0",
            "0000:03:00.1",
            "0000:03:00.0",
            "0000:02:1f.7",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        v.sort();
        let s: Vec<String> = v.iter().map(ToString::to_string).collect();
        assert_eq!(
            s,
            [
                "0000:02:1f.7",
                "0000:03:00.0",
                "0000:03:00.1",
                "0001:00:00.0"
            ]
        );
    }

    #[test]
    fn xenstore_key_matches_libxl() {
        let b: Bdf = "0000:03:00.0".parse().unwrap();
        assert_eq!(b.xenstore_key(), "0000-03-00-0");
    }

    #[test]
    fn serde_uses_canonical_string() {
        let b: Bdf = "3:0.1".parse().unwrap();
        assert_eq!(serde_json::to_string(&b).unwrap(), "\"0000:03:00.1\"");
        let back: Bdf = serde_json::from_str("\"0000:03:00.1\"").unwrap();
        assert_eq!(back, b);
    }
}
