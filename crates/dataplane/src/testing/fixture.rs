//! The small fixed configuration the malformed-frame corpus and the pipeline fuzz target run
//! against: one port, the director's address (DIP), one VIP with a TCP service on port 80 and a
//! UDP service on port 53, both served by two real servers whose MACs are resolved.
//!
//! ```text
//! clients 198.18.1.0/24 ── router 02:00:00:00:00:0a ─┐
//!                                                    ├─ port 02:70:63:61:70:00 (DIP 198.18.0.2/24)
//! RS1 198.18.0.11 02:00:00:00:00:11 ─────────────────┤   VIP 198.18.0.100 tcp:80 udp:53, rr
//! RS2 198.18.0.12 02:00:00:00:00:12 ─────────────────┘
//! ```
//!
//! The port's MAC is the one `net_pcap` gives its first device, so the same frames serve the
//! in-process engine test.

use crate::flow::Timeouts;
use crate::model::{Forward, Model, Protocol, SchedulerKind, ServerSpec, ServiceKey, ServiceSpec};
use crate::pipeline::{KernelPath, Worker, WorkerConfig};
use crate::snapshot::{Behaviour, Shared};
use std::net::Ipv4Addr;
use std::sync::Arc;

/// The port's MAC: `net_pcap`'s first device ("pcap" in ASCII after a locally administered 02).
pub const PORT_MAC: [u8; 6] = [0x02, 0x70, 0x63, 0x61, 0x70, 0x00];
/// The clients' router: the source MAC of every client frame.
pub const ROUTER_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x0a];
/// The router's own address (it asks for the VIP).
pub const ROUTER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 254);
/// Real server 1 and its MAC.
pub const RS1: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 11);
pub const RS1_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x11];
/// Real server 2 and its MAC.
pub const RS2: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 12);
pub const RS2_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x12];
/// A host on the segment that claims other hosts' addresses.
pub const ATTACKER_MAC: [u8; 6] = [0x02, 0xde, 0xad, 0xbe, 0xef, 0x01];
/// Another host on the segment, not tracked by the director.
pub const STRANGER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 77);
pub const STRANGER_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x77];
/// The director's own address and its prefix length.
pub const DIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
pub const PREFIX_LEN: u8 = 24;
/// The virtual address.
pub const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
/// A client (off-link: its frames come from the router).
pub const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 10);
/// The TCP service's port and the UDP service's port on the VIP.
pub const TCP_PORT: u16 = 80;
pub const UDP_PORT: u16 = 53;
/// Flow table entries of a fixture's worker unless told otherwise.
pub const FLOW_CAPACITY: usize = 1024;

/// The TCP service VIP:80.
pub fn tcp_service() -> ServiceKey {
    ServiceKey {
        proto: Protocol::Tcp,
        vip: VIP,
        port: TCP_PORT,
    }
}

/// The UDP service VIP:53.
pub fn udp_service() -> ServiceKey {
    ServiceKey {
        proto: Protocol::Udp,
        vip: VIP,
        port: UDP_PORT,
    }
}

/// The configuration: both services, round robin, RS1 and RS2 (weight 1, direct routing) in
/// each.
pub fn model() -> Model {
    let mut m = Model::new(4, 8);
    for key in [tcp_service(), udp_service()] {
        m.add_service(ServiceSpec {
            key,
            scheduler: SchedulerKind::Rr,
            persistent: None,
            netmask: Ipv4Addr::BROADCAST,
            flags: vec![],
        })
        .expect("the fixture's service is valid");
        for addr in [RS1, RS2] {
            m.add_server(
                &key,
                ServerSpec {
                    addr,
                    port: 0,
                    weight: 1,
                    forward: Forward::Dr,
                    upper: 0,
                    lower: 0,
                },
            )
            .expect("the fixture's server is valid");
        }
    }
    m
}

/// What may vary between fixtures.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// The worker's flow table entries.
    pub flow_capacity: usize,
    /// The clock (engine milliseconds) at which the real servers' MACs were learned.
    pub now_ms: u64,
    /// `[dataplane] sloppy_tcp`.
    pub sloppy_tcp: bool,
    /// The kernel path (on in the fixture, with a rate no test reaches: [`KERNEL_PATH`]).
    pub kernel_path: Option<KernelPath>,
    /// `[network] vlan` (none in the fixture; the fuzz target's setup may ask for [`VLAN`]).
    pub vlan: Option<u16>,
}

/// The VLAN id of a fixture on a VLAN (the one the corpus's tagged cases carry).
pub const VLAN: u16 = 10;

/// The fixture's kernel path: frames to the DIP go to the kernel; a million per second.
pub const KERNEL_PATH: KernelPath = KernelPath {
    rate_pps: 1_000_000,
    burst: 1_000_000,
};

impl Default for Options {
    fn default() -> Self {
        Options {
            flow_capacity: FLOW_CAPACITY,
            now_ms: 0,
            sloppy_tcp: false,
            kernel_path: Some(KERNEL_PATH),
            vlan: None,
        }
    }
}

/// The configuration published and one worker (the ARP worker) forwarding by it.
#[derive(Debug)]
pub struct Fixture {
    pub shared: Arc<Shared>,
    pub model: Model,
    pub worker: Worker,
}

impl Fixture {
    /// The default fixture (MACs learned at time 0).
    pub fn new() -> Self {
        Self::with(Options::default())
    }

    pub fn with(o: Options) -> Self {
        let model = model();
        let shared = Arc::new(
            Shared::new(
                model.max_services(),
                model.max_servers(),
                8,
                1,
                PORT_MAC,
                DIP,
                PREFIX_LEN,
            )
            .with_persistence(64)
            .with_vlan(o.vlan.and_then(crate::wire::ethernet::VlanId::new))
            .with_settings(
                Timeouts::default(),
                Behaviour {
                    sloppy_tcp: o.sloppy_tcp,
                    ..Behaviour::default()
                },
            ),
        );
        shared.publish(&model).expect("the fixture publishes");
        for (ip, mac) in [(RS1, RS1_MAC), (RS2, RS2_MAC)] {
            let slot = shared
                .neigh
                .find(ip)
                .expect("a published server's address is tracked");
            shared.neigh.confirm(slot, mac, o.now_ms);
        }
        let worker = Worker::new(
            WorkerConfig {
                worker: 0,
                flow_capacity: o.flow_capacity,
                is_arp_worker: true,
            },
            Arc::clone(&shared),
        );
        let worker = match o.kernel_path {
            Some(k) => worker.with_kernel_path(k),
            None => worker,
        };
        Fixture {
            shared,
            model,
            worker,
        }
    }

    /// The MACs the neighbour table holds for RS1 and RS2 now.
    pub fn neighbour_macs(&self) -> [Option<[u8; 6]>; 2] {
        neighbour_macs(&self.shared)
    }
}

impl Default for Fixture {
    fn default() -> Self {
        Self::new()
    }
}

/// The MACs `shared`'s neighbour table holds for RS1 and RS2.
pub fn neighbour_macs(shared: &Shared) -> [Option<[u8; 6]>; 2] {
    [RS1, RS2].map(|ip| shared.neigh.find(ip).and_then(|s| shared.neigh.mac(s)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Verdict;

    #[test]
    fn the_fixture_resolves_both_servers_and_forwards_a_syn() {
        let mut fx = Fixture::new();
        assert_eq!(fx.neighbour_macs(), [Some(RS1_MAC), Some(RS2_MAC)]);
        let snap = fx.worker.snapshot();
        assert_eq!(snap.services.len(), 2);
        assert!(snap.is_vip(u32::from(VIP)));
        // A SYN to VIP:80 goes to a real server (the bytes as in the corpus's fixture).
        let mut f = crate::testing::corpus::tcp(40000, 0x02);
        assert_eq!(fx.worker.process(&mut f, 0), Verdict::Forward);
        assert!(f[..6] == RS1_MAC || f[..6] == RS2_MAC);
    }
}
