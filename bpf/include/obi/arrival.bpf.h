/* SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0 */
/*
 * When a server request arrived, as opposed to when the application read it:
 * the difference is the request's time "in queue" (accept backlog, a busy
 * single-threaded server, a saturated pool).
 *
 *  - sock:inet_sock_set_state, passive open reaching ESTABLISHED: the
 *    connection exists, before anyone accepted it (its first request's
 *    start when nothing better is known);
 *  - sock:sk_data_ready (Linux 6.6+), on a socket waiting between requests:
 *    the next request's first bytes are in the socket;
 *  - a server request read (OBI_F_REQUEST) takes the time; the response's
 *    first send re-arms the socket for the next keep-alive request.
 *
 * Keyed by struct sock *, which the tracepoints and the fd walk share.
 * sk_data_ready fires for every socket of the host; a table of the local
 * ports traced processes accept on (server_port_bits) turns almost all of
 * them away before the hash lookup.
 * Maps: arrivals, server_port_bits.
 */
#ifndef OBI_ARRIVAL_BPF_H
#define OBI_ARRIVAL_BPF_H

#include "obi/common.bpf.h"

/* server_port_bits holds one byte per port, eight to a map element: a
 * plain byte store marks a port without an atomic OR (which needs Linux
 * 5.12), and two CPUs marking ports of the same element cannot undo each
 * other. */
static __always_inline __u8 *server_port_flag(__u16 port)
{
	__u32 elem = port / 8;
	__u8 *bytes = bpf_map_lookup_elem(&server_port_bits, &elem);
	return bytes ? bytes + (port % 8) : NULL;
}

/* A traced process accepted a connection on this local port. */
static __always_inline void arrival_note_port(__u16 port)
{
	__u8 *flag = server_port_flag(port);
	if (flag && !*flag)
		*flag = 1;
}

static __always_inline bool arrival_port_served(__u16 port)
{
	__u8 *flag = server_port_flag(port);
	return flag && *flag;
}

/* A passively opened connection completed its handshake. */
static __always_inline void arrival_established(__u64 sk)
{
	struct obi_arrival a = {};
	a.established = bpf_ktime_get_ns();
	a.waiting = 1;
	bpf_map_update_elem(&arrivals, &sk, &a, BPF_ANY);
}

/* Bytes reached a socket. Only the first bytes after a response count. */
static __always_inline void arrival_data(struct sock *sk)
{
	if (!arrival_port_served(BPF_CORE_READ(sk, __sk_common.skc_num)))
		return;
	__u64 key = (__u64)sk;
	struct obi_arrival *a = bpf_map_lookup_elem(&arrivals, &key);
	if (a && a->waiting && !a->data)
		a->data = bpf_ktime_get_ns();
}

/* A server request is being read: when did it arrive? 0 if unknown. */
static __always_inline __u64 arrival_take(__u64 sk)
{
	if (!sk)
		return 0;
	struct obi_arrival *a = bpf_map_lookup_elem(&arrivals, &sk);
	if (!a || !a->waiting)
		return 0;
	__u64 at = a->data ? a->data : a->established;
	a->waiting = 0;
	a->established = 0;
	a->data = 0;
	return at;
}

/* The response starts: the next bytes on this socket are a new request. */
static __always_inline void arrival_rearm(__u64 sk)
{
	if (!sk)
		return;
	struct obi_arrival *a = bpf_map_lookup_elem(&arrivals, &sk);
	if (a) {
		a->waiting = 1;
		a->data = 0;
		return;
	}
#ifndef OBI_NO_BTF
	/* A connection accepted before the agent started, while it is open: a
	 * response written after the peer's reset (the socket closed already)
	 * would add an entry that no TCP_CLOSE removes (57 of 200 such
	 * connections did). Without BTF the state cannot be read; such a
	 * connection is not known by its socket there anyway. */
	if (BPF_CORE_READ((struct sock *)sk, __sk_common.skc_state) != OBI_TCP_ESTABLISHED)
		return;
	struct obi_arrival fresh = {.waiting = 1};
	bpf_map_update_elem(&arrivals, &sk, &fresh, BPF_ANY);
#endif
}

#endif /* OBI_ARRIVAL_BPF_H */
