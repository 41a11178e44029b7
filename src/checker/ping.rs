//! `PING_CHECK`: one ICMP echo request, answered within `connect_timeout`.
//!
//! As root a raw ICMP socket (the reply is matched on its source, identifier, sequence number
//! and payload); without the right to one, the kernel's unprivileged ICMP socket where
//! `net.ipv4.ping_group_range` allows it (the kernel picks the identifier). The socket is
//! connected to the target, so only its packets come back; `bindto` sets the source.

use super::probe::{io_text, Deadline};
use rvs_control::check::ProbeKey;
use rvs_control::health::ProbeResult;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

const ECHO_REPLY: u8 = 0;
const ECHO_REQUEST: u8 = 8;
const PAYLOAD_LEN: usize = 16;

static SEQUENCE: AtomicU32 = AtomicU32::new(0);

pub fn check(key: &ProbeKey) -> ProbeResult {
    let p = &key.check.params;
    let dl = Deadline::after_ms(p.connect_timeout_ms);
    let (ip, _) = key.target();
    let fail = |e: &io::Error| format!("ping {ip}: {}", io_text(e, &dl));
    let (sock, raw) = match Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4)) {
        Ok(s) => (s, true),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            match Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::ICMPV4)) {
                Ok(s) => (s, false),
                Err(_) => {
                    return Err(format!(
                        "ping {ip}: no raw ICMP socket (not root) and no unprivileged one \
                         (net.ipv4.ping_group_range)"
                    ))
                }
            }
        }
        Err(e) => return Err(fail(&e)),
    };
    if let Some(src) = p.bindto {
        let a = SocketAddrV4::new(src, 0);
        sock.bind(&SockAddr::from(a))
            .map_err(|e| format!("bind {src}: {}", io_text(&e, &dl)))?;
    }
    sock.connect(&SockAddr::from(SocketAddrV4::new(ip, 0)))
        .map_err(|e| fail(&e))?;
    let n = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let id = (std::process::id() as u16).wrapping_add((n >> 16) as u16);
    let seq = n as u16;
    let mut payload = [0u8; PAYLOAD_LEN];
    payload[..8].copy_from_slice(b"rvs-ping");
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    payload[8..].copy_from_slice(&nanos.to_be_bytes());
    let packet = echo_request(id, seq, &payload);
    sock.send(&packet).map_err(|e| fail(&e))?;
    let mut buf = [0u8; 1500];
    loop {
        let left = dl
            .remaining()
            .map_err(|t| format!("ping {ip}: no echo reply ({t})"))?;
        sock.set_read_timeout(Some(left)).map_err(|e| fail(&e))?;
        match (&sock).read(&mut buf) {
            Ok(len) => {
                let icmp = if raw {
                    match icmp_of_ipv4(&buf[..len], ip) {
                        Some(i) => i,
                        None => continue,
                    }
                } else {
                    &buf[..len]
                };
                if is_our_reply(icmp, raw.then_some(id), seq, &payload) {
                    return Ok(None);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(format!("ping {ip}: no echo reply ({})", dl.timeout()));
            }
            Err(e) => return Err(fail(&e)),
        }
    }
}

/// The Internet checksum (RFC 1071) of `b`: the wire module's.
pub use rvs_dataplane::wire::ipv4::internet_checksum as checksum;

/// An ICMP echo request: type 8, code 0, checksum, identifier, sequence number, payload.
pub fn echo_request(id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(8 + payload.len());
    p.extend_from_slice(&[ECHO_REQUEST, 0, 0, 0]);
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(payload);
    let c = checksum(&p);
    p[2..4].copy_from_slice(&c.to_be_bytes());
    p
}

/// The ICMP message inside an IPv4 packet from `from` (a raw socket gives the IP header too).
fn icmp_of_ipv4(pkt: &[u8], from: Ipv4Addr) -> Option<&[u8]> {
    let first = *pkt.first()?;
    let ihl = usize::from(first & 0x0f) * 4;
    if first >> 4 != 4 || ihl < 20 || pkt.len() < ihl + 8 || pkt[9] != 1 {
        return None;
    }
    if Ipv4Addr::new(pkt[12], pkt[13], pkt[14], pkt[15]) != from {
        return None;
    }
    Some(&pkt[ihl..])
}

/// Whether `icmp` is the echo reply to our request: type 0, a right checksum, the sequence
/// number and payload we sent, and our identifier (`None`: the kernel's socket chose it).
fn is_our_reply(icmp: &[u8], id: Option<u16>, seq: u16, payload: &[u8]) -> bool {
    icmp.len() >= 8
        && icmp[0] == ECHO_REPLY
        && icmp[1] == 0
        && checksum(icmp) == 0
        && id.map_or(true, |id| icmp[4..6] == id.to_be_bytes())
        && icmp[6..8] == seq.to_be_bytes()
        && &icmp[8..] == payload
}

#[cfg(test)]
mod tests {
    use super::super::probe::tests::key;
    use super::*;
    use rvs_control::check::CheckKind;

    #[test]
    fn checksum_and_echo_request_bytes() {
        // type 8, code 0, checksum 0x2104, id 0x1234, seq 1, payload "abcd".
        let want = [
            0x08, 0x00, 0x21, 0x04, 0x12, 0x34, 0x00, 0x01, b'a', b'b', b'c', b'd',
        ];
        assert_eq!(echo_request(0x1234, 1, b"abcd"), want);
        // An odd length: the last byte padded (0x6300): checksum 0x2168.
        assert_eq!(echo_request(0x1234, 1, b"abc")[2..4], [0x21, 0x68]);
        // A message with its checksum in sums to zero.
        assert_eq!(checksum(&want), 0);
    }

    #[test]
    fn only_our_reply_matches() {
        let payload = b"rvs-ping12345678";
        let mut reply = echo_request(7, 9, payload);
        reply[0] = ECHO_REPLY;
        reply[2..4].copy_from_slice(&[0, 0]);
        let c = checksum(&reply);
        reply[2..4].copy_from_slice(&c.to_be_bytes());
        assert!(is_our_reply(&reply, Some(7), 9, payload));
        assert!(is_our_reply(&reply, None, 9, payload));
        assert!(!is_our_reply(&reply, Some(8), 9, payload), "another id");
        assert!(
            !is_our_reply(&reply, Some(7), 10, payload),
            "another sequence"
        );
        assert!(
            !is_our_reply(&reply, Some(7), 9, b"rvs-ping00000000"),
            "another payload"
        );
        assert!(!is_our_reply(&reply[..7], Some(7), 9, payload), "truncated");
        let request = echo_request(7, 9, payload);
        assert!(
            !is_our_reply(&request, Some(7), 9, payload),
            "our own request"
        );
        let mut bad = reply.clone();
        bad[9] ^= 1;
        assert!(!is_our_reply(&bad, Some(7), 9, payload), "bad checksum");
        // Inside IPv4: a 20-byte header (45 = v4, IHL 5; protocol 1 at 9; source at 12).
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1,
        ];
        ip.extend_from_slice(&reply);
        assert_eq!(icmp_of_ipv4(&ip, Ipv4Addr::LOCALHOST), Some(&reply[..]));
        assert_eq!(
            icmp_of_ipv4(&ip, Ipv4Addr::new(127, 0, 0, 2)),
            None,
            "other source"
        );
        assert_eq!(icmp_of_ipv4(&ip[..25], Ipv4Addr::LOCALHOST), None, "short");
        ip[0] = 0x65;
        assert_eq!(icmp_of_ipv4(&ip, Ipv4Addr::LOCALHOST), None, "not v4");
        assert_eq!(icmp_of_ipv4(&[], Ipv4Addr::LOCALHOST), None);
    }

    #[test]
    fn ping_127_0_0_1() {
        let k = key(CheckKind::Ping, 0, 1_000);
        match check(&k) {
            Err(e) if e.contains("no raw ICMP socket") => {
                eprintln!("ping_127_0_0_1 skipped: {e}");
            }
            r => assert_eq!(r, Ok(None)),
        }
        let mut k = k;
        k.check.params.bindto = Some(Ipv4Addr::new(198, 18, 255, 254));
        if let Err(e) = check(&k) {
            assert!(
                e.starts_with("bind 198.18.255.254: ") || e.contains("no raw ICMP socket"),
                "{e}"
            );
        } else {
            panic!("bound to an address that is not ours");
        }
    }
}
