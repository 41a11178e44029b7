//! The flow tables across a restart: a graceful stop writes every worker's live flows to the
//! `[state] flows` file, and the next start re-installs them, so established connections keep
//! their real server across `systemctl restart rvs` or an upgrade.
//!
//! Both ends use connection sync's machinery ([`SyncRings`]): at stop, once the HA threads are
//! gone, the workers are asked for a dump ([`SyncRings::request_dump`]) and this module drains
//! their out rings into the file; at start, a thread feeds the file's records to the workers'
//! in rings ([`SyncRings::install`]), where each worker installs them between bursts like a
//! peer's (the real server is found by address and port in the rules just loaded; a record
//! whose service or server is gone is counted in `install_failed`).
//!
//! The file (big-endian):
//!
//! ```text
//! offset size
//!      0    8  magic "RVSFLOWS"
//!      8    1  version (1)
//!      9    3  zero
//!     12    8  saved at, Unix seconds
//!     20    4  record count N
//!     24 20*N  records: proto u8, state u8 (connection sync's wire values), client u32,
//!              client port u16, VIP u32, VIP port u16, real server u32, its port u16
//! ```
//!
//! A file older than `max_age` (the longest flow timeout) holds nothing alive and is skipped.
//! The file is removed once read, so a crash and restart never replays an old table.

use rvs_control::sync::{state_from_wire, state_to_wire};
use rvs_dataplane::sync::{FlowRecord, SyncRings};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const MAGIC: &[u8; 8] = b"RVSFLOWS";
const VERSION: u8 = 1;
const HEADER: usize = 24;
const RECORD: usize = 20;
/// Records at most in a file (a bound on what a start reads: 64 Mi flows, 1.25 GiB).
pub const MAX_RECORDS: usize = 64 * 1024 * 1024;

/// Why a flow-state file was not used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FlowStateError {
    #[error("too short for the header ({0} bytes)")]
    Short(usize),
    #[error("not a flow-state file (bad magic)")]
    Magic,
    #[error("version {0} is not supported (this build reads 1)")]
    Version(u8),
    #[error("the reserved bytes after the version are not zero")]
    Reserved,
    #[error("{count} records announced, {bytes} bytes of records present")]
    Length { count: u32, bytes: usize },
    #[error("{0} records is more than {MAX_RECORDS}")]
    TooMany(u32),
    #[error("record {index}: {why}")]
    Record { index: usize, why: &'static str },
}

/// The file's bytes for `records`, saved at Unix second `saved_at`.
pub fn encode(records: &[FlowRecord], saved_at: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + RECORD * records.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[VERSION, 0, 0, 0]);
    out.extend_from_slice(&saved_at.to_be_bytes());
    let kept: Vec<(&FlowRecord, u8)> = records
        .iter()
        .filter_map(|r| state_to_wire(r.state).map(|s| (r, s)))
        .take(MAX_RECORDS)
        .collect();
    out.extend_from_slice(&(kept.len() as u32).to_be_bytes());
    for (r, state) in kept {
        out.push(r.proto);
        out.push(state);
        out.extend_from_slice(&r.client.to_be_bytes());
        out.extend_from_slice(&r.client_port.to_be_bytes());
        out.extend_from_slice(&r.vip.to_be_bytes());
        out.extend_from_slice(&r.vport.to_be_bytes());
        out.extend_from_slice(&r.rs.to_be_bytes());
        out.extend_from_slice(&r.rs_port.to_be_bytes());
    }
    out
}

fn be16(b: &[u8], at: usize) -> u16 {
    let mut x = [0u8; 2];
    if let Some(s) = b.get(at..at + 2) {
        x.copy_from_slice(s);
    }
    u16::from_be_bytes(x)
}

fn be32(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        x.copy_from_slice(s);
    }
    u32::from_be_bytes(x)
}

/// The save time and records of a file's bytes.
pub fn decode(b: &[u8]) -> Result<(u64, Vec<FlowRecord>), FlowStateError> {
    if b.len() < HEADER {
        return Err(FlowStateError::Short(b.len()));
    }
    if b.get(..8) != Some(MAGIC.as_slice()) {
        return Err(FlowStateError::Magic);
    }
    let version = b.get(8).copied().unwrap_or(0);
    if version != VERSION {
        return Err(FlowStateError::Version(version));
    }
    if b.get(9..12) != Some([0u8; 3].as_slice()) {
        return Err(FlowStateError::Reserved);
    }
    let mut t = [0u8; 8];
    if let Some(s) = b.get(12..20) {
        t.copy_from_slice(s);
    }
    let saved_at = u64::from_be_bytes(t);
    let count = be32(b, 20);
    if count as usize > MAX_RECORDS {
        return Err(FlowStateError::TooMany(count));
    }
    let body = b.get(HEADER..).unwrap_or_default();
    if body.len() != count as usize * RECORD {
        return Err(FlowStateError::Length {
            count,
            bytes: body.len(),
        });
    }
    let mut out = Vec::with_capacity(count as usize);
    for (index, r) in body.chunks_exact(RECORD).enumerate() {
        let proto = r.first().copied().unwrap_or(0);
        if proto != 6 && proto != 17 {
            return Err(FlowStateError::Record {
                index,
                why: "protocol is neither TCP nor UDP",
            });
        }
        let state =
            state_from_wire(r.get(1).copied().unwrap_or(0)).ok_or(FlowStateError::Record {
                index,
                why: "unknown flow state",
            })?;
        out.push(FlowRecord {
            proto,
            state,
            client: be32(r, 2),
            client_port: be16(r, 6),
            vip: be32(r, 8),
            vport: be16(r, 12),
            rs: be32(r, 14),
            rs_port: be16(r, 18),
        });
    }
    Ok((saved_at, out))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Ask the (still running) workers for their tables and write them to `path` (through a
/// temporary file and a rename, so a crash mid-way never leaves half a table). Gives up after
/// `limit`. Returns the number of flows saved.
pub fn save(rings: &SyncRings, path: &Path, limit: Duration) -> std::io::Result<usize> {
    let start = Instant::now();
    // Nothing else drains the out rings now (the sync thread has stopped): drop what a
    // last report left there, then dump.
    rings.set_sending(false);
    rings.drain_out(usize::MAX, |_| {});
    let gen = rings.request_dump();
    let mut records = Vec::new();
    loop {
        let finished = rings.dump_finished(gen);
        let n = rings.drain_out(4096, |r| records.push(r));
        if finished && n == 0 {
            break;
        }
        if start.elapsed() > limit {
            tracing::warn!(
                flows = records.len(),
                "flow tables: the workers did not finish their dump in {} ms; saving what came",
                limit.as_millis()
            );
            break;
        }
        if n == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let bytes = encode(&records, unix_now());
    let tmp = tmp_path(path);
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(records.len())
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

/// What a start found in the state file.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Loaded {
    pub saved_at: u64,
    pub records: Vec<FlowRecord>,
}

/// Read and remove the state file. `Ok(None)`: there is none, or it is older than `max_age`
/// (nothing in it can be alive).
pub fn load(path: &Path, max_age: Duration) -> Result<Option<Loaded>, String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    // Read once: a crash later must not replay it.
    if let Err(e) = std::fs::remove_file(path) {
        tracing::warn!(path = %path.display(), "flow tables: cannot remove the state file: {e}");
    }
    let (saved_at, records) = decode(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let age = unix_now().saturating_sub(saved_at);
    if age > max_age.as_secs() {
        tracing::info!(
            path = %path.display(),
            age_s = age,
            "flow tables: the saved table is older than the longest flow timeout; not used"
        );
        return Ok(None);
    }
    Ok(Some(Loaded { saved_at, records }))
}

/// Hand `records` to the workers through `rings` (they install them between bursts), waiting
/// for room when an in ring is full; gives up after `limit`. Returns how many were handed over.
pub fn feed(rings: &SyncRings, records: &[FlowRecord], limit: Duration) -> usize {
    let start = Instant::now();
    let mut n = 0;
    for r in records {
        loop {
            if rings.install(*r) {
                n += 1;
                break;
            }
            if start.elapsed() > limit {
                return n;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_dataplane::flow::FlowState;

    fn rec(port: u16, state: FlowState) -> FlowRecord {
        FlowRecord {
            proto: 6,
            state,
            client: 0xc612_0a0a, // 198.18.10.10
            client_port: port,
            vip: 0xc612_0064, // 198.18.0.100
            vport: 80,
            rs: 0xc612_000b, // 198.18.0.11
            rs_port: 80,
        }
    }

    /// One established TCP flow 198.18.10.10:40000 -> 198.18.0.100:80 on 198.18.0.11:80,
    /// saved at 1 800 000 000.
    const ONE: [u8; 44] = [
        b'R', b'V', b'S', b'F', b'L', b'O', b'W', b'S', // magic
        1, 0, 0, 0, // version, zero
        0, 0, 0, 0, 0x6b, 0x49, 0xd2, 0x00, // saved at 1800000000
        0, 0, 0, 1, // one record
        6, 2, // TCP, ESTABLISHED
        198, 18, 10, 10, 0x9c, 0x40, // client 198.18.10.10:40000
        198, 18, 0, 100, 0, 80, // VIP 198.18.0.100:80
        198, 18, 0, 11, 0, 80, // real server 198.18.0.11:80
    ];

    #[test]
    fn the_file_format() {
        let r = rec(40000, FlowState::Established);
        assert_eq!(encode(&[r], 1_800_000_000), ONE);
        assert_eq!(decode(&ONE), Ok((1_800_000_000, vec![r])));
        // Free entries are never written.
        let free = rec(1, FlowState::Free);
        assert_eq!(encode(&[free, r], 1_800_000_000), ONE);
        let many: Vec<FlowRecord> = (0..500)
            .map(|p| rec(p, FlowState::SynRecv))
            .chain((0..3).map(|p| FlowRecord {
                proto: 17,
                ..rec(p, FlowState::Udp)
            }))
            .collect();
        assert_eq!(decode(&encode(&many, 7)), Ok((7, many)));
    }

    #[test]
    fn bad_files_are_refused() {
        let with = |at: usize, v: u8| {
            let mut b = ONE.to_vec();
            b[at] = v;
            b
        };
        let cases: Vec<(Vec<u8>, FlowStateError)> = vec![
            (vec![], FlowStateError::Short(0)),
            (ONE[..23].to_vec(), FlowStateError::Short(23)),
            (with(0, b'X'), FlowStateError::Magic),
            (with(8, 2), FlowStateError::Version(2)),
            // Found by the fuzz target: a reserved byte set decoded, and encoded back as zero.
            (with(10, 0x18), FlowStateError::Reserved),
            (
                ONE[..43].to_vec(),
                FlowStateError::Length {
                    count: 1,
                    bytes: 19,
                },
            ),
            (
                [&ONE[..], &[0u8; 20][..]].concat(),
                FlowStateError::Length {
                    count: 1,
                    bytes: 40,
                },
            ),
            (with(20, 0x7f), FlowStateError::TooMany(0x7f00_0001)),
            (
                with(24, 1),
                FlowStateError::Record {
                    index: 0,
                    why: "protocol is neither TCP nor UDP",
                },
            ),
            (
                with(25, 0),
                FlowStateError::Record {
                    index: 0,
                    why: "unknown flow state",
                },
            ),
            (
                with(25, 7),
                FlowStateError::Record {
                    index: 0,
                    why: "unknown flow state",
                },
            ),
        ];
        for (i, (bytes, want)) in cases.into_iter().enumerate() {
            assert_eq!(decode(&bytes), Err(want), "case {i}");
        }
    }

    #[test]
    fn save_dumps_the_workers_and_load_reads_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flows");
        let rings = std::sync::Arc::new(SyncRings::new(2, 8));
        // Two "workers" answering the dump: 10 flows each, more than a ring holds.
        let workers: Vec<_> = (0..2)
            .map(|w| {
                let rings = rings.clone();
                std::thread::spawn(move || {
                    while rings.dump_requested() == 0 {
                        std::thread::yield_now();
                    }
                    let gen = rings.dump_requested();
                    for p in 0..10u16 {
                        while !rings.out_has_room(w) {
                            std::thread::yield_now();
                        }
                        assert!(rings.push_out(w, rec(w as u16 * 100 + p, FlowState::Established)));
                    }
                    rings.finish_dump(w, gen);
                })
            })
            .collect();
        let n = save(&rings, &path, Duration::from_secs(5)).unwrap();
        for w in workers {
            w.join().unwrap();
        }
        assert_eq!(n, 20);
        let got = load(&path, Duration::from_secs(900)).unwrap().unwrap();
        let mut ports: Vec<u16> = got.records.iter().map(|r| r.client_port).collect();
        ports.sort();
        let want: Vec<u16> = (0..10).chain(100..110).collect();
        assert_eq!(ports, want);
        assert!(!path.exists(), "read once");
        assert_eq!(load(&path, Duration::from_secs(900)), Ok(None));
        // Too old: skipped.
        std::fs::write(&path, encode(&[rec(1, FlowState::Established)], 1)).unwrap();
        assert_eq!(load(&path, Duration::from_secs(900)), Ok(None));
        // Garbage: an error naming the file, and the file is gone.
        std::fs::write(&path, b"junk").unwrap();
        let e = load(&path, Duration::from_secs(900)).unwrap_err();
        assert!(e.contains("flows") && e.contains("too short"), "{e}");
        assert!(!path.exists());
    }

    #[test]
    fn feed_waits_for_room() {
        let rings = std::sync::Arc::new(SyncRings::new(1, 4));
        let recs: Vec<FlowRecord> = (0..10).map(|p| rec(p, FlowState::Established)).collect();
        let r2 = rings.clone();
        let worker = std::thread::spawn(move || {
            let mut got = Vec::new();
            while got.len() < 10 {
                match r2.pop_in(0) {
                    Some(r) => got.push(r.client_port),
                    None => std::thread::yield_now(),
                }
            }
            got
        });
        assert_eq!(feed(&rings, &recs, Duration::from_secs(5)), 10);
        assert_eq!(worker.join().unwrap(), (0..10).collect::<Vec<u16>>());
        // Nobody takes them: gives up at the limit.
        let full = SyncRings::new(1, 2);
        assert_eq!(feed(&full, &recs, Duration::from_millis(20)), 2);
    }
}
