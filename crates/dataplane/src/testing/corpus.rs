//! Malformed and hostile frames, each a named case with the verdict the pipeline must give it
//! against the [`fixture`](super::fixture) configuration.
//!
//! Every frame is built from the commented fixtures below ([`ETH_IPV4`], [`IPV4_TCP`],
//! [`TCP_SYN`], [`UDP_QUERY`], [`ARP_REQUEST`]) with the fields a case is about changed, and the
//! IPv4 header checksum computed again where the case wants it right. Each IPv4 case has a
//! client port of its own, so the cases do not depend on each other: a corpus run frame by
//! frame, as one burst, or each case on a fresh worker gives the same verdicts.
//!
//! The fixture's worker has the kernel path on (issue 13): what is addressed to the DIP and
//! not handled by rvs itself (any IP protocol, fragments too, and ARP replies to the DIP at the
//! port's MAC, after learning) expects [`Verdict::Kernel`]; the VIP's other ports and protocols
//! are still dropped (`vip_other_ports` is off by default, as IPVS).
//!
//! The cases flagged `needs_arp_hardening` expect the ARP spoofing protection (an ARP frame
//! claiming a tracked real server's address with another MAC is refused as
//! [`DropReason::ArpRefused`] and the server's MAC kept): they run once [`ARP_HARDENING`] is
//! set.

use super::fixture::{
    ATTACKER_MAC, DIP, PORT_MAC, ROUTER, ROUTER_MAC, RS1, RS1_MAC, RS2, RS2_MAC, STRANGER,
    STRANGER_MAC, TCP_PORT, UDP_PORT, VIP,
};
use crate::pipeline::{DropReason, RxCsum, Verdict};
use std::net::Ipv4Addr;

/// Whether the pipeline refuses spoofed ARP updates (the neighbour hardening of issue 12). Set
/// it to `true` when that lands: the cases flagged `needs_arp_hardening` then run, and the test
/// `arp_hardening_flag_matches_the_pipeline` fails while this does not match the pipeline.
pub const ARP_HARDENING: bool = true;

/// One frame and what must become of it.
#[derive(Debug, Clone)]
pub struct Case {
    /// Unique, a file name (the fuzz seed's).
    pub name: &'static str,
    pub frame: Vec<u8>,
    /// What the NIC says of its IPv4 header checksum (the in-process test over `net_pcap`
    /// can only give [`RxCsum::Unknown`]).
    pub csum: RxCsum,
    pub expect: Verdict,
    /// Expects the ARP spoofing protection (see [`ARP_HARDENING`]).
    pub needs_arp_hardening: bool,
}

/// Ethernet header of a client's frame (14 bytes).
pub const ETH_IPV4: [u8; 14] = [
    0x02, 0x70, 0x63, 0x61, 0x70, 0x00, // destination: the port
    0x02, 0x00, 0x00, 0x00, 0x00, 0x0a, // source: the clients' router
    0x08, 0x00, //                         EtherType IPv4
];

/// IPv4 header of a client's TCP segment to the VIP (20 bytes, no options).
pub const IPV4_TCP: [u8; 20] = [
    0x45, //             version 4, IHL 5 (20 bytes)
    0x00, //             DSCP / ECN
    0x00, 0x28, //       total length 40: this header and the TCP header, no payload
    0x00, 0x01, //       identification
    0x40, 0x00, //       flags DF, fragment offset 0
    0x40, //             TTL 64
    0x06, //             protocol TCP
    0x00, 0x00, //       header checksum (computed per case)
    198, 18, 1, 10, //   source: the client
    198, 18, 0, 100, //  destination: the VIP
];

/// TCP header of a client's SYN to port 80 (20 bytes).
pub const TCP_SYN: [u8; 20] = [
    0x00, 0x00, //             source port (one per case)
    0x00, 0x50, //             destination port 80
    0x00, 0x00, 0x00, 0x01, // sequence number
    0x00, 0x00, 0x00, 0x00, // acknowledgment number
    0x50, //                   data offset 5 (20 bytes)
    0x02, //                   flags: SYN
    0xff, 0xff, //             window
    0x00, 0x00, //             checksum (a DR director does not look at it)
    0x00, 0x00, //             urgent pointer
];

/// UDP header and payload of a client's DNS query to port 53 (20 bytes).
pub const UDP_QUERY: [u8; 20] = [
    0x00, 0x00, //             source port (one per case)
    0x00, 0x35, //             destination port 53
    0x00, 0x14, //             length 20: this header and the 12-byte payload
    0x00, 0x00, //             checksum: none
    0x12, 0x34, 0x01, 0x00, // DNS: id, flags RD
    0x00, 0x00, 0x00, 0x00, // no question, no answer (a bare header)
    0x00, 0x00, 0x00, 0x00, // no authority, no additional
];

/// The clients' router asks who has the VIP (42 bytes; padded to 60 on the wire).
pub const ARP_REQUEST: [u8; 42] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // Ethernet destination: broadcast
    0x02, 0x00, 0x00, 0x00, 0x00, 0x0a, // source: the router
    0x08, 0x06, //                         EtherType ARP
    0x00, 0x01, //                         hardware type Ethernet
    0x08, 0x00, //                         protocol type IPv4
    0x06, //                               hardware address length
    0x04, //                               protocol address length
    0x00, 0x01, //                         operation: request
    0x02, 0x00, 0x00, 0x00, 0x00, 0x0a, // sender hardware address: the router
    198, 18, 0, 254, //                    sender protocol address: the router
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // target hardware address: unknown
    198, 18, 0, 100, //                    target protocol address: the VIP
];

/// Offsets in a frame.
mod at {
    pub const ETHERTYPE: usize = 12;
    pub const IP: usize = 14;
    pub const IP_TOTAL_LEN: usize = 16;
    pub const IP_FLAGS: usize = 20;
    pub const IP_TTL: usize = 22;
    pub const IP_PROTO: usize = 23;
    pub const IP_CSUM: usize = 24;
    pub const IP_SRC: usize = 26;
    pub const IP_DST: usize = 30;
    /// The TCP or UDP header, after an IPv4 header without options.
    pub const L4: usize = 34;
    pub const DPORT: usize = 36;
    pub const TCP_OFFSET: usize = 46;
    pub const TCP_FLAGS: usize = 47;
    pub const UDP_LEN: usize = 38;
    /// ARP fields (after the Ethernet header).
    pub const ARP_HTYPE: usize = 14;
    pub const ARP_PTYPE: usize = 16;
    pub const ARP_HLEN: usize = 18;
    pub const ARP_PLEN: usize = 19;
    pub const ARP_OP: usize = 20;
    pub const ARP_SHA: usize = 22;
    pub const ARP_SPA: usize = 28;
    pub const ARP_THA: usize = 32;
    pub const ARP_TPA: usize = 38;
}

const SYN: u8 = 0x02;
const FIN: u8 = 0x01;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;
const URG: u8 = 0x20;

/// Ethernet frames shorter than this are padded (without FCS).
const MIN_FRAME: usize = 60;

fn put16(f: &mut [u8], at: usize, v: u16) {
    f[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

fn put_ip(f: &mut [u8], at: usize, ip: Ipv4Addr) {
    f[at..at + 4].copy_from_slice(&ip.octets());
}

fn pad(mut f: Vec<u8>) -> Vec<u8> {
    if f.len() < MIN_FRAME {
        f.resize(MIN_FRAME, 0);
    }
    f
}

/// Compute the IPv4 header checksum of `f` again (the header as long as its IHL says; left
/// alone if that is not inside the frame).
pub fn fix_ip_csum(f: &mut [u8]) {
    let Some(&vihl) = f.get(at::IP) else { return };
    let hl = usize::from(vihl & 0x0f) * 4;
    if hl < 20 || f.len() < at::IP + hl {
        return;
    }
    crate::wire::ipv4::Packet::new_unchecked(&mut f[at::IP..]).fill_checksum();
}

/// A client's TCP segment to VIP:80 from port `sport` with `flags`, checksummed, padded to 60.
pub fn tcp(sport: u16, flags: u8) -> Vec<u8> {
    let mut f = [&ETH_IPV4[..], &IPV4_TCP, &TCP_SYN].concat();
    put16(&mut f, at::L4, sport);
    f[at::TCP_FLAGS] = flags;
    fix_ip_csum(&mut f);
    pad(f)
}

/// A client's DNS query to VIP:53 from port `sport`, checksummed, padded to 60.
pub fn udp(sport: u16) -> Vec<u8> {
    let mut f = [&ETH_IPV4[..], &IPV4_TCP, &UDP_QUERY].concat();
    f[at::IP_PROTO] = 17;
    put16(&mut f, at::L4, sport);
    fix_ip_csum(&mut f);
    pad(f)
}

/// [`tcp`] with `n` bytes of payload (total length and frame grown to fit).
fn tcp_with_payload(sport: u16, flags: u8, n: usize) -> Vec<u8> {
    let mut f = tcp(sport, flags);
    f.truncate(54);
    f.extend((0..n).map(|i| i as u8));
    put16(&mut f, at::IP_TOTAL_LEN, (40 + n) as u16);
    fix_ip_csum(&mut f);
    pad(f)
}

/// [`udp`] with `n` bytes of payload.
fn udp_with_payload(sport: u16, n: usize) -> Vec<u8> {
    let mut f = udp(sport);
    f.truncate(42);
    f.extend((0..n).map(|i| i as u8));
    put16(&mut f, at::IP_TOTAL_LEN, (28 + n) as u16);
    put16(&mut f, at::UDP_LEN, (8 + n) as u16);
    fix_ip_csum(&mut f);
    pad(f)
}

/// `f` with `opts` (a multiple of 4 bytes) as IPv4 options: IHL and total length grown,
/// checksummed.
fn with_ip_options(mut f: Vec<u8>, opts: &[u8]) -> Vec<u8> {
    f.splice(at::L4..at::L4, opts.iter().copied());
    f[at::IP] = 0x40 | (5 + opts.len() / 4) as u8;
    let tl = u16::from_be_bytes([f[at::IP_TOTAL_LEN], f[at::IP_TOTAL_LEN + 1]]);
    put16(&mut f, at::IP_TOTAL_LEN, tl + opts.len() as u16);
    fix_ip_csum(&mut f);
    f
}

/// `f` with its IPv4 header changed by `change`, then checksummed again.
fn ip_changed(mut f: Vec<u8>, change: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    change(&mut f);
    fix_ip_csum(&mut f);
    f
}

/// `f` with bytes changed by `change` and the checksum left as it was.
fn changed(mut f: Vec<u8>, change: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    change(&mut f);
    f
}

/// `f` with an 802.1Q tag (VLAN `vid`, EtherType `tpid`) after the MACs.
pub fn tagged(mut f: Vec<u8>, tpid: u16, vid: u16) -> Vec<u8> {
    let mut tag = [0u8; 4];
    tag[..2].copy_from_slice(&tpid.to_be_bytes());
    tag[2..].copy_from_slice(&vid.to_be_bytes());
    f.splice(at::ETHERTYPE..at::ETHERTYPE, tag);
    f
}

/// An ARP frame from the [`ARP_REQUEST`] fixture: Ethernet destination `eth_dst`, source =
/// `sha`, operation `op`, sender `sha`/`spa`, target `tha`/`tpa`; padded to 60.
fn arp(
    eth_dst: [u8; 6],
    op: u16,
    sha: [u8; 6],
    spa: Ipv4Addr,
    tha: [u8; 6],
    tpa: Ipv4Addr,
) -> Vec<u8> {
    let mut f = ARP_REQUEST.to_vec();
    f[..6].copy_from_slice(&eth_dst);
    f[6..12].copy_from_slice(&sha);
    put16(&mut f, at::ARP_OP, op);
    f[at::ARP_SHA..at::ARP_SHA + 6].copy_from_slice(&sha);
    put_ip(&mut f, at::ARP_SPA, spa);
    f[at::ARP_THA..at::ARP_THA + 6].copy_from_slice(&tha);
    put_ip(&mut f, at::ARP_TPA, tpa);
    pad(f)
}

const BCAST: [u8; 6] = [0xff; 6];
const ZERO: [u8; 6] = [0; 6];
const REQUEST: u16 = 1;
const REPLY: u16 = 2;

/// The router asks for `tpa` (broadcast).
pub fn who_has(tpa: Ipv4Addr) -> Vec<u8> {
    arp(BCAST, REQUEST, ROUTER_MAC, ROUTER, ZERO, tpa)
}

/// `sha` claims `ip` unasked, in a reply to the port (as an answer to our request would be).
fn is_at(ip: Ipv4Addr, sha: [u8; 6]) -> Vec<u8> {
    arp(PORT_MAC, REPLY, sha, ip, PORT_MAC, DIP)
}

/// A gratuitous ARP request: `sha` announces `ip` (sender = target), broadcast.
fn garp(ip: Ipv4Addr, sha: [u8; 6]) -> Vec<u8> {
    arp(BCAST, REQUEST, sha, ip, ZERO, ip)
}

fn drop(r: DropReason) -> Verdict {
    Verdict::Drop(r)
}

struct Builder {
    cases: Vec<Case>,
    port: u16,
}

impl Builder {
    /// A client port no other case uses.
    fn port(&mut self) -> u16 {
        self.port += 1;
        self.port
    }

    fn push(&mut self, name: &'static str, expect: Verdict, frame: Vec<u8>) {
        self.push_with(name, RxCsum::Unknown, expect, frame, false);
    }

    fn push_with(
        &mut self,
        name: &'static str,
        csum: RxCsum,
        expect: Verdict,
        frame: Vec<u8>,
        needs_arp_hardening: bool,
    ) {
        self.cases.push(Case {
            name,
            frame,
            csum,
            expect,
            needs_arp_hardening,
        });
    }

    /// A spoofing case: refused once the ARP hardening is in.
    fn spoof(&mut self, name: &'static str, expect: Verdict, frame: Vec<u8>) {
        self.push_with(name, RxCsum::Unknown, expect, frame, true);
    }
}

/// Every case, the ones that need the ARP hardening included.
pub fn all() -> Vec<Case> {
    use DropReason as R;
    let mut b = Builder {
        cases: Vec::new(),
        port: 20_000,
    };

    // --- Well-formed (and odd but valid) traffic: forwarded. ---
    let p = b.port();
    b.push("tcp_syn", Verdict::Forward, tcp(p, SYN));
    let p = b.port();
    b.push("udp_query", Verdict::Forward, udp(p));
    let p = b.port();
    b.push(
        "udp_empty_payload",
        Verdict::Forward,
        udp_with_payload(p, 0),
    );
    let p = b.port();
    b.push(
        "tcp_syn_payload_100",
        Verdict::Forward,
        tcp_with_payload(p, SYN, 100),
    );
    // IPVS schedules on a SYN without RST, whatever else is set.
    let p = b.port();
    b.push("tcp_syn_ack", Verdict::Forward, tcp(p, SYN | ACK));
    let p = b.port();
    b.push("tcp_syn_fin", Verdict::Forward, tcp(p, SYN | FIN));
    b.push("tcp_src_port_0", Verdict::Forward, tcp(0, SYN));
    // A DR director reads neither the TTL, nor the TCP header length, nor the UDP length.
    let p = b.port();
    b.push(
        "ip_ttl_0",
        Verdict::Forward,
        ip_changed(tcp(p, SYN), |f| f[at::IP_TTL] = 0),
    );
    let p = b.port();
    b.push(
        "tcp_data_offset_0",
        Verdict::Forward,
        changed(tcp(p, SYN), |f| f[at::TCP_OFFSET] = 0x00),
    );
    let p = b.port();
    b.push(
        "tcp_data_offset_15",
        Verdict::Forward,
        changed(tcp(p, SYN), |f| f[at::TCP_OFFSET] = 0xf0),
    );
    let p = b.port();
    b.push(
        "udp_length_65535",
        Verdict::Forward,
        changed(udp(p), |f| put16(f, at::UDP_LEN, 0xffff)),
    );
    // The reserved ("evil") flag bit is not a fragment bit.
    let p = b.port();
    b.push(
        "ip_reserved_flag",
        Verdict::Forward,
        ip_changed(tcp(p, SYN), |f| f[at::IP_FLAGS] = 0xc0),
    );
    // IP options: skipped over (IHL), not interpreted.
    let p = b.port();
    b.push(
        "ip_options_nop",
        Verdict::Forward,
        with_ip_options(tcp(p, SYN), &[1, 1, 1, 0]),
    );
    let p = b.port();
    let mut rr = vec![7u8, 39, 4]; // record route: 39 bytes, pointer 4, nine empty slots
    rr.resize(39, 0);
    rr.push(0); // end of options: 40 bytes, IHL 15
    b.push(
        "ip_options_40_bytes",
        Verdict::Forward,
        with_ip_options(tcp(p, SYN), &rr),
    );
    let p = b.port();
    b.push(
        "ip_option_lsrr",
        Verdict::Forward,
        // loose source route: type 131, length 7, pointer 4, one hop 198.18.0.11; NOP
        with_ip_options(tcp(p, SYN), &[131, 7, 4, 198, 18, 0, 11, 1]),
    );
    // Jumbo frames (9000 bytes, total length 8986).
    let p = b.port();
    b.push(
        "jumbo_tcp_9000",
        Verdict::Forward,
        tcp_with_payload(p, SYN, 9000 - 54),
    );
    let p = b.port();
    b.push(
        "jumbo_udp_9000",
        Verdict::Forward,
        udp_with_payload(p, 9000 - 42),
    );
    // Group destination MACs are accepted (ARP needs broadcast); the packet is for the VIP.
    let p = b.port();
    b.push(
        "broadcast_dst_mac_syn",
        Verdict::Forward,
        changed(tcp(p, SYN), |f| f[..6].copy_from_slice(&BCAST)),
    );
    let p = b.port();
    b.push(
        "multicast_dst_mac_syn",
        Verdict::Forward,
        changed(tcp(p, SYN), |f| {
            f[..6].copy_from_slice(&[0x01, 0x00, 0x5e, 0x00, 0x00, 0x01])
        }),
    );
    // The NIC checked the header: its word is taken.
    let p = b.port();
    b.push_with(
        "nic_good_flag_wrong_sum",
        RxCsum::Good,
        Verdict::Forward,
        changed(tcp(p, SYN), |f| f[at::IP_CSUM] ^= 0x55),
        false,
    );

    // --- Finding 5: a broken header checksum, martian sources. ---
    let p = b.port();
    b.push(
        "bad_ip_checksum",
        drop(R::BadIpChecksum),
        changed(tcp(p, SYN), |f| f[at::IP_CSUM] ^= 0x55),
    );
    let p = b.port();
    b.push(
        "bad_ip_checksum_zero",
        drop(R::BadIpChecksum),
        changed(tcp(p, SYN), |f| put16(f, at::IP_CSUM, 0)),
    );
    let p = b.port();
    b.push(
        "bad_ip_checksum_udp",
        drop(R::BadIpChecksum),
        changed(udp(p), |f| f[at::IP_CSUM + 1] ^= 1),
    );
    let p = b.port();
    b.push(
        "bad_ip_checksum_options",
        drop(R::BadIpChecksum),
        // the end-of-options byte made a NOP after the checksum was computed
        changed(with_ip_options(tcp(p, SYN), &[1, 1, 1, 0]), |f| {
            f[at::L4 + 3] = 1
        }),
    );
    let p = b.port();
    b.push_with(
        "nic_bad_flag_right_sum",
        RxCsum::Bad,
        drop(R::BadIpChecksum),
        tcp(p, SYN),
        false,
    );
    for (name, src) in [
        ("martian_src_0.0.0.0", Ipv4Addr::new(0, 0, 0, 0)),
        ("martian_src_0.1.2.3", Ipv4Addr::new(0, 1, 2, 3)),
        ("martian_src_127.0.0.1", Ipv4Addr::new(127, 0, 0, 1)),
        ("martian_src_224.0.0.1", Ipv4Addr::new(224, 0, 0, 1)),
        (
            "martian_src_239.255.255.250",
            Ipv4Addr::new(239, 255, 255, 250),
        ),
        ("martian_src_240.0.0.1", Ipv4Addr::new(240, 0, 0, 1)),
        ("martian_src_255.255.255.255", Ipv4Addr::BROADCAST),
        ("martian_src_vip", VIP),
        ("martian_src_dip", DIP),
    ] {
        let p = b.port();
        b.push(
            name,
            drop(R::MartianSource),
            ip_changed(tcp(p, SYN), |f| put_ip(f, at::IP_SRC, src)),
        );
    }
    let p = b.port();
    b.push(
        "martian_src_127_udp",
        drop(R::MartianSource),
        ip_changed(udp(p), |f| put_ip(f, at::IP_SRC, Ipv4Addr::LOCALHOST)),
    );
    let p = b.port();
    b.push(
        "martian_src_vip_ack",
        drop(R::MartianSource),
        ip_changed(tcp(p, ACK), |f| put_ip(f, at::IP_SRC, VIP)),
    );

    // --- Finding 4: TCP without a SYN (or with a RST) creates no connection. ---
    for (name, flags) in [
        ("bare_ack", ACK),
        ("bare_fin", FIN),
        ("bare_rst", RST),
        ("null_flags", 0),
        ("syn_rst", SYN | RST),
        ("fin_ack", FIN | ACK),
        ("rst_ack", RST | ACK),
        ("psh_ack", PSH | ACK),
        ("urg_only", URG),
        ("xmas_all_flags", 0x3f),
    ] {
        let p = b.port();
        b.push(name, drop(R::TcpNotSyn), tcp(p, flags));
    }
    let p = b.port();
    b.push(
        "ack_with_payload",
        drop(R::TcpNotSyn),
        tcp_with_payload(p, PSH | ACK, 500),
    );

    // --- Truncated at every header boundary (and inside each header). ---
    let syn = tcp(b.port(), SYN);
    b.push("empty_frame", drop(R::ShortFrame), vec![]);
    b.push("one_byte", drop(R::ShortFrame), vec![0x02]);
    b.push("eth_cut_after_dst", drop(R::ShortFrame), syn[..6].to_vec());
    b.push("eth_cut_13", drop(R::ShortFrame), syn[..13].to_vec());
    b.push("eth_header_only_ipv4", drop(R::ShortIp), syn[..14].to_vec());
    b.push("ipv4_cut_1", drop(R::ShortIp), syn[..15].to_vec());
    b.push("ipv4_cut_19", drop(R::ShortIp), syn[..33].to_vec());
    b.push("ipv4_header_only", drop(R::BadTotalLen), syn[..34].to_vec());
    let p = b.port();
    b.push(
        "ipv4_total_len_20_tcp",
        drop(R::ShortL4),
        ip_changed(tcp(p, SYN), |f| put16(f, at::IP_TOTAL_LEN, 20)),
    );
    let p = b.port();
    let opts = with_ip_options(tcp(p, SYN), &[1, 1, 1, 0]);
    b.push("ipv4_options_cut", drop(R::BadIhl), opts[..36].to_vec());
    let p = b.port();
    b.push(
        "tcp_cut_by_frame_13",
        drop(R::BadTotalLen),
        tcp(p, SYN)[..47].to_vec(),
    );
    let p = b.port();
    b.push(
        "tcp_cut_by_frame_19",
        drop(R::BadTotalLen),
        tcp(p, SYN)[..53].to_vec(),
    );
    let p = b.port();
    b.push(
        "tcp_cut_by_total_len_13",
        drop(R::ShortL4),
        ip_changed(tcp(p, SYN), |f| put16(f, at::IP_TOTAL_LEN, 33)),
    );
    let p = b.port();
    b.push(
        "tcp_cut_by_total_len_19",
        drop(R::ShortL4),
        ip_changed(tcp(p, SYN), |f| put16(f, at::IP_TOTAL_LEN, 39)),
    );
    let p = b.port();
    b.push(
        "tcp_options_cut_by_total_len",
        drop(R::ShortL4),
        ip_changed(with_ip_options(tcp(p, SYN), &[1, 1, 1, 0]), |f| {
            put16(f, at::IP_TOTAL_LEN, 40)
        }),
    );
    let p = b.port();
    b.push(
        "udp_cut_by_frame_4",
        drop(R::BadTotalLen),
        ip_changed(udp(p)[..38].to_vec(), |f| put16(f, at::IP_TOTAL_LEN, 28)),
    );
    let p = b.port();
    b.push(
        "udp_cut_by_total_len_7",
        drop(R::ShortL4),
        ip_changed(udp(p), |f| put16(f, at::IP_TOTAL_LEN, 27)),
    );
    let req = who_has(VIP);
    b.push(
        "arp_eth_header_only",
        drop(R::ArpMalformed),
        req[..14].to_vec(),
    );
    b.push("arp_cut_7", drop(R::ArpMalformed), req[..21].to_vec());
    b.push("arp_cut_8", drop(R::ArpMalformed), req[..22].to_vec());
    b.push("arp_cut_27", drop(R::ArpMalformed), req[..41].to_vec());

    // --- Bad lengths and versions. ---
    let p = b.port();
    b.push(
        "total_len_above_frame",
        drop(R::BadTotalLen),
        ip_changed(tcp(p, SYN), |f| put16(f, at::IP_TOTAL_LEN, 47)),
    );
    let p = b.port();
    b.push(
        "total_len_65535",
        drop(R::BadTotalLen),
        ip_changed(tcp(p, SYN), |f| put16(f, at::IP_TOTAL_LEN, 0xffff)),
    );
    let p = b.port();
    b.push(
        "total_len_below_ihl",
        drop(R::BadTotalLen),
        ip_changed(tcp(p, SYN), |f| put16(f, at::IP_TOTAL_LEN, 19)),
    );
    let p = b.port();
    b.push(
        "total_len_zero",
        drop(R::BadTotalLen),
        ip_changed(tcp(p, SYN), |f| put16(f, at::IP_TOTAL_LEN, 0)),
    );
    let p = b.port();
    b.push(
        "total_len_inside_options",
        drop(R::BadTotalLen),
        ip_changed(with_ip_options(tcp(p, SYN), &[1, 1, 1, 0]), |f| {
            put16(f, at::IP_TOTAL_LEN, 22)
        }),
    );
    let p = b.port();
    b.push(
        "jumbo_total_len_above_frame",
        drop(R::BadTotalLen),
        ip_changed(tcp_with_payload(p, SYN, 9000 - 54), |f| {
            put16(f, at::IP_TOTAL_LEN, 8987)
        }),
    );
    for (name, vihl) in [("ihl_0", 0x40), ("ihl_4", 0x44)] {
        let p = b.port();
        b.push(
            name,
            drop(R::BadIhl),
            changed(tcp(p, SYN), |f| f[at::IP] = vihl),
        );
    }
    let p = b.port();
    // IHL 15: a 60-byte header in the 46 bytes after the Ethernet header.
    b.push(
        "ihl_15_beyond_frame",
        drop(R::BadIhl),
        ip_changed(tcp(p, SYN), |f| f[at::IP] = 0x4f),
    );
    for (name, vihl) in [
        ("ip_version_0", 0x05),
        ("ip_version_6", 0x65),
        ("ip_version_15", 0xf5),
    ] {
        let p = b.port();
        b.push(
            name,
            drop(R::BadIpVersion),
            ip_changed(tcp(p, SYN), |f| f[at::IP] = vihl),
        );
    }
    // An ARP body under the IPv4 EtherType: version 0.
    b.push(
        "arp_body_as_ipv4",
        drop(R::BadIpVersion),
        changed(arp(PORT_MAC, REQUEST, ROUTER_MAC, ROUTER, ZERO, VIP), |f| {
            put16(f, at::ETHERTYPE, 0x0800)
        }),
    );

    // --- Fragments: no (or only part of a) transport header. ---
    for (name, flags_offset) in [
        ("fragment_first_mf", 0x2000),
        ("fragment_middle", 0x2000 | 185),
        ("fragment_last", 185),
        ("fragment_df_mf", 0x6000),
        // Offset 1 (8 bytes): overlaps the TCP header (the tiny-fragment attack).
        ("fragment_offset_1", 0x0001),
    ] {
        let p = b.port();
        b.push(
            name,
            drop(R::IpFragment),
            ip_changed(tcp(p, SYN), |f| put16(f, at::IP_FLAGS, flags_offset)),
        );
    }
    let p = b.port();
    b.push(
        "fragment_udp",
        drop(R::IpFragment),
        ip_changed(udp(p), |f| put16(f, at::IP_FLAGS, 0x2000)),
    );

    // --- Other IP protocols (the TCP header's bytes as their payload). ---
    for (name, proto) in [
        ("ip_proto_icmp", 1u8),
        ("ip_proto_ipip", 4),
        ("ip_proto_gre", 47),
        ("ip_proto_esp", 50),
        ("ip_proto_sctp", 132),
        ("ip_proto_255", 255),
    ] {
        let p = b.port();
        b.push(
            name,
            drop(R::NotTcpUdp),
            ip_changed(tcp(p, SYN), |f| f[at::IP_PROTO] = proto),
        );
    }

    // --- Other EtherTypes, VLAN and QinQ tags. ---
    let p = b.port();
    b.push(
        "ipv6",
        drop(R::Ipv6),
        changed(tcp(p, SYN), |f| put16(f, at::ETHERTYPE, 0x86dd)),
    );
    let p = b.port();
    b.push(
        "ipv6_multicast_dst_mac",
        drop(R::Ipv6),
        changed(tcp(p, SYN), |f| {
            f[..6].copy_from_slice(&[0x33, 0x33, 0, 0, 0, 1]);
            put16(f, at::ETHERTYPE, 0x86dd);
        }),
    );
    let p = b.port();
    b.push(
        "vlan_tcp_syn",
        drop(R::Vlan),
        tagged(tcp(p, SYN), 0x8100, 10),
    );
    let p = b.port();
    b.push(
        "vlan_0_priority_tag",
        drop(R::Vlan),
        tagged(tcp(p, SYN), 0x8100, 0),
    );
    b.push(
        "vlan_arp_for_vip",
        drop(R::Vlan),
        tagged(who_has(VIP), 0x8100, 10),
    );
    let p = b.port();
    b.push(
        "qinq_88a8",
        drop(R::Vlan),
        tagged(tagged(tcp(p, SYN), 0x8100, 10), 0x88a8, 20),
    );
    let p = b.port();
    b.push(
        "qinq_8100_8100",
        drop(R::Vlan),
        tagged(tagged(tcp(p, SYN), 0x8100, 10), 0x8100, 20),
    );
    let p = b.port();
    b.push(
        "qinq_9100",
        drop(R::NotIpv4OrArp),
        tagged(tcp(p, SYN), 0x9100, 10),
    );
    for (name, ethertype) in [
        ("rarp", 0x8035u16),
        ("pppoe_session", 0x8864),
        ("mpls", 0x8847),
        ("ethertype_0xffff", 0xffff),
        // A length, not an EtherType: an 802.3 frame with LLC.
        ("ieee_802_3_llc", 0x002e),
    ] {
        let p = b.port();
        b.push(
            name,
            drop(R::NotIpv4OrArp),
            changed(tcp(p, SYN), |f| put16(f, at::ETHERTYPE, ethertype)),
        );
    }
    b.push(
        "lldp",
        drop(R::NotIpv4OrArp),
        pad(vec![
            0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e, // nearest-bridge group address
            0x02, 0x00, 0x00, 0x00, 0x00, 0x0a, // the router
            0x88, 0xcc, //                         EtherType LLDP
            0x02, 0x07, 0x04, 0x02, 0x00, 0x00, 0x00, 0x00, 0x0a, // chassis ID: MAC
            0x04, 0x02, 0x07, 0x31, //             port ID: "1"
            0x06, 0x02, 0x00, 0x78, //             TTL 120 s
            0x00, 0x00, //                         end
        ]),
    );

    // --- Destination MACs. ---
    let p = b.port();
    b.push(
        "foreign_unicast_dst_syn",
        drop(R::NotOurMac),
        changed(tcp(p, SYN), |f| f[..6].copy_from_slice(&STRANGER_MAC)),
    );
    b.push(
        "foreign_unicast_dst_arp_for_vip",
        drop(R::NotOurMac),
        arp(STRANGER_MAC, REQUEST, ROUTER_MAC, ROUTER, ZERO, VIP),
    );
    b.push(
        "foreign_unicast_dst_garbage",
        drop(R::NotOurMac),
        [&STRANGER_MAC[..], &[0xa5; 14]].concat(),
    );

    // --- No service for the destination. ---
    let p = b.port();
    b.push(
        "no_service_port_443",
        drop(R::NoService),
        changed(tcp(p, SYN), |f| put16(f, at::DPORT, 443)),
    );
    let p = b.port();
    b.push(
        "tcp_dst_port_0",
        drop(R::NoService),
        changed(tcp(p, SYN), |f| put16(f, at::DPORT, 0)),
    );
    let p = b.port();
    b.push(
        "tcp_to_udp_port",
        drop(R::NoService),
        changed(tcp(p, SYN), |f| put16(f, at::DPORT, UDP_PORT)),
    );
    let p = b.port();
    b.push(
        "udp_to_tcp_port",
        drop(R::NoService),
        changed(udp(p), |f| put16(f, at::DPORT, TCP_PORT)),
    );
    // To the director's own address: the kernel's, whatever the protocol or port.
    let p = b.port();
    b.push(
        "dst_dip",
        Verdict::Kernel,
        ip_changed(tcp(p, SYN), |f| put_ip(f, at::IP_DST, DIP)),
    );
    let p = b.port();
    b.push(
        "dst_dip_ack",
        Verdict::Kernel,
        ip_changed(tcp(p, ACK), |f| put_ip(f, at::IP_DST, DIP)),
    );
    let p = b.port();
    b.push(
        "dst_dip_udp",
        Verdict::Kernel,
        ip_changed(udp(p), |f| put_ip(f, at::IP_DST, DIP)),
    );
    let p = b.port();
    b.push(
        "dst_dip_icmp",
        Verdict::Kernel,
        ip_changed(tcp(p, SYN), |f| {
            put_ip(f, at::IP_DST, DIP);
            f[at::IP_PROTO] = 1;
        }),
    );
    let p = b.port();
    b.push(
        "dst_dip_fragment",
        Verdict::Kernel,
        ip_changed(udp(p), |f| {
            put_ip(f, at::IP_DST, DIP);
            put16(f, at::IP_FLAGS, 0x2000);
        }),
    );
    // Malformed to the DIP: dropped as any malformed frame (the kernel never sees them).
    let p = b.port();
    b.push(
        "dst_dip_bad_checksum",
        drop(R::BadIpChecksum),
        changed(tcp(p, SYN), |f| put_ip(f, at::IP_DST, DIP)),
    );
    // The VIP's other protocols: dropped (vip_other_ports off).
    let p = b.port();
    b.push(
        "dst_vip_icmp",
        drop(R::NotTcpUdp),
        ip_changed(tcp(p, SYN), |f| f[at::IP_PROTO] = 1),
    );
    let p = b.port();
    b.push(
        "dst_vip_tcp_port_22",
        drop(R::NoService),
        changed(tcp(p, SYN), |f| put16(f, at::DPORT, 22)),
    );
    for (name, dst) in [
        ("dst_not_a_vip", Ipv4Addr::new(198, 18, 0, 200)),
        ("dst_real_server", RS1),
        ("dst_broadcast", Ipv4Addr::BROADCAST),
        ("dst_multicast", Ipv4Addr::new(224, 0, 0, 1)),
    ] {
        let p = b.port();
        b.push(
            name,
            drop(R::NoService),
            ip_changed(tcp(p, SYN), |f| put_ip(f, at::IP_DST, dst)),
        );
    }

    // --- ARP. ---
    b.push("arp_request_for_vip", Verdict::Reply, who_has(VIP));
    b.push("arp_request_for_dip", Verdict::Reply, who_has(DIP));
    b.push(
        "arp_request_for_vip_unicast",
        Verdict::Reply,
        arp(PORT_MAC, REQUEST, ROUTER_MAC, ROUTER, ZERO, VIP),
    );
    // RFC 5227 probe (sender 0.0.0.0): the owner answers.
    b.push(
        "arp_probe_for_vip",
        Verdict::Reply,
        arp(
            BCAST,
            REQUEST,
            STRANGER_MAC,
            Ipv4Addr::UNSPECIFIED,
            ZERO,
            VIP,
        ),
    );
    let mut long = who_has(VIP);
    long.resize(1514, 0x5a);
    b.push("arp_request_for_vip_1514_bytes", Verdict::Reply, long);
    b.push(
        "arp_request_for_dip_from_rs1",
        Verdict::Reply,
        arp(BCAST, REQUEST, RS1_MAC, RS1, ZERO, DIP),
    );
    b.push(
        "arp_request_for_other_host",
        drop(R::ArpNotForUs),
        who_has(STRANGER),
    );
    b.push("arp_request_for_rs1", drop(R::ArpNotForUs), who_has(RS1));
    // A reply to the DIP at the port's MAC: the kernel's neighbour resolution needs it.
    b.push(
        "arp_reply_from_stranger",
        Verdict::Kernel,
        is_at(STRANGER, STRANGER_MAC),
    );
    b.push(
        "arp_reply_from_stranger_to_another_mac",
        drop(R::ArpNotForUs),
        arp(PORT_MAC, REPLY, STRANGER_MAC, STRANGER, ROUTER_MAC, DIP),
    );
    b.push(
        "arp_op_0",
        drop(R::ArpNotForUs),
        arp(BCAST, 0, ROUTER_MAC, ROUTER, ZERO, VIP),
    );
    b.push(
        "arp_op_3_for_vip",
        drop(R::ArpNotForUs),
        arp(BCAST, 3, ROUTER_MAC, ROUTER, ZERO, VIP),
    );
    b.push(
        "arp_op_3_from_rs1",
        drop(R::ArpNotForUs),
        arp(BCAST, 3, ATTACKER_MAC, RS1, ZERO, DIP),
    );
    b.push(
        "arp_op_65535",
        drop(R::ArpNotForUs),
        arp(BCAST, 0xffff, ROUTER_MAC, ROUTER, ZERO, DIP),
    );
    b.push(
        "arp_hlen_8",
        drop(R::ArpMalformed),
        changed(who_has(VIP), |f| f[at::ARP_HLEN] = 8),
    );
    b.push(
        "arp_plen_16",
        drop(R::ArpMalformed),
        changed(who_has(VIP), |f| f[at::ARP_PLEN] = 16),
    );
    b.push(
        "arp_htype_6",
        drop(R::ArpMalformed),
        changed(who_has(VIP), |f| put16(f, at::ARP_HTYPE, 6)),
    );
    b.push(
        "arp_ptype_ipv6",
        drop(R::ArpMalformed),
        changed(who_has(VIP), |f| put16(f, at::ARP_PTYPE, 0x86dd)),
    );
    b.push(
        "garp_request_stranger",
        drop(R::ArpNotForUs),
        garp(STRANGER, STRANGER_MAC),
    );
    b.push(
        "garp_reply_stranger",
        drop(R::ArpNotForUs),
        arp(BCAST, REPLY, STRANGER_MAC, STRANGER, STRANGER_MAC, STRANGER),
    );
    // Someone announces the VIP: not answered (an announcement, not a question).
    b.push(
        "garp_for_vip_by_stranger",
        drop(R::ArpNotForUs),
        garp(VIP, STRANGER_MAC),
    );
    // A request from a group MAC is not answered (the reply would go to a group).
    b.push(
        "arp_request_for_vip_from_group_mac",
        drop(R::ArpNotForUs),
        arp(BCAST, REQUEST, BCAST, ROUTER, ZERO, VIP),
    );
    // A real server announcing the MAC the director has: nothing changes.
    b.push(
        "garp_from_rs1_same_mac",
        Verdict::Consumed,
        garp(RS1, RS1_MAC),
    );
    // Learned (nothing changes) and the kernel's too.
    b.push(
        "arp_reply_from_rs2_same_mac",
        Verdict::Kernel,
        is_at(RS2, RS2_MAC),
    );

    // --- Finding 1: ARP spoofing of a tracked real server (needs the hardening). ---
    let refused = drop(R::ArpRefused);
    b.spoof(
        "spoof_reply_rs1_attacker_mac",
        refused,
        is_at(RS1, ATTACKER_MAC),
    );
    b.spoof(
        "spoof_reply_rs1_attacker_mac_broadcast",
        refused,
        arp(BCAST, REPLY, ATTACKER_MAC, RS1, BCAST, RS1),
    );
    b.spoof("spoof_garp_request_rs1", refused, garp(RS1, ATTACKER_MAC));
    b.spoof(
        "spoof_garp_reply_rs2",
        refused,
        arp(BCAST, REPLY, ATTACKER_MAC, RS2, ATTACKER_MAC, RS2),
    );
    // A request for an address of ours is answered, but teaches nothing.
    b.spoof(
        "spoof_request_for_dip_from_rs1",
        Verdict::Reply,
        arp(BCAST, REQUEST, ATTACKER_MAC, RS1, ZERO, DIP),
    );
    b.spoof(
        "spoof_request_for_vip_from_rs2",
        Verdict::Reply,
        arp(BCAST, REQUEST, ATTACKER_MAC, RS2, ZERO, VIP),
    );
    b.spoof(
        "spoof_request_for_stranger_from_rs1",
        refused,
        arp(BCAST, REQUEST, ATTACKER_MAC, RS1, ZERO, STRANGER),
    );
    b.spoof("spoof_reply_rs1_port_mac", refused, is_at(RS1, PORT_MAC));
    b.spoof("spoof_reply_rs1_zero_mac", refused, is_at(RS1, ZERO));
    b.spoof("spoof_reply_rs1_broadcast_mac", refused, is_at(RS1, BCAST));
    b.spoof(
        "spoof_reply_rs2_multicast_mac",
        refused,
        is_at(RS2, [0x01, 0x00, 0x5e, 0x00, 0x00, 0x01]),
    );
    b.spoof(
        "spoof_request_for_dip_from_rs1_broadcast_mac",
        refused,
        arp(BCAST, REQUEST, BCAST, RS1, ZERO, DIP),
    );
    b.cases
}

/// The cases that run with the pipeline as it is: all, or all but those needing the ARP
/// hardening while [`ARP_HARDENING`] is off.
pub fn active() -> Vec<Case> {
    all()
        .into_iter()
        .filter(|c| ARP_HARDENING || !c.needs_arp_hardening)
        .collect()
}

/// The verdicts `cases` expect, tallied.
pub fn expected(cases: &[Case]) -> super::Tally {
    super::Tally::of(cases.iter().map(|c| &c.expect))
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{neighbour_macs, Fixture};
    use super::super::{check_frame, FrameBurst, Tally};
    use super::*;
    use std::collections::BTreeSet;

    /// Decide `c` on `fx`'s worker: by `process` when the NIC said nothing, else as a burst of
    /// one (which carries the flag).
    fn decide(fx: &mut Fixture, c: &Case, frame: &mut Vec<u8>) -> Verdict {
        if c.csum == RxCsum::Unknown {
            return fx.worker.process(frame, 1_000);
        }
        let mut one = FrameBurst {
            frames: vec![std::mem::take(frame)],
            csum: vec![c.csum],
        };
        let mut v = [Verdict::Consumed];
        fx.worker.process_burst(&mut one, &mut v, 1_000);
        *frame = one.frames.pop().unwrap_or_default();
        v[0]
    }

    fn counters(fx: &Fixture) -> &crate::stats::WorkerCounters {
        fx.shared.stats.worker(0).expect("the fixture's worker")
    }

    #[test]
    fn names_are_unique_and_the_counts_are_met() {
        let all = all();
        let names: BTreeSet<&str> = all.iter().map(|c| c.name).collect();
        assert_eq!(names.len(), all.len(), "duplicate case names");
        let malformed = all
            .iter()
            .filter(|c| !c.needs_arp_hardening && c.expect != Verdict::Forward)
            .count();
        assert!(malformed >= 60, "{malformed} kinds of malformed frames");
        let spoofing = all.iter().filter(|c| c.needs_arp_hardening).count();
        assert!(spoofing >= 10, "{spoofing} spoofing cases");
        eprintln!(
            "corpus: {} cases: {malformed} dropped or answered, {} forwarded, {spoofing} \
             spoofing (needs_arp_hardening)",
            all.len(),
            all.iter().filter(|c| c.expect == Verdict::Forward).count()
        );
    }

    #[test]
    fn every_reason_a_frame_alone_can_earn_is_covered() {
        let covered: BTreeSet<&str> = all()
            .iter()
            .filter_map(|c| match c.expect {
                Verdict::Drop(r) => Some(r.name()),
                _ => None,
            })
            .collect();
        // Not a frame's own doing: the engine's (tx_full, no_mbuf), the tables' size
        // (flow_table_full, persist_table_full), the configuration's state (no_server,
        // neigh_unresolved, no_dest, not_master: a VIP VRRP holds in standby).
        // The kernel path's limits: the engine's queue and the rate over many frames.
        let elsewhere = [
            DropReason::ExceptionFull,
            DropReason::ExceptionRatelimited,
            DropReason::TxFull,
            DropReason::NoMbuf,
            DropReason::FlowTableFull,
            DropReason::PersistTableFull,
            DropReason::NoServer,
            DropReason::NeighUnresolved,
            DropReason::NoDest,
            DropReason::NotMaster,
            // The fixture has no VLAN: these need `[network] vlan` (the pipeline's VLAN tests
            // and the fuzz target's VLAN setup earn them).
            DropReason::VlanOther,
            DropReason::VlanUntagged,
            DropReason::VlanQinq,
        ];
        for r in DropReason::ALL {
            if !elsewhere.contains(&r) {
                assert!(covered.contains(r.name()), "no case for {}", r.name());
            }
        }
        for kind in [
            Verdict::Forward,
            Verdict::Reply,
            Verdict::Consumed,
            Verdict::Kernel,
        ] {
            assert!(
                all().iter().any(|c| c.expect == kind),
                "no case for {kind:?}"
            );
        }
    }

    #[test]
    fn each_case_on_a_fresh_worker() {
        for c in active() {
            let mut fx = Fixture::new();
            let mut f = c.frame.clone();
            let v = decide(&mut fx, &c, &mut f);
            assert_eq!(v, c.expect, "case {}", c.name);
            check_frame(&c.frame, &f, v).unwrap_or_else(|e| panic!("case {}: {e}", c.name));
            Tally::of([&v])
                .check_counters(counters(&fx))
                .unwrap_or_else(|e| panic!("case {}: {e}", c.name));
            assert_eq!(
                fx.neighbour_macs(),
                [Some(RS1_MAC), Some(RS2_MAC)],
                "case {} moved a real server's MAC",
                c.name
            );
        }
    }

    #[test]
    fn the_corpus_frame_by_frame_on_one_worker() {
        let cases = active();
        let mut fx = Fixture::new();
        let mut got = Vec::new();
        for c in &cases {
            let mut f = c.frame.clone();
            let v = decide(&mut fx, c, &mut f);
            assert_eq!(v, c.expect, "case {}", c.name);
            check_frame(&c.frame, &f, v).unwrap_or_else(|e| panic!("case {}: {e}", c.name));
            got.push(v);
        }
        let t = Tally::of(&got);
        assert_eq!(t, expected(&cases));
        t.check_counters(counters(&fx)).unwrap();
        assert_eq!(fx.neighbour_macs(), [Some(RS1_MAC), Some(RS2_MAC)]);
        // One flow per forwarded TCP SYN / UDP packet, nothing for the rest.
        assert_eq!(fx.worker.flow_count() as u64, t.forward);
    }

    #[test]
    fn the_corpus_as_bursts() {
        let cases = active();
        let mut fx = Fixture::new();
        let mut burst = FrameBurst {
            frames: cases.iter().map(|c| c.frame.clone()).collect(),
            csum: cases.iter().map(|c| c.csum).collect(),
        };
        let mut got = vec![Verdict::Consumed; cases.len()];
        fx.worker.process_burst(&mut burst, &mut got, 1_000);
        for ((c, v), f) in cases.iter().zip(&got).zip(&burst.frames) {
            assert_eq!(*v, c.expect, "case {}", c.name);
            check_frame(&c.frame, f, *v).unwrap_or_else(|e| panic!("case {}: {e}", c.name));
        }
        let t = Tally::of(&got);
        assert_eq!(t, expected(&cases));
        t.check_counters(counters(&fx)).unwrap();
        assert_eq!(fx.neighbour_macs(), [Some(RS1_MAC), Some(RS2_MAC)]);
        // The report names the same counts.
        let r = fx.shared.stats(&fx.model);
        for reason in DropReason::ALL {
            let want = t.drops[reason.index()];
            assert_eq!(
                r.drops.get(reason.name()).copied().unwrap_or(0),
                want,
                "{}",
                reason.name()
            );
        }
    }

    /// Whether the pipeline refuses a spoofed reply for a tracked server (and keeps its MAC).
    fn pipeline_refuses_spoofing() -> bool {
        let mut fx = Fixture::new();
        let mut f = is_at(RS1, ATTACKER_MAC);
        let v = fx.worker.process(&mut f, 1_000);
        v == Verdict::Drop(DropReason::ArpRefused) && neighbour_macs(&fx.shared)[0] == Some(RS1_MAC)
    }

    #[test]
    fn arp_hardening_flag_matches_the_pipeline() {
        assert_eq!(
            pipeline_refuses_spoofing(),
            ARP_HARDENING,
            "corpus::ARP_HARDENING says {ARP_HARDENING}: set it to what the pipeline does, so \
             the spoofing cases run exactly when they should"
        );
    }

    #[test]
    fn ip_checksums_of_the_fixtures_are_right() {
        // 4500 0028 0001 4000 4006 (0000) c612 010a c612 0064: the words sum to 0x2_52c1,
        // 0x52c3 folded, complement 0xad3c.
        let f = tcp(0, SYN);
        assert_eq!(&f[at::IP_CSUM..at::IP_CSUM + 2], &[0xad, 0x3c]);
        assert_eq!(
            &f[at::IP_SRC..at::IP_SRC + 4],
            &super::super::fixture::CLIENT.octets()
        );
        assert_eq!(&f[at::IP_DST..at::IP_DST + 4], &VIP.octets());
        assert_eq!(f.len(), 60);
        assert_eq!(udp(1).len(), 60);
        assert_eq!(tcp_with_payload(1, SYN, 9000 - 54).len(), 9000);
    }
}
