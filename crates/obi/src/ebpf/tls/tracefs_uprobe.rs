//! Uprobes made through tracefs (`uprobe_events`) and attached as tracepoint
//! perf events. The route for an agent the kernel refuses the uprobe PMU:
//! perf_event_open of type "uprobe" answers EACCES without CAP_SYS_ADMIN
//! (measured on 6.18, whatever kernel.perf_event_paranoid says), while a
//! tracepoint perf event needs only CAP_PERFMON and `uprobe_events` only
//! write access to the file. So TLS is traced with the same capabilities
//! as plain HTTP.

use std::io::Write;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Errors of [`attach`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum TracefsUprobeError {
    #[error("tracefs is not mounted")]
    NoTracefs,
    #[error("{} has white space: uprobe_events cannot name it", .0.display())]
    PathWithSpace(PathBuf),
    #[error("writing {line:?} to {}", path.display())]
    Write {
        path: PathBuf,
        line: String,
        #[source]
        source: std::io::Error,
    },
    #[error("reading the id of event {event}")]
    Id {
        event: String,
        #[source]
        source: std::io::Error,
    },
    #[error("perf_event_open of event {event}")]
    Open {
        event: String,
        #[source]
        source: std::io::Error,
    },
    #[error("attaching the program to event {event}")]
    SetBpf {
        event: String,
        #[source]
        source: std::io::Error,
    },
}

/// One uprobe event with a program attached. Dropping it detaches the
/// program and deletes the event.
pub(crate) struct TracefsUprobe {
    perf: Option<OwnedFd>,
    events_file: PathBuf,
    /// `group/name` in uprobe_events.
    event: String,
}

impl Drop for TracefsUprobe {
    fn drop(&mut self) {
        // The event can only be deleted once no perf event uses it.
        drop(self.perf.take());
        if let Err(err) = write_line(&self.events_file, &format!("-:{}\n", self.event)) {
            tracing::debug!(component = "ebpf.TLS", event = %self.event, error = %err, "cannot delete uprobe event");
        }
    }
}

/// Tells events of this agent apart.
static NEXT_EVENT: AtomicU64 = AtomicU64::new(0);

const PERF_TYPE_TRACEPOINT: u32 = 2;
const PERF_SAMPLE_RAW: u64 = 1 << 10;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 1 << 3;
/// _IOW('$', 8, __u32) and _IO('$', 0) from linux/perf_event.h.
const PERF_EVENT_IOC_SET_BPF: libc::c_ulong = 0x4004_2408;
const PERF_EVENT_IOC_ENABLE: libc::c_ulong = 0x2400;

/// The first published perf_event_attr (PERF_ATTR_SIZE_VER0, 64 bytes): all
/// a tracepoint event needs.
#[repr(C)]
struct PerfAttrV0 {
    ty: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    config1: u64,
}

/// Creates an uprobe (`ret`: a return probe) at `offset` of `target` and
/// runs `program` on it, for `pid` only or for every process.
pub(crate) fn attach(
    program: BorrowedFd<'_>,
    target: &Path,
    offset: u64,
    ret: bool,
    pid: Option<u32>,
) -> Result<TracefsUprobe, TracefsUprobeError> {
    let tracefs = crate::ebpf::tracefs_path().ok_or(TracefsUprobeError::NoTracefs)?;
    let path = target.to_string_lossy();
    if path.contains(char::is_whitespace) {
        return Err(TracefsUprobeError::PathWithSpace(target.to_path_buf()));
    }
    let events_file = tracefs.join("uprobe_events");
    static SWEPT: std::sync::Once = std::sync::Once::new();
    SWEPT.call_once(|| sweep_stale(&events_file));
    let group = format!("obi_{}", std::process::id());
    let name = format!("ssl_{}", NEXT_EVENT.fetch_add(1, Ordering::Relaxed));
    let event = format!("{group}/{name}");
    write_line(&events_file, &format!("{}:{event} {path}:{offset:#x}\n", if ret { 'r' } else { 'p' }))?;
    // From here on, dropping the probe deletes the event.
    let mut probe = TracefsUprobe { perf: None, events_file, event };
    let id_file = tracefs.join("events").join(&group).join(&name).join("id");
    let id: u64 = std::fs::read_to_string(&id_file)
        .and_then(|t| t.trim().parse().map_err(|_| std::io::Error::other(format!("{t:?} is not an id"))))
        .map_err(|source| TracefsUprobeError::Id { event: probe.event.clone(), source })?;
    let attr = PerfAttrV0 {
        ty: PERF_TYPE_TRACEPOINT,
        size: std::mem::size_of::<PerfAttrV0>() as u32,
        config: id,
        sample_period: 1,
        sample_type: PERF_SAMPLE_RAW,
        read_format: 0,
        flags: 0,
        wakeup_events: 1,
        bp_type: 0,
        config1: 0,
    };
    // One event for one process on any CPU, or for every process through
    // CPU 0: the program runs from the probe handler on whichever CPU hits it.
    let (pid, cpu) = match pid {
        Some(p) => (p as libc::c_int, -1),
        None => (-1, 0),
    };
    // SAFETY: attr is a valid perf_event_attr for the call's duration.
    let fd = unsafe { libc::syscall(libc::SYS_perf_event_open, &attr, pid, cpu, -1, PERF_FLAG_FD_CLOEXEC) };
    if fd < 0 {
        let source = std::io::Error::last_os_error();
        return Err(TracefsUprobeError::Open { event: probe.event.clone(), source });
    }
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    let perf = unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) };
    let raw = perf.as_raw_fd();
    probe.perf = Some(perf);
    // SAFETY: ioctls on our own perf descriptor, with a program descriptor that
    // outlives the call.
    let set = unsafe { libc::ioctl(raw, PERF_EVENT_IOC_SET_BPF as _, program.as_raw_fd()) };
    // SAFETY: as above.
    if set < 0 || unsafe { libc::ioctl(raw, PERF_EVENT_IOC_ENABLE as _, 0) } < 0 {
        let source = std::io::Error::last_os_error();
        return Err(TracefsUprobeError::SetBpf { event: probe.event.clone(), source });
    }
    Ok(probe)
}

/// Deletes the events of agents that are gone (killed before they could
/// clean up): lines `p:obi_<pid>/...` or `r:obi_<pid>/...` whose pid no
/// longer runs. Events of a live agent (another instance) are left alone.
fn sweep_stale(events_file: &Path) {
    let text = std::fs::read_to_string(events_file).unwrap_or_default();
    let mut removed = 0;
    for line in text.lines() {
        let Some(event) = line.get(2..).and_then(|l| l.split_whitespace().next()) else { continue };
        let Some(pid) = event.strip_prefix("obi_").and_then(|e| e.split('/').next()) else { continue };
        if pid.parse::<u32>().is_err() || Path::new("/proc").join(pid).exists() {
            continue;
        }
        if write_line(events_file, &format!("-:{event}\n")).is_ok() {
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::debug!(component = "ebpf.TLS", removed, "deleted uprobe events of agents that are gone");
    }
}

/// One write(2) of a whole line: uprobe_events parses each write as a command.
fn write_line(path: &Path, line: &str) -> Result<(), TracefsUprobeError> {
    let error = |source| TracefsUprobeError::Write { path: path.to_path_buf(), line: line.to_string(), source };
    let mut file = std::fs::OpenOptions::new().append(true).open(path).map_err(error)?;
    file.write_all(line.as_bytes()).map_err(error)
}
