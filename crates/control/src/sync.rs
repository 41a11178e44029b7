//! The connection-sync wire format: what directors send each other over UDP (the port and
//! group of [`crate::ha::SyncConfig`]). rvs's own format; all integers big-endian.
//!
//! ```text
//! header (20 bytes)
//!   0  magic     4   "RVSY"
//!   4  version   1   1
//!   5  type      1   1 = records, 2 = dump request, 3 = dump end
//!   6  vrid      1   the VRRP instance sync follows (receivers ignore other VRIDs)
//!   7  flags     1   bit 0 = DUMP (records sent while serving a bulk dump); others must be 0
//!   8  sender    4   the sender's DIP
//!  12  sequence  4   per sender, +1 on every message of any type (a gap counts as loss)
//!  16  count     2   records in the message (0 for the other types)
//!  18  reserved  2   must be 0
//! type 1, records: `count` records of 20 bytes each
//!   0  proto     1   IP protocol (6 TCP, 17 UDP)
//!   1  state     1   1 SYN_RECV, 2 ESTABLISHED, 3 FIN_WAIT, 4 CLOSE, 5 UDP, 6 TIME_WAIT
//!   2  client    4   client address
//!   6  cport     2   client port
//!   8  vip       4
//!  12  vport     2
//!  14  rs        4   real server address (servers are named by address:port, never by slot)
//!  18  rsport    2
//! type 2, dump request (8 bytes): generation 8 (the requester's, echoed by the dump end)
//! type 3, dump end (16 bytes): requester 4 | generation 8 | records 4 (records the master
//!   sent between the request and this end, dump entries and live updates alike)
//! ```
//!
//! A message is exactly as long as its type says (trailing bytes are an error): decoding is
//! strict, so a message that decodes encodes back to the same bytes. Nothing here panics on
//! input; every malformation has its own [`SyncError`].

use rvs_dataplane::flow::FlowState;
use rvs_dataplane::sync::FlowRecord;
use std::net::Ipv4Addr;

pub const MAGIC: [u8; 4] = *b"RVSY";
pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 20;
pub const RECORD_LEN: usize = 20;
pub const DUMP_REQUEST_LEN: usize = 8;
pub const DUMP_END_LEN: usize = 16;

pub const TYPE_RECORDS: u8 = 1;
pub const TYPE_DUMP_REQUEST: u8 = 2;
pub const TYPE_DUMP_END: u8 = 3;

/// Header flag: these records answer a bulk dump.
pub const FLAG_DUMP: u8 = 0x01;
const KNOWN_FLAGS: u8 = FLAG_DUMP;

/// Why bytes are not a sync message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    #[error("shorter than the {HEADER_LEN}-byte header")]
    Short,
    #[error("bad magic")]
    Magic,
    #[error("version {0} not supported")]
    Version(u8),
    #[error("unknown message type {0}")]
    Type(u8),
    #[error("unknown flags {0:#04x}")]
    Flags(u8),
    #[error("reserved header bytes not zero")]
    Reserved,
    #[error("length {got} does not match the {want} the header announces")]
    Length { got: usize, want: usize },
    #[error("a count of {0} records where none are allowed")]
    Count(u16),
    #[error("record {index}: unknown flow state {state}")]
    State { index: usize, state: u8 },
    #[error("the buffer cannot hold the message")]
    BufferTooSmall,
    #[error("more than 65535 records")]
    TooMany,
}

/// The fields every message has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub vrid: u8,
    pub flags: u8,
    pub sender: Ipv4Addr,
    pub seq: u32,
}

/// A decoded message (records are borrowed from the datagram, already checked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    Records {
        header: Header,
        records: Records<'a>,
    },
    DumpRequest {
        header: Header,
        generation: u64,
    },
    DumpEnd {
        header: Header,
        requester: Ipv4Addr,
        generation: u64,
        records: u32,
    },
}

impl Message<'_> {
    pub fn header(&self) -> &Header {
        match self {
            Message::Records { header, .. }
            | Message::DumpRequest { header, .. }
            | Message::DumpEnd { header, .. } => header,
        }
    }

    /// The message's length on the wire.
    pub fn len(&self) -> usize {
        HEADER_LEN
            + match self {
                Message::Records { records, .. } => records.bytes.len(),
                Message::DumpRequest { .. } => DUMP_REQUEST_LEN,
                Message::DumpEnd { .. } => DUMP_END_LEN,
            }
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}

/// The records of a decoded message: whole 20-byte records whose states are all known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Records<'a> {
    bytes: &'a [u8],
}

impl<'a> Records<'a> {
    /// Check `bytes` as a run of records.
    fn check(bytes: &'a [u8]) -> Result<Self, SyncError> {
        for (index, r) in bytes.chunks(RECORD_LEN).enumerate() {
            if r.len() != RECORD_LEN {
                return Err(SyncError::Length {
                    got: bytes.len(),
                    want: (index + 1) * RECORD_LEN,
                });
            }
            let state = r.get(1).copied().unwrap_or(0);
            if state_from_wire(state).is_none() {
                return Err(SyncError::State { index, state });
            }
        }
        Ok(Records { bytes })
    }

    pub fn len(&self) -> usize {
        self.bytes.len() / RECORD_LEN
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = FlowRecord> + 'a {
        self.bytes.chunks_exact(RECORD_LEN).filter_map(read_record)
    }
}

/// A flow state's wire value; `None` for [`FlowState::Free`] (never sent).
pub fn state_to_wire(s: FlowState) -> Option<u8> {
    Some(match s {
        FlowState::Free => return None,
        FlowState::SynRecv => 1,
        FlowState::Established => 2,
        FlowState::FinWait => 3,
        FlowState::Close => 4,
        FlowState::Udp => 5,
        FlowState::TimeWait => 6,
    })
}

/// The flow state a wire value stands for; `None` for 0 and anything unknown.
pub fn state_from_wire(v: u8) -> Option<FlowState> {
    Some(match v {
        1 => FlowState::SynRecv,
        2 => FlowState::Established,
        3 => FlowState::FinWait,
        4 => FlowState::Close,
        5 => FlowState::Udp,
        6 => FlowState::TimeWait,
        _ => return None,
    })
}

fn be16(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u16::from_be_bytes)
}

fn be32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_be_bytes)
}

fn be64(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_be_bytes)
}

fn read_record(r: &[u8]) -> Option<FlowRecord> {
    if r.len() != RECORD_LEN {
        return None;
    }
    Some(FlowRecord {
        proto: *r.first()?,
        state: state_from_wire(*r.get(1)?)?,
        client: be32(r, 2),
        client_port: be16(r, 6),
        vip: be32(r, 8),
        vport: be16(r, 12),
        rs: be32(r, 14),
        rs_port: be16(r, 18),
    })
}

/// Write `r` into `out` (exactly [`RECORD_LEN`] bytes); `false` (nothing written) for a
/// record in state Free or a wrong-sized `out`.
fn write_record(r: &FlowRecord, out: &mut [u8]) -> bool {
    let Some(state) = state_to_wire(r.state) else {
        return false;
    };
    let Ok(out) = <&mut [u8; RECORD_LEN]>::try_from(out) else {
        return false;
    };
    out[0] = r.proto;
    out[1] = state;
    out[2..6].copy_from_slice(&r.client.to_be_bytes());
    out[6..8].copy_from_slice(&r.client_port.to_be_bytes());
    out[8..12].copy_from_slice(&r.vip.to_be_bytes());
    out[12..14].copy_from_slice(&r.vport.to_be_bytes());
    out[14..18].copy_from_slice(&r.rs.to_be_bytes());
    out[18..20].copy_from_slice(&r.rs_port.to_be_bytes());
    true
}

fn write_header(h: &Header, kind: u8, count: u16, out: &mut [u8]) -> Result<(), SyncError> {
    let out: &mut [u8; HEADER_LEN] = out
        .get_mut(..HEADER_LEN)
        .and_then(|s| s.try_into().ok())
        .ok_or(SyncError::BufferTooSmall)?;
    out[0..4].copy_from_slice(&MAGIC);
    out[4] = VERSION;
    out[5] = kind;
    out[6] = h.vrid;
    out[7] = h.flags;
    out[8..12].copy_from_slice(&h.sender.octets());
    out[12..16].copy_from_slice(&h.seq.to_be_bytes());
    out[16..18].copy_from_slice(&count.to_be_bytes());
    out[18..20].copy_from_slice(&[0, 0]);
    Ok(())
}

/// Decode one datagram.
pub fn decode(b: &[u8]) -> Result<Message<'_>, SyncError> {
    let head = b.get(..HEADER_LEN).ok_or(SyncError::Short)?;
    let body = b.get(HEADER_LEN..).unwrap_or_default();
    if head.get(0..4) != Some(&MAGIC[..]) {
        return Err(SyncError::Magic);
    }
    let at = |i: usize| head.get(i).copied().unwrap_or(0);
    if at(4) != VERSION {
        return Err(SyncError::Version(at(4)));
    }
    let kind = at(5);
    let flags = at(7);
    if flags & !KNOWN_FLAGS != 0 {
        return Err(SyncError::Flags(flags));
    }
    if be16(head, 18) != 0 {
        return Err(SyncError::Reserved);
    }
    let header = Header {
        vrid: at(6),
        flags,
        sender: Ipv4Addr::from(be32(head, 8)),
        seq: be32(head, 12),
    };
    let count = be16(head, 16);
    let exact = |want: usize| {
        if body.len() == want {
            Ok(())
        } else {
            Err(SyncError::Length {
                got: b.len(),
                want: HEADER_LEN + want,
            })
        }
    };
    match kind {
        TYPE_RECORDS => {
            exact(usize::from(count) * RECORD_LEN)?;
            Ok(Message::Records {
                header,
                records: Records::check(body)?,
            })
        }
        TYPE_DUMP_REQUEST | TYPE_DUMP_END if count != 0 => Err(SyncError::Count(count)),
        TYPE_DUMP_REQUEST => {
            exact(DUMP_REQUEST_LEN)?;
            Ok(Message::DumpRequest {
                header,
                generation: be64(body, 0),
            })
        }
        TYPE_DUMP_END => {
            exact(DUMP_END_LEN)?;
            Ok(Message::DumpEnd {
                header,
                requester: Ipv4Addr::from(be32(body, 0)),
                generation: be64(body, 4),
                records: be32(body, 12),
            })
        }
        t => Err(SyncError::Type(t)),
    }
}

/// Encode `m` into `buf`; returns the bytes written.
pub fn encode(m: &Message<'_>, buf: &mut [u8]) -> Result<usize, SyncError> {
    let len = m.len();
    let out = buf.get_mut(..len).ok_or(SyncError::BufferTooSmall)?;
    let (kind, count) = match m {
        Message::Records { records, .. } => (
            TYPE_RECORDS,
            u16::try_from(records.len()).map_err(|_| SyncError::TooMany)?,
        ),
        Message::DumpRequest { .. } => (TYPE_DUMP_REQUEST, 0),
        Message::DumpEnd { .. } => (TYPE_DUMP_END, 0),
    };
    write_header(m.header(), kind, count, out)?;
    let body = out.get_mut(HEADER_LEN..).ok_or(SyncError::BufferTooSmall)?;
    match m {
        Message::Records { records, .. } => body.copy_from_slice(records.bytes),
        Message::DumpRequest { generation, .. } => body.copy_from_slice(&generation.to_be_bytes()),
        Message::DumpEnd {
            requester,
            generation,
            records,
            ..
        } => {
            body[0..4].copy_from_slice(&requester.octets());
            body[4..12].copy_from_slice(&generation.to_be_bytes());
            body[12..16].copy_from_slice(&records.to_be_bytes());
        }
    }
    Ok(len)
}

/// Encode as many of `records` as fit in `min(buf.len(), max_message)` bytes as one records
/// message. Returns (bytes written, records consumed): records in state Free are consumed
/// but not written (they are never sent).
pub fn encode_records(
    h: &Header,
    records: &[FlowRecord],
    buf: &mut [u8],
    max_message: usize,
) -> Result<(usize, usize), SyncError> {
    let mut b = Batch::new(max_message.min(buf.len()));
    let mut used = 0;
    for r in records {
        if !b.push(r) {
            break;
        }
        used += 1;
    }
    let bytes = b.finish(h);
    let out = buf
        .get_mut(..bytes.len())
        .ok_or(SyncError::BufferTooSmall)?;
    out.copy_from_slice(bytes);
    Ok((bytes.len(), used))
}

/// A records message being filled (the sync thread's one reused buffer): records go in as
/// they come, the header is written when the message is sent.
#[derive(Debug)]
pub struct Batch {
    buf: Vec<u8>,
    cap: usize,
    count: u16,
}

impl Batch {
    /// A batch for messages of at most `max_message` bytes (at least one record's worth).
    pub fn new(max_message: usize) -> Self {
        let cap = Self::records_per_message(max_message);
        let mut buf = vec![0; HEADER_LEN + cap * RECORD_LEN];
        buf.truncate(HEADER_LEN);
        Batch { buf, cap, count: 0 }
    }

    /// How many records a message of `max_message` bytes holds (at least 1, at most 65535).
    pub fn records_per_message(max_message: usize) -> usize {
        (max_message.saturating_sub(HEADER_LEN) / RECORD_LEN).clamp(1, usize::from(u16::MAX))
    }

    /// Add `r`; `false` when the batch is full (nothing added). A record in state Free is
    /// dropped (never sent) and counts as added.
    pub fn push(&mut self, r: &FlowRecord) -> bool {
        if usize::from(self.count) >= self.cap {
            return false;
        }
        let at = self.buf.len();
        self.buf.resize(at + RECORD_LEN, 0);
        if self.buf.get_mut(at..).is_some_and(|o| write_record(r, o)) {
            self.count += 1;
        } else {
            self.buf.truncate(at);
        }
        true
    }

    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn is_full(&self) -> bool {
        usize::from(self.count) >= self.cap
    }

    /// The message's bytes with header `h` (the batch stays as it is until [`clear`]).
    ///
    /// [`clear`]: Self::clear
    pub fn finish(&mut self, h: &Header) -> &[u8] {
        // The buffer always holds the header's bytes: write_header cannot fail here.
        let _ = write_header(h, TYPE_RECORDS, self.count, &mut self.buf);
        &self.buf
    }

    /// Empty the batch for the next message (keeps its buffer).
    pub fn clear(&mut self) {
        self.buf.truncate(HEADER_LEN);
        self.count = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header(seq: u32) -> Header {
        Header {
            vrid: 51,
            flags: 0,
            sender: Ipv4Addr::new(198, 18, 0, 2),
            seq,
        }
    }

    fn rec(port: u16) -> FlowRecord {
        FlowRecord {
            proto: 6,
            state: FlowState::Established,
            client: u32::from(Ipv4Addr::new(198, 18, 10, 1)),
            client_port: port,
            vip: u32::from(Ipv4Addr::new(198, 18, 0, 100)),
            vport: 80,
            rs: u32::from(Ipv4Addr::new(198, 18, 0, 11)),
            rs_port: 8080,
        }
    }

    /// A records message with one ESTABLISHED TCP flow.
    #[rustfmt::skip]
    const ONE_RECORD: [u8; 40] = [
        b'R', b'V', b'S', b'Y', // magic
        1,                      // version
        1,                      // type: records
        51,                     // vrid
        0,                      // flags
        198, 18, 0, 2,          // sender 198.18.0.2
        0, 0, 0, 7,             // sequence 7
        0, 1,                   // count 1
        0, 0,                   // reserved
        // record 0
        6,                      // proto TCP
        2,                      // state ESTABLISHED
        198, 18, 10, 1,         // client 198.18.10.1
        0x9c, 0x40,             // client port 40000
        198, 18, 0, 100,        // vip 198.18.0.100
        0, 80,                  // vport 80
        198, 18, 0, 11,         // rs 198.18.0.11
        0x1f, 0x90,             // rs port 8080
    ];

    /// A dump request, generation 3.
    #[rustfmt::skip]
    const DUMP_REQUEST: [u8; 28] = [
        b'R', b'V', b'S', b'Y', // magic
        1,                      // version
        2,                      // type: dump request
        51,                     // vrid
        0,                      // flags
        198, 18, 0, 3,          // sender 198.18.0.3
        0, 0, 0, 1,             // sequence 1
        0, 0,                   // count 0
        0, 0,                   // reserved
        0, 0, 0, 0, 0, 0, 0, 3, // generation 3
    ];

    /// A dump end answering 198.18.0.3's generation 3 after 1000 records.
    #[rustfmt::skip]
    const DUMP_END: [u8; 36] = [
        b'R', b'V', b'S', b'Y', // magic
        1,                      // version
        3,                      // type: dump end
        51,                     // vrid
        0,                      // flags
        198, 18, 0, 2,          // sender 198.18.0.2
        0, 0, 0, 9,             // sequence 9
        0, 0,                   // count 0
        0, 0,                   // reserved
        198, 18, 0, 3,          // requester 198.18.0.3
        0, 0, 0, 0, 0, 0, 0, 3, // generation 3
        0, 0, 0x03, 0xe8,       // records 1000
    ];

    #[test]
    fn fixtures_decode_and_encode_back() {
        let m = decode(&ONE_RECORD).unwrap();
        let Message::Records { header: h, records } = m else {
            panic!("{m:?}")
        };
        assert_eq!(h, header(7));
        assert_eq!(records.iter().collect::<Vec<_>>(), [rec(40000)]);

        let m = decode(&DUMP_REQUEST).unwrap();
        assert_eq!(
            m,
            Message::DumpRequest {
                header: Header {
                    sender: Ipv4Addr::new(198, 18, 0, 3),
                    ..header(1)
                },
                generation: 3
            }
        );
        let m = decode(&DUMP_END).unwrap();
        assert_eq!(
            m,
            Message::DumpEnd {
                header: header(9),
                requester: Ipv4Addr::new(198, 18, 0, 3),
                generation: 3,
                records: 1000
            }
        );
        for bytes in [&ONE_RECORD[..], &DUMP_REQUEST, &DUMP_END] {
            let mut buf = [0u8; 64];
            let n = encode(&decode(bytes).unwrap(), &mut buf).unwrap();
            assert_eq!(&buf[..n], bytes);
        }
        let mut buf = [0u8; 64];
        let (n, used) = encode_records(&header(7), &[rec(40000)], &mut buf, 1400).unwrap();
        assert_eq!((&buf[..n], used), (&ONE_RECORD[..], 1));
    }

    #[test]
    fn bad_input_is_named() {
        type Edit = fn(&mut Vec<u8>);
        let cases: [(&[u8], Edit, SyncError); 14] = [
            (&ONE_RECORD, |b| b.truncate(19), SyncError::Short),
            (&ONE_RECORD, |b| b.clear(), SyncError::Short),
            (&ONE_RECORD, |b| b[3] = b'X', SyncError::Magic),
            (&ONE_RECORD, |b| b[4] = 2, SyncError::Version(2)),
            (&ONE_RECORD, |b| b[5] = 4, SyncError::Type(4)),
            (&ONE_RECORD, |b| b[5] = 0, SyncError::Type(0)),
            (&ONE_RECORD, |b| b[7] = 0x82, SyncError::Flags(0x82)),
            (&ONE_RECORD, |b| b[19] = 1, SyncError::Reserved),
            // count 2 but one record
            (
                &ONE_RECORD,
                |b| b[17] = 2,
                SyncError::Length { got: 40, want: 60 },
            ),
            // a trailing byte
            (
                &ONE_RECORD,
                |b| b.push(0),
                SyncError::Length { got: 41, want: 40 },
            ),
            // state 0 (Free) and 7 (unknown)
            (
                &ONE_RECORD,
                |b| b[21] = 0,
                SyncError::State { index: 0, state: 0 },
            ),
            (
                &ONE_RECORD,
                |b| b[21] = 7,
                SyncError::State { index: 0, state: 7 },
            ),
            (&DUMP_REQUEST, |b| b[17] = 1, SyncError::Count(1)),
            (
                &DUMP_END,
                |b| b.truncate(35),
                SyncError::Length { got: 35, want: 36 },
            ),
        ];
        for (i, (base, edit, want)) in cases.into_iter().enumerate() {
            let mut b = base.to_vec();
            edit(&mut b);
            assert_eq!(decode(&b), Err(want), "case {i}");
        }
    }

    #[test]
    fn batches_fill_to_max_message_and_skip_free_records() {
        // 1400 bytes: (1400 - 20) / 20 = 69 records.
        assert_eq!(Batch::records_per_message(1400), 69);
        assert_eq!(Batch::records_per_message(0), 1);
        let mut b = Batch::new(1400);
        let mut free = rec(1);
        free.state = FlowState::Free;
        assert!(b.push(&free));
        assert!(b.is_empty(), "Free is never sent");
        for p in 0..69 {
            assert!(b.push(&rec(p)));
        }
        assert!(b.is_full());
        assert!(!b.push(&rec(70)));
        let bytes = b.finish(&header(1)).to_vec();
        assert_eq!(bytes.len(), 20 + 69 * 20);
        let Ok(Message::Records { records, .. }) = decode(&bytes) else {
            panic!()
        };
        assert_eq!(records.iter().map(|r| r.client_port).max(), Some(68));
        b.clear();
        assert!(b.is_empty());
        // encode_records stops at the bound and says how many it took.
        let recs: Vec<_> = (0..10).map(rec).collect();
        let mut buf = [0u8; 2000];
        assert_eq!(
            encode_records(&header(1), &recs, &mut buf, 100),
            Ok((20 + 4 * 20, 4))
        );
        assert_eq!(
            encode(
                &decode(&DUMP_END).unwrap(),
                &mut [0u8; 35] // one byte short
            ),
            Err(SyncError::BufferTooSmall)
        );
    }

    fn any_state() -> impl Strategy<Value = FlowState> {
        (1u8..=6).prop_map(|v| state_from_wire(v).unwrap())
    }

    fn any_record() -> impl Strategy<Value = FlowRecord> {
        (
            any::<u8>(),
            any_state(),
            any::<(u32, u16, u32, u16, u32, u16)>(),
        )
            .prop_map(|(proto, state, (c, cp, v, vp, rs, rp))| FlowRecord {
                proto,
                state,
                client: c,
                client_port: cp,
                vip: v,
                vport: vp,
                rs,
                rs_port: rp,
            })
    }

    proptest! {
        #[test]
        fn records_round_trip(
            recs in proptest::collection::vec(any_record(), 0..100),
            vrid: u8, seq: u32, sender: u32, max in 40usize..3000,
        ) {
            let h = Header { vrid, flags: FLAG_DUMP, sender: Ipv4Addr::from(sender), seq };
            let mut buf = vec![0u8; 4000];
            let (n, used) = encode_records(&h, &recs, &mut buf, max).unwrap();
            prop_assert!(n <= max);
            prop_assert_eq!(used, recs.len().min(Batch::records_per_message(max)));
            let m = decode(&buf[..n]).unwrap();
            let Message::Records { header, records } = m else { panic!("{m:?}") };
            prop_assert_eq!(header, h);
            prop_assert_eq!(records.iter().collect::<Vec<_>>(), &recs[..used]);
            let mut again = vec![0u8; n];
            prop_assert_eq!(encode(&m, &mut again), Ok(n));
            prop_assert_eq!(&again[..], &buf[..n]);
        }

        #[test]
        fn control_messages_round_trip(seq: u32, gen: u64, req: u32, count: u32) {
            for m in [
                Message::DumpRequest { header: header(seq), generation: gen },
                Message::DumpEnd {
                    header: header(seq),
                    requester: Ipv4Addr::from(req),
                    generation: gen,
                    records: count,
                },
            ] {
                let mut buf = [0u8; 64];
                let n = encode(&m, &mut buf).unwrap();
                prop_assert_eq!(decode(&buf[..n]), Ok(m));
            }
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes);
            // With a valid header in front, the body is what is tested.
            let mut b = ONE_RECORD[..20].to_vec();
            b.extend_from_slice(&bytes);
            if let Ok(m) = decode(&b) {
                let mut out = vec![0u8; b.len()];
                prop_assert_eq!(encode(&m, &mut out), Ok(b.len()));
                prop_assert_eq!(out, b);
            }
        }
    }
}
