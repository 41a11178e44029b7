//! rvs — Rust Virtual Server: the director daemon. An LVS-style layer-4 director on DPDK.
//!
//! The house (see `docs/architecture.md`): `dpdk-sys` (bindings) ← this crate's [`dpdk`] (the
//! safe wrapper, the only module here with `unsafe`); the pure dataplane is the
//! [`rvs_dataplane`] crate, the control plane (protocol, rules grammar, JSON-RPC server) the
//! [`rvs_control`] crate, and `rvsadm` a crate of its own. This crate glues them together:
//! - [`dpdk`]: EAL, mempools, mbufs and bursts, ports and queues, lcore launch.
//! - [`engine`]: workers on lcores feeding DPDK bursts to the pipeline; the control thread.
//! - [`adapter`]: the one answer to the control crate's `Dataplane` trait.
//! - [`checker`]: the health checker (probes, their scheduler) feeding the control plane.
//! - [`config`]: the TOML configuration; [`rssetup`]: the real-server preparation helper.
//! - [`kernel`]: the kernel interface on the data port and the thread feeding it.
//! - [`announce`]: the kernel routes a BGP daemon advertises for the VIPs this director serves.
//! - [`metrics`]: the Prometheus endpoint (`[metrics] listen`).

pub mod adapter;
pub mod announce;
pub mod checker;
pub mod config;
pub mod dpdk;
pub mod engine;
pub mod flowstate;
pub mod ha;
pub mod keepalived;
pub mod kernel;
pub mod metrics;
pub mod reload;
pub mod rssetup;
pub mod sdnotify;

/// What the control socket's `version` reports for this build.
pub const BUILD: rvs_control::proto::Build = rvs_control::proto::Build {
    name: env!("CARGO_PKG_NAME"),
    version: env!("CARGO_PKG_VERSION"),
    commit: env!("RVS_GIT_COMMIT"),
};
