//! The announcer's readers: `parse_routes` over what `ip route show` printed, and the
//! `[announce]` section (TOML, then `validate`). Invariants: never panics; every address
//! `parse_routes` returns is the first word of a line of the text (bare or with `/32`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs::announce::{parse_routes, AnnounceConfig};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for vip in parse_routes(text) {
        let (bare, host) = (vip.to_string(), format!("{vip}/32"));
        assert!(
            text.lines()
                .filter_map(|l| l.split_whitespace().next())
                .any(|w| w == bare || w == host),
            "{vip} is not a line's destination"
        );
    }
    if let Ok(cfg) = toml::from_str::<AnnounceConfig>(text) {
        let _ = cfg.validate();
    }
});
