//! Directives into services, real servers and checks, with keepalived's semantics: the virtual
//! server's timers and `inhibit_on_failure`/`alpha`/`virtualhost` are its real servers'
//! defaults, a real server's are its checkers' defaults; keepalived's defaults where nothing is
//! said (scheduler wlc, protocol UDP, forwarding NAT, delay_loop 60 s, connect_timeout 5 s,
//! retry 1 (MISC_CHECK 0), delay_before_retry 1 s (HTTP_GET/SSL_GET 3 s), weight 1, quorum 1).

use super::lexer::Token;
use super::tree::Stmt;
use super::{Config, Diagnostic, LoadError, RealServerConf, VirtualServer};
use crate::check::{
    CheckKind, CheckParams, CheckSpec, HttpCheck, MiscCheck, ServerHealth, ServiceHealth, UdpCheck,
    UrlCheck, DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_DELAY_BEFORE_RETRY_MS, DEFAULT_DELAY_LOOP_MS,
    DEFAULT_QUORUM, DEFAULT_RETRY, DEFAULT_RISE,
};
use rvs_dataplane::model::{
    Forward, Model, Protocol, SchedulerKind, ServerSpec, ServiceKey, ServiceSpec, MAX_WEIGHT,
};
use std::collections::HashMap;
use std::net::Ipv4Addr;

/// keepalived's persistence timeout when `persistence_timeout` has no value (6 minutes).
pub(crate) const DEFAULT_PERSISTENCE_S: u32 = 360;
/// keepalived's longest persistence timeout (31 days).
const MAX_PERSISTENCE_S: u32 = 86_400 * 31;
/// keepalived's delay before retry for HTTP_GET and SSL_GET.
const HTTP_DELAY_BEFORE_RETRY_MS: u64 = 3_000;
/// Most addresses one `virtual_server_group` range expands to.
pub(crate) const MAX_RANGE: u32 = 1_024;
/// Most services in all.
pub(crate) const MAX_SERVICES: usize = 65_536;
/// Longest timer read (seconds), beyond any check's limits: checked again by `validate`.
const MAX_TIMER_S: u64 = 1 << 32;

/// The top-level blocks of keepalived rvs does not read, reported whole.
const TOP_UNSUPPORTED: [&str; 17] = [
    "global_defs",
    "SSL",
    "bfd_instance",
    "child_wait_time",
    "instance",
    "interface_up_down_delays",
    "linkbeat_interfaces",
    "linkbeat_use_polling",
    "namespace_with_ipsets",
    "net_namespace",
    "net_namespace_ipvs",
    "static_ipaddress",
    "static_routes",
    "static_rules",
    "track_file",
    "track_group",
    "use_pid_dir",
];
/// The VRRP blocks (the HA issue).
const TOP_VRRP: [&str; 1] = ["garp_group"];
const VRRP_MESSAGE: &str = "not supported yet (VRRP is a later issue)";

struct Cx<'a> {
    files: &'a [String],
    notes: Vec<Diagnostic>,
}

impl Cx<'_> {
    fn file(&self, t: &Token) -> String {
        self.files.get(t.file as usize).cloned().unwrap_or_default()
    }
    fn err(&self, t: &Token, message: impl Into<String>) -> LoadError {
        LoadError {
            file: self.file(t),
            line: t.line,
            message: message.into(),
        }
    }
    fn note(&mut self, t: &Token, directive: &str, message: impl Into<String>) {
        let d = Diagnostic {
            file: self.file(t),
            line: t.line,
            directive: directive.to_string(),
            message: message.into(),
        };
        self.notes.push(d);
    }
    /// Report a whole directive (with its block) as not read.
    fn skip(&mut self, s: &Stmt, message: &str) {
        let m = if s.block.is_some() {
            format!("{message} (the whole block is not read)")
        } else {
            message.to_string()
        };
        self.note(&s.kw, s.name(), m);
    }

    // ---- values ----

    fn bad(&self, s: &Stmt, t: &Token, what: &str) -> LoadError {
        let hint = if t.text.starts_with('$') {
            " (parameter substitution is not supported)"
        } else {
            ""
        };
        self.err(t, format!("{}: '{}' is not {what}{hint}", s.name(), t.text))
    }
    fn no_block(&self, s: &Stmt) -> Result<(), LoadError> {
        if s.block.is_some() {
            return Err(self.err(&s.kw, format!("{} does not take a block", s.name())));
        }
        Ok(())
    }
    fn no_args(&self, s: &Stmt) -> Result<(), LoadError> {
        self.no_block(s)?;
        if let Some(a) = s.args.first() {
            return Err(self.err(a, format!("{} takes no value, got '{}'", s.name(), a.text)));
        }
        Ok(())
    }
    /// Exactly one value.
    fn one<'s>(&self, s: &'s Stmt) -> Result<&'s Token, LoadError> {
        self.no_block(s)?;
        match s.args.as_slice() {
            [a] => Ok(a),
            [] => Err(self.err(&s.kw, format!("{} needs a value", s.name()))),
            [_, extra, ..] => Err(self.err(
                extra,
                format!("{} takes one value, got also '{}'", s.name(), extra.text),
            )),
        }
    }
    fn uint(&self, s: &Stmt, t: &Token, min: u32, max: u32) -> Result<u32, LoadError> {
        let v: u64 = t
            .text
            .parse()
            .ok()
            .filter(|_| t.text.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| self.bad(s, t, "a number"))?;
        if v < u64::from(min) || v > u64::from(max) {
            return Err(self.err(
                t,
                format!("{}: {} is not in {min}..={max}", s.name(), t.text),
            ));
        }
        Ok(v as u32)
    }
    fn uint_arg(&self, s: &Stmt, min: u32, max: u32) -> Result<u32, LoadError> {
        let t = self.one(s)?;
        self.uint(s, t, min, max)
    }
    /// keepalived's `<TIMER>`: seconds with up to 6 decimals, as milliseconds (rounded up).
    fn timer(&self, s: &Stmt, t: &Token, min_ms: u64) -> Result<u64, LoadError> {
        let (int, frac) = t.text.split_once('.').unwrap_or((&t.text, ""));
        let digits = |x: &str| x.bytes().all(|b| b.is_ascii_digit());
        if int.is_empty() && frac.is_empty()
            || !digits(int)
            || !digits(frac)
            || frac.len() > 6
            || int.len() > 12
        {
            return Err(self.bad(s, t, "a time in seconds (e.g. 3 or 0.5)"));
        }
        let secs: u64 = if int.is_empty() {
            0
        } else {
            int.parse().unwrap_or(u64::MAX)
        };
        if secs > MAX_TIMER_S {
            return Err(self.err(t, format!("{}: {} s is too long", s.name(), t.text)));
        }
        let mut us: u64 = 0;
        for b in frac.bytes().chain(std::iter::repeat(b'0')).take(6) {
            us = us * 10 + u64::from(b - b'0');
        }
        let ms = secs * 1000 + us.div_ceil(1000);
        if ms < min_ms {
            return Err(self.err(
                t,
                format!("{}: {} s is shorter than {min_ms} ms", s.name(), t.text),
            ));
        }
        Ok(ms)
    }
    fn timer_arg(&self, s: &Stmt, min_ms: u64) -> Result<u64, LoadError> {
        let t = self.one(s)?;
        self.timer(s, t, min_ms)
    }
    /// keepalived's `<BOOL>`, or `true` without a value.
    fn opt_bool(&self, s: &Stmt) -> Result<bool, LoadError> {
        self.no_block(s)?;
        match s.args.as_slice() {
            [] => Ok(true),
            [a] => match a.text.to_ascii_lowercase().as_str() {
                "on" | "true" | "yes" => Ok(true),
                "off" | "false" | "no" => Ok(false),
                _ => Err(self.bad(s, a, "on|off|true|false|yes|no")),
            },
            [_, extra, ..] => Err(self.err(
                extra,
                format!("{} takes one value, got also '{}'", s.name(), extra.text),
            )),
        }
    }
    fn addr(&self, s: &Stmt, t: &Token) -> Result<Addr, LoadError> {
        if let Ok(a) = t.text.parse::<Ipv4Addr>() {
            return Ok(Addr::V4(a));
        }
        if t.text.parse::<std::net::Ipv6Addr>().is_ok() {
            return Ok(Addr::V6);
        }
        Err(self.bad(s, t, "an IPv4 address"))
    }
    fn ipv4(&self, s: &Stmt, t: &Token) -> Result<Ipv4Addr, LoadError> {
        t.text
            .parse::<Ipv4Addr>()
            .map_err(|_| self.bad(s, t, "an IPv4 address"))
    }
    fn port(&self, s: &Stmt, t: &Token, min: u16) -> Result<u16, LoadError> {
        Ok(self.uint(s, t, u32::from(min), 65_535)? as u16)
    }
    /// A string value: the words joined by blanks (a quoted string is one word).
    fn text(&self, s: &Stmt) -> Result<String, LoadError> {
        self.no_block(s)?;
        if s.args.is_empty() {
            return Err(self.err(&s.kw, format!("{} needs a value", s.name())));
        }
        Ok(s.args
            .iter()
            .map(|a| a.text.as_str())
            .collect::<Vec<_>>()
            .join(" "))
    }
    fn block<'s>(&self, s: &'s Stmt) -> Result<&'s [Stmt], LoadError> {
        s.block
            .as_deref()
            .ok_or_else(|| self.err(&s.kw, format!("{} needs a {{ ... }} block", s.name())))
    }
    fn unknown(&self, s: &Stmt, within: &str) -> LoadError {
        self.err(&s.kw, format!("unknown keyword '{}' in {within}", s.name()))
    }
}

#[derive(Clone, Copy)]
enum Addr {
    V4(Ipv4Addr),
    V6,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Method {
    Dr,
    Nat,
    Tun,
}

/// Timers and counts set at one level (virtual server, real server or checker).
#[derive(Default, Clone)]
struct Timers {
    retry: Option<u32>,
    delay_before_retry: Option<u64>,
    warmup: Option<u64>,
    connect_timeout: Option<u64>,
    delay_loop: Option<u64>,
    alpha: Option<bool>,
}

impl Timers {
    /// `self` where set, else `outer`.
    fn or(&self, outer: &Timers) -> Timers {
        Timers {
            retry: self.retry.or(outer.retry),
            delay_before_retry: self.delay_before_retry.or(outer.delay_before_retry),
            warmup: self.warmup.or(outer.warmup),
            connect_timeout: self.connect_timeout.or(outer.connect_timeout),
            delay_loop: self.delay_loop.or(outer.delay_loop),
            alpha: self.alpha.or(outer.alpha),
        }
    }
}

struct CheckDraft {
    tok: Token,
    kind: CheckKind,
    timers: Timers,
    rise: Option<u32>,
    connect_ip: Option<Ipv4Addr>,
    connect_port: Option<u16>,
    bindto: Option<Ipv4Addr>,
    bind_port: Option<u16>,
}

struct RsDraft {
    tok: Token,
    addr: Ipv4Addr,
    port: Option<u16>,
    weight: Option<u32>,
    method: Option<(Method, Token)>,
    upper: u32,
    lower: u32,
    inhibit: Option<bool>,
    timers: Timers,
    vhost: Option<String>,
    checks: Vec<CheckDraft>,
}

#[derive(Default)]
struct VsDraft {
    sched: Option<SchedulerKind>,
    flags: Vec<(String, Token)>,
    method: Option<(Method, Token)>,
    persistence: Option<u32>,
    netmask: Option<Ipv4Addr>,
    proto: Option<Protocol>,
    vhost: Option<String>,
    quorum: Option<(u32, Token)>,
    hysteresis: u32,
    quorum_up: Option<String>,
    quorum_down: Option<String>,
    weight: Option<u32>,
    inhibit: Option<bool>,
    timers: Timers,
    sorry: Option<(Addr, Option<u16>, Token)>,
    sorry_method: Option<(Method, Token)>,
    servers: Vec<RsDraft>,
    /// Why the whole virtual server is not read (each reported).
    skip: Vec<(Token, String, String)>,
}

/// One address (and port) a `virtual_server_group` stands for.
#[derive(Clone, Copy)]
struct GroupEntry {
    vip: Ipv4Addr,
    port: u16,
}

struct Group {
    tok: Token,
    entries: Vec<GroupEntry>,
}

pub(crate) fn map(stmts: &[Stmt], files: &[String]) -> Result<Config, LoadError> {
    let mut cx = Cx {
        files,
        notes: Vec::new(),
    };
    // Groups first: a virtual_server may name a group defined after it (keepalived resolves
    // them once everything is read).
    let mut groups: HashMap<String, Group> = HashMap::new();
    for s in stmts {
        if s.name() == "virtual_server_group" {
            let g = read_group(&mut cx, s)?;
            let name = cx.one_name(s)?;
            if let Some(old) = groups.get(&name) {
                return Err(cx.err(
                    &s.kw,
                    format!(
                        "virtual_server_group {name} is already defined at {}:{}",
                        cx.file(&old.tok),
                        old.tok.line
                    ),
                ));
            }
            groups.insert(name, g);
        }
    }
    let mut services: Vec<VirtualServer> = Vec::new();
    let mut seen: HashMap<ServiceKey, (String, u32)> = HashMap::new();
    for s in stmts {
        let name = s.name();
        match name {
            "virtual_server_group" => {}
            "virtual_server" => {
                for vs in read_virtual_server(&mut cx, s, &groups)? {
                    if let Some((f, l)) = seen.get(&vs.spec.key) {
                        return Err(cx.err(
                            &s.kw,
                            format!("service {} is already defined at {f}:{l}", vs.spec.key),
                        ));
                    }
                    if services.len() >= MAX_SERVICES {
                        return Err(cx.err(&s.kw, format!("more than {MAX_SERVICES} services")));
                    }
                    seen.insert(vs.spec.key, (vs.file.clone(), vs.line));
                    services.push(vs);
                }
            }
            _ if name.starts_with('@') => cx.skip(
                s,
                "conditional configuration (@id lines) is not supported; the line is not read",
            ),
            _ if name.starts_with('$') => cx.skip(
                s,
                "parameter definitions ($NAME=...) are not supported; the line is not read",
            ),
            _ if name.starts_with('~') => cx.skip(s, "sequence blocks (~SEQ) are not supported"),
            _ if name.starts_with("vrrp_") || TOP_VRRP.contains(&name) => cx.skip(s, VRRP_MESSAGE),
            _ if TOP_UNSUPPORTED.contains(&name) => {
                cx.skip(s, "not read by rvs (only the LVS configuration is)")
            }
            _ => return Err(cx.unknown(s, "the configuration")),
        }
    }
    Ok(Config {
        services,
        unsupported: cx.notes,
    })
}

impl Cx<'_> {
    fn one_name(&self, s: &Stmt) -> Result<String, LoadError> {
        match s.args.as_slice() {
            [n] => Ok(n.text.clone()),
            [] => Err(self.err(&s.kw, format!("{} needs a name", s.name()))),
            [_, extra, ..] => Err(self.err(
                extra,
                format!("{} takes one name, got also '{}'", s.name(), extra.text),
            )),
        }
    }
}

fn read_group(cx: &mut Cx<'_>, s: &Stmt) -> Result<Group, LoadError> {
    cx.one_name(s)?;
    let mut entries = Vec::new();
    for e in cx.block(s)? {
        cx.no_block(e)?;
        if e.name() == "fwmark" {
            cx.note(
                &e.kw,
                "fwmark",
                "firewall-mark services are not supported; this entry of the group is not read",
            );
            continue;
        }
        let port = match e.args.as_slice() {
            [] => 0,
            [p] => cx.port(e, p, 0)?,
            [_, extra, ..] => {
                return Err(cx.err(
                    extra,
                    format!("group entry {}: unexpected '{}'", e.name(), extra.text),
                ))
            }
        };
        match range(cx, e)? {
            None => cx.note(
                &e.kw,
                e.name(),
                "IPv6 is not supported; this entry of the group is not read",
            ),
            Some((lo, hi)) => {
                for a in lo..=hi {
                    entries.push(GroupEntry {
                        vip: Ipv4Addr::from(a),
                        port,
                    });
                }
            }
        }
    }
    Ok(Group {
        tok: s.kw.clone(),
        entries,
    })
}

/// A group entry's addresses: `A`, `A-N` (last byte up to N), `A-B` (two addresses), `A/len`.
/// `None` for IPv6.
fn range(cx: &Cx<'_>, e: &Stmt) -> Result<Option<(u32, u32)>, LoadError> {
    let t = &e.kw;
    let text = t.text.as_str();
    if text.contains(':') {
        return Ok(None);
    }
    let what = "an IPv4 address, range (A-N, A-B) or prefix (A/len)";
    let bad = || cx.err(t, format!("'{text}' is not {what}"));
    let (lo, hi) = if let Some((a, n)) = text.split_once('-') {
        let a: Ipv4Addr = a.parse().map_err(|_| bad())?;
        let lo = u32::from(a);
        let hi = if n.contains('.') {
            u32::from(n.parse::<Ipv4Addr>().map_err(|_| bad())?)
        } else {
            let last: u8 = n.parse().map_err(|_| bad())?;
            (lo & !0xff) | u32::from(last)
        };
        (lo, hi)
    } else if let Some((a, len)) = text.split_once('/') {
        let a: Ipv4Addr = a.parse().map_err(|_| bad())?;
        let len: u32 = len.parse().ok().filter(|l| *l <= 32).ok_or_else(bad)?;
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
        (u32::from(a) & mask, u32::from(a) | !mask)
    } else {
        let a: Ipv4Addr = text.parse().map_err(|_| bad())?;
        (u32::from(a), u32::from(a))
    };
    if hi < lo {
        return Err(cx.err(t, format!("range {text} ends before it starts")));
    }
    if hi - lo >= MAX_RANGE {
        return Err(cx.err(
            t,
            format!(
                "range {text} has {} addresses, more than {MAX_RANGE}",
                u64::from(hi - lo) + 1
            ),
        ));
    }
    Ok(Some((lo, hi)))
}

fn method(cx: &mut Cx<'_>, s: &Stmt) -> Result<(Method, Token), LoadError> {
    cx.no_block(s)?;
    let Some(m) = s.args.first() else {
        return Err(cx.err(&s.kw, format!("{} needs NAT, DR or TUN", s.name())));
    };
    let method = match m.text.as_str() {
        "DR" => Method::Dr,
        "NAT" => Method::Nat,
        "TUN" => Method::Tun,
        _ => return Err(cx.bad(s, m, "NAT, DR or TUN")),
    };
    if method != Method::Tun {
        if let Some(extra) = s.args.get(1) {
            return Err(cx.err(
                extra,
                format!("{} {}: unexpected '{}'", s.name(), m.text, extra.text),
            ));
        }
    }
    Ok((method, m.clone()))
}

fn method_name(m: Method) -> &'static str {
    match m {
        Method::Dr => "DR",
        Method::Nat => "NAT",
        Method::Tun => "TUN",
    }
}

/// The timers and `alpha` every level knows. `Ok(false)`: not one of them.
fn timer_directive(
    cx: &Cx<'_>,
    s: &Stmt,
    t: &mut Timers,
    retry_min: u32,
) -> Result<bool, LoadError> {
    match s.name() {
        "retry" => t.retry = Some(cx.uint_arg(s, retry_min, u32::MAX)?),
        "delay_before_retry" => t.delay_before_retry = Some(cx.timer_arg(s, 0)?),
        "warmup" => t.warmup = Some(cx.timer_arg(s, 0)?),
        "connect_timeout" => t.connect_timeout = Some(cx.timer_arg(s, 1)?),
        "delay_loop" => t.delay_loop = Some(cx.timer_arg(s, 1)?),
        "alpha" => t.alpha = Some(cx.opt_bool(s)?),
        _ => return Ok(false),
    }
    Ok(true)
}

const FLAG_WORDS: [&str; 7] = [
    "flag-1",
    "flag-2",
    "flag-3",
    "sh-port",
    "sh-fallback",
    "mh-port",
    "mh-fallback",
];

fn read_virtual_server(
    cx: &mut Cx<'_>,
    s: &Stmt,
    groups: &HashMap<String, Group>,
) -> Result<Vec<VirtualServer>, LoadError> {
    // What it stands for: one address and port, or a group.
    let mut skip_all: Option<(String, String)> = None;
    let entries: Vec<GroupEntry> = match s.args.as_slice() {
        [] => {
            return Err(cx.err(
                &s.kw,
                "virtual_server needs an address (and port), 'group NAME' or 'fwmark N'",
            ))
        }
        [g, name] if g.text == "group" => match groups.get(&name.text) {
            Some(gr) => gr.entries.clone(),
            None => {
                return Err(cx.err(
                    name,
                    format!(
                        "virtual_server group {}: no such virtual_server_group",
                        name.text
                    ),
                ))
            }
        },
        [f, n] if f.text == "fwmark" => {
            cx.uint(s, n, 0, u32::MAX)?;
            skip_all = Some((
                "fwmark".into(),
                "firewall-mark services are not supported; this virtual_server is not read".into(),
            ));
            Vec::new()
        }
        [a] | [a, _] => {
            let port = match s.args.get(1) {
                Some(p) => cx.port(s, p, 0)?,
                None => 0,
            };
            match cx.addr(s, a)? {
                Addr::V4(vip) => vec![GroupEntry { vip, port }],
                Addr::V6 => {
                    skip_all = Some((
                        "virtual_server".into(),
                        format!(
                            "IPv6 ({}) is not supported; this virtual_server is not read",
                            a.text
                        ),
                    ));
                    Vec::new()
                }
            }
        }
        [_, _, extra, ..] => {
            return Err(cx.err(
                extra,
                format!("virtual_server: unexpected '{}'", extra.text),
            ))
        }
    };
    let mut d = VsDraft::default();
    // Notes about the inside, kept only if the virtual server is read.
    let outer_notes = std::mem::take(&mut cx.notes);
    let body: &[Stmt] = s.block.as_deref().unwrap_or(&[]);
    for x in body {
        if timer_directive(cx, x, &mut d.timers, 0)? {
            continue;
        }
        match x.name() {
            "lb_algo" | "lvs_sched" => {
                let t = cx.one(x)?;
                if t.text == "twos" {
                    d.skip.push((
                        t.clone(),
                        x.name().into(),
                        "the twos scheduler is not supported; this virtual_server is not read"
                            .into(),
                    ));
                } else {
                    d.sched = Some(t.text.parse().map_err(|_| {
                        cx.bad(
                            x,
                            t,
                            "a scheduler (rr wrr lc wlc lblc lblcr dh sh sed nq mh fo ovf)",
                        )
                    })?);
                }
            }
            w if FLAG_WORDS.contains(&w) => {
                cx.no_args(x)?;
                d.flags.push((w.to_string(), x.kw.clone()));
            }
            "ops" => {
                cx.no_args(x)?;
                cx.note(
                    &x.kw,
                    "ops",
                    "one-packet scheduling is not supported; connections are scheduled as usual",
                );
            }
            "hashed" => {
                cx.no_args(x)?;
                cx.note(
                    &x.kw,
                    "hashed",
                    "deprecated in keepalived and without effect in rvs",
                );
            }
            "lb_kind" | "lvs_method" => d.method = Some(method(cx, x)?),
            "persistence_timeout" => {
                cx.no_block(x)?;
                d.persistence = Some(match x.args.as_slice() {
                    [] => DEFAULT_PERSISTENCE_S,
                    _ => cx.uint_arg(x, 1, MAX_PERSISTENCE_S)?,
                });
            }
            "persistence_granularity" => {
                let t = cx.one(x)?;
                d.netmask = Some(cx.ipv4(x, t).map_err(|_| cx.bad(x, t, "an IPv4 netmask"))?);
            }
            "persistence_engine" => {
                cx.text(x)?;
                cx.note(
                    &x.kw,
                    "persistence_engine",
                    "persistence engines (sip) are not supported",
                );
            }
            "protocol" => {
                let t = cx.one(x)?;
                match t.text.to_ascii_uppercase().as_str() {
                    "TCP" => d.proto = Some(Protocol::Tcp),
                    "UDP" => d.proto = Some(Protocol::Udp),
                    "SCTP" => d.skip.push((
                        t.clone(),
                        "protocol".into(),
                        "SCTP is not supported; this virtual_server is not read".into(),
                    )),
                    _ => return Err(cx.bad(x, t, "TCP, UDP or SCTP")),
                }
            }
            "ha_suspend" | "omega" => {
                cx.no_args(x)?;
                cx.note(
                    &x.kw,
                    x.name(),
                    "not supported (rvs does not manage the VIP's address)",
                );
            }
            "smtp_alert" => {
                cx.opt_bool(x)?;
                cx.note(&x.kw, "smtp_alert", "e-mail alerts are not supported");
            }
            "snmp_name" => {
                cx.text(x)?;
                cx.note(&x.kw, "snmp_name", "SNMP is not supported");
            }
            "ip_family" => {
                let t = cx.one(x)?;
                if t.text != "inet" {
                    d.skip.push((
                        t.clone(),
                        "ip_family".into(),
                        format!(
                            "{} is not supported; this virtual_server is not read",
                            t.text
                        ),
                    ));
                }
            }
            "virtualhost" => d.vhost = Some(cx.one(x)?.text.clone()),
            "quorum" => {
                let t = cx.one(x)?;
                d.quorum = Some((cx.uint(x, t, 1, u32::MAX)?, x.kw.clone()));
            }
            "hysteresis" => d.hysteresis = cx.uint_arg(x, 0, u32::MAX)?,
            "quorum_up" | "quorum_down" => {
                let cmd = script(cx, x)?;
                if x.name() == "quorum_up" {
                    d.quorum_up = Some(cmd);
                } else {
                    d.quorum_down = Some(cmd);
                }
            }
            "weight" => d.weight = Some(cx.uint_arg(x, 1, MAX_WEIGHT)?),
            "inhibit_on_failure" => d.inhibit = Some(cx.opt_bool(x)?),
            "sorry_server" => {
                cx.no_block(x)?;
                let (a, p) = match x.args.as_slice() {
                    [a] => (a, None),
                    [a, p] => (a, Some(cx.port(x, p, 0)?)),
                    [] => return Err(cx.err(&x.kw, "sorry_server needs an address (and port)")),
                    [_, _, extra, ..] => {
                        return Err(
                            cx.err(extra, format!("sorry_server: unexpected '{}'", extra.text))
                        )
                    }
                };
                d.sorry = Some((cx.addr(x, a)?, p, x.kw.clone()));
            }
            "sorry_server_inhibit" => {
                cx.no_args(x)?;
                cx.note(
                    &x.kw,
                    "sorry_server_inhibit",
                    "the sorry server is added and removed, never kept with weight 0",
                );
            }
            "sorry_server_lvs_method" => d.sorry_method = Some(method(cx, x)?),
            "real_server" => {
                if let Some(rs) = read_real_server(cx, x)? {
                    d.servers.push(rs);
                }
            }
            _ => return Err(cx.unknown(x, "virtual_server")),
        }
    }
    let inner_notes = std::mem::replace(&mut cx.notes, outer_notes);

    // Whole-block reasons not to read it.
    if let Some((directive, message)) = skip_all {
        cx.note(&s.kw, &directive, message);
        return Ok(Vec::new());
    }
    let vs_method = match &d.method {
        Some((m, _)) => *m,
        None => Method::Nat,
    };
    match &d.method {
        None => d.skip.push((
            s.kw.clone(),
            "virtual_server".into(),
            "no lb_kind/lvs_method: keepalived's default is NAT, which rvs does not do \
             (rvs forwards by direct routing: add 'lvs_method DR'); this virtual_server is not read"
                .into(),
        )),
        Some((m, t)) if *m != Method::Dr => d.skip.push((
            t.clone(),
            "lb_kind".into(),
            format!(
                "{} is not supported yet (rvs forwards by direct routing, DR); this virtual_server is not read",
                method_name(*m)
            ),
        )),
        _ => {}
    }
    if !d.skip.is_empty() {
        for (t, directive, message) in &d.skip {
            cx.note(t, directive, message.clone());
        }
        return Ok(Vec::new());
    }
    cx.notes.extend(inner_notes);

    let sched = d.sched.unwrap_or(SchedulerKind::Wlc);
    let mut flags = Vec::new();
    for (f, t) in &d.flags {
        let owner = if f.starts_with("sh-") {
            Some(SchedulerKind::Sh)
        } else if f.starts_with("mh-") {
            Some(SchedulerKind::Mh)
        } else {
            None
        };
        if owner.is_some_and(|o| o != sched) {
            cx.note(
                t,
                f,
                format!(
                    "applies to the {} scheduler only, not {sched}; ignored as keepalived does",
                    owner.map(SchedulerKind::name).unwrap_or("")
                ),
            );
        } else {
            flags.push(f.clone());
        }
    }
    let proto = match d.proto {
        Some(p) => p,
        None => {
            cx.note(
                &s.kw,
                "virtual_server",
                "no protocol given: UDP, keepalived's default, is used",
            );
            Protocol::Udp
        }
    };
    let mut persistence = d.persistence;
    if d.netmask.is_some() && persistence.is_none() {
        // keepalived: a granularity makes the service persistent.
        persistence = Some(DEFAULT_PERSISTENCE_S);
    }

    // Real servers, after keepalived's checks: one family, no duplicates, DR only.
    let mut servers: Vec<&RsDraft> = Vec::new();
    for rs in &d.servers {
        let m = rs.method.as_ref().map(|(m, _)| *m).unwrap_or(vs_method);
        if m != Method::Dr {
            let t = rs.method.as_ref().map(|(_, t)| t).unwrap_or(&rs.tok);
            cx.note(
                t,
                "lvs_method",
                format!(
                    "{} is not supported yet; real server {} is not read",
                    method_name(m),
                    rs.addr
                ),
            );
            continue;
        }
        if let Some(first) = servers
            .iter()
            .find(|o| o.addr == rs.addr && o.port == rs.port)
        {
            cx.note(
                &rs.tok,
                "real_server",
                format!(
                    "{} duplicates the real server at line {}; ignored as keepalived does",
                    rs.addr, first.tok.line
                ),
            );
            continue;
        }
        servers.push(rs);
    }
    let sorry_method = d
        .sorry_method
        .as_ref()
        .map(|(m, _)| *m)
        .unwrap_or(vs_method);

    let mut out = Vec::new();
    let mut noted_ports = false;
    for e in &entries {
        let persistence = match persistence {
            None if e.port == 0 => {
                cx.note(
                    &s.kw,
                    "virtual_server",
                    format!("port 0 (all ports) needs persistence: persistence_timeout {DEFAULT_PERSISTENCE_S} is used, as keepalived does"),
                );
                Some(DEFAULT_PERSISTENCE_S)
            }
            p => p,
        };
        let spec = ServiceSpec {
            key: ServiceKey {
                proto,
                vip: e.vip,
                port: e.port,
            },
            scheduler: sched,
            persistent: persistence,
            netmask: d.netmask.unwrap_or(Ipv4Addr::BROADCAST),
            flags: flags.clone(),
        };
        let mut scratch = Model::new(1, servers.len() as u32 + 1);
        scratch
            .add_service(spec.clone())
            .map_err(|m| cx.err(&s.kw, format!("virtual_server {}: {m}", spec.key)))?;
        let mut rs_out = Vec::new();
        let mut weight_sum: u64 = 0;
        for rs in &servers {
            let (port, probe_port) = dr_port(e.port, rs.port);
            if probe_port.is_some() && !noted_ports {
                cx.note(
                    &rs.tok,
                    "real_server",
                    format!(
                        "port {} differs from the service port {}: direct routing keeps the \
                         service port (checks still probe {})",
                        rs.port.unwrap_or(0),
                        e.port,
                        rs.port.unwrap_or(0)
                    ),
                );
            }
            let weight = rs.weight.or(d.weight).unwrap_or(1);
            let sspec = ServerSpec {
                addr: rs.addr,
                port,
                weight,
                forward: Forward::Dr,
                upper: rs.upper,
                lower: rs.lower,
            };
            scratch
                .add_server(&spec.key, sspec)
                .map_err(|m| cx.err(&rs.tok, format!("real_server {}: {m}", rs.addr)))?;
            weight_sum += u64::from(weight);
            let rs_timers = rs.timers.or(&d.timers);
            let vhost = rs.vhost.clone().or_else(|| d.vhost.clone());
            let mut checks = Vec::new();
            for c in &rs.checks {
                let spec = check_spec(cx, c, &rs_timers, vhost.as_deref(), probe_port)?;
                checks.push(spec);
            }
            rs_out.push(RealServerConf {
                spec: sspec,
                health: ServerHealth {
                    checks,
                    inhibit_on_failure: rs.inhibit.or(d.inhibit).unwrap_or(false),
                },
                file: cx.file(&rs.tok),
                line: rs.tok.line,
            });
        }
        noted_ports = true;
        let sorry_server = match &d.sorry {
            None => None,
            Some((Addr::V6, _, t)) => {
                cx.note(
                    t,
                    "sorry_server",
                    "IPv6 is not supported; no sorry server is used",
                );
                None
            }
            Some((Addr::V4(a), p, t)) => {
                if sorry_method != Method::Dr {
                    cx.note(
                        t,
                        "sorry_server",
                        format!(
                            "{} is not supported yet; no sorry server is used",
                            method_name(sorry_method)
                        ),
                    );
                    None
                } else {
                    let (port, _) = dr_port(e.port, *p);
                    let ss = ServerSpec {
                        addr: *a,
                        port,
                        weight: 1,
                        forward: Forward::Dr,
                        upper: 0,
                        lower: 0,
                    };
                    let mut m2 = Model::new(1, 1);
                    m2.add_service(spec.clone())
                        .and_then(|_| m2.add_server(&spec.key, ss))
                        .map_err(|m| cx.err(t, format!("sorry_server {a}: {m}")))?;
                    Some(ss)
                }
            }
        };
        // keepalived: a quorum above the real servers' total weight could never be met, and is
        // lowered to it; the hysteresis stays below the quorum.
        let mut quorum = d.quorum.as_ref().map(|q| q.0).unwrap_or(DEFAULT_QUORUM);
        let total = u32::try_from(weight_sum).unwrap_or(u32::MAX);
        if quorum > total {
            if let Some((_, t)) = &d.quorum {
                cx.note(
                    t,
                    "quorum",
                    format!("{quorum} exceeds the real servers' total weight {total}; lowered to {total} as keepalived does"),
                );
            }
            quorum = total;
        }
        let hysteresis = d.hysteresis.min(quorum.saturating_sub(1));
        out.push(VirtualServer {
            spec,
            health: ServiceHealth {
                sorry_server,
                quorum,
                hysteresis,
                quorum_up: d.quorum_up.clone(),
                quorum_down: d.quorum_down.clone(),
            },
            servers: rs_out,
            file: cx.file(&s.kw),
            line: s.kw.line,
        });
    }
    // A quorum note is the same for every address of a group: keep one.
    dedup_notes(&mut cx.notes);
    Ok(out)
}

fn dedup_notes(notes: &mut Vec<Diagnostic>) {
    let mut seen = std::collections::HashSet::new();
    notes.retain(|n| {
        seen.insert((
            n.file.clone(),
            n.line,
            n.directive.clone(),
            n.message.clone(),
        ))
    });
}

/// A real server's port under direct routing: the service's (which DR cannot change), and the
/// port its checks probe when the configuration named another one.
fn dr_port(service_port: u16, rs_port: Option<u16>) -> (u16, Option<u16>) {
    match rs_port {
        Some(p) if service_port == 0 => (p, None),
        Some(p) if p != service_port && p != 0 => (service_port, Some(p)),
        _ => (service_port, None),
    }
}

/// `quorum_up`/`quorum_down`: the command line (a quoted string, or the words). keepalived's
/// optional user and group are not supported.
fn script(cx: &mut Cx<'_>, s: &Stmt) -> Result<String, LoadError> {
    cx.no_block(s)?;
    match s.args.as_slice() {
        [] => Err(cx.err(&s.kw, format!("{} needs a command", s.name()))),
        [c] => Ok(c.text.clone()),
        [c, rest @ ..] if c.quoted => {
            cx.note(
                &rest[0],
                s.name(),
                format!(
                    "running as user {} is not supported; it runs as rvs",
                    rest[0].text
                ),
            );
            Ok(c.text.clone())
        }
        _ => cx.text(s),
    }
}

fn read_real_server(cx: &mut Cx<'_>, s: &Stmt) -> Result<Option<RsDraft>, LoadError> {
    let (a, port) = match s.args.as_slice() {
        [a] => (a, None),
        [a, p] => (a, Some(cx.port(s, p, 0)?)),
        [] => return Err(cx.err(&s.kw, "real_server needs an address (and port)")),
        [_, _, extra, ..] => {
            return Err(cx.err(extra, format!("real_server: unexpected '{}'", extra.text)))
        }
    };
    let addr = match cx.addr(s, a)? {
        Addr::V4(x) => Some(x),
        Addr::V6 => None,
    };
    let mut rs = RsDraft {
        tok: s.kw.clone(),
        addr: addr.unwrap_or(Ipv4Addr::UNSPECIFIED),
        port: port.filter(|p| *p != 0),
        weight: None,
        method: None,
        upper: 0,
        lower: 0,
        inhibit: None,
        timers: Timers::default(),
        vhost: None,
        checks: Vec::new(),
    };
    let outer = std::mem::take(&mut cx.notes);
    for x in s.block.as_deref().unwrap_or(&[]) {
        if timer_directive(cx, x, &mut rs.timers, 0)? {
            continue;
        }
        match x.name() {
            "weight" => rs.weight = Some(cx.uint_arg(x, 0, MAX_WEIGHT)?),
            "lvs_method" => rs.method = Some(method(cx, x)?),
            "uthreshold" => rs.upper = cx.uint_arg(x, 0, u32::MAX)?,
            "lthreshold" => rs.lower = cx.uint_arg(x, 0, u32::MAX)?,
            "inhibit_on_failure" => rs.inhibit = Some(cx.opt_bool(x)?),
            "notify_up" | "notify_down" => {
                cx.text(x)?;
                cx.note(
                    &x.kw,
                    x.name(),
                    "notify scripts are not supported (transitions are logged)",
                );
            }
            "smtp_alert" => {
                cx.opt_bool(x)?;
                cx.note(&x.kw, "smtp_alert", "e-mail alerts are not supported");
            }
            "snmp_name" => {
                cx.text(x)?;
                cx.note(&x.kw, "snmp_name", "SNMP is not supported");
            }
            "virtualhost" => rs.vhost = Some(cx.one(x)?.text.clone()),
            "TCP_CHECK" | "HTTP_GET" | "SSL_GET" | "UDP_CHECK" | "PING_CHECK" | "MISC_CHECK" => {
                rs.checks.push(read_check(cx, x)?)
            }
            "SMTP_CHECK" | "DNS_CHECK" | "BFD_CHECK" | "FILE_CHECK" => cx.skip(
                x,
                "this checker is not supported; the real server is not checked by it",
            ),
            _ => return Err(cx.unknown(x, "real_server")),
        }
    }
    let inner = std::mem::replace(&mut cx.notes, outer);
    if addr.is_none() {
        cx.note(
            &s.kw,
            "real_server",
            format!(
                "IPv6 ({}) is not supported; this real server is not read",
                a.text
            ),
        );
        return Ok(None);
    }
    cx.notes.extend(inner);
    Ok(Some(rs))
}

fn read_check(cx: &mut Cx<'_>, s: &Stmt) -> Result<CheckDraft, LoadError> {
    if let Some(a) = s.args.first() {
        return Err(cx.err(a, format!("{} takes no value, got '{}'", s.name(), a.text)));
    }
    let kind_name = s.name();
    let misc = kind_name == "MISC_CHECK";
    let mut c = CheckDraft {
        tok: s.kw.clone(),
        kind: CheckKind::Tcp,
        timers: Timers::default(),
        rise: None,
        connect_ip: None,
        connect_port: None,
        bindto: None,
        bind_port: None,
    };
    let mut h = HttpCheck::default();
    let mut u = UdpCheck::default();
    let mut m = MiscCheck::default();
    let mut misc_path_seen = false;
    for x in s.block.as_deref().unwrap_or(&[]) {
        // MISC_CHECK has no connection options (keepalived's), the others all have them.
        if !misc {
            match x.name() {
                "connect_ip" => {
                    c.connect_ip = Some(cx.ipv4(x, cx.one(x)?)?);
                    continue;
                }
                "connect_port" => {
                    c.connect_port = Some(cx.port(x, cx.one(x)?, 1)?);
                    continue;
                }
                "bindto" => {
                    c.bindto = Some(cx.ipv4(x, cx.one(x)?)?);
                    continue;
                }
                "bind_port" => {
                    c.bind_port = Some(cx.port(x, cx.one(x)?, 1)?);
                    continue;
                }
                "bind_if" | "fwmark" => {
                    cx.one(x)?;
                    cx.note(
                        &x.kw,
                        x.name(),
                        "not supported; probes leave through rvs's kernel interface unmarked",
                    );
                    continue;
                }
                _ => {}
            }
        }
        if misc && x.name() == "connect_timeout" {
            cx.timer_arg(x, 1)?;
            cx.note(
                &x.kw,
                "connect_timeout",
                "not an option of MISC_CHECK (keepalived ignores it too): misc_timeout limits the script",
            );
            continue;
        }
        if timer_directive(cx, x, &mut c.timers, 0)? {
            continue;
        }
        match (kind_name, x.name()) {
            (_, "rise") => c.rise = Some(cx.uint_arg(x, 1, 1_000)?),
            (_, "log_all_failures") => {
                cx.opt_bool(x)?;
                cx.note(
                    &x.kw,
                    "log_all_failures",
                    "not supported: rvs logs transitions, with their reason",
                );
            }
            ("HTTP_GET" | "SSL_GET", "nb_get_retry") => {
                c.timers.retry = Some(cx.uint_arg(x, 0, u32::MAX)?)
            }
            ("HTTP_GET" | "SSL_GET", "virtualhost") => {
                h.virtualhost = Some(cx.one(x)?.text.clone())
            }
            ("HTTP_GET" | "SSL_GET", "url") => h.urls.push(read_url(cx, x)?),
            (
                "HTTP_GET" | "SSL_GET",
                "http_protocol" | "enable_sni" | "sni_name" | "fast_recovery" | "tls_compliant",
            ) => {
                cx.no_block(x)?;
                cx.note(&x.kw, x.name(), "not supported (HTTP/1.0 requests, no SNI)");
            }
            ("UDP_CHECK", "payload") => u.payload = hex(cx, x, false)?,
            ("UDP_CHECK", "require_reply") => u.require_reply = Some(hex(cx, x, true)?),
            ("UDP_CHECK", "min_reply_length" | "max_reply_length") => {
                cx.uint_arg(x, 0, u32::MAX)?;
                cx.note(&x.kw, x.name(), "reply lengths are not checked");
            }
            ("MISC_CHECK", "misc_path") => {
                m.path = cx.text(x)?;
                misc_path_seen = true;
            }
            ("MISC_CHECK", "misc_timeout") => m.timeout_ms = Some(cx.timer_arg(x, 1)?),
            ("MISC_CHECK", "misc_dynamic") => {
                cx.no_args(x)?;
                m.dynamic = true;
            }
            ("MISC_CHECK", "user") => {
                cx.text(x)?;
                cx.note(&x.kw, "user", "not supported: the script runs as rvs");
            }
            _ => return Err(cx.unknown(x, kind_name)),
        }
    }
    c.kind = match kind_name {
        "TCP_CHECK" => CheckKind::Tcp,
        "HTTP_GET" => CheckKind::Http(h),
        "SSL_GET" => CheckKind::Ssl(h),
        "UDP_CHECK" => CheckKind::Udp(u),
        "PING_CHECK" => CheckKind::Ping,
        _ => {
            if !misc_path_seen {
                return Err(cx.err(&s.kw, "MISC_CHECK needs misc_path"));
            }
            CheckKind::Misc(m)
        }
    };
    if let CheckKind::Http(h) | CheckKind::Ssl(h) = &c.kind {
        if h.urls.is_empty() {
            return Err(cx.err(
                &s.kw,
                format!("{kind_name} needs at least one url {{ path ... }}"),
            ));
        }
    }
    Ok(c)
}

fn read_url(cx: &mut Cx<'_>, s: &Stmt) -> Result<UrlCheck, LoadError> {
    if let Some(a) = s.args.first() {
        return Err(cx.err(a, format!("url takes no value, got '{}'", a.text)));
    }
    let mut u = UrlCheck::default();
    let mut path = false;
    for x in cx.block(s)? {
        match x.name() {
            "path" => {
                u.path = cx.one(x)?.text.clone();
                path = true;
            }
            "digest" => {
                let t = cx.one(x)?;
                if u.digest.is_some() {
                    return Err(cx.err(t, "url: a second digest"));
                }
                if t.text.len() != 32 || !t.text.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(cx.bad(x, t, "an MD5 digest (32 hex digits)"));
                }
                u.digest = Some(t.text.to_ascii_lowercase());
            }
            "status_code" => {
                cx.no_block(x)?;
                if x.args.is_empty() {
                    return Err(cx.err(&x.kw, "status_code needs codes (200, 200-299 ...)"));
                }
                for t in &x.args {
                    let (lo, hi) = t.text.split_once('-').unwrap_or((&t.text, &t.text));
                    let code = |v: &str| {
                        v.parse::<u16>().ok().filter(|c| {
                            (100..=599).contains(c) && v.bytes().all(|b| b.is_ascii_digit())
                        })
                    };
                    match (code(lo), code(hi)) {
                        (Some(a), Some(b)) if a <= b => u.status_code.push((a, b)),
                        _ => return Err(cx.bad(x, t, "an HTTP status code or range (100..=599)")),
                    }
                }
            }
            "virtualhost" => u.virtualhost = Some(cx.one(x)?.text.clone()),
            "regex" | "regex_no_match" | "regex_options" | "regex_stack" | "regex_min_offset"
            | "regex_max_offset" | "tls_compliant" => {
                cx.no_block(x)?;
                cx.note(
                    &x.kw,
                    x.name(),
                    "not supported: the body is checked by digest only",
                );
            }
            _ => return Err(cx.unknown(x, "url")),
        }
    }
    if !path {
        return Err(cx.err(&s.kw, "url needs a path"));
    }
    Ok(u)
}

/// keepalived's free-form hex: the words joined, each read in pairs of digits (an odd last
/// digit is a byte of its own: `Ab12f 3` is AB 12 0F 03). In `require_reply`, `X` (any
/// nibble) is not supported: the reply is matched up to the first one.
fn hex(cx: &mut Cx<'_>, s: &Stmt, wildcards: bool) -> Result<Vec<u8>, LoadError> {
    cx.no_block(s)?;
    if !wildcards && s.args.is_empty() {
        return Err(cx.err(&s.kw, format!("{} needs hex bytes", s.name())));
    }
    let mut out = Vec::new();
    let mut cut = false;
    for t in &s.args {
        let b = t.text.as_bytes();
        for pair in b.chunks(2) {
            let mut v: u8 = 0;
            for &d in pair {
                let n = match d {
                    b'0'..=b'9' => d - b'0',
                    b'a'..=b'f' => d - b'a' + 10,
                    b'A'..=b'F' => d - b'A' + 10,
                    b'x' | b'X' if wildcards => {
                        cut = true;
                        0
                    }
                    _ => return Err(cx.bad(s, t, "hex bytes")),
                };
                v = (v << 4) | n;
            }
            if cut {
                break;
            }
            if out.len() >= crate::check::MAX_UDP_PAYLOAD {
                return Err(cx.err(
                    t,
                    format!(
                        "{}: longer than {} bytes",
                        s.name(),
                        crate::check::MAX_UDP_PAYLOAD
                    ),
                ));
            }
            out.push(v);
        }
        if cut {
            cx.note(
                t,
                s.name(),
                format!("'X' (any digit) is not supported: the reply is matched on its first {} bytes only", out.len()),
            );
            break;
        }
    }
    Ok(out)
}

/// A checker with its inherited settings, validated.
fn check_spec(
    cx: &Cx<'_>,
    c: &CheckDraft,
    rs_timers: &Timers,
    vhost: Option<&str>,
    probe_port: Option<u16>,
) -> Result<CheckSpec, LoadError> {
    let t = c.timers.or(rs_timers);
    let (default_retry, default_dbr) = match &c.kind {
        CheckKind::Misc(_) => (0, DEFAULT_DELAY_BEFORE_RETRY_MS),
        CheckKind::Http(_) | CheckKind::Ssl(_) => (DEFAULT_RETRY, HTTP_DELAY_BEFORE_RETRY_MS),
        _ => (DEFAULT_RETRY, DEFAULT_DELAY_BEFORE_RETRY_MS),
    };
    let mut kind = c.kind.clone();
    if let CheckKind::Http(h) | CheckKind::Ssl(h) = &mut kind {
        if h.virtualhost.is_none() {
            h.virtualhost = vhost.map(str::to_string);
        }
    }
    let spec = CheckSpec {
        kind,
        params: CheckParams {
            connect_ip: c.connect_ip,
            connect_port: c.connect_port.or(probe_port),
            bindto: c.bindto,
            bind_port: c.bind_port,
            connect_timeout_ms: t.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT_MS),
            delay_loop_ms: t.delay_loop.unwrap_or(DEFAULT_DELAY_LOOP_MS),
            retry: t.retry.unwrap_or(default_retry),
            delay_before_retry_ms: t.delay_before_retry.unwrap_or(default_dbr),
            warmup_ms: t.warmup,
            rise: c.rise.unwrap_or(DEFAULT_RISE),
            alpha: t.alpha.unwrap_or(false),
        },
    };
    spec.validate()
        .map_err(|e| cx.err(&c.tok, format!("{}: {e}", c.kind.name())))?;
    Ok(spec)
}
