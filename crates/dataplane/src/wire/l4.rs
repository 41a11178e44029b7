//! The parts of TCP (RFC 9293) and UDP (RFC 768) headers a director looks at: ports and TCP
//! flags. Payload and checksums are never touched in direct routing.

use super::{be16, put, Error};

pub const TCP_HEADER_LEN: usize = 20;
pub const UDP_HEADER_LEN: usize = 8;

mod field {
    use core::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const TCP_FLAGS: usize = 13;
}

/// TCP control bits (the low byte of the flags field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub fn fin(self) -> bool {
        self.0 & Self::FIN != 0
    }
    pub fn syn(self) -> bool {
        self.0 & Self::SYN != 0
    }
    pub fn rst(self) -> bool {
        self.0 & Self::RST != 0
    }
    pub fn ack(self) -> bool {
        self.0 & Self::ACK != 0
    }
}

/// A view of a TCP header (ports and flags; options and payload are not interpreted).
#[derive(Debug, Clone, Copy)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        if buffer.as_ref().len() < TCP_HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(TcpPacket { buffer })
    }
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT.start)
    }
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT.start)
    }
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(
            self.buffer
                .as_ref()
                .get(field::TCP_FLAGS)
                .copied()
                .unwrap_or(0),
        )
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    pub fn set_src_port(&mut self, v: u16) {
        put(
            self.buffer.as_mut(),
            field::SRC_PORT.start,
            &v.to_be_bytes(),
        );
    }
    pub fn set_dst_port(&mut self, v: u16) {
        put(
            self.buffer.as_mut(),
            field::DST_PORT.start,
            &v.to_be_bytes(),
        );
    }
    pub fn set_flags(&mut self, f: TcpFlags) {
        put(self.buffer.as_mut(), field::TCP_FLAGS, &[f.0]);
    }
}

/// A view of a UDP header.
#[derive(Debug, Clone, Copy)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        if buffer.as_ref().len() < UDP_HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(UdpPacket { buffer })
    }
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT.start)
    }
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT.start)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    pub fn set_src_port(&mut self, v: u16) {
        put(
            self.buffer.as_mut(),
            field::SRC_PORT.start,
            &v.to_be_bytes(),
        );
    }
    pub fn set_dst_port(&mut self, v: u16) {
        put(
            self.buffer.as_mut(),
            field::DST_PORT.start,
            &v.to_be_bytes(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // TCP header: 40000 -> 80, seq 1, ack 0, data offset 5, flags SYN, window 0xffff
    const SYN: [u8; 20] = [
        0x9c, 0x40, 0x00, 0x50, // ports 40000 -> 80
        0, 0, 0, 1, // sequence number
        0, 0, 0, 0, // acknowledgment number
        0x50, 0x02, // data offset 5, flags SYN
        0xff, 0xff, // window
        0, 0, 0, 0, // checksum, urgent pointer
    ];

    #[test]
    fn tcp_parse_and_emit() {
        let p = TcpPacket::new_checked(&SYN[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port()), (40000, 80));
        assert!(p.flags().syn() && !p.flags().ack() && !p.flags().fin() && !p.flags().rst());
        let mut b = SYN;
        let mut q = TcpPacket::new_unchecked(&mut b[..]);
        q.set_src_port(1);
        q.set_dst_port(2);
        q.set_flags(TcpFlags(TcpFlags::ACK | TcpFlags::FIN));
        let q = TcpPacket::new_checked(&b[..]).unwrap();
        assert_eq!((q.src_port(), q.dst_port()), (1, 2));
        assert!(q.flags().ack() && q.flags().fin());
    }

    #[test]
    fn udp_parse_and_emit() {
        // UDP: 5353 -> 53, length 8, checksum 0
        let b = [0x14, 0xe9, 0x00, 0x35, 0x00, 0x08, 0x00, 0x00];
        let p = UdpPacket::new_checked(&b[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port()), (5353, 53));
        let mut c = [0u8; 8];
        let mut q = UdpPacket::new_unchecked(&mut c[..]);
        q.set_src_port(5353);
        q.set_dst_port(53);
        assert_eq!(&c[..4], &b[..4]);
    }

    #[test]
    fn short_headers_are_truncated() {
        assert_eq!(
            TcpPacket::new_checked(&SYN[..19]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            UdpPacket::new_checked(&SYN[..7]).unwrap_err(),
            Error::Truncated
        );
    }
}
