//! The per-worker flow (connection) table.
//!
//! A fixed number of 64-byte buckets (a power of two), allocated once at start; each bucket is one
//! cache line holding two 32-byte entries. A flow hashes to a bucket and may live in any of the
//! [`WINDOW`] entries starting there (four adjacent lines). Lookup and insert never allocate nor
//! lock. Idle flows expire by a per-state timeout (IPVS defaults): lazily, when an insert finds
//! an expired entry in its window, and incrementally through [`FlowTable::expire_slice`]. When a
//! window holds only live flows the insert fails: live flows are never evicted.
//!
//! In direct routing the director sees only the client-to-server direction, so the TCP state is
//! what IPVS keeps for input-only connections: SYN seen, established once a segment without SYN
//! arrives, FIN or RST closing.

use crate::wire::l4::TcpFlags;

/// Idle timeouts in seconds per flow state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// After a SYN (IPVS SYN_RECV: 60 s).
    pub tcp_syn: u32,
    /// IPVS ESTABLISHED: 900 s.
    pub tcp: u32,
    /// After a FIN (IPVS FIN_WAIT: 120 s).
    pub tcp_fin: u32,
    /// After a RST (IPVS CLOSE: 10 s).
    pub tcp_close: u32,
    /// IPVS UDP: 300 s.
    pub udp: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp_syn: 60,
            tcp: 900,
            tcp_fin: 120,
            tcp_close: 10,
            udp: 300,
        }
    }
}

/// A flow's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FlowState {
    Free = 0,
    SynRecv = 1,
    Established = 2,
    FinWait = 3,
    Close = 4,
    Udp = 5,
}

impl FlowState {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => FlowState::SynRecv,
            2 => FlowState::Established,
            3 => FlowState::FinWait,
            4 => FlowState::Close,
            5 => FlowState::Udp,
            _ => FlowState::Free,
        }
    }

    /// Counted as ipvsadm's ActiveConn (ESTABLISHED, or any UDP flow); other live states are
    /// InActConn.
    pub fn is_active(self) -> bool {
        matches!(self, FlowState::Established | FlowState::Udp)
    }

    /// State of a new TCP flow whose first segment carries `f`. A first segment without SYN
    /// (e.g. after a director restart) is taken as an established connection.
    pub fn tcp_initial(f: TcpFlags) -> Self {
        if f.rst() {
            FlowState::Close
        } else if f.fin() {
            FlowState::FinWait
        } else if f.syn() {
            FlowState::SynRecv
        } else {
            FlowState::Established
        }
    }

    /// Next state of a TCP flow on a segment with flags `f`.
    pub fn tcp_next(self, f: TcpFlags) -> Self {
        if f.rst() {
            return FlowState::Close;
        }
        if f.fin() {
            return FlowState::FinWait;
        }
        match self {
            // A new SYN on a closed flow reopens it (port reuse); a SYN retransmit stays.
            FlowState::Close | FlowState::FinWait if f.syn() && !f.ack() => FlowState::SynRecv,
            FlowState::SynRecv if f.syn() => FlowState::SynRecv,
            FlowState::SynRecv => FlowState::Established,
            FlowState::Free | FlowState::Udp => FlowState::Established,
            s => s,
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

/// One flow: 32 bytes.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C)]
pub struct Entry {
    src: u32,
    dst: u32,
    sport: u16,
    dport: u16,
    proto: u8,
    state: u8,
    _pad: u16,
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
        FlowKey {
            src: self.src,
            dst: self.dst,
            sport: self.sport,
            dport: self.dport,
            proto: self.proto,
        }
    }
    pub fn state(&self) -> FlowState {
        FlowState::from_u8(self.state)
    }
    pub fn last_seen(&self) -> u32 {
        self.last_seen
    }
    fn matches(&self, k: &FlowKey, hash: u32) -> bool {
        self.state != 0
            && self.hash == hash
            && self.src == k.src
            && self.dst == k.dst
            && self.sport == k.sport
            && self.dport == k.dport
            && self.proto == k.proto
    }
}

/// One cache line: two entries.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(64))]
struct Bucket {
    e: [Entry; ENTRIES_PER_BUCKET],
}

const ENTRIES_PER_BUCKET: usize = 2;
/// Entries a flow may occupy, starting at its bucket.
pub const WINDOW: usize = 8;

/// No free or expired entry in the flow's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

/// Index of an entry in the table.
pub type EntryId = usize;

/// The flow table. See the module docs.
#[derive(Debug)]
pub struct FlowTable {
    buckets: Box<[Bucket]>,
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
        FlowTable {
            buckets: vec![Bucket::default(); n].into_boxed_slice(),
            entry_mask: entries - 1,
            seed,
            cursor: 0,
            timeouts,
            len: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.entry_mask + 1
    }
    pub fn buckets(&self) -> usize {
        self.buckets.len()
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

    /// The seeded hash of `k` (stable for the life of the table).
    #[inline]
    pub fn hash(&self, k: &FlowKey) -> u32 {
        let a = (u64::from(k.src) << 32) | u64::from(k.dst);
        let b = (u64::from(k.sport) << 24) | (u64::from(k.dport) << 8) | u64::from(k.proto);
        let mut h = (a ^ self.seed).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h ^= h >> 29;
        h = (h ^ b).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h ^= h >> 32;
        h as u32
    }

    fn timeout(&self, s: FlowState) -> u32 {
        match s {
            FlowState::Free => 0,
            FlowState::SynRecv => self.timeouts.tcp_syn,
            FlowState::Established => self.timeouts.tcp,
            FlowState::FinWait => self.timeouts.tcp_fin,
            FlowState::Close => self.timeouts.tcp_close,
            FlowState::Udp => self.timeouts.udp,
        }
    }

    fn expired(&self, e: &Entry, now_s: u32) -> bool {
        now_s.wrapping_sub(e.last_seen) > self.timeout(e.state())
    }

    #[inline]
    fn slot(&self, idx: usize) -> Option<&Entry> {
        let idx = idx & self.entry_mask;
        self.buckets
            .get(idx / ENTRIES_PER_BUCKET)
            .and_then(|b| b.e.get(idx % ENTRIES_PER_BUCKET))
    }

    #[inline]
    fn slot_mut(&mut self, idx: usize) -> Option<&mut Entry> {
        let idx = idx & self.entry_mask;
        self.buckets
            .get_mut(idx / ENTRIES_PER_BUCKET)
            .and_then(|b| b.e.get_mut(idx % ENTRIES_PER_BUCKET))
    }

    fn base(&self, hash: u32) -> usize {
        (hash as usize).wrapping_mul(ENTRIES_PER_BUCKET) & self.entry_mask
    }

    /// Free entry `idx`, reporting it to `on_evict`.
    fn evict(&mut self, idx: usize, on_evict: &mut impl FnMut(&Entry)) {
        if let Some(e) = self.slot_mut(idx) {
            if e.state != 0 {
                let old = *e;
                e.state = 0;
                self.len = self.len.saturating_sub(1);
                on_evict(&old);
            }
        }
    }

    /// Find the live flow `k`. An expired entry for `k` is reclaimed (reported to `on_evict`)
    /// and reads as a miss.
    pub fn lookup(
        &mut self,
        k: &FlowKey,
        hash: u32,
        now_s: u32,
        mut on_evict: impl FnMut(&Entry),
    ) -> Option<EntryId> {
        let base = self.base(hash);
        for i in 0..WINDOW {
            let idx = (base + i) & self.entry_mask;
            let Some(e) = self.slot(idx) else { continue };
            if e.matches(k, hash) {
                if self.expired(e, now_s) {
                    self.evict(idx, &mut on_evict);
                    return None;
                }
                return Some(idx);
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
            let Some(e) = self.slot(idx) else { continue };
            if e.state == 0 || self.expired(e, now_s) {
                found = Some(idx);
                break;
            }
        }
        let idx = found.ok_or(Full)?;
        self.evict(idx, &mut on_evict);
        let e = self.slot_mut(idx).ok_or(Full)?;
        *e = Entry {
            src: k.src,
            dst: k.dst,
            sport: k.sport,
            dport: k.dport,
            proto: k.proto,
            state: state as u8,
            _pad: 0,
            rs_slot,
            rs_id,
            last_seen: now_s,
            hash,
        };
        self.len += 1;
        Ok(idx)
    }

    pub fn get(&self, id: EntryId) -> Option<&Entry> {
        self.slot(id).filter(|e| e.state != 0)
    }

    /// Record a packet on flow `id`: new state and time. Returns the previous state.
    pub fn touch(&mut self, id: EntryId, state: FlowState, now_s: u32) -> Option<FlowState> {
        let e = self.slot_mut(id).filter(|e| e.state != 0)?;
        let old = e.state();
        if state != FlowState::Free {
            e.state = state as u8;
        }
        e.last_seen = now_s;
        Some(old)
    }

    /// Point flow `id` at another real server (its old one was deleted or replaced).
    pub fn set_server(&mut self, id: EntryId, rs_slot: u32, rs_id: u32) {
        if let Some(e) = self.slot_mut(id).filter(|e| e.state != 0) {
            e.rs_slot = rs_slot;
            e.rs_id = rs_id;
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
        let nb = self.buckets.len();
        for _ in 0..n_buckets.min(nb) {
            let b = self.cursor;
            self.cursor = (self.cursor + 1) % nb;
            for j in 0..ENTRIES_PER_BUCKET {
                let idx = b * ENTRIES_PER_BUCKET + j;
                let expired = self
                    .slot(idx)
                    .is_some_and(|e| e.state != 0 && self.expired(e, now_s));
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
        assert_eq!(std::mem::size_of::<Entry>(), 32);
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
    fn tcp_state_transitions() {
        use FlowState::*;
        const S: u8 = TcpFlags::SYN;
        const A: u8 = TcpFlags::ACK;
        const F: u8 = TcpFlags::FIN;
        const R: u8 = TcpFlags::RST;
        assert_eq!(FlowState::tcp_initial(flags(S)), SynRecv);
        assert_eq!(FlowState::tcp_initial(flags(A)), Established);
        assert_eq!(FlowState::tcp_initial(flags(R | A)), Close);
        assert_eq!(FlowState::tcp_initial(flags(F | A)), FinWait);
        assert_eq!(SynRecv.tcp_next(flags(S)), SynRecv);
        assert_eq!(SynRecv.tcp_next(flags(A)), Established);
        assert_eq!(Established.tcp_next(flags(A)), Established);
        assert_eq!(Established.tcp_next(flags(F | A)), FinWait);
        assert_eq!(FinWait.tcp_next(flags(A)), FinWait);
        assert_eq!(Established.tcp_next(flags(R)), Close);
        assert_eq!(Close.tcp_next(flags(S)), SynRecv);
        assert_eq!(FinWait.tcp_next(flags(S)), SynRecv);
        assert!(Established.is_active() && Udp.is_active());
        assert!(!SynRecv.is_active() && !FinWait.is_active() && !Close.is_active());
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
