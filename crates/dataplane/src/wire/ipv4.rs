//! IPv4 headers (RFC 791).

use super::{be16, be32, put, Error};
use std::net::Ipv4Addr;

/// Length of an IPv4 header without options.
pub const MIN_HEADER_LEN: usize = 20;

mod field {
    use core::ops::Range;
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const FLG_OFF: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC_ADDR: Range<usize> = 12..16;
    pub const DST_ADDR: Range<usize> = 16..20;
}

/// A view of an IPv4 packet. `new_checked` guarantees the header (with options) and the whole
/// `total_length` lie inside the buffer; Ethernet padding after `total_length` is allowed.
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let p = Packet { buffer };
        p.check_len()?;
        Ok(p)
    }

    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        if len < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 4 {
            return Err(Error::BadVersion);
        }
        // RFC 791: "Internet Header Length is the length of the internet header in 32 bit
        // words ... Note that the minimum value for a correct header is 5."
        let hl = self.header_len();
        if hl < MIN_HEADER_LEN || hl > len {
            return Err(Error::BadIhl);
        }
        // "Total Length is the length of the datagram, measured in octets, including
        // internet header and data."
        let tl = usize::from(self.total_len());
        if tl < hl || tl > len {
            return Err(Error::BadTotalLen);
        }
        Ok(())
    }

    pub fn version(&self) -> u8 {
        self.buffer
            .as_ref()
            .get(field::VER_IHL)
            .copied()
            .unwrap_or(0)
            >> 4
    }
    /// Header length in octets (IHL * 4).
    pub fn header_len(&self) -> usize {
        usize::from(
            self.buffer
                .as_ref()
                .get(field::VER_IHL)
                .copied()
                .unwrap_or(0)
                & 0x0f,
        ) * 4
    }
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer
            .as_ref()
            .get(field::DSCP_ECN)
            .copied()
            .unwrap_or(0)
    }
    pub fn total_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH.start)
    }
    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::IDENT.start)
    }
    pub fn dont_frag(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF.start) & 0x4000 != 0
    }
    pub fn more_frags(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF.start) & 0x2000 != 0
    }
    /// Fragment offset in octets.
    pub fn frag_offset(&self) -> u16 {
        (be16(self.buffer.as_ref(), field::FLG_OFF.start) & 0x1fff) << 3
    }
    /// Whether this datagram is a fragment (MF set or a non-zero offset).
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref().get(field::TTL).copied().unwrap_or(0)
    }
    pub fn next_header(&self) -> u8 {
        self.buffer
            .as_ref()
            .get(field::PROTOCOL)
            .copied()
            .unwrap_or(0)
    }
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM.start)
    }
    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.src_addr_u32())
    }
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.dst_addr_u32())
    }
    pub fn src_addr_u32(&self) -> u32 {
        be32(self.buffer.as_ref(), field::SRC_ADDR.start)
    }
    pub fn dst_addr_u32(&self) -> u32 {
        be32(self.buffer.as_ref(), field::DST_ADDR.start)
    }
    /// The transport payload: from the end of the header to `total_length`.
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        b.get(self.header_len()..usize::from(self.total_len()))
            .unwrap_or(&[])
    }
    /// Whether the header checksum verifies (RFC 1071 one's complement sum).
    pub fn verify_checksum(&self) -> bool {
        let b = self.buffer.as_ref();
        match b.get(..self.header_len()) {
            Some(h) => internet_checksum(h) == 0,
            None => false,
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_version_and_header_len(&mut self, version: u8, header_len: usize) {
        let ihl = ((header_len / 4) & 0x0f) as u8;
        put(
            self.buffer.as_mut(),
            field::VER_IHL,
            &[(version << 4) | ihl],
        );
    }
    pub fn set_total_len(&mut self, v: u16) {
        put(self.buffer.as_mut(), field::LENGTH.start, &v.to_be_bytes());
    }
    pub fn set_ident(&mut self, v: u16) {
        put(self.buffer.as_mut(), field::IDENT.start, &v.to_be_bytes());
    }
    /// Set flags and fragment offset (offset in octets, a multiple of 8).
    pub fn set_frag(&mut self, dont_frag: bool, more_frags: bool, offset: u16) {
        let v = (u16::from(dont_frag) << 14) | (u16::from(more_frags) << 13) | (offset >> 3);
        put(self.buffer.as_mut(), field::FLG_OFF.start, &v.to_be_bytes());
    }
    pub fn set_hop_limit(&mut self, v: u8) {
        put(self.buffer.as_mut(), field::TTL, &[v]);
    }
    pub fn set_next_header(&mut self, v: u8) {
        put(self.buffer.as_mut(), field::PROTOCOL, &[v]);
    }
    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        put(self.buffer.as_mut(), field::SRC_ADDR.start, &a.octets());
    }
    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        put(self.buffer.as_mut(), field::DST_ADDR.start, &a.octets());
    }
    /// Compute and store the header checksum.
    pub fn fill_checksum(&mut self) {
        put(self.buffer.as_mut(), field::CHECKSUM.start, &[0, 0]);
        let hl = self.header_len();
        let c = match self.buffer.as_ref().get(..hl) {
            Some(h) => internet_checksum(h),
            None => return,
        };
        put(
            self.buffer.as_mut(),
            field::CHECKSUM.start,
            &c.to_be_bytes(),
        );
    }
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (hl, tl) = (self.header_len(), usize::from(self.total_len()));
        self.buffer.as_mut().get_mut(hl..tl).unwrap_or(&mut [])
    }
}

/// The network mask of a prefix of `len` bits (a length above 32 counts as 32).
pub fn prefix_netmask(len: u8) -> Ipv4Addr {
    let bits = u32::from(len.min(32));
    Ipv4Addr::from(u32::MAX.checked_shl(32 - bits).unwrap_or(0))
}

/// RFC 1071 Internet checksum of `data`: the one's complement of the folded one's complement
/// sum of its 16-bit big-endian words, an odd last byte padded with zero (0 over a header whose
/// checksum field is correct). IPv4 headers here; ICMP and TCP bytes for the health checker and
/// the tests.
pub fn internet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum = sum.wrapping_add(u32::from(u16::from_be_bytes([c[0], c[1]])));
    }
    if let [last] = chunks.remainder() {
        sum = sum.wrapping_add(u32::from(*last) << 8);
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    // IPv4 header, TCP, 198.18.1.10 -> 198.18.0.100, total length 24 (4 payload bytes)
    const PACKET: [u8; 24] = [
        0x45, 0x00, // version 4, IHL 5; DSCP/ECN 0
        0x00, 0x18, // total length 24
        0x12, 0x34, // identification
        0x40, 0x00, // DF, offset 0
        64, 6, // TTL 64, protocol TCP
        0x00, 0x00, // checksum (filled by the test)
        198, 18, 1, 10, // source
        198, 18, 0, 100, // destination
        0xde, 0xad, 0xbe, 0xef, // payload
    ];

    fn with_checksum() -> [u8; 24] {
        let mut b = PACKET;
        Packet::new_unchecked(&mut b[..]).fill_checksum();
        b
    }

    #[test]
    fn parse_fields() {
        let b = with_checksum();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 24);
        assert_eq!(p.ident(), 0x1234);
        assert!(p.dont_frag() && !p.more_frags() && !p.is_fragment());
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.next_header(), 6);
        assert_eq!(p.src_addr(), Ipv4Addr::new(198, 18, 1, 10));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(198, 18, 0, 100));
        assert_eq!(p.payload(), &[0xde, 0xad, 0xbe, 0xef]);
        assert!(p.verify_checksum());
    }

    #[test]
    fn emit_mirrors_parse() {
        let mut b = [0u8; 24];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_version_and_header_len(4, 20);
        p.set_total_len(24);
        p.set_ident(0x1234);
        p.set_frag(true, false, 0);
        p.set_hop_limit(64);
        p.set_next_header(6);
        p.set_src_addr(Ipv4Addr::new(198, 18, 1, 10));
        p.set_dst_addr(Ipv4Addr::new(198, 18, 0, 100));
        p.payload_mut().copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        p.fill_checksum();
        assert_eq!(b, with_checksum());
    }

    #[test]
    fn padding_after_total_length_is_allowed() {
        let mut b = [0u8; 30];
        b[..24].copy_from_slice(&PACKET);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.payload().len(), 4);
    }

    #[test]
    fn malformed_headers() {
        assert_eq!(
            Packet::new_checked(&PACKET[..19]).unwrap_err(),
            Error::Truncated
        );
        let mut b = PACKET;
        b[0] = 0x65; // version 6
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::BadVersion);
        let mut b = PACKET;
        b[0] = 0x44; // IHL 4 (16 bytes): below the minimum
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::BadIhl);
        let mut b = PACKET;
        b[0] = 0x47; // IHL 7 (28 bytes): beyond the 24-byte buffer
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::BadIhl);
        let mut b = PACKET;
        b[3] = 25; // total length 25 > 24 bytes
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::BadTotalLen);
        let mut b = PACKET;
        b[3] = 19; // total length 19 < header
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::BadTotalLen);
    }

    #[test]
    fn fragments() {
        let mut b = PACKET;
        b[6] = 0x20; // MF, offset 0: first fragment
        assert!(Packet::new_checked(&b[..]).unwrap().is_fragment());
        let mut b = PACKET;
        b[6] = 0x00;
        b[7] = 0x01; // offset 8
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.is_fragment());
        assert_eq!(p.frag_offset(), 8);
    }

    #[test]
    fn prefix_netmasks() {
        for (len, mask) in [
            (0, [0, 0, 0, 0]),
            (8, [255, 0, 0, 0]),
            (24, [255, 255, 255, 0]),
        ] {
            assert_eq!(prefix_netmask(len), Ipv4Addr::from(mask), "/{len}");
        }
        assert_eq!(prefix_netmask(32), Ipv4Addr::BROADCAST);
        assert_eq!(
            prefix_netmask(40),
            Ipv4Addr::BROADCAST,
            "above 32 counts as 32"
        );
    }

    #[test]
    fn checksum_detects_a_flipped_bit() {
        let mut b = with_checksum();
        b[8] ^= 1;
        assert!(!Packet::new_checked(&b[..]).unwrap().verify_checksum());
    }
}
