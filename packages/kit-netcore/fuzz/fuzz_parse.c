// SPDX-License-Identifier: MIT
/*
 * fuzz_parse.c: a libFuzzer target over the userspace parser and decision.
 *
 * Build (tests/test_fuzz.py does this):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
 *         -Ibpf -Icsrc fuzz/fuzz_parse.c csrc/engine.c -lpthread -o fuzz_parse
 *
 * Every input is one Ethernet frame. It goes through nc_parse (the header, as the XDP
 * program compiles it), nc_parse_frame (the engine's export) and nc_engine_run on two
 * engines loaded with a handful of rules: one passing malformed frames, one dropping them
 * and tracking sources. libFuzzer hands over an exact-sized heap buffer, so AddressSanitizer
 * catches any read past the frame; the invariants below abort on a wrong result.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nc_common.h"
#include "nc_parse.h"
#include "netcore.h"

#define CHECK(cond)                                                                    \
	do {                                                                           \
		if (!(cond)) {                                                         \
			fprintf(stderr, "invariant failed: %s (%s:%d)\n", #cond, __FILE__, \
				__LINE__);                                             \
			abort();                                                       \
		}                                                                      \
	} while (0)

static struct nc_engine *eng_pass; /* malformed frames pass */
static struct nc_engine *eng_drop; /* malformed frames are dropped, sources tracked */
static uint64_t fake_now = 1000000000ull;

static void put(struct nc_engine *eng, int map, const void *key, const void *value)
{
	CHECK(nc_engine_update(eng, map, key, value, 0) == 0);
}

static struct nc_entry entry(uint32_t origin_len, uint64_t expires_ns)
{
	struct nc_entry e;
	memset(&e, 0, sizeof(e));
	e.expires_ns = expires_ns;
	e.origin_len = origin_len;
	return e;
}

static void v4(const char *dotted, uint8_t out[4])
{
	unsigned a, b, c, d;
	CHECK(sscanf(dotted, "%u.%u.%u.%u", &a, &b, &c, &d) == 4);
	out[0] = (uint8_t)a;
	out[1] = (uint8_t)b;
	out[2] = (uint8_t)c;
	out[3] = (uint8_t)d;
}

static void put_exact4(struct nc_engine *eng, int map, const char *dotted, uint64_t expires)
{
	uint8_t key[4];
	struct nc_entry e = entry(32, expires);
	v4(dotted, key);
	put(eng, map, key, &e);
}

static void put_net4(struct nc_engine *eng, int map, const char *dotted, uint32_t stride,
		     uint32_t origin)
{
	struct nc_net4_key k;
	struct nc_entry e = entry(origin, 0);
	memset(&k, 0, sizeof(k));
	k.prefixlen = stride;
	v4(dotted, (uint8_t *)&k.addr);
	put(eng, map, &k, &e);
}

static void put_net6(struct nc_engine *eng, int map, const uint8_t addr[16], uint32_t stride,
		     uint32_t origin)
{
	struct nc_net6_key k;
	struct nc_entry e = entry(origin, 0);
	memset(&k, 0, sizeof(k));
	k.prefixlen = stride;
	memcpy(k.addr, addr, stride / 8);
	put(eng, map, &k, &e);
}

static void load_rules(struct nc_engine *eng, uint32_t flags)
{
	uint32_t zero = 0;
	struct nc_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.flags = flags;
	cfg.all_rule = 2;
	cfg.allow_mask4 = 1u | (1u << 3);
	cfg.block_mask4 = 1u | (1u << 1) | (1u << 3) | (1u << 4);
	cfg.allow_mask6 = 1u;
	cfg.block_mask6 = 1u | (1u << 8) | (1u << 16);
	put(eng, NC_MAP_CONFIG, &zero, &cfg);
	/* every prefilter bit set: the lists are always probed */
	uint64_t all = ~0ull;
	for (uint32_t word = 0; word < 4 * NC_PREFILTER_WORDS; word++)
		put(eng, NC_MAP_PREFILTER, &word, &all);

	/* allow: 192.0.2.0/24 and 198.51.100.7 */
	put_net4(eng, NC_MAP_ALLOW_NET4, "192.0.2.0", 24, 24);
	put_exact4(eng, NC_MAP_ALLOW4, "198.51.100.7", 0);
	/* block: singles (one already expired), 10.0.0.0/7, 172.16.0.0/23, 100.64.0.0/31 */
	put_exact4(eng, NC_MAP_BLOCK4, "203.0.113.7", 0);
	put_exact4(eng, NC_MAP_BLOCK4, "203.0.113.50", 1);
	put_net4(eng, NC_MAP_BLOCK_NET4, "10.0.0.0", 8, 7);
	put_net4(eng, NC_MAP_BLOCK_NET4, "11.0.0.0", 8, 7);
	put_net4(eng, NC_MAP_BLOCK_NET4, "172.16.0.0", 24, 23);
	put_net4(eng, NC_MAP_BLOCK_NET4, "172.16.1.0", 24, 23);
	put_net4(eng, NC_MAP_BLOCK_NET4, "100.64.0.0", 32, 31);
	put_net4(eng, NC_MAP_BLOCK_NET4, "100.64.0.1", 32, 31);

	/* IPv6: allow 2001:db8:aaaa::1; block 2001:db8:ffff::7, 2001:db8:1::/64, fd00::/127 */
	uint8_t a6[16] = {0x20, 0x01, 0x0d, 0xb8, 0xaa, 0xaa};
	a6[15] = 1;
	struct nc_entry e = entry(128, 0);
	put(eng, NC_MAP_ALLOW6, a6, &e);
	uint8_t b6[16] = {0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff};
	b6[15] = 7;
	put(eng, NC_MAP_BLOCK6, b6, &e);
	uint8_t n64[16] = {0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01};
	put_net6(eng, NC_MAP_BLOCK_NET6, n64, 64, 64);
	uint8_t n127[16] = {0xfd};
	put_net6(eng, NC_MAP_BLOCK_NET6, n127, 128, 127);
	n127[15] = 1;
	put_net6(eng, NC_MAP_BLOCK_NET6, n127, 128, 127);

	/* rate: rule 1 (0.001 pps, burst 3) on ports 53 and 443; rule 2 (burst 5) for all */
	struct nc_rate_rule r;
	memset(&r, 0, sizeof(r));
	r.interval_ns = 1000000000000ull;
	r.tolerance_ns = 2 * r.interval_ns;
	uint32_t one = 1, two = 2, port;
	put(eng, NC_MAP_RATE_RULES, &one, &r);
	r.tolerance_ns = 4 * r.interval_ns;
	put(eng, NC_MAP_RATE_RULES, &two, &r);
	port = 53;
	put(eng, NC_MAP_PORT_RULE, &port, &one);
	port = 443;
	put(eng, NC_MAP_PORT_RULE, &port, &one);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	eng_pass = nc_engine_new();
	eng_drop = nc_engine_new();
	CHECK(eng_pass && eng_drop);
	load_rules(eng_pass, 0);
	load_rules(eng_drop, NC_F_DROP_MALFORMED | NC_F_TRACK_SOURCES);
	return 0;
}

static uint64_t total_packets(struct nc_engine *eng)
{
	uint64_t total = 0;
	for (uint32_t reason = 0; reason < NC_R_COUNT; reason++) {
		struct nc_counter c;
		CHECK(nc_engine_lookup(eng, NC_MAP_STATS, &reason, &c) == 0);
		total += c.packets;
	}
	return total;
}

/* where the IP header starts, following the parser's VLAN rule (only for parsed IP) */
static size_t ip_offset(const uint8_t *data, size_t size)
{
	size_t off = 14;
	uint32_t ethertype = nc_be16(data + 12);
	while ((ethertype == 0x8100 || ethertype == 0x88A8) && off + 4 <= size) {
		ethertype = nc_be16(data + off + 2);
		off += 4;
	}
	return off;
}

static void check_parse(const uint8_t *data, size_t size, const struct nc_pkt *p)
{
	CHECK(p->len == size);
	CHECK(p->malformed <= 1 && p->control <= 1 && p->has_ports <= 1 && p->fragment <= 1);
	if (p->malformed)
		return;
	CHECK(size >= 14);
	CHECK(p->family == 0 || p->family == 4 || p->family == 6);
	if (p->family == 0) {
		CHECK(p->control == 1 && p->proto == 0 && !p->has_ports && !p->fragment);
		return;
	}
	size_t off = ip_offset(data, size);
	if (p->has_ports)
		CHECK((p->proto == 6 || p->proto == 17) && !p->fragment);
	if (p->fragment)
		CHECK(!p->has_ports && !p->control);
	if (p->control)
		CHECK(p->family == 6 && p->proto == 58);
	if (p->family == 4) {
		CHECK(off + 20 <= size && (data[off] >> 4) == 4);
		CHECK(memcmp(p->src, data + off + 12, 4) == 0);
		for (int i = 4; i < 16; i++)
			CHECK(p->src[i] == 0);
		CHECK(p->fragment == ((nc_be16(data + off + 6) & 0x1FFF) != 0));
		if (!p->fragment)
			CHECK(p->proto == data[off + 9]);
		if (p->has_ports && (data[off] & 0x0F) == 5) {
			CHECK(p->sport == nc_be16(data + off + 20));
			CHECK(p->dport == nc_be16(data + off + 22));
		}
	} else {
		CHECK(off + 40 <= size && (data[off] >> 4) == 6);
		CHECK(memcmp(p->src, data + off + 8, 16) == 0);
		if (p->has_ports && data[off + 6] == p->proto) { /* no extension header */
			CHECK(p->sport == nc_be16(data + off + 40));
			CHECK(p->dport == nc_be16(data + off + 42));
		}
	}
}

static void check_run(struct nc_engine *eng, const uint8_t *data, size_t size,
		      const struct nc_pkt *p, int drop_malformed)
{
	uint64_t before = total_packets(eng);
	int verdict = nc_engine_run(eng, data, (uint32_t)size, fake_now);
	CHECK(verdict == NC_XDP_PASS || verdict == NC_XDP_DROP);
	CHECK(total_packets(eng) == before + 1);
	if (p->malformed)
		CHECK(verdict == (drop_malformed ? NC_XDP_DROP : NC_XDP_PASS));
	else if (p->control || p->family == 0)
		CHECK(verdict == NC_XDP_PASS);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 65535)
		return -1; /* the kernel never hands over more than a page or so */
	fake_now += 1 + (uint64_t)size * 1000003u;

	struct nc_pkt a, b, c;
	memset(&a, 0x00, sizeof(a));
	memset(&b, 0xFF, sizeof(b));
	memset(&c, 0xA5, sizeof(c));
	nc_parse_frame(data, (uint32_t)size, &a);
	nc_parse_frame(data, (uint32_t)size, &b);
	nc_parse(data, data + size, (uint32_t)size, &c);
	/* whatever was in the output before, every byte is rewritten the same way */
	CHECK(memcmp(&a, &b, sizeof(a)) == 0);
	CHECK(memcmp(&a, &c, sizeof(a)) == 0);
	check_parse(data, size, &a);

	check_run(eng_pass, data, size, &a, 0);
	check_run(eng_drop, data, size, &a, 1);

	/* the request path: an address and port taken from the input */
	if (size >= 20) {
		int family = (data[0] & 1) ? 6 : 4;
		int proto = data[1] % 3 == 0 ? 6 : data[1] % 3 == 1 ? 17 : data[1];
		int dport = (int)nc_be16(data + 2);
		int reason = -1;
		int verdict = nc_engine_check(eng_pass, family, data + 4, proto, dport, fake_now,
					      &reason);
		CHECK(verdict == NC_XDP_PASS || verdict == NC_XDP_DROP);
		CHECK(reason >= NC_R_PASS && reason <= NC_R_RATE);
		CHECK((verdict == NC_XDP_DROP) == (reason == NC_R_BLOCK || reason == NC_R_RATE));
	}
	return 0;
}
