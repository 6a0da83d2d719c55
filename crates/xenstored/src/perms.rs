//! Access checks (cxenstored `perm_for_conn`, docs/misc/xenstore.txt).
//!
//! Privileged callers (dom0) get everything. Otherwise the owner, or a
//! caller whose SET_TARGET target is the owner, gets everything; else the
//! first ACL entry naming the caller (or its target) decides; else the
//! owner entry's letter is the default for everyone.

use xenstore::{Access, DomId, Perm};

/// Who is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Caller {
    /// The caller's domain.
    pub domid: DomId,
    /// The domain it acts for (SET_TARGET), if any.
    pub target: Option<DomId>,
}

impl Caller {
    /// Dom0 is the privileged domain (cxenstored `-p`, default 0).
    pub(crate) fn privileged(&self) -> bool {
        self.domid == DomId::DOM0
    }

    fn is(&self, d: DomId) -> bool {
        self.domid == d || self.target == Some(d)
    }

    /// Access of this caller to a node with `perms`.
    pub(crate) fn access(&self, perms: &[Perm]) -> Access {
        if self.privileged() {
            return Access::Both;
        }
        let Some((owner, acl)) = perms.split_first() else {
            return Access::None;
        };
        if self.is(owner.domid) {
            return Access::Both;
        }
        acl.iter()
            .find(|p| self.is(p.domid))
            .map_or(owner.access, |p| p.access)
    }

    /// True if the caller may read a node with `perms`.
    pub(crate) fn can_read(&self, perms: &[Perm]) -> bool {
        self.access(perms).can_read()
    }

    /// True if the caller may write a node with `perms`.
    pub(crate) fn can_write(&self, perms: &[Perm]) -> bool {
        self.access(perms).can_write()
    }
}

/// Permissions of a node created by `caller` under a parent with
/// `parent`'s list: a copy, with the creator as owner when unprivileged
/// (cxenstored `construct_node`).
pub(crate) fn inherit(caller: &Caller, parent: &[Perm]) -> Vec<Perm> {
    let mut p = parent.to_vec();
    if !caller.privileged() {
        if let Some(first) = p.first_mut() {
            first.domid = caller.domid;
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(d: u16, t: Option<u16>) -> Caller {
        Caller {
            domid: DomId(d),
            target: t.map(DomId),
        }
    }

    #[test]
    fn owner_acl_default_and_target() {
        let p: Vec<Perm> = "n5 r6 w7"
            .parse::<xenstore::PermList>()
            .unwrap()
            .entries()
            .to_vec();
        assert_eq!(c(0, None).access(&p), Access::Both);
        assert_eq!(c(5, None).access(&p), Access::Both);
        assert_eq!(c(6, None).access(&p), Access::Read);
        assert_eq!(c(7, None).access(&p), Access::Write);
        assert_eq!(c(8, None).access(&p), Access::None);
        // a device model targeting dom5 acts as its owner
        assert_eq!(c(9, Some(5)).access(&p), Access::Both);
        assert_eq!(c(9, Some(6)).access(&p), Access::Read);
    }

    #[test]
    fn inherit_sets_creator_as_owner() {
        let p: Vec<Perm> = "r0 b3"
            .parse::<xenstore::PermList>()
            .unwrap()
            .entries()
            .to_vec();
        assert_eq!(inherit(&c(0, None), &p), p);
        let q = inherit(&c(4, None), &p);
        assert_eq!(q[0], Perm::new(Access::Read, DomId(4)));
        assert_eq!(q[1], p[1]);
    }
}
