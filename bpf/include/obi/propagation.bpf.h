/* SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0 */
/*
 * Context propagation into outgoing HTTP/1 requests, without
 * bpf_probe_write_user (refused under lockdown):
 *
 *  1. sys_enter of a client request send (process context) decides the
 *     client span's context, checks the request has no traceparent yet and
 *     leaves the header line to insert in `outgoing_tp`, keyed by thread.
 *  2. sockops puts TCP client sockets of traced processes into `sock_dir`.
 *  3. sk_msg, which runs inside that same send, inserts the header right
 *     after the request line with bpf_msg_push_data.
 *
 * The programs (sockops, sk_msg) and maps are in obi.bpf.c; these are the
 * helpers the syscall programs call.
 */
#ifndef OBI_PROPAGATION_BPF_H
#define OBI_PROPAGATION_BPF_H

#include "obi/common.bpf.h"
#include "obi/traceparent.bpf.h"

/* Called at the start of a client request, with the first n bytes of it in
 * data. Arms the injection for this thread's current send. */
static __noinline void arm_injection(const __u8 *data, __u32 n, const struct obi_tp *tp, __u64 pid_tgid)
{
	if (n < 8)
		return;
	struct obi_head_scan scan;
	scan_head(data, n, &scan);
	/* No complete request line in this write, or the app propagates
	 * context itself: leave the request alone. */
	if (!scan.line_end || scan.tp_value) {
		stat_inc(OBI_STAT_INJECT_SKIPPED);
		return;
	}
	struct obi_outgoing o = {};
	format_tp_header(tp, o.header);
	o.offset = scan.line_end;
	o.first8 = load64(data);
	bpf_map_update_elem(&outgoing_tp, &pid_tgid, &o, BPF_ANY);
}

/* Reads the incoming traceparent of a server request into tp. */
static __noinline void adopt_incoming(const __u8 *data, __u32 n, struct obi_tp *tp)
{
	struct obi_head_scan scan;
	scan_head(data, n, &scan);
	if (scan.tp_value && scan.tp_value + OBI_TP_VALUE_LEN <= n)
		parse_traceparent(data + (scan.tp_value & (OBI_TP_SCAN_LEN - 1)), tp);
}

#endif /* OBI_PROPAGATION_BPF_H */
