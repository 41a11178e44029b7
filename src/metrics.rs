//! The Prometheus endpoint (`[metrics] listen`, off by default): `GET /metrics` answers the
//! text exposition format 0.0.4 with what the control socket's `stats` and `list` report,
//! under node_exporter's IPVS names (`node_ipvs_*`, same labels) and rvs's own (`rvs_*`).
//! Every series is described in `docs/metrics.md`.
//!
//! One plain thread, never on a worker lcore: a listener whose `accept` gives up after
//! [`POLL`] (`SO_RCVTIMEO`, so a stop is seen within that while a connection is taken at
//! once), one connection at a time, each bounded by
//! [`MAX_REQUEST`] bytes of request head, [`READ_TIMEOUT`] per read and [`REQUEST_DEADLINE`]
//! for the whole head, answered and closed (`Connection: close`). The parts that see bytes
//! from outside are pure functions: [`parse_request`] (request head -> [`Request`]),
//! [`respond`] (what to answer) and [`render`] (the `stats`/`list` replies -> text).

use crate::dpdk::{Link, PortId};
use rvs_control::server::Control;
use rvs_dataplane::pipeline::DropReason;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The longest request head (request line and header fields) read; longer is refused (431).
pub const MAX_REQUEST: usize = 8192;
/// How long one read may wait.
pub const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a client may take to send its whole request head (a slow sender is cut off: 408).
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(5);
/// How long writing the answer may block.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the idle listener looks at the stop flag.
const POLL: Duration = Duration::from_millis(100);

/// `Content-Type` of the metrics (text exposition format 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

// ---------------------------------------------------------------------------------------------
// The request.

/// A request as far as the endpoint cares: its method and its path (query and fragment cut).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
}

/// Why a request head was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("the request head is longer than {MAX_REQUEST} bytes")]
    TooLarge,
    #[error("the request head does not end with an empty line")]
    Incomplete,
    #[error("the client took too long to send its request")]
    Timeout,
    #[error("bad request line: {0}")]
    RequestLine(&'static str),
    #[error("HTTP version not supported (only HTTP/1.0 and HTTP/1.1)")]
    Version,
    #[error("bad header field on line {line}: {why}")]
    Header { line: usize, why: &'static str },
    #[error("an HTTP/1.1 request needs exactly one Host header field")]
    Host,
}

/// Where the request head in `buf` ends: the index just past its empty line (CRLF CRLF, or
/// LF LF as RFC 9112 lets a server accept), if it is there. Line ends before the request line
/// are skipped (RFC 9112 2.2), so they do not end an empty head.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    let mut i = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    while i < buf.len() {
        if buf[i] == b'\n' {
            // This line ends here; is the next one empty?
            match buf.get(i + 1..) {
                Some([b'\n', ..]) => return Some(i + 2),
                Some([b'\r', b'\n', ..]) => return Some(i + 3),
                _ => {}
            }
        }
        i += 1;
    }
    None
}

/// `tchar` of RFC 9110 (the characters of a method or a header field name).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Parse a request head (the bytes up to and including its empty line; anything after it, a
/// body, is not looked at). Strict where it costs nothing: one space between the request
/// line's three parts, a token method, a visible-ASCII target in origin, absolute or asterisk
/// form, HTTP/1.0 or 1.1, header fields `name: value` without folding, and for HTTP/1.1
/// exactly one `Host`. Empty lines before the request line are skipped (RFC 9112 2.2).
pub fn parse_request(buf: &[u8]) -> Result<Request<'_>, RequestError> {
    let Some(end) = head_end(buf) else {
        return Err(if buf.len() >= MAX_REQUEST {
            RequestError::TooLarge
        } else {
            RequestError::Incomplete
        });
    };
    if end > MAX_REQUEST {
        return Err(RequestError::TooLarge);
    }
    let head = &buf[..end];
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .enumerate()
        .skip_while(|(_, l)| l.is_empty());
    let Some((_, line)) = lines.next() else {
        return Err(RequestError::Incomplete);
    };
    let req = request_line(line)?;
    let http11 = req.1;
    let mut hosts = 0usize;
    for (n, l) in lines {
        if l.is_empty() {
            break;
        }
        let bad = |why| RequestError::Header { line: n + 1, why };
        if l[0] == b' ' || l[0] == b'\t' {
            return Err(bad("folded (obsolete line folding)"));
        }
        let colon = l.iter().position(|&b| b == b':').ok_or(bad("no ':'"))?;
        let (name, value) = (&l[..colon], &l[colon + 1..]);
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err(bad("the name is not a token"));
        }
        if !value
            .iter()
            .all(|&b| b == b'\t' || b == b' ' || b.is_ascii_graphic() || b >= 0x80)
        {
            return Err(bad("control character in the value"));
        }
        if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
        }
    }
    if hosts > 1 || (http11 && hosts == 0) {
        return Err(RequestError::Host);
    }
    Ok(req.0)
}

/// The request line: the request and whether it is HTTP/1.1.
fn request_line(line: &[u8]) -> Result<(Request<'_>, bool), RequestError> {
    let bad = RequestError::RequestLine;
    let text = std::str::from_utf8(line).map_err(|_| bad("not ASCII"))?;
    if !text.is_ascii() {
        return Err(bad("not ASCII"));
    }
    let mut parts = text.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("expected METHOD SP TARGET SP VERSION"));
    };
    if method.is_empty() || !method.bytes().all(is_tchar) {
        return Err(bad("the method is not a token"));
    }
    if target.is_empty() || !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad("the target is empty or not visible ASCII"));
    }
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        v if v.len() == 8
            && v.starts_with("HTTP/")
            && v.as_bytes()[5].is_ascii_digit()
            && v.as_bytes()[6] == b'.'
            && v.as_bytes()[7].is_ascii_digit() =>
        {
            return Err(RequestError::Version)
        }
        _ => return Err(bad("the version is not HTTP/x.y")),
    };
    let path = if target == "*" || target.starts_with('/') {
        target
    } else if let Some(rest) = strip_prefix_ignore_case(target, "http://")
        .or_else(|| strip_prefix_ignore_case(target, "https://"))
    {
        // Absolute form: the path is what follows the authority ("/" when none).
        match rest.find(['/', '?', '#']) {
            Some(i) if rest.as_bytes()[i] == b'/' => &rest[i..],
            _ => "/",
        }
    } else {
        return Err(bad("the target is neither a path nor an absolute URI"));
    };
    let path = match path.find(['?', '#']) {
        Some(i) => &path[..i],
        None => path,
    };
    Ok((Request { method, path }, http11))
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

// ---------------------------------------------------------------------------------------------
// The answer.

/// What the endpoint answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    /// HEAD: the headers say what GET would send, without the body.
    pub head_only: bool,
    /// 405: the methods the path has.
    pub allow: Option<&'static str>,
}

impl Response {
    fn text(status: u16, body: impl Into<String>) -> Self {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
            head_only: false,
            allow: None,
        }
    }

    /// The bytes on the wire: status line, headers, body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        );
        if let Some(a) = self.allow {
            let _ = write!(head, "Allow: {a}\r\n");
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        if !self.head_only {
            out.extend_from_slice(self.body.as_bytes());
        }
        out
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// What to answer to `req` (as [`parse_request`] read it); `scrape` is called only for a
/// `GET`/`HEAD` of `/metrics` and gives the metrics text or why there is none (500).
pub fn respond(
    req: Result<Request<'_>, RequestError>,
    scrape: impl FnOnce() -> Result<String, String>,
) -> Response {
    let req = match req {
        Ok(r) => r,
        Err(e) => {
            let status = match e {
                RequestError::TooLarge => 431,
                RequestError::Timeout => 408,
                RequestError::Version => 505,
                _ => 400,
            };
            return Response::text(status, format!("{e}\n"));
        }
    };
    if req.path != "/metrics" {
        return Response::text(404, "not found: the metrics are at /metrics\n");
    }
    let head_only = match req.method {
        "GET" => false,
        "HEAD" => true,
        _ => {
            let mut r = Response::text(405, "method not allowed: GET or HEAD /metrics\n");
            r.allow = Some("GET, HEAD");
            return r;
        }
    };
    match scrape() {
        Ok(body) => Response {
            status: 200,
            content_type: CONTENT_TYPE,
            body,
            head_only,
            allow: None,
        },
        Err(e) => Response {
            head_only,
            ..Response::text(500, format!("cannot read the counters: {e}\n"))
        },
    }
}

// ---------------------------------------------------------------------------------------------
// The metrics.

/// What one scrape renders: the `stats` and `list` results (the JSON-RPC `result` objects),
/// plus what the control socket does not report.
#[derive(Debug, Clone, Copy)]
pub struct Scrape<'a> {
    pub stats: &'a Value,
    pub list: &'a Value,
    /// The port's link (none when it could not be read: no `rvs_link_*` series).
    pub link: Option<Link>,
    /// Entries of each worker's flow table.
    pub flow_capacity: u64,
    /// `director.drain` is on.
    pub draining: bool,
    /// (version, commit) for `rvs_build_info`.
    pub build: Option<(&'a str, &'a str)>,
}

impl<'a> Scrape<'a> {
    /// Only the two replies (everything else absent or zero).
    pub fn new(stats: &'a Value, list: &'a Value) -> Self {
        Scrape {
            stats,
            list,
            link: None,
            flow_capacity: 0,
            draining: false,
            build: None,
        }
    }
}

/// The entries a worker's flow table has for `tables.flows_per_worker = configured` (the
/// table rounds up to a power of two of at least one lookup window, as `FlowTable::new`).
pub fn flow_table_entries(configured: u64) -> u64 {
    let window = rvs_dataplane::flow::WINDOW as u64;
    configured
        .max(window)
        .checked_next_power_of_two()
        .unwrap_or(u64::MAX)
}

/// A sample's value.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Val {
    Int(u64),
    Float(f64),
}

impl std::fmt::Display for Val {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Val::Int(v) => write!(f, "{v}"),
            Val::Float(v) if v.is_nan() => f.write_str("NaN"),
            Val::Float(v) if v.is_infinite() => f.write_str(if v > 0.0 { "+Inf" } else { "-Inf" }),
            Val::Float(v) => write!(f, "{v}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
}

type Labels = Vec<(&'static str, String)>;

struct Family {
    name: String,
    help: String,
    kind: Kind,
    samples: Vec<(Labels, Val)>,
}

/// Families in the order first added; each family's samples together, as the format wants.
#[derive(Default)]
struct Families {
    list: Vec<Family>,
    index: BTreeMap<String, usize>,
}

impl Families {
    fn add(&mut self, name: &str, kind: Kind, help: &str, labels: Labels, v: Val) {
        let i = match self.index.get(name) {
            Some(&i) => i,
            None => {
                self.list.push(Family {
                    name: name.to_string(),
                    help: help.to_string(),
                    kind,
                    samples: Vec::new(),
                });
                self.index.insert(name.to_string(), self.list.len() - 1);
                self.list.len() - 1
            }
        };
        self.list[i].samples.push((labels, v));
    }
    fn counter(&mut self, name: &str, help: &str, labels: Labels, v: u64) {
        self.add(name, Kind::Counter, help, labels, Val::Int(v));
    }
    fn gauge(&mut self, name: &str, help: &str, labels: Labels, v: u64) {
        self.add(name, Kind::Gauge, help, labels, Val::Int(v));
    }
    fn gauge_f(&mut self, name: &str, help: &str, labels: Labels, v: f64) {
        self.add(name, Kind::Gauge, help, labels, Val::Float(v));
    }

    fn write(&self) -> String {
        let mut out = String::new();
        for f in &self.list {
            let _ = writeln!(out, "# HELP {} {}", f.name, escape_help(&f.help));
            let kind = match f.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
            };
            let _ = writeln!(out, "# TYPE {} {kind}", f.name);
            for (labels, v) in &f.samples {
                out.push_str(&f.name);
                if !labels.is_empty() {
                    out.push('{');
                    for (i, (k, val)) in labels.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        let _ = write!(out, "{k}=\"{}\"", escape_label(val));
                    }
                    out.push('}');
                }
                let _ = writeln!(out, " {v}");
            }
        }
        out
    }
}

fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A metric name built from outside text (a `sync` counter's key) is used only when it is
/// made of `[a-z0-9_]` and starts with a letter.
fn name_part_ok(s: &str) -> bool {
    s.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn num(v: &Value, key: &str) -> Option<u64> {
    v.get(key)?.as_u64()
}
fn num0(v: &Value, key: &str) -> u64 {
    num(v, key).unwrap_or(0)
}
fn text<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get(key)?.as_str()
}
fn items<'v>(v: &'v Value, key: &str) -> &'v [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice)
}
/// A JSON scalar as a label value (strings as they are, numbers in decimal).
fn label(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => String::new(),
    }
}

/// The VRRP states as `rvs_vrrp_state` encodes them (keepalived's numbering).
pub const VRRP_STATES: [(&str, u64); 4] = [("INIT", 0), ("BACKUP", 1), ("MASTER", 2), ("FAULT", 3)];

/// A real server's health states, each a `rvs_backend_health_state{state=...}` series.
pub const HEALTH_STATES: [&str; 3] = ["up", "down", "inhibited"];

/// A neighbour's ARP states, each a `rvs_neighbour_state{state=...}` series.
pub const NEIGHBOUR_STATES: [&str; 4] = ["incomplete", "reachable", "stale", "static"];

const PORT_COUNTERS: [(&str, &str, &str); 8] = [
    (
        "ipackets",
        "rvs_port_received_packets_total",
        "Frames the port received.",
    ),
    (
        "opackets",
        "rvs_port_transmitted_packets_total",
        "Frames the port sent.",
    ),
    (
        "ibytes",
        "rvs_port_received_bytes_total",
        "Bytes the port received.",
    ),
    (
        "obytes",
        "rvs_port_transmitted_bytes_total",
        "Bytes the port sent.",
    ),
    (
        "imissed",
        "rvs_port_imissed_total",
        "Frames the NIC dropped because the rx queues were full (imissed).",
    ),
    (
        "ierrors",
        "rvs_port_ierrors_total",
        "Erroneous frames received (ierrors).",
    ),
    (
        "oerrors",
        "rvs_port_oerrors_total",
        "Failed transmissions (oerrors).",
    ),
    (
        "rx_nombuf",
        "rvs_port_rx_nombuf_total",
        "Receive mbuf allocation failures (rx_nombuf).",
    ),
];

const WORKER_COUNTERS: [(&str, &str, &str); 5] = [
    (
        "rx_packets",
        "rvs_worker_rx_packets_total",
        "Frames the worker received from its rx queue.",
    ),
    (
        "tx_packets",
        "rvs_worker_tx_packets_total",
        "Frames the worker's tx queue took.",
    ),
    (
        "forwarded",
        "rvs_worker_forwarded_packets_total",
        "Frames the worker forwarded to a real server.",
    ),
    (
        "arp_replies",
        "rvs_worker_arp_replies_total",
        "ARP replies the worker sent.",
    ),
    (
        "to_kernel",
        "rvs_worker_to_kernel_packets_total",
        "Frames the worker queued for the kernel interface.",
    ),
];

const KERNEL_COUNTERS: [(&str, &str, &str); 6] = [
    (
        "to_kernel",
        "rvs_kernel_to_kernel_packets_total",
        "Frames the workers queued for the kernel interface.",
    ),
    (
        "from_kernel",
        "rvs_kernel_from_kernel_packets_total",
        "Frames the kernel sent out of its interface that the data port took.",
    ),
    (
        "exception_full",
        "rvs_kernel_exception_full_total",
        "Frames for the kernel dropped because a worker's queue was full.",
    ),
    (
        "exception_ratelimited",
        "rvs_kernel_exception_ratelimited_total",
        "Frames for the kernel dropped over kernel.rate_pps.",
    ),
    (
        "from_kernel_dropped",
        "rvs_kernel_from_kernel_dropped_total",
        "Frames from the kernel the data port did not take.",
    ),
    (
        "to_kernel_dropped",
        "rvs_kernel_to_kernel_dropped_total",
        "Frames for the kernel its interface did not take.",
    ),
];

const MEMPOOL_GAUGES: [(&str, &str, &str); 4] = [
    ("size", "rvs_mempool_size", "Mbufs in the packet pool."),
    (
        "cache_size",
        "rvs_mempool_cache_size",
        "Mbufs each lcore may keep in its pool cache.",
    ),
    (
        "in_use",
        "rvs_mempool_in_use",
        "Mbufs allocated (in rings, bursts and queues).",
    ),
    (
        "free",
        "rvs_mempool_free",
        "Mbufs free (the lcore caches counted as free).",
    ),
];

const VRRP_COUNTERS: [(&str, &str, &str); 5] = [
    (
        "transitions",
        "rvs_vrrp_transitions_total",
        "State transitions of the VRRP instance.",
    ),
    (
        "adverts_sent",
        "rvs_vrrp_adverts_sent_total",
        "VRRP adverts the instance sent.",
    ),
    (
        "adverts_received",
        "rvs_vrrp_adverts_received_total",
        "VRRP adverts the instance received.",
    ),
    (
        "auth_errors",
        "rvs_vrrp_auth_errors_total",
        "VRRPv2 adverts with a wrong password.",
    ),
    (
        "invalid",
        "rvs_vrrp_invalid_total",
        "Other VRRP adverts refused or malformed.",
    ),
];

/// The `sync` counters rvs reports (docs/ha.md); another key gets a generic help text.
const SYNC_HELP: [(&str, &str); 23] = [
    ("out_records", "Flow records the workers reported for sync."),
    (
        "out_dropped",
        "Flow records lost to a full worker ring (outgoing).",
    ),
    (
        "in_records",
        "Received flow records handed to the workers (one per copy).",
    ),
    (
        "in_dropped",
        "Received flow records lost to a full worker ring.",
    ),
    ("installed", "Synced flows the workers installed."),
    (
        "install_failed",
        "Synced flows the workers could not install.",
    ),
    ("msgs_sent", "Sync datagrams sent (one per peer)."),
    ("msgs_received", "Sync datagrams received."),
    ("records_sent", "Flow records sent."),
    ("records_received", "Flow records received."),
    (
        "records_ignored",
        "Flow records received while master, ignored.",
    ),
    ("lost", "Sync messages missing from the peers' sequences."),
    ("decode_errors", "Sync messages that did not decode."),
    (
        "foreign",
        "Sync messages from a non-peer or for another VRID.",
    ),
    ("send_errors", "Sync send errors."),
    ("recv_errors", "Sync receive errors."),
    ("dumps_requested", "Bulk resyncs this director asked for."),
    ("dump_requests_received", "Bulk resync requests received."),
    ("dumps_served", "Bulk resyncs served."),
    ("dumps_abandoned", "Bulk resyncs abandoned."),
    ("resync_completed", "Bulk resyncs completed."),
    ("resync_timeouts", "Bulk resyncs that timed out."),
    (
        "refreshes",
        "Periodic whole-table refreshes sent as master.",
    ),
];

/// The six labels node_exporter gives a backend, in its order.
fn backend_labels(svc: &Value, srv: &Value) -> Labels {
    vec![
        ("local_address", label(svc, "vip")),
        ("local_port", label(svc, "port")),
        ("remote_address", label(srv, "addr")),
        ("remote_port", label(srv, "port")),
        ("proto", label(svc, "proto").to_ascii_uppercase()),
        ("local_mark", String::new()),
    ]
}

fn service_labels(svc: &Value) -> Labels {
    vec![
        ("local_address", label(svc, "vip")),
        ("local_port", label(svc, "port")),
        ("proto", label(svc, "proto").to_ascii_uppercase()),
    ]
}

fn with(mut l: Labels, k: &'static str, v: impl Into<String>) -> Labels {
    l.push((k, v.into()));
    l
}

/// The metrics text of one scrape: pure, never panics, whatever the JSON holds (missing or
/// mistyped fields give no sample, or zeros for the node_ipvs totals).
pub fn render(s: &Scrape<'_>) -> String {
    let mut f = Families::default();
    let (stats, list) = (s.stats, s.list);
    let services = items(list, "services");

    // node_exporter's IPVS totals (/proc/net/ip_vs_stats): the services' counters summed.
    let mut total = [0u64; 3];
    for svc in services {
        if let Some(c) = svc.get("counters") {
            for (t, k) in total.iter_mut().zip(["conns", "packets", "bytes"]) {
                *t = t.saturating_add(num0(c, k));
            }
        }
    }
    f.counter(
        "node_ipvs_connections_total",
        "The total number of connections made.",
        vec![],
        total[0],
    );
    f.counter(
        "node_ipvs_incoming_packets_total",
        "The total number of incoming packets.",
        vec![],
        total[1],
    );
    f.counter(
        "node_ipvs_outgoing_packets_total",
        "The total number of outgoing packets.",
        vec![],
        0,
    );
    f.counter(
        "node_ipvs_incoming_bytes_total",
        "The total amount of incoming data.",
        vec![],
        total[2],
    );
    f.counter(
        "node_ipvs_outgoing_bytes_total",
        "The total amount of outgoing data.",
        vec![],
        0,
    );

    // Backends, summed by node_exporter's label set (unique in rvs, summed all the same).
    let mut backends: BTreeMap<Vec<String>, (Labels, [u64; 3])> = BTreeMap::new();
    let mut neighbours: BTreeMap<String, String> = BTreeMap::new();
    for svc in services {
        for srv in items(svc, "servers") {
            let labels = backend_labels(svc, srv);
            let key: Vec<String> = labels.iter().map(|(_, v)| v.clone()).collect();
            let health = srv.get("health");
            let weight = health
                .and_then(|h| num(h, "weight"))
                .or_else(|| num(srv, "weight"))
                .unwrap_or(0);
            let e = backends.entry(key).or_insert_with(|| (labels, [0; 3]));
            for (t, v) in e.1.iter_mut().zip([
                num0(srv, "active_conns"),
                num0(srv, "inactive_conns"),
                weight,
            ]) {
                *t = t.saturating_add(v);
            }
            if let (Some(addr), Some(state)) = (
                text(srv, "addr"),
                srv.get("neighbour").and_then(|n| text(n, "state")),
            ) {
                neighbours.insert(addr.to_string(), state.to_string());
            }
        }
    }
    for (labels, [active, inactive, weight]) in backends.values() {
        f.gauge(
            "node_ipvs_backend_connections_active",
            "The current active connections by local and remote address.",
            labels.clone(),
            *active,
        );
        f.gauge(
            "node_ipvs_backend_connections_inactive",
            "The current inactive connections by local and remote address.",
            labels.clone(),
            *inactive,
        );
        f.gauge(
            "node_ipvs_backend_weight",
            "The current backend weight by local and remote address.",
            labels.clone(),
            *weight,
        );
    }

    // rvs's own, per service and real server.
    for svc in services {
        let sl = service_labels(svc);
        if let Some(c) = svc.get("counters") {
            f.counter(
                "rvs_service_connections_total",
                "Connections the service scheduled.",
                sl.clone(),
                num0(c, "conns"),
            );
            f.counter(
                "rvs_service_incoming_packets_total",
                "Packets the service forwarded (client to real server).",
                sl.clone(),
                num0(c, "packets"),
            );
            f.counter(
                "rvs_service_incoming_bytes_total",
                "Bytes the service forwarded (client to real server).",
                sl.clone(),
                num0(c, "bytes"),
            );
        }
        if let Some(b) = svc.get("quorum_met").and_then(Value::as_bool) {
            f.gauge(
                "rvs_service_quorum_met",
                "1 while the service's quorum of healthy weight is met.",
                sl.clone(),
                u64::from(b),
            );
        }
        if let Some(b) = svc.get("sorry_active").and_then(Value::as_bool) {
            f.gauge(
                "rvs_service_sorry_active",
                "1 while the sorry server is scheduled instead of the real servers.",
                sl.clone(),
                u64::from(b),
            );
        }
        for srv in items(svc, "servers") {
            let bl = backend_labels(svc, srv);
            if let Some(c) = srv.get("counters") {
                f.counter(
                    "rvs_backend_connections_total",
                    "Connections scheduled to the real server.",
                    bl.clone(),
                    num0(c, "conns"),
                );
                f.counter(
                    "rvs_backend_incoming_packets_total",
                    "Packets forwarded to the real server.",
                    bl.clone(),
                    num0(c, "packets"),
                );
                f.counter(
                    "rvs_backend_incoming_bytes_total",
                    "Bytes forwarded to the real server.",
                    bl.clone(),
                    num0(c, "bytes"),
                );
            }
            if let Some(v) = num(srv, "persistent_conns") {
                f.gauge(
                    "rvs_backend_persistent_connections",
                    "Persistence templates naming the real server.",
                    bl.clone(),
                    v,
                );
            }
            if let Some(v) = num(srv, "weight") {
                f.gauge("rvs_backend_configured_weight", "The real server's configured weight (node_ipvs_backend_weight is the one scheduled with).", bl.clone(), v);
            }
            let Some(h) = srv.get("health") else { continue };
            if let Some(state) = text(h, "state") {
                for st in HEALTH_STATES {
                    f.gauge("rvs_backend_health_state", "1 for the real server's health state (up, down, inhibited), 0 for the others.", with(bl.clone(), "state", st), u64::from(state == st));
                }
            }
            if let Some(ms) = num(h, "since") {
                f.gauge_f(
                    "rvs_backend_health_since_seconds",
                    "Unix time the real server's health state last changed.",
                    bl.clone(),
                    ms as f64 / 1000.0,
                );
            }
        }
    }

    // The dataplane.
    let drops = stats.get("drops");
    let mut reasons: Vec<&str> = DropReason::ALL.iter().map(|r| r.name()).collect();
    if let Some(o) = drops.and_then(Value::as_object) {
        for k in o.keys() {
            if !reasons.contains(&k.as_str()) {
                reasons.push(k);
            }
        }
    }
    for r in reasons {
        let v = drops.map_or(0, |d| num0(d, r));
        f.counter(
            "rvs_drops_total",
            "Frames dropped, by reason (summed over workers).",
            vec![("reason", r.to_string())],
            v,
        );
    }
    for w in items(stats, "workers") {
        let wl = vec![("worker", label(w, "worker")), ("lcore", label(w, "lcore"))];
        for (k, name, help) in WORKER_COUNTERS {
            if let Some(v) = num(w, k) {
                f.counter(name, help, wl.clone(), v);
            }
        }
        if let Some(v) = num(w, "flows") {
            f.gauge(
                "rvs_worker_flows",
                "Flows in the worker's flow table.",
                wl.clone(),
                v,
            );
        }
        if s.flow_capacity > 0 {
            f.gauge(
                "rvs_worker_flow_capacity",
                "Entries of the worker's flow table.",
                wl.clone(),
                s.flow_capacity,
            );
        }
        if let Some(o) = w.get("drops").and_then(Value::as_object) {
            for (r, v) in o {
                if let Some(v) = v.as_u64() {
                    f.counter(
                        "rvs_worker_drops_total",
                        "Frames the worker dropped, by reason (reasons with drops only).",
                        with(wl.clone(), "reason", r.clone()),
                        v,
                    );
                }
            }
        }
    }
    if let Some(p) = stats.get("port") {
        for (k, name, help) in PORT_COUNTERS {
            if let Some(v) = num(p, k) {
                f.counter(name, help, vec![], v);
            }
        }
    }
    if let Some(l) = s.link {
        f.gauge(
            "rvs_link_up",
            "1 while the data port's link is up.",
            vec![],
            u64::from(l.up),
        );
        f.gauge(
            "rvs_link_speed_bytes",
            "The data port's link speed in bytes per second (0 if unknown).",
            vec![],
            u64::from(l.speed_mbps) * 125_000,
        );
        f.gauge(
            "rvs_link_full_duplex",
            "1 while the data port's link is full duplex.",
            vec![],
            u64::from(l.full_duplex),
        );
    }
    if let Some(m) = stats.get("mempool") {
        for (k, name, help) in MEMPOOL_GAUGES {
            if let Some(v) = num(m, k) {
                f.gauge(name, help, vec![], v);
            }
        }
    }
    if let Some(n) = stats.get("neighbours") {
        if let Some(v) = num(n, "entries") {
            f.gauge(
                "rvs_neighbour_entries",
                "Addresses in the neighbour table.",
                vec![],
                v,
            );
        }
        if let Some(v) = num(n, "capacity") {
            f.gauge(
                "rvs_neighbour_capacity",
                "Configured neighbour table capacity.",
                vec![],
                v,
            );
        }
    }
    if let Some(v) = num(stats, "arp_refused") {
        f.counter(
            "rvs_arp_refused_total",
            "Neighbour updates refused by the ARP spoofing protection.",
            vec![],
            v,
        );
    }
    for (addr, state) in &neighbours {
        for st in NEIGHBOUR_STATES {
            f.gauge("rvs_neighbour_state", "1 for a real server address's ARP state (incomplete, reachable, stale, static), 0 for the others.", vec![("address", addr.clone()), ("state", st.to_string())], u64::from(state == st));
        }
    }
    if let Some(k) = stats.get("kernel") {
        for (key, name, help) in KERNEL_COUNTERS {
            if let Some(v) = num(k, key) {
                f.counter(name, help, vec![], v);
            }
        }
    }

    // High availability.
    let vrrp = match items(list, "vrrp") {
        [] => items(stats, "vrrp"),
        v => v,
    };
    for i in vrrp {
        let il = vec![
            ("vrrp_instance", label(i, "name")),
            ("vrid", label(i, "vrid")),
        ];
        if let Some(code) = text(i, "state")
            .and_then(|st| VRRP_STATES.iter().find(|(n, _)| *n == st))
            .map(|(_, c)| *c)
        {
            f.gauge(
                "rvs_vrrp_state",
                "The VRRP instance's state: 0 INIT, 1 BACKUP, 2 MASTER, 3 FAULT.",
                il.clone(),
                code,
            );
        }
        if let Some(v) = num(i, "priority") {
            f.gauge(
                "rvs_vrrp_priority",
                "The VRRP instance's configured priority.",
                il.clone(),
                v,
            );
        }
        if let Some(v) = num(i, "effective_priority") {
            f.gauge(
                "rvs_vrrp_effective_priority",
                "The priority the instance advertises (tracked scripts applied).",
                il.clone(),
                v,
            );
        }
        if let Some(v) = num(i, "since") {
            f.gauge(
                "rvs_vrrp_last_transition_seconds",
                "Unix time of the instance's last transition.",
                il.clone(),
                v,
            );
        }
        for (k, name, help) in VRRP_COUNTERS {
            if let Some(v) = num(i, k) {
                f.counter(name, help, il.clone(), v);
            }
        }
    }
    if let Some(o) = stats.get("sync").and_then(Value::as_object) {
        for (k, v) in o {
            let (Some(v), true) = (v.as_u64(), name_part_ok(k)) else {
                continue;
            };
            let help = SYNC_HELP
                .iter()
                .find(|(n, _)| *n == k.as_str())
                .map_or_else(
                    || format!("Connection sync counter {k}."),
                    |(_, h)| h.to_string(),
                );
            f.counter(&format!("rvs_sync_{k}_total"), &help, vec![], v);
        }
    }

    f.gauge(
        "rvs_director_draining",
        "1 while director.drain is on (no VIP announced).",
        vec![],
        u64::from(s.draining),
    );
    if let Some((version, commit)) = s.build {
        f.gauge(
            "rvs_build_info",
            "Always 1; the labels name the running build.",
            vec![
                ("version", version.to_string()),
                ("commit", commit.to_string()),
            ],
            1,
        );
    }
    f.write()
}

/// Check that `text` is well-formed text exposition 0.0.4 as [`render`] writes it: `# HELP`
/// and `# TYPE` before each family's samples, every sample's name that of the family its
/// `# TYPE` announced, valid names and label syntax, a number as the value, no family twice
/// and no sample twice. Answers the number of samples. (For the tests and the fuzz target.)
pub fn lint(text: &str) -> Result<usize, String> {
    fn name_ok(n: &str) -> bool {
        let mut b = n.bytes();
        b.next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_' || c == b':')
            && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
    }
    let mut families = std::collections::BTreeSet::new();
    let mut samples = std::collections::BTreeSet::new();
    let mut current: Option<String> = None;
    let mut helped: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        let err = |m: &str| Err(format!("line {}: {m}: {line:?}", n + 1));
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or("");
            if !name_ok(name) {
                return err("bad HELP name");
            }
            helped = Some(name.to_string());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut p = rest.split(' ');
            let (Some(name), Some(kind), None) = (p.next(), p.next(), p.next()) else {
                return err("bad TYPE line");
            };
            if !matches!(kind, "counter" | "gauge") || helped.as_deref() != Some(name) {
                return err("TYPE without its HELP, or an unknown type");
            }
            if !families.insert(name.to_string()) {
                return err("family twice");
            }
            current = Some(name.to_string());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            return err("unexpected comment or empty line");
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = &line[..name_end];
        if current.as_deref() != Some(name) || !name_ok(name) {
            return err("sample outside its family");
        }
        let mut rest = &line[name_end..];
        let mut labels = String::new();
        if let Some(r) = rest.strip_prefix('{') {
            // label="value" pairs, comma separated, values with \\ \" \n escapes.
            let b = r.as_bytes();
            let mut i = 0;
            loop {
                if b.get(i) == Some(&b'}') {
                    i += 1;
                    break;
                }
                let eq = match r[i..].find('=') {
                    Some(e) => i + e,
                    None => return err("label without '='"),
                };
                if !name_ok(&r[i..eq]) || r[i..eq].contains(':') {
                    return err("bad label name");
                }
                if b.get(eq + 1) != Some(&b'"') {
                    return err("label value not quoted");
                }
                let mut j = eq + 2;
                loop {
                    match b.get(j) {
                        None => return err("unterminated label value"),
                        Some(b'\\') => match b.get(j + 1) {
                            Some(b'\\' | b'"' | b'n') => j += 2,
                            _ => return err("bad escape"),
                        },
                        Some(b'"') => break,
                        Some(_) => j += 1,
                    }
                }
                j += 1;
                match b.get(j) {
                    Some(b',') => i = j + 1,
                    Some(b'}') => {
                        i = j + 1;
                        break;
                    }
                    _ => return err("expected ',' or '}' after a label"),
                }
            }
            labels = r[..i].to_string();
            rest = &r[i..];
        }
        let Some(value) = rest.strip_prefix(' ') else {
            return err("no space before the value");
        };
        if !matches!(value, "NaN" | "+Inf" | "-Inf") && value.parse::<f64>().is_err() {
            return err("the value is not a number");
        }
        if !samples.insert(format!("{name}{{{labels}")) {
            return err("sample twice");
        }
    }
    Ok(samples.len())
}

// ---------------------------------------------------------------------------------------------
// The thread.

/// Where a scrape's numbers come from: the control plane (its `stats` and `list`, computed as
/// for the control socket) and the data port's link.
pub struct Source {
    control: Arc<Control>,
    port: PortId,
    flow_capacity: u64,
}

impl Source {
    /// `flows_per_worker` as configured (`tables.flows_per_worker`).
    pub fn new(control: Arc<Control>, port: PortId, flows_per_worker: u32) -> Self {
        Source {
            control,
            port,
            flow_capacity: flow_table_entries(u64::from(flows_per_worker)),
        }
    }

    /// One scrape's text, or why there is none.
    pub fn scrape(&self) -> Result<String, String> {
        let stats = call(&self.control, "stats")?;
        let list = call(&self.control, "list")?;
        let link = crate::dpdk::port_link(self.port).ok();
        Ok(render(&Scrape {
            stats: &stats,
            list: &list,
            link,
            flow_capacity: self.flow_capacity,
            draining: self.control.draining(),
            build: Some((crate::BUILD.version, crate::BUILD.commit)),
        }))
    }
}

/// A control method's `result`, as the control socket would answer it.
fn call(control: &Control, method: &str) -> Result<Value, String> {
    let line = control.handle_line(&format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"{method}"}}"#
    ));
    let mut v: Value = serde_json::from_str(&line).map_err(|e| format!("{method}: {e}"))?;
    match v.get_mut("result") {
        Some(r) => Ok(r.take()),
        None => Err(format!(
            "{method}: {}",
            v.pointer("/error/message")
                .and_then(Value::as_str)
                .unwrap_or("no result")
        )),
    }
}

/// Bind `addr` and serve the metrics on a thread of its own until `stop` is set. A
/// non-loopback address is served too, with a warning (the endpoint has no authentication).
pub fn spawn(
    addr: SocketAddr,
    source: Source,
    stop: Arc<AtomicBool>,
) -> io::Result<JoinHandle<()>> {
    let listener = TcpListener::bind(addr)
        .map_err(|e| io::Error::new(e.kind(), format!("metrics endpoint {addr}: {e}")))?;
    // accept() waits at most POLL (Linux applies the receive timeout to accept).
    socket2::SockRef::from(&listener).set_read_timeout(Some(POLL))?;
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "the metrics endpoint listens on a non-loopback address: anyone who reaches it can read the counters");
    }
    tracing::info!(%addr, "metrics endpoint listening (GET /metrics)");
    std::thread::Builder::new()
        .name("rvs-metrics".to_string())
        .spawn(move || serve(&listener, &source, &stop))
}

fn serve(listener: &TcpListener, source: &Source, stop: &AtomicBool) {
    let mut error_logged = false;
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, peer)) => {
                if let Err(e) = answer(stream, source) {
                    tracing::debug!(%peer, "metrics connection: {e}");
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                // E.g. out of file descriptors: said once, retried at the poll's pace.
                if !error_logged {
                    tracing::warn!("metrics endpoint: accept: {e}");
                    error_logged = true;
                }
                std::thread::sleep(POLL);
            }
        }
    }
}

/// Read one request head (bounded in size and time), answer it, close.
fn answer(mut stream: TcpStream, source: &Source) -> io::Result<()> {
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let deadline = Instant::now() + REQUEST_DEADLINE;
    let mut buf = vec![0u8; MAX_REQUEST];
    let mut n = 0;
    let outcome = loop {
        if head_end(&buf[..n]).is_some() {
            break parse_request(&buf[..n]);
        }
        if n == buf.len() {
            break Err(RequestError::TooLarge);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break Err(RequestError::Timeout);
        }
        stream.set_read_timeout(Some(left.min(READ_TIMEOUT)))?;
        match stream.read(&mut buf[n..]) {
            // Closed before a whole head: nothing to answer to a mere connect.
            Ok(0) if n == 0 => return Ok(()),
            Ok(0) => break Err(RequestError::Incomplete),
            Ok(k) => n += k,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                break Err(RequestError::Timeout)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    };
    let resp = respond(outcome, || source.scrape());
    stream.write_all(&resp.to_bytes())?;
    stream.flush()?;
    let _ = stream.shutdown(Shutdown::Write);
    // Read what the client may still send (a body) for a moment, so that closing with unread
    // data does not reset the connection before the answer is read.
    stream.set_read_timeout(Some(Duration::from_millis(100)))?;
    let mut sink = [0u8; 4096];
    for _ in 0..16 {
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // --- the request parser ---------------------------------------------------------------

    #[test]
    fn good_requests_parse() {
        let cases: &[(&[u8], &str, &str)] = &[
            // What Prometheus sends (abridged).
            (b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9477\r\nUser-Agent: Prometheus/2.42.0\r\nAccept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\nAccept-Encoding: gzip\r\nX-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n", "GET", "/metrics"),
            // curl.
            (b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n", "GET", "/metrics"),
            // HTTP/1.0 needs no Host; LF line ends; the query is cut.
            (b"GET /metrics?x=1 HTTP/1.0\n\n", "GET", "/metrics"),
            (b"HEAD /metrics#frag HTTP/1.0\r\n\r\n", "HEAD", "/metrics"),
            // Empty lines before the request line are skipped.
            (b"\r\n\r\nGET /metrics HTTP/1.0\r\n\r\n", "GET", "/metrics"),
            // Absolute form.
            (b"GET http://127.0.0.1:9477/metrics HTTP/1.1\r\nHost: x\r\n\r\n", "GET", "/metrics"),
            (b"GET HTTP://h HTTP/1.1\r\nHost: h\r\n\r\n", "GET", "/"),
            (b"GET https://h?q HTTP/1.1\r\nHost: h\r\n\r\n", "GET", "/"),
            (b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", "OPTIONS", "*"),
            // Other methods and paths parse; respond() refuses them.
            (b"POST /metrics HTTP/1.1\r\nhost: h\r\nContent-Length: 3\r\n\r\nabc", "POST", "/metrics"),
            (b"get / HTTP/1.1\r\nHost: h\r\n\r\n", "get", "/"),
            // Header values may be empty, hold tabs and obs-text.
            (b"GET /metrics HTTP/1.1\r\nHost: h\r\nX-Empty:\r\nX-Tab: a\tb\r\nX-Obs: caf\xc3\xa9\r\n\r\n", "GET", "/metrics"),
        ];
        for (bytes, method, path) in cases {
            let r = parse_request(bytes);
            assert_eq!(
                r,
                Ok(Request { method, path }),
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn bad_requests_are_refused_with_the_reason() {
        use RequestError::*;
        let long_header = {
            let mut v = b"GET /metrics HTTP/1.1\r\nHost: h\r\nX: ".to_vec();
            v.resize(MAX_REQUEST + 10, b'a');
            v.extend_from_slice(b"\r\n\r\n");
            v
        };
        let no_end = {
            let mut v = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
            v.resize(MAX_REQUEST, b'a');
            v
        };
        let cases: Vec<(&[u8], RequestError)> = vec![
            (b"", Incomplete),
            (b"GET /metrics HTTP/1.1\r\nHost: h\r\n", Incomplete),
            (b"\r\n\r\n", Incomplete),
            (&no_end, TooLarge),
            (&long_header, TooLarge),
            (
                b"GET /metrics\r\n\r\n",
                RequestLine("expected METHOD SP TARGET SP VERSION"),
            ),
            (
                b"GET  /metrics HTTP/1.1\r\nHost: h\r\n\r\n",
                RequestLine("expected METHOD SP TARGET SP VERSION"),
            ),
            (
                b"GET /metrics HTTP/1.1 x\r\nHost: h\r\n\r\n",
                RequestLine("expected METHOD SP TARGET SP VERSION"),
            ),
            (
                b"GET\t/metrics HTTP/1.1\r\n\r\n",
                RequestLine("expected METHOD SP TARGET SP VERSION"),
            ),
            (
                b"G(T /metrics HTTP/1.1\r\nHost: h\r\n\r\n",
                RequestLine("the method is not a token"),
            ),
            (
                b" /metrics HTTP/1.1\r\n\r\n",
                RequestLine("the method is not a token"),
            ),
            (
                b"GET /m\x01 HTTP/1.1\r\n\r\n",
                RequestLine("the target is empty or not visible ASCII"),
            ),
            (b"GET /m\xc3\xa9 HTTP/1.1\r\n\r\n", RequestLine("not ASCII")),
            (b"GET /m\xff HTTP/1.1\r\n\r\n", RequestLine("not ASCII")),
            (
                b"GET metrics HTTP/1.1\r\nHost: h\r\n\r\n",
                RequestLine("the target is neither a path nor an absolute URI"),
            ),
            (
                b"GET ftp://h/metrics HTTP/1.1\r\nHost: h\r\n\r\n",
                RequestLine("the target is neither a path nor an absolute URI"),
            ),
            (b"GET /metrics HTTP/2.0\r\n\r\n", Version),
            (b"GET /metrics HTTP/0.9\r\n\r\n", Version),
            (
                b"GET /metrics HTTP/1.10\r\n\r\n",
                RequestLine("the version is not HTTP/x.y"),
            ),
            (
                b"GET /metrics http/1.1\r\n\r\n",
                RequestLine("the version is not HTTP/x.y"),
            ),
            (
                b"GET /metrics FOO\r\n\r\n",
                RequestLine("the version is not HTTP/x.y"),
            ),
            // A stray CR inside the request line.
            (
                b"GET /metrics\rHTTP/1.1\r\n\r\n",
                RequestLine("expected METHOD SP TARGET SP VERSION"),
            ),
            (
                b"GET /metrics HTTP/1.1\r\nHost h\r\n\r\n",
                Header {
                    line: 2,
                    why: "no ':'",
                },
            ),
            (
                b"GET /metrics HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n",
                Header {
                    line: 3,
                    why: "folded (obsolete line folding)",
                },
            ),
            (
                b"GET /metrics HTTP/1.1\r\nHost : h\r\n\r\n",
                Header {
                    line: 2,
                    why: "the name is not a token",
                },
            ),
            (
                b"GET /metrics HTTP/1.1\r\n: h\r\n\r\n",
                Header {
                    line: 2,
                    why: "the name is not a token",
                },
            ),
            (
                b"GET /metrics HTTP/1.1\r\nHost: h\x00\r\n\r\n",
                Header {
                    line: 2,
                    why: "control character in the value",
                },
            ),
            (
                b"GET /metrics HTTP/1.1\r\nHost: h\rX: y\r\n\r\n",
                Header {
                    line: 2,
                    why: "control character in the value",
                },
            ),
            (b"GET /metrics HTTP/1.1\r\n\r\n", Host),
            (b"GET /metrics HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", Host),
            (b"GET /metrics HTTP/1.0\r\nHost: a\r\nHOST: b\r\n\r\n", Host),
        ];
        for (bytes, want) in cases {
            assert_eq!(
                parse_request(bytes),
                Err(want),
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn head_end_finds_the_empty_line() {
        let cases: &[(&[u8], Option<usize>)] = &[
            (b"", None),
            (b"\n", None),
            (b"a\n\n", Some(3)),
            (b"a\r\n\r\nbody", Some(5)),
            (b"a\n\r\nb", Some(4)),
            (b"a\r\nb\r\n", None),
            (b"a\r\n\rb", None),
            // Leading line ends are not the head's end.
            (b"\r\n\r\n", None),
            (b"\n\nGET / HTTP/1.0\n\n", Some(18)),
        ];
        for (b, want) in cases {
            assert_eq!(head_end(b), *want, "{b:?}");
        }
    }

    // --- what is answered ------------------------------------------------------------------

    fn status_of(bytes: &[u8]) -> u16 {
        respond(parse_request(bytes), || Ok("x 1\n".into())).status
    }

    #[test]
    fn statuses() {
        let cases: &[(&[u8], u16)] = &[
            (b"GET /metrics HTTP/1.1\r\nHost: h\r\n\r\n", 200),
            (b"HEAD /metrics HTTP/1.0\r\n\r\n", 200),
            (b"GET /metrics/ HTTP/1.0\r\n\r\n", 404),
            (b"GET / HTTP/1.0\r\n\r\n", 404),
            (b"GET /Metrics HTTP/1.0\r\n\r\n", 404),
            (b"POST /metrics HTTP/1.0\r\n\r\n", 405),
            (b"get /metrics HTTP/1.0\r\n\r\n", 405),
            (b"DELETE /metrics HTTP/1.0\r\n\r\n", 405),
            (b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", 404),
            (b"GET /metrics HTTP/1.1\r\n\r\n", 400),
            (b"GARBAGE\r\n\r\n", 400),
            (b"GET /metrics HTTP/3.0\r\n\r\n", 505),
        ];
        for (bytes, want) in cases {
            assert_eq!(
                status_of(bytes),
                *want,
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
        assert_eq!(
            respond(Err(RequestError::Timeout), || unreachable!()).status,
            408
        );
        assert_eq!(
            respond(Err(RequestError::TooLarge), || unreachable!()).status,
            431
        );
    }

    #[test]
    fn answers_on_the_wire() {
        let ok = respond(parse_request(b"GET /metrics HTTP/1.0\r\n\r\n"), || {
            Ok("a 1\n".into())
        });
        assert_eq!(
            String::from_utf8(ok.to_bytes()).unwrap(),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
             Content-Length: 4\r\nConnection: close\r\n\r\na 1\n"
        );
        // HEAD: GET's headers, no body.
        let head = respond(parse_request(b"HEAD /metrics HTTP/1.0\r\n\r\n"), || {
            Ok("a 1\n".into())
        });
        let text = String::from_utf8(head.to_bytes()).unwrap();
        assert!(
            text.contains("Content-Length: 4\r\n") && text.ends_with("\r\n\r\n"),
            "{text}"
        );
        let no = respond(
            parse_request(b"PUT /metrics HTTP/1.0\r\n\r\n"),
            || unreachable!(),
        );
        let text = String::from_utf8(no.to_bytes()).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nAllow: GET, HEAD\r\n"), "{text}");
        // The scrape failing is a 500 that says why.
        let e = respond(parse_request(b"GET /metrics HTTP/1.0\r\n\r\n"), || {
            Err("stats: locked".into())
        });
        assert_eq!(e.status, 500);
        assert!(e.body.contains("stats: locked"), "{}", e.body);
    }

    // --- rendering -------------------------------------------------------------------------

    /// `list` as docs/control.md shows it, with a second server (up, no checks, static
    /// neighbour) and a VRRP instance.
    fn list_fixture() -> Value {
        json!({"services":[{"proto":"tcp","vip":"198.18.0.100","port":80,"scheduler":"rr",
            "persistent":null,"netmask":"255.255.255.255","flags":[],
            "counters":{"conns":7,"packets":40,"bytes":3000},
            "servers":[
              {"addr":"198.18.0.11","port":80,"weight":1,"forward":"dr","upper":0,"lower":0,
               "active_conns":2,"inactive_conns":1,"persistent_conns":0,
               "counters":{"conns":5,"packets":30,"bytes":2000},
               "neighbour":{"state":"reachable","mac":"02:00:00:00:00:11","age_ms":5120},
               "health":{"state":"down","since":1718000042000u64,"last_check":1718000051000u64,
                 "last_error":"connect: connection refused","weight":0,"inhibit_on_failure":false,
                 "checks":[]}},
              {"addr":"198.18.0.12","port":8080,"weight":3,"forward":"dr","upper":0,"lower":0,
               "active_conns":0,"inactive_conns":4,"persistent_conns":2,
               "counters":{"conns":2,"packets":10,"bytes":1000},
               "neighbour":{"state":"static","mac":"02:00:00:00:00:12"},
               "health":{"state":"up","since":1718000000500u64,"last_check":null,"last_error":null,
                 "weight":3,"inhibit_on_failure":false,"checks":[]}}],
            "sorry_server":null,"sorry_active":false,"quorum":1,"quorum_met":true},
           {"proto":"udp","vip":"198.18.0.101","port":53,"counters":{"conns":1,"packets":1,"bytes":80},
            "servers":[]}],
          "vrrp":[{"name":"VI_1","vrid":51,"state":"MASTER","priority":100,"effective_priority":90,
            "master":"198.18.0.2","since":1718000042,"transitions":3,"adverts_sent":10,
            "adverts_received":20,"auth_errors":1,"invalid":2,"dropped_not_master":0,"reason":"x"}]})
    }

    fn stats_fixture() -> Value {
        json!({"port":{"ipackets":20,"opackets":14,"ibytes":1900,"obytes":1180,"imissed":3,
            "ierrors":0,"oerrors":0,"rx_nombuf":4},
          "workers":[{"worker":0,"lcore":2,"queue":0,"rx_packets":20,"tx_packets":14,"forwarded":14,
            "arp_replies":2,"to_kernel":1,"flows":9,"drops":{"not_our_mac":4}},
            {"worker":1,"lcore":3,"queue":1,"rx_packets":5,"tx_packets":5,"forwarded":5,
            "arp_replies":0,"to_kernel":0,"flows":1,"drops":{}}],
          "services":[],"drops":{"not_our_mac":4,"some_new_reason":6},"arp_refused":1,
          "mempool":{"size":8191,"cache_size":256,"in_use":1500,"free":6691},
          "neighbours":{"entries":2,"capacity":4096},
          "kernel":{"to_kernel":12,"from_kernel":15,"exception_full":0,"exception_ratelimited":0,
            "from_kernel_dropped":0,"to_kernel_dropped":0},
          "sync":{"installed":5120,"msgs_sent":1,"Bad-Key":3,"neg":-1}})
    }

    /// The value of the sample written exactly as `series` (name and labels).
    fn value(text: &str, series: &str) -> Option<String> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .map(str::to_string)
    }

    #[test]
    fn renders_node_exporter_ipvs_series() {
        let (stats, list) = (stats_fixture(), list_fixture());
        let text = render(&Scrape::new(&stats, &list));
        lint(&text).unwrap();
        for (series, want) in [
            ("node_ipvs_connections_total", "8"),
            ("node_ipvs_incoming_packets_total", "41"),
            ("node_ipvs_incoming_bytes_total", "3080"),
            ("node_ipvs_outgoing_packets_total", "0"),
            ("node_ipvs_outgoing_bytes_total", "0"),
            (
                r#"node_ipvs_backend_connections_active{local_address="198.18.0.100",local_port="80",remote_address="198.18.0.11",remote_port="80",proto="TCP",local_mark=""}"#,
                "2",
            ),
            (
                r#"node_ipvs_backend_connections_inactive{local_address="198.18.0.100",local_port="80",remote_address="198.18.0.11",remote_port="80",proto="TCP",local_mark=""}"#,
                "1",
            ),
            // The weight scheduled with: 0 while down; the configured one beside it.
            (
                r#"node_ipvs_backend_weight{local_address="198.18.0.100",local_port="80",remote_address="198.18.0.11",remote_port="80",proto="TCP",local_mark=""}"#,
                "0",
            ),
            (
                r#"rvs_backend_configured_weight{local_address="198.18.0.100",local_port="80",remote_address="198.18.0.11",remote_port="80",proto="TCP",local_mark=""}"#,
                "1",
            ),
            (
                r#"node_ipvs_backend_weight{local_address="198.18.0.100",local_port="80",remote_address="198.18.0.12",remote_port="8080",proto="TCP",local_mark=""}"#,
                "3",
            ),
            (
                r#"node_ipvs_backend_connections_inactive{local_address="198.18.0.100",local_port="80",remote_address="198.18.0.12",remote_port="8080",proto="TCP",local_mark=""}"#,
                "4",
            ),
        ] {
            assert_eq!(
                value(&text, series).as_deref(),
                Some(want),
                "{series}\n{text}"
            );
        }
        assert!(
            text.contains("# TYPE node_ipvs_connections_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE node_ipvs_backend_weight gauge\n"),
            "{text}"
        );
        assert!(text.contains("# HELP node_ipvs_backend_connections_active The current active connections by local and remote address.\n"));
        // Three backend series per real server, none for the service without one.
        assert_eq!(text.matches("\nnode_ipvs_backend_").count(), 6, "{text}");
    }

    #[test]
    fn renders_rvs_series() {
        let (stats, list) = (stats_fixture(), list_fixture());
        let link = Link {
            up: true,
            speed_mbps: 10_000,
            full_duplex: true,
        };
        let text = render(&Scrape {
            link: Some(link),
            flow_capacity: 65536,
            draining: true,
            build: Some(("0.1.0", "abc\"d")),
            ..Scrape::new(&stats, &list)
        });
        let n = lint(&text).unwrap();
        assert!(n > 100, "{n}");
        let rs1 = r#"local_address="198.18.0.100",local_port="80",remote_address="198.18.0.11",remote_port="80",proto="TCP",local_mark="""#;
        for (series, want) in [
            (r#"rvs_drops_total{reason="not_our_mac"}"#.to_string(), "4"),
            (r#"rvs_drops_total{reason="no_service"}"#.into(), "0"),
            (r#"rvs_drops_total{reason="some_new_reason"}"#.into(), "6"),
            (r#"rvs_worker_rx_packets_total{worker="0",lcore="2"}"#.into(), "20"),
            (r#"rvs_worker_tx_packets_total{worker="1",lcore="3"}"#.into(), "5"),
            (r#"rvs_worker_flows{worker="0",lcore="2"}"#.into(), "9"),
            (r#"rvs_worker_flow_capacity{worker="1",lcore="3"}"#.into(), "65536"),
            (r#"rvs_worker_drops_total{worker="0",lcore="2",reason="not_our_mac"}"#.into(), "4"),
            ("rvs_port_imissed_total".into(), "3"),
            ("rvs_port_rx_nombuf_total".into(), "4"),
            ("rvs_port_received_packets_total".into(), "20"),
            ("rvs_link_up".into(), "1"),
            ("rvs_link_speed_bytes".into(), "1250000000"),
            ("rvs_mempool_in_use".into(), "1500"),
            ("rvs_mempool_size".into(), "8191"),
            ("rvs_neighbour_entries".into(), "2"),
            ("rvs_arp_refused_total".into(), "1"),
            (r#"rvs_neighbour_state{address="198.18.0.11",state="reachable"}"#.into(), "1"),
            (r#"rvs_neighbour_state{address="198.18.0.11",state="stale"}"#.into(), "0"),
            (r#"rvs_neighbour_state{address="198.18.0.12",state="static"}"#.into(), "1"),
            (format!("rvs_backend_health_state{{{rs1},state=\"down\"}}"), "1"),
            (format!("rvs_backend_health_state{{{rs1},state=\"up\"}}"), "0"),
            (format!("rvs_backend_health_since_seconds{{{rs1}}}"), "1718000042"),
            (format!("rvs_backend_connections_total{{{rs1}}}"), "5"),
            (format!("rvs_backend_incoming_bytes_total{{{rs1}}}"), "2000"),
            (r#"rvs_service_connections_total{local_address="198.18.0.101",local_port="53",proto="UDP"}"#.into(), "1"),
            (r#"rvs_service_quorum_met{local_address="198.18.0.100",local_port="80",proto="TCP"}"#.into(), "1"),
            (r#"rvs_service_sorry_active{local_address="198.18.0.100",local_port="80",proto="TCP"}"#.into(), "0"),
            (r#"rvs_vrrp_state{vrrp_instance="VI_1",vrid="51"}"#.into(), "2"),
            (r#"rvs_vrrp_effective_priority{vrrp_instance="VI_1",vrid="51"}"#.into(), "90"),
            (r#"rvs_vrrp_transitions_total{vrrp_instance="VI_1",vrid="51"}"#.into(), "3"),
            (r#"rvs_vrrp_auth_errors_total{vrrp_instance="VI_1",vrid="51"}"#.into(), "1"),
            ("rvs_kernel_from_kernel_packets_total".into(), "15"),
            ("rvs_sync_installed_total".into(), "5120"),
            ("rvs_sync_msgs_sent_total".into(), "1"),
            ("rvs_director_draining".into(), "1"),
            (r#"rvs_build_info{version="0.1.0",commit="abc\"d"}"#.into(), "1"),
        ] {
            assert_eq!(value(&text, &series).as_deref(), Some(want), "{series}\n{text}");
        }
        assert_eq!(
            value(
                &text,
                &format!(
                    "rvs_backend_health_since_seconds{{{}}}",
                    rs1.replace(".11", ".12")
                        .replace("\"80\",proto", "\"8080\",proto")
                )
            )
            .as_deref(),
            Some("1718000000.5")
        );
        // Every known drop reason is there, with or without drops.
        assert_eq!(
            text.matches("\nrvs_drops_total{").count(),
            DropReason::COUNT + 1
        );
        // A sync key that is no metric name, or no counter, is left out.
        assert!(
            !text.contains("Bad-Key") && !text.contains("rvs_sync_neg"),
            "{text}"
        );
    }

    #[test]
    fn vrrp_states_are_numbered_as_documented() {
        let stats = json!({});
        for (state, code) in [
            ("INIT", "0"),
            ("BACKUP", "1"),
            ("MASTER", "2"),
            ("FAULT", "3"),
        ] {
            let list = json!({"services": [], "vrrp": [{"name": "A", "vrid": 1, "state": state}]});
            let text = render(&Scrape::new(&stats, &list));
            assert_eq!(
                value(&text, r#"rvs_vrrp_state{vrrp_instance="A",vrid="1"}"#).as_deref(),
                Some(code)
            );
        }
        // An unknown state gives no state sample; the instance's other series stay.
        let list = json!({"services": [], "vrrp": [{"name": "A", "vrid": 1, "state": "LIMBO", "priority": 5}]});
        let text = render(&Scrape::new(&stats, &list));
        assert!(!text.contains("rvs_vrrp_state{"), "{text}");
        assert_eq!(
            value(&text, r#"rvs_vrrp_priority{vrrp_instance="A",vrid="1"}"#).as_deref(),
            Some("5")
        );
    }

    #[test]
    fn odd_json_renders_without_panicking_and_stays_well_formed() {
        let cases = [
            json!(null),
            json!(5),
            json!("x"),
            json!([]),
            json!({}),
            json!({"services": 3}),
            json!({"services": [1, "a", null, {"servers": "no"}]}),
            json!({"services": [{"vip": {"x": 1}, "port": -1, "proto": null, "counters": {"conns": "7", "packets": 1.5, "bytes": u64::MAX},
                "servers": [{"addr": 5, "health": {"state": 3, "since": -5}, "neighbour": "x"}, {"addr": "a\"b\\c\nd", "neighbour": {"state": "weird"}}]},
                {"counters": {"conns": u64::MAX, "bytes": u64::MAX}}]}),
            json!({"workers": [{}, {"worker": "w", "drops": {"a": "b", "c": 1}}], "drops": [], "port": 1, "mempool": null, "sync": {"": 1, "9x": 2, "ok": 3}}),
            json!({"vrrp": [{"name": "x\ny", "state": 1}, 7], "services": []}),
        ];
        for stats in &cases {
            for list in &cases {
                let text = render(&Scrape::new(stats, list));
                if let Err(e) = lint(&text) {
                    panic!("{e}\nstats {stats}\nlist {list}\n{text}");
                }
                assert!(text.contains("node_ipvs_connections_total "), "{text}");
            }
        }
        // Sums saturate; escapes are escaped.
        let list = &cases[7];
        let text = render(&Scrape::new(&json!({}), list));
        assert_eq!(
            value(&text, "node_ipvs_connections_total").as_deref(),
            Some(&*u64::MAX.to_string())
        );
        assert!(text.contains(r#"remote_address="a\"b\\c\nd""#), "{text}");
    }

    #[test]
    fn lint_catches_malformed_text() {
        let good = "# HELP a_total x\n# TYPE a_total counter\na_total{l=\"v\\\"\"} 1\na_total 2\n";
        assert_eq!(lint(good), Ok(2));
        let bad = [
            "a 1\n",
            "# HELP a x\na 1\n",
            "# HELP a x\n# TYPE a gauge\nb 1\n",
            "# HELP a x\n# TYPE a gauge\na{l=v} 1\n",
            "# HELP a x\n# TYPE a gauge\na{l=\"v} 1\n",
            "# HELP a x\n# TYPE a gauge\na{l=\"\\x\"} 1\n",
            "# HELP a x\n# TYPE a gauge\na one\n",
            "# HELP a x\n# TYPE a gauge\na 1\na 2\n",
            "# HELP a x\n# TYPE a gauge\n# HELP a x\n# TYPE a gauge\n",
            "# HELP a x\n# TYPE a summary\n",
            "# HELP a x\n# TYPE a gauge\na{1l=\"v\"} 1\n",
            "# HELP a x\n# TYPE a gauge\n\n",
        ];
        for b in bad {
            assert!(lint(b).is_err(), "{b:?}");
        }
    }

    #[test]
    fn flow_capacity_is_the_tables() {
        let t = rvs_dataplane::flow::Timeouts::default();
        for configured in [1u64, 100, 1000, 65536, 70000] {
            let table = rvs_dataplane::flow::FlowTable::new(configured as usize, t, 1);
            assert_eq!(
                flow_table_entries(configured),
                table.capacity() as u64,
                "{configured}"
            );
        }
    }

    // --- the real thing, over TCP ----------------------------------------------------------

    /// A control plane over the real adapter (no EAL: zero port counters, no link), with one
    /// service and two real servers.
    fn control() -> Arc<Control> {
        use rvs_dataplane::snapshot::Shared;
        let shared = Arc::new(Shared::new(
            4,
            4,
            16,
            2,
            [2, 0, 0, 0, 0, 1],
            std::net::Ipv4Addr::new(198, 18, 0, 2),
            24,
        ));
        let model = rvs_dataplane::model::Model::new(4, 4);
        shared.publish(&model).unwrap();
        let dp = Arc::new(crate::adapter::Adapter::new(shared, PortId(0), vec![0, 1]));
        let c = Arc::new(Control::new(model, dp));
        let n = c
            .apply_rules(
                "-A -t 198.18.0.100:80 -s rr\n-a -t 198.18.0.100:80 -r 198.18.0.11 -g -w 2\n\
                 -a -t 198.18.0.100:80 -r 198.18.0.12 -g -w 1\n",
            )
            .unwrap();
        assert_eq!(n, 3);
        c
    }

    #[test]
    fn scrape_of_a_real_control_plane() {
        let src = Source::new(control(), PortId(0), 1000);
        let text = src.scrape().unwrap();
        lint(&text).unwrap();
        let rs1 = r#"local_address="198.18.0.100",local_port="80",remote_address="198.18.0.11",remote_port="80",proto="TCP",local_mark="""#;
        assert_eq!(
            value(&text, &format!("node_ipvs_backend_weight{{{rs1}}}")).as_deref(),
            Some("2")
        );
        assert_eq!(
            value(
                &text,
                &format!("node_ipvs_backend_connections_active{{{rs1}}}")
            )
            .as_deref(),
            Some("0")
        );
        assert_eq!(
            value(
                &text,
                &format!("rvs_backend_health_state{{{rs1},state=\"up\"}}")
            )
            .as_deref(),
            Some("1")
        );
        assert_eq!(
            value(
                &text,
                r#"rvs_neighbour_state{address="198.18.0.11",state="incomplete"}"#
            )
            .as_deref(),
            Some("1")
        );
        assert_eq!(
            value(&text, r#"rvs_worker_flow_capacity{worker="1",lcore="1"}"#).as_deref(),
            Some("1024")
        );
        assert_eq!(value(&text, "rvs_neighbour_entries").as_deref(), Some("2"));
        assert!(text.contains("rvs_build_info{version=\""), "{text}");
        // No EAL: the link cannot be read, so it is not reported.
        assert!(!text.contains("rvs_link_up"), "{text}");
    }

    /// One request over TCP; the whole answer.
    fn http(addr: SocketAddr, req: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(req).unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn serves_over_tcp_and_stops() {
        let stop = Arc::new(AtomicBool::new(false));
        // Port 0 is refused by the configuration, not here: the test takes a free port.
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let h = spawn(
            addr,
            Source::new(control(), PortId(0), 1000),
            Arc::clone(&stop),
        )
        .unwrap();
        let ok = http(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        let body = &ok[ok.find("\r\n\r\n").unwrap() + 4..];
        let len: usize = ok
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(body.len(), len);
        lint(body).unwrap();
        assert!(body.contains("node_ipvs_backend_weight{"), "{body}");
        assert!(http(addr, b"GET /x HTTP/1.0\r\n\r\n").starts_with("HTTP/1.1 404 "));
        assert!(http(
            addr,
            b"POST /metrics HTTP/1.0\r\nContent-Length: 2\r\n\r\nab"
        )
        .starts_with("HTTP/1.1 405 "));
        assert!(http(addr, b"\x00\x01\x02\r\n\r\n").starts_with("HTTP/1.1 400 "));
        // Too long: refused once the limit is read.
        let mut big = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
        big.resize(MAX_REQUEST + 100, b'a');
        assert!(http(addr, &big).starts_with("HTTP/1.1 431 "));
        // A half request then close: 400; a connect and close: nothing, and the server goes on.
        {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
            s.shutdown(Shutdown::Write).unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            assert!(out.starts_with("HTTP/1.1 400 "), "{out}");
        }
        drop(TcpStream::connect(addr).unwrap());
        assert!(http(addr, b"GET /metrics HTTP/1.0\r\n\r\n").starts_with("HTTP/1.1 200 "));
        stop.store(true, Ordering::Relaxed);
        let t = Instant::now();
        h.join().unwrap();
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        // The port is free again once the thread ended.
        TcpListener::bind(addr).unwrap();
    }

    #[test]
    fn a_silent_client_is_cut_off() {
        let stop = Arc::new(AtomicBool::new(false));
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let h = spawn(
            addr,
            Source::new(control(), PortId(0), 1000),
            Arc::clone(&stop),
        )
        .unwrap();
        let t = Instant::now();
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /metr").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 408 "), "{out}");
        let took = t.elapsed();
        assert!(
            took >= READ_TIMEOUT && took < REQUEST_DEADLINE + Duration::from_secs(1),
            "{took:?}"
        );
        stop.store(true, Ordering::Relaxed);
        h.join().unwrap();
    }
}
