//! The top-level keys `xl create` reads (xl.cfg(5) and `xl_parse.c` of
//! Xen 4.17, plus the deprecated ones it still accepts), so that a typo
//! (`memroy = 1024`) is caught: xl itself ignores unknown keys silently.
//! Also "did you mean" suggestions, for keys and for domain names.

/// Every key xl 4.17 reads at the top level of a domain configuration,
/// sorted. Sources: xl.cfg.5.pod.in (every `=item B<key=...>`) and
/// `parse_config_data` in tools/xl/xl_parse.c (deprecated spellings such
/// as `builder`, `device_model`, `pvh`, `vcpu_avail`).
pub const KNOWN_KEYS: &[&str] = &[
    "acpi",
    "acpi_firmware",
    "acpi_laptop_slate",
    "acpi_s3",
    "acpi_s4",
    "altp2m",
    "altp2mhvm",
    "apic",
    "bios",
    "bios_path_override",
    "boot",
    "bootloader",
    "bootloader_args",
    "builder",
    "cap",
    "channel",
    "cmdline",
    "cpu_weight",
    "cpuid",
    "cpus",
    "cpus_soft",
    "device_model",
    "device_model_args",
    "device_model_args_hvm",
    "device_model_args_pv",
    "device_model_override",
    "device_model_stubdomain_override",
    "device_model_stubdomain_seclabel",
    "device_model_user",
    "device_model_version",
    "device_tree",
    "disk",
    "dm_restrict",
    "driver_domain",
    "dtdev",
    "e820_host",
    "event_channels",
    "extra",
    "firmware",
    "gfx_passthru",
    "gic_version",
    "hap",
    "hdtype",
    "hpet",
    "init_seclabel",
    "iomem",
    "ioports",
    "irqs",
    "kernel",
    "keymap",
    "localtime",
    "max_event_channels",
    "max_grant_frames",
    "max_grant_version",
    "max_maptrack_frames",
    "maxmem",
    "maxvcpus",
    "mca_caps",
    "memory",
    "mmio_hole",
    "ms_vm_genid",
    "msr_relaxed",
    "name",
    "nestedhvm",
    "nographic",
    "nomigrate",
    "nr_spis",
    "on_crash",
    "on_poweroff",
    "on_reboot",
    "on_soft_reset",
    "on_watchdog",
    "oos",
    "opengl",
    "p9",
    "pae",
    "passthrough",
    "pci",
    "pci_msitranslate",
    "pci_permissive",
    "pci_power_mgmt",
    "pci_seize",
    "pool",
    "pvcalls",
    "pvh",
    "pvshim",
    "pvshim_cmdline",
    "pvshim_extra",
    "pvshim_path",
    "ramdisk",
    "rdm",
    "rdm_mem_boundary",
    "root",
    "rtc_timeoffset",
    "sdl",
    "seclabel",
    "serial",
    "shadow_memory",
    "smbios_firmware",
    "soundhw",
    "spice",
    "spice_clipboard_sharing",
    "spice_image_compression",
    "spice_streaming_video",
    "spiceagent_mouse",
    "spicedisable_ticketing",
    "spicehost",
    "spicepasswd",
    "spiceport",
    "spicetls_port",
    "spiceusbredirection",
    "spicevdagent",
    "stdvga",
    "stubdomain_kernel",
    "stubdomain_memory",
    "stubdomain_ramdisk",
    "tee",
    "timer_mode",
    "tsc_mode",
    "type",
    "usb",
    "usbctrl",
    "usbdev",
    "usbdevice",
    "usbversion",
    "uuid",
    "vcpu_avail",
    "vcpus",
    "vdispl",
    "vfb",
    "vga",
    "videoram",
    "vif",
    "viridian",
    "vkb",
    "vkb_device",
    "vmtrace_buf_kb",
    "vnc",
    "vncconsole",
    "vncdisplay",
    "vnclisten",
    "vncpasswd",
    "vncunused",
    "vnuma",
    "vpmu",
    "vpt_align",
    "vsnd",
    "vtpm",
    "vuart",
    "xen_platform_pci",
    "xend_suspend_evtchn_compat",
];

/// True if xl reads `key` at the top level.
pub fn is_known_key(key: &str) -> bool {
    KNOWN_KEYS.binary_search(&key).is_ok()
}

/// Edit distance (insertions, deletions, substitutions, and swaps of two
/// neighbours, which is the commonest typo: `memroy`).
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let (n, m) = (a.len(), b.len());
    let mut d = vec![vec![0usize; m + 1]; n + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=n {
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[n][m]
}

/// The candidate closest to `word`, if it is close enough to be a typo
/// (at most one edit per three characters, at least one).
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .filter(|c| *c != word)
        .map(|c| (distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, c)| (*d, *c))
        .map(|(_, c)| c)
}

/// The stable code of the unknown-key warning.
pub const UNKNOWN_KEY: &str = "XLCFG-UNKNOWN-KEY";

/// The message for an unknown key.
pub(crate) fn unknown_key_message(key: &str) -> String {
    let hint = did_you_mean(key, KNOWN_KEYS.iter().copied())
        .map(|k| format!("; did you mean `{k}`?"))
        .unwrap_or_default();
    format!("unknown key `{key}`: xl ignores it silently{hint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_list_is_sorted_and_unique() {
        assert!(KNOWN_KEYS.windows(2).all(|w| w[0] < w[1]));
        assert!(is_known_key("memory") && is_known_key("vif") && !is_known_key("memroy"));
    }

    #[test]
    fn typos_get_a_suggestion_and_strangers_none() {
        assert_eq!(
            did_you_mean("memroy", KNOWN_KEYS.iter().copied()),
            Some("memory")
        );
        assert_eq!(
            did_you_mean("drivr_domain", KNOWN_KEYS.iter().copied()),
            Some("driver_domain")
        );
        assert_eq!(did_you_mean("netdom", ["netdd", "web"]), Some("netdd"));
        assert_eq!(did_you_mean("zzzzzz", KNOWN_KEYS.iter().copied()), None);
        assert!(unknown_key_message("memroy").contains("did you mean `memory`?"));
    }
}
