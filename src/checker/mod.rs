//! The health checker: probes every real server the control plane asks for, keeps each
//! probe's health ([`rvs_control::health::ProbeState`]) and reports it back through the
//! control plane's [`HealthSink`].
//!
//! [`spawn`] starts one scheduler thread (never a worker lcore: the daemon starts it from its
//! unpinned spawner thread) and, as probes need them, up to [`Options::max_threads`] probe
//! threads. The scheduler:
//! - every [`Options::poll_ms`] compares [`HealthSink::probes_generation`] and on a change
//!   re-reads [`HealthSink::probes`]: a new key gets a state machine (and its status is
//!   reported at once: up, or down with `alpha`, `last_check_unix_ms` unset), a key gone is
//!   dropped (a probe of it still running is forgotten), a key kept keeps its state. A key is
//!   one state machine and one probe per period however many services use it;
//! - hands each due probe to the pool (the earliest due first), never two of the same key at
//!   once; probes run in parallel, so a slow one delays the others only once all threads
//!   are busy;
//! - after each probe: the state machine, then [`HealthSink::report`] with the new status, and
//!   the quorum scripts it returns go to the pool too (run like a `MISC_CHECK`, at most
//!   [`Options::quorum_timeout_ms`]), off the sink's lock;
//! - logs every up/down change at info level with its reason (and weight changes set by
//!   `misc_dynamic`); failures that are retried at debug level.
//!
//! It stops within `poll_ms` once `stop` is set; the probe threads end after their current
//! probe (a running script is killed). Probes use the kernel's sockets, so on the director
//! they go out through the kernel path on the data port.

mod http;
mod misc;
mod ping;
pub mod probe;

use rvs_control::check::{HealthSink, ProbeKey, QuorumAction};
use rvs_control::health::{ProbeResult, ProbeState};
use std::collections::{HashMap, HashSet};
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tracing::{debug, info, warn};

/// What runs one probe (the real ones: [`probe::run`]; tests inject fakes).
pub type ProbeFn = Arc<dyn Fn(&ProbeKey) -> ProbeResult + Send + Sync>;

/// The checker's knobs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Most probe threads (probes and quorum scripts running at once).
    pub max_threads: usize,
    /// How often the probe set's generation is compared (ms).
    pub poll_ms: u64,
    /// Longest run of a `quorum_up`/`quorum_down` script (ms).
    pub quorum_timeout_ms: u64,
    /// Seed of the warmup delays (`None`: from the clock).
    pub seed: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_threads: 16,
            poll_ms: 100,
            quorum_timeout_ms: 10_000,
            seed: None,
        }
    }
}

/// Starts the checker with the real probes. See the module's documentation.
pub fn spawn(
    sink: Arc<dyn HealthSink>,
    stop: Arc<AtomicBool>,
    opts: Options,
) -> io::Result<JoinHandle<()>> {
    let s = stop.clone();
    let probe: ProbeFn = Arc::new(move |k: &ProbeKey| probe::run(k, &s));
    spawn_with(sink, stop, opts, probe)
}

/// Starts the checker with `probe` running the probes.
pub fn spawn_with(
    sink: Arc<dyn HealthSink>,
    stop: Arc<AtomicBool>,
    opts: Options,
    probe: ProbeFn,
) -> io::Result<JoinHandle<()>> {
    thread::Builder::new()
        .name("rvs-checker".to_string())
        .spawn(move || Scheduler::new(sink, stop, opts, probe).run())
}

/// "HTTP_GET 198.18.0.11:80" (and " via ADDR:PORT" when connect_ip/connect_port differ).
pub fn describe(key: &ProbeKey) -> String {
    let mut s = format!("{} {}:{}", key.check.kind.name(), key.addr, key.port);
    let (ip, port) = key.target();
    if (ip, port) != (key.addr, key.port) {
        s.push_str(&format!(" via {ip}:{port}"));
    }
    s
}

enum Job {
    Probe(ProbeKey, u64),
    Command(QuorumAction),
}

enum Done {
    Probe(ProbeKey, u64, ProbeResult),
    Command,
}

struct Entry {
    st: ProbeState,
    /// Tells a result from an earlier entry of the same key (dropped and added again while
    /// its probe ran) apart.
    id: u64,
    busy: bool,
}

struct Scheduler {
    sink: Arc<dyn HealthSink>,
    stop: Arc<AtomicBool>,
    opts: Options,
    probe: ProbeFn,
    entries: HashMap<ProbeKey, Entry>,
    generation: Option<u64>,
    next_id: u64,
    rng: u64,
    epoch: Instant,
    /// Unix time (ms) at `epoch`: the statuses' times are this plus the monotonic clock, so
    /// a time once reported stays the same.
    epoch_unix_ms: u64,
    jobs: mpsc::Sender<Job>,
    job_rx: Arc<Mutex<mpsc::Receiver<Job>>>,
    done_tx: mpsc::Sender<Done>,
    done_rx: mpsc::Receiver<Done>,
    threads: usize,
    in_flight: usize,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Scheduler {
    fn new(
        sink: Arc<dyn HealthSink>,
        stop: Arc<AtomicBool>,
        opts: Options,
        probe: ProbeFn,
    ) -> Self {
        let (jobs, job_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel();
        let seed = opts.seed.unwrap_or_else(|| {
            let t = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            t ^ (u64::from(std::process::id()) << 32)
        });
        Scheduler {
            sink,
            stop,
            opts,
            probe,
            entries: HashMap::new(),
            generation: None,
            next_id: 0,
            rng: seed,
            epoch: Instant::now(),
            epoch_unix_ms: unix_ms(),
            jobs,
            job_rx: Arc::new(Mutex::new(job_rx)),
            done_tx,
            done_rx,
            threads: 0,
            in_flight: 0,
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// splitmix64.
    fn random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn run(mut self) {
        let poll = self.opts.poll_ms.max(1);
        let mut next_sync = 0;
        info!("health checker started");
        while !self.stop.load(Ordering::Relaxed) {
            let now = self.now_ms();
            if now >= next_sync {
                self.sync(now);
                next_sync = now + poll;
            }
            self.dispatch_due(now);
            let wake = self
                .entries
                .values()
                .filter(|e| !e.busy)
                .map(|e| e.st.next_due())
                .min()
                .unwrap_or(u64::MAX)
                .min(next_sync);
            let wait = wake.saturating_sub(self.now_ms()).clamp(1, poll);
            if let Ok(d) = self.done_rx.recv_timeout(Duration::from_millis(wait)) {
                self.done(d);
                while let Ok(d) = self.done_rx.try_recv() {
                    self.done(d);
                }
            }
        }
        info!(
            "health checker stopped ({} probes, {} still running)",
            self.entries.len(),
            self.in_flight
        );
    }

    /// Follows the sink's probe set when its generation moved.
    fn sync(&mut self, now: u64) {
        let g = self.sink.probes_generation();
        if self.generation == Some(g) {
            return;
        }
        self.generation = Some(g);
        let keys = self.sink.probes();
        let wanted: HashSet<&ProbeKey> = keys.iter().collect();
        let before = self.entries.len();
        self.entries.retain(|k, _| wanted.contains(k));
        let dropped = before - self.entries.len();
        let mut added = Vec::new();
        for k in &keys {
            if self.entries.contains_key(k) {
                continue;
            }
            if let Err(e) = k.check.validate() {
                warn!("{}: not checked: {e}", describe(k));
                continue;
            }
            let st = ProbeState::new(&k.check.params, now, self.random());
            let id = self.next_id;
            self.next_id += 1;
            self.entries.insert(
                k.clone(),
                Entry {
                    st,
                    id,
                    busy: false,
                },
            );
            added.push(k.clone());
        }
        info!(
            "health checks: generation {g}, {} probes ({} new, {dropped} gone)",
            self.entries.len(),
            added.len()
        );
        for k in added {
            let status = self.entries[&k].st.status(now, self.epoch_unix_ms + now);
            let actions = self.sink.report(&k, &status);
            self.run_actions(actions);
        }
    }

    fn dispatch_due(&mut self, now: u64) {
        let mut due: Vec<(u64, ProbeKey)> = self
            .entries
            .iter()
            .filter(|(_, e)| !e.busy && e.st.next_due() <= now)
            .map(|(k, e)| (e.st.next_due(), k.clone()))
            .collect();
        due.sort_by_key(|d| d.0);
        for (_, k) in due {
            let Some(e) = self.entries.get_mut(&k) else {
                continue;
            };
            e.busy = true;
            let id = e.id;
            self.submit(Job::Probe(k, id));
        }
    }

    fn submit(&mut self, job: Job) {
        if self.in_flight >= self.threads && self.threads < self.opts.max_threads.max(1) {
            self.spawn_worker();
        }
        self.in_flight += 1;
        // The receiver lives as long as the scheduler (job_rx): this cannot fail.
        let _ = self.jobs.send(job);
    }

    fn spawn_worker(&mut self) {
        let rx = self.job_rx.clone();
        let done = self.done_tx.clone();
        let probe = self.probe.clone();
        let stop = self.stop.clone();
        let quorum_ms = self.opts.quorum_timeout_ms;
        let r = thread::Builder::new()
            .name(format!("rvs-probe-{}", self.threads))
            .spawn(move || worker(&rx, &done, &probe, &stop, quorum_ms));
        match r {
            Ok(_) => self.threads += 1,
            Err(e) if self.threads == 0 => {
                warn!("health checker: no probe thread could be started: {e}")
            }
            Err(e) => debug!("health checker: probe thread not started: {e}"),
        }
    }

    fn done(&mut self, d: Done) {
        self.in_flight = self.in_flight.saturating_sub(1);
        let Done::Probe(key, id, result) = d else {
            return;
        };
        let now = self.now_ms();
        let Some(e) = self.entries.get_mut(&key) else {
            return;
        };
        if e.id != id {
            return;
        }
        e.busy = false;
        let weight_before = e.st.weight();
        let error = result.as_ref().err().cloned();
        let was_up = e.st.is_up();
        let change = e.st.on_result(now, result);
        let status = e.st.status(now, self.epoch_unix_ms + now);
        let failures = e.st.failures();
        let retry = key.check.params.retry;
        match (&change, error) {
            (Some(t), _) => info!(
                "{}: {} -> {}: {}",
                describe(&key),
                if was_up { "up" } else { "down" },
                if t.up { "up" } else { "down" },
                t.reason
            ),
            (None, Some(err)) if was_up => debug!(
                "{}: failed ({failures} of {} before down): {err}",
                describe(&key),
                retry + 1
            ),
            (None, Some(err)) => debug!("{}: still down: {err}", describe(&key)),
            (None, None) => {}
        }
        if change.is_none() && status.up && status.weight != weight_before {
            info!(
                "{}: weight {} -> {} (misc_dynamic)",
                describe(&key),
                weight_text(weight_before),
                weight_text(status.weight)
            );
        }
        let actions = self.sink.report(&key, &status);
        self.run_actions(actions);
    }

    fn run_actions(&mut self, actions: Vec<QuorumAction>) {
        for a in actions {
            info!(
                "{}: quorum {}: running {:?}",
                a.service,
                if a.up { "regained" } else { "lost" },
                a.command
            );
            self.submit(Job::Command(a));
        }
    }
}

fn weight_text(w: Option<u32>) -> String {
    w.map_or_else(|| "configured".to_string(), |w| w.to_string())
}

fn worker(
    rx: &Mutex<mpsc::Receiver<Job>>,
    done: &mpsc::Sender<Done>,
    probe: &ProbeFn,
    stop: &AtomicBool,
    quorum_ms: u64,
) {
    loop {
        let job = {
            let Ok(rx) = rx.lock() else { return };
            match rx.recv() {
                Ok(j) => j,
                Err(_) => return,
            }
        };
        let d = match job {
            Job::Probe(key, id) => {
                let r = catch_unwind(AssertUnwindSafe(|| probe(&key)))
                    .unwrap_or_else(|_| Err("the probe panicked".to_string()));
                Done::Probe(key, id, r)
            }
            Job::Command(a) => {
                let what = format!("{}: quorum_{}", a.service, if a.up { "up" } else { "down" });
                match misc::run(&a.command, quorum_ms, stop) {
                    Ok(st) if st.success() => info!("{what} {:?} done", a.command),
                    Ok(st) => warn!("{what} {:?} failed: {st}", a.command),
                    Err(e) => warn!("{what} {:?} failed: {e}", a.command),
                }
                Done::Command
            }
        };
        if done.send(d).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_control::check::{CheckKind, CheckParams, CheckSpec, ProbeStatus};
    use rvs_dataplane::model::{Protocol, ServiceKey};
    use std::net::Ipv4Addr;
    use std::sync::atomic::AtomicU64;

    type OnReport = dyn Fn(&ProbeKey, &ProbeStatus) -> Vec<QuorumAction> + Send + Sync;

    /// A control plane's stand-in: a probe list with a generation, and every report kept.
    struct FakeSink {
        generation: AtomicU64,
        keys: Mutex<Vec<ProbeKey>>,
        reports: Mutex<Vec<(Instant, ProbeKey, ProbeStatus)>>,
        on_report: Box<OnReport>,
    }

    impl FakeSink {
        fn new(keys: Vec<ProbeKey>) -> Arc<FakeSink> {
            FakeSink::with(keys, Box::new(|_, _| vec![]))
        }
        fn with(keys: Vec<ProbeKey>, on_report: Box<OnReport>) -> Arc<FakeSink> {
            Arc::new(FakeSink {
                generation: AtomicU64::new(1),
                keys: Mutex::new(keys),
                reports: Mutex::new(vec![]),
                on_report,
            })
        }
        fn set(&self, keys: Vec<ProbeKey>) {
            *self.keys.lock().unwrap() = keys;
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
        fn reports_of(&self, port: u16) -> Vec<(Instant, ProbeStatus)> {
            let r = self.reports.lock().unwrap();
            r.iter()
                .filter(|(_, k, _)| k.port == port)
                .map(|(t, _, s)| (*t, s.clone()))
                .collect()
        }
    }

    impl HealthSink for FakeSink {
        fn probes_generation(&self) -> u64 {
            self.generation.load(Ordering::SeqCst)
        }
        fn probes(&self) -> Vec<ProbeKey> {
            self.keys.lock().unwrap().clone()
        }
        fn report(&self, key: &ProbeKey, status: &ProbeStatus) -> Vec<QuorumAction> {
            self.reports
                .lock()
                .unwrap()
                .push((Instant::now(), key.clone(), status.clone()));
            (self.on_report)(key, status)
        }
    }

    /// A TCP_CHECK of 198.18.0.11:`port` with these timers (the fake probes never send it).
    fn key(port: u16, delay_loop_ms: u64, retry: u32, dbr_ms: u64) -> ProbeKey {
        ProbeKey {
            check: CheckSpec {
                kind: CheckKind::Tcp,
                params: CheckParams {
                    delay_loop_ms,
                    retry,
                    delay_before_retry_ms: dbr_ms,
                    warmup_ms: Some(0),
                    connect_timeout_ms: 1_000,
                    ..CheckParams::default()
                },
            },
            addr: Ipv4Addr::new(198, 18, 0, 11),
            port,
        }
    }

    /// Fake probes: every call recorded by port; a port in `dead` fails, `slow` takes 800 ms.
    #[derive(Default)]
    struct World {
        calls: Mutex<Vec<(u16, Instant)>>,
        dead: Mutex<HashSet<u16>>,
        slow: Mutex<HashSet<u16>>,
    }

    impl World {
        fn probe(self: &Arc<Self>) -> ProbeFn {
            let w = self.clone();
            Arc::new(move |k: &ProbeKey| {
                w.calls.lock().unwrap().push((k.port, Instant::now()));
                if w.slow.lock().unwrap().contains(&k.port) {
                    thread::sleep(Duration::from_millis(800));
                }
                if w.dead.lock().unwrap().contains(&k.port) {
                    Err(format!(
                        "connect 198.18.0.11:{}: connection refused",
                        k.port
                    ))
                } else {
                    Ok(None)
                }
            })
        }
        fn calls(&self, port: u16) -> usize {
            self.calls
                .lock()
                .unwrap()
                .iter()
                .filter(|c| c.0 == port)
                .count()
        }
    }

    fn opts() -> Options {
        Options {
            poll_ms: 20,
            seed: Some(1),
            ..Options::default()
        }
    }

    struct Running {
        stop: Arc<AtomicBool>,
        handle: Option<JoinHandle<()>>,
    }

    impl Drop for Running {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::SeqCst);
            if let Some(h) = self.handle.take() {
                let _ = h.join();
            }
        }
    }

    fn start(sink: &Arc<FakeSink>, world: &Arc<World>) -> Running {
        let stop = Arc::new(AtomicBool::new(false));
        let handle = spawn_with(sink.clone(), stop.clone(), opts(), world.probe()).unwrap();
        Running {
            stop,
            handle: Some(handle),
        }
    }

    #[test]
    fn one_key_listed_for_several_services_is_one_probe() {
        let k1 = key(1, 100, 1, 50);
        let k2 = key(2, 100, 1, 50);
        // k1 is used by three services: the sink lists it three times.
        let sink = FakeSink::new(vec![k1.clone(), k1.clone(), k2, k1]);
        let world = Arc::new(World::default());
        let run = start(&sink, &world);
        thread::sleep(Duration::from_millis(560));
        drop(run);
        let (c1, c2) = (world.calls(1), world.calls(2));
        // Due at 0, 100, ..., 500: six each (a loaded machine may lose one).
        assert!((5..=7).contains(&c1), "k1 probed {c1} times");
        assert!(c1.abs_diff(c2) <= 1, "k1 {c1}, k2 {c2}");
        // One report per probe, plus the first (not checked yet).
        assert_eq!(sink.reports_of(1).len(), c1 + 1);
        let first = &sink.reports_of(1)[0].1;
        assert!(first.up && first.last_check_unix_ms.is_none(), "{first:?}");
    }

    #[test]
    fn generation_changes_add_drop_and_keep_probes() {
        let k1 = key(1, 100, 0, 50);
        let k2 = key(2, 100, 0, 50);
        let k3 = key(3, 100, 0, 50);
        let world = Arc::new(World::default());
        world.dead.lock().unwrap().insert(1);
        let sink = FakeSink::new(vec![k1.clone(), k2]);
        let _run = start(&sink, &world);
        thread::sleep(Duration::from_millis(250));
        let down = sink.reports_of(1).last().unwrap().1.clone();
        assert!(!down.up, "{down:?}");
        // k2 goes, k3 comes, k1 stays.
        sink.set(vec![k3, k1.clone()]);
        thread::sleep(Duration::from_millis(60));
        let k2_calls = world.calls(2);
        let k1_reports = sink.reports_of(1).len();
        thread::sleep(Duration::from_millis(300));
        assert_eq!(world.calls(2), k2_calls, "k2 is no longer probed");
        assert!(world.calls(3) >= 2, "k3 is probed");
        let after = sink.reports_of(1);
        assert!(after.len() > k1_reports, "k1 is still probed");
        for (_, s) in &after[k1_reports..] {
            assert!(!s.up, "k1 keeps its state");
            assert_eq!(s.since_unix_ms, down.since_unix_ms, "k1 keeps its state");
            assert!(s.last_check_unix_ms.is_some(), "k1 was not started again");
        }
        // The same generation again changes nothing; a new key comes up at once.
        let k3_reports = sink.reports_of(3);
        assert!(k3_reports[0].1.last_check_unix_ms.is_none());
    }

    /// delay_loop 200 ms, retry 1, delay_before_retry 100 ms: a server that dies is down
    /// within delay_loop + delay_before_retry (+ scheduling slack), and back on the first
    /// success after it returns.
    #[test]
    fn detection_time_follows_the_timers() {
        let k = key(7, 200, 1, 100);
        let sink = FakeSink::new(vec![k]);
        let world = Arc::new(World::default());
        let _run = start(&sink, &world);
        thread::sleep(Duration::from_millis(250));
        let died = Instant::now();
        world.dead.lock().unwrap().insert(7);
        let down_at = wait_for(&sink, 7, false, Duration::from_secs(2));
        let took = down_at - died;
        assert!(
            took <= Duration::from_millis(300 + 120),
            "down after {took:?}"
        );
        assert!(
            took >= Duration::from_millis(100),
            "down after {took:?}: no retry?"
        );
        // The failure before it was retried 100 ms later, not 200.
        let calls: Vec<Instant> = world
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.1 > died)
            .map(|c| c.1)
            .collect();
        let gap = calls[1] - calls[0];
        assert!(
            gap >= Duration::from_millis(95) && gap < Duration::from_millis(180),
            "retry after {gap:?}"
        );
        let back = Instant::now();
        world.dead.lock().unwrap().remove(&7);
        let up_at = wait_for(&sink, 7, true, Duration::from_secs(2));
        assert!(up_at - back <= Duration::from_millis(200 + 120));
    }

    fn wait_for(sink: &FakeSink, port: u16, up: bool, limit: Duration) -> Instant {
        let t = Instant::now();
        loop {
            if let Some((at, _)) = sink
                .reports_of(port)
                .into_iter()
                .find(|(at, s)| s.up == up && *at >= t)
            {
                return at;
            }
            assert!(t.elapsed() < limit, "port {port} never went up={up}");
            thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_slow_probe_does_not_delay_the_others() {
        let world = Arc::new(World::default());
        world.slow.lock().unwrap().insert(1);
        let sink = FakeSink::new(vec![key(1, 100, 1, 50), key(2, 100, 1, 50)]);
        let run = start(&sink, &world);
        thread::sleep(Duration::from_millis(1_000));
        drop(run);
        assert!(
            world.calls(2) >= 8,
            "fast probe ran {} times",
            world.calls(2)
        );
        assert!(
            world.calls(1) <= 2,
            "slow probe ran {} times",
            world.calls(1)
        );
    }

    /// The quorum script the sink asks for runs in the pool: the scheduler goes on probing
    /// while it runs (it sleeps 300 ms first), then it has done its work.
    #[test]
    fn quorum_actions_run_off_the_sink() {
        let dir = tempfile::tempdir().unwrap();
        let flag = dir.path().join("quorum-down");
        let cmd = format!(r#"sh -c "sleep 0.3; touch {}""#, flag.display());
        let sink = FakeSink::with(
            vec![key(1, 50, 0, 50), key(2, 50, 0, 50)],
            Box::new(move |k, s| {
                if k.port == 1 && !s.up && s.last_check_unix_ms.is_some() {
                    vec![QuorumAction {
                        service: ServiceKey {
                            proto: Protocol::Tcp,
                            vip: Ipv4Addr::new(198, 18, 0, 100),
                            port: 80,
                        },
                        up: false,
                        command: cmd.clone(),
                    }]
                } else {
                    vec![]
                }
            }),
        );
        let world = Arc::new(World::default());
        world.dead.lock().unwrap().insert(1);
        let _run = start(&sink, &world);
        let down = wait_for(&sink, 1, false, Duration::from_secs(2));
        let calls_then = world.calls(2);
        thread::sleep(Duration::from_millis(200));
        assert!(!flag.exists(), "the script sleeps first");
        assert!(world.calls(2) >= calls_then + 2, "probing went on");
        while !flag.exists() {
            assert!(
                down.elapsed() < Duration::from_secs(3),
                "quorum script never ran"
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn alpha_reports_down_before_any_probe_and_stop_ends_it() {
        let mut k = key(4, 100, 1, 50);
        k.check.params.alpha = true;
        k.check.params.warmup_ms = Some(10_000);
        let sink = FakeSink::new(vec![k]);
        let world = Arc::new(World::default());
        let run = start(&sink, &world);
        thread::sleep(Duration::from_millis(100));
        let r = sink.reports_of(4);
        assert_eq!(r.len(), 1);
        assert!(!r[0].1.up && r[0].1.reason.contains("alpha"));
        assert_eq!(world.calls(4), 0, "still in its warmup");
        let t = Instant::now();
        drop(run);
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
    }

    #[test]
    fn describe_names_the_check_and_its_target() {
        let mut k = key(80, 1, 1, 1);
        assert_eq!(describe(&k), "TCP_CHECK 198.18.0.11:80");
        k.check.params.connect_port = Some(8080);
        assert_eq!(
            describe(&k),
            "TCP_CHECK 198.18.0.11:80 via 198.18.0.11:8080"
        );
    }
}
