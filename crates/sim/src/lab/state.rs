//! The lab's record on disk: `/run/drvdom/lab/<name>/state.json`.
//!
//! Written as soon as each piece exists, so that `lab down` finds what a
//! crashed `lab up` left behind.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Default root of lab directories.
pub const RUN_ROOT: &str = "/run/drvdom/lab";

/// What a domain is in the lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The control domain (toolstack, xenstored).
    Dom0,
    /// The network driver domain (NIC, netback, agent, bridge).
    Driver,
    /// A guest with a vif.
    Guest,
}

/// One simulated domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainRec {
    /// Its domid.
    pub domid: u16,
    /// Its name (`/local/domain/<id>/name`).
    pub name: String,
    /// What it is.
    pub role: Role,
    /// Its network namespace.
    pub netns: String,
    /// Its address on the lab network (guests only), e.g. `198.51.100.11/24`.
    pub addr: Option<String>,
}

/// One process the lab started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcRec {
    /// What it is: `xenstored`, `agent`, `netback`, `netfront-<domid>`.
    pub role: String,
    /// Its pid.
    pub pid: i32,
    /// Its log file.
    pub log: PathBuf,
    /// The namespace it runs in.
    #[serde(default)]
    pub netns: String,
    /// The program.
    #[serde(default)]
    pub program: PathBuf,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Extra environment it was started with.
    #[serde(default)]
    pub env: Vec<(String, String)>,
}

/// The whole record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabState {
    /// The lab's name.
    pub name: String,
    /// Its directory.
    pub dir: PathBuf,
    /// dom0's xenstored socket.
    pub xenstored_socket: PathBuf,
    /// Where `<domid>.sock` appear for introduced domains.
    pub domain_socket_dir: PathBuf,
    /// The "outside world" namespace holding the far end of the NIC.
    pub outside_ns: String,
    /// Name of the NIC (a veth standing for the physical port).
    pub nic: String,
    /// The NIC's made-up PCI address.
    pub nic_bdf: String,
    /// Address of the outside end, e.g. `198.51.100.1/24`.
    pub outside_addr: String,
    /// The bridge the agent builds in the driver domain.
    pub bridge: String,
    /// Domains.
    pub domains: Vec<DomainRec>,
    /// Processes.
    pub procs: Vec<ProcRec>,
}

impl LabState {
    /// The state file of lab directory `dir`.
    pub fn file(dir: &Path) -> PathBuf {
        dir.join("state.json")
    }

    /// Write it (atomically: temp file then rename).
    pub fn save(&self) -> Result<()> {
        let path = Self::file(&self.dir);
        let tmp = self.dir.join("state.json.tmp");
        let text = serde_json::to_vec_pretty(self).map_err(|source| Error::State {
            path: path.clone(),
            source,
        })?;
        std::fs::write(&tmp, text).map_err(|source| Error::File {
            what: "write",
            path: tmp.clone(),
            source,
        })?;
        std::fs::rename(&tmp, &path).map_err(|source| Error::File {
            what: "rename to",
            path,
            source,
        })
    }

    /// Read the state of lab directory `dir`; `None` if there is none.
    pub fn load(dir: &Path) -> Result<Option<LabState>> {
        let path = Self::file(dir);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(Error::File {
                    what: "read",
                    path,
                    source,
                });
            }
        };
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|source| Error::State { path, source })
    }

    /// The domain called `name`.
    pub fn domain(&self, name: &str) -> Option<&DomainRec> {
        self.domains.iter().find(|d| d.name == name)
    }

    /// The domain with id `domid`.
    pub fn domain_by_id(&self, domid: u16) -> Option<&DomainRec> {
        self.domains.iter().find(|d| d.domid == domid)
    }

    /// The driver domain.
    pub fn driver(&self) -> Option<&DomainRec> {
        self.domains.iter().find(|d| d.role == Role::Driver)
    }

    /// The socket through which domain `domid` talks to xenstored.
    pub fn socket_of(&self, domid: u16) -> PathBuf {
        if domid == 0 {
            self.xenstored_socket.clone()
        } else {
            self.domain_socket_dir.join(format!("{domid}.sock"))
        }
    }
}

/// Directory of lab `name` under `root`.
pub fn lab_dir(root: &Path, name: &str) -> PathBuf {
    root.join(name)
}

/// Lab names are short (they end up in namespace names and must not
/// contain the `-` separator): 1 to 12 of `[a-z0-9]`.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 12
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "invalid lab name {name:?}: use 1 to 12 lowercase letters or digits"
        )))
    }
}

/// Domain names: 1 to 32 of `[a-z0-9]`, so they fit namespace names.
pub fn check_domain_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "invalid domain name {name:?}: use 1 to 32 lowercase letters or digits"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_names_are_checked() {
        assert!(check_name("demo1").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a-b").is_err());
        assert!(check_name("Upper").is_err());
        assert!(check_name("waytoolongname").is_err());
    }

    #[test]
    fn state_round_trips_through_json() {
        let dir = std::env::temp_dir().join(format!("simstate{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let st = LabState {
            name: "t".into(),
            dir: dir.clone(),
            xenstored_socket: dir.join("xs.sock"),
            domain_socket_dir: dir.join("sockets"),
            outside_ns: "drvdom-t-outside".into(),
            nic: "nic0".into(),
            nic_bdf: "0000:03:00.0".into(),
            outside_addr: "198.51.100.1/24".into(),
            bridge: "xenbr0".into(),
            domains: vec![DomainRec {
                domid: 2,
                name: "guest1".into(),
                role: Role::Guest,
                netns: "drvdom-t-guest1".into(),
                addr: Some("198.51.100.11/24".into()),
            }],
            procs: vec![],
        };
        st.save().unwrap();
        let back = LabState::load(&dir).unwrap().unwrap();
        assert_eq!(back, st);
        assert_eq!(back.socket_of(2), dir.join("sockets/2.sock"));
        assert_eq!(back.socket_of(0), dir.join("xs.sock"));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(LabState::load(&dir).unwrap().is_none());
    }
}
