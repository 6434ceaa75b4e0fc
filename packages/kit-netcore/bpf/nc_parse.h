/* SPDX-License-Identifier: MIT */
/*
 * nc_parse.h: the packet parser, compiled twice: into the XDP program (clang -target bpf)
 * and into the userspace engine (the host compiler). Every read is bounds-checked
 * against `end` first, so the verifier accepts it and a truncated frame can never be
 * misread: it is reported as malformed instead.
 *
 * Fields are read a byte at a time (`nc_be16`), which needs no byte-order macros and no
 * alignment, and compiles to the same loads on both sides.
 *
 * What is parsed: Ethernet with up to NC_MAX_VLAN 802.1Q/802.1ad tags; IPv4 with options
 * (IHL), total length and fragment offset checked; IPv6 with a bounded walk over at most
 * NC_MAX_EXTHDR hop-by-hop, routing, destination-options, fragment and AH headers; TCP
 * (data offset checked), UDP, ICMP and ICMPv6 (neighbour discovery flagged as control).
 * Any other EtherType is control traffic (ARP among it) and is never dropped.
 */
#ifndef KIT_NETCORE_PARSE_H
#define KIT_NETCORE_PARSE_H

#include "nc_common.h"

#ifdef __BPF__
#define NC_INLINE static __attribute__((always_inline)) inline
#define NC_UNROLL _Pragma("unroll")
#else
#define NC_INLINE static inline __attribute__((always_inline))
#define NC_UNROLL
#endif

#define NC_ETH_P_IP 0x0800
#define NC_ETH_P_IPV6 0x86DD
#define NC_ETH_P_8021Q 0x8100
#define NC_ETH_P_8021AD 0x88A8

#define NC_IPPROTO_HOPOPTS 0
#define NC_IPPROTO_ICMP 1
#define NC_IPPROTO_TCP 6
#define NC_IPPROTO_UDP 17
#define NC_IPPROTO_ROUTING 43
#define NC_IPPROTO_FRAGMENT 44
#define NC_IPPROTO_AH 51
#define NC_IPPROTO_ICMPV6 58
#define NC_IPPROTO_NONE 59
#define NC_IPPROTO_DSTOPTS 60

NC_INLINE __u32 nc_be16(const __u8 *p)
{
	return ((__u32)p[0] << 8) | (__u32)p[1];
}

NC_INLINE int nc_is_vlan(__u32 ethertype)
{
	return ethertype == NC_ETH_P_8021Q || ethertype == NC_ETH_P_8021AD;
}

NC_INLINE int nc_is_ext6(__u32 nexthdr)
{
	return nexthdr == NC_IPPROTO_HOPOPTS || nexthdr == NC_IPPROTO_ROUTING ||
	       nexthdr == NC_IPPROTO_DSTOPTS || nexthdr == NC_IPPROTO_FRAGMENT ||
	       nexthdr == NC_IPPROTO_AH;
}

/* L4 header at `l4`, `rem` bytes of it belong to the IP payload; pkt->family is set.
 * ICMP is checked under IPv4 only and ICMPv6 under IPv6 only (elsewhere they are just
 * protocol numbers). Returns 0 or -1 (malformed). */
NC_INLINE int nc_parse_l4(const __u8 *l4, const __u8 *end, __u32 rem, __u32 proto,
			  struct nc_pkt *pkt)
{
	pkt->proto = (__u8)proto;
	if (proto == NC_IPPROTO_TCP) {
		if (rem < 20 || l4 + 20 > end)
			return -1;
		__u32 doff = (__u32)(l4[12] >> 4) * 4;
		if (doff < 20 || doff > rem)
			return -1;
		pkt->sport = (__u16)nc_be16(l4);
		pkt->dport = (__u16)nc_be16(l4 + 2);
		pkt->has_ports = 1;
	} else if (proto == NC_IPPROTO_UDP) {
		if (rem < 8 || l4 + 8 > end)
			return -1;
		pkt->sport = (__u16)nc_be16(l4);
		pkt->dport = (__u16)nc_be16(l4 + 2);
		pkt->has_ports = 1;
	} else if (proto == NC_IPPROTO_ICMP && pkt->family == 4) {
		if (rem < 8 || l4 + 8 > end)
			return -1;
	} else if (proto == NC_IPPROTO_ICMPV6 && pkt->family == 6) {
		if (rem < 8 || l4 + 8 > end)
			return -1;
		/* router/neighbour solicitation and advertisement, redirect: never dropped */
		if (l4[0] >= 133 && l4[0] <= 137)
			pkt->control = 1;
	}
	return 0;
}

NC_INLINE int nc_parse_ipv4(const __u8 *p, const __u8 *end, struct nc_pkt *pkt)
{
	if (p + 20 > end)
		return -1;
	if ((p[0] >> 4) != 4)
		return -1;
	__u32 ihl = (__u32)(p[0] & 0x0F) * 4;
	if (ihl < 20)
		return -1;
	__u32 total = nc_be16(p + 2);
	if (total < ihl)
		return -1;
	if (p + total > end) /* also covers p + ihl > end */
		return -1;
	pkt->family = 4;
	pkt->src[0] = p[12];
	pkt->src[1] = p[13];
	pkt->src[2] = p[14];
	pkt->src[3] = p[15];
	pkt->proto = p[9];
	if (nc_be16(p + 6) & 0x1FFF) { /* non-first fragment: no L4 header here */
		pkt->fragment = 1;
		return 0;
	}
	return nc_parse_l4(p + ihl, end, total - ihl, p[9], pkt);
}

NC_INLINE int nc_parse_ipv6(const __u8 *p, const __u8 *end, struct nc_pkt *pkt)
{
	if (p + 40 > end)
		return -1;
	if ((p[0] >> 4) != 6)
		return -1;
	__u32 rem = nc_be16(p + 4);
	if (p + 40 + rem > end)
		return -1;
	pkt->family = 6;
	NC_UNROLL
	for (int i = 0; i < 16; i++)
		pkt->src[i] = p[8 + i];
	__u32 nexthdr = p[6];
	const __u8 *q = p + 40;

	NC_UNROLL
	for (int i = 0; i < NC_MAX_EXTHDR; i++) {
		if (!nc_is_ext6(nexthdr))
			break;
		if (rem < 8 || q + 8 > end)
			return -1;
		__u32 hdrlen;
		if (nexthdr == NC_IPPROTO_FRAGMENT) {
			if (nc_be16(q + 2) & 0xFFF8) { /* non-first fragment */
				pkt->proto = q[0];
				pkt->fragment = 1;
				return 0;
			}
			hdrlen = 8;
		} else if (nexthdr == NC_IPPROTO_AH) {
			hdrlen = ((__u32)q[1] + 2) * 4;
		} else {
			hdrlen = ((__u32)q[1] + 1) * 8;
		}
		if (hdrlen > rem)
			return -1;
		nexthdr = q[0];
		q += hdrlen;
		rem -= hdrlen;
	}
	if (nc_is_ext6(nexthdr)) /* more extension headers than the walk allows */
		return -1;
	if (nexthdr == NC_IPPROTO_NONE) {
		pkt->proto = NC_IPPROTO_NONE;
		return 0;
	}
	return nc_parse_l4(q, end, rem, nexthdr, pkt);
}

/* Parse one frame; `len` is its length in bytes (end - data). */
NC_INLINE void nc_parse(const __u8 *data, const __u8 *end, __u32 len, struct nc_pkt *pkt)
{
	__builtin_memset(pkt, 0, sizeof(*pkt));
	pkt->len = len;
	const __u8 *p = data;
	if (p + 14 > end)
		goto malformed;
	__u32 ethertype = nc_be16(p + 12);
	p += 14;
	NC_UNROLL
	for (int i = 0; i < NC_MAX_VLAN; i++) {
		if (!nc_is_vlan(ethertype))
			break;
		if (p + 4 > end)
			goto malformed;
		ethertype = nc_be16(p + 2);
		p += 4;
	}
	if (nc_is_vlan(ethertype))
		goto malformed;
	if (ethertype == NC_ETH_P_IP) {
		if (nc_parse_ipv4(p, end, pkt) < 0)
			goto malformed;
	} else if (ethertype == NC_ETH_P_IPV6) {
		if (nc_parse_ipv6(p, end, pkt) < 0)
			goto malformed;
	} else {
		pkt->control = 1;
	}
	return;
malformed:
	__builtin_memset(pkt, 0, sizeof(*pkt));
	pkt->len = len;
	pkt->malformed = 1;
}

#endif /* KIT_NETCORE_PARSE_H */
