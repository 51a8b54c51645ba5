/* SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0 */
/*
 * The kernel-private records the maps in obi.bpf.c hold (what user space
 * reads is in abi.h). They live apart from the helpers that use them
 * because C orders things: a map needs its value type before it, and a
 * helper needs the map before it, so obi.bpf.c includes this header, then
 * defines the maps, then includes the helpers.
 */
#ifndef OBI_TYPES_BPF_H
#define OBI_TYPES_BPF_H

#include "obi/base.bpf.h"
#include "obi/traceparent.bpf.h"

/* ---- syscalls (pending_io) ---------------------------------------------- */

/* obi_io_args.op */
#define OP_IO 1
#define OP_ACCEPT 2
#define OP_CONNECT 3

/* Arguments saved at syscall entry, consumed at exit. */
struct obi_io_args {
	__u64 ts_enter;
	__u64 conn_id;
	__u64 buf;    /* plain buffer, or iovec array when iovcnt > 0 */
	__u32 fd;
	__u32 iovcnt;
	__u8 op;      /* OP_* */
	__u8 dir;     /* OBI_DIR_* */
	__u8 syscall; /* OBI_SC_* */
	__u8 flags;   /* OBI_F_* decided at entry (sends) */
	__u32 _pad;
	__u64 sk;     /* struct sock * of the socket (request arrival times) */
};

/* ---- connections (server_traces, arrivals) ------------------------------- */

/* When the next request of a server socket arrived (arrivals, keyed by
 * struct sock *), CLOCK_MONOTONIC ns. */
struct obi_arrival {
	__u64 established; /* the connection's handshake completed (first request only) */
	__u64 data;        /* the next request's first bytes reached the socket; 0 = not yet */
	__u8 waiting;      /* between requests: the next data_ready is a request's start */
	__u8 _pad[7];
};

/* The server request a thread is serving, so client calls it makes become
 * children. Keyed by pid_tgid. */
struct obi_server_trace {
	struct obi_tp tp;
	__u64 conn_id; /* socket inode, or the SSL* for TLS connections */
	__u32 tgid;
	__u8 tls;
	__u8 _pad[3];
};

/* ---- capture (scratch) -------------------------------------------------- */

/* Event under construction. data[] is twice the maximum so the verifier
 * can prove every (offset < MAX, length <= MAX) copy stays inside. */
struct obi_scratch {
	struct obi_event_hdr hdr;
	__u8 data[OBI_MAX_CAPTURE * 2];
};

/* ---- context propagation (outgoing_tp) ---------------------------------- */

struct obi_outgoing {
	__u8 header[OBI_TP_HEADER_LEN];
	__u8 _pad[2];
	__u32 offset; /* where the header goes: just past the request line */
	__u64 first8; /* the request's first bytes, to match the right message */
};

/* ---- HTTP/2 (h2_state, h2_walk) ----------------------------------------- */

/* Where the walk of one direction stands between syscalls. */
struct obi_h2_dir {
	__u32 skip;        /* payload bytes of the current frame still to come */
	__u8 skip_headers; /* ... and they belong to a header-carrying frame */
	__u8 lost;         /* frame sync lost for good */
	__u8 part_len;     /* bytes of a frame header cut off by the syscall's end */
	__u8 _pad;
	__u8 part[8];      /* ... those bytes: the header completes in the next */
};

struct obi_h2_state {
	struct obi_h2_dir dir[2];
};

/* iovec segments walked per syscall. gRPC's C core hands sendmsg one
 * segment per frame header and per payload slice, so 8 is far too few. */
#define OBI_H2_MAX_IOV 128

/* The source buffer: a plain buffer, or up to OBI_H2_MAX_IOV iovec
 * segments, with a cursor (reads only move forward). */
struct obi_src {
	struct iovec iov[OBI_H2_MAX_IOV];
	__u32 n;
	__u32 seg;        /* cursor: the segment that starts at seg_start */
	__u64 seg_start;  /* logical offset of iov[seg] */
};

/*
 * The walk's state lives in a per-CPU map, not on the stack: the verifier
 * then sees opaque values in each step of the walk and checks the step
 * once, instead of tracking every (pos, out) pair it could reach (which made
 * loading take minutes).
 */
struct obi_h2_walk {
	struct obi_src src;
	struct obi_h2_dir st;
	__u64 pos;   /* offset in the syscall's bytes */
	__u64 total; /* bytes the syscall moved */
	__u32 out;   /* bytes used in the scratch event's data */
	__u32 events;
};

/* ---- propagation (connect_slot) ------------------------------------------ */

/* The destination of the connect() a traced thread is in. */
struct obi_connect_slot {
	__u8 addr[16];  /* IPv4 in the first 4 bytes */
	__u16 family;   /* 0: empty */
	__u16 port;     /* host byte order */
	__u32 _pad;
};

/* ---- sockets by descriptor, without kernel BTF (obi/fd_sockets.bpf.h) ---- */

/* A TCP socket seen by sock:inet_sock_set_state (sk_info, keyed by struct
 * sock *; passive_peers, keyed by the peer of a connection not yet accepted). */
struct obi_sk_info {
	struct obi_conn_tuple tuple; /* family 0 until the connection is established */
	__u64 conn_id;               /* 0 until accept/connect returned its descriptor */
	__u64 sk;
	__u8 ambiguous; /* two unaccepted connections from the same peer address and port */
	__u8 _pad[7];
};

struct obi_peer_key {
	__u8 addr[16]; /* IPv6 or IPv4-mapped */
	__u16 port;    /* host byte order */
	__u16 _pad;
	__u32 _pad2;
};

/* ---- TLS (ssl_args) ----------------------------------------------------- */

struct obi_ssl_args {
	__u64 ssl; /* the session's id (tls_state): SSL*, or a socket inode (Go) */
	__u64 buf;
	__u64 len_ptr; /* size_t* of the _ex forms, else 0 */
	__u64 ts;
	__u8 dir;
	__u8 bound; /* a socket syscall inside this call tied ssl to its socket */
	__u8 _pad[6];
};

/* Key of go_serving and go_tls_reads: a goroutine of a process (goroutine
 * ids are never reused within a process). */
struct obi_go_key {
	__u32 tgid;
	__u32 _pad;
	__u64 goid;
};

/* ---- tracepoint contexts ------------------------------------------------- */

/* sock:inet_sock_set_state (its format file in tracefs, stable since 4.16).
 * Addresses as words: the verifier allows only loads at fixed offsets of
 * the context, not a copy through a pointer into it. */
struct obi_tp_sock_state {
	__u64 _common;
	__u64 skaddr;
	__s32 oldstate;
	__s32 newstate;
	__u16 sport;
	__u16 dport;
	__u16 family;
	__u16 protocol;
	__u32 saddr;
	__u32 daddr;
	__u64 saddr_v6[2];
	__u64 daddr_v6[2];
};

/* TCP states as that tracepoint reports them. */
#define OBI_TCP_ESTABLISHED 1
#define OBI_TCP_SYN_SENT 2
#define OBI_TCP_SYN_RECV 3
#define OBI_TCP_CLOSE 7

#endif /* OBI_TYPES_BPF_H */
