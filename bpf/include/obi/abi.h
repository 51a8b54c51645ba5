/* SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0 */
/*
 * The records the eBPF programs hand to user space, and the map keys and
 * values user space reads or writes. This header is the single definition: the Rust mirrors in
 * crates/obi/src/ebpf/abi.rs are #[repr(C)] copies whose sizes and offsets
 * are asserted by unit tests. Keep every struct naturally aligned and a
 * multiple of 8 bytes so both sides agree without packing attributes.
 */
#ifndef OBI_ABI_H
#define OBI_ABI_H

/* Upper bound of payload bytes copied per syscall (power of two). The
 * run-time limit is the `capture_size` constant set at load time. */
#define OBI_MAX_CAPTURE 4096
/* Bytes copied from the end of a buffer whose middle was not captured, so
 * user space can see terminators such as the last chunk of a chunked body. */
#define OBI_TAIL_LEN 16
/* iovec entries walked per readv/writev/recvmsg/sendmsg. */
#define OBI_MAX_IOV 8

/* Entries of the syscall program arrays (sys_enter_progs, sys_exit_progs):
 * above every syscall number of x86_64 and arm64. */
#define OBI_SYSCALL_SLOTS 512

/* obi_event_hdr.kind */
#define OBI_EV_DATA 1       /* bytes moved on a traced TCP socket */
#define OBI_EV_CONN_OPEN 2  /* accept/connect completed */
#define OBI_EV_CONN_CLOSE 3 /* close() of a traced socket */
/* The parent of one HTTP/2 client stream (Go's grpc-go, obi/go.bpf.h):
 * conn_id is the socket inode, bytes the stream id, tp the parent (valid 0:
 * a root); nothing follows the header. */
#define OBI_EV_H2_STREAM_PARENT 4

/* obi_event_hdr.dir */
#define OBI_DIR_RECV 0
#define OBI_DIR_SEND 1

/* obi_event_hdr.role / obi_conn_state.role */
#define OBI_ROLE_UNKNOWN 0
#define OBI_ROLE_SERVER 1 /* accepted by this process */
#define OBI_ROLE_CLIENT 2 /* connected by this process */

/* obi_event_hdr.flags */
#define OBI_F_MSG_START 0x01   /* first bytes after a change of direction */
#define OBI_F_TRUNCATED 0x02   /* captured < bytes: the middle is missing */
#define OBI_F_REQUEST 0x04     /* MSG_START of a request (server recv / client send) */
#define OBI_F_ROLE_GUESSED 0x08 /* role inferred from the payload, not accept/connect */
#define OBI_F_TLS 0x10          /* plaintext from a TLS library; conn_id is the SSL* (OpenSSL) or the socket inode (Go) */
#define OBI_F_H2 0x20           /* data is a stream of HTTP/2 frame records (OBI_H2_*) */

/* Which syscall produced a data event (debugging and metrics only). */
#define OBI_SC_READ 1
#define OBI_SC_WRITE 2
#define OBI_SC_READV 3
#define OBI_SC_WRITEV 4
#define OBI_SC_RECVFROM 5
#define OBI_SC_SENDTO 6
#define OBI_SC_RECVMSG 7
#define OBI_SC_SENDMSG 8
#define OBI_SC_SENDFILE 9
#define OBI_SC_ACCEPT 10
#define OBI_SC_CONNECT 11
#define OBI_SC_CLOSE 12
#define OBI_SC_SSL_READ 13
#define OBI_SC_SSL_WRITE 14
#define OBI_SC_GO_TLS_READ 15  /* crypto/tls.(*Conn).Read (Go) */
#define OBI_SC_GO_TLS_WRITE 16 /* crypto/tls.(*Conn).Write (Go) */

/* obi_proc_event.kind */
#define OBI_PEV_EXEC 1   /* a process called exec (only when exec watching is on) */
#define OBI_PEV_EXIT 2   /* a traced process ended */
#define OBI_PEV_FORK 3   /* a traced process forked a new process (already traced) */
#define OBI_PEV_LISTEN 4 /* some process called listen() successfully */
#define OBI_PEV_TLS_LIB 5 /* a traced process mapped a libssl: attach TLS probes */

/* Indexes of the per-CPU counters in the obi_stats map. */
#define OBI_STAT_EVENTS 0          /* data/conn events written */
#define OBI_STAT_RINGBUF_FULL 1    /* data/conn events lost: ring buffer full */
#define OBI_STAT_PROC_RINGBUF_FULL 2 /* process events lost */
#define OBI_STAT_CONN_TABLE_FULL 3 /* connection state could not be stored */
#define OBI_STAT_PENDING_FULL 4    /* syscall arguments could not be stored */
#define OBI_STAT_IGNORED 5         /* syscalls skipped on connections user space ignores */
#define OBI_STAT_WAKEUPS 6         /* forced ring-buffer wake-ups */
#define OBI_STAT_INJECTED 7        /* traceparent headers inserted into requests */
#define OBI_STAT_INJECT_SKIPPED 8  /* requests left alone (own traceparent, split request line) */
#define OBI_STAT_INJECT_FAILED 9   /* sk_msg could not insert the header */
#define OBI_STAT_ROOT_MULTIPLEXED 10 /* client requests of event-loop threads: no thread-based parent */
#define OBI_STAT_HINTS_USED 11     /* client requests parented by a runtime hint (hints.bpf.h) */
#define OBI_STAT_HINTS_IGNORED 12  /* hints that named no TCP socket or no known server request */
#define OBI_STAT_MAX 16

/* Parent hints from a runtime (the Node.js script): the traced process
 * calls access() on OBI_HINT_PREFIX followed by two fixed-width lowercase hex
 * fields, its client socket fd then its server socket fd (OBI_HINT_ROOT: no
 * parent). Under /dev/null the call always fails with ENOTDIR. */
#define OBI_HINT_PREFIX "/dev/null/obi-rs/"
#define OBI_HINT_PREFIX_LEN 17
#define OBI_HINT_FD_DIGITS 8
#define OBI_HINT_ROOT 0xffffffffu

/* A TCP connection seen from the traced process. Addresses are IPv6 or
 * IPv4-mapped IPv6 (::ffff:a.b.c.d); ports in host byte order. */
struct obi_conn_tuple {
	__u8 laddr[16];
	__u8 raddr[16];
	__u16 lport;
	__u16 rport;
	__u16 family; /* AF_INET or AF_INET6 as seen on the socket */
	__u16 _pad;
};

/* W3C trace context for the request in flight on a connection. */
struct obi_tp {
	__u8 trace_id[16];
	__u8 span_id[8];
	__u8 parent_id[8]; /* all zero for a root span */
	__u8 flags;        /* W3C trace-flags */
	__u8 valid;        /* 1 once assigned */
	__u8 _pad[6];
};

struct obi_event_hdr {
	__u8 kind;  /* OBI_EV_* */
	__u8 dir;   /* OBI_DIR_* */
	__u8 role;  /* OBI_ROLE_* */
	__u8 flags; /* OBI_F_* */
	__u32 tgid;
	__u32 tid;
	__u8 syscall;  /* OBI_SC_* */
	__u8 tail_len; /* valid bytes in tail[] */
	__u16 captured; /* payload bytes that follow this header */
	__u64 conn_id;  /* socket inode number */
	__u64 ts_enter; /* CLOCK_MONOTONIC ns at syscall entry */
	__u64 ts_exit;  /* CLOCK_MONOTONIC ns at syscall exit */
	__u64 bytes;    /* bytes the syscall moved */
	struct obi_conn_tuple tuple;
	struct obi_tp tp;
	/* Server request starts (OBI_F_REQUEST on a receive): CLOCK_MONOTONIC ns
	 * when its first bytes reached the socket, or when the connection was
	 * established for a connection's first request; 0 when unknown. The
	 * wait from then to ts_exit is the request's time "in queue". */
	__u64 queued_at;
	__u8 tail[OBI_TAIL_LEN]; /* last bytes of the buffer when truncated */
	/* __u8 data[captured] follows */
};

/* Small, rare records on their own ring so bursts of data never delay them. */
struct obi_proc_event {
	__u8 kind; /* OBI_PEV_* */
	__u8 _pad[3];
	__u32 pid;  /* tgid of the process concerned */
	__u32 ppid; /* parent tgid (fork), else 0 */
	__u32 _pad2;
	__u64 ts;
};

/* obi_pid_info.flags */
#define OBI_PID_PROVISIONAL 0x1 /* traced from exec until user space decides */
#define OBI_PID_TLS 0x2         /* TLS uprobes are attached: bind SSL objects to sockets */

/* obi_conn_state.flags */
#define OBI_CONN_TLS 0x1 /* carries TLS: plaintext comes from uprobes, skip ciphertext */
#define OBI_CONN_H2 0x2  /* HTTP/2 (preface seen): capture frame by frame */
#define OBI_CONN_TLS_EXACT 0x4 /* TLS state tied to its socket from inside an SSL call (socket BIO) */
#define OBI_CONN_TUPLE_PENDING 0x8 /* no-BTF: accepted with a NULL address, not yet seen in TCP's receive path */

/*
 * HTTP/2 events (OBI_F_H2) carry, instead of the first bytes of a buffer,
 * records describing every frame the syscall moved, so no HEADERS block is
 * ever cut off: [u16 len][u8 kind][len bytes], little endian.
 */
#define OBI_H2_REC_FRAME 1   /* the 9-byte frame header */
#define OBI_H2_REC_PAYLOAD 2 /* next bytes of a HEADERS/CONTINUATION/PUSH_PROMISE payload */
#define OBI_H2_REC_LOST 3    /* the walk lost frame sync here (len = 0) */
#define OBI_H2_REC_PREFACE 4 /* the client connection preface (len = 0) */
#define OBI_H2_PREFACE_LEN 24

/* OBI_PEV_EXEC carries what user space needs to match a process that may
 * be gone (a 5 ms curl) before it can read /proc. */
#define OBI_EXEC_PATH_LEN 256
#define OBI_EXEC_ARGS_LEN 256
struct obi_exec_event {
	struct obi_proc_event base;
	__u16 path_len; /* bytes of path (the file exec'd), no NUL */
	__u16 args_len; /* bytes of args: NUL-separated argv */
	__u32 _pad;
	__u64 exe_ino; /* inode of the program now running, 0 if unknown */
	__u8 path[OBI_EXEC_PATH_LEN];
	__u8 args[OBI_EXEC_ARGS_LEN];
};

/* Value of the traced_pids map, written by user space. */
struct obi_pid_info {
	__u32 flags; /* OBI_PID_* */
	__u32 _pad;
};

/* Per-connection state kept by the kernel side (values of conn_state and
 * tls_state; user space sweeps the entries of processes that are gone). */
struct obi_conn_state {
	struct obi_conn_tuple tuple;
	struct obi_tp tp; /* request currently in flight */
	__u64 msg_start_ts;
	__u32 tgid;
	__u8 role;
	__u8 last_dir; /* direction of the previous data event, 0xff = none */
	__u8 flags;    /* OBI_CONN_* */
	__u8 _pad;
};

/* Key of tls_state: a TLS session is an SSL object of one process (or, for
 * Go's crypto/tls, the socket a *tls.Conn sits on). */
struct obi_ssl_key {
	__u64 ssl; /* SSL* in the process's address space, or a socket inode (Go) */
	__u32 tgid;
	__u32 _pad;
};

/* Value of go_procs (user space writes it per Go process): byte offsets of
 * the Go struct fields the Go probes read, for the process's Go release
 * (crates/obi/src/golang/offsets.json; see obi/go.bpf.h). */
struct obi_go_offsets {
	__u32 g_goid;                 /* runtime.g.goid */
	__u32 http_conn_rwc;          /* net/http.conn.rwc (net.Conn) */
	__u32 http_conn_tls_state;    /* net/http.conn.tlsState */
	__u32 persist_conn_conn;      /* net/http.persistConn.conn (net.Conn) */
	__u32 persist_conn_tls_state; /* net/http.persistConn.tlsState */
	__u32 net_conn_fd;            /* net.conn.fd (*netFD) */
	__u32 netfd_pfd;              /* net.netFD.pfd (internal/poll.FD) */
	__u32 netfd_family;           /* net.netFD.family */
	__u32 netfd_sotype;           /* net.netFD.sotype */
	__u32 netfd_net;              /* net.netFD.net (string) */
	__u32 poll_fd_sysfd;          /* internal/poll.FD.Sysfd */
	__u32 tls_conn_conn;          /* crypto/tls.Conn.conn (net.Conn) */
	/* grpc-go's, all 0 when its release is not known (no gRPC probe). */
	__u32 grpc_stream_id;     /* internal/transport.Stream.id */
	__u32 grpc_stream_ct;     /* internal/transport.Stream.ct (*http2Client) */
	__u32 grpc_client_conn;   /* internal/transport.http2Client.conn (net.Conn) */
	__u32 _pad;
};

/* Without kernel BTF (bpf/include/obi/fd_sockets.bpf.h) sockets are known by
 * descriptor: key and value of fd_socks, which user space also fills with the
 * sockets a process had before it was traced and sweeps when it is gone. */
struct obi_fd_key {
	__u32 tgid;
	__u32 fd;
};

struct obi_fd_sock {
	__u64 conn_id; /* socket inode (registered from /proc) or an id drawn at accept/connect */
	__u64 sk;      /* struct sock * from sock:inet_sock_set_state, 0 if unknown */
	__u32 exec_gen; /* exec_gen of the process when the descriptor was learnt */
	__u32 _pad;
};

/* Pinned layouts: the Rust mirrors assert the same numbers. */
_Static_assert(sizeof(struct obi_conn_tuple) == 40, "obi_conn_tuple layout");
_Static_assert(sizeof(struct obi_tp) == 40, "obi_tp layout");
_Static_assert(sizeof(struct obi_event_hdr) == 152, "obi_event_hdr layout");
_Static_assert(sizeof(struct obi_proc_event) == 24, "obi_proc_event layout");
_Static_assert(sizeof(struct obi_conn_state) == 96, "obi_conn_state layout");
_Static_assert(sizeof(struct obi_exec_event) == 552, "obi_exec_event layout");
_Static_assert(sizeof(struct obi_pid_info) == 8, "obi_pid_info layout");
_Static_assert(sizeof(struct obi_ssl_key) == 16, "obi_ssl_key layout");
_Static_assert(sizeof(struct obi_go_offsets) == 64, "obi_go_offsets layout");
_Static_assert(sizeof(struct obi_fd_key) == 8, "obi_fd_key layout");
_Static_assert(sizeof(struct obi_fd_sock) == 24, "obi_fd_sock layout");

#endif /* OBI_ABI_H */
