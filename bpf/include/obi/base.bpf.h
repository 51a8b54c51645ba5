/* SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0 */
/* What every other header builds on: kernel types, libbpf helpers, the ABI
 * shared with user space and the few kernel constants vmlinux.h lacks. */
#ifndef OBI_BASE_BPF_H
#define OBI_BASE_BPF_H

#include "vmlinux.h"
#include "bpf_helpers.h"
#include "bpf_core_read.h"
#include "bpf_tracing.h"
#include "bpf_endian.h"
#include "obi/abi.h"

/* uapi macros (vmlinux.h carries types, not #defines). */
#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define MSG_PEEK 2
#define EINPROGRESS 115
#define SK_PASS 1

#endif /* OBI_BASE_BPF_H */
