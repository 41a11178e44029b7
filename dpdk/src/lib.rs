//! Raw DPDK bindings (placeholder).
