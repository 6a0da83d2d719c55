//! Small protocol value types: [`TxId`], [`ReqId`]. [`DomId`](crate::DomId) is
//! `xentypes::DomId`, re-exported.

use std::fmt;

/// A transaction id as carried in the header (`0` = no transaction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TxId(pub u32);

impl TxId {
    /// Outside any transaction.
    pub const NONE: TxId = TxId(0);
}

impl fmt::Display for TxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A request id chosen by the client and echoed in the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ReqId(pub u32);
