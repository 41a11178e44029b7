// SPDX-License-Identifier: GPL-2.0
// The lab switch's port to the director as an 802.1Q trunk, for tests/lab/vlan.sh (this
// machine's kernel has neither 8021q nor bridge VLAN filtering; cls_bpf and clsact it has).
// The other ports are access ports of VLAN 100: their frames are untagged on the bridge.
//
//   to_trunk   (egress of the director's port): an untagged frame is VLAN 100's: its tag is
//              pushed; a frame tagged with VLAN 1 leaves untagged (the trunk's native VLAN, so
//              a test can send untagged frames to the director); other tags pass as they are.
//   from_trunk (ingress from the director): only VLAN 100's frames reach the access ports,
//              untagged; everything else is dropped.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define VID 100
#define NATIVE 1

SEC("tc/to_trunk")
int to_trunk(struct __sk_buff *skb)
{
	if (!skb->vlan_present)
		return bpf_skb_vlan_push(skb, bpf_htons(ETH_P_8021Q), VID) ? TC_ACT_SHOT : TC_ACT_OK;
	if ((skb->vlan_tci & 0x0fff) == NATIVE)
		return bpf_skb_vlan_pop(skb) ? TC_ACT_SHOT : TC_ACT_OK;
	return TC_ACT_OK;
}

SEC("tc/from_trunk")
int from_trunk(struct __sk_buff *skb)
{
	if (skb->vlan_present && (skb->vlan_tci & 0x0fff) == VID)
		return bpf_skb_vlan_pop(skb) ? TC_ACT_SHOT : TC_ACT_OK;
	return TC_ACT_SHOT;
}

char _license[] SEC("license") = "GPL";
