//! High availability: the VRRP runner ([`vrrp`]) and the connection-sync thread ([`sync`]),
//! both plain threads off the worker lcores, speaking through the kernel interface.
//!
//! ```text
//! VRRP adverts ─► port ─► worker (proto 112, outside the kernel path's rate) ─► rvs0 ─► raw socket
//!                                                  VRRP runner ─► HaSink (control): standby / ours,
//!                                                                 gratuitous ARPs, status
//! sync (UDP 8848) ─► port ─► worker ─► rvs0 ─► UDP socket ─► sync thread ─► in rings ─► workers
//! workers ─► out rings ─► sync thread ─► UDP socket ─► rvs0 ─► port
//! ```
//!
//! Neither thread touches a worker: they meet the dataplane through snapshots (published by the
//! control server) and the bounded sync rings. See docs/ha.md.

pub mod sync;
pub mod vrrp;

use rvs_control::ha::HaConfig;
use rvs_dataplane::sync::SyncCounters;
use serde_json::{json, Value};
use std::sync::atomic::Ordering::Relaxed;

/// The HA configuration `run` uses: the rvs config's, or keepalived.conf's, not both (two
/// sources of one VRRP instance would disagree sooner or later).
pub fn merge(own: HaConfig, keepalived: Option<&HaConfig>) -> Result<HaConfig, String> {
    match keepalived {
        Some(k) if !k.is_empty() => {
            if !own.is_empty() {
                return Err(
                    "VRRP/sync is configured both in the rvs config ([vrrp], [sync]) and in keepalived.conf (vrrp_instance, lvs_sync_daemon); keep one"
                        .into(),
                );
            }
            let ha = k.clone();
            ha.validate()?;
            Ok(ha)
        }
        _ => {
            own.validate()?;
            Ok(own)
        }
    }
}

/// The workers' side of sync for `stats` (the thread adds its messages).
pub fn counters_json(c: &SyncCounters) -> Value {
    json!({
        "out_records": c.out_records.load(Relaxed),
        "out_dropped": c.out_dropped.load(Relaxed),
        "in_records": c.in_records.load(Relaxed),
        "in_dropped": c.in_dropped.load(Relaxed),
        "installed": c.installed.load(Relaxed),
        "install_failed": c.install_failed.load(Relaxed),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_control::ha::{SyncConfig, VrrpInstance};
    use std::net::Ipv4Addr;

    fn one() -> HaConfig {
        HaConfig {
            instances: vec![VrrpInstance::new(
                "VI_1",
                51,
                100,
                vec![Ipv4Addr::new(198, 18, 0, 100)],
            )],
            scripts: vec![],
            sync: Some(SyncConfig::new("VI_1")),
        }
    }

    #[test]
    fn one_source_of_ha() {
        assert_eq!(merge(one(), None).unwrap(), one());
        assert_eq!(merge(HaConfig::default(), Some(&one())).unwrap(), one());
        assert_eq!(merge(one(), Some(&HaConfig::default())).unwrap(), one());
        let e = merge(one(), Some(&one())).unwrap_err();
        assert!(e.contains("both"), "{e}");
        let mut bad = one();
        bad.sync = Some(SyncConfig::new("nope"));
        assert!(merge(HaConfig::default(), Some(&bad))
            .unwrap_err()
            .contains("nope"));
    }

    #[test]
    fn counters_are_shown() {
        let c = SyncCounters::default();
        c.installed.store(7, Relaxed);
        assert_eq!(counters_json(&c)["installed"], 7);
        assert_eq!(counters_json(&c)["out_dropped"], 0);
    }
}
