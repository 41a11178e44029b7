//! `rvs check-config` as an operator runs it: what it prints and its exit status for a good
//! configuration, a missing rules file, bad rules, a malformed PCI address and a bad value.
//! (No DPDK: check-config never touches the NIC.)

use std::path::Path;
use std::process::Command;

/// Run `rvs check-config -c FILE`: (exit code, stdout, stderr).
fn check(file: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rvs"))
        .args(["check-config", "-c"])
        .arg(file)
        .output()
        .expect("run rvs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const NET: &str = "[network]\ndip = \"198.18.0.2\"\nprefix_len = 24\n";

#[test]
fn check_config_validates_what_run_would() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("rvs.toml");
    let rules = dir.path().join("rules");
    let with_rules = format!("{NET}[rules]\nfile = \"{}\"\n", rules.display());

    // A missing rules file: an empty rule set, with a warning (run starts the same way).
    std::fs::write(&conf, &with_rules).unwrap();
    let (code, out, err) = check(&conf);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("warning") && err.contains("does not exist"),
        "{err}"
    );
    assert!(out.contains(": ok"), "{out}");

    // Good rules: counted.
    std::fs::write(
        &rules,
        "-A -t 198.18.0.100:80 -s rr\n-a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 1\n",
    )
    .unwrap();
    let (code, out, _) = check(&conf);
    assert_eq!(code, 0);
    assert!(out.contains("2 rules"), "{out}");

    // Rules the director refuses (a real server off the DIP's subnet), or that do not parse.
    for bad in [
        "-A -t 198.18.0.100:80 -s rr\n-a -t 198.18.0.100:80 -r 203.0.113.9:80 -g\n",
        "-A -t 198.18.0.100:80 -s nosuch\n",
        "this is not a rule\n",
    ] {
        std::fs::write(&rules, bad).unwrap();
        let (code, out, err) = check(&conf);
        assert_eq!(code, 2, "{bad:?}: {out}{err}");
        assert!(err.contains("rules file"), "{bad:?}: {err}");
        assert!(!out.contains(": ok"), "{bad:?}: {out}");
    }

    // A malformed PCI address in the EAL arguments (EAL would only fail at start).
    std::fs::write(
        &conf,
        format!("[eal]\nargs = [\"-l\", \"0\", \"-a\", \"0000:03:00\"]\n{NET}"),
    )
    .unwrap();
    let (code, _, err) = check(&conf);
    assert_eq!(code, 2);
    assert!(
        err.contains("eal.args") && err.contains("not a PCI address"),
        "{err}"
    );

    // A value error: the file and line, the file named once.
    std::fs::write(&conf, format!("{NET}\n[workers]\nlcores = [0, 0]\n")).unwrap();
    let (code, _, err) = check(&conf);
    assert_eq!(code, 2);
    let name = conf.display().to_string();
    assert_eq!(err.matches(&name).count(), 1, "{err}");
    assert!(err.contains(&format!("{name}:6: workers.lcores")), "{err}");

    // A syntax error: the file named once too.
    std::fs::write(&conf, "[network\n").unwrap();
    let (code, _, err) = check(&conf);
    assert_eq!(code, 2);
    assert_eq!(err.matches(&name).count(), 1, "{err}");
}

#[test]
fn the_shipped_configurations_pass() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for f in ["configs/lab.toml", "configs/rvs.toml"] {
        let (code, out, err) = check(&root.join(f));
        assert_eq!(code, 0, "{f}: {out}{err}");
    }
}
