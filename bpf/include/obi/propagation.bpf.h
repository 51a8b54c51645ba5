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
#include "obi/capture.bpf.h"
#include "obi/traceparent.bpf.h"

static __always_inline struct obi_connect_slot *connect_slot_get(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&connect_slot, &zero);
}

/* A traced thread enters connect(uaddr, len): remember where it goes. */
static __always_inline void connect_slot_fill(__u64 uaddr, __u64 len)
{
	struct obi_connect_slot *slot = connect_slot_get();
	if (!slot)
		return;
	slot->family = 0;
	__u16 family = 0;
	if (len < 8 || bpf_probe_read_user(&family, sizeof(family), (const void *)uaddr))
		return;
	__u16 port_be = 0;
	if (family == AF_INET && len >= 8) {
		/* sockaddr_in: family, port, addr */
		if (bpf_probe_read_user(&port_be, 2, (const void *)(uaddr + 2)) ||
		    bpf_probe_read_user(slot->addr, 4, (const void *)(uaddr + 4)))
			return;
	} else if (family == AF_INET6 && len >= 24) {
		/* sockaddr_in6: family, port, flowinfo, addr */
		if (bpf_probe_read_user(&port_be, 2, (const void *)(uaddr + 2)) ||
		    bpf_probe_read_user(slot->addr, 16, (const void *)(uaddr + 8)))
			return;
	} else {
		return;
	}
	slot->port = bpf_ntohs(port_be);
	slot->family = family;
}

/* In TCP_CONNECT_CB: is this the connect() of the slot? Empties the slot.
 * A thread preempted between its connect()'s entry and the SYN (and moved
 * to another CPU) is missed: its connection gets no injection. A stranger's
 * connect to the same destination on the same CPU meanwhile takes the slot
 * harmlessly: sk_msg injects only for threads that armed an injection. */
static __always_inline bool connect_slot_take(struct bpf_sock_ops *skops)
{
	struct obi_connect_slot *slot = connect_slot_get();
	if (!slot || !slot->family)
		return false;
	__u16 family = slot->family;
	slot->family = 0;
	/* remote_port is in network byte order in the field's upper half on
	 * little-endian machines, its lower half on big-endian ones. */
	if (family != skops->family || slot->port != (__u16)bpf_ntohl(skops->remote_port))
		return false;
	if (family == AF_INET) {
		__u32 a;
		__builtin_memcpy(&a, slot->addr, 4);
		return a == skops->remote_ip4;
	}
	__u32 a0, a1, a2, a3;
	__builtin_memcpy(&a0, slot->addr, 4);
	__builtin_memcpy(&a1, slot->addr + 4, 4);
	__builtin_memcpy(&a2, slot->addr + 8, 4);
	__builtin_memcpy(&a3, slot->addr + 12, 4);
	return a0 == skops->remote_ip6[0] && a1 == skops->remote_ip6[1] && a2 == skops->remote_ip6[2] &&
	       a3 == skops->remote_ip6[3];
}

/* One word of the scan of this CPU's scratch head (see scan_word). Global
 * with scalar arguments, so the verifier checks it once for any w (as it
 * would a bpf_loop callback) on every kernel from 5.8 on. */
__noinline int scan_step(__u32 w, __u32 len)
{
	__u32 zero = 0;
	struct obi_scratch *s = scratch_get();
	struct obi_head_scan *out = bpf_map_lookup_elem(&head_scan, &zero);
	if (!s || !out)
		return 1;
	return scan_word(w, s->data, len, out);
}

/* Scans the first len bytes of this CPU's scratch event data (where every
 * caller keeps the head) for the request line's end and a traceparent; the
 * result packed (scan_pack). A bounded loop over scan_step instead of
 * bpf_loop (Linux 5.17+); global, so it too is verified once. */
__noinline int scan_scratch_head(__u32 len)
{
	__u32 zero = 0;
	struct obi_head_scan *out = bpf_map_lookup_elem(&head_scan, &zero);
	if (!out)
		return 0;
	out->line_end = 0;
	out->tp_value = 0;
	out->head_done = 0;
	for (__u32 w = 0; w < OBI_TP_SCAN_LEN / 8; w++) {
		if (scan_step(w, len))
			break;
	}
	return scan_pack(out);
}

/* Scans data[0..n), which must be this CPU's scratch event data. */
static __always_inline void scan_head(__u32 n, struct obi_head_scan *scan)
{
	scan_unpack(scan_scratch_head(n), scan);
}

/* Called at the start of a client request, with the first n bytes of it in
 * data (the scratch event's). Arms the injection for this thread's current send. */
static __noinline void arm_injection(const __u8 *data, __u32 n, const struct obi_tp *tp, __u64 pid_tgid)
{
	if (n < 8)
		return;
	struct obi_head_scan scan;
	scan_head(n, &scan);
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

/* Reads the incoming traceparent of a server request (its first n bytes in
 * data, the scratch event's) into tp. */
static __noinline void adopt_incoming(const __u8 *data, __u32 n, struct obi_tp *tp)
{
	struct obi_head_scan scan;
	scan_head(n, &scan);
	if (scan.tp_value && scan.tp_value + OBI_TP_VALUE_LEN <= n)
		parse_traceparent(data + (scan.tp_value & (OBI_TP_SCAN_LEN - 1)), tp);
}

#endif /* OBI_PROPAGATION_BPF_H */
