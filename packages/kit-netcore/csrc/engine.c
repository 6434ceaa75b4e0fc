// SPDX-License-Identifier: MIT
/*
 * engine.c: the userspace reference engine. The parser and the decision are the very
 * headers the XDP program is built from (bpf/nc_parse.h, bpf/nc_decide.h); only the map
 * access differs: in-process tables with the kernel maps' key and value layouts and the
 * kernel's update flags (BPF_ANY, BPF_NOEXIST, BPF_EXIST) and errors (-ENOENT, -EEXIST,
 * -E2BIG). The engine has one CPU slot, so per-CPU values are one value wide.
 *
 * Hash tables use open addressing with linear probing and grow by doubling up to
 * twice their kernel max_entries; the LRU tables evict an arbitrary entry when full
 * (the kernel evicts the least recently used one; both only ever forget state).
 * One mutex per engine serialises every call, so the engine may be shared by threads.
 * It links no libbpf: it builds with the host compiler alone (the fuzzer relies on it).
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nc_common.h"

struct nc_table;
struct nc_engine;

#define NC_MAP_T struct nc_table *
#define NC_M(name) (&eng->name)
#define NC_LOOKUP(m, key) nc_table_lookup((m), (key))
#define NC_INSERT(m, key, value) nc_table_update((m), (key), (value), NC_NOEXIST)
#define NC_NOW_NS() 1 /* never read: the caller fills the clock */
#define NC_ENG_PARAM struct nc_engine *eng,
#define NC_ENG_ARG eng,

#define NC_ANY 0
#define NC_NOEXIST 1
#define NC_EXIST 2

enum nc_table_kind { NC_T_ARRAY, NC_T_HASH, NC_T_LRU };

struct nc_table {
	enum nc_table_kind kind;
	uint32_t key_size;
	uint32_t value_size;
	uint32_t max_entries;
	uint32_t key_off;   /* offsets inside a slot: [state u64][key][value] */
	uint32_t value_off;
	uint32_t slot_size;
	uint32_t capacity;  /* slots (hash) or entries (array) */
	uint32_t count;     /* live entries (hash) */
	uint32_t tombstones;
	uint32_t evict_cursor;
	uint8_t *slots;
};

#define NC_SLOT_EMPTY 0
#define NC_SLOT_FULL 1
#define NC_SLOT_DEAD 2

#define NC_MAP_COUNT_MAX 16 /* >= NC_MAP_COUNT, checked below */

struct nc_engine {
	pthread_mutex_t lock;
	struct nc_table nc_config, nc_stats, nc_allow4, nc_allow6, nc_allow_net4, nc_allow_net6,
		nc_block4, nc_block6, nc_block_net4, nc_block_net6, nc_ranges, nc_port_rule,
		nc_rate_rules, nc_buckets, nc_sources, nc_prefilter;
	struct nc_table *by_id[NC_MAP_COUNT_MAX];
};

static uint32_t nc_align8(uint32_t n)
{
	return (n + 7u) & ~7u;
}

static uint64_t nc_hash(const uint8_t *key, uint32_t size)
{
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a, then a final mix */
	for (uint32_t i = 0; i < size; i++) {
		h ^= key[i];
		h *= 0x100000001b3ull;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return h;
}

static inline uint8_t *nc_slot(const struct nc_table *t, uint32_t i)
{
	return t->slots + (size_t)i * t->slot_size;
}

static int nc_table_init(struct nc_table *t, enum nc_table_kind kind, uint32_t key_size,
			 uint32_t value_size, uint32_t max_entries)
{
	memset(t, 0, sizeof(*t));
	t->kind = kind;
	t->key_size = key_size;
	t->value_size = value_size;
	t->max_entries = max_entries;
	if (kind == NC_T_ARRAY) {
		t->slot_size = nc_align8(value_size);
		t->capacity = max_entries;
	} else {
		t->key_off = 8;
		t->value_off = 8 + nc_align8(key_size);
		t->slot_size = t->value_off + nc_align8(value_size);
		t->capacity = 64;
	}
	t->slots = calloc(t->capacity, t->slot_size);
	return t->slots ? 0 : -ENOMEM;
}

/* the slot holding key, or the first free slot of its probe sequence (*found = 0) */
static uint32_t nc_probe(const struct nc_table *t, const void *key, int *found)
{
	uint32_t mask = t->capacity - 1;
	uint32_t i = (uint32_t)nc_hash(key, t->key_size) & mask;
	uint32_t free_slot = UINT32_MAX;
	for (uint32_t n = 0; n < t->capacity; n++, i = (i + 1) & mask) {
		uint8_t *s = nc_slot(t, i);
		uint64_t state;
		memcpy(&state, s, sizeof(state));
		if (state == NC_SLOT_EMPTY) {
			*found = 0;
			return free_slot != UINT32_MAX ? free_slot : i;
		}
		if (state == NC_SLOT_DEAD) {
			if (free_slot == UINT32_MAX)
				free_slot = i;
			continue;
		}
		if (memcmp(s + t->key_off, key, t->key_size) == 0) {
			*found = 1;
			return i;
		}
	}
	*found = 0;
	return free_slot;
}

static int nc_rehash(struct nc_table *t, uint32_t capacity)
{
	struct nc_table old = *t;
	uint8_t *slots = calloc(capacity, t->slot_size);
	if (!slots)
		return -ENOMEM;
	t->slots = slots;
	t->capacity = capacity;
	t->count = 0;
	t->tombstones = 0;
	for (uint32_t i = 0; i < old.capacity; i++) {
		uint8_t *s = nc_slot(&old, i);
		uint64_t state;
		memcpy(&state, s, sizeof(state));
		if (state != NC_SLOT_FULL)
			continue;
		int found;
		uint32_t j = nc_probe(t, s + old.key_off, &found);
		memcpy(nc_slot(t, j), s, t->slot_size);
		t->count++;
	}
	free(old.slots);
	return 0;
}

static void *nc_table_lookup(struct nc_table *t, const void *key)
{
	if (t->kind == NC_T_ARRAY) {
		uint32_t index;
		memcpy(&index, key, sizeof(index));
		return index < t->max_entries ? nc_slot(t, index) : NULL;
	}
	int found;
	uint32_t i = nc_probe(t, key, &found);
	return found ? nc_slot(t, i) + t->value_off : NULL;
}

static void nc_evict_one(struct nc_table *t)
{
	for (uint32_t n = 0; n < t->capacity; n++) {
		uint32_t i = (t->evict_cursor + n) & (t->capacity - 1);
		uint8_t *s = nc_slot(t, i);
		uint64_t state;
		memcpy(&state, s, sizeof(state));
		if (state == NC_SLOT_FULL) {
			state = NC_SLOT_DEAD;
			memcpy(s, &state, sizeof(state));
			t->count--;
			t->tombstones++;
			t->evict_cursor = i + 1;
			return;
		}
	}
}

static int nc_table_update(struct nc_table *t, const void *key, const void *value, uint64_t flags)
{
	if (flags > NC_EXIST)
		return -EINVAL;
	if (t->kind == NC_T_ARRAY) {
		uint32_t index;
		memcpy(&index, key, sizeof(index));
		if (index >= t->max_entries)
			return -E2BIG;
		if (flags == NC_NOEXIST)
			return -EEXIST;
		memcpy(nc_slot(t, index), value, t->value_size);
		return 0;
	}
	int found;
	uint32_t i = nc_probe(t, key, &found);
	if (found) {
		if (flags == NC_NOEXIST)
			return -EEXIST;
		memcpy(nc_slot(t, i) + t->value_off, value, t->value_size);
		return 0;
	}
	if (flags == NC_EXIST)
		return -ENOENT;
	if (t->count >= t->max_entries) {
		if (t->kind != NC_T_LRU)
			return -E2BIG;
		nc_evict_one(t);
	}
	/* keep the load (live + dead) under one half; a rehash leaves it at most a quarter
	 * live, so a full LRU table (every insert evicts, leaving a tombstone) rehashes once
	 * per capacity/4 inserts, not on every one */
	if ((uint64_t)(t->count + t->tombstones + 1) * 2 > t->capacity) {
		uint32_t capacity = t->capacity;
		while ((uint64_t)(t->count + 1) * 4 > capacity)
			capacity *= 2;
		int err = nc_rehash(t, capacity);
		if (err)
			return err;
	}
	i = nc_probe(t, key, &found);
	uint8_t *s = nc_slot(t, i);
	uint64_t state;
	memcpy(&state, s, sizeof(state));
	if (state == NC_SLOT_DEAD)
		t->tombstones--;
	memset(s, 0, t->slot_size);
	state = NC_SLOT_FULL;
	memcpy(s, &state, sizeof(state));
	memcpy(s + t->key_off, key, t->key_size);
	memcpy(s + t->value_off, value, t->value_size);
	t->count++;
	return 0;
}

static int nc_table_delete(struct nc_table *t, const void *key)
{
	if (t->kind == NC_T_ARRAY)
		return -EINVAL;
	int found;
	uint32_t i = nc_probe(t, key, &found);
	if (!found)
		return -ENOENT;
	uint64_t state = NC_SLOT_DEAD;
	memcpy(nc_slot(t, i), &state, sizeof(state));
	t->count--;
	t->tombstones++;
	return 0;
}

static int nc_table_next_key(struct nc_table *t, const void *key, void *next_key)
{
	uint32_t start = 0;
	if (t->kind == NC_T_ARRAY) {
		uint32_t index = 0;
		if (key) {
			memcpy(&index, key, sizeof(index));
			index = index >= t->max_entries ? 0 : index + 1;
		}
		if (index >= t->max_entries)
			return -ENOENT;
		memcpy(next_key, &index, sizeof(index));
		return 0;
	}
	if (key) {
		int found;
		uint32_t i = nc_probe(t, key, &found);
		start = found ? i + 1 : 0; /* as the kernel: an unknown key restarts */
	}
	for (uint32_t i = start; i < t->capacity; i++) {
		uint8_t *s = nc_slot(t, i);
		uint64_t state;
		memcpy(&state, s, sizeof(state));
		if (state == NC_SLOT_FULL) {
			memcpy(next_key, s + t->key_off, t->key_size);
			return 0;
		}
	}
	return -ENOENT;
}

/* the shared parser and decision, instantiated over the tables above */
#include "nc_decide.h"

#include "netcore.h"

struct nc_engine *nc_engine_new(void)
{
	struct nc_engine *eng = calloc(1, sizeof(*eng));
	if (!eng)
		return NULL;
	int err = 0;
	err |= nc_table_init(&eng->nc_config, NC_T_ARRAY, 4, sizeof(struct nc_config), 1);
	err |= nc_table_init(&eng->nc_stats, NC_T_ARRAY, 4, sizeof(struct nc_counter), NC_R_COUNT);
	err |= nc_table_init(&eng->nc_allow4, NC_T_HASH, 4, sizeof(struct nc_entry), NC_MAX_EXACT);
	err |= nc_table_init(&eng->nc_allow6, NC_T_HASH, 16, sizeof(struct nc_entry), NC_MAX_EXACT);
	err |= nc_table_init(&eng->nc_allow_net4, NC_T_HASH, sizeof(struct nc_net4_key),
			     sizeof(struct nc_entry), NC_MAX_NETS);
	err |= nc_table_init(&eng->nc_allow_net6, NC_T_HASH, sizeof(struct nc_net6_key),
			     sizeof(struct nc_entry), NC_MAX_NETS);
	err |= nc_table_init(&eng->nc_block4, NC_T_HASH, 4, sizeof(struct nc_entry), NC_MAX_EXACT);
	err |= nc_table_init(&eng->nc_block6, NC_T_HASH, 16, sizeof(struct nc_entry), NC_MAX_EXACT);
	err |= nc_table_init(&eng->nc_block_net4, NC_T_HASH, sizeof(struct nc_net4_key),
			     sizeof(struct nc_entry), NC_MAX_NETS);
	err |= nc_table_init(&eng->nc_block_net6, NC_T_HASH, sizeof(struct nc_net6_key),
			     sizeof(struct nc_entry), NC_MAX_NETS);
	err |= nc_table_init(&eng->nc_ranges, NC_T_HASH, sizeof(struct nc_range_key),
			     sizeof(struct nc_range_val), NC_MAX_RANGES);
	err |= nc_table_init(&eng->nc_port_rule, NC_T_ARRAY, 4, 4, 65536);
	err |= nc_table_init(&eng->nc_rate_rules, NC_T_ARRAY, 4, sizeof(struct nc_rate_rule),
			     NC_MAX_RATE_RULES);
	err |= nc_table_init(&eng->nc_buckets, NC_T_LRU, sizeof(struct nc_bucket_key), 8,
			     NC_MAX_BUCKETS);
	err |= nc_table_init(&eng->nc_sources, NC_T_LRU, sizeof(struct nc_source_key),
			     sizeof(struct nc_source_val), NC_MAX_SOURCES);
	err |= nc_table_init(&eng->nc_prefilter, NC_T_ARRAY, 4, 8, 4 * NC_PREFILTER_WORDS);
	struct nc_table *by_id[NC_MAP_COUNT] = {
		[NC_MAP_CONFIG] = &eng->nc_config,         [NC_MAP_STATS] = &eng->nc_stats,
		[NC_MAP_ALLOW4] = &eng->nc_allow4,         [NC_MAP_ALLOW6] = &eng->nc_allow6,
		[NC_MAP_ALLOW_NET4] = &eng->nc_allow_net4, [NC_MAP_ALLOW_NET6] = &eng->nc_allow_net6,
		[NC_MAP_BLOCK4] = &eng->nc_block4,         [NC_MAP_BLOCK6] = &eng->nc_block6,
		[NC_MAP_BLOCK_NET4] = &eng->nc_block_net4, [NC_MAP_BLOCK_NET6] = &eng->nc_block_net6,
		[NC_MAP_RANGES] = &eng->nc_ranges,         [NC_MAP_PORT_RULE] = &eng->nc_port_rule,
		[NC_MAP_RATE_RULES] = &eng->nc_rate_rules, [NC_MAP_BUCKETS] = &eng->nc_buckets,
		[NC_MAP_SOURCES] = &eng->nc_sources,       [NC_MAP_PREFILTER] = &eng->nc_prefilter,
	};
	_Static_assert(NC_MAP_COUNT <= NC_MAP_COUNT_MAX, "raise NC_MAP_COUNT_MAX");
	memcpy(eng->by_id, by_id, sizeof(by_id));
	if (err || pthread_mutex_init(&eng->lock, NULL) != 0) {
		nc_engine_free(eng);
		return NULL;
	}
	return eng;
}

void nc_engine_free(struct nc_engine *eng)
{
	if (!eng)
		return;
	for (int i = 0; i < NC_MAP_COUNT; i++)
		if (eng->by_id[i])
			free(eng->by_id[i]->slots);
	pthread_mutex_destroy(&eng->lock);
	free(eng);
}

static struct nc_table *nc_engine_table(struct nc_engine *eng, int map_id)
{
	return (map_id >= 0 && map_id < NC_MAP_COUNT) ? eng->by_id[map_id] : NULL;
}

int nc_engine_lookup(struct nc_engine *eng, int map_id, const void *key, void *value)
{
	struct nc_table *t = nc_engine_table(eng, map_id);
	if (!t)
		return -EINVAL;
	pthread_mutex_lock(&eng->lock);
	void *v = nc_table_lookup(t, key);
	if (v)
		memcpy(value, v, t->value_size);
	pthread_mutex_unlock(&eng->lock);
	return v ? 0 : -ENOENT;
}

int nc_engine_update(struct nc_engine *eng, int map_id, const void *key, const void *value,
		     uint64_t flags)
{
	struct nc_table *t = nc_engine_table(eng, map_id);
	if (!t)
		return -EINVAL;
	pthread_mutex_lock(&eng->lock);
	int err = nc_table_update(t, key, value, flags);
	pthread_mutex_unlock(&eng->lock);
	return err;
}

int nc_engine_delete(struct nc_engine *eng, int map_id, const void *key)
{
	struct nc_table *t = nc_engine_table(eng, map_id);
	if (!t)
		return -EINVAL;
	pthread_mutex_lock(&eng->lock);
	int err = nc_table_delete(t, key);
	pthread_mutex_unlock(&eng->lock);
	return err;
}

int nc_engine_next_key(struct nc_engine *eng, int map_id, const void *key, void *next_key)
{
	struct nc_table *t = nc_engine_table(eng, map_id);
	if (!t)
		return -EINVAL;
	pthread_mutex_lock(&eng->lock);
	int err = nc_table_next_key(t, key, next_key);
	pthread_mutex_unlock(&eng->lock);
	return err;
}

static int nc_engine_decide_locked(struct nc_engine *eng, const struct nc_pkt *pkt,
				   uint64_t now_ns, uint32_t *reason)
{
	if (!now_ns) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		now_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	}
	struct nc_clock clock = {now_ns ? now_ns : 1};
	int verdict = nc_decide(eng, pkt, &clock, reason);
	nc_account(eng, pkt, *reason, verdict);
	return verdict;
}

int nc_engine_run(struct nc_engine *eng, const void *frame, uint32_t len, uint64_t now_ns)
{
	struct nc_pkt pkt;
	uint32_t reason;
	nc_parse(frame, (const uint8_t *)frame + len, len, &pkt);
	pthread_mutex_lock(&eng->lock);
	int verdict = nc_engine_decide_locked(eng, &pkt, now_ns, &reason);
	pthread_mutex_unlock(&eng->lock);
	return verdict;
}

int nc_engine_check(struct nc_engine *eng, int family, const void *addr, int proto, int dport,
		    uint64_t now_ns, int *reason)
{
	struct nc_pkt pkt;
	uint32_t why;
	if (family != 4 && family != 6)
		return -EINVAL;
	memset(&pkt, 0, sizeof(pkt));
	pkt.family = (uint8_t)family;
	memcpy(pkt.src, addr, family == 4 ? 4 : 16);
	pkt.proto = (uint8_t)proto;
	if ((proto == NC_IPPROTO_TCP || proto == NC_IPPROTO_UDP) && dport > 0 && dport < 65536) {
		pkt.has_ports = 1;
		pkt.dport = (uint16_t)dport;
	}
	pthread_mutex_lock(&eng->lock);
	int verdict = nc_engine_decide_locked(eng, &pkt, now_ns, &why);
	pthread_mutex_unlock(&eng->lock);
	if (reason)
		*reason = (int)why;
	return verdict;
}

void nc_parse_frame(const void *frame, uint32_t len, struct nc_pkt *out)
{
	nc_parse(frame, (const uint8_t *)frame + len, len, out);
}
