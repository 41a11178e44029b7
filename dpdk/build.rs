//! Build script for `dpdk-sys`: finds the system DPDK with pkg-config, generates bindings with
//! bindgen (tight allowlists), and compiles the C shim with the same compiler flags.
use std::env;
use std::path::PathBuf;
use std::process::Command;

const MIN_VERSION: &str = "22.11";

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    println!("cargo:warning={msg}");
    std::process::exit(1);
}

/// The compile flags pkg-config reports, verbatim (keeps `-include rte_config.h` and the
/// `-march` DPDK was built for; never adds `-march=native`).
fn cflags() -> Vec<String> {
    let pkg_config = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".to_string());
    let out = Command::new(&pkg_config)
        .args(["--cflags", "libdpdk"])
        .output()
        .unwrap_or_else(|e| fail(&format!("could not run {pkg_config}: {e}")));
    if !out.status.success() {
        fail("pkg-config --cflags libdpdk failed");
    }
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

fn main() {
    println!("cargo:rerun-if-changed=shim/shim.c");
    println!("cargo:rerun-if-changed=shim/shim.h");
    for var in [
        "PKG_CONFIG",
        "PKG_CONFIG_PATH",
        "PKG_CONFIG_LIBDIR",
        "PKG_CONFIG_SYSROOT_DIR",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }

    // Metadata is printed by hand below, after the shim, so the static shim comes before the
    // shared DPDK libraries on the link line (its references then keep them under --as-needed).
    let lib = pkg_config::Config::new()
        .atleast_version(MIN_VERSION)
        .cargo_metadata(false)
        .probe("libdpdk")
        .unwrap_or_else(|_| {
            fail(
                "rvs needs DPDK >= 22.11 found by pkg-config as `libdpdk`: \
                 install libdpdk-dev (apt-get install libdpdk-dev)",
            )
        });
    let flags = cflags();
    println!("cargo:version={}", lib.version);

    // The C shim, compiled with exactly DPDK's flags.
    let mut cc = cc::Build::new();
    cc.file("shim/shim.c").include("shim").warnings(true);
    for f in &flags {
        cc.flag(f);
    }
    cc.compile("rvs_dpdk_shim");

    for dir in &lib.link_paths {
        println!("cargo:rustc-link-search=native={}", dir.display());
    }
    for l in &lib.libs {
        println!("cargo:rustc-link-lib=dylib={l}");
    }

    let bindings = bindgen::Builder::default()
        .header("shim/shim.h")
        .clang_args(&flags)
        .clang_arg("-Ishim")
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .use_core()
        .layout_tests(false)
        .derive_default(true)
        .prepend_enum_name(false)
        .default_enum_style(bindgen::EnumVariation::Consts)
        // Our shim: every rvs_ function and constant.
        .allowlist_function("rvs_.*")
        .allowlist_var("rvs_.*")
        // EAL, lcores, launch.
        .allowlist_function("rte_eal_init")
        .allowlist_function("rte_eal_cleanup")
        .allowlist_function("rte_strerror")
        .allowlist_function("rte_eal_remote_launch")
        .allowlist_function("rte_eal_wait_lcore")
        .allowlist_function("rte_eal_mp_wait_lcore")
        .allowlist_function("rte_lcore_count")
        .allowlist_function("rte_get_main_lcore")
        .allowlist_function("rte_get_next_lcore")
        .allowlist_function("rte_lcore_is_enabled")
        .allowlist_function("rte_lcore_to_socket_id")
        .allowlist_function("rte_socket_id")
        .allowlist_function("rte_get_tsc_hz")
        // Mempool.
        .allowlist_function("rte_pktmbuf_pool_create")
        .allowlist_function("rte_mempool_free")
        .allowlist_function("rte_mempool_avail_count")
        .allowlist_function("rte_mempool_in_use_count")
        // Ethdev (slow path).
        .allowlist_function("rte_eth_dev_count_avail")
        .allowlist_function("rte_eth_dev_info_get")
        .allowlist_function("rte_eth_dev_configure")
        .allowlist_function("rte_eth_dev_adjust_nb_rx_tx_desc")
        .allowlist_function("rte_eth_rx_queue_setup")
        .allowlist_function("rte_eth_tx_queue_setup")
        .allowlist_function("rte_eth_dev_start")
        .allowlist_function("rte_eth_dev_stop")
        .allowlist_function("rte_eth_dev_close")
        .allowlist_function("rte_eth_promiscuous_enable")
        .allowlist_function("rte_eth_macaddr_get")
        .allowlist_function("rte_eth_stats_get")
        .allowlist_function("rte_eth_dev_socket_id")
        .allowlist_function("rte_eth_link_get_nowait")
        .allowlist_function("rte_eth_dev_get_port_by_name")
        .allowlist_function("rte_eth_dev_get_name_by_port")
        .allowlist_function("rte_eth_dev_is_valid_port")
        // Hot-plugged virtual devices (the kernel interface) and their MAC.
        .allowlist_function("rte_dev_probe")
        .allowlist_function("rte_eth_dev_default_mac_addr_set")
        .allowlist_function("rte_eth_dev_rss_hash_conf_get")
        .allowlist_function("rte_eth_dev_rss_reta_query")
        // Types.
        .allowlist_type("rte_mbuf")
        .allowlist_type("rte_mempool")
        .allowlist_type("rte_eth_conf")
        .allowlist_type("rte_eth_rxconf")
        .allowlist_type("rte_eth_txconf")
        .allowlist_type("rte_eth_dev_info")
        .allowlist_type("rte_eth_stats")
        .allowlist_type("rte_eth_link")
        .allowlist_type("rte_ether_addr")
        .allowlist_type("rte_eth_rx_mq_mode")
        .allowlist_type("rte_eth_tx_mq_mode")
        .allowlist_type("lcore_function_t")
        .allowlist_type("rte_lcore_state_t")
        .allowlist_var("RTE_ETH_.*")
        .allowlist_var("RTE_MBUF_.*")
        .allowlist_var("RTE_PKTMBUF_HEADROOM")
        .allowlist_var("RTE_MAX_LCORE")
        .allowlist_var("RTE_MAX_ETHPORTS")
        .allowlist_var("RTE_ETHDEV_QUEUE_STAT_CNTRS")
        .allowlist_var("SOCKET_ID_ANY")
        .allowlist_var("LCORE_ID_ANY")
        // The mempool internals are never touched from Rust.
        .opaque_type("rte_mempool")
        // Packed protocol headers are parsed in safe Rust over byte slices, never bound.
        .blocklist_type("rte_ether_hdr")
        .blocklist_type("rte_vlan_hdr")
        .blocklist_type("rte_ipv4_hdr")
        .blocklist_type("rte_ipv6_hdr")
        .blocklist_type("rte_arp_hdr")
        .blocklist_type("rte_arp_ipv4")
        .blocklist_type("rte_tcp_hdr")
        .blocklist_type("rte_udp_hdr")
        .generate()
        .unwrap_or_else(|e| fail(&format!("bindgen failed on the DPDK headers: {e}")));

    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR is set by cargo"));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .unwrap_or_else(|e| fail(&format!("could not write bindings: {e}")));
}
