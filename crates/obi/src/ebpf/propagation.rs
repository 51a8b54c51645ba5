//! Attaching the context-propagation programs: sockops on the cgroup v2
//! root (so every TCP client socket of a traced process is seen) and sk_msg
//! on the socket map it fills.

use std::path::PathBuf;

use aya::Ebpf;
use aya::maps::{MapData, MapError, SockHash};
use aya::programs::{CgroupAttachMode, ProgramError, SkMsg, SockOps};

/// Errors of [`attach`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum PropagationError {
    #[error("context propagation needs the cgroup v2 hierarchy mounted (mount -t cgroup2 none /sys/fs/cgroup)")]
    NoCgroup2,
    #[error("opening cgroup {}", path.display())]
    OpenCgroup {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("map sock_dir missing")]
    MissingSockDir,
    #[error("map sock_dir is not a socket hash")]
    SockDirType(#[source] MapError),
    #[error("duplicating the sock_dir descriptor")]
    SockDirFd(#[source] std::io::Error),
    #[error("{0} missing")]
    MissingProgram(&'static str),
    #[error("loading {program}")]
    Load {
        program: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error("attaching sk_msg to the socket map")]
    AttachSkMsg(#[source] ProgramError),
    #[error("attaching sockops to cgroup {} (needs CAP_NET_ADMIN)", path.display())]
    AttachSockOps {
        path: PathBuf,
        #[source]
        source: ProgramError,
    },
}

/// Where the cgroup v2 hierarchy is mounted (`/sys/fs/cgroup` on pure v2
/// hosts, `/sys/fs/cgroup/unified` on hybrid ones).
pub(crate) fn cgroup2_root() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (_src, target, fstype) = (fields.next()?, fields.next()?, fields.next()?);
        (fstype == "cgroup2").then(|| PathBuf::from(target))
    })
}

/// Keeps the socket map alive as long as the programs use it.
pub(crate) struct Propagation {
    _sock_dir: SockHash<MapData, u64>,
}

pub(crate) fn attach(ebpf: &mut Ebpf) -> Result<Propagation, PropagationError> {
    let root = cgroup2_root().ok_or(PropagationError::NoCgroup2)?;
    let cgroup =
        std::fs::File::open(&root).map_err(|source| PropagationError::OpenCgroup { path: root.clone(), source })?;

    let sock_dir: SockHash<MapData, u64> = ebpf
        .take_map("sock_dir")
        .ok_or(PropagationError::MissingSockDir)?
        .try_into()
        .map_err(PropagationError::SockDirType)?;
    let map_fd = sock_dir.fd().try_clone().map_err(PropagationError::SockDirFd)?;
    let msg: &mut SkMsg = program(ebpf, "obi_sk_msg")?.try_into().map_err(load_error("obi_sk_msg"))?;
    msg.load().map_err(load_error("obi_sk_msg"))?;
    msg.attach(&map_fd).map_err(PropagationError::AttachSkMsg)?;

    let ops: &mut SockOps = program(ebpf, "obi_sockops")?.try_into().map_err(load_error("obi_sockops"))?;
    ops.load().map_err(load_error("obi_sockops"))?;
    ops.attach(cgroup, CgroupAttachMode::Single)
        .map_err(|source| PropagationError::AttachSockOps { path: root.clone(), source })?;
    tracing::info!(component = "ebpf.Propagation", cgroup = %root.display(), "context propagation: injecting traceparent into outgoing HTTP/1 requests");
    Ok(Propagation { _sock_dir: sock_dir })
}

fn program<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut aya::programs::Program, PropagationError> {
    ebpf.program_mut(name).ok_or(PropagationError::MissingProgram(name))
}

fn load_error(program: &'static str) -> impl Fn(ProgramError) -> PropagationError {
    move |source| PropagationError::Load { program, source }
}
