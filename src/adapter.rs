//! The one adapter between the control crate and the dataplane: it answers
//! [`rvs_control::proto::Dataplane`] with the dataplane's shared state ([`Shared`]) and adds
//! what only the daemon knows: the port's counters and the lcore each worker runs on.

use crate::dpdk::{self, PortId};
use rvs_control::proto::Dataplane;
use rvs_dataplane::model::{Model, Timeouts};
use rvs_dataplane::report::{ConnEntry, NeighState, PortStats, PublishError, StatsReport};
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
    /// A failure to read the port's counters was logged already.
    port_error_logged: AtomicBool,
}

impl Adapter {
    pub fn new(shared: Arc<Shared>, port: PortId, lcores: Vec<u32>) -> Self {
        Adapter {
            shared,
            port,
            lcores,
            port_error_logged: AtomicBool::new(false),
        }
    }
}

impl Dataplane for Adapter {
    fn publish(&self, model: &Model) -> Result<(), PublishError> {
        self.shared.publish(model)
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
}
