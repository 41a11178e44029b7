//! `rvs rs-setup`: what an LVS-DR real server needs, printed or applied.
//!
//! A real server behind a direct-routing director must accept packets addressed to the VIP
//! without ever answering ARP for it (or the clients would bypass the director):
//!
//! - the VIP as a /32 on `lo`;
//! - `arp_ignore=1`: answer ARP only for addresses configured on the receiving interface;
//! - `arp_announce=2`: always use the best local address (never the VIP) as ARP source,
//!
//! for `all` and `lo`, as the LVS-DR documentation prescribes. `--remove` undoes the address and
//! puts the sysctls back to the kernel defaults (0).

use std::net::Ipv4Addr;
use std::process::Command;

/// One step of the set-up, as a shell command and its argument vector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub argv: Vec<String>,
    /// A step that may fail harmlessly (e.g. removing an address that is not there).
    pub tolerate_failure: bool,
}

impl Step {
    fn new(argv: &[&str], tolerate_failure: bool) -> Step {
        Step {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            tolerate_failure,
        }
    }
    pub fn shell(&self) -> String {
        self.argv.join(" ")
    }
}

/// Steps that prepare (or, with `remove`, undo) a real server for `vip`.
pub fn steps(vip: Ipv4Addr, remove: bool) -> Vec<Step> {
    let addr = format!("{vip}/32");
    let (ignore, announce) = if remove { ("0", "0") } else { ("1", "2") };
    let mut v = Vec::new();
    if remove {
        v.push(Step::new(&["ip", "addr", "del", &addr, "dev", "lo"], true));
    }
    for dev in ["all", "lo"] {
        v.push(Step::new(
            &[
                "sysctl",
                "-q",
                "-w",
                &format!("net.ipv4.conf.{dev}.arp_ignore={ignore}"),
            ],
            false,
        ));
        v.push(Step::new(
            &[
                "sysctl",
                "-q",
                "-w",
                &format!("net.ipv4.conf.{dev}.arp_announce={announce}"),
            ],
            false,
        ));
    }
    if !remove {
        // `replace` is idempotent: running the set-up twice is not an error.
        v.push(Step::new(
            &["ip", "addr", "replace", &addr, "dev", "lo"],
            false,
        ));
        v.push(Step::new(&["ip", "link", "set", "lo", "up"], false));
    }
    v
}

/// Effective user id from /proc/self/status (no libc call needed).
fn effective_uid() -> Option<u32> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Why applying failed.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("rs-setup --apply needs root (CAP_NET_ADMIN and write access to /proc/sys); run it with sudo, or use --print to see the commands")]
    NotRoot,
    #[error("'{cmd}' failed: {msg}")]
    Step { cmd: String, msg: String },
}

/// Run the steps. Stops at the first step that fails and is not tolerated.
pub fn apply(steps: &[Step]) -> Result<(), SetupError> {
    if effective_uid() != Some(0) {
        return Err(SetupError::NotRoot);
    }
    for s in steps {
        let out = Command::new(&s.argv[0])
            .args(&s.argv[1..])
            .output()
            .map_err(|e| SetupError::Step {
                cmd: s.shell(),
                msg: e.to_string(),
            })?;
        if !out.status.success() && !s.tolerate_failure {
            return Err(SetupError::Step {
                cmd: s.shell(),
                msg: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_puts_vip_on_lo_and_sets_arp_sysctls() {
        let s: Vec<String> = steps(Ipv4Addr::new(198, 18, 0, 100), false)
            .iter()
            .map(Step::shell)
            .collect();
        assert!(s.contains(&"ip addr replace 198.18.0.100/32 dev lo".to_string()));
        for dev in ["all", "lo"] {
            assert!(s.contains(&format!("sysctl -q -w net.ipv4.conf.{dev}.arp_ignore=1")));
            assert!(s.contains(&format!("sysctl -q -w net.ipv4.conf.{dev}.arp_announce=2")));
        }
        // The sysctls come before the address, so the VIP is never announced.
        let first_addr = s.iter().position(|c| c.starts_with("ip addr")).unwrap();
        let last_sysctl = s.iter().rposition(|c| c.starts_with("sysctl")).unwrap();
        assert!(last_sysctl < first_addr);
    }

    #[test]
    fn remove_deletes_vip_first_and_restores_defaults() {
        let st = steps(Ipv4Addr::new(198, 18, 0, 100), true);
        assert_eq!(st[0].shell(), "ip addr del 198.18.0.100/32 dev lo");
        assert!(st[0].tolerate_failure);
        assert!(st
            .iter()
            .any(|c| c.shell() == "sysctl -q -w net.ipv4.conf.all.arp_ignore=0"));
        assert!(!st.iter().any(|c| c.shell().contains("replace")));
    }
}
