//! `HTTP_GET` and `SSL_GET`: each url in turn on a connection of its own, the whole exchange
//! (connect, TLS handshake, request, response to its end) within `connect_timeout`. The bytes
//! (request, response reader, digest, status list) are [`rvs_control::httpcheck`]'s; here
//! they are only moved.
//!
//! `SSL_GET` uses rustls (TLS 1.2 and 1.3) and, as keepalived, does not verify the server's
//! certificate (the handshake's signature is still checked against the certificate the
//! server sent). The server name is the url's or the check's `virtualhost` when that is a DNS
//! name (sent as SNI), else the address probed (no SNI).

use super::probe::{connect_tcp, io_text, Deadline};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};
use rvs_control::check::{HttpCheck, ProbeKey, UrlCheck};
use rvs_control::health::ProbeResult;
use rvs_control::httpcheck::{self, ResponseReader};
use std::io::{self, Read, Write};
use std::net::{IpAddr, TcpStream};
use std::sync::{Arc, OnceLock};

/// Every url of `h` must pass; the first failure is the probe's error (prefixed with its
/// path when there are several urls).
pub fn check(key: &ProbeKey, h: &HttpCheck, tls: bool) -> ProbeResult {
    for url in &h.urls {
        let dl = Deadline::after_ms(key.check.params.connect_timeout_ms);
        get(key, h, url, tls, &dl).map_err(|e| {
            if h.urls.len() > 1 {
                format!("{}: {e}", url.path)
            } else {
                e
            }
        })?;
    }
    Ok(None)
}

fn get(
    key: &ProbeKey,
    h: &HttpCheck,
    url: &UrlCheck,
    tls: bool,
    dl: &Deadline,
) -> Result<(), String> {
    let (ip, port) = key.target();
    let host = httpcheck::host_header(url, h.virtualhost.as_deref(), ip, port);
    let req = httpcheck::request(&url.path, &host);
    let tcp = connect_tcp(key, dl)?;
    let resp = if tls {
        let name = match url.virtualhost.as_deref().or(h.virtualhost.as_deref()) {
            Some(v) => ServerName::try_from(v.to_string())
                .unwrap_or(ServerName::IpAddress(IpAddr::V4(ip).into())),
            None => ServerName::IpAddress(IpAddr::V4(ip).into()),
        };
        let conn = ClientConnection::new(tls_config()?, name).map_err(|e| format!("TLS: {e}"))?;
        let mut s = StreamOwned::new(conn, tcp);
        exchange(&mut s, |s| &s.sock, req.as_bytes(), dl, true)?
    } else {
        let mut s = tcp;
        exchange(&mut s, |s| s, req.as_bytes(), dl, false)?
    };
    httpcheck::check_url(url, &resp)
}

/// Sends `req` and reads the response until its end, the body wanted, or the deadline.
fn exchange<S: Read + Write>(
    s: &mut S,
    sock: fn(&S) -> &TcpStream,
    req: &[u8],
    dl: &Deadline,
    tls: bool,
) -> Result<httpcheck::Response, String> {
    let what = if tls { "TLS" } else { "HTTP" };
    let err = |op: &str, e: &io::Error| {
        // rustls reports its own failures (handshake, alerts) as InvalidData.
        if e.kind() == io::ErrorKind::InvalidData {
            format!("{what} {op}: {e}")
        } else {
            format!("{what} {op}: {}", io_text(e, dl))
        }
    };
    let mut sent = 0;
    while sent < req.len() {
        let left = dl.remaining()?;
        let t = sock(s);
        t.set_write_timeout(Some(left))
            .map_err(|e| err("send", &e))?;
        t.set_read_timeout(Some(left))
            .map_err(|e| err("send", &e))?;
        match s.write(&req[sent..]) {
            Ok(0) => return Err(format!("{what} send: connection closed")),
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(err("send", &e)),
        }
    }
    let mut reader = ResponseReader::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let left = dl.remaining()?;
        sock(s)
            .set_read_timeout(Some(left))
            .map_err(|e| err("read", &e))?;
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if reader.feed(&buf[..n]).map_err(|e| e.to_string())? {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // A TLS server closing without close_notify: the end of the stream, as for
            // keepalived.
            Err(e) if tls && e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(err("read", &e)),
        }
    }
    reader.finish().map_err(|e| e.to_string())
}

/// The one client configuration: the ring provider, TLS 1.2 and 1.3, no certificate checks.
fn tls_config() -> Result<Arc<ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS: {e}"))?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth();
            Ok(Arc::new(config))
        })
        .clone()
}

/// Takes any certificate (keepalived's `SSL_GET` does not verify them either); the signature
/// of the handshake is still checked with the key of the certificate sent.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::super::probe::tests::{closed_tcp_port, key};
    use super::*;
    use rvs_control::check::CheckKind;
    use std::net::TcpListener;
    use std::sync::mpsc;
    use std::thread;
    use std::time::{Duration, Instant};

    /// A server on 127.0.0.1 serving `n` connections with `serve(stream)`; the requests it
    /// read come back on the channel.
    fn server(
        n: usize,
        serve: impl Fn(&mut TcpStream) + Send + 'static,
    ) -> (u16, mpsc::Receiver<String>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for _ in 0..n {
                let Ok((mut s, _)) = l.accept() else { return };
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let _ = tx.send(read_request(&mut s));
                serve(&mut s);
            }
        });
        (port, rx)
    }

    /// Reads up to the empty line that ends a request.
    fn read_request(s: &mut impl Read) -> String {
        let mut req = Vec::new();
        let mut b = [0u8; 1];
        while !req.ends_with(b"\r\n\r\n") {
            match s.read(&mut b) {
                Ok(1) => req.push(b[0]),
                _ => break,
            }
        }
        String::from_utf8_lossy(&req).into_owned()
    }

    fn reply(bytes: &'static [u8]) -> impl Fn(&mut TcpStream) + Send + 'static {
        move |s| {
            let _ = s.write_all(bytes);
        }
    }

    fn http(path: &str, digest: Option<&str>, codes: Vec<(u16, u16)>) -> CheckKind {
        CheckKind::Http(HttpCheck {
            urls: vec![UrlCheck {
                path: path.into(),
                digest: digest.map(str::to_string),
                status_code: codes,
                virtualhost: None,
            }],
            virtualhost: None,
        })
    }

    /// The body of a file, its digest by `md5sum`, served; the check with that digest passes
    /// and sends keepalived's request.
    #[test]
    fn http_get_digest_is_md5sum_of_the_file_served() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("index.html");
        let body: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&file, &body).unwrap();
        let out = std::process::Command::new("md5sum")
            .arg(&file)
            .output()
            .unwrap();
        let digest = String::from_utf8(out.stdout).unwrap()[..32].to_string();
        let mut resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nServer: test\r\n\r\n",
            body.len()
        )
        .into_bytes();
        resp.extend_from_slice(&body);
        let resp: &'static [u8] = resp.leak();
        let (port, reqs) = server(2, move |s| {
            // In pieces, to go through several reads.
            for piece in resp.chunks(1000) {
                let _ = s.write_all(piece);
                thread::sleep(Duration::from_millis(2));
            }
        });
        let k = key(http("/index.html", Some(&digest), vec![]), port, 2_000);
        assert_eq!(check(&k, as_http(&k), false), Ok(None));
        assert_eq!(
            reqs.recv().unwrap(),
            format!(
                "GET /index.html HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\n\
                 Connection: close\r\nHost: 127.0.0.1:{port}\r\n\r\n"
            )
        );
        // One byte of the page changed: the digest says so.
        let bad = format!("{}0", &digest[..31]);
        let k = key(http("/index.html", Some(&bad), vec![]), port, 2_000);
        let e = check(&k, as_http(&k), false).unwrap_err();
        assert_eq!(e, format!("digest mismatch: got {digest}, want {bad}"));
    }

    fn as_http(k: &ProbeKey) -> &HttpCheck {
        match &k.check.kind {
            CheckKind::Http(h) | CheckKind::Ssl(h) => h,
            _ => unreachable!(),
        }
    }

    #[test]
    fn http_get_status_codes_and_virtualhost() {
        let (port, reqs) = server(3, reply(b"HTTP/1.0 503 Service Unavailable\r\n\r\nbusy"));
        let mut kind = http("/health", None, vec![]);
        if let CheckKind::Http(h) = &mut kind {
            h.virtualhost = Some("www.example".into());
        }
        let k = key(kind, port, 1_000);
        assert_eq!(
            check(&k, as_http(&k), false),
            Err("HTTP status 503 not in [200-299]".into())
        );
        assert!(reqs.recv().unwrap().contains("\r\nHost: www.example\r\n"));
        let k = key(http("/", None, vec![(500, 503)]), port, 1_000);
        assert_eq!(check(&k, as_http(&k), false), Ok(None));
        // Two urls: the failing one is named.
        let k = key(
            CheckKind::Http(HttpCheck {
                urls: vec![
                    UrlCheck {
                        path: "/a".into(),
                        status_code: vec![(503, 503)],
                        ..UrlCheck::default()
                    },
                    UrlCheck {
                        path: "/b".into(),
                        ..UrlCheck::default()
                    },
                ],
                virtualhost: None,
            }),
            port,
            1_000,
        );
        let (port2, _r) = server(2, reply(b"HTTP/1.0 503 Service Unavailable\r\n\r\n"));
        let mut k = k;
        k.port = port2;
        assert_eq!(
            check(&k, as_http(&k), false),
            Err("/b: HTTP status 503 not in [200-299]".into())
        );
    }

    #[test]
    fn http_get_failures_are_named() {
        let port = closed_tcp_port();
        let k = key(http("/", None, vec![]), port, 1_000);
        assert_eq!(
            check(&k, as_http(&k), false),
            Err(format!("connect 127.0.0.1:{port}: connection refused"))
        );
        // Accepts, reads, closes: an empty response.
        let (port, _r) = server(1, |_| {});
        let k = key(http("/", None, vec![]), port, 1_000);
        assert_eq!(check(&k, as_http(&k), false), Err("empty response".into()));
        // Not HTTP.
        let (port, _r) = server(1, reply(b"SSH-2.0-OpenSSH_9.2\r\n"));
        let k = key(http("/", None, vec![]), port, 1_000);
        let e = check(&k, as_http(&k), false).unwrap_err();
        assert!(e.contains("not an HTTP response"), "{e}");
        // A body cut short.
        let (port, _r) = server(
            1,
            reply(b"HTTP/1.0 200 OK\r\nContent-Length: 100\r\n\r\nshort"),
        );
        let k = key(http("/", None, vec![]), port, 1_000);
        assert_eq!(
            check(&k, as_http(&k), false),
            Err("body ended after 5 of its 100 bytes (Content-Length)".into())
        );
    }

    /// A server that never answers, and one that drips a byte every 50 ms: both end at
    /// connect_timeout (the whole exchange is bounded, not each read).
    #[test]
    fn http_get_is_bounded_by_connect_timeout() {
        let (port, _r) = server(1, |_| thread::sleep(Duration::from_secs(3)));
        let k = key(http("/", None, vec![]), port, 300);
        let t = Instant::now();
        assert_eq!(
            check(&k, as_http(&k), false),
            Err("HTTP read: timeout after 300 ms".into())
        );
        assert!(
            t.elapsed() < Duration::from_millis(800),
            "{:?}",
            t.elapsed()
        );
        let (port, _r) = server(1, |s| {
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\n\r\n");
            for _ in 0..60 {
                if s.write_all(b"x").is_err() {
                    return;
                }
                thread::sleep(Duration::from_millis(50));
            }
        });
        let k = key(http("/", None, vec![]), port, 400);
        let t = Instant::now();
        let e = check(&k, as_http(&k), false).unwrap_err();
        assert!(e.ends_with("timeout after 400 ms"), "{e}");
        assert!(
            t.elapsed() < Duration::from_millis(900),
            "{:?}",
            t.elapsed()
        );
    }

    /// A TLS server with a self-signed certificate (rcgen) serving `resp` to `n` connections.
    fn tls_server(n: usize, resp: &'static [u8]) -> (u16, mpsc::Receiver<String>) {
        let ck = rcgen::generate_simple_self_signed(vec!["rs1.test".to_string()]).unwrap();
        let cert = CertificateDer::from(ck.cert.der().to_vec());
        let key =
            rustls::pki_types::PrivateKeyDer::try_from(ck.signing_key.serialize_der()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![cert], key)
                .unwrap(),
        );
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for _ in 0..n {
                let Ok((s, _)) = l.accept() else { return };
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let conn = rustls::ServerConnection::new(config.clone()).unwrap();
                let mut tls = StreamOwned::new(conn, s);
                let req = read_request(&mut tls);
                let sni = tls.conn.server_name().unwrap_or("-").to_string();
                let _ = tx.send(format!("{sni}|{req}"));
                let _ = tls.write_all(resp);
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
        });
        (port, rx)
    }

    #[test]
    fn ssl_get_over_tls_without_certificate_checks() {
        let (port, reqs) = tls_server(2, b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhello\n");
        let kind = |vhost: Option<&str>| {
            CheckKind::Ssl(HttpCheck {
                urls: vec![UrlCheck {
                    path: "/".into(),
                    // printf 'hello\n' | md5sum
                    digest: Some("b1946ac92492d2347c6235b4d2611184".into()),
                    ..UrlCheck::default()
                }],
                virtualhost: vhost.map(str::to_string),
            })
        };
        let k = key(kind(None), port, 2_000);
        assert_eq!(check(&k, as_http(&k), true), Ok(None));
        let r = reqs.recv().unwrap();
        assert!(
            r.starts_with("-|GET / HTTP/1.0\r\n"),
            "no SNI for an address: {r}"
        );
        // A virtualhost that is a name goes as SNI (the certificate is for another name).
        let k = key(kind(Some("www.example")), port, 2_000);
        assert_eq!(check(&k, as_http(&k), true), Ok(None));
        assert!(reqs
            .recv()
            .unwrap()
            .starts_with("www.example|GET / HTTP/1.0\r\n"));
        // SSL_GET against a plain HTTP server (answering at once): a TLS error, not a hang.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        thread::spawn(move || {
            if let Ok((mut s, _)) = l.accept() {
                let _ = s.write_all(b"HTTP/1.0 400 Bad Request\r\n\r\n");
                thread::sleep(Duration::from_millis(500));
            }
        });
        let k = key(kind(None), port, 2_000);
        let t = Instant::now();
        let e = check(&k, as_http(&k), true).unwrap_err();
        assert!(e.starts_with("TLS "), "{e}");
        assert!(t.elapsed() < Duration::from_millis(1_500));
    }
}
