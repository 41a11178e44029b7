//! Bytes from the wire as the VRRP runner's raw socket delivers them (an IPv4 packet), and as a
//! bare VRRP message. Invariants: never panics; an advert that parses is emitted back to the
//! same advert (v3 from the same addresses; v2's interval in whole seconds), and a machine fed
//! it never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_control::ha::VrrpInstance;
use rvs_control::vrrp::machine::{Machine, Params};
use rvs_control::vrrp::packet::{emit, emit_ip, parse, parse_ip};
use std::net::Ipv4Addr;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = parse_ip(data) {
        let again = parse_ip(&emit_ip(&r.advert, r.src, r.dst)).expect("emitted advert parses");
        assert_eq!(again.advert.vrid, r.advert.vrid);
        assert_eq!(again.advert.priority, r.advert.priority);
        assert_eq!(again.advert.addrs, r.advert.addrs);
        let i = VrrpInstance::new("VI_1", r.advert.vrid.max(1), 100, vec![Ipv4Addr::LOCALHOST]);
        let mut m = Machine::new(Params::of(&i, Ipv4Addr::new(198, 18, 0, 2)));
        m.start(0);
        m.advert(10, r.src, &r.advert);
        m.tick(u64::from(r.advert.interval_cs) * 40);
        m.advert(20_000, r.src, &r.advert);
    }
    let (src, dst) = (Ipv4Addr::new(198, 18, 0, 3), Ipv4Addr::new(224, 0, 0, 18));
    if let Ok(a) = parse(src, dst, data) {
        let back = parse(src, dst, &emit(&a, src, dst)).expect("emitted advert parses");
        assert_eq!(back, a);
    }
});
