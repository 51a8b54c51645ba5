//! "Why doesn't it work on my machine?" answered before anything loads:
//! each check says what it found, what breaks without it and how to fix it.

use std::fs;
use std::path::{Path, PathBuf};

use crate::ebpf::programs::all_hooks;

mod confinement;
pub(crate) mod trial;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Status {
    Ok,
    Warn,
    Fail,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Check {
    pub(crate) name: String,
    pub(crate) status: Status,
    /// What was found.
    pub(crate) detail: String,
    /// What to do about it (empty when nothing needs doing).
    pub(crate) fix: String,
}

impl Check {
    pub(crate) fn ok(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check { name: name.into(), status: Status::Ok, detail: detail.into(), fix: String::new() }
    }
    pub(crate) fn warn(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check { name: name.into(), status: Status::Warn, detail: detail.into(), fix: fix.into() }
    }
    pub(crate) fn fail(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check { name: name.into(), status: Status::Fail, detail: detail.into(), fix: fix.into() }
    }
}

/// Linux capability numbers (linux/capability.h).
pub(crate) mod caps {
    pub(crate) const DAC_READ_SEARCH: u32 = 2;
    pub(crate) const NET_ADMIN: u32 = 12;
    pub(crate) const SYS_PTRACE: u32 = 19;
    pub(crate) const SYS_ADMIN: u32 = 21;
    pub(crate) const SYS_RESOURCE: u32 = 24;
    pub(crate) const PERFMON: u32 = 38;
    pub(crate) const BPF: u32 = 39;

    pub(crate) fn name(cap: u32) -> &'static str {
        match cap {
            DAC_READ_SEARCH => "CAP_DAC_READ_SEARCH",
            NET_ADMIN => "CAP_NET_ADMIN",
            SYS_PTRACE => "CAP_SYS_PTRACE",
            SYS_ADMIN => "CAP_SYS_ADMIN",
            SYS_RESOURCE => "CAP_SYS_RESOURCE",
            PERFMON => "CAP_PERFMON",
            BPF => "CAP_BPF",
            _ => "CAP_?",
        }
    }
}

/// Effective capability bits of this process.
pub(crate) fn effective_caps() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0)
}

fn has_cap(caps: u64, cap: u32) -> bool {
    caps & (1u64 << cap) != 0
}

/// (major, minor) of the running kernel.
pub(crate) fn kernel_version() -> Option<(u32, u32, String)> {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").ok()?.trim().to_string();
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor, release))
}

pub(crate) use crate::ebpf::tracefs_path;

/// Errors of the fixes preflight applies itself (mounting pseudo file systems).
#[derive(Debug, thiserror::Error)]
pub(crate) enum PreflightError {
    #[error("mount -t {fstype} {device} {}", target.display())]
    Mount {
        fstype: &'static str,
        device: &'static str,
        target: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("tracefs mounted but /sys/kernel/tracing/events is missing")]
    TracefsWithoutEvents,
}

/// Mounts tracefs at /sys/kernel/tracing if it is not mounted anywhere.
/// Containers started with --privileged often lack it.
pub(crate) fn ensure_tracefs() -> Result<PathBuf, PreflightError> {
    if let Some(p) = tracefs_path() {
        return Ok(p);
    }
    let target = Path::new("/sys/kernel/tracing");
    mount("tracefs", target, "tracefs")?;
    tracefs_path().ok_or(PreflightError::TracefsWithoutEvents)
}

fn mount(device: &'static str, target: &Path, fstype: &'static str) -> Result<(), PreflightError> {
    use std::ffi::CString;
    let error = |source| PreflightError::Mount { fstype, device, target: target.to_path_buf(), source };
    let c = |s: &str| CString::new(s).map_err(|e| error(e.into()));
    let (src, tgt, fs) = (c(device)?, c(&target.to_string_lossy())?, c(fstype)?);
    // SAFETY: all pointers are valid NUL-terminated strings for the call's duration.
    let rc = unsafe { libc::mount(src.as_ptr(), tgt.as_ptr(), fs.as_ptr(), 0, std::ptr::null()) };
    if rc == 0 { Ok(()) } else { Err(error(std::io::Error::last_os_error())) }
}

/// The kernel's lockdown mode, when securityfs exposes it.
/// Mounts securityfs when nothing is mounted there (minimal images, VMs);
/// harmless, and what `mount -t securityfs` would do.
pub(crate) fn lockdown_mode() -> Option<String> {
    let file = Path::new("/sys/kernel/security/lockdown");
    if !file.exists() && Path::new("/sys/kernel/security").is_dir() {
        let _ = mount("securityfs", Path::new("/sys/kernel/security"), "securityfs");
    }
    let text = fs::read_to_string(file).ok()?;
    let start = text.find('[')?;
    let end = text[start..].find(']')?;
    Some(text[start + 1..start + end].to_string())
}

/// What the configuration asks of the machine beyond the basics.
#[derive(Debug, Clone, Default)]
pub(crate) struct Needs {
    /// The user's OTEL_EBPF_BTF_PATH, if any.
    pub(crate) btf_path: Option<PathBuf>,
    /// OTEL_EBPF_BTF_IGNORE_KERNEL: the no-BTF mode even where the kernel has BTF.
    pub(crate) btf_ignore_kernel: bool,
    /// Context propagation into HTTP headers (sockops + sk_msg on cgroup v2).
    pub(crate) propagation: bool,
}

impl Needs {
    pub(crate) fn from_config(cfg: &crate::config::Config) -> Self {
        Needs {
            btf_path: cfg.ebpf.btf_path.clone(),
            btf_ignore_kernel: cfg.ebpf.btf_ignore_kernel,
            propagation: cfg.ebpf.context_propagation.injects_headers(),
        }
    }
}

/// Runs every check.
pub(crate) fn run(needs: &Needs) -> Vec<Check> {
    let btf_path = needs.btf_path.as_deref();
    let mut out = Vec::new();
    let kernel = kernel_version();
    out.push(match &kernel {
        Some((maj, min, rel)) if (*maj, *min) >= (5, 8) => Check::ok("kernel", format!("Linux {rel}")),
        Some((_, _, rel)) => Check::fail(
            "kernel",
            format!("Linux {rel} is older than 5.8 (no BPF ring buffer)"),
            "run on Linux 5.8 or newer",
        ),
        None => Check::warn("kernel", "cannot read /proc/sys/kernel/osrelease", ""),
    });
    out.push(capability_check(effective_caps(), kernel.as_ref().map(|k| (k.0, k.1))));
    out.extend(confinement::checks(effective_caps(), tracefs_path().as_deref()));
    out.push(btf_check(btf_path, needs.btf_ignore_kernel));
    out.extend(tracepoint_checks());
    out.push(lockdown_check(lockdown_mode().as_deref()));
    out.extend(kernel_feature_checks(needs.propagation));
    out.push(uprobe_check());
    out.push(memlock_check(kernel.as_ref().map(|k| (k.0, k.1))));
    out.push(Check::ok(
        "kprobes, fentry/fexit",
        format!("not used (this kernel {} kprobes)", if kprobes_present() { "has" } else { "has no" }),
    ));
    if needs.propagation {
        out.extend(propagation_checks(effective_caps()));
    }
    out
}

/// Lockdown: `integrity` is fine (we never write user memory);
/// `confidentiality` forbids BPF from reading kernel memory, which every
/// socket lookup needs.
fn lockdown_check(mode: Option<&str>) -> Check {
    match mode {
        None => Check::warn(
            "lockdown",
            "mode unknown (no /sys/kernel/security/lockdown)",
            "fine unless the kernel runs lockdown=confidentiality, which refuses BPF reads of kernel memory",
        ),
        Some(m @ ("none" | "integrity")) => {
            Check::ok("lockdown", format!("{m} (fine: obi-rs never uses bpf_probe_write_user)"))
        }
        Some(m) => Check::fail(
            "lockdown",
            format!("{m}: the kernel refuses BPF reads of kernel memory"),
            "boot with lockdown=integrity (or none); obi-rs works under integrity",
        ),
    }
}

/// Program and map types, probed by loading trivial programs (needs the
/// privileges checked above; without them the probe itself says so).
fn kernel_feature_checks(propagation: bool) -> Vec<Check> {
    use aya::maps::MapType;
    use aya::programs::ProgramType;
    use aya::sys::{is_map_supported, is_program_supported};
    let mut out = Vec::new();
    let progs: [(ProgramType, &str, bool, &str); 4] = [
        (ProgramType::TracePoint, "program type tracepoint", true, "nothing can be traced"),
        (ProgramType::RawTracePoint, "program type raw_tracepoint", true, "fork tracking"),
        (ProgramType::SockOps, "program type sock_ops", propagation, "context propagation into HTTP headers"),
        (ProgramType::SkMsg, "program type sk_msg", propagation, "context propagation into HTTP headers"),
    ];
    for (ty, label, required, lost) in progs {
        out.push(match is_program_supported(ty) {
            Ok(true) => Check::ok(label, "supported"),
            Ok(false) if required => Check::fail(
                label,
                format!("not supported: {lost}"),
                "a kernel built with CONFIG_BPF_SYSCALL and BPF events",
            ),
            Ok(false) => Check::warn(label, format!("not supported: no {lost}"), ""),
            Err(e) => Check::warn(label, format!("cannot probe ({e})"), "run as root or with the capabilities above"),
        });
    }
    out.push(match is_map_supported(MapType::RingBuf) {
        Ok(true) => Check::ok("map type ringbuf", "supported"),
        Ok(false) => Check::fail("map type ringbuf", "not supported", "run on Linux 5.8 or newer"),
        Err(e) => {
            Check::warn("map type ringbuf", format!("cannot probe ({e})"), "run as root or with the capabilities above")
        }
    });
    out
}

/// Uprobes carry HTTPS: without them TLS traffic is not decoded.
fn uprobe_check() -> Check {
    if Path::new("/sys/bus/event_source/devices/uprobe/type").is_file() {
        Check::ok("uprobes", "available (HTTPS through OpenSSL)")
    } else {
        Check::warn(
            "uprobes",
            "not available: HTTPS (TLS) traffic is not decoded",
            "a kernel with CONFIG_UPROBE_EVENTS=y",
        )
    }
}

fn kprobes_present() -> bool {
    Path::new("/sys/bus/event_source/devices/kprobe/type").is_file()
}

/// Before 5.11, BPF memory counts against RLIMIT_MEMLOCK. The agent (and
/// `obi check`) raise it first (`ebpf::memlock`), so this reports what the
/// maps get: enough, or the most that could be had without CAP_SYS_RESOURCE.
fn memlock_check(kernel: Option<(u32, u32)>) -> Check {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we pass.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } == 0;
    let show =
        |v: libc::rlim_t| if v == libc::RLIM_INFINITY { "unlimited".to_string() } else { format!("{} KiB", v / 1024) };
    if kernel.is_some_and(|k| k >= (5, 11)) {
        return Check::ok(
            "memlock",
            format!(
                "not needed on 5.11+ (BPF memory is charged to the cgroup); limit {}",
                if ok { show(lim.rlim_cur) } else { "unknown".into() }
            ),
        );
    }
    if !ok {
        return Check::warn("memlock", "cannot read RLIMIT_MEMLOCK", "");
    }
    if lim.rlim_cur == libc::RLIM_INFINITY {
        return Check::ok("memlock", "limit raised to unlimited (this kernel charges BPF maps to it)");
    }
    // How much the maps take depends on the ring buffer size and the CPU
    // count; a limit that could not be lifted may or may not be enough.
    let check = if lim.rlim_cur < 16 << 20 { Check::fail } else { Check::warn };
    check(
        "memlock",
        format!(
            "RLIMIT_MEMLOCK is {} and cannot be raised (hard limit, no CAP_SYS_RESOURCE); before Linux 5.11 every BPF map is charged to it",
            show(lim.rlim_cur)
        ),
        "docker: --ulimit memlock=-1; systemd: LimitMEMLOCK=infinity; or grant CAP_SYS_RESOURCE",
    )
}

fn propagation_checks(caps: u64) -> Vec<Check> {
    let mut out = Vec::new();
    out.push(match crate::ebpf::propagation::cgroup2_root() {
        Some(root) => Check::ok("cgroup v2", root.display().to_string()),
        None => Check::fail(
            "cgroup v2",
            "no cgroup2 file system is mounted; context propagation attaches to it",
            "mount -t cgroup2 none /sys/fs/cgroup (in a container: mount the host's /sys/fs/cgroup), or disable OTEL_EBPF_BPF_CONTEXT_PROPAGATION",
        ),
    });
    if !has_cap(caps, caps::NET_ADMIN) && !has_cap(caps, caps::SYS_ADMIN) {
        out.push(Check::fail(
            "capabilities (propagation)",
            "context propagation requires CAP_NET_ADMIN",
            "grant CAP_NET_ADMIN, or disable OTEL_EBPF_BPF_CONTEXT_PROPAGATION",
        ));
    }
    out
}

fn capability_check(caps: u64, kernel: Option<(u32, u32)>) -> Check {
    let old_kernel = kernel.is_some_and(|k| k < (5, 8));
    let mut needed = vec![caps::SYS_PTRACE, caps::DAC_READ_SEARCH];
    if old_kernel {
        needed.push(caps::SYS_ADMIN);
    } else if !has_cap(caps, caps::SYS_ADMIN) {
        // NET_ADMIN: the kernel creates socket maps (sock_dir) only with it,
        // and the object has one whether or not propagation is enabled.
        needed.extend([caps::BPF, caps::PERFMON, caps::NET_ADMIN]);
        if kernel.is_some_and(|k| k < (5, 11)) {
            needed.push(caps::SYS_RESOURCE);
        }
    }
    let missing: Vec<&str> = needed.iter().filter(|&&c| !has_cap(caps, c)).map(|&c| caps::name(c)).collect();
    if missing.is_empty() {
        Check::ok("capabilities", "the capabilities obi-rs needs are present")
    } else {
        Check::fail(
            "capabilities",
            format!("the following capabilities are required: {}", missing.join(", ")),
            "run as root, or with exactly these capabilities (docker: --cap-add for each, plus --pid=host)",
        )
    }
}

/// Which build of the programs the agent will load, and what the no-BTF
/// one loses.
fn btf_check(btf_path: Option<&Path>, ignore_kernel: bool) -> Check {
    use crate::ebpf::no_btf::{BtfSource, LOST};
    match BtfSource::choose(btf_path, ignore_kernel) {
        BtfSource::File(p) if !p.is_file() => {
            Check::fail("btf", format!("OTEL_EBPF_BTF_PATH={} does not exist", p.display()), "fix the path")
        }
        source @ (BtfSource::File(_) | BtfSource::Kernel) => {
            Check::ok("btf", format!("using {}: sockets read from kernel structures (CO-RE)", source.describe()))
        }
        source @ BtfSource::None { forced } => Check::warn(
            "btf",
            format!("{}; the no-BTF mode traces without reading kernel structures. Lost: {LOST}", source.describe()),
            if forced {
                "unset OTEL_EBPF_BTF_IGNORE_KERNEL for full tracing"
            } else {
                "for full tracing, a kernel built with CONFIG_DEBUG_INFO_BTF=y or OTEL_EBPF_BTF_PATH set to a BTF file \
                 for this exact kernel (for example one from BTFHub)"
            },
        ),
    }
}

fn tracepoint_checks() -> Vec<Check> {
    let Some(tracefs) = tracefs_path() else {
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        return vec![match tracefs_mounts(&mounts).first() {
            // Mounted, but `events` cannot be looked at: not root.
            Some(at) => Check::warn(
                "tracefs",
                format!("tracefs is mounted at {at} but cannot be read (permission denied)"),
                "run as root or with the capabilities above",
            ),
            None => Check::warn(
                "tracefs",
                "tracefs is not mounted",
                "obi mounts it at /sys/kernel/tracing when it starts; or run: mount -t tracefs nodev /sys/kernel/tracing",
            ),
        }];
    };
    let mut out = Vec::new();
    for (att, hook) in all_hooks() {
        // Syscalls are reached through the raw_syscalls tracepoints, which
        // are checked once: no event per syscall is needed.
        let Some((category, name)) = hook.tracefs_event() else { continue };
        let present = tracefs.join("events").join(category).join(name).join("id").is_file();
        let label = hook.describe();
        out.push(if present {
            Check::ok(label, "present")
        } else if att.required {
            Check::fail(label, "missing", "a kernel built with CONFIG_TRACEPOINTS=y is required")
        } else {
            Check::warn(label, format!("missing: no {}", att.lost), "")
        });
    }
    out
}

/// The warnings worth a log line when the agent starts (TLS lost to the
/// sandbox), as one message each with its fix.
pub(crate) fn startup_warnings(checks: &[Check]) -> Vec<String> {
    checks
        .iter()
        .filter(|c| c.status == Status::Warn && confinement::STARTUP_WARNINGS.contains(&c.name.as_str()))
        .map(|c| format!("{}: {}. Fix: {}", c.name, c.detail, c.fix))
        .collect()
}

/// Where tracefs is mounted, from `/proc/self/mounts` (readable by anyone,
/// unlike tracefs itself).
fn tracefs_mounts(mounts: &str) -> Vec<&str> {
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, at, fstype) = (f.next()?, f.next()?, f.next()?);
            (fstype == "tracefs").then_some(at)
        })
        .collect()
}

/// The failures among `checks`, as one message per failure.
pub(crate) fn failures(checks: &[Check]) -> Vec<String> {
    checks
        .iter()
        .filter(|c| c.status == Status::Fail)
        .map(|c| {
            if c.fix.is_empty() {
                format!("{}: {}", c.name, c.detail)
            } else {
                format!("{}: {}. {}", c.name, c.detail, c.fix)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_missing_capabilities_for_an_unprivileged_process() {
        let c = capability_check(0, Some((6, 18)));
        assert_eq!(c.status, Status::Fail);
        assert!(c.detail.contains("CAP_BPF"), "{}", c.detail);
        assert!(c.detail.contains("CAP_PERFMON"), "{}", c.detail);
        assert!(c.detail.contains("CAP_SYS_PTRACE"), "{}", c.detail);
    }

    #[test]
    fn net_admin_is_required_even_without_propagation() {
        let caps = (1 << caps::BPF) | (1 << caps::PERFMON) | (1 << caps::SYS_PTRACE) | (1 << caps::DAC_READ_SEARCH);
        let c = capability_check(caps, Some((6, 1)));
        assert_eq!(c.status, Status::Fail);
        assert!(c.detail.contains("CAP_NET_ADMIN"), "{}", c.detail);
        assert_eq!(capability_check(caps | (1 << caps::NET_ADMIN), Some((6, 1))).status, Status::Ok);
    }

    #[test]
    fn sys_admin_covers_bpf_and_perfmon() {
        let caps = (1 << caps::SYS_ADMIN) | (1 << caps::SYS_PTRACE) | (1 << caps::DAC_READ_SEARCH);
        assert_eq!(capability_check(caps, Some((6, 1))).status, Status::Ok);
    }

    #[test]
    fn old_kernels_need_sys_admin() {
        let caps = (1 << caps::BPF) | (1 << caps::PERFMON) | (1 << caps::SYS_PTRACE) | (1 << caps::DAC_READ_SEARCH);
        let c = capability_check(caps, Some((5, 4)));
        assert_eq!(c.status, Status::Fail);
        assert!(c.detail.contains("CAP_SYS_ADMIN"));
    }

    #[test]
    fn tracefs_mount_points_come_from_the_mount_table() {
        let mounts = "sysfs /sys sysfs rw 0 0\ntracefs /sys/kernel/tracing tracefs rw,nosuid 0 0\n\
                      debugfs /sys/kernel/debug debugfs rw 0 0\n";
        assert_eq!(tracefs_mounts(mounts), ["/sys/kernel/tracing"]);
        assert!(tracefs_mounts("sysfs /sys sysfs rw 0 0\n").is_empty());
    }

    #[test]
    fn ignoring_the_kernels_btf_warns_with_what_is_lost() {
        let c = btf_check(None, true);
        assert_eq!(c.status, Status::Warn);
        assert!(c.detail.contains("no-BTF mode") && c.detail.contains("forked children"), "{}", c.detail);
    }

    #[test]
    fn missing_btf_file_fails_with_its_path() {
        let c = btf_check(Some(Path::new("/nonexistent/btf")), true);
        assert_eq!(c.status, Status::Fail);
        assert!(c.detail.contains("/nonexistent/btf"));
    }
}
