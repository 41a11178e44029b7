//! Maglev consistent hashing (Eisenbud et al., NSDI'16, section 3.4), with weights.
//!
//! Every backend gets a permutation of the `M` table positions (M prime) from two hashes of its
//! identity: `offset` in `0..M` and `skip` in `1..M`, position j of the permutation being
//! `(offset + j * skip) mod M`. Backends take turns claiming the next free position of their
//! permutation until the table is full. Because a backend's permutation depends only on its own
//! identity, removing one backend moves (almost) only the positions it held.
//!
//! Weights decide how often a backend takes a turn (stride scheduling: after any number of
//! positions each backend holds its weight's share within one position), where IPVS's `mh`
//! gives a backend `weight / gcd` turns in a row per round, which skews shares when weights are
//! large. Turn order ties go to the smaller identity, so the table depends only on the set of
//! backends, not on the order they were configured in. Weight-0 backends claim nothing.
//!
//! The table is built by the control thread when a snapshot is built and is immutable after.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Default table size: a prime well above the number of backends (Maglev's M = 65537).
pub const DEFAULT_SIZE: usize = 65_537;

/// Marks an empty position (no backend has a weight above 0).
pub const NONE: u32 = u32::MAX;

/// A 64-bit finaliser (SplitMix64): every input bit affects every output bit.
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Build a lookup table of `m` positions (`m` should be prime; at least 2) over `backends`,
/// each given as (identity, weight). Position values index `backends`; [`NONE`] only when no
/// backend has a weight above 0. Deterministic: the same input gives the same table.
pub fn build(backends: &[(u64, u32)], m: usize) -> Box<[u32]> {
    let m = m.max(2);
    let mm = m as u64;
    let mut table = vec![NONE; m].into_boxed_slice();
    // Permutation state per backend: next candidate position and skip.
    let mut next: Vec<u64> = backends
        .iter()
        .map(|b| mix64(b.0 ^ 0x6d61_676c_6576_0001) % mm)
        .collect();
    let skip: Vec<u64> = backends
        .iter()
        .map(|b| mix64(b.0 ^ 0x6d61_676c_6576_0002) % (mm - 1) + 1)
        .collect();
    // Turns by stride scheduling: the backend with the smallest pass claims the next position
    // and advances its pass by STRIDE / weight, so after any number of positions every backend
    // has claimed its weight's share within one position. Ties go to the smaller identity, so
    // the table depends only on the set of backends, not on the order they were configured in
    // (equal weights: classic Maglev rounds in identity order).
    const STRIDE: u64 = 1 << 40;
    let mut heap: BinaryHeap<Reverse<(u64, u64, usize)>> = backends
        .iter()
        .enumerate()
        .filter(|(_, b)| b.1 > 0)
        .map(|(i, b)| Reverse((STRIDE / u64::from(b.1), b.0, i)))
        .collect();
    let mut filled = 0usize;
    while filled < m {
        let Some(Reverse((pass, id, i))) = heap.pop() else {
            break;
        };
        // The table has a free position and the permutation visits every position (skip < M,
        // M prime), so this terminates.
        let mut c = next[i];
        while table[c as usize] != NONE {
            c = (c + skip[i]) % mm;
        }
        table[c as usize] = i as u32;
        next[i] = (c + skip[i]) % mm;
        filled += 1;
        let w = u64::from(backends[i].1);
        heap.push(Reverse((pass + STRIDE / w, id, i)));
    }
    table
}

/// The identity of a real server for its permutation: address and port.
#[inline]
pub fn backend_id(addr: u32, port: u16) -> u64 {
    (u64::from(addr) << 16) | u64::from(port)
}

/// Position of a lookup key (e.g. source address, optionally with the source port) in a table
/// of `m` positions; `attempt` > 0 gives independent positions for fallback probing.
#[inline]
pub fn slot(key: u64, attempt: u32, m: usize) -> usize {
    let h = mix64(key ^ (u64::from(attempt) << 48) ^ 0x6d61_676c_6576_6b79);
    (h % (m.max(1) as u64)) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn counts(t: &[u32], n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for &v in t {
            c[v as usize] += 1;
        }
        c
    }

    fn ids(n: usize) -> Vec<(u64, u32)> {
        (0..n)
            .map(|i| (backend_id(0xc612_0000 + i as u32, 80), 1))
            .collect()
    }

    #[test]
    fn empty_and_all_zero_give_none() {
        assert!(build(&[], 7).iter().all(|&v| v == NONE));
        assert!(build(&[(1, 0), (2, 0)], 7).iter().all(|&v| v == NONE));
    }

    #[test]
    fn every_position_filled_and_equal_shares() {
        let t = build(&ids(10), 65_537);
        assert!(t.iter().all(|&v| v < 10));
        for c in counts(&t, 10) {
            // Maglev with equal weights: shares within a few positions of M/N.
            assert!((6550..=6560).contains(&c), "{c}");
        }
    }

    #[test]
    fn weight_zero_gets_nothing_and_build_is_deterministic() {
        let mut b = ids(4);
        b[2].1 = 0;
        let t = build(&b, 1009);
        let c = counts(&t, 4);
        assert_eq!(c[2], 0);
        assert_eq!(c.iter().sum::<usize>(), 1009);
        assert_eq!(build(&b, 1009), t);
    }

    #[test]
    fn large_weights_are_scaled_not_starved() {
        // gcd 1, weights far above M: every backend still gets a share close to its weight.
        let b: Vec<(u64, u32)> = (0..50u32)
            .map(|i| (backend_id(i, 1), if i % 2 == 0 { 65_535 } else { 32_768 }))
            .collect();
        let t = build(&b, 65_537);
        let c = counts(&t, 50);
        let total: f64 = b.iter().map(|x| f64::from(x.1)).sum();
        for (i, x) in b.iter().enumerate() {
            let want = f64::from(x.1) / total;
            let got = c[i] as f64 / 65_537.0;
            assert!((got - want).abs() < want * 0.1, "{i}: {got} vs {want}");
        }
    }

    fn moved(a: &[u32], b: &[u32], map_b_to_a: impl Fn(u32) -> u32) -> f64 {
        let n = a
            .iter()
            .zip(b)
            .filter(|(x, y)| **x != map_b_to_a(**y))
            .count();
        n as f64 / a.len() as f64
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]

        /// Removing one of N backends moves about 1/N of the keys (only the ones it had, plus
        /// a little); adding it back moves about 1/(N+1)... of the new table.
        #[test]
        fn minimal_disruption(n in 5usize..20, gone in 0usize..20, seed in any::<u32>()) {
            let gone = gone % n;
            let full: Vec<(u64, u32)> = (0..n)
                .map(|i| (backend_id(seed.wrapping_add(i as u32 * 7919), 80), 1))
                .collect();
            let mut less = full.clone();
            less.remove(gone);
            let t_full = build(&full, DEFAULT_SIZE);
            let t_less = build(&less, DEFAULT_SIZE);
            // Index in `less` -> index in `full`.
            let up = |i: u32| if (i as usize) < gone { i } else { i + 1 };
            let removal = moved(&t_full, &t_less, up);
            let bound = 1.0 / n as f64 + 0.05;
            prop_assert!(removal < bound, "removal moved {removal}, bound {bound}");
            prop_assert!(removal >= 1.0 / n as f64 * 0.9);
            // Adding it back (the same table as before): the same fraction moves back.
            let added = moved(&t_less, &t_full, |i| {
                if i as usize == gone { u32::MAX } else if (i as usize) < gone { i } else { i - 1 }
            });
            prop_assert!(added < 1.0 / n as f64 + 0.05, "adding moved {added}");
        }

        #[test]
        fn shares_follow_weights(w in proptest::collection::vec(1u32..=100, 2..16)) {
            let b: Vec<(u64, u32)> = w.iter().enumerate()
                .map(|(i, &w)| (backend_id(0x0a00_0000 + i as u32, 443), w))
                .collect();
            let t = build(&b, DEFAULT_SIZE);
            let c = counts(&t, b.len());
            let total: f64 = w.iter().map(|&x| f64::from(x)).sum();
            for (i, &x) in w.iter().enumerate() {
                let want = f64::from(x) / total;
                let got = c[i] as f64 / DEFAULT_SIZE as f64;
                prop_assert!((got - want).abs() < 0.01 + want * 0.05, "{i}: {got} vs {want}");
            }
        }
    }

    /// `cargo test --release -- --ignored maglev_build_time --nocapture`
    #[test]
    #[ignore]
    fn maglev_build_time() {
        let b: Vec<(u64, u32)> = (0..1000u32)
            .map(|i| (backend_id(0xc612_0000 + i, 80), 1 + i % 7))
            .collect();
        let t0 = std::time::Instant::now();
        let t = build(&b, DEFAULT_SIZE);
        let el = t0.elapsed();
        let t1 = std::time::Instant::now();
        let u = build(&ids(1000), DEFAULT_SIZE);
        let el1 = t1.elapsed();
        assert!(t.iter().chain(u.iter()).all(|&v| v < 1000));
        println!(
            "maglev build, 1000 servers, M={DEFAULT_SIZE}: weights 1..7 {:?}, equal weights {:?}",
            el, el1
        );
    }
}
