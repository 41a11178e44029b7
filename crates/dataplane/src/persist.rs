//! Persistence templates shared by every worker (ipvsadm `-p timeout -M netmask`).
//!
//! RSS spreads one client's connections (different source ports) over different workers, so
//! the "client network -> real server" memory of a persistent service cannot live in the
//! per-worker flow tables. It lives here: a fixed-capacity open-addressing table allocated at
//! start, written by workers with atomics only (no lock, no allocation), read by the control
//! thread for listings.
//!
//! Each entry is three `AtomicU64` words: the key `(service id, client network)`, the value
//! `(real server slot, real server id)` and the expiry second. A key may live in any of
//! [`WINDOW`] entries from its hash. A writer claims an entry by a compare-and-swap of its key
//! word to the key with the [`BUSY`] bit set (from empty, from an expired key, or from the same
//! key), writes value and expiry, then stores the plain key (Release). Readers skip busy entries
//! and re-check the key after reading the value, so they never pair a value with another key.
//! Two workers inserting the same key at the same moment aim at the same first free entry; the
//! loser sees the winner's busy key and uses its own choice for that one connection only.

use std::sync::atomic::{
    AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};

/// Entries a template may occupy, starting at its hash.
pub const WINDOW: usize = 8;
/// Key bit marking an entry being written.
pub const BUSY: u64 = 1 << 63;

/// A live template as found by [`PersistTable::lookup`] or listed by [`PersistTable::for_each`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Template {
    pub svc_id: u32,
    /// Client address & netmask (host order).
    pub client_net: u32,
    pub rs_slot: u32,
    pub rs_id: u32,
    /// Second (dataplane clock) after which the template is gone.
    pub expires: u32,
}

/// Outcome of [`PersistTable::insert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insert {
    Done,
    /// A live template for the key exists (another worker was faster): use it.
    Exists(Template),
    /// Another worker is writing the same key right now: use your own choice this once.
    Busy,
    /// No free or expired entry in the key's window.
    Full,
}

#[derive(Debug, Default)]
struct Cell {
    key: AtomicU64,
    val: AtomicU64,
    exp: AtomicU64,
}

/// The shared template table. See the module docs.
#[derive(Debug)]
pub struct PersistTable {
    cells: Box<[Cell]>,
    mask: usize,
}

fn pack_key(svc_id: u32, net: u32) -> u64 {
    // Service ids start at 1, so a key is never 0 (= empty); bit 63 is reserved for BUSY.
    ((u64::from(svc_id) & 0x7fff_ffff) << 32) | u64::from(net)
}

fn hash(key: u64) -> usize {
    let mut h = key.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^= h >> 31;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    (h ^ (h >> 29)) as usize
}

/// `now` is past `expires` (wrapping second counters).
fn is_expired(expires: u32, now: u32) -> bool {
    (now.wrapping_sub(expires) as i32) > 0
}

impl PersistTable {
    /// A table of at least `capacity` entries (rounded up to a power of two, at least
    /// [`WINDOW`]).
    pub fn new(capacity: usize) -> Self {
        let n = capacity.max(WINDOW).next_power_of_two();
        PersistTable {
            cells: (0..n).map(|_| Cell::default()).collect(),
            mask: n - 1,
        }
    }

    pub fn capacity(&self) -> usize {
        self.mask + 1
    }

    fn cell(&self, i: usize) -> Option<&Cell> {
        self.cells.get(i & self.mask)
    }

    /// The live template of `(svc_id, client_net)` at second `now`.
    #[inline]
    pub fn lookup(&self, svc_id: u32, client_net: u32, now: u32) -> Option<Template> {
        let key = pack_key(svc_id, client_net);
        let base = hash(key);
        for i in 0..WINDOW {
            let Some(c) = self.cell(base.wrapping_add(i)) else {
                continue;
            };
            if c.key.load(Acquire) != key {
                continue;
            }
            let val = c.val.load(Relaxed);
            let exp = c.exp.load(Relaxed) as u32;
            if c.key.load(Acquire) != key || is_expired(exp, now) {
                return None;
            }
            return Some(Template {
                svc_id,
                client_net,
                rs_slot: val as u32,
                rs_id: (val >> 32) as u32,
                expires: exp,
            });
        }
        None
    }

    /// Push the expiry of `(svc_id, client_net)` to `expires` if that is later (a template in
    /// use stays alive). Cheap when nothing changes: one load per entry of the window.
    #[inline]
    pub fn refresh(&self, svc_id: u32, client_net: u32, expires: u32) {
        let key = pack_key(svc_id, client_net);
        let base = hash(key);
        for i in 0..WINDOW {
            let Some(c) = self.cell(base.wrapping_add(i)) else {
                continue;
            };
            if c.key.load(Acquire) == key {
                let old = c.exp.load(Relaxed);
                if is_expired(old as u32, expires) {
                    // Only moves forward; a concurrent rewrite of the entry wins the CAS race or
                    // the key check of the next lookup.
                    let _ = c
                        .exp
                        .compare_exchange(old, u64::from(expires), Relaxed, Relaxed);
                }
                return;
            }
        }
    }

    /// Record `(svc_id, client_net) -> (rs_slot, rs_id)` until second `expires`, in the key's
    /// own entry if it has one (expired, or live and `replace_live`: its server is gone) or in a
    /// free or expired entry of the window. A live template of the key is returned as
    /// [`Insert::Exists`] unless `replace_live`.
    #[allow(clippy::too_many_arguments)]
    pub fn insert(
        &self,
        svc_id: u32,
        client_net: u32,
        rs_slot: u32,
        rs_id: u32,
        now: u32,
        expires: u32,
        replace_live: bool,
    ) -> Insert {
        let key = pack_key(svc_id, client_net);
        let base = hash(key);
        // Two passes at most: a lost race re-reads the window once.
        for _ in 0..2 {
            let mut target = None;
            for i in 0..WINDOW {
                let Some(c) = self.cell(base.wrapping_add(i)) else {
                    continue;
                };
                let k = c.key.load(Acquire);
                if k == key | BUSY {
                    return Insert::Busy;
                }
                if k == key {
                    let val = c.val.load(Relaxed);
                    let exp = c.exp.load(Relaxed) as u32;
                    if !replace_live && !is_expired(exp, now) && c.key.load(Acquire) == key {
                        return Insert::Exists(Template {
                            svc_id,
                            client_net,
                            rs_slot: val as u32,
                            rs_id: (val >> 32) as u32,
                            expires: exp,
                        });
                    }
                    target = Some((c, k));
                    break;
                }
                let free = k == 0 || (k & BUSY == 0 && is_expired(c.exp.load(Relaxed) as u32, now));
                if free && target.is_none() {
                    target = Some((c, k));
                }
            }
            let Some((c, old)) = target else {
                return Insert::Full;
            };
            if c.key
                .compare_exchange(old, key | BUSY, Acquire, Relaxed)
                .is_err()
            {
                continue;
            }
            c.val
                .store(u64::from(rs_slot) | (u64::from(rs_id) << 32), Relaxed);
            c.exp.store(u64::from(expires), Relaxed);
            c.key.store(key, Release);
            return Insert::Done;
        }
        Insert::Busy
    }

    /// Call `f` with every live template at second `now` until it returns `false` (control
    /// thread; concurrent writes are skipped or seen whole).
    pub fn for_each(&self, now: u32, mut f: impl FnMut(&Template) -> bool) {
        for c in self.cells.iter() {
            let k = c.key.load(Acquire);
            if k == 0 || k & BUSY != 0 {
                continue;
            }
            let val = c.val.load(Relaxed);
            let exp = c.exp.load(Relaxed) as u32;
            if c.key.load(Acquire) != k || is_expired(exp, now) {
                continue;
            }
            let t = Template {
                svc_id: (k >> 32) as u32,
                client_net: k as u32,
                rs_slot: val as u32,
                rs_id: (val >> 32) as u32,
                expires: exp,
            };
            if !f(&t) {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn insert_lookup_refresh_expire() {
        let t = PersistTable::new(100);
        assert_eq!(t.capacity(), 128);
        assert_eq!(t.lookup(1, 0xc612_0100, 0), None);
        assert_eq!(t.insert(1, 0xc612_0100, 3, 33, 0, 300, false), Insert::Done);
        let got = t.lookup(1, 0xc612_0100, 10).unwrap();
        assert_eq!((got.rs_slot, got.rs_id, got.expires), (3, 33, 300));
        // other service, other network: separate
        assert_eq!(t.lookup(2, 0xc612_0100, 10), None);
        assert_eq!(t.lookup(1, 0xc612_0200, 10), None);
        // alive at its expiry second, gone after
        assert!(t.lookup(1, 0xc612_0100, 300).is_some());
        assert!(t.lookup(1, 0xc612_0100, 301).is_none());
        // refresh only moves forward
        t.refresh(1, 0xc612_0100, 500);
        t.refresh(1, 0xc612_0100, 400);
        assert_eq!(t.lookup(1, 0xc612_0100, 450).unwrap().expires, 500);
        // re-insert of the same key replaces in place
        assert!(matches!(
            t.insert(1, 0xc612_0100, 4, 44, 450, 800, false),
            Insert::Exists(Template { rs_id: 33, .. })
        ));
        assert_eq!(
            t.insert(1, 0xc612_0100, 4, 44, 450, 800, true),
            Insert::Done
        );
        let got = t.lookup(1, 0xc612_0100, 450).unwrap();
        assert_eq!((got.rs_slot, got.rs_id), (4, 44));
        let mut all = vec![];
        t.for_each(450, |x| {
            all.push(*x);
            true
        });
        assert_eq!(all.len(), 1, "one entry per key");
        assert_eq!(all[0].svc_id, 1);
        assert_eq!(all[0].client_net, 0xc612_0100);
        t.for_each(801, |_| panic!("expired templates are not listed"));
    }

    #[test]
    fn full_window_and_reuse_of_expired_entries() {
        // 8 entries = one window shared by every key
        let t = PersistTable::new(8);
        for n in 0..8 {
            assert_eq!(t.insert(1, n, 0, 1, 0, 100, false), Insert::Done);
        }
        assert_eq!(t.insert(1, 99, 0, 1, 0, 100, false), Insert::Full);
        for n in 0..8 {
            assert!(t.lookup(1, n, 50).is_some(), "live templates kept");
        }
        assert_eq!(t.insert(1, 99, 0, 7, 101, 200, false), Insert::Done);
        assert_eq!(t.lookup(1, 99, 150).unwrap().rs_id, 7);
        let mut n = 0;
        t.for_each(150, |_| {
            n += 1;
            true
        });
        assert_eq!(n, 1);
    }

    #[test]
    fn two_threads_hammering_agree_on_one_server_per_key() {
        let t = Arc::new(PersistTable::new(4096));
        let threads: Vec<_> = (0..2u32)
            .map(|w| {
                let t = Arc::clone(&t);
                std::thread::spawn(move || {
                    let mut mine = vec![];
                    for round in 0..20_000u32 {
                        let net = round % 500;
                        let now = round / 1000;
                        let got = match t.lookup(1, net, now) {
                            Some(x) => x.rs_id,
                            None => {
                                // each thread would pick a different server
                                match t.insert(1, net, w, 100 + w, now, now + 1000, false) {
                                    Insert::Done | Insert::Busy => 100 + w,
                                    Insert::Exists(x) => x.rs_id,
                                    Insert::Full => panic!("table not full"),
                                }
                            }
                        };
                        mine.push((net, got));
                    }
                    mine
                })
            })
            .collect();
        let results: Vec<Vec<(u32, u32)>> =
            threads.into_iter().map(|h| h.join().unwrap()).collect();
        // after the race, every key has exactly one template and both threads now see it
        let mut n = 0;
        t.for_each(25, |x| {
            n += 1;
            assert!(x.rs_id == 100 || x.rs_id == 101);
            assert_eq!(x.rs_slot + 100, x.rs_id, "value never torn");
            true
        });
        assert_eq!(n, 500);
        for r in &results {
            // the last answers of each thread agree with the table
            for &(net, got) in r.iter().rev().take(500) {
                assert_eq!(t.lookup(1, net, 25).unwrap().rs_id, got);
            }
        }
    }
}
