//! Node operations (READ, WRITE, MKDIR, RM, DIRECTORY, DIRECTORY_PART,
//! GET_PERMS, SET_PERMS) over a [`View`], with cxenstored 4.17's
//! permission, quota and error rules (`xenstored_core.c`).
//!
//! Each walks its path once and then works on node handles: the cost of a
//! request is linear in the length of its path (a 1000-level path costs a
//! thousand hash probes, not a million), and a DIRECTORY stops as soon as
//! its reply is too big. Everything a request will need — transaction
//! entries, nodes, bytes — is checked before anything changes, so a
//! refused request leaves no trace.

use xenstore::wire::PAYLOAD_MAX;
use xenstore::{DomId, Perm, XsErrno};

use crate::perms::{Caller, inherit};
use crate::quota::Quotas;
use crate::store::{View, Walked};
use crate::transaction::PendingEvent;
use crate::tree::{NODE_OVERHEAD, node_cost};
use crate::watch::WatchIndex;

/// The path component starting at byte `at`.
fn component(path: &str, at: usize) -> &[u8] {
    let b = &path.as_bytes()[at.min(path.len())..];
    let end = b.iter().position(|&c| c == b'/').unwrap_or(b.len());
    &b[..end]
}

/// Number of components from byte `at` on.
fn components_from(path: &str, at: usize) -> usize {
    if at >= path.len() {
        0
    } else {
        path.as_bytes()[at..].iter().filter(|&&c| c == b'/').count() + 1
    }
}

/// The error for a missing node: `EACCES` if the caller may not write (or
/// read) the nearest existing ancestor, else `ENOENT` (cxenstored
/// `errno_from_parents`: do not reveal what one may not see). A
/// transaction records the ancestor and the absence.
fn missing<V: View>(
    v: &mut V,
    caller: &Caller,
    w: &Walked<V::H>,
    path: &str,
    write: bool,
) -> XsErrno {
    if let Err(e) = v.touch(w.deepest) {
        return e;
    }
    if let Err(e) = v.touch_absent(w.deepest, component(path, w.rest)) {
        return e;
    }
    let p = v.perms(w.deepest);
    let ok = if write {
        caller.can_write(p)
    } else {
        caller.can_read(p)
    };
    if ok { XsErrno::Enoent } else { XsErrno::Eacces }
}

/// The node at `path` if the caller may read it.
fn readable<V: View>(v: &mut V, caller: &Caller, path: &str) -> Result<V::H, XsErrno> {
    let w = v.walk(path);
    match w.node {
        Some(h) => {
            v.touch(h)?;
            if caller.can_read(v.perms(h)) {
                Ok(h)
            } else {
                Err(XsErrno::Eacces)
            }
        }
        None => Err(missing(v, caller, &w, path, false)),
    }
}

/// READ: append the value to `out`.
pub(crate) fn read<V: View>(
    v: &mut V,
    caller: &Caller,
    path: &str,
    out: &mut Vec<u8>,
) -> Result<(), XsErrno> {
    let h = readable(v, caller, path)?;
    out.extend_from_slice(v.value(h));
    Ok(())
}

/// Create the missing part of `path` (each new node copying its parent's
/// permissions, owned by the creator if unprivileged); the last node gets
/// `value`. Returns the new node.
fn create_path<V: View>(
    v: &mut V,
    caller: &Caller,
    quotas: &Quotas,
    path: &str,
    w: &Walked<V::H>,
    value: &[u8],
) -> Result<V::H, XsErrno> {
    v.touch(w.deepest)?;
    let parent = v.perms(w.deepest);
    if !caller.can_write(parent) {
        return Err(XsErrno::Eacces);
    }
    let perms = inherit(caller, parent);
    let missing = components_from(path, w.rest);
    if missing > v.room() {
        return Err(XsErrno::Enospc);
    }
    if !caller.privileged() {
        let owned = u64::from(v.usage(caller.domid).nodes);
        if owned + missing as u64 > u64::from(quotas.nodes) {
            return Err(XsErrno::Enospc);
        }
        let names = path.len() - w.rest - (missing - 1);
        let cost = node_cost(names, value.len(), perms.len())
            + (missing as u64 - 1) * node_cost(0, 0, perms.len());
        v.reserve(cost)?;
    }
    let mut cur = w.deepest;
    let mut at = w.rest;
    for i in 0..missing {
        let name = component(path, at);
        let val: &[u8] = if i + 1 == missing { value } else { b"" };
        cur = v.create(cur, name, val, &perms);
        at += name.len() + 1;
    }
    Ok(cur)
}

/// WRITE: create or replace; returns the node to fire watches for.
pub(crate) fn write<V: View>(
    v: &mut V,
    caller: &Caller,
    quotas: &Quotas,
    path: &str,
    value: &[u8],
) -> Result<V::H, XsErrno> {
    if !caller.privileged() && value.len() > quotas.node_size as usize {
        return Err(XsErrno::Enospc);
    }
    let w = v.walk(path);
    match w.node {
        Some(h) => {
            v.touch(h)?;
            if !caller.can_write(v.perms(h)) {
                return Err(XsErrno::Eacces);
            }
            let old = v.value(h).len();
            if !caller.privileged() && value.len() > old {
                v.reserve((value.len() - old) as u64)?;
            }
            v.set_value(h, value);
            Ok(h)
        }
        None => create_path(v, caller, quotas, path, &w, value),
    }
}

/// MKDIR: create if absent (returns the new node), keep an existing node
/// as it is (`None`: nothing changed, no event).
pub(crate) fn mkdir<V: View>(
    v: &mut V,
    caller: &Caller,
    quotas: &Quotas,
    path: &str,
) -> Result<Option<V::H>, XsErrno> {
    let w = v.walk(path);
    match w.node {
        Some(h) => {
            v.touch(h)?;
            if caller.can_write(v.perms(h)) {
                Ok(None)
            } else {
                Err(XsErrno::Eacces)
            }
        }
        None => create_path(v, caller, quotas, path, &w, b"").map(Some),
    }
}

/// RM: remove a subtree. Its events go to `events`: the root fires
/// watches at and above it; each removed descendant fires only watches on
/// exactly its path (WIRE.md §7). Inside a transaction the subtree must
/// fit the transaction's node limit (`ENOSPC`, as cxenstored counts each
/// removed node as accessed), checked before anything is removed.
pub(crate) fn rm<V: View>(
    v: &mut V,
    caller: &Caller,
    path: &str,
    watches: &WatchIndex,
    events: &mut Vec<PendingEvent>,
) -> Result<(), XsErrno> {
    if path == "/" {
        return Err(XsErrno::Einval);
    }
    let w = v.walk(path);
    let Some(h) = w.node else {
        let e = missing(v, caller, &w, path, true);
        // a missing node whose parent exists is fine (cx `do_rm`)
        return if e == XsErrno::Enoent && components_from(path, w.rest) == 1 {
            Ok(())
        } else {
            Err(e)
        };
    };
    v.touch(h)?;
    if !caller.can_write(v.perms(h)) {
        return Err(XsErrno::Eacces);
    }
    let room = v.room();
    if room != usize::MAX {
        // the subtree plus its parent, counted without walking past the limit
        let n = v.subtree_size(h, room);
        if n + 1 > room {
            return Err(XsErrno::Enospc);
        }
        v.reserve((n * NODE_OVERHEAD) as u64)?;
    }
    if let Some(p) = v.parent_of(h) {
        v.touch(p)?;
    }
    v.remove(h, path, watches, events);
    Ok(())
}

/// DIRECTORY: child names, each NUL-terminated; `E2BIG` over 4096 bytes
/// (cxenstored; use DIRECTORY_PART). Stops listing as soon as the reply is
/// too big, so a directory of 60,000 children costs no more than one of
/// 600.
pub(crate) fn directory<V: View>(
    v: &mut V,
    caller: &Caller,
    path: &str,
    out: &mut Vec<u8>,
) -> Result<(), XsErrno> {
    let h = readable(v, caller, path)?;
    let start = out.len();
    let mut too_big = false;
    v.list_children(h, &mut |name| {
        out.extend_from_slice(name);
        out.push(0);
        too_big = out.len() - start > PAYLOAD_MAX;
        !too_big
    });
    if too_big {
        out.truncate(start);
        return Err(XsErrno::E2big);
    }
    Ok(())
}

/// DIRECTORY_PART: `<generation>\0` then the child list from byte `offset`,
/// as many strings as fit in a reply, plus a final `\0` when the end is
/// reached (cxenstored `send_directory_part`; an offset inside a name
/// starts with the rest of that name, as there).
pub(crate) fn directory_part<V: View>(
    v: &mut V,
    caller: &Caller,
    path: &str,
    offset: u64,
    out: &mut Vec<u8>,
) -> Result<(), XsErrno> {
    let h = readable(v, caller, path)?;
    let gen_text = v.generation(h).to_string();
    out.extend_from_slice(gen_text.as_bytes());
    out.push(0);
    let maxlen = PAYLOAD_MAX - (gen_text.len() + 1) - 1;
    let off = usize::try_from(offset).unwrap_or(usize::MAX);
    let mut len = 0usize; // bytes emitted
    let mut full = false;
    v.list_children_from(h, off, &mut |pos, name| {
        let end = pos + name.len() + 1;
        if end <= off {
            return true;
        }
        let part = &name[off.saturating_sub(pos).min(name.len())..];
        if len + part.len() + 1 > maxlen {
            full = true;
            return false;
        }
        out.extend_from_slice(part);
        out.push(0);
        len += part.len() + 1;
        true
    });
    if !full {
        // the end of the list (or an offset past it)
        out.push(0);
    }
    Ok(())
}

/// GET_PERMS.
pub(crate) fn get_perms<V: View>(
    v: &mut V,
    caller: &Caller,
    path: &str,
    out: &mut Vec<u8>,
) -> Result<(), XsErrno> {
    let h = readable(v, caller, path)?;
    for p in v.perms(h) {
        out.extend_from_slice(p.to_string().as_bytes());
        out.push(0);
    }
    Ok(())
}

/// SET_PERMS: needs write access and ownership; only dom0 may change the
/// owner (`EPERM`); the owner must be a known domain (`ENOENT`, cx).
pub(crate) fn set_perms<V: View>(
    v: &mut V,
    caller: &Caller,
    quotas: &Quotas,
    path: &str,
    perms: &[Perm],
    known: &dyn Fn(DomId) -> bool,
) -> Result<V::H, XsErrno> {
    if !caller.privileged() && perms.len() > quotas.perms as usize {
        return Err(XsErrno::Enospc);
    }
    let w = v.walk(path);
    let Some(h) = w.node else {
        return Err(missing(v, caller, &w, path, true));
    };
    v.touch(h)?;
    let old = v.perms(h);
    let owner = old.first().map(|p| p.domid);
    let is_owner =
        caller.privileged() || owner.is_some_and(|o| o == caller.domid || Some(o) == caller.target);
    if !caller.can_write(old) || !is_owner {
        return Err(XsErrno::Eacces);
    }
    let new_owner = perms.first().map(|p| p.domid);
    if !caller.privileged() && new_owner != owner {
        return Err(XsErrno::Eperm);
    }
    if let Some(o) = new_owner {
        if !known(o) {
            return Err(XsErrno::Enoent);
        }
    }
    let grow = perms.len().saturating_sub(old.len());
    if !caller.privileged() && grow > 0 {
        v.reserve(8 * grow as u64)?;
    }
    v.set_perms(h, perms);
    Ok(h)
}

#[cfg(test)]
#[path = "ops_tests.rs"]
mod tests;
