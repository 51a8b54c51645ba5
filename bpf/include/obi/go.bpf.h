/* SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0 */
/*
 * Go net/http: the right parent for a client call of a Go server. Go runs
 * each server connection on a goroutine and goroutines move between
 * threads, so the thread-based guess cannot be used; the goroutine can.
 *
 * Two uprobes, at function entries only (Go moves stacks: no uretprobes):
 * - net/http.(*conn).serve, once per server connection, records which
 *   socket the running goroutine serves (go_serving);
 * - net/http.(*persistConn).roundTrip, once per client request, leaves a
 *   parent hint for the client socket (the hints map of obi/hints.bpf.h):
 *   the request currently read on the socket the goroutine serves, or a
 *   root when the goroutine serves none (a goroutine the handler started,
 *   a background job). The client request's first send consumes it.
 * Only plaintext connections whose net.Conn really is a TCP netFD (family,
 * socket type and network name are checked before its descriptor is used)
 * are followed: anything else gets no hint, never a guessed one.
 *
 * The current goroutine is the g register (R14, amd64, Go 1.17+); the
 * first argument is in RAX. Struct offsets come from go_procs, per process.
 */
#ifndef OBI_GO_BPF_H
#define OBI_GO_BPF_H

#include "obi/common.bpf.h"
#include "obi/sockets.bpf.h"
#include "obi/hints.bpf.h"

#if defined(__TARGET_ARCH_x86)
#define GO_G(ctx) ((const void *)(ctx)->r14)
#define GO_ARG1(ctx) ((const void *)(ctx)->ax)
#else
/* Not attached elsewhere (user space reads amd64 binaries only). */
#define GO_G(ctx) ((const void *)0)
#define GO_ARG1(ctx) ((const void *)0)
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

/* The descriptor of the plaintext TCP net.Conn at holder+conn_field
 * (holder: a *http.conn or *http.persistConn), or -1. */
static __always_inline int go_conn_fd(const struct obi_go_offsets *off, const void *holder, __u32 conn_field,
				      __u32 tls_field)
{
	const void *tls = NULL, *conn = NULL, *netfd = NULL;
	if (!holder || bpf_probe_read_user(&tls, sizeof(tls), holder + tls_field) || tls)
		return -1;
	/* An interface is (itab, data): the data word is the *net.TCPConn. */
	if (bpf_probe_read_user(&conn, sizeof(conn), holder + conn_field + 8) || !conn)
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
	int fd = go_conn_fd(off, GO_ARG1(ctx), off->http_conn_rwc, off->http_conn_tls_state);
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
	int client_fd = go_conn_fd(off, GO_ARG1(ctx), off->persist_conn_conn, off->persist_conn_tls_state);
	struct obi_sock_ref client;
	if (client_fd < 0 || !fd_to_tcp_sock(client_fd, &client)) {
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
	bpf_map_update_elem(&hints, &client.ino, &tp, BPF_ANY);
	return 0;
}

#endif /* OBI_GO_BPF_H */
