//! Typed views over packet bytes, in the style of smoltcp's `wire` module.
//!
//! Each view wraps a buffer (`T: AsRef<[u8]>`, and `AsMut` for setters), is built with
//! `new_checked` (which validates every length the accessors rely on) and exposes RFC-named
//! accessors. Byte ranges live in private `field` modules. After `new_checked` succeeded no
//! accessor can panic; `new_unchecked` exists for buffers the caller built itself.
//!
//! The decoders answer the s2n-quic way: the pipeline decides "ours / not ours / malformed (why)"
//! from the [`Error`] each view returns, and counts every frame it does not forward under a named
//! reason.

pub mod arp;
pub mod ethernet;
pub mod ipv4;
pub mod l4;

/// Why a view refused a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The buffer is shorter than the header (or than a length field says).
    Truncated,
    /// IPv4: the version field is not 4.
    BadVersion,
    /// IPv4: IHL below 5 or beyond the buffer.
    BadIhl,
    /// IPv4: total length beyond the buffer or below IHL*4.
    BadTotalLen,
    /// ARP: not Ethernet/IPv4 (hardware/protocol type or address lengths).
    Unsupported,
}

/// Read a big-endian u16 at `at`; the caller's `new_checked` guarantees the bytes exist, and
/// a missing byte reads as 0 instead of panicking.
#[inline]
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    match b.get(at..at + 2) {
        Some(s) => u16::from_be_bytes([s[0], s[1]]),
        None => 0,
    }
}

#[inline]
pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 4) {
        Some(s) => u32::from_be_bytes([s[0], s[1], s[2], s[3]]),
        None => 0,
    }
}

#[inline]
pub(crate) fn put(b: &mut [u8], at: usize, v: &[u8]) {
    if let Some(s) = b.get_mut(at..at + v.len()) {
        s.copy_from_slice(v);
    }
}

#[inline]
pub(crate) fn mac_at(b: &[u8], at: usize) -> [u8; 6] {
    let mut m = [0u8; 6];
    if let Some(s) = b.get(at..at + 6) {
        m.copy_from_slice(s);
    }
    m
}
