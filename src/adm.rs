//! `rvsadm`: ipvsadm's command-line language, spoken over the control socket.
//!
//! Three parts, each testable on its own:
//! - [`parse_args`]: ipvsadm's grammar (combined short flags such as `-ln`, long options with or
//!   without `=`, `-p` with an optional timeout) into a [`Command`], with ipvsadm's messages for
//!   illegal option/command combinations. [`crate::rules`] reuses it for `-R` / rules files.
//! - [`format_list`]: ipvsadm's `-L` table layouts (plain, `--stats`, `--rate`,
//!   `--thresholds`), column for column.
//! - [`run`]: talks JSON-RPC to the daemon through a [`Client`] and maps answers to ipvsadm's
//!   output and exit codes (0 ok, 2 bad command line, 255 the daemon refused, 1 cannot list).

use crate::config::Timeouts;
use crate::control::{ListReply, ListedService};
use crate::model::{Forward, Protocol, SchedulerKind, ServerSpec, ServiceKey, ServiceSpec};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the daemon listens unless `--socket` or `RVS_SOCKET` says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/rvs/control.sock";
/// ipvsadm's default scheduler, kept for compatibility (the daemon says if it lacks it).
pub const DEFAULT_SCHEDULER: &str = "wlc";
/// ipvsadm's default persistence timeout for a bare `-p`.
pub const DEFAULT_PERSISTENT_TIMEOUT: u32 = 300;
/// ipvsadm's largest timeout (31 days).
pub const MAX_TIMEOUT: u32 = 86400 * 31;
/// The version line ipvsadm prints above `-L` (we mimic the kernel IPVS 1.2.1 table).
pub const LIST_BANNER: &str = "IP Virtual Server version 1.2.1 (size=4096)";

/// Exit code for command-line errors (ipvsadm's `fail(2, ...)`).
pub const EXIT_USAGE: i32 = 2;
/// Exit code when the daemon refused a change (ipvsadm returns -1 from main).
pub const EXIT_REFUSED: i32 = 255;
/// Exit code when listing failed (ipvsadm's `exit(1)`).
pub const EXIT_LIST: i32 = 1;

/// A command-line or daemon error with the exit code ipvsadm would use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmError {
    pub msg: String,
    pub code: i32,
}

impl AdmError {
    fn usage(msg: impl Into<String>) -> Self {
        AdmError {
            msg: msg.into(),
            code: EXIT_USAGE,
        }
    }
}

impl std::fmt::Display for AdmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.msg)
    }
}

/// Options of `-L`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ListOpts {
    pub numeric: bool,
    pub stats: bool,
    pub rate: bool,
    pub exact: bool,
    pub thresholds: bool,
    pub persistent_conn: bool,
    pub nosort: bool,
    pub connections: bool,
    pub timeout: bool,
    pub daemon: bool,
    /// rvs extension: a trailing neighbour (ARP) state column.
    pub neighbours: bool,
}

/// One parsed ipvsadm command line.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    AddService(ServiceSpec),
    EditService(ServiceSpec),
    DeleteService(ServiceKey),
    AddServer(ServiceKey, ServerSpec),
    EditServer(ServiceKey, ServerSpec),
    /// Real server address and port (port already defaulted to the service port).
    DeleteServer(ServiceKey, Ipv4Addr, u16),
    Clear,
    List {
        service: Option<ServiceKey>,
        opts: ListOpts,
    },
    Zero(Option<ServiceKey>),
    Save {
        numeric: bool,
        nosort: bool,
    },
    Restore,
    SetTimeouts(Timeouts),
    Version,
    Help,
}

/// How names in addresses are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Names {
    /// Host names are resolved (through the system resolver); port names through /etc/services.
    Resolve,
    /// Only numeric IPv4 addresses; port names through /etc/services (the daemon side).
    NumericHosts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Add,
    Edit,
    Del,
    Flush,
    List,
    AddDest,
    DelDest,
    EditDest,
    Timeout,
    Restore,
    Save,
    Zero,
}

impl Cmd {
    /// ipvsadm's `cmdnames`.
    fn name(self) -> &'static str {
        match self {
            Cmd::Add => "add-service",
            Cmd::Edit => "edit-service",
            Cmd::Del => "delete-service",
            Cmd::Flush => "flush",
            Cmd::List => "list",
            Cmd::AddDest => "add-server",
            Cmd::DelDest => "delete-server",
            Cmd::EditDest => "edit-server",
            Cmd::Timeout => "set",
            Cmd::Restore => "restore",
            Cmd::Save => "save",
            Cmd::Zero => "zero",
        }
    }
}

/// Options in the order of ipvsadm's `optnames` (plus `sched-flags` and our `neighbours`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opt {
    Numeric = 0,
    Connection,
    Service,
    Scheduler,
    Persistent,
    Netmask,
    Server,
    Forward,
    Weight,
    UThreshold,
    LThreshold,
    Timeout,
    Daemon,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    NoSort,
    Exact,
    SchedFlags,
    Neighbours,
}

const OPT_COUNT: usize = 21;

impl Opt {
    fn name(self) -> &'static str {
        match self {
            Opt::Numeric => "numeric",
            Opt::Connection => "connection",
            Opt::Service => "service-address",
            Opt::Scheduler => "scheduler",
            Opt::Persistent => "persistent",
            Opt::Netmask => "netmask",
            Opt::Server => "real-server",
            Opt::Forward => "forwarding-method",
            Opt::Weight => "weight",
            Opt::UThreshold => "u-threshold",
            Opt::LThreshold => "l-threshold",
            Opt::Timeout => "timeout",
            Opt::Daemon => "daemon",
            Opt::Stats => "stats",
            Opt::Rate => "rate",
            Opt::Thresholds => "thresholds",
            Opt::PersistentConn => "persistent-conn",
            Opt::NoSort => "nosort",
            Opt::Exact => "exact",
            Opt::SchedFlags => "sched-flags",
            Opt::Neighbours => "neighbours",
        }
    }
    const ALL: [Opt; OPT_COUNT] = [
        Opt::Numeric,
        Opt::Connection,
        Opt::Service,
        Opt::Scheduler,
        Opt::Persistent,
        Opt::Netmask,
        Opt::Server,
        Opt::Forward,
        Opt::Weight,
        Opt::UThreshold,
        Opt::LThreshold,
        Opt::Timeout,
        Opt::Daemon,
        Opt::Stats,
        Opt::Rate,
        Opt::Thresholds,
        Opt::PersistentConn,
        Opt::NoSort,
        Opt::Exact,
        Opt::SchedFlags,
        Opt::Neighbours,
    ];
}

/// ipvsadm's `commands_v_options` table: '+' compulsory, 'x' illegal, '1' exclusive, ' ' optional.
/// Columns follow [`Opt`]'s order.
fn legality(cmd: Cmd) -> &'static [u8; OPT_COUNT] {
    //                       n  c  sv s  p  M  r  fw w  x  y  to dm st rt th pc ns ex b  nb
    match cmd {
        Cmd::Add | Cmd::Edit => b"xx+   xxxxxxxxxxxxx x",
        Cmd::Del => b"xx+xxxxxxxxxxxxxxxxxx",
        Cmd::Flush | Cmd::Timeout | Cmd::Restore => b"xxxxxxxxxxxxxxxxxxxxx",
        Cmd::List => b" 11xxxxxxxx11      x ",
        Cmd::AddDest | Cmd::EditDest => b"xx+xxx+    xxxxxxxxxx",
        Cmd::DelDest => b"xx+xxx+xxxxxxxxxxxxxx",
        Cmd::Save => b" xxxxxxxxxxxxxxxx xxx",
        Cmd::Zero => b"xx xxxxxxxxxxxxxxxxxx",
    }
}

/// Everything the command line said, before it is checked and assembled.
#[derive(Default)]
struct Raw {
    cmd: Option<Cmd>,
    seen: [bool; OPT_COUNT],
    service: Option<(Protocol, String)>,
    scheduler: Option<String>,
    persistent: Option<Option<String>>,
    netmask: Option<String>,
    server: Option<String>,
    forward: Option<Forward>,
    weight: Option<String>,
    upper: Option<String>,
    lower: Option<String>,
    flags: Option<String>,
    positional: Vec<String>,
}

impl Raw {
    fn set_cmd(&mut self, c: Cmd) -> Result<(), AdmError> {
        if self.cmd.is_some() {
            return Err(AdmError::usage("multiple commands specified"));
        }
        self.cmd = Some(c);
        Ok(())
    }
    fn set_opt(&mut self, o: Opt) -> Result<(), AdmError> {
        if self.seen[o as usize] {
            return Err(AdmError::usage(format!(
                "multiple '{}' options specified",
                o.name()
            )));
        }
        self.seen[o as usize] = true;
        Ok(())
    }
    fn has(&self, o: Opt) -> bool {
        self.seen[o as usize]
    }
}

/// What an option letter or long name means.
#[derive(Clone, Copy)]
enum Spec {
    Cmd(Cmd),
    Help,
    Version,
    /// Takes a value.
    Val(char),
    /// `-p`: takes a value only if the next word is not an option.
    Persistent,
    Flag(char),
    Unsupported(&'static str),
}

fn short_spec(c: char) -> Option<Spec> {
    Some(match c {
        'A' => Spec::Cmd(Cmd::Add),
        'E' => Spec::Cmd(Cmd::Edit),
        'D' => Spec::Cmd(Cmd::Del),
        'a' => Spec::Cmd(Cmd::AddDest),
        'e' => Spec::Cmd(Cmd::EditDest),
        'd' => Spec::Cmd(Cmd::DelDest),
        'C' => Spec::Cmd(Cmd::Flush),
        'L' | 'l' => Spec::Cmd(Cmd::List),
        'Z' => Spec::Cmd(Cmd::Zero),
        'R' => Spec::Cmd(Cmd::Restore),
        'S' => Spec::Cmd(Cmd::Save),
        'h' => Spec::Help,
        'v' => Spec::Version,
        't' | 'u' | 'f' | 's' | 'M' | 'r' | 'w' | 'x' | 'y' | 'b' => Spec::Val(c),
        'p' => Spec::Persistent,
        'g' | 'i' | 'm' | 'n' | 'c' | 'X' => Spec::Flag(c),
        '6' => Spec::Unsupported("IPv6 services (-6) are not supported"),
        'o' => Spec::Unsupported("one-packet scheduling (-o/--ops) is not supported yet"),
        _ => return None,
    })
}

fn long_spec(name: &str) -> Option<Spec> {
    Some(match name {
        "add-service" => Spec::Cmd(Cmd::Add),
        "edit-service" => Spec::Cmd(Cmd::Edit),
        "delete-service" => Spec::Cmd(Cmd::Del),
        "add-server" => Spec::Cmd(Cmd::AddDest),
        "edit-server" => Spec::Cmd(Cmd::EditDest),
        "delete-server" => Spec::Cmd(Cmd::DelDest),
        "clear" => Spec::Cmd(Cmd::Flush),
        "list" => Spec::Cmd(Cmd::List),
        "zero" => Spec::Cmd(Cmd::Zero),
        "restore" => Spec::Cmd(Cmd::Restore),
        "save" => Spec::Cmd(Cmd::Save),
        "set" => Spec::Cmd(Cmd::Timeout),
        "help" => Spec::Help,
        "version" => Spec::Version,
        "tcp-service" => Spec::Val('t'),
        "udp-service" => Spec::Val('u'),
        "fwmark-service" => Spec::Val('f'),
        "scheduler" => Spec::Val('s'),
        "netmask" => Spec::Val('M'),
        "real-server" => Spec::Val('r'),
        "weight" => Spec::Val('w'),
        "u-threshold" => Spec::Val('x'),
        "l-threshold" => Spec::Val('y'),
        "sched-flags" => Spec::Val('b'),
        "persistent" => Spec::Persistent,
        "gatewaying" => Spec::Flag('g'),
        "ipip" => Spec::Flag('i'),
        "masquerading" => Spec::Flag('m'),
        "numeric" => Spec::Flag('n'),
        "connection" => Spec::Flag('c'),
        "exact" => Spec::Flag('X'),
        "timeout" => Spec::Flag('T'),
        "daemon" => Spec::Flag('Y'),
        "stats" => Spec::Flag('1'),
        "rate" => Spec::Flag('2'),
        "thresholds" => Spec::Flag('3'),
        "persistent-conn" => Spec::Flag('4'),
        "nosort" => Spec::Flag('5'),
        "sort" => Spec::Flag('7'),
        "neighbours" | "neighbors" => Spec::Flag('N'),
        "ipv6" => Spec::Unsupported("IPv6 services (-6) are not supported"),
        "ops" => Spec::Unsupported("one-packet scheduling (-o/--ops) is not supported yet"),
        "pe" => Spec::Unsupported("persistence engines (--pe) are not supported yet"),
        "start-daemon" | "stop-daemon" | "mcast-interface" | "syncid" | "mcast-group"
        | "mcast-port" | "mcast-ttl" | "sync-maxlen" => {
            Spec::Unsupported("connection synchronisation daemons are not supported")
        }
        "tun-type" | "tun-port" | "tun-nocsum" | "tun-csum" | "tun-remcsum" => {
            Spec::Unsupported("tunnel options are not supported yet")
        }
        _ => return None,
    })
}

fn is_option_word(s: &str) -> bool {
    s.len() > 1 && s.starts_with('-')
}

/// Parse one ipvsadm command line (without the program name).
///
/// An empty line lists the table, as ipvsadm does.
pub fn parse_args<S: AsRef<str>>(args: &[S], names: Names) -> Result<Command, AdmError> {
    if args.is_empty() {
        return Ok(Command::List {
            service: None,
            opts: ListOpts::default(),
        });
    }
    let mut raw = Raw::default();
    let mut i = 0;
    let mut help = false;
    let mut version = false;
    while i < args.len() {
        let word = args[i].as_ref();
        i += 1;
        if let Some(long) = word.strip_prefix("--") {
            if long.is_empty() {
                // "--" ends options; the rest are positional.
                raw.positional
                    .extend(args[i..].iter().map(|s| s.as_ref().to_string()));
                break;
            }
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let spec = long_spec(name)
                .ok_or_else(|| AdmError::usage(format!("unknown option `--{name}'")))?;
            match spec {
                Spec::Val(c) => {
                    let v = match inline {
                        Some(v) => v,
                        None => {
                            let v =
                                args.get(i).map(|s| s.as_ref().to_string()).ok_or_else(|| {
                                    AdmError::usage(format!("option `--{name}' requires a value"))
                                })?;
                            i += 1;
                            v
                        }
                    };
                    apply_value(&mut raw, c, v)?;
                }
                Spec::Persistent => {
                    let v = match inline {
                        Some(v) => Some(v),
                        None => take_optional(args, &mut i),
                    };
                    raw.set_opt(Opt::Persistent)?;
                    raw.persistent = Some(v);
                }
                other => {
                    if inline.is_some() {
                        return Err(AdmError::usage(format!(
                            "option `--{name}' does not take a value"
                        )));
                    }
                    apply_simple(&mut raw, other, &mut help, &mut version)?;
                }
            }
        } else if is_option_word(word) {
            let cluster: Vec<char> = word[1..].chars().collect();
            let mut k = 0;
            while k < cluster.len() {
                let c = cluster[k];
                k += 1;
                let spec = short_spec(c)
                    .ok_or_else(|| AdmError::usage(format!("unknown option `-{c}'")))?;
                match spec {
                    Spec::Val(c) => {
                        let v = if k < cluster.len() {
                            let v: String = cluster[k..].iter().collect();
                            k = cluster.len();
                            v
                        } else {
                            let v =
                                args.get(i).map(|s| s.as_ref().to_string()).ok_or_else(|| {
                                    AdmError::usage(format!("option `-{c}' requires a value"))
                                })?;
                            i += 1;
                            v
                        };
                        apply_value(&mut raw, c, v)?;
                    }
                    Spec::Persistent => {
                        let v = if k < cluster.len() {
                            let v: String = cluster[k..].iter().collect();
                            k = cluster.len();
                            Some(v)
                        } else {
                            take_optional(args, &mut i)
                        };
                        raw.set_opt(Opt::Persistent)?;
                        raw.persistent = Some(v);
                    }
                    other => apply_simple(&mut raw, other, &mut help, &mut version)?,
                }
            }
        } else {
            raw.positional.push(word.to_string());
        }
    }
    if help {
        return Ok(Command::Help);
    }
    if version {
        return Ok(Command::Version);
    }
    let cmd = raw
        .cmd
        .ok_or_else(|| AdmError::usage("no command specified"))?;
    check_options(cmd, &raw)?;
    build(cmd, raw, names)
}

/// `-p`'s optional value: the next word, unless it is an option.
fn take_optional<S: AsRef<str>>(args: &[S], i: &mut usize) -> Option<String> {
    match args.get(*i) {
        Some(s) if !s.as_ref().starts_with('-') => {
            *i += 1;
            Some(s.as_ref().to_string())
        }
        _ => None,
    }
}

fn apply_simple(
    raw: &mut Raw,
    spec: Spec,
    help: &mut bool,
    version: &mut bool,
) -> Result<(), AdmError> {
    match spec {
        Spec::Cmd(c) => raw.set_cmd(c),
        Spec::Help => {
            *help = true;
            Ok(())
        }
        Spec::Version => {
            *version = true;
            Ok(())
        }
        Spec::Unsupported(msg) => Err(AdmError::usage(msg)),
        Spec::Flag(c) => {
            let opt = match c {
                'g' | 'i' | 'm' => {
                    raw.set_opt(Opt::Forward)?;
                    raw.forward = Some(match c {
                        'g' => Forward::Dr,
                        'i' => Forward::Tunnel,
                        _ => Forward::Masq,
                    });
                    return Ok(());
                }
                'n' => Opt::Numeric,
                'c' => Opt::Connection,
                'X' => Opt::Exact,
                'T' => Opt::Timeout,
                'Y' => Opt::Daemon,
                '1' => Opt::Stats,
                '2' => Opt::Rate,
                '3' => Opt::Thresholds,
                '4' => Opt::PersistentConn,
                '5' => Opt::NoSort,
                'N' => Opt::Neighbours,
                // --sort: the default, accepted for compatibility.
                _ => return Ok(()),
            };
            raw.set_opt(opt)
        }
        Spec::Val(_) | Spec::Persistent => Ok(()),
    }
}

fn apply_value(raw: &mut Raw, c: char, v: String) -> Result<(), AdmError> {
    match c {
        't' | 'u' => {
            raw.set_opt(Opt::Service)?;
            let proto = if c == 't' {
                Protocol::Tcp
            } else {
                Protocol::Udp
            };
            raw.service = Some((proto, v));
        }
        'f' => {
            return Err(AdmError::usage(
                "firewall-mark services (-f) are not supported: rvs matches services by \
                 protocol, address and port (-t/-u)",
            ))
        }
        's' => {
            raw.set_opt(Opt::Scheduler)?;
            raw.scheduler = Some(v);
        }
        'M' => {
            raw.set_opt(Opt::Netmask)?;
            raw.netmask = Some(v);
        }
        'r' => {
            raw.set_opt(Opt::Server)?;
            raw.server = Some(v);
        }
        'w' => {
            raw.set_opt(Opt::Weight)?;
            raw.weight = Some(v);
        }
        'x' => {
            raw.set_opt(Opt::UThreshold)?;
            raw.upper = Some(v);
        }
        'y' => {
            raw.set_opt(Opt::LThreshold)?;
            raw.lower = Some(v);
        }
        'b' => {
            raw.set_opt(Opt::SchedFlags)?;
            raw.flags = Some(v);
        }
        _ => {}
    }
    Ok(())
}

/// ipvsadm's `generic_opt_check`, with its messages.
fn check_options(cmd: Cmd, raw: &Raw) -> Result<(), AdmError> {
    let table = legality(cmd);
    let mut exclusive: Option<Opt> = None;
    for (j, opt) in Opt::ALL.iter().enumerate() {
        let rule = table[j];
        if !raw.has(*opt) {
            if rule == b'+' {
                return Err(AdmError::usage(format!(
                    "You need to supply the '{}' option for the '{}' command",
                    opt.name(),
                    cmd.name()
                )));
            }
            continue;
        }
        match rule {
            b'x' => {
                return Err(AdmError::usage(format!(
                    "Illegal '{}' option with the '{}' command",
                    opt.name(),
                    cmd.name()
                )))
            }
            b'1' => {
                if let Some(last) = exclusive {
                    return Err(AdmError::usage(format!(
                        "The option '{}' conflicts with the '{}' option in the '{}' command",
                        opt.name(),
                        last.name(),
                        cmd.name()
                    )));
                }
                exclusive = Some(*opt);
            }
            _ => {}
        }
    }
    if cmd == Cmd::List {
        let special = raw.has(Opt::Connection) || raw.has(Opt::Timeout) || raw.has(Opt::Daemon);
        let table_fmt = raw.has(Opt::Stats) || raw.has(Opt::Rate) || raw.has(Opt::Thresholds);
        let tmo_daemon = raw.has(Opt::Timeout) || raw.has(Opt::Daemon);
        if (special && table_fmt) || (tmo_daemon && raw.has(Opt::PersistentConn)) {
            return Err(AdmError::usage("options conflicts in the list command"));
        }
    }
    if cmd != Cmd::Timeout {
        if let Some(p) = raw.positional.first() {
            return Err(AdmError::usage(format!("unexpected argument {p}")));
        }
    }
    Ok(())
}

/// ipvsadm's `string_to_number`: a whole decimal number within `min..=max`.
fn number(s: &str, min: u64, max: u64) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u64>().ok().filter(|n| (min..=max).contains(n))
}

fn parse_timeout(s: &str, min: u32) -> Result<u32, AdmError> {
    number(s, u64::from(min), u64::from(MAX_TIMEOUT))
        .map(|n| n as u32)
        .ok_or_else(|| AdmError::usage(format!("invalid timeout value `{s}' specified")))
}

/// Port names from /etc/services, read once per process.
fn service_port(name: &str, proto: Protocol) -> Option<u16> {
    use std::sync::OnceLock;
    static TABLE: OnceLock<HashMap<(String, String), u16>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        std::fs::read_to_string("/etc/services")
            .map(|t| parse_services(&t))
            .unwrap_or_default()
    });
    table.get(&(name.to_string(), proto.to_string())).copied()
}

/// Parse /etc/services text into (name, proto) -> port, aliases included.
fn parse_services(text: &str) -> HashMap<(String, String), u16> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let (Some(name), Some(pp)) = (words.next(), words.next()) else {
            continue;
        };
        let Some((port, proto)) = pp.split_once('/') else {
            continue;
        };
        let Ok(port) = port.parse::<u16>() else {
            continue;
        };
        for n in std::iter::once(name).chain(words) {
            out.entry((n.to_string(), proto.to_string()))
                .or_insert(port);
        }
    }
    out
}

/// ipvsadm's `parse_service`: `host[:port]`. Returns the address and the port if one was given.
fn parse_addr_port(
    s: &str,
    proto: Protocol,
    names: Names,
) -> Result<(Ipv4Addr, Option<u16>), String> {
    if s.starts_with('[') || s.matches(':').count() > 1 {
        return Err("IPv6 addresses are not supported".to_string());
    }
    if s.is_empty() || s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(String::new());
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    let addr = match host.parse::<Ipv4Addr>() {
        Ok(a) => a,
        Err(_) if names == Names::Resolve && !host.is_empty() => resolve_host(host)?,
        Err(_) => return Err(String::new()),
    };
    let port = match port {
        None => None,
        Some(p) => Some(match number(p, 0, 65535) {
            Some(n) => n as u16,
            None => service_port(p, proto).ok_or_else(String::new)?,
        }),
    };
    Ok((addr, port))
}

fn resolve_host(host: &str) -> Result<Ipv4Addr, String> {
    use std::net::{SocketAddr, ToSocketAddrs};
    let addrs = (host, 0u16).to_socket_addrs().map_err(|_| String::new())?;
    for a in addrs {
        if let SocketAddr::V4(v4) = a {
            return Ok(*v4.ip());
        }
    }
    Err(String::new())
}

fn addr_error(kind: &str, detail: String) -> AdmError {
    if detail.is_empty() {
        AdmError::usage(format!("illegal {kind} address[:port] specified"))
    } else {
        AdmError::usage(detail)
    }
}

fn build(cmd: Cmd, raw: Raw, names: Names) -> Result<Command, AdmError> {
    let key = match &raw.service {
        Some((proto, s)) => {
            let (vip, port) =
                parse_addr_port(s, *proto, names).map_err(|d| addr_error("virtual server", d))?;
            Some(ServiceKey {
                proto: *proto,
                vip,
                port: port.unwrap_or(0),
            })
        }
        None => None,
    };
    let need_key = || key.ok_or_else(|| AdmError::usage("missing service address"));
    Ok(match cmd {
        Cmd::Add | Cmd::Edit => {
            let key = need_key()?;
            let persistent = match &raw.persistent {
                None => None,
                Some(None) => Some(DEFAULT_PERSISTENT_TIMEOUT),
                Some(Some(t)) => Some(parse_timeout(t, 1)?),
            };
            if key.port == 0 && persistent.is_none() {
                return Err(AdmError::usage(
                    "Zero port specified for non-persistent service",
                ));
            }
            let netmask = match &raw.netmask {
                None => Ipv4Addr::BROADCAST,
                Some(m) => m.parse::<Ipv4Addr>().map_err(|_| {
                    AdmError::usage("illegal virtual server persistent mask specified")
                })?,
            };
            let sched = raw.scheduler.as_deref().unwrap_or(DEFAULT_SCHEDULER);
            let scheduler = sched.parse::<SchedulerKind>().map_err(|_| AdmError {
                msg: "Scheduler or persistence engine not found".to_string(),
                code: EXIT_REFUSED,
            })?;
            let flags = match &raw.flags {
                None => Vec::new(),
                Some(f) => f
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
            };
            let spec = ServiceSpec {
                key,
                scheduler,
                persistent,
                netmask,
                flags,
            };
            if cmd == Cmd::Add {
                Command::AddService(spec)
            } else {
                Command::EditService(spec)
            }
        }
        Cmd::Del => Command::DeleteService(need_key()?),
        Cmd::AddDest | Cmd::EditDest | Cmd::DelDest => {
            let key = need_key()?;
            let rs = raw.server.as_deref().unwrap_or("");
            let (addr, port) =
                parse_addr_port(rs, key.proto, names).map_err(|d| addr_error("real server", d))?;
            // No port given: the service port (ipvsadm copies vport to dport).
            let mut port = port.unwrap_or(key.port);
            if cmd == Cmd::DelDest {
                return Ok(Command::DeleteServer(key, addr, port));
            }
            let forward = raw.forward.unwrap_or(Forward::Dr);
            // ipvsadm: with direct routing or tunnelling the real server port is the
            // service port, whatever was written.
            if matches!(forward, Forward::Dr | Forward::Tunnel) {
                port = key.port;
            }
            let weight = match &raw.weight {
                None => 1,
                Some(w) => number(w, 0, 65535)
                    .ok_or_else(|| AdmError::usage("illegal weight specified"))?
                    as u32,
            };
            let upper = match &raw.upper {
                None => 0,
                Some(x) => number(x, 0, i32::MAX as u64)
                    .ok_or_else(|| AdmError::usage("illegal u_threshold specified"))?
                    as u32,
            };
            let lower = match &raw.lower {
                None => 0,
                Some(y) => number(y, 0, i32::MAX as u64)
                    .ok_or_else(|| AdmError::usage("illegal l_threshold specified"))?
                    as u32,
            };
            let spec = ServerSpec {
                addr,
                port,
                weight,
                forward,
                upper,
                lower,
            };
            if cmd == Cmd::AddDest {
                Command::AddServer(key, spec)
            } else {
                Command::EditServer(key, spec)
            }
        }
        Cmd::Flush => Command::Clear,
        Cmd::List => Command::List {
            service: key,
            opts: ListOpts {
                numeric: raw.has(Opt::Numeric),
                stats: raw.has(Opt::Stats),
                rate: raw.has(Opt::Rate),
                exact: raw.has(Opt::Exact),
                thresholds: raw.has(Opt::Thresholds),
                persistent_conn: raw.has(Opt::PersistentConn),
                nosort: raw.has(Opt::NoSort),
                connections: raw.has(Opt::Connection),
                timeout: raw.has(Opt::Timeout),
                daemon: raw.has(Opt::Daemon),
                neighbours: raw.has(Opt::Neighbours),
            },
        },
        Cmd::Zero => Command::Zero(key),
        Cmd::Save => Command::Save {
            numeric: raw.has(Opt::Numeric),
            nosort: raw.has(Opt::NoSort),
        },
        Cmd::Restore => Command::Restore,
        Cmd::Timeout => {
            if raw.positional.len() != 3 {
                return Err(AdmError::usage("--set option requires 3 timeout values"));
            }
            Command::SetTimeouts(Timeouts {
                tcp: parse_timeout(&raw.positional[0], 0)?,
                tcp_fin: parse_timeout(&raw.positional[1], 0)?,
                udp: parse_timeout(&raw.positional[2], 0)?,
            })
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Output: ipvsadm's `-L` layouts.
// ---------------------------------------------------------------------------------------------

/// Reverse of [`service_port`]: the /etc/services name of a port, for `-L` without `-n`.
fn port_name(port: u16, proto: Protocol) -> Option<String> {
    use std::sync::OnceLock;
    static TABLE: OnceLock<HashMap<(u16, String), String>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let text = std::fs::read_to_string("/etc/services").unwrap_or_default();
        let mut out = HashMap::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut w = line.split_whitespace();
            if let (Some(name), Some(pp)) = (w.next(), w.next()) {
                if let Some((p, pr)) = pp.split_once('/') {
                    if let Ok(p) = p.parse::<u16>() {
                        out.entry((p, pr.to_string()))
                            .or_insert_with(|| name.to_string());
                    }
                }
            }
        }
        out
    });
    table.get(&(port, proto.to_string())).cloned()
}

/// `addr:port`, the port by name unless `numeric` (addresses always stay numeric: rvsadm does
/// no reverse DNS).
fn addrport(addr: Ipv4Addr, port: u16, proto: Protocol, numeric: bool) -> String {
    if !numeric {
        if let Some(name) = port_name(port, proto) {
            return format!("{addr}:{name}");
        }
    }
    format!("{addr}:{port}")
}

/// ipvsadm's `print_largenum`: 9 columns, K/M/G/T above 100 million unless `exact`.
pub fn largenum(i: u64, exact: bool) -> String {
    if exact {
        let s = i.to_string();
        let w = if s.len() <= 8 { 9 } else { s.len() + 1 };
        return format!("{s:>w$}");
    }
    if i < 100_000_000 {
        format!("{i:>9}")
    } else if i < 1_000_000_000 {
        format!("{:>8}K", i / 1000)
    } else if i < 100_000_000_000 {
        format!("{:>8}M", i / 1_000_000)
    } else if i < 100_000_000_000_000 {
        format!("{:>8}G", i / 1_000_000_000)
    } else {
        format!("{:>8}T", i / 1_000_000_000_000)
    }
}

fn truncate(s: &mut String, n: usize) {
    if s.len() > n {
        s.truncate(n);
    }
}

fn neigh_text(n: &crate::api::NeighState) -> String {
    use crate::api::NeighState as N;
    match n {
        N::Incomplete => "incomplete".to_string(),
        N::Reachable { mac, .. } => format!("reachable {mac}"),
        N::Stale { mac, .. } => format!("stale {mac}"),
        N::Static { mac } => format!("static {mac}"),
    }
}

fn sorted(reply: &ListReply, nosort: bool) -> Vec<ListedService> {
    let mut services = reply.services.clone();
    if !nosort {
        services.sort_by_key(|s| (s.proto.ip_proto(), s.vip, s.port));
        for s in &mut services {
            s.servers.sort_by_key(|r| (r.addr, r.port));
        }
    }
    services
}

fn title(opts: &ListOpts) -> String {
    if opts.stats {
        format!(
            "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"
        )
    } else if opts.rate {
        format!(
            "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"
        )
    } else if opts.thresholds {
        format!(
            "{:<33} {:<10} {:<10} {:<10} {:<10}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "Uthreshold", "Lthreshold", "ActiveConn", "InActConn"
        )
    } else if opts.persistent_conn {
        format!(
            "{:<33} {:<9} {:<11} {:<10} {:<10}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "Weight", "PersistConn", "ActiveConn", "InActConn"
        )
    } else if opts.neighbours {
        "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn Neighbour\n"
            .to_string()
    } else {
        "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
            .to_string()
    }
}

fn service_block(out: &mut String, s: &ListedService, opts: &ListOpts) {
    let mut name = format!(
        "{}  {}",
        s.proto.upper(),
        addrport(s.vip, s.port, s.proto, opts.numeric)
    );
    truncate(&mut name, 33);
    let c = &s.counters;
    if opts.stats || opts.rate {
        // DR: replies bypass the director, so OutPkts/OutBytes are always 0.
        let _ = write!(out, "{name:<33}");
        for v in [c.conns, c.packets, 0, c.bytes, 0] {
            out.push_str(&largenum(v, opts.exact));
        }
    } else {
        let _ = write!(out, "{name} {}", s.scheduler);
        if !s.flags.is_empty() {
            let _ = write!(out, " ({})", s.flags.join(","));
        }
        if let Some(t) = s.persistent {
            let _ = write!(out, " persistent {t}");
            if s.netmask != Ipv4Addr::BROADCAST {
                let _ = write!(out, " mask {}", s.netmask);
            }
        }
    }
    out.push('\n');
    for r in &s.servers {
        let mut d = addrport(r.addr, r.port, s.proto, opts.numeric);
        truncate(&mut d, 28);
        let c = &r.counters;
        if opts.stats {
            let _ = write!(out, "  -> {d:<28}");
            for v in [c.conns, c.packets, 0, c.bytes, 0] {
                out.push_str(&largenum(v, opts.exact));
            }
            out.push('\n');
        } else if opts.rate {
            let _ = write!(out, "  -> {d:<28} {:>8} {:>8} {:>8}", c.conns, c.packets, 0);
            out.push_str(&largenum(c.bytes, opts.exact));
            out.push_str(&largenum(0, opts.exact));
            out.push('\n');
        } else if opts.thresholds {
            let _ = writeln!(
                out,
                "  -> {d:<28} {:<10} {:<10} {:<10} {:<10}",
                r.upper, r.lower, r.active_conns, r.inactive_conns
            );
        } else if opts.persistent_conn {
            let _ = writeln!(
                out,
                "  -> {d:<28} {:<9} {:<11} {:<10} {:<10}",
                r.weight, r.persistent_conns, r.active_conns, r.inactive_conns
            );
        } else {
            let _ = write!(
                out,
                "  -> {d:<28} {:<7} {:<6} {:<10} {:<10}",
                r.forward.lvs_name(),
                r.weight,
                r.active_conns,
                r.inactive_conns
            );
            if opts.neighbours {
                let _ = write!(out, " {}", neigh_text(&r.neighbour));
            }
            out.push('\n');
        }
    }
}

/// ipvsadm's `-L` output. `all`: the whole table (with the version banner), otherwise one
/// service (`-L -t VIP:PORT`, no banner). For `--rate`, pass a reply whose counters hold
/// per-second rates (see [`rates`]).
pub fn format_list(reply: &ListReply, opts: &ListOpts, all: bool) -> String {
    let mut out = String::new();
    if all {
        out.push_str(LIST_BANNER);
        out.push('\n');
    }
    out.push_str(&title(opts));
    for s in sorted(reply, opts.nosort) {
        service_block(&mut out, &s, opts);
    }
    out
}

/// `ipvsadm -L -c`: the connection table as ipvsadm prints `/proc/net/ip_vs_conn` (ports by
/// name unless `numeric`; `persistent_conn` adds ipvsadm's empty "pe name pe_data" columns).
pub fn format_connections(
    conns: &[crate::api::ConnEntry],
    numeric: bool,
    persistent_conn: bool,
) -> String {
    let mut out = String::from("IPVS connection entries\n");
    if persistent_conn {
        let _ = writeln!(
            out,
            "pro expire {:<11} {:<18} {:<18} {:<18} {:<16} pe_data",
            "state", "source", "virtual", "destination", "pe name"
        );
    } else {
        let _ = writeln!(
            out,
            "pro expire {:<11} {:<18} {:<18} destination",
            "state", "source", "virtual"
        );
    }
    for c in conns {
        let expire = format!("{:02}:{:02}", c.expire_s / 60, c.expire_s % 60);
        let _ = writeln!(
            out,
            "{:<3} {:<6} {:<11} {:<18} {:<18} {}",
            c.proto.upper(),
            expire,
            c.state,
            addrport(c.client, c.cport, c.proto, numeric),
            addrport(c.vip, c.vport, c.proto, numeric),
            addrport(c.rs, c.rport, c.proto, numeric),
        );
    }
    out
}

/// `ipvsadm -L --timeout`.
pub fn format_timeouts(t: &Timeouts) -> String {
    format!(
        "Timeout (tcp tcpfin udp): {} {} {}\n",
        t.tcp, t.tcp_fin, t.udp
    )
}

/// Per-second rates between two samples `secs` apart, in the counters of a copy of `after`
/// (conns = CPS, packets = InPPS, bytes = InBPS). Entries missing from `before` count from 0.
pub fn rates(before: &ListReply, after: &ListReply, secs: f64) -> ListReply {
    let secs = if secs > 0.0 { secs } else { 1.0 };
    let per = |new: u64, old: u64| (new.saturating_sub(old) as f64 / secs).round() as u64;
    let rate = |n: &crate::api::Counters, o: Option<&crate::api::Counters>| {
        let d = crate::api::Counters::default();
        let o = o.unwrap_or(&d);
        crate::api::Counters {
            conns: per(n.conns, o.conns),
            packets: per(n.packets, o.packets),
            bytes: per(n.bytes, o.bytes),
        }
    };
    let mut out = after.clone();
    for s in &mut out.services {
        let old = before.services.iter().find(|o| o.key() == s.key());
        s.counters = rate(&s.counters, old.map(|o| &o.counters));
        for r in &mut s.servers {
            let old_r = old.and_then(|o| {
                o.servers
                    .iter()
                    .find(|x| x.addr == r.addr && x.port == r.port)
            });
            r.counters = rate(&r.counters, old_r.map(|x| &x.counters));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The client side of the control socket.
// ---------------------------------------------------------------------------------------------

/// A connection to the daemon's control socket.
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
    path: PathBuf,
}

impl Client {
    /// Connect; the error names the socket path.
    pub fn connect(path: &Path) -> Result<Client, AdmError> {
        let fail = |e: std::io::Error| AdmError {
            msg: format!(
                "cannot reach the rvs daemon at {}: {e} (is rvs running? use --socket PATH or \
                 RVS_SOCKET to point elsewhere)",
                path.display()
            ),
            code: EXIT_USAGE,
        };
        let stream = UnixStream::connect(path).map_err(fail)?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(fail)?;
        let writer = stream.try_clone().map_err(fail)?;
        Ok(Client {
            reader: BufReader::new(stream),
            writer,
            next_id: 1,
            path: path.to_path_buf(),
        })
    }

    /// One JSON-RPC call. Daemon errors keep their message; the exit code is 2 for invalid
    /// requests and 255 for refused changes, as ipvsadm.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, AdmError> {
        let id = self.next_id;
        self.next_id += 1;
        let req = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let io_err = |e: std::io::Error| AdmError {
            msg: format!("control socket {}: {e}", self.path.display()),
            code: EXIT_USAGE,
        };
        writeln!(self.writer, "{req}").map_err(io_err)?;
        self.writer.flush().map_err(io_err)?;
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).map_err(io_err)?;
        if n == 0 {
            return Err(AdmError {
                msg: format!(
                    "control socket {}: the daemon closed the connection",
                    self.path.display()
                ),
                code: EXIT_USAGE,
            });
        }
        let resp: Value = serde_json::from_str(&line).map_err(|e| AdmError {
            msg: format!("control socket {}: bad response: {e}", self.path.display()),
            code: EXIT_USAGE,
        })?;
        if let Some(err) = resp.get("error") {
            let code = err.get("code").and_then(Value::as_i64).unwrap_or(0);
            let msg = err
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("unknown error")
                .to_string();
            let exit = if code < 0 { EXIT_USAGE } else { EXIT_REFUSED };
            return Err(AdmError { msg, code: exit });
        }
        Ok(resp.get("result").cloned().unwrap_or(Value::Null))
    }
}

fn key_json(k: &ServiceKey) -> Value {
    json!({"proto": k.proto, "vip": k.vip.to_string(), "port": k.port})
}

fn service_json(s: &ServiceSpec) -> Value {
    json!({
        "proto": s.key.proto,
        "vip": s.key.vip.to_string(),
        "port": s.key.port,
        "scheduler": s.scheduler,
        "persistent": s.persistent,
        "netmask": s.netmask.to_string(),
        "flags": s.flags,
    })
}

fn server_json(k: &ServiceKey, s: &ServerSpec) -> Value {
    json!({
        "service": key_json(k),
        "addr": s.addr.to_string(),
        "port": s.port,
        "weight": s.weight,
        "forward": s.forward,
        "upper": s.upper,
        "lower": s.lower,
    })
}

/// The JSON-RPC method and params for a command that maps to exactly one call.
pub fn request_for(cmd: &Command) -> Option<(&'static str, Value)> {
    Some(match cmd {
        Command::AddService(s) => ("service.add", service_json(s)),
        Command::EditService(s) => ("service.edit", service_json(s)),
        Command::DeleteService(k) => ("service.delete", key_json(k)),
        Command::AddServer(k, s) => ("server.add", server_json(k, s)),
        Command::EditServer(k, s) => ("server.edit", server_json(k, s)),
        Command::DeleteServer(k, a, p) => (
            "server.delete",
            json!({"service": key_json(k), "addr": a.to_string(), "port": p}),
        ),
        Command::Clear => ("clear", json!({})),
        Command::Zero(None) => ("zero", json!({})),
        Command::Zero(Some(k)) => ("zero", json!({"service": key_json(k)})),
        Command::SetTimeouts(t) => (
            "timeouts.set",
            json!({"tcp": t.tcp, "tcp_fin": t.tcp_fin, "udp": t.udp}),
        ),
        _ => return None,
    })
}

/// The socket path: `--socket PATH` / `--socket=PATH` (removed from `args`), else `RVS_SOCKET`,
/// else [`DEFAULT_SOCKET`].
pub fn take_socket_arg(args: &mut Vec<String>, env: Option<String>) -> Result<PathBuf, AdmError> {
    let mut found = None;
    let mut i = 0;
    while i < args.len() {
        if args[i] == "--socket" {
            if i + 1 >= args.len() {
                return Err(AdmError::usage("option `--socket' requires a value"));
            }
            found = Some(args.remove(i + 1));
            args.remove(i);
        } else if let Some(v) = args[i].strip_prefix("--socket=") {
            found = Some(v.to_string());
            args.remove(i);
        } else {
            i += 1;
        }
    }
    Ok(PathBuf::from(
        found
            .or(env.filter(|e| !e.is_empty()))
            .unwrap_or_else(|| DEFAULT_SOCKET.to_string()),
    ))
}

/// `rvsadm -h`.
pub fn usage(program: &str) -> String {
    let p = program;
    format!(
        "rvsadm {ver}: ipvsadm's language for the rvs director (over its control socket)\n\
Usage:\n  \
  {p} -A|E -t|u service-address [-s scheduler] [-p [timeout]] [-M netmask] [-b sched-flags]\n  \
  {p} -D -t|u service-address\n  \
  {p} -C\n  \
  {p} -R\n  \
  {p} -S [-n]\n  \
  {p} -a|e -t|u service-address -r server-address [options]\n  \
  {p} -d -t|u service-address -r server-address\n  \
  {p} -L|l [options]\n  \
  {p} -Z [-t|u service-address]\n  \
  {p} --set tcp tcpfin udp\n  \
  {p} -h\n\n\
Commands:\n\
Either long or short options are allowed.\n  \
  --add-service     -A        add virtual service with options\n  \
  --edit-service    -E        edit virtual service with options\n  \
  --delete-service  -D        delete virtual service\n  \
  --clear           -C        clear the whole table\n  \
  --restore         -R        restore rules from stdin\n  \
  --save            -S        save rules to stdout\n  \
  --add-server      -a        add real server with options\n  \
  --edit-server     -e        edit real server with options\n  \
  --delete-server   -d        delete real server\n  \
  --list            -L|-l     list the table\n  \
  --zero            -Z        zero counters in a service or all services\n  \
  --set tcp tcpfin udp        set connection timeout values\n  \
  --help            -h        display this help message\n\n\
Options:\n  \
  --tcp-service  -t service-address   service-address is host[:port]\n  \
  --udp-service  -u service-address   service-address is host[:port]\n  \
  --scheduler    -s scheduler         one of rr|wrr|lc|wlc|lblc|lblcr|dh|sh|sed|nq|mh|fo|ovf,\n  \
                                      the default scheduler is {DEFAULT_SCHEDULER}.\n  \
  --persistent   -p [timeout]         persistent service\n  \
  --netmask      -M netmask           persistent granularity mask\n  \
  --sched-flags  -b flags             scheduler flags (comma-separated)\n  \
  --real-server  -r server-address    server-address is host (and port)\n  \
  --gatewaying   -g                   gatewaying (direct routing) (default)\n  \
  --ipip         -i                   ipip encapsulation (tunneling)\n  \
  --masquerading -m                   masquerading (NAT)\n  \
  --weight       -w weight            capacity of real server\n  \
  --u-threshold  -x uthreshold        upper threshold of connections\n  \
  --l-threshold  -y lthreshold        lower threshold of connections\n  \
  --connection   -c                   output of current IPVS connections\n  \
  --timeout                           output of timeout (tcp tcpfin udp)\n  \
  --daemon                            output of daemon information\n  \
  --stats                             output of statistics information\n  \
  --rate                              output of rate information\n  \
  --exact                             expand numbers (display exact values)\n  \
  --thresholds                        output of thresholds information\n  \
  --nosort                            disable sorting output of service/server entries\n  \
  --sort                              does nothing, for backwards compatibility\n  \
  --numeric      -n                   numeric output of addresses and ports\n\n\
rvs options:\n  \
  --socket PATH                       control socket (env RVS_SOCKET, default {DEFAULT_SOCKET})\n  \
  --neighbours                        add the ARP state of each real server to -L\n\n\
The daemon says clearly what it does not support yet (schedulers, -i/-m, --set).\n",
        ver = env!("CARGO_PKG_VERSION"),
    )
}

const TRY_HELP: &str = "Try `rvsadm -h' or 'rvsadm --help' for more information.";

/// Run one `rvsadm` invocation. `args` excludes the program name. Returns the exit code.
pub fn run(
    args: &[String],
    env_socket: Option<String>,
    stdin: &mut dyn Read,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    match run_inner(args, env_socket, stdin, out) {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(err, "{}", e.msg);
            if e.msg.starts_with("unknown option") || e.msg == "no command specified" {
                let _ = writeln!(err, "{TRY_HELP}");
            }
            e.code
        }
    }
}

fn list_reply(v: Value) -> Result<ListReply, AdmError> {
    serde_json::from_value(v).map_err(|e| AdmError {
        msg: format!("unexpected list reply from the daemon: {e}"),
        code: EXIT_LIST,
    })
}

fn run_inner(
    args: &[String],
    env_socket: Option<String>,
    stdin: &mut dyn Read,
    out: &mut dyn Write,
) -> Result<(), AdmError> {
    let mut args = args.to_vec();
    let socket = take_socket_arg(&mut args, env_socket)?;
    let cmd = parse_args(&args, Names::Resolve)?;
    let write_out = |out: &mut dyn Write, s: &str| {
        out.write_all(s.as_bytes()).map_err(|e| AdmError {
            msg: format!("write: {e}"),
            code: EXIT_LIST,
        })
    };
    match &cmd {
        Command::Help => return write_out(out, &usage("rvsadm")),
        Command::Version => {
            let mut s = format!(
                "rvsadm v{} (rvs {}; ipvsadm v1.26 command language)\n",
                env!("CARGO_PKG_VERSION"),
                env!("RVS_GIT_COMMIT")
            );
            if let Ok(mut c) = Client::connect(&socket) {
                if let Ok(v) = c.call("version", json!({})) {
                    let _ = writeln!(
                        s,
                        "daemon at {}: rvs v{} ({})",
                        socket.display(),
                        v.get("version").and_then(Value::as_str).unwrap_or("?"),
                        v.get("commit").and_then(Value::as_str).unwrap_or("?")
                    );
                }
            }
            return write_out(out, &s);
        }
        Command::List { opts, .. } if opts.connections => {
            let mut client = Client::connect(&socket)?;
            let v = client.call("connections", json!({}))?;
            let conns: Vec<crate::api::ConnEntry> = v
                .get("connections")
                .cloned()
                .ok_or_else(|| "missing 'connections'".to_string())
                .and_then(|c| serde_json::from_value(c).map_err(|e| e.to_string()))
                .map_err(|e| AdmError {
                    msg: format!("unexpected connections reply from the daemon: {e}"),
                    code: EXIT_LIST,
                })?;
            return write_out(
                out,
                &format_connections(&conns, opts.numeric, opts.persistent_conn),
            );
        }
        Command::List { opts, .. } if opts.daemon => {
            // No connection synchronisation daemon exists: ipvsadm prints nothing then.
            return Ok(());
        }
        _ => {}
    }
    let mut client = Client::connect(&socket)?;
    if let Some((method, params)) = request_for(&cmd) {
        client.call(method, params)?;
        return Ok(());
    }
    match cmd {
        Command::List { service, opts } => {
            if opts.timeout {
                let v = client.call("timeouts", json!({}))?;
                let t: Timeouts = serde_json::from_value(v).map_err(|e| AdmError {
                    msg: format!("unexpected timeouts reply from the daemon: {e}"),
                    code: EXIT_LIST,
                })?;
                return write_out(out, &format_timeouts(&t));
            }
            let params = match &service {
                Some(k) => json!({"service": key_json(k)}),
                None => json!({}),
            };
            let list = |c: &mut Client| -> Result<ListReply, AdmError> {
                c.call("list", params.clone())
                    .map_err(|e| AdmError {
                        msg: e.msg,
                        code: EXIT_LIST,
                    })
                    .and_then(list_reply)
            };
            let mut reply = list(&mut client)?;
            if opts.rate {
                // The daemon keeps counters, not estimators: sample twice, one second apart.
                let t0 = std::time::Instant::now();
                std::thread::sleep(Duration::from_secs(1));
                let after = list(&mut client)?;
                reply = rates(&reply, &after, t0.elapsed().as_secs_f64());
            }
            write_out(out, &format_list(&reply, &opts, service.is_none()))
        }
        Command::Save { nosort, .. } => {
            let v = client.call("rules.save", json!({"sort": !nosort}))?;
            let text = v.get("text").and_then(Value::as_str).unwrap_or("");
            write_out(out, text)
        }
        Command::Restore => {
            let mut text = String::new();
            stdin.read_to_string(&mut text).map_err(|e| AdmError {
                msg: format!("cannot read rules from stdin: {e}"),
                code: EXIT_USAGE,
            })?;
            client.call("rules.restore", json!({ "text": text }))?;
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Counters, MacAddr, NeighState};
    use crate::control::{serve, Control, ListedServer};
    use crate::model::Model;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    fn p(line: &str) -> Result<Command, AdmError> {
        let args: Vec<&str> = line.split_whitespace().collect();
        parse_args(&args, Names::NumericHosts)
    }

    fn key(proto: Protocol, port: u16) -> ServiceKey {
        ServiceKey {
            proto,
            vip: Ipv4Addr::new(198, 18, 0, 100),
            port,
        }
    }

    fn rs(last: u8, port: u16, weight: u32) -> ServerSpec {
        ServerSpec {
            addr: Ipv4Addr::new(198, 18, 0, last),
            port,
            weight,
            forward: Forward::Dr,
            upper: 0,
            lower: 0,
        }
    }

    #[test]
    fn service_commands() {
        let Command::AddService(s) = p("-A -t 198.18.0.100:80 -s rr").unwrap() else {
            panic!()
        };
        assert_eq!(s.key, key(Protocol::Tcp, 80));
        assert_eq!(s.scheduler, SchedulerKind::Rr);
        assert_eq!(s.persistent, None);
        // ipvsadm's defaults: wlc, /32 mask.
        let Command::AddService(s) = p("--add-service --udp-service=198.18.0.100:53").unwrap()
        else {
            panic!()
        };
        assert_eq!(s.scheduler, SchedulerKind::Wlc);
        assert_eq!(s.key.proto, Protocol::Udp);
        assert_eq!(s.netmask, Ipv4Addr::BROADCAST);
        // -p without a value is 300; with a value, that value; -p followed by an option.
        let Command::EditService(s) = p("-E -t 198.18.0.100:0 -s wrr -p").unwrap() else {
            panic!()
        };
        assert_eq!(s.persistent, Some(300));
        let Command::AddService(s) =
            p("-A -t 198.18.0.100:443 -p 600 -M 255.255.255.0 -s rr -b sh-port,sh-fallback")
                .unwrap()
        else {
            panic!()
        };
        assert_eq!(s.persistent, Some(600));
        assert_eq!(s.netmask, Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(s.flags, vec!["sh-port", "sh-fallback"]);
        let Command::AddService(s) = p("-A -t 198.18.0.100:443 -p -s rr").unwrap() else {
            panic!()
        };
        assert_eq!(s.persistent, Some(300));
        let Command::AddService(s) = p("-At198.18.0.100:80 -srr -p60").unwrap() else {
            panic!()
        };
        assert_eq!(
            (s.key.port, s.scheduler, s.persistent),
            (80, SchedulerKind::Rr, Some(60))
        );
        assert_eq!(
            p("-D -t 198.18.0.100:80").unwrap(),
            Command::DeleteService(key(Protocol::Tcp, 80))
        );
        // Port names come from /etc/services when it has them.
        if service_port("http", Protocol::Tcp) == Some(80) {
            assert_eq!(
                p("-D -t 198.18.0.100:http").unwrap(),
                Command::DeleteService(key(Protocol::Tcp, 80))
            );
        }
    }

    #[test]
    fn server_commands() {
        assert_eq!(
            p("-a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 1").unwrap(),
            Command::AddServer(key(Protocol::Tcp, 80), rs(11, 80, 1))
        );
        // No port: the service port; no -w: weight 1; no method: -g.
        assert_eq!(
            p("-a -t 198.18.0.100:80 -r 198.18.0.12").unwrap(),
            Command::AddServer(key(Protocol::Tcp, 80), rs(12, 80, 1))
        );
        // Direct routing forces the service port, as ipvsadm does.
        assert_eq!(
            p("-a -t 198.18.0.100:80 -r 198.18.0.12:8080 -w 0").unwrap(),
            Command::AddServer(key(Protocol::Tcp, 80), rs(12, 80, 0))
        );
        let Command::AddServer(_, s) = p("-a -t 198.18.0.100:80 -r 198.18.0.12:8080 -m").unwrap()
        else {
            panic!()
        };
        assert_eq!((s.forward, s.port), (Forward::Masq, 8080));
        let Command::EditServer(_, s) =
            p("-e -t 198.18.0.100:80 -r 198.18.0.12 -i -w 3 -x 100 -y 10").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (s.forward, s.weight, s.upper, s.lower),
            (Forward::Tunnel, 3, 100, 10)
        );
        assert_eq!(
            p("-d -t 198.18.0.100:80 -r 198.18.0.12").unwrap(),
            Command::DeleteServer(key(Protocol::Tcp, 80), Ipv4Addr::new(198, 18, 0, 12), 80)
        );
        assert_eq!(
            p("--delete-server --tcp-service 198.18.0.100:80 --real-server 198.18.0.12:80")
                .unwrap(),
            Command::DeleteServer(key(Protocol::Tcp, 80), Ipv4Addr::new(198, 18, 0, 12), 80)
        );
    }

    #[test]
    fn list_and_other_commands() {
        let list = |l: &str| match p(l).unwrap() {
            Command::List { service, opts } => (service, opts),
            other => panic!("{other:?}"),
        };
        let (s, o) = list("-L -n");
        assert!(s.is_none() && o.numeric && !o.stats);
        let (_, o) = list("-ln");
        assert!(o.numeric);
        let (_, o) = list("-Ln --stats --exact");
        assert!(o.numeric && o.stats && o.exact);
        let (_, o) = list("-lnc");
        assert!(o.numeric && o.connections);
        let (_, o) = list("-L --rate --nosort --sort");
        assert!(o.rate && o.nosort);
        let (_, o) = list("-L --timeout");
        assert!(o.timeout);
        let (_, o) = list("-L -n -c --persistent-conn");
        assert!(o.connections && o.persistent_conn);
        let (_, o) = list("-L -n --persistent-conn");
        assert!(o.persistent_conn && !o.connections);
        let (_, o) = list("-L -n --thresholds --neighbours");
        assert!(o.thresholds && o.neighbours);
        let (s, _) = list("-L -n -t 198.18.0.100:80");
        assert_eq!(s, Some(key(Protocol::Tcp, 80)));
        assert_eq!(
            parse_args::<&str>(&[], Names::NumericHosts).unwrap(),
            Command::List {
                service: None,
                opts: ListOpts::default()
            }
        );
        assert_eq!(p("-C").unwrap(), Command::Clear);
        assert_eq!(p("--clear").unwrap(), Command::Clear);
        assert_eq!(p("-Z").unwrap(), Command::Zero(None));
        assert_eq!(
            p("-Z -u 198.18.0.100:53").unwrap(),
            Command::Zero(Some(key(Protocol::Udp, 53)))
        );
        assert_eq!(
            p("-S -n").unwrap(),
            Command::Save {
                numeric: true,
                nosort: false
            }
        );
        assert_eq!(p("-R").unwrap(), Command::Restore);
        assert_eq!(
            p("--set 900 120 300").unwrap(),
            Command::SetTimeouts(Timeouts {
                tcp: 900,
                tcp_fin: 120,
                udp: 300
            })
        );
        assert_eq!(p("-v").unwrap(), Command::Version);
        assert_eq!(p("--version").unwrap(), Command::Version);
        assert_eq!(p("-h").unwrap(), Command::Help);
    }

    #[test]
    fn command_line_errors_follow_ipvsadm() {
        let e = |l: &str| p(l).unwrap_err();
        let cases = [
            (
                "-A -t 198.18.0.100:80 -w 1",
                "Illegal 'weight' option with the 'add-service' command",
            ),
            (
                "-a -t 198.18.0.100:80",
                "You need to supply the 'real-server' option for the 'add-server' command",
            ),
            (
                "-A -s rr",
                "You need to supply the 'service-address' option for the 'add-service' command",
            ),
            ("-A -D -t 198.18.0.100:80", "multiple commands specified"),
            (
                "-A -t 198.18.0.100:80 -s rr -s wrr",
                "multiple 'scheduler' options specified",
            ),
            (
                "-L -c --timeout",
                "The option 'timeout' conflicts with the 'connection' option in the 'list' command",
            ),
            ("-L -c --stats", "options conflicts in the list command"),
            (
                "-A -t 198.18.0.100:0 -s rr",
                "Zero port specified for non-persistent service",
            ),
            (
                "-A -t 198.18.0.300:80",
                "illegal virtual server address[:port] specified",
            ),
            (
                "-A -t 198.18.0.100:99999",
                "illegal virtual server address[:port] specified",
            ),
            (
                "-a -t 198.18.0.100:80 -r x.y",
                "illegal real server address[:port] specified",
            ),
            (
                "-a -t 198.18.0.100:80 -r 198.18.0.11 -w 65536",
                "illegal weight specified",
            ),
            (
                "-a -t 198.18.0.100:80 -r 198.18.0.11 -x -1",
                "illegal u_threshold specified",
            ),
            (
                "-a -t 198.18.0.100:80 -r 198.18.0.11 -y z",
                "illegal l_threshold specified",
            ),
            (
                "-A -t 198.18.0.100:80 -p 0",
                "invalid timeout value `0' specified",
            ),
            (
                "-A -t 198.18.0.100:80 -M 255.0.0.300",
                "illegal virtual server persistent mask specified",
            ),
            ("--set 1 2", "--set option requires 3 timeout values"),
            ("-L extra", "unexpected argument extra"),
            ("-L --bogus", "unknown option `--bogus'"),
            ("-Q", "unknown option `-Q'"),
            ("-n", "no command specified"),
            ("-A -t", "option `-t' requires a value"),
            ("-A -f 1", "firewall-mark services (-f) are not supported"),
            ("-A -t [::1]:80", "IPv6 addresses are not supported"),
            (
                "-A -t 198.18.0.100:53 --ops",
                "one-packet scheduling (-o/--ops) is not supported yet",
            ),
            (
                "--start-daemon master",
                "connection synchronisation daemons are not supported",
            ),
            ("-L --daemon=1", "option `--daemon' does not take a value"),
        ];
        for (line, want) in cases {
            let err = e(line);
            assert!(
                err.msg.starts_with(want),
                "{line}: got {:?}, want {want}",
                err.msg
            );
            assert_eq!(err.code, EXIT_USAGE, "{line}");
        }
        let err = e("-A -t 198.18.0.100:80 -s nosuch");
        assert_eq!(err.msg, "Scheduler or persistence engine not found");
        assert_eq!(err.code, EXIT_REFUSED);
    }

    #[test]
    fn largenum_matches_ipvsadm() {
        assert_eq!(largenum(0, false), "        0");
        assert_eq!(largenum(99_999_999, false), " 99999999");
        assert_eq!(largenum(100_000_000, false), "  100000K");
        assert_eq!(largenum(1_500_000_000, false), "    1500M");
        assert_eq!(largenum(150_000_000_000, false), "     150G");
        assert_eq!(largenum(200_000_000_000_000, false), "     200T");
        assert_eq!(largenum(5, true), "        5");
        assert_eq!(largenum(1_234_567_890, true), " 1234567890");
    }

    fn reply() -> ListReply {
        let server = |last: u8, w: u32, a: u64, i: u64, n: NeighState| ListedServer {
            addr: Ipv4Addr::new(198, 18, 0, last),
            port: 80,
            weight: w,
            forward: Forward::Dr,
            upper: 0,
            lower: 0,
            active_conns: a,
            inactive_conns: i,
            persistent_conns: a + i,
            counters: Counters {
                conns: 12,
                packets: 345,
                bytes: 123_456_789,
            },
            neighbour: n,
        };
        ListReply {
            services: vec![
                ListedService {
                    proto: Protocol::Udp,
                    vip: Ipv4Addr::new(198, 18, 0, 100),
                    port: 53,
                    scheduler: SchedulerKind::Wrr,
                    persistent: Some(300),
                    netmask: Ipv4Addr::new(255, 255, 255, 0),
                    flags: vec![],
                    counters: Counters::default(),
                    servers: vec![],
                },
                ListedService {
                    proto: Protocol::Tcp,
                    vip: Ipv4Addr::new(198, 18, 0, 100),
                    port: 80,
                    scheduler: SchedulerKind::Rr,
                    persistent: None,
                    netmask: Ipv4Addr::BROADCAST,
                    flags: vec![],
                    counters: Counters {
                        conns: 24,
                        packets: 690,
                        bytes: 246_913_578,
                    },
                    servers: vec![
                        server(12, 1, 0, 0, NeighState::Incomplete),
                        server(
                            11,
                            1,
                            2,
                            3,
                            NeighState::Static {
                                mac: MacAddr([2, 0, 0, 0, 0, 0x11]),
                            },
                        ),
                    ],
                },
            ],
        }
    }

    #[test]
    fn persistent_conn_layout_matches_ipvsadm() {
        let opts = ListOpts {
            numeric: true,
            persistent_conn: true,
            ..Default::default()
        };
        let want = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn 
  -> RemoteAddress:Port
TCP  198.18.0.100:80 rr
  -> 198.18.0.11:80               1         5           2          3         
  -> 198.18.0.12:80               1         0           0          0         
UDP  198.18.0.100:53 wrr persistent 300 mask 255.255.255.0
";
        assert_eq!(format_list(&reply(), &opts, true), want);
    }

    #[test]
    fn list_layout_matches_ipvsadm() {
        let opts = ListOpts {
            numeric: true,
            ..Default::default()
        };
        let want = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  198.18.0.100:80 rr
  -> 198.18.0.11:80               Route   1      2          3         
  -> 198.18.0.12:80               Route   1      0          0         
UDP  198.18.0.100:53 wrr persistent 300 mask 255.255.255.0
";
        assert_eq!(format_list(&reply(), &opts, true), want);
        // --nosort keeps the daemon's order; one service: no banner.
        let nosort = ListOpts {
            nosort: true,
            ..opts
        };
        let out = format_list(&reply(), &nosort, false);
        assert!(out.starts_with("Prot LocalAddress:Port Scheduler Flags\n"));
        assert!(out.find("UDP").unwrap() < out.find("TCP").unwrap());
        assert!(out.find(".12:80").unwrap() < out.find(".11:80").unwrap());
    }

    #[test]
    fn stats_layout_matches_ipvsadm() {
        let opts = ListOpts {
            numeric: true,
            stats: true,
            ..Default::default()
        };
        let want = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
TCP  198.18.0.100:80                    24      690        0  246913K        0
  -> 198.18.0.11:80                     12      345        0  123456K        0
  -> 198.18.0.12:80                     12      345        0  123456K        0
UDP  198.18.0.100:53                     0        0        0        0        0
";
        assert_eq!(format_list(&reply(), &opts, true), want);
        let exact = ListOpts {
            exact: true,
            ..opts
        };
        let out = format_list(&reply(), &exact, true);
        assert!(
            out.contains(
                "TCP  198.18.0.100:80                    24      690        0 246913578        0\n"
            ),
            "{out}"
        );
    }

    #[test]
    fn connection_listing_layout_matches_ipvsadm() {
        use crate::api::ConnEntry;
        let conn =
            |proto, expire_s, state: &str, c: [u8; 4], cport, vport, rport, template| ConnEntry {
                proto,
                expire_s,
                state: state.into(),
                client: Ipv4Addr::from(c),
                cport,
                vip: Ipv4Addr::new(198, 18, 0, 100),
                vport,
                rs: Ipv4Addr::new(198, 18, 0, 11),
                rport,
                template,
            };
        let conns = vec![
            conn(
                Protocol::Tcp,
                898,
                "ESTABLISHED",
                [198, 18, 0, 10],
                41322,
                80,
                80,
                false,
            ),
            conn(Protocol::Tcp, 300, "NONE", [198, 18, 0, 10], 0, 0, 0, true),
            conn(
                Protocol::Udp,
                5,
                "UDP",
                [198, 18, 0, 10],
                5353,
                53,
                53,
                false,
            ),
            conn(
                Protocol::Tcp,
                3599,
                "SYN_RECV",
                [198, 18, 1, 200],
                65535,
                443,
                443,
                false,
            ),
        ];
        assert_eq!(
            format_connections(&conns, true, false),
            "IPVS connection entries\n\
             pro expire state       source             virtual            destination\n\
             TCP 14:58  ESTABLISHED 198.18.0.10:41322  198.18.0.100:80    198.18.0.11:80\n\
             TCP 05:00  NONE        198.18.0.10:0      198.18.0.100:0     198.18.0.11:0\n\
             UDP 00:05  UDP         198.18.0.10:5353   198.18.0.100:53    198.18.0.11:53\n\
             TCP 59:59  SYN_RECV    198.18.1.200:65535 198.18.0.100:443   198.18.0.11:443\n"
        );
        assert_eq!(
            format_connections(&[], true, true),
            "IPVS connection entries\n\
             pro expire state       source             virtual            destination        \
             pe name          pe_data\n"
        );
        let named = format_connections(&conns[..1], false, false);
        assert!(
            named.ends_with("198.18.0.100:http  198.18.0.11:http\n"),
            "{named}"
        );
    }

    #[test]
    fn rate_thresholds_neighbours_timeouts_layouts() {
        let mut before = reply();
        for s in &mut before.services {
            s.counters = Counters::default();
            for r in &mut s.servers {
                r.counters = Counters::default();
            }
        }
        let r = rates(&before, &reply(), 2.0);
        let opts = ListOpts {
            numeric: true,
            rate: true,
            ..Default::default()
        };
        let out = format_list(&r, &opts, false);
        assert!(out.starts_with("Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS\n  -> RemoteAddress:Port\n"), "{out}");
        assert!(
            out.contains(
                "TCP  198.18.0.100:80                    12      345        0  123456K        0\n"
            ),
            "{out}"
        );
        assert!(
            out.contains(
                "  -> 198.18.0.11:80                      6      172        0 61728394        0\n"
            ) || out.contains(
                "  -> 198.18.0.11:80                      6      173        0 61728395        0\n"
            ),
            "{out}"
        );
        let th = ListOpts {
            numeric: true,
            thresholds: true,
            ..Default::default()
        };
        let out = format_list(&reply(), &th, false);
        assert!(
            out.contains(
                "  -> 198.18.0.11:80               0          0          2          3         \n"
            ),
            "{out}"
        );
        let nb = ListOpts {
            numeric: true,
            neighbours: true,
            ..Default::default()
        };
        let out = format_list(&reply(), &nb, false);
        assert!(
            out.contains("Route   1      2          3          static 02:00:00:00:00:11\n"),
            "{out}"
        );
        assert!(out.contains("0          incomplete\n"), "{out}");
        assert_eq!(
            format_timeouts(&Timeouts::default()),
            "Timeout (tcp tcpfin udp): 900 120 300\n"
        );
    }

    #[test]
    fn services_file_parsing() {
        let t = parse_services("http  80/tcp  www # web\nhttp 80/udp\n# x\nbad\nfoo x/tcp\n");
        assert_eq!(t.get(&("www".into(), "tcp".into())), Some(&80));
        assert_eq!(t.get(&("http".into(), "udp".into())), Some(&80));
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn socket_argument_and_env() {
        let mut a = vec![
            "-L".to_string(),
            "--socket".into(),
            "/x".into(),
            "-n".into(),
        ];
        assert_eq!(
            take_socket_arg(&mut a, Some("/env".into())).unwrap(),
            PathBuf::from("/x")
        );
        assert_eq!(a, vec!["-L", "-n"]);
        let mut a = vec!["--socket=/y".to_string()];
        assert_eq!(take_socket_arg(&mut a, None).unwrap(), PathBuf::from("/y"));
        let mut a = vec![];
        assert_eq!(
            take_socket_arg(&mut a, Some("/env".into())).unwrap(),
            PathBuf::from("/env")
        );
        assert_eq!(
            take_socket_arg(&mut a, None).unwrap(),
            PathBuf::from(DEFAULT_SOCKET)
        );
        assert!(take_socket_arg(&mut vec!["--socket".to_string()], None).is_err());
    }

    /// Run rvsadm against a real control socket served by a Control over a fake dataplane.
    #[test]
    fn end_to_end_over_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("control.sock");
        let dp = Arc::new(crate::control::testing::FakeDataplane::default());
        let control = Arc::new(Control::new(Model::new(8, 8), dp.clone()));
        let stop = Arc::new(AtomicBool::new(false));
        let h = serve(&sock, control.clone(), stop.clone()).unwrap();
        let env = Some(sock.display().to_string());
        let rvsadm = |line: &str, input: &str| -> (i32, String, String) {
            let args: Vec<String> = line.split_whitespace().map(str::to_string).collect();
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let code = run(
                &args,
                env.clone(),
                &mut input.as_bytes(),
                &mut out,
                &mut err,
            );
            (
                code,
                String::from_utf8(out).unwrap(),
                String::from_utf8(err).unwrap(),
            )
        };
        assert_eq!(rvsadm("-A -t 198.18.0.100:80 -s rr", "").0, 0);
        assert_eq!(
            rvsadm("-a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 1", "").0,
            0
        );
        assert_eq!(rvsadm("-a -t 198.18.0.100:80 -r 198.18.0.12 -w 1", "").0, 0);
        let (code, out, _) = rvsadm("-Ln", "");
        assert_eq!(code, 0);
        assert_eq!(
            out,
            "IP Virtual Server version 1.2.1 (size=4096)\n\
             Prot LocalAddress:Port Scheduler Flags\n  \
             -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
             TCP  198.18.0.100:80 rr\n  \
             -> 198.18.0.11:80               Route   1      2          3         \n  \
             -> 198.18.0.12:80               Route   1      2          3         \n"
        );
        let (code, _, err) = rvsadm("-A -t 198.18.0.100:80 -s rr", "");
        assert_eq!(
            (code, err.as_str()),
            (EXIT_REFUSED, "Service already exists\n")
        );
        // ipvsadm's default scheduler, wlc
        let (code, _, err) = rvsadm("-A -t 198.18.0.101:80", "");
        assert_eq!(code, 0, "{err}");
        assert_eq!(rvsadm("-D -t 198.18.0.101:80", "").0, 0);
        let (code, _, err) = rvsadm("-a -t 198.18.0.100:80 -r 198.18.0.13 -m", "");
        assert_eq!(code, EXIT_REFUSED);
        assert!(
            err.contains("masquerading (-m) is not supported yet"),
            "{err}"
        );
        assert_eq!(rvsadm("--set 900 120 300", "").0, 0);
        assert_eq!(
            *dp.timeouts.lock().unwrap(),
            Some(Timeouts {
                tcp: 900,
                tcp_fin: 120,
                udp: 300
            })
        );
        let (code, out, _) = rvsadm("-S -n", "");
        assert_eq!(code, 0);
        assert_eq!(
            out,
            "-A -t 198.18.0.100:80 -s rr\n\
             -a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 1\n\
             -a -t 198.18.0.100:80 -r 198.18.0.12:80 -g -w 1\n"
        );
        assert_eq!(rvsadm("-C", "").0, 0);
        assert_eq!(rvsadm("-R", &out).0, 0);
        assert_eq!(rvsadm("-S", "").1, out);
        let (code, _, err) = rvsadm("-R", "-A -t 198.18.0.102:80 -s rr\n-a -t 1.2.3.4:80 -r x\n");
        assert_eq!(code, EXIT_USAGE);
        assert!(err.starts_with("line 2:"), "{err}");
        assert_eq!(rvsadm("-d -t 198.18.0.100:80 -r 198.18.0.12", "").0, 0);
        assert_eq!(rvsadm("-e -t 198.18.0.100:80 -r 198.18.0.11 -w 7", "").0, 0);
        assert_eq!(control.model().services()[0].servers[0].spec.weight, 7);
        let (code, _, err) = rvsadm("-d -t 198.18.0.100:80 -r 198.18.0.12", "");
        assert_eq!(
            (code, err.as_str()),
            (EXIT_REFUSED, "No such destination\n")
        );
        let (code, out, _) = rvsadm("-L -n --stats -t 198.18.0.100:80", "");
        assert_eq!(code, 0);
        assert!(
            out.starts_with("Prot LocalAddress:Port               Conns"),
            "{out}"
        );
        let (code, _, err) = rvsadm("-L -n -t 198.18.0.1:80", "");
        assert_eq!((code, err.as_str()), (EXIT_LIST, "No such service\n"));
        let (code, out, _) = rvsadm("-L --timeout", "");
        assert_eq!(
            (code, out.as_str()),
            (0, "Timeout (tcp tcpfin udp): 900 120 300\n")
        );
        *dp.conns.lock().unwrap() = vec![crate::api::ConnEntry {
            proto: Protocol::Tcp,
            expire_s: 898,
            state: "ESTABLISHED".into(),
            client: Ipv4Addr::new(198, 18, 0, 10),
            cport: 41322,
            vip: Ipv4Addr::new(198, 18, 0, 100),
            vport: 80,
            rs: Ipv4Addr::new(198, 18, 0, 11),
            rport: 80,
            template: false,
        }];
        let want = "IPVS connection entries\n\
                    pro expire state       source             virtual            destination\n\
                    TCP 14:58  ESTABLISHED 198.18.0.10:41322  198.18.0.100:80    198.18.0.11:80\n";
        assert_eq!(rvsadm("-L -n -c", ""), (0, want.to_string(), String::new()));
        assert_eq!(rvsadm("-lnc", ""), (0, want.to_string(), String::new()));
        let (code, out, _) = rvsadm("-L -c", "");
        assert_eq!(code, 0);
        assert!(out.contains("198.18.0.100:http "), "{out}");
        assert_eq!(rvsadm("--set 0 60 0", "").0, 0);
        let (code, out, _) = rvsadm("-L --timeout", "");
        assert_eq!(
            (code, out.as_str()),
            (0, "Timeout (tcp tcpfin udp): 900 60 300\n")
        );
        assert_eq!(rvsadm("--set 1000 0 20", "").0, 0);
        let (_, out, _) = rvsadm("-L --timeout", "");
        assert_eq!(out, "Timeout (tcp tcpfin udp): 1000 60 20\n");
        assert_eq!(rvsadm("-Z", "").0, 0);
        assert_eq!(rvsadm("-Z -t 198.18.0.100:80", "").0, 0);
        assert_eq!(dp.zeroed.lock().unwrap().len(), 2);
        let (code, out, _) = rvsadm("-v", "");
        assert_eq!(code, 0);
        assert!(out.contains("daemon at"), "{out}");
        let (code, out, _) = rvsadm("-h", "");
        assert_eq!(code, 0);
        assert!(out.contains("--add-service"));
        let (code, _, err) = rvsadm("-L --bogus", "");
        assert_eq!(code, EXIT_USAGE);
        assert!(err.contains("Try `rvsadm -h'"), "{err}");
        stop.store(true, Ordering::Relaxed);
        h.join().unwrap();
        // Daemon gone: a clear message naming the socket.
        let (code, _, err) = rvsadm("-L -n", "");
        assert_eq!(code, EXIT_USAGE);
        assert!(
            err.contains(&sock.display().to_string()) && err.contains("cannot reach"),
            "{err}"
        );
    }
}
