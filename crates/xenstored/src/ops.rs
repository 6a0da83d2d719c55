//! Node operations (READ, WRITE, MKDIR, RM, DIRECTORY, DIRECTORY_PART,
//! GET_PERMS, SET_PERMS) over a [`View`], with cxenstored 4.17's
//! permission, quota and error rules (`xenstored_core.c`).
//!
//! Each returns the watch events it causes; the caller fires them at once
//! or, inside a transaction, queues them for the commit.

use xenstore::wire::PAYLOAD_MAX;
use xenstore::{DomId, Perm, XsErrno};

use crate::perms::{Caller, inherit};
use crate::quota::Quotas;
use crate::store::{View, nearest};
use crate::transaction::PendingEvent;

type Events = Vec<PendingEvent>;

/// The error for a missing node: `EACCES` if the caller may not `write`
/// (or read) the nearest existing ancestor, else `ENOENT` (cxenstored
/// `errno_from_parents`: do not reveal what one may not see).
fn missing(view: &mut dyn View, caller: &Caller, path: &str, write: bool) -> XsErrno {
    let (perms, _) = nearest(view, path);
    let ok = if write {
        caller.can_write(&perms)
    } else {
        caller.can_read(&perms)
    };
    if ok { XsErrno::Enoent } else { XsErrno::Eacces }
}

fn readable(view: &mut dyn View, caller: &Caller, path: &str) -> Result<Vec<Perm>, XsErrno> {
    match view.perms(path) {
        Some(p) if caller.can_read(&p) => Ok(p),
        Some(_) => Err(XsErrno::Eacces),
        None => Err(missing(view, caller, path, false)),
    }
}

/// READ: append the value to `out`.
pub(crate) fn read(
    view: &mut dyn View,
    caller: &Caller,
    path: &str,
    out: &mut Vec<u8>,
) -> Result<(), XsErrno> {
    readable(view, caller, path)?;
    view.read_into(path, out);
    Ok(())
}

/// Create `path` and its missing ancestors (each copying its parent's
/// permissions, owned by the creator if unprivileged).
fn create_path(
    view: &mut dyn View,
    caller: &Caller,
    quotas: &Quotas,
    path: &str,
    value: &[u8],
) -> Result<Events, XsErrno> {
    let (mut perms, missing_count) = nearest(view, path);
    if !caller.can_write(&perms) {
        return Err(XsErrno::Eacces);
    }
    if !caller.privileged() {
        let owned = view.owned_by(caller.domid);
        let limit = u64::from(quotas.nodes);
        if u64::from(owned) + missing_count as u64 > limit {
            return Err(XsErrno::Enospc);
        }
    }
    // the missing paths, shallowest first
    let mut todo: Vec<&str> = Vec::with_capacity(missing_count);
    let mut cur = path;
    for _ in 0..missing_count {
        todo.push(cur);
        cur = xenstore::path::parent(cur).unwrap_or("/");
    }
    for (i, p) in todo.iter().rev().enumerate() {
        perms = inherit(caller, &perms);
        let v: &[u8] = if i + 1 == missing_count { value } else { b"" };
        view.create(p, v, &perms);
    }
    Ok(vec![(path.to_string(), false, perms)])
}

/// WRITE: create or replace.
pub(crate) fn write(
    view: &mut dyn View,
    caller: &Caller,
    quotas: &Quotas,
    path: &str,
    value: &[u8],
) -> Result<Events, XsErrno> {
    if !caller.privileged() && value.len() > quotas.node_size as usize {
        return Err(XsErrno::Enospc);
    }
    match view.perms(path) {
        Some(p) if caller.can_write(&p) => {
            view.set_value(path, value);
            Ok(vec![(path.to_string(), false, p)])
        }
        Some(_) => Err(XsErrno::Eacces),
        None => create_path(view, caller, quotas, path, value),
    }
}

/// MKDIR: create if absent, keep an existing node as it is.
pub(crate) fn mkdir(
    view: &mut dyn View,
    caller: &Caller,
    quotas: &Quotas,
    path: &str,
) -> Result<Events, XsErrno> {
    match view.perms(path) {
        Some(p) if caller.can_write(&p) => Ok(Vec::new()),
        Some(_) => Err(XsErrno::Eacces),
        None => create_path(view, caller, quotas, path, b""),
    }
}

/// RM: remove a subtree. The root fires watches at and above it; each
/// removed descendant fires only watches on exactly its path (WIRE.md §7).
pub(crate) fn rm(
    view: &mut dyn View,
    caller: &Caller,
    path: &str,
    want_paths: bool,
) -> Result<Events, XsErrno> {
    if path == "/" {
        return Err(XsErrno::Einval);
    }
    match view.perms(path) {
        Some(p) if caller.can_write(&p) => {}
        Some(_) => return Err(XsErrno::Eacces),
        None => {
            let e = missing(view, caller, path, true);
            let parent_exists =
                xenstore::path::parent(path).is_some_and(|pp| view.perms(pp).is_some());
            return if e == XsErrno::Enoent && parent_exists {
                Ok(Vec::new())
            } else {
                Err(e)
            };
        }
    }
    let removed = view.remove(path, want_paths);
    Ok(removed
        .into_iter()
        .enumerate()
        .map(|(i, (p, perms))| (p, i > 0, perms))
        .collect())
}

/// DIRECTORY: child names, each NUL-terminated; `E2BIG` over 4096 bytes
/// (cxenstored; use DIRECTORY_PART).
pub(crate) fn directory(
    view: &mut dyn View,
    caller: &Caller,
    path: &str,
    out: &mut Vec<u8>,
) -> Result<(), XsErrno> {
    readable(view, caller, path)?;
    let start = out.len();
    view.children_into(path, out);
    if out.len() - start > PAYLOAD_MAX {
        out.truncate(start);
        return Err(XsErrno::E2big);
    }
    Ok(())
}

/// DIRECTORY_PART: `<generation>\0` then the child list from byte `offset`,
/// as much as fits in a reply, plus a final `\0` when the end is reached
/// (cxenstored `send_directory_part`).
pub(crate) fn directory_part(
    view: &mut dyn View,
    caller: &Caller,
    path: &str,
    offset: u64,
    out: &mut Vec<u8>,
) -> Result<(), XsErrno> {
    readable(view, caller, path)?;
    let generation = view.generation(path).unwrap_or(0);
    let mut list = Vec::new();
    view.children_into(path, &mut list);
    let gen_text = generation.to_string();
    out.extend_from_slice(gen_text.as_bytes());
    out.push(0);
    let off = usize::try_from(offset).unwrap_or(usize::MAX);
    if off >= list.len() {
        out.push(0);
        return Ok(());
    }
    let maxlen = PAYLOAD_MAX - (gen_text.len() + 1) - 1;
    let rest = &list[off..];
    let mut len = 0;
    loop {
        let name_len = rest[len..]
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(rest.len() - len);
        if len + name_len >= maxlen {
            break;
        }
        len += name_len + 1;
        if len >= rest.len() {
            break;
        }
    }
    let len = len.min(rest.len());
    out.extend_from_slice(&rest[..len]);
    if len == rest.len() {
        out.push(0);
    }
    Ok(())
}

/// GET_PERMS.
pub(crate) fn get_perms(
    view: &mut dyn View,
    caller: &Caller,
    path: &str,
    out: &mut Vec<u8>,
) -> Result<(), XsErrno> {
    let perms = readable(view, caller, path)?;
    for p in perms {
        out.extend_from_slice(p.to_string().as_bytes());
        out.push(0);
    }
    Ok(())
}

/// SET_PERMS: needs write access and ownership; only dom0 may change the
/// owner (`EPERM`); the owner must be a known domain (`ENOENT`, cx).
pub(crate) fn set_perms(
    view: &mut dyn View,
    caller: &Caller,
    quotas: &Quotas,
    path: &str,
    perms: &[Perm],
    known: &dyn Fn(DomId) -> bool,
) -> Result<Events, XsErrno> {
    if !caller.privileged() && perms.len() > quotas.perms as usize {
        return Err(XsErrno::Enospc);
    }
    let old = match view.perms(path) {
        Some(p) => p,
        None => return Err(missing(view, caller, path, true)),
    };
    let owner = old.first().map(|p| p.domid);
    let is_owner =
        caller.privileged() || owner.is_some_and(|o| o == caller.domid || Some(o) == caller.target);
    if !caller.can_write(&old) || !is_owner {
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
    view.set_perms(path, perms);
    Ok(vec![(path.to_string(), false, perms.to_vec())])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Direct;
    use crate::tree::Tree;

    fn dom(d: u16) -> Caller {
        Caller {
            domid: DomId(d),
            target: None,
        }
    }

    fn perms(s: &str) -> Vec<Perm> {
        s.parse::<xenstore::PermList>().unwrap().entries().to_vec()
    }

    #[test]
    fn write_creates_parents_inheriting_perms() {
        let mut t = Tree::new();
        let q = Quotas::default();
        let mut v = Direct(&mut t);
        write(&mut v, &dom(0), &q, "/a", b"").unwrap();
        set_perms(&mut v, &dom(0), &q, "/a", &perms("n0 b5"), &|_| true).unwrap();
        let ev = write(&mut v, &dom(5), &q, "/a/b/c", b"v").unwrap();
        assert_eq!(ev, vec![("/a/b/c".to_string(), false, perms("n5 b5"))]);
        assert_eq!(v.perms("/a/b").unwrap(), perms("n5 b5"));
        let mut out = Vec::new();
        read(&mut v, &dom(5), "/a/b/c", &mut out).unwrap();
        assert_eq!(out, b"v");
        // dom6 can neither read nor learn what exists
        assert_eq!(
            read(&mut v, &dom(6), "/a/b/c", &mut out),
            Err(XsErrno::Eacces)
        );
        assert_eq!(
            read(&mut v, &dom(6), "/a/nope", &mut out),
            Err(XsErrno::Eacces)
        );
        assert_eq!(
            read(&mut v, &dom(0), "/a/nope", &mut out),
            Err(XsErrno::Enoent)
        );
        assert_eq!(
            write(&mut v, &dom(6), &q, "/a/x", b""),
            Err(XsErrno::Eacces)
        );
    }

    #[test]
    fn quotas_for_unprivileged_only() {
        let mut t = Tree::new();
        let q = Quotas {
            nodes: 3,
            ..Quotas::default()
        };
        let mut v = Direct(&mut t);
        write(&mut v, &dom(0), &q, "/d", b"").unwrap();
        set_perms(&mut v, &dom(0), &q, "/d", &perms("b0"), &|_| true).unwrap();
        write(&mut v, &dom(5), &q, "/d/a/b", b"").unwrap();
        write(&mut v, &dom(5), &q, "/d/c", b"").unwrap();
        assert_eq!(
            write(&mut v, &dom(5), &q, "/d/e", b""),
            Err(XsErrno::Enospc)
        );
        let big = vec![b'x'; 2049];
        assert_eq!(
            write(&mut v, &dom(5), &q, "/d/c", &big),
            Err(XsErrno::Enospc)
        );
        write(&mut v, &dom(0), &q, "/d/c", &big).unwrap();
        assert_eq!(
            set_perms(
                &mut v,
                &dom(5),
                &q,
                "/d/a",
                &perms("n5 r1 r2 r3 r4 r6"),
                &|_| true
            ),
            Err(XsErrno::Enospc)
        );
        assert_eq!(
            set_perms(&mut v, &dom(5), &q, "/d/a", &perms("n6"), &|_| true),
            Err(XsErrno::Eperm)
        );
        rm(&mut v, &dom(5), "/d/a", false).unwrap();
        write(&mut v, &dom(5), &q, "/d/e", b"").unwrap();
    }

    #[test]
    fn rm_rules() {
        let mut t = Tree::new();
        let q = Quotas::default();
        let mut v = Direct(&mut t);
        write(&mut v, &dom(0), &q, "/a/b/c", b"").unwrap();
        assert_eq!(rm(&mut v, &dom(0), "/", true), Err(XsErrno::Einval));
        assert_eq!(rm(&mut v, &dom(0), "/a/missing", true), Ok(vec![]));
        assert_eq!(
            rm(&mut v, &dom(0), "/a/missing/deeper", true),
            Err(XsErrno::Enoent)
        );
        let ev = rm(&mut v, &dom(0), "/a", true).unwrap();
        let paths: Vec<(&str, bool)> = ev.iter().map(|(p, e, _)| (p.as_str(), *e)).collect();
        assert_eq!(paths, vec![("/a", false), ("/a/b", true), ("/a/b/c", true)]);
    }

    #[test]
    fn directory_part_chunks() {
        let mut t = Tree::new();
        let q = Quotas::default();
        let mut v = Direct(&mut t);
        for i in 0..1000 {
            write(&mut v, &dom(0), &q, &format!("/d/child{i:04}"), b"").unwrap();
        }
        let mut out = Vec::new();
        assert_eq!(
            directory(&mut v, &dom(0), "/d", &mut out),
            Err(XsErrno::E2big)
        );
        let mut names = Vec::new();
        let mut off = 0u64;
        loop {
            let mut out = Vec::new();
            directory_part(&mut v, &dom(0), "/d", off, &mut out).unwrap();
            assert!(out.len() <= PAYLOAD_MAX);
            let i = out.iter().position(|&b| b == 0).unwrap();
            let body = &out[i + 1..];
            let done = body.ends_with(b"\0\0") || body == b"\0";
            for n in body.split(|&b| b == 0).filter(|n| !n.is_empty()) {
                off += n.len() as u64 + 1;
                names.push(String::from_utf8(n.to_vec()).unwrap());
            }
            if done {
                break;
            }
        }
        assert_eq!(names.len(), 1000);
        assert_eq!(names[999], "child0999");
    }
}
