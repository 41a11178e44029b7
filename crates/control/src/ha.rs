//! High availability as configured: VRRP instances (RFC 5798 v3, or v2 for keepalived peers),
//! the scripts they track, and the connection-sync channel. Filled from the rvs config
//! (`[[vrrp.instance]]`, `[sync]`) or from keepalived.conf (`vrrp_instance`, `vrrp_script`,
//! `global_defs { lvs_sync_daemon ... }`); run by the daemon's HA thread.
//!
//! Times are kept in the unit the protocol uses: the advertisement interval in centiseconds
//! (RFC 5798 §5.2.7), everything else in milliseconds.

use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// VRRP's IPv4 multicast group (RFC 5798 §5.1.1.2).
pub const VRRP_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// The IP protocol number of VRRP.
pub const VRRP_PROTO: u8 = 112;
/// IPVS's sync daemon group and port (kept as defaults so captures read the same).
pub const SYNC_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 81);
pub const SYNC_PORT: u16 = 8848;

/// VRRP protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum VrrpVersion {
    /// RFC 3768 (keepalived's default `vrrp_version 2`), with its simple-password auth.
    V2,
    /// RFC 5798.
    #[default]
    V3,
}

/// The state an instance starts from (keepalived's `state MASTER|BACKUP`). RFC 5798 decides by
/// priority alone (255 starts as master); keepalived's `state MASTER` with a lower priority
/// only means "do not wait in BACKUP for an advert first" and is treated as a hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum InitialState {
    Master,
    #[default]
    Backup,
}

/// Gratuitous ARPs sent when an instance becomes master (keepalived's garp_master_*).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Garp {
    /// Delay before the second burst (`garp_master_delay`, s in keepalived; default 5 s).
    pub delay_ms: u32,
    /// GARPs per VIP in each burst (`garp_master_repeat`, default 5).
    pub repeat: u32,
    /// Spacing between the GARPs of a burst (`garp_interval`, default 0 = back to back).
    pub interval_ms: u32,
    /// Periodic GARPs while master (`garp_master_refresh`, 0 = off).
    pub refresh_ms: u32,
    /// GARPs per VIP per refresh (`garp_master_refresh_repeat`, default 1).
    pub refresh_repeat: u32,
}

impl Default for Garp {
    fn default() -> Self {
        Garp {
            delay_ms: 5000,
            repeat: 5,
            interval_ms: 0,
            refresh_ms: 0,
            refresh_repeat: 1,
        }
    }
}

/// Commands run on transitions (keepalived's notify_*): argv, run without a shell, in the
/// background; keepalived's generic `notify` gets `INSTANCE <name> <STATE> <priority>` appended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Notify {
    pub master: Option<Vec<String>>,
    pub backup: Option<Vec<String>>,
    pub fault: Option<Vec<String>>,
    pub stop: Option<Vec<String>>,
    pub generic: Option<Vec<String>>,
}

/// A `track_script` reference: a failing script puts the instance in FAULT (weight 0) or
/// changes its priority by `weight` (keepalived: positive added while the script succeeds,
/// negative added while it fails).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackScript {
    pub name: String,
    /// Overrides the script's own weight when set.
    pub weight: Option<i32>,
}

/// A `vrrp_script` block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VrrpScript {
    pub name: String,
    /// The command (argv, no shell).
    pub argv: Vec<String>,
    /// Seconds between runs (keepalived default 1).
    pub interval_ms: u32,
    /// Killed and counted failed after this long (default: interval).
    pub timeout_ms: u32,
    /// keepalived default 0: a failing script means FAULT.
    pub weight: i32,
    /// Successes in a row to count as up / failures in a row as down (default 1 / 1).
    pub rise: u32,
    pub fall: u32,
}

/// One VRRP instance: one virtual router (VRID) owning a set of VIPs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VrrpInstance {
    /// keepalived's instance name (`vrrp_instance NAME`), used by notify and lvs_sync_daemon.
    pub name: String,
    /// Virtual router id, 1..=255.
    pub vrid: u8,
    /// 1..=255; 255 = address owner (RFC 5798 §5.2.4; 0 is reserved for "master leaving").
    pub priority: u8,
    /// Advertisement interval, centiseconds (1..=4095; keepalived's `advert_int` is seconds,
    /// fractional allowed).
    pub advert_int_cs: u16,
    pub version: VrrpVersion,
    pub initial: InitialState,
    /// RFC 5798 Preempt_Mode (keepalived: on unless `nopreempt`).
    pub preempt: bool,
    /// keepalived's `preempt_delay` (ms): a preempting backup waits this long first.
    pub preempt_delay_ms: u32,
    /// VRRPv2 simple password (`authentication { auth_type PASS auth_pass X }`), up to 8 bytes.
    /// keepalived's AH is not supported.
    pub auth_pass: Option<String>,
    /// The VIPs this instance owns (each must be the VIP of services to be useful).
    pub vips: Vec<Ipv4Addr>,
    /// Unicast adverts from this source (default the DIP) to these peers instead of the group.
    pub unicast_src: Option<Ipv4Addr>,
    pub unicast_peers: Vec<Ipv4Addr>,
    pub garp: Garp,
    pub notify: Notify,
    pub track_scripts: Vec<TrackScript>,
    /// With sync on and preempting: wait this long at most for a bulk resync from the current
    /// master before taking over (rvs extension; 0 = do not wait).
    pub sync_wait_ms: u32,
}

impl VrrpInstance {
    /// An instance with keepalived's defaults for everything but its name, VRID, priority
    /// and VIPs.
    pub fn new(name: &str, vrid: u8, priority: u8, vips: Vec<Ipv4Addr>) -> Self {
        VrrpInstance {
            name: name.to_owned(),
            vrid,
            priority,
            advert_int_cs: 100,
            version: VrrpVersion::V3,
            initial: InitialState::Backup,
            preempt: true,
            preempt_delay_ms: 0,
            auth_pass: None,
            vips,
            unicast_src: None,
            unicast_peers: Vec::new(),
            garp: Garp::default(),
            notify: Notify::default(),
            track_scripts: Vec::new(),
            sync_wait_ms: 5000,
        }
    }

    /// What is wrong with this instance, if anything (one message naming the field).
    pub fn validate(&self) -> Result<(), String> {
        let n = &self.name;
        if self.vrid == 0 {
            return Err(format!(
                "vrrp instance {n}: virtual_router_id must be 1..255"
            ));
        }
        if self.priority == 0 {
            return Err(format!(
                "vrrp instance {n}: priority must be 1..255 (0 is reserved)"
            ));
        }
        if !(1..=4095).contains(&self.advert_int_cs) {
            return Err(format!(
                "vrrp instance {n}: advert_int must be 0.01 to 40.95 seconds"
            ));
        }
        if self.vips.is_empty() {
            return Err(format!("vrrp instance {n}: no virtual_ipaddress"));
        }
        if let Some(p) = &self.auth_pass {
            if self.version != VrrpVersion::V2 {
                return Err(format!(
                    "vrrp instance {n}: authentication needs vrrp_version 2 (RFC 5798 removed it)"
                ));
            }
            if p.is_empty() || p.len() > 8 {
                return Err(format!("vrrp instance {n}: auth_pass must be 1 to 8 bytes"));
            }
        }
        if self.version == VrrpVersion::V2 && self.advert_int_cs % 100 != 0 {
            return Err(format!(
                "vrrp instance {n}: VRRPv2 advertises whole seconds; use vrrp_version 3 for advert_int {}",
                f64::from(self.advert_int_cs) / 100.0
            ));
        }
        Ok(())
    }
}

/// The connection-sync channel (IPVS's sync daemon role).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncConfig {
    /// The VRRP instance whose state gives the role: MASTER sends, BACKUP receives.
    pub instance: String,
    /// UDP port (default 8848, IPVS's).
    pub port: u16,
    /// Unicast peers (their DIPs); empty = the multicast group [`SYNC_GROUP`] on the kernel
    /// interface.
    pub peers: Vec<Ipv4Addr>,
    /// Records per worker ring each way (default 16384).
    pub ring: usize,
    /// Largest message payload (default 1400 bytes, under a 1500 MTU).
    pub max_message: usize,
    /// Flush pending records at least this often (default 20 ms).
    pub flush_ms: u32,
    /// Ask the master for the whole table when starting or returning as backup (default on).
    pub bulk_resync: bool,
    /// Longest wait for a bulk resync to end (default 5000 ms).
    pub resync_timeout_ms: u32,
    /// A master re-sends its whole table this often (default 300 000 ms; 0 = never), so a
    /// backup's copy of a long-lived flow does not time out while the flow is still in use
    /// (new flows and state changes alone never refresh an established flow).
    pub refresh_ms: u32,
}

impl SyncConfig {
    pub fn new(instance: &str) -> Self {
        SyncConfig {
            instance: instance.to_owned(),
            port: SYNC_PORT,
            peers: Vec::new(),
            ring: 16384,
            max_message: 1400,
            flush_ms: 20,
            bulk_resync: true,
            resync_timeout_ms: 5000,
            refresh_ms: 300_000,
        }
    }
}

/// Everything HA: the instances, their scripts, and sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct HaConfig {
    pub instances: Vec<VrrpInstance>,
    pub scripts: Vec<VrrpScript>,
    pub sync: Option<SyncConfig>,
}

impl HaConfig {
    pub fn is_empty(&self) -> bool {
        self.instances.is_empty() && self.sync.is_none()
    }

    /// Cross-checks: unique names and VRIDs, a VIP in one instance only, track_script and
    /// the sync instance naming something that exists.
    pub fn validate(&self) -> Result<(), String> {
        for (i, a) in self.instances.iter().enumerate() {
            a.validate()?;
            for b in &self.instances[..i] {
                if a.name == b.name {
                    return Err(format!("vrrp instance {} defined twice", a.name));
                }
                if a.vrid == b.vrid {
                    return Err(format!(
                        "vrrp instances {} and {} share virtual_router_id {}",
                        b.name, a.name, a.vrid
                    ));
                }
                if let Some(v) = a.vips.iter().find(|v| b.vips.contains(v)) {
                    return Err(format!(
                        "VIP {v} is in vrrp instances {} and {}",
                        b.name, a.name
                    ));
                }
            }
            for t in &a.track_scripts {
                if !self.scripts.iter().any(|s| s.name == t.name) {
                    return Err(format!(
                        "vrrp instance {}: track_script {} is not a vrrp_script",
                        a.name, t.name
                    ));
                }
            }
        }
        if let Some(s) = &self.sync {
            if !self.instances.iter().any(|i| i.name == s.instance) {
                return Err(format!(
                    "sync follows vrrp instance {}, which is not defined",
                    s.instance
                ));
            }
            if s.port == 0 {
                return Err("sync port must be 1..65535".into());
            }
            if s.max_message < 128 || s.max_message > 65000 {
                return Err("sync max_message must be 128..65000 bytes".into());
            }
        }
        Ok(())
    }
}

/// A VRRP instance's state (RFC 5798 §6.4; FAULT as keepalived: a tracked script failed with
/// weight 0, the instance neither advertises nor owns its VIPs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum VrrpState {
    #[default]
    Init,
    Backup,
    Master,
    Fault,
}

impl VrrpState {
    pub fn name(self) -> &'static str {
        match self {
            VrrpState::Init => "INIT",
            VrrpState::Backup => "BACKUP",
            VrrpState::Master => "MASTER",
            VrrpState::Fault => "FAULT",
        }
    }
}

/// What `list`/`stats` show of one instance (the HA thread reports it on every change and
/// about once a second).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct InstanceStatus {
    pub name: String,
    pub vrid: u8,
    pub state: VrrpState,
    /// Configured priority, and the one advertised (tracked scripts' weights applied).
    pub priority: u8,
    pub effective_priority: u8,
    /// The master's address as last heard (ours when master).
    pub master: Option<Ipv4Addr>,
    /// Unix seconds of the last transition.
    pub since: u64,
    pub transitions: u64,
    pub adverts_sent: u64,
    pub adverts_received: u64,
    /// Adverts ignored: wrong auth, wrong version, TTL not 255, bad checksum, wrong interval
    /// (v2), wrong address list, malformed.
    pub auth_errors: u64,
    pub invalid: u64,
    /// Frames to this instance's VIPs dropped while not master (the dataplane's count).
    pub dropped_not_master: u64,
    /// The last transition's reason, for the log and `list`.
    pub reason: String,
}

/// How the HA thread acts on the rest of the daemon (implemented by the control server).
pub trait HaSink: Send + Sync {
    /// This instance's VIPs are ours (`true`: answer ARP, forward) or not (`false`). Applied
    /// as a new snapshot; returns an error only when the VIPs could not be published.
    fn set_master(&self, instance: &str, vips: &[Ipv4Addr], master: bool) -> Result<(), String>;
    /// Send one gratuitous ARP for `vip` now (through the dataplane's ARP worker).
    fn garp(&self, vip: Ipv4Addr);
    /// The instance's state for `list`/`stats`.
    fn status(&self, s: &InstanceStatus);
}

/// What the VRRP runner and the sync thread share about the instance sync follows.
#[derive(Debug, Default)]
pub struct SyncLink {
    /// The instance is MASTER: sync sends (written by the VRRP runner).
    pub master: std::sync::atomic::AtomicBool,
    /// A bulk resync has finished (or timed out, or is not wanted): a preempting backup may
    /// take over (written by the sync thread, read by the VRRP runner).
    pub resynced: std::sync::atomic::AtomicBool,
    /// Bumped by the VRRP runner when the instance becomes BACKUP after INIT or MASTER: the sync
    /// thread asks the master for a bulk resync (and clears `resynced` until it ends).
    pub want_resync: std::sync::atomic::AtomicU64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vip(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, 0, last)
    }

    #[test]
    fn bad_instances_are_named() {
        let ok = VrrpInstance::new("VI_1", 51, 100, vec![vip(100)]);
        assert_eq!(ok.validate(), Ok(()));
        type Case = (fn(&mut VrrpInstance), &'static str);
        let cases: [Case; 7] = [
            (|i| i.vrid = 0, "virtual_router_id"),
            (|i| i.priority = 0, "priority"),
            (|i| i.advert_int_cs = 0, "advert_int"),
            (|i| i.vips.clear(), "virtual_ipaddress"),
            (|i| i.auth_pass = Some("x".into()), "vrrp_version 2"),
            (
                |i| {
                    i.version = VrrpVersion::V2;
                    i.auth_pass = Some("123456789".into())
                },
                "1 to 8",
            ),
            (
                |i| {
                    i.version = VrrpVersion::V2;
                    i.advert_int_cs = 30
                },
                "whole seconds",
            ),
        ];
        for (mutate, want) in cases {
            let mut i = ok.clone();
            mutate(&mut i);
            let e = i.validate().unwrap_err();
            assert!(e.contains(want) && e.contains("VI_1"), "{e}");
        }
    }

    #[test]
    fn cross_checks() {
        let a = VrrpInstance::new("A", 1, 100, vec![vip(100)]);
        let mut c = HaConfig {
            instances: vec![a.clone()],
            ..HaConfig::default()
        };
        assert_eq!(c.validate(), Ok(()));
        let mut b = VrrpInstance::new("B", 1, 100, vec![vip(101)]);
        c.instances.push(b.clone());
        assert!(c
            .validate()
            .unwrap_err()
            .contains("share virtual_router_id 1"));
        b.vrid = 2;
        b.vips = vec![vip(100)];
        c.instances[1] = b.clone();
        assert!(c.validate().unwrap_err().contains("198.18.0.100"));
        b.vips = vec![vip(101)];
        b.track_scripts.push(TrackScript {
            name: "chk".into(),
            weight: None,
        });
        c.instances[1] = b;
        assert!(c.validate().unwrap_err().contains("track_script chk"));
        c.instances[1].track_scripts.clear();
        c.sync = Some(SyncConfig::new("C"));
        assert!(c.validate().unwrap_err().contains("instance C"));
        c.sync = Some(SyncConfig::new("A"));
        assert_eq!(c.validate(), Ok(()));
    }
}
