// SPDX-License-Identifier: MIT
/* What this machine charges for the pieces of a packet decision, to read the program cost
 * against: BPF_PROG_TEST_RUN's own loop (NC_CAL_NOOP), a random draw (NC_CAL_RANDOM), and a
 * random draw plus one lookup in a 100,000-entry hash (NC_CAL_LOOKUP). One per build. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual MIT/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, __u64);
} cal_hash SEC(".maps");

SEC("xdp")
int kit_shield(struct xdp_md *ctx)
{
#if defined(NC_CAL_NOOP)
	return XDP_PASS;
#elif defined(NC_CAL_RANDOM)
	return (bpf_get_prandom_u32() & 1) ? XDP_PASS : XDP_DROP;
#else
	__u32 key = bpf_get_prandom_u32() % 100000;
	return bpf_map_lookup_elem(&cal_hash, &key) ? XDP_DROP : XDP_PASS;
#endif
}
