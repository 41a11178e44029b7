//! One probe of one real server, run to its end on the calling thread with blocking sockets:
//! [`run`] picks the checker, every one of them is bounded by the check's `connect_timeout`
//! (an `HTTP_GET`'s whole exchange too, per url), and answers `Ok(weight)` or a short error
//! such as "connect 198.18.0.11:80: connection refused" or "timeout after 1000 ms".
//!
//! Here: the shared pieces (deadline, source binding, TCP connect, error texts), `TCP_CHECK`
//! and `UDP_CHECK`; `HTTP_GET`/`SSL_GET` in [`super::http`], `PING_CHECK` in [`super::ping`],
//! `MISC_CHECK` in [`super::misc`].

use rvs_control::check::{CheckKind, CheckParams, ProbeKey, UdpCheck};
use rvs_control::health::ProbeResult;
use rvs_control::httpcheck::hex;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

/// Runs the probe `key` stands for. `stop` cuts a running script short (shutdown).
pub fn run(key: &ProbeKey, stop: &AtomicBool) -> ProbeResult {
    match &key.check.kind {
        CheckKind::Tcp => tcp(key),
        CheckKind::Http(h) => super::http::check(key, h, false),
        CheckKind::Ssl(h) => super::http::check(key, h, true),
        CheckKind::Udp(u) => udp(key, u),
        CheckKind::Ping => super::ping::check(key),
        CheckKind::Misc(m) => super::misc::check(m, &key.check.params, stop),
    }
}

/// The end of a probe's time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    end: Instant,
    ms: u64,
}

impl Deadline {
    pub(crate) fn after_ms(ms: u64) -> Deadline {
        Deadline {
            end: Instant::now() + Duration::from_millis(ms),
            ms,
        }
    }

    /// The time left, or the probe's timeout error once there is none.
    pub(crate) fn remaining(&self) -> Result<Duration, String> {
        let left = self.end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(self.timeout())
        } else {
            Ok(left)
        }
    }

    /// "timeout after N ms".
    pub(crate) fn timeout(&self) -> String {
        format!("timeout after {} ms", self.ms)
    }
}

/// An I/O error in a few words: "connection refused", not "Connection refused (os error 111)";
/// a timed-out or would-block error is the deadline's timeout.
pub(crate) fn io_text(e: &io::Error, dl: &Deadline) -> String {
    if matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    ) {
        return dl.timeout();
    }
    err_text(e)
}

/// An I/O error in a few words, whatever its kind.
pub(crate) fn err_text(e: &io::Error) -> String {
    let s = e.to_string();
    let s = match s.find(" (os error") {
        Some(i) => &s[..i],
        None => &s,
    };
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => "error".to_string(),
    }
}

/// Binds `s` to the check's `bindto`/`bind_port`, if any.
pub(crate) fn bind_source(s: &Socket, p: &CheckParams, dl: &Deadline) -> Result<(), String> {
    if p.bindto.is_none() && p.bind_port.is_none() {
        return Ok(());
    }
    let a = SocketAddrV4::new(
        p.bindto.unwrap_or(Ipv4Addr::UNSPECIFIED),
        p.bind_port.unwrap_or(0),
    );
    if p.bind_port.is_some() {
        s.set_reuse_address(true)
            .map_err(|e| format!("bind {a}: {}", io_text(&e, dl)))?;
    }
    s.bind(&SockAddr::from(a))
        .map_err(|e| format!("bind {a}: {}", io_text(&e, dl)))
}

/// A TCP connection to the probe's target within the deadline, from its source.
pub(crate) fn connect_tcp(key: &ProbeKey, dl: &Deadline) -> Result<TcpStream, String> {
    let (ip, port) = key.target();
    let target = SocketAddrV4::new(ip, port);
    let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))
        .map_err(|e| format!("socket: {}", io_text(&e, dl)))?;
    bind_source(&s, &key.check.params, dl)?;
    let left = dl
        .remaining()
        .map_err(|e| format!("connect {target}: {e}"))?;
    s.connect_timeout(&SockAddr::from(target), left)
        .map_err(|e| format!("connect {target}: {}", io_text(&e, dl)))?;
    if key.check.params.bind_port.is_some() {
        // Closed with a reset, so the fixed source port is not held in TIME_WAIT for the
        // next probe.
        let _ = s.set_linger(Some(Duration::ZERO));
    }
    Ok(s.into())
}

/// `TCP_CHECK`: the connection is made, then closed.
fn tcp(key: &ProbeKey) -> ProbeResult {
    let dl = Deadline::after_ms(key.check.params.connect_timeout_ms);
    connect_tcp(key, &dl).map(|_| None)
}

/// `UDP_CHECK` (keepalived's): a connected UDP socket sends the payload and waits up to
/// `connect_timeout`. An ICMP unreachable (shown as ECONNREFUSED / EHOSTUNREACH on the
/// socket) fails; a reply passes if it starts with `require_reply`'s bytes; silence passes
/// unless a reply is required.
fn udp(key: &ProbeKey, u: &UdpCheck) -> ProbeResult {
    let p = &key.check.params;
    let dl = Deadline::after_ms(p.connect_timeout_ms);
    let (ip, port) = key.target();
    let target = SocketAddrV4::new(ip, port);
    let fail = |e: &io::Error| format!("udp {target}: {}", io_text(e, &dl));
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).map_err(|e| fail(&e))?;
    bind_source(&s, p, &dl)?;
    s.connect(&SockAddr::from(target)).map_err(|e| fail(&e))?;
    s.send(&u.payload).map_err(|e| fail(&e))?;
    let mut buf = vec![0u8; rvs_control::check::MAX_UDP_PAYLOAD + 1];
    loop {
        let left = match dl.remaining() {
            Ok(l) => l,
            Err(t) if u.require_reply.is_some() => {
                return Err(format!("udp {target}: no reply ({t})"))
            }
            Err(_) => return Ok(None),
        };
        s.set_read_timeout(Some(left)).map_err(|e| fail(&e))?;
        match (&s).read(&mut buf) {
            Ok(n) => {
                let got = &buf[..n];
                return match &u.require_reply {
                    Some(want) if !got.starts_with(want) => Err(format!(
                        "udp {target}: reply mismatch: got {}, want {}",
                        shown_hex(got, want.len()),
                        hex(want)
                    )),
                    _ => Ok(None),
                };
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if u.require_reply.is_some() {
                    return Err(format!("udp {target}: no reply ({})", dl.timeout()));
                }
                return Ok(None);
            }
            Err(e) => return Err(fail(&e)),
        }
    }
}

/// The first bytes of a reply in hex, as many as were wanted (at most 32).
fn shown_hex(got: &[u8], want: usize) -> String {
    let n = want.clamp(1, 32).min(got.len());
    let mut s = hex(&got[..n]);
    if got.len() > n {
        s.push_str("...");
    }
    if got.is_empty() {
        s.push_str("(empty)");
    }
    s
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rvs_control::check::CheckSpec;
    use std::net::{TcpListener, UdpSocket};

    pub fn key(kind: CheckKind, port: u16, timeout_ms: u64) -> ProbeKey {
        ProbeKey {
            check: CheckSpec {
                kind,
                params: CheckParams {
                    connect_timeout_ms: timeout_ms,
                    ..CheckParams::default()
                },
            },
            addr: Ipv4Addr::LOCALHOST,
            port,
        }
    }

    /// A port on 127.0.0.1 nothing listens on (bound, then let go).
    pub fn closed_tcp_port() -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }

    #[test]
    fn tcp_check_connects_or_names_the_refusal() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let stop = AtomicBool::new(false);
        assert_eq!(run(&key(CheckKind::Tcp, port, 1_000), &stop), Ok(None));
        let port = closed_tcp_port();
        assert_eq!(
            run(&key(CheckKind::Tcp, port, 1_000), &stop),
            Err(format!("connect 127.0.0.1:{port}: connection refused"))
        );
    }

    #[test]
    fn tcp_check_uses_connect_port_bindto_and_bind_port() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let src_port = closed_tcp_port();
        let mut k = key(CheckKind::Tcp, closed_tcp_port(), 1_000);
        k.check.params.connect_port = Some(port);
        k.check.params.bindto = Some(Ipv4Addr::LOCALHOST);
        k.check.params.bind_port = Some(src_port);
        assert_eq!(tcp(&k), Ok(None));
        let (_, peer) = l.accept().unwrap();
        assert_eq!(peer.ip(), Ipv4Addr::LOCALHOST);
        assert_eq!(peer.port(), src_port);
        // A second probe from the same source port right after (no TIME_WAIT in the way).
        assert_eq!(tcp(&k), Ok(None));
        // bindto an address that is not ours: a clear bind error.
        k.check.params.bindto = Some(Ipv4Addr::new(198, 18, 255, 254));
        k.check.params.bind_port = None;
        let e = tcp(&k).unwrap_err();
        assert!(e.starts_with("bind 198.18.255.254:0: "), "{e}");
    }

    #[test]
    fn io_errors_read_short() {
        let dl = Deadline::after_ms(250);
        let e = io::Error::from_raw_os_error(111);
        assert_eq!(io_text(&e, &dl), "connection refused");
        let e = io::Error::from(io::ErrorKind::WouldBlock);
        assert_eq!(io_text(&e, &dl), "timeout after 250 ms");
        assert!(Deadline::after_ms(0).remaining().is_err());
    }

    fn probe(k: &ProbeKey) -> ProbeResult {
        run(k, &AtomicBool::new(false))
    }

    fn udp_key(port: u16, timeout_ms: u64, payload: &[u8], reply: Option<&[u8]>) -> ProbeKey {
        key(
            CheckKind::Udp(UdpCheck {
                payload: payload.to_vec(),
                require_reply: reply.map(<[u8]>::to_vec),
            }),
            port,
            timeout_ms,
        )
    }

    /// A UDP server on 127.0.0.1 answering `n` datagrams with `answer(request)`.
    fn udp_server(n: usize, answer: fn(&[u8]) -> Option<Vec<u8>>) -> u16 {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = s.local_addr().unwrap().port();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            for _ in 0..n {
                let Ok((len, from)) = s.recv_from(&mut buf) else {
                    return;
                };
                if let Some(a) = answer(&buf[..len]) {
                    let _ = s.send_to(&a, from);
                }
            }
        });
        port
    }

    #[test]
    fn udp_check_against_an_echo_a_silent_port_and_a_closed_one() {
        // An echo: the reply must start with the expected bytes.
        let port = udp_server(3, |r| Some(r.to_vec()));
        assert_eq!(
            probe(&udp_key(port, 1_000, b"ping\x00\x01", Some(b"ping"))),
            Ok(None)
        );
        assert_eq!(probe(&udp_key(port, 1_000, b"ping", Some(b""))), Ok(None));
        assert_eq!(
            probe(&udp_key(port, 1_000, b"pong", Some(b"ping"))),
            Err(format!(
                "udp 127.0.0.1:{port}: reply mismatch: got 706f6e67, want 70696e67"
            ))
        );
        // A server that reads and never answers: fine without require_reply, not with it.
        let port = udp_server(2, |_| None);
        let t = Instant::now();
        assert_eq!(probe(&udp_key(port, 300, b"x", None)), Ok(None));
        assert!(t.elapsed() >= Duration::from_millis(300));
        assert_eq!(
            probe(&udp_key(port, 300, b"x", Some(b""))),
            Err(format!(
                "udp 127.0.0.1:{port}: no reply (timeout after 300 ms)"
            ))
        );
        // Nothing listening: the ICMP port unreachable comes back as a refusal, at once.
        let port = {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.local_addr().unwrap().port()
        };
        let t = Instant::now();
        assert_eq!(
            probe(&udp_key(port, 2_000, b"x", None)),
            Err(format!("udp 127.0.0.1:{port}: connection refused"))
        );
        assert!(t.elapsed() < Duration::from_millis(1_500));
    }
}
