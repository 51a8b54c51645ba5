//! Attaching the context-propagation programs: sockops on the cgroup v2
//! root (so every TCP client socket of a traced process is seen) and sk_msg
//! on the socket map it fills.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow};
use aya::Ebpf;
use aya::maps::{MapData, SockHash};
use aya::programs::{CgroupAttachMode, SkMsg, SockOps};

/// Where the cgroup v2 hierarchy is mounted (`/sys/fs/cgroup` on pure v2
/// hosts, `/sys/fs/cgroup/unified` on hybrid ones).
pub fn cgroup2_root() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (_src, target, fstype) = (fields.next()?, fields.next()?, fields.next()?);
        (fstype == "cgroup2").then(|| PathBuf::from(target))
    })
}

/// Keeps the socket map alive as long as the programs use it.
pub struct Propagation {
    _sock_dir: SockHash<MapData, u64>,
}

pub fn attach(ebpf: &mut Ebpf) -> Result<Propagation> {
    let root = cgroup2_root().ok_or_else(|| {
        anyhow!("context propagation needs the cgroup v2 hierarchy mounted (mount -t cgroup2 none /sys/fs/cgroup)")
    })?;
    let cgroup = std::fs::File::open(&root).with_context(|| format!("opening cgroup {}", root.display()))?;

    let sock_dir: SockHash<MapData, u64> =
        ebpf.take_map("sock_dir").ok_or_else(|| anyhow!("map sock_dir missing"))?.try_into()?;
    let map_fd = sock_dir.fd().try_clone()?;
    let msg: &mut SkMsg = ebpf.program_mut("obi_sk_msg").ok_or_else(|| anyhow!("obi_sk_msg missing"))?.try_into()?;
    msg.load().map_err(|e| anyhow!("loading obi_sk_msg: {e}"))?;
    msg.attach(&map_fd).context("attaching sk_msg to the socket map")?;

    let ops: &mut SockOps =
        ebpf.program_mut("obi_sockops").ok_or_else(|| anyhow!("obi_sockops missing"))?.try_into()?;
    ops.load().map_err(|e| anyhow!("loading obi_sockops: {e}"))?;
    ops.attach(cgroup, CgroupAttachMode::Single)
        .with_context(|| format!("attaching sockops to cgroup {} (needs CAP_NET_ADMIN)", root.display()))?;
    tracing::info!(component = "ebpf.Propagation", cgroup = %root.display(), "context propagation: injecting traceparent into outgoing HTTP/1 requests");
    Ok(Propagation { _sock_dir: sock_dir })
}
