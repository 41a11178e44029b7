//! The one safe wrapper over `dpdk-sys`: EAL, mempools, ports and queues, mbufs and bursts, lcore
//! launch. This module and `dpdk/` are the only places where `unsafe` lives.
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

use rvs_dataplane::report::PortStats;
use dpdk_sys as sys;
use std::collections::BTreeMap;
use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

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

/// `rte_lcore_id()` of a thread that is not an EAL lcore.
pub const LCORE_ID_ANY: u32 = u32::MAX;

/// A failed DPDK call: which operation, the (positive) errno, and `rte_strerror`'s text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{op}: {msg} (errno {errno})")]
pub struct DpdkError {
    pub op: &'static str,
    pub errno: i32,
    pub msg: String,
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
// Ids

/// An ethdev port id.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(pub u16);

/// An EAL lcore id.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LcoreId(pub u32);

/// An rx/tx queue index of a port.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId(pub u16);

// ---------------------------------------------------------------------------------------------
// EAL

const EAL_NONE: u8 = 0;
const EAL_INITIALISING: u8 = 1;
const EAL_RUNNING: u8 = 2;
const EAL_DONE: u8 = 3;

static EAL_STATE: AtomicU8 = AtomicU8::new(EAL_NONE);
/// Mempools and ports alive; `Eal::drop` skips `rte_eal_cleanup` while this is non-zero.
static LIVE_OBJECTS: AtomicUsize = AtomicUsize::new(0);

fn eal_running(op: &'static str) -> Result<(), DpdkError> {
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

    /// The enabled lcores other than the main one (where [`remote_launch`] can run closures).
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
// Lcores and time

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

/// Results of closures launched with [`remote_launch`] that failed: lcore -> message.
static LCORE_FAILURES: Mutex<BTreeMap<u32, String>> = Mutex::new(BTreeMap::new());

type Job = Box<dyn FnOnce() -> Result<(), String> + Send + 'static>;

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        format!("panicked: {s}")
    } else if let Some(s) = p.downcast_ref::<String>() {
        format!("panicked: {s}")
    } else {
        "panicked".to_string()
    }
}

/// Entry point of every launched closure on its lcore.
///
/// # Safety
/// `arg` must come from `Box::into_raw(Box<Job>)` and be passed here exactly once.
unsafe extern "C" fn lcore_trampoline(arg: *mut c_void) -> c_int {
    // SAFETY: guaranteed by the caller contract above (remote_launch_result).
    let job: Box<Job> = unsafe { Box::from_raw(arg.cast::<Job>()) };
    let outcome = catch_unwind(AssertUnwindSafe(job));
    let failure = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(msg)) => Some(msg),
        Err(payload) => {
            let msg = panic_message(&*payload);
            // Dropping a panic payload can itself panic; never let that reach C.
            let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
            Some(msg)
        }
    };
    match failure {
        None => 0,
        Some(msg) => {
            let l = lcore_id();
            let _ = catch_unwind(AssertUnwindSafe(|| {
                lock(&LCORE_FAILURES).insert(l, msg);
            }));
            -1
        }
    }
}

/// Launches `f` on worker lcore `l` (not the main lcore). A panic inside `f` is caught and
/// reported by [`wait_lcore`]; it never unwinds into C.
pub fn remote_launch<F: FnOnce() + Send + 'static>(l: LcoreId, f: F) -> Result<(), DpdkError> {
    remote_launch_result(l, move || {
        f();
        Ok(())
    })
}

/// Like [`remote_launch`], for a closure that can fail: its `Err` is reported by [`wait_lcore`].
pub fn remote_launch_result<F>(l: LcoreId, f: F) -> Result<(), DpdkError>
where
    F: FnOnce() -> Result<(), String> + Send + 'static,
{
    const OP: &str = "eal_remote_launch";
    eal_running(OP)?;
    // SAFETY: the EAL is initialised.
    let main = unsafe { sys::rte_get_main_lcore() };
    // SAFETY: as above; rte_lcore_is_enabled checks the range itself.
    if l.0 == main || l.0 >= sys::RTE_MAX_LCORE || unsafe { sys::rte_lcore_is_enabled(l.0) } == 0 {
        return Err(DpdkError::new(
            OP,
            errno::EINVAL,
            format!("lcore {} is not an enabled worker lcore", l.0),
        ));
    }
    lock(&LCORE_FAILURES).remove(&l.0);
    let job: Box<Job> = Box::new(Box::new(f));
    let arg = Box::into_raw(job).cast::<c_void>();
    // SAFETY: the trampoline matches lcore_function_t and never unwinds; `arg` is a Box<Job>
    // pointer handed over to exactly one trampoline call if the launch succeeds.
    let ret = unsafe { sys::rte_eal_remote_launch(Some(lcore_trampoline), arg, l.0 as c_uint) };
    if ret < 0 {
        // SAFETY: the launch failed, so the trampoline will never run: reclaim the job.
        drop(unsafe { Box::from_raw(arg.cast::<Job>()) });
        return Err(DpdkError::from_errno(OP, ret));
    }
    Ok(())
}

/// Waits for the closure launched on `l`. `Err` if it panicked or returned an error.
pub fn wait_lcore(l: LcoreId) -> Result<(), String> {
    if EAL_STATE.load(Ordering::Acquire) != EAL_RUNNING || l.0 >= sys::RTE_MAX_LCORE {
        return Err(format!(
            "lcore {}: EAL not running or lcore out of range",
            l.0
        ));
    }
    // SAFETY: the EAL is initialised and l is in range.
    let ret = unsafe { sys::rte_eal_wait_lcore(l.0) };
    if let Some(msg) = lock(&LCORE_FAILURES).remove(&l.0) {
        return Err(format!("lcore {}: {msg}", l.0));
    }
    if ret != 0 {
        return Err(format!("lcore {}: returned {ret}", l.0));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Mempool

struct PoolInner {
    raw: NonNull<sys::rte_mempool>,
    name: String,
}

// SAFETY: an rte_mempool is designed for concurrent use from many threads (the default ring
// handler is multi-producer/multi-consumer; per-lcore caches are only touched by their lcore).
unsafe impl Send for PoolInner {}
// SAFETY: as above; &PoolInner only allows MT-safe mempool operations.
unsafe impl Sync for PoolInner {}

impl Drop for PoolInner {
    fn drop(&mut self) {
        // SAFETY: raw is a live mempool (freed only here).
        let in_use = unsafe { sys::rte_mempool_in_use_count(self.raw.as_ptr()) };
        if in_use == 0 {
            // SAFETY: no mbuf of this pool is in use and no port refers to it (ports hold a
            // reference to this PoolInner), so nothing can touch the pool afterwards.
            unsafe { sys::rte_mempool_free(self.raw.as_ptr()) };
        } else {
            tracing::warn!(pool = %self.name, in_use, "mbufs still in use: leaking the mempool");
        }
        LIVE_OBJECTS.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A packet mbuf pool (`rte_pktmbuf_pool_create`). Cheap to share: `Send + Sync`.
#[derive(Clone)]
pub struct Mempool {
    inner: Arc<PoolInner>,
}

impl std::fmt::Debug for Mempool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mempool")
            .field("name", &self.inner.name)
            .finish()
    }
}

impl Mempool {
    /// Creates a pool of `n` mbufs with a per-lcore cache of `cache`, `data_room` bytes of
    /// buffer per mbuf (headroom included, e.g. `2048 + 128`), on NUMA `socket` (-1: any).
    pub fn create(
        name: &str,
        n: u32,
        cache: u32,
        data_room: u16,
        socket: i32,
    ) -> Result<Self, DpdkError> {
        const OP: &str = "pktmbuf_pool_create";
        eal_running(OP)?;
        let cname = CString::new(name)
            .map_err(|_| DpdkError::new(OP, errno::EINVAL, "pool name contains a NUL byte"))?;
        // SAFETY: the EAL is initialised and cname is NUL-terminated for the call.
        let raw =
            unsafe { sys::rte_pktmbuf_pool_create(cname.as_ptr(), n, cache, 0, data_room, socket) };
        let raw = NonNull::new(raw).ok_or_else(|| DpdkError::last(OP))?;
        LIVE_OBJECTS.fetch_add(1, Ordering::AcqRel);
        Ok(Mempool {
            inner: Arc::new(PoolInner {
                raw,
                name: name.to_string(),
            }),
        })
    }

    /// One mbuf, reset (`rte_pktmbuf_alloc`: data_len 0, default headroom), or `None` if empty.
    #[inline]
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool is live (we hold a reference).
        let m = unsafe { sys::rvs_pktmbuf_alloc(self.inner.raw.as_ptr()) };
        NonNull::new(m).map(|raw| Mbuf { raw })
    }

    /// Appends `n` fresh mbufs to `into` at once, or none if the pool (or `into`) lacks room.
    pub fn alloc_bulk(&self, into: &mut Burst, n: usize) -> bool {
        into.compact();
        if n > BURST - into.len {
            return false;
        }
        // SAFETY: the pool is live; slots[len..len + n] is inside the array and holds no mbuf.
        let ret = unsafe {
            sys::rvs_pktmbuf_alloc_bulk(
                self.inner.raw.as_ptr(),
                into.slots.as_mut_ptr().add(into.len),
                n as c_uint,
            )
        };
        if ret == 0 {
            into.len += n;
            true
        } else {
            false
        }
    }

    /// Mbufs available (in the pool and in the per-lcore caches). Slow: not for the fast path.
    pub fn available(&self) -> u32 {
        // SAFETY: the pool is live.
        unsafe { sys::rte_mempool_avail_count(self.inner.raw.as_ptr()) }
    }

    /// Mbufs allocated and not yet freed. Slow: not for the fast path.
    pub fn in_use(&self) -> u32 {
        // SAFETY: the pool is live.
        unsafe { sys::rte_mempool_in_use_count(self.inner.raw.as_ptr()) }
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }
}

// ---------------------------------------------------------------------------------------------
// Mbufs

/// Accessors shared by [`Mbuf`] and [`MbufRef`]. All take a pointer to a live, exclusively owned
/// mbuf; only the first segment is seen (rvs does not enable scattered rx).
mod raw {
    use super::sys;
    use std::slice;

    /// # Safety
    /// `m` points to a live mbuf nobody else accesses for `'a`.
    #[inline]
    pub unsafe fn data<'a>(m: *mut sys::rte_mbuf) -> &'a mut [u8] {
        // SAFETY: m is live and exclusive (caller); buf_addr..buf_addr+buf_len is its buffer, and
        // the length is clamped so the slice never leaves it even if a driver misbehaves.
        unsafe {
            let off = (*m).data_off as usize;
            let room = ((*m).buf_len as usize).saturating_sub(off);
            let len = ((*m).data_len as usize).min(room);
            let base = (*m).buf_addr.cast::<u8>();
            if base.is_null() || len == 0 {
                return &mut [];
            }
            slice::from_raw_parts_mut(base.add(off), len)
        }
    }

    /// # Safety
    /// As for [`data`].
    #[inline]
    pub unsafe fn len(m: *const sys::rte_mbuf) -> usize {
        // SAFETY: m is live (caller).
        unsafe { (*m).data_len as usize }
    }

    /// # Safety
    /// As for [`data`].
    #[inline]
    pub unsafe fn set_len(m: *mut sys::rte_mbuf, n: usize) -> bool {
        // SAFETY: m is live and exclusive (caller).
        unsafe {
            let room = ((*m).buf_len as usize).saturating_sub((*m).data_off as usize);
            if (*m).nb_segs != 1 || n > room {
                return false;
            }
            let Ok(n16) = u16::try_from(n) else {
                return false;
            };
            (*m).data_len = n16;
            (*m).pkt_len = u32::from(n16);
            true
        }
    }

    /// # Safety
    /// As for [`data`].
    #[inline]
    pub unsafe fn rss_hash(m: *const sys::rte_mbuf) -> Option<u32> {
        // SAFETY: m is live (caller); every bit pattern is a valid u32 for the union read.
        unsafe {
            if (*m).ol_flags & u64::from(sys::RTE_MBUF_F_RX_RSS_HASH) != 0 {
                Some((*m).__bindgen_anon_2.hash.rss)
            } else {
                None
            }
        }
    }

    /// # Safety
    /// As for [`data`].
    #[inline]
    pub unsafe fn headroom(m: *const sys::rte_mbuf) -> usize {
        // SAFETY: m is live (caller).
        unsafe { (*m).data_off as usize }
    }

    /// # Safety
    /// As for [`data`].
    #[inline]
    pub unsafe fn prepend(m: *mut sys::rte_mbuf, n: usize) -> bool {
        let Ok(n) = u16::try_from(n) else {
            return false;
        };
        // SAFETY: m is live and exclusive (caller); rte_pktmbuf_prepend checks the headroom.
        unsafe { !sys::rvs_pktmbuf_prepend(m, n).is_null() }
    }

    /// # Safety
    /// As for [`data`].
    #[inline]
    pub unsafe fn adj(m: *mut sys::rte_mbuf, n: usize) -> bool {
        let Ok(n) = u16::try_from(n) else {
            return false;
        };
        // SAFETY: m is live and exclusive (caller); rte_pktmbuf_adj checks the length.
        unsafe { !sys::rvs_pktmbuf_adj(m, n).is_null() }
    }
}

/// An owned mbuf (single segment as far as this API goes); `Drop` frees it to its pool.
pub struct Mbuf {
    raw: NonNull<sys::rte_mbuf>,
}

// SAFETY: an Mbuf is exclusively owned; freeing it from any thread is allowed (MT-safe pool).
unsafe impl Send for Mbuf {}

impl std::fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mbuf").field("len", &self.len()).finish()
    }
}

impl Mbuf {
    /// The packet bytes (`data_len` bytes at `buf_addr + data_off`).
    #[inline]
    pub fn data(&self) -> &[u8] {
        // SAFETY: self owns the live mbuf; the shared borrow of self covers the slice.
        unsafe { raw::data(self.raw.as_ptr()) }
    }
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: self owns the live mbuf; the exclusive borrow of self covers the slice.
        unsafe { raw::data(self.raw.as_ptr()) }
    }
    #[inline]
    pub fn len(&self) -> usize {
        // SAFETY: self owns the live mbuf.
        unsafe { raw::len(self.raw.as_ptr()) }
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Sets data_len and pkt_len to `n` if it fits the room after the headroom; else `false`.
    #[inline]
    pub fn set_len(&mut self, n: usize) -> bool {
        // SAFETY: self owns the live mbuf exclusively.
        unsafe { raw::set_len(self.raw.as_ptr(), n) }
    }
    /// The NIC's RSS hash, if it set one.
    #[inline]
    pub fn rss_hash(&self) -> Option<u32> {
        // SAFETY: self owns the live mbuf.
        unsafe { raw::rss_hash(self.raw.as_ptr()) }
    }
    /// Bytes free in front of the data.
    #[inline]
    pub fn headroom(&self) -> usize {
        // SAFETY: self owns the live mbuf.
        unsafe { raw::headroom(self.raw.as_ptr()) }
    }
    /// Grows the data by `n` bytes at the front (`rte_pktmbuf_prepend`); `false` if no room.
    #[inline]
    pub fn prepend(&mut self, n: usize) -> bool {
        // SAFETY: self owns the live mbuf exclusively.
        unsafe { raw::prepend(self.raw.as_ptr(), n) }
    }
    /// Removes `n` bytes from the front (`rte_pktmbuf_adj`); `false` if shorter than `n`.
    #[inline]
    pub fn adj(&mut self, n: usize) -> bool {
        // SAFETY: self owns the live mbuf exclusively.
        unsafe { raw::adj(self.raw.as_ptr(), n) }
    }

    fn into_raw(self) -> *mut sys::rte_mbuf {
        let p = self.raw.as_ptr();
        std::mem::forget(self);
        p
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: self owns the live mbuf and never uses it again.
        unsafe { sys::rvs_pktmbuf_free(self.raw.as_ptr()) }
    }
}

/// A borrowed view of one mbuf held by a [`Burst`].
pub struct MbufRef<'a> {
    raw: NonNull<sys::rte_mbuf>,
    _burst: PhantomData<&'a mut Burst>,
}

impl MbufRef<'_> {
    #[inline]
    pub fn data(&self) -> &[u8] {
        // SAFETY: the burst owns the live mbuf and is exclusively borrowed for 'a.
        unsafe { raw::data(self.raw.as_ptr()) }
    }
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above; the slice borrows self exclusively.
        unsafe { raw::data(self.raw.as_ptr()) }
    }
    #[inline]
    pub fn len(&self) -> usize {
        // SAFETY: as above.
        unsafe { raw::len(self.raw.as_ptr()) }
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    #[inline]
    pub fn set_len(&mut self, n: usize) -> bool {
        // SAFETY: as above.
        unsafe { raw::set_len(self.raw.as_ptr(), n) }
    }
    #[inline]
    pub fn rss_hash(&self) -> Option<u32> {
        // SAFETY: as above.
        unsafe { raw::rss_hash(self.raw.as_ptr()) }
    }
    #[inline]
    pub fn headroom(&self) -> usize {
        // SAFETY: as above.
        unsafe { raw::headroom(self.raw.as_ptr()) }
    }
    #[inline]
    pub fn prepend(&mut self, n: usize) -> bool {
        // SAFETY: as above.
        unsafe { raw::prepend(self.raw.as_ptr(), n) }
    }
    #[inline]
    pub fn adj(&mut self, n: usize) -> bool {
        // SAFETY: as above.
        unsafe { raw::adj(self.raw.as_ptr(), n) }
    }
}

/// Up to [`BURST`] owned mbufs in a fixed array (no allocation). Slots `0..len()` were filled by
/// `rx_burst`/`push`; a slot emptied by [`Burst::free`] or [`Burst::take`] reads as `None` until
/// the next compaction (done by `rx_burst`, `tx_burst`, `push` when full, `compact`).
/// `Drop` frees every mbuf still held.
pub struct Burst {
    slots: [*mut sys::rte_mbuf; BURST],
    len: usize,
    holes: usize,
}

// SAFETY: a Burst exclusively owns the mbufs it holds; see `Mbuf`.
unsafe impl Send for Burst {}

impl Default for Burst {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Burst {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Burst")
            .field("len", &self.len)
            .field("holes", &self.holes)
            .finish()
    }
}

impl Burst {
    pub const fn new() -> Self {
        Burst {
            slots: [ptr::null_mut(); BURST],
            len: 0,
            holes: 0,
        }
    }

    /// Slots in use, freed ones included (iterate `0..len()` with [`Burst::get_mut`]).
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Mbufs actually held (`len()` minus freed slots).
    #[inline]
    pub fn count(&self) -> usize {
        self.len - self.holes
    }

    /// The mbuf in slot `i`, or `None` if `i >= len()` or the slot was freed.
    #[inline]
    pub fn get_mut(&mut self, i: usize) -> Option<MbufRef<'_>> {
        let p = *self.slots.get(i)?;
        if i >= self.len {
            return None;
        }
        NonNull::new(p).map(|raw| MbufRef {
            raw,
            _burst: PhantomData,
        })
    }

    /// The data of the mbuf in slot `i` (read-only), as [`Burst::get_mut`].
    #[inline]
    pub fn data(&self, i: usize) -> Option<&[u8]> {
        let p = *self.slots.get(i)?;
        if i >= self.len || p.is_null() {
            return None;
        }
        // SAFETY: the burst owns the live mbuf; the shared borrow of self covers the slice.
        Some(unsafe { raw::data(p) })
    }

    /// The data of the mbuf in slot `i`, to rewrite in place, as [`Burst::get_mut`].
    #[inline]
    pub fn data_mut(&mut self, i: usize) -> Option<&mut [u8]> {
        let p = *self.slots.get(i)?;
        if i >= self.len || p.is_null() {
            return None;
        }
        // SAFETY: the burst owns the live mbuf; the exclusive borrow of self covers the slice,
        // so no other reference to this mbuf's data exists while it lives.
        Some(unsafe { raw::data(p) })
    }

    /// Prefetches the data of slot `i` into the cache (`rte_prefetch0`); no-op if empty.
    #[inline]
    pub fn prefetch(&self, i: usize) {
        if let Some(d) = self.data(i) {
            // SAFETY: a prefetch hint on a valid address; it never faults.
            unsafe { sys::rvs_prefetch0(d.as_ptr().cast()) }
        }
    }

    /// Appends `m`; gives it back if the burst is full.
    #[inline]
    pub fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        if self.len == BURST {
            self.compact();
        }
        match self.slots.get_mut(self.len) {
            Some(slot) => {
                *slot = m.into_raw();
                self.len += 1;
                Ok(())
            }
            None => Err(m),
        }
    }

    /// Frees the mbuf in slot `i` now and leaves the slot empty (no-op if already empty).
    #[inline]
    pub fn free(&mut self, i: usize) {
        if let Some(m) = self.take(i) {
            drop(m);
        }
    }

    /// Takes the mbuf out of slot `i`, leaving the slot empty.
    #[inline]
    pub fn take(&mut self, i: usize) -> Option<Mbuf> {
        if i >= self.len {
            return None;
        }
        let slot = self.slots.get_mut(i)?;
        let raw = NonNull::new(std::mem::replace(slot, ptr::null_mut()))?;
        self.holes += 1;
        Some(Mbuf { raw })
    }

    /// Moves the held mbufs to the front, keeping their order, and drops the empty slots.
    #[inline]
    pub fn compact(&mut self) {
        if self.holes == 0 {
            return;
        }
        let mut w = 0;
        for r in 0..self.len {
            let p = self.slots[r];
            if !p.is_null() {
                self.slots[w] = p;
                w += 1;
            }
        }
        for s in &mut self.slots[w..self.len] {
            *s = ptr::null_mut();
        }
        self.len = w;
        self.holes = 0;
    }

    /// Frees every mbuf held.
    pub fn clear(&mut self) {
        self.compact();
        if self.len > 0 {
            // SAFETY: slots[..len] are live mbufs owned by this burst, none used afterwards.
            unsafe { sys::rvs_pktmbuf_free_bulk(self.slots.as_mut_ptr(), self.len as c_uint) };
        }
        self.slots = [ptr::null_mut(); BURST];
        self.len = 0;
    }
}

impl Drop for Burst {
    fn drop(&mut self) {
        self.clear();
    }
}

// ---------------------------------------------------------------------------------------------
// Ports and queues

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
        let (rss_ip, rss_tcp, rss_udp, rss_hash_offload) = unsafe {
            (
                sys::rvs_ETH_RSS_IP,
                sys::rvs_ETH_RSS_TCP,
                sys::rvs_ETH_RSS_UDP,
                sys::rvs_ETH_RX_OFFLOAD_RSS_HASH,
            )
        };
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
        LIVE_OBJECTS.fetch_add(1, Ordering::AcqRel);
        Ok(Port {
            shared: Arc::new(PortShared {
                id: id.0,
                queues,
                taken: Mutex::new(vec![false; usize::from(queues)]),
                started: AtomicBool::new(false),
                _pool: pool.clone(),
            }),
            promiscuous: conf.promiscuous,
            driver,
            rss,
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

    pub fn stats(&self) -> PortStats {
        port_stats(self.id())
    }

    pub fn link(&self) -> Link {
        let mut l = sys::rte_eth_link::default();
        // SAFETY: l is a valid, writable rte_eth_link for the call.
        let ret = unsafe { sys::rte_eth_link_get_nowait(self.shared.id, &mut l) };
        if ret < 0 {
            return Link::default();
        }
        Link {
            up: u32::from(l.link_status()) == sys::RTE_ETH_LINK_UP,
            speed_mbps: l.link_speed,
            full_duplex: u32::from(l.link_duplex()) == sys::RTE_ETH_LINK_FULL_DUPLEX,
        }
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

/// Counters of port `id` (`rte_eth_stats_get`); zeros if the port is unknown.
pub fn port_stats(id: PortId) -> PortStats {
    if eal_running("eth_stats_get").is_err() {
        return PortStats::default();
    }
    let mut s = sys::rte_eth_stats::default();
    // SAFETY: s is a valid, writable rte_eth_stats for the call; an invalid id returns -ENODEV.
    let ret = unsafe { sys::rte_eth_stats_get(id.0, &mut s) };
    if ret < 0 {
        return PortStats::default();
    }
    PortStats {
        ipackets: s.ipackets,
        opackets: s.opackets,
        ibytes: s.ibytes,
        obytes: s.obytes,
        imissed: s.imissed,
        ierrors: s.ierrors,
        oerrors: s.oerrors,
        rx_nombuf: s.rx_nombuf,
    }
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
        from.compact();
        let len = from.len;
        if len == 0 {
            return (0, 0);
        }
        // SAFETY: this Queue is the only user of tx queue `q`; slots[..len] are live mbufs owned
        // by `from`, whose ownership passes to the driver for the first `sent` of them.
        let sent = unsafe {
            sys::rvs_eth_tx_burst(self.port, self.q, from.slots.as_mut_ptr(), len as u16)
        };
        let sent = usize::from(sent).min(len);
        let unsent = len - sent;
        if unsent > 0 {
            // SAFETY: slots[sent..len] are still owned by `from` and not used afterwards.
            unsafe {
                sys::rvs_pktmbuf_free_bulk(from.slots.as_mut_ptr().add(sent), unsent as c_uint)
            };
        }
        for s in &mut from.slots[..len] {
            *s = ptr::null_mut();
        }
        from.len = 0;
        from.holes = 0;
        (sent, unsent)
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        if let Some(t) = lock(&self.shared.taken).get_mut(usize::from(self.q)) {
            *t = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_burst_behaves() {
        let mut b = Burst::new();
        assert_eq!(b.len(), 0);
        assert_eq!(b.count(), 0);
        assert!(b.get_mut(0).is_none());
        assert!(b.get_mut(BURST + 5).is_none());
        assert!(b.data(3).is_none());
        assert!(b.take(0).is_none());
        b.free(7);
        b.compact();
        assert!(b.is_empty());
        b.prefetch(0);
    }

    #[test]
    fn panic_messages() {
        let p = catch_unwind(|| panic!("boom {}", 7)).unwrap_err();
        assert_eq!(panic_message(&*p), "panicked: boom 7");
        let p = catch_unwind(|| panic!("static")).unwrap_err();
        assert_eq!(panic_message(&*p), "panicked: static");
    }

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
        assert_eq!(port_stats(PortId(0)), PortStats::default());
    }

    #[test]
    fn error_text_comes_from_rte_strerror() {
        let e = DpdkError::from_errno("op", -errno::EINVAL);
        assert_eq!(e.errno, errno::EINVAL);
        assert_eq!(e.msg, "Invalid argument");
        assert_eq!(e.to_string(), "op: Invalid argument (errno 22)");
    }
}
