//! Rust mirrors of `bpf/include/obi/abi.h`. The C header is the definition;
//! the tests below pin sizes and offsets so a change on one side without the
//! other fails the build's tests instead of silently misreading events.

#![allow(dead_code)]

pub const MAX_CAPTURE: usize = 4096;
pub const TAIL_LEN: usize = 16;

pub const EV_DATA: u8 = 1;
pub const EV_CONN_OPEN: u8 = 2;
pub const EV_CONN_CLOSE: u8 = 3;

pub const DIR_RECV: u8 = 0;
pub const DIR_SEND: u8 = 1;

pub const ROLE_UNKNOWN: u8 = 0;
pub const ROLE_SERVER: u8 = 1;
pub const ROLE_CLIENT: u8 = 2;

pub const F_MSG_START: u8 = 0x01;
pub const F_TRUNCATED: u8 = 0x02;
pub const F_REQUEST: u8 = 0x04;
pub const F_ROLE_GUESSED: u8 = 0x08;
pub const F_TLS: u8 = 0x10;
/// The data is HTTP/2 frame records, not the start of a buffer (see obi_protocols::http2::records).
pub const F_H2: u8 = 0x20;

pub const PID_PROVISIONAL: u32 = 0x1;
pub const PID_TLS: u32 = 0x2;

pub const PEV_EXEC: u8 = 1;
pub const PEV_EXIT: u8 = 2;
pub const PEV_FORK: u8 = 3;
pub const PEV_LISTEN: u8 = 4;
pub const PEV_TLS_LIB: u8 = 5;

pub const STAT_EVENTS: u32 = 0;
pub const STAT_RINGBUF_FULL: u32 = 1;
pub const STAT_PROC_RINGBUF_FULL: u32 = 2;
pub const STAT_CONN_TABLE_FULL: u32 = 3;
pub const STAT_PENDING_FULL: u32 = 4;
pub const STAT_IGNORED: u32 = 5;
pub const STAT_WAKEUPS: u32 = 6;
pub const STAT_INJECTED: u32 = 7;
pub const STAT_INJECT_SKIPPED: u32 = 8;
pub const STAT_INJECT_FAILED: u32 = 9;
pub const STAT_MAX: u32 = 12;

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnTuple {
    pub laddr: [u8; 16],
    pub raddr: [u8; 16],
    pub lport: u16,
    pub rport: u16,
    pub family: u16,
    pub _pad: u16,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tp {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent_id: [u8; 8],
    pub flags: u8,
    pub valid: u8,
    pub _pad: [u8; 6],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct EventHdr {
    pub kind: u8,
    pub dir: u8,
    pub role: u8,
    pub flags: u8,
    pub tgid: u32,
    pub tid: u32,
    pub syscall: u8,
    pub tail_len: u8,
    pub captured: u16,
    pub conn_id: u64,
    pub ts_enter: u64,
    pub ts_exit: u64,
    pub bytes: u64,
    pub tuple: ConnTuple,
    pub tp: Tp,
    pub tail: [u8; TAIL_LEN],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcEvent {
    pub kind: u8,
    pub _pad: [u8; 3],
    pub pid: u32,
    pub ppid: u32,
    pub _pad2: u32,
    pub ts: u64,
}

pub const EXEC_PATH_LEN: usize = 256;
pub const EXEC_ARGS_LEN: usize = 256;

/// `struct obi_exec_event`: an exec record with the path and argv.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ExecEvent {
    pub base: ProcEvent,
    pub path_len: u16,
    pub args_len: u16,
    pub _pad: u32,
    pub path: [u8; EXEC_PATH_LEN],
    pub args: [u8; EXEC_ARGS_LEN],
}

impl ExecEvent {
    pub fn read(record: &[u8]) -> Option<ExecEvent> {
        if record.len() < std::mem::size_of::<ExecEvent>() {
            return None;
        }
        // SAFETY: length checked above; ExecEvent is POD and read unaligned.
        Some(unsafe { std::ptr::read_unaligned(record.as_ptr() as *const ExecEvent) })
    }

    pub fn path(&self) -> &[u8] {
        &self.path[..(self.path_len as usize).min(EXEC_PATH_LEN)]
    }

    /// argv (NUL-separated in the record).
    pub fn args(&self) -> Vec<String> {
        let raw = &self.args[..(self.args_len as usize).min(EXEC_ARGS_LEN)];
        raw.split(|&b| b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect()
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct PidInfo {
    pub flags: u32,
    pub _pad: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct ConnState {
    pub tuple: ConnTuple,
    pub tp: Tp,
    pub msg_start_ts: u64,
    pub tgid: u32,
    pub role: u8,
    pub last_dir: u8,
    pub flags: u8,
    pub _pad: u8,
}

/// `struct obi_ssl_key`, the key of the `tls_state` map: a TLS session
/// (SSL object address, process). User space sweeps the sessions of
/// processes that are gone.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SslKey {
    pub ssl: u64,
    pub tgid: u32,
    pub _pad: u32,
}

// SAFETY: plain-old-data structs with no padding holes the kernel could leave
// uninitialised in a way that matters (every field is an integer array).
unsafe impl aya::Pod for PidInfo {}
unsafe impl aya::Pod for ConnState {}
unsafe impl aya::Pod for SslKey {}

impl EventHdr {
    pub const SIZE: usize = std::mem::size_of::<EventHdr>();

    /// Reads a header from the start of a ring-buffer record.
    pub fn read(record: &[u8]) -> Option<EventHdr> {
        if record.len() < Self::SIZE {
            return None;
        }
        // SAFETY: length checked above; EventHdr is POD and read unaligned.
        Some(unsafe { std::ptr::read_unaligned(record.as_ptr() as *const EventHdr) })
    }
}

impl ProcEvent {
    pub fn read(record: &[u8]) -> Option<ProcEvent> {
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
        assert_eq!(offset_of!(EventHdr, tail), 128);
        assert_eq!(size_of::<EventHdr>(), 144);
        assert_eq!(size_of::<ProcEvent>(), 24);
        assert_eq!(size_of::<PidInfo>(), 8);
        assert_eq!(offset_of!(ConnState, msg_start_ts), 80);
        assert_eq!(size_of::<ConnState>(), 96);
        assert_eq!(size_of::<ExecEvent>(), 544);
        assert_eq!(offset_of!(SslKey, ssl), 0);
        assert_eq!(offset_of!(SslKey, tgid), 8);
        assert_eq!(size_of::<SslKey>(), 16);
    }
}
