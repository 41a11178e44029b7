//! `rvsadm`: ipvsadm's command-line language, spoken over the control socket.
//!
//! - the command line is parsed by the control crate's ipvsadm grammar
//!   ([`rvs_control::grammar::parse_args`], which the daemon also reads rules files with);
//! - [`format_list`]: ipvsadm's `-L` table layouts (plain, `--stats`, `--rate`,
//!   `--thresholds`), column for column, and rvs's `--neighbours` and `--health` columns.
//! - [`run`]: talks JSON-RPC to the daemon through a [`Client`] and maps answers to ipvsadm's
//!   output and exit codes (0 ok, 2 bad command line, 255 the daemon refused, 1 cannot list).

use rvs_control::grammar::*;
use rvs_control::proto::*;
use rvs_dataplane::model::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The version line ipvsadm prints above `-L` (we mimic the kernel IPVS 1.2.1 table).
pub const LIST_BANNER: &str = "IP Virtual Server version 1.2.1 (size=4096)";

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

fn neigh_text(n: &rvs_dataplane::report::NeighState) -> String {
    use rvs_dataplane::report::NeighState as N;
    match n {
        N::Incomplete => "incomplete".to_string(),
        N::Reachable { mac, .. } => format!("reachable {mac}"),
        N::Stale { mac, .. } => format!("stale {mac}"),
        N::Static { mac } => format!("static {mac}"),
    }
}

/// A time in a state, short: `42s`, `3m07s`, `5h02m`, `2d04h` (`-` when unknown).
pub fn duration_text(ms: u64) -> String {
    let s = ms / 1000;
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else if s < 86_400 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else {
        format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600)
    }
}

/// The `--health` columns of a real server: state (with the health weight when a check set
/// one), time in that state at `now_ms`, last error.
fn health_text(r: &ListedServer, now_ms: u64) -> String {
    let Some(h) = &r.health else {
        return format!("{:<9} {:<7} -", "-", "-");
    };
    let state = if h.state == Health::Up && h.weight != r.weight {
        format!("up(w{})", h.weight)
    } else {
        h.state.name().to_string()
    };
    let since = if h.since == 0 {
        "-".to_string()
    } else {
        duration_text(now_ms.saturating_sub(h.since))
    };
    let err = h.last_error.as_deref().unwrap_or("-");
    // One line per server whatever the error says.
    let err: String = err
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(120)
        .collect();
    format!("{state:<9} {since:<7} {err}")
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
    } else if opts.neighbours || opts.health {
        let mut t = "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn".to_string();
        if opts.neighbours {
            t.push_str(" Neighbour");
        }
        if opts.health {
            t.push_str(" State     InState LastError");
        }
        t.push('\n');
        t
    } else {
        "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
            .to_string()
    }
}

fn service_block(out: &mut String, s: &ListedService, opts: &ListOpts, now_ms: u64) {
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
        if opts.health && !s.quorum_met {
            let _ = write!(out, " (quorum {} lost)", s.quorum);
        }
    }
    out.push('\n');
    for r in &s.servers {
        // As ipvsadm shows IPVS run by keepalived: a server its check took down is not in the
        // table (`--health` lists it), and the weight is the one it is scheduled with (0 when
        // inhibited, a MISC_CHECK's dynamic weight).
        let down = r.health.as_ref().is_some_and(|h| h.state == Health::Down);
        if down && !opts.health {
            continue;
        }
        let weight = r.health.as_ref().map_or(r.weight, |h| h.weight);
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
                weight, r.persistent_conns, r.active_conns, r.inactive_conns
            );
        } else {
            let _ = write!(
                out,
                "  -> {d:<28} {:<7} {:<6} {:<10} {:<10}",
                r.forward.lvs_name(),
                weight,
                r.active_conns,
                r.inactive_conns
            );
            if opts.neighbours {
                let _ = write!(out, " {}", neigh_text(&r.neighbour));
            }
            if opts.health {
                let _ = write!(out, " {}", health_text(r, now_ms));
            }
            out.push('\n');
        }
    }
    let plain = !(opts.stats || opts.rate || opts.thresholds || opts.persistent_conn);
    if let (true, true, Some(sorry)) = (opts.health, plain, &s.sorry_server) {
        let mut d = addrport(sorry.addr, sorry.port, s.proto, opts.numeric);
        truncate(&mut d, 28);
        let _ = writeln!(
            out,
            "  -> {d:<28} {:<7} {:<6} {:<10} {:<10} sorry server, {}",
            sorry.forward.lvs_name(),
            sorry.weight,
            "-",
            "-",
            if s.sorry_active { "active" } else { "standby" }
        );
    }
}

/// ipvsadm's `-L` output. `all`: the whole table (with the version banner), otherwise one
/// service (`-L -t VIP:PORT`, no banner). For `--rate`, pass a reply whose counters hold
/// per-second rates (see [`rates`]).
pub fn format_list(reply: &ListReply, opts: &ListOpts, all: bool) -> String {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    format_list_at(reply, opts, all, now_ms)
}

/// [`format_list`] with the time in state of `--health` counted to `now_ms` (Unix ms).
pub fn format_list_at(reply: &ListReply, opts: &ListOpts, all: bool, now_ms: u64) -> String {
    let mut out = String::new();
    if all {
        out.push_str(LIST_BANNER);
        out.push('\n');
    }
    out.push_str(&title(opts));
    for s in sorted(reply, opts.nosort) {
        service_block(&mut out, &s, opts, now_ms);
    }
    out
}

/// `ipvsadm -L -c`: the connection table as ipvsadm prints `/proc/net/ip_vs_conn` (ports by
/// name unless `numeric`; `persistent_conn` adds ipvsadm's empty "pe name pe_data" columns).
pub fn format_connections(
    conns: &[rvs_dataplane::report::ConnEntry],
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
    let rate = |n: &rvs_dataplane::report::Counters,
                o: Option<&rvs_dataplane::report::Counters>| {
        let d = rvs_dataplane::report::Counters::default();
        let o = o.unwrap_or(&d);
        rvs_dataplane::report::Counters {
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

/// `rvsadm --list-neighbours` (an rvs extension): the static neighbours of a `neighbours`
/// reply, one per line, by address.
pub fn format_neighbours(reply: &Value) -> Result<String, String> {
    let list = reply
        .get("neighbours")
        .and_then(Value::as_array)
        .ok_or("missing 'neighbours'")?;
    let mut out = format!("Static neighbours\n{:<16} MAC\n", "Address");
    for n in list {
        let field = |k: &str| {
            n.get(k)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("a neighbour without '{k}'"))
        };
        let _ = writeln!(out, "{:<16} {}", field("addr")?, field("mac")?);
    }
    Ok(out)
}

/// `rvsadm -L --daemon`: ipvsadm's `master sync daemon (mcast=IF, syncid=N)` or `backup sync
/// daemon (...)` line for the connection sync of a `stats` reply, nothing when sync is off (no
/// `sync` object), as ipvsadm prints nothing without a sync daemon. The role is the one the sync
/// thread reports (`sync.role`), else the state of the VRRP instance it follows (MASTER sends,
/// anything else receives); the sync id is the instance's VRID; `mcast` is the kernel
/// interface the sync socket is bound to.
pub fn format_daemon(stats: &Value) -> String {
    let Some(sync) = stats.get("sync").filter(|s| s.is_object()) else {
        return String::new();
    };
    let vrrp: &[Value] = stats
        .get("vrrp")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    // The instance sync follows: by name, else the only one.
    let instance = match sync.get("instance").and_then(Value::as_str) {
        Some(name) => vrrp
            .iter()
            .find(|i| i.get("name").and_then(Value::as_str) == Some(name)),
        None if vrrp.len() == 1 => vrrp.first(),
        None => None,
    };
    let master = match sync.get("role").and_then(Value::as_str) {
        Some(r) => r == "master",
        None => instance
            .and_then(|i| i.get("state"))
            .and_then(Value::as_str)
            .is_some_and(|s| s == "MASTER"),
    };
    let syncid = sync
        .get("vrid")
        .or_else(|| instance.and_then(|i| i.get("vrid")))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let ifname = sync
        .get("interface")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or("-");
    format!(
        "{} sync daemon (mcast={ifname}, syncid={syncid})\n",
        if master { "master" } else { "backup" }
    )
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

/// A request's params as JSON: the control protocol's own types ([`params`]), serialised.
fn to_json(p: &impl serde::Serialize) -> Value {
    serde_json::to_value(p).unwrap_or(Value::Null)
}

/// The JSON-RPC method and params for a command that maps to exactly one call.
pub fn request_for(cmd: &Command) -> Option<(&'static str, Value)> {
    Some(match cmd {
        Command::AddService(s) => ("service.add", to_json(&params::Service::from(s))),
        Command::EditService(s) => ("service.edit", to_json(&params::Service::from(s))),
        Command::DeleteService(k) => ("service.delete", to_json(&params::Key::from(*k))),
        Command::AddServer(k, s) => ("server.add", to_json(&params::Server::new(*k, s))),
        Command::EditServer(k, s) => ("server.edit", to_json(&params::Server::new(*k, s))),
        Command::DeleteServer(k, a, p) => (
            "server.delete",
            to_json(&params::ServerDelete {
                service: (*k).into(),
                addr: *a,
                port: *p,
            }),
        ),
        Command::Clear => ("clear", json!({})),
        Command::Zero(k) => (
            "zero",
            to_json(&params::Zero {
                service: k.map(Into::into),
            }),
        ),
        Command::SetTimeouts(t) => ("timeouts.set", to_json(t)),
        Command::SetNeighbour(n) => (
            "neighbour.set",
            json!({"addr": n.addr, "mac": rvs_dataplane::report::MacAddr(n.mac)}),
        ),
        Command::DeleteNeighbour(a) => ("neighbour.delete", json!({ "addr": a })),
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
                return Err(AdmError::usage_error("option `--socket' requires a value"));
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

/// `rvsadm -h`: every command and option the parser accepts (a test checks), what rvs adds,
/// and what it refuses.
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
  {p} -L|l [-t|u service-address] [options]\n  \
  {p} -Z [-t|u service-address]\n  \
  {p} --set tcp tcpfin udp\n  \
  {p} --set-neighbour address mac\n  \
  {p} --delete-neighbour address\n  \
  {p} --list-neighbours\n  \
  {p} -v\n  \
  {p} -h\n\n\
Commands:\n\
Either long or short options are allowed.\n  \
  --add-service     -A        add virtual service with options\n  \
  --edit-service    -E        edit virtual service with options\n  \
  --delete-service  -D        delete virtual service\n  \
  --clear           -C        clear the whole table (static neighbours stay)\n  \
  --restore         -R        restore rules from stdin (all or nothing)\n  \
  --save            -S        save rules to stdout (static neighbours first)\n  \
  --add-server      -a        add real server with options\n  \
  --edit-server     -e        edit real server with options\n  \
  --delete-server   -d        delete real server\n  \
  --list            -L|-l     list the table\n  \
  --zero            -Z        zero counters in a service or all services\n  \
  --set tcp tcpfin udp        set connection timeout values (0 keeps a value)\n  \
  --help            -h        display this help message\n  \
  --version         -v        show the version of rvsadm and of the daemon\n\n\
Options:\n  \
  --tcp-service  -t service-address   service-address is host[:port]\n  \
  --udp-service  -u service-address   service-address is host[:port]\n  \
  --scheduler    -s scheduler         one of rr|wrr|lc|wlc|lblc|lblcr|dh|sh|sed|nq|mh|fo|ovf,\n  \
{pad}the default scheduler is {DEFAULT_SCHEDULER}.\n  \
  --persistent   -p [timeout]         persistent service (default {DEFAULT_PERSISTENT_TIMEOUT} s)\n  \
  --netmask      -M netmask           persistent granularity mask\n  \
  --sched-flags  -b flags             scheduler flags (comma-separated: sh-fallback,\n  \
{pad}sh-port, mh-fallback, mh-port)\n  \
  --real-server  -r server-address    server-address is host (and port)\n  \
  --gatewaying   -g                   gatewaying (direct routing) (default)\n  \
  --ipip         -i                   ipip encapsulation (tunneling): refused, not supported yet\n  \
  --masquerading -m                   masquerading (NAT): refused, not supported yet\n  \
  --weight       -w weight            capacity of real server\n  \
  --u-threshold  -x uthreshold        upper threshold of connections\n  \
  --l-threshold  -y lthreshold        lower threshold of connections\n  \
  --connection   -c                   output of current IPVS connections\n  \
  --timeout                           output of timeout (tcp tcpfin udp)\n  \
  --daemon                            output of daemon information (the connection sync of\n  \
{pad}rvs's [sync]: nothing when it is off)\n  \
  --stats                             output of statistics information\n  \
  --rate                              output of rate information (OutPPS/OutBPS are always 0:\n  \
{pad}in direct routing replies bypass the director)\n  \
  --exact                             expand numbers (display exact values)\n  \
  --thresholds                        output of thresholds information\n  \
  --persistent-conn                   output of persistent connection info\n  \
  --nosort                            disable sorting output of service/server entries\n  \
  --sort                              does nothing, for backwards compatibility\n  \
  --numeric      -n                   numeric output of addresses and ports\n\n\
rvs extensions:\n  \
  --socket PATH                       control socket (env RVS_SOCKET, default {DEFAULT_SOCKET})\n  \
  --neighbours (--neighbors)          add the ARP state of each real server to -L\n  \
  --health                            add each real server's health and the sorry server to -L\n  \
  --set-neighbour (--set-neighbor) address mac\n  \
{pad}add or replace a static neighbour (no ARP for it)\n  \
  --delete-neighbour (--delete-neighbor) address\n  \
{pad}delete a static neighbour\n  \
  --list-neighbours (--list-neighbors)\n  \
{pad}list the static neighbours\n\n\
Addresses are always printed numerically (no reverse DNS). Not supported, refused with a\n\
message: -f/--fwmark-service, -6/--ipv6, -o/--ops, --pe, the tunnel options, and\n\
--start-daemon/--stop-daemon (connection sync is rvs's [sync] configuration).\n",
        ver = env!("CARGO_PKG_VERSION"),
        pad = " ".repeat(36),
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
        Command::List { opts, .. }
            if opts.health
                && (opts.stats
                    || opts.rate
                    || opts.thresholds
                    || opts.persistent_conn
                    || opts.connections
                    || opts.timeout
                    || opts.daemon) =>
        {
            return Err(AdmError::usage_error(
                "--health goes with the plain -L table (not with --stats, --rate, \
                 --thresholds, --persistent-conn, -c, --timeout or --daemon)",
            ));
        }
        Command::List { opts, .. } if opts.connections => {
            let mut client = Client::connect(&socket)?;
            let v = client.call("connections", json!({}))?;
            let conns: Vec<rvs_dataplane::report::ConnEntry> = v
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
            let mut client = Client::connect(&socket)?;
            let v = client.call("stats", json!({})).map_err(|e| AdmError {
                msg: e.msg,
                code: EXIT_LIST,
            })?;
            return write_out(out, &format_daemon(&v));
        }
        Command::ListNeighbours => {
            let mut client = Client::connect(&socket)?;
            let v = client.call("neighbours", json!({})).map_err(|e| AdmError {
                msg: e.msg,
                code: EXIT_LIST,
            })?;
            let text = format_neighbours(&v).map_err(|e| AdmError {
                msg: format!("unexpected neighbours reply from the daemon: {e}"),
                code: EXIT_LIST,
            })?;
            return write_out(out, &text);
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
                Some(k) => json!({ "service": params::Key::from(*k) }),
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
    use rvs_control::server::{serve, Control};
    use rvs_dataplane::report::{Counters, MacAddr, NeighState};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

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
            health: None,
        };
        ListReply {
            vrrp: vec![],
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
                    sorry_server: None,
                    sorry_active: false,
                    quorum: 1,
                    quorum_met: true,
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
                    sorry_server: None,
                    sorry_active: false,
                    quorum: 1,
                    quorum_met: true,
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
        use rvs_dataplane::report::ConnEntry;
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

    /// The `reply()` table with health: .11 down for 3 min 7 s with an error, .12 up with a
    /// health weight of 7 for 2 days 4 h; a sorry server on the TCP service, active.
    fn health_reply(now: u64) -> ListReply {
        let mut r = reply();
        let tcp = &mut r.services[1];
        let h = |state, since, weight, err: Option<&str>| ListedHealth {
            state,
            since,
            last_check: Some(now - 500),
            last_error: err.map(str::to_string),
            weight,
            inhibit_on_failure: false,
            checks: vec![],
        };
        tcp.servers[0].health = Some(h(Health::Up, now - (2 * 86_400 + 4 * 3600) * 1000, 7, None));
        tcp.servers[1].health = Some(h(
            Health::Down,
            now - 187_000,
            0,
            Some("HTTP_GET: status 503\r\n"),
        ));
        tcp.sorry_server = Some(ServerSpec {
            addr: Ipv4Addr::new(198, 18, 0, 99),
            port: 80,
            weight: 1,
            forward: Forward::Dr,
            upper: 0,
            lower: 0,
        });
        tcp.sorry_active = true;
        tcp.quorum_met = false;
        r
    }

    #[test]
    fn health_layout() {
        let now = 1_700_000_000_000;
        let opts = ListOpts {
            numeric: true,
            health: true,
            ..Default::default()
        };
        let want = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn State     InState LastError
TCP  198.18.0.100:80 rr (quorum 1 lost)
  -> 198.18.0.11:80               Route   0      2          3          down      3m07s   HTTP_GET: status 503  
  -> 198.18.0.12:80               Route   7      0          0          up(w7)    2d04h   -
  -> 198.18.0.99:80               Route   1      -          -          sorry server, active
UDP  198.18.0.100:53 wrr persistent 300 mask 255.255.255.0
";
        assert_eq!(format_list_at(&health_reply(now), &opts, true, now), want);
        // the plain table shows what is scheduled: the down server left out, the health
        // weight in the weight column (ipvsadm's view of IPVS run by keepalived)
        let plain = ListOpts {
            numeric: true,
            ..Default::default()
        };
        let want = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  198.18.0.100:80 rr
  -> 198.18.0.12:80               Route   7      0          0         
UDP  198.18.0.100:53 wrr persistent 300 mask 255.255.255.0
";
        assert_eq!(format_list_at(&health_reply(now), &plain, true, now), want);
        // a daemon without health: '-' columns, no sorry line
        let out = format_list_at(&reply(), &opts, false, now);
        assert!(
            out.contains("0          0          -         -       -\n"),
            "{out}"
        );
        assert!(!out.contains("sorry"));
        // standby sorry server, quorum met
        let mut r = health_reply(now);
        r.services[1].sorry_active = false;
        r.services[1].quorum_met = true;
        let out = format_list_at(&r, &opts, false, now);
        assert!(
            out.contains("sorry server, standby\n") && !out.contains("lost"),
            "{out}"
        );
        assert_eq!(duration_text(59_999), "59s");
        assert_eq!(duration_text(3_600_000), "1h00m");
    }

    #[test]
    fn replies_of_older_and_newer_daemons_are_read() {
        // an older daemon: no health fields
        let old = json!({"services": [{"proto": "tcp", "vip": "198.18.0.100", "port": 80,
            "scheduler": "rr", "persistent": null, "netmask": "255.255.255.255", "flags": [],
            "counters": {"conns": 0, "packets": 0, "bytes": 0},
            "servers": [{"addr": "198.18.0.11", "port": 80, "weight": 1, "forward": "dr",
                "upper": 0, "lower": 0, "active_conns": 0, "inactive_conns": 0,
                "counters": {"conns": 0, "packets": 0, "bytes": 0},
                "neighbour": {"state": "incomplete"}}]}]});
        let r = list_reply(old.clone()).unwrap();
        assert!(r.services[0].servers[0].health.is_none());
        assert!(r.services[0].quorum_met && r.services[0].quorum == 1);
        // a newer one: fields this client does not know are ignored
        let mut new = old;
        new["services"][0]["future"] = json!(1);
        new["services"][0]["servers"][0]["future"] = json!({"x": 1});
        assert!(list_reply(new).is_ok());
    }

    #[test]
    fn health_over_the_socket() {
        use rvs_control::check::{
            CheckKind, CheckParams, CheckSpec, HealthSink, ProbeKey, ProbeStatus, ServerHealth,
        };
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("control.sock");
        let dp = Arc::new(rvs_control::server::testing::FakeDataplane::default());
        let control = Arc::new(Control::new(Model::new(8, 8), dp));
        let stop = Arc::new(AtomicBool::new(false));
        let h = serve(&sock, control.clone(), stop.clone()).unwrap();
        let env = Some(sock.display().to_string());
        let rvsadm = |line: &str| -> (i32, String, String) {
            let args: Vec<String> = line.split_whitespace().map(str::to_string).collect();
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let code = run(&args, env.clone(), &mut &b""[..], &mut out, &mut err);
            (
                code,
                String::from_utf8(out).unwrap(),
                String::from_utf8(err).unwrap(),
            )
        };
        assert_eq!(rvsadm("-A -t 198.18.0.100:80 -s rr").0, 0);
        assert_eq!(
            rvsadm("-a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 1").0,
            0
        );
        assert_eq!(
            rvsadm("-a -t 198.18.0.100:80 -r 198.18.0.12:80 -g -w 1").0,
            0
        );
        let plain = rvsadm("-L -n").1;
        let check = CheckSpec {
            kind: CheckKind::Tcp,
            params: CheckParams::default(),
        };
        let key = control.model().services()[0].spec.key;
        control
            .set_server_health(
                &key,
                Ipv4Addr::new(198, 18, 0, 11),
                0,
                ServerHealth {
                    checks: vec![check.clone()],
                    inhibit_on_failure: false,
                },
            )
            .unwrap();
        control.report(
            &ProbeKey {
                check,
                addr: Ipv4Addr::new(198, 18, 0, 11),
                port: 80,
            },
            &ProbeStatus {
                up: false,
                weight: None,
                since_unix_ms: 1,
                last_check_unix_ms: Some(1),
                last_error: Some("connect: connection refused".into()),
                reason: "2 failures".into(),
            },
        );
        let (code, out, _) = rvsadm("-L -n --health");
        assert_eq!(code, 0);
        let line = out.lines().find(|l| l.contains("198.18.0.11:80")).unwrap();
        assert!(
            line.contains(" down ") && line.ends_with("connect: connection refused"),
            "{out}"
        );
        assert!(line.contains(" 0s ") || line.contains(" 1s "), "{line}");
        let line = out.lines().find(|l| l.contains("198.18.0.12:80")).unwrap();
        assert!(line.contains(" up ") && line.ends_with(" -"), "{out}");
        // the plain table shows what is scheduled, as ipvsadm under keepalived: the down
        // server is left out (and is back once up)
        let without: String = plain
            .lines()
            .filter(|l| !l.contains("198.18.0.11:80"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_ne!(without, plain);
        assert_eq!(rvsadm("-L -n").1, without);
        // --health with another layout is a command-line error
        let (code, _, err) = rvsadm("-L -n --stats --health");
        assert_eq!(code, rvs_control::grammar::EXIT_USAGE);
        assert!(
            err.contains("--health goes with the plain -L table"),
            "{err}"
        );
        assert_eq!(
            rvsadm("-A -t 198.18.0.100:81 --health").0,
            rvs_control::grammar::EXIT_USAGE
        );
        assert!(rvsadm("-h").1.contains("--health"));
        stop.store(true, Ordering::Relaxed);
        h.join().unwrap();
    }

    /// Issue 15: `-h` ended with a stale "does not support yet" line and left out
    /// `--persistent-conn`. Every long option the parser accepts is in it now, as a whole word.
    #[test]
    fn help_names_every_long_option_the_parser_accepts() {
        let help = usage("rvsadm");
        let has = |opt: &str| {
            help.match_indices(opt).any(|(i, _)| {
                let before = help[..i].chars().next_back();
                let after = help[i + opt.len()..].chars().next();
                let word =
                    |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-');
                !word(before) && !word(after)
            })
        };
        let mut n = 0;
        for name in rvs_control::grammar::accepted_long_options() {
            assert!(has(&format!("--{name}")), "--{name} is not in -h");
            n += 1;
        }
        assert!(n >= 45, "{n} long options");
        assert!(has("--socket"));
        // every scheduler, and nothing stale
        for k in SchedulerKind::ALL {
            assert!(
                help.contains(&format!("{k}|")) || help.contains(&format!("|{k},")),
                "{k}"
            );
        }
        assert!(!help.contains("does not support yet"), "{help}");
        // continuation lines line up with the descriptions
        let col = "  --tcp-service  -t service-address   ".len();
        let cont: Vec<&str> = help
            .lines()
            .filter(|l| l.trim_start().starts_with("the default scheduler"))
            .collect();
        assert_eq!(cont.len(), 1, "{help}");
        assert_eq!(cont[0].len() - cont[0].trim_start().len(), col, "{cont:?}");
        // the checker itself can fail
        assert!(!has("--set-neigh") && !has("--neighbour"));
    }

    /// A `stats` reply as the daemon gives it with sync on: the thread's role and identity,
    /// the VRRP instances.
    fn stats_with_sync(role: Option<&str>, state: &str) -> Value {
        let mut sync = json!({"msgs_sent": 3, "instance": "VI_1", "vrid": 51,
            "interface": "rvs0", "port": 8848, "peers": []});
        if let Some(r) = role {
            sync["role"] = json!(r);
        }
        json!({"port": {}, "sync": sync, "vrrp": [
            {"name": "VI_0", "vrid": 50, "state": "MASTER"},
            {"name": "VI_1", "vrid": 51, "state": state}]})
    }

    #[test]
    fn daemon_lines_follow_ipvsadm() {
        assert_eq!(
            format_daemon(&stats_with_sync(Some("master"), "MASTER")),
            "master sync daemon (mcast=rvs0, syncid=51)\n"
        );
        assert_eq!(
            format_daemon(&stats_with_sync(Some("backup"), "BACKUP")),
            "backup sync daemon (mcast=rvs0, syncid=51)\n"
        );
        // the thread's own role wins over the instance state (it follows it within a round)
        assert_eq!(
            format_daemon(&stats_with_sync(Some("backup"), "MASTER")),
            "backup sync daemon (mcast=rvs0, syncid=51)\n"
        );
        // no role yet: the state of the instance named (not VI_0, which is MASTER)
        assert_eq!(
            format_daemon(&stats_with_sync(None, "FAULT")),
            "backup sync daemon (mcast=rvs0, syncid=51)\n"
        );
        assert_eq!(
            format_daemon(&stats_with_sync(None, "MASTER")),
            "master sync daemon (mcast=rvs0, syncid=51)\n"
        );
        // an older daemon: counters only; the one instance gives role and sync id
        let old = json!({"sync": {"msgs_sent": 1}, "vrrp": [{"name": "VI_1", "vrid": 7, "state": "MASTER"}]});
        assert_eq!(
            format_daemon(&old),
            "master sync daemon (mcast=-, syncid=7)\n"
        );
        // sync off: nothing, as ipvsadm without a sync daemon (VRRP alone is not sync)
        assert_eq!(format_daemon(&json!({"port": {}})), "");
        assert_eq!(
            format_daemon(&json!({"vrrp": [{"name": "VI_1", "vrid": 51, "state": "MASTER"}]})),
            ""
        );
        assert_eq!(format_daemon(&json!({"sync": null})), "");
    }

    #[test]
    fn neighbour_listing_layout() {
        let v = json!({"neighbours": [{"addr": "198.18.0.13", "mac": "02:00:00:00:00:13"}]});
        assert_eq!(
            format_neighbours(&v).unwrap(),
            "Static neighbours\nAddress          MAC\n198.18.0.13      02:00:00:00:00:13\n"
        );
        assert!(format_neighbours(&json!({})).is_err());
        assert!(format_neighbours(&json!({"neighbours": [{"addr": "198.18.0.13"}]})).is_err());
    }

    /// Issue 15: static neighbours set with rvsadm are listed, saved by -S (so -R restores
    /// them) and deleted; -L --daemon prints the sync line once the daemon has sync.
    #[test]
    fn neighbours_and_daemon_over_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("control.sock");
        let dp = Arc::new(rvs_control::server::testing::FakeDataplane::default());
        let control = Arc::new(Control::new(Model::new(8, 8), dp));
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
        let empty = "Static neighbours\nAddress          MAC\n";
        assert_eq!(
            rvsadm("--list-neighbours", ""),
            (0, empty.to_string(), String::new())
        );
        assert_eq!(
            rvsadm("--set-neighbour 198.18.0.14 02:00:00:00:00:14", "").0,
            0
        );
        assert_eq!(
            rvsadm("--set-neighbor 198.18.0.13 02-00-00-00-00-13", "").0,
            0
        );
        assert_eq!(rvsadm("-A -t 198.18.0.100:80 -s rr", "").0, 0);
        let (code, out, _) = rvsadm("--list-neighbours", "");
        assert_eq!(code, 0);
        assert_eq!(
            out,
            format!(
                "{empty}198.18.0.13      02:00:00:00:00:13\n198.18.0.14      02:00:00:00:00:14\n"
            )
        );
        let listed = out;
        let (code, saved, _) = rvsadm("-S", "");
        assert_eq!(code, 0);
        assert_eq!(
            saved,
            "--set-neighbour 198.18.0.13 02:00:00:00:00:13\n\
             --set-neighbour 198.18.0.14 02:00:00:00:00:14\n\
             -A -t 198.18.0.100:80 -s rr\n"
        );
        assert_eq!(rvsadm("--delete-neighbour 198.18.0.14", "").0, 0);
        let (code, _, err) = rvsadm("--delete-neighbour 198.18.0.14", "");
        assert_eq!(
            (code, err.as_str()),
            (EXIT_REFUSED, "No such static neighbour 198.18.0.14\n")
        );
        let (code, _, err) = rvsadm("--set-neighbour 198.18.0.15 02:00:00:00:00:01", "");
        assert_eq!(code, EXIT_REFUSED);
        assert!(err.contains("is the director's own MAC"), "{err}");
        assert_eq!(rvsadm("-C", "").0, 0);
        assert_eq!(rvsadm("-R", &saved).0, 0);
        assert_eq!(rvsadm("--list-neighbours", "").1, listed);
        assert_eq!(rvsadm("-S", "").1, saved);
        // -L --daemon: nothing while sync is off, the sync line once it runs
        assert_eq!(rvsadm("-L --daemon", ""), (0, String::new(), String::new()));
        control.set_ha_stats(Box::new(
            || json!({"role": "backup", "instance": "VI_1", "vrid": 51, "interface": "rvs0"}),
        ));
        assert_eq!(
            rvsadm("-L --daemon", ""),
            (
                0,
                "backup sync daemon (mcast=rvs0, syncid=51)\n".to_string(),
                String::new()
            )
        );
        stop.store(true, Ordering::Relaxed);
        h.join().unwrap();
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
        let dp = Arc::new(rvs_control::server::testing::FakeDataplane::default());
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
            Timeouts {
                tcp: 900,
                tcp_fin: 120,
                udp: 300
            }
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
        *dp.conns.lock().unwrap() = vec![rvs_dataplane::report::ConnEntry {
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

    /// Bad command lines (issue 12): each gets a clear error on stderr and the usage exit code,
    /// and nothing reaches the daemon (a listener on the socket path sees no connection).
    #[test]
    fn bad_command_lines_fail_before_sending_anything() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("control.sock");
        let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        listener.set_nonblocking(true).unwrap();
        let env = Some(sock.display().to_string());
        let cases: &[(&[&str], &str)] = &[
            (
                &["-A", "-t", "198.18.0.100:80", "-w", "1"],
                "Illegal 'weight' option with the 'add-service' command",
            ),
            (
                &["-a", "-t", "198.18.0.100:80"],
                "You need to supply the 'real-server' option for the 'add-server' command",
            ),
            (
                &["-d", "-t", "198.18.0.100:80"],
                "You need to supply the 'real-server' option for the 'delete-server' command",
            ),
            (
                &["-A", "-s", "rr"],
                "You need to supply the 'service-address' option",
            ),
            (
                &["-A", "-D", "-t", "198.18.0.100:80"],
                "multiple commands specified",
            ),
            (
                &["-A", "-t", "198.18.0.100:80", "-s", "rr", "-s", "wrr"],
                "multiple 'scheduler' options specified",
            ),
            (
                &["-L", "-c", "--timeout"],
                "The option 'timeout' conflicts with the 'connection' option",
            ),
            (
                &["-A", "-t", "198.18.0.100:0", "-s", "rr"],
                "Zero port specified for non-persistent service",
            ),
            (
                &["-A", "-t", "198.18.0.300:80"],
                "illegal virtual server address[:port] specified",
            ),
            (
                &["-A", "-t", "198.18.0.100:99999"],
                "illegal virtual server address[:port] specified",
            ),
            (
                &[
                    "-a",
                    "-t",
                    "198.18.0.100:80",
                    "-r",
                    "198.18.0.11",
                    "-w",
                    "65536",
                ],
                "illegal weight specified",
            ),
            (
                &[
                    "-a",
                    "-t",
                    "198.18.0.100:80",
                    "-r",
                    "198.18.0.11",
                    "-w",
                    "-1",
                ],
                "illegal weight specified",
            ),
            (
                &[
                    "-a",
                    "-t",
                    "198.18.0.100:80",
                    "-r",
                    "198.18.0.11",
                    "-x",
                    "-1",
                ],
                "illegal u_threshold specified",
            ),
            (
                &["-a", "-t", "198.18.0.100:80", "-r", "198.18.0.11:99999"],
                "illegal real server address[:port] specified",
            ),
            (
                &["-A", "-t", "198.18.0.100:80", "-p", "0"],
                "invalid timeout value `0' specified",
            ),
            (
                &["-A", "-t", "198.18.0.100:80", "-M", "255.0.0.300"],
                "illegal virtual server persistent mask specified",
            ),
            (
                &["--set", "1", "2"],
                "--set option requires 3 timeout values",
            ),
            (&["-L", "extra"], "unexpected argument extra"),
            (&["-L", "--bogus"], "unknown option `--bogus'"),
            (&["-Q"], "unknown option `-Q'"),
            (&["-n"], "no command specified"),
            (&["-A", "-t"], "option `-t' requires a value"),
            (
                &["-A", "-t", "198.18.0.100:80", "-s"],
                "option `-s' requires a value",
            ),
            (
                &["-A", "-f", "1"],
                "firewall-mark services (-f) are not supported",
            ),
            (
                &["-A", "-t", "[::1]:80"],
                "IPv6 addresses are not supported",
            ),
            (
                &["-L", "--daemon=1"],
                "option `--daemon' does not take a value",
            ),
            (&["-L", "--socket"], "option `--socket' requires a value"),
            (
                &["--start-daemon", "master"],
                "connection synchronisation daemons are not started by rvsadm",
            ),
            (
                &["--set-neighbour", "198.18.0.13"],
                "--set-neighbour requires an address and a MAC",
            ),
            (
                &["--delete-neighbour", "198.18.0.13", "02:00:00:00:00:13"],
                "--delete-neighbour requires one address",
            ),
        ];
        assert!(cases.len() >= 20);
        for (line, want) in cases {
            let args: Vec<String> = line.iter().map(|s| s.to_string()).collect();
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let code = run(&args, env.clone(), &mut &b""[..], &mut out, &mut err);
            let err = String::from_utf8(err).unwrap();
            assert_eq!(code, EXIT_USAGE, "{line:?}: {err}");
            assert!(err.starts_with(want), "{line:?}: {err:?} (want {want:?})");
            assert!(out.is_empty(), "{line:?}");
        }
        match listener.accept() {
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock),
            Ok(_) => panic!("a bad command line reached the daemon"),
        }
        // The listener is live: a good command does connect (so the check above could fail).
        let good: Vec<String> = ["-C"].iter().map(|s| s.to_string()).collect();
        let h = std::thread::spawn(move || {
            run(&good, env, &mut &b""[..], &mut Vec::new(), &mut Vec::new())
        });
        let t0 = std::time::Instant::now();
        let accepted = loop {
            match listener.accept() {
                Ok((s, _)) => break Some(s),
                Err(_) if t0.elapsed() < Duration::from_secs(10) => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(_) => break None,
            }
        };
        assert!(accepted.is_some(), "rvsadm -C never connected");
        drop(accepted);
        assert_eq!(h.join().unwrap(), EXIT_USAGE);
    }
}
