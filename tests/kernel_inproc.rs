//! The kernel path in process, on real mbufs and a real tap interface: EAL with `--no-huge
//! --no-pci`, a `net_pcap` data port (reads `in.pcap`; two tx queues: the worker's to
//! `out.pcap`, the kernel-path thread's to `kernel-out.pcap`), the kernel interface `rvk0` made
//! by `net_tap` with the port's MAC and the DIP, one worker loop and the kernel-path thread.
//!
//! A TCP SYN to the DIP injected on the data port must arrive on the tap interface (its kernel
//! rx counter), and the kernel's answer (it must first ask ARP for the client) must leave on the
//! data port through the kernel-path thread's tx queue.
//!
//! The test runs in a network namespace of its own (`rvk-inproc-<pid>`, created and deleted
//! here): it starts itself again under `ip netns exec` and checks what that run says.

mod common;
use common::{is_root, read_pcap, write_pcap};
use rvs::config::{KernelConfig, KernelDriver};
use rvs::dpdk::{Eal, Mempool, Port, PortConfig, PortId};
use rvs::engine::WorkerLoop;
use rvs::kernel::{DataTx, KernelIf, KernelThread, Ring};
use rvs_dataplane::model::Model;
use rvs_dataplane::pipeline::{KernelPath, Worker, WorkerConfig};
use rvs_dataplane::snapshot::Shared;
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// net_pcap derives the MAC of its first device from "pcap": 02:70:63:61:70:00.
const PORT_MAC: [u8; 6] = [0x02, 0x70, 0x63, 0x61, 0x70, 0x00];
const CLIENT_MAC: [u8; 6] = [0x02, 0x52, 0x56, 0, 0, 0x10];
const DIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const IFACE: &str = "rvk0";
/// Set in the run inside the namespace.
const INSIDE: &str = "RVK_KERNEL_INPROC_NETNS";

/// TCP SYN 198.18.0.10:40000 -> 198.18.0.2:22 (the DIP; nothing listens, so the kernel
/// answers with a RST, after resolving the client by ARP).
fn syn_to_dip() -> Vec<u8> {
    let mut f = Vec::new();
    // Ethernet: dst port MAC, src client, type IPv4
    f.extend_from_slice(&PORT_MAC);
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&[0x08, 0x00]);
    // IPv4: v4 IHL 5, tos 0, total length 40, id 1, DF, ttl 64, proto TCP, header checksum
    // (4500 0028 0001 4000 4006 + c612 000a c612 0002: sum 0x2_515f -> 0x5161 -> 0xae9e)
    f.extend_from_slice(&[
        0x45, 0x00, 0x00, 0x28, 0x00, 0x01, 0x40, 0x00, 0x40, 0x06, 0xae, 0x9e,
    ]);
    // source 198.18.0.10, destination 198.18.0.2 (the DIP)
    f.extend_from_slice(&[198, 18, 0, 10, 198, 18, 0, 2]);
    // TCP: sport 40000, dport 22, seq 1, ack 0, data offset 5, SYN, window, checksum, urgent
    f.extend_from_slice(&[0x9c, 0x40, 0x00, 0x16]);
    f.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
    fix_tcp_checksum(&mut f);
    f.resize(60, 0);
    f
}

/// The TCP checksum over the pseudo-header (the kernel checks it, unlike a DR director).
fn fix_tcp_checksum(f: &mut [u8]) {
    // source and destination addresses, zero, protocol, TCP length, then the segment
    let mut b = f[26..34].to_vec();
    b.extend_from_slice(&[0, 6, 0, 20]);
    b.extend_from_slice(&f[34..54]);
    let c = rvs_dataplane::wire::ipv4::internet_checksum(&b);
    f[50..52].copy_from_slice(&c.to_be_bytes());
}

fn ip_ok(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn the_kernel_path_through_a_tap_interface() {
    if !is_root() {
        eprintln!("kernel_inproc: skipped, DPDK and namespaces need root");
        return;
    }
    if std::env::var_os(INSIDE).is_some() {
        inside_the_namespace();
        return;
    }
    if !std::path::Path::new("/dev/net/tun").exists() || !ip_ok(&["-V"]) {
        eprintln!("kernel_inproc: skipped, needs /dev/net/tun and iproute2");
        return;
    }
    let ns = format!("rvk-inproc-{}", std::process::id());
    assert!(ip_ok(&["netns", "add", &ns]), "ip netns add {ns}");
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("ip")
        .args(["netns", "exec", &ns])
        .arg(&exe)
        .args([
            "--exact",
            "the_kernel_path_through_a_tap_interface",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(INSIDE, "1")
        .output();
    let deleted = ip_ok(&["netns", "delete", &ns]);
    let out = out.expect("run the test inside the namespace");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    assert!(deleted, "ip netns delete {ns}");
    assert!(out.status.success(), "the run inside {ns} failed");
    assert!(
        text.contains("kernel_inproc: checked"),
        "the run inside {ns} did not check anything"
    );
}

fn sys_counter(name: &str) -> u64 {
    std::fs::read_to_string(format!("/sys/class/net/{IFACE}/statistics/{name}"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn inside_the_namespace() {
    assert!(ip_ok(&["link", "set", "lo", "up"]));
    let tmp = tempfile::tempdir().unwrap();
    let rx = tmp.path().join("in.pcap");
    let tx = tmp.path().join("out.pcap");
    let ktx = tmp.path().join("kernel-out.pcap");
    write_pcap(&rx, &[syn_to_dip()]);
    let args: Vec<String> = vec![
        "rvk-test".into(),
        "-l".into(),
        "0".into(),
        "--no-huge".into(),
        "--no-pci".into(),
        "-m".into(),
        "256".into(),
        "--file-prefix".into(),
        format!("rvk-kernel-{}", std::process::id()),
        "--vdev".into(),
        format!(
            "net_pcap0,rx_pcap={},tx_pcap={},tx_pcap={}",
            rx.display(),
            tx.display(),
            ktx.display()
        ),
    ];
    let eal = Eal::init(&args).expect("EAL init");
    let pool = Arc::new(Mempool::create("kernel_test", 4095, 64, 2048 + 128, -1).unwrap());
    let conf = PortConfig {
        rx_queues: 1,
        tx_queues: 2,
        rx_desc: 256,
        tx_desc: 256,
        rss: false,
        promiscuous: true,
    };
    let mut port = Port::configure(PortId(0), &conf, &pool).expect("configure");
    port.start().expect("start");
    assert_eq!(port.mac(), PORT_MAC);

    let shared = Arc::new(Shared::new(16, 64, 64, 1, PORT_MAC, DIP, 24));
    shared.publish(&Model::new(16, 64)).unwrap();
    let kcfg = KernelConfig {
        name: IFACE.into(),
        driver: KernelDriver::Tap,
        ..KernelConfig::default()
    };
    let kif = KernelIf::open(&eal, &kcfg, PORT_MAC, DIP, 24, &pool).expect("the tap interface");
    assert_eq!(kif.port.id(), PortId(1), "the data port keeps its id");
    assert_eq!(kif.port.mac(), PORT_MAC, "the tap carries the port's MAC");
    let ring = Arc::new(Ring::new(64));
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let job = KernelThread::new(
            vec![Arc::clone(&ring)],
            kif.port.queue(0),
            DataTx::Queue(port.tx_queue(1).expect("the kernel path's tx queue")),
            shared.stats.kernel_handle(),
            Arc::clone(&stop),
        );
        std::thread::spawn(move || job.run())
    };
    let worker = Worker::new(
        WorkerConfig {
            worker: 0,
            flow_capacity: 1024,
            is_arp_worker: true,
        },
        Arc::clone(&shared),
    )
    .with_kernel_path(KernelPath::per_worker(1000, 1));
    let stopper = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1500));
            stop.store(true, Ordering::Relaxed);
        })
    };
    WorkerLoop::new(worker, port.queue(0), Arc::clone(&pool), Arc::clone(&stop))
        .with_kernel_ring(ring)
        .run();
    stopper.join().unwrap();
    thread.join().unwrap();

    let rx_on_tap = sys_counter("rx_packets");
    let report = shared.stats(&Model::new(16, 64));
    drop(kif);
    drop(port); // closes the devices: the pcap files are complete
    let out = read_pcap(&tx);
    let kout = read_pcap(&ktx);
    eprintln!(
        "kernel_inproc: tap rx {rx_on_tap}, kernel {:?}, {} frames on the worker's queue, {} on \
         the kernel path's",
        report.kernel,
        out.len(),
        kout.len()
    );
    assert_eq!(
        report.kernel.to_kernel, 1,
        "the SYN was handed to the kernel"
    );
    assert!(rx_on_tap >= 1, "the tap interface received the SYN");
    assert!(report.kernel.from_kernel >= 1, "the kernel sent something");
    // The kernel asks for the client before it can answer: an ARP request from the DIP, sent
    // from the port's MAC, on the kernel path's queue of the data port.
    let asks = kout.iter().any(|f| {
        f.len() >= 42
            && f[12..14] == [0x08, 0x06]
            && f[6..12] == PORT_MAC
            && f[20..22] == [0, 1]
            && f[28..32] == DIP.octets()
            && f[38..42] == [198, 18, 0, 10]
    });
    assert!(
        asks,
        "no ARP request for the client from the kernel: {kout:02x?}"
    );
    // The worker's queue carried none of the kernel's frames.
    assert!(out
        .iter()
        .all(|f| f[6..12] == PORT_MAC && f[12..14] == [0x08, 0x06]));
    eprintln!("kernel_inproc: checked");
    drop(pool);
    drop(eal);
}
