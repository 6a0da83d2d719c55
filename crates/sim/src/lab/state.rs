//! The simulated host's record on disk: `<run root>/<name>/state.json`.
//!
//! Written as soon as each piece exists (a namespace, a process, a NIC),
//! so that `lab down` finds what a crashed command left behind, and so
//! that any later command (`drvdom apply --lab NAME`, `lab restart`) can
//! open the host and go on.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use xentypes::Bdf;

use crate::error::{Error, Result};

/// The processes' logs, under a lab's directory (kept by `lab down`).
pub const LOG_DIR: &str = "logs";

/// Default root of lab directories.
pub const RUN_ROOT: &str = "/run/drvdom/lab";

/// What a domain is on the simulated host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The control domain (toolstack, xenstored).
    Dom0,
    /// A driver domain (NICs, netback, agent, bridges).
    Driver,
    /// A guest (netfront).
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
}

/// Where a simulated NIC is, i.e. which kernel owns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "at", content = "domain")]
pub enum NicPlace {
    /// In dom0, bound to its own driver.
    Dom0,
    /// Bound to pciback: hidden from dom0, in no domain yet.
    Pciback,
    /// Passed through to this domain (by name).
    Domain(String),
}

/// One simulated PCI NIC: a veth whose far end is cabled to the outside
/// network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NicRec {
    /// Its (made-up) PCI address.
    pub bdf: Bdf,
    /// Its interface name in whichever kernel has it (`nic0`, `nic1`...).
    pub ifname: String,
    /// The far end's name in the outside namespace (`ext0`...).
    pub ext: String,
    /// Where it is.
    pub place: NicPlace,
}

/// Name of the simulated NICs' own driver (what dom0 had bound before
/// pciback, and gets back on release).
pub const NIC_DRIVER: &str = "sim-nic";
/// Name pciback reports as the bound driver.
pub const PCIBACK: &str = "pciback";

impl NicRec {
    /// The driver it is bound to, as sysfs would name it.
    pub fn driver(&self) -> &'static str {
        match self.place {
            NicPlace::Dom0 => NIC_DRIVER,
            NicPlace::Pciback | NicPlace::Domain(_) => PCIBACK,
        }
    }
}

/// One process the host started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcRec {
    /// What it is: `xenstored`, `netback-<dd>`, `agent-<dd>`,
    /// `netfront-<guest>`.
    pub role: String,
    /// The domain it belongs to (`Domain-0` for xenstored).
    #[serde(default)]
    pub domain: String,
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

/// The programs a simulated host runs (recorded so that later commands
/// use the same ones).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bins {
    /// `drvdom-xenstored`.
    pub xenstored: PathBuf,
    /// `drvdom-agent`.
    pub agent: PathBuf,
    /// `drvdom-simkernel` (netback, netfront, `exec` in a namespace).
    pub simkernel: PathBuf,
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
    /// The "outside world" namespace holding the far ends of the NICs.
    pub outside_ns: String,
    /// The namespace standing for pciback: NICs hidden from dom0 and not
    /// yet passed through wait there.
    pub pciback_ns: String,
    /// The outside network's bridge (the far ends of the NICs are its
    /// ports) and its address, e.g. `198.51.100.1/24`.
    pub outside_bridge: String,
    /// Address of the outside network.
    pub outside_addr: String,
    /// The programs.
    pub bins: Bins,
    /// Extra arguments every agent gets (e.g. `--legacy-scripts always`).
    #[serde(default)]
    pub agent_args: Vec<String>,
    /// The domid the next created domain gets (Xen allocates upwards).
    pub next_domid: u16,
    /// Domains, dom0 first.
    pub domains: Vec<DomainRec>,
    /// NICs that exist (created when first named).
    #[serde(default)]
    pub nics: Vec<NicRec>,
    /// Processes.
    pub procs: Vec<ProcRec>,
}

impl LabState {
    /// The state file of lab directory `dir`.
    pub fn file(dir: &Path) -> PathBuf {
        dir.join("state.json")
    }

    /// Directory of the domid → namespace map the netbacks read.
    pub fn netns_map(&self) -> PathBuf {
        self.dir.join("netns")
    }

    /// Directory of the processes' logs.
    pub fn log_dir(&self) -> PathBuf {
        self.dir.join(LOG_DIR)
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

    /// The NIC with address `bdf`.
    pub fn nic(&self, bdf: Bdf) -> Option<&NicRec> {
        self.nics.iter().find(|n| n.bdf == bdf)
    }

    /// The socket through which domain `domid` talks to xenstored.
    pub fn socket_of(&self, domid: u16) -> PathBuf {
        if domid == 0 {
            self.xenstored_socket.clone()
        } else {
            self.domain_socket_dir.join(format!("{domid}.sock"))
        }
    }

    /// The process with role `role`; a bare `agent`, `netback` or
    /// `netfront` names the only one of its kind.
    pub fn proc(&self, role: &str) -> Result<&ProcRec> {
        if let Some(p) = self.procs.iter().find(|p| p.role == role) {
            return Ok(p);
        }
        let prefix = format!("{role}-");
        let matches: Vec<&ProcRec> = self
            .procs
            .iter()
            .filter(|p| p.role.starts_with(&prefix))
            .collect();
        match matches.as_slice() {
            [one] => Ok(one),
            _ => {
                let roles: Vec<&str> = self.procs.iter().map(|p| p.role.as_str()).collect();
                let why = if matches.is_empty() {
                    "no such process"
                } else {
                    "ambiguous"
                };
                Err(Error::Invalid(format!(
                    "{why}: {role:?} in lab {} (processes: {})",
                    self.name,
                    roles.join(", ")
                )))
            }
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

/// Domain names on the simulated host: xl's rules (no `/`, not all
/// digits, printable) narrowed to what fits a namespace name: 1 to 64 of
/// `[A-Za-z0-9_.-]`, not starting with `-` or `.`.
pub fn check_domain_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(['-', '.'])
        && !name.bytes().all(|b| b.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok && name != "outside" && name != "pciback" && name != "dom0" {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "invalid domain name {name:?} for the simulated host: use 1 to 64 letters, digits, \
             '-', '_' or '.' (not all digits; \"dom0\", \"outside\" and \"pciback\" are taken)"
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
    fn domain_names_are_checked() {
        for ok in ["netdd", "web-1", "db_2.prod", "Guest1"] {
            assert!(check_domain_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a/b", "123", "-x", ".x", "outside", "a b"] {
            assert!(check_domain_name(bad).is_err(), "{bad}");
        }
    }

    fn sample(dir: &Path) -> LabState {
        LabState {
            name: "t".into(),
            dir: dir.to_path_buf(),
            xenstored_socket: dir.join("xs.sock"),
            domain_socket_dir: dir.join("sockets"),
            outside_ns: "drvdom-t-outside".into(),
            pciback_ns: "drvdom-t-pciback".into(),
            outside_bridge: "outbr".into(),
            outside_addr: "198.51.100.1/24".into(),
            bins: Bins {
                xenstored: "/x".into(),
                agent: "/a".into(),
                simkernel: "/s".into(),
            },
            agent_args: vec![],
            next_domid: 3,
            domains: vec![DomainRec {
                domid: 2,
                name: "guest1".into(),
                role: Role::Guest,
                netns: "drvdom-t-guest1".into(),
            }],
            nics: vec![NicRec {
                bdf: "0000:03:00.0".parse().unwrap(),
                ifname: "nic0".into(),
                ext: "ext0".into(),
                place: NicPlace::Domain("netdd".into()),
            }],
            procs: vec![
                ProcRec {
                    role: "agent-netdd".into(),
                    domain: "netdd".into(),
                    pid: 5,
                    log: dir.join("a.log"),
                    netns: String::new(),
                    program: "/a".into(),
                    args: vec![],
                    env: vec![],
                },
                ProcRec {
                    role: "netfront-guest1".into(),
                    domain: "guest1".into(),
                    pid: 6,
                    log: dir.join("n.log"),
                    netns: String::new(),
                    program: "/s".into(),
                    args: vec![],
                    env: vec![],
                },
            ],
        }
    }

    #[test]
    fn state_round_trips_through_json() {
        let dir = tempfile::tempdir().unwrap();
        let st = sample(dir.path());
        st.save().unwrap();
        let back = LabState::load(dir.path()).unwrap().unwrap();
        assert_eq!(back, st);
        assert_eq!(back.socket_of(2), dir.path().join("sockets/2.sock"));
        assert_eq!(back.socket_of(0), dir.path().join("xs.sock"));
        assert_eq!(back.nics[0].driver(), PCIBACK);
        std::fs::remove_file(LabState::file(dir.path())).unwrap();
        assert!(LabState::load(dir.path()).unwrap().is_none());
    }

    #[test]
    fn bare_roles_name_the_only_process_of_their_kind() {
        let dir = tempfile::tempdir().unwrap();
        let st = sample(dir.path());
        assert_eq!(st.proc("agent").unwrap().pid, 5);
        assert_eq!(st.proc("netfront-guest1").unwrap().pid, 6);
        let e = st.proc("netback").unwrap_err().to_string();
        assert!(e.contains("agent-netdd"), "{e}");
    }
}
