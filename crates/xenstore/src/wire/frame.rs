//! Framing: the 16-byte header and whole packets over a byte buffer.

use super::HEADER_LEN;
use super::msgtype::MsgType;

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

/// Why a byte stream cannot be framed: the stream cannot continue.
///
/// A reason carried by [`crate::Error::Frame`], not an error type of its
/// own (the crate has one: [`crate::Error`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// The header announces a payload over the limit.
    PayloadTooLarge {
        /// Announced length.
        len: u32,
        /// The limit in force.
        max: usize,
    },
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::PayloadTooLarge { len, max } => write!(
                f,
                "payload of {len} bytes exceeds the limit of {max} (XENSTORE_PAYLOAD_MAX)"
            ),
        }
    }
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
    /// are impossible for callers that respect [`PAYLOAD_MAX`](super::PAYLOAD_MAX); the length
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
