// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * shield.bpf.c: kit-netcore's XDP program. Parses the frame (nc_parse.h), decides
 * (nc_decide.h: allow-list, block-list, per-source rate limit), counts, and returns
 * XDP_PASS or XDP_DROP. Every map is pinned by the loader under <pin root>/<ifname>/.
 *
 * Build variants (benchmarks only):
 *   -DNC_LAYOUT_LPM   allow/block lists in LPM tries (the baseline layout);
 *   -DNC_BENCH_SPAN=N the IPv4 source is replaced by NC_BENCH_BASE + random % N before
 *                     the decision, so BPF_PROG_TEST_RUN does not replay one hot key.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define NC_MAP_T void *
#define NC_M(name) ((void *)&name)
#define NC_LOOKUP(m, key) bpf_map_lookup_elem((m), (key))
#define NC_INSERT(m, key, value) bpf_map_update_elem((m), (key), (value), BPF_NOEXIST)
#define NC_NOW_NS() bpf_ktime_get_coarse_ns()
#define NC_ENG_PARAM
#define NC_ENG_ARG

#include "nc_common.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nc_config);
} nc_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NC_R_COUNT);
	__type(key, __u32);
	__type(value, struct nc_counter);
} nc_stats SEC(".maps");

#define NC_HASH_MAP(name, ktype, entries)                                                          \
	struct {                                                                                   \
		__uint(type, BPF_MAP_TYPE_HASH);                                                   \
		__uint(max_entries, entries);                                                      \
		__uint(map_flags, BPF_F_NO_PREALLOC);                                              \
		__type(key, ktype);                                                                \
		__type(value, struct nc_entry);                                                    \
	} name SEC(".maps")

typedef __u8 nc_addr6_t[16];

NC_HASH_MAP(nc_allow4, __u32, NC_MAX_EXACT);
NC_HASH_MAP(nc_allow6, nc_addr6_t, NC_MAX_EXACT);
NC_HASH_MAP(nc_allow_net4, struct nc_net4_key, NC_MAX_NETS);
NC_HASH_MAP(nc_allow_net6, struct nc_net6_key, NC_MAX_NETS);
NC_HASH_MAP(nc_block4, __u32, NC_MAX_EXACT);
NC_HASH_MAP(nc_block6, nc_addr6_t, NC_MAX_EXACT);
NC_HASH_MAP(nc_block_net4, struct nc_net4_key, NC_MAX_NETS);
NC_HASH_MAP(nc_block_net6, struct nc_net6_key, NC_MAX_NETS);

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NC_MAX_RANGES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct nc_range_key);
	__type(value, struct nc_range_val);
} nc_ranges SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u32);
} nc_port_rule SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NC_MAX_RATE_RULES);
	__type(key, __u32);
	__type(value, struct nc_rate_rule);
} nc_rate_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NC_MAX_BUCKETS);
	__type(key, struct nc_bucket_key);
	__type(value, __u64);
} nc_buckets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, NC_MAX_SOURCES);
	__type(key, struct nc_source_key);
	__type(value, struct nc_source_val);
} nc_sources SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4 * NC_PREFILTER_WORDS);
	__type(key, __u32);
	__type(value, __u64);
} nc_prefilter SEC(".maps");

#ifdef NC_LAYOUT_LPM
/* Baseline layout for the benchmark: each list is one LPM trie per family, exact
 * addresses included as /32 and /128 prefixes. */
struct nc_lpm4_key {
	__u32 prefixlen;
	__u32 addr;
};
struct nc_lpm6_key {
	__u32 prefixlen;
	__u8 addr[16];
};
#define NC_LPM_MAP(name, ktype)                                                                    \
	struct {                                                                                   \
		__uint(type, BPF_MAP_TYPE_LPM_TRIE);                                               \
		__uint(max_entries, NC_MAX_EXACT + NC_MAX_NETS);                                   \
		__uint(map_flags, BPF_F_NO_PREALLOC);                                              \
		__type(key, ktype);                                                                \
		__type(value, struct nc_entry);                                                    \
	} name SEC(".maps")
NC_LPM_MAP(nc_lpm_allow4, struct nc_lpm4_key);
NC_LPM_MAP(nc_lpm_allow6, struct nc_lpm6_key);
NC_LPM_MAP(nc_lpm_block4, struct nc_lpm4_key);
NC_LPM_MAP(nc_lpm_block6, struct nc_lpm6_key);
#endif

#include "nc_decide.h"

#ifdef NC_LAYOUT_LPM
/* The same decision with the lists looked up in the tries. */
static __attribute__((always_inline)) inline struct nc_entry *
nc_lpm_match(void *trie4, void *trie6, const struct nc_pkt *pkt, struct nc_clock *clock)
{
	struct nc_entry *e;
	if (pkt->family == 4) {
		struct nc_lpm4_key k = {.prefixlen = 32};
		__builtin_memcpy(&k.addr, pkt->src, 4);
		e = bpf_map_lookup_elem(trie4, &k);
	} else {
		struct nc_lpm6_key k = {.prefixlen = 128};
		__builtin_memcpy(k.addr, pkt->src, 16);
		e = bpf_map_lookup_elem(trie6, &k);
	}
	return (e && nc_entry_live(e, clock)) ? e : 0;
}
#endif

SEC("xdp")
int kit_shield(struct xdp_md *ctx)
{
	const __u8 *data = (const __u8 *)(long)ctx->data;
	const __u8 *end = (const __u8 *)(long)ctx->data_end;
	struct nc_pkt pkt;
	struct nc_clock clock = {0};
	__u32 reason;
	int verdict;

	nc_parse(data, end, ctx->data_end - ctx->data, &pkt);
#ifdef NC_BENCH_SPAN
	if (pkt.family == 4 && !pkt.malformed) {
		__u32 host = NC_BENCH_BASE + bpf_get_prandom_u32() % NC_BENCH_SPAN;
		pkt.src[0] = host >> 24;
		pkt.src[1] = host >> 16;
		pkt.src[2] = host >> 8;
		pkt.src[3] = host;
	}
#endif
#ifdef NC_LAYOUT_LPM
	if (pkt.malformed || pkt.control || pkt.family == 0) {
		verdict = nc_decide(&pkt, &clock, &reason);
	} else {
		struct nc_entry *e =
			nc_lpm_match(&nc_lpm_allow4, &nc_lpm_allow6, &pkt, &clock);
		if (e) {
			__sync_fetch_and_add(&e->hits, 1);
			reason = NC_R_ALLOW;
			verdict = NC_XDP_PASS;
		} else if ((e = nc_lpm_match(&nc_lpm_block4, &nc_lpm_block6, &pkt, &clock))) {
			__sync_fetch_and_add(&e->hits, 1);
			reason = NC_R_BLOCK;
			verdict = NC_XDP_DROP;
		} else {
			/* the lists' masks are empty in this layout: the rate limit decides */
			verdict = nc_decide(&pkt, &clock, &reason);
		}
	}
#else
	verdict = nc_decide(&pkt, &clock, &reason);
#endif
	nc_account(&pkt, reason, verdict);
	return verdict;
}
