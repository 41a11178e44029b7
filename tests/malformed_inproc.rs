//! The malformed-frame corpus (`rvs_dataplane::testing::corpus`) through the engine in process
//! on real mbufs: the cases written to a pcap, read by a `net_pcap` port, decided by the worker
//! loop the daemon runs, written to another pcap. Each drop reason is counted exactly as often
//! as the corpus expects, every forwarded frame and ARP reply leaves the port as the pipeline
//! promises, and nothing else does (but the ARP worker's own requests and announcements).
//!
//! One test function: the EAL can be initialised once per process. Needs root.

mod common;
use common::{is_root, read_pcap, write_pcap};
use rvs::dpdk::{Eal, Mempool, Port, PortConfig};
use rvs::engine::WorkerLoop;
use rvs_dataplane::pipeline::{DropReason, RxCsum, Verdict};
use rvs_dataplane::testing::corpus::{self, Case};
use rvs_dataplane::testing::fixture::{self, Fixture, Options, PORT_MAC, RS1_MAC, RS2_MAC};
use rvs_dataplane::testing::{check_frame, Tally};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Mbuf data room: a 9000-byte jumbo frame in one segment, after the 128-byte headroom.
const DATA_ROOM: u16 = 9216 + 128;

/// A frame the ARP worker writes itself: a broadcast ARP request from the port.
fn is_housekeeping(f: &[u8]) -> bool {
    f.len() >= 42
        && f[..6] == [0xff; 6]
        && f[6..12] == PORT_MAC
        && f[12..14] == [0x08, 0x06]
        && f[20..22] == [0, 1]
        && f[22..28] == PORT_MAC
}

#[test]
fn the_malformed_corpus_through_the_engine() {
    if !is_root() {
        eprintln!("malformed_inproc: skipped, DPDK needs root");
        return;
    }
    // What net_pcap can carry: no NIC checksum word.
    let cases: Vec<Case> = corpus::active()
        .into_iter()
        .filter(|c| c.csum == RxCsum::Unknown)
        .collect();
    assert!(cases.len() >= 60, "{} cases", cases.len());
    let tmp = tempfile::tempdir().unwrap();
    let rx = tmp.path().join("in.pcap");
    let tx = tmp.path().join("out.pcap");
    let frames: Vec<&[u8]> = cases.iter().map(|c| &c.frame[..]).collect();
    write_pcap(&rx, &frames);

    let args: Vec<String> = [
        "rvs-test".to_string(),
        "-l".into(),
        "0".into(),
        "--no-huge".into(),
        "--no-pci".into(),
        "-m".into(),
        "256".into(),
        "--file-prefix".into(),
        format!("rvs-malformed-{}", std::process::id()),
        "--vdev".into(),
        format!(
            "net_pcap0,rx_pcap={},tx_pcap={}",
            rx.display(),
            tx.display()
        ),
    ]
    .into();
    let eal = Eal::init(&args).expect("EAL init");
    let pool = Arc::new(Mempool::create("malformed_test", 1023, 64, DATA_ROOM, -1).unwrap());
    let conf = PortConfig {
        rx_queues: 1,
        tx_queues: 1,
        rx_desc: 256,
        tx_desc: 256,
        rss: false,
        promiscuous: true,
    };
    let mut port = Port::configure(rvs::dpdk::PortId(0), &conf, &pool).expect("configure");
    port.start().expect("start");
    assert_eq!(port.mac(), PORT_MAC, "the fixture's port MAC is net_pcap's");

    // The real servers' MACs learned now, on the engine's clock (reachable for 30 s).
    let now_ms = rvs::dpdk::tsc() / (rvs::dpdk::tsc_hz() / 1000).max(1);
    let Fixture {
        shared,
        model,
        worker,
    } = Fixture::with(Options {
        now_ms,
        ..Options::default()
    });
    let stop = Arc::new(AtomicBool::new(false));
    let stopper = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(500));
            stop.store(true, Ordering::Relaxed);
        })
    };
    // The fixture's worker hands the frames for the DIP to the kernel path: here a ring no
    // thread drains, counted below.
    let kernel = Arc::new(rvs::kernel::Ring::new(1024));
    WorkerLoop::new(worker, port.queue(0), Arc::clone(&pool), stop)
        .with_kernel_ring(Arc::clone(&kernel))
        .run();
    stopper.join().unwrap();

    let report = shared.stats(&model);
    let macs = fixture::neighbour_macs(&shared);
    drop(port); // closes the device, which flushes out.pcap
    let out = read_pcap(&tx);

    // Counted as the corpus expects, reason by reason.
    let want: Tally = corpus::expected(&cases);
    let w = &report.workers[0];
    assert_eq!(w.rx_packets, cases.len() as u64, "every frame received");
    assert_eq!(w.forwarded, want.forward, "forwarded");
    assert_eq!(w.arp_replies, want.reply, "ARP replies");
    assert_eq!(w.to_kernel, want.kernel, "handed to the kernel");
    assert_eq!(
        kernel.len() as u64,
        want.kernel,
        "in the ring to the kernel"
    );
    while let Some(m) = kernel.pop() {
        drop(m);
    }
    for r in DropReason::ALL {
        assert_eq!(
            report.drops.get(r.name()).copied().unwrap_or(0),
            want.drops[r.index()],
            "drops {}: {:?}",
            r.name(),
            report.drops
        );
    }
    let dropped: u64 = report.drops.values().sum();
    assert_eq!(
        w.forwarded + w.arp_replies + want.consumed + w.to_kernel + dropped,
        cases.len() as u64,
        "forwarded + replies + consumed + to_kernel + drops = frames"
    );

    // Each forwarded frame and reply left the port once, as promised; nothing else but the
    // ARP worker's own frames.
    let mut left: Vec<Option<&Vec<u8>>> = out.iter().map(Some).collect();
    for c in cases
        .iter()
        .filter(|c| matches!(c.expect, Verdict::Forward | Verdict::Reply))
    {
        let found = left
            .iter_mut()
            .find(|o| o.is_some_and(|f| check_frame(&c.frame, f, c.expect).is_ok()));
        match found {
            Some(slot) => *slot = None,
            None => panic!("case {}: no {:?} frame in out.pcap", c.name, c.expect),
        }
    }
    for f in left.into_iter().flatten() {
        assert!(
            is_housekeeping(f),
            "a frame left that no case forwarded nor answered: {:02x?}",
            &f[..f.len().min(64)]
        );
    }
    assert_eq!(
        macs,
        [Some(RS1_MAC), Some(RS2_MAC)],
        "the real servers' MACs"
    );
    eprintln!(
        "malformed_inproc: {} frames in, {} forwarded, {} answered, {} consumed, {dropped} \
         dropped under {} reasons; {} frames out",
        cases.len(),
        w.forwarded,
        w.arp_replies,
        want.consumed,
        report.drops.len(),
        out.len()
    );
    drop(pool);
    drop(eal);
}
