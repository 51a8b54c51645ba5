//! What can go wrong loading and driving the kernel side, and how the
//! kernel's terse refusals are turned into advice.

use std::path::PathBuf;

use aya::maps::MapError;
use aya::programs::ProgramError;

use super::tls::TlsError;

/// Errors of [`super::Tracer`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum TracerError {
    #[error("reading the BTF file {} (OTEL_EBPF_BTF_PATH)", path.display())]
    BtfFile {
        path: PathBuf,
        #[source]
        source: aya::BtfError,
    },
    #[error("{}", super::NO_BTF_HELP)]
    NoKernelBtf(#[source] aya::BtfError),
    #[error(
        "loading eBPF programs was refused. Run obi as root, or grant it CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN, \
         CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH (CAP_SYS_ADMIN on kernels older than 5.8); in a container also \
         seccomp=unconfined (`obi check` names what is missing)"
    )]
    LoadRefused(#[source] aya::EbpfError),
    #[error("loading the eBPF object failed")]
    LoadObject(#[source] aya::EbpfError),
    #[error("program {0} missing from the eBPF object")]
    MissingProgram(&'static str),
    #[error("map {0} missing from the eBPF object")]
    MissingMap(&'static str),
    #[error("map {name} does not have the type obi-rs expects")]
    MapType {
        name: &'static str,
        #[source]
        source: MapError,
    },
    #[error("the kernel rejected {program}; verifier: {verifier_tail}")]
    Rejected {
        program: &'static str,
        /// The last lines of the verifier log (the whole log is logged at debug level).
        verifier_tail: String,
        #[source]
        source: std::io::Error,
    },
    #[error("loading {program}")]
    LoadProgram {
        program: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error("attaching {program} to {hook}")]
    Attach {
        program: &'static str,
        hook: String,
        /// Boxed: aya's error is large and this enum is returned often.
        #[source]
        source: Box<ProgramError>,
    },
    #[error("registering {program} for {hook} in {map}")]
    SyscallSlot {
        program: &'static str,
        hook: String,
        map: &'static str,
        /// Boxed: aya's error is large and this enum is returned often.
        #[source]
        source: Box<MapError>,
    },
    #[error("cannot attach {program} ({hook}); obi-rs needs it for {needed_for}")]
    RequiredHook {
        program: &'static str,
        hook: String,
        needed_for: &'static str,
        #[source]
        source: Box<TracerError>,
    },
    #[error("adding pid {pid} to the kernel filter")]
    TracePid {
        pid: u32,
        #[source]
        source: MapError,
    },
    #[error("flagging pid {pid} as TLS")]
    FlagTls {
        pid: u32,
        #[source]
        source: MapError,
    },
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// Tells a refusal for lack of privileges (the common case, with a known
/// fix) from other load failures.
pub(super) fn load_error(err: aya::EbpfError) -> TracerError {
    let refused = std::iter::successors(Some(&err as &dyn std::error::Error), |e| e.source())
        .map(|e| e.to_string())
        .any(|text| text.contains("Operation not permitted") || text.contains("EPERM"));
    if refused { TracerError::LoadRefused(err) } else { TracerError::LoadObject(err) }
}

/// Keeps the end of the verifier log, which says why a program was rejected.
pub(super) fn program_load_error(program: &'static str, err: ProgramError) -> TracerError {
    match err {
        ProgramError::LoadError { io_error, verifier_log } => {
            tracing::debug!(component = "ebpf.Tracer", program, log = %verifier_log, "verifier log");
            let log = verifier_log.to_string();
            let mut tail: Vec<&str> = log.lines().rev().take(6).collect();
            tail.reverse();
            TracerError::Rejected { program, verifier_tail: tail.join(" | "), source: io_error }
        }
        other => TracerError::LoadProgram { program, source: other },
    }
}
