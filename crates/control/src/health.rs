//! The health state machine of one probe ([`ProbeKey`]): keepalived's checker semantics, turned
//! into a pure value with no I/O and no clock of its own. The daemon's checker owns one
//! [`ProbeState`] per probe, asks it when the next probe is due ([`ProbeState::next_due`]),
//! runs the probe, and hands the result back ([`ProbeState::on_result`]); every time is given
//! by the caller as milliseconds of a monotonic clock (`now_ms`), so tests drive it with a
//! fake one.
//!
//! The rules (keepalived's `TCP_CHECK`, `HTTP_GET`, `UDP_CHECK`, `MISC_CHECK` epilogues; `rise`
//! is ours):
//! - **Start**: up, or down with `alpha`. The first probe is due after a random delay in
//!   `0..warmup` (`warmup` unset: `0..delay_loop`; `warmup 0`: at once). The random number is
//!   a parameter ([`ProbeState::new`]).
//! - **Success** (`Ok(weight)`): the failures in a row are forgotten. While up the server stays
//!   up (a `misc_dynamic` weight is taken as it comes). While down the successes in a row are
//!   counted: up at `rise` of them. The next probe is due `delay_loop` later.
//! - **Failure** (`Err(why)`): the successes in a row are forgotten, `why` is kept as the last
//!   error. While up the failures in a row are counted: the first `retry` of them are retried
//!   `delay_before_retry` later; the `retry + 1`th takes the server down (the reason is that
//!   last error) and the next probe is due `delay_loop` later. While down: `delay_loop` later
//!   (a server known dead is not retried, as keepalived).
//! - Delays run from the end of a probe (`now_ms` of [`ProbeState::on_result`]), as
//!   keepalived's timers do for its socket checkers.
//!
//! How long a dead server takes to be seen, counted from its death just after a successful
//! probe: `delay_loop` to the next probe, then `retry` retries each `delay_before_retry`
//! apart, each probe lasting up to `connect_timeout`. A server that refuses at once (its
//! daemon stopped: a TCP reset or an ICMP unreachable) is down after
//! `delay_loop + retry × delay_before_retry`; one that no longer answers at all after
//! `delay_loop + retry × delay_before_retry + (retry + 1) × connect_timeout`.
//!
//! `MISC_CHECK` exit codes become results through [`misc_exit`]; its command line is split by
//! [`split_command`].

use crate::check::{CheckParams, ProbeStatus};

/// What one probe said: `Ok(None)` passed (the configured weight), `Ok(Some(w))` passed and
/// set the weight to `w` (`MISC_CHECK` with `misc_dynamic`), `Err(why)` failed.
pub type ProbeResult = Result<Option<u32>, String>;

/// A change of up/down that a result caused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The new state.
    pub up: bool,
    /// Why: the failing probe's error, or "check succeeded" / "rise N reached".
    pub reason: String,
}

/// The health of one probe over time. See the module's documentation for the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeState {
    delay_loop_ms: u64,
    delay_before_retry_ms: u64,
    retry: u32,
    rise: u32,
    up: bool,
    weight: Option<u32>,
    /// Failures in a row while up (keepalived's `retry_it`, plus one).
    failures: u32,
    /// Successes in a row while down.
    successes: u32,
    next_due_ms: u64,
    since_ms: u64,
    last_check_ms: Option<u64>,
    last_error: Option<String>,
    reason: String,
}

/// The delay before a probe's first run: `random` scaled into `0..warmup` (`warmup` unset:
/// `delay_loop`). `random` is uniform over `u64`; 0 gives no delay, `u64::MAX` almost all of it.
pub fn warmup_delay(params: &CheckParams, random: u64) -> u64 {
    let warmup = params.warmup_ms.unwrap_or(params.delay_loop_ms);
    ((u128::from(warmup) * u128::from(random)) >> 64) as u64
}

impl ProbeState {
    /// A probe starting at `now_ms`: up (down with `alpha`), first due after
    /// [`warmup_delay`]`(params, random)`.
    pub fn new(params: &CheckParams, now_ms: u64, random: u64) -> ProbeState {
        let up = !params.alpha;
        ProbeState {
            delay_loop_ms: params.delay_loop_ms,
            delay_before_retry_ms: params.delay_before_retry_ms,
            retry: params.retry,
            rise: params.rise.max(1),
            up,
            weight: None,
            failures: 0,
            successes: 0,
            next_due_ms: now_ms.saturating_add(warmup_delay(params, random)),
            since_ms: now_ms,
            last_check_ms: None,
            last_error: None,
            reason: if up {
                "not checked yet: up until a check fails".to_string()
            } else {
                "not checked yet: down until a check succeeds (alpha)".to_string()
            },
        }
    }

    /// When the next probe is due (the caller's monotonic clock, ms).
    pub fn next_due(&self) -> u64 {
        self.next_due_ms
    }

    /// Whether the probe says up.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// The weight a `misc_dynamic` script set (`None`: the configured one).
    pub fn weight(&self) -> Option<u32> {
        self.weight
    }

    /// Failures in a row seen while up (0 once down or after a success).
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Takes the result of a probe that ended at `now_ms`: updates the state, schedules the
    /// next probe, and returns the change of up/down it caused, if any.
    pub fn on_result(&mut self, now_ms: u64, result: ProbeResult) -> Option<Transition> {
        self.last_check_ms = Some(now_ms);
        match result {
            Ok(weight) => {
                self.failures = 0;
                self.next_due_ms = now_ms.saturating_add(self.delay_loop_ms);
                if self.up {
                    self.weight = weight;
                    return None;
                }
                self.successes += 1;
                if self.successes < self.rise {
                    return None;
                }
                self.successes = 0;
                self.weight = weight;
                let reason = if self.rise == 1 {
                    "check succeeded".to_string()
                } else {
                    format!("rise {} reached", self.rise)
                };
                Some(self.change(now_ms, true, reason))
            }
            Err(why) => {
                self.successes = 0;
                self.last_error = Some(why.clone());
                if !self.up {
                    self.next_due_ms = now_ms.saturating_add(self.delay_loop_ms);
                    return None;
                }
                self.failures += 1;
                if self.failures <= self.retry {
                    self.next_due_ms = now_ms.saturating_add(self.delay_before_retry_ms);
                    return None;
                }
                self.failures = 0;
                self.weight = None;
                self.next_due_ms = now_ms.saturating_add(self.delay_loop_ms);
                Some(self.change(now_ms, false, why))
            }
        }
    }

    fn change(&mut self, now_ms: u64, up: bool, reason: String) -> Transition {
        self.up = up;
        self.since_ms = now_ms;
        self.reason = reason.clone();
        Transition { up, reason }
    }

    /// What the control plane is told: the state with its times turned into Unix time.
    /// `now_ms` is the monotonic clock's now, `now_unix_ms` the same moment in Unix time.
    pub fn status(&self, now_ms: u64, now_unix_ms: u64) -> ProbeStatus {
        let unix = |t: u64| now_unix_ms.saturating_sub(now_ms.saturating_sub(t));
        ProbeStatus {
            up: self.up,
            weight: self.weight,
            since_unix_ms: unix(self.since_ms),
            last_check_unix_ms: self.last_check_ms.map(unix),
            last_error: self.last_error.clone(),
            reason: self.reason.clone(),
        }
    }
}

/// A `MISC_CHECK` script's end as a result: `code` is its exit status (`None`: killed by a
/// signal, `signal` says which if known). Exit 0 passes; with `dynamic` (`misc_dynamic`) exit
/// 2..=255 passes with weight `code - 2`; anything else fails.
pub fn misc_exit(code: Option<i32>, signal: Option<i32>, dynamic: bool) -> ProbeResult {
    match code {
        Some(0) => Ok(None),
        Some(c @ 2..=255) if dynamic => Ok(Some(c as u32 - 2)),
        Some(c) => Err(format!("exited with status {c}")),
        None => Err(match signal {
            Some(s) => format!("killed by signal {s}"),
            None => "killed by a signal".to_string(),
        }),
    }
}

/// Splits a `misc_path` (or `quorum_up`/`quorum_down`) command line into the program and its
/// arguments, for running without a shell: words are separated by blanks (spaces and tabs);
/// double quotes keep blanks inside a word and are removed; a backslash takes the next
/// character as it is (inside quotes only before `"` or `\`). An empty line or an unclosed
/// quote is an error.
pub fn split_command(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            '\\' if !quoted => match chars.next() {
                Some(n) => {
                    word.push(n);
                    in_word = true;
                }
                None => return Err(format!("{line:?} ends with a lone backslash")),
            },
            '\\' if matches!(chars.peek(), Some('"' | '\\')) => {
                word.extend(chars.next());
            }
            ' ' | '\t' if !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\n' | '\r' | '\0' => {
                return Err(format!("{line:?} has a line break or a NUL byte"));
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if quoted {
        return Err(format!("{line:?} has an unclosed double quote"));
    }
    if in_word {
        words.push(word);
    }
    if words.is_empty() {
        return Err("empty command".to_string());
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000;

    fn params(delay_loop: u64, retry: u32, dbr: u64, rise: u32) -> CheckParams {
        CheckParams {
            delay_loop_ms: delay_loop,
            retry,
            delay_before_retry_ms: dbr,
            rise,
            warmup_ms: Some(0),
            ..CheckParams::default()
        }
    }

    fn fail(s: &str) -> ProbeResult {
        Err(s.to_string())
    }

    /// A fake clock driving a state machine: runs the probe at each due time with the result
    /// `world(start)` says, the probe taking `took(result)` ms.
    struct Sim {
        st: ProbeState,
        log: Vec<(u64, Transition)>,
        probes: Vec<u64>,
    }

    impl Sim {
        fn new(p: &CheckParams) -> Sim {
            Sim {
                st: ProbeState::new(p, 0, 0),
                log: vec![],
                probes: vec![],
            }
        }
        fn run_until(
            &mut self,
            end: u64,
            world: impl Fn(u64) -> ProbeResult,
            mut took: impl FnMut(&ProbeResult) -> u64,
        ) {
            while self.st.next_due() <= end {
                let start = self.st.next_due();
                self.probes.push(start);
                let r = world(start);
                let done = start + took(&r);
                if let Some(t) = self.st.on_result(done, r) {
                    self.log.push((done, t));
                }
            }
        }
    }

    #[test]
    fn starts_up_or_down_with_alpha_and_waits_the_warmup() {
        let mut p = params(10 * S, 1, S, 1);
        p.warmup_ms = None;
        let st = ProbeState::new(&p, 500, 0);
        assert!(st.is_up());
        assert_eq!(st.next_due(), 500);
        // Unset warmup: up to delay_loop.
        let st = ProbeState::new(&p, 500, u64::MAX);
        assert_eq!(st.next_due(), 500 + 10 * S - 1);
        let st = ProbeState::new(&p, 500, u64::MAX / 2);
        assert_eq!(st.next_due(), 500 + 5 * S - 1);
        p.warmup_ms = Some(2 * S);
        let st = ProbeState::new(&p, 0, u64::MAX / 4);
        assert_eq!(st.next_due(), 499);
        p.warmup_ms = Some(0);
        assert_eq!(ProbeState::new(&p, 7, u64::MAX).next_due(), 7);
        p.alpha = true;
        let st = ProbeState::new(&p, 0, 0);
        assert!(!st.is_up());
        let s = st.status(0, 1_700_000_000_000);
        assert!(!s.up && s.last_check_unix_ms.is_none() && s.last_error.is_none());
        assert!(s.reason.contains("alpha"), "{}", s.reason);
    }

    #[test]
    fn retries_after_delay_before_retry_then_goes_down_on_retry_plus_one() {
        let mut st = ProbeState::new(&params(10 * S, 2, S, 1), 0, 0);
        assert_eq!(st.on_result(100, fail("e1")), None);
        assert_eq!(st.next_due(), 100 + S);
        assert!(st.is_up());
        assert_eq!(st.on_result(1_200, fail("e2")), None);
        assert_eq!(st.next_due(), 2_200);
        let t = st.on_result(2_300, fail("connect 198.18.0.11:80: connection refused"));
        assert_eq!(
            t,
            Some(Transition {
                up: false,
                reason: "connect 198.18.0.11:80: connection refused".into()
            })
        );
        assert!(!st.is_up());
        // Down: no retries, delay_loop.
        assert_eq!(st.next_due(), 2_300 + 10 * S);
        assert_eq!(st.on_result(12_300, fail("e4")), None);
        assert_eq!(st.next_due(), 22_300);
        let s = st.status(12_300, 1_000_012_300);
        assert_eq!(s.since_unix_ms, 1_000_002_300);
        assert_eq!(s.last_check_unix_ms, Some(1_000_012_300));
        assert_eq!(s.last_error.as_deref(), Some("e4"));
        assert_eq!(s.reason, "connect 198.18.0.11:80: connection refused");
    }

    #[test]
    fn retry_zero_goes_down_on_the_first_failure() {
        let mut st = ProbeState::new(&params(10 * S, 0, S, 1), 0, 0);
        assert!(st.on_result(5, fail("x")).is_some_and(|t| !t.up));
        assert_eq!(st.next_due(), 5 + 10 * S);
    }

    #[test]
    fn a_success_between_failures_resets_the_count_so_flapping_never_goes_down() {
        let mut st = ProbeState::new(&params(S, 1, 500, 1), 0, 0);
        let mut now = 0;
        for i in 0..20 {
            now += 100;
            let r = if i % 2 == 0 { fail("flap") } else { Ok(None) };
            assert_eq!(st.on_result(now, r), None, "probe {i}");
            assert!(st.is_up());
        }
        // Two in a row do.
        assert!(st.on_result(now + 1, fail("a")).is_none());
        assert!(st.on_result(now + 2, fail("b")).is_some());
    }

    #[test]
    fn rise_counts_successes_in_a_row_and_a_failure_restarts_it() {
        let mut p = params(S, 0, 500, 3);
        p.alpha = true;
        let mut st = ProbeState::new(&p, 0, 0);
        assert_eq!(st.on_result(10, Ok(None)), None);
        assert_eq!(st.next_due(), 10 + S);
        assert_eq!(st.on_result(20, Ok(None)), None);
        assert_eq!(st.on_result(30, fail("blip")), None);
        assert_eq!(st.next_due(), 30 + S, "down: no retry");
        assert_eq!(st.on_result(40, Ok(None)), None);
        assert_eq!(st.on_result(50, Ok(None)), None);
        assert!(!st.is_up());
        let t = st.on_result(60, Ok(None)).unwrap();
        assert!(t.up);
        assert_eq!(t.reason, "rise 3 reached");
        let s = st.status(60, 10_060);
        assert_eq!(s.since_unix_ms, 10_060);
        assert_eq!(
            s.last_error.as_deref(),
            Some("blip"),
            "kept after successes"
        );
        // rise 1: the first success.
        let mut p = params(S, 0, 500, 1);
        p.alpha = true;
        let mut st = ProbeState::new(&p, 0, 0);
        assert_eq!(
            st.on_result(1, Ok(None)).map(|t| t.reason),
            Some("check succeeded".to_string())
        );
    }

    #[test]
    fn alpha_stays_down_on_failures_without_retries() {
        let mut p = params(2 * S, 3, 100, 1);
        p.alpha = true;
        let mut st = ProbeState::new(&p, 0, 0);
        for i in 1..=5 {
            assert_eq!(st.on_result(i * 10, fail("no")), None);
            assert_eq!(st.next_due(), i * 10 + 2 * S);
            assert!(!st.is_up());
        }
    }

    #[test]
    fn misc_dynamic_weights_follow_the_exit_codes() {
        let mut st = ProbeState::new(&params(S, 1, 500, 1), 0, 0);
        let r = |c| misc_exit(Some(c), None, true);
        assert_eq!(r(0), Ok(None));
        assert_eq!(r(1), Err("exited with status 1".to_string()));
        assert_eq!(r(2), Ok(Some(0)));
        assert_eq!(r(7), Ok(Some(5)));
        assert_eq!(r(255), Ok(Some(253)));
        assert_eq!(
            misc_exit(Some(3), None, false),
            Err("exited with status 3".into())
        );
        assert_eq!(
            misc_exit(None, Some(9), true),
            Err("killed by signal 9".into())
        );
        st.on_result(10, r(7));
        assert_eq!((st.is_up(), st.weight()), (true, Some(5)));
        assert_eq!(st.status(10, 10).weight, Some(5));
        // A failure being retried keeps the weight; down drops it.
        st.on_result(20, r(1));
        assert_eq!((st.is_up(), st.weight()), (true, Some(5)));
        assert!(st.on_result(30, r(1)).is_some());
        assert_eq!((st.is_up(), st.weight()), (false, None));
        // Up again with the weight of the script that brought it up; exit 0 = configured.
        assert!(st.on_result(40, r(12)).is_some_and(|t| t.up));
        assert_eq!(st.weight(), Some(10));
        st.on_result(50, r(0));
        assert_eq!(st.weight(), None);
        st.on_result(60, r(2));
        assert_eq!(st.weight(), Some(0), "weight 0 is still up");
        assert!(st.is_up());
    }

    /// The issue's example: delay_loop 1 s, retry 1, delay_before_retry 0.5 s,
    /// connect_timeout 1 s. The server dies at 10.001 s, just after a probe.
    #[test]
    fn detection_time_of_a_dead_server() {
        let p = params(S, 1, 500, 1);
        let death = 10 * S + 1;
        let world = |t: u64| {
            if t < death {
                Ok(None)
            } else {
                fail("connect 198.18.0.11:80: connection refused")
            }
        };
        // Refused at once (nginx stopped): down at delay_loop + delay_before_retry.
        let mut sim = Sim::new(&p);
        sim.run_until(20 * S, world, |_| 0);
        let (down_at, t) = &sim.log[0];
        assert!(!t.up);
        assert!(
            down_at - death <= 1_500,
            "down {} ms after",
            down_at - death
        );
        // The retry times out (connect_timeout 1 s): still <= 2.5 s.
        let mut sim = Sim::new(&p);
        let mut n = 0;
        sim.run_until(20 * S, world, |r| {
            if r.is_err() {
                n += 1;
                if n == 2 {
                    return S;
                }
            }
            0
        });
        let (down_at, _) = sim.log[0];
        assert!(
            down_at - death <= 2_500,
            "down {} ms after",
            down_at - death
        );
        // Nothing answers at all: delay_loop + dbr + 2 × connect_timeout = 3.5 s at most.
        let mut sim = Sim::new(&p);
        sim.run_until(20 * S, world, |r| if r.is_err() { S } else { 0 });
        let (down_at, _) = sim.log[0];
        assert!(
            down_at - death <= 3_500,
            "down {} ms after",
            down_at - death
        );
        assert!(down_at - death > 2_500);
        // The probes: every second while up, the retry 0.5 s after the failure.
        let mut sim = Sim::new(&p);
        sim.run_until(12 * S, world, |_| 0);
        assert_eq!(&sim.probes[..3], &[0, S, 2 * S]);
        assert_eq!(&sim.probes[10..], &[10 * S, 11 * S, 11 * S + 500]);
    }

    #[test]
    fn a_server_that_comes_back_is_up_after_rise_probes() {
        let p = params(S, 1, 500, 2);
        let world = |t: u64| {
            if (5 * S..9 * S).contains(&t) {
                fail("down")
            } else {
                Ok(None)
            }
        };
        let mut sim = Sim::new(&p);
        sim.run_until(20 * S, world, |_| 0);
        let ups: Vec<_> = sim.log.iter().map(|(t, tr)| (*t, tr.up)).collect();
        // Down at 5.5 s (retry); probes at 6.5, 7.5, 8.5 fail, 9.5 and 10.5 pass: rise 2.
        assert_eq!(ups, vec![(5_500, false), (10_500, true)]);
    }

    #[test]
    fn split_command_respects_quotes_and_escapes() {
        let ok = |s: &str| split_command(s).unwrap();
        assert_eq!(ok("/bin/true"), ["/bin/true"]);
        assert_eq!(
            ok("  sh  -c   'exit 3' "),
            ["sh", "-c", "'exit", "3'"],
            "single quotes are plain characters"
        );
        assert_eq!(ok(r#"sh -c "exit 3""#), ["sh", "-c", "exit 3"]);
        assert_eq!(ok(r#"a "" b"#), ["a", "", "b"]);
        assert_eq!(ok(r#"a\ b "c\"d" e\\f"#), ["a b", "c\"d", "e\\f"]);
        assert_eq!(ok("x\t\"y z\"w"), ["x", "y zw"]);
        for bad in ["", "   ", r#"a "b"#, "a\\", "a\nb"] {
            assert!(split_command(bad).is_err(), "{bad:?}");
        }
    }
}
