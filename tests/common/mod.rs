//! Helpers shared by the integration tests that run DPDK in process: classic pcap files for
//! net_pcap's rx and tx, and whether the test runs as root.
#![allow(dead_code)] // each test binary uses its own part

use std::path::Path;

/// Write `frames` as a classic pcap file (magic, v2.4, tz 0, sigfigs 0, snaplen 65535,
/// linktype 1: Ethernet), one record per frame.
pub fn write_pcap<F: AsRef<[u8]>>(path: &Path, frames: &[F]) {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    for v in [0u32, 0, 65535, 1] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for (i, f) in frames.iter().enumerate() {
        let f = f.as_ref();
        // Record header: seconds, microseconds, captured length, original length.
        for v in [1u32, i as u32, f.len() as u32, f.len() as u32] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(f);
    }
    std::fs::write(path, out).expect("write pcap");
}

/// The frames of a classic pcap file (little-endian, as net_pcap writes it here).
pub fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let b = std::fs::read(path).expect("read pcap");
    assert!(b.len() >= 24, "pcap too short");
    let magic = u32::from_le_bytes(b[..4].try_into().unwrap());
    assert!(
        magic == 0xa1b2_c3d4 || magic == 0xa1b2_3c4d,
        "unexpected pcap magic {magic:#x}"
    );
    let mut at = 24;
    let mut frames = Vec::new();
    while at + 16 <= b.len() {
        let incl = u32::from_le_bytes(b[at + 8..at + 12].try_into().unwrap()) as usize;
        at += 16;
        assert!(at + incl <= b.len(), "truncated pcap record");
        frames.push(b[at..at + incl].to_vec());
        at += incl;
    }
    frames
}

/// Whether the test runs with effective uid 0 (DPDK in process needs it).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}
