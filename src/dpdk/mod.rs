//! The one safe wrapper over `dpdk-sys`: EAL, mempools, ports and queues, mbufs and bursts, lcore
//! launch. This module (with its submodules) and the `dpdk-sys` crate (`dpdk/` at the workspace
//! root) are the only places where `unsafe` lives.
//!
//! Naming follows capsule: wrappers are named after the rte function without its prefix, ids are
//! newtypes, errors carry the rte_errno and its `rte_strerror` text, owning types clean up on
//! `Drop`, and panics are caught before they could unwind into C.
//!
//! Lifetimes are enforced at run time rather than with borrows, so the engine can move these
//! values into lcore closures:
//! - a [`Mempool`] is freed when the last of the `Mempool` and every [`Port`] using it is dropped,
//!   and only if none of its mbufs is still in use (otherwise it is leaked, never freed under a
//!   live mbuf);
//! - a port is stopped and closed when the last of its [`Port`] and [`Queue`]s is dropped, so a
//!   worker never bursts on a closed port;
//! - [`Eal`]'s `Drop` waits for every lcore and calls `rte_eal_cleanup` only when no mempool or
//!   port is alive any more (otherwise cleanup is skipped: the process is ending anyway).
//!
//! Fast path (`Queue::rx_burst`, `Queue::tx_burst`, `Burst`, `MbufRef`): no allocation, no lock,
//! no syscall, no panic.
//!
//! Private submodules, by concern: `eal` (the EAL, time, lcore id), `lcore` (launching closures
//! on worker lcores), `mempool`, `mbuf` (mbufs and bursts), `port` (ports, queues, counters).
//! Everything public is re-exported here: use `crate::dpdk::X`.

use dpdk_sys as sys;
use std::ffi::{c_int, CStr};
use std::sync::{Mutex, MutexGuard};

mod eal;
mod lcore;
mod mbuf;
mod mempool;
mod port;

pub use eal::{lcore_id, pause, tsc, tsc_hz, Eal, LCORE_ID_ANY};
pub use lcore::{remote_launch, remote_launch_result, wait_lcore, LcoreId};
pub use mbuf::{Burst, IpCsum, Mbuf, MbufRef};
pub use mempool::{Mempool, MempoolCounts, MempoolWatch};
pub use port::{
    max_queues, port_link, port_stats, Link, Port, PortConfig, PortStats, Queue, RssSetup, TxQueue,
};

/// Linux errno values used for errors this wrapper detects itself.
mod errno {
    pub const ENODEV: i32 = 19;
    pub const EBUSY: i32 = 16;
    pub const EINVAL: i32 = 22;
    pub const ENOTSUP: i32 = 95;
    pub const EALREADY: i32 = 114;
}

/// Mbufs per rx/tx burst.
pub const BURST: usize = 32;

/// A failed DPDK call: which operation, the (positive) errno, and `rte_strerror`'s text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{op}: {msg}{}", errno_note(*.errno))]
pub struct DpdkError {
    pub op: &'static str,
    pub errno: i32,
    pub msg: String,
}

/// " (errno N)", or nothing when there is no errno (0) to show.
fn errno_note(errno: i32) -> String {
    if errno == 0 {
        String::new()
    } else {
        format!(" (errno {errno})")
    }
}

impl DpdkError {
    /// An error for `errno` (sign ignored: ethdev returns `-errno`), described by `rte_strerror`.
    pub fn from_errno(op: &'static str, errno: i32) -> Self {
        let errno = errno.saturating_abs();
        // SAFETY: rte_strerror accepts any value and returns a pointer to a NUL-terminated string
        // (static, or a per-thread buffer) that stays valid until the next call on this thread;
        // it is copied right away.
        let msg = unsafe {
            let p = sys::rte_strerror(errno);
            if p.is_null() {
                format!("error {errno}")
            } else {
                CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        };
        DpdkError { op, errno, msg }
    }

    /// An error for the current `rte_errno`.
    fn last(op: &'static str) -> Self {
        Self::from_errno(op, rte_errno())
    }

    /// An error this wrapper detected, with its own message.
    fn new(op: &'static str, errno: i32, msg: impl Into<String>) -> Self {
        DpdkError {
            op,
            errno,
            msg: msg.into(),
        }
    }
}

/// Maps an ethdev-style return code (`0` or `-errno`) to a result.
fn check(op: &'static str, ret: c_int) -> Result<(), DpdkError> {
    if ret < 0 {
        Err(DpdkError::from_errno(op, ret))
    } else {
        Ok(())
    }
}

fn rte_errno() -> i32 {
    // SAFETY: reads the calling thread's rte_errno; no preconditions.
    unsafe { sys::rvs_errno() }
}

/// Locks `m`, ignoring poisoning (the data behind these mutexes stays consistent under panics).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------------------------
// Ids ([`LcoreId`] lives with the lcore launch functions, in [`lcore`])

/// An ethdev port id.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(pub u16);

/// An rx/tx queue index of a port.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId(pub u16);

#[cfg(test)]
mod tests {
    use super::eal::{EAL_RUNNING, EAL_STATE};
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn calls_without_eal_fail_cleanly() {
        // The EAL-backed tests live in tests/dpdk_wrapper.rs; in this binary the EAL is down.
        if EAL_STATE.load(Ordering::Acquire) == EAL_RUNNING {
            return;
        }
        assert_eq!(
            Mempool::create("x", 63, 0, 2176, -1).unwrap_err().errno,
            errno::ENODEV
        );
        assert!(remote_launch(LcoreId(1), || {}).is_err());
        assert!(wait_lcore(LcoreId(1)).is_err());
        assert_eq!(port_stats(PortId(0)).unwrap_err().errno, errno::ENODEV);
    }

    #[test]
    fn error_text_comes_from_rte_strerror() {
        let e = DpdkError::from_errno("op", -errno::EINVAL);
        assert_eq!(e.errno, errno::EINVAL);
        assert_eq!(e.msg, "Invalid argument");
        assert_eq!(e.to_string(), "op: Invalid argument (errno 22)");
    }
}
