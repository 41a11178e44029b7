//! The immutable dataplane picture and its publication.
//!
//! The control thread turns the [`Model`] into a [`Snapshot`] (services with their precomputed
//! scheduler parameters, real servers with their neighbour slots, lookup tables) and publishes it
//! through [`Shared`]. Workers pick the newest snapshot up between bursts (an `Arc` clone, no
//! allocation) and record the epoch they have seen; the control thread keeps every replaced
//! snapshot in a retire list until all workers have moved past it, so the last reference to a
//! snapshot is always dropped on the control thread and a worker never frees memory.

use crate::flow::{FlowState, FlowStore, FlowTable, Timeouts};
use crate::model::{parse_flags, Model, SchedulerKind, ServerSpec, ServiceKey};
use crate::neigh::NeighTable;
use crate::persist::PersistTable;
use crate::report::{
    ConnEntry, Counters, NeighState, PublishError, ServerStats, ServiceStats, StatsReport,
    WorkerStats,
};
use crate::sched::wrr_params;
use crate::stats::{DropReason, StatsRegistry};
use crate::sync::SyncRings;
use crate::wire::ethernet::VlanId;
use arc_swap::ArcSwap;
use crossbeam_queue::ArrayQueue;
use crossbeam_utils::CachePadded;
use std::net::Ipv4Addr;
use std::sync::atomic::{
    AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};
use std::sync::{Arc, Mutex};

/// A real server as the workers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealServer {
    pub addr: Ipv4Addr,
    pub port: u16,
    pub weight: u32,
    pub slot: u32,
    pub id: u32,
    /// Slot in the neighbour table.
    pub neigh: usize,
}

/// A virtual service as the workers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub key: ServiceKey,
    pub slot: u32,
    pub id: u32,
    pub scheduler: SchedulerKind,
    /// wrr: gcd of the non-zero weights and the maximum weight.
    pub wrr_gcd: u32,
    pub wrr_max: u32,
    pub servers: Vec<RealServer>,
    /// Indexes into `servers` of those with weight > 0, in order: the stateless choice when
    /// the flow table is full picks one by hash in O(1).
    pub usable: Box<[u32]>,
    /// Persistence timeout in seconds (`-p`), `None` when not persistent.
    pub persistent: Option<u32>,
    /// Persistence netmask (`-M`), host order.
    pub netmask: u32,
    /// Scheduler tables and thresholds, precomputed (see [`crate::sched::Plan`]).
    pub plan: crate::sched::Plan,
}

/// Where the real server in a stats slot lives in this snapshot, and what forwarding a packet
/// of one of its flows needs, so that a flow-table hit reads this one record instead of the
/// service and the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ServerRef {
    /// Index into [`Snapshot::services`].
    pub svc: u32,
    /// Index into that service's `servers`.
    pub rs: u32,
    /// The server's id (never 0: 0 marks a slot without a server).
    pub id: u32,
    /// The server's slot in the neighbour table ([`RealServer::neigh`]).
    pub neigh: u32,
    /// The service's stats slot ([`Service::slot`]).
    pub svc_slot: u32,
    /// Whether the service is persistent (a hit refreshes the client's template).
    pub persistent: bool,
}

/// The services by packed (proto, VIP, port) key: an open-addressed table with linear probing,
/// built once per snapshot, at most half full, so a lookup is a multiply, a shift and usually one
/// compare in one cache line (no `Hasher` plumbing, no SIMD group probe).
#[derive(Debug, Clone)]
struct ServiceIndex {
    /// (packed key, service index); `EMPTY_KEY` marks a free slot.
    slots: Box<[(u64, u32)]>,
    /// `64 - log2(slots.len())`: the home slot is the top bits of the multiplied key.
    shift: u32,
}

/// No packed key has bits above 55 set (protocol in bits 48..55).
const EMPTY_KEY: u64 = u64::MAX;

impl ServiceIndex {
    /// An index with room for `n` services at no more than half load.
    fn with_capacity(n: usize) -> Self {
        let len = n.saturating_mul(2).max(4).next_power_of_two();
        ServiceIndex {
            slots: vec![(EMPTY_KEY, 0); len].into_boxed_slice(),
            shift: 64 - len.trailing_zeros(),
        }
    }

    #[inline]
    fn home(&self, key: u64) -> usize {
        (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> self.shift) as usize
    }

    /// Insert or overwrite `key`; `false` when the table is full (never at half load).
    fn insert(&mut self, key: u64, idx: u32) -> bool {
        let mask = self.slots.len().wrapping_sub(1);
        let mut i = self.home(key);
        for _ in 0..self.slots.len() {
            if let Some(s) = self.slots.get_mut(i) {
                if s.0 == EMPTY_KEY || s.0 == key {
                    *s = (key, idx);
                    return true;
                }
            }
            i = i.wrapping_add(1) & mask;
        }
        false
    }

    #[inline]
    fn get(&self, key: u64) -> Option<u32> {
        let mask = self.slots.len().wrapping_sub(1);
        let mut i = self.home(key);
        // At most half full: an empty slot ends every probe; the bound only guards the loop.
        for _ in 0..self.slots.len() {
            let &(k, v) = self.slots.get(i)?;
            if k == key {
                return Some(v);
            }
            if k == EMPTY_KEY {
                return None;
            }
            i = i.wrapping_add(1) & mask;
        }
        None
    }
}

fn pack_key(proto: u8, vip: u32, port: u16) -> u64 {
    (u64::from(proto) << 48) | (u64::from(port) << 32) | u64::from(vip)
}

/// What a service schedules to, in list order, with the weight it schedules by: its sorry
/// server alone while that is active (weight at least 1), else its real servers that are not
/// down (inhibited ones with weight 0, the others with their health weight if set). Each with
/// its stats slot and id, which its health never changes.
fn scheduled(svc: &crate::model::Service) -> Vec<(ServerSpec, u32, u32)> {
    if let Some(sorry) = svc.sorry_active() {
        let mut spec = sorry.spec;
        spec.weight = spec.weight.max(1);
        return vec![(spec, sorry.slot, sorry.id)];
    }
    svc.servers
        .iter()
        .filter_map(|r| {
            let weight = r.effective_weight()?;
            Some((ServerSpec { weight, ..r.spec }, r.slot, r.id))
        })
        .collect()
}

/// The immutable picture the workers forward by.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub epoch: u64,
    pub services: Vec<Service>,
    lookup: ServiceIndex,
    /// VIPs (host order), sorted, deduplicated: the addresses we answer ARP for and forward to.
    pub vips: Vec<u32>,
    /// VIPs held in standby by VRRP (host order, sorted): configured, not answered for, not
    /// forwarded to (`not_master`). Their services' servers are parked, so their flows (made
    /// here while master, or installed by connection sync) stay attached and resume on takeover.
    pub standby: Vec<u32>,
    /// Indexed by real server slot; `id` 0 where no server has the slot.
    rs_by_slot: Vec<ServerRef>,
    /// Indexed by real server slot: the id of a server a health check took out of this
    /// picture (down, still configured) or of a deleted one in the destination trash, 0 for
    /// none. Its flows stay attached to it.
    parked: Vec<u32>,
    /// Flow idle timeouts (changed at run time by `--set`).
    pub timeouts: Timeouts,
    /// IPVS `expire_nodest_conn`: a packet of a flow whose real server was deleted expires the
    /// flow and is scheduled anew (`true`), or is dropped as `no_dest` (`false`, IPVS default).
    pub expire_nodest_conn: bool,
    /// IPVS `sloppy_tcp`: a TCP segment of no known connection is scheduled whatever its flags
    /// but RST (`true`), or only when it is a SYN without RST (`false`, IPVS default; the
    /// others are dropped as `tcp_not_syn`).
    pub sloppy_tcp: bool,
    /// Frames to a VIP on a port (or protocol) no service has go to the kernel interface
    /// (`true`, `kernel.vip_other_ports = "kernel"`), or are dropped as `no_service` (`false`,
    /// as IPVS).
    pub vip_other_ports_to_kernel: bool,
}

/// Forwarding behaviour set by the configuration (`[dataplane]`), copied into every snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Behaviour {
    /// See [`Snapshot::expire_nodest_conn`].
    pub expire_nodest_conn: bool,
    /// See [`Snapshot::sloppy_tcp`].
    pub sloppy_tcp: bool,
    /// See [`Snapshot::vip_other_ports_to_kernel`].
    pub vip_other_ports_to_kernel: bool,
}

impl Snapshot {
    /// An empty picture (epoch 0): nothing is forwarded, ARP for the DIP is answered.
    pub fn empty(max_servers: usize) -> Self {
        Snapshot {
            epoch: 0,
            services: Vec::new(),
            lookup: ServiceIndex::with_capacity(0),
            vips: Vec::new(),
            standby: Vec::new(),
            rs_by_slot: vec![ServerRef::default(); max_servers],
            parked: vec![0; max_servers],
            timeouts: Timeouts::default(),
            expire_nodest_conn: false,
            sloppy_tcp: false,
            vip_other_ports_to_kernel: false,
        }
    }

    /// Build the picture of `model`. Every real server address must already be tracked in
    /// `neigh` (see [`Shared::publish`]).
    pub fn build(
        model: &Model,
        epoch: u64,
        max_servers: usize,
        neigh: &NeighTable,
    ) -> Result<Self, PublishError> {
        let mut s = Snapshot::empty(max_servers);
        s.epoch = epoch;
        s.lookup = ServiceIndex::with_capacity(model.services().len());
        s.standby = model.standby_vips().iter().map(|&v| u32::from(v)).collect();
        // The destination trash: deleted servers' flows stay attached (their packets are
        // dropped as `no_dest`), so they resume if the server is added back.
        for t in model.trash() {
            if let Some(p) = s.parked.get_mut(t.slot as usize) {
                *p = t.id;
            }
        }
        for (si, svc) in model.services().iter().enumerate() {
            let scheduled = scheduled(svc);
            let standby = s
                .standby
                .binary_search(&u32::from(svc.spec.key.vip))
                .is_ok();
            for r in svc
                .servers
                .iter()
                .filter(|r| r.effective_weight().is_none())
            {
                if let Some(p) = s.parked.get_mut(r.slot as usize) {
                    *p = r.id;
                }
            }
            let mut servers = Vec::with_capacity(scheduled.len());
            for (ri, (spec, slot, id)) in scheduled.iter().enumerate() {
                let neigh_slot = neigh
                    .find(spec.addr)
                    .ok_or(PublishError::NotTracked(spec.addr))?;
                let cell =
                    s.rs_by_slot
                        .get_mut(*slot as usize)
                        .ok_or(PublishError::SlotOutOfRange {
                            what: "real server",
                            slot: *slot as usize,
                        })?;
                let neigh_ref =
                    u32::try_from(neigh_slot).map_err(|_| PublishError::SlotOutOfRange {
                        what: "neighbour",
                        slot: neigh_slot,
                    })?;
                if standby {
                    // Parked, not in the slot table: the hit path misses, the slow path drops
                    // the packet as `not_master` and the flow keeps its server.
                    if let Some(p) = s.parked.get_mut(*slot as usize) {
                        *p = *id;
                    }
                } else {
                    *cell = ServerRef {
                        svc: si as u32,
                        rs: ri as u32,
                        id: *id,
                        neigh: neigh_ref,
                        svc_slot: svc.slot,
                        persistent: svc.spec.persistent.is_some(),
                    };
                }
                servers.push(RealServer {
                    addr: spec.addr,
                    port: spec.port,
                    weight: spec.weight,
                    slot: *slot,
                    id: *id,
                    neigh: neigh_slot,
                });
            }
            let (wrr_gcd, wrr_max) = wrr_params(servers.iter().map(|r| r.weight));
            let k = svc.spec.key;
            if !s.lookup.insert(
                pack_key(k.proto.ip_proto(), u32::from(k.vip), k.port),
                si as u32,
            ) {
                return Err(PublishError::ServiceIndexFull);
            }
            if !standby {
                s.vips.push(u32::from(k.vip));
            }
            let usable = servers
                .iter()
                .enumerate()
                .filter(|(_, r)| r.weight > 0)
                .map(|(i, _)| i as u32)
                .collect();
            s.services.push(Service {
                key: k,
                usable,
                slot: svc.slot,
                id: svc.id,
                scheduler: svc.spec.scheduler,
                wrr_gcd,
                wrr_max,
                servers,
                persistent: svc.spec.persistent,
                netmask: u32::from(svc.spec.netmask),
                plan: {
                    let specs: Vec<ServerSpec> = scheduled.iter().map(|x| x.0).collect();
                    let flags =
                        parse_flags(svc.spec.scheduler, &svc.spec.flags).unwrap_or_default();
                    crate::sched::Plan::new(
                        svc.spec.scheduler,
                        flags,
                        &specs,
                        crate::maglev::DEFAULT_SIZE,
                    )
                },
            });
        }
        s.vips.sort_unstable();
        s.vips.dedup();
        Ok(s)
    }

    /// The service for a packet to `dst:dport` (`proto` = IP protocol number): the exact
    /// service, else the VIP's all-ports (port 0) service.
    #[inline]
    pub fn service_for(&self, proto: u8, dst: u32, dport: u16) -> Option<usize> {
        self.lookup
            .get(pack_key(proto, dst, dport))
            .or_else(|| self.lookup.get(pack_key(proto, dst, 0)))
            .map(|i| i as usize)
    }

    /// Whether `ip` (host order) is a VIP of some service (ours or in standby).
    #[inline]
    pub fn is_vip(&self, ip: u32) -> bool {
        self.owns(ip) || self.is_standby(ip)
    }

    /// Whether `ip` (host order) is a VIP we answer for and forward to (not in VRRP standby).
    #[inline]
    pub fn owns(&self, ip: u32) -> bool {
        self.vips.binary_search(&ip).is_ok()
    }

    /// Whether `ip` (host order) is a VIP held in standby by VRRP.
    #[inline]
    pub fn is_standby(&self, ip: u32) -> bool {
        !self.standby.is_empty() && self.standby.binary_search(&ip).is_ok()
    }

    /// Where the real server in stats slot `slot` lives, if it is in this snapshot.
    #[inline]
    pub fn server_by_slot(&self, slot: u32) -> Option<ServerRef> {
        self.rs_by_slot
            .get(slot as usize)
            .copied()
            .filter(|r| r.id != 0)
    }

    /// Whether the flow stored with (`slot`, `id`) belongs to a real server that is configured
    /// but down by its health check: its packets are dropped (or, with `expire_nodest_conn`,
    /// rescheduled) as for a deleted server, but the flow stays attached to it, so it resumes
    /// when the server is up again (as IPVS connections to a destination keepalived removed and
    /// added back do).
    #[inline]
    pub fn is_parked(&self, slot: u32, id: u32) -> bool {
        id != 0 && self.parked.get(slot as usize) == Some(&id)
    }

    /// The real server of a flow stored with (`slot`, `id`), if that server is in this snapshot
    /// still (the slot holds the same server, not a deleted one's successor): the hit path's
    /// check, by reference.
    #[inline(always)]
    pub fn flow_server(&self, slot: u32, id: u32) -> Option<&ServerRef> {
        self.rs_by_slot
            .get(slot as usize)
            .filter(|r| r.id == id && id != 0)
    }
}

/// Control-thread-only state, behind a mutex the workers never touch.
#[derive(Debug, Default)]
struct Control {
    retired: Vec<Arc<Snapshot>>,
    /// Per slot: (id the baseline belongs to, counters at the last zero / slot reuse).
    svc_base: Vec<(u32, Counters)>,
    rs_base: Vec<(u32, Counters)>,
    timeouts: Timeouts,
    behaviour: Behaviour,
    /// Each worker's flow table storage, for connection listings.
    flows: Vec<Option<Arc<FlowStore>>>,
}

fn minus(a: Counters, b: Counters) -> Counters {
    Counters {
        conns: a.conns.saturating_sub(b.conns),
        packets: a.packets.saturating_sub(b.packets),
        bytes: a.bytes.saturating_sub(b.bytes),
    }
}

/// Everything the control thread and the workers share.
#[derive(Debug)]
pub struct Shared {
    current: ArcSwap<Snapshot>,
    epoch: AtomicU64,
    pub neigh: NeighTable,
    pub stats: StatsRegistry,
    seen: Box<[CachePadded<AtomicU64>]>,
    control: Mutex<Control>,
    clock_ms: AtomicU64,
    max_services: usize,
    max_servers: usize,
    port_mac: [u8; 6],
    dip: Ipv4Addr,
    dip_netmask: Ipv4Addr,
    /// Persistence templates, shared by every worker.
    pub persist: PersistTable,
    /// VIPs to announce by gratuitous ARP now (the HA thread's takeover bursts), taken by the
    /// ARP worker's housekeeping.
    garp_requests: ArrayQueue<u32>,
    /// Connection sync with the HA thread (off unless [`Shared::with_sync`]).
    sync: Option<Arc<SyncRings>>,
    /// The 802.1Q VLAN the services and the DIP are on (`[network] vlan`), fixed for the
    /// process; `None`: untagged (see [`Shared::with_vlan`]).
    vlan: Option<VlanId>,
}

/// Gratuitous ARP requests queued at most (each VIP once per burst).
const GARP_QUEUE: usize = 1024;

/// Persistence table entries when not configured ([`Shared::with_persistence`]).
pub const DEFAULT_PERSISTENCE: usize = 65536;

impl Shared {
    /// Everything sized once: `max_services`/`max_servers` as the model's, `neighbours` the
    /// neighbour table capacity, `workers` the number of workers; the port's MAC and the
    /// director's own address (DIP) with its prefix length are fixed for the process.
    pub fn new(
        max_services: u32,
        max_servers: u32,
        neighbours: u32,
        workers: usize,
        port_mac: [u8; 6],
        dip: Ipv4Addr,
        dip_prefix_len: u8,
    ) -> Self {
        let (ms, mr) = (max_services as usize, max_servers as usize);
        let nw = workers.max(1);
        let dip_netmask = crate::wire::ipv4::prefix_netmask(dip_prefix_len);
        Shared {
            current: ArcSwap::from_pointee(Snapshot::empty(mr)),
            epoch: AtomicU64::new(0),
            neigh: NeighTable::new(neighbours as usize).with_own_mac(port_mac),
            stats: StatsRegistry::new(nw, ms, mr),
            seen: (0..nw)
                .map(|_| CachePadded::new(AtomicU64::new(0)))
                .collect(),
            control: Mutex::new(Control {
                svc_base: vec![(0, Counters::default()); ms],
                rs_base: vec![(0, Counters::default()); mr],
                flows: vec![None; nw],
                ..Control::default()
            }),
            clock_ms: AtomicU64::new(0),
            max_services: ms,
            max_servers: mr,
            port_mac,
            dip,
            dip_netmask,
            persist: PersistTable::new(DEFAULT_PERSISTENCE),
            garp_requests: ArrayQueue::new(GARP_QUEUE),
            sync: None,
            vlan: None,
        }
    }

    /// The services and the DIP are on 802.1Q VLAN `vlan` (`None`: untagged, the default):
    /// workers take frames tagged with it and keep the tag when forwarding, answer ARP tagged,
    /// send their ARP frames tagged, and count untagged frames and other VLANs as drops
    /// (`vlan_untagged`, `vlan_other`, `vlan_qinq`; see `docs/vlan.md`). Call before workers
    /// start.
    pub fn with_vlan(mut self, vlan: Option<VlanId>) -> Self {
        self.vlan = vlan;
        self
    }

    /// The VLAN given to [`Self::with_vlan`].
    pub fn vlan(&self) -> Option<VlanId> {
        self.vlan
    }

    /// Connection sync on: workers report their flows to, and install flows from, `rings`.
    /// Call before workers start.
    pub fn with_sync(mut self, rings: Arc<SyncRings>) -> Self {
        self.sync = Some(rings);
        self
    }

    /// The connection-sync rings, when sync is on.
    pub fn sync(&self) -> Option<&Arc<SyncRings>> {
        self.sync.as_ref()
    }

    /// Ask the ARP worker to send one gratuitous ARP for `vip` (host order) at its next
    /// housekeeping; `false` when the queue is full (the request is lost, counted by the
    /// caller).
    pub fn request_garp(&self, vip: u32) -> bool {
        self.garp_requests.push(vip).is_ok()
    }

    /// The next gratuitous ARP asked for (the ARP worker's side of [`Self::request_garp`]).
    pub fn next_garp_request(&self) -> Option<u32> {
        self.garp_requests.pop()
    }

    /// Size the persistence table (`[tables] persistence`); call before workers start.
    pub fn with_persistence(mut self, entries: usize) -> Self {
        self.persist = PersistTable::new(entries);
        self
    }

    /// Initial flow timeouts and forwarding behaviour (from the configuration); they go into
    /// every snapshot from the next publication on. Call before workers start.
    pub fn with_settings(self, timeouts: Timeouts, behaviour: Behaviour) -> Self {
        {
            let mut c = self.lock();
            c.timeouts = timeouts;
            c.behaviour = behaviour;
            // Once published, under a new epoch (as any publication); before, in place.
            let published = self.epoch.load(Relaxed) > 0;
            self.republish_settings_locked(&mut c, published);
        }
        self
    }

    /// Publish the current picture again with the settings in `c` (timeouts,
    /// behaviour): a copy of the snapshot, so nothing of the model is kept here.
    /// `bump`: under a new epoch, else in place of the current one (nothing published yet).
    fn republish_settings_locked(&self, c: &mut Control, bump: bool) {
        let mut next = Snapshot::clone(&self.load());
        next.timeouts = c.timeouts;
        next.expire_nodest_conn = c.behaviour.expire_nodest_conn;
        next.sloppy_tcp = c.behaviour.sloppy_tcp;
        next.vip_other_ports_to_kernel = c.behaviour.vip_other_ports_to_kernel;
        let epoch = self.epoch.load(Relaxed) + u64::from(bump);
        next.epoch = epoch;
        let old = self.current.swap(Arc::new(next));
        self.epoch.store(epoch, Release);
        c.retired.push(old);
        self.reclaim_locked(c);
    }

    /// Worker `w` makes its flow table storage readable for connection listings.
    pub fn register_flows(&self, w: usize, store: Arc<FlowStore>) {
        if let Some(cell) = self.lock().flows.get_mut(w) {
            *cell = Some(store);
        }
    }

    pub fn max_services(&self) -> usize {
        self.max_services
    }
    pub fn max_servers(&self) -> usize {
        self.max_servers
    }
    pub fn workers(&self) -> usize {
        self.seen.len()
    }
    pub fn port_mac(&self) -> [u8; 6] {
        self.port_mac
    }
    pub fn dip(&self) -> Ipv4Addr {
        self.dip
    }
    pub fn dip_netmask(&self) -> Ipv4Addr {
        self.dip_netmask
    }

    /// The epoch of the newest published snapshot.
    #[inline]
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Acquire)
    }

    /// The newest snapshot (an `Arc` clone: an atomic increment, no allocation).
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Worker `w` now holds (only) the snapshot of `epoch`.
    pub fn mark_seen(&self, w: usize, epoch: u64) {
        if let Some(s) = self.seen.get(w) {
            s.store(epoch, Release);
        }
    }

    /// The dataplane clock as last reported by the ARP worker (ms, the engine's time base).
    pub fn clock_ms(&self) -> u64 {
        self.clock_ms.load(Relaxed)
    }
    pub fn set_clock_ms(&self, now_ms: u64) {
        self.clock_ms.store(now_ms, Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Control> {
        self.control.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drop retired snapshots every worker has moved past. Returns how many remain.
    pub fn reclaim(&self) -> usize {
        let mut c = self.lock();
        self.reclaim_locked(&mut c);
        c.retired.len()
    }

    /// The oldest epoch a worker still forwards by.
    fn min_seen(&self) -> u64 {
        self.seen.iter().map(|s| s.load(Acquire)).min().unwrap_or(0)
    }

    fn reclaim_locked(&self, c: &mut Control) {
        let min_seen = self.min_seen();
        c.retired.retain(|s| s.epoch >= min_seen);
    }
}

impl Shared {
    fn publish_locked(&self, c: &mut Control, model: &Model) -> Result<(), PublishError> {
        // Track every real server address and static neighbour; retire the others, reclaim
        // what no worker can still use.
        let epoch = self.epoch.load(Relaxed) + 1;
        let servers: Vec<Ipv4Addr> = model
            .services()
            .iter()
            .flat_map(|s| {
                // Down servers and an inactive sorry server stay tracked: resolved already
                // when they are scheduled again.
                s.servers
                    .iter()
                    .map(|r| r.spec.addr)
                    .chain(s.sorry.as_ref().map(|x| x.spec.addr))
            })
            .collect();
        self.neigh
            .update(&servers, &model.statics, epoch, self.min_seen())
            .map_err(|_| PublishError::NeighbourTableFull(self.neigh.capacity() as u32))?;

        let mut snap = Snapshot::build(model, epoch, self.max_servers, &self.neigh)?;
        snap.timeouts = c.timeouts;
        snap.expire_nodest_conn = c.behaviour.expire_nodest_conn;
        snap.sloppy_tcp = c.behaviour.sloppy_tcp;
        snap.vip_other_ports_to_kernel = c.behaviour.vip_other_ports_to_kernel;
        // A slot that changed hands starts counting from what it holds now.
        for svc in &snap.services {
            let cur = self.stats.service(svc.slot as usize);
            if let Some(b) = c.svc_base.get_mut(svc.slot as usize) {
                if b.0 != svc.id {
                    *b = (svc.id, cur);
                }
            }
            for rs in &svc.servers {
                let (cur, _, _) = self.stats.server(rs.slot as usize);
                if let Some(b) = c.rs_base.get_mut(rs.slot as usize) {
                    if b.0 != rs.id {
                        *b = (rs.id, cur);
                    }
                }
            }
        }
        let old = self.current.swap(Arc::new(snap));
        self.epoch.store(epoch, Release);
        c.retired.push(old);
        self.reclaim_locked(c);
        Ok(())
    }

    /// The dataplane clock in seconds (the workers' `now_s`).
    fn now_s(&self) -> u32 {
        (self.clock_ms() / 1000) as u32
    }

    /// Live persistence templates per real server slot (`--persistent-conn`).
    pub fn persistent_conns(&self, snap: &Snapshot) -> Vec<u64> {
        let mut n = vec![0u64; self.max_servers];
        self.persist.for_each(self.now_s(), |t| {
            if snap
                .server_by_slot(t.rs_slot)
                .is_some_and(|r| r.id == t.rs_id)
            {
                if let Some(c) = n.get_mut(t.rs_slot as usize) {
                    *c += 1;
                }
            }
            true
        });
        n
    }
}

/// What the control plane asks of the dataplane (the daemon answers the control crate's
/// `Dataplane` trait with these).
impl Shared {
    /// Build an immutable snapshot of `model` and hand it to every worker.
    pub fn publish(&self, model: &Model) -> Result<(), PublishError> {
        let mut c = self.lock();
        self.publish_locked(&mut c, model)
    }

    /// Change the TCP established, TCP FIN_WAIT and UDP timeouts (`ipvsadm --set`; the values
    /// are final: the caller resolves "0 = unchanged"). Takes effect with the next burst.
    pub fn set_timeouts(&self, t: crate::model::Timeouts) {
        let mut c = self.lock();
        c.timeouts = c.timeouts.with_settable(t);
        self.republish_settings_locked(&mut c, true);
    }

    /// The timeouts in force.
    pub fn timeouts(&self) -> crate::model::Timeouts {
        self.lock().timeouts.settable()
    }

    pub fn connections(&self, limit: usize) -> Vec<ConnEntry> {
        let stores: Vec<Arc<FlowStore>> = self.lock().flows.iter().flatten().cloned().collect();
        let snap = self.load();
        let now = self.now_s();
        let mut out = Vec::new();
        for store in &stores {
            if out.len() >= limit {
                break;
            }
            store.for_each(|e| {
                let k = e.key();
                let Some(r) = snap
                    .server_by_slot(e.rs_slot)
                    .filter(|r| r.id == e.rs_id)
                    .and_then(|r| {
                        snap.services
                            .get(r.svc as usize)?
                            .servers
                            .get(r.rs as usize)
                    })
                else {
                    return true;
                };
                // A worker may be a little ahead of the published clock.
                let idle = now.saturating_sub(e.last_seen());
                let timeout = FlowTable::timeout_of(&snap.timeouts, e.state());
                let Some(left) = timeout.checked_sub(idle) else {
                    return true;
                };
                let Some(proto) = crate::model::Protocol::from_ip_proto(k.proto) else {
                    return true;
                };
                out.push(ConnEntry {
                    proto,
                    expire_s: left,
                    state: e.state().name().to_string(),
                    client: Ipv4Addr::from(k.src),
                    cport: k.sport,
                    vip: Ipv4Addr::from(k.dst),
                    vport: k.dport,
                    rs: r.addr,
                    rport: if r.port == 0 { k.dport } else { r.port },
                    template: false,
                });
                out.len() < limit
            });
        }
        if out.len() < limit {
            self.persist.for_each(now, |t| {
                let Some(svc) = snap.services.iter().find(|s| s.id == t.svc_id) else {
                    return true;
                };
                let Some(r) = snap
                    .server_by_slot(t.rs_slot)
                    .filter(|r| r.id == t.rs_id)
                    .and_then(|r| {
                        snap.services
                            .get(r.svc as usize)?
                            .servers
                            .get(r.rs as usize)
                    })
                else {
                    return true;
                };
                out.push(ConnEntry {
                    proto: svc.key.proto,
                    expire_s: t.expires.wrapping_sub(now),
                    state: FlowState::Free.name().to_string(),
                    client: Ipv4Addr::from(t.client_net),
                    cport: 0,
                    vip: svc.key.vip,
                    vport: svc.key.port,
                    rs: r.addr,
                    rport: match (svc.key.port, r.port) {
                        (0, _) => 0,
                        (p, 0) => p,
                        (_, p) => p,
                    },
                    template: true,
                });
                out.len() < limit
            });
        }
        out
    }

    pub fn stats(&self, model: &Model) -> StatsReport {
        let mut c = self.lock();
        // Also a good moment to free snapshots every worker has left behind.
        self.reclaim_locked(&mut c);
        let persist = self.persistent_conns(&self.load());
        let mut rep = StatsReport {
            arp_refused: self.neigh.events().refused,
            kernel: self.stats.kernel(),
            ..StatsReport::default()
        };
        for w in 0..self.stats.workers() {
            let Some(wc) = self.stats.worker(w) else {
                continue;
            };
            let mut ws = WorkerStats {
                worker: w as u32,
                queue: w as u16,
                rx_packets: wc.rx.load(Relaxed),
                tx_packets: wc.tx.load(Relaxed),
                forwarded: wc.forwarded.load(Relaxed),
                arp_replies: wc.arp_replies.load(Relaxed),
                to_kernel: wc.to_kernel.load(Relaxed),
                flows: wc.flows.load(Relaxed),
                ..WorkerStats::default()
            };
            for r in DropReason::ALL {
                let n = wc.drop_count(r);
                if n != 0 {
                    ws.drops.insert(r.name().to_string(), n);
                    *rep.drops.entry(r.name().to_string()).or_insert(0) += n;
                }
            }
            rep.workers.push(ws);
        }
        for svc in model.services() {
            let base = c
                .svc_base
                .get(svc.slot as usize)
                .filter(|b| b.0 == svc.id)
                .map(|b| b.1)
                .unwrap_or_default();
            let mut ss = ServiceStats {
                key: svc.spec.key,
                counters: minus(self.stats.service(svc.slot as usize), base),
                servers: Vec::new(),
            };
            for rs in &svc.servers {
                let (cur, active, inactive) = self.stats.server(rs.slot as usize);
                let base = c
                    .rs_base
                    .get(rs.slot as usize)
                    .filter(|b| b.0 == rs.id)
                    .map(|b| b.1)
                    .unwrap_or_default();
                ss.servers.push(ServerStats {
                    addr: rs.spec.addr,
                    port: rs.spec.port,
                    counters: minus(cur, base),
                    active_conns: active,
                    inactive_conns: inactive,
                    persistent_conns: persist.get(rs.slot as usize).copied().unwrap_or(0),
                });
            }
            rep.services.push(ss);
        }
        rep
    }

    pub fn neighbour(&self, addr: Ipv4Addr) -> NeighState {
        self.neigh.state(addr, self.clock_ms())
    }

    pub fn zero(&self, model: &Model) {
        let mut c = self.lock();
        for svc in model.services() {
            let cur = self.stats.service(svc.slot as usize);
            if let Some(b) = c.svc_base.get_mut(svc.slot as usize) {
                *b = (svc.id, cur);
            }
            for rs in &svc.servers {
                let (cur, _, _) = self.stats.server(rs.slot as usize);
                if let Some(b) = c.rs_base.get_mut(rs.slot as usize) {
                    *b = (rs.id, cur);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Forward, Protocol, ServerSpec, ServiceSpec};
    use crate::stats::bump;

    pub(crate) fn key(proto: Protocol, last: u8, port: u16) -> ServiceKey {
        ServiceKey {
            proto,
            vip: Ipv4Addr::new(198, 18, 0, last),
            port,
        }
    }

    fn model() -> Model {
        let mut m = Model::new(8, 8);
        for (k, persistent) in [
            (key(Protocol::Tcp, 100, 80), None),
            (key(Protocol::Tcp, 100, 0), Some(300)),
            (key(Protocol::Udp, 101, 53), None),
        ] {
            m.add_service(ServiceSpec {
                key: k,
                scheduler: SchedulerKind::Wrr,
                persistent,
                netmask: Ipv4Addr::BROADCAST,
                flags: vec![],
            })
            .unwrap();
        }
        for (last, w) in [(11, 4), (12, 2), (13, 0)] {
            m.add_server(
                &key(Protocol::Tcp, 100, 80),
                ServerSpec {
                    addr: Ipv4Addr::new(198, 18, 0, last),
                    port: 0,
                    weight: w,
                    forward: Forward::Dr,
                    upper: 0,
                    lower: 0,
                },
            )
            .unwrap();
        }
        m
    }

    fn shared(neighbours: u32) -> Shared {
        Shared::new(
            8,
            8,
            neighbours,
            2,
            [2, 0, 0, 0, 0, 1],
            Ipv4Addr::new(198, 18, 0, 1),
            24,
        )
    }

    #[test]
    fn service_index_finds_every_key_and_only_those() {
        let n = 1000u32;
        let mut ix = ServiceIndex::with_capacity(n as usize);
        assert_eq!(ix.slots.len(), 2048);
        let key = |i: u32| pack_key(if i % 2 == 0 { 6 } else { 17 }, 0xc612_0000 + i, 80);
        for i in 0..n {
            assert!(ix.insert(key(i), i));
        }
        // overwrite keeps one entry per key
        assert!(ix.insert(key(7), 77));
        for i in 0..n {
            assert_eq!(ix.get(key(i)), Some(if i == 7 { 77 } else { i }), "key {i}");
        }
        for i in n..2 * n {
            assert_eq!(ix.get(key(i)), None);
            assert_eq!(ix.get(pack_key(6, 0xc612_0000 + i - n, 81)), None);
        }
        assert_eq!(
            ix.slots.iter().filter(|s| s.0 != EMPTY_KEY).count(),
            n as usize
        );
        // an empty index (empty snapshot) answers None
        let empty = ServiceIndex::with_capacity(0);
        assert_eq!(empty.get(key(0)), None);
        // a full table refuses instead of looping
        let mut tiny = ServiceIndex::with_capacity(0);
        for i in 0..4 {
            assert!(tiny.insert(key(i), i));
        }
        assert!(!tiny.insert(key(4), 4));
        assert_eq!(tiny.get(key(4)), None);
        assert_eq!(tiny.get(key(3)), Some(3));
    }

    #[test]
    fn build_and_lookup() {
        let sh = shared(16);
        sh.publish(&model()).unwrap();
        let s = sh.load();
        assert_eq!(s.epoch, 1);
        assert_eq!(sh.epoch(), 1);
        let vip = u32::from(Ipv4Addr::new(198, 18, 0, 100));
        assert_eq!(s.service_for(6, vip, 80), Some(0));
        assert_eq!(s.service_for(6, vip, 443), Some(1), "all-ports service");
        assert_eq!(s.service_for(17, vip, 80), None);
        assert_eq!(
            s.service_for(17, u32::from(Ipv4Addr::new(198, 18, 0, 101)), 53),
            Some(2)
        );
        assert!(s.is_vip(vip) && !s.is_vip(vip + 5));
        assert_eq!(sh.dip_netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(
            Shared::new(1, 1, 1, 1, [2; 6], Ipv4Addr::LOCALHOST, 0).dip_netmask(),
            Ipv4Addr::UNSPECIFIED
        );
        assert_eq!(
            Shared::new(1, 1, 1, 1, [2; 6], Ipv4Addr::LOCALHOST, 32).dip_netmask(),
            Ipv4Addr::BROADCAST
        );
        assert_eq!(s.vips.len(), 2);
        let svc = &s.services[0];
        assert_eq!((svc.wrr_gcd, svc.wrr_max), (2, 4));
        let rs = &svc.servers[1];
        assert_eq!(sh.neigh.find(rs.addr), Some(rs.neigh));
        assert_eq!(
            s.server_by_slot(rs.slot),
            Some(ServerRef {
                svc: 0,
                rs: 1,
                id: rs.id,
                neigh: rs.neigh as u32,
                svc_slot: svc.slot,
                persistent: false,
            })
        );
        assert_eq!(s.server_by_slot(7), None);
        assert_eq!(s.server_by_slot(99), None);
    }

    #[test]
    fn settings_go_into_every_snapshot() {
        let sh = shared(16);
        assert_eq!(sh.load().timeouts, Timeouts::default());
        assert!(!sh.load().expire_nodest_conn);
        let t = Timeouts {
            tcp: 5,
            ..Timeouts::default()
        };
        let on = Behaviour {
            expire_nodest_conn: true,
            sloppy_tcp: true,
            vip_other_ports_to_kernel: true,
        };
        let sh = sh.with_settings(t, on).with_persistence(100);
        assert_eq!(sh.persist.capacity(), 128);
        let seen = |s: &Snapshot| {
            (
                s.timeouts,
                s.expire_nodest_conn,
                s.sloppy_tcp && s.vip_other_ports_to_kernel,
            )
        };
        assert_eq!(seen(&sh.load()), (t, true, true));
        sh.publish(&model()).unwrap();
        assert_eq!(seen(&sh.load()), (t, true, true));
        // after a publication: the same services, new settings
        let sh = sh.with_settings(Timeouts::default(), Behaviour::default());
        let s = sh.load();
        assert_eq!(seen(&s), (Timeouts::default(), false, false));
        assert_eq!((s.epoch, s.services.len()), (2, 3));
        assert_eq!(s.services[1].persistent, Some(300));
        assert_eq!(s.services[1].netmask, u32::MAX);
        sh.set_timeouts(crate::model::Timeouts {
            tcp: 1,
            tcp_fin: 2,
            udp: 3,
        });
        let s = sh.load();
        assert_eq!(
            (s.timeouts.tcp, s.timeouts.tcp_fin, s.timeouts.udp),
            (1, 2, 3)
        );
        assert_eq!((s.epoch, s.services.len()), (3, 3));
    }

    #[test]
    fn neighbour_table_full_is_reported() {
        let sh = shared(2);
        let mut m = model();
        for last in 20..30 {
            m.add_server(
                &key(Protocol::Udp, 101, 53),
                ServerSpec {
                    addr: Ipv4Addr::new(198, 18, 0, last),
                    port: 0,
                    weight: 1,
                    forward: Forward::Dr,
                    upper: 0,
                    lower: 0,
                },
            )
            .unwrap_or(()); // model capacity 8 in total: some fail, enough succeed
        }
        let e = sh.publish(&m).unwrap_err();
        assert_eq!(e, PublishError::NeighbourTableFull(2));
        assert_eq!(e.to_string(), "neighbour table is full (2 entries)");
        assert_eq!(sh.epoch(), 0, "nothing published");
    }

    #[test]
    fn neighbour_entries_of_deleted_servers_are_reclaimed() {
        // 4 entries configured, 3 servers kept; 20,000 cycles add and delete a fourth with a
        // new address each time. Both workers move on after each publication, as the
        // engine's loop does between bursts.
        let sh = shared(4);
        let mut m = model();
        let k = key(Protocol::Tcp, 100, 80);
        sh.publish(&m).unwrap();
        let base = u32::from(Ipv4Addr::new(198, 19, 0, 0));
        let seen = |sh: &Shared| {
            sh.mark_seen(0, sh.epoch());
            sh.mark_seen(1, sh.epoch());
        };
        for i in 0..20_000u32 {
            let addr = Ipv4Addr::from(base + i);
            m.add_server(
                &k,
                ServerSpec {
                    addr,
                    port: 0,
                    weight: 1,
                    forward: Forward::Dr,
                    upper: 0,
                    lower: 0,
                },
            )
            .unwrap();
            sh.publish(&m)
                .unwrap_or_else(|e| panic!("cycle {i}: add {addr}: {e}"));
            seen(&sh);
            m.delete_server(&k, addr, 0).unwrap();
            sh.publish(&m)
                .unwrap_or_else(|e| panic!("cycle {i}: delete {addr}: {e}"));
            seen(&sh);
        }
        assert!(sh.neigh.len() <= 5, "{} entries", sh.neigh.len());
        // a worker that stops moving on holds the entries of what it may still use: the
        // table refuses new addresses rather than reuse their slots
        sh.mark_seen(1, sh.epoch());
        let mut refused = false;
        for i in 0..64u32 {
            let addr = Ipv4Addr::from(base + 100_000 + i);
            m.add_server(
                &k,
                ServerSpec {
                    addr,
                    port: 0,
                    weight: 1,
                    forward: Forward::Dr,
                    upper: 0,
                    lower: 0,
                },
            )
            .unwrap();
            let r = sh.publish(&m);
            sh.mark_seen(0, sh.epoch());
            m.delete_server(&k, addr, 0).unwrap();
            if r.is_err() {
                refused = true;
                break;
            }
            sh.publish(&m).unwrap();
            sh.mark_seen(0, sh.epoch());
        }
        assert!(refused, "8 slots cannot hold 64 retired addresses");
        // it moves on: room again
        seen(&sh);
        sh.publish(&m).unwrap();
        seen(&sh);
        sh.publish(&m).unwrap();
        seen(&sh);
        m.add_server(
            &k,
            ServerSpec {
                addr: Ipv4Addr::new(198, 18, 0, 77),
                port: 0,
                weight: 1,
                forward: Forward::Dr,
                upper: 0,
                lower: 0,
            },
        )
        .unwrap();
        sh.publish(&m).unwrap();
    }

    #[test]
    fn retired_snapshots_live_until_every_worker_moved_on() {
        let sh = shared(16);
        let m = model();
        sh.publish(&m).unwrap();
        sh.publish(&m).unwrap();
        // workers still at epoch 0: snapshots 0 and 1 retired and kept
        assert_eq!(sh.reclaim(), 2);
        sh.mark_seen(0, 2);
        assert_eq!(sh.reclaim(), 2);
        sh.mark_seen(1, 1);
        assert_eq!(
            sh.reclaim(),
            1,
            "epoch 0 freed, epoch 1 still held by worker 1"
        );
        sh.mark_seen(1, 2);
        assert_eq!(sh.reclaim(), 0);
    }

    #[test]
    fn stats_sum_zero_and_slot_reuse() {
        let sh = shared(16);
        let mut m = model();
        sh.publish(&m).unwrap();
        let svc = m.services()[0].clone();
        let rs0 = svc.servers[0].clone();
        let w0 = sh.stats.worker(0).unwrap();
        let w1 = sh.stats.worker(1).unwrap();
        bump(&w0.services[svc.slot as usize].packets, 5);
        bump(&w1.services[svc.slot as usize].packets, 6);
        bump(&w1.servers[rs0.slot as usize].counters.conns, 2);
        bump(&w0.drops[DropReason::Vlan.index()], 1);
        let r = sh.stats(&m);
        assert_eq!(r.services[0].counters.packets, 11);
        assert_eq!(r.services[0].servers[0].counters.conns, 2);
        assert_eq!(r.drops.get("vlan"), Some(&1));
        assert_eq!(r.workers.len(), 2);
        assert_eq!(r.workers[0].drops.len(), 1);
        sh.zero(&m);
        let r = sh.stats(&m);
        assert_eq!(r.services[0].counters, Counters::default());
        bump(&w0.services[svc.slot as usize].packets, 1);
        assert_eq!(sh.stats(&m).services[0].counters.packets, 1);
        // delete the server, add another that takes its slot: it starts from zero
        m.delete_server(&svc.spec.key, rs0.spec.addr, 0).unwrap();
        sh.publish(&m).unwrap();
        bump(&w0.servers[rs0.slot as usize].counters.conns, 3);
        m.add_server(
            &svc.spec.key,
            ServerSpec {
                addr: Ipv4Addr::new(198, 18, 0, 14),
                port: 0,
                weight: 1,
                forward: Forward::Dr,
                upper: 0,
                lower: 0,
            },
        )
        .unwrap();
        sh.publish(&m).unwrap();
        let r = sh.stats(&m);
        let new = r.services[0]
            .servers
            .iter()
            .find(|s| s.addr == Ipv4Addr::new(198, 18, 0, 14))
            .unwrap();
        assert_eq!(new.counters, Counters::default());
    }

    #[test]
    fn unused_neighbours_are_not_requested() {
        let sh = shared(16);
        let mut m = model();
        sh.publish(&m).unwrap();
        let mut out = [0u32; 8];
        assert_eq!(sh.neigh.due_requests(0, 30_000, 1000, &mut out), 3);
        m.delete_server(
            &key(Protocol::Tcp, 100, 80),
            Ipv4Addr::new(198, 18, 0, 13),
            0,
        )
        .unwrap();
        sh.publish(&m).unwrap();
        assert_eq!(sh.neigh.due_requests(5000, 30_000, 1000, &mut out), 2);
        assert!(!out[..2].contains(&u32::from(Ipv4Addr::new(198, 18, 0, 13))));
        assert_eq!(
            sh.neighbour(Ipv4Addr::new(198, 18, 0, 13)),
            NeighState::Incomplete
        );
    }

    // -----------------------------------------------------------------------------------------
    // Health: what the snapshot has of a server that is up, down or inhibited, of a health
    // weight, and of a sorry server.
    // -----------------------------------------------------------------------------------------

    use crate::model::Health;

    const RS11: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 11);
    const RS12: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 12);
    const RS13: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 13);
    const SORRY: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 99);

    /// (address, weight, slot, id) of the servers of `k` in the current snapshot.
    fn listed(sh: &Shared, k: &ServiceKey) -> Vec<(Ipv4Addr, u32, u32, u32)> {
        let s = sh.load();
        let svc = s.services.iter().find(|x| x.key == *k).unwrap();
        svc.servers
            .iter()
            .map(|r| (r.addr, r.weight, r.slot, r.id))
            .collect()
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

    #[test]
    fn snapshot_obeys_each_health_state_and_keeps_slots() {
        let sh = shared(16);
        let mut m = model();
        let k = key(Protocol::Tcp, 100, 80);
        let ids: Vec<(u32, u32)> = m
            .service(&k)
            .unwrap()
            .servers
            .iter()
            .map(|r| (r.slot, r.id))
            .collect();
        sh.publish(&m).unwrap();
        let up = listed(&sh, &k);
        assert_eq!(
            up.iter().map(|x| (x.0, x.1)).collect::<Vec<_>>(),
            vec![(RS11, 4), (RS12, 2), (RS13, 0)]
        );
        // down: not in the snapshot, not findable by its slot; the others keep theirs
        m.set_server_health(&k, RS11, 0, Health::Down, None)
            .unwrap();
        sh.publish(&m).unwrap();
        let s = sh.load();
        assert_eq!(
            listed(&sh, &k).iter().map(|x| x.0).collect::<Vec<_>>(),
            vec![RS12, RS13]
        );
        assert_eq!(s.flow_server(ids[0].0, ids[0].1), None);
        assert!(s.flow_server(ids[1].0, ids[1].1).is_some());
        assert_eq!(s.services[0].usable.len(), 1, "only RS12 has weight");
        assert_eq!((s.services[0].wrr_gcd, s.services[0].wrr_max), (2, 2));
        // its neighbour entry stays tracked for its return
        assert!(sh.neigh.find(RS11).is_some());
        // inhibited: listed with weight 0, its flows' slot found
        m.set_server_health(&k, RS11, 0, Health::Inhibited, None)
            .unwrap();
        sh.publish(&m).unwrap();
        let s = sh.load();
        assert_eq!(listed(&sh, &k)[0], (RS11, 0, ids[0].0, ids[0].1));
        assert!(s.flow_server(ids[0].0, ids[0].1).is_some());
        assert!(!s.services[0].usable.contains(&0));
        // up with a health weight: that weight, for the scheduler plan too
        m.set_server_health(&k, RS11, 0, Health::Up, Some(6))
            .unwrap();
        m.set_server_health(&k, RS13, 0, Health::Up, Some(3))
            .unwrap();
        sh.publish(&m).unwrap();
        let s = sh.load();
        assert_eq!(
            listed(&sh, &k).iter().map(|x| x.1).collect::<Vec<_>>(),
            vec![6, 2, 3]
        );
        assert_eq!((s.services[0].wrr_gcd, s.services[0].wrr_max), (1, 6));
        assert_eq!(s.services[0].usable.len(), 3);
        // up again without override: the configured weights, the same slots and ids
        m.set_server_health(&k, RS11, 0, Health::Up, None).unwrap();
        m.set_server_health(&k, RS13, 0, Health::Up, None).unwrap();
        sh.publish(&m).unwrap();
        assert_eq!(listed(&sh, &k), up);
    }

    #[test]
    fn sorry_server_is_scheduled_only_while_the_quorum_is_lost() {
        let sh = shared(16);
        let mut m = model();
        let k = key(Protocol::Tcp, 100, 80);
        m.set_sorry_server(&k, Some(spec(SORRY, 0))).unwrap();
        sh.publish(&m).unwrap();
        assert!(sh.neigh.find(SORRY).is_some(), "resolved ahead of use");
        assert!(listed(&sh, &k).iter().all(|x| x.0 != SORRY));
        let sorry = m.service(&k).unwrap().sorry.clone().unwrap();
        for a in [RS11, RS12, RS13] {
            m.set_server_health(&k, a, 0, Health::Down, None).unwrap();
        }
        m.set_quorum_lost(&k, true).unwrap();
        sh.publish(&m).unwrap();
        assert_eq!(
            listed(&sh, &k),
            vec![(SORRY, 1, sorry.slot, sorry.id)],
            "alone, weight at least 1"
        );
        let s = sh.load();
        assert_eq!(s.services[0].usable.len(), 1);
        assert!(s.flow_server(sorry.slot, sorry.id).is_some());
        // lost quorum with an inhibited server still listed: the sorry server replaces it
        m.set_server_health(&k, RS12, 0, Health::Inhibited, None)
            .unwrap();
        sh.publish(&m).unwrap();
        assert_eq!(listed(&sh, &k).len(), 1);
        // regained: the real servers, the sorry server out
        m.set_server_health(&k, RS11, 0, Health::Up, None).unwrap();
        m.set_quorum_lost(&k, false).unwrap();
        sh.publish(&m).unwrap();
        assert_eq!(
            listed(&sh, &k).iter().map(|x| x.0).collect::<Vec<_>>(),
            vec![RS11, RS12]
        );
        assert!(sh.load().flow_server(sorry.slot, sorry.id).is_none());
        // quorum lost without a sorry server: the snapshot keeps what is up
        m.set_sorry_server(&k, None).unwrap();
        m.set_quorum_lost(&k, true).unwrap();
        sh.publish(&m).unwrap();
        assert_eq!(listed(&sh, &k).len(), 2);
    }

    /// An Ethernet + IPv4 + TCP frame from the client 198.18.1.10:`sport` to the VIP
    /// 198.18.0.100:80 with TCP `flags`, to the port's MAC (02:00:00:00:00:01).
    fn frame(sport: u16, flags: u8) -> Vec<u8> {
        let [p0, p1] = sport.to_be_bytes();
        let mut f = vec![
            // Ethernet: dst = port MAC, src = router 02:00:00:00:00:0a, type IPv4
            0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x0a, 0x08, 0x00,
            // IPv4: v4 IHL 5, tos 0, total length 40, id 1, DF, TTL 64, TCP, checksum (below)
            0x45, 0x00, 0x00, 40, 0x00, 0x01, 0x40, 0x00, 64, 6, 0, 0,
            // source 198.18.1.10, destination 198.18.0.100
            198, 18, 1, 10, 198, 18, 0, 100,
            // TCP: source port, destination port 80, seq 1, ack 0
            p0, p1, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0,
            // data offset 5, flags, window 0xffff, checksum (not checked), urgent 0
            0x50, flags, 0xff, 0xff, 0x12, 0x34, 0, 0,
        ];
        crate::wire::ipv4::Packet::new_unchecked(&mut f[14..]).fill_checksum();
        f
    }

    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    const MAC11: [u8; 6] = [2, 0, 0, 0, 0, 0x11];
    const MAC12: [u8; 6] = [2, 0, 0, 0, 0, 0x12];

    /// A worker over `m` (rr over RS11 and RS12, both resolved) with `expire_nodest_conn`,
    /// and sloppy TCP so that a rescheduled flow's ACK is forwarded.
    fn flows_setup(expire: bool) -> (Arc<Shared>, Model, crate::pipeline::Worker, ServiceKey) {
        let mut m = Model::new(8, 8);
        let k = key(Protocol::Tcp, 100, 80);
        m.add_service(ServiceSpec {
            key: k,
            scheduler: SchedulerKind::Rr,
            persistent: None,
            netmask: Ipv4Addr::BROADCAST,
            flags: vec![],
        })
        .unwrap();
        m.add_server(&k, spec(RS11, 1)).unwrap();
        m.add_server(&k, spec(RS12, 1)).unwrap();
        let b = Behaviour {
            expire_nodest_conn: expire,
            sloppy_tcp: true,
            ..Behaviour::default()
        };
        let sh = Arc::new(shared(16).with_settings(Timeouts::default(), b));
        sh.publish(&m).unwrap();
        sh.neigh.confirm(sh.neigh.find(RS11).unwrap(), MAC11, 0);
        sh.neigh.confirm(sh.neigh.find(RS12).unwrap(), MAC12, 0);
        let w = crate::pipeline::Worker::new(
            crate::pipeline::WorkerConfig {
                worker: 0,
                flow_capacity: 1024,
                is_arp_worker: true,
            },
            sh.clone(),
        );
        (sh, m, w, k)
    }

    /// Send the frame; the verdict and the destination MAC after.
    fn send(
        w: &mut crate::pipeline::Worker,
        sport: u16,
        flags: u8,
        now_ms: u64,
    ) -> (crate::pipeline::Verdict, [u8; 6]) {
        let mut f = frame(sport, flags);
        let v = w.process(&mut f, now_ms);
        (v, f[..6].try_into().unwrap())
    }

    /// Four flows (rr: two on each server); the ports whose flow went to RS11.
    fn four_flows(w: &mut crate::pipeline::Worker) -> Vec<u16> {
        let mut on11 = vec![];
        for p in 1000..1004u16 {
            let (v, mac) = send(w, p, SYN, 0);
            assert_eq!(v, crate::pipeline::Verdict::Forward);
            if mac == MAC11 {
                on11.push(p);
            }
        }
        assert_eq!(on11.len(), 2);
        on11
    }

    #[test]
    fn flows_of_a_down_server_follow_expire_nodest_conn_as_a_deleted_ones_do() {
        use crate::pipeline::Verdict;
        for expire in [false, true] {
            let (sh, mut m, mut w, k) = flows_setup(expire);
            let on11 = four_flows(&mut w);
            m.set_server_health(&k, RS11, 0, Health::Down, None)
                .unwrap();
            sh.publish(&m).unwrap();
            w.refresh();
            // RS11's second flow sends nothing while it is down
            let (hit, quiet) = (on11[0], on11[1]);
            for p in (1000..1004u16).filter(|p| *p != quiet) {
                let (v, mac) = send(&mut w, p, ACK, 1000);
                match (p == hit, expire) {
                    (true, false) => assert_eq!(v, Verdict::Drop(DropReason::NoDest), "{p}"),
                    _ => assert_eq!((v, mac), (Verdict::Forward, MAC12), "{p} expire={expire}"),
                }
            }
            // new connections only to RS12 while it is down
            for p in 2000..2004u16 {
                assert_eq!(send(&mut w, p, SYN, 1000), (Verdict::Forward, MAC12));
            }
            let conns11 = sh.stats(&m).services[0].servers[0].counters.conns;
            assert_eq!(conns11, 2, "its counters stay while it is down");
            // up again: scheduled again, the same counters go on
            m.set_server_health(&k, RS11, 0, Health::Up, None).unwrap();
            sh.publish(&m).unwrap();
            w.refresh();
            let to11 = (3000..3004u16)
                .filter(|p| send(&mut w, *p, SYN, 2000).1 == MAC11)
                .count();
            assert_eq!(to11, 2);
            assert_eq!(
                sh.stats(&m).services[0].servers[0].counters.conns,
                conns11 + 2
            );
            // the flow still in the table with it resumes on it
            assert_eq!(send(&mut w, quiet, ACK, 2000), (Verdict::Forward, MAC11));
            // the one that sent while it was down: rescheduled (expire_nodest_conn), or,
            // dropped while its server was down, attached to it still and resumed on it
            // (a deleted server's flow would be let go of on its first drop)
            let want = if expire {
                (Verdict::Forward, MAC12)
            } else {
                (Verdict::Forward, MAC11)
            };
            assert_eq!(send(&mut w, hit, ACK, 2000), want);
        }
    }

    #[test]
    fn flows_of_an_inhibited_server_continue_and_new_ones_go_elsewhere() {
        use crate::pipeline::Verdict;
        let (sh, mut m, mut w, k) = flows_setup(false);
        let on11 = four_flows(&mut w);
        m.set_server_health(&k, RS11, 0, Health::Inhibited, None)
            .unwrap();
        sh.publish(&m).unwrap();
        w.refresh();
        for p in 1000..1004u16 {
            let want = if on11.contains(&p) { MAC11 } else { MAC12 };
            assert_eq!(send(&mut w, p, ACK, 1000), (Verdict::Forward, want), "{p}");
        }
        for p in 2000..2006u16 {
            assert_eq!(send(&mut w, p, SYN, 1000), (Verdict::Forward, MAC12));
        }
        assert_eq!(sh.stats(&m).drops.get("no_dest"), None);
    }
}
