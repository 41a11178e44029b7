//! ipvsadm's command-line grammar: combined short flags such as `-ln`, long options with or
//! without `=`, `-p` with an optional timeout, into a [`Command`], with ipvsadm's messages for
//! illegal option/command combinations. `rvsadm` parses its command line with it, and the
//! daemon reads `-S` rules files (one command line each) with it, see [`crate::rules`].

use crate::proto::{DEFAULT_PERSISTENT_TIMEOUT, DEFAULT_SCHEDULER, MAX_TIMEOUT};
use rvs_dataplane::model::{
    parse_flags, Forward, Protocol, SchedulerKind, ServerSpec, ServiceKey, ServiceSpec,
    StaticNeighbour, Timeouts,
};
use rvs_dataplane::report::MacAddr;
use std::collections::HashMap;
use std::net::Ipv4Addr;

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
    /// A command-line error (exit code [`EXIT_USAGE`]).
    pub fn usage_error(msg: impl Into<String>) -> Self {
        AdmError {
            msg: msg.into(),
            code: EXIT_USAGE,
        }
    }
}

impl std::error::Error for AdmError {}

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
    /// rvs extension: health columns (state, time in state, last error) and sorry servers.
    pub health: bool,
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
    /// rvs extension: `--set-neighbour ADDR MAC`, add or replace a static neighbour.
    SetNeighbour(StaticNeighbour),
    /// rvs extension: `--delete-neighbour ADDR`.
    DeleteNeighbour(Ipv4Addr),
    /// rvs extension: `--list-neighbours`.
    ListNeighbours,
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
    SetNeigh,
    DelNeigh,
    ListNeigh,
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
            Cmd::SetNeigh => "set-neighbour",
            Cmd::DelNeigh => "delete-neighbour",
            Cmd::ListNeigh => "list-neighbours",
        }
    }
}

/// Options in the order of ipvsadm's `optnames` (plus `sched-flags` and our `neighbours`,
/// `health`).
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
    Health,
}

const OPT_COUNT: usize = 22;

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
            Opt::Health => "health",
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
        Opt::Health,
    ];
}

/// ipvsadm's `commands_v_options` table: '+' compulsory, 'x' illegal, '1' exclusive, ' ' optional.
/// Columns follow [`Opt`]'s order.
fn legality(cmd: Cmd) -> &'static [u8; OPT_COUNT] {
    //                       n  c  sv s  p  M  r  fw w  x  y  to dm st rt th pc ns ex b  nb he
    match cmd {
        Cmd::Add | Cmd::Edit => b"xx+   xxxxxxxxxxxxx xx",
        Cmd::Del => b"xx+xxxxxxxxxxxxxxxxxxx",
        Cmd::Flush
        | Cmd::Timeout
        | Cmd::Restore
        | Cmd::SetNeigh
        | Cmd::DelNeigh
        | Cmd::ListNeigh => b"xxxxxxxxxxxxxxxxxxxxxx",
        Cmd::List => b" 11xxxxxxxx11      x  ",
        Cmd::AddDest | Cmd::EditDest => b"xx+xxx+    xxxxxxxxxxx",
        Cmd::DelDest => b"xx+xxx+xxxxxxxxxxxxxxx",
        Cmd::Save => b" xxxxxxxxxxxxxxxx xxxx",
        Cmd::Zero => b"xx xxxxxxxxxxxxxxxxxxx",
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
            return Err(AdmError::usage_error("multiple commands specified"));
        }
        self.cmd = Some(c);
        Ok(())
    }
    fn set_opt(&mut self, o: Opt) -> Result<(), AdmError> {
        if self.seen[o as usize] {
            return Err(AdmError::usage_error(format!(
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
        't' | 'u' | 's' | 'M' | 'r' | 'w' | 'x' | 'y' | 'b' => Spec::Val(c),
        'f' => NO_FWMARK,
        'p' => Spec::Persistent,
        'g' | 'i' | 'm' | 'n' | 'c' | 'X' => Spec::Flag(c),
        '6' => NO_IPV6,
        'o' => NO_OPS,
        _ => return None,
    })
}

const NO_IPV6: Spec = Spec::Unsupported("IPv6 services (-6) are not supported");
const NO_OPS: Spec = Spec::Unsupported("one-packet scheduling (-o/--ops) is not supported yet");
const NO_SYNCD: Spec = Spec::Unsupported(
    "connection synchronisation daemons are not started by rvsadm: connection sync is rvs's \
     [sync] section (docs/ha.md); rvsadm -L --daemon shows it",
);
const NO_FWMARK: Spec = Spec::Unsupported(
    "firewall-mark services (-f) are not supported: rvs matches services by protocol, address \
     and port (-t/-u)",
);
const NO_TUN: Spec = Spec::Unsupported("tunnel options are not supported yet");

/// Every long option: its name and meaning (`rvsadm -h` documents each one it accepts, a
/// test checks).
const LONG: &[(&str, Spec)] = &[
    ("add-service", Spec::Cmd(Cmd::Add)),
    ("edit-service", Spec::Cmd(Cmd::Edit)),
    ("delete-service", Spec::Cmd(Cmd::Del)),
    ("add-server", Spec::Cmd(Cmd::AddDest)),
    ("edit-server", Spec::Cmd(Cmd::EditDest)),
    ("delete-server", Spec::Cmd(Cmd::DelDest)),
    ("clear", Spec::Cmd(Cmd::Flush)),
    ("list", Spec::Cmd(Cmd::List)),
    ("zero", Spec::Cmd(Cmd::Zero)),
    ("restore", Spec::Cmd(Cmd::Restore)),
    ("save", Spec::Cmd(Cmd::Save)),
    ("set", Spec::Cmd(Cmd::Timeout)),
    ("set-neighbour", Spec::Cmd(Cmd::SetNeigh)),
    ("set-neighbor", Spec::Cmd(Cmd::SetNeigh)),
    ("delete-neighbour", Spec::Cmd(Cmd::DelNeigh)),
    ("delete-neighbor", Spec::Cmd(Cmd::DelNeigh)),
    ("list-neighbours", Spec::Cmd(Cmd::ListNeigh)),
    ("list-neighbors", Spec::Cmd(Cmd::ListNeigh)),
    ("help", Spec::Help),
    ("version", Spec::Version),
    ("tcp-service", Spec::Val('t')),
    ("udp-service", Spec::Val('u')),
    ("fwmark-service", NO_FWMARK),
    ("scheduler", Spec::Val('s')),
    ("netmask", Spec::Val('M')),
    ("real-server", Spec::Val('r')),
    ("weight", Spec::Val('w')),
    ("u-threshold", Spec::Val('x')),
    ("l-threshold", Spec::Val('y')),
    ("sched-flags", Spec::Val('b')),
    ("persistent", Spec::Persistent),
    ("gatewaying", Spec::Flag('g')),
    ("ipip", Spec::Flag('i')),
    ("masquerading", Spec::Flag('m')),
    ("numeric", Spec::Flag('n')),
    ("connection", Spec::Flag('c')),
    ("exact", Spec::Flag('X')),
    ("timeout", Spec::Flag('T')),
    ("daemon", Spec::Flag('Y')),
    ("stats", Spec::Flag('1')),
    ("rate", Spec::Flag('2')),
    ("thresholds", Spec::Flag('3')),
    ("persistent-conn", Spec::Flag('4')),
    ("nosort", Spec::Flag('5')),
    ("sort", Spec::Flag('7')),
    ("neighbours", Spec::Flag('N')),
    ("neighbors", Spec::Flag('N')),
    ("health", Spec::Flag('H')),
    ("ipv6", NO_IPV6),
    ("ops", NO_OPS),
    (
        "pe",
        Spec::Unsupported("persistence engines (--pe) are not supported yet"),
    ),
    ("start-daemon", NO_SYNCD),
    ("stop-daemon", NO_SYNCD),
    ("mcast-interface", NO_SYNCD),
    ("syncid", NO_SYNCD),
    ("mcast-group", NO_SYNCD),
    ("mcast-port", NO_SYNCD),
    ("mcast-ttl", NO_SYNCD),
    ("sync-maxlen", NO_SYNCD),
    ("tun-type", NO_TUN),
    ("tun-port", NO_TUN),
    ("tun-nocsum", NO_TUN),
    ("tun-csum", NO_TUN),
    ("tun-remcsum", NO_TUN),
];

fn long_spec(name: &str) -> Option<Spec> {
    LONG.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

/// The long options the parser accepts (not those it names as unsupported), for `-h`.
pub fn accepted_long_options() -> impl Iterator<Item = &'static str> {
    LONG.iter()
        .filter(|(_, s)| !matches!(s, Spec::Unsupported(_)))
        .map(|(n, _)| *n)
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
                .ok_or_else(|| AdmError::usage_error(format!("unknown option `--{name}'")))?;
            match spec {
                Spec::Val(c) => {
                    let v = match inline {
                        Some(v) => v,
                        None => {
                            let v =
                                args.get(i).map(|s| s.as_ref().to_string()).ok_or_else(|| {
                                    AdmError::usage_error(format!(
                                        "option `--{name}' requires a value"
                                    ))
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
                        return Err(AdmError::usage_error(format!(
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
                    .ok_or_else(|| AdmError::usage_error(format!("unknown option `-{c}'")))?;
                match spec {
                    Spec::Val(c) => {
                        let v = if k < cluster.len() {
                            let v: String = cluster[k..].iter().collect();
                            k = cluster.len();
                            v
                        } else {
                            let v =
                                args.get(i).map(|s| s.as_ref().to_string()).ok_or_else(|| {
                                    AdmError::usage_error(format!("option `-{c}' requires a value"))
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
        .ok_or_else(|| AdmError::usage_error("no command specified"))?;
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
        Spec::Unsupported(msg) => Err(AdmError::usage_error(msg)),
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
                'H' => Opt::Health,
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
                return Err(AdmError::usage_error(format!(
                    "You need to supply the '{}' option for the '{}' command",
                    opt.name(),
                    cmd.name()
                )));
            }
            continue;
        }
        match rule {
            b'x' => {
                return Err(AdmError::usage_error(format!(
                    "Illegal '{}' option with the '{}' command",
                    opt.name(),
                    cmd.name()
                )))
            }
            b'1' => {
                if let Some(last) = exclusive {
                    return Err(AdmError::usage_error(format!(
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
            return Err(AdmError::usage_error(
                "options conflicts in the list command",
            ));
        }
    }
    if !matches!(cmd, Cmd::Timeout | Cmd::SetNeigh | Cmd::DelNeigh) {
        if let Some(p) = raw.positional.first() {
            return Err(AdmError::usage_error(format!("unexpected argument {p}")));
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
        .ok_or_else(|| AdmError::usage_error(format!("invalid timeout value `{s}' specified")))
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
        AdmError::usage_error(format!("illegal {kind} address[:port] specified"))
    } else {
        AdmError::usage_error(detail)
    }
}

/// A static neighbour's address: a numeric unicast IPv4 address (never resolved: a neighbour
/// is named by the address the director sends to).
fn neighbour_addr(s: &str) -> Result<Ipv4Addr, AdmError> {
    let a: Ipv4Addr = s
        .parse()
        .map_err(|_| AdmError::usage_error(format!("illegal neighbour address `{s}' specified")))?;
    if a.is_unspecified() || a.is_broadcast() || a.is_multicast() {
        return Err(AdmError::usage_error(format!(
            "illegal neighbour address `{s}' specified: not a unicast address"
        )));
    }
    Ok(a)
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
    let need_key = || key.ok_or_else(|| AdmError::usage_error("missing service address"));
    Ok(match cmd {
        Cmd::Add | Cmd::Edit => {
            let key = need_key()?;
            let persistent = match &raw.persistent {
                None => None,
                Some(None) => Some(DEFAULT_PERSISTENT_TIMEOUT),
                Some(Some(t)) => Some(parse_timeout(t, 1)?),
            };
            if key.port == 0 && persistent.is_none() {
                return Err(AdmError::usage_error(
                    "Zero port specified for non-persistent service",
                ));
            }
            let netmask = match &raw.netmask {
                None => Ipv4Addr::BROADCAST,
                Some(m) => m.parse::<Ipv4Addr>().map_err(|_| {
                    AdmError::usage_error("illegal virtual server persistent mask specified")
                })?,
            };
            let sched = raw.scheduler.as_deref().unwrap_or(DEFAULT_SCHEDULER);
            let scheduler = sched.parse::<SchedulerKind>().map_err(|_| AdmError {
                msg: "Scheduler or persistence engine not found".to_string(),
                code: EXIT_REFUSED,
            })?;
            let flags: Vec<String> = match &raw.flags {
                None => Vec::new(),
                Some(f) => f
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
            };
            // As ipvsadm: only known flags, and only the scheduler's own (so that every flag
            // accepted here can be written back as a rules line, too).
            parse_flags(scheduler, &flags).map_err(|e| AdmError::usage_error(e.to_string()))?;
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
            // No port given, or port 0: the service port (ipvsadm copies vport to dport).
            let mut port = match port {
                Some(p) if p != 0 => p,
                _ => key.port,
            };
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
                    .ok_or_else(|| AdmError::usage_error("illegal weight specified"))?
                    as u32,
            };
            let upper = match &raw.upper {
                None => 0,
                Some(x) => number(x, 0, i32::MAX as u64)
                    .ok_or_else(|| AdmError::usage_error("illegal u_threshold specified"))?
                    as u32,
            };
            let lower = match &raw.lower {
                None => 0,
                Some(y) => number(y, 0, i32::MAX as u64)
                    .ok_or_else(|| AdmError::usage_error("illegal l_threshold specified"))?
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
                health: raw.has(Opt::Health),
            },
        },
        Cmd::Zero => Command::Zero(key),
        Cmd::Save => Command::Save {
            numeric: raw.has(Opt::Numeric),
            nosort: raw.has(Opt::NoSort),
        },
        Cmd::Restore => Command::Restore,
        Cmd::SetNeigh => {
            let [addr, mac] = raw.positional.as_slice() else {
                return Err(AdmError::usage_error(
                    "--set-neighbour requires an address and a MAC (--set-neighbour ADDR MAC)",
                ));
            };
            let addr = neighbour_addr(addr)?;
            let mac: MacAddr = mac.parse().map_err(|e: String| {
                AdmError::usage_error(format!("illegal neighbour MAC specified: {e}"))
            })?;
            Command::SetNeighbour(StaticNeighbour { addr, mac: mac.0 })
        }
        Cmd::DelNeigh => {
            let [addr] = raw.positional.as_slice() else {
                return Err(AdmError::usage_error(
                    "--delete-neighbour requires one address (--delete-neighbour ADDR)",
                ));
            };
            Command::DeleteNeighbour(neighbour_addr(addr)?)
        }
        Cmd::ListNeigh => Command::ListNeighbours,
        Cmd::Timeout => {
            if raw.positional.len() != 3 {
                return Err(AdmError::usage_error(
                    "--set option requires 3 timeout values",
                ));
            }
            Command::SetTimeouts(Timeouts {
                tcp: parse_timeout(&raw.positional[0], 0)?,
                tcp_fin: parse_timeout(&raw.positional[1], 0)?,
                udp: parse_timeout(&raw.positional[2], 0)?,
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
            p("-A -t 198.18.0.100:443 -p 600 -M 255.255.255.0 -s sh -b sh-port,sh-fallback")
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
        assert!(o.thresholds && o.neighbours && !o.health);
        let (_, o) = list("-L -n --health");
        assert!(o.health && o.numeric && !o.neighbours);
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
        // rvs extension: static neighbours (either spelling).
        let n13 = StaticNeighbour {
            addr: Ipv4Addr::new(198, 18, 0, 13),
            mac: [2, 0, 0, 0, 0, 0x13],
        };
        assert_eq!(
            p("--set-neighbour 198.18.0.13 02:00:00:00:00:13").unwrap(),
            Command::SetNeighbour(n13)
        );
        assert_eq!(
            p("--set-neighbor 198.18.0.13 02-00-00-00-00-13").unwrap(),
            Command::SetNeighbour(n13)
        );
        assert_eq!(
            p("--delete-neighbour 198.18.0.13").unwrap(),
            Command::DeleteNeighbour(n13.addr)
        );
        assert_eq!(p("--list-neighbours").unwrap(), Command::ListNeighbours);
        assert_eq!(p("--list-neighbors").unwrap(), Command::ListNeighbours);
    }

    #[test]
    fn the_long_option_table_is_consistent() {
        let names: Vec<&str> = LONG.iter().map(|(n, _)| *n).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "a long option is listed twice");
        let accepted: Vec<&str> = accepted_long_options().collect();
        assert!(accepted.contains(&"persistent-conn") && accepted.contains(&"set-neighbour"));
        assert!(!accepted.contains(&"start-daemon") && !accepted.contains(&"ipv6"));
        for n in accepted {
            assert!(long_spec(n).is_some(), "{n}");
        }
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
                "connection synchronisation daemons are not started by rvsadm",
            ),
            (
                "--set-neighbour 198.18.0.13",
                "--set-neighbour requires an address and a MAC",
            ),
            (
                "--set-neighbour 198.18.0.13 02:00:00:00:00:13 x",
                "--set-neighbour requires an address and a MAC",
            ),
            (
                "--set-neighbour 198.18.0 02:00:00:00:00:13",
                "illegal neighbour address `198.18.0' specified",
            ),
            (
                "--set-neighbour 224.0.0.1 02:00:00:00:00:13",
                "illegal neighbour address `224.0.0.1' specified: not a unicast address",
            ),
            (
                "--set-neighbour 198.18.0.13 02:00:00:00:13",
                "illegal neighbour MAC specified: invalid MAC address '02:00:00:00:13'",
            ),
            (
                "--set-neighbour 198.18.0.13 02:00:00:00:00:13 -n",
                "Illegal 'numeric' option with the 'set-neighbour' command",
            ),
            (
                "--delete-neighbour",
                "--delete-neighbour requires one address",
            ),
            (
                "--delete-neighbour localhost",
                "illegal neighbour address `localhost' specified",
            ),
            ("--list-neighbours 1", "unexpected argument 1"),
            (
                "--list-neighbours -t 198.18.0.100:80",
                "Illegal 'service-address' option with the 'list-neighbours' command",
            ),
            ("-L --daemon=1", "option `--daemon' does not take a value"),
            (
                "-A -t 198.18.0.100:80 -s sh -b sh-port,nope",
                "invalid scheduler flag `nope'",
            ),
            (
                "-A -t 198.18.0.100:80 -s sh -b mh-port",
                "incompatible scheduler flag `mh-port'",
            ),
            // Found by the `rules` fuzz target: the flag "#" was accepted, but written back
            // ("-b # -p 300") the '#' starts a comment and the line no longer parses.
            ("-Au1.8.0.0 -b# -p", "invalid scheduler flag `#'"),
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
        // Found by the `adm_args` fuzz target (arguments split at NUL, bytes read as lossy
        // UTF-8): a flag with a bell and U+FFFD characters, which the rules writer cannot
        // write back as one word.
        let args = [
            "--add-service",
            "--tcp-service=198.18.0.100:http",
            "-b=w-%v\u{7}\u{fffd}\u{fffd}]\u{fffd}",
        ];
        let err = parse_args(&args, Names::NumericHosts).unwrap_err();
        assert_eq!(err.code, EXIT_USAGE);
        assert!(
            err.msg.starts_with("invalid scheduler flag `=w-%v"),
            "{}",
            err.msg
        );
        let err = e("-A -t 198.18.0.100:80 -s nosuch");
        assert_eq!(err.msg, "Scheduler or persistence engine not found");
        assert_eq!(err.code, EXIT_REFUSED);
    }

    #[test]
    fn services_file_parsing() {
        let t = parse_services("http  80/tcp  www # web\nhttp 80/udp\n# x\nbad\nfoo x/tcp\n");
        assert_eq!(t.get(&("www".into(), "tcp".into())), Some(&80));
        assert_eq!(t.get(&("http".into(), "udp".into())), Some(&80));
        assert_eq!(t.len(), 3);
    }
}
