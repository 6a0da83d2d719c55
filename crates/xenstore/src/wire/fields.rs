//! Payload fields: NUL-separated strings and decimal numbers
//! (`docs/misc/xenstore.txt`, "Message format").

use crate::DomId;

/// Split a NUL-separated payload into its strings. A payload must end with
/// NUL (every field is terminated); the trailing empty piece is dropped.
pub(super) fn split_fields(p: &[u8]) -> Option<Vec<&[u8]>> {
    if p.last() != Some(&0) {
        return None;
    }
    Some(p[..p.len() - 1].split(|&b| b == 0).collect())
}

pub(super) fn utf8(b: &[u8]) -> Option<String> {
    std::str::from_utf8(b).ok().map(str::to_string)
}

pub(super) fn dec_u64(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 20 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

pub(super) fn dec_domid(b: &[u8]) -> Option<DomId> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

pub(super) fn with_nul(s: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(s.len() + 1);
    v.extend_from_slice(s.as_bytes());
    v.push(0);
    v
}

pub(super) fn fields_nul(fields: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::new();
    for f in fields {
        v.extend_from_slice(f);
        v.push(0);
    }
    v
}
