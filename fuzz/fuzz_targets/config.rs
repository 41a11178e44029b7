//! The daemon's TOML configuration (`Config::from_str`: parse and validate). Invariants: never
//! panics, also in what the daemon derives from an accepted configuration (mempool sizing,
//! netmask).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(cfg) = Config::from_str(text) else {
        return;
    };
    let _ = cfg.netmask();
    for workers in [1, 2, 64] {
        let _ = cfg.port.pool_mbufs(workers);
        let _ = cfg.port.ring_mbufs(workers);
    }
});
