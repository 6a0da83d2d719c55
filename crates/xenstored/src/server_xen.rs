//! The core's entry points for the ring service on real Xen (`ringd`):
//! what the hypervisor reports about domains. A child module of `server`,
//! so it reaches the core's state without widening its API.

use xenstore::DomId;

use super::{DomainOracle, RELEASE_DOMAIN, Server};

impl Server {
    /// On real Xen: let SET_PERMS accept an owner that exists in the
    /// hypervisor but is not introduced yet, as xen 4.17's
    /// `domain_alloc_permrefs` does (libxl sets `/local/domain/N`'s
    /// permissions before it INTRODUCEs N). Without it such an owner is
    /// unknown (`ENOENT`), as the C daemon without Xen answers.
    pub fn set_domain_oracle(&mut self, oracle: DomainOracle) {
        self.domain_exists = Some(oracle);
    }

    /// SET_PERMS: is `d` a known owner? Introduced, or (on real Xen)
    /// existing in the hypervisor.
    pub(super) fn owner_known(&mut self, d: DomId) -> bool {
        self.domains.is_introduced(d) || self.domain_exists.as_mut().is_some_and(|f| f(d))
    }

    /// The hypervisor reports `d` shut down or crashed: fire
    /// `@releaseDomain` the first time (again only after XS_RESUME), as
    /// xen `check_domains`. True if it fired.
    pub fn domain_shutdown(&mut self, d: DomId) -> bool {
        if d == DomId::DOM0 || !self.domains.mark_shutdown(d) {
            return false;
        }
        self.fire_special(RELEASE_DOMAIN);
        true
    }

    /// The hypervisor reports `d` dying or gone: forget it as XS_RELEASE
    /// does (its connections close, `@releaseDomain` fires, and
    /// [`super::Effect::Released`] follows).
    pub fn release_domain(&mut self, d: DomId) {
        if d != DomId::DOM0 {
            self.release(d);
        }
    }
}
