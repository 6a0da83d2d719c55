//! The value types shared by every drvdom crate, each defined once here:
//! [`MacAddr`], [`Bdf`], [`DomId`], [`DevId`] and [`IpCidr`].
//!
//! This crate sits below all others (it depends on nothing of ours), so
//! the xl.cfg parser, the PCI manager, the xenstore client, the device
//! model and the netlink layer all speak the same types. Parsers never
//! panic; every error names the bad input and says what was expected.
//!
//! ```
//! use xentypes::{Bdf, DevId, DomId, MacAddr};
//! let mac: MacAddr = "00:16:3e:0a:0b:0c".parse().unwrap();
//! assert!(mac.is_xen_oui() && mac.is_unicast());
//! let bdf: Bdf = "3:0.1".parse().unwrap();
//! assert_eq!(bdf.to_string(), "0000:03:00.1");
//! assert_eq!(DomId(5).path(), "/local/domain/5");
//! assert_eq!("7".parse::<DevId>().unwrap(), DevId(7));
//! ```

#![forbid(unsafe_code)]

mod bdf;
mod error;
mod ids;
mod ip;
mod mac;

pub use bdf::{Bdf, MAX_DEVICE, MAX_FUNCTION};
pub use error::{Error, Result};
pub use ids::{DevId, DomId};
pub use ip::IpCidr;
pub use mac::{MacAddr, XEN_OUI};
