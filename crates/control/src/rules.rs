//! Rules in ipvsadm's `-S` format (what `ipvsadm-save -n` prints and `ipvsadm -R` reads):
//!
//! ```text
//! # comments and blank lines are allowed
//! -A -t 198.18.0.100:80 -s rr
//! -a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 1
//! --set-neighbour 198.18.0.13 02:00:00:00:00:13
//! ```
//!
//! Each line is one ipvsadm command line, parsed by [`crate::grammar::parse_args`] so that rules files
//! and `rvsadm` agree on every detail (defaults, ranges, messages). Only the commands that change
//! the table are allowed (`-A -E -D -a -e -d -C`, and rvs's `--set-neighbour` /
//! `--delete-neighbour` for static neighbours, which `-S` saves before the services). Host names are not resolved here (the daemon
//! never does DNS); port names come from /etc/services.

use crate::grammar::{self, AdmError, Command, Names};
use rvs_dataplane::model::{Forward, Model, ModelError, ServiceKey};
use std::fmt::Write as _;
use std::net::Ipv4Addr;

/// One rule and the line it came from (1-based).
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub line: usize,
    pub cmd: Command,
}

/// A rules error naming the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct RuleError {
    pub line: usize,
    pub kind: RuleErrorKind,
}

/// What is wrong with a rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleErrorKind {
    #[error("missing command")]
    MissingCommand,
    /// The line is not a valid ipvsadm command line (ipvsadm's message).
    #[error("{0}")]
    CommandLine(#[from] AdmError),
    #[error(
        "only -A, -E, -D, -a, -e, -d, -C, --set-neighbour and --delete-neighbour are allowed in \
         rules: '{0}'"
    )]
    NotARule(String),
    /// The model refused the command (ipvsadm's message).
    #[error(transparent)]
    Refused(#[from] ModelError),
}

/// Split a line into words; `#` starts a comment at the start of a word.
fn words(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for w in line.split_whitespace() {
        if w.starts_with('#') {
            break;
        }
        out.push(w);
    }
    out
}

/// Parse rules text. Comments (`# ...`) and blank lines are skipped; a leading `ipvsadm` or
/// `rvsadm` word on a line is ignored so that shell-style rule lists work too.
pub fn parse(text: &str) -> Result<Vec<Rule>, RuleError> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line_no = n + 1;
        let mut w = words(line);
        if w.is_empty() {
            continue;
        }
        if matches!(w[0], "ipvsadm" | "rvsadm") {
            w.remove(0);
            if w.is_empty() {
                return Err(RuleError {
                    line: line_no,
                    kind: RuleErrorKind::MissingCommand,
                });
            }
        }
        let cmd = grammar::parse_args(&w, Names::NumericHosts).map_err(|e| RuleError {
            line: line_no,
            kind: e.into(),
        })?;
        match cmd {
            Command::AddService(_)
            | Command::EditService(_)
            | Command::DeleteService(_)
            | Command::AddServer(..)
            | Command::EditServer(..)
            | Command::DeleteServer(..)
            | Command::Clear
            | Command::SetNeighbour(_)
            | Command::DeleteNeighbour(_) => out.push(Rule { line: line_no, cmd }),
            _ => {
                return Err(RuleError {
                    line: line_no,
                    kind: RuleErrorKind::NotARule(w.join(" ")),
                })
            }
        }
    }
    Ok(out)
}

/// Apply one command to a model (the model is left as it was on error).
pub fn apply_command(model: &mut Model, cmd: &Command) -> Result<(), RuleErrorKind> {
    match cmd {
        Command::AddService(s) => model.add_service(s.clone())?,
        Command::EditService(s) => model.edit_service(s.clone())?,
        Command::DeleteService(k) => model.delete_service(k)?,
        Command::AddServer(k, s) => model.add_server(k, *s)?,
        Command::EditServer(k, s) => model.edit_server(k, *s)?,
        Command::DeleteServer(k, a, p) => model.delete_server(k, *a, *p)?,
        Command::Clear => model.clear(),
        Command::SetNeighbour(n) => model.set_static_neighbour(*n)?,
        Command::DeleteNeighbour(a) => model.delete_static_neighbour(*a)?,
        other => return Err(RuleErrorKind::NotARule(format!("{other:?}"))),
    }
    Ok(())
}

/// Apply rules in order to `model`. On error the model may be partly changed: callers apply to a
/// clone (all-or-nothing), as [`crate::server::Control`] does.
pub fn apply(model: &mut Model, rules: &[Rule]) -> Result<usize, RuleError> {
    apply_checked(model, rules, |_, _| Ok(()))
}

/// [`apply`], with `check` called on the model after each command (e.g. the director's own
/// checks, [`crate::proto::Director::check_command`]); its refusal names the line.
pub fn apply_checked<F>(model: &mut Model, rules: &[Rule], mut check: F) -> Result<usize, RuleError>
where
    F: FnMut(&Model, &Command) -> Result<(), ModelError>,
{
    for r in rules {
        apply_command(model, &r.cmd)
            .and_then(|()| check(model, &r.cmd).map_err(RuleErrorKind::from))
            .map_err(|kind| RuleError { line: r.line, kind })?;
    }
    Ok(rules.len())
}

fn svc_arg(k: &ServiceKey) -> String {
    let p = match k.proto {
        rvs_dataplane::model::Protocol::Tcp => "-t",
        rvs_dataplane::model::Protocol::Udp => "-u",
    };
    format!("{p} {}:{}", k.vip, k.port)
}

fn fwd_switch(f: Forward) -> &'static str {
    match f {
        Forward::Dr => "-g",
        Forward::Tunnel => "-i",
        Forward::Masq => "-m",
    }
}

/// One command as an ipvsadm `-S` line (without newline).
pub fn command_line(cmd: &Command) -> String {
    let mut s = String::new();
    match cmd {
        Command::AddService(spec) | Command::EditService(spec) => {
            let c = if matches!(cmd, Command::AddService(_)) {
                "-A"
            } else {
                "-E"
            };
            let _ = write!(s, "{c} {} -s {}", svc_arg(&spec.key), spec.scheduler);
            if !spec.flags.is_empty() {
                let _ = write!(s, " -b {}", spec.flags.join(","));
            }
            if let Some(t) = spec.persistent {
                let _ = write!(s, " -p {t}");
            }
            if spec.netmask != Ipv4Addr::BROADCAST {
                let _ = write!(s, " -M {}", spec.netmask);
            }
        }
        Command::DeleteService(k) => {
            let _ = write!(s, "-D {}", svc_arg(k));
        }
        Command::AddServer(k, rs) | Command::EditServer(k, rs) => {
            let c = if matches!(cmd, Command::AddServer(..)) {
                "-a"
            } else {
                "-e"
            };
            let port = if rs.port == 0 { k.port } else { rs.port };
            let _ = write!(
                s,
                "{c} {} -r {}:{} {} -w {}",
                svc_arg(k),
                rs.addr,
                port,
                fwd_switch(rs.forward),
                rs.weight
            );
            if rs.upper != 0 {
                let _ = write!(s, " -x {}", rs.upper);
            }
            if rs.lower != 0 {
                let _ = write!(s, " -y {}", rs.lower);
            }
        }
        Command::DeleteServer(k, a, p) => {
            let _ = write!(s, "-d {} -r {a}:{p}", svc_arg(k));
        }
        Command::Clear => s.push_str("-C"),
        Command::SetNeighbour(n) => {
            let _ = write!(
                s,
                "--set-neighbour {} {}",
                n.addr,
                rvs_dataplane::report::MacAddr(n.mac)
            );
        }
        Command::DeleteNeighbour(a) => {
            let _ = write!(s, "--delete-neighbour {a}");
        }
        other => {
            let _ = write!(s, "# not a rule: {other:?}");
        }
    }
    s
}

/// Emit rules, one line each with a trailing newline.
pub fn emit_rules(rules: &[Rule]) -> String {
    let mut out = String::new();
    for r in rules {
        out.push_str(&command_line(&r.cmd));
        out.push('\n');
    }
    out
}

/// The commands that rebuild `model`: its static neighbours (`--set-neighbour`, first), then
/// `-A`/`-a`, in model order or, with `sort`, in ipvsadm's order (protocol, address, port; real
/// servers by address, port; neighbours by address).
pub fn commands(model: &Model, sort: bool) -> Vec<Command> {
    let mut statics = model.statics.clone();
    if sort {
        statics.sort_by_key(|n| n.addr);
    }
    let mut out: Vec<Command> = statics.into_iter().map(Command::SetNeighbour).collect();
    let mut services: Vec<_> = model.services().iter().collect();
    if sort {
        services.sort_by_key(|s| (s.spec.key.proto.ip_proto(), s.spec.key.vip, s.spec.key.port));
    }
    for svc in services {
        out.push(Command::AddService(svc.spec.clone()));
        let mut servers: Vec<_> = svc.servers.iter().collect();
        if sort {
            servers.sort_by_key(|r| (r.spec.addr, r.spec.port));
        }
        for rs in servers {
            out.push(Command::AddServer(svc.spec.key, rs.spec));
        }
    }
    out
}

/// The whole model as `ipvsadm -S -n` text.
pub fn emit(model: &Model, sort: bool) -> String {
    let mut out = String::new();
    for c in commands(model, sort) {
        out.push_str(&command_line(&c));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_dataplane::model::{Protocol, SchedulerKind, ServerSpec, ServiceSpec};

    const LAB: &str = "\
# lab rules
-A -t 198.18.0.100:80 -s rr
-a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 1

-a -t 198.18.0.100:80 -r 198.18.0.12:80 -g -w 1   # second
";

    fn key() -> ServiceKey {
        ServiceKey {
            proto: Protocol::Tcp,
            vip: Ipv4Addr::new(198, 18, 0, 100),
            port: 80,
        }
    }

    #[test]
    fn parses_lab_rules_with_comments_and_line_numbers() {
        let rules = parse(LAB).unwrap();
        assert_eq!(rules.len(), 3);
        assert_eq!(rules[0].line, 2);
        assert_eq!(rules[2].line, 5);
        assert_eq!(
            rules[0].cmd,
            Command::AddService(ServiceSpec {
                key: key(),
                scheduler: SchedulerKind::Rr,
                persistent: None,
                netmask: Ipv4Addr::BROADCAST,
                flags: vec![],
            })
        );
        assert_eq!(
            rules[1].cmd,
            Command::AddServer(
                key(),
                ServerSpec {
                    addr: Ipv4Addr::new(198, 18, 0, 11),
                    port: 80,
                    weight: 1,
                    forward: Forward::Dr,
                    upper: 0,
                    lower: 0,
                }
            )
        );
    }

    #[test]
    fn emit_of_parse_keeps_everything() {
        let text = "\
-A -t 198.18.0.100:80 -s rr
-a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 1
-a -t 198.18.0.100:80 -r 198.18.0.12:80 -g -w 3 -x 100 -y 10
-A -u 198.18.0.101:0 -s sh -b sh-port,sh-fallback -p 600 -M 255.255.255.0
-a -u 198.18.0.101:0 -r 198.18.0.13:0 -i -w 0
-a -u 198.18.0.101:0 -r 198.18.0.14:0 -m -w 65535
-E -t 198.18.0.100:80 -s wrr -p 300
-e -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 2
-d -t 198.18.0.100:80 -r 198.18.0.12:80
-D -u 198.18.0.101:0
-C
--set-neighbour 198.18.0.13 02:00:00:00:00:13
--delete-neighbour 198.18.0.13
";
        let rules = parse(text).unwrap();
        assert_eq!(rules.len(), 13);
        assert_eq!(emit_rules(&rules), text);
        let again = parse(&emit_rules(&rules)).unwrap();
        assert_eq!(again, rules);
    }

    /// Found by the `rules` fuzz target (its input, 17 bytes): `-Au1.8.0.0 -b# -p` parsed,
    /// with the scheduler flag "#", but was written back as `-A -u 1.8.0.0:0 -s wlc -b # -p
    /// 300`, where '#' starts a comment, so the written line did not parse. Flags are now
    /// checked as ipvsadm does (known names, the scheduler's own).
    #[test]
    fn fuzz_regression_a_flag_that_cannot_be_written_back() {
        let input: &[u8] = b"-Au1.8.0.0 -b# -p";
        let e = parse(std::str::from_utf8(input).unwrap()).unwrap_err();
        assert_eq!(e.to_string(), "line 1: invalid scheduler flag `#'");
        // What does parse is written back as a line that parses to the same command.
        let ok = parse("-Au1.8.0.0 -s sh -b sh-port -p").unwrap();
        assert_eq!(parse(&emit_rules(&ok)).unwrap()[0].cmd, ok[0].cmd);
    }

    /// Found by the `rules` fuzz target, whose input held the line
    /// `-a -t 198.18.0.100:80 -r 198.18.0.12:00 -my 5`: with masquerading the explicit port 0
    /// stayed 0, was written back as the service port (80), and parsed again as 80. Port 0 of a
    /// real server now means the service port when parsed, as it does in the model.
    #[test]
    fn fuzz_regression_real_server_port_zero() {
        let input = "-A -t 198.18.0.100:80 -s rr\n-a -t 198.18.0.100:80 -r 198.18.0.12:00 -my 5\n";
        let rules = parse(input).unwrap();
        let Command::AddServer(_, rs) = rules[1].cmd else {
            panic!("{:?}", rules[1].cmd)
        };
        assert_eq!((rs.port, rs.forward, rs.lower), (80, Forward::Masq, 5));
        assert_eq!(parse(&emit_rules(&rules)).unwrap(), rules);
    }

    #[test]
    fn emit_from_model_round_trips() {
        let mut m = Model::new(16, 16);
        let n = apply(&mut m, &parse(LAB).unwrap()).unwrap();
        assert_eq!(n, 3);
        let text = emit(&m, false);
        assert_eq!(
            text,
            "-A -t 198.18.0.100:80 -s rr\n\
             -a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 1\n\
             -a -t 198.18.0.100:80 -r 198.18.0.12:80 -g -w 1\n"
        );
        let mut m2 = Model::new(16, 16);
        apply(&mut m2, &parse(&text).unwrap()).unwrap();
        assert_eq!(emit(&m2, false), text);
    }

    #[test]
    fn static_neighbours_are_saved_first_and_restored() {
        let text = "\
-A -t 198.18.0.100:80 -s rr
--set-neighbour 198.18.0.14 02:00:00:00:00:14
-a -t 198.18.0.100:80 -r 198.18.0.14:80 -g -w 1
rvsadm --set-neighbor 198.18.0.13 02-00-00-00-00-13
";
        let mut m = Model::new(16, 16);
        assert_eq!(apply(&mut m, &parse(text).unwrap()).unwrap(), 4);
        let saved = emit(&m, true);
        assert_eq!(
            saved,
            "--set-neighbour 198.18.0.13 02:00:00:00:00:13\n\
             --set-neighbour 198.18.0.14 02:00:00:00:00:14\n\
             -A -t 198.18.0.100:80 -s rr\n\
             -a -t 198.18.0.100:80 -r 198.18.0.14:80 -g -w 1\n"
        );
        let mut m2 = Model::new(16, 16);
        apply(&mut m2, &parse(&saved).unwrap()).unwrap();
        assert_eq!(emit(&m2, true), saved);
        apply(&mut m2, &parse("--delete-neighbour 198.18.0.14\n").unwrap()).unwrap();
        assert_eq!(m2.statics.len(), 1);
        let e = apply(
            &mut m2,
            &parse("\n--delete-neighbour 198.18.0.14\n").unwrap(),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 2: No such static neighbour 198.18.0.14"
        );
        let e = parse("--list-neighbours\n").unwrap_err();
        assert!(matches!(e.kind, RuleErrorKind::NotARule(_)), "{e}");
    }

    #[test]
    fn sorted_emit_orders_like_ipvsadm() {
        let text = "\
-A -u 198.18.0.1:53 -s rr
-A -t 198.18.0.9:80 -s rr
-A -t 198.18.0.9:22 -s rr
-a -t 198.18.0.9:22 -r 198.18.0.20 -w 1
-a -t 198.18.0.9:22 -r 198.18.0.3 -w 1
";
        let mut m = Model::new(16, 16);
        apply(&mut m, &parse(text).unwrap()).unwrap();
        assert_eq!(
            emit(&m, true),
            "-A -t 198.18.0.9:22 -s rr\n\
             -a -t 198.18.0.9:22 -r 198.18.0.3:22 -g -w 1\n\
             -a -t 198.18.0.9:22 -r 198.18.0.20:22 -g -w 1\n\
             -A -t 198.18.0.9:80 -s rr\n\
             -A -u 198.18.0.1:53 -s rr\n"
        );
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("-A -t 198.18.0.100:80 -s rr\n\n-a -t 198.18.0.100:80 -r nope -w 1\n")
            .unwrap_err();
        assert_eq!(e.line, 3);
        assert_eq!(
            e.to_string(),
            "line 3: illegal real server address[:port] specified"
        );
        let e = parse("-A -t 198.18.0.100:80 -s rr -w 3\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 1: Illegal 'weight' option with the 'add-service' command"
        );
        let e = parse("-L -n\n").unwrap_err();
        assert!(matches!(e.kind, RuleErrorKind::NotARule(_)), "{e}");
        assert!(e.to_string().contains("only -A"), "{e}");
        let e = parse("-A -t 198.18.0.100:80 -s nosuch\n").unwrap_err();
        assert_eq!(e.line, 1);
        // Host names are never resolved by the daemon.
        let e = parse("-A -t localhost:80 -s rr\n").unwrap_err();
        assert!(e.to_string().contains("illegal virtual server"), "{e}");
    }

    #[test]
    fn apply_reports_model_errors_with_lines() {
        let mut m = Model::new(16, 16);
        let rules = parse("-A -t 198.18.0.100:80 -s rr\n-A -t 198.18.0.100:80 -s rr\n").unwrap();
        let e = apply(&mut m, &rules).unwrap_err();
        assert_eq!(e.to_string(), "line 2: Service already exists");
        let rules = parse("-a -t 198.18.0.1:80 -r 198.18.0.2\n").unwrap();
        let e = apply(&mut m, &rules).unwrap_err();
        assert_eq!(e.to_string(), "line 1: Service not defined");
        // ipvsadm's default scheduler is wlc
        let rules = parse("-A -t 198.18.0.100:81\n").unwrap();
        apply(&mut m, &rules).unwrap();
        assert_eq!(
            m.services().last().unwrap().spec.scheduler,
            SchedulerKind::Wlc
        );
    }

    #[test]
    fn leading_program_name_is_ignored() {
        let a = parse("ipvsadm -A -t 198.18.0.100:80 -s rr\n").unwrap();
        let b = parse("-A -t 198.18.0.100:80 -s rr\n").unwrap();
        assert_eq!(a, b);
        assert!(parse("rvsadm\n").is_err());
    }
}
