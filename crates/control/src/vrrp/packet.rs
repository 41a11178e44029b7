//! The VRRP advertisement for IPv4, both versions rvs speaks:
//!
//! ```text
//! VRRPv3 (RFC 5798 §5.1)                      VRRPv2 (RFC 3768 §5.1)
//!  0  version 3 | type 1        1              0  version 2 | type 1        1
//!  1  virtual router id         1              1  virtual router id         1
//!  2  priority                  1              2  priority                  1
//!  3  count of IPv4 addresses   1              3  count of IP addresses     1
//!  4  rsvd (4 bits) | max advert int (12 bits, 4  auth type (0 none, 1 simple text)
//!     centiseconds)             2              5  advert int (seconds)      1
//!  6  checksum                  2              6  checksum                  2
//!  8  addresses, 4 bytes each                  8  addresses, 4 bytes each
//!                                              ..  authentication data     8
//! checksum: the Internet checksum of an         checksum: the Internet checksum of the
//! IPv4 pseudo-header (source, destination,      VRRP message alone
//! zero, protocol 112, VRRP length) and the
//! VRRP message
//! ```
//!
//! Parsing never panics and names what is wrong ([`AdvertError`]); what the RFCs leave to the
//! receiver's configuration (TTL 255, the VRID, the interval, the password) is the runner's
//! check, with the values parsed here.

use crate::ha::{VrrpVersion, VRRP_PROTO};
use rvs_dataplane::wire::ipv4::internet_checksum;
use std::net::Ipv4Addr;

/// Bytes before the addresses.
pub const HEADER_LEN: usize = 8;
/// VRRPv2's authentication data after the addresses.
pub const AUTH_LEN: usize = 8;
/// The largest address count rvs sends (an instance's VIPs; more are refused by the config).
pub const MAX_ADDRS: usize = 255;

/// One advertisement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advert {
    pub version: VrrpVersion,
    pub vrid: u8,
    pub priority: u8,
    /// The advertisement interval in centiseconds (v2's whole seconds times 100).
    pub interval_cs: u16,
    pub addrs: Vec<Ipv4Addr>,
    /// v2 simple-text authentication (type 1): the 8 bytes, zero padded. `None` is type 0
    /// (and always for v3).
    pub auth: Option<[u8; AUTH_LEN]>,
}

/// Why bytes are not an advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AdvertError {
    #[error("too short")]
    TooShort,
    #[error("not an IPv4 packet")]
    NotIpv4,
    #[error("bad IPv4 header")]
    BadIpHeader,
    #[error("IP protocol {0}, not VRRP")]
    NotVrrp(u8),
    #[error("VRRP version {0} not supported")]
    Version(u8),
    #[error("VRRP type {0} is not an advertisement")]
    Type(u8),
    #[error("{count} addresses do not fit the {len}-byte message")]
    Count { count: u8, len: usize },
    #[error("bad checksum")]
    Checksum,
    #[error("authentication type {0} not supported")]
    AuthType(u8),
    #[error("advertisement interval 0")]
    Interval,
}

impl AdvertError {
    /// A short name for counters and logs.
    pub fn name(self) -> &'static str {
        match self {
            AdvertError::TooShort => "too_short",
            AdvertError::NotIpv4 => "not_ipv4",
            AdvertError::BadIpHeader => "bad_ip_header",
            AdvertError::NotVrrp(_) => "not_vrrp",
            AdvertError::Version(_) => "bad_version",
            AdvertError::Type(_) => "bad_type",
            AdvertError::Count { .. } => "bad_count",
            AdvertError::Checksum => "bad_checksum",
            AdvertError::AuthType(_) => "bad_auth_type",
            AdvertError::Interval => "bad_interval",
        }
    }
}

/// A password as VRRPv2 carries it: up to 8 bytes, zero padded (longer is cut, as keepalived
/// does; the config refuses it before).
pub fn auth_data(pass: &str) -> [u8; AUTH_LEN] {
    let mut a = [0u8; AUTH_LEN];
    for (d, s) in a.iter_mut().zip(pass.as_bytes()) {
        *d = *s;
    }
    a
}

fn pseudo_sum(src: Ipv4Addr, dst: Ipv4Addr, msg: &[u8]) -> u16 {
    let mut buf = Vec::with_capacity(12 + msg.len());
    buf.extend_from_slice(&src.octets());
    buf.extend_from_slice(&dst.octets());
    buf.push(0);
    buf.push(VRRP_PROTO);
    buf.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    buf.extend_from_slice(msg);
    internet_checksum(&buf)
}

/// The advertisement in `msg` (the bytes after the IP header), sent from `src` to `dst` (v3's
/// checksum covers them).
pub fn parse(src: Ipv4Addr, dst: Ipv4Addr, msg: &[u8]) -> Result<Advert, AdvertError> {
    let head = msg.get(..HEADER_LEN).ok_or(AdvertError::TooShort)?;
    let (vt, vrid, priority, count) = (head[0], head[1], head[2], head[3]);
    let version = match vt >> 4 {
        2 => VrrpVersion::V2,
        3 => VrrpVersion::V3,
        v => return Err(AdvertError::Version(v)),
    };
    if vt & 0x0f != 1 {
        return Err(AdvertError::Type(vt & 0x0f));
    }
    let tail = if version == VrrpVersion::V2 {
        AUTH_LEN
    } else {
        0
    };
    let want = HEADER_LEN + 4 * usize::from(count) + tail;
    // v2 receivers may see trailing bytes (padding); v3 messages are exact up to the IP
    // length the caller cut them to. Either way the addresses must fit.
    if msg.len() < want {
        return Err(AdvertError::Count {
            count,
            len: msg.len(),
        });
    }
    let msg = msg.get(..want).ok_or(AdvertError::TooShort)?;
    let sum = match version {
        VrrpVersion::V3 => pseudo_sum(src, dst, msg),
        VrrpVersion::V2 => internet_checksum(msg),
    };
    if sum != 0 {
        return Err(AdvertError::Checksum);
    }
    let (interval_cs, auth) = match version {
        VrrpVersion::V3 => (u16::from_be_bytes([head[4], head[5]]) & 0x0fff, None),
        VrrpVersion::V2 => {
            let auth = match head[4] {
                0 => None,
                1 => {
                    let mut a = [0u8; AUTH_LEN];
                    a.copy_from_slice(msg.get(want - AUTH_LEN..).ok_or(AdvertError::TooShort)?);
                    Some(a)
                }
                t => return Err(AdvertError::AuthType(t)),
            };
            (u16::from(head[5]) * 100, auth)
        }
    };
    if interval_cs == 0 {
        return Err(AdvertError::Interval);
    }
    let addrs = msg
        .get(HEADER_LEN..HEADER_LEN + 4 * usize::from(count))
        .ok_or(AdvertError::TooShort)?
        .chunks_exact(4)
        .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
        .collect();
    Ok(Advert {
        version,
        vrid,
        priority,
        interval_cs,
        addrs,
        auth,
    })
}

/// What a raw IPv4 socket delivers: the IP header's source, destination and TTL, and the
/// advertisement after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ttl: u8,
    pub advert: Advert,
}

/// An IPv4 packet carrying an advertisement (IP options allowed, the IP length honoured).
pub fn parse_ip(pkt: &[u8]) -> Result<Received, AdvertError> {
    let h = pkt.get(..20).ok_or(AdvertError::TooShort)?;
    if h[0] >> 4 != 4 {
        return Err(AdvertError::NotIpv4);
    }
    let ihl = usize::from(h[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
    if ihl < 20 || total < ihl || total > pkt.len() {
        return Err(AdvertError::BadIpHeader);
    }
    if h[9] != VRRP_PROTO {
        return Err(AdvertError::NotVrrp(h[9]));
    }
    let src = Ipv4Addr::new(h[12], h[13], h[14], h[15]);
    let dst = Ipv4Addr::new(h[16], h[17], h[18], h[19]);
    let msg = pkt.get(ihl..total).ok_or(AdvertError::BadIpHeader)?;
    Ok(Received {
        src,
        dst,
        ttl: h[8],
        advert: parse(src, dst, msg)?,
    })
}

/// The advertisement's bytes (after the IP header) from `src` to `dst`, checksum included.
pub fn emit(a: &Advert, src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let n = a.addrs.len().min(MAX_ADDRS);
    let mut m = Vec::with_capacity(HEADER_LEN + 4 * n + AUTH_LEN);
    match a.version {
        VrrpVersion::V3 => {
            m.extend_from_slice(&[0x31, a.vrid, a.priority, n as u8]);
            m.extend_from_slice(&(a.interval_cs & 0x0fff).to_be_bytes());
        }
        VrrpVersion::V2 => {
            let secs = (a.interval_cs / 100).clamp(1, 255) as u8;
            m.extend_from_slice(&[0x21, a.vrid, a.priority, n as u8]);
            m.extend_from_slice(&[u8::from(a.auth.is_some()), secs]);
        }
    }
    m.extend_from_slice(&[0, 0]);
    for ip in a.addrs.iter().take(n) {
        m.extend_from_slice(&ip.octets());
    }
    if a.version == VrrpVersion::V2 {
        m.extend_from_slice(&a.auth.unwrap_or([0; AUTH_LEN]));
    }
    let sum = match a.version {
        VrrpVersion::V3 => pseudo_sum(src, dst, &m),
        VrrpVersion::V2 => internet_checksum(&m),
    };
    m[6..8].copy_from_slice(&sum.to_be_bytes());
    m
}

/// A whole IPv4 packet (20-byte header, TTL 255, precedence "internetwork control", the
/// checksum left for the kernel to fill as raw sockets with IP_HDRINCL do) around
/// [`emit`]'s bytes.
pub fn emit_ip(a: &Advert, src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let msg = emit(a, src, dst);
    let total = (20 + msg.len()) as u16;
    let mut p = Vec::with_capacity(usize::from(total));
    p.extend_from_slice(&[0x45, 0xc0]);
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 0, 255, VRRP_PROTO]);
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let sum = internet_checksum(&p);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p.extend_from_slice(&msg);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);

    /// VRRPv3 from 198.18.0.2 to 224.0.0.18: VRID 51, priority 150, one address, 0.3 s.
    /// Checksum: the ones' complement of the 16-bit sum of the pseudo-header (c612 0002
    /// e000 0012 0070 000c) and the message with a zero checksum (3133 9601 001e c612 0064):
    /// 0x3'346a folds to 346d, complemented cb92.
    const V3: [u8; 12] = [
        0x31, // version 3, type 1 (advertisement)
        51,   // VRID
        150,  // priority
        1,    // one address
        0x00, 0x1e, // rsvd 0, max advert int 30 cs
        0xcb, 0x92, // checksum
        198, 18, 0, 100, // 198.18.0.100
    ];

    /// VRRPv2: VRID 51, priority 100, one address, simple text auth "secret1", 1 s.
    /// Checksum over the message alone (RFC 1071, computed outside this code): 4607.
    const V2: [u8; 20] = [
        0x21, // version 2, type 1
        51,   // VRID
        100,  // priority
        1,    // one address
        1,    // auth type 1: simple text password
        1,    // advert int: 1 s
        0x46, 0x07, // checksum
        198, 18, 0, 100, // 198.18.0.100
        b's', b'e', b'c', b'r', b'e', b't', b'1', 0, // password, zero padded
    ];

    fn v3() -> Advert {
        Advert {
            version: VrrpVersion::V3,
            vrid: 51,
            priority: 150,
            interval_cs: 30,
            addrs: vec![Ipv4Addr::new(198, 18, 0, 100)],
            auth: None,
        }
    }

    fn v2() -> Advert {
        Advert {
            version: VrrpVersion::V2,
            vrid: 51,
            priority: 100,
            interval_cs: 100,
            addrs: vec![Ipv4Addr::new(198, 18, 0, 100)],
            auth: Some(auth_data("secret1")),
        }
    }

    #[test]
    fn fixtures_parse_and_emit() {
        assert_eq!(parse(SRC, GROUP, &V3), Ok(v3()));
        assert_eq!(emit(&v3(), SRC, GROUP), V3);
        assert_eq!(parse(SRC, GROUP, &V2), Ok(v2()));
        assert_eq!(emit(&v2(), SRC, GROUP), V2);
        // v2's checksum does not cover the addresses of the IP header; v3's does.
        assert_eq!(parse(Ipv4Addr::new(1, 2, 3, 4), GROUP, &V2), Ok(v2()));
        assert_eq!(
            parse(Ipv4Addr::new(1, 2, 3, 4), GROUP, &V3),
            Err(AdvertError::Checksum)
        );
    }

    #[test]
    fn whole_packets() {
        let p = emit_ip(&v3(), SRC, GROUP);
        // IPv4, 20-byte header, TOS c0, length 32, TTL 255, protocol 112.
        assert_eq!(&p[..4], &[0x45, 0xc0, 0, 32]);
        assert_eq!((p[8], p[9]), (255, 112));
        assert_eq!(internet_checksum(&p[..20]), 0);
        let r = parse_ip(&p).unwrap();
        assert_eq!((r.src, r.dst, r.ttl), (SRC, GROUP, 255));
        assert_eq!(r.advert, v3());
        // Trailing bytes beyond the IP length (Ethernet padding) are ignored.
        let mut padded = p.clone();
        padded.extend_from_slice(&[0; 14]);
        assert_eq!(parse_ip(&padded).unwrap().advert, v3());
    }

    #[test]
    fn bad_input_is_named() {
        // A v2 message with its checksum made right again.
        fn v2_resummed(mut b: Vec<u8>) -> Vec<u8> {
            b[6] = 0;
            b[7] = 0;
            let sum = internet_checksum(&b);
            b[6..8].copy_from_slice(&sum.to_be_bytes());
            b
        }
        fn with(base: &[u8], i: usize, v: u8) -> Vec<u8> {
            let mut b = base.to_vec();
            b[i] = v;
            b
        }
        let cases: Vec<(Vec<u8>, AdvertError)> = vec![
            (vec![], AdvertError::TooShort),
            (V3[..7].to_vec(), AdvertError::TooShort),
            (with(&V3, 0, 0x41), AdvertError::Version(4)),
            (with(&V3, 0, 0x11), AdvertError::Version(1)),
            (with(&V3, 0, 0x32), AdvertError::Type(2)),
            (with(&V3, 3, 2), AdvertError::Count { count: 2, len: 12 }),
            (V3[..11].to_vec(), AdvertError::Count { count: 1, len: 11 }),
            (with(&V3, 2, 151), AdvertError::Checksum),
            (v2_resummed(with(&V2, 4, 2)), AdvertError::AuthType(2)),
            (V2[..19].to_vec(), AdvertError::Count { count: 1, len: 19 }),
        ];
        for (bytes, want) in cases {
            assert_eq!(parse(SRC, GROUP, &bytes), Err(want), "{bytes:?}");
            assert!(!want.name().is_empty());
        }
        // Interval 0, with a checksum that is right.
        let mut z = v3();
        z.interval_cs = 0;
        assert_eq!(
            parse(SRC, GROUP, &emit(&z, SRC, GROUP)),
            Err(AdvertError::Interval)
        );
        let p = emit_ip(&v3(), SRC, GROUP);
        let ip_cases: Vec<(Vec<u8>, AdvertError)> = vec![
            (p[..19].to_vec(), AdvertError::TooShort),
            (with(&p, 0, 0x65), AdvertError::NotIpv4),
            (with(&p, 0, 0x44), AdvertError::BadIpHeader),
            (with(&p, 3, 200), AdvertError::BadIpHeader),
            (with(&p, 3, 10), AdvertError::BadIpHeader),
            (with(&p, 9, 6), AdvertError::NotVrrp(6)),
        ];
        for (bytes, want) in ip_cases {
            assert_eq!(parse_ip(&bytes), Err(want), "{bytes:?}");
        }
    }

    /// keepalived 2.2.7 (Debian) as the sender, captured with tcpdump on the peer's veth
    /// (tcpdump -vvv decodes them and finds no checksum fault): VRID 51, priority 150, VIP
    /// 198.18.20.100, from 198.18.20.1 to 224.0.0.18. What rvs must read from the peer it
    /// interoperates with, and write the same.
    const KA_V2: [u8; 40] = [
        0x45, 0xc0, 0x00, 0x28, // IPv4, IHL 5, TOS c0 (network control), length 40
        0x00, 0x01, 0x00, 0x00, // id 1, no fragment
        0xff, 0x70, 0x00, 0x7f, // TTL 255, protocol 112, header checksum
        198, 18, 20, 1, // source
        224, 0, 0, 18,   // destination: the VRRP group
        0x21, // VRRP version 2, type 1
        51,   // VRID
        150,  // priority
        1,    // one address
        1,    // auth type 1: simple text
        1,    // advert int 1 s
        0x00, 0x07, // checksum (over the VRRP message only)
        198, 18, 20, 100, // the VIP
        b's', b'e', b'c', b'r', b'e', b't', b'1', 0, // auth_pass "secret1", zero padded
    ];
    /// keepalived, `vrrp_version 3`, `advert_int 0.3`.
    const KA_V3: [u8; 32] = [
        0x45, 0xc0, 0x00, 0x20, // IPv4, IHL 5, TOS c0, length 32
        0x00, 0x01, 0x00, 0x00, // id 1
        0xff, 0x70, 0x00, 0x87, // TTL 255, protocol 112, header checksum
        198, 18, 20, 1, // source
        224, 0, 0, 18,   // destination
        0x31, // VRRP version 3, type 1
        51,   // VRID
        150,  // priority
        1,    // one address
        0x00, 0x1e, // rsvd 0, max advert int 30 cs
        0xa3, 0x93, // checksum (pseudo-header + message)
        198, 18, 20, 100, // the VIP
    ];
    /// The same keepalived stopping: priority 0 ("the master leaves").
    const KA_V3_BYE: [u8; 32] = [
        0x45, 0xc0, 0x00, 0x20, // IPv4, length 32
        0x00, 0x05, 0x00, 0x00, // id 5
        0xff, 0x70, 0x00, 0x83, // TTL 255, protocol 112, header checksum
        198, 18, 20, 1, // source
        224, 0, 0, 18, // destination
        0x31, 51, // v3 advertisement, VRID 51
        0,  // priority 0
        1,  // one address
        0x00, 0x1e, // 30 cs
        0x39, 0x94, // checksum
        198, 18, 20, 100, // the VIP
    ];

    #[test]
    fn keepalived_adverts_are_read_and_written_alike() {
        let ka = Ipv4Addr::new(198, 18, 20, 1);
        let vip = Ipv4Addr::new(198, 18, 20, 100);
        let cases: [(&[u8], Advert); 3] = [
            (
                &KA_V2,
                Advert {
                    version: VrrpVersion::V2,
                    vrid: 51,
                    priority: 150,
                    interval_cs: 100,
                    addrs: vec![vip],
                    auth: Some(auth_data("secret1")),
                },
            ),
            (
                &KA_V3,
                Advert {
                    version: VrrpVersion::V3,
                    vrid: 51,
                    priority: 150,
                    interval_cs: 30,
                    addrs: vec![vip],
                    auth: None,
                },
            ),
            (
                &KA_V3_BYE,
                Advert {
                    version: VrrpVersion::V3,
                    vrid: 51,
                    priority: 0,
                    interval_cs: 30,
                    addrs: vec![vip],
                    auth: None,
                },
            ),
        ];
        for (bytes, want) in cases {
            let r = parse_ip(bytes).unwrap();
            assert_eq!((r.src, r.dst, r.ttl), (ka, GROUP, 255));
            assert_eq!(r.advert, want);
            // rvs writes the same VRRP message, and the same IP header but for the id (and so
            // the header checksum).
            let ours = emit_ip(&want, ka, GROUP);
            assert_eq!(ours.get(20..), bytes.get(20..));
            assert_eq!(ours.get(..4), bytes.get(..4));
            assert_eq!(ours.get(6..10), bytes.get(6..10));
            assert_eq!(ours.get(12..20), bytes.get(12..20));
        }
    }

    #[test]
    fn passwords_are_padded_and_cut() {
        assert_eq!(auth_data("ab"), [b'a', b'b', 0, 0, 0, 0, 0, 0]);
        assert_eq!(&auth_data("123456789"), b"12345678");
    }
}
