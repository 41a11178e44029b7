/*
 * rvs DPDK shim: non-inline wrappers (prefix `rvs_`) for DPDK's `static inline` functions and
 * thread-local variables, which have no symbol bindgen could link against, plus the layout
 * facts (offsetof/sizeof) of the mbuf fields Rust reads directly, so Rust tests can compare
 * them with bindgen's layout.
 */
#ifndef RVS_SHIM_H
#define RVS_SHIM_H

#include <stddef.h>
#include <stdint.h>

#include <rte_common.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_pause.h>
#include <rte_prefetch.h>

/* ---- errno / lcore / time ---- */
int rvs_errno(void);
void rvs_set_errno(int e);
unsigned int rvs_lcore_id(void);
uint64_t rvs_get_tsc_cycles(void);
void rvs_pause(void);
void rvs_prefetch0(const void *p);

/* ---- ethdev fast path ---- */
uint16_t rvs_eth_rx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **rx_pkts,
                          uint16_t nb_pkts);
uint16_t rvs_eth_tx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **tx_pkts,
                          uint16_t nb_pkts);

/* ---- mbuf ---- */
struct rte_mbuf *rvs_pktmbuf_alloc(struct rte_mempool *mp);
int rvs_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned int count);
void rvs_pktmbuf_free(struct rte_mbuf *m);
void rvs_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned int count);
void *rvs_pktmbuf_mtod(struct rte_mbuf *m);
uint16_t rvs_pktmbuf_data_len(const struct rte_mbuf *m);
uint32_t rvs_pktmbuf_pkt_len(const struct rte_mbuf *m);
/* Sets data_len and pkt_len of a single-segment mbuf; returns 0, or -1 if `len` exceeds the
 * room after data_off or the mbuf has several segments. */
int rvs_pktmbuf_set_len(struct rte_mbuf *m, uint16_t len);
uint16_t rvs_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t rvs_pktmbuf_tailroom(const struct rte_mbuf *m);
char *rvs_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
char *rvs_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
char *rvs_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
/* Returns 1 and stores the RSS hash in *hash if the NIC set RTE_MBUF_F_RX_RSS_HASH, else 0. */
int rvs_pktmbuf_rss_hash(const struct rte_mbuf *m, uint32_t *hash);
unsigned int rvs_mempool_in_use_count(const struct rte_mempool *mp);

/* ---- constants that are function-like macro expansions in the headers ---- */
extern const uint64_t rvs_ETH_RSS_IP;
extern const uint64_t rvs_ETH_RSS_TCP;
extern const uint64_t rvs_ETH_RSS_UDP;
extern const uint64_t rvs_ETH_RX_OFFLOAD_RSS_HASH;
extern const uint64_t rvs_ETH_RX_OFFLOAD_IPV4_CKSUM;
extern const uint64_t rvs_MBUF_F_RX_RSS_HASH;
extern const unsigned int rvs_MAX_LCORE;

/* ---- layout of the rte_mbuf fields Rust reads directly, as the C compiler sees it ---- */
extern const size_t rvs_mbuf_size;
extern const size_t rvs_mbuf_off_buf_addr;
extern const size_t rvs_mbuf_off_data_off;
extern const size_t rvs_mbuf_off_nb_segs;
extern const size_t rvs_mbuf_off_ol_flags;
extern const size_t rvs_mbuf_off_pkt_len;
extern const size_t rvs_mbuf_off_data_len;
extern const size_t rvs_mbuf_off_hash_rss;
extern const size_t rvs_mbuf_off_buf_len;
extern const size_t rvs_mbuf_off_pool;

#endif /* RVS_SHIM_H */
