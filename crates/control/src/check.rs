//! Health checks as an operator configures them: keepalived's checkers (`TCP_CHECK`,
//! `HTTP_GET`, `SSL_GET`, `UDP_CHECK`, `PING_CHECK`, `MISC_CHECK`) with keepalived's names and
//! defaults. These are plain descriptions: the keepalived.conf reader and the control socket
//! produce them, the daemon's checker runs them, the health state machine
//! ([`crate::health`]) turns their results into up and down.
//!
//! Times are kept in milliseconds (keepalived accepts fractions of a second for its timers).
//! On the control socket they are the `_ms` fields below.

use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// keepalived's `connect_timeout` default (5 s).
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 5_000;
/// keepalived's `delay_loop` default (60 s).
pub const DEFAULT_DELAY_LOOP_MS: u64 = 60_000;
/// keepalived's `delay_before_retry` default (1 s).
pub const DEFAULT_DELAY_BEFORE_RETRY_MS: u64 = 1_000;
/// keepalived's `retry` default (1: one retry after a first failure, down on the second).
pub const DEFAULT_RETRY: u32 = 1;
/// Successes before a down server is up again (keepalived: 1).
pub const DEFAULT_RISE: u32 = 1;
/// `MISC_CHECK` without `misc_timeout`: the script is killed after `delay_loop` (keepalived).
pub const DEFAULT_MISC_TIMEOUT_MS: u64 = DEFAULT_DELAY_LOOP_MS;
/// Longest body an `HTTP_GET`/`SSL_GET` reads (and digests); the rest is not read.
pub const MAX_HTTP_BODY: usize = 1 << 20;
/// Longest `UDP_CHECK` payload or expected reply.
pub const MAX_UDP_PAYLOAD: usize = 1_472;

/// One check of one real server.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
/// (Unknown fields are refused by the socket's own field lists: serde cannot refuse them
/// through `flatten`.)
pub struct CheckSpec {
    #[serde(flatten)]
    pub kind: CheckKind,
    #[serde(flatten)]
    pub params: CheckParams,
}

/// What is checked (keepalived's checker blocks). On the socket: `"type": "TCP_CHECK"` etc.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum CheckKind {
    /// A TCP connect to `connect_ip:connect_port` completes within `connect_timeout`.
    #[serde(rename = "TCP_CHECK")]
    Tcp,
    /// An HTTP/1.0 GET of each `url`: the status is in the url's `status_code` list (default
    /// 2xx) and, with `digest`, the MD5 of the body (lower-case hex) matches.
    #[serde(rename = "HTTP_GET")]
    Http(HttpCheck),
    /// [`CheckKind::Http`] over TLS (certificates are not verified, as keepalived).
    #[serde(rename = "SSL_GET")]
    Ssl(HttpCheck),
    /// A UDP datagram with `payload` (empty if none) is sent; the check fails on an ICMP
    /// unreachable, and with `require_reply` also if no reply (or, with bytes, a different
    /// reply) arrives within `connect_timeout`.
    #[serde(rename = "UDP_CHECK")]
    Udp(UdpCheck),
    /// An ICMP echo request is answered within `connect_timeout`.
    #[serde(rename = "PING_CHECK")]
    Ping,
    /// A script run with `misc_timeout`: exit 0 = up, anything else down; with
    /// `misc_dynamic`: 0 up, 1 down, 2..=255 up with weight `code - 2`.
    #[serde(rename = "MISC_CHECK")]
    Misc(MiscCheck),
}

impl CheckKind {
    /// keepalived's name for the checker.
    pub fn name(&self) -> &'static str {
        match self {
            CheckKind::Tcp => "TCP_CHECK",
            CheckKind::Http(_) => "HTTP_GET",
            CheckKind::Ssl(_) => "SSL_GET",
            CheckKind::Udp(_) => "UDP_CHECK",
            CheckKind::Ping => "PING_CHECK",
            CheckKind::Misc(_) => "MISC_CHECK",
        }
    }
}

/// `HTTP_GET` / `SSL_GET`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct HttpCheck {
    /// At least one; every url must pass.
    pub urls: Vec<UrlCheck>,
    /// The `Host:` header (default: the address checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtualhost: Option<String>,
}

/// One `url { path ... }` block.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct UrlCheck {
    pub path: String,
    /// MD5 of the body, 32 lower-case hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Accepted status codes as inclusive ranges; empty = 200..=299 (keepalived's default).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub status_code: Vec<(u16, u16)>,
    /// `virtualhost` of this url only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtualhost: Option<String>,
}

impl UrlCheck {
    /// Whether `status` passes (keepalived: any 2xx when no `status_code` is given).
    pub fn status_ok(&self, status: u16) -> bool {
        if self.status_code.is_empty() {
            (200..=299).contains(&status)
        } else {
            self.status_code
                .iter()
                .any(|&(lo, hi)| (lo..=hi).contains(&status))
        }
    }
}

/// `UDP_CHECK`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct UdpCheck {
    /// Bytes sent (keepalived's `payload`, hex in its file); empty = an empty datagram.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub payload: Vec<u8>,
    /// `None`: no reply needed (only an ICMP error fails the check). `Some(empty)`: any reply.
    /// `Some(bytes)`: the reply must start with these bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_reply: Option<Vec<u8>>,
}

/// `MISC_CHECK`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct MiscCheck {
    /// `misc_path`: the command line (run without a shell, split on blanks, quotes kept
    /// together as keepalived does).
    pub path: String,
    /// `misc_timeout` (ms): the script is killed after this; `None` = `delay_loop`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// `misc_dynamic`.
    #[serde(default)]
    pub dynamic: bool,
}

/// What every checker has (keepalived's common checker options, and the timers it takes from
/// the real server or virtual server block).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct CheckParams {
    /// Address probed instead of the real server's (`connect_ip`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_ip: Option<Ipv4Addr>,
    /// Port probed instead of the real server's (`connect_port`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_port: Option<u16>,
    /// Source address of the probes (`bindto`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bindto: Option<Ipv4Addr>,
    /// Source port of the probes (`bind_port`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind_port: Option<u16>,
    pub connect_timeout_ms: u64,
    /// Time between checks of a server that answers (`delay_loop`).
    pub delay_loop_ms: u64,
    /// Failed checks retried before the server is down (`retry`): down on the `retry + 1`th
    /// failure in a row.
    pub retry: u32,
    /// Time between a failure and its retry (`delay_before_retry`).
    pub delay_before_retry_ms: u64,
    /// The first check starts after a random delay up to this (`warmup`); `None`: up to
    /// `delay_loop`, as keepalived.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmup_ms: Option<u64>,
    /// Successful checks in a row before a down server is up.
    pub rise: u32,
    /// Start down, up after the first `rise` successes (`alpha`).
    pub alpha: bool,
}

impl Default for CheckParams {
    fn default() -> Self {
        CheckParams {
            connect_ip: None,
            connect_port: None,
            bindto: None,
            bind_port: None,
            connect_timeout_ms: DEFAULT_CONNECT_TIMEOUT_MS,
            delay_loop_ms: DEFAULT_DELAY_LOOP_MS,
            retry: DEFAULT_RETRY,
            delay_before_retry_ms: DEFAULT_DELAY_BEFORE_RETRY_MS,
            warmup_ms: None,
            rise: DEFAULT_RISE,
            alpha: false,
        }
    }
}

/// What one probe of a real server checks: the check and the server's address and port. Two
/// services with the same real server and the same check share one probe (and its result).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProbeKey {
    pub check: CheckSpec,
    pub addr: Ipv4Addr,
    pub port: u16,
}

impl ProbeKey {
    /// Where the probe goes: `connect_ip`/`connect_port` if set, else the real server's.
    pub fn target(&self) -> (Ipv4Addr, u16) {
        (
            self.check.params.connect_ip.unwrap_or(self.addr),
            self.check.params.connect_port.unwrap_or(self.port),
        )
    }
}

/// A check refused: the field and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct CheckError {
    pub field: &'static str,
    pub reason: String,
}

fn bad(field: &'static str, reason: impl Into<String>) -> CheckError {
    CheckError {
        field,
        reason: reason.into(),
    }
}

impl CheckSpec {
    /// Check the values a reader or the socket produced: every timer positive and below a
    /// day, a known digest form, urls present, bounded payloads.
    pub fn validate(&self) -> Result<(), CheckError> {
        const DAY_MS: u64 = 86_400_000;
        let p = &self.params;
        for (field, v) in [
            ("connect_timeout_ms", p.connect_timeout_ms),
            ("delay_loop_ms", p.delay_loop_ms),
        ] {
            if v == 0 || v > DAY_MS {
                return Err(bad(field, format!("{v} is not in 1..={DAY_MS}")));
            }
        }
        if p.delay_before_retry_ms > DAY_MS {
            return Err(bad("delay_before_retry_ms", "longer than a day"));
        }
        if p.warmup_ms.is_some_and(|w| w > DAY_MS) {
            return Err(bad("warmup_ms", "longer than a day"));
        }
        if p.rise == 0 {
            return Err(bad("rise", "must be at least 1"));
        }
        if p.retry > 1_000 {
            return Err(bad("retry", "more than 1000"));
        }
        if p.connect_port == Some(0) {
            return Err(bad("connect_port", "0 is not a port"));
        }
        match &self.kind {
            CheckKind::Http(h) | CheckKind::Ssl(h) => {
                if h.urls.is_empty() {
                    return Err(bad("urls", "an HTTP check needs at least one url"));
                }
                for u in &h.urls {
                    if !u.path.starts_with('/') || u.path.bytes().any(|b| b <= b' ' || b == 0x7f) {
                        return Err(bad(
                            "path",
                            format!("{:?} is not an absolute path without blanks", u.path),
                        ));
                    }
                    if let Some(d) = &u.digest {
                        if d.len() != 32 || !d.bytes().all(|b| b.is_ascii_hexdigit()) {
                            return Err(bad("digest", format!("{d:?} is not 32 hex digits")));
                        }
                    }
                    for &(lo, hi) in &u.status_code {
                        if !(100..=599).contains(&lo) || !(100..=599).contains(&hi) || lo > hi {
                            return Err(bad(
                                "status_code",
                                format!("{lo}-{hi} is not a range of HTTP status codes"),
                            ));
                        }
                    }
                    for v in [&h.virtualhost, &u.virtualhost].into_iter().flatten() {
                        if v.is_empty() || v.bytes().any(|b| b <= b' ' || b == 0x7f) {
                            return Err(bad("virtualhost", format!("{v:?} is not a host name")));
                        }
                    }
                }
            }
            CheckKind::Udp(u) => {
                if u.payload.len() > MAX_UDP_PAYLOAD {
                    return Err(bad(
                        "payload",
                        format!("longer than {MAX_UDP_PAYLOAD} bytes"),
                    ));
                }
                if u.require_reply
                    .as_ref()
                    .is_some_and(|r| r.len() > MAX_UDP_PAYLOAD)
                {
                    return Err(bad(
                        "require_reply",
                        format!("longer than {MAX_UDP_PAYLOAD} bytes"),
                    ));
                }
            }
            CheckKind::Misc(m) => {
                if m.path.trim().is_empty() {
                    return Err(bad("path", "MISC_CHECK needs misc_path"));
                }
                if m.timeout_ms.is_some_and(|t| t == 0 || t > DAY_MS) {
                    return Err(bad("timeout_ms", "not in 1 ms..1 day"));
                }
            }
            CheckKind::Tcp | CheckKind::Ping => {}
        }
        Ok(())
    }
}

/// The health settings of a real server in a service: its checks (all must pass for it to be
/// up; none = always up) and what down means.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerHealth {
    pub checks: Vec<CheckSpec>,
    /// Down keeps the server listed with weight 0 instead of taking it out
    /// (`inhibit_on_failure`).
    pub inhibit_on_failure: bool,
}

/// keepalived's `quorum` default.
pub const DEFAULT_QUORUM: u32 = 1;

/// The health settings of a service: what happens when too few of its real servers are up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceHealth {
    /// Used while the quorum is lost (`sorry_server`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sorry_server: Option<rvs_dataplane::model::ServerSpec>,
    /// The quorum is met while the weights of the servers that are up add up to at least
    /// `quorum` (keepalived: lost below `quorum - hysteresis`, regained at
    /// `quorum + hysteresis`).
    pub quorum: u32,
    pub hysteresis: u32,
    /// Commands run when the quorum is regained / lost (`quorum_up` / `quorum_down`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quorum_up: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quorum_down: Option<String>,
}

impl Default for ServiceHealth {
    fn default() -> Self {
        ServiceHealth {
            sorry_server: None,
            quorum: DEFAULT_QUORUM,
            hysteresis: 0,
            quorum_up: None,
            quorum_down: None,
        }
    }
}

/// What a probe says now, as the health state machine keeps it (the checker reports it after
/// every probe; the control plane applies it to every server the probe stands for).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeStatus {
    pub up: bool,
    /// `MISC_CHECK` with `misc_dynamic`: the weight the script set (`None`: the configured).
    pub weight: Option<u32>,
    /// When `up` last changed (or the probe started), Unix time in ms.
    pub since_unix_ms: u64,
    /// When the last probe finished, Unix time in ms (`None`: not run yet).
    pub last_check_unix_ms: Option<u64>,
    /// Why the last failed probe failed (kept after successes, for `list`).
    pub last_error: Option<String>,
    /// Why `up` last changed ("connect: connection refused", "3 failures", "rise 2 reached").
    pub reason: String,
}

/// A quorum script to run (the control plane decides, the checker runs it off the lock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumAction {
    pub service: rvs_dataplane::model::ServiceKey,
    /// `true`: the quorum was regained (`quorum_up`); `false`: lost (`quorum_down`).
    pub up: bool,
    pub command: String,
}

/// The checker's view of the control plane: which probes to run, and where their results go.
/// The control plane ([`crate::server::Control`]) implements it; tests use fakes.
pub trait HealthSink: Send + Sync {
    /// Changes whenever the set of probes changes (a check, server or service added,
    /// changed or deleted).
    fn probes_generation(&self) -> u64;
    /// Every probe to run, each once however many services use it.
    fn probes(&self) -> Vec<ProbeKey>;
    /// The status of `key` after a probe. Returns the quorum scripts to run now.
    fn report(&self, key: &ProbeKey, status: &ProbeStatus) -> Vec<QuorumAction>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(digest: Option<&str>, codes: Vec<(u16, u16)>) -> CheckSpec {
        CheckSpec {
            kind: CheckKind::Http(HttpCheck {
                urls: vec![UrlCheck {
                    path: "/".into(),
                    digest: digest.map(str::to_string),
                    status_code: codes,
                    virtualhost: None,
                }],
                virtualhost: None,
            }),
            params: CheckParams::default(),
        }
    }

    #[test]
    fn json_shape_round_trips_with_keepalived_names() {
        let c = http(Some("9b3a0c85a887a256d6939da88aabd8cd"), vec![(200, 200)]);
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["type"], "HTTP_GET");
        assert_eq!(v["connect_timeout_ms"], 5000);
        assert_eq!(v["urls"][0]["path"], "/");
        let back: CheckSpec = serde_json::from_value(v).unwrap();
        assert_eq!(back, c);
        let tcp: CheckSpec =
            serde_json::from_str(r#"{"type":"TCP_CHECK","connect_timeout_ms":1000}"#).unwrap();
        assert_eq!(tcp.kind, CheckKind::Tcp);
        assert_eq!(tcp.params.connect_timeout_ms, 1000);
        assert_eq!(tcp.params.delay_loop_ms, DEFAULT_DELAY_LOOP_MS);
    }

    #[test]
    fn status_codes_default_to_2xx() {
        let u = UrlCheck::default();
        assert!(u.status_ok(200) && u.status_ok(299));
        assert!(!u.status_ok(301) && !u.status_ok(199));
        let u = UrlCheck {
            status_code: vec![(200, 200), (301, 302)],
            ..UrlCheck::default()
        };
        assert!(u.status_ok(302) && !u.status_ok(204));
    }

    #[test]
    fn bad_checks_are_refused_with_the_field() {
        let mut zero = CheckSpec {
            kind: CheckKind::Tcp,
            params: CheckParams::default(),
        };
        zero.params.connect_timeout_ms = 0;
        let cases: Vec<(CheckSpec, &str)> = vec![
            (zero, "connect_timeout_ms"),
            (http(Some("xyz"), vec![]), "digest"),
            (http(None, vec![(600, 700)]), "status_code"),
            (http(None, vec![(300, 200)]), "status_code"),
            (
                CheckSpec {
                    kind: CheckKind::Http(HttpCheck::default()),
                    params: CheckParams::default(),
                },
                "urls",
            ),
            (
                CheckSpec {
                    kind: CheckKind::Misc(MiscCheck::default()),
                    params: CheckParams::default(),
                },
                "path",
            ),
            (
                CheckSpec {
                    kind: CheckKind::Udp(UdpCheck {
                        payload: vec![0; MAX_UDP_PAYLOAD + 1],
                        require_reply: None,
                    }),
                    params: CheckParams::default(),
                },
                "payload",
            ),
        ];
        for (c, field) in cases {
            assert_eq!(c.validate().unwrap_err().field, field, "{c:?}");
        }
        assert!(http(Some("9b3a0c85a887a256d6939da88aabd8cd"), vec![])
            .validate()
            .is_ok());
    }

    #[test]
    fn probe_target_prefers_connect_ip_and_port() {
        let mut c = http(None, vec![]);
        let k = ProbeKey {
            check: c.clone(),
            addr: Ipv4Addr::new(198, 18, 0, 11),
            port: 80,
        };
        assert_eq!(k.target(), (Ipv4Addr::new(198, 18, 0, 11), 80));
        c.params.connect_port = Some(8080);
        c.params.connect_ip = Some(Ipv4Addr::new(198, 18, 0, 99));
        let k = ProbeKey { check: c, ..k };
        assert_eq!(k.target(), (Ipv4Addr::new(198, 18, 0, 99), 8080));
    }
}
