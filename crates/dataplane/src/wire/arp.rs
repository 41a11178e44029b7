//! ARP for Ethernet/IPv4 (RFC 826).
//!
//! Only hardware type 1 (Ethernet, 6-byte addresses) and protocol type 0x0800 (IPv4, 4-byte
//! addresses) are accepted; anything else is [`Error::Unsupported`].

use super::{be16, be32, ethernet, mac_at, put, Error};
use std::net::Ipv4Addr;

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;

mod field {
    use core::ops::Range;
    pub const HTYPE: Range<usize> = 0..2;
    pub const PTYPE: Range<usize> = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Range<usize> = 6..8;
    // With hlen = 6 and plen = 4:
    pub const SHA: Range<usize> = 8..14;
    pub const SPA: Range<usize> = 14..18;
    pub const THA: Range<usize> = 18..24;
    pub const TPA: Range<usize> = 24..28;
}

/// ARP operation codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Request,
    Reply,
    Unknown(u16),
}

impl From<u16> for Operation {
    fn from(v: u16) -> Self {
        match v {
            1 => Operation::Request,
            2 => Operation::Reply,
            o => Operation::Unknown(o),
        }
    }
}

impl From<Operation> for u16 {
    fn from(v: Operation) -> u16 {
        match v {
            Operation::Request => 1,
            Operation::Reply => 2,
            Operation::Unknown(o) => o,
        }
    }
}

/// A view of an Ethernet/IPv4 ARP packet (the Ethernet payload).
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wrap `buffer` after checking it is a complete Ethernet/IPv4 ARP packet.
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let p = Packet { buffer };
        p.check_len()?;
        Ok(p)
    }

    pub fn check_len(&self) -> Result<(), Error> {
        let b = self.buffer.as_ref();
        // RFC 826: ar$hrd, ar$pro, ar$hln, ar$pln, ar$op come first; the address fields'
        // sizes follow from ar$hln and ar$pln.
        if b.len() < 8 {
            return Err(Error::Truncated);
        }
        if self.hardware_type() != 1
            || self.protocol_type() != 0x0800
            || self.hardware_len() != 6
            || self.protocol_len() != 4
        {
            return Err(Error::Unsupported);
        }
        if b.len() < PACKET_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn hardware_type(&self) -> u16 {
        be16(self.buffer.as_ref(), field::HTYPE.start)
    }
    pub fn protocol_type(&self) -> u16 {
        be16(self.buffer.as_ref(), field::PTYPE.start)
    }
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref().get(field::HLEN).copied().unwrap_or(0)
    }
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref().get(field::PLEN).copied().unwrap_or(0)
    }
    pub fn operation(&self) -> Operation {
        Operation::from(be16(self.buffer.as_ref(), field::OPER.start))
    }
    pub fn source_hardware_addr(&self) -> [u8; 6] {
        mac_at(self.buffer.as_ref(), field::SHA.start)
    }
    pub fn source_protocol_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(be32(self.buffer.as_ref(), field::SPA.start))
    }
    pub fn target_hardware_addr(&self) -> [u8; 6] {
        mac_at(self.buffer.as_ref(), field::THA.start)
    }
    pub fn target_protocol_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(be32(self.buffer.as_ref(), field::TPA.start))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Write the fixed Ethernet/IPv4 header part (types, lengths).
    pub fn set_ethernet_ipv4(&mut self) {
        let b = self.buffer.as_mut();
        put(b, field::HTYPE.start, &1u16.to_be_bytes());
        put(b, field::PTYPE.start, &0x0800u16.to_be_bytes());
        put(b, field::HLEN, &[6]);
        put(b, field::PLEN, &[4]);
    }
    pub fn set_operation(&mut self, op: Operation) {
        put(
            self.buffer.as_mut(),
            field::OPER.start,
            &u16::from(op).to_be_bytes(),
        );
    }
    pub fn set_source_hardware_addr(&mut self, mac: [u8; 6]) {
        put(self.buffer.as_mut(), field::SHA.start, &mac);
    }
    pub fn set_source_protocol_addr(&mut self, ip: Ipv4Addr) {
        put(self.buffer.as_mut(), field::SPA.start, &ip.octets());
    }
    pub fn set_target_hardware_addr(&mut self, mac: [u8; 6]) {
        put(self.buffer.as_mut(), field::THA.start, &mac);
    }
    pub fn set_target_protocol_addr(&mut self, ip: Ipv4Addr) {
        put(self.buffer.as_mut(), field::TPA.start, &ip.octets());
    }
}

/// Write a complete broadcast ARP frame (Ethernet header + ARP, zero padded to the minimum
/// frame length) into `buf`. Returns the frame length, or 0 if `buf` is too short.
pub fn build_frame(
    buf: &mut [u8],
    src_mac: [u8; 6],
    op: Operation,
    sender_ip: Ipv4Addr,
    target_mac: [u8; 6],
    target_ip: Ipv4Addr,
) -> usize {
    let Some(frame) = buf.get_mut(..ethernet::MIN_FRAME_LEN) else {
        return 0;
    };
    frame.fill(0);
    let mut eth = ethernet::Frame::new_unchecked(&mut *frame);
    eth.set_dst_addr(ethernet::BROADCAST);
    eth.set_src_addr(src_mac);
    eth.set_ethertype(ethernet::EtherType::Arp);
    let mut arp = Packet::new_unchecked(eth.payload_mut());
    arp.set_ethernet_ipv4();
    arp.set_operation(op);
    arp.set_source_hardware_addr(src_mac);
    arp.set_source_protocol_addr(sender_ip);
    arp.set_target_hardware_addr(target_mac);
    arp.set_target_protocol_addr(target_ip);
    ethernet::MIN_FRAME_LEN
}

#[cfg(test)]
mod tests {
    use super::*;

    // ARP request: who has 198.18.0.100? tell 198.18.0.1 (02:00:00:00:00:0a)
    const REQUEST: [u8; 28] = [
        0x00, 0x01, // htype Ethernet
        0x08, 0x00, // ptype IPv4
        6, 4, // hlen, plen
        0x00, 0x01, // op request
        0x02, 0x00, 0x00, 0x00, 0x00, 0x0a, // sha
        198, 18, 0, 1, // spa
        0, 0, 0, 0, 0, 0, // tha
        198, 18, 0, 100, // tpa
    ];

    #[test]
    fn parse_request() {
        let p = Packet::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(p.operation(), Operation::Request);
        assert_eq!(p.source_hardware_addr(), [2, 0, 0, 0, 0, 0x0a]);
        assert_eq!(p.source_protocol_addr(), Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(p.target_hardware_addr(), [0; 6]);
        assert_eq!(p.target_protocol_addr(), Ipv4Addr::new(198, 18, 0, 100));
    }

    #[test]
    fn emit_mirrors_parse() {
        let mut b = [0u8; 28];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_ethernet_ipv4();
        p.set_operation(Operation::Request);
        p.set_source_hardware_addr([2, 0, 0, 0, 0, 0x0a]);
        p.set_source_protocol_addr(Ipv4Addr::new(198, 18, 0, 1));
        p.set_target_hardware_addr([0; 6]);
        p.set_target_protocol_addr(Ipv4Addr::new(198, 18, 0, 100));
        assert_eq!(b, REQUEST);
    }

    #[test]
    fn odd_lengths_and_types_are_unsupported() {
        let mut b = REQUEST;
        b[4] = 8; // hlen 8 (e.g. not Ethernet)
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::Unsupported);
        let mut b = REQUEST;
        b[5] = 16; // plen 16 (IPv6-sized)
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::Unsupported);
        let mut b = REQUEST;
        b[1] = 6; // htype IEEE 802
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::Unsupported);
        let mut b = REQUEST;
        b[2] = 0x86; // ptype IPv6
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::Unsupported);
    }

    #[test]
    fn short_is_truncated() {
        assert_eq!(
            Packet::new_checked(&REQUEST[..7]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            Packet::new_checked(&REQUEST[..27]).unwrap_err(),
            Error::Truncated
        );
    }

    #[test]
    fn build_frame_pads_and_refuses_short_buffers() {
        let mut buf = [0xeeu8; 64];
        let n = build_frame(
            &mut buf,
            [2, 0, 0, 0, 0, 0x0a],
            Operation::Request,
            Ipv4Addr::new(198, 18, 0, 1),
            [0; 6],
            Ipv4Addr::new(198, 18, 0, 100),
        );
        assert_eq!(n, 60);
        assert_eq!(&buf[..6], &[0xff; 6]); // broadcast
        assert_eq!(&buf[6..12], &[2, 0, 0, 0, 0, 0x0a]);
        assert_eq!(&buf[12..14], &[0x08, 0x06]);
        assert_eq!(&buf[14..42], &REQUEST);
        assert_eq!(&buf[42..60], &[0u8; 18]); // padding
        assert_eq!(buf[60], 0xee); // untouched beyond the frame
        let mut short = [0u8; 59];
        let z = build_frame(
            &mut short,
            [2; 6],
            Operation::Request,
            Ipv4Addr::LOCALHOST,
            [0; 6],
            Ipv4Addr::LOCALHOST,
        );
        assert_eq!(z, 0);
    }
}
