//! sysfs PCI enumeration and xen-pciback management.
//!
//! (Being written; see the crate's issue.)
