//! Connection sync between directors (the role of IPVS's sync daemon).
