//! Is this host a Xen domain that can serve backends, dom0, or no Xen at
//! all? `drvdom-agent` asks at start-up when it would use the host's own
//! xenstore (no `--xenstore`, no `$XENSTORED_PATH`), so that the packaged
//! service, enabled on every host it is installed on, does nothing outside
//! a driver domain instead of failing and restarting.
//!
//! The test reads two paths under a root given as a value (`/` for the
//! real host, a temporary tree in tests) and never writes anything:
//!
//! 1. `proc/xen/capabilities` lists `control_d`: dom0 (xenfs, mounted by
//!    Debian's `proc-xen.mount`, writes it; Linux `drivers/xen/xenfs/super.c`).
//!    dom0's own backends are libxl's job, not the agent's.
//! 2. neither `dev/xen/xenbus` nor `proc/xen` exists: not a Xen domain.
//!    `/dev/xen/xenbus` is the xenstore device every Xen guest kernel
//!    registers (`drivers/xen/xenbus/xenbus_dev_frontend.c`), and the one
//!    the agent connects to; `/proc/xen` is where xenfs is mounted.
//! 3. otherwise: a Xen domain. Whether it is dom0 after all (xenfs not
//!    mounted) is settled by its domid once connected (0 = dom0).

use std::path::Path;

/// What the host is, as far as the agent is concerned. Exhaustive on
/// purpose: a new kind must make the agent decide what to do there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKind {
    /// No `/dev/xen/xenbus` and no `/proc/xen`: not running on Xen (or
    /// Xen's devices are not visible here, e.g. in a container).
    NotXen,
    /// `/proc/xen/capabilities` lists `control_d`: the control domain.
    Dom0,
    /// A Xen domain other than (known) dom0: a driver domain candidate.
    XenDomain,
}

/// `dev/xen/xenbus` under the root: the kernel's xenstore device.
pub const XENBUS_DEVICE_REL: &str = "dev/xen/xenbus";
/// `proc/xen` under the root: xenfs' mount point.
pub const PROC_XEN_REL: &str = "proc/xen";

/// Classify the host whose filesystem is at `root` (see the module doc).
pub fn probe_host(root: &Path) -> HostKind {
    let caps = std::fs::read_to_string(root.join(PROC_XEN_REL).join("capabilities"));
    if caps.is_ok_and(|c| {
        c.split(|ch: char| ch == ',' || ch.is_whitespace())
            .any(|w| w == "control_d")
    }) {
        return HostKind::Dom0;
    }
    // exists() follows symlinks; a dangling /dev/xen/xenbus is no device.
    if !root.join(XENBUS_DEVICE_REL).exists() && !root.join(PROC_XEN_REL).exists() {
        return HostKind::NotXen;
    }
    HostKind::XenDomain
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn tree(files: &[(&str, &str)], dirs: &[&str]) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        for d in dirs {
            fs::create_dir_all(t.path().join(d)).unwrap();
        }
        for (f, text) in files {
            let p = t.path().join(f);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        }
        t
    }

    #[test]
    fn empty_root_is_not_xen() {
        let t = tree(&[], &["proc", "dev", "sys/hypervisor"]);
        assert_eq!(probe_host(t.path()), HostKind::NotXen);
    }

    #[test]
    fn control_d_in_capabilities_is_dom0() {
        let t = tree(&[("proc/xen/capabilities", "control_d\n")], &[]);
        assert_eq!(probe_host(t.path()), HostKind::Dom0);
        // dom0 with the xenbus device too: still dom0
        let t = tree(
            &[
                ("proc/xen/capabilities", "control_d\n"),
                ("dev/xen/xenbus", ""),
            ],
            &[],
        );
        assert_eq!(probe_host(t.path()), HostKind::Dom0);
    }

    #[test]
    fn guest_with_xenbus_device_is_a_xen_domain() {
        // a driver domain: xenfs mounted, capabilities empty
        let t = tree(
            &[("proc/xen/capabilities", ""), ("dev/xen/xenbus", "")],
            &[],
        );
        assert_eq!(probe_host(t.path()), HostKind::XenDomain);
        // xenfs not mounted: the device alone is enough
        let t = tree(&[("dev/xen/xenbus", "")], &[]);
        assert_eq!(probe_host(t.path()), HostKind::XenDomain);
        // /proc/xen without the device (xenfs mounted, device node missing)
        let t = tree(&[], &["proc/xen"]);
        assert_eq!(probe_host(t.path()), HostKind::XenDomain);
    }

    #[test]
    fn capabilities_words_are_matched_whole() {
        let t = tree(&[("proc/xen/capabilities", "not_control_d_really\n")], &[]);
        assert_eq!(probe_host(t.path()), HostKind::XenDomain);
    }
}
