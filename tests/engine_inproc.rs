//! The engine in process on real mbufs: EAL with `--no-huge --no-pci`, a `net_pcap` port that
//! reads `in.pcap` and writes `out.pcap`, one worker loop (the one the daemon runs) on the main
//! lcore. Frames go in through DPDK, come out through DPDK, and are checked byte by byte.
//!
//! One test function: the EAL can be initialised once per process.

mod common;
use common::{is_root, read_pcap, write_pcap};
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

#[test]
fn engine_forwards_real_mbufs_through_net_pcap() {
    if !is_root() {
        eprintln!("engine_inproc: skipped, DPDK needs root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let rx = tmp.path().join("in.pcap");
    let tx = tmp.path().join("out.pcap");
    let arp_rx = tmp.path().join("arp-in.pcap");
    let arp_tx = tmp.path().join("arp-out.pcap");
    write_pcap(&arp_rx, &arp_spoofing_input());
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
        // a second port for the ARP spoofing check (see `arp_spoofing_is_refused`)
        "--vdev".into(),
        format!(
            "{ARP_PORT},rx_pcap={},tx_pcap={}",
            arp_rx.display(),
            arp_tx.display()
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

    arp_spoofing_is_refused(&eal, &pool, &arp_tx);
    drop(pool);
    drop(eal);
}

// ---- ARP spoofing (issue 12, finding 1), on a port of its own ----

const ARP_PORT: &str = "net_pcap_arp";
const EVIL_MAC: [u8; 6] = [0x02, 0xde, 0xad, 0xbe, 0xef, 0x01];

/// An ARP frame from `sha`, with the Ethernet source = the sender hardware address.
fn arp(op: u8, sha: [u8; 6], spa: [u8; 4], tha: [u8; 6], tpa: [u8; 4], dst: [u8; 6]) -> Vec<u8> {
    let mut f = Vec::new();
    // Ethernet: destination, source = sender, type ARP
    f.extend_from_slice(&dst);
    f.extend_from_slice(&sha);
    f.extend_from_slice(&[0x08, 0x06]);
    // ARP: htype 1 (Ethernet), ptype IPv4, hlen 6, plen 4, op
    f.extend_from_slice(&[0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, op]);
    // sender MAC and IP, target MAC and IP
    f.extend_from_slice(&sha);
    f.extend_from_slice(&spa);
    f.extend_from_slice(&tha);
    f.extend_from_slice(&tpa);
    f.resize(60, 0);
    f
}

/// What the spoofing port receives: the real server 198.18.0.11 answers our request (the
/// director asked just before), then three frames claim its address for EVIL_MAC, then six
/// clients connect (to the port's MAC, see [`arp_port_mac`]).
fn arp_spoofing_input() -> Vec<Vec<u8>> {
    const RS1: [u8; 4] = [198, 18, 0, 11];
    const DIP: [u8; 4] = [198, 18, 0, 2];
    let port = arp_port_mac();
    let mut frames = vec![
        // "198.18.0.11 is-at RS1_MAC", to the DIP and our MAC: the answer to our request
        arp(2, RS1_MAC, RS1, port, DIP, port),
        // the same, from the attacker: "198.18.0.11 is-at EVIL_MAC"
        arp(2, EVIL_MAC, RS1, port, DIP, port),
        // a gratuitous ARP request from the attacker for 198.18.0.11
        arp(1, EVIL_MAC, RS1, [0; 6], RS1, [0xff; 6]),
        // a request for the DIP with the real server's address as sender
        arp(1, EVIL_MAC, RS1, [0; 6], DIP, [0xff; 6]),
    ];
    for sport in 41000..41006 {
        let mut f = tcp(sport, SYN);
        f[..6].copy_from_slice(&port);
        frames.push(f);
    }
    frames
}

/// net_pcap derives each device's MAC from "pcap" and its index: the spoofing port is the
/// second device.
fn arp_port_mac() -> [u8; 6] {
    [0x02, 0x70, 0x63, 0x61, 0x70, 0x01]
}

/// The director resolved 198.18.0.11 from the answer to its own request; spoofed replies,
/// a gratuitous ARP and a request with the server's address as sender did not move its
/// traffic, were counted in `arp_refused`, and made the director ask again.
fn arp_spoofing_is_refused(eal: &Eal, pool: &Arc<Mempool>, tx: &Path) {
    let id = eal.port_by_name(ARP_PORT).expect("the spoofing port");
    let conf = PortConfig {
        rx_queues: 1,
        tx_queues: 1,
        rx_desc: 256,
        tx_desc: 256,
        rss: false,
        promiscuous: true,
    };
    let mut port = Port::configure(id, &conf, pool).expect("configure");
    port.start().expect("start");
    assert_eq!(port.mac(), arp_port_mac());
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
    let rs1 = Ipv4Addr::new(198, 18, 0, 11);
    model
        .add_server(
            &key,
            ServerSpec {
                addr: rs1,
                port: 80,
                weight: 1,
                forward: Forward::Dr,
                upper: 0,
                lower: 0,
            },
        )
        .unwrap();
    shared.publish(&model).expect("publish");
    let mut worker = Worker::new(
        WorkerConfig {
            worker: 0,
            flow_capacity: 1024,
            is_arp_worker: true,
        },
        Arc::clone(&shared),
    );
    // The director asks for 198.18.0.11 (on the engine's clock) just before the frames
    // arrive, so the first one answers it.
    let now_ms = rvs::dpdk::tsc() / (rvs::dpdk::tsc_hz() / 1000).max(1);
    let mut frames = [[0u8; 64]; 8];
    let n = worker.housekeeping(now_ms, &mut frames);
    assert!(
        frames[..n].iter().any(|f| f[38..42] == [198, 18, 0, 11]),
        "a request for the real server"
    );
    let stop = Arc::new(AtomicBool::new(false));
    let stopper = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(400));
            stop.store(true, Ordering::Relaxed);
        })
    };
    WorkerLoop::new(worker, port.queue(0), Arc::clone(pool), stop).run();
    stopper.join().unwrap();
    let report = shared.stats(&model);
    drop(port);
    let out = read_pcap(tx);

    // Every connection went to the real server's MAC, none to the attacker's.
    let fwd: Vec<[u8; 6]> = out
        .iter()
        .filter(|f| f[12..14] == [0x08, 0x00])
        .map(|f| f[..6].try_into().unwrap())
        .collect();
    assert_eq!(fwd, vec![RS1_MAC; 6], "forwarded to");
    // The three claims were refused and counted; two frames dropped for it (the request for
    // the DIP is answered, as any request for the DIP).
    assert_eq!(report.arp_refused, 3, "{report:?}");
    assert_eq!(
        report.drops.get("arp_refused").copied(),
        Some(2),
        "{:?}",
        report.drops
    );
    assert_eq!(report.workers[0].arp_replies, 1);
    // The claim made the director ask for 198.18.0.11 again at once (it is reachable: it
    // would not have asked for 30 s otherwise).
    assert!(
        out.iter().any(|f| f[12..14] == [0x08, 0x06]
            && f[20..22] == [0, 1]
            && f[28..32] == [198, 18, 0, 2]
            && f[38..42] == [198, 18, 0, 11]),
        "no fresh request for the real server among {} frames",
        out.len()
    );
}
