//! `MISC_CHECK` and the quorum scripts: a command line run without a shell (split by
//! [`rvs_control::health::split_command`]), stdin, stdout and stderr on /dev/null, in a
//! process group of its own. Past its time the whole group is killed (SIGKILL) and the script
//! reaped; that counts as a failure, as keepalived. Exit codes become results through
//! [`rvs_control::health::misc_exit`] (`misc_dynamic`: 2..=255 sets the weight to code - 2).

use rvs_control::check::{CheckParams, MiscCheck};
use rvs_control::health::{misc_exit, split_command, ProbeResult};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// `MISC_CHECK`: `misc_path` within `misc_timeout` (unset: `delay_loop`).
pub fn check(m: &MiscCheck, p: &CheckParams, stop: &AtomicBool) -> ProbeResult {
    let timeout = m.timeout_ms.unwrap_or(p.delay_loop_ms);
    let st = run(&m.path, timeout, stop)?;
    misc_exit(st.code(), st.signal(), m.dynamic)
}

/// Runs `line` to its end, at most `timeout_ms` (or until `stop`): its exit status, or why it
/// could not run or was killed ("timeout after 200 ms").
pub fn run(line: &str, timeout_ms: u64, stop: &AtomicBool) -> Result<ExitStatus, String> {
    let args = split_command(line)?;
    let mut child = Command::new(&args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("run {}: {}", args[0], super::probe::err_text(&e)))?;
    let end = Instant::now() + Duration::from_millis(timeout_ms);
    let mut nap = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return Ok(st),
            Ok(None) => {}
            Err(e) => {
                kill_group(&mut child);
                return Err(format!("wait for {}: {e}", args[0]));
            }
        }
        let now = Instant::now();
        let why = if now >= end {
            format!("timeout after {timeout_ms} ms")
        } else if stop.load(Ordering::Relaxed) {
            "stopped: the checker is shutting down".to_string()
        } else {
            std::thread::sleep(nap.min(end - now));
            nap = (nap * 2).min(Duration::from_millis(20));
            continue;
        };
        kill_group(&mut child);
        return Err(why);
    }
}

/// SIGKILL to the child's process group (what it started too), then reaps the child.
fn kill_group(child: &mut std::process::Child) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    if nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL).is_err() {
        let _ = child.kill();
    }
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn misc(path: &str, timeout_ms: Option<u64>, dynamic: bool) -> MiscCheck {
        MiscCheck {
            path: path.into(),
            timeout_ms,
            dynamic,
        }
    }

    #[test]
    fn exit_codes_with_and_without_misc_dynamic() {
        let p = CheckParams::default();
        let stop = AtomicBool::new(false);
        assert_eq!(check(&misc("true", None, false), &p, &stop), Ok(None));
        assert_eq!(
            check(&misc(r#"sh -c "exit 3""#, None, false), &p, &stop),
            Err("exited with status 3".into())
        );
        assert_eq!(
            check(&misc(r#"sh -c "exit 3""#, None, true), &p, &stop),
            Ok(Some(1))
        );
        assert_eq!(
            check(&misc(r#"sh -c "exit 0""#, None, true), &p, &stop),
            Ok(None)
        );
        assert_eq!(
            check(&misc(r#"sh -c "exit 1""#, None, true), &p, &stop),
            Err("exited with status 1".into())
        );
        assert_eq!(
            check(&misc(r#"sh -c "kill -TERM $$""#, None, true), &p, &stop),
            Err("killed by signal 15".into())
        );
        // No shell: a `;` is an argument, not a separator.
        assert_eq!(
            check(&misc("test a = a ; false", None, false), &p, &stop),
            Err("exited with status 2".into())
        );
        assert_eq!(
            check(&misc("/nonexistent/script arg", None, false), &p, &stop),
            Err("run /nonexistent/script: no such file or directory".into())
        );
        assert!(check(&misc(r#"sh -c "unclosed"#, None, false), &p, &stop)
            .unwrap_err()
            .contains("unclosed double quote"));
    }

    /// `sleep 5` with a 200 ms timeout: a failure after ~200 ms, the script killed and reaped
    /// (its pid gone), the sleep it started as well.
    #[test]
    fn a_script_past_its_timeout_is_killed_and_reaped() {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        let line = format!(
            r#"sh -c "echo $$ > {0}; sleep 5 & echo $! >> {0}; wait""#,
            pids.display()
        );
        let stop = AtomicBool::new(false);
        let t = Instant::now();
        assert_eq!(
            check(
                &misc(&line, Some(200), false),
                &CheckParams::default(),
                &stop
            ),
            Err("timeout after 200 ms".into())
        );
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_millis(700),
            "{took:?}"
        );
        let text = std::fs::read_to_string(&pids).unwrap();
        let pids: Vec<&str> = text.lines().collect();
        assert_eq!(pids.len(), 2, "{text}");
        // The script was reaped: no /proc entry, not even a zombie.
        assert!(!std::path::Path::new(&format!("/proc/{}", pids[0])).exists());
        // Its child got the SIGKILL too: gone, or a zombie waiting for its new parent.
        std::thread::sleep(Duration::from_millis(100));
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", pids[1])) {
            let state = stat.rsplit(") ").next().unwrap_or("").chars().next();
            assert_eq!(state, Some('Z'), "{stat}");
        }
        // The misc_timeout default is delay_loop.
        let p = CheckParams {
            delay_loop_ms: 150,
            ..CheckParams::default()
        };
        assert_eq!(
            check(&misc("sleep 5", None, false), &p, &stop),
            Err("timeout after 150 ms".into())
        );
    }

    #[test]
    fn stop_cuts_a_script_short() {
        let stop = AtomicBool::new(true);
        let t = Instant::now();
        assert!(run("sleep 5", 10_000, &stop)
            .unwrap_err()
            .starts_with("stopped"));
        assert!(t.elapsed() < Duration::from_secs(1));
    }
}
