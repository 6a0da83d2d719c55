//! Domains known to the server (cxenstored `xenstored_domain.c`): which are
//! introduced, their SET_TARGET targets, the permissions of the special
//! `@introduceDomain`/`@releaseDomain` nodes, per-domain counters for the
//! watch and transaction quotas, the memory a domain holds besides its
//! nodes (watches, transactions, queued output), and quotas set for one
//! domain (`CONTROL quota-set`).

use std::collections::HashMap;

use xenstore::{Access, DomId, Perm, XsErrno};

use crate::hash::FastState;
use crate::quota::Quotas;

/// Per-domain state.
#[derive(Debug, Default, Clone)]
struct Domain {
    target: Option<DomId>,
    /// Quotas set for this domain only, applied over the global ones.
    quotas: Vec<(String, u32)>,
    /// `@releaseDomain` already fired for its shutdown (until XS_RESUME).
    shutdown: bool,
}

/// The domain table.
pub(crate) struct Domains {
    introduced: HashMap<u16, Domain, FastState>,
    /// Permissions of `@introduceDomain`.
    pub intro_perms: Vec<Perm>,
    /// Permissions of `@releaseDomain`.
    pub release_perms: Vec<Perm>,
    watches: HashMap<u16, u32, FastState>,
    transactions: HashMap<u16, u32, FastState>,
    /// Bytes held besides owned nodes: watches, transactions, output.
    extra: HashMap<u16, u64, FastState>,
}

impl Domains {
    pub(crate) fn new() -> Domains {
        let n0 = vec![Perm::new(Access::None, DomId::DOM0)];
        Domains {
            introduced: HashMap::default(),
            intro_perms: n0.clone(),
            release_perms: n0,
            watches: HashMap::default(),
            transactions: HashMap::default(),
            extra: HashMap::default(),
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

    /// The quotas that apply to `d`: `global` with `d`'s own settings.
    pub(crate) fn quotas_of(&self, d: DomId, global: &Quotas) -> Quotas {
        let mut q = *global;
        if let Some(dom) = self.introduced.get(&d.0) {
            for (name, v) in &dom.quotas {
                let _ = q.set(name, *v);
            }
        }
        q
    }

    /// Set quota `name` for domain `d` only (`ENOENT` if not introduced,
    /// `EINVAL` for an unknown name). Released with the domain.
    pub(crate) fn set_quota(&mut self, d: DomId, name: &str, v: u32) -> Result<(), XsErrno> {
        Quotas::default().set(name, v)?;
        let dom = self.introduced.get_mut(&d.0).ok_or(XsErrno::Enoent)?;
        dom.quotas.retain(|(n, _)| n != name);
        dom.quotas.push((name.to_string(), v));
        Ok(())
    }

    /// Bytes `d` holds besides its nodes.
    pub(crate) fn extra(&self, d: DomId) -> u64 {
        self.extra.get(&d.0).copied().unwrap_or(0)
    }

    /// Adjust the bytes `d` holds besides its nodes (not kept for dom0,
    /// which has no quota).
    pub(crate) fn add_extra(&mut self, d: DomId, delta: i64) {
        if delta == 0 || d == DomId::DOM0 {
            return;
        }
        let c = self.extra.entry(d.0).or_insert(0);
        *c = u64::try_from((*c as i64 + delta).max(0)).unwrap_or(0);
        if *c == 0 {
            self.extra.remove(&d.0);
        }
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

fn bump(m: &mut HashMap<u16, u32, FastState>, d: DomId, delta: i64) {
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
        // per-domain quotas
        let g = Quotas::default();
        assert_eq!(d.set_quota(DomId(5), "nodes", 9), Err(XsErrno::Enoent));
        assert_eq!(d.set_quota(DomId(6), "bogus", 9), Err(XsErrno::Einval));
        d.set_quota(DomId(6), "nodes", 9).unwrap();
        d.set_quota(DomId(6), "nodes", 10).unwrap();
        assert_eq!(d.quotas_of(DomId(6), &g).nodes, 10);
        assert_eq!(d.quotas_of(DomId(6), &g).watches, g.watches);
        assert_eq!(d.quotas_of(DomId(7), &g), g);
        d.add_extra(DomId(6), 100);
        d.add_extra(DomId(6), -40);
        assert_eq!(d.extra(DomId(6)), 60);
    }
}
