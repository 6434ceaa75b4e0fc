/* SPDX-License-Identifier: MIT */
/*
 * netcore.c: the control half of netcore.h over libbpf 1.1 (Debian bookworm's libbpf1).
 *
 * Only libbpf API of version <= 1.1 is used (libbpf.map): bpf_obj_get_info_by_fd, not the
 * 1.2 bpf_prog_get_info_by_fd. Option structs are filled by hand with .sz set, as
 * LIBBPF_OPTS would. libbpf 1.x returns -errno from int calls and NULL + errno from
 * pointer calls; every nc_* call passes on a negative errno.
 *
 * libbpf's warnings and info messages (KIT_NETCORE_DEBUG=1 also echoes every message,
 * debug included, to stderr) go to a per-thread buffer that nc_last_error() returns. The
 * control calls (load, obj_get, prog_id, attach, detach, query, test_run) clear it first,
 * so after one fails it holds what that call printed; the map calls print nothing. A very long message (a verifier log) keeps its tail, where the
 * verifier says what it rejected.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>

#include "netcore.h"

#define NC_PROG_NAME "kit_shield" /* preferred program; else the object's first */
#define NC_PROG_PIN "prog"
#define NC_PROG_PIN_NEW "prog_new" /* bpffs refuses names with a dot */
#define NC_ERR_CAP 16384
#define NC_TEST_RUN_PAD 512 /* data_out room beyond the input (older kernels ignore size) */
#define NC_EINTR_TRIES 64

/* ------------------------------------------------------------------ diagnostics */

static __thread char nc_err[NC_ERR_CAP];
static __thread size_t nc_err_len;
static int nc_debug;

static void nc_err_clear(void)
{
	nc_err_len = 0;
	nc_err[0] = '\0';
}

/* append, keeping the last NC_ERR_CAP - 1 bytes */
static void nc_err_append(const char *s, size_t n)
{
	const size_t cap = NC_ERR_CAP - 1;

	if (n >= cap) {
		memcpy(nc_err, s + (n - cap), cap);
		nc_err_len = cap;
	} else {
		if (nc_err_len + n > cap) {
			size_t drop = nc_err_len + n - cap;

			memmove(nc_err, nc_err + drop, nc_err_len - drop);
			nc_err_len -= drop;
		}
		memcpy(nc_err + nc_err_len, s, n);
		nc_err_len += n;
	}
	nc_err[nc_err_len] = '\0';
}

static void nc_err_vappend(const char *fmt, va_list ap)
{
	char small[512];
	va_list copy;
	int n;

	va_copy(copy, ap);
	n = vsnprintf(small, sizeof(small), fmt, copy);
	va_end(copy);
	if (n < 0)
		return;
	if ((size_t)n < sizeof(small)) {
		nc_err_append(small, (size_t)n);
		return;
	}
	char *big = malloc((size_t)n + 1);
	if (!big) {
		nc_err_append(small, sizeof(small) - 1);
		return;
	}
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	nc_err_append(big, (size_t)n);
	free(big);
}

/* our own context line, libbpf style */
static void nc_errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void nc_errorf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	nc_err_vappend(fmt, ap);
	va_end(ap);
}

static int nc_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (nc_debug) {
		va_list copy;

		va_copy(copy, ap);
		vfprintf(stderr, fmt, copy);
		va_end(copy);
	}
	if (level != LIBBPF_DEBUG)
		nc_err_vappend(fmt, ap);
	return 0;
}

__attribute__((constructor)) static void nc_init(void)
{
	const char *debug = getenv("KIT_NETCORE_DEBUG");

	nc_debug = debug && *debug && strcmp(debug, "0") != 0;
	libbpf_set_print(nc_print);
}

const char *nc_last_error(void)
{
	return nc_err;
}

int nc_num_possible_cpus(void)
{
	return libbpf_num_possible_cpus();
}

uint64_t nc_monotonic_ns(void)
{
	struct timespec ts;

	/* the clock of bpf_ktime_get_ns() */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------------ loading */

static const char *const nc_map_names[NC_MAP_COUNT] = {
	[NC_MAP_CONFIG] = "nc_config",
	[NC_MAP_STATS] = "nc_stats",
	[NC_MAP_ALLOW4] = "nc_allow4",
	[NC_MAP_ALLOW6] = "nc_allow6",
	[NC_MAP_ALLOW_NET4] = "nc_allow_net4",
	[NC_MAP_ALLOW_NET6] = "nc_allow_net6",
	[NC_MAP_BLOCK4] = "nc_block4",
	[NC_MAP_BLOCK6] = "nc_block6",
	[NC_MAP_BLOCK_NET4] = "nc_block_net4",
	[NC_MAP_BLOCK_NET6] = "nc_block_net6",
	[NC_MAP_RANGES] = "nc_ranges",
	[NC_MAP_PORT_RULE] = "nc_port_rule",
	[NC_MAP_RATE_RULES] = "nc_rate_rules",
	[NC_MAP_BUCKETS] = "nc_buckets",
	[NC_MAP_SOURCES] = "nc_sources",
	[NC_MAP_PREFILTER] = "nc_prefilter",
};

const char *nc_map_name(int map_id)
{
	if (map_id < 0 || map_id >= NC_MAP_COUNT)
		return NULL;
	return nc_map_names[map_id];
}

static int nc_join(char *buf, size_t cap, const char *dir, const char *name)
{
	int n = snprintf(buf, cap, "%s/%s", dir, name);

	if (n < 0 || (size_t)n >= cap) {
		nc_errorf("kit_netcore: path too long: %s/%s\n", dir, name);
		return -ENAMETOOLONG;
	}
	return 0;
}

/* mkdir -p (mode 0700, as libbpf makes pin directories) */
static int nc_mkdir_p(const char *path)
{
	char buf[4096];
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	while (len > 1 && buf[len - 1] == '/')
		buf[--len] = '\0';
	for (char *p = buf + 1;; p++) {
		if (*p == '/' || *p == '\0') {
			char saved = *p;

			*p = '\0';
			if (mkdir(buf, 0700) != 0 && errno != EEXIST) {
				int err = -errno;

				nc_errorf("kit_netcore: mkdir %s: %s\n", buf, strerror(-err));
				return err;
			}
			*p = saved;
			if (saved == '\0')
				break;
		}
	}
	struct stat st;
	if (stat(buf, &st) != 0)
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

/* pin prog at dir/prog, replacing an older pin atomically (rename on bpffs) */
static int nc_pin_prog(struct bpf_program *prog, const char *dir)
{
	char final[4096], fresh[4096];
	int err;

	if ((err = nc_join(final, sizeof(final), dir, NC_PROG_PIN)) ||
	    (err = nc_join(fresh, sizeof(fresh), dir, NC_PROG_PIN_NEW)))
		return err;
	unlink(fresh); /* left over by an interrupted load */
	err = bpf_program__pin(prog, fresh);
	if (err)
		return err;
	if (rename(fresh, final) == 0)
		return 0;
	/* a filesystem without rename: unpin the old one first */
	unlink(fresh);
	if (unlink(final) != 0 && errno != ENOENT) {
		err = -errno;
		nc_errorf("kit_netcore: unlink %s: %s\n", final, strerror(-err));
		return err;
	}
	return bpf_program__pin(prog, final);
}

int nc_load(const char *obj_path, const char *pin_dir)
{
	struct bpf_object *obj;
	struct bpf_program *prog;
	struct bpf_map *map;
	char path[4096];
	int err, fd = -1;

	nc_err_clear();
	if (!obj_path || !pin_dir || !*pin_dir)
		return -EINVAL;
	err = nc_mkdir_p(pin_dir);
	if (err)
		return err;

	obj = bpf_object__open_file(obj_path, NULL);
	if (!obj) {
		err = errno ? -errno : -EINVAL;
		nc_errorf("kit_netcore: cannot open %s: %s\n", obj_path, strerror(-err));
		return err;
	}
	/* every map the program declares is pinned as pin_dir/<name>: libbpf reuses a
	 * compatible pinned map at load and pins the ones it creates; the internal maps
	 * (.rodata, .bss) belong to this load only */
	bpf_object__for_each_map(map, obj) {
		if (bpf_map__is_internal(map))
			continue;
		err = nc_join(path, sizeof(path), pin_dir, bpf_map__name(map));
		if (!err)
			err = bpf_map__set_pin_path(map, path);
		if (err)
			goto out;
	}
	err = bpf_object__load(obj);
	if (err) {
		nc_errorf("kit_netcore: cannot load %s: %s\n", obj_path, strerror(-err));
		goto out;
	}
	prog = bpf_object__find_program_by_name(obj, NC_PROG_NAME);
	if (!prog)
		prog = bpf_object__next_program(obj, NULL);
	if (!prog) {
		err = -ENOENT;
		nc_errorf("kit_netcore: %s holds no program\n", obj_path);
		goto out;
	}
	err = nc_pin_prog(prog, pin_dir);
	if (err) {
		nc_errorf("kit_netcore: cannot pin the program in %s: %s\n", pin_dir,
			  strerror(-err));
		goto out;
	}
	/* our own fd: the object (and its fds) is closed below, the pin keeps it loaded */
	fd = fcntl(bpf_program__fd(prog), F_DUPFD_CLOEXEC, 3);
	if (fd < 0)
		err = -errno;
out:
	bpf_object__close(obj);
	return err ? err : fd;
}

int nc_obj_get(const char *path)
{
	nc_err_clear();
	if (!path)
		return -EINVAL;
	return bpf_obj_get(path);
}

int nc_prog_id(int prog_fd, uint32_t *id)
{
	struct bpf_prog_info info;
	__u32 len = sizeof(info);
	int err;

	nc_err_clear();
	memset(&info, 0, sizeof(info));
	err = bpf_obj_get_info_by_fd(prog_fd, &info, &len);
	if (err)
		return err;
	if (id)
		*id = info.id;
	return 0;
}

/* ------------------------------------------------------------------ attach */

static int nc_query_raw(int ifindex, struct bpf_xdp_query_opts *q)
{
	memset(q, 0, sizeof(*q));
	q->sz = sizeof(*q);
	return bpf_xdp_query(ifindex, 0, q);
}

/* XDP_FLAGS_*_MODE of what is attached, 0 if nothing */
static __u32 nc_attached_flag(const struct bpf_xdp_query_opts *q)
{
	if (q->drv_prog_id)
		return XDP_FLAGS_DRV_MODE;
	if (q->skb_prog_id)
		return XDP_FLAGS_SKB_MODE;
	if (q->hw_prog_id)
		return XDP_FLAGS_HW_MODE;
	return 0;
}

static int nc_attach_flags(int ifindex, int prog_fd, __u32 flags, int old_prog_fd)
{
	struct bpf_xdp_attach_opts opts;

	memset(&opts, 0, sizeof(opts));
	opts.sz = sizeof(opts);
	if (old_prog_fd >= 0) {
		/* libbpf adds XDP_FLAGS_REPLACE when old_prog_fd is set (non-zero) */
		opts.old_prog_fd = old_prog_fd;
		flags |= XDP_FLAGS_REPLACE;
	} else {
		/* never replace a program that is not ours: EBUSY if one is attached */
		flags |= XDP_FLAGS_UPDATE_IF_NOEXIST;
	}
	return bpf_xdp_attach(ifindex, prog_fd, flags, &opts);
}

int nc_attach(int ifindex, int prog_fd, int mode, int old_prog_fd)
{
	int err, old = old_prog_fd;
	__u32 flag;

	nc_err_clear();
	if (ifindex <= 0 || prog_fd < 0)
		return -EINVAL;
	/* libbpf reads old_prog_fd == 0 as "none": move fd 0 out of the way */
	if (old_prog_fd == 0) {
		old = fcntl(0, F_DUPFD_CLOEXEC, 3);
		if (old < 0)
			return -errno;
	}

	switch (mode) {
	case NC_MODE_NATIVE:
		err = nc_attach_flags(ifindex, prog_fd, XDP_FLAGS_DRV_MODE, old);
		break;
	case NC_MODE_GENERIC:
		err = nc_attach_flags(ifindex, prog_fd, XDP_FLAGS_SKB_MODE, old);
		break;
	case NC_MODE_AUTO:
		flag = 0;
		if (old >= 0) {
			/* replace in the mode the old program runs in */
			struct bpf_xdp_query_opts q;

			if (nc_query_raw(ifindex, &q) == 0)
				flag = nc_attached_flag(&q);
		}
		if (flag) {
			err = nc_attach_flags(ifindex, prog_fd, flag, old);
			break;
		}
		err = nc_attach_flags(ifindex, prog_fd, XDP_FLAGS_DRV_MODE, old);
		if (err == -EOPNOTSUPP || err == -EINVAL) {
			/* no native XDP in this driver: generic (skb) mode */
			nc_err_clear();
			err = nc_attach_flags(ifindex, prog_fd, XDP_FLAGS_SKB_MODE, old);
		}
		break;
	default:
		err = -EINVAL;
	}
	if (old != old_prog_fd)
		close(old);
	return err;
}

int nc_detach(int ifindex, int mode)
{
	struct bpf_xdp_query_opts q;
	__u32 flag;
	int err;

	nc_err_clear();
	if (ifindex <= 0)
		return -EINVAL;
	switch (mode) {
	case NC_MODE_NATIVE:
		flag = XDP_FLAGS_DRV_MODE;
		break;
	case NC_MODE_GENERIC:
		flag = XDP_FLAGS_SKB_MODE;
		break;
	case NC_MODE_AUTO:
		err = nc_query_raw(ifindex, &q);
		if (err)
			return err;
		flag = nc_attached_flag(&q);
		if (!flag)
			return 0; /* nothing attached */
		break;
	default:
		return -EINVAL;
	}
	return bpf_xdp_detach(ifindex, flag, NULL);
}

int nc_query(int ifindex, uint32_t *prog_id, int *mode)
{
	struct bpf_xdp_query_opts q;
	uint32_t id = 0;
	int m = 0, err;

	nc_err_clear();
	if (ifindex <= 0)
		return -EINVAL;
	err = nc_query_raw(ifindex, &q);
	if (err)
		return err;
	if (q.drv_prog_id) {
		id = q.drv_prog_id;
		m = NC_MODE_NATIVE;
	} else if (q.skb_prog_id) {
		id = q.skb_prog_id;
		m = NC_MODE_GENERIC;
	} else if (q.hw_prog_id) {
		id = q.hw_prog_id;
		m = 3; /* offloaded to the NIC: not a mode kit_netcore attaches in */
	}
	if (prog_id)
		*prog_id = id;
	if (mode)
		*mode = m;
	return 0;
}

/* ------------------------------------------------------------------ maps */

int nc_map_lookup(int fd, const void *key, void *value)
{
	return bpf_map_lookup_elem(fd, key, value);
}

int nc_map_update(int fd, const void *key, const void *value, uint64_t flags)
{
	return bpf_map_update_elem(fd, key, value, flags);
}

int nc_map_delete(int fd, const void *key)
{
	return bpf_map_delete_elem(fd, key);
}

int nc_map_next_key(int fd, const void *key, void *next_key)
{
	return bpf_map_get_next_key(fd, key, next_key);
}

int nc_map_update_batch(int fd, const void *keys, const void *values, uint32_t *count,
			uint64_t flags)
{
	struct bpf_map_batch_opts opts;

	if (!count)
		return -EINVAL;
	if (*count == 0)
		return 0;
	memset(&opts, 0, sizeof(opts));
	opts.sz = sizeof(opts);
	opts.elem_flags = flags;
	return bpf_map_update_batch(fd, keys, values, count, &opts);
}

int nc_map_delete_batch(int fd, const void *keys, uint32_t *count)
{
	struct bpf_map_batch_opts opts;

	if (!count)
		return -EINVAL;
	if (*count == 0)
		return 0;
	memset(&opts, 0, sizeof(opts));
	opts.sz = sizeof(opts);
	return bpf_map_delete_batch(fd, keys, count, &opts);
}

/* ------------------------------------------------------------------ test run */

int nc_test_run(int prog_fd, const void *data, uint32_t size, uint32_t repeat,
		uint32_t *retval, uint32_t *duration)
{
	struct bpf_test_run_opts opts;
	uint32_t cap;
	void *out;
	int err, tries = 0;

	nc_err_clear();
	if (!data || size > UINT32_MAX - NC_TEST_RUN_PAD)
		return -EINVAL;
	cap = size + NC_TEST_RUN_PAD;
	out = malloc(cap);
	if (!out)
		return -ENOMEM;
	memset(&opts, 0, sizeof(opts));
	opts.sz = sizeof(opts);
	opts.data_in = data;
	opts.data_size_in = size;
	opts.data_out = out;
	opts.repeat = (int)repeat;
	do {
		opts.data_size_out = cap;
		err = bpf_prog_test_run_opts(prog_fd, &opts);
	} while (err == -EINTR && ++tries < NC_EINTR_TRIES);
	free(out);
	if (err)
		return err;
	if (retval)
		*retval = opts.retval;
	if (duration)
		*duration = opts.duration;
	return 0;
}
