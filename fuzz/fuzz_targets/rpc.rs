//! One control request line (arbitrary bytes) through `Control::handle_bytes`, over the fake
//! dataplane with the lab's model. Invariants: exactly one line of JSON-RPC 2.0 back, a result or
//! an error (never a caught panic); a refused request changes nothing; after an accepted one the
//! model is still what the director allows and what its own rules text rebuilds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_control::rules;
use rvs_control::server::testing::{FakeDataplane, LAB_DIRECTOR};
use rvs_control::server::Control;
use rvs_dataplane::model::Model;
use serde_json::Value;
use std::sync::{Arc, OnceLock};

/// The lab: director 198.18.0.2/24, two services, three real servers.
const LAB: &str = "\
-A -t 198.18.0.100:80 -s rr
-a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 1
-a -t 198.18.0.100:80 -r 198.18.0.12:80 -g -w 2
-A -u 198.18.0.100:53 -s wrr -p 60
-a -u 198.18.0.100:53 -r 198.18.0.11:53 -g -w 1
";

fn lab() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| {
        let c = Control::new(Model::new(8, 8), Arc::new(FakeDataplane::default()));
        c.apply_rules(LAB).expect("the lab rules apply");
        c.model()
    })
}

fuzz_target!(|data: &[u8]| {
    let c = Control::new(lab().clone(), Arc::new(FakeDataplane::default()));
    let reply = c.handle_bytes(data);
    assert!(!reply.contains('\n'), "more than one line: {reply}");
    let v: Value = serde_json::from_str(&reply).expect("the reply is JSON");
    assert_eq!(v["jsonrpc"], "2.0", "{reply}");
    assert!(
        v.get("result").is_some() != v.get("error").is_some(),
        "{reply}"
    );
    if let Some(e) = v.get("error") {
        assert!(e["code"].is_i64(), "{reply}");
        let msg = e["message"].as_str().expect("a message");
        assert_ne!(msg, "internal error while handling the request", "a caught panic");
    }
    let m = c.model();
    if v.get("error").is_some() {
        // A refused request changes nothing.
        assert_eq!(rules::emit(&m, false), rules::emit(lab(), false), "{reply}");
        assert_eq!(m.statics, lab().statics, "{reply}");
        return;
    }
    for svc in m.services() {
        LAB_DIRECTOR
            .check_vip(&m, svc.spec.key.vip)
            .expect("the model holds a refused VIP");
        for rs in &svc.servers {
            LAB_DIRECTOR
                .check_server(&m, &rs.spec)
                .expect("the model holds a refused real server");
        }
    }
    for n in &m.statics {
        LAB_DIRECTOR
            .check_static(n)
            .expect("the model holds a refused static neighbour");
    }
    let saved = rules::emit(&m, false);
    let mut again = Model::new(m.max_services(), m.max_servers());
    let parsed = rules::parse(&saved).expect("saved rules parse");
    rules::apply(&mut again, &parsed).expect("saved rules apply");
    assert_eq!(rules::emit(&again, false), saved);
});
