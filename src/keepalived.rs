//! A keepalived.conf given to the daemon (`[rules] keepalived = "FILE"`): read with
//! [`rvs_control::keepalived`], every service and real server checked against the director as
//! the control socket would check it (with the file and line of its block), then applied to
//! the control plane all at once with the checks of each server and the sorry server and quorum
//! of each service. `rvs check-config` runs the same reading and checking without a NIC.

use rvs_control::keepalived::{self, Config as KaConfig, Diagnostic};
use rvs_control::proto::Director;
use rvs_control::rules;
use rvs_control::server::{Control, RpcError};
use rvs_dataplane::model::Model;
use std::path::{Path, PathBuf};

/// Why a keepalived.conf was not applied.
#[derive(Debug, thiserror::Error)]
pub enum KeepalivedError {
    /// Not readable, or not keepalived's grammar, or a bad value: the file and line inside.
    #[error("keepalived configuration: {0}")]
    Load(#[from] keepalived::LoadError),
    /// A block the director cannot serve (a VIP that is the DIP, a real server off the
    /// subnet, too many services...).
    #[error("keepalived configuration: {file}:{line}: {message}")]
    Refused {
        file: String,
        line: u32,
        message: String,
    },
    /// The control plane refused what the file asks for (nothing was applied).
    #[error("keepalived configuration {path}: {err}")]
    Apply { path: PathBuf, err: RpcError },
}

/// A keepalived.conf read and checked: its services as ipvsadm rules (applied all-or-nothing,
/// as `rvsadm -R` is) and the health settings that go with them.
#[derive(Debug)]
pub struct Loaded {
    pub path: PathBuf,
    pub conf: KaConfig,
    pub rules: String,
}

impl Loaded {
    /// What the file has that rvs does not apply, one line each (`FILE:LINE: 'x' not supported: ...`).
    pub fn unsupported(&self) -> &[Diagnostic] {
        &self.conf.unsupported
    }

    /// Real servers in all services.
    pub fn server_count(&self) -> usize {
        self.conf.services.iter().map(|s| s.servers.len()).sum()
    }
}

/// Read `path` and check every service and real server against `director` and the table
/// sizes, as the control socket would.
pub fn load(
    path: &Path,
    director: &Director,
    max_services: u32,
    max_servers: u32,
) -> Result<Loaded, KeepalivedError> {
    let conf = keepalived::load(path)?;
    let mut model = Model::new(max_services, max_servers);
    for vs in &conf.services {
        let refused = |message: String| KeepalivedError::Refused {
            file: vs.file.clone(),
            line: vs.line,
            message,
        };
        director
            .check_vip(&model, vs.spec.key.vip)
            .map_err(|e| refused(format!("virtual_server {}: {e}", vs.spec.key.vip)))?;
        model
            .add_service(vs.spec.clone())
            .map_err(|e| refused(format!("virtual_server {}: {e}", vs.spec.key.vip)))?;
        for rs in &vs.servers {
            let refused = |message: String| KeepalivedError::Refused {
                file: rs.file.clone(),
                line: rs.line,
                message,
            };
            director
                .check_server(&model, &rs.spec)
                .and_then(|()| model.add_server(&vs.spec.key, rs.spec))
                .map_err(|e| refused(format!("real_server {}: {e}", rs.spec.addr)))?;
        }
        if let Some(sorry) = &vs.health.sorry_server {
            director
                .check_server(&model, sorry)
                .map_err(|e| refused(format!("sorry_server {}: {e}", sorry.addr)))?;
        }
    }
    Ok(Loaded {
        path: path.to_path_buf(),
        rules: rules::emit(&model, false),
        conf,
    })
}

/// Apply `loaded` to `control`: its services and servers (all-or-nothing), then each server's
/// checks and each service's sorry server and quorum. Returns the number of services.
pub fn apply(control: &Control, loaded: &Loaded) -> Result<usize, KeepalivedError> {
    let err = |err: RpcError| KeepalivedError::Apply {
        path: loaded.path.clone(),
        err,
    };
    control.apply_rules(&loaded.rules).map_err(err)?;
    apply_health(control, loaded)
}

/// The health settings (checks, sorry server, quorum) of `loaded`'s services, whose rules are
/// already applied (at start by [`apply`], on a reload with the rules file's).
pub fn apply_health(control: &Control, loaded: &Loaded) -> Result<usize, KeepalivedError> {
    let err = |err: RpcError| KeepalivedError::Apply {
        path: loaded.path.clone(),
        err,
    };
    for vs in &loaded.conf.services {
        control
            .set_service_health(&vs.spec.key, vs.health.clone())
            .map_err(err)?;
        for rs in &vs.servers {
            control
                .set_server_health(&vs.spec.key, rs.spec.addr, rs.spec.port, rs.health.clone())
                .map_err(err)?;
        }
    }
    Ok(loaded.conf.services.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn director() -> Director {
        Director {
            dip: Ipv4Addr::new(198, 18, 0, 2),
            prefix_len: 24,
            mac: [2, 0, 0, 0, 0, 2],
        }
    }

    fn write(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
        f
    }

    const GOOD: &str = "\
# two real servers behind one VIP
virtual_server 198.18.0.100 80 {
    delay_loop 2
    lb_algo rr
    lb_kind DR
    protocol TCP
    sorry_server 198.18.0.13 80
    real_server 198.18.0.11 80 {
        weight 2
        TCP_CHECK {
            connect_timeout 1
        }
    }
    real_server 198.18.0.12 80 {
        weight 1
        inhibit_on_failure
    }
}
";

    #[test]
    fn a_good_file_becomes_rules_and_health() {
        let f = write(GOOD);
        let l = load(f.path(), &director(), 16, 64).unwrap();
        assert_eq!(l.conf.services.len(), 1);
        assert_eq!(l.server_count(), 2);
        assert!(
            l.rules.contains("-A -t 198.18.0.100:80 -s rr"),
            "{}",
            l.rules
        );
        assert!(l.rules.contains("-r 198.18.0.11:80 -g -w 2"), "{}", l.rules);
        let vs = &l.conf.services[0];
        assert_eq!(vs.servers[0].health.checks.len(), 1);
        assert!(vs.servers[1].health.inhibit_on_failure);
        assert_eq!(
            vs.health.sorry_server.map(|s| s.addr),
            Some(Ipv4Addr::new(198, 18, 0, 13))
        );
    }

    #[test]
    fn blocks_the_director_cannot_serve_are_refused_with_their_line() {
        let cases: &[(&str, u32, &str)] = &[
            // A VIP that is the DIP.
            (
                "virtual_server 198.18.0.2 80 {\n lb_kind DR\n protocol TCP\n}\n",
                1,
                "198.18.0.2",
            ),
            // A real server off the director's subnet.
            (
                "virtual_server 198.18.0.100 80 {\n lb_kind DR\n protocol TCP\n real_server 10.0.0.1 80 {\n  weight 1\n }\n}\n",
                4,
                "10.0.0.1",
            ),
            // A real server that is the DIP.
            (
                "virtual_server 198.18.0.100 80 {\n lb_kind DR\n protocol TCP\n real_server 198.18.0.2 80 {\n }\n}\n",
                4,
                "198.18.0.2",
            ),
            // A sorry server off the subnet.
            (
                "virtual_server 198.18.0.100 80 {\n lb_kind DR\n protocol TCP\n sorry_server 10.0.0.9 80\n}\n",
                1,
                "sorry_server 10.0.0.9",
            ),
        ];
        for (text, line, frag) in cases {
            let f = write(text);
            match load(f.path(), &director(), 16, 64) {
                Err(KeepalivedError::Refused {
                    line: l, message, ..
                }) => {
                    assert_eq!(l, *line, "{text}: {message}");
                    assert!(message.contains(frag), "{text}: {message}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
        // Too many services for the table.
        let two = "virtual_server 198.18.0.100 80 {\n lb_kind DR\n protocol TCP\n}\nvirtual_server 198.18.0.101 80 {\n lb_kind DR\n protocol TCP\n}\n";
        let f = write(two);
        assert!(matches!(
            load(f.path(), &director(), 1, 64),
            Err(KeepalivedError::Refused { line: 5, .. })
        ));
    }

    #[test]
    fn a_missing_or_broken_file_names_itself() {
        let e = load(Path::new("/nonexistent/k.conf"), &director(), 16, 64).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/k.conf"), "{e}");
        let f = write("virtual_server 198.18.0.100 80 {\n lb_algo nosuch\n}\n");
        let e = load(f.path(), &director(), 16, 64).unwrap_err();
        let s = e.to_string();
        assert!(s.contains(&format!("{}:2", f.path().display())), "{s}");
    }
}
