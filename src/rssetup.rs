//! `rvs rs-setup`: what an LVS-DR real server needs, printed or applied.
//!
//! A real server behind a direct-routing director must accept packets addressed to the VIP
//! without ever answering ARP for it (or the clients would bypass the director):
//!
//! - the VIP as a /32 on `lo`;
//! - `arp_ignore=1`: answer ARP only for addresses configured on the receiving interface;
//! - `arp_announce=2`: always use the best local address (never the VIP) as ARP source,
//!
//! for `all` and `lo`, as the LVS-DR documentation prescribes. The sysctls are set before the
//! address is added, so the VIP is never announced. `--remove` deletes the address and puts the
//! sysctls back to the kernel defaults (0), but only when no other address (another VIP) stays
//! on `lo` besides the loopback ones ([`reset_arp_after_remove`]); otherwise the other VIPs
//! still need them and they are kept.
//!
//! The README's "Preparing real servers" block is exactly what [`steps`] prints (a test checks).

use std::net::{IpAddr, Ipv4Addr};
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

/// Steps that prepare (or, with `remove`, undo) a real server for `vip`. Removing this way
/// always resets the sysctls; see [`remove_steps`] to keep them.
pub fn steps(vip: Ipv4Addr, remove: bool) -> Vec<Step> {
    if remove {
        remove_steps(vip, true)
    } else {
        build(vip, false, true)
    }
}

/// Steps that undo the set-up for `vip`: the address off `lo`, then, if `reset_arp`, the
/// sysctls back to 0.
pub fn remove_steps(vip: Ipv4Addr, reset_arp: bool) -> Vec<Step> {
    build(vip, true, reset_arp)
}

/// Whether removing `vip` should also reset the ARP sysctls, given the addresses on `lo` (as
/// [`parse_addresses`] reads them, before the removal): only when nothing but loopback
/// addresses (127.0.0.0/8, ::1) and `vip` itself is there. Any other address is another VIP
/// that still needs `arp_ignore`/`arp_announce`.
pub fn reset_arp_after_remove(lo: &[IpAddr], vip: Ipv4Addr) -> bool {
    other_addresses(lo, vip).is_empty()
}

/// The addresses of `lo` besides the loopback ones and `vip`.
pub fn other_addresses(lo: &[IpAddr], vip: Ipv4Addr) -> Vec<IpAddr> {
    lo.iter()
        .copied()
        .filter(|a| !a.is_loopback() && *a != IpAddr::V4(vip))
        .collect()
}

/// The addresses in `ip -o addr show dev lo` output (`inet A/len` and `inet6 A/len` words);
/// anything else on a line is ignored, unreadable addresses are skipped.
pub fn parse_addresses(text: &str) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        while let Some(w) = words.next() {
            if w == "inet" || w == "inet6" {
                if let Some(a) = words.next() {
                    let a = a.split('/').next().unwrap_or(a);
                    if let Ok(ip) = a.parse::<IpAddr>() {
                        out.push(ip);
                    }
                }
            }
        }
    }
    out
}

/// The addresses on `lo` now (`ip -o addr show dev lo`; no root needed).
pub fn lo_addresses() -> Result<Vec<IpAddr>, String> {
    let out = Command::new("ip")
        .args(["-o", "addr", "show", "dev", "lo"])
        .output()
        .map_err(|e| format!("ip -o addr show dev lo: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ip -o addr show dev lo: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(parse_addresses(&String::from_utf8_lossy(&out.stdout)))
}

fn build(vip: Ipv4Addr, remove: bool, sysctls: bool) -> Vec<Step> {
    let addr = format!("{vip}/32");
    let (ignore, announce) = if remove { ("0", "0") } else { ("1", "2") };
    let mut v = Vec::new();
    if remove {
        v.push(Step::new(&["ip", "addr", "del", &addr, "dev", "lo"], true));
    }
    let devs: &[&str] = if sysctls { &["all", "lo"] } else { &[] };
    for dev in devs {
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
        // Keeping the sysctls: only the address goes.
        let keep: Vec<String> = remove_steps(Ipv4Addr::new(198, 18, 0, 100), false)
            .iter()
            .map(Step::shell)
            .collect();
        assert_eq!(keep, ["ip addr del 198.18.0.100/32 dev lo"]);
        assert_eq!(
            remove_steps(Ipv4Addr::new(198, 18, 0, 100), true),
            steps(Ipv4Addr::new(198, 18, 0, 100), true)
        );
    }

    /// Issue 15: `--remove` reset the ARP sysctls even when other VIPs stayed on `lo`, which
    /// then answered ARP for them (and the clients bypassed the director).
    #[test]
    fn remove_resets_arp_only_when_no_other_vip_stays_on_lo() {
        let vip = Ipv4Addr::new(198, 18, 0, 100);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let cases: &[(&[&str], bool)] = &[
            (&[], true),
            (&["127.0.0.1", "::1"], true),
            (&["127.0.0.1", "::1", "198.18.0.100"], true),
            (&["127.0.0.1", "127.0.1.1", "198.18.0.100"], true),
            (&["127.0.0.1", "198.18.0.100", "198.18.0.101"], false),
            (&["127.0.0.1", "198.18.0.101"], false),
            (&["::1", "2001:db8::100"], false),
            (&["198.18.0.100", "198.18.0.100"], true),
        ];
        for (lo, want) in cases {
            let lo: Vec<IpAddr> = lo.iter().map(|s| ip(s)).collect();
            assert_eq!(reset_arp_after_remove(&lo, vip), *want, "{lo:?}");
        }
        assert_eq!(
            other_addresses(
                &[ip("127.0.0.1"), ip("198.18.0.101"), ip("198.18.0.100")],
                vip
            ),
            [ip("198.18.0.101")]
        );
    }

    #[test]
    fn lo_addresses_are_read_from_ip_output() {
        // `ip -o addr show dev lo` on a real server with two VIPs.
        let text = "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever\n\
                    1: lo    inet 198.18.0.100/32 scope global lo\\       valid_lft forever preferred_lft forever\n\
                    1: lo    inet 198.18.0.101/32 scope global lo\\       valid_lft forever preferred_lft forever\n\
                    1: lo    inet6 ::1/128 scope host noprefixroute \\       valid_lft forever preferred_lft forever\n";
        let got = parse_addresses(text);
        let want: Vec<IpAddr> = ["127.0.0.1", "198.18.0.100", "198.18.0.101", "::1"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(got, want);
        assert!(!reset_arp_after_remove(
            &got,
            Ipv4Addr::new(198, 18, 0, 100)
        ));
        assert!(parse_addresses("garbage inet\ninet nope/8\n").is_empty());
    }

    /// Issue 15: the README said `rs-setup` prints "exactly these commands" but showed them in
    /// another order (the address before the sysctls). Its block is now what `steps` prints.
    #[test]
    fn the_readme_shows_exactly_what_rs_setup_prints() {
        let readme = include_str!("../README.md");
        let start = readme
            .find("On every real server, exactly as for LVS direct routing:")
            .expect("the README's real server section");
        let block = &readme[start..];
        let open = block.find("```\n").expect("a code block") + 4;
        let close = open + block[open..].find("```").expect("its end");
        let shown: Vec<&str> = block[open..close]
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        let printed: Vec<String> = steps(Ipv4Addr::new(198, 18, 0, 100), false)
            .iter()
            .map(Step::shell)
            .collect();
        assert_eq!(shown, printed);
    }
}
