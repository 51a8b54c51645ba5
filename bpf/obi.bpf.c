// SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0
/*
 * obi-rs kernel side: tracepoints only (no kprobes, no fentry), so it loads
 * on kernels built without them. Syscalls come through the raw sys_enter and
 * sys_exit tracepoints, dispatched by number (obi/syscalls.bpf.h).
 *
 * Every data syscall has a small entry program that saves its arguments per
 * thread and one shared exit program that turns the result into an event.
 * Only threads of processes in traced_pids (and only TCP sockets) go further.
 *
 * Layout, as in libbpf-tools: this file holds every program, map and
 * load-time constant; bpf/include/obi/ holds what they are built from.
 *   abi.h           what user space reads and writes (mirrored in Rust)
 *   base.bpf.h      kernel and libbpf includes, uapi constants
 *   capacity.bpf.h  map sizes, named by what they bound
 *   types.bpf.h     kernel-private map value types
 *   *.bpf.h         helpers, one header per concern
 * C wants a map's value type before the map and the map before any function
 * naming it, so the order below is: types, constants and maps, then the
 * helpers, then the programs.
 */
#include "obi/base.bpf.h"
#include "obi/capacity.bpf.h"
#include "obi/types.bpf.h"

/*
 * The sources are dual licensed GPL-2.0-only OR Apache-2.0 (SPDX lines):
 * Apache-2.0 like the rest of the workspace, GPL-2.0 because the programs
 * call GPL-only helpers (bpf_probe_read_user, bpf_probe_read_kernel,
 * bpf_get_current_task...), which the kernel lets only programs declaring
 * a GPL-compatible license call. The vendored libbpf headers keep their own
 * license (LGPL-2.1 OR BSD-2-Clause).
 *
 * Of the strings the kernel accepts as GPL-compatible (include/linux/
 * license.h), "GPL and additional rights" ("GPL v2 rights and more") says
 * this best: "GPL" would hide the Apache-2.0 option, and the "Dual X/GPL"
 * strings name a license we do not use.
 */
char LICENSE[] SEC("license") = "GPL and additional rights";

/* ---- load-time constants (set by user space; .rodata is then frozen) ---- */

const volatile __u32 obi_agent_tgid = 0;       /* never trace ourselves */
const volatile __u32 obi_capture_size = 1024;   /* payload bytes per syscall */
const volatile __u64 obi_wakeup_bytes = 262144; /* wake user space past this */
const volatile __u8 obi_watch_exec = 0;         /* report every exec */
const volatile __u8 obi_trace_all = 0;          /* no PID filter (system wide) */
/* 0 = off, 1 = inject W3C headers into HTTP/1 requests. */
const volatile __u8 obi_ctx_propagation = 0;
/* This architecture's numbers of the receives obi_exit_recv tells apart
 * (read is the default shape); -1: no such syscall. */
const volatile long obi_nr_readv = -1;
const volatile long obi_nr_recvfrom = -1;
const volatile long obi_nr_recvmsg = -1;

/* ---- maps: processes, events, counters ---------------------------------- */

/* Processes selected by discovery; forked children are added in-kernel. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, OBI_MAX_TRACED_PROCS);
	__type(key, __u32);
	__type(value, struct obi_pid_info);
} traced_pids SEC(".maps");

/* Data and connection events; size set by user space. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} events SEC(".maps");

/* Process lifecycle events. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 << 10);
} proc_events SEC(".maps");

/* Indexed by OBI_STAT_*. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, OBI_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} obi_stats SEC(".maps");

/* ---- maps: context propagation (see obi/propagation.bpf.h) -------------- */

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, OBI_MAX_THREADS);
	__type(key, __u64); /* pid_tgid of the sending thread */
	__type(value, struct obi_outgoing);
} outgoing_tp SEC(".maps");

/* Sockets a traced process is connecting, by socket cookie, until they are
 * established and can join sock_dir. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, OBI_MAX_CONNECTING);
	__type(key, __u64);
	__type(value, __u8);
} connecting SEC(".maps");

/* The connect() a traced thread is in, per CPU: sockops cannot ask which
 * task runs it before Linux 6.10 (bpf_get_current_pid_tgid), so its
 * TCP_CONNECT_CB, which runs inside that connect() on the same CPU, matches
 * the destination instead (see obi_sockops). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct obi_connect_slot);
} connect_slot SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, OBI_MAX_CONNS);
	__type(key, __u64); /* socket cookie */
	__type(value, __u32);
} sock_dir SEC(".maps");

/* ---- maps: connections (see obi/conn.bpf.h) ----------------------------- */

/* Keyed by socket inode. LRU so sockets we never see closed age out. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, OBI_MAX_CONNS);
	__type(key, __u64);
	__type(value, struct obi_conn_state);
} conn_state SEC(".maps");

/* Connections user space has classified as not worth capturing (unknown
 * protocol, TLS ciphertext traced through uprobes...). Keyed by inode. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, OBI_MAX_IGNORED_CONNS);
	__type(key, __u64);
	__type(value, __u8);
} ignored_conns SEC(".maps");

/* Plaintext state of TLS connections, keyed by (SSL*, tgid). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, OBI_MAX_TLS_SESSIONS);
	__type(key, struct obi_ssl_key);
	__type(value, struct obi_conn_state);
} tls_state SEC(".maps");

/* Keyed by pid_tgid: the server request each thread last read; live while
 * its connection waits for the response (server_trace_live). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, OBI_MAX_THREADS);
	__type(key, __u64);
	__type(value, struct obi_server_trace);
} server_traces SEC(".maps");

/* Threads that serve several things at once (event loops, seen waiting on
 * many sockets or reading a request while another is open): their client
 * calls never take a thread-based parent. Keyed by pid_tgid; sticky. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, OBI_MAX_THREADS);
	__type(key, __u64);
	__type(value, __u8);
} mux_threads SEC(".maps");

/* Members added to each epoll set a traced process created while watched,
 * keyed by (tgid << 32 | epoll fd): a wait on a set of one descriptor does
 * not multiplex (psycopg waits for its one socket that way). A set missing
 * here (created before tracing, inherited, dup'd, evicted) counts as many. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, OBI_MAX_THREADS);
	__type(key, __u64);
	__type(value, __u32);
} epoll_sets SEC(".maps");

/* An epoll_ctl ADD or DEL in flight, per thread: (epoll_sets key << 2) |
 * EPOLL_CHANGE_*. */
#define EPOLL_CHANGE_ADD 0
#define EPOLL_CHANGE_DEL 1
#define EPOLL_CHANGE_ADD_SET 2
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, OBI_MAX_THREADS);
	__type(key, __u64);
	__type(value, __u64);
} epoll_ctl_args SEC(".maps");

/* One byte per local TCP port on which a traced process accepted a
 * connection, eight per element: lets sk_data_ready skip every other socket
 * of the host with an array read instead of a hash lookup. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536 / 8);
	__type(key, __u32);
	__type(value, __u64);
} server_port_bits SEC(".maps");

/* Arrival of each server socket's next request (see obi/arrival.bpf.h),
 * keyed by struct sock *. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, OBI_MAX_ARRIVALS);
	__type(key, __u64);
	__type(value, struct obi_arrival);
} arrivals SEC(".maps");

/* Parent hints from runtimes (see obi/hints.bpf.h), keyed by the inode of
 * the client socket whose next request they parent; valid == 0: a root. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, OBI_MAX_HINTS);
	__type(key, __u64);
	__type(value, struct obi_tp);
} hints SEC(".maps");

/* ---- maps: capture (see obi/capture.bpf.h, obi/h2.bpf.h) ---------------- */

/* The event under construction, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct obi_scratch);
} scratch SEC(".maps");

/* The traceparent scan of the head in scratch, per CPU (obi/propagation.bpf.h). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct obi_head_scan);
} head_scan SEC(".maps");

/* HTTP/2 frame walk between syscalls, keyed by socket inode, or by SSL*
 * | OBI_H2_TLS_KEY for TLS sessions. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, OBI_MAX_H2_CONNS);
	__type(key, __u64);
	__type(value, struct obi_h2_state);
} h2_state SEC(".maps");

/* The walk of the current syscall, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct obi_h2_walk);
} h2_walk SEC(".maps");

/* ---- maps: TLS (see obi/tls.bpf.h) -------------------------------------- */

/* SSL call in progress, per thread. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, OBI_MAX_THREADS);
	__type(key, __u64);
	__type(value, struct obi_ssl_args);
} ssl_args SEC(".maps");

/* SSL object (memory BIO) that wrote plaintext and waits for the thread's
 * next socket send to learn its connection. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, OBI_MAX_THREADS);
	__type(key, __u64);
	__type(value, __u64);
} ssl_pending_bind SEC(".maps");

/* Last TCP socket each thread of a TLS process read from. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, OBI_MAX_THREADS);
	__type(key, __u64);
	__type(value, __u64);
} last_recv_conn SEC(".maps");

/* ---- maps: syscalls and process lifecycle (programs below) -------------- */

/* Arguments of the syscall each thread is in, from entry to exit: one slot
 * per thread, kept between syscalls (op 0: none in flight; see save_args). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, OBI_MAX_THREADS);
	__type(key, __u64);
	__type(value, struct obi_io_args);
} pending_io SEC(".maps");

/* Threads mapping a libssl right now; reported once the mapping exists. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, OBI_MAX_MMAPS_IN_FLIGHT);
	__type(key, __u64);
	__type(value, __u8);
} mmap_libssl SEC(".maps");

#ifdef OBI_NO_BTF
/* ---- maps: sockets by descriptor, without kernel BTF (obi/fd_sockets.bpf.h) */

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, OBI_MAX_CONNS);
	__type(key, struct obi_fd_key);
	__type(value, struct obi_fd_sock);
} fd_socks SEC(".maps");

/* TCP sockets traced threads connect or accept, keyed by struct sock *. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, OBI_MAX_CONNS);
	__type(key, __u64);
	__type(value, struct obi_sk_info);
} sk_info SEC(".maps");

/* Passively opened connections waiting for their accept(), by peer. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, OBI_MAX_ARRIVALS);
	__type(key, struct obi_peer_key);
	__type(value, struct obi_sk_info);
} passive_peers SEC(".maps");

/* Execs of each traced process, so descriptors an exec closed are not trusted. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, OBI_MAX_TRACED_PROCS);
	__type(key, __u32);
	__type(value, __u32);
} exec_gen SEC(".maps");

/* The arguments of an execve in flight, by process: after the exec they are
 * in the new program's memory, which only the task's mm would locate. */
struct obi_exec_args {
	__u32 len;
	__u32 _pad;
	/* Twice the copied size: each string read starts below the first half. */
	__u8 buf[2 * OBI_EXEC_ARGS_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct obi_exec_args);
} exec_args_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct obi_exec_args);
} exec_args SEC(".maps");
#endif

/* The handler of each syscall, at its number (see obi/syscalls.bpf.h). */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, OBI_SYSCALL_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
} sys_enter_progs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, OBI_SYSCALL_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
} sys_exit_progs SEC(".maps");

/* ---- helpers (they use the maps above) ---------------------------------- */

#include "obi/common.bpf.h"
#include "obi/sockets.bpf.h"
#include "obi/conn.bpf.h"
#include "obi/arrival.bpf.h"
#include "obi/capture.bpf.h"
#include "obi/tls.bpf.h"
#include "obi/h2.bpf.h"
#include "obi/syscalls.bpf.h"

/* ---- syscall dispatch (see obi/syscalls.bpf.h) -------------------------- */

SEC("raw_tracepoint/sys_enter")
int obi_syscall_enter(void *ctx)
{
	/* sys_enter(regs, id) */
	bpf_tail_call(ctx, &sys_enter_progs, (__u32)((__u64 *)ctx)[1]);
	return 0;
}

SEC("raw_tracepoint/sys_exit")
int obi_syscall_exit(void *ctx)
{
	/* sys_exit(regs, ret): the number is in the saved registers. */
	long nr = sc_exit_nr(((__u64 *)ctx)[0]);
	if (nr >= 0)
		bpf_tail_call(ctx, &sys_exit_progs, (__u32)nr);
	return 0;
}

/* ---- syscall programs --------------------------------------------------- */

/* A thread's slot in pending_io stays from one syscall to the next (op 0:
 * nothing in flight) and is written in place: an LRU update and delete per
 * syscall cost ~0.8 µs of a saturated nginx's request (bench/profile_nginx.sh).
 * Only the thread itself touches it; sched_process_exit removes it. */
static __always_inline void save_args(__u64 pid_tgid, struct obi_io_args *a)
{
	struct obi_io_args *slot = bpf_map_lookup_elem(&pending_io, &pid_tgid);
	if (slot) {
		*slot = *a;
		return;
	}
	if (bpf_map_update_elem(&pending_io, &pid_tgid, a, BPF_ANY))
		stat_inc(OBI_STAT_PENDING_FULL);
}

/* Copies the first bytes of a send (before it happens) into the scratch
 * event, to infer roles and to arm context propagation. */
static __always_inline __u32 peek_send(struct obi_scratch *s, __u64 buf, __u32 iovcnt, __u64 count)
{
	if (!buf)
		return 0;
	if (iovcnt) {
		struct iovec iov;
		if (bpf_probe_read_user(&iov, sizeof(iov), (const void *)buf))
			return 0;
		buf = (__u64)iov.iov_base;
		count = iov.iov_len;
	}
	__u32 cap = capture_limit();
	if (cap > OBI_TP_SCAN_LEN)
		cap = OBI_TP_SCAN_LEN;
	return copy_user_at(s, 0, (const void *)buf, count, cap);
}

/* What every data syscall of a traced thread does first: find the
 * connection and decide whether its bytes are wanted. NULL: not ours (not
 * TCP, TLS, ignored); else `a` describes the transfer. */
static __always_inline struct obi_conn_state *io_prepare(__u64 pid_tgid, __u32 fd, __u64 buf, __u32 iovcnt,
							  __u8 dir, __u8 sc, struct obi_io_args *a)
{
	struct obi_sock_ref ref;
	if (!fd_to_tcp_sock(fd, &ref))
		return NULL;
	struct obi_conn_state *cs = conn_get_or_init(&ref, pid_tgid >> 32);
	if (!cs)
		return NULL;
	/* A socket handed to a forked child (or exec'd handler) is the child's:
	 * its state is swept with the child if it exits without close(). */
	if (cs->tgid != pid_tgid >> 32)
		cs->tgid = pid_tgid >> 32;
	tls_observe_syscall(pid_tgid, ref.ino, cs, dir);
	/* TLS connections are traced from their plaintext (uprobes) instead. */
	if (cs->flags & OBI_CONN_TLS)
		return NULL;
	if (conn_ignored(ref.ino)) {
		stat_inc(OBI_STAT_IGNORED);
		return NULL;
	}
	a->ts_enter = bpf_ktime_get_ns();
	a->conn_id = ref.ino;
	a->buf = buf;
	a->fd = fd;
	a->iovcnt = iovcnt;
	a->op = OP_IO;
	a->dir = dir;
	a->syscall = sc;
	a->sk = (__u64)ref.sk;
	return cs;
}

/* Only from syscall entries, which OBI_SYSCALL_ENTER filters by process. */
static __always_inline int io_enter(__u32 fd, __u64 buf, __u32 iovcnt, __u64 count, __u8 dir, __u8 sc)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct obi_io_args a = {};
	struct obi_conn_state *cs = io_prepare(pid_tgid, fd, buf, iovcnt, dir, sc, &a);
	if (!cs)
		return 0;
	if (dir == OBI_DIR_SEND) {
		/* Outgoing requests get their trace context before any byte leaves,
		 * so a sk_msg program can inject it. */
		if (cs->last_dir != OBI_DIR_SEND) {
			struct obi_scratch *s = NULL;
			__u32 n = 0;
			if (cs->role == OBI_ROLE_UNKNOWN || (obi_ctx_propagation && cs->role == OBI_ROLE_CLIENT)) {
				s = scratch_get();
				if (s)
					n = peek_send(s, buf, iovcnt, count);
			}
			a.flags = conn_msg_start(cs, a.conn_id, dir, pid_tgid, s ? s->data : NULL, n);
			if (cs->role == OBI_ROLE_SERVER)
				arrival_rearm(a.sk);
			if (obi_ctx_propagation && s && (a.flags & OBI_F_REQUEST) && cs->role == OBI_ROLE_CLIENT &&
			    !(cs->flags & OBI_CONN_H2) && http1_request_start(s->data, n) &&
			    pid_selected(pid_tgid >> 32))
				arm_injection(s->data, n, &cs->tp, pid_tgid);
		}
	}
	save_args(pid_tgid, &a);
	return 0;
}

static __always_inline int msg_enter(__u32 fd, __u64 msghdr, __u8 dir, __u8 sc)
{
	struct user_msghdr mh;
	if (bpf_probe_read_user(&mh, sizeof(mh), (const void *)msghdr))
		return 0;
	__u32 cnt = mh.msg_iovlen;
	if (cnt == 0)
		return 0;
	return io_enter(fd, (__u64)mh.msg_iov, cnt, 0, dir, sc);
}

#ifdef OBI_NO_BTF
/* Receives are handled at their return alone (obi_exit_recv), except here:
 * the no-BTF build's tcp_rcv_space_adjust hook must know, during the read,
 * which descriptor it is on (obi/fd_sockets.bpf.h). */
OBI_SYSCALL_ENTER(obi_enter_read)
{
	return io_enter(ctx->args[0], ctx->args[1], 0, ctx->args[2], OBI_DIR_RECV, OBI_SC_READ);
}


OBI_SYSCALL_ENTER(obi_enter_readv)
{
	return io_enter(ctx->args[0], ctx->args[1], ctx->args[2], 0, OBI_DIR_RECV, OBI_SC_READV);
}

OBI_SYSCALL_ENTER(obi_enter_recvfrom)
{
	if (ctx->args[3] & MSG_PEEK) /* peeked bytes are read again later */
		return 0;
	return io_enter(ctx->args[0], ctx->args[1], 0, ctx->args[2], OBI_DIR_RECV, OBI_SC_RECVFROM);
}

OBI_SYSCALL_ENTER(obi_enter_recvmsg)
{
	if (ctx->args[2] & MSG_PEEK)
		return 0;
	return msg_enter(ctx->args[0], ctx->args[1], OBI_DIR_RECV, OBI_SC_RECVMSG);
}
#endif

OBI_SYSCALL_ENTER(obi_enter_write)
{
	return io_enter(ctx->args[0], ctx->args[1], 0, ctx->args[2], OBI_DIR_SEND, OBI_SC_WRITE);
}

OBI_SYSCALL_ENTER(obi_enter_writev)
{
	return io_enter(ctx->args[0], ctx->args[1], ctx->args[2], 0, OBI_DIR_SEND, OBI_SC_WRITEV);
}

OBI_SYSCALL_ENTER(obi_enter_sendto)
{
	return io_enter(ctx->args[0], ctx->args[1], 0, ctx->args[2], OBI_DIR_SEND, OBI_SC_SENDTO);
}

OBI_SYSCALL_ENTER(obi_enter_sendmsg)
{
	return msg_enter(ctx->args[0], ctx->args[1], OBI_DIR_SEND, OBI_SC_SENDMSG);
}

OBI_SYSCALL_ENTER(obi_enter_sendfile)
{
	/* out_fd is the socket; no user buffer to capture. */
	return io_enter(ctx->args[0], 0, 0, 0, OBI_DIR_SEND, OBI_SC_SENDFILE);
}

static __always_inline int fd_op_enter(__u32 fd, __u8 op, __u8 sc)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct obi_io_args a = {};
	a.ts_enter = bpf_ktime_get_ns();
	a.fd = fd;
	a.op = op;
	a.syscall = sc;
	save_args(pid_tgid, &a);
	return 0;
}

/* accept(fd, addr, len) and accept4(fd, addr, len, flags) */
OBI_SYSCALL_ENTER(obi_enter_accept)
{
#ifdef OBI_NO_BTF
	/* The peer address accept() writes names the connection (obi/fd_sockets.bpf.h). */
	fd_op_enter(ctx->args[0], OP_ACCEPT, OBI_SC_ACCEPT);
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct obi_io_args *a = bpf_map_lookup_elem(&pending_io, &pid_tgid);
	if (a && a->op == OP_ACCEPT)
		a->buf = ctx->args[1];
	return 0;
#else
	return fd_op_enter(ctx->args[0], OP_ACCEPT, OBI_SC_ACCEPT);
#endif
}

/* connect(fd, addr, len) */
OBI_SYSCALL_ENTER(obi_enter_connect)
{
	/* Only selected processes: a socket in sock_dir is one sk_msg may change. */
	if (obi_ctx_propagation && pid_selected(bpf_get_current_pid_tgid() >> 32))
		connect_slot_fill(ctx->args[1], ctx->args[2]);
	return fd_op_enter(ctx->args[0], OP_CONNECT, OBI_SC_CONNECT);
}

static __always_inline void fill_hdr(struct obi_event_hdr *h, __u8 kind, __u64 pid_tgid, struct obi_io_args *a,
				     __u64 conn_id, struct obi_conn_state *cs)
{
	h->kind = kind;
	h->dir = a->dir;
	h->role = cs->role;
	h->flags = 0;
	h->tgid = pid_tgid >> 32;
	h->tid = (__u32)pid_tgid;
	h->syscall = a->syscall;
	h->tail_len = 0;
	h->captured = 0;
	h->conn_id = conn_id;
	h->ts_enter = a->ts_enter;
	h->ts_exit = bpf_ktime_get_ns();
	h->bytes = 0;
	h->tuple = cs->tuple;
	h->tp = cs->tp;
	h->queued_at = 0;
}

static __always_inline void emit(struct obi_scratch *s)
{
	__u64 size = sizeof(struct obi_event_hdr) + s->hdr.captured;
	barrier_var(size);
	if (size > sizeof(struct obi_scratch))
		return;
	events_output(s, size);
}

/* First n bytes of a syscall's buffer (plain, or the first iovec). */
static __always_inline int read_first(__u64 buf, __u32 iovcnt, __u8 *dst, __u32 n)
{
	if (iovcnt) {
		struct iovec iov;
		if (bpf_probe_read_user(&iov, sizeof(iov), (const void *)buf) || iov.iov_len < n)
			return -1;
		buf = (__u64)iov.iov_base;
	}
	return bpf_probe_read_user(dst, n, (const void *)buf);
}

static __always_inline int exit_io(__u64 pid_tgid, struct obi_io_args *a, long ret)
{
	if (ret <= 0)
		return 0;
	struct obi_conn_state *cs = conn_get(a->conn_id);
	if (!cs)
		return 0;
#ifdef OBI_NO_BTF
	if (cs->flags & OBI_CONN_TUPLE_PENDING) {
		/* A send before any read cannot be told TCP yet: not reported. */
		if (a->dir == OBI_DIR_RECV)
			fd_sock_not_tcp(pid_tgid, a->fd, a->conn_id);
		return 0;
	}
#endif
	struct obi_scratch *s = scratch_get();
	if (!s)
		return 0;
	fill_hdr(&s->hdr, OBI_EV_DATA, pid_tgid, a, a->conn_id, cs);
	s->hdr.bytes = ret;

	/* Sends decided their message start at entry; receives decide now. */
	bool msg_start = a->dir == OBI_DIR_SEND ? (a->flags & OBI_F_MSG_START) : cs->last_dir != OBI_DIR_RECV;
	bool h2 = cs->flags & OBI_CONN_H2;
	__u64 h2_start = 0;
	if (!h2 && msg_start && a->buf && ret >= OBI_H2_PREFACE_LEN) {
		__u8 pre[OBI_H2_PREFACE_LEN];
		if (read_first(a->buf, a->iovcnt, pre, sizeof(pre)) == 0 && is_h2_preface(pre)) {
			cs->flags |= OBI_CONN_H2;
			h2 = true;
			h2_start = OBI_H2_PREFACE_LEN;
		}
	}
	s->hdr.captured = 0;
	if (a->buf && !h2) {
		if (a->iovcnt)
			capture_iov(s, a->buf, a->iovcnt, ret);
		else
			capture_plain(s, a->buf, ret);
	}
	__u8 flags = a->flags;
	/* HTTP/2 headers are HPACK-coded: no traceparent to find in raw bytes
	 * (captured is 0 for them). */
	if (a->dir == OBI_DIR_RECV && msg_start) {
		flags = conn_msg_start(cs, a->conn_id, OBI_DIR_RECV, pid_tgid, s->data, s->hdr.captured);
	}
	if (!h2 && s->hdr.captured < ret)
		flags |= OBI_F_TRUNCATED;
	/* Context and role may have been decided just now. */
	s->hdr.flags = flags;
	s->hdr.role = cs->role;
	s->hdr.tp = cs->tp;
	if (h2) {
		/* Frame by frame, into as many events as it takes. */
		if (a->buf)
			h2_capture(a->conn_id, OBI_H2_HOW(a->dir, h2_start), a->buf, a->iovcnt, ret);
		return 0;
	}
	/* After the HTTP/2 branch: splitting states before its frame walk would
	 * multiply the verifier's work on it. */
	if (a->dir == OBI_DIR_RECV && (flags & OBI_F_REQUEST) && cs->role == OBI_ROLE_SERVER)
		s->hdr.queued_at = arrival_take(a->sk);
	emit(s);
	return 0;
}

static __always_inline int exit_open(__u64 pid_tgid, struct obi_io_args *a, __u32 fd, __u8 role)
{
	struct obi_sock_ref ref;
#ifdef OBI_NO_BTF
	bool known = role == OBI_ROLE_SERVER ? fd_sock_accepted(fd, a->buf, &ref) : fd_sock_connected(fd, a->sk, &ref);
	if (!known)
		return 0;
#else
	if (!fd_to_tcp_sock(fd, &ref))
		return 0;
#endif
	struct obi_conn_state *cs = conn_init(&ref, pid_tgid >> 32, role);
	if (!cs)
		return 0;
#ifdef OBI_NO_BTF
	if (!ref.sk) {
		/* Accepted with a NULL address: reported once a read names it. */
		cs->flags |= OBI_CONN_TUPLE_PENDING;
		return 0;
	}
#endif
	if (role == OBI_ROLE_SERVER)
		arrival_note_port(cs->tuple.lport);
	struct obi_scratch *s = scratch_get();
	if (!s)
		return 0;
	fill_hdr(&s->hdr, OBI_EV_CONN_OPEN, pid_tgid, a, ref.ino, cs);
	emit(s);
	return 0;
}

/* One exit program for every syscall above: the saved arguments say what
 * the syscall was. */
OBI_SYSCALL_EXIT(obi_sys_exit)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct obi_io_args *saved = bpf_map_lookup_elem(&pending_io, &pid_tgid);
	if (!saved || !saved->op)
		return 0;
	struct obi_io_args a = *saved;
	saved->op = 0;
	long ret = ctx->ret;
	switch (a.op) {
	case OP_IO:
		return exit_io(pid_tgid, &a, ret);
	case OP_ACCEPT:
		if (ret >= 0)
			return exit_open(pid_tgid, &a, ret, OBI_ROLE_SERVER);
		return 0;
	case OP_CONNECT:
		if (ret == 0 || ret == -EINPROGRESS)
			return exit_open(pid_tgid, &a, a.fd, OBI_ROLE_CLIENT);
		return 0;
	}
	return 0;
}

#ifndef OBI_NO_BTF
/* Receives, at their return alone: the registers still hold the arguments,
 * and nothing needs doing before the bytes arrive. One program run per
 * receive, and a receive that found nothing (EAGAIN in an event loop)
 * costs no socket lookup. */
OBI_SYSCALL_EXIT_ARGS(obi_exit_recv)
{
	long ret = ctx->ret;
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	/* A TLS library's failed read still binds its session to the socket. */
	if (ret <= 0 && !tls_pid(pid_tgid >> 32))
		return 0;
	__u64 buf = ctx->args[1];
	__u32 iovcnt = 0;
	__u8 sc = OBI_SC_READ;
	if (ctx->nr == obi_nr_recvfrom) {
		if (ctx->args[3] & MSG_PEEK) /* peeked bytes are read again later */
			return 0;
		sc = OBI_SC_RECVFROM;
	} else if (ctx->nr == obi_nr_readv) {
		iovcnt = ctx->args[2];
		sc = OBI_SC_READV;
	} else if (ctx->nr == obi_nr_recvmsg) {
		if (ctx->args[2] & MSG_PEEK)
			return 0;
		struct user_msghdr mh;
		if (bpf_probe_read_user(&mh, sizeof(mh), (const void *)buf))
			return 0;
		buf = (__u64)mh.msg_iov;
		iovcnt = mh.msg_iovlen;
		if (iovcnt == 0)
			return 0;
		sc = OBI_SC_RECVMSG;
	}
	struct obi_io_args a = {};
	if (!io_prepare(pid_tgid, ctx->args[0], buf, iovcnt, OBI_DIR_RECV, sc, &a))
		return 0;
	return exit_io(pid_tgid, &a, ret);
}
#endif

OBI_SYSCALL_ENTER(obi_enter_close)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	/* A closed epoll set's number may next name another set. */
	__u64 ekey = epoll_key(pid_tgid, ctx->args[0]);
	/* Looked up first: a delete locks its bucket even when the key is not
	 * there, and most closed descriptors are not epoll sets. */
	if (bpf_map_lookup_elem(&epoll_sets, &ekey))
		bpf_map_delete_elem(&epoll_sets, &ekey);
	struct obi_sock_ref ref;
	if (!fd_to_tcp_sock(ctx->args[0], &ref))
		return 0;
	fd_sock_forget(ctx->args[0]);
	/* Another descriptor (a dup, a forked child's copy) keeps the
	 * connection open: it goes on, and so does its state. */
	if (file_shared(ref.file))
		return 0;
	bpf_map_delete_elem(&ignored_conns, &ref.ino);
	bpf_map_delete_elem(&hints, &ref.ino);
	struct obi_conn_state *cs = conn_get(ref.ino);
	if (!cs)
		return 0;
	struct obi_scratch *s = scratch_get();
	if (s) {
		struct obi_io_args a = {};
		a.ts_enter = bpf_ktime_get_ns();
		a.fd = ctx->args[0];
		a.syscall = OBI_SC_CLOSE;
		fill_hdr(&s->hdr, OBI_EV_CONN_CLOSE, pid_tgid, &a, ref.ino, cs);
		emit(s);
	}
	bpf_map_delete_elem(&conn_state, &ref.ino);
	bpf_map_delete_elem(&h2_state, &ref.ino);
	return 0;
}

#ifdef OBI_NO_BTF
/* Inside a recv that TCP's receive path serves (obi/fd_sockets.bpf.h). */
SEC("tracepoint/tcp/tcp_rcv_space_adjust")
int obi_tcp_rcv_space(struct obi_tp_tcp_sk *ctx)
{
	fd_sockets_rcv(ctx);
	return 0;
}

/* dup2(old, new) and dup3(old, new, flags) close whatever new named. */
OBI_SYSCALL_ENTER(obi_enter_dup3)
{
	if (ctx->args[0] != ctx->args[1])
		fd_sock_forget(ctx->args[1]);
	return 0;
}
#endif

/* ---- parent hints (see obi/hints.bpf.h) ----------------------------------- */

/* access(path, mode): what libuv calls on x86_64. */
OBI_SYSCALL_ENTER(obi_enter_access)
{
	return hint_record((const char *)ctx->args[0]);
}

/* faccessat(dirfd, path, mode) and faccessat2(dirfd, path, mode, flags):
 * what access() becomes where there is no access syscall (arm64). */
OBI_SYSCALL_ENTER(obi_enter_faccessat)
{
	return hint_record((const char *)ctx->args[1]);
}

/* ---- TLS plaintext (see obi/tls.bpf.h) ------------------------------------ */

SEC("uprobe")
int BPF_UPROBE(obi_ssl_write, void *ssl, const void *buf, int num)
{
	return ssl_enter(ssl, buf, NULL, OBI_DIR_SEND);
}

SEC("uprobe")
int BPF_UPROBE(obi_ssl_write_ex, void *ssl, const void *buf, __u64 num, __u64 *written)
{
	return ssl_enter(ssl, buf, written, OBI_DIR_SEND);
}

SEC("uprobe")
int BPF_UPROBE(obi_ssl_read, void *ssl, void *buf, int num)
{
	return ssl_enter(ssl, buf, NULL, OBI_DIR_RECV);
}

SEC("uprobe")
int BPF_UPROBE(obi_ssl_read_ex, void *ssl, void *buf, __u64 num, __u64 *readbytes)
{
	return ssl_enter(ssl, buf, readbytes, OBI_DIR_RECV);
}

/* One return probe for all four functions. They return int: the upper half
 * of the return register is undefined, so read it as int (-1 is not 2^32-1). */
SEC("uretprobe")
int BPF_URETPROBE(obi_ssl_ret, int ret)
{
	return ssl_exit(ret);
}

/* ---- context propagation (see obi/propagation.bpf.h) ---------------------- */

SEC("sockops")
int obi_sockops(struct bpf_sock_ops *skops)
{
	__u64 cookie;
	switch (skops->op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		/* Inside connect(): is it the one a traced thread started on this CPU? */
		if (!connect_slot_take(skops))
			return 1;
		cookie = bpf_get_socket_cookie(skops);
		__u8 one = 1;
		bpf_map_update_elem(&connecting, &cookie, &one, BPF_ANY);
		return 1;
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		cookie = bpf_get_socket_cookie(skops);
		if (!bpf_map_lookup_elem(&connecting, &cookie))
			return 1;
		bpf_map_delete_elem(&connecting, &cookie);
		bpf_sock_hash_update(skops, &sock_dir, &cookie, BPF_NOEXIST);
		return 1;
	}
	return 1;
}

SEC("sk_msg")
int obi_sk_msg(struct sk_msg_md *msg)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct obi_outgoing *armed = bpf_map_lookup_elem(&outgoing_tp, &id);
	if (!armed)
		return SK_PASS;
	struct obi_outgoing o = *armed;
	bpf_map_delete_elem(&outgoing_tp, &id);

	__u32 off = o.offset;
	if (off < 8 || off > OBI_TP_SCAN_LEN || msg->size < off)
		return SK_PASS;
	/* Only the message the syscall entry looked at. */
	if (bpf_msg_pull_data(msg, 0, 8, 0))
		return SK_PASS;
	void *data = (void *)(long)msg->data;
	void *end = (void *)(long)msg->data_end;
	if (data + 8 > end || load64(data) != o.first8)
		return SK_PASS;

	if (bpf_msg_push_data(msg, off, OBI_TP_HEADER_LEN, 0)) {
		stat_inc(OBI_STAT_INJECT_FAILED);
		return SK_PASS;
	}
	if (bpf_msg_pull_data(msg, off, off + OBI_TP_HEADER_LEN, 0))
		goto undo;
	data = (void *)(long)msg->data;
	end = (void *)(long)msg->data_end;
	if (data + OBI_TP_HEADER_LEN > end)
		goto undo;
	__builtin_memcpy(data, o.header, OBI_TP_HEADER_LEN);
	stat_inc(OBI_STAT_INJECTED);
	return SK_PASS;
undo:
	/* Never send the pushed (uninitialised) bytes. */
	bpf_msg_pop_data(msg, off, OBI_TP_HEADER_LEN, 0);
	stat_inc(OBI_STAT_INJECT_FAILED);
	return SK_PASS;
}

/* ---- event-loop detection (see obi/conn.bpf.h) ----------------------------- */

/* Waiting on many sockets at once is what an event loop does: whatever the
 * thread does next was caused by whichever of them woke it. */
static __always_inline int waits_on_many(void)
{
	mark_multiplexing(bpf_get_current_pid_tgid());
	return 0;
}

/* epoll_wait/epoll_pwait/epoll_pwait2(epfd, ...): a set of one known member
 * is a blocking wait on one socket; anything else multiplexes. */
OBI_SYSCALL_ENTER(obi_enter_epoll_wait)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u64 key = epoll_key(pid_tgid, ctx->args[0]);
	__u32 *members = bpf_map_lookup_elem(&epoll_sets, &key);
	if (members && *members <= 1)
		return 0;
	mark_multiplexing(pid_tgid);
	return 0;
}

/* epoll_create/epoll_create1 returned a new, empty set. */
OBI_SYSCALL_EXIT(obi_exit_epoll_create)
{
	long epfd = ctx->ret;
	if (epfd < 0)
		return 0;
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	if (!pid_traced(pid_tgid >> 32))
		return 0;
	__u64 key = epoll_key(pid_tgid, epfd);
	__u32 zero = 0;
	bpf_map_update_elem(&epoll_sets, &key, &zero, BPF_ANY);
	return 0;
}

/* epoll_ctl(epfd, op, fd, event): ADD and DEL change the set's count when
 * they succeed, so the exit applies what the entry saw. */
OBI_SYSCALL_ENTER(obi_enter_epoll_ctl)
{
	__u64 op = ctx->args[1];
	if (op != 1 /* EPOLL_CTL_ADD */ && op != 2 /* EPOLL_CTL_DEL */)
		return 0;
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u64 key = epoll_key(pid_tgid, ctx->args[0]);
	if (!bpf_map_lookup_elem(&epoll_sets, &key))
		return 0;
	/* A set inside a set multiplexes whatever the outer count says: it
	 * counts as two. (A nested set that was not created under our eyes
	 * counts as one: epoll fds cannot be told from sockets without
	 * reading kernel structures.) */
	__u64 member = epoll_key(pid_tgid, ctx->args[2]);
	__u64 kind = op == 2 ? EPOLL_CHANGE_DEL : EPOLL_CHANGE_ADD;
	if (op == 1 && bpf_map_lookup_elem(&epoll_sets, &member))
		kind = EPOLL_CHANGE_ADD_SET;
	__u64 change = (key << 2) | kind;
	bpf_map_update_elem(&epoll_ctl_args, &pid_tgid, &change, BPF_ANY);
	return 0;
}

OBI_SYSCALL_EXIT(obi_exit_epoll_ctl)
{
	long ret = ctx->ret;
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u64 *saved = bpf_map_lookup_elem(&epoll_ctl_args, &pid_tgid);
	if (!saved)
		return 0;
	__u64 change = *saved;
	bpf_map_delete_elem(&epoll_ctl_args, &pid_tgid);
	if (ret != 0)
		return 0;
	__u64 key = change >> 2;
	__u32 *members = bpf_map_lookup_elem(&epoll_sets, &key);
	if (!members)
		return 0;
	switch (change & 3) {
	case EPOLL_CHANGE_ADD:
		__sync_fetch_and_add(members, 1);
		break;
	case EPOLL_CHANGE_ADD_SET:
		__sync_fetch_and_add(members, 2);
		break;
	default:
		if (*members > 0)
			__sync_fetch_and_add(members, -1);
	}
	return 0;
}

/* poll() on one descriptor is a blocking read with a timeout (CPython,
 * Java sockets with timeouts): only two or more mean multiplexing. */
OBI_SYSCALL_ENTER(obi_enter_poll)
{
	if (ctx->args[1] < 2)
		return 0;
	return waits_on_many();
}

/* ---- request arrival (see obi/arrival.bpf.h) ------------------------------- */

/* The fields of sock:sk_data_ready this uses (a stable tracepoint format,
 * see /sys/kernel/tracing/events/sock); inet_sock_set_state's are in
 * obi/types.bpf.h. */
struct obi_tp_data_ready {
	__u64 _common;
	__u64 skaddr;
	__u16 family;
	__u16 protocol;
};


SEC("tracepoint/sock/inet_sock_set_state")
int obi_sock_state(struct obi_tp_sock_state *ctx)
{
	if (ctx->protocol != IPPROTO_TCP)
		return 0;
#ifdef OBI_NO_BTF
	fd_sockets_state(ctx);
#endif
	if (ctx->oldstate == OBI_TCP_SYN_RECV && ctx->newstate == OBI_TCP_ESTABLISHED) {
		arrival_established(ctx->skaddr);
	} else if (ctx->newstate == OBI_TCP_CLOSE) {
		/* A socket that never carried a request (not HTTP, or closed
		 * first) would otherwise stay until the LRU evicts it. */
		__u64 sk = ctx->skaddr;
		bpf_map_delete_elem(&arrivals, &sk);
	}
	return 0;
}

#ifndef OBI_NO_BTF /* reads the socket's port from struct sock */
SEC("tracepoint/sock/sk_data_ready")
int obi_sk_data_ready(struct obi_tp_data_ready *ctx)
{
	if (ctx->protocol == IPPROTO_TCP)
		arrival_data((struct sock *)ctx->skaddr);
	return 0;
}
#endif

/* ---- process lifecycle ------------------------------------------------ */

static __always_inline void proc_event(__u8 kind, __u32 pid, __u32 ppid)
{
	struct obi_proc_event *e = bpf_ringbuf_reserve(&proc_events, sizeof(*e), 0);
	if (!e) {
		stat_inc(OBI_STAT_PROC_RINGBUF_FULL);
		return;
	}
	e->kind = kind;
	e->pid = pid;
	e->ppid = ppid;
	e->ts = bpf_ktime_get_ns();
	bpf_ringbuf_submit(e, 0);
}

/* A new listening socket may make a process match an open-port selector. */
OBI_SYSCALL_EXIT(obi_exit_listen)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (ctx->ret == 0 && tgid != obi_agent_tgid)
		proc_event(OBI_PEV_LISTEN, tgid, 0);
	return 0;
}

/* A traced process that loads OpenSSL after it started (Python imports
 * ssl lazily) gets its TLS probes before its first handshake completes. */
#ifndef OBI_NO_BTF /* reads the mapped file's name through the task's files */
OBI_SYSCALL_ENTER(obi_enter_mmap)
{
	const __u64 PROT_EXEC = 4;
	long fd = ctx->args[4];
	if (fd < 0 || !(ctx->args[2] & PROT_EXEC))
		return 0;
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	/* Also when probes are attached already: a second OpenSSL (a Python
	 * wheel's own, loaded by psycopg after the interpreter's) needs its own. */
	if (!pid_info(pid_tgid >> 32))
		return 0;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	if (!fdt || (__u32)fd >= BPF_CORE_READ(fdt, max_fds))
		return 0;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *file = NULL;
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]) || !file)
		return 0;
	const unsigned char *name = BPF_CORE_READ(file, f_path.dentry, d_name.name);
	char buf[16] = {};
	if (bpf_probe_read_kernel_str(buf, sizeof(buf), name) < 0)
		return 0;
	/* "libssl.so..." (as two little-endian words, "libssl.s" + "o"), or
	 * "libssl-<hash>.so..." (the copy a Python wheel bundles). */
	__u64 w;
	__builtin_memcpy(&w, buf, 8);
	bool plain = w == 0x732e6c737362696cULL && buf[8] == 'o';
	bool bundled = (w & 0x00ffffffffffffffULL) == 0x002d6c737362696cULL;
	if (plain || bundled) {
		__u8 one = 1;
		bpf_map_update_elem(&mmap_libssl, &pid_tgid, &one, BPF_ANY);
	}
	return 0;
}
#endif

OBI_SYSCALL_EXIT(obi_exit_mmap)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	if (!bpf_map_lookup_elem(&mmap_libssl, &pid_tgid))
		return 0;
	bpf_map_delete_elem(&mmap_libssl, &pid_tgid);
	if (ctx->ret > 0 || ctx->ret < -4095)
		proc_event(OBI_PEV_TLS_LIB, pid_tgid >> 32, 0);
	return 0;
}

/* With executable-based selection every new program is traced
 * provisionally from its first instruction, so short-lived clients (curl)
 * are not lost while user space reads /proc to decide; user space removes
 * the ones that do not match and drops what they produced. */
/* Without it, a traced process that execs is still reported: it is another
 * program now (an inetd handler, a CGI script) and user space names it
 * anew; it stays traced meanwhile, as its sockets survive the exec. */
SEC("tracepoint/sched/sched_process_exec")
int obi_sched_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (tgid == obi_agent_tgid)
		return 0;
#ifdef OBI_NO_BTF
	if (pid_traced(tgid))
		fd_sockets_exec(tgid);
#endif
	if (obi_watch_exec) {
		struct obi_pid_info info = {.flags = OBI_PID_PROVISIONAL};
		bpf_map_update_elem(&traced_pids, &tgid, &info, BPF_NOEXIST);
	} else if (obi_trace_all || !bpf_map_lookup_elem(&traced_pids, &tgid)) {
		return 0;
	}

	struct obi_exec_event *e = bpf_ringbuf_reserve(&proc_events, sizeof(*e), 0);
	if (!e) {
		stat_inc(OBI_STAT_PROC_RINGBUF_FULL);
		return 0;
	}
#ifdef OBI_NO_BTF
	/* Parent and executable inode live in the task: user space reads them
	 * from /proc. The arguments were kept when the exec began. */
	e->base.ppid = 0;
	e->exe_ino = 0;
	exec_args_take(tgid, e);
#else
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
#endif
	e->base.kind = OBI_PEV_EXEC;
	e->base.pid = tgid;
#ifndef OBI_NO_BTF
	e->base.ppid = BPF_CORE_READ(task, real_parent, tgid);
#endif
	e->base.ts = bpf_ktime_get_ns();
#ifndef OBI_NO_BTF
	e->exe_ino = BPF_CORE_READ(task, mm, exe_file, f_inode, i_ino);
#endif
	__u32 off = ctx->__data_loc_filename & 0xffff;
	long n = bpf_probe_read_kernel_str(e->path, sizeof(e->path), (void *)ctx + off);
	e->path_len = n > 0 ? n - 1 : 0;
#ifndef OBI_NO_BTF
	__u64 start = BPF_CORE_READ(task, mm, arg_start);
	__u64 end = BPF_CORE_READ(task, mm, arg_end);
	__u64 len = end > start ? end - start : 0;
	if (len > sizeof(e->args))
		len = sizeof(e->args);
	barrier_var(len);
	e->args_len = 0;
	if (len && len <= sizeof(e->args) && bpf_probe_read_user(e->args, len, (const void *)start) == 0)
		e->args_len = len;
#endif
	bpf_ringbuf_submit(e, 0);
	return 0;
}

#ifdef OBI_NO_BTF
/* execve(path, argv, envp) and execveat(dirfd, path, argv, envp, flags):
 * the arguments, read from the old program's memory while it is still there. */
OBI_SYSCALL_ENTER_ANY(obi_enter_execve)
{
	return exec_args_keep(ctx->args[1]);
}

OBI_SYSCALL_ENTER_ANY(obi_enter_execveat)
{
	return exec_args_keep(ctx->args[2]);
}
#endif

/* Children of traced processes are traced at once (pre-fork servers).
 * New threads inherit nothing: a thread cannot be told apart from a pooled
 * one, so its calls would risk a wrong parent (see obi/conn.bpf.h). */
#ifndef OBI_NO_BTF /* reads both tasks' tgid */
SEC("raw_tracepoint/sched_process_fork")
int obi_sched_fork(void *ctx)
{
	/* Plain pointer arithmetic: vmlinux.h's bpf_raw_tracepoint_args would make
	 * args[] a CO-RE relocation on a flexible array, which aya rejects. */
	__u64 *args = ctx;
	struct task_struct *parent = (struct task_struct *)args[0];
	struct task_struct *child = (struct task_struct *)args[1];
	__u32 ptgid = BPF_CORE_READ(parent, tgid);
	if (ptgid == obi_agent_tgid || obi_trace_all)
		return 0;
	struct obi_pid_info *pinfo = pid_info(ptgid);
	if (!pinfo)
		return 0;
	__u32 ctgid = BPF_CORE_READ(child, tgid);
	if (ctgid == ptgid)
		return 0;
	/* A child of a process user space has not chosen yet is no more chosen
	 * than its parent. */
	struct obi_pid_info info = {.flags = pinfo->flags & OBI_PID_PROVISIONAL};
	bpf_map_update_elem(&traced_pids, &ctgid, &info, BPF_NOEXIST);
	proc_event(OBI_PEV_FORK, ctgid, ptgid);
	return 0;
}
#endif

SEC("tracepoint/sched/sched_process_exit")
int obi_sched_exit(void *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	if (!pid_traced(tgid))
		return 0;
	bpf_map_delete_elem(&server_traces, &pid_tgid);
	bpf_map_delete_elem(&mux_threads, &pid_tgid);
	bpf_map_delete_elem(&epoll_ctl_args, &pid_tgid);
	bpf_map_delete_elem(&pending_io, &pid_tgid);
	bpf_map_delete_elem(&ssl_args, &pid_tgid);
	bpf_map_delete_elem(&ssl_pending_bind, &pid_tgid);
	bpf_map_delete_elem(&last_recv_conn, &pid_tgid);
	bpf_map_delete_elem(&outgoing_tp, &pid_tgid);
	bpf_map_delete_elem(&mmap_libssl, &pid_tgid);
	/* The last thread of the process: it leaves the filter here, so a
	 * forked child user space never named leaves no entry behind and a
	 * reused pid is not traced. */
#ifdef OBI_NO_BTF
	/* No thread count without the task: the leader's exit ends the process
	 * (a leader that exits before its threads ends it early). */
	if ((__u32)pid_tgid == tgid) {
		bpf_map_delete_elem(&exec_gen, &tgid);
#else
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	if (BPF_CORE_READ(task, signal, live.counter) == 0) {
#endif
		bpf_map_delete_elem(&traced_pids, &tgid);
		proc_event(OBI_PEV_EXIT, tgid, 0);
	}
	return 0;
}

/* ---- Go net/http parents and crypto/tls (see obi/go.bpf.h) -------------- */

/* Struct offsets per Go process, written by user space when it attaches. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, OBI_MAX_TRACED_PROCS);
	__type(key, __u32);
	__type(value, struct obi_go_offsets);
} go_procs SEC(".maps");

/* The server socket (descriptor) each goroutine running
 * net/http.(*conn).serve serves; LRU: goroutine ids are never reused. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, OBI_MAX_GO_SERVING);
	__type(key, struct obi_go_key);
	__type(value, __u32);
} go_serving SEC(".maps");

/* The buffer of each goroutine inside crypto/tls.(*Conn).Read, from its
 * entry to its return. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, OBI_MAX_GO_TLS_READS);
	__type(key, struct obi_go_key);
	__type(value, struct obi_ssl_args);
} go_tls_reads SEC(".maps");

#include "obi/go.bpf.h"

SEC("uprobe")
int obi_go_conn_serve(struct pt_regs *ctx)
{
	return go_conn_serve(ctx);
}

SEC("uprobe")
int obi_go_round_trip(struct pt_regs *ctx)
{
	return go_round_trip(ctx);
}

SEC("uprobe")
int obi_go_tls_write(struct pt_regs *ctx)
{
	return go_tls_write(ctx);
}

SEC("uprobe")
int obi_go_tls_read(struct pt_regs *ctx)
{
	return go_tls_read(ctx);
}

SEC("uprobe")
int obi_go_tls_read_ret(struct pt_regs *ctx)
{
	return go_tls_read_ret(ctx);
}

SEC("uprobe")
int obi_go_grpc_new_stream_ret(struct pt_regs *ctx)
{
	return go_grpc_new_stream_ret(ctx);
}
