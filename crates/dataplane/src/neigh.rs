//! The neighbour (ARP) table of real server addresses, shared lock free between the control
//! thread and every worker.
//!
//! A fixed-capacity open-addressing array (linear probing). Keys (IPv4 addresses, 0 = empty) are
//! inserted by the control thread only and never removed; an address no snapshot uses any more is
//! just marked unused (no ARP requests for it). Workers confirm entries from ARP replies; the ARP
//! worker lists the addresses due for a request. Nothing here allocates after `new`.

use crate::report::{MacAddr, NeighState};
use crate::wire::arp::{build_frame, Operation};
use crate::wire::ethernet;
use std::net::Ipv4Addr;
use std::sync::atomic::{
    AtomicBool, AtomicU32, AtomicU64, AtomicUsize,
    Ordering::{Acquire, Relaxed, Release},
};

const MAC_MASK: u64 = (1 << 48) - 1;
const RESOLVED: u64 = 1 << 48;
const STATIC: u64 = 1 << 49;

/// Requests sent for a stale entry without an answer before it becomes unresolved.
pub const STALE_TRIES: u32 = 3;
/// Default time an ARP answer stays reachable.
pub const DEFAULT_REACHABLE_MS: u64 = 30_000;
/// Default interval between requests for one address.
pub const DEFAULT_RETRY_MS: u64 = 1_000;

/// The table has no free slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighTableFull;

#[derive(Debug, Default)]
struct Slot {
    key: AtomicU32,
    /// 48-bit MAC | RESOLVED | STATIC.
    mac_flags: AtomicU64,
    confirmed_ms: AtomicU64,
    /// Time of the last request + 1 (0 = never requested).
    requested_ms: AtomicU64,
    tries: AtomicU32,
    used: AtomicBool,
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

/// The neighbour table. See the module docs.
#[derive(Debug)]
pub struct NeighTable {
    slots: Box<[Slot]>,
    mask: usize,
    /// 64 - log2(slots): the hash bits kept by [`spread`].
    shift: u32,
    reachable_ms: u64,
    /// Tracked addresses (written by the control thread only, which inserts).
    count: AtomicUsize,
}

impl NeighTable {
    /// A table for at least `capacity` addresses (rounded up to a power of two, and kept at
    /// most 3/4 full so probes stay short).
    pub fn new(capacity: usize) -> Self {
        let n = (capacity.max(1).saturating_mul(4) / 3 + 1).next_power_of_two();
        NeighTable {
            slots: (0..n).map(|_| Slot::default()).collect(),
            mask: n - 1,
            shift: 64 - n.trailing_zeros(),
            reachable_ms: DEFAULT_REACHABLE_MS,
            count: AtomicUsize::new(0),
        }
    }

    fn limit(&self) -> usize {
        // at most 3/4 of the slots hold keys
        self.slots.len() / 4 * 3
    }

    /// Find the slot of `ip`, if tracked.
    pub fn find(&self, ip: Ipv4Addr) -> Option<usize> {
        let k = u32::from(ip);
        if k == 0 {
            return None;
        }
        let mut i = spread(k, self.shift, self.mask);
        for _ in 0..self.slots.len() {
            let s = self.slots.get(i)?;
            match s.key.load(Acquire) {
                0 => return None,
                x if x == k => return Some(i),
                _ => i = (i + 1) & self.mask,
            }
        }
        None
    }

    /// Track `ip` (control thread only). Returns its slot, existing or new.
    pub fn insert(&self, ip: Ipv4Addr) -> Result<usize, NeighTableFull> {
        let k = u32::from(ip);
        if k == 0 {
            return Err(NeighTableFull);
        }
        if let Some(s) = self.find(ip) {
            return Ok(s);
        }
        if self.len() >= self.limit() {
            return Err(NeighTableFull);
        }
        let mut i = spread(k, self.shift, self.mask);
        for _ in 0..self.slots.len() {
            let s = &self.slots[i];
            if s.key.load(Relaxed) == 0 {
                s.mac_flags.store(0, Relaxed);
                s.confirmed_ms.store(0, Relaxed);
                s.requested_ms.store(0, Relaxed);
                s.tries.store(0, Relaxed);
                s.used.store(true, Relaxed);
                // Publish the key last: a reader that sees it sees initialised fields.
                s.key.store(k, Release);
                self.count.fetch_add(1, Relaxed);
                return Ok(i);
            }
            i = (i + 1) & self.mask;
        }
        Err(NeighTableFull)
    }

    /// Number of tracked addresses.
    pub fn len(&self) -> usize {
        self.count.load(Relaxed)
    }

    /// Slots a lookup of `ip` walks (1 = found or ruled out at its home slot); for tests and
    /// diagnostics.
    pub fn probe_len(&self, ip: Ipv4Addr) -> usize {
        let k = u32::from(ip);
        let mut i = spread(k, self.shift, self.mask);
        for n in 1..=self.slots.len() {
            match self.slots.get(i).map(|s| s.key.load(Acquire)) {
                Some(0) | None => return n,
                Some(x) if x == k => return n,
                _ => i = (i + 1) & self.mask,
            }
        }
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Maximum number of addresses.
    pub fn capacity(&self) -> usize {
        self.limit()
    }

    /// Number of slots (for walking them with [`set_used`](Self::set_used)).
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    /// Mark `slot` used by the current snapshot (its address gets ARP requests).
    pub fn set_used(&self, slot: usize, used: bool) {
        if let Some(s) = self.slots.get(slot) {
            s.used.store(used, Relaxed);
        }
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

    /// Record an ARP answer for `slot` (any worker). Static entries are left alone; group and
    /// zero MACs are ignored.
    pub fn confirm(&self, slot: usize, mac: [u8; 6], now_ms: u64) {
        let Some(s) = self.slots.get(slot) else {
            return;
        };
        if ethernet::is_group(&mac) || mac == [0; 6] {
            return;
        }
        if s.mac_flags.load(Relaxed) & STATIC != 0 {
            return;
        }
        s.confirmed_ms.store(now_ms, Relaxed);
        s.tries.store(0, Relaxed);
        s.mac_flags.store(MacAddr(mac).word() | RESOLVED, Release);
    }

    /// Configure a static MAC for `ip` (control thread), tracking it if needed.
    pub fn set_static(&self, ip: Ipv4Addr, mac: [u8; 6]) -> Result<usize, NeighTableFull> {
        let slot = self.insert(ip)?;
        self.slots[slot]
            .mac_flags
            .store(MacAddr(mac).word() | STATIC, Release);
        Ok(slot)
    }

    /// Drop a static configuration for `ip` (it goes back to ARP resolution).
    pub fn clear_static(&self, ip: Ipv4Addr) {
        if let Some(slot) = self.find(ip) {
            let s = &self.slots[slot];
            if s.mac_flags.load(Relaxed) & STATIC != 0 {
                s.mac_flags.store(0, Release);
                s.requested_ms.store(0, Relaxed);
            }
        }
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
    /// Returns how many entries of `out` were filled.
    pub fn due_requests(
        &self,
        now_ms: u64,
        reachable_ms: u64,
        retry_ms: u64,
        out: &mut [u32],
    ) -> usize {
        let mut n = 0;
        for s in self.slots.iter() {
            if n >= out.len() {
                break;
            }
            let key = s.key.load(Acquire);
            if key == 0 || !s.used.load(Relaxed) {
                continue;
            }
            let v = s.mac_flags.load(Acquire);
            if v & STATIC != 0 {
                continue;
            }
            let req = s.requested_ms.load(Relaxed);
            let retry_due = req == 0 || now_ms.saturating_sub(req - 1) >= retry_ms;
            if v & RESOLVED != 0 {
                let age = now_ms.saturating_sub(s.confirmed_ms.load(Relaxed));
                if age < reachable_ms || !retry_due {
                    continue;
                }
                if s.tries.load(Relaxed) >= STALE_TRIES {
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
            out[n] = key;
            n += 1;
        }
        n
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

    #[test]
    fn insert_find_confirm() {
        let t = NeighTable::new(4);
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
        // broadcast MAC never accepted
        t.confirm(s, [0xff; 6], 2000);
        assert_eq!(t.mac(s), Some(MAC1));
        assert_eq!(t.mac(999), None);
        assert_eq!(t.state(RS2, 0), NeighState::Incomplete);
    }

    #[test]
    fn full_table_refuses() {
        let t = NeighTable::new(3);
        let cap = t.capacity();
        for i in 0..cap {
            t.insert(Ipv4Addr::from(0xc612_0000 + i as u32 + 1))
                .unwrap();
        }
        assert_eq!(t.insert(Ipv4Addr::new(10, 0, 0, 1)), Err(NeighTableFull));
        assert_eq!(t.insert(Ipv4Addr::UNSPECIFIED), Err(NeighTableFull));
        assert_eq!(t.len(), cap);
    }

    #[test]
    fn many_addresses_probe_short() {
        // 10k addresses of one /16-ish range (consecutive, as real server pools are) and a
        // strided set: both must spread over the table, not pile up on a few home slots.
        let t = NeighTable::new(20_000);
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
        let t = NeighTable::new(4);
        let s = t.set_static(RS1, MAC1).unwrap();
        t.confirm(s, [2, 0, 0, 0, 0, 0x99], 10);
        assert_eq!(t.mac(s), Some(MAC1));
        assert_eq!(
            t.state(RS1, 99_999),
            NeighState::Static { mac: MacAddr(MAC1) }
        );
        let mut out = [0u32; 4];
        assert_eq!(t.due_requests(0, 30_000, 1000, &mut out), 0);
        t.clear_static(RS1);
        assert_eq!(t.mac(s), None);
        assert_eq!(t.due_requests(0, 30_000, 1000, &mut out), 1);
    }

    #[test]
    fn request_schedule() {
        let t = NeighTable::new(4);
        let s1 = t.insert(RS1).unwrap();
        let s2 = t.insert(RS2).unwrap();
        t.set_used(s2, false);
        let mut out = [0u32; 4];
        // unresolved and used: asked at once, then every retry interval
        assert_eq!(t.due_requests(0, 30_000, 1000, &mut out), 1);
        assert_eq!(out[0], u32::from(RS1));
        assert_eq!(t.due_requests(500, 30_000, 1000, &mut out), 0);
        assert_eq!(t.due_requests(1000, 30_000, 1000, &mut out), 1);
        // answered: quiet until it goes stale
        t.confirm(s1, MAC1, 1200);
        assert_eq!(t.due_requests(2500, 30_000, 1000, &mut out), 0);
        assert_eq!(t.due_requests(31_200, 30_000, 1000, &mut out), 1);
        assert_eq!(t.mac(s1), Some(MAC1), "stale entries stay usable");
        assert_eq!(t.due_requests(32_200, 30_000, 1000, &mut out), 1);
        assert_eq!(t.due_requests(33_200, 30_000, 1000, &mut out), 1);
        assert_eq!(t.mac(s1), Some(MAC1));
        // fourth round: three stale tries went unanswered -> unresolved
        assert_eq!(t.due_requests(34_200, 30_000, 1000, &mut out), 1);
        assert_eq!(t.mac(s1), None);
        assert_eq!(t.state(RS1, 34_200), NeighState::Incomplete);
        // an answer brings it back
        t.confirm(s1, MAC1, 35_000);
        assert_eq!(t.mac(s1), Some(MAC1));
        // out buffer bounds the work
        t.set_used(s2, true);
        let mut one = [0u32; 1];
        assert_eq!(t.due_requests(100_000, 30_000, 1000, &mut one), 1);
        assert_eq!(t.due_requests(100_000, 30_000, 1000, &mut one), 1);
        assert_eq!(t.due_requests(100_000, 30_000, 1000, &mut one), 0);
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
