//! Message types (`xs_wire.h` `enum xsd_sockmsg_type`).

/// Message types (`enum xsd_sockmsg_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MsgType {
    /// `XS_CONTROL` (alias `XS_DEBUG`).
    Control,
    /// `XS_DIRECTORY`.
    Directory,
    /// `XS_READ`.
    Read,
    /// `XS_GET_PERMS`.
    GetPerms,
    /// `XS_WATCH`.
    Watch,
    /// `XS_UNWATCH`.
    Unwatch,
    /// `XS_TRANSACTION_START`.
    TransactionStart,
    /// `XS_TRANSACTION_END`.
    TransactionEnd,
    /// `XS_INTRODUCE`.
    Introduce,
    /// `XS_RELEASE`.
    Release,
    /// `XS_GET_DOMAIN_PATH`.
    GetDomainPath,
    /// `XS_WRITE`.
    Write,
    /// `XS_MKDIR`.
    Mkdir,
    /// `XS_RM`.
    Rm,
    /// `XS_SET_PERMS`.
    SetPerms,
    /// `XS_WATCH_EVENT` (server to client only).
    WatchEvent,
    /// `XS_ERROR` (server to client only).
    Error,
    /// `XS_IS_DOMAIN_INTRODUCED`.
    IsDomainIntroduced,
    /// `XS_RESUME`.
    Resume,
    /// `XS_SET_TARGET`.
    SetTarget,
    /// `XS_RESTRICT` (removed; answered `ENOSYS`).
    Restrict,
    /// `XS_RESET_WATCHES`.
    ResetWatches,
    /// `XS_DIRECTORY_PART`.
    DirectoryPart,
    /// `XS_GET_FEATURE` (Xen >= 4.19).
    GetFeature,
    /// `XS_SET_FEATURE` (Xen >= 4.19).
    SetFeature,
    /// `XS_GET_QUOTA` (Xen >= 4.19).
    GetQuota,
    /// `XS_SET_QUOTA` (Xen >= 4.19).
    SetQuota,
    /// `XS_INVALID` (65535): never valid.
    Invalid,
}

impl MsgType {
    /// The numeric wire value.
    pub fn to_u32(self) -> u32 {
        match self {
            MsgType::Control => 0,
            MsgType::Directory => 1,
            MsgType::Read => 2,
            MsgType::GetPerms => 3,
            MsgType::Watch => 4,
            MsgType::Unwatch => 5,
            MsgType::TransactionStart => 6,
            MsgType::TransactionEnd => 7,
            MsgType::Introduce => 8,
            MsgType::Release => 9,
            MsgType::GetDomainPath => 10,
            MsgType::Write => 11,
            MsgType::Mkdir => 12,
            MsgType::Rm => 13,
            MsgType::SetPerms => 14,
            MsgType::WatchEvent => 15,
            MsgType::Error => 16,
            MsgType::IsDomainIntroduced => 17,
            MsgType::Resume => 18,
            MsgType::SetTarget => 19,
            MsgType::Restrict => 20,
            MsgType::ResetWatches => 21,
            MsgType::DirectoryPart => 22,
            MsgType::GetFeature => 23,
            MsgType::SetFeature => 24,
            MsgType::GetQuota => 25,
            MsgType::SetQuota => 26,
            MsgType::Invalid => 65535,
        }
    }

    /// Parse a numeric wire value.
    pub fn from_u32(v: u32) -> Option<MsgType> {
        Some(match v {
            0 => MsgType::Control,
            1 => MsgType::Directory,
            2 => MsgType::Read,
            3 => MsgType::GetPerms,
            4 => MsgType::Watch,
            5 => MsgType::Unwatch,
            6 => MsgType::TransactionStart,
            7 => MsgType::TransactionEnd,
            8 => MsgType::Introduce,
            9 => MsgType::Release,
            10 => MsgType::GetDomainPath,
            11 => MsgType::Write,
            12 => MsgType::Mkdir,
            13 => MsgType::Rm,
            14 => MsgType::SetPerms,
            15 => MsgType::WatchEvent,
            16 => MsgType::Error,
            17 => MsgType::IsDomainIntroduced,
            18 => MsgType::Resume,
            19 => MsgType::SetTarget,
            20 => MsgType::Restrict,
            21 => MsgType::ResetWatches,
            22 => MsgType::DirectoryPart,
            23 => MsgType::GetFeature,
            24 => MsgType::SetFeature,
            25 => MsgType::GetQuota,
            26 => MsgType::SetQuota,
            65535 => MsgType::Invalid,
            _ => return None,
        })
    }

    /// The `xs_wire.h` name without the `XS_` prefix, e.g. `"READ"`.
    pub fn name(self) -> &'static str {
        match self {
            MsgType::Control => "CONTROL",
            MsgType::Directory => "DIRECTORY",
            MsgType::Read => "READ",
            MsgType::GetPerms => "GET_PERMS",
            MsgType::Watch => "WATCH",
            MsgType::Unwatch => "UNWATCH",
            MsgType::TransactionStart => "TRANSACTION_START",
            MsgType::TransactionEnd => "TRANSACTION_END",
            MsgType::Introduce => "INTRODUCE",
            MsgType::Release => "RELEASE",
            MsgType::GetDomainPath => "GET_DOMAIN_PATH",
            MsgType::Write => "WRITE",
            MsgType::Mkdir => "MKDIR",
            MsgType::Rm => "RM",
            MsgType::SetPerms => "SET_PERMS",
            MsgType::WatchEvent => "WATCH_EVENT",
            MsgType::Error => "ERROR",
            MsgType::IsDomainIntroduced => "IS_DOMAIN_INTRODUCED",
            MsgType::Resume => "RESUME",
            MsgType::SetTarget => "SET_TARGET",
            MsgType::Restrict => "RESTRICT",
            MsgType::ResetWatches => "RESET_WATCHES",
            MsgType::DirectoryPart => "DIRECTORY_PART",
            MsgType::GetFeature => "GET_FEATURE",
            MsgType::SetFeature => "SET_FEATURE",
            MsgType::GetQuota => "GET_QUOTA",
            MsgType::SetQuota => "SET_QUOTA",
            MsgType::Invalid => "INVALID",
        }
    }
}
