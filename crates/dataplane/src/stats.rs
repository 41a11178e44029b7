//! Per-worker counters, summed on read.
//!
//! Every counter is written by exactly one worker (Relaxed load + store, never a read-modify-write
//! instruction) and read by the control thread, which sums over workers. Each worker's block is
//! cache-line padded so no two workers share a line. Arrays are sized once at start
//! (`max_services`, `max_servers`) and indexed by the model's stable slots.

use crate::report::Counters;
use crossbeam_utils::CachePadded;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// Why a frame was not forwarded. Every frame a worker does not forward, answer or consume is
/// counted under exactly one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// Shorter than an Ethernet header.
    ShortFrame,
    /// 802.1Q / 802.1ad tagged while no VLAN is configured (`[network] vlan` unset).
    Vlan,
    Ipv6,
    /// Any other EtherType.
    NotIpv4OrArp,
    /// Unicast destination MAC that is not the port's.
    NotOurMac,
    /// Shorter than a minimal IPv4 header.
    ShortIp,
    /// IPv4 version field is not 4.
    BadIpVersion,
    BadIhl,
    /// Total length beyond the frame or below IHL*4.
    BadTotalLen,
    IpFragment,
    NotTcpUdp,
    /// TCP/UDP header does not fit in the IPv4 payload.
    ShortL4,
    /// No virtual service for (proto, dst, dport) nor (proto, dst, 0).
    NoService,
    /// The service has no server with weight > 0 for a new flow.
    NoServer,
    /// Flow table bucket full: the packet was still forwarded by a stateless hash choice
    /// (counted here so the operator sees the table is too small).
    FlowTableFull,
    /// The chosen real server's MAC is not known (yet).
    NeighUnresolved,
    /// Truncated ARP, or not Ethernet/IPv4 ARP.
    ArpMalformed,
    /// ARP we neither answer nor learn from.
    ArpNotForUs,
    /// The engine could not transmit (counted by the engine via `count_drop`).
    TxFull,
    /// The engine had no buffer for a frame it wanted to send (counted by the engine).
    NoMbuf,
    /// A packet of a flow whose real server was deleted, with `expire_nodest_conn` off (IPVS
    /// drops these silently until the connection expires).
    NoDest,
    /// Persistence table window full: the connection was forwarded by the scheduler's choice
    /// without a template (counted here so the operator sees the table is too small).
    PersistTableFull,
    /// An ARP frame that only tried to change a tracked neighbour's MAC without our asking
    /// (spoofing protection; the refused update is also counted in `arp_refused`).
    ArpRefused,
    /// A TCP segment of no known connection that is not a SYN (or is a SYN with RST), with
    /// `sloppy_tcp` off: IPVS schedules only on a SYN.
    TcpNotSyn,
    /// IPv4 header checksum wrong (checked in software unless the NIC already did).
    BadIpChecksum,
    /// A source address no client can have: 0.0.0.0/8, 127.0.0.0/8, multicast, class E or
    /// broadcast, or one of the director's own addresses (a VIP or the DIP).
    MartianSource,
    /// A frame for the kernel interface that did not fit the worker's queue to the kernel-path
    /// thread (counted by the engine; freed).
    ExceptionFull,
    /// A frame for the kernel interface over the worker's share of `kernel.rate_pps` (the
    /// token bucket of [`crate::pipeline::KernelPath`]).
    ExceptionRatelimited,
    /// A packet to a VIP this director holds in VRRP standby (BACKUP, FAULT or INIT): not
    /// forwarded; its flow, if any, is kept for a takeover.
    NotMaster,
    /// With a VLAN configured: an 802.1Q-tagged frame of another VLAN id.
    VlanOther,
    /// With a VLAN configured: a frame without an 802.1Q tag, or with a priority tag only
    /// (VLAN id 0, the native VLAN of the port).
    VlanUntagged,
    /// With a VLAN configured: an 802.1ad service tag (0x88a8), or a second tag inside the
    /// configured VLAN's (stacked, "QinQ").
    VlanQinq,
}

impl DropReason {
    pub const COUNT: usize = 32;
    pub const ALL: [DropReason; Self::COUNT] = [
        DropReason::ShortFrame,
        DropReason::Vlan,
        DropReason::Ipv6,
        DropReason::NotIpv4OrArp,
        DropReason::NotOurMac,
        DropReason::ShortIp,
        DropReason::BadIpVersion,
        DropReason::BadIhl,
        DropReason::BadTotalLen,
        DropReason::IpFragment,
        DropReason::NotTcpUdp,
        DropReason::ShortL4,
        DropReason::NoService,
        DropReason::NoServer,
        DropReason::FlowTableFull,
        DropReason::NeighUnresolved,
        DropReason::ArpMalformed,
        DropReason::ArpNotForUs,
        DropReason::TxFull,
        DropReason::NoMbuf,
        DropReason::NoDest,
        DropReason::PersistTableFull,
        DropReason::ArpRefused,
        DropReason::TcpNotSyn,
        DropReason::BadIpChecksum,
        DropReason::MartianSource,
        DropReason::ExceptionFull,
        DropReason::ExceptionRatelimited,
        DropReason::NotMaster,
        DropReason::VlanOther,
        DropReason::VlanUntagged,
        DropReason::VlanQinq,
    ];

    /// The stable name used in stats output and metrics.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::ShortFrame => "short_frame",
            DropReason::Vlan => "vlan",
            DropReason::Ipv6 => "ipv6",
            DropReason::NotIpv4OrArp => "not_ipv4_or_arp",
            DropReason::NotOurMac => "not_our_mac",
            DropReason::ShortIp => "short_ip",
            DropReason::BadIpVersion => "bad_ip_version",
            DropReason::BadIhl => "bad_ihl",
            DropReason::BadTotalLen => "bad_total_len",
            DropReason::IpFragment => "ip_fragment",
            DropReason::NotTcpUdp => "not_tcp_udp",
            DropReason::ShortL4 => "short_l4",
            DropReason::NoService => "no_service",
            DropReason::NoServer => "no_server",
            DropReason::FlowTableFull => "flow_table_full",
            DropReason::NeighUnresolved => "neigh_unresolved",
            DropReason::ArpMalformed => "arp_malformed",
            DropReason::ArpNotForUs => "arp_not_for_us",
            DropReason::TxFull => "tx_full",
            DropReason::NoMbuf => "no_mbuf",
            DropReason::NoDest => "no_dest",
            DropReason::PersistTableFull => "persist_table_full",
            DropReason::ArpRefused => "arp_refused",
            DropReason::TcpNotSyn => "tcp_not_syn",
            DropReason::BadIpChecksum => "bad_ip_checksum",
            DropReason::MartianSource => "martian_source",
            DropReason::ExceptionFull => "exception_full",
            DropReason::ExceptionRatelimited => "exception_ratelimited",
            DropReason::NotMaster => "not_master",
            DropReason::VlanOther => "vlan_other",
            DropReason::VlanUntagged => "vlan_untagged",
            DropReason::VlanQinq => "vlan_qinq",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// conns / packets / bytes cells of one service or real server slot.
#[derive(Debug, Default)]
pub struct CounterCells {
    pub conns: AtomicU64,
    pub packets: AtomicU64,
    pub bytes: AtomicU64,
}

impl CounterCells {
    pub fn read(&self) -> Counters {
        Counters {
            conns: self.conns.load(Relaxed),
            packets: self.packets.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
        }
    }
}

/// A real server slot: counters plus this worker's active/inactive flow gauges.
#[derive(Debug, Default)]
pub struct ServerCells {
    pub counters: CounterCells,
    pub active: AtomicU64,
    pub inactive: AtomicU64,
}

/// One worker's counters. Only that worker writes them.
#[derive(Debug)]
pub struct WorkerCounters {
    pub rx: AtomicU64,
    pub tx: AtomicU64,
    pub forwarded: AtomicU64,
    pub arp_replies: AtomicU64,
    /// Frames handed to the kernel interface (queued for the kernel-path thread).
    pub to_kernel: AtomicU64,
    /// Flows currently in the table (gauge).
    pub flows: AtomicU64,
    pub drops: [AtomicU64; DropReason::COUNT],
    pub services: Box<[CounterCells]>,
    pub servers: Box<[ServerCells]>,
}

/// Add `n` to a counter this thread alone writes: a plain load and store, no locked
/// instruction.
#[inline]
pub fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
}

/// Subtract `n` from a gauge this thread alone writes.
#[inline]
pub fn drop_by(c: &AtomicU64, n: u64) {
    c.store(c.load(Relaxed).wrapping_sub(n), Relaxed);
}

impl WorkerCounters {
    fn new(max_services: usize, max_servers: usize) -> Self {
        WorkerCounters {
            rx: AtomicU64::new(0),
            tx: AtomicU64::new(0),
            forwarded: AtomicU64::new(0),
            arp_replies: AtomicU64::new(0),
            to_kernel: AtomicU64::new(0),
            flows: AtomicU64::new(0),
            drops: std::array::from_fn(|_| AtomicU64::new(0)),
            services: (0..max_services).map(|_| CounterCells::default()).collect(),
            servers: (0..max_servers).map(|_| ServerCells::default()).collect(),
        }
    }

    pub fn drop_count(&self, r: DropReason) -> u64 {
        self.drops[r.index()].load(Relaxed)
    }
}

/// The kernel-path thread's counters (frames between the kernel interface and the data port).
/// Only that thread writes them.
#[derive(Debug, Default)]
pub struct KernelCounters {
    /// Frames the kernel sent out of its interface, sent on the data port.
    pub from_kernel: AtomicU64,
    /// Frames the kernel sent that the data port did not take (freed).
    pub from_kernel_dropped: AtomicU64,
    /// Frames from the workers' queues that the kernel interface did not take (freed).
    pub to_kernel_dropped: AtomicU64,
}

/// All workers' counters.
#[derive(Debug)]
pub struct StatsRegistry {
    workers: Box<[Arc<CachePadded<WorkerCounters>>]>,
    /// The kernel-path thread's block (a line of its own).
    kernel: Arc<CachePadded<KernelCounters>>,
    max_services: usize,
    max_servers: usize,
}

impl StatsRegistry {
    pub fn new(workers: usize, max_services: usize, max_servers: usize) -> Self {
        StatsRegistry {
            workers: (0..workers)
                .map(|_| {
                    Arc::new(CachePadded::new(WorkerCounters::new(
                        max_services,
                        max_servers,
                    )))
                })
                .collect(),
            kernel: Arc::new(CachePadded::new(KernelCounters::default())),
            max_services,
            max_servers,
        }
    }

    /// The kernel-path thread's counters, as a handle that thread keeps.
    pub fn kernel_handle(&self) -> Arc<CachePadded<KernelCounters>> {
        Arc::clone(&self.kernel)
    }

    /// The kernel path's counters: the workers' part summed, and the kernel-path thread's.
    pub fn kernel(&self) -> crate::report::KernelStats {
        let sum =
            |f: &dyn Fn(&WorkerCounters) -> u64| -> u64 { self.workers.iter().map(|w| f(w)).sum() };
        crate::report::KernelStats {
            to_kernel: sum(&|w| w.to_kernel.load(Relaxed)),
            from_kernel: self.kernel.from_kernel.load(Relaxed),
            exception_full: self.drops(DropReason::ExceptionFull),
            exception_ratelimited: self.drops(DropReason::ExceptionRatelimited),
            from_kernel_dropped: self.kernel.from_kernel_dropped.load(Relaxed),
            to_kernel_dropped: self.kernel.to_kernel_dropped.load(Relaxed),
        }
    }

    pub fn workers(&self) -> usize {
        self.workers.len()
    }
    pub fn max_services(&self) -> usize {
        self.max_services
    }
    pub fn max_servers(&self) -> usize {
        self.max_servers
    }

    /// Worker `i`'s block (`None` if `i` is out of range).
    pub fn worker(&self, i: usize) -> Option<&WorkerCounters> {
        self.workers.get(i).map(|w| &***w)
    }

    /// Worker `i`'s block as a handle the worker keeps (one pointer to follow per count
    /// instead of an index into the registry); `None` if `i` is out of range.
    pub fn worker_handle(&self, i: usize) -> Option<Arc<CachePadded<WorkerCounters>>> {
        self.workers.get(i).cloned()
    }

    /// Service slot counters summed over workers.
    pub fn service(&self, slot: usize) -> Counters {
        let mut c = Counters::default();
        for w in self.workers.iter() {
            if let Some(s) = w.services.get(slot) {
                c.add(&s.read());
            }
        }
        c
    }

    /// Real server slot counters and (active, inactive) gauges summed over workers.
    pub fn server(&self, slot: usize) -> (Counters, u64, u64) {
        let mut c = Counters::default();
        let (mut a, mut i) = (0u64, 0u64);
        for w in self.workers.iter() {
            if let Some(s) = w.servers.get(slot) {
                c.add(&s.counters.read());
                a = a.wrapping_add(s.active.load(Relaxed));
                i = i.wrapping_add(s.inactive.load(Relaxed));
            }
        }
        (c, a, i)
    }

    /// (active, inactive) flows of real server slot `slot` summed over workers, for the
    /// connection-count schedulers: relaxed loads only (each gauge has a single writer), no
    /// lock, no allocation. (0, 0) for a slot out of range.
    #[inline]
    pub fn server_conns(&self, slot: usize) -> (u64, u64) {
        let (mut a, mut i) = (0u64, 0u64);
        for w in self.workers.iter() {
            if let Some(s) = w.servers.get(slot) {
                a = a.wrapping_add(s.active.load(Relaxed));
                i = i.wrapping_add(s.inactive.load(Relaxed));
            }
        }
        (a, i)
    }

    /// Drops of `r` summed over workers.
    pub fn drops(&self, r: DropReason) -> u64 {
        self.workers.iter().map(|w| w.drop_count(r)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_indexes_match() {
        let mut names: Vec<&str> = DropReason::ALL.iter().map(|r| r.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }

    #[test]
    fn sums_over_workers() {
        let reg = StatsRegistry::new(2, 4, 4);
        let w0 = reg.worker(0).unwrap();
        let w1 = reg.worker(1).unwrap();
        bump(&w0.services[1].packets, 3);
        bump(&w1.services[1].packets, 4);
        bump(&w1.services[1].conns, 1);
        bump(&w0.servers[2].active, 2);
        drop_by(&w0.servers[2].active, 1);
        bump(&w1.servers[2].inactive, 5);
        bump(&w0.drops[DropReason::Vlan.index()], 2);
        bump(&w1.drops[DropReason::Vlan.index()], 1);
        assert_eq!(
            reg.service(1),
            Counters {
                conns: 1,
                packets: 7,
                bytes: 0
            }
        );
        assert_eq!(reg.service(9), Counters::default());
        let (_, a, i) = reg.server(2);
        assert_eq!((a, i), (1, 5));
        assert_eq!(reg.server_conns(2), (1, 5));
        assert_eq!(reg.server_conns(99), (0, 0));
        assert_eq!(reg.drops(DropReason::Vlan), 3);
        assert!(reg.worker(2).is_none());
        // The kernel path: the workers' part summed, the thread's block as written.
        bump(&w0.to_kernel, 2);
        bump(&w1.to_kernel, 3);
        bump(&w1.drops[DropReason::ExceptionFull.index()], 4);
        bump(&w0.drops[DropReason::ExceptionRatelimited.index()], 5);
        let k = reg.kernel_handle();
        bump(&k.from_kernel, 6);
        bump(&k.from_kernel_dropped, 7);
        bump(&k.to_kernel_dropped, 8);
        assert_eq!(
            reg.kernel(),
            crate::report::KernelStats {
                to_kernel: 5,
                from_kernel: 6,
                exception_full: 4,
                exception_ratelimited: 5,
                from_kernel_dropped: 7,
                to_kernel_dropped: 8,
            }
        );
    }
}
