//! The neighbour (ARP) table of real server addresses, shared lock free between the control
//! thread and every worker.
//!
//! A fixed-capacity open-addressing array (linear probing). Keys are inserted and removed by the
//! control thread only ([`NeighTable::update`], once per published snapshot); workers look
//! addresses up, read MACs, and learn from ARP frames ([`NeighTable::learn`]); the ARP worker
//! lists the addresses due for a request ([`NeighTable::due_requests`]). Nothing here allocates
//! after `new` but `update`, which runs on the control thread.
//!
//! # Learning: what an ARP frame may change
//!
//! The director sits on a shared L2 segment, so a frame that merely claims a real server's
//! address proves nothing:
//! - an unresolved entry is resolved only by a reply that answers our own request: addressed
//!   to the DIP and the port's MAC, within [`ANSWER_WINDOW_MS`] of a request we sent;
//! - a resolved entry never changes at once to another MAC: a frame claiming one (reply,
//!   gratuitous ARP, or request with the server's address as sender) is refused, its MAC kept
//!   as a candidate, and a fresh request made due at once. After [`VERIFY_MS`], if only the
//!   candidate answered our requests the entry follows it (a replaced NIC); if the old MAC
//!   answered (or a third one), the old MAC stays and a conflict is counted;
//! - the port's own MAC, zero, multicast and broadcast MACs are never accepted, and a static
//!   entry never changes;
//! - every refused update is counted ([`NeighTable::events`]) and the last one kept per entry,
//!   so that a thread outside the workers can log them ([`EventLog`]): workers never log.
//!
//! # Reclaiming entries
//!
//! An address no snapshot needs any more (no real server has it, not static) is retired: it
//! stays, unasked, while some worker may still forward by an older snapshot that references
//! its slot. Once every worker has seen a snapshot without it, it becomes a tombstone (lookups
//! walk past it); once every worker has seen a snapshot published after that, no worker can be
//! between a lookup and a use of the slot, and the slot is free for another address. Free
//! tombstones followed by an empty slot are turned back to empty, so probe chains stay short.
//! Workers report the epoch they forward by ([`crate::snapshot::Shared::mark_seen`]); the
//! control thread passes the oldest one to `update`.

use crate::model::StaticNeighbour;
use crate::report::{MacAddr, NeighState};
use crate::wire::arp::{build_frame, Operation};
use crate::wire::ethernet;
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::atomic::{
    AtomicBool, AtomicU32, AtomicU64, AtomicUsize,
    Ordering::{AcqRel, Acquire, Relaxed, Release},
};

const MAC_MASK: u64 = (1 << 48) - 1;
const RESOLVED: u64 = 1 << 48;
const STATIC: u64 = 1 << 49;

/// Key word of a slot: `EMPTY`, `TOMB`, or `LIVE | address`.
const EMPTY: u64 = 0;
const LIVE: u64 = 1 << 32;
const TOMB: u64 = 1 << 33;

/// Candidate word of a slot: candidate MAC | `CAND` | who answered our requests since.
const CAND: u64 = 1 << 48;
const CAND_ANSWERED: u64 = 1 << 49;
const OLD_ANSWERED: u64 = 1 << 50;
const OTHER_ANSWERED: u64 = 1 << 51;

/// Requests sent for a stale entry without an answer before it becomes unresolved.
pub const STALE_TRIES: u32 = 3;
/// Default time an ARP answer stays reachable.
pub const DEFAULT_REACHABLE_MS: u64 = 30_000;
/// Default interval between requests for one address.
pub const DEFAULT_RETRY_MS: u64 = 1_000;
/// A reply within this time of our last request for its sender is an answer to it.
pub const ANSWER_WINDOW_MS: u64 = 2_000;
/// How long a claimed MAC change is checked (requests every retry interval) before the entry
/// follows the new MAC or keeps the old one.
pub const VERIFY_MS: u64 = 2_000;

/// The table has no room for another address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighTableFull;

/// Why an ARP frame did not change an entry (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Refusal {
    /// The port's own MAC, zero, or a multicast/broadcast MAC.
    BadMac = 1,
    /// Another MAC for a static entry.
    Static = 2,
    /// Another MAC for a resolved entry, not (yet) confirmed by our requests.
    Changed = 3,
}

impl Refusal {
    fn from_bits(b: u64) -> Self {
        match b {
            1 => Refusal::BadMac,
            2 => Refusal::Static,
            _ => Refusal::Changed,
        }
    }

    /// How the log names it.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::BadMac => "invalid MAC",
            Refusal::Static => "static entry",
            Refusal::Changed => "MAC change",
        }
    }
}

/// What an ARP frame from a tracked address did to its entry ([`NeighTable::learn`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learned {
    /// An answer to our request: resolved or refreshed the entry.
    Confirmed,
    /// An answer to our request from a MAC under verification: recorded.
    Verifying,
    /// Nothing to learn and nothing wrong: not an answer to us, and the entry is unresolved
    /// or the frame carries the MAC we have.
    Ignored,
    /// A change refused (counted).
    Refused(Refusal),
}

#[derive(Debug, Default)]
struct Slot {
    /// `EMPTY`, `TOMB` or `LIVE | address`.
    key: AtomicU64,
    /// 48-bit MAC | RESOLVED | STATIC.
    mac_flags: AtomicU64,
    confirmed_ms: AtomicU64,
    /// Time of the last request + 1 (0 = never requested, or a request is due at once).
    requested_ms: AtomicU64,
    /// A MAC change under verification: MAC | CAND | *_ANSWERED (0 = none).
    cand: AtomicU64,
    /// Start of the running verification + 1 (0 = none, or not started yet).
    verify_ms: AtomicU64,
    /// The last MAC refused for this address | reason << 56 (for the log).
    refused: AtomicU64,
    /// Control thread only. A live key: 0 while needed, else the epoch of the first snapshot
    /// without it. A tombstone: the epoch of the first snapshot published after its removal.
    epoch: AtomicU64,
    tries: AtomicU32,
    used: AtomicBool,
}

impl Slot {
    fn free_at(&self, min_seen: Option<u64>) -> bool {
        match self.key.load(Relaxed) {
            EMPTY => true,
            TOMB => min_seen.is_some_and(|m| self.epoch.load(Relaxed) <= m),
            _ => false,
        }
    }
}

/// Home slot of `ip` in a table of `mask + 1` slots (a power of two), `shift` being 64 minus
/// the number of index bits.
///
/// Fibonacci hashing: multiply by 2^64/phi and keep the top bits, which depend on every bit of
/// the address (the low bits of a product depend only on the low bits of the address).
fn spread(ip: u32, shift: u32, mask: usize) -> usize {
    let h = u64::from(ip).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h.checked_shr(shift).unwrap_or(0) as usize & mask
}

/// Totals of what [`NeighTable::learn`] and the verification of MAC changes did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NeighEvents {
    /// Updates refused (spoofing protection).
    pub refused: u64,
    /// Verifications that ended with the old MAC kept (it answered, or a third MAC did).
    pub conflicts: u64,
    /// Entries that followed a new MAC after verification.
    pub changes: u64,
}

/// A MAC claimed for an address, as the log reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    pub addr: Ipv4Addr,
    /// The MAC claimed (refused, or in conflict with the entry).
    pub claimed: MacAddr,
    /// The MAC in use for the address when read (for the log), if any.
    pub current: Option<MacAddr>,
    pub reason: Refusal,
}

/// The neighbour table. See the module docs.
#[derive(Debug)]
pub struct NeighTable {
    slots: Box<[Slot]>,
    mask: usize,
    /// 64 - log2(slots): the hash bits kept by [`spread`].
    shift: u32,
    /// Addresses needed at once at most (the configured size).
    capacity: usize,
    reachable_ms: u64,
    /// The port's MAC (as a word): never accepted for a neighbour.
    own_mac: u64,
    /// Live keys, retiring ones included (written by the control thread only).
    count: AtomicUsize,
    /// Live keys no snapshot needs any more, waiting for the workers to move on.
    retiring: AtomicUsize,
    refused: AtomicU64,
    conflicts: AtomicU64,
    changes: AtomicU64,
    /// Slot + 1 of the last refusal, conflict and change (0 = none).
    last_refused: AtomicUsize,
    last_conflict: AtomicUsize,
    last_change: AtomicUsize,
    /// The MAC (word) of the last conflict's candidate.
    last_conflict_mac: AtomicU64,
}

impl NeighTable {
    /// A table for `capacity` addresses (the slots are rounded up to a power of two and at
    /// most 3/4 of them hold needed addresses, so probes stay short and retiring entries have
    /// room).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let n = (capacity.saturating_mul(4) / 3 + 1).next_power_of_two();
        NeighTable {
            slots: (0..n).map(|_| Slot::default()).collect(),
            mask: n - 1,
            shift: 64 - n.trailing_zeros(),
            capacity,
            reachable_ms: DEFAULT_REACHABLE_MS,
            own_mac: 0,
            count: AtomicUsize::new(0),
            retiring: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
            conflicts: AtomicU64::new(0),
            changes: AtomicU64::new(0),
            last_refused: AtomicUsize::new(0),
            last_conflict: AtomicUsize::new(0),
            last_change: AtomicUsize::new(0),
            last_conflict_mac: AtomicU64::new(0),
        }
    }

    /// The port's own MAC, never accepted as a neighbour's.
    pub fn with_own_mac(mut self, mac: [u8; 6]) -> Self {
        self.own_mac = MacAddr(mac).word();
        self
    }

    /// Find the slot of `ip`, if tracked.
    pub fn find(&self, ip: Ipv4Addr) -> Option<usize> {
        let want = LIVE | u64::from(u32::from(ip));
        let mut i = spread(u32::from(ip), self.shift, self.mask);
        for _ in 0..self.slots.len() {
            match self.slots.get(i)?.key.load(Acquire) {
                EMPTY => return None,
                k if k == want => return Some(i),
                _ => i = (i + 1) & self.mask,
            }
        }
        None
    }

    /// Track `ip` (control thread only), outside a publication: returns its slot, existing or
    /// new. Refused when `capacity` needed addresses are tracked, or no empty slot is left.
    pub fn insert(&self, ip: Ipv4Addr) -> Result<usize, NeighTableFull> {
        if let Some(s) = self.find(ip) {
            return Ok(s);
        }
        if self.len() - self.retiring.load(Relaxed) >= self.capacity {
            return Err(NeighTableFull);
        }
        self.insert_new(u32::from(ip), None)
    }

    /// Put `ip` (not tracked) in the first free slot of its probe chain: an empty one, or a
    /// tombstone every worker has moved past (`min_seen`, see [`update`](Self::update)).
    fn insert_new(&self, ip: u32, min_seen: Option<u64>) -> Result<usize, NeighTableFull> {
        let mut i = spread(ip, self.shift, self.mask);
        for _ in 0..self.slots.len() {
            let s = &self.slots[i];
            if s.free_at(min_seen) {
                s.mac_flags.store(0, Relaxed);
                s.confirmed_ms.store(0, Relaxed);
                s.requested_ms.store(0, Relaxed);
                s.cand.store(0, Relaxed);
                s.verify_ms.store(0, Relaxed);
                s.refused.store(0, Relaxed);
                s.epoch.store(0, Relaxed);
                s.tries.store(0, Relaxed);
                s.used.store(true, Relaxed);
                // Publish the key last: a reader that sees it sees initialised fields.
                s.key.store(LIVE | u64::from(ip), Release);
                self.count.fetch_add(1, Relaxed);
                return Ok(i);
            }
            i = (i + 1) & self.mask;
        }
        Err(NeighTableFull)
    }

    /// Bring the table in line with the snapshot about to be published as `epoch` (control
    /// thread only): track every address of `servers` (real servers, asked by ARP) and
    /// `statics` (configured MACs), retire the others, and reclaim what every worker has moved
    /// past (`min_seen`: the oldest epoch a worker still forwards by). Refused when more than
    /// `capacity` addresses are needed, or no free slot is left for the new ones (retired
    /// entries waiting for a worker that lags); nothing a published snapshot uses is changed
    /// then.
    pub fn update(
        &self,
        servers: &[Ipv4Addr],
        statics: &[StaticNeighbour],
        epoch: u64,
        min_seen: u64,
    ) -> Result<(), NeighTableFull> {
        let mut rs: Vec<u32> = servers.iter().map(|&a| u32::from(a)).collect();
        rs.sort_unstable();
        rs.dedup();
        let mut st: Vec<(u32, u64)> = statics
            .iter()
            .map(|s| (u32::from(s.addr), MacAddr(s.mac).word()))
            .collect();
        st.sort_unstable_by_key(|e| e.0);
        st.dedup_by_key(|e| e.0);
        let static_of = |a: u32| {
            st.binary_search_by_key(&a, |e| e.0)
                .ok()
                .and_then(|j| st.get(j))
                .map(|e| e.1)
        };
        let needs = |a: u32| rs.binary_search(&a).is_ok() || static_of(a).is_some();
        let only_static = st
            .iter()
            .map(|e| e.0)
            .filter(|a| rs.binary_search(a).is_err());
        let needed: Vec<u32> = rs.iter().copied().chain(only_static).collect();
        if needed.len() > self.capacity {
            return Err(NeighTableFull);
        }

        // Entries retired by an earlier snapshot that every worker has moved past (and that
        // this one does not take back) become tombstones, free once every worker has seen the
        // snapshot published next. Always safe, so done even if this update fails below.
        for s in self.slots.iter() {
            let k = s.key.load(Relaxed);
            let e = s.epoch.load(Relaxed);
            if k & LIVE == 0 || e == 0 || e > min_seen || needs(k as u32) {
                continue;
            }
            s.mac_flags.store(0, Relaxed);
            s.cand.store(0, Relaxed);
            s.epoch.store(epoch, Relaxed);
            s.key.store(TOMB, Release);
            self.count.fetch_sub(1, Relaxed);
            self.retiring.fetch_sub(1, Relaxed);
        }
        self.compact(min_seen);

        let missing: Vec<u32> = needed
            .iter()
            .copied()
            .filter(|&a| self.find(Ipv4Addr::from(a)).is_none())
            .collect();
        let free = self
            .slots
            .iter()
            .filter(|s| s.free_at(Some(min_seen)))
            .count();
        if missing.len() > free {
            return Err(NeighTableFull);
        }

        for s in self.slots.iter() {
            let k = s.key.load(Relaxed);
            if k & LIVE == 0 {
                continue;
            }
            let a = k as u32;
            let used = rs.binary_search(&a).is_ok();
            let stat = static_of(a);
            if used || stat.is_some() {
                if s.epoch.swap(0, Relaxed) != 0 {
                    self.retiring.fetch_sub(1, Relaxed);
                }
                Self::apply_static(s, stat);
                s.used.store(used, Relaxed);
            } else {
                // Not asked any more; kept while a worker may forward by a snapshot with it.
                s.used.store(false, Relaxed);
                if s.epoch.load(Relaxed) == 0 {
                    s.epoch.store(epoch, Relaxed);
                    self.retiring.fetch_add(1, Relaxed);
                }
            }
        }
        for a in missing {
            let i = self.insert_new(a, Some(min_seen))?;
            if let Some(s) = self.slots.get(i) {
                Self::apply_static(s, static_of(a));
                s.used.store(rs.binary_search(&a).is_ok(), Relaxed);
            }
        }
        Ok(())
    }

    /// Make `s` static with MAC word `mac`, or (`None`) take a static entry back to ARP.
    fn apply_static(s: &Slot, mac: Option<u64>) {
        let v = s.mac_flags.load(Relaxed);
        match mac {
            Some(m) if v != m | STATIC => {
                s.cand.store(0, Relaxed);
                s.mac_flags.store(m | STATIC, Release);
            }
            None if v & STATIC != 0 => {
                s.mac_flags.store(0, Release);
                s.requested_ms.store(0, Relaxed);
                s.tries.store(0, Relaxed);
            }
            _ => {}
        }
    }

    /// Turn free tombstones that no live key's probe chain passes through back to empty, so
    /// that lookups of absent addresses stop early again. Safe for concurrent lookups: a
    /// lookup of a live key never reaches such a slot, and a free tombstone is no worker's
    /// slot any more.
    fn compact(&self, min_seen: u64) {
        let n = self.slots.len();
        for j in 0..n {
            let s = &self.slots[j];
            if s.key.load(Relaxed) != TOMB || !s.free_at(Some(min_seen)) {
                continue;
            }
            // Walk the run of occupied slots after j: a live key there whose chain started
            // at or before j (cyclically) needs j to stay non-empty.
            let mut needed = false;
            for d in 1..n {
                let p = (j + d) & self.mask;
                let k = self.slots[p].key.load(Relaxed);
                if k == EMPTY {
                    break;
                }
                if k & LIVE != 0 {
                    let home = spread(k as u32, self.shift, self.mask);
                    // j lies on the chain home..=p iff it is no further from home than p
                    if (j + n - home) & self.mask < (p + n - home) & self.mask {
                        needed = true;
                        break;
                    }
                }
            }
            if !needed {
                s.key.store(EMPTY, Release);
            }
        }
    }

    /// Number of tracked addresses (retiring ones included).
    pub fn len(&self) -> usize {
        self.count.load(Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Slots a lookup of `ip` walks (1 = found or ruled out at its home slot); for tests and
    /// diagnostics.
    pub fn probe_len(&self, ip: Ipv4Addr) -> usize {
        let want = LIVE | u64::from(u32::from(ip));
        let mut i = spread(u32::from(ip), self.shift, self.mask);
        for n in 1..=self.slots.len() {
            match self.slots.get(i).map(|s| s.key.load(Acquire)) {
                Some(EMPTY) | None => return n,
                Some(k) if k == want => return n,
                _ => i = (i + 1) & self.mask,
            }
        }
        self.slots.len()
    }

    /// Maximum number of addresses needed at once (the configured size).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The MAC of `slot` if resolved or static.
    #[inline]
    pub fn mac(&self, slot: usize) -> Option<[u8; 6]> {
        self.mac_word(slot).map(|w| MacAddr::from_word(w).0)
    }

    /// [`mac`](Self::mac) as the low 48 bits of a word (the MAC's bytes read as a
    /// little-endian word; the bits above are zero).
    #[inline(always)]
    pub fn mac_word(&self, slot: usize) -> Option<u64> {
        let v = self.slots.get(slot)?.mac_flags.load(Acquire);
        if v & (RESOLVED | STATIC) != 0 {
            Some(v & MAC_MASK)
        } else {
            None
        }
    }

    fn valid_mac(&self, mac: &[u8; 6]) -> bool {
        let w = MacAddr(*mac).word();
        !ethernet::is_group(mac) && w != 0 && w != self.own_mac
    }

    /// Resolve `slot` to `mac` as of `now_ms`, trusted (seeding an entry outside ARP: tests,
    /// benchmarks). Static entries and invalid MACs are left alone. Frames from the wire go
    /// through [`learn`](Self::learn).
    pub fn confirm(&self, slot: usize, mac: [u8; 6], now_ms: u64) {
        let Some(s) = self.slots.get(slot) else {
            return;
        };
        if !self.valid_mac(&mac) || s.mac_flags.load(Relaxed) & STATIC != 0 {
            return;
        }
        s.confirmed_ms.store(now_ms, Relaxed);
        s.tries.store(0, Relaxed);
        s.cand.store(0, Relaxed);
        s.mac_flags.store(MacAddr(mac).word() | RESOLVED, Release);
    }

    /// An ARP request or reply from the tracked address of `slot` (any worker) claims it is
    /// at `mac`; `answer_to_us`: the frame is a reply to the DIP and the port's MAC. Applies the
    /// rules of the module docs and says what it did.
    pub fn learn(&self, slot: usize, mac: [u8; 6], answer_to_us: bool, now_ms: u64) -> Learned {
        let Some(s) = self.slots.get(slot) else {
            return Learned::Ignored;
        };
        let w = MacAddr(mac).word();
        if !self.valid_mac(&mac) {
            return self.refuse(slot, s, w, Refusal::BadMac);
        }
        let v = s.mac_flags.load(Acquire);
        let same = v & MAC_MASK == w;
        if v & STATIC != 0 {
            return if same {
                Learned::Ignored
            } else {
                self.refuse(slot, s, w, Refusal::Static)
            };
        }
        let req = s.requested_ms.load(Relaxed);
        let solicited =
            answer_to_us && req != 0 && now_ms.saturating_sub(req - 1) <= ANSWER_WINDOW_MS;
        if v & RESOLVED == 0 {
            // Unresolved (never, or expired and asked again): only an answer to our request
            // resolves it.
            if !solicited {
                return Learned::Ignored;
            }
            s.confirmed_ms.store(now_ms, Relaxed);
            s.tries.store(0, Relaxed);
            s.cand.store(0, Relaxed);
            // A static configuration or another answer meanwhile wins.
            let _ = s
                .mac_flags
                .compare_exchange(v, w | RESOLVED, Release, Relaxed);
            return Learned::Confirmed;
        }
        if same {
            if !solicited {
                return Learned::Ignored;
            }
            s.confirmed_ms.store(now_ms, Relaxed);
            s.tries.store(0, Relaxed);
            // The old MAC answered while a change is being checked: it stays.
            let _ = s.cand.fetch_update(Relaxed, Relaxed, |c| {
                (c & CAND != 0).then_some(c | OLD_ANSWERED)
            });
            return Learned::Confirmed;
        }
        // Another MAC for a resolved entry: check it before any use.
        let r = s.cand.fetch_update(AcqRel, Acquire, |c| {
            if c & CAND == 0 {
                Some(w | CAND | if solicited { CAND_ANSWERED } else { 0 })
            } else if c & MAC_MASK == w {
                solicited.then_some(c | CAND_ANSWERED)
            } else {
                solicited.then_some(c | OTHER_ANSWERED)
            }
        });
        match r {
            Ok(prev) if prev & CAND == 0 => {
                // A verification starts: ask at once.
                s.verify_ms.store(now_ms.saturating_add(1), Relaxed);
                s.requested_ms.store(0, Relaxed);
                self.refuse(slot, s, w, Refusal::Changed)
            }
            Ok(prev) if prev & MAC_MASK == w => Learned::Verifying,
            _ => self.refuse(slot, s, w, Refusal::Changed),
        }
    }

    fn refuse(&self, slot: usize, s: &Slot, mac: u64, why: Refusal) -> Learned {
        s.refused
            .store((mac & MAC_MASK) | (why as u64) << 56, Relaxed);
        self.last_refused.store(slot + 1, Relaxed);
        self.refused.fetch_add(1, Relaxed);
        Learned::Refused(why)
    }

    /// End the verification of a MAC change on `s` (slot `i`) once [`VERIFY_MS`] have passed
    /// (the ARP worker, from [`due_requests`](Self::due_requests)). Returns whether one is
    /// still running.
    fn conclude(&self, i: usize, s: &Slot, now_ms: u64) -> bool {
        if s.cand.load(Acquire) & CAND == 0 {
            return false;
        }
        let start = s.verify_ms.load(Relaxed);
        if start == 0 {
            // started by a worker that has not stored the time yet
            s.verify_ms.store(now_ms.saturating_add(1), Relaxed);
            return true;
        }
        if now_ms.saturating_sub(start - 1) < VERIFY_MS {
            return true;
        }
        let c = s.cand.swap(0, AcqRel);
        s.verify_ms.store(0, Relaxed);
        if c & (OLD_ANSWERED | OTHER_ANSWERED) != 0 {
            // the old MAC (or a third one) answered too: keep what we have
            self.last_conflict_mac.store(c & MAC_MASK, Relaxed);
            self.conflicts.fetch_add(1, Relaxed);
            self.last_conflict.store(i + 1, Relaxed);
        } else if c & CAND_ANSWERED != 0 {
            let v = s.mac_flags.load(Acquire);
            if v & STATIC == 0 {
                s.confirmed_ms.store(now_ms, Relaxed);
                s.tries.store(0, Relaxed);
                let new = (c & MAC_MASK) | RESOLVED;
                if s.mac_flags
                    .compare_exchange(v, new, Release, Relaxed)
                    .is_ok()
                {
                    self.changes.fetch_add(1, Relaxed);
                    self.last_change.store(i + 1, Relaxed);
                }
            }
        }
        false
    }

    /// Totals of refusals, conflicts and followed MAC changes.
    pub fn events(&self) -> NeighEvents {
        NeighEvents {
            refused: self.refused.load(Relaxed),
            conflicts: self.conflicts.load(Relaxed),
            changes: self.changes.load(Relaxed),
        }
    }

    fn claim_at(&self, slot_plus_one: usize) -> Option<Claim> {
        let s = self.slots.get(slot_plus_one.checked_sub(1)?)?;
        let k = s.key.load(Acquire);
        if k & LIVE == 0 {
            return None;
        }
        let r = s.refused.load(Relaxed);
        let v = s.mac_flags.load(Acquire);
        Some(Claim {
            addr: Ipv4Addr::from(k as u32),
            claimed: MacAddr::from_word(r & MAC_MASK),
            current: (v & (RESOLVED | STATIC) != 0).then(|| MacAddr::from_word(v & MAC_MASK)),
            reason: Refusal::from_bits(r >> 56),
        })
    }

    /// The last refused update (its address may have been reused since: for the log only).
    pub fn last_refused(&self) -> Option<Claim> {
        self.claim_at(self.last_refused.load(Relaxed))
    }

    /// The last verification that kept the old MAC (the MAC it checked as `claimed`).
    pub fn last_conflict(&self) -> Option<Claim> {
        let c = self.claim_at(self.last_conflict.load(Relaxed))?;
        Some(Claim {
            claimed: MacAddr::from_word(self.last_conflict_mac.load(Relaxed)),
            reason: Refusal::Changed,
            ..c
        })
    }

    /// The last entry that followed a new MAC (its address and that MAC).
    pub fn last_change(&self) -> Option<(Ipv4Addr, MacAddr)> {
        let c = self.claim_at(self.last_change.load(Relaxed))?;
        Some((c.addr, c.current?))
    }

    /// The state of `ip` as the control plane reports it.
    pub fn state(&self, ip: Ipv4Addr, now_ms: u64) -> NeighState {
        let Some(slot) = self.find(ip) else {
            return NeighState::Incomplete;
        };
        let s = &self.slots[slot];
        let v = s.mac_flags.load(Acquire);
        let mac = MacAddr::from_word(v);
        if v & STATIC != 0 {
            NeighState::Static { mac }
        } else if v & RESOLVED != 0 {
            let age_ms = now_ms.saturating_sub(s.confirmed_ms.load(Relaxed));
            if age_ms < self.reachable_ms {
                NeighState::Reachable { mac, age_ms }
            } else {
                NeighState::Stale { mac, age_ms }
            }
        } else {
            NeighState::Incomplete
        }
    }

    /// List (into `out`) the used addresses that need an ARP request now, and mark them
    /// requested. Called by the ARP worker only. Unresolved addresses are asked every
    /// `retry_ms`; resolved ones older than `reachable_ms` are re-asked every `retry_ms` while
    /// still used, and become unresolved after [`STALE_TRIES`] requests without an answer.
    /// An address whose MAC change is being checked is asked at once and every `retry_ms`,
    /// and the check ends here after [`VERIFY_MS`]. Returns how many entries of `out` were
    /// filled.
    pub fn due_requests(
        &self,
        now_ms: u64,
        reachable_ms: u64,
        retry_ms: u64,
        out: &mut [u32],
    ) -> usize {
        let mut n = 0;
        for (i, s) in self.slots.iter().enumerate() {
            if n >= out.len() {
                break;
            }
            let key = s.key.load(Acquire);
            if key & LIVE == 0 || !s.used.load(Relaxed) {
                continue;
            }
            if s.mac_flags.load(Acquire) & STATIC != 0 {
                continue;
            }
            let verifying = self.conclude(i, s, now_ms);
            let v = s.mac_flags.load(Acquire);
            let req = s.requested_ms.load(Relaxed);
            let retry_due = req == 0 || now_ms.saturating_sub(req - 1) >= retry_ms;
            if v & RESOLVED != 0 {
                let age = now_ms.saturating_sub(s.confirmed_ms.load(Relaxed));
                let stale = age >= reachable_ms;
                if !(stale || verifying) || !retry_due {
                    continue;
                }
                if stale && s.tries.load(Relaxed) >= STALE_TRIES {
                    // No answer to the last requests: unresolved, unless a worker confirmed
                    // it meanwhile.
                    let _ = s
                        .mac_flags
                        .compare_exchange(v, v & !RESOLVED, Release, Relaxed);
                }
            } else if !retry_due {
                continue;
            }
            s.tries
                .store(s.tries.load(Relaxed).saturating_add(1), Relaxed);
            s.requested_ms.store(now_ms.saturating_add(1), Relaxed);
            out[n] = key as u32;
            n += 1;
        }
        n
    }
}

/// Rate-limited reporting of the table's events for a log, polled by a thread outside the
/// workers: at most one line per interval, with the counts since the last line and the last
/// refusal, conflict and change.
#[derive(Debug, Default)]
pub struct EventLog {
    seen: NeighEvents,
    last_ms: Option<u64>,
}

/// One log line of [`EventLog`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventLine {
    /// Counts since the previous line.
    pub new: NeighEvents,
    pub refused: Option<Claim>,
    pub conflict: Option<Claim>,
    pub change: Option<(Ipv4Addr, MacAddr)>,
}

impl EventLog {
    /// A line if something happened since the last one and at least `every_ms` have passed
    /// since it (`now_ms`: any monotonic clock).
    pub fn poll(&mut self, t: &NeighTable, now_ms: u64, every_ms: u64) -> Option<EventLine> {
        if self
            .last_ms
            .is_some_and(|l| now_ms.saturating_sub(l) < every_ms)
        {
            return None;
        }
        let e = t.events();
        let new = NeighEvents {
            refused: e.refused.wrapping_sub(self.seen.refused),
            conflicts: e.conflicts.wrapping_sub(self.seen.conflicts),
            changes: e.changes.wrapping_sub(self.seen.changes),
        };
        if new == NeighEvents::default() {
            return None;
        }
        self.seen = e;
        self.last_ms = Some(now_ms);
        Some(EventLine {
            new,
            refused: (new.refused > 0).then(|| t.last_refused()).flatten(),
            conflict: (new.conflicts > 0).then(|| t.last_conflict()).flatten(),
            change: (new.changes > 0).then(|| t.last_change()).flatten(),
        })
    }
}

impl fmt::Display for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} claimed by {} ({}; ",
            self.addr,
            self.claimed,
            self.reason.name()
        )?;
        match self.current {
            Some(m) => write!(f, "in use {m})"),
            None => write!(f, "unresolved)"),
        }
    }
}

impl fmt::Display for EventLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        if self.new.refused > 0 {
            write!(f, "{} ARP update(s) refused", self.new.refused)?;
            if let Some(c) = &self.refused {
                write!(f, ", last: {c}")?;
            }
            sep = "; ";
        }
        if self.new.conflicts > 0 {
            write!(
                f,
                "{sep}{} ARP conflict(s), old MAC kept",
                self.new.conflicts
            )?;
            if let Some(c) = &self.conflict {
                write!(f, ", last: {c}")?;
            }
            sep = "; ";
        }
        if self.new.changes > 0 {
            write!(
                f,
                "{sep}{} neighbour MAC change(s) followed after verification",
                self.new.changes
            )?;
            if let Some((a, m)) = &self.change {
                write!(f, ", last: {a} is-at {m}")?;
            }
        }
        Ok(())
    }
}

/// Write a broadcast ARP request "who has `target_ip`? tell `dip`" into `buf`. Returns the frame
/// length (60), or 0 if `buf` is shorter than that.
pub fn build_arp_request(
    buf: &mut [u8],
    port_mac: [u8; 6],
    dip: Ipv4Addr,
    target_ip: Ipv4Addr,
) -> usize {
    build_frame(buf, port_mac, Operation::Request, dip, [0; 6], target_ip)
}

/// Write a gratuitous ARP for `vip` (broadcast request with sender = target = `vip`) into `buf`.
/// Returns the frame length (60), or 0 if `buf` is too short.
pub fn build_gratuitous_arp(buf: &mut [u8], port_mac: [u8; 6], vip: Ipv4Addr) -> usize {
    build_frame(buf, port_mac, Operation::Request, vip, [0; 6], vip)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RS1: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 11);
    const RS2: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 12);
    const MAC1: [u8; 6] = [2, 0, 0, 0, 0, 0x11];
    const MAC2: [u8; 6] = [2, 0, 0, 0, 0, 0x21];
    const MAC3: [u8; 6] = [2, 0, 0, 0, 0, 0x31];
    const OWN: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const NONE: Vec<Ipv4Addr> = Vec::new();

    fn table(cap: usize) -> NeighTable {
        NeighTable::new(cap).with_own_mac(OWN)
    }

    fn statik(addr: Ipv4Addr, mac: [u8; 6]) -> StaticNeighbour {
        StaticNeighbour { addr, mac }
    }

    /// Ask for every due address at `now` (as the ARP worker does); what was asked.
    fn ask(t: &NeighTable, now: u64) -> Vec<Ipv4Addr> {
        let mut out = [0u32; 16];
        let n = t.due_requests(now, DEFAULT_REACHABLE_MS, DEFAULT_RETRY_MS, &mut out);
        out[..n].iter().map(|&a| Ipv4Addr::from(a)).collect()
    }

    #[test]
    fn insert_find_confirm() {
        let t = table(4);
        assert_eq!(t.find(RS1), None);
        let s = t.insert(RS1).unwrap();
        assert_eq!(t.insert(RS1).unwrap(), s);
        assert_eq!(t.find(RS1), Some(s));
        assert_eq!(t.mac(s), None);
        assert_eq!(t.state(RS1, 0), NeighState::Incomplete);
        t.confirm(s, MAC1, 1000);
        assert_eq!(t.mac(s), Some(MAC1));
        assert_eq!(
            t.state(RS1, 1500),
            NeighState::Reachable {
                mac: MacAddr(MAC1),
                age_ms: 500
            }
        );
        assert_eq!(
            t.state(RS1, 40_000),
            NeighState::Stale {
                mac: MacAddr(MAC1),
                age_ms: 39_000
            }
        );
        // broadcast, zero and our own MAC are never taken, even trusted
        for bad in [[0xff; 6], [0; 6], OWN] {
            t.confirm(s, bad, 2000);
            assert_eq!(t.mac(s), Some(MAC1));
        }
        assert_eq!(t.mac(999), None);
        assert_eq!(t.state(RS2, 0), NeighState::Incomplete);
        // any address can be tracked, 0.0.0.0 and 255.255.255.255 too (no reserved keys)
        for a in [Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST] {
            let s = t.insert(a).unwrap();
            assert_eq!(t.find(a), Some(s));
        }
    }

    #[test]
    fn insert_stops_at_the_configured_capacity() {
        let t = table(3);
        assert_eq!(t.capacity(), 3);
        for i in 0..3 {
            t.insert(Ipv4Addr::from(0xc612_0000 + i + 1)).unwrap();
        }
        assert_eq!(t.insert(Ipv4Addr::new(10, 0, 0, 1)), Err(NeighTableFull));
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn many_addresses_probe_short() {
        // 10k addresses of one /16-ish range (consecutive, as real server pools are) and a
        // strided set: both must spread over the table, not pile up on a few home slots.
        let t = table(10_000);
        let consecutive = (0..5_000u32).map(|i| 0xc612_0000 + i);
        let strided = (0..5_000u32).map(|i| 0x0a00_0000 + i * 256);
        let ips: Vec<Ipv4Addr> = consecutive.chain(strided).map(Ipv4Addr::from).collect();
        for (n, ip) in ips.iter().enumerate() {
            t.insert(*ip).unwrap();
            assert_eq!(t.len(), n + 1);
        }
        let mut max = 0;
        for ip in &ips {
            let s = t.find(*ip).unwrap();
            assert_eq!(t.insert(*ip).unwrap(), s);
            max = max.max(t.probe_len(*ip));
        }
        assert!(max < 64, "max probe length {max}");
        // an absent address is ruled out quickly too
        assert!(t.probe_len(Ipv4Addr::new(203, 0, 113, 7)) < 64);
        assert_eq!(t.find(Ipv4Addr::new(203, 0, 113, 7)), None);
        assert_eq!(t.len(), 10_000);
    }

    #[test]
    fn static_entries_are_not_overwritten_nor_requested() {
        let t = table(4);
        t.update(&[RS1], &[statik(RS1, MAC1)], 1, 0).unwrap();
        let s = t.find(RS1).unwrap();
        t.confirm(s, [2, 0, 0, 0, 0, 0x99], 10);
        assert_eq!(t.mac(s), Some(MAC1));
        assert_eq!(
            t.state(RS1, 99_999),
            NeighState::Static { mac: MacAddr(MAC1) }
        );
        assert_eq!(ask(&t, 0), NONE);
        // the static configuration dropped, the server kept: back to ARP
        t.update(&[RS1], &[], 2, 0).unwrap();
        assert_eq!(t.mac(s), None);
        assert_eq!(ask(&t, 0), vec![RS1]);
        // a static neighbour that is no real server is tracked (and never asked)
        t.update(&[RS1], &[statik(RS2, MAC2)], 3, 0).unwrap();
        assert_eq!(t.mac(t.find(RS2).unwrap()), Some(MAC2));
        assert_eq!(ask(&t, 5_000), vec![RS1]);
    }

    #[test]
    fn request_schedule() {
        let t = table(4);
        t.update(&[RS1], &[], 1, 0).unwrap();
        let s1 = t.find(RS1).unwrap();
        // unresolved and used: asked at once, then every retry interval
        assert_eq!(ask(&t, 0), vec![RS1]);
        assert_eq!(ask(&t, 500), NONE);
        assert_eq!(ask(&t, 1000), vec![RS1]);
        // answered: quiet until it goes stale
        assert_eq!(t.learn(s1, MAC1, true, 1200), Learned::Confirmed);
        assert_eq!(ask(&t, 2500), NONE);
        assert_eq!(ask(&t, 31_200), vec![RS1]);
        assert_eq!(t.mac(s1), Some(MAC1), "stale entries stay usable");
        assert_eq!(ask(&t, 32_200), vec![RS1]);
        assert_eq!(ask(&t, 33_200), vec![RS1]);
        assert_eq!(t.mac(s1), Some(MAC1));
        // fourth round: three stale tries went unanswered -> unresolved
        assert_eq!(ask(&t, 34_200), vec![RS1]);
        assert_eq!(t.mac(s1), None);
        assert_eq!(t.state(RS1, 34_200), NeighState::Incomplete);
        // the answer to that request brings it back
        assert_eq!(t.learn(s1, MAC1, true, 34_300), Learned::Confirmed);
        assert_eq!(t.mac(s1), Some(MAC1));
        // an address no snapshot needs is not asked; the out buffer bounds the work
        t.update(&[RS1, RS2], &[], 2, 0).unwrap();
        t.update(&[RS2], &[], 3, 0).unwrap();
        assert_eq!(ask(&t, 100_000), vec![RS2]);
        t.update(&[RS1, RS2], &[], 4, 0).unwrap();
        let mut one = [0u32; 1];
        assert_eq!(t.due_requests(200_000, 30_000, 1000, &mut one), 1);
        assert_eq!(t.due_requests(200_000, 30_000, 1000, &mut one), 1);
        assert_eq!(t.due_requests(200_000, 30_000, 1000, &mut one), 0);
    }

    /// An entry of RS1 in `state` ("unresolved", "resolved" to MAC1, "static" MAC1), last
    /// asked at `asked_at` ms (`None`: never).
    fn entry(state: &str, asked_at: Option<u64>) -> (NeighTable, usize) {
        let t = table(4);
        let statics = if state == "static" {
            vec![statik(RS1, MAC1)]
        } else {
            vec![]
        };
        t.update(&[RS1], &statics, 1, 0).unwrap();
        let s = t.find(RS1).unwrap();
        if state == "resolved" {
            t.confirm(s, MAC1, 0);
        }
        if let Some(at) = asked_at {
            ask(&t, at);
            assert_eq!(t.slots[s].requested_ms.load(Relaxed), at + 1, "asked");
        }
        (t, s)
    }

    /// (entry, asked at, MAC, reply to us, at ms, outcome, MAC after)
    type Case = (
        &'static str,
        Option<u64>,
        [u8; 6],
        bool,
        u64,
        Learned,
        Option<[u8; 6]>,
    );

    #[test]
    fn learn_accepts_only_what_the_rules_allow() {
        use Learned::*;
        let bad = Refused(Refusal::BadMac);
        let changed = Refused(Refusal::Changed);
        #[rustfmt::skip]
        let cases: &[Case] = &[
            // unresolved: only an answer to our request, in time, resolves
            ("unresolved", Some(0), MAC1, true, 50, Confirmed, Some(MAC1)),
            ("unresolved", None, MAC1, true, 50, Ignored, None),
            ("unresolved", Some(0), MAC1, true, 2_500, Ignored, None),
            ("unresolved", Some(0), MAC1, false, 50, Ignored, None),
            ("unresolved", Some(0), OWN, true, 50, bad, None),
            ("unresolved", Some(0), [0; 6], true, 50, bad, None),
            ("unresolved", Some(0), [0xff; 6], true, 50, bad, None),
            ("unresolved", Some(0), [0x01, 0, 0x5e, 0, 0, 1], true, 50, bad, None),
            // resolved: the same MAC refreshes only when asked, another is refused
            ("resolved", None, MAC1, false, 50, Ignored, Some(MAC1)),
            ("resolved", None, MAC1, true, 50, Ignored, Some(MAC1)),
            ("resolved", Some(40_000), MAC1, true, 40_010, Confirmed, Some(MAC1)),
            ("resolved", None, MAC2, false, 50, changed, Some(MAC1)),
            ("resolved", None, MAC2, true, 50, changed, Some(MAC1)),
            ("resolved", Some(40_000), MAC2, true, 40_010, changed, Some(MAC1)),
            ("resolved", Some(40_000), OWN, true, 40_010, bad, Some(MAC1)),
            ("resolved", None, [0x33, 0x33, 0, 0, 0, 1], false, 50, bad, Some(MAC1)),
            // static: never changes
            ("static", None, MAC1, false, 50, Ignored, Some(MAC1)),
            ("static", None, MAC2, false, 50, Refused(Refusal::Static), Some(MAC1)),
            ("static", None, MAC2, true, 50, Refused(Refusal::Static), Some(MAC1)),
            ("static", None, [0; 6], true, 50, bad, Some(MAC1)),
        ];
        for (i, &(state, asked, mac, to_us, at, want, after)) in cases.iter().enumerate() {
            let (t, s) = entry(state, asked);
            let what = format!("case {i}: {state}, asked {asked:?}, {mac:x?}, to us {to_us}");
            assert_eq!(t.learn(s, mac, to_us, at), want, "{what}");
            assert_eq!(t.mac(s), after, "{what}");
            let refused = u64::from(matches!(want, Refused(_)));
            assert_eq!(t.events().refused, refused, "{what}");
            if refused == 1 {
                let c = t.last_refused().unwrap();
                assert_eq!((c.addr, c.claimed.0), (RS1, mac), "{what}");
                assert_eq!(c.current.map(|m| m.0), after, "{what}");
            }
        }
        // the refreshed entry's age restarts
        let (t, s) = entry("resolved", Some(40_000));
        t.learn(s, MAC1, true, 40_010);
        assert!(matches!(
            t.state(RS1, 40_020),
            NeighState::Reachable { age_ms: 10, .. }
        ));
    }

    /// RS1 resolved to MAC1 at 0; MAC2 claims it at 10_000 (unasked).
    fn claimed() -> (NeighTable, usize) {
        let (t, s) = entry("resolved", None);
        assert_eq!(
            t.learn(s, MAC2, false, 10_000),
            Learned::Refused(Refusal::Changed)
        );
        (t, s)
    }

    #[test]
    fn a_claimed_change_is_followed_when_only_the_new_mac_answers() {
        let (t, s) = claimed();
        // asked at once although reachable, then every retry interval
        assert_eq!(ask(&t, 10_050), vec![RS1]);
        assert_eq!(t.learn(s, MAC2, true, 10_060), Learned::Verifying);
        assert_eq!(ask(&t, 10_500), NONE);
        assert_eq!(t.mac(s), Some(MAC1), "checked before use");
        assert_eq!(ask(&t, 11_060), vec![RS1]);
        assert_eq!(t.learn(s, MAC2, true, 11_070), Learned::Verifying);
        // unasked repeats of the claim are still refused
        assert_eq!(
            t.learn(s, MAC2, false, 11_080),
            Learned::Refused(Refusal::Changed)
        );
        assert_eq!(ask(&t, 11_900), NONE);
        assert_eq!(t.mac(s), Some(MAC1));
        ask(&t, 12_000);
        assert_eq!(t.mac(s), Some(MAC2), "followed after {VERIFY_MS} ms");
        assert_eq!(
            t.events(),
            NeighEvents {
                refused: 2,
                conflicts: 0,
                changes: 1
            }
        );
        assert_eq!(t.last_change(), Some((RS1, MacAddr(MAC2))));
        // and quiet again
        assert_eq!(ask(&t, 13_000), NONE);
    }

    #[test]
    fn a_claimed_change_is_not_followed_when_the_old_mac_answers_or_nobody() {
        // (who answers our requests during the check, conflict counted)
        let cases: &[(&[[u8; 6]], u64)] = &[
            (&[MAC1], 1),
            (&[MAC2, MAC1], 1),
            (&[MAC1, MAC2], 1),
            (&[MAC2, MAC3], 1),
            (&[], 0),
        ];
        for &(answers, conflicts) in cases {
            let (t, s) = claimed();
            let mut now = 10_000;
            while now < 13_000 {
                now += 100;
                if ask(&t, now).contains(&RS1) {
                    for &m in answers {
                        t.learn(s, m, true, now + 5);
                    }
                }
                assert_eq!(t.mac(s), Some(MAC1), "{answers:x?} at {now}");
            }
            let e = t.events();
            assert_eq!((e.conflicts, e.changes), (conflicts, 0), "{answers:x?}");
            if conflicts > 0 {
                let c = t.last_conflict().unwrap();
                assert_eq!(
                    (c.addr, c.claimed, c.current),
                    (RS1, MacAddr(MAC2), Some(MacAddr(MAC1)))
                );
            }
            // the check is over: no more requests until the entry goes stale
            assert_eq!(ask(&t, 14_000), NONE, "{answers:x?}");
        }
    }

    #[test]
    fn a_claim_during_a_check_does_not_restart_it() {
        let (t, s) = claimed();
        ask(&t, 10_050);
        for at in [10_100, 10_900, 11_500] {
            assert_eq!(
                t.learn(s, MAC3, false, at),
                Learned::Refused(Refusal::Changed)
            );
        }
        t.learn(s, MAC2, true, 10_060);
        ask(&t, 11_050);
        t.learn(s, MAC2, true, 11_060);
        ask(&t, 12_000);
        assert_eq!(
            t.mac(s),
            Some(MAC2),
            "MAC3's unasked claims changed nothing"
        );
        assert_eq!(t.events().refused, 4);
    }

    #[test]
    fn update_retires_then_reclaims_once_every_worker_moved_on() {
        let t = table(2);
        t.update(&[RS1, RS2], &[], 1, 1).unwrap();
        let s2 = t.find(RS2).unwrap();
        t.confirm(s2, MAC2, 0);
        // RS2 gone from epoch 2; the workers still forward by epoch 1
        t.update(&[RS1], &[], 2, 1).unwrap();
        assert_eq!((t.find(RS2), t.len()), (Some(s2), 2), "retired, kept");
        assert_eq!(t.mac(s2), Some(MAC2));
        assert_eq!(ask(&t, 0), vec![RS1], "not asked any more");
        // a third address fits (2 needed at most), in another slot
        let rs3 = Ipv4Addr::new(198, 18, 0, 13);
        t.update(&[RS1, rs3], &[], 3, 1).unwrap();
        assert_ne!(t.find(rs3), Some(s2));
        assert_eq!(t.mac(s2), Some(MAC2));
        // workers at epoch 2: nobody references RS2's slot; a tombstone, not yet free
        t.update(&[RS1, rs3], &[], 4, 2).unwrap();
        assert_eq!((t.find(RS2), t.len()), (None, 2));
        assert_eq!(t.mac(s2), None);
        assert_eq!(t.slots[s2].key.load(Relaxed), TOMB);
        // re-adding RS2 before it is gone keeps its entry
        let t2 = table(2);
        t2.update(&[RS1, RS2], &[], 1, 1).unwrap();
        let s = t2.find(RS2).unwrap();
        t2.confirm(s, MAC2, 0);
        t2.update(&[RS1], &[], 2, 1).unwrap();
        t2.update(&[RS1, RS2], &[], 3, 2).unwrap();
        assert_eq!(t2.find(RS2), Some(s));
        assert_eq!(t2.mac(s), Some(MAC2));
        t2.update(&[RS1, RS2], &[], 4, 4).unwrap();
        assert_eq!(t2.len(), 2);
    }

    #[test]
    fn a_tombstone_is_reused_only_once_every_worker_has_seen_the_next_snapshot() {
        // One address at a time, two slots: each new address needs the slot of the one
        // before last.
        let (a, b, c) = (RS1, RS2, Ipv4Addr::new(198, 18, 0, 13));
        let t = table(1);
        assert_eq!(t.slots.len(), 2);
        t.update(&[a], &[], 1, 1).unwrap();
        let sa = t.find(a).unwrap();
        t.update(&[b], &[], 2, 1).unwrap();
        // a retires from epoch 2; workers at 1 may use it: no slot for c
        assert_eq!(t.update(&[c], &[], 3, 1), Err(NeighTableFull));
        assert_eq!(t.find(a), Some(sa));
        // workers at 2: a is a tombstone from epoch 3, which no worker has seen yet
        assert_eq!(t.update(&[c], &[], 3, 2), Err(NeighTableFull));
        assert_eq!(t.find(a), None);
        // workers at 3: free
        t.update(&[c], &[], 3, 3).unwrap();
        assert_eq!(t.find(c), Some(sa));
    }

    #[test]
    fn update_refuses_more_than_the_capacity_and_changes_nothing() {
        let t = table(2);
        t.update(&[RS1, RS2], &[], 1, 1).unwrap();
        let rs3 = Ipv4Addr::new(198, 18, 0, 13);
        assert_eq!(
            t.update(&[RS1, rs3], &[statik(RS2, MAC2)], 2, 1),
            Err(NeighTableFull)
        );
        assert_eq!(t.find(rs3), None);
        let mut asked = ask(&t, 0);
        asked.sort();
        assert_eq!(asked, vec![RS1, RS2], "both still used, RS2 not static");
        // an address both server and static counts once
        t.update(&[RS1, RS1, RS2], &[statik(RS1, MAC1)], 2, 1)
            .unwrap();
        assert_eq!(t.mac(t.find(RS1).unwrap()), Some(MAC1));
    }

    #[test]
    fn twenty_thousand_add_delete_cycles_never_fill_the_table() {
        // 4 addresses configured (8 slots), 2 servers kept, a third with a new address added
        // and deleted each cycle; the workers are one epoch behind at each publication.
        let t = table(4);
        let base = u32::from(Ipv4Addr::new(198, 19, 0, 0));
        let mut epoch = 1;
        t.update(&[RS1, RS2], &[], epoch, 0).unwrap();
        let mut max_probe = 0;
        for i in 0..20_000u32 {
            let a = Ipv4Addr::from(base + i);
            epoch += 1;
            t.update(&[RS1, RS2, a], &[], epoch, epoch - 1)
                .unwrap_or_else(|_| panic!("cycle {i}: add {a}"));
            epoch += 1;
            t.update(&[RS1, RS2], &[], epoch, epoch - 1)
                .unwrap_or_else(|_| panic!("cycle {i}: delete {a}"));
            assert!(t.len() <= 4, "cycle {i}: {} entries", t.len());
            max_probe = max_probe.max(t.probe_len(Ipv4Addr::new(203, 0, 113, 1)));
        }
        assert!(max_probe <= 3, "an absent address walks {max_probe} slots");
        assert!(t.find(RS1).is_some() && t.find(RS2).is_some());
    }

    #[test]
    fn free_tombstones_at_the_end_of_a_chain_become_empty() {
        let t = table(48); // 64 slots
        let addrs: Vec<Ipv4Addr> = (0..40u32)
            .map(|i| Ipv4Addr::from(0x0a00_0000 + i))
            .collect();
        t.update(&addrs, &[], 1, 1).unwrap();
        t.update(&[], &[], 2, 1).unwrap(); // all retire
        t.update(&[], &[], 3, 2).unwrap(); // all tombstones (free from epoch 3)
        let tombs = t
            .slots
            .iter()
            .filter(|s| s.key.load(Relaxed) == TOMB)
            .count();
        assert_eq!((tombs, t.len()), (40, 0));
        t.update(&[], &[], 4, 3).unwrap();
        assert!(t.slots.iter().all(|s| s.key.load(Relaxed) == EMPTY));
        for a in &addrs {
            assert_eq!(t.probe_len(*a), 1);
        }
    }

    #[test]
    fn a_slot_is_never_read_as_another_addresss_while_a_worker_may_use_it() {
        // A control thread adds and deletes addresses (each resolved to a MAC made of its own
        // address), passing the epoch the worker last reported; the worker looks addresses up
        // and reads the MAC of the slot found, reporting its epoch only between lookups (as a
        // worker does between bursts). A slot reused too early would show another address's MAC.
        use std::sync::atomic::AtomicBool;
        use std::sync::Arc;
        let t = Arc::new(table(4));
        let published = Arc::new(AtomicU64::new(0));
        let seen = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let mac_of = |a: u32| {
            let b = a.to_be_bytes();
            [0x02, 0, b[0], b[1], b[2], b[3]]
        };
        let base = u32::from(Ipv4Addr::new(198, 19, 0, 0));
        let worker = {
            let (t, published, seen, done) =
                (t.clone(), published.clone(), seen.clone(), done.clone());
            std::thread::spawn(move || {
                let mut checked = 0u64;
                while !done.load(Acquire) {
                    seen.store(published.load(Acquire), Release);
                    for i in 0..64 {
                        let a = base + i;
                        if let Some(s) = t.find(Ipv4Addr::from(a)) {
                            // widen the window between the lookup and the use
                            for _ in 0..64 {
                                std::hint::spin_loop();
                            }
                            if let Some(m) = t.mac(s) {
                                assert_eq!(m, mac_of(a), "slot {s} of {}", Ipv4Addr::from(a));
                                checked += 1;
                            }
                        }
                    }
                }
                checked
            })
        };
        let mut epoch = 0;
        for i in 0..20_000u32 {
            let a = base + i % 64;
            epoch += 1;
            let min = seen.load(Acquire);
            if t.update(&[RS1, Ipv4Addr::from(a)], &[], epoch, min).is_ok() {
                t.confirm(t.find(Ipv4Addr::from(a)).unwrap(), mac_of(a), 0);
            }
            published.store(epoch, Release);
            epoch += 1;
            let min = seen.load(Acquire);
            t.update(&[RS1], &[], epoch, min).unwrap();
            published.store(epoch, Release);
        }
        done.store(true, Release);
        assert!(
            worker.join().unwrap() > 0,
            "the worker saw resolved entries"
        );
    }

    #[test]
    fn the_event_log_is_rate_limited_and_names_address_and_macs() {
        let (t, s) = claimed();
        let mut log = EventLog::default();
        let line = log.poll(&t, 0, 10_000).unwrap();
        assert_eq!(
            line.to_string(),
            "1 ARP update(s) refused, last: 198.18.0.11 claimed by 02:00:00:00:00:21 \
             (MAC change; in use 02:00:00:00:00:11)"
        );
        t.learn(s, OWN, false, 10_010);
        assert_eq!(log.poll(&t, 5_000, 10_000), None, "within the interval");
        let line = log.poll(&t, 10_000, 10_000).unwrap();
        assert_eq!(line.new.refused, 1, "counts since the last line");
        assert_eq!(line.refused.unwrap().reason, Refusal::BadMac);
        assert_eq!(log.poll(&t, 30_000, 10_000), None, "nothing new");
        // a followed change and a conflict
        ask(&t, 10_050);
        t.learn(s, MAC2, true, 10_060);
        ask(&t, 12_100);
        let line = log.poll(&t, 40_000, 10_000).unwrap();
        assert!(
            line.to_string()
                .ends_with("1 neighbour MAC change(s) followed after verification, last: 198.18.0.11 is-at 02:00:00:00:00:21"),
            "{line}"
        );
        t.learn(s, MAC3, false, 13_000);
        ask(&t, 13_050);
        t.learn(s, MAC2, true, 13_060);
        ask(&t, 15_100);
        let line = log.poll(&t, 50_000, 10_000).unwrap();
        assert_eq!((line.new.refused, line.new.conflicts), (1, 1));
        assert!(
            line.to_string().contains(
                "1 ARP conflict(s), old MAC kept, last: 198.18.0.11 claimed by 02:00:00:00:00:31 \
                 (MAC change; in use 02:00:00:00:00:21)"
            ),
            "{line}"
        );
    }

    #[test]
    fn arp_builders() {
        let mut buf = [0u8; 64];
        let n = build_arp_request(&mut buf, MAC1, Ipv4Addr::new(198, 18, 0, 1), RS2);
        assert_eq!(n, 60);
        let arp = crate::wire::arp::Packet::new_checked(&buf[14..n]).unwrap();
        assert_eq!(arp.operation(), Operation::Request);
        assert_eq!(arp.source_hardware_addr(), MAC1);
        assert_eq!(arp.source_protocol_addr(), Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(arp.target_protocol_addr(), RS2);
        let vip = Ipv4Addr::new(198, 18, 0, 100);
        let n = build_gratuitous_arp(&mut buf, MAC1, vip);
        assert_eq!(n, 60);
        assert_eq!(&buf[..6], &[0xff; 6]);
        let arp = crate::wire::arp::Packet::new_checked(&buf[14..n]).unwrap();
        assert_eq!(arp.source_protocol_addr(), vip);
        assert_eq!(arp.target_protocol_addr(), vip);
        assert_eq!(build_gratuitous_arp(&mut buf[..10], MAC1, vip), 0);
    }
}
