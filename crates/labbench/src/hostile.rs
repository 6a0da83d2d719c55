//! `drvdom-hostile-guest`: a hostile guest, for the lab's security tests.
//!
//! Run inside a simulated guest with `drvdom lab exec GUEST -- drvdom-hostile-guest ...`
//! (its network namespace, its own `/sys`, `XENSTORED_PATH` set to the
//! guest's xenstore socket). It does what issue 14 says a hostile guest
//! does, with real frames on the guest's interface (crafted with
//! `testutil::packet`, sent on a raw socket) or through the guest's own
//! kernel:
//!
//! * `attack`: one battery of crafted frames — another guest's MAC, the
//!   uplink router's MAC, a flood of random source MACs, an STP BPDU, an
//!   IPv6 router advertisement, a DHCP offer and a DHCPv6 advertise, a
//!   foreign IPv4 and IPv6 source, a gratuitous ARP and a neighbour
//!   advertisement for another guest's addresses — each carrying the
//!   marker; prints `{"sent":N,"expect":{"mac":..,"l2ctl":..,"ra":..,"dhcp":..,"spoof":..}}`,
//!   the least each drop counter of the guest's filter must rise by.
//! * `legit`: one frame a well-behaved guest sends (own MAC, own address)
//!   carrying the marker: it must get through.
//! * `set-mac MAC`: change the interface's MAC (as `ip link set address`).
//! * `add-ip CIDR`: add an address to the interface.
//! * `udp --from ADDR --to ADDR:PORT`: send one datagram through the
//!   guest's kernel from a bound source address (after `add-ip`: a
//!   foreign address), carrying the marker.
//! * `xs-flood --count N`: write N times into the guest's own frontend
//!   directories (junk keys and trees, a junk `mac`), as fast as xenstore answers;
//!   prints how many writes xenstore accepted and refused.
//!
//! Not a benchmark and not a product: a test tool of the lab (it is built
//! with the workspace so the lab tests find it next to `drvdom`).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use testutil::packet::{self, RawSocket};
use xentypes::{IpCidr, MacAddr};

/// A hostile guest for drvdom's lab (run it with `drvdom lab exec GUEST --`).
#[derive(Debug, Parser)]
#[command(name = "drvdom-hostile-guest", version)]
struct Args {
    /// The guest's interface.
    #[arg(long, default_value = "eth0", global = true)]
    iface: String,
    /// Bytes every frame or datagram carries, so a capture can find them.
    #[arg(long, default_value = "drvdom-hostile", global = true)]
    marker: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Send the battery of hostile frames; print what the filter must count.
    Attack {
        /// This guest's own IPv4 address.
        #[arg(long)]
        own_ip: Ipv4Addr,
        /// Another guest's MAC (to impersonate).
        #[arg(long)]
        peer_mac: MacAddr,
        /// Another guest's IPv4 address (gratuitous ARP for it).
        #[arg(long)]
        peer_ip: Ipv4Addr,
        /// The uplink router's MAC (to impersonate).
        #[arg(long)]
        router_mac: MacAddr,
        /// The uplink router's IPv4 address (where spoofed datagrams go).
        #[arg(long)]
        router_ip: Ipv4Addr,
        /// How many random source MACs to flood with.
        #[arg(long, default_value_t = 500)]
        flood: u32,
    },
    /// Send one legitimate frame (own MAC, own address) to `to`.
    Legit {
        /// This guest's own IPv4 address.
        #[arg(long)]
        own_ip: Ipv4Addr,
        /// Destination address (the frame is broadcast on the link).
        #[arg(long)]
        to: Ipv4Addr,
    },
    /// Change the interface's MAC.
    SetMac {
        /// The new MAC.
        mac: MacAddr,
    },
    /// Add an address to the interface.
    AddIp {
        /// Address/prefix.
        cidr: IpCidr,
    },
    /// Send one UDP datagram through the kernel from a bound address.
    Udp {
        /// Source address (must be on the interface).
        #[arg(long)]
        from: std::net::IpAddr,
        /// Destination address and port.
        #[arg(long)]
        to: SocketAddr,
    },
    /// Write into the guest's own frontend directories, `count` times.
    XsFlood {
        /// Number of writes.
        #[arg(long, default_value_t = 2000)]
        count: u32,
    },
}

const BCAST: [u8; 6] = [0xff; 6];
const ALL_NODES: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];

/// The interface's MAC, from the namespace's own sysfs.
fn own_mac(iface: &str) -> anyhow::Result<MacAddr> {
    let p = format!("/sys/class/net/{iface}/address");
    let s = std::fs::read_to_string(&p).with_context(|| format!("read {p}"))?;
    MacAddr::parse_strict(s.trim()).with_context(|| format!("parse {p}"))
}

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap_or(Ipv6Addr::UNSPECIFIED)
}

/// The battery: frames and the counters they must raise, in the order
/// (mac, l2ctl, ra, dhcp, spoof).
#[allow(clippy::too_many_arguments)]
fn battery(
    me: [u8; 6],
    own_ip: Ipv4Addr,
    peer_mac: [u8; 6],
    peer_ip: Ipv4Addr,
    router_mac: [u8; 6],
    router_ip: Ipv4Addr,
    flood: u32,
    marker: &[u8],
) -> (Vec<Vec<u8>>, [u64; 5]) {
    let ll = MacAddr(me).to_link_local();
    let udp = |src: Ipv4Addr| packet::ipv4_udp(src, router_ip, 4000, 9, marker);
    let mut f = Vec::new();
    let mut c = [0u64; 5];
    // Another guest's MAC; the uplink router's MAC (to the router, as a
    // port-stealing guest would).
    f.push(packet::eth(
        BCAST,
        peer_mac,
        packet::ETH_P_IP,
        &udp(peer_ip),
    ));
    f.push(packet::eth(
        router_mac,
        router_mac,
        packet::ETH_P_IP,
        &udp(router_ip),
    ));
    c[0] += 2;
    // Random source MACs (locally administered unicast).
    for i in 0..flood {
        let b = i.to_be_bytes();
        let r = (i.wrapping_mul(2_654_435_761)).to_be_bytes();
        let src = [0x02, r[0], r[1] ^ b[1], b[1], b[2], b[3]];
        f.push(packet::eth(BCAST, src, packet::ETH_P_IP, &udp(own_ip)));
        c[0] += 1;
    }
    // STP BPDU from its own MAC.
    f.push(packet::bpdu(me, marker));
    c[1] += 1;
    // IPv6 router advertisement from its own link-local address.
    f.push(packet::eth(
        ALL_NODES,
        me,
        packet::ETH_P_IPV6,
        &packet::router_advert(ll, marker),
    ));
    c[2] += 1;
    // DHCP offer and DHCPv6 advertise from its own addresses.
    f.push(packet::eth(
        BCAST,
        me,
        packet::ETH_P_IP,
        &packet::ipv4_udp(own_ip, Ipv4Addr::BROADCAST, 67, 68, marker),
    ));
    f.push(packet::eth(
        [0x33, 0x33, 0, 1, 0, 2],
        me,
        packet::ETH_P_IPV6,
        &packet::ipv6_udp(ll, v6("ff02::1:2"), 547, 546, marker),
    ));
    c[3] += 2;
    // Foreign IPv4 and IPv6 sources; a gratuitous ARP for the peer's
    // address (with its own MAC: the poisoning that matters).
    let foreign = Ipv4Addr::from(u32::from(own_ip) ^ 0x0000_00f0);
    f.push(packet::eth(BCAST, me, packet::ETH_P_IP, &udp(foreign)));
    f.push(packet::eth(
        ALL_NODES,
        me,
        packet::ETH_P_IPV6,
        &packet::ipv6_udp(v6("2001:db8::99"), v6("ff02::1"), 4000, 9, marker),
    ));
    let mut garp = packet::arp(2, me, peer_ip, BCAST, peer_ip);
    garp.extend_from_slice(marker);
    f.push(packet::eth(BCAST, me, packet::ETH_P_ARP, &garp));
    c[4] += 3;
    (f, c)
}

/// Send frames, pacing bursts so the kernel's per-CPU receive backlog
/// (`netdev_max_backlog`, 1000, shared by every namespace) never overflows:
/// a lost frame would be neither counted nor seen.
fn send_all(sock: &RawSocket, frames: &[Vec<u8>]) -> anyhow::Result<()> {
    for (i, fr) in frames.iter().enumerate() {
        sock.send(fr).context("send a frame")?;
        if i % 100 == 99 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    Ok(())
}

/// `SIOCSIFHWADDR` on `iface`.
fn set_mac(iface: &str, mac: MacAddr) -> anyhow::Result<()> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    if iface.len() >= libc::IFNAMSIZ {
        bail!("interface name {iface:?} too long");
    }
    // SAFETY: plain socket(2) with constant arguments; checked below and
    // owned right after.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(std::io::Error::last_os_error()).context("socket");
    }
    // SAFETY: `raw` is a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(iface.bytes()) {
        *d = s as libc::c_char;
    }
    // SAFETY: writing the `sockaddr` member of the union, the one
    // SIOCSIFHWADDR reads.
    unsafe {
        ifr.ifr_ifru.ifru_hwaddr.sa_family = libc::ARPHRD_ETHER;
        for (d, s) in ifr.ifr_ifru.ifru_hwaddr.sa_data.iter_mut().zip(mac.0) {
            *d = s as libc::c_char;
        }
    }
    // SAFETY: `fd` is an open socket and `ifr` a valid ifreq that outlives
    // the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCSIFHWADDR, &ifr) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("set {iface}'s MAC"));
    }
    Ok(())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the async runtime")
}

/// Writes into the guest's frontend directories: (accepted, refused).
async fn xs_flood(count: u32) -> anyhow::Result<(u32, u32)> {
    let c = xenstore::AsyncClient::connect_default()
        .await
        .context("connect to xenstore (XENSTORED_PATH)")?;
    let domid = c.read("domid").await.context("read this domain's domid")?;
    let domid = String::from_utf8_lossy(&domid).trim().to_string();
    let base = format!("/local/domain/{domid}/device/vif");
    let devs = c.directory(&base).await.unwrap_or_default();
    if devs.is_empty() {
        bail!("no frontend under {base}");
    }
    let (mut ok, mut refused) = (0u32, 0u32);
    for i in 0..count {
        let dev = &devs[i as usize % devs.len()];
        let path = match i % 3 {
            0 => format!("{base}/{dev}/mac"),
            1 => format!("{base}/{dev}/junk-{}", i % 64),
            _ => format!("{base}/{dev}/junk/{}/deep", i % 16),
        };
        let value = match i % 3 {
            0 => format!("ff:ff:ff:ff:ff:{:02x}", i % 256),
            _ => "x".repeat((i % 200) as usize),
        };
        match c.write(&path, value).await {
            Ok(()) => ok += 1,
            Err(_) => refused += 1,
        }
    }
    Ok((ok, refused))
}

#[allow(clippy::print_stdout)] // the command's one line of JSON
fn run(args: Args) -> anyhow::Result<()> {
    let marker = args.marker.as_bytes();
    match args.cmd {
        Cmd::Attack {
            own_ip,
            peer_mac,
            peer_ip,
            router_mac,
            router_ip,
            flood,
        } => {
            let me = own_mac(&args.iface)?;
            let (frames, c) = battery(
                me.0,
                own_ip,
                peer_mac.0,
                peer_ip,
                router_mac.0,
                router_ip,
                flood,
                marker,
            );
            let sock = RawSocket::open(&args.iface).context("raw socket")?;
            send_all(&sock, &frames)?;
            println!(
                "{}",
                serde_json::json!({
                    "sent": frames.len(),
                    "expect": {"mac": c[0], "l2ctl": c[1], "ra": c[2], "dhcp": c[3], "spoof": c[4]},
                })
            );
        }
        Cmd::Legit { own_ip, to } => {
            let me = own_mac(&args.iface)?;
            let f = packet::eth(
                BCAST,
                me.0,
                packet::ETH_P_IP,
                &packet::ipv4_udp(own_ip, to, 4000, 9, marker),
            );
            RawSocket::open(&args.iface)
                .context("raw socket")?
                .send(&f)
                .context("send")?;
            println!("{}", serde_json::json!({"sent": 1}));
        }
        Cmd::SetMac { mac } => {
            set_mac(&args.iface, mac)?;
            println!("{}", serde_json::json!({"mac": mac.to_string()}));
        }
        Cmd::AddIp { cidr } => {
            runtime()?.block_on(async {
                let nl = sim::link::Netlink::connect().context("netlink")?;
                nl.add_address(&args.iface, cidr)
                    .await
                    .with_context(|| format!("add {cidr} to {}", args.iface))
            })?;
            println!("{}", serde_json::json!({"added": cidr.to_string()}));
        }
        Cmd::Udp { from, to } => {
            let s = UdpSocket::bind(SocketAddr::new(from, 0))
                .with_context(|| format!("bind {from}"))?;
            s.send_to(marker, to)
                .with_context(|| format!("send to {to}"))?;
            println!("{}", serde_json::json!({"sent": 1}));
        }
        Cmd::XsFlood { count } => {
            let (ok, refused) = runtime()?.block_on(xs_flood(count))?;
            println!("{}", serde_json::json!({"writes": ok, "refused": refused}));
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            #[allow(clippy::print_stderr)] // the binary's one error report
            {
                eprintln!("drvdom-hostile-guest: error: {e:#}");
            }
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_battery_counts_every_frame_once() {
        let (f, c) = battery(
            [0, 0x16, 0x3e, 0, 0, 1],
            Ipv4Addr::new(198, 51, 100, 11),
            [0, 0x16, 0x3e, 0, 0, 2],
            Ipv4Addr::new(198, 51, 100, 12),
            [2, 0, 0, 0, 0, 1],
            Ipv4Addr::new(198, 51, 100, 1),
            10,
            b"m",
        );
        assert_eq!(f.len() as u64, c.iter().sum::<u64>());
        assert_eq!(c, [12, 1, 1, 2, 3]);
        // Every random source MAC is unicast, locally administered, and
        // none is the guest's own.
        for fr in &f[2..12] {
            assert_eq!(fr[6] & 0x03, 0x02);
            assert_ne!(&fr[6..12], &[0, 0x16, 0x3e, 0, 0, 1]);
        }
        assert!(f.iter().all(|fr| packet::contains(fr, b"m")));
    }
}
