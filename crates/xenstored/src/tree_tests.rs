//! Unit tests of the node tree.

use super::*;
use xenstore::Access;

fn n0() -> Vec<Perm> {
    vec![Perm::new(Access::None, DomId(0))]
}

fn names(t: &Tree, id: NodeId) -> Vec<String> {
    t.children(id)
        .map(|c| String::from_utf8(t.name(c).to_vec()).unwrap())
        .collect()
}

#[test]
fn node_stays_small() {
    assert_eq!(std::mem::size_of::<Node>(), 28);
}

#[test]
fn create_lookup_remove() {
    let mut t = Tree::new();
    assert_eq!(t.len(), 3);
    assert_eq!(
        t.lookup("/tool/xenstored").map(|i| t.path_of(i)),
        Some("/tool/xenstored".into())
    );
    let a = t.create(ROOT, b"a", b"x", &n0());
    let b = t.create(a, b"b", &[7u8; 100], &n0());
    let c = t.create(a, b"c", b"", &n0());
    assert_eq!(t.lookup("/a/b"), Some(b));
    assert_eq!(t.value(b), &[7u8; 100][..]);
    assert_eq!(t.value(a), b"x");
    assert_eq!(t.children(a).collect::<Vec<_>>(), vec![b, c]);
    let g = t.generation(a);
    t.remove(b);
    assert!(t.generation(a) > g);
    assert_eq!(t.lookup("/a/b"), None);
    assert_eq!(t.children(a).collect::<Vec<_>>(), vec![c]);
    let d = t.create(a, b"d", b"", &n0());
    assert_eq!(names(&t, a), vec!["c", "d"]);
    let e = t.create(a, b"e", b"", &n0());
    t.remove(d);
    assert_eq!(t.children(a).collect::<Vec<_>>(), vec![c, e]);
    t.remove(e);
    assert_eq!(t.children(a).collect::<Vec<_>>(), vec![c]);
    t.remove(c);
    assert_eq!(t.children(a).count(), 0);
    let d = t.create(a, b"d", b"", &n0());
    assert_eq!(t.path_of(d), "/a/d");
    t.remove(a);
    assert_eq!(t.len(), 3);
    assert_eq!(t.count_for_tests(), 3);
    assert_eq!(t.lookup("/a/c"), None);
    assert_eq!(t.owned_by(DomId(0)), 3);
    assert!(!t.is_live(a));
}

#[test]
fn walk_reports_how_far_a_path_exists() {
    let mut t = Tree::new();
    let a = t.create(ROOT, b"a", b"", &n0());
    let b = t.create(a, b"bb", b"", &n0());
    assert_eq!(
        t.walk("/a/bb"),
        Walk {
            node: Some(b),
            deepest: b,
            rest: 5
        }
    );
    assert_eq!(
        t.walk("/a/bb/c/d"),
        Walk {
            node: None,
            deepest: b,
            rest: 6
        }
    );
    assert_eq!(
        t.walk("/x"),
        Walk {
            node: None,
            deepest: ROOT,
            rest: 1
        }
    );
    assert_eq!(t.walk("/").node, Some(ROOT));
}

#[test]
fn values_change_size_and_place() {
    let mut t = Tree::new();
    let a = t.create(ROOT, b"a", b"abc", &n0());
    for v in [
        &b"abcd"[..],
        b"abcde",
        b"0123456789abcdef",
        &[9u8; 2048],
        b"",
        b"xyz",
        &[1u8; 300],
        &[2u8; 301],
    ] {
        t.set_value(a, v);
        assert_eq!(t.value(a), v);
    }
}

#[test]
fn owner_usage_follows_perms_and_values() {
    let mut t = Tree::new();
    let p5 = vec![Perm::new(Access::None, DomId(5))];
    let a = t.create(ROOT, b"a", b"", &p5);
    t.create(a, b"b", b"12345678", &p5);
    let u = t.usage(DomId(5));
    assert_eq!(u.nodes, 2);
    assert_eq!(u.bytes, node_cost(1, 0, 1) + node_cost(1, 8, 1));
    t.set_value(a, &[0u8; 100]);
    assert_eq!(
        t.usage(DomId(5)).bytes,
        node_cost(1, 100, 1) + node_cost(1, 8, 1)
    );
    t.set_perms(a, &n0());
    assert_eq!(t.owned_by(DomId(5)), 1);
    t.remove(a);
    assert_eq!(t.usage(DomId(5)), Usage::default());
    assert_eq!(t.owned_by(DomId(0)), 3);
}

#[test]
fn many_children_keep_creation_order_and_unlink_fast() {
    let mut t = Tree::new();
    let a = t.create(ROOT, b"a", b"", &n0());
    for i in 0..60_000 {
        t.create(a, i.to_string().as_bytes(), b"v", &n0());
    }
    let all = names(&t, a);
    assert_eq!(all.len(), 60_000);
    assert_eq!(all[0], "0");
    assert_eq!(all[59_999], "59999");
    assert_eq!(
        t.lookup("/a/4321").map(|i| t.value(i).to_vec()),
        Some(b"v".to_vec())
    );
    // removing each child in turn stays linear (doubly linked list)
    let before = t.work();
    for i in (0..60_000).step_by(2) {
        let id = t.lookup(&format!("/a/{i}")).unwrap();
        t.remove(id);
    }
    assert!(t.work() - before < 200_000, "{}", t.work() - before);
    assert_eq!(t.children(a).count(), 30_000);
    assert_eq!(t.subtree_size(a, usize::MAX), 30_001);
    assert_eq!(t.subtree_size(a, 1024), 1025);
}

#[test]
fn preorder_visits_a_subtree_once() {
    let mut t = Tree::new();
    let a = t.create(ROOT, b"a", b"", &n0());
    let b = t.create(a, b"b", b"", &n0());
    let c = t.create(b, b"c", b"", &n0());
    let d = t.create(a, b"d", b"", &n0());
    let e = t.create(d, b"e", b"", &n0());
    let mut seen = vec![a];
    let mut cur = a;
    while let Some(n) = t.next_preorder(a, cur) {
        seen.push(n);
        cur = n;
    }
    assert_eq!(seen, vec![a, b, c, d, e]);
    assert_eq!(t.next_preorder(b, c), None);
    t.remove(a);
    assert_eq!(t.len(), 3);
    // freed slots are reused
    let x = t.create(ROOT, b"x", b"", &n0());
    assert!([a, b, c, d, e].contains(&x));
}
