/* SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0 */
/*
 * Go net/http: the right parent for a client call of a Go server. Go runs
 * each server connection on a goroutine and goroutines move between
 * threads, so the thread-based guess cannot be used; the goroutine can.
 *
 * Two uprobes, at function entries only (Go moves stacks: no uretprobes):
 * - net/http.(*conn).serve, once per server connection, records which
 *   socket the running goroutine serves (go_serving), HTTPS too;
 * - net/http.(*persistConn).roundTrip, once per client request, leaves a
 *   parent hint for the client socket (the hints map of obi/hints.bpf.h):
 *   the request currently read on the socket the goroutine serves, or a
 *   root when the goroutine serves none (a goroutine the handler started,
 *   a background job). The client request's first send consumes it.
 * Only connections whose net.Conn (or, for HTTPS, the net.Conn under the
 * *tls.Conn) really is a TCP netFD (family, socket type and network name
 * are checked before its descriptor is used) are followed: anything else
 * gets no hint, never a guessed one.
 *
 * Go's TLS (crypto/tls never calls OpenSSL) is read as plaintext where the
 * application hands it over, like OpenSSL's SSL_read/SSL_write (see
 * obi/tls.bpf.h, whose session state and events it shares):
 * - crypto/tls.(*Conn).Write, entry: the buffer is sent as it is;
 * - crypto/tls.(*Conn).Read, entry: the buffer is saved for the goroutine
 *   (go_tls_reads); at each of its `ret` instructions (uprobes, not a
 *   uretprobe) the n bytes it returned are sent.
 * Each call ties the *tls.Conn to its socket (tls.Conn.conn is the net.Conn
 * the TCP socket is found from, as above), exactly and before any of its
 * syscalls, so the socket's ciphertext is skipped from then on; the session
 * is known by the socket's inode. HTTPS client requests take their parent
 * from roundTrip's hint or are roots: never the thread's guess.
 *
 * grpc-go's client multiplexes calls as streams on one HTTP/2 connection,
 * whose frames another goroutine (its loopyWriter) writes: a per-socket
 * hint cannot fit. At each `ret` of internal/transport.(*http2Client).
 * NewStream, on the calling goroutine, the new *Stream (RAX) holds its id
 * (assigned in NewStream) and its transport, whose net.Conn is the socket
 * (checked as above); the goroutine's server request (or a root) is sent
 * to user space keyed by (socket, stream id), where the HTTP/2 parser
 * gives it to that stream's span. Stream ids are never reused on a
 * connection, so a parent cannot land on another call.
 *
 * The current goroutine is the g register (R14, amd64, Go 1.17+); the
 * arguments are in RAX, RBX, RCX..., the first result in RAX. Struct
 * offsets come from go_procs, per process.
 */
#ifndef OBI_GO_BPF_H
#define OBI_GO_BPF_H

#include "obi/common.bpf.h"
#include "obi/sockets.bpf.h"
#include "obi/hints.bpf.h"

#include "obi/tls.bpf.h"

#if defined(__TARGET_ARCH_x86)
#define GO_G(ctx) ((const void *)(ctx)->r14)
#define GO_ARG1(ctx) ((const void *)(ctx)->ax)
#define GO_ARG2(ctx) ((ctx)->bx)
#define GO_ARG3(ctx) ((ctx)->cx)
#define GO_RET1(ctx) ((ctx)->ax)
#else
/* Not attached elsewhere (user space reads amd64 binaries only). */
#define GO_G(ctx) ((const void *)0)
#define GO_ARG1(ctx) ((const void *)0)
#define GO_ARG2(ctx) 0
#define GO_ARG3(ctx) 0
#define GO_RET1(ctx) 0
#endif

/* A Go string header. */
struct go_string {
	const char *ptr;
	__s64 len;
};

/* The running goroutine's id (never 0 for a user goroutine). */
static __always_inline bool go_goid(struct pt_regs *ctx, const struct obi_go_offsets *off, __u64 *goid)
{
	const void *g = GO_G(ctx);
	if (!g || bpf_probe_read_user(goid, sizeof(*goid), g + off->g_goid))
		return false;
	return *goid != 0;
}

/* The descriptor of the TCP socket behind the net.Conn interface value at
 * iface, or -1. */
static __always_inline int go_net_conn_fd(const struct obi_go_offsets *off, const void *iface)
{
	const void *conn = NULL, *netfd = NULL;
	/* An interface is (itab, data): the data word is the *net.TCPConn. */
	if (bpf_probe_read_user(&conn, sizeof(conn), iface + 8) || !conn)
		return -1;
	if (bpf_probe_read_user(&netfd, sizeof(netfd), conn + off->net_conn_fd) || !netfd)
		return -1;
	__s64 family = 0, sotype = 0, fd = -1;
	struct go_string net = {};
	char name[3] = {};
	if (bpf_probe_read_user(&family, sizeof(family), netfd + off->netfd_family) ||
	    (family != AF_INET && family != AF_INET6))
		return -1;
	if (bpf_probe_read_user(&sotype, sizeof(sotype), netfd + off->netfd_sotype) || sotype != SOCK_STREAM)
		return -1;
	if (bpf_probe_read_user(&net, sizeof(net), netfd + off->netfd_net) || net.len < 3 || net.len > 4)
		return -1;
	if (bpf_probe_read_user(name, sizeof(name), net.ptr) || name[0] != 't' || name[1] != 'c' || name[2] != 'p')
		return -1;
	if (bpf_probe_read_user(&fd, sizeof(fd), netfd + off->netfd_pfd + off->poll_fd_sysfd) || fd < 0 ||
	    fd > 0x7fffffff)
		return -1;
	return (int)fd;
}

/* The descriptor of the plaintext TCP net.Conn at holder+conn_field
 * (holder: a *http.conn or *http.persistConn), or -1. */
static __always_inline int go_conn_fd(const struct obi_go_offsets *off, const void *holder, __u32 conn_field,
				      __u32 tls_field)
{
	const void *tls = NULL;
	if (!holder || bpf_probe_read_user(&tls, sizeof(tls), holder + tls_field) || tls)
		return -1;
	return go_net_conn_fd(off, holder + conn_field);
}

/* The descriptor of the TCP socket under the *tls.Conn held by the
 * net.Conn interface value at iface, or -1. */
static __always_inline int go_tls_conn_fd(const struct obi_go_offsets *off, const void *iface)
{
	const void *conn = NULL;
	if (bpf_probe_read_user(&conn, sizeof(conn), iface + 8) || !conn)
		return -1;
	return go_net_conn_fd(off, conn + off->tls_conn_conn);
}

/* The socket inode of an HTTPS net/http client connection (holder +
 * conn_field holds its *tls.Conn when the TLS state is set); 0 if none. */
static __always_inline __u64 go_conn_tls_ino(const struct obi_go_offsets *off, const void *holder, __u32 conn_field,
					     __u32 tls_field)
{
	const void *tls = NULL;
	if (!holder || bpf_probe_read_user(&tls, sizeof(tls), holder + tls_field) || !tls)
		return 0;
	struct obi_sock_ref ref;
	int fd = go_tls_conn_fd(off, holder + conn_field);
	if (fd < 0 || !fd_to_tcp_sock(fd, &ref))
		return 0;
	return ref.ino;
}

/* Entry of net/http.(*conn).serve(c *conn, ctx context.Context). */
static __always_inline int go_conn_serve(struct pt_regs *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	const struct obi_go_offsets *off = bpf_map_lookup_elem(&go_procs, &tgid);
	if (!off || !pid_traced(tgid))
		return 0;
	struct obi_go_key key = {.tgid = tgid};
	if (!go_goid(ctx, off, &key.goid))
		return 0;
	const void *c = GO_ARG1(ctx);
	int fd = go_conn_fd(off, c, off->http_conn_rwc, off->http_conn_tls_state);
	/* HTTPS: rwc is a *tls.Conn (its TLS state is set later, once this
	 * goroutine has done the handshake); a plain TCPConn fails the netFD
	 * checks read that way, and a *tls.Conn fails them read as a TCPConn. */
	if (fd < 0 && c)
		fd = go_tls_conn_fd(off, c + off->http_conn_rwc);
	if (fd < 0) {
		bpf_map_delete_elem(&go_serving, &key);
		return 0;
	}
	__u32 value = fd;
	bpf_map_update_elem(&go_serving, &key, &value, BPF_ANY);
	return 0;
}

/* Entry of net/http.(*persistConn).roundTrip(pc *persistConn, req *transportRequest). */
static __always_inline int go_round_trip(struct pt_regs *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	const struct obi_go_offsets *off = bpf_map_lookup_elem(&go_procs, &tgid);
	if (!off || !pid_traced(tgid))
		return 0;
	/* The hint's key: the client socket's inode, which is also the id of
	 * an HTTPS connection's TLS session (see go_tls_session). */
	__u64 conn_id = 0;
	int client_fd = go_conn_fd(off, GO_ARG1(ctx), off->persist_conn_conn, off->persist_conn_tls_state);
	struct obi_sock_ref client;
	if (client_fd >= 0 && fd_to_tcp_sock(client_fd, &client))
		conn_id = client.ino;
	else
		conn_id = go_conn_tls_ino(off, GO_ARG1(ctx), off->persist_conn_conn, off->persist_conn_tls_state);
	if (!conn_id) {
		stat_inc(OBI_STAT_HINTS_IGNORED);
		return 0;
	}
	/* The goroutine's server request, or a root: never a guess. */
	struct obi_tp tp = {};
	struct obi_go_key key = {.tgid = tgid};
	__u32 *server_fd = NULL;
	if (go_goid(ctx, off, &key.goid))
		server_fd = bpf_map_lookup_elem(&go_serving, &key);
	if (!server_fd || !server_request_tp(*server_fd, &tp))
		__builtin_memset(&tp, 0, sizeof(tp));
	bpf_map_update_elem(&hints, &conn_id, &tp, BPF_ANY);
	return 0;
}

/* At each `ret` of grpc-go's internal/transport.(*http2Client).NewStream
 * (ctx, callHdr) (*Stream, error): the stream's parent, for user space. */
static __always_inline int go_grpc_new_stream_ret(struct pt_regs *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	const struct obi_go_offsets *off = bpf_map_lookup_elem(&go_procs, &tgid);
	if (!off || !off->grpc_client_conn || !pid_traced(tgid))
		return 0;
	const void *s = GO_ARG1(ctx);
	const void *transport = NULL;
	__u32 id = 0;
	if (!s || bpf_probe_read_user(&id, sizeof(id), s + off->grpc_stream_id) ||
	    bpf_probe_read_user(&transport, sizeof(transport), s + off->grpc_stream_ct) || !transport)
		return 0;
	/* Client-initiated streams have odd ids (RFC 9113 5.1.1). */
	if (!(id & 1) || id > 0x7fffffff) {
		stat_inc(OBI_STAT_HINTS_IGNORED);
		return 0;
	}
	struct obi_sock_ref client;
	int fd = go_net_conn_fd(off, transport + off->grpc_client_conn);
	if (fd < 0 || !fd_to_tcp_sock(fd, &client)) {
		stat_inc(OBI_STAT_HINTS_IGNORED);
		return 0;
	}
	struct obi_event_hdr h = {};
	struct obi_go_key key = {.tgid = tgid};
	__u32 *server_fd = NULL;
	if (go_goid(ctx, off, &key.goid))
		server_fd = bpf_map_lookup_elem(&go_serving, &key);
	/* The goroutine's server request, or a root: never a guess. */
	if (!server_fd || !server_request_tp(*server_fd, &h.tp))
		__builtin_memset(&h.tp, 0, sizeof(h.tp));
	h.kind = OBI_EV_H2_STREAM_PARENT;
	h.dir = OBI_DIR_SEND;
	h.role = OBI_ROLE_CLIENT;
	h.tgid = tgid;
	h.tid = (__u32)bpf_get_current_pid_tgid();
	h.conn_id = client.ino;
	h.ts_enter = h.ts_exit = bpf_ktime_get_ns();
	h.bytes = id;
	events_output(&h, sizeof(h));
	return 0;
}

/* The plaintext session of the *tls.Conn c, tied to the socket it sits on
 * and known by that socket's inode (*id): a *tls.Conn lives on one socket
 * for good, and its address is no id (Go heaps start at the same address
 * in every process, and freed memory is reused). Tied again on every
 * call, before the call's own syscalls, so the socket's ciphertext is
 * skipped. NULL if c sits on no TCP socket. */
static __always_inline struct obi_conn_state *go_tls_session(const struct obi_go_offsets *off, __u32 tgid,
							     const void *c, __u64 *id)
{
	struct obi_sock_ref ref;
	int fd = c ? go_net_conn_fd(off, c + off->tls_conn_conn) : -1;
	if (fd < 0 || !fd_to_tcp_sock(fd, &ref))
		return NULL;
	struct obi_conn_state *cs = conn_get_or_init(&ref, tgid);
	if (!cs)
		return NULL;
	tls_bind(ref.ino, tgid, cs);
	struct obi_conn_state *ts = tls_state_get(ref.ino, tgid);
	if (ts)
		ts->flags |= OBI_CONN_TLS_EXACT;
	*id = ref.ino;
	return ts;
}

/* Entry of crypto/tls.(*Conn).Write(c *Conn, b []byte) (int, error). */
static __always_inline int go_tls_write(struct pt_regs *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	const struct obi_go_offsets *off = bpf_map_lookup_elem(&go_procs, &tgid);
	if (!off || !pid_traced(tgid))
		return 0;
	__s64 len = GO_ARG3(ctx);
	if (len <= 0)
		return 0;
	struct obi_ssl_args a = {};
	struct obi_conn_state *ts = go_tls_session(off, tgid, GO_ARG1(ctx), &a.ssl);
	if (!ts)
		return 0;
	a.buf = GO_ARG2(ctx);
	a.ts = bpf_ktime_get_ns();
	a.dir = OBI_DIR_SEND;
	/* A request that roundTrip gave no hint (HTTP/2, a bare tls.Conn) is a
	 * root: goroutines move between threads, so the thread cannot say. */
	bool rooted = ts->role != OBI_ROLE_SERVER && ts->last_dir != OBI_DIR_SEND;
	if (rooted) {
		struct obi_tp root = {};
		bpf_map_update_elem(&hints, &a.ssl, &root, BPF_NOEXIST);
	}
	tls_emit(&a, pid_tgid, len, ts, OBI_SC_GO_TLS_READ);
	/* A response after all (a connection joined midway, its role unknown
	 * until now): no hint is left behind for the socket. */
	if (rooted && ts->role == OBI_ROLE_SERVER)
		bpf_map_delete_elem(&hints, &a.ssl);
	return 0;
}

/* Entry of crypto/tls.(*Conn).Read(c *Conn, b []byte) (int, error): ties
 * the session before Read's own syscalls, saves the buffer. */
static __always_inline int go_tls_read(struct pt_regs *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	const struct obi_go_offsets *off = bpf_map_lookup_elem(&go_procs, &tgid);
	if (!off || !pid_traced(tgid))
		return 0;
	struct obi_go_key key = {.tgid = tgid};
	struct obi_ssl_args a = {};
	if (!go_goid(ctx, off, &key.goid) || !go_tls_session(off, tgid, GO_ARG1(ctx), &a.ssl))
		return 0;
	a.buf = GO_ARG2(ctx);
	a.ts = bpf_ktime_get_ns();
	a.dir = OBI_DIR_RECV;
	bpf_map_update_elem(&go_tls_reads, &key, &a, BPF_ANY);
	return 0;
}

/* At each `ret` of crypto/tls.(*Conn).Read: n (RAX) bytes were read. */
static __always_inline int go_tls_read_ret(struct pt_regs *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	const struct obi_go_offsets *off = bpf_map_lookup_elem(&go_procs, &tgid);
	if (!off)
		return 0;
	struct obi_go_key key = {.tgid = tgid};
	if (!go_goid(ctx, off, &key.goid))
		return 0;
	struct obi_ssl_args *saved = bpf_map_lookup_elem(&go_tls_reads, &key);
	if (!saved)
		return 0;
	struct obi_ssl_args a = *saved;
	bpf_map_delete_elem(&go_tls_reads, &key);
	__s64 n = GO_RET1(ctx);
	if (n <= 0)
		return 0;
	/* Tied at entry; an evicted session is not recreated untied. */
	struct obi_ssl_key k = {.ssl = a.ssl, .tgid = tgid};
	struct obi_conn_state *ts = bpf_map_lookup_elem(&tls_state, &k);
	if (!ts || ts->tuple.lport == 0)
		return 0;
	return tls_emit(&a, pid_tgid, n, ts, OBI_SC_GO_TLS_READ);
}

#endif /* OBI_GO_BPF_H */
