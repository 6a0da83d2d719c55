//! nf_tables expressions (the kernel's `nft_expr_type`s we use), encoded as
//! `NFTA_LIST_ELEM` entries of a rule's `NFTA_RULE_EXPRESSIONS`.
//!
//! Attribute numbers are from include/uapi/linux/netfilter/nf_tables.h
//! (`NFTA_META_*`, `NFTA_PAYLOAD_*`, `NFTA_CMP_*`, `NFTA_BITWISE_*`,
//! `NFTA_IMMEDIATE_*`, `NFTA_DATA_*`, `NFTA_VERDICT_*`, `NFTA_OBJREF_*`).

use super::wire::{LIST_ELEM, MsgBuf, expr, obj};

/// `NFT_REG_VERDICT`.
const REG_VERDICT: u32 = 0;
/// `NFT_REG_1`: a 16-byte register, enough for an IPv6 address.
const REG_1: u32 = 1;

/// `NFTA_DATA_VALUE` / `NFTA_DATA_VERDICT`.
const DATA_VALUE: u16 = 1;
const DATA_VERDICT: u16 = 2;
/// `NFTA_VERDICT_CODE` / `NFTA_VERDICT_CHAIN`.
const VERDICT_CODE: u16 = 1;
const VERDICT_CHAIN: u16 = 2;

/// `enum nft_meta_keys`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MetaKey {
    /// `NFT_META_L4PROTO` (16): the transport protocol found by the IPv4/IPv6
    /// header walk (set only for valid IPv4/IPv6 packets).
    L4Proto = 16,
}

/// `enum nft_payload_bases`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Base {
    /// `NFT_PAYLOAD_LL_HEADER`: the Ethernet header (a VLAN tag the driver
    /// stripped is put back in place, so `ether type` reads 0x8100).
    Link = 0,
    /// `NFT_PAYLOAD_NETWORK_HEADER`.
    Network = 1,
    /// `NFT_PAYLOAD_TRANSPORT_HEADER` (no match for non-first fragments).
    Transport = 2,
}

/// `enum nft_cmp_ops`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    /// `NFT_CMP_EQ`.
    Eq = 0,
    /// `NFT_CMP_NEQ`.
    Neq = 1,
}

/// Verdicts (`NF_DROP`, `NF_ACCEPT`, `NFT_JUMP`, `NFT_RETURN`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    Drop,
    Accept,
    Return,
    Jump(&'static str),
}

impl Verdict {
    fn code(&self) -> i32 {
        match self {
            Verdict::Drop => 0,
            Verdict::Accept => 1,
            Verdict::Jump(_) => -3,
            Verdict::Return => -5,
        }
    }
}

/// One expression of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Expr {
    /// Load meta `key` into register 1.
    Meta(MetaKey),
    /// Load `len` bytes at `offset` of `base` into register 1.
    Payload { base: Base, offset: u32, len: u32 },
    /// Register 1 = (register 1 & mask) ^ 0, over `mask.len()` bytes.
    Mask(Vec<u8>),
    /// Compare register 1 with `data`; no match ends the rule.
    Cmp(CmpOp, Vec<u8>),
    /// Count into the named counter object of this table.
    Counter(String),
    /// Set the verdict.
    Verdict(Verdict),
}

fn be32(v: u32) -> [u8; 4] {
    v.to_be_bytes()
}

impl Expr {
    /// Append this expression as one `NFTA_LIST_ELEM`.
    pub(crate) fn encode(&self, m: &mut MsgBuf) {
        m.begin(LIST_ELEM);
        match self {
            Expr::Meta(key) => {
                m.str(expr::NAME, "meta").begin(expr::DATA);
                m.attr(1, &be32(REG_1)) // NFTA_META_DREG
                    .attr(2, &be32(*key as u32)); // NFTA_META_KEY
            }
            Expr::Payload { base, offset, len } => {
                m.str(expr::NAME, "payload").begin(expr::DATA);
                m.attr(1, &be32(REG_1)) // NFTA_PAYLOAD_DREG
                    .attr(2, &be32(*base as u32)) // NFTA_PAYLOAD_BASE
                    .attr(3, &be32(*offset)) // NFTA_PAYLOAD_OFFSET
                    .attr(4, &be32(*len)); // NFTA_PAYLOAD_LEN
            }
            Expr::Mask(mask) => {
                m.str(expr::NAME, "bitwise").begin(expr::DATA);
                let len = u32::try_from(mask.len()).unwrap_or(0);
                m.attr(1, &be32(REG_1)) // NFTA_BITWISE_SREG
                    .attr(2, &be32(REG_1)) // NFTA_BITWISE_DREG
                    .attr(3, &be32(len)); // NFTA_BITWISE_LEN
                m.begin(4).attr(DATA_VALUE, mask).end(); // NFTA_BITWISE_MASK
                m.begin(5).attr(DATA_VALUE, &vec![0; mask.len()]).end(); // NFTA_BITWISE_XOR
            }
            Expr::Cmp(op, data) => {
                m.str(expr::NAME, "cmp").begin(expr::DATA);
                m.attr(1, &be32(REG_1)) // NFTA_CMP_SREG
                    .attr(2, &be32(*op as u32)); // NFTA_CMP_OP
                m.begin(3).attr(DATA_VALUE, data).end(); // NFTA_CMP_DATA
            }
            Expr::Counter(name) => {
                m.str(expr::NAME, "objref").begin(expr::DATA);
                m.attr(1, &be32(obj::COUNTER)) // NFTA_OBJREF_IMM_TYPE
                    .str(2, name); // NFTA_OBJREF_IMM_NAME
            }
            Expr::Verdict(v) => {
                m.str(expr::NAME, "immediate").begin(expr::DATA);
                m.attr(1, &be32(REG_VERDICT)); // NFTA_IMMEDIATE_DREG
                m.begin(2).begin(DATA_VERDICT); // NFTA_IMMEDIATE_DATA
                m.attr(VERDICT_CODE, &v.code().to_be_bytes());
                if let Verdict::Jump(chain) = v {
                    m.str(VERDICT_CHAIN, chain);
                }
                m.end().end();
            }
        }
        m.end(); // NFTA_EXPR_DATA
        m.end(); // NFTA_LIST_ELEM
    }
}
