//! The engine: EAL, port, workers on lcores, the control thread, and an orderly stop.
//!
//! Each worker owns one rx/tx queue pair and runs to completion: receive a burst, decide every
//! frame in place with the pure [`pipeline`](rvs_dataplane::pipeline), transmit the burst (whatever the
//! NIC did not take is freed and counted), and every millisecond do a little housekeeping (flow
//! expiry, ARP requests). Workers pick up new snapshots between bursts; they never lock, allocate
//! or make a syscall on this path. With the kernel path on, frames for the kernel are moved into
//! the worker's bounded ring to the kernel-path thread ([`crate::kernel`]), which also sends the
//! kernel's frames on the data port's last tx queue.

use crate::adapter::Adapter;
use crate::config::{Config, VipOtherPorts, MBUF_CACHE, MBUF_DATA_ROOM};
use crate::dpdk::{
    self, Burst, Eal, IpCsum, LcoreId, Mempool, Port, PortConfig, PortId, Queue, BURST,
};
use crate::kernel::{self, DataTx, KernelIf, KernelThread, Ring};
use rvs_control::ha::{HaSink, SyncLink};
use rvs_control::server::{self as control, Control, RpcError};
use rvs_dataplane::flow::Timeouts;
use rvs_dataplane::model::{Model, ModelError, StaticNeighbour};
use rvs_dataplane::pipeline::{
    DropReason, Frames, KernelPath, RxCsum, Verdict, Worker, WorkerConfig,
};
use rvs_dataplane::report::PublishError;
use rvs_dataplane::snapshot::{Behaviour, Shared};
use rvs_dataplane::sync::SyncRings;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Why the engine could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("DPDK: {0}")]
    Dpdk(#[from] dpdk::DpdkError),
    #[error("cannot install signal handler: {0}")]
    Signal(#[source] std::io::Error),
    #[error("configuration: worker lcore {lcore} is not enabled in the EAL arguments (enabled: {enabled:?}); add it to -l")]
    LcoreNotEnabled { lcore: u32, enabled: Vec<u32> },
    #[error("configuration: port {port} does not exist: DPDK found {found} port(s); check the -a/--vdev EAL arguments")]
    NoSuchPort { port: u16, found: u16 },
    #[error("configuration: {0} workers are too many")]
    TooManyWorkers(usize),
    #[error("configuration: static neighbour: {0}")]
    StaticNeighbour(#[source] ModelError),
    #[error("control socket {path}: {err}")]
    Socket { path: PathBuf, err: std::io::Error },
    #[error("rules file {path}: {err}")]
    RulesFile { path: PathBuf, err: std::io::Error },
    #[error("rules file {path}: {err}")]
    Rules { path: PathBuf, err: RpcError },
    #[error(transparent)]
    Keepalived(#[from] crate::keepalived::KeepalivedError),
    #[error("publishing the initial configuration: {0}")]
    Publish(#[from] PublishError),
    #[error("worker on lcore {lcore} failed: {msg}")]
    Worker { lcore: u32, msg: String },
    #[error("{0}")]
    Kernel(#[from] kernel::KernelError),
    #[error("configuration: {0}")]
    Ha(String),
    #[error("cannot start the {name} thread: {err}")]
    Thread {
        name: &'static str,
        err: std::io::Error,
    },
}

/// How often at most the neighbour table's refusals and MAC changes are logged.
const NEIGH_LOG_EVERY_MS: u64 = 10_000;

/// Log what the neighbour table refused, kept or followed (ARP spoofing protection) until
/// `stop`: a line at most every [`NEIGH_LOG_EVERY_MS`], with the counts since the last one.
/// A thread of its own, since workers never log.
fn log_neighbour_events(shared: &Shared, stop: &AtomicBool) {
    let start = std::time::Instant::now();
    let mut log = rvs_dataplane::neigh::EventLog::default();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(500));
        let now_ms = start.elapsed().as_millis() as u64;
        if let Some(line) = log.poll(&shared.neigh, now_ms, NEIGH_LOG_EVERY_MS) {
            if line.new.refused + line.new.conflicts > 0 {
                tracing::warn!("{line}");
            } else {
                tracing::info!("{line}");
            }
        }
    }
}

/// The rings that carry a sync peer's flows to the workers. Each flow goes to the worker whose
/// rx queue the NIC will give its frames after a takeover: the port's own RSS key and
/// redirection table, read from the device, decide (worker i polls rx queue i). With one
/// worker there is nothing to decide; a device that cannot report its RSS setup gets a copy
/// of each flow in every worker (correct, at the cost of memory), and says so in the log.
fn sync_rings(port: &Port, workers: usize, ring: usize) -> SyncRings {
    let rings = SyncRings::new(workers, ring);
    if workers < 2 {
        return rings;
    }
    match port.rss_setup() {
        Ok(Some(s)) => {
            tracing::info!(
                reta = s.reta.len(),
                key_bytes = s.key.len(),
                tcp_ports = s.tcp_ports,
                udp_ports = s.udp_ports,
                "connection sync installs each flow in the worker its RSS queue names"
            );
            rings.with_router(rvs_dataplane::rss::router(rvs_dataplane::rss::Rss {
                key: s.key,
                reta: s.reta,
                tcp_ports: s.tcp_ports,
                udp_ports: s.udp_ports,
            }))
        }
        Ok(None) => {
            tracing::warn!("the port does not spread by RSS: synced flows go to every worker");
            rings
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the port's RSS setup: synced flows go to every worker");
            rings
        }
    }
}

/// Command-line overrides of the configuration file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub socket: Option<PathBuf>,
    pub rules: Option<PathBuf>,
    /// The configuration file (read again on SIGHUP; without it SIGHUP reloads nothing).
    pub config: Option<PathBuf>,
}

/// Start everything described by `cfg` and run until SIGINT/SIGTERM.
pub fn run(cfg: Config, ov: Overrides) -> Result<(), EngineError> {
    // SIGINT/SIGTERM ask for a stop (`term`); the stopper thread lets the HA threads say
    // goodbye (a VRRP master's priority-0 advert) while the kernel path still runs, then sets
    // `stop` for everything else.
    let term = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&term)).map_err(EngineError::Signal)?;
    }
    // SIGHUP asks for a reload (crate::reload), done by the service thread.
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hup))
        .map_err(EngineError::Signal)?;

    // EAL pins the calling thread to the main lcore, and threads inherit that. The control
    // thread must not share a core with a busy-polling worker, so it is started from a thread
    // created before EAL init, which keeps the process's original CPU set.
    let unpinned = Unpinned::spawn();

    let mut args = vec!["rvs".to_string()];
    args.extend(cfg.eal.args.iter().cloned());
    let eal = Eal::init(&args)?;

    let lcores = cfg.workers.lcores.clone();
    let enabled: Vec<u32> = eal.lcores().iter().map(|l| l.0).collect();
    for l in &lcores {
        if !enabled.contains(l) {
            return Err(EngineError::LcoreNotEnabled { lcore: *l, enabled });
        }
    }
    let ports = eal.port_count();
    if cfg.port.id >= ports {
        return Err(EngineError::NoSuchPort {
            port: cfg.port.id,
            found: ports,
        });
    }
    let nq = u16::try_from(lcores.len()).map_err(|_| EngineError::TooManyWorkers(lcores.len()))?;

    let kcfg = &cfg.kernel;
    // The kernel path's own tx queue on the data port (the last one), but where the driver's
    // queues are fanout pairs (net_af_packet) or it has no spare one: there worker 0 sends the
    // kernel's frames.
    let mut via_worker = false;
    let tx_queues = if kcfg.enabled {
        let need = nq.saturating_add(1);
        let (driver, _, max) = dpdk::max_queues(PortId(cfg.port.id))?;
        via_worker = kernel::shares_worker_tx(&driver) || max < need;
        if via_worker {
            if max < need && !kernel::shares_worker_tx(&driver) {
                tracing::info!(
                    port = cfg.port.id,
                    %driver,
                    max_tx_queues = max,
                    "no spare tx queue for the kernel path: worker 0 sends the kernel's frames"
                );
            }
            nq
        } else {
            need
        }
    } else {
        nq
    };

    let mut n_mbufs = cfg.port.pool_mbufs(lcores.len());
    if kcfg.enabled {
        // Every worker's ring full, the kernel interface's rings, and the thread's burst.
        let extra = u64::from(kcfg.ring_size) * lcores.len() as u64
            + 2 * u64::from(kernel::KERNEL_DESCRIPTORS)
            + 2 * dpdk::BURST as u64;
        n_mbufs = u32::try_from(u64::from(n_mbufs) + extra).unwrap_or(u32::MAX);
    }
    let pool = Arc::new(Mempool::create(
        "rvs_mbufs",
        n_mbufs,
        MBUF_CACHE,
        MBUF_DATA_ROOM,
        -1,
    )?);

    let pconf = PortConfig {
        rx_queues: nq,
        tx_queues,
        rx_desc: cfg.port.rx_descriptors,
        tx_desc: cfg.port.tx_descriptors,
        rss: nq > 1,
        promiscuous: cfg.port.promiscuous,
    };
    let mut port = Port::configure(PortId(cfg.port.id), &pconf, &pool)?;
    port.start()?;
    let mac = port.mac();
    tracing::info!(
        port = cfg.port.id,
        driver = %port.driver_name(),
        mac = %rvs_dataplane::report::MacAddr(mac),
        queues = nq,
        mbufs = n_mbufs,
        rx_ip_checksum = if port.rx_ip_cksum() { "nic" } else { "software" },
        "port started"
    );

    // The director's own addresses, for the checks the control socket makes.
    let director = rvs_control::proto::Director {
        dip: cfg.network.dip,
        prefix_len: cfg.network.prefix_len,
        mac,
    };
    // keepalived.conf is read before anything is published: its VRRP instances decide which
    // VIPs start in standby.
    let keepalived = match &cfg.rules.keepalived {
        Some(path) => Some(crate::keepalived::load(
            path,
            &director,
            cfg.tables.max_services,
            cfg.tables.max_servers,
        )?),
        None => None,
    };
    let own_ha = cfg.ha().map_err(|e| EngineError::Ha(e.to_string()))?;
    let ha = crate::ha::merge(own_ha, keepalived.as_ref().map(|k| &k.conf.ha))
        .map_err(EngineError::Ha)?;
    if !ha.instances.is_empty() && !kcfg.enabled {
        return Err(EngineError::Ha(
            "VRRP and connection sync run over the kernel path: set [kernel] enabled = true".into(),
        ));
    }
    // The rings carry connection sync's records, and the flow tables saved across a restart
    // ([state] flows), which use the same dump and install machinery.
    let sync_rings = match (&ha.sync, &cfg.state.flows) {
        (Some(s), _) => Some(Arc::new(sync_rings(&port, lcores.len(), s.ring))),
        (None, Some(_)) => Some(Arc::new(sync_rings(&port, lcores.len(), 16384))),
        (None, None) => None,
    };

    let mut shared = Shared::new(
        cfg.tables.max_services,
        cfg.tables.max_servers,
        cfg.tables.neighbours,
        lcores.len(),
        mac,
        cfg.network.dip,
        cfg.network.prefix_len,
    )
    .with_persistence(cfg.tables.persistence as usize)
    .with_vlan(cfg.network.vlan_id())
    .with_settings(
        Timeouts::default().with_settable(cfg.timeouts),
        Behaviour {
            expire_nodest_conn: cfg.dataplane.expire_nodest_conn,
            sloppy_tcp: cfg.dataplane.sloppy_tcp,
            vip_other_ports_to_kernel: kcfg.enabled
                && kcfg.vip_other_ports == VipOtherPorts::Kernel,
        },
    );
    if let Some(r) = &sync_rings {
        shared = shared.with_sync(Arc::clone(r));
    }
    let shared = Arc::new(shared);

    let mut model = Model::new(cfg.tables.max_services, cfg.tables.max_servers);
    // Every VRRP instance's VIPs start in standby: not answered for, not forwarded, until the
    // instance becomes master.
    let vrrp_vips: Vec<std::net::Ipv4Addr> = ha
        .instances
        .iter()
        .flat_map(|i| i.vips.iter().copied())
        .collect();
    model.set_vips_master(&vrrp_vips, false);
    // The configuration's static neighbours pass the same checks as the control socket's
    // (the port's own MAC, group and zero MACs, the DIP and off-link addresses refused).
    for n in &cfg.neighbours {
        let st = StaticNeighbour {
            addr: n.addr,
            mac: n.mac.0,
        };
        director
            .check_static(&st)
            .and_then(|()| model.set_static_neighbour(st))
            .map_err(EngineError::StaticNeighbour)?;
    }
    shared.publish(&model)?;
    let dp = Arc::new(
        Adapter::new(Arc::clone(&shared), port.id(), lcores.clone()).with_pool(pool.watch()),
    );
    let control = Arc::new(Control::new(model, dp).with_build(crate::BUILD));

    if let Some(path) = ov.rules.clone().or_else(|| cfg.rules.file.clone()) {
        // A missing rules file is an empty rule set (an install ships an empty one; the
        // services may come from the socket or keepalived.conf).
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(path = %path.display(), "rules file missing: starting with no rules from it");
                String::new()
            }
            Err(err) => {
                return Err(EngineError::RulesFile {
                    path: path.clone(),
                    err,
                })
            }
        };
        let n = control
            .apply_rules(&text)
            .map_err(|err| EngineError::Rules {
                path: path.clone(),
                err,
            })?;
        tracing::info!(path = %path.display(), commands = n, "rules loaded");
    }
    if let (Some(path), Some(loaded)) = (&cfg.rules.keepalived, &keepalived) {
        for d in loaded.unsupported() {
            tracing::warn!("{d}");
        }
        let n = crate::keepalived::apply(&control, loaded)?;
        tracing::info!(
            path = %path.display(),
            services = n,
            real_servers = loaded.server_count(),
            not_supported = loaded.unsupported().len(),
            "keepalived configuration loaded"
        );
    }

    let socket = ov
        .socket
        .clone()
        .unwrap_or_else(|| cfg.control.socket.clone());
    let ctl_thread = {
        let (socket, control, stop) = (socket.clone(), Arc::clone(&control), Arc::clone(&stop));
        unpinned.run(move || control::serve(&socket, control, stop))
    }
    .map_err(|err| EngineError::Socket {
        path: socket.clone(),
        err,
    })?;
    tracing::info!(socket = %socket.display(), "control socket listening");
    // The Prometheus endpoint ([metrics] listen; validated with the configuration).
    let metrics = match cfg.metrics.listen_addr().ok().flatten() {
        Some(addr) => {
            let src = crate::metrics::Source::new(
                Arc::clone(&control),
                port.id(),
                cfg.tables.flows_per_worker,
            );
            let stop = Arc::clone(&stop);
            let h = unpinned.run(move || crate::metrics::spawn(addr, src, stop));
            Some(h.map_err(|err| EngineError::Thread {
                name: "metrics",
                err,
            })?)
        }
        None => None,
    };
    let neigh_log = {
        let (shared, stop) = (Arc::clone(&shared), Arc::clone(&stop));
        unpinned.run(move || {
            std::thread::Builder::new()
                .name("rvs-neigh-log".to_string())
                .spawn(move || log_neighbour_events(&shared, &stop))
        })
    }
    .map_err(|err| EngineError::Thread {
        name: "neighbour log",
        err,
    })?;

    // The kernel interface and the thread that feeds it (after the data port: its id stays).
    let mut kernel_if = None;
    let mut rings: Vec<Option<Arc<Ring>>> = vec![None; lcores.len()];
    let mut kernel_thread = None;
    let mut kernel_out = None;
    if kcfg.enabled {
        let kif = KernelIf::open(
            &eal,
            kcfg,
            mac,
            cfg.network.dip,
            cfg.network.prefix_len,
            &pool,
        )?;
        tracing::info!(
            iface = %kif.name,
            driver = ?kif.driver,
            port = kif.port.id().0,
            dip = %cfg.network.dip,
            rate_pps = kcfg.rate_pps,
            ring_size = kcfg.ring_size,
            "kernel interface up"
        );
        let all: Vec<Arc<Ring>> = (0..lcores.len())
            .map(|_| Arc::new(Ring::new(kcfg.ring_size as usize)))
            .collect();
        for (slot, r) in rings.iter_mut().zip(&all) {
            *slot = Some(Arc::clone(r));
        }
        let data_tx = if via_worker {
            let r = Arc::new(Ring::new(kcfg.ring_size as usize));
            kernel_out = Some(Arc::clone(&r));
            DataTx::Worker(r)
        } else {
            DataTx::Queue(port.tx_queue(nq)?)
        };
        let job = KernelThread::new(
            all,
            kif.port.queue(0),
            data_tx,
            shared.stats.kernel_handle(),
            Arc::clone(&stop),
        )
        .with_vlan(shared.vlan());
        kernel_thread = Some(
            unpinned
                .run(move || {
                    std::thread::Builder::new()
                        .name("rvs-kernel".to_string())
                        .spawn(move || job.run())
                })
                .map_err(|err| EngineError::Thread {
                    name: "kernel path",
                    err,
                })?,
        );
        kernel_if = Some(kif);
    }
    let kernel_rate = KernelPath::per_worker(kcfg.rate_pps, lcores.len());

    // VRRP and sync, on the kernel interface (which exists by now).
    let ha_stop = Arc::new(AtomicBool::new(false));
    let mut ha_threads = Vec::new();
    if !ha.instances.is_empty() {
        let link = ha.sync.as_ref().map(|_| Arc::new(SyncLink::default()));
        if let (Some(s), Some(rings), Some(link)) = (&ha.sync, &sync_rings, &link) {
            let vrid = ha
                .instances
                .iter()
                .find(|i| i.name == s.instance)
                .map_or(0, |i| i.vrid);
            let opts = crate::ha::sync::Options {
                ifname: kcfg.name.clone(),
                dip: cfg.network.dip,
                vrid,
                cfg: s.clone(),
            };
            let (rings, link, ha_stop) =
                (Arc::clone(rings), Arc::clone(link), Arc::clone(&ha_stop));
            let counters = Arc::clone(&rings);
            let (h, stats) = unpinned
                .run(move || crate::ha::sync::spawn(opts, rings, link, ha_stop))
                .map_err(|err| EngineError::Thread {
                    name: "connection sync",
                    err,
                })?;
            control.set_ha_stats(Box::new(move || {
                let mut v = crate::ha::counters_json(&counters.counters);
                if let (Some(o), Some(m)) = (v.as_object_mut(), stats.to_json().as_object()) {
                    for (k, x) in m {
                        o.insert(k.clone(), x.clone());
                    }
                }
                v
            }));
            ha_threads.push(h);
        }
        let opts = crate::ha::vrrp::Options {
            ifname: kcfg.name.clone(),
            dip: cfg.network.dip,
            ha: ha.clone(),
            link,
        };
        let sink = Arc::clone(&control) as Arc<dyn HaSink>;
        let stop = Arc::clone(&ha_stop);
        let h = unpinned
            .run(move || crate::ha::vrrp::spawn(opts, sink, stop))
            .map_err(|err| EngineError::Thread { name: "VRRP", err })?;
        ha_threads.push(h);
        tracing::info!(
            instances = ha.instances.len(),
            sync = ha.sync.is_some(),
            "VRRP running"
        );
    }
    if cfg.announce.enabled && kcfg.enabled {
        let (acfg, name, ctl, st) = (
            cfg.announce.clone(),
            kcfg.name.clone(),
            Arc::clone(&control),
            Arc::clone(&ha_stop),
        );
        let h = unpinned
            .run(move || crate::announce::spawn(acfg, name, ctl, st))
            .map_err(|err| EngineError::Thread {
                name: "announce",
                err,
            })?;
        ha_threads.push(h);
    }
    // The flow tables a graceful stop saved: handed to the workers as they start.
    let save_to = cfg
        .state
        .flows
        .clone()
        .zip(sync_rings.clone())
        .map(|(p, r)| (r, p));
    let mut feeder = None;
    if let Some((rings, path)) = &save_to {
        let t = &cfg.timeouts;
        let max_age = Duration::from_secs(u64::from(t.tcp.max(t.tcp_fin).max(t.udp)));
        match crate::flowstate::load(path, max_age) {
            Ok(Some(loaded)) => {
                let rings = Arc::clone(rings);
                let n = loaded.records.len();
                tracing::info!(path = %path.display(), flows = n, "flow tables: re-installing the saved flows");
                feeder = Some(
                    unpinned
                        .run(move || {
                            std::thread::Builder::new()
                                .name("rvs-flows-load".to_string())
                                .spawn(move || {
                                    let fed = crate::flowstate::feed(
                                        &rings,
                                        &loaded.records,
                                        Duration::from_secs(30),
                                    );
                                    tracing::info!(
                                        flows = fed,
                                        of = n,
                                        "flow tables: saved flows handed to the workers"
                                    );
                                })
                        })
                        .map_err(|err| EngineError::Thread {
                            name: "flow-table load",
                            err,
                        })?,
                );
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("flow tables: the saved table is not used: {e}"),
        }
    }
    let stopper = {
        let (term, stop, ha_stop) = (Arc::clone(&term), Arc::clone(&stop), Arc::clone(&ha_stop));
        unpinned.run(move || {
            std::thread::Builder::new()
                .name("rvs-stopper".to_string())
                .spawn(move || stopper(&term, &stop, &ha_stop, ha_threads, save_to))
        })
    }
    .map_err(|err| EngineError::Thread {
        name: "stopper",
        err,
    })?;

    // The health checker: its probes use the kernel's sockets, so they leave through the
    // kernel interface; it never runs on a worker lcore.
    let checker = {
        let (sink, stop) = (
            Arc::clone(&control) as Arc<dyn rvs_control::check::HealthSink>,
            Arc::clone(&stop),
        );
        unpinned.run(move || crate::checker::spawn(sink, stop, crate::checker::Options::default()))
    }
    .map_err(|err| EngineError::Thread {
        name: "health checker",
        err,
    })?;

    let main_lcore = eal.main_lcore();
    let mut main_worker = None;
    let mut launched = Vec::new();
    for (i, &l) in lcores.iter().enumerate() {
        let wcfg = WorkerConfig {
            worker: i as u32,
            flow_capacity: cfg.tables.flows_per_worker as usize,
            is_arp_worker: i == 0,
        };
        let mut worker = Worker::new(wcfg, Arc::clone(&shared));
        if kcfg.enabled {
            worker = worker.with_kernel_path(kernel_rate);
        }
        let queue = port.queue(i as u16);
        let mut job = WorkerLoop::new(worker, queue, Arc::clone(&pool), Arc::clone(&stop));
        if let Some(r) = rings.get_mut(i).and_then(Option::take) {
            job = job.with_kernel_ring(r);
        }
        if i == 0 {
            if let Some(r) = kernel_out.take() {
                job = job.with_kernel_out(r);
            }
        }
        if l == main_lcore.0 {
            main_worker = Some(job);
        } else {
            dpdk::remote_launch(LcoreId(l), move || job.run())?;
            launched.push(l);
        }
    }
    tracing::info!(workers = lcores.len(), "forwarding");

    // Reloads (SIGHUP) and systemd's notifications and watchdog.
    let reloader = ov
        .config
        .clone()
        .map(|config_path| crate::reload::Reloader {
            config_path,
            rules_override: ov.rules.clone(),
            running: cfg.clone(),
            ha: ha.clone(),
            director,
        });
    let service = {
        let (control, stop, term) = (Arc::clone(&control), Arc::clone(&stop), Arc::clone(&term));
        unpinned.run(move || {
            std::thread::Builder::new()
                .name("rvs-service".to_string())
                .spawn(move || service_loop(&control, reloader, &hup, &term, &stop))
        })
    }
    .map_err(|err| EngineError::Thread {
        name: "service",
        err,
    })?;
    crate::sdnotify::notify("READY=1");

    if let Some(job) = main_worker {
        job.run();
    } else {
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut result = Ok(());
    for l in launched {
        if let Err(msg) = dpdk::wait_lcore(LcoreId(l)) {
            tracing::error!(lcore = l, %msg, "worker failed");
            result = Err(EngineError::Worker { lcore: l, msg });
        }
    }
    let _ = stopper.join();
    let _ = service.join();
    if let Some(f) = feeder {
        let _ = f.join();
    }
    let _ = ctl_thread.join();
    let _ = neigh_log.join();
    let _ = checker.join();
    if let Some(t) = metrics {
        let _ = t.join();
    }
    if let Some(t) = kernel_thread {
        let _ = t.join();
    }
    // The rings (with any frame left in them) went with the workers and the kernel thread.
    drop(kernel_if);
    let _ = std::fs::remove_file(&socket);
    tracing::info!("stopped");
    drop(port);
    drop(pool);
    drop(eal);
    result
}

/// The service thread: a reload on each SIGHUP (`hup`), systemd's watchdog pings while the
/// control plane answers, and `STOPPING=1` when a stop is asked for; until `stop`.
fn service_loop(
    control: &Control,
    mut reloader: Option<crate::reload::Reloader>,
    hup: &AtomicBool,
    term: &AtomicBool,
    stop: &AtomicBool,
) {
    let watchdog = crate::sdnotify::watchdog_from_env();
    let mut last_ping = std::time::Instant::now();
    let mut stopping = false;
    while !stop.load(Ordering::Relaxed) {
        if !stopping && term.load(Ordering::Relaxed) {
            stopping = true;
            crate::sdnotify::notify("STOPPING=1");
        }
        if hup.swap(false, Ordering::AcqRel) && !stopping {
            crate::sdnotify::notify("RELOADING=1");
            match reloader.as_mut() {
                Some(r) => match r.reload(control) {
                    Ok(rep) => {
                        tracing::info!(
                            rules = rep.rules,
                            applied = ?rep.applied,
                            "reloaded"
                        );
                        if !rep.needs_restart.is_empty() {
                            tracing::warn!(
                                sections = ?rep.needs_restart,
                                "reload: these changed but take effect only at the next start; they run as before"
                            );
                        }
                    }
                    Err(e) => tracing::error!("reload failed, nothing changed: {e}"),
                },
                None => tracing::warn!("SIGHUP: no configuration file to reload"),
            }
            crate::sdnotify::notify("READY=1");
        }
        if let Some(every) = watchdog {
            if last_ping.elapsed() >= every {
                // The model lock answers: the control plane is not stuck.
                let _ = control.model();
                crate::sdnotify::notify("WATCHDOG=1");
                last_ping = std::time::Instant::now();
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Wait for a stop request (a signal sets `term`; a failed worker sets `stop`), let the HA
/// threads finish first (a VRRP master sends its priority-0 advert through the still running
/// kernel path), save the flow tables (`[state] flows`: the workers still run and dump them),
/// then stop everything else.
fn stopper(
    term: &AtomicBool,
    stop: &AtomicBool,
    ha_stop: &AtomicBool,
    ha: Vec<std::thread::JoinHandle<()>>,
    save_to: Option<(Arc<SyncRings>, PathBuf)>,
) {
    while !term.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(20));
    }
    ha_stop.store(true, Ordering::Relaxed);
    let had_ha = !ha.is_empty();
    for h in ha {
        let _ = h.join();
    }
    if had_ha {
        // The goodbye adverts are in the kernel interface's queue: give the kernel path a
        // moment to send them.
        std::thread::sleep(Duration::from_millis(100));
    }
    // A failed worker (stop already set) cannot dump: only a requested stop saves.
    if let Some((rings, path)) = save_to.filter(|_| !stop.load(Ordering::Relaxed)) {
        let t0 = std::time::Instant::now();
        match crate::flowstate::save(&rings, &path, Duration::from_secs(10)) {
            Ok(n) => tracing::info!(
                path = %path.display(),
                flows = n,
                ms = t0.elapsed().as_millis() as u64,
                "flow tables saved"
            ),
            Err(e) => tracing::error!(path = %path.display(), "flow tables not saved: {e}"),
        }
    }
    stop.store(true, Ordering::Relaxed);
}

/// A thread started before EAL init (so not pinned to the main lcore) that spawns threads on
/// request; they inherit its CPU set.
struct Unpinned {
    jobs: std::sync::mpsc::Sender<Box<dyn FnOnce() + Send>>,
}

impl Unpinned {
    fn spawn() -> Unpinned {
        let (tx, rx) = std::sync::mpsc::channel::<Box<dyn FnOnce() + Send>>();
        std::thread::Builder::new()
            .name("rvs-spawner".to_string())
            .spawn(move || {
                for job in rx {
                    job();
                }
            })
            .expect("spawning a thread at start-up");
        Unpinned { jobs: tx }
    }

    /// Run `f` on the unpinned thread and return its result.
    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        let job: Box<dyn FnOnce() + Send> = Box::new(move || {
            let _ = tx.send(f());
        });
        self.jobs.send(job).expect("spawner thread alive");
        rx.recv().expect("spawner thread answered")
    }
}

/// Everything one worker owns: its pipeline state, its queue pair, the pool for the frames it
/// originates (ARP), and the flag that stops it.
pub struct WorkerLoop {
    worker: Worker,
    queue: Queue,
    pool: Arc<Mempool>,
    stop: Arc<AtomicBool>,
    /// This worker's queue to the kernel-path thread (frames given [`Verdict::Kernel`]).
    kernel: Option<Arc<Ring>>,
    /// The kernel's frames this worker sends on its tx queue (net_af_packet, worker 0).
    kernel_out: Option<Arc<Ring>>,
}

impl WorkerLoop {
    pub fn new(worker: Worker, queue: Queue, pool: Arc<Mempool>, stop: Arc<AtomicBool>) -> Self {
        WorkerLoop {
            worker,
            queue,
            pool,
            stop,
            kernel: None,
            kernel_out: None,
        }
    }

    /// This worker also sends the kernel's frames found in `ring` (see [`crate::kernel`]).
    pub fn with_kernel_out(mut self, ring: Arc<Ring>) -> Self {
        self.kernel_out = Some(ring);
        self
    }

    /// Frames given [`Verdict::Kernel`] are moved into `ring` (a full ring: freed and counted
    /// as `exception_full`). Without a ring they are freed and counted the same way.
    pub fn with_kernel_ring(mut self, ring: Arc<Ring>) -> Self {
        self.kernel = Some(ring);
        self
    }

    /// Run to completion until `stop` is set (checked every 64 ms).
    pub fn run(mut self) {
        let per_ms = (dpdk::tsc_hz() / 1000).max(1);
        let mut burst = Burst::new();
        let mut out = Burst::new();
        let mut verdicts = [Verdict::Consumed; BURST];
        let mut last_ms = 0u64;
        let mut loops = 0u32;
        loop {
            self.worker.refresh();
            let n = self.queue.rx_burst(&mut burst);
            let now_ms = dpdk::tsc() / per_ms;
            if n > 0 {
                self.worker.count_rx(n as u64);
                // Each frame is parsed and hashed once, its flow-table lines asked for a few
                // frames ahead of its decision (see `Worker::process_burst`).
                let verdicts = &mut verdicts[..n.min(BURST)];
                self.worker.process_burst(&mut burst, verdicts, now_ms);
                let mut full = 0u64;
                for (i, v) in verdicts.iter().enumerate() {
                    match v {
                        Verdict::Consumed | Verdict::Drop(_) => burst.free(i),
                        Verdict::Kernel => {
                            let handed = match (&self.kernel, burst.take(i)) {
                                (Some(ring), Some(m)) => ring.push(m).is_ok(),
                                _ => false,
                            };
                            full += u64::from(!handed);
                        }
                        Verdict::Forward | Verdict::Reply => {}
                    }
                }
                if full > 0 {
                    self.worker.count_kernel_full(full);
                }
                self.transmit(&mut burst);
            }
            if let Some(ring) = &self.kernel_out {
                while out.len() < BURST {
                    let Some(m) = ring.pop() else { break };
                    if out.push(m).is_err() {
                        break;
                    }
                }
                self.transmit(&mut out);
            }
            if now_ms != last_ms {
                last_ms = now_ms;
                self.housekeeping(now_ms, &mut out);
                loops = loops.wrapping_add(1);
                if loops % 64 == 0 && self.stop.load(Ordering::Relaxed) {
                    break;
                }
            }
        }
    }

    fn transmit(&mut self, burst: &mut Burst) {
        if burst.is_empty() {
            return;
        }
        let (sent, unsent) = self.queue.tx_burst(burst);
        self.worker.count_tx(sent as u64);
        if unsent > 0 {
            self.worker.count_drop(DropReason::TxFull, unsent as u64);
        }
    }

    /// Flow expiry and, on the ARP worker, ARP requests and gratuitous ARPs, built in fresh mbufs.
    fn housekeeping(&mut self, now_ms: u64, out: &mut Burst) {
        let pool = &self.pool;
        let mut frames = [[0u8; 64]; 8];
        let n = self.worker.housekeeping(now_ms, &mut frames);
        for f in frames.iter().take(n) {
            let Some(mut m) = pool.alloc() else {
                self.worker.count_drop(DropReason::NoMbuf, 1);
                continue;
            };
            if !m.set_len(f.len()) {
                continue;
            }
            m.data_mut().copy_from_slice(f);
            if out.push(m).is_err() {
                break;
            }
        }
        self.transmit(out);
    }
}

/// The engine's mbuf burst as the pipeline's frames (slot `i`: the data of mbuf `i`).
impl Frames for Burst {
    #[inline]
    fn count(&self) -> usize {
        self.len()
    }
    #[inline]
    fn frame(&self, i: usize) -> Option<&[u8]> {
        self.data(i)
    }
    #[inline]
    fn frame_mut(&mut self, i: usize) -> Option<&mut [u8]> {
        self.data_mut(i)
    }
    #[inline]
    fn ip_csum(&self, i: usize) -> RxCsum {
        match Burst::ip_csum(self, i) {
            IpCsum::Good => RxCsum::Good,
            IpCsum::Bad => RxCsum::Bad,
            IpCsum::Unknown => RxCsum::Unknown,
        }
    }
}
