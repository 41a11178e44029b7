//! One VRRP instance's state machine (RFC 5798 §6.4, with RFC 3768's timers for v2), driven by
//! the caller's clock in milliseconds: no sockets, no threads, no sleeping. The runner feeds it
//! [`Machine::start`], received adverts, [`Machine::tick`] at [`Machine::next_deadline`], and
//! acts on the [`Action`]s it returns.
//!
//! Beyond the RFC, as keepalived does and rvs needs:
//! - `preempt_delay`: a backup that hears a lower priority master waits this long before it
//!   preempts (keepalived's `preempt_delay`).
//! - The sync gate: a preempting backup also waits until its bulk resync is done
//!   ([`Machine::set_resynced`]), at most `sync_wait_ms`, so that connections the current master
//!   carries are in its tables before it takes the VIPs. A master that is gone (its adverts
//!   stopped) is taken over at once: there is nobody to wait for.
//! - FAULT: a tracked script failed with weight 0 ([`Machine::set_fault`]); a master leaves
//!   with a priority-0 advert.
//! - A backup that hears a lower priority master preempts as soon as the gates allow (the RFC
//!   lets it wait for the master-down timer; keepalived preempts at once, as here).

use super::packet::Advert;
use crate::ha::{InitialState, VrrpInstance, VrrpState, VrrpVersion};
use std::net::Ipv4Addr;

/// What the runner does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send an advertisement with this priority now (0 = the master is leaving).
    SendAdvert {
        priority: u8,
    },
    /// The instance's VIPs are ours: answer ARP, forward, send gratuitous ARPs.
    BecomeMaster,
    /// Not ours (from INIT, MASTER or FAULT).
    BecomeBackup,
    BecomeFault,
    /// Stopped.
    BecomeInit,
}

/// The parts of an instance the machine needs.
#[derive(Debug, Clone)]
pub struct Params {
    pub vrid: u8,
    pub priority: u8,
    pub interval_cs: u16,
    pub version: VrrpVersion,
    pub preempt: bool,
    pub preempt_delay_ms: u64,
    pub sync_wait_ms: u64,
    pub initial: InitialState,
    /// This router's address in adverts (the DIP or `unicast_src`): ties are broken by it.
    pub primary: Ipv4Addr,
}

impl Params {
    pub fn of(i: &VrrpInstance, primary: Ipv4Addr) -> Self {
        Params {
            vrid: i.vrid,
            priority: i.priority,
            interval_cs: i.advert_int_cs,
            version: i.version,
            preempt: i.preempt,
            preempt_delay_ms: u64::from(i.preempt_delay_ms),
            sync_wait_ms: u64::from(i.sync_wait_ms),
            initial: i.initial,
            primary,
        }
    }
}

/// The machine.
#[derive(Debug, Clone)]
pub struct Machine {
    p: Params,
    state: VrrpState,
    /// The priority advertised now (tracked scripts' weights applied).
    priority: u8,
    /// Master_Adver_Interval (cs): learned from the master in v3, ours in v2.
    master_interval_cs: u16,
    adver_at: Option<u64>,
    master_down_at: Option<u64>,
    /// The master as last heard (ours when master).
    master: Option<Ipv4Addr>,
    /// Since when a lower-priority master has been heard (preemption pending).
    lower_since: Option<u64>,
    /// When that master was last heard.
    lower_last: u64,
    /// When to look at a pending preemption again.
    gate_at: Option<u64>,
    resynced: bool,
    fault: bool,
    transitions: u64,
    reason: String,
}

impl Machine {
    pub fn new(p: Params) -> Self {
        let priority = p.priority;
        let mi = p.interval_cs;
        Machine {
            p,
            state: VrrpState::Init,
            priority,
            master_interval_cs: mi,
            adver_at: None,
            master_down_at: None,
            master: None,
            lower_since: None,
            lower_last: 0,
            gate_at: None,
            resynced: true,
            fault: false,
            transitions: 0,
            reason: String::new(),
        }
    }

    pub fn state(&self) -> VrrpState {
        self.state
    }
    pub fn priority(&self) -> u8 {
        self.priority
    }
    pub fn master(&self) -> Option<Ipv4Addr> {
        self.master
    }
    pub fn transitions(&self) -> u64 {
        self.transitions
    }
    /// Why the last transition happened.
    pub fn reason(&self) -> &str {
        &self.reason
    }
    pub fn params(&self) -> &Params {
        &self.p
    }

    fn interval_ms(&self) -> u64 {
        u64::from(self.p.interval_cs) * 10
    }

    /// Skew_Time in ms. RFC 5798 §6.1: ((256 - Priority) * Master_Adver_Interval) / 256;
    /// RFC 3768 §6.1 (v2): (256 - Priority) / 256 seconds, whatever the interval.
    pub fn skew_ms(&self) -> u64 {
        let spread = match self.p.version {
            VrrpVersion::V3 => u64::from(self.master_interval_cs) * 10,
            VrrpVersion::V2 => 1000,
        };
        (256 - u64::from(self.priority)) * spread / 256
    }

    /// Master_Down_Interval in ms: 3 * Master_Adver_Interval + Skew_Time.
    pub fn master_down_ms(&self) -> u64 {
        3 * u64::from(self.master_interval_cs) * 10 + self.skew_ms()
    }

    /// The earliest time the machine wants a [`Machine::tick`].
    pub fn next_deadline(&self) -> Option<u64> {
        [self.adver_at, self.master_down_at, self.gate_at]
            .into_iter()
            .flatten()
            .min()
    }

    fn go(&mut self, to: VrrpState, reason: impl Into<String>, out: &mut Vec<Action>) {
        if self.state == to {
            return;
        }
        self.state = to;
        self.transitions += 1;
        self.reason = reason.into();
        out.push(match to {
            VrrpState::Master => Action::BecomeMaster,
            VrrpState::Backup => Action::BecomeBackup,
            VrrpState::Fault => Action::BecomeFault,
            VrrpState::Init => Action::BecomeInit,
        });
    }

    fn enter_master(&mut self, now: u64, reason: &str, out: &mut Vec<Action>) {
        out.push(Action::SendAdvert {
            priority: self.priority,
        });
        self.adver_at = Some(now + self.interval_ms());
        self.master_down_at = None;
        self.lower_since = None;
        self.gate_at = None;
        self.master = Some(self.p.primary);
        self.go(VrrpState::Master, reason, out);
    }

    fn enter_backup(&mut self, now: u64, reason: &str, out: &mut Vec<Action>) {
        self.adver_at = None;
        self.master_down_at = Some(now + self.master_down_ms());
        self.lower_since = None;
        self.gate_at = None;
        if self.state == VrrpState::Master {
            self.master = None;
        }
        self.go(VrrpState::Backup, reason, out);
    }

    /// The Startup event.
    pub fn start(&mut self, now: u64) -> Vec<Action> {
        let mut out = Vec::new();
        if self.state != VrrpState::Init {
            return out;
        }
        self.master_interval_cs = self.p.interval_cs;
        if self.fault {
            self.go(VrrpState::Fault, "a tracked script is down", &mut out);
        } else if self.p.priority == 255 {
            self.enter_master(now, "address owner (priority 255)", &mut out);
        } else if self.p.initial == InitialState::Master {
            // keepalived's `state MASTER`: claim at once; a better master's advert demotes.
            self.enter_master(now, "configured state MASTER", &mut out);
        } else {
            self.enter_backup(now, "started", &mut out);
        }
        out
    }

    /// The Shutdown event: a master says goodbye with priority 0.
    pub fn shutdown(&mut self, _now: u64) -> Vec<Action> {
        let mut out = Vec::new();
        if self.state == VrrpState::Master {
            out.push(Action::SendAdvert { priority: 0 });
        }
        self.adver_at = None;
        self.master_down_at = None;
        self.lower_since = None;
        self.gate_at = None;
        self.go(VrrpState::Init, "shutdown", &mut out);
        out
    }

    /// Timers.
    pub fn tick(&mut self, now: u64) -> Vec<Action> {
        let mut out = Vec::new();
        match self.state {
            VrrpState::Master => {
                if self.adver_at.is_some_and(|t| now >= t) {
                    out.push(Action::SendAdvert {
                        priority: self.priority,
                    });
                    // From the deadline, not from now: adverts do not drift.
                    let mut next = self.adver_at.unwrap_or(now) + self.interval_ms();
                    if next <= now {
                        next = now + self.interval_ms();
                    }
                    self.adver_at = Some(next);
                }
            }
            VrrpState::Backup => {
                if self.master_down_at.is_some_and(|t| now >= t) {
                    if self.lower_since.is_some()
                        && now < self.lower_last + self.master_down_ms()
                        && !self.gate_open(now)
                    {
                        // A lower priority master is alive and the gates are shut: keep
                        // waiting (re-checked at the next deadline).
                        self.master_down_at = Some(now + self.master_down_ms());
                    } else {
                        let why = if self.lower_since.is_some() {
                            "preempted a lower priority master"
                        } else {
                            "master down (no advert within the master-down interval)"
                        };
                        self.enter_master(now, why, &mut out);
                    }
                } else if self.gate_at.is_some_and(|t| now >= t) {
                    if self.gate_open(now) {
                        self.enter_master(now, "preempted a lower priority master", &mut out);
                    } else {
                        self.arm_gate(now);
                    }
                }
            }
            VrrpState::Init | VrrpState::Fault => {}
        }
        out
    }

    /// When to look at a pending preemption next: at its delay, then every 10 ms while the
    /// resync runs.
    fn arm_gate(&mut self, now: u64) {
        if let Some(s) = self.lower_since {
            let d = s + self.p.preempt_delay_ms;
            self.gate_at = Some(if now < d { d } else { now + 10 });
        }
    }

    /// May a pending preemption happen now?
    fn gate_open(&self, now: u64) -> bool {
        let Some(since) = self.lower_since else {
            return false;
        };
        now >= since + self.p.preempt_delay_ms
            && (self.resynced || now >= since + self.p.sync_wait_ms)
    }

    /// A valid advertisement for this VRID (TTL, auth, version checked by the caller) from
    /// `src`.
    pub fn advert(&mut self, now: u64, src: Ipv4Addr, a: &Advert) -> Vec<Action> {
        let mut out = Vec::new();
        match self.state {
            VrrpState::Init => {}
            VrrpState::Fault => {
                if a.priority != 0 {
                    self.master = Some(src);
                }
            }
            VrrpState::Backup => {
                if a.priority == 0 {
                    // The master is leaving: take over after Skew_Time.
                    self.master_down_at = Some(now + self.skew_ms());
                    self.lower_since = None;
                    self.gate_at = None;
                    return out;
                }
                let lower = a.priority < self.priority
                    || (a.priority == self.priority && u32::from(src) < u32::from(self.p.primary));
                if !self.p.preempt || !lower {
                    if self.p.version == VrrpVersion::V3 {
                        self.master_interval_cs = a.interval_cs;
                    }
                    self.master = Some(src);
                    self.master_down_at = Some(now + self.master_down_ms());
                    self.lower_since = None;
                    self.gate_at = None;
                } else {
                    // Preempt: as soon as preempt_delay and the sync gate allow.
                    self.master = Some(src);
                    self.lower_last = now;
                    if self.lower_since.is_none() {
                        self.lower_since = Some(now);
                    }
                    if self.gate_open(now) {
                        self.enter_master(now, "preempted a lower priority master", &mut out);
                    } else if self.gate_at.is_none() {
                        self.arm_gate(now);
                    }
                }
            }
            VrrpState::Master => {
                if a.priority == 0 {
                    out.push(Action::SendAdvert {
                        priority: self.priority,
                    });
                    self.adver_at = Some(now + self.interval_ms());
                } else if a.priority > self.priority
                    || (a.priority == self.priority && u32::from(src) > u32::from(self.p.primary))
                {
                    if self.p.version == VrrpVersion::V3 {
                        self.master_interval_cs = a.interval_cs;
                    }
                    self.enter_backup(now, "a higher priority master", &mut out);
                    self.master = Some(src);
                }
            }
        }
        out
    }

    /// The bulk resync a preempting backup waits for is done (or not wanted).
    pub fn set_resynced(&mut self, done: bool) {
        self.resynced = done;
    }

    /// Tracked scripts changed the advertised priority (the address owner's 255 stays).
    pub fn set_priority(&mut self, now: u64, p: u8) -> Vec<Action> {
        let mut out = Vec::new();
        if self.p.priority == 255 {
            return out;
        }
        let p = p.clamp(1, 254);
        if p == self.priority {
            return out;
        }
        self.priority = p;
        if self.state == VrrpState::Master {
            // Tell the backups now: one with a higher priority may preempt.
            out.push(Action::SendAdvert { priority: p });
            self.adver_at = Some(now + self.interval_ms());
        }
        out
    }

    /// A tracked script with weight 0 failed (`true`) or recovered.
    pub fn set_fault(&mut self, now: u64, fault: bool) -> Vec<Action> {
        let mut out = Vec::new();
        if self.fault == fault {
            return out;
        }
        self.fault = fault;
        match (fault, self.state) {
            (true, VrrpState::Init) => {}
            (true, s) => {
                if s == VrrpState::Master {
                    out.push(Action::SendAdvert { priority: 0 });
                }
                self.adver_at = None;
                self.master_down_at = None;
                self.lower_since = None;
                self.gate_at = None;
                self.master = None;
                self.go(VrrpState::Fault, "a tracked script is down", &mut out);
            }
            (false, VrrpState::Fault) => {
                self.master_interval_cs = self.p.interval_cs;
                if self.p.priority == 255 {
                    self.enter_master(now, "tracked scripts up (address owner)", &mut out);
                } else {
                    self.enter_backup(now, "tracked scripts up", &mut out);
                }
            }
            (false, _) => {}
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    const LOWER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const HIGHER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 3);

    fn params(priority: u8) -> Params {
        Params {
            vrid: 51,
            priority,
            interval_cs: 100,
            version: VrrpVersion::V3,
            preempt: true,
            preempt_delay_ms: 0,
            sync_wait_ms: 0,
            initial: InitialState::Backup,
            primary: ME,
        }
    }

    fn adv(priority: u8, interval_cs: u16) -> Advert {
        Advert {
            version: VrrpVersion::V3,
            vrid: 51,
            priority,
            interval_cs,
            addrs: vec![Ipv4Addr::new(198, 18, 0, 100)],
            auth: None,
        }
    }

    fn sends(a: &[Action]) -> Vec<u8> {
        a.iter()
            .filter_map(|x| match x {
                Action::SendAdvert { priority } => Some(*priority),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn timers_follow_the_rfc() {
        let m = Machine::new(params(100));
        // Skew = (256 - 100) * 100 / 256 cs = 60.9 cs -> 609 ms; down = 3 s + skew.
        assert_eq!(m.skew_ms(), 609);
        assert_eq!(m.master_down_ms(), 3609);
        let o = Machine::new(params(254));
        assert_eq!(o.skew_ms(), 7);
    }

    #[test]
    fn owner_starts_master_and_advertises_on_time() {
        let mut m = Machine::new(params(255));
        let a = m.start(0);
        assert_eq!(
            a,
            vec![Action::SendAdvert { priority: 255 }, Action::BecomeMaster]
        );
        assert_eq!(m.next_deadline(), Some(1000));
        assert!(m.tick(999).is_empty());
        assert_eq!(sends(&m.tick(1003)), vec![255]);
        // The next one is due at 2000, not 2003: no drift.
        assert_eq!(m.next_deadline(), Some(2000));
    }

    #[test]
    fn backup_takes_over_when_the_master_goes_silent() {
        let mut m = Machine::new(params(100));
        assert_eq!(m.start(0), vec![Action::BecomeBackup]);
        assert_eq!(m.state(), VrrpState::Backup);
        // A higher priority master advertising every 0.3 s (v3 learns its interval).
        let a = m.advert(100, HIGHER_IP, &adv(150, 30));
        assert!(a.is_empty());
        assert_eq!(m.master(), Some(HIGHER_IP));
        let down = 3 * 300 + (156 * 30 * 10 / 256);
        assert_eq!(m.master_down_ms(), down);
        assert_eq!(m.next_deadline(), Some(100 + down));
        assert!(m.tick(100 + down - 1).is_empty());
        let a = m.tick(100 + down);
        assert_eq!(
            a,
            vec![Action::SendAdvert { priority: 100 }, Action::BecomeMaster]
        );
        assert_eq!(m.master(), Some(ME));
        assert!(m.reason().contains("master down"));
    }

    #[test]
    fn priority_zero_means_skew_time() {
        let mut m = Machine::new(params(100));
        m.start(0);
        m.advert(10, HIGHER_IP, &adv(150, 100));
        m.advert(20, HIGHER_IP, &adv(0, 100));
        assert_eq!(m.next_deadline(), Some(20 + m.skew_ms()));
        assert_eq!(m.tick(20 + m.skew_ms())[1], Action::BecomeMaster);
    }

    #[test]
    fn master_yields_to_higher_priority_and_to_higher_address_on_ties() {
        let mut m = Machine::new(params(100));
        m.start(0);
        m.tick(m.master_down_ms());
        assert_eq!(m.state(), VrrpState::Master);
        // Lower priority, or equal with a lower address: ignored.
        assert!(m.advert(5000, HIGHER_IP, &adv(99, 100)).is_empty());
        assert!(m.advert(5000, LOWER_IP, &adv(100, 100)).is_empty());
        assert_eq!(m.state(), VrrpState::Master);
        // Equal priority from a higher address wins.
        assert_eq!(
            m.advert(5001, HIGHER_IP, &adv(100, 100)),
            vec![Action::BecomeBackup]
        );
        assert_eq!(m.master(), Some(HIGHER_IP));
        assert_eq!(m.next_deadline(), Some(5001 + m.master_down_ms()));

        let mut m = Machine::new(params(100));
        m.start(0);
        m.tick(m.master_down_ms());
        assert_eq!(
            m.advert(6000, LOWER_IP, &adv(200, 100)),
            vec![Action::BecomeBackup]
        );
    }

    #[test]
    fn master_answers_a_leaving_peer_at_once() {
        let mut m = Machine::new(params(255));
        m.start(0);
        assert_eq!(sends(&m.advert(300, HIGHER_IP, &adv(0, 100))), vec![255]);
        assert_eq!(m.next_deadline(), Some(1300));
    }

    #[test]
    fn backup_preempts_a_lower_master_unless_nopreempt() {
        let mut m = Machine::new(params(150));
        m.start(0);
        let a = m.advert(100, HIGHER_IP, &adv(100, 100));
        assert_eq!(a[1], Action::BecomeMaster);
        assert!(m.reason().contains("preempt"));

        let mut p = params(150);
        p.preempt = false;
        let mut m = Machine::new(p);
        m.start(0);
        for t in (100..20_000).step_by(1000) {
            assert!(m.advert(t, HIGHER_IP, &adv(100, 100)).is_empty());
            assert!(m.tick(t).is_empty());
        }
        assert_eq!(m.state(), VrrpState::Backup);
    }

    #[test]
    fn preempt_delay_is_waited() {
        let mut p = params(150);
        p.preempt_delay_ms = 2500;
        let mut m = Machine::new(p);
        m.start(0);
        for t in [100, 1100, 2100] {
            assert!(m.advert(t, HIGHER_IP, &adv(100, 100)).is_empty(), "{t}");
            assert!(m.tick(t).is_empty());
        }
        assert_eq!(m.next_deadline(), Some(2600));
        assert_eq!(m.tick(2600)[1], Action::BecomeMaster);
    }

    #[test]
    fn sync_gate_holds_preemption_until_resynced_or_timeout() {
        let mut p = params(150);
        p.sync_wait_ms = 5000;
        let mut m = Machine::new(p.clone());
        m.set_resynced(false);
        m.start(0);
        assert!(m.advert(100, HIGHER_IP, &adv(100, 100)).is_empty());
        assert!(m.tick(1000).is_empty());
        m.set_resynced(true);
        assert_eq!(m.tick(1010)[1], Action::BecomeMaster);

        // Never resynced: preempts once sync_wait has passed (the master stays alive).
        let mut m = Machine::new(p.clone());
        m.set_resynced(false);
        m.start(0);
        let mut became = None;
        for t in (100..8000).step_by(100) {
            let mut a = m.advert(t, HIGHER_IP, &adv(100, 100));
            a.extend(m.tick(t + 50));
            if a.contains(&Action::BecomeMaster) {
                became = Some(t);
                break;
            }
        }
        assert_eq!(became, Some(5100));

        // A master that died is taken over at master-down, resync or not.
        let mut m = Machine::new(p);
        m.set_resynced(false);
        m.start(0);
        m.advert(100, HIGHER_IP, &adv(200, 100));
        let down = 100 + m.master_down_ms();
        assert_eq!(m.tick(down)[1], Action::BecomeMaster);
    }

    #[test]
    fn tracked_priority_is_advertised_and_clamped() {
        let mut m = Machine::new(params(100));
        m.start(0);
        m.tick(m.master_down_ms());
        assert_eq!(sends(&m.set_priority(4000, 90)), vec![90]);
        assert_eq!(m.priority(), 90);
        assert!(m.set_priority(4001, 90).is_empty());
        m.set_priority(4002, 0);
        assert_eq!(m.priority(), 1);
        let mut o = Machine::new(params(255));
        o.start(0);
        assert!(o.set_priority(1, 10).is_empty());
        assert_eq!(o.priority(), 255);
    }

    #[test]
    fn fault_and_recovery() {
        let mut m = Machine::new(params(100));
        m.start(0);
        m.tick(m.master_down_ms());
        let a = m.set_fault(5000, true);
        assert_eq!(
            a,
            vec![Action::SendAdvert { priority: 0 }, Action::BecomeFault]
        );
        assert_eq!(m.next_deadline(), None);
        assert!(m.tick(100_000).is_empty());
        assert!(m.advert(6000, HIGHER_IP, &adv(50, 100)).is_empty());
        assert_eq!(m.set_fault(7000, false), vec![Action::BecomeBackup]);
        assert_eq!(m.next_deadline(), Some(7000 + m.master_down_ms()));
        // A machine that starts with a failed script starts in FAULT.
        let mut f = Machine::new(params(100));
        f.set_fault(0, true);
        assert_eq!(f.start(0), vec![Action::BecomeFault]);
    }

    #[test]
    fn shutdown_says_goodbye_only_as_master() {
        let mut m = Machine::new(params(255));
        m.start(0);
        assert_eq!(
            m.shutdown(10),
            vec![Action::SendAdvert { priority: 0 }, Action::BecomeInit]
        );
        let mut b = Machine::new(params(100));
        b.start(0);
        assert_eq!(b.shutdown(10), vec![Action::BecomeInit]);
        assert_eq!(b.transitions(), 2);
    }

    #[test]
    fn configured_master_claims_at_once_and_yields() {
        let mut p = params(100);
        p.initial = InitialState::Master;
        let mut m = Machine::new(p);
        assert_eq!(m.start(0)[1], Action::BecomeMaster);
        assert_eq!(
            m.advert(50, LOWER_IP, &adv(200, 100)),
            vec![Action::BecomeBackup]
        );
    }

    #[test]
    fn v2_keeps_its_own_interval() {
        let mut p = params(100);
        p.version = VrrpVersion::V2;
        let mut m = Machine::new(p);
        m.start(0);
        let mut a = adv(150, 300);
        a.version = VrrpVersion::V2;
        m.advert(10, HIGHER_IP, &a);
        assert_eq!(m.master_down_ms(), 3609);

        // With a 3 s interval the skew stays (256 - 100) / 256 s = 609 ms (RFC 3768 §6.1),
        // where v3 would spread it over the interval (1828 ms).
        let mut p = params(100);
        p.version = VrrpVersion::V2;
        p.interval_cs = 300;
        let m = Machine::new(p.clone());
        assert_eq!(m.skew_ms(), 609);
        assert_eq!(m.master_down_ms(), 9609);
        p.version = VrrpVersion::V3;
        assert_eq!(Machine::new(p).skew_ms(), 1828);
    }
}
