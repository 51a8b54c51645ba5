//! Rust mirrors of `bpf/include/obi/abi.h`. The C header is the definition;
//! the tests below pin sizes and offsets so a change on one side without the
//! other fails the build's tests instead of silently misreading events.

#![allow(dead_code)]

pub(crate) const MAX_CAPTURE: usize = 4096;
/// Entries of the syscall program arrays.
pub(crate) const SYSCALL_SLOTS: u32 = 512;
pub(crate) const TAIL_LEN: usize = 16;

pub(crate) const EV_DATA: u8 = 1;
pub(crate) const EV_CONN_OPEN: u8 = 2;
pub(crate) const EV_CONN_CLOSE: u8 = 3;
/// The parent of one HTTP/2 client stream (Go's grpc-go): `conn_id` the
/// socket, `bytes` the stream id, `tp` the parent (`valid == 0`: a root).
pub(crate) const EV_H2_STREAM_PARENT: u8 = 4;

pub(crate) const DIR_RECV: u8 = 0;
pub(crate) const DIR_SEND: u8 = 1;

pub(crate) const ROLE_UNKNOWN: u8 = 0;
pub(crate) const ROLE_SERVER: u8 = 1;
pub(crate) const ROLE_CLIENT: u8 = 2;

pub(crate) const F_MSG_START: u8 = 0x01;
pub(crate) const F_TRUNCATED: u8 = 0x02;
pub(crate) const F_REQUEST: u8 = 0x04;
pub(crate) const F_ROLE_GUESSED: u8 = 0x08;
pub(crate) const F_TLS: u8 = 0x10;
/// The data is HTTP/2 frame records, not the start of a buffer (see obi_protocols::http2::records).
pub(crate) const F_H2: u8 = 0x20;
/// `syscall` of TLS plaintext events from Go's crypto/tls probes (the
/// OpenSSL ones use other numbers): read, and write (`+ 1`).
pub(crate) const SC_GO_TLS_READ: u8 = 15;
pub(crate) const SC_GO_TLS_WRITE: u8 = 16;

pub(crate) const PID_PROVISIONAL: u32 = 0x1;
pub(crate) const PID_TLS: u32 = 0x2;

pub(crate) const PEV_EXEC: u8 = 1;
pub(crate) const PEV_EXIT: u8 = 2;
pub(crate) const PEV_FORK: u8 = 3;
pub(crate) const PEV_LISTEN: u8 = 4;
pub(crate) const PEV_TLS_LIB: u8 = 5;

pub(crate) const STAT_EVENTS: u32 = 0;
pub(crate) const STAT_RINGBUF_FULL: u32 = 1;
pub(crate) const STAT_PROC_RINGBUF_FULL: u32 = 2;
pub(crate) const STAT_CONN_TABLE_FULL: u32 = 3;
pub(crate) const STAT_PENDING_FULL: u32 = 4;
pub(crate) const STAT_IGNORED: u32 = 5;
pub(crate) const STAT_WAKEUPS: u32 = 6;
pub(crate) const STAT_INJECTED: u32 = 7;
pub(crate) const STAT_INJECT_SKIPPED: u32 = 8;
pub(crate) const STAT_INJECT_FAILED: u32 = 9;
pub(crate) const STAT_ROOT_MULTIPLEXED: u32 = 10;
pub(crate) const STAT_HINTS_USED: u32 = 11;
pub(crate) const STAT_HINTS_IGNORED: u32 = 12;
pub(crate) const STAT_MAX: u32 = 16;

/// Parent hints (bpf/include/obi/hints.bpf.h): a traced process calls
/// access() on this prefix followed by its client and server socket fds,
/// 8 lowercase hex digits each.
pub(crate) const HINT_PREFIX: &str = "/dev/null/obi-rs/";

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ConnTuple {
    pub(crate) laddr: [u8; 16],
    pub(crate) raddr: [u8; 16],
    pub(crate) lport: u16,
    pub(crate) rport: u16,
    pub(crate) family: u16,
    pub(crate) _pad: u16,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tp {
    pub(crate) trace_id: [u8; 16],
    pub(crate) span_id: [u8; 8],
    pub(crate) parent_id: [u8; 8],
    pub(crate) flags: u8,
    pub(crate) valid: u8,
    pub(crate) _pad: [u8; 6],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct EventHdr {
    pub(crate) kind: u8,
    pub(crate) dir: u8,
    pub(crate) role: u8,
    pub(crate) flags: u8,
    pub(crate) tgid: u32,
    pub(crate) tid: u32,
    pub(crate) syscall: u8,
    pub(crate) tail_len: u8,
    pub(crate) captured: u16,
    pub(crate) conn_id: u64,
    pub(crate) ts_enter: u64,
    pub(crate) ts_exit: u64,
    pub(crate) bytes: u64,
    pub(crate) tuple: ConnTuple,
    pub(crate) tp: Tp,
    pub(crate) queued_at: u64,
    pub(crate) tail: [u8; TAIL_LEN],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ProcEvent {
    pub(crate) kind: u8,
    pub(crate) _pad: [u8; 3],
    pub(crate) pid: u32,
    pub(crate) ppid: u32,
    pub(crate) _pad2: u32,
    pub(crate) ts: u64,
}

pub(crate) const EXEC_PATH_LEN: usize = 256;
pub(crate) const EXEC_ARGS_LEN: usize = 256;

/// `struct obi_exec_event`: an exec record with the path and argv.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct ExecEvent {
    pub(crate) base: ProcEvent,
    pub(crate) path_len: u16,
    pub(crate) args_len: u16,
    pub(crate) _pad: u32,
    /// Inode of the program now running, 0 if unknown.
    pub(crate) exe_ino: u64,
    pub(crate) path: [u8; EXEC_PATH_LEN],
    pub(crate) args: [u8; EXEC_ARGS_LEN],
}

impl ExecEvent {
    pub(crate) fn read(record: &[u8]) -> Option<ExecEvent> {
        if record.len() < std::mem::size_of::<ExecEvent>() {
            return None;
        }
        // SAFETY: length checked above; ExecEvent is POD and read unaligned.
        Some(unsafe { std::ptr::read_unaligned(record.as_ptr() as *const ExecEvent) })
    }

    pub(crate) fn path(&self) -> &[u8] {
        &self.path[..(self.path_len as usize).min(EXEC_PATH_LEN)]
    }

    /// argv (NUL-separated in the record).
    pub(crate) fn args(&self) -> Vec<String> {
        let raw = &self.args[..(self.args_len as usize).min(EXEC_ARGS_LEN)];
        raw.split(|&b| b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect()
    }
}

/// A pid's entry in the kernel's filter (`traced_pids`): traced, and how.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PidInfo {
    pub(crate) flags: u32,
    pub(crate) _pad: u32,
}

impl PidInfo {
    /// Chosen by discovery: no longer provisional, and still tied to its TLS
    /// sessions if its probes were attached while it was provisional.
    pub(crate) fn selected(self) -> Self {
        PidInfo { flags: self.flags & !PID_PROVISIONAL, ..self }
    }

    /// TLS probes attached. A provisional process stays provisional: only
    /// discovery selects (and only a selected process has its traffic changed).
    pub(crate) fn with_tls(self) -> Self {
        PidInfo { flags: self.flags | PID_TLS, ..self }
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ConnState {
    pub(crate) tuple: ConnTuple,
    pub(crate) tp: Tp,
    pub(crate) msg_start_ts: u64,
    pub(crate) tgid: u32,
    pub(crate) role: u8,
    pub(crate) last_dir: u8,
    pub(crate) flags: u8,
    pub(crate) _pad: u8,
}

/// `struct obi_ssl_key`, the key of the `tls_state` map: a TLS session
/// (SSL object address, or for Go the socket inode; process). User space sweeps the sessions of
/// processes that are gone.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SslKey {
    pub(crate) ssl: u64,
    pub(crate) tgid: u32,
    pub(crate) _pad: u32,
}

/// `struct obi_go_offsets`, the value of the `go_procs` map: the Go struct
/// field offsets the Go probes read in one process (see `crate::golang`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct GoOffsets {
    pub(crate) g_goid: u32,
    pub(crate) http_conn_rwc: u32,
    pub(crate) http_conn_tls_state: u32,
    pub(crate) persist_conn_conn: u32,
    pub(crate) persist_conn_tls_state: u32,
    pub(crate) net_conn_fd: u32,
    pub(crate) netfd_pfd: u32,
    pub(crate) netfd_family: u32,
    pub(crate) netfd_sotype: u32,
    pub(crate) netfd_net: u32,
    pub(crate) poll_fd_sysfd: u32,
    pub(crate) tls_conn_conn: u32,
    /// grpc-go's, all 0 when its release is not known (no gRPC probe).
    pub(crate) grpc_stream_id: u32,
    pub(crate) grpc_stream_ct: u32,
    pub(crate) grpc_client_conn: u32,
    pub(crate) _pad: u32,
}

/// `struct obi_fd_key`: a descriptor of a process (no-BTF mode's fd_socks).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct FdKey {
    pub(crate) tgid: u32,
    pub(crate) fd: u32,
}

/// `struct obi_fd_sock`: the connection a descriptor names (no-BTF mode).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FdSock {
    pub(crate) conn_id: u64,
    pub(crate) sk: u64,
    pub(crate) exec_gen: u32,
    pub(crate) _pad: u32,
}

// SAFETY: plain-old-data structs with no padding holes the kernel could leave
// uninitialised in a way that matters (every field is an integer array).
unsafe impl aya::Pod for PidInfo {}
unsafe impl aya::Pod for ConnState {}
unsafe impl aya::Pod for SslKey {}
unsafe impl aya::Pod for GoOffsets {}
unsafe impl aya::Pod for FdKey {}
unsafe impl aya::Pod for FdSock {}

impl EventHdr {
    pub(crate) const SIZE: usize = std::mem::size_of::<EventHdr>();

    /// Reads a header from the start of a ring-buffer record.
    pub(crate) fn read(record: &[u8]) -> Option<EventHdr> {
        if record.len() < Self::SIZE {
            return None;
        }
        // SAFETY: length checked above; EventHdr is POD and read unaligned.
        Some(unsafe { std::ptr::read_unaligned(record.as_ptr() as *const EventHdr) })
    }
}

impl ProcEvent {
    pub(crate) fn read(record: &[u8]) -> Option<ProcEvent> {
        if record.len() < std::mem::size_of::<ProcEvent>() {
            return None;
        }
        // SAFETY: length checked above; ProcEvent is POD and read unaligned.
        Some(unsafe { std::ptr::read_unaligned(record.as_ptr() as *const ProcEvent) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn layouts_match_the_c_header() {
        assert_eq!(size_of::<ConnTuple>(), 40);
        assert_eq!(size_of::<Tp>(), 40);
        assert_eq!(offset_of!(EventHdr, tgid), 4);
        assert_eq!(offset_of!(EventHdr, tid), 8);
        assert_eq!(offset_of!(EventHdr, syscall), 12);
        assert_eq!(offset_of!(EventHdr, captured), 14);
        assert_eq!(offset_of!(EventHdr, conn_id), 16);
        assert_eq!(offset_of!(EventHdr, ts_enter), 24);
        assert_eq!(offset_of!(EventHdr, bytes), 40);
        assert_eq!(offset_of!(EventHdr, tuple), 48);
        assert_eq!(offset_of!(EventHdr, tp), 88);
        assert_eq!(offset_of!(EventHdr, queued_at), 128);
        assert_eq!(offset_of!(EventHdr, tail), 136);
        assert_eq!(size_of::<EventHdr>(), 152);
        assert_eq!(size_of::<ProcEvent>(), 24);
        assert_eq!(size_of::<PidInfo>(), 8);
        assert_eq!(offset_of!(ConnState, msg_start_ts), 80);
        assert_eq!(size_of::<ConnState>(), 96);
        assert_eq!(offset_of!(ExecEvent, exe_ino), 32);
        assert_eq!(size_of::<ExecEvent>(), 552);
        assert_eq!(offset_of!(SslKey, ssl), 0);
        assert_eq!(offset_of!(SslKey, tgid), 8);
        assert_eq!(size_of::<SslKey>(), 16);
        assert_eq!(offset_of!(GoOffsets, g_goid), 0);
        assert_eq!(offset_of!(GoOffsets, poll_fd_sysfd), 40);
        assert_eq!(offset_of!(GoOffsets, tls_conn_conn), 44);
        assert_eq!(offset_of!(GoOffsets, grpc_client_conn), 56);
        assert_eq!(size_of::<GoOffsets>(), 64);
        assert_eq!(size_of::<FdKey>(), 8);
        assert_eq!(offset_of!(FdSock, exec_gen), 16);
        assert_eq!(size_of::<FdSock>(), 24);
    }

    #[test]
    fn syscall_slots_match_the_c_header() {
        let header = include_str!("../../../../bpf/include/obi/abi.h");
        assert!(header.contains(&format!("#define OBI_SYSCALL_SLOTS {SYSCALL_SLOTS}")));
    }

    #[test]
    fn hint_prefix_matches_the_c_header() {
        let header = include_str!("../../../../bpf/include/obi/abi.h");
        assert!(header.contains(&format!("#define OBI_HINT_PREFIX \"{HINT_PREFIX}\"")));
        assert!(header.contains(&format!("#define OBI_HINT_PREFIX_LEN {}", HINT_PREFIX.len())));
    }

    /// Attaching TLS probes never selects a process; selecting one never
    /// forgets its TLS probes (both orders happen: a process that maps libssl
    /// at exec gets its probes before discovery decides).
    #[test]
    fn tls_and_selection_flags_are_independent() {
        let watched = PidInfo { flags: PID_PROVISIONAL, _pad: 0 };
        assert_eq!(watched.with_tls().flags, PID_PROVISIONAL | PID_TLS);
        assert_eq!(watched.with_tls().selected().flags, PID_TLS);
        assert_eq!(watched.selected().with_tls().flags, PID_TLS);
        assert_eq!(watched.selected().flags, 0);
        assert_eq!(PidInfo::default().with_tls().with_tls().flags, PID_TLS);
    }
}
