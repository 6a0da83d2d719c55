//! Zero-copy decoding of the frequent requests, and path resolution into a
//! reused buffer.
//!
//! [`xenstore::wire::Request::decode`] owns its strings: two allocations
//! per WRITE before any work is done, a fifth of the instructions of a
//! simple request. The node operations and watches are decoded here in
//! place, with exactly `Request::decode`'s rules (`split_fields`: the
//! payload ends with NUL, fields are NUL-separated, text must be UTF-8;
//! malformed → `EINVAL`); every other type goes through `Request::decode`.
//! The property test at the bottom checks both agree on every input.

use xenstore::wire::{MsgType, Request};
use xenstore::{DomId, XsErrno, path};

/// A decoded request; node and watch requests borrow the payload.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Req<'a> {
    Read(&'a str),
    Directory(&'a str),
    DirectoryPart(&'a str, u64),
    GetPerms(&'a str),
    Mkdir(&'a str),
    Rm(&'a str),
    Write(&'a str, &'a [u8]),
    Watch(&'a str, &'a str),
    Unwatch(&'a str, &'a str),
    /// Anything else, decoded by the codec.
    Owned(Request),
}

/// The NUL-terminated fields of a payload (the last must end with NUL).
fn fields<const N: usize>(p: &[u8]) -> Option<[&[u8]; N]> {
    let (&last, body) = p.split_last()?;
    if last != 0 {
        return None;
    }
    let mut out = [&b""[..]; N];
    let mut it = body.split(|&b| b == 0);
    for slot in &mut out {
        *slot = it.next()?;
    }
    it.next().is_none().then_some(out)
}

fn text(b: &[u8]) -> Result<&str, XsErrno> {
    std::str::from_utf8(b).map_err(|_| XsErrno::Einval)
}

fn one(p: &[u8]) -> Result<&str, XsErrno> {
    let [f] = fields::<1>(p).ok_or(XsErrno::Einval)?;
    text(f)
}

/// Decimal as `Request::decode` reads an offset: digits only, at most 20.
fn decimal(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 20 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// Decode a request of raw type `msg_type`.
pub(crate) fn parse(msg_type: u32, p: &[u8]) -> Result<Req<'_>, XsErrno> {
    let Some(kind) = MsgType::from_u32(msg_type) else {
        return Err(XsErrno::Enosys);
    };
    Ok(match kind {
        MsgType::Read => Req::Read(one(p)?),
        MsgType::Directory => Req::Directory(one(p)?),
        MsgType::GetPerms => Req::GetPerms(one(p)?),
        MsgType::Mkdir => Req::Mkdir(one(p)?),
        MsgType::Rm => Req::Rm(one(p)?),
        MsgType::Write => {
            let i = p.iter().position(|&b| b == 0).ok_or(XsErrno::Einval)?;
            Req::Write(text(&p[..i])?, &p[i + 1..])
        }
        MsgType::DirectoryPart => {
            let [path, off] = fields::<2>(p).ok_or(XsErrno::Einval)?;
            Req::DirectoryPart(text(path)?, decimal(off).ok_or(XsErrno::Einval)?)
        }
        MsgType::Watch | MsgType::Unwatch => {
            let [path, token] = fields::<2>(p).ok_or(XsErrno::Einval)?;
            let (path, token) = (text(path)?, text(token)?);
            if kind == MsgType::Watch {
                Req::Watch(path, token)
            } else {
                Req::Unwatch(path, token)
            }
        }
        _ => Req::Owned(Request::decode(msg_type, p).map_err(|e| e.errno())?),
    })
}

/// Path bytes: 0 not allowed, 1 a name character, 2 `/`.
const CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'@' {
            t[c] = 1;
        }
        c += 1;
    }
    t[b'/' as usize] = 2;
    t
};

/// `xenstore::path::resolve` without allocating for absolute paths:
/// syntax (`A-Z a-z 0-9 - _ @ /`, no `//`, no trailing `/`), then relative
/// paths go under `/local/domain/<caller>/` (built in `scratch`), then the
/// length limits. Any problem is `EINVAL`.
pub(crate) fn resolve<'a>(
    p: &'a str,
    caller: DomId,
    rel_max: usize,
    scratch: &'a mut String,
) -> Result<&'a str, XsErrno> {
    let b = p.as_bytes();
    if b.is_empty() {
        return Err(XsErrno::Einval);
    }
    // one table lookup per byte, no branch: paths can be 3072 bytes
    let mut prev = 0u8;
    let mut bad = false;
    for &c in b {
        let k = CLASS[c as usize];
        bad |= (k == 0) | ((k & prev) == 2);
        prev = k;
    }
    if bad || (p != "/" && prev == 2) {
        return Err(XsErrno::Einval);
    }
    let abs: &str = if path::is_absolute(p) || path::is_special(p) {
        p
    } else {
        use std::fmt::Write;
        scratch.clear();
        let _ = write!(scratch, "/local/domain/{}/{}", caller.0, p);
        scratch.as_str()
    };
    if abs.len() > path::ABS_PATH_MAX || path::counted_len(abs) > rel_max {
        return Err(XsErrno::Einval);
    }
    Ok(abs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn same_as_codec(t: u32, p: &[u8]) {
        let ours = parse(t, p);
        let codec = Request::decode(t, p).map_err(|e| e.errno());
        match (ours, codec) {
            (Ok(Req::Owned(a)), Ok(b)) => assert_eq!(a, b),
            (Ok(Req::Read(a)), Ok(Request::Read(b))) => assert_eq!(a, b),
            (Ok(Req::Directory(a)), Ok(Request::Directory(b))) => assert_eq!(a, b),
            (Ok(Req::GetPerms(a)), Ok(Request::GetPerms(b))) => assert_eq!(a, b),
            (Ok(Req::Mkdir(a)), Ok(Request::Mkdir(b))) => assert_eq!(a, b),
            (Ok(Req::Rm(a)), Ok(Request::Rm(b))) => assert_eq!(a, b),
            (Ok(Req::Write(a, v)), Ok(Request::Write(b, w))) => {
                assert_eq!((a, v), (b.as_str(), w.as_slice()))
            }
            (Ok(Req::DirectoryPart(a, o)), Ok(Request::DirectoryPart(b, q))) => {
                assert_eq!((a, o), (b.as_str(), q))
            }
            (Ok(Req::Watch(a, x)), Ok(Request::Watch { path, token })) => {
                assert_eq!((a, x), (path.as_str(), token.as_str()))
            }
            (Ok(Req::Unwatch(a, x)), Ok(Request::Unwatch { path, token })) => {
                assert_eq!((a, x), (path.as_str(), token.as_str()))
            }
            (Err(a), Err(b)) => assert_eq!(a, b),
            (a, b) => panic!("type {t} payload {p:?}: ours {a:?}, codec {b:?}"),
        }
    }

    #[test]
    fn agrees_with_the_codec_on_examples() {
        for t in [1, 2, 3, 4, 5, 11, 12, 13, 22, 6, 7, 0, 99] {
            for p in [
                &b""[..],
                b"\0",
                b"/a\0",
                b"/a\0b\0",
                b"/a\0b",
                b"/a\x00123\x00",
                b"\xff\0",
                b"/a\0\xff\0",
                b"T\0",
            ] {
                same_as_codec(t, p);
            }
        }
    }

    proptest! {
        #[test]
        fn agrees_with_the_codec(t in 0u32..30, p in proptest::collection::vec(
            prop_oneof![Just(0u8), Just(b'/'), Just(b'a'), Just(b'1'), any::<u8>()], 0..24)) {
            same_as_codec(t, &p);
        }

        #[test]
        fn resolves_like_the_codec(p in "[a-z/@.0-9]{0,12}", d in 0u16..3) {
            let mut s = String::new();
            let ours = resolve(&p, DomId(d), 8, &mut s).map(str::to_string);
            let theirs = path::resolve(&p, DomId(d), 8).map_err(|_| XsErrno::Einval);
            prop_assert_eq!(ours, theirs);
        }
    }
}
