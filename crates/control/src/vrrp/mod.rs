//! VRRP without I/O: the advertisement's bytes ([`packet`], RFC 5798 v3 and RFC 3768 v2) and
//! one instance's state machine ([`machine`], RFC 5798 §6.4, on a clock the caller gives). The
//! daemon's runner (`src/ha/vrrp.rs`) owns the socket and the clock and acts on what the machine
//! says.

pub mod machine;
pub mod packet;
