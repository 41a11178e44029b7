//! rvs — Rust Virtual Server: an LVS-style layer-4 director on DPDK.
//!
//! Module map (see `DESIGN.md` in the shared notes):
//! - [`dpdk`]: the one safe wrapper over `dpdk-sys`; the only module with `unsafe`.
//! - [`wire`]: typed views over packet bytes (Ethernet, ARP, IPv4, TCP/UDP).
//! - [`flow`], [`sched`] (with [`maglev`]), [`neigh`], [`snapshot`], [`stats`], [`pipeline`]: the
//!   dataplane logic, pure Rust over byte slices, testable without DPDK.
//! - [`model`], [`api`], [`control`], [`rules`], [`adm`], [`config`]: management.
//! - [`engine`]: workers on lcores gluing DPDK bursts to the pipeline.

pub mod adm;
pub mod api;
pub mod config;
pub mod control;
pub mod dpdk;
pub mod engine;
pub mod flow;
pub mod maglev;
pub mod model;
pub mod neigh;
pub mod persist;
pub mod pipeline;
pub mod rssetup;
pub mod rules;
pub mod sched;
pub mod snapshot;
pub mod stats;
pub mod wire;
