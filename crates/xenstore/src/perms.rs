//! Node permissions (docs/misc/xenstore.txt "Permissions"; `xs_strings_to_perms`).
//!
//! A list of entries `<letter><domid>`: `n` none, `r` read, `w` write, `b`
//! both. The first entry names the owner, and its letter is the access of
//! every domain not listed later.

use std::fmt;
use std::str::FromStr;

use crate::DomId;

/// Access granted by one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// `n`: no access.
    None,
    /// `r`: read.
    Read,
    /// `w`: write.
    Write,
    /// `b`: read and write.
    Both,
}

impl Access {
    /// The wire letter.
    pub fn letter(self) -> char {
        match self {
            Access::None => 'n',
            Access::Read => 'r',
            Access::Write => 'w',
            Access::Both => 'b',
        }
    }

    /// Parse a wire letter.
    pub fn from_letter(c: char) -> Option<Access> {
        match c {
            'n' => Some(Access::None),
            'r' => Some(Access::Read),
            'w' => Some(Access::Write),
            'b' => Some(Access::Both),
            _ => None,
        }
    }

    /// True if this grants reading.
    pub fn can_read(self) -> bool {
        matches!(self, Access::Read | Access::Both)
    }

    /// True if this grants writing.
    pub fn can_write(self) -> bool {
        matches!(self, Access::Write | Access::Both)
    }
}

/// One permission entry, e.g. `r5`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Perm {
    /// What is granted.
    pub access: Access,
    /// To whom (for the first entry: the owner).
    pub domid: DomId,
}

impl Perm {
    /// Build an entry.
    pub fn new(access: Access, domid: DomId) -> Perm {
        Perm { access, domid }
    }
}

impl fmt::Display for Perm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.access.letter(), self.domid.0)
    }
}

/// Error parsing a permission entry or list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PermError {
    /// Empty list.
    #[error("empty permission list (the first entry names the owner, e.g. n0)")]
    Empty,
    /// Bad entry text.
    #[error("invalid permission {0:?}: expected n|r|w|b followed by a domain id, e.g. r5")]
    BadEntry(String),
}

impl FromStr for Perm {
    type Err = PermError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut chars = s.chars();
        let access = chars
            .next()
            .and_then(Access::from_letter)
            .ok_or_else(|| PermError::BadEntry(s.to_string()))?;
        let domid = chars
            .as_str()
            .parse::<DomId>()
            .map_err(|_| PermError::BadEntry(s.to_string()))?;
        Ok(Perm { access, domid })
    }
}

/// A non-empty permission list; the first entry is the owner.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PermList(Vec<Perm>);

impl PermList {
    /// Build from entries (must not be empty).
    pub fn new(entries: Vec<Perm>) -> Result<PermList, PermError> {
        if entries.is_empty() {
            return Err(PermError::Empty);
        }
        Ok(PermList(entries))
    }

    /// `owner` with `default` access for everyone else, no ACL entries.
    pub fn owned_by(owner: DomId, default: Access) -> PermList {
        PermList(vec![Perm::new(default, owner)])
    }

    /// Append an ACL entry (builder style).
    pub fn with(mut self, access: Access, domid: DomId) -> PermList {
        self.0.push(Perm::new(access, domid));
        self
    }

    /// The owner domain.
    pub fn owner(&self) -> DomId {
        self.0[0].domid
    }

    /// Access for domains not named in the ACL.
    pub fn default_access(&self) -> Access {
        self.0[0].access
    }

    /// All entries, owner first.
    pub fn entries(&self) -> &[Perm] {
        &self.0
    }

    /// Access of `dom` by the list alone (the caller handles privilege and
    /// targets): owner → both; first ACL entry naming `dom`; else the default.
    pub fn access_of(&self, dom: DomId) -> Access {
        if dom == self.owner() {
            return Access::Both;
        }
        self.0[1..]
            .iter()
            .find(|p| p.domid == dom)
            .map(|p| p.access)
            .unwrap_or(self.default_access())
    }

    /// Parse from wire strings (`["n0", "r5"]`).
    pub fn parse_strs<'a>(items: impl IntoIterator<Item = &'a str>) -> Result<PermList, PermError> {
        let v = items
            .into_iter()
            .map(str::parse)
            .collect::<Result<Vec<Perm>, _>>()?;
        PermList::new(v)
    }

    /// Wire form: each entry followed by NUL.
    pub fn to_wire(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for p in &self.0 {
            out.extend_from_slice(p.to_string().as_bytes());
            out.push(0);
        }
        out
    }
}

impl fmt::Display for PermList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl FromStr for PermList {
    type Err = PermError;
    /// Space- or comma-separated entries, e.g. `"n0 r5"` or `"n0,r5"`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PermList::parse_strs(s.split([' ', ',']).filter(|x| !x.is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_access() {
        let p: PermList = "n0 r5 w6 b7".parse().unwrap();
        assert_eq!(p.owner(), DomId(0));
        assert_eq!(p.access_of(DomId(0)), Access::Both);
        assert_eq!(p.access_of(DomId(5)), Access::Read);
        assert_eq!(p.access_of(DomId(6)), Access::Write);
        assert_eq!(p.access_of(DomId(7)), Access::Both);
        assert_eq!(p.access_of(DomId(8)), Access::None);
        assert_eq!(p.to_string(), "n0 r5 w6 b7");
        assert_eq!(p.to_wire(), b"n0\0r5\0w6\0b7\0");
    }

    #[test]
    fn rejects_bad_entries() {
        assert_eq!("".parse::<PermList>(), Err(PermError::Empty));
        assert!("x0".parse::<PermList>().is_err());
        assert!("r".parse::<PermList>().is_err());
        assert!("r-1".parse::<PermList>().is_err());
        assert!("r70000".parse::<PermList>().is_err());
    }
}
