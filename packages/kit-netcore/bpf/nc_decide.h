/* SPDX-License-Identifier: MIT */
/*
 * nc_decide.h: the decision for one parsed packet, shared by the XDP program and the
 * userspace engine. The includer defines the map access first:
 *
 *   NC_MAP_T                  type of a map handle
 *   NC_M(name)                the handle of map `name` (nc_config, nc_block4, ...)
 *   NC_LOOKUP(m, key)         pointer to the value (this CPU's slot for per-CPU maps) or NULL
 *   NC_INSERT(m, key, value)  insert if absent (BPF_NOEXIST): 0 on success
 *   NC_NOW_NS()               CLOCK_MONOTONIC now, in nanoseconds
 *   NC_ENG_PARAM / NC_ENG_ARG the extra leading parameter/argument (empty in BPF)
 *
 * Order, first match wins:
 *   1. malformed frame       -> pass, or drop with NC_F_DROP_MALFORMED  (NC_R_MALFORMED)
 *   2. non-IP, IPv6 ND       -> pass                                     (NC_R_CONTROL)
 *   3. allow-list            -> pass, never dropped                      (NC_R_ALLOW)
 *   4. block-list            -> drop                                     (NC_R_BLOCK)
 *      (a list is probed only if its prefilter bit for the first 16 source bits is set)
 *   5. rate limit (GCRA)     -> drop when over pps/burst                 (NC_R_RATE)
 *   6. otherwise             -> pass                                     (NC_R_PASS)
 * A list is an exact-address hash plus one hash per 8-bit stride of expanded CIDRs; an
 * expired entry is skipped (userspace collects it later).
 */
#ifndef KIT_NETCORE_DECIDE_H
#define KIT_NETCORE_DECIDE_H

#include "nc_parse.h"

struct nc_clock {
	__u64 now;
};

/* The clock is read once per packet, and only if an expiring entry or a rate limit
 * needs it (a helper call costs more than a hash probe). */
NC_INLINE __u64 nc_now(struct nc_clock *clock)
{
	if (!clock->now)
		clock->now = NC_NOW_NS();
	return clock->now;
}

NC_INLINE int nc_entry_live(const struct nc_entry *e, struct nc_clock *clock)
{
	return e->expires_ns == 0 || e->expires_ns > nc_now(clock);
}

/* memory-order mask keeping the first `bytes` bytes of a 4-byte address */
NC_INLINE __u32 nc_mask4(int bytes)
{
	union {
		__u32 v;
		__u8 b[4];
	} m;
	m.v = 0;
	NC_UNROLL
	for (int j = 0; j < 4; j++)
		if (j < bytes)
			m.b[j] = 0xFF;
	return m.v;
}

/* Whether the list in prefilter slot `slot` may hold a rule covering an address whose
 * first two bytes are b0, b1: one bit in an 8 KiB array that stays in cache. */
NC_INLINE int nc_prefilter_hit(NC_ENG_PARAM __u32 slot, __u8 b0, __u8 b1)
{
	__u32 p16 = ((__u32)b0 << 8) | b1;
	__u32 index = NC_PREFILTER_INDEX(slot, p16);
	__u64 *word = NC_LOOKUP(NC_M(nc_prefilter), &index);
	return word && (*word & (1ull << (p16 & 63)));
}

NC_INLINE struct nc_entry *nc_match4(NC_MAP_T exact, NC_MAP_T nets, __u32 mask, __u32 addr,
				     struct nc_clock *clock)
{
	struct nc_entry *e;
	if (mask & 1) {
		e = NC_LOOKUP(exact, &addr);
		if (e && nc_entry_live(e, clock))
			return e;
	}
	struct nc_net4_key k;
	NC_UNROLL
	for (int i = 4; i >= 1; i--) {
		if (mask & (1u << i)) {
			k.prefixlen = (__u32)i * 8;
			k.addr = addr & nc_mask4(i);
			e = NC_LOOKUP(nets, &k);
			if (e && nc_entry_live(e, clock))
				return e;
		}
	}
	return 0;
}

NC_INLINE struct nc_entry *nc_match6(NC_MAP_T exact, NC_MAP_T nets, __u32 mask, const __u8 *addr,
				     struct nc_clock *clock)
{
	struct nc_entry *e;
	if (mask & 1) {
		e = NC_LOOKUP(exact, addr);
		if (e && nc_entry_live(e, clock))
			return e;
	}
	if (!(mask & ~1u))
		return 0;
	struct nc_net6_key k;
	NC_UNROLL
	for (int i = 16; i >= 1; i--) {
		if (mask & (1u << i)) {
			k.prefixlen = (__u32)i * 8;
			NC_UNROLL
			for (int j = 0; j < 16; j++)
				k.addr[j] = j < i ? addr[j] : 0;
			e = NC_LOOKUP(nets, &k);
			if (e && nc_entry_live(e, clock))
				return e;
		}
	}
	return 0;
}

/* GCRA: allow when the theoretical arrival time is at most `tolerance` ahead of now, then
 * push it one interval further. One compare-and-swap per packet, retried when another CPU
 * won the race; still contended after NC_CAS_TRIES, the packet passes. */
NC_INLINE int nc_rate_allows(NC_ENG_PARAM __u32 rule, const struct nc_pkt *pkt,
			     struct nc_clock *clock)
{
	struct nc_rate_rule *r = NC_LOOKUP(NC_M(nc_rate_rules), &rule);
	if (!r || r->interval_ns == 0)
		return 1;
	__u64 interval = r->interval_ns;
	__u64 tolerance = r->tolerance_ns;
	struct nc_bucket_key bk;
	__builtin_memset(&bk, 0, sizeof(bk));
	NC_UNROLL
	for (int j = 0; j < 16; j++)
		bk.addr[j] = pkt->src[j];
	bk.family = pkt->family;
	bk.rule = (__u8)rule;
	__u64 now = nc_now(clock);
	__u64 *tat = NC_LOOKUP(NC_M(nc_buckets), &bk);
	if (!tat) {
		__u64 first = now + interval;
		if (NC_INSERT(NC_M(nc_buckets), &bk, &first) == 0)
			return 1;
		tat = NC_LOOKUP(NC_M(nc_buckets), &bk);
		if (!tat)
			return 1;
	}
	NC_UNROLL
	for (int i = 0; i < NC_CAS_TRIES; i++) {
		__u64 old = *(volatile __u64 *)tat;
		__u64 base = old > now ? old : now;
		if (base - now > tolerance) {
			__sync_fetch_and_add(&r->drops, 1);
			return 0;
		}
		if (__sync_val_compare_and_swap(tat, old, base + interval) == old)
			return 1;
	}
	return 1;
}

/* The verdict (NC_XDP_PASS or NC_XDP_DROP) for a parsed packet; *reason gets the counter. */
NC_INLINE int nc_decide(NC_ENG_PARAM const struct nc_pkt *pkt, struct nc_clock *clock,
			__u32 *reason)
{
	__u32 zero = 0;
	struct nc_config *cfg = NC_LOOKUP(NC_M(nc_config), &zero);
	if (!cfg) {
		*reason = NC_R_PASS;
		return NC_XDP_PASS;
	}
	if (pkt->malformed) {
		*reason = NC_R_MALFORMED;
		return (cfg->flags & NC_F_DROP_MALFORMED) ? NC_XDP_DROP : NC_XDP_PASS;
	}
	if (pkt->control || pkt->family == 0) {
		*reason = NC_R_CONTROL;
		return NC_XDP_PASS;
	}
	struct nc_entry *e = 0;
	__u32 v6 = pkt->family == 6;
	__u8 b0 = pkt->src[0], b1 = pkt->src[1];
	if (!v6) {
		__u32 addr;
		__builtin_memcpy(&addr, pkt->src, 4);
		if (cfg->allow_mask4 && nc_prefilter_hit(NC_ENG_ARG NC_LIST_ALLOW * 2, b0, b1))
			e = nc_match4(NC_M(nc_allow4), NC_M(nc_allow_net4), cfg->allow_mask4, addr,
				      clock);
		if (e) {
			__sync_fetch_and_add(&e->hits, 1);
			*reason = NC_R_ALLOW;
			return NC_XDP_PASS;
		}
		if (cfg->block_mask4 && nc_prefilter_hit(NC_ENG_ARG NC_LIST_BLOCK * 2, b0, b1))
			e = nc_match4(NC_M(nc_block4), NC_M(nc_block_net4), cfg->block_mask4, addr,
				      clock);
	} else {
		if (cfg->allow_mask6 && nc_prefilter_hit(NC_ENG_ARG NC_LIST_ALLOW * 2 + 1, b0, b1))
			e = nc_match6(NC_M(nc_allow6), NC_M(nc_allow_net6), cfg->allow_mask6,
				      pkt->src, clock);
		if (e) {
			__sync_fetch_and_add(&e->hits, 1);
			*reason = NC_R_ALLOW;
			return NC_XDP_PASS;
		}
		if (cfg->block_mask6 && nc_prefilter_hit(NC_ENG_ARG NC_LIST_BLOCK * 2 + 1, b0, b1))
			e = nc_match6(NC_M(nc_block6), NC_M(nc_block_net6), cfg->block_mask6,
				      pkt->src, clock);
	}
	if (e) {
		__sync_fetch_and_add(&e->hits, 1);
		*reason = NC_R_BLOCK;
		return NC_XDP_DROP;
	}
	__u32 rule = 0;
	if (pkt->has_ports) {
		__u32 port = pkt->dport;
		__u32 *pr = NC_LOOKUP(NC_M(nc_port_rule), &port);
		if (pr)
			rule = *pr;
	}
	if (!rule)
		rule = cfg->all_rule;
	if (rule && rule < NC_MAX_RATE_RULES && !nc_rate_allows(NC_ENG_ARG rule, pkt, clock)) {
		*reason = NC_R_RATE;
		return NC_XDP_DROP;
	}
	*reason = NC_R_PASS;
	return NC_XDP_PASS;
}

/* Count the packet: per-CPU counters per reason, and per source when tracking is on. */
NC_INLINE void nc_account(NC_ENG_PARAM const struct nc_pkt *pkt, __u32 reason, int verdict)
{
	struct nc_counter *c = NC_LOOKUP(NC_M(nc_stats), &reason);
	if (c) {
		c->packets += 1;
		c->bytes += pkt->len;
	}
	__u32 zero = 0;
	struct nc_config *cfg = NC_LOOKUP(NC_M(nc_config), &zero);
	if (!cfg || !(cfg->flags & NC_F_TRACK_SOURCES) || pkt->malformed || pkt->family == 0)
		return;
	struct nc_source_key sk;
	__builtin_memset(&sk, 0, sizeof(sk));
	NC_UNROLL
	for (int j = 0; j < 16; j++)
		sk.addr[j] = pkt->src[j];
	sk.family = pkt->family;
	struct nc_source_val *sv = NC_LOOKUP(NC_M(nc_sources), &sk);
	if (sv) {
		sv->packets += 1;
		if (verdict == NC_XDP_DROP)
			sv->dropped += 1;
	} else {
		struct nc_source_val init = {1, verdict == NC_XDP_DROP ? 1 : 0};
		NC_INSERT(NC_M(nc_sources), &sk, &init);
	}
}

#endif /* KIT_NETCORE_DECIDE_H */
