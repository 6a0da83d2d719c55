//! Typed replies and watch events (server to client).

use super::fields::{dec_u64, fields_nul, split_fields, utf8, with_nul};
use super::frame::Packet;
use super::msgtype::MsgType;
use super::request::DecodeError;
use crate::errno::XsErrno;
use crate::perms::PermList;

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
