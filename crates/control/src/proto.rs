//! The control protocol, shared by the server (the daemon) and its clients (`rvsadm`): error
//! codes, defaults, reply types, and the [`Dataplane`] trait the server drives. The model's and
//! the reports' plain types come from the dataplane crate with serde derived on them, so both
//! sides read and write one definition. Methods and examples: `docs/control.md`.

use rvs_dataplane::model::{Forward, Model, Protocol, SchedulerKind, ServiceKey, Timeouts};
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
/// Clients served at the same time.
pub const MAX_CLIENTS: usize = 32;
/// Entries `connections` returns without a `limit`, and the largest `limit` accepted.
pub const DEFAULT_CONNECTIONS: usize = 100_000;
pub const MAX_CONNECTIONS: usize = 10_000_000;

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

/// A real server as `list` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
}

/// A virtual service as `list` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
#[serde(deny_unknown_fields)]
pub struct ListReply {
    pub services: Vec<ListedService>,
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
}
