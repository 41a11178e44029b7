//! Ethdev ports: [`Port`] (configure, start, counters, link), its rx/tx queue pairs ([`Queue`],
//! one per worker, with the fast-path bursts) and [`port_stats`].

use super::eal::{eal_running, LIVE_OBJECTS};
use super::mbuf::Burst;
use super::mempool::Mempool;
use super::{check, errno, lock, DpdkError, PortId, QueueId, BURST};
use dpdk_sys as sys;
use std::ffi::{c_uint, CStr};
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// How to set up a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    pub rx_queues: u16,
    pub tx_queues: u16,
    pub rx_desc: u16,
    pub tx_desc: u16,
    /// Spread flows over the rx queues by RSS (IP/TCP/UDP) when the device can and
    /// `rx_queues > 1`.
    pub rss: bool,
    pub promiscuous: bool,
}

/// Ports configured by this process (one `Port` per device).
static PORTS_IN_USE: Mutex<Vec<u16>> = Mutex::new(Vec::new());

/// What a port's `Port` and `Queue`s share; the last one dropped stops and closes the device.
struct PortShared {
    id: u16,
    queues: u16,
    taken: Mutex<Vec<bool>>,
    /// Tx queues beyond the pairs (`queues..tx_queues`), handed out as [`TxQueue`]s.
    tx_taken: Mutex<Vec<bool>>,
    started: AtomicBool,
    _pool: Mempool,
}

impl Drop for PortShared {
    fn drop(&mut self) {
        if self.started.load(Ordering::Acquire) {
            // SAFETY: the port is valid and started; no Queue is left, so nobody bursts on it.
            let ret = unsafe { sys::rte_eth_dev_stop(self.id) };
            if ret < 0 {
                tracing::warn!(port = self.id, error = %DpdkError::from_errno("eth_dev_stop", ret), "stop failed");
            }
        }
        // SAFETY: as above; the port is not used again by this process.
        let ret = unsafe { sys::rte_eth_dev_close(self.id) };
        if ret < 0 {
            tracing::warn!(port = self.id, error = %DpdkError::from_errno("eth_dev_close", ret), "close failed");
        }
        lock(&PORTS_IN_USE).retain(|&p| p != self.id);
        LIVE_OBJECTS.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A configured port. The device is stopped and closed when the `Port` and all its [`Queue`]s
/// are dropped.
pub struct Port {
    shared: Arc<PortShared>,
    promiscuous: bool,
    driver: String,
    rss: bool,
    rx_ip_cksum: bool,
    rx_desc: u16,
    tx_desc: u16,
}

impl std::fmt::Debug for Port {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Port")
            .field("id", &self.shared.id)
            .field("driver", &self.driver)
            .field("queues", &self.shared.queues)
            .field("rss", &self.rss)
            .finish()
    }
}

/// Counters the NIC (or virtual device) keeps, from `rte_eth_stats_get`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Frames received.
    pub ipackets: u64,
    /// Frames sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Frames the device dropped because the rx queues were full.
    pub imissed: u64,
    /// Erroneous frames received.
    pub ierrors: u64,
    /// Failed transmissions.
    pub oerrors: u64,
    /// Rx mbuf allocation failures.
    pub rx_nombuf: u64,
}

/// A port's receive-side scaling as the device keeps it: the Toeplitz key, the redirection
/// table (entry `hash % len` names the rx queue) and which flow types hash their ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RssSetup {
    pub key: Vec<u8>,
    pub reta: Vec<u16>,
    pub tcp_ports: bool,
    pub udp_ports: bool,
}

/// Link state from `rte_eth_link_get_nowait`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Link {
    pub up: bool,
    /// Mbit/s (0 if unknown).
    pub speed_mbps: u32,
    pub full_duplex: bool,
}

fn dev_info(id: u16) -> Result<sys::rte_eth_dev_info, DpdkError> {
    let mut info = sys::rte_eth_dev_info::default();
    // SAFETY: info is a valid, writable rte_eth_dev_info for the call.
    check("eth_dev_info_get", unsafe {
        sys::rte_eth_dev_info_get(id, &mut info)
    })?;
    Ok(info)
}

impl Port {
    /// Configures port `id` with `conf.rx_queues`/`tx_queues` queues (rx buffers from `pool`).
    /// RSS over IP/TCP/UDP (masked to what the device supports) is enabled only if `conf.rss`,
    /// `rx_queues > 1` and the device supports it; descriptor counts are clamped to the device's
    /// limits. The port is not started: call [`Port::start`].
    pub fn configure(id: PortId, conf: &PortConfig, pool: &Mempool) -> Result<Port, DpdkError> {
        const OP: &str = "eth_dev_configure";
        eal_running(OP)?;
        // SAFETY: any port id may be checked.
        if unsafe { sys::rte_eth_dev_is_valid_port(id.0) } == 0 {
            return Err(DpdkError::new(
                OP,
                errno::ENODEV,
                format!("no port {}", id.0),
            ));
        }
        {
            let mut used = lock(&PORTS_IN_USE);
            if used.contains(&id.0) {
                return Err(DpdkError::new(
                    OP,
                    errno::EBUSY,
                    format!("port {} is already configured", id.0),
                ));
            }
            used.push(id.0);
        }
        let r = Self::configure_inner(id, conf, pool);
        if r.is_err() {
            lock(&PORTS_IN_USE).retain(|&p| p != id.0);
        }
        r
    }

    fn configure_inner(id: PortId, conf: &PortConfig, pool: &Mempool) -> Result<Port, DpdkError> {
        const OP: &str = "eth_dev_configure";
        let info = dev_info(id.0)?;
        let driver = if info.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: driver_name is a NUL-terminated string owned by the driver, alive as long
            // as the driver is loaded; copied right away.
            unsafe { CStr::from_ptr(info.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        if conf.rx_queues == 0
            || conf.tx_queues == 0
            || conf.rx_queues > info.max_rx_queues
            || conf.tx_queues > info.max_tx_queues
        {
            return Err(DpdkError::new(
                OP,
                errno::EINVAL,
                format!(
                    "port {} ({driver}): {} rx / {} tx queues requested, device allows 1..={} / 1..={}",
                    id.0, conf.rx_queues, conf.tx_queues, info.max_rx_queues, info.max_tx_queues
                ),
            ));
        }

        let mut eth = sys::rte_eth_conf::default();
        // SAFETY: plain `const uint64_t` objects defined in the shim.
        let (rss_ip, rss_tcp, rss_udp, rss_hash_offload, ipv4_cksum) = unsafe {
            (
                sys::rvs_ETH_RSS_IP,
                sys::rvs_ETH_RSS_TCP,
                sys::rvs_ETH_RSS_UDP,
                sys::rvs_ETH_RX_OFFLOAD_RSS_HASH,
                sys::rvs_ETH_RX_OFFLOAD_IPV4_CKSUM,
            )
        };
        // The NIC checks IPv4 header checksums where it can (the mbuf flags tell the pipeline,
        // which otherwise sums the header itself).
        let rx_ip_cksum = info.rx_offload_capa & ipv4_cksum != 0;
        if rx_ip_cksum {
            eth.rxmode.offloads |= ipv4_cksum;
        }
        let rss_hf = (rss_ip | rss_tcp | rss_udp) & info.flow_type_rss_offloads;
        let rss = conf.rss && conf.rx_queues > 1 && rss_hf != 0;
        if rss {
            eth.rxmode.mq_mode = sys::RTE_ETH_MQ_RX_RSS;
            eth.rx_adv_conf.rss_conf.rss_key = ptr::null_mut();
            eth.rx_adv_conf.rss_conf.rss_hf = rss_hf;
            if info.rx_offload_capa & rss_hash_offload != 0 {
                eth.rxmode.offloads |= rss_hash_offload;
            }
        }
        // SAFETY: eth is a fully initialised rte_eth_conf, read during the call only.
        check(OP, unsafe {
            sys::rte_eth_dev_configure(id.0, conf.rx_queues, conf.tx_queues, &eth)
        })?;

        let mut rx_desc = conf.rx_desc;
        let mut tx_desc = conf.tx_desc;
        // SAFETY: both pointers are valid u16 in/out parameters for the call.
        check("eth_dev_adjust_nb_rx_tx_desc", unsafe {
            sys::rte_eth_dev_adjust_nb_rx_tx_desc(id.0, &mut rx_desc, &mut tx_desc)
        })?;
        // SAFETY: any valid port id.
        let socket = unsafe { sys::rte_eth_dev_socket_id(id.0) };
        // SOCKET_ID_ANY is -1, passed as unsigned as DPDK expects.
        let socket = socket as c_uint;

        let mut rxconf = info.default_rxconf;
        rxconf.offloads = eth.rxmode.offloads;
        for q in 0..conf.rx_queues {
            // SAFETY: rxconf is valid for the call; the pool outlives the queue (the Port and
            // its Queues keep a reference to it until the device is closed).
            check("eth_rx_queue_setup", unsafe {
                sys::rte_eth_rx_queue_setup(
                    id.0,
                    q,
                    rx_desc,
                    socket,
                    &rxconf,
                    pool.inner.raw.as_ptr(),
                )
            })?;
        }
        let mut txconf = info.default_txconf;
        txconf.offloads = eth.txmode.offloads;
        for q in 0..conf.tx_queues {
            // SAFETY: txconf is valid for the call.
            check("eth_tx_queue_setup", unsafe {
                sys::rte_eth_tx_queue_setup(id.0, q, tx_desc, socket, &txconf)
            })?;
        }

        let queues = conf.rx_queues.min(conf.tx_queues);
        let tx_only = usize::from(conf.tx_queues.saturating_sub(queues));
        LIVE_OBJECTS.fetch_add(1, Ordering::AcqRel);
        Ok(Port {
            shared: Arc::new(PortShared {
                id: id.0,
                queues,
                taken: Mutex::new(vec![false; usize::from(queues)]),
                tx_taken: Mutex::new(vec![false; tx_only]),
                started: AtomicBool::new(false),
                _pool: pool.clone(),
            }),
            promiscuous: conf.promiscuous,
            driver,
            rss,
            rx_ip_cksum,
            rx_desc,
            tx_desc,
        })
    }

    /// Starts the device (and enables promiscuous mode if configured; a device that does not
    /// support it is only warned about).
    pub fn start(&mut self) -> Result<(), DpdkError> {
        let id = self.shared.id;
        if !self.shared.started.load(Ordering::Acquire) {
            // SAFETY: the port is configured with all its queues set up.
            check("eth_dev_start", unsafe { sys::rte_eth_dev_start(id) })?;
            self.shared.started.store(true, Ordering::Release);
        }
        if self.promiscuous {
            // SAFETY: a valid, started port.
            let ret = unsafe { sys::rte_eth_promiscuous_enable(id) };
            if ret == -errno::ENOTSUP {
                tracing::warn!(port = id, "device does not support promiscuous mode");
            } else {
                check("eth_promiscuous_enable", ret)?;
            }
        }
        Ok(())
    }

    pub fn id(&self) -> PortId {
        PortId(self.shared.id)
    }

    /// Queue pairs usable through [`Port::queue`] (`min(rx_queues, tx_queues)`).
    pub fn queues(&self) -> u16 {
        self.shared.queues
    }

    /// Whether RSS was enabled.
    /// Whether the NIC checks received IPv4 header checksums (`RX_OFFLOAD_IPV4_CKSUM` on).
    pub fn rx_ip_cksum(&self) -> bool {
        self.rx_ip_cksum
    }

    /// The device's RSS key, redirection table and hashed flow types, or `None` when the port
    /// does not spread by RSS (one queue, or a device without it). Errors from devices that
    /// cannot report them (`-ENOTSUP`) are returned as such.
    pub fn rss_setup(&self) -> Result<Option<RssSetup>, DpdkError> {
        if !self.rss {
            return Ok(None);
        }
        let id = self.shared.id;
        let info = dev_info(id)?;
        let key_len = match info.hash_key_size {
            0 => 40,
            n => usize::from(n),
        };
        let mut key = vec![0u8; key_len];
        let mut conf = sys::rte_eth_rss_conf {
            rss_key: key.as_mut_ptr(),
            rss_key_len: key_len as u8,
            ..Default::default()
        };
        // SAFETY: conf is valid for the call and its key pointer names key_len writable bytes.
        check("eth_dev_rss_hash_conf_get", unsafe {
            sys::rte_eth_dev_rss_hash_conf_get(id, &mut conf)
        })?;
        key.truncate(usize::from(conf.rss_key_len).min(key_len));
        // SAFETY: plain `const uint64_t` objects defined in the shim.
        let (rss_tcp, rss_udp) = unsafe { (sys::rvs_ETH_RSS_TCP, sys::rvs_ETH_RSS_UDP) };
        let size = usize::from(info.reta_size);
        let groups = size.div_ceil(64);
        let mut entries = vec![sys::rte_eth_rss_reta_entry64::default(); groups];
        for (g, e) in entries.iter_mut().enumerate() {
            let n = (size - g * 64).min(64);
            e.mask = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
        }
        if size > 0 {
            // SAFETY: entries holds reta_size / 64 (rounded up) groups, each with its mask set
            // to the entries the call may write.
            check("eth_dev_rss_reta_query", unsafe {
                sys::rte_eth_dev_rss_reta_query(id, entries.as_mut_ptr(), info.reta_size)
            })?;
        }
        let reta = entries
            .iter()
            .flat_map(|e| e.reta.iter().copied())
            .take(size)
            .collect();
        Ok(Some(RssSetup {
            key,
            reta,
            tcp_ports: conf.rss_hf & rss_tcp != 0,
            udp_ports: conf.rss_hf & rss_udp != 0,
        }))
    }

    pub fn rss(&self) -> bool {
        self.rss
    }

    /// Descriptor counts after clamping to the device limits: (rx, tx).
    pub fn descriptors(&self) -> (u16, u16) {
        (self.rx_desc, self.tx_desc)
    }

    pub fn driver_name(&self) -> String {
        self.driver.clone()
    }

    /// The port's MAC address (all zero if the device cannot tell).
    pub fn mac(&self) -> [u8; 6] {
        let mut a = sys::rte_ether_addr::default();
        // SAFETY: a is a valid, writable rte_ether_addr for the call.
        let ret = unsafe { sys::rte_eth_macaddr_get(self.shared.id, &mut a) };
        if ret < 0 {
            return [0; 6];
        }
        a.addr_bytes
    }

    /// Set the port's MAC address (`rte_eth_dev_default_mac_addr_set`).
    pub fn set_mac(&self, mac: [u8; 6]) -> Result<(), DpdkError> {
        let mut a = sys::rte_ether_addr { addr_bytes: mac };
        // SAFETY: a is a valid rte_ether_addr for the call; the port is configured.
        check("eth_dev_default_mac_addr_set", unsafe {
            sys::rte_eth_dev_default_mac_addr_set(self.shared.id, &mut a)
        })
    }

    /// The port's counters, as [`port_stats`].
    pub fn stats(&self) -> Result<PortStats, DpdkError> {
        port_stats(self.id())
    }

    /// The link as [`port_link`] reads it (down when it cannot be read).
    pub fn link(&self) -> Link {
        port_link(self.id()).unwrap_or_default()
    }

    /// The rx/tx queue pair `q`, for one worker. A queue is handed out once at a time (it comes
    /// back when the `Queue` is dropped).
    ///
    /// # Panics
    /// If `q >= self.queues()` or queue `q` is already handed out (programming errors); see
    /// [`Port::try_queue`] for the non-panicking form.
    pub fn queue(&self, q: u16) -> Queue {
        match self.try_queue(q) {
            Ok(queue) => queue,
            Err(e) => panic!("{e}"),
        }
    }

    /// The rx/tx queue pair `q`, or an error if out of range or already handed out.
    pub fn try_queue(&self, q: u16) -> Result<Queue, DpdkError> {
        let mut taken = lock(&self.shared.taken);
        match taken.get_mut(usize::from(q)) {
            None => Err(DpdkError::new(
                "queue",
                errno::EINVAL,
                format!(
                    "port {} has {} queue pairs, not {q}",
                    self.shared.id, self.shared.queues
                ),
            )),
            Some(true) => Err(DpdkError::new(
                "queue",
                errno::EBUSY,
                format!("queue {q} of port {} is already in use", self.shared.id),
            )),
            Some(t) => {
                *t = true;
                Ok(Queue {
                    shared: Arc::clone(&self.shared),
                    port: self.shared.id,
                    q,
                })
            }
        }
    }
}

impl Port {
    /// Tx queue `q` alone, for a queue beyond the rx/tx pairs (`queues() <= q < tx_queues`):
    /// e.g. the kernel-path thread's queue on the data port. Handed out once at a time.
    pub fn tx_queue(&self, q: u16) -> Result<TxQueue, DpdkError> {
        let at = usize::from(q).checked_sub(usize::from(self.shared.queues));
        let mut taken = lock(&self.shared.tx_taken);
        let n = taken.len();
        match at.and_then(|i| taken.get_mut(i)) {
            None => Err(DpdkError::new(
                "tx_queue",
                errno::EINVAL,
                format!(
                    "port {} has tx-only queues {}..{}, not {q}",
                    self.shared.id,
                    self.shared.queues,
                    usize::from(self.shared.queues) + n
                ),
            )),
            Some(true) => Err(DpdkError::new(
                "tx_queue",
                errno::EBUSY,
                format!("tx queue {q} of port {} is already in use", self.shared.id),
            )),
            Some(t) => {
                *t = true;
                Ok(TxQueue {
                    shared: Arc::clone(&self.shared),
                    port: self.shared.id,
                    q,
                })
            }
        }
    }
}

/// Port `id`'s driver name and the most rx and tx queues it allows:
/// `(driver, max_rx_queues, max_tx_queues)`.
pub fn max_queues(id: PortId) -> Result<(String, u16, u16), DpdkError> {
    eal_running("eth_dev_info_get")?;
    let info = dev_info(id.0)?;
    let driver = if info.driver_name.is_null() {
        String::new()
    } else {
        // SAFETY: driver_name is a NUL-terminated string owned by the driver, alive as long as
        // the driver is loaded; copied right away.
        unsafe { CStr::from_ptr(info.driver_name) }
            .to_string_lossy()
            .into_owned()
    };
    Ok((driver, info.max_rx_queues, info.max_tx_queues))
}

/// Counters of port `id` (`rte_eth_stats_get`). An error if the EAL is not running (`ENODEV`)
/// or DPDK refuses (e.g. `ENODEV` for a port id that does not exist).
pub fn port_stats(id: PortId) -> Result<PortStats, DpdkError> {
    const OP: &str = "eth_stats_get";
    eal_running(OP)?;
    let mut s = sys::rte_eth_stats::default();
    // SAFETY: s is a valid, writable rte_eth_stats for the call; an invalid id returns -ENODEV.
    check(OP, unsafe { sys::rte_eth_stats_get(id.0, &mut s) })?;
    Ok(PortStats {
        ipackets: s.ipackets,
        opackets: s.opackets,
        ibytes: s.ibytes,
        obytes: s.obytes,
        imissed: s.imissed,
        ierrors: s.ierrors,
        oerrors: s.oerrors,
        rx_nombuf: s.rx_nombuf,
    })
}

/// The link state of port `id` without waiting (`rte_eth_link_get_nowait`), from any thread
/// while the EAL runs (the metrics endpoint reads it; a closed port is an error).
pub fn port_link(id: PortId) -> Result<Link, DpdkError> {
    const OP: &str = "eth_link_get_nowait";
    eal_running(OP)?;
    let mut l = sys::rte_eth_link::default();
    // SAFETY: l is a valid, writable rte_eth_link for the call; an invalid id returns -ENODEV.
    check(OP, unsafe { sys::rte_eth_link_get_nowait(id.0, &mut l) })?;
    Ok(Link {
        up: u32::from(l.link_status()) == sys::RTE_ETH_LINK_UP,
        speed_mbps: l.link_speed,
        full_duplex: u32::from(l.link_duplex()) == sys::RTE_ETH_LINK_FULL_DUPLEX,
    })
}

/// One rx/tx queue pair of a port, owned by one worker (`Send`, used through `&mut self`).
pub struct Queue {
    shared: Arc<PortShared>,
    port: u16,
    q: u16,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("port", &self.port)
            .field("queue", &self.q)
            .finish()
    }
}

impl Queue {
    pub fn id(&self) -> QueueId {
        QueueId(self.q)
    }

    pub fn port(&self) -> PortId {
        PortId(self.port)
    }

    /// Receives up to `BURST - into.len()` frames, appended to `into` (compacted first).
    /// Returns how many arrived.
    #[inline]
    pub fn rx_burst(&mut self, into: &mut Burst) -> usize {
        into.compact();
        let room = BURST - into.len;
        if room == 0 {
            return 0;
        }
        // SAFETY: this Queue is the only user of rx queue `q` (handed out once), the port stays
        // open while the Queue lives, and slots[len..BURST] is writable room for `room` pointers.
        let n = unsafe {
            sys::rvs_eth_rx_burst(
                self.port,
                self.q,
                into.slots.as_mut_ptr().add(into.len),
                room as u16,
            )
        };
        let n = usize::from(n).min(room);
        into.len += n;
        n
    }

    /// Sends every mbuf `from` holds; frees the ones the device did not take. Returns
    /// `(sent, freed_unsent)` and leaves `from` empty.
    #[inline]
    pub fn tx_burst(&mut self, from: &mut Burst) -> (usize, usize) {
        // This Queue is the only user of tx queue `q` (handed out once).
        tx_burst_on(self.port, self.q, from)
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        if let Some(t) = lock(&self.shared.taken).get_mut(usize::from(self.q)) {
            *t = false;
        }
    }
}

/// One tx queue of a port without its rx half (see [`Port::tx_queue`]), owned by one thread.
pub struct TxQueue {
    shared: Arc<PortShared>,
    port: u16,
    q: u16,
}

impl std::fmt::Debug for TxQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxQueue")
            .field("port", &self.port)
            .field("queue", &self.q)
            .finish()
    }
}

impl TxQueue {
    /// Sends every mbuf `from` holds; frees the ones the device did not take. Returns
    /// `(sent, freed_unsent)` and leaves `from` empty.
    #[inline]
    pub fn tx_burst(&mut self, from: &mut Burst) -> (usize, usize) {
        // This TxQueue is the only user of tx queue `q` (handed out once).
        tx_burst_on(self.port, self.q, from)
    }
}

impl Drop for TxQueue {
    fn drop(&mut self) {
        let at = usize::from(self.q).saturating_sub(usize::from(self.shared.queues));
        if let Some(t) = lock(&self.shared.tx_taken).get_mut(at) {
            *t = false;
        }
    }
}

/// Send every mbuf `from` holds on tx queue `q` of `port`; free the ones the device did not
/// take. Returns `(sent, freed_unsent)` and leaves `from` empty. The caller is the only user of
/// that queue (a [`Queue`] or [`TxQueue`], each handed out once).
#[inline]
fn tx_burst_on(port: u16, q: u16, from: &mut Burst) -> (usize, usize) {
    from.compact();
    let len = from.len;
    if len == 0 {
        return (0, 0);
    }
    // SAFETY: the caller is the only user of tx queue `q`; slots[..len] are live mbufs owned by
    // `from`, whose ownership passes to the driver for the first `sent` of them.
    let sent = unsafe { sys::rvs_eth_tx_burst(port, q, from.slots.as_mut_ptr(), len as u16) };
    let sent = usize::from(sent).min(len);
    let unsent = len - sent;
    if unsent > 0 {
        // SAFETY: slots[sent..len] are still owned by `from` and not used afterwards.
        unsafe { sys::rvs_pktmbuf_free_bulk(from.slots.as_mut_ptr().add(sent), unsent as c_uint) };
    }
    for s in &mut from.slots[..len] {
        *s = ptr::null_mut();
    }
    from.len = 0;
    from.holes = 0;
    (sent, unsent)
}
