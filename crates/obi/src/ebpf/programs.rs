//! Which eBPF program attaches where, and what is lost if it cannot.

/// Kernel hook of one program.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Hook {
    /// `tracepoint/<category>/<name>`
    TracePoint(&'static str, &'static str),
    /// `raw_tracepoint/<name>`
    RawTracePoint(&'static str),
    /// Entry of the named syscall, reached through the raw `sys_enter`
    /// tracepoint's dispatcher (see `bpf/include/obi/syscalls.bpf.h`).
    SyscallEnter(&'static str),
    /// Return of the named syscall, through the `sys_exit` dispatcher.
    SyscallExit(&'static str),
}

impl Hook {
    pub(crate) fn describe(&self) -> String {
        match self {
            Hook::TracePoint(cat, name) => format!("tracepoint {cat}:{name}"),
            Hook::RawTracePoint(name) => format!("raw tracepoint {name}"),
            Hook::SyscallEnter(name) => format!("{name}() entry"),
            Hook::SyscallExit(name) => format!("{name}() return"),
        }
    }

    /// The tracefs event (category, name) this hook needs, if one.
    pub(crate) fn tracefs_event(&self) -> Option<(&'static str, &'static str)> {
        match *self {
            Hook::TracePoint(category, name) => Some((category, name)),
            Hook::RawTracePoint(name @ ("sys_enter" | "sys_exit")) => Some(("raw_syscalls", name)),
            Hook::RawTracePoint(name) => Some(("sched", name)),
            Hook::SyscallEnter(_) | Hook::SyscallExit(_) => None,
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

use Hook::{RawTracePoint, SyscallEnter as enter, SyscallExit as exit, TracePoint};

/// The syscall dispatchers, attached after every handler is in its slot:
/// returns first, so an entry never saves arguments nobody consumes.
pub(crate) const SYSCALL_DISPATCH: &[Attachment] = &[
    Attachment {
        program: "obi_syscall_exit",
        hooks: &[RawTracePoint("sys_exit")],
        required: true,
        lost: "all request capture",
    },
    Attachment {
        program: "obi_syscall_enter",
        hooks: &[RawTracePoint("sys_enter")],
        required: true,
        lost: "all request capture",
    },
];

/// Every attachment of the socket tracer. Syscall hooks only fill program
/// array slots; nothing reaches them before [`SYSCALL_DISPATCH`] attaches.
pub(crate) const ATTACHMENTS: &[Attachment] = &[
    Attachment {
        program: "obi_sys_exit",
        hooks: &[
            exit("write"),
            exit("accept4"),
            exit("connect"),
            exit("writev"),
            exit("sendto"),
            exit("sendmsg"),
            exit("sendfile"),
            exit("accept"),
        ],
        required: true,
        lost: "all request capture",
    },
    Attachment { program: "obi_enter_write", hooks: &[enter("write")], required: true, lost: "" },
    Attachment { program: "obi_enter_accept", hooks: &[enter("accept4")], required: true, lost: "server connections" },
    Attachment {
        program: "obi_enter_accept",
        hooks: &[enter("accept")],
        required: false,
        lost: "server connections accepted with accept()",
    },
    Attachment { program: "obi_enter_connect", hooks: &[enter("connect")], required: true, lost: "" },
    Attachment { program: "obi_enter_close", hooks: &[enter("close")], required: true, lost: "" },
    Attachment {
        program: "obi_enter_writev",
        hooks: &[enter("writev")],
        required: false,
        lost: "responses written with writev() (nginx, many C servers)",
    },
    Attachment {
        program: "obi_enter_sendto",
        hooks: &[enter("sendto")],
        required: false,
        lost: "traffic written with send()/sendto() (Python, Node.js)",
    },
    Attachment {
        program: "obi_enter_sendmsg",
        hooks: &[enter("sendmsg")],
        required: false,
        lost: "traffic written with sendmsg()",
    },
    Attachment {
        program: "obi_enter_sendfile",
        hooks: &[enter("sendfile")],
        required: false,
        lost: "response sizes of files sent with sendfile() (static file servers)",
    },
    Attachment {
        program: "obi_enter_epoll_wait",
        hooks: &[enter("epoll_wait"), enter("epoll_pwait")],
        required: true,
        lost: "",
    },
    Attachment {
        program: "obi_enter_epoll_wait",
        hooks: &[enter("epoll_pwait2")],
        required: false,
        lost: "event-loop detection for loops waiting in epoll_pwait2, whose client calls may then take a wrong parent (nothing before Linux 5.11, which has no such syscall)",
    },
    Attachment {
        program: "obi_exit_epoll_create",
        hooks: &[exit("epoll_create1"), exit("epoll_create")],
        required: false,
        lost: "parents for threads that wait on one socket through epoll (psycopg): their client calls start their own traces",
    },
    Attachment {
        program: "obi_exit_epoll_ctl",
        hooks: &[exit("epoll_ctl")],
        required: false,
        lost: "parents for threads that wait on one socket through epoll (psycopg): their client calls start their own traces",
    },
    Attachment {
        program: "obi_enter_epoll_ctl",
        hooks: &[enter("epoll_ctl")],
        required: false,
        lost: "parents for threads that wait on one socket through epoll (psycopg): their client calls start their own traces",
    },
    Attachment {
        program: "obi_enter_poll",
        hooks: &[enter("poll"), enter("ppoll")],
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
        hooks: &[enter("access")],
        required: false,
        lost: "Node.js parent hints on x86_64 (client spans of Node.js servers start their own traces)",
    },
    Attachment {
        program: "obi_enter_faccessat",
        hooks: &[enter("faccessat"), enter("faccessat2")],
        required: false,
        lost: "Node.js parent hints where access() is faccessat() (arm64)",
    },
    Attachment {
        program: "obi_exit_listen",
        hooks: &[exit("listen")],
        required: false,
        lost: "immediate discovery of new servers (the periodic /proc scan still finds them)",
    },
    Attachment {
        program: "obi_exit_mmap",
        hooks: &[exit("mmap")],
        required: false,
        lost: "TLS tracing of processes that load OpenSSL after they were instrumented",
    },
    Attachment {
        program: "obi_enter_mmap",
        hooks: &[enter("mmap")],
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

/// Attachments of the normal (CO-RE) build only.
pub(crate) const BTF_ATTACHMENTS: &[Attachment] = &[Attachment {
    program: "obi_exit_recv",
    hooks: &[exit("read"), exit("readv"), exit("recvfrom"), exit("recvmsg")],
    required: true,
    lost: "all request capture",
}];

/// Attachments of the no-BTF build only (see `no_btf`).
pub(crate) const NO_BTF_ATTACHMENTS: &[Attachment] = &[
    // Receives save their arguments at entry there: the tcp_rcv_space_adjust
    // hook needs them during the read.
    Attachment {
        program: "obi_sys_exit",
        hooks: &[exit("read"), exit("readv"), exit("recvfrom"), exit("recvmsg")],
        required: true,
        lost: "all request capture",
    },
    Attachment { program: "obi_enter_read", hooks: &[enter("read")], required: true, lost: "" },
    Attachment { program: "obi_enter_readv", hooks: &[enter("readv")], required: true, lost: "" },
    Attachment { program: "obi_enter_recvfrom", hooks: &[enter("recvfrom")], required: true, lost: "" },
    Attachment { program: "obi_enter_recvmsg", hooks: &[enter("recvmsg")], required: true, lost: "" },
    Attachment {
        program: "obi_enter_execve",
        hooks: &[enter("execve")],
        required: false,
        lost: "arguments of new programs: one selected by its command line is recognised from /proc, and one gone first is matched by its path only",
    },
    Attachment {
        program: "obi_enter_execveat",
        hooks: &[enter("execveat")],
        required: false,
        lost: "arguments of programs started with execveat (fexecve)",
    },
    Attachment {
        program: "obi_tcp_rcv_space",
        hooks: &[TracePoint("tcp", "tcp_rcv_space_adjust")],
        required: false,
        lost: "servers that accept with a NULL address (Node.js and other libuv servers, Mosquitto): not traced",
    },
    Attachment { program: "obi_enter_dup3", hooks: &[enter("dup3")], required: true, lost: "" },
    Attachment {
        program: "obi_enter_dup3",
        hooks: &[enter("dup2")],
        required: false,
        lost: "nothing where dup2 does not exist (arm64); elsewhere a socket replaced with dup2 stays known by its descriptor",
    },
];

/// Every hook the agent may use, for the preflight check.
pub(crate) fn all_hooks() -> impl Iterator<Item = (&'static Attachment, Hook)> {
    ATTACHMENTS.iter().chain(BTF_ATTACHMENTS).chain(SYSCALL_DISPATCH).flat_map(|a| a.hooks.iter().map(move |h| (a, *h)))
}
