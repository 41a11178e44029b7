//! keepalived.conf text through the reader (`keepalived::parse_str`). Invariants: never panics;
//! what it accepts is whole and valid: every service and real server goes into a model, every
//! check validates, and every error and listed directive points at a line of the text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_control::keepalived;
use rvs_dataplane::model::Model;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines = text.split('\n').count() as u32;
    let cfg = match keepalived::parse_str(text, "fuzz.conf") {
        Ok(c) => c,
        Err(e) => {
            assert!(e.line >= 1 && e.line <= lines, "{e}");
            assert!(!e.message.is_empty());
            return;
        }
    };
    for d in &cfg.unsupported {
        assert!(d.line >= 1 && d.line <= lines, "{d}");
        let _ = d.to_string();
    }
    let mut m = Model::new(cfg.services.len() as u32 + 1, 4096);
    for vs in &cfg.services {
        assert!(vs.line >= 1 && vs.line <= lines);
        m.add_service(vs.spec.clone())
            .expect("an accepted service fits a model");
        for rs in &vs.servers {
            if m.add_server(&vs.spec.key, rs.spec).is_err() {
                // Only a full model may refuse it.
                assert!(vs.servers.len() > 4096);
            }
            for c in &rs.health.checks {
                c.validate().expect("an accepted check validates");
            }
        }
    }
});
