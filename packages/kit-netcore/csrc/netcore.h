/* SPDX-License-Identifier: MIT */
/*
 * netcore.h: the small C library kit_netcore drives through cffi (API mode).
 *
 * Two halves:
 *   - nc_* control calls over libbpf 1.1: load the XDP object with its maps pinned under
 *     bpffs, attach/replace/detach, query, open pinned objects, map calls (single and
 *     batch), per-CPU sizes and BPF_PROG_TEST_RUN;
 *   - nc_engine_*: the userspace reference engine, the same parser and decision code
 *     (bpf/nc_parse.h, bpf/nc_decide.h) over in-process tables that have the kernel maps'
 *     key and value layouts, so one Python rule manager drives either.
 *
 * Every int-returning call gives 0 (or a count/fd) on success and a negative errno on
 * failure; nc_last_error() holds libbpf's last message, if any.
 */
#ifndef KIT_NETCORE_H
#define KIT_NETCORE_H

#include <stdint.h>

/* attach modes */
#define NC_MODE_AUTO 0    /* native if the driver supports it, else generic */
#define NC_MODE_GENERIC 1 /* XDP_FLAGS_SKB_MODE */
#define NC_MODE_NATIVE 2  /* XDP_FLAGS_DRV_MODE */

/* map identifiers, shared with the engine; names are the pinned file names */
enum nc_map_id {
	NC_MAP_CONFIG = 0,     /* "nc_config"      ARRAY[1]            u32 -> nc_config */
	NC_MAP_STATS,          /* "nc_stats"       PERCPU_ARRAY[8]     u32 -> nc_counter */
	NC_MAP_ALLOW4,         /* "nc_allow4"      HASH                u32 -> nc_entry */
	NC_MAP_ALLOW6,         /* "nc_allow6"      HASH                u8[16] -> nc_entry */
	NC_MAP_ALLOW_NET4,     /* "nc_allow_net4"  HASH  nc_net4_key -> nc_entry */
	NC_MAP_ALLOW_NET6,     /* "nc_allow_net6"  HASH  nc_net6_key -> nc_entry */
	NC_MAP_BLOCK4,         /* "nc_block4" */
	NC_MAP_BLOCK6,         /* "nc_block6" */
	NC_MAP_BLOCK_NET4,     /* "nc_block_net4" */
	NC_MAP_BLOCK_NET6,     /* "nc_block_net6" */
	NC_MAP_RANGES,         /* "nc_ranges"      HASH  nc_range_key -> nc_range_val */
	NC_MAP_PORT_RULE,      /* "nc_port_rule"   ARRAY[65536] u32 -> u32 */
	NC_MAP_RATE_RULES,     /* "nc_rate_rules"  ARRAY[16] u32 -> nc_rate_rule */
	NC_MAP_BUCKETS,        /* "nc_buckets"     LRU_HASH nc_bucket_key -> u64 */
	NC_MAP_SOURCES,        /* "nc_sources"     LRU_PERCPU_HASH nc_source_key -> nc_source_val */
	NC_MAP_PREFILTER,      /* "nc_prefilter"   ARRAY[4096] u32 -> u64 (bits per first 16 bits) */
	NC_MAP_COUNT
};

/* ---- diagnostics */
const char *nc_last_error(void);
int nc_num_possible_cpus(void);
uint64_t nc_monotonic_ns(void);

/* ---- loading: open obj_path, reuse or pin every map under pin_dir, load, pin the
 * program as pin_dir/"prog". Returns the program fd (>= 0) or -errno. */
int nc_load(const char *obj_path, const char *pin_dir);
/* bpf_obj_get: an fd for a pinned map or program, or -errno */
int nc_obj_get(const char *path);
/* program id (for query/compare) of a program fd, or -errno */
int nc_prog_id(int prog_fd, uint32_t *id);
/* an fd for the loaded program with that id (bpf_prog_get_fd_by_id), or -errno */
int nc_prog_fd_by_id(uint32_t id);
/* the program's name (up to 15 chars + NUL) into name[16] */
int nc_prog_name(int prog_fd, char *name);
/* name of a map id ("nc_config", ...) or NULL */
const char *nc_map_name(int map_id);

/* ---- attach: old_prog_fd >= 0 makes it an atomic replace of that program */
int nc_attach(int ifindex, int prog_fd, int mode, int old_prog_fd);
/* detach whatever XDP program is attached in mode (AUTO: the one that is there) */
int nc_detach(int ifindex, int mode);
/* the attached program id (0 if none) and its mode (NC_MODE_*, 0 if none) */
int nc_query(int ifindex, uint32_t *prog_id, int *mode);

/* ---- maps by fd (thin libbpf wrappers returning -errno) */
int nc_map_lookup(int fd, const void *key, void *value);
int nc_map_update(int fd, const void *key, const void *value, uint64_t flags);
int nc_map_delete(int fd, const void *key);
int nc_map_next_key(int fd, const void *key, void *next_key); /* key NULL = first */
/* *count in: entries given, out: entries written; -errno on failure */
int nc_map_update_batch(int fd, const void *keys, const void *values, uint32_t *count,
			uint64_t flags);
int nc_map_delete_batch(int fd, const void *keys, uint32_t *count);

/* ---- BPF_PROG_TEST_RUN (retried on EINTR): retval = XDP action, duration = mean ns */
int nc_test_run(int prog_fd, const void *data, uint32_t size, uint32_t repeat,
		uint32_t *retval, uint32_t *duration);

/* ---- the userspace engine (thread-safe: one mutex per engine) */
struct nc_engine;
struct nc_engine *nc_engine_new(void);
void nc_engine_free(struct nc_engine *eng);
int nc_engine_lookup(struct nc_engine *eng, int map_id, const void *key, void *value);
int nc_engine_update(struct nc_engine *eng, int map_id, const void *key, const void *value,
		     uint64_t flags);
int nc_engine_delete(struct nc_engine *eng, int map_id, const void *key);
int nc_engine_next_key(struct nc_engine *eng, int map_id, const void *key, void *next_key);
/* run a whole frame (Ethernet first) through parser and decision: NC_XDP_PASS or _DROP.
 * now_ns is CLOCK_MONOTONIC nanoseconds; 0 = read the clock here */
int nc_engine_run(struct nc_engine *eng, const void *frame, uint32_t len, uint64_t now_ns);
/* decide for a request already parsed: family 4/6, addr 4 or 16 bytes network order,
 * proto (6 TCP, 17 UDP, other: no port), dport host order; returns the verdict and
 * writes the reason (enum nc_reason) */
int nc_engine_check(struct nc_engine *eng, int family, const void *addr, int proto,
		    int dport, uint64_t now_ns, int *reason);
/* the userspace parser alone, for fuzzing and tests: fills *out (struct nc_pkt) */
struct nc_pkt;
void nc_parse_frame(const void *frame, uint32_t len, struct nc_pkt *out);

#endif /* KIT_NETCORE_H */
