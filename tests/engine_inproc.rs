//! The engine in process on real mbufs: EAL with `--no-huge --no-pci`, a `net_pcap` port that
//! reads `in.pcap` and writes `out.pcap`, one worker loop (the one the daemon runs) on the main
//! lcore. Frames go in through DPDK, come out through DPDK, and are checked byte by byte.
//!
//! One test function: the EAL can be initialised once per process.

use rvs::dpdk::{Eal, Mempool, Port, PortConfig};
use rvs::engine::WorkerLoop;
use rvs_dataplane::model::{
    Forward, Model, Protocol, SchedulerKind, ServerSpec, ServiceKey, ServiceSpec, StaticNeighbour,
};
use rvs_dataplane::pipeline::{Worker, WorkerConfig};
use rvs_dataplane::snapshot::Shared;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// net_pcap derives the MAC of its first device from "pcap": 02:70:63:61:70:00.
const PORT_MAC: [u8; 6] = [0x02, 0x70, 0x63, 0x61, 0x70, 0x00];
const RS1_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x11];
const RS2_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x12];
const CLIENT_MAC: [u8; 6] = [0x02, 0x52, 0x56, 0, 0, 0x10];

/// ARP request: who has 198.18.0.100 (the VIP)? tell 198.18.0.10.
fn arp_request_for_vip() -> Vec<u8> {
    let mut f = vec![
        // Ethernet: dst broadcast, src client, type ARP
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x52, 0x56, 0x00, 0x00, 0x10, 0x08, 0x06,
        // ARP: htype 1, ptype IPv4, hlen 6, plen 4, op 1 (request)
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01,
        // sender MAC, sender IP 198.18.0.10
        0x02, 0x52, 0x56, 0x00, 0x00, 0x10, 198, 18, 0, 10,
        // target MAC (unknown), target IP 198.18.0.100
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 198, 18, 0, 100,
    ];
    f.resize(60, 0); // Ethernet padding
    f
}

/// The reply rvs must send: is-at PORT_MAC, straight back to the client.
fn arp_reply_for_vip() -> Vec<u8> {
    let mut f = vec![
        // Ethernet: dst client, src port, type ARP
        0x02, 0x52, 0x56, 0x00, 0x00, 0x10, 0x02, 0x70, 0x63, 0x61, 0x70, 0x00, 0x08, 0x06,
        // ARP header, op 2 (reply)
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02, // sender: port MAC, the VIP
        0x02, 0x70, 0x63, 0x61, 0x70, 0x00, 198, 18, 0, 100, // target: the client
        0x02, 0x52, 0x56, 0x00, 0x00, 0x10, 198, 18, 0, 10,
    ];
    f.resize(60, 0);
    f
}

/// TCP segment 198.18.0.10:sport -> 198.18.0.100:80 with the given flags (the IPv4 header
/// checksum is right: net_pcap does not check it, so the pipeline does; the TCP checksum is
/// not looked at by a DR director).
fn tcp(sport: u16, flags: u8) -> Vec<u8> {
    let sp = sport.to_be_bytes();
    let mut f = Vec::new();
    // Ethernet: dst port MAC, src client, type IPv4
    f.extend_from_slice(&PORT_MAC);
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&[0x08, 0x00]);
    // IPv4: v4 IHL 5, tos 0, total length 40, id 1, DF, ttl 64, proto TCP, header checksum
    f.extend_from_slice(&[
        0x45, 0x00, 0x00, 0x28, 0x00, 0x01, 0x40, 0x00, 0x40, 0x06, 0xae, 0x3c,
    ]);
    // source 198.18.0.10, destination 198.18.0.100 (the VIP)
    f.extend_from_slice(&[198, 18, 0, 10, 198, 18, 0, 100]);
    // TCP: sport, dport 80, seq, ack, data offset 5, flags, window, checksum, urgent
    f.extend_from_slice(&[sp[0], sp[1], 0x00, 0x50]);
    f.extend_from_slice(&[
        0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0xab, 0xcd, 0, 0,
    ]);
    f.resize(60, 0);
    f
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;

/// An IPv6 frame (dropped as `ipv6`): Ethernet header with type 0x86dd and a stub payload.
fn ipv6_frame() -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&PORT_MAC);
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0, 0, 0, 0x3b, 0x40]);
    f.resize(60, 0);
    f
}

fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    // Classic pcap: magic, v2.4, tz 0, sigfigs 0, snaplen 65535, linktype 1 (Ethernet).
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    for v in [0u32, 0, 65535, 1] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for (i, f) in frames.iter().enumerate() {
        for v in [1u32, i as u32, f.len() as u32, f.len() as u32] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(f);
    }
    std::fs::write(path, out).expect("write pcap");
}

fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let b = std::fs::read(path).expect("read out.pcap");
    assert!(b.len() >= 24, "out.pcap too short");
    let mut at = 24;
    let mut frames = Vec::new();
    while at + 16 <= b.len() {
        let incl = u32::from_le_bytes(b[at + 8..at + 12].try_into().unwrap()) as usize;
        at += 16;
        assert!(at + incl <= b.len(), "truncated pcap record");
        frames.push(b[at..at + incl].to_vec());
        at += incl;
    }
    frames
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

#[test]
fn engine_forwards_real_mbufs_through_net_pcap() {
    if !is_root() {
        eprintln!("engine_inproc: skipped, DPDK needs root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let rx = tmp.path().join("in.pcap");
    let tx = tmp.path().join("out.pcap");
    let input = vec![
        arp_request_for_vip(),
        tcp(40000, SYN),
        tcp(40001, SYN),
        tcp(40002, SYN),
        tcp(40003, SYN),
        tcp(40000, ACK),
        vec![0xff; 10], // shorter than an Ethernet header
        ipv6_frame(),
    ];
    write_pcap(&rx, &input);

    let args: Vec<String> = [
        "rvs-test".to_string(),
        "-l".into(),
        "0".into(),
        "--no-huge".into(),
        "--no-pci".into(),
        "-m".into(),
        "256".into(),
        "--file-prefix".into(),
        format!("rvs-engine-{}", std::process::id()),
        "--vdev".into(),
        format!(
            "net_pcap0,rx_pcap={},tx_pcap={}",
            rx.display(),
            tx.display()
        ),
    ]
    .into();
    let eal = Eal::init(&args).expect("EAL init");
    let pool = Arc::new(Mempool::create("engine_test", 2047, 64, 2048 + 128, -1).unwrap());
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
    assert_eq!(port.mac(), PORT_MAC);

    let shared = Arc::new(Shared::new(
        16,
        64,
        64,
        1,
        port.mac(),
        Ipv4Addr::new(198, 18, 0, 2),
        24,
    ));
    let mut model = Model::new(16, 64);
    let key = ServiceKey {
        proto: Protocol::Tcp,
        vip: Ipv4Addr::new(198, 18, 0, 100),
        port: 80,
    };
    model
        .add_service(ServiceSpec {
            key,
            scheduler: SchedulerKind::Rr,
            persistent: None,
            netmask: Ipv4Addr::BROADCAST,
            flags: vec![],
        })
        .unwrap();
    for (last, mac) in [(11, RS1_MAC), (12, RS2_MAC)] {
        let addr = Ipv4Addr::new(198, 18, 0, last);
        model
            .add_server(
                &key,
                ServerSpec {
                    addr,
                    port: 80,
                    weight: 1,
                    forward: Forward::Dr,
                    upper: 0,
                    lower: 0,
                },
            )
            .unwrap();
        model
            .set_static_neighbour(StaticNeighbour { addr, mac })
            .unwrap();
    }
    shared.publish(&model).expect("publish");

    let worker = Worker::new(
        WorkerConfig {
            worker: 0,
            flow_capacity: 1024,
            is_arp_worker: true,
        },
        Arc::clone(&shared),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let stopper = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(400));
            stop.store(true, Ordering::Relaxed);
        })
    };
    WorkerLoop::new(worker, port.queue(0), Arc::clone(&pool), stop).run();
    stopper.join().unwrap();

    let report = shared.stats(&model);
    drop(port); // closes the device, which flushes out.pcap
    let out = read_pcap(&tx);

    // The ARP reply for the VIP, exactly.
    let want = arp_reply_for_vip();
    assert!(
        out.iter().any(|f| f[..42] == want[..42]),
        "no ARP reply for the VIP among {} frames",
        out.len()
    );
    // A gratuitous ARP announcing the VIP (sender IP = target IP = VIP, broadcast).
    assert!(
        out.iter().any(|f| f.len() >= 42
            && f[12..14] == [0x08, 0x06]
            && f[0..6] == [0xff; 6]
            && f[28..32] == [198, 18, 0, 100]
            && f[38..42] == [198, 18, 0, 100]),
        "no gratuitous ARP for the VIP"
    );

    // The TCP frames, in order: dst MAC := real server (rr), src MAC := port, the rest untouched.
    let fwd: Vec<&Vec<u8>> = out.iter().filter(|f| f[12..14] == [0x08, 0x00]).collect();
    assert_eq!(fwd.len(), 5, "forwarded frames");
    let sent = [&input[1], &input[2], &input[3], &input[4], &input[5]];
    let dst: Vec<[u8; 6]> = fwd.iter().map(|f| f[0..6].try_into().unwrap()).collect();
    assert_ne!(dst[0], dst[1], "rr alternates");
    assert_eq!(dst[0], dst[2]);
    assert_eq!(dst[1], dst[3]);
    assert!(dst[0] == RS1_MAC || dst[0] == RS2_MAC);
    assert!(dst[1] == RS1_MAC || dst[1] == RS2_MAC);
    assert_eq!(dst[4], dst[0], "the ACK of the first flow follows its SYN");
    for (f, s) in fwd.iter().zip(sent) {
        assert_eq!(f[6..12], PORT_MAC, "source MAC is the port's");
        assert_eq!(f[12..], s[12..], "L3/L4 bytes untouched");
    }

    // Drops counted by name; nothing else left the port.
    assert_eq!(
        report.drops.get("short_frame").copied(),
        Some(1),
        "{:?}",
        report.drops
    );
    assert_eq!(
        report.drops.get("ipv6").copied(),
        Some(1),
        "{:?}",
        report.drops
    );
    let svc = &report.services[0];
    assert_eq!(svc.counters.conns, 4);
    assert_eq!(svc.counters.packets, 5);
    drop(pool);
    drop(eal);
}
