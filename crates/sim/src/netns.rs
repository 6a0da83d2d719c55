//! Network namespaces, the simulated domains' "machines".
//!
//! Namespaces are named `drvdom-<lab>-<domain>` and live under
//! [`NETNS_DIR`] (where `ip netns` keeps them), so that `lab down` can find
//! every namespace of a lab by its prefix even after a crash.

use std::path::{Path, PathBuf};

use crate::cmd::{ip, ip_in};
use crate::error::{Error, Result};

/// Where `ip netns` bind-mounts named namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// Prefix of every namespace a lab creates.
pub fn lab_prefix(lab: &str) -> String {
    format!("drvdom-{lab}-")
}

/// The namespace of domain `domain` of lab `lab`.
pub fn ns_name(lab: &str, domain: &str) -> String {
    format!("{}{domain}", lab_prefix(lab))
}

/// The file of a named namespace (open it to get a namespace fd).
pub fn ns_path(ns: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(ns)
}

/// True if the named namespace exists.
pub fn exists(ns: &str) -> bool {
    ns_path(ns).exists()
}

/// Create the namespace (if missing) and bring its loopback up.
pub async fn create(ns: &str) -> Result<()> {
    if !exists(ns) {
        ip(&["netns", "add", ns]).await?;
    }
    ip_in(ns, &["link", "set", "lo", "up"]).await?;
    Ok(())
}

/// Delete the namespace; missing is fine. Links inside it go with it
/// (veth peers elsewhere vanish too).
pub async fn delete(ns: &str) -> Result<()> {
    if !exists(ns) {
        return Ok(());
    }
    match ip(&["netns", "delete", ns]).await {
        Ok(_) => Ok(()),
        Err(_) if !exists(ns) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Every namespace whose name starts with `prefix`.
pub fn list_with_prefix(prefix: &str) -> Result<Vec<String>> {
    let dir = match std::fs::read_dir(NETNS_DIR) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(Error::File {
                what: "list namespaces in",
                path: NETNS_DIR.into(),
                source,
            });
        }
    };
    let mut out: Vec<String> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .collect();
    out.sort();
    Ok(out)
}

/// Pids of processes whose network namespace is `ns` (`ip netns pids`).
pub async fn pids(ns: &str) -> Result<Vec<i32>> {
    if !exists(ns) {
        return Ok(Vec::new());
    }
    let out = ip(&["netns", "pids", ns]).await?;
    Ok(out
        .stdout
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_lab_prefix() {
        assert_eq!(ns_name("l1", "dom0"), "drvdom-l1-dom0");
        assert!(ns_name("l1", "guest1").starts_with(&lab_prefix("l1")));
        assert_eq!(ns_path("x"), Path::new("/run/netns/x"));
    }
}
