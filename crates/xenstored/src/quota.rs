//! Per-domain quotas (cxenstored 4.17 defaults; WIRE.md §11). Dom0 is exempt.
//!
//! The memory quota follows cxenstored 4.17 (`-Q memory=`, 2.5 MiB hard
//! limit; `xenstored_domain.c` `domain_memory_add`): a domain is charged
//! for the nodes it owns, its watches, its open transactions and the
//! replies and events queued for it; a request that would go past the
//! limit fails with `ENOMEM` (cx's errno) and changes nothing, and an event
//! that would is dropped.

use xenstore::XsErrno;

/// cxenstored 4.17's hard memory quota per domain (`quota_memory_per_domain_hard`).
pub const DEFAULT_MEMORY: u32 = 2 * 1024 * 1024 + 512 * 1024;

/// Quota settings for unprivileged domains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Quotas {
    /// Nodes a domain may own (cx `-E`, 1000).
    pub nodes: u32,
    /// Watches per domain (cx `-W`, 128).
    pub watches: u32,
    /// Open transactions per domain (cx `-t`, 10).
    pub transactions: u32,
    /// Largest value in bytes (cx `-S`, 2048).
    pub node_size: u32,
    /// Permission entries per node (cx `-A`, 5).
    pub perms: u32,
    /// Requests processed per connection before its replies are flushed
    /// (cx `-Q outstanding=`, 20).
    pub outstanding: u32,
    /// Nodes one transaction may touch (cx `-Q transaction-nodes=`, 1024).
    pub transaction_nodes: u32,
    /// Longest path, counted after `/local/domain/<id>/` (cx `-M`, 2048).
    pub path_max: u32,
    /// Bytes a domain may make the server hold (cx `-Q memory=`, 2.5 MiB;
    /// 0 = no limit, as there).
    pub memory: u32,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            nodes: 1000,
            watches: 128,
            transactions: 10,
            node_size: 2048,
            perms: 5,
            outstanding: 20,
            transaction_nodes: 1024,
            path_max: 2048,
            memory: DEFAULT_MEMORY,
        }
    }
}

impl Quotas {
    /// The memory quota that goes with a node quota of `nodes` when none
    /// is given: Xen's default, or as much per node as Xen's defaults allow
    /// (2.5 MiB for 1000 nodes) if that is more. Raising only the node
    /// quota (as hosts with big driver domains do) then keeps working.
    pub fn memory_for_nodes(nodes: u32) -> u32 {
        let per_node = u64::from(DEFAULT_MEMORY) / 1000;
        let m = (u64::from(nodes) * per_node).max(u64::from(DEFAULT_MEMORY));
        u32::try_from(m).unwrap_or(u32::MAX)
    }

    /// (name, value, description) rows, as `CONTROL quota` prints them.
    fn rows(&self) -> [(&'static str, u32, &'static str); 9] {
        [
            ("nodes", self.nodes, "Nodes per domain"),
            ("watches", self.watches, "Watches per domain"),
            ("transactions", self.transactions, "Transactions per domain"),
            (
                "outstanding",
                self.outstanding,
                "Outstanding requests per domain",
            ),
            (
                "transaction-nodes",
                self.transaction_nodes,
                "Max. number of accessed nodes per transaction",
            ),
            (
                "memory",
                self.memory,
                "Total Xenstore memory per domain (error level)",
            ),
            ("node-size", self.node_size, "Max. size of a node"),
            ("path-max", self.path_max, "Max. length of a node path"),
            (
                "permissions",
                self.perms,
                "Max. number of permissions per node",
            ),
        ]
    }

    /// The `CONTROL quota` report (layout of cxenstored's).
    pub(crate) fn report(&self) -> String {
        let mut s = String::from("Quota settings:\n");
        for (name, v, what) in self.rows() {
            s.push_str(&format!("{name:<17}: {v:>8} {what}\n"));
        }
        s
    }

    /// `CONTROL quota set <name> <value>`.
    pub(crate) fn set(&mut self, name: &str, value: u32) -> Result<(), XsErrno> {
        let slot = match name {
            "nodes" => &mut self.nodes,
            "watches" => &mut self.watches,
            "transactions" => &mut self.transactions,
            "outstanding" => &mut self.outstanding,
            "transaction-nodes" => &mut self.transaction_nodes,
            "node-size" => &mut self.node_size,
            "path-max" => &mut self.path_max,
            "permissions" => &mut self.perms,
            "memory" => &mut self.memory,
            _ => return Err(XsErrno::Einval),
        };
        *slot = value;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_cxenstored() {
        let q = Quotas::default();
        let r = q.report();
        assert!(
            r.starts_with("Quota settings:\nnodes            :     1000 Nodes per domain\n"),
            "{r}"
        );
        assert!(r.contains("watches          :      128 Watches per domain"));
        assert!(r.contains("memory           :  2621440 Total Xenstore memory per domain"));
        let mut q = q;
        q.set("watches", 3).unwrap();
        assert_eq!(q.watches, 3);
        assert_eq!(q.set("bogus", 1), Err(XsErrno::Einval));
        q.set("memory", 10).unwrap();
        assert_eq!(q.memory, 10);
        assert_eq!(Quotas::memory_for_nodes(1000), DEFAULT_MEMORY);
        assert_eq!(Quotas::memory_for_nodes(10), DEFAULT_MEMORY);
        assert_eq!(Quotas::memory_for_nodes(40_000), 40_000 * 2621);
    }
}
