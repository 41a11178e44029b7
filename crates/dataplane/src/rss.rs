//! Which rx queue the NIC gives a flow: the Toeplitz hash of receive-side scaling over the
//! frame's addresses (and ports), then the redirection table (RETA). Connection sync uses it
//! to install a peer's flow in the worker that will receive the flow's frames after a
//! takeover ([`router`] → [`crate::sync::SyncRings::with_router`]).
//!
//! The hash input of an IPv4 frame is its source address, destination address, then (when
//! the port hashes that protocol's ports) source port and destination port, all in network
//! order. A flow record describes the client → VIP direction, the one frames arrive in:
//! source = client, destination = VIP.
//!
//! The key and the RETA are the port's own: the daemon reads them from the device (DPDK's
//! `rte_eth_dev_rss_hash_conf_get`, `rte_eth_dev_rss_reta_query`) along with which flow types
//! hash their ports (`rss_hf`). [`DEFAULT_KEY`] is the key of the RSS specification's
//! verification tables (and many drivers' default); a device that keeps another key or
//! another function (symmetric Toeplitz, a plain XOR) needs its own mapping.

use crate::sync::{FlowRecord, Router};

/// The 40-byte key of the RSS verification tables.
pub const DEFAULT_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

/// The Toeplitz hash of `input` under `key`: for every set bit of the input (most
/// significant first), the 32 key bits starting at that bit's position are XORed in. Key bits
/// past the key's end count as zeros (a 40-byte key covers 36 bytes of input).
pub fn toeplitz(key: &[u8], input: &[u8]) -> u32 {
    let key_byte = |i: usize| u32::from(key.get(i).copied().unwrap_or(0));
    // The 32-bit window of the key at the current bit, and the next key byte to shift in.
    let mut window = (key_byte(0) << 24) | (key_byte(1) << 16) | (key_byte(2) << 8) | key_byte(3);
    let mut hash = 0u32;
    for (i, byte) in input.iter().enumerate() {
        let next = key_byte(i + 4);
        for bit in 0..8 {
            if byte & (0x80 >> bit) != 0 {
                hash ^= window;
            }
            window = (window << 1) | ((next >> (7 - bit)) & 1);
        }
    }
    hash
}

/// The RSS hash of an IPv4 frame from `src`:`sport` to `dst`:`dport` (host order), over the
/// ports too when `l4`.
pub fn hash_v4(key: &[u8], src: u32, dst: u32, sport: u16, dport: u16, l4: bool) -> u32 {
    let mut input = [0u8; 12];
    input[0..4].copy_from_slice(&src.to_be_bytes());
    input[4..8].copy_from_slice(&dst.to_be_bytes());
    input[8..10].copy_from_slice(&sport.to_be_bytes());
    input[10..12].copy_from_slice(&dport.to_be_bytes());
    let n = if l4 { 12 } else { 8 };
    toeplitz(key, input.get(..n).unwrap_or_default())
}

/// A port's RSS setup, as read from the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rss {
    pub key: Vec<u8>,
    /// The redirection table: entry `hash % len` names the rx queue (tables are a power of
    /// two long, where this is the hash's low bits).
    pub reta: Vec<u16>,
    /// Whether TCP / UDP frames hash their ports (the port's `rss_hf` has RSS_TCP / RSS_UDP);
    /// other protocols hash the addresses only.
    pub tcp_ports: bool,
    pub udp_ports: bool,
}

impl Rss {
    /// The RSS hash of the frames of flow `r` (client → VIP).
    pub fn hash(&self, r: &FlowRecord) -> u32 {
        let l4 = match r.proto {
            6 => self.tcp_ports,
            17 => self.udp_ports,
            _ => false,
        };
        hash_v4(&self.key, r.client, r.vip, r.client_port, r.vport, l4)
    }

    /// The rx queue the NIC gives flow `r` (0 with an empty table).
    pub fn queue(&self, r: &FlowRecord) -> u16 {
        match self.reta.len() {
            0 => 0,
            n => self
                .reta
                .get(self.hash(r) as usize % n)
                .copied()
                .unwrap_or(0),
        }
    }
}

/// A [`Router`] for connection sync: rx queue `q` is worker `q`'s (the daemon gives worker i
/// rx queue i).
pub fn router(rss: Rss) -> Router {
    Box::new(move |r| usize::from(rss.queue(r)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::FlowState;
    use crate::sync::SyncRings;
    use std::net::Ipv4Addr;

    fn ip(s: &str) -> u32 {
        u32::from(s.parse::<Ipv4Addr>().unwrap())
    }

    /// The RSS specification's IPv4 verification table: (destination, destination port,
    /// source, source port, hash of the addresses, hash with the ports).
    const VECTORS: [(&str, u16, &str, u16, u32, u32); 5] = [
        (
            "161.142.100.80",
            1766,
            "66.9.149.187",
            2794,
            0x323e_8fc2,
            0x51cc_c178,
        ),
        (
            "65.69.140.83",
            4739,
            "199.92.111.2",
            14230,
            0xd718_262a,
            0xc626_b0ea,
        ),
        (
            "12.22.207.184",
            38024,
            "24.19.198.95",
            12898,
            0xd2d0_a5de,
            0x5c2b_394a,
        ),
        (
            "209.142.163.6",
            2217,
            "38.27.205.30",
            48228,
            0x8298_9176,
            0xafc7_327f,
        ),
        (
            "202.188.127.2",
            1303,
            "153.39.163.191",
            44251,
            0x5d18_09c5,
            0x10e8_28a2,
        ),
    ];

    #[test]
    fn the_verification_vectors() {
        for (i, (dst, dport, src, sport, ip_hash, l4_hash)) in VECTORS.into_iter().enumerate() {
            let (s, d) = (ip(src), ip(dst));
            assert_eq!(
                hash_v4(&DEFAULT_KEY, s, d, sport, dport, false),
                ip_hash,
                "vector {i}, addresses"
            );
            assert_eq!(
                hash_v4(&DEFAULT_KEY, s, d, sport, dport, true),
                l4_hash,
                "vector {i}, with ports"
            );
        }
    }

    #[test]
    fn short_keys_and_empty_input() {
        assert_eq!(toeplitz(&DEFAULT_KEY, &[]), 0);
        assert_eq!(toeplitz(&[], &[0xff; 12]), 0, "no key, no bits");
        // One input bit at position 0 XORs the key's first 32 bits.
        assert_eq!(toeplitz(&DEFAULT_KEY, &[0x80]), 0x6d5a_56da);
        // ... at position 1, the window shifted by one bit.
        // (0x6d5a56da << 1, and the top bit of 0x25, 0).
        assert_eq!(toeplitz(&DEFAULT_KEY, &[0x40]), 0xdab4_adb4);
        // Past the key's end only zeros come in: key bit 31 is its last set bit.
        assert_eq!(toeplitz(&[0, 0, 0, 1], &[0, 0, 0, 0x80]), 0x0100_0000);
        assert_eq!(toeplitz(&[0, 0, 0, 1], &[0, 0, 0, 0x01]), 0x8000_0000);
        assert_eq!(toeplitz(&[0, 0, 0, 1], &[0, 0, 0, 0, 0x80]), 0);
    }

    #[test]
    fn flows_go_to_the_queue_the_table_names() {
        // Vector 0 as a flow record: the client is the source, the VIP the destination.
        let rec = |proto, state| FlowRecord {
            proto,
            state,
            client: ip("66.9.149.187"),
            client_port: 2794,
            vip: ip("161.142.100.80"),
            vport: 1766,
            rs: ip("198.18.0.11"),
            rs_port: 80,
        };
        let reta: Vec<u16> = (0..128).map(|i| i % 4).collect();
        let rss = Rss {
            key: DEFAULT_KEY.to_vec(),
            reta,
            tcp_ports: true,
            udp_ports: false,
        };
        let tcp = rec(6, FlowState::Established);
        let udp = rec(17, FlowState::Udp);
        assert_eq!(rss.hash(&tcp), 0x51cc_c178);
        assert_eq!(rss.hash(&udp), 0x323e_8fc2, "UDP ports not hashed");
        // 0x51ccc178 % 128 = 0x78 = 120 → queue 0; 0x323e8fc2 % 128 = 0x42 = 66 → queue 2.
        assert_eq!(rss.queue(&tcp), 0);
        assert_eq!(rss.queue(&udp), 2);
        let empty = Rss {
            reta: Vec::new(),
            ..rss.clone()
        };
        assert_eq!(empty.queue(&tcp), 0);

        let rings = SyncRings::new(4, 4).with_router(router(rss));
        assert!(rings.install(udp));
        assert_eq!(rings.pop_in(2), Some(udp));
        assert!((0..4).all(|w| rings.pop_in(w).is_none()));
    }
}
