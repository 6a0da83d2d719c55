//! Where the original driver of an assigned device is remembered, so
//! `release` can give the device back.
//!
//! xl records it in xenstore at `/libxl/pci/<dddd-bb-dd-f>/driver_path`
//! (libxl_pci.c, `pci_info_xs_path`; before Xen 4.15 `/libxl/pciback/...`,
//! `pci_assignable_driver_path_write`), as the driver's sysfs
//! directory. [`DriverRecord`] abstracts over that store; [`StateFile`] is
//! the local one used when xenstore is not reachable.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Bdf;
use crate::error::{Error, Result};

/// Default directory of the local state file.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/drvdom";
/// File name of the local state file inside the state directory.
pub const STATE_FILE_NAME: &str = "pci-drivers.json";

/// A store for "which driver had this device before pciback".
pub trait DriverRecord: std::fmt::Debug {
    /// The recorded driver name, if any.
    fn get(&self, bdf: Bdf) -> Result<Option<String>>;
    /// Record the driver name (overwrites).
    fn set(&self, bdf: Bdf, driver: &str) -> Result<()>;
    /// Forget the device (no error if absent).
    fn remove(&self, bdf: Bdf) -> Result<()>;
    /// Where records go, for messages ("state file /var/lib/...", "xenstore").
    fn describe(&self) -> String;
}

/// The xenstore path libxl uses for a device's original driver.
pub fn xenstore_driver_path_key(bdf: Bdf) -> String {
    format!("/libxl/pci/{}/driver_path", bdf.xenstore_key())
}

/// The value libxl stores: the driver's sysfs directory.
pub fn driver_path_value(driver: &str) -> String {
    format!("/sys/bus/pci/drivers/{driver}")
}

/// The driver name from a libxl `driver_path` value.
pub fn driver_from_path_value(value: &str) -> Option<String> {
    let name = value.trim().trim_end_matches('/').rsplit('/').next()?;
    (!name.is_empty()).then(|| name.to_string())
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Entry {
    driver: String,
    /// Same value libxl would write, for humans and for migration.
    driver_path: String,
}

/// A JSON file mapping BDF → original driver, written atomically
/// (temporary file, fsync, rename), so a crash leaves the old or the new
/// content, never a torn one.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    /// The state file inside `dir` (created on first write).
    pub fn in_dir(dir: &Path) -> Self {
        StateFile {
            path: dir.join(STATE_FILE_NAME),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, what: impl Into<String>, source: Option<std::io::Error>) -> Error {
        Error::StateFile {
            path: self.path.clone(),
            what: what.into(),
            source,
        }
    }

    fn load(&self) -> Result<BTreeMap<Bdf, Entry>> {
        match std::fs::read_to_string(&self.path) {
            Ok(t) if t.trim().is_empty() => Ok(BTreeMap::new()),
            Ok(t) => {
                serde_json::from_str(&t).map_err(|e| self.err(format!("not valid JSON: {e}"), None))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(self.err("cannot read", Some(e))),
        }
    }

    fn store(&self, map: &BTreeMap<Bdf, Entry>) -> Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)
            .map_err(|e| self.err("cannot create its directory", Some(e)))?;
        let text = serde_json::to_string_pretty(map)
            .map_err(|e| self.err(format!("cannot encode: {e}"), None))?;
        let tmp = self.path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp)
            .map_err(|e| self.err("cannot create temporary file", Some(e)))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| self.err("cannot write temporary file", Some(e)))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| self.err("cannot replace", Some(e)))?;
        if let Ok(d) = std::fs::File::open(dir) {
            // Persist the rename; failure here only weakens durability.
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Hold an exclusive lock (`flock` on `<file>.lock`) so concurrent
    /// drvdom runs do not lose each other's updates.
    fn lock(&self) -> Result<nix::fcntl::Flock<std::fs::File>> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)
            .map_err(|e| self.err("cannot create its directory", Some(e)))?;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.path.with_extension("json.lock"))
            .map_err(|e| self.err("cannot open lock file", Some(e)))?;
        nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| self.err("cannot lock", Some(std::io::Error::from(e))))
    }

    /// All records, sorted by BDF.
    pub fn entries(&self) -> Result<Vec<(Bdf, String)>> {
        Ok(self
            .load()?
            .into_iter()
            .map(|(b, e)| (b, e.driver))
            .collect())
    }
}

impl DriverRecord for StateFile {
    fn get(&self, bdf: Bdf) -> Result<Option<String>> {
        Ok(self.load()?.remove(&bdf).map(|e| e.driver))
    }

    fn set(&self, bdf: Bdf, driver: &str) -> Result<()> {
        let _lock = self.lock()?;
        let mut map = self.load()?;
        map.insert(
            bdf,
            Entry {
                driver: driver.to_string(),
                driver_path: driver_path_value(driver),
            },
        );
        self.store(&map)
    }

    fn remove(&self, bdf: Bdf) -> Result<()> {
        let _lock = self.lock()?;
        let mut map = self.load()?;
        if map.remove(&bdf).is_some() {
            self.store(&map)?;
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!("state file {}", self.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_file_round_trips_and_forgets() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateFile::in_dir(&dir.path().join("sub"));
        let b: Bdf = "03:00.0".parse().unwrap();
        assert_eq!(s.get(b).unwrap(), None);
        s.set(b, "igb").unwrap();
        assert_eq!(s.get(b).unwrap().as_deref(), Some("igb"));
        let text = std::fs::read_to_string(s.path()).unwrap();
        assert!(text.contains("\"/sys/bus/pci/drivers/igb\""), "{text}");
        s.remove(b).unwrap();
        s.remove(b).unwrap();
        assert_eq!(s.get(b).unwrap(), None);
    }

    #[test]
    fn concurrent_writers_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateFile::in_dir(dir.path());
        std::thread::scope(|scope| {
            for f in 0..8u8 {
                let s = s.clone();
                scope.spawn(move || {
                    s.set(Bdf::new(0, 3, 0, f % 8).unwrap(), &format!("drv{f}"))
                        .unwrap()
                });
            }
        });
        assert_eq!(s.entries().unwrap().len(), 8);
    }

    #[test]
    fn corrupt_state_file_is_reported_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateFile::in_dir(dir.path());
        std::fs::write(s.path(), "{not json").unwrap();
        let e = s.get("03:00.0".parse().unwrap()).unwrap_err().to_string();
        assert!(
            e.contains(STATE_FILE_NAME) && e.contains("not valid JSON"),
            "{e}"
        );
    }

    #[test]
    fn libxl_paths() {
        let b: Bdf = "0000:03:00.0".parse().unwrap();
        assert_eq!(
            xenstore_driver_path_key(b),
            "/libxl/pci/0000-03-00-0/driver_path"
        );
        assert_eq!(
            driver_from_path_value("/sys/bus/pci/drivers/igb\n").as_deref(),
            Some("igb")
        );
        assert_eq!(driver_from_path_value(""), None);
    }
}
