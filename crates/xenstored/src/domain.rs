//! Domains known to the server (cxenstored `xenstored_domain.c`): which are
//! introduced, their SET_TARGET targets, the permissions of the special
//! `@introduceDomain`/`@releaseDomain` nodes, and per-domain counters for
//! the watch and transaction quotas.

use std::collections::HashMap;

use xenstore::{Access, DomId, Perm};

/// Per-domain state.
#[derive(Debug, Default, Clone)]
struct Domain {
    target: Option<DomId>,
    /// `@releaseDomain` already fired for its shutdown (until XS_RESUME).
    shutdown: bool,
}

/// The domain table.
pub(crate) struct Domains {
    introduced: HashMap<u16, Domain>,
    /// Permissions of `@introduceDomain`.
    pub intro_perms: Vec<Perm>,
    /// Permissions of `@releaseDomain`.
    pub release_perms: Vec<Perm>,
    watches: HashMap<u16, u32>,
    transactions: HashMap<u16, u32>,
}

impl Domains {
    pub(crate) fn new() -> Domains {
        let n0 = vec![Perm::new(Access::None, DomId::DOM0)];
        Domains {
            introduced: HashMap::new(),
            intro_perms: n0.clone(),
            release_perms: n0,
            watches: HashMap::new(),
            transactions: HashMap::new(),
        }
    }

    /// Dom0 always counts as introduced (cx answers `T` for it).
    pub(crate) fn is_introduced(&self, d: DomId) -> bool {
        d == DomId::DOM0 || self.introduced.contains_key(&d.0)
    }

    /// Mark introduced; false if it already was.
    pub(crate) fn introduce(&mut self, d: DomId) -> bool {
        if self.is_introduced(d) {
            return false;
        }
        self.introduced.insert(d.0, Domain::default());
        true
    }

    /// Forget a domain; false if it was not introduced. Targets naming it
    /// are cleared too.
    pub(crate) fn release(&mut self, d: DomId) -> bool {
        let was = self.introduced.remove(&d.0).is_some();
        for dom in self.introduced.values_mut() {
            if dom.target == Some(d) {
                dom.target = None;
            }
        }
        self.watches.remove(&d.0);
        self.transactions.remove(&d.0);
        was
    }

    /// Note that `d` shut down; false if already noted or not introduced.
    pub(crate) fn mark_shutdown(&mut self, d: DomId) -> bool {
        match self.introduced.get_mut(&d.0) {
            Some(x) if !x.shutdown => {
                x.shutdown = true;
                true
            }
            _ => false,
        }
    }

    /// XS_RESUME: a later shutdown fires `@releaseDomain` again.
    pub(crate) fn resume(&mut self, d: DomId) {
        if let Some(x) = self.introduced.get_mut(&d.0) {
            x.shutdown = false;
        }
    }

    /// The SET_TARGET target of `d`.
    pub(crate) fn target_of(&self, d: DomId) -> Option<DomId> {
        self.introduced.get(&d.0).and_then(|x| x.target)
    }

    /// Record that `d` acts for `target`.
    pub(crate) fn set_target(&mut self, d: DomId, target: DomId) {
        if let Some(x) = self.introduced.get_mut(&d.0) {
            x.target = Some(target);
        }
    }

    /// Watches held by `d`.
    pub(crate) fn watches(&self, d: DomId) -> u32 {
        self.watches.get(&d.0).copied().unwrap_or(0)
    }

    /// Adjust `d`'s watch count.
    pub(crate) fn add_watches(&mut self, d: DomId, delta: i64) {
        bump(&mut self.watches, d, delta);
    }

    /// Open transactions of `d`.
    pub(crate) fn transactions(&self, d: DomId) -> u32 {
        self.transactions.get(&d.0).copied().unwrap_or(0)
    }

    /// Adjust `d`'s transaction count.
    pub(crate) fn add_transactions(&mut self, d: DomId, delta: i64) {
        bump(&mut self.transactions, d, delta);
    }

    /// Introduced domains (dom0 not included), sorted.
    pub(crate) fn list(&self) -> Vec<DomId> {
        let mut v: Vec<DomId> = self.introduced.keys().map(|&d| DomId(d)).collect();
        v.sort();
        v
    }
}

fn bump(m: &mut HashMap<u16, u32>, d: DomId, delta: i64) {
    let c = m.entry(d.0).or_insert(0);
    *c = u32::try_from((i64::from(*c) + delta).max(0)).unwrap_or(u32::MAX);
    if *c == 0 {
        m.remove(&d.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn introduce_release_target() {
        let mut d = Domains::new();
        assert!(d.is_introduced(DomId(0)));
        assert!(!d.is_introduced(DomId(5)));
        assert!(d.introduce(DomId(5)));
        assert!(!d.introduce(DomId(5)));
        assert!(d.introduce(DomId(6)));
        d.set_target(DomId(6), DomId(5));
        assert_eq!(d.target_of(DomId(6)), Some(DomId(5)));
        d.add_watches(DomId(5), 2);
        assert_eq!(d.watches(DomId(5)), 2);
        assert!(d.release(DomId(5)));
        assert_eq!(d.target_of(DomId(6)), None);
        assert_eq!(d.watches(DomId(5)), 0);
        assert!(!d.release(DomId(5)));
        assert_eq!(d.list(), vec![DomId(6)]);
    }
}
