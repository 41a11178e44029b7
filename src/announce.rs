//! Announcing the VIPs to routers (active/active behind ECMP): rvs keeps one kernel route per
//! VIP it can serve, and a routing daemon (BIRD, FRR) in the director's namespace imports those
//! routes and advertises them over BGP with itself as the next hop.
//!
//! Every `interval_ms` the announcer thread computes the set of servable VIPs from the control
//! plane's model ([`servable`]) and makes the kernel agree with it:
//!
//! ```text
//! ip route replace VIP/32 dev <kernel interface> table <table> proto <ROUTE_PROTO>
//! ip route del     VIP/32 dev <kernel interface> table <table> proto <ROUTE_PROTO>
//! ```
//!
//! A VIP is servable when at least one of its services has a real server that takes new
//! connections (health up and a weight above 0), or has its sorry server in use; and neither
//! is the director draining (`director.drain`) nor does VRRP hold the VIP in standby. On stop
//! every route it made is removed (before the kernel interface goes, so the routing daemon can
//! still send its withdrawals).
//!
//! The routes carry their own protocol number ([`ROUTE_PROTO`]) so they are recognisable
//! (`ip route show table 100 proto 201`) and so the announcer can find and remove its own
//! leftovers — a previous run killed with SIGKILL — at start. It never touches a route of any
//! other protocol. The routing daemon's side, for BIRD 2:
//!
//! ```text
//! ipv4 table vips;
//! protocol kernel vips_in { kernel table 100; learn; ipv4 { table vips; import all; export none; }; }
//! protocol bgp up { ... ipv4 { table vips; import none; export all; next hop self; }; }
//! ```

use rvs_control::server::Control;
use rvs_dataplane::model::Model;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The routing protocol number of rvs's routes (`proto 201` in `ip route`; iproute2 names
/// 0-4 and a few daemons' numbers, 201 is unassigned).
pub const ROUTE_PROTO: u8 = 201;

/// `[announce]` in the daemon's configuration.
///
/// ```toml
/// [announce]
/// enabled = true
/// table = 100        # the kernel routing table the routing daemon imports
/// interval_ms = 200  # how often the servable set is recomputed
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnnounceConfig {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default = "default_table")]
    pub table: u32,
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
}

fn default_table() -> u32 {
    100
}

fn default_interval_ms() -> u64 {
    200
}

impl Default for AnnounceConfig {
    fn default() -> Self {
        AnnounceConfig {
            enabled: false,
            table: default_table(),
            interval_ms: default_interval_ms(),
        }
    }
}

/// Shortest and longest `interval_ms`.
pub const MIN_INTERVAL_MS: u64 = 10;
pub const MAX_INTERVAL_MS: u64 = 60_000;

impl AnnounceConfig {
    /// Checks the values: the error is the key (`announce.table`) and what is wrong with it.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        // 0 is "unspec", 253-255 are the kernel's default, main and local tables.
        if self.table == 0 || (253..=255).contains(&self.table) {
            return Err((
                "announce.table",
                format!(
                    "{} is a reserved kernel table (use 1-252 or above 255)",
                    self.table
                ),
            ));
        }
        if !(MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&self.interval_ms) {
            return Err((
                "announce.interval_ms",
                format!(
                    "{} is out of range {MIN_INTERVAL_MS}-{MAX_INTERVAL_MS}",
                    self.interval_ms
                ),
            ));
        }
        Ok(())
    }
}

/// The VIPs this director can serve now (see the module docs); empty while `draining`.
pub fn servable(model: &Model, draining: bool) -> BTreeSet<Ipv4Addr> {
    if draining {
        return BTreeSet::new();
    }
    model
        .services()
        .iter()
        .filter(|s| !model.is_standby(s.spec.key.vip))
        .filter(|s| {
            s.sorry_active().is_some_and(|r| r.spec.weight > 0)
                || s.servers
                    .iter()
                    .any(|r| r.effective_weight().is_some_and(|w| w > 0))
        })
        .map(|s| s.spec.key.vip)
        .collect()
}

/// What to change to go from the routes `have` to `want`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Diff {
    /// Routes to add (`ip route replace`).
    pub add: Vec<Ipv4Addr>,
    /// Routes to remove (`ip route del`).
    pub del: Vec<Ipv4Addr>,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.del.is_empty()
    }
}

/// The difference between the announced set and the wanted one (both sorted, so is the diff).
pub fn diff(have: &BTreeSet<Ipv4Addr>, want: &BTreeSet<Ipv4Addr>) -> Diff {
    Diff {
        add: want.difference(have).copied().collect(),
        del: have.difference(want).copied().collect(),
    }
}

/// The `ip` arguments that add (`replace`) or remove (`del`) the route of `vip`.
pub fn route_args(verb: &str, vip: Ipv4Addr, ifname: &str, table: u32) -> Vec<String> {
    vec![
        "-4".into(),
        "route".into(),
        verb.into(),
        format!("{vip}/32"),
        "dev".into(),
        ifname.into(),
        "table".into(),
        table.to_string(),
        "proto".into(),
        ROUTE_PROTO.to_string(),
    ]
}

/// The destinations of `ip -4 route show table N proto P` output: one route a line, the
/// destination first (`198.19.100.100 dev rvs0 scope link`). Lines that do not start with an
/// IPv4 host address (or `A/32`) are ignored: only host routes are ours.
pub fn parse_routes(text: &str) -> BTreeSet<Ipv4Addr> {
    text.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|d| {
            let d = d.strip_suffix("/32").unwrap_or(d);
            d.parse::<Ipv4Addr>().ok()
        })
        .collect()
}

/// Runs `ip`; the error is its stderr (or why it could not run).
fn ip(args: &[String]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The routes of ours in `table` (any interface).
fn our_routes(table: u32) -> Result<BTreeSet<Ipv4Addr>, String> {
    let args: Vec<String> = [
        "-4",
        "route",
        "show",
        "table",
        &table.to_string(),
        "proto",
        &ROUTE_PROTO.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    match ip(&args) {
        Ok(t) => Ok(parse_routes(&t)),
        // A table that was never used holds nothing.
        Err(e) if e.contains("does not exist") => Ok(BTreeSet::new()),
        Err(e) => Err(e),
    }
}

/// The announcer's state: what it believes the kernel holds.
struct Announcer {
    cfg: AnnounceConfig,
    ifname: String,
    announced: BTreeSet<Ipv4Addr>,
    /// Whether the last pass failed (so failures are logged once, not every interval).
    failing: bool,
}

impl Announcer {
    /// Make the kernel hold exactly `want`; what failed is retried on the next pass.
    fn apply(&mut self, want: &BTreeSet<Ipv4Addr>) {
        let d = diff(&self.announced, want);
        if d.is_empty() {
            return;
        }
        let mut failed = None;
        for vip in d.del {
            match ip(&route_args("del", vip, &self.ifname, self.cfg.table)) {
                Ok(_) => {
                    self.announced.remove(&vip);
                    tracing::info!(%vip, table = self.cfg.table, "VIP withdrawn");
                }
                // Already gone (the interface went down, someone removed it): not ours anymore.
                Err(e) if e.contains("No such process") => {
                    self.announced.remove(&vip);
                }
                Err(e) => failed = Some(e),
            }
        }
        for vip in d.add {
            match ip(&route_args("replace", vip, &self.ifname, self.cfg.table)) {
                Ok(_) => {
                    self.announced.insert(vip);
                    tracing::info!(%vip, table = self.cfg.table, dev = %self.ifname, "VIP announced");
                }
                Err(e) => failed = Some(e),
            }
        }
        match failed {
            Some(e) if !self.failing => {
                tracing::warn!(error = %e, "announcing VIPs: a route change failed (retrying)");
                self.failing = true;
            }
            Some(_) => {}
            None => self.failing = false,
        }
    }

    fn run(mut self, control: &Control, stop: &AtomicBool) {
        // Leftovers of a previous run (killed before it could clean up) are withdrawn first:
        // what is servable is announced again on the first pass.
        match our_routes(self.cfg.table) {
            Ok(old) => {
                self.announced = old;
                self.apply(&BTreeSet::new());
            }
            Err(e) => tracing::warn!(error = %e, "announcing VIPs: cannot list old routes"),
        }
        let every = Duration::from_millis(self.cfg.interval_ms);
        while !stop.load(Ordering::Relaxed) {
            let t0 = Instant::now();
            let want = servable(&control.model(), control.draining());
            self.apply(&want);
            // Sleep in short steps so a stop is seen at once.
            while !stop.load(Ordering::Relaxed) {
                let left = every.saturating_sub(t0.elapsed());
                if left.is_zero() {
                    break;
                }
                std::thread::sleep(left.min(Duration::from_millis(20)));
            }
        }
        self.apply(&BTreeSet::new());
        if !self.announced.is_empty() {
            tracing::warn!(left = ?self.announced, "announcing VIPs: routes left at stop");
        }
        tracing::info!("announcer stopped");
    }
}

/// Start the announcer thread on kernel interface `ifname`; it removes its routes and ends
/// once `stop` is set.
pub fn spawn(
    cfg: AnnounceConfig,
    ifname: String,
    control: Arc<Control>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    let a = Announcer {
        cfg,
        ifname,
        announced: BTreeSet::new(),
        failing: false,
    };
    std::thread::Builder::new()
        .name("rvs-announce".to_string())
        .spawn(move || a.run(&control, &stop))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_dataplane::model::{
        Forward, Health, Protocol, SchedulerKind, ServerSpec, ServiceKey, ServiceSpec,
    };

    fn key(vip: [u8; 4], port: u16) -> ServiceKey {
        ServiceKey {
            proto: Protocol::Tcp,
            vip: vip.into(),
            port,
        }
    }

    fn service(m: &mut Model, k: ServiceKey) {
        m.add_service(ServiceSpec {
            key: k,
            scheduler: SchedulerKind::Mh,
            persistent: None,
            netmask: Ipv4Addr::BROADCAST,
            flags: vec![],
        })
        .unwrap();
    }

    fn server(m: &mut Model, k: ServiceKey, addr: [u8; 4], weight: u32) {
        m.add_server(
            &k,
            ServerSpec {
                addr: addr.into(),
                port: 80,
                weight,
                forward: Forward::Dr,
                upper: 0,
                lower: 0,
            },
        )
        .unwrap();
    }

    fn set(v: &[[u8; 4]]) -> BTreeSet<Ipv4Addr> {
        v.iter().map(|a| Ipv4Addr::from(*a)).collect()
    }

    const A: [u8; 4] = [198, 19, 100, 100];
    const B: [u8; 4] = [198, 19, 100, 101];
    const RS1: [u8; 4] = [198, 18, 30, 11];
    const RS2: [u8; 4] = [198, 18, 30, 12];

    #[test]
    fn servable_follows_weight_health_standby_and_drain() {
        let mut m = Model::new(8, 16);
        assert_eq!(servable(&m, false), set(&[]), "no services");
        let (a80, a443, b80) = (key(A, 80), key(A, 443), key(B, 80));
        service(&mut m, a80);
        assert_eq!(servable(&m, false), set(&[]), "a service without servers");
        server(&mut m, a80, RS1, 0);
        assert_eq!(servable(&m, false), set(&[]), "weight 0 takes nothing new");
        server(&mut m, a80, RS2, 1);
        assert_eq!(servable(&m, false), set(&[A]));
        assert_eq!(servable(&m, true), set(&[]), "draining announces nothing");

        // Health: down and inhibited servers take no new connections.
        m.set_server_health(&a80, RS2.into(), 80, Health::Down, None)
            .unwrap();
        assert_eq!(
            servable(&m, false),
            set(&[]),
            "the only weighted server down"
        );
        m.set_server_health(&a80, RS2.into(), 80, Health::Inhibited, None)
            .unwrap();
        assert_eq!(servable(&m, false), set(&[]), "inhibited = weight 0");
        m.set_server_health(&a80, RS2.into(), 80, Health::Up, Some(0))
            .unwrap();
        assert_eq!(servable(&m, false), set(&[]), "a dynamic weight of 0");
        m.set_server_health(&a80, RS1.into(), 80, Health::Up, Some(5))
            .unwrap();
        assert_eq!(servable(&m, false), set(&[A]), "a dynamic weight above 0");

        // One servable service of a VIP is enough; each VIP stands alone.
        service(&mut m, a443);
        service(&mut m, b80);
        assert_eq!(servable(&m, false), set(&[A]));
        server(&mut m, b80, RS1, 2);
        assert_eq!(servable(&m, false), set(&[A, B]));

        // VRRP standby: configured but not ours to serve.
        m.set_vips_master(&[B.into()], false);
        assert_eq!(servable(&m, false), set(&[A]));
        m.set_vips_master(&[B.into()], true);
        assert_eq!(servable(&m, false), set(&[A, B]));
    }

    #[test]
    fn servable_counts_an_active_sorry_server() {
        let mut m = Model::new(8, 16);
        let k = key(A, 80);
        service(&mut m, k);
        server(&mut m, k, RS1, 1);
        m.set_server_health(&k, RS1.into(), 80, Health::Down, None)
            .unwrap();
        let sorry = ServerSpec {
            addr: RS2.into(),
            port: 80,
            weight: 1,
            forward: Forward::Dr,
            upper: 0,
            lower: 0,
        };
        m.set_sorry_server(&k, Some(sorry)).unwrap();
        assert_eq!(
            servable(&m, false),
            set(&[]),
            "sorry server set, not in use"
        );
        m.set_quorum_lost(&k, true).unwrap();
        assert_eq!(servable(&m, false), set(&[A]), "sorry server in use");
        assert_eq!(servable(&m, true), set(&[]));
    }

    #[test]
    fn diff_adds_and_removes_only_what_changed() {
        for (have, want, add, del) in [
            (vec![], vec![], vec![], vec![]),
            (vec![], vec![A, B], vec![A, B], vec![]),
            (vec![A, B], vec![], vec![], vec![A, B]),
            (vec![A], vec![A], vec![], vec![]),
            (vec![A], vec![B], vec![B], vec![A]),
            (vec![B, A], vec![A], vec![], vec![B]),
        ] {
            let d = diff(&set(&have), &set(&want));
            let v = |x: &[[u8; 4]]| x.iter().map(|a| Ipv4Addr::from(*a)).collect::<Vec<_>>();
            assert_eq!(d.add, v(&add), "{have:?} -> {want:?}");
            assert_eq!(d.del, v(&del), "{have:?} -> {want:?}");
            assert_eq!(d.is_empty(), add.is_empty() && del.is_empty());
        }
    }

    #[test]
    fn route_commands() {
        assert_eq!(
            route_args("replace", A.into(), "rvs0", 100).join(" "),
            "-4 route replace 198.19.100.100/32 dev rvs0 table 100 proto 201"
        );
        assert_eq!(
            route_args("del", B.into(), "rvs1", 7).join(" "),
            "-4 route del 198.19.100.101/32 dev rvs1 table 7 proto 201"
        );
    }

    #[test]
    fn parse_routes_reads_host_routes_only() {
        // `ip -4 route show table 100 proto 201` as iproute2 prints it, plus what must be
        // ignored.
        let text = "198.19.100.100 dev rvs0 scope link \n\
                    198.19.100.101/32 dev rvs0 scope link\n\
                    198.19.0.0/16 dev rvs0 scope link\n\
                    \n\
                    default via 198.18.30.1 dev rvs0\n\
                    broadcast 198.18.30.255 dev rvs0\n\
                    999.1.1.1 dev rvs0\n\
                    \u{0}\u{ff} garbage";
        assert_eq!(parse_routes(text), set(&[A, B]));
        assert_eq!(parse_routes(""), set(&[]));
    }

    #[test]
    fn config_defaults_and_checks() {
        let c: AnnounceConfig = toml::from_str("").unwrap();
        assert_eq!(c, AnnounceConfig::default());
        assert!(!c.enabled);
        assert_eq!((c.table, c.interval_ms), (100, 200));
        assert_eq!(c.validate(), Ok(()));
        let c: AnnounceConfig =
            toml::from_str("enabled = true\ntable = 7\ninterval_ms = 50").unwrap();
        assert_eq!((c.enabled, c.table, c.interval_ms), (true, 7, 50));
        for bad in [
            "tabel = 100",
            "table = -1",
            "enabled = 1",
            "interval_ms = \"x\"",
        ] {
            assert!(toml::from_str::<AnnounceConfig>(bad).is_err(), "{bad}");
        }
        for (bad, want) in [
            ("table = 0", "announce.table"),
            ("table = 254", "announce.table"),
            ("interval_ms = 0", "announce.interval_ms"),
            ("interval_ms = 600000", "announce.interval_ms"),
        ] {
            let c: AnnounceConfig = toml::from_str(bad).unwrap();
            let (key, msg) = c.validate().unwrap_err();
            assert_eq!(key, want, "{bad}");
            assert!(
                msg.contains(bad.split(" = ").nth(1).unwrap()),
                "{bad}: {msg}"
            );
        }
    }
}
