//! The Linux and Xen binary interfaces the Xen layer uses: ioctl numbers,
//! argument structs and the `getdomaininfo` domctl, as plain data with no
//! unsafe code, so their encodings are unit-tested against the numbers in
//! `shared/spec/xenstore/RINGS.md` (checked there against Debian's headers).
//!
//! Sources: linux `include/uapi/xen/evtchn.h`, `include/uapi/xen/gntdev.h`,
//! `include/uapi/xen/privcmd.h`, `include/uapi/asm-generic/ioctl.h`; xen
//! `xen/include/public/domctl.h` (4.17), `xen/include/public/xen.h`.

#![forbid(unsafe_code)]

/// `_IOC(dir, type, nr, size)` (asm-generic/ioctl.h): dir in bits 30-31,
/// size in 16-29, type in 8-15, number in 0-7.
pub const fn ioc(dir: u32, ty: u8, nr: u8, size: usize) -> u32 {
    (dir << 30) | ((size as u32) << 16) | ((ty as u32) << 8) | nr as u32
}
/// `_IOC_NONE`: every Xen ioctl here uses it, whatever the data direction.
const NONE: u32 = 0;

/// `VIRQ_DOM_EXC` (xen.h): a domain shut down, crashed or died. Global:
/// one binding in the system, which is how a second xenstored is noticed.
pub const VIRQ_DOM_EXC: u32 = 3;

/// `struct ioctl_evtchn_bind_virq`.
#[repr(C)]
#[derive(Debug, Default)]
pub struct BindVirq {
    /// The VIRQ number.
    pub virq: u32,
}
/// `struct ioctl_evtchn_bind_interdomain`.
#[repr(C)]
#[derive(Debug, Default)]
pub struct BindInterdomain {
    /// The other domain.
    pub remote_domain: u32,
    /// Its port (from XS_INTRODUCE, or dom0's `xsd_port`).
    pub remote_port: u32,
}
/// `struct ioctl_evtchn_unbind` and `struct ioctl_evtchn_notify`.
#[repr(C)]
#[derive(Debug, Default)]
pub struct Port {
    /// A local port bound through this file.
    pub port: u32,
}
/// `IOCTL_EVTCHN_BIND_VIRQ` (returns the local port).
pub const EVTCHN_BIND_VIRQ: u32 = ioc(NONE, b'E', 0, size_of::<BindVirq>());
/// `IOCTL_EVTCHN_BIND_INTERDOMAIN` (returns the local port).
pub const EVTCHN_BIND_INTERDOMAIN: u32 = ioc(NONE, b'E', 1, size_of::<BindInterdomain>());
/// `IOCTL_EVTCHN_UNBIND`.
pub const EVTCHN_UNBIND: u32 = ioc(NONE, b'E', 3, size_of::<Port>());
/// `IOCTL_EVTCHN_NOTIFY`.
pub const EVTCHN_NOTIFY: u32 = ioc(NONE, b'E', 4, size_of::<Port>());
/// `IOCTL_EVTCHN_RESET`: clears the pending queue and its overflow.
pub const EVTCHN_RESET: u32 = ioc(NONE, b'E', 5, 0);

/// `struct ioctl_gntdev_map_grant_ref` for one grant.
#[repr(C)]
#[derive(Debug, Default)]
pub struct MapGrantRef {
    /// Grants in `refs` (1).
    pub count: u32,
    /// Padding.
    pub pad: u32,
    /// Out: the offset to mmap the grant at.
    pub index: u64,
    /// The granting domain.
    pub domid: u32,
    /// The grant reference.
    pub gref: u32,
}
/// `struct ioctl_gntdev_unmap_grant_ref`.
#[repr(C)]
#[derive(Debug, Default)]
pub struct UnmapGrantRef {
    /// The offset the map ioctl returned.
    pub index: u64,
    /// Grants (1).
    pub count: u32,
    /// Padding.
    pub pad: u32,
}
/// `IOCTL_GNTDEV_MAP_GRANT_REF`.
pub const GNTDEV_MAP_GRANT_REF: u32 = ioc(NONE, b'G', 0, size_of::<MapGrantRef>());
/// `IOCTL_GNTDEV_UNMAP_GRANT_REF`.
pub const GNTDEV_UNMAP_GRANT_REF: u32 = ioc(NONE, b'G', 1, size_of::<UnmapGrantRef>());
/// `GNTTAB_RESERVED_XENSTORE` (xen: `include/public/grant_table.h`): the
/// grant every domain builder sets up for the xenstore page; the 4.17 C
/// server maps it (`map_interface`), which works for PV, PVH and HVM alike.
pub const GNTTAB_RESERVED_XENSTORE: u32 = 1;

/// `struct privcmd_hypercall`.
#[repr(C)]
#[derive(Debug, Default)]
pub struct Hypercall {
    /// The hypercall number.
    pub op: u64,
    /// Its arguments.
    pub arg: [u64; 5],
}
/// `IOCTL_PRIVCMD_HYPERCALL` (returns the hypercall's result).
pub const PRIVCMD_HYPERCALL: u32 = ioc(NONE, b'P', 0, size_of::<Hypercall>());
/// `__HYPERVISOR_domctl`.
pub const HYPERVISOR_DOMCTL: u64 = 36;

/// Size of `struct xen_domctl`: 16 bytes of header, a 128-byte union.
pub const DOMCTL_SIZE: usize = 144;
/// `XEN_DOMCTL_getdomaininfo`.
pub const DOMCTL_GETDOMAININFO: u32 = 5;
/// `XEN_DOMCTL_INTERFACE_VERSION` of Xen 4.17 (4.18: 0x16; a mismatch
/// fails with EACCES, and the struct layout may differ, so no guessing).
pub const DOMCTL_INTERFACE_VERSION: u32 = 0x15;
const UNION: usize = 16;

/// A `struct xen_domctl` asking for `getdomaininfo` of `domid`.
pub fn getdomaininfo_request(domid: u16) -> [u8; DOMCTL_SIZE] {
    let mut b = [0u8; DOMCTL_SIZE];
    b[0..4].copy_from_slice(&DOMCTL_GETDOMAININFO.to_ne_bytes());
    b[4..8].copy_from_slice(&DOMCTL_INTERFACE_VERSION.to_ne_bytes());
    b[8..10].copy_from_slice(&domid.to_ne_bytes());
    b
}

/// What xenstored needs of `struct xen_domctl_getdomaininfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomainInfo {
    /// The domain the hypervisor answered for (4.17 answers for the first
    /// domain at or after the one asked: compare).
    pub domid: u16,
    /// `XEN_DOMINF_dying`: being destroyed.
    pub dying: bool,
    /// `XEN_DOMINF_shutdown`: shut down (any reason, crash included).
    pub shutdown: bool,
    /// The shutdown reason (`SHUTDOWN_*`; 3 = crash).
    pub shutdown_reason: u8,
}

impl DomainInfo {
    /// Decode the reply in a domctl buffer.
    pub fn decode(b: &[u8; DOMCTL_SIZE]) -> DomainInfo {
        let domid = u16::from_ne_bytes([b[UNION], b[UNION + 1]]);
        let flags = u32::from_ne_bytes([b[UNION + 4], b[UNION + 5], b[UNION + 6], b[UNION + 7]]);
        DomainInfo {
            domid,
            dying: flags & 1 != 0,
            shutdown: flags & (1 << 2) != 0,
            shutdown_reason: ((flags >> 16) & 0xff) as u8,
        }
    }

    /// Shut down with reason `SHUTDOWN_crash`.
    pub fn crashed(&self) -> bool {
        self.shutdown && self.shutdown_reason == 3
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::offset_of;

    /// The numbers in RINGS.md §3-5 (compiled there against Debian's
    /// libxen-dev and linux-libc-dev headers for x86_64).
    #[test]
    fn ioctl_numbers_match_rings_md() {
        assert_eq!(EVTCHN_BIND_VIRQ, 0x0004_4500);
        assert_eq!(EVTCHN_BIND_INTERDOMAIN, 0x0008_4501);
        assert_eq!(EVTCHN_UNBIND, 0x0004_4503);
        assert_eq!(EVTCHN_NOTIFY, 0x0004_4504);
        assert_eq!(EVTCHN_RESET, 0x0000_4505);
        assert_eq!(GNTDEV_MAP_GRANT_REF, 0x0018_4700);
        assert_eq!(GNTDEV_UNMAP_GRANT_REF, 0x0010_4701);
        assert_eq!(PRIVCMD_HYPERCALL, 0x0030_5000);
    }

    #[test]
    fn argument_layouts_match_the_kernel_structs() {
        assert_eq!(size_of::<MapGrantRef>(), 24);
        assert_eq!(offset_of!(MapGrantRef, index), 8);
        assert_eq!(offset_of!(MapGrantRef, domid), 16);
        assert_eq!(offset_of!(MapGrantRef, gref), 20);
        assert_eq!(size_of::<UnmapGrantRef>(), 16);
        assert_eq!(offset_of!(UnmapGrantRef, count), 8);
        assert_eq!(size_of::<Hypercall>(), 48);
        assert_eq!(offset_of!(Hypercall, arg), 8);
        assert_eq!(size_of::<BindInterdomain>(), 8);
        assert_eq!(offset_of!(BindInterdomain, remote_port), 4);
    }

    #[test]
    fn getdomaininfo_encoding_matches_domctl_h() {
        let b = getdomaininfo_request(0x1234);
        assert_eq!(&b[0..4], &5u32.to_ne_bytes()); // cmd
        assert_eq!(&b[4..8], &0x15u32.to_ne_bytes()); // interface_version (4.17)
        assert_eq!(&b[8..10], &0x1234u16.to_ne_bytes()); // domain
        assert!(b[10..].iter().all(|&x| x == 0));
    }

    #[test]
    fn decodes_flags_dying_shutdown_and_crash() {
        let mut b = [0u8; DOMCTL_SIZE];
        b[16..18].copy_from_slice(&7u16.to_ne_bytes());
        // shutdown (bit 2) + running (bit 5), reason 3 (crash) in bits 16-23
        b[20..24].copy_from_slice(&((1u32 << 2) | (1 << 5) | (3 << 16)).to_ne_bytes());
        let i = DomainInfo::decode(&b);
        assert_eq!(i.domid, 7);
        assert!(i.shutdown && !i.dying && i.crashed());
        b[20..24].copy_from_slice(&1u32.to_ne_bytes());
        let i = DomainInfo::decode(&b);
        assert!(i.dying && !i.shutdown && !i.crashed());
    }
}
