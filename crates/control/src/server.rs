//! The JSON control socket: JSON-RPC 2.0, one request per line, one response line per request.
//!
//! The control thread (never a worker lcore) owns the [`Model`] behind a mutex. Every mutating
//! method works on a clone: apply the change, ask the dataplane to publish a snapshot of the
//! clone, and only when both succeed does the clone replace the model. A refused change leaves
//! model and dataplane exactly as they were. Methods and examples: `docs/control.md`.
//!
//! Error codes: the JSON-RPC ones (-32700 parse error, -32600 invalid request, -32601 unknown
//! method, -32602 invalid params, -32603 internal error), plus [`ERR_REFUSED`] (the model refused
//! the change; the message is ipvsadm's where one exists, e.g. "Service already exists") and
//! [`ERR_PUBLISH`] (the dataplane could not take the new snapshot).

use crate::check::{
    CheckSpec, HealthSink, ProbeKey, ProbeStatus, QuorumAction, ServerHealth, ServiceHealth,
};
use crate::ha::{HaSink, InstanceStatus};
use crate::liveness::{self, Liveness};
use crate::proto::*;
use crate::rules;
use crate::strict::{self, StrictError};
use rvs_dataplane::model::{
    Forward, Model, ModelError, Protocol, SchedulerKind, ServerSpec, ServiceKey, ServiceSpec,
    StaticNeighbour, Timeouts, MAX_WEIGHT,
};
use rvs_dataplane::report::{Counters, MacAddr};
use serde_json::{json, Map, Value};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A JSON-RPC error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RpcError {
    pub code: i64,
    pub message: String,
}

impl RpcError {
    fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
        }
    }
    fn params(message: impl Into<String>) -> Self {
        Self::new(ERR_PARAMS, message)
    }
    fn refused(e: ModelError) -> Self {
        Self::new(ERR_REFUSED, e.to_string())
    }
}

/// The control plane: the model, what the health checks say of it, and the dataplane it
/// publishes to. It is the checker's [`HealthSink`]: probes' results come in through
/// [`HealthSink::report`] and change the model like any other change (clone, publish,
/// commit), only when the snapshot would differ.
pub struct Control {
    model: Mutex<Model>,
    /// Health settings and probe statuses (always locked after `model`, never alone for a
    /// change).
    live: Mutex<Liveness>,
    /// Moves whenever the set of probes changes ([`HealthSink::probes_generation`]).
    generation: AtomicU64,
    dp: Arc<dyn Dataplane>,
    /// What `version` reports: the daemon's name, version and commit.
    build: Build,
    /// VRRP instances as the HA thread last reported them ([`HaSink::status`]).
    vrrp: Mutex<Vec<InstanceStatus>>,
    /// The HA thread's counters for `stats` (`sync`), when connection sync runs.
    ha_stats: Mutex<Option<HaStatsFn>>,
    /// `director.drain`: the operator asked this director to stop announcing its VIPs.
    draining: AtomicBool,
}

/// What `stats` shows of connection sync (set by the daemon once its sync thread runs).
pub type HaStatsFn = Box<dyn Fn() -> serde_json::Value + Send + Sync>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave a half-applied change (changes go to a clone),
    // so a poisoned lock still guards a consistent state.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Now, Unix time in ms.
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Longest `quorum_up` / `quorum_down` command.
pub const MAX_QUORUM_COMMAND: usize = 4096;

type Params = Map<String, Value>;

impl Control {
    pub fn new(model: Model, dp: Arc<dyn Dataplane>) -> Self {
        let mut model = model;
        let mut live = Liveness::new();
        live.sync(&mut model, unix_ms());
        Control {
            model: Mutex::new(model),
            live: Mutex::new(live),
            generation: AtomicU64::new(1),
            dp,
            build: Build::default(),
            vrrp: Mutex::new(Vec::new()),
            ha_stats: Mutex::new(None),
            draining: AtomicBool::new(false),
        }
    }

    /// Whether the director is draining (`director.drain`): nothing is announced to routers.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Start (`true`) or end draining; returns the previous setting.
    pub fn set_draining(&self, on: bool) -> bool {
        let was = self.draining.swap(on, Ordering::AcqRel);
        if was != on {
            tracing::info!(draining = on, "director drain");
        }
        was
    }

    /// `stats` shows `f()` as `sync` from now on.
    pub fn set_ha_stats(&self, f: HaStatsFn) {
        *lock(&self.ha_stats) = Some(f);
    }

    /// The VRRP instances as last reported.
    pub fn vrrp_status(&self) -> Vec<InstanceStatus> {
        lock(&self.vrrp).clone()
    }

    /// What `version` reports (the daemon passes its own name, version and commit).
    pub fn with_build(mut self, build: Build) -> Self {
        self.build = build;
        self
    }

    /// A copy of the current model.
    pub fn model(&self) -> Model {
        lock(&self.model).clone()
    }

    /// Handle one request line, return one response line (no trailing newline). Never panics.
    pub fn handle_line(&self, line: &str) -> String {
        self.handle_bytes(line.as_bytes())
    }

    /// [`Control::handle_line`] for a line as read from the socket (without its `\n`; a
    /// trailing `\r` is ignored): bytes that are not UTF-8 get a parse error.
    pub fn handle_bytes(&self, line: &[u8]) -> String {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.handle(line)));
        match out {
            Ok(s) => s,
            Err(_) => error_line(
                &Value::Null,
                ERR_INTERNAL,
                "internal error while handling the request",
            ),
        }
    }

    /// Set or replace the health settings of a real server of a service (`port` 0 = the
    /// service port): its checks (none = always up) and `inhibit_on_failure`. Each check is
    /// validated; the server keeps its slot, id and counters whatever its health.
    pub fn set_server_health(
        &self,
        key: &ServiceKey,
        addr: Ipv4Addr,
        port: u16,
        health: ServerHealth,
    ) -> Result<(), RpcError> {
        for (i, c) in health.checks.iter().enumerate() {
            c.validate()
                .map_err(|e| RpcError::params(format!("checks[{i}]: {e}")))?;
        }
        let now = unix_ms();
        self.mutate_with(|m, l| {
            l.set_server(m, key, addr, port, health, now)
                .map_err(RpcError::refused)
        })
        .map(|_| ())
    }

    /// Set or replace the health settings of a service: its sorry server (checked as a real
    /// server), quorum, hysteresis and quorum scripts. Its quorum starts again (met if the
    /// weights of its servers that are up reach `quorum`).
    pub fn set_service_health(
        &self,
        key: &ServiceKey,
        health: ServiceHealth,
    ) -> Result<(), RpcError> {
        if health.quorum == 0 {
            return Err(RpcError::params("quorum: must be at least 1"));
        }
        for (name, cmd) in [
            ("quorum_up", &health.quorum_up),
            ("quorum_down", &health.quorum_down),
        ] {
            if let Some(c) = cmd {
                if c.trim().is_empty() || c.len() > MAX_QUORUM_COMMAND || c.contains(['\0', '\n']) {
                    return Err(RpcError::params(format!(
                        "{name}: expected a command line (1..={MAX_QUORUM_COMMAND} bytes, one \
                         line)"
                    )));
                }
            }
        }
        let director = self.dp.director();
        self.mutate_with(|m, l| {
            if let Some(s) = &health.sorry_server {
                director
                    .check_server(m, s)
                    .map_err(|e| RpcError::refused(sorry_error(e)))?;
            }
            l.set_service(m, key, health)
                .map_err(|e| RpcError::refused(sorry_error(e)))
        })
        .map(|_| ())
    }

    /// Apply a whole ipvsadm `-S` rules text; all-or-nothing. Returns the number of rules.
    pub fn apply_rules(&self, text: &str) -> Result<usize, RpcError> {
        self.restore(text)
    }

    /// Replace every service by those of `text` (ipvsadm `-S` format), as one change: `-C`
    /// then the rules, published as a single snapshot, or nothing changes (a bad rule leaves
    /// the running services as they were). Real servers that stay keep their slot and id
    /// (the destination trash), so their flows are not disturbed; health settings of services
    /// and servers that stay are kept. Returns the number of rules.
    pub fn replace_rules(&self, text: &str) -> Result<usize, RpcError> {
        let parsed = rules::parse(text).map_err(|e| RpcError::params(e.to_string()))?;
        let director = self.dp.director();
        let mut n = 0;
        self.mutate(|m| {
            m.clear();
            n = rules::apply_checked(m, &parsed, |m, cmd| director.check_command(m, cmd))
                .map_err(|e| RpcError::new(ERR_REFUSED, e.to_string()))?;
            Ok(())
        })?;
        Ok(n)
    }

    fn handle(&self, line: &[u8]) -> String {
        if std::str::from_utf8(line).is_err() {
            return error_line(&Value::Null, ERR_PARSE, "request is not valid UTF-8");
        }
        let req: Value = match strict::parse(line) {
            Ok(v) => v,
            Err(StrictError::Json(e)) => {
                return error_line(&Value::Null, ERR_PARSE, &format!("parse error: {e}"))
            }
            Err(StrictError::Duplicate(path)) => {
                let (code, part) = if path.starts_with("params.") {
                    (ERR_PARAMS, "params")
                } else {
                    (ERR_INVALID_REQUEST, "the request")
                };
                return error_line(
                    &Value::Null,
                    code,
                    &format!("duplicate key '{path}' in {part}"),
                );
            }
        };
        let obj = match req {
            Value::Object(o) => o,
            Value::Array(_) => {
                return error_line(
                    &Value::Null,
                    ERR_INVALID_REQUEST,
                    "batch requests are not supported; send one request per line",
                )
            }
            _ => {
                return error_line(
                    &Value::Null,
                    ERR_INVALID_REQUEST,
                    "a request must be a JSON object",
                )
            }
        };
        let id = match obj.get("id") {
            None => Value::Null,
            Some(v @ (Value::Null | Value::String(_) | Value::Number(_))) => v.clone(),
            Some(_) => {
                return error_line(
                    &Value::Null,
                    ERR_INVALID_REQUEST,
                    "id must be a string, a number or null",
                )
            }
        };
        if let Some(k) = obj
            .keys()
            .find(|k| !matches!(k.as_str(), "jsonrpc" | "method" | "params" | "id"))
        {
            return error_line(
                &id,
                ERR_INVALID_REQUEST,
                &format!("unknown request member '{k}'"),
            );
        }
        if obj.get("jsonrpc") != Some(&Value::String("2.0".into())) {
            return error_line(&id, ERR_INVALID_REQUEST, "jsonrpc must be \"2.0\"");
        }
        let Some(Value::String(method)) = obj.get("method") else {
            return error_line(&id, ERR_INVALID_REQUEST, "method must be a string");
        };
        let empty = Map::new();
        let params = match obj.get("params") {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(p)) => p,
            Some(_) => return error_line(&id, ERR_PARAMS, "params must be an object"),
        };
        match self.dispatch(method, params) {
            Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string(),
            Err(e) => error_line(&id, e.code, &e.message),
        }
    }

    fn dispatch(&self, method: &str, p: &Params) -> Result<Value, RpcError> {
        match method {
            "version" => {
                fields(p, &[])?;
                serde_json::to_value(self.build)
                    .map_err(|e| RpcError::new(ERR_INTERNAL, e.to_string()))
            }
            "service.add" | "service.edit" => {
                let spec = service_spec(p)?;
                let add = method == "service.add";
                let director = self.dp.director();
                self.mutate(|m| {
                    let vip = spec.key.vip;
                    if add {
                        m.add_service(spec)
                            .and_then(|()| director.check_vip(m, vip))
                    } else {
                        m.edit_service(spec)
                    }
                    .map_err(RpcError::refused)
                })
            }
            "service.delete" => {
                fields(p, &params::Key::FIELDS)?;
                let key = service_key(p)?;
                self.mutate(|m| m.delete_service(&key).map_err(RpcError::refused))
            }
            "server.add" | "server.edit" => {
                fields(p, &params::Server::FIELDS)?;
                let key = nested_key(p)?;
                let spec = server_spec(p)?;
                let add = method == "server.add";
                let director = self.dp.director();
                self.mutate(|m| {
                    if add {
                        m.add_server(&key, spec)
                    } else {
                        m.edit_server(&key, spec)
                    }
                    .and_then(|()| director.check_server(m, &spec))
                    .map_err(RpcError::refused)
                })
            }
            "server.delete" => {
                fields(p, &params::ServerDelete::FIELDS)?;
                let key = nested_key(p)?;
                let addr = ipv4(p, "addr")?.ok_or_else(|| missing("addr"))?;
                let port = uint(p, "port", 0, 65535)?.unwrap_or(0) as u16;
                self.mutate(|m| m.delete_server(&key, addr, port).map_err(RpcError::refused))
            }
            "clear" => {
                fields(p, &[])?;
                self.mutate(|m| {
                    m.clear();
                    Ok(())
                })
            }
            "health.server" => {
                fields(p, &params::HealthServer::FIELDS)?;
                let key = nested_key(p)?;
                let (addr, port) = match p.get("server") {
                    Some(Value::Object(o)) => {
                        fields(o, &params::ServerRef::FIELDS)
                            .map_err(|e| RpcError::params(format!("server: {}", e.message)))?;
                        let addr = ipv4(o, "addr")
                            .and_then(|a| a.ok_or_else(|| missing("addr")))
                            .map_err(|e| RpcError::params(format!("server: {}", e.message)))?;
                        let port = uint(o, "port", 0, 65535)
                            .map_err(|e| RpcError::params(format!("server: {}", e.message)))?
                            .unwrap_or(0) as u16;
                        (addr, port)
                    }
                    None | Some(Value::Null) => return Err(missing("server")),
                    Some(_) => {
                        return Err(RpcError::params("server: expected an object {addr, port}"))
                    }
                };
                let checks = match p.get("checks") {
                    Some(Value::Array(a)) => a
                        .iter()
                        .enumerate()
                        .map(|(i, c)| {
                            check_spec(c).map_err(|e| RpcError::params(format!("checks[{i}]: {e}")))
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                    None | Some(Value::Null) => return Err(missing("checks")),
                    Some(_) => return Err(RpcError::params("checks: expected an array of checks")),
                };
                let inhibit_on_failure = boolean(p, "inhibit_on_failure")?.unwrap_or(false);
                self.set_server_health(
                    &key,
                    addr,
                    port,
                    ServerHealth {
                        checks,
                        inhibit_on_failure,
                    },
                )?;
                Ok(json!({}))
            }
            "health.service" => {
                fields(p, &params::HealthService::FIELDS)?;
                let key = nested_key(p)?;
                let sorry_server = match p.get("sorry_server") {
                    None | Some(Value::Null) => None,
                    Some(Value::Object(o)) => {
                        let e =
                            |e: RpcError| RpcError::params(format!("sorry_server: {}", e.message));
                        fields(o, &params::SorryServer::FIELDS).map_err(e)?;
                        let addr = ipv4(o, "addr")
                            .and_then(|a| a.ok_or_else(|| missing("addr")))
                            .map_err(e)?;
                        let port = uint(o, "port", 0, 65535).map_err(e)?.unwrap_or(0) as u16;
                        let weight = uint(o, "weight", 1, u64::from(MAX_WEIGHT))
                            .map_err(e)?
                            .unwrap_or(1) as u32;
                        Some(ServerSpec {
                            addr,
                            port,
                            weight,
                            forward: Forward::Dr,
                            upper: 0,
                            lower: 0,
                        })
                    }
                    Some(_) => {
                        return Err(RpcError::params(
                            "sorry_server: expected an object {addr, port, weight}",
                        ))
                    }
                };
                let d = ServiceHealth::default();
                let health = ServiceHealth {
                    sorry_server,
                    quorum: uint(p, "quorum", 1, u64::from(u32::MAX))?
                        .map_or(d.quorum, |v| v as u32),
                    hysteresis: uint(p, "hysteresis", 0, u64::from(u32::MAX))?
                        .map_or(d.hysteresis, |v| v as u32),
                    quorum_up: string(p, "quorum_up")?.map(str::to_string),
                    quorum_down: string(p, "quorum_down")?.map(str::to_string),
                };
                self.set_service_health(&key, health)?;
                Ok(json!({}))
            }
            "list" => {
                fields(p, &["service"])?;
                let filter = optional_nested_key(p)?;
                let model = lock(&self.model).clone();
                if let Some(k) = &filter {
                    if model.service(k).is_none() {
                        return Err(RpcError::refused(ModelError::NoSuchService));
                    }
                }
                let reply = self.list(&model, filter.as_ref());
                serde_json::to_value(reply).map_err(|e| RpcError::new(ERR_INTERNAL, e.to_string()))
            }
            "stats" => {
                fields(p, &[])?;
                let model = lock(&self.model).clone();
                let mut v = serde_json::to_value(self.dp.stats(&model))
                    .map_err(|e| RpcError::new(ERR_INTERNAL, e.to_string()))?;
                if let Some(o) = v.as_object_mut() {
                    let vrrp = self.vrrp_status();
                    if !vrrp.is_empty() {
                        o.insert("vrrp".into(), json!(vrrp));
                    }
                    if let Some(f) = lock(&self.ha_stats).as_ref() {
                        o.insert("sync".into(), f());
                    }
                }
                Ok(v)
            }
            "zero" => {
                fields(p, &params::Zero::FIELDS)?;
                let filter = optional_nested_key(p)?;
                let model = lock(&self.model).clone();
                match filter {
                    None => self.dp.zero(&model),
                    Some(k) => {
                        if model.service(&k).is_none() {
                            return Err(RpcError::refused(ModelError::NoSuchService));
                        }
                        // Hand the dataplane a model holding only that service (same slots).
                        let mut only = model;
                        let others: Vec<ServiceKey> = only
                            .services()
                            .iter()
                            .map(|s| s.spec.key)
                            .filter(|o| *o != k)
                            .collect();
                        for o in others {
                            let _ = only.delete_service(&o);
                        }
                        self.dp.zero(&only);
                    }
                }
                Ok(json!({}))
            }
            "neighbour.set" => {
                fields(p, &["addr", "mac"])?;
                let addr = ipv4(p, "addr")?.ok_or_else(|| missing("addr"))?;
                if addr.is_unspecified() || addr.is_broadcast() || addr.is_multicast() {
                    return Err(RpcError::params(format!(
                        "addr: {addr} is not a unicast address"
                    )));
                }
                let mac = string(p, "mac")?.ok_or_else(|| missing("mac"))?;
                let mac: MacAddr = mac
                    .parse()
                    .map_err(|e: String| RpcError::params(format!("mac: {e}")))?;
                let n = StaticNeighbour { addr, mac: mac.0 };
                self.dp
                    .director()
                    .check_static(&n)
                    .map_err(RpcError::refused)?;
                self.mutate(|m| m.set_static_neighbour(n).map_err(RpcError::refused))
            }
            "neighbour.delete" => {
                fields(p, &["addr"])?;
                let addr = ipv4(p, "addr")?.ok_or_else(|| missing("addr"))?;
                self.mutate(|m| m.delete_static_neighbour(addr).map_err(RpcError::refused))
            }
            "neighbours" => {
                fields(p, &[])?;
                let model = lock(&self.model).clone();
                let mut statics = model.statics.clone();
                statics.sort_by_key(|n| n.addr);
                let list: Vec<Value> = statics
                    .iter()
                    .map(|n| json!({"addr": n.addr, "mac": MacAddr(n.mac)}))
                    .collect();
                Ok(json!({ "neighbours": list }))
            }
            "rules.save" => {
                fields(p, &["sort"])?;
                let sort = match p.get("sort") {
                    None | Some(Value::Null) => false,
                    Some(Value::Bool(b)) => *b,
                    Some(_) => return Err(RpcError::params("sort: expected a boolean")),
                };
                let model = lock(&self.model).clone();
                Ok(json!({ "text": rules::emit(&model, sort) }))
            }
            "rules.restore" => {
                fields(p, &["text"])?;
                let text = string(p, "text")?.ok_or_else(|| missing("text"))?;
                let n = self.restore(text)?;
                Ok(json!({ "applied": n }))
            }
            "timeouts" => {
                fields(p, &[])?;
                serde_json::to_value(self.dp.timeouts())
                    .map_err(|e| RpcError::new(ERR_INTERNAL, e.to_string()))
            }
            "timeouts.set" => {
                // ipvsadm --set tcp tcpfin udp: 0 leaves that timeout unchanged.
                fields(p, &params::TIMEOUTS_FIELDS)?;
                let mut v = [0u32; 3];
                for (i, k) in ["tcp", "tcp_fin", "udp"].iter().enumerate() {
                    v[i] = uint(p, k, 0, u64::from(MAX_TIMEOUT))?.ok_or_else(|| missing(k))? as u32;
                }
                // Serialised with the model changes, so two --set never interleave.
                let _guard = lock(&self.model);
                let cur = self.dp.timeouts();
                let pick = |new: u32, old: u32| if new == 0 { old } else { new };
                let next = Timeouts {
                    tcp: pick(v[0], cur.tcp),
                    tcp_fin: pick(v[1], cur.tcp_fin),
                    udp: pick(v[2], cur.udp),
                };
                self.dp.set_timeouts(next).map_err(|e| {
                    RpcError::new(ERR_PUBLISH, format!("dataplane refused the change: {e}"))
                })?;
                serde_json::to_value(next).map_err(|e| RpcError::new(ERR_INTERNAL, e.to_string()))
            }
            "connections" => {
                fields(p, &["limit"])?;
                let limit = uint(p, "limit", 1, MAX_CONNECTIONS as u64)?
                    .unwrap_or(DEFAULT_CONNECTIONS as u64) as usize;
                let conns = self.dp.connections(limit);
                Ok(json!({ "connections": conns }))
            }
            "director.drain" => {
                fields(p, &params::Drain::FIELDS)?;
                let on = boolean(p, "on")?.ok_or_else(|| missing("on"))?;
                let was = self.set_draining(on);
                Ok(json!({ "draining": on, "was": was }))
            }
            other => Err(RpcError::new(
                ERR_METHOD,
                format!("unknown method '{other}'"),
            )),
        }
    }

    /// Clone, change, publish, then commit; on any error nothing changes.
    fn mutate<F>(&self, f: F) -> Result<Value, RpcError>
    where
        F: FnOnce(&mut Model) -> Result<(), RpcError>,
    {
        self.mutate_with(|m, _| f(m))
    }

    /// [`Control::mutate`] of the model and the health memory together: after `f`, the health
    /// memory follows the model (settings of deleted servers and services dropped, states and
    /// quorum applied), then the whole is published and committed, or nothing changes.
    fn mutate_with<F>(&self, f: F) -> Result<Value, RpcError>
    where
        F: FnOnce(&mut Model, &mut Liveness) -> Result<(), RpcError>,
    {
        let mut guard = lock(&self.model);
        let mut live = lock(&self.live);
        let mut next = guard.clone();
        let mut lnext = live.clone();
        f(&mut next, &mut lnext)?;
        let (out, actions) = lnext.sync(&mut next, unix_ms());
        self.dp.publish(&next).map_err(|e| {
            RpcError::new(ERR_PUBLISH, format!("dataplane refused the change: {e}"))
        })?;
        lnext.dirty = false;
        lnext.queue(actions);
        *guard = next;
        *live = lnext;
        if out.probes_changed {
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        out.log();
        Ok(json!({}))
    }

    fn restore(&self, text: &str) -> Result<usize, RpcError> {
        let parsed = rules::parse(text).map_err(|e| RpcError::params(e.to_string()))?;
        let director = self.dp.director();
        let mut n = 0;
        self.mutate(|m| {
            n = rules::apply_checked(m, &parsed, |m, cmd| director.check_command(m, cmd))
                .map_err(|e| RpcError::new(ERR_REFUSED, e.to_string()))?;
            Ok(())
        })?;
        Ok(n)
    }

    fn list(&self, model: &Model, filter: Option<&ServiceKey>) -> ListReply {
        let stats = self.dp.stats(model);
        let live = lock(&self.live).clone();
        let mut services = Vec::new();
        for svc in model.services() {
            let key = svc.spec.key;
            if filter.is_some_and(|f| *f != key) {
                continue;
            }
            let ss = stats.services.iter().find(|s| s.key == key);
            let servers = svc
                .servers
                .iter()
                .map(|rs| {
                    let st = ss.and_then(|ss| {
                        ss.servers
                            .iter()
                            .find(|x| x.addr == rs.spec.addr && x.port == rs.spec.port)
                    });
                    ListedServer {
                        addr: rs.spec.addr,
                        port: rs.spec.port,
                        weight: rs.spec.weight,
                        forward: rs.spec.forward,
                        upper: rs.spec.upper,
                        lower: rs.spec.lower,
                        active_conns: st.map_or(0, |s| s.active_conns),
                        inactive_conns: st.map_or(0, |s| s.inactive_conns),
                        persistent_conns: st.map_or(0, |s| s.persistent_conns),
                        counters: st.map_or_else(Counters::default, |s| s.counters),
                        neighbour: self.dp.neighbour(rs.spec.addr),
                        health: Some(live.server_view(&key, rs)),
                    }
                })
                .collect();
            services.push(ListedService {
                proto: key.proto,
                vip: key.vip,
                port: key.port,
                scheduler: svc.spec.scheduler,
                persistent: svc.spec.persistent,
                netmask: svc.spec.netmask,
                flags: svc.spec.flags.clone(),
                counters: ss.map_or_else(Counters::default, |s| s.counters),
                servers,
                sorry_server: svc.sorry.as_ref().map(|s| s.spec),
                sorry_active: svc.sorry_active().is_some(),
                quorum: live.service_settings(&key).quorum,
                quorum_met: !svc.quorum_lost,
            });
        }
        ListReply {
            services,
            vrrp: self.vrrp_status(),
        }
    }
}

impl HaSink for Control {
    /// Hold `vips` in standby or take them back, as a new snapshot (only when it changes
    /// something). The model keeps the standby set across every other change.
    fn set_master(&self, instance: &str, vips: &[Ipv4Addr], master: bool) -> Result<(), String> {
        let mut guard = lock(&self.model);
        let mut next = guard.clone();
        if !next.set_vips_master(vips, master) {
            return Ok(());
        }
        self.dp
            .publish(&next)
            .map_err(|e| format!("vrrp instance {instance}: VIPs not published: {e}"))?;
        *guard = next;
        Ok(())
    }

    fn garp(&self, vip: Ipv4Addr) {
        if !self.dp.request_garp(vip) {
            tracing::debug!(%vip, "gratuitous ARP not queued");
        }
    }

    fn status(&self, s: &InstanceStatus) {
        let mut v = lock(&self.vrrp);
        match v.iter_mut().find(|x| x.name == s.name) {
            Some(x) => *x = s.clone(),
            None => v.push(s.clone()),
        }
    }
}

impl HealthSink for Control {
    fn probes_generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn probes(&self) -> Vec<ProbeKey> {
        let _model = lock(&self.model);
        lock(&self.live).probes().to_vec()
    }

    /// Keep the status; when its verdict changed (or an earlier change could not be
    /// published), bring the model in line and publish it if the snapshot differs. Returns
    /// the quorum commands of every committed change not handed out yet.
    fn report(&self, key: &ProbeKey, status: &ProbeStatus) -> Vec<QuorumAction> {
        let mut guard = lock(&self.model);
        let mut live = lock(&self.live);
        if !live.knows(key) {
            // A probe that is no longer configured (its result came in after the change).
            return live.take_pending();
        }
        let matters = live.record(key, status);
        if matters || live.dirty {
            let mut next = guard.clone();
            let mut lnext = live.clone();
            let (out, actions) = lnext.sync(&mut next, unix_ms());
            let published = if next.services() == guard.services() {
                Ok(())
            } else {
                self.dp.publish(&next)
            };
            match published {
                Ok(()) => {
                    lnext.dirty = false;
                    lnext.queue(actions);
                    *guard = next;
                    *live = lnext;
                    if out.probes_changed {
                        self.generation.fetch_add(1, Ordering::AcqRel);
                    }
                    out.log();
                }
                Err(e) => {
                    tracing::warn!(
                        probe = %format!("{} {}:{}", key.check.kind.name(), key.addr, key.port),
                        "health change not applied, the dataplane refused it (retried with the \
                         next report): {e}"
                    );
                    live.dirty = true;
                }
            }
        }
        live.take_pending()
    }
}

fn error_line(id: &Value, code: i64, message: &str) -> String {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}).to_string()
}

fn missing(name: &str) -> RpcError {
    RpcError::params(format!("missing field '{name}'"))
}

/// Reject members not in `allowed`.
fn fields(p: &Params, allowed: &[&str]) -> Result<(), RpcError> {
    if let Some(k) = p.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(RpcError::params(if allowed.is_empty() {
            format!("unknown field '{k}' (this method takes no parameters)")
        } else {
            format!(
                "unknown field '{k}' (expected one of: {})",
                allowed.join(", ")
            )
        }));
    }
    Ok(())
}

fn string<'a>(p: &'a Params, name: &str) -> Result<Option<&'a str>, RpcError> {
    match p.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(RpcError::params(format!("{name}: expected a string"))),
    }
}

fn uint(p: &Params, name: &str, min: u64, max: u64) -> Result<Option<u64>, RpcError> {
    match p.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(v) if (min..=max).contains(&v) => Ok(Some(v)),
            _ => Err(RpcError::params(format!(
                "{name}: {n} is out of range {min}..={max}"
            ))),
        },
        Some(_) => Err(RpcError::params(format!(
            "{name}: expected an integer {min}..={max}"
        ))),
    }
}

fn ipv4(p: &Params, name: &str) -> Result<Option<Ipv4Addr>, RpcError> {
    match string(p, name)? {
        None => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_| RpcError::params(format!("{name}: '{s}' is not an IPv4 address"))),
    }
}

fn boolean(p: &Params, name: &str) -> Result<Option<bool>, RpcError> {
    match p.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(RpcError::params(format!("{name}: expected a boolean"))),
    }
}

/// A refusal about a sorry server says so.
fn sorry_error(e: ModelError) -> ModelError {
    match e {
        ModelError::Invalid(m) | ModelError::Unsupported(m) => {
            ModelError::Invalid(format!("sorry_server: {m}"))
        }
        other => other,
    }
}

/// One check of `health.server`: an object with a known `type` and only that type's fields
/// (serde's `flatten` cannot refuse unknown ones), then read and validated.
fn check_spec(v: &Value) -> Result<CheckSpec, String> {
    let Value::Object(o) = v else {
        return Err("expected a check object".to_string());
    };
    let kind = match o.get("type") {
        Some(Value::String(t)) => t.as_str(),
        None | Some(Value::Null) => return Err("missing field 'type'".to_string()),
        Some(_) => return Err("type: expected a string".to_string()),
    };
    let allowed = liveness::check_fields(kind).ok_or_else(|| {
        format!(
            "type: unknown check '{kind}' (expected one of: {})",
            liveness::CHECK_TYPES.join(", ")
        )
    })?;
    if let Some(k) = o.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(format!(
            "unknown field '{k}' for {kind} (expected one of: {})",
            allowed.join(", ")
        ));
    }
    if let Some(Value::Array(urls)) = o.get("urls") {
        for (i, u) in urls.iter().enumerate() {
            if let Value::Object(u) = u {
                if let Some(k) = u
                    .keys()
                    .find(|k| !liveness::URL_FIELDS.contains(&k.as_str()))
                {
                    return Err(format!(
                        "urls[{i}]: unknown field '{k}' (expected one of: {})",
                        liveness::URL_FIELDS.join(", ")
                    ));
                }
            }
        }
    }
    let spec: CheckSpec = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
    spec.validate().map_err(|e| e.to_string())?;
    Ok(spec)
}

fn service_key(p: &Params) -> Result<ServiceKey, RpcError> {
    let proto = match string(p, "proto")? {
        None => return Err(missing("proto")),
        Some(s) => match s {
            "tcp" | "TCP" => Protocol::Tcp,
            "udp" | "UDP" => Protocol::Udp,
            _ => {
                return Err(RpcError::params(format!(
                    "proto: unknown protocol '{s}' (expected tcp or udp)"
                )))
            }
        },
    };
    let vip = ipv4(p, "vip")?.ok_or_else(|| missing("vip"))?;
    let port = uint(p, "port", 0, 65535)?.ok_or_else(|| missing("port"))? as u16;
    Ok(ServiceKey { proto, vip, port })
}

fn nested_key(p: &Params) -> Result<ServiceKey, RpcError> {
    optional_nested_key(p)?.ok_or_else(|| missing("service"))
}

fn optional_nested_key(p: &Params) -> Result<Option<ServiceKey>, RpcError> {
    match p.get("service") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => {
            fields(o, &params::Key::FIELDS)
                .map_err(|e| RpcError::params(format!("service: {}", e.message)))?;
            service_key(o)
                .map(Some)
                .map_err(|e| RpcError::params(format!("service: {}", e.message)))
        }
        Some(_) => Err(RpcError::params(
            "service: expected an object {proto, vip, port}",
        )),
    }
}

fn service_spec(p: &Params) -> Result<ServiceSpec, RpcError> {
    fields(p, &params::Service::FIELDS)?;
    let key = service_key(p)?;
    let sched = string(p, "scheduler")?.unwrap_or(DEFAULT_SCHEDULER);
    let scheduler: SchedulerKind = sched
        .parse()
        .map_err(|e: ModelError| RpcError::params(format!("scheduler: {e}")))?;
    let persistent = uint(p, "persistent", 1, u64::from(MAX_TIMEOUT))?.map(|v| v as u32);
    let netmask = ipv4(p, "netmask")?.unwrap_or(Ipv4Addr::BROADCAST);
    let flags = match p.get("flags") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                _ => Err(RpcError::params("flags: expected an array of strings")),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(RpcError::params("flags: expected an array of strings")),
    };
    Ok(ServiceSpec {
        key,
        scheduler,
        persistent,
        netmask,
        flags,
    })
}

fn server_spec(p: &Params) -> Result<ServerSpec, RpcError> {
    let addr = ipv4(p, "addr")?.ok_or_else(|| missing("addr"))?;
    let port = uint(p, "port", 0, 65535)?.unwrap_or(0) as u16;
    let weight = uint(p, "weight", 0, u64::from(MAX_WEIGHT))?.unwrap_or(1) as u32;
    let forward = match string(p, "forward")? {
        None | Some("dr") => Forward::Dr,
        Some("tunnel") => Forward::Tunnel,
        Some("masq") => Forward::Masq,
        Some(s) => {
            return Err(RpcError::params(format!(
                "forward: unknown method '{s}' (expected dr, tunnel or masq)"
            )))
        }
    };
    let upper = uint(p, "upper", 0, u64::from(u32::MAX))?.unwrap_or(0) as u32;
    let lower = uint(p, "lower", 0, u64::from(u32::MAX))?.unwrap_or(0) as u32;
    Ok(ServerSpec {
        addr,
        port,
        weight,
        forward,
        upper,
        lower,
    })
}

/// Remove a socket file left by a daemon that is gone; refuse if one still answers or the path
/// is something else than a socket.
fn remove_stale(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(md) if md.file_type().is_socket() => {
            if UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("another daemon is listening on {}", path.display()),
                ));
            }
            std::fs::remove_file(path)
        }
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket", path.display()),
        )),
    }
}

/// How the control socket treats its clients; [`serve`] uses the defaults ([`MAX_CLIENTS`],
/// [`IDLE_TIMEOUT`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeOptions {
    /// Clients connected at once. When all are taken, the one idle longest is closed (told why)
    /// to make room for the newcomer.
    pub max_clients: usize,
    /// A client that completes no request for this long is closed (told why).
    pub idle_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            max_clients: MAX_CLIENTS,
            idle_timeout: IDLE_TIMEOUT,
        }
    }
}

/// Bind the control socket and serve it on its own thread until `stop` is set.
///
/// The parent directory is created, a stale socket file removed, the socket made 0600. Each
/// client gets a thread (see [`ServeOptions`] for how many, and how long an idle one stays);
/// the socket file is removed on stop.
pub fn serve(
    path: &Path,
    control: Arc<Control>,
    stop: Arc<AtomicBool>,
) -> io::Result<std::thread::JoinHandle<()>> {
    serve_with(path, control, stop, ServeOptions::default())
}

/// [`serve`] with other client limits than the defaults.
pub fn serve_with(
    path: &Path,
    control: Arc<Control>,
    stop: Arc<AtomicBool>,
    opts: ServeOptions,
) -> io::Result<std::thread::JoinHandle<()>> {
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent)?;
        }
    }
    remove_stale(path)?;
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    listener.set_nonblocking(true)?;
    let path: PathBuf = path.to_path_buf();
    std::thread::Builder::new()
        .name("rvs-control".into())
        .spawn(move || accept_loop(listener, path, control, stop, opts))
}

/// A connected client as the accept loop and the client's thread share it.
#[derive(Debug, Default)]
struct ClientState {
    /// When the client last completed a request (or connected), in µs since the server started.
    last_us: AtomicU64,
    /// A request is being handled: never evicted then.
    busy: AtomicBool,
    /// Chosen to make room for a newcomer: the client's thread says so and ends.
    evicted: AtomicBool,
}

struct Client {
    state: Arc<ClientState>,
    thread: std::thread::JoinHandle<()>,
}

/// The longest idle client that is not handling a request is told to go; its thread moves to
/// `leaving`. False when every client is busy.
fn evict_idlest(clients: &mut Vec<Client>, leaving: &mut Vec<std::thread::JoinHandle<()>>) -> bool {
    let idlest = clients
        .iter()
        .enumerate()
        .filter(|(_, c)| !c.state.busy.load(Ordering::Acquire))
        .min_by_key(|(_, c)| c.state.last_us.load(Ordering::Acquire))
        .map(|(i, _)| i);
    match idlest {
        Some(i) => {
            let c = clients.swap_remove(i);
            c.state.evicted.store(true, Ordering::Release);
            leaving.push(c.thread);
            true
        }
        None => false,
    }
}

fn accept_loop(
    listener: UnixListener,
    path: PathBuf,
    control: Arc<Control>,
    stop: Arc<AtomicBool>,
    opts: ServeOptions,
) {
    let start = Instant::now();
    let max = opts.max_clients.max(1);
    let mut clients: Vec<Client> = Vec::new();
    let mut leaving: Vec<std::thread::JoinHandle<()>> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((mut stream, _)) => {
                let (done, live): (Vec<Client>, Vec<Client>) =
                    clients.into_iter().partition(|c| c.thread.is_finished());
                clients = live;
                for c in done {
                    let _ = c.thread.join();
                }
                leaving.retain(|h| !h.is_finished());
                // Evicted threads end within a read timeout (or a bounded write): cap them too.
                let full = clients.len() >= max
                    && (leaving.len() >= max || !evict_idlest(&mut clients, &mut leaving));
                if full {
                    let _ = stream.set_nonblocking(false);
                    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
                    let _ = writeln!(
                        stream,
                        "{}",
                        error_line(
                            &Value::Null,
                            ERR_INTERNAL,
                            "too many control clients, all busy; try again"
                        )
                    );
                    continue;
                }
                let state = Arc::new(ClientState::default());
                state.last_us.store(micros_since(start), Ordering::Release);
                let (c, s, st) = (control.clone(), stop.clone(), state.clone());
                let spawned = std::thread::Builder::new()
                    .name("rvs-control-client".into())
                    .spawn(move || serve_client(stream, &c, &s, &st, start, opts.idle_timeout));
                match spawned {
                    Ok(thread) => clients.push(Client { state, thread }),
                    Err(e) => tracing::warn!("control: cannot spawn client thread: {e}"),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => {
                tracing::warn!("control: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    for h in clients.into_iter().map(|c| c.thread).chain(leaving) {
        let _ = h.join();
    }
    let _ = std::fs::remove_file(&path);
}

fn micros_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX)
}

fn serve_client(
    stream: UnixStream,
    control: &Control,
    stop: &AtomicBool,
    state: &ClientState,
    start: Instant,
    idle_timeout: Duration,
) {
    let poll = idle_timeout.clamp(Duration::from_millis(1), Duration::from_millis(200));
    if stream.set_nonblocking(false).is_err()
        || stream.set_read_timeout(Some(poll)).is_err()
        || stream
            .set_write_timeout(Some(Duration::from_secs(5)))
            .is_err()
    {
        return;
    }
    let mut reader = BufReader::new(stream);
    let mut buf: Vec<u8> = Vec::new();
    let mut last = Instant::now();
    loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        if state.evicted.load(Ordering::Acquire) {
            let msg = format!(
                "connection closed to make room for a new client (this one was idle longest, \
                 {} ms)",
                last.elapsed().as_millis()
            );
            say_line(&mut reader, ERR_INTERNAL, &msg);
            return;
        }
        if last.elapsed() >= idle_timeout {
            let msg = format!(
                "connection closed: idle, no complete request for {} ms",
                idle_timeout.as_millis()
            );
            say_line(&mut reader, ERR_INTERNAL, &msg);
            return;
        }
        let room = (MAX_LINE + 1).saturating_sub(buf.len()) as u64;
        let res = (&mut reader).take(room).read_until(b'\n', &mut buf);
        let eof = match res {
            Ok(0) => true,
            Ok(_) => false,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(_) => return,
        };
        let complete = buf.last() == Some(&b'\n');
        if !complete && buf.len() > MAX_LINE {
            say_line(
                &mut reader,
                ERR_INVALID_REQUEST,
                &format!("request line longer than {MAX_LINE} bytes"),
            );
            return;
        }
        if !complete && !eof {
            continue;
        }
        if !buf.iter().all(u8::is_ascii_whitespace) {
            state.busy.store(true, Ordering::Release);
            let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
            let reply = control.handle_bytes(line);
            // Before the reply is out: whoever reads it sees this client as active from then.
            state.last_us.store(micros_since(start), Ordering::Release);
            let sent = writeln!(reader.get_mut(), "{reply}").and_then(|_| reader.get_mut().flush());
            state.busy.store(false, Ordering::Release);
            if sent.is_err() {
                return;
            }
            last = Instant::now();
        }
        buf.clear();
        if eof {
            return;
        }
    }
}

fn say_line(reader: &mut BufReader<UnixStream>, code: i64, msg: &str) {
    let _ = writeln!(reader.get_mut(), "{}", error_line(&Value::Null, code, msg));
}

/// A fake dataplane for tests (here and in `rvsadm`, through the `testing` feature): records
/// publishes, can be told to fail.
#[cfg(any(test, feature = "testing"))]
pub mod testing {
    use crate::proto::{Dataplane, Director};
    use rvs_dataplane::model::{Model, ServiceKey, Timeouts};
    use rvs_dataplane::report::*;
    use std::net::Ipv4Addr;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;

    pub struct FakeDataplane {
        pub publishes: Mutex<Vec<Model>>,
        pub fail: AtomicBool,
        pub zeroed: Mutex<Vec<Vec<ServiceKey>>>,
        /// Packets per service/server reported by `stats` (grows by 1000 per call).
        pub calls: Mutex<u64>,
        /// Timeouts in force (IPVS's defaults until `set_timeouts`).
        pub timeouts: Mutex<Timeouts>,
        /// What `connections` reports.
        pub conns: Mutex<Vec<ConnEntry>>,
        /// The director on its link; by default the lab's ([`LAB_DIRECTOR`]).
        pub director: Director,
    }

    /// The lab director: DIP 198.18.0.2/24, port MAC 02:00:00:00:00:01.
    pub const LAB_DIRECTOR: Director = Director {
        dip: Ipv4Addr::new(198, 18, 0, 2),
        prefix_len: 24,
        mac: [2, 0, 0, 0, 0, 1],
    };

    impl Default for FakeDataplane {
        fn default() -> Self {
            FakeDataplane {
                publishes: Mutex::default(),
                fail: AtomicBool::default(),
                zeroed: Mutex::default(),
                calls: Mutex::default(),
                timeouts: Mutex::default(),
                conns: Mutex::default(),
                director: LAB_DIRECTOR,
            }
        }
    }

    impl FakeDataplane {
        pub fn publish_count(&self) -> usize {
            self.publishes.lock().unwrap().len()
        }
        pub fn set_fail(&self, f: bool) {
            self.fail.store(f, Ordering::SeqCst);
        }
    }

    impl Dataplane for FakeDataplane {
        fn publish(&self, model: &Model) -> Result<(), PublishError> {
            if self.fail.load(Ordering::SeqCst) {
                return Err(PublishError::NeighbourTableFull(4));
            }
            self.publishes.lock().unwrap().push(model.clone());
            Ok(())
        }
        fn stats(&self, model: &Model) -> StatsReport {
            let mut calls = self.calls.lock().unwrap();
            *calls += 1;
            let k = *calls;
            let mut r = StatsReport::default();
            for s in model.services() {
                let servers: Vec<ServerStats> = s
                    .servers
                    .iter()
                    .map(|rs| ServerStats {
                        addr: rs.spec.addr,
                        port: rs.spec.port,
                        counters: Counters {
                            conns: 10 * k,
                            packets: 1000 * k,
                            bytes: 150_000_000 * k,
                        },
                        active_conns: 2,
                        inactive_conns: 3,
                        persistent_conns: 1,
                    })
                    .collect();
                let mut total = Counters::default();
                for x in &servers {
                    total.add(&x.counters);
                }
                r.services.push(ServiceStats {
                    key: s.spec.key,
                    counters: total,
                    servers,
                });
            }
            r
        }
        fn neighbour(&self, addr: Ipv4Addr) -> NeighState {
            if addr.octets()[3] == 11 {
                NeighState::Static {
                    mac: MacAddr([2, 0, 0, 0, 0, 0x11]),
                }
            } else {
                NeighState::Incomplete
            }
        }
        fn zero(&self, model: &Model) {
            self.zeroed
                .lock()
                .unwrap()
                .push(model.services().iter().map(|s| s.spec.key).collect());
        }
        fn set_timeouts(&self, t: Timeouts) -> Result<(), PublishError> {
            if self.fail.load(Ordering::SeqCst) {
                return Err(PublishError::ServiceIndexFull);
            }
            *self.timeouts.lock().unwrap() = t;
            Ok(())
        }
        fn timeouts(&self) -> Timeouts {
            *self.timeouts.lock().unwrap()
        }
        fn connections(&self, limit: usize) -> Vec<ConnEntry> {
            let c = self.conns.lock().unwrap();
            c.iter().take(limit).cloned().collect()
        }
        fn director(&self) -> Director {
            self.director
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::FakeDataplane;
    use super::*;
    use proptest::prelude::*;
    use rvs_dataplane::report::ConnEntry;
    use rvs_dataplane::report::NeighState;

    fn setup() -> (Control, Arc<FakeDataplane>) {
        let dp = Arc::new(FakeDataplane::default());
        (Control::new(Model::new(8, 8), dp.clone()), dp)
    }

    fn call(c: &Control, method: &str, params: Value) -> Value {
        let line =
            json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params}).to_string();
        let resp = c.handle_line(&line);
        assert!(!resp.contains('\n'));
        let v: Value = serde_json::from_str(&resp).unwrap();
        assert_eq!(v["jsonrpc"], "2.0");
        assert_eq!(v["id"], 7);
        v
    }

    fn ok(c: &Control, method: &str, params: Value) -> Value {
        let v = call(c, method, params);
        assert!(v.get("error").is_none(), "{method}: {v}");
        v["result"].clone()
    }

    fn err(c: &Control, method: &str, params: Value) -> (i64, String) {
        let v = call(c, method, params);
        assert!(v.get("result").is_none(), "{method}: {v}");
        (
            v["error"]["code"].as_i64().unwrap(),
            v["error"]["message"].as_str().unwrap().to_string(),
        )
    }

    fn svc() -> Value {
        json!({"proto": "tcp", "vip": "198.18.0.100", "port": 80})
    }

    fn lab(c: &Control) {
        ok(
            c,
            "service.add",
            json!({"proto": "tcp", "vip": "198.18.0.100", "port": 80, "scheduler": "rr"}),
        );
        ok(
            c,
            "server.add",
            json!({"service": svc(), "addr": "198.18.0.11", "port": 80, "weight": 1, "forward": "dr"}),
        );
        ok(
            c,
            "server.add",
            json!({"service": svc(), "addr": "198.18.0.12"}),
        );
    }

    #[test]
    fn replace_rules_is_one_change_and_keeps_the_servers_that_stay() {
        let (c, dp) = setup();
        lab(&c);
        let before = c.model().services()[0].servers.clone();
        let n0 = dp.publish_count();
        // .12 goes, .13 comes, .11 stays (weight changed): one snapshot.
        let text = "-A -t 198.18.0.100:80 -s wlc\n\
                    -a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 3\n\
                    -a -t 198.18.0.100:80 -r 198.18.0.13:80 -g -w 1\n";
        assert_eq!(c.replace_rules(text).unwrap(), 3);
        assert_eq!(dp.publish_count(), n0 + 1);
        let m = c.model();
        let s = &m.services()[0];
        assert_eq!(s.servers.len(), 2);
        assert_eq!(
            (s.servers[0].slot, s.servers[0].id),
            (before[0].slot, before[0].id)
        );
        assert_eq!(s.servers[0].spec.weight, 3);
        assert_ne!(s.servers[1].id, before[1].id);
        // A bad rule: refused, nothing changes, nothing published.
        let bad = "-A -t 198.18.0.100:80 -s rr\n-a -t 198.18.0.100:80 -r 198.18.0.300:80\n";
        assert!(c.replace_rules(bad).is_err());
        let bad2 = "-A -t 198.18.0.100:80 -s rr\n-a -t 198.18.0.101:80 -r 198.18.0.11:80\n";
        assert!(c.replace_rules(bad2).is_err());
        assert_eq!(dp.publish_count(), n0 + 1);
        assert_eq!(c.model().services(), m.services());
        // An empty text is an empty rule set.
        assert_eq!(c.replace_rules("").unwrap(), 0);
        assert!(c.model().services().is_empty());
    }

    #[test]
    fn version_reports_crate_and_commit() {
        let (c, _) = setup();
        let v = ok(&c, "version", json!({}));
        assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(v["commit"], "unknown");
        let c = c.with_build(Build {
            name: "rvs",
            version: "9.8.7",
            commit: "abc123",
        });
        let v = ok(&c, "version", json!({}));
        assert_eq!(
            v,
            json!({"name": "rvs", "version": "9.8.7", "commit": "abc123"})
        );
        assert_eq!(err(&c, "version", json!({"x": 1})).0, ERR_PARAMS);
    }

    #[test]
    fn services_and_servers_add_edit_delete_publish_each_time() {
        let (c, dp) = setup();
        lab(&c);
        assert_eq!(dp.publish_count(), 3);
        let m = c.model();
        assert_eq!(m.services()[0].servers.len(), 2);
        assert_eq!(m.services()[0].servers[1].spec.port, 80);
        assert_eq!(m.services()[0].servers[1].spec.weight, 1);

        assert_eq!(
            err(
                &c,
                "service.add",
                json!({"proto": "tcp", "vip": "198.18.0.100", "port": 80, "scheduler": "rr"})
            ),
            (ERR_REFUSED, "Service already exists".to_string())
        );
        assert_eq!(
            err(
                &c,
                "server.add",
                json!({"service": svc(), "addr": "198.18.0.11"})
            ),
            (ERR_REFUSED, "Destination already exists".to_string())
        );
        assert_eq!(dp.publish_count(), 3);

        ok(
            &c,
            "service.edit",
            json!({"proto": "tcp", "vip": "198.18.0.100", "port": 80, "scheduler": "wrr", "persistent": 300, "netmask": "255.255.255.0"}),
        );
        let m = c.model();
        assert_eq!(m.services()[0].spec.scheduler, SchedulerKind::Wrr);
        assert_eq!(m.services()[0].spec.persistent, Some(300));
        ok(
            &c,
            "server.edit",
            json!({"service": svc(), "addr": "198.18.0.12", "weight": 5}),
        );
        assert_eq!(c.model().services()[0].servers[1].spec.weight, 5);
        assert_eq!(
            err(
                &c,
                "server.edit",
                json!({"service": svc(), "addr": "198.18.0.13"})
            ),
            (ERR_REFUSED, "No such destination".to_string())
        );
        ok(
            &c,
            "server.delete",
            json!({"service": svc(), "addr": "198.18.0.12"}),
        );
        assert_eq!(c.model().services()[0].servers.len(), 1);
        assert_eq!(
            err(
                &c,
                "server.delete",
                json!({"service": {"proto": "udp", "vip": "198.18.0.100", "port": 80}, "addr": "198.18.0.12"})
            ),
            (ERR_REFUSED, "Service not defined".to_string())
        );
        ok(&c, "service.delete", svc());
        assert_eq!(
            err(&c, "service.delete", svc()),
            (ERR_REFUSED, "No such service".to_string())
        );
        lab(&c);
        ok(&c, "clear", json!({}));
        assert!(c.model().services().is_empty());
        assert!(dp
            .publishes
            .lock()
            .unwrap()
            .last()
            .unwrap()
            .services()
            .is_empty());
    }

    #[test]
    fn default_scheduler_is_wlc_and_unsupported_things_say_so() {
        let (c, _) = setup();
        // no scheduler given: ipvsadm's default, wlc (every scheduler is implemented)
        ok(&c, "service.add", svc());
        let v = ok(&c, "list", json!({"service": svc()}));
        assert_eq!(v["services"][0]["scheduler"], "wlc", "{v}");
        let (code, msg) = err(
            &c,
            "server.add",
            json!({"service": svc(), "addr": "198.18.0.11", "forward": "tunnel"}),
        );
        assert_eq!(code, ERR_REFUSED);
        assert!(msg.contains("not supported yet"), "{msg}");
    }

    #[test]
    fn timeouts_set_zero_keeps_and_failure_changes_nothing() {
        let (c, dp) = setup();
        assert_eq!(
            ok(&c, "timeouts", json!({})),
            json!({"tcp": 900, "tcp_fin": 120, "udp": 300}),
            "the dataplane's, IPVS's defaults"
        );
        assert_eq!(
            ok(
                &c,
                "timeouts.set",
                json!({"tcp": 60, "tcp_fin": 0, "udp": 30})
            ),
            json!({"tcp": 60, "tcp_fin": 120, "udp": 30})
        );
        assert_eq!(
            *dp.timeouts.lock().unwrap(),
            Timeouts {
                tcp: 60,
                tcp_fin: 120,
                udp: 30
            }
        );
        assert_eq!(
            ok(&c, "timeouts", json!({})),
            json!({"tcp": 60, "tcp_fin": 120, "udp": 30})
        );
        ok(
            &c,
            "timeouts.set",
            json!({"tcp": 0, "tcp_fin": 5, "udp": 0}),
        );
        assert_eq!(
            ok(&c, "timeouts", json!({})),
            json!({"tcp": 60, "tcp_fin": 5, "udp": 30})
        );
        dp.set_fail(true);
        let (code, msg) = err(
            &c,
            "timeouts.set",
            json!({"tcp": 1, "tcp_fin": 1, "udp": 1}),
        );
        assert_eq!(code, ERR_PUBLISH);
        assert!(msg.contains("refused"), "{msg}");
        dp.set_fail(false);
        assert_eq!(
            ok(&c, "timeouts", json!({})),
            json!({"tcp": 60, "tcp_fin": 5, "udp": 30})
        );
        for bad in [
            json!({"tcp": 1, "tcp_fin": 1}),
            json!({"tcp": -1, "tcp_fin": 1, "udp": 1}),
            json!({"tcp": 1, "tcp_fin": 1, "udp": 1, "x": 1}),
            json!({"tcp": "1", "tcp_fin": 1, "udp": 1}),
        ] {
            assert_eq!(err(&c, "timeouts.set", bad.clone()).0, ERR_PARAMS, "{bad}");
        }
    }

    #[test]
    fn connections_are_listed_with_a_limit() {
        let (c, dp) = setup();
        assert_eq!(ok(&c, "connections", json!({})), json!({"connections": []}));
        let e = ConnEntry {
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
        };
        *dp.conns.lock().unwrap() = vec![e.clone(), e.clone(), e.clone()];
        let v = ok(&c, "connections", json!({"limit": 2}));
        let got: Vec<ConnEntry> = serde_json::from_value(v["connections"].clone()).unwrap();
        assert_eq!(got, vec![e.clone(), e]);
        assert_eq!(
            v["connections"][0],
            json!({"proto": "tcp", "expire_s": 898, "state": "ESTABLISHED",
                   "client": "198.18.0.10", "cport": 41322, "vip": "198.18.0.100", "vport": 80,
                   "rs": "198.18.0.11", "rport": 80, "template": false})
        );
        assert_eq!(err(&c, "connections", json!({"limit": 0})).0, ERR_PARAMS);
        assert_eq!(err(&c, "connections", json!({"max": 1})).0, ERR_PARAMS);
    }

    #[test]
    fn bad_params_are_rejected_with_clear_messages() {
        let (c, dp) = setup();
        let cases = [
            (
                "service.add",
                json!({"proto": "tcp", "vip": "198.18.0.100", "port": 80, "sched": "rr"}),
                "unknown field 'sched'",
            ),
            (
                "service.add",
                json!({"proto": "tcp", "vip": "198.18.0.100", "port": 70000}),
                "port: 70000 is out of range",
            ),
            (
                "service.add",
                json!({"proto": "tcp", "vip": "198.18.0.100", "port": -1}),
                "port",
            ),
            (
                "service.add",
                json!({"proto": "tcp", "vip": "198.18.0.100", "port": "80"}),
                "port: expected an integer",
            ),
            (
                "service.add",
                json!({"proto": "sctp", "vip": "198.18.0.100", "port": 80}),
                "unknown protocol 'sctp'",
            ),
            (
                "service.add",
                json!({"proto": "tcp", "port": 80}),
                "missing field 'vip'",
            ),
            (
                "service.add",
                json!({"proto": "tcp", "vip": "198.18.0.300", "port": 80}),
                "vip: '198.18.0.300' is not an IPv4 address",
            ),
            (
                "service.add",
                json!({"proto": "tcp", "vip": "198.18.0.100", "port": 80, "scheduler": "xx"}),
                "Scheduler not found: xx",
            ),
            (
                "service.add",
                json!({"proto": "tcp", "vip": "198.18.0.100", "port": 80, "scheduler": "rr", "persistent": 0}),
                "persistent",
            ),
            (
                "service.add",
                json!({"proto": "tcp", "vip": "198.18.0.100", "port": 80, "scheduler": "rr", "flags": "x"}),
                "flags",
            ),
            (
                "server.add",
                json!({"service": svc(), "addr": "198.18.0.11", "weight": 65536}),
                "weight: 65536 is out of range",
            ),
            (
                "server.add",
                json!({"service": svc(), "addr": "198.18.0.11", "forward": "nat"}),
                "unknown method 'nat'",
            ),
            (
                "server.add",
                json!({"addr": "198.18.0.11"}),
                "missing field 'service'",
            ),
            (
                "server.add",
                json!({"service": "tcp 1.2.3.4:80", "addr": "198.18.0.11"}),
                "service: expected an object",
            ),
            (
                "server.add",
                json!({"service": {"proto": "tcp", "vip": "198.18.0.100", "port": 80, "x": 1}, "addr": "198.18.0.11"}),
                "service: unknown field 'x'",
            ),
            (
                "server.delete",
                json!({"service": svc()}),
                "missing field 'addr'",
            ),
            (
                "neighbour.set",
                json!({"addr": "198.18.0.11", "mac": "zz"}),
                "mac: invalid MAC",
            ),
            (
                "neighbour.set",
                json!({"addr": "224.0.0.1", "mac": "02:00:00:00:00:01"}),
                "not a unicast",
            ),
            ("rules.save", json!({"sort": 1}), "sort: expected a boolean"),
            ("rules.restore", json!({}), "missing field 'text'"),
            ("clear", json!({"all": true}), "takes no parameters"),
        ];
        for (method, params, want) in cases {
            let (code, msg) = err(&c, method, params.clone());
            assert_eq!(code, ERR_PARAMS, "{method} {params}: {msg}");
            assert!(msg.contains(want), "{method} {params}: {msg} (want {want})");
        }
        assert_eq!(dp.publish_count(), 0);
    }

    #[test]
    fn failed_publish_rolls_back() {
        let (c, dp) = setup();
        lab(&c);
        let before = rules::emit(&c.model(), false);
        dp.set_fail(true);
        let (code, msg) = err(
            &c,
            "server.add",
            json!({"service": svc(), "addr": "198.18.0.13"}),
        );
        assert_eq!(code, ERR_PUBLISH);
        assert!(msg.contains("neighbour table is full"), "{msg}");
        assert_eq!(err(&c, "clear", json!({})).0, ERR_PUBLISH);
        assert_eq!(
            err(&c, "rules.restore", json!({"text": "-C\n"})).0,
            ERR_PUBLISH
        );
        assert_eq!(rules::emit(&c.model(), false), before);
        assert_eq!(dp.publish_count(), 3);
        dp.set_fail(false);
        ok(
            &c,
            "server.add",
            json!({"service": svc(), "addr": "198.18.0.13"}),
        );
        assert_eq!(c.model().services()[0].servers.len(), 3);
    }

    #[test]
    fn list_merges_stats_and_neighbours() {
        let (c, _) = setup();
        lab(&c);
        let v = ok(&c, "list", json!({}));
        let reply: ListReply = serde_json::from_value(v).unwrap();
        assert_eq!(reply.services.len(), 1);
        let s = &reply.services[0];
        assert_eq!(s.scheduler, SchedulerKind::Rr);
        assert_eq!(s.counters.conns, 20);
        assert_eq!(s.servers[0].active_conns, 2);
        assert_eq!(s.servers[0].inactive_conns, 3);
        assert_eq!(s.servers[0].forward, Forward::Dr);
        assert!(matches!(s.servers[0].neighbour, NeighState::Static { .. }));
        assert_eq!(s.servers[1].neighbour, NeighState::Incomplete);
        let v = ok(&c, "list", json!({"service": svc()}));
        assert_eq!(v["services"].as_array().unwrap().len(), 1);
        assert_eq!(
            err(
                &c,
                "list",
                json!({"service": {"proto": "udp", "vip": "198.18.0.100", "port": 80}})
            ),
            (ERR_REFUSED, "No such service".to_string())
        );
    }

    fn tcp_check() -> Value {
        json!({"type": "TCP_CHECK", "connect_timeout_ms": 1000, "delay_loop_ms": 1000})
    }

    fn probe(addr: [u8; 4], port: u16) -> ProbeKey {
        ProbeKey {
            check: check_spec(&tcp_check()).unwrap(),
            addr: Ipv4Addr::from(addr),
            port,
        }
    }

    fn status(up: bool, at: u64) -> ProbeStatus {
        ProbeStatus {
            up,
            weight: None,
            since_unix_ms: at,
            last_check_unix_ms: Some(at),
            last_error: (!up).then(|| "connect: connection refused".to_string()),
            reason: if up { "rise 1 reached" } else { "2 failures" }.to_string(),
        }
    }

    fn listed(c: &Control) -> ListReply {
        serde_json::from_value(ok(c, "list", json!({}))).unwrap()
    }

    fn rs11(c: &Control) -> rvs_dataplane::model::RealServer {
        c.model().services()[0].servers[0].clone()
    }

    #[test]
    fn health_checks_drive_the_model_and_show_in_list() {
        use rvs_dataplane::model::Health;
        let (c, dp) = setup();
        lab(&c);
        let g0 = c.probes_generation();
        assert!(c.probes().is_empty());
        let before = rs11(&c);
        // the same check on .11 and .12; .12 inhibited on failure
        ok(
            &c,
            "health.server",
            json!({"service": svc(), "server": {"addr": "198.18.0.11"}, "checks": [tcp_check()]}),
        );
        ok(
            &c,
            "health.server",
            json!({"service": svc(), "server": {"addr": "198.18.0.12", "port": 80},
                   "checks": [tcp_check()], "inhibit_on_failure": true}),
        );
        assert!(c.probes_generation() > g0);
        assert_eq!(
            c.probes(),
            vec![probe([198, 18, 0, 11], 80), probe([198, 18, 0, 12], 80)]
        );
        let l = listed(&c);
        let h = l.services[0].servers[0].health.clone().unwrap();
        assert_eq!((h.state, h.weight, h.last_check), (Health::Up, 1, None));
        assert_eq!(h.checks[0].kind, "TCP_CHECK");
        assert_eq!(h.checks[0].reason, "not checked yet");
        assert!(l.services[0].quorum_met && !l.services[0].sorry_active);
        // a success changes nothing: no publication
        let n = dp.publish_count();
        assert!(c
            .report(&probe([198, 18, 0, 11], 80), &status(true, 5))
            .is_empty());
        assert_eq!(dp.publish_count(), n);
        // .11 fails: down, published once; the same verdict again publishes nothing
        c.report(&probe([198, 18, 0, 11], 80), &status(false, 10));
        assert_eq!(dp.publish_count(), n + 1);
        c.report(&probe([198, 18, 0, 11], 80), &status(false, 11));
        assert_eq!(dp.publish_count(), n + 1);
        let published = dp.publishes.lock().unwrap().last().unwrap().clone();
        assert_eq!(published.services()[0].servers[0].health, Health::Down);
        let now = rs11(&c);
        assert_eq!(
            (now.health, now.slot, now.id),
            (Health::Down, before.slot, before.id)
        );
        let h = listed(&c).services[0].servers[0].health.clone().unwrap();
        assert_eq!(
            (h.state, h.weight, h.last_check),
            (Health::Down, 0, Some(11))
        );
        assert_eq!(h.last_error.as_deref(), Some("connect: connection refused"));
        assert!(h.since >= 1_600_000_000_000, "Unix ms: {}", h.since);
        // -e keeps the state
        ok(
            &c,
            "server.edit",
            json!({"service": svc(), "addr": "198.18.0.11", "weight": 4}),
        );
        assert_eq!(rs11(&c).health, Health::Down);
        // .12 fails too: inhibited, listed with weight 0; quorum (1) lost
        c.report(&probe([198, 18, 0, 12], 80), &status(false, 12));
        let l = listed(&c);
        let h12 = l.services[0].servers[1].health.clone().unwrap();
        assert_eq!((h12.state, h12.weight), (Health::Inhibited, 0));
        assert!(!l.services[0].quorum_met);
        // back up: the configured (edited) weight
        c.report(&probe([198, 18, 0, 11], 80), &status(true, 20));
        let l = listed(&c);
        let h = l.services[0].servers[0].health.clone().unwrap();
        assert_eq!((h.state, h.weight), (Health::Up, 4));
        assert!(l.services[0].quorum_met);
        // checks: [] removes checking
        ok(
            &c,
            "health.server",
            json!({"service": svc(), "server": {"addr": "198.18.0.12"}, "checks": []}),
        );
        assert_eq!(c.model().services()[0].servers[1].health, Health::Up);
        assert_eq!(c.probes(), vec![probe([198, 18, 0, 11], 80)]);
        // -S saves services and servers only
        let text = ok(&c, "rules.save", json!({}))["text"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            !text.contains("CHECK") && text.lines().count() == 3,
            "{text}"
        );
        // -d drops the server's checks and probes
        let g = c.probes_generation();
        ok(
            &c,
            "server.delete",
            json!({"service": svc(), "addr": "198.18.0.11"}),
        );
        assert!(c.probes().is_empty() && c.probes_generation() > g);
        // a late report of the deleted probe is ignored
        let n = dp.publish_count();
        c.report(&probe([198, 18, 0, 11], 80), &status(false, 30));
        assert_eq!(dp.publish_count(), n);
        // added again: a new server, up, without checks
        ok(
            &c,
            "server.add",
            json!({"service": svc(), "addr": "198.18.0.11"}),
        );
        let h = listed(&c).services[0].servers[1].health.clone().unwrap();
        assert!(h.checks.is_empty() && h.state == Health::Up);
    }

    #[test]
    fn sorry_server_and_quorum_scripts() {
        let (c, dp) = setup();
        lab(&c);
        for a in ["198.18.0.11", "198.18.0.12"] {
            ok(
                &c,
                "health.server",
                json!({"service": svc(), "server": {"addr": a}, "checks": [tcp_check()]}),
            );
        }
        ok(
            &c,
            "health.service",
            json!({"service": svc(), "sorry_server": {"addr": "198.18.0.99"}, "quorum": 2,
                   "hysteresis": 0, "quorum_up": "/usr/local/bin/up",
                   "quorum_down": "/usr/local/bin/down"}),
        );
        let l = listed(&c);
        let s = &l.services[0];
        assert_eq!((s.quorum, s.quorum_met, s.sorry_active), (2, true, false));
        assert_eq!(s.sorry_server.unwrap().addr, Ipv4Addr::new(198, 18, 0, 99));
        assert_eq!(s.sorry_server.unwrap().port, 80);
        assert_eq!(s.servers.len(), 2, "the sorry server is not a real server");
        // one down: 1 < 2, lost: the sorry server alone, quorum_down to run
        let a = c.report(&probe([198, 18, 0, 11], 80), &status(false, 1));
        assert_eq!(a.len(), 1);
        assert_eq!(
            (a[0].up, a[0].command.as_str()),
            (false, "/usr/local/bin/down")
        );
        let m = dp.publishes.lock().unwrap().last().unwrap().clone();
        assert!(m.services()[0].sorry_active().is_some());
        let l = listed(&c);
        assert!(l.services[0].sorry_active && !l.services[0].quorum_met);
        // handed out once
        assert!(c
            .report(&probe([198, 18, 0, 11], 80), &status(false, 2))
            .is_empty());
        // back: quorum_up
        let a = c.report(&probe([198, 18, 0, 11], 80), &status(true, 3));
        assert_eq!((a.len(), a[0].up), (1, true));
        assert!(!listed(&c).services[0].sorry_active);
        // an operator's change that loses the quorum: its command comes with the next report
        ok(
            &c,
            "server.delete",
            json!({"service": svc(), "addr": "198.18.0.12"}),
        );
        assert!(listed(&c).services[0].sorry_active);
        let a = c.report(&probe([198, 18, 0, 11], 80), &status(true, 4));
        assert_eq!((a.len(), a[0].up), (1, false));
        // removing the settings: defaults, no sorry server
        ok(&c, "health.service", json!({"service": svc()}));
        let s = &listed(&c).services[0];
        assert_eq!((s.quorum, s.quorum_met, s.sorry_server), (1, true, None));
        // the Rust interface refuses what the socket refuses
        let key = c.model().services()[0].spec.key;
        let e = c
            .set_service_health(
                &key,
                ServiceHealth {
                    quorum: 0,
                    ..ServiceHealth::default()
                },
            )
            .unwrap_err();
        assert_eq!(e.code, ERR_PARAMS);
        let mut bad = check_spec(&tcp_check()).unwrap();
        bad.params.rise = 0;
        let e = c
            .set_server_health(
                &key,
                Ipv4Addr::new(198, 18, 0, 11),
                0,
                ServerHealth {
                    checks: vec![bad],
                    inhibit_on_failure: false,
                },
            )
            .unwrap_err();
        assert_eq!(e.message, "checks[0]: rise: must be at least 1");
        // clear drops everything
        let g = c.probes_generation();
        ok(&c, "clear", json!({}));
        assert!(c.probes().is_empty() && c.probes_generation() > g);
    }

    #[test]
    fn a_health_change_the_dataplane_refuses_is_retried() {
        use rvs_dataplane::model::Health;
        let (c, dp) = setup();
        lab(&c);
        ok(
            &c,
            "health.server",
            json!({"service": svc(), "server": {"addr": "198.18.0.11"}, "checks": [tcp_check()]}),
        );
        dp.set_fail(true);
        c.report(&probe([198, 18, 0, 11], 80), &status(false, 1));
        assert_eq!(rs11(&c).health, Health::Up, "nothing committed");
        // the check's status is kept all the same
        let h = listed(&c).services[0].servers[0].health.clone().unwrap();
        assert!(!h.checks[0].up);
        dp.set_fail(false);
        // the same verdict again: applied now
        c.report(&probe([198, 18, 0, 11], 80), &status(false, 2));
        assert_eq!(rs11(&c).health, Health::Down);
        // a refused operator change leaves health alone too
        dp.set_fail(true);
        let (code, _) = err(
            &c,
            "health.server",
            json!({"service": svc(), "server": {"addr": "198.18.0.11"}, "checks": []}),
        );
        assert_eq!(code, ERR_PUBLISH);
        assert_eq!(rs11(&c).health, Health::Down);
        assert_eq!(c.probes().len(), 1);
    }

    #[test]
    fn stats_zero_neighbours_timeouts() {
        let dp = Arc::new(FakeDataplane::default());
        *dp.timeouts.lock().unwrap() = Timeouts {
            tcp: 1,
            tcp_fin: 2,
            udp: 3,
        };
        let c = Control::new(Model::new(8, 8), dp.clone());
        lab(&c);
        ok(
            &c,
            "service.add",
            json!({"proto": "udp", "vip": "198.18.0.100", "port": 53, "scheduler": "rr"}),
        );
        let v = ok(&c, "stats", json!({}));
        assert_eq!(v["services"].as_array().unwrap().len(), 2);
        assert!(v.get("port").is_some() && v.get("drops").is_some());
        ok(&c, "zero", json!({}));
        ok(&c, "zero", json!({"service": svc()}));
        assert_eq!(
            err(
                &c,
                "zero",
                json!({"service": {"proto": "udp", "vip": "198.18.0.1", "port": 1}})
            )
            .0,
            ERR_REFUSED
        );
        let z = dp.zeroed.lock().unwrap().clone();
        assert_eq!(z.len(), 2);
        assert_eq!(z[0].len(), 2);
        assert_eq!(z[1].len(), 1);
        ok(
            &c,
            "neighbour.set",
            json!({"addr": "198.18.0.12", "mac": "02:00:00:00:00:12"}),
        );
        assert_eq!(c.model().statics.len(), 1);
        assert_eq!(
            err(
                &c,
                "neighbour.set",
                json!({"addr": "198.18.0.12", "mac": "01:00:00:00:00:12"})
            )
            .0,
            ERR_REFUSED
        );
        assert_eq!(
            ok(&c, "timeouts", json!({})),
            json!({"tcp": 1, "tcp_fin": 2, "udp": 3})
        );
    }

    /// The methods of [`Control::dispatch`], read from its source: the arms of its match.
    fn dispatched_methods() -> Vec<String> {
        let src = include_str!("server.rs");
        let start = src.find("    fn dispatch(&self").expect("dispatch");
        let body = &src[start..];
        let body = &body[..body
            .find("            other => Err(")
            .expect("its last arm")];
        let mut out = Vec::new();
        for line in body.lines() {
            // An arm of the top-level match: 12 spaces, then quoted names, then `=>`.
            let Some(arm) = line.strip_prefix("            \"") else {
                continue;
            };
            let Some((pats, _)) = arm.split_once(" => ") else {
                continue;
            };
            for p in format!("\"{pats}").split(" | ") {
                out.push(p.trim_matches('"').to_string());
            }
        }
        out.sort();
        out
    }

    /// Method names in backquotes in the first column of the table rows in `text` after
    /// `heading` (up to the next heading), or in `### ` headings.
    fn documented(text: &str, heading: &str, table: bool) -> Vec<String> {
        let start = text.find(heading).expect("the section") + heading.len();
        let rest = &text[start..];
        let section = if table {
            &rest[..rest.find("\n## ").unwrap_or(rest.len())]
        } else {
            rest
        };
        let mut out = Vec::new();
        for line in section.lines() {
            let cell = if table {
                match line.strip_prefix("| `") {
                    Some(_) => line.split('|').nth(1).unwrap_or(""),
                    None => continue,
                }
            } else {
                match line.strip_prefix("### `") {
                    Some(_) => &line[4..],
                    None => continue,
                }
            };
            out.extend(cell.split('`').skip(1).step_by(2).map(str::to_string));
        }
        out.sort();
        out.dedup();
        out
    }

    /// Issue 15: the README's method table had left out `connections`. Every method the
    /// dispatcher answers is in it and has a section in docs/control.md; neither names a
    /// method that does not exist.
    #[test]
    fn every_method_is_in_the_readme_table_and_docs() {
        let methods = dispatched_methods();
        assert!(methods.len() >= 20, "{methods:?}");
        assert!(methods.contains(&"connections".to_string()));
        // The names read from the source are methods indeed (and the others are not).
        let (c, _) = setup();
        for m in &methods {
            let v: Value = serde_json::from_str(&c.handle_line(
                &json!({"jsonrpc": "2.0", "id": 1, "method": m, "params": {"x": 1}}).to_string(),
            ))
            .unwrap();
            assert_ne!(v["error"]["code"], ERR_METHOD, "{m}: {v}");
        }
        let readme = documented(
            include_str!("../../../README.md"),
            "## Control protocol",
            true,
        );
        assert_eq!(readme, methods, "README.md's method table");
        let docs = documented(
            include_str!("../../../docs/control.md"),
            "## Methods",
            false,
        );
        assert_eq!(docs, methods, "docs/control.md's method sections");
    }

    /// Issue 15: static neighbours could be set but not listed, deleted or saved.
    #[test]
    fn static_neighbours_are_listed_deleted_saved_and_restored() {
        let (c, _) = setup();
        assert_eq!(ok(&c, "neighbours", json!({})), json!({"neighbours": []}));
        for (addr, mac) in [
            ("198.18.0.14", "02:00:00:00:00:14"),
            ("198.18.0.13", "02-00-00-00-00-13"),
        ] {
            ok(&c, "neighbour.set", json!({"addr": addr, "mac": mac}));
        }
        // Sorted by address, MACs written in the one form.
        let want = json!({"neighbours": [
            {"addr": "198.18.0.13", "mac": "02:00:00:00:00:13"},
            {"addr": "198.18.0.14", "mac": "02:00:00:00:00:14"}]});
        assert_eq!(ok(&c, "neighbours", json!({})), want);
        ok(
            &c,
            "service.add",
            json!({"proto": "tcp", "vip": "198.18.0.100", "port": 80, "scheduler": "rr"}),
        );
        let saved = ok(&c, "rules.save", json!({"sort": true}))["text"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            saved,
            "--set-neighbour 198.18.0.13 02:00:00:00:00:13\n\
             --set-neighbour 198.18.0.14 02:00:00:00:00:14\n\
             -A -t 198.18.0.100:80 -s rr\n"
        );
        ok(&c, "neighbour.delete", json!({"addr": "198.18.0.14"}));
        assert_eq!(c.model().statics.len(), 1);
        let (code, msg) = err(&c, "neighbour.delete", json!({"addr": "198.18.0.14"}));
        assert_eq!(
            (code, msg.as_str()),
            (ERR_REFUSED, "No such static neighbour 198.18.0.14")
        );
        // -C keeps them; the saved text brings back the deleted one (a set replaces).
        ok(&c, "clear", json!({}));
        assert_eq!(c.model().statics.len(), 1);
        assert_eq!(
            ok(&c, "rules.restore", json!({"text": saved}))["applied"],
            3
        );
        assert_eq!(ok(&c, "neighbours", json!({})), want);
        // A restored neighbour passes the director's checks (its own MAC here), line named.
        let (code, msg) = err(
            &c,
            "rules.restore",
            json!({"text": "--delete-neighbour 198.18.0.13\n--set-neighbour 198.18.0.15 02:00:00:00:00:01\n"}),
        );
        assert_eq!(code, ERR_REFUSED);
        assert!(
            msg.starts_with("line 2: static neighbour 198.18.0.15"),
            "{msg}"
        );
        assert_eq!(ok(&c, "neighbours", json!({})), want);
    }

    #[test]
    fn rules_save_and_restore_all_or_nothing() {
        let (c, dp) = setup();
        let text = "-A -t 198.18.0.100:80 -s rr\n-a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 1\n";
        assert_eq!(ok(&c, "rules.restore", json!({"text": text}))["applied"], 2);
        assert_eq!(ok(&c, "rules.save", json!({}))["text"], text);
        assert_eq!(dp.publish_count(), 1);
        let (code, msg) = err(
            &c,
            "rules.restore",
            json!({"text": "-A -t 198.18.0.101:80 -s rr\n-a -t 198.18.0.101:80 -r bad\n"}),
        );
        assert_eq!(code, ERR_PARAMS);
        assert!(msg.starts_with("line 2:"), "{msg}");
        let (code, msg) = err(
            &c,
            "rules.restore",
            json!({"text": "-A -t 198.18.0.101:80 -s rr\n-A -t 198.18.0.100:80 -s rr\n"}),
        );
        assert_eq!(code, ERR_REFUSED);
        assert_eq!(msg, "line 2: Service already exists");
        assert_eq!(ok(&c, "rules.save", json!({"sort": true}))["text"], text);
        assert_eq!(dp.publish_count(), 1);
        assert_eq!(c.apply_rules("-C\n"), Ok(1));
        assert!(c.model().services().is_empty());
        assert!(c
            .apply_rules("-X\n")
            .unwrap_err()
            .message
            .starts_with("line 1:"));
    }

    #[test]
    fn protocol_errors() {
        let (c, _) = setup();
        let code = |line: &str| -> (i64, Value) {
            let v: Value = serde_json::from_str(&c.handle_line(line)).unwrap();
            (v["error"]["code"].as_i64().unwrap_or(0), v["id"].clone())
        };
        assert_eq!(code("{"), (ERR_PARSE, Value::Null));
        assert_eq!(code(""), (ERR_PARSE, Value::Null));
        assert_eq!(code("[1,2]").0, ERR_INVALID_REQUEST);
        assert_eq!(code("42").0, ERR_INVALID_REQUEST);
        assert_eq!(
            code(r#"{"method":"version","id":1}"#),
            (ERR_INVALID_REQUEST, json!(1))
        );
        assert_eq!(
            code(r#"{"jsonrpc":"1.0","method":"version","id":1}"#).0,
            ERR_INVALID_REQUEST
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","method":"version","id":{}}"#).0,
            ERR_INVALID_REQUEST
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","method":5,"id":1}"#).0,
            ERR_INVALID_REQUEST
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","method":"version","id":1,"x":2}"#).0,
            ERR_INVALID_REQUEST
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","method":"nope","id":"a"}"#),
            (ERR_METHOD, json!("a"))
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","method":"version","params":[],"id":1}"#).0,
            ERR_PARAMS
        );
        // A request without id still gets its one line.
        let v: Value =
            serde_json::from_str(&c.handle_line(r#"{"jsonrpc":"2.0","method":"version"}"#))
                .unwrap();
        assert_eq!(v["id"], Value::Null);
        assert!(v.get("result").is_some());
    }

    proptest! {
        #[test]
        fn arbitrary_lines_get_one_line_of_json(line in ".{0,200}") {
            let (c, _) = setup();
            let r = c.handle_line(&line);
            prop_assert!(!r.contains('\n'));
            let v: Value = serde_json::from_str(&r).unwrap();
            prop_assert_eq!(&v["jsonrpc"], "2.0");
            prop_assert!(v.get("error").is_some() || v.get("result").is_some());
        }

        #[test]
        fn arbitrary_params_never_panic(method in prop::sample::select(vec![
            "service.add", "service.edit", "service.delete", "server.add", "server.edit",
            "server.delete", "list", "zero", "neighbour.set", "neighbour.delete", "neighbours",
            "rules.restore", "rules.save"]),
            port in prop::num::i64::ANY, w in prop::num::i64::ANY, s in "[a-z0-9.: -]{0,20}") {
            let (c, _) = setup();
            let p = json!({"proto": s, "vip": s, "port": port, "service": {"proto": "tcp", "vip": s, "port": port},
                           "addr": s, "weight": w, "text": s, "mac": s});
            let line = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": p}).to_string();
            let v: Value = serde_json::from_str(&c.handle_line(&line)).unwrap();
            prop_assert!(v.get("error").is_some() || v.get("result").is_some());
        }
    }

    #[test]
    fn socket_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/control.sock");
        // A stale socket file from a dead daemon is replaced.
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        drop(UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let (c, _) = setup();
        let stop = Arc::new(AtomicBool::new(false));
        let h = serve(&path, Arc::new(c), stop.clone()).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // A second daemon on the same path is refused.
        let (c2, _) = setup();
        assert!(serve(&path, Arc::new(c2), Arc::new(AtomicBool::new(false))).is_err());

        let mut s = UnixStream::connect(&path).unwrap();
        s.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"version\"}\n\n{bad\n")
            .unwrap();
        s.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"service.add\",\"params\":{\"proto\":\"tcp\",\"vip\":\"198.18.0.100\",\"port\":80,\"scheduler\":\"rr\"}}\r\n").unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut lines = Vec::new();
        for _ in 0..3 {
            let mut l = String::new();
            r.read_line(&mut l).unwrap();
            lines.push(serde_json::from_str::<Value>(&l).unwrap());
        }
        assert_eq!(lines[0]["id"], 1);
        assert_eq!(lines[0]["result"]["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(lines[1]["error"]["code"], ERR_PARSE);
        assert_eq!(lines[2]["id"], 2);
        assert!(lines[2].get("result").is_some(), "{}", lines[2]);
        // Invalid UTF-8 gets a parse error, not a dropped connection.
        s.write_all(b"\xff\xfe\n").unwrap();
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&l).unwrap()["error"]["code"],
            ERR_PARSE
        );
        drop(s);
        stop.store(true, Ordering::Relaxed);
        h.join().unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn serve_refuses_non_socket_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file");
        std::fs::write(&path, b"x").unwrap();
        let (c, _) = setup();
        assert!(serve(&path, Arc::new(c), Arc::new(AtomicBool::new(false))).is_err());
        assert!(path.exists());
    }

    /// Issue 12, finding 2: a table full of silent clients must not lock out a new request.
    #[test]
    fn a_full_table_of_idle_clients_never_locks_out_a_new_request() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        let (c, _) = setup();
        let stop = Arc::new(AtomicBool::new(false));
        let h = serve(&path, Arc::new(c), stop.clone()).unwrap();
        let version = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"version\"}\n";
        // MAX_CLIENTS clients, each served once (so each is surely accepted), then silent.
        let mut idle: Vec<(UnixStream, BufReader<UnixStream>)> = (0..MAX_CLIENTS)
            .map(|_| {
                let s = UnixStream::connect(&path).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let r = BufReader::new(s.try_clone().unwrap());
                (s, r)
            })
            .collect();
        for (s, r) in &mut idle {
            s.write_all(version).unwrap();
            let mut l = String::new();
            r.read_line(&mut l).unwrap();
            assert!(l.contains("\"result\""), "{l}");
        }
        // A newcomer is still answered.
        let mut s = UnixStream::connect(&path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(version).unwrap();
        let mut l = String::new();
        BufReader::new(s).read_line(&mut l).unwrap();
        assert!(l.contains("\"result\""), "newcomer refused: {l}");
        // The client idle longest (the first) made room: told why, then closed.
        let (_, r) = &mut idle[0];
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        let v: Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["error"]["code"], ERR_INTERNAL, "{l}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("idle"),
            "{l}"
        );
        l.clear();
        assert_eq!(r.read_line(&mut l).unwrap(), 0, "still open: {l}");
        // The others are still served.
        let (s, r) = &mut idle[1];
        s.write_all(version).unwrap();
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        assert!(l.contains("\"result\""), "{l}");
        drop(idle);
        stop.store(true, Ordering::Relaxed);
        h.join().unwrap();
    }

    fn connect(path: &Path) -> (UnixStream, BufReader<UnixStream>) {
        let s = UnixStream::connect(path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let r = BufReader::new(s.try_clone().unwrap());
        (s, r)
    }

    fn next_line(r: &mut BufReader<UnixStream>) -> Value {
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        serde_json::from_str(&l).unwrap_or_else(|e| panic!("{l:?}: {e}"))
    }

    /// The server closed the connection: end of file, or a reset when the server closed it
    /// with bytes of ours still unread.
    fn closed(r: &mut BufReader<UnixStream>) -> bool {
        let mut l = String::new();
        match r.read_line(&mut l) {
            Ok(n) => n == 0,
            Err(e) => e.kind() == io::ErrorKind::ConnectionReset,
        }
    }

    /// Idle clients are closed after the idle timeout (here 300 ms), told why; a client that
    /// only sends part of a line, or blank lines, is idle too; a client with requests stays.
    #[test]
    fn idle_clients_are_closed_after_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        let (c, _) = setup();
        let stop = Arc::new(AtomicBool::new(false));
        let opts = ServeOptions {
            max_clients: 8,
            idle_timeout: Duration::from_millis(300),
        };
        let h = serve_with(&path, Arc::new(c), stop.clone(), opts).unwrap();
        let version = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"version\"}\n";
        let (_idle, mut idle_r) = connect(&path);
        let (mut partial, mut partial_r) = connect(&path);
        let (mut blank, mut blank_r) = connect(&path);
        let (mut busy, mut busy_r) = connect(&path);
        partial.write_all(b"{\"jsonrpc\":").unwrap();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_millis(900) {
            busy.write_all(version).unwrap();
            assert!(next_line(&mut busy_r).get("result").is_some());
            let _ = partial.write_all(b" ");
            let _ = blank.write_all(b"\n");
            std::thread::sleep(Duration::from_millis(100));
        }
        for r in [&mut idle_r, &mut partial_r, &mut blank_r] {
            let v = next_line(r);
            assert_eq!(v["error"]["code"], ERR_INTERNAL, "{v}");
            let msg = v["error"]["message"].as_str().unwrap();
            assert!(
                msg.contains("idle, no complete request for 300 ms"),
                "{msg}"
            );
            assert!(closed(r));
        }
        busy.write_all(version).unwrap();
        assert!(next_line(&mut busy_r).get("result").is_some());
        stop.store(true, Ordering::Relaxed);
        h.join().unwrap();
    }

    /// With the table full, each newcomer closes the client idle longest, in order; clients
    /// that just made a request stay.
    #[test]
    fn the_longest_idle_client_makes_room_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        let (c, _) = setup();
        let stop = Arc::new(AtomicBool::new(false));
        let opts = ServeOptions {
            max_clients: 3,
            idle_timeout: Duration::from_secs(60),
        };
        let h = serve_with(&path, Arc::new(c), stop.clone(), opts).unwrap();
        let version = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"version\"}\n";
        let mut conns: Vec<_> = (0..3)
            .map(|_| {
                let (mut s, mut r) = connect(&path);
                s.write_all(version).unwrap();
                assert!(next_line(&mut r).get("result").is_some());
                std::thread::sleep(Duration::from_millis(20));
                (s, r)
            })
            .collect();
        // The first client is active again: the second is now the idlest.
        conns[0].0.write_all(version).unwrap();
        assert!(next_line(&mut conns[0].1).get("result").is_some());
        for gone in [1, 2] {
            let (mut s, mut r) = connect(&path);
            s.write_all(version).unwrap();
            assert!(next_line(&mut r).get("result").is_some());
            let v = next_line(&mut conns[gone].1);
            let msg = v["error"]["message"].as_str().unwrap_or_default();
            assert!(msg.contains("to make room for a new client"), "{v}");
            assert!(closed(&mut conns[gone].1));
            conns.push((s, r));
        }
        conns[0].0.write_all(version).unwrap();
        assert!(next_line(&mut conns[0].1).get("result").is_some());
        stop.store(true, Ordering::Relaxed);
        h.join().unwrap();
    }

    /// Issue 12, finding 7: a duplicated key is refused, not silently the last one.
    #[test]
    fn duplicated_keys_are_refused_naming_the_key() {
        let (c, dp) = setup();
        let reply = |line: &str| -> Value { serde_json::from_str(&c.handle_line(line)).unwrap() };
        let v = reply(r#"{"jsonrpc":"2.0","id":1,"method":"clear","method":"version"}"#);
        assert_eq!(v["error"]["code"], ERR_INVALID_REQUEST, "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("'method'"),
            "{v}"
        );
        let v = reply(
            r#"{"jsonrpc":"2.0","id":2,"method":"service.add","params":{"proto":"tcp","vip":"198.18.0.100","vip":"198.18.0.101","port":80}}"#,
        );
        assert_eq!(v["error"]["code"], ERR_PARAMS, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("'params.vip'"),
            "{v}"
        );
        let v = reply(
            r#"{"jsonrpc":"2.0","id":3,"method":"server.add","params":{"service":{"proto":"tcp","vip":"198.18.0.100","port":80,"port":81},"addr":"198.18.0.11"}}"#,
        );
        assert_eq!(v["error"]["code"], ERR_PARAMS, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("'params.service.port'"),
            "{v}"
        );
        assert_eq!(dp.publish_count(), 0);
    }

    /// Issue 12, finding 6: the VIP, the DIP and off-link addresses are no DR real servers.
    /// The fake dataplane's director is the lab's: 198.18.0.2/24.
    #[test]
    fn vip_dip_and_off_link_real_servers_are_refused() {
        let (c, dp) = setup();
        lab(&c);
        let before = rules::emit(&c.model(), true);
        let publishes = dp.publish_count();
        let cases = [
            ("198.18.0.100", "is a virtual service address"),
            ("198.18.0.2", "is the director's own address"),
            (
                "198.18.1.11",
                "is not on the director's subnet 198.18.0.0/24",
            ),
            ("10.0.0.1", "is not on the director's subnet"),
            ("127.0.0.1", "loopback"),
            ("198.18.0.255", "broadcast"),
            ("198.18.0.0", "network address"),
        ];
        for (addr, want) in cases {
            let (code, msg) = err(&c, "server.add", json!({"service": svc(), "addr": addr}));
            assert_eq!(code, ERR_REFUSED, "{addr}: {msg}");
            assert!(msg.contains(addr) && msg.contains(want), "{addr}: {msg}");
            let text = format!("-a -t 198.18.0.100:80 -r {addr}:80 -g -w 1\n");
            let (code, msg) = err(&c, "rules.restore", json!({ "text": text }));
            assert_eq!(code, ERR_REFUSED, "{addr}: {msg}");
            assert!(msg.starts_with("line 1: ") && msg.contains(want), "{msg}");
            assert!(c.apply_rules(&text).is_err());
        }
        // A VIP equal to a real server or to the DIP.
        for (vip, want) in [
            ("198.18.0.11", "is a real server address"),
            ("198.18.0.2", "is the director's own address"),
        ] {
            let (code, msg) = err(
                &c,
                "service.add",
                json!({"proto": "udp", "vip": vip, "port": 53, "scheduler": "rr"}),
            );
            assert_eq!(code, ERR_REFUSED, "{vip}: {msg}");
            assert!(msg.contains(vip) && msg.contains(want), "{vip}: {msg}");
        }
        // Static neighbours: never the port's own MAC, a group or zero MAC, nor the DIP.
        for (addr, mac, want) in [
            ("198.18.0.13", "02:00:00:00:00:01", "the director's own MAC"),
            ("198.18.0.13", "ff:ff:ff:ff:ff:ff", "multicast"),
            ("198.18.0.13", "00:00:00:00:00:00", "zero"),
            (
                "198.18.0.2",
                "02:00:00:00:00:13",
                "the director's own address",
            ),
        ] {
            let (code, msg) = err(&c, "neighbour.set", json!({"addr": addr, "mac": mac}));
            assert_eq!(code, ERR_REFUSED, "{addr} {mac}: {msg}");
            assert!(msg.contains(want), "{addr} {mac}: {msg}");
        }
        assert_eq!(rules::emit(&c.model(), true), before);
        assert_eq!(dp.publish_count(), publishes);
        // What is fine stays fine.
        ok(
            &c,
            "server.add",
            json!({"service": svc(), "addr": "198.18.0.13"}),
        );
    }

    #[test]
    fn vrrp_standby_is_published_kept_and_shown() {
        let (c, dp) = setup();
        ok(
            &c,
            "service.add",
            json!({"proto": "tcp", "vip": "198.18.0.100", "port": 80, "scheduler": "rr"}),
        );
        let vip = Ipv4Addr::new(198, 18, 0, 100);
        let n = dp.publishes.lock().unwrap().len();
        c.set_master("VI_1", &[vip], false).unwrap();
        assert_eq!(dp.publishes.lock().unwrap().len(), n + 1);
        assert!(dp.publishes.lock().unwrap().last().unwrap().is_standby(vip));
        c.set_master("VI_1", &[vip], false).unwrap();
        assert_eq!(
            dp.publishes.lock().unwrap().len(),
            n + 1,
            "no change, no publication"
        );
        // Another change to the model keeps the VIP in standby.
        ok(
            &c,
            "service.edit",
            json!({"proto": "tcp", "vip": "198.18.0.100", "port": 80, "scheduler": "wrr"}),
        );
        assert!(dp.publishes.lock().unwrap().last().unwrap().is_standby(vip));
        // A failed publication leaves the model as it was.
        dp.set_fail(true);
        assert!(c
            .set_master("VI_1", &[vip], true)
            .unwrap_err()
            .contains("VI_1"));
        dp.set_fail(false);
        assert!(c.model().is_standby(vip));
        c.set_master("VI_1", &[vip], true).unwrap();
        assert!(!c.model().is_standby(vip));
        c.status(&InstanceStatus {
            name: "VI_1".into(),
            vrid: 51,
            state: crate::ha::VrrpState::Master,
            ..InstanceStatus::default()
        });
        let l = ok(&c, "list", json!({}));
        assert_eq!(l["vrrp"][0]["state"], "MASTER");
        let st = ok(&c, "stats", json!({}));
        assert_eq!(st["vrrp"][0]["vrid"], 51);
        assert!(st.get("sync").is_none());
        c.set_ha_stats(Box::new(|| json!({"messages_sent": 3})));
        assert_eq!(ok(&c, "stats", json!({}))["sync"]["messages_sent"], 3);
    }

    #[test]
    fn director_drain_sets_and_reports() {
        let (c, dp) = setup();
        assert!(!c.draining());
        let n = dp.publish_count();
        assert_eq!(
            ok(&c, "director.drain", json!({"on": true})),
            json!({"draining": true, "was": false})
        );
        assert!(c.draining());
        // Twice is fine and says so.
        assert_eq!(
            ok(&c, "director.drain", json!({"on": true})),
            json!({"draining": true, "was": true})
        );
        assert_eq!(
            ok(&c, "director.drain", json!({"on": false})),
            json!({"draining": false, "was": true})
        );
        assert!(!c.draining());
        // Draining is not a model change: no snapshot was published.
        assert_eq!(dp.publish_count(), n);
        for (params, want) in [
            (json!({}), "missing field 'on'"),
            (json!({"on": null}), "missing field 'on'"),
            (json!({"on": 1}), "on: expected a boolean"),
            (json!({"on": "true"}), "on: expected a boolean"),
            (json!({"on": true, "off": true}), "off"),
        ] {
            let (code, msg) = err(&c, "director.drain", params.clone());
            assert_eq!(code, ERR_PARAMS, "{params}");
            assert!(msg.contains(want), "{params}: {msg}");
            assert!(!c.draining(), "{params}");
        }
    }
}
