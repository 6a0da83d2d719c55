//! Unit tests of the node operations, on the live tree and in a
//! transaction.

use super::*;
use crate::store::Direct;
use crate::transaction::{Transaction, TxView};
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

fn rd<V: View>(v: &mut V, c: &Caller, p: &str) -> Result<Vec<u8>, XsErrno> {
    let mut out = Vec::new();
    read(v, c, p, &mut out).map(|()| out)
}

fn no_watches() -> WatchIndex {
    WatchIndex::default()
}

#[test]
fn write_creates_parents_inheriting_perms() {
    let mut t = Tree::new();
    let q = Quotas::default();
    let mut v = Direct::unlimited(&mut t);
    write(&mut v, &dom(0), &q, "/a", b"").unwrap();
    set_perms(&mut v, &dom(0), &q, "/a", &perms("n0 b5"), &|_| true).unwrap();
    let h = write(&mut v, &dom(5), &q, "/a/b/c", b"v").unwrap();
    assert_eq!(v.perms(h), perms("n5 b5"));
    let b = v.walk("/a/b").node.unwrap();
    assert_eq!(v.perms(b), perms("n5 b5"));
    assert_eq!(rd(&mut v, &dom(5), "/a/b/c").unwrap(), b"v");
    // dom6 can neither read nor learn what exists
    assert_eq!(rd(&mut v, &dom(6), "/a/b/c"), Err(XsErrno::Eacces));
    assert_eq!(rd(&mut v, &dom(6), "/a/nope"), Err(XsErrno::Eacces));
    assert_eq!(rd(&mut v, &dom(0), "/a/nope"), Err(XsErrno::Enoent));
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
    let mut v = Direct::unlimited(&mut t);
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
    let mut ev = Vec::new();
    rm(&mut v, &dom(5), "/d/a", &no_watches(), &mut ev).unwrap();
    write(&mut v, &dom(5), &q, "/d/e", b"").unwrap();
}

#[test]
fn memory_quota_refuses_with_enomem_and_changes_nothing() {
    let mut t = Tree::new();
    let q = Quotas::default();
    {
        let mut v = Direct::unlimited(&mut t);
        write(&mut v, &dom(0), &q, "/d", b"").unwrap();
        set_perms(&mut v, &dom(0), &q, "/d", &perms("b0"), &|_| true).unwrap();
    }
    let mut v = Direct {
        tree: &mut t,
        budget: 1000,
    };
    assert_eq!(
        write(&mut v, &dom(5), &q, "/d/big", &[1u8; 1500]),
        Err(XsErrno::Enomem)
    );
    assert!(v.walk("/d/big").node.is_none());
    write(&mut v, &dom(5), &q, "/d/small", &[1u8; 500]).unwrap();
    assert_eq!(
        write(&mut v, &dom(5), &q, "/d/small", &[1u8; 1000]),
        Err(XsErrno::Enomem)
    );
    assert_eq!(rd(&mut v, &dom(5), "/d/small").unwrap().len(), 500);
}

#[test]
fn rm_rules() {
    let mut t = Tree::new();
    let q = Quotas::default();
    let mut v = Direct::unlimited(&mut t);
    let w = no_watches();
    let mut ev = Vec::new();
    write(&mut v, &dom(0), &q, "/a/b/c", b"").unwrap();
    assert_eq!(rm(&mut v, &dom(0), "/", &w, &mut ev), Err(XsErrno::Einval));
    assert_eq!(rm(&mut v, &dom(0), "/a/missing", &w, &mut ev), Ok(()));
    assert_eq!(
        rm(&mut v, &dom(0), "/a/missing/deeper", &w, &mut ev),
        Err(XsErrno::Enoent)
    );
    assert!(ev.is_empty());
    rm(&mut v, &dom(0), "/a", &w, &mut ev).unwrap();
    let paths: Vec<(&str, bool)> = ev.iter().map(|(p, e, _)| (p.as_str(), *e)).collect();
    assert_eq!(paths, vec![("/a", false)]);
    // with watches on descendants, those get exact events, in pre-order
    write(&mut v, &dom(0), &q, "/a/b/c", b"").unwrap();
    write(&mut v, &dom(0), &q, "/a/x", b"").unwrap();
    let mut w = no_watches();
    for p in ["/a/b/c", "/a/x", "/a/nothere"] {
        w.add(
            p,
            crate::watch::Watcher {
                conn: crate::ConnId(1),
                token: "t".into(),
                relative: false,
            },
        );
    }
    ev.clear();
    rm(&mut v, &dom(0), "/a", &w, &mut ev).unwrap();
    let paths: Vec<(&str, bool)> = ev.iter().map(|(p, e, _)| (p.as_str(), *e)).collect();
    assert_eq!(paths, vec![("/a", false), ("/a/b/c", true), ("/a/x", true)]);
}

#[test]
fn directory_part_chunks_and_directory_is_bounded() {
    let mut t = Tree::new();
    let q = Quotas::default();
    let mut v = Direct::unlimited(&mut t);
    for i in 0..20_000 {
        write(&mut v, &dom(0), &q, &format!("/d/child{i:05}"), b"").unwrap();
    }
    let before = v.tree.work();
    let mut out = Vec::new();
    assert_eq!(
        directory(&mut v, &dom(0), "/d", &mut out),
        Err(XsErrno::E2big)
    );
    assert!(out.is_empty());
    assert!(
        v.tree.work() - before < 1000,
        "DIRECTORY walked {} children",
        v.tree.work() - before
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
    assert_eq!(names.len(), 20_000);
    assert_eq!(names[19_999], "child19999");
    // far offsets into an unchanged big directory cost one chunk, not a
    // walk over the children before it
    let before = v.tree.work();
    for _ in 0..10 {
        let mut out = Vec::new();
        directory_part(&mut v, &dom(0), "/d", 200_000, &mut out).unwrap();
        assert!(out.len() > 4000);
    }
    assert!(
        (v.tree.work() - before) / 10 < 2_000,
        "{} per far DIRECTORY_PART",
        (v.tree.work() - before) / 10
    );
    // a changed directory is indexed again, and still listed right
    write(&mut v, &dom(0), &q, "/d/zz", b"").unwrap();
    let mut out = Vec::new();
    directory_part(&mut v, &dom(0), "/d", 219_989, &mut out).unwrap();
    assert!(
        out.ends_with(b"child19999\0zz\0\0"),
        "{:?}",
        String::from_utf8_lossy(&out)
    );
    // an offset inside a name starts with the rest of it (as cx)
    let mut out = Vec::new();
    directory_part(&mut v, &dom(0), "/d", 3, &mut out).unwrap();
    let i = out.iter().position(|&b| b == 0).unwrap();
    assert!(out[i + 1..].starts_with(b"ld00000\0child00001\0"));
    // past the end: generation and an empty string
    let mut out = Vec::new();
    directory_part(&mut v, &dom(0), "/d", 1 << 40, &mut out).unwrap();
    assert!(out.ends_with(b"\0\0"));
}

#[test]
fn deep_paths_cost_linear_work() {
    let mut t = Tree::new();
    let q = Quotas::default();
    let mut v = Direct::unlimited(&mut t);
    let deep = "/d".repeat(1000);
    let before = v.tree.work();
    write(&mut v, &dom(0), &q, &deep, b"x").unwrap();
    let first = v.tree.work() - before;
    let before = v.tree.work();
    for _ in 0..10 {
        write(&mut v, &dom(0), &q, &deep, b"y").unwrap();
    }
    let per = (v.tree.work() - before) / 10;
    assert!(
        first < 3_000 && per < 1_500,
        "create {first}, rewrite {per}"
    );
}

fn tx_view<'a>(t: &'a Tree, tx: &'a mut Transaction) -> TxView<'a> {
    TxView {
        tree: t,
        tx,
        limit: 1024,
        budget: u64::MAX,
    }
}

#[test]
fn transaction_sees_own_writes_and_commits_in_order() {
    let mut t = Tree::new();
    let q = Quotas::default();
    write(&mut Direct::unlimited(&mut t), &dom(0), &q, "/a", b"1").unwrap();
    let mut tx = Transaction::default();
    {
        let mut v = tx_view(&t, &mut tx);
        write(&mut v, &dom(0), &q, "/a", b"2").unwrap();
        for c in ["x", "y", "a", "q"] {
            write(&mut v, &dom(0), &q, &format!("/a/{c}"), c.as_bytes()).unwrap();
        }
        write(&mut v, &dom(0), &q, "/a/q/deep/er", b"d").unwrap();
        assert_eq!(rd(&mut v, &dom(0), "/a").unwrap(), b"2");
        assert_eq!(rd(&mut v, &dom(0), "/a/q/deep/er").unwrap(), b"d");
        let mut out = Vec::new();
        directory(&mut v, &dom(0), "/a", &mut out).unwrap();
        assert_eq!(out, b"x\0y\0a\0q\0");
    }
    assert_eq!(
        rd(&mut Direct::unlimited(&mut t), &dom(0), "/a").unwrap(),
        b"1"
    );
    tx.commit(&mut t, &no_watches()).unwrap();
    let mut v = Direct::unlimited(&mut t);
    assert_eq!(rd(&mut v, &dom(0), "/a").unwrap(), b"2");
    assert_eq!(rd(&mut v, &dom(0), "/a/q/deep/er").unwrap(), b"d");
    let mut out = Vec::new();
    directory(&mut v, &dom(0), "/a", &mut out).unwrap();
    assert_eq!(out, b"x\0y\0a\0q\0");
}

#[test]
fn transaction_conflicts_only_on_touched_nodes() {
    let mut t = Tree::new();
    let q = Quotas::default();
    write(&mut Direct::unlimited(&mut t), &dom(0), &q, "/a", b"1").unwrap();
    write(&mut Direct::unlimited(&mut t), &dom(0), &q, "/u", b"1").unwrap();
    let mut tx = Transaction::default();
    rd(&mut tx_view(&t, &mut tx), &dom(0), "/a").unwrap();
    write(&mut tx_view(&t, &mut tx), &dom(0), &q, "/a", b"mine").unwrap();
    write(&mut Direct::unlimited(&mut t), &dom(0), &q, "/u", b"2").unwrap();
    assert!(tx.commit(&mut t, &no_watches()).is_ok());
    // an outside write to a node the transaction read: EAGAIN, no change
    let mut tx = Transaction::default();
    rd(&mut tx_view(&t, &mut tx), &dom(0), "/a").unwrap();
    write(&mut tx_view(&t, &mut tx), &dom(0), &q, "/u", b"tx").unwrap();
    write(&mut Direct::unlimited(&mut t), &dom(0), &q, "/a", b"other").unwrap();
    assert_eq!(
        tx.commit(&mut t, &no_watches()).unwrap_err(),
        XsErrno::Eagain
    );
    assert_eq!(
        rd(&mut Direct::unlimited(&mut t), &dom(0), "/u").unwrap(),
        b"2"
    );
    // reads see the snapshot of first access
    let mut tx = Transaction::default();
    assert_eq!(
        rd(&mut tx_view(&t, &mut tx), &dom(0), "/a").unwrap(),
        b"other"
    );
    write(&mut Direct::unlimited(&mut t), &dom(0), &q, "/a", b"later").unwrap();
    assert_eq!(
        rd(&mut tx_view(&t, &mut tx), &dom(0), "/a").unwrap(),
        b"other"
    );
    assert_eq!(
        tx.commit(&mut t, &no_watches()).unwrap_err(),
        XsErrno::Eagain
    );
    // a node read as absent and created outside conflicts
    let mut tx = Transaction::default();
    assert_eq!(
        rd(&mut tx_view(&t, &mut tx), &dom(0), "/new/x"),
        Err(XsErrno::Enoent)
    );
    write(&mut Direct::unlimited(&mut t), &dom(0), &q, "/new", b"").unwrap();
    assert_eq!(
        tx.commit(&mut t, &no_watches()).unwrap_err(),
        XsErrno::Eagain
    );
}

#[test]
fn creating_siblings_in_two_transactions_conflicts() {
    let mut t = Tree::new();
    let q = Quotas::default();
    write(&mut Direct::unlimited(&mut t), &dom(0), &q, "/p", b"").unwrap();
    let mut t1 = Transaction::default();
    let mut t2 = Transaction::default();
    write(&mut tx_view(&t, &mut t1), &dom(0), &q, "/p/a", b"").unwrap();
    write(&mut tx_view(&t, &mut t2), &dom(0), &q, "/p/b", b"").unwrap();
    assert!(t1.commit(&mut t, &no_watches()).is_ok());
    assert_eq!(
        t2.commit(&mut t, &no_watches()).unwrap_err(),
        XsErrno::Eagain
    );
}

#[test]
fn remove_then_recreate_inside_transaction() {
    let mut t = Tree::new();
    let q = Quotas::default();
    write(&mut Direct::unlimited(&mut t), &dom(0), &q, "/a", b"old").unwrap();
    write(&mut Direct::unlimited(&mut t), &dom(0), &q, "/a/x", b"").unwrap();
    let mut tx = Transaction::default();
    let w = no_watches();
    {
        let mut v = tx_view(&t, &mut tx);
        let mut ev = Vec::new();
        rm(&mut v, &dom(0), "/a", &w, &mut ev).unwrap();
        assert_eq!(rd(&mut v, &dom(0), "/a/x"), Err(XsErrno::Enoent));
        write(&mut v, &dom(0), &q, "/a", b"").unwrap();
        write(&mut v, &dom(0), &q, "/a/b", b"new").unwrap();
        let mut out = Vec::new();
        directory(&mut v, &dom(0), "/a", &mut out).unwrap();
        assert_eq!(out, b"b\0");
    }
    tx.commit(&mut t, &w).unwrap();
    assert!(t.lookup("/a/x").is_none());
    let mut v = Direct::unlimited(&mut t);
    assert_eq!(rd(&mut v, &dom(0), "/a/b").unwrap(), b"new");
    assert_eq!(rd(&mut v, &dom(0), "/a").unwrap(), b"");
}

#[test]
fn rm_in_a_transaction_obeys_the_node_limit() {
    let mut t = Tree::new();
    let q = Quotas::default();
    {
        let mut v = Direct::unlimited(&mut t);
        write(&mut v, &dom(0), &q, "/g", b"").unwrap();
        set_perms(&mut v, &dom(0), &q, "/g", &perms("n5"), &|_| true).unwrap();
        for i in 0..3000 {
            write(
                &mut v,
                &dom(0),
                &q,
                &format!("/g/{}/{}", i / 100, i % 100),
                b"v",
            )
            .unwrap();
        }
    }
    let mut ev = Vec::new();
    let mut tx = Transaction::default();
    let before = t.work();
    assert_eq!(
        rm(
            &mut tx_view(&t, &mut tx),
            &dom(5),
            "/g",
            &no_watches(),
            &mut ev
        ),
        Err(XsErrno::Enospc)
    );
    assert!(t.work() - before < 5_000, "counted past the limit");
    assert!(
        tx.touched() <= 2,
        "a refused RM records nothing but its root"
    );
    assert!(ev.is_empty());
    // a subtree that fits is removed at commit
    let mut tx = Transaction::default();
    rm(
        &mut tx_view(&t, &mut tx),
        &dom(5),
        "/g/3",
        &no_watches(),
        &mut ev,
    )
    .unwrap();
    assert_eq!(ev.len(), 1);
    tx.commit(&mut t, &no_watches()).unwrap();
    assert!(t.lookup("/g/3").is_none());
    assert!(t.lookup("/g/4/7").is_some());
    // /g, 30 directories, 3000 leaves, all owned by dom5; /g/3 held 101
    assert_eq!(t.owned_by(DomId(5)), 3031 - 101);
}

#[test]
fn transaction_memory_is_charged_and_capped() {
    let mut t = Tree::new();
    let q = Quotas::default();
    {
        let mut v = Direct::unlimited(&mut t);
        write(&mut v, &dom(0), &q, "/g", b"").unwrap();
        set_perms(&mut v, &dom(0), &q, "/g", &perms("n5"), &|_| true).unwrap();
    }
    let mut tx = Transaction::default();
    let mut v = TxView {
        tree: &t,
        tx: &mut tx,
        limit: 1024,
        budget: 10_000,
    };
    let mut made = 0;
    loop {
        match write(&mut v, &dom(5), &q, &format!("/g/{made}"), &[7u8; 1000]) {
            Ok(_) => made += 1,
            Err(e) => {
                assert_eq!(e, XsErrno::Enomem);
                break;
            }
        }
        assert!(made < 100);
    }
    assert!((5..=10).contains(&made), "{made}");
    assert!(tx.mem <= 10_000);
}
