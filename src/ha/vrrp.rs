//! VRRP on the kernel interface: one runner thread for every instance.
//!
//! One raw IPv4 socket (protocol 112) bound to the kernel interface carries every instance's
//! adverts both ways: the workers hand VRRP frames to the kernel path outside its rate limit,
//! and what the socket sends leaves through the kernel path's own tx queue, so adverts never
//! wait behind data frames. The socket writes its own IP header (`IP_HDRINCL`): TTL 255, the
//! source the v3 checksum covers. Each instance is a [`Machine`]; the runner feeds it adverts
//! and its deadlines and acts on what it says through the [`HaSink`] (the control server):
//! VIPs ours or in standby (a new snapshot), gratuitous ARPs, status for `list`/`stats`.
//!
//! Tracked scripts run as child processes (argv, no shell), never waited for in the loop;
//! notify commands likewise. Everything the runner does is bounded by the next deadline, at
//! most [`MAX_WAIT`], so adverts go out on time.

use rvs_control::ha::{
    Garp, HaConfig, HaSink, InstanceStatus, SyncLink, VrrpInstance, VrrpScript, VrrpState,
    VrrpVersion, VRRP_GROUP,
};
use rvs_control::vrrp::machine::{Action, Machine, Params};
use rvs_control::vrrp::packet::{self, Advert, AdvertError};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The longest the runner sleeps in one receive.
pub const MAX_WAIT: Duration = Duration::from_millis(10);
/// How often the status is reported when nothing changes.
const STATUS_EVERY_MS: u64 = 1000;

/// What the runner needs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The kernel interface (the DIP is on it).
    pub ifname: String,
    pub dip: Ipv4Addr,
    pub ha: HaConfig,
    /// Shared with the sync thread, for the instance sync follows.
    pub link: Option<Arc<SyncLink>>,
}

/// Open the socket and start the runner; errors (no such interface, no privilege) come back
/// here, at start-up.
pub fn spawn(
    opts: Options,
    sink: Arc<dyn HaSink>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let sock = open_socket(&opts.ifname, opts.dip)?;
    std::thread::Builder::new()
        .name("rvs-vrrp".to_string())
        .spawn(move || Runner::new(opts, sink, sock).run(&stop))
}

fn open_socket(ifname: &str, dip: Ipv4Addr) -> std::io::Result<Socket> {
    let s = Socket::new(
        Domain::IPV4,
        Type::RAW,
        Some(Protocol::from(i32::from(rvs_control::ha::VRRP_PROTO))),
    )?;
    s.bind_device(Some(ifname.as_bytes()))?;
    s.set_header_included_v4(true)?;
    s.join_multicast_v4(&VRRP_GROUP, &dip)?;
    s.set_multicast_if_v4(&dip)?;
    s.set_multicast_loop_v4(false)?;
    s.set_multicast_ttl_v4(255)?;
    s.set_read_timeout(Some(MAX_WAIT))?;
    Ok(s)
}

/// One instance and what the runner keeps beside its machine.
struct Inst {
    cfg: VrrpInstance,
    m: Machine,
    /// Source of our adverts.
    src: Ipv4Addr,
    auth: Option<[u8; 8]>,
    status: InstanceStatus,
    /// Gratuitous ARPs still to send: (due ms, vip).
    garps: Vec<(u64, Ipv4Addr)>,
    next_refresh: Option<u64>,
    /// Whether this is the instance sync follows.
    synced: bool,
    changed: bool,
}

/// A tracked script's state.
struct Script {
    cfg: VrrpScript,
    child: Option<(Child, u64)>,
    next_run: u64,
    ok_in_row: u32,
    fail_in_row: u32,
    /// Up (true) or down, once decided; starts down until it rises (keepalived: starts in
    /// the state of its first result, here after `rise` successes to be careful).
    up: Option<bool>,
}

struct Runner {
    sock: Socket,
    dip: Ipv4Addr,
    sink: Arc<dyn HaSink>,
    link: Option<Arc<SyncLink>>,
    insts: Vec<Inst>,
    scripts: Vec<Script>,
    children: Vec<Child>,
    t0: Instant,
    next_status: u64,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Runner {
    fn new(opts: Options, sink: Arc<dyn HaSink>, sock: Socket) -> Self {
        let sync_name = opts.ha.sync.as_ref().map(|s| s.instance.clone());
        let insts = opts
            .ha
            .instances
            .iter()
            .map(|i| {
                let src = i.unicast_src.unwrap_or(opts.dip);
                let mut m = Machine::new(Params::of(i, src));
                let synced = sync_name.as_deref() == Some(i.name.as_str());
                if synced && opts.link.is_some() {
                    m.set_resynced(false);
                }
                Inst {
                    status: InstanceStatus {
                        name: i.name.clone(),
                        vrid: i.vrid,
                        priority: i.priority,
                        effective_priority: i.priority,
                        ..InstanceStatus::default()
                    },
                    auth: i.auth_pass.as_deref().map(packet::auth_data),
                    cfg: i.clone(),
                    m,
                    src,
                    garps: Vec::new(),
                    next_refresh: None,
                    synced,
                    changed: true,
                }
            })
            .collect();
        let scripts = opts
            .ha
            .scripts
            .iter()
            .map(|s| Script {
                cfg: s.clone(),
                child: None,
                next_run: 0,
                ok_in_row: 0,
                fail_in_row: 0,
                up: None,
            })
            .collect();
        Runner {
            sock,
            dip: opts.dip,
            sink,
            link: opts.link,
            insts,
            scripts,
            children: Vec::new(),
            t0: Instant::now(),
            next_status: 0,
        }
    }

    fn now(&self) -> u64 {
        self.t0.elapsed().as_millis() as u64
    }

    fn run(mut self, stop: &AtomicBool) {
        let now = self.now();
        self.apply_scripts(now);
        for i in 0..self.insts.len() {
            let a = self.insts[i].m.start(now);
            self.act(i, now, a);
        }
        let mut buf = [0u8; 2048];
        while !stop.load(Ordering::Relaxed) {
            let now = self.now();
            let wait = self
                .next_deadline()
                .map_or(MAX_WAIT, |d| Duration::from_millis(d.saturating_sub(now)))
                .clamp(Duration::from_millis(1), MAX_WAIT);
            let _ = self.sock.set_read_timeout(Some(wait));
            match (&self.sock).read(&mut buf) {
                Ok(n) => {
                    let now = self.now();
                    if let Some(pkt) = buf.get(..n) {
                        self.received(now, pkt);
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "VRRP socket receive failed");
                    std::thread::sleep(MAX_WAIT);
                }
            }
            let now = self.now();
            self.sync_gate();
            for i in 0..self.insts.len() {
                let a = self.insts[i].m.tick(now);
                self.act(i, now, a);
            }
            self.garps(now);
            self.run_scripts(now);
            self.reap();
            self.report(now);
        }
        let now = self.now();
        for i in 0..self.insts.len() {
            let a = self.insts[i].m.shutdown(now);
            self.act(i, now, a);
        }
        self.report(now);
        self.reap();
    }

    fn next_deadline(&self) -> Option<u64> {
        let garp = self
            .insts
            .iter()
            .flat_map(|i| i.garps.iter().map(|g| g.0).chain(i.next_refresh))
            .min();
        self.insts
            .iter()
            .filter_map(|i| i.m.next_deadline())
            .chain(garp)
            .min()
    }

    /// The sync thread's word on the bulk resync, for the instance sync follows.
    fn sync_gate(&mut self) {
        if let Some(l) = &self.link {
            let done = l.resynced.load(Ordering::Acquire);
            for i in self.insts.iter_mut().filter(|i| i.synced) {
                i.m.set_resynced(done);
            }
        }
    }

    fn received(&mut self, now: u64, pkt: &[u8]) {
        let r = match packet::parse_ip(pkt) {
            Ok(r) => r,
            Err(AdvertError::NotVrrp(_)) => return,
            Err(e) => {
                // Which instance it was for is unknown when it does not parse: counted on all
                // (there is usually one).
                tracing::debug!(reason = e.name(), "malformed VRRP packet");
                for i in &mut self.insts {
                    i.status.invalid += 1;
                    i.changed = true;
                }
                return;
            }
        };
        if r.src == self.dip || self.insts.iter().any(|i| i.src == r.src) {
            return; // our own
        }
        let a = r.advert;
        let Some(idx) = self.insts.iter().position(|i| i.cfg.vrid == a.vrid) else {
            return; // another virtual router on the link
        };
        let inst = &mut self.insts[idx];
        if let Some(why) = invalid_for(inst, &r.src, r.dst, r.ttl, &a, self.dip) {
            if why == "auth" {
                inst.status.auth_errors += 1;
            } else {
                inst.status.invalid += 1;
            }
            inst.changed = true;
            tracing::debug!(instance = %inst.cfg.name, src = %r.src, why, "VRRP advert ignored");
            return;
        }
        inst.status.adverts_received += 1;
        let acts = inst.m.advert(now, r.src, &a);
        self.act(idx, now, acts);
    }

    fn act(&mut self, idx: usize, now: u64, acts: Vec<Action>) {
        for a in acts {
            let from = self.insts[idx].status.state;
            match a {
                Action::SendAdvert { priority } => self.send(idx, priority),
                Action::BecomeMaster => {
                    self.transition(idx, from, VrrpState::Master);
                    let inst = &mut self.insts[idx];
                    if let Err(e) = self.sink.set_master(&inst.cfg.name, &inst.cfg.vips, true) {
                        tracing::error!(instance = %inst.cfg.name, error = %e, "VIPs not taken");
                    }
                    inst.garps = garp_plan(&inst.cfg.garp, &inst.cfg.vips, now);
                    inst.next_refresh = (inst.cfg.garp.refresh_ms > 0)
                        .then(|| now + u64::from(inst.cfg.garp.refresh_ms));
                    if inst.synced {
                        if let Some(l) = &self.link {
                            l.master.store(true, Ordering::Release);
                        }
                    }
                }
                Action::BecomeBackup | Action::BecomeFault | Action::BecomeInit => {
                    let to = match a {
                        Action::BecomeBackup => VrrpState::Backup,
                        Action::BecomeFault => VrrpState::Fault,
                        _ => VrrpState::Init,
                    };
                    self.transition(idx, from, to);
                    let inst = &mut self.insts[idx];
                    inst.garps.clear();
                    inst.next_refresh = None;
                    if from == VrrpState::Master && to != VrrpState::Init {
                        if let Err(e) = self.sink.set_master(&inst.cfg.name, &inst.cfg.vips, false)
                        {
                            tracing::error!(instance = %inst.cfg.name, error = %e, "VIPs not released");
                        }
                    }
                    if inst.synced {
                        if let Some(l) = &self.link {
                            l.master.store(false, Ordering::Release);
                            if to == VrrpState::Backup {
                                // A (re)starting or demoted director asks for the whole table.
                                l.resynced.store(false, Ordering::Release);
                                l.want_resync.fetch_add(1, Ordering::AcqRel);
                                inst.m.set_resynced(false);
                            }
                        }
                    }
                }
            }
        }
    }

    fn transition(&mut self, idx: usize, from: VrrpState, to: VrrpState) {
        let inst = &mut self.insts[idx];
        inst.status.state = to;
        inst.status.transitions = inst.m.transitions();
        inst.status.since = unix_now();
        inst.status.reason = inst.m.reason().to_string();
        inst.status.master = if to == VrrpState::Master {
            Some(inst.src)
        } else {
            inst.m.master()
        };
        inst.changed = true;
        tracing::info!(
            instance = %inst.cfg.name,
            vrid = inst.cfg.vrid,
            from = from.name(),
            to = to.name(),
            reason = %inst.status.reason,
            "VRRP transition"
        );
        let n = &inst.cfg.notify;
        let specific = match to {
            VrrpState::Master => n.master.clone(),
            VrrpState::Backup => n.backup.clone(),
            VrrpState::Fault => n.fault.clone(),
            VrrpState::Init => n.stop.clone(),
        };
        let generic = n.generic.clone().map(|mut g| {
            g.extend([
                "INSTANCE".to_string(),
                inst.cfg.name.clone(),
                to.name().to_string(),
                inst.m.priority().to_string(),
            ]);
            g
        });
        for argv in [specific, generic].into_iter().flatten() {
            match spawn_quiet(&argv) {
                Ok(c) => self.children.push(c),
                Err(e) => tracing::warn!(command = ?argv, error = %e, "notify command failed"),
            }
        }
    }

    fn send(&mut self, idx: usize, priority: u8) {
        let inst = &mut self.insts[idx];
        let a = Advert {
            version: inst.cfg.version,
            vrid: inst.cfg.vrid,
            priority,
            interval_cs: inst.cfg.advert_int_cs,
            addrs: inst.cfg.vips.clone(),
            auth: if inst.cfg.version == VrrpVersion::V2 {
                inst.auth
            } else {
                None
            },
        };
        let dsts: Vec<Ipv4Addr> = if inst.cfg.unicast_peers.is_empty() {
            vec![VRRP_GROUP]
        } else {
            inst.cfg.unicast_peers.clone()
        };
        for dst in dsts {
            let pkt = packet::emit_ip(&a, inst.src, dst);
            let to = SockAddr::from(SocketAddrV4::new(dst, 0));
            match self.sock.send_to(&pkt, &to) {
                Ok(_) => inst.status.adverts_sent += 1,
                Err(e) => {
                    tracing::debug!(instance = %inst.cfg.name, %dst, error = %e, "advert not sent")
                }
            }
        }
    }

    fn garps(&mut self, now: u64) {
        for inst in &mut self.insts {
            if inst.status.state != VrrpState::Master {
                continue;
            }
            let sink = &self.sink;
            inst.garps.retain(|&(due, vip)| {
                if due <= now {
                    sink.garp(vip);
                    false
                } else {
                    true
                }
            });
            if let Some(t) = inst.next_refresh {
                if t <= now {
                    for _ in 0..inst.cfg.garp.refresh_repeat.max(1) {
                        for v in &inst.cfg.vips {
                            sink.garp(*v);
                        }
                    }
                    inst.next_refresh = Some(now + u64::from(inst.cfg.garp.refresh_ms));
                }
            }
        }
    }

    /// Start due scripts, collect finished ones (killing the late), and apply the results.
    fn run_scripts(&mut self, now: u64) {
        let mut changed = false;
        for s in &mut self.scripts {
            if let Some((child, started)) = &mut s.child {
                let result = match child.try_wait() {
                    Ok(Some(st)) => Some(st.success()),
                    Ok(None) if now >= *started + u64::from(s.cfg.timeout_ms.max(1)) => {
                        let _ = child.kill();
                        let _ = child.wait();
                        Some(false)
                    }
                    Ok(None) => None,
                    Err(_) => Some(false),
                };
                if let Some(ok) = result {
                    s.child = None;
                    if ok {
                        s.ok_in_row += 1;
                        s.fail_in_row = 0;
                        if s.ok_in_row >= s.cfg.rise.max(1) && s.up != Some(true) {
                            s.up = Some(true);
                            changed = true;
                        }
                    } else {
                        s.fail_in_row += 1;
                        s.ok_in_row = 0;
                        if s.fail_in_row >= s.cfg.fall.max(1) && s.up != Some(false) {
                            s.up = Some(false);
                            changed = true;
                        }
                    }
                }
            }
            if s.child.is_none() && now >= s.next_run {
                s.next_run = now + u64::from(s.cfg.interval_ms.max(100));
                match spawn_quiet(&s.cfg.argv) {
                    Ok(c) => s.child = Some((c, now)),
                    Err(e) => {
                        tracing::warn!(script = %s.cfg.name, error = %e, "vrrp_script failed to start");
                        s.fail_in_row += 1;
                        if s.fail_in_row >= s.cfg.fall.max(1) && s.up != Some(false) {
                            s.up = Some(false);
                            changed = true;
                        }
                    }
                }
            }
        }
        if changed {
            self.apply_scripts(now);
        }
    }

    /// Priorities and faults from the scripts' states (keepalived's rules: weight 0 and down
    /// = FAULT; a positive weight is added while up, a negative one while down).
    fn apply_scripts(&mut self, now: u64) {
        for idx in 0..self.insts.len() {
            let inst = &self.insts[idx];
            let mut prio = i32::from(inst.cfg.priority);
            let mut fault = false;
            for t in &inst.cfg.track_scripts {
                let Some(s) = self.scripts.iter().find(|s| s.cfg.name == t.name) else {
                    continue;
                };
                let w = t.weight.unwrap_or(s.cfg.weight);
                // Not decided yet counts as up (the instance starts as configured).
                let up = s.up.unwrap_or(true);
                match (w, up) {
                    (0, false) => fault = true,
                    (w, true) if w > 0 => prio += w,
                    (w, false) if w < 0 => prio += w,
                    _ => {}
                }
            }
            let p = prio.clamp(1, 254) as u8;
            let mut acts = Vec::new();
            if inst.cfg.priority != 255 {
                acts.extend(self.insts[idx].m.set_priority(now, p));
            }
            acts.extend(self.insts[idx].m.set_fault(now, fault));
            let inst = &mut self.insts[idx];
            if inst.status.effective_priority != inst.m.priority() {
                inst.status.effective_priority = inst.m.priority();
                inst.changed = true;
            }
            self.act(idx, now, acts);
        }
    }

    fn reap(&mut self) {
        self.children
            .retain_mut(|c| matches!(c.try_wait(), Ok(None)));
    }

    fn report(&mut self, now: u64) {
        let periodic = now >= self.next_status;
        if periodic {
            self.next_status = now + STATUS_EVERY_MS;
        }
        for inst in &mut self.insts {
            if inst.changed || periodic {
                inst.status.effective_priority = inst.m.priority();
                if inst.status.state != VrrpState::Master {
                    inst.status.master = inst.m.master();
                }
                self.sink.status(&inst.status);
                inst.changed = false;
            }
        }
    }
}

/// Why an advert for this instance's VRID is ignored (RFC 5798 §7.1, RFC 3768 §7.1), or
/// `None`. "auth" is counted apart.
fn invalid_for(
    inst: &Inst,
    src: &Ipv4Addr,
    dst: Ipv4Addr,
    ttl: u8,
    a: &Advert,
    dip: Ipv4Addr,
) -> Option<&'static str> {
    let c = &inst.cfg;
    if ttl != 255 {
        return Some("ttl");
    }
    if a.version != c.version {
        return Some("version");
    }
    if dst != VRRP_GROUP && dst != dip && dst != inst.src {
        return Some("destination");
    }
    if !c.unicast_peers.is_empty() && !c.unicast_peers.contains(src) {
        return Some("not a unicast peer");
    }
    if c.version == VrrpVersion::V2 {
        if a.auth != inst.auth {
            return Some("auth");
        }
        if a.interval_cs != c.advert_int_cs {
            return Some("interval");
        }
    }
    None
}

/// The gratuitous ARPs of a takeover: `repeat` per VIP now (spaced by `interval_ms`), and again
/// after `delay_ms`.
fn garp_plan(g: &Garp, vips: &[Ipv4Addr], now: u64) -> Vec<(u64, Ipv4Addr)> {
    let mut plan = Vec::new();
    let bursts = if g.delay_ms > 0 {
        vec![now, now + u64::from(g.delay_ms)]
    } else {
        vec![now]
    };
    for start in bursts {
        for k in 0..u64::from(g.repeat.max(1)) {
            for v in vips {
                plan.push((start + k * u64::from(g.interval_ms), *v));
            }
        }
    }
    plan
}

fn spawn_quiet(argv: &[String]) -> std::io::Result<Child> {
    let (prog, args) = argv
        .split_first()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty command"))?;
    Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garps_are_planned_in_two_bursts() {
        let g = Garp {
            delay_ms: 2000,
            repeat: 3,
            interval_ms: 10,
            refresh_ms: 0,
            refresh_repeat: 1,
        };
        let v = Ipv4Addr::new(198, 18, 0, 100);
        let p = garp_plan(&g, &[v], 100);
        let times: Vec<u64> = p.iter().map(|x| x.0).collect();
        assert_eq!(times, vec![100, 110, 120, 2100, 2110, 2120]);
        let once = garp_plan(
            &Garp { delay_ms: 0, ..g },
            &[v, Ipv4Addr::new(198, 18, 0, 101)],
            0,
        );
        assert_eq!(once.len(), 6);
    }

    fn inst(version: VrrpVersion, auth: Option<&str>, peers: Vec<Ipv4Addr>) -> Inst {
        let mut cfg = VrrpInstance::new("VI_1", 51, 100, vec![Ipv4Addr::new(198, 18, 0, 100)]);
        cfg.version = version;
        cfg.auth_pass = auth.map(str::to_string);
        cfg.unicast_peers = peers;
        let src = Ipv4Addr::new(198, 18, 0, 2);
        Inst {
            auth: cfg.auth_pass.as_deref().map(packet::auth_data),
            m: Machine::new(Params::of(&cfg, src)),
            cfg,
            src,
            status: InstanceStatus::default(),
            garps: vec![],
            next_refresh: None,
            synced: false,
            changed: false,
        }
    }

    #[test]
    fn adverts_are_checked_against_the_instance() {
        let dip = Ipv4Addr::new(198, 18, 0, 2);
        let peer = Ipv4Addr::new(198, 18, 0, 3);
        let good3 = Advert {
            version: VrrpVersion::V3,
            vrid: 51,
            priority: 100,
            interval_cs: 100,
            addrs: vec![],
            auth: None,
        };
        let i3 = inst(VrrpVersion::V3, None, vec![]);
        assert_eq!(invalid_for(&i3, &peer, VRRP_GROUP, 255, &good3, dip), None);
        assert_eq!(invalid_for(&i3, &peer, dip, 255, &good3, dip), None);
        // (what, advert change, ttl, dst)
        let v2 = Advert {
            version: VrrpVersion::V2,
            ..good3.clone()
        };
        assert_eq!(
            invalid_for(&i3, &peer, VRRP_GROUP, 254, &good3, dip),
            Some("ttl")
        );
        assert_eq!(
            invalid_for(&i3, &peer, VRRP_GROUP, 255, &v2, dip),
            Some("version")
        );
        assert_eq!(
            invalid_for(&i3, &peer, Ipv4Addr::new(198, 18, 0, 9), 255, &good3, dip),
            Some("destination")
        );
        let iu = inst(VrrpVersion::V3, None, vec![Ipv4Addr::new(198, 18, 0, 4)]);
        assert_eq!(
            invalid_for(&iu, &peer, dip, 255, &good3, dip),
            Some("not a unicast peer")
        );
        let i2 = inst(VrrpVersion::V2, Some("secret1"), vec![]);
        let ok2 = Advert {
            auth: Some(packet::auth_data("secret1")),
            ..v2.clone()
        };
        assert_eq!(invalid_for(&i2, &peer, VRRP_GROUP, 255, &ok2, dip), None);
        let wrong = Advert {
            auth: Some(packet::auth_data("secret2")),
            ..v2.clone()
        };
        assert_eq!(
            invalid_for(&i2, &peer, VRRP_GROUP, 255, &wrong, dip),
            Some("auth")
        );
        assert_eq!(
            invalid_for(&i2, &peer, VRRP_GROUP, 255, &v2, dip),
            Some("auth")
        );
        let slow = Advert {
            interval_cs: 200,
            ..ok2
        };
        assert_eq!(
            invalid_for(&i2, &peer, VRRP_GROUP, 255, &slow, dip),
            Some("interval")
        );
    }
}

/// The runner on real sockets: two runners (or a runner and keepalived) in two network
/// namespaces joined by a veth pair (`rvv-a`, `rvv-b`, 198.18.20.0/24). Root only, so
/// `#[ignore]`d; run with
/// `cargo test --lib ha::vrrp::netns -- --ignored --test-threads=1 --nocapture`.
///
/// Each side is this test binary again, started with `ip netns exec` on the test
/// [`netns::side`] and its configuration in the environment; its sink writes what the runner
/// did, one line each, `UNIX_MS WHAT VALUE`, to a log the parent reads.
#[cfg(test)]
mod netns {
    use super::*;
    use std::fs::{File, OpenOptions};
    use std::io::Write;
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    const NS_A: &str = "rvv-a";
    const NS_B: &str = "rvv-b";
    const IP_A: Ipv4Addr = Ipv4Addr::new(198, 18, 20, 1);
    const IP_B: Ipv4Addr = Ipv4Addr::new(198, 18, 20, 2);
    const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 20, 100);
    const DIR: &str = "/tmp/rvv-test";

    fn unix_ms() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }

    /// Writes every call to the log.
    struct LogSink {
        out: Mutex<(File, VrrpState, u64)>,
    }

    impl LogSink {
        fn line(&self, what: &str, value: &str) {
            if let Ok(mut o) = self.out.lock() {
                let _ = writeln!(o.0, "{} {what} {value}", unix_ms());
            }
        }
    }

    impl HaSink for LogSink {
        fn set_master(&self, _: &str, vips: &[Ipv4Addr], master: bool) -> Result<(), String> {
            assert_eq!(vips, [VIP]);
            self.line("master", if master { "true" } else { "false" });
            Ok(())
        }
        fn garp(&self, vip: Ipv4Addr) {
            self.line("garp", &vip.to_string());
        }
        fn status(&self, s: &InstanceStatus) {
            let (changed, auth) = match self.out.lock() {
                Ok(mut o) => {
                    let c = (o.1 != s.state, o.2 != s.auth_errors);
                    o.1 = s.state;
                    o.2 = s.auth_errors;
                    c
                }
                Err(_) => return,
            };
            if changed {
                self.line("state", s.state.name());
            }
            if auth {
                self.line("auth_errors", &s.auth_errors.to_string());
            }
        }
    }

    /// One side: runs until SIGTERM (then says goodbye) or SIGKILL. Does nothing unless
    /// started by the tests below.
    #[test]
    #[ignore = "a side of the namespace tests, started by them"]
    fn side() {
        let (Ok(ha), Ok(dip), Ok(log)) = (
            std::env::var("RVV_HA"),
            std::env::var("RVV_DIP"),
            std::env::var("RVV_LOG"),
        ) else {
            return;
        };
        let ha: HaConfig = serde_json::from_str(&ha).unwrap();
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let sink = Arc::new(LogSink {
            out: Mutex::new((file, VrrpState::Init, 0)),
        });
        let stop = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&stop)).unwrap();
        let opts = Options {
            ifname: "eth0".into(),
            dip: dip.parse().unwrap(),
            ha,
            link: None,
        };
        spawn(opts, sink, stop).unwrap().join().unwrap();
    }

    fn run(cmd: &str, args: &[&str]) -> bool {
        Command::new(cmd)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// The two namespaces, deleted (by name) when dropped.
    struct Lab;

    impl Lab {
        fn new() -> Lab {
            Lab::teardown();
            let _ = std::fs::remove_dir_all(DIR);
            std::fs::create_dir_all(DIR).unwrap();
            let steps: [&[&str]; 11] = [
                &["netns", "add", NS_A],
                &["netns", "add", NS_B],
                &[
                    "link", "add", "rvv-va", "netns", NS_A, "type", "veth", "peer", "name",
                    "rvv-vb", "netns", NS_B,
                ],
                &["-n", NS_A, "link", "set", "rvv-va", "name", "eth0"],
                &["-n", NS_B, "link", "set", "rvv-vb", "name", "eth0"],
                &["-n", NS_A, "addr", "add", "198.18.20.1/24", "dev", "eth0"],
                &["-n", NS_B, "addr", "add", "198.18.20.2/24", "dev", "eth0"],
                &["-n", NS_A, "link", "set", "lo", "up"],
                &["-n", NS_B, "link", "set", "lo", "up"],
                &["-n", NS_A, "link", "set", "eth0", "up"],
                &["-n", NS_B, "link", "set", "eth0", "up"],
            ];
            let lab = Lab;
            for s in steps {
                assert!(run("ip", s), "ip {s:?}");
            }
            lab
        }

        fn teardown() {
            run("ip", &["netns", "del", NS_A]);
            run("ip", &["netns", "del", NS_B]);
        }
    }

    impl Drop for Lab {
        fn drop(&mut self) {
            Lab::teardown();
        }
    }

    /// A side the test owns: SIGKILLed when dropped (it is this binary, by its PID).
    struct Side(Child);

    impl Side {
        fn start(ns: &str, dip: Ipv4Addr, ha: &HaConfig, log: &Path) -> Side {
            let exe = std::env::current_exe().unwrap();
            let child = Command::new("ip")
                .args(["netns", "exec", ns])
                .arg(exe)
                .args([
                    "--ignored",
                    "--exact",
                    "ha::vrrp::netns::side",
                    "--test-threads=1",
                ])
                .env("RVV_HA", serde_json::to_string(ha).unwrap())
                .env("RVV_DIP", dip.to_string())
                .env("RVV_LOG", log)
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            Side(child)
        }

        fn signal(&mut self, sig: &str) -> u64 {
            let t = unix_ms();
            assert!(run("kill", &[sig, &self.0.id().to_string()]));
            t
        }

        /// SIGTERM and wait (bounded) for the goodbye to go out.
        fn stop(mut self) -> u64 {
            let t = self.signal("-TERM");
            for _ in 0..200 {
                if matches!(self.0.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            t
        }
    }

    impl Drop for Side {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// The log's lines: (ms, what, value).
    fn lines(log: &Path) -> Vec<(u64, String, String)> {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut w = l.split(' ');
                Some((
                    w.next()?.parse().ok()?,
                    w.next()?.to_string(),
                    w.next()?.to_string(),
                ))
            })
            .collect()
    }

    /// When `what value` was first logged at or after `t`.
    fn first(log: &Path, what: &str, value: &str, t: u64) -> Option<u64> {
        lines(log)
            .into_iter()
            .find(|(ms, w, v)| *ms >= t && w == what && v == value)
            .map(|x| x.0)
    }

    /// The last state logged.
    fn state(log: &Path) -> String {
        lines(log)
            .into_iter()
            .rev()
            .find(|l| l.1 == "state")
            .map_or_else(String::new, |l| l.2)
    }

    fn ha(priority: u8, version: VrrpVersion, advert_int_cs: u16, auth: Option<&str>) -> HaConfig {
        let mut i = VrrpInstance::new("VI_1", 51, priority, vec![VIP]);
        i.version = version;
        i.advert_int_cs = advert_int_cs;
        i.auth_pass = auth.map(str::to_string);
        i.garp = Garp {
            delay_ms: 0,
            repeat: 2,
            ..Garp::default()
        };
        HaConfig {
            instances: vec![i],
            ..HaConfig::default()
        }
    }

    fn log(name: &str) -> PathBuf {
        Path::new(DIR).join(name)
    }

    fn settle(ms: u64) {
        std::thread::sleep(Duration::from_millis(ms));
    }

    /// Two runners, VRRPv3 at 0.1 s: A (150) preempts B (100); A killed: B takes over at
    /// master-down; A back: preempts; A stopped: its priority 0 hands over in Skew_Time.
    #[test]
    #[ignore = "needs root: network namespaces"]
    fn two_runners() {
        let _lab = Lab::new();
        let (la, la2, lb) = (log("a.log"), log("a2.log"), log("b.log"));
        let b = Side::start(NS_B, IP_B, &ha(100, VrrpVersion::V3, 10, None), &lb);
        settle(1000);
        assert_eq!(state(&lb), "MASTER", "B alone becomes master");
        let tb = first(&lb, "master", "true", 0).unwrap();
        assert!(first(&lb, "garp", "198.18.20.100", tb).is_some());

        let t = unix_ms();
        let mut a = Side::start(NS_A, IP_A, &ha(150, VrrpVersion::V3, 10, None), &la);
        settle(1000);
        assert_eq!((state(&la), state(&lb)), ("MASTER".into(), "BACKUP".into()));
        let ta = first(&la, "master", "true", t).unwrap();
        let tb = first(&lb, "master", "false", t).unwrap();
        println!(
            "preempt: A master {} ms after its start, B released {} ms after that",
            ta - t,
            tb.saturating_sub(ta)
        );

        // Killed without a goodbye: B waits Master_Down_Interval (3 x 100 + 60 ms).
        let tk = a.signal("-KILL");
        drop(a);
        settle(1000);
        let tb = first(&lb, "master", "true", tk).expect("B takes over");
        println!("takeover after a kill: {} ms", tb - tk);
        assert!(tb - tk >= 300 && tb - tk < 700, "{}", tb - tk);

        let t = unix_ms();
        let a = Side::start(NS_A, IP_A, &ha(150, VrrpVersion::V3, 10, None), &la2);
        settle(1000);
        assert_eq!(
            (state(&la2), state(&lb)),
            ("MASTER".into(), "BACKUP".into())
        );
        assert!(first(&lb, "master", "false", t).is_some());

        // Stopped: priority 0, B takes over after Skew_Time (156 x 100 / 256 = 60 ms).
        let tg = a.stop();
        settle(500);
        assert_eq!(state(&la2), "INIT");
        let tb = first(&lb, "master", "true", tg).expect("B takes over");
        println!("takeover after a goodbye: {} ms", tb - tg);
        assert!(tb - tg < 250, "{}", tb - tg);
        b.stop();
    }

    /// Unicast peers instead of the group: the same election, adverts to the peer's address.
    #[test]
    #[ignore = "needs root: network namespaces"]
    fn unicast_runners() {
        let _lab = Lab::new();
        let (la, lb) = (log("ua.log"), log("ub.log"));
        let uni = |prio, peer| {
            let mut h = ha(prio, VrrpVersion::V3, 10, None);
            if let Some(i) = h.instances.first_mut() {
                i.unicast_peers = vec![peer];
            }
            h
        };
        let b = Side::start(NS_B, IP_B, &uni(100, IP_A), &lb);
        settle(700);
        assert_eq!(state(&lb), "MASTER");
        let t = unix_ms();
        let mut a = Side::start(NS_A, IP_A, &uni(150, IP_B), &la);
        settle(700);
        assert_eq!((state(&la), state(&lb)), ("MASTER".into(), "BACKUP".into()));
        assert!(first(&lb, "master", "false", t).is_some());
        let tk = a.signal("-KILL");
        settle(1000);
        let tb = first(&lb, "master", "true", tk).expect("B takes over");
        println!("unicast takeover after a kill: {} ms", tb - tk);
        assert!(tb - tk < 700, "{}", tb - tk);
        b.stop();
    }

    /// keepalived (Debian's) in `rvv-b` as the peer, VRRPv2 with simple-text auth at 1 s (its
    /// default version): its state comes from its `notify` script writing a line per change.
    struct Keepalived(Side);

    impl Keepalived {
        fn start(priority: u8, pass: &str) -> Keepalived {
            let notify = log("ka-notify.sh");
            std::fs::write(
                &notify,
                format!("#!/bin/sh\necho \"$(date +%s%3N) state $3\" >> {DIR}/ka.log\n"),
            )
            .unwrap();
            assert!(run("chmod", &["755", &notify.to_string_lossy()]));
            let conf = log("ka.conf");
            std::fs::write(
                &conf,
                format!(
                    "global_defs {{\n  router_id rvv_ka\n  vrrp_version 2\n  script_user root\n}}\n\
                     vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 51\n\
                     \x20 priority {priority}\n  advert_int 1\n\
                     \x20 authentication {{\n    auth_type PASS\n    auth_pass {pass}\n  }}\n\
                     \x20 virtual_ipaddress {{\n    {VIP}/32\n  }}\n\
                     \x20 notify {}\n}}\n",
                    notify.display()
                ),
            )
            .unwrap();
            let child = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    NS_B,
                    "keepalived",
                    "-n",
                    "-l",
                    "-D",
                    "-P",
                    "-f",
                ])
                .arg(&conf)
                .arg("-p")
                .arg(log("ka.pid"))
                .arg("-r")
                .arg(log("ka-vrrp.pid"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            Keepalived(Side(child))
        }
    }

    fn v2(priority: u8, pass: &str) -> HaConfig {
        ha(priority, VrrpVersion::V2, 100, Some(pass))
    }

    /// rvs MASTER with keepalived BACKUP, takeover both ways; wrong passwords ignored and
    /// counted; keepalived MASTER with rvs BACKUP, and rvs taking over when it leaves.
    #[test]
    #[ignore = "needs root and keepalived: network namespaces"]
    fn keepalived_peer() {
        if !run("keepalived", &["--version"]) {
            println!("keepalived not installed: skipped");
            return;
        }
        let _lab = Lab::new();
        let ka_log = log("ka.log");
        let la = log("a.log");
        let a = Side::start(NS_A, IP_A, &v2(150, "secret1"), &la);
        settle(300);
        let ka = Keepalived::start(100, "secret1");
        // Both start as BACKUP; rvs, with the higher priority, has the shorter master-down.
        settle(4000);
        assert_eq!(state(&la), "MASTER");
        assert_eq!(state(&ka_log), "BACKUP", "keepalived stays backup");
        assert!(first(&la, "auth_errors", "1", 0).is_none());

        // rvs killed: keepalived takes over at its master-down (3 x 1 s + 0.61 s).
        let mut a = a;
        let tk = a.signal("-KILL");
        drop(a);
        let mut tm = None;
        for _ in 0..60 {
            settle(100);
            tm = first(&ka_log, "state", "MASTER", tk);
            if tm.is_some() {
                break;
            }
        }
        let tm = tm.expect("keepalived takes over");
        println!("keepalived took over {} ms after rvs was killed", tm - tk);

        // rvs returns: preempts keepalived's lower priority.
        let la2 = log("a2.log");
        let t = unix_ms();
        let a = Side::start(NS_A, IP_A, &v2(150, "secret1"), &la2);
        settle(2500);
        assert_eq!(state(&la2), "MASTER");
        let ta = first(&la2, "master", "true", t).unwrap();
        let tb = first(&ka_log, "state", "BACKUP", t).expect("keepalived yields");
        println!(
            "rvs back: master {} ms after its start, keepalived backup {} ms after that",
            ta - t,
            tb.saturating_sub(ta)
        );

        // rvs stops: its priority 0 hands over within keepalived's skew time (0.61 s).
        let tg = a.stop();
        settle(1500);
        let tm = first(&ka_log, "state", "MASTER", tg).expect("keepalived takes over");
        println!("keepalived took over {} ms after rvs stopped", tm - tg);

        // A wrong password: keepalived's adverts are counted as auth errors and ignored.
        let lw = log("wrong.log");
        let w = Side::start(NS_A, IP_A, &v2(50, "secret2"), &lw);
        settle(2000);
        let errors = lines(&lw)
            .into_iter()
            .rev()
            .find(|l| l.1 == "auth_errors")
            .map_or(0, |l| l.2.parse::<u64>().unwrap_or(0));
        assert!(errors >= 1, "auth errors counted");
        assert_eq!(state(&ka_log), "MASTER", "keepalived ignores it as well");
        w.stop();

        // keepalived MASTER, rvs BACKUP (lower priority); keepalived stops: rvs takes over
        // within its skew time ((256 - 50) / 256 s = 0.8 s).
        let lb = log("a3.log");
        let a = Side::start(NS_A, IP_A, &v2(50, "secret1"), &lb);
        settle(2500);
        assert_eq!(state(&lb), "BACKUP");
        assert!(first(&lb, "master", "true", 0).is_none());
        let tg = ka.0.stop();
        settle(1500);
        let tm = first(&lb, "master", "true", tg).expect("rvs takes over");
        println!("rvs took over {} ms after keepalived stopped", tm - tg);
        assert!(tm - tg < 1200, "{}", tm - tg);
        a.stop();
    }
}
