//! Crafted Ethernet frames and raw `AF_PACKET` sockets, for tests that act
//! as a hostile guest (or watch a wire) in a network namespace.
//!
//! Every frame built here carries a caller-chosen payload, so a capture can
//! tell test frames from the kernel's own traffic (IPv6 autoconfiguration,
//! MLD) by looking for that marker.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// `ETH_P_ALL` [include/uapi/linux/if_ether.h].
const ETH_P_ALL: u16 = 0x0003;

/// Ethertypes.
pub const ETH_P_IP: u16 = 0x0800;
/// ARP.
pub const ETH_P_ARP: u16 = 0x0806;
/// IPv6.
pub const ETH_P_IPV6: u16 = 0x86dd;
/// 802.1Q.
pub const ETH_P_8021Q: u16 = 0x8100;

/// An Ethernet frame: destination, source, ethertype (or 802.3 length), payload.
pub fn eth(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    // Pad to the 60-byte minimum the wire needs.
    if f.len() < 60 {
        f.resize(60, 0);
    }
    f
}

/// An ARP packet for Ethernet/IPv4 (`op` 1 = request, 2 = reply).
pub fn arp(op: u16, sha: [u8; 6], spa: Ipv4Addr, tha: [u8; 6], tpa: Ipv4Addr) -> Vec<u8> {
    let mut p = vec![0x00, 0x01, 0x08, 0x00, 6, 4];
    p.extend_from_slice(&op.to_be_bytes());
    p.extend_from_slice(&sha);
    p.extend_from_slice(&spa.octets());
    p.extend_from_slice(&tha);
    p.extend_from_slice(&tpa.octets());
    p
}

fn csum_add(mut sum: u32, data: &[u8]) -> u32 {
    for c in data.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], 0])
        };
        sum += u32::from(w);
    }
    sum
}

fn csum_fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 packet with a UDP datagram (UDP checksum 0: none, RFC 768).
pub fn ipv4_udp(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    let mut udp = Vec::new();
    udp.extend_from_slice(&sport.to_be_bytes());
    udp.extend_from_slice(&dport.to_be_bytes());
    udp.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(data);
    ipv4(src, dst, 17, &udp)
}

/// An IPv4 packet (protocol `proto`) with a valid header checksum.
pub fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, body: &[u8]) -> Vec<u8> {
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&((20 + body.len()) as u16).to_be_bytes());
    h.extend_from_slice(&[0, 1, 0x40, 0, 64, proto, 0, 0]);
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    let c = csum_fold(csum_add(0, &h));
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(body);
    h
}

/// An ICMPv4 echo request from `src` to `dst` carrying `data`.
pub fn ipv4_ping(src: Ipv4Addr, dst: Ipv4Addr, data: &[u8]) -> Vec<u8> {
    let mut icmp = vec![8, 0, 0, 0, 0x12, 0x34, 0, 1];
    icmp.extend_from_slice(data);
    let c = csum_fold(csum_add(0, &icmp));
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    ipv4(src, dst, 1, &icmp)
}

/// An IPv6 packet (next header `nh`, hop limit 255) whose upper-layer
/// checksum at `csum_at` (if any) is filled in over the pseudo-header.
fn ipv6(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    nh: u8,
    mut body: Vec<u8>,
    csum_at: Option<usize>,
) -> Vec<u8> {
    if let Some(at) = csum_at {
        let mut sum = csum_add(0, &src.octets());
        sum = csum_add(sum, &dst.octets());
        sum = csum_add(sum, &(body.len() as u32).to_be_bytes());
        sum = csum_add(sum, &[0, 0, 0, nh]);
        sum = csum_add(sum, &body);
        let c = csum_fold(sum);
        body[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(body.len() as u16).to_be_bytes());
    p.push(nh);
    p.push(255);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&body);
    p
}

/// An ICMPv6 message (`ty`, code 0, `rest` after the 4-byte header).
pub fn ipv6_icmp(src: Ipv6Addr, dst: Ipv6Addr, ty: u8, rest: &[u8]) -> Vec<u8> {
    let mut icmp = vec![ty, 0, 0, 0];
    icmp.extend_from_slice(rest);
    ipv6(src, dst, 58, icmp, Some(2))
}

/// An IPv6 UDP datagram with its checksum.
pub fn ipv6_udp(src: Ipv6Addr, dst: Ipv6Addr, sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    let mut udp = Vec::new();
    udp.extend_from_slice(&sport.to_be_bytes());
    udp.extend_from_slice(&dport.to_be_bytes());
    udp.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(data);
    ipv6(src, dst, 17, udp, Some(6))
}

/// An ICMPv6 router advertisement (RFC 4861 §4.2) with `marker` as an
/// unknown option's padding... kept simple: the marker follows the fixed part.
pub fn router_advert(src: Ipv6Addr, marker: &[u8]) -> Vec<u8> {
    // cur hop limit, flags, router lifetime 1800 s, reachable, retrans.
    let mut rest = vec![64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0];
    rest.extend_from_slice(marker);
    ipv6_icmp(
        src,
        "ff02::1".parse().unwrap_or(Ipv6Addr::UNSPECIFIED),
        134,
        &rest,
    )
}

/// An ICMPv6 neighbour advertisement for `target` (override flag set).
pub fn neighbor_advert(src: Ipv6Addr, target: Ipv6Addr, marker: &[u8]) -> Vec<u8> {
    let mut rest = vec![0x20, 0, 0];
    rest.extend_from_slice(&target.octets());
    rest.extend_from_slice(marker);
    ipv6_icmp(
        src,
        "ff02::1".parse().unwrap_or(Ipv6Addr::UNSPECIFIED),
        136,
        &rest,
    )
}

/// An IEEE 802.1D configuration BPDU from `src` (802.3 + LLC 42 42 03).
pub fn bpdu(src: [u8; 6], marker: &[u8]) -> Vec<u8> {
    let mut p = vec![0x42, 0x42, 0x03, 0, 0, 0, 0];
    p.extend_from_slice(&[0x80, 0, 0, 0, 0, 0, 0, 1]); // root id
    p.extend_from_slice(&[0, 0, 0, 0]); // cost
    p.extend_from_slice(&[0x80, 0, 0, 0, 0, 0, 0, 1]); // bridge id
    p.extend_from_slice(&[0x80, 1, 0, 0, 0x14, 0, 2, 0, 0x0f, 0]);
    p.extend_from_slice(marker);
    let len = p.len() as u16;
    eth([0x01, 0x80, 0xc2, 0, 0, 0], src, len, &p)
}

/// A raw `AF_PACKET` socket bound to one interface of the calling thread's
/// network namespace: sends frames as they are, receives every frame.
pub struct RawSocket {
    fd: OwnedFd,
    ifindex: u32,
}

impl RawSocket {
    /// Open on `ifname` (in the calling thread's namespace).
    pub fn open(ifname: &str) -> std::io::Result<RawSocket> {
        let ifindex = nix::net::if_::if_nametoindex(ifname).map_err(std::io::Error::from)?;
        let proto = ETH_P_ALL.to_be();
        // SAFETY: plain socket(2) call with constant arguments; the result
        // is checked before use and owned by an OwnedFd right after.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                i32::from(proto),
            )
        };
        if raw < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh, valid descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sa.sll_family = libc::AF_PACKET as u16;
        sa.sll_protocol = proto;
        sa.sll_ifindex = ifindex as i32;
        // SAFETY: `sa` is a valid sockaddr_ll that outlives the call and the
        // length passed is its size; `fd` is an open socket.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sa as *const libc::sockaddr_ll).cast::<libc::sockaddr>(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(RawSocket { fd, ifindex })
    }

    /// The interface index it is bound to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Send one frame.
    pub fn send(&self, frame: &[u8]) -> std::io::Result<()> {
        nix::sys::socket::send(
            self.fd.as_raw_fd(),
            frame,
            nix::sys::socket::MsgFlags::empty(),
        )
        .map(|_| ())
        .map_err(std::io::Error::from)
    }

    /// Receive one frame, or `None` once `timeout` has passed.
    pub fn recv(&self, timeout: Duration) -> std::io::Result<Option<Vec<u8>>> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 65536];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let tv = nix::sys::time::TimeVal::new(
                left.as_secs() as i64,
                i64::from(left.subsec_micros().max(1)),
            );
            nix::sys::socket::setsockopt(
                &self.fd.as_fd(),
                nix::sys::socket::sockopt::ReceiveTimeout,
                &tv,
            )
            .map_err(std::io::Error::from)?;
            match nix::sys::socket::recv(
                self.fd.as_raw_fd(),
                &mut buf,
                nix::sys::socket::MsgFlags::empty(),
            ) {
                Ok(n) => return Ok(Some(buf[..n].to_vec())),
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// True when `hay` contains `needle`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Run `f` on a new thread that first enters the named network namespace
/// (`ip netns add NAME`, i.e. `/run/netns/NAME`); returns its result.
pub fn in_named_netns<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let path = std::path::Path::new("/run/netns").join(name);
    std::thread::spawn(move || {
        let ns = std::fs::File::open(&path).expect("open the namespace file");
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
}
