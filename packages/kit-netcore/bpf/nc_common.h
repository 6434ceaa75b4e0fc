/* SPDX-License-Identifier: MIT */
/*
 * nc_common.h: what the XDP program, the control library and the userspace engine share:
 * map names and layouts, verdict reasons and the configuration record.
 *
 * Layout rules (the Python side mirrors them in kit_netcore/_layout.py):
 *   - addresses are stored in network byte order; an IPv4 address fills addr[0..3] of a
 *     16-byte field with the other 12 bytes zero;
 *   - ports are host byte order;
 *   - times are CLOCK_MONOTONIC nanoseconds (bpf_ktime_get_ns), 0 meaning "never";
 *   - every struct is padded explicitly so that kernel, C and Python agree byte for byte.
 *
 * Range rules (CIDR) are expanded by userspace onto 8-bit strides: a /L prefix is stored
 * as 2^(S-L) keys of length S = ceil(L/8)*8 in a plain hash (nc_*_net4/6), and a bit per
 * stride in use in the configuration tells the program which lengths to probe. A lookup
 * is then at most one hash probe per stride in use (typically 1-3) instead of an LPM-trie
 * walk. The authoritative list of ranges lives in nc_ranges (not read by the program).
 */
#ifndef KIT_NETCORE_COMMON_H
#define KIT_NETCORE_COMMON_H

#include <linux/types.h>

/* ---- sizes (changing one breaks reuse of maps pinned by an older release) */
#define NC_MAX_EXACT 262144   /* single addresses per list and family */
#define NC_MAX_NETS 262144    /* expanded range keys per list and family */
#define NC_MAX_RANGES 65536   /* range rules (CIDRs) over both lists and families */
#define NC_MAX_RATE_RULES 16  /* rate-limit rules; index 0 is unused */
#define NC_MAX_BUCKETS 262144 /* per-source buckets (LRU) */
#define NC_MAX_SOURCES 65536  /* tracked sources for top_sources (LRU) */
#define NC_MAX_VLAN 2         /* VLAN tags parsed (802.1Q / 802.1ad) */
#define NC_MAX_EXTHDR 6       /* IPv6 extension headers walked */
#define NC_CAS_TRIES 4        /* compare-and-swap attempts on a contended bucket */
#define NC_PREFILTER_WORDS 1024 /* 65536 bits per list and family */

/* ---- verdicts: the XDP return codes */
#define NC_XDP_DROP 1
#define NC_XDP_PASS 2

/* ---- reasons: one per-CPU counter each (nc_stats index) */
enum nc_reason {
	NC_R_PASS = 0,      /* no rule matched */
	NC_R_ALLOW = 1,     /* allow-listed source */
	NC_R_BLOCK = 2,     /* block-listed source (address or range) */
	NC_R_RATE = 3,      /* source over its rate limit */
	NC_R_MALFORMED = 4, /* truncated or malformed; passed or dropped per NC_F_DROP_MALFORMED */
	NC_R_CONTROL = 5,   /* non-IP (ARP, ...) or IPv6 neighbour discovery: always passed */
	NC_R_COUNT = 8
};

/* ---- configuration flags (nc_config.flags) */
#define NC_F_DROP_MALFORMED (1u << 0) /* drop malformed packets instead of passing them */
#define NC_F_TRACK_SOURCES (1u << 1)  /* count packets per source in nc_sources */

/* Stride masks: bit 0 = the exact-address map may hold entries, bit i (1..16) = keys of
 * prefix length 8*i may be present in the net map. Userspace sets a bit before inserting
 * and clears it only when it empties the map, so a stale bit costs a probe, never a miss. */
struct nc_config {
	__u32 flags;
	__u32 all_rule; /* rate rule applied to every packet without a port rule; 0 = none */
	__u32 allow_mask4;
	__u32 block_mask4;
	__u32 allow_mask6;
	__u32 block_mask6;
	__u64 reserved[5];
}; /* 64 bytes */

struct nc_counter {
	__u64 packets;
	__u64 bytes;
}; /* nc_stats: PERCPU_ARRAY[NC_R_COUNT] */

/* value of every allow/block map, exact or net */
struct nc_entry {
	__u64 expires_ns; /* 0 = never */
	__u64 hits;       /* packets matched (atomic add) */
	__u32 origin_len; /* prefix length of the rule this key came from (exact: 32/128) */
	__u32 reserved;
}; /* 24 bytes */

struct nc_net4_key {
	__u32 prefixlen; /* 8, 16, 24 or 32 */
	__u32 addr;      /* network order, masked to prefixlen */
}; /* 8 bytes */

struct nc_net6_key {
	__u32 prefixlen; /* 8, 16, ..., 128 */
	__u8 addr[16];   /* masked to prefixlen */
}; /* 20 bytes */

/* nc_ranges: the CIDR rules themselves (userspace truth, not read by the program) */
#define NC_LIST_ALLOW 0
#define NC_LIST_BLOCK 1
struct nc_range_key {
	__u8 list;      /* NC_LIST_ALLOW or NC_LIST_BLOCK */
	__u8 family;    /* 4 or 6 */
	__u8 prefixlen; /* as given by the user: 0..32 or 0..128 */
	__u8 pad;
	__u8 addr[16];  /* masked to prefixlen */
}; /* 20 bytes */

struct nc_range_val {
	__u64 expires_ns; /* 0 = never */
	__u64 created_ns; /* CLOCK_REALTIME when added, for display */
}; /* 16 bytes */

/* rate limits: GCRA, the token bucket's equivalent with one timestamp per source */
struct nc_rate_rule {
	__u64 interval_ns;  /* 1e9 / pps; 0 = rule slot unused */
	__u64 tolerance_ns; /* (burst - 1) * interval_ns */
	__u64 drops;        /* packets dropped by this rule (atomic add) */
	__u64 reserved;
}; /* nc_rate_rules: ARRAY[NC_MAX_RATE_RULES], 32 bytes */

/* nc_port_rule: ARRAY[65536] of __u32, the rate rule of a TCP/UDP destination port */

struct nc_bucket_key {
	__u8 addr[16];
	__u8 family;
	__u8 rule;
	__u16 pad;
}; /* 20 bytes; value: __u64 theoretical arrival time (ns) */

struct nc_source_key {
	__u8 addr[16];
	__u8 family;
	__u8 pad[3];
}; /* 20 bytes */

struct nc_source_val {
	__u64 packets;
	__u64 dropped;
}; /* nc_sources: LRU_PERCPU_HASH */

/* nc_prefilter: ARRAY[4 * NC_PREFILTER_WORDS] of __u64, one 65536-bit map per list and
 * family (slot = list * 2 + (family == 6)). Bit p is set when some rule of that list may
 * cover an address whose first 16 bits are p; a clear bit skips every probe of the list.
 * Bits are only ever set (a stale bit costs probes, never a miss). */
#define NC_PREFILTER_INDEX(slot, p16) (((slot) << 10) | ((p16) >> 6))

/* a parsed packet: what the decision needs and nothing else */
struct nc_pkt {
	__u8 family;    /* 0 = not IP, 4 or 6 */
	__u8 proto;     /* L4 protocol number, 0 if unknown */
	__u8 malformed; /* 1 = truncated or malformed: nothing else is valid */
	__u8 control;   /* 1 = ARP/other non-IP or IPv6 neighbour discovery */
	__u8 has_ports; /* 1 = TCP or UDP header present (first fragment) */
	__u8 fragment;  /* 1 = non-first fragment: no L4 header */
	__u16 dport;    /* host order, valid when has_ports */
	__u16 sport;    /* host order, valid when has_ports */
	__u16 pad;
	__u8 src[16];   /* network order; IPv4 in src[0..3] */
	__u32 len;      /* frame length in bytes */
}; /* 36 bytes */

#endif /* KIT_NETCORE_COMMON_H */
