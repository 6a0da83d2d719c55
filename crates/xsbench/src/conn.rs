//! A minimal synchronous xenstore connection over the raw codec: the load
//! generator must add as little of its own cost as possible, so no client
//! library, no async runtime.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use anyhow::{Context, Result, bail};
use xenstore::wire::{MsgType, Packet, Request};

/// Replies can exceed 4096 bytes (oxenstored's big DIRECTORY).
const MAX_REPLY: usize = 1 << 20;

pub struct Conn {
    stream: UnixStream,
    buf: Vec<u8>,
    start: usize,
    next_id: u32,
    /// Watch events received while waiting for replies.
    pub events: VecDeque<Packet>,
}

impl Conn {
    pub fn connect(path: &Path) -> Result<Conn> {
        let stream =
            UnixStream::connect(path).with_context(|| format!("connect {}", path.display()))?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(64 * 1024),
            start: 0,
            next_id: 1,
            events: VecDeque::new(),
        })
    }

    /// Send one request without waiting; returns its req_id.
    pub fn send(&mut self, req: &Request, tx: u32) -> Result<u32> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let bytes = req.to_packet(id, tx).encode();
        self.stream.write_all(&bytes)?;
        Ok(id)
    }

    /// Encode a request into `out` (for batched sends).
    pub fn encode(&mut self, req: &Request, tx: u32, out: &mut Vec<u8>) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        req.to_packet(id, tx).encode_into(out);
        id
    }

    pub fn write_raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream.write_all(bytes)?;
        Ok(())
    }

    /// Next packet of any kind.
    pub fn recv_any(&mut self) -> Result<Packet> {
        loop {
            if let Some((p, n)) =
                Packet::decode(&self.buf[self.start..], MAX_REPLY).map_err(xenstore::Error::from)?
            {
                self.start += n;
                if self.start == self.buf.len() {
                    self.buf.clear();
                    self.start = 0;
                }
                return Ok(p);
            }
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            let mut chunk = [0u8; 65536];
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                bail!("server closed the connection");
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The next reply already read from the socket, if any (no system
    /// call; watch events are queued in `events`).
    pub fn recv_buffered(&mut self) -> Result<Option<Packet>> {
        loop {
            let Some((p, n)) = Packet::decode(&self.buf[self.start..], MAX_REPLY)
                .map_err(xenstore::Error::from)?
            else {
                return Ok(None);
            };
            self.start += n;
            if self.start == self.buf.len() {
                self.buf.clear();
                self.start = 0;
            }
            if p.kind() == Some(MsgType::WatchEvent) {
                self.events.push_back(p);
                continue;
            }
            return Ok(Some(p));
        }
    }

    /// Next reply (watch events are queued in `events`).
    pub fn recv_reply(&mut self) -> Result<Packet> {
        loop {
            let p = self.recv_any()?;
            if p.kind() == Some(MsgType::WatchEvent) {
                self.events.push_back(p);
                continue;
            }
            return Ok(p);
        }
    }

    /// Next watch event (queued first).
    pub fn recv_event(&mut self) -> Result<Packet> {
        if let Some(p) = self.events.pop_front() {
            return Ok(p);
        }
        let p = self.recv_any()?;
        if p.kind() == Some(MsgType::WatchEvent) {
            return Ok(p);
        }
        bail!("unexpected reply while waiting for a watch event")
    }

    /// Synchronous request; errors become `Err` naming the error.
    pub fn call(&mut self, req: &Request, tx: u32) -> Result<Packet> {
        self.send(req, tx)?;
        let p = self.recv_reply()?;
        if p.kind() == Some(MsgType::Error) {
            bail!(
                "{} failed: {}",
                req.kind().name(),
                String::from_utf8_lossy(&p.payload).trim_end_matches('\0')
            );
        }
        Ok(p)
    }

    /// Like `call` but returns the error name instead of failing.
    pub fn call_raw(
        &mut self,
        req: &Request,
        tx: u32,
    ) -> Result<std::result::Result<Packet, String>> {
        self.send(req, tx)?;
        let p = self.recv_reply()?;
        if p.kind() == Some(MsgType::Error) {
            return Ok(Err(String::from_utf8_lossy(&p.payload)
                .trim_end_matches('\0')
                .to_string()));
        }
        Ok(Ok(p))
    }

    pub fn write(&mut self, path: &str, value: &[u8]) -> Result<()> {
        self.call(&Request::Write(path.into(), value.to_vec()), 0)?;
        Ok(())
    }
}
