//! Ethernet II frames (IEEE 802.3 with an EtherType; no FCS, the NIC strips it).

use super::{be16, mac_at, put, Error};

/// A MAC address of all ones.
pub const BROADCAST: [u8; 6] = [0xff; 6];

/// Length of the Ethernet II header.
pub const HEADER_LEN: usize = 14;

/// Minimum frame length without FCS (64 - 4); short frames we build are padded to this.
pub const MIN_FRAME_LEN: usize = 60;

mod field {
    use core::ops::Range;
    pub const DESTINATION: Range<usize> = 0..6;
    pub const SOURCE: Range<usize> = 6..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
    pub const PAYLOAD: usize = 14;
}

/// The EtherTypes the dataplane tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EtherType {
    Ipv4,
    Arp,
    Ipv6,
    /// IEEE 802.1Q tag.
    Vlan,
    /// IEEE 802.1ad (QinQ) service tag.
    QinQ,
    Unknown(u16),
}

impl From<u16> for EtherType {
    fn from(v: u16) -> Self {
        match v {
            0x0800 => EtherType::Ipv4,
            0x0806 => EtherType::Arp,
            0x86dd => EtherType::Ipv6,
            0x8100 => EtherType::Vlan,
            0x88a8 => EtherType::QinQ,
            other => EtherType::Unknown(other),
        }
    }
}

impl From<EtherType> for u16 {
    fn from(v: EtherType) -> u16 {
        match v {
            EtherType::Ipv4 => 0x0800,
            EtherType::Arp => 0x0806,
            EtherType::Ipv6 => 0x86dd,
            EtherType::Vlan => 0x8100,
            EtherType::QinQ => 0x88a8,
            EtherType::Unknown(o) => o,
        }
    }
}

/// Length of an IEEE 802.1Q tag (TPID 0x8100 and the TCI), between the source MAC and the
/// EtherType of the frame it carries.
pub const VLAN_TAG_LEN: usize = 4;

/// A VLAN id a director can sit on: 1..=4094 (0 marks a priority-only tag, 4095 is reserved;
/// IEEE 802.1Q, table 9-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VlanId(u16);

impl VlanId {
    /// The lowest and highest usable ids.
    pub const MIN: u16 = 1;
    pub const MAX: u16 = 4094;

    /// `vid` if it is in 1..=4094.
    pub const fn new(vid: u16) -> Option<Self> {
        if vid >= Self::MIN && vid <= Self::MAX {
            Some(VlanId(vid))
        } else {
            None
        }
    }

    pub const fn get(self) -> u16 {
        self.0
    }

    /// The 802.1Q tag of this VLAN as it sits in a frame at bytes 12..16 (TPID 0x8100, priority
    /// 0, DEI 0, the id), read as a big-endian word; compare a received tag after masking the
    /// priority and DEI bits with [`TAG_MATCH_MASK`].
    pub const fn tag_word(self) -> u32 {
        0x8100_0000 | self.0 as u32
    }

    /// The tag's four bytes (see [`tag_word`](Self::tag_word)).
    pub const fn tag_bytes(self) -> [u8; VLAN_TAG_LEN] {
        self.tag_word().to_be_bytes()
    }
}

/// Bytes 12..16 of a frame read as a big-endian word, masked so that only the TPID and the
/// VLAN id are left (the priority code point and the DEI bit are not the VLAN's).
pub const TAG_MATCH_MASK: u32 = 0xffff_0fff;

/// Whether `mac` is a group (multicast or broadcast) address: the I/G bit, the least
/// A MAC address (written "aa:bb:cc:dd:ee:ff"; "-" separators are read too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl std::fmt::Display for MacAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl std::str::FromStr for MacAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut out = [0u8; 6];
        let mut n = 0;
        for part in s.split([':', '-']) {
            if n == 6 || part.len() != 2 {
                return Err(format!("invalid MAC address '{s}'"));
            }
            out[n] =
                u8::from_str_radix(part, 16).map_err(|_| format!("invalid MAC address '{s}'"))?;
            n += 1;
        }
        if n != 6 {
            return Err(format!("invalid MAC address '{s}'"));
        }
        Ok(MacAddr(out))
    }
}

impl MacAddr {
    /// The address as the low 48 bits of a word: its six bytes, in frame order, read as a
    /// little-endian word (the bits above are zero). A worker compares and writes MACs this way
    /// with one load or store; the neighbour table stores them so.
    #[inline(always)]
    pub const fn word(self) -> u64 {
        let [a, b, c, d, e, f] = self.0;
        u64::from_le_bytes([a, b, c, d, e, f, 0, 0])
    }

    /// The address in the low 48 bits of `w` (see [`word`](Self::word)).
    #[inline]
    pub const fn from_word(w: u64) -> Self {
        let [a, b, c, d, e, f, _, _] = w.to_le_bytes();
        MacAddr([a, b, c, d, e, f])
    }
}

/// significant bit of the first octet.
pub fn is_group(mac: &[u8; 6]) -> bool {
    mac[0] & 1 == 1
}

/// A read/write view of an Ethernet II frame.
#[derive(Debug, Clone, Copy)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        Frame { buffer }
    }

    /// Wrap `buffer` after checking it holds at least the header.
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let f = Frame { buffer };
        f.check_len()?;
        Ok(f)
    }

    pub fn check_len(&self) -> Result<(), Error> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn dst_addr(&self) -> [u8; 6] {
        mac_at(self.buffer.as_ref(), field::DESTINATION.start)
    }

    pub fn src_addr(&self) -> [u8; 6] {
        mac_at(self.buffer.as_ref(), field::SOURCE.start)
    }

    pub fn ethertype(&self) -> EtherType {
        EtherType::from(be16(self.buffer.as_ref(), field::ETHERTYPE.start))
    }

    /// Bytes after the header (empty if the buffer is exactly a header).
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(field::PAYLOAD..).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    pub fn set_dst_addr(&mut self, mac: [u8; 6]) {
        put(self.buffer.as_mut(), field::DESTINATION.start, &mac);
    }

    pub fn set_src_addr(&mut self, mac: [u8; 6]) {
        put(self.buffer.as_mut(), field::SOURCE.start, &mac);
    }

    pub fn set_ethertype(&mut self, t: EtherType) {
        put(
            self.buffer.as_mut(),
            field::ETHERTYPE.start,
            &u16::from(t).to_be_bytes(),
        );
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        self.buffer
            .as_mut()
            .get_mut(field::PAYLOAD..)
            .unwrap_or(&mut [])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // dst 02:00:00:00:00:01 | src 02:00:00:00:00:02 | type 0x0800 | payload 0xaa 0xbb
    const FRAME: [u8; 16] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // destination
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // source
        0x08, 0x00, // EtherType IPv4
        0xaa, 0xbb, // payload
    ];

    #[test]
    fn parse_fields() {
        let f = Frame::new_checked(&FRAME[..]).unwrap();
        assert_eq!(f.dst_addr(), [2, 0, 0, 0, 0, 1]);
        assert_eq!(f.src_addr(), [2, 0, 0, 0, 0, 2]);
        assert_eq!(f.ethertype(), EtherType::Ipv4);
        assert_eq!(f.payload(), &[0xaa, 0xbb]);
    }

    #[test]
    fn emit_mirrors_parse() {
        let mut buf = [0u8; 16];
        let mut f = Frame::new_unchecked(&mut buf[..]);
        f.set_dst_addr([2, 0, 0, 0, 0, 1]);
        f.set_src_addr([2, 0, 0, 0, 0, 2]);
        f.set_ethertype(EtherType::Ipv4);
        f.payload_mut().copy_from_slice(&[0xaa, 0xbb]);
        assert_eq!(buf, FRAME);
    }

    #[test]
    fn short_frame_is_truncated() {
        assert_eq!(
            Frame::new_checked(&FRAME[..13]).unwrap_err(),
            Error::Truncated
        );
        assert!(Frame::new_checked(&FRAME[..14])
            .unwrap()
            .payload()
            .is_empty());
    }

    #[test]
    fn vlan_ids_and_tags() {
        // 0 (priority tag) and 4095 (reserved) are not VLANs a director can sit on.
        for (vid, ok) in [
            (0u16, false),
            (1, true),
            (100, true),
            (4094, true),
            (4095, false),
            (u16::MAX, false),
        ] {
            assert_eq!(VlanId::new(vid).is_some(), ok, "{vid}");
        }
        let v = VlanId::new(100).unwrap();
        // TPID 0x8100 | PCP 0, DEI 0, VID 100 (0x064)
        assert_eq!(v.tag_bytes(), [0x81, 0x00, 0x00, 0x64]);
        // A received tag with priority 5 and DEI set still matches once masked.
        let rx = u32::from_be_bytes([0x81, 0x00, 0xb0, 0x64]);
        assert_eq!(rx & TAG_MATCH_MASK, v.tag_word());
        assert_ne!(
            u32::from_be_bytes([0x81, 0x00, 0x00, 0x65]) & TAG_MATCH_MASK,
            v.tag_word()
        );
        assert_ne!(
            u32::from_be_bytes([0x88, 0xa8, 0x00, 0x64]) & TAG_MATCH_MASK,
            v.tag_word()
        );
    }

    #[test]
    fn ethertypes_round_trip() {
        for v in [0x0800u16, 0x0806, 0x86dd, 0x8100, 0x88a8, 0x1234] {
            assert_eq!(u16::from(EtherType::from(v)), v);
        }
        assert_eq!(EtherType::from(0x1234), EtherType::Unknown(0x1234));
        assert!(is_group(&BROADCAST));
        assert!(!is_group(&[2, 0, 0, 0, 0, 1]));
    }
}
