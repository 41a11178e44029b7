//! The flow-state file a graceful stop writes and the next start reads (`rvs::flowstate`).
//! Invariants: decoding never panics; whatever decodes encodes back to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs::flowstate::{decode, encode};

fuzz_target!(|data: &[u8]| {
    if let Ok((saved_at, records)) = decode(data) {
        assert_eq!(encode(&records, saved_at), data, "decode then encode changed the bytes");
    }
});
