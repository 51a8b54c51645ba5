//! What a container (or any sandbox) takes away that capabilities do not
//! show: a seccomp filter that refuses bpf() or perf_event_open(), a PID
//! namespace of its own, no tracefs, and the kernel's gate on the uprobe
//! PMU (passed by making uprobes through tracefs, which must be writable). Each is probed the way the agent will use it, so a missing piece
//! is named here and not found later as a bare "permission denied".

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::{Check, caps, has_cap};

/// Inode of the initial PID namespace (PROC_PID_INIT_INO, a kernel constant).
const INIT_PID_NS: &str = "pid:[4026531836]";

/// What a forbidden syscall returned: a seccomp filter answers EPERM before
/// the kernel looks at the (deliberately invalid) arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    /// The kernel saw the call and rejected its arguments.
    Reached,
    /// Refused with EPERM before the kernel parsed anything.
    Refused,
    /// Refused with EACCES by a permission check inside the kernel.
    Denied,
    /// Some other answer (errno): not ours to interpret.
    Other(i32),
}

fn probe(rc: libc::c_long) -> Probe {
    if rc >= 0 {
        // Cannot happen with the arguments we pass; close it all the same.
        // SAFETY: rc is a descriptor the call just returned to us.
        unsafe { libc::close(rc as libc::c_int) };
        return Probe::Reached;
    }
    match std::io::Error::last_os_error().raw_os_error().unwrap_or(0) {
        libc::EPERM => Probe::Refused,
        libc::EACCES => Probe::Denied,
        libc::EINVAL | libc::EFAULT | libc::E2BIG | libc::ENOENT => Probe::Reached,
        e => Probe::Other(e),
    }
}

/// bpf() with a command no kernel has: EINVAL from the kernel, EPERM from a
/// seccomp filter (the default Podman/Docker profiles allow bpf() only with
/// CAP_SYS_ADMIN).
fn probe_bpf() -> Probe {
    // SAFETY: an unknown command with a null attribute pointer; the kernel
    // rejects it without touching memory.
    probe(unsafe { libc::syscall(libc::SYS_bpf, 0x7fff_i64, std::ptr::null::<u8>(), 0u32) })
}

/// perf_event_open() with a null attribute: EFAULT from the kernel.
fn probe_perf_event_open() -> Probe {
    // SAFETY: a null attribute pointer; the kernel fails to copy it and returns.
    probe(unsafe { libc::syscall(libc::SYS_perf_event_open, std::ptr::null::<u8>(), -1, 0, -1, 0) })
}

/// An uprobe perf event without a path: EINVAL once the uprobe PMU's
/// permission check passed, EACCES when the kernel refuses this process
/// uprobe perf events (measured on 6.18: CAP_PERFMON is not enough, only
/// CAP_SYS_ADMIN passes, whatever kernel.perf_event_paranoid says).
fn probe_uprobe_pmu() -> Option<Probe> {
    let ty: u32 = fs::read_to_string("/sys/bus/event_source/devices/uprobe/type").ok()?.trim().parse().ok()?;
    let attr = PerfAttrV0 { ty, size: std::mem::size_of::<PerfAttrV0>() as u32, rest: [0; 7] };
    // SAFETY: attr lives for the call; no path is given, so nothing is probed.
    Some(probe(unsafe { libc::syscall(libc::SYS_perf_event_open, &attr, -1, 0, -1, PERF_FLAG_FD_CLOEXEC) }))
}

/// The first published perf_event_attr (PERF_ATTR_SIZE_VER0, 64 bytes):
/// type and size, then fields left zero (config1, the uprobe path, among them).
#[repr(C)]
struct PerfAttrV0 {
    ty: u32,
    size: u32,
    rest: [u64; 7],
}

const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 1 << 3;

/// "filter", "strict" or "disabled", from /proc/self/status.
fn seccomp_mode() -> &'static str {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    match status.lines().find_map(|l| l.strip_prefix("Seccomp:")).map(str::trim) {
        Some("2") => "filter",
        Some("1") => "strict",
        Some("0") => "disabled",
        _ => "unknown",
    }
}

const SECCOMP_FIX: &str = "podman/docker run --security-opt seccomp=unconfined (compose: security_opt: [seccomp=unconfined]), or a seccomp profile that allows bpf and perf_event_open";

/// The syscalls the agent cannot work without reach the kernel.
fn syscall_check(name: &str, probe: Probe, lost: &str) -> Check {
    let label = format!("syscall {name}");
    match probe {
        Probe::Reached | Probe::Denied => Check::ok(label, "allowed"),
        Probe::Refused if seccomp_mode() == "filter" => Check::fail(
            label,
            format!("refused with EPERM before the kernel saw it (seccomp: filter): {lost}"),
            SECCOMP_FIX,
        ),
        // No filter: an older kernel's gate on unprivileged bpf(), or an LSM.
        Probe::Refused => Check::fail(
            label,
            format!("refused with EPERM (seccomp: {}): {lost}", seccomp_mode()),
            "run as root with the capabilities above; check the kernel's unprivileged_bpf_disabled and any LSM policy",
        ),
        Probe::Other(e) => {
            Check::warn(label, format!("unexpected answer {}", std::io::Error::from_raw_os_error(e)), "")
        }
    }
}

/// Outside the host's PID namespace the agent sees only its own container's
/// processes and silently traces nothing else.
fn pid_namespace_check(ns: Option<&str>) -> Check {
    match ns {
        Some(INIT_PID_NS) => Check::ok("pid namespace", "the host's (every process is visible)"),
        Some(other) => Check::fail(
            "pid namespace",
            format!("{other} is not the host's: only the processes of this container can be seen and traced"),
            "podman/docker run --pid=host (compose: pid: host)",
        ),
        None => Check::warn("pid namespace", "cannot read /proc/self/ns/pid", ""),
    }
}

/// Whether this mount namespace has tracefs mounted anywhere (readable or
/// not: an unreadable one is a matter of privileges, checked elsewhere).
fn tracefs_in_mounts() -> bool {
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts.lines().any(|l| l.split_whitespace().nth(2) == Some("tracefs"))
}

/// tracefs must be there already when the agent may not mount it.
fn tracefs_reachable_check(mounted: bool, caps: u64) -> Check {
    if mounted {
        Check::ok("tracefs reachable", "mounted")
    } else if has_cap(caps, caps::SYS_ADMIN) {
        Check::ok("tracefs reachable", "not mounted; obi mounts it at start (CAP_SYS_ADMIN)")
    } else {
        Check::fail(
            "tracefs reachable",
            "not mounted, and mounting it needs CAP_SYS_ADMIN: no tracepoint can be attached",
            "podman/docker run -v /sys/kernel/tracing:/sys/kernel/tracing (compose: volumes), or mount -t tracefs nodev /sys/kernel/tracing on the host",
        )
    }
}

const UPROBE_LABEL: &str = "uprobe perf events";

/// Warnings the agent repeats at start: a feature lost to the sandbox, which
/// the user can restore.
pub(super) const STARTUP_WARNINGS: &[&str] = &[UPROBE_LABEL];

/// HTTPS through OpenSSL needs uprobes: through the uprobe PMU, or where the
/// kernel refuses it (EACCES), through tracefs's uprobe_events, which must
/// then be writable (`events_writable`).
fn uprobe_permission_check(probe: Option<Probe>, events_writable: bool) -> Check {
    const LABEL: &str = UPROBE_LABEL;
    match probe {
        None => Check::warn(LABEL, "no uprobe PMU: HTTPS (TLS) traffic is not decoded", ""),
        Some(Probe::Reached) => Check::ok(LABEL, "allowed (HTTPS through OpenSSL)"),
        Some(Probe::Denied) if events_writable => Check::ok(
            LABEL,
            "the uprobe PMU needs CAP_SYS_ADMIN; OpenSSL uprobes are made through tracefs (uprobe_events) instead",
        ),
        Some(Probe::Denied) => Check::warn(
            LABEL,
            "the uprobe PMU is refused without CAP_SYS_ADMIN and tracefs's uprobe_events is not writable: HTTPS (TLS) traffic is not decoded, plain HTTP is",
            "mount tracefs read-write (-v /sys/kernel/tracing:/sys/kernel/tracing, without :ro), or add CAP_SYS_ADMIN",
        ),
        Some(Probe::Refused) => Check::warn(
            LABEL,
            format!("refused with EPERM (seccomp: {}): HTTPS (TLS) traffic is not decoded", seccomp_mode()),
            SECCOMP_FIX,
        ),
        Some(Probe::Other(e)) => {
            Check::warn(LABEL, format!("unexpected answer {}", std::io::Error::from_raw_os_error(e)), "")
        }
    }
}

/// Whether this process may write tracefs's uprobe_events (read-only
/// mounts and file permissions both count).
fn uprobe_events_writable(tracefs: Option<&Path>) -> bool {
    let Some(file) = tracefs.map(|t| t.join("uprobe_events")) else { return false };
    let Ok(path) = std::ffi::CString::new(file.as_os_str().as_bytes()) else { return false };
    // SAFETY: a valid NUL-terminated path; access(2) only reads it.
    unsafe { libc::access(path.as_ptr(), libc::W_OK) == 0 }
}

/// Every confinement check, in the order a user fixes them.
pub(super) fn checks(caps: u64, tracefs: Option<&Path>) -> Vec<Check> {
    let ns = fs::read_link("/proc/self/ns/pid").ok().map(|p| p.to_string_lossy().into_owned());
    vec![
        syscall_check("bpf", probe_bpf(), "no eBPF program or map can be loaded"),
        syscall_check("perf_event_open", probe_perf_event_open(), "no tracepoint or uprobe can be attached"),
        pid_namespace_check(ns.as_deref()),
        tracefs_reachable_check(tracefs.is_some() || tracefs_in_mounts(), caps),
        uprobe_permission_check(probe_uprobe_pmu(), uprobe_events_writable(tracefs)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preflight::Status;

    #[test]
    fn a_private_pid_namespace_fails_with_the_fix() {
        let c = pid_namespace_check(Some("pid:[4026532712]"));
        assert_eq!(c.status, Status::Fail);
        assert!(c.fix.contains("--pid=host"), "{}", c.fix);
        assert_eq!(pid_namespace_check(Some(INIT_PID_NS)).status, Status::Ok);
    }

    #[test]
    fn a_refusal_fails_and_names_seccomp_only_under_a_filter() {
        let c = syscall_check("bpf", Probe::Refused, "no eBPF");
        assert_eq!(c.status, Status::Fail);
        // The test runner has no seccomp filter: the fix is not seccomp's.
        assert!(!c.fix.contains("seccomp=unconfined"), "{}", c.fix);
        assert_eq!(syscall_check("bpf", Probe::Reached, "").status, Status::Ok);
    }

    #[test]
    fn tracefs_missing_fails_only_when_it_cannot_be_mounted() {
        assert_eq!(tracefs_reachable_check(false, 0).status, Status::Fail);
        assert!(tracefs_reachable_check(false, 0).fix.contains("/sys/kernel/tracing:/sys/kernel/tracing"));
        assert_eq!(tracefs_reachable_check(false, 1 << caps::SYS_ADMIN).status, Status::Ok);
        assert_eq!(tracefs_reachable_check(true, 0).status, Status::Ok);
    }

    #[test]
    fn a_refused_uprobe_pmu_is_fine_while_uprobe_events_is_writable() {
        assert_eq!(uprobe_permission_check(Some(Probe::Denied), true).status, Status::Ok);
        // Without either, only TLS is lost: a warning, since plain HTTP works.
        let c = uprobe_permission_check(Some(Probe::Denied), false);
        assert_eq!(c.status, Status::Warn);
        assert!(c.fix.contains("without :ro") && c.fix.contains("SYS_ADMIN"), "{}", c.fix);
    }

    #[test]
    fn this_process_reaches_both_syscalls() {
        // The test runner has no seccomp filter: the kernel itself answers.
        assert_eq!(probe_bpf(), Probe::Reached);
        assert_eq!(probe_perf_event_open(), Probe::Reached);
    }
}
