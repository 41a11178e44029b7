//! The Environment Abstraction Layer: [`Eal`] (init, lcores, ports by name, cleanup), the
//! process-wide EAL state the other submodules check, and the time and lcore-id helpers.

use super::lcore::LcoreId;
use super::{errno, DpdkError, PortId};
use dpdk_sys as sys;
use std::ffi::{c_char, c_int, CString};
use std::marker::PhantomData;
use std::ptr;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

/// `rte_lcore_id()` of a thread that is not an EAL lcore.
pub const LCORE_ID_ANY: u32 = u32::MAX;

const EAL_NONE: u8 = 0;
const EAL_INITIALISING: u8 = 1;
pub(super) const EAL_RUNNING: u8 = 2;
const EAL_DONE: u8 = 3;

pub(super) static EAL_STATE: AtomicU8 = AtomicU8::new(EAL_NONE);
/// Mempools and ports alive; `Eal::drop` skips `rte_eal_cleanup` while this is non-zero.
pub(super) static LIVE_OBJECTS: AtomicUsize = AtomicUsize::new(0);

/// `Ok` if the EAL is initialised and not cleaned up, else an `ENODEV` error for `op`.
pub(super) fn eal_running(op: &'static str) -> Result<(), DpdkError> {
    if EAL_STATE.load(Ordering::Acquire) == EAL_RUNNING {
        Ok(())
    } else {
        Err(DpdkError::new(
            op,
            errno::ENODEV,
            "the EAL is not initialised",
        ))
    }
}

/// The initialised Environment Abstraction Layer. Exactly one per process; `Drop` waits for all
/// worker lcores and then calls `rte_eal_cleanup` (see the module notes).
#[derive(Debug)]
pub struct Eal {
    _not_send: PhantomData<*const ()>,
}

impl Eal {
    /// `rte_eal_init` with `args` (`args[0]` is the program name, the rest EAL arguments such as
    /// `-l 0-3 --vdev net_ring0`). Only once per process: a second call fails with `EALREADY`.
    pub fn init(args: &[String]) -> Result<Eal, DpdkError> {
        const OP: &str = "eal_init";
        if EAL_STATE
            .compare_exchange(
                EAL_NONE,
                EAL_INITIALISING,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
        {
            return Err(DpdkError::new(
                OP,
                errno::EALREADY,
                "the EAL can be initialised only once per process",
            ));
        }
        let cargs: Result<Vec<CString>, _> =
            args.iter().map(|a| CString::new(a.as_str())).collect();
        let Ok(cargs) = cargs else {
            EAL_STATE.store(EAL_NONE, Ordering::Release);
            return Err(DpdkError::new(
                OP,
                errno::EINVAL,
                "an EAL argument contains a NUL byte",
            ));
        };
        let Ok(argc) = c_int::try_from(cargs.len()) else {
            EAL_STATE.store(EAL_NONE, Ordering::Release);
            return Err(DpdkError::new(OP, errno::EINVAL, "too many EAL arguments"));
        };
        // DPDK may keep pointers into argv and permutes it: both live for the whole process
        // (this happens once per process, so the leak is bounded).
        let cargs: &'static mut [CString] = Box::leak(cargs.into_boxed_slice());
        let mut argv: Vec<*mut c_char> = cargs.iter_mut().map(|c| c.as_ptr().cast_mut()).collect();
        argv.push(ptr::null_mut());
        let argv: &'static mut [*mut c_char] = Box::leak(argv.into_boxed_slice());
        // SAFETY: argc counts the non-NULL entries of argv, which is NULL-terminated; every entry
        // points to a NUL-terminated string; both outlive the process. The compare_exchange above
        // makes this the only call in the process.
        let ret = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if ret < 0 {
            let e = DpdkError::last(OP);
            EAL_STATE.store(EAL_NONE, Ordering::Release);
            return Err(e);
        }
        EAL_STATE.store(EAL_RUNNING, Ordering::Release);
        Ok(Eal {
            _not_send: PhantomData,
        })
    }

    /// The main lcore (the thread that called `init`).
    pub fn main_lcore(&self) -> LcoreId {
        // SAFETY: the EAL is initialised (we hold an Eal).
        LcoreId(unsafe { sys::rte_get_main_lcore() })
    }

    /// Every enabled lcore, the main one included, in increasing order.
    pub fn lcores(&self) -> Vec<LcoreId> {
        (0..sys::RTE_MAX_LCORE)
            // SAFETY: the EAL is initialised and the id is below RTE_MAX_LCORE.
            .filter(|&l| unsafe { sys::rte_lcore_is_enabled(l) } != 0)
            .map(LcoreId)
            .collect()
    }

    /// The enabled lcores other than the main one (where
    /// [`remote_launch`](super::remote_launch) can run closures).
    pub fn workers(&self) -> Vec<LcoreId> {
        let main = self.main_lcore();
        self.lcores().into_iter().filter(|&l| l != main).collect()
    }

    /// Number of available ethdev ports.
    pub fn port_count(&self) -> u16 {
        // SAFETY: the EAL is initialised.
        unsafe { sys::rte_eth_dev_count_avail() }
    }

    /// The port of a device by name (`net_ring0`, `0000:01:00.0`, ...).
    pub fn port_by_name(&self, name: &str) -> Option<PortId> {
        let cname = CString::new(name).ok()?;
        let mut id = 0u16;
        // SAFETY: cname is NUL-terminated and id a valid out pointer, both live for the call.
        let ret = unsafe { sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
        (ret == 0).then_some(PortId(id))
    }

    /// NUMA socket of the calling lcore.
    pub fn socket_id(&self) -> i32 {
        // SAFETY: no preconditions beyond an initialised EAL.
        unsafe { sys::rte_socket_id() as i32 }
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        // SAFETY: the EAL is initialised; waiting for lcores has no other precondition.
        unsafe { sys::rte_eal_mp_wait_lcore() };
        let live = LIVE_OBJECTS.load(Ordering::Acquire);
        if live == 0 {
            // SAFETY: no mempool or port wrapper is left, every lcore is idle, and the state
            // change below makes every later wrapper call fail before reaching DPDK.
            let ret = unsafe { sys::rte_eal_cleanup() };
            if ret < 0 {
                tracing::warn!(error = %DpdkError::from_errno("eal_cleanup", ret), "EAL cleanup failed");
            }
        } else {
            tracing::warn!(live, "mempools/ports still alive: skipping rte_eal_cleanup");
        }
        EAL_STATE.store(EAL_DONE, Ordering::Release);
    }
}

// ---------------------------------------------------------------------------------------------
// Time and lcore id

/// TSC cycles (`rte_get_tsc_cycles`).
#[inline]
pub fn tsc() -> u64 {
    // SAFETY: reads the time stamp counter; no preconditions.
    unsafe { sys::rvs_get_tsc_cycles() }
}

/// TSC frequency in Hz (0 before the EAL is initialised).
pub fn tsc_hz() -> u64 {
    // SAFETY: reads a value the EAL computed at init; no preconditions.
    unsafe { sys::rte_get_tsc_hz() }
}

/// The calling thread's lcore id, or [`LCORE_ID_ANY`] on a non-EAL thread.
#[inline]
pub fn lcore_id() -> u32 {
    // SAFETY: reads a thread-local; no preconditions.
    unsafe { sys::rvs_lcore_id() }
}

/// A CPU pause hint for spin loops (`rte_pause`).
#[inline]
pub fn pause() {
    // SAFETY: a pause instruction; no preconditions.
    unsafe { sys::rvs_pause() }
}
