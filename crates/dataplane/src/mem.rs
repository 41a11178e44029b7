//! Memory hints for the flow table: a cache prefetch and a transparent-huge-page advice. The
//! only module of this crate with `unsafe` (two blocks, each with its `// SAFETY:` line); the
//! rest of the crate forbids it.
#![allow(unsafe_code)]

/// Hint the CPU to bring the cache line holding the start of `r` into all cache levels
/// (`prefetcht0`), so a later access does not stall on memory. No-op off x86_64.
#[inline(always)]
pub fn prefetch<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    // Newer toolchains declare the intrinsic safe (SSE is part of the x86_64 baseline).
    #[allow(unused_unsafe)]
    // SAFETY: a prefetch is only a hint: it never faults, even on an invalid address, and has
    // no architectural effect; the pointer comes from a live reference anyway. SSE, which the
    // instruction needs, is part of the x86_64 baseline.
    unsafe {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>((r as *const T).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}

/// Ask the kernel to back `buf` with transparent huge pages (`madvise(MADV_HUGEPAGE)` on the
/// 2 MiB-aligned pages inside it), so big tables read at random places cost one TLB entry per
/// 2 MiB instead of per 4 KiB. Best called on memory not touched yet (e.g. a `Vec`'s spare
/// capacity), so the first touch faults huge pages in. Only a hint: returns whether the kernel
/// accepted it (false when `buf` holds no whole huge page, or THP is off). A syscall: call at
/// start-up, never on the fast path.
pub fn advise_hugepages<T>(buf: &mut [T]) -> bool {
    const HUGE: usize = 2 << 20;
    let start = buf.as_ptr() as usize;
    let Some(end) = start.checked_add(std::mem::size_of_val(buf)) else {
        return false;
    };
    let Some(first) = start.checked_next_multiple_of(HUGE) else {
        return false;
    };
    let last = end - end % HUGE;
    if last <= first {
        return false;
    }
    // SAFETY: [first, last) lies inside `buf`, which we borrow mutably, so no other code
    // uses the range meanwhile; MADV_HUGEPAGE changes only how the kernel backs the pages,
    // never their contents or mapping, so the memory stays valid for `buf`'s owner.
    let rc = unsafe {
        libc::madvise(
            first as *mut libc::c_void,
            last - first,
            libc::MADV_HUGEPAGE,
        )
    };
    rc == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hugepage_advice_covers_whole_huge_pages_only() {
        // Less than one aligned huge page: nothing to advise.
        let mut small = vec![0u8; 4096];
        assert!(!advise_hugepages(&mut small[..]));
        let mut empty: [u64; 0] = [];
        assert!(!advise_hugepages(&mut empty[..]));
        // 8 MiB reserved: at least three whole huge pages inside; accepted when THP is usable.
        let mut big: Vec<u64> = Vec::with_capacity(1 << 20);
        let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .map(|s| !s.contains("[never]"))
            .unwrap_or(false);
        assert_eq!(advise_hugepages(big.spare_capacity_mut()), thp);
        big.resize(1 << 20, 7);
        assert!(big.iter().all(|&x| x == 7));
        // prefetch is only a hint
        prefetch(&big[12345]);
        prefetch(&());
    }
}
