//! Mbufs: [`Mbuf`] (owned), [`MbufRef`] (borrowed from a burst), [`Burst`] (up to [`BURST`] owned
//! mbufs in a fixed array), and the `raw` accessors they share.
//!
//! Borrowing rule: a `&self` accessor hands out `&[u8]` (through `raw::data`), only a
//! `&mut self` accessor hands out `&mut [u8]` (through `raw::data_mut`); a shared borrow never
//! creates a mutable slice.

use super::BURST;
use dpdk_sys as sys;
use std::ffi::c_uint;
use std::marker::PhantomData;
use std::ptr::{self, NonNull};

/// What the NIC reported of a received frame's IPv4 header checksum (`RX_IP_CKSUM` flags of
/// the mbuf; `NONE`, "the header's integrity is verified", counts as good).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpCsum {
    /// Not checked (no offload, not IPv4, or a virtual device).
    Unknown,
    Good,
    Bad,
}

/// Accessors shared by [`Mbuf`], [`MbufRef`] and [`Burst`]. All take a pointer to a live mbuf
/// owned by the caller; only the first segment is seen (rvs does not enable scattered rx).
mod raw {
    use dpdk_sys as sys;
    use std::slice;

    /// Where the data of `m` lies inside its buffer: `(start, len)`, with `len` clamped so the
    /// range never leaves the buffer even if a driver misbehaves; `None` if there is no data.
    ///
    /// # Safety
    /// `m` points to a live mbuf that nobody writes to during the call.
    #[inline]
    unsafe fn span(m: *const sys::rte_mbuf) -> Option<(*mut u8, usize)> {
        // SAFETY: m is live and not written concurrently (caller); only plain fields are read.
        let (base, off, buf_len, data_len) = unsafe {
            (
                (*m).buf_addr.cast::<u8>(),
                usize::from((*m).data_off),
                usize::from((*m).buf_len),
                usize::from((*m).data_len),
            )
        };
        let len = data_len.min(buf_len.saturating_sub(off));
        if base.is_null() || len == 0 {
            return None;
        }
        // SAFETY: off + len <= buf_len, so base + off stays inside the mbuf's buffer
        // (buf_addr..buf_addr + buf_len).
        Some((unsafe { base.add(off) }, len))
    }

    /// The packet bytes of `m`, read-only (`data_len` bytes at `buf_addr + data_off`).
    ///
    /// # Safety
    /// `m` points to a live mbuf owned by the caller, whose data nobody writes to for `'a`.
    #[inline]
    pub unsafe fn data<'a>(m: *const sys::rte_mbuf) -> &'a [u8] {
        // SAFETY: m is live and its data not written for 'a (caller).
        match unsafe { span(m) } {
            // SAFETY: [p, p + len) lies inside the mbuf's buffer (span) and is only read for 'a.
            Some((p, len)) => unsafe { slice::from_raw_parts(p.cast_const(), len) },
            None => &[],
        }
    }

    /// The packet bytes of `m`, to rewrite in place.
    ///
    /// # Safety
    /// `m` points to a live mbuf owned by the caller, whose data nobody else reads or writes
    /// for `'a`.
    #[inline]
    pub unsafe fn data_mut<'a>(m: *mut sys::rte_mbuf) -> &'a mut [u8] {
        // SAFETY: m is live and exclusive for 'a (caller).
        match unsafe { span(m) } {
            // SAFETY: [p, p + len) lies inside the mbuf's buffer (span) and nobody else uses it
            // for 'a (caller).
            Some((p, len)) => unsafe { slice::from_raw_parts_mut(p, len) },
            None => &mut [],
        }
    }

    /// # Safety
    /// `m` points to a live mbuf owned by the caller.
    #[inline]
    pub unsafe fn len(m: *const sys::rte_mbuf) -> usize {
        // SAFETY: m is live (caller).
        unsafe { (*m).data_len as usize }
    }

    /// # Safety
    /// As for [`data_mut`].
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
    /// As for [`len`].
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
    /// As for [`len`].
    #[inline]
    pub unsafe fn ip_csum(m: *const sys::rte_mbuf) -> super::IpCsum {
        // SAFETY: m is live (caller).
        let flags = unsafe { (*m).ol_flags } & u64::from(sys::RTE_MBUF_F_RX_IP_CKSUM_MASK);
        match flags as u32 {
            sys::RTE_MBUF_F_RX_IP_CKSUM_GOOD | sys::RTE_MBUF_F_RX_IP_CKSUM_NONE => {
                super::IpCsum::Good
            }
            sys::RTE_MBUF_F_RX_IP_CKSUM_BAD => super::IpCsum::Bad,
            _ => super::IpCsum::Unknown,
        }
    }

    /// # Safety
    /// As for [`len`].
    #[inline]
    pub unsafe fn headroom(m: *const sys::rte_mbuf) -> usize {
        // SAFETY: m is live (caller).
        unsafe { (*m).data_off as usize }
    }

    /// # Safety
    /// As for [`data_mut`].
    #[inline]
    pub unsafe fn prepend(m: *mut sys::rte_mbuf, n: usize) -> bool {
        let Ok(n) = u16::try_from(n) else {
            return false;
        };
        // SAFETY: m is live and exclusive (caller); rte_pktmbuf_prepend checks the headroom.
        unsafe { !sys::rvs_pktmbuf_prepend(m, n).is_null() }
    }

    /// # Safety
    /// As for [`data_mut`].
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
    pub(super) raw: NonNull<sys::rte_mbuf>,
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
        unsafe { raw::data_mut(self.raw.as_ptr()) }
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
        unsafe { raw::data_mut(self.raw.as_ptr()) }
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
    pub(super) slots: [*mut sys::rte_mbuf; BURST],
    pub(super) len: usize,
    pub(super) holes: usize,
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
        Some(unsafe { raw::data_mut(p) })
    }

    /// The NIC's IPv4 header checksum verdict for slot `i` ([`IpCsum::Unknown`] if empty).
    #[inline]
    pub fn ip_csum(&self, i: usize) -> IpCsum {
        match self.slots.get(i) {
            Some(&p) if i < self.len && !p.is_null() => {
                // SAFETY: the burst owns the live mbuf.
                unsafe { raw::ip_csum(p) }
            }
            _ => IpCsum::Unknown,
        }
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
    fn raw_data_views_stay_inside_the_buffer() {
        // A hand-made mbuf header over a local buffer: the raw accessors read plain fields only,
        // so no EAL is needed (no mbuf here is ever freed to a pool).
        let mut buf: Vec<u8> = (0..64).collect();
        let mut m = sys::rte_mbuf {
            buf_addr: buf.as_mut_ptr().cast(),
            buf_len: 64,
            data_off: 16,
            data_len: 8,
            nb_segs: 1,
            ..Default::default()
        };
        let p: *mut sys::rte_mbuf = &mut m;
        // SAFETY: p points to a live header over `buf`; nothing else touches either meanwhile,
        // and each slice is dead before the next accessor runs.
        unsafe {
            assert_eq!(raw::data(p), &[16, 17, 18, 19, 20, 21, 22, 23]);
            raw::data_mut(p)[0] = 99;
            assert_eq!(raw::data(p)[0], 99);
            assert_eq!(raw::len(p), 8);
            assert_eq!(raw::headroom(p), 16);
            // data_len past the end of the buffer is clamped to the room after the headroom.
            (*p).data_len = 1000;
            assert_eq!(raw::data(p).len(), 48);
            assert_eq!(raw::data_mut(p).len(), 48);
            // set_len refuses more than the room.
            assert!(!raw::set_len(p, 49));
            assert!(raw::set_len(p, 48));
            assert_eq!((*p).pkt_len, 48);
            // No buffer: empty views.
            (*p).buf_addr = ptr::null_mut();
            assert!(raw::data(p).is_empty());
            assert!(raw::data_mut(p).is_empty());
        }
        assert_eq!(buf[16], 99);
    }
}
