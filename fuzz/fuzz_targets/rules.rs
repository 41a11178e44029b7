//! Rules text (`ipvsadm -S` / `-R`) through the rules grammar. Invariants: never panics; what
//! parses is written back (`emit_rules`) as text that parses to the same commands; a model the
//! rules build (with the director's checks) saves as text that rebuilds it exactly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_control::grammar::Command;
use rvs_control::rules;
use rvs_control::server::testing::LAB_DIRECTOR;
use rvs_dataplane::model::Model;

fn commands(r: &[rules::Rule]) -> Vec<Command> {
    r.iter().map(|r| r.cmd.clone()).collect()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(parsed) = rules::parse(text) else {
        return;
    };
    let written = rules::emit_rules(&parsed);
    let again = rules::parse(&written).expect("written rules parse");
    assert_eq!(commands(&again), commands(&parsed), "{written}");
    let mut m = Model::new(16, 64);
    if rules::apply_checked(&mut m, &parsed, |m, c| LAB_DIRECTOR.check_command(m, c)).is_ok() {
        let saved = rules::emit(&m, false);
        let mut m2 = Model::new(16, 64);
        let reparsed = rules::parse(&saved).expect("saved rules parse");
        rules::apply(&mut m2, &reparsed).expect("saved rules apply");
        assert_eq!(rules::emit(&m2, false), saved);
    }
});
