//! LVS schedulers: round robin (`rr`) and weighted round robin (`wrr`), as IPVS runs them.
//!
//! Each worker keeps its own cursor per service (a fixed array indexed by the service's index
//! in the snapshot, sized to `max_services` at start) and resets all cursors when it picks up a
//! snapshot with a new epoch, as IPVS resets a scheduler when its destinations change. Servers
//! with weight 0 are quiesced: they get no new flows.

use crate::model::{ModelError, SchedulerKind};

/// Whether the dataplane implements `k`.
pub fn supported(k: SchedulerKind) -> bool {
    matches!(k, SchedulerKind::Rr | SchedulerKind::Wrr)
}

/// Validate scheduler flags (`-b`) for `k`. rr and wrr take none.
pub fn check_flags(_k: SchedulerKind, flags: &[String]) -> Result<(), ModelError> {
    if let Some(f) = flags.first() {
        return Err(ModelError::Unsupported(format!(
            "scheduler flag '{f}' is not supported yet"
        )));
    }
    Ok(())
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// wrr parameters over `weights`: (gcd of the non-zero weights, maximum weight). (0, 0) when
/// every weight is 0.
pub fn wrr_params(weights: impl IntoIterator<Item = u32>) -> (u32, u32) {
    weights
        .into_iter()
        .filter(|&w| w > 0)
        .fold((0, 0), |(g, m), w| (gcd(g, w), m.max(w)))
}

/// One service's cursor: the last chosen position (`None` = the list head, as after a reset)
/// and wrr's current weight.
#[derive(Debug, Clone, Copy, Default)]
struct Cursor {
    last: Option<usize>,
    cw: i64,
}

/// Round robin: the next server after the last one chosen whose weight is not 0.
fn rr(c: &mut Cursor, n: usize, weight: impl Fn(usize) -> u32) -> Option<usize> {
    if n == 0 {
        return None;
    }
    let start = c.last.map_or(0, |l| l.wrapping_add(1) % n);
    for i in 0..n {
        let idx = (start + i) % n;
        if weight(idx) > 0 {
            c.last = Some(idx);
            return Some(idx);
        }
    }
    None
}

/// IPVS weighted round robin: walk the list; each time the walk passes the head, lower the
/// current weight by the gcd (back to the maximum weight when it reaches 0); choose the first
/// server whose weight is at least the current weight. Weights 3:1 give A A A B A A A B ...
fn wrr(
    c: &mut Cursor,
    n: usize,
    gcd: u32,
    max: u32,
    weight: impl Fn(usize) -> u32,
) -> Option<usize> {
    if n == 0 || max == 0 || gcd == 0 {
        return None;
    }
    // The maximum-weight server qualifies at every level, so a choice is found within two
    // passes over the list; the bound only guards against inconsistent parameters.
    let bound = n.saturating_mul(2).saturating_add(2);
    let mut cl = c.last;
    for _ in 0..bound {
        let next = match cl {
            Some(l) if l + 1 < n => l + 1,
            _ => 0,
        };
        if next == 0 {
            c.cw -= i64::from(gcd);
            if c.cw <= 0 {
                c.cw = i64::from(max);
            }
        }
        cl = Some(next);
        if i64::from(weight(next)) >= c.cw {
            c.last = cl;
            return Some(next);
        }
    }
    c.last = cl;
    None
}

/// A worker's scheduler state for every service.
#[derive(Debug)]
pub struct Schedulers {
    cursors: Box<[Cursor]>,
    epoch: u64,
}

impl Schedulers {
    /// State for up to `max_services` services (allocated here, once).
    pub fn new(max_services: usize) -> Self {
        Schedulers {
            cursors: vec![Cursor::default(); max_services].into_boxed_slice(),
            epoch: 0,
        }
    }

    /// Reset every cursor if `epoch` differs from the one the cursors were built for.
    pub fn sync_epoch(&mut self, epoch: u64) {
        if epoch != self.epoch {
            self.cursors.fill(Cursor::default());
            self.epoch = epoch;
        }
    }

    /// Choose a server index in `0..n` for a new flow of service `svc` (its index in the
    /// snapshot). `gcd`/`max` are the service's precomputed [`wrr_params`]. `None` when no server
    /// has a weight above 0.
    pub fn pick(
        &mut self,
        svc: usize,
        kind: SchedulerKind,
        n: usize,
        gcd: u32,
        max: u32,
        weight: impl Fn(usize) -> u32,
    ) -> Option<usize> {
        let c = self.cursors.get_mut(svc)?;
        match kind {
            SchedulerKind::Wrr => wrr(c, n, gcd, max, weight),
            // Unsupported kinds never validate; rr is the safe fallback.
            _ => rr(c, n, weight),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(kind: SchedulerKind, w: &[u32], count: usize) -> Vec<Option<usize>> {
        let mut s = Schedulers::new(1);
        let (g, m) = wrr_params(w.iter().copied());
        (0..count)
            .map(|_| s.pick(0, kind, w.len(), g, m, |i| w[i]))
            .collect()
    }

    fn some(v: &[usize]) -> Vec<Option<usize>> {
        v.iter().map(|&i| Some(i)).collect()
    }

    #[test]
    fn rr_cycles_in_order_and_skips_weight_zero() {
        assert_eq!(
            seq(SchedulerKind::Rr, &[1, 1, 1], 7),
            some(&[0, 1, 2, 0, 1, 2, 0])
        );
        assert_eq!(
            seq(SchedulerKind::Rr, &[1, 0, 5], 5),
            some(&[0, 2, 0, 2, 0])
        );
        assert_eq!(seq(SchedulerKind::Rr, &[0, 0], 2), vec![None, None]);
        assert_eq!(seq(SchedulerKind::Rr, &[], 1), vec![None]);
    }

    #[test]
    fn wrr_three_to_one_is_the_ipvs_sequence() {
        assert_eq!(
            seq(SchedulerKind::Wrr, &[3, 1], 8),
            some(&[0, 0, 0, 1, 0, 0, 0, 1])
        );
    }

    #[test]
    fn wrr_interleaves_by_gcd_and_skips_zero() {
        // weights 4:2:0:2, gcd 2, max 4: levels 4 and 2.
        assert_eq!(
            seq(SchedulerKind::Wrr, &[4, 2, 0, 2], 8),
            some(&[0, 0, 1, 3, 0, 0, 1, 3])
        );
        // 5:3:1 over one full period gives exactly 5, 3, 1 picks.
        let s = seq(SchedulerKind::Wrr, &[5, 3, 1], 9);
        let count = |i| s.iter().filter(|&&x| x == Some(i)).count();
        assert_eq!((count(0), count(1), count(2)), (5, 3, 1));
        assert_eq!(s, some(&[0, 0, 0, 1, 0, 1, 0, 1, 2]));
    }

    #[test]
    fn wrr_all_zero_gives_none() {
        assert_eq!(seq(SchedulerKind::Wrr, &[0, 0, 0], 3), vec![None; 3]);
        assert_eq!(wrr_params([0, 0]), (0, 0));
        assert_eq!(wrr_params([6, 0, 4]), (2, 6));
    }

    #[test]
    fn epoch_change_resets_cursors() {
        let mut s = Schedulers::new(2);
        s.sync_epoch(1);
        let w = [1, 1];
        assert_eq!(s.pick(1, SchedulerKind::Rr, 2, 1, 1, |i| w[i]), Some(0));
        assert_eq!(s.pick(1, SchedulerKind::Rr, 2, 1, 1, |i| w[i]), Some(1));
        s.sync_epoch(1);
        assert_eq!(s.pick(1, SchedulerKind::Rr, 2, 1, 1, |i| w[i]), Some(0));
        s.sync_epoch(2);
        assert_eq!(s.pick(1, SchedulerKind::Rr, 2, 1, 1, |i| w[i]), Some(0));
        // out-of-range service index: no panic, no choice
        assert_eq!(s.pick(5, SchedulerKind::Rr, 2, 1, 1, |i| w[i]), None);
    }

    #[test]
    fn flags_and_support() {
        assert!(supported(SchedulerKind::Rr) && supported(SchedulerKind::Wrr));
        assert!(!supported(SchedulerKind::Wlc));
        assert!(check_flags(SchedulerKind::Rr, &[]).is_ok());
        assert!(check_flags(SchedulerKind::Rr, &["sh-port".into()]).is_err());
    }
}
