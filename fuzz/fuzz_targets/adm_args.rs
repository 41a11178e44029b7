//! An rvsadm command line (arbitrary bytes, arguments separated by NUL) through the ipvsadm
//! grammar. Invariants: never panics; a command that changes the table, written as a rules line,
//! parses back to the same command. Host names are not resolved (no DNS while fuzzing).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_control::grammar::{parse_args, Command, Names};
use rvs_control::rules;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let args: Vec<&str> = if text.is_empty() {
        Vec::new()
    } else {
        text.split('\0').collect()
    };
    let Ok(cmd) = parse_args(&args, Names::NumericHosts) else {
        return;
    };
    if matches!(
        cmd,
        Command::AddService(_)
            | Command::EditService(_)
            | Command::DeleteService(_)
            | Command::AddServer(..)
            | Command::EditServer(..)
            | Command::DeleteServer(..)
            | Command::Clear
            | Command::SetNeighbour(_)
            | Command::DeleteNeighbour(_)
    ) {
        let line = rules::command_line(&cmd);
        let words: Vec<&str> = line.split_whitespace().collect();
        let back = parse_args(&words, Names::NumericHosts).expect("the written line parses");
        assert_eq!(back, cmd, "{line}");
    }
});
