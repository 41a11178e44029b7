//! systemd's service notification protocol (`sd_notify`): `READY=1` once the port forwards
//! and the rules are applied, `RELOADING=1` / `READY=1` around a SIGHUP reload, `STOPPING=1`
//! on a graceful stop, and `WATCHDOG=1` pings at half of `WATCHDOG_USEC` (the unit's
//! `WatchdogSec=`). Each is one datagram to the unix socket named by `NOTIFY_SOCKET` (a path,
//! or an abstract name written with a leading `@`); without the variable (not started by
//! systemd with `Type=notify`) nothing is sent.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Where notifications go, from `NOTIFY_SOCKET`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Path(std::path::PathBuf),
    Abstract(Vec<u8>),
}

/// The target named by a `NOTIFY_SOCKET` value (`None`: empty or not a unix socket name).
pub fn target(value: &str) -> Option<Target> {
    if let Some(name) = value.strip_prefix('@') {
        return (!name.is_empty()).then(|| Target::Abstract(name.as_bytes().to_vec()));
    }
    value
        .starts_with('/')
        .then(|| Target::Path(std::path::PathBuf::from(value)))
}

/// Send `state` (e.g. `"READY=1"`) to `t`.
pub fn send_to(t: &Target, state: &str) -> std::io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    match t {
        Target::Path(p) => sock.send_to(state.as_bytes(), p).map(|_| ()),
        Target::Abstract(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(state.as_bytes(), &addr).map(|_| ())
        }
    }
}

/// Send `state` to systemd when it asked for notifications; failures are logged at debug
/// level (a notification is never worth stopping for).
pub fn notify(state: &str) {
    let Some(t) = std::env::var("NOTIFY_SOCKET")
        .ok()
        .as_deref()
        .and_then(target)
    else {
        return;
    };
    if let Err(e) = send_to(&t, state) {
        tracing::debug!("sd_notify {state}: {e}");
    }
}

/// How often to ping the watchdog: half of `WATCHDOG_USEC` (when it is meant for this
/// process: `WATCHDOG_PID` unset or ours).
pub fn watchdog_interval(usec: Option<&str>, pid: Option<&str>) -> Option<Duration> {
    if let Some(p) = pid {
        if p.trim().parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    let us: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    Some(Duration::from_micros(us / 2))
}

/// [`watchdog_interval`] from the environment.
pub fn watchdog_from_env() -> Option<Duration> {
    watchdog_interval(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            target("/run/systemd/notify"),
            Some(Target::Path("/run/systemd/notify".into()))
        );
        assert_eq!(target("@sd"), Some(Target::Abstract(b"sd".to_vec())));
        for bad in ["", "@", "relative/path", "udp:1.2.3.4"] {
            assert_eq!(target(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn watchdog_intervals() {
        let me = std::process::id().to_string();
        assert_eq!(
            watchdog_interval(Some("10000000"), None),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            watchdog_interval(Some("10000000"), Some(&me)),
            Some(Duration::from_secs(5))
        );
        assert_eq!(watchdog_interval(Some("10000000"), Some("1")), None);
        for bad in [None, Some(""), Some("0"), Some("x"), Some("-5")] {
            assert_eq!(watchdog_interval(bad, None), None, "{bad:?}");
        }
    }

    #[test]
    fn notifications_reach_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        send_to(&Target::Path(path.clone()), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        // Abstract names too.
        let name = format!("rvs-test-{}", std::process::id());
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let rx = UnixDatagram::bind_addr(&addr).unwrap();
        send_to(&target(&format!("@{name}")).unwrap(), "WATCHDOG=1").unwrap();
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"WATCHDOG=1");
        // Nobody listening: an error, not a panic.
        assert!(send_to(&Target::Path(dir.path().join("none")), "READY=1").is_err());
    }
}
