/* SPDX-License-Identifier: MIT */
/*
 * trafficgen.c: a small UDP traffic generator for kit-netcore's veth tests and benchmarks.
 *
 * It writes whole Ethernet frames (optionally 802.1Q tagged) carrying IPv4 or IPv6 UDP
 * datagrams on an AF_PACKET raw socket, so the source address can be anything: sources
 * cycle over the --src list, and a CIDR walks its addresses in order (198.51.100.0/24 as
 * .0, .1, ... .255, .0, ...), which makes the packets per source predictable.
 *
 *   trafficgen -i IFNAME --dst-mac MAC --dst-ip IP --dport PORT --src ADDR[/LEN][,...]
 *              [--src ...] [--count N | --seconds S] [--sport PORT] [--src-mac MAC]
 *              [--payload BYTES] [--vlan ID] [--batch N] [--no-qdisc-bypass]
 *
 * Prints one JSON line: {"sent": N, "seconds": S, "pps": P, "retries": R, "family": 4|6}.
 *
 * "sent" counts frames the kernel accepted. On a veth the peer's receive ring can be full
 * (the receiver is XDP in NAPI mode and has not polled yet); veth then drops the frame and
 * the send fails with ENOBUFS, so the generator retries that frame (counted in "retries")
 * instead of losing it. Every frame counted in "sent" therefore reached the receiver.
 *
 * Build: cc -O2 -Wall -o trafficgen trafficgen.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SOURCES 4096
#define MAX_BATCH 1024
#define MAX_PAYLOAD 1400
#define FRAME_MAX (14 + 4 + 40 + 8 + MAX_PAYLOAD)

struct source {
	uint8_t base[16]; /* network order; IPv4 in base[0..3] */
	uint64_t size;    /* addresses in the range, capped at 2^63 (0 = 2^64 wrap) */
	uint64_t next;    /* next offset to use */
};

static struct source sources[MAX_SOURCES];
static int nsources;
static int family; /* 4 or 6, from --dst-ip */

static void die(const char *msg)
{
	fprintf(stderr, "trafficgen: %s\n", msg);
	exit(2);
}

static void die_errno(const char *what)
{
	fprintf(stderr, "trafficgen: %s: %s\n", what, strerror(errno));
	exit(2);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int parse_mac(const char *s, uint8_t mac[6])
{
	unsigned int b[6];
	if (sscanf(s, "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != 6)
		return -1;
	for (int i = 0; i < 6; i++) {
		if (b[i] > 255)
			return -1;
		mac[i] = (uint8_t)b[i];
	}
	return 0;
}

/* "a.b.c.d", "a.b.c.d/len", "x::y", "x::y/len" -> family (4/6) and the masked base */
static int parse_addr(const char *text, uint8_t out[16], int *len_out)
{
	char buf[128];
	char *slash;
	int fam, len, maxlen;

	if (strlen(text) >= sizeof(buf))
		return -1;
	strcpy(buf, text);
	slash = strchr(buf, '/');
	if (slash)
		*slash = '\0';
	memset(out, 0, 16);
	if (inet_pton(AF_INET, buf, out) == 1) {
		fam = 4;
		maxlen = 32;
	} else if (inet_pton(AF_INET6, buf, out) == 1) {
		fam = 6;
		maxlen = 128;
	} else {
		return -1;
	}
	len = maxlen;
	if (slash) {
		char *end;
		long v = strtol(slash + 1, &end, 10);
		if (*end || end == slash + 1 || v < 0 || v > maxlen)
			return -1;
		len = (int)v;
	}
	for (int bit = len; bit < maxlen; bit++) /* mask host bits */
		out[bit / 8] &= (uint8_t)~(0x80u >> (bit % 8));
	*len_out = len;
	return fam;
}

static void add_sources(const char *list)
{
	char *copy = strdup(list), *save = NULL;
	if (!copy)
		die("out of memory");
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		struct source *s;
		int len, fam, host_bits;

		if (!*tok)
			continue;
		if (nsources == MAX_SOURCES)
			die("too many --src entries");
		s = &sources[nsources];
		fam = parse_addr(tok, s->base, &len);
		if (fam < 0) {
			fprintf(stderr, "trafficgen: bad source address %s\n", tok);
			exit(2);
		}
		if (family && fam != family)
			die("every --src must have the family of --dst-ip");
		family = fam;
		host_bits = (fam == 4 ? 32 : 128) - len;
		s->size = host_bits >= 63 ? (1ULL << 63) : (1ULL << host_bits);
		s->next = 0;
		nsources++;
	}
	free(copy);
}

/* write base + offset (offset in the low 64 bits of the address) into dst */
static void source_addr(const struct source *s, uint64_t offset, uint8_t *dst)
{
	int n = family == 4 ? 4 : 16;
	uint64_t carry = offset;
	memcpy(dst, s->base, (size_t)n);
	for (int i = n - 1; i >= 0 && carry; i--) {
		uint64_t v = (uint64_t)dst[i] + (carry & 0xff);
		dst[i] = (uint8_t)v;
		carry = (carry >> 8) + (v >> 8);
	}
}

static uint32_t sum16(const uint8_t *p, size_t n, uint32_t acc)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		acc += (uint32_t)((p[i] << 8) | p[i + 1]);
	if (n & 1)
		acc += (uint32_t)(p[n - 1] << 8);
	return acc;
}

static uint16_t fold(uint32_t acc)
{
	while (acc >> 16)
		acc = (acc & 0xffff) + (acc >> 16);
	return (uint16_t)acc;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: trafficgen -i IFNAME --dst-mac MAC --dst-ip IP --dport PORT\n"
		"                  --src ADDR[/LEN][,...] [--src ...] [--count N | --seconds S]\n"
		"                  [--sport PORT] [--src-mac MAC] [--payload BYTES] [--vlan ID]\n"
		"                  [--batch N] [--no-qdisc-bypass]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"ifname", required_argument, NULL, 'i'},
		{"dst-mac", required_argument, NULL, 'M'},
		{"src-mac", required_argument, NULL, 'm'},
		{"dst-ip", required_argument, NULL, 'd'},
		{"dport", required_argument, NULL, 'p'},
		{"sport", required_argument, NULL, 'P'},
		{"src", required_argument, NULL, 's'},
		{"count", required_argument, NULL, 'c'},
		{"seconds", required_argument, NULL, 't'},
		{"payload", required_argument, NULL, 'l'},
		{"vlan", required_argument, NULL, 'v'},
		{"batch", required_argument, NULL, 'b'},
		{"no-qdisc-bypass", no_argument, NULL, 'Q'},
		{NULL, 0, NULL, 0},
	};
	const char *ifname = NULL, *dst_ip_text = NULL;
	const char *src_lists[MAX_SOURCES];
	int nsrc_lists = 0;
	uint8_t dst_mac[6], src_mac[6], dst_ip[16];
	int have_dst_mac = 0, have_src_mac = 0, qdisc_bypass = 1;
	long dport = -1, sport = 9, payload = -1, vlan = -1, batch = 64;
	unsigned long long count = 0;
	double seconds = 0;
	int opt;

	while ((opt = getopt_long(argc, argv, "i:", opts, NULL)) != -1) {
		switch (opt) {
		case 'i': ifname = optarg; break;
		case 'M':
			if (parse_mac(optarg, dst_mac))
				die("bad --dst-mac");
			have_dst_mac = 1;
			break;
		case 'm':
			if (parse_mac(optarg, src_mac))
				die("bad --src-mac");
			have_src_mac = 1;
			break;
		case 'd': dst_ip_text = optarg; break;
		case 'p': dport = strtol(optarg, NULL, 10); break;
		case 'P': sport = strtol(optarg, NULL, 10); break;
		case 's':
			if (nsrc_lists == MAX_SOURCES)
				die("too many --src options");
			src_lists[nsrc_lists++] = optarg;
			break;
		case 'c': count = strtoull(optarg, NULL, 10); break;
		case 't': seconds = strtod(optarg, NULL); break;
		case 'l': payload = strtol(optarg, NULL, 10); break;
		case 'v': vlan = strtol(optarg, NULL, 10); break;
		case 'b': batch = strtol(optarg, NULL, 10); break;
		case 'Q': qdisc_bypass = 0; break;
		default: usage();
		}
	}
	if (optind != argc || !ifname || !have_dst_mac || !dst_ip_text || nsrc_lists == 0)
		usage();
	if (dport < 0 || dport > 65535 || sport < 0 || sport > 65535)
		die("ports must be 0..65535");
	if ((count == 0) == (seconds <= 0))
		die("give exactly one of --count N (N > 0) or --seconds S (S > 0)");
	if (vlan > 4095 || batch < 1 || batch > MAX_BATCH)
		die("--vlan must be 0..4095 and --batch 1..1024");

	{
		int len;
		family = parse_addr(dst_ip_text, dst_ip, &len);
		if (family < 0 || len != (family == 4 ? 32 : 128))
			die("bad --dst-ip (one address, no prefix)");
	}
	for (int i = 0; i < nsrc_lists; i++)
		add_sources(src_lists[i]);
	if (payload < 0) /* the smallest frame: 64 bytes on the wire with the FCS for IPv4 */
		payload = family == 4 ? 18 : 8;
	if (payload > MAX_PAYLOAD)
		die("--payload is at most 1400");

	int fd = socket(AF_PACKET, SOCK_RAW, 0); /* protocol 0: this socket receives nothing */
	if (fd < 0)
		die_errno("socket(AF_PACKET)");
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	if (strlen(ifname) >= IFNAMSIZ)
		die("interface name too long");
	strcpy(ifr.ifr_name, ifname);
	if (ioctl(fd, SIOCGIFINDEX, &ifr) < 0)
		die_errno(ifname);
	int ifindex = ifr.ifr_ifindex;
	if (!have_src_mac) {
		if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0)
			die_errno("SIOCGIFHWADDR");
		memcpy(src_mac, ifr.ifr_hwaddr.sa_data, 6);
	}
	struct sockaddr_ll sll;
	memset(&sll, 0, sizeof(sll));
	sll.sll_family = AF_PACKET;
	sll.sll_ifindex = ifindex;
	sll.sll_halen = 6;
	memcpy(sll.sll_addr, dst_mac, 6);
	if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0)
		die_errno("bind");
	if (qdisc_bypass) {
		int one = 1;
		/* straight to the driver (veth_xmit); harmless to lose on old kernels */
		(void)setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one));
	}

	/* ---- the frame template */
	uint8_t tmpl[FRAME_MAX];
	size_t off = 0, l3, l4, frame_len;
	memset(tmpl, 0, sizeof(tmpl));
	memcpy(tmpl, dst_mac, 6);
	memcpy(tmpl + 6, src_mac, 6);
	off = 12;
	if (vlan >= 0) {
		tmpl[off++] = 0x81;
		tmpl[off++] = 0x00;
		tmpl[off++] = (uint8_t)(vlan >> 8);
		tmpl[off++] = (uint8_t)vlan;
	}
	tmpl[off++] = family == 4 ? 0x08 : 0x86;
	tmpl[off++] = family == 4 ? 0x00 : 0xdd;
	l3 = off;
	size_t udp_len = 8 + (size_t)payload;
	if (family == 4) {
		uint8_t *ip = tmpl + l3;
		size_t tot = 20 + udp_len;
		ip[0] = 0x45;
		ip[2] = (uint8_t)(tot >> 8);
		ip[3] = (uint8_t)tot;
		ip[6] = 0x40; /* DF */
		ip[8] = 64;   /* TTL */
		ip[9] = IPPROTO_UDP;
		memcpy(ip + 16, dst_ip, 4);
		l4 = l3 + 20;
	} else {
		uint8_t *ip = tmpl + l3;
		ip[0] = 0x60;
		ip[4] = (uint8_t)(udp_len >> 8);
		ip[5] = (uint8_t)udp_len;
		ip[6] = IPPROTO_UDP;
		ip[7] = 64; /* hop limit */
		memcpy(ip + 24, dst_ip, 16);
		l4 = l3 + 40;
	}
	{
		uint8_t *udp = tmpl + l4;
		udp[0] = (uint8_t)(sport >> 8);
		udp[1] = (uint8_t)sport;
		udp[2] = (uint8_t)(dport >> 8);
		udp[3] = (uint8_t)dport;
		udp[4] = (uint8_t)(udp_len >> 8);
		udp[5] = (uint8_t)udp_len;
		for (long i = 0; i < payload; i++)
			udp[8 + i] = (uint8_t)('a' + i % 26);
	}
	frame_len = l4 + udp_len;
	/* checksum parts that do not depend on the source address */
	uint32_t udp_fixed = sum16(tmpl + l4, udp_len, 0);
	udp_fixed = sum16(dst_ip, family == 4 ? 4 : 16, udp_fixed);
	udp_fixed += IPPROTO_UDP + (uint32_t)udp_len;

	/* ---- the batch buffers */
	uint8_t *frames = malloc((size_t)batch * FRAME_MAX);
	struct mmsghdr *msgs = calloc((size_t)batch, sizeof(*msgs));
	struct iovec *iovs = calloc((size_t)batch, sizeof(*iovs));
	if (!frames || !msgs || !iovs)
		die("out of memory");
	for (long i = 0; i < batch; i++) {
		memcpy(frames + i * FRAME_MAX, tmpl, frame_len);
		iovs[i].iov_base = frames + i * FRAME_MAX;
		iovs[i].iov_len = frame_len;
		msgs[i].msg_hdr.msg_iov = &iovs[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}

	unsigned long long sent = 0, retries = 0;
	int cursor = 0; /* next source slot */
	double start = now_s(), deadline = start + seconds, end;
	for (;;) {
		long n = batch;
		if (count) {
			if (sent >= count)
				break;
			if ((unsigned long long)n > count - sent)
				n = (long)(count - sent);
		} else if (now_s() >= deadline) {
			break;
		}
		for (long i = 0; i < n; i++) { /* stamp the source address and checksums */
			uint8_t *f = frames + i * FRAME_MAX;
			struct source *s = &sources[cursor];
			uint8_t addr[16];
			uint32_t acc;
			uint16_t csum;

			source_addr(s, s->next, addr);
			s->next = s->size ? (s->next + 1) % s->size : s->next + 1;
			if (++cursor == nsources)
				cursor = 0;
			if (family == 4) {
				uint8_t *ip = f + l3;
				memcpy(ip + 12, addr, 4);
				ip[10] = ip[11] = 0;
				csum = (uint16_t)~fold(sum16(ip, 20, 0));
				ip[10] = (uint8_t)(csum >> 8);
				ip[11] = (uint8_t)csum;
				acc = sum16(addr, 4, udp_fixed);
			} else {
				memcpy(f + l3 + 8, addr, 16);
				acc = sum16(addr, 16, udp_fixed);
			}
			csum = (uint16_t)~fold(acc);
			if (csum == 0)
				csum = 0xffff;
			f[l4 + 6] = (uint8_t)(csum >> 8);
			f[l4 + 7] = (uint8_t)csum;
		}
		long done = 0;
		while (done < n) {
			int r = sendmmsg(fd, msgs + done, (unsigned int)(n - done), 0);
			if (r > 0) {
				done += r;
				continue;
			}
			if (r < 0 && (errno == ENOBUFS || errno == EAGAIN || errno == EINTR)) {
				retries++; /* the receiver's ring is full: let it drain, send again */
				sched_yield();
				continue;
			}
			die_errno("sendmmsg");
		}
		sent += (unsigned long long)n;
	}
	end = now_s();
	close(fd);
	double elapsed = end - start;
	printf("{\"sent\": %llu, \"seconds\": %.6f, \"pps\": %.1f, \"retries\": %llu, "
	       "\"family\": %d}\n",
	       sent, elapsed, elapsed > 0 ? (double)sent / elapsed : 0.0, retries, family);
	return 0;
}
