//! Packet mbuf pools: [`Mempool`], shared by reference count; the pool itself is freed by the
//! last owner (see the module notes of [`crate::dpdk`]).

use super::eal::{eal_running, LIVE_OBJECTS};
use super::mbuf::{Burst, Mbuf};
use super::{errno, DpdkError, BURST};
use dpdk_sys as sys;
use std::ffi::{c_uint, CString};
use std::ptr::NonNull;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

/// The pool proper; freed when the last [`Mempool`] clone and [`Port`](super::Port) using it
/// are gone.
pub(super) struct PoolInner {
    pub(super) raw: NonNull<sys::rte_mempool>,
    name: String,
    /// Mbufs in the pool and the per-lcore cache size, as created.
    size: u32,
    cache_size: u32,
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
    pub(super) inner: Arc<PoolInner>,
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
                size: n,
                cache_size: cache,
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

    /// Mbufs in the pool (`n` at creation).
    pub fn size(&self) -> u32 {
        self.inner.size
    }

    /// Mbufs each lcore may keep in its cache (`cache` at creation).
    pub fn cache_size(&self) -> u32 {
        self.inner.cache_size
    }

    /// Size, cache size, in use and free, read together. Slow: not for the fast path.
    pub fn counts(&self) -> MempoolCounts {
        self.inner.counts()
    }

    /// A handle that reads this pool's counts without keeping the pool alive (for reporting
    /// from threads that may outlive the engine's pool).
    pub fn watch(&self) -> MempoolWatch {
        MempoolWatch {
            inner: Arc::downgrade(&self.inner),
        }
    }
}

/// What a pool holds at one moment. DPDK counts the mbufs sitting in the per-lcore caches as
/// free (`rte_mempool_avail_count` adds every cache's length to the ring's count), so `in_use`
/// is exactly the mbufs allocated and not yet freed: in the NIC's rx/tx rings, in a worker's
/// burst, or leaked. `in_use + free == size` always. The caches are read without stopping the
/// lcores that own them, so a reading taken under traffic is a snapshot, not a sum at one
/// instant; at idle it is exact.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MempoolCounts {
    pub size: u32,
    pub cache_size: u32,
    pub in_use: u32,
    pub free: u32,
}

impl PoolInner {
    fn counts(&self) -> MempoolCounts {
        // SAFETY: the pool is live (we hold it); the count reads only plain fields.
        let free = unsafe { sys::rte_mempool_avail_count(self.raw.as_ptr()) };
        MempoolCounts {
            size: self.size,
            cache_size: self.cache_size,
            // The same arithmetic as rte_mempool_in_use_count, from the one reading.
            in_use: self.size.saturating_sub(free),
            free,
        }
    }
}

/// A [`Mempool`]'s counts, readable while the pool lives; `None` once it is gone.
#[derive(Debug, Clone)]
pub struct MempoolWatch {
    inner: Weak<PoolInner>,
}

impl MempoolWatch {
    /// The pool's counts, or `None` if the pool was freed.
    pub fn counts(&self) -> Option<MempoolCounts> {
        self.inner.upgrade().map(|p| p.counts())
    }
}
