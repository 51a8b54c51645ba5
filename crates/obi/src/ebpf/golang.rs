//! The Go probes (bpf/include/obi/go.bpf.h): uprobes per Go process on
//! net/http (parents of client calls) and crypto/tls (HTTPS plaintext),
//! placed by the file offsets [`crate::golang`] read from its binary, and
//! the process's struct offsets in the `go_procs` map. Attached per process
//! (its `/proc/<pid>/exe`), so other processes never trap.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::PathBuf;

use aya::Ebpf;
use aya::maps::{HashMap as BpfHashMap, MapData, MapError};
use aya::programs::uprobe::{UProbeAttachLocation, UProbeLink, UProbeScope};
use aya::programs::{ProgramError, UProbe};

use super::abi;
use crate::golang::{GRPC_NEW_STREAM, GoOffsets, GoProgram, GrpcOffsets};

/// Where in a function a program is attached.
#[derive(Clone, Copy, PartialEq, Eq)]
enum At {
    Entry,
    /// Every `ret` instruction (Go moves stacks: never a uretprobe).
    Returns,
}

/// (program, Go function, where).
const PROBES: [(&str, &str, At); 6] = [
    ("obi_go_conn_serve", "net/http.(*conn).serve", At::Entry),
    ("obi_go_round_trip", "net/http.(*persistConn).roundTrip", At::Entry),
    ("obi_go_tls_write", "crypto/tls.(*Conn).Write", At::Entry),
    ("obi_go_tls_read", "crypto/tls.(*Conn).Read", At::Entry),
    ("obi_go_tls_read_ret", "crypto/tls.(*Conn).Read", At::Returns),
    // Only when grpc-go's release is known (`GoProgram::grpc`).
    ("obi_go_grpc_new_stream_ret", GRPC_NEW_STREAM, At::Returns),
];
const OFFSETS_MAP: &str = "go_procs";

#[derive(Debug, thiserror::Error)]
pub(crate) enum GoProbeError {
    #[error("program {0} missing")]
    MissingProgram(&'static str),
    #[error("map {OFFSETS_MAP} missing")]
    MissingMap,
    #[error("loading {program}")]
    Load {
        program: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error("the Go probes were not loaded")]
    NotLoaded,
    #[error("uprobe {program} on {}+{offset:#x}", target.display())]
    Attach {
        program: &'static str,
        target: PathBuf,
        offset: u64,
        /// Boxed: aya's error is large.
        #[source]
        source: Box<ProgramError>,
    },
    #[error("writing the struct offsets to {OFFSETS_MAP}")]
    Map(#[from] MapError),
    #[error("pid 0")]
    PidZero,
    #[error("the binary has none of the net/http and crypto/tls functions: nothing to probe")]
    NoNetHttp,
    #[error("{0} has no return found: what it returns could not be read")]
    NoReturns(&'static str),
}

/// The Go probes of every Go process; dropping a process's links detaches it.
#[derive(Default)]
pub(crate) struct GoProbes {
    loaded: bool,
    links: HashMap<u32, Vec<UProbeLink>>,
}

impl GoProbes {
    /// Loads (verifies) the programs, at startup like the TLS probes.
    pub(crate) fn load(&mut self, ebpf: &mut Ebpf) -> Result<(), GoProbeError> {
        for (program, _, _) in PROBES {
            let load_error = |source| GoProbeError::Load { program, source };
            let p: &mut UProbe = ebpf
                .program_mut(program)
                .ok_or(GoProbeError::MissingProgram(program))?
                .try_into()
                .map_err(load_error)?;
            p.load().map_err(load_error)?;
        }
        self.loaded = true;
        Ok(())
    }

    /// Writes the process's offsets, then attaches its probes. Returns how
    /// many uprobes were attached (one per `ret` for return probes).
    pub(crate) fn attach(&mut self, ebpf: &mut Ebpf, pid: u32, program: &GoProgram) -> Result<usize, GoProbeError> {
        if !self.loaded {
            return Err(GoProbeError::NotLoaded);
        }
        let scope = UProbeScope::OneProcess(NonZeroU32::new(pid).ok_or(GoProbeError::PidZero)?);
        let mut targets: Vec<(&'static str, u64)> = Vec::new();
        let grpc = program.grpc.as_ref().and_then(|g| g.as_ref().ok()).map(|c| c.offsets);
        for (prog, func, at) in PROBES {
            let Some(f) = program.functions.iter().find(|f| f.name == func) else { continue };
            if func == GRPC_NEW_STREAM && grpc.is_none() {
                continue;
            }
            match at {
                At::Entry => targets.push((prog, f.file_offset)),
                // A read whose result is never seen would leave its entry
                // saved for nothing: refuse rather than half-trace.
                At::Returns if f.returns.is_empty() => return Err(GoProbeError::NoReturns(func)),
                At::Returns => targets.extend(f.returns.iter().map(|&ret| (prog, ret))),
            }
        }
        if targets.is_empty() {
            return Err(GoProbeError::NoNetHttp);
        }
        // Offsets first: a probe hit without them does nothing.
        let map = ebpf.map_mut(OFFSETS_MAP).ok_or(GoProbeError::MissingMap)?;
        let mut procs = BpfHashMap::<&mut MapData, u32, abi::GoOffsets>::try_from(map)?;
        procs.insert(pid, to_abi(&program.offsets, grpc), 0)?;
        let target = PathBuf::from(format!("/proc/{pid}/exe"));
        let mut links = Vec::with_capacity(targets.len());
        for (prog, offset) in targets {
            let attach_error = |source| GoProbeError::Attach {
                program: prog,
                target: target.clone(),
                offset,
                source: Box::new(source),
            };
            let p: &mut UProbe =
                ebpf.program_mut(prog).ok_or(GoProbeError::MissingProgram(prog))?.try_into().map_err(attach_error)?;
            let attached =
                p.attach(UProbeAttachLocation::AbsoluteOffset(offset), &target, scope).and_then(|id| p.take_link(id));
            match attached {
                Ok(link) => links.push(link),
                Err(err) => {
                    // Those attached so far are detached with `links`.
                    self.remove_offsets(ebpf, pid);
                    return Err(attach_error(err));
                }
            }
        }
        let n = links.len();
        self.links.insert(pid, links);
        Ok(n)
    }

    /// Detaches a process's probes and forgets its offsets.
    pub(crate) fn detach(&mut self, ebpf: &mut Ebpf, pid: u32) {
        if self.links.remove(&pid).is_some() {
            self.remove_offsets(ebpf, pid);
        }
    }

    fn remove_offsets(&self, ebpf: &mut Ebpf, pid: u32) {
        if let Some(map) = ebpf.map_mut(OFFSETS_MAP)
            && let Ok(mut procs) = BpfHashMap::<&mut MapData, u32, abi::GoOffsets>::try_from(map)
        {
            let _ = procs.remove(&pid);
        }
    }

    /// Every link still attached, for closing at shutdown.
    pub(crate) fn take_links(&mut self) -> Vec<super::detach::Link> {
        self.links.drain().flat_map(|(_, links)| links).map(|l| Box::new(l) as super::detach::Link).collect()
    }
}

/// The process's offsets; grpc-go's are 0 (the probe does nothing) when
/// its release is not known.
fn to_abi(o: &GoOffsets, grpc: Option<GrpcOffsets>) -> abi::GoOffsets {
    let g = grpc.unwrap_or(GrpcOffsets { stream_id: 0, stream_ct: 0, client_conn: 0 });
    abi::GoOffsets {
        g_goid: o.g_goid,
        http_conn_rwc: o.http_conn_rwc,
        http_conn_tls_state: o.http_conn_tls_state,
        persist_conn_conn: o.persist_conn_conn,
        persist_conn_tls_state: o.persist_conn_tls_state,
        net_conn_fd: o.net_conn_fd,
        netfd_pfd: o.netfd_pfd,
        netfd_family: o.netfd_family,
        netfd_sotype: o.netfd_sotype,
        netfd_net: o.netfd_net,
        poll_fd_sysfd: o.poll_fd_sysfd,
        tls_conn_conn: o.tls_conn_conn,
        grpc_stream_id: g.stream_id,
        grpc_stream_ct: g.stream_ct,
        grpc_client_conn: g.client_conn,
        _pad: 0,
    }
}
