//! The per-worker packet pipeline: classify each frame, answer ARP, forward to a real server by
//! direct routing (rewrite the MACs only), or drop under a named reason. Run to completion, in
//! place, a burst at a time ([`Worker::process_burst`]: each frame parsed, hashed and its flow
//! lines asked for a few frames ahead, then the frames decided in order) or one frame at a time
//! ([`Worker::process`]): no allocation, lock or syscall after [`Worker::new`], and no panic on
//! any input bytes.
//!
//! ```text
//! frame ─► Ethernet ─► dst MAC ours/group? ─► ARP  ─► request for VIP/DIP ─► Reply (in place)
//!                                         │        ├► from a tracked neighbour ─► Consumed
//!                                         │        └► claiming a change ─► Drop(arp_refused)
//!                                         └► IPv4 TCP/UDP ─► flow table
//!                          live flow, server in snapshot ─► hit path (no service lookup)
//!                          otherwise ─► service lookup ─► scheduler (new / expired flow)
//!                                                      └► drop or reschedule (server deleted)
//!                                     ─► dst MAC := RS MAC, src := port MAC ─► Forward
//! ```
//!
//! With the kernel path on ([`Worker::with_kernel_path`]), what is addressed to the director and
//! not handled here goes to the kernel interface ([`Verdict::Kernel`]), within a token bucket
//! per worker: IPv4 to the DIP (any protocol, fragments too; decided off the hit path, where a
//! flow lookup has already missed or the parse refused the frame), IPv4 to a VIP on a port no
//! service has when [`Behaviour::vip_other_ports_to_kernel`](crate::snapshot::Behaviour) is
//! set, and ARP replies to the DIP at the port's MAC (the kernel's own neighbour resolution),
//! after the neighbour table learned from them. ARP requests never go to the kernel: rvs
//! answers for the DIP and the VIPs itself.
//!
//! On an 802.1Q VLAN ([`Shared::with_vlan`], `[network] vlan`), frames tagged with its id are
//! decided as untagged frames are without one (the IPv4 or ARP packet read after the tag) and
//! keep their tag: forwarding rewrites the MACs only, an ARP reply goes back with the request's
//! tag, the kernel gets the frame as it came. Untagged (or priority-tagged) frames, other VLAN
//! ids and stacked or 802.1ad tags are dropped as `vlan_untagged`, `vlan_other`, `vlan_qinq`;
//! the ARP frames of [`Worker::housekeeping`] are tagged. Without a VLAN every tagged frame is
//! dropped as `vlan`. See `docs/vlan.md`.
//!
//! As in IPVS, a packet's connection is looked up before its service: a live flow keeps its
//! real server while that server exists, whatever service its packets would match now (a
//! more specific service added later takes new connections only). The hit path reads the
//! flow's entry (one or two cache lines, prefetched by [`Worker::process_burst`]), one record per
//! real-server slot of the snapshot ([`crate::snapshot::ServerRef`]: id, neighbour slot,
//! service stats slot), the TCP state from a table, the neighbour MAC and the counters.

use crate::flow::{Buckets, Entry, FlowKey, FlowState, FlowTable, Hit, KeyWords, Miss};
use crate::neigh::{self, Learned, NeighTable, DEFAULT_REACHABLE_MS, DEFAULT_RETRY_MS};
use crate::persist::{Insert, Template};
use crate::snapshot::{ServerRef, Service, Shared, Snapshot};
use crate::stats::{bump, drop_by, ServerCells, WorkerCounters};
use crate::sync::{FlowRecord, SyncRings};
use crate::wire::ethernet::{VlanId, TAG_MATCH_MASK, VLAN_TAG_LEN};
use crate::wire::{arp, ethernet, ipv4, l4};
use crossbeam_utils::CachePadded;
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

pub use crate::stats::DropReason;

/// A worker's fixed configuration.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Index of this worker (0-based, < the `workers` given to [`Shared::new`]).
    pub worker: u32,
    /// Flow table entries (rounded up to a power of two).
    pub flow_capacity: usize,
    /// This worker sends ARP requests and gratuitous ARPs (exactly one worker should).
    pub is_arp_worker: bool,
}

/// What to do with a processed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Rewritten for a real server: transmit it.
    Forward,
    /// Turned into an ARP reply in place: transmit it.
    Reply,
    /// Used (ARP learned): free it.
    Consumed,
    /// Free it; already counted under the reason (except `TxFull`, see `count_drop`).
    Drop(DropReason),
    /// Unchanged, for the kernel interface: hand it to the kernel-path thread (counted as
    /// `to_kernel`; a full queue is the engine's to count, see
    /// [`Worker::count_kernel_full`]).
    Kernel,
}

/// The kernel path's admission on one worker: a token bucket of `rate_pps` frames per second
/// holding at most `burst` frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelPath {
    pub rate_pps: u32,
    pub burst: u32,
}

impl KernelPath {
    /// The least bucket a worker gets, whatever the rate.
    pub const MIN_BURST: u32 = 32;

    /// One worker's share of `total_pps` shared by `workers` workers (rounded up, at least 1
    /// per second), with a bucket of a tenth of a second of it (at least [`Self::MIN_BURST`]).
    pub fn per_worker(total_pps: u32, workers: usize) -> Self {
        let w = workers.max(1) as u64;
        let rate = u64::from(total_pps).div_ceil(w).max(1) as u32;
        KernelPath {
            rate_pps: rate,
            burst: (rate / 10).max(Self::MIN_BURST),
        }
    }
}

/// A worker's token bucket for the kernel path, in thousandths of a frame (a millisecond of
/// `rate_pps` frames per second is `rate_pps` thousandths: no division per frame).
#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// The kernel path is on.
    on: bool,
    /// Thousandths of a frame added per millisecond (= frames per second).
    rate: u64,
    /// The most the bucket holds (thousandths).
    cap: u64,
    tokens: u64,
    last_ms: u64,
}

/// A frame's worth of tokens.
const TOKEN: u64 = 1000;

impl Bucket {
    fn new(k: KernelPath) -> Self {
        let cap = u64::from(k.burst.max(1)) * TOKEN;
        Bucket {
            on: true,
            rate: u64::from(k.rate_pps),
            cap,
            tokens: cap,
            last_ms: 0,
        }
    }

    /// Take a frame's token at `now_ms` (refilled first); `false` when empty.
    #[inline]
    fn admit(&mut self, now_ms: u64) -> bool {
        let elapsed = now_ms.saturating_sub(self.last_ms);
        if elapsed > 0 {
            self.tokens = self
                .tokens
                .saturating_add(elapsed.saturating_mul(self.rate))
                .min(self.cap);
            self.last_ms = now_ms;
        }
        if self.tokens >= TOKEN {
            self.tokens -= TOKEN;
            true
        } else {
            false
        }
    }
}

/// The verdict for a frame the kernel should have: [`Verdict::Kernel`] within the bucket
/// (counted here as `to_kernel`, so that counting the verdicts of the forwarding path does not
/// grow), dropped as `exception_ratelimited` over it.
#[cold]
#[inline(never)]
fn kernel_verdict(bucket: &mut Bucket, wc: &WorkerCounters, now_ms: u64) -> Verdict {
    if bucket.admit(now_ms) {
        bump(&wc.to_kernel, 1);
        Verdict::Kernel
    } else {
        Verdict::Drop(DropReason::ExceptionRatelimited)
    }
}

/// What the NIC reported of a received frame's IPv4 header checksum (the mbuf's
/// `RX_IP_CKSUM` flags): a frame the NIC did not check is checked in software.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RxCsum {
    /// Not checked by the NIC (or no IPv4): the pipeline checks it.
    #[default]
    Unknown,
    /// Checked and right (or the header's integrity otherwise verified).
    Good,
    /// Checked and wrong: dropped as [`DropReason::BadIpChecksum`].
    Bad,
}

/// How many frames ahead of the one being decided [`Worker::process_burst`] stages a frame:
/// each stage prefetches the flow's two candidate lines, so 8 frames keep about 16
/// lines in flight, the number of L1 fill buffers of current x86 cores, without the prefetches
/// stalling on a full set of buffers nor the first frames waiting for lines just asked for.
pub const PREFETCH_AHEAD: usize = 8;

/// Length of the ARP frames [`Worker::housekeeping`] writes (minimum Ethernet frame, no FCS).
pub const ARP_FRAME_LEN: usize = ethernet::MIN_FRAME_LEN;

/// Neighbour addresses asked per housekeeping round at most.
const REQUESTS_PER_ROUND: usize = 32;
/// How often the ARP worker scans the neighbour table (ms).
const NEIGH_SCAN_MS: u64 = 100;

/// One worker's dataplane state. See the module docs.
#[derive(Debug)]
pub struct Worker {
    id: usize,
    shared: Arc<Shared>,
    /// This worker's counters (its block of `shared.stats`).
    wc: Arc<CachePadded<WorkerCounters>>,
    /// The port's MAC as forwarding writes it.
    src_mac: SrcMac,
    snap: Arc<Snapshot>,
    flows: FlowTable,
    sched: crate::sched::Schedulers,
    port_mac: [u8; 6],
    /// `port_mac` as the low 48 bits of a little-endian word (the first 8 bytes of a frame
    /// read as one `u64` and masked compare to it).
    port_mac_word: u64,
    dip: u32,
    is_arp: bool,
    expire_per_call: usize,
    garp_pending: Vec<u32>,
    req_buf: Box<[u32]>,
    last_scan_ms: Option<u64>,
    /// The kernel path's admission (off unless [`Worker::with_kernel_path`]).
    kernel: Bucket,
    /// The clock of the burst being decided (ms), for the kernel path's bucket.
    now_ms: u64,
    /// Connection sync (see [`crate::sync`]), when on.
    sync: Option<Arc<SyncRings>>,
    /// The bulk dump in progress: its generation and the next bucket to visit.
    dump_gen: u64,
    dump_cursor: usize,
    /// The configured VLAN's tag as [`VlanId::tag_word`] (bytes 12..16 of a frame of that
    /// VLAN, big endian, priority and DEI masked); 0: no VLAN, frames are untagged.
    vlan_tag: u32,
}

/// Buckets of the flow table a bulk dump visits per housekeeping call (8 flows each at most).
const DUMP_BUCKETS_PER_CALL: usize = 64;
/// Synced flows a worker installs per housekeeping call at most.
const INSTALLS_PER_CALL: usize = 256;
/// VRRP's IPv4 group, 224.0.0.18 (RFC 5798 §5.1.1.2), and protocol number.
const VRRP_GROUP: u32 = 0xe000_0012;
const VRRP_PROTO: u8 = 112;

/// Whether `dst` (host order) is in 224.0.0.0/24, the local network control block (VRRP,
/// connection sync's group, routing protocols): link-local multicast for the kernel.
#[inline(always)]
fn is_local_multicast(dst: u32) -> bool {
    dst >> 8 == 0x00e0_0000
}

/// The record connection sync sends for flow `key` in `state`, attached to real server `rs`
/// of service `svc` of `snap` (indices); `None` if the snapshot has no such server.
fn sync_record(
    snap: &Snapshot,
    key: FlowKey,
    state: FlowState,
    svc: usize,
    rs: usize,
) -> Option<FlowRecord> {
    let r = snap.services.get(svc)?.servers.get(rs)?;
    Some(FlowRecord {
        proto: key.proto,
        state,
        client: key.src,
        client_port: key.sport,
        vip: key.dst,
        vport: key.dport,
        rs: u32::from(r.addr),
        rs_port: r.port,
    })
}

/// Install a flow a peer reported into `flows` (a worker's own table, between bursts): the
/// real server is found by address and port in the service of the record's VIP:port. An
/// existing flow is re-pointed and its state taken over. Returns whether it was installed.
fn sync_install(
    flows: &mut FlowTable,
    snap: &Snapshot,
    cells: &[ServerCells],
    r: &FlowRecord,
    now_s: u32,
) -> bool {
    let Some(svc) = snap
        .service_for(r.proto, r.vip, r.vport)
        .and_then(|i| snap.services.get(i))
    else {
        return false;
    };
    let Some(rs) = svc
        .servers
        .iter()
        .find(|x| u32::from(x.addr) == r.rs && x.port == r.rs_port)
    else {
        return false;
    };
    let key = FlowKey {
        src: r.client,
        dst: r.vip,
        sport: r.client_port,
        dport: r.vport,
        proto: r.proto,
    }
    .words();
    let hash = flows.hash_words(key);
    let on_evict = |e: &Entry| gauge_sub(cells, e.rs_slot, e.state());
    let existing = match flows.find_live(key, hash, now_s) {
        Ok(hit) => {
            let (id, slot, state) = (hit.id, hit.rs_slot, hit.state);
            if state != r.state {
                flows.set_hit_state(&hit, r.state);
            }
            flows.touch_hit_time(&hit, now_s);
            Some((id, slot, state))
        }
        Err(Miss::Expired(id)) => {
            flows.remove(id, on_evict);
            None
        }
        Err(Miss::Absent) => None,
    };
    match existing {
        Some((id, slot, state)) => {
            if slot != NO_SLOT {
                gauge_sub(cells, slot, state);
            }
            flows.set_server(id, rs.slot, rs.id);
            gauge_add(cells, rs.slot, r.state);
            true
        }
        None => match flows.insert_words(key, hash, r.state, rs.slot, rs.id, now_s, on_evict) {
            Ok(_) => {
                gauge_add(cells, rs.slot, r.state);
                true
            }
            Err(_) => false,
        },
    }
}

fn gauge_add(cells: &[ServerCells], slot: u32, s: FlowState) {
    if let Some(c) = cells.get(slot as usize) {
        bump(
            if s.is_active() {
                &c.active
            } else {
                &c.inactive
            },
            1,
        );
    }
}

fn gauge_sub(cells: &[ServerCells], slot: u32, s: FlowState) {
    if let Some(c) = cells.get(slot as usize) {
        drop_by(
            if s.is_active() {
                &c.active
            } else {
                &c.inactive
            },
            1,
        );
    }
}

/// `rs_slot` of a flow that has no real server (being scheduled, or its server is gone).
const NO_SLOT: u32 = u32::MAX;

/// The real server (index into the service's `servers`) for a new connection to service
/// `svc_idx`. A persistent service first asks the shared template table for the client network
/// (`src & netmask`): a live template whose server still exists in the service is used, even if
/// that server is quiesced (weight 0), as IPVS does with `expire_quiescent_template=0`, and its
/// expiry is pushed forward. Otherwise the scheduler chooses, and a persistent service records
/// the choice as the client network's template (shared by every worker).
fn choose_server(
    sched: &mut crate::sched::Schedulers,
    shared: &Shared,
    wc: &WorkerCounters,
    snap: &Snapshot,
    svc_idx: usize,
    key: &FlowKey,
    now_s: u32,
) -> Option<usize> {
    let svc = snap.services.get(svc_idx)?;
    let n = svc.servers.len();
    let Some(timeout) = svc.persistent else {
        return sched
            .pick(snap, svc_idx, key, &shared.stats, now_s)
            .filter(|&i| i < n);
    };
    let net = key.src & svc.netmask;
    let expires = now_s.wrapping_add(timeout);
    let resolve = |t: &Template| {
        snap.server_by_slot(t.rs_slot)
            .filter(|r| r.id == t.rs_id && r.svc as usize == svc_idx && (r.rs as usize) < n)
            .map(|r| r.rs as usize)
    };
    let existing = shared.persist.lookup(svc.id, net, now_s);
    if let Some(ri) = existing.as_ref().and_then(resolve) {
        shared.persist.refresh(svc.id, net, expires);
        return Some(ri);
    }
    let ri = sched
        .pick(snap, svc_idx, key, &shared.stats, now_s)
        .filter(|&i| i < n)?;
    let rs = svc.servers.get(ri)?;
    match shared.persist.insert(
        svc.id,
        net,
        rs.slot,
        rs.id,
        now_s,
        expires,
        existing.is_some(),
    ) {
        Insert::Exists(t) => Some(resolve(&t).unwrap_or(ri)),
        Insert::Full => {
            bump(&wc.drops[DropReason::PersistTableFull.index()], 1);
            Some(ri)
        }
        Insert::Done | Insert::Busy => Some(ri),
    }
}

/// What [`new_flow`] works with: the worker's table and scheduler state, the shared state and
/// the snapshot being forwarded by.
struct NewFlow<'a> {
    flows: &'a mut FlowTable,
    sched: &'a mut crate::sched::Schedulers,
    shared: &'a Shared,
    wc: &'a WorkerCounters,
    snap: &'a Snapshot,
}

/// A packet of a flow not in the table: schedule it and store the flow; when the table has no
/// room (or `store` is false: a packet that may not create a flow, where the table has no
/// room for it), forward statelessly (counted). Returns the real server (index into the
/// service's servers) and whether a connection was recorded. Part of the out-of-line slow path
/// ([`Worker::ipv4_slow`]), inlined there.
#[inline(always)]
fn new_flow(
    cx: NewFlow<'_>,
    svc_idx: usize,
    key: KeyWords,
    hash: u32,
    tcp_flags: Option<l4::TcpFlags>,
    store: bool,
    now_s: u32,
) -> Result<(usize, bool), Verdict> {
    let NewFlow {
        flows,
        sched,
        shared,
        wc,
        snap,
    } = cx;
    let svc = snap
        .services
        .get(svc_idx)
        .ok_or(Verdict::Drop(DropReason::NoService))?;
    let cells = &wc.servers[..];
    let state = match tcp_flags {
        Some(f) => FlowState::tcp_initial(f),
        None => FlowState::Udp,
    };
    let on_evict = |e: &Entry| gauge_sub(cells, e.rs_slot, e.state());
    let inserted = if store {
        flows.insert_words(key, hash, state, NO_SLOT, 0, now_s, on_evict)
    } else {
        Err(crate::flow::Full)
    };
    match inserted {
        Ok(id) => {
            let Some(ri) = choose_server(sched, shared, wc, snap, svc_idx, &key.key(), now_s)
            else {
                flows.remove(id, |_| ());
                wc.flows.store(flows.len() as u64, Relaxed);
                return Err(Verdict::Drop(DropReason::NoServer));
            };
            let rs = svc
                .servers
                .get(ri)
                .ok_or(Verdict::Drop(DropReason::NoServer))?;
            flows.set_server(id, rs.slot, rs.id);
            gauge_add(cells, rs.slot, state);
            wc.flows.store(flows.len() as u64, Relaxed);
            Ok((ri, true))
        }
        Err(_) => {
            // Never evict live flows: forward this packet by a stateless choice (or the
            // client's persistence template) and count that the table is too small.
            bump(&wc.drops[DropReason::FlowTableFull.index()], 1);
            let pick = match svc.persistent {
                Some(_) => choose_server(sched, shared, wc, snap, svc_idx, &key.key(), now_s),
                None => stateless_pick(svc, hash),
            };
            pick.map(|ri| (ri, false))
                .ok_or(Verdict::Drop(DropReason::NoServer))
        }
    }
}

/// Whether `src` (host order) cannot be a client's address: 0.0.0.0/8 ("this network"),
/// 127.0.0.0/8 (loopback), 224.0.0.0/4 (multicast), 240.0.0.0/4 (reserved, with the limited
/// broadcast 255.255.255.255), or the director's own address `dip`. (VIPs are checked
/// against the snapshot.)
#[inline(always)]
fn is_martian(src: u32, dip: u32) -> bool {
    let top = src >> 24;
    top == 0 || top == 127 || top >= 224 || src == dip
}

/// Stateless choice among the servers with weight > 0 (used when the flow table is full).
fn stateless_pick(svc: &Service, hash: u32) -> Option<usize> {
    let n = svc.usable.len();
    if n == 0 {
        return None;
    }
    // The hash scaled to 0..n (multiply and shift: no division per refused flow).
    let i = (u64::from(hash) * n as u64) >> 32;
    svc.usable.get(i as usize).map(|&i| i as usize)
}

/// The last step of forwarding: the real server's MAC (neighbour slot `neigh_slot`) as
/// destination and ours as source (direct routing: the L3/L4 bytes are untouched), and the
/// packet counted on its service (`svc_slot`) and real server (`rs_slot`). The worker counts
/// the frame as forwarded from the verdict.
#[inline(always)]
fn emit(
    frame: &mut [u8],
    neigh: &NeighTable,
    wc: &WorkerCounters,
    src: SrcMac,
    neigh_slot: usize,
    svc_slot: u32,
    rs_slot: u32,
) -> Verdict {
    let Some(mac) = neigh.mac_word(neigh_slot) else {
        return Verdict::Drop(DropReason::NeighUnresolved);
    };
    let len = frame.len() as u64;
    // Bytes 0..8: the destination MAC and the first two bytes of ours; 8..12: the rest of ours.
    if let Some(macs) = frame.get_mut(..12) {
        let (head, tail) = macs.split_at_mut(8);
        head.copy_from_slice(&(mac | src.head).to_le_bytes());
        tail.copy_from_slice(&src.tail);
    }
    if let Some(c) = wc.services.get(svc_slot as usize) {
        bump(&c.packets, 1);
        bump(&c.bytes, len);
    }
    if let Some(c) = wc.servers.get(rs_slot as usize) {
        bump(&c.counters.packets, 1);
        bump(&c.counters.bytes, len);
    }
    Verdict::Forward
}

/// The port's MAC as [`emit`] writes it into a frame's source address: its first two bytes as
/// the top of the frame's first little-endian word, the other four as bytes 8..12.
#[derive(Debug, Clone, Copy)]
struct SrcMac {
    head: u64,
    tail: [u8; 4],
}

impl SrcMac {
    fn new(mac: [u8; 6]) -> Self {
        let [a, b, c, d, e, f] = mac;
        SrcMac {
            head: u64::from_le_bytes([0, 0, 0, 0, 0, 0, a, b]),
            tail: [c, d, e, f],
        }
    }
}

/// What the forwarding decision needs from an IPv4 TCP or UDP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct L4Flow {
    /// The 5-tuple as the flow table's words ([`KeyWords::key`] decodes it).
    key: KeyWords,
    /// [`TCP`](Self::TCP) | the TCP flags for TCP, 0 for UDP (one plain integer: built and
    /// stored with one write, where an `Option` is written as two bytes and read back as one
    /// word, which stalls the store-to-load forwarding of every staged frame).
    tcp: u16,
}

impl L4Flow {
    /// Marks [`tcp`](Self::tcp) as TCP.
    const TCP: u16 = 0x100;

    /// The TCP flags; `None` for UDP.
    #[inline(always)]
    fn tcp_flags(&self) -> Option<l4::TcpFlags> {
        (self.tcp & Self::TCP != 0).then_some(l4::TcpFlags(self.tcp as u8))
    }
}

/// Parse the IPv4 packet after the Ethernet header of `frame` down to its ports, with the
/// checks of [`crate::wire::ipv4::Packet::new_checked`] (header and total length inside the frame; padding
/// after it allowed), no fragment, and a whole TCP or UDP header inside the total length; the
/// reason of the first check that fails otherwise. The fixed part of the header is read as one
/// array, so the common frame costs a handful of bounds checks.
#[inline(always)]
fn parse_l4(frame: &[u8], csum: RxCsum) -> Result<L4Flow, DropReason> {
    match parse_l4_plain(frame, csum) {
        Some(flow) => Ok(flow),
        None => parse_l4_any(frame, csum),
    }
}

/// Whether the 20 bytes of an IPv4 header without options (checksum field included) are whole:
/// their 16-bit words sum to 0xffff in ones' complement (RFC 1071), as
/// [`ipv4::Packet::verify_checksum`] checks any header, here for the hot path.
///
/// Computed without folding: the ones' complement sum of words is their plain sum reduced
/// modulo 65535 (2^16 = 1 mod 65535, which is the end-around carry), so it is 0xffff exactly
/// when the plain sum, non-zero, is a multiple of 65535. That holds for wider words too (2^32
/// and 2^64 are 1 modulo 65535) and whatever the byte order the words are read in (a
/// byte-swapped word is 256 times the word, modulo 65535, and 256 is invertible). So: two
/// 64-bit words and a 32-bit one, the carry out of 64 bits added back, and a divisibility test
/// by a constant (a multiplication and a compare).
#[inline(always)]
fn ip_header20_sum_ok(h: &[u8; 20]) -> bool {
    // (Constant ranges of an array: the conversions cannot fail and compile to plain loads.)
    let a = u64::from_ne_bytes(h[..8].try_into().unwrap_or([0; 8]));
    let b = u64::from_ne_bytes(h[8..16].try_into().unwrap_or([0; 8]));
    let c = u32::from_ne_bytes(h[16..].try_into().unwrap_or([0; 4]));
    let s = u128::from(a) + u128::from(b) + u128::from(c);
    // The carry out of 64 bits (at most 2) added back: that cannot carry again.
    let sum = (s as u64).wrapping_add((s >> 64) as u64);
    sum != 0 && sum % 0xffff == 0
}

/// Bytes of an Ethernet frame up to the TCP flags of an IPv4 header without options.
const PLAIN_TCP_LEN: usize = ethernet::HEADER_LEN + 20 + 14;

/// [`parse_l4`] for the common frame, read as one fixed array: IPv4 without options (IHL 5),
/// TCP or UDP, at least [`PLAIN_TCP_LEN`] bytes long, every check passed. `None` for anything
/// else, which [`parse_l4_any`] decides (it takes the same decision on these frames).
#[inline(always)]
fn parse_l4_plain(frame: &[u8], csum: RxCsum) -> Option<L4Flow> {
    const ETH: usize = ethernet::HEADER_LEN;
    let h: &[u8; PLAIN_TCP_LEN] = frame.get(..PLAIN_TCP_LEN)?.try_into().ok()?;
    let len = frame.len() - ETH;
    let tl = usize::from(u16::from_be_bytes([h[ETH + 2], h[ETH + 3]]));
    // Version 4, IHL 5; no fragment (flags and offset as in `parse_l4_any`).
    if h[ETH] != 0x45 || tl > len || u16::from_be_bytes([h[ETH + 6], h[ETH + 7]]) & 0x3fff != 0 {
        return None;
    }
    // The header checksum, unless the NIC checked it (a bad one is named by `parse_l4_any`).
    if csum != RxCsum::Good {
        let ip: &[u8; 20] = h[ETH..ETH + 20].try_into().ok()?;
        if csum == RxCsum::Bad || !ip_header20_sum_ok(ip) {
            return None;
        }
    }
    let (header, tcp) = match h[ETH + 9] {
        6 => (
            l4::TCP_HEADER_LEN,
            L4Flow::TCP | u16::from(h[ETH + 20 + 13]),
        ),
        17 => (l4::UDP_HEADER_LEN, 0),
        _ => return None,
    };
    if tl < 20 + header {
        return None;
    }
    Some(L4Flow {
        key: KeyWords::from_wire(
            [
                h[ETH + 12],
                h[ETH + 13],
                h[ETH + 14],
                h[ETH + 15],
                h[ETH + 16],
                h[ETH + 17],
                h[ETH + 18],
                h[ETH + 19],
            ],
            [h[ETH + 20], h[ETH + 21], h[ETH + 22], h[ETH + 23]],
            h[ETH + 9],
        ),
        tcp,
    })
}

/// [`parse_l4`] for any frame.
#[inline(never)]
fn parse_l4_any(frame: &[u8], csum: RxCsum) -> Result<L4Flow, DropReason> {
    const ETH: usize = ethernet::HEADER_LEN;
    let ip: &[u8; 20] = frame
        .get(ETH..ETH + 20)
        .and_then(|h| h.try_into().ok())
        .ok_or(DropReason::ShortIp)?;
    let len = frame.len() - ETH;
    if ip[0] >> 4 != 4 {
        return Err(DropReason::BadIpVersion);
    }
    let hl = usize::from(ip[0] & 0x0f) * 4;
    if hl < 20 || hl > len {
        return Err(DropReason::BadIhl);
    }
    let sum_ok = match csum {
        RxCsum::Good => true,
        RxCsum::Bad => false,
        // The header is inside the frame (IHL checked above).
        RxCsum::Unknown => frame
            .get(ETH..)
            .is_some_and(|ip| ipv4::Packet::new_unchecked(ip).verify_checksum()),
    };
    if !sum_ok {
        return Err(DropReason::BadIpChecksum);
    }
    let tl = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if tl < hl || tl > len {
        return Err(DropReason::BadTotalLen);
    }
    // More-fragments flag or a fragment offset: no (or a partial) transport header.
    if u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0 {
        return Err(DropReason::IpFragment);
    }
    let proto = ip[9];
    let header = match proto {
        6 => l4::TCP_HEADER_LEN,
        17 => l4::UDP_HEADER_LEN,
        _ => return Err(DropReason::NotTcpUdp),
    };
    if tl - hl < header {
        return Err(DropReason::ShortL4);
    }
    let at = ETH + hl;
    let ports: &[u8; 4] = frame
        .get(at..at + 4)
        .and_then(|p| p.try_into().ok())
        .ok_or(DropReason::ShortL4)?;
    let tcp = match proto {
        6 => L4Flow::TCP | u16::from(frame.get(at + 13).copied().ok_or(DropReason::ShortL4)?),
        _ => 0,
    };
    Ok(L4Flow {
        key: KeyWords::from_wire(
            [
                ip[12], ip[13], ip[14], ip[15], ip[16], ip[17], ip[18], ip[19],
            ],
            *ports,
            proto,
        ),
        tcp,
    })
}

/// Put the 802.1Q tag `tag` (a [`VlanId::tag_word`]; 0: none, the frame is left as it is)
/// after the MACs of the untagged frame in `buf`, which holds at most 60 bytes of it (the ARP
/// frames housekeeping writes): the rest moves four bytes on.
fn insert_tag(buf: &mut [u8; 64], tag: u32) {
    if tag == 0 {
        return;
    }
    buf.copy_within(12..64 - VLAN_TAG_LEN, 12 + VLAN_TAG_LEN);
    buf[12..12 + VLAN_TAG_LEN].copy_from_slice(&tag.to_be_bytes());
}

/// The 48 bits of a MAC address in a little-endian word.
const MAC_BITS: u64 = 0xffff_ffff_ffff;

/// Frames [`Worker::process_burst`] stages at once (engine bursts are 32 frames; a longer
/// burst is decided in chunks of this many).
pub const BURST_CHUNK: usize = 32;

/// The frames of one burst, as [`Worker::process_burst`] decides them: the engine's mbuf burst,
/// or byte buffers in tests and benches. Slot `i` must show the same bytes through
/// [`frame`](Self::frame) and [`frame_mut`](Self::frame_mut) (the parse of the one is used to
/// decide the other); `None` is an empty slot (a frame already freed).
pub trait Frames {
    /// Number of slots.
    fn count(&self) -> usize;
    /// The bytes of the frame in slot `i`.
    fn frame(&self, i: usize) -> Option<&[u8]>;
    /// The bytes of the frame in slot `i`, to rewrite in place.
    fn frame_mut(&mut self, i: usize) -> Option<&mut [u8]>;
    /// What the NIC said of slot `i`'s IPv4 header checksum ([`RxCsum::Unknown`]: checked in
    /// software).
    #[inline(always)]
    fn ip_csum(&self, _i: usize) -> RxCsum {
        RxCsum::Unknown
    }
}

/// Byte buffers as a burst: `Vec<Vec<u8>>`, arrays of frames, slices of `&mut [u8]`.
impl<T: AsRef<[u8]> + AsMut<[u8]>> Frames for [T] {
    fn count(&self) -> usize {
        self.len()
    }
    fn frame(&self, i: usize) -> Option<&[u8]> {
        self.get(i).map(|f| f.as_ref())
    }
    fn frame_mut(&mut self, i: usize) -> Option<&mut [u8]> {
        self.get_mut(i).map(|f| f.as_mut())
    }
}

/// A frame's parse and flow-table buckets, from the staging pass of [`Worker::process_burst`] to its
/// decision.
#[derive(Debug, Clone, Copy)]
struct Staged {
    flow: L4Flow,
    /// Its two flow-table buckets (asked for already).
    at: Buckets,
}

/// The flow of an Ethernet/IPv4 TCP or UDP frame, for [`Worker::process_burst`] and
/// [`Worker::prefetch`]; `None` for anything else or a frame `process` would drop as malformed.
#[inline]
fn staged_flow(frame: &[u8], csum: RxCsum) -> Option<L4Flow> {
    match frame.get(12..14)? {
        [0x08, 0x00] => parse_l4_plain(frame, csum).or_else(|| parse_l4_any(frame, csum).ok()),
        _ => None,
    }
}

/// [`staged_flow`] for a worker on a VLAN: the flow of an Ethernet frame tagged `tag` (a
/// [`VlanId::tag_word`]; any priority and DEI) carrying IPv4 TCP or UDP, parsed as the
/// untagged frame the tag's four bytes hide (the parse reads nothing before the IPv4 header
/// but the frame's length); `None` for anything else.
#[inline(always)]
fn staged_flow_tagged(frame: &[u8], csum: RxCsum, tag: u32) -> Option<L4Flow> {
    let h: &[u8; 6] = frame.get(12..18)?.try_into().ok()?;
    if u32::from_be_bytes([h[0], h[1], h[2], h[3]]) & TAG_MATCH_MASK != tag
        || [h[4], h[5]] != [0x08, 0x00]
    {
        return None;
    }
    let inner = frame.get(VLAN_TAG_LEN..)?;
    parse_l4_plain(inner, csum).or_else(|| parse_l4_any(inner, csum).ok())
}

/// The flow key of an Ethernet/IPv4 TCP or UDP frame, as [`Worker::prefetch`] reads it.
#[cfg(test)]
fn prefetch_key(frame: &[u8]) -> Option<FlowKey> {
    staged_flow(frame, RxCsum::Unknown).map(|p| p.key.key())
}

impl Worker {
    /// Build worker `cfg.worker` over `shared`; every table is allocated here.
    ///
    /// # Panics
    /// If `cfg.worker` is not below the worker count given to [`Shared::new`] (a start-up
    /// configuration error: two workers must never share counters).
    pub fn new(cfg: WorkerConfig, shared: Arc<Shared>) -> Self {
        let id = cfg.worker as usize;
        assert!(
            id < shared.workers(),
            "worker {id} out of range ({} workers)",
            shared.workers()
        );
        let snap = shared.load();
        shared.mark_seen(id, snap.epoch);
        let seed = {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_usize(id);
            h.finish()
        };
        let flows = FlowTable::new(cfg.flow_capacity, snap.timeouts, seed);
        let shared_vlan_tag = shared.vlan().map_or(0, VlanId::tag_word);
        shared.register_flows(id, flows.store());
        // A full sweep about every two seconds at one call per millisecond.
        let expire_per_call = (flows.buckets() / 2048).max(8);
        let sync = shared.sync().cloned();
        let mut sched = crate::sched::Schedulers::new(shared.max_services(), shared.max_servers());
        sched.sync_epoch(snap.epoch);
        let wc = shared
            .stats
            .worker_handle(id)
            .expect("worker id checked against the registry above");
        let mut w = Worker {
            id,
            wc,
            src_mac: SrcMac::new(shared.port_mac()),
            port_mac: shared.port_mac(),
            // As [`Worker::accepts_word`] reads a frame's destination.
            port_mac_word: ethernet::MacAddr(shared.port_mac()).word(),
            dip: u32::from(shared.dip()),
            shared,
            snap,
            flows,
            sched,
            is_arp: cfg.is_arp_worker,
            expire_per_call,
            garp_pending: Vec::new(),
            req_buf: vec![0; REQUESTS_PER_ROUND].into_boxed_slice(),
            last_scan_ms: None,
            kernel: Bucket::default(),
            now_ms: 0,
            sync,
            dump_gen: 0,
            dump_cursor: 0,
            vlan_tag: shared_vlan_tag,
        };
        if w.is_arp {
            w.garp_pending = Vec::with_capacity(w.shared.max_services().max(1));
            let vips = w.snap.vips.clone();
            for v in vips {
                w.queue_garp(v);
            }
        }
        w
    }

    /// Turn the kernel path on for this worker: frames for the director that rvs does not
    /// handle itself get [`Verdict::Kernel`], within `k`'s rate (see the module docs). Without
    /// it they are dropped as before (`no_service`, `not_tcp_udp`, `ip_fragment`) and ARP
    /// replies are only learned from.
    pub fn with_kernel_path(mut self, k: KernelPath) -> Self {
        self.kernel = Bucket::new(k);
        self
    }

    /// Whether the kernel path is on.
    pub fn kernel_path(&self) -> bool {
        self.kernel.on
    }

    fn queue_garp(&mut self, vip: u32) {
        if self.garp_pending.len() < self.garp_pending.capacity()
            && !self.garp_pending.contains(&vip)
        {
            self.garp_pending.push(vip);
        }
    }

    /// The snapshot this worker currently forwards by.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snap
    }

    /// Flows in this worker's table.
    pub fn flow_count(&self) -> usize {
        self.flows.len()
    }

    /// Called between bursts: pick up a newer snapshot (an `Arc` clone, no allocation) and
    /// record the epoch seen. The ARP worker queues one gratuitous ARP per new VIP.
    pub fn refresh(&mut self) {
        if self.shared.epoch() == self.snap.epoch {
            return;
        }
        let new = self.shared.load();
        if self.is_arp {
            for i in 0..new.vips.len() {
                let v = new.vips[i];
                if !self.snap.owns(v) {
                    self.queue_garp(v);
                }
            }
        }
        // The replaced snapshot is still held by the control thread's retire list, so this drop
        // never frees it here.
        self.snap = new;
        self.flows.set_timeouts(self.snap.timeouts);
        self.sched.sync_epoch(self.snap.epoch);
        self.shared.mark_seen(self.id, self.snap.epoch);
    }

    /// Count a frame the engine could not transmit (or dropped for its own reason).
    pub fn count_drop(&mut self, reason: DropReason, n: u64) {
        bump(&self.wc.drops[reason.index()], n);
    }

    pub fn count_rx(&mut self, n: u64) {
        bump(&self.wc.rx, n);
    }

    pub fn count_tx(&mut self, n: u64) {
        bump(&self.wc.tx, n);
    }

    /// `n` frames given [`Verdict::Kernel`] did not fit the queue to the kernel-path thread
    /// (and were freed): counted as `exception_full` instead of `to_kernel`.
    pub fn count_kernel_full(&mut self, n: u64) {
        drop_by(&self.wc.to_kernel, n);
        bump(&self.wc.drops[DropReason::ExceptionFull.index()], n);
    }

    /// Start loading the flow-table lines that [`process`](Self::process) will look up for
    /// `frame`, without changing anything: a hint for callers that decide frames one at a time
    /// ([`process_burst`](Self::process_burst) does this itself, a few frames ahead). Frames
    /// that are not IPv4 TCP/UDP are ignored; a malformed frame at worst prefetches a useless
    /// line. Never panics, whatever the bytes.
    #[inline]
    pub fn prefetch(&self, frame: &[u8]) {
        let flow = if self.vlan_tag == 0 {
            staged_flow(frame, RxCsum::Unknown)
        } else {
            staged_flow_tagged(frame, RxCsum::Unknown, self.vlan_tag)
        };
        if let Some(flow) = flow {
            self.flows.prefetch(self.flows.hash_words(flow.key));
        }
    }

    /// Decide the frames of a burst in place, as [`process`](Self::process) one after the
    /// other would (same verdicts, same bytes, same counters): `verdicts[i]` for slot `i`, for
    /// the first `verdicts.len()` slots at most; an empty slot gets [`Verdict::Consumed`]
    /// (nothing to send nor free) and is not counted. Each frame is parsed and hashed once, and
    /// its flow-table lines are asked for [`PREFETCH_AHEAD`] frames before it is decided, so
    /// the memory accesses of a burst overlap. Never panics, whatever the bytes.
    pub fn process_burst<F: Frames + ?Sized>(
        &mut self,
        frames: &mut F,
        verdicts: &mut [Verdict],
        now_ms: u64,
    ) {
        let n = frames.count().min(verdicts.len());
        self.now_ms = now_ms;
        let mut base = 0;
        // On a VLAN, frames of its tag are staged (the untagged path stays as it is without
        // one: one test per chunk).
        let tagged = self.vlan_tag != 0;
        while base < n {
            let m = (n - base).min(BURST_CHUNK);
            let v = &mut verdicts[base..base + m];
            if tagged {
                self.process_chunk::<true, F>(frames, base, v, now_ms);
            } else {
                self.process_chunk::<false, F>(frames, base, v, now_ms);
            }
            base += m;
        }
    }

    /// [`process_burst`](Self::process_burst) for slots `base..base + verdicts.len()` (at
    /// most [`BURST_CHUNK`]). `TAGGED`: the worker is on a VLAN, and the frames staged are
    /// those of its tag (else untagged ones).
    #[inline(always)]
    fn process_chunk<const TAGGED: bool, F: Frames + ?Sized>(
        &mut self,
        frames: &mut F,
        base: usize,
        verdicts: &mut [Verdict],
        now_ms: u64,
    ) {
        let mut staged: [Option<Staged>; BURST_CHUNK] = [None; BURST_CHUNK];
        let now_s = (now_ms / 1000) as u32;
        let m = verdicts.len().min(BURST_CHUNK);
        let mut forwarded = 0;
        // Plain index loops (every index is below `m` <= BURST_CHUNK, masked where the compiler
        // could not tell): iterator adapters here cost a dozen instructions per frame.
        for i in 0..m.min(PREFETCH_AHEAD) {
            staged[i & (BURST_CHUNK - 1)] =
                self.stage::<TAGGED>(frames.frame(base + i), frames.ip_csum(base + i));
        }
        for i in 0..m {
            let ahead = i + PREFETCH_AHEAD;
            if ahead < m {
                staged[ahead & (BURST_CHUNK - 1)] =
                    self.stage::<TAGGED>(frames.frame(base + ahead), frames.ip_csum(base + ahead));
            }
            let csum = frames.ip_csum(base + i);
            let v = match frames.frame_mut(base + i) {
                None => Verdict::Consumed,
                // A staged frame is Ethernet/IPv4 TCP or UDP that parsed (tagged with our VLAN
                // when on one): of `classify`'s checks only the destination MAC is left.
                Some(frame) => match staged[i & (BURST_CHUNK - 1)] {
                    Some(Staged { flow, at }) => {
                        match frame.get(..8).and_then(|d| <[u8; 8]>::try_from(d).ok()) {
                            Some(head) if self.accepts_word(u64::from_le_bytes(head)) => {
                                self.ipv4_parsed(frame, flow, at, now_s)
                            }
                            _ => Verdict::Drop(DropReason::NotOurMac),
                        }
                    }
                    None => self.classify(frame, csum, now_ms),
                },
            };
            self.count_verdict(v);
            forwarded += u64::from(v == Verdict::Forward);
            if let Some(slot) = verdicts.get_mut(i) {
                *slot = v;
            }
        }
        bump(&self.wc.forwarded, forwarded);
    }

    /// Parse and hash `frame` and ask for its flow-table lines; `None` for a frame that is not
    /// Ethernet/IPv4 TCP or UDP or would be dropped as malformed (decided from scratch).
    /// `TAGGED`: only frames tagged with the worker's VLAN are staged.
    #[inline(always)]
    fn stage<const TAGGED: bool>(&self, frame: Option<&[u8]>, csum: RxCsum) -> Option<Staged> {
        let flow = if TAGGED {
            staged_flow_tagged(frame?, csum, self.vlan_tag)?
        } else {
            staged_flow(frame?, csum)?
        };
        let at = self.flows.buckets_of(self.flows.hash_words(flow.key));
        self.flows.prefetch_at(at);
        Some(Staged { flow, at })
    }

    /// Process one frame in place. The flow table hashes with its own per-worker seed (the
    /// NIC's RSS hash is not needed). `now_ms` is the engine's monotonic clock in milliseconds
    /// (the same base for every call).
    pub fn process(&mut self, frame: &mut [u8], now_ms: u64) -> Verdict {
        self.now_ms = now_ms;
        let v = self.classify(frame, RxCsum::Unknown, now_ms);
        self.count_verdict(v);
        if v == Verdict::Forward {
            bump(&self.wc.forwarded, 1);
        }
        v
    }

    /// Count a verdict on this worker, but for [`Verdict::Forward`] (the caller counts those
    /// in `forwarded`, once per call) and [`Verdict::Kernel`] (counted where it is given).
    #[inline]
    fn count_verdict(&self, v: Verdict) {
        match v {
            Verdict::Forward | Verdict::Consumed | Verdict::Kernel => {}
            Verdict::Drop(r) => {
                bump(&self.wc.drops[r.index()], 1);
            }
            Verdict::Reply => {
                bump(&self.wc.arp_replies, 1);
            }
        }
    }

    /// Whether a frame to `dst` is for this port: ours or a group address.
    #[inline(always)]
    fn accepts(&self, dst: &[u8; 6]) -> bool {
        ethernet::is_group(dst) || *dst == self.port_mac
    }

    /// [`accepts`](Self::accepts) for the first 8 bytes of a frame read as a little-endian
    /// word (the destination MAC is its low 48 bits; the group bit is bit 0).
    #[inline(always)]
    fn accepts_word(&self, head: u64) -> bool {
        let dst = head & MAC_BITS;
        dst & 1 == 1 || dst == self.port_mac_word
    }

    #[inline]
    fn classify(&mut self, frame: &mut [u8], csum: RxCsum, now_ms: u64) -> Verdict {
        let Some(eth) = frame
            .get(..ethernet::HEADER_LEN)
            .and_then(|h| <&[u8; ethernet::HEADER_LEN]>::try_from(h).ok())
        else {
            return Verdict::Drop(DropReason::ShortFrame);
        };
        let dst = [eth[0], eth[1], eth[2], eth[3], eth[4], eth[5]];
        if !self.accepts(&dst) {
            return Verdict::Drop(DropReason::NotOurMac);
        }
        if self.vlan_tag != 0 {
            return self.classify_on_vlan(frame, csum, now_ms);
        }
        match ethernet::EtherType::from(u16::from_be_bytes([eth[12], eth[13]])) {
            ethernet::EtherType::Ipv4 => self.ipv4(frame, csum, now_ms),
            ethernet::EtherType::Arp => self.arp(frame, ethernet::HEADER_LEN, now_ms),
            ethernet::EtherType::Vlan | ethernet::EtherType::QinQ => {
                Verdict::Drop(DropReason::Vlan)
            }
            ethernet::EtherType::Ipv6 => Verdict::Drop(DropReason::Ipv6),
            ethernet::EtherType::Unknown(_) => Verdict::Drop(DropReason::NotIpv4OrArp),
        }
    }

    /// [`classify`](Self::classify) on a worker with a VLAN, once the destination MAC is ours
    /// (the frame holds an Ethernet header): frames tagged with the VLAN are decided as the
    /// untagged frames of a worker without one, the tag kept (forwarded, answered or handed to
    /// the kernel as it came); everything else is counted and dropped. See `docs/vlan.md`.
    #[inline(never)]
    fn classify_on_vlan(&mut self, frame: &mut [u8], csum: RxCsum, now_ms: u64) -> Verdict {
        const TAGGED_HEADER_LEN: usize = ethernet::HEADER_LEN + VLAN_TAG_LEN;
        match frame.get(12..14) {
            Some([0x81, 0x00]) => {}
            // An 802.1ad service tag: a provider's double-tagged frame.
            Some([0x88, 0xa8]) => return Verdict::Drop(DropReason::VlanQinq),
            _ => return Verdict::Drop(DropReason::VlanUntagged),
        }
        let Some(&[t0, t1, t2, t3, e0, e1]) = frame
            .get(12..TAGGED_HEADER_LEN)
            .and_then(|h| <&[u8; 6]>::try_from(h).ok())
        else {
            // The tag, or the EtherType after it, cut off.
            return Verdict::Drop(DropReason::ShortFrame);
        };
        let word = u32::from_be_bytes([t0, t1, t2, t3]) & TAG_MATCH_MASK;
        if word != self.vlan_tag {
            // VLAN id 0: a priority tag only, the frame is of the port's native VLAN.
            return Verdict::Drop(if word & 0x0fff == 0 {
                DropReason::VlanUntagged
            } else {
                DropReason::VlanOther
            });
        }
        match ethernet::EtherType::from(u16::from_be_bytes([e0, e1])) {
            ethernet::EtherType::Ipv4 => {
                // The IPv4 packet parsed as if the tag were not there; the decision (and the
                // rewrite of the MACs) on the whole frame.
                let parsed = match frame.get(VLAN_TAG_LEN..) {
                    Some(inner) => parse_l4(inner, csum),
                    None => Err(DropReason::ShortIp),
                };
                match parsed {
                    Ok(flow) => {
                        let at = self.flows.buckets_of(self.flows.hash_words(flow.key));
                        self.ipv4_parsed(frame, flow, at, (now_ms / 1000) as u32)
                    }
                    Err(r) => self.ipv4_refused(frame.get(VLAN_TAG_LEN..).unwrap_or(&[]), r),
                }
            }
            ethernet::EtherType::Arp => self.arp(frame, TAGGED_HEADER_LEN, now_ms),
            ethernet::EtherType::Vlan | ethernet::EtherType::QinQ => {
                Verdict::Drop(DropReason::VlanQinq)
            }
            ethernet::EtherType::Ipv6 => Verdict::Drop(DropReason::Ipv6),
            ethernet::EtherType::Unknown(_) => Verdict::Drop(DropReason::NotIpv4OrArp),
        }
    }

    /// An ARP frame whose ARP packet starts at byte `l2` (after the Ethernet header, and the
    /// VLAN tag if any: a reply keeps it).
    fn arp(&mut self, frame: &mut [u8], l2: usize, now_ms: u64) -> Verdict {
        let payload = frame.get(l2..).unwrap_or(&[]);
        let Ok(a) = arp::Packet::new_checked(payload) else {
            return Verdict::Drop(DropReason::ArpMalformed);
        };
        let op = a.operation();
        let sha = a.source_hardware_addr();
        let spa = a.source_protocol_addr();
        let tpa = a.target_protocol_addr();
        let t = u32::from(tpa);

        // Learn only for addresses we already track (real servers), never creating entries,
        // and only what the neighbour table allows: an answer to our own request resolves or
        // refreshes; a claimed change is refused and checked first (see `neigh`).
        let mut learned = None;
        // A reply to the DIP at our MAC: an answer to our requests, or to the kernel's.
        let to_us = op == arp::Operation::Reply
            && t == self.dip
            && a.target_hardware_addr() == self.port_mac;
        if matches!(op, arp::Operation::Request | arp::Operation::Reply) {
            if let Some(slot) = self.shared.neigh.find(spa) {
                learned = Some(self.shared.neigh.learn(slot, sha, to_us, now_ms));
            }
        }

        // RFC 826: "?Is the opcode ares_op$REQUEST? Yes: swap hardware and protocol fields,
        // putting the local hardware and protocol addresses in the sender fields; set the
        // ar$op field to ares_op$REPLY; send the packet to the (new) target hardware address".
        // Gratuitous requests (sender = target) are announcements, not questions.
        let ours = t == self.dip || self.snap.owns(t);
        if op == arp::Operation::Request && ours && spa != tpa && !ethernet::is_group(&sha) {
            let mut eth = ethernet::Frame::new_unchecked(&mut *frame);
            eth.set_dst_addr(sha);
            eth.set_src_addr(self.port_mac);
            let mut r = arp::Packet::new_unchecked(frame.get_mut(l2..).unwrap_or(&mut []));
            r.set_operation(arp::Operation::Reply);
            r.set_target_hardware_addr(sha);
            r.set_target_protocol_addr(spa);
            r.set_source_hardware_addr(self.port_mac);
            r.set_source_protocol_addr(tpa);
            return Verdict::Reply;
        }
        match learned {
            Some(Learned::Refused(_)) => Verdict::Drop(DropReason::ArpRefused),
            // The kernel's neighbour resolution needs the replies too (after ours learned).
            _ if to_us && self.kernel.on => kernel_verdict(&mut self.kernel, &self.wc, now_ms),
            None => Verdict::Drop(DropReason::ArpNotForUs),
            Some(_) => Verdict::Consumed,
        }
    }

    /// An IPv4 frame: a packet of a live flow whose server is still in the snapshot takes the
    /// hit path (the common case: one flow lookup, one record of the snapshot, no service
    /// lookup), everything else [`ipv4_slow`](Self::ipv4_slow).
    #[inline(always)]
    fn ipv4(&mut self, frame: &mut [u8], csum: RxCsum, now_ms: u64) -> Verdict {
        match parse_l4(frame, csum) {
            Ok(flow) => {
                let at = self.flows.buckets_of(self.flows.hash_words(flow.key));
                self.ipv4_parsed(frame, flow, at, (now_ms / 1000) as u32)
            }
            Err(r) => self.ipv4_refused(frame, r),
        }
    }

    /// An IPv4 frame [`parse_l4`] refused for `r` (for a tagged frame: its bytes from the fifth
    /// on, the IPv4 header at [`ethernet::HEADER_LEN`] as in an untagged one): dropped, unless
    /// it is a well-formed packet the kernel should have (another protocol than TCP/UDP, or a
    /// fragment, to the DIP; or to a VIP with `vip_other_ports_to_kernel`) and the kernel path
    /// is on. Out of line: never on the forwarding path.
    #[cold]
    #[inline(never)]
    fn ipv4_refused(&mut self, frame: &[u8], r: DropReason) -> Verdict {
        // Only these come after every check of the header (version, IHL, checksum, length).
        if !self.kernel.on || !matches!(r, DropReason::IpFragment | DropReason::NotTcpUdp) {
            return Verdict::Drop(r);
        }
        const DST: usize = ethernet::HEADER_LEN + 16;
        let Some(dst) = frame
            .get(DST..DST + 4)
            .and_then(|d| <[u8; 4]>::try_from(d).ok())
        else {
            return Verdict::Drop(r);
        };
        let dst = u32::from_be_bytes(dst);
        // VRRP adverts (to the group, or unicast to us): the HA thread's, never rate limited,
        // so a flood to the DIP cannot make a backup miss its master's adverts.
        let proto = frame.get(ethernet::HEADER_LEN + 9).copied();
        if r == DropReason::NotTcpUdp
            && proto == Some(VRRP_PROTO)
            && (dst == VRRP_GROUP || dst == self.dip)
        {
            bump(&self.wc.to_kernel, 1);
            return Verdict::Kernel;
        }
        if dst == self.dip
            || is_local_multicast(dst)
            || (self.snap.vip_other_ports_to_kernel && self.snap.owns(dst))
        {
            kernel_verdict(&mut self.kernel, &self.wc, self.now_ms)
        } else {
            Verdict::Drop(r)
        }
    }

    /// [`ipv4`](Self::ipv4) once parsed (`at`: the flow's buckets in the table; `now_s` the
    /// clock in whole seconds).
    #[inline(always)]
    fn ipv4_parsed(&mut self, frame: &mut [u8], flow: L4Flow, at: Buckets, now_s: u32) -> Verdict {
        let absent = match self.flows.find_live_at(flow.key, at, now_s) {
            Ok(hit) => match self.snap.flow_server(hit.rs_slot, hit.rs_id) {
                Some(r) => return self.forward_hit(frame, &flow, &hit, r, now_s),
                None => false,
            },
            Err(Miss::Absent) => true,
            Err(Miss::Expired(_)) => false,
        };
        self.ipv4_slow(frame, &flow, now_s, absent)
    }

    /// Forward a packet of live flow `hit`, served by `r` (checked against the snapshot): as
    /// IPVS, a connection found is used whatever service its packets would match now; only
    /// its server must still exist.
    #[inline(always)]
    fn forward_hit(
        &self,
        frame: &mut [u8],
        flow: &L4Flow,
        hit: &Hit<'_>,
        r: &ServerRef,
        now_s: u32,
    ) -> Verdict {
        let new_state = match flow.tcp_flags() {
            Some(f) => self.flows.tcp_next(hit.state, f.0),
            None => FlowState::Udp,
        };
        let wc = &**self.wc;
        if new_state != hit.state {
            self.flows.set_hit_state(hit, new_state);
            if hit.state.is_active() != new_state.is_active() {
                gauge_sub(&wc.servers, hit.rs_slot, hit.state);
                gauge_add(&wc.servers, hit.rs_slot, new_state);
            }
            if self.sync.is_some() {
                self.sync_state_change(flow, new_state, r);
            }
        }
        self.flows.touch_hit_time(hit, now_s);
        if r.persistent {
            self.refresh_template(r, flow, now_s);
        }
        emit(
            frame,
            &self.shared.neigh,
            wc,
            self.src_mac,
            r.neigh as usize,
            r.svc_slot,
            hit.rs_slot,
        )
    }

    /// Connection sync: report a new flow or a state change (while this director is master of
    /// the sync instance; a full ring is a counted loss).
    #[cold]
    #[inline(never)]
    fn sync_report(&self, key: FlowKey, state: FlowState, svc: usize, rs: usize) {
        if let Some(s) = self.sync.as_deref().filter(|s| s.sending()) {
            if let Some(rec) = sync_record(&self.snap, key, state, svc, rs) {
                s.push_out(self.id, rec);
            }
        }
    }

    /// [`sync_report`](Self::sync_report) of a state change seen on the hit path (out of line:
    /// the hit path only tests that sync is on).
    #[cold]
    #[inline(never)]
    fn sync_state_change(&self, flow: &L4Flow, state: FlowState, r: &ServerRef) {
        self.sync_report(flow.key.key(), state, r.svc as usize, r.rs as usize);
    }

    /// A packet of a persistent service's flow keeps its client's template alive.
    #[inline(never)]
    fn refresh_template(&self, r: &ServerRef, flow: &L4Flow, now_s: u32) {
        if let Some(svc) = self.snap.services.get(r.svc as usize) {
            if let Some(t) = svc.persistent {
                self.shared.persist.refresh(
                    svc.id,
                    flow.key.key().src & svc.netmask,
                    now_s.wrapping_add(t),
                );
            }
        }
    }

    /// An IPv4 packet the hit path did not take: a new flow (scheduled), an expired one
    /// (reclaimed, then scheduled anew) or one whose real server was deleted. `absent`: the
    /// hit path saw no entry for the flow at all (none to look at again). Out of line, so the
    /// hit path keeps few registers.
    #[inline(never)]
    fn ipv4_slow(&mut self, frame: &mut [u8], flow: &L4Flow, now_s: u32, absent: bool) -> Verdict {
        let key = flow.key;
        // The director's own address, and UDP to link-local multicast (connection sync's group):
        // the kernel's (no flow is ever made for them).
        if self.kernel.on
            && (key.dst() == self.dip || (key.proto() == 17 && is_local_multicast(key.dst())))
        {
            return kernel_verdict(&mut self.kernel, &self.wc, self.now_ms);
        }
        // A VIP VRRP holds in standby: not ours to forward (its flows are kept).
        if self.snap.is_standby(key.dst()) {
            return Verdict::Drop(DropReason::NotMaster);
        }
        let hash = self.flows.hash_words(key);
        // Disjoint field borrows: counters (shared), flow table and scheduler (ours).
        let shared = &*self.shared;
        let wc: &WorkerCounters = &self.wc;
        let snap = &*self.snap;
        let cells = &wc.servers[..];
        let mut on_evict = |e: &Entry| gauge_sub(cells, e.rs_slot, e.state());
        let seen = if absent {
            Err(Miss::Absent)
        } else {
            self.flows.find_live(flow.key, hash, now_s)
        };
        match seen {
            Ok(hit) => {
                if let Some(r) = snap.flow_server(hit.rs_slot, hit.rs_id) {
                    // Live with its server: the hit path's case (the entry is unchanged since
                    // it looked, so this does not happen; handled all the same).
                    return self.forward_hit(frame, flow, &hit, r, now_s);
                }
                // Its real server was deleted (or its slot reused). IPVS expire_nodest_conn:
                // on, the flow expires now and this packet is scheduled anew (as kernels >=
                // 5.9 without conntrack do); off (the default), packets are dropped silently
                // until the flow times out (not refreshed by the dropped packets). Either way
                // a SYN without ACK is a new connection from a reused client port (IPVS
                // conn_reuse_mode): the old flow gives way and the SYN is scheduled.
                let new_syn = flow
                    .tcp_flags()
                    .is_some_and(|f| f.syn() && !f.ack() && !f.rst());
                if snap.expire_nodest_conn || new_syn {
                    self.flows.remove(hit.id, &mut on_evict);
                } else {
                    // A server a health check took down keeps its slot: its flows stay
                    // attached and resume when it is up again.
                    if hit.rs_slot != NO_SLOT && !snap.is_parked(hit.rs_slot, hit.rs_id) {
                        // Stop counting it on the slot: a new server may take the slot over.
                        gauge_sub(cells, hit.rs_slot, hit.state);
                        self.flows.set_server(hit.id, NO_SLOT, hit.rs_id);
                    }
                    return Verdict::Drop(DropReason::NoDest);
                }
            }
            // Reclaim the expired entry before the flow is scheduled anew.
            Err(Miss::Expired(id)) => self.flows.remove(id, &mut on_evict),
            Err(Miss::Absent) => {}
        }
        // Checked where a flow is created only: an established flow's source passed them.
        if is_martian(key.src(), self.dip) || snap.is_vip(key.src()) {
            return Verdict::Drop(DropReason::MartianSource);
        }
        let Some(svc_idx) = snap.service_for(key.proto(), key.dst(), key.dport()) else {
            if self.kernel.on && snap.vip_other_ports_to_kernel && snap.owns(key.dst()) {
                return kernel_verdict(&mut self.kernel, &self.wc, self.now_ms);
            }
            return Verdict::Drop(DropReason::NoService);
        };
        let Some(svc) = snap.services.get(svc_idx) else {
            return Verdict::Drop(DropReason::NoService);
        };
        // IPVS schedules a TCP connection on a SYN without RST only (sloppy_tcp: on anything
        // but a RST). Where the flow table has no room for the flow, its SYN was forwarded
        // statelessly (see `new_flow`), so its other segments are too (nothing is stored).
        let store = if let Some(f) = flow.tcp_flags() {
            let schedulable = if snap.sloppy_tcp {
                !f.rst()
            } else {
                f.syn() && !f.rst()
            };
            if !schedulable && self.flows.has_room_for(hash, now_s) {
                return Verdict::Drop(DropReason::TcpNotSyn);
            }
            schedulable
        } else {
            true
        };
        let (rs_idx, new_conn) = match new_flow(
            NewFlow {
                flows: &mut self.flows,
                sched: &mut self.sched,
                shared,
                wc,
                snap,
            },
            svc_idx,
            key,
            hash,
            flow.tcp_flags(),
            store,
            now_s,
        ) {
            Ok(ri) => ri,
            Err(v) => return v,
        };
        let Some(rs) = svc.servers.get(rs_idx) else {
            return Verdict::Drop(DropReason::NoServer);
        };
        if new_conn {
            if let Some(c) = wc.services.get(svc.slot as usize) {
                bump(&c.conns, 1);
            }
            if let Some(c) = wc.servers.get(rs.slot as usize) {
                bump(&c.counters.conns, 1);
            }
            if self.sync.is_some() {
                let state = flow
                    .tcp_flags()
                    .map_or(FlowState::Udp, FlowState::tcp_initial);
                self.sync_report(key.key(), state, svc_idx, rs_idx);
            }
        }
        emit(
            frame,
            &shared.neigh,
            wc,
            self.src_mac,
            rs.neigh,
            svc.slot,
            rs.slot,
        )
    }

    /// Periodic work, about every millisecond: expire a slice of the flow table; on the ARP
    /// worker, publish the clock for the control thread and write gratuitous ARPs for new VIPs
    /// and ARP requests for neighbours that need one into `frames`. Every frame written is a
    /// complete Ethernet frame zero padded to the 64-byte buffer (send all 64 bytes, or the
    /// first [`ARP_FRAME_LEN`]). Returns how many of `frames` were written; work that did not
    /// fit is kept for the next call (gratuitous ARPs) or retried later (requests).
    pub fn housekeeping(&mut self, now_ms: u64, frames: &mut [[u8; 64]]) -> usize {
        let now_s = (now_ms / 1000) as u32;
        let cells = &self.wc.servers[..];
        self.flows.expire_slice(now_s, self.expire_per_call, |e| {
            gauge_sub(cells, e.rs_slot, e.state())
        });
        if let Some(sync) = self.sync.as_deref() {
            let snap = &*self.snap;
            let w = self.id;
            let mut n = 0;
            while n < INSTALLS_PER_CALL {
                let Some(r) = sync.pop_in(w) else { break };
                let c = if sync_install(&mut self.flows, snap, cells, &r, now_s) {
                    &sync.counters.installed
                } else {
                    &sync.counters.install_failed
                };
                c.fetch_add(1, Relaxed);
                n += 1;
            }
            let req = sync.dump_requested();
            if req > sync.dump_done(w) {
                if self.dump_gen != req {
                    self.dump_gen = req;
                    self.dump_cursor = 0;
                }
                let next =
                    self.flows
                        .scan_live(self.dump_cursor, DUMP_BUCKETS_PER_CALL, now_s, |e| {
                            if !sync.out_has_room(w) {
                                return false;
                            }
                            let rec = snap.flow_server(e.rs_slot, e.rs_id).and_then(|r| {
                                sync_record(snap, e.key(), e.state(), r.svc as usize, r.rs as usize)
                            });
                            if let Some(rec) = rec {
                                sync.push_out(w, rec);
                            }
                            true
                        });
                match next {
                    Some(c) => self.dump_cursor = c,
                    None => sync.finish_dump(w, req),
                }
            }
        }
        self.wc.flows.store(self.flows.len() as u64, Relaxed);
        if !self.is_arp {
            return 0;
        }
        self.shared.set_clock_ms(now_ms);
        // Each request is one frame, repeats of a VIP included (a takeover's `garp_repeat`
        // with no interval asks for several at once); only snapshot-driven announcements
        // are merged.
        while self.garp_pending.len() < self.garp_pending.capacity() {
            let Some(v) = self.shared.next_garp_request() else {
                break;
            };
            self.garp_pending.push(v);
        }
        let mac = self.port_mac;
        let mut sent = 0;
        while sent < frames.len() {
            let Some(v) = self.garp_pending.pop() else {
                break;
            };
            let buf = &mut frames[sent];
            buf.fill(0);
            neigh::build_gratuitous_arp(buf, mac, Ipv4Addr::from(v));
            insert_tag(buf, self.vlan_tag);
            sent += 1;
        }
        let scan_due = self
            .last_scan_ms
            .map_or(true, |t| now_ms.saturating_sub(t) >= NEIGH_SCAN_MS);
        let room = (frames.len() - sent).min(self.req_buf.len());
        if scan_due && room > 0 {
            self.last_scan_ms = Some(now_ms);
            let n = self.shared.neigh.due_requests(
                now_ms,
                DEFAULT_REACHABLE_MS,
                DEFAULT_RETRY_MS,
                &mut self.req_buf[..room],
            );
            let dip = Ipv4Addr::from(self.dip);
            for &ip in self.req_buf.iter().take(n) {
                let buf = &mut frames[sent];
                buf.fill(0);
                neigh::build_arp_request(buf, mac, dip, Ipv4Addr::from(ip));
                insert_tag(buf, self.vlan_tag);
                sent += 1;
            }
        }
        sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        Forward, Model, Protocol, SchedulerKind, ServerSpec, ServiceKey, ServiceSpec,
    };
    use crate::report::NeighState;
    use proptest::prelude::*;

    const PORT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
    const ROUTER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
    const RS1_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x11];
    const RS2_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x12];
    const DIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
    const RS1: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 11);
    const RS2: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 12);
    const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 10);

    fn key() -> ServiceKey {
        ServiceKey {
            proto: Protocol::Tcp,
            vip: VIP,
            port: 80,
        }
    }

    fn server(addr: Ipv4Addr, weight: u32) -> ServerSpec {
        ServerSpec {
            addr,
            port: 0,
            weight,
            forward: Forward::Dr,
            upper: 0,
            lower: 0,
        }
    }

    fn model(kind: SchedulerKind, w1: u32, w2: u32) -> Model {
        let mut m = Model::new(8, 8);
        m.add_service(ServiceSpec {
            key: key(),
            scheduler: kind,
            persistent: None,
            netmask: Ipv4Addr::BROADCAST,
            flags: vec![],
        })
        .unwrap();
        m.add_server(&key(), server(RS1, w1)).unwrap();
        m.add_server(&key(), server(RS2, w2)).unwrap();
        m
    }

    fn worker_with(m: &Model, flow_capacity: usize, resolve: bool) -> (Arc<Shared>, Worker) {
        let sh = Arc::new(Shared::new(8, 8, 16, 1, PORT_MAC, DIP, 16));
        sh.publish(m).unwrap();
        if resolve {
            sh.neigh.confirm(sh.neigh.find(RS1).unwrap(), RS1_MAC, 0);
            sh.neigh.confirm(sh.neigh.find(RS2).unwrap(), RS2_MAC, 0);
        }
        let w = Worker::new(
            WorkerConfig {
                worker: 0,
                flow_capacity,
                is_arp_worker: true,
            },
            sh.clone(),
        );
        (sh, w)
    }

    /// [`worker_with`] (1024 flows, both servers resolved) with the settings `b`.
    fn worker_behaving(m: &Model, b: crate::snapshot::Behaviour) -> (Arc<Shared>, Worker) {
        let sh = Arc::new(
            Shared::new(8, 8, 16, 1, PORT_MAC, DIP, 16)
                .with_settings(crate::flow::Timeouts::default(), b),
        );
        sh.publish(m).unwrap();
        sh.neigh.confirm(sh.neigh.find(RS1).unwrap(), RS1_MAC, 0);
        sh.neigh.confirm(sh.neigh.find(RS2).unwrap(), RS2_MAC, 0);
        let w = Worker::new(
            WorkerConfig {
                worker: 0,
                flow_capacity: 1024,
                is_arp_worker: true,
            },
            sh.clone(),
        );
        (sh, w)
    }

    fn setup(kind: SchedulerKind, w1: u32, w2: u32) -> (Arc<Shared>, Model, Worker) {
        let m = model(kind, w1, w2);
        let (sh, w) = worker_with(&m, 1024, true);
        (sh, m, w)
    }

    /// Ethernet + IPv4 + TCP (no payload), checksummed IPv4 header.
    fn tcp_frame(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, flags: u8) -> Vec<u8> {
        let mut f = vec![
            // Ethernet: dst = port MAC, src = router, IPv4
            0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x0a, 0x08, 0x00,
            // IPv4: v4 IHL 5, len 40, id 1, DF, TTL 64, TCP, checksum, addresses
            0x45, 0x00, 0x00, 40, 0x00, 0x01, 0x40, 0x00, 64, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            // TCP: ports, seq 1, ack 0, data offset 5, flags, window, checksum, urgent
            0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0x12, 0x34, 0, 0,
        ];
        let mut ip = ipv4::Packet::new_unchecked(&mut f[14..]);
        ip.set_src_addr(src);
        ip.set_dst_addr(dst);
        ip.fill_checksum();
        let mut t = l4::TcpPacket::new_unchecked(&mut f[34..]);
        t.set_src_port(sport);
        t.set_dst_port(dport);
        f
    }

    /// Recompute the IPv4 header checksum of `f` after a test changed the header (its IHL
    /// says how long the header is).
    fn fix_csum(f: &mut [u8]) {
        ipv4::Packet::new_unchecked(&mut f[14..]).fill_checksum();
    }

    fn syn(sport: u16) -> Vec<u8> {
        tcp_frame(CLIENT, sport, VIP, 80, l4::TcpFlags::SYN)
    }
    fn ack(sport: u16) -> Vec<u8> {
        tcp_frame(CLIENT, sport, VIP, 80, l4::TcpFlags::ACK)
    }

    fn arp_frame(op: u16, sha: [u8; 6], spa: Ipv4Addr, tpa: Ipv4Addr, eth_dst: [u8; 6]) -> Vec<u8> {
        let mut f = vec![0u8; 60];
        f[..6].copy_from_slice(&eth_dst);
        f[6..12].copy_from_slice(&sha);
        f[12..14].copy_from_slice(&[0x08, 0x06]);
        let mut a = arp::Packet::new_unchecked(&mut f[14..]);
        a.set_ethernet_ipv4();
        a.set_operation(arp::Operation::from(op));
        a.set_source_hardware_addr(sha);
        a.set_source_protocol_addr(spa);
        a.set_target_hardware_addr([0; 6]);
        a.set_target_protocol_addr(tpa);
        f
    }

    fn send(w: &mut Worker, f: &mut [u8], now_ms: u64) -> Verdict {
        w.process(f, now_ms)
    }

    fn dst_mac(f: &[u8]) -> [u8; 6] {
        f[..6].try_into().unwrap()
    }

    #[test]
    fn rr_alternates_and_rewrites_only_macs() {
        let (sh, m, mut w) = setup(SchedulerKind::Rr, 1, 1);
        let mut macs = vec![];
        for p in 0..10u16 {
            let orig = syn(1000 + p);
            let mut f = orig.clone();
            assert_eq!(send(&mut w, &mut f, 1000), Verdict::Forward);
            assert_eq!(&f[6..12], &PORT_MAC);
            assert_eq!(&f[12..], &orig[12..], "L3/L4 bytes untouched");
            macs.push(dst_mac(&f));
        }
        for (i, m) in macs.iter().enumerate() {
            assert_eq!(*m, if i % 2 == 0 { RS1_MAC } else { RS2_MAC });
        }
        // follow-up segments stick to their server
        for p in 0..10u16 {
            let mut f = ack(1000 + p);
            assert_eq!(send(&mut w, &mut f, 2000), Verdict::Forward);
            assert_eq!(dst_mac(&f), macs[p as usize]);
        }
        let r = sh.stats(&m);
        let s = &r.services[0];
        assert_eq!(s.counters.conns, 10);
        assert_eq!(s.counters.packets, 20);
        assert_eq!(s.counters.bytes, 20 * 54);
        for rs in &s.servers {
            assert_eq!(rs.counters.conns, 5);
            assert_eq!(rs.counters.packets, 10);
            assert_eq!((rs.active_conns, rs.inactive_conns), (5, 0));
        }
        assert_eq!(r.workers[0].forwarded, 20);
        assert_eq!(r.workers[0].flows, 10);
        assert!(r.drops.is_empty());
    }

    #[test]
    fn wrr_three_to_one() {
        let (_sh, _m, mut w) = setup(SchedulerKind::Wrr, 3, 1);
        let macs: Vec<[u8; 6]> = (0..8u16)
            .map(|p| {
                let mut f = syn(2000 + p);
                assert_eq!(send(&mut w, &mut f, 0), Verdict::Forward);
                dst_mac(&f)
            })
            .collect();
        let a = RS1_MAC;
        let b = RS2_MAC;
        assert_eq!(macs, vec![a, a, a, b, a, a, a, b]);
    }

    #[test]
    fn arp_request_for_vip_and_dip_is_answered_in_place() {
        let (sh, m, mut w) = setup(SchedulerKind::Rr, 1, 1);
        let mut f = arp_frame(
            1,
            ROUTER_MAC,
            Ipv4Addr::new(198, 18, 0, 254),
            VIP,
            [0xff; 6],
        );
        assert_eq!(send(&mut w, &mut f, 0), Verdict::Reply);
        let expected: Vec<u8> = [
            &ROUTER_MAC[..],                 // Ethernet dst: the requester
            &PORT_MAC[..],                   // Ethernet src: our port
            &[0x08, 0x06],                   // ARP
            &[0, 1, 0x08, 0x00, 6, 4, 0, 2], // Ethernet/IPv4, reply
            &PORT_MAC[..],                   // sender hw: us
            &[198, 18, 0, 100],              // sender ip: the VIP
            &ROUTER_MAC[..],                 // target hw: requester
            &[198, 18, 0, 254],              // target ip: requester
            &[0u8; 18][..],                  // padding kept
        ]
        .concat();
        assert_eq!(f, expected);
        let mut f = arp_frame(
            1,
            ROUTER_MAC,
            Ipv4Addr::new(198, 18, 0, 254),
            DIP,
            [0xff; 6],
        );
        assert_eq!(send(&mut w, &mut f, 0), Verdict::Reply);
        assert_eq!(&f[28..32], &[198, 18, 0, 1]);
        // someone else's address: not ours
        let mut f = arp_frame(
            1,
            ROUTER_MAC,
            Ipv4Addr::new(198, 18, 0, 254),
            Ipv4Addr::new(198, 18, 0, 77),
            [0xff; 6],
        );
        assert_eq!(
            send(&mut w, &mut f, 0),
            Verdict::Drop(DropReason::ArpNotForUs)
        );
        // a gratuitous announcement of the VIP by someone else is not answered
        let mut f = arp_frame(1, ROUTER_MAC, VIP, VIP, [0xff; 6]);
        assert_eq!(
            send(&mut w, &mut f, 0),
            Verdict::Drop(DropReason::ArpNotForUs)
        );
        let r = sh.stats(&m);
        assert_eq!(r.workers[0].arp_replies, 2);
        assert_eq!(r.drops.get("arp_not_for_us"), Some(&2));
    }

    #[test]
    fn arp_from_real_server_resolves_when_asked_unknown_learns_nothing() {
        let m = model(SchedulerKind::Rr, 1, 1);
        let (sh, mut w) = worker_with(&m, 64, false);
        assert_eq!(sh.neighbour(RS1), NeighState::Incomplete);
        let mut f = syn(1);
        assert_eq!(
            send(&mut w, &mut f, 0),
            Verdict::Drop(DropReason::NeighUnresolved)
        );
        assert!(asked(&mut w, 100).contains(&RS1));
        // reply from RS1 to our request
        let mut f = answer(RS1, RS1_MAC);
        assert_eq!(send(&mut w, &mut f, 500), Verdict::Consumed);
        assert_eq!(sh.neigh.mac(sh.neigh.find(RS1).unwrap()), Some(RS1_MAC));
        // a request from RS2 (for someone else) teaches nothing: only answers to ours do
        let mut f = arp_frame(1, RS2_MAC, RS2, Ipv4Addr::new(198, 18, 0, 254), [0xff; 6]);
        assert_eq!(send(&mut w, &mut f, 500), Verdict::Consumed);
        assert_eq!(sh.neigh.mac(sh.neigh.find(RS2).unwrap()), None);
        // unsolicited reply from an address we do not track: nothing learned
        let stranger = Ipv4Addr::new(198, 18, 0, 99);
        let mut f = answer(stranger, [2, 0, 0, 0, 0, 0x99]);
        assert_eq!(
            send(&mut w, &mut f, 500),
            Verdict::Drop(DropReason::ArpNotForUs)
        );
        assert_eq!(sh.neigh.find(stranger), None);
        assert_eq!(sh.neighbour(stranger), NeighState::Incomplete);
        // the retransmitted SYN now goes out (flow kept its server)
        let mut f = syn(1);
        assert_eq!(send(&mut w, &mut f, 1000), Verdict::Forward);
        assert_eq!(dst_mac(&f), RS1_MAC);
    }

    #[test]
    fn weight_zero_keeps_flows_but_gets_no_new_ones() {
        let (sh, mut m, mut w) = setup(SchedulerKind::Wrr, 1, 1);
        let mut owner = vec![];
        for p in 0..6u16 {
            let mut f = syn(p);
            send(&mut w, &mut f, 0);
            owner.push(dst_mac(&f));
        }
        m.edit_server(&key(), server(RS1, 0)).unwrap();
        sh.publish(&m).unwrap();
        w.refresh();
        for p in 0..6u16 {
            let mut f = ack(p);
            assert_eq!(send(&mut w, &mut f, 1000), Verdict::Forward);
            assert_eq!(dst_mac(&f), owner[p as usize], "existing flow {p} kept");
        }
        for p in 100..110u16 {
            let mut f = syn(p);
            assert_eq!(send(&mut w, &mut f, 1000), Verdict::Forward);
            assert_eq!(dst_mac(&f), RS2_MAC);
        }
        // all servers quiesced: new flows have nowhere to go
        m.edit_server(&key(), server(RS2, 0)).unwrap();
        sh.publish(&m).unwrap();
        w.refresh();
        let mut f = syn(500);
        assert_eq!(
            send(&mut w, &mut f, 1000),
            Verdict::Drop(DropReason::NoServer)
        );
        let mut f = ack(0);
        assert_eq!(send(&mut w, &mut f, 1000), Verdict::Forward);
    }

    fn establish(w: &mut Worker, ports: std::ops::Range<u16>, now_ms: u64) -> Vec<[u8; 6]> {
        let mut owner = vec![];
        for p in ports {
            let mut f = syn(p);
            assert_eq!(send(w, &mut f, now_ms), Verdict::Forward);
            send(w, &mut ack(p), now_ms);
            owner.push(dst_mac(&f));
        }
        owner
    }

    #[test]
    fn deleted_servers_flows_are_dropped_by_default() {
        let (sh, mut m, mut w) = setup(SchedulerKind::Rr, 1, 1);
        assert!(!w.snapshot().expire_nodest_conn);
        let owner = establish(&mut w, 0..4, 0);
        m.delete_server(&key(), RS1, 0).unwrap();
        sh.publish(&m).unwrap();
        w.refresh();
        for p in 0..4u16 {
            let mut f = ack(p);
            let v = send(&mut w, &mut f, 1000);
            if owner[p as usize] == RS1_MAC {
                assert_eq!(v, Verdict::Drop(DropReason::NoDest), "flow {p}");
            } else {
                assert_eq!((v, dst_mac(&f)), (Verdict::Forward, RS2_MAC));
            }
        }
        let r = sh.stats(&m);
        assert_eq!(r.drops.get("no_dest"), Some(&2));
        assert_eq!(w.flow_count(), 4, "dropped flows stay until they time out");
        let rs2 = &r.services[0].servers[0];
        assert_eq!((rs2.active_conns, rs2.inactive_conns), (2, 0));
        // a new server taking RS1's slot inherits neither flows nor gauges
        m.add_server(&key(), server(Ipv4Addr::new(198, 18, 0, 13), 1))
            .unwrap();
        sh.publish(&m).unwrap();
        w.refresh();
        let r = sh.stats(&m);
        let rs3 = &r.services[0].servers[1];
        assert_eq!(rs3.counters, crate::report::Counters::default());
        assert_eq!((rs3.active_conns, rs3.inactive_conns), (0, 0));
        let mut f = ack(0);
        assert_eq!(
            send(&mut w, &mut f, 2000),
            Verdict::Drop(DropReason::NoDest),
            "still dropped: the flow is not moved to the slot's new server"
        );
        // A SYN from the client port of such a flow is a new connection (the client reused
        // the port): scheduled at once, not dropped until the old flow times out.
        let reused = (0..4u16).find(|p| owner[*p as usize] == RS1_MAC).unwrap();
        let mut f = syn(reused);
        assert_eq!(send(&mut w, &mut f, 2000), Verdict::Forward);
        assert_ne!(dst_mac(&f), RS1_MAC);
        let mut f = ack(reused);
        assert_eq!(send(&mut w, &mut f, 2000), Verdict::Forward, "the new flow");
        // dropped packets do not refresh the flow: it times out 900 s after its last good one
        let mut frames = [[0u8; 64]; 4];
        for _ in 0..w.flows.buckets() {
            w.housekeeping(901_000, &mut frames);
        }
        assert_eq!(
            w.flow_count(),
            3,
            "the expired ones gone, the reused port's new flow kept"
        );
        let mut f = syn(0);
        assert_eq!(send(&mut w, &mut f, 901_000), Verdict::Forward);
    }

    #[test]
    fn a_server_deleted_and_added_back_keeps_its_flows() {
        let (sh, mut m, mut w) = setup(SchedulerKind::Rr, 1, 1);
        let owner = establish(&mut w, 0..4, 0);
        let mine: Vec<u16> = (0..4u16)
            .filter(|p| owner[*p as usize] == RS1_MAC)
            .collect();
        assert_eq!(mine.len(), 2);
        // rvsadm -d, a frame meanwhile (dropped, the flow stays attached), rvsadm -a.
        let spec = m.service(&key()).unwrap().servers[0].spec;
        assert_eq!(spec.addr, RS1);
        m.delete_server(&key(), RS1, 0).unwrap();
        sh.publish(&m).unwrap();
        w.refresh();
        let mut f = ack(mine[0]);
        assert_eq!(
            send(&mut w, &mut f, 1000),
            Verdict::Drop(DropReason::NoDest)
        );
        m.add_server(&key(), spec).unwrap();
        sh.publish(&m).unwrap();
        w.refresh();
        for p in &mine {
            let mut f = ack(*p);
            assert_eq!(send(&mut w, &mut f, 2000), Verdict::Forward, "flow {p}");
            assert_eq!(dst_mac(&f), RS1_MAC, "flow {p} kept its server");
        }
        let r = sh.stats(&m);
        let rs1 = r.services[0]
            .servers
            .iter()
            .find(|s| s.addr == RS1)
            .unwrap();
        assert_eq!(rs1.active_conns, 2, "its gauges came back with it");
    }

    #[test]
    fn deleted_servers_flows_are_rescheduled_with_expire_nodest_conn() {
        let m = model(SchedulerKind::Rr, 1, 1);
        // sloppy_tcp: the ACKs of the flows are scheduled anew (without it they are
        // dropped as tcp_not_syn, as IPVS does: see the test after this one).
        let (sh, mut w) = worker_behaving(
            &m,
            crate::snapshot::Behaviour {
                expire_nodest_conn: true,
                sloppy_tcp: true,
                vip_other_ports_to_kernel: false,
            },
        );
        assert!(w.snapshot().expire_nodest_conn);
        let mut m = m;
        establish(&mut w, 0..4, 0);
        m.delete_server(&key(), RS1, 0).unwrap();
        sh.publish(&m).unwrap();
        w.refresh();
        assert_eq!(sh.reclaim(), 0, "worker moved on: old snapshots freed");
        for p in 0..4u16 {
            let mut f = ack(p);
            assert_eq!(send(&mut w, &mut f, 1000), Verdict::Forward);
            assert_eq!(dst_mac(&f), RS2_MAC);
        }
        let r = sh.stats(&m);
        assert_eq!(r.drops.get("no_dest"), None);
        let rs2 = &r.services[0].servers[0];
        assert_eq!(rs2.addr, RS2);
        // 2 original + 2 rescheduled connections, all established on RS2
        assert_eq!(rs2.counters.conns, 4);
        assert_eq!((rs2.active_conns, rs2.inactive_conns), (4, 0));
        m.add_server(&key(), server(Ipv4Addr::new(198, 18, 0, 13), 1))
            .unwrap();
        sh.publish(&m).unwrap();
        w.refresh();
        let r = sh.stats(&m);
        let rs3 = &r.services[0].servers[1];
        assert_eq!(rs3.counters, crate::report::Counters::default());
        assert_eq!((rs3.active_conns, rs3.inactive_conns), (0, 0));
    }

    fn persistent_model(port: u16, timeout: u32, mask: Ipv4Addr) -> (Model, ServiceKey) {
        let mut m = Model::new(8, 8);
        let k = ServiceKey {
            proto: Protocol::Tcp,
            vip: VIP,
            port,
        };
        m.add_service(ServiceSpec {
            key: k,
            scheduler: SchedulerKind::Rr,
            persistent: Some(timeout),
            netmask: mask,
            flags: vec![],
        })
        .unwrap();
        m.add_server(&k, server(RS1, 1)).unwrap();
        m.add_server(&k, server(RS2, 1)).unwrap();
        (m, k)
    }

    fn two_workers(m: &Model) -> (Arc<Shared>, [Worker; 2]) {
        let sh = Arc::new(Shared::new(8, 8, 16, 2, PORT_MAC, DIP, 16).with_persistence(1024));
        sh.publish(m).unwrap();
        sh.neigh.confirm(sh.neigh.find(RS1).unwrap(), RS1_MAC, 0);
        sh.neigh.confirm(sh.neigh.find(RS2).unwrap(), RS2_MAC, 0);
        let mk = |i: u32| {
            Worker::new(
                WorkerConfig {
                    worker: i,
                    flow_capacity: 1024,
                    is_arp_worker: i == 0,
                },
                sh.clone(),
            )
        };
        (sh.clone(), [mk(0), mk(1)])
    }

    /// Open a connection from `src:sport` to `VIP:dport` on worker `w`, returning its server.
    fn connect(w: &mut Worker, src: Ipv4Addr, sport: u16, dport: u16, now_ms: u64) -> [u8; 6] {
        let mut f = tcp_frame(src, sport, VIP, dport, l4::TcpFlags::SYN);
        assert_eq!(send(w, &mut f, now_ms), Verdict::Forward);
        dst_mac(&f)
    }

    #[test]
    fn persistence_holds_across_workers_and_expires() {
        let (m, _) = persistent_model(80, 300, Ipv4Addr::BROADCAST);
        let (sh, mut ws) = two_workers(&m);
        let other = Ipv4Addr::new(198, 18, 1, 11);
        let first = connect(&mut ws[0], CLIENT, 1000, 80, 0);
        let second = connect(&mut ws[0], other, 1000, 80, 0);
        assert_ne!(first, second, "rr spreads the two clients");
        for p in 1..40u16 {
            // RSS puts this client's ports on alternating workers
            let w = &mut ws[usize::from(p % 2)];
            assert_eq!(connect(w, CLIENT, 1000 + p, 80, 1000 * u64::from(p)), first);
            assert_eq!(connect(w, other, 1000 + p, 80, 1000 * u64::from(p)), second);
        }
        assert_eq!(
            sh.persist
                .lookup(m.services()[0].id, u32::from(CLIENT), 39)
                .map(|t| t.rs_id),
            Some(
                m.services()[0]
                    .servers
                    .iter()
                    .find(|r| {
                        if first == RS1_MAC {
                            r.spec.addr == RS1
                        } else {
                            r.spec.addr == RS2
                        }
                    })
                    .unwrap()
                    .id
            )
        );
        let id = m.services()[0].id;
        let client = u32::from(CLIENT);
        assert_eq!(sh.persist.lookup(id, client, 39).unwrap().expires, 39 + 300);
        // a packet of a live flow keeps its template alive (worker 1 had port 1039)
        let mut f = tcp_frame(CLIENT, 1039, VIP, 80, l4::TcpFlags::ACK);
        assert_eq!(send(&mut ws[1], &mut f, 90_000), Verdict::Forward);
        assert_eq!(sh.persist.lookup(id, client, 90).unwrap().expires, 390);
        // 300 s after its last use the template is gone; the next connection makes a new one
        assert!(sh.persist.lookup(id, client, 390).is_some());
        assert!(sh.persist.lookup(id, client, 391).is_none());
        connect(&mut ws[1], CLIENT, 5000, 80, 391_000);
        assert_eq!(sh.persist.lookup(id, client, 391).unwrap().expires, 691);
    }

    #[test]
    fn persistence_netmask_groups_clients_and_port_zero_covers_all_ports() {
        let (m, _) = persistent_model(0, 300, Ipv4Addr::new(255, 255, 255, 0));
        let (sh, mut ws) = two_workers(&m);
        let a = connect(&mut ws[0], Ipv4Addr::new(198, 18, 1, 10), 1000, 80, 0);
        // same /24, other ports (port 0 service covers them), other worker
        for (i, (last, dport)) in [(11u8, 443u16), (200, 8080), (10, 22)].iter().enumerate() {
            let got = connect(
                &mut ws[i % 2],
                Ipv4Addr::new(198, 18, 1, *last),
                2000,
                *dport,
                0,
            );
            assert_eq!(got, a, "198.18.1.{last}:{dport}");
        }
        // another /24 is scheduled on its own (rr: the other server)
        let b = connect(&mut ws[0], Ipv4Addr::new(198, 18, 2, 10), 1000, 443, 0);
        assert_ne!(a, b);
        // the listing shows one template per network, IPVS style
        sh.set_clock_ms(10_000);
        let conns = sh.connections(100);
        let mut tpl: Vec<_> = conns.iter().filter(|c| c.template).collect();
        tpl.sort_by_key(|c| c.client);
        assert_eq!(tpl.len(), 2);
        assert_eq!(tpl[0].client, Ipv4Addr::new(198, 18, 1, 0));
        assert_eq!((tpl[0].cport, tpl[0].vport, tpl[0].rport), (0, 0, 0));
        assert_eq!(tpl[0].state, "NONE");
        assert_eq!(tpl[0].expire_s, 290);
        assert_eq!(conns.iter().filter(|c| !c.template).count(), 5);
        let r = sh.stats(&m);
        let pc: Vec<u64> = r.services[0]
            .servers
            .iter()
            .map(|x| x.persistent_conns)
            .collect();
        assert_eq!(pc, vec![1, 1], "PersistConn: one template per server");
    }

    #[test]
    fn a_connection_keeps_its_server_when_a_more_specific_service_appears() {
        // As IPVS, which looks a packet's connection up before its service: a flow made under
        // the VIP's all-ports service stays with its server after a port-80 service is added.
        let (mut m, k0) = persistent_model(0, 300, Ipv4Addr::BROADCAST);
        let (sh, mut ws) = two_workers(&m);
        let client = Ipv4Addr::new(198, 18, 1, 10);
        let first = connect(&mut ws[0], client, 1000, 80, 0);
        let rs3 = Ipv4Addr::new(198, 18, 0, 13);
        let rs3_mac = [0x02, 0, 0, 0, 0, 0x13];
        let k80 = key();
        m.add_service(ServiceSpec {
            key: k80,
            scheduler: SchedulerKind::Rr,
            persistent: None,
            netmask: Ipv4Addr::BROADCAST,
            flags: vec![],
        })
        .unwrap();
        m.add_server(&k80, server(rs3, 1)).unwrap();
        sh.publish(&m).unwrap();
        sh.neigh.confirm(sh.neigh.find(rs3).unwrap(), rs3_mac, 0);
        ws[0].refresh();
        for _ in 0..3 {
            let mut f = tcp_frame(client, 1000, VIP, 80, l4::TcpFlags::ACK);
            assert_eq!(send(&mut ws[0], &mut f, 1000), Verdict::Forward);
            assert_eq!(dst_mac(&f), first, "the existing flow keeps its server");
        }
        // a new connection to port 80 goes to the new service
        assert_eq!(connect(&mut ws[0], client, 1001, 80, 1000), rs3_mac);
        let r = sh.stats(&m);
        let by_key = |k: ServiceKey| r.services.iter().find(|s| s.key == k).unwrap().counters;
        // the old flow's packets are counted on the service it was made under
        assert_eq!(by_key(k0).packets, 4);
        assert_eq!((by_key(k80).packets, by_key(k80).conns), (1, 1));
    }

    #[test]
    fn persistence_follows_ipvs_for_quiesced_and_deleted_servers() {
        let (mut m, k) = persistent_model(80, 300, Ipv4Addr::BROADCAST);
        let (sh, mut ws) = two_workers(&m);
        let first = connect(&mut ws[0], CLIENT, 1000, 80, 0);
        let (addr, other_mac) = if first == RS1_MAC {
            (RS1, RS2_MAC)
        } else {
            (RS2, RS1_MAC)
        };
        // quiesced (weight 0): the template still sends the client there
        m.edit_server(&k, server(addr, 0)).unwrap();
        sh.publish(&m).unwrap();
        ws.iter_mut().for_each(Worker::refresh);
        assert_eq!(connect(&mut ws[1], CLIENT, 1001, 80, 1000), first);
        // deleted: a new template to the remaining server
        m.delete_server(&k, addr, 0).unwrap();
        sh.publish(&m).unwrap();
        ws.iter_mut().for_each(Worker::refresh);
        assert_eq!(connect(&mut ws[1], CLIENT, 1002, 80, 2000), other_mac);
        assert_eq!(connect(&mut ws[0], CLIENT, 1003, 80, 2000), other_mac);
        let r = sh.stats(&m);
        assert_eq!(r.drops.get("no_dest"), None);
    }

    #[test]
    fn tcp_states_drive_active_inactive_and_timeouts() {
        let (sh, m, mut w) = setup(SchedulerKind::Rr, 1, 0);
        let counts = |sh: &Shared| {
            let r = sh.stats(&m);
            (
                r.services[0].servers[0].active_conns,
                r.services[0].servers[0].inactive_conns,
            )
        };
        send(&mut w, &mut syn(1), 0);
        assert_eq!(counts(&sh), (0, 1), "SYN_RECV is inactive");
        send(&mut w, &mut ack(1), 0);
        assert_eq!(counts(&sh), (1, 0), "ESTABLISHED is active");
        let fin = |p| tcp_frame(CLIENT, p, VIP, 80, l4::TcpFlags::FIN | l4::TcpFlags::ACK);
        send(&mut w, &mut fin(1), 1000);
        assert_eq!(counts(&sh), (0, 1), "FIN_WAIT is inactive");
        sh.set_clock_ms(1000);
        let c = sh.connections(10);
        assert_eq!(
            (c.len(), c[0].state.as_str(), c[0].expire_s),
            (1, "FIN_WAIT", 120)
        );
        // FIN_WAIT times out after tcpfin (120 s)
        let mut frames = [[0u8; 64]; 4];
        for _ in 0..w.flows.buckets() {
            w.housekeeping(121_000, &mut frames);
        }
        assert_eq!(w.flow_count(), 1);
        for _ in 0..w.flows.buckets() {
            w.housekeeping(121_001 + 1000, &mut frames);
        }
        assert_eq!(w.flow_count(), 0);
        assert_eq!(counts(&sh), (0, 0));
    }

    #[test]
    fn set_timeouts_takes_effect_without_restart() {
        let (sh, m, mut w) = setup(SchedulerKind::Rr, 1, 0);
        send(&mut w, &mut syn(1), 0);
        send(&mut w, &mut ack(1), 0);
        assert_eq!(sh.timeouts().tcp, 900);
        sh.set_timeouts(crate::model::Timeouts {
            tcp: 5,
            tcp_fin: 7,
            udp: 9,
        });
        assert_eq!(
            sh.timeouts(),
            crate::model::Timeouts {
                tcp: 5,
                tcp_fin: 7,
                udp: 9
            }
        );
        assert_eq!(w.snapshot().timeouts.tcp, 900, "not yet picked up");
        w.refresh();
        assert_eq!(w.snapshot().timeouts.tcp, 5);
        assert_eq!(w.snapshot().timeouts.tcp_syn, 60, "others unchanged");
        assert_eq!(w.snapshot().services.len(), 1, "services kept");
        let mut frames = [[0u8; 64]; 4];
        for _ in 0..w.flows.buckets() {
            w.housekeeping(6_000, &mut frames);
        }
        assert_eq!(
            w.flow_count(),
            0,
            "established flow expired after the new 5 s"
        );
        let r = sh.stats(&m);
        assert_eq!(r.services[0].servers[0].active_conns, 0);
    }

    #[test]
    fn connections_listed_from_another_thread_while_forwarding() {
        let (sh, _m, mut w) = setup(SchedulerKind::Rr, 1, 1);
        sh.set_clock_ms(1000);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let listed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let reader = {
            let (sh, stop, listed) = (sh.clone(), stop.clone(), listed.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Relaxed) {
                    for c in sh.connections(10_000) {
                        assert_eq!((c.client, c.vip, c.vport, c.rport), (CLIENT, VIP, 80, 80));
                        assert!(c.rs == RS1 || c.rs == RS2);
                        assert!(["SYN_RECV", "ESTABLISHED"].contains(&c.state.as_str()));
                        assert!(c.expire_s <= 900);
                        n += 1;
                    }
                    listed.store(n, Relaxed);
                }
                n
            })
        };
        // At least 30 rounds, and on until the reader has listed while we forward (a loaded
        // machine may start it late), at most ~10 s.
        let started = std::time::Instant::now();
        for round in 0u64.. {
            if round >= 30 && (listed.load(Relaxed) > 0 || started.elapsed().as_secs() >= 10) {
                break;
            }
            sh.set_clock_ms(round * 1_000_000);
            for p in 0..300u16 {
                send(&mut w, &mut syn(p), round * 1_000_000);
                send(&mut w, &mut ack(p), round * 1_000_000);
            }
        }
        stop.store(true, Relaxed);
        assert!(reader.join().unwrap() > 0);
        assert_eq!(sh.connections(7).len(), 7, "limit");
    }

    #[test]
    fn malformed_and_foreign_frames_are_dropped_with_their_reason() {
        let (sh, m, mut w) = setup(SchedulerKind::Rr, 1, 1);
        let base = syn(7);
        let mut cases: Vec<(Vec<u8>, DropReason)> = vec![];
        cases.push((base[..13].to_vec(), DropReason::ShortFrame));
        let mut f = base.clone();
        f[12..14].copy_from_slice(&[0x81, 0x00]); // 802.1Q tag
        cases.push((f, DropReason::Vlan));
        let mut f = base.clone();
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        cases.push((f, DropReason::Ipv6));
        let mut f = base.clone();
        f[12..14].copy_from_slice(&[0x88, 0xcc]); // LLDP
        cases.push((f, DropReason::NotIpv4OrArp));
        let mut f = base.clone();
        f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 0x77]); // someone else's unicast MAC
        cases.push((f, DropReason::NotOurMac));
        cases.push((base[..30].to_vec(), DropReason::ShortIp));
        let mut f = base.clone();
        f[14] = 0x65; // IP version 6 in an IPv4 frame
        cases.push((f, DropReason::BadIpVersion));
        let mut f = base.clone();
        f[14] = 0x44; // IHL 4
        cases.push((f, DropReason::BadIhl));
        let mut f = base.clone();
        f[14] = 0x4f; // IHL 15 = 60 bytes > 40-byte packet
        cases.push((f, DropReason::BadIhl));
        let mut f = base.clone();
        f[17] = 41; // total length 41 > 40 bytes present
        fix_csum(&mut f);
        cases.push((f, DropReason::BadTotalLen));
        let mut f = base.clone();
        f[17] = 19; // total length below the header
        fix_csum(&mut f);
        cases.push((f, DropReason::BadTotalLen));
        let mut f = base.clone();
        f[20] = 0x20; // MF
        fix_csum(&mut f);
        cases.push((f, DropReason::IpFragment));
        let mut f = base.clone();
        f[20] = 0x00;
        f[21] = 0x10; // offset 128
        fix_csum(&mut f);
        cases.push((f, DropReason::IpFragment));
        let mut f = base.clone();
        f[23] = 1; // ICMP
        fix_csum(&mut f);
        cases.push((f, DropReason::NotTcpUdp));
        let mut f = base.clone();
        f[17] = 39; // TCP header cut to 19 bytes by the total length
        fix_csum(&mut f);
        cases.push((f, DropReason::ShortL4));
        let mut f = base.clone();
        f[23] = 17; // UDP to VIP:80, no UDP service
        fix_csum(&mut f);
        cases.push((f, DropReason::NoService));
        cases.push((
            tcp_frame(CLIENT, 1, VIP, 443, l4::TcpFlags::SYN),
            DropReason::NoService,
        ));
        let mut f = arp_frame(1, ROUTER_MAC, CLIENT, VIP, [0xff; 6]);
        f[18] = 8; // hlen 8
        cases.push((f, DropReason::ArpMalformed));
        let mut f = arp_frame(1, ROUTER_MAC, CLIENT, VIP, [0xff; 6]);
        f[19] = 16; // plen 16
        cases.push((f, DropReason::ArpMalformed));
        let f = arp_frame(1, ROUTER_MAC, CLIENT, VIP, [0xff; 6]);
        cases.push((f[..40].to_vec(), DropReason::ArpMalformed));

        let n = cases.len() as u64;
        for (mut f, reason) in cases {
            let before = f.clone();
            assert_eq!(
                send(&mut w, &mut f, 0),
                Verdict::Drop(reason),
                "{}",
                reason.name()
            );
            assert_eq!(f, before, "dropped frames are not modified");
        }
        let r = sh.stats(&m);
        assert_eq!(r.drops.values().sum::<u64>(), n);
        assert_eq!(r.drops.get("bad_ihl"), Some(&2));
        assert_eq!(r.workers[0].forwarded, 0);
        assert_eq!(r.workers[0].flows, 0);
    }

    #[test]
    fn ip_options_are_accepted() {
        let (_sh, _m, mut w) = setup(SchedulerKind::Rr, 1, 1);
        // IHL 6: one 4-byte option (NOP x4) before TCP
        let mut f = syn(9);
        f.splice(34..34, [1u8, 1, 1, 1]);
        f[14] = 0x46;
        f[17] = 44;
        fix_csum(&mut f);
        let orig = f.clone();
        assert_eq!(send(&mut w, &mut f, 0), Verdict::Forward);
        assert_eq!(&f[12..], &orig[12..]);
    }

    #[test]
    fn udp_service_and_all_ports_service() {
        let mut m = Model::new(8, 8);
        let k = ServiceKey {
            proto: Protocol::Udp,
            vip: VIP,
            port: 0,
        };
        m.add_service(ServiceSpec {
            key: k,
            scheduler: SchedulerKind::Rr,
            persistent: Some(300),
            netmask: Ipv4Addr::BROADCAST,
            flags: vec![],
        })
        .unwrap();
        m.add_server(&k, server(RS1, 1)).unwrap();
        let (sh, mut w) = worker_with(&m, 64, false);
        sh.neigh.confirm(sh.neigh.find(RS1).unwrap(), RS1_MAC, 0);
        let mut f = syn(5);
        f[23] = 17; // same bytes as UDP: ports 5 -> 80
        fix_csum(&mut f);
        assert_eq!(send(&mut w, &mut f, 0), Verdict::Forward);
        assert_eq!(dst_mac(&f), RS1_MAC);
        let r = sh.stats(&m);
        assert_eq!(
            (
                r.services[0].servers[0].active_conns,
                r.services[0].servers[0].inactive_conns
            ),
            (0, 1),
            "UDP flows are InActConn, as in IPVS"
        );
    }

    #[test]
    fn full_flow_table_forwards_statelessly_and_counts() {
        let m = model(SchedulerKind::Rr, 1, 1);
        let (sh, mut w) = worker_with(&m, 8, true);
        let mut first = std::collections::HashMap::new();
        for p in 0..40u16 {
            let mut f = syn(p);
            assert_eq!(send(&mut w, &mut f, 0), Verdict::Forward);
            first.insert(p, dst_mac(&f));
        }
        assert_eq!(w.flow_count(), 8);
        let full = sh.stats.drops(DropReason::FlowTableFull);
        assert_eq!(full, 32);
        // stateless choices are stable per flow
        for p in 0..40u16 {
            let mut f = ack(p);
            assert_eq!(send(&mut w, &mut f, 0), Verdict::Forward);
            assert_eq!(dst_mac(&f), first[&p]);
        }
        // both servers take a share of the stateless choices
        let rs1 = first.values().filter(|&&m| m == RS1_MAC).count();
        assert!(rs1 > 0 && rs1 < 40, "{rs1} of 40 to RS1");
    }

    #[test]
    fn stateless_choice_skips_quiesced_servers() {
        let m = model(SchedulerKind::Rr, 0, 1);
        let (sh, mut w) = worker_with(&m, 8, true);
        assert_eq!(&*w.snapshot().services[0].usable, &[1]);
        for p in 0..40u16 {
            let mut f = syn(p);
            assert_eq!(send(&mut w, &mut f, 0), Verdict::Forward);
            assert_eq!(dst_mac(&f), RS2_MAC, "flow {p}");
        }
        assert_eq!(sh.stats.drops(DropReason::FlowTableFull), 32);
        // no server with weight left: dropped, not forwarded
        let m = model(SchedulerKind::Rr, 0, 0);
        let (_sh, mut w) = worker_with(&m, 8, true);
        let mut f = syn(1);
        assert_eq!(send(&mut w, &mut f, 0), Verdict::Drop(DropReason::NoServer));
    }

    #[test]
    fn expiry_in_housekeeping_updates_gauges() {
        let (sh, m, mut w) = setup(SchedulerKind::Rr, 1, 1);
        for p in 0..4u16 {
            send(&mut w, &mut syn(p), 0);
        }
        let r = sh.stats(&m);
        assert_eq!(r.services[0].servers[0].inactive_conns, 2);
        let mut frames = [[0u8; 64]; 4];
        // SYN_RECV timeout is 60 s
        let later = 62_000;
        for _ in 0..w.flows.buckets() {
            w.housekeeping(later, &mut frames);
        }
        let r = sh.stats(&m);
        assert_eq!(w.flow_count(), 0);
        assert_eq!(r.workers[0].flows, 0);
        for rs in &r.services[0].servers {
            assert_eq!((rs.active_conns, rs.inactive_conns), (0, 0));
        }
    }

    #[test]
    fn arp_worker_announces_vips_and_resolves_servers() {
        let m = model(SchedulerKind::Rr, 1, 1);
        let (sh, mut w) = worker_with(&m, 64, false);
        let mut frames = [[0xeeu8; 64]; 8];
        assert_eq!(w.housekeeping(10, &mut frames), 3);
        assert_eq!(sh.clock_ms(), 10);
        let parsed: Vec<(Ipv4Addr, Ipv4Addr)> = frames[..3]
            .iter()
            .map(|f| {
                assert_eq!(&f[..6], &[0xff; 6]);
                assert_eq!(&f[6..12], &PORT_MAC);
                assert_eq!(&f[ARP_FRAME_LEN..], &[0u8; 4], "zero padded");
                let a = arp::Packet::new_checked(&f[14..]).unwrap();
                assert_eq!(a.operation(), arp::Operation::Request);
                (a.source_protocol_addr(), a.target_protocol_addr())
            })
            .collect();
        assert_eq!(parsed[0], (VIP, VIP), "gratuitous ARP first");
        let mut reqs = parsed[1..].to_vec();
        reqs.sort();
        assert_eq!(reqs, vec![(DIP, RS1), (DIP, RS2)]);
        // answered: no more requests; nothing before the scan interval either
        let mut f = answer(RS1, RS1_MAC);
        assert_eq!(send(&mut w, &mut f, 20), Verdict::Consumed);
        let mut f = answer(RS2, RS2_MAC);
        assert_eq!(send(&mut w, &mut f, 20), Verdict::Consumed);
        assert_eq!(w.housekeeping(50, &mut frames), 0);
        assert_eq!(w.housekeeping(5_000, &mut frames), 0);
        // a new VIP gets one gratuitous ARP
        let mut m2 = m.clone();
        let k2 = ServiceKey {
            proto: Protocol::Tcp,
            vip: Ipv4Addr::new(198, 18, 0, 101),
            port: 443,
        };
        m2.add_service(ServiceSpec {
            key: k2,
            scheduler: SchedulerKind::Rr,
            persistent: None,
            netmask: Ipv4Addr::BROADCAST,
            flags: vec![],
        })
        .unwrap();
        sh.publish(&m2).unwrap();
        w.refresh();
        assert_eq!(w.housekeeping(5_001, &mut frames), 1);
        assert_eq!(w.housekeeping(5_002, &mut frames), 0);
        // too little room: the rest waits for the next call
        let mut m3 = m2.clone();
        for last in [102u8, 103] {
            m3.add_service(ServiceSpec {
                key: ServiceKey {
                    proto: Protocol::Tcp,
                    vip: Ipv4Addr::new(198, 18, 0, last),
                    port: 443,
                },
                scheduler: SchedulerKind::Rr,
                persistent: None,
                netmask: Ipv4Addr::BROADCAST,
                flags: vec![],
            })
            .unwrap();
        }
        sh.publish(&m3).unwrap();
        w.refresh();
        assert_eq!(w.housekeeping(5_003, &mut frames[..1]), 1);
        assert_eq!(w.housekeeping(5_004, &mut frames[..0]), 0);
        assert_eq!(w.housekeeping(5_005, &mut frames), 1);
    }

    #[test]
    fn engine_side_counters() {
        let (sh, m, mut w) = setup(SchedulerKind::Rr, 1, 1);
        w.count_rx(5);
        w.count_tx(4);
        w.count_drop(DropReason::TxFull, 1);
        let r = sh.stats(&m);
        assert_eq!((r.workers[0].rx_packets, r.workers[0].tx_packets), (5, 4));
        assert_eq!(r.drops.get("tx_full"), Some(&1));
    }

    fn fuzz_worker() -> Worker {
        let (_sh, _m, w) = setup(SchedulerKind::Wrr, 2, 1);
        w
    }

    #[test]
    fn prefetch_key_reads_the_flow_key() {
        let k = FlowKey {
            src: u32::from(CLIENT),
            dst: u32::from(VIP),
            sport: 40_000,
            dport: 80,
            proto: 6,
        };
        let f = tcp_frame(CLIENT, 40_000, VIP, 80, l4::TcpFlags::ACK);
        assert_eq!(prefetch_key(&f), Some(k));
        // an IPv4 option (IHL 6) moves the ports
        let mut o = f.clone();
        o[14] = 0x46;
        o[17] = 44; // total length: 24 + 20
        o.splice(34..34, [1, 1, 1, 1]);
        fix_csum(&mut o);
        assert_eq!(prefetch_key(&o), Some(k));
        // UDP: protocol 17
        let mut u = f.clone();
        u[23] = 17;
        fix_csum(&mut u);
        assert_eq!(prefetch_key(&u), Some(FlowKey { proto: 17, ..k }));
        // not keyed: ICMP, ARP, IPv6 version nibble, IHL below 5, truncated headers
        let mut icmp = f.clone();
        icmp[23] = 1;
        assert_eq!(prefetch_key(&icmp), None);
        let mut a = f.clone();
        a[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(prefetch_key(&a), None);
        let mut v6 = f.clone();
        v6[14] = 0x65;
        assert_eq!(prefetch_key(&v6), None);
        let mut short_ihl = f.clone();
        short_ihl[14] = 0x44;
        assert_eq!(prefetch_key(&short_ihl), None);
        assert_eq!(prefetch_key(&f[..37]), None);
        // the total length (40) beyond a truncated frame
        assert_eq!(prefetch_key(&f[..53]), None);
        assert_eq!(prefetch_key(&f[..54]), Some(k));
        assert_eq!(prefetch_key(&[]), None);
        // and the worker's prefetch changes nothing
        let (_sh, _m, mut w) = setup(SchedulerKind::Rr, 1, 1);
        let mut g = tcp_frame(CLIENT, 40_000, VIP, 80, l4::TcpFlags::SYN);
        w.prefetch(&g);
        assert_eq!(w.flow_count(), 0);
        assert_eq!(w.process(&mut g, 1000), Verdict::Forward);
        assert_eq!(w.flow_count(), 1);
    }

    /// A burst whose every frame carries the same NIC checksum verdict.
    struct Flagged(Vec<Vec<u8>>, RxCsum);

    impl Frames for Flagged {
        fn count(&self) -> usize {
            self.0.len()
        }
        fn frame(&self, i: usize) -> Option<&[u8]> {
            self.0.get(i).map(|f| &f[..])
        }
        fn frame_mut(&mut self, i: usize) -> Option<&mut [u8]> {
            self.0.get_mut(i).map(|f| &mut f[..])
        }
        fn ip_csum(&self, _i: usize) -> RxCsum {
            self.1
        }
    }

    fn decide(w: &mut Worker, frames: Vec<Vec<u8>>, csum: RxCsum, now_ms: u64) -> Vec<Verdict> {
        let mut b = Flagged(frames, csum);
        let mut v = vec![Verdict::Consumed; b.0.len()];
        w.process_burst(&mut b, &mut v, now_ms);
        v
    }

    #[test]
    fn ip_header_sums_of_known_headers() {
        // An IPv4 header as captured (20 bytes, checksum 0xb861 right):
        let good: [u8; 20] = [
            0x45, 0x00, 0x00, 0x73, // v4 IHL 5, TOS 0, total length 115
            0x00, 0x00, 0x40, 0x00, // id 0, DF
            0x40, 0x11, 0xb8, 0x61, // TTL 64, UDP, checksum 0xb861
            0xc0, 0xa8, 0x00, 0x01, // 192.168.0.1
            0xc0, 0xa8, 0x00, 0xc7, // 192.168.0.199
        ];
        let general = |h: &[u8]| ipv4::Packet::new_unchecked(h).verify_checksum();
        assert!(ip_header20_sum_ok(&good));
        assert!(general(&good));
        for i in 0..20 {
            let mut bad = good;
            bad[i] ^= 0x10;
            assert!(!ip_header20_sum_ok(&bad), "byte {i} changed");
            assert!(!general(&bad), "byte {i} changed");
        }
        // Every word 0xffff, the checksum too: the sum that carries the most.
        assert!(ip_header20_sum_ok(&[0xff; 20]));
        // The test helper and the sums agree on the frames of these tests.
        let mut f = syn(1);
        assert!(ip_header20_sum_ok(f[14..34].try_into().unwrap()));
        f[22] = 1; // TTL 1, checksum not updated
        assert!(!ip_header20_sum_ok(f[14..34].try_into().unwrap()));
        fix_csum(&mut f);
        assert!(ip_header20_sum_ok(f[14..34].try_into().unwrap()));
    }

    #[test]
    fn bad_ip_checksums_are_dropped_unless_the_nic_checked() {
        let (sh, m, mut w) = setup(SchedulerKind::Rr, 1, 1);
        let corrupt = |p: u16| {
            let mut f = syn(p);
            f[22] ^= 0x01; // one bit of the TTL flipped on the way
            f
        };
        let mut options = syn(3);
        options.splice(34..34, [1u8, 1, 1, 1]);
        options[14] = 0x46;
        options[17] = 44;
        fix_csum(&mut options);
        options[35] ^= 0x80; // an option byte flipped
        for (f, what) in [(corrupt(1), "no options"), (options.clone(), "IHL 6")] {
            let mut g = f.clone();
            assert_eq!(
                send(&mut w, &mut g, 0),
                Verdict::Drop(DropReason::BadIpChecksum),
                "{what}"
            );
            assert_eq!(g, f, "dropped frames are not modified");
        }
        // In a burst, not checked by the NIC: checked here.
        let v = decide(
            &mut w,
            vec![corrupt(2), options.clone()],
            RxCsum::Unknown,
            0,
        );
        assert_eq!(v, [Verdict::Drop(DropReason::BadIpChecksum); 2]);
        // The NIC's word is taken: "bad" drops a frame whose sum is right...
        let v = decide(&mut w, vec![syn(4), syn(5)], RxCsum::Bad, 0);
        assert_eq!(v, [Verdict::Drop(DropReason::BadIpChecksum); 2]);
        // ... and "good" spares the work (the sum is not looked at again).
        let v = decide(&mut w, vec![corrupt(6), options], RxCsum::Good, 0);
        assert_eq!(v, [Verdict::Forward; 2]);
        assert_eq!(sh.stats(&m).drops.get("bad_ip_checksum"), Some(&6));
        assert_eq!(w.flow_count(), 2);
    }

    #[test]
    fn martian_sources_are_dropped_and_create_no_flow() {
        let (sh, m, mut w) = setup(SchedulerKind::Rr, 1, 1);
        let martians = [
            Ipv4Addr::new(0, 0, 0, 0),
            Ipv4Addr::new(0, 1, 2, 3),
            Ipv4Addr::new(127, 0, 0, 1),
            Ipv4Addr::new(127, 255, 255, 254),
            Ipv4Addr::new(224, 0, 0, 1),
            Ipv4Addr::new(239, 255, 255, 250),
            Ipv4Addr::new(240, 0, 0, 1),
            Ipv4Addr::new(255, 255, 255, 255),
            VIP,
            DIP,
        ];
        for src in martians {
            for flags in [l4::TcpFlags::SYN, l4::TcpFlags::ACK] {
                let mut f = tcp_frame(src, 1234, VIP, 80, flags);
                assert_eq!(
                    send(&mut w, &mut f, 0),
                    Verdict::Drop(DropReason::MartianSource),
                    "{src} flags {flags:#x}"
                );
            }
            let mut u = tcp_frame(src, 1234, VIP, 80, 0);
            u[23] = 17; // UDP
            fix_csum(&mut u);
            assert_eq!(
                send(&mut w, &mut u, 0),
                Verdict::Drop(DropReason::MartianSource)
            );
        }
        assert_eq!(w.flow_count(), 0);
        assert_eq!(
            sh.stats(&m).drops.get("martian_source"),
            Some(&(3 * martians.len() as u64))
        );
        // Neighbours of the martian ranges are clients like any other.
        for src in [
            Ipv4Addr::new(1, 0, 0, 1),
            Ipv4Addr::new(126, 255, 255, 255),
            Ipv4Addr::new(128, 0, 0, 1),
            Ipv4Addr::new(223, 255, 255, 254),
            Ipv4Addr::new(198, 18, 0, 2),
        ] {
            let mut f = tcp_frame(src, 1234, VIP, 80, l4::TcpFlags::SYN);
            assert_eq!(send(&mut w, &mut f, 0), Verdict::Forward, "{src}");
        }
    }

    #[test]
    fn only_a_syn_schedules_a_tcp_connection_unless_sloppy() {
        use l4::TcpFlags as F;
        // (flags, scheduled by default, scheduled with sloppy_tcp)
        let table: [(u8, bool, bool); 9] = [
            (F::SYN, true, true),
            (F::SYN | F::ACK, true, true),
            (F::SYN | F::FIN, true, true),
            (F::ACK, false, true),
            (F::PSH | F::ACK, false, true),
            (F::FIN | F::ACK, false, true),
            (0, false, true), // NULL scan
            (F::RST, false, false),
            (F::SYN | F::RST, false, false),
        ];
        for sloppy in [false, true] {
            let m = model(SchedulerKind::Rr, 1, 1);
            let (sh, mut w) = worker_behaving(
                &m,
                crate::snapshot::Behaviour {
                    expire_nodest_conn: false,
                    sloppy_tcp: sloppy,
                    vip_other_ports_to_kernel: false,
                },
            );
            let mut refused = 0u64;
            for (i, &(flags, plain, with_sloppy)) in table.iter().enumerate() {
                let ok = if sloppy { with_sloppy } else { plain };
                let before = w.flow_count();
                let mut f = tcp_frame(CLIENT, 2000 + i as u16, VIP, 80, flags);
                let v = send(&mut w, &mut f, 0);
                if ok {
                    assert_eq!(v, Verdict::Forward, "flags {flags:#x} sloppy {sloppy}");
                    assert_eq!(w.flow_count(), before + 1);
                } else {
                    assert_eq!(
                        v,
                        Verdict::Drop(DropReason::TcpNotSyn),
                        "flags {flags:#x} sloppy {sloppy}"
                    );
                    assert_eq!(w.flow_count(), before, "no flow for {flags:#x}");
                    refused += 1;
                }
            }
            // The same segments in a burst decide alike (nothing new: every flow above is
            // either stored or refused again).
            let frames = (0..table.len())
                .map(|i| tcp_frame(CLIENT, 2000 + i as u16, VIP, 80, table[i].0))
                .collect();
            let v = decide(&mut w, frames, RxCsum::Unknown, 0);
            let again = v
                .iter()
                .filter(|v| **v == Verdict::Drop(DropReason::TcpNotSyn))
                .count();
            // A RST of a stored flow is forwarded (it belongs to the connection).
            assert_eq!(again as u64, refused, "sloppy {sloppy}: {v:?}");
            // Once a SYN made the flow, its ACKs pass.
            let mut syn_f = tcp_frame(CLIENT, 3000, VIP, 80, F::SYN);
            assert_eq!(send(&mut w, &mut syn_f, 0), Verdict::Forward);
            let mut ack_f = tcp_frame(CLIENT, 3000, VIP, 80, F::ACK);
            assert_eq!(send(&mut w, &mut ack_f, 0), Verdict::Forward);
            assert!(sh.stats(&m).drops.get("tcp_not_syn").copied().unwrap_or(0) >= refused);
        }
    }

    #[test]
    fn a_spoofed_ack_flood_fills_nothing() {
        let (_sh, _m, mut w) = setup(SchedulerKind::Rr, 1, 1);
        let frames: Vec<Vec<u8>> = (0..500u16)
            .map(|p| {
                tcp_frame(
                    Ipv4Addr::new(203, 0, 113, (p % 250) as u8 + 1),
                    p,
                    VIP,
                    80,
                    l4::TcpFlags::ACK,
                )
            })
            .collect();
        let v = decide(&mut w, frames, RxCsum::Unknown, 0);
        assert!(v.iter().all(|v| *v == Verdict::Drop(DropReason::TcpNotSyn)));
        assert_eq!(w.flow_count(), 0);
    }

    #[test]
    fn segments_of_flows_the_full_table_could_not_store_are_forwarded_statelessly() {
        // A table of 8 entries: the SYNs that do not fit are forwarded by a stateless choice,
        // and so are their ACKs (they cannot be told from a spoofed ACK; nothing is stored).
        let m = model(SchedulerKind::Rr, 1, 1);
        let (sh, mut w) = worker_with(&m, 8, true);
        for p in 0..40u16 {
            assert_eq!(send(&mut w, &mut syn(p), 0), Verdict::Forward);
        }
        for p in 0..40u16 {
            assert_eq!(send(&mut w, &mut ack(p), 0), Verdict::Forward, "port {p}");
        }
        assert_eq!(w.flow_count(), 8);
        assert_eq!(sh.stats.drops(DropReason::TcpNotSyn), 0);
    }

    #[test]
    fn deleted_servers_flows_are_not_rescheduled_by_an_ack_without_sloppy_tcp() {
        // expire_nodest_conn on, sloppy_tcp off (IPVS's defaults but the first): the flow of a
        // deleted server expires at its next segment, which is not a SYN: dropped, and the
        // client's next SYN is scheduled anew.
        let m = model(SchedulerKind::Rr, 1, 1);
        let (sh, mut w) = worker_behaving(
            &m,
            crate::snapshot::Behaviour {
                expire_nodest_conn: true,
                sloppy_tcp: false,
                vip_other_ports_to_kernel: false,
            },
        );
        let owners = establish(&mut w, 0..4, 0);
        let mut m = m;
        m.delete_server(&key(), RS1, 0).unwrap();
        sh.publish(&m).unwrap();
        w.refresh();
        for (p, owner) in owners.iter().enumerate() {
            let mut f = ack(p as u16);
            let v = send(&mut w, &mut f, 1000);
            if *owner == RS1_MAC {
                assert_eq!(v, Verdict::Drop(DropReason::TcpNotSyn));
                let mut s = syn(p as u16);
                assert_eq!(send(&mut w, &mut s, 1000), Verdict::Forward);
                assert_eq!(dst_mac(&s), RS2_MAC);
            } else {
                assert_eq!(v, Verdict::Forward);
            }
        }
        assert_eq!(sh.stats.drops(DropReason::TcpNotSyn), 2);
    }

    /// A burst with holes (freed slots), as the engine's can have.
    struct Holes(Vec<Option<Vec<u8>>>);

    impl Frames for Holes {
        fn count(&self) -> usize {
            self.0.len()
        }
        fn frame(&self, i: usize) -> Option<&[u8]> {
            self.0.get(i)?.as_deref()
        }
        fn frame_mut(&mut self, i: usize) -> Option<&mut [u8]> {
            self.0.get_mut(i)?.as_deref_mut()
        }
    }

    #[test]
    fn a_burst_is_decided_in_chunks_up_to_the_verdicts_given() {
        let (sh, _m, mut w) = setup(SchedulerKind::Rr, 1, 1);
        // 70 new flows: more than two chunks
        let syn = |p: u16| tcp_frame(CLIENT, 40_000 + p, VIP, 80, l4::TcpFlags::SYN);
        let mut frames: Vec<Vec<u8>> = (0..70).map(syn).collect();
        let mut verdicts = [Verdict::Drop(DropReason::NoService); 70];
        w.process_burst(&mut frames[..], &mut verdicts, 1000);
        assert!(verdicts.iter().all(|v| *v == Verdict::Forward));
        assert_eq!(w.flow_count(), 70);
        assert_eq!(
            sh.stats.worker(0).map(|c| c.forwarded.load(Relaxed)),
            Some(70)
        );
        // fewer verdicts than frames: only the first ones are decided, the rest untouched
        let mut more: Vec<Vec<u8>> = (100..110).map(syn).collect();
        let before = more.clone();
        let mut three = [Verdict::Consumed; 3];
        w.process_burst(&mut more[..], &mut three, 1000);
        assert_eq!(three, [Verdict::Forward; 3]);
        assert_eq!(w.flow_count(), 73);
        assert_eq!(&more[3..], &before[3..]);
        assert_ne!(more[0], before[0]);
    }

    #[test]
    fn empty_slots_of_a_burst_are_skipped_uncounted() {
        let (sh, _m, mut w) = setup(SchedulerKind::Rr, 1, 1);
        let syn = |p: u16| tcp_frame(CLIENT, 40_000 + p, VIP, 80, l4::TcpFlags::SYN);
        let mut b = Holes(vec![
            Some(syn(1)),
            None,
            Some(vec![0; 10]),
            None,
            Some(syn(2)),
        ]);
        let mut v = [Verdict::Forward; 5];
        w.process_burst(&mut b, &mut v, 1000);
        assert_eq!(
            v,
            [
                Verdict::Forward,
                Verdict::Consumed,
                Verdict::Drop(DropReason::ShortFrame),
                Verdict::Consumed,
                Verdict::Forward
            ]
        );
        let c = sh.stats.worker(0).expect("worker 0");
        assert_eq!(c.forwarded.load(Relaxed), 2);
        let dropped: u64 = c.drops.iter().map(|d| d.load(Relaxed)).sum();
        assert_eq!(dropped, 1);
    }

    /// What the `wire` views read from a frame: the 5-tuple and (TCP) flags of an unfragmented
    /// IPv4 TCP/UDP packet whose transport header lies inside its total length.
    fn parse_with_views(f: &[u8]) -> Option<(FlowKey, Option<l4::TcpFlags>)> {
        let eth = ethernet::Frame::new_checked(f).ok()?;
        let ip = ipv4::Packet::new_checked(eth.payload()).ok()?;
        if ip.is_fragment() {
            return None;
        }
        let (sport, dport, flags) = match ip.next_header() {
            6 => {
                let t = l4::TcpPacket::new_checked(ip.payload()).ok()?;
                (t.src_port(), t.dst_port(), Some(t.flags()))
            }
            17 => {
                let u = l4::UdpPacket::new_checked(ip.payload()).ok()?;
                (u.src_port(), u.dst_port(), None)
            }
            _ => return None,
        };
        let key = FlowKey {
            src: ip.src_addr_u32(),
            dst: ip.dst_addr_u32(),
            sport,
            dport,
            proto: ip.next_header(),
        };
        Some((key, flags))
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut w = fuzz_worker();
            let mut f = bytes.clone();
            w.prefetch(&f);
            let _ = prefetch_key(&f);
            let v = w.process(&mut f, 0);
            if let Verdict::Drop(_) = v {
                prop_assert_eq!(f, bytes);
            }
        }

        #[test]
        fn arbitrary_ipv4_and_arp_bodies_never_panic(
            arp_or_ip in any::<bool>(),
            body in proptest::collection::vec(any::<u8>(), 0..120),
            now in any::<u64>(),
        ) {
            let mut w = fuzz_worker();
            let mut f = vec![0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x0a];
            f.extend_from_slice(if arp_or_ip { &[0x08, 0x06] } else { &[0x08, 0x00] });
            if !arp_or_ip && body.len() > 20 {
                // steer towards the VIP so the deeper paths run
                let mut b = body.clone();
                b[0] = 0x45;
                b[16..20].copy_from_slice(&VIP.octets());
                f.extend_from_slice(&b);
            } else {
                f.extend_from_slice(&body);
            }
            w.prefetch(&f);
            let _ = w.process(&mut f, now);
            let mut frames = [[0u8; 64]; 2];
            w.housekeeping(now, &mut frames);
        }

        #[test]
        fn the_hot_parse_agrees_with_the_wire_views(
            tweaks in proptest::collection::vec((0usize..80, any::<u8>()), 0..5),
            len in 30usize..96,
            udp in any::<bool>(),
            options in 0usize..3,
            total_len in proptest::option::of(0u16..100),
            ihl_frag in proptest::option::of((0u8..16, any::<u16>())),
        ) {
            // A TCP or UDP frame, with 0-2 words of IPv4 options, a few bytes changed and cut
            // or padded. The hot path's hand-written parse ([`parse_l4`]: the plain one, then
            // the general one) and the typed views of `wire` (what the rest of the code reads
            // packets with) must accept the same frames and read the same 5-tuple and flags.
            let mut f = tcp_frame(CLIENT, 40_000, VIP, 80, l4::TcpFlags::ACK);
            if udp {
                f[23] = 17;
            }
            if options > 0 {
                let at = ethernet::HEADER_LEN + 20;
                let extra = 4 * options;
                f.splice(at..at, std::iter::repeat(1u8).take(extra)); // NOP options
                f[ethernet::HEADER_LEN] = 0x45 + options as u8;
                let tl = u16::from_be_bytes([f[16], f[17]]) + extra as u16;
                f[16..18].copy_from_slice(&tl.to_be_bytes());
            }
            // The length fields the parses check, set directly (random bytes rarely hit them).
            if let Some(tl) = total_len {
                f[16..18].copy_from_slice(&tl.to_be_bytes());
            }
            if let Some((ihl, frag)) = ihl_frag {
                f[ethernet::HEADER_LEN] = 0x40 | ihl;
                f[20..22].copy_from_slice(&(frag & 0x3fff).to_be_bytes());
            }
            f.resize(len, 0);
            for (at, v) in tweaks {
                if let Some(b) = f.get_mut(at) {
                    *b = v;
                }
            }
            // (The header checksum, which the tweaks break, is the NIC's here: tested apart.)
            let hot = parse_l4(&f, RxCsum::Good).ok().map(|fl| (fl.key.key(), fl.tcp_flags()));
            proptest::prop_assert_eq!(hot, parse_with_views(&f));
        }

        #[test]
        fn the_plain_parse_agrees_with_the_full_one(
            tweaks in proptest::collection::vec((0usize..64, any::<u8>()), 0..4),
            len in 40usize..80,
            udp in any::<bool>(),
        ) {
            // A valid TCP or UDP frame with a few bytes changed (version/IHL, total length,
            // fragment bits, protocol, ports, flags...) and cut or padded: whatever the plain
            // parse accepts, the full parse accepts with the same result.
            let mut f = tcp_frame(CLIENT, 40_000, VIP, 80, l4::TcpFlags::ACK);
            if udp {
                f[23] = 17;
            }
            f.resize(len, 0);
            for (at, v) in tweaks {
                if let Some(b) = f.get_mut(at) {
                    *b = v;
                }
            }
            for csum in [RxCsum::Unknown, RxCsum::Good, RxCsum::Bad] {
                if let Some(plain) = parse_l4_plain(&f, csum) {
                    proptest::prop_assert_eq!(parse_l4_any(&f, csum), Ok(plain));
                }
            }
        }

        #[test]
        fn a_burst_decides_as_frames_one_by_one(
            frames in proptest::collection::vec(
                (
                    any::<bool>(),
                    0u16..6,
                    0u8..0x20,
                    proptest::collection::vec(any::<u8>(), 0..70),
                    0u8..4,
                ),
                1..80,
            ),
            cuts in proptest::collection::vec(1usize..40, 1..6),
        ) {
            // The same frames through `process` on one worker and `process_burst` (in bursts
            // of the sizes `cuts`, then the rest; the same flow may come back within a burst,
            // staged before its previous frame is decided) on an identical one: same
            // verdicts, same bytes.
            let (_a, _ma, mut plain) = setup(SchedulerKind::Rr, 1, 1);
            let (_b, _mb, mut burst) = setup(SchedulerKind::Rr, 1, 1);
            let mut inputs: Vec<Vec<u8>> = frames
                .iter()
                .map(|(valid, port, flags, junk, dst)| {
                    if *valid {
                        let mut f = tcp_frame(CLIENT, 40_000 + port, VIP, 80, *flags);
                        // destination: ours (0, 1), another host's (2), a group address (3)
                        match dst {
                            2 => f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x99]),
                            3 => f[..6].copy_from_slice(&[0x01, 0, 0x5e, 0, 0, 0x01]),
                            _ => {}
                        }
                        f
                    } else {
                        junk.clone()
                    }
                })
                .collect();
            let mut copy = inputs.clone();
            let expected: Vec<Verdict> =
                inputs.iter_mut().map(|f| plain.process(f, 5_000)).collect();
            let mut got = vec![Verdict::Consumed; copy.len()];
            let mut at = 0usize;
            for c in cuts.iter().copied().chain([usize::MAX]) {
                let end = at.saturating_add(c).min(copy.len());
                burst.process_burst(&mut copy[at..end], &mut got[at..end], 5_000);
                at = end;
            }
            prop_assert_eq!(expected, got);
            prop_assert_eq!(inputs, copy);
        }

        #[test]
        fn persistent_networks_stick_to_one_server_on_any_worker(
            conns in proptest::collection::vec((any::<bool>(), 0u8..4, any::<u16>(), any::<bool>()), 1..60),
        ) {
            // two /24 client networks, a /24 persistence mask, connections spread over two workers
            let (m, _) = persistent_model(80, 300, Ipv4Addr::new(255, 255, 255, 0));
            let (_sh, mut ws) = two_workers(&m);
            let mut owner: [Option<[u8; 6]>; 2] = [None, None];
            for (i, (on_w1, host, sport, net_b)) in conns.into_iter().enumerate() {
                let src = Ipv4Addr::new(198, 18, 1 + u8::from(net_b), 10 + host);
                let w = &mut ws[usize::from(on_w1)];
                let got = connect(w, src, sport, 80, i as u64 * 100);
                let o = owner[usize::from(net_b)].get_or_insert(got);
                prop_assert_eq!(*o, got);
            }
        }

        #[test]
        fn wire_views_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(p) = ipv4::Packet::new_checked(&bytes[..]) {
                let _ = (p.payload(), p.verify_checksum(), p.is_fragment(), p.src_addr());
            }
            if let Ok(a) = arp::Packet::new_checked(&bytes[..]) {
                let _ = (a.operation(), a.target_protocol_addr(), a.source_hardware_addr());
            }
            let e = ethernet::Frame::new_unchecked(&bytes[..]);
            let _ = (e.dst_addr(), e.ethertype(), e.payload());
            let t = l4::TcpPacket::new_unchecked(&bytes[..]);
            let _ = (t.src_port(), t.flags());
        }
    }

    // ---- ARP spoofing and the neighbour table (issue 12, findings 1 and 3) ----

    const EVIL_MAC: [u8; 6] = [0x02, 0xde, 0xad, 0xbe, 0xef, 0x01];
    const NEW_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x21];

    /// An ARP frame as a host sends it (Ethernet source = sender hardware address), with the
    /// target hardware address given.
    fn arp_pkt(
        op: u16,
        sha: [u8; 6],
        spa: Ipv4Addr,
        tha: [u8; 6],
        tpa: Ipv4Addr,
        eth_dst: [u8; 6],
    ) -> Vec<u8> {
        let mut f = arp_frame(op, sha, spa, tpa, eth_dst);
        arp::Packet::new_unchecked(&mut f[14..]).set_target_hardware_addr(tha);
        f
    }

    /// `ip` answering our request: "`ip` is-at `mac`", unicast to the port, about the DIP.
    fn answer(ip: Ipv4Addr, mac: [u8; 6]) -> Vec<u8> {
        arp_pkt(2, mac, ip, PORT_MAC, DIP, PORT_MAC)
    }

    /// Run the ARP worker's housekeeping at `now_ms`; the addresses it asked for.
    fn asked(w: &mut Worker, now_ms: u64) -> Vec<Ipv4Addr> {
        let mut frames = [[0u8; 64]; 8];
        let n = w.housekeeping(now_ms, &mut frames);
        frames[..n]
            .iter()
            .filter_map(|f| {
                let a = arp::Packet::new_checked(&f[14..42]).ok()?;
                (a.operation() == arp::Operation::Request && a.source_protocol_addr() == DIP)
                    .then(|| a.target_protocol_addr())
            })
            .collect()
    }

    /// A worker whose real servers (RS1 weight 1, RS2 weight 0: every new flow goes to RS1)
    /// were resolved the way the wire resolves them: our requests at 0 ms, their answers at
    /// 10 ms.
    fn resolved_by_arp() -> (Arc<Shared>, Model, Worker) {
        let m = model(SchedulerKind::Rr, 1, 0);
        let (sh, mut w) = worker_with(&m, 64, false);
        let a = asked(&mut w, 0);
        assert!(a.contains(&RS1) && a.contains(&RS2), "{a:?}");
        let mut f = answer(RS1, RS1_MAC);
        assert_eq!(send(&mut w, &mut f, 10), Verdict::Consumed);
        let mut f = answer(RS2, RS2_MAC);
        assert_eq!(send(&mut w, &mut f, 10), Verdict::Consumed);
        assert_eq!(sh.neigh.mac(sh.neigh.find(RS1).unwrap()), Some(RS1_MAC));
        (sh, m, w)
    }

    /// Where a new connection's SYN goes (its destination MAC), or why not.
    fn syn_goes_to(w: &mut Worker, sport: u16, now_ms: u64) -> Result<[u8; 6], Verdict> {
        let mut f = syn(sport);
        match send(w, &mut f, now_ms) {
            Verdict::Forward => Ok(dst_mac(&f)),
            v => Err(v),
        }
    }

    #[test]
    fn spoofed_arp_never_redirects_a_resolved_real_server() {
        let bcast = [0xff; 6];
        let other = Ipv4Addr::new(198, 18, 0, 254);
        // (case, frame, verdict): every frame claims RS1 for another MAC (or a MAC no host
        // can have); none may change where RS1's traffic goes.
        let cases: Vec<(&str, Vec<u8>, Verdict)> = vec![
            (
                "unsolicited reply to us",
                answer(RS1, EVIL_MAC),
                Verdict::Drop(DropReason::ArpRefused),
            ),
            (
                "unsolicited broadcast reply",
                arp_pkt(2, EVIL_MAC, RS1, bcast, DIP, bcast),
                Verdict::Drop(DropReason::ArpRefused),
            ),
            (
                "gratuitous request",
                arp_pkt(1, EVIL_MAC, RS1, [0; 6], RS1, bcast),
                Verdict::Drop(DropReason::ArpRefused),
            ),
            (
                "gratuitous reply",
                arp_pkt(2, EVIL_MAC, RS1, bcast, RS1, bcast),
                Verdict::Drop(DropReason::ArpRefused),
            ),
            (
                // answered (we answer who asks for the DIP), but not learned from
                "request for the DIP with the RS as sender",
                arp_pkt(1, EVIL_MAC, RS1, [0; 6], DIP, bcast),
                Verdict::Reply,
            ),
            (
                "request for another host with the RS as sender",
                arp_pkt(1, EVIL_MAC, RS1, [0; 6], other, bcast),
                Verdict::Drop(DropReason::ArpRefused),
            ),
            (
                "the port's own MAC",
                answer(RS1, PORT_MAC),
                Verdict::Drop(DropReason::ArpRefused),
            ),
            (
                "zero MAC",
                answer(RS1, [0; 6]),
                Verdict::Drop(DropReason::ArpRefused),
            ),
            (
                "broadcast MAC",
                answer(RS1, bcast),
                Verdict::Drop(DropReason::ArpRefused),
            ),
            (
                "multicast MAC",
                answer(RS1, [0x01, 0x00, 0x5e, 0, 0, 0x01]),
                Verdict::Drop(DropReason::ArpRefused),
            ),
        ];
        // each frame racing the real answer (20 ms after our request) and unasked (5 s after)
        for at in [20, 5_000] {
            for (i, (case, f, want)) in cases.iter().enumerate() {
                let (sh, m, mut w) = resolved_by_arp();
                let mut f = f.clone();
                assert_eq!(send(&mut w, &mut f, at), *want, "{case} at {at}");
                let slot = sh.neigh.find(RS1).unwrap();
                assert_eq!(sh.neigh.mac(slot), Some(RS1_MAC), "{case}: MAC changed");
                // the next connections still go to the real server
                for n in 0..4u16 {
                    let now = at + 10 + u64::from(n) * 100;
                    assert_eq!(
                        syn_goes_to(&mut w, 1000 + n, now),
                        Ok(RS1_MAC),
                        "{case} at {at}: connection {n}"
                    );
                }
                let r = sh.stats(&m);
                let dropped = u64::from(*want != Verdict::Reply);
                assert_eq!(
                    r.drops.get("arp_refused").copied().unwrap_or(0),
                    dropped,
                    "{case} (#{i}) at {at}"
                );
                assert_eq!(r.arp_refused, 1, "{case} at {at}: the refusal is counted");
            }
        }
    }

    #[test]
    fn a_different_mac_is_verified_before_use_and_followed_if_only_it_answers() {
        // RS1's NIC changed: the new NIC announces itself, then answers our requests; the old
        // MAC is silent. Traffic stays on the old MAC during the check, then follows.
        let (sh, m, mut w) = resolved_by_arp();
        let slot = sh.neigh.find(RS1).unwrap();
        assert_eq!(
            asked(&mut w, 5_000),
            Vec::<Ipv4Addr>::new(),
            "resolved: quiet"
        );
        let mut f = arp_pkt(1, NEW_MAC, RS1, [0; 6], RS1, [0xff; 6]);
        assert_eq!(
            send(&mut w, &mut f, 5_010),
            Verdict::Drop(DropReason::ArpRefused)
        );
        assert_eq!(sh.neigh.mac(slot), Some(RS1_MAC), "not at once");
        assert_eq!(syn_goes_to(&mut w, 2000, 5_020), Ok(RS1_MAC));
        // a fresh request goes out at once, and again each retry interval
        assert_eq!(asked(&mut w, 5_110), vec![RS1]);
        let mut f = answer(RS1, NEW_MAC);
        assert_ne!(
            send(&mut w, &mut f, 5_120),
            Verdict::Drop(DropReason::ArpNotForUs)
        );
        assert_eq!(sh.neigh.mac(slot), Some(RS1_MAC), "still verifying");
        assert_eq!(asked(&mut w, 6_120), vec![RS1]);
        let mut f = answer(RS1, NEW_MAC);
        send(&mut w, &mut f, 6_130);
        // the window over, only the new MAC answered: followed
        let mut now = 6_130;
        while sh.neigh.mac(slot) == Some(RS1_MAC) && now < 9_000 {
            now += 100;
            asked(&mut w, now);
        }
        assert_eq!(sh.neigh.mac(slot), Some(NEW_MAC), "followed at {now} ms");
        assert!(now <= 7_500, "followed within the window ({now} ms)");
        assert_eq!(syn_goes_to(&mut w, 2001, now + 1), Ok(NEW_MAC));
        assert!(matches!(
            sh.neighbour(RS1),
            NeighState::Reachable { mac, .. } if mac.0 == NEW_MAC
        ));
        let r = sh.stats(&m);
        assert_eq!(
            r.arp_refused, 1,
            "only the unasked announcement was refused"
        );
        let ev = sh.neigh.events();
        assert_eq!((ev.changes, ev.conflicts), (1, 0));
    }

    #[test]
    fn a_conflict_keeps_the_old_mac() {
        // An attacker claims RS1 and answers our requests too; the real RS1 answers as well.
        let (sh, m, mut w) = resolved_by_arp();
        let slot = sh.neigh.find(RS1).unwrap();
        let mut f = answer(RS1, EVIL_MAC);
        assert_eq!(
            send(&mut w, &mut f, 1_000),
            Verdict::Drop(DropReason::ArpRefused)
        );
        let mut now = 1_000;
        for _ in 0..40 {
            now += 100;
            if asked(&mut w, now).contains(&RS1) {
                for mac in [EVIL_MAC, RS1_MAC] {
                    let mut f = answer(RS1, mac);
                    send(&mut w, &mut f, now + 5);
                }
            }
            assert_eq!(sh.neigh.mac(slot), Some(RS1_MAC), "at {now} ms");
        }
        assert_eq!(syn_goes_to(&mut w, 3000, now), Ok(RS1_MAC));
        let ev = sh.neigh.events();
        assert!(ev.conflicts >= 1, "{ev:?}");
        assert_eq!(ev.changes, 0);
        assert!(sh.stats(&m).arp_refused >= 1);
        // the spoofer gave up: no more requests beyond the normal schedule
        assert_eq!(asked(&mut w, now + 100), Vec::<Ipv4Addr>::new());
    }

    #[test]
    fn only_an_answer_to_our_request_resolves() {
        let m = model(SchedulerKind::Rr, 1, 0);
        let (sh, mut w) = worker_with(&m, 64, false);
        let slot = sh.neigh.find(RS1).unwrap();
        // before any request of ours: an "answer", a gratuitous ARP, a request: none resolves
        for mut f in [
            answer(RS1, EVIL_MAC),
            arp_pkt(1, EVIL_MAC, RS1, [0; 6], RS1, [0xff; 6]),
            arp_pkt(1, EVIL_MAC, RS1, [0; 6], DIP, [0xff; 6]),
        ] {
            send(&mut w, &mut f, 0);
            assert_eq!(sh.neigh.mac(slot), None);
        }
        assert!(asked(&mut w, 0).contains(&RS1));
        // an answer to another host (not to our address and MAC) is not ours
        let mut f = arp_pkt(2, EVIL_MAC, RS1, ROUTER_MAC, DIP, [0xff; 6]);
        send(&mut w, &mut f, 10);
        let mut f = arp_pkt(
            2,
            EVIL_MAC,
            RS1,
            PORT_MAC,
            Ipv4Addr::new(198, 18, 0, 254),
            PORT_MAC,
        );
        send(&mut w, &mut f, 10);
        // nor a MAC no host has, asked or not
        for bad in [PORT_MAC, [0; 6], [0xff; 6], [0x33, 0x33, 0, 0, 0, 1]] {
            let mut f = answer(RS1, bad);
            assert_eq!(
                send(&mut w, &mut f, 10),
                Verdict::Drop(DropReason::ArpRefused)
            );
        }
        assert_eq!(sh.neigh.mac(slot), None);
        // the real answer, in time, does
        let mut f = answer(RS1, RS1_MAC);
        assert_eq!(send(&mut w, &mut f, 20), Verdict::Consumed);
        assert_eq!(sh.neigh.mac(slot), Some(RS1_MAC));
        assert_eq!(syn_goes_to(&mut w, 1, 30), Ok(RS1_MAC));
        // an answer long after our last request is not an answer
        let m2 = model(SchedulerKind::Rr, 1, 0);
        let (sh2, mut w2) = worker_with(&m2, 64, false);
        assert!(asked(&mut w2, 0).contains(&RS1));
        let mut f = answer(RS1, RS1_MAC);
        send(&mut w2, &mut f, 5_000);
        assert_eq!(sh2.neigh.mac(sh2.neigh.find(RS1).unwrap()), None);
        assert_eq!(sh.stats(&m).arp_refused, 4);
    }

    #[test]
    fn static_neighbours_never_change() {
        let mut m = model(SchedulerKind::Rr, 1, 0);
        m.set_static_neighbour(crate::model::StaticNeighbour {
            addr: RS1,
            mac: RS1_MAC,
        })
        .unwrap();
        let (sh, mut w) = worker_with(&m, 64, false);
        let slot = sh.neigh.find(RS1).unwrap();
        let mut now = 0;
        for mut f in [
            answer(RS1, EVIL_MAC),
            arp_pkt(1, EVIL_MAC, RS1, [0; 6], RS1, [0xff; 6]),
        ] {
            now += 100;
            asked(&mut w, now);
            assert_eq!(
                send(&mut w, &mut f, now + 1),
                Verdict::Drop(DropReason::ArpRefused)
            );
        }
        // the static MAC's own frames are fine
        let mut f = answer(RS1, RS1_MAC);
        assert_eq!(send(&mut w, &mut f, now + 2), Verdict::Consumed);
        assert_eq!(sh.neigh.mac(slot), Some(RS1_MAC));
        assert_eq!(
            sh.neighbour(RS1),
            NeighState::Static {
                mac: crate::report::MacAddr(RS1_MAC)
            }
        );
        assert_eq!(sh.stats(&m).arp_refused, 2);
    }

    #[test]
    fn add_delete_cycles_of_distinct_servers_never_fill_the_neighbour_table() {
        // 16 neighbour entries configured, 2 servers at any time, 20,000 cycles of adding and
        // deleting a third server with a new address each time; the worker moves on between
        // publications as the engine's loop does.
        let mut m = model(SchedulerKind::Rr, 1, 1);
        let (sh, mut w) = worker_with(&m, 64, true);
        for i in 0..20_000u32 {
            let addr = Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 19, 0, 0)) + i);
            m.add_server(&key(), server(addr, 1)).unwrap();
            sh.publish(&m)
                .unwrap_or_else(|e| panic!("cycle {i}: add {addr}: {e}"));
            w.refresh();
            m.delete_server(&key(), addr, 0).unwrap();
            sh.publish(&m)
                .unwrap_or_else(|e| panic!("cycle {i}: delete {addr}: {e}"));
            w.refresh();
        }
        assert!(sh.neigh.len() <= 4, "{} entries", sh.neigh.len());
        // the two servers kept their entries all along
        assert_eq!(syn_goes_to(&mut w, 1, 0).map(|_| ()), Ok(()));
        assert_eq!(sh.neigh.mac(sh.neigh.find(RS1).unwrap()), Some(RS1_MAC));
        assert_eq!(sh.neigh.mac(sh.neigh.find(RS2).unwrap()), Some(RS2_MAC));
    }

    #[test]
    fn a_lagging_worker_keeps_the_removed_servers_mac() {
        // Worker 1 holds a snapshot in which RS2 exists and has a flow to it; RS2 is deleted
        // and many other servers come and go, each resolved to its own MAC. Until worker 1
        // moves on, RS2's slot is never given to another address.
        let mut m = model(SchedulerKind::Rr, 1, 1);
        let (sh, mut ws) = two_workers(&m);
        let mut sport = 0;
        let first = loop {
            sport += 1;
            let mac = connect(&mut ws[1], CLIENT, sport, 80, 0);
            if mac == RS2_MAC {
                break sport;
            }
        };
        let rs2_slot = sh.neigh.find(RS2).unwrap();
        m.delete_server(&key(), RS2, 0).unwrap();
        sh.publish(&m).unwrap();
        let mut published = 0;
        for i in 0..64u32 {
            let addr = Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 19, 1, 0)) + i);
            m.add_server(&key(), server(addr, 1)).unwrap();
            if sh.publish(&m).is_err() {
                // the table may fill up while a worker lags: refused, never reused
                m.delete_server(&key(), addr, 0).unwrap();
                break;
            }
            published += 1;
            let slot = sh.neigh.find(addr).unwrap();
            assert_ne!(
                slot, rs2_slot,
                "RS2's slot reused while worker 1 may use it"
            );
            sh.neigh.confirm(slot, [0x02, 0, 0, 1, 0, i as u8], 0);
            ws[0].refresh();
            m.delete_server(&key(), addr, 0).unwrap();
            sh.publish(&m).unwrap();
            ws[0].refresh();
        }
        assert!(published >= 4, "{published}");
        // worker 1 still forwards RS2's flow by its old snapshot, to RS2's MAC
        let mut f = tcp_frame(CLIENT, first, VIP, 80, l4::TcpFlags::ACK);
        assert_eq!(send(&mut ws[1], &mut f, 100), Verdict::Forward);
        assert_eq!(dst_mac(&f), RS2_MAC);
        // once it moves on, the entries are reclaimed
        ws[1].refresh();
        for _ in 0..3 {
            sh.publish(&m).unwrap();
            ws[0].refresh();
            ws[1].refresh();
        }
        assert_eq!(sh.neigh.len(), 1, "only RS1 left");
    }

    #[test]
    fn the_neighbour_capacity_is_the_configured_one() {
        let n = 40u32;
        let sh = Shared::new(8, 64, n, 1, PORT_MAC, DIP, 16);
        let mut m = Model::new(8, 64);
        m.add_service(ServiceSpec {
            key: key(),
            scheduler: SchedulerKind::Rr,
            persistent: None,
            netmask: Ipv4Addr::BROADCAST,
            flags: vec![],
        })
        .unwrap();
        for i in 0..n {
            m.add_server(&key(), server(Ipv4Addr::from(0xc613_0000 + i), 1))
                .unwrap();
        }
        sh.publish(&m).expect("exactly the configured number fits");
        m.add_server(&key(), server(Ipv4Addr::from(0xc613_0000 + n), 1))
            .unwrap();
        let e = sh.publish(&m).unwrap_err();
        assert_eq!(e.to_string(), "neighbour table is full (40 entries)");
        assert_eq!(sh.neigh.capacity(), 40);
    }

    // ---- The kernel path (issue 13, part 1) ----

    /// A rate no test reaches: every frame for the kernel is admitted.
    const OPEN: KernelPath = KernelPath {
        rate_pps: 1_000_000,
        burst: 1_000_000,
    };

    /// [`setup`]'s worker (rr over RS1 and RS2 on VIP:80) with the kernel path on at `k` and
    /// the behaviour `b`.
    fn kernel_worker(k: KernelPath, b: crate::snapshot::Behaviour) -> (Arc<Shared>, Worker) {
        let m = model(SchedulerKind::Rr, 1, 1);
        let (sh, w) = worker_behaving(&m, b);
        (sh, w.with_kernel_path(k))
    }

    /// Ethernet (to the port, from the router) + IPv4 header (IHL 5, DF unless `frag` sets
    /// flags/offset) with protocol `proto` from CLIENT to `dst`, and 8 bytes of payload
    /// `body`; the header checksum is filled in.
    fn ip_frame(proto: u8, dst: Ipv4Addr, frag: u16, body: [u8; 8]) -> Vec<u8> {
        let fr = frag.to_be_bytes();
        let mut f = vec![
            // Ethernet: dst = port MAC, src = router, IPv4
            0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x0a, 0x08, 0x00,
            // IPv4: v4 IHL 5, tos 0, total length 28, id 7, flags/fragment offset, TTL 64,
            // protocol, checksum (filled below), source CLIENT, destination (set below)
            0x45, 0x00, 0x00, 28, 0x00, 0x07, fr[0], fr[1], 64, proto, 0, 0, 198, 18, 1, 10, 0, 0,
            0, 0,
        ];
        f.extend_from_slice(&body);
        let mut ip = ipv4::Packet::new_unchecked(&mut f[14..]);
        ip.set_dst_addr(dst);
        ip.fill_checksum();
        f.resize(60, 0); // Ethernet padding
        f
    }

    /// ICMP echo request: type 8, code 0, checksum, identifier 1, sequence 1.
    const ECHO: [u8; 8] = [8, 0, 0xf7, 0xfd, 0, 1, 0, 1];
    /// UDP header: ports 5353 -> 53, length 8, no checksum.
    const UDP_53: [u8; 8] = [0x14, 0xe9, 0, 53, 0, 8, 0, 0];
    /// DF only.
    const DF: u16 = 0x4000;
    /// More fragments, offset 0 (the first fragment).
    const MF: u16 = 0x2000;

    #[test]
    fn each_class_of_frame_gets_its_verdict_with_the_kernel_path() {
        use crate::snapshot::Behaviour;
        let other = Ipv4Addr::new(198, 18, 0, 200);
        let tcp = |dst, dport, flags| tcp_frame(CLIENT, 40_000, dst, dport, flags);
        let mut bad_sum = ip_frame(1, DIP, DF, ECHO);
        bad_sum[24] ^= 0xff; // the IPv4 header checksum's first byte
        let mut short_tcp = ip_frame(6, DIP, DF, [0; 8]); // 8 bytes: no whole TCP header
        short_tcp[14 + 9] = 6;
        fix_csum(&mut short_tcp);
        // (case, frame, verdict with vip_other_ports off, verdict with it on)
        let k = Verdict::Kernel;
        let ns = Verdict::Drop(DropReason::NoService);
        let cases: Vec<(&str, Vec<u8>, Verdict, Verdict)> = vec![
            ("TCP SYN to DIP:22", tcp(DIP, 22, l4::TcpFlags::SYN), k, k),
            ("TCP ACK to DIP:22", tcp(DIP, 22, l4::TcpFlags::ACK), k, k),
            (
                "TCP to DIP:80 (a VIP's port)",
                tcp(DIP, 80, l4::TcpFlags::SYN),
                k,
                k,
            ),
            ("UDP to DIP:53", ip_frame(17, DIP, DF, UDP_53), k, k),
            ("ICMP echo to the DIP", ip_frame(1, DIP, DF, ECHO), k, k),
            (
                "first fragment to the DIP",
                ip_frame(17, DIP, MF, UDP_53),
                k,
                k,
            ),
            (
                "later fragment to the DIP",
                ip_frame(17, DIP, 0x0010, [0; 8]),
                k,
                k,
            ),
            ("GRE to the DIP", ip_frame(47, DIP, DF, [0; 8]), k, k),
            (
                "ICMP to the DIP, bad header checksum",
                bad_sum,
                Verdict::Drop(DropReason::BadIpChecksum),
                Verdict::Drop(DropReason::BadIpChecksum),
            ),
            (
                "TCP to the DIP, header cut",
                short_tcp,
                Verdict::Drop(DropReason::ShortL4),
                Verdict::Drop(DropReason::ShortL4),
            ),
            (
                "TCP SYN to VIP:80 (its service)",
                syn(1),
                Verdict::Forward,
                Verdict::Forward,
            ),
            (
                "TCP SYN to VIP:22 (no service)",
                tcp(VIP, 22, l4::TcpFlags::SYN),
                ns,
                k,
            ),
            (
                "UDP to VIP:53 (TCP service only)",
                ip_frame(17, VIP, DF, UDP_53),
                ns,
                k,
            ),
            (
                "ICMP echo to the VIP",
                ip_frame(1, VIP, DF, ECHO),
                Verdict::Drop(DropReason::NotTcpUdp),
                k,
            ),
            (
                "fragment to the VIP",
                ip_frame(17, VIP, MF, UDP_53),
                Verdict::Drop(DropReason::IpFragment),
                k,
            ),
            (
                "TCP to another host",
                tcp(other, 22, l4::TcpFlags::SYN),
                ns,
                ns,
            ),
            (
                "ICMP to another host",
                ip_frame(1, other, DF, ECHO),
                Verdict::Drop(DropReason::NotTcpUdp),
                Verdict::Drop(DropReason::NotTcpUdp),
            ),
            (
                "TCP from the DIP to the DIP (martian source, but the kernel's)",
                tcp_frame(DIP, 1, DIP, 22, l4::TcpFlags::SYN),
                k,
                k,
            ),
            (
                "ARP request for the DIP (answered by rvs)",
                arp_frame(
                    1,
                    ROUTER_MAC,
                    Ipv4Addr::new(198, 18, 0, 254),
                    DIP,
                    [0xff; 6],
                ),
                Verdict::Reply,
                Verdict::Reply,
            ),
            (
                "ARP request for the VIP (answered by rvs)",
                arp_frame(
                    1,
                    ROUTER_MAC,
                    Ipv4Addr::new(198, 18, 0, 254),
                    VIP,
                    [0xff; 6],
                ),
                Verdict::Reply,
                Verdict::Reply,
            ),
            (
                "ARP reply to the DIP from an untracked host",
                arp_pkt(
                    2,
                    ROUTER_MAC,
                    Ipv4Addr::new(198, 18, 0, 254),
                    PORT_MAC,
                    DIP,
                    PORT_MAC,
                ),
                k,
                k,
            ),
            (
                "ARP reply to the DIP at another MAC",
                arp_pkt(
                    2,
                    ROUTER_MAC,
                    Ipv4Addr::new(198, 18, 0, 254),
                    RS2_MAC,
                    DIP,
                    PORT_MAC,
                ),
                Verdict::Drop(DropReason::ArpNotForUs),
                Verdict::Drop(DropReason::ArpNotForUs),
            ),
            (
                "ARP reply to the VIP",
                arp_pkt(
                    2,
                    ROUTER_MAC,
                    Ipv4Addr::new(198, 18, 0, 254),
                    PORT_MAC,
                    VIP,
                    PORT_MAC,
                ),
                Verdict::Drop(DropReason::ArpNotForUs),
                Verdict::Drop(DropReason::ArpNotForUs),
            ),
            (
                "gratuitous ARP of another host",
                arp_pkt(1, ROUTER_MAC, other, [0; 6], other, [0xff; 6]),
                Verdict::Drop(DropReason::ArpNotForUs),
                Verdict::Drop(DropReason::ArpNotForUs),
            ),
        ];
        for vip_other_ports_to_kernel in [false, true] {
            let b = Behaviour {
                vip_other_ports_to_kernel,
                ..Behaviour::default()
            };
            // one frame at a time, and the same frames as one burst on a twin worker
            let (sh, mut w) = kernel_worker(OPEN, b);
            let (_sh2, mut twin) = kernel_worker(OPEN, b);
            let mut burst: Vec<Vec<u8>> = cases.iter().map(|c| c.1.clone()).collect();
            let mut got = vec![Verdict::Consumed; burst.len()];
            twin.process_burst(&mut burst[..], &mut got, 1_000);
            let mut kernel = 0;
            for (i, (case, frame, off, on)) in cases.iter().enumerate() {
                let want = if vip_other_ports_to_kernel { *on } else { *off };
                let mut f = frame.clone();
                assert_eq!(
                    send(&mut w, &mut f, 1_000),
                    want,
                    "{case} (flag {vip_other_ports_to_kernel})"
                );
                assert_eq!(got[i], want, "{case} as a burst");
                if want == Verdict::Kernel {
                    assert_eq!(&f, frame, "{case}: the kernel gets the frame unchanged");
                    kernel += 1;
                }
            }
            let r = sh.stats(&model(SchedulerKind::Rr, 1, 1));
            assert_eq!(r.workers[0].to_kernel, kernel);
            assert_eq!(r.kernel.to_kernel, kernel);
            assert_eq!(r.kernel.exception_ratelimited, 0);
            assert_eq!(w.flow_count(), 1, "a flow for the VIP's SYN only");
        }
    }

    #[test]
    fn without_the_kernel_path_the_directors_frames_are_dropped_as_before() {
        let (sh, _m, mut w) = setup(SchedulerKind::Rr, 1, 1);
        assert!(!w.kernel_path());
        let cases = [
            (
                tcp_frame(CLIENT, 1, DIP, 22, l4::TcpFlags::SYN),
                DropReason::NoService,
            ),
            (ip_frame(1, DIP, DF, ECHO), DropReason::NotTcpUdp),
            (ip_frame(17, DIP, MF, UDP_53), DropReason::IpFragment),
        ];
        for (f, r) in cases {
            let mut f = f;
            assert_eq!(send(&mut w, &mut f, 1_000), Verdict::Drop(r));
        }
        // An ARP reply from an untracked host to the DIP: nothing to learn, not ours.
        let mut f = arp_pkt(
            2,
            ROUTER_MAC,
            Ipv4Addr::new(198, 18, 0, 254),
            PORT_MAC,
            DIP,
            PORT_MAC,
        );
        assert_eq!(
            send(&mut w, &mut f, 1_000),
            Verdict::Drop(DropReason::ArpNotForUs)
        );
        assert_eq!(sh.stats.kernel().to_kernel, 0);
    }

    #[test]
    fn the_kernel_path_is_rate_limited_per_worker() {
        // 100 frames/s with a bucket of 32: 32 at once, then one per 10 ms.
        let k = KernelPath {
            rate_pps: 100,
            burst: 32,
        };
        let (sh, mut w) = kernel_worker(k, crate::snapshot::Behaviour::default());
        let echo = ip_frame(1, DIP, DF, ECHO);
        let run = |w: &mut Worker, n: usize, now_ms: u64| -> (usize, usize) {
            let mut got = (0, 0);
            for _ in 0..n {
                let mut f = echo.clone();
                match send(w, &mut f, now_ms) {
                    Verdict::Kernel => got.0 += 1,
                    Verdict::Drop(DropReason::ExceptionRatelimited) => got.1 += 1,
                    v => panic!("{v:?}"),
                }
            }
            got
        };
        assert_eq!(
            run(&mut w, 40, 10_000),
            (32, 8),
            "the bucket's burst, then none"
        );
        assert_eq!(
            run(&mut w, 5, 10_009),
            (0, 5),
            "9 ms: not a whole frame yet"
        );
        assert_eq!(run(&mut w, 5, 10_010), (1, 4), "10 ms: one frame");
        assert_eq!(run(&mut w, 5, 10_050), (4, 1), "40 ms more: four");
        assert_eq!(
            run(&mut w, 50, 20_000),
            (32, 18),
            "refilled to the burst, no more"
        );
        // The clock going back (another worker's clock, a test) refills nothing and panics not.
        assert_eq!(run(&mut w, 3, 5_000), (0, 3));
        // A VIP's traffic is never limited by it: the SYN is forwarded with the bucket empty.
        let mut f = syn(7);
        assert_eq!(send(&mut w, &mut f, 20_000), Verdict::Forward);
        let r = sh.stats.kernel();
        assert_eq!(r.to_kernel, 32 + 1 + 4 + 32);
        assert_eq!(r.exception_ratelimited, 8 + 5 + 4 + 1 + 18 + 3);
        // Bursts are limited the same way (the burst's clock is the bucket's).
        let (_sh, mut w) = kernel_worker(k, crate::snapshot::Behaviour::default());
        let mut frames = vec![echo.clone(); 40];
        let mut got = vec![Verdict::Consumed; 40];
        w.process_burst(&mut frames[..], &mut got, 10_000);
        assert_eq!(got.iter().filter(|v| **v == Verdict::Kernel).count(), 32);
    }

    #[test]
    fn a_workers_share_of_the_kernel_rate() {
        assert_eq!(
            KernelPath::per_worker(20_000, 2),
            KernelPath {
                rate_pps: 10_000,
                burst: 1_000
            }
        );
        assert_eq!(
            KernelPath::per_worker(20_000, 3),
            KernelPath {
                rate_pps: 6_667,
                burst: 666
            }
        );
        // small rates keep a bucket of 32; none is 0 per second
        assert_eq!(
            KernelPath::per_worker(100, 4),
            KernelPath {
                rate_pps: 25,
                burst: 32
            }
        );
        assert_eq!(KernelPath::per_worker(0, 0).rate_pps, 1);
        assert_eq!(KernelPath::per_worker(u32::MAX, 1).rate_pps, u32::MAX);
    }

    #[test]
    fn an_arp_reply_to_the_dip_is_learned_and_goes_to_the_kernel() {
        let m = model(SchedulerKind::Rr, 1, 0);
        let (sh, w) = worker_with(&m, 64, false);
        let mut w = w.with_kernel_path(OPEN);
        let a = asked(&mut w, 0);
        assert!(a.contains(&RS1), "{a:?}");
        // RS1 answers (our request, or the kernel's: the same frame): learned AND the kernel's.
        let mut f = answer(RS1, RS1_MAC);
        let orig = f.clone();
        assert_eq!(send(&mut w, &mut f, 10), Verdict::Kernel);
        assert_eq!(f, orig);
        assert_eq!(sh.neigh.mac(sh.neigh.find(RS1).unwrap()), Some(RS1_MAC));
        assert_eq!(syn_goes_to(&mut w, 1, 20), Ok(RS1_MAC));
        // A spoofed reply claiming RS1 is refused and kept from the kernel too.
        let mut f = answer(RS1, EVIL_MAC);
        assert_eq!(
            send(&mut w, &mut f, 5_000),
            Verdict::Drop(DropReason::ArpRefused)
        );
        assert_eq!(sh.neigh.mac(sh.neigh.find(RS1).unwrap()), Some(RS1_MAC));
        // Requests never go to the kernel: one for the DIP is answered by rvs.
        let mut f = arp_pkt(1, RS1_MAC, RS1, [0; 6], DIP, [0xff; 6]);
        assert_eq!(send(&mut w, &mut f, 5_000), Verdict::Reply);
        assert_eq!(sh.stats.kernel().to_kernel, 1);
    }

    #[test]
    fn a_full_kernel_queue_moves_the_count_to_exception_full() {
        let (sh, mut w) = kernel_worker(OPEN, crate::snapshot::Behaviour::default());
        for _ in 0..3 {
            let mut f = ip_frame(1, DIP, DF, ECHO);
            assert_eq!(send(&mut w, &mut f, 1_000), Verdict::Kernel);
        }
        w.count_kernel_full(2);
        let r = sh.stats(&model(SchedulerKind::Rr, 1, 1));
        assert_eq!((r.kernel.to_kernel, r.kernel.exception_full), (1, 2));
        assert_eq!(r.drops.get("exception_full"), Some(&2));
    }

    // ---- issue 14: VRRP standby, VRRP to the kernel, GARP requests, connection sync ----

    /// A worker (rr over RS1, RS2 on VIP:80) whose Shared has sync rings of `cap` records.
    fn sync_worker(m: &Model, cap: usize) -> (Arc<Shared>, Worker, Arc<SyncRings>) {
        let rings = Arc::new(SyncRings::new(1, cap));
        let sh = Arc::new(Shared::new(8, 8, 16, 1, PORT_MAC, DIP, 16).with_sync(rings.clone()));
        sh.publish(m).unwrap();
        sh.neigh.confirm(sh.neigh.find(RS1).unwrap(), RS1_MAC, 0);
        sh.neigh.confirm(sh.neigh.find(RS2).unwrap(), RS2_MAC, 0);
        let w = Worker::new(
            WorkerConfig {
                worker: 0,
                flow_capacity: 1024,
                is_arp_worker: true,
            },
            sh.clone(),
        );
        (sh, w, rings)
    }

    fn drain(rings: &SyncRings) -> Vec<FlowRecord> {
        let mut v = Vec::new();
        rings.drain_out(usize::MAX, |r| v.push(r));
        v
    }

    #[test]
    fn a_standby_vip_is_neither_answered_nor_forwarded_and_its_flows_wait() {
        let mut m = model(SchedulerKind::Rr, 1, 1);
        let (sh, mut w) = worker_with(&m, 1024, true);
        let mut f = syn(1);
        assert_eq!(send(&mut w, &mut f, 1000), Verdict::Forward);
        let first = dst_mac(&f);
        assert!(m.set_vips_master(&[VIP], false));
        assert!(
            !m.set_vips_master(&[VIP], false),
            "no change the second time"
        );
        sh.publish(&m).unwrap();
        w.refresh();
        // ARP for the VIP: not answered; for the DIP: still.
        let mut a = arp_frame(1, ROUTER_MAC, CLIENT, VIP, [0xff; 6]);
        assert_eq!(
            send(&mut w, &mut a, 1000),
            Verdict::Drop(DropReason::ArpNotForUs)
        );
        let mut a = arp_frame(1, ROUTER_MAC, CLIENT, DIP, [0xff; 6]);
        assert_eq!(send(&mut w, &mut a, 1000), Verdict::Reply);
        // The live flow and a new one: not forwarded.
        let mut f = ack(1);
        assert_eq!(
            send(&mut w, &mut f, 1000),
            Verdict::Drop(DropReason::NotMaster)
        );
        let mut f = syn(2);
        assert_eq!(
            send(&mut w, &mut f, 1000),
            Verdict::Drop(DropReason::NotMaster)
        );
        assert_eq!(w.flow_count(), 1, "the live flow is kept, no new one made");
        // A VIP in standby is still a director's address: never a client's.
        let mut f = tcp_frame(
            VIP,
            5,
            Ipv4Addr::new(198, 18, 0, 200),
            80,
            l4::TcpFlags::SYN,
        );
        assert_eq!(
            send(&mut w, &mut f, 1000),
            Verdict::Drop(DropReason::MartianSource)
        );
        // Master again: the flow resumes on its server, and the VIP is announced.
        assert!(m.set_vips_master(&[VIP], true));
        sh.publish(&m).unwrap();
        w.refresh();
        let mut f = ack(1);
        assert_eq!(send(&mut w, &mut f, 1000), Verdict::Forward);
        assert_eq!(dst_mac(&f), first);
        let mut frames = [[0u8; 64]; 4];
        let n = w.housekeeping(1001, &mut frames);
        let garps: Vec<_> = frames[..n]
            .iter()
            .filter(|f| f[12..14] == [8, 6] && f[38..42] == VIP.octets())
            .collect();
        assert_eq!(garps.len(), 1, "one gratuitous ARP for the VIP taken back");
        let r = sh.stats(&m);
        assert_eq!(r.drops.get("not_master"), Some(&2));
    }

    #[test]
    fn gratuitous_arps_asked_for_are_sent_by_the_arp_worker() {
        let (sh, _m, mut w) = setup(SchedulerKind::Rr, 1, 1);
        let mut frames = [[0u8; 64]; 4];
        w.housekeeping(0, &mut frames); // the start-up announcement
        assert!(sh.request_garp(u32::from(VIP)));
        let n = w.housekeeping(10, &mut frames);
        assert_eq!(n, 1);
        // ARP request, sender = target = VIP, from the port's MAC to broadcast.
        assert_eq!(&frames[0][..6], &[0xff; 6]);
        assert_eq!(&frames[0][6..12], &PORT_MAC);
        assert_eq!(&frames[0][28..32], &VIP.octets());
        assert_eq!(&frames[0][38..42], &VIP.octets());
        assert_eq!(w.housekeeping(20, &mut frames), 0, "once per request");
        // Three requests at once (garp_repeat 3, no interval): three frames, not one.
        for _ in 0..3 {
            assert!(sh.request_garp(u32::from(VIP)));
        }
        assert_eq!(w.housekeeping(30, &mut frames), 3);
        assert!(frames[..3].iter().all(|f| f[38..42] == VIP.octets()));
        assert_eq!(w.housekeeping(40, &mut frames), 0);
    }

    #[test]
    fn vrrp_adverts_reach_the_kernel_whatever_the_rate() {
        // A bucket of one frame: the adverts pass after it is spent; other traffic does not.
        let k = KernelPath {
            rate_pps: 1,
            burst: 1,
        };
        let (_sh, mut w) = kernel_worker(k, crate::snapshot::Behaviour::default());
        let group = Ipv4Addr::new(224, 0, 0, 18);
        // VRRPv3 advert: version 3 type 1, VRID 51, priority 100, count 1, interval, checksum.
        let advert = [0x31, 51, 100, 1, 0, 100, 0, 0];
        let mut f = ip_frame(1, DIP, DF, ECHO);
        assert_eq!(
            send(&mut w, &mut f, 5000),
            Verdict::Kernel,
            "the bucket's one frame"
        );
        let mut f = ip_frame(1, DIP, DF, ECHO);
        assert_eq!(
            send(&mut w, &mut f, 5000),
            Verdict::Drop(DropReason::ExceptionRatelimited)
        );
        for dst in [group, DIP] {
            for _ in 0..10 {
                let mut f = ip_frame(VRRP_PROTO, dst, DF, advert);
                f[0] = 0x01; // 01:00:5e:00:00:12 for the group; any group MAC is accepted
                f[1] = 0x00;
                f[2] = 0x5e;
                assert_eq!(send(&mut w, &mut f, 5000), Verdict::Kernel, "{dst}");
            }
        }
        // VRRP to some other address is not ours; without the kernel path VRRP is dropped.
        let mut f = ip_frame(VRRP_PROTO, Ipv4Addr::new(198, 18, 0, 200), DF, advert);
        assert_eq!(
            send(&mut w, &mut f, 5000),
            Verdict::Drop(DropReason::NotTcpUdp)
        );
        let (_sh, _m, mut plain) = setup(SchedulerKind::Rr, 1, 1);
        let mut f = ip_frame(VRRP_PROTO, group, DF, advert);
        assert_eq!(
            send(&mut plain, &mut f, 5000),
            Verdict::Drop(DropReason::NotTcpUdp)
        );
        // Connection sync's group (UDP to 224.0.0.81) goes to the kernel too (rate limited).
        let (_sh, mut w) = kernel_worker(OPEN, crate::snapshot::Behaviour::default());
        let sync_udp = [0x22, 0x90, 0x22, 0x90, 0, 8, 0, 0]; // 8848 -> 8848, length 8
        let mut f = ip_frame(17, Ipv4Addr::new(224, 0, 0, 81), DF, sync_udp);
        assert_eq!(send(&mut w, &mut f, 5000), Verdict::Kernel);
    }

    #[test]
    fn a_master_reports_new_flows_and_state_changes_while_sending() {
        let m = model(SchedulerKind::Rr, 1, 1);
        let (_sh, mut w, rings) = sync_worker(&m, 64);
        let mut f = syn(1);
        assert_eq!(send(&mut w, &mut f, 1000), Verdict::Forward);
        assert!(drain(&rings).is_empty(), "not sending: nothing reported");
        rings.set_sending(true);
        let mut f = syn(2);
        assert_eq!(send(&mut w, &mut f, 1000), Verdict::Forward);
        let rs = if dst_mac(&f) == RS1_MAC { RS1 } else { RS2 };
        let mut f = ack(2);
        assert_eq!(send(&mut w, &mut f, 1000), Verdict::Forward);
        let mut f = ack(2); // no state change: no record
        assert_eq!(send(&mut w, &mut f, 1000), Verdict::Forward);
        let want = |state| FlowRecord {
            proto: 6,
            state,
            client: u32::from(CLIENT),
            client_port: 2,
            vip: u32::from(VIP),
            vport: 80,
            rs: u32::from(rs),
            rs_port: 80,
        };
        assert_eq!(
            drain(&rings),
            [want(FlowState::SynRecv), want(FlowState::Established)]
        );
        // A full ring loses records, counted, and forwarding goes on.
        let (_sh, mut w, rings) = sync_worker(&m, 2);
        rings.set_sending(true);
        for p in 10..15 {
            let mut f = syn(p);
            assert_eq!(send(&mut w, &mut f, 1000), Verdict::Forward);
        }
        assert_eq!(rings.counters.out_dropped.load(Relaxed), 3);
        assert_eq!(drain(&rings).len(), 2);
    }

    #[test]
    fn a_backup_installs_synced_flows_and_forwards_them_after_takeover() {
        // The backup holds VIP in standby, with a flow installed from the master's record:
        // after takeover an ACK of it (no SYN: rr would refuse it as tcp_not_syn) goes to the
        // record's server, whichever rr would pick.
        let mut m = model(SchedulerKind::Rr, 1, 1);
        m.set_vips_master(&[VIP], false);
        let (sh, mut w, rings) = sync_worker(&m, 64);
        let rec = |port, rs: Ipv4Addr, state| FlowRecord {
            proto: 6,
            state,
            client: u32::from(CLIENT),
            client_port: port,
            vip: u32::from(VIP),
            vport: 80,
            rs: u32::from(rs),
            rs_port: 80,
        };
        for (p, rs) in [(1, RS2), (2, RS2), (3, RS1)] {
            assert!(rings.install(rec(p, rs, FlowState::Established)));
        }
        // Records for no service, no such server: refused, counted.
        let mut bad = rec(4, RS1, FlowState::Established);
        bad.vport = 81;
        assert!(rings.install(bad));
        assert!(rings.install(rec(
            5,
            Ipv4Addr::new(198, 18, 0, 99),
            FlowState::Established
        )));
        let mut frames = [[0u8; 64]; 8];
        w.housekeeping(1000, &mut frames);
        assert_eq!(w.flow_count(), 3);
        assert_eq!(rings.counters.installed.load(Relaxed), 3);
        assert_eq!(rings.counters.install_failed.load(Relaxed), 2);
        let mut f = ack(1);
        assert_eq!(
            send(&mut w, &mut f, 1500),
            Verdict::Drop(DropReason::NotMaster)
        );
        // The same flow again (a state change): updated in place, not duplicated.
        assert!(rings.install(rec(3, RS2, FlowState::FinWait)));
        w.housekeeping(1600, &mut frames);
        assert_eq!(w.flow_count(), 3);
        m.set_vips_master(&[VIP], true);
        sh.publish(&m).unwrap();
        w.refresh();
        for (p, mac) in [(1, RS2_MAC), (2, RS2_MAC), (3, RS2_MAC)] {
            let mut f = ack(p);
            assert_eq!(send(&mut w, &mut f, 2000), Verdict::Forward, "port {p}");
            assert_eq!(dst_mac(&f), mac, "port {p}");
        }
        let r = sh.stats(&m);
        let rs2 = r.services[0]
            .servers
            .iter()
            .find(|s| s.addr == RS2)
            .unwrap();
        assert_eq!(
            (rs2.active_conns, rs2.inactive_conns),
            (2, 1),
            "gauges follow installs"
        );
        // Without the sync the ACK of an unknown flow is refused.
        let mut f = ack(9);
        assert_eq!(
            send(&mut w, &mut f, 2000),
            Verdict::Drop(DropReason::TcpNotSyn)
        );
    }

    #[test]
    fn a_bulk_dump_reports_every_live_flow_and_resumes_when_the_ring_is_full() {
        let m = model(SchedulerKind::Rr, 1, 1);
        let (_sh, mut w, rings) = sync_worker(&m, 16);
        for p in 0..40 {
            let mut f = syn(100 + p);
            assert_eq!(send(&mut w, &mut f, 1000), Verdict::Forward);
        }
        let gen = rings.request_dump();
        let mut frames = [[0u8; 64]; 8];
        let mut got = Vec::new();
        for i in 0..200 {
            w.housekeeping(1000 + i, &mut frames);
            rings.drain_out(5, |r| got.push(r.client_port)); // a slow reader
            if rings.dump_finished(gen) && got.len() >= 40 {
                break;
            }
        }
        rings.drain_out(usize::MAX, |r| got.push(r.client_port));
        assert!(rings.dump_finished(gen));
        got.sort_unstable();
        got.dedup();
        assert_eq!(
            got,
            (100..140).collect::<Vec<u16>>(),
            "every flow, none lost"
        );
        assert_eq!(
            rings.counters.out_dropped.load(Relaxed),
            0,
            "a full ring pauses the dump"
        );
    }

    // --- 802.1Q VLAN (docs/vlan.md) ---

    /// A client's SYN to VIP:80 on VLAN 100 with priority 3 (58 bytes).
    const TAGGED_SYN: [u8; 58] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // destination: the port
        0x02, 0x00, 0x00, 0x00, 0x00, 0x0a, // source: the router
        0x81, 0x00, //                         TPID 802.1Q
        0x60, 0x64, //                         TCI: PCP 3, DEI 0, VID 100
        0x08, 0x00, //                         EtherType IPv4
        0x45, 0x00, 0x00, 0x28, //             v4, IHL 5, total length 40
        0x00, 0x01, 0x40, 0x00, //             id 1, DF
        0x40, 0x06, 0xad, 0x3c, //             TTL 64, TCP, header checksum
        198, 18, 1, 10, //                     source: the client
        198, 18, 0, 100, //                    destination: the VIP
        0x9c, 0x40, 0x00, 0x50, //             ports 40000 -> 80
        0x00, 0x00, 0x00, 0x01, //             sequence number
        0x00, 0x00, 0x00, 0x00, //             acknowledgment number
        0x50, 0x02, 0xff, 0xff, //             data offset 5, SYN, window
        0x12, 0x34, 0x00, 0x00, //             checksum (not looked at), urgent pointer
    ];

    /// The router asking for the VIP on VLAN 100 (broadcast; 60 bytes with padding).
    const TAGGED_ARP_FOR_VIP: [u8; 60] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // destination: broadcast
        0x02, 0x00, 0x00, 0x00, 0x00, 0x0a, // source: the router
        0x81, 0x00, 0x00, 0x64, //             802.1Q, PCP 0, VID 100
        0x08, 0x06, //                         EtherType ARP
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, // Ethernet/IPv4, lengths 6 and 4
        0x00, 0x01, //                         request
        0x02, 0x00, 0x00, 0x00, 0x00, 0x0a, // sender MAC: the router
        198, 18, 0, 254, //                    sender address
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // target MAC: unknown
        198, 18, 0, 100, //                    target address: the VIP
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // padding
    ];

    const VID: u16 = 100;

    /// [`setup`]'s round robin over RS1 and RS2 (both resolved), the director on VLAN `vid`.
    fn vlan_setup(vid: Option<u16>) -> (Arc<Shared>, Model, Worker) {
        let m = model(SchedulerKind::Rr, 1, 1);
        let sh = Arc::new(
            Shared::new(8, 8, 16, 1, PORT_MAC, DIP, 16).with_vlan(vid.and_then(VlanId::new)),
        );
        sh.publish(&m).unwrap();
        sh.neigh.confirm(sh.neigh.find(RS1).unwrap(), RS1_MAC, 0);
        sh.neigh.confirm(sh.neigh.find(RS2).unwrap(), RS2_MAC, 0);
        let w = Worker::new(
            WorkerConfig {
                worker: 0,
                flow_capacity: 1024,
                is_arp_worker: true,
            },
            sh.clone(),
        );
        (sh, m, w)
    }

    /// `f` (an untagged frame) with the 802.1Q-style tag `tpid`/`tci` after its MACs.
    fn tagged(f: &[u8], tpid: u16, tci: u16) -> Vec<u8> {
        let mut t = f[..12].to_vec();
        t.extend_from_slice(&tpid.to_be_bytes());
        t.extend_from_slice(&tci.to_be_bytes());
        t.extend_from_slice(&f[12..]);
        t
    }

    /// Decide `f` on `w` both ways (one frame through `process`, then a copy of it as a burst
    /// of one: the same flow, if it makes one): the verdict, the same either way, and the frame
    /// as `process` left it.
    fn both_ways(w: &mut Worker, f: &[u8], now_ms: u64) -> (Verdict, Vec<u8>) {
        let mut one = f.to_vec();
        let v = w.process(&mut one, now_ms);
        let mut burst = [f.to_vec()];
        let mut vb = [Verdict::Consumed];
        w.process_burst(&mut burst[..], &mut vb, now_ms);
        assert_eq!(vb[0], v, "a burst decides as process does: {f:02x?}");
        (v, one)
    }

    #[test]
    fn the_tagged_fixtures_are_the_untagged_frames_with_a_tag() {
        let mut syn = tcp_frame(CLIENT, 40000, VIP, 80, l4::TcpFlags::SYN);
        fix_csum(&mut syn);
        assert_eq!(tagged(&syn, 0x8100, 0x6000 | VID), TAGGED_SYN);
        let arp = arp_frame(
            1,
            ROUTER_MAC,
            Ipv4Addr::new(198, 18, 0, 254),
            VIP,
            [0xff; 6],
        );
        assert_eq!(tagged(&arp, 0x8100, VID)[..60], TAGGED_ARP_FOR_VIP);
    }

    #[test]
    fn tagged_frames_of_our_vlan_are_forwarded_with_their_tag() {
        let (sh, m, mut w) = vlan_setup(Some(VID));
        // One frame at a time (the classify path).
        let mut f = TAGGED_SYN.to_vec();
        assert_eq!(w.process(&mut f, 1000), Verdict::Forward);
        assert_eq!(dst_mac(&f), RS1_MAC);
        assert_eq!(&f[6..12], &PORT_MAC);
        assert_eq!(&f[12..], &TAGGED_SYN[12..], "the tag and L3/L4 untouched");
        // As a burst (the staged path): new flows, then their ACKs hit the flow table.
        let mut syns: Vec<Vec<u8>> = (0..8u16)
            .map(|p| {
                let mut f = TAGGED_SYN.to_vec();
                f[38..40].copy_from_slice(&(41000 + p).to_be_bytes());
                f
            })
            .collect();
        let orig = syns.clone();
        let mut v = [Verdict::Consumed; 8];
        w.process_burst(&mut syns[..], &mut v, 1000);
        assert_eq!(v, [Verdict::Forward; 8]);
        let mut acks = orig.clone();
        for a in &mut acks {
            a[18 + 20 + 13] = l4::TcpFlags::ACK;
        }
        let acks_orig = acks.clone();
        w.process_burst(&mut acks[..], &mut v, 1001);
        assert_eq!(v, [Verdict::Forward; 8]);
        for (i, f) in acks.iter().enumerate() {
            assert_eq!(dst_mac(f), dst_mac(&syns[i]), "the ACK follows its SYN");
            assert_eq!(&f[12..], &acks_orig[i][12..]);
            assert_eq!(&f[6..12], &PORT_MAC);
        }
        // Any priority and DEI: the same VLAN.
        let mut f = TAGGED_SYN.to_vec();
        f[14] = 0xf0; // PCP 7, DEI 1
        f[38..40].copy_from_slice(&40001u16.to_be_bytes());
        assert_eq!(both_ways(&mut w, &f, 1000).0, Verdict::Forward);
        let r = sh.stats(&m);
        assert_eq!(r.services[0].counters.conns, 1 + 8 + 1);
        assert!(r.drops.is_empty(), "{:?}", r.drops);
    }

    #[test]
    fn tagged_arp_for_the_vip_and_dip_is_answered_with_the_same_tag() {
        let (_sh, _m, mut w) = vlan_setup(Some(VID));
        let mut f = TAGGED_ARP_FOR_VIP.to_vec();
        f[14] = 0x20; // PCP 1: kept as it came
        assert_eq!(w.process(&mut f, 0), Verdict::Reply);
        let want: [u8; 46] = [
            0x02, 0x00, 0x00, 0x00, 0x00, 0x0a, // to the router
            0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // from the port
            0x81, 0x00, 0x20, 0x64, //             the request's tag
            0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 0x06, 0x04, // ARP, Ethernet/IPv4
            0x00, 0x02, //                         reply
            0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // sender: the port ...
            198, 18, 0, 100, //                    ... has the VIP
            0x02, 0x00, 0x00, 0x00, 0x00, 0x0a, // target: the router
            198, 18, 0, 254,
        ];
        assert_eq!(f[..46], want);
        assert_eq!(f[46..], TAGGED_ARP_FOR_VIP[46..], "padding untouched");
        // The DIP too, as a burst.
        let mut f = TAGGED_ARP_FOR_VIP.to_vec();
        f[42..46].copy_from_slice(&DIP.octets());
        let mut b = [f];
        let mut v = [Verdict::Consumed];
        w.process_burst(&mut b[..], &mut v, 0);
        assert_eq!(v[0], Verdict::Reply);
        assert_eq!(&b[0][12..16], &[0x81, 0x00, 0x00, 0x64]);
        assert_eq!(&b[0][32..36], &DIP.octets(), "the sender: the DIP");
        // An ARP reply from a real server on the VLAN is learned from.
        let (sh, _m, mut w) = vlan_setup(Some(VID));
        let rs = sh.neigh.find(RS1).unwrap();
        let mut reply = tagged(&arp_frame(2, RS1_MAC, RS1, DIP, PORT_MAC), 0x8100, VID);
        reply[18 + 18..18 + 24].copy_from_slice(&PORT_MAC); // tha: us
        assert_eq!(w.process(&mut reply, 10), Verdict::Consumed);
        assert_eq!(
            sh.neigh.mac_word(rs),
            Some(ethernet::MacAddr(RS1_MAC).word())
        );
    }

    #[test]
    fn on_a_vlan_other_frames_are_counted_with_their_reason() {
        let (sh, m, mut w) = vlan_setup(Some(VID));
        let syn = TAGGED_SYN.to_vec();
        let untagged = {
            let mut f = syn[..12].to_vec();
            f.extend_from_slice(&syn[16..]);
            f
        };
        let with_tci = |tci: u16| {
            let mut f = syn.clone();
            f[14..16].copy_from_slice(&tci.to_be_bytes());
            f
        };
        let mut cases: Vec<(&str, Vec<u8>, DropReason)> = vec![
            ("untagged TCP", untagged.clone(), DropReason::VlanUntagged),
            (
                "untagged ARP for the VIP",
                arp_frame(1, ROUTER_MAC, RS1, VIP, [0xff; 6]),
                DropReason::VlanUntagged,
            ),
            (
                "priority tag (VID 0)",
                with_tci(0x6000),
                DropReason::VlanUntagged,
            ),
            ("VID 101", with_tci(101), DropReason::VlanOther),
            ("VID 4095", with_tci(0x0fff), DropReason::VlanOther),
            // bytes 12..16: 88 a8 00 64 (an S-tag with our id), then the C-tag 81 00 00 64
            (
                "802.1ad S-tag",
                tagged(&syn, 0x88a8, VID),
                DropReason::VlanQinq,
            ),
            // our tag, then another 802.1Q tag inside it
            (
                "stacked 802.1Q tags",
                tagged(&syn, 0x8100, VID),
                DropReason::VlanQinq,
            ),
            (
                "our tag, then an S-tag",
                {
                    let mut f = tagged(&syn, 0x8100, VID);
                    f[16..18].copy_from_slice(&[0x88, 0xa8]);
                    f
                },
                DropReason::VlanQinq,
            ),
            (
                "tag cut after the TPID",
                syn[..15].to_vec(),
                DropReason::ShortFrame,
            ),
            (
                "inner EtherType cut",
                syn[..17].to_vec(),
                DropReason::ShortFrame,
            ),
            (
                "tag and no IPv4 header",
                syn[..18].to_vec(),
                DropReason::ShortIp,
            ),
            ("IPv4 header cut", syn[..30].to_vec(), DropReason::ShortIp),
            (
                "tagged IPv6",
                {
                    let mut f = syn.clone();
                    f[16..18].copy_from_slice(&[0x86, 0xdd]);
                    f
                },
                DropReason::Ipv6,
            ),
            (
                "tagged, another EtherType",
                {
                    let mut f = syn.clone();
                    f[16..18].copy_from_slice(&[0x88, 0x47]);
                    f
                },
                DropReason::NotIpv4OrArp,
            ),
            (
                "tagged, another port's MAC",
                {
                    let mut f = syn.clone();
                    f[5] = 0x02;
                    f
                },
                DropReason::NotOurMac,
            ),
            (
                "tagged, bad IPv4 checksum",
                {
                    let mut f = syn.clone();
                    f[28] ^= 1;
                    f
                },
                DropReason::BadIpChecksum,
            ),
        ];
        // An untagged frame shorter than a tag is still a short frame.
        cases.push(("13 bytes", syn[..13].to_vec(), DropReason::ShortFrame));
        let mut want = std::collections::BTreeMap::new();
        for (name, f, reason) in &cases {
            let (v, after) = both_ways(&mut w, f, 1000);
            assert_eq!(v, Verdict::Drop(*reason), "{name}");
            assert_eq!(&after, f, "{name}: dropped unchanged");
            *want.entry(reason.name().to_string()).or_insert(0u64) += 2;
        }
        let got: std::collections::BTreeMap<String, u64> = sh.stats(&m).drops.into_iter().collect();
        assert_eq!(got, want);
        assert_eq!(sh.stats(&m).services[0].counters.conns, 0);
    }

    #[test]
    fn without_a_vlan_tagged_frames_are_dropped_as_before() {
        let (_sh, _m, mut w) = vlan_setup(None);
        for f in [
            TAGGED_SYN.to_vec(),
            TAGGED_ARP_FOR_VIP.to_vec(),
            tagged(&TAGGED_SYN, 0x88a8, 7),
        ] {
            let (v, after) = both_ways(&mut w, &f, 1000);
            assert_eq!(v, Verdict::Drop(DropReason::Vlan));
            assert_eq!(after, f);
        }
        // And untagged frames are forwarded as ever.
        assert_eq!(both_ways(&mut w, &syn(5000), 1000).0, Verdict::Forward);
    }

    /// The ARP worker of the lab model (rr, two real servers) on VLAN `VID`.
    fn vlan_arp_worker() -> (Arc<Shared>, Worker) {
        let m = model(SchedulerKind::Rr, 1, 1);
        let sh = Arc::new(Shared::new(8, 8, 16, 1, PORT_MAC, DIP, 16).with_vlan(VlanId::new(VID)));
        sh.publish(&m).unwrap();
        let w = Worker::new(
            WorkerConfig {
                worker: 0,
                flow_capacity: 64,
                is_arp_worker: true,
            },
            sh.clone(),
        );
        (sh, w)
    }

    #[test]
    fn on_a_vlan_arp_requests_and_announcements_go_out_tagged() {
        let (sh, mut w) = vlan_arp_worker();
        let mut frames = [[0u8; 64]; 8];
        let n = w.housekeeping(0, &mut frames);
        // The VIP's announcement and a request for each unresolved real server.
        assert_eq!(n, 3);
        let mut asked = vec![];
        for f in &frames[..n] {
            let head: [u8; 26] = [
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // broadcast
                0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // from the port
                0x81, 0x00, 0x00, 0x64, //             VLAN 100
                0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 0x06, 0x04, // ARP, Ethernet/IPv4
                0x00, 0x01, //                         request
            ];
            assert_eq!(f[..26], head);
            assert_eq!(f[26..32], PORT_MAC);
            assert!(f[46..].iter().all(|&b| b == 0), "zero padding");
            let spa = Ipv4Addr::new(f[32], f[33], f[34], f[35]);
            let tpa = Ipv4Addr::new(f[42], f[43], f[44], f[45]);
            assert!(spa == DIP || (spa == VIP && tpa == VIP), "{spa} {tpa}");
            asked.push(tpa);
        }
        asked.sort();
        assert_eq!(asked, [RS1, RS2, VIP]);
        // A tagged answer resolves the server.
        let mut reply = tagged(&arp_frame(2, RS1_MAC, RS1, DIP, PORT_MAC), 0x8100, VID);
        reply[18 + 18..18 + 24].copy_from_slice(&PORT_MAC);
        assert_eq!(w.process(&mut reply, 5), Verdict::Consumed);
        assert_eq!(
            sh.neigh.mac_word(sh.neigh.find(RS1).unwrap()),
            Some(ethernet::MacAddr(RS1_MAC).word())
        );
    }

    #[test]
    fn on_a_vlan_the_kernel_gets_tagged_frames_as_they_came() {
        let (_sh, w) = vlan_arp_worker();
        let mut w = w.with_kernel_path(KernelPath {
            rate_pps: 1000,
            burst: 1000,
        });
        // TCP to the DIP (the hit path misses), ICMP to the DIP (the parse refuses it), VRRP.
        let to_dip = tagged(
            &tcp_frame(CLIENT, 2222, DIP, 22, l4::TcpFlags::SYN),
            0x8100,
            VID,
        );
        let icmp = tagged(
            &ip_frame(1, DIP, 0x4000, [8, 0, 0, 0, 0, 0, 0, 0]),
            0x8100,
            VID,
        );
        let mut vrrp = tagged(
            &ip_frame(
                112,
                Ipv4Addr::new(224, 0, 0, 18),
                0,
                [0x31, 1, 100, 1, 0, 1, 0, 0],
            ),
            0x8100,
            VID,
        );
        vrrp[..6].copy_from_slice(&[0x01, 0x00, 0x5e, 0x00, 0x00, 0x12]);
        for f in [to_dip, icmp, vrrp] {
            let (v, after) = both_ways(&mut w, &f, 1000);
            assert_eq!(v, Verdict::Kernel, "{f:02x?}");
            assert_eq!(after, f);
        }
        // Untagged, the same frames are not the director's.
        let untagged = tcp_frame(CLIENT, 2222, DIP, 22, l4::TcpFlags::SYN);
        assert_eq!(
            both_ways(&mut w, &untagged, 1000).0,
            Verdict::Drop(DropReason::VlanUntagged)
        );
    }

    proptest! {
        /// On a VLAN, a burst decides tagged (and other) frames as `process` does one by one.
        #[test]
        fn on_a_vlan_a_burst_decides_as_frames_one_by_one(
            picks in proptest::collection::vec((0u8..6, any::<u16>(), any::<u8>()), 1..40),
        ) {
            let (_sh1, _m1, mut a) = vlan_setup(Some(VID));
            let (_sh2, _m2, mut b) = vlan_setup(Some(VID));
            let frames: Vec<Vec<u8>> = picks
                .iter()
                .map(|&(kind, port, pcp)| {
                    let mut f = TAGGED_SYN.to_vec();
                    f[14] = (f[14] & 0x0f) | (pcp & 0xf0);
                    f[38..40].copy_from_slice(&(port % 16).to_be_bytes());
                    match kind {
                        0 => {}
                        1 => f[18 + 20 + 13] = l4::TcpFlags::ACK,
                        2 => f[15] = 101,
                        3 => f = TAGGED_ARP_FOR_VIP.to_vec(),
                        4 => {
                            f.drain(12..16);
                        }
                        _ => f.truncate(usize::from(port % 60)),
                    }
                    f
                })
                .collect();
            let mut burst = frames.clone();
            let mut vb = vec![Verdict::Consumed; burst.len()];
            a.process_burst(&mut burst[..], &mut vb, 1000);
            for (i, f) in frames.iter().enumerate() {
                let mut one = f.clone();
                let v = b.process(&mut one, 1000);
                prop_assert_eq!(v, vb[i]);
                prop_assert_eq!(&one, &burst[i]);
            }
        }
    }
}
