//! The table of bad control requests (issue 12): each is answered with a clear error (its code
//! and a fragment of its message), the rules as `-S -n` prints them are the same before and
//! after, and the server still answers `version`. The table runs in process and through a real
//! socket.

use crate::proto::*;
use crate::server::testing::FakeDataplane;
use crate::server::{serve, Control};
use rvs_dataplane::model::Model;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const VERSION: &[u8] = br#"{"jsonrpc":"2.0","id":99,"method":"version"}"#;

/// The lab: director 198.18.0.2/24 (the fake dataplane's), TCP 198.18.0.100:80 (rr) with real
/// servers .11 and .12, UDP 198.18.0.100:53 with .11, a static neighbour .13.
fn lab() -> Control {
    let c = Control::new(Model::new(8, 8), Arc::new(FakeDataplane::default()));
    let n = c
        .apply_rules(
            "-A -t 198.18.0.100:80 -s rr\n\
             -a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 1\n\
             -a -t 198.18.0.100:80 -r 198.18.0.12:80 -g -w 2\n\
             -A -u 198.18.0.100:53 -s rr\n\
             -a -u 198.18.0.100:53 -r 198.18.0.11:53 -g -w 1\n",
        )
        .unwrap();
    assert_eq!(n, 5);
    let v = reply(
        &c,
        br#"{"jsonrpc":"2.0","id":1,"method":"neighbour.set","params":{"addr":"198.18.0.13","mac":"02:00:00:00:00:13"}}"#,
    );
    assert!(v.get("result").is_some(), "{v}");
    c
}

fn reply(c: &Control, line: &[u8]) -> Value {
    let r = c.handle_bytes(line);
    assert!(!r.contains('\n'), "{r}");
    serde_json::from_str(&r).unwrap()
}

/// The rules as `rvsadm -S -n` prints them, and the static neighbours, the model's health
/// (server states, sorry servers, quorum) and the probes.
fn state(c: &Control) -> (String, String) {
    let v = reply(
        c,
        br#"{"jsonrpc":"2.0","id":1,"method":"rules.save","params":{"sort":true}}"#,
    );
    let text = v["result"]["text"].as_str().unwrap().to_string();
    let m = c.model();
    (
        text,
        format!(
            "{:?} {:?} {:?}",
            m.statics,
            m.services(),
            crate::check::HealthSink::probes(c)
        ),
    )
}

/// A request line for `method` with `params`.
fn req(method: &str, params: Value) -> Vec<u8> {
    json!({"jsonrpc": "2.0", "id": 5, "method": method, "params": params})
        .to_string()
        .into_bytes()
}

fn svc() -> Value {
    json!({"proto": "tcp", "vip": "198.18.0.100", "port": 80})
}

fn server(addr: &str) -> Value {
    json!({"service": svc(), "addr": addr})
}

struct Case {
    name: &'static str,
    line: Vec<u8>,
    code: i64,
    want: &'static str,
}

fn raw(name: &'static str, line: &[u8], code: i64, want: &'static str) -> Case {
    Case {
        name,
        line: line.to_vec(),
        code,
        want,
    }
}

fn call(name: &'static str, method: &str, params: Value, code: i64, want: &'static str) -> Case {
    Case {
        name,
        line: req(method, params),
        code,
        want,
    }
}

fn cases() -> Vec<Case> {
    let mut v = vec![
        // Not JSON, or not UTF-8.
        raw("unclosed object", b"{", ERR_PARSE, "parse error"),
        raw(
            "truncated request",
            br#"{"jsonrpc":"2.0","method":"version""#,
            ERR_PARSE,
            "EOF",
        ),
        raw(
            "trailing garbage",
            br#"{"jsonrpc":"2.0","id":1,"method":"version"} x"#,
            ERR_PARSE,
            "trailing characters",
        ),
        raw("not UTF-8", b"\xff\xfe{}", ERR_PARSE, "not valid UTF-8"),
        raw(
            "not UTF-8 inside a string",
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ver\xc3sion\"}",
            ERR_PARSE,
            "not valid UTF-8",
        ),
        raw("a NUL byte", b"\0", ERR_PARSE, "parse error"),
        raw("single quotes", b"{'jsonrpc':'2.0'}", ERR_PARSE, "key must be a string"),
        raw(
            "a number out of range",
            br#"{"jsonrpc":"2.0","id":1e999,"method":"version"}"#,
            ERR_PARSE,
            "number out of range",
        ),
        // Not a request object.
        raw(
            "batch",
            br#"[{"jsonrpc":"2.0","id":1,"method":"version"}]"#,
            ERR_INVALID_REQUEST,
            "batch requests are not supported",
        ),
        raw("a number", b"42", ERR_INVALID_REQUEST, "must be a JSON object"),
        raw("a string", br#""clear""#, ERR_INVALID_REQUEST, "must be a JSON object"),
        raw("null", b"null", ERR_INVALID_REQUEST, "must be a JSON object"),
        raw(
            "no jsonrpc",
            br#"{"id":1,"method":"clear"}"#,
            ERR_INVALID_REQUEST,
            "jsonrpc must be \"2.0\"",
        ),
        raw(
            "jsonrpc 1.0",
            br#"{"jsonrpc":"1.0","id":1,"method":"clear"}"#,
            ERR_INVALID_REQUEST,
            "jsonrpc must be \"2.0\"",
        ),
        raw(
            "jsonrpc as a number",
            br#"{"jsonrpc":2.0,"id":1,"method":"clear"}"#,
            ERR_INVALID_REQUEST,
            "jsonrpc must be \"2.0\"",
        ),
        raw(
            "no method",
            br#"{"jsonrpc":"2.0","id":1,"params":{}}"#,
            ERR_INVALID_REQUEST,
            "method must be a string",
        ),
        raw(
            "method as a number",
            br#"{"jsonrpc":"2.0","id":1,"method":7}"#,
            ERR_INVALID_REQUEST,
            "method must be a string",
        ),
        raw(
            "id as an object",
            br#"{"jsonrpc":"2.0","id":{"a":1},"method":"clear"}"#,
            ERR_INVALID_REQUEST,
            "id must be a string, a number or null",
        ),
        raw(
            "id as an array",
            br#"{"jsonrpc":"2.0","id":[1],"method":"clear"}"#,
            ERR_INVALID_REQUEST,
            "id must be",
        ),
        raw(
            "unknown request member",
            br#"{"jsonrpc":"2.0","id":1,"method":"clear","force":true}"#,
            ERR_INVALID_REQUEST,
            "unknown request member 'force'",
        ),
        // Duplicated keys (finding 7).
        raw(
            "method twice",
            br#"{"jsonrpc":"2.0","id":1,"method":"clear","method":"version"}"#,
            ERR_INVALID_REQUEST,
            "duplicate key 'method'",
        ),
        raw(
            "id twice",
            br#"{"jsonrpc":"2.0","id":1,"id":2,"method":"clear"}"#,
            ERR_INVALID_REQUEST,
            "duplicate key 'id'",
        ),
        raw(
            "params twice",
            br#"{"jsonrpc":"2.0","id":1,"method":"service.delete","params":{"proto":"udp","vip":"198.18.0.100","port":53},"params":{}}"#,
            ERR_INVALID_REQUEST,
            "duplicate key 'params'",
        ),
        raw(
            "a param twice",
            br#"{"jsonrpc":"2.0","id":1,"method":"service.delete","params":{"proto":"tcp","vip":"198.18.0.1","vip":"198.18.0.100","port":80}}"#,
            ERR_PARAMS,
            "duplicate key 'params.vip'",
        ),
        raw(
            "a nested param twice",
            br#"{"jsonrpc":"2.0","id":1,"method":"server.delete","params":{"service":{"proto":"tcp","vip":"198.18.0.100","port":81,"port":80},"addr":"198.18.0.11"}}"#,
            ERR_PARAMS,
            "duplicate key 'params.service.port'",
        ),
        // Methods.
        call("unknown method", "nope", json!({}), ERR_METHOD, "unknown method 'nope'"),
        call("empty method", "", json!({}), ERR_METHOD, "unknown method ''"),
        call("method in capitals", "CLEAR", json!({}), ERR_METHOD, "unknown method 'CLEAR'"),
        raw(
            "params as an array",
            br#"{"jsonrpc":"2.0","id":1,"method":"clear","params":[]}"#,
            ERR_PARAMS,
            "params must be an object",
        ),
        raw(
            "params as a string",
            br#"{"jsonrpc":"2.0","id":1,"method":"clear","params":"all"}"#,
            ERR_PARAMS,
            "params must be an object",
        ),
        call("clear with params", "clear", json!({"all": true}), ERR_PARAMS, "takes no parameters"),
        call("version with params", "version", json!({"x": 1}), ERR_PARAMS, "takes no parameters"),
        // service.add: types and ranges.
        call(
            "service: unknown field",
            "service.add",
            json!({"proto": "tcp", "vip": "198.18.0.101", "port": 80, "sched": "rr"}),
            ERR_PARAMS,
            "unknown field 'sched'",
        ),
        call(
            "service: port too large",
            "service.add",
            json!({"proto": "tcp", "vip": "198.18.0.101", "port": 70000}),
            ERR_PARAMS,
            "port: 70000 is out of range 0..=65535",
        ),
        call(
            "service: negative port",
            "service.add",
            json!({"proto": "tcp", "vip": "198.18.0.101", "port": -1}),
            ERR_PARAMS,
            "port: -1 is out of range",
        ),
        call(
            "service: fractional port",
            "service.add",
            json!({"proto": "tcp", "vip": "198.18.0.101", "port": 80.5}),
            ERR_PARAMS,
            "port: 80.5 is out of range",
        ),
        raw(
            "service: huge port",
            br#"{"jsonrpc":"2.0","id":1,"method":"service.add","params":{"proto":"tcp","vip":"198.18.0.101","port":18446744073709551616}}"#,
            ERR_PARAMS,
            "is out of range 0..=65535",
        ),
        call(
            "service: port as a string",
            "service.add",
            json!({"proto": "tcp", "vip": "198.18.0.101", "port": "80"}),
            ERR_PARAMS,
            "port: expected an integer",
        ),
        call(
            "service: unknown protocol",
            "service.add",
            json!({"proto": "sctp", "vip": "198.18.0.101", "port": 80}),
            ERR_PARAMS,
            "unknown protocol 'sctp'",
        ),
        call(
            "service: bad address",
            "service.add",
            json!({"proto": "tcp", "vip": "198.18.0.300", "port": 80}),
            ERR_PARAMS,
            "vip: '198.18.0.300' is not an IPv4 address",
        ),
        call(
            "service: IPv6 address",
            "service.add",
            json!({"proto": "tcp", "vip": "::1", "port": 80}),
            ERR_PARAMS,
            "vip: '::1' is not an IPv4 address",
        ),
        call(
            "service: address with a space",
            "service.add",
            json!({"proto": "tcp", "vip": " 198.18.0.101", "port": 80}),
            ERR_PARAMS,
            "is not an IPv4 address",
        ),
        call(
            "service: missing vip",
            "service.add",
            json!({"proto": "tcp", "port": 80}),
            ERR_PARAMS,
            "missing field 'vip'",
        ),
        call(
            "service: unknown scheduler",
            "service.add",
            json!({"proto": "tcp", "vip": "198.18.0.101", "port": 80, "scheduler": "xx"}),
            ERR_PARAMS,
            "Scheduler not found: xx",
        ),
        call(
            "service: persistence 0",
            "service.add",
            json!({"proto": "tcp", "vip": "198.18.0.101", "port": 80, "persistent": 0}),
            ERR_PARAMS,
            "persistent: 0 is out of range",
        ),
        call(
            "service: persistence above 31 days",
            "service.add",
            json!({"proto": "tcp", "vip": "198.18.0.101", "port": 80, "persistent": 2678401}),
            ERR_PARAMS,
            "persistent: 2678401 is out of range",
        ),
        call(
            "service: holes in the netmask",
            "service.add",
            json!({"proto": "tcp", "vip": "198.18.0.101", "port": 80, "persistent": 60,
                   "netmask": "255.0.255.0"}),
            ERR_REFUSED,
            "invalid persistence netmask 255.0.255.0",
        ),
        call(
            "service: flags not an array",
            "service.add",
            json!({"proto": "tcp", "vip": "198.18.0.101", "port": 80, "flags": "sh-port"}),
            ERR_PARAMS,
            "flags: expected an array of strings",
        ),
        call(
            "service: flags with a number",
            "service.add",
            json!({"proto": "tcp", "vip": "198.18.0.101", "port": 80, "flags": [1]}),
            ERR_PARAMS,
            "flags: expected an array of strings",
        ),
        call(
            "service: nested garbage",
            "service.add",
            json!({"proto": {"a": [1, {"b": null}]}, "vip": "198.18.0.101", "port": 80}),
            ERR_PARAMS,
            "proto: expected a string",
        ),
        // service.*: what the model or the director refuses.
        call(
            "service: exists",
            "service.add",
            json!({"proto": "tcp", "vip": "198.18.0.100", "port": 80, "scheduler": "rr"}),
            ERR_REFUSED,
            "Service already exists",
        ),
        call(
            "service: VIP 0.0.0.0",
            "service.add",
            json!({"proto": "tcp", "vip": "0.0.0.0", "port": 80}),
            ERR_REFUSED,
            "invalid virtual address 0.0.0.0",
        ),
        call(
            "service: VIP is the DIP",
            "service.add",
            json!({"proto": "tcp", "vip": "198.18.0.2", "port": 80}),
            ERR_REFUSED,
            "virtual address 198.18.0.2 is the director's own address",
        ),
        call(
            "service: VIP is a real server",
            "service.add",
            json!({"proto": "tcp", "vip": "198.18.0.12", "port": 80}),
            ERR_REFUSED,
            "virtual address 198.18.0.12 is a real server address",
        ),
        call(
            "service: VIP is loopback",
            "service.add",
            json!({"proto": "tcp", "vip": "127.0.0.1", "port": 80}),
            ERR_REFUSED,
            "loopback",
        ),
        call(
            "service: zero port without persistence",
            "service.add",
            json!({"proto": "tcp", "vip": "198.18.0.101", "port": 0}),
            ERR_REFUSED,
            "Zero port specified for non-persistent service",
        ),
        call(
            "service: delete what does not exist",
            "service.delete",
            json!({"proto": "tcp", "vip": "198.18.0.101", "port": 80}),
            ERR_REFUSED,
            "No such service",
        ),
        call(
            "service: edit what does not exist",
            "service.edit",
            json!({"proto": "udp", "vip": "198.18.0.100", "port": 80}),
            ERR_REFUSED,
            "No such service",
        ),
        // server.*: types and ranges.
        call(
            "server: negative weight",
            "server.add",
            json!({"service": svc(), "addr": "198.18.0.14", "weight": -1}),
            ERR_PARAMS,
            "weight: -1 is out of range 0..=65535",
        ),
        call(
            "server: weight too large",
            "server.add",
            json!({"service": svc(), "addr": "198.18.0.14", "weight": 65536}),
            ERR_PARAMS,
            "weight: 65536 is out of range",
        ),
        call(
            "server: huge weight",
            "server.add",
            json!({"service": svc(), "addr": "198.18.0.14", "weight": 1e30}),
            ERR_PARAMS,
            "weight: 1e+30 is out of range",
        ),
        call(
            "server: weight as a bool",
            "server.add",
            json!({"service": svc(), "addr": "198.18.0.14", "weight": true}),
            ERR_PARAMS,
            "weight: expected an integer",
        ),
        call(
            "server: unknown forwarding method",
            "server.add",
            json!({"service": svc(), "addr": "198.18.0.14", "forward": "nat"}),
            ERR_PARAMS,
            "forward: unknown method 'nat'",
        ),
        call(
            "server: service as a string",
            "server.add",
            json!({"service": "tcp 198.18.0.100:80", "addr": "198.18.0.14"}),
            ERR_PARAMS,
            "service: expected an object",
        ),
        call(
            "server: nested garbage in service",
            "server.add",
            json!({"service": {"proto": "tcp", "vip": "198.18.0.100", "port": 80,
                               "x": {"y": [1, 2, {}]}}, "addr": "198.18.0.14"}),
            ERR_PARAMS,
            "service: unknown field 'x'",
        ),
        call(
            "server: missing service",
            "server.add",
            json!({"addr": "198.18.0.14"}),
            ERR_PARAMS,
            "missing field 'service'",
        ),
        call(
            "server: bad address",
            "server.add",
            server("198.18.0"),
            ERR_PARAMS,
            "addr: '198.18.0' is not an IPv4 address",
        ),
        call(
            "server: lower above upper threshold",
            "server.add",
            json!({"service": svc(), "addr": "198.18.0.14", "upper": 5, "lower": 6}),
            ERR_REFUSED,
            "lower threshold 6 is above upper threshold 5",
        ),
        call(
            "server: DR cannot change the port",
            "server.add",
            json!({"service": svc(), "addr": "198.18.0.14", "port": 8080}),
            ERR_REFUSED,
            "direct routing cannot change the port",
        ),
        call(
            "server: masquerading",
            "server.add",
            json!({"service": svc(), "addr": "198.18.0.14", "forward": "masq"}),
            ERR_REFUSED,
            "masquerading (-m) is not supported yet",
        ),
        // server.*: what the director refuses (finding 6) and what does not exist.
        call(
            "server: the VIP",
            "server.add",
            server("198.18.0.100"),
            ERR_REFUSED,
            "real server address 198.18.0.100 is a virtual service address",
        ),
        call(
            "server: the DIP",
            "server.add",
            server("198.18.0.2"),
            ERR_REFUSED,
            "real server address 198.18.0.2 is the director's own address",
        ),
        call(
            "server: off-link",
            "server.add",
            server("198.18.1.11"),
            ERR_REFUSED,
            "198.18.1.11 is not on the director's subnet 198.18.0.0/24",
        ),
        call(
            "server: loopback",
            "server.add",
            server("127.0.0.1"),
            ERR_REFUSED,
            "127.0.0.1 is a loopback address",
        ),
        call(
            "server: multicast",
            "server.add",
            server("224.0.0.1"),
            ERR_REFUSED,
            "invalid real server address 224.0.0.1",
        ),
        call(
            "server: broadcast",
            "server.add",
            server("255.255.255.255"),
            ERR_REFUSED,
            "invalid real server address 255.255.255.255",
        ),
        call(
            "server: 0.0.0.0",
            "server.add",
            server("0.0.0.0"),
            ERR_REFUSED,
            "invalid real server address 0.0.0.0",
        ),
        call(
            "server: the subnet's broadcast",
            "server.add",
            server("198.18.0.255"),
            ERR_REFUSED,
            "broadcast address of 198.18.0.0/24",
        ),
        call(
            "server: edited into the VIP's place",
            "server.edit",
            server("198.18.0.100"),
            ERR_REFUSED,
            "No such destination",
        ),
        call(
            "server: exists",
            "server.add",
            server("198.18.0.11"),
            ERR_REFUSED,
            "Destination already exists",
        ),
        call(
            "server: in a service that does not exist",
            "server.add",
            json!({"service": {"proto": "udp", "vip": "198.18.0.100", "port": 80},
                   "addr": "198.18.0.14"}),
            ERR_REFUSED,
            "Service not defined",
        ),
        call(
            "server: edit what does not exist",
            "server.edit",
            server("198.18.0.14"),
            ERR_REFUSED,
            "No such destination",
        ),
        call(
            "server: delete what does not exist",
            "server.delete",
            server("198.18.0.14"),
            ERR_REFUSED,
            "No such destination",
        ),
        call(
            "server: delete without an address",
            "server.delete",
            json!({"service": svc()}),
            ERR_PARAMS,
            "missing field 'addr'",
        ),
        // Static neighbours.
        call(
            "neighbour: the port's own MAC",
            "neighbour.set",
            json!({"addr": "198.18.0.14", "mac": "02:00:00:00:00:01"}),
            ERR_REFUSED,
            "02:00:00:00:00:01 is the director's own MAC",
        ),
        call(
            "neighbour: broadcast MAC",
            "neighbour.set",
            json!({"addr": "198.18.0.14", "mac": "ff:ff:ff:ff:ff:ff"}),
            ERR_REFUSED,
            "multicast (group) MAC",
        ),
        call(
            "neighbour: zero MAC",
            "neighbour.set",
            json!({"addr": "198.18.0.14", "mac": "00:00:00:00:00:00"}),
            ERR_REFUSED,
            "zero MAC",
        ),
        call(
            "neighbour: the DIP",
            "neighbour.set",
            json!({"addr": "198.18.0.2", "mac": "02:00:00:00:00:14"}),
            ERR_REFUSED,
            "director's own address",
        ),
        call(
            "neighbour: off-link",
            "neighbour.set",
            json!({"addr": "10.1.2.3", "mac": "02:00:00:00:00:14"}),
            ERR_REFUSED,
            "not on the director's subnet",
        ),
        call(
            "neighbour: multicast address",
            "neighbour.set",
            json!({"addr": "224.0.0.1", "mac": "02:00:00:00:00:14"}),
            ERR_PARAMS,
            "not a unicast address",
        ),
        call(
            "neighbour: bad MAC",
            "neighbour.set",
            json!({"addr": "198.18.0.14", "mac": "02:00:00"}),
            ERR_PARAMS,
            "mac: invalid MAC",
        ),
        call(
            "neighbour: delete an unknown address",
            "neighbour.delete",
            json!({"addr": "198.18.0.14"}),
            ERR_REFUSED,
            "No such static neighbour 198.18.0.14",
        ),
        call(
            "neighbour: delete without an address",
            "neighbour.delete",
            json!({}),
            ERR_PARAMS,
            "missing field 'addr'",
        ),
        call(
            "neighbour: delete a malformed address",
            "neighbour.delete",
            json!({"addr": "198.18.0"}),
            ERR_PARAMS,
            "addr:",
        ),
        call(
            "neighbour: delete with an address that is not a string",
            "neighbour.delete",
            json!({"addr": 13}),
            ERR_PARAMS,
            "addr:",
        ),
        call(
            "neighbour: delete with an unknown field",
            "neighbour.delete",
            json!({"addr": "198.18.0.13", "mac": "02:00:00:00:00:13"}),
            ERR_PARAMS,
            "unknown field 'mac'",
        ),
        call(
            "neighbours: list with params",
            "neighbours",
            json!({"addr": "198.18.0.13"}),
            ERR_PARAMS,
            "unknown field 'addr'",
        ),
        call(
            "rules: a neighbour line without its MAC",
            "rules.restore",
            json!({"text": "--set-neighbour 198.18.0.14\n"}),
            ERR_PARAMS,
            "line 1: --set-neighbour requires an address and a MAC",
        ),
        call(
            "rules: a neighbour line with a bad MAC",
            "rules.restore",
            json!({"text": "--set-neighbour 198.18.0.14 02:00:00:00:00\n"}),
            ERR_PARAMS,
            "line 1: illegal neighbour MAC specified",
        ),
        call(
            "rules: deleting an unknown neighbour",
            "rules.restore",
            json!({"text": "--delete-neighbour 198.18.0.14\n"}),
            ERR_REFUSED,
            "line 1: No such static neighbour 198.18.0.14",
        ),
        call(
            "rules: a neighbour off the director's link",
            "rules.restore",
            json!({"text": "--set-neighbour 10.1.2.3 02:00:00:00:00:14\n"}),
            ERR_REFUSED,
            "line 1: static neighbour 10.1.2.3 is not on the director's subnet",
        ),
        // Rules texts.
        call(
            "rules: sort not a boolean",
            "rules.save",
            json!({"sort": "yes"}),
            ERR_PARAMS,
            "sort: expected a boolean",
        ),
        call(
            "rules: text not a string",
            "rules.restore",
            json!({"text": 5}),
            ERR_PARAMS,
            "text: expected a string",
        ),
        call(
            "rules: a line that does not parse",
            "rules.restore",
            json!({"text": "-C\n-A -t 198.18.0.101:80 -s\n"}),
            ERR_PARAMS,
            "line 2: option `-s' requires a value",
        ),
        call(
            "rules: not a rule",
            "rules.restore",
            json!({"text": "-L -n\n"}),
            ERR_PARAMS,
            "line 1: only -A, -E, -D, -a, -e, -d, -C, --set-neighbour and --delete-neighbour are \
             allowed",
        ),
        call(
            "rules: all or nothing",
            "rules.restore",
            json!({"text": "-C\n-A -t 198.18.0.101:80 -s rr\n-A -t 198.18.0.101:80 -s rr\n"}),
            ERR_REFUSED,
            "line 3: Service already exists",
        ),
        call(
            "rules: an off-link real server",
            "rules.restore",
            json!({"text": "-a -t 198.18.0.100:80 -r 198.18.7.7:80 -g -w 1\n"}),
            ERR_REFUSED,
            "line 1: real server address 198.18.7.7 is not on the director's subnet",
        ),
        call(
            "rules: the DIP as a VIP",
            "rules.restore",
            json!({"text": "-C\n-A -u 198.18.0.2:53 -s rr\n"}),
            ERR_REFUSED,
            "line 2: virtual address 198.18.0.2 is the director's own address",
        ),
        // Health settings (health.server, health.service).
        call(
            "health: unknown field",
            "health.server",
            json!({"service": svc(), "server": {"addr": "198.18.0.11"}, "checks": [], "x": 1}),
            ERR_PARAMS,
            "unknown field 'x'",
        ),
        call(
            "health: missing checks",
            "health.server",
            json!({"service": svc(), "server": {"addr": "198.18.0.11"}}),
            ERR_PARAMS,
            "missing field 'checks'",
        ),
        call(
            "health: server as a string",
            "health.server",
            json!({"service": svc(), "server": "198.18.0.11", "checks": []}),
            ERR_PARAMS,
            "server: expected an object",
        ),
        call(
            "health: unknown field in server",
            "health.server",
            json!({"service": svc(), "server": {"addr": "198.18.0.11", "weight": 1}, "checks": []}),
            ERR_PARAMS,
            "server: unknown field 'weight'",
        ),
        call(
            "health: no such server",
            "health.server",
            json!({"service": svc(), "server": {"addr": "198.18.0.14"}, "checks": []}),
            ERR_REFUSED,
            "No such destination",
        ),
        call(
            "health: no such service",
            "health.server",
            json!({"service": {"proto": "udp", "vip": "198.18.0.100", "port": 80},
                   "server": {"addr": "198.18.0.11"}, "checks": []}),
            ERR_REFUSED,
            "Service not defined",
        ),
        call(
            "health: checks not an array",
            "health.server",
            json!({"service": svc(), "server": {"addr": "198.18.0.11"}, "checks": {"type": "TCP_CHECK"}}),
            ERR_PARAMS,
            "checks: expected an array",
        ),
        call(
            "health: unknown check type",
            "health.server",
            json!({"service": svc(), "server": {"addr": "198.18.0.11"}, "checks": [{"type": "SMTP_CHECK"}]}),
            ERR_PARAMS,
            "checks[0]: type: unknown check 'SMTP_CHECK'",
        ),
        call(
            "health: check without a type",
            "health.server",
            json!({"service": svc(), "server": {"addr": "198.18.0.11"}, "checks": [{"retry": 1}]}),
            ERR_PARAMS,
            "checks[0]: missing field 'type'",
        ),
        call(
            "health: a field of another check type",
            "health.server",
            json!({"service": svc(), "server": {"addr": "198.18.0.11"},
                   "checks": [{"type": "TCP_CHECK", "urls": []}]}),
            ERR_PARAMS,
            "checks[0]: unknown field 'urls' for TCP_CHECK",
        ),
        call(
            "health: a misspelt check field",
            "health.server",
            json!({"service": svc(), "server": {"addr": "198.18.0.11"},
                   "checks": [{"type": "TCP_CHECK"}, {"type": "TCP_CHECK", "delay_loop": 3}]}),
            ERR_PARAMS,
            "checks[1]: unknown field 'delay_loop'",
        ),
        call(
            "health: an unknown url field",
            "health.server",
            json!({"service": svc(), "server": {"addr": "198.18.0.11"},
                   "checks": [{"type": "HTTP_GET", "urls": [{"path": "/", "md5": "x"}]}]}),
            ERR_PARAMS,
            "checks[0]: urls[0]: unknown field 'md5'",
        ),
        call(
            "health: a timer as a string",
            "health.server",
            json!({"service": svc(), "server": {"addr": "198.18.0.11"},
                   "checks": [{"type": "TCP_CHECK", "connect_timeout_ms": "3s"}]}),
            ERR_PARAMS,
            "checks[0]: invalid type",
        ),
        call(
            "health: a zero timer",
            "health.server",
            json!({"service": svc(), "server": {"addr": "198.18.0.11"},
                   "checks": [{"type": "TCP_CHECK", "delay_loop_ms": 0}]}),
            ERR_PARAMS,
            "checks[0]: delay_loop_ms: 0 is not in 1..=86400000",
        ),
        call(
            "health: a bad digest",
            "health.server",
            json!({"service": svc(), "server": {"addr": "198.18.0.11"},
                   "checks": [{"type": "HTTP_GET", "urls": [{"path": "/", "digest": "abc"}]}]}),
            ERR_PARAMS,
            "checks[0]: digest: \"abc\" is not 32 hex digits",
        ),
        call(
            "health: an HTTP check without urls",
            "health.server",
            json!({"service": svc(), "server": {"addr": "198.18.0.11"},
                   "checks": [{"type": "SSL_GET", "urls": []}]}),
            ERR_PARAMS,
            "checks[0]: urls: an HTTP check needs at least one url",
        ),
        call(
            "health: MISC_CHECK without a path",
            "health.server",
            json!({"service": svc(), "server": {"addr": "198.18.0.11"},
                   "checks": [{"type": "MISC_CHECK"}]}),
            ERR_PARAMS,
            "checks[0]: missing field `path`",
        ),
        call(
            "health: inhibit_on_failure as a string",
            "health.server",
            json!({"service": svc(), "server": {"addr": "198.18.0.11"}, "checks": [],
                   "inhibit_on_failure": "yes"}),
            ERR_PARAMS,
            "inhibit_on_failure: expected a boolean",
        ),
        call(
            "health: quorum 0",
            "health.service",
            json!({"service": svc(), "quorum": 0}),
            ERR_PARAMS,
            "quorum: 0 is out of range 1..=4294967295",
        ),
        call(
            "health: negative hysteresis",
            "health.service",
            json!({"service": svc(), "hysteresis": -1}),
            ERR_PARAMS,
            "hysteresis: -1 is out of range",
        ),
        call(
            "health: empty quorum script",
            "health.service",
            json!({"service": svc(), "quorum_down": " "}),
            ERR_PARAMS,
            "quorum_down: expected a command line",
        ),
        call(
            "health: a quorum script of two lines",
            "health.service",
            json!({"service": svc(), "quorum_up": "a\nb"}),
            ERR_PARAMS,
            "quorum_up: expected a command line",
        ),
        call(
            "health: unknown service field",
            "health.service",
            json!({"service": svc(), "sorry": {"addr": "198.18.0.14"}}),
            ERR_PARAMS,
            "unknown field 'sorry'",
        ),
        call(
            "health: sorry server off-link",
            "health.service",
            json!({"service": svc(), "sorry_server": {"addr": "10.0.0.1"}}),
            ERR_REFUSED,
            "sorry_server: real server address 10.0.0.1 is not on the director's subnet",
        ),
        call(
            "health: sorry server on another port",
            "health.service",
            json!({"service": svc(), "sorry_server": {"addr": "198.18.0.14", "port": 8080}}),
            ERR_REFUSED,
            "sorry_server: direct routing cannot change the port",
        ),
        call(
            "health: sorry server weight 0",
            "health.service",
            json!({"service": svc(), "sorry_server": {"addr": "198.18.0.14", "weight": 0}}),
            ERR_PARAMS,
            "sorry_server: weight: 0 is out of range 1..=65535",
        ),
        call(
            "health: sorry server with a forwarding method",
            "health.service",
            json!({"service": svc(), "sorry_server": {"addr": "198.18.0.14", "forward": "dr"}}),
            ERR_PARAMS,
            "sorry_server: unknown field 'forward'",
        ),
        call(
            "health: service of no service",
            "health.service",
            json!({"service": {"proto": "udp", "vip": "198.18.0.100", "port": 80}}),
            ERR_REFUSED,
            "Service not defined",
        ),
        // Timeouts, listings, counters.
        call(
            "timeouts: missing udp",
            "timeouts.set",
            json!({"tcp": 900, "tcp_fin": 120}),
            ERR_PARAMS,
            "missing field 'udp'",
        ),
        call(
            "timeouts: too large",
            "timeouts.set",
            json!({"tcp": 2678401, "tcp_fin": 0, "udp": 0}),
            ERR_PARAMS,
            "tcp: 2678401 is out of range",
        ),
        call(
            "connections: limit 0",
            "connections",
            json!({"limit": 0}),
            ERR_PARAMS,
            "limit: 0 is out of range",
        ),
        call(
            "list: no such service",
            "list",
            json!({"service": {"proto": "tcp", "vip": "198.18.0.100", "port": 81}}),
            ERR_REFUSED,
            "No such service",
        ),
        call(
            "zero: no such service",
            "zero",
            json!({"service": {"proto": "udp", "vip": "198.18.0.101", "port": 53}}),
            ERR_REFUSED,
            "No such service",
        ),
    ];
    // Generated: nesting deeper than the parser allows, and a very long method name.
    let deep = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"clear","params":{{"a":{}1{}}}}}"#,
        "[".repeat(5000),
        "]".repeat(5000)
    );
    v.push(raw(
        "nesting 5000 deep",
        deep.as_bytes(),
        ERR_PARSE,
        "recursion limit exceeded",
    ));
    v.push(call(
        "a 100 kB method name",
        &"m".repeat(100_000),
        json!({}),
        ERR_METHOD,
        "unknown method 'mmmm",
    ));
    v
}

fn check(case: &Case, v: &Value) {
    assert_eq!(v["jsonrpc"], "2.0", "{}: {v}", case.name);
    assert!(v.get("result").is_none(), "{}: accepted: {v}", case.name);
    assert_eq!(v["error"]["code"], case.code, "{}: {v}", case.name);
    let msg = v["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains(case.want),
        "{}: message {msg:?} lacks {:?}",
        case.name,
        case.want
    );
}

#[test]
fn the_table_is_large_enough_and_names_are_unique() {
    let cases = cases();
    eprintln!("{} bad control requests", cases.len());
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let mut names: Vec<&str> = cases.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), cases.len());
}

#[test]
fn bad_requests_in_process() {
    let c = lab();
    let before = state(&c);
    for case in cases() {
        let v = reply(&c, &case.line);
        check(&case, &v);
        assert_eq!(state(&c), before, "{}: the rules changed", case.name);
        let v = reply(&c, VERSION);
        assert_eq!(v["result"]["name"], "rvs", "{}: then {v}", case.name);
    }
}

#[test]
fn bad_requests_through_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("control.sock");
    let c = Arc::new(lab());
    let before = state(&c);
    let stop = Arc::new(AtomicBool::new(false));
    let h = serve(&path, c.clone(), stop.clone()).unwrap();
    let s = UnixStream::connect(&path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    let mut line = |bytes: &[u8]| -> Value {
        w.write_all(bytes).unwrap();
        w.write_all(b"\n").unwrap();
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        serde_json::from_str(&l).unwrap_or_else(|e| panic!("{l:?}: {e}"))
    };
    for case in cases() {
        check(&case, &line(&case.line));
        assert_eq!(line(VERSION)["result"]["name"], "rvs", "{}", case.name);
    }
    assert_eq!(state(&c), before);
    // A line longer than MAX_LINE is refused and that connection closed; the server lives on.
    let mut s = UnixStream::connect(&path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let big = vec![b' '; 1 << 20];
    let mut sent = 0;
    while sent <= MAX_LINE {
        if s.write_all(&big).is_err() {
            break;
        }
        sent += big.len();
    }
    let mut l = String::new();
    r.read_line(&mut l).unwrap();
    let v: Value = serde_json::from_str(&l).unwrap();
    assert_eq!(v["error"]["code"], ERR_INVALID_REQUEST, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("request line longer than"),
        "{v}"
    );
    assert_eq!(line(VERSION)["result"]["name"], "rvs");
    assert_eq!(state(&c), before);
    stop.store(true, Ordering::Relaxed);
    h.join().unwrap();
}
