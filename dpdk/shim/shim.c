/* rvs DPDK shim: see shim.h. Each function is a plain call-through to the inline it names. */
#include "shim.h"

int rvs_errno(void) { return rte_errno; }
void rvs_set_errno(int e) { rte_errno = e; }
unsigned int rvs_lcore_id(void) { return rte_lcore_id(); }
uint64_t rvs_get_tsc_cycles(void) { return rte_get_tsc_cycles(); }
void rvs_pause(void) { rte_pause(); }
void rvs_prefetch0(const void *p) { rte_prefetch0(p); }

uint16_t rvs_eth_rx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **rx_pkts,
                          uint16_t nb_pkts)
{
	return rte_eth_rx_burst(port_id, queue_id, rx_pkts, nb_pkts);
}

uint16_t rvs_eth_tx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **tx_pkts,
                          uint16_t nb_pkts)
{
	return rte_eth_tx_burst(port_id, queue_id, tx_pkts, nb_pkts);
}

struct rte_mbuf *rvs_pktmbuf_alloc(struct rte_mempool *mp) { return rte_pktmbuf_alloc(mp); }

int rvs_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned int count)
{
	return rte_pktmbuf_alloc_bulk(mp, mbufs, count);
}

void rvs_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }

void rvs_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned int count)
{
	rte_pktmbuf_free_bulk(mbufs, count);
}

void *rvs_pktmbuf_mtod(struct rte_mbuf *m) { return rte_pktmbuf_mtod(m, void *); }
uint16_t rvs_pktmbuf_data_len(const struct rte_mbuf *m) { return rte_pktmbuf_data_len(m); }
uint32_t rvs_pktmbuf_pkt_len(const struct rte_mbuf *m) { return rte_pktmbuf_pkt_len(m); }

int rvs_pktmbuf_set_len(struct rte_mbuf *m, uint16_t len)
{
	if (m->nb_segs != 1 || m->data_off > m->buf_len || len > m->buf_len - m->data_off)
		return -1;
	m->data_len = len;
	m->pkt_len = len;
	return 0;
}

uint16_t rvs_pktmbuf_headroom(const struct rte_mbuf *m) { return rte_pktmbuf_headroom(m); }
uint16_t rvs_pktmbuf_tailroom(const struct rte_mbuf *m) { return rte_pktmbuf_tailroom(m); }
char *rvs_pktmbuf_append(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_append(m, len); }
char *rvs_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_prepend(m, len); }
char *rvs_pktmbuf_adj(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_adj(m, len); }

int rvs_pktmbuf_rss_hash(const struct rte_mbuf *m, uint32_t *hash)
{
	if ((m->ol_flags & RTE_MBUF_F_RX_RSS_HASH) == 0)
		return 0;
	*hash = m->hash.rss;
	return 1;
}

unsigned int rvs_mempool_in_use_count(const struct rte_mempool *mp)
{
	return rte_mempool_in_use_count(mp);
}

const uint64_t rvs_ETH_RSS_IP = RTE_ETH_RSS_IP;
const uint64_t rvs_ETH_RSS_TCP = RTE_ETH_RSS_TCP;
const uint64_t rvs_ETH_RSS_UDP = RTE_ETH_RSS_UDP;
const uint64_t rvs_ETH_RX_OFFLOAD_RSS_HASH = RTE_ETH_RX_OFFLOAD_RSS_HASH;
const uint64_t rvs_ETH_RX_OFFLOAD_IPV4_CKSUM = RTE_ETH_RX_OFFLOAD_IPV4_CKSUM;
const uint64_t rvs_MBUF_F_RX_RSS_HASH = RTE_MBUF_F_RX_RSS_HASH;
const unsigned int rvs_MAX_LCORE = RTE_MAX_LCORE;

const size_t rvs_mbuf_size = sizeof(struct rte_mbuf);
const size_t rvs_mbuf_off_buf_addr = offsetof(struct rte_mbuf, buf_addr);
const size_t rvs_mbuf_off_data_off = offsetof(struct rte_mbuf, data_off);
const size_t rvs_mbuf_off_nb_segs = offsetof(struct rte_mbuf, nb_segs);
const size_t rvs_mbuf_off_ol_flags = offsetof(struct rte_mbuf, ol_flags);
const size_t rvs_mbuf_off_pkt_len = offsetof(struct rte_mbuf, pkt_len);
const size_t rvs_mbuf_off_data_len = offsetof(struct rte_mbuf, data_len);
const size_t rvs_mbuf_off_hash_rss = offsetof(struct rte_mbuf, hash.rss);
const size_t rvs_mbuf_off_buf_len = offsetof(struct rte_mbuf, buf_len);
const size_t rvs_mbuf_off_pool = offsetof(struct rte_mbuf, pool);
