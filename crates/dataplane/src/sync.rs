//! Connection sync between directors, the workers' side: what a worker reports about its flows
//! (new flows, state changes, and every live flow when a peer asks for the whole table), and the
//! flows a peer reported that a worker installs in its own table.
//!
//! ```text
//! MASTER worker ─ new flow / state change ─► out ring (per worker, bounded) ─► HA thread ─► UDP
//! BACKUP  HA thread ◄─ UDP ─ decode ─► in ring of the worker that will receive the flow
//!         worker, between bursts (housekeeping) ─► flow table (server found by address:port)
//! ```
//!
//! Records name the real server by address and port, not by slot or id: those are local to
//! each director. Nothing here blocks: a full ring is a counted loss ([`SyncCounters`]); a lost
//! record costs a flow its stickiness on takeover, nothing else.
//!
//! Which worker receives a flow after takeover: the one whose RSS queue the NIC hashes the
//! flow to. [`SyncRings::with_router`] takes that mapping (the daemon computes it from the
//! port's RSS key and redirection table, see `rss`); without one, a single worker takes all,
//! and several workers each get a copy (a copy on the wrong worker is never hit and ages out).

use crate::flow::FlowState;
use crossbeam_queue::ArrayQueue;
use crossbeam_utils::CachePadded;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicU64};

/// One flow as directors exchange it (host-order addresses and ports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowRecord {
    /// IP protocol number (6 TCP, 17 UDP).
    pub proto: u8,
    /// The flow's state (IPVS names; [`FlowState`]).
    pub state: FlowState,
    pub client: u32,
    pub client_port: u16,
    pub vip: u32,
    pub vport: u16,
    /// The real server the flow is attached to.
    pub rs: u32,
    pub rs_port: u16,
}

/// Counters of the sync path (the HA thread adds its own for messages).
#[derive(Debug, Default)]
pub struct SyncCounters {
    /// Records workers produced (new flows, state changes, dump entries).
    pub out_records: AtomicU64,
    /// Records lost because a worker's out ring was full.
    pub out_dropped: AtomicU64,
    /// Records handed to workers for installation.
    pub in_records: AtomicU64,
    /// Records lost because a worker's in ring was full.
    pub in_dropped: AtomicU64,
    /// Records installed in a flow table.
    pub installed: AtomicU64,
    /// Records refused by a worker: no service for the VIP:port, no such real server in it,
    /// or no room in the flow table.
    pub install_failed: AtomicU64,
}

/// A function from a flow record to the worker whose RSS queue receives the flow.
pub type Router = Box<dyn Fn(&FlowRecord) -> usize + Send + Sync>;

/// The rings between the workers and the HA thread, and the bulk-dump handshake.
pub struct SyncRings {
    out: Vec<CachePadded<ArrayQueue<FlowRecord>>>,
    inbound: Vec<CachePadded<ArrayQueue<FlowRecord>>>,
    /// Whether workers report their flows (this director is master of the sync instance).
    sending: AtomicBool,
    /// The latest bulk dump asked for (a generation, 0 = never).
    dump_req: AtomicU64,
    /// Per worker: the last dump generation it finished.
    dump_done: Vec<CachePadded<AtomicU64>>,
    router: Option<Router>,
    pub counters: SyncCounters,
}

impl std::fmt::Debug for SyncRings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncRings")
            .field("workers", &self.out.len())
            .field("sending", &self.sending.load(Relaxed))
            .field("dump_req", &self.dump_req.load(Relaxed))
            .finish()
    }
}

impl SyncRings {
    /// Rings for `workers` workers, each of `capacity` records (at least 1) each way.
    pub fn new(workers: usize, capacity: usize) -> Self {
        let workers = workers.max(1);
        let cap = capacity.max(1);
        let ring = || CachePadded::new(ArrayQueue::new(cap));
        SyncRings {
            out: (0..workers).map(|_| ring()).collect(),
            inbound: (0..workers).map(|_| ring()).collect(),
            sending: AtomicBool::new(false),
            dump_req: AtomicU64::new(0),
            dump_done: (0..workers)
                .map(|_| CachePadded::new(AtomicU64::new(0)))
                .collect(),
            router: None,
            counters: SyncCounters::default(),
        }
    }

    /// Route installs by `r` (the worker index is taken modulo the number of workers).
    pub fn with_router(mut self, r: Router) -> Self {
        self.router = Some(r);
        self
    }

    pub fn workers(&self) -> usize {
        self.out.len()
    }

    /// Workers report new flows and state changes while on (master of the sync instance).
    pub fn set_sending(&self, on: bool) {
        self.sending.store(on, Relaxed);
    }

    pub fn sending(&self) -> bool {
        self.sending.load(Relaxed)
    }

    /// Worker `w` reports `r` (never blocks: a full ring counts a loss).
    pub fn push_out(&self, w: usize, r: FlowRecord) -> bool {
        let ok = self.out.get(w).is_some_and(|q| q.push(r).is_ok());
        let c = if ok {
            &self.counters.out_records
        } else {
            &self.counters.out_dropped
        };
        c.fetch_add(1, Relaxed);
        ok
    }

    /// Whether worker `w`'s out ring has room for another record.
    pub fn out_has_room(&self, w: usize) -> bool {
        self.out.get(w).is_some_and(|q| !q.is_full())
    }

    /// The HA thread takes up to `max` reported records (all workers, in turn).
    pub fn drain_out(&self, max: usize, mut f: impl FnMut(FlowRecord)) -> usize {
        let mut n = 0;
        'outer: loop {
            let mut any = false;
            for q in &self.out {
                if n >= max {
                    break 'outer;
                }
                if let Some(r) = q.pop() {
                    f(r);
                    n += 1;
                    any = true;
                }
            }
            if !any {
                break;
            }
        }
        n
    }

    /// The HA thread hands a peer's record to the worker that will receive the flow (or to
    /// every worker, see the module docs). Returns whether some worker took it.
    pub fn install(&self, r: FlowRecord) -> bool {
        let n = self.inbound.len();
        let targets: (usize, usize) = match (&self.router, n) {
            (_, 1) => (0, 1),
            (Some(route), _) => {
                let w = route(&r) % n;
                (w, w + 1)
            }
            (None, _) => (0, n),
        };
        let mut ok = false;
        for q in &self.inbound[targets.0..targets.1] {
            let pushed = q.push(r).is_ok();
            ok |= pushed;
            let c = if pushed {
                &self.counters.in_records
            } else {
                &self.counters.in_dropped
            };
            c.fetch_add(1, Relaxed);
        }
        ok
    }

    /// Worker `w` takes the next record to install.
    pub fn pop_in(&self, w: usize) -> Option<FlowRecord> {
        self.inbound.get(w)?.pop()
    }

    /// Whether worker `w` has records to install (one load; called between bursts).
    pub fn has_in(&self, w: usize) -> bool {
        self.inbound.get(w).is_some_and(|q| !q.is_empty())
    }

    /// Ask every worker to report all its live flows (a peer asked for a bulk resync).
    /// Returns the dump's generation for [`dump_finished`](Self::dump_finished).
    pub fn request_dump(&self) -> u64 {
        self.dump_req.fetch_add(1, AcqRel) + 1
    }

    /// The dump a worker should be doing (compare with what it finished).
    pub fn dump_requested(&self) -> u64 {
        self.dump_req.load(Acquire)
    }

    /// Worker `w` reported all its flows for dump generation `gen`.
    pub fn finish_dump(&self, w: usize, gen: u64) {
        if let Some(d) = self.dump_done.get(w) {
            d.store(gen, Release);
        }
    }

    /// The last dump generation worker `w` finished.
    pub fn dump_done(&self, w: usize) -> u64 {
        self.dump_done.get(w).map_or(0, |d| d.load(Acquire))
    }

    /// Whether every worker finished dump `gen` (or a later one).
    pub fn dump_finished(&self, gen: u64) -> bool {
        self.dump_done.iter().all(|d| d.load(Acquire) >= gen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(port: u16) -> FlowRecord {
        FlowRecord {
            proto: 6,
            state: FlowState::Established,
            client: 0xc612_0a01,
            client_port: port,
            vip: 0xc612_0064,
            vport: 80,
            rs: 0xc612_000b,
            rs_port: 80,
        }
    }

    #[test]
    fn out_ring_full_is_a_counted_loss() {
        let s = SyncRings::new(2, 2);
        assert!(s.push_out(0, rec(1)));
        assert!(s.push_out(0, rec(2)));
        assert!(!s.out_has_room(0));
        assert!(!s.push_out(0, rec(3)));
        assert!(s.push_out(1, rec(4)));
        assert!(!s.push_out(7, rec(5)), "no such worker");
        assert_eq!(s.counters.out_records.load(Relaxed), 3);
        assert_eq!(s.counters.out_dropped.load(Relaxed), 2);
        let mut got = Vec::new();
        assert_eq!(s.drain_out(10, |r| got.push(r.client_port)), 3);
        assert_eq!(got, [1, 4, 2], "workers taken in turn");
    }

    #[test]
    fn install_goes_to_the_routed_worker_or_to_all() {
        let all = SyncRings::new(3, 4);
        assert!(all.install(rec(1)));
        assert!((0..3).all(|w| all.pop_in(w) == Some(rec(1))));
        let routed = SyncRings::new(3, 4).with_router(Box::new(|r| r.client_port as usize));
        assert!(routed.install(rec(5)));
        assert_eq!(routed.pop_in(2), Some(rec(5)), "5 % 3 workers");
        assert_eq!(routed.pop_in(0), None);
        assert_eq!(routed.pop_in(1), None);
        assert_eq!(routed.counters.in_records.load(Relaxed), 1);
    }

    #[test]
    fn dump_generations() {
        let s = SyncRings::new(2, 1);
        assert!(s.dump_finished(0));
        let g = s.request_dump();
        assert_eq!(s.dump_requested(), g);
        assert!(!s.dump_finished(g));
        s.finish_dump(0, g);
        assert!(!s.dump_finished(g));
        s.finish_dump(1, g);
        assert!(s.dump_finished(g));
        assert_eq!(s.dump_done(1), g);
    }
}
