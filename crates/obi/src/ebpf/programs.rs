//! Which eBPF program attaches where, and what is lost if it cannot.

/// Kernel hook of one program.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Hook {
    /// `tracepoint/<category>/<name>`
    TracePoint(&'static str, &'static str),
    /// `raw_tracepoint/<name>`
    RawTracePoint(&'static str),
}

impl Hook {
    pub(crate) fn describe(&self) -> String {
        match self {
            Hook::TracePoint(cat, name) => format!("tracepoint {cat}:{name}"),
            Hook::RawTracePoint(name) => format!("raw tracepoint {name}"),
        }
    }
}

/// One program and every hook it serves. `lost` says what stops working
/// when an optional hook is missing; required hooks abort startup.
pub(crate) struct Attachment {
    pub(crate) program: &'static str,
    pub(crate) hooks: &'static [Hook],
    pub(crate) required: bool,
    pub(crate) lost: &'static str,
}

use Hook::{RawTracePoint, TracePoint};

const fn sc(name: &'static str) -> Hook {
    TracePoint("syscalls", name)
}

/// Every attachment of the socket tracer, in attach order: exits first, so
/// an entry never saves arguments nobody consumes.
pub(crate) const ATTACHMENTS: &[Attachment] = &[
    Attachment {
        program: "obi_sys_exit",
        hooks: &[sc("sys_exit_read"), sc("sys_exit_write"), sc("sys_exit_accept4"), sc("sys_exit_connect")],
        required: true,
        lost: "all request capture",
    },
    Attachment {
        program: "obi_sys_exit",
        hooks: &[
            sc("sys_exit_readv"),
            sc("sys_exit_writev"),
            sc("sys_exit_recvfrom"),
            sc("sys_exit_sendto"),
            sc("sys_exit_recvmsg"),
            sc("sys_exit_sendmsg"),
            sc("sys_exit_sendfile64"),
            sc("sys_exit_accept"),
        ],
        required: false,
        lost: "traffic through this syscall",
    },
    Attachment { program: "obi_enter_read", hooks: &[sc("sys_enter_read")], required: true, lost: "" },
    Attachment { program: "obi_enter_write", hooks: &[sc("sys_enter_write")], required: true, lost: "" },
    Attachment {
        program: "obi_enter_accept",
        hooks: &[sc("sys_enter_accept4")],
        required: true,
        lost: "server connections",
    },
    Attachment {
        program: "obi_enter_accept",
        hooks: &[sc("sys_enter_accept")],
        required: false,
        lost: "server connections accepted with accept()",
    },
    Attachment { program: "obi_enter_connect", hooks: &[sc("sys_enter_connect")], required: true, lost: "" },
    Attachment { program: "obi_enter_close", hooks: &[sc("sys_enter_close")], required: true, lost: "" },
    Attachment {
        program: "obi_enter_readv",
        hooks: &[sc("sys_enter_readv")],
        required: false,
        lost: "requests read with readv()",
    },
    Attachment {
        program: "obi_enter_writev",
        hooks: &[sc("sys_enter_writev")],
        required: false,
        lost: "responses written with writev() (nginx, many C servers)",
    },
    Attachment {
        program: "obi_enter_recvfrom",
        hooks: &[sc("sys_enter_recvfrom")],
        required: false,
        lost: "traffic read with recv()/recvfrom() (Python, Node.js)",
    },
    Attachment {
        program: "obi_enter_sendto",
        hooks: &[sc("sys_enter_sendto")],
        required: false,
        lost: "traffic written with send()/sendto() (Python, Node.js)",
    },
    Attachment {
        program: "obi_enter_recvmsg",
        hooks: &[sc("sys_enter_recvmsg")],
        required: false,
        lost: "traffic read with recvmsg()",
    },
    Attachment {
        program: "obi_enter_sendmsg",
        hooks: &[sc("sys_enter_sendmsg")],
        required: false,
        lost: "traffic written with sendmsg()",
    },
    Attachment {
        program: "obi_enter_sendfile",
        hooks: &[sc("sys_enter_sendfile64")],
        required: false,
        lost: "response sizes of files sent with sendfile() (static file servers)",
    },
    Attachment {
        program: "obi_enter_epoll_wait",
        hooks: &[sc("sys_enter_epoll_wait"), sc("sys_enter_epoll_pwait")],
        required: true,
        lost: "",
    },
    Attachment {
        program: "obi_enter_epoll_wait",
        hooks: &[sc("sys_enter_epoll_pwait2")],
        required: false,
        lost: "event-loop detection for loops waiting in epoll_pwait2, whose client calls may then take a wrong parent (nothing before Linux 5.11, which has no such syscall)",
    },
    Attachment {
        program: "obi_exit_epoll_create",
        hooks: &[sc("sys_exit_epoll_create1"), sc("sys_exit_epoll_create")],
        required: false,
        lost: "parents for threads that wait on one socket through epoll (psycopg): their client calls start their own traces",
    },
    Attachment {
        program: "obi_exit_epoll_ctl",
        hooks: &[sc("sys_exit_epoll_ctl")],
        required: false,
        lost: "parents for threads that wait on one socket through epoll (psycopg): their client calls start their own traces",
    },
    Attachment {
        program: "obi_enter_epoll_ctl",
        hooks: &[sc("sys_enter_epoll_ctl")],
        required: false,
        lost: "parents for threads that wait on one socket through epoll (psycopg): their client calls start their own traces",
    },
    Attachment {
        program: "obi_enter_poll",
        hooks: &[sc("sys_enter_poll"), sc("sys_enter_ppoll")],
        required: false,
        lost: "event-loop detection for loops built on poll(): their client calls may take a wrong parent",
    },
    Attachment {
        program: "obi_sock_state",
        hooks: &[TracePoint("sock", "inet_sock_set_state")],
        required: false,
        lost: "\"in queue\" time of a connection's first request",
    },
    Attachment {
        program: "obi_sk_data_ready",
        hooks: &[TracePoint("sock", "sk_data_ready")],
        required: false,
        lost: "\"in queue\" time of keep-alive requests (needs Linux 6.6+)",
    },
    Attachment {
        program: "obi_enter_access",
        hooks: &[sc("sys_enter_access")],
        required: false,
        lost: "Node.js parent hints on x86_64 (client spans of Node.js servers start their own traces)",
    },
    Attachment {
        program: "obi_enter_faccessat",
        hooks: &[sc("sys_enter_faccessat"), sc("sys_enter_faccessat2")],
        required: false,
        lost: "Node.js parent hints where access() is faccessat() (arm64)",
    },
    Attachment {
        program: "obi_exit_listen",
        hooks: &[sc("sys_exit_listen")],
        required: false,
        lost: "immediate discovery of new servers (the periodic /proc scan still finds them)",
    },
    Attachment {
        program: "obi_exit_mmap",
        hooks: &[sc("sys_exit_mmap")],
        required: false,
        lost: "TLS tracing of processes that load OpenSSL after they were instrumented",
    },
    Attachment {
        program: "obi_enter_mmap",
        hooks: &[sc("sys_enter_mmap")],
        required: false,
        lost: "TLS tracing of processes that load OpenSSL after they were instrumented",
    },
    Attachment {
        program: "obi_sched_exec",
        hooks: &[TracePoint("sched", "sched_process_exec")],
        required: false,
        lost: "immediate discovery of new executables (the periodic /proc scan still finds them)",
    },
    Attachment {
        program: "obi_sched_fork",
        hooks: &[RawTracePoint("sched_process_fork")],
        required: false,
        lost: "tracing of forked worker processes until the next /proc scan",
    },
    Attachment {
        program: "obi_sched_exit",
        hooks: &[TracePoint("sched", "sched_process_exit")],
        required: false,
        lost: "prompt cleanup when traced processes exit",
    },
];

/// Attachments of the no-BTF build only (see `no_btf`).
pub(crate) const NO_BTF_ATTACHMENTS: &[Attachment] = &[
    Attachment {
        program: "obi_enter_execve",
        hooks: &[sc("sys_enter_execve")],
        required: false,
        lost: "arguments of new programs: one selected by its command line is recognised from /proc, and one gone first is matched by its path only",
    },
    Attachment {
        program: "obi_enter_execveat",
        hooks: &[sc("sys_enter_execveat")],
        required: false,
        lost: "arguments of programs started with execveat (fexecve)",
    },
    Attachment {
        program: "obi_tcp_rcv_space",
        hooks: &[TracePoint("tcp", "tcp_rcv_space_adjust")],
        required: false,
        lost: "servers that accept with a NULL address (Node.js and other libuv servers, Mosquitto): not traced",
    },
    Attachment { program: "obi_enter_dup3", hooks: &[sc("sys_enter_dup3")], required: true, lost: "" },
    Attachment {
        program: "obi_enter_dup3",
        hooks: &[sc("sys_enter_dup2")],
        required: false,
        lost: "nothing where dup2 does not exist (arm64); elsewhere a socket replaced with dup2 stays known by its descriptor",
    },
];

/// Every tracepoint the agent may use, for the preflight check.
pub(crate) fn all_hooks() -> impl Iterator<Item = (&'static Attachment, Hook)> {
    ATTACHMENTS.iter().flat_map(|a| a.hooks.iter().map(move |h| (a, *h)))
}
