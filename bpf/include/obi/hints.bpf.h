/* SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0 */
/*
 * Parent hints from a runtime that multiplexes requests on one thread
 * (Node.js): the thread cannot say which request a client call belongs to,
 * but the runtime can. Its script (crates/obi/src/nodejs/hints.js) calls
 * access("/dev/null/obi-rs/<client fd><server fd>") just before a client
 * request's first write; the access tracepoints below turn the two fds into
 * socket inodes and leave, keyed by the client socket, the trace context of
 * the request the server socket carries (or a root marker). The client
 * request's start consumes it instead of the per-thread guess.
 *
 * A syscall argument read with bpf_probe_read_user_str is the channel:
 * nothing is written into the process (works under lockdown=integrity),
 * and the path can never name a file, so the app is unaffected when no
 * agent listens. Maps: hints (value: obi_tp, valid == 0 means root).
 */
#ifndef OBI_HINTS_BPF_H
#define OBI_HINTS_BPF_H

#include "obi/common.bpf.h"
#include "obi/sockets.bpf.h"

#define OBI_HINT_PATH_LEN (OBI_HINT_PREFIX_LEN + 2 * OBI_HINT_FD_DIGITS)

/* Lowercase hex digit value, or -1. */
static __always_inline int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Parses the path of an access() call; false when it is not a hint. */
static __always_inline bool parse_hint(const char *path, __u32 *client_fd, __u32 *server_fd)
{
	const char prefix[] = OBI_HINT_PREFIX;
	char buf[OBI_HINT_PATH_LEN + 8];
	long n = bpf_probe_read_user_str(buf, sizeof(buf), path);
	if (n != OBI_HINT_PATH_LEN + 1)
		return false;
#pragma unroll
	for (int i = 0; i < OBI_HINT_PREFIX_LEN; i++)
		if (buf[i] != prefix[i])
			return false;
	__u32 fds[2] = {};
#pragma unroll
	for (int f = 0; f < 2; f++) {
#pragma unroll
		for (int i = 0; i < OBI_HINT_FD_DIGITS; i++) {
			int d = hex_digit(buf[OBI_HINT_PREFIX_LEN + f * OBI_HINT_FD_DIGITS + i]);
			if (d < 0)
				return false;
			fds[f] = (fds[f] << 4) | d;
		}
	}
	*client_fd = fds[0];
	*server_fd = fds[1];
	return true;
}

/* The trace context of the server request on fd: its connection's current
 * request. False when fd is no server connection with one. A TLS socket's
 * requests are in its plaintext session, found here when the session is
 * known by the socket (Go's crypto/tls, obi/go.bpf.h); OpenSSL sessions
 * are known by their SSL*, so their sockets give none. */
static __always_inline bool server_request_tp(__u32 fd, struct obi_tp *tp)
{
	struct obi_sock_ref ref;
	if (!fd_to_tcp_sock(fd, &ref))
		return false;
	struct obi_conn_state *cs = bpf_map_lookup_elem(&conn_state, &ref.ino);
	if (cs && (cs->flags & OBI_CONN_TLS)) {
		struct obi_ssl_key k = {.ssl = ref.ino, .tgid = bpf_get_current_pid_tgid() >> 32};
		cs = bpf_map_lookup_elem(&tls_state, &k);
	}
	if (!cs || cs->role != OBI_ROLE_SERVER || !cs->tp.valid)
		return false;
	*tp = cs->tp;
	return true;
}

/* Entry of access()/faccessat()/faccessat2() in a traced process (the
 * syscall entry shim has filtered by process). */
static __always_inline int hint_record(const char *path)
{
	__u32 client_fd, server_fd;
	if (!parse_hint(path, &client_fd, &server_fd))
		return 0;
	struct obi_sock_ref client;
	if (!fd_to_tcp_sock(client_fd, &client)) {
		stat_inc(OBI_STAT_HINTS_IGNORED);
		return 0;
	}
	/* An unknown server request makes a root, never a guess. */
	struct obi_tp tp = {};
	if (server_fd != OBI_HINT_ROOT && !server_request_tp(server_fd, &tp)) {
		__builtin_memset(&tp, 0, sizeof(tp));
		stat_inc(OBI_STAT_HINTS_IGNORED);
	}
	bpf_map_update_elem(&hints, &client.ino, &tp, BPF_ANY);
	return 0;
}

/* At a client request's start: applies and consumes its hint. False when
 * there is none (the caller guesses). Keyed by the request's connection
 * id: a socket inode, also for Go's TLS sessions (obi/go.bpf.h); OpenSSL
 * sessions (SSL* ids) never get one. */
static __always_inline bool hint_apply(struct obi_conn_state *cs, __u64 conn_id)
{
	struct obi_tp *h = bpf_map_lookup_elem(&hints, &conn_id);
	if (!h)
		return false;
	struct obi_tp parent = *h;
	bpf_map_delete_elem(&hints, &conn_id);
	if (parent.valid) {
		__builtin_memcpy(cs->tp.trace_id, parent.trace_id, 16);
		__builtin_memcpy(cs->tp.parent_id, parent.span_id, 8);
		cs->tp.flags = parent.flags;
	} else {
		random_bytes(cs->tp.trace_id, 16);
		__builtin_memset(cs->tp.parent_id, 0, 8);
		cs->tp.flags = 1;
	}
	random_bytes(cs->tp.span_id, 8);
	cs->tp.valid = 1;
	stat_inc(OBI_STAT_HINTS_USED);
	return true;
}

#endif /* OBI_HINTS_BPF_H */
