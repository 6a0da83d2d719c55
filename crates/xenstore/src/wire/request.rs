//! Typed requests (client to server): encoding and validated decoding.

use super::fields::{dec_domid, dec_u64, fields_nul, split_fields, utf8, with_nul};
use super::frame::Packet;
use super::msgtype::MsgType;
use crate::DomId;
use crate::errno::XsErrno;
use crate::perms::PermList;

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
///
/// A reason carried by [`crate::Error::Decode`], not an error type of its
/// own (the crate has one: [`crate::Error`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// Unknown, removed or server-only message type.
    Unsupported(u32),
    /// Arguments malformed.
    Malformed {
        /// The message type name.
        kind: &'static str,
        /// What was wrong.
        why: &'static str,
    },
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Unsupported(t) => write!(f, "unsupported message type {t}"),
            DecodeError::Malformed { kind, why } => write!(f, "malformed {kind} request: {why}"),
        }
    }
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
