//! The kernel path: a kernel network interface on the data port (`rvs0` by default, made by
//! DPDK's `net_tap` or `virtio_user` PMD, carrying the port's MAC and the DIP), and the thread
//! that moves frames between it and the data port.
//!
//! ```text
//!  data port rx ─► worker ─► Verdict::Kernel ─► ring (one per worker, bounded) ─┐
//!                                                                               ▼
//!                                     kernel-path thread: tx_burst ─► rvs0 (the kernel)
//!  data port tx ◄─ its own tx queue (the last) ◄─ rx_burst ◄────────── rvs0
//! ```
//!
//! With `net_af_packet` the data port's queues are rx/tx pairs whose rx sockets share a
//! `PACKET_FANOUT` hash group: an extra pair for the kernel path would receive a share of the
//! port's frames that no worker reads. There the kernel's frames go through worker 0 instead
//! (a ring it drains into its own tx queue, [`DataTx::Worker`]).
//!
//! On a VLAN (`[network] vlan`), the data port's frames of the director are tagged and the
//! kernel interface's are not: the thread takes the 802.1Q tag off each frame it hands the
//! kernel and puts the VLAN's tag on each frame the kernel sends, so the kernel sees a plain
//! Ethernet interface with the DIP (VRRP, sync, health checks and announced routes work
//! unchanged). A frame the kernel sends already tagged (a VLAN sub-interface made on it by
//! hand) would leave with two tags: do not make one.
//!
//! Workers never wait for the kernel: a frame that does not fit its worker's ring is freed and
//! counted (`exception_full`), and the pipeline's token bucket limits what is handed over at
//! all (`exception_ratelimited`). The thread is a plain std thread (not an lcore) that sleeps
//! with a short adaptive back-off when there is nothing to move.

use crate::config::{KernelConfig, KernelDriver};
use crate::dpdk::{self, Burst, Eal, Mbuf, Mempool, Port, PortConfig, Queue, TxQueue, BURST};
use crossbeam_queue::ArrayQueue;
use crossbeam_utils::CachePadded;
use rvs_dataplane::stats::{bump, KernelCounters};
use rvs_dataplane::wire::ethernet::{VlanId, VLAN_TAG_LEN};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A worker's queue of frames for the kernel interface (moved, not copied).
pub type Ring = ArrayQueue<Mbuf>;

/// Descriptors of the kernel interface's rx and tx queue.
pub const KERNEL_DESCRIPTORS: u16 = 512;

/// The back-off of an idle kernel-path thread: from this ...
const IDLE_MIN: Duration = Duration::from_micros(50);
/// ... doubling up to this.
const IDLE_MAX: Duration = Duration::from_millis(1);

/// Where vhost-net lives (the `virtio_user` driver's backend).
pub const VHOST_NET: &str = "/dev/vhost-net";

/// Why the kernel interface could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("kernel interface {name}: DPDK: {err}")]
    Dpdk { name: String, err: dpdk::DpdkError },
    #[error(
        "kernel interface {name}: `ip` (iproute2) is needed to configure it and was not found: \
         install iproute2, or set kernel.enabled = false"
    )]
    NoIp { name: String },
    #[error("kernel interface {name}: `{cmd}` failed: {msg}")]
    Command {
        name: String,
        cmd: String,
        msg: String,
    },
    #[error("kernel interface {name}: writing {path}: {err}")]
    Sysctl {
        name: String,
        path: String,
        err: std::io::Error,
    },
}

/// The driver `kernel.driver` resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    Tap,
    VirtioUser,
}

impl Driver {
    /// `auto` is `virtio_user` where vhost-net exists (`vhost_net`), else `tap`.
    pub fn resolve(d: KernelDriver, vhost_net: bool) -> Driver {
        match d {
            KernelDriver::Tap => Driver::Tap,
            KernelDriver::VirtioUser => Driver::VirtioUser,
            KernelDriver::Auto if vhost_net => Driver::VirtioUser,
            KernelDriver::Auto => Driver::Tap,
        }
    }
}

/// The devargs that make the kernel interface `iface` with MAC `mac`; `n` numbers the
/// `virtio_user` device (its ethdev name is `virtio_user<n>`).
pub fn devargs(driver: Driver, iface: &str, mac: [u8; 6], n: u32) -> String {
    let mac = rvs_dataplane::report::MacAddr(mac);
    match driver {
        Driver::Tap => format!("net_tap_rvs,iface={iface},mac={mac}"),
        Driver::VirtioUser => format!(
            "virtio_user{n},path={VHOST_NET},queues=1,queue_size=1024,iface={iface},mac={mac}"
        ),
    }
}

/// The kernel interface's port, configured and started, with the kernel side set up.
pub struct KernelIf {
    pub port: Port,
    pub driver: Driver,
    pub name: String,
}

impl KernelIf {
    /// Make the kernel interface `cfg.name` after EAL init (hot-plugged: the ports that exist
    /// keep their ids): one rx and one tx queue with buffers from `pool`, the data port's MAC
    /// `mac`, started; then the kernel side: IPv6 off, `arp_ignore=1`/`arp_announce=2`, the
    /// DIP `dip/prefix_len`, link up.
    pub fn open(
        eal: &Eal,
        cfg: &KernelConfig,
        mac: [u8; 6],
        dip: Ipv4Addr,
        prefix_len: u8,
        pool: &Mempool,
    ) -> Result<KernelIf, KernelError> {
        let name = cfg.name.clone();
        let dpdk_err = |err| KernelError::Dpdk {
            name: name.clone(),
            err,
        };
        let driver = Driver::resolve(cfg.driver, Path::new(VHOST_NET).exists());
        // The first virtio_user<n> not taken (by a device given in the EAL arguments).
        let n = (0..64)
            .find(|n| eal.port_by_name(&format!("virtio_user{n}")).is_none())
            .unwrap_or(64);
        let id = eal
            .probe(&devargs(driver, &cfg.name, mac, n))
            .map_err(dpdk_err)?;
        let pconf = PortConfig {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: KERNEL_DESCRIPTORS,
            tx_desc: KERNEL_DESCRIPTORS,
            rss: false,
            promiscuous: false,
        };
        let mut port = Port::configure(id, &pconf, pool).map_err(dpdk_err)?;
        port.set_mac(mac).map_err(dpdk_err)?;
        port.start().map_err(dpdk_err)?;
        configure_interface(&cfg.name, dip, prefix_len)?;
        Ok(KernelIf { port, driver, name })
    }
}

/// Set up the kernel side of interface `name`: no IPv6 (nothing of its own on the wire),
/// ARP answered only for its own addresses on it and announced from them (`arp_ignore=1`,
/// `arp_announce=2`; rvs answers ARP itself anyway and never hands the kernel a request), the
/// DIP, link up.
fn configure_interface(name: &str, dip: Ipv4Addr, prefix_len: u8) -> Result<(), KernelError> {
    // IPv6 may be absent from the kernel: then there is nothing to turn off.
    let v6 = format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6");
    if Path::new(&v6).exists() {
        sysctl(name, &v6, "1")?;
    }
    sysctl(
        name,
        &format!("/proc/sys/net/ipv4/conf/{name}/arp_ignore"),
        "1",
    )?;
    sysctl(
        name,
        &format!("/proc/sys/net/ipv4/conf/{name}/arp_announce"),
        "2",
    )?;
    let addr = format!("{dip}/{prefix_len}");
    ip(name, &["addr", "replace", &addr, "dev", name])?;
    ip(name, &["link", "set", "dev", name, "up"])?;
    Ok(())
}

fn sysctl(name: &str, path: &str, value: &str) -> Result<(), KernelError> {
    std::fs::write(path, value).map_err(|err| KernelError::Sysctl {
        name: name.to_string(),
        path: path.to_string(),
        err,
    })
}

fn ip(name: &str, args: &[&str]) -> Result<(), KernelError> {
    let cmd = format!("ip {}", args.join(" "));
    let out = Command::new("ip").args(args).output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            KernelError::NoIp {
                name: name.to_string(),
            }
        } else {
            KernelError::Command {
                name: name.to_string(),
                cmd: cmd.clone(),
                msg: e.to_string(),
            }
        }
    })?;
    if out.status.success() {
        return Ok(());
    }
    Err(KernelError::Command {
        name: name.to_string(),
        cmd,
        msg: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}

/// Where the kernel's frames leave on the data port.
pub enum DataTx {
    /// The data port's last tx queue, the kernel-path thread's own.
    Queue(TxQueue),
    /// A ring worker 0 drains into its tx queue (see the module docs).
    Worker(Arc<Ring>),
}

/// Whether the data port's driver needs [`DataTx::Worker`] (its queues come in rx/tx pairs
/// over one fanout group).
pub fn shares_worker_tx(driver: &str) -> bool {
    driver == "net_af_packet"
}

/// The kernel-path thread's state: the workers' rings, the kernel interface's queue pair,
/// the way out on the data port, its counters and the engine's stop flag.
pub struct KernelThread {
    rings: Vec<Arc<Ring>>,
    kernel: Queue,
    data_tx: DataTx,
    counters: Arc<CachePadded<KernelCounters>>,
    stop: Arc<AtomicBool>,
    /// The VLAN's tag (see the module docs); `None`: frames pass as they are.
    vlan: Option<[u8; VLAN_TAG_LEN]>,
}

/// Take the 802.1Q tag out of the frame in `f`: the MACs move on over it, so the untagged
/// frame starts at `f[VLAN_TAG_LEN..]` (the caller drops the first bytes). `false`, and `f`
/// unchanged, if the frame carries no 802.1Q tag.
pub fn untag_in_place(f: &mut [u8]) -> bool {
    if f.len() < 12 + VLAN_TAG_LEN + 2 || f[12..14] != [0x81, 0x00] {
        return false;
    }
    f.copy_within(0..12, VLAN_TAG_LEN);
    true
}

/// Tag the frame that starts at `f[VLAN_TAG_LEN..]` (room made in front of it) with `tag`:
/// the MACs move to the front and the tag follows them. `false`, and `f` unchanged, if `f`
/// cannot hold the MACs and the tag.
pub fn tag_in_place(f: &mut [u8], tag: [u8; VLAN_TAG_LEN]) -> bool {
    if f.len() < 12 + VLAN_TAG_LEN {
        return false;
    }
    f.copy_within(VLAN_TAG_LEN..VLAN_TAG_LEN + 12, 0);
    f[12..12 + VLAN_TAG_LEN].copy_from_slice(&tag);
    true
}

impl KernelThread {
    pub fn new(
        rings: Vec<Arc<Ring>>,
        kernel: Queue,
        data_tx: DataTx,
        counters: Arc<CachePadded<KernelCounters>>,
        stop: Arc<AtomicBool>,
    ) -> Self {
        KernelThread {
            rings,
            kernel,
            data_tx,
            counters,
            stop,
            vlan: None,
        }
    }

    /// The director is on `vlan` (`[network] vlan`): untag the frames for the kernel and tag
    /// the kernel's (see the module docs).
    pub fn with_vlan(mut self, vlan: Option<VlanId>) -> Self {
        self.vlan = vlan.map(VlanId::tag_bytes);
        self
    }

    /// Move frames until `stop`: each worker's ring to the kernel interface, the kernel's
    /// frames to the data port; asleep (50 µs doubling to 1 ms) while there is nothing to
    /// move. What a device does not take is freed and counted. Frames left in the rings are
    /// freed when the rings are dropped.
    pub fn run(mut self) {
        let mut burst = Burst::new();
        let mut idle = IDLE_MIN;
        while !self.stop.load(Ordering::Relaxed) {
            let moved = self.drain_rings(&mut burst) + self.drain_kernel(&mut burst);
            if moved == 0 {
                std::thread::sleep(idle);
                idle = (idle * 2).min(IDLE_MAX);
            } else {
                idle = IDLE_MIN;
            }
        }
        burst.clear();
    }

    /// Drain every worker's ring to the kernel interface (at most a ring's worth each).
    fn drain_rings(&mut self, burst: &mut Burst) -> usize {
        let mut moved = 0;
        for ring in &self.rings {
            let mut budget = ring.capacity();
            while budget > 0 {
                while burst.len() < BURST && budget > 0 {
                    let Some(mut m) = ring.pop() else {
                        budget = 0;
                        break;
                    };
                    budget -= 1;
                    // On a VLAN every frame a worker hands over carries its tag.
                    if self.vlan.is_some() && untag_in_place(m.data_mut()) {
                        m.adj(VLAN_TAG_LEN);
                    }
                    if let Err(m) = burst.push(m) {
                        drop(m);
                        bump(&self.counters.to_kernel_dropped, 1);
                    }
                }
                if burst.is_empty() {
                    break;
                }
                moved += burst.len();
                let (_, unsent) = self.kernel.tx_burst(burst);
                bump(&self.counters.to_kernel_dropped, unsent as u64);
            }
        }
        moved
    }

    /// The kernel's frames to the data port (a few bursts at most per round).
    fn drain_kernel(&mut self, burst: &mut Burst) -> usize {
        let mut moved = 0;
        for _ in 0..8 {
            let n = self.kernel.rx_burst(burst);
            if n == 0 {
                break;
            }
            moved += n;
            let mut untaggable = 0u64;
            if let Some(tag) = self.vlan {
                for i in 0..burst.len() {
                    let tagged = burst.get_mut(i).is_some_and(|mut m| {
                        m.prepend(VLAN_TAG_LEN) && tag_in_place(m.data_mut(), tag)
                    });
                    if !tagged {
                        burst.free(i);
                        untaggable += 1;
                    }
                }
            }
            bump(&self.counters.from_kernel_dropped, untaggable);
            let (sent, unsent) = match &mut self.data_tx {
                DataTx::Queue(q) => q.tx_burst(burst),
                DataTx::Worker(ring) => {
                    let (mut sent, mut unsent) = (0, 0);
                    for i in 0..burst.len() {
                        if let Some(m) = burst.take(i) {
                            match ring.push(m) {
                                Ok(()) => sent += 1,
                                Err(m) => {
                                    drop(m);
                                    unsent += 1;
                                }
                            }
                        }
                    }
                    burst.compact();
                    (sent, unsent)
                }
            };
            bump(&self.counters.from_kernel, sent as u64);
            bump(&self.counters.from_kernel_dropped, unsent as u64);
            if n < BURST {
                break;
            }
        }
        moved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x02, 0x70, 0x63, 0x61, 0x70, 0x00];

    #[test]
    fn the_driver_follows_the_config_and_vhost_net() {
        assert_eq!(
            Driver::resolve(KernelDriver::Auto, true),
            Driver::VirtioUser
        );
        assert_eq!(Driver::resolve(KernelDriver::Auto, false), Driver::Tap);
        assert_eq!(Driver::resolve(KernelDriver::Tap, true), Driver::Tap);
        assert_eq!(
            Driver::resolve(KernelDriver::VirtioUser, false),
            Driver::VirtioUser
        );
    }

    #[test]
    fn tags_come_off_for_the_kernel_and_go_on_for_the_wire() {
        // A tagged ARP request as a worker hands it over (VLAN 100, priority 2).
        let tagged: [u8; 22] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // destination
            0x02, 0x00, 0x00, 0x00, 0x00, 0x0a, // source
            0x81, 0x00, 0x40, 0x64, //             802.1Q, PCP 2, VID 100
            0x08, 0x06, //                         EtherType ARP
            0x00, 0x01, 0x08, 0x00, //             (the start of the ARP packet)
        ];
        let mut f = tagged;
        assert!(untag_in_place(&mut f));
        let untagged = [
            &tagged[..12],   // the MACs
            &tagged[16..22], // EtherType and payload
        ]
        .concat();
        assert_eq!(&f[VLAN_TAG_LEN..], &untagged[..]);
        // Back onto the wire: 4 bytes prepended, then the VLAN's tag (priority 0).
        let mut out = [vec![0xee; VLAN_TAG_LEN], untagged.clone()].concat();
        let tag = VlanId::new(100).unwrap().tag_bytes();
        assert!(tag_in_place(&mut out, tag));
        let mut want = tagged.to_vec();
        want[14] = 0x00;
        assert_eq!(out, want);
        // Not tagged, or too short: left alone.
        let mut plain = untagged.clone();
        assert!(!untag_in_place(&mut plain));
        assert_eq!(plain, untagged);
        for n in [0, 13, 17] {
            let mut short = tagged[..n].to_vec();
            assert!(!untag_in_place(&mut short), "{n}");
            assert_eq!(short, tagged[..n]);
        }
        let mut short = vec![1u8; 15];
        assert!(!tag_in_place(&mut short, tag));
        assert_eq!(short, vec![1u8; 15]);
    }

    #[test]
    fn devargs_of_both_drivers() {
        assert_eq!(
            devargs(Driver::Tap, "rvs0", MAC, 0),
            "net_tap_rvs,iface=rvs0,mac=02:70:63:61:70:00"
        );
        assert_eq!(
            devargs(Driver::VirtioUser, "rvs1", MAC, 2),
            "virtio_user2,path=/dev/vhost-net,queues=1,queue_size=1024,iface=rvs1,\
             mac=02:70:63:61:70:00"
        );
    }
}
