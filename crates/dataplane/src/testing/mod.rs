//! Test support shared by the dataplane's unit tests, the daemon's in-process engine tests and
//! the pipeline fuzz target (feature `testing`; always built for this crate's own tests).
//!
//! - [`fixture`]: a small fixed configuration and a worker forwarding by it.
//! - [`corpus`]: malformed and hostile frames, each with the verdict the pipeline must give it.
//! - [`fuzz`]: the pipeline fuzz target's input format and the invariants it checks.
//!
//! And here: what a frame may have become for each verdict ([`check_frame`]), and the verdicts
//! of a run tallied against the worker's counters ([`Tally`]).

pub mod corpus;
pub mod fixture;
pub mod fuzz;

use crate::pipeline::{DropReason, Frames, RxCsum, Verdict};
use crate::stats::WorkerCounters;
use fixture::{PORT_MAC, RS1_MAC, RS2_MAC};
use std::sync::atomic::Ordering::Relaxed;

/// Frames as a burst for [`Worker::process_burst`](crate::pipeline::Worker::process_burst),
/// each with what the NIC said of its IPv4 header checksum.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrameBurst {
    pub frames: Vec<Vec<u8>>,
    pub csum: Vec<RxCsum>,
}

impl Frames for FrameBurst {
    fn count(&self) -> usize {
        self.frames.len()
    }
    fn frame(&self, i: usize) -> Option<&[u8]> {
        self.frames.get(i).map(|f| &f[..])
    }
    fn frame_mut(&mut self, i: usize) -> Option<&mut [u8]> {
        self.frames.get_mut(i).map(|f| &mut f[..])
    }
    fn ip_csum(&self, i: usize) -> RxCsum {
        self.csum.get(i).copied().unwrap_or_default()
    }
}

/// [`check_frame_to`] with the fixture's real servers at their MACs.
pub fn check_frame(before: &[u8], after: &[u8], v: Verdict) -> Result<(), String> {
    check_frame_to(before, after, v, &[RS1_MAC, RS2_MAC])
}

/// Whether `after` is what the pipeline may have made of `before` under verdict `v`:
/// - forwarded: only the first 12 bytes changed, to one of `rs_macs` and the port's MAC;
/// - answered: an ARP request for an address of ours turned into the reply to its sender, the
///   rest of the frame (padding) kept;
/// - consumed, dropped or handed to the kernel: unchanged.
///
/// The length never changes.
pub fn check_frame_to(
    before: &[u8],
    after: &[u8],
    v: Verdict,
    rs_macs: &[[u8; 6]],
) -> Result<(), String> {
    if before.len() != after.len() {
        return Err(format!(
            "{v:?}: length changed from {} to {}",
            before.len(),
            after.len()
        ));
    }
    match v {
        Verdict::Forward => {
            if after.get(12..) != before.get(12..) {
                return Err("forwarded: bytes after the MACs changed".into());
            }
            let dst = after.get(..6).unwrap_or(&[]);
            if !rs_macs.iter().any(|m| m[..] == *dst) {
                return Err(format!("forwarded to {dst:02x?}, not a real server"));
            }
            if after.get(6..12) != Some(&PORT_MAC[..]) {
                return Err("forwarded: source MAC is not the port's".into());
            }
            Ok(())
        }
        Verdict::Reply => check_arp_reply(before, after),
        Verdict::Consumed | Verdict::Drop(_) | Verdict::Kernel => {
            if before == after {
                Ok(())
            } else {
                Err(format!("{v:?}: the frame was modified"))
            }
        }
    }
}

/// An ARP request (Ethernet/IPv4, 28 bytes after the Ethernet header) for one of our
/// addresses, answered in place; tagged (802.1Q), answered with its tag (the frame without
/// the tag is checked).
fn check_arp_reply(before: &[u8], after: &[u8]) -> Result<(), String> {
    if before.get(12..14) == Some(&[0x81, 0x00]) {
        if after.get(12..16) != before.get(12..16) {
            return Err("a tagged request answered without its tag".into());
        }
        let untag = |f: &[u8]| [&f[..12], f.get(16..).unwrap_or(&[])].concat();
        return check_arp_reply(&untag(before), &untag(after));
    }
    let (Some(b), Some(a)) = (before.get(..42), after.get(..42)) else {
        return Err("answered a frame shorter than an ARP frame".into());
    };
    let head = [0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00];
    if b[12..21] != head || b[21] != 1 {
        return Err("answered something that is not an Ethernet/IPv4 ARP request".into());
    }
    let tpa = &b[38..42];
    let ours = [fixture::VIP, fixture::DIP].map(|ip| ip.octets());
    if !ours.iter().any(|o| o[..] == *tpa) {
        return Err(format!("answered a request for {tpa:?}, not ours"));
    }
    let (sha, spa) = (&b[22..28], &b[28..32]);
    let mut want = Vec::with_capacity(42);
    want.extend_from_slice(sha); // to the requester
    want.extend_from_slice(&PORT_MAC); // from the port
    want.extend_from_slice(&b[12..21]); // ARP, Ethernet/IPv4
    want.push(2); // reply
    want.extend_from_slice(&PORT_MAC); // sender: us, with the address asked for
    want.extend_from_slice(tpa);
    want.extend_from_slice(sha); // target: the requester
    want.extend_from_slice(spa);
    if a != &want[..] {
        return Err(format!("reply {a:02x?}, expected {want:02x?}"));
    }
    if after.get(42..) != before.get(42..) {
        return Err("reply: the padding changed".into());
    }
    Ok(())
}

/// Counters a worker bumps beside a verdict (the frame was still forwarded, or dropped under
/// another reason): not one per frame.
pub const SIDE_COUNTS: [DropReason; 2] = [DropReason::FlowTableFull, DropReason::PersistTableFull];

/// Verdicts counted by kind (drops by reason).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tally {
    pub frames: u64,
    pub forward: u64,
    pub reply: u64,
    pub consumed: u64,
    /// Handed to the kernel interface.
    pub kernel: u64,
    pub drops: [u64; DropReason::COUNT],
}

impl Tally {
    pub fn add(&mut self, v: Verdict) {
        self.frames += 1;
        match v {
            Verdict::Forward => self.forward += 1,
            Verdict::Reply => self.reply += 1,
            Verdict::Consumed => self.consumed += 1,
            Verdict::Kernel => self.kernel += 1,
            Verdict::Drop(r) => self.drops[r.index()] += 1,
        }
    }

    pub fn of<'a>(vs: impl IntoIterator<Item = &'a Verdict>) -> Self {
        let mut t = Tally::default();
        for v in vs {
            t.add(*v);
        }
        t
    }

    /// Whether worker counters `wc` (of a worker that decided exactly these verdicts, from
    /// zero) agree with them: see [`check_counters_since`](Self::check_counters_since).
    pub fn check_counters(&self, wc: &WorkerCounters) -> Result<(), String> {
        self.check_counters_since(wc, &Counted::default())
    }

    /// Whether worker counters `wc`, less what they were at `base`, agree with these verdicts
    /// (decided since): forwarded, ARP replies and each drop reason counted once per frame,
    /// so that forwarded + replies + consumed + drops = frames; the side counts are not
    /// compared (at most one per frame).
    pub fn check_counters_since(&self, wc: &WorkerCounters, base: &Counted) -> Result<(), String> {
        let now = Counted::of(wc);
        let forwarded = now.forwarded.wrapping_sub(base.forwarded);
        let replies = now.arp_replies.wrapping_sub(base.arp_replies);
        let to_kernel = now.to_kernel.wrapping_sub(base.to_kernel);
        if to_kernel != self.kernel {
            return Err(format!("to_kernel {to_kernel}, verdicts {}", self.kernel));
        }
        if forwarded != self.forward {
            return Err(format!("forwarded {forwarded}, verdicts {}", self.forward));
        }
        if replies != self.reply {
            return Err(format!("arp_replies {replies}, verdicts {}", self.reply));
        }
        let mut dropped = 0;
        for r in DropReason::ALL {
            let n = now.drops[r.index()].wrapping_sub(base.drops[r.index()]);
            if SIDE_COUNTS.contains(&r) {
                if n > self.frames {
                    return Err(format!("{}: {n} for {} frames", r.name(), self.frames));
                }
                continue;
            }
            if n != self.drops[r.index()] {
                return Err(format!(
                    "drops {}: counted {n}, verdicts {}",
                    r.name(),
                    self.drops[r.index()]
                ));
            }
            dropped += n;
        }
        let total = forwarded + replies + self.consumed + to_kernel + dropped;
        if total != self.frames {
            return Err(format!(
                "forwarded {forwarded} + replies {replies} + consumed {} + to_kernel \
                 {to_kernel} + drops {dropped} = {total}, not the {} frames",
                self.consumed, self.frames
            ));
        }
        Ok(())
    }
}

/// A worker's per-frame counters as read at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Counted {
    pub forwarded: u64,
    pub arp_replies: u64,
    pub to_kernel: u64,
    pub drops: [u64; DropReason::COUNT],
}

impl Counted {
    pub fn of(wc: &WorkerCounters) -> Self {
        Counted {
            forwarded: wc.forwarded.load(Relaxed),
            arp_replies: wc.arp_replies.load(Relaxed),
            to_kernel: wc.to_kernel.load(Relaxed),
            drops: DropReason::ALL.map(|r| wc.drop_count(r)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_frame_refuses_what_the_pipeline_must_not_do() {
        let syn = corpus::tcp(1, 0x02);
        // Dropped but modified.
        let mut f = syn.clone();
        f[30] ^= 1;
        assert!(check_frame(&syn, &f, Verdict::Drop(DropReason::NoService)).is_err());
        assert!(check_frame(&syn, &syn, Verdict::Drop(DropReason::NoService)).is_ok());
        // Forwarded: the right rewrite passes; a byte past the MACs, a wrong MAC, or a
        // length change do not.
        let mut fwd = syn.clone();
        fwd[..6].copy_from_slice(&RS2_MAC);
        fwd[6..12].copy_from_slice(&PORT_MAC);
        assert!(check_frame(&syn, &fwd, Verdict::Forward).is_ok());
        let mut bad = fwd.clone();
        bad[40] ^= 1;
        assert!(check_frame(&syn, &bad, Verdict::Forward).is_err());
        let mut bad = fwd.clone();
        bad[..6].copy_from_slice(&PORT_MAC);
        assert!(check_frame(&syn, &bad, Verdict::Forward).is_err());
        assert!(check_frame(&syn, &fwd[..59], Verdict::Forward).is_err());
        assert!(check_frame(&syn, &syn, Verdict::Forward).is_err());
        // A reply to a frame that is not an ARP request for our address.
        assert!(check_frame(&syn, &syn, Verdict::Reply).is_err());
    }

    #[test]
    fn tally_against_counters() {
        let fx = fixture::Fixture::new();
        let wc = fx.shared.stats.worker(0).unwrap();
        let mut t = Tally::default();
        assert!(t.check_counters(wc).is_ok());
        t.add(Verdict::Consumed);
        assert!(t.check_counters(wc).is_ok());
        t.add(Verdict::Drop(DropReason::Vlan));
        assert!(t.check_counters(wc).is_err(), "a drop not counted");
        crate::stats::bump(&wc.drops[DropReason::Vlan.index()], 1);
        assert!(t.check_counters(wc).is_ok());
        crate::stats::bump(&wc.drops[DropReason::FlowTableFull.index()], 1);
        assert!(t.check_counters(wc).is_ok(), "a side count");
        crate::stats::bump(&wc.forwarded, 1);
        assert!(
            t.check_counters(wc).is_err(),
            "a forward without its verdict"
        );
        t.add(Verdict::Forward);
        assert!(t.check_counters(wc).is_ok());
        t.add(Verdict::Kernel);
        assert!(t.check_counters(wc).is_err(), "to_kernel not counted");
        crate::stats::bump(&wc.to_kernel, 1);
        assert!(t.check_counters(wc).is_ok());
    }
}
