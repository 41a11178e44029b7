//! An HTTP check's response (`rvs_control::httpcheck`: the strict, incremental reader and the
//! url check). The first byte sets the size of the pieces the rest is fed in. Invariants:
//! never panics; pieces of any size read exactly as the whole; an accepted response has a
//! status in 100..=599, a header that ends with its empty line within MAX_HEAD, a body no
//! longer than MAX_HTTP_BODY (and Content-Length's when given), and its digest is the MD5 of
//! exactly those body bytes; checking a url against it never panics and a url holding its own
//! digest passes on any 2xx status.
#![no_main]

use libfuzzer_sys::fuzz_target;
use md5::{Digest, Md5};
use rvs_control::check::{UrlCheck, MAX_HTTP_BODY};
use rvs_control::httpcheck::{check_url, parse_response, ResponseReader, MAX_HEAD};

fuzz_target!(|data: &[u8]| {
    let Some((&first, data)) = data.split_first() else {
        return;
    };
    let whole = parse_response(data);
    let piece = usize::from(first % 64) + 1;
    let mut r = ResponseReader::new();
    let mut fed = Ok(false);
    for p in data.chunks(piece) {
        fed = r.feed(p);
        if !matches!(fed, Ok(false)) {
            break;
        }
    }
    let pieces = fed.and_then(|_| r.finish());
    assert_eq!(pieces, whole, "pieces of {piece}");
    let Ok(resp) = whole else {
        return;
    };
    assert!((100..=599).contains(&resp.status));
    assert!(resp.head_len <= MAX_HEAD && resp.head_len <= data.len());
    assert!(data[..resp.head_len].ends_with(b"\r\n\r\n"));
    let body = &data[resp.head_len..];
    let want = match resp.content_length {
        Some(c) => c.min(MAX_HTTP_BODY as u64),
        None => (body.len() as u64).min(MAX_HTTP_BODY as u64),
    };
    assert_eq!(resp.body_len, want);
    let digested = &body[..want as usize];
    assert_eq!(resp.digest, <[u8; 16]>::from(Md5::digest(digested)));
    let _ = check_url(&UrlCheck::default(), &resp);
    let own = UrlCheck {
        digest: Some(resp.digest_hex()),
        ..UrlCheck::default()
    };
    assert_eq!(
        check_url(&own, &resp).is_ok(),
        (200..=299).contains(&resp.status)
    );
});
