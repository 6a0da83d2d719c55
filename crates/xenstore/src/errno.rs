//! Xenstore error names as carried on the wire (`xs_wire.h` `xsd_errors`).

use std::fmt;
use std::str::FromStr;

/// An error name from `xs_wire.h` (plus `EQUOTA`, which oxenstored sends).
///
/// On the wire an `ERROR` reply carries the name plus NUL, e.g. `ENOENT\0`.
/// This is the only place names and variants are converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum XsErrno {
    /// Invalid argument (bad path, bad arguments, missing NUL).
    Einval,
    /// Permission denied.
    Eacces,
    /// Already exists (duplicate watch).
    Eexist,
    /// Is a directory.
    Eisdir,
    /// No such node, transaction or watch.
    Enoent,
    /// Out of memory.
    Enomem,
    /// Out of space (cxenstored's quota error).
    Enospc,
    /// Input/output error (catch-all).
    Eio,
    /// Directory not empty.
    Enotempty,
    /// Function not implemented (unknown message type).
    Enosys,
    /// Read-only.
    Erofs,
    /// Busy (transaction started inside a transaction).
    Ebusy,
    /// Try again (transaction conflict).
    Eagain,
    /// Already connected.
    Eisconn,
    /// Too big (payload, value, watch quota in cxenstored).
    E2big,
    /// Not permitted (changing a node's owner as non-dom0).
    Eperm,
    /// Quota exceeded (oxenstored only).
    Equota,
}

impl XsErrno {
    /// All variants, in `xs_wire.h` order (`EQUOTA` last).
    pub const ALL: [XsErrno; 17] = [
        XsErrno::Einval,
        XsErrno::Eacces,
        XsErrno::Eexist,
        XsErrno::Eisdir,
        XsErrno::Enoent,
        XsErrno::Enomem,
        XsErrno::Enospc,
        XsErrno::Eio,
        XsErrno::Enotempty,
        XsErrno::Enosys,
        XsErrno::Erofs,
        XsErrno::Ebusy,
        XsErrno::Eagain,
        XsErrno::Eisconn,
        XsErrno::E2big,
        XsErrno::Eperm,
        XsErrno::Equota,
    ];

    /// The wire name, e.g. `"ENOENT"`.
    pub fn name(self) -> &'static str {
        match self {
            XsErrno::Einval => "EINVAL",
            XsErrno::Eacces => "EACCES",
            XsErrno::Eexist => "EEXIST",
            XsErrno::Eisdir => "EISDIR",
            XsErrno::Enoent => "ENOENT",
            XsErrno::Enomem => "ENOMEM",
            XsErrno::Enospc => "ENOSPC",
            XsErrno::Eio => "EIO",
            XsErrno::Enotempty => "ENOTEMPTY",
            XsErrno::Enosys => "ENOSYS",
            XsErrno::Erofs => "EROFS",
            XsErrno::Ebusy => "EBUSY",
            XsErrno::Eagain => "EAGAIN",
            XsErrno::Eisconn => "EISCONN",
            XsErrno::E2big => "E2BIG",
            XsErrno::Eperm => "EPERM",
            XsErrno::Equota => "EQUOTA",
        }
    }

    /// What the error means, in words, for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            XsErrno::Einval => "invalid argument",
            XsErrno::Eacces => "permission denied",
            XsErrno::Eexist => "already exists",
            XsErrno::Eisdir => "is a directory",
            XsErrno::Enoent => "no such node",
            XsErrno::Enomem => "out of memory",
            XsErrno::Enospc => "quota exceeded",
            XsErrno::Eio => "input/output error",
            XsErrno::Enotempty => "directory not empty",
            XsErrno::Enosys => "not implemented",
            XsErrno::Erofs => "read-only",
            XsErrno::Ebusy => "busy",
            XsErrno::Eagain => "conflict, try again",
            XsErrno::Eisconn => "already connected",
            XsErrno::E2big => "too big",
            XsErrno::Eperm => "operation not permitted",
            XsErrno::Equota => "quota exceeded",
        }
    }

    /// Parse a wire name (without the trailing NUL).
    pub fn from_name(name: &str) -> Option<XsErrno> {
        XsErrno::ALL.into_iter().find(|e| e.name() == name)
    }
}

impl fmt::Display for XsErrno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.describe())
    }
}

impl FromStr for XsErrno {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        XsErrno::from_name(s).ok_or(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for e in XsErrno::ALL {
            assert_eq!(XsErrno::from_name(e.name()), Some(e));
        }
        assert_eq!(XsErrno::from_name("EWHAT"), None);
    }
}
