//! Human names from the PCI ID Repository (pci.ids), through the
//! maintained `pci-ids` crate, which embeds the database at build time.

use std::io::{self, Write};

use pci_ids::FromId;

/// The vendor's name.
pub fn vendor_name(vendor: u16) -> Option<&'static str> {
    pci_ids::Vendor::from_id(vendor).map(|v| v.name())
}

/// The device's name.
pub fn device_name(vendor: u16, device: u16) -> Option<&'static str> {
    pci_ids::Device::from_vid_pid(vendor, device).map(|d| d.name())
}

/// The subsystem's name (the board the chip is on).
pub fn subsystem_name(
    vendor: u16,
    device: u16,
    sub_vendor: u16,
    sub_device: u16,
) -> Option<&'static str> {
    pci_ids::Device::from_vid_pid(vendor, device)?
        .subsystems()
        .find(|s| s.subvendor() == sub_vendor && s.subdevice() == sub_device)
        .map(|s| s.name())
}

/// The most specific class name for a 24-bit class code: the subclass name
/// (e.g. "Ethernet controller"), else the class name.
pub fn class_name(class: u32) -> Option<&'static str> {
    let [_, c, s, _] = class.to_be_bytes();
    pci_ids::Subclass::from_cid_sid(c, s)
        .map(|s| s.name())
        .or_else(|| pci_ids::Class::from_id(c).map(|c| c.name()))
}

/// Write the embedded database in pci.ids format (vendors, devices,
/// subsystems, classes), e.g. so `lspci -i FILE` uses exactly our names.
pub fn write_pci_ids(w: &mut impl Write) -> io::Result<()> {
    let mut vendors: Vec<_> = pci_ids::Vendors::iter().collect();
    vendors.sort_by_key(|v| v.id());
    for v in vendors {
        writeln!(w, "{:04x}  {}", v.id(), v.name())?;
        for d in v.devices() {
            writeln!(w, "\t{:04x}  {}", d.id(), d.name())?;
            for s in d.subsystems() {
                writeln!(
                    w,
                    "\t\t{:04x} {:04x}  {}",
                    s.subvendor(),
                    s.subdevice(),
                    s.name()
                )?;
            }
        }
    }
    let mut classes: Vec<_> = pci_ids::Classes::iter().collect();
    classes.sort_by_key(|c| c.id());
    for c in classes {
        writeln!(w, "C {:02x}  {}", c.id(), c.name())?;
        for s in c.subclasses() {
            writeln!(w, "\t{:02x}  {}", s.id(), s.name())?;
            for p in s.prog_ifs() {
                writeln!(w, "\t\t{:02x}  {}", p.id(), p.name())?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_up_well_known_ids() {
        assert_eq!(vendor_name(0x8086), Some("Intel Corporation"));
        assert_eq!(
            device_name(0x1af4, 0x1041),
            Some("Virtio 1.0 network device")
        );
        assert_eq!(class_name(0x020000), Some("Ethernet controller"));
        assert_eq!(subsystem_name(0x1af4, 0x1041, 0x1af4, 0x1100), Some("QEMU"));
        assert_eq!(device_name(0x8086, 0xfffe), None);
    }

    #[test]
    fn exports_database_in_pci_ids_format() {
        let mut out = Vec::new();
        write_pci_ids(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("\n1af4  Red Hat, Inc.\n"));
        assert!(text.contains("\n\t1041  Virtio 1.0 network device\n"));
        assert!(text.contains("\nC 02  Network controller\n\t00  Ethernet controller\n"));
    }
}
