//! Connection-sync datagrams through the sync codec. Invariants: decoding never panics; what
//! decodes encodes back to exactly the same bytes; its records re-encoded by the batch path
//! (`encode_records`) decode to the same records.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_control::sync::{decode, encode, encode_records, Message};

fuzz_target!(|data: &[u8]| {
    let Ok(m) = decode(data) else {
        return;
    };
    let mut out = vec![0u8; data.len()];
    assert_eq!(encode(&m, &mut out), Ok(data.len()));
    assert_eq!(out, data);
    if let Message::Records { header, records } = m {
        let recs: Vec<_> = records.iter().collect();
        assert_eq!(recs.len(), records.len());
        let mut buf = vec![0u8; data.len()];
        let (n, used) = encode_records(&header, &recs, &mut buf, data.len()).expect("fits");
        assert_eq!((n, used), (data.len(), recs.len()));
        assert_eq!(buf, data);
    }
});
