//! The frame pipeline as a whole: arbitrary bytes as bursts of frames (with the NIC's checksum
//! word and clock steps) through two workers of a small fixed configuration, one deciding
//! bursts (`process_burst`), the other frame by frame (`process`). Nothing may panic; every
//! frame is forwarded (only its MACs rewritten, to a real server's), answered, consumed or
//! dropped unchanged; the counters add up to the frames; both workers decide alike. The input
//! format and the checks: `rvs_dataplane::testing::fuzz`. The workers are kept from one input
//! to the next (`Session`: each run starts past every timeout of the previous one); a crash's
//! input is checked on fresh workers with `rvs_dataplane::testing::fuzz::run`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_dataplane::testing::fuzz::Session;
use std::cell::RefCell;

thread_local! {
    static SESSION: RefCell<Session> = RefCell::new(Session::new());
}

fuzz_target!(|data: &[u8]| {
    if let Err(e) = SESSION.with(|s| s.borrow_mut().run(data)) {
        panic!("pipeline invariant broken: {e}");
    }
});
