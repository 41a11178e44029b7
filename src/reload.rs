//! SIGHUP: read the configuration file, the rules file and keepalived.conf again and apply
//! what can change while forwarding, as one new snapshot; report what cannot.
//!
//! Applied live:
//! - the services and real servers: the rules file (`[rules] file` or `--rules`) and
//!   keepalived.conf's virtual servers, replacing every service at once
//!   ([`Control::replace_rules`]): servers that stay keep their slot and id, so no flow is
//!   lost; keepalived's checks, sorry servers and quorums are set again;
//! - `[timeouts]` (as `ipvsadm --set`).
//!
//! Reported and left as they run (they need a restart): `[eal]`, `[port]`, `[network]`,
//! `[workers]`, `[tables]`, `[kernel]`, `[control]`, `[dataplane]`, `[state]`, `[metrics]`, `[announce]`,
//! `[[neighbour]]`, and VRRP / connection sync (from the rvs config or keepalived.conf).
//!
//! A file that cannot be read or parsed, or rules the director refuses, change nothing: the
//! running configuration stays and the error is logged.

use crate::config::Config;
use rvs_control::ha::HaConfig;
use rvs_control::proto::Director;
use rvs_control::server::Control;
use std::path::{Path, PathBuf};

/// What a reload did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Rules applied (rules file and keepalived.conf together).
    pub rules: usize,
    /// Sections whose change was applied.
    pub applied: Vec<&'static str>,
    /// Sections that changed but need a restart (left as they run).
    pub needs_restart: Vec<&'static str>,
}

/// The sections of `new` that differ from `old` and only take effect at start.
pub fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut v = Vec::new();
    let mut check = |name, changed: bool| {
        if changed {
            v.push(name);
        }
    };
    check("eal", old.eal != new.eal);
    check("port", old.port != new.port);
    check("network", old.network != new.network);
    check("workers", old.workers != new.workers);
    check("tables", old.tables != new.tables);
    check("kernel", old.kernel != new.kernel);
    check("control", old.control != new.control);
    check("dataplane", old.dataplane != new.dataplane);
    check("state", old.state != new.state);
    check("metrics", old.metrics != new.metrics);
    check("announce", old.announce != new.announce);
    check("neighbour", old.neighbours != new.neighbours);
    check("vrrp", old.vrrp != new.vrrp);
    check("sync", old.sync != new.sync);
    check(
        "rules.keepalived (path)",
        old.rules.keepalived != new.rules.keepalived,
    );
    v
}

/// Read a rules file; a missing one is an empty rule set (`Ok(None)`, the caller warns).
pub fn read_rules(path: &Path) -> Result<Option<String>, String> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("rules file {}: {e}", path.display())),
    }
}

/// The state a reload compares against and updates.
pub struct Reloader {
    pub config_path: PathBuf,
    /// `--rules` given on the command line (wins over `[rules] file`).
    pub rules_override: Option<PathBuf>,
    pub running: Config,
    /// VRRP and sync as started (rvs config and keepalived.conf merged).
    pub ha: HaConfig,
    pub director: Director,
}

impl Reloader {
    /// Reload now. `Err`: nothing changed (the message says why).
    pub fn reload(&mut self, control: &Control) -> Result<Report, String> {
        let new = Config::load(&self.config_path).map_err(|e| e.to_string())?;
        let mut report = Report {
            needs_restart: restart_only_changes(&self.running, &new),
            ..Report::default()
        };
        // keepalived.conf: the file the daemon started with (its path is restart-only).
        let keepalived = match &self.running.rules.keepalived {
            Some(path) => Some(
                crate::keepalived::load(
                    path,
                    &self.director,
                    self.running.tables.max_services,
                    self.running.tables.max_servers,
                )
                .map_err(|e| e.to_string())?,
            ),
            None => None,
        };
        let own_ha = new.ha().map_err(|e| e.to_string())?;
        let ha = crate::ha::merge(own_ha, keepalived.as_ref().map(|k| &k.conf.ha))?;
        if ha != self.ha && !report.needs_restart.contains(&"vrrp") {
            report.needs_restart.push("vrrp/sync (keepalived.conf)");
        }
        let mut text = String::new();
        if let Some(path) = self
            .rules_override
            .clone()
            .or_else(|| new.rules.file.clone())
        {
            match read_rules(&path)? {
                Some(t) => text.push_str(&t),
                None => tracing::warn!(
                    path = %path.display(),
                    "rules file missing: reloading an empty rule set"
                ),
            }
        }
        if let Some(k) = &keepalived {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&k.rules);
        }
        report.rules = control
            .replace_rules(&text)
            .map_err(|e| format!("rules refused, nothing changed: {e}"))?;
        report.applied.push("rules");
        if let Some(k) = &keepalived {
            crate::keepalived::apply_health(control, k).map_err(|e| e.to_string())?;
            report.applied.push("keepalived.conf virtual servers");
        }
        if new.timeouts != self.running.timeouts {
            let t = &new.timeouts;
            let req = format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"timeouts.set","params":{{"tcp":{},"tcp_fin":{},"udp":{}}}}}"#,
                t.tcp, t.tcp_fin, t.udp
            );
            let reply = control.handle_line(&req);
            if reply.contains("\"error\"") {
                return Err(format!("timeouts not applied: {reply}"));
            }
            report.applied.push("timeouts");
            self.running.timeouts = new.timeouts;
        }
        self.running.rules.file = new.rules.file.clone();
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "[network]\ndip = \"198.18.0.2\"\n";

    #[test]
    fn restart_only_sections_are_named() {
        let old = Config::from_str(BASE).unwrap();
        let same = Config::from_str(&format!("{BASE}[timeouts]\ntcp = 60\n")).unwrap();
        assert!(
            restart_only_changes(&old, &same).is_empty(),
            "timeouts are live"
        );
        let cases = [
            (
                "[eal]\nargs = [\"-l\", \"1\"]\n[workers]\nlcores = [1]\n",
                vec!["eal", "workers"],
            ),
            ("[port]\nrx_descriptors = 512\n", vec!["port"]),
            ("[tables]\nflows_per_worker = 1024\n", vec!["tables"]),
            ("[dataplane]\nsloppy_tcp = true\n", vec!["dataplane"]),
            ("[state]\nflows = \"/tmp/x\"\n", vec!["state"]),
            ("[metrics]\nlisten = \"127.0.0.1:9477\"\n", vec!["metrics"]),
            (
                "[[neighbour]]\naddr = \"198.18.0.11\"\nmac = \"02:00:00:00:00:11\"\n",
                vec!["neighbour"],
            ),
        ];
        for (extra, want) in cases {
            let new = Config::from_str(&format!("{BASE}{extra}")).unwrap();
            assert_eq!(restart_only_changes(&old, &new), want, "{extra}");
        }
        let other_dip = Config::from_str("[network]\ndip = \"198.18.0.3\"\n").unwrap();
        assert_eq!(restart_only_changes(&old, &other_dip), vec!["network"]);
    }

    #[test]
    fn missing_rules_are_empty_unreadable_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_rules(&dir.path().join("none")), Ok(None));
        let f = dir.path().join("rules");
        std::fs::write(&f, "-A -t 198.18.0.100:80 -s rr\n").unwrap();
        assert_eq!(
            read_rules(&f),
            Ok(Some("-A -t 198.18.0.100:80 -s rr\n".into()))
        );
        let e = read_rules(dir.path()).unwrap_err();
        assert!(e.starts_with("rules file "), "{e}");
    }
}
