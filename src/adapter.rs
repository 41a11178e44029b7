//! The one adapter between the control crate and the dataplane: it answers
//! [`rvs_control::proto::Dataplane`] with the dataplane's shared state ([`Shared`]) and adds
//! what only the daemon knows: the port's counters, the mbuf pool's fill and the lcore each
//! worker runs on.

use crate::dpdk::{self, MempoolWatch, PortId};
use rvs_control::proto::{Dataplane, Director};
use rvs_dataplane::model::{Model, Timeouts};
use rvs_dataplane::report::{
    ConnEntry, MempoolStats, NeighState, NeighbourTableStats, PortStats, PublishError, StatsReport,
};
use rvs_dataplane::snapshot::Shared;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The dataplane as the control thread sees it: the shared snapshot state, plus the port's
/// counters and the lcores the workers run on.
pub struct Adapter {
    shared: Arc<Shared>,
    port: PortId,
    /// Worker i runs on lcore `lcores[i]`.
    lcores: Vec<u32>,
    /// The mbuf pool, read without keeping it alive (none in tests without an EAL).
    pool: Option<MempoolWatch>,
    /// A failure to read the port's counters was logged already.
    port_error_logged: AtomicBool,
}

impl Adapter {
    pub fn new(shared: Arc<Shared>, port: PortId, lcores: Vec<u32>) -> Self {
        Adapter {
            shared,
            port,
            lcores,
            pool: None,
            port_error_logged: AtomicBool::new(false),
        }
    }

    /// Report this pool's fill in `stats` (`mempool`).
    pub fn with_pool(mut self, pool: MempoolWatch) -> Self {
        self.pool = Some(pool);
        self
    }
}

impl Dataplane for Adapter {
    fn publish(&self, model: &Model) -> Result<(), PublishError> {
        self.shared.publish(model)
    }
    fn request_garp(&self, vip: Ipv4Addr) -> bool {
        self.shared.request_garp(u32::from(vip))
    }
    fn stats(&self, model: &Model) -> StatsReport {
        let mut r = self.shared.stats(model);
        for w in &mut r.workers {
            w.lcore = self.lcores.get(w.worker as usize).copied().unwrap_or(0);
        }
        r.port = match dpdk::port_stats(self.port) {
            Ok(p) => PortStats {
                ipackets: p.ipackets,
                opackets: p.opackets,
                ibytes: p.ibytes,
                obytes: p.obytes,
                imissed: p.imissed,
                ierrors: p.ierrors,
                oerrors: p.oerrors,
                rx_nombuf: p.rx_nombuf,
            },
            Err(e) => {
                // Reported as zeros, but never silently: the first failure is logged.
                if !self.port_error_logged.swap(true, Ordering::Relaxed) {
                    tracing::warn!(port = self.port.0, "port counters unavailable: {e}");
                }
                PortStats::default()
            }
        };
        if let Some(c) = self.pool.as_ref().and_then(MempoolWatch::counts) {
            r.mempool = MempoolStats {
                size: c.size,
                cache_size: c.cache_size,
                in_use: c.in_use,
                free: c.free,
            };
        }
        r.neighbours = NeighbourTableStats {
            entries: self.shared.neigh.len() as u64,
            capacity: self.shared.neigh.capacity() as u64,
        };
        r
    }
    fn neighbour(&self, addr: Ipv4Addr) -> NeighState {
        self.shared.neighbour(addr)
    }
    fn zero(&self, model: &Model) {
        self.shared.zero(model)
    }
    fn set_timeouts(&self, t: Timeouts) -> Result<(), PublishError> {
        self.shared.set_timeouts(t);
        Ok(())
    }
    fn timeouts(&self) -> Timeouts {
        self.shared.timeouts()
    }
    fn connections(&self, limit: usize) -> Vec<ConnEntry> {
        self.shared.connections(limit)
    }
    fn director(&self) -> Director {
        Director {
            dip: self.shared.dip(),
            prefix_len: u32::from(self.shared.dip_netmask()).leading_ones() as u8,
            mac: self.shared.port_mac(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_dataplane::model::{
        Forward, Protocol, SchedulerKind, ServerSpec, ServiceKey, ServiceSpec,
    };

    #[test]
    fn stats_name_each_workers_lcore_and_publish_reaches_the_workers_picture() {
        let shared = Arc::new(Shared::new(
            4,
            4,
            16,
            2,
            [2, 0, 0, 0, 0, 1],
            Ipv4Addr::new(198, 18, 0, 2),
            24,
        ));
        let a = Adapter::new(Arc::clone(&shared), PortId(0), vec![5, 7]);
        let mut m = Model::new(4, 4);
        let key = ServiceKey {
            proto: Protocol::Tcp,
            vip: Ipv4Addr::new(198, 18, 0, 100),
            port: 80,
        };
        m.add_service(ServiceSpec {
            key,
            scheduler: SchedulerKind::Rr,
            persistent: None,
            netmask: Ipv4Addr::BROADCAST,
            flags: vec![],
        })
        .unwrap();
        m.add_server(
            &key,
            ServerSpec {
                addr: Ipv4Addr::new(198, 18, 0, 11),
                port: 80,
                weight: 1,
                forward: Forward::default(),
                upper: 0,
                lower: 0,
            },
        )
        .unwrap();
        a.publish(&m).unwrap();
        assert_eq!(shared.load().services.len(), 1);
        let r = a.stats(&m);
        let lcores: Vec<(u32, u32)> = r.workers.iter().map(|w| (w.worker, w.lcore)).collect();
        assert_eq!(lcores, vec![(0, 5), (1, 7)]);
        // No EAL in this test: the port's counters cannot be read and are reported as zeros.
        assert_eq!(r.port, PortStats::default());
        // No pool given: zeros. The neighbour table tracks the one real server.
        assert_eq!(r.mempool, MempoolStats::default());
        assert_eq!(r.neighbours.entries, 1);
        assert_eq!(r.neighbours.capacity, shared.neigh.capacity() as u64);
        assert!(r.neighbours.capacity >= 16);
        a.set_timeouts(Timeouts {
            tcp: 10,
            tcp_fin: 20,
            udp: 30,
        })
        .unwrap();
        assert_eq!(a.timeouts().udp, 30);
        // The control plane learns the director's link from the shared state.
        assert_eq!(
            a.director(),
            Director {
                dip: Ipv4Addr::new(198, 18, 0, 2),
                prefix_len: 24,
                mac: [2, 0, 0, 0, 0, 1],
            }
        );
    }
}
