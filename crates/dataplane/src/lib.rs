//! rvs's dataplane: everything a worker does with a frame, in pure Rust over byte slices.
//!
//! No DPDK, no sockets, no serialisation: this crate builds and tests on any Linux box. The
//! daemon (the `rvs` crate) hands it frames from DPDK bursts; the control crate describes what to
//! forward by (the [`model`]) and reads back the [`report`]s. With the optional `serde` feature
//! the model's and the reports' plain types also derive serde, so the control protocol uses the
//! same definitions.
//!
//! - [`wire`]: typed views over packet bytes (Ethernet, ARP, IPv4, TCP/UDP).
//! - [`model`]: virtual services and real servers as the operator configured them.
//! - [`flow`], [`neigh`], [`persist`]: the per-core flow table, the neighbour (ARP) table, the
//!   persistence templates.
//! - [`sched`] (with [`maglev`]): the 13 IPVS schedulers, plans built once per snapshot.
//! - [`snapshot`]: the immutable picture the workers forward by, and its publication.
//! - [`stats`]: per-worker counters; [`report`]: what is read back from them.
//! - [`pipeline`]: one worker's classify / ARP / forward loop.
//! - [`sync`]: connection sync between directors (the rings between workers and the HA thread).
//! - [`mem`]: prefetch and huge-page advice, the crate's only `unsafe`.
//! - `testing` (feature `testing`): a small fixed configuration, the malformed-frame corpus and
//!   the pipeline fuzz target's checks, for tests outside this crate.
#![deny(unsafe_code)]

pub mod flow;
pub mod maglev;
pub mod mem;
pub mod model;
pub mod neigh;
pub mod persist;
pub mod pipeline;
pub mod report;
pub mod rss;
pub mod sched;
pub mod snapshot;
pub mod stats;
pub mod sync;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod wire;
