//! What the health checks make of the model: each real server's checks and the latest status of
//! each probe give its state (up, down, inhibited) and its health weight; each service's
//! quorum decides whether its sorry server stands in for its real servers.
//!
//! [`Liveness`] is the control plane's memory of health (the settings, the probes' statuses,
//! when each server last changed state and why). It never publishes anything itself: the
//! server ([`crate::server::Control`]) runs [`Liveness::sync`] on a clone of the model after
//! every change (an operator's or a probe's), publishes the result, and only then commits
//! both, exactly as for any other change.
//!
//! The rules (keepalived's):
//! - a server is up iff every one of its checks is up; a check that has not run yet counts as
//!   its initial state (up, or down with `alpha`); no checks = always up. Down takes it out of
//!   the snapshot, or with `inhibit_on_failure` keeps it with weight 0 ([`Health`]).
//! - its health weight is the weight a `misc_dynamic` `MISC_CHECK` set (the first such check
//!   that reports one), used instead of the configured weight while up.
//! - a service's quorum is the sum of the weights of its servers that are up: lost when it
//!   falls below `quorum - hysteresis` (or to 0), regained at `quorum + hysteresis`. It starts
//!   met if the sum is at least `quorum` (when the service appears, and again whenever its
//!   health settings are set). While lost, a sorry server (if set) is scheduled alone.
//!   Transitions give the `quorum_up`/`quorum_down` commands to run ([`QuorumAction`]); those
//!   caused by an operator's change are handed out with the next probe report.

use crate::check::{
    CheckKind, CheckSpec, ProbeKey, ProbeStatus, QuorumAction, ServerHealth, ServiceHealth,
};
use crate::proto::{ListedCheck, ListedHealth};
use rvs_dataplane::model::{Health, Model, ModelError, RealServer, ServiceKey};
use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

/// A real server of a service: (service, address, port).
pub type ServerKey = (ServiceKey, Ipv4Addr, u16);

#[derive(Debug, Clone)]
struct ServerEntry {
    /// The model's id of the server these settings belong to (a server deleted and added again
    /// is another one, without them).
    id: u32,
    health: ServerHealth,
    /// When its state last changed (or it appeared), Unix ms.
    since: u64,
}

#[derive(Debug, Clone)]
struct ServiceEntry {
    id: u32,
    health: ServiceHealth,
}

/// A real server that changed state or weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub service: ServiceKey,
    pub addr: Ipv4Addr,
    pub port: u16,
    pub from: Health,
    pub to: Health,
    /// The health weight before and after.
    pub weight_from: Option<u32>,
    pub weight_to: Option<u32>,
    pub reason: String,
}

/// A service whose quorum was lost (`met == false`) or regained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumChange {
    pub service: ServiceKey,
    pub met: bool,
    pub sum: u64,
}

/// What a [`Liveness::sync`] changed.
#[derive(Debug, Default)]
pub struct Outcome {
    pub transitions: Vec<Transition>,
    pub quorum: Vec<QuorumChange>,
    /// The set of probes changed (the generation must move).
    pub probes_changed: bool,
}

impl Outcome {
    /// Log every change (after it was published).
    pub fn log(&self) {
        for t in &self.transitions {
            if t.from != t.to {
                tracing::info!(
                    service = %t.service,
                    server = %format!("{}:{}", t.addr, t.port),
                    from = t.from.name(),
                    to = t.to.name(),
                    reason = %t.reason,
                    "real server {} -> {}",
                    t.from,
                    t.to
                );
            } else {
                tracing::info!(
                    service = %t.service,
                    server = %format!("{}:{}", t.addr, t.port),
                    weight_from = ?t.weight_from,
                    weight_to = ?t.weight_to,
                    reason = %t.reason,
                    "real server health weight changed"
                );
            }
        }
        for q in &self.quorum {
            tracing::info!(
                service = %q.service,
                weight_up = q.sum,
                "quorum {}",
                if q.met { "regained" } else { "lost" }
            );
        }
    }
}

/// The health of every service and real server (see the module documentation).
#[derive(Debug, Clone, Default)]
pub struct Liveness {
    servers: HashMap<ServerKey, ServerEntry>,
    services: HashMap<ServiceKey, ServiceEntry>,
    /// The latest status of each probe in `probes`.
    statuses: HashMap<ProbeKey, ProbeStatus>,
    /// Every probe to run, each once, in the model's order.
    probes: Vec<ProbeKey>,
    /// The same, to look reports up.
    probe_set: HashSet<ProbeKey>,
    /// Quorum commands of committed changes not handed out yet.
    pending: Vec<QuorumAction>,
    /// A probe's change could not be published: try again with the next report.
    pub dirty: bool,
}

/// The status of a check that has not run yet.
fn initial(check: &CheckSpec, since: u64) -> ProbeStatus {
    ProbeStatus {
        up: !check.params.alpha,
        weight: None,
        since_unix_ms: since,
        last_check_unix_ms: None,
        last_error: None,
        reason: if check.params.alpha {
            "not checked yet (alpha: starts down)".to_string()
        } else {
            "not checked yet".to_string()
        },
    }
}

fn probe_key(check: &CheckSpec, addr: Ipv4Addr, port: u16) -> ProbeKey {
    ProbeKey {
        check: check.clone(),
        addr,
        port,
    }
}

impl Liveness {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every probe to run, each once however many services use it.
    pub fn probes(&self) -> &[ProbeKey] {
        &self.probes
    }

    /// Whether `key` is one of the probes to run (a report of another is stale).
    pub fn knows(&self, key: &ProbeKey) -> bool {
        self.probe_set.contains(key)
    }

    /// Keep the latest status of a probe. True when its verdict (up, weight) differs from the
    /// one it replaces (or from the initial state of its check), i.e. when the model may change.
    pub fn record(&mut self, key: &ProbeKey, status: &ProbeStatus) -> bool {
        let before = self
            .statuses
            .get(key)
            .map(|s| (s.up, s.weight))
            .unwrap_or((!key.check.params.alpha, None));
        self.statuses.insert(key.clone(), status.clone());
        before != (status.up, status.weight)
    }

    /// The quorum commands of committed changes, handed out once.
    pub fn take_pending(&mut self) -> Vec<QuorumAction> {
        std::mem::take(&mut self.pending)
    }

    /// Queue quorum commands (of a committed change).
    pub fn queue(&mut self, mut actions: Vec<QuorumAction>) {
        self.pending.append(&mut actions);
    }

    /// The health settings of a server of the model (`port` 0 = the service port). The model
    /// must hold it (checked by the caller); [`Liveness::sync`] then applies them.
    pub fn set_server(
        &mut self,
        model: &Model,
        key: &ServiceKey,
        addr: Ipv4Addr,
        port: u16,
        health: ServerHealth,
        now: u64,
    ) -> Result<(), ModelError> {
        let svc = model.service(key).ok_or(ModelError::ServiceNotDefined)?;
        let rs = svc.server(addr, port).ok_or(ModelError::NoSuchServer)?;
        if rs.spec.port == 0 {
            // A server of an all-ports service has no port to probe.
            for (i, c) in health.checks.iter().enumerate() {
                let needs_port = !matches!(c.kind, CheckKind::Ping | CheckKind::Misc(_));
                if needs_port && c.params.connect_port.is_none() {
                    return Err(ModelError::Invalid(format!(
                        "checks[{i}]: {} of a server of an all-ports service needs connect_port",
                        c.kind.name()
                    )));
                }
            }
        }
        let k = (*key, rs.spec.addr, rs.spec.port);
        let since = self
            .servers
            .get(&k)
            .filter(|e| e.id == rs.id)
            .map_or(now, |e| e.since);
        self.servers.insert(
            k,
            ServerEntry {
                id: rs.id,
                health,
                since,
            },
        );
        Ok(())
    }

    /// The health settings of a service of the model; its sorry server goes into `model`, and
    /// its quorum starts again (met if the weights up reach `quorum`).
    pub fn set_service(
        &mut self,
        model: &mut Model,
        key: &ServiceKey,
        health: ServiceHealth,
    ) -> Result<(), ModelError> {
        let id = model.service(key).ok_or(ModelError::ServiceNotDefined)?.id;
        model.set_sorry_server(key, health.sorry_server)?;
        let sum = self.weight_up(model, key);
        model.set_quorum_lost(key, sum < u64::from(health.quorum))?;
        self.services.insert(*key, ServiceEntry { id, health });
        Ok(())
    }

    /// The sum of the weights of the servers of `key` that are up, as `model` has them.
    fn weight_up(&self, model: &Model, key: &ServiceKey) -> u64 {
        model.service(key).map_or(0, |s| {
            s.servers
                .iter()
                .filter(|r| r.health == Health::Up)
                .filter_map(RealServer::effective_weight)
                .map(u64::from)
                .sum()
        })
    }

    /// The state and health weight `rs` should have now, and why.
    fn verdict(&self, key: &ServiceKey, rs: &RealServer) -> (Health, Option<u32>, String) {
        let Some(e) = self
            .servers
            .get(&(*key, rs.spec.addr, rs.spec.port))
            .filter(|e| e.id == rs.id && !e.health.checks.is_empty())
        else {
            return (Health::Up, None, "no checks".to_string());
        };
        let mut weight = None;
        let mut down: Option<String> = None;
        let mut latest: Option<(u64, String)> = None;
        for c in &e.health.checks {
            let k = probe_key(c, rs.spec.addr, rs.spec.port);
            let st = self
                .statuses
                .get(&k)
                .cloned()
                .unwrap_or_else(|| initial(c, e.since));
            let why = format!("{}: {}", c.kind.name(), st.reason);
            if !st.up && down.is_none() {
                down = Some(why.clone());
            }
            if weight.is_none() {
                weight = st.weight;
            }
            if latest.as_ref().map_or(true, |l| st.since_unix_ms >= l.0) {
                latest = Some((st.since_unix_ms, why));
            }
        }
        match down {
            Some(why) if e.health.inhibit_on_failure => (Health::Inhibited, None, why),
            Some(why) => (Health::Down, None, why),
            None => (Health::Up, weight, latest.map_or_else(String::new, |l| l.1)),
        }
    }

    /// Bring the health memory and `model` together: forget the settings and statuses of
    /// what is gone, start those of what is new, give every real server the state and weight
    /// its checks say, and every service its quorum state. Returns what changed; the quorum
    /// commands to run are in the returned actions.
    pub fn sync(&mut self, model: &mut Model, now: u64) -> (Outcome, Vec<QuorumAction>) {
        let mut out = Outcome::default();
        let mut actions = Vec::new();
        // Forget what the model no longer has (by id: deleted and added again = new).
        let mut live_servers: HashMap<ServerKey, u32> = HashMap::new();
        let mut live_services: HashMap<ServiceKey, u32> = HashMap::new();
        for s in model.services() {
            live_services.insert(s.spec.key, s.id);
            for r in &s.servers {
                live_servers.insert((s.spec.key, r.spec.addr, r.spec.port), r.id);
            }
        }
        self.servers
            .retain(|k, e| live_servers.get(k) == Some(&e.id));
        self.services
            .retain(|k, e| live_services.get(k) == Some(&e.id));
        for (k, id) in &live_servers {
            self.servers.entry(*k).or_insert_with(|| ServerEntry {
                id: *id,
                health: ServerHealth::default(),
                since: now,
            });
        }
        // The probes, each once, in the model's order.
        let mut seen = HashSet::new();
        let mut probes = Vec::new();
        for s in model.services() {
            for r in &s.servers {
                let Some(e) = self.servers.get(&(s.spec.key, r.spec.addr, r.spec.port)) else {
                    continue;
                };
                for c in &e.health.checks {
                    let k = probe_key(c, r.spec.addr, r.spec.port);
                    if seen.insert(k.clone()) {
                        probes.push(k);
                    }
                }
            }
        }
        if probes != self.probes {
            out.probes_changed = true;
            self.statuses.retain(|k, _| seen.contains(k));
            self.probes = probes;
            self.probe_set = seen;
        }
        // Each server's state and weight.
        let keys: Vec<ServiceKey> = model.services().iter().map(|s| s.spec.key).collect();
        for key in &keys {
            let Some(svc) = model.service(key) else {
                continue;
            };
            let changes: Vec<Transition> = svc
                .servers
                .iter()
                .filter_map(|rs| {
                    let (to, w, reason) = self.verdict(key, rs);
                    if to == rs.health && w == rs.health_weight {
                        return None;
                    }
                    Some(Transition {
                        service: *key,
                        addr: rs.spec.addr,
                        port: rs.spec.port,
                        from: rs.health,
                        to,
                        weight_from: rs.health_weight,
                        weight_to: w,
                        reason,
                    })
                })
                .collect();
            for t in changes {
                let (addr, port) = (t.addr, t.port);
                if model
                    .set_server_health(key, addr, port, t.to, t.weight_to)
                    .is_ok()
                {
                    if t.from != t.to {
                        if let Some(e) = self.servers.get_mut(&(*key, addr, port)) {
                            e.since = now;
                        }
                    }
                    out.transitions.push(t);
                }
            }
        }
        // Each service's quorum.
        for key in &keys {
            let Some(svc) = model.service(key) else {
                continue;
            };
            let sum = self.weight_up(model, key);
            let entry = match self.services.get(key) {
                Some(e) => e.clone(),
                None => {
                    // New: starts met if the weights up reach the quorum.
                    let e = ServiceEntry {
                        id: svc.id,
                        health: ServiceHealth::default(),
                    };
                    let lost = sum < u64::from(e.health.quorum);
                    let _ = model.set_quorum_lost(key, lost);
                    self.services.insert(*key, e);
                    continue;
                }
            };
            let (q, h) = (
                u64::from(entry.health.quorum),
                u64::from(entry.health.hysteresis),
            );
            let lost = svc.quorum_lost;
            let change = if !lost && (sum == 0 || sum < q.saturating_sub(h)) {
                Some(false)
            } else if lost && sum > 0 && sum >= q + h {
                Some(true)
            } else {
                None
            };
            if let Some(met) = change {
                let _ = model.set_quorum_lost(key, !met);
                out.quorum.push(QuorumChange {
                    service: *key,
                    met,
                    sum,
                });
                let cmd = if met {
                    &entry.health.quorum_up
                } else {
                    &entry.health.quorum_down
                };
                if let Some(command) = cmd {
                    actions.push(QuorumAction {
                        service: *key,
                        up: met,
                        command: command.clone(),
                    });
                }
            }
        }
        (out, actions)
    }

    /// The health settings of a server, if any were set (other than none).
    pub fn server_settings(&self, key: &ServiceKey, rs: &RealServer) -> Option<&ServerHealth> {
        self.servers
            .get(&(*key, rs.spec.addr, rs.spec.port))
            .filter(|e| e.id == rs.id && e.health != ServerHealth::default())
            .map(|e| &e.health)
    }

    /// The health settings of a service (the defaults if none were set).
    pub fn service_settings(&self, key: &ServiceKey) -> ServiceHealth {
        self.services
            .get(key)
            .map_or_else(ServiceHealth::default, |e| e.health.clone())
    }

    /// What `list` shows of a real server's health.
    pub fn server_view(&self, key: &ServiceKey, rs: &RealServer) -> ListedHealth {
        let entry = self
            .servers
            .get(&(*key, rs.spec.addr, rs.spec.port))
            .filter(|e| e.id == rs.id);
        let checks: Vec<ListedCheck> = entry
            .map(|e| {
                e.health
                    .checks
                    .iter()
                    .map(|c| {
                        let st = self
                            .statuses
                            .get(&probe_key(c, rs.spec.addr, rs.spec.port))
                            .cloned()
                            .unwrap_or_else(|| initial(c, e.since));
                        ListedCheck {
                            kind: c.kind.name().to_string(),
                            up: st.up,
                            since: st.since_unix_ms,
                            last_check: st.last_check_unix_ms,
                            last_error: st.last_error,
                            reason: st.reason,
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        let last_check = checks.iter().filter_map(|c| c.last_check).max();
        let last_error = checks
            .iter()
            .find(|c| !c.up && c.last_error.is_some())
            .or_else(|| checks.iter().find(|c| c.last_error.is_some()))
            .and_then(|c| c.last_error.clone());
        ListedHealth {
            state: rs.health,
            since: entry.map_or(0, |e| e.since),
            last_check,
            last_error,
            weight: rs.effective_weight().unwrap_or(0),
            inhibit_on_failure: entry.is_some_and(|e| e.health.inhibit_on_failure),
            checks,
        }
    }
}

/// The fields a check object may have on the socket, by its `type` (serde cannot refuse
/// unknown fields through `flatten`, so the socket checks them against these lists).
pub fn check_fields(kind: &str) -> Option<Vec<&'static str>> {
    const COMMON: [&str; 12] = [
        "type",
        "connect_ip",
        "connect_port",
        "bindto",
        "bind_port",
        "connect_timeout_ms",
        "delay_loop_ms",
        "retry",
        "delay_before_retry_ms",
        "warmup_ms",
        "rise",
        "alpha",
    ];
    let own: &[&'static str] = match kind {
        "TCP_CHECK" | "PING_CHECK" => &[],
        "HTTP_GET" | "SSL_GET" => &["urls", "virtualhost"],
        "UDP_CHECK" => &["payload", "require_reply"],
        "MISC_CHECK" => &["path", "timeout_ms", "dynamic"],
        _ => return None,
    };
    Some(COMMON.iter().chain(own).copied().collect())
}

/// The fields of one `url` of an `HTTP_GET`/`SSL_GET`.
pub const URL_FIELDS: [&str; 4] = ["path", "digest", "status_code", "virtualhost"];

/// Every check type by its keepalived name.
pub const CHECK_TYPES: [&str; 6] = [
    "TCP_CHECK",
    "HTTP_GET",
    "SSL_GET",
    "UDP_CHECK",
    "PING_CHECK",
    "MISC_CHECK",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{CheckParams, HttpCheck, MiscCheck, UdpCheck, UrlCheck};
    use rvs_dataplane::model::{Forward, Protocol, SchedulerKind, ServerSpec, ServiceSpec};

    const RS1: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 11);
    const RS2: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 12);

    fn key(port: u16) -> ServiceKey {
        ServiceKey {
            proto: Protocol::Tcp,
            vip: Ipv4Addr::new(198, 18, 0, 100),
            port,
        }
    }

    fn spec(addr: Ipv4Addr, weight: u32) -> ServerSpec {
        ServerSpec {
            addr,
            port: 0,
            weight,
            forward: Forward::Dr,
            upper: 0,
            lower: 0,
        }
    }

    /// Services :80 and :443 (wrr), each with RS1 (weight 3) and RS2 (weight 1).
    fn model() -> Model {
        let mut m = Model::new(8, 16);
        for p in [80, 443] {
            m.add_service(ServiceSpec {
                key: key(p),
                scheduler: SchedulerKind::Wrr,
                persistent: None,
                netmask: Ipv4Addr::BROADCAST,
                flags: vec![],
            })
            .unwrap();
            m.add_server(&key(p), spec(RS1, 3)).unwrap();
            m.add_server(&key(p), spec(RS2, 1)).unwrap();
        }
        m
    }

    fn tcp() -> CheckSpec {
        CheckSpec {
            kind: CheckKind::Tcp,
            params: CheckParams::default(),
        }
    }

    fn misc() -> CheckSpec {
        CheckSpec {
            kind: CheckKind::Misc(MiscCheck {
                path: "/bin/check".into(),
                timeout_ms: None,
                dynamic: true,
            }),
            params: CheckParams::default(),
        }
    }

    fn status(up: bool, weight: Option<u32>, at: u64) -> ProbeStatus {
        ProbeStatus {
            up,
            weight,
            since_unix_ms: at,
            last_check_unix_ms: Some(at),
            last_error: (!up).then(|| "connect: connection refused".to_string()),
            reason: if up { "rise 1 reached" } else { "2 failures" }.to_string(),
        }
    }

    fn health_of(m: &Model, port: u16, addr: Ipv4Addr) -> (Health, Option<u32>) {
        let rs = m.service(&key(port)).unwrap().server(addr, 0).unwrap();
        (rs.health, rs.health_weight)
    }

    fn checked(checks: Vec<CheckSpec>, inhibit: bool) -> ServerHealth {
        ServerHealth {
            checks,
            inhibit_on_failure: inhibit,
        }
    }

    #[test]
    fn servers_follow_all_their_checks_and_share_probes() {
        let mut m = model();
        let mut l = Liveness::new();
        l.sync(&mut m, 1);
        assert!(l.probes().is_empty());
        // RS1 in both services with the same TCP check: one probe; RS1:80 also a MISC check
        l.set_server(&m, &key(80), RS1, 0, checked(vec![tcp(), misc()], false), 1)
            .unwrap();
        l.set_server(&m, &key(443), RS1, 443, checked(vec![tcp()], true), 1)
            .unwrap();
        let (out, _) = l.sync(&mut m, 2);
        assert!(out.probes_changed);
        assert!(out.transitions.is_empty(), "not run yet: up");
        let tcp80 = probe_key(&tcp(), RS1, 80);
        let tcp443 = probe_key(&tcp(), RS1, 443);
        let misc80 = probe_key(&misc(), RS1, 80);
        assert_eq!(l.probes(), &[tcp80.clone(), misc80.clone(), tcp443.clone()]);
        // the TCP check fails: RS1:80 down, RS1:443 inhibited
        assert!(l.record(&tcp80, &status(false, None, 10)));
        assert!(l.record(&tcp443, &status(false, None, 10)));
        let (out, _) = l.sync(&mut m, 10);
        assert_eq!(health_of(&m, 80, RS1), (Health::Down, None));
        assert_eq!(health_of(&m, 443, RS1), (Health::Inhibited, None));
        assert_eq!(health_of(&m, 80, RS2), (Health::Up, None));
        assert_eq!(out.transitions.len(), 2);
        assert_eq!(out.transitions[0].reason, "TCP_CHECK: 2 failures");
        // a repeated verdict changes nothing
        assert!(!l.record(&tcp80, &status(false, None, 11)));
        // back up, the MISC check sets weight 7 (code 9)
        l.record(&tcp80, &status(true, None, 20));
        l.record(&misc80, &status(true, Some(7), 20));
        let (out, _) = l.sync(&mut m, 20);
        assert_eq!(health_of(&m, 80, RS1), (Health::Up, Some(7)));
        assert_eq!(out.transitions.len(), 1);
        // the MISC check down (exit 1) while TCP is up: down
        l.record(&misc80, &status(false, None, 30));
        l.sync(&mut m, 30);
        assert_eq!(health_of(&m, 80, RS1), (Health::Down, None));
        let v = l.server_view(
            &key(80),
            m.service(&key(80)).unwrap().server(RS1, 0).unwrap(),
        );
        assert_eq!((v.state, v.since, v.weight), (Health::Down, 30, 0));
        assert_eq!(v.checks.len(), 2);
        assert_eq!(v.last_error.as_deref(), Some("connect: connection refused"));
        assert_eq!(v.last_check, Some(30));
        // checks removed: up, the probes gone with their statuses
        l.set_server(&m, &key(80), RS1, 0, ServerHealth::default(), 40)
            .unwrap();
        let (out, _) = l.sync(&mut m, 40);
        assert!(out.probes_changed);
        assert_eq!(health_of(&m, 80, RS1), (Health::Up, None));
        assert_eq!(l.probes(), std::slice::from_ref(&tcp443));
        assert!(!l.knows(&misc80));
    }

    #[test]
    fn alpha_starts_down_and_slots_stay() {
        let mut m = model();
        let mut l = Liveness::new();
        let mut c = tcp();
        c.params.alpha = true;
        let before = m.service(&key(80)).unwrap().servers[1].clone();
        l.set_server(&m, &key(80), RS2, 0, checked(vec![c.clone()], false), 1)
            .unwrap();
        let (out, _) = l.sync(&mut m, 1);
        assert_eq!(health_of(&m, 80, RS2), (Health::Down, None));
        assert!(out.transitions[0].reason.contains("alpha"), "{out:?}");
        // the first success only matters because alpha started it down
        assert!(l.record(&probe_key(&c, RS2, 80), &status(true, None, 5)));
        l.sync(&mut m, 5);
        let after = m.service(&key(80)).unwrap().servers[1].clone();
        assert_eq!(after.health, Health::Up);
        assert_eq!((after.slot, after.id), (before.slot, before.id));
    }

    #[test]
    fn deleted_servers_lose_their_settings_and_probes() {
        let mut m = model();
        let mut l = Liveness::new();
        l.set_server(&m, &key(80), RS2, 0, checked(vec![tcp()], false), 1)
            .unwrap();
        l.sync(&mut m, 1);
        l.record(&probe_key(&tcp(), RS2, 80), &status(false, None, 2));
        l.sync(&mut m, 2);
        assert_eq!(l.probes().len(), 1);
        m.delete_server(&key(80), RS2, 0).unwrap();
        let (out, _) = l.sync(&mut m, 3);
        assert!(out.probes_changed && l.probes().is_empty());
        // the same address added again is a new server: up, without checks
        m.add_server(&key(80), spec(RS2, 1)).unwrap();
        l.sync(&mut m, 4);
        assert_eq!(health_of(&m, 80, RS2), (Health::Up, None));
        let rs = m.service(&key(80)).unwrap().server(RS2, 0).unwrap().clone();
        assert!(l.server_settings(&key(80), &rs).is_none());
        assert_eq!(
            l.server_view(&key(80), &rs).since,
            4,
            "its time in state starts anew"
        );
        // a server of an all-ports service: port checks need connect_port
        m.add_service(ServiceSpec {
            key: key(0),
            scheduler: SchedulerKind::Rr,
            persistent: Some(300),
            netmask: Ipv4Addr::BROADCAST,
            flags: vec![],
        })
        .unwrap();
        m.add_server(&key(0), spec(RS1, 1)).unwrap();
        let e = l
            .set_server(&m, &key(0), RS1, 0, checked(vec![tcp()], false), 5)
            .unwrap_err();
        assert!(e.to_string().contains("needs connect_port"), "{e}");
        let mut with_port = tcp();
        with_port.params.connect_port = Some(80);
        l.set_server(
            &m,
            &key(0),
            RS1,
            0,
            checked(vec![with_port, misc()], false),
            5,
        )
        .unwrap();
        // a server that is not in the model is refused
        assert_eq!(
            l.set_server(
                &m,
                &key(80),
                Ipv4Addr::new(198, 18, 0, 50),
                0,
                ServerHealth::default(),
                5
            ),
            Err(ModelError::NoSuchServer)
        );
    }

    #[test]
    fn quorum_with_hysteresis_and_sorry_server() {
        let mut m = model();
        let mut l = Liveness::new();
        l.sync(&mut m, 0);
        for a in [RS1, RS2] {
            l.set_server(&m, &key(80), a, 0, checked(vec![tcp()], false), 0)
                .unwrap();
        }
        let sorry = spec(Ipv4Addr::new(198, 18, 0, 99), 1);
        let h = ServiceHealth {
            sorry_server: Some(sorry),
            quorum: 3,
            hysteresis: 1,
            quorum_up: Some("/bin/up".into()),
            quorum_down: Some("/bin/down".into()),
        };
        l.set_service(&mut m, &key(80), h).unwrap();
        let (_, actions) = l.sync(&mut m, 0);
        assert!(actions.is_empty());
        let met = |m: &Model| !m.service(&key(80)).unwrap().quorum_lost;
        assert!(met(&m), "3 + 1 >= 3: starts met");
        // RS2 (1) down: 3 left, not below 3 - 1
        l.record(&probe_key(&tcp(), RS2, 80), &status(false, None, 1));
        let (_, a) = l.sync(&mut m, 1);
        assert!(met(&m) && a.is_empty());
        // RS1 (3) down, RS2 up: 1 < 2: lost, quorum_down, sorry active
        l.record(&probe_key(&tcp(), RS1, 80), &status(false, None, 2));
        l.record(&probe_key(&tcp(), RS2, 80), &status(true, None, 2));
        let (out, a) = l.sync(&mut m, 2);
        assert!(!met(&m));
        assert_eq!(
            a,
            vec![QuorumAction {
                service: key(80),
                up: false,
                command: "/bin/down".into()
            }]
        );
        assert_eq!(
            out.quorum,
            vec![QuorumChange {
                service: key(80),
                met: false,
                sum: 1
            }]
        );
        assert!(m.service(&key(80)).unwrap().sorry_active().is_some());
        // RS1 up, RS2 down: 3 < 3 + 1: still lost
        l.record(&probe_key(&tcp(), RS1, 80), &status(true, None, 3));
        l.record(&probe_key(&tcp(), RS2, 80), &status(false, None, 3));
        let (_, a) = l.sync(&mut m, 3);
        assert!(!met(&m) && a.is_empty());
        // both up: 4: regained, quorum_up
        l.record(&probe_key(&tcp(), RS2, 80), &status(true, None, 4));
        let (_, a) = l.sync(&mut m, 4);
        assert!(met(&m));
        assert_eq!(a.len(), 1);
        assert!(a[0].up && a[0].command == "/bin/up");
        assert!(m.service(&key(80)).unwrap().sorry_active().is_none());
        // the other service (defaults: quorum 1, no scripts) loses it when all are down
        for a in [RS1, RS2] {
            l.set_server(&m, &key(443), a, 0, checked(vec![tcp()], true), 5)
                .unwrap();
            l.record(&probe_key(&tcp(), a, 443), &status(false, None, 5));
        }
        let (out, a) = l.sync(&mut m, 5);
        assert!(a.is_empty());
        assert!(m.service(&key(443)).unwrap().quorum_lost);
        assert_eq!(out.quorum.len(), 1);
        assert_eq!(l.service_settings(&key(443)), ServiceHealth::default());
    }

    #[test]
    fn check_field_lists_are_the_structs_fields() {
        // every field a check serialises to is in its list, and every list names only those
        let full = CheckParams {
            connect_ip: Some(RS1),
            connect_port: Some(1),
            bindto: Some(RS2),
            bind_port: Some(2),
            warmup_ms: Some(3),
            ..CheckParams::default()
        };
        let kinds = [
            CheckKind::Tcp,
            CheckKind::Ping,
            CheckKind::Http(HttpCheck {
                urls: vec![],
                virtualhost: Some("x".into()),
            }),
            CheckKind::Ssl(HttpCheck {
                urls: vec![],
                virtualhost: Some("x".into()),
            }),
            CheckKind::Udp(UdpCheck {
                payload: vec![1],
                require_reply: Some(vec![]),
            }),
            CheckKind::Misc(MiscCheck {
                path: "x".into(),
                timeout_ms: Some(1),
                dynamic: true,
            }),
        ];
        for kind in kinds {
            let name = kind.name();
            assert!(CHECK_TYPES.contains(&name));
            let v = serde_json::to_value(CheckSpec {
                kind,
                params: full.clone(),
            })
            .unwrap();
            let mut got: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
            got.sort_unstable();
            let mut want = check_fields(name).unwrap().to_vec();
            want.sort_unstable();
            assert_eq!(got, want, "{name}");
        }
        let u = UrlCheck {
            path: "/".into(),
            digest: Some("d".into()),
            status_code: vec![(200, 200)],
            virtualhost: Some("h".into()),
        };
        let v = serde_json::to_value(u).unwrap();
        let mut got: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        got.sort_unstable();
        let mut want = URL_FIELDS.to_vec();
        want.sort_unstable();
        assert_eq!(got, want);
        assert!(check_fields("HTTP_POST").is_none());
    }
}
