// SPDX-License-Identifier: MIT
/* prog_info.c: finding and naming an attached program, for the atomic replace. */
#include <errno.h>
#include <string.h>

#include <bpf/bpf.h>
#include <linux/bpf.h>

#include "netcore.h"

int nc_prog_fd_by_id(uint32_t id)
{
	int fd = bpf_prog_get_fd_by_id(id);
	return fd < 0 ? -errno : fd;
}

int nc_prog_name(int prog_fd, char *name)
{
	struct bpf_prog_info info;
	__u32 len = sizeof(info);
	memset(&info, 0, sizeof(info));
	int err = bpf_obj_get_info_by_fd(prog_fd, &info, &len);
	if (err)
		return err < 0 ? err : -errno;
	memcpy(name, info.name, sizeof(info.name));
	name[sizeof(info.name) - 1] = '\0';
	return 0;
}
