/* SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0 */
/*
 * Helpers every program uses: the process filter, the counters and ring
 * buffer wake-ups. Like every header that names a map, it is included by
 * obi.bpf.c after the maps and load-time constants are defined.
 */
#ifndef OBI_COMMON_BPF_H
#define OBI_COMMON_BPF_H

#include "obi/base.bpf.h"

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

/* Traced and chosen by user space: not merely watched from its exec until
 * discovery decides (OBI_PID_PROVISIONAL). Anything that changes what the
 * process sends (traceparent injection) waits for this: a process nobody
 * selected must never see its traffic touched. */
static __always_inline bool pid_selected(__u32 tgid)
{
	if (tgid == obi_agent_tgid)
		return false;
	if (obi_trace_all)
		return true;
	struct obi_pid_info *info = bpf_map_lookup_elem(&traced_pids, &tgid);
	return info && !(info->flags & OBI_PID_PROVISIONAL);
}

/* Wakes user space once per backlog: when this record takes the data
 * waiting in the ring past obi_wakeup_bytes. A forced wakeup raises an
 * irq_work, i.e. a self-IPI (an APIC write, so a VM exit on a virtual
 * machine): forcing one for every record while a backlog waited cost a
 * saturated nginx ~1.6 % of its CPU. User space drains all it finds and
 * reads at least every batch_timeout, so a crossing two CPUs race past
 * unseen costs at most that wait. `size` is the record's payload. */
static __always_inline __u64 ringbuf_flags(void *rb, __u64 size)
{
	__u64 waiting = bpf_ringbuf_query(rb, BPF_RB_AVAIL_DATA);
	/* Each record also takes an 8-byte header, and its length is rounded up to 8. */
	__u64 after = waiting + ((size + 8 + 7) & ~7ULL);
	if (waiting < obi_wakeup_bytes && after >= obi_wakeup_bytes) {
		stat_inc(OBI_STAT_WAKEUPS);
		return BPF_RB_FORCE_WAKEUP;
	}
	return BPF_RB_NO_WAKEUP;
}

/* Sends a finished record to user space, counting it or its loss. */
static __always_inline void events_output(void *record, __u64 size)
{
	if (bpf_ringbuf_output(&events, record, size, ringbuf_flags(&events, size)))
		stat_inc(OBI_STAT_RINGBUF_FULL);
	else
		stat_inc(OBI_STAT_EVENTS);
}

/* Trace and span ids. */
static __always_inline void random_bytes(__u8 *dst, int n)
{
#pragma unroll
	for (int i = 0; i < 16; i += 4) {
		if (i >= n)
			break;
		__u32 r = bpf_get_prandom_u32();
		__builtin_memcpy(dst + i, &r, 4);
	}
}

#endif /* OBI_COMMON_BPF_H */
