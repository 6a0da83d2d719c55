//! Xenstore path rules (docs/misc/xenstore.txt, cxenstored `is_valid_nodename`).
//!
//! * Absolute paths start with `/`; `/` alone is the root.
//! * Allowed characters: `A-Z a-z 0-9 - _ @` and `/` as separator; no `//`,
//!   no trailing `/`, not empty.
//! * Relative paths are relative to `/local/domain/<caller>/`.
//! * Paths starting with `@` are special watch names (`@introduceDomain`,
//!   `@releaseDomain`), never nodes.
//! * Length: the part after `/local/domain/<id>/` (or the whole path
//!   otherwise) may be at most [`REL_PATH_MAX`] (cxenstored `-M`, default
//!   2048); an absolute path at most [`ABS_PATH_MAX`] (`xs_wire.h`).

use crate::DomId;

/// `XENSTORE_ABS_PATH_MAX` (xs_wire.h).
pub const ABS_PATH_MAX: usize = 3072;
/// `XENSTORE_REL_PATH_MAX` (xs_wire.h); also cxenstored's default `-M`.
pub const REL_PATH_MAX: usize = 2048;

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathProblem {
    /// The empty string.
    Empty,
    /// A character outside `A-Z a-z 0-9 - _ @ /`.
    BadChar(u8),
    /// Two `/` in a row.
    DoubleSlash,
    /// Ends in `/` (other than the root itself).
    TrailingSlash,
    /// Longer than the limit.
    TooLong {
        /// Length that was checked.
        len: usize,
        /// The limit.
        max: usize,
    },
}

impl std::fmt::Display for PathProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathProblem::Empty => f.write_str("empty path"),
            PathProblem::BadChar(c) if c.is_ascii_graphic() => {
                write!(
                    f,
                    "character {:?} not allowed (use A-Z a-z 0-9 - _ @ /)",
                    *c as char
                )
            }
            PathProblem::BadChar(c) => {
                write!(f, "byte 0x{c:02x} not allowed (use A-Z a-z 0-9 - _ @ /)")
            }
            PathProblem::DoubleSlash => f.write_str("empty path component (\"//\")"),
            PathProblem::TrailingSlash => f.write_str("trailing \"/\""),
            PathProblem::TooLong { len, max } => {
                write!(f, "path too long ({len} characters, limit {max})")
            }
        }
    }
}

fn valid_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'@' | b'/')
}

/// True if `path` names a special watch node (`@...`).
pub fn is_special(path: &str) -> bool {
    path.starts_with('@')
}

/// True if `path` is absolute.
pub fn is_absolute(path: &str) -> bool {
    path.starts_with('/')
}

/// Check the characters and slashes of a path (absolute, relative or
/// special), without length limits.
pub fn check_syntax(path: &str) -> Result<(), PathProblem> {
    let b = path.as_bytes();
    if b.is_empty() {
        return Err(PathProblem::Empty);
    }
    if let Some(&c) = b.iter().find(|&&c| !valid_char(c)) {
        return Err(PathProblem::BadChar(c));
    }
    if path == "/" {
        return Ok(());
    }
    if path.contains("//") {
        return Err(PathProblem::DoubleSlash);
    }
    if path.ends_with('/') {
        return Err(PathProblem::TrailingSlash);
    }
    Ok(())
}

/// Length of the part of an absolute path that counts against the relative
/// limit: what follows `/local/domain/<id>/`, or the whole path otherwise
/// (cxenstored `is_valid_nodename`).
pub fn counted_len(abs: &str) -> usize {
    if let Some(rest) = abs.strip_prefix("/local/domain/") {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 {
            if let Some(tail) = rest[digits..].strip_prefix('/') {
                return tail.len();
            }
        }
    }
    abs.len()
}

/// Resolve `path` as the domain `caller` would mean it: absolute and special
/// paths unchanged, relative ones under `/local/domain/<caller>/`; then check
/// syntax and lengths (`rel_max` is the relative-part limit, normally
/// [`REL_PATH_MAX`]).
pub fn resolve(path: &str, caller: DomId, rel_max: usize) -> Result<String, PathProblem> {
    check_syntax(path)?;
    let abs = if is_absolute(path) || is_special(path) {
        path.to_string()
    } else {
        format!("/local/domain/{}/{}", caller.0, path)
    };
    if abs.len() > ABS_PATH_MAX {
        return Err(PathProblem::TooLong {
            len: abs.len(),
            max: ABS_PATH_MAX,
        });
    }
    let n = counted_len(&abs);
    if n > rel_max {
        return Err(PathProblem::TooLong {
            len: n,
            max: rel_max,
        });
    }
    Ok(abs)
}

/// Inverse of [`resolve`] for watch events: if the watch was registered with
/// a relative path, the event path is shown relative to the caller's home.
pub fn relative_to(abs: &str, caller: DomId) -> Option<&str> {
    let home = format!("/local/domain/{}/", caller.0);
    abs.strip_prefix(home.as_str())
}

/// The parent of an absolute path (`None` for `/`).
pub fn parent(abs: &str) -> Option<&str> {
    if abs == "/" {
        return None;
    }
    match abs.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&abs[..i]),
        None => None,
    }
}

/// The last component of an absolute path (`""` for `/`).
pub fn basename(abs: &str) -> &str {
    abs.rsplit('/').next().unwrap_or("")
}

/// `base/child` for an absolute `base` (handles the root).
pub fn join(base: &str, child: &str) -> String {
    if base == "/" {
        format!("/{child}")
    } else {
        format!("{base}/{child}")
    }
}

/// True if `ancestor` equals `path` or is one of its ancestors
/// (the watch-matching rule: `/` matches everything).
pub fn is_prefix_of(ancestor: &str, path: &str) -> bool {
    if ancestor == "/" {
        return path.starts_with('/');
    }
    match path.strip_prefix(ancestor) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_rules() {
        assert!(check_syntax("/").is_ok());
        assert!(check_syntax("/a/b-c_d@e").is_ok());
        assert!(check_syntax("rel/x").is_ok());
        assert!(check_syntax("@releaseDomain").is_ok());
        assert_eq!(check_syntax(""), Err(PathProblem::Empty));
        assert_eq!(check_syntax("/a//b"), Err(PathProblem::DoubleSlash));
        assert_eq!(check_syntax("/a/"), Err(PathProblem::TrailingSlash));
        assert_eq!(check_syntax("/a.b"), Err(PathProblem::BadChar(b'.')));
        assert_eq!(check_syntax("/a b"), Err(PathProblem::BadChar(b' ')));
    }

    #[test]
    fn resolve_relative_and_limits() {
        assert_eq!(
            resolve("foo", DomId(5), REL_PATH_MAX).unwrap(),
            "/local/domain/5/foo"
        );
        assert_eq!(resolve("/x", DomId(5), REL_PATH_MAX).unwrap(), "/x");
        let ok = format!("/{}", "a".repeat(2047));
        assert!(resolve(&ok, DomId(0), REL_PATH_MAX).is_ok());
        let bad = format!("/{}", "a".repeat(2048));
        assert!(matches!(
            resolve(&bad, DomId(0), REL_PATH_MAX),
            Err(PathProblem::TooLong {
                len: 2049,
                max: 2048
            })
        ));
        // under a domain's home only the tail counts
        let tail = "a".repeat(2048);
        assert!(resolve(&format!("/local/domain/3/{tail}"), DomId(0), REL_PATH_MAX).is_ok());
        assert!(resolve(&tail, DomId(3), REL_PATH_MAX).is_ok());
    }

    #[test]
    fn helpers() {
        assert_eq!(parent("/a/b"), Some("/a"));
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/"), None);
        assert_eq!(basename("/a/b"), "b");
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
        assert!(is_prefix_of("/", "/a"));
        assert!(is_prefix_of("/a", "/a"));
        assert!(is_prefix_of("/a", "/a/b"));
        assert!(!is_prefix_of("/a", "/ab"));
        assert_eq!(relative_to("/local/domain/4/x/y", DomId(4)), Some("x/y"));
        assert_eq!(relative_to("/local/domain/40/x", DomId(4)), None);
    }
}
