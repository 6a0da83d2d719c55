//! nf_tables over nfnetlink, sans-IO: the few constants, a message builder
//! and a bounds-checked attribute reader.
//!
//! Every constant is from the kernel's UAPI headers (Linux 6.1, the kernel
//! of Debian 12): `include/uapi/linux/netlink.h`, `netfilter/nfnetlink.h`,
//! `netfilter/nf_tables.h`, `netfilter.h`. Multi-byte values inside nf_tables
//! attributes are big endian (the kernel's `nla_get_be32`/`be64`); the
//! netlink and attribute headers themselves are host endian.

/// `NETLINK_NETFILTER` [netlink.h].
pub(crate) const NETLINK_NETFILTER: isize = 12;

/// `NLMSG_ERROR` [netlink.h].
pub(crate) const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE` [netlink.h].
pub(crate) const NLMSG_DONE: u16 = 3;
/// `NLM_F_REQUEST`.
pub(crate) const NLM_F_REQUEST: u16 = 0x1;
/// `NLM_F_MULTI`.
pub(crate) const NLM_F_MULTI: u16 = 0x2;
/// `NLM_F_ACK`.
pub(crate) const NLM_F_ACK: u16 = 0x4;
/// `NLM_F_DUMP` (`NLM_F_ROOT | NLM_F_MATCH`).
pub(crate) const NLM_F_DUMP: u16 = 0x300;
/// `NLM_F_CREATE` (new requests).
pub(crate) const NLM_F_CREATE: u16 = 0x400;
/// `NLM_F_APPEND` (new requests).
pub(crate) const NLM_F_APPEND: u16 = 0x800;

/// `NLA_F_NESTED` [netlink.h]: set on nested attributes (the kernel's
/// strict policies require it for nf_tables nests since 5.x).
const NLA_F_NESTED: u16 = 0x8000;
/// Mask of the attribute type bits.
const NLA_TYPE_MASK: u16 = 0x3fff;

/// `NFNL_SUBSYS_NFTABLES` [nfnetlink.h].
pub(crate) const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// `NFNL_MSG_BATCH_BEGIN` (= `NLMSG_MIN_TYPE`) [nfnetlink.h].
pub(crate) const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
/// `NFNL_MSG_BATCH_END`.
pub(crate) const NFNL_MSG_BATCH_END: u16 = 0x11;

/// `NFPROTO_NETDEV` [netfilter.h].
pub(crate) const NFPROTO_NETDEV: u8 = 5;
/// `NF_NETDEV_INGRESS` [netfilter.h].
pub(crate) const NF_NETDEV_INGRESS: u32 = 0;

/// `enum nf_tables_msg_types` [nf_tables.h].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub(crate) enum Msg {
    NewTable = 0,
    GetTable = 1,
    DelTable = 2,
    NewChain = 3,
    NewRule = 6,
    NewObj = 18,
    GetObj = 19,
}

/// `NFTA_TABLE_*`.
pub(crate) mod table {
    pub const NAME: u16 = 1;
    pub const USERDATA: u16 = 6;
}

/// `NFTA_CHAIN_*`.
pub(crate) mod chain {
    pub const TABLE: u16 = 1;
    pub const NAME: u16 = 3;
    pub const HOOK: u16 = 4;
    pub const POLICY: u16 = 5;
    pub const TYPE: u16 = 7;
}

/// `NFTA_HOOK_*`.
pub(crate) mod hook {
    pub const HOOKNUM: u16 = 1;
    pub const PRIORITY: u16 = 2;
    pub const DEV: u16 = 3;
}

/// `NFTA_RULE_*`.
pub(crate) mod rule {
    pub const TABLE: u16 = 1;
    pub const CHAIN: u16 = 2;
    pub const EXPRESSIONS: u16 = 4;
}

/// `NFTA_LIST_ELEM`.
pub(crate) const LIST_ELEM: u16 = 1;

/// `NFTA_EXPR_*`.
pub(crate) mod expr {
    pub const NAME: u16 = 1;
    pub const DATA: u16 = 2;
}

/// `NFTA_OBJ_*` and `NFT_OBJECT_COUNTER`.
pub(crate) mod obj {
    pub const TABLE: u16 = 1;
    pub const NAME: u16 = 2;
    pub const TYPE: u16 = 3;
    pub const DATA: u16 = 4;
    pub const COUNTER: u32 = 1;
}

/// `NFTA_COUNTER_*`.
pub(crate) mod counter {
    pub const PACKETS: u16 = 2;
}

/// An nfnetlink request under construction: `nlmsghdr` + `nfgenmsg` +
/// attributes.
#[derive(Debug)]
pub(crate) struct MsgBuf {
    buf: Vec<u8>,
    nests: Vec<usize>,
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

impl MsgBuf {
    /// Start a message of nfnetlink type `ty` (already combined with its
    /// subsystem for nf_tables messages) for `family`.
    pub(crate) fn new(ty: u16, flags: u16, seq: u32, family: u8, res_id: u16) -> MsgBuf {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_len, patched in finish()
        buf.extend_from_slice(&ty.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid: the kernel
        // struct nfgenmsg { u8 family; u8 version; __be16 res_id; }
        buf.push(family);
        buf.push(0); // NFNETLINK_V0
        buf.extend_from_slice(&res_id.to_be_bytes());
        MsgBuf {
            buf,
            nests: Vec::new(),
        }
    }

    /// An nf_tables message `msg`.
    pub(crate) fn nft(msg: Msg, flags: u16, seq: u32, family: u8) -> MsgBuf {
        MsgBuf::new(
            (NFNL_SUBSYS_NFTABLES << 8) | msg as u16,
            NLM_F_REQUEST | flags,
            seq,
            family,
            0,
        )
    }

    /// Append one attribute.
    pub(crate) fn attr(&mut self, ty: u16, value: &[u8]) -> &mut Self {
        let len = 4 + value.len();
        // Attribute values we build are a few hundred bytes at most.
        let nla_len = u16::try_from(len).unwrap_or(u16::MAX);
        self.buf.extend_from_slice(&nla_len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(value);
        self.buf.resize(align4(self.buf.len()), 0);
        self
    }

    /// A NUL-terminated string attribute (`NLA_STRING`/`NLA_NUL_STRING`).
    pub(crate) fn str(&mut self, ty: u16, s: &str) -> &mut Self {
        let mut v = Vec::with_capacity(s.len() + 1);
        v.extend_from_slice(s.as_bytes());
        v.push(0);
        self.attr(ty, &v)
    }

    /// A big-endian u32 attribute.
    pub(crate) fn be32(&mut self, ty: u16, v: u32) -> &mut Self {
        self.attr(ty, &v.to_be_bytes())
    }

    /// Open a nested attribute; close it with [`MsgBuf::end`].
    pub(crate) fn begin(&mut self, ty: u16) -> &mut Self {
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        self
    }

    /// Close the innermost nested attribute.
    pub(crate) fn end(&mut self) -> &mut Self {
        if let Some(start) = self.nests.pop() {
            let len = u16::try_from(self.buf.len() - start).unwrap_or(u16::MAX);
            self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        }
        self
    }

    /// Patch the length and return the bytes.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        while !self.nests.is_empty() {
            self.end();
        }
        let len = u32::try_from(self.buf.len()).unwrap_or(u32::MAX);
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

/// One netlink message received from the kernel.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NlMsg<'a> {
    /// `nlmsg_type`.
    pub ty: u16,
    /// `nlmsg_flags`.
    pub flags: u16,
    /// `nlmsg_seq`.
    pub seq: u32,
    /// Everything after the 16-byte header.
    pub payload: &'a [u8],
}

impl<'a> NlMsg<'a> {
    /// For `NLMSG_ERROR`: the errno (0 = ACK), positive.
    pub(crate) fn error_code(&self) -> Option<i32> {
        if self.ty != NLMSG_ERROR {
            return None;
        }
        let raw = self.payload.get(0..4)?;
        let v = i32::from_ne_bytes(raw.try_into().ok()?);
        Some(v.checked_neg().unwrap_or(i32::MAX))
    }

    /// The attributes of an nfnetlink message (after `nfgenmsg`).
    pub(crate) fn attrs(&self) -> Attrs<'a> {
        Attrs {
            rest: self.payload.get(4..).unwrap_or(&[]),
        }
    }
}

/// Split a datagram into netlink messages; stops at the first malformed one.
pub(crate) fn messages(mut data: &[u8]) -> impl Iterator<Item = NlMsg<'_>> {
    std::iter::from_fn(move || {
        let hdr = data.get(0..16)?;
        let len = u32::from_ne_bytes(hdr[0..4].try_into().ok()?) as usize;
        if len < 16 || len > data.len() {
            data = &[];
            return None;
        }
        let msg = NlMsg {
            ty: u16::from_ne_bytes(hdr[4..6].try_into().ok()?),
            flags: u16::from_ne_bytes(hdr[6..8].try_into().ok()?),
            seq: u32::from_ne_bytes(hdr[8..12].try_into().ok()?),
            payload: &data[16..len],
        };
        data = data.get(align4(len)..).unwrap_or(&[]);
        Some(msg)
    })
}

/// Iterator over `(type, value)` of a run of attributes; stops at the first
/// malformed one (the kernel never sends those, but nothing here trusts it).
#[derive(Debug, Clone)]
pub(crate) struct Attrs<'a> {
    rest: &'a [u8],
}

impl<'a> Attrs<'a> {
    /// Attributes inside a nested attribute's value.
    pub(crate) fn nested(value: &'a [u8]) -> Attrs<'a> {
        Attrs { rest: value }
    }

    /// The value of the first attribute of type `ty`.
    pub(crate) fn get(&self, ty: u16) -> Option<&'a [u8]> {
        self.clone().find(|(t, _)| *t == ty).map(|(_, v)| v)
    }

    /// A NUL-terminated string attribute.
    pub(crate) fn get_str(&self, ty: u16) -> Option<&'a str> {
        let v = self.get(ty)?;
        let v = v.strip_suffix(&[0]).unwrap_or(v);
        std::str::from_utf8(v).ok()
    }

    /// A big-endian u64 attribute.
    pub(crate) fn get_be64(&self, ty: u16) -> Option<u64> {
        Some(u64::from_be_bytes(self.get(ty)?.try_into().ok()?))
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = (u16, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        let hdr = self.rest.get(0..4)?;
        let len = usize::from(u16::from_ne_bytes([hdr[0], hdr[1]]));
        let ty = u16::from_ne_bytes([hdr[2], hdr[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > self.rest.len() {
            self.rest = &[];
            return None;
        }
        let value = &self.rest[4..len];
        self.rest = self.rest.get(align4(len)..).unwrap_or(&[]);
        Some((ty, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn builds_a_newtable_byte_for_byte() {
        let mut m = MsgBuf::nft(Msg::NewTable, NLM_F_CREATE | NLM_F_ACK, 7, NFPROTO_NETDEV);
        m.str(table::NAME, "t");
        let b = m.finish();
        let mut want = Vec::new();
        want.extend_from_slice(&28u32.to_ne_bytes()); // 16 + 4 + 8
        want.extend_from_slice(&0x0a00u16.to_ne_bytes()); // subsys 10, NEWTABLE
        want.extend_from_slice(&0x0405u16.to_ne_bytes()); // CREATE|ACK|REQUEST
        want.extend_from_slice(&7u32.to_ne_bytes());
        want.extend_from_slice(&0u32.to_ne_bytes());
        want.extend_from_slice(&[5, 0, 0, 0]); // netdev, v0, res_id 0
        want.extend_from_slice(&6u16.to_ne_bytes()); // nla_len: 4 + "t\0"
        want.extend_from_slice(&1u16.to_ne_bytes()); // NFTA_TABLE_NAME
        want.extend_from_slice(b"t\0\0\0");
        assert_eq!(b, want);
    }

    #[test]
    fn nests_and_reads_back() {
        let mut m = MsgBuf::nft(Msg::NewChain, 0, 1, NFPROTO_NETDEV);
        m.begin(chain::HOOK)
            .be32(hook::HOOKNUM, 0)
            .str(hook::DEV, "vif5.0")
            .end();
        m.str(chain::NAME, "ingress");
        let b = m.finish();
        let msgs: Vec<_> = messages(&b).collect();
        assert_eq!(msgs.len(), 1);
        let a = msgs[0].attrs();
        assert_eq!(a.get_str(chain::NAME), Some("ingress"));
        let h = Attrs::nested(a.get(chain::HOOK).unwrap());
        assert_eq!(h.get_str(hook::DEV), Some("vif5.0"));
        assert_eq!(h.get(hook::HOOKNUM), Some(&[0u8, 0, 0, 0][..]));
    }

    #[test]
    fn error_codes_are_positive_errnos() {
        let mut raw = Vec::new();
        raw.extend_from_slice(&36u32.to_ne_bytes());
        raw.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        raw.extend_from_slice(&0u16.to_ne_bytes());
        raw.extend_from_slice(&9u32.to_ne_bytes());
        raw.extend_from_slice(&0u32.to_ne_bytes());
        raw.extend_from_slice(&(-2i32).to_ne_bytes());
        raw.extend_from_slice(&[0u8; 16]);
        let m = messages(&raw).next().unwrap();
        assert_eq!((m.seq, m.error_code()), (9, Some(2)));
    }

    proptest! {
        #[test]
        fn parsers_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            for m in messages(&data) {
                let _ = m.error_code();
                for (_, v) in m.attrs() {
                    let _ = Attrs::nested(v).count();
                }
            }
            let _ = Attrs::nested(&data).get_str(1);
            let _ = Attrs::nested(&data).get_be64(2);
        }
    }
}
