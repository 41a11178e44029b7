//! The control protocol, shared by the server (the daemon) and its clients (`rvsadm`): error
//! codes, defaults, reply types, and the [`Dataplane`] trait the server drives. The model's and
//! the reports' plain types come from the dataplane crate with serde derived on them, so both
//! sides read and write one definition. Methods and examples: `docs/control.md`.

use rvs_dataplane::model::{
    Forward, Health, Model, Protocol, SchedulerKind, ServerSpec, ServiceKey, Timeouts,
};
use rvs_dataplane::report::{ConnEntry, Counters, NeighState, PublishError, StatsReport};
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// Where the daemon listens unless configured (`[control] socket`, `--socket`, `RVS_SOCKET`).
pub const DEFAULT_SOCKET: &str = "/run/rvs/control.sock";
/// ipvsadm's default scheduler, used when a request names none.
pub const DEFAULT_SCHEDULER: &str = "wlc";
/// ipvsadm's default persistence timeout for a bare `-p`.
pub const DEFAULT_PERSISTENT_TIMEOUT: u32 = 300;
/// ipvsadm's largest timeout (31 days): persistence and `--set` timeouts.
pub const MAX_TIMEOUT: u32 = 86400 * 31;

pub const ERR_PARSE: i64 = -32700;
pub const ERR_INVALID_REQUEST: i64 = -32600;
pub const ERR_METHOD: i64 = -32601;
pub const ERR_PARAMS: i64 = -32602;
pub const ERR_INTERNAL: i64 = -32603;
/// The model refused the change (ipvsadm's message in `message`).
pub const ERR_REFUSED: i64 = 1;
/// The dataplane could not publish the new snapshot; nothing changed.
pub const ERR_PUBLISH: i64 = 2;

/// Longest request line accepted on the socket (rules texts can be long).
pub const MAX_LINE: usize = 16 * 1024 * 1024;
/// Clients connected at the same time. When all are taken, the one idle longest is closed to
/// make room for the newcomer, so a full table never locks anyone out. Each client costs a
/// thread (a small stack) and its unfinished request line (at most [`MAX_LINE`]).
pub const MAX_CLIENTS: usize = 128;
/// A client that sends no complete request for this long is closed (told why first).
pub const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// Entries `connections` returns without a `limit`, and the largest `limit` accepted.
pub const DEFAULT_CONNECTIONS: usize = 100_000;
pub const MAX_CONNECTIONS: usize = 10_000_000;

/// The request parameters of the methods that change services and real servers: the schema,
/// written once. `rvsadm` serialises these; the server reads exactly these fields (each
/// `FIELDS` list is what its validating parser accepts, and a test holds the lists to the
/// structs), with its own messages for every bad value.
pub mod params {
    use super::*;
    use rvs_dataplane::model::{ServerSpec, ServiceSpec};

    /// A service named in a request (`service.delete`, and nested as `service` elsewhere).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Key {
        pub proto: Protocol,
        pub vip: Ipv4Addr,
        pub port: u16,
    }

    impl Key {
        pub const FIELDS: [&'static str; 3] = ["proto", "vip", "port"];
    }

    impl From<ServiceKey> for Key {
        fn from(k: ServiceKey) -> Self {
            Key {
                proto: k.proto,
                vip: k.vip,
                port: k.port,
            }
        }
    }

    /// `service.add` / `service.edit`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Service {
        #[serde(flatten)]
        pub key: Key,
        pub scheduler: SchedulerKind,
        pub persistent: Option<u32>,
        pub netmask: Ipv4Addr,
        pub flags: Vec<String>,
    }

    impl Service {
        pub const FIELDS: [&'static str; 7] = [
            "proto",
            "vip",
            "port",
            "scheduler",
            "persistent",
            "netmask",
            "flags",
        ];
    }

    impl From<&ServiceSpec> for Service {
        fn from(s: &ServiceSpec) -> Self {
            Service {
                key: s.key.into(),
                scheduler: s.scheduler,
                persistent: s.persistent,
                netmask: s.netmask,
                flags: s.flags.clone(),
            }
        }
    }

    /// `server.add` / `server.edit`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Server {
        pub service: Key,
        pub addr: Ipv4Addr,
        pub port: u16,
        pub weight: u32,
        pub forward: Forward,
        pub upper: u32,
        pub lower: u32,
    }

    impl Server {
        pub const FIELDS: [&'static str; 7] = [
            "service", "addr", "port", "weight", "forward", "upper", "lower",
        ];

        pub fn new(k: ServiceKey, s: &ServerSpec) -> Self {
            Server {
                service: k.into(),
                addr: s.addr,
                port: s.port,
                weight: s.weight,
                forward: s.forward,
                upper: s.upper,
                lower: s.lower,
            }
        }
    }

    /// `server.delete`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct ServerDelete {
        pub service: Key,
        pub addr: Ipv4Addr,
        pub port: u16,
    }

    impl ServerDelete {
        pub const FIELDS: [&'static str; 3] = ["service", "addr", "port"];
    }

    /// `zero` (every service when `service` is absent).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Zero {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub service: Option<Key>,
    }

    impl Zero {
        pub const FIELDS: [&'static str; 1] = ["service"];
    }

    /// `timeouts.set`: the operator's three timeouts ([`Timeouts`], 0 = unchanged).
    pub const TIMEOUTS_FIELDS: [&str; 3] = ["tcp", "tcp_fin", "udp"];

    /// A real server named in `health.server`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct ServerRef {
        pub addr: Ipv4Addr,
        /// 0 = the service port.
        #[serde(default)]
        pub port: u16,
    }

    impl ServerRef {
        pub const FIELDS: [&'static str; 2] = ["addr", "port"];
    }

    /// `health.server`: set or replace a real server's checks (`checks: []` = no checking,
    /// always up). Each check's fields: `crate::liveness::check_fields`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct HealthServer {
        pub service: Key,
        pub server: ServerRef,
        pub checks: Vec<crate::check::CheckSpec>,
        #[serde(default)]
        pub inhibit_on_failure: bool,
    }

    impl HealthServer {
        pub const FIELDS: [&'static str; 4] = ["service", "server", "checks", "inhibit_on_failure"];
    }

    /// `health.service`: set or replace a service's health settings (absent = keepalived's
    /// defaults: no sorry server, quorum 1, hysteresis 0, no scripts).
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct HealthService {
        pub service: Key,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub sorry_server: Option<SorryServer>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub quorum: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub hysteresis: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub quorum_up: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub quorum_down: Option<String>,
    }

    impl HealthService {
        pub const FIELDS: [&'static str; 6] = [
            "service",
            "sorry_server",
            "quorum",
            "hysteresis",
            "quorum_up",
            "quorum_down",
        ];
    }

    /// A sorry server in `health.service` (weight default 1, direct routing).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct SorryServer {
        pub addr: Ipv4Addr,
        #[serde(default)]
        pub port: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub weight: Option<u32>,
    }

    impl SorryServer {
        pub const FIELDS: [&'static str; 3] = ["addr", "port", "weight"];
    }

    /// `director.drain`: `on: true` stops announcing every VIP (the director keeps forwarding
    /// what still reaches it, so established flows finish); `on: false` announces again what
    /// can be served. Answers `{"draining": on, "was": previous}`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Drain {
        pub on: bool,
    }

    impl Drain {
        pub const FIELDS: [&'static str; 1] = ["on"];
    }
}

/// What `version` answers: the daemon's name, version and the commit it was built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Build {
    pub name: &'static str,
    pub version: &'static str,
    pub commit: &'static str,
}

impl Default for Build {
    fn default() -> Self {
        Build {
            name: "rvs",
            version: env!("CARGO_PKG_VERSION"),
            commit: "unknown",
        }
    }
}

/// One check of a real server as `list` reports it. Times are Unix time in ms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedCheck {
    /// keepalived's name (`TCP_CHECK`, `HTTP_GET`...).
    #[serde(rename = "type")]
    pub kind: String,
    pub up: bool,
    /// When `up` last changed (or the check started).
    pub since: u64,
    /// When it last ran (`null`: not yet).
    pub last_check: Option<u64>,
    pub last_error: Option<String>,
    /// Why `up` last changed.
    pub reason: String,
}

/// A real server's health as `list` reports it. Times are Unix time in ms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedHealth {
    pub state: Health,
    /// When the state last changed (or the server appeared).
    pub since: u64,
    /// The latest run of any of its checks.
    pub last_check: Option<u64>,
    /// The error of a failing check (else of any check that failed before).
    pub last_error: Option<String>,
    /// The weight it is scheduled with now (0 when down or inhibited).
    pub weight: u32,
    #[serde(default)]
    pub inhibit_on_failure: bool,
    pub checks: Vec<ListedCheck>,
}

/// A real server as `list` reports it. Unknown fields are ignored, so a client keeps reading
/// the replies of a newer daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedServer {
    pub addr: Ipv4Addr,
    pub port: u16,
    pub weight: u32,
    pub forward: Forward,
    pub upper: u32,
    pub lower: u32,
    pub active_conns: u64,
    pub inactive_conns: u64,
    /// Live persistence templates naming this server (`--persistent-conn`).
    #[serde(default)]
    pub persistent_conns: u64,
    pub counters: Counters,
    pub neighbour: NeighState,
    /// Its health (`None` from a daemon older than health checks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<ListedHealth>,
}

/// A virtual service as `list` reports it (unknown fields ignored, as [`ListedServer`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedService {
    pub proto: Protocol,
    pub vip: Ipv4Addr,
    pub port: u16,
    pub scheduler: SchedulerKind,
    pub persistent: Option<u32>,
    pub netmask: Ipv4Addr,
    pub flags: Vec<String>,
    pub counters: Counters,
    pub servers: Vec<ListedServer>,
    /// The sorry server, if set (not one of `servers`).
    #[serde(default)]
    pub sorry_server: Option<ServerSpec>,
    /// The sorry server is scheduled (the quorum is lost).
    #[serde(default)]
    pub sorry_active: bool,
    /// keepalived's `quorum` (1 by default).
    #[serde(default = "default_quorum")]
    pub quorum: u32,
    #[serde(default = "yes")]
    pub quorum_met: bool,
}

fn default_quorum() -> u32 {
    crate::check::DEFAULT_QUORUM
}

fn yes() -> bool {
    true
}

impl ListedService {
    pub fn key(&self) -> ServiceKey {
        ServiceKey {
            proto: self.proto,
            vip: self.vip,
            port: self.port,
        }
    }
}

/// The `list` result.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ListReply {
    pub services: Vec<ListedService>,
    /// VRRP instances (their state, priority, master, transitions), when VRRP is configured.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vrrp: Vec<crate::ha::InstanceStatus>,
}

/// Who the director is on its link: its own address (DIP), the prefix length of its subnet, and
/// its port's MAC. The control plane checks real servers and static neighbours against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Director {
    pub dip: Ipv4Addr,
    pub prefix_len: u8,
    pub mac: [u8; 6],
}

impl Director {
    /// The subnet mask of [`Director::prefix_len`] (a prefix above 32 counts as 32).
    pub fn netmask(&self) -> Ipv4Addr {
        rvs_dataplane::wire::ipv4::prefix_netmask(self.prefix_len)
    }
    /// The subnet's network address.
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.dip) & u32::from(self.netmask()))
    }
    /// Whether `addr` is on the director's subnet (reachable on its link, as DR needs).
    pub fn on_link(&self, addr: Ipv4Addr) -> bool {
        let m = u32::from(self.netmask());
        u32::from(addr) & m == u32::from(self.dip) & m
    }
}

/// What the control plane needs from the dataplane.
pub trait Dataplane: Send + Sync {
    /// Build an immutable snapshot of `model` and hand it to every worker.
    fn publish(&self, model: &Model) -> Result<(), PublishError>;
    /// Counters summed over workers, per service and real server of `model`.
    fn stats(&self, model: &Model) -> StatsReport;
    /// Neighbour state of a real server address.
    fn neighbour(&self, addr: Ipv4Addr) -> NeighState;
    /// Zero the service and real server counters (`ipvsadm -Z`).
    fn zero(&self, model: &Model);
    /// Change the TCP established, TCP FIN_WAIT and UDP timeouts (`ipvsadm --set`; the values
    /// are final: the caller resolves "0 = unchanged"). Takes effect without restart.
    fn set_timeouts(&self, t: Timeouts) -> Result<(), PublishError>;
    /// The timeouts in force.
    fn timeouts(&self) -> Timeouts;
    /// Up to `limit` connections and persistence templates (`ipvsadm -L -c`).
    fn connections(&self, limit: usize) -> Vec<ConnEntry>;
    /// The director's address, subnet and MAC (fixed for the process).
    fn director(&self) -> Director;
    /// Send one gratuitous ARP for `vip` (VRRP takeover); `false` if it could not be queued.
    fn request_garp(&self, _vip: Ipv4Addr) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::params::*;
    use super::*;
    use rvs_dataplane::model::{ServerSpec, ServiceSpec};

    fn keys(v: serde_json::Value) -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    }

    fn sorted<const N: usize>(f: [&str; N]) -> Vec<String> {
        let mut k: Vec<String> = f.iter().map(|s| s.to_string()).collect();
        k.sort();
        k
    }

    #[test]
    fn the_field_lists_are_the_structs_fields() {
        let key = ServiceKey {
            proto: Protocol::Tcp,
            vip: Ipv4Addr::new(198, 18, 0, 100),
            port: 80,
        };
        let spec = ServiceSpec {
            key,
            scheduler: SchedulerKind::Rr,
            persistent: Some(300),
            netmask: Ipv4Addr::BROADCAST,
            flags: vec!["sh-port".into()],
        };
        let rs = ServerSpec {
            addr: Ipv4Addr::new(198, 18, 0, 11),
            port: 80,
            weight: 3,
            forward: Forward::Dr,
            upper: 0,
            lower: 0,
        };
        let to = |v: &dyn erased::Ser| v.value();
        assert_eq!(keys(to(&Key::from(key))), sorted(Key::FIELDS));
        assert_eq!(keys(to(&Service::from(&spec))), sorted(Service::FIELDS));
        assert_eq!(keys(to(&Server::new(key, &rs))), sorted(Server::FIELDS));
        let del = ServerDelete {
            service: key.into(),
            addr: rs.addr,
            port: 80,
        };
        assert_eq!(keys(to(&del)), sorted(ServerDelete::FIELDS));
        let zero = Zero {
            service: Some(key.into()),
        };
        assert_eq!(keys(to(&zero)), sorted(Zero::FIELDS));
        assert_eq!(keys(to(&Timeouts::default())), sorted(TIMEOUTS_FIELDS));
        let sref = ServerRef {
            addr: rs.addr,
            port: 80,
        };
        assert_eq!(keys(to(&sref)), sorted(ServerRef::FIELDS));
        let hs = HealthServer {
            service: key.into(),
            server: sref,
            checks: vec![],
            inhibit_on_failure: true,
        };
        assert_eq!(keys(to(&hs)), sorted(HealthServer::FIELDS));
        let sorry = SorryServer {
            addr: rs.addr,
            port: 80,
            weight: Some(1),
        };
        assert_eq!(keys(to(&sorry)), sorted(SorryServer::FIELDS));
        let hv = HealthService {
            service: key.into(),
            sorry_server: Some(sorry),
            quorum: Some(2),
            hysteresis: Some(1),
            quorum_up: Some("u".into()),
            quorum_down: Some("d".into()),
        };
        assert_eq!(keys(to(&hv)), sorted(HealthService::FIELDS));
        assert_eq!(keys(to(&Drain { on: true })), sorted(Drain::FIELDS));
        // What the client sends reads back as what it meant.
        let back: Service = serde_json::from_value(to(&Service::from(&spec))).unwrap();
        assert_eq!(back, Service::from(&spec));
    }

    mod erased {
        pub trait Ser {
            fn value(&self) -> serde_json::Value;
        }
        impl<T: serde::Serialize> Ser for T {
            fn value(&self) -> serde_json::Value {
                serde_json::to_value(self).unwrap()
            }
        }
    }
}
