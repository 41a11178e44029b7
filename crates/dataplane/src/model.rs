//! The management model: virtual services and their real servers as the operator configured them.
//!
//! This is the mutable, control-thread-only picture. Every change is validated here first; only a
//! model that validated is turned into an immutable dataplane snapshot (see `snapshot`) and
//! published to the workers. A rejected change leaves the model exactly as it was.
//!
//! Every service and real server gets a stable `slot` (index into fixed-size per-worker stats
//! arrays, reused after deletion) and a unique `id` (never reused), so that a flow entry that names
//! a deleted real server can never be mistaken for a new one that took over its slot.
//!
//! Health checks (issue 13) act on the model, never on the operator's settings: a real server
//! has a [`Health`] state and a health weight override (`misc_dynamic`), and a service may have
//! a sorry server. The snapshot obeys them (see [`RealServer::effective_weight`] and
//! [`Service::sorry_active`]); a server's `slot` and `id` never change with its health, so its
//! flows, counters and gauges stay attached while it is down and resume when it is up again.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// Layer-4 protocol of a virtual service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    /// IANA protocol number as carried in the IPv4 header.
    pub fn ip_proto(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
        }
    }
    pub fn from_ip_proto(p: u8) -> Option<Self> {
        match p {
            6 => Some(Protocol::Tcp),
            17 => Some(Protocol::Udp),
            _ => None,
        }
    }
    /// ipvsadm's spelling in `-L -n` ("TCP"/"UDP").
    pub fn upper(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

impl FromStr for Protocol {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, ModelError> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            _ => Err(ModelError::Invalid(format!(
                "unknown protocol '{s}' (expected tcp or udp)"
            ))),
        }
    }
}

/// A virtual service is named by protocol, VIP and port (port 0 = all ports, with persistence).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ServiceKey {
    pub proto: Protocol,
    pub vip: Ipv4Addr,
    pub port: u16,
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}:{}", self.proto, self.vip, self.port)
    }
}

/// The LVS schedulers by their ipvsadm names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum SchedulerKind {
    Rr,
    Wrr,
    Lc,
    Wlc,
    Sed,
    Nq,
    Lblc,
    Lblcr,
    Dh,
    Sh,
    Mh,
    Fo,
    Ovf,
}

impl SchedulerKind {
    pub const ALL: [SchedulerKind; 13] = [
        SchedulerKind::Rr,
        SchedulerKind::Wrr,
        SchedulerKind::Lc,
        SchedulerKind::Wlc,
        SchedulerKind::Sed,
        SchedulerKind::Nq,
        SchedulerKind::Lblc,
        SchedulerKind::Lblcr,
        SchedulerKind::Dh,
        SchedulerKind::Sh,
        SchedulerKind::Mh,
        SchedulerKind::Fo,
        SchedulerKind::Ovf,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SchedulerKind::Rr => "rr",
            SchedulerKind::Wrr => "wrr",
            SchedulerKind::Lc => "lc",
            SchedulerKind::Wlc => "wlc",
            SchedulerKind::Sed => "sed",
            SchedulerKind::Nq => "nq",
            SchedulerKind::Lblc => "lblc",
            SchedulerKind::Lblcr => "lblcr",
            SchedulerKind::Dh => "dh",
            SchedulerKind::Sh => "sh",
            SchedulerKind::Mh => "mh",
            SchedulerKind::Fo => "fo",
            SchedulerKind::Ovf => "ovf",
        }
    }
}

impl fmt::Display for SchedulerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SchedulerKind {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, ModelError> {
        SchedulerKind::ALL
            .iter()
            .copied()
            .find(|k| k.name() == s)
            .ok_or_else(|| ModelError::Invalid(format!("Scheduler not found: {s}")))
    }
}

/// Scheduler flags (`-b`) as they affect selection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    /// sh-fallback / mh-fallback (flag-1): when the hashed server has weight 0 or is
    /// overloaded, try others instead of giving up.
    pub fallback: bool,
    /// sh-port / mh-port (flag-2): hash the source port with the source address.
    pub port: bool,
}

/// Parse scheduler flags for `k` (each string may hold several, comma separated), with
/// ipvsadm's names and messages: `sh-fallback`, `sh-port` for sh, `mh-fallback`, `mh-port` for
/// mh, and the generic `flag-1`, `flag-2`, `flag-3` (meaning fallback, port, nothing).
pub fn parse_flags(k: SchedulerKind, flags: &[String]) -> Result<Flags, ModelError> {
    let mut f = Flags::default();
    let hashing = matches!(k, SchedulerKind::Sh | SchedulerKind::Mh);
    for name in flags.iter().flat_map(|s| s.split(',')).map(str::trim) {
        let (owner, fallback) = match name {
            "" | "flag-3" => continue,
            "flag-1" => (None, true),
            "flag-2" => (None, false),
            "sh-fallback" => (Some(SchedulerKind::Sh), true),
            "sh-port" => (Some(SchedulerKind::Sh), false),
            "mh-fallback" => (Some(SchedulerKind::Mh), true),
            "mh-port" => (Some(SchedulerKind::Mh), false),
            _ => {
                return Err(ModelError::Invalid(format!(
                    "invalid scheduler flag `{name}'"
                )))
            }
        };
        if owner.is_some_and(|o| o != k) {
            return Err(ModelError::Invalid(format!(
                "incompatible scheduler flag `{name}'"
            )));
        }
        if hashing {
            if fallback {
                f.fallback = true;
            } else {
                f.port = true;
            }
        }
    }
    Ok(f)
}

/// Packet forwarding method of a real server (ipvsadm `-g`, `-i`, `-m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Forward {
    /// Direct routing ("gatewaying", `-g`): rewrite MACs only.
    #[default]
    Dr,
    /// IP-in-IP tunnelling (`-i`). Not supported yet.
    Tunnel,
    /// NAT ("masquerading", `-m`). Not supported yet.
    Masq,
}

impl Forward {
    /// ipvsadm's `-L -n` column spelling.
    pub fn lvs_name(self) -> &'static str {
        match self {
            Forward::Dr => "Route",
            Forward::Tunnel => "Tunnel",
            Forward::Masq => "Masq",
        }
    }
}

/// What the operator asks for when adding or editing a service.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ServiceSpec {
    pub key: ServiceKey,
    pub scheduler: SchedulerKind,
    /// Persistence timeout in seconds (`-p`); `None` = not persistent.
    #[cfg_attr(feature = "serde", serde(default))]
    pub persistent: Option<u32>,
    /// Persistence netmask (`-M`), default 255.255.255.255.
    #[cfg_attr(feature = "serde", serde(default = "full_mask"))]
    pub netmask: Ipv4Addr,
    /// Scheduler flags (`-b`), e.g. "sh-port".
    #[cfg_attr(feature = "serde", serde(default))]
    pub flags: Vec<String>,
}

#[cfg_attr(not(feature = "serde"), allow(dead_code))]
fn full_mask() -> Ipv4Addr {
    Ipv4Addr::BROADCAST
}

/// What the operator asks for when adding or editing a real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ServerSpec {
    pub addr: Ipv4Addr,
    /// Real server port; in DR mode it must equal the service port (0 = same as service).
    pub port: u16,
    pub weight: u32,
    #[cfg_attr(feature = "serde", serde(default))]
    pub forward: Forward,
    /// Upper connection threshold (`-x`), 0 = none.
    #[cfg_attr(feature = "serde", serde(default))]
    pub upper: u32,
    /// Lower connection threshold (`-y`), 0 = none.
    #[cfg_attr(feature = "serde", serde(default))]
    pub lower: u32,
}

/// What the health checks say of a real server, as the snapshot obeys it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Health {
    /// Scheduled with its weight (or the health weight override). Every server without checks.
    #[default]
    Up,
    /// Not in the snapshot: not scheduled, and its existing flows are treated as those of a
    /// deleted server (`expire_nodest_conn`).
    Down,
    /// Down with `inhibit_on_failure`: in the snapshot with weight 0, so its existing flows
    /// continue and no new one is scheduled to it (as ipvsadm `-w 0`).
    Inhibited,
}

impl Health {
    pub fn name(self) -> &'static str {
        match self {
            Health::Up => "up",
            Health::Down => "down",
            Health::Inhibited => "inhibited",
        }
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A configured real server.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct RealServer {
    pub spec: ServerSpec,
    /// Stable stats slot (reused after deletion).
    pub slot: u32,
    /// Unique id, never reused.
    pub id: u32,
    /// Its health state ([`Health::Up`] unless checks say otherwise); `-e` keeps it.
    pub health: Health,
    /// The weight a `misc_dynamic` check set, used instead of `spec.weight` while set; `-e`
    /// keeps it.
    pub health_weight: Option<u32>,
}

impl RealServer {
    /// The weight the snapshot schedules it with; `None`: not in the snapshot (down).
    pub fn effective_weight(&self) -> Option<u32> {
        match self.health {
            Health::Up => Some(self.health_weight.unwrap_or(self.spec.weight)),
            Health::Inhibited => Some(0),
            Health::Down => None,
        }
    }
}

/// A service's sorry server (keepalived's `sorry_server`): scheduled alone while the service's
/// quorum is lost, instead of its real servers. It is not one of the service's real servers:
/// `-L`, `-S`, `-e` and `-d` do not see it (it is set through the health settings), but like one
/// it has its own stats `slot` (counted against the real server capacity) and `id`, kept while
/// its address and port stay the same.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct SorryServer {
    /// Port normalised as a real server's (0 = the service port).
    pub spec: ServerSpec,
    pub slot: u32,
    pub id: u32,
}

/// A configured virtual service.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Service {
    pub spec: ServiceSpec,
    pub slot: u32,
    pub id: u32,
    pub servers: Vec<RealServer>,
    /// The sorry server, if one is set.
    pub sorry: Option<SorryServer>,
    /// The quorum is lost: the snapshot has the sorry server (if set) instead of the real
    /// servers. Without a sorry server this changes nothing in the snapshot.
    pub quorum_lost: bool,
}

impl Service {
    /// The sorry server while it is in use (set and the quorum lost).
    pub fn sorry_active(&self) -> Option<&SorryServer> {
        self.sorry.as_ref().filter(|_| self.quorum_lost)
    }

    /// A real server by address and port (0 = the service port).
    pub fn server(&self, addr: Ipv4Addr, port: u16) -> Option<&RealServer> {
        let port = if port == 0 { self.spec.key.port } else { port };
        self.servers
            .iter()
            .find(|r| r.spec.addr == addr && r.spec.port == port)
    }
}

/// The idle timeouts an operator sets (`ipvsadm --set tcp tcpfin udp`, `[timeouts]` in the
/// configuration), in seconds. The other states' timeouts are fixed; the whole table, and the
/// defaults (IPVS's 900 / 120 / 300), are [`crate::flow::Timeouts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields, default))]
pub struct Timeouts {
    pub tcp: u32,
    pub tcp_fin: u32,
    pub udp: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        crate::flow::Timeouts::default().settable()
    }
}

/// A statically configured neighbour (no ARP needed for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct StaticNeighbour {
    pub addr: Ipv4Addr,
    pub mac: [u8; 6],
}

/// Validation and lookup failures. Messages follow ipvsadm's wording where one exists, since
/// scripts match on them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error("Service already exists")]
    ServiceExists,
    #[error("No such service")]
    NoSuchService,
    /// A real server command named a service that does not exist (ipvsadm's wording for it).
    #[error("Service not defined")]
    ServiceNotDefined,
    #[error("Destination already exists")]
    ServerExists,
    #[error("No such destination")]
    NoSuchServer,
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{what} table is full ({capacity} entries)")]
    Full { what: &'static str, capacity: u32 },
}

/// Maximum weight ipvsadm accepts.
pub const MAX_WEIGHT: u32 = 65535;

/// Allocator of reusable slots below a fixed capacity.
#[derive(Debug, Clone)]
struct Slots {
    free: Vec<u32>,
    next: u32,
    capacity: u32,
}

impl Slots {
    fn new(capacity: u32) -> Self {
        Slots {
            free: Vec::new(),
            next: 0,
            capacity,
        }
    }
    fn alloc(&mut self, what: &'static str) -> Result<u32, ModelError> {
        if let Some(s) = self.free.pop() {
            return Ok(s);
        }
        if self.next >= self.capacity {
            return Err(ModelError::Full {
                what,
                capacity: self.capacity,
            });
        }
        self.next += 1;
        Ok(self.next - 1)
    }
    fn release(&mut self, s: u32) {
        self.free.push(s);
    }
}

/// A deleted real server kept in the destination trash (as IPVS keeps a deleted destination
/// while connections refer to it): re-added to the same service with the same address and
/// port, it gets its slot and id back, so the flows still attached to it resume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trashed {
    pub service: ServiceKey,
    pub addr: Ipv4Addr,
    /// Normalised (never 0).
    pub port: u16,
    pub slot: u32,
    pub id: u32,
}

/// The whole management model.
#[derive(Debug, Clone)]
pub struct Model {
    services: Vec<Service>,
    /// The destination trash, oldest first. Its servers keep their slots (so no other server
    /// takes them over); the oldest gives its slot up when a new server needs one and none is
    /// free.
    trash: Vec<Trashed>,
    pub statics: Vec<StaticNeighbour>,
    /// VIPs a VRRP instance holds while it is not MASTER (sorted): configured, but neither
    /// answered for (ARP) nor forwarded to. Empty without VRRP: every VIP is ours.
    standby: Vec<Ipv4Addr>,
    svc_slots: Slots,
    rs_slots: Slots,
    next_id: u32,
}

impl Model {
    /// A model able to hold `max_services` services and `max_servers` real servers in total.
    pub fn new(max_services: u32, max_servers: u32) -> Self {
        Model {
            services: Vec::new(),
            trash: Vec::new(),
            statics: Vec::new(),
            standby: Vec::new(),
            svc_slots: Slots::new(max_services),
            rs_slots: Slots::new(max_servers),
            next_id: 1,
        }
    }

    /// VRRP: `vips` become ours (`master`) or are held in standby (not answered for, not
    /// forwarded to; their flows are kept). Returns whether anything changed.
    pub fn set_vips_master(&mut self, vips: &[Ipv4Addr], master: bool) -> bool {
        let before = self.standby.len();
        if master {
            self.standby.retain(|v| !vips.contains(v));
        } else {
            for v in vips {
                if let Err(i) = self.standby.binary_search(v) {
                    self.standby.insert(i, *v);
                }
            }
        }
        self.standby.len() != before
    }

    /// The VIPs held in standby (sorted).
    pub fn standby_vips(&self) -> &[Ipv4Addr] {
        &self.standby
    }

    /// Whether `vip` is held in standby by VRRP.
    pub fn is_standby(&self, vip: Ipv4Addr) -> bool {
        self.standby.binary_search(&vip).is_ok()
    }

    pub fn max_services(&self) -> u32 {
        self.svc_slots.capacity
    }
    pub fn max_servers(&self) -> u32 {
        self.rs_slots.capacity
    }

    /// Services in the order they were added (ipvsadm lists in its own hash order; we keep
    /// insertion order, which is stable and what `-S` round-trips).
    pub fn services(&self) -> &[Service] {
        &self.services
    }

    pub fn service(&self, key: &ServiceKey) -> Option<&Service> {
        self.services.iter().find(|s| s.spec.key == *key)
    }

    fn service_mut(&mut self, key: &ServiceKey) -> Result<&mut Service, ModelError> {
        self.services
            .iter_mut()
            .find(|s| s.spec.key == *key)
            .ok_or(ModelError::NoSuchService)
    }

    /// The destination trash (deleted real servers whose flows may still refer to them).
    pub fn trash(&self) -> &[Trashed] {
        &self.trash
    }

    /// Put a deleted real server of service `service` in the trash (its slot stays taken).
    fn put_in_trash(&mut self, service: ServiceKey, rs: &RealServer) {
        self.trash.retain(|t| t.slot != rs.slot);
        self.trash.push(Trashed {
            service,
            addr: rs.spec.addr,
            port: rs.spec.port,
            slot: rs.slot,
            id: rs.id,
        });
    }

    /// A real server slot: a free one, else the oldest trashed server's.
    fn alloc_rs_slot(&mut self) -> Result<u32, ModelError> {
        match self.rs_slots.alloc("real server") {
            Ok(s) => Ok(s),
            Err(e) if self.trash.is_empty() => Err(e),
            Err(_) => Ok(self.trash.remove(0).slot),
        }
    }

    fn take_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        id
    }

    fn check_service(spec: &ServiceSpec) -> Result<(), ModelError> {
        if spec.key.vip.is_unspecified()
            || spec.key.vip.is_broadcast()
            || spec.key.vip.is_multicast()
        {
            return Err(ModelError::Invalid(format!(
                "invalid virtual address {}",
                spec.key.vip
            )));
        }
        if spec.key.port == 0 && spec.persistent.is_none() {
            return Err(ModelError::Invalid(
                "Zero port specified for non-persistent service".to_string(),
            ));
        }
        let m = u32::from(spec.netmask);
        if m.leading_ones() + m.trailing_zeros() != 32 {
            return Err(ModelError::Invalid(format!(
                "invalid persistence netmask {}",
                spec.netmask
            )));
        }
        parse_flags(spec.scheduler, &spec.flags)?;
        Ok(())
    }

    fn check_server(svc: &ServiceSpec, spec: &ServerSpec) -> Result<(), ModelError> {
        if spec.addr.is_unspecified() || spec.addr.is_broadcast() || spec.addr.is_multicast() {
            return Err(ModelError::Invalid(format!(
                "invalid real server address {}",
                spec.addr
            )));
        }
        if spec.weight > MAX_WEIGHT {
            return Err(ModelError::Invalid(format!(
                "weight {} out of range (0..={MAX_WEIGHT})",
                spec.weight
            )));
        }
        match spec.forward {
            Forward::Dr => {}
            Forward::Tunnel => {
                return Err(ModelError::Unsupported(
                    "forwarding method tunnel (-i) is not supported yet".to_string(),
                ))
            }
            Forward::Masq => {
                return Err(ModelError::Unsupported(
                    "forwarding method masquerading (-m) is not supported yet".to_string(),
                ))
            }
        }
        if spec.port != 0 && spec.port != svc.key.port && svc.key.port != 0 {
            return Err(ModelError::Invalid(format!(
                "direct routing cannot change the port ({} -> {}); use the service port",
                svc.key.port, spec.port
            )));
        }
        if spec.lower > spec.upper && spec.upper != 0 {
            return Err(ModelError::Invalid(format!(
                "lower threshold {} is above upper threshold {}",
                spec.lower, spec.upper
            )));
        }
        Ok(())
    }

    /// `ipvsadm -A`.
    pub fn add_service(&mut self, spec: ServiceSpec) -> Result<(), ModelError> {
        Self::check_service(&spec)?;
        if self.service(&spec.key).is_some() {
            return Err(ModelError::ServiceExists);
        }
        let slot = self.svc_slots.alloc("service")?;
        let id = self.take_id();
        self.services.push(Service {
            spec,
            slot,
            id,
            servers: Vec::new(),
            sorry: None,
            quorum_lost: false,
        });
        Ok(())
    }

    /// `ipvsadm -E`: scheduler, persistence, netmask and flags change; the key cannot.
    pub fn edit_service(&mut self, spec: ServiceSpec) -> Result<(), ModelError> {
        Self::check_service(&spec)?;
        let svc = self.service_mut(&spec.key)?;
        svc.spec = spec;
        Ok(())
    }

    /// `ipvsadm -D`.
    pub fn delete_service(&mut self, key: &ServiceKey) -> Result<(), ModelError> {
        let i = self
            .services
            .iter()
            .position(|s| s.spec.key == *key)
            .ok_or(ModelError::NoSuchService)?;
        let svc = self.services.remove(i);
        self.svc_slots.release(svc.slot);
        for rs in &svc.servers {
            self.put_in_trash(svc.spec.key, rs);
        }
        if let Some(s) = svc.sorry {
            self.rs_slots.release(s.slot);
        }
        Ok(())
    }

    /// `ipvsadm -C`.
    pub fn clear(&mut self) {
        let keys: Vec<ServiceKey> = self.services.iter().map(|s| s.spec.key).collect();
        for k in keys {
            let _ = self.delete_service(&k);
        }
    }

    fn normalise_port(svc: &ServiceSpec, mut spec: ServerSpec) -> ServerSpec {
        if spec.port == 0 {
            spec.port = svc.key.port;
        }
        spec
    }

    /// `ipvsadm -a`.
    pub fn add_server(&mut self, key: &ServiceKey, spec: ServerSpec) -> Result<(), ModelError> {
        let svc_spec = self
            .service(key)
            .ok_or(ModelError::ServiceNotDefined)?
            .spec
            .clone();
        Self::check_server(&svc_spec, &spec)?;
        let spec = Self::normalise_port(&svc_spec, spec);
        if self.service(key).is_some_and(|s| {
            s.servers
                .iter()
                .any(|r| r.spec.addr == spec.addr && r.spec.port == spec.port)
        }) {
            return Err(ModelError::ServerExists);
        }
        // Back from the trash (same service, address and port): its slot and id again.
        let (slot, id) = match self
            .trash
            .iter()
            .position(|t| t.service == *key && t.addr == spec.addr && t.port == spec.port)
        {
            Some(i) => {
                let t = self.trash.remove(i);
                (t.slot, t.id)
            }
            None => (self.alloc_rs_slot()?, self.take_id()),
        };
        let svc = self.service_mut(key)?;
        svc.servers.push(RealServer {
            spec,
            slot,
            id,
            health: Health::Up,
            health_weight: None,
        });
        Ok(())
    }

    /// `ipvsadm -e`: weight, thresholds and forwarding method change (the health state and
    /// the health weight stay).
    pub fn edit_server(&mut self, key: &ServiceKey, spec: ServerSpec) -> Result<(), ModelError> {
        let svc_spec = self
            .service(key)
            .ok_or(ModelError::ServiceNotDefined)?
            .spec
            .clone();
        Self::check_server(&svc_spec, &spec)?;
        let spec = Self::normalise_port(&svc_spec, spec);
        let svc = self.service_mut(key)?;
        let rs = svc
            .servers
            .iter_mut()
            .find(|r| r.spec.addr == spec.addr && r.spec.port == spec.port)
            .ok_or(ModelError::NoSuchServer)?;
        rs.spec = spec;
        Ok(())
    }

    /// `ipvsadm -d`. `port` 0 means the service port.
    pub fn delete_server(
        &mut self,
        key: &ServiceKey,
        addr: Ipv4Addr,
        port: u16,
    ) -> Result<(), ModelError> {
        let port = if port == 0 { key.port } else { port };
        let svc = self
            .service_mut(key)
            .map_err(|_| ModelError::ServiceNotDefined)?;
        let i = svc
            .servers
            .iter()
            .position(|r| r.spec.addr == addr && r.spec.port == port)
            .ok_or(ModelError::NoSuchServer)?;
        let rs = svc.servers.remove(i);
        self.put_in_trash(*key, &rs);
        Ok(())
    }

    /// Set what the health checks say of a real server (`port` 0 = the service port):
    /// its state and the `misc_dynamic` weight (`None`: the configured weight).
    pub fn set_server_health(
        &mut self,
        key: &ServiceKey,
        addr: Ipv4Addr,
        port: u16,
        health: Health,
        weight: Option<u32>,
    ) -> Result<(), ModelError> {
        if let Some(w) = weight.filter(|w| *w > MAX_WEIGHT) {
            return Err(ModelError::Invalid(format!(
                "weight {w} out of range (0..={MAX_WEIGHT})"
            )));
        }
        let port = if port == 0 { key.port } else { port };
        let svc = self
            .service_mut(key)
            .map_err(|_| ModelError::ServiceNotDefined)?;
        let rs = svc
            .servers
            .iter_mut()
            .find(|r| r.spec.addr == addr && r.spec.port == port)
            .ok_or(ModelError::NoSuchServer)?;
        rs.health = health;
        rs.health_weight = weight;
        Ok(())
    }

    /// Set, replace (`Some`) or remove (`None`) the sorry server of a service. It is checked
    /// as a real server; the same address and port keep their slot and id.
    pub fn set_sorry_server(
        &mut self,
        key: &ServiceKey,
        spec: Option<ServerSpec>,
    ) -> Result<(), ModelError> {
        let svc_spec = self
            .service(key)
            .ok_or(ModelError::ServiceNotDefined)?
            .spec
            .clone();
        let old = self.service(key).and_then(|s| s.sorry.clone());
        let new = match spec {
            None => {
                if let Some(o) = &old {
                    self.rs_slots.release(o.slot);
                }
                None
            }
            Some(spec) => {
                Self::check_server(&svc_spec, &spec)?;
                let spec = Self::normalise_port(&svc_spec, spec);
                match &old {
                    Some(o) if o.spec.addr == spec.addr && o.spec.port == spec.port => {
                        Some(SorryServer { spec, ..o.clone() })
                    }
                    _ => {
                        // Another server: the old one's slot is free for it (a new id tells
                        // its flows and counters apart).
                        if let Some(o) = &old {
                            self.rs_slots.release(o.slot);
                        }
                        let slot = self.alloc_rs_slot()?;
                        let id = self.take_id();
                        Some(SorryServer { spec, slot, id })
                    }
                }
            }
        };
        self.service_mut(key)?.sorry = new;
        Ok(())
    }

    /// The quorum of a service is lost (`true`) or met (`false`).
    pub fn set_quorum_lost(&mut self, key: &ServiceKey, lost: bool) -> Result<(), ModelError> {
        self.service_mut(key)
            .map_err(|_| ModelError::ServiceNotDefined)?
            .quorum_lost = lost;
        Ok(())
    }

    /// Add or replace a static neighbour entry.
    pub fn set_static_neighbour(&mut self, n: StaticNeighbour) -> Result<(), ModelError> {
        if n.mac[0] & 1 == 1 || n.mac == [0; 6] {
            return Err(ModelError::Invalid(format!(
                "invalid neighbour MAC for {} (multicast or zero)",
                n.addr
            )));
        }
        self.statics.retain(|s| s.addr != n.addr);
        self.statics.push(n);
        Ok(())
    }

    /// Delete the static neighbour entry of `addr` (the address goes back to ARP if a real
    /// server still uses it).
    pub fn delete_static_neighbour(&mut self, addr: Ipv4Addr) -> Result<(), ModelError> {
        let before = self.statics.len();
        self.statics.retain(|s| s.addr != addr);
        if self.statics.len() == before {
            return Err(ModelError::Invalid(format!(
                "No such static neighbour {addr}"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(port: u16) -> ServiceKey {
        ServiceKey {
            proto: Protocol::Tcp,
            vip: Ipv4Addr::new(198, 18, 0, 100),
            port,
        }
    }
    fn svc(port: u16, s: SchedulerKind) -> ServiceSpec {
        ServiceSpec {
            key: key(port),
            scheduler: s,
            persistent: None,
            netmask: Ipv4Addr::BROADCAST,
            flags: vec![],
        }
    }
    fn rs(last: u8, w: u32) -> ServerSpec {
        ServerSpec {
            addr: Ipv4Addr::new(198, 18, 0, last),
            port: 0,
            weight: w,
            forward: Forward::Dr,
            upper: 0,
            lower: 0,
        }
    }

    #[test]
    fn add_edit_delete_service_and_servers() {
        let mut m = Model::new(4, 4);
        m.add_service(svc(80, SchedulerKind::Rr)).unwrap();
        assert_eq!(
            m.add_service(svc(80, SchedulerKind::Rr)),
            Err(ModelError::ServiceExists)
        );
        m.add_server(&key(80), rs(11, 1)).unwrap();
        assert_eq!(
            m.add_server(&key(80), rs(11, 1)),
            Err(ModelError::ServerExists)
        );
        m.edit_server(&key(80), rs(11, 5)).unwrap();
        assert_eq!(m.service(&key(80)).unwrap().servers[0].spec.weight, 5);
        assert_eq!(m.service(&key(80)).unwrap().servers[0].spec.port, 80);
        m.edit_service(svc(80, SchedulerKind::Wrr)).unwrap();
        assert_eq!(m.services()[0].spec.scheduler, SchedulerKind::Wrr);
        assert_eq!(
            m.delete_server(&key(80), Ipv4Addr::new(198, 18, 0, 12), 0),
            Err(ModelError::NoSuchServer)
        );
        m.delete_server(&key(80), Ipv4Addr::new(198, 18, 0, 11), 0)
            .unwrap();
        m.delete_service(&key(80)).unwrap();
        assert_eq!(m.delete_service(&key(80)), Err(ModelError::NoSuchService));
        assert!(m.services().is_empty());
    }

    #[test]
    fn rejected_changes_leave_model_untouched() {
        let mut m = Model::new(4, 4);
        m.add_service(svc(80, SchedulerKind::Rr)).unwrap();
        m.add_server(&key(80), rs(11, 1)).unwrap();
        let before = m.services().to_vec();
        assert!(m.add_server(&key(80), rs(12, 70000)).is_err());
        let mut tun = rs(12, 1);
        tun.forward = Forward::Tunnel;
        assert!(matches!(
            m.add_server(&key(80), tun),
            Err(ModelError::Unsupported(_))
        ));
        let mut other_port = rs(12, 1);
        other_port.port = 8080;
        assert!(m.add_server(&key(80), other_port).is_err());
        assert!(m.add_service(svc(0, SchedulerKind::Rr)).is_err());
        assert_eq!(m.services(), &before[..]);
    }

    #[test]
    fn slots_are_reused_ids_are_not_and_capacity_is_enforced() {
        let mut m = Model::new(1, 2);
        m.add_service(svc(80, SchedulerKind::Rr)).unwrap();
        assert!(matches!(
            m.add_service(svc(81, SchedulerKind::Rr)),
            Err(ModelError::Full { .. })
        ));
        m.add_server(&key(80), rs(11, 1)).unwrap();
        m.add_server(&key(80), rs(12, 1)).unwrap();
        assert!(matches!(
            m.add_server(&key(80), rs(13, 1)),
            Err(ModelError::Full { .. })
        ));
        let old = m.service(&key(80)).unwrap().servers[0].clone();
        m.delete_server(&key(80), old.spec.addr, 0).unwrap();
        m.add_server(&key(80), rs(13, 1)).unwrap();
        let new = m.service(&key(80)).unwrap().servers[1].clone();
        assert_eq!(new.slot, old.slot);
        assert_ne!(new.id, old.id);
    }

    #[test]
    fn the_destination_trash_gives_a_readded_server_its_slot_and_id_back() {
        let mut m = Model::new(2, 3);
        m.add_service(svc(80, SchedulerKind::Rr)).unwrap();
        m.add_server(&key(80), rs(11, 1)).unwrap();
        m.add_server(&key(80), rs(12, 1)).unwrap();
        let a = m.service(&key(80)).unwrap().servers[0].clone();
        let b = m.service(&key(80)).unwrap().servers[1].clone();
        // -d then -a with the same address and port: the same slot and id.
        m.delete_server(&key(80), a.spec.addr, 0).unwrap();
        assert_eq!(m.trash().len(), 1);
        m.add_server(&key(80), rs(11, 3)).unwrap();
        let back = m.service(&key(80)).unwrap().servers[1].clone();
        assert_eq!((back.slot, back.id, back.spec.weight), (a.slot, a.id, 3));
        assert!(m.trash().is_empty());
        // -C then the same rules again (rvsadm -C; rvsadm -R): every server comes back as it was.
        m.clear();
        assert_eq!(m.trash().len(), 2);
        m.add_service(svc(80, SchedulerKind::Rr)).unwrap();
        m.add_server(&key(80), rs(12, 1)).unwrap();
        m.add_server(&key(80), rs(11, 1)).unwrap();
        let s = m.service(&key(80)).unwrap();
        assert_eq!((s.servers[0].slot, s.servers[0].id), (b.slot, b.id));
        assert_eq!((s.servers[1].slot, s.servers[1].id), (a.slot, a.id));
        // The same address in another service, or another port, is another server.
        m.add_service(svc(81, SchedulerKind::Rr)).unwrap();
        m.delete_server(&key(80), b.spec.addr, 0).unwrap();
        m.add_server(&key(81), rs(12, 1)).unwrap();
        let other = m.service(&key(81)).unwrap().servers[0].clone();
        assert_ne!(other.id, b.id);
        assert_ne!(other.slot, b.slot, "the trashed server keeps its slot");
        // Out of slots (3: a, other, and b's in the trash): the oldest trashed gives its slot up.
        m.add_server(&key(81), rs(13, 1)).unwrap();
        let t = m.service(&key(81)).unwrap().servers[1].clone();
        assert_eq!(t.slot, b.slot);
        assert_ne!(t.id, b.id);
        assert!(m.trash().is_empty());
        assert!(matches!(
            m.add_server(&key(81), rs(14, 1)),
            Err(ModelError::Full { .. })
        ));
    }

    #[test]
    fn health_keeps_slot_and_id_and_survives_edit() {
        let mut m = Model::new(4, 4);
        m.add_service(svc(80, SchedulerKind::Wrr)).unwrap();
        m.add_server(&key(80), rs(11, 5)).unwrap();
        let before = m.service(&key(80)).unwrap().servers[0].clone();
        assert_eq!(before.effective_weight(), Some(5));
        let a = Ipv4Addr::new(198, 18, 0, 11);
        m.set_server_health(&key(80), a, 0, Health::Down, None)
            .unwrap();
        let rs0 = &m.service(&key(80)).unwrap().servers[0];
        assert_eq!((rs0.slot, rs0.id), (before.slot, before.id));
        assert_eq!(rs0.effective_weight(), None);
        // -e changes the weight, not the health
        m.edit_server(&key(80), rs(11, 7)).unwrap();
        let rs0 = &m.service(&key(80)).unwrap().servers[0];
        assert_eq!((rs0.health, rs0.spec.weight), (Health::Down, 7));
        m.set_server_health(&key(80), a, 80, Health::Inhibited, None)
            .unwrap();
        assert_eq!(
            m.service(&key(80)).unwrap().servers[0].effective_weight(),
            Some(0)
        );
        m.set_server_health(&key(80), a, 0, Health::Up, Some(3))
            .unwrap();
        m.edit_server(&key(80), rs(11, 9)).unwrap();
        let rs0 = &m.service(&key(80)).unwrap().servers[0];
        assert_eq!(
            rs0.effective_weight(),
            Some(3),
            "the health weight wins while set"
        );
        assert_eq!((rs0.slot, rs0.id), (before.slot, before.id));
        // unknown server, service, out-of-range weight: refused, nothing changed
        let snap = m.services().to_vec();
        assert_eq!(
            m.set_server_health(
                &key(80),
                Ipv4Addr::new(198, 18, 0, 12),
                0,
                Health::Down,
                None
            ),
            Err(ModelError::NoSuchServer)
        );
        assert_eq!(
            m.set_server_health(&key(81), a, 0, Health::Down, None),
            Err(ModelError::ServiceNotDefined)
        );
        assert!(m
            .set_server_health(&key(80), a, 0, Health::Up, Some(MAX_WEIGHT + 1))
            .is_err());
        assert_eq!(m.services(), &snap[..]);
    }

    #[test]
    fn sorry_server_has_its_own_slot_and_id() {
        let mut m = Model::new(2, 2);
        m.add_service(svc(80, SchedulerKind::Rr)).unwrap();
        m.add_server(&key(80), rs(11, 1)).unwrap();
        m.set_sorry_server(&key(80), Some(rs(99, 1))).unwrap();
        let s = m.service(&key(80)).unwrap();
        let sorry = s.sorry.clone().unwrap();
        assert_eq!(sorry.spec.port, 80, "port normalised");
        assert_ne!(sorry.slot, s.servers[0].slot);
        assert_ne!(sorry.id, s.servers[0].id);
        assert!(s.sorry_active().is_none(), "quorum met");
        assert!(s.server(sorry.spec.addr, 0).is_none(), "not a real server");
        // it takes a real server slot: the capacity (2) is reached
        assert!(matches!(
            m.add_server(&key(80), rs(12, 1)),
            Err(ModelError::Full { .. })
        ));
        // same address: same slot and id; the weight changes
        m.set_sorry_server(&key(80), Some(rs(99, 4))).unwrap();
        let again = m.service(&key(80)).unwrap().sorry.clone().unwrap();
        assert_eq!(
            (again.slot, again.id, again.spec.weight),
            (sorry.slot, sorry.id, 4)
        );
        // another address: a new id (the slot may be reused)
        m.set_sorry_server(&key(80), Some(rs(98, 1))).unwrap();
        let other = m.service(&key(80)).unwrap().sorry.clone().unwrap();
        assert_ne!(other.id, sorry.id);
        m.set_quorum_lost(&key(80), true).unwrap();
        assert_eq!(
            m.service(&key(80)).unwrap().sorry_active().map(|s| s.id),
            Some(other.id)
        );
        // a bad sorry server is refused as a real server would be
        let mut bad = rs(97, 1);
        bad.port = 8080;
        assert!(m.set_sorry_server(&key(80), Some(bad)).is_err());
        assert_eq!(m.service(&key(80)).unwrap().sorry.as_ref(), Some(&other));
        // removing it frees its slot; so does deleting the service
        m.set_sorry_server(&key(80), None).unwrap();
        m.add_server(&key(80), rs(12, 1)).unwrap();
        m.delete_server(&key(80), Ipv4Addr::new(198, 18, 0, 12), 0)
            .unwrap();
        m.set_sorry_server(&key(80), Some(rs(99, 1))).unwrap();
        m.delete_service(&key(80)).unwrap();
        m.add_service(svc(80, SchedulerKind::Rr)).unwrap();
        m.add_server(&key(80), rs(11, 1)).unwrap();
        m.add_server(&key(80), rs(12, 1)).unwrap();
    }
}
