//! High availability: the VRRP runner ([`vrrp`]) and the connection-sync thread ([`sync`]),
//! both plain threads off the worker lcores, speaking through the kernel interface.

pub mod sync;
pub mod vrrp;
