//! Connection sync between directors (the role of IPVS's sync daemon): one plain thread, one
//! UDP socket on the kernel interface, speaking [`rvs_control::sync`]'s format.
//!
//! ```text
//! MASTER  workers ─► SyncRings out rings ─► this thread: Batch (≤ max_message) ─► UDP
//!         peer's dump request ─► rings.request_dump() ─► workers walk their tables into the
//!         out rings ─► all workers finished and rings drained ─► dump end to the requester
//! BACKUP  UDP ─► decode ─► rings.install (the worker the flow's RSS queue names)
//!         want_resync bumped (or at start) ─► dump request, again every 500 ms, until the
//!         dump end answering it or resync_timeout_ms ─► link.resynced
//! ```
//!
//! The role follows [`SyncLink::master`] (written by the VRRP runner): the thread switches the
//! workers' reporting on and off ([`SyncRings::set_sending`]) to match. Whatever the role, it
//! sends what the out rings hold (they only fill while sending or serving a dump), so a role
//! change never strands records. Records received while master are counted and dropped (two
//! masters: neither trusts the other's table).
//!
//! The socket: multicast (no peers configured) binds 0.0.0.0:port, joins [`SYNC_GROUP`] on the
//! DIP's interface and sends to the group with TTL 1 and loop off; unicast binds DIP:port (so
//! its datagrams leave from the DIP) and sends to each peer, accepting datagrams from the peers
//! only. Both are bound to the kernel interface (`ifname`, skipped when empty). Datagrams from
//! our own DIP are ignored, as are messages for another VRID.
//!
//! Bounded: one message buffer pending (at most `max_message` bytes: the records waiting for
//! the next flush, sent when full or `flush_ms` after its first record), one receive buffer,
//! at most [`RX_PER_ROUND`] datagrams and [`OUT_PER_ROUND`] records per round, a table of
//! [`MAX_SENDERS`] sequence trackers and [`MAX_REQUESTERS`] dump requesters. Nothing is
//! allocated per record. The socket is non-blocking; an idle round sleeps [`IDLE_SLEEP`].
//!
//! Loss: every message carries the sender's sequence number; a receiver counts the gaps
//! (`lost`). A sequence that goes backwards by less than [`REORDER_WINDOW`] is a duplicate or a
//! reordered message (not counted); further back, the sender restarted (senders start from a
//! clock-derived sequence so a restart rarely lands inside the window).

use rvs_control::ha::{SyncConfig, SyncLink, SYNC_GROUP};
use rvs_control::sync::{self as codec, Batch, Header, Message, FLAG_DUMP};
use rvs_dataplane::sync::{FlowRecord, SyncRings};
use serde::Serialize;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Datagrams read per round at most (then the out rings get their turn).
pub const RX_PER_ROUND: usize = 256;
/// Records taken from the out rings per round at most.
pub const OUT_PER_ROUND: usize = 4096;
/// Senders whose sequence is tracked (the oldest is forgotten past this).
pub const MAX_SENDERS: usize = 32;
/// Dump requesters queued at most.
pub const MAX_REQUESTERS: usize = 16;
/// How far back a sequence may go and still be a reordered message, not a restart.
pub const REORDER_WINDOW: u32 = 1 << 16;
/// The largest sequence jump counted as loss (further ahead is a sender that restarted).
pub const LOSS_WINDOW: u32 = 1 << 24;
/// How long an idle round sleeps.
pub const IDLE_SLEEP: Duration = Duration::from_millis(1);
/// A backup repeats its dump request this often until the dump ends.
pub const RESYNC_RETRY: Duration = Duration::from_millis(500);

/// What the sync thread needs besides the rings and the link.
#[derive(Debug, Clone)]
pub struct Options {
    /// The kernel interface of the data port (the socket is bound to it; empty = not bound).
    pub ifname: String,
    /// This director's address: the sender id, the unicast source, the multicast interface.
    pub dip: Ipv4Addr,
    /// The VRID of the VRRP instance sync follows (messages of other VRIDs are ignored).
    pub vrid: u8,
    pub cfg: SyncConfig,
}

/// The thread's counters (read by `stats`).
#[derive(Debug, Default)]
pub struct SyncStats {
    /// Datagrams sent (a message to N unicast peers counts N).
    pub msgs_sent: AtomicU64,
    /// Messages accepted (decoded, from a peer, for our VRID).
    pub msgs_received: AtomicU64,
    pub records_sent: AtomicU64,
    pub records_received: AtomicU64,
    /// Records received while master (not installed).
    pub records_ignored: AtomicU64,
    /// Messages missing from peers' sequences.
    pub lost: AtomicU64,
    pub decode_errors: AtomicU64,
    /// Datagrams from a non-peer (unicast) or for another VRID.
    pub foreign: AtomicU64,
    pub send_errors: AtomicU64,
    pub recv_errors: AtomicU64,
    /// Dump requests this director sent (as a backup resyncing).
    pub dumps_requested: AtomicU64,
    /// Dump requests received from peers while master.
    pub dump_requests_received: AtomicU64,
    /// Dump ends this director sent (one per requester served).
    pub dumps_served: AtomicU64,
    /// Dumps abandoned because the workers did not finish within resync_timeout_ms.
    pub dumps_abandoned: AtomicU64,
    pub resync_completed: AtomicU64,
    pub resync_timeouts: AtomicU64,
    /// Periodic whole-table refreshes this director sent as master (`refresh_ms`).
    pub refreshes: AtomicU64,
    /// The role the thread plays now: [`ROLE_MASTER`], [`ROLE_BACKUP`], or 0 before its first
    /// round.
    pub role: AtomicU8,
    /// Who the channel is (fixed at start).
    pub ident: SyncIdent,
}

/// [`SyncStats::role`]: sending (the instance sync follows is MASTER).
pub const ROLE_MASTER: u8 = 1;
/// [`SyncStats::role`]: receiving.
pub const ROLE_BACKUP: u8 = 2;

/// What `stats` → `sync` says of the channel besides its counters (what `rvsadm -L --daemon`
/// prints as ipvsadm's `mcast=` and `syncid=`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncIdent {
    /// The `[[vrrp.instance]]` whose state gives the role.
    pub instance: String,
    /// Its VRID: the sync id of the messages sent and accepted.
    pub vrid: u8,
    /// The kernel interface the socket is bound to (empty: not bound).
    pub interface: String,
    /// The UDP port.
    pub port: u16,
    /// Unicast peers; empty: the multicast group.
    pub peers: Vec<Ipv4Addr>,
}

impl SyncIdent {
    pub fn of(opts: &Options) -> Self {
        SyncIdent {
            instance: opts.cfg.instance.clone(),
            vrid: opts.vrid,
            interface: opts.ifname.clone(),
            port: opts.cfg.port,
            peers: opts.cfg.peers.clone(),
        }
    }
}

/// A copy of [`SyncStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SyncStatsSnapshot {
    pub msgs_sent: u64,
    pub msgs_received: u64,
    pub records_sent: u64,
    pub records_received: u64,
    pub records_ignored: u64,
    pub lost: u64,
    pub decode_errors: u64,
    pub foreign: u64,
    pub send_errors: u64,
    pub recv_errors: u64,
    pub dumps_requested: u64,
    pub dump_requests_received: u64,
    pub dumps_served: u64,
    pub dumps_abandoned: u64,
    pub resync_completed: u64,
    pub resync_timeouts: u64,
    pub refreshes: u64,
}

impl SyncStats {
    pub fn snapshot(&self) -> SyncStatsSnapshot {
        let g = |a: &AtomicU64| a.load(Relaxed);
        SyncStatsSnapshot {
            msgs_sent: g(&self.msgs_sent),
            msgs_received: g(&self.msgs_received),
            records_sent: g(&self.records_sent),
            records_received: g(&self.records_received),
            records_ignored: g(&self.records_ignored),
            lost: g(&self.lost),
            decode_errors: g(&self.decode_errors),
            foreign: g(&self.foreign),
            send_errors: g(&self.send_errors),
            recv_errors: g(&self.recv_errors),
            dumps_requested: g(&self.dumps_requested),
            dump_requests_received: g(&self.dump_requests_received),
            dumps_served: g(&self.dumps_served),
            dumps_abandoned: g(&self.dumps_abandoned),
            resync_completed: g(&self.resync_completed),
            resync_timeouts: g(&self.resync_timeouts),
            refreshes: g(&self.refreshes),
        }
    }

    /// The counters, the channel's identity and its role (`"master"`, `"backup"`, or null
    /// before the thread's first round), one flat object.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self.snapshot()).unwrap_or_default();
        if let (Some(o), Ok(serde_json::Value::Object(id))) =
            (v.as_object_mut(), serde_json::to_value(&self.ident))
        {
            o.extend(id);
            let role = match self.role.load(Relaxed) {
                ROLE_MASTER => serde_json::json!("master"),
                ROLE_BACKUP => serde_json::json!("backup"),
                _ => serde_json::Value::Null,
            };
            o.insert("role".into(), role);
        }
        v
    }
}

fn bump(a: &AtomicU64, n: u64) {
    a.fetch_add(n, Relaxed);
}

/// Open the socket as the module docs say.
fn open(opts: &Options) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    if !opts.ifname.is_empty() {
        s.bind_device(Some(opts.ifname.as_bytes()))?;
    }
    let multicast = opts.cfg.peers.is_empty();
    let ip = if multicast {
        Ipv4Addr::UNSPECIFIED
    } else {
        opts.dip
    };
    s.bind(&SocketAddrV4::new(ip, opts.cfg.port).into())?;
    if multicast {
        s.join_multicast_v4(&SYNC_GROUP, &opts.dip)?;
        s.set_multicast_if_v4(&opts.dip)?;
        s.set_multicast_ttl_v4(1)?;
        s.set_multicast_loop_v4(false)?;
    }
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// A start for sequence numbers and generations that differs from one run to the next.
fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_micros() as u64)
}

/// Start the sync thread. The socket is opened here (its errors are returned); the thread
/// runs until `stop` is set.
pub fn spawn(
    opts: Options,
    rings: Arc<SyncRings>,
    link: Arc<SyncLink>,
    stop: Arc<AtomicBool>,
) -> io::Result<(JoinHandle<()>, Arc<SyncStats>)> {
    let sock = open(&opts)?;
    let stats = Arc::new(SyncStats {
        ident: SyncIdent::of(&opts),
        ..SyncStats::default()
    });
    let dests = if opts.cfg.peers.is_empty() {
        vec![SocketAddrV4::new(SYNC_GROUP, opts.cfg.port)]
    } else {
        opts.cfg
            .peers
            .iter()
            .map(|p| SocketAddrV4::new(*p, opts.cfg.port))
            .collect()
    };
    let seed = clock_seed();
    let tx = Tx {
        sock,
        dests,
        batch: Batch::new(opts.cfg.max_message),
        batch_since: None,
        // Sequence numbers start from the clock (restarts are told from reordering).
        seq: seed as u32,
        dip: opts.dip,
        vrid: opts.vrid,
        dumping: false,
        ctl: [0; 64],
        stats: stats.clone(),
    };
    let mut r = Runner {
        rx: vec![0; 65536],
        senders: Vec::with_capacity(MAX_SENDERS),
        resync: None,
        next_gen: seed,
        seen_want: link.want_resync.load(Acquire),
        serving: None,
        queued: Vec::with_capacity(MAX_REQUESTERS),
        was_master: None,
        last_refresh: Instant::now(),
        flush: Duration::from_millis(u64::from(opts.cfg.flush_ms.max(1))),
        resync_timeout: Duration::from_millis(u64::from(opts.cfg.resync_timeout_ms)),
        opts,
        rings,
        link,
        stats: stats.clone(),
        tx,
    };
    let h = std::thread::Builder::new()
        .name("rvs-sync".into())
        .spawn(move || r.run(&stop))?;
    Ok((h, stats))
}

/// The sending half: the socket, the pending message, the sequence.
struct Tx {
    sock: UdpSocket,
    dests: Vec<SocketAddrV4>,
    batch: Batch,
    /// When the pending message got its first record.
    batch_since: Option<Instant>,
    seq: u32,
    dip: Ipv4Addr,
    vrid: u8,
    /// A dump is being served (records are flagged DUMP).
    dumping: bool,
    /// The control messages' buffer.
    ctl: [u8; 64],
    stats: Arc<SyncStats>,
}

impl Tx {
    fn header(&mut self, flags: u8) -> Header {
        self.seq = self.seq.wrapping_add(1);
        Header {
            vrid: self.vrid,
            flags,
            sender: self.dip,
            seq: self.seq,
        }
    }

    /// Send `bytes` to every destination (a failed send is counted, never retried).
    fn send_bytes(sock: &UdpSocket, dests: &[SocketAddrV4], stats: &SyncStats, bytes: &[u8]) {
        for d in dests {
            match sock.send_to(bytes, d) {
                Ok(_) => bump(&stats.msgs_sent, 1),
                Err(e) => {
                    bump(&stats.send_errors, 1);
                    tracing::debug!("sync: send to {d}: {e}");
                }
            }
        }
    }

    /// Add a record to the pending message, sending it first if full.
    fn add(&mut self, r: &FlowRecord, now: Instant) {
        if !self.batch.push(r) {
            self.flush();
            self.batch.push(r);
        }
        if self.batch_since.is_none() {
            self.batch_since = Some(now);
        }
    }

    /// Send the pending message if it has been waiting `flush` or more.
    fn flush_due(&mut self, now: Instant, flush: Duration) {
        if self
            .batch_since
            .is_some_and(|t| now.duration_since(t) >= flush)
        {
            self.flush();
        }
    }

    /// Send the pending message now (if it holds records).
    fn flush(&mut self) {
        self.batch_since = None;
        if self.batch.is_empty() {
            return;
        }
        let flags = if self.dumping { FLAG_DUMP } else { 0 };
        let h = self.header(flags);
        let n = self.batch.len() as u64;
        let bytes = self.batch.finish(&h);
        Self::send_bytes(&self.sock, &self.dests, &self.stats, bytes);
        bump(&self.stats.records_sent, n);
        self.batch.clear();
    }

    fn control(&mut self, m: impl FnOnce(Header) -> Message<'static>) {
        let h = self.header(0);
        match codec::encode(&m(h), &mut self.ctl) {
            Ok(n) => {
                let bytes = self.ctl.get(..n).unwrap_or_default();
                Self::send_bytes(&self.sock, &self.dests, &self.stats, bytes);
            }
            Err(e) => tracing::warn!("sync: encoding a control message: {e}"),
        }
    }
}

/// A bulk resync this director (a backup) asked for.
struct Resync {
    generation: u64,
    started: Instant,
    last_request: Instant,
    received_at_start: u64,
}

/// A dump being served to its requesters.
struct Serving {
    /// The workers' dump generation.
    gen: u64,
    started: Instant,
    requesters: Vec<(Ipv4Addr, u64)>,
    sent_at_start: u64,
}

struct Runner {
    opts: Options,
    rings: Arc<SyncRings>,
    link: Arc<SyncLink>,
    stats: Arc<SyncStats>,
    tx: Tx,
    rx: Vec<u8>,
    /// Per sender: the last sequence seen.
    senders: Vec<(Ipv4Addr, u32)>,
    resync: Option<Resync>,
    next_gen: u64,
    seen_want: u64,
    serving: Option<Serving>,
    queued: Vec<(Ipv4Addr, u64)>,
    was_master: Option<bool>,
    /// When this director (as master) last sent its whole table, or became master.
    last_refresh: Instant,
    flush: Duration,
    resync_timeout: Duration,
}

impl Runner {
    fn run(&mut self, stop: &AtomicBool) {
        let bulk = self.opts.cfg.bulk_resync;
        self.link.resynced.store(!bulk, Release);
        if bulk && !self.link.master.load(Acquire) {
            self.start_resync(Instant::now(), "start");
        }
        tracing::info!(
            "sync: {} on {} port {} ({})",
            self.opts.dip,
            if self.opts.ifname.is_empty() {
                "any interface"
            } else {
                &self.opts.ifname
            },
            self.opts.cfg.port,
            if self.opts.cfg.peers.is_empty() {
                format!("multicast {SYNC_GROUP}")
            } else {
                format!("unicast to {:?}", self.opts.cfg.peers)
            }
        );
        while !stop.load(Relaxed) {
            let busy = self.round(Instant::now());
            if !busy {
                std::thread::sleep(IDLE_SLEEP);
            }
        }
        self.tx.flush();
        self.rings.set_sending(false);
    }

    /// One round; whether anything came in or went out.
    fn round(&mut self, now: Instant) -> bool {
        let master = self.link.master.load(Acquire);
        if self.was_master != Some(master) {
            self.was_master = Some(master);
            self.rings.set_sending(master);
            self.stats
                .role
                .store(if master { ROLE_MASTER } else { ROLE_BACKUP }, Relaxed);
            tracing::info!(
                "sync: {}",
                if master {
                    "master: sending"
                } else {
                    "backup: receiving"
                }
            );
            if master && self.resync.take().is_some() {
                tracing::info!("sync: became master during a resync; resync dropped");
            }
            if master {
                self.link.resynced.store(true, Release);
                self.last_refresh = now;
            }
        }
        let received = self.receive(master, now);
        let tx = &mut self.tx;
        let sent = self.rings.drain_out(OUT_PER_ROUND, |r| tx.add(&r, now));
        self.tx.flush_due(now, self.flush);
        self.refresh_tick(master, now);
        self.serve_dumps(now);
        self.resync_tick(master, now);
        received > 0 || sent > 0
    }

    fn receive(&mut self, master: bool, now: Instant) -> usize {
        let mut n = 0;
        while n < RX_PER_ROUND {
            match self.tx.sock.recv_from(&mut self.rx) {
                Ok((len, from)) => {
                    n += 1;
                    self.datagram(len, from, master, now);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // ICMP errors of earlier sends (a peer down) show up here: count, go on.
                    bump(&self.stats.recv_errors, 1);
                    tracing::debug!("sync: receive: {e}");
                    break;
                }
            }
        }
        n
    }

    fn datagram(&mut self, len: usize, from: SocketAddr, master: bool, now: Instant) {
        let SocketAddr::V4(from) = from else {
            return;
        };
        let src = *from.ip();
        if src == self.opts.dip {
            return;
        }
        if !self.opts.cfg.peers.is_empty() && !self.opts.cfg.peers.contains(&src) {
            bump(&self.stats.foreign, 1);
            return;
        }
        let bytes = self.rx.get(..len).unwrap_or_default();
        let m = match codec::decode(bytes) {
            Ok(m) => m,
            Err(e) => {
                bump(&self.stats.decode_errors, 1);
                tracing::debug!("sync: from {src}: {e}");
                return;
            }
        };
        let h = *m.header();
        if h.sender == self.opts.dip {
            return;
        }
        if h.vrid != self.opts.vrid {
            bump(&self.stats.foreign, 1);
            return;
        }
        bump(&self.stats.msgs_received, 1);
        track_sequence(&mut self.senders, h.sender, h.seq, &self.stats.lost);
        match m {
            Message::Records { records, .. } => {
                let k = records.len() as u64;
                bump(&self.stats.records_received, k);
                if master {
                    bump(&self.stats.records_ignored, k);
                } else {
                    for r in records.iter() {
                        // A full ring is counted by the rings (in_dropped).
                        self.rings.install(r);
                    }
                }
            }
            Message::DumpRequest { generation, .. } => {
                if master {
                    bump(&self.stats.dump_requests_received, 1);
                    self.queue_request(h.sender, generation);
                }
            }
            Message::DumpEnd {
                requester,
                generation,
                records,
                ..
            } => {
                let mine = requester == self.opts.dip
                    && self
                        .resync
                        .as_ref()
                        .is_some_and(|r| r.generation == generation);
                if let Some(r) = if mine { self.resync.take() } else { None } {
                    let got = self.stats.records_received.load(Relaxed) - r.received_at_start;
                    tracing::info!(
                        "sync: bulk resync from {} done in {} ms: {records} records sent, {got} received",
                        h.sender,
                        now.duration_since(r.started).as_millis()
                    );
                    bump(&self.stats.resync_completed, 1);
                    self.link.resynced.store(true, Release);
                }
            }
        }
    }

    /// Queue a peer's dump request (once per requester and generation).
    fn queue_request(&mut self, who: Ipv4Addr, generation: u64) {
        let dup = |v: &[(Ipv4Addr, u64)]| v.contains(&(who, generation));
        if dup(&self.queued) || self.serving.as_ref().is_some_and(|s| dup(&s.requesters)) {
            return;
        }
        if let Some(q) = self.queued.iter_mut().find(|q| q.0 == who) {
            q.1 = generation;
        } else if self.queued.len() < MAX_REQUESTERS {
            self.queued.push((who, generation));
        }
    }

    /// As master, every `refresh_ms`: send the whole table again (a dump nobody asked for), so
    /// the backups' copies of flows that only carry data do not time out there. Waits while
    /// another dump runs; a requested dump counts as a refresh.
    fn refresh_tick(&mut self, master: bool, now: Instant) {
        let every = Duration::from_millis(u64::from(self.opts.cfg.refresh_ms));
        if !master || every.is_zero() || now.duration_since(self.last_refresh) < every {
            return;
        }
        if self.serving.is_none() && self.queued.is_empty() {
            self.last_refresh = now;
            self.start_dump(now, true);
        }
    }

    /// Ask the workers for their tables on behalf of the queued requesters (none for a
    /// refresh).
    fn start_dump(&mut self, now: Instant, refresh: bool) {
        let gen = self.rings.request_dump();
        let requesters = std::mem::take(&mut self.queued);
        if refresh {
            bump(&self.stats.refreshes, 1);
            tracing::debug!("sync: refresh dump {gen}");
        } else {
            tracing::info!("sync: bulk dump {gen} for {requesters:?}");
            self.last_refresh = now;
        }
        self.serving = Some(Serving {
            gen,
            started: now,
            requesters,
            sent_at_start: self.stats.records_sent.load(Relaxed),
        });
        self.queued = Vec::with_capacity(MAX_REQUESTERS);
        self.tx.dumping = true;
    }

    /// Start a queued dump when none runs; end the running one when the workers are done.
    fn serve_dumps(&mut self, now: Instant) {
        if self.serving.is_none() && !self.queued.is_empty() {
            self.start_dump(now, false);
        }
        let Some(s) = &self.serving else { return };
        // Finished is read before the last drain: what a worker pushed before finishing is in
        // the rings by then.
        if !self.rings.dump_finished(s.gen) {
            if now.duration_since(s.started) > self.resync_timeout.max(RESYNC_RETRY) {
                tracing::warn!(
                    "sync: bulk dump {} not finished by the workers, abandoned",
                    s.gen
                );
                bump(&self.stats.dumps_abandoned, 1);
                self.serving = None;
                self.tx.dumping = false;
            }
            return;
        }
        let tx = &mut self.tx;
        let n = self.rings.drain_out(OUT_PER_ROUND, |r| tx.add(&r, now));
        if n >= OUT_PER_ROUND {
            return; // more next round
        }
        self.tx.flush();
        self.tx.dumping = false;
        let Some(s) = self.serving.take() else { return };
        let sent = self.stats.records_sent.load(Relaxed) - s.sent_at_start;
        let records = u32::try_from(sent).unwrap_or(u32::MAX);
        let served = !s.requesters.is_empty();
        for (requester, generation) in s.requesters {
            self.tx.control(|header| Message::DumpEnd {
                header,
                requester,
                generation,
                records,
            });
            bump(&self.stats.dumps_served, 1);
        }
        if served {
            tracing::info!(
                "sync: bulk dump {} done in {} ms, {sent} records",
                s.gen,
                now.duration_since(s.started).as_millis()
            );
        }
    }

    fn start_resync(&mut self, now: Instant, why: &str) {
        self.next_gen = self.next_gen.wrapping_add(1);
        let generation = self.next_gen;
        self.link.resynced.store(false, Release);
        tracing::info!("sync: asking for a bulk resync ({why})");
        self.resync = Some(Resync {
            generation,
            started: now,
            last_request: now,
            received_at_start: self.stats.records_received.load(Relaxed),
        });
        self.request(generation);
    }

    fn request(&mut self, generation: u64) {
        bump(&self.stats.dumps_requested, 1);
        self.tx
            .control(|header| Message::DumpRequest { header, generation });
    }

    fn resync_tick(&mut self, master: bool, now: Instant) {
        if !self.opts.cfg.bulk_resync {
            // Nothing to wait for: reopen the gate the VRRP runner closes on every entry to
            // BACKUP, so preemption is not held for `sync_wait` by a resync that never comes.
            self.link.resynced.store(true, Release);
            return;
        }
        // A request seen while still master (the runner bumps and demotes in either order)
        // waits until this director is a backup.
        let want = self.link.want_resync.load(Acquire);
        if want != self.seen_want && !master {
            self.seen_want = want;
            self.start_resync(now, "asked by VRRP");
        }
        let Some(r) = &mut self.resync else { return };
        if now.duration_since(r.started) >= self.resync_timeout {
            tracing::warn!(
                "sync: no bulk resync within {} ms; going on without",
                self.resync_timeout.as_millis()
            );
            self.resync = None;
            bump(&self.stats.resync_timeouts, 1);
            self.link.resynced.store(true, Release);
        } else if now.duration_since(r.last_request) >= RESYNC_RETRY {
            r.last_request = now;
            let g = r.generation;
            self.request(g);
        }
    }
}

/// Note sequence `seq` from `sender` and count the messages missing before it.
fn track_sequence(
    senders: &mut Vec<(Ipv4Addr, u32)>,
    sender: Ipv4Addr,
    seq: u32,
    lost: &AtomicU64,
) {
    let Some(pos) = senders.iter().position(|s| s.0 == sender) else {
        if senders.len() >= MAX_SENDERS {
            senders.remove(0);
        }
        senders.push((sender, seq));
        return;
    };
    let Some(last) = senders.get_mut(pos).map(|s| &mut s.1) else {
        return;
    };
    let ahead = seq.wrapping_sub(*last);
    let behind = last.wrapping_sub(seq);
    if ahead == 0 || behind < REORDER_WINDOW {
        return; // a duplicate or a late message
    }
    if ahead <= LOSS_WINDOW {
        bump(lost, u64::from(ahead - 1));
    }
    // Further ahead than that, or far behind: the sender restarted; start over from here.
    *last = seq;
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_dataplane::flow::FlowState;
    use std::sync::atomic::AtomicU64;

    fn rec(port: u16) -> FlowRecord {
        FlowRecord {
            proto: 6,
            state: FlowState::Established,
            client: u32::from(Ipv4Addr::new(198, 18, 10, 1)),
            client_port: port,
            vip: u32::from(Ipv4Addr::new(198, 18, 0, 100)),
            vport: 80,
            rs: u32::from(Ipv4Addr::new(198, 18, 0, 11)),
            rs_port: 80,
        }
    }

    /// A port free on 127.0.0.1 just now (the tests bind it on other loopback addresses).
    fn free_port() -> u16 {
        UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    fn opts(dip: [u8; 4], peers: &[[u8; 4]], port: u16) -> Options {
        let mut cfg = SyncConfig::new("VI_1");
        cfg.port = port;
        cfg.peers = peers.iter().map(|p| Ipv4Addr::from(*p)).collect();
        cfg.flush_ms = 5;
        cfg.resync_timeout_ms = 3000;
        Options {
            ifname: "lo".into(),
            dip: Ipv4Addr::from(dip),
            vrid: 51,
            cfg,
        }
    }

    fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
        let end = Instant::now() + Duration::from_secs(5);
        while !f() {
            assert!(Instant::now() < end, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Play the workers of `rings`: answer the pending dump with `recs`.
    fn workers_dump(rings: &SyncRings, recs: &[FlowRecord]) {
        wait_until("a dump request", || {
            rings.dump_requested() > rings.dump_done(0)
        });
        let gen = rings.dump_requested();
        for (i, r) in recs.iter().enumerate() {
            assert!(rings.push_out(i % rings.workers(), *r));
        }
        for w in 0..rings.workers() {
            rings.finish_dump(w, gen);
        }
    }

    fn drain_in(rings: &SyncRings, w: usize, into: &mut Vec<u16>) {
        while let Some(r) = rings.pop_in(w) {
            into.push(r.client_port);
        }
    }

    #[test]
    fn two_directors_sync_flows_and_resync_both_ways() {
        let port = free_port();
        let stop = Arc::new(AtomicBool::new(false));
        let (ra, rb) = (
            Arc::new(SyncRings::new(2, 512)),
            Arc::new(SyncRings::new(2, 512)),
        );
        let (la, lb) = (Arc::new(SyncLink::default()), Arc::new(SyncLink::default()));
        la.master.store(true, Relaxed);
        let (ha, sa) = spawn(
            opts([127, 0, 0, 1], &[[127, 0, 0, 2]], port),
            ra.clone(),
            la.clone(),
            stop.clone(),
        )
        .unwrap();
        let (hb, sb) = spawn(
            opts([127, 0, 0, 2], &[[127, 0, 0, 1]], port),
            rb.clone(),
            lb.clone(),
            stop.clone(),
        )
        .unwrap();

        // B starts as a backup: it asks A for the table; A's "workers" dump two flows.
        wait_until("A sending", || ra.sending());
        assert!(!lb.resynced.load(Relaxed), "a resync is pending");
        workers_dump(&ra, &[rec(1), rec(2)]);
        wait_until("B resynced", || lb.resynced.load(Relaxed));
        let (a, b) = (sa.snapshot(), sb.snapshot());
        assert_eq!(b.resync_completed, 1);
        assert!(b.dumps_requested >= 1);
        assert_eq!((a.dump_requests_received, a.dumps_served), (1, 1));
        // No router: each of B's workers gets a copy.
        let mut got = Vec::new();
        drain_in(&rb, 0, &mut got);
        got.sort();
        assert_eq!(got, [1, 2]);

        // Steady state: 150 new flows on A (three messages of at most 69) reach B.
        assert!(!rb.sending());
        for p in 100..250 {
            assert!(ra.push_out((p % 2) as usize, rec(p)));
        }
        let mut got = Vec::new();
        wait_until("150 records on B", || {
            drain_in(&rb, 1, &mut got);
            got.len() >= 152
        });
        assert_eq!(sb.snapshot().records_received, 152);
        assert_eq!(sb.snapshot().lost, 0);
        assert!(sa.snapshot().msgs_sent >= 4, "{:?}", sa.snapshot());

        // `stats` names the channel and the role each plays.
        let (ja, jb) = (sa.to_json(), sb.to_json());
        assert_eq!(
            (&ja["role"], &jb["role"]),
            (&serde_json::json!("master"), &serde_json::json!("backup"))
        );
        assert_eq!(jb["instance"], "VI_1");
        assert_eq!(jb["vrid"], 51);
        assert_eq!(jb["interface"], "lo");
        assert_eq!(jb["port"], port);
        assert_eq!(jb["peers"], serde_json::json!(["127.0.0.1"]));
        assert_eq!(jb["records_received"], 152);

        // Roles swap: B master, A backup asked by its VRRP runner to resync from B.
        la.master.store(false, Relaxed);
        lb.master.store(true, Relaxed);
        la.want_resync.fetch_add(1, Relaxed);
        wait_until("roles swapped", || rb.sending() && !ra.sending());
        wait_until("roles in stats", || {
            sa.to_json()["role"] == "backup" && sb.to_json()["role"] == "master"
        });
        workers_dump(&rb, &[rec(7)]);
        wait_until("A resynced", || {
            la.resynced.load(Relaxed) && sa.snapshot().resync_completed == 1
        });
        let mut got = Vec::new();
        drain_in(&ra, 0, &mut got);
        assert_eq!(got, [7]);
        assert_eq!(sb.snapshot().dumps_served, 1);
        assert_eq!(sa.snapshot().resync_timeouts, 0);

        stop.store(true, Relaxed);
        ha.join().unwrap();
        hb.join().unwrap();
        assert!(!ra.sending() && !rb.sending(), "stopped: nothing reported");
    }

    /// A fake peer at 127.0.0.3 sends `m` to the director under test.
    fn send(peer: &UdpSocket, to: SocketAddrV4, m: &Message<'_>) {
        let mut buf = [0u8; 1500];
        let n = codec::encode(m, &mut buf).unwrap();
        peer.send_to(&buf[..n], to).unwrap();
    }

    fn records_msg(seq: u32, vrid: u8, recs: &[FlowRecord], buf: &mut [u8]) -> usize {
        let h = Header {
            vrid,
            flags: 0,
            sender: Ipv4Addr::new(127, 0, 0, 3),
            seq,
        };
        codec::encode_records(&h, recs, buf, 1400).unwrap().0
    }

    #[test]
    fn a_backup_counts_gaps_errors_and_strangers_and_times_out_resyncs() {
        let port = free_port();
        let stop = Arc::new(AtomicBool::new(false));
        let rings = Arc::new(SyncRings::new(1, 64));
        let link = Arc::new(SyncLink::default());
        let mut o = opts([127, 0, 0, 2], &[[127, 0, 0, 3]], port);
        o.cfg.resync_timeout_ms = 700;
        let me = SocketAddrV4::new(o.dip, port);
        // The peer listens where B sends (127.0.0.3:port).
        let peer = UdpSocket::bind(("127.0.0.3", port)).unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let started = Instant::now();
        let (h, stats) = spawn(o, rings.clone(), link.clone(), stop.clone()).unwrap();

        // The start's dump request, repeated after 500 ms with the same generation, then
        // given up at 700 ms.
        let mut buf = [0u8; 1500];
        let mut gens = Vec::new();
        for _ in 0..2 {
            let n = peer.recv(&mut buf).unwrap();
            let Ok(Message::DumpRequest { header, generation }) = codec::decode(&buf[..n]) else {
                panic!("not a dump request: {:?}", &buf[..n])
            };
            assert_eq!(
                (header.vrid, header.sender),
                (51, Ipv4Addr::new(127, 0, 0, 2))
            );
            gens.push(generation);
        }
        assert_eq!(gens[0], gens[1], "a retry asks for the same dump");
        wait_until("the resync timeout", || link.resynced.load(Relaxed));
        assert!(started.elapsed() >= Duration::from_millis(700));
        assert_eq!(stats.snapshot().resync_timeouts, 1);

        // Sequences 10, 11, 14: two messages lost; 12 late: not counted.
        let mut m = [0u8; 1500];
        for (seq, port) in [(10, 1), (11, 2), (14, 3), (12, 4)] {
            let n = records_msg(seq, 51, &[rec(port)], &mut m);
            peer.send_to(&m[..n], me).unwrap();
        }
        // Garbage, another VRID, a stranger (their sequences are not tracked).
        peer.send_to(b"RVSY\x09garbage", me).unwrap();
        let n = records_msg(100, 52, &[rec(9)], &mut m);
        peer.send_to(&m[..n], me).unwrap();
        let stranger = UdpSocket::bind(("127.0.0.4", 0)).unwrap();
        let n = records_msg(101, 51, &[rec(9)], &mut m);
        stranger.send_to(&m[..n], me).unwrap();
        let mut got = Vec::new();
        wait_until("the foreign messages counted", || {
            drain_in(&rings, 0, &mut got);
            let s = stats.snapshot();
            s.decode_errors == 1 && s.foreign == 2 && s.msgs_received == 4
        });
        assert_eq!(got, [1, 2, 3, 4]);
        assert_eq!(stats.snapshot().lost, 2);

        // VRRP asks again: a new generation, answered by a dump end this time.
        link.want_resync.fetch_add(1, Relaxed);
        let n = peer.recv(&mut buf).unwrap();
        let Ok(Message::DumpRequest { generation, .. }) = codec::decode(&buf[..n]) else {
            panic!("not a dump request")
        };
        assert_ne!(generation, gens[0]);
        assert!(!link.resynced.load(Relaxed));
        let end = |generation, seq| Message::DumpEnd {
            header: Header {
                vrid: 51,
                flags: 0,
                sender: Ipv4Addr::new(127, 0, 0, 3),
                seq,
            },
            requester: Ipv4Addr::new(127, 0, 0, 2),
            generation,
            records: 0,
        };
        // An old generation's end does not count.
        send(&peer, me, &end(gens[0], 15));
        std::thread::sleep(Duration::from_millis(50));
        assert!(!link.resynced.load(Relaxed));
        send(&peer, me, &end(generation, 16));
        wait_until("resynced", || link.resynced.load(Relaxed));
        assert_eq!(stats.snapshot().resync_completed, 1);
        assert_eq!(stats.snapshot().lost, 2);
        assert_eq!(stats.to_json()["resync_timeouts"], 1);

        stop.store(true, Relaxed);
        h.join().unwrap();
    }

    #[test]
    fn without_bulk_resync_a_backup_is_resynced_at_once() {
        let port = free_port();
        let stop = Arc::new(AtomicBool::new(false));
        let rings = Arc::new(SyncRings::new(1, 8));
        let link = Arc::new(SyncLink::default());
        let mut o = opts([127, 0, 0, 2], &[[127, 0, 0, 5]], port);
        o.cfg.bulk_resync = false;
        let (h, stats) = spawn(o, rings, link.clone(), stop.clone()).unwrap();
        wait_until("resynced", || link.resynced.load(Relaxed));
        // What the VRRP runner does on entering BACKUP: close the gate, ask for a resync.
        link.resynced.store(false, Relaxed);
        link.want_resync.fetch_add(1, Relaxed);
        wait_until("the gate reopened", || link.resynced.load(Relaxed));
        assert_eq!(stats.snapshot().dumps_requested, 0);
        stop.store(true, Relaxed);
        h.join().unwrap();
    }

    #[test]
    fn a_master_resends_its_table_every_refresh_period() {
        let port = free_port();
        let stop = Arc::new(AtomicBool::new(false));
        let rings = Arc::new(SyncRings::new(2, 64));
        let link = Arc::new(SyncLink::default());
        link.master.store(true, Relaxed);
        let peer = UdpSocket::bind(("127.0.0.7", port)).unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut o = opts([127, 0, 0, 2], &[[127, 0, 0, 7]], port);
        o.cfg.refresh_ms = 300;
        let started = Instant::now();
        let (h, stats) = spawn(o, rings.clone(), link.clone(), stop.clone()).unwrap();
        // Nobody asked: the workers are asked for their tables once the period is up, and
        // what they dump reaches the peer as dump records, with no dump end.
        let mut buf = [0u8; 1500];
        for round in 1..=2u16 {
            workers_dump(&rings, &[rec(round), rec(10 + round)]);
            let n = peer.recv(&mut buf).unwrap();
            match codec::decode(&buf[..n]) {
                Ok(Message::Records { header, records }) => {
                    assert_ne!(header.flags & FLAG_DUMP, 0, "sent as a dump");
                    let ports: Vec<u16> = records.iter().map(|r| r.client_port).collect();
                    assert_eq!(ports.len(), 2, "round {round}: {ports:?}");
                }
                other => panic!("round {round}: not records: {other:?}"),
            }
            assert!(started.elapsed() >= Duration::from_millis(300 * u64::from(round)));
        }
        assert!(stats.snapshot().refreshes >= 2);
        assert_eq!(
            stats.snapshot().dumps_served,
            0,
            "no requester, no dump end"
        );
        // A backup does not refresh.
        link.master.store(false, Relaxed);
        wait_until("backup", || !rings.sending());
        let before = stats.snapshot().refreshes;
        std::thread::sleep(Duration::from_millis(700));
        assert_eq!(stats.snapshot().refreshes, before);
        stop.store(true, Relaxed);
        h.join().unwrap();
    }

    #[test]
    fn a_resync_asked_for_while_master_waits_for_the_demotion() {
        let port = free_port();
        let stop = Arc::new(AtomicBool::new(false));
        let rings = Arc::new(SyncRings::new(1, 8));
        let link = Arc::new(SyncLink::default());
        link.master.store(true, Relaxed);
        let peer = UdpSocket::bind(("127.0.0.6", port)).unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let o = opts([127, 0, 0, 2], &[[127, 0, 0, 6]], port);
        let (h, stats) = spawn(o, rings.clone(), link.clone(), stop.clone()).unwrap();
        wait_until("sending", || rings.sending());
        assert!(link.resynced.load(Relaxed), "a master waits for nothing");
        link.want_resync.fetch_add(1, Relaxed);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(stats.snapshot().dumps_requested, 0, "not while master");
        link.master.store(false, Relaxed);
        let mut buf = [0u8; 64];
        let n = peer.recv(&mut buf).unwrap();
        assert!(matches!(
            codec::decode(&buf[..n]),
            Ok(Message::DumpRequest { .. })
        ));
        assert!(!rings.sending());
        assert!(!link.resynced.load(Relaxed));
        stop.store(true, Relaxed);
        h.join().unwrap();
    }

    #[test]
    fn sequence_tracking() {
        let lost = AtomicU64::new(0);
        let mut s = Vec::new();
        let a = Ipv4Addr::new(198, 18, 0, 2);
        let b = Ipv4Addr::new(198, 18, 0, 3);
        // (sender, seq, lost after)
        let steps = [
            (a, u32::MAX - 1, 0), // first seen
            (a, u32::MAX, 0),
            (a, 1, 1),                   // wraps, 0 missing
            (b, 5, 1),                   // another sender
            (a, 1, 1),                   // duplicate
            (a, 0, 1),                   // late
            (a, 4, 3),                   // 2, 3 missing
            (a, 4 + LOSS_WINDOW * 2, 3), // restart far ahead
            (a, 7, 3),                   // restart far behind
            (a, 8, 3),
        ];
        for (i, (who, seq, want)) in steps.into_iter().enumerate() {
            track_sequence(&mut s, who, seq, &lost);
            assert_eq!(lost.load(Relaxed), want, "step {i}");
        }
        for i in 0..MAX_SENDERS as u32 + 3 {
            track_sequence(&mut s, Ipv4Addr::from(i), 1, &lost);
        }
        assert_eq!(s.len(), MAX_SENDERS, "bounded");
    }
}
