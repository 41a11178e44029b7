//! `rvs`: the director daemon and its helpers.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "rvs",
    version,
    about = "Rust Virtual Server: an LVS-DR layer-4 director on DPDK"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the director in the foreground until SIGINT/SIGTERM.
    Run {
        /// Configuration file (TOML); see configs/lab.toml and configs/baremetal.toml.
        #[arg(short, long)]
        config: PathBuf,
        /// Control socket path (overrides [control] socket).
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Rules file in `ipvsadm -S` format applied at start (overrides [rules] file).
        #[arg(long)]
        rules: Option<PathBuf>,
        /// Log filter (tracing env-filter syntax), default "info"; RUST_LOG also works.
        #[arg(long)]
        log: Option<String>,
    },
    /// Parse and validate a configuration file, then exit.
    CheckConfig {
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Print (or apply) what an LVS-DR real server needs: the VIP on lo, arp_ignore/arp_announce.
    RsSetup {
        /// The virtual IP the real server must accept.
        #[arg(long)]
        vip: std::net::Ipv4Addr,
        /// Apply the changes on this host (needs root).
        #[arg(long, conflicts_with = "print")]
        apply: bool,
        /// Print the commands only (the default).
        #[arg(long)]
        print: bool,
        /// Undo: remove the VIP from lo and restore the kernel's ARP defaults (kept while other
        /// VIPs stay on lo).
        #[arg(long)]
        remove: bool,
    },
    /// Print the version and the commit it was built from.
    Version,
}

fn init_logging(filter: Option<&str>) {
    let filter = filter
        .map(str::to_string)
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info".to_string());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Version => {
            println!(
                "rvs {} ({})",
                env!("CARGO_PKG_VERSION"),
                env!("RVS_GIT_COMMIT")
            );
            ExitCode::SUCCESS
        }
        Cmd::RsSetup {
            vip,
            apply,
            print: _,
            remove,
        } => {
            let steps = if remove {
                // Other VIPs on lo still need the ARP sysctls: keep them then.
                let reset = match rvs::rssetup::lo_addresses() {
                    Ok(lo) => {
                        let others = rvs::rssetup::other_addresses(&lo, vip);
                        if !others.is_empty() {
                            let others: Vec<String> =
                                others.iter().map(ToString::to_string).collect();
                            eprintln!(
                                "rvs rs-setup: other addresses stay on lo ({}): the ARP sysctls \
                                 are kept",
                                others.join(", ")
                            );
                        }
                        others.is_empty()
                    }
                    Err(e) => {
                        eprintln!(
                            "rvs rs-setup: cannot read the addresses of lo ({e}): the ARP \
                             sysctls are kept"
                        );
                        false
                    }
                };
                rvs::rssetup::remove_steps(vip, reset)
            } else {
                rvs::rssetup::steps(vip, false)
            };
            if !apply {
                for s in &steps {
                    println!("{}", s.shell());
                }
                return ExitCode::SUCCESS;
            }
            match rvs::rssetup::apply(&steps) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("rvs rs-setup: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::CheckConfig { config } => match rvs::config::Config::load(&config) {
            Ok(cfg) => match check_rules(&cfg).and_then(|()| check_keepalived(&cfg)) {
                Ok(()) => {
                    println!("{}: ok", config.display());
                    ExitCode::SUCCESS
                }
                Err(()) => ExitCode::from(2),
            },
            Err(e) => {
                // The error names the file (and the line where it can).
                eprintln!("rvs: {e}");
                ExitCode::from(2)
            }
        },
        Cmd::Run {
            config,
            socket,
            rules,
            log,
        } => {
            init_logging(log.as_deref());
            let cfg = match rvs::config::Config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("rvs: {e}");
                    return ExitCode::from(2);
                }
            };
            let ov = rvs::engine::Overrides {
                socket,
                rules,
                config: Some(config.clone()),
            };
            match rvs::engine::run(cfg, ov) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e}");
                    eprintln!("rvs: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// `check-config` of a configuration's rules file, as `run` applies it: a missing file is an
/// empty rule set (a warning); otherwise every rule must parse and pass the director's checks
/// (the VIP is not the DIP, real servers on the subnet...), with its line on error.
fn check_rules(cfg: &rvs::config::Config) -> Result<(), ()> {
    let Some(path) = &cfg.rules.file else {
        return Ok(());
    };
    let text = match rvs::reload::read_rules(path) {
        Ok(Some(t)) => t,
        Ok(None) => {
            eprintln!(
                "rvs: warning: rules file {} does not exist: rvs starts with no rules from it",
                path.display()
            );
            return Ok(());
        }
        Err(e) => {
            eprintln!("rvs: {e}");
            return Err(());
        }
    };
    let director = rvs_control::proto::Director {
        dip: cfg.network.dip,
        prefix_len: cfg.network.prefix_len,
        mac: [0; 6],
    };
    let parsed = match rvs_control::rules::parse(&text) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("rvs: rules file {}: {e}", path.display());
            return Err(());
        }
    };
    let mut model =
        rvs_dataplane::model::Model::new(cfg.tables.max_services, cfg.tables.max_servers);
    match rvs_control::rules::apply_checked(&mut model, &parsed, |m, cmd| {
        director.check_command(m, cmd)
    }) {
        Ok(n) => {
            println!("{}: {n} rules", path.display());
            Ok(())
        }
        Err(e) => {
            eprintln!("rvs: rules file {}: {e}", path.display());
            Err(())
        }
    }
}

/// `check-config` of a configuration's keepalived.conf, as `run` reads it (without the port's
/// MAC, which only the NIC knows): errors with file and line on stderr; what is not supported
/// listed on stdout.
fn check_keepalived(cfg: &rvs::config::Config) -> Result<(), ()> {
    let Some(path) = &cfg.rules.keepalived else {
        return Ok(());
    };
    let director = rvs_control::proto::Director {
        dip: cfg.network.dip,
        prefix_len: cfg.network.prefix_len,
        mac: [0; 6],
    };
    match rvs::keepalived::load(
        path,
        &director,
        cfg.tables.max_services,
        cfg.tables.max_servers,
    ) {
        Ok(loaded) => {
            for d in loaded.unsupported() {
                println!("{d}");
            }
            println!(
                "{}: {} services, {} real servers, {} directives not supported",
                path.display(),
                loaded.conf.services.len(),
                loaded.server_count(),
                loaded.unsupported().len()
            );
            Ok(())
        }
        Err(e) => {
            eprintln!("rvs: {e}");
            Err(())
        }
    }
}
