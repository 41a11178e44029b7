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
use crate::ha::{
    Garp, HaConfig, InitialState, SyncConfig, TrackScript, VrrpInstance, VrrpScript, VrrpVersion,
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
const TOP_UNSUPPORTED: [&str; 16] = [
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
/// Top-level VRRP blocks other than `vrrp_*` (all listed as not supported).
const TOP_VRRP: [&str; 1] = ["garp_group"];

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
            // Read by `map_ha`.
            "global_defs" => {}
            _ if name.starts_with("vrrp_") || TOP_VRRP.contains(&name) => {}
            _ if TOP_UNSUPPORTED.contains(&name) => {
                cx.skip(s, "not read by rvs (only the LVS configuration is)")
            }
            _ => return Err(cx.unknown(s, "the configuration")),
        }
    }
    let ha = map_ha(&mut cx, stmts)?;
    Ok(Config {
        services,
        unsupported: cx.notes,
        ha,
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

// ---- VRRP: vrrp_instance, vrrp_script, global_defs' VRRP defaults and lvs_sync_daemon ----

/// keepalived's largest `preempt_delay` (seconds).
const MAX_PREEMPT_DELAY_MS: u64 = 1_000_000;
/// Longest GARP delay, interval or refresh read (an hour: beyond any use).
const MAX_GARP_MS: u64 = 3_600_000;
/// Most VIPs in one instance (VRRPv2/v3 carry the count in a byte).
const MAX_VIPS: usize = 255;
/// Most unicast peers of one instance.
const MAX_PEERS: usize = 255;

/// `vrrp_instance` keywords rvs reads but does not apply, with why.
const INSTANCE_IGNORED: [(&str, &str); 36] = [
    (
        "use_vmac",
        "VRRP virtual MACs are not supported: the port's own MAC is used",
    ),
    ("use_vmac_addr", "VRRP virtual MACs are not supported"),
    ("vmac_xmit_base", "VRRP virtual MACs are not supported"),
    ("use_ipvlan", "ipvlan interfaces are not supported"),
    ("vrf", "VRFs are not supported"),
    ("native_ipv6", "IPv6 VRRP is not supported"),
    (
        "dont_track_primary",
        "rvs does not track interfaces: the data port is the instance's",
    ),
    (
        "track_interface",
        "interface tracking is not supported (use track_script)",
    ),
    (
        "track_file",
        "file tracking is not supported (use track_script)",
    ),
    (
        "track_process",
        "process tracking is not supported (use track_script)",
    ),
    ("track_bfd", "BFD tracking is not supported"),
    (
        "track_src_ip",
        "not supported: the source address is rvs's own",
    ),
    (
        "mcast_src_ip",
        "not supported: adverts leave from the DIP (or unicast_src_ip)",
    ),
    (
        "mcast_dst_ip",
        "not supported: adverts go to 224.0.0.18 (or to unicast_peer)",
    ),
    ("check_unicast_src", "not supported"),
    ("unicast_fault_no_peer", "not supported"),
    (
        "unicast_ttl",
        "not supported: adverts are sent with TTL 255",
    ),
    (
        "old_unicast_checksum",
        "not supported: the RFC checksum is used",
    ),
    (
        "down_timer_adverts",
        "not supported: the RFC's 3 intervals are used",
    ),
    ("lower_prio_no_advert", "not supported"),
    ("higher_prio_send_advert", "not supported"),
    (
        "virtual_ipaddress_excluded",
        "excluded addresses are not supported: list the VIPs in virtual_ipaddress",
    ),
    ("virtual_routes", "routes are not managed by rvs"),
    ("virtual_rules", "routing rules are not managed by rvs"),
    (
        "promote_secondaries",
        "rvs does not add addresses to interfaces",
    ),
    (
        "accept",
        "rvs serves the VIPs' services as master whatever the mode",
    ),
    (
        "no_accept",
        "rvs serves the VIPs' services as master whatever the mode",
    ),
    (
        "skip_check_adv_addr",
        "not supported: the address list is always checked",
    ),
    ("strict_mode", "not supported"),
    ("debug", "not supported"),
    ("smtp_alert", "e-mail alerts are not supported"),
    ("kernel_rx_buf_size", "not supported"),
    ("linkbeat_use_polling", "not supported"),
    (
        "notify_master_rx_lower_pri",
        "not supported (notify_master, notify_backup, notify_fault, notify_stop and notify are)",
    ),
    (
        "notify_deleted",
        "not supported (notify_master, notify_backup, notify_fault, notify_stop and notify are)",
    ),
    ("notify_priority_changes", "notify FIFOs are not supported"),
];

/// GARP keywords of an instance rvs does not apply.
const GARP_IGNORED: [&str; 4] = [
    "garp_lower_prio_delay",
    "garp_lower_prio_repeat",
    "garp_extra_if",
    "gna_interval",
];

/// The VRRP defaults `global_defs` sets.
#[derive(Clone)]
struct VrrpDefaults {
    version: VrrpVersion,
    garp: Garp,
}

impl Default for VrrpDefaults {
    fn default() -> Self {
        VrrpDefaults {
            // keepalived's default, unlike rvs's own configuration (v3).
            version: VrrpVersion::V2,
            garp: Garp::default(),
        }
    }
}

struct InstDraft {
    tok: Token,
    inst: VrrpInstance,
    tracks: Vec<(Token, TrackScript)>,
}

/// The HA part of a configuration, read from its top-level directives. `stmts` is the whole
/// configuration; nothing but `global_defs`, `vrrp_*` and `garp_group` is looked at.
fn map_ha(cx: &mut Cx<'_>, stmts: &[Stmt]) -> Result<HaConfig, LoadError> {
    let mut defaults = VrrpDefaults::default();
    let mut sync: Option<(SyncConfig, Token)> = None;
    // global_defs first: its defaults apply to instances before and after it.
    for s in stmts.iter().filter(|s| s.name() == "global_defs") {
        read_global_defs(cx, s, &mut defaults, &mut sync)?;
    }
    let mut scripts: Vec<(VrrpScript, Token)> = Vec::new();
    let mut unusable_scripts: Vec<String> = Vec::new();
    let mut instances: Vec<InstDraft> = Vec::new();
    for s in stmts {
        match s.name() {
            "vrrp_script" => {
                let name = cx.one_name(s)?;
                if let Some((_, t)) = scripts.iter().find(|(x, _)| x.name == name) {
                    return Err(cx.err(
                        &s.kw,
                        format!(
                            "vrrp_script {name} is already defined at {}:{}",
                            cx.file(t),
                            t.line
                        ),
                    ));
                }
                match read_vrrp_script(cx, s, &name)? {
                    Some(sc) => scripts.push((sc, s.kw.clone())),
                    None => unusable_scripts.push(name),
                }
            }
            "vrrp_instance" => {
                let name = cx.one_name(s)?;
                if let Some(d) = instances.iter().find(|d| d.inst.name == name) {
                    return Err(cx.err(
                        &s.kw,
                        format!(
                            "vrrp_instance {name} is already defined at {}:{}",
                            cx.file(&d.tok),
                            d.tok.line
                        ),
                    ));
                }
                if let Some(d) = read_vrrp_instance(cx, s, &name, &defaults, &mut sync)? {
                    instances.push(d);
                }
            }
            "vrrp_sync_group" => cx.skip(
                s,
                "sync groups are not supported: each vrrp_instance runs on its own",
            ),
            n if n.starts_with("vrrp_") || TOP_VRRP.contains(&n) => {
                cx.skip(s, "not supported by rvs's VRRP")
            }
            _ => {}
        }
    }
    // track_script names: a script keepalived would drop (no `script`) is dropped with a note,
    // one that does not exist at all is an error (a typo must not leave a check out).
    for d in &mut instances {
        let mut kept = Vec::new();
        for (t, ts) in std::mem::take(&mut d.tracks) {
            if scripts.iter().any(|(s, _)| s.name == ts.name) {
                kept.push(ts);
            } else if unusable_scripts.contains(&ts.name) {
                cx.note(
                    &t,
                    "track_script",
                    format!(
                        "vrrp_script {} has no script; not tracked, as keepalived does",
                        ts.name
                    ),
                );
            } else {
                return Err(cx.err(
                    &t,
                    format!(
                        "vrrp_instance {}: track_script {} is not a vrrp_script",
                        d.inst.name, ts.name
                    ),
                ));
            }
        }
        d.inst.track_scripts = kept;
    }
    for d in &instances {
        d.inst.validate().map_err(|e| cx.err(&d.tok, e))?;
    }
    let ha = HaConfig {
        instances: instances.iter().map(|d| d.inst.clone()).collect(),
        scripts: scripts.iter().map(|(s, _)| s.clone()).collect(),
        sync: sync.as_ref().map(|(s, _)| s.clone()),
    };
    if let Err(e) = ha.validate() {
        // The error names instances: point at the last one it names (the later of a pair),
        // else at the sync line.
        let words: Vec<&str> = e
            .split(|c: char| c.is_whitespace() || c == ',' || c == ':')
            .collect();
        let at = instances
            .iter()
            .rev()
            .find(|d| words.contains(&d.inst.name.as_str()))
            .map(|d| &d.tok)
            .or(sync.as_ref().map(|(_, t)| t));
        return Err(match at {
            Some(t) => cx.err(t, e),
            None => LoadError {
                file: cx.files.first().cloned().unwrap_or_default(),
                line: 0,
                message: e,
            },
        });
    }
    Ok(ha)
}

fn read_global_defs(
    cx: &mut Cx<'_>,
    s: &Stmt,
    defaults: &mut VrrpDefaults,
    sync: &mut Option<(SyncConfig, Token)>,
) -> Result<(), LoadError> {
    let mut other: Vec<String> = Vec::new();
    for x in s.block.as_deref().unwrap_or(&[]) {
        match x.name() {
            "vrrp_version" => defaults.version = vrrp_version(cx, x)?,
            "vrrp_garp_master_delay" => {
                defaults.garp.delay_ms = garp_ms(cx, x)?;
            }
            "vrrp_garp_master_repeat" => defaults.garp.repeat = cx.uint_arg(x, 1, 255)?,
            "vrrp_garp_interval" => defaults.garp.interval_ms = garp_ms(cx, x)?,
            "vrrp_garp_master_refresh" => defaults.garp.refresh_ms = garp_ms(cx, x)?,
            "vrrp_garp_master_refresh_repeat" => {
                defaults.garp.refresh_repeat = cx.uint_arg(x, 1, 255)?
            }
            "lvs_sync_daemon" => {
                if let Some((_, t)) = sync {
                    return Err(cx.err(
                        &x.kw,
                        format!("lvs_sync_daemon is already given at line {}", t.line),
                    ));
                }
                *sync = Some((lvs_sync_daemon(cx, x)?, x.kw.clone()));
            }
            n => {
                if !other.iter().any(|o| o == n) {
                    other.push(n.to_string());
                }
            }
        }
    }
    if !other.is_empty() || s.block.is_none() {
        cx.note(
            &s.kw,
            "global_defs",
            format!(
                "{} not read by rvs (only vrrp_version, vrrp_garp_* and lvs_sync_daemon are)",
                if other.is_empty() {
                    "the line is".to_string()
                } else {
                    other.join(", ")
                }
            ),
        );
    }
    Ok(())
}

fn vrrp_version(cx: &Cx<'_>, s: &Stmt) -> Result<VrrpVersion, LoadError> {
    let t = cx.one(s)?;
    match t.text.as_str() {
        "2" => Ok(VrrpVersion::V2),
        "3" => Ok(VrrpVersion::V3),
        _ => Err(cx.bad(s, t, "2 or 3")),
    }
}

fn garp_ms(cx: &Cx<'_>, s: &Stmt) -> Result<u32, LoadError> {
    let t = cx.one(s)?;
    let ms = cx.timer(s, t, 0)?;
    if ms > MAX_GARP_MS {
        return Err(cx.err(t, format!("{}: {} s is too long", s.name(), t.text)));
    }
    Ok(ms as u32)
}

/// A signed integer in `min..=max`.
fn int_value(cx: &Cx<'_>, s: &Stmt, t: &Token, min: i32, max: i32) -> Result<i32, LoadError> {
    let digits = t.text.strip_prefix(['-', '+']).unwrap_or(&t.text);
    if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(cx.bad(s, t, "a number"));
    }
    let v: i32 = t.text.parse().map_err(|_| cx.bad(s, t, "a number"))?;
    if v < min || v > max {
        return Err(cx.err(
            t,
            format!("{}: {} is not in {min}..={max}", s.name(), t.text),
        ));
    }
    Ok(v)
}

/// `lvs_sync_daemon <INTERFACE> [inst] <VRRP_INSTANCE> [id N] [maxlen N] [port N] [ttl N]
/// [group A]`.
fn lvs_sync_daemon(cx: &mut Cx<'_>, s: &Stmt) -> Result<SyncConfig, LoadError> {
    cx.no_block(s)?;
    let mut args = s.args.iter();
    let Some(iface) = args.next() else {
        return Err(cx.err(
            &s.kw,
            "lvs_sync_daemon needs an interface and a vrrp_instance",
        ));
    };
    let mut inst = args.next();
    if inst.is_some_and(|t| t.text == "inst") {
        inst = args.next();
    }
    let Some(inst) = inst else {
        return Err(cx.err(
            &s.kw,
            "lvs_sync_daemon needs the vrrp_instance whose state gives the sync role",
        ));
    };
    let mut sc = SyncConfig::new(&inst.text);
    cx.note(
        iface,
        "lvs_sync_daemon",
        format!(
            "interface {}: rvs sends and receives sync through its kernel interface",
            iface.text
        ),
    );
    while let Some(k) = args.next() {
        let Some(v) = args.next() else {
            return Err(cx.err(k, format!("lvs_sync_daemon: '{}' needs a value", k.text)));
        };
        match k.text.as_str() {
            "port" => sc.port = cx.port(s, v, 1)?,
            "maxlen" => sc.max_message = cx.uint(s, v, 1, 65_507)? as usize,
            "id" => {
                cx.uint(s, v, 0, 255)?;
                cx.note(
                    k,
                    "lvs_sync_daemon",
                    "id: not used (rvs's sync messages name the instance's peers by address)",
                );
            }
            "ttl" => {
                cx.uint(s, v, 1, 255)?;
                cx.note(
                    k,
                    "lvs_sync_daemon",
                    "ttl: not supported (TTL 1 multicast, 64 unicast)",
                );
            }
            "group" => {
                let a = cx.ipv4(s, v)?;
                if a.is_multicast() {
                    if a != crate::ha::SYNC_GROUP {
                        cx.note(
                            k,
                            "lvs_sync_daemon",
                            format!(
                                "group {a}: other multicast groups are not supported; {} is used",
                                crate::ha::SYNC_GROUP
                            ),
                        );
                    }
                } else if a.is_unspecified() || a.is_broadcast() {
                    return Err(cx.bad(s, v, "a multicast or unicast address"));
                } else {
                    // IPVS sends to a unicast group as to a peer.
                    sc.peers = vec![a];
                }
            }
            _ => {
                return Err(cx.err(
                    k,
                    format!(
                        "lvs_sync_daemon: unknown option '{}' (id, maxlen, port, ttl, group)",
                        k.text
                    ),
                ))
            }
        }
    }
    Ok(sc)
}

/// A command as argv: the value split at blanks, `'...'` grouping words (keepalived's own
/// splitting of a quoted script). Extra words after a quoted command (or after a single
/// unquoted word) are keepalived's user and group, noted.
fn command(cx: &mut Cx<'_>, s: &Stmt) -> Result<Vec<String>, LoadError> {
    cx.no_block(s)?;
    let Some(c) = s.args.first() else {
        return Err(cx.err(&s.kw, format!("{} needs a command", s.name())));
    };
    if let Some(user) = s.args.get(1) {
        cx.note(
            user,
            s.name(),
            format!(
                "running as user {} is not supported; it runs as rvs",
                user.text
            ),
        );
    }
    let argv = split_argv(&c.text).map_err(|m| cx.err(c, format!("{}: {m}", s.name())))?;
    if argv.is_empty() {
        return Err(cx.err(c, format!("{} needs a command", s.name())));
    }
    Ok(argv)
}

/// Split a command line at blanks; `'...'` is one word (quotes removed, may be empty).
pub(super) fn split_argv(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quoted = false;
    for ch in text.chars() {
        match ch {
            '\'' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quoted {
        return Err("unterminated ' in the command".into());
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// Conditional (`@id`) and parameter (`$X`) lines inside a block: noted, not read.
fn conditional(cx: &mut Cx<'_>, x: &Stmt) -> bool {
    if x.name().starts_with('@') {
        cx.skip(
            x,
            "conditional configuration (@id lines) is not supported; the line is not read",
        );
        true
    } else if x.name().starts_with('$') {
        cx.skip(
            x,
            "parameter definitions ($NAME=...) are not supported; the line is not read",
        );
        true
    } else {
        false
    }
}

/// A `vrrp_script`; `None` when it has no `script` (keepalived drops it).
fn read_vrrp_script(
    cx: &mut Cx<'_>,
    s: &Stmt,
    name: &str,
) -> Result<Option<VrrpScript>, LoadError> {
    let mut argv = None;
    let mut interval_ms: u64 = 1_000;
    let mut timeout_ms = None;
    let mut weight = 0;
    let mut rise = 1;
    let mut fall = 1;
    for x in cx.block(s)? {
        if conditional(cx, x) {
            continue;
        }
        match x.name() {
            "script" => argv = Some(command(cx, x)?),
            "interval" => interval_ms = cx.timer_arg(x, 1)?,
            "timeout" => timeout_ms = Some(cx.timer_arg(x, 1)?),
            "weight" => {
                cx.no_block(x)?;
                let Some(w) = x.args.first() else {
                    return Err(cx.err(&x.kw, "weight needs a value"));
                };
                weight = int_value(cx, x, w, -253, 253)?;
                weight_tail(cx, x)?;
            }
            "rise" => rise = cx.uint_arg(x, 1, 1_000)?,
            "fall" => fall = cx.uint_arg(x, 1, 1_000)?,
            "user" => {
                cx.text(x)?;
                cx.note(&x.kw, "user", "not supported: the script runs as rvs");
            }
            "init_fail" => {
                cx.no_args(x)?;
                cx.note(
                    &x.kw,
                    "init_fail",
                    "not supported: a script counts as up until it fails",
                );
            }
            _ => return Err(cx.unknown(x, "vrrp_script")),
        }
    }
    let Some(argv) = argv else {
        cx.note(
            &s.kw,
            "vrrp_script",
            format!("{name} has no script: not used, as keepalived does"),
        );
        return Ok(None);
    };
    let max = u64::from(u32::MAX);
    if interval_ms > max || timeout_ms.is_some_and(|t| t > max) {
        return Err(cx.err(&s.kw, format!("vrrp_script {name}: time too long")));
    }
    Ok(Some(VrrpScript {
        name: name.to_string(),
        argv,
        interval_ms: interval_ms as u32,
        timeout_ms: timeout_ms.unwrap_or(interval_ms) as u32,
        weight,
        rise,
        fall,
    }))
}

/// After a weight's value: keepalived's `reverse` is noted; anything else is an error.
fn weight_tail(cx: &mut Cx<'_>, x: &Stmt) -> Result<(), LoadError> {
    match x.args.get(1..).unwrap_or(&[]) {
        [] => Ok(()),
        [r] if r.text == "noreverse" || r.text == "no_reverse" => Ok(()),
        [r] if r.text == "reverse" => {
            cx.note(
                r,
                "reverse",
                "reversed weights are not supported; the weight applies as written",
            );
            Ok(())
        }
        [r, ..] => Err(cx.err(r, format!("{}: unexpected '{}'", x.name(), r.text))),
    }
}

fn read_vrrp_instance(
    cx: &mut Cx<'_>,
    s: &Stmt,
    name: &str,
    defaults: &VrrpDefaults,
    sync: &mut Option<(SyncConfig, Token)>,
) -> Result<Option<InstDraft>, LoadError> {
    let mut inst = VrrpInstance::new(name, 0, 100, Vec::new());
    inst.version = defaults.version;
    inst.garp = defaults.garp;
    let mut vrid = None;
    let mut tracks = Vec::new();
    let mut auth: Option<(Token, Option<String>)> = None;
    let mut v6_vips: Vec<Token> = Vec::new();
    let mut state_master: Option<Token> = None;
    let mut nopreempt: Option<Token> = None;
    // Notes about the inside, kept only if the instance is read.
    let outer = std::mem::take(&mut cx.notes);
    for x in cx.block(s)? {
        if conditional(cx, x) {
            continue;
        }
        match x.name() {
            "state" => {
                let t = cx.one(x)?;
                inst.initial = match t.text.to_ascii_uppercase().as_str() {
                    "MASTER" => {
                        state_master = Some(x.kw.clone());
                        InitialState::Master
                    }
                    "BACKUP" => {
                        state_master = None;
                        InitialState::Backup
                    }
                    _ => return Err(cx.bad(x, t, "MASTER or BACKUP")),
                };
            }
            // rvs runs VRRP on its data port, whatever interface keepalived would use.
            "interface" => {
                cx.one(x)?;
            }
            "virtual_router_id" => vrid = Some(cx.uint_arg(x, 1, 255)? as u8),
            "priority" => inst.priority = cx.uint_arg(x, 1, 255)? as u8,
            "advert_int" => {
                let t = cx.one(x)?;
                let ms = cx.timer(x, t, 1)?;
                let cs = ms.div_ceil(10);
                if !(1..=4095).contains(&cs) {
                    return Err(cx.err(
                        t,
                        format!("advert_int: {} s is not in 0.01..=40.95", t.text),
                    ));
                }
                inst.advert_int_cs = cs as u16;
            }
            "version" | "vrrp_version" => inst.version = vrrp_version(cx, x)?,
            "nopreempt" | "no_preempt" => {
                cx.no_args(x)?;
                inst.preempt = false;
                nopreempt = Some(x.kw.clone());
            }
            "preempt" => {
                cx.no_args(x)?;
                inst.preempt = true;
                nopreempt = None;
            }
            "preempt_delay" => {
                let t = cx.one(x)?;
                let ms = cx.timer(x, t, 0)?;
                if ms > MAX_PREEMPT_DELAY_MS {
                    return Err(
                        cx.err(t, format!("preempt_delay: {} s is not in 0..=1000", t.text))
                    );
                }
                inst.preempt_delay_ms = ms as u32;
            }
            "authentication" => {
                if let Some(a) = x.args.first() {
                    return Err(cx.err(
                        a,
                        format!("authentication takes no value, got '{}'", a.text),
                    ));
                }
                auth = Some(read_auth(cx, x)?);
            }
            "virtual_ipaddress" => {
                if let Some(a) = x.args.first() {
                    return Err(cx.err(
                        a,
                        format!("virtual_ipaddress takes no value, got '{}'", a.text),
                    ));
                }
                for e in cx.block(x)? {
                    if conditional(cx, e) {
                        continue;
                    }
                    match read_vip(cx, e)? {
                        None => v6_vips.push(e.kw.clone()),
                        Some(v) if inst.vips.contains(&v) => cx.note(
                            &e.kw,
                            "virtual_ipaddress",
                            format!("{v} is listed twice; ignored"),
                        ),
                        Some(v) => {
                            if inst.vips.len() >= MAX_VIPS {
                                return Err(cx.err(
                                    &e.kw,
                                    format!("more than {MAX_VIPS} VIPs in one vrrp_instance"),
                                ));
                            }
                            inst.vips.push(v);
                        }
                    }
                }
            }
            "unicast_src_ip" => {
                let t = cx.one(x)?;
                inst.unicast_src = Some(unicast_addr(cx, x, t)?);
            }
            "unicast_peer" => {
                if let Some(a) = x.args.first() {
                    return Err(cx.err(a, format!("unicast_peer takes no value, got '{}'", a.text)));
                }
                for e in cx.block(x)? {
                    if conditional(cx, e) {
                        continue;
                    }
                    cx.no_block(e)?;
                    let a = unicast_addr(cx, x, &e.kw)?;
                    if !e.args.is_empty() {
                        cx.note(&e.kw, "unicast_peer", "min_ttl/max_ttl are not supported: TTL 255 is required as for multicast");
                    }
                    if inst.unicast_peers.contains(&a) {
                        cx.note(
                            &e.kw,
                            "unicast_peer",
                            format!("{a} is listed twice; ignored"),
                        );
                    } else if inst.unicast_peers.len() >= MAX_PEERS {
                        return Err(cx.err(&e.kw, format!("more than {MAX_PEERS} unicast peers")));
                    } else {
                        inst.unicast_peers.push(a);
                    }
                }
            }
            "garp_master_delay" => inst.garp.delay_ms = garp_ms(cx, x)?,
            "garp_master_repeat" => inst.garp.repeat = cx.uint_arg(x, 1, 255)?,
            "garp_interval" => inst.garp.interval_ms = garp_ms(cx, x)?,
            "garp_master_refresh" => inst.garp.refresh_ms = garp_ms(cx, x)?,
            "garp_master_refresh_repeat" => inst.garp.refresh_repeat = cx.uint_arg(x, 1, 255)?,
            "notify_master" => inst.notify.master = Some(command(cx, x)?),
            "notify_backup" => inst.notify.backup = Some(command(cx, x)?),
            "notify_fault" => inst.notify.fault = Some(command(cx, x)?),
            "notify_stop" => inst.notify.stop = Some(command(cx, x)?),
            "notify" => inst.notify.generic = Some(command(cx, x)?),
            "track_script" => {
                if let Some(a) = x.args.first() {
                    return Err(cx.err(a, format!("track_script takes no value, got '{}'", a.text)));
                }
                for e in cx.block(x)? {
                    if conditional(cx, e) {
                        continue;
                    }
                    tracks.push((e.kw.clone(), read_track(cx, e)?));
                }
            }
            "lvs_sync_daemon_interface" => {
                cx.one(x)?;
                if let Some((_, t)) = sync {
                    return Err(cx.err(
                        &x.kw,
                        format!("lvs_sync_daemon is already given at line {}", t.line),
                    ));
                }
                cx.note(
                    &x.kw,
                    "lvs_sync_daemon_interface",
                    "connection sync follows this instance (keepalived's older form of global_defs' lvs_sync_daemon); the interface is rvs's kernel interface",
                );
                *sync = Some((SyncConfig::new(name), x.kw.clone()));
            }
            n if GARP_IGNORED.contains(&n) => {
                cx.no_block(x)?;
                cx.note(&x.kw, n, "not supported (garp_master_delay, garp_master_repeat, garp_interval, garp_master_refresh, garp_master_refresh_repeat are)");
            }
            n => match INSTANCE_IGNORED.iter().find(|(k, _)| *k == n) {
                Some((_, why)) => cx.skip(x, why),
                None => return Err(cx.unknown(x, "vrrp_instance")),
            },
        }
    }
    let inner = std::mem::replace(&mut cx.notes, outer);
    if inst.vips.is_empty() && !v6_vips.is_empty() {
        cx.note(
            &s.kw,
            "vrrp_instance",
            format!("{name}: IPv6 VRRP is not supported; this vrrp_instance is not read"),
        );
        return Ok(None);
    }
    cx.notes.extend(inner);
    for t in &v6_vips {
        cx.note(
            t,
            "virtual_ipaddress",
            "IPv6 VIPs are not supported; this address is not taken",
        );
    }
    let Some(vrid) = vrid else {
        return Err(cx.err(
            &s.kw,
            format!("vrrp_instance {name} needs virtual_router_id"),
        ));
    };
    inst.vrid = vrid;
    if let Some((t, pass)) = auth {
        match (inst.version, pass) {
            (VrrpVersion::V3, _) => cx.note(
                &t,
                "authentication",
                "VRRPv3 has no authentication; ignored, as keepalived does",
            ),
            (VrrpVersion::V2, Some(p)) => inst.auth_pass = Some(p),
            (VrrpVersion::V2, None) => {}
        }
    }
    if let (Some(t), Some(_)) = (&state_master, &nopreempt) {
        cx.note(
            t,
            "state",
            "nopreempt needs state BACKUP: it starts as BACKUP, as keepalived does",
        );
        inst.initial = InitialState::Backup;
    }
    Ok(Some(InstDraft {
        tok: s.kw.clone(),
        inst,
        tracks,
    }))
}

/// `authentication { auth_type PASS|AH; auth_pass X }`: the password (`None` for AH, noted,
/// or for no auth_pass).
fn read_auth(cx: &mut Cx<'_>, s: &Stmt) -> Result<(Token, Option<String>), LoadError> {
    let mut kind: Option<&Token> = None;
    let mut pass: Option<&Token> = None;
    for x in cx.block(s)? {
        if conditional(cx, x) {
            continue;
        }
        match x.name() {
            "auth_type" => {
                let t = cx.one(x)?;
                if t.text != "PASS" && t.text != "AH" {
                    return Err(cx.bad(x, t, "PASS or AH"));
                }
                kind = Some(t);
            }
            "auth_pass" => {
                let t = cx.one(x)?;
                if t.text.is_empty() {
                    return Err(cx.bad(x, t, "a password"));
                }
                pass = Some(t);
            }
            _ => return Err(cx.unknown(x, "authentication")),
        }
    }
    if let Some(t) = kind.filter(|t| t.text == "AH") {
        cx.note(
            t,
            "auth_type",
            "AH authentication is not supported; adverts are sent and read without authentication",
        );
        return Ok((s.kw.clone(), None));
    }
    let Some(p) = pass else {
        return Err(cx.err(&s.kw, "authentication needs auth_pass"));
    };
    if kind.is_none() {
        return Err(cx.err(&s.kw, "authentication needs auth_type PASS"));
    }
    let mut v = p.text.clone();
    if v.len() > 8 {
        cx.note(
            p,
            "auth_pass",
            "longer than 8 bytes: the first 8 are used, as keepalived does",
        );
        let mut end = 8;
        while !v.is_char_boundary(end) {
            end -= 1;
        }
        v.truncate(end);
    }
    Ok((s.kw.clone(), Some(v)))
}

/// Options of a `virtual_ipaddress` entry that take a value; `dev` and `label` are accepted
/// silently (rvs answers for the address on its data port), the others noted.
const VIP_VALUE_OPTS: [&str; 7] = [
    "dev",
    "label",
    "brd",
    "broadcast",
    "scope",
    "peer",
    "preferred_lft",
];
const VIP_FLAG_OPTS: [&str; 8] = [
    "home",
    "-nodad",
    "nodad",
    "mngtmpaddr",
    "noprefixroute",
    "autojoin",
    "no_track",
    "use_vmac",
];

/// One `virtual_ipaddress` entry: `A[/len] [options]`. `None` for IPv6.
fn read_vip(cx: &mut Cx<'_>, e: &Stmt) -> Result<Option<Ipv4Addr>, LoadError> {
    cx.no_block(e)?;
    let text = e.kw.text.as_str();
    let (a, len) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (text, None),
    };
    if a.parse::<std::net::Ipv6Addr>().is_ok() {
        return Ok(None);
    }
    let bad = || {
        cx.err(
            &e.kw,
            format!("virtual_ipaddress: '{text}' is not an IPv4 address (A.B.C.D[/len])"),
        )
    };
    let addr: Ipv4Addr = a.parse().map_err(|_| bad())?;
    if let Some(l) = len {
        l.parse::<u8>()
            .ok()
            .filter(|n| *n <= 32 && l.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(bad)?;
    }
    if addr.is_unspecified() || addr.is_broadcast() || addr.is_multicast() || addr.is_loopback() {
        return Err(cx.err(&e.kw, format!("virtual_ipaddress: {addr} cannot be a VIP")));
    }
    let mut args = e.args.iter();
    let mut noted = false;
    while let Some(k) = args.next() {
        let t = k.text.as_str();
        if VIP_VALUE_OPTS.contains(&t) {
            if args.next().is_none() {
                return Err(cx.err(k, format!("virtual_ipaddress: '{t}' needs a value")));
            }
            if t == "dev" || t == "label" {
                continue;
            }
        } else if !VIP_FLAG_OPTS.contains(&t) {
            return Err(cx.err(k, format!("virtual_ipaddress: unknown option '{t}'")));
        }
        if !noted {
            cx.note(
                k,
                "virtual_ipaddress",
                format!("'{t}' is not supported: rvs does not add the address to an interface, it answers ARP for it on its data port"),
            );
            noted = true;
        }
    }
    Ok(Some(addr))
}

fn unicast_addr(cx: &Cx<'_>, s: &Stmt, t: &Token) -> Result<Ipv4Addr, LoadError> {
    let a = cx.ipv4(s, t)?;
    if a.is_unspecified() || a.is_broadcast() || a.is_multicast() || a.is_loopback() {
        return Err(cx.bad(s, t, "a unicast address"));
    }
    Ok(a)
}

/// A `track_script` entry: `NAME [weight W [reverse|noreverse]]`.
fn read_track(cx: &mut Cx<'_>, e: &Stmt) -> Result<TrackScript, LoadError> {
    cx.no_block(e)?;
    let weight = match e.args.as_slice() {
        [] => None,
        [w, v, rest @ ..] if w.text == "weight" => {
            let n = int_value(cx, e, v, -253, 253)?;
            match rest {
                [] => {}
                [r] if r.text == "noreverse" || r.text == "no_reverse" => {}
                [r] if r.text == "reverse" => cx.note(
                    r,
                    "reverse",
                    "reversed weights are not supported; the weight applies as written",
                ),
                [r, ..] => {
                    return Err(cx.err(
                        r,
                        format!("track_script {}: unexpected '{}'", e.name(), r.text),
                    ))
                }
            }
            Some(n)
        }
        [w, ..] => {
            return Err(cx.err(
                w,
                format!(
                    "track_script {}: expected 'weight N', got '{}'",
                    e.name(),
                    w.text
                ),
            ))
        }
    };
    Ok(TrackScript {
        name: e.name().to_string(),
        weight,
    })
}
