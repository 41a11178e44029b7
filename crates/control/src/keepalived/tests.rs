//! The reader as a whole: includes, every mapping, bad input, rvs's fixtures and keepalived's
//! own sample configurations.

use super::*;
use crate::check::{CheckKind, CheckSpec, DEFAULT_DELAY_LOOP_MS};
use crate::ha::{
    Garp, InitialState, Notify, SyncConfig, TrackScript, VrrpInstance, VrrpScript, VrrpVersion,
};
use rvs_dataplane::model::{Protocol, SchedulerKind};
use std::net::Ipv4Addr;
use std::path::PathBuf;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn parse(text: &str) -> Config {
    parse_str(text, "t.conf").unwrap_or_else(|e| panic!("{e}\n---\n{text}"))
}

/// A DR TCP service on 198.18.0.100:80 around `body`.
fn vs(body: &str) -> String {
    format!("virtual_server 198.18.0.100 80 {{\n lvs_method DR\n protocol TCP\n{body}\n}}\n")
}

/// The one service `body` makes.
fn one(body: &str) -> VirtualServer {
    let c = parse(&vs(body));
    assert_eq!(c.services.len(), 1, "{c:?}");
    c.services.into_iter().next().unwrap()
}

/// The one check of the one real server of the service `check` is in.
fn check(check: &str) -> CheckSpec {
    let v = one(&format!(" real_server 198.18.0.11 80 {{\n{check}\n }}"));
    assert_eq!(v.servers[0].health.checks.len(), 1);
    v.servers[0].health.checks[0].clone()
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/keepalived")
}

// ---- grammar ----

#[test]
fn tokens_comments_quotes_and_lines_reach_the_mapping() {
    let c = parse(
        "# comment\n! other comment\nvirtual_server 198.18.0.100 80{lvs_method DR # x\n\
         protocol TCP\n real_server 198.18.0.11 80 { MISC_CHECK { misc_path \"/bin/x 'a b' #1\" } }\n}\n",
    );
    let v = &c.services[0];
    assert_eq!(v.line, 3);
    assert_eq!(v.servers[0].line, 5);
    match &v.servers[0].health.checks[0].kind {
        CheckKind::Misc(m) => assert_eq!(m.path, "/bin/x 'a b' #1"),
        k => panic!("{k:?}"),
    }
}

#[test]
fn include_in_parse_str_is_listed_not_read() {
    let c = parse("include /etc/passwd\n");
    assert_eq!(c.unsupported.len(), 1);
    assert_eq!(c.unsupported[0].directive, "include");
    assert_eq!(c.unsupported[0].line, 1);
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn includes_are_relative_to_the_including_file_and_nested() {
    let d = tempfile::tempdir().unwrap();
    let main = write(d.path(), "main.conf", "include sub/{a,b}.conf\n");
    write(d.path(), "sub/a.conf", "include deeper/*.conf\n");
    write(
        d.path(),
        "sub/deeper/x.conf",
        &vs(" real_server 198.18.0.11 80"),
    );
    write(d.path(), "sub/b.conf", "global_defs {\n router_id x\n}\n");
    let c = load(&main).unwrap();
    assert_eq!(c.services.len(), 1);
    assert!(
        c.services[0].file.ends_with("sub/deeper/x.conf"),
        "{}",
        c.services[0].file
    );
    assert_eq!(c.unsupported.len(), 1);
    assert!(c.unsupported[0].file.ends_with("sub/b.conf"));
    // A wildcard matching nothing is fine; a missing file is not.
    let w = write(d.path(), "w.conf", "include none/*.conf\n");
    assert!(load(&w).unwrap().services.is_empty());
    let m = write(d.path(), "m.conf", "\ninclude nothere.conf\n");
    let e = load(&m).unwrap_err();
    assert_eq!(e.line, 2);
    assert!(e.message.contains("no such file"), "{e}");
}

#[test]
fn include_cycles_and_depth_are_errors() {
    let d = tempfile::tempdir().unwrap();
    let a = write(d.path(), "a.conf", "include b.conf\n");
    write(d.path(), "b.conf", "\n\ninclude a.conf\n");
    let e = load(&a).unwrap_err();
    assert!(e.message.contains("include cycle"), "{e}");
    assert!(e.file.ends_with("b.conf") && e.line == 3, "{e}");
    let own = write(d.path(), "self.conf", "include self.conf\n");
    assert!(load(&own).unwrap_err().message.contains("include cycle"));
    // A chain longer than the limit.
    for i in 0..=MAX_INCLUDE_DEPTH + 1 {
        write(
            d.path(),
            &format!("c{i}.conf"),
            &format!("include c{}.conf\n", i + 1),
        );
    }
    write(d.path(), &format!("c{}.conf", MAX_INCLUDE_DEPTH + 2), "");
    let e = load(&d.path().join("c0.conf")).unwrap_err();
    assert!(e.message.contains("nested deeper"), "{e}");
    // Exactly the limit is fine.
    write(d.path(), &format!("c{MAX_INCLUDE_DEPTH}.conf"), "");
    assert!(load(&d.path().join("c0.conf")).is_ok());
}

#[test]
fn files_too_large_or_not_text_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let big = d.path().join("big.conf");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(MAX_FILE_BYTES + 1).unwrap();
    let e = load(&big).unwrap_err();
    assert!(e.message.contains("larger than 16 MiB"), "{e}");
    let bin = write(d.path(), "bin.conf", "");
    std::fs::write(&bin, b"global_defs {\xff}\n").unwrap();
    assert!(load(&bin).unwrap_err().message.contains("not UTF-8"));
    let e = load(&d.path().join("absent.conf")).unwrap_err();
    assert!(e.to_string().contains("cannot read"), "{e}");
    let text = "#".repeat(MAX_FILE_BYTES as usize + 1);
    assert!(parse_str(&text, "x").is_err());
}

// ---- mapping ----

#[test]
fn service_level_mapping() {
    struct Case {
        body: &'static str,
        check: fn(&VirtualServer),
    }
    let cases = [
        Case {
            body: "",
            check: |v| {
                assert_eq!(v.spec.scheduler, SchedulerKind::Wlc);
                assert_eq!(v.spec.persistent, None);
                assert_eq!(v.spec.netmask, Ipv4Addr::BROADCAST);
                assert_eq!(v.health.quorum, 0, "no real server: quorum lowered to 0");
            },
        },
        Case {
            body: "lb_algo rr",
            check: |v| assert_eq!(v.spec.scheduler, SchedulerKind::Rr),
        },
        Case {
            body: "lvs_sched lblcr",
            check: |v| assert_eq!(v.spec.scheduler, SchedulerKind::Lblcr),
        },
        Case {
            body: "persistence_timeout",
            check: |v| assert_eq!(v.spec.persistent, Some(360)),
        },
        Case {
            body: "persistence_timeout 50",
            check: |v| assert_eq!(v.spec.persistent, Some(50)),
        },
        Case {
            body: "persistence_granularity 255.255.0.0",
            check: |v| {
                assert_eq!(v.spec.netmask, ip("255.255.0.0"));
                assert_eq!(v.spec.persistent, Some(360));
            },
        },
        Case {
            body: "lb_algo sh\nsh-port\nflag-1",
            check: |v| assert_eq!(v.spec.flags, ["sh-port", "flag-1"]),
        },
        Case {
            body: "lb_algo mh\nmh-fallback",
            check: |v| assert_eq!(v.spec.flags, ["mh-fallback"]),
        },
        Case {
            body: "sorry_server 198.18.0.30 80\nreal_server 198.18.0.11 80",
            check: |v| {
                let s = v.health.sorry_server.unwrap();
                assert_eq!((s.addr, s.port, s.weight), (ip("198.18.0.30"), 80, 1));
            },
        },
        Case {
            body: "sorry_server 198.18.0.30",
            check: |v| assert_eq!(v.health.sorry_server.unwrap().port, 80),
        },
        Case {
            body:
                "quorum 3\nhysteresis 1\nquorum_up /bin/up\nquorum_down \"/bin/down now\"\n\
                   real_server 198.18.0.11 80 { weight 2 }\nreal_server 198.18.0.12 80 { weight 2 }",
            check: |v| {
                assert_eq!((v.health.quorum, v.health.hysteresis), (3, 1));
                assert_eq!(v.health.quorum_up.as_deref(), Some("/bin/up"));
                assert_eq!(v.health.quorum_down.as_deref(), Some("/bin/down now"));
            },
        },
        Case {
            body: "quorum 5\nhysteresis 9\nreal_server 198.18.0.11 80 { weight 2 }",
            check: |v| assert_eq!((v.health.quorum, v.health.hysteresis), (2, 1)),
        },
        Case {
            body: "weight 7\ninhibit_on_failure\nreal_server 198.18.0.11 80\n\
                   real_server 198.18.0.12 80 { weight 0\n inhibit_on_failure no }",
            check: |v| {
                assert_eq!(v.servers[0].spec.weight, 7);
                assert!(v.servers[0].health.inhibit_on_failure);
                assert_eq!(v.servers[1].spec.weight, 0);
                assert!(!v.servers[1].health.inhibit_on_failure);
            },
        },
        Case {
            body: "real_server 198.18.0.11 80 { uthreshold 100\n lthreshold 50 }",
            check: |v| {
                assert_eq!(
                    (v.servers[0].spec.upper, v.servers[0].spec.lower),
                    (100, 50)
                );
            },
        },
        Case {
            body: "real_server 198.18.0.11 { lvs_method DR }",
            check: |v| assert_eq!(v.servers[0].spec.port, 80),
        },
    ];
    for c in cases {
        (c.check)(&one(c.body));
    }
    let u = parse("virtual_server 198.18.0.100 53 {\nlvs_method DR\nprotocol udp\n}\n");
    assert_eq!(u.services[0].spec.key.proto, Protocol::Udp);
    // No protocol: keepalived's UDP, and said so.
    let n = parse("virtual_server 198.18.0.100 53 {\nlvs_method DR\n}\n");
    assert_eq!(n.services[0].spec.key.proto, Protocol::Udp);
    assert!(n.unsupported[0].message.contains("UDP"));
    // Port 0 is made persistent, as keepalived does.
    let z = parse("virtual_server 198.18.0.100 {\nlvs_method DR\nprotocol TCP\n}\n");
    assert_eq!(z.services[0].spec.key.port, 0);
    assert_eq!(z.services[0].spec.persistent, Some(360));
}

#[test]
fn timers_are_inherited_virtual_server_then_real_server_then_checker() {
    let v = one(
        " delay_loop 10\n connect_timeout 2\n retry 4\n warmup 0\n alpha\n\
         real_server 198.18.0.11 80 {\n  delay_loop 0.25\n  delay_before_retry 0.0005\n\
           TCP_CHECK { retry 0 }\n  HTTP_GET { url { path / }\n connect_timeout 7\n alpha off }\n }\n\
         real_server 198.18.0.12 80 { MISC_CHECK { misc_path /bin/true } }",
    );
    let tcp = &v.servers[0].health.checks[0].params;
    assert_eq!(tcp.delay_loop_ms, 250);
    assert_eq!(tcp.connect_timeout_ms, 2_000);
    assert_eq!(tcp.retry, 0);
    assert_eq!(tcp.delay_before_retry_ms, 1, "0.5 ms rounds up to 1 ms");
    assert_eq!(tcp.warmup_ms, Some(0));
    assert!(tcp.alpha);
    let http = &v.servers[0].health.checks[1].params;
    assert_eq!(
        (http.connect_timeout_ms, http.retry, http.alpha),
        (7_000, 4, false)
    );
    let misc = &v.servers[1].health.checks[0].params;
    assert_eq!(misc.delay_loop_ms, 10_000);
    assert_eq!(misc.retry, 4, "the virtual server's retry is the default");
    // keepalived's own defaults where nothing is said.
    let bare = check("TCP_CHECK {}");
    assert_eq!(bare.params, crate::check::CheckParams::default());
    assert_eq!(check("MISC_CHECK { misc_path /x }").params.retry, 0);
    assert_eq!(
        check("HTTP_GET { url { path / } }")
            .params
            .delay_before_retry_ms,
        3_000
    );
    assert_eq!(
        check("SSL_GET { url { path / } }").params.delay_loop_ms,
        DEFAULT_DELAY_LOOP_MS
    );
}

#[test]
fn checker_mapping() {
    let t = check(
        "TCP_CHECK { connect_ip 198.18.0.99\n connect_port 8080\n bindto 198.18.0.2\n bind_port 4000\n rise 3 }",
    );
    assert_eq!(t.kind, CheckKind::Tcp);
    assert_eq!(t.params.connect_ip, Some(ip("198.18.0.99")));
    assert_eq!(t.params.connect_port, Some(8080));
    assert_eq!(t.params.bindto, Some(ip("198.18.0.2")));
    assert_eq!(t.params.bind_port, Some(4000));
    assert_eq!(t.params.rise, 3);

    let h = check(
        "virtualhost rs.example\n HTTP_GET { url { path /a\n digest 9B3A0C85A887A256D6939DA88AABD8CD\n\
         status_code 200 400-404 }\n url { path /b\n virtualhost b.example }\n nb_get_retry 5 }",
    );
    let CheckKind::Http(hc) = &h.kind else {
        panic!("{h:?}")
    };
    assert_eq!(hc.virtualhost.as_deref(), Some("rs.example"));
    assert_eq!(hc.urls.len(), 2);
    assert_eq!(
        hc.urls[0].digest.as_deref(),
        Some("9b3a0c85a887a256d6939da88aabd8cd")
    );
    assert_eq!(hc.urls[0].status_code, [(200, 200), (400, 404)]);
    assert_eq!(hc.urls[1].virtualhost.as_deref(), Some("b.example"));
    assert_eq!(h.params.retry, 5);

    // virtualhost from the virtual server, overridden by the checker.
    let v = one(
        "virtualhost vs.example\n real_server 198.18.0.11 80 {\n SSL_GET { url { path / } }\n\
         SSL_GET { url { path / }\n virtualhost c.example } }",
    );
    let hosts: Vec<_> = v.servers[0]
        .health
        .checks
        .iter()
        .map(|c| match &c.kind {
            CheckKind::Ssl(h) => h.virtualhost.clone().unwrap(),
            k => panic!("{k:?}"),
        })
        .collect();
    assert_eq!(hosts, ["vs.example", "c.example"]);

    let u = check("UDP_CHECK { payload Ab12f 3 456\n require_reply }");
    assert_eq!(
        u.kind,
        CheckKind::Udp(crate::check::UdpCheck {
            payload: vec![0xab, 0x12, 0x0f, 0x03, 0x45, 0x06],
            require_reply: Some(vec![]),
        })
    );
    let u = check("UDP_CHECK { require_reply 0a0B }");
    let CheckKind::Udp(uc) = u.kind else { panic!() };
    assert_eq!(
        (uc.payload, uc.require_reply),
        (vec![], Some(vec![0x0a, 0x0b]))
    );
    assert_eq!(
        check("UDP_CHECK {}").kind,
        CheckKind::Udp(Default::default())
    );
    assert_eq!(check("PING_CHECK { alpha yes }").kind, CheckKind::Ping);

    let m = check("MISC_CHECK { misc_path /bin/check a b\n misc_timeout 2.5\n misc_dynamic }");
    assert_eq!(
        m.kind,
        CheckKind::Misc(crate::check::MiscCheck {
            path: "/bin/check a b".into(),
            timeout_ms: Some(2_500),
            dynamic: true,
        })
    );
}

#[test]
fn real_server_port_other_than_the_service_port_is_probed_not_forwarded_to() {
    let c = parse(&vs(" real_server 198.18.0.11 8080 { TCP_CHECK {} }"));
    let r = &c.services[0].servers[0];
    assert_eq!(r.spec.port, 80);
    assert_eq!(r.health.checks[0].params.connect_port, Some(8080));
    assert!(c.unsupported.iter().any(|d| d.message.contains("differs")));
}

#[test]
fn virtual_server_group_expands_to_one_service_per_address_and_port() {
    let c = parse(
        "virtual_server group G {\n lvs_method DR\n protocol TCP\n real_server 198.18.0.11 80\n}\n\
         virtual_server_group G {\n 198.18.0.100 80\n 198.18.0.101-102 443\n 198.18.0.104/30 80\n\
         198.18.0.200-198.18.0.201 80\n fwmark 3\n ae00::1 80\n}\n",
    );
    let keys: Vec<String> = c
        .services
        .iter()
        .map(|v| format!("{}:{}", v.spec.key.vip, v.spec.key.port))
        .collect();
    assert_eq!(
        keys,
        [
            "198.18.0.100:80",
            "198.18.0.101:443",
            "198.18.0.102:443",
            "198.18.0.104:80",
            "198.18.0.105:80",
            "198.18.0.106:80",
            "198.18.0.107:80",
            "198.18.0.200:80",
            "198.18.0.201:80",
        ]
    );
    // The real server follows each service's port.
    assert_eq!(c.services[1].servers[0].spec.port, 443);
    let dirs: Vec<_> = c.unsupported.iter().map(|d| d.directive.as_str()).collect();
    assert!(
        dirs.contains(&"fwmark") && dirs.contains(&"ae00::1"),
        "{dirs:?}"
    );
}

#[test]
fn unsupported_directives_are_listed_once_with_file_and_line() {
    let c = parse(
        "global_defs {\n router_id x\n smtp_server 1.2.3.4\n}\nvrrp_instance V { virtual_router_id 1\n virtual_ipaddress { 198.18.0.100 }\n}\n\
         vrrp_script s {\n}\nstatic_ipaddress {\n 1.2.3.4/24 dev eth0\n}\n@high net_namespace x\n\
         $VAR=1\n\
         virtual_server 198.18.0.100 80 {\n lvs_method DR\n protocol TCP\n ops\n ha_suspend\n\
         smtp_alert\n real_server 198.18.0.11 80 {\n notify_up /bin/x\n SMTP_CHECK {\n helo_name x\n }\n\
         HTTP_GET { url { path /\n regex ok }\n enable_sni }\n }\n}\n",
    );
    let got: Vec<(u32, &str)> = c
        .unsupported
        .iter()
        .map(|d| (d.line, d.directive.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (1, "global_defs"),
            (8, "vrrp_script"),
            (10, "static_ipaddress"),
            (13, "@high"),
            (14, "$VAR=1"),
            (18, "ops"),
            (19, "ha_suspend"),
            (20, "smtp_alert"),
            (22, "notify_up"),
            (23, "SMTP_CHECK"),
            (27, "regex"),
            (28, "enable_sni"),
        ]
    );
    assert!(c.unsupported[1].message.contains("has no script"));
    let shown = c.unsupported[0].to_string();
    assert!(
        shown.starts_with("t.conf:1: 'global_defs' not supported: "),
        "{shown}"
    );
    assert_eq!(c.services.len(), 1);
}

#[test]
fn non_dr_and_other_unreadable_virtual_servers_are_skipped_and_said_once() {
    let cases = [
        ("lb_kind NAT", "lb_kind", "NAT is not supported"),
        ("lvs_method TUN type gue port 6080", "lb_kind", "TUN"),
        ("", "virtual_server", "default is NAT"),
        ("lvs_method DR\nprotocol SCTP", "protocol", "SCTP"),
        ("lvs_method DR\nlb_algo twos", "lb_algo", "twos"),
    ];
    for (body, directive, fragment) in cases {
        let text = format!(
            "virtual_server 198.18.0.100 80 {{\n{body}\nreal_server 198.18.0.11 80 {{ notify_up /x }}\n}}\n"
        );
        let c = parse(&text);
        assert!(c.services.is_empty(), "{body}");
        assert_eq!(c.unsupported.len(), 1, "{body}: {:?}", c.unsupported);
        assert_eq!(c.unsupported[0].directive, directive, "{body}");
        assert!(
            c.unsupported[0].message.contains(fragment),
            "{body}: {:?}",
            c.unsupported
        );
    }
    let f = parse("virtual_server fwmark 1 {\n lb_kind DR\n}\n");
    assert!(f.services.is_empty() && f.unsupported[0].directive == "fwmark");
    let v6 = parse("virtual_server ae00::1 80 {\n lb_kind DR\n}\n");
    assert!(v6.services.is_empty() && v6.unsupported[0].message.contains("IPv6"));
    // A NAT real server in a DR service: that server only.
    let c = parse(&vs(
        " real_server 198.18.0.11 80 { lvs_method NAT }\n real_server 198.18.0.12 80",
    ));
    assert_eq!(c.services[0].servers.len(), 1);
    assert_eq!(c.services[0].servers[0].spec.addr, ip("198.18.0.12"));
    // A duplicate real server: the first is kept, as keepalived does.
    let c = parse(&vs(
        " real_server 198.18.0.11 80 { weight 5 }\n real_server 198.18.0.11 80 { weight 6 }",
    ));
    assert_eq!(c.services[0].servers.len(), 1);
    assert_eq!(c.services[0].servers[0].spec.weight, 5);
}

#[test]
fn bad_input_is_an_error_with_its_line() {
    // (configuration, line, fragment of the message)
    let cases: &[(&str, u32, &str)] = &[
        ("virtual_server 198.18.0.100 80 {\n", 1, "not closed"),
        ("}\n", 1, "unexpected '}'"),
        ("global_defs {\n}\n{\n}\n", 3, "unexpected '{'"),
        ("virtual_sever 198.18.0.100 80 {\n}\n", 1, "unknown keyword 'virtual_sever'"),
        ("virtual_server 198.18.0.300 80 {\n}\n", 1, "'198.18.0.300' is not an IPv4 address"),
        ("virtual_server 198.18.0.100 65536 {\n}\n", 1, "65536 is not in 0..=65535"),
        ("virtual_server 198.18.0.100 80 9 {\n}\n", 1, "unexpected '9'"),
        ("virtual_server {\n}\n", 1, "needs an address"),
        ("virtual_server group NOPE {\n}\n", 1, "no such virtual_server_group"),
        ("virtual_server 198.18.0.100 80 {\n lb_algo fastest\n}\n", 2, "not a scheduler"),
        ("virtual_server 198.18.0.100 80 {\n lb_kind ROUTE\n}\n", 2, "not NAT, DR or TUN"),
        ("virtual_server 198.18.0.100 80 {\n protocol ICMP\n}\n", 2, "not TCP, UDP or SCTP"),
        ("virtual_server 198.18.0.100 80 {\n delay_loop soon\n}\n", 2, "not a time in seconds"),
        ("virtual_server 198.18.0.100 80 {\n delay_loop 0\n}\n", 2, "shorter than 1 ms"),
        ("virtual_server 198.18.0.100 80 {\n persistence_timeout 0\n}\n", 2, "not in 1..="),
        ("virtual_server 198.18.0.100 80 {\n quorum $Q\n}\n", 2, "parameter substitution"),
        ("virtual_server 198.18.0.100 80 {\n inhibit_on_failure maybe\n}\n", 2, "not on|off"),
        ("virtual_server 198.18.0.100 80 {\n lvs_method DR\n persistence_granularity 255.0.255.0\n}\n", 1, "invalid persistence netmask"),
        ("virtual_server 198.18.0.100 80 {\n weight 1 {\n }\n}\n", 2, "does not take a block"),
        ("virtual_server 198.18.0.100 80 {\n real_server 198.18.0.11 80 {\n weight 70000\n }\n}\n", 3, "70000 is not in 0..=65535"),
        ("virtual_server 198.18.0.100 80 {\n real_server 198.18.0.11 80 {\n colour blue\n }\n}\n", 3, "unknown keyword 'colour' in real_server"),
        ("virtual_server 198.18.0.100 80 {\n lvs_method DR\n protocol TCP\n real_server 198.18.0.11 80 {\n lthreshold 9\n uthreshold 3\n }\n}\n", 4, "lower threshold 9 is above upper threshold 3"),
        ("virtual_server 198.18.0.100 80 {\n lvs_method DR\n protocol TCP\n real_server 255.255.255.255 80\n}\n", 4, "invalid real server address"),
        ("virtual_server 198.18.0.100 80 {\n real_server 198.18.0.11 80 {\n HTTP_GET {\n connect_timeout 1\n }\n }\n}\n", 3, "needs at least one url"),
        ("virtual_server 198.18.0.100 80 {\n real_server 198.18.0.11 80 {\n HTTP_GET {\n url {\n digest 00\n }\n }\n }\n}\n", 5, "not an MD5 digest"),
        ("virtual_server 198.18.0.100 80 {\n real_server 198.18.0.11 80 {\n HTTP_GET {\n url {\n digest 9b3a0c85a887a256d6939da88aabd8cd\n }\n }\n }\n}\n", 4, "url needs a path"),
        ("virtual_server 198.18.0.100 80 {\n real_server 198.18.0.11 80 {\n HTTP_GET {\n url {\n path /\n status_code 200-99x\n }\n }\n }\n}\n", 6, "not an HTTP status code"),
        ("virtual_server 198.18.0.100 80 {\n real_server 198.18.0.11 80 {\n HTTP_GET {\n url {\n path /\n status_code 700\n }\n }\n }\n}\n", 6, "not an HTTP status code"),
        ("virtual_server 198.18.0.100 80 {\n lvs_method DR\n protocol TCP\n real_server 198.18.0.11 80 {\n HTTP_GET {\n url {\n path relative\n }\n }\n }\n}\n", 5, "HTTP_GET: path"),
        ("virtual_server 198.18.0.100 80 {\n real_server 198.18.0.11 80 {\n MISC_CHECK {\n misc_timeout 3\n }\n }\n}\n", 3, "MISC_CHECK needs misc_path"),
        ("virtual_server 198.18.0.100 80 {\n real_server 198.18.0.11 80 {\n MISC_CHECK {\n connect_port 80\n misc_path /x\n }\n }\n}\n", 4, "unknown keyword 'connect_port' in MISC_CHECK"),
        ("virtual_server 198.18.0.100 80 {\n real_server 198.18.0.11 80 {\n UDP_CHECK {\n payload 0g\n }\n }\n}\n", 4, "not hex bytes"),
        ("virtual_server 198.18.0.100 80 {\n real_server 198.18.0.11 80 {\n TCP_CHECK {\n connect_port 0\n }\n }\n}\n", 4, "0 is not in 1..=65535"),
        ("virtual_server 198.18.0.100 80 {\n real_server 198.18.0.11 80 {\n TCP_CHECK {\n rise 0\n }\n }\n}\n", 4, "0 is not in 1..=1000"),
        ("virtual_server 198.18.0.100 80 {\n lvs_method DR\n protocol TCP\n real_server 198.18.0.11 80 {\n TCP_CHECK {\n delay_loop 100000\n }\n }\n}\n", 5, "TCP_CHECK: delay_loop_ms"),
        ("virtual_server 198.18.0.100 80 {\n real_server 198.18.0.11 80 {\n TCP_CHECK bad {\n }\n }\n}\n", 3, "takes no value"),
        ("virtual_server_group G {\n 198.18.0.1-0 80\n}\n", 2, "ends before it starts"),
        ("virtual_server_group G {\n 198.18.0.0/16 80\n}\n", 2, "more than 1024"),
        ("virtual_server_group G {\n 198.18.0.1-x 80\n}\n", 2, "not an IPv4 address, range"),
        ("virtual_server_group G {\n}\nvirtual_server_group G {\n}\n", 3, "already defined"),
        ("virtual_server 198.18.0.100 80 {\n lvs_method DR\n protocol TCP\n}\nvirtual_server 198.18.0.100 80 {\n lvs_method DR\n protocol TCP\n}\n", 5, "already defined at t.conf:1"),
        ("virtual_server 198.18.0.100 80 {\n quorum_up \"/bin/x\n}\n", 2, "unterminated quote"),
        ("virtual_server 198.18.0.100 80 {\n sorry_server\n}\n", 2, "sorry_server needs an address"),
        ("virtual_server 198.18.0.100 80 {\n hysteresis -1\n}\n", 2, "not a number"),
        ("virtual_server 198.18.0.100 80 {\n}\n}\n", 3, "unexpected '}'"),
    ];
    assert!(cases.len() >= 25);
    for &(text, line, fragment) in cases {
        match parse_str(text, "t.conf") {
            Ok(c) => panic!("accepted:\n{text}\n{c:?}"),
            Err(e) => {
                assert!(
                    e.message.contains(fragment) && e.line == line && e.file == "t.conf",
                    "want line {line} '{fragment}', got {e}\n---\n{text}"
                );
            }
        }
    }
}

// ---- fixtures ----

#[test]
fn fixture_web_dr() {
    let c = load(&fixtures().join("web-dr.conf")).unwrap();
    for d in &c.unsupported {
        println!("{d}");
    }
    assert_eq!(c.services.len(), 1);
    let v = &c.services[0];
    assert_eq!(v.spec.key.vip, ip("198.18.0.100"));
    assert_eq!(v.spec.scheduler, SchedulerKind::Wrr);
    assert_eq!(v.spec.persistent, Some(360));
    assert_eq!(v.spec.netmask, ip("255.255.255.0"));
    assert_eq!((v.health.quorum, v.health.hysteresis), (2, 1));
    assert_eq!(
        v.health.quorum_down.as_deref(),
        Some("/usr/local/sbin/page-oncall web down")
    );
    assert_eq!(v.health.sorry_server.unwrap().addr, ip("198.18.0.30"));
    let [a, b] = &v.servers[..] else { panic!() };
    assert_eq!((a.spec.weight, a.health.inhibit_on_failure), (3, true));
    assert_eq!((b.spec.weight, b.health.inhibit_on_failure), (1, false));
    let ha = &a.health.checks[0];
    assert_eq!(ha.params.rise, 2);
    assert_eq!(ha.params.delay_loop_ms, 2_000);
    assert_eq!(ha.params.connect_timeout_ms, 1_500);
    assert_eq!(ha.params.retry, 2);
    assert_eq!(ha.params.delay_before_retry_ms, 3_000);
    let hb = &b.health.checks[0];
    assert_eq!(hb.params.delay_loop_ms, 500);
    assert_eq!(hb.params.connect_port, Some(8080));
    let dirs: Vec<&str> = c.unsupported.iter().map(|d| d.directive.as_str()).collect();
    assert_eq!(dirs, ["global_defs"]);
    // Its VRRP instance, with keepalived's defaults.
    let mut want = VrrpInstance::new("VI_WEB", 7, 100, vec![ip("198.18.0.100")]);
    want.version = VrrpVersion::V2;
    want.initial = InitialState::Master;
    assert_eq!(c.ha.instances, [want]);
    assert!(c.ha.sync.is_none() && c.ha.scripts.is_empty());
}

#[test]
fn fixture_groups_with_include() {
    let c = load(&fixtures().join("groups.conf")).unwrap();
    for d in &c.unsupported {
        println!("{d}");
    }
    let keys: Vec<String> = c.services.iter().map(|v| v.spec.key.to_string()).collect();
    assert_eq!(
        keys,
        [
            "udp 198.18.1.53:53",
            "udp 198.18.1.60:53",
            "udp 198.18.1.61:53",
            "udp 198.18.1.64:53",
            "udp 198.18.1.65:53",
            "tcp 198.18.1.80:443",
        ]
    );
    assert_eq!(c.services[0].spec.flags, ["sh-port", "sh-fallback"]);
    let udp = &c.services[0].servers[0].health.checks;
    assert_eq!(
        udp[0].kind,
        CheckKind::Udp(crate::check::UdpCheck {
            payload: vec![0x00, 0x01, 0x01, 0x00, 0x00, 0x01],
            require_reply: Some(vec![0x00, 0x01]),
        })
    );
    assert!(udp[1].params.alpha && udp[1].kind == CheckKind::Ping);
    let last = c.services.last().unwrap();
    assert!(last.file.ends_with("conf.d/extra.conf"));
    assert!(last.spec.flags.is_empty(), "sh-port is not for mh");
    let checks = &last.servers[0].health.checks;
    assert_eq!(checks.len(), 2);
    assert!(
        matches!(&checks[0].kind, CheckKind::Misc(m) if m.dynamic && m.path.ends_with("'with space'"))
    );
    assert_eq!(checks[1].params.retry, 4);
    let dirs: Vec<&str> = c.unsupported.iter().map(|d| d.directive.as_str()).collect();
    assert_eq!(dirs, ["fwmark", "sh-port", "SMTP_CHECK"]);
}

// ---- keepalived's samples ----

const SAMPLES: &str = "/usr/share/doc/keepalived/samples";

#[test]
fn keepalived_samples_all_read() {
    let dir = std::path::Path::new(SAMPLES);
    if !dir.is_dir() {
        if std::env::var("RVS_NO_KEEPALIVED_SAMPLES").as_deref() == Ok("1") {
            eprintln!("{SAMPLES} missing, skipped (RVS_NO_KEEPALIVED_SAMPLES=1)");
            return;
        }
        panic!("{SAMPLES} is missing: install keepalived (scripts/deps.sh does), or set RVS_NO_KEEPALIVED_SAMPLES=1");
    }
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("keepalived.conf."))
        })
        .collect();
    names.sort();
    assert!(
        names.len() >= 20,
        "only {} samples in {SAMPLES}",
        names.len()
    );
    let mut all = std::collections::BTreeMap::new();
    for p in &names {
        let c = load(p).unwrap_or_else(|e| panic!("{e}"));
        println!("{}: {} services", p.display(), c.services.len());
        for d in &c.unsupported {
            println!("  {d}");
        }
        all.insert(p.file_name().unwrap().to_string_lossy().to_string(), c);
    }
    // Known facts. keepalived.conf.sample: its one virtual server is NAT, so it is listed
    // (at its lb_kind line) and not read; so are its global and VRRP blocks.
    let s = &all["keepalived.conf.sample"];
    assert!(s.services.is_empty());
    let lines: Vec<(u32, &str)> = s
        .unsupported
        .iter()
        .map(|d| (d.line, d.directive.as_str()))
        .collect();
    assert_eq!(lines, [(3, "global_defs"), (29, "lb_kind")]);
    let vi = &s.ha.instances[0];
    assert_eq!((vi.name.as_str(), vi.vrid, vi.preempt), ("VI_1", 50, false));
    // keepalived.conf.vrrp: four instances, two with a password, VI_1's second GARP burst
    // after 10 s and its VIP listed twice taken once.
    let v = &all["keepalived.conf.vrrp"].ha;
    let ids: Vec<(&str, u8, u8)> = v
        .instances
        .iter()
        .map(|i| (i.name.as_str(), i.vrid, i.priority))
        .collect();
    assert_eq!(
        ids,
        [
            ("VI_1", 51, 100),
            ("VI_2", 50, 50),
            ("VI_3", 52, 100),
            ("VI_4", 53, 50)
        ]
    );
    let vi1 = &v.instances[0];
    assert_eq!(vi1.auth_pass.as_deref(), Some("1111"));
    assert_eq!(vi1.garp.delay_ms, 10_000);
    assert_eq!(vi1.vips.len(), 3);
    assert_eq!(vi1.version, VrrpVersion::V2);
    assert_eq!(v.instances[1].auth_pass, None);
    // lvs_syncd: the older per-instance form gives sync following VI_1.
    let l = &all["keepalived.conf.vrrp.lvs_syncd"].ha;
    assert_eq!(l.sync.as_ref().unwrap().instance, "VI_1");
    assert_eq!(l.instances[0].auth_pass.as_deref(), Some("grr02"));
    // localcheck: five scripts, VI_1 tracking all of them, chk_haproxy with its own weight.
    let lc = &all["keepalived.conf.vrrp.localcheck"].ha;
    assert_eq!(lc.scripts.len(), 5);
    assert_eq!(
        lc.scripts[0],
        VrrpScript {
            name: "chk_sshd".into(),
            argv: vec!["killall".into(), "-0".into(), "sshd".into()],
            interval_ms: 2_000,
            timeout_ms: 2_000,
            weight: -4,
            rise: 2,
            fall: 2,
        }
    );
    assert_eq!(lc.instances[0].track_scripts.len(), 5);
    assert_eq!(
        lc.instances[0].track_scripts[1],
        TrackScript {
            name: "chk_haproxy".into(),
            weight: Some(2)
        }
    );
    assert_eq!(lc.instances.len(), 9);
    // scripts: notify commands split into argv.
    let sc = &all["keepalived.conf.vrrp.scripts"].ha;
    assert_eq!(
        sc.instances[0].notify.master.as_deref(),
        Some(
            &[
                "/usr/local/bin/vrrp.sh".to_string(),
                "MASTER".into(),
                "VI_1".into()
            ][..]
        )
    );
    // conditional_conf: version 3 in the instance, the script without `script` not tracked.
    let cc = &all["keepalived.conf.conditional_conf"].ha;
    assert_eq!(cc.instances[0].version, VrrpVersion::V3);
    assert_eq!(cc.instances[0].advert_int_cs, 1200);
    assert!(cc.instances[0].track_scripts.is_empty() && cc.scripts.is_empty());
    assert!(all["keepalived.conf.fwmark"]
        .unsupported
        .iter()
        .any(|d| d.directive == "fwmark"));
    assert!(all["keepalived.conf.IPv6"]
        .unsupported
        .iter()
        .any(|d| d.message.contains("IPv6")));

    // The same files with DR instead of NAT: what they describe, read.
    let dr = |name: &str| {
        let text = std::fs::read_to_string(dir.join(name))
            .unwrap()
            .replace("lb_kind NAT", "lb_kind DR");
        parse_str(&text, name).unwrap_or_else(|e| panic!("{e}"))
    };
    // Every sample's virtual servers, read as DR, map without an error.
    for p in &names {
        dr(&p.file_name().unwrap().to_string_lossy());
    }
    let s = dr("keepalived.conf.sample");
    assert_eq!(s.services.len(), 1);
    let v = &s.services[0];
    assert_eq!(v.spec.key.to_string(), "tcp 10.10.10.2:1358");
    assert_eq!(
        (v.spec.scheduler, v.spec.persistent),
        (SchedulerKind::Rr, Some(50))
    );
    assert_eq!(v.health.sorry_server.unwrap().addr, ip("192.168.200.200"));
    assert_eq!(v.servers[0].spec.addr, ip("192.168.200.2"));
    let h = &v.servers[0].health.checks[0];
    assert_eq!(
        (
            h.params.connect_timeout_ms,
            h.params.retry,
            h.params.delay_loop_ms
        ),
        (3_000, 3, 6_000)
    );
    // virtual_server_group: 10.0.0.1 8080, 10.0.0.2 80, 192.168.200.1 1358, .3-10 80 = 11.
    let g = dr("keepalived.conf.virtual_server_group");
    let keys: Vec<String> = g.services.iter().map(|v| v.spec.key.to_string()).collect();
    assert_eq!(keys.len(), 11, "{keys:?}");
    assert_eq!(keys[0], "tcp 10.0.0.1:8080");
    assert_eq!(keys[3], "tcp 192.168.200.3:80");
    assert_eq!(keys[10], "tcp 192.168.200.10:80");
    assert!(g.services.iter().all(|v| v.servers.len() == 2));
    let q = dr("keepalived.conf.quorum");
    let v = &q.services[0];
    assert_eq!((v.health.quorum, v.health.hysteresis), (7, 2));
    assert_eq!(v.servers.len(), 10);
    assert!(v.servers[0].health.checks[0].params.alpha);
    let sc = dr("keepalived.conf.status_code");
    let CheckKind::Ssl(h) = &sc.services[0].servers[0].health.checks[0].kind else {
        panic!()
    };
    assert_eq!(
        h.urls[0].status_code,
        [(200, 299), (400, 499), (503, 503), (505, 505)]
    );
}

// ---- VRRP ----

/// Every VRRP directive rvs applies, and the line numbers of those it lists.
const VRRP_FULL: &str = "\
global_defs {
    router_id rvs-a
    vrrp_version 3
    vrrp_garp_master_repeat 3
    vrrp_garp_interval 0.001
    lvs_sync_daemon eth1 VI_1 id 51 maxlen 1200 port 8849
}
vrrp_script chk_nginx {
    script \"/usr/bin/curl -fs 'http://198.18.0.11/a b'\"
    interval 0.5
    timeout 2
    weight -20 noreverse
    rise 3
    fall 2
}
vrrp_script chk_x {
    script /bin/true
}
vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 150
    advert_int 0.3
    preempt_delay 2.5
    virtual_ipaddress {
        198.18.0.100/32 dev eth0 label eth0:1
        198.18.0.101
    }
    unicast_src_ip 198.18.0.2
    unicast_peer {
        198.18.0.3
    }
    garp_master_delay 1
    garp_master_refresh 60
    garp_master_refresh_repeat 2
    notify_master \"/etc/rvs/up.sh VI_1\"
    notify_backup /etc/rvs/down.sh
    notify_fault \"/etc/rvs/down.sh fault\"
    notify_stop /etc/rvs/stop.sh
    notify /etc/rvs/any.sh
    track_script {
        chk_nginx
        chk_x weight 5
    }
    smtp_alert
    track_interface {
        eth0
    }
}
vrrp_instance VI_2 {
    virtual_router_id 52
    version 2
    nopreempt
    advert_int 2
    authentication {
        auth_type PASS
        auth_pass secret
    }
    virtual_ipaddress {
        198.18.0.102
        ae00::1
    }
}
vrrp_sync_group G {
    group {
        VI_1
    }
}
";

#[test]
fn vrrp_full_configuration() {
    let c = parse(VRRP_FULL);
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let mut a = VrrpInstance::new(
        "VI_1",
        51,
        150,
        vec![ip("198.18.0.100"), ip("198.18.0.101")],
    );
    a.version = VrrpVersion::V3; // global_defs' vrrp_version
    a.initial = InitialState::Master;
    a.advert_int_cs = 30;
    a.preempt_delay_ms = 2_500;
    a.unicast_src = Some(ip("198.18.0.2"));
    a.unicast_peers = vec![ip("198.18.0.3")];
    a.garp = Garp {
        delay_ms: 1_000,
        repeat: 3,      // global
        interval_ms: 1, // global
        refresh_ms: 60_000,
        refresh_repeat: 2,
    };
    a.notify = Notify {
        master: Some(s(&["/etc/rvs/up.sh", "VI_1"])),
        backup: Some(s(&["/etc/rvs/down.sh"])),
        fault: Some(s(&["/etc/rvs/down.sh", "fault"])),
        stop: Some(s(&["/etc/rvs/stop.sh"])),
        generic: Some(s(&["/etc/rvs/any.sh"])),
    };
    a.track_scripts = vec![
        TrackScript {
            name: "chk_nginx".into(),
            weight: None,
        },
        TrackScript {
            name: "chk_x".into(),
            weight: Some(5),
        },
    ];
    let mut b = VrrpInstance::new("VI_2", 52, 100, vec![ip("198.18.0.102")]);
    b.version = VrrpVersion::V2;
    b.preempt = false;
    b.advert_int_cs = 200;
    b.auth_pass = Some("secret".into());
    b.garp.repeat = 3;
    b.garp.interval_ms = 1;
    let mut sync = SyncConfig::new("VI_1");
    sync.port = 8849;
    sync.max_message = 1200;
    let want = crate::ha::HaConfig {
        instances: vec![a, b],
        scripts: vec![
            VrrpScript {
                name: "chk_nginx".into(),
                argv: s(&["/usr/bin/curl", "-fs", "http://198.18.0.11/a b"]),
                interval_ms: 500,
                timeout_ms: 2_000,
                weight: -20,
                rise: 3,
                fall: 2,
            },
            VrrpScript {
                name: "chk_x".into(),
                argv: s(&["/bin/true"]),
                interval_ms: 1_000,
                timeout_ms: 1_000,
                weight: 0,
                rise: 1,
                fall: 1,
            },
        ],
        sync: Some(sync),
    };
    assert_eq!(c.ha, want);
    let got: Vec<(u32, &str)> = c
        .unsupported
        .iter()
        .map(|d| (d.line, d.directive.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (1, "global_defs"),
            (6, "lvs_sync_daemon"), // the interface
            (6, "lvs_sync_daemon"), // id
            (46, "smtp_alert"),
            (47, "track_interface"),
            (62, "virtual_ipaddress"), // ae00::1
            (65, "vrrp_sync_group"),
        ]
    );
    assert!(c.unsupported[0].message.starts_with("router_id not read"));
    assert!(c.unsupported[5].message.contains("IPv6"));
}

#[test]
fn vrrp_defaults_and_keepalived_adjustments() {
    struct Case {
        text: &'static str,
        check: fn(&Config),
    }
    let cases = [
        // keepalived's defaults: v2, 1 s, preempt, BACKUP, priority 100.
        Case {
            text: "vrrp_instance A {\n virtual_router_id 9\n virtual_ipaddress { 198.18.0.100 }\n}\n",
            check: |c| {
                let mut w = VrrpInstance::new("A", 9, 100, vec![ip("198.18.0.100")]);
                w.version = VrrpVersion::V2;
                assert_eq!(c.ha.instances, [w]);
                assert!(c.unsupported.is_empty(), "{:?}", c.unsupported);
            },
        },
        // nopreempt with state MASTER starts as BACKUP (noted), as keepalived does.
        Case {
            text: "vrrp_instance A {\n state MASTER\n nopreempt\n virtual_router_id 9\n virtual_ipaddress { 198.18.0.100 }\n}\n",
            check: |c| {
                assert_eq!(c.ha.instances[0].initial, InitialState::Backup);
                assert!(!c.ha.instances[0].preempt);
                assert_eq!((c.unsupported[0].line, c.unsupported[0].directive.as_str()), (2, "state"));
            },
        },
        // A password longer than 8 bytes: its first 8, noted.
        Case {
            text: "vrrp_instance A {\n virtual_router_id 9\n authentication {\n auth_type PASS\n auth_pass 0123456789\n }\n virtual_ipaddress { 198.18.0.100 }\n}\n",
            check: |c| {
                assert_eq!(c.ha.instances[0].auth_pass.as_deref(), Some("01234567"));
                assert_eq!(c.unsupported[0].line, 5);
            },
        },
        // Authentication under VRRPv3: dropped, noted.
        Case {
            text: "vrrp_instance A {\n version 3\n virtual_router_id 9\n authentication {\n auth_type PASS\n auth_pass x\n }\n virtual_ipaddress { 198.18.0.100 }\n}\n",
            check: |c| {
                assert_eq!(c.ha.instances[0].auth_pass, None);
                assert_eq!((c.unsupported[0].line, c.unsupported[0].directive.as_str()), (4, "authentication"));
            },
        },
        // AH: noted, no auth.
        Case {
            text: "vrrp_instance A {\n virtual_router_id 9\n authentication {\n auth_type AH\n auth_pass x\n }\n virtual_ipaddress { 198.18.0.100 }\n}\n",
            check: |c| {
                assert_eq!(c.ha.instances[0].auth_pass, None);
                assert_eq!((c.unsupported[0].line, c.unsupported[0].directive.as_str()), (4, "auth_type"));
            },
        },
        // An IPv6-only instance is not read (noted once), its inside not listed.
        Case {
            text: "vrrp_instance A {\n virtual_router_id 9\n smtp_alert\n virtual_ipaddress { fe80::1 }\n}\n",
            check: |c| {
                assert!(c.ha.instances.is_empty());
                assert_eq!(c.unsupported.len(), 1);
                assert!(c.unsupported[0].message.contains("IPv6"));
            },
        },
        // lvs_sync_daemon with `inst`, a unicast group (a peer) and the instance after it.
        Case {
            text: "global_defs {\n lvs_sync_daemon eth0 inst B group 198.18.0.3 ttl 2\n}\nvrrp_instance B {\n virtual_router_id 9\n virtual_ipaddress { 198.18.0.100 }\n}\n",
            check: |c| {
                let s = c.ha.sync.as_ref().unwrap();
                assert_eq!((s.instance.as_str(), &s.peers[..]), ("B", &[ip("198.18.0.3")][..]));
                let lines: Vec<u32> = c.unsupported.iter().map(|d| d.line).collect();
                assert_eq!(lines, [2, 2], "interface and ttl: {:?}", c.unsupported);
            },
        },
        // VIP options other than dev/label are noted once per entry; duplicates noted.
        Case {
            text: "vrrp_instance A {\n virtual_router_id 9\n virtual_ipaddress {\n 198.18.0.100/24 brd 198.18.0.255 scope global\n 198.18.0.100\n }\n}\n",
            check: |c| {
                assert_eq!(c.ha.instances[0].vips, [ip("198.18.0.100")]);
                let lines: Vec<u32> = c.unsupported.iter().map(|d| d.line).collect();
                assert_eq!(lines, [4, 5]);
            },
        },
        // A track_script naming a script keepalived drops (no `script`) is noted, not tracked.
        Case {
            text: "vrrp_script s {\n interval 2\n}\nvrrp_instance A {\n virtual_router_id 9\n virtual_ipaddress { 198.18.0.100 }\n track_script {\n s\n }\n}\n",
            check: |c| {
                assert!(c.ha.instances[0].track_scripts.is_empty());
                let lines: Vec<(u32, &str)> = c.unsupported.iter().map(|d| (d.line, d.directive.as_str())).collect();
                assert_eq!(lines, [(1, "vrrp_script"), (8, "track_script")]);
            },
        },
        // global_defs with only VRRP keys is not listed at all.
        Case {
            text: "global_defs {\n vrrp_version 3\n vrrp_garp_master_delay 0\n vrrp_garp_master_refresh_repeat 4\n}\nvrrp_instance A {\n virtual_router_id 9\n advert_int 0.05\n virtual_ipaddress { 198.18.0.100 }\n}\n",
            check: |c| {
                assert!(c.unsupported.is_empty(), "{:?}", c.unsupported);
                let i = &c.ha.instances[0];
                assert_eq!((i.version, i.advert_int_cs, i.garp.delay_ms, i.garp.refresh_repeat), (VrrpVersion::V3, 5, 0, 4));
            },
        },
    ];
    for (n, case) in cases.iter().enumerate() {
        let c = parse(case.text);
        println!("case {n}");
        (case.check)(&c);
    }
}

#[test]
fn vrrp_bad_input_is_an_error_with_its_line() {
    /// An instance with a VRID and a VIP around `body` (the body starts on line 2).
    fn inst(body: &str) -> String {
        format!("vrrp_instance VI_1 {{\n{body}\n virtual_router_id 51\n virtual_ipaddress {{ 198.18.0.100 }}\n}}\n")
    }
    let cases: Vec<(String, u32, &str)> = vec![
        (inst(" state LEADER"), 2, "not MASTER or BACKUP"),
        (inst(" priority 0"), 2, "0 is not in 1..=255"),
        (inst(" priority 256"), 2, "256 is not in 1..=255"),
        (inst(" virtual_router_id 0"), 2, "0 is not in 1..=255"),
        (inst(" advert_int fast"), 2, "not a time in seconds"),
        (inst(" advert_int 41"), 2, "not in 0.01..=40.95"),
        (inst(" advert_int 0"), 2, "shorter than 1 ms"),
        // VRRPv2 (keepalived's default) advertises whole seconds.
        (inst(" advert_int 0.3"), 1, "whole seconds"),
        (inst(" version 4"), 2, "not 2 or 3"),
        (inst(" preempt_delay 1001"), 2, "not in 0..=1000"),
        (inst(" nopreempt 1"), 2, "takes no value"),
        (
            inst(" unicast_src_ip 198.18.0.300"),
            2,
            "not an IPv4 address",
        ),
        (
            inst(" unicast_src_ip 224.0.0.18"),
            2,
            "not a unicast address",
        ),
        (
            inst(" unicast_peer {\n 198.18.0.3\n bogus\n }"),
            4,
            "not an IPv4 address",
        ),
        (inst(" garp_master_repeat 0"), 2, "0 is not in 1..=255"),
        (inst(" garp_master_delay 7200"), 2, "too long"),
        (inst(" garp_interval -1"), 2, "not a time in seconds"),
        (inst(" notify_master"), 2, "needs a command"),
        (inst(" notify_master \"/bin/x 'a\""), 2, "unterminated '"),
        (inst(" notify_backup \"  \""), 2, "needs a command"),
        (
            inst(" authentication {\n auth_type MD5\n }"),
            3,
            "not PASS or AH",
        ),
        (
            inst(" authentication {\n auth_type PASS\n }"),
            2,
            "needs auth_pass",
        ),
        (
            inst(" authentication {\n auth_pass x\n }"),
            2,
            "needs auth_type PASS",
        ),
        (
            inst(" authentication {\n colour x\n }"),
            3,
            "unknown keyword 'colour' in authentication",
        ),
        (
            inst(" track_script {\n nope\n }"),
            3,
            "track_script nope is not a vrrp_script",
        ),
        (
            inst(" track_script {\n nope wait 2\n }"),
            3,
            "expected 'weight N'",
        ),
        (
            inst(" virtual_ipaddress {\n 198.18.0.300\n }"),
            3,
            "not an IPv4 address",
        ),
        (
            inst(" virtual_ipaddress {\n 198.18.0.1/33\n }"),
            3,
            "not an IPv4 address",
        ),
        (
            inst(" virtual_ipaddress {\n 198.18.0.1 dev\n }"),
            3,
            "'dev' needs a value",
        ),
        (
            inst(" virtual_ipaddress {\n 198.18.0.1 colour red\n }"),
            3,
            "unknown option 'colour'",
        ),
        (
            inst(" virtual_ipaddress {\n 255.255.255.255\n }"),
            3,
            "cannot be a VIP",
        ),
        (
            inst(" colour blue"),
            2,
            "unknown keyword 'colour' in vrrp_instance",
        ),
        (
            "vrrp_instance A {\n virtual_ipaddress { 198.18.0.100 }\n}\n".into(),
            1,
            "needs virtual_router_id",
        ),
        (
            "vrrp_instance A {\n virtual_router_id 1\n}\n".into(),
            1,
            "no virtual_ipaddress",
        ),
        ("vrrp_instance {\n}\n".into(), 1, "needs a name"),
        ("vrrp_instance A\n".into(), 1, "needs a { ... } block"),
        (
            format!("{}{}", inst(""), inst("")),
            6,
            "vrrp_instance VI_1 is already defined at t.conf:1",
        ),
        (
            format!("{}{}", inst(""), inst("").replace("VI_1", "VI_2")),
            6,
            "share virtual_router_id 51",
        ),
        (
            format!(
                "{}{}",
                inst(""),
                inst("").replace("VI_1", "VI_2").replace("id 51", "id 52")
            ),
            6,
            "VIP 198.18.0.100 is in vrrp instances VI_1 and VI_2",
        ),
        (
            "vrrp_script s {\n interval 0\n}\n".into(),
            2,
            "shorter than 1 ms",
        ),
        (
            "vrrp_script s {\n weight 254\n}\n".into(),
            2,
            "254 is not in -253..=253",
        ),
        (
            "vrrp_script s {\n weight -4 sideways\n}\n".into(),
            2,
            "unexpected 'sideways'",
        ),
        (
            "vrrp_script s {\n rise 0\n}\n".into(),
            2,
            "0 is not in 1..=1000",
        ),
        ("vrrp_script s {\n fall x\n}\n".into(), 2, "not a number"),
        (
            "vrrp_script s {\n colour x\n}\n".into(),
            2,
            "unknown keyword 'colour' in vrrp_script",
        ),
        (
            "vrrp_script s {\n script /x\n}\nvrrp_script s {\n script /y\n}\n".into(),
            4,
            "already defined at t.conf:1",
        ),
        (
            "global_defs {\n vrrp_version 1\n}\n".into(),
            2,
            "not 2 or 3",
        ),
        (
            "global_defs {\n vrrp_garp_master_repeat 0\n}\n".into(),
            2,
            "0 is not in 1..=255",
        ),
        (
            "global_defs {\n lvs_sync_daemon\n}\n".into(),
            2,
            "needs an interface",
        ),
        (
            "global_defs {\n lvs_sync_daemon eth0\n}\n".into(),
            2,
            "needs the vrrp_instance",
        ),
        (
            format!(
                "global_defs {{\n lvs_sync_daemon eth0 VI_1 port\n}}\n{}",
                inst("")
            ),
            2,
            "'port' needs a value",
        ),
        (
            format!(
                "global_defs {{\n lvs_sync_daemon eth0 VI_1 port 0\n}}\n{}",
                inst("")
            ),
            2,
            "0 is not in 1..=65535",
        ),
        (
            format!(
                "global_defs {{\n lvs_sync_daemon eth0 VI_1 colour 0\n}}\n{}",
                inst("")
            ),
            2,
            "unknown option 'colour'",
        ),
        (
            format!(
                "global_defs {{\n lvs_sync_daemon eth0 VI_1 group 0.0.0.0\n}}\n{}",
                inst("")
            ),
            2,
            "not a multicast or unicast address",
        ),
        // maxlen outside what a sync message can be: HaConfig's check, at the sync line.
        (
            format!(
                "global_defs {{\n lvs_sync_daemon eth0 VI_1 maxlen 100\n}}\n{}",
                inst("")
            ),
            2,
            "max_message must be 128..65000",
        ),
        (
            "global_defs {\n lvs_sync_daemon eth0 VI_9\n}\n".into(),
            2,
            "vrrp instance VI_9, which is not defined",
        ),
        (
            format!(
                "global_defs {{\n lvs_sync_daemon eth0 VI_1\n lvs_sync_daemon eth0 VI_1\n}}\n{}",
                inst("")
            ),
            3,
            "already given at line 2",
        ),
    ];
    assert!(cases.len() >= 40);
    for (text, line, fragment) in &cases {
        match parse_str(text, "t.conf") {
            Ok(c) => panic!("accepted:\n{text}\n{:?}", c.ha),
            Err(e) => assert!(
                e.message.contains(fragment) && e.line == *line && e.file == "t.conf",
                "want line {line} '{fragment}', got {e}\n---\n{text}"
            ),
        }
    }
}

#[test]
fn command_lines_split_into_argv() {
    let cases: &[(&str, Result<&[&str], ()>)] = &[
        ("/bin/x", Ok(&["/bin/x"])),
        ("  /bin/x   a\tb ", Ok(&["/bin/x", "a", "b"])),
        ("/bin/x 'a b' c", Ok(&["/bin/x", "a b", "c"])),
        ("/bin/x ''", Ok(&["/bin/x", ""])),
        ("/bin/x a'b c'd", Ok(&["/bin/x", "ab cd"])),
        ("", Ok(&[])),
        ("/bin/x 'a", Err(())),
    ];
    for (text, want) in cases {
        let got = map::split_argv(text);
        match want {
            Ok(w) => assert_eq!(
                got.as_deref(),
                Ok(&w.iter().map(|s| s.to_string()).collect::<Vec<_>>()[..]),
                "{text:?}"
            ),
            Err(()) => assert!(got.is_err(), "{text:?}"),
        }
    }
}

#[test]
fn docs_ha_keepalived_example_reads() {
    let doc = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/ha.md");
    let text = std::fs::read_to_string(doc).unwrap();
    let start = text.find("```\nglobal_defs").expect("the example") + 4;
    let end = start + text[start..].find("```").unwrap();
    let c = parse(&text[start..end]);
    let i = &c.ha.instances[0];
    assert_eq!((i.vrid, i.priority, i.advert_int_cs), (51, 150, 30));
    assert_eq!(i.version, VrrpVersion::V3);
    assert_eq!((i.garp.repeat, i.garp.delay_ms), (3, 2_000));
    assert_eq!(c.ha.sync.as_ref().unwrap().instance, "VI_1");
    // Only the sync interface is listed.
    assert_eq!(c.unsupported.len(), 1, "{:?}", c.unsupported);
}
