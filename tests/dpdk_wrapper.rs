//! DPDK in-process test of `rvs::dpdk`: EAL on virtual devices (`net_ring`, `net_pcap`), no
//! hugepages, no PCI. The EAL can be initialised once per process, so everything lives in one
//! test function, in steps. Needs root (run as `cargo test --test dpdk_wrapper`).

mod common;
use common::{is_root, read_pcap, write_pcap};
use rvs::adapter::Adapter;
use rvs::dpdk::{self, Burst, Eal, LcoreId, Mempool, MempoolCounts, Port, PortConfig, BURST};
use rvs_control::proto::Dataplane;
use rvs_dataplane::model::Model;
use rvs_dataplane::snapshot::Shared;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A 64-byte Ethernet/IPv4/UDP frame whose payload carries `tag`.
fn frame(tag: u8) -> Vec<u8> {
    let mut f = Vec::with_capacity(64);
    // Ethernet: dst 02:00:00:00:00:02, src 02:00:00:00:00:01, type IPv4
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00]);
    // IPv4: v4 ihl 5, tos 0, total 50, id = tag, no frag, ttl 64, proto UDP, csum 0,
    //       src 198.18.0.1, dst 198.18.0.2
    f.extend_from_slice(&[0x45, 0, 0, 50, 0, tag, 0, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&[198, 18, 0, 1, 198, 18, 0, 2]);
    // UDP: sport 1024 + tag, dport 80, len 30, csum 0
    f.extend_from_slice(&[0x04, tag, 0, 80, 0, 30, 0, 0]);
    // payload: 22 bytes of tag
    f.resize(64, tag);
    f
}

fn config(rx: u16, tx: u16) -> PortConfig {
    PortConfig {
        rx_queues: rx,
        tx_queues: tx,
        rx_desc: 128,
        tx_desc: 128,
        rss: true,
        promiscuous: true,
    }
}

/// Allocates one mbuf per frame and fills it.
fn fill(pool: &Mempool, frames: &[Vec<u8>], into: &mut Burst) {
    for f in frames {
        let mut m = pool.alloc().expect("mbuf");
        assert_eq!(m.len(), 0);
        assert!(m.set_len(f.len()));
        m.data_mut().copy_from_slice(f);
        assert!(into.push(m).is_ok());
    }
}

#[test]
fn dpdk_wrapper() {
    if !is_root() {
        eprintln!("dpdk_wrapper: skipped, needs root");
        return;
    }
    let pid = std::process::id();
    let prefix = format!("rvs-test-{pid}");
    let _run_dir = RunDir(format!("/var/run/dpdk/{prefix}"));
    let tmp = tempfile::tempdir().expect("tempdir");
    let rx_pcap = tmp.path().join("in.pcap");
    let tx_pcap = tmp.path().join("out.pcap");
    let pcap_in: Vec<Vec<u8>> = (1..=5).map(frame).collect();
    write_pcap(&rx_pcap, &pcap_in);

    let args: Vec<String> = [
        "dpdk_wrapper",
        "-l",
        "0-1",
        "--no-huge",
        "--no-pci",
        "-m",
        "256",
        "--file-prefix",
        &prefix,
        "--vdev",
        "net_ring0",
        "--vdev",
        &format!(
            "net_pcap0,rx_pcap={},tx_pcap={}",
            rx_pcap.display(),
            tx_pcap.display()
        ),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();

    // --- EAL ---------------------------------------------------------------------------------
    let eal = Eal::init(&args).expect("EAL init");
    let again = Eal::init(&args).expect_err("second EAL init must fail");
    assert_eq!(again.op, "eal_init");
    let main = eal.main_lcore();
    assert_eq!(eal.lcores(), vec![LcoreId(0), LcoreId(1)]);
    assert_eq!(main, LcoreId(0));
    assert_eq!(eal.workers(), vec![LcoreId(1)]);
    assert_eq!(dpdk::lcore_id(), 0);
    assert!(dpdk::tsc_hz() > 0);
    let t0 = dpdk::tsc();
    assert!(dpdk::tsc() >= t0);
    assert_eq!(eal.port_count(), 2);
    let ring = eal.port_by_name("net_ring0").expect("net_ring0 port");
    let pcap = eal.port_by_name("net_pcap0").expect("net_pcap0 port");
    assert_ne!(ring, pcap);
    assert_eq!(eal.port_by_name("net_nothing9"), None);

    // --- a second primary on our file-prefix is told who holds it ----------------------------
    second_daemon_names_the_holder(tmp.path(), &prefix, pid);

    // --- Mempool -----------------------------------------------------------------------------
    let pool = Mempool::create("rvs_test_pool", 4095, 0, 2048 + 128, -1).expect("mempool");
    assert_eq!(pool.available(), 4095);
    assert_eq!(pool.in_use(), 0);
    let dup = Mempool::create("rvs_test_pool", 63, 0, 2176, -1).expect_err("duplicate name");
    assert_eq!(dup.errno, 17, "EEXIST expected, got {dup}");
    {
        let mut m = pool.alloc().expect("mbuf");
        assert_eq!(pool.in_use(), 1);
        assert_eq!(m.headroom(), 128);
        assert!(
            !m.set_len(2048 + 1),
            "longer than the room after the headroom"
        );
        assert!(m.set_len(2048));
        assert!(m.set_len(14));
        assert!(m.prepend(4));
        assert_eq!(m.len(), 18);
        assert!(m.adj(4));
        assert!(!m.adj(100));
        assert_eq!(m.len(), 14);
        assert_eq!(m.rss_hash(), None);
    }
    assert_eq!(pool.in_use(), 0, "Mbuf drop frees");

    // --- Burst bookkeeping without a device ----------------------------------------------------
    {
        let mut b = Burst::new();
        assert!(pool.alloc_bulk(&mut b, BURST));
        assert_eq!(pool.in_use(), BURST as u32);
        assert!(!pool.alloc_bulk(&mut b, 1), "burst is full");
        let extra = pool.alloc().expect("mbuf");
        let extra = b.push(extra).expect_err("push into a full burst");
        drop(extra);
        b.free(3);
        b.free(3);
        assert!(b.get_mut(3).is_none());
        assert_eq!((b.len(), b.count()), (BURST, BURST - 1));
        assert_eq!(pool.in_use(), BURST as u32 - 1, "free(i) frees at once");
        let m = pool.alloc().expect("mbuf");
        assert!(b.push(m).is_ok(), "push compacts a burst with holes");
        assert_eq!((b.len(), b.count()), (BURST, BURST));
        let taken = b.take(0).expect("slot 0");
        drop(b);
        assert_eq!(pool.in_use(), 1, "Burst drop frees what it holds");
        drop(taken);
        assert_eq!(pool.in_use(), 0);
    }

    // --- net_ring port: tx on queue 0 comes back on rx queue 0 ------------------------------
    let mut rport = Port::configure(ring, &config(1, 1), &pool).expect("configure net_ring0");
    assert!(
        !rport.rss(),
        "RSS needs more than one rx queue and device support"
    );
    assert_eq!(
        rport.rss_setup().expect("rss setup"),
        None,
        "no RSS: nothing to route synced flows by"
    );
    assert_eq!(rport.driver_name(), "net_ring");
    assert!(
        Port::configure(ring, &config(1, 1), &pool).is_err(),
        "one Port per device"
    );
    rport.start().expect("start net_ring0");
    rport.start().expect("start is idempotent");
    assert!(rport.link().up);
    assert_eq!(rport.mac(), [0; 6], "net_ring has an all-zero MAC");
    {
        let mut q = rport.queue(0);
        assert_eq!(rport.try_queue(0).expect_err("queue taken").errno, 16);
        assert_eq!(rport.try_queue(1).expect_err("no such queue").errno, 22);

        let sent_frames: Vec<Vec<u8>> = (0..8).map(frame).collect();
        let mut out = Burst::new();
        fill(&pool, &sent_frames, &mut out);
        assert_eq!(q.tx_burst(&mut out), (8, 0));
        assert!(out.is_empty());
        assert_eq!(pool.in_use(), 8, "mbufs sit in the ring");

        let mut inb = Burst::new();
        assert_eq!(q.rx_burst(&mut inb), 8);
        assert_eq!(q.rx_burst(&mut inb), 0, "ring is empty");
        for (i, f) in sent_frames.iter().enumerate() {
            assert_eq!(inb.data(i), Some(f.as_slice()), "frame {i} bytes");
            let m = inb.get_mut(i).expect("mbuf");
            assert_eq!(m.rss_hash(), None);
        }
        // Process in place: swap MACs of every frame, drop the odd ones, send the rest back.
        for i in 0..inb.len() {
            if i % 2 == 1 {
                inb.free(i);
                continue;
            }
            let mut m = inb.get_mut(i).expect("mbuf");
            let d = m.data_mut();
            let (dst, src) = d.split_at_mut(6);
            dst.swap_with_slice(&mut src[..6]);
        }
        assert_eq!(pool.in_use(), 4);
        assert_eq!(q.tx_burst(&mut inb), (4, 0));
        assert_eq!(q.rx_burst(&mut inb), 4);
        for (k, i) in [0u8, 2, 4, 6].iter().enumerate() {
            let mut want = frame(*i);
            let (dst, src) = want.split_at_mut(6);
            dst.swap_with_slice(&mut src[..6]);
            assert_eq!(inb.data(k), Some(want.as_slice()), "swapped frame {i}");
        }
        inb.clear();
        assert_eq!(pool.in_use(), 0);

        // Fill the ring until the device refuses: unsent mbufs must be freed by tx_burst.
        let mut in_ring = 0usize;
        let mut freed = 0usize;
        for _ in 0..100 {
            let mut b = Burst::new();
            assert!(pool.alloc_bulk(&mut b, BURST));
            let (s, u) = q.tx_burst(&mut b);
            assert_eq!(s + u, BURST);
            in_ring += s;
            freed += u;
            if u > 0 {
                break;
            }
        }
        assert!(freed > 0, "the ring never filled up");
        assert_eq!(pool.in_use() as usize, in_ring, "unsent mbufs were freed");
        let mut drained = 0;
        loop {
            let n = q.rx_burst(&mut inb);
            if n == 0 {
                break;
            }
            drained += n;
            inb.clear();
        }
        assert_eq!(drained, in_ring);
        assert_eq!(pool.in_use(), 0);
        assert_eq!(pool.available(), 4095);
    }
    let st = rport.stats().expect("port stats");
    assert!(st.opackets >= 12, "stats: {st:?}");
    assert_eq!(dpdk::port_stats(ring), Ok(st));

    // --- counters of a port that does not exist: an error, not zeros -------------------------
    for missing in [dpdk::PortId(7), dpdk::PortId(u16::MAX)] {
        assert!(
            missing != ring && missing != pcap,
            "port id {missing:?} is in use"
        );
        let err = dpdk::port_stats(missing).expect_err("no such port");
        assert_eq!(err.op, "eth_stats_get");
        assert_eq!(err.errno, 19, "ENODEV expected, got {err}");
    }

    // --- remote launch -------------------------------------------------------------------------
    let w = LcoreId(1);
    assert!(
        dpdk::remote_launch(main, || {}).is_err(),
        "not on the main lcore"
    );
    assert!(
        dpdk::remote_launch(LcoreId(7), || {}).is_err(),
        "not on a disabled lcore"
    );
    dpdk::remote_launch(w, || panic!("worker boom")).expect("launch");
    let err = dpdk::wait_lcore(w).expect_err("panic is reported");
    assert!(err.contains("worker boom"), "{err}");
    dpdk::remote_launch_result(w, || Err("nope".to_string())).expect("launch");
    let err = dpdk::wait_lcore(w).expect_err("error is reported");
    assert!(err.contains("nope"), "{err}");
    // A worker owning the queue sends frames from its lcore; the main lcore then receives them.
    let seen_lcore = Arc::new(AtomicU32::new(u32::MAX));
    {
        let seen = Arc::clone(&seen_lcore);
        let mut q = rport.queue(0);
        let wpool = pool.clone();
        dpdk::remote_launch(w, move || {
            seen.store(dpdk::lcore_id(), Ordering::SeqCst);
            let mut b = Burst::new();
            fill(&wpool, &[frame(0xaa), frame(0xbb)], &mut b);
            assert_eq!(q.tx_burst(&mut b), (2, 0));
        })
        .expect("launch");
        dpdk::wait_lcore(w).expect("worker ok");
    }
    assert_eq!(seen_lcore.load(Ordering::SeqCst), 1);
    {
        let mut q = rport.queue(0); // handed back when the worker's Queue dropped
        let mut b = Burst::new();
        assert_eq!(q.rx_burst(&mut b), 2);
        assert_eq!(b.data(0), Some(frame(0xaa).as_slice()));
        assert_eq!(b.data(1), Some(frame(0xbb).as_slice()));
    }
    assert_eq!(pool.in_use(), 0);

    // --- net_pcap port: rx reads in.pcap, tx writes out.pcap ---------------------------------
    {
        let mut pport = Port::configure(pcap, &config(1, 1), &pool).expect("configure net_pcap0");
        assert_eq!(pport.driver_name(), "net_pcap");
        // net_pcap derives its MAC from "pcap" and the device index.
        assert_eq!(pport.mac(), [0x02, 0x70, 0x63, 0x61, 0x70, 0x00]);
        pport.start().expect("start net_pcap0");
        let mut q = pport.queue(0);
        let mut b = Burst::new();
        let mut got = 0;
        for _ in 0..1000 {
            got += q.rx_burst(&mut b);
            if got >= pcap_in.len() {
                break;
            }
        }
        assert_eq!(got, pcap_in.len());
        for (i, f) in pcap_in.iter().enumerate() {
            assert_eq!(b.data(i), Some(f.as_slice()), "pcap frame {i}");
        }
        // Truncate every frame to 60 bytes (a shorter set_len) and write it out.
        for i in 0..b.len() {
            assert!(b.get_mut(i).expect("mbuf").set_len(60));
        }
        assert_eq!(q.tx_burst(&mut b), (pcap_in.len(), 0));
        // Dropping the port and its queue closes the device, which flushes out.pcap.
    }
    let written = read_pcap(&tx_pcap);
    assert_eq!(written.len(), pcap_in.len());
    for (w, f) in written.iter().zip(&pcap_in) {
        assert_eq!(w.as_slice(), &f[..60]);
    }
    assert_eq!(pool.in_use(), 0);

    // --- counts of a pool with per-lcore caches; stats report them ----------------------------
    cached_pool_counts(&eal, rport.id(), &pool);

    drop(rport);
    drop(pool);
    drop(eal);
}

/// `rvs run` on the file-prefix this process's EAL holds exits non-zero, naming this process
/// and the prefix, instead of DPDK's "Success (errno 0)".
fn second_daemon_names_the_holder(dir: &Path, prefix: &str, pid: u32) {
    let cfg = dir.join("second.toml");
    std::fs::write(
        &cfg,
        format!(
            "[eal]\nargs = [\"-l\", \"0\", \"--no-huge\", \"--no-pci\", \"-m\", \"64\", \
             \"--file-prefix\", \"{prefix}\", \"--vdev\", \"net_null0\"]\n\
             [network]\ndip = \"198.18.0.2\"\n"
        ),
    )
    .expect("write config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rvs"))
        .arg("run")
        .arg("-c")
        .arg(&cfg)
        .arg("--socket")
        .arg(dir.join("second.sock"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rvs");
    // Bounded: a daemon that started after all is killed (and the test fails below).
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait rvs") {
            break Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    let status = status.unwrap_or_else(|| panic!("a second rvs on '{prefix}' kept running: {err}"));
    assert!(!status.success(), "second rvs must fail: {err}");
    let want = format!(
        "another DPDK primary process (pid {pid}) already holds file-prefix '{prefix}' \
         (/var/run/dpdk/{prefix}/config): is rvs already running? Use a different \
         --file-prefix to run two"
    );
    assert!(err.contains(&want), "stderr lacks '{want}':\n{err}");
    assert!(!err.contains("Success (errno 0)"), "{err}");
}

/// A pool with per-lcore caches: mbufs freed into a cache count as free again (DPDK's
/// avail_count adds the caches), on the main lcore and on a worker; the adapter's `stats`
/// carries the same counts; the watch handle does not keep a pool alive.
fn cached_pool_counts(eal: &Eal, port: dpdk::PortId, rpool: &Mempool) {
    let pool = Mempool::create("rvs_test_cached", 1023, 32, 2048 + 128, -1).expect("mempool");
    let idle = MempoolCounts {
        size: 1023,
        cache_size: 32,
        in_use: 0,
        free: 1023,
    };
    assert_eq!(pool.counts(), idle);
    assert_eq!((pool.size(), pool.cache_size()), (1023, 32));
    let watch = pool.watch();
    let mut held = Vec::new();
    for i in 1..=100u32 {
        held.push(pool.alloc().expect("mbuf"));
        let c = pool.counts();
        assert_eq!((c.in_use, c.free), (i, 1023 - i), "after {i} allocations");
    }
    assert_eq!(watch.counts().map(|c| c.in_use), Some(100));
    // The first 32 go back into the main lcore's cache, the rest to the ring: all free again.
    held.truncate(68);
    assert_eq!(pool.counts().in_use, 68);
    held.clear();
    assert_eq!(
        pool.counts(),
        idle,
        "mbufs in the lcore cache count as free"
    );
    // The same from a worker lcore, whose cache is its own; read from here while it holds them.
    let w = eal.workers()[0];
    let wpool = pool.clone();
    let (tx, rx) = std::sync::mpsc::channel::<u32>();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    dpdk::remote_launch(w, move || {
        let mut b = Burst::new();
        assert!(wpool.alloc_bulk(&mut b, BURST));
        let _ = tx.send(wpool.in_use());
        let _ = go_rx.recv_timeout(Duration::from_secs(10));
        drop(b);
        let _ = tx.send(wpool.in_use());
    })
    .expect("launch");
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(BURST as u32));
    assert_eq!(
        pool.counts().in_use,
        BURST as u32,
        "seen from another thread"
    );
    go_tx.send(()).expect("worker waits");
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(0));
    dpdk::wait_lcore(w).expect("worker ok");
    assert_eq!(pool.counts(), idle);

    // The adapter reports the pool it was given in `stats`.
    let shared = Arc::new(Shared::new(
        4,
        4,
        16,
        1,
        [2, 0, 0, 0, 0, 1],
        Ipv4Addr::new(198, 18, 0, 2),
        24,
    ));
    let adapter = Adapter::new(shared, port, vec![0]).with_pool(rpool.watch());
    let model = Model::new(4, 4);
    let held: Vec<_> = (0..7).map(|_| rpool.alloc().expect("mbuf")).collect();
    let r = adapter.stats(&model);
    assert_eq!(r.mempool.size, 4095);
    assert_eq!(r.mempool.in_use, 7);
    assert_eq!(r.mempool.free, 4095 - 7);
    drop(held);
    assert_eq!(adapter.stats(&model).mempool.in_use, 0);
    let json = serde_json::to_value(adapter.stats(&model)).expect("json");
    assert_eq!(json["mempool"]["in_use"], 0, "{json}");
    assert_eq!(json["mempool"]["free"], 4095, "{json}");
    assert_eq!(json["mempool"]["size"], 4095, "{json}");

    drop(pool);
    assert_eq!(
        watch.counts(),
        None,
        "the watch does not keep the pool alive"
    );
}

/// Removes the EAL's runtime directory of this test, also when the test fails.
struct RunDir(String);

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
