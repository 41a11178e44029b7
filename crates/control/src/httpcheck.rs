//! The bytes of an `HTTP_GET`/`SSL_GET` check, without sockets: the request the checker sends
//! and a strict, incremental reader of the response (status line, header, body with its MD5).
//! The daemon's checker moves the bytes; everything here is pure, so the fuzz target
//! `http_response` and the tests reach it.
//!
//! What keepalived does and we do too:
//! - the request is HTTP/1.0 with `User-Agent: KeepAliveClient` and `Host:` the url's
//!   `virtualhost`, else the check's, else `ADDR:PORT` of the address probed (port always
//!   written); we also send `Connection: close` (keepalived's `http_protocol 1.0C`);
//! - the header ends at the first empty line; the digest is the MD5 of the body bytes after
//!   it, as they came on the wire, no more than `Content-Length` of them when that is given
//!   (keepalived's `genhash` prints the same value; `md5sum` of the file served gives it too);
//! - a chunked body (`Transfer-Encoding: chunked`, which a server should not send to an HTTP/1.0
//!   request) is **not** decoded: the chunk sizes are part of the digested bytes, as keepalived.
//!
//! Where we are stricter than keepalived, with a clear error for each: the status line must be
//! `HTTP/1.x SP DDD SP reason CRLF` with a status in 100..=599; header lines end in CRLF, have
//! a token name and a colon, no control bytes and no obsolete line folding; `Content-Length`
//! is digits (several must agree); the header is at most [`MAX_HEAD`] bytes; a body that ends
//! before its `Content-Length` fails (keepalived only logs it). At most
//! [`check::MAX_HTTP_BODY`] body bytes are read and digested.

use crate::check::{self, UrlCheck};
use md5::{Digest, Md5};
use std::fmt::Write as _;
use std::net::Ipv4Addr;

/// Longest response header read (status line and header lines, with the empty line).
pub const MAX_HEAD: usize = 16 * 1024;

/// The `User-Agent` of the checks (keepalived's, which operators filter out of access logs).
pub const USER_AGENT: &str = "KeepAliveClient";

/// The request for `path` with `Host: host`.
pub fn request(path: &str, host: &str) -> String {
    format!(
        "GET {path} HTTP/1.0\r\nUser-Agent: {USER_AGENT}\r\nConnection: close\r\nHost: {host}\r\n\r\n"
    )
}

/// The `Host:` header of a url: its `virtualhost`, else the check's, else `addr:port` of
/// the address probed.
pub fn host_header(url: &UrlCheck, check_vhost: Option<&str>, addr: Ipv4Addr, port: u16) -> String {
    match url.virtualhost.as_deref().or(check_vhost) {
        Some(v) => v.to_string(),
        None => format!("{addr}:{port}"),
    }
}

/// Why a response could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("empty response")]
    Empty,
    #[error("response header longer than {MAX_HEAD} bytes")]
    HeadTooLong,
    #[error("response ended inside its header after {0} bytes")]
    HeadTruncated(usize),
    #[error("bad status line {line}: {why}")]
    StatusLine { line: String, why: &'static str },
    #[error("bad header line {line}: {why}")]
    Header { line: String, why: &'static str },
    #[error("bad Content-Length {0}")]
    ContentLength(String),
    #[error("body ended after {got} of its {want} bytes (Content-Length)")]
    BodyTruncated { got: u64, want: u64 },
}

/// What was read of a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Bytes of the status line and header, the empty line included.
    pub head_len: usize,
    pub content_length: Option<u64>,
    /// `Transfer-Encoding: chunked` was given (the body was digested as it came).
    pub chunked: bool,
    /// Body bytes digested: up to `Content-Length` and [`check::MAX_HTTP_BODY`].
    pub body_len: u64,
    /// MD5 of those bytes.
    pub digest: [u8; 16],
}

impl Response {
    /// The digest as keepalived writes it: 32 lower-case hex digits.
    pub fn digest_hex(&self) -> String {
        hex(&self.digest)
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// A response read as it arrives: [`ResponseReader::feed`] each piece,
/// [`ResponseReader::finish`] at the end of the stream.
pub struct ResponseReader {
    head: Vec<u8>,
    parsed: Option<Head>,
    body_len: u64,
    md5: Md5,
}

struct Head {
    status: u16,
    head_len: usize,
    content_length: Option<u64>,
    chunked: bool,
}

impl Head {
    /// Body bytes wanted: `Content-Length`, at most `MAX_HTTP_BODY`.
    fn body_limit(&self) -> u64 {
        let max = check::MAX_HTTP_BODY as u64;
        self.content_length.map_or(max, |c| c.min(max))
    }
}

impl Default for ResponseReader {
    fn default() -> Self {
        ResponseReader::new()
    }
}

impl ResponseReader {
    pub fn new() -> ResponseReader {
        ResponseReader {
            head: Vec::new(),
            parsed: None,
            body_len: 0,
            md5: Md5::new(),
        }
    }

    /// Takes the next bytes of the stream. `Ok(true)`: the body wanted is complete, read no
    /// more (the rest is ignored); `Ok(false)`: more is wanted. An error is final.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<bool, HttpError> {
        if self.parsed.is_none() {
            // Search the end of the header from 3 bytes before this piece (it may straddle).
            let from = self.head.len().saturating_sub(3);
            let room = MAX_HEAD - self.head.len();
            let take = bytes.len().min(room);
            self.head.extend_from_slice(&bytes[..take]);
            match find_crlfcrlf(&self.head[from..]) {
                Some(end) => {
                    let head_len = from + end + 4;
                    let consumed = head_len - (self.head.len() - take);
                    let head = parse_head(&self.head[..head_len])?;
                    self.head.truncate(head_len);
                    self.parsed = Some(head);
                    bytes = &bytes[consumed..];
                }
                None if self.head.len() >= MAX_HEAD => return Err(HttpError::HeadTooLong),
                None => return Ok(false),
            }
        }
        let head = self.parsed.as_ref().expect("parsed above");
        let limit = head.body_limit();
        let want = (limit - self.body_len).min(bytes.len() as u64) as usize;
        self.md5.update(&bytes[..want]);
        self.body_len += want as u64;
        Ok(self.body_len >= limit)
    }

    /// The stream ended (or the reader stopped after `feed` said done): the response.
    pub fn finish(self) -> Result<Response, HttpError> {
        let Some(head) = self.parsed else {
            if self.head.is_empty() {
                return Err(HttpError::Empty);
            }
            // What there is may already say why (not HTTP at all).
            let line_end = self.head.iter().position(|&b| b == b'\n');
            if let Some(e) = line_end {
                parse_status_line(&self.head[..=e])?;
            } else {
                check_status_prefix(&self.head)?;
            }
            return Err(HttpError::HeadTruncated(self.head.len()));
        };
        if let Some(want) = head.content_length {
            if self.body_len < want.min(check::MAX_HTTP_BODY as u64) {
                return Err(HttpError::BodyTruncated {
                    got: self.body_len,
                    want,
                });
            }
        }
        Ok(Response {
            status: head.status,
            head_len: head.head_len,
            content_length: head.content_length,
            chunked: head.chunked,
            body_len: self.body_len,
            digest: self.md5.finalize().into(),
        })
    }
}

/// A whole response at once (tests, the fuzz target).
pub fn parse_response(bytes: &[u8]) -> Result<Response, HttpError> {
    let mut r = ResponseReader::new();
    r.feed(bytes)?;
    r.finish()
}

/// Whether a response passes `url`: its status in the url's list, its digest the url's.
/// The error is the check's, e.g. "HTTP status 503 not in [200-299]".
pub fn check_url(url: &UrlCheck, r: &Response) -> Result<(), String> {
    if !url.status_ok(r.status) {
        return Err(format!(
            "HTTP status {} not in [{}]",
            r.status,
            status_list(&url.status_code)
        ));
    }
    if let Some(want) = &url.digest {
        let got = r.digest_hex();
        if !got.eq_ignore_ascii_case(want) {
            return Err(format!(
                "digest mismatch: got {got}, want {}",
                want.to_ascii_lowercase()
            ));
        }
    }
    Ok(())
}

/// "200-299" or "200, 301-302".
pub fn status_list(codes: &[(u16, u16)]) -> String {
    if codes.is_empty() {
        return "200-299".to_string();
    }
    let parts: Vec<String> = codes
        .iter()
        .map(|&(lo, hi)| {
            if lo == hi {
                lo.to_string()
            } else {
                format!("{lo}-{hi}")
            }
        })
        .collect();
    parts.join(", ")
}

fn find_crlfcrlf(b: &[u8]) -> Option<usize> {
    b.windows(4).position(|w| w == b"\r\n\r\n")
}

/// A line for an error message: at most 60 characters, escaped.
fn shown(line: &[u8]) -> String {
    let line = line.strip_suffix(b"\r\n").unwrap_or(line);
    let cut = &line[..line.len().min(60)];
    let mut s = format!("{:?}", String::from_utf8_lossy(cut));
    if cut.len() < line.len() {
        s.push_str("...");
    }
    s
}

/// What a status line starts with, checked on a prefix (a response cut short, or not HTTP).
fn check_status_prefix(b: &[u8]) -> Result<(), HttpError> {
    let n = b.len().min(5);
    if b[..n] != b"HTTP/"[..n] {
        return Err(HttpError::StatusLine {
            line: shown(b),
            why: "not an HTTP response",
        });
    }
    Ok(())
}

/// `HTTP/1.x SP DDD SP reason CRLF` (the CRLF included in `line`).
fn parse_status_line(line: &[u8]) -> Result<u16, HttpError> {
    let bad = |why| HttpError::StatusLine {
        line: shown(line),
        why,
    };
    check_status_prefix(line)?;
    let Some(l) = line.strip_suffix(b"\r\n") else {
        return Err(bad("not ended by CRLF"));
    };
    if l.len() < 12 {
        return Err(bad("too short"));
    }
    let (v, rest) = l.split_at(8);
    if !(v[5].is_ascii_digit() && v[6] == b'.' && v[7].is_ascii_digit()) {
        return Err(bad("no HTTP version"));
    }
    if v[5] != b'1' {
        return Err(bad("not HTTP/1.x"));
    }
    if rest[0] != b' ' {
        return Err(bad("no space after the version"));
    }
    let code = &rest[1..4];
    if !code.iter().all(u8::is_ascii_digit) {
        return Err(bad("no 3-digit status code"));
    }
    if rest.get(4) != Some(&b' ') {
        return Err(bad("no space after the status code"));
    }
    if rest[5..].iter().any(|&b| is_ctl(b) && b != b'\t') {
        return Err(bad("control byte in the reason phrase"));
    }
    let status = code.iter().fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
    if !(100..=599).contains(&status) {
        return Err(bad("status code not in 100..=599"));
    }
    Ok(status)
}

/// Without the blanks (spaces, tabs) around it.
fn trim_ows(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = b {
        b = rest;
    }
    b
}

fn is_ctl(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The status line and header lines (`head` ends with the empty line).
fn parse_head(head: &[u8]) -> Result<Head, HttpError> {
    let head_len = head.len();
    let body = &head[..head_len - 2]; // lines, each ending in CRLF
    let mut lines = split_lines(body);
    let status_line = lines.next().expect("a head holds a status line");
    let status = parse_status_line(status_line)?;
    let mut content_length = None;
    let mut chunked = false;
    for line in lines {
        let bad = |why| HttpError::Header {
            line: shown(line),
            why,
        };
        let Some(l) = line.strip_suffix(b"\r\n") else {
            return Err(bad("not ended by CRLF"));
        };
        if l.contains(&b'\r') || l.contains(&b'\n') {
            return Err(bad("bare CR or LF"));
        }
        if l.first().is_some_and(|&b| b == b' ' || b == b'\t') {
            return Err(bad("obsolete line folding"));
        }
        let Some(colon) = l.iter().position(|&b| b == b':') else {
            return Err(bad("no colon"));
        };
        let (name, value) = (&l[..colon], &l[colon + 1..]);
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err(bad("the name is not a token"));
        }
        if value.iter().any(|&b| is_ctl(b) && b != b'\t') {
            return Err(bad("control byte in the value"));
        }
        let value = trim_ows(value);
        if name.eq_ignore_ascii_case(b"content-length") {
            let text = || String::from_utf8_lossy(value).into_owned();
            if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
                return Err(HttpError::ContentLength(format!("{:?}", text())));
            }
            let n: u64 = text()
                .parse()
                .map_err(|_| HttpError::ContentLength(format!("{:?}", text())))?;
            if content_length.is_some_and(|c| c != n) {
                return Err(HttpError::ContentLength(format!(
                    "{n}: another Content-Length says {}",
                    content_length.unwrap_or_default()
                )));
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            chunked |= value
                .split(|&b| b == b',')
                .any(|t| trim_ows(t).eq_ignore_ascii_case(b"chunked"));
        }
    }
    Ok(Head {
        status,
        head_len,
        content_length,
        chunked,
    })
}

/// Lines of `b` ending in LF (a last piece without one comes out as it is).
fn split_lines(b: &[u8]) -> impl Iterator<Item = &[u8]> {
    b.split_inclusive(|&c| c == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `md5sum` of "hello\n" (printf 'hello\n' | md5sum).
    const HELLO_MD5: &str = "b1946ac92492d2347c6235b4d2611184";

    #[test]
    fn the_request_is_keepalived_s_with_connection_close() {
        assert_eq!(
            request("/health", "198.18.0.11:80"),
            "GET /health HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nConnection: close\r\n\
             Host: 198.18.0.11:80\r\n\r\n"
        );
        let ip = Ipv4Addr::new(198, 18, 0, 11);
        let mut u = UrlCheck::default();
        assert_eq!(host_header(&u, None, ip, 80), "198.18.0.11:80");
        assert_eq!(host_header(&u, Some("www.example"), ip, 80), "www.example");
        u.virtualhost = Some("url.example".into());
        assert_eq!(host_header(&u, Some("www.example"), ip, 80), "url.example");
    }

    #[test]
    fn a_plain_response_digests_its_body() {
        // Status line, two headers, the empty line, then the body "hello\n".
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\n\
              Content-Type: text/plain\r\n\
              Content-Length: 6\r\n\
              \r\n\
              hello\n",
        )
        .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.content_length, Some(6));
        assert_eq!(r.body_len, 6);
        assert_eq!(r.digest_hex(), HELLO_MD5);
        let url = UrlCheck {
            digest: Some(HELLO_MD5.into()),
            ..UrlCheck::default()
        };
        assert_eq!(check_url(&url, &r), Ok(()));
        let other = UrlCheck {
            digest: Some("00000000000000000000000000000000".into()),
            ..UrlCheck::default()
        };
        assert_eq!(
            check_url(&other, &r),
            Err(format!(
                "digest mismatch: got {HELLO_MD5}, want 00000000000000000000000000000000"
            ))
        );
    }

    #[test]
    fn the_digest_stops_at_content_length_and_without_it_at_eof() {
        // Content-Length 6, then bytes past it (ignored, as keepalived).
        let r =
            parse_response(b"HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nhello\nEXTRA").unwrap();
        assert_eq!(r.digest_hex(), HELLO_MD5);
        // No Content-Length: everything to the end.
        let r = parse_response(b"HTTP/1.0 200 OK\r\n\r\nhello\n").unwrap();
        assert_eq!((r.body_len, r.digest_hex().as_str()), (6, HELLO_MD5));
        // An empty body: MD5 of nothing.
        let r = parse_response(b"HTTP/1.0 204 No Content\r\n\r\n").unwrap();
        assert_eq!(r.digest_hex(), "d41d8cd98f00b204e9800998ecf8427e");
    }

    #[test]
    fn chunked_bodies_are_digested_as_they_came() {
        // "6\r\nhello\n\r\n0\r\n\r\n": the chunk framing is part of the digest.
        let wire = b"6\r\nhello\n\r\n0\r\n\r\n";
        let mut resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        resp.extend_from_slice(wire);
        let r = parse_response(&resp).unwrap();
        assert!(r.chunked);
        assert_eq!(r.digest, <[u8; 16]>::from(Md5::digest(wire)));
        assert_ne!(r.digest_hex(), HELLO_MD5);
    }

    #[test]
    fn pieces_of_any_size_read_the_same() {
        let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nX-A: b\r\n\r\nhello\n";
        let whole = parse_response(resp).unwrap();
        for size in 1..resp.len() {
            let mut r = ResponseReader::new();
            let mut done = false;
            for piece in resp.chunks(size) {
                done = r.feed(piece).unwrap();
            }
            assert!(done, "size {size}");
            assert_eq!(r.finish().unwrap(), whole, "size {size}");
        }
    }

    #[test]
    fn status_codes_are_checked_against_the_list() {
        let r = parse_response(b"HTTP/1.1 503 Service Unavailable\r\n\r\n").unwrap();
        let url = UrlCheck::default();
        assert_eq!(
            check_url(&url, &r),
            Err("HTTP status 503 not in [200-299]".into())
        );
        let url = UrlCheck {
            status_code: vec![(200, 200), (500, 503)],
            ..UrlCheck::default()
        };
        assert_eq!(check_url(&url, &r), Ok(()));
        assert_eq!(status_list(&[(200, 200), (301, 302)]), "200, 301-302");
        // An empty reason phrase is fine when its space is there.
        assert_eq!(
            parse_response(b"HTTP/1.1 200 \r\n\r\n").unwrap().status,
            200
        );
    }

    #[test]
    fn a_long_body_is_digested_up_to_the_limit() {
        let mut resp = b"HTTP/1.0 200 OK\r\n\r\n".to_vec();
        let body = vec![b'x'; check::MAX_HTTP_BODY + 100];
        resp.extend_from_slice(&body);
        let mut r = ResponseReader::new();
        assert!(r.feed(&resp).unwrap(), "done at the limit");
        let r = r.finish().unwrap();
        assert_eq!(r.body_len, check::MAX_HTTP_BODY as u64);
        assert_eq!(
            r.digest,
            <[u8; 16]>::from(Md5::digest(&body[..check::MAX_HTTP_BODY]))
        );
        // A Content-Length past the limit: the first MAX_HTTP_BODY bytes, no truncation error.
        let mut resp = b"HTTP/1.0 200 OK\r\nContent-Length: 99999999\r\n\r\n".to_vec();
        resp.extend_from_slice(&body);
        assert_eq!(
            parse_response(&resp).unwrap().body_len,
            check::MAX_HTTP_BODY as u64
        );
    }

    /// Malformed responses: each one refused with its own error, none panics.
    #[test]
    fn malformed_responses_get_clear_errors() {
        use HttpError::*;
        let long_head = {
            let mut v = b"HTTP/1.1 200 OK\r\n".to_vec();
            v.extend(
                std::iter::repeat(b"X-Pad: aaaaaaaaaaaaaaaaaaaa\r\n")
                    .take(1000)
                    .flatten(),
            );
            v
        };
        let cases: Vec<(&[u8], &str)> = vec![
            (b"", "empty response"),
            (
                b"HTTP/1.1 200 OK\r\nContent-",
                "ended inside its header after 25 bytes",
            ),
            (b"HTTP/1.1 20", "ended inside its header after 11 bytes"),
            (b"<html>hello</html>\r\n\r\n", "not an HTTP response"),
            (b"<html>", "not an HTTP response"),
            (b"SSH-2.0-OpenSSH_9.2\r\n", "not an HTTP response"),
            (b"HTTP/1.1 200 OK\n\r\n\r\n", "not ended by CRLF"),
            (b"HTTP/2.0 200 OK\r\n\r\n", "not HTTP/1.x"),
            (b"HTTP/1.x 200 OK\r\n\r\n", "no HTTP version"),
            (b"HTTP/1.1  200 OK\r\n\r\n", "no 3-digit status code"),
            (
                b"HTTP/1.1 2000 OK\r\n\r\n",
                "no space after the status code",
            ),
            (b"HTTP/1.1 200\r\n\r\n", "no space after the status code"),
            (b"HTTP/1.1 1\r\n\r\n", "too short"),
            (b"HTTP/1.1 200OK\r\n\r\n", "no space after the status code"),
            (b"HTTP/1.1 2x0 OK\r\n\r\n", "no 3-digit status code"),
            (b"HTTP/1.1 099 Low\r\n\r\n", "not in 100..=599"),
            (b"HTTP/1.1 600 High\r\n\r\n", "not in 100..=599"),
            (b"HTTP/1.1 200 O\x01K\r\n\r\n", "control byte in the reason"),
            (b"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", "no colon"),
            (b"HTTP/1.1 200 OK\r\n: empty\r\n\r\n", "not a token"),
            (b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", "not a token"),
            (
                b"HTTP/1.1 200 OK\r\nA: b\r\n folded\r\n\r\n",
                "obsolete line folding",
            ),
            (
                b"HTTP/1.1 200 OK\r\nA: b\nB: c\r\n\r\n",
                "not ended by CRLF",
            ),
            (b"HTTP/1.1 200 OK\r\nA: b\rB: c\r\n\r\n", "bare CR or LF"),
            (
                b"HTTP/1.1 200 OK\r\nA: b\x00c\r\n\r\n",
                "control byte in the value",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                "bad Content-Length",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 1,1\r\n\r\nx",
                "bad Content-Length",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n",
                "bad Content-Length",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
                "bad Content-Length",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nab",
                "another Content-Length says 2",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello",
                "body ended after 5 of its 10 bytes",
            ),
            (&long_head, "header longer than 16384 bytes"),
        ];
        for (bytes, want) in cases {
            let err = parse_response(bytes).unwrap_err().to_string();
            assert!(
                err.contains(want),
                "{:?}: {err:?} lacks {want:?}",
                String::from_utf8_lossy(bytes)
            );
        }
        // The same Content-Length twice is fine.
        let ok =
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\ncontent-length:2\r\n\r\nab");
        assert_eq!(ok.unwrap().body_len, 2);
        // Errors show the line, escaped and cut.
        let e = parse_response(b"HTTP/1.1 200 OK\r\nX\x7f: 1\r\n\r\n").unwrap_err();
        assert_eq!(
            e,
            Header {
                line: "\"X\\u{7f}: 1\"".into(),
                why: "the name is not a token"
            }
        );
        let e = parse_response(&[b'a'; 200]).unwrap_err().to_string();
        assert!(e.len() < 120 && e.contains("..."), "{e}");
    }
}
