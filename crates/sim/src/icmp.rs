//! ICMP echo from inside a namespace: the lab's `ping`, with no `ping`
//! binary.
//!
//! A raw ICMP (or ICMPv6) socket is opened on a dedicated thread that has
//! entered the namespace ([`crate::netns::on_thread_in`]); the thread sends
//! an echo request every [`RESEND`] until a matching echo reply arrives or
//! the time is up. Raw sockets need `CAP_NET_RAW`, which the lab has (it
//! runs as root); unprivileged ping sockets are usually disabled in fresh
//! namespaces (`net.ipv4.ping_group_range = 1 0`).
//!
//! Packet formats: RFC 792 (echo, type 8 / reply 0, checksum over the ICMP
//! message) and RFC 4443 §4.1 (ICMPv6 echo 128 / reply 129; the kernel
//! fills the checksum of raw ICMPv6 sockets).

use std::net::{IpAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use nix::sys::socket::{
    AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, SockaddrIn, SockaddrIn6,
    SockaddrStorage, recvfrom, sendto, setsockopt, socket, sockopt,
};
use nix::sys::time::TimeVal;

use crate::error::{Error, Result};

/// Interval between echo requests of one probe.
pub const RESEND: Duration = Duration::from_millis(250);

/// What one probe saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EchoReply {
    /// Requests sent before the reply came.
    pub sent: u16,
    /// Time from the first request to the reply.
    pub elapsed: Duration,
}

const ECHO_V4: u8 = 8;
const REPLY_V4: u8 = 0;
const ECHO_V6: u8 = 128;
const REPLY_V6: u8 = 129;
const PAYLOAD: &[u8] = b"drvdom-lab-probe";

/// RFC 1071 Internet checksum.
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for pair in data.chunks(2) {
        let word = match pair {
            [a, b] => u16::from_be_bytes([*a, *b]),
            [a] => u16::from_be_bytes([*a, 0]),
            _ => 0,
        };
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // The loop above folded the carries: `sum` now fits 16 bits.
    !(u16::try_from(sum).unwrap_or(u16::MAX))
}

/// An echo request message (without IP header).
fn echo_request(v6: bool, id: u16, seq: u16) -> Vec<u8> {
    let mut m = vec![if v6 { ECHO_V6 } else { ECHO_V4 }, 0, 0, 0];
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(PAYLOAD);
    if !v6 {
        let c = checksum(&m);
        m[2..4].copy_from_slice(&c.to_be_bytes());
    }
    m
}

/// True if `pkt` (as received on the raw socket: with the IPv4 header for
/// IPv4, without for IPv6) is an echo reply with our `id`. Anything in the
/// namespace can send to the socket: never panics on any input.
pub fn is_echo_reply(v6: bool, pkt: &[u8], id: u16) -> bool {
    let icmp = if v6 {
        pkt
    } else {
        let Some(first) = pkt.first() else {
            return false;
        };
        let ihl = usize::from(first & 0x0f) * 4;
        if first >> 4 != 4 || ihl < 20 {
            return false;
        }
        match pkt.get(ihl..) {
            Some(rest) => rest,
            None => return false,
        }
    };
    let want = if v6 { REPLY_V6 } else { REPLY_V4 };
    icmp.len() >= 8 && icmp[0] == want && icmp[1] == 0 && icmp[4..6] == id.to_be_bytes()
}

fn open(v6: bool) -> Result<OwnedFd> {
    let (family, proto) = if v6 {
        (AddressFamily::Inet6, SockProtocol::IcmpV6)
    } else {
        (AddressFamily::Inet, SockProtocol::Icmp)
    };
    socket(family, SockType::Raw, SockFlag::SOCK_CLOEXEC, proto).map_err(|e| Error::Spawn {
        program: "raw ICMP socket".into(),
        source: e.into(),
    })
}

/// A per-process id for echo requests, distinct per probe.
fn next_id() -> u16 {
    static N: AtomicU16 = AtomicU16::new(0);
    let pid = u16::try_from(std::process::id() & 0xffff).unwrap_or(0);
    pid.wrapping_mul(31)
        .wrapping_add(N.fetch_add(1, Ordering::Relaxed))
}

/// Blocking probe in the calling thread's namespace (a thread already
/// there, e.g. one [`crate::netns::on_thread_in`] runs a prober loop on):
/// echo requests to `addr` until one is answered or `timeout` passes.
pub fn probe_here(addr: IpAddr, timeout: Duration) -> Result<Option<EchoReply>> {
    let v6 = addr.is_ipv6();
    let fd = open(v6)?;
    let id = next_id();
    let dest: Box<dyn nix::sys::socket::SockaddrLike> = match addr {
        IpAddr::V4(a) => Box::new(SockaddrIn::from(SocketAddrV4::new(a, 0))),
        IpAddr::V6(a) => Box::new(SockaddrIn6::from(SocketAddrV6::new(a, 0, 0, 0))),
    };
    let io = |e: nix::errno::Errno, what: &str| Error::Spawn {
        program: format!("{what} ICMP echo to {addr}"),
        source: e.into(),
    };
    let start = Instant::now();
    let deadline = start + timeout;
    let mut buf = [0u8; 1500];
    let mut sent: u16 = 0;
    while Instant::now() < deadline {
        sent = sent.saturating_add(1);
        let req = echo_request(v6, id, sent);
        // A network that is not there yet (no route, no neighbour) is the
        // probe's answer, not an error: try again until the deadline.
        let _ = sendto(fd.as_raw_fd(), &req, dest.as_ref(), MsgFlags::empty());
        let resend_at = (Instant::now() + RESEND).min(deadline);
        loop {
            let now = Instant::now();
            if now >= resend_at {
                break;
            }
            let left = resend_at - now;
            let tv = TimeVal::new(
                i64::try_from(left.as_secs()).unwrap_or(1),
                i64::from(left.subsec_micros()).max(1),
            );
            setsockopt(&fd, sockopt::ReceiveTimeout, &tv).map_err(|e| io(e, "time out"))?;
            match recvfrom::<SockaddrStorage>(fd.as_raw_fd(), &mut buf) {
                Ok((n, from)) => {
                    let from_ok = from.is_some_and(|f| match addr {
                        IpAddr::V4(a) => f.as_sockaddr_in().is_some_and(|s| s.ip() == a),
                        IpAddr::V6(a) => f.as_sockaddr_in6().is_some_and(|s| s.ip() == a),
                    });
                    if from_ok && is_echo_reply(v6, &buf[..n.min(buf.len())], id) {
                        return Ok(Some(EchoReply {
                            sent,
                            elapsed: start.elapsed(),
                        }));
                    }
                }
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(io(e, "receive")),
            }
        }
    }
    Ok(None)
}

/// Send ICMP echo requests to `addr` from inside the namespace at `ns`
/// until one is answered or `timeout` passes. `Ok(None)`: no answer.
pub async fn echo(ns: &Path, addr: IpAddr, timeout: Duration) -> Result<Option<EchoReply>> {
    crate::netns::on_thread_in(ns, move || probe_here(addr, timeout)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_a_known_echo_request() {
        // Type 8, code 0, id 0x1234, seq 1, no payload: the sum of the
        // words is 0x0800 + 0x1234 + 0x0001 = 0x1a35, complement 0xe5ca.
        let m = [8u8, 0, 0, 0, 0x12, 0x34, 0, 1];
        assert_eq!(checksum(&m), 0xe5ca);
        // A message with its checksum filled in sums to zero.
        let req = echo_request(false, 0x1234, 1);
        assert_eq!(checksum(&req), 0);
    }

    #[test]
    fn replies_are_matched_by_type_and_id() {
        let mut reply = echo_request(false, 7, 1);
        reply[0] = REPLY_V4;
        let mut ip = vec![0x45u8];
        ip.extend_from_slice(&[0; 19]);
        ip.extend_from_slice(&reply);
        assert!(is_echo_reply(false, &ip, 7));
        assert!(!is_echo_reply(false, &ip, 8));
        // Our own request seen on the raw socket is not a reply.
        let mut req = vec![0x45u8];
        req.extend_from_slice(&[0; 19]);
        req.extend_from_slice(&echo_request(false, 7, 1));
        assert!(!is_echo_reply(false, &req, 7));
        let mut v6 = echo_request(true, 9, 1);
        v6[0] = REPLY_V6;
        assert!(is_echo_reply(true, &v6, 9));
    }

    #[test]
    fn truncated_or_garbage_packets_are_not_replies() {
        for p in [&[][..], &[0x45][..], &[0x4f, 0, 0][..], &[0x60; 40][..]] {
            assert!(!is_echo_reply(false, p, 0));
        }
        assert!(!is_echo_reply(true, &[129, 0, 0], 0));
    }
}
