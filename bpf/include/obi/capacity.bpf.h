/* SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0 */
/*
 * Entries of the maps in obi.bpf.c, named by what they bound. User space
 * neither resizes nor reports these, so they stay on the kernel side; the
 * event ring is sized by user space at load time instead.
 *
 * The LRU maps evict their oldest entry when full, so a bound that is too
 * small loses context (a parent span, a TLS binding) rather than failing.
 */
#ifndef OBI_CAPACITY_BPF_H
#define OBI_CAPACITY_BPF_H

/* Processes traced at once (traced_pids). A plain hash: when it is full a
 * new process is not traced, so this is the agent's process limit. */
#define OBI_MAX_TRACED_PROCS 16384

/* Threads of traced processes tracked at once, per kind of per-thread
 * state: a syscall or SSL call in flight (ssl_args; pending_io keeps its
 * slot between syscalls), the request a thread last served and whether it
 * multiplexes (server_traces, mux_threads),
 * TLS binding hints (ssl_pending_bind, last_recv_conn) and a header to
 * inject into the thread's current send (outgoing_tp). */
#define OBI_MAX_THREADS 16384

/* Threads mapping a file executable right now while we check whether it is
 * a libssl (mmap_libssl): only lives for one mmap() call. */
#define OBI_MAX_MMAPS_IN_FLIGHT 1024

/* TCP connections of traced processes (conn_state), and client sockets
 * that may get a traceparent header injected (sock_dir). */
#define OBI_MAX_CONNS 65536

/* Server sockets whose next request's arrival is tracked (arrivals). Every
 * passively opened TCP connection of the host gets an entry at its
 * handshake (before anyone knows whether a traced process will accept it),
 * so this is sized like conn_state; LRU evicts connections never read. */
#define OBI_MAX_ARRIVALS 65536

/* Connections user space told the kernel to stop capturing (ignored_conns).
 * A plain hash emptied at close(); when it is full, further connections
 * keep being captured. */
#define OBI_MAX_IGNORED_CONNS 16384

/* TLS sessions (SSL objects) of traced processes (tls_state). */
#define OBI_MAX_TLS_SESSIONS 16384

/* HTTP/2 connections, plaintext or TLS, whose frame walk is tracked
 * between syscalls (h2_state). */
#define OBI_MAX_H2_CONNS 16384

/* Client sockets between connect() and established (connecting). */
#define OBI_MAX_CONNECTING 16384

/* Client sockets with a parent hint not yet consumed by their next request
 * (hints). LRU: a hint whose request never came ages out. */
#define OBI_MAX_HINTS 16384
/* Goroutines serving a net/http server connection (obi/go.bpf.h). */
#define OBI_MAX_GO_SERVING 16384
/* Goroutines inside crypto/tls.(*Conn).Read (go_tls_reads): one per open
 * Go TLS connection, whose reader usually waits there. */
#define OBI_MAX_GO_TLS_READS 16384

#endif /* OBI_CAPACITY_BPF_H */
