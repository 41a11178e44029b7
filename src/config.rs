//! The daemon's TOML configuration.
//!
//! Every section but `[network]` is optional and has defaults; unknown keys are errors (a typo
//! must not silently fall back to a default). Errors name the key, e.g.
//! `workers.lcores: lcore 1 is listed twice`.
//!
//! ```toml
//! [eal]
//! args = ["-l", "0", "--no-huge", "--no-pci", "--vdev", "net_af_packet0,iface=veth0"]
//! [network]
//! dip = "198.18.0.2"
//! prefix_len = 24
//! ```
//!
//! Relative paths (`rules.file`) are taken relative to the working directory of the daemon.

use rvs_dataplane::model::Timeouts;
use rvs_dataplane::report::MacAddr;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// Why a configuration was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// TOML syntax, wrong types or unknown keys (the message names the key and line).
    #[error("{0}")]
    Parse(String),
    /// A value that parsed but makes no sense.
    #[error("{key}: {msg}")]
    Invalid { key: &'static str, msg: String },
}

fn invalid(key: &'static str, msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        msg: msg.into(),
    }
}

/// `[eal]`: arguments passed to `rte_eal_init` (the program name is prepended by the daemon).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EalConfig {
    #[serde(default)]
    pub args: Vec<String>,
}

impl Default for EalConfig {
    fn default() -> Self {
        EalConfig {
            args: vec!["-l".into(), "0".into()],
        }
    }
}

/// `[port]`: the DPDK port the director uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PortConfig {
    /// DPDK port id.
    pub id: u16,
    pub rx_descriptors: u16,
    pub tx_descriptors: u16,
    /// Mbufs in the packet pool (shared by all workers).
    pub mbufs: u32,
    pub promiscuous: bool,
}

/// Mbufs each lcore keeps in its mempool cache.
pub const MBUF_CACHE: u32 = 256;
/// Data room of one mbuf: a 2 KiB frame plus DPDK's 128-byte headroom.
pub const MBUF_DATA_ROOM: u16 = 2048 + 128;

impl PortConfig {
    /// Mbufs the rx and tx rings of `workers` queue pairs hold when full: the least
    /// `port.mbufs` may be.
    pub fn ring_mbufs(&self, workers: usize) -> u64 {
        (u64::from(self.rx_descriptors) + u64::from(self.tx_descriptors)) * workers as u64
    }

    /// Mbufs the pool is created with: `port.mbufs`, raised where needed to what `workers`
    /// queue pairs can hold at once (full rings, four bursts in flight and a full lcore cache
    /// per worker, plus 1024 of slack), so that `rx_nombuf` never counts the engine's own use.
    pub fn pool_mbufs(&self, workers: usize) -> u32 {
        let in_flight = (4 * crate::dpdk::BURST as u64 + u64::from(MBUF_CACHE)) * workers as u64;
        let need = self.ring_mbufs(workers) + in_flight + 1024;
        u32::try_from(need).unwrap_or(u32::MAX).max(self.mbufs)
    }
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig {
            id: 0,
            rx_descriptors: 1024,
            tx_descriptors: 1024,
            mbufs: 8191,
            promiscuous: true,
        }
    }
}

/// `[network]`: the director's own address (DIP) on the port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    pub dip: Ipv4Addr,
    #[serde(default = "default_prefix")]
    pub prefix_len: u8,
}

fn default_prefix() -> u8 {
    24
}

/// `[workers]`: one rx/tx queue pair per worker lcore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkersConfig {
    pub lcores: Vec<u32>,
}

impl Default for WorkersConfig {
    fn default() -> Self {
        WorkersConfig { lcores: vec![0] }
    }
}

/// `[tables]`: fixed capacities chosen at start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TablesConfig {
    pub flows_per_worker: u32,
    pub max_services: u32,
    pub max_servers: u32,
    pub neighbours: u32,
    /// Persistence templates (`-p`), shared by all workers.
    pub persistence: u32,
}

impl Default for TablesConfig {
    fn default() -> Self {
        TablesConfig {
            flows_per_worker: 65536,
            max_services: 256,
            max_servers: 4096,
            neighbours: 4096,
            persistence: 65536,
        }
    }
}

/// `[dataplane]`: forwarding behaviour.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataplaneConfig {
    /// IPVS `expire_nodest_conn`: when a flow's real server is deleted, expire the flow at its
    /// next packet and schedule that packet anew (`true`), or drop its packets until the flow
    /// times out (`false`, the IPVS default).
    pub expire_nodest_conn: bool,
    /// IPVS `sloppy_tcp`: schedule a TCP segment of no known connection whatever its flags
    /// (but RST) (`true`: e.g. on a director that took over without connection sync), or only
    /// a SYN (`false`, the IPVS default: the others are dropped and counted as `tcp_not_syn`).
    pub sloppy_tcp: bool,
}

/// `[kernel]`: the kernel interface on the data port (the kernel path, see
/// `docs/architecture.md`): frames for the director that rvs does not handle itself go to a
/// kernel interface (`name`, carrying the port's MAC and the DIP), and what the kernel sends
/// out of it leaves through the port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KernelConfig {
    pub enabled: bool,
    /// The kernel interface's name.
    pub name: String,
    pub driver: KernelDriver,
    /// Frames per second to the kernel at most, shared by the workers (the rest are dropped
    /// and counted as `exception_ratelimited`).
    pub rate_pps: u32,
    /// Frames each worker's queue to the kernel-path thread holds (a power of two; what does
    /// not fit is dropped and counted as `exception_full`).
    pub ring_size: u32,
    /// What becomes of frames to a VIP on a port no service has.
    pub vip_other_ports: VipOtherPorts,
}

impl Default for KernelConfig {
    fn default() -> Self {
        KernelConfig {
            enabled: true,
            name: "rvs0".to_string(),
            driver: KernelDriver::Auto,
            rate_pps: 20_000,
            ring_size: 1024,
            vip_other_ports: VipOtherPorts::Drop,
        }
    }
}

/// `kernel.driver`: how DPDK makes the kernel interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KernelDriver {
    /// `virtio_user` where `/dev/vhost-net` exists, else `tap`.
    Auto,
    /// DPDK's `net_tap` (needs `/dev/net/tun`).
    Tap,
    /// `virtio_user` over vhost-net (needs `/dev/vhost-net`): the faster one.
    VirtioUser,
}

/// `kernel.vip_other_ports`: frames to a VIP on a port (or protocol) no service has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VipOtherPorts {
    /// Dropped and counted as `no_service` (as IPVS).
    Drop,
    /// Given to the kernel interface.
    Kernel,
}

/// `[control]`: the JSON control socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlConfig {
    pub socket: PathBuf,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            socket: PathBuf::from(rvs_control::proto::DEFAULT_SOCKET),
        }
    }
}

/// `[rules]`: what is applied at start: an optional ipvsadm `-S` rules file, then an optional
/// keepalived.conf (its `virtual_server` blocks with their checks; see docs/keepalived.md).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesConfig {
    #[serde(default)]
    pub file: Option<PathBuf>,
    #[serde(default)]
    pub keepalived: Option<PathBuf>,
}

/// `[[neighbour]]`: a static neighbour entry (no ARP needed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeighbourConfig {
    pub addr: Ipv4Addr,
    pub mac: MacAddr,
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub eal: EalConfig,
    #[serde(default)]
    pub port: PortConfig,
    pub network: NetworkConfig,
    #[serde(default)]
    pub workers: WorkersConfig,
    #[serde(default)]
    pub tables: TablesConfig,
    #[serde(default)]
    pub timeouts: Timeouts,
    #[serde(default)]
    pub dataplane: DataplaneConfig,
    #[serde(default)]
    pub kernel: KernelConfig,
    #[serde(default)]
    pub control: ControlConfig,
    #[serde(default)]
    pub rules: RulesConfig,
    #[serde(default, rename = "neighbour")]
    pub neighbours: Vec<NeighbourConfig>,
}

/// Upper bounds that catch typos (an extra digit) before DPDK fails obscurely.
const MAX_DESCRIPTORS: u16 = 32768;
const MAX_MBUFS: u32 = 16 * 1024 * 1024;
const MAX_FLOWS: u32 = 64 * 1024 * 1024;
const MAX_SERVICES: u32 = 65536;
const MAX_SERVERS: u32 = 1024 * 1024;
const MAX_NEIGHBOURS: u32 = 1024 * 1024;
const MAX_PERSISTENCE: u32 = 64 * 1024 * 1024;
const MAX_KERNEL_PPS: u32 = 100_000_000;
const MAX_KERNEL_RING: u32 = 65536;
/// A Linux interface name's bytes at most (IFNAMSIZ less the NUL).
const MAX_IFNAME: usize = 15;
/// DPDK's usual RTE_MAX_LCORE.
const MAX_LCORE: u32 = 1024;

impl Config {
    /// Read and validate a configuration file.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_str(&text).map_err(|e| match e {
            ConfigError::Parse(m) => ConfigError::Parse(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Parse and validate configuration text.
    #[allow(clippy::should_implement_trait)]
    pub fn from_str(text: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Check values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let p = &self.port;
        for (key, v) in [
            ("port.rx_descriptors", p.rx_descriptors),
            ("port.tx_descriptors", p.tx_descriptors),
        ] {
            if v == 0 || v > MAX_DESCRIPTORS {
                return Err(invalid(
                    key,
                    format!("{v} is out of range 1..={MAX_DESCRIPTORS}"),
                ));
            }
        }
        if p.mbufs == 0 || p.mbufs > MAX_MBUFS {
            return Err(invalid(
                "port.mbufs",
                format!("{} is out of range 1..={MAX_MBUFS}", p.mbufs),
            ));
        }
        let lcores = &self.workers.lcores;
        if lcores.is_empty() {
            return Err(invalid(
                "workers.lcores",
                "at least one worker lcore is needed",
            ));
        }
        for (i, l) in lcores.iter().enumerate() {
            if *l >= MAX_LCORE {
                return Err(invalid(
                    "workers.lcores",
                    format!("lcore {l} is out of range 0..{MAX_LCORE}"),
                ));
            }
            if lcores[..i].contains(l) {
                return Err(invalid(
                    "workers.lcores",
                    format!("lcore {l} is listed twice"),
                ));
            }
        }
        let need = p.ring_mbufs(lcores.len());
        if u64::from(p.mbufs) < need {
            return Err(invalid(
                "port.mbufs",
                format!(
                    "{} mbufs cannot fill {} workers' rx and tx rings ({} descriptors); use at least {need}",
                    p.mbufs,
                    lcores.len(),
                    need
                ),
            ));
        }
        if let Some(eal_lcores) = eal_lcore_list(&self.eal.args) {
            if let Some(l) = lcores.iter().find(|l| !eal_lcores.contains(l)) {
                return Err(invalid(
                    "workers.lcores",
                    format!("lcore {l} is not in the EAL lcore list (eal.args -l)"),
                ));
            }
        }
        let t = &self.tables;
        for (key, v, max) in [
            ("tables.flows_per_worker", t.flows_per_worker, MAX_FLOWS),
            ("tables.max_services", t.max_services, MAX_SERVICES),
            ("tables.max_servers", t.max_servers, MAX_SERVERS),
            ("tables.neighbours", t.neighbours, MAX_NEIGHBOURS),
            ("tables.persistence", t.persistence, MAX_PERSISTENCE),
        ] {
            if v == 0 || v > max {
                return Err(invalid(key, format!("{v} is out of range 1..={max}")));
            }
        }
        let max_t = rvs_control::proto::MAX_TIMEOUT;
        for (key, v) in [
            ("timeouts.tcp", self.timeouts.tcp),
            ("timeouts.tcp_fin", self.timeouts.tcp_fin),
            ("timeouts.udp", self.timeouts.udp),
        ] {
            if v == 0 || v > max_t {
                return Err(invalid(key, format!("{v} is out of range 1..={max_t}")));
            }
        }
        let dip = self.network.dip;
        if dip.is_unspecified() || dip.is_broadcast() || dip.is_multicast() || dip.is_loopback() {
            return Err(invalid(
                "network.dip",
                format!("{dip} cannot be the director's address"),
            ));
        }
        let len = self.network.prefix_len;
        if !(1..=32).contains(&len) {
            return Err(invalid(
                "network.prefix_len",
                format!("{len} is out of range 1..=32"),
            ));
        }
        self.kernel.validate()?;
        if self.control.socket.as_os_str().is_empty() {
            return Err(invalid("control.socket", "empty path"));
        }
        for (i, n) in self.neighbours.iter().enumerate() {
            if n.mac.0[0] & 1 == 1 || n.mac.0 == [0; 6] {
                return Err(invalid(
                    "neighbour.mac",
                    format!("{} for {} is multicast or zero", n.mac, n.addr),
                ));
            }
            if self.neighbours[..i].iter().any(|o| o.addr == n.addr) {
                return Err(invalid(
                    "neighbour.addr",
                    format!("{} is listed twice", n.addr),
                ));
            }
        }
        if self.neighbours.len() as u64 > u64::from(t.neighbours) {
            return Err(invalid(
                "neighbour",
                format!(
                    "{} static neighbours do not fit tables.neighbours = {}",
                    self.neighbours.len(),
                    t.neighbours
                ),
            ));
        }
        Ok(())
    }

    /// The network mask of the DIP's subnet.
    pub fn netmask(&self) -> Ipv4Addr {
        rvs_dataplane::wire::ipv4::prefix_netmask(self.network.prefix_len)
    }
}

impl KernelConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let n = &self.name;
        // A name `ip` and the devargs take as is: no separators, no path, not too long.
        if n.is_empty()
            || n.len() > MAX_IFNAME
            || n == "."
            || n == ".."
            || !n
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        {
            return Err(invalid(
                "kernel.name",
                format!("{n:?} is not an interface name (1 to {MAX_IFNAME} of A-Z a-z 0-9 _ - .)"),
            ));
        }
        if self.rate_pps == 0 || self.rate_pps > MAX_KERNEL_PPS {
            return Err(invalid(
                "kernel.rate_pps",
                format!("{} is out of range 1..={MAX_KERNEL_PPS}", self.rate_pps),
            ));
        }
        let r = self.ring_size;
        if !(2..=MAX_KERNEL_RING).contains(&r) || !r.is_power_of_two() {
            return Err(invalid(
                "kernel.ring_size",
                format!("{r} is not a power of two in 2..={MAX_KERNEL_RING}"),
            ));
        }
        Ok(())
    }
}

/// The lcores named by EAL's `-l` / `--lcores` option when it is a plain list ("0", "0-3,5");
/// `None` when absent or in a form we do not interpret (e.g. `--lcores` with `@` mappings).
fn eal_lcore_list(args: &[String]) -> Option<Vec<u32>> {
    let mut value = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "-l" || a == "--lcores" {
            value = it.next().cloned();
        } else if let Some(v) = a.strip_prefix("--lcores=") {
            value = Some(v.to_string());
        } else if let Some(v) = a.strip_prefix("-l") {
            if !v.is_empty()
                && v.bytes()
                    .all(|b| b.is_ascii_digit() || b == b',' || b == b'-')
            {
                value = Some(v.to_string());
            }
        }
    }
    let value = value?;
    let mut out = Vec::new();
    for part in value.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let a: u32 = a.parse().ok()?;
                let b: u32 = b.parse().ok()?;
                if b < a || b - a > MAX_LCORE {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().ok()?),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
[eal]
args = ["-l", "0", "--no-huge", "--no-pci", "-m", "512", "--vdev", "net_af_packet0,iface=veth0", "--file-prefix", "rvs"]
[port]
id = 0
rx_descriptors = 1024
tx_descriptors = 1024
mbufs = 8191
promiscuous = true
[network]
dip = "198.18.0.2"
prefix_len = 24
[workers]
lcores = [0]
[tables]
flows_per_worker = 65536
max_services = 256
max_servers = 4096
neighbours = 4096
persistence = 65536
[timeouts]
tcp = 900
tcp_fin = 120
udp = 300
[dataplane]
expire_nodest_conn = true
sloppy_tcp = true
[kernel]
enabled = true
name = "rvs7"
driver = "tap"
rate_pps = 5000
ring_size = 256
vip_other_ports = "kernel"
[control]
socket = "/run/rvs/control.sock"
[rules]
file = "configs/lab.rules"
[[neighbour]]
addr = "198.18.0.11"
mac = "02:00:00:00:00:11"
"#;

    #[test]
    fn full_example_parses() {
        let c = Config::from_str(FULL).unwrap();
        assert_eq!(c.network.dip, Ipv4Addr::new(198, 18, 0, 2));
        assert_eq!(c.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(c.workers.lcores, vec![0]);
        assert_eq!(c.eal.args.len(), 10);
        assert_eq!(
            c.rules.file.as_deref(),
            Some(Path::new("configs/lab.rules"))
        );
        assert_eq!(c.neighbours.len(), 1);
        assert_eq!(c.neighbours[0].mac, MacAddr([2, 0, 0, 0, 0, 0x11]));
        assert_eq!(c.timeouts, Timeouts::default());
        assert!(c.dataplane.expire_nodest_conn);
        assert!(c.dataplane.sloppy_tcp);
        assert_eq!(
            c.kernel,
            KernelConfig {
                enabled: true,
                name: "rvs7".into(),
                driver: KernelDriver::Tap,
                rate_pps: 5000,
                ring_size: 256,
                vip_other_ports: VipOtherPorts::Kernel,
            }
        );
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = Config::from_str("[network]\ndip = \"198.18.0.2\"\n").unwrap();
        assert_eq!(c.port, PortConfig::default());
        assert_eq!(c.tables, TablesConfig::default());
        assert_eq!(c.tables.persistence, 65536);
        assert!(!c.dataplane.expire_nodest_conn, "IPVS default");
        assert!(!c.dataplane.sloppy_tcp, "IPVS default");
        assert_eq!(c.workers.lcores, vec![0]);
        assert_eq!(c.network.prefix_len, 24);
        assert_eq!(c.control.socket, PathBuf::from("/run/rvs/control.sock"));
        assert!(c.rules.file.is_none());
        assert!(c.neighbours.is_empty());
        let k = &c.kernel;
        assert!(k.enabled, "the kernel path is on by default");
        assert_eq!(
            (k.name.as_str(), k.driver, k.rate_pps, k.ring_size),
            ("rvs0", KernelDriver::Auto, 20_000, 1024)
        );
        assert_eq!(k.vip_other_ports, VipOtherPorts::Drop, "IPVS default");
        // Partial sections keep defaults for the rest.
        let c = Config::from_str("[network]\ndip = \"198.18.0.2\"\n[port]\nid = 1\n").unwrap();
        assert_eq!(c.port.id, 1);
        assert_eq!(c.port.rx_descriptors, 1024);
    }

    fn err(text: &str) -> String {
        Config::from_str(text).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_the_key() {
        let net = "[network]\ndip = \"198.18.0.2\"\n";
        let e = err(&format!("{net}[port]\nrx_descriptorz = 5\n"));
        assert!(e.contains("rx_descriptorz"), "{e}");
        let e = err(&format!("{net}[bogus]\n"));
        assert!(e.contains("bogus"), "{e}");
        let e = err("[network]\ndip = \"198.18.0.300\"\n");
        assert!(e.contains("dip"), "{e}");
        let e = err("[port]\nid = 0\n");
        assert!(e.contains("network"), "{e}");
        let e = err(&format!("{net}[workers]\nlcores = []\n"));
        assert!(e.starts_with("workers.lcores:"), "{e}");
        let e = err(&format!("{net}[workers]\nlcores = [0, 0]\n"));
        assert_eq!(e, "workers.lcores: lcore 0 is listed twice");
        let e = err(&format!("{net}[tables]\nmax_services = 0\n"));
        assert!(e.starts_with("tables.max_services:"), "{e}");
        let e = err(&format!("{net}[port]\nrx_descriptors = 0\n"));
        assert!(e.starts_with("port.rx_descriptors:"), "{e}");
        let e = err(&format!("{net}[port]\nrx_descriptors = 70000\n"));
        assert!(e.contains("rx_descriptors"), "{e}");
        let e = err(&format!("{net}[port]\nmbufs = 100\n"));
        assert!(e.starts_with("port.mbufs:"), "{e}");
        let e = err(&format!("{net}[timeouts]\ntcp = 0\n"));
        assert!(e.starts_with("timeouts.tcp:"), "{e}");
        let e = err("[network]\ndip = \"0.0.0.0\"\n");
        assert!(e.starts_with("network.dip:"), "{e}");
        let e = err("[network]\ndip = \"198.18.0.2\"\nprefix_len = 33\n");
        assert!(e.starts_with("network.prefix_len:"), "{e}");
        let e = err(&format!(
            "{net}[[neighbour]]\naddr = \"198.18.0.11\"\nmac = \"01:00:00:00:00:11\"\n"
        ));
        assert!(e.starts_with("neighbour.mac:"), "{e}");
        let e = err(&format!(
            "{net}[[neighbour]]\naddr = \"198.18.0.11\"\nmac = \"zz\"\n"
        ));
        assert!(e.contains("MAC"), "{e}");
        let e = err(&format!(
            "{net}[eal]\nargs = [\"-l\", \"0\"]\n[workers]\nlcores = [0, 1]\n"
        ));
        assert_eq!(
            e,
            "workers.lcores: lcore 1 is not in the EAL lcore list (eal.args -l)"
        );
    }

    #[test]
    fn kernel_section_errors_name_the_key() {
        let net = "[network]\ndip = \"198.18.0.2\"\n[kernel]\n";
        let e = err(&format!("{net}enable = false\n"));
        assert!(e.contains("unknown field `enable`"), "{e}");
        let e = err(&format!("{net}driver = \"kni\"\n"));
        assert!(e.contains("kni") && e.contains("tap"), "{e}");
        let e = err(&format!("{net}vip_other_ports = \"accept\"\n"));
        assert!(e.contains("accept"), "{e}");
        for bad in [
            "",
            "a,b",
            "rvs0=x",
            "this-name-is-too-long",
            "..",
            "a/b",
            "é",
        ] {
            let e = err(&format!("{net}name = {bad:?}\n"));
            assert!(e.starts_with("kernel.name:"), "{bad:?}: {e}");
        }
        let e = err(&format!("{net}rate_pps = 0\n"));
        assert_eq!(e, "kernel.rate_pps: 0 is out of range 1..=100000000");
        for bad in [0, 1, 1000, 131072] {
            let e = err(&format!("{net}ring_size = {bad}\n"));
            assert!(e.starts_with("kernel.ring_size:"), "{bad}: {e}");
        }
        let c =
            Config::from_str(&format!("{net}enabled = false\ndriver = \"virtio_user\"\n")).unwrap();
        assert!(!c.kernel.enabled);
        assert_eq!(c.kernel.driver, KernelDriver::VirtioUser);
    }

    #[test]
    fn eal_lcore_lists() {
        let v = |a: &[&str]| eal_lcore_list(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(v(&["-l", "0-2,5"]), Some(vec![0, 1, 2, 5]));
        assert_eq!(v(&["-l1,3"]), Some(vec![1, 3]));
        assert_eq!(v(&["--lcores=4"]), Some(vec![4]));
        assert_eq!(v(&["--lcores", "(0-3)@0"]), None);
        assert_eq!(v(&["--no-huge"]), None);
    }

    #[test]
    fn shipped_configs_parse() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let lab = Config::load(root.join("configs/lab.toml")).unwrap();
        assert_eq!(lab.network.dip, Ipv4Addr::new(198, 18, 0, 2));
        assert!(lab.eal.args.iter().any(|a| a == "--no-huge"));
        assert!(lab.eal.args.iter().any(|a| a.contains("iface=veth0")));
        let rules = lab.rules.file.as_ref().unwrap();
        let text = std::fs::read_to_string(root.join(rules)).unwrap();
        assert_eq!(rvs_control::rules::parse(&text).unwrap().len(), 3);
        let bm = Config::load(root.join("configs/baremetal.toml")).unwrap();
        assert_eq!(bm.workers.lcores.len(), 2);
        assert!(bm.eal.args.iter().any(|a| a == "0000:03:00.0"));
        assert!(bm.tables.flows_per_worker > lab.tables.flows_per_worker);
    }

    #[test]
    fn load_names_missing_file() {
        let e = Config::load("/nonexistent/rvs.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/rvs.toml"), "{e}");
    }
}
