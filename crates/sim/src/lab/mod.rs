//! The simulated Xen host ("lab"): [`SimHost`], crate `topology`'s
//! [`Host`](topology::Host) on network namespaces.
//!
//! [`SimHost::start`] brings up what a Xen host has before any domain:
//! `drvdom-xenstored`, dom0, the outside network and pciback.
//! [`SimHost::open`] reattaches to a running one from any later command.
//! Domains, NICs and probes are the [`Host`](topology::Host) methods;
//! everything else (vifs, bridge settings, permissions) the toolstack does
//! through xenstore, as on real Xen. [`down`] removes everything a lab
//! made (idempotent, and working from the namespaces alone after a crash),
//! [`status`] reads it back.
//!
//! Layout of lab `L`:
//!
//! | what | namespace | talks to xenstore through |
//! |---|---|---|
//! | dom0 (xenstored; NICs not yet hidden) | `drvdom-L-dom0` | the xenstored socket |
//! | pciback (NICs hidden from dom0, not passed through) | `drvdom-L-pciback` | - |
//! | a domain `D` with domid N | `drvdom-L-D` | `sockets/N.sock` |
//! | the outside network: bridge `outbr`, 198.51.100.1/24, the NICs' far ends | `drvdom-L-outside` | - |
//!
//! A simulated NIC (a PCI address in a host file) is a veth `nicK` whose
//! far end `extK` is a port of the outside bridge; it is created in dom0
//! when first named, moved to pciback by `assign_nic`, into its driver
//! domain when that domain is created (as `xl create` with `pci = [...]`),
//! back to pciback when the domain is destroyed and back to dom0 by
//! `release_nic`.

mod domain;
mod host;
mod inspect;
mod nic;
mod procs;
pub mod state;
mod wait;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use domain::Restarted;
pub use host::{Exited, SimHost, StartConfig};
pub use inspect::{
    DomainStatus, DownReport, LabSummary, ProcStatus, Status, VifStatus, down, list, purge, status,
};
pub use procs::{MARK_VAR, alive, belongs_to, find_binary, log_tail, marked as procs_of};
pub use state::{Bins, DomainRec, LabState, NicPlace, NicRec, ProcRec, RUN_ROOT, Role};

use crate::error::{Error, Result};
use crate::netns;

/// The outside network's address (RFC 5737 TEST-NET-2).
pub const OUTSIDE_ADDR: &str = "198.51.100.1/24";
/// The outside network's bridge.
pub const OUTSIDE_BRIDGE: &str = "outbr";
/// Vifs a driver domain of the lab can serve. Guests keep xenstored's
/// defaults (Xen's: 1000 nodes, 2.5 MiB); only a driver domain gets more,
/// because each vif puts about 30 nodes in *its* quota (the backend
/// directory and toolstack keys dom0 writes for it, netback's feature and
/// queue keys, the hotplug status, the agent's published port; doctor
/// counts 32), so the default caps a driver domain at about 30 vifs.
pub const DRIVER_DOMAIN_VIFS: u32 = 1024;
/// A driver domain's node quota: the default for its own keys plus 32 per
/// vif (33,768). On a real host raise it the same way (cxenstored `-E`
/// applies to every domain; drvdom-xenstored `CONTROL quota-set` to one).
pub const LAB_QUOTA_NODES: u32 = 1000 + 32 * DRIVER_DOMAIN_VIFS;
/// A driver domain's memory quota: the default (2.5 MiB, cxenstored 4.17's
/// `quota_memory_per_domain_hard`) plus 4 KiB per vif (32 nodes of about
/// 100 bytes each: record, name, value, two permissions).
pub const LAB_QUOTA_MEMORY: u32 = 2_621_440 + 4096 * DRIVER_DOMAIN_VIFS;
/// How long a domain's kernel and agent may take to come up.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one probe keeps sending echo requests (one every 250 ms).
/// Generous: the kernel activates new links in one global work item that
/// runs at most once a second with a budget, so with many labs at once on
/// a busy machine the first packets of a fresh path can wait seconds.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// True if lab `name` has a record or any namespace.
pub fn exists(run_root: &Path, name: &str) -> bool {
    LabState::file(&state::lab_dir(run_root, name)).exists()
        || netns::list_with_prefix(&netns::lab_prefix(name)).is_ok_and(|v| !v.is_empty())
}

/// The root of lab directories: `$DRVDOM_LAB_ROOT`, else [`RUN_ROOT`].
pub fn run_root() -> PathBuf {
    std::env::var_os("DRVDOM_LAB_ROOT")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(RUN_ROOT))
}

/// Read a running lab's record.
pub fn load(run_root: &Path, name: &str) -> Result<LabState> {
    state::check_name(name)?;
    let dir = state::lab_dir(run_root, name);
    LabState::load(&dir)?.ok_or_else(|| {
        Error::Invalid(format!(
            "no lab {name:?} (no {})",
            LabState::file(&dir).display()
        ))
    })
}

/// The command that runs `argv` inside domain `domain` of a running lab
/// (its namespace, its own `/sys`, `XENSTORED_PATH` set to the domain's
/// xenstore socket), through `drvdom-simkernel exec`. `domain` may also be
/// `outside`. The caller runs or execs it.
pub fn exec_command(
    st: &LabState,
    domain: &str,
    argv: &[std::ffi::OsString],
) -> Result<std::process::Command> {
    let (ns, socket) = if domain == "outside" {
        (st.outside_ns.clone(), None)
    } else {
        let d = st.domain(domain).ok_or_else(|| {
            let mut known: Vec<&str> = st.domains.iter().map(|d| d.name.as_str()).collect();
            known.push("outside");
            Error::Invalid(format!(
                "no domain {domain:?} in lab {} (domains: {})",
                st.name,
                known.join(", ")
            ))
        })?;
        (d.netns.clone(), Some(st.socket_of(d.domid)))
    };
    let Some((program, args)) = argv.split_first() else {
        return Err(Error::Invalid("no command to run".into()));
    };
    let mut cmd = std::process::Command::new(&st.bins.simkernel);
    cmd.arg("exec")
        .arg("--netns")
        .arg(netns::ns_path(&ns))
        .arg("--")
        .arg(program)
        .args(args)
        .env(MARK_VAR, &st.name);
    if let Some(s) = socket {
        cmd.env("XENSTORED_PATH", s);
    }
    Ok(cmd)
}
