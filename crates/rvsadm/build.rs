// The commit rvsadm was built from: the daemon's build script, shared.
include!("../../build.rs");
