//! rvs's control plane, without DPDK: what the daemon's control socket speaks and how it changes
//! the dataplane.
//!
//! - [`proto`]: the protocol shared by server and client: error codes, defaults, reply types,
//!   and the [`proto::Dataplane`] trait the server publishes to.
//! - [`check`]: health checks as configured (keepalived's checkers, names and defaults).
//! - [`health`]: the health state machine of one probe (keepalived's retry, rise, alpha).
//! - [`httpcheck`]: the bytes of an HTTP check: its request, the response reader, the digest.
//! - [`director`]: what the director's link allows (real servers on its subnet, not itself).
//! - [`keepalived`]: keepalived.conf's `virtual_server` blocks read as services, real servers
//!   and checks (everything else listed as not supported).
//! - [`ha`]: VRRP instances, tracked scripts and connection sync as configured.
//! - [`vrrp`]: VRRP advertisements (v2, v3) and the state machine of an instance.
//! - [`grammar`]: ipvsadm's command-line grammar (`rvsadm`'s, and each line of a rules file).
//! - [`rules`]: `ipvsadm -S` rules: saving the model as text, restoring it all-or-nothing.
//! - [`liveness`]: what health checks make of the model (server states, quorum, sorry server).
//! - [`server`]: the JSON-RPC 2.0 server on a Unix socket, owning the [`Model`].
//!
//! The model itself (services, real servers, their validation) is the dataplane crate's
//! [`rvs_dataplane::model`]: the snapshot the workers forward by is a picture of it.
#![forbid(unsafe_code)]

pub mod check;
pub mod director;
pub mod grammar;
pub mod ha;
pub mod health;
pub mod httpcheck;
pub mod keepalived;
pub mod liveness;
pub mod proto;
pub mod rules;
pub mod server;
mod strict;
pub mod sync;
pub mod vrrp;

#[cfg(test)]
mod bad_requests;

pub use rvs_dataplane::model::Model;
