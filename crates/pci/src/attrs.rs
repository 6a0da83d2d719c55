//! Pure parsers for the kernel files this crate reads: sysfs attributes,
//! PCI config space, `modules.builtin`, `modules.alias`, `/proc/net/*route`
//! and `xl info`. No I/O here, so they can be fuzzed (`pci_sysfs_attrs`).

use std::collections::BTreeSet;

use crate::Bdf;

/// Parse a hex id attribute such as `vendor` (`0x8086\n`).
pub fn parse_hex_u16(text: &str) -> Option<u16> {
    let t = text.trim();
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    if t.is_empty() || t.len() > 4 || !t.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u16::from_str_radix(t, 16).ok()
}

/// Parse the `revision` attribute (`0x01\n`).
pub fn parse_hex_u8(text: &str) -> Option<u8> {
    parse_hex_u16(text).and_then(|v| u8::try_from(v).ok())
}

/// Parse the `class` attribute (`0x020000\n`: class, subclass, prog-if).
pub fn parse_class(text: &str) -> Option<u32> {
    let t = text.trim();
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    if t.is_empty() || t.len() > 6 || !t.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(t, 16).ok()
}

/// Parse a decimal count attribute such as `sriov_totalvfs`.
pub fn parse_u32(text: &str) -> Option<u32> {
    text.trim().parse().ok()
}

/// Parse `reset_method` (`flr bus\n`, space-separated, in the order the
/// kernel tries them; drivers/pci/pci.c `reset_method_show`).
pub fn parse_reset_methods(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}

/// Parse a list of BDFs, one per line, as pciback's `slots` and
/// `permissive` files print them; lines that are not a BDF are skipped.
pub fn parse_bdf_list(text: &str) -> Vec<Bdf> {
    text.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// PCI capability ids (PCI Local Bus spec 3.0, appendix H).
const CAP_ID_EXP: u8 = 0x10;
const CAP_ID_AF: u8 = 0x13;
/// Status register bit "capabilities list" and the capability pointer.
const PCI_STATUS: usize = 0x06;
const PCI_STATUS_CAP_LIST: u8 = 0x10;
const PCI_CAPABILITY_LIST: usize = 0x34;
/// PCIe Device Capabilities register: offset 4 in the PCIe capability, bit 28
/// "Function Level Reset Capability" (linux/pci_regs.h `PCI_EXP_DEVCAP_FLR`).
const PCI_EXP_DEVCAP: usize = 4;
const PCI_EXP_DEVCAP_FLR: u32 = 1 << 28;
/// Advanced Features capability: byte 3, bits TP (0) and FLR (1)
/// (linux/pci_regs.h `PCI_AF_CAP_TP`, `PCI_AF_CAP_FLR`).
const PCI_AF_CAP: usize = 3;
const PCI_AF_CAP_FLR_TP: u8 = 0x03;

/// Whether config space (the `config` attribute) advertises Function Level
/// Reset, through the PCIe capability or the Advanced Features capability.
/// `None` when the capability list cannot be read (short or unprivileged
/// read: non-root sees only the first 64 bytes).
pub fn config_has_flr(config: &[u8]) -> Option<bool> {
    let status = *config.get(PCI_STATUS)?;
    if status & PCI_STATUS_CAP_LIST == 0 {
        return Some(false);
    }
    let mut ptr = usize::from(*config.get(PCI_CAPABILITY_LIST)? & !3);
    // At most 48 capabilities fit in 256 bytes; guards against loops.
    for _ in 0..48 {
        if ptr < 0x40 {
            return Some(false);
        }
        let id = *config.get(ptr)?;
        let next = usize::from(*config.get(ptr + 1)? & !3);
        match id {
            CAP_ID_EXP => {
                let b = config.get(ptr + PCI_EXP_DEVCAP..ptr + PCI_EXP_DEVCAP + 4)?;
                let devcap = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                if devcap & PCI_EXP_DEVCAP_FLR != 0 {
                    return Some(true);
                }
            }
            CAP_ID_AF
                if *config.get(ptr + PCI_AF_CAP)? & PCI_AF_CAP_FLR_TP == PCI_AF_CAP_FLR_TP =>
            {
                return Some(true);
            }
            _ => {}
        }
        ptr = next;
    }
    Some(false)
}

/// Normalise a module name: the kernel treats `-` and `_` alike.
pub fn module_name(name: &str) -> String {
    name.replace('-', "_")
}

/// Module names listed in `modules.builtin`
/// (`kernel/drivers/xen/xen-pciback/xen-pciback.ko` → `xen_pciback`).
pub fn parse_modules_builtin(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| {
            let file = l.trim().rsplit('/').next()?;
            let name = file.split(".ko").next()?;
            (!name.is_empty()).then(|| module_name(name))
        })
        .collect()
}

/// One `alias PATTERN MODULE` line of `modules.alias` for PCI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModAlias {
    /// The glob pattern, e.g. `pci:v00008086d000010D3sv*sd*bc*sc*i*`.
    pub pattern: String,
    /// The module.
    pub module: String,
}

/// The `pci:` aliases of `modules.alias`.
pub fn parse_modules_alias(text: &str) -> Vec<ModAlias> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            if it.next()? != "alias" {
                return None;
            }
            let pattern = it.next()?;
            let module = it.next()?;
            pattern.starts_with("pci:").then(|| ModAlias {
                pattern: pattern.to_string(),
                module: module.to_string(),
            })
        })
        .collect()
}

/// fnmatch-style match with `*` and `?` as modprobe uses for aliases.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi.min(p.len())..].iter().all(|&c| c == b'*')
}

/// Modules whose alias matches a device's `modalias` (what `lspci -k`
/// prints as "Kernel modules"), sorted and deduplicated.
pub fn modules_for(modalias: &str, aliases: &[ModAlias]) -> Vec<String> {
    let m = modalias.trim();
    let set: BTreeSet<String> = aliases
        .iter()
        .filter(|a| glob_match(&a.pattern, m))
        .map(|a| a.module.clone())
        .collect();
    set.into_iter().collect()
}

/// Route flags (linux/route.h): `RTF_UP`, `RTF_REJECT`.
const RTF_UP: u32 = 0x0001;
const RTF_REJECT: u32 = 0x0200;

/// Interfaces carrying an IPv4 default route, from `/proc/net/route`
/// (columns: Iface Destination Gateway Flags ... Mask ..., hex).
pub fn parse_proc_net_route(text: &str) -> BTreeSet<String> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            let (iface, dest, flags, mask) = (c.first()?, c.get(1)?, c.get(3)?, c.get(7)?);
            let flags = u32::from_str_radix(flags, 16).ok()?;
            (*dest == "00000000"
                && *mask == "00000000"
                && flags & RTF_UP != 0
                && flags & RTF_REJECT == 0)
                .then(|| iface.to_string())
        })
        .collect()
}

/// Interfaces carrying an IPv6 default route, from `/proc/net/ipv6_route`
/// (dest, dest_len, src, src_len, next hop, metric, refcnt, use, flags, iface).
pub fn parse_proc_net_ipv6_route(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            let (dest, len, flags, iface) = (c.first()?, c.get(1)?, c.get(8)?, c.get(9)?);
            let flags = u32::from_str_radix(flags, 16).ok()?;
            (dest.len() == 32
                && dest.bytes().all(|b| b == b'0')
                && *len == "00"
                && flags & RTF_UP != 0
                && flags & RTF_REJECT == 0
                && *iface != "lo")
                .then(|| iface.to_string())
        })
        .collect()
}

/// Whether `xl info` says the hypervisor can pass devices through
/// (`virt_caps` lists `hvm_directio` or `pv_directio`, which Xen sets only
/// with an enabled IOMMU; tools/xl/xl_info.c). `None` if there is no
/// `virt_caps` line.
pub fn xl_info_directio(text: &str) -> Option<bool> {
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("virt_caps"))?;
    let caps = line.split_once(':')?.1;
    Some(
        caps.split_whitespace()
            .any(|c| c == "hvm_directio" || c == "pv_directio"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_id_attributes() {
        assert_eq!(parse_hex_u16("0x8086\n"), Some(0x8086));
        assert_eq!(parse_hex_u16("0x10000"), None);
        assert_eq!(parse_hex_u16("zz"), None);
        assert_eq!(parse_hex_u8("0x01\n"), Some(1));
        assert_eq!(parse_class("0x020000\n"), Some(0x020000));
        assert_eq!(parse_class("0x1020000"), None);
        assert_eq!(parse_u32("8\n"), Some(8));
    }

    #[test]
    fn parses_reset_methods_and_lists() {
        assert_eq!(parse_reset_methods("flr bus\n"), ["flr", "bus"]);
        let l = parse_bdf_list("0000:03:00.0\n0000:03:00.1\nrubbish\n");
        assert_eq!(l.len(), 2);
    }

    fn config_with_cap(id: u8, at: usize, bytes: &[u8]) -> Vec<u8> {
        let mut c = vec![0u8; 256];
        c[PCI_STATUS] = PCI_STATUS_CAP_LIST;
        c[PCI_CAPABILITY_LIST] = 0x40;
        // a power-management capability first, then ours
        c[0x40] = 0x01;
        c[0x41] = u8::try_from(at).unwrap();
        c[at] = id;
        c[at + 1] = 0;
        c[at + 2..at + 2 + bytes.len()].copy_from_slice(bytes);
        c
    }

    #[test]
    fn finds_flr_in_pcie_capability() {
        let flr = config_with_cap(CAP_ID_EXP, 0x70, &[0, 0, 0, 0, 0, 0x10]);
        assert_eq!(config_has_flr(&flr), Some(true));
        let no = config_with_cap(CAP_ID_EXP, 0x70, &[0, 0, 0, 0, 0, 0]);
        assert_eq!(config_has_flr(&no), Some(false));
        let af = config_with_cap(CAP_ID_AF, 0x80, &[0, 3]);
        assert_eq!(config_has_flr(&af), Some(true));
        assert_eq!(config_has_flr(&[0u8; 4]), None);
        assert_eq!(config_has_flr(&flr[..0x48]), None);
    }

    #[test]
    fn capability_loop_terminates() {
        let mut c = vec![0u8; 256];
        c[PCI_STATUS] = PCI_STATUS_CAP_LIST;
        c[PCI_CAPABILITY_LIST] = 0x40;
        c[0x40] = 0x05;
        c[0x41] = 0x40;
        assert_eq!(config_has_flr(&c), Some(false));
    }

    #[test]
    fn parses_modules_builtin_and_alias() {
        let b = parse_modules_builtin(
            "kernel/drivers/xen/xen-pciback/xen-pciback.ko\nkernel/net/ipv4/tcp.ko\n",
        );
        assert!(b.contains("xen_pciback"));
        let a = parse_modules_alias(
            "alias pci:v00008086d000010D3sv*sd*bc*sc*i* e1000e\nalias usb:v* foo\nalias pci:v00001AF4d00001041sv*sd*bc*sc*i* virtio_net\n",
        );
        assert_eq!(a.len(), 2);
        let m = modules_for(
            "pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00\n",
            &a,
        );
        assert_eq!(m, ["e1000e"]);
    }

    #[test]
    fn glob_matches_like_fnmatch() {
        assert!(glob_match("a*c", "abbbc"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "abbc"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("a", ""));
        assert!(glob_match("*b*", "abc"));
    }

    #[test]
    fn finds_default_routes() {
        let v4 = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                  eth0\t00000000\t0102A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
                  eth1\t0002A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n";
        assert_eq!(
            parse_proc_net_route(v4).into_iter().collect::<Vec<_>>(),
            ["eth0"]
        );
        let v6 = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003 eth2\n\
                  00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200 lo\n";
        assert_eq!(
            parse_proc_net_ipv6_route(v6)
                .into_iter()
                .collect::<Vec<_>>(),
            ["eth2"]
        );
    }

    #[test]
    fn reads_xl_info_virt_caps() {
        assert_eq!(
            xl_info_directio(
                "host : x\nvirt_caps              : pv hvm hvm_directio pv_directio hap\n"
            ),
            Some(true)
        );
        assert_eq!(xl_info_directio("virt_caps : pv hvm hap\n"), Some(false));
        assert_eq!(xl_info_directio("host : x\n"), None);
    }
}
