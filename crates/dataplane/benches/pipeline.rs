//! The decision path alone: `Worker::process` on prepared frames in memory, no I/O.
//!
//! One group, `pipeline`, with six functions over bursts of 32 frames (throughput in frames):
//! - `mac_swap_baseline`: restore the dst MAC, swap dst/src MAC in place; the floor any DR
//!   forwarder pays for touching the frames.
//! - `established_1M`: 1,000,000 established TCP flows primed in the table, frames visiting them
//!   in a shuffled order.
//! - `established_16k`: the same with 16,384 flows, so frames and table lines stay in cache: the
//!   computation alone (the difference to `established_1M` is waiting for memory).
//! - `established_hot_nic_csum`: `established_16k` with frames whose IPv4 header checksum the
//!   NIC checked (the mbuf flag), so the pipeline skips its own.
//! - `established_vlan_16k`: `established_16k` with the worker on VLAN 100 and every frame
//!   tagged with it (58 bytes: 802.1Q tag, IPv4, TCP).
//! - `new_flows`: every frame a SYN from a client never seen before.
//! - `mix_90est_10new`: 900,000 established flows and 100,000 new SYNs per pass, interleaved.
//! - `syn_flood_full_table`: new SYNs against a 2^16-entry table that they fill: most are
//!   refused a place and forwarded by the stateless choice (counted `flow_table_full`).
//!
//! Frames live in one array of 64-byte buffers (1M of them, in a random flow order) walked
//! sequentially, as a NIC ring would hand them over; the flow table is hit at random places by
//! construction (hashing). Processing rewrites the dst MAC to a real server's, and the pipeline
//! drops frames whose dst MAC is not the port's, so every pass writes the port MAC back first;
//! the baseline pays the same write.
//!
//! New flows: before each pass over the frames (outside the timing) the new-flow frames get fresh
//! source addresses/ports and the clock moves 61 s forward. In `new_flows` the clock also moves
//! 8 ms per burst, so at most 240,000 SYN_RECV flows (60 s timeout) are alive and inserts reuse
//! expired entries lazily: the table never fills (asserted: `flow_table_full` below 0.01%;
//! a handful of refusals do occur at 11% live load, see perf/pipeline.md).
//! Established flows are touched every pass, far inside their 900 s timeout. With 1M live flows
//! in 2^21 entries some windows are full: those flows are forwarded statelessly every pass and
//! counted under `flow_table_full`; the count is printed.
//!
//! The rvs cases run each burst as the engine does: one `Worker::process_burst` call, which
//! parses, hashes and prefetches the two flow-table lines of frame `i + PREFETCH_AHEAD` while
//! frame `i` is decided (reusing its parse).
//!
//! Run: `cargo bench --bench pipeline -- --warm-up-time 1 --measurement-time 3`

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use rvs_dataplane::model::{
    Forward, Model, Protocol, SchedulerKind, ServerSpec, ServiceKey, ServiceSpec,
};
use rvs_dataplane::pipeline::{DropReason, Frames, RxCsum, Verdict, Worker, WorkerConfig};
use rvs_dataplane::snapshot::Shared;
use rvs_dataplane::wire::ethernet::VlanId;
use rvs_dataplane::wire::ipv4;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

const BURST: usize = 32;
/// Frames per pass in the new-flow case.
const FRAMES: usize = 1 << 20;
const ESTABLISHED: usize = 1_000_000;
/// Flows of the in-cache case.
const HOT: usize = 16_384;
/// Entries in the flow table: 2^21, so 1M flows sit at 48% load (the smallest power of two that
/// keeps 1M flows under 90%).
const FLOW_CAPACITY: usize = 1 << 21;
/// Entries in the flow table of the SYN-flood case (the pcap harness's `SYN_TABLE`).
const FLOOD_CAPACITY: usize = 1 << 16;
/// Minimum Ethernet frame (no FCS): 14 + 20 + 20 bytes of headers, zero padded.
const FRAME_LEN: usize = 60;
const SERVERS: u8 = 8;
/// New-flow case: 8 ms per burst of 32 SYNs, so the 60 s SYN_RECV timeout keeps at most
/// 7,500 bursts = 240,000 new flows alive (11% of the table): inserts reuse expired entries.
const NEW_MS_PER_BURST: u64 = 8;

const PORT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const ROUTER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
const DIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Buf([u8; 64]);

/// A buffer is a burst slot holding the first `FRAME_LEN` bytes.
impl AsRef<[u8]> for Buf {
    fn as_ref(&self) -> &[u8] {
        &self.0[..FRAME_LEN]
    }
}

impl AsMut<[u8]> for Buf {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.0[..FRAME_LEN]
    }
}

/// Client address and port of flow number `n` (distinct for every `n` below 2^31).
fn client(n: u64) -> (u32, u16) {
    // 198.19.0.0/16 for the host part, the rest of `n` in the source port.
    let ip = 0xc613_0000 | (n & 0xffff) as u32;
    let port = 1024u16.wrapping_add((n >> 16) as u16);
    (ip, port)
}

/// An Ethernet/IPv4/TCP frame from the router to VIP:80 (checksummed IPv4 header).
fn tcp_frame(src: u32, sport: u16, flags: u8) -> Buf {
    let mut b = [0u8; 64];
    b[0..6].copy_from_slice(&PORT_MAC);
    b[6..12].copy_from_slice(&ROUTER_MAC);
    b[12..14].copy_from_slice(&[0x08, 0x00]);
    // IPv4: version 4, IHL 5, total length 40, id 1, DF, TTL 64, protocol TCP
    b[14..24].copy_from_slice(&[0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6]);
    b[26..30].copy_from_slice(&src.to_be_bytes());
    b[30..34].copy_from_slice(&VIP.octets());
    // TCP: ports, seq 1, ack 0, data offset 5, flags, window 65535
    b[34..36].copy_from_slice(&sport.to_be_bytes());
    b[36..38].copy_from_slice(&80u16.to_be_bytes());
    b[41] = 1;
    b[46] = 0x50;
    b[47] = flags;
    b[48..50].copy_from_slice(&[0xff, 0xff]);
    ipv4::Packet::new_unchecked(&mut b[14..34]).fill_checksum();
    Buf(b)
}

/// The VLAN of the tagged scenario.
const VID: u16 = 100;

/// `b` with an 802.1Q tag of VLAN [`VID`] after its MACs (the rest moves 4 bytes on; the
/// untagged frame is 54 bytes, so nothing is lost).
fn tag(mut b: Buf) -> Buf {
    b.0.copy_within(12..60, 16);
    b.0[12..16].copy_from_slice(&[0x81, 0x00, (VID >> 8) as u8, VID as u8]);
    b
}

/// Point a frame at another client (the IPv4 checksum, which the pipeline verifies, is
/// computed again: this runs between timed passes).
fn set_client(b: &mut Buf, src: u32, sport: u16) {
    b.0[26..30].copy_from_slice(&src.to_be_bytes());
    b.0[34..36].copy_from_slice(&sport.to_be_bytes());
    ipv4::Packet::new_unchecked(&mut b.0[14..34]).fill_checksum();
}

/// splitmix64, for a reproducible shuffle.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

fn worker(flow_capacity: usize, vlan: Option<VlanId>) -> (Arc<Shared>, Worker) {
    let key = ServiceKey {
        proto: Protocol::Tcp,
        vip: VIP,
        port: 80,
    };
    let mut m = Model::new(8, 64);
    m.add_service(ServiceSpec {
        key,
        scheduler: SchedulerKind::Rr,
        persistent: None,
        netmask: Ipv4Addr::BROADCAST,
        flags: vec![],
    })
    .unwrap();
    for i in 0..SERVERS {
        m.add_server(
            &key,
            ServerSpec {
                addr: Ipv4Addr::new(198, 18, 0, 11 + i),
                port: 0,
                weight: 1,
                forward: Forward::Dr,
                upper: 0,
                lower: 0,
            },
        )
        .unwrap();
    }
    let sh = Arc::new(Shared::new(8, 64, 64, 1, PORT_MAC, DIP, 16).with_vlan(vlan));
    sh.publish(&m).unwrap();
    for i in 0..SERVERS {
        let slot = sh.neigh.find(Ipv4Addr::new(198, 18, 0, 11 + i)).unwrap();
        sh.neigh.confirm(slot, [0x02, 0, 0, 0, 1, i], 0);
    }
    let w = Worker::new(
        WorkerConfig {
            worker: 0,
            flow_capacity,
            is_arp_worker: false,
        },
        sh.clone(),
    );
    (sh, w)
}

/// A worker, its frames, and which of them must carry a new client every pass.
struct Scenario {
    name: &'static str,
    sh: Arc<Shared>,
    w: Worker,
    frames: Vec<Buf>,
    new_idx: Vec<u32>,
    next_client: u64,
    now_ms: u64,
    cursor: usize,
    processed: u64,
    forwarded: u64,
    /// Flows stored by priming (the rest were refused: window full).
    primed: usize,
    /// `flow_table_full` after priming.
    full_at_start: u64,
    /// Clock advance per burst (new-flow case: bounds the live SYN_RECV flows).
    ms_per_burst: u64,
    /// Flow table entries asked for.
    capacity: usize,
    /// The frames come as the NIC checked their IPv4 header checksums (the mbuf flag), so
    /// the pipeline does not sum them.
    nic_csum: bool,
    /// The worker is on VLAN [`VID`] and the frames are tagged with it.
    tagged: bool,
}

/// A burst whose IPv4 header checksums the NIC checked (`RX_IP_CKSUM_GOOD`).
struct NicChecked<'a>(&'a mut [Buf]);

impl Frames for NicChecked<'_> {
    fn count(&self) -> usize {
        self.0.len()
    }
    fn frame(&self, i: usize) -> Option<&[u8]> {
        self.0.get(i).map(|b| b.as_ref())
    }
    fn frame_mut(&mut self, i: usize) -> Option<&mut [u8]> {
        self.0.get_mut(i).map(|b| b.as_mut())
    }
    #[inline(always)]
    fn ip_csum(&self, _i: usize) -> RxCsum {
        RxCsum::Good
    }
}

impl Scenario {
    /// `established` primed flows and `new` new-flow frames, shuffled together.
    fn new(
        name: &'static str,
        established: usize,
        new: usize,
        ms_per_burst: u64,
        capacity: usize,
    ) -> Self {
        Self::build(name, established, new, ms_per_burst, capacity, false)
    }

    /// [`new`](Self::new) with established flows only, on VLAN [`VID`] (tagged frames).
    fn tagged(name: &'static str, established: usize, capacity: usize) -> Self {
        Self::build(name, established, 0, 0, capacity, true)
    }

    fn build(
        name: &'static str,
        established: usize,
        new: usize,
        ms_per_burst: u64,
        capacity: usize,
        tagged: bool,
    ) -> Self {
        let (sh, w) = worker(capacity, tagged.then(|| VlanId::new(VID).unwrap()));
        let wrap = |b: Buf| if tagged { tag(b) } else { b };
        // The TCP flags' offset.
        let flags_at = 47 + if tagged { 4 } else { 0 };
        let mut rng = Rng(0x5eed_0000 + established as u64 + new as u64);
        // Some(n) = established flow n, None = a new-flow slot
        let mut kinds: Vec<Option<u64>> = (0..established as u64).map(Some).collect();
        kinds.extend(std::iter::repeat(None).take(new));
        rng.shuffle(&mut kinds);
        let mut frames = Vec::with_capacity(kinds.len());
        let mut new_idx = Vec::with_capacity(new);
        for (i, k) in kinds.iter().enumerate() {
            match *k {
                Some(n) => {
                    let (ip, port) = client(n);
                    frames.push(wrap(tcp_frame(ip, port, ACK)));
                }
                None => {
                    new_idx.push(i as u32);
                    frames.push(wrap(tcp_frame(0, 0, SYN)));
                }
            }
        }
        let mut s = Scenario {
            name,
            sh,
            w,
            frames,
            new_idx,
            next_client: 1 << 24,
            now_ms: 1_000_000,
            cursor: 0,
            processed: 0,
            forwarded: 0,
            primed: 0,
            full_at_start: 0,
            ms_per_burst,
            capacity,
            nic_csum: false,
            tagged,
        };
        // Prime: every established flow once, its SYN then its ACK (a connection is
        // scheduled on a SYN only: sloppy_tcp off).
        let now = s.now_ms;
        for (f, k) in s.frames.iter_mut().zip(&kinds) {
            if k.is_some() {
                for flags in [SYN, ACK] {
                    f.0[0..6].copy_from_slice(&PORT_MAC);
                    f.0[flags_at] = flags;
                    let v = s.w.process(&mut f.0[..FRAME_LEN], now);
                    assert_eq!(v, Verdict::Forward, "priming {name} failed");
                }
            }
        }
        s.primed = s.w.flow_count();
        s.full_at_start = s.sh.stats.drops(DropReason::FlowTableFull);
        s.next_pass();
        // One untimed pass so the table is in its steady state (new flows' entries expired).
        while s.cursor + BURST <= s.frames.len() {
            s.burst();
        }
        s.next_pass();
        (s.processed, s.forwarded) = (0, 0);
        s
    }

    /// Fresh clients for the new-flow frames; the clock moves past the SYN timeout.
    fn next_pass(&mut self) {
        for &i in &self.new_idx {
            let (ip, port) = client(self.next_client);
            self.next_client += 1;
            if let Some(f) = self.frames.get_mut(i as usize) {
                set_client(f, ip, port);
            }
        }
        self.now_ms += 61_000;
        self.cursor = 0;
    }

    /// One burst of 32 frames through the pipeline, as the engine runs it (`WorkerLoop::run`).
    #[inline]
    fn burst(&mut self) {
        self.w.refresh();
        self.now_ms += self.ms_per_burst;
        let now = self.now_ms;
        let (c, n) = (self.cursor, BURST);
        let frames = &mut self.frames[c..c + n];
        for f in frames.iter_mut() {
            f.0[0..6].copy_from_slice(&PORT_MAC);
        }
        // As the engine's worker loop: the whole burst in one call (parse, hash and prefetch
        // `PREFETCH_AHEAD` frames ahead of each decision).
        let mut verdicts = [Verdict::Consumed; BURST];
        if self.nic_csum {
            self.w
                .process_burst(&mut NicChecked(frames), &mut verdicts, now);
        } else {
            self.w.process_burst(frames, &mut verdicts, now);
        }
        let fwd = verdicts.iter().filter(|v| **v == Verdict::Forward).count() as u64;
        self.cursor = c + n;
        self.processed += n as u64;
        self.forwarded += black_box(fwd);
    }

    /// The bare baseline on the same frames: restore dst MAC, swap dst/src.
    #[inline]
    fn swap_burst(&mut self) {
        let c = self.cursor;
        for f in &mut self.frames[c..c + BURST] {
            f.0[0..6].copy_from_slice(&PORT_MAC);
            let (dst, rest) = f.0.split_at_mut(6);
            dst.swap_with_slice(&mut rest[..6]);
            black_box(&f.0);
        }
        self.cursor = c + BURST;
        self.processed += BURST as u64;
        self.forwarded += BURST as u64;
    }

    /// `iters` bursts, timing only the bursts (not the between-pass rewrites).
    fn run(&mut self, iters: u64, swap: bool) -> Duration {
        let mut total = Duration::ZERO;
        let mut start = Instant::now();
        for _ in 0..iters {
            if self.cursor + BURST > self.frames.len() {
                total += start.elapsed();
                self.next_pass();
                start = Instant::now();
            }
            if swap {
                self.swap_burst();
            } else {
                self.burst();
            }
        }
        total + start.elapsed()
    }

    /// Print what happened; every frame must have been forwarded. `flow_table_full` counts
    /// frames forwarded statelessly because their flow's window was full (established flows the
    /// priming could not store come back every pass).
    fn report(&self) {
        let full = self.sh.stats.drops(DropReason::FlowTableFull);
        eprintln!(
            "  [{}] primed flows stored {} | timed+warm-up frames {} forwarded {} | flows in \
             table now {} (capacity {}) | flow_table_full during runs {} ({:.3}% of frames)",
            self.name,
            self.primed,
            self.processed,
            self.forwarded,
            self.w.flow_count(),
            self.capacity,
            full - self.full_at_start,
            100.0 * (full - self.full_at_start) as f64 / self.processed.max(1) as f64,
        );
        assert_eq!(self.processed, self.forwarded, "every frame forwarded");
    }
}

/// The filter given on the command line (`cargo bench --bench pipeline -- NAME`), if any: the
/// scenarios no selected function needs are not built (building and priming 1M flows takes
/// seconds, and would pollute a profile of one function).
fn filter() -> Option<String> {
    const WITH_VALUE: &[&str] = &[
        "--warm-up-time",
        "--measurement-time",
        "--sample-size",
        "--profile-time",
        "--save-baseline",
        "--baseline",
        "--noise-threshold",
        "--significance-level",
        "--confidence-level",
        "--nresamples",
        "--output-format",
        "--color",
    ];
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if WITH_VALUE.contains(&a.as_str()) {
            args.next();
        } else if !a.starts_with('-') {
            return Some(a);
        }
    }
    None
}

/// Whether a scenario serving the functions `names` is needed: the filter (criterion's, a
/// regular expression) is matched as plain alternatives, `a|b` meaning "contains a or b";
/// other regex syntax is taken literally (a filter that selects nothing builds nothing).
fn wanted(filter: &Option<String>, names: &[&str]) -> bool {
    filter.as_ref().map_or(true, |f| {
        names.iter().any(|n| {
            let id = format!("pipeline/{n}");
            f.split('|').any(|alt| id.contains(alt))
        })
    })
}

fn pipeline(c: &mut Criterion) {
    let f = filter();
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(BURST as u64));

    // 1,000,000 is not a multiple of 32: each pass walks the first 999,968 frames.
    if wanted(&f, &["mac_swap_baseline", "established_1M"]) {
        let mut est = Scenario::new("established_1M", ESTABLISHED, 0, 0, FLOW_CAPACITY);
        g.bench_function("mac_swap_baseline", |b| {
            b.iter_custom(|iters| est.run(iters, true))
        });
        est.cursor = 0;
        est.processed = 0;
        est.forwarded = 0;
        g.bench_function("established_1M", |b| {
            b.iter_custom(|iters| est.run(iters, false))
        });
        est.report();
    }

    // The same path with its working set in cache (16,384 flows: 1 MiB of frames, 16k table
    // lines): the computation alone; the difference to established_1M is memory stalls.
    if wanted(&f, &["established_16k"]) {
        let mut hot = Scenario::new("established_16k", HOT, 0, 0, FLOW_CAPACITY);
        g.bench_function("established_16k", |b| {
            b.iter_custom(|iters| hot.run(iters, false))
        });
        hot.report();
    }

    // The same with the NIC's checksum verdict on every frame (`RX_IP_CKSUM_GOOD`, as a NIC
    // with IPv4 checksum offload gives it): the pipeline's software header sum skipped. (Not
    // named `established_16k*`, so a filter for that bench runs it alone.)
    if wanted(&f, &["established_hot_nic_csum"]) {
        let mut hot = Scenario::new("established_hot_nic_csum", HOT, 0, 0, FLOW_CAPACITY);
        hot.nic_csum = true;
        g.bench_function("established_hot_nic_csum", |b| {
            b.iter_custom(|iters| hot.run(iters, false))
        });
        hot.report();
    }

    // `established_16k` on a VLAN: every frame tagged with the worker's VLAN.
    if wanted(&f, &["established_vlan_16k"]) {
        let mut hot = Scenario::tagged("established_vlan_16k", HOT, FLOW_CAPACITY);
        g.bench_function("established_vlan_16k", |b| {
            b.iter_custom(|iters| hot.run(iters, false))
        });
        hot.report();
        assert!(hot.tagged && hot.frames.iter().all(|f| f.0[12..16] == [0x81, 0, 0, 100]));
    }

    if wanted(&f, &["new_flows"]) {
        let mut new = Scenario::new("new_flows", 0, FRAMES, NEW_MS_PER_BURST, FLOW_CAPACITY);
        g.bench_function("new_flows", |b| {
            b.iter_custom(|iters| new.run(iters, false))
        });
        new.report();
        let refused = new.sh.stats.drops(DropReason::FlowTableFull) - new.full_at_start;
        assert!(
            refused * 10_000 < new.processed.max(1),
            "the table must not fill in the new-flow case ({refused} refusals)"
        );
    }

    if wanted(&f, &["mix_90est_10new"]) {
        let mut mix = Scenario::new("mix_90est_10new", 900_000, 100_000, 0, FLOW_CAPACITY);
        g.bench_function("mix_90est_10new", |b| {
            b.iter_custom(|iters| mix.run(iters, false))
        });
        mix.report();
    }

    // A SYN flood against a full table (the pcap harness's `syn` variant): 2^16 entries, so
    // after the first ~60k SYNs of a pass every new flow is refused a place and forwarded by
    // the stateless choice (`flow_table_full`); live flows are never evicted.
    if wanted(&f, &["syn_flood_full_table"]) {
        let mut flood = Scenario::new("syn_flood_full_table", 0, FRAMES, 0, FLOOD_CAPACITY);
        g.bench_function("syn_flood_full_table", |b| {
            b.iter_custom(|iters| flood.run(iters, false))
        });
        flood.report();
    }

    g.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
