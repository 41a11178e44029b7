//! The per-worker flow (connection) table.
//!
//! A fixed number of 64-byte buckets (a power of two), allocated once at start; each bucket is one
//! cache line holding two 32-byte entries. A flow hashes to a bucket and may live in any of the
//! [`WINDOW`] entries starting there (four adjacent lines). Lookup and insert never allocate nor
//! lock. Idle flows expire by a per-state timeout (IPVS defaults): lazily, when an insert finds
//! an expired entry in its window, and incrementally through [`FlowTable::expire_slice`]. When a
//! window holds only live flows the insert fails: live flows are never evicted.
//!
//! Only the owning worker writes its table, but the entries are made of `AtomicU64` words
//! accessed with `Relaxed` ordering (plain moves on x86) and the storage is shared through an
//! `Arc<FlowStore>`, so the control thread can list connections ([`FlowStore::for_each`])
//! without locks and without disturbing the worker. A reader may see an entry half rewritten;
//! it validates each entry (known state, stored hash equal to the hash of the key it read) and
//! skips what does not validate.
//!
//! In direct routing the director sees only the client-to-server direction, so the TCP state
//! follows IPVS's INPUT-ONLY transition table (`ip_vs_proto_tcp.c`), see
//! [`FlowState::tcp_next`].

use crate::wire::l4::TcpFlags;
use std::sync::atomic::{
    AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};
use std::sync::Arc;

/// Idle timeouts in seconds per flow state (IPVS defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// After a SYN (IPVS SYN_RECV: 60 s).
    pub tcp_syn: u32,
    /// IPVS ESTABLISHED: 900 s (`--set tcp`).
    pub tcp: u32,
    /// IPVS FIN_WAIT: 120 s (`--set tcpfin`).
    pub tcp_fin: u32,
    /// After a RST (IPVS CLOSE: 10 s).
    pub tcp_close: u32,
    /// IPVS UDP: 300 s (`--set udp`).
    pub udp: u32,
    /// IPVS TIME_WAIT: 120 s.
    pub tcp_time_wait: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp_syn: 60,
            tcp: 900,
            tcp_fin: 120,
            tcp_close: 10,
            udp: 300,
            tcp_time_wait: 120,
        }
    }
}

/// A flow's state (IPVS's names; only the states reachable from client-to-server packets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FlowState {
    Free = 0,
    SynRecv = 1,
    Established = 2,
    FinWait = 3,
    Close = 4,
    Udp = 5,
    TimeWait = 6,
}

impl FlowState {
    /// The state stored as `v`; `None` for a value no entry ever holds (a torn read).
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => FlowState::Free,
            1 => FlowState::SynRecv,
            2 => FlowState::Established,
            3 => FlowState::FinWait,
            4 => FlowState::Close,
            5 => FlowState::Udp,
            6 => FlowState::TimeWait,
            _ => return None,
        })
    }

    /// ipvsadm's name (`-L -c` state column).
    pub fn name(self) -> &'static str {
        match self {
            FlowState::Free => "NONE",
            FlowState::SynRecv => "SYN_RECV",
            FlowState::Established => "ESTABLISHED",
            FlowState::FinWait => "FIN_WAIT",
            FlowState::Close => "CLOSE",
            FlowState::Udp => "UDP",
            FlowState::TimeWait => "TIME_WAIT",
        }
    }

    /// Counted as ipvsadm's ActiveConn: IPVS marks a connection active only while its TCP state
    /// is ESTABLISHED; every other state, and every UDP connection, is InActConn.
    pub fn is_active(self) -> bool {
        matches!(self, FlowState::Established)
    }

    /// State of a new TCP flow whose first segment carries `f` (IPVS starts from NONE).
    ///
    /// Deviation, kept on purpose: IPVS (sloppy_tcp=0) schedules new TCP connections only on a
    /// SYN; rvs also takes up a flow whose first segment is a plain ACK (after a director restart
    /// or an RSS change) and, as the older IPVS table did, counts it ESTABLISHED.
    pub fn tcp_initial(f: TcpFlags) -> Self {
        // NONE row of the INPUT-ONLY table: syn -> SR, fin -> CL, ack -> ES, rst -> CL.
        if f.rst() {
            FlowState::Close
        } else if f.syn() {
            FlowState::SynRecv
        } else if f.fin() {
            FlowState::Close
        } else if f.ack() {
            FlowState::Established
        } else {
            FlowState::Close
        }
    }

    /// Next state of a TCP flow on a client-to-server segment with flags `f`: IPVS's INPUT-ONLY
    /// table, the flag picked as IPVS does (RST, else SYN, else FIN, else ACK; none: unchanged).
    ///
    /// ```text
    ///          sES  sSR  sFW  sTW  sCL
    ///   syn    sES  sSR  sSR  sSR  sSR
    ///   fin    sFW  sTW  sFW  sTW  sCL
    ///   ack    sES  sES  sFW  sTW  sCL
    ///   rst    sCL  sSR  sCL  sCL  sCL
    /// ```
    pub fn tcp_next(self, f: TcpFlags) -> Self {
        use FlowState::*;
        let cur = match self {
            // A UDP or free entry never gets here in practice; treat it as established.
            Free | Udp => Established,
            s => s,
        };
        if f.rst() {
            match cur {
                SynRecv => SynRecv,
                _ => Close,
            }
        } else if f.syn() {
            match cur {
                Established => Established,
                _ => SynRecv,
            }
        } else if f.fin() {
            match cur {
                Established | FinWait => FinWait,
                SynRecv | TimeWait => TimeWait,
                _ => Close,
            }
        } else if f.ack() {
            match cur {
                Established | SynRecv => Established,
                s => s,
            }
        } else {
            cur
        }
    }
}

/// The 5-tuple of a flow (addresses as host-order u32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlowKey {
    pub src: u32,
    pub dst: u32,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
}

/// One flow, decoded from its stored words (a copy: changing it changes nothing in the table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    key: FlowKey,
    state: FlowState,
    /// Real server slot (stats index, key into the snapshot's slot table).
    pub rs_slot: u32,
    /// Real server id, to tell a deleted server from one that reused its slot.
    pub rs_id: u32,
    /// Last packet time, seconds.
    last_seen: u32,
    hash: u32,
}

impl Entry {
    pub fn key(&self) -> FlowKey {
        self.key
    }
    pub fn state(&self) -> FlowState {
        self.state
    }
    pub fn last_seen(&self) -> u32 {
        self.last_seen
    }
}

/// One stored entry: four 64-bit words, 32 bytes.
///
/// - `w[0]`: src | dst << 32
/// - `w[1]`: sport | dport << 16 | proto << 32 | state << 40
/// - `w[2]`: rs_slot | rs_id << 32
/// - `w[3]`: last_seen | hash << 32
#[derive(Debug, Default)]
#[repr(C)]
struct Slot {
    w: [AtomicU64; 4],
}

fn lo(v: u64) -> u32 {
    v as u32
}
fn hi(v: u64) -> u32 {
    (v >> 32) as u32
}
fn pair(a: u32, b: u32) -> u64 {
    u64::from(a) | (u64::from(b) << 32)
}
fn ports_word(k: &FlowKey, state: FlowState) -> u64 {
    u64::from(k.sport)
        | (u64::from(k.dport) << 16)
        | (u64::from(k.proto) << 32)
        | ((state as u64) << 40)
}

impl Slot {
    #[inline]
    fn state_raw(&self) -> u8 {
        (self.w[1].load(Relaxed) >> 40) as u8
    }
    #[inline]
    fn set_state(&self, s: FlowState) {
        let w = self.w[1].load(Relaxed);
        self.w[1].store((w & !(0xff << 40)) | ((s as u64) << 40), Relaxed);
    }
    #[inline]
    fn last_seen(&self) -> u32 {
        lo(self.w[3].load(Relaxed))
    }
    /// Decode; `None` for a free slot or a state no entry holds.
    #[inline]
    fn read(&self) -> Option<Entry> {
        // The state word first (Acquire, pairing with the Release of `insert`): the words
        // written before it are seen.
        let w1 = self.w[1].load(Acquire);
        let w0 = self.w[0].load(Relaxed);
        let w2 = self.w[2].load(Relaxed);
        let w3 = self.w[3].load(Relaxed);
        let state = FlowState::from_u8((w1 >> 40) as u8)?;
        if state == FlowState::Free {
            return None;
        }
        Some(Entry {
            key: FlowKey {
                src: lo(w0),
                dst: hi(w0),
                sport: w1 as u16,
                dport: (w1 >> 16) as u16,
                proto: (w1 >> 32) as u8,
            },
            state,
            rs_slot: lo(w2),
            rs_id: hi(w2),
            last_seen: lo(w3),
            hash: hi(w3),
        })
    }
    #[inline]
    fn matches(&self, k: &FlowKey, hash: u32) -> bool {
        let w1 = self.w[1].load(Relaxed);
        (w1 >> 40) as u8 != 0
            && hi(self.w[3].load(Relaxed)) == hash
            && (w1 & 0xff_ffff_ffff) == (ports_word(k, FlowState::Free) & 0xff_ffff_ffff)
            && self.w[0].load(Relaxed) == pair(k.src, k.dst)
    }
}

/// One cache line: two entries.
#[derive(Debug, Default)]
#[repr(C, align(64))]
struct Bucket {
    e: [Slot; ENTRIES_PER_BUCKET],
}

const ENTRIES_PER_BUCKET: usize = 2;
/// Entries a flow may occupy, starting at its bucket.
pub const WINDOW: usize = 8;
/// Cache lines of a flow's window [`FlowTable::prefetch`] loads: the home bucket and the next
/// one hold the flow in most cases at the loads the table runs at (linear placement from the
/// home entry); the window's last two lines are rarely reached.
const PREFETCH_BUCKETS: usize = 2;

/// No free or expired entry in the flow's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

/// Index of an entry in the table.
pub type EntryId = usize;

/// The seeded hash of `k`.
#[inline]
fn hash_key(seed: u64, k: &FlowKey) -> u32 {
    let a = (u64::from(k.src) << 32) | u64::from(k.dst);
    let b = (u64::from(k.sport) << 24) | (u64::from(k.dport) << 8) | u64::from(k.proto);
    let mut h = (a ^ seed).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^= h >> 29;
    h = (h ^ b).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 32;
    h as u32
}

/// A flow table's storage, shareable with readers on other threads (see the module docs).
#[derive(Debug)]
pub struct FlowStore {
    buckets: Box<[Bucket]>,
    entry_mask: usize,
    seed: u64,
}

impl FlowStore {
    #[inline]
    fn slot(&self, idx: usize) -> Option<&Slot> {
        let idx = idx & self.entry_mask;
        self.buckets
            .get(idx / ENTRIES_PER_BUCKET)
            .and_then(|b| b.e.get(idx % ENTRIES_PER_BUCKET))
    }

    pub fn capacity(&self) -> usize {
        self.entry_mask + 1
    }

    /// Call `f` with every entry that validates (live state, hash of the key read equals the
    /// stored hash), in table order, until `f` returns `false`. Safe to call from any thread
    /// while the owning worker writes; entries being rewritten are skipped or seen whole.
    /// Expired entries not yet reclaimed are included (the caller compares `last_seen`).
    pub fn for_each(&self, mut f: impl FnMut(&Entry) -> bool) {
        for b in self.buckets.iter() {
            for s in &b.e {
                if let Some(e) = s.read() {
                    if hash_key(self.seed, &e.key) == e.hash && !f(&e) {
                        return;
                    }
                }
            }
        }
    }
}

/// The flow table. See the module docs.
#[derive(Debug)]
pub struct FlowTable {
    store: Arc<FlowStore>,
    entry_mask: usize,
    seed: u64,
    cursor: usize,
    timeouts: Timeouts,
    len: usize,
}

impl FlowTable {
    /// A table of at least `capacity` entries (rounded up to a power of two, at least
    /// [`WINDOW`]), hashing with `seed`.
    pub fn new(capacity: usize, timeouts: Timeouts, seed: u64) -> Self {
        let entries = capacity.max(WINDOW).next_power_of_two();
        let n = entries / ENTRIES_PER_BUCKET;
        // Reserve first, advise huge pages, then initialise: the first touch faults the table
        // in as 2 MiB pages (where THP is available), sparing a TLB miss per random lookup.
        let mut buckets: Vec<Bucket> = Vec::with_capacity(n);
        crate::dpdk::advise_hugepages(buckets.spare_capacity_mut());
        buckets.extend((0..n).map(|_| Bucket::default()));
        FlowTable {
            store: Arc::new(FlowStore {
                buckets: buckets.into_boxed_slice(),
                entry_mask: entries - 1,
                seed,
            }),
            entry_mask: entries - 1,
            seed,
            cursor: 0,
            timeouts,
            len: 0,
        }
    }

    /// The storage, for readers on other threads.
    pub fn store(&self) -> Arc<FlowStore> {
        Arc::clone(&self.store)
    }

    pub fn capacity(&self) -> usize {
        self.entry_mask + 1
    }
    pub fn buckets(&self) -> usize {
        self.store.buckets.len()
    }
    /// Flows in the table, expired ones not yet reclaimed included.
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }
    /// New timeouts apply to every flow from the next check on (as IPVS, which applies a new
    /// timeout at a connection's next packet; here also to idle flows).
    pub fn set_timeouts(&mut self, t: Timeouts) {
        self.timeouts = t;
    }

    /// The seeded hash of `k` (stable for the life of the table).
    #[inline]
    pub fn hash(&self, k: &FlowKey) -> u32 {
        hash_key(self.seed, k)
    }

    /// Idle timeout of a flow in state `s` under `t`.
    pub fn timeout_of(t: &Timeouts, s: FlowState) -> u32 {
        match s {
            FlowState::Free => 0,
            FlowState::SynRecv => t.tcp_syn,
            FlowState::Established => t.tcp,
            FlowState::FinWait => t.tcp_fin,
            FlowState::Close => t.tcp_close,
            FlowState::Udp => t.udp,
            FlowState::TimeWait => t.tcp_time_wait,
        }
    }

    #[inline]
    fn expired(&self, s: &Slot, now_s: u32) -> bool {
        let st = FlowState::from_u8(s.state_raw()).unwrap_or(FlowState::Free);
        now_s.wrapping_sub(s.last_seen()) > Self::timeout_of(&self.timeouts, st)
    }

    #[inline]
    fn slot(&self, idx: usize) -> Option<&Slot> {
        self.store.slot(idx)
    }

    fn base(&self, hash: u32) -> usize {
        (hash as usize).wrapping_mul(ENTRIES_PER_BUCKET) & self.entry_mask
    }

    /// Start loading the first [`PREFETCH_BUCKETS`] cache lines of the window of a flow whose
    /// hash is `hash`, so that a [`lookup`](Self::lookup) or insert shortly after does not stall
    /// on memory. Only a hint: it changes nothing.
    #[inline]
    pub fn prefetch(&self, hash: u32) {
        let buckets = &self.store.buckets;
        let first = self.base(hash) / ENTRIES_PER_BUCKET;
        for i in 0..PREFETCH_BUCKETS {
            // The bucket count is a power of two: the window wraps like `lookup`'s.
            let b = first.wrapping_add(i) & buckets.len().wrapping_sub(1);
            if let Some(b) = buckets.get(b) {
                crate::dpdk::prefetch(b);
            }
        }
    }

    /// Free entry `idx`, reporting it to `on_evict`.
    fn evict(&mut self, idx: usize, on_evict: &mut impl FnMut(&Entry)) {
        let Some(s) = self.store.slot(idx) else {
            return;
        };
        if let Some(old) = s.read() {
            s.set_state(FlowState::Free);
            self.len = self.len.saturating_sub(1);
            on_evict(&old);
        }
    }

    /// Find the live flow `k`. An expired entry for `k` is reclaimed (reported to `on_evict`)
    /// and reads as a miss.
    pub fn lookup(
        &mut self,
        k: &FlowKey,
        hash: u32,
        now_s: u32,
        on_evict: impl FnMut(&Entry),
    ) -> Option<EntryId> {
        self.find(k, hash, now_s, on_evict).map(|(id, _)| id)
    }

    /// [`lookup`](Self::lookup) that also returns the entry, decoded from the slot the key
    /// was matched in (the fast path's hit: one pass over the slot, no second `get`).
    #[inline]
    pub fn find(
        &mut self,
        k: &FlowKey,
        hash: u32,
        now_s: u32,
        mut on_evict: impl FnMut(&Entry),
    ) -> Option<(EntryId, Entry)> {
        let base = self.base(hash);
        for i in 0..WINDOW {
            let idx = (base + i) & self.entry_mask;
            let Some(s) = self.slot(idx) else { continue };
            if s.matches(k, hash) {
                if self.expired(s, now_s) {
                    self.evict(idx, &mut on_evict);
                    return None;
                }
                return s.read().map(|e| (idx, e));
            }
        }
        None
    }

    /// Insert flow `k` (known absent) in `state`, served by `(rs_slot, rs_id)`. An expired entry
    /// in the window is reused (reported to `on_evict`); live flows are never evicted.
    #[allow(clippy::too_many_arguments)]
    pub fn insert(
        &mut self,
        k: &FlowKey,
        hash: u32,
        state: FlowState,
        rs_slot: u32,
        rs_id: u32,
        now_s: u32,
        mut on_evict: impl FnMut(&Entry),
    ) -> Result<EntryId, Full> {
        let base = self.base(hash);
        let mut found = None;
        for i in 0..WINDOW {
            let idx = (base + i) & self.entry_mask;
            let Some(s) = self.slot(idx) else { continue };
            if s.state_raw() == 0 || self.expired(s, now_s) {
                found = Some(idx);
                break;
            }
        }
        let idx = found.ok_or(Full)?;
        self.evict(idx, &mut on_evict);
        let s = self.store.slot(idx).ok_or(Full)?;
        // Key words first with the slot still free, the state last: a reader that sees the
        // state sees a key whose hash validates (or skips the entry).
        s.w[1].store(ports_word(k, FlowState::Free), Relaxed);
        s.w[0].store(pair(k.src, k.dst), Relaxed);
        s.w[2].store(pair(rs_slot, rs_id), Relaxed);
        s.w[3].store(pair(now_s, hash), Relaxed);
        s.w[1].store(ports_word(k, state), Release);
        self.len += 1;
        Ok(idx)
    }

    /// The live entry `id` (a decoded copy).
    pub fn get(&self, id: EntryId) -> Option<Entry> {
        self.slot(id).and_then(Slot::read)
    }

    /// Record a packet on flow `id`: new state and time. Returns the previous state.
    #[inline]
    pub fn touch(&mut self, id: EntryId, state: FlowState, now_s: u32) -> Option<FlowState> {
        let s = self.slot(id)?;
        let old = FlowState::from_u8(s.state_raw()).filter(|&o| o != FlowState::Free)?;
        if state != FlowState::Free && state != old {
            s.set_state(state);
        }
        let w3 = s.w[3].load(Relaxed);
        s.w[3].store((w3 & !0xffff_ffff) | u64::from(now_s), Relaxed);
        Some(old)
    }

    /// Point flow `id` at another real server (its old one was deleted or replaced).
    pub fn set_server(&mut self, id: EntryId, rs_slot: u32, rs_id: u32) {
        if let Some(s) = self.slot(id).filter(|s| s.state_raw() != 0) {
            s.w[2].store(pair(rs_slot, rs_id), Relaxed);
        }
    }

    /// Remove flow `id` (reported to `on_evict`).
    pub fn remove(&mut self, id: EntryId, mut on_evict: impl FnMut(&Entry)) {
        self.evict(id, &mut on_evict);
    }

    /// Walk the next `n_buckets` buckets (wrapping) and reclaim expired flows, reporting each to
    /// `on_evict`. Returns how many were reclaimed.
    pub fn expire_slice(
        &mut self,
        now_s: u32,
        n_buckets: usize,
        mut on_evict: impl FnMut(&Entry),
    ) -> usize {
        let mut n = 0;
        let nb = self.store.buckets.len();
        for _ in 0..n_buckets.min(nb) {
            let b = self.cursor;
            self.cursor = (self.cursor + 1) % nb;
            for j in 0..ENTRIES_PER_BUCKET {
                let idx = b * ENTRIES_PER_BUCKET + j;
                let expired = self
                    .slot(idx)
                    .is_some_and(|s| s.state_raw() != 0 && self.expired(s, now_s));
                if expired {
                    self.evict(idx, &mut on_evict);
                    n += 1;
                }
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(sport: u16) -> FlowKey {
        FlowKey {
            src: 0xc612_010a,
            dst: 0xc612_0064,
            sport,
            dport: 80,
            proto: 6,
        }
    }

    fn flags(f: u8) -> TcpFlags {
        TcpFlags(f)
    }

    #[test]
    fn entries_are_compact() {
        assert_eq!(std::mem::size_of::<Slot>(), 32);
        assert_eq!(std::mem::size_of::<Bucket>(), 64);
        assert_eq!(std::mem::align_of::<Bucket>(), 64);
    }

    #[test]
    fn insert_lookup_touch_remove() {
        let mut t = FlowTable::new(100, Timeouts::default(), 7);
        assert_eq!(t.capacity(), 128);
        assert_eq!(t.buckets(), 64);
        let k = key(40000);
        let h = t.hash(&k);
        assert_eq!(t.lookup(&k, h, 0, |_| ()), None);
        let id = t
            .insert(&k, h, FlowState::SynRecv, 3, 33, 0, |_| panic!())
            .unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t.lookup(&k, h, 1, |_| ()), Some(id));
        let e = t.get(id).unwrap();
        assert_eq!(t.find(&k, h, 1, |_| ()), Some((id, e)));
        assert_eq!(t.find(&key(40002), t.hash(&key(40002)), 1, |_| ()), None);
        assert_eq!((e.rs_slot, e.rs_id, e.key()), (3, 33, k));
        assert_eq!(
            t.touch(id, FlowState::Established, 5),
            Some(FlowState::SynRecv)
        );
        assert_eq!(t.get(id).unwrap().state(), FlowState::Established);
        t.set_server(id, 4, 44);
        assert_eq!(t.get(id).unwrap().rs_id, 44);
        let other = key(40001);
        assert_eq!(t.lookup(&other, t.hash(&other), 1, |_| ()), None);
        let mut evicted = 0;
        t.remove(id, |_| evicted += 1);
        assert_eq!((evicted, t.len()), (1, 0));
        assert_eq!(t.lookup(&k, h, 1, |_| ()), None);
    }

    #[test]
    fn expiry_lazy_and_incremental() {
        let to = Timeouts::default();
        let mut t = FlowTable::new(64, to, 1);
        let k = key(1);
        let h = t.hash(&k);
        t.insert(&k, h, FlowState::SynRecv, 0, 1, 100, |_| ())
            .unwrap();
        // still there at exactly the timeout, gone after it
        assert!(t.lookup(&k, h, 100 + to.tcp_syn, |_| ()).is_some());
        let mut ev = vec![];
        assert_eq!(
            t.lookup(&k, h, 101 + to.tcp_syn, |e| ev.push(e.rs_id)),
            None
        );
        assert_eq!((ev, t.len()), (vec![1], 0));

        // incremental: insert many, walk the whole table in slices
        for p in 0..20 {
            let k = key(p);
            let h = t.hash(&k);
            let st = if p % 2 == 0 {
                FlowState::Established
            } else {
                FlowState::Udp
            };
            t.insert(&k, h, st, 0, 1, 1000, |_| ()).unwrap();
        }
        assert_eq!(t.len(), 20);
        let mut n = 0;
        for _ in 0..t.buckets() / 4 {
            n += t.expire_slice(1000 + to.udp + 1, 4, |e| {
                assert_eq!(e.state(), FlowState::Udp)
            });
        }
        assert_eq!((n, t.len()), (10, 10));
        let mut n = 0;
        for _ in 0..t.buckets() {
            n += t.expire_slice(1000 + to.tcp + 1, 1, |_| ());
        }
        assert_eq!((n, t.len()), (10, 0));
    }

    #[test]
    fn full_window_refuses_without_evicting_live_flows() {
        // 8 entries = exactly one window: every key shares it.
        let mut t = FlowTable::new(8, Timeouts::default(), 0);
        for p in 0..8 {
            let k = key(p);
            t.insert(
                &k,
                t.hash(&k),
                FlowState::Established,
                0,
                1,
                0,
                |_| panic!(),
            )
            .unwrap();
        }
        let k = key(100);
        let h = t.hash(&k);
        assert_eq!(
            t.insert(&k, h, FlowState::SynRecv, 0, 1, 10, |_| panic!("evicted")),
            Err(Full)
        );
        for p in 0..8 {
            let k = key(p);
            assert!(t.lookup(&k, t.hash(&k), 10, |_| ()).is_some());
        }
        // once they expire, the slot is reused lazily
        let later = 11 + Timeouts::default().tcp;
        let mut ev = 0;
        assert!(t
            .insert(&k, h, FlowState::SynRecv, 0, 1, later, |_| ev += 1)
            .is_ok());
        assert_eq!(ev, 1);
        assert_eq!(t.len(), 8);
    }

    #[test]
    fn tcp_state_transitions_follow_ipvs_input_only_table() {
        use FlowState::*;
        const S: u8 = TcpFlags::SYN;
        const A: u8 = TcpFlags::ACK;
        const F: u8 = TcpFlags::FIN;
        const R: u8 = TcpFlags::RST;
        // NONE row (first segment)
        assert_eq!(FlowState::tcp_initial(flags(S)), SynRecv);
        assert_eq!(FlowState::tcp_initial(flags(A)), Established);
        assert_eq!(FlowState::tcp_initial(flags(R | A)), Close);
        assert_eq!(FlowState::tcp_initial(flags(F | A)), Close);
        assert_eq!(FlowState::tcp_initial(flags(0)), Close);
        // the whole INPUT-ONLY table for the states we keep: (state, [syn, fin, ack, rst])
        let table = [
            (Established, [Established, FinWait, Established, Close]),
            (SynRecv, [SynRecv, TimeWait, Established, SynRecv]),
            (FinWait, [SynRecv, FinWait, FinWait, Close]),
            (TimeWait, [SynRecv, TimeWait, TimeWait, Close]),
            (Close, [SynRecv, Close, Close, Close]),
        ];
        for (from, to) in table {
            assert_eq!(from.tcp_next(flags(S)), to[0], "{from:?} syn");
            assert_eq!(from.tcp_next(flags(F | A)), to[1], "{from:?} fin");
            assert_eq!(from.tcp_next(flags(A)), to[2], "{from:?} ack");
            assert_eq!(from.tcp_next(flags(R | A)), to[3], "{from:?} rst");
            // flag priority: rst > syn > fin > ack; no flag: unchanged
            assert_eq!(from.tcp_next(flags(S | F | R)), to[3]);
            assert_eq!(from.tcp_next(flags(S | F)), to[0]);
            assert_eq!(from.tcp_next(flags(0)), from);
        }
        assert!(Established.is_active());
        for s in [SynRecv, FinWait, TimeWait, Close, Udp] {
            assert!(!s.is_active(), "{s:?} is InActConn as in IPVS");
        }
        for v in 0..=255u8 {
            if let Some(s) = FlowState::from_u8(v) {
                assert_eq!(s as u8, v);
            } else {
                assert!(v > 6);
            }
        }
    }

    #[test]
    fn per_state_timeouts_and_runtime_change() {
        let mut t = FlowTable::new(64, Timeouts::default(), 3);
        let cases = [
            (FlowState::SynRecv, 60),
            (FlowState::Established, 900),
            (FlowState::FinWait, 120),
            (FlowState::TimeWait, 120),
            (FlowState::Close, 10),
            (FlowState::Udp, 300),
        ];
        for (i, (st, to)) in cases.iter().enumerate() {
            let k = key(1000 + i as u16);
            let h = t.hash(&k);
            t.insert(&k, h, *st, 0, 1, 0, |_| ()).unwrap();
            assert!(
                t.lookup(&k, h, *to, |_| ()).is_some(),
                "{st:?} alive at {to}"
            );
            assert!(t.lookup(&k, h, to + 1, |_| ()).is_none(), "{st:?} gone");
        }
        // new timeouts apply to flows already in the table
        let k = key(2000);
        let h = t.hash(&k);
        t.insert(&k, h, FlowState::Established, 0, 1, 0, |_| ())
            .unwrap();
        t.set_timeouts(Timeouts {
            tcp: 30,
            ..Timeouts::default()
        });
        assert!(t.lookup(&k, h, 31, |_| ()).is_none());
    }

    #[test]
    fn listing_from_another_thread_while_inserting() {
        let mut t = FlowTable::new(1024, Timeouts::default(), 9);
        let store = t.store();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut seen = 0usize;
                while !stop.load(Relaxed) {
                    store.for_each(|e| {
                        assert_eq!((e.key().src, e.key().dst), (0xc612_010a, 0xc612_0064));
                        assert!(e.state() != FlowState::Free);
                        assert_eq!(e.rs_id, u32::from(e.key().sport) + 1);
                        seen += 1;
                        true
                    });
                }
                seen
            })
        };
        for round in 0..50u32 {
            for p in 0..600u16 {
                let k = key(p);
                let h = t.hash(&k);
                let st = if p % 2 == 0 {
                    FlowState::SynRecv
                } else {
                    FlowState::Established
                };
                if t.lookup(&k, h, round * 1000, |_| ()).is_none() {
                    let _ = t.insert(&k, h, st, 0, u32::from(p) + 1, round * 1000, |_| ());
                }
            }
            // every flow idles out before the next round: slots get rewritten
        }
        stop.store(true, Relaxed);
        let seen = reader.join().unwrap();
        assert!(seen > 0);
        let mut n = 0;
        t.store().for_each(|_| {
            n += 1;
            n < 10
        });
        assert_eq!(n, 10, "for_each stops when told");
    }

    #[test]
    fn hash_depends_on_every_field_and_seed() {
        let t = FlowTable::new(64, Timeouts::default(), 1);
        let u = FlowTable::new(64, Timeouts::default(), 2);
        let k = key(5);
        let h = t.hash(&k);
        assert_ne!(h, u.hash(&k));
        for m in [
            FlowKey { src: 1, ..k },
            FlowKey { dst: 1, ..k },
            FlowKey { sport: 6, ..k },
            FlowKey { dport: 81, ..k },
            FlowKey { proto: 17, ..k },
        ] {
            assert_ne!(t.hash(&m), h);
        }
    }
}
