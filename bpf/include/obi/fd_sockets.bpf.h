/* SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0 */
/*
 * Sockets by descriptor, for kernels without BTF (the object built with
 * -DOBI_NO_BTF). Without BTF the layout of struct file, socket and sock is
 * unknown, so nothing here reads kernel memory; everything comes from
 * stable interfaces:
 *  - accept/accept4/connect tell which descriptor is a new connection;
 *    close and dup2/dup3 (a descriptor replaced) end it: fd_socks, keyed by
 *    (tgid, fd);
 *  - sock:inet_sock_set_state (a tracepoint with a fixed format) names the
 *    struct sock and the 4-tuple: CLOSE -> SYN_SENT runs inside the
 *    connect() of the thread, ESTABLISHED carries the addresses; a passive
 *    connection is matched to its accept() by the peer address accept
 *    writes to user memory; one accepted with a NULL address is named by
 *    its first read (tcp:tcp_rcv_space_adjust runs inside it);
 *  - sockets a process had before it was traced are registered by user
 *    space from /proc (crates/obi/src/ebpf/fd_sockets.rs).
 * An exec closes CLOEXEC descriptors without close(): entries learnt
 * before the process's last exec are not trusted (exec_gen).
 * The arguments of an exec are read from the old program when execve begins
 * (the new program's are found only through its task).
 * Maps: fd_socks, sk_info, passive_peers, exec_gen, exec_args, exec_args_scratch.
 */
#ifndef OBI_FD_SOCKETS_BPF_H
#define OBI_FD_SOCKETS_BPF_H

#include "obi/common.bpf.h"

struct obi_sock_ref {
	struct sock *sk;
	struct file *file; /* always NULL here */
	__u64 ino;         /* our connection id */
};

static __always_inline __u32 exec_generation(__u32 tgid)
{
	__u32 *gen = bpf_map_lookup_elem(&exec_gen, &tgid);
	return gen ? *gen : 0;
}

/* An exec of a traced process: what its descriptors were is forgotten. */
static __always_inline void fd_sockets_exec(__u32 tgid)
{
	__u32 *gen = bpf_map_lookup_elem(&exec_gen, &tgid);
	if (gen) {
		*gen += 1;
		return;
	}
	__u32 first = 1;
	bpf_map_update_elem(&exec_gen, &tgid, &first, BPF_ANY);
}

static __always_inline bool fd_to_tcp_sock(__u32 fd, struct obi_sock_ref *ref)
{
	struct obi_fd_key k = {.tgid = bpf_get_current_pid_tgid() >> 32, .fd = fd};
	struct obi_fd_sock *v = bpf_map_lookup_elem(&fd_socks, &k);
	if (!v)
		return false;
	if (v->exec_gen != exec_generation(k.tgid)) {
		bpf_map_delete_elem(&fd_socks, &k);
		return false;
	}
	ref->sk = (struct sock *)v->sk;
	ref->file = NULL;
	ref->ino = v->conn_id;
	return true;
}

/* Another descriptor holding the same socket is not known by descriptor:
 * closing one ends the connection for us. */
static __always_inline bool file_shared(struct file *file)
{
	return false;
}

/* The descriptor no longer names the socket (close, or dup2 over it). */
static __always_inline void fd_sock_forget(__u32 fd)
{
	struct obi_fd_key k = {.tgid = bpf_get_current_pid_tgid() >> 32, .fd = fd};
	bpf_map_delete_elem(&fd_socks, &k);
}

static __always_inline void read_tuple(struct sock *sk, struct obi_conn_tuple *t)
{
	__u64 key = (__u64)sk;
	struct obi_sk_info *info = key ? bpf_map_lookup_elem(&sk_info, &key) : NULL;
	if (info)
		*t = info->tuple;
}

static __always_inline void v4_mapped(__u8 dst[16], const __u8 addr[4])
{
	__builtin_memset(dst, 0, 10);
	dst[10] = 0xff;
	dst[11] = 0xff;
	__builtin_memcpy(dst + 12, addr, 4);
}

static __always_inline void tuple_from_state(const struct obi_tp_sock_state *ctx, struct obi_conn_tuple *t)
{
	t->family = ctx->family;
	t->lport = ctx->sport;
	t->rport = ctx->dport;
	if (ctx->family == AF_INET) {
		__u32 s = ctx->saddr, d = ctx->daddr;
		v4_mapped(t->laddr, (const __u8 *)&s);
		v4_mapped(t->raddr, (const __u8 *)&d);
	} else {
		__u64 s[2] = {ctx->saddr_v6[0], ctx->saddr_v6[1]};
		__u64 d[2] = {ctx->daddr_v6[0], ctx->daddr_v6[1]};
		__builtin_memcpy(t->laddr, s, 16);
		__builtin_memcpy(t->raddr, d, 16);
	}
}


/* Inside connect(): the socket a traced thread is connecting. */
static __always_inline void fd_sockets_syn_sent(__u64 sk)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct obi_io_args *a = bpf_map_lookup_elem(&pending_io, &pid_tgid);
	if (!a || a->op != OP_CONNECT)
		return;
	a->sk = sk;
	struct obi_sk_info info = {.sk = sk};
	bpf_map_update_elem(&sk_info, &sk, &info, BPF_ANY);
}

static __always_inline void peer_key_of(struct obi_peer_key *k, const struct obi_conn_tuple *t)
{
	__builtin_memcpy(k->addr, t->raddr, 16);
	k->port = t->rport;
}

/* Every state change of a TCP socket (sock:inet_sock_set_state). */
static __always_inline void fd_sockets_state(const struct obi_tp_sock_state *ctx)
{
	__u64 sk = ctx->skaddr;
	if (ctx->oldstate == OBI_TCP_CLOSE && ctx->newstate == OBI_TCP_SYN_SENT) {
		fd_sockets_syn_sent(sk);
		return;
	}
	struct obi_conn_tuple t = {};
	if (ctx->oldstate == OBI_TCP_SYN_SENT && ctx->newstate == OBI_TCP_ESTABLISHED) {
		/* Only the connections traced threads made have an entry. */
		struct obi_sk_info *info = bpf_map_lookup_elem(&sk_info, &sk);
		if (!info)
			return;
		tuple_from_state(ctx, &t);
		info->tuple = t;
		__u64 conn_id = info->conn_id;
		struct obi_conn_state *cs = conn_id ? bpf_map_lookup_elem(&conn_state, &conn_id) : NULL;
		if (cs)
			cs->tuple = t;
		return;
	}
	struct obi_peer_key pk = {};
	if (ctx->oldstate == OBI_TCP_SYN_RECV && ctx->newstate == OBI_TCP_ESTABLISHED) {
		/* Waits for the accept() that returns it. */
		struct obi_sk_info info = {.sk = sk};
		tuple_from_state(ctx, &info.tuple);
		peer_key_of(&pk, &info.tuple);
		if (bpf_map_update_elem(&passive_peers, &pk, &info, BPF_NOEXIST) == 0)
			return;
		struct obi_sk_info *other = bpf_map_lookup_elem(&passive_peers, &pk);
		if (other && other->sk != sk)
			other->ambiguous = 1;
		return;
	}
	if (ctx->newstate == OBI_TCP_CLOSE) {
		bpf_map_delete_elem(&sk_info, &sk);
		tuple_from_state(ctx, &t);
		peer_key_of(&pk, &t);
		struct obi_sk_info *waiting = bpf_map_lookup_elem(&passive_peers, &pk);
		if (waiting && waiting->sk == sk)
			bpf_map_delete_elem(&passive_peers, &pk);
	}
}

static __always_inline __u64 new_conn_id(void)
{
	/* Bit 63: never a socket inode (those registered from /proc). */
	return ((__u64)bpf_get_prandom_u32() << 32 | bpf_get_prandom_u32()) | (1ULL << 63);
}

static __always_inline bool fd_sock_learn(__u32 fd, struct obi_sk_info *info, struct obi_sock_ref *ref)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct obi_fd_key k = {.tgid = tgid, .fd = fd};
	struct obi_fd_sock v = {.conn_id = new_conn_id(), .sk = info->sk, .exec_gen = exec_generation(tgid)};
	info->conn_id = v.conn_id;
	if ((v.sk && bpf_map_update_elem(&sk_info, &v.sk, info, BPF_ANY)) ||
	    bpf_map_update_elem(&fd_socks, &k, &v, BPF_ANY)) {
		stat_inc(OBI_STAT_CONN_TABLE_FULL);
		return false;
	}
	ref->sk = (struct sock *)v.sk;
	ref->file = NULL;
	ref->ino = v.conn_id;
	return true;
}

/* connect() returned: the socket its thread was connecting (seen at
 * SYN_SENT) is now known by its descriptor. Not inlined (nor is
 * fd_sock_accepted): their frames stay off obi_sys_exit's, whose call chain
 * through the HTTP/2 walk must stay within 512 bytes of stack. */
static __noinline bool fd_sock_connected(__u32 fd, __u64 sk, struct obi_sock_ref *ref)
{
	if (!sk)
		return false; /* not TCP, or no SYN sent */
	struct obi_sk_info *seen = bpf_map_lookup_elem(&sk_info, &sk);
	struct obi_sk_info info = {.sk = sk};
	if (seen)
		info.tuple = seen->tuple;
	return fd_sock_learn(fd, &info, ref);
}

/* accept() returned fd and wrote the peer's address at uaddr: the passive
 * connection from that peer is the one accepted. With a NULL address
 * (libuv, so Node.js; Mosquitto) the descriptor is learnt without its
 * socket (ref->sk stays 0): its first read names it (fd_sockets_rcv), and
 * until then nothing of it is reported. */
static __noinline bool fd_sock_accepted(__u32 fd, __u64 uaddr, struct obi_sock_ref *ref)
{
	if (!uaddr) {
		struct obi_sk_info unknown = {};
		return fd_sock_learn(fd, &unknown, ref);
	}
	__u16 hdr[2] = {}; /* family, port (network order) */
	if (bpf_probe_read_user(hdr, sizeof(hdr), (const void *)uaddr))
		return false;
	struct obi_peer_key pk = {.port = bpf_ntohs(hdr[1])};
	__u8 a4[4];
	if (hdr[0] == AF_INET) {
		if (bpf_probe_read_user(a4, 4, (const void *)(uaddr + 4)))
			return false;
		v4_mapped(pk.addr, a4);
	} else if (hdr[0] == AF_INET6) {
		if (bpf_probe_read_user(pk.addr, 16, (const void *)(uaddr + 8)))
			return false;
	} else {
		return false;
	}
	struct obi_sk_info *waiting = bpf_map_lookup_elem(&passive_peers, &pk);
	if (!waiting)
		return false;
	struct obi_sk_info info = *waiting;
	bpf_map_delete_elem(&passive_peers, &pk);
	if (info.ambiguous)
		return false;
	return fd_sock_learn(fd, &info, ref);
}

/* The fields of tcp:tcp_rcv_space_adjust this uses: the tcp_event_sk
 * layout (fixed since Linux 4.16; later kernels append fields). */
struct obi_tp_tcp_sk {
	__u64 _common;
	__u64 skaddr;
	__u16 sport;
	__u16 dport;
	__u16 family;
	/* Addresses at offsets 22, 26, 30 and 46: read as 16-bit words, the
	 * widest loads the verifier allows there (context loads must be
	 * aligned to their size). */
	__u16 saddr[2];
	__u16 daddr[2];
	__u16 saddr_v6[8];
	__u16 daddr_v6[8];
};

/* n 16-bit words of the context into dst, one aligned load each. */
#define OBI_CTX_WORDS(dst, src, n)                        \
	do {                                              \
		_Pragma("unroll") for (int _i = 0; _i < (n); _i++) \
			(dst)[_i] = (src)[_i];                    \
	} while (0)

/* TCP's receive path copies data to a reading thread (tcp:tcp_rcv_space_adjust
 * runs inside its recv): if that read is on a descriptor accepted with a
 * NULL address, this names its socket and addresses. */
static __always_inline void fd_sockets_rcv(const struct obi_tp_tcp_sk *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct obi_io_args *a = bpf_map_lookup_elem(&pending_io, &pid_tgid);
	if (!a || a->op != OP_IO || a->dir != OBI_DIR_RECV)
		return;
	__u64 conn_id = a->conn_id;
	struct obi_conn_state *cs = bpf_map_lookup_elem(&conn_state, &conn_id);
	if (!cs || !(cs->flags & OBI_CONN_TUPLE_PENDING))
		return;
	struct obi_fd_key k = {.tgid = pid_tgid >> 32, .fd = a->fd};
	struct obi_fd_sock *v = bpf_map_lookup_elem(&fd_socks, &k);
	if (!v || v->conn_id != conn_id)
		return;
	struct obi_sk_info info = {.sk = ctx->skaddr, .conn_id = conn_id};
	struct obi_conn_tuple *t = &info.tuple;
	t->family = ctx->family;
	t->lport = ctx->sport;
	t->rport = ctx->dport;
	if (ctx->family == AF_INET) {
		__u16 s[2], d[2];
		OBI_CTX_WORDS(s, ctx->saddr, 2);
		OBI_CTX_WORDS(d, ctx->daddr, 2);
		v4_mapped(t->laddr, (const __u8 *)s);
		v4_mapped(t->raddr, (const __u8 *)d);
	} else {
		__u16 s[8], d[8];
		OBI_CTX_WORDS(s, ctx->saddr_v6, 8);
		OBI_CTX_WORDS(d, ctx->daddr_v6, 8);
		__builtin_memcpy(t->laddr, s, 16);
		__builtin_memcpy(t->raddr, d, 16);
	}
	v->sk = info.sk;
	a->sk = info.sk;
	cs->tuple = info.tuple;
	cs->flags &= ~OBI_CONN_TUPLE_PENDING;
	bpf_map_update_elem(&sk_info, &info.sk, &info, BPF_ANY);
}

/* A read on a descriptor accepted with a NULL address returned data without
 * TCP's receive path naming it: not a TCP socket (a Unix one); forgotten. */
static __always_inline void fd_sock_not_tcp(__u64 pid_tgid, __u32 fd, __u64 conn_id)
{
	struct obi_fd_key k = {.tgid = pid_tgid >> 32, .fd = fd};
	bpf_map_delete_elem(&fd_socks, &k);
	bpf_map_delete_elem(&conn_state, &conn_id);
}

/* Strings of argv kept at most (the CO-RE build copies the same 256 bytes
 * of the argument area). */
#define OBI_EXEC_MAX_ARGS 24

/* An execve begins: keep its arguments, NUL-separated, for the exec event
 * (exec_args_take). Only while execs are watched, or for traced processes. */
static __always_inline int exec_args_keep(__u64 argv)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	if (!argv || tgid == obi_agent_tgid || !(obi_watch_exec || pid_traced(tgid)))
		return 0;
	__u32 zero = 0;
	struct obi_exec_args *a = bpf_map_lookup_elem(&exec_args_scratch, &zero);
	if (!a)
		return 0;
	__u32 off = 0;
	for (int i = 0; i < OBI_EXEC_MAX_ARGS; i++) {
		__u64 arg = 0;
		if (off >= OBI_EXEC_ARGS_LEN ||
		    bpf_probe_read_user(&arg, sizeof(arg), (const void *)(argv + i * sizeof(arg))) || !arg)
			break;
		/* The mask the verifier needs; the barrier keeps clang from
		 * dropping it (it knows off < OBI_EXEC_ARGS_LEN here). */
		__u32 at = off;
		barrier_var(at);
		at &= OBI_EXEC_ARGS_LEN - 1;
		long n = bpf_probe_read_user_str(a->buf + at, OBI_EXEC_ARGS_LEN, (const void *)arg);
		if (n <= 0)
			break;
		off += n;
	}
	a->len = off > OBI_EXEC_ARGS_LEN ? OBI_EXEC_ARGS_LEN : off;
	bpf_map_update_elem(&exec_args, &tgid, a, BPF_ANY);
	return 0;
}

/* The exec happened: its kept arguments go into the event. (An exec from a
 * thread other than the main one keeps the process id, so tgid matches.) */
static __always_inline void exec_args_take(__u32 tgid, struct obi_exec_event *e)
{
	e->args_len = 0;
	struct obi_exec_args *a = bpf_map_lookup_elem(&exec_args, &tgid);
	if (!a)
		return;
	/* A constant size (the buffer holds twice as much): no bound for the
	 * verifier to lose. */
	__u32 len = a->len;
	if (len && bpf_probe_read_kernel(e->args, OBI_EXEC_ARGS_LEN, a->buf) == 0)
		e->args_len = len > OBI_EXEC_ARGS_LEN ? OBI_EXEC_ARGS_LEN : len;
	bpf_map_delete_elem(&exec_args, &tgid);
}

#endif /* OBI_FD_SOCKETS_BPF_H */
