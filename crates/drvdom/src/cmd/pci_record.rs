//! Where `drvdom pci assign` records a device's original driver, so that
//! `release` can give the device back.
//!
//! xl records it in xenstore at `/libxl/pci/<dddd-bb-dd-f>/driver_path`
//! (libxl_pci.c, `pci_assignable_driver_path_write`), as the driver's sysfs
//! directory. We write there too when a xenstore server is reachable, so that
//! `xl pci-assignable-remove` and drvdom agree, and always keep the local
//! state file as well: it survives a xenstored restart and works on a host
//! where xenstore is not running (yet).

use pci::{Bdf, DriverRecord, StateFile};
use xenstore::Client;

/// xenstore (when reachable) plus the local state file.
#[derive(Debug)]
pub struct DriverStore {
    xs: Option<Client>,
    file: StateFile,
}

impl DriverStore {
    /// Connect to xenstore if a server is reachable (`XENSTORED_PATH`,
    /// `/run/xenstored/socket`, `/dev/xen/xenbus`); the state file in
    /// `state_dir` is always used.
    pub fn open(state_dir: &std::path::Path) -> DriverStore {
        let xs = match Client::connect_default() {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::debug!(error = %e, "xenstore not reachable; recording drivers in the state file only");
                None
            }
        };
        DriverStore {
            xs,
            file: StateFile::in_dir(state_dir),
        }
    }

    fn xs_err(bdf: Bdf, e: &xenstore::Error) -> pci::Error {
        pci::Error::Record {
            store: format!("xenstore {}", pci::xenstore_driver_path_key(bdf)),
            what: e.to_string(),
        }
    }
}

impl DriverRecord for DriverStore {
    fn get(&self, bdf: Bdf) -> pci::Result<Option<String>> {
        if let Some(xs) = &self.xs {
            match xs.read_opt(&pci::xenstore_driver_path_key(bdf)) {
                Ok(Some(v)) => {
                    if let Some(d) = pci::driver_from_path_value(&String::from_utf8_lossy(&v)) {
                        return Ok(Some(d));
                    }
                }
                Ok(None) => {}
                Err(e) => return Err(Self::xs_err(bdf, &e)),
            }
        }
        self.file.get(bdf)
    }

    fn set(&self, bdf: Bdf, driver: &str) -> pci::Result<()> {
        if let Some(xs) = &self.xs {
            xs.write(
                &pci::xenstore_driver_path_key(bdf),
                pci::driver_path_value(driver),
            )
            .map_err(|e| Self::xs_err(bdf, &e))?;
        }
        self.file.set(bdf, driver)
    }

    fn remove(&self, bdf: Bdf) -> pci::Result<()> {
        if let Some(xs) = &self.xs {
            // libxl removes the whole /libxl/pci/<bdf> directory.
            let dir = pci::xenstore_driver_path_key(bdf);
            let dir = dir.trim_end_matches("/driver_path");
            match xs.rm(dir) {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(Self::xs_err(bdf, &e)),
            }
        }
        self.file.remove(bdf)
    }

    fn describe(&self) -> String {
        match &self.xs {
            Some(_) => format!("xenstore /libxl/pci and {}", self.file.describe()),
            None => self.file.describe(),
        }
    }
}
