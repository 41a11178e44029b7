//! Table-level costs: the flow table at 90% load (insert, lookup hit, lookup miss), its memory per
//! flow, building a Maglev table (1,000 servers, M = 65537), and publishing a large snapshot
//! (1,000 services x 100 real servers).
//!
//! Run: `cargo bench --bench tables -- --warm-up-time 1 --measurement-time 3`

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use rvs_dataplane::flow::{Entry, FlowKey, FlowState, FlowTable, Timeouts};
use rvs_dataplane::maglev;
use rvs_dataplane::model::{
    Forward, Model, Protocol, SchedulerKind, ServerSpec, ServiceKey, ServiceSpec,
};
use rvs_dataplane::snapshot::Shared;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

const MIB: f64 = 1024.0 * 1024.0;

/// Distinct TCP keys to one VIP:80 (client address and port from `n`).
fn key(n: u64) -> FlowKey {
    FlowKey {
        src: 0xc613_0000 | (n & 0xffff) as u32,
        dst: 0xc612_0064,
        sport: 1024u16.wrapping_add((n >> 16) as u16),
        dport: 80,
        proto: 6,
    }
}

/// splitmix64, for a reproducible shuffle.
fn shuffle<T>(v: &mut [T], mut s: u64) {
    for i in (1..v.len()).rev() {
        s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        v.swap(i, (z % (i as u64 + 1)) as usize);
    }
}

/// Insert keys `0..` until the table holds `target` flows; returns (keys inserted, refusals).
fn fill(t: &mut FlowTable, target: usize, now_s: u32) -> (Vec<FlowKey>, u64) {
    let mut keys = Vec::with_capacity(target);
    let mut full = 0;
    let mut n = 0u64;
    while t.len() < target {
        let k = key(n);
        n += 1;
        let h = t.hash(&k);
        match t.insert(&k, h, FlowState::Established, 0, 1, now_s, |_| ()) {
            Ok(_) => keys.push(k),
            Err(_) => full += 1,
        }
    }
    (keys, full)
}

/// splitmix64 over the packed key: a reference for the table's own hash.
fn strong_hash(k: &FlowKey) -> u32 {
    let mut z = (u64::from(k.src) << 32 | u64::from(k.dst))
        ^ (u64::from(k.sport) << 24 | u64::from(k.dport) << 8 | u64::from(k.proto)).rotate_left(40);
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) as u32
}

fn memory_report() {
    // The table stores each flow in a private 32-byte slot (4 x AtomicU64), two per 64-byte
    // bucket; `Entry` is the decoded copy `get` returns.
    eprintln!(
        "flow entry: size_of::<Entry>() (decoded copy) = {} bytes",
        std::mem::size_of::<Entry>()
    );
    let t = FlowTable::new(1 << 20, Timeouts::default(), 1);
    let bytes = t.buckets() * 64;
    let entry = bytes / t.capacity();
    eprintln!("stored slot: {entry} bytes per entry (table bytes / capacity)");
    assert!(entry <= 64, "a flow entry must fit a cache line");
    eprintln!(
        "FlowTable::new(2^20): capacity {} entries, {} buckets, {:.1} MiB, {:.1} bytes/entry, \
         {:.1} bytes/flow at 90% load",
        t.capacity(),
        t.buckets(),
        bytes as f64 / MIB,
        bytes as f64 / t.capacity() as f64,
        bytes as f64 / (t.capacity() as f64 * 0.9),
    );
    drop(t);
    // 1M flows per worker: what does it take? With the table's own hash, and with a strong
    // reference hash (splitmix64 of the key) to tell hash quality from the window's limit.
    for (cap, strong) in [(1usize << 20, false), (1 << 21, false), (1 << 21, true)] {
        let mut t = FlowTable::new(cap, Timeouts::default(), 7);
        let mut refused = 0u64;
        for n in 0..1_000_000u64 {
            let k = key(n);
            let h = if strong { strong_hash(&k) } else { t.hash(&k) };
            if t.insert(&k, h, FlowState::Established, 0, 1, 0, |_| ())
                .is_err()
            {
                refused += 1;
            }
        }
        let bytes = t.buckets() * 64;
        eprintln!(
            "1,000,000 flows into {} entries, {} hash ({:.1}% load asked, {:.1} MiB): {} stored, \
             {} refused (window full); memory <= 64 MiB: {}; every flow stored: {}",
            t.capacity(),
            if strong { "splitmix64" } else { "FlowTable" },
            100.0 * 1e6 / t.capacity() as f64,
            bytes as f64 / MIB,
            t.len(),
            refused,
            if bytes as f64 <= 64.0 * MIB {
                "yes"
            } else {
                "no"
            },
            if refused == 0 { "yes" } else { "no" },
        );
    }
}

fn flow_table(c: &mut Criterion) {
    memory_report();
    let cap = 1usize << 20;
    let target = cap * 9 / 10;
    let now_s = 100;
    let mut t = FlowTable::new(cap, Timeouts::default(), 42);
    let (mut present, refused) = fill(&mut t, target, now_s);
    eprintln!(
        "filled {} entries to {} flows (90%): {} inserts refused on the way",
        cap,
        t.len(),
        refused
    );
    shuffle(&mut present, 1);
    let absent: Vec<FlowKey> = (0..1u64 << 20).map(|n| key((1 << 32) + n)).collect();

    let mut g = c.benchmark_group("flow_table_90pct");
    g.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    g.bench_function("lookup_hit", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let k = &present[i];
                i = if i + 1 == present.len() { 0 } else { i + 1 };
                let h = t.hash(k);
                black_box(t.lookup(k, h, now_s, |_| ()));
            }
            start.elapsed()
        })
    });
    let mut i = 0usize;
    g.bench_function("lookup_miss", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let k = &absent[i];
                i = if i + 1 == absent.len() { 0 } else { i + 1 };
                let h = t.hash(k);
                black_box(t.lookup(k, h, now_s, |_| ()));
            }
            start.elapsed()
        })
    });
    // Insert a new flow then remove it again, so the load stays at 90%.
    let (mut i, mut refusals, mut ops) = (0usize, 0u64, 0u64);
    g.bench_function("insert_then_remove", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let k = &absent[i];
                i = if i + 1 == absent.len() { 0 } else { i + 1 };
                let h = t.hash(k);
                match t.insert(k, h, FlowState::SynRecv, 0, 1, now_s, |_| ()) {
                    Ok(id) => t.remove(id, |_| ()),
                    Err(_) => refusals += 1,
                }
            }
            ops += iters;
            start.elapsed()
        })
    });
    g.finish();
    eprintln!(
        "insert at 90% load: {refusals} of {ops} inserts refused ({:.3}%)",
        100.0 * refusals as f64 / ops.max(1) as f64
    );
}

const SERVICES: u32 = 1_000;
const PER_SERVICE: u32 = 100;

/// 1,000 TCP services (250 VIPs x 4 ports), each with 100 real servers of its own (100,000
/// distinct addresses from 198.18.0.0/15).
fn big_model() -> Model {
    let mut m = Model::new(SERVICES, SERVICES * PER_SERVICE);
    for s in 0..SERVICES {
        let key = ServiceKey {
            proto: Protocol::Tcp,
            vip: Ipv4Addr::new(198, 19, 255, 1 + (s % 250) as u8),
            port: [80, 443, 8080, 8443][(s / 250) as usize],
        };
        m.add_service(ServiceSpec {
            key,
            scheduler: SchedulerKind::Wrr,
            persistent: None,
            netmask: Ipv4Addr::BROADCAST,
            flags: vec![],
        })
        .unwrap();
        for r in 0..PER_SERVICE {
            let addr = Ipv4Addr::from(0xc612_0000u32 + 2 + s * PER_SERVICE + r);
            m.add_server(
                &key,
                ServerSpec {
                    addr,
                    port: 0,
                    weight: 1 + r % 4,
                    forward: Forward::Dr,
                    upper: 0,
                    lower: 0,
                },
            )
            .unwrap();
        }
    }
    m
}

fn snapshot(c: &mut Criterion) {
    let t0 = Instant::now();
    let m = big_model();
    eprintln!(
        "model of {} services x {} servers built in {:?} (untimed)",
        SERVICES,
        PER_SERVICE,
        t0.elapsed()
    );
    let sh = Shared::new(
        SERVICES,
        SERVICES * PER_SERVICE,
        SERVICES * PER_SERVICE,
        1,
        [0x02, 0, 0, 0, 0, 1],
        Ipv4Addr::new(198, 18, 0, 1),
        15,
    );
    let t0 = Instant::now();
    sh.publish(&m).unwrap();
    eprintln!("first publish (neighbour table filled): {:?}", t0.elapsed());
    let mut g = c.benchmark_group("snapshot");
    g.sample_size(10);
    g.bench_function("publish_1000svc_x_100rs", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                sh.publish(&m).unwrap();
                total += start.elapsed();
                // The one worker moves to the new snapshot, so the next publish frees the old.
                sh.mark_seen(0, sh.epoch());
            }
            total
        })
    });
    g.finish();
}

/// Maglev table build (M = 65537) over 1,000 real servers, equal and mixed weights.
fn maglev_build(c: &mut Criterion) {
    let equal: Vec<(u64, u32)> = (0..1_000u32)
        .map(|i| (maglev::backend_id(0xc612_0000 + 2 + i, 80), 1))
        .collect();
    let mixed: Vec<(u64, u32)> = equal
        .iter()
        .enumerate()
        .map(|(i, &(id, _))| (id, 1 + (i as u32 % 10)))
        .collect();
    let mut g = c.benchmark_group("maglev");
    g.sample_size(20);
    g.bench_function("build_1000rs_m65537_equal", |b| {
        b.iter(|| maglev::build(black_box(&equal), maglev::DEFAULT_SIZE))
    });
    g.bench_function("build_1000rs_m65537_weights_1_to_10", |b| {
        b.iter(|| maglev::build(black_box(&mixed), maglev::DEFAULT_SIZE))
    });
    g.finish();
}

criterion_group!(benches, flow_table, maglev_build, snapshot);
criterion_main!(benches);
