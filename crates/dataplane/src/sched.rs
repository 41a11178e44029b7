//! The LVS schedulers, with IPVS's selection rules: rr, wrr, lc, wlc, sed, nq, lblc, lblcr, dh,
//! sh, mh, fo, ovf.
//!
//! Split of the work:
//! - the control thread builds a [`Plan`] per service with the snapshot: parsed flags, per-server
//!   thresholds, and the lookup tables (dh/sh: 256 buckets; mh: a Maglev table of
//!   [`maglev::DEFAULT_SIZE`] positions). A plan is immutable once published.
//! - each worker owns a [`Schedulers`]: rr/wrr cursors per service index (reset when the
//!   snapshot epoch changes, as IPVS resets a scheduler when its destinations change), the
//!   overload (threshold) state per real server slot, and the lblc/lblcr locality table. All
//!   arrays are allocated once in [`Schedulers::new`]; [`Schedulers::pick`] never allocates,
//!   locks or panics.
//! - connection counts come from [`Loads`]: for the dataplane, the stats registry summed over
//!   ALL workers (relaxed loads of single-writer gauges), so a worker balances by the load the
//!   other workers put on a server too.
//!
//! Connection overhead as IPVS counts it: `active * 256 + inactive` (lc, wlc, lblc, lblcr),
//! `active + 1` (sed, nq). "a is better than b" for the weighted ones is
//! `oh(a) * w(b) < oh(b) * w(a)`, evaluated in 128-bit integers; ties keep the first server in
//! list order. Servers with weight 0 are quiesced (no new flows) by every scheduler.
//!
//! Thresholds (`-x upper`, `-y lower`): a server whose active + inactive connections reach
//! `upper` is overloaded and gets no new flows until they fall below `lower` (or, when `lower`
//! is 0, below 3/4 of `upper`), as IPVS's `IP_VS_DEST_F_OVERLOAD`. The flag is derived from the
//! counts at decision time with the hysteresis state kept per worker.

use crate::flow::FlowKey;
use crate::maglev;
use crate::model::{self, parse_flags, Flags, SchedulerKind, ServerSpec};
use crate::snapshot::{Service, Snapshot};
use crate::stats::StatsRegistry;

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// wrr parameters over `weights`: (gcd of the non-zero weights, maximum weight). (0, 0) when
/// every weight is 0.
pub fn wrr_params(weights: impl IntoIterator<Item = u32>) -> (u32, u32) {
    weights
        .into_iter()
        .filter(|&w| w > 0)
        .fold((0, 0), |(g, m), w| (gcd(g, w), m.max(w)))
}

/// Number of dh/sh buckets (IPVS's `IP_VS_DH_TAB_SIZE` / `IP_VS_SH_TAB_SIZE`).
pub const HASH_BUCKETS: usize = 256;

/// Connection thresholds of one server (0 = none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Limit {
    upper: u32,
    lower: u32,
}

/// Everything about a service's scheduling that can be computed when the snapshot is built.
#[derive(Clone, PartialEq, Eq)]
pub struct Plan {
    flags: Flags,
    /// Per server (same order as the service's servers).
    limits: Box<[Limit]>,
    /// Some server has an upper threshold: the overload check is needed at all.
    thresholds: bool,
    /// dh/sh: [`HASH_BUCKETS`] server indexes; mh: the Maglev table; empty otherwise.
    /// [`maglev::NONE`] marks "no server".
    table: Box<[u32]>,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("flags", &self.flags)
            .field("limits", &self.limits)
            .field("table_len", &self.table.len())
            .finish()
    }
}

impl Plan {
    /// The plan of a configured service (flags were validated by the model).
    pub fn build(svc: &model::Service) -> Plan {
        let specs: Vec<ServerSpec> = svc.servers.iter().map(|r| r.spec).collect();
        let flags = parse_flags(svc.spec.scheduler, &svc.spec.flags).unwrap_or_default();
        Plan::new(svc.spec.scheduler, flags, &specs, maglev::DEFAULT_SIZE)
    }

    /// The plan for scheduler `kind` over `servers` (in list order); `mh_size` is the Maglev
    /// table size (a prime).
    pub fn new(kind: SchedulerKind, flags: Flags, servers: &[ServerSpec], mh_size: usize) -> Plan {
        let limits: Box<[Limit]> = servers
            .iter()
            .map(|s| Limit {
                upper: s.upper,
                lower: s.lower,
            })
            .collect();
        let n = servers.len();
        let table: Box<[u32]> = match kind {
            // IPVS dh: bucket i goes to the i-th server, cycling through the list.
            SchedulerKind::Dh if n > 0 => (0..HASH_BUCKETS).map(|i| (i % n) as u32).collect(),
            // IPVS sh: each server takes `weight` consecutive buckets (at least one, even at
            // weight 0), cycling through the list until the 256 buckets are assigned.
            SchedulerKind::Sh if n > 0 => {
                let mut t = Vec::with_capacity(HASH_BUCKETS);
                let (mut p, mut count) = (0usize, 0u32);
                while t.len() < HASH_BUCKETS {
                    t.push(p as u32);
                    count += 1;
                    if count >= servers[p].weight {
                        p = (p + 1) % n;
                        count = 0;
                    }
                }
                t.into_boxed_slice()
            }
            SchedulerKind::Mh => {
                let b: Vec<(u64, u32)> = servers
                    .iter()
                    .map(|s| (maglev::backend_id(u32::from(s.addr), s.port), s.weight))
                    .collect();
                maglev::build(&b, mh_size)
            }
            _ => Box::new([]),
        };
        Plan {
            flags,
            thresholds: limits.iter().any(|l| l.upper != 0),
            limits,
            table,
        }
    }

    pub fn flags(&self) -> Flags {
        self.flags
    }

    /// The dh/sh bucket table or the Maglev table (empty for the other schedulers).
    pub fn table(&self) -> &[u32] {
        &self.table
    }
}

/// Connection counts per real server slot, as the connection-count schedulers see them.
pub trait Loads {
    /// (active, inactive) connections of real server slot `slot`.
    fn conns(&self, slot: u32) -> (u64, u64);
}

/// The dataplane's loads: every worker's gauges summed.
impl Loads for StatsRegistry {
    #[inline]
    fn conns(&self, slot: u32) -> (u64, u64) {
        self.server_conns(slot as usize)
    }
}

/// No connections anywhere (for callers that schedule without load, and tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoLoads;

impl Loads for NoLoads {
    fn conns(&self, _slot: u32) -> (u64, u64) {
        (0, 0)
    }
}

/// One service's rr/wrr cursor: the last chosen position (`None` = the list head, as after a
/// reset) and wrr's current weight.
#[derive(Debug, Clone, Copy, Default)]
struct Cursor {
    last: Option<usize>,
    cw: i64,
}

/// A worker's overload flag for a real server slot (`id` tells a reused slot apart).
#[derive(Debug, Clone, Copy, Default)]
struct Over {
    id: u32,
    on: bool,
}

/// lblc/lblcr entries kept per worker (a 4-way set-associative table).
pub const LOCALITY_ENTRIES: usize = 8192;
const LOCALITY_WAYS: usize = 4;
/// lblcr: servers kept per destination at most (IPVS's sets are unbounded; when a set is full
/// the oldest member makes room).
pub const LBLCR_SET_MAX: usize = 8;
/// IPVS `lblc_expiration` / `lblcr_expiration` default: 24 hours. An entry unused that long is
/// forgotten; an lblcr set not changed that long loses its most loaded member.
pub const LOCALITY_EXPIRE_S: u32 = 24 * 60 * 60;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Member {
    slot: u32,
    id: u32,
}

#[derive(Debug, Clone, Copy, Default)]
struct LocEntry {
    live: bool,
    svc_id: u32,
    daddr: u32,
    used: u32,
    lastmod: u32,
    len: u8,
    /// Most recently added first (IPVS adds to the head of the set's list).
    members: [Member; LBLCR_SET_MAX],
}

impl LocEntry {
    fn valid(&self, now_s: u32) -> bool {
        self.live && now_s.wrapping_sub(self.used) < LOCALITY_EXPIRE_S
    }
    fn members(&self) -> &[Member] {
        &self.members[..usize::from(self.len).min(LBLCR_SET_MAX)]
    }
    fn push_front(&mut self, m: Member) {
        let len = usize::from(self.len).min(LBLCR_SET_MAX);
        if self.members[..len].contains(&m) {
            return;
        }
        let keep = len.min(LBLCR_SET_MAX - 1);
        self.members.copy_within(0..keep, 1);
        self.members[0] = m;
        self.len = (keep + 1) as u8;
    }
    fn remove(&mut self, m: Member) {
        let len = usize::from(self.len).min(LBLCR_SET_MAX);
        if let Some(p) = self.members[..len].iter().position(|x| *x == m) {
            self.members.copy_within(p + 1..len, p);
            self.len = (len - 1) as u8;
        }
    }
}

/// The per-worker destination → server(s) table of lblc and lblcr.
#[derive(Debug)]
struct Locality {
    entries: Box<[LocEntry]>,
}

impl Locality {
    fn new(entries: usize) -> Self {
        let sets = (entries / LOCALITY_WAYS).max(1).next_power_of_two();
        Locality {
            entries: vec![LocEntry::default(); sets * LOCALITY_WAYS].into_boxed_slice(),
        }
    }

    fn set_of(&self, svc_id: u32, daddr: u32) -> usize {
        let sets = self.entries.len() / LOCALITY_WAYS;
        let h = maglev::mix64((u64::from(svc_id) << 32) | u64::from(daddr));
        (h as usize & (sets - 1)) * LOCALITY_WAYS
    }

    /// The live entry for (service, destination).
    fn find(&mut self, svc_id: u32, daddr: u32, now_s: u32) -> Option<&mut LocEntry> {
        let base = self.set_of(svc_id, daddr);
        self.entries
            .get_mut(base..base + LOCALITY_WAYS)?
            .iter_mut()
            .find(|e| e.valid(now_s) && e.svc_id == svc_id && e.daddr == daddr)
    }

    /// A fresh entry for (service, destination): its current one reset, else a free or expired
    /// way, else the least recently used one.
    fn insert(&mut self, svc_id: u32, daddr: u32, now_s: u32) -> Option<&mut LocEntry> {
        let base = self.set_of(svc_id, daddr);
        let set = self.entries.get_mut(base..base + LOCALITY_WAYS)?;
        let mut victim = 0;
        for (i, e) in set.iter().enumerate() {
            if e.valid(now_s) && e.svc_id == svc_id && e.daddr == daddr {
                victim = i;
                break;
            }
            if !e.valid(now_s) {
                victim = i;
                break;
            }
            if now_s.wrapping_sub(e.used) > now_s.wrapping_sub(set[victim].used) {
                victim = i;
            }
        }
        let e = set.get_mut(victim)?;
        *e = LocEntry {
            live: true,
            svc_id,
            daddr,
            used: now_s,
            lastmod: now_s,
            ..LocEntry::default()
        };
        Some(e)
    }
}

/// A worker's scheduler state for every service.
#[derive(Debug)]
pub struct Schedulers {
    cursors: Box<[Cursor]>,
    epoch: u64,
    over: Box<[Over]>,
    locality: Locality,
}

impl Schedulers {
    /// State for up to `max_services` services and `max_servers` real server slots (allocated
    /// here, once).
    pub fn new(max_services: usize, max_servers: usize) -> Self {
        Schedulers {
            cursors: vec![Cursor::default(); max_services].into_boxed_slice(),
            epoch: 0,
            over: vec![Over::default(); max_servers].into_boxed_slice(),
            locality: Locality::new(LOCALITY_ENTRIES),
        }
    }

    /// Reset every rr/wrr cursor if `epoch` differs from the one the cursors were built for.
    /// (lblc/lblcr entries name servers by slot and id, so they survive snapshot changes.)
    pub fn sync_epoch(&mut self, epoch: u64) {
        if epoch != self.epoch {
            self.cursors.fill(Cursor::default());
            self.epoch = epoch;
        }
    }

    /// Choose a server (index into `snap.services[svc].servers`) for a new flow `key` of
    /// service `svc`, by the service's scheduler. `loads` gives connection counts; `now_s` is
    /// the dataplane clock in seconds (lblc/lblcr expiry). `None` when no server may take it.
    pub fn pick<L: Loads + ?Sized>(
        &mut self,
        snap: &Snapshot,
        svc: usize,
        key: &FlowKey,
        loads: &L,
        now_s: u32,
    ) -> Option<usize> {
        let s = snap.services.get(svc)?;
        let n = s.servers.len();
        let mut v = View {
            svc: s,
            loads,
            over: &mut self.over,
        };
        let r = match s.scheduler {
            SchedulerKind::Rr => rr(self.cursors.get_mut(svc)?, &mut v),
            SchedulerKind::Wrr => wrr(self.cursors.get_mut(svc)?, &mut v),
            SchedulerKind::Lc => lc(&mut v),
            SchedulerKind::Wlc => weighted_least(&mut v, conn_overhead),
            SchedulerKind::Sed => weighted_least(&mut v, sed_overhead),
            SchedulerKind::Nq => nq(&mut v),
            SchedulerKind::Fo => fo(&mut v),
            SchedulerKind::Ovf => ovf(&mut v),
            SchedulerKind::Dh => dh(&mut v, key),
            SchedulerKind::Sh => sh(&mut v, key),
            SchedulerKind::Mh => mh(&mut v, key),
            SchedulerKind::Lblc => lblc(&mut self.locality, snap, svc, &mut v, key, now_s),
            SchedulerKind::Lblcr => lblcr(&mut self.locality, snap, svc, &mut v, key, now_s),
        };
        r.filter(|&i| i < n)
    }
}

/// A service's servers with their loads and this worker's overload state.
struct View<'a, L: ?Sized> {
    svc: &'a Service,
    loads: &'a L,
    over: &'a mut [Over],
}

impl<L: Loads + ?Sized> View<'_, L> {
    #[inline]
    fn n(&self) -> usize {
        self.svc.servers.len()
    }
    #[inline]
    fn weight(&self, i: usize) -> u32 {
        self.svc.servers.get(i).map_or(0, |r| r.weight)
    }
    #[inline]
    fn conns(&self, i: usize) -> (u64, u64) {
        self.svc
            .servers
            .get(i)
            .map_or((0, 0), |r| self.loads.conns(r.slot))
    }
    /// IPVS's overload flag of server `i` whose total connections are `total`.
    fn overloaded_at(&mut self, i: usize, total: u64) -> bool {
        if !self.svc.plan.thresholds {
            return false;
        }
        let (Some(rs), Some(lim)) = (self.svc.servers.get(i), self.svc.plan.limits.get(i)) else {
            return false;
        };
        let Some(st) = self.over.get_mut(rs.slot as usize) else {
            return false;
        };
        if st.id != rs.id {
            *st = Over {
                id: rs.id,
                on: false,
            };
        }
        let (upper, lower) = (u64::from(lim.upper), u64::from(lim.lower));
        if upper == 0 {
            st.on = false;
        } else if total >= upper {
            st.on = true;
        } else if st.on {
            let below = if lower != 0 {
                total < lower
            } else {
                total.saturating_mul(4) < upper * 3
            };
            if below {
                st.on = false;
            }
        }
        st.on
    }
    fn overloaded(&mut self, i: usize) -> bool {
        if !self.svc.plan.thresholds {
            return false;
        }
        let (a, ia) = self.conns(i);
        self.overloaded_at(i, a.saturating_add(ia))
    }
    /// May take a new flow: weight above 0 and not overloaded.
    fn usable(&mut self, i: usize) -> bool {
        let over = self.overloaded(i);
        !over && self.weight(i) > 0
    }
}

/// `ip_vs_dest_conn_overhead`: active connections weigh 256 times an inactive one.
fn conn_overhead(active: u64, inactive: u64) -> u64 {
    active.saturating_mul(256).saturating_add(inactive)
}

/// Shortest expected delay: (active + 1) per unit of weight.
fn sed_overhead(active: u64, _inactive: u64) -> u64 {
    active.saturating_add(1)
}

/// `a` (overhead `oa`, weight `wa`) is strictly more loaded than `b`: `oa/wa > ob/wb`.
#[inline]
fn heavier(oa: u64, wa: u32, ob: u64, wb: u32) -> bool {
    u128::from(oa) * u128::from(wb) > u128::from(ob) * u128::from(wa)
}

/// Round robin: the next usable server after the last one chosen.
fn rr<L: Loads + ?Sized>(c: &mut Cursor, v: &mut View<'_, L>) -> Option<usize> {
    let n = v.n();
    if n == 0 {
        return None;
    }
    let start = c.last.map_or(0, |l| l.wrapping_add(1) % n);
    for k in 0..n {
        let idx = (start + k) % n;
        if v.usable(idx) {
            c.last = Some(idx);
            return Some(idx);
        }
    }
    None
}

/// IPVS weighted round robin: walk the list; each time the walk passes the head, lower the
/// current weight by the gcd (back to the maximum weight when it reaches 0); choose the first
/// server not overloaded whose weight is at least the current weight. Weights 3:1 give
/// A A A B A A A B ...
///
/// Without overloaded servers the maximum-weight server qualifies at every level, so a choice
/// is found within n + 1 steps. When the walk takes longer, levels no usable server reaches
/// are skipped (IPVS walks through them in empty passes, with the same result).
fn wrr<L: Loads + ?Sized>(c: &mut Cursor, v: &mut View<'_, L>) -> Option<usize> {
    let (n, gcd, max) = (v.n(), v.svc.wrr_gcd, v.svc.wrr_max);
    if n == 0 || max == 0 || gcd == 0 {
        return None;
    }
    let mut ceiling = i64::from(max);
    let first_bound = n.saturating_mul(2).saturating_add(2);
    let mut cl = c.last;
    for step in 0..first_bound.saturating_mul(2) {
        if step == first_bound {
            // Highest weight among usable servers; 0 = none usable.
            ceiling = 0;
            for i in 0..n {
                if v.usable(i) {
                    ceiling = ceiling.max(i64::from(v.weight(i)));
                }
            }
            if ceiling == 0 {
                break;
            }
        }
        let next = match cl {
            Some(l) if l + 1 < n => l + 1,
            _ => 0,
        };
        if next == 0 {
            c.cw -= i64::from(gcd);
            if c.cw <= 0 {
                c.cw = i64::from(max);
            }
            c.cw = c.cw.min(ceiling);
        }
        cl = Some(next);
        if i64::from(v.weight(next)) >= c.cw && !v.overloaded(next) {
            c.last = cl;
            return Some(next);
        }
    }
    c.last = cl;
    None
}

/// Least connections: the smallest `active * 256 + inactive` (first on ties).
fn lc<L: Loads + ?Sized>(v: &mut View<'_, L>) -> Option<usize> {
    let mut best: Option<(usize, u64)> = None;
    for i in 0..v.n() {
        let (a, ia) = v.conns(i);
        if v.overloaded_at(i, a.saturating_add(ia)) || v.weight(i) == 0 {
            continue;
        }
        let doh = conn_overhead(a, ia);
        if best.map_or(true, |(_, loh)| doh < loh) {
            best = Some((i, doh));
        }
    }
    best.map(|b| b.0)
}

/// wlc (`oh` = [`conn_overhead`]) and sed (`oh` = [`sed_overhead`]): the smallest overhead per
/// unit of weight; the first usable server with weight above 0 starts, later ones replace it
/// only when strictly lighter.
fn weighted_least<L: Loads + ?Sized>(
    v: &mut View<'_, L>,
    oh: fn(u64, u64) -> u64,
) -> Option<usize> {
    let mut least: Option<(usize, u64, u32)> = None;
    for i in 0..v.n() {
        let (a, ia) = v.conns(i);
        if v.overloaded_at(i, a.saturating_add(ia)) {
            continue;
        }
        let w = v.weight(i);
        match least {
            None if w > 0 => least = Some((i, oh(a, ia), w)),
            None => {}
            Some((_, loh, lw)) => {
                let doh = oh(a, ia);
                if heavier(loh, lw, doh, w) {
                    least = Some((i, doh, w));
                }
            }
        }
    }
    least.map(|l| l.0)
}

/// Never queue: the first idle (no active connection) usable server, else as sed.
fn nq<L: Loads + ?Sized>(v: &mut View<'_, L>) -> Option<usize> {
    let mut least: Option<(usize, u64, u32)> = None;
    for i in 0..v.n() {
        let (a, ia) = v.conns(i);
        let w = v.weight(i);
        if v.overloaded_at(i, a.saturating_add(ia)) || w == 0 {
            continue;
        }
        if a == 0 {
            return Some(i);
        }
        let doh = sed_overhead(a, ia);
        if least.map_or(true, |(_, loh, lw)| heavier(loh, lw, doh, w)) {
            least = Some((i, doh, w));
        }
    }
    least.map(|l| l.0)
}

/// Weighted failover: the usable server with the highest weight (first on ties).
fn fo<L: Loads + ?Sized>(v: &mut View<'_, L>) -> Option<usize> {
    let mut best: Option<(usize, u32)> = None;
    for i in 0..v.n() {
        let w = v.weight(i);
        if v.overloaded(i) || w == 0 {
            continue;
        }
        if best.map_or(true, |(_, hw)| w > hw) {
            best = Some((i, w));
        }
    }
    best.map(|b| b.0)
}

/// Overflow connection: the highest-weight usable server whose active connections do not
/// exceed its weight (IPVS skips a server when `active > weight`); first on ties.
fn ovf<L: Loads + ?Sized>(v: &mut View<'_, L>) -> Option<usize> {
    let mut best: Option<(usize, u32)> = None;
    for i in 0..v.n() {
        let w = v.weight(i);
        let (a, ia) = v.conns(i);
        if v.overloaded_at(i, a.saturating_add(ia)) || a > u64::from(w) || w == 0 {
            continue;
        }
        if best.map_or(true, |(_, hw)| w > hw) {
            best = Some((i, w));
        }
    }
    best.map(|b| b.0)
}

/// IPVS's `hash_32(v, 8)`: the top 8 bits of `v * GOLDEN_RATIO_32`.
#[inline]
fn hash8(v: u32) -> usize {
    (v.wrapping_mul(0x61c8_8647) >> 24) as usize
}

/// Destination hashing: bucket `(daddr * 2654435761) mod 256`; no choice when its server has
/// weight 0 or is overloaded.
fn dh<L: Loads + ?Sized>(v: &mut View<'_, L>, key: &FlowKey) -> Option<usize> {
    let b = (key.dst.wrapping_mul(2_654_435_761) as usize) % HASH_BUCKETS;
    let i = *v.svc.plan.table.get(b)? as usize;
    v.usable(i).then_some(i)
}

/// Source hashing: bucket `hash_32(sport + saddr, 8)` (sport 0 without sh-port). With
/// sh-fallback an unusable server's flows go to the next usable bucket in IPVS's probe order.
fn sh<L: Loads + ?Sized>(v: &mut View<'_, L>, key: &FlowKey) -> Option<usize> {
    let port = if v.svc.plan.flags.port { key.sport } else { 0 };
    let ih = hash8(u32::from(port).wrapping_add(key.src));
    let table = &v.svc.plan.table;
    let i = *table.get(ih)? as usize;
    if v.usable(i) {
        return Some(i);
    }
    if !v.svc.plan.flags.fallback {
        return None;
    }
    // IPVS rehashes with offset (offset + ih) for offset in 0..256, i.e. buckets from 2 * ih.
    for offset in 0..HASH_BUCKETS {
        let b = (offset + 2 * ih) % HASH_BUCKETS;
        let i = *v.svc.plan.table.get(b)? as usize;
        if v.usable(i) {
            return Some(i);
        }
    }
    None
}

/// mh-fallback: rehash attempts before scanning the list.
const MH_FALLBACK_TRIES: u32 = 32;

/// Maglev hashing of the source address (and port with mh-port). With mh-fallback an
/// unusable server's flows are rehashed (up to [`MH_FALLBACK_TRIES`] times, so they spread by
/// weight), then the list is scanned from a hashed start.
fn mh<L: Loads + ?Sized>(v: &mut View<'_, L>, key: &FlowKey) -> Option<usize> {
    let port = if v.svc.plan.flags.port { key.sport } else { 0 };
    let k = maglev::backend_id(key.src, port);
    let m = v.svc.plan.table.len();
    let at = |v: &View<'_, L>, attempt: u32| -> Option<usize> {
        let i = *v.svc.plan.table.get(maglev::slot(k, attempt, m))?;
        (i != maglev::NONE).then_some(i as usize)
    };
    let i = at(v, 0)?;
    if v.usable(i) {
        return Some(i);
    }
    if !v.svc.plan.flags.fallback {
        return None;
    }
    for attempt in 1..=MH_FALLBACK_TRIES {
        let i = at(v, attempt)?;
        if v.usable(i) {
            return Some(i);
        }
    }
    let n = v.n();
    let start = maglev::slot(k, MH_FALLBACK_TRIES + 1, n);
    (0..n).map(|j| (start + j) % n).find(|&i| v.usable(i))
}

/// lblc/lblcr's own overload test: more active connections than its weight while some server
/// is below half its weight.
fn locality_overloaded<L: Loads + ?Sized>(v: &View<'_, L>, i: usize) -> bool {
    if v.conns(i).0 <= u64::from(v.weight(i)) {
        return false;
    }
    (0..v.n()).any(|d| v.conns(d).0.saturating_mul(2) < u64::from(v.weight(d)))
}

/// A set member as a server index of service `svc` in `snap`, if it is still there.
fn resolve(snap: &Snapshot, svc: usize, m: Member) -> Option<usize> {
    snap.server_by_slot(m.slot)
        .filter(|r| r.id == m.id && r.svc as usize == svc)
        .map(|r| r.rs as usize)
}

fn member(v: &View<'_, impl Loads + ?Sized>, i: usize) -> Option<Member> {
    v.svc.servers.get(i).map(|r| Member {
        slot: r.slot,
        id: r.id,
    })
}

/// Locality-based least connection: the server this destination address went to last, unless
/// it has weight 0, is overloaded (thresholds) or is locality-overloaded; otherwise a new one
/// by weighted least connection, remembered for the destination.
fn lblc<L: Loads + ?Sized>(
    loc: &mut Locality,
    snap: &Snapshot,
    svc: usize,
    v: &mut View<'_, L>,
    key: &FlowKey,
    now_s: u32,
) -> Option<usize> {
    let sid = v.svc.id;
    if let Some(e) = loc.find(sid, key.dst, now_s) {
        e.used = now_s;
        if let Some(i) = e.members().first().and_then(|&m| resolve(snap, svc, m)) {
            if v.weight(i) > 0 && !v.overloaded(i) && !locality_overloaded(v, i) {
                return Some(i);
            }
        }
    }
    let i = weighted_least(v, conn_overhead)?;
    if let (Some(e), Some(m)) = (loc.insert(sid, key.dst, now_s), member(v, i)) {
        e.push_front(m);
    }
    Some(i)
}

/// IPVS `ip_vs_dest_set_min`: the weighted least-connection member (not overloaded, weight > 0).
fn set_min<L: Loads + ?Sized>(
    e: &LocEntry,
    snap: &Snapshot,
    svc: usize,
    v: &mut View<'_, L>,
) -> Option<usize> {
    let mut least: Option<(usize, u64, u32)> = None;
    for &m in e.members() {
        let Some(i) = resolve(snap, svc, m) else {
            continue;
        };
        let (a, ia) = v.conns(i);
        if v.overloaded_at(i, a.saturating_add(ia)) {
            continue;
        }
        let (w, doh) = (v.weight(i), conn_overhead(a, ia));
        match least {
            None if w > 0 => least = Some((i, doh, w)),
            None => {}
            Some((_, loh, lw)) if heavier(loh, lw, doh, w) => least = Some((i, doh, w)),
            Some(_) => {}
        }
    }
    least.map(|l| l.0)
}

/// IPVS `ip_vs_dest_set_max`: the most loaded member per unit of weight (weight > 0).
fn set_max<L: Loads + ?Sized>(
    e: &LocEntry,
    snap: &Snapshot,
    svc: usize,
    v: &View<'_, L>,
) -> Option<Member> {
    let mut most: Option<(Member, u64, u32)> = None;
    for &m in e.members() {
        let Some(i) = resolve(snap, svc, m) else {
            continue;
        };
        let w = v.weight(i);
        if w == 0 {
            continue;
        }
        let (a, ia) = v.conns(i);
        let doh = conn_overhead(a, ia);
        if most.map_or(true, |(_, moh, mw)| heavier(doh, w, moh, mw)) {
            most = Some((m, doh, w));
        }
    }
    most.map(|x| x.0)
}

/// Locality-based least connection with replication: each destination address has a set of
/// servers; use its weighted least-connection member unless that is locality-overloaded, in
/// which case a server chosen by weighted least connection over the whole service joins the
/// set. A set unchanged for [`LOCALITY_EXPIRE_S`] sheds its most loaded member.
fn lblcr<L: Loads + ?Sized>(
    loc: &mut Locality,
    snap: &Snapshot,
    svc: usize,
    v: &mut View<'_, L>,
    key: &FlowKey,
    now_s: u32,
) -> Option<usize> {
    let sid = v.svc.id;
    if let Some(e) = loc.find(sid, key.dst, now_s) {
        e.used = now_s;
        // Members whose server was deleted leave the set.
        let mut k = 0;
        while k < e.members().len() {
            let m = e.members[k];
            if resolve(snap, svc, m).is_none() {
                e.remove(m);
            } else {
                k += 1;
            }
        }
        let dest = set_min(e, snap, svc, v);
        if e.members().len() > 1 && now_s.wrapping_sub(e.lastmod) > LOCALITY_EXPIRE_S {
            if let Some(m) = set_max(e, snap, svc, v) {
                e.remove(m);
                e.lastmod = now_s;
            }
        }
        if let Some(i) = dest.filter(|&i| !locality_overloaded(v, i)) {
            return Some(i);
        }
        let i = weighted_least(v, conn_overhead)?;
        if let Some(m) = member(v, i) {
            if !e.members().contains(&m) {
                e.push_front(m);
                e.lastmod = now_s;
            }
        }
        return Some(i);
    }
    let i = weighted_least(v, conn_overhead)?;
    if let (Some(e), Some(m)) = (loc.insert(sid, key.dst, now_s), member(v, i)) {
        e.push_front(m);
    }
    Some(i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Forward, Model, ModelError, Protocol, ServiceKey, ServiceSpec};
    use crate::neigh::NeighTable;
    use crate::stats::bump;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    const MAX: usize = 64;
    /// 198.18.0.100, the VIP.
    const VIP: u32 = 0xc612_0064;

    fn svc_key() -> ServiceKey {
        ServiceKey {
            proto: Protocol::Tcp,
            vip: Ipv4Addr::from(VIP),
            port: 80,
        }
    }

    fn server(i: usize, (weight, upper, lower): (u32, u32, u32)) -> ServerSpec {
        ServerSpec {
            addr: Ipv4Addr::new(198, 18, 1, 1 + i as u8),
            port: 0,
            weight,
            forward: Forward::Dr,
            upper,
            lower,
        }
    }

    /// A model with one service; servers are (weight, upper, lower), addresses 198.18.1.1..,
    /// stats slots 0.. in order.
    fn model(kind: SchedulerKind, flags: &[&str], servers: &[(u32, u32, u32)]) -> Model {
        let mut m = Model::new(4, MAX as u32);
        m.add_service(ServiceSpec {
            key: svc_key(),
            scheduler: kind,
            persistent: None,
            netmask: Ipv4Addr::BROADCAST,
            flags: flags.iter().map(|s| s.to_string()).collect(),
        })
        .unwrap();
        for (i, &s) in servers.iter().enumerate() {
            m.add_server(&svc_key(), server(i, s)).unwrap();
        }
        m
    }

    fn snap_of(m: &Model) -> Snapshot {
        let neigh = NeighTable::new(256);
        for s in m.services() {
            for r in &s.servers {
                neigh.insert(r.spec.addr).unwrap();
            }
        }
        Snapshot::build(m, 1, MAX, &neigh).unwrap()
    }

    fn snap(kind: SchedulerKind, flags: &[&str], servers: &[(u32, u32, u32)]) -> Snapshot {
        snap_of(&model(kind, flags, servers))
    }

    /// Plain weights, no thresholds.
    fn ws(w: &[u32]) -> Vec<(u32, u32, u32)> {
        w.iter().map(|&w| (w, 0, 0)).collect()
    }

    /// (active, inactive) by slot.
    #[derive(Debug, Clone, Default)]
    struct Fake(Vec<(u64, u64)>);

    impl Loads for Fake {
        fn conns(&self, slot: u32) -> (u64, u64) {
            self.0.get(slot as usize).copied().unwrap_or((0, 0))
        }
    }

    fn active(a: &[u64]) -> Fake {
        Fake(a.iter().map(|&a| (a, 0)).collect())
    }

    fn flow(src: u32, sport: u16, dst: u32) -> FlowKey {
        FlowKey {
            src,
            dst,
            sport,
            dport: 80,
            proto: 6,
        }
    }

    fn key0() -> FlowKey {
        flow(0xc612_0207, 1234, VIP)
    }

    fn one(s: &Snapshot, loads: &Fake) -> Option<usize> {
        Schedulers::new(4, MAX).pick(s, 0, &key0(), loads, 0)
    }

    fn seq(kind: SchedulerKind, w: &[u32], count: usize) -> Vec<Option<usize>> {
        let s = snap(kind, &[], &ws(w));
        let mut sc = Schedulers::new(4, MAX);
        (0..count)
            .map(|_| sc.pick(&s, 0, &key0(), &NoLoads, 0))
            .collect()
    }

    fn some(v: &[usize]) -> Vec<Option<usize>> {
        v.iter().map(|&i| Some(i)).collect()
    }

    #[test]
    fn rr_cycles_in_order_and_skips_weight_zero() {
        assert_eq!(
            seq(SchedulerKind::Rr, &[1, 1, 1], 7),
            some(&[0, 1, 2, 0, 1, 2, 0])
        );
        assert_eq!(
            seq(SchedulerKind::Rr, &[1, 0, 5], 5),
            some(&[0, 2, 0, 2, 0])
        );
        assert_eq!(seq(SchedulerKind::Rr, &[0, 0], 2), vec![None, None]);
        assert_eq!(seq(SchedulerKind::Rr, &[], 1), vec![None]);
    }

    #[test]
    fn wrr_three_to_one_is_the_ipvs_sequence() {
        assert_eq!(
            seq(SchedulerKind::Wrr, &[3, 1], 8),
            some(&[0, 0, 0, 1, 0, 0, 0, 1])
        );
    }

    #[test]
    fn wrr_interleaves_by_gcd_and_skips_zero() {
        // weights 4:2:0:2, gcd 2, max 4: levels 4 and 2.
        assert_eq!(
            seq(SchedulerKind::Wrr, &[4, 2, 0, 2], 8),
            some(&[0, 0, 1, 3, 0, 0, 1, 3])
        );
        // 5:3:1 over one full period gives exactly 5, 3, 1 picks.
        assert_eq!(
            seq(SchedulerKind::Wrr, &[5, 3, 1], 9),
            some(&[0, 0, 0, 1, 0, 1, 0, 1, 2])
        );
    }

    #[test]
    fn wrr_all_zero_gives_none() {
        assert_eq!(seq(SchedulerKind::Wrr, &[0, 0, 0], 3), vec![None; 3]);
        assert_eq!(wrr_params([0, 0]), (0, 0));
        assert_eq!(wrr_params([6, 0, 4]), (2, 6));
    }

    #[test]
    fn rr_and_wrr_skip_overloaded_servers() {
        // Server 0 has upper threshold 2 and 2 connections: overloaded.
        let s = snap(SchedulerKind::Rr, &[], &[(1, 2, 0), (1, 0, 0), (1, 0, 0)]);
        let loads = Fake(vec![(1, 1), (0, 0), (0, 0)]);
        let mut sc = Schedulers::new(4, MAX);
        let got: Vec<_> = (0..4).map(|_| sc.pick(&s, 0, &key0(), &loads, 0)).collect();
        assert_eq!(got, some(&[1, 2, 1, 2]));
        // wrr 100:1 with the weight-100 server overloaded: the walk skips the empty levels.
        let s = snap(SchedulerKind::Wrr, &[], &[(100, 1, 0), (1, 0, 0)]);
        let loads = Fake(vec![(1, 0), (0, 0)]);
        let mut sc = Schedulers::new(4, MAX);
        let got: Vec<_> = (0..3).map(|_| sc.pick(&s, 0, &key0(), &loads, 0)).collect();
        assert_eq!(got, some(&[1, 1, 1]));
        // Everything overloaded: no choice, no endless walk.
        let loads = Fake(vec![(1, 0), (0, 0)]);
        let s = snap(SchedulerKind::Wrr, &[], &[(100, 1, 0), (1, 0, 0)]);
        let s2 = snap(SchedulerKind::Wrr, &[], &[(100, 1, 0), (0, 0, 0)]);
        assert_eq!(one(&s, &loads), Some(1));
        assert_eq!(one(&s2, &loads), None);
    }

    #[test]
    fn epoch_change_resets_cursors() {
        let s = snap(SchedulerKind::Rr, &[], &ws(&[1, 1]));
        let mut sc = Schedulers::new(2, MAX);
        sc.sync_epoch(1);
        let k = key0();
        assert_eq!(sc.pick(&s, 0, &k, &NoLoads, 0), Some(0));
        assert_eq!(sc.pick(&s, 0, &k, &NoLoads, 0), Some(1));
        sc.sync_epoch(1);
        assert_eq!(sc.pick(&s, 0, &k, &NoLoads, 0), Some(0));
        sc.sync_epoch(2);
        assert_eq!(sc.pick(&s, 0, &k, &NoLoads, 0), Some(0));
        // out-of-range service index: no panic, no choice
        assert_eq!(sc.pick(&s, 5, &k, &NoLoads, 0), None);
    }

    #[test]
    fn thresholds_have_ipvs_hysteresis() {
        // upper 4, lower 2 on server 0; server 1 is the alternative.
        let s = snap(SchedulerKind::Fo, &[], &[(9, 4, 2), (1, 0, 0)]);
        let mut sc = Schedulers::new(4, MAX);
        let mut at = |total: u64| sc.pick(&s, 0, &key0(), &Fake(vec![(total, 0), (0, 0)]), 0);
        assert_eq!(at(3), Some(0));
        assert_eq!(at(4), Some(1), "reached upper: overloaded");
        assert_eq!(at(3), Some(1), "still overloaded above lower");
        assert_eq!(at(2), Some(1), "not below lower yet");
        assert_eq!(at(1), Some(0), "below lower: back");
        assert_eq!(at(3), Some(0), "below upper and not overloaded");
        // lower 0: back below 3/4 of upper (upper 4: total*4 < 12, i.e. total <= 2).
        let s = snap(SchedulerKind::Fo, &[], &[(9, 4, 0), (1, 0, 0)]);
        let mut sc = Schedulers::new(4, MAX);
        let mut at = |a: u64, i: u64| sc.pick(&s, 0, &key0(), &Fake(vec![(a, i), (0, 0)]), 0);
        assert_eq!(at(2, 2), Some(1), "active + inactive count");
        assert_eq!(at(3, 0), Some(1));
        assert_eq!(at(2, 0), Some(0));
    }

    #[test]
    fn lc_least_overhead_first_on_ties_skips_weight_zero() {
        let s = snap(SchedulerKind::Lc, &[], &ws(&[1, 1, 1]));
        // overheads 256, 300, 10
        assert_eq!(one(&s, &Fake(vec![(1, 0), (0, 300), (0, 10)])), Some(2));
        // 256 + 1 vs 0 + 256 vs 256
        assert_eq!(one(&s, &Fake(vec![(1, 1), (0, 256), (1, 0)])), Some(1));
        assert_eq!(one(&s, &Fake(vec![(0, 5), (0, 5), (0, 5)])), Some(0));
        // lc ignores weights except 0
        let s = snap(SchedulerKind::Lc, &[], &ws(&[0, 1, 100]));
        assert_eq!(one(&s, &Fake(vec![(0, 0), (1, 0), (2, 0)])), Some(1));
        let s = snap(SchedulerKind::Lc, &[], &ws(&[0, 0]));
        assert_eq!(one(&s, &Fake::default()), None);
    }

    #[test]
    fn wlc_overhead_per_weight_strictly_lighter_replaces() {
        let s = snap(SchedulerKind::Wlc, &[], &ws(&[1, 3]));
        // 256/1 vs 512/3
        assert_eq!(one(&s, &active(&[1, 2])), Some(1));
        // 256/1 vs 768/3: tie keeps the first
        assert_eq!(one(&s, &active(&[1, 3])), Some(0));
        // inactive counts 1/256 of an active one: 256/1 vs (768 + 1)/3
        assert_eq!(one(&s, &Fake(vec![(1, 0), (3, 1)])), Some(0));
        let s = snap(SchedulerKind::Wlc, &[], &ws(&[0, 1, 1]));
        assert_eq!(one(&s, &Fake::default()), Some(1));
        assert_eq!(one(&s, &active(&[0, 1, 0])), Some(2));
    }

    #[test]
    fn sed_counts_active_plus_one_per_weight() {
        let s = snap(SchedulerKind::Sed, &[], &ws(&[1, 2]));
        // (0+1)/1 vs (1+1)/2: tie, first
        assert_eq!(one(&s, &active(&[0, 1])), Some(0));
        // 2/1 vs 2/2
        assert_eq!(one(&s, &active(&[1, 1])), Some(1));
        // inactive connections do not count
        assert_eq!(one(&s, &Fake(vec![(0, 1000), (1, 0)])), Some(0));
        // sed prefers the big idle-ish server: 4/5 < 1/1 ...
        let s = snap(SchedulerKind::Sed, &[], &ws(&[5, 1]));
        assert_eq!(one(&s, &active(&[3, 0])), Some(0));
    }

    #[test]
    fn nq_takes_an_idle_server_first() {
        // ... while nq takes the idle one.
        let s = snap(SchedulerKind::Nq, &[], &ws(&[5, 1]));
        assert_eq!(one(&s, &active(&[3, 0])), Some(1));
        // none idle: as sed, 2/1 vs 4/4
        let s = snap(SchedulerKind::Nq, &[], &ws(&[1, 4]));
        assert_eq!(one(&s, &active(&[1, 3])), Some(1));
        assert_eq!(one(&s, &active(&[1, 7])), Some(0), "2/1 vs 8/4: tie, first");
        // the first idle one, not the biggest
        let s = snap(SchedulerKind::Nq, &[], &ws(&[1, 1, 9]));
        assert_eq!(one(&s, &active(&[1, 0, 0])), Some(1));
        // idle but weight 0: skipped
        let s = snap(SchedulerKind::Nq, &[], &ws(&[0, 1]));
        assert_eq!(one(&s, &active(&[0, 7])), Some(1));
    }

    #[test]
    fn fo_highest_weight_first_on_ties() {
        let s = snap(
            SchedulerKind::Fo,
            &[],
            &[(2, 0, 0), (5, 1, 0), (5, 0, 0), (1, 0, 0)],
        );
        assert_eq!(one(&s, &Fake::default()), Some(1));
        // server 1 overloaded (upper 1)
        assert_eq!(one(&s, &Fake(vec![(0, 0), (0, 1)])), Some(2));
        let s = snap(SchedulerKind::Fo, &[], &ws(&[0, 0]));
        assert_eq!(one(&s, &Fake::default()), None);
    }

    #[test]
    fn ovf_highest_weight_until_active_exceeds_weight() {
        let s = snap(SchedulerKind::Ovf, &[], &ws(&[3, 5]));
        assert_eq!(one(&s, &active(&[0, 4])), Some(1));
        // IPVS skips a server only when active > weight: 5 of 5 still qualifies
        assert_eq!(one(&s, &active(&[0, 5])), Some(1));
        assert_eq!(one(&s, &active(&[0, 6])), Some(0));
        assert_eq!(one(&s, &active(&[4, 6])), None);
        let s = snap(SchedulerKind::Ovf, &[], &ws(&[5, 5, 0]));
        assert_eq!(one(&s, &active(&[1, 0, 0])), Some(0), "tie: first");
    }

    #[test]
    fn dh_hashes_the_destination_over_256_buckets() {
        // (0xc6120064 * 2654435761) mod 256 = (0x64 * 0xb1) mod 256 = 17700 mod 256 = 36.
        let s = snap(SchedulerKind::Dh, &[], &ws(&[1, 1, 1]));
        assert_eq!(s.services[0].plan.table().len(), HASH_BUCKETS);
        assert_eq!(one(&s, &Fake::default()), Some(0)); // bucket 36 -> 36 mod 3
        let s = snap(SchedulerKind::Dh, &[], &ws(&[1, 9, 1, 1, 1]));
        assert_eq!(one(&s, &Fake::default()), Some(1)); // 36 mod 5, weights ignored
                                                        // the source does not matter
        let mut sc = Schedulers::new(4, MAX);
        for src in 0..50 {
            assert_eq!(sc.pick(&s, 0, &flow(src, 7, VIP), &NoLoads, 0), Some(1));
        }
        // its server at weight 0 or overloaded: no choice (dh has no fallback)
        let s = snap(
            SchedulerKind::Dh,
            &[],
            &[(1, 0, 0), (0, 0, 0), (1, 0, 0), (1, 0, 0), (1, 0, 0)],
        );
        assert_eq!(one(&s, &Fake::default()), None);
        let s = snap(
            SchedulerKind::Dh,
            &[],
            &[(1, 0, 0), (1, 3, 0), (1, 0, 0), (1, 0, 0), (1, 0, 0)],
        );
        assert_eq!(one(&s, &Fake(vec![(0, 0), (3, 0)])), None);
        assert_eq!(one(&s, &Fake(vec![(0, 0), (2, 0)])), Some(1));
    }

    #[test]
    fn sh_buckets_follow_weights_and_hash_the_source() {
        let s = snap(SchedulerKind::Sh, &[], &ws(&[2, 1, 0]));
        // each server takes `weight` consecutive buckets, weight 0 still one
        assert_eq!(&s.services[0].plan.table()[..8], &[0, 0, 1, 2, 0, 0, 1, 2]);
        // src 198.18.2.7: hash_32(0xc6120207, 8) = 152; with sport 1234 (sh-port): 241.
        let s = snap(SchedulerKind::Sh, &[], &ws(&[1, 1, 1]));
        assert_eq!(one(&s, &Fake::default()), Some(2)); // 152 mod 3
        let s = snap(SchedulerKind::Sh, &["sh-port"], &ws(&[1, 1, 1]));
        assert_eq!(one(&s, &Fake::default()), Some(1)); // 241 mod 3
                                                        // bucket 152 -> server 2 at weight 0: nothing, unless sh-fallback, which probes from
                                                        // bucket 2 * 152 mod 256 = 48 -> server 0.
        let s = snap(SchedulerKind::Sh, &[], &ws(&[1, 1, 0]));
        assert_eq!(one(&s, &Fake::default()), None);
        let s = snap(SchedulerKind::Sh, &["sh-fallback"], &ws(&[1, 1, 0]));
        assert_eq!(one(&s, &Fake::default()), Some(0));
        let s = snap(SchedulerKind::Sh, &["sh-fallback"], &ws(&[0, 0, 0]));
        assert_eq!(one(&s, &Fake::default()), None);
    }

    #[test]
    fn mh_is_stable_skips_weight_zero_and_falls_back() {
        let s = snap(SchedulerKind::Mh, &[], &ws(&[1, 1, 1, 1]));
        assert_eq!(s.services[0].plan.table().len(), maglev::DEFAULT_SIZE);
        let mut sc = Schedulers::new(4, MAX);
        let mut seen = [0usize; 4];
        for src in 0..2000u32 {
            let k = flow(0x0a00_0000 + src, 1, VIP);
            let a = sc.pick(&s, 0, &k, &NoLoads, 0).unwrap();
            // same key, any port, other destination: same server
            let b = sc.pick(&s, 0, &flow(k.src, 999, 1), &NoLoads, 0).unwrap();
            assert_eq!(a, b);
            seen[a] += 1;
        }
        assert!(seen.iter().all(|&c| c > 350), "{seen:?}");
        // mh-port: the port moves some keys
        let s = snap(SchedulerKind::Mh, &["mh-port"], &ws(&[1, 1, 1, 1]));
        let differ = (0..200u16)
            .filter(|&p| {
                sc.pick(&s, 0, &flow(7, p, VIP), &NoLoads, 0)
                    != sc.pick(&s, 0, &flow(7, 0, VIP), &NoLoads, 0)
            })
            .count();
        assert!(differ > 100, "{differ}");
        // server 1 overloaded: its keys get nothing, or (mh-fallback) another server
        let loads = Fake(vec![(0, 0), (5, 0)]);
        let s = snap(SchedulerKind::Mh, &[], &[(1, 0, 0), (1, 5, 0), (1, 0, 0)]);
        let f = snap(
            SchedulerKind::Mh,
            &["mh-fallback"],
            &[(1, 0, 0), (1, 5, 0), (1, 0, 0)],
        );
        let (mut none, mut moved) = (0, 0);
        for src in 0..3000u32 {
            let k = flow(src, 0, VIP);
            let plain = sc.pick(&s, 0, &k, &NoLoads, 0);
            let a = sc.pick(&s, 0, &k, &loads, 0);
            let b = sc.pick(&f, 0, &k, &loads, 0);
            assert_ne!(b, Some(1));
            if plain == Some(1) {
                assert_eq!(a, None);
                moved += 1;
            } else {
                assert_eq!(a, plain);
                assert_eq!(b, plain, "keys of usable servers stay");
                none += 1;
            }
        }
        assert!(moved > 800 && none > 1600, "{moved} {none}");
        // weight 0 never chosen, even with fallback
        let s = snap(SchedulerKind::Mh, &["mh-fallback"], &ws(&[1, 0, 1]));
        assert!((0..1000).all(|src| sc.pick(&s, 0, &flow(src, 0, VIP), &NoLoads, 0) != Some(1)));
        let s = snap(SchedulerKind::Mh, &["mh-fallback"], &ws(&[0, 0]));
        assert_eq!(one(&s, &Fake::default()), None);
    }

    #[test]
    fn lblc_sticks_to_the_destination_until_overloaded() {
        let s = snap(SchedulerKind::Lblc, &[], &ws(&[1, 2, 2]));
        let mut sc = Schedulers::new(4, MAX);
        let d1 = flow(1, 1, 0x0a00_0001);
        let d2 = flow(1, 1, 0x0a00_0002);
        // first: wlc over the service: 256/1 vs 0/2 -> 1
        assert_eq!(sc.pick(&s, 0, &d1, &active(&[1, 0, 0]), 0), Some(1));
        // then it sticks even though server 2 is now lighter
        assert_eq!(sc.pick(&s, 0, &d1, &active(&[0, 2, 0]), 5), Some(1));
        // a new destination is scheduled on its own
        assert_eq!(sc.pick(&s, 0, &d2, &active(&[0, 2, 0]), 5), Some(0));
        // active 3 > weight 2 while server 0 has 0*2 < 1: locality-overloaded, reschedule
        assert_eq!(sc.pick(&s, 0, &d1, &active(&[0, 3, 2]), 6), Some(0));
        // ... and the new choice is remembered
        assert_eq!(sc.pick(&s, 0, &d1, &active(&[0, 0, 0]), 7), Some(0));
        // active > weight but nobody below half its weight: not overloaded, stays
        assert_eq!(sc.pick(&s, 0, &d1, &active(&[2, 1, 1]), 8), Some(0));
        // forgotten after 24 hours unused
        assert_eq!(
            sc.pick(&s, 0, &d1, &active(&[1, 0, 0]), 8 + LOCALITY_EXPIRE_S),
            Some(1)
        );
        // weight 0 (edit) -> reschedule
        let s0 = snap(SchedulerKind::Lblc, &[], &ws(&[1, 0, 2]));
        assert_eq!(
            sc.pick(&s0, 0, &d1, &NoLoads, 9 + LOCALITY_EXPIRE_S),
            Some(0)
        );
    }

    #[test]
    fn lblc_forgets_deleted_servers() {
        let mut m = model(SchedulerKind::Lblc, &[], &ws(&[1, 1]));
        let s = snap_of(&m);
        let mut sc = Schedulers::new(4, MAX);
        let d = flow(1, 1, 0x0a00_0001);
        assert_eq!(sc.pick(&s, 0, &d, &active(&[5, 0]), 0), Some(1));
        m.delete_server(&svc_key(), Ipv4Addr::new(198, 18, 1, 2), 0)
            .unwrap();
        let s = snap_of(&m);
        assert_eq!(sc.pick(&s, 0, &d, &NoLoads, 1), Some(0));
        // a new server (the deleted one keeps slot 1 in the trash) is not mistaken for the
        // old one
        m.add_server(&svc_key(), server(5, (1, 0, 0))).unwrap();
        let s = snap_of(&m);
        assert_ne!(s.services[0].servers[1].slot, 1);
        assert_eq!(sc.pick(&s, 0, &d, &active(&[0, 0]), 2), Some(0));
    }

    #[test]
    fn lblcr_grows_the_set_when_overloaded_and_sheds_when_stale() {
        let s = snap(SchedulerKind::Lblcr, &[], &ws(&[2, 2, 2]));
        let mut sc = Schedulers::new(4, MAX);
        let d = flow(1, 1, 0x0a00_0001);
        // new destination: wlc -> 0
        assert_eq!(sc.pick(&s, 0, &d, &active(&[0, 0, 0]), 0), Some(0));
        // set {0}: 0 has 3 > 2 active while 2 has 0: overloaded; wlc over all -> 2 joins
        assert_eq!(sc.pick(&s, 0, &d, &active(&[3, 1, 0]), 1), Some(2));
        // set {2, 0}: the least loaded member, not the service's least loaded (1)
        assert_eq!(sc.pick(&s, 0, &d, &active(&[2, 0, 1]), 2), Some(2));
        assert_eq!(sc.pick(&s, 0, &d, &active(&[1, 0, 2]), 3), Some(0));
        // tie among members: the most recently added (head) first
        assert_eq!(sc.pick(&s, 0, &d, &active(&[1, 0, 1]), 4), Some(2));
        // the set last changed at 1 (2 joined); more than 24 hours later its most loaded
        // member (0: 512/2 against 256/2) is dropped, after the choice was made (2).
        let t = 1 + LOCALITY_EXPIRE_S;
        assert_eq!(sc.pick(&s, 0, &d, &active(&[2, 0, 1]), t), Some(2));
        assert_eq!(sc.pick(&s, 0, &d, &active(&[2, 0, 1]), t + 1), Some(2));
        // set {2} now: even with 0 idle, 2 is used
        assert_eq!(sc.pick(&s, 0, &d, &active(&[0, 0, 1]), t + 2), Some(2));
    }

    #[test]
    fn least_connection_counts_every_worker() {
        // Worker 1 holds many active flows on server 0; worker 0 decides.
        let reg = StatsRegistry::new(2, 4, MAX);
        let w1 = reg.worker(1).unwrap();
        bump(&w1.servers[0].active, 10);
        bump(&w1.servers[2].inactive, 3);
        for kind in [
            SchedulerKind::Lc,
            SchedulerKind::Wlc,
            SchedulerKind::Sed,
            SchedulerKind::Nq,
        ] {
            let s = snap(kind, &[], &ws(&[1, 1, 1]));
            let mut sc = Schedulers::new(4, MAX);
            assert_eq!(sc.pick(&s, 0, &key0(), &reg, 0), Some(1), "{kind}");
        }
        // thresholds see the other workers' flows too
        let w0 = reg.worker(0).unwrap();
        bump(&w0.servers[1].active, 1);
        let s = snap(SchedulerKind::Fo, &[], &[(9, 11, 0), (1, 0, 0)]);
        assert_eq!(one_with(&s, &reg), Some(0));
        bump(&w0.servers[0].inactive, 1);
        assert_eq!(one_with(&s, &reg), Some(1));
    }

    fn one_with(s: &Snapshot, l: &impl Loads) -> Option<usize> {
        Schedulers::new(4, MAX).pick(s, 0, &key0(), l, 0)
    }

    #[test]
    fn flags_and_support() {
        assert!(parse_flags(SchedulerKind::Rr, &[]).is_ok());
        let f =
            |k, v: &[&str]| parse_flags(k, &v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            f(SchedulerKind::Sh, &["sh-port"]),
            Ok(Flags {
                fallback: false,
                port: true
            })
        );
        assert_eq!(
            f(SchedulerKind::Mh, &["mh-fallback,mh-port"]),
            Ok(Flags {
                fallback: true,
                port: true
            })
        );
        assert_eq!(
            f(SchedulerKind::Sh, &["flag-1"]),
            Ok(Flags {
                fallback: true,
                port: false
            })
        );
        assert_eq!(f(SchedulerKind::Rr, &["flag-2"]), Ok(Flags::default()));
        assert_eq!(
            f(SchedulerKind::Rr, &["sh-port"]),
            Err(ModelError::Invalid(
                "incompatible scheduler flag `sh-port'".into()
            ))
        );
        assert_eq!(
            f(SchedulerKind::Sh, &["mh-port"]),
            Err(ModelError::Invalid(
                "incompatible scheduler flag `mh-port'".into()
            ))
        );
        assert_eq!(
            f(SchedulerKind::Sh, &["sh-bogus"]),
            Err(ModelError::Invalid(
                "invalid scheduler flag `sh-bogus'".into()
            ))
        );
        // the model validates with it
        let mut m = Model::new(2, 2);
        let mut spec = ServiceSpec {
            key: svc_key(),
            scheduler: SchedulerKind::Wlc,
            persistent: None,
            netmask: Ipv4Addr::BROADCAST,
            flags: vec!["sh-port".into()],
        };
        assert!(m.add_service(spec.clone()).is_err());
        spec.scheduler = SchedulerKind::Sh;
        assert!(m.add_service(spec).is_ok());
    }

    /// Count picks per server over `n` picks; `load` says how each pick changes the loads.
    fn shares(
        s: &Snapshot,
        n: usize,
        keys: impl Fn(usize) -> FlowKey,
        add_active: bool,
    ) -> Vec<usize> {
        let servers = &s.services[0].servers;
        let mut loads = Fake(vec![(0, 0); MAX]);
        let mut sc = Schedulers::new(4, MAX);
        let mut c = vec![0; servers.len()];
        for i in 0..n {
            let p = sc.pick(s, 0, &keys(i), &loads, 0).unwrap();
            c[p] += 1;
            if add_active {
                loads.0[servers[p].slot as usize].0 += 1;
            }
        }
        c
    }

    fn assert_proportional(c: &[usize], w: &[u32], tol: f64) -> Result<(), TestCaseError> {
        let total: f64 = c.iter().sum::<usize>() as f64;
        let wsum: f64 = w.iter().map(|&x| f64::from(x)).sum();
        for (i, (&got, &wi)) in c.iter().zip(w).enumerate() {
            let want = f64::from(wi) / wsum;
            let got = got as f64 / total;
            prop_assert!(
                (got - want).abs() <= tol,
                "server {i}: {got} vs {want} ({c:?} {w:?})"
            );
        }
        Ok(())
    }

    /// A pseudo-random key per index.
    fn rkey(i: usize) -> FlowKey {
        let h = maglev::mix64(i as u64);
        flow(h as u32, (h >> 32) as u16, (h >> 48) as u32 | 0x0a00_0000)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]

        /// wrr over whole periods gives exactly the weights.
        #[test]
        fn wrr_shares_are_the_weights(w in proptest::collection::vec(0u32..20, 1..8)) {
            prop_assume!(w.iter().any(|&x| x > 0));
            let (g, _) = wrr_params(w.iter().copied());
            let period: u32 = w.iter().map(|&x| x / g).sum();
            let s = snap(SchedulerKind::Wrr, &[], &ws(&w));
            let c = shares(&s, period as usize * 5, rkey, false);
            for (i, &x) in w.iter().enumerate() {
                prop_assert_eq!(c[i] as u32, x / g * 5);
            }
        }

        /// wlc, sed and nq with connections that never close: shares follow the weights
        /// (lc: equal shares).
        #[test]
        fn least_connection_shares_follow_weights(w in proptest::collection::vec(1u32..20, 2..8)) {
            let wsum: u32 = w.iter().sum();
            for kind in [SchedulerKind::Wlc, SchedulerKind::Sed, SchedulerKind::Nq] {
                let s = snap(kind, &[], &ws(&w));
                let c = shares(&s, wsum as usize * 50, rkey, true);
                assert_proportional(&c, &w, 0.02)?;
            }
            let s = snap(SchedulerKind::Lc, &[], &ws(&w));
            let c = shares(&s, w.len() * 100, rkey, true);
            prop_assert!(c.iter().all(|&x| x == 100), "{:?}", c);
        }

        /// sh and mh over random sources: the same key always gets the same server, shares
        /// follow the weights; dh is stable per destination.
        #[test]
        fn hashing_is_stable_and_weighted(w in proptest::collection::vec(1u32..8, 2..10)) {
            for kind in [SchedulerKind::Sh, SchedulerKind::Mh] {
                let s = snap(kind, &[], &ws(&w));
                let mut sc = Schedulers::new(4, MAX);
                let c = shares(&s, 40_000, rkey, false);
                let tol = if kind == SchedulerKind::Sh { 0.03 } else { 0.02 };
                assert_proportional(&c, &w, tol)?;
                for i in 0..200 {
                    let k = rkey(i);
                    prop_assert_eq!(sc.pick(&s, 0, &k, &NoLoads, 0), sc.pick(&s, 0, &k, &NoLoads, 0));
                }
            }
            let s = snap(SchedulerKind::Dh, &[], &ws(&w));
            let mut sc = Schedulers::new(4, MAX);
            for i in 0..200 {
                let k = rkey(i);
                let other = flow(k.src ^ 0xffff, 1, k.dst);
                prop_assert_eq!(sc.pick(&s, 0, &k, &NoLoads, 0), sc.pick(&s, 0, &other, &NoLoads, 0));
            }
        }

        /// Removing one of N mh servers moves about 1/N of 100k random keys; adding it back
        /// moves about 1/N again (1/(N'+1) of the N' = N-1 remaining).
        #[test]
        fn mh_minimal_disruption(n in 5usize..20, gone in 0usize..20) {
            let gone = gone % n;
            let mut m = model(SchedulerKind::Mh, &[], &ws(&vec![1; n]));
            let full = snap_of(&m);
            m.delete_server(&svc_key(), Ipv4Addr::new(198, 18, 1, 1 + gone as u8), 0).unwrap();
            let less = snap_of(&m);
            m.add_server(&svc_key(), server(gone, (1, 0, 0))).unwrap();
            let back = snap_of(&m);
            let addr = |s: &Snapshot, i: Option<usize>| i.map(|i| s.services[0].servers[i].addr);
            let mut sc = Schedulers::new(4, MAX);
            let (mut removal, mut adding, mut owned) = (0usize, 0usize, 0usize);
            let keys = 100_000;
            for i in 0..keys {
                let k = rkey(i);
                let a = addr(&full, sc.pick(&full, 0, &k, &NoLoads, 0));
                let b = addr(&less, sc.pick(&less, 0, &k, &NoLoads, 0));
                let c = addr(&back, sc.pick(&back, 0, &k, &NoLoads, 0));
                removal += usize::from(a != b);
                adding += usize::from(b != c);
                owned += usize::from(a == Some(Ipv4Addr::new(198, 18, 1, 1 + gone as u8)));
                prop_assert_eq!(a, c, "same servers, same table");
            }
            let frac = |x: usize| x as f64 / keys as f64;
            let bound = 1.0 / n as f64 + 0.05;
            prop_assert!(frac(removal) < bound, "removal moved {}", frac(removal));
            prop_assert!(frac(adding) < bound, "adding moved {}", frac(adding));
            prop_assert!(removal >= owned, "every key of the removed server moved");
        }
    }
}
