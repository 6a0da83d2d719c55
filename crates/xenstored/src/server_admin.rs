//! Domain management and administration: RELEASE, the permissions of the
//! special `@` nodes, and CONTROL.

use tracing::info;
use xenstore::{DomId, Perm, XsErrno};

use super::{Effect, INTRODUCE_DOMAIN, OpResult, RELEASE_DOMAIN, Server, ok};

use crate::control::{self, Control};
use crate::perms::Caller;
use crate::quota::Quotas;
use crate::server::ConnId;

impl Server {
    pub(super) fn release(&mut self, d: DomId) {
        if !self.domains.is_introduced(d) {
            return;
        }
        let conns: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.domid == d)
            .map(|(id, _)| id)
            .collect();
        for cid in conns {
            self.reset_conn(cid);
            if let Some(c) = self.conns.get_mut(cid) {
                c.closing = true;
            }
            self.mark_dirty(cid);
        }
        self.domains.release(d);
        info!(domid = d.0, "domain released");
        self.fire_special(RELEASE_DOMAIN);
        self.effects.push(Effect::Released(d));
    }

    pub(super) fn set_special_perms(
        &mut self,
        caller: &Caller,
        p: &str,
        perms: Vec<Perm>,
        out: &mut Vec<u8>,
    ) -> OpResult {
        let slot = match p {
            INTRODUCE_DOMAIN => &mut self.domains.intro_perms,
            RELEASE_DOMAIN => &mut self.domains.release_perms,
            _ => return Err(XsErrno::Einval),
        };
        if !caller.privileged() {
            return Err(XsErrno::Eacces);
        }
        *slot = perms;
        ok(out)
    }

    pub(super) fn control(&mut self, args: &[Vec<u8>], out: &mut Vec<u8>) -> OpResult {
        match control::parse(args)? {
            Control::Help => out.extend_from_slice(control::HELP.as_bytes()),
            Control::Check => return ok(out),
            Control::Print(s) => {
                info!(text = %s, "CONTROL print");
                return ok(out);
            }
            Control::QuotaShow => out.extend_from_slice(self.quotas.report().as_bytes()),
            Control::QuotaSet(name, v) => {
                self.quotas.set(&name, v)?;
                return ok(out);
            }
            Control::QuotaSetDomain(d, pairs) => {
                if d == DomId::DOM0 || !self.domains.is_introduced(d) {
                    return Err(XsErrno::Enoent);
                }
                for (name, _) in &pairs {
                    Quotas::default().set(name, 0)?;
                }
                for (name, v) in pairs {
                    self.domains.set_quota(d, &name, v)?;
                }
                info!(domid = d.0, "per-domain quota set");
                return ok(out);
            }
            Control::QuotaOf(d) => {
                if !self.domains.is_introduced(d) {
                    return Err(XsErrno::Enoent);
                }
                let mut s = format!("Domain {}:\n", d.0);
                let outstanding: usize = self
                    .conns
                    .iter()
                    .map(|(_, c)| c)
                    .filter(|c| c.domid == d)
                    .map(|c| usize::from(!c.out.is_empty()))
                    .sum();
                for (name, v) in [
                    ("nodes", u64::from(self.tree.owned_by(d))),
                    ("watches", u64::from(self.domains.watches(d))),
                    ("transactions", u64::from(self.domains.transactions(d))),
                    ("outstanding", outstanding as u64),
                    ("memory", self.memory_of(d)),
                ] {
                    s.push_str(&format!("{name:<16}: {v:>8}\n"));
                }
                if d != DomId::DOM0 {
                    s.push_str(&format!(
                        "quota nodes     : {:>8}\nquota memory    : {:>8}\n",
                        self.quotas_of(d).nodes,
                        self.quotas_of(d).memory
                    ));
                }
                out.extend_from_slice(s.as_bytes());
            }
        }
        out.push(0);
        Ok(())
    }
}
