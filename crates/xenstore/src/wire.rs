//! The xenstore wire format, sans IO (`xen/include/public/io/xs_wire.h`).
//!
//! Every message in both directions is a 16-byte header (`type`, `req_id`,
//! `tx_id`, `len`, native-endian `u32`s) and `len` payload bytes. This module
//! frames packets ([`Packet::decode`] returns `Ok(None)` when it needs more
//! bytes), and converts payloads to typed [`Request`]s and [`Response`]s.
//! Nothing here does IO; the clients and the server are layered on top.

use crate::DomId;
use crate::errno::XsErrno;
use crate::perms::PermList;

/// Header length in bytes (`struct xsd_sockmsg`).
pub const HEADER_LEN: usize = 16;
/// `XENSTORE_PAYLOAD_MAX`: the largest request payload.
pub const PAYLOAD_MAX: usize = 4096;

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

/// The 16-byte message header. `msg_type` stays raw so that unknown types
/// can be answered (`ENOSYS`) instead of killing the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Header {
    /// Raw message type.
    pub msg_type: u32,
    /// Request id, echoed in the reply.
    pub req_id: u32,
    /// Transaction id, 0 = none.
    pub tx_id: u32,
    /// Payload length.
    pub len: u32,
}

impl Header {
    /// Decode from at least [`HEADER_LEN`] bytes; `None` if fewer.
    pub fn decode(buf: &[u8]) -> Option<Header> {
        let h = buf.get(..HEADER_LEN)?;
        let word = |i: usize| u32::from_ne_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        Some(Header {
            msg_type: word(0),
            req_id: word(4),
            tx_id: word(8),
            len: word(12),
        })
    }

    /// Encode to 16 bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..4].copy_from_slice(&self.msg_type.to_ne_bytes());
        out[4..8].copy_from_slice(&self.req_id.to_ne_bytes());
        out[8..12].copy_from_slice(&self.tx_id.to_ne_bytes());
        out[12..16].copy_from_slice(&self.len.to_ne_bytes());
        out
    }

    /// The typed message type, if known.
    pub fn kind(&self) -> Option<MsgType> {
        MsgType::from_u32(self.msg_type)
    }
}

/// Framing error: the stream cannot continue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The header announces a payload over the limit.
    #[error("payload of {len} bytes exceeds the limit of {max} (XENSTORE_PAYLOAD_MAX)")]
    PayloadTooLarge {
        /// Announced length.
        len: u32,
        /// The limit in force.
        max: usize,
    },
}

/// One framed message: header plus payload.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Packet {
    /// Raw message type.
    pub msg_type: u32,
    /// Request id.
    pub req_id: u32,
    /// Transaction id.
    pub tx_id: u32,
    /// Payload bytes.
    pub payload: Vec<u8>,
}

impl Packet {
    /// Build a packet.
    pub fn new(kind: MsgType, req_id: u32, tx_id: u32, payload: Vec<u8>) -> Packet {
        Packet {
            msg_type: kind.to_u32(),
            req_id,
            tx_id,
            payload,
        }
    }

    /// Typed message type, if known.
    pub fn kind(&self) -> Option<MsgType> {
        MsgType::from_u32(self.msg_type)
    }

    /// Try to take one packet from the front of `buf`.
    ///
    /// `Ok(None)`: incomplete, read more. `Ok(Some((p, n)))`: a packet that
    /// used `n` bytes. `Err`: the header's length is over `max_payload`; the
    /// stream must be closed (cxenstored drops the connection).
    pub fn decode(buf: &[u8], max_payload: usize) -> Result<Option<(Packet, usize)>, FrameError> {
        let Some(h) = Header::decode(buf) else {
            return Ok(None);
        };
        let len = h.len as usize;
        if len > max_payload {
            return Err(FrameError::PayloadTooLarge {
                len: h.len,
                max: max_payload,
            });
        }
        let total = HEADER_LEN + len;
        let Some(payload) = buf.get(HEADER_LEN..total) else {
            return Ok(None);
        };
        Ok(Some((
            Packet {
                msg_type: h.msg_type,
                req_id: h.req_id,
                tx_id: h.tx_id,
                payload: payload.to_vec(),
            },
            total,
        )))
    }

    /// Append the encoded packet to `out`. Payloads longer than `u32::MAX`
    /// are impossible for callers that respect [`PAYLOAD_MAX`]; the length
    /// saturates rather than wrapping.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let h = Header {
            msg_type: self.msg_type,
            req_id: self.req_id,
            tx_id: self.tx_id,
            len: u32::try_from(self.payload.len()).unwrap_or(u32::MAX),
        };
        out.extend_from_slice(&h.encode());
        out.extend_from_slice(&self.payload);
    }

    /// Encode to a new buffer.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.payload.len());
        self.encode_into(&mut out);
        out
    }
}

/// A typed request (client to server). Paths are as sent (absolute,
/// relative or `@special`); the receiver validates and resolves them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Request {
    /// `CONTROL <cmd>|<arg>|...`.
    Control(Vec<Vec<u8>>),
    /// List children.
    Directory(String),
    /// List children from a byte offset (`<path>|<offset>|`).
    DirectoryPart(String, u64),
    /// Read a value.
    Read(String),
    /// Read permissions.
    GetPerms(String),
    /// Register a watch.
    Watch {
        /// Watched path.
        path: String,
        /// Token returned in events.
        token: String,
    },
    /// Remove a watch.
    Unwatch {
        /// Watched path.
        path: String,
        /// Token given at registration.
        token: String,
    },
    /// Start a transaction.
    TransactionStart,
    /// End a transaction: commit (`T`) or abort (`F`).
    TransactionEnd(bool),
    /// Introduce a domain.
    Introduce {
        /// The domain.
        domid: DomId,
        /// Guest frame of its ring page (signed decimal on the wire).
        gfn: i64,
        /// Its event channel port.
        evtchn: u32,
    },
    /// Forget a domain.
    Release(DomId),
    /// Ask for `/local/domain/<domid>`.
    GetDomainPath(DomId),
    /// Create or replace a value.
    Write(String, Vec<u8>),
    /// Create a node, keeping an existing value.
    Mkdir(String),
    /// Remove a subtree.
    Rm(String),
    /// Set permissions.
    SetPerms(String, PermList),
    /// Ask whether a domain is introduced.
    IsDomainIntroduced(DomId),
    /// Re-arm `@releaseDomain` for a domain.
    Resume(DomId),
    /// Give `domid` the rights of `target`.
    SetTarget {
        /// The privileged helper domain.
        domid: DomId,
        /// The domain it acts for.
        target: DomId,
    },
    /// Remove all watches (and transactions) of the connection.
    ResetWatches,
}

/// Why a request payload could not be decoded (all map to `EINVAL`, except
/// unknown or server-only types which map to `ENOSYS`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Unknown, removed or server-only message type.
    #[error("unsupported message type {0}")]
    Unsupported(u32),
    /// Arguments malformed.
    #[error("malformed {kind} request: {why}")]
    Malformed {
        /// The message type name.
        kind: &'static str,
        /// What was wrong.
        why: &'static str,
    },
}

impl DecodeError {
    /// The wire error to answer with.
    pub fn errno(&self) -> XsErrno {
        match self {
            DecodeError::Unsupported(_) => XsErrno::Enosys,
            DecodeError::Malformed { .. } => XsErrno::Einval,
        }
    }
}

/// Split a NUL-separated payload into its strings. A payload must end with
/// NUL (every field is terminated); the trailing empty piece is dropped.
fn split_fields(p: &[u8]) -> Option<Vec<&[u8]>> {
    if p.last() != Some(&0) {
        return None;
    }
    Some(p[..p.len() - 1].split(|&b| b == 0).collect())
}

fn utf8(b: &[u8]) -> Option<String> {
    std::str::from_utf8(b).ok().map(str::to_string)
}

fn dec_u64(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 20 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

fn dec_domid(b: &[u8]) -> Option<DomId> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

fn with_nul(s: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(s.len() + 1);
    v.extend_from_slice(s.as_bytes());
    v.push(0);
    v
}

fn fields_nul(fields: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::new();
    for f in fields {
        v.extend_from_slice(f);
        v.push(0);
    }
    v
}

impl Request {
    /// The message type of this request.
    pub fn kind(&self) -> MsgType {
        match self {
            Request::Control(_) => MsgType::Control,
            Request::Directory(_) => MsgType::Directory,
            Request::DirectoryPart(..) => MsgType::DirectoryPart,
            Request::Read(_) => MsgType::Read,
            Request::GetPerms(_) => MsgType::GetPerms,
            Request::Watch { .. } => MsgType::Watch,
            Request::Unwatch { .. } => MsgType::Unwatch,
            Request::TransactionStart => MsgType::TransactionStart,
            Request::TransactionEnd(_) => MsgType::TransactionEnd,
            Request::Introduce { .. } => MsgType::Introduce,
            Request::Release(_) => MsgType::Release,
            Request::GetDomainPath(_) => MsgType::GetDomainPath,
            Request::Write(..) => MsgType::Write,
            Request::Mkdir(_) => MsgType::Mkdir,
            Request::Rm(_) => MsgType::Rm,
            Request::SetPerms(..) => MsgType::SetPerms,
            Request::IsDomainIntroduced(_) => MsgType::IsDomainIntroduced,
            Request::Resume(_) => MsgType::Resume,
            Request::SetTarget { .. } => MsgType::SetTarget,
            Request::ResetWatches => MsgType::ResetWatches,
        }
    }

    /// The payload bytes of this request.
    pub fn payload(&self) -> Vec<u8> {
        match self {
            Request::Control(args) => {
                let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
                fields_nul(&refs)
            }
            Request::Directory(p)
            | Request::Read(p)
            | Request::GetPerms(p)
            | Request::Mkdir(p)
            | Request::Rm(p) => with_nul(p),
            Request::DirectoryPart(p, off) => {
                fields_nul(&[p.as_bytes(), off.to_string().as_bytes()])
            }
            Request::Watch { path, token } | Request::Unwatch { path, token } => {
                fields_nul(&[path.as_bytes(), token.as_bytes()])
            }
            Request::TransactionStart | Request::ResetWatches => vec![0],
            Request::TransactionEnd(commit) => {
                if *commit {
                    b"T\0".to_vec()
                } else {
                    b"F\0".to_vec()
                }
            }
            Request::Introduce { domid, gfn, evtchn } => fields_nul(&[
                domid.0.to_string().as_bytes(),
                gfn.to_string().as_bytes(),
                evtchn.to_string().as_bytes(),
            ]),
            Request::Release(d)
            | Request::GetDomainPath(d)
            | Request::IsDomainIntroduced(d)
            | Request::Resume(d) => with_nul(&d.0.to_string()),
            Request::Write(p, v) => {
                let mut out = with_nul(p);
                out.extend_from_slice(v);
                out
            }
            Request::SetPerms(p, perms) => {
                let mut out = with_nul(p);
                out.extend_from_slice(&perms.to_wire());
                out
            }
            Request::SetTarget { domid, target } => fields_nul(&[
                domid.0.to_string().as_bytes(),
                target.0.to_string().as_bytes(),
            ]),
        }
    }

    /// Encode as a full packet.
    pub fn to_packet(&self, req_id: u32, tx_id: u32) -> Packet {
        Packet::new(self.kind(), req_id, tx_id, self.payload())
    }

    /// Decode a request payload of raw type `msg_type` (server side).
    pub fn decode(msg_type: u32, p: &[u8]) -> Result<Request, DecodeError> {
        let kind = MsgType::from_u32(msg_type).ok_or(DecodeError::Unsupported(msg_type))?;
        let bad = |why: &'static str| DecodeError::Malformed {
            kind: kind.name(),
            why,
        };
        // One path argument, NUL terminated.
        let one_path = || -> Result<String, DecodeError> {
            let f = split_fields(p).ok_or_else(|| bad("missing NUL terminator"))?;
            match f.as_slice() {
                [path] => utf8(path).ok_or_else(|| bad("path is not text")),
                _ => Err(bad("expected exactly one path")),
            }
        };
        let one_domid = || -> Result<DomId, DecodeError> {
            let f = split_fields(p).ok_or_else(|| bad("missing NUL terminator"))?;
            match f.as_slice() {
                [d] => dec_domid(d).ok_or_else(|| bad("invalid domain id")),
                _ => Err(bad("expected one domain id")),
            }
        };
        Ok(match kind {
            MsgType::Control => {
                let f = split_fields(p).ok_or_else(|| bad("missing NUL terminator"))?;
                Request::Control(f.into_iter().map(<[u8]>::to_vec).collect())
            }
            MsgType::Directory => Request::Directory(one_path()?),
            MsgType::Read => Request::Read(one_path()?),
            MsgType::GetPerms => Request::GetPerms(one_path()?),
            MsgType::Mkdir => Request::Mkdir(one_path()?),
            MsgType::Rm => Request::Rm(one_path()?),
            MsgType::DirectoryPart => {
                let f = split_fields(p).ok_or_else(|| bad("missing NUL terminator"))?;
                match f.as_slice() {
                    [path, off] => Request::DirectoryPart(
                        utf8(path).ok_or_else(|| bad("path is not text"))?,
                        dec_u64(off).ok_or_else(|| bad("invalid offset"))?,
                    ),
                    _ => return Err(bad("expected path and offset")),
                }
            }
            MsgType::Watch | MsgType::Unwatch => {
                let f = split_fields(p).ok_or_else(|| bad("missing NUL terminator"))?;
                let [path, token] = f.as_slice() else {
                    return Err(bad("expected path and token"));
                };
                let path = utf8(path).ok_or_else(|| bad("path is not text"))?;
                let token = utf8(token).ok_or_else(|| bad("token is not text"))?;
                if kind == MsgType::Watch {
                    Request::Watch { path, token }
                } else {
                    Request::Unwatch { path, token }
                }
            }
            // cx accepts any payload for TRANSACTION_START/RESET_WATCHES.
            MsgType::TransactionStart => Request::TransactionStart,
            MsgType::ResetWatches => Request::ResetWatches,
            MsgType::TransactionEnd => match p {
                b"T\0" => Request::TransactionEnd(true),
                b"F\0" => Request::TransactionEnd(false),
                _ => return Err(bad("expected T or F")),
            },
            MsgType::Introduce => {
                let f = split_fields(p).ok_or_else(|| bad("missing NUL terminator"))?;
                let [d, gfn, ev] = f.as_slice() else {
                    return Err(bad("expected domid, gfn and event channel"));
                };
                let gfn = std::str::from_utf8(gfn)
                    .ok()
                    .and_then(|s| s.parse::<i64>().ok())
                    .ok_or_else(|| bad("invalid gfn"))?;
                let evtchn = dec_u64(ev)
                    .and_then(|v| u32::try_from(v).ok())
                    .ok_or_else(|| bad("invalid event channel"))?;
                Request::Introduce {
                    domid: dec_domid(d).ok_or_else(|| bad("invalid domain id"))?,
                    gfn,
                    evtchn,
                }
            }
            MsgType::Release => Request::Release(one_domid()?),
            MsgType::IsDomainIntroduced => Request::IsDomainIntroduced(one_domid()?),
            MsgType::Resume => Request::Resume(one_domid()?),
            // GET_DOMAIN_PATH does no validation in the C daemon: junk parses
            // as 0 (WIRE.md §9). We are stricter only about the NUL.
            MsgType::GetDomainPath => {
                let f = split_fields(p).ok_or_else(|| bad("missing NUL terminator"))?;
                let d = f.first().and_then(|d| dec_domid(d)).unwrap_or(DomId(0));
                Request::GetDomainPath(d)
            }
            MsgType::Write => {
                let i = p
                    .iter()
                    .position(|&b| b == 0)
                    .ok_or_else(|| bad("missing NUL after path"))?;
                Request::Write(
                    utf8(&p[..i]).ok_or_else(|| bad("path is not text"))?,
                    p[i + 1..].to_vec(),
                )
            }
            MsgType::SetPerms => {
                let f = split_fields(p).ok_or_else(|| bad("missing NUL terminator"))?;
                let (path, perms) = f.split_first().ok_or_else(|| bad("missing path"))?;
                let strs = perms
                    .iter()
                    .map(|x| std::str::from_utf8(x).ok())
                    .collect::<Option<Vec<&str>>>()
                    .ok_or_else(|| bad("permission is not text"))?;
                Request::SetPerms(
                    utf8(path).ok_or_else(|| bad("path is not text"))?,
                    PermList::parse_strs(strs).map_err(|_| bad("invalid permissions"))?,
                )
            }
            MsgType::SetTarget => {
                let f = split_fields(p).ok_or_else(|| bad("missing NUL terminator"))?;
                let [d, t] = f.as_slice() else {
                    return Err(bad("expected two domain ids"));
                };
                Request::SetTarget {
                    domid: dec_domid(d).ok_or_else(|| bad("invalid domain id"))?,
                    target: dec_domid(t).ok_or_else(|| bad("invalid target domain id"))?,
                }
            }
            MsgType::WatchEvent
            | MsgType::Error
            | MsgType::Restrict
            | MsgType::GetFeature
            | MsgType::SetFeature
            | MsgType::GetQuota
            | MsgType::SetQuota
            | MsgType::Invalid => return Err(DecodeError::Unsupported(msg_type)),
        })
    }
}

/// A typed reply or event (server to client).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Response {
    /// `OK\0`.
    Ok,
    /// `ERROR` with an error name.
    Error(XsErrno),
    /// Raw value bytes (READ) or CONTROL output.
    Data(Vec<u8>),
    /// Child names (DIRECTORY).
    Children(Vec<String>),
    /// One chunk of DIRECTORY_PART.
    DirectoryPart {
        /// Generation count of the parent (restart if it changes).
        generation: u64,
        /// Names in this chunk.
        children: Vec<String>,
        /// True if this chunk reaches the end of the list.
        complete: bool,
    },
    /// Permission list (GET_PERMS).
    Perms(PermList),
    /// New transaction id (TRANSACTION_START).
    TxId(u32),
    /// `/local/domain/<id>` (GET_DOMAIN_PATH).
    DomainPath(String),
    /// `T`/`F` (IS_DOMAIN_INTRODUCED).
    Bool(bool),
    /// A watch event.
    WatchEvent {
        /// The path that changed (relative if the watch was relative).
        path: String,
        /// The watch's token.
        token: String,
    },
}

impl Response {
    /// The payload bytes of this reply or event.
    pub fn payload(&self) -> Vec<u8> {
        match self {
            Response::Ok => b"OK\0".to_vec(),
            Response::Error(e) => with_nul(e.name()),
            Response::Data(d) => d.clone(),
            Response::Children(c) => {
                let mut v = Vec::new();
                for n in c {
                    v.extend_from_slice(n.as_bytes());
                    v.push(0);
                }
                v
            }
            Response::DirectoryPart {
                generation,
                children,
                complete,
            } => {
                let mut v = with_nul(&generation.to_string());
                for n in children {
                    v.extend_from_slice(n.as_bytes());
                    v.push(0);
                }
                if *complete {
                    v.push(0);
                }
                v
            }
            Response::Perms(p) => p.to_wire(),
            Response::TxId(t) => with_nul(&t.to_string()),
            Response::DomainPath(p) => with_nul(p),
            Response::Bool(b) => if *b { b"T\0" } else { b"F\0" }.to_vec(),
            Response::WatchEvent { path, token } => {
                fields_nul(&[path.as_bytes(), token.as_bytes()])
            }
        }
    }

    /// Encode as a packet answering a request of type `kind` (errors use
    /// type `ERROR`, events type `WATCH_EVENT` with ids 0).
    pub fn to_packet(&self, kind: MsgType, req_id: u32, tx_id: u32) -> Packet {
        match self {
            Response::Error(_) => Packet::new(MsgType::Error, req_id, tx_id, self.payload()),
            Response::WatchEvent { .. } => Packet::new(MsgType::WatchEvent, 0, 0, self.payload()),
            _ => Packet::new(kind, req_id, tx_id, self.payload()),
        }
    }

    /// Decode a reply of raw type `msg_type` to a request of type `request`
    /// (client side). Unknown error names decode as `EIO` (what cxenstored
    /// does for errnos outside the list).
    pub fn decode(msg_type: u32, request: MsgType, p: &[u8]) -> Result<Response, DecodeError> {
        let kind = MsgType::from_u32(msg_type).ok_or(DecodeError::Unsupported(msg_type))?;
        let bad = |why: &'static str| DecodeError::Malformed {
            kind: kind.name(),
            why,
        };
        if kind == MsgType::Error {
            let name = p.strip_suffix(b"\0").unwrap_or(p);
            let name = std::str::from_utf8(name).map_err(|_| bad("error name is not text"))?;
            return Ok(Response::Error(
                XsErrno::from_name(name).unwrap_or(XsErrno::Eio),
            ));
        }
        if kind == MsgType::WatchEvent {
            let f = split_fields(p).ok_or_else(|| bad("missing NUL terminator"))?;
            // Newer daemons may append fields; path and token come first.
            let (Some(path), Some(token)) = (f.first(), f.get(1)) else {
                return Err(bad("expected path and token"));
            };
            return Ok(Response::WatchEvent {
                path: utf8(path).ok_or_else(|| bad("path is not text"))?,
                token: utf8(token).ok_or_else(|| bad("token is not text"))?,
            });
        }
        if kind != request {
            return Err(bad("reply type does not match the request"));
        }
        let text_list = |body: &[u8]| -> Result<Vec<String>, DecodeError> {
            if body.is_empty() {
                return Ok(Vec::new());
            }
            let f = split_fields(body).ok_or_else(|| bad("missing NUL terminator"))?;
            f.into_iter()
                .map(|x| utf8(x).ok_or_else(|| bad("name is not text")))
                .collect()
        };
        Ok(match kind {
            MsgType::Read | MsgType::Control => Response::Data(p.to_vec()),
            MsgType::Directory => Response::Children(text_list(p)?),
            MsgType::DirectoryPart => {
                let i = p
                    .iter()
                    .position(|&b| b == 0)
                    .ok_or_else(|| bad("missing generation"))?;
                let generation = dec_u64(&p[..i]).ok_or_else(|| bad("invalid generation"))?;
                let rest = &p[i + 1..];
                let (body, complete) = match rest.strip_suffix(b"\0") {
                    // "<gen>\0\0": empty and complete
                    Some(b"") => (&b""[..], true),
                    // "...name\0\0": the extra NUL marks the end
                    Some(inner) if inner.ends_with(b"\0") => (inner, true),
                    _ => (rest, false),
                };
                Response::DirectoryPart {
                    generation,
                    children: text_list(body)?,
                    complete,
                }
            }
            MsgType::GetPerms => {
                let f = split_fields(p).ok_or_else(|| bad("missing NUL terminator"))?;
                let strs = f
                    .iter()
                    .map(|x| std::str::from_utf8(x).ok())
                    .collect::<Option<Vec<&str>>>()
                    .ok_or_else(|| bad("permission is not text"))?;
                Response::Perms(PermList::parse_strs(strs).map_err(|_| bad("invalid permissions"))?)
            }
            MsgType::TransactionStart => {
                let s = p.strip_suffix(b"\0").unwrap_or(p);
                let id = dec_u64(s)
                    .and_then(|v| u32::try_from(v).ok())
                    .ok_or_else(|| bad("invalid transaction id"))?;
                Response::TxId(id)
            }
            MsgType::GetDomainPath => {
                let s = p.strip_suffix(b"\0").unwrap_or(p);
                Response::DomainPath(utf8(s).ok_or_else(|| bad("path is not text"))?)
            }
            MsgType::IsDomainIntroduced => match p {
                b"T\0" | b"T" => Response::Bool(true),
                b"F\0" | b"F" => Response::Bool(false),
                _ => return Err(bad("expected T or F")),
            },
            _ => {
                if p == b"OK\0" || p == b"OK" {
                    Response::Ok
                } else {
                    return Err(bad("expected OK"));
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::perms::{Access, Perm};

    /// Golden bytes for a READ of `/a` with req_id 7, as libxenstore sends
    /// it (x86, little-endian): type 2, req_id 7, tx_id 0, len 3, "/a\0".
    #[test]
    fn golden_read_request() {
        #[rustfmt::skip]
        let raw: &[u8] = &[
            2, 0, 0, 0,      // type XS_READ
            7, 0, 0, 0,      // req_id
            0, 0, 0, 0,      // tx_id
            3, 0, 0, 0,      // len
            b'/', b'a', 0,   // payload
        ];
        let (p, n) = Packet::decode(raw, PAYLOAD_MAX).unwrap().unwrap();
        assert_eq!(n, raw.len());
        assert_eq!(
            Request::decode(p.msg_type, &p.payload).unwrap(),
            Request::Read("/a".into())
        );
        assert_eq!(Request::Read("/a".into()).to_packet(7, 0).encode(), raw);
    }

    #[test]
    fn golden_error_reply() {
        #[rustfmt::skip]
        let raw: &[u8] = &[
            16, 0, 0, 0,  1, 0, 0, 0,  0, 0, 0, 0,  7, 0, 0, 0,
            b'E', b'N', b'O', b'E', b'N', b'T', 0,
        ];
        let (p, _) = Packet::decode(raw, PAYLOAD_MAX).unwrap().unwrap();
        let r = Response::decode(p.msg_type, MsgType::Read, &p.payload).unwrap();
        assert_eq!(r, Response::Error(XsErrno::Enoent));
        assert_eq!(r.to_packet(MsgType::Read, 1, 0).encode(), raw);
    }

    #[test]
    fn incomplete_and_oversized() {
        let pkt = Request::Write("/x".into(), b"v".to_vec())
            .to_packet(1, 0)
            .encode();
        for cut in 0..pkt.len() {
            assert_eq!(Packet::decode(&pkt[..cut], PAYLOAD_MAX).unwrap(), None);
        }
        let mut big = Header {
            msg_type: 11,
            req_id: 1,
            tx_id: 0,
            len: 4097,
        }
        .encode()
        .to_vec();
        big.extend(vec![0u8; 10]);
        assert!(matches!(
            Packet::decode(&big, PAYLOAD_MAX),
            Err(FrameError::PayloadTooLarge { len: 4097, .. })
        ));
    }

    #[test]
    fn request_round_trips() {
        let reqs = vec![
            Request::Control(vec![b"help".to_vec()]),
            Request::Directory("/a".into()),
            Request::DirectoryPart("/a".into(), 4000),
            Request::GetPerms("rel".into()),
            Request::Watch {
                path: "@releaseDomain".into(),
                token: "tok".into(),
            },
            Request::Unwatch {
                path: "/w".into(),
                token: "t".into(),
            },
            Request::TransactionStart,
            Request::TransactionEnd(true),
            Request::TransactionEnd(false),
            Request::Introduce {
                domid: DomId(5),
                gfn: -1,
                evtchn: 3,
            },
            Request::Release(DomId(5)),
            Request::GetDomainPath(DomId(9)),
            Request::Write("/v".into(), vec![0, 1, 2, 0]),
            Request::Mkdir("/m".into()),
            Request::Rm("/m".into()),
            Request::SetPerms(
                "/p".into(),
                PermList::new(vec![
                    Perm::new(Access::None, DomId(0)),
                    Perm::new(Access::Read, DomId(5)),
                ])
                .unwrap(),
            ),
            Request::IsDomainIntroduced(DomId(3)),
            Request::Resume(DomId(3)),
            Request::SetTarget {
                domid: DomId(4),
                target: DomId(3),
            },
            Request::ResetWatches,
        ];
        for r in reqs {
            let p = r.to_packet(1, 0);
            assert_eq!(Request::decode(p.msg_type, &p.payload).unwrap(), r, "{r:?}");
        }
    }

    #[test]
    fn response_round_trips() {
        let cases = vec![
            (MsgType::Write, Response::Ok),
            (MsgType::Read, Response::Error(XsErrno::Eacces)),
            (MsgType::Read, Response::Data(vec![1, 0, 2])),
            (MsgType::Directory, Response::Children(vec![])),
            (
                MsgType::Directory,
                Response::Children(vec!["a".into(), "b".into()]),
            ),
            (
                MsgType::DirectoryPart,
                Response::DirectoryPart {
                    generation: 3,
                    children: vec!["a".into()],
                    complete: false,
                },
            ),
            (
                MsgType::DirectoryPart,
                Response::DirectoryPart {
                    generation: 3,
                    children: vec!["a".into()],
                    complete: true,
                },
            ),
            (
                MsgType::DirectoryPart,
                Response::DirectoryPart {
                    generation: 3,
                    children: vec![],
                    complete: true,
                },
            ),
            (MsgType::GetPerms, Response::Perms("n0 r5".parse().unwrap())),
            (MsgType::TransactionStart, Response::TxId(42)),
            (
                MsgType::GetDomainPath,
                Response::DomainPath("/local/domain/3".into()),
            ),
            (MsgType::IsDomainIntroduced, Response::Bool(true)),
            (
                MsgType::Write,
                Response::WatchEvent {
                    path: "/a".into(),
                    token: "t".into(),
                },
            ),
        ];
        for (kind, r) in cases {
            let p = r.to_packet(kind, 9, 0);
            assert_eq!(
                Response::decode(p.msg_type, kind, &p.payload).unwrap(),
                r,
                "{r:?}"
            );
        }
    }

    #[test]
    fn malformed_requests_are_einval_or_enosys() {
        assert_eq!(
            Request::decode(2, b"/a").unwrap_err().errno(),
            XsErrno::Einval
        );
        assert_eq!(
            Request::decode(7, b"X\0").unwrap_err().errno(),
            XsErrno::Einval
        );
        assert_eq!(
            Request::decode(15, b"").unwrap_err().errno(),
            XsErrno::Enosys
        );
        assert_eq!(
            Request::decode(999, b"").unwrap_err().errno(),
            XsErrno::Enosys
        );
        assert_eq!(
            Request::decode(14, b"/a\0x1\0").unwrap_err().errno(),
            XsErrno::Einval
        );
        assert_eq!(
            Request::decode(4, b"/a\0t\0extra\0").unwrap_err().errno(),
            XsErrno::Einval
        );
    }
}
