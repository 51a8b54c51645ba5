/* SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0 */
/*
 * Plaintext of TLS connections from uprobes on OpenSSL's SSL_read/SSL_write
 * (and their _ex forms), in libssl or in binaries that link it statically.
 *
 * Each SSL object is tied to its TCP socket from the syscalls around it:
 *  - a socket BIO (nginx, Python, curl) reads/writes the socket *inside*
 *    SSL_read/SSL_write on the same thread: exact;
 *  - a memory BIO (Node.js) reads the ciphertext just *before* SSL_read and
 *    writes it just *after* SSL_write, on the same thread.
 * Once tied, the socket's ciphertext is no longer captured.
 *
 * Maps: ssl_args, ssl_pending_bind, last_recv_conn, tls_state.
 */
#ifndef OBI_TLS_BPF_H
#define OBI_TLS_BPF_H

#include "obi/common.bpf.h"
#include "obi/sockets.bpf.h"
#include "obi/conn.bpf.h"
#include "obi/capture.bpf.h"
#include "obi/h2.bpf.h"

static __always_inline bool tls_pid(__u32 tgid)
{
	struct obi_pid_info *info = pid_info(tgid);
	return info && (info->flags & OBI_PID_TLS);
}

static __always_inline struct obi_conn_state *tls_state_get(__u64 ssl, __u32 tgid)
{
	struct obi_ssl_key k = {.ssl = ssl, .tgid = tgid};
	struct obi_conn_state *ts = bpf_map_lookup_elem(&tls_state, &k);
	if (ts)
		return ts;
	struct obi_conn_state fresh = {};
	fresh.tgid = tgid;
	fresh.last_dir = OBI_DIR_NONE;
	fresh.flags = OBI_CONN_TLS;
	bpf_map_update_elem(&tls_state, &k, &fresh, BPF_NOEXIST);
	return bpf_map_lookup_elem(&tls_state, &k);
}

/* Ties an SSL object to the socket whose state is cs. */
static __always_inline void tls_bind(__u64 ssl, __u32 tgid, struct obi_conn_state *cs)
{
	struct obi_conn_state *ts = tls_state_get(ssl, tgid);
	if (!ts)
		return;
	if (ts->tuple.lport != cs->tuple.lport || ts->tuple.rport != cs->tuple.rport) {
		/* A new connection (or an SSL object reused at the same address). */
		bool fresh = ts->tuple.lport == 0;
		ts->tuple = cs->tuple;
		if (!fresh) {
			ts->last_dir = OBI_DIR_NONE;
			ts->role = OBI_ROLE_UNKNOWN;
			__builtin_memset(&ts->tp, 0, sizeof(ts->tp));
			/* The new connection starts with its own preface. */
			ts->flags &= ~OBI_CONN_H2;
			__u64 h2_key = ssl | OBI_H2_TLS_KEY;
			bpf_map_delete_elem(&h2_state, &h2_key);
		}
	}
	if (ts->role == OBI_ROLE_UNKNOWN)
		ts->role = cs->role;
	cs->flags |= OBI_CONN_TLS;
}

/* Called for every socket syscall of a traced thread, before capture. */
static __always_inline void tls_observe_syscall(__u64 pid_tgid, __u64 ino, struct obi_conn_state *cs, __u8 dir)
{
	if (!tls_pid(pid_tgid >> 32))
		return;
	struct obi_ssl_args *sa = bpf_map_lookup_elem(&ssl_args, &pid_tgid);
	if (sa) {
		tls_bind(sa->ssl, pid_tgid >> 32, cs);
		struct obi_conn_state *ts = tls_state_get(sa->ssl, pid_tgid >> 32);
		if (ts)
			ts->flags |= OBI_CONN_TLS_EXACT;
		sa->bound = 1;
		return;
	}
	if (dir == OBI_DIR_SEND) {
		__u64 *ssl = bpf_map_lookup_elem(&ssl_pending_bind, &pid_tgid);
		if (ssl) {
			tls_bind(*ssl, pid_tgid >> 32, cs);
			bpf_map_delete_elem(&ssl_pending_bind, &pid_tgid);
		}
	} else {
		/* Every receive of a TLS-capable process: written in place. */
		__u64 *last = bpf_map_lookup_elem(&last_recv_conn, &pid_tgid);
		if (last)
			*last = ino;
		else
			bpf_map_update_elem(&last_recv_conn, &pid_tgid, &ino, BPF_ANY);
	}
}

static __always_inline int ssl_enter(void *ssl, const void *buf, void *len_ptr, __u8 dir)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	if (!pid_traced(pid_tgid >> 32))
		return 0;
	struct obi_ssl_args a = {};
	a.ssl = (__u64)ssl;
	a.buf = (__u64)buf;
	a.len_ptr = (__u64)len_ptr;
	a.ts = bpf_ktime_get_ns();
	a.dir = dir;
	bpf_map_update_elem(&ssl_args, &pid_tgid, &a, BPF_ANY);
	return 0;
}

/* Sends the plaintext a TLS call moved (a: the call; bytes: how many;
 * ts: its session, tied to its socket; sc: the OBI_SC_* the event names
 * for a read, sc + 1 for a write) as a data event flagged OBI_F_TLS,
 * or walks it frame by frame for HTTP/2. Shared with Go's crypto/tls
 * probes (obi/go.bpf.h). */
static __always_inline int tls_emit(const struct obi_ssl_args *a, __u64 pid_tgid, __u64 bytes,
				    struct obi_conn_state *ts, __u8 sc)
{
	__u32 tgid = pid_tgid >> 32;
	struct obi_scratch *s = scratch_get();
	if (!s)
		return 0;
	s->hdr.tail_len = 0;
	s->hdr.captured = 0;
	/* HTTP/2 inside TLS (ALPN h2): frame by frame, as for plaintext sockets. */
	bool msg_start = ts->last_dir != a->dir;
	bool h2 = ts->flags & OBI_CONN_H2;
	__u64 h2_start = 0;
	if (!h2 && msg_start && bytes >= OBI_H2_PREFACE_LEN) {
		__u8 pre[OBI_H2_PREFACE_LEN];
		if (bpf_probe_read_user(pre, sizeof(pre), (const void *)a->buf) == 0 && is_h2_preface(pre)) {
			ts->flags |= OBI_CONN_H2;
			h2 = true;
			h2_start = OBI_H2_PREFACE_LEN;
		}
	}
	if (!h2)
		capture_plain(s, a->buf, bytes);
	__u8 flags = OBI_F_TLS;
	if (msg_start)
		flags |= conn_msg_start(ts, a->ssl, a->dir, pid_tgid, s->data, s->hdr.captured);
	if (!h2 && s->hdr.captured < bytes)
		flags |= OBI_F_TRUNCATED;

	struct obi_event_hdr *h = &s->hdr;
	h->kind = OBI_EV_DATA;
	h->dir = a->dir;
	h->role = ts->role;
	h->flags = flags;
	h->tgid = tgid;
	h->tid = (__u32)pid_tgid;
	h->syscall = a->dir == OBI_DIR_RECV ? sc : sc + 1;
	h->conn_id = a->ssl;
	h->ts_enter = a->ts;
	h->ts_exit = bpf_ktime_get_ns();
	h->bytes = bytes;
	h->tuple = ts->tuple;
	h->tp = ts->tp;
	h->queued_at = 0; /* arrival times are tracked per socket, not per SSL object */
	if (h2) {
		/* Keyed apart from socket inodes: SSL objects are user addresses. */
		h2_capture(a->ssl | OBI_H2_TLS_KEY, OBI_H2_HOW(a->dir, h2_start), a->buf, 0, bytes);
		return 0;
	}
	__u64 size = sizeof(struct obi_event_hdr) + s->hdr.captured;
	barrier_var(size);
	if (size > sizeof(struct obi_scratch))
		return 0;
	events_output(s, size);
	return 0;
}

static __always_inline int ssl_exit(long ret)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct obi_ssl_args *saved = bpf_map_lookup_elem(&ssl_args, &pid_tgid);
	if (!saved)
		return 0;
	struct obi_ssl_args a = *saved;
	bpf_map_delete_elem(&ssl_args, &pid_tgid);
	if (ret <= 0)
		return 0;
	__u64 bytes = ret;
	if (a.len_ptr) { /* _ex: 1 on success, count in *len_ptr */
		if (bpf_probe_read_user(&bytes, sizeof(bytes), (const void *)a.len_ptr))
			return 0;
	}
	if (bytes == 0)
		return 0;

	__u32 tgid = pid_tgid >> 32;
	struct obi_conn_state *ts = tls_state_get(a.ssl, tgid);
	if (!ts)
		return 0;
	/* A socket BIO's read served from OpenSSL's own buffer makes no
	 * syscall either: an object once tied exactly is never re-tied from a
	 * guess (the thread's last read may be another socket entirely). */
	if (!a.bound && !(ts->flags & OBI_CONN_TLS_EXACT)) {
		/* Memory BIO (no syscall inside the call): the ciphertext was just
		 * read from, or will next be written to, this thread's socket.
		 * Rebinding every time also catches SSL objects reused at the
		 * same address for a new connection. */
		if (a.dir == OBI_DIR_RECV) {
			__u64 *ino = bpf_map_lookup_elem(&last_recv_conn, &pid_tgid);
			struct obi_conn_state *cs = ino ? conn_get(*ino) : NULL;
			if (cs)
				tls_bind(a.ssl, tgid, cs);
		} else if (ts->tuple.lport == 0) {
			bpf_map_update_elem(&ssl_pending_bind, &pid_tgid, &a.ssl, BPF_ANY);
		}
	}

	return tls_emit(&a, pid_tgid, bytes, ts, OBI_SC_SSL_READ);
}

#endif /* OBI_TLS_BPF_H */
