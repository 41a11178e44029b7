//! What the dataplane reports: counters, neighbour state, connections, and the snapshot
//! publication's errors. Plain data; with the `serde` feature (which the control crate turns on)
//! these are also the control protocol's reply types, one definition for server and client.

use crate::model::ServiceKey;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// Packet/byte/connection counters as ipvsadm `--stats` shows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Counters {
    /// Connections scheduled (new flows).
    pub conns: u64,
    /// Packets forwarded client -> real server.
    pub packets: u64,
    /// Bytes forwarded client -> real server (Ethernet frame bytes).
    pub bytes: u64,
}

impl Counters {
    pub fn add(&mut self, o: &Counters) {
        self.conns += o.conns;
        self.packets += o.packets;
        self.bytes += o.bytes;
    }
}

/// Neighbour (ARP) state of a real server address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "state", rename_all = "lowercase"))]
pub enum NeighState {
    /// Never resolved, or the last resolution timed out.
    Incomplete,
    /// Resolved by ARP; `age_ms` since the last confirming reply.
    Reachable { mac: MacAddr, age_ms: u64 },
    /// Resolved but older than the reachable time; being re-resolved, still used.
    Stale { mac: MacAddr, age_ms: u64 },
    /// Configured statically.
    Static { mac: MacAddr },
}

/// The one MAC address type (serialised as "aa:bb:cc:dd:ee:ff" with the `serde` feature).
pub use crate::wire::ethernet::MacAddr;

#[cfg(feature = "serde")]
impl serde::Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ServerStats {
    pub addr: Ipv4Addr,
    pub port: u16,
    pub counters: Counters,
    /// Flows in ESTABLISHED (or, for UDP, any) state across all workers.
    pub active_conns: u64,
    /// Other flows (SYN_RECV, FIN_WAIT, ...) across all workers.
    pub inactive_conns: u64,
    /// Live persistence templates naming this server (ipvsadm's PersistConn).
    #[cfg_attr(feature = "serde", serde(default))]
    pub persistent_conns: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ServiceStats {
    pub key: ServiceKey,
    pub counters: Counters,
    pub servers: Vec<ServerStats>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct WorkerStats {
    pub worker: u32,
    pub lcore: u32,
    pub queue: u16,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub forwarded: u64,
    pub arp_replies: u64,
    /// Frames this worker handed to the kernel interface.
    #[cfg_attr(feature = "serde", serde(default))]
    pub to_kernel: u64,
    /// Flows currently in this worker's table.
    pub flows: u64,
    /// Drops by reason name (only non-zero reasons).
    pub drops: BTreeMap<String, u64>,
}

/// Counters the NIC (or virtual device) keeps, from `rte_eth_stats_get`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PortStats {
    pub ipackets: u64,
    pub opackets: u64,
    pub ibytes: u64,
    pub obytes: u64,
    pub imissed: u64,
    pub ierrors: u64,
    pub oerrors: u64,
    pub rx_nombuf: u64,
}

/// The packet mbuf pool shared by the port and the workers, read when the report is made.
/// Mbufs in the per-lcore caches count as free (as DPDK counts them), so `in_use` is what sits
/// in the NIC's rings, in a worker's hands, or leaked; `in_use + free == size`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MempoolStats {
    /// Mbufs in the pool (fixed at start).
    pub size: u32,
    /// Mbufs each lcore may keep in its cache.
    pub cache_size: u32,
    /// Mbufs allocated and not yet freed.
    pub in_use: u32,
    /// Mbufs free (in the pool and in the per-lcore caches).
    pub free: u32,
}

/// The neighbour (ARP) table: entries held and the configured capacity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct NeighbourTableStats {
    pub entries: u64,
    pub capacity: u64,
}

/// The kernel path: frames between the data port and the kernel interface (`rvs0`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct KernelStats {
    /// Frames the workers queued for the kernel interface.
    pub to_kernel: u64,
    /// Frames the kernel sent out of its interface and the data port took.
    pub from_kernel: u64,
    /// Frames for the kernel dropped because a worker's queue to the kernel-path thread was
    /// full.
    pub exception_full: u64,
    /// Frames for the kernel dropped over the rate limit (`kernel.rate_pps`).
    pub exception_ratelimited: u64,
    /// Frames the kernel sent that the data port did not take.
    pub from_kernel_dropped: u64,
    /// Queued frames the kernel interface did not take.
    #[cfg_attr(feature = "serde", serde(default))]
    pub to_kernel_dropped: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct StatsReport {
    pub port: PortStats,
    pub workers: Vec<WorkerStats>,
    pub services: Vec<ServiceStats>,
    /// Drops by reason, summed over workers.
    pub drops: BTreeMap<String, u64>,
    /// ARP updates of a neighbour entry refused (spoofing protection: a MAC change not
    /// confirmed by our requests, an invalid MAC, a static entry), whatever became of the
    /// frame (dropped as `arp_refused`, or answered when it asked for the DIP).
    #[cfg_attr(feature = "serde", serde(default))]
    pub arp_refused: u64,
    /// The mbuf pool (zeros where the dataplane has none, e.g. in tests).
    #[cfg_attr(feature = "serde", serde(default))]
    pub mempool: MempoolStats,
    #[cfg_attr(feature = "serde", serde(default))]
    pub neighbours: NeighbourTableStats,
    /// The kernel path (all zero when it is off).
    #[cfg_attr(feature = "serde", serde(default))]
    pub kernel: KernelStats,
}

/// Failure to publish a snapshot (the model change is then rolled back by the caller).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    #[error("neighbour table is full ({0} entries)")]
    NeighbourTableFull(u32),
    /// A real server's address was not tracked in the neighbour table (an internal error).
    #[error("{0} is not in the neighbour table")]
    NotTracked(Ipv4Addr),
    /// A slot outside the tables sized at start (an internal error).
    #[error("{what} slot {slot} out of range")]
    SlotOutOfRange { what: &'static str, slot: usize },
    #[error("service index full")]
    ServiceIndexFull,
}

/// One line of `ipvsadm -L -c`: a connection, or a persistence template (`template`, state
/// "NONE", client port 0, client address masked by the service netmask).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ConnEntry {
    pub proto: crate::model::Protocol,
    /// Seconds until the entry expires if idle.
    pub expire_s: u32,
    /// IPVS state name: SYN_RECV, ESTABLISHED, FIN_WAIT, TIME_WAIT, CLOSE, UDP, NONE.
    pub state: String,
    pub client: Ipv4Addr,
    pub cport: u16,
    pub vip: Ipv4Addr,
    pub vport: u16,
    pub rs: Ipv4Addr,
    pub rport: u16,
    #[cfg_attr(feature = "serde", serde(default))]
    pub template: bool,
}
