//! The metrics endpoint (`rvs::metrics`): the HTTP request-head parser, the answer built from
//! it, and the renderer of `stats`/`list` replies. Invariants: never panics; an accepted
//! request has a token method and a path that is "*" or starts with '/' and holds no query; a
//! head longer than MAX_REQUEST is never accepted; every answer is a well-formed HTTP/1.1
//! response whose Content-Length is its body's; and when the input is JSON, rendering it as
//! both replies gives well-formed text exposition (no family or sample twice).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs::metrics::{head_end, lint, parse_request, render, respond, Scrape, MAX_REQUEST};

fuzz_target!(|data: &[u8]| {
    let parsed = parse_request(data);
    if let Ok(r) = parsed {
        assert!(!r.method.is_empty() && r.method.is_ascii());
        assert!(r.path == "*" || r.path.starts_with('/'), "{:?}", r.path);
        assert!(!r.path.contains(['?', '#', ' ']));
        let end = head_end(data).expect("an accepted head has an end");
        assert!(end <= MAX_REQUEST && end <= data.len());
    }
    let resp = respond(parsed, || Ok("a 1\n".to_string()));
    let bytes = resp.to_bytes();
    let text = String::from_utf8(bytes).expect("answers are UTF-8");
    assert!(text.starts_with("HTTP/1.1 "));
    let split = text.find("\r\n\r\n").expect("a head") + 4;
    let len = format!("\r\nContent-Length: {}\r\n", resp.body.len());
    assert!(text[..split].contains(&len));
    assert_eq!(
        text.len() - split,
        if resp.head_only { 0 } else { resp.body.len() }
    );

    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        let out = render(&Scrape::new(&v, &v));
        if let Err(e) = lint(&out) {
            panic!("{e}\n{out}");
        }
    }
});
