/* SPDX-License-Identifier: Apache-2.0 */
/* Includes, load-time constants, maps and counters shared by every program. */
#ifndef OBI_COMMON_H
#define OBI_COMMON_H

#include "vmlinux.h"
#include "bpf_helpers.h"
#include "bpf_core_read.h"
#include "bpf_tracing.h"
#include "bpf_endian.h"
#include "obi/abi.h"

#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define MSG_PEEK 2
#define EINPROGRESS 115

/* Set by user space at load time (.rodata is frozen afterwards). */
const volatile __u32 obi_agent_tgid = 0;       /* never trace ourselves */
const volatile __u32 obi_capture_size = 1024;   /* payload bytes per syscall */
const volatile __u64 obi_wakeup_bytes = 262144; /* wake user space past this */
const volatile __u8 obi_watch_exec = 0;         /* report every exec */
const volatile __u8 obi_trace_all = 0;          /* no PID filter (system wide) */

/* Processes selected by discovery; forked children are added in-kernel. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct obi_pid_info);
} traced_pids SEC(".maps");

/* Data and connection events; size set by user space. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} events SEC(".maps");

/* Process lifecycle events. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 << 10);
} proc_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, OBI_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} obi_stats SEC(".maps");

static __always_inline void stat_inc(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&obi_stats, &idx);
	if (v)
		*v += 1;
}

static __always_inline struct obi_pid_info *pid_info(__u32 tgid)
{
	return bpf_map_lookup_elem(&traced_pids, &tgid);
}

static __always_inline bool pid_traced(__u32 tgid)
{
	if (tgid == obi_agent_tgid)
		return false;
	if (obi_trace_all)
		return true;
	return bpf_map_lookup_elem(&traced_pids, &tgid) != NULL;
}

static __always_inline __u64 ringbuf_flags(void *rb)
{
	if (bpf_ringbuf_query(rb, BPF_RB_AVAIL_DATA) >= obi_wakeup_bytes) {
		stat_inc(OBI_STAT_WAKEUPS);
		return BPF_RB_FORCE_WAKEUP;
	}
	return BPF_RB_NO_WAKEUP;
}

#endif /* OBI_COMMON_H */
