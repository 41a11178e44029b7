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

use rvs_control::ha::{
    HaConfig, InitialState, SyncConfig, TrackScript, VrrpInstance, VrrpScript, VrrpVersion,
};
use rvs_dataplane::model::Timeouts;
use rvs_dataplane::report::MacAddr;
use serde::{Deserialize, Serialize};
use std::net::{Ipv4Addr, SocketAddr};
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
    /// A value that parsed but makes no sense (`key` as written in the file, with the index of
    /// an array-of-tables entry: `vrrp.instance[0].advert_int`).
    #[error("{key}: {msg}")]
    Invalid { key: String, msg: String },
    /// An [`Invalid`](Self::Invalid) value located in its file (`rvs.toml:12: key: msg`).
    #[error("{}{}: {err}", .path.display(), line_suffix(*.line))]
    At {
        path: PathBuf,
        line: usize,
        err: Box<ConfigError>,
    },
}

/// The line (from 1) of the value of `key` in TOML `text`: a dotted path as [`ConfigError::
/// Invalid`] names it, with the index of an array of tables or an array element in brackets
/// (`vrrp.instance[1].advert_int`, `workers.lcores`). `None` when it cannot be found (a
/// default value, or a key the message does not spell as a path).
pub fn line_of(text: &str, key: &str) -> Option<usize> {
    let doc = toml_edit::ImDocument::parse(text).ok()?;
    let mut table: &toml_edit::Table = doc.as_table();
    let mut span = None;
    let segs: Vec<&str> = key.split('.').collect();
    for (k, seg) in segs.iter().enumerate() {
        let (name, index) = match seg.split_once('[') {
            Some((n, rest)) => (n, Some(rest.strip_suffix(']')?.parse::<usize>().ok()?)),
            None => (*seg, None),
        };
        let last = k + 1 == segs.len();
        let item = table.get(name)?;
        span = item.span().or(span);
        match index {
            Some(i) => {
                if let Some(aot) = item.as_array_of_tables() {
                    let t = aot.get(i)?;
                    span = t.span().or(span);
                    table = t;
                } else {
                    let v = item.as_array()?.get(i)?;
                    span = v.span().or(span);
                    if !last {
                        break;
                    }
                }
            }
            None if !last => match item.as_table() {
                Some(t) => table = t,
                None => break,
            },
            None => {}
        }
    }
    span.map(|r| line_at(text, r.start))
}

/// `:LINE` after a file name, nothing for line 0 (unknown).
fn line_suffix(line: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(":{line}")
    }
}

fn line_at(text: &str, byte: usize) -> usize {
    text.get(..byte).map_or(0, |t| t.matches('\n').count()) + 1
}

fn invalid(key: impl Into<String>, msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
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
    /// The 802.1Q VLAN id (1..=4094) the DIP and the services are on, for a port on a trunk;
    /// unset: untagged. See docs/vlan.md.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
}

impl NetworkConfig {
    /// `vlan` as the dataplane takes it (`None` also for an id [`Config::validate`] refuses).
    pub fn vlan_id(&self) -> Option<rvs_dataplane::wire::ethernet::VlanId> {
        self.vlan
            .and_then(rvs_dataplane::wire::ethernet::VlanId::new)
    }
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

/// `[state]`: what a graceful stop leaves for the next start.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// Where a graceful stop (SIGTERM, SIGINT) saves the flow tables and the next start
    /// re-installs them from, so established connections keep their real server across a
    /// restart or an upgrade. Absent: not saved.
    #[serde(default)]
    pub flows: Option<PathBuf>,
}

/// `[metrics]`: the Prometheus endpoint (`GET /metrics`, see docs/metrics.md). Off unless
/// `listen` names a socket address (`"127.0.0.1:9477"`); an empty string is off too.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    #[serde(default)]
    pub listen: Option<String>,
}

impl MetricsConfig {
    /// The address to serve on, `None` when the endpoint is off; an error names the key.
    pub fn listen_addr(&self) -> Result<Option<SocketAddr>, ConfigError> {
        let Some(text) = self.listen.as_deref().filter(|t| !t.is_empty()) else {
            return Ok(None);
        };
        let addr: SocketAddr = text.parse().map_err(|_| {
            invalid(
                "metrics.listen",
                format!(
                    "{text:?} is not a socket address (e.g. \"127.0.0.1:9477\"; no host names)"
                ),
            )
        })?;
        if addr.port() == 0 {
            return Err(invalid(
                "metrics.listen",
                format!("{text:?}: port 0 is not a port to scrape"),
            ));
        }
        if addr.ip().is_multicast() {
            return Err(invalid(
                "metrics.listen",
                format!("{text:?}: a multicast address cannot be listened on"),
            ));
        }
        Ok(Some(addr))
    }
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
    /// `[state]`: the flow tables saved across a restart.
    #[serde(default)]
    pub state: StateConfig,
    #[serde(default, rename = "neighbour")]
    pub neighbours: Vec<NeighbourConfig>,
    /// `[announce]`: kernel routes for the VIPs this director can serve, for a BGP daemon.
    #[serde(default)]
    pub announce: crate::announce::AnnounceConfig,
    /// `[[vrrp.instance]]`, `[[vrrp.script]]`: VRRP (see docs/ha.md).
    #[serde(default)]
    pub vrrp: VrrpSection,
    /// `[sync]`: connection sync between the directors of a VRRP instance.
    #[serde(default)]
    pub sync: Option<SyncSection>,
    /// `[metrics]`: the Prometheus endpoint (off by default).
    #[serde(default)]
    pub metrics: MetricsConfig,
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
            ConfigError::Invalid { key, msg } => {
                // The line of the value when the key is in the file; the file alone when the
                // offending value is a default or spans sections.
                let line = line_of(&text, &key).unwrap_or(0);
                ConfigError::At {
                    path: path.to_path_buf(),
                    line,
                    err: Box::new(ConfigError::Invalid { key, msg }),
                }
            }
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
        self.announce
            .validate()
            .map_err(|(key, msg)| invalid(key, msg))?;
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
        if let Some(msg) = eal_bad_pci(&self.eal.args) {
            return Err(invalid("eal.args", msg));
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
        if let Some(v) = self.network.vlan {
            if rvs_dataplane::wire::ethernet::VlanId::new(v).is_none() {
                return Err(invalid(
                    "network.vlan",
                    format!("{v} is out of range 1..=4094"),
                ));
            }
        }
        self.kernel.validate()?;
        if self.announce.enabled && !self.kernel.enabled {
            return Err(invalid(
                "announce.enabled",
                "the VIP routes are kernel routes on the kernel interface: set [kernel] enabled = true",
            ));
        }
        self.ha()?;
        if self
            .state
            .flows
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty() || p.is_dir())
        {
            return Err(invalid(
                "state.flows",
                "must name a file (it is written on stop and read on start)",
            ));
        }
        self.metrics.listen_addr()?;
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

/// A time in seconds as written in the file (`0.3`, `5`); integers and floats alike.
/// Checked (finite, not negative, in range) when converted by [`Config::ha`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Seconds(pub f64);

// NaN never reaches a use: `Config::ha` refuses it.
impl Eq for Seconds {}

/// `[vrrp]`: the VRRP instances this director runs and the scripts they track.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VrrpSection {
    #[serde(default)]
    pub instance: Vec<VrrpInstanceConfig>,
    #[serde(default)]
    pub script: Vec<VrrpScriptConfig>,
}

/// `[[vrrp.instance]]`: one virtual router. Unset keys take keepalived's defaults, except
/// `version` (v3 here; keepalived.conf input defaults to v2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VrrpInstanceConfig {
    pub name: String,
    pub vrid: u8,
    #[serde(default = "default_vrrp_priority")]
    pub priority: u8,
    /// Seconds (fractional with v3: `0.3`); default 1.
    #[serde(default)]
    pub advert_int: Option<Seconds>,
    #[serde(default)]
    pub version: VrrpVersion,
    /// "MASTER" or "BACKUP" (default).
    #[serde(default)]
    pub state: InitialState,
    #[serde(default = "default_true")]
    pub preempt: bool,
    #[serde(default)]
    pub preempt_delay: Option<Seconds>,
    /// VRRPv2 simple password (1 to 8 bytes).
    #[serde(default)]
    pub auth_pass: Option<String>,
    pub vips: Vec<Ipv4Addr>,
    #[serde(default)]
    pub unicast_src: Option<Ipv4Addr>,
    #[serde(default)]
    pub unicast_peers: Vec<Ipv4Addr>,
    /// GARPs per VIP in each burst on becoming master (default 5).
    #[serde(default)]
    pub garp_repeat: Option<u32>,
    /// Delay before the second burst (s, default 5).
    #[serde(default)]
    pub garp_delay: Option<Seconds>,
    /// Spacing between the GARPs of a burst (s, default 0).
    #[serde(default)]
    pub garp_interval: Option<Seconds>,
    /// Periodic GARPs while master (s, default 0 = off).
    #[serde(default)]
    pub garp_refresh: Option<Seconds>,
    /// GARPs per VIP per refresh (default 1).
    #[serde(default)]
    pub garp_refresh_repeat: Option<u32>,
    /// Commands (argv, no shell) run on transitions.
    #[serde(default)]
    pub notify_master: Option<Vec<String>>,
    #[serde(default)]
    pub notify_backup: Option<Vec<String>>,
    #[serde(default)]
    pub notify_fault: Option<Vec<String>>,
    #[serde(default)]
    pub notify_stop: Option<Vec<String>>,
    /// Run on every transition with `INSTANCE <name> <STATE> <priority>` appended.
    #[serde(default)]
    pub notify: Option<Vec<String>>,
    /// `[[vrrp.script]]` names, or `{ name = "...", weight = -20 }`.
    #[serde(default)]
    pub track_script: Vec<TrackScriptRef>,
    /// Longest wait (s) for a bulk resync before preempting (default 5; 0 = do not wait).
    #[serde(default)]
    pub sync_wait: Option<Seconds>,
}

fn default_vrrp_priority() -> u8 {
    100
}

fn default_true() -> bool {
    true
}

/// A `track_script` entry: a script's name, or the name with a weight of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TrackScriptRef {
    Name(String),
    Weighted(TrackScriptWeighted),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackScriptWeighted {
    pub name: String,
    #[serde(default)]
    pub weight: Option<i32>,
}

/// `[[vrrp.script]]`: a check run periodically; a failing one changes the priority of the
/// instances tracking it by its weight, or (weight 0) puts them in FAULT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VrrpScriptConfig {
    pub name: String,
    /// argv, run without a shell.
    pub script: Vec<String>,
    /// Seconds between runs (default 1).
    #[serde(default)]
    pub interval: Option<Seconds>,
    /// Seconds before a run counts as failed (default: the interval).
    #[serde(default)]
    pub timeout: Option<Seconds>,
    #[serde(default)]
    pub weight: i32,
    #[serde(default = "default_one")]
    pub rise: u32,
    #[serde(default = "default_one")]
    pub fall: u32,
}

fn default_one() -> u32 {
    1
}

/// `[sync]`: connection sync, its role following the VRRP instance named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncSection {
    pub instance: String,
    #[serde(default)]
    pub port: Option<u16>,
    /// The other directors' DIPs; empty = the multicast group 224.0.0.81.
    #[serde(default)]
    pub peers: Vec<Ipv4Addr>,
    /// Records per worker ring each way (default 16384).
    #[serde(default)]
    pub ring: Option<usize>,
    /// Largest message payload, bytes (default 1400).
    #[serde(default)]
    pub max_message: Option<usize>,
    /// Flush pending records at least this often (default 20 ms).
    #[serde(default)]
    pub flush_ms: Option<u32>,
    /// Ask the master for its whole table on start or return (default true).
    #[serde(default)]
    pub bulk_resync: Option<bool>,
    /// Longest wait for a bulk resync, seconds (default 5).
    #[serde(default)]
    pub resync_timeout: Option<Seconds>,
    /// A master re-sends its whole table this often, seconds (default 300; 0 = never), so
    /// backups keep long-lived flows that only see data.
    #[serde(default)]
    pub refresh: Option<Seconds>,
}

/// Bounds of the HA keys.
const MAX_NAME: usize = 64;
const MAX_PREEMPT_DELAY_MS: u64 = 1_000_000;
const MAX_GARP_MS: u64 = 3_600_000;
const MAX_WAIT_MS: u64 = 600_000;
const MAX_REFRESH_MS: u64 = 86_400_000;
const MAX_SCRIPT_MS: u64 = 3_600_000;
const MAX_SYNC_RING: usize = 1 << 20;
const MAX_FLUSH_MS: u32 = 10_000;
const MAX_VRRP_ADDRS: usize = 255;

/// `v` seconds as milliseconds (rounded to the nearest), checked to be in `min_ms..=max_ms`.
fn seconds_ms(key: &str, v: Seconds, min_ms: u64, max_ms: u64) -> Result<u32, ConfigError> {
    let s = v.0;
    let range = || {
        format!(
            "{s} s is out of range {}..={} s",
            min_ms as f64 / 1000.0,
            max_ms as f64 / 1000.0
        )
    };
    if !s.is_finite() || s < 0.0 || s * 1000.0 > max_ms as f64 + 0.5 {
        return Err(invalid(key, range()));
    }
    let ms = (s * 1000.0).round() as u64;
    if ms < min_ms || ms > max_ms {
        return Err(invalid(key, range()));
    }
    Ok(ms as u32)
}

/// A name used in logs, notify arguments and `list`: printable, no blanks.
fn check_name(key: &str, n: &str) -> Result<(), ConfigError> {
    if n.is_empty() || n.len() > MAX_NAME || !n.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(
            key,
            format!("{n:?} is not a name (1 to {MAX_NAME} printable ASCII characters, no blanks)"),
        ));
    }
    Ok(())
}

fn check_unicast(key: &str, a: Ipv4Addr) -> Result<(), ConfigError> {
    if a.is_unspecified() || a.is_broadcast() || a.is_multicast() || a.is_loopback() {
        return Err(invalid(key, format!("{a} is not a unicast address")));
    }
    Ok(())
}

fn check_argv(key: &str, argv: &[String]) -> Result<(), ConfigError> {
    match argv.first() {
        Some(p) if !p.trim().is_empty() => {}
        _ => {
            return Err(invalid(
                key,
                "needs a command (argv: [\"/path\", \"arg\", ...])",
            ))
        }
    }
    if argv.iter().any(|a| a.contains('\0')) {
        return Err(invalid(key, "an argument contains a NUL byte"));
    }
    Ok(())
}

fn check_weight(key: &str, w: i32) -> Result<(), ConfigError> {
    if !(-253..=253).contains(&w) {
        return Err(invalid(key, format!("{w} is out of range -253..=253")));
    }
    Ok(())
}

impl Config {
    /// The HA configuration `[vrrp]` and `[sync]` describe, checked (errors name the key,
    /// e.g. `vrrp.instance[0].advert_int`). Empty when neither section is present.
    pub fn ha(&self) -> Result<HaConfig, ConfigError> {
        let dip = self.network.dip;
        let mut ha = HaConfig::default();
        for (i, s) in self.vrrp.script.iter().enumerate() {
            let k = |f: &str| format!("vrrp.script[{i}].{f}");
            check_name(&k("name"), &s.name)?;
            if self.vrrp.script[..i].iter().any(|o| o.name == s.name) {
                return Err(invalid(k("name"), format!("{} is defined twice", s.name)));
            }
            check_argv(&k("script"), &s.script)?;
            let interval_ms = match s.interval {
                Some(v) => seconds_ms(&k("interval"), v, 1, MAX_SCRIPT_MS)?,
                None => 1_000,
            };
            let timeout_ms = match s.timeout {
                Some(v) => seconds_ms(&k("timeout"), v, 1, MAX_SCRIPT_MS)?,
                None => interval_ms,
            };
            check_weight(&k("weight"), s.weight)?;
            for (f, v) in [("rise", s.rise), ("fall", s.fall)] {
                if !(1..=1000).contains(&v) {
                    return Err(invalid(k(f), format!("{v} is out of range 1..=1000")));
                }
            }
            ha.scripts.push(VrrpScript {
                name: s.name.clone(),
                argv: s.script.clone(),
                interval_ms,
                timeout_ms,
                weight: s.weight,
                rise: s.rise,
                fall: s.fall,
            });
        }
        for (i, c) in self.vrrp.instance.iter().enumerate() {
            let k = |f: &str| format!("vrrp.instance[{i}].{f}");
            check_name(&k("name"), &c.name)?;
            if self.vrrp.instance[..i].iter().any(|o| o.name == c.name) {
                return Err(invalid(k("name"), format!("{} is defined twice", c.name)));
            }
            if c.vrid == 0 {
                return Err(invalid(k("vrid"), "0 is out of range 1..=255"));
            }
            if c.priority == 0 {
                return Err(invalid(
                    k("priority"),
                    "0 is out of range 1..=255 (0 is reserved for a master leaving)",
                ));
            }
            if c.vips.is_empty() {
                return Err(invalid(k("vips"), "at least one VIP is needed"));
            }
            if c.vips.len() > MAX_VRRP_ADDRS || c.unicast_peers.len() > MAX_VRRP_ADDRS {
                return Err(invalid(
                    k(if c.vips.len() > MAX_VRRP_ADDRS {
                        "vips"
                    } else {
                        "unicast_peers"
                    }),
                    format!("more than {MAX_VRRP_ADDRS} addresses"),
                ));
            }
            for (j, v) in c.vips.iter().enumerate() {
                check_unicast(&k("vips"), *v)?;
                if *v == dip {
                    return Err(invalid(
                        k("vips"),
                        format!("{v} is the director's own address (network.dip)"),
                    ));
                }
                if c.vips[..j].contains(v) {
                    return Err(invalid(k("vips"), format!("{v} is listed twice")));
                }
            }
            if let Some(a) = c.unicast_src {
                check_unicast(&k("unicast_src"), a)?;
            }
            for (j, a) in c.unicast_peers.iter().enumerate() {
                check_unicast(&k("unicast_peers"), *a)?;
                if *a == dip || Some(*a) == c.unicast_src {
                    return Err(invalid(
                        k("unicast_peers"),
                        format!("{a} is this director's own address"),
                    ));
                }
                if c.unicast_peers[..j].contains(a) {
                    return Err(invalid(k("unicast_peers"), format!("{a} is listed twice")));
                }
            }
            let mut inst = VrrpInstance::new(&c.name, c.vrid, c.priority, c.vips.clone());
            inst.version = c.version;
            inst.initial = c.state;
            inst.preempt = c.preempt;
            if let Some(v) = c.advert_int {
                let ms = seconds_ms(&k("advert_int"), v, 10, 40_950)?;
                inst.advert_int_cs = ((ms + 5) / 10) as u16;
                if inst.version == VrrpVersion::V2 && inst.advert_int_cs % 100 != 0 {
                    return Err(invalid(
                        k("advert_int"),
                        format!(
                            "VRRPv2 advertises whole seconds: {} s needs version = \"v3\"",
                            v.0
                        ),
                    ));
                }
            }
            if let Some(v) = c.preempt_delay {
                inst.preempt_delay_ms =
                    seconds_ms(&k("preempt_delay"), v, 0, MAX_PREEMPT_DELAY_MS)?;
            }
            if let Some(p) = &c.auth_pass {
                if c.version != VrrpVersion::V2 {
                    return Err(invalid(
                        k("auth_pass"),
                        "authentication needs version = \"v2\" (RFC 5798 removed it)",
                    ));
                }
                if p.is_empty() || p.len() > 8 {
                    return Err(invalid(k("auth_pass"), "must be 1 to 8 bytes"));
                }
                inst.auth_pass = Some(p.clone());
            }
            inst.unicast_src = c.unicast_src;
            inst.unicast_peers = c.unicast_peers.clone();
            for (f, v) in [
                ("garp_repeat", c.garp_repeat),
                ("garp_refresh_repeat", c.garp_refresh_repeat),
            ] {
                if let Some(n) = v {
                    if !(1..=255).contains(&n) {
                        return Err(invalid(k(f), format!("{n} is out of range 1..=255")));
                    }
                }
            }
            if let Some(n) = c.garp_repeat {
                inst.garp.repeat = n;
            }
            if let Some(n) = c.garp_refresh_repeat {
                inst.garp.refresh_repeat = n;
            }
            if let Some(v) = c.garp_delay {
                inst.garp.delay_ms = seconds_ms(&k("garp_delay"), v, 0, MAX_GARP_MS)?;
            }
            if let Some(v) = c.garp_interval {
                inst.garp.interval_ms = seconds_ms(&k("garp_interval"), v, 0, MAX_GARP_MS)?;
            }
            if let Some(v) = c.garp_refresh {
                inst.garp.refresh_ms = seconds_ms(&k("garp_refresh"), v, 0, MAX_GARP_MS)?;
            }
            for (f, v, slot) in [
                ("notify_master", &c.notify_master, &mut inst.notify.master),
                ("notify_backup", &c.notify_backup, &mut inst.notify.backup),
                ("notify_fault", &c.notify_fault, &mut inst.notify.fault),
                ("notify_stop", &c.notify_stop, &mut inst.notify.stop),
                ("notify", &c.notify, &mut inst.notify.generic),
            ] {
                if let Some(argv) = v {
                    check_argv(&k(f), argv)?;
                    *slot = Some(argv.clone());
                }
            }
            for t in &c.track_script {
                let (name, weight) = match t {
                    TrackScriptRef::Name(n) => (n, None),
                    TrackScriptRef::Weighted(w) => (&w.name, w.weight),
                };
                if !ha.scripts.iter().any(|s| &s.name == name) {
                    return Err(invalid(
                        k("track_script"),
                        format!("{name} is not a [[vrrp.script]]"),
                    ));
                }
                if inst.track_scripts.iter().any(|o| &o.name == name) {
                    return Err(invalid(
                        k("track_script"),
                        format!("{name} is listed twice"),
                    ));
                }
                if let Some(w) = weight {
                    check_weight(&k("track_script"), w)?;
                }
                inst.track_scripts.push(TrackScript {
                    name: name.clone(),
                    weight,
                });
            }
            if let Some(v) = c.sync_wait {
                inst.sync_wait_ms = seconds_ms(&k("sync_wait"), v, 0, MAX_WAIT_MS)?;
            }
            inst.validate()
                .map_err(|e| invalid(format!("vrrp.instance[{i}]"), e))?;
            ha.instances.push(inst);
        }
        if let Some(s) = &self.sync {
            let mut sc = SyncConfig::new(&s.instance);
            if !ha.instances.iter().any(|i| i.name == s.instance) {
                return Err(invalid(
                    "sync.instance",
                    format!("{} is not a [[vrrp.instance]]", s.instance),
                ));
            }
            if let Some(p) = s.port {
                if p == 0 {
                    return Err(invalid("sync.port", "0 is out of range 1..=65535"));
                }
                sc.port = p;
            }
            for (j, a) in s.peers.iter().enumerate() {
                check_unicast("sync.peers", *a)?;
                if *a == dip {
                    return Err(invalid(
                        "sync.peers",
                        format!("{a} is this director's own address (network.dip)"),
                    ));
                }
                if s.peers[..j].contains(a) {
                    return Err(invalid("sync.peers", format!("{a} is listed twice")));
                }
            }
            sc.peers = s.peers.clone();
            if let Some(r) = s.ring {
                if !(1..=MAX_SYNC_RING).contains(&r) {
                    return Err(invalid(
                        "sync.ring",
                        format!("{r} is out of range 1..={MAX_SYNC_RING}"),
                    ));
                }
                sc.ring = r;
            }
            if let Some(m) = s.max_message {
                if !(128..=65_000).contains(&m) {
                    return Err(invalid(
                        "sync.max_message",
                        format!("{m} is out of range 128..=65000"),
                    ));
                }
                sc.max_message = m;
            }
            if let Some(f) = s.flush_ms {
                if !(1..=MAX_FLUSH_MS).contains(&f) {
                    return Err(invalid(
                        "sync.flush_ms",
                        format!("{f} is out of range 1..={MAX_FLUSH_MS}"),
                    ));
                }
                sc.flush_ms = f;
            }
            if let Some(b) = s.bulk_resync {
                sc.bulk_resync = b;
            }
            if let Some(v) = s.resync_timeout {
                sc.resync_timeout_ms = seconds_ms("sync.resync_timeout", v, 0, MAX_WAIT_MS)?;
            }
            if let Some(v) = s.refresh {
                sc.refresh_ms = seconds_ms("sync.refresh", v, 0, MAX_REFRESH_MS)?;
                if sc.refresh_ms != 0 && sc.refresh_ms < 1000 {
                    return Err(invalid(
                        "sync.refresh",
                        "0 (never) or at least 1 s".to_string(),
                    ));
                }
            }
            ha.sync = Some(sc);
        }
        ha.validate().map_err(|e| {
            // Name the instance the message names last (the later of a pair).
            let words: Vec<&str> = e
                .split(|c: char| c.is_whitespace() || c == ',' || c == ':')
                .collect();
            let key = ha
                .instances
                .iter()
                .rposition(|i| words.contains(&i.name.as_str()))
                .map(|i| format!("vrrp.instance[{i}]"))
                .unwrap_or_else(|| "sync".to_string());
            invalid(key, e)
        })?;
        Ok(ha)
    }
}

/// The lcores named by EAL's `-l` / `--lcores` option when it is a plain list ("0", "0-3,5");
/// `None` when absent or in a form we do not interpret (e.g. `--lcores` with `@` mappings).
/// Whether `s` is a PCI address as EAL takes it: `[DOMAIN:]BUS:DEVICE.FUNCTION` in hex
/// (domain up to 8 digits, bus 2, device 2 below 0x20, function 0..7).
fn is_pci_address(s: &str) -> bool {
    let hex = |t: &str, n: std::ops::RangeInclusive<usize>| {
        n.contains(&t.len()) && t.bytes().all(|b| b.is_ascii_hexdigit())
    };
    let (rest, func) = match s.rsplit_once('.') {
        Some(x) => x,
        None => return false,
    };
    if !(func.len() == 1 && matches!(func.as_bytes()[0], b'0'..=b'7')) {
        return false;
    }
    let parts: Vec<&str> = rest.split(':').collect();
    let (domain, bus, dev) = match parts.as_slice() {
        [b, d] => (None, *b, *d),
        [dom, b, d] => (Some(*dom), *b, *d),
        _ => return false,
    };
    domain.map_or(true, |d| hex(d, 1..=8))
        && hex(bus, 2..=2)
        && hex(dev, 2..=2)
        && u8::from_str_radix(dev, 16).is_ok_and(|d| d < 0x20)
}

/// The PCI devices named in EAL's allow/block options that are not PCI addresses, e.g.
/// `-a 0000:03:00` (no function): EAL would fail at start, after the hugepages are taken.
fn eal_bad_pci(args: &[String]) -> Option<String> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let value = match a.as_str() {
            "-a" | "--allow" | "-b" | "--block" | "-w" | "--pci-whitelist" | "--pci-blacklist" => {
                it.next().map(String::as_str)
            }
            _ => ["--allow=", "--block=", "-a", "-b", "-w"]
                .iter()
                .find_map(|p| a.strip_prefix(p))
                .filter(|v| !v.is_empty() && !a.starts_with("--") || a.contains('=')),
        };
        let Some(v) = value else { continue };
        let dev = v.split(',').next().unwrap_or_default();
        if !is_pci_address(dev) {
            return Some(format!(
                "{dev:?} (in {a} {v}) is not a PCI address (DOMAIN:BUS:DEVICE.FUNCTION, e.g. 0000:03:00.0)"
            ));
        }
    }
    None
}

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
    }

    #[test]
    fn network_vlan_is_an_id_of_1_to_4094() {
        let net = "[network]\ndip = \"198.18.0.2\"\n";
        assert_eq!(Config::from_str(net).unwrap().network.vlan, None);
        for ok in [1u16, 100, 4094] {
            let c = Config::from_str(&format!("{net}vlan = {ok}\n")).unwrap();
            assert_eq!(c.network.vlan, Some(ok));
            assert_eq!(c.network.vlan_id().map(|v| v.get()), Some(ok));
        }
        for bad in ["0", "4095", "65535"] {
            let e = err(&format!("{net}vlan = {bad}\n"));
            assert_eq!(e, format!("network.vlan: {bad} is out of range 1..=4094"));
        }
        // Not a number of 16 bits, or not a number: a parse error naming the key.
        for bad in ["-1", "65536", "\"100\"", "1.5", "[100]"] {
            let e = err(&format!("{net}vlan = {bad}\n"));
            assert!(e.contains("vlan"), "{bad}: {e}");
        }
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
    fn value_errors_name_the_file_and_line() {
        let text = "# a comment\n[network]\ndip = \"198.18.0.2\"\n\n[workers]\nlcores = [0, 0]\n\n\
                    [[vrrp.instance]]\nname = \"A\"\nvrid = 1\nvips = [\"198.18.0.100\"]\n\
                    [[vrrp.instance]]\nname = \"B\"\nvrid = 2\npriority = 0\nvips = [\"198.18.0.101\"]\n";
        assert_eq!(line_of(text, "workers.lcores"), Some(6));
        assert_eq!(line_of(text, "network.dip"), Some(3));
        assert_eq!(line_of(text, "vrrp.instance[1].priority"), Some(15));
        assert_eq!(line_of(text, "vrrp.instance[0].vips[0]"), Some(11));
        for missing in [
            "tables.persistence",
            "vrrp.instance[5].vrid",
            "workers.lcores[x]",
            "",
        ] {
            assert_eq!(line_of(text, missing), None, "{missing:?}");
        }
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("rvs.toml");
        std::fs::write(&f, text).unwrap();
        let e = Config::load(&f).unwrap_err().to_string();
        assert_eq!(
            e,
            format!("{}:6: workers.lcores: lcore 0 is listed twice", f.display())
        );
        // A syntax error names the file once (with toml's own line and column).
        std::fs::write(&f, "[network\n").unwrap();
        let e = Config::load(&f).unwrap_err().to_string();
        assert_eq!(e.matches(&*f.display().to_string()).count(), 1, "{e}");
        // A value that is a default (not in the file): the file, no line.
        std::fs::write(
            &f,
            "[network]\ndip = \"198.18.0.2\"\n[eal]\nargs = [\"-l\", \"3\"]\n",
        )
        .unwrap();
        let e = Config::load(&f).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}: workers.lcores:", f.display())),
            "{e}"
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
        // Announcing needs the kernel interface its routes point at.
        let e = err(&format!(
            "{net}enabled = false
[announce]
enabled = true
"
        ));
        assert!(e.starts_with("announce.enabled:"), "{e}");
        Config::from_str(&format!(
            "{net}enabled = true
[announce]
enabled = true
"
        ))
        .unwrap();
    }

    #[test]
    fn eal_pci_addresses() {
        for good in ["0000:03:00.0", "03:00.1", "0000:af:1f.7", "10000:00:00.0"] {
            assert!(is_pci_address(good), "{good}");
        }
        for bad in [
            "",
            "0000:03:00",
            "0000:03:00.8",
            "0000:3:00.0",
            "0000:03:20.0",
            "0000:03:0g.0",
            "000000000:03:00.0",
            "03.00.0",
            "0000:03:00.0.0",
            "a:b:c:d.0",
        ] {
            assert!(!is_pci_address(bad), "{bad:?}");
        }
        let v = |a: &[&str]| eal_bad_pci(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(v(&["-l", "1-3", "-a", "0000:03:00.0", "-n", "4"]), None);
        assert_eq!(v(&["-a", "0000:03:00.0,rxq_cqe_comp_en=1"]), None);
        assert_eq!(v(&["-a0000:03:00.0", "--allow=04:00.1"]), None);
        assert_eq!(
            v(&["--no-pci", "--vdev", "net_af_packet0,iface=veth0"]),
            None
        );
        for bad in [
            &["-a", "0000:03:00"][..],
            &["--allow", "eth0"],
            &["-b", "0000:03:00.9"],
            &["-a0000:3:0.0"],
            &["--allow=xyz"],
        ] {
            let e = v(bad).unwrap_or_else(|| panic!("{bad:?} accepted"));
            assert!(e.contains("is not a PCI address"), "{e}");
        }
        // Through the whole configuration: the key is named.
        let e = Config::from_str(
            "[eal]\nargs = [\"-l\", \"0\", \"-a\", \"0000:03:00\"]\n[network]\ndip = \"198.18.0.2\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("eal.args: \"0000:03:00\""), "{e}");
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
        for (file, dip, priority) in [
            ("configs/ha-master.toml", [198, 18, 0, 2], 150),
            ("configs/ha-backup.toml", [198, 18, 0, 3], 100),
        ] {
            let c = Config::load(root.join(file)).unwrap();
            assert_eq!(c.network.dip, Ipv4Addr::from(dip), "{file}");
            assert!(
                c.kernel.enabled,
                "{file}: VRRP and sync need the kernel path"
            );
            let ha = c.ha().unwrap();
            let [vi] = &ha.instances[..] else {
                panic!("{file}: one instance")
            };
            assert_eq!((vi.name.as_str(), vi.vrid), ("VI_1", 51), "{file}");
            assert_eq!((vi.priority, vi.advert_int_cs), (priority, 30), "{file}");
            assert_eq!(vi.version, VrrpVersion::V3);
            assert_eq!(vi.vips, [Ipv4Addr::new(198, 18, 0, 100)], "{file}");
            let sync = ha.sync.as_ref().unwrap();
            assert_eq!(sync.instance, "VI_1");
            // VRRP to the group; sync to the other director's DIP.
            assert!(vi.unicast_peers.is_empty(), "{file}");
            let other = if dip[3] == 2 { 3 } else { 2 };
            assert_eq!(sync.peers, [Ipv4Addr::new(198, 18, 0, other)], "{file}");
        }
        let bm = Config::load(root.join("configs/baremetal.toml")).unwrap();
        assert_eq!(bm.workers.lcores.len(), 2);
        assert!(bm.eal.args.iter().any(|a| a == "0000:03:00.0"));
        assert!(bm.tables.flows_per_worker > lab.tables.flows_per_worker);
    }

    const HA: &str = r#"
[network]
dip = "198.18.0.2"

[[vrrp.script]]
name = "chk_web"
script = ["/usr/bin/curl", "-fs", "http://198.18.0.11/"]
interval = 0.5
timeout = 2
weight = -60
rise = 2
fall = 3

[[vrrp.script]]
name = "chk_disk"
script = ["/bin/true"]

[[vrrp.instance]]
name = "VI_1"
vrid = 51
priority = 150
advert_int = 0.3
state = "MASTER"
preempt_delay = 1.5
vips = ["198.18.0.100", "198.18.0.101"]
unicast_src = "198.18.0.2"
unicast_peers = ["198.18.0.3"]
garp_repeat = 3
garp_delay = 1
garp_interval = 0.01
garp_refresh = 60
garp_refresh_repeat = 2
notify_master = ["/etc/rvs/notify", "master"]
notify_backup = ["/etc/rvs/notify", "backup"]
notify_fault = ["/etc/rvs/notify", "fault"]
notify_stop = ["/etc/rvs/notify", "stop"]
notify = ["/etc/rvs/log"]
track_script = ["chk_web", { name = "chk_disk", weight = 10 }]
sync_wait = 3

[[vrrp.instance]]
name = "VI_2"
vrid = 52
version = "v2"
preempt = false
advert_int = 2
auth_pass = "secret"
vips = ["198.18.0.102"]

[sync]
instance = "VI_1"
port = 8849
peers = ["198.18.0.3"]
ring = 4096
max_message = 1200
flush_ms = 10
bulk_resync = false
resync_timeout = 2.5
refresh = 120
"#;

    #[test]
    fn ha_sections_convert() {
        let c = Config::from_str(HA).unwrap();
        let ha = c.ha().unwrap();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let vip = |d: u8| Ipv4Addr::new(198, 18, 0, d);
        let mut a = VrrpInstance::new("VI_1", 51, 150, vec![vip(100), vip(101)]);
        a.version = VrrpVersion::V3;
        a.advert_int_cs = 30;
        a.initial = InitialState::Master;
        a.preempt_delay_ms = 1_500;
        a.unicast_src = Some(vip(2));
        a.unicast_peers = vec![vip(3)];
        a.garp = rvs_control::ha::Garp {
            delay_ms: 1_000,
            repeat: 3,
            interval_ms: 10,
            refresh_ms: 60_000,
            refresh_repeat: 2,
        };
        a.notify = rvs_control::ha::Notify {
            master: Some(s(&["/etc/rvs/notify", "master"])),
            backup: Some(s(&["/etc/rvs/notify", "backup"])),
            fault: Some(s(&["/etc/rvs/notify", "fault"])),
            stop: Some(s(&["/etc/rvs/notify", "stop"])),
            generic: Some(s(&["/etc/rvs/log"])),
        };
        a.track_scripts = vec![
            TrackScript {
                name: "chk_web".into(),
                weight: None,
            },
            TrackScript {
                name: "chk_disk".into(),
                weight: Some(10),
            },
        ];
        a.sync_wait_ms = 3_000;
        let mut b = VrrpInstance::new("VI_2", 52, 100, vec![vip(102)]);
        b.version = VrrpVersion::V2;
        b.preempt = false;
        b.advert_int_cs = 200;
        b.auth_pass = Some("secret".into());
        let mut sync = SyncConfig::new("VI_1");
        sync.port = 8849;
        sync.peers = vec![vip(3)];
        sync.ring = 4096;
        sync.max_message = 1200;
        sync.flush_ms = 10;
        sync.bulk_resync = false;
        sync.resync_timeout_ms = 2_500;
        sync.refresh_ms = 120_000;
        let want = HaConfig {
            instances: vec![a, b],
            scripts: vec![
                VrrpScript {
                    name: "chk_web".into(),
                    argv: s(&["/usr/bin/curl", "-fs", "http://198.18.0.11/"]),
                    interval_ms: 500,
                    timeout_ms: 2_000,
                    weight: -60,
                    rise: 2,
                    fall: 3,
                },
                VrrpScript {
                    name: "chk_disk".into(),
                    argv: s(&["/bin/true"]),
                    interval_ms: 1_000,
                    timeout_ms: 1_000,
                    weight: 0,
                    rise: 1,
                    fall: 1,
                },
            ],
            sync: Some(sync),
        };
        assert_eq!(ha, want);
        // No [vrrp] nor [sync]: nothing.
        let none = Config::from_str("[network]\ndip = \"198.18.0.2\"\n").unwrap();
        assert!(none.ha().unwrap().is_empty());
        // An instance with only the required keys: rvs's defaults (v3, 1 s, BACKUP, preempt).
        let min = Config::from_str(
            "[network]\ndip = \"198.18.0.2\"\n[[vrrp.instance]]\nname = \"A\"\nvrid = 1\nvips = [\"198.18.0.100\"]\n",
        )
        .unwrap();
        assert_eq!(
            min.ha().unwrap().instances,
            [VrrpInstance::new("A", 1, 100, vec![vip(100)])]
        );
    }

    #[test]
    fn ha_errors_name_the_key() {
        /// The HA example with `from` replaced by `to` (each must occur in it).
        fn with(from: &str, to: &str) -> String {
            assert!(HA.contains(from), "{from}");
            HA.replacen(from, to, 1)
        }
        let cases: Vec<(String, &str)> = vec![
            (
                with("vrid = 51", "vrid = 0"),
                "vrrp.instance[0].vrid: 0 is out of range",
            ),
            (with("vrid = 51", "vrid = 256"), "vrid"),
            (
                with("vrid = 52", "vrid = 51"),
                "vrrp.instance[1]: vrrp instances VI_1 and VI_2 share virtual_router_id 51",
            ),
            (
                with("priority = 150", "priority = 0"),
                "vrrp.instance[0].priority: 0 is out of range",
            ),
            (
                with("advert_int = 0.3", "advert_int = 0"),
                "vrrp.instance[0].advert_int: 0 s is out of range 0.01..=40.95 s",
            ),
            (
                with("advert_int = 0.3", "advert_int = 41"),
                "vrrp.instance[0].advert_int: 41 s is out of range",
            ),
            (
                with("advert_int = 0.3", "advert_int = -1"),
                "vrrp.instance[0].advert_int: -1 s is out of range",
            ),
            (
                with("advert_int = 0.3", "advert_int = nan"),
                "vrrp.instance[0].advert_int: NaN s",
            ),
            (
                with("advert_int = 0.3", "advert_int = inf"),
                "vrrp.instance[0].advert_int: inf s",
            ),
            (
                with("advert_int = 0.3", "advert_int = \"fast\""),
                "advert_int",
            ),
            (
                with("advert_int = 2", "advert_int = 2.5"),
                "vrrp.instance[1].advert_int: VRRPv2 advertises whole seconds",
            ),
            (with("version = \"v2\"", "version = \"v4\""), "v4"),
            (with("state = \"MASTER\"", "state = \"LEADER\""), "LEADER"),
            (
                with("preempt_delay = 1.5", "preempt_delay = 1001"),
                "vrrp.instance[0].preempt_delay:",
            ),
            (
                with("auth_pass = \"secret\"", "auth_pass = \"123456789\""),
                "vrrp.instance[1].auth_pass: must be 1 to 8 bytes",
            ),
            (
                with("version = \"v2\"\n", ""),
                "vrrp.instance[1].auth_pass: authentication needs version = \"v2\"",
            ),
            (
                with("vips = [\"198.18.0.102\"]", "vips = []"),
                "vrrp.instance[1].vips: at least one VIP",
            ),
            (
                with("vips = [\"198.18.0.102\"]", "vips = [\"198.18.0.300\"]"),
                "vips",
            ),
            (
                with("vips = [\"198.18.0.102\"]", "vips = [\"224.0.0.18\"]"),
                "vrrp.instance[1].vips: 224.0.0.18 is not a unicast address",
            ),
            (
                with("vips = [\"198.18.0.102\"]", "vips = [\"198.18.0.2\"]"),
                "vrrp.instance[1].vips: 198.18.0.2 is the director's own address",
            ),
            (
                with(
                    "vips = [\"198.18.0.102\"]",
                    "vips = [\"198.18.0.102\", \"198.18.0.102\"]",
                ),
                "vrrp.instance[1].vips: 198.18.0.102 is listed twice",
            ),
            (
                with("vips = [\"198.18.0.102\"]", "vips = [\"198.18.0.100\"]"),
                "vrrp.instance[1]: VIP 198.18.0.100 is in vrrp instances VI_1 and VI_2",
            ),
            (
                with("unicast_src = \"198.18.0.2\"", "unicast_src = \"0.0.0.0\""),
                "vrrp.instance[0].unicast_src: 0.0.0.0 is not a unicast address",
            ),
            (
                with(
                    "unicast_peers = [\"198.18.0.3\"]",
                    "unicast_peers = [\"198.18.0.2\"]",
                ),
                "vrrp.instance[0].unicast_peers: 198.18.0.2 is this director's own address",
            ),
            (
                with(
                    "unicast_peers = [\"198.18.0.3\"]",
                    "unicast_peers = [\"198.18.0.3\", \"198.18.0.3\"]",
                ),
                "vrrp.instance[0].unicast_peers: 198.18.0.3 is listed twice",
            ),
            (
                with("garp_repeat = 3", "garp_repeat = 0"),
                "vrrp.instance[0].garp_repeat: 0 is out of range 1..=255",
            ),
            (
                with("garp_refresh_repeat = 2", "garp_refresh_repeat = 256"),
                "vrrp.instance[0].garp_refresh_repeat:",
            ),
            (
                with("garp_delay = 1", "garp_delay = 3601"),
                "vrrp.instance[0].garp_delay:",
            ),
            (
                with("garp_interval = 0.01", "garp_interval = -0.01"),
                "vrrp.instance[0].garp_interval:",
            ),
            (
                with("garp_refresh = 60", "garp_refresh = 1e9"),
                "vrrp.instance[0].garp_refresh:",
            ),
            (
                with(
                    "notify_master = [\"/etc/rvs/notify\", \"master\"]",
                    "notify_master = []",
                ),
                "vrrp.instance[0].notify_master: needs a command",
            ),
            (
                with("notify = [\"/etc/rvs/log\"]", "notify = [\" \"]"),
                "vrrp.instance[0].notify: needs a command",
            ),
            (
                with("notify = [\"/etc/rvs/log\"]", "notify = \"/etc/rvs/log\""),
                "notify",
            ),
            (
                with(
                    "track_script = [\"chk_web\",",
                    "track_script = [\"chk_nope\",",
                ),
                "vrrp.instance[0].track_script: chk_nope is not a [[vrrp.script]]",
            ),
            (
                with(
                    "track_script = [\"chk_web\",",
                    "track_script = [\"chk_disk\",",
                ),
                "vrrp.instance[0].track_script: chk_disk is listed twice",
            ),
            (
                with("weight = 10 }", "weight = 254 }"),
                "vrrp.instance[0].track_script: 254 is out of range -253..=253",
            ),
            (with("weight = 10 }", "weigth = 10 }"), "track_script"),
            (
                with("sync_wait = 3", "sync_wait = 601"),
                "vrrp.instance[0].sync_wait:",
            ),
            (
                with("name = \"VI_2\"", "name = \"VI_1\""),
                "vrrp.instance[1].name: VI_1 is defined twice",
            ),
            (
                with("name = \"VI_2\"", "name = \"VI 2\""),
                "vrrp.instance[1].name: \"VI 2\" is not a name",
            ),
            (
                with("name = \"VI_2\"", "name = \"\""),
                "vrrp.instance[1].name:",
            ),
            (
                with("name = \"VI_2\"", "nam = \"VI_2\""),
                "unknown field `nam`",
            ),
            (
                with("sync_wait = 3", "sync_wait = 3\ncolour = 1"),
                "unknown field `colour`",
            ),
            (
                with("name = \"chk_disk\"\n", "name = \"chk_web\"\n"),
                "vrrp.script[1].name: chk_web is defined twice",
            ),
            (
                with("script = [\"/bin/true\"]", "script = []"),
                "vrrp.script[1].script: needs a command",
            ),
            (
                with("script = [\"/bin/true\"]", "script = [\"/bin/\\u0000\"]"),
                "vrrp.script[1].script: an argument contains a NUL byte",
            ),
            (
                with("interval = 0.5", "interval = 0"),
                "vrrp.script[0].interval: 0 s is out of range",
            ),
            (
                with("timeout = 2", "timeout = 3601"),
                "vrrp.script[0].timeout:",
            ),
            (
                with("weight = -60", "weight = -254"),
                "vrrp.script[0].weight: -254 is out of range",
            ),
            (
                with("rise = 2", "rise = 0"),
                "vrrp.script[0].rise: 0 is out of range 1..=1000",
            ),
            (
                with("fall = 3", "fall = 1001"),
                "vrrp.script[0].fall: 1001 is out of range",
            ),
            (
                with("rise = 2", "rise = 2\nrun_as = \"root\""),
                "unknown field `run_as`",
            ),
            (
                with("instance = \"VI_1\"\nport", "instance = \"VI_9\"\nport"),
                "sync.instance: VI_9 is not a [[vrrp.instance]]",
            ),
            (
                with("port = 8849", "port = 0"),
                "sync.port: 0 is out of range",
            ),
            (with("port = 8849", "port = 70000"), "port"),
            (
                with("\npeers = [\"198.18.0.3\"]", "\npeers = [\"198.18.0.2\"]"),
                "sync.peers: 198.18.0.2 is this director's own address",
            ),
            (
                with(
                    "\npeers = [\"198.18.0.3\"]",
                    "\npeers = [\"255.255.255.255\"]",
                ),
                "sync.peers: 255.255.255.255 is not a unicast address",
            ),
            (
                with(
                    "\npeers = [\"198.18.0.3\"]",
                    "\npeers = [\"198.18.0.3\", \"198.18.0.3\"]",
                ),
                "sync.peers: 198.18.0.3 is listed twice",
            ),
            (
                with("ring = 4096", "ring = 0"),
                "sync.ring: 0 is out of range",
            ),
            (with("ring = 4096", "ring = 2000000"), "sync.ring:"),
            (
                with("max_message = 1200", "max_message = 100"),
                "sync.max_message: 100 is out of range 128..=65000",
            ),
            (
                with("flush_ms = 10", "flush_ms = 0"),
                "sync.flush_ms: 0 is out of range",
            ),
            (
                with("resync_timeout = 2.5", "resync_timeout = 601"),
                "sync.resync_timeout:",
            ),
            (
                with("refresh = 120", "refresh = 0.5"),
                "sync.refresh: 0 (never) or at least 1 s",
            ),
            (
                with("refresh = 120", "refresh = -1"),
                "sync.refresh: -1 s is out of range",
            ),
            (
                with(
                    "bulk_resync = false",
                    "bulk_resync = false\nmulticast = true",
                ),
                "unknown field `multicast`",
            ),
            (with("[sync]", "[vrrp.sync]"), "unknown field `sync`"),
        ];
        assert!(cases.len() >= 50);
        for (text, want) in &cases {
            let e = err(text);
            assert!(e.contains(want), "want {want:?}, got {e:?}");
        }
    }

    #[test]
    fn docs_ha_example_parses() {
        let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/ha.md");
        let text = std::fs::read_to_string(doc).unwrap();
        let start = text.find("```toml\n").expect("the example") + 8;
        let end = start + text[start..].find("```").unwrap();
        let c = Config::from_str(&text[start..end]).unwrap();
        let ha = c.ha().unwrap();
        assert_eq!(ha.instances[0].advert_int_cs, 30);
        assert_eq!(ha.sync.unwrap().peers, [Ipv4Addr::new(198, 18, 0, 3)]);
    }

    #[test]
    fn metrics_listen_parses_and_defaults_off() {
        let net = "[network]\ndip = \"198.18.0.2\"\n";
        let addr = |text: &str| {
            Config::from_str(text)
                .unwrap()
                .metrics
                .listen_addr()
                .unwrap()
        };
        assert_eq!(addr(net), None, "off by default");
        assert_eq!(addr(&format!("{net}[metrics]\n")), None);
        assert_eq!(addr(&format!("{net}[metrics]\nlisten = \"\"\n")), None);
        let cases: [(&str, SocketAddr); 4] = [
            ("127.0.0.1:9477", "127.0.0.1:9477".parse().unwrap()),
            ("198.18.0.2:9100", "198.18.0.2:9100".parse().unwrap()),
            ("0.0.0.0:9477", "0.0.0.0:9477".parse().unwrap()),
            ("[::1]:9477", "[::1]:9477".parse().unwrap()),
        ];
        for (text, want) in cases {
            let toml = format!("{net}[metrics]\nlisten = \"{text}\"\n");
            assert_eq!(addr(&toml), Some(want), "{text}");
        }
    }

    #[test]
    fn metrics_listen_bad_inputs_name_the_key() {
        let net = "[network]\ndip = \"198.18.0.2\"\n";
        // (the [metrics] section's body, what the error must contain)
        let cases: &[(&str, &str)] = &[
            (
                "listen = \"127.0.0.1\"",
                "metrics.listen: \"127.0.0.1\" is not a socket address",
            ),
            (
                "listen = \"localhost:9477\"",
                "metrics.listen: \"localhost:9477\" is not a socket address",
            ),
            (
                "listen = \":9477\"",
                "metrics.listen: \":9477\" is not a socket address",
            ),
            ("listen = \"127.0.0.1:\"", "is not a socket address"),
            ("listen = \"127.0.0.1:65536\"", "is not a socket address"),
            ("listen = \"127.0.0.1:-1\"", "is not a socket address"),
            ("listen = \"127.0.0.256:9477\"", "is not a socket address"),
            ("listen = \" 127.0.0.1:9477\"", "is not a socket address"),
            ("listen = \"127.0.0.1:9477 \"", "is not a socket address"),
            ("listen = \"::1:9477\"", "is not a socket address"),
            (
                "listen = \"http://127.0.0.1:9477/\"",
                "is not a socket address",
            ),
            (
                "listen = \"127.0.0.1:0\"",
                "metrics.listen: \"127.0.0.1:0\": port 0",
            ),
            (
                "listen = \"224.0.0.1:9477\"",
                "metrics.listen: \"224.0.0.1:9477\": a multicast address",
            ),
            ("listen = \"[ff02::1]:9477\"", "a multicast address"),
            ("listen = 9477", "invalid type"),
            ("listen = [\"127.0.0.1:9477\"]", "invalid type"),
            ("listen = true", "invalid type"),
            ("port = 9477", "unknown field `port`"),
            (
                "listen = \"127.0.0.1:9477\"\npath = \"/metrics\"",
                "unknown field `path`",
            ),
        ];
        for (body, want) in cases {
            let e = err(&format!("{net}[metrics]\n{body}\n"));
            assert!(e.contains(want), "{body}: want {want:?}, got {e:?}");
        }
        // Not a table at all.
        let e = err(&format!("metrics = \"127.0.0.1:9477\"\n{net}"));
        assert!(e.contains("metrics"), "{e}");
    }

    #[test]
    fn load_names_missing_file() {
        let e = Config::load("/nonexistent/rvs.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/rvs.toml"), "{e}");
    }
}
