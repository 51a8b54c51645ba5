/* SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0 */
/* Per-connection state and the trace context of the request in flight.
 * Maps: conn_state, ignored_conns, tls_state, server_traces, mux_threads,
 * epoll_sets.
 *
 * A client request is the child of "the request this thread serves" only
 * when that can be known: the thread read that request itself, the request
 * still waits for its response, and the thread does not multiplex (an event
 * loop, which serves many requests and timers at once, is never trusted).
 * Calls made from other threads (pools, helper threads) cannot be tied to a
 * request from the kernel: they start their own trace. Runtime knowledge
 * (the Node.js hints) can name the parent where the kernel cannot. */
#ifndef OBI_CONN_BPF_H
#define OBI_CONN_BPF_H

#include "obi/common.bpf.h"
#include "obi/sockets.bpf.h"
#include "obi/propagation.bpf.h"
#include "obi/hints.bpf.h"

#define OBI_DIR_NONE 0xff

static __always_inline struct obi_conn_state *conn_get(__u64 ino)
{
	return bpf_map_lookup_elem(&conn_state, &ino);
}

/* Creates (or resets) the state of a connection. */
static __always_inline struct obi_conn_state *conn_init(struct obi_sock_ref *ref, __u32 tgid, __u8 role)
{
	struct obi_conn_state cs = {};
	read_tuple(ref->sk, &cs.tuple);
	cs.tgid = tgid;
	cs.role = role;
	cs.last_dir = OBI_DIR_NONE;
	/* A new connection on a reused inode is not the one user space ignored. */
	if (role != OBI_ROLE_UNKNOWN)
		bpf_map_delete_elem(&ignored_conns, &ref->ino);
	if (bpf_map_update_elem(&conn_state, &ref->ino, &cs, BPF_ANY)) {
		stat_inc(OBI_STAT_CONN_TABLE_FULL);
		return NULL;
	}
	return conn_get(ref->ino);
}

static __always_inline struct obi_conn_state *conn_get_or_init(struct obi_sock_ref *ref, __u32 tgid)
{
	struct obi_conn_state *cs = conn_get(ref->ino);
	if (cs)
		return cs;
	return conn_init(ref, tgid, OBI_ROLE_UNKNOWN);
}

static __always_inline bool conn_ignored(__u64 ino)
{
	return bpf_map_lookup_elem(&ignored_conns, &ino) != NULL;
}

static __always_inline __u64 span_id_u64(const struct obi_tp *tp)
{
	__u64 v;
	__builtin_memcpy(&v, tp->span_id, 8);
	return v;
}

/* A server trace is live while its connection still waits for the response
 * to the request that created it. */
static __always_inline bool server_trace_live(const struct obi_server_trace *st)
{
	struct obi_conn_state *cs;
	if (st->tls) {
		struct obi_ssl_key k = {.ssl = st->conn_id, .tgid = st->tgid};
		cs = bpf_map_lookup_elem(&tls_state, &k);
	} else {
		cs = conn_get(st->conn_id);
	}
	return cs && cs->last_dir == OBI_DIR_RECV && span_id_u64(&cs->tp) == span_id_u64(&st->tp);
}

static __always_inline bool thread_multiplexes(__u64 pid_tgid)
{
	return bpf_map_lookup_elem(&mux_threads, &pid_tgid) != NULL;
}

/* Sticky: once a thread has shown it serves several things at once, its
 * "current request" never names a parent again. */
static __always_inline void mark_multiplexing(__u64 pid_tgid)
{
	if (thread_multiplexes(pid_tgid))
		return;
	__u8 one = 1;
	bpf_map_update_elem(&mux_threads, &pid_tgid, &one, BPF_ANY);
}

/* Key of an epoll set in epoll_sets: the process and the set's fd. */
static __always_inline __u64 epoll_key(__u64 pid_tgid, __u64 epfd)
{
	return (pid_tgid & 0xffffffff00000000ULL) | (__u32)epfd;
}

/* The request this thread serves, when it can parent the thread's client
 * calls (see the top of this file). */
static __noinline const struct obi_server_trace *serving_request(__u64 pid_tgid)
{
	if (thread_multiplexes(pid_tgid)) {
		stat_inc(OBI_STAT_ROOT_MULTIPLEXED);
		return NULL;
	}
	struct obi_server_trace *st = bpf_map_lookup_elem(&server_traces, &pid_tgid);
	if (st && server_trace_live(st))
		return st;
	return NULL;
}

/* A thread reading a new request while another one it read still waits for
 * its response serves several requests at once. */
static __noinline void note_server_request(__u64 pid_tgid, const struct obi_server_trace *next)
{
	struct obi_server_trace *prev = bpf_map_lookup_elem(&server_traces, &pid_tgid);
	if (prev && prev->conn_id != next->conn_id && server_trace_live(prev))
		mark_multiplexing(pid_tgid);
	/* The thread's entry is rewritten in place, not replaced (an LRU
	 * update allocates a node under a lock). */
	if (prev)
		*prev = *next;
	else
		bpf_map_update_elem(&server_traces, &pid_tgid, next, BPF_ANY);
}

/* Recognises the first bytes of an HTTP/1 request or response. Used only to
 * infer the role of connections opened before we started watching. */
static __always_inline int sniff_http(const __u8 *b)
{
	__u32 w;
	__builtin_memcpy(&w, b, 4);
	switch (w) {
	case 0x20544547: /* "GET " */
	case 0x54534f50: /* "POST" */
	case 0x20545550: /* "PUT " */
	case 0x44414548: /* "HEAD" */
	case 0x454c4544: /* "DELE" */
	case 0x43544150: /* "PATC" */
	case 0x4954504f: /* "OPTI" */
	case 0x4e4e4f43: /* "CONN" */
	case 0x43415254: /* "TRAC" */
	case 0x20495250: /* "PRI " (HTTP/2 preface) */
		return 1;
	case 0x50545448: /* "HTTP" */
		return 2;
	}
	return 0;
}

/* Does an HTTP/1 request start here? Only such a write may get a traceparent
 * header: an HTTP/2 preface ("PRI * HTTP/2.0"), a TLS ClientHello or any
 * other binary protocol would be corrupted by one, wherever a 0x0a byte
 * looks like the end of a request line. */
static __always_inline bool http1_request_start(const __u8 *b, __u32 n)
{
	__u32 w;
	__builtin_memcpy(&w, b, 4);
	return n >= 8 && sniff_http(b) == 1 && w != 0x20495250 /* "PRI " */;
}

/* Called at the first bytes of a message (a change of direction). Returns
 * OBI_F_* flags for the event. data holds the first n payload bytes, when
 * known (n may be 0). */
static __always_inline __u8 conn_msg_start(struct obi_conn_state *cs, __u64 conn_id, __u8 dir, __u64 pid_tgid,
					   const __u8 *data, __u32 n)
{
	__u8 flags = OBI_F_MSG_START;
	if (cs->role == OBI_ROLE_UNKNOWN && n >= 4) {
		int kind = sniff_http(data);
		if (kind == 1)
			cs->role = dir == OBI_DIR_RECV ? OBI_ROLE_SERVER : OBI_ROLE_CLIENT;
		else if (kind == 2)
			cs->role = dir == OBI_DIR_RECV ? OBI_ROLE_CLIENT : OBI_ROLE_SERVER;
		if (kind)
			flags |= OBI_F_ROLE_GUESSED;
	}

	if (cs->role == OBI_ROLE_SERVER && dir == OBI_DIR_RECV) {
		/* A new server request: fresh trace (user space adopts an incoming
		 * traceparent), remembered for the thread serving it. */
		random_bytes(cs->tp.trace_id, 16);
		random_bytes(cs->tp.span_id, 8);
		__builtin_memset(cs->tp.parent_id, 0, 8);
		cs->tp.flags = 1;
		cs->tp.valid = 1;
		/* Continue the caller's trace, so requests this one makes carry it on. */
		if (obi_ctx_propagation && n)
			adopt_incoming(data, n, &cs->tp);
		struct obi_server_trace st = {};
		st.tp = cs->tp;
		st.conn_id = conn_id;
		st.tgid = pid_tgid >> 32;
		st.tls = (cs->flags & OBI_CONN_TLS) != 0;
		note_server_request(pid_tgid, &st);
		flags |= OBI_F_REQUEST;
	} else if (cs->role == OBI_ROLE_CLIENT && dir == OBI_DIR_SEND && hint_apply(cs, conn_id)) {
		/* A new client request whose runtime said whose child it is. */
		flags |= OBI_F_REQUEST;
	} else if (cs->role == OBI_ROLE_CLIENT && dir == OBI_DIR_SEND) {
		/* A new client request: child of the server request this thread
		 * is serving, when that can be known; else the root of a new trace. */
		const struct obi_server_trace *st = serving_request(pid_tgid);
		if (st) {
			__builtin_memcpy(cs->tp.trace_id, st->tp.trace_id, 16);
			__builtin_memcpy(cs->tp.parent_id, st->tp.span_id, 8);
			cs->tp.flags = st->tp.flags;
		} else {
			random_bytes(cs->tp.trace_id, 16);
			__builtin_memset(cs->tp.parent_id, 0, 8);
			cs->tp.flags = 1;
		}
		random_bytes(cs->tp.span_id, 8);
		cs->tp.valid = 1;
		flags |= OBI_F_REQUEST;
	}
	/* A response starting needs nothing here: the thread's server trace
	 * stops being live (server_trace_live) once its connection sends, and
	 * the entry stays for the thread's next request. */
	cs->last_dir = dir;
	return flags;
}

#endif /* OBI_CONN_BPF_H */
