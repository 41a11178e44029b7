//! VRRP on the kernel interface: one runner thread for every instance.
