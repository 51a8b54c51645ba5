//! Loads the kernel side, attaches it, and gives typed access to its maps.

pub(crate) mod abi;

mod detach;
mod error;
pub(crate) mod golang;
pub(crate) mod memlock;
pub(crate) mod no_btf;
pub(crate) mod programs;
pub(crate) mod propagation;
pub(crate) mod ring;
mod syscalls;
pub(crate) mod tls;

/// What to do when the kernel's BTF cannot be read (shared with `obi check`).
pub(crate) const NO_BTF_HELP: &str = "the kernel's BTF type information (/sys/kernel/btf/vmlinux) cannot be read. \
Point OTEL_EBPF_BTF_PATH at a BTF file for this exact kernel (for example one from BTFHub), or set \
OTEL_EBPF_BTF_IGNORE_KERNEL=true to run without BTF (README: what is lost without BTF)";

use std::collections::BTreeMap;
use std::path::PathBuf;

use aya::maps::{HashMap as BpfHashMap, MapData, PerCpuArray, ProgramArray, RingBuf};
use aya::programs::trace_point::TracePointLinkId;
use aya::programs::{Program, RawTracePoint, TracePoint};
use aya::{Btf, Ebpf, EbpfLoader, Endianness};

use crate::config::Config;
pub(crate) use error::TracerError;
use error::{load_error, program_load_error};
use no_btf::BtfSource;
use programs::{ATTACHMENTS, Attachment, BTF_ATTACHMENTS, Hook, NO_BTF_ATTACHMENTS, SYSCALL_DISPATCH};

type Result<T, E = TracerError> = std::result::Result<T, E>;

/// `BPF_NOEXIST`: insert only if the key is absent.
const BPF_NOEXIST: u64 = 1;
/// `BPF_EXIST`: update only if the key is present.
const BPF_EXIST: u64 = 2;

#[cfg(target_arch = "x86_64")]
static OBJECT: &[u8] = aya::include_bytes_aligned!("../../../../bpf/obj/obi.x86_64.bpf.o");
#[cfg(target_arch = "aarch64")]
static OBJECT: &[u8] = aya::include_bytes_aligned!("../../../../bpf/obj/obi.arm64.bpf.o");
/// The same programs built to read no kernel structure (see [`no_btf`]).
#[cfg(target_arch = "x86_64")]
static OBJECT_NO_BTF: &[u8] = aya::include_bytes_aligned!("../../../../bpf/obj/obi-nobtf.x86_64.bpf.o");
#[cfg(target_arch = "aarch64")]
static OBJECT_NO_BTF: &[u8] = aya::include_bytes_aligned!("../../../../bpf/obj/obi-nobtf.arm64.bpf.o");

/// Settings baked into the programs at load time.
#[derive(Debug, Clone)]
pub(crate) struct LoadOptions {
    pub(crate) agent_tgid: u32,
    pub(crate) capture_size: u32,
    pub(crate) ring_buffer_size: u32,
    pub(crate) wakeup_bytes: u64,
    pub(crate) watch_exec: bool,
    pub(crate) trace_all: bool,
    /// Inject `traceparent` into outgoing HTTP/1 requests.
    pub(crate) ctx_propagation: bool,
    pub(crate) btf: BtfSource,
}

impl LoadOptions {
    pub(crate) fn from_config(cfg: &Config, watch_exec: bool) -> Self {
        LoadOptions {
            agent_tgid: std::process::id(),
            capture_size: cfg.ebpf.capture_size,
            ring_buffer_size: cfg.ebpf.ring_buffer_size,
            // wakeup_len counts events; assume a typical event of ~512 bytes.
            wakeup_bytes: cfg.ebpf.wakeup_len.max(1) as u64 * 512,
            watch_exec,
            trace_all: cfg.discovery.system_wide,
            ctx_propagation: cfg.ebpf.context_propagation.injects_headers(),
            btf: BtfSource::choose(cfg.ebpf.btf_path.as_deref(), cfg.ebpf.btf_ignore_kernel),
        }
    }
}

/// Per-CPU counters kept by the programs, summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct KernelStats {
    pub(crate) events: u64,
    pub(crate) ringbuf_full: u64,
    pub(crate) proc_ringbuf_full: u64,
    pub(crate) conn_table_full: u64,
    pub(crate) pending_full: u64,
    pub(crate) ignored: u64,
    pub(crate) wakeups: u64,
    pub(crate) injected: u64,
    pub(crate) inject_skipped: u64,
    pub(crate) inject_failed: u64,
    pub(crate) root_multiplexed: u64,
    pub(crate) hints_used: u64,
    pub(crate) hints_ignored: u64,
    /// Connections user space could not mark ignored (ignored_conns full).
    pub(crate) ignored_conns_full: u64,
}

/// A feature the kernel refused at load, which the agent runs without.
#[derive(Debug, Clone)]
pub(crate) struct Unavailable {
    /// The hook or program set (`tracepoint sock:sk_data_ready`, `context propagation`).
    pub(crate) what: String,
    /// What is lost without it.
    pub(crate) lost: &'static str,
    /// Why the kernel refused it.
    pub(crate) error: String,
}

/// The loaded and attached kernel side. Dropping it detaches everything.
pub(crate) struct Tracer {
    unavailable: Vec<Unavailable>,
    /// The no-BTF build is loaded: sockets are known by descriptor.
    no_btf: bool,
    ebpf: Ebpf,
    traced_pids: BpfHashMap<MapData, u32, abi::PidInfo>,
    ignored_conns: BpfHashMap<MapData, u64, u8>,
    /// Connections that could not be marked ignored: the table was full.
    ignored_conns_full: u64,
    stats: PerCpuArray<MapData, u64>,
    _propagation: Option<propagation::Propagation>,
    tls: tls::TlsProbes,
    go: golang::GoProbes,
    /// Tracepoint links, closed together on drop (see [`detach`]).
    tracepoint_links: Vec<(&'static str, TracePointLinkId)>,
}

impl Drop for Tracer {
    /// Detaches the slow-to-close links in parallel; the rest (raw
    /// tracepoints, programs, maps) close quickly with the fields.
    fn drop(&mut self) {
        detach::close_all(self.take_slow_links());
    }
}

impl Tracer {
    /// Loads the programs with CO-RE against the running kernel's BTF and
    /// attaches every hook. Required hooks that fail abort with a message
    /// naming the hook; optional ones are reported in `missing`.
    pub(crate) fn load(opts: &LoadOptions) -> Result<Tracer> {
        let btf = match &opts.btf {
            BtfSource::Kernel => Some(Btf::from_sys_fs().map_err(TracerError::NoKernelBtf)?),
            BtfSource::File(path) => Some(
                Btf::parse_file(path, Endianness::default())
                    .map_err(|source| TracerError::BtfFile { path: path.clone(), source })?,
            ),
            BtfSource::None { .. } => None,
        };
        let no_btf = btf.is_none();
        let watch_exec = opts.watch_exec as u8;
        let trace_all = opts.trace_all as u8;
        let ctx_propagation = opts.ctx_propagation as u8;
        let [nr_readv, nr_recvfrom, nr_recvmsg] = ["readv", "recvfrom", "recvmsg"].map(syscalls::number_or_none);
        let mut loader = EbpfLoader::new();
        // Without a target BTF aya applies no CO-RE relocation: only the
        // no-BTF build, which has none, may be loaded so.
        loader
            .btf(btf.as_ref())
            .override_global("obi_agent_tgid", &opts.agent_tgid, true)
            .override_global("obi_capture_size", &opts.capture_size, true)
            .override_global("obi_wakeup_bytes", &opts.wakeup_bytes, true)
            .override_global("obi_watch_exec", &watch_exec, true)
            .override_global("obi_trace_all", &trace_all, true)
            .override_global("obi_ctx_propagation", &ctx_propagation, true)
            .override_global("obi_nr_readv", &nr_readv, !no_btf)
            .override_global("obi_nr_recvfrom", &nr_recvfrom, !no_btf)
            .override_global("obi_nr_recvmsg", &nr_recvmsg, !no_btf)
            .map_max_entries("events", opts.ring_buffer_size);
        let mut ebpf = loader.load(if no_btf { OBJECT_NO_BTF } else { OBJECT }).map_err(load_error)?;

        let mut loaded = BTreeMap::new();
        let mut unavailable = Vec::new();
        let mut tracepoint_links = Vec::new();
        if no_btf {
            tracing::warn!(
                component = "ebpf.Tracer",
                btf = %opts.btf.describe(),
                lost = no_btf::LOST,
                "running without BTF: sockets are known from the accept/connect/close syscalls, not read from the kernel"
            );
        }
        let extra: &[Attachment] = if no_btf { NO_BTF_ATTACHMENTS } else { BTF_ATTACHMENTS };
        // The dispatchers come last: then every handler is in its slot.
        for att in ATTACHMENTS.iter().chain(extra).chain(SYSCALL_DISPATCH) {
            if no_btf && let Some((_, lost)) = no_btf::NEEDS_BTF.iter().find(|(p, _)| *p == att.program) {
                tracing::debug!(component = "ebpf.Tracer", program = att.program, lost, "not in the no-BTF build");
                continue;
            }
            let required = att.required || (no_btf && no_btf::REQUIRED.contains(&att.program));
            for hook in att.hooks {
                if let Err(err) = attach(&mut ebpf, &mut loaded, &mut tracepoint_links, att.program, hook) {
                    if required {
                        return Err(TracerError::RequiredHook {
                            program: att.program,
                            hook: hook.describe(),
                            needed_for: if att.lost.is_empty() || !att.required {
                                "all request capture"
                            } else {
                                att.lost
                            },
                            source: Box::new(err),
                        });
                    }
                    let error = format!("{:#}", anyhow::Error::new(err));
                    tracing::warn!(
                        component = "ebpf.Tracer",
                        hook = %hook.describe(),
                        lost = att.lost,
                        error = %error,
                        "optional kernel hook unavailable"
                    );
                    unavailable.push(Unavailable { what: hook.describe(), lost: att.lost, error });
                }
            }
        }

        // Without injection, spans are still right: incoming traceparents are
        // read and parents found in-process; only the next service starts a
        // new trace. So a kernel that refuses it loses that feature alone.
        let propagation = if opts.ctx_propagation {
            match propagation::attach(&mut ebpf) {
                Ok(p) => Some(p),
                Err(err) => {
                    let error = format!("{:#}", anyhow::Error::new(err));
                    let lost =
                        "traceparent injection into outgoing HTTP/1 requests (the services called start new traces)";
                    tracing::error!(
                        component = "ebpf.Propagation",
                        error = %error,
                        lost,
                        "context propagation unavailable; tracing continues without it"
                    );
                    unavailable.push(Unavailable { what: "context propagation (sockops, sk_msg)".into(), lost, error });
                    None
                }
            }
        } else {
            None
        };
        let traced_pids = typed_map(&mut ebpf, "traced_pids", BpfHashMap::try_from)?;
        let ignored_conns = typed_map(&mut ebpf, "ignored_conns", BpfHashMap::try_from)?;
        let stats = typed_map(&mut ebpf, "obi_stats", PerCpuArray::try_from)?;
        let mut tls = tls::TlsProbes::new();
        if let Err(err) = tls.load(&mut ebpf) {
            let error = format!("{:#}", anyhow::Error::new(err));
            tracing::warn!(component = "ebpf.TLS", error = %error, "TLS uprobes unavailable: HTTPS traffic will not be traced");
            unavailable.push(Unavailable {
                what: "OpenSSL uprobes".into(),
                lost: "HTTPS (TLS) traffic through OpenSSL",
                error,
            });
        }
        let mut go = golang::GoProbes::default();
        if let Err(err) = go.load(&mut ebpf) {
            let error = format!("{:#}", anyhow::Error::new(err));
            tracing::warn!(component = "ebpf.Go", error = %error, "Go uprobes unavailable: Go client calls get no goroutine-aware parents");
            unavailable.push(Unavailable {
                what: "Go net/http uprobes".into(),
                lost: "goroutine-aware parents of Go net/http client calls (they become roots)",
                error,
            });
        }
        Ok(Tracer {
            unavailable,
            no_btf,
            ebpf,
            traced_pids,
            ignored_conns,
            ignored_conns_full: 0,
            stats,
            _propagation: propagation,
            tls,
            go,
            tracepoint_links,
        })
    }

    /// What the kernel refused at load and the agent runs without.
    pub(crate) fn unavailable(&self) -> &[Unavailable] {
        &self.unavailable
    }

    /// Which build of the programs is loaded.
    pub(crate) fn build(&self) -> &'static str {
        if self.no_btf { "no-BTF build" } else { "CO-RE build" }
    }

    /// How many programs are loaded.
    pub(crate) fn program_count(&self) -> usize {
        self.ebpf.programs().filter(|(_, p)| p.fd().is_ok()).count()
    }

    /// Detaches the programs that write events (tracepoints, and the TLS
    /// uprobes' programs), keeping the maps: what the rings hold is then
    /// final and the counters stop moving, so the last totals add up. The
    /// slow-to-close links go in parallel (see [`detach`]).
    pub(crate) fn stop_events(&mut self) {
        let started = std::time::Instant::now();
        let links = self.take_slow_links();
        let count = links.len();
        detach::close_all(links);
        tracing::debug!(component = "ebpf.Tracer", links = count, took = ?started.elapsed(), "probe links closed");
        for (name, prog) in self.ebpf.programs_mut() {
            let res = match prog {
                Program::TracePoint(p) => p.unload(),
                Program::RawTracePoint(p) => p.unload(),
                _ => Ok(()),
            };
            if let Err(err) = res {
                tracing::debug!(component = "ebpf.Tracer", program = name, error = %err, "cannot detach");
            }
        }
    }

    /// The tracepoint and uprobe links still attached, taken out of their
    /// programs to be closed together.
    fn take_slow_links(&mut self) -> Vec<detach::Link> {
        let mut links: Vec<detach::Link> = Vec::new();
        for (program, id) in self.tracepoint_links.drain(..) {
            let tp: Option<&mut TracePoint> = self.ebpf.program_mut(program).and_then(|p| p.try_into().ok());
            if let Some(link) = tp.and_then(|tp| tp.take_link(id).ok()) {
                links.push(Box::new(link));
            }
        }
        links.extend(self.tls.take_links());
        links.extend(self.go.take_links());
        links
    }

    /// Takes the data event ring buffer (once).
    pub(crate) fn take_events(&mut self) -> Result<RingBuf<MapData>> {
        typed_map(&mut self.ebpf, "events", RingBuf::try_from)
    }

    /// Takes the process event ring buffer (once).
    pub(crate) fn take_proc_events(&mut self) -> Result<RingBuf<MapData>> {
        typed_map(&mut self.ebpf, "proc_events", RingBuf::try_from)
    }

    /// Puts a process discovery chose into the kernel's filter, or marks the
    /// one watched since its exec as chosen.
    pub(crate) fn trace_pid(&mut self, pid: u32) -> Result<()> {
        let info = self.pid_info(pid).unwrap_or_default().selected();
        self.traced_pids.insert(pid, info, 0).map_err(|source| TracerError::TracePid { pid, source })?;
        if self.no_btf {
            self.register_existing_sockets(pid);
        }
        Ok(())
    }

    /// No-BTF mode: the connections a process had before it was traced,
    /// from /proc, known by descriptor and inode like the kernel's own
    /// walk would know them. One already known is left alone.
    fn register_existing_sockets(&mut self, pid: u32) {
        let sockets = no_btf::existing_sockets(pid);
        if sockets.is_empty() {
            return;
        }
        let exec_gen = self
            .ebpf
            .map("exec_gen")
            .and_then(|m| aya::maps::HashMap::<&MapData, u32, u32>::try_from(m).ok())
            .and_then(|m| m.get(&pid, 0).ok())
            .unwrap_or(0);
        let mut registered = 0usize;
        for (fd, ino, tuple) in sockets {
            let conn = abi::ConnState { tuple, tgid: pid, last_dir: 0xff, ..Default::default() };
            let fd_sock = abi::FdSock { conn_id: ino, sk: 0, exec_gen, _pad: 0 };
            // BPF_NOEXIST on the descriptor: one the kernel learnt meanwhile wins.
            if self.map_insert("conn_state", ino, conn, 0)
                && self.map_insert("fd_socks", abi::FdKey { tgid: pid, fd }, fd_sock, BPF_NOEXIST)
            {
                registered += 1;
            }
        }
        tracing::debug!(component = "ebpf.Tracer", pid, registered, "connections opened before tracing (no-BTF mode)");
    }

    pub(crate) fn untrace_pid(&mut self, pid: u32) {
        self.tls.detach(pid);
        self.go.detach(&mut self.ebpf, pid);
        // Missing keys are fine: the process may never have been added.
        let _ = self.traced_pids.remove(&pid);
        self.sweep_connections(pid);
    }

    /// Removes the connection state of a process that is gone: sockets
    /// closed by exit() (not close()) never reach the close tracepoint.
    fn sweep_connections(&mut self, pid: u32) {
        let mut inodes = Vec::new();
        if let Some(map) = self.ebpf.map_mut("conn_state")
            && let Ok(mut conns) = aya::maps::HashMap::<&mut MapData, u64, abi::ConnState>::try_from(map)
        {
            inodes = conns.iter().filter_map(|kv| kv.ok()).filter(|(_, v)| v.tgid == pid).map(|(k, _)| k).collect();
            for ino in &inodes {
                let _ = conns.remove(ino);
            }
        }
        for ino in &inodes {
            let _ = self.ignored_conns.remove(ino);
        }
        if self.no_btf {
            self.sweep_descriptors(pid);
        }
        if let Some(map) = self.ebpf.map_mut("tls_state")
            && let Ok(mut tls) = aya::maps::HashMap::<&mut MapData, abi::SslKey, abi::ConnState>::try_from(map)
        {
            let keys: Vec<abi::SslKey> = tls.keys().filter_map(|k| k.ok()).filter(|k| k.tgid == pid).collect();
            for k in &keys {
                let _ = tls.remove(k);
            }
        }
    }

    /// Inserts into a hash map of the object; false if it could not.
    fn map_insert<K: aya::Pod, V: aya::Pod>(&mut self, name: &str, key: K, value: V, flags: u64) -> bool {
        self.ebpf
            .map_mut(name)
            .and_then(|m| aya::maps::HashMap::<&mut MapData, K, V>::try_from(m).ok())
            .is_some_and(|mut m| m.insert(key, value, flags).is_ok())
    }

    /// No-BTF mode: the descriptors of a process that is gone.
    fn sweep_descriptors(&mut self, pid: u32) {
        if let Some(map) = self.ebpf.map_mut("fd_socks")
            && let Ok(mut fds) = aya::maps::HashMap::<&mut MapData, abi::FdKey, abi::FdSock>::try_from(map)
        {
            let keys: Vec<abi::FdKey> = fds.keys().filter_map(|k| k.ok()).filter(|k| k.tgid == pid).collect();
            for k in &keys {
                let _ = fds.remove(k);
            }
        }
        if let Some(map) = self.ebpf.map_mut("exec_gen")
            && let Ok(mut gens) = aya::maps::HashMap::<&mut MapData, u32, u32>::try_from(map)
        {
            let _ = gens.remove(&pid);
        }
    }

    /// Drops the TLS and Go probes of a process that exec'd (they belonged
    /// to the old program); the process stays traced.
    pub(crate) fn reset_tls(&mut self, pid: u32) {
        self.tls.detach(pid);
        self.go.detach(&mut self.ebpf, pid);
        let _ = self.traced_pids.insert(pid, abi::PidInfo::default(), 0);
    }

    /// Attaches the Go net/http probes to a traced Go process (see
    /// [`golang`]). Returns how many were attached.
    pub(crate) fn trace_go(
        &mut self,
        pid: u32,
        program: &crate::golang::GoProgram,
    ) -> Result<usize, golang::GoProbeError> {
        self.go.attach(&mut self.ebpf, pid, program)
    }

    /// Attaches the OpenSSL uprobes to a traced process, if it uses OpenSSL.
    /// Returns the files probed.
    pub(crate) fn trace_tls(&mut self, pid: u32) -> Result<Vec<std::path::PathBuf>> {
        // Only processes still traced (a late report may concern one that was
        // rejected or forgotten meanwhile).
        if self.pid_info(pid).is_none() {
            return Ok(Vec::new());
        }
        let files = self.tls.attach(&mut self.ebpf, pid)?;
        if !files.is_empty() {
            // Read again: attaching takes a while. BPF_EXIST: a process that
            // exited meanwhile (the kernel removed it) is not put back.
            if let Some(info) = self.pid_info(pid) {
                match self.traced_pids.insert(pid, info.with_tls(), BPF_EXIST) {
                    Ok(()) => {}
                    Err(aya::maps::MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::ENOENT) => {}
                    Err(source) => return Err(TracerError::FlagTls { pid, source }),
                }
            }
        }
        Ok(files)
    }

    /// The kernel filter's entry of `pid`, if it is traced.
    fn pid_info(&self, pid: u32) -> Option<abi::PidInfo> {
        self.traced_pids.get(&pid, 0).ok()
    }

    pub(crate) fn traced_pid_count(&self) -> usize {
        self.traced_pids.keys().filter(|k| k.is_ok()).count()
    }

    /// Stops capturing a connection user space cannot use. When the table
    /// is full the connection goes on being captured (and dropped in user
    /// space): counted, and said once.
    pub(crate) fn ignore_conn(&mut self, conn_id: u64) {
        let Err(err) = self.ignored_conns.insert(conn_id, 1, 0) else { return };
        self.ignored_conns_full += 1;
        if self.ignored_conns_full == 1 {
            tracing::warn!(
                component = "ebpf.Tracer",
                table = "ignored_conns",
                error = %err,
                "kernel table full: connections of unsupported protocols are captured and dropped in user space \
                 until entries free up (counted in obi_ebpf_table_full_total, table ignored_connections)"
            );
        }
    }

    /// Forgets an ignored connection that closed (absent is fine: the
    /// kernel removes the ones it sees close).
    pub(crate) fn unignore_conn(&mut self, conn_id: u64) {
        let _ = self.ignored_conns.remove(&conn_id);
    }

    pub(crate) fn stats(&self) -> KernelStats {
        let sum = |idx: u32| -> u64 { self.stats.get(&idx, 0).map(|v| v.iter().sum()).unwrap_or(0) };
        KernelStats {
            events: sum(abi::STAT_EVENTS),
            ringbuf_full: sum(abi::STAT_RINGBUF_FULL),
            proc_ringbuf_full: sum(abi::STAT_PROC_RINGBUF_FULL),
            conn_table_full: sum(abi::STAT_CONN_TABLE_FULL),
            pending_full: sum(abi::STAT_PENDING_FULL),
            ignored: sum(abi::STAT_IGNORED),
            wakeups: sum(abi::STAT_WAKEUPS),
            injected: sum(abi::STAT_INJECTED),
            inject_skipped: sum(abi::STAT_INJECT_SKIPPED),
            inject_failed: sum(abi::STAT_INJECT_FAILED),
            root_multiplexed: sum(abi::STAT_ROOT_MULTIPLEXED),
            hints_used: sum(abi::STAT_HINTS_USED),
            hints_ignored: sum(abi::STAT_HINTS_IGNORED),
            ignored_conns_full: self.ignored_conns_full,
        }
    }

    /// Entries of every per-process, per-thread and per-connection map, for
    /// leak checks ("name=count ...").
    pub(crate) fn map_sizes(&self) -> String {
        let mut out = format!("traced_pids={}", self.traced_pid_count());
        for name in [
            "conn_state",
            "ignored_conns",
            "server_traces",
            "mux_threads",
            "epoll_sets",
            "pending_io",
            "tls_state",
            "ssl_args",
            "outgoing_tp",
            "last_recv_conn",
            "hints",
            "fd_socks",
        ] {
            if let Some(n) = self.map_len(name) {
                out.push_str(&format!(" {name}={n}"));
            }
        }
        out
    }

    /// Number of entries in one of the per-connection / per-thread kernel
    /// maps, for leak checks and diagnostics.
    pub(crate) fn map_len(&self, name: &str) -> Option<usize> {
        if name == "ignored_conns" {
            return Some(self.ignored_conns.keys().filter(|k| k.is_ok()).count());
        }
        let map = self.ebpf.map(name)?;
        fn count<K: aya::Pod, const V: usize>(map: &aya::maps::Map) -> Option<usize> {
            let m = aya::maps::HashMap::<&MapData, K, [u8; V]>::try_from(map).ok()?;
            Some(m.keys().filter(|k| k.is_ok()).count())
        }
        match name {
            "conn_state" => count::<u64, { std::mem::size_of::<abi::ConnState>() }>(map),
            "tls_state" => count::<abi::SslKey, { std::mem::size_of::<abi::ConnState>() }>(map),
            "ssl_args" => count::<u64, 40>(map),
            "outgoing_tp" => count::<u64, 88>(map),
            "last_recv_conn" => count::<u64, 8>(map),
            "server_traces" => count::<u64, 48>(map),
            "pending_io" => count::<u64, 48>(map),
            "mux_threads" => count::<u64, 1>(map),
            "epoll_sets" => count::<u64, 4>(map),
            "hints" => count::<u64, { std::mem::size_of::<abi::Tp>() }>(map),
            "fd_socks" => count::<abi::FdKey, { std::mem::size_of::<abi::FdSock>() }>(map),
            _ => None,
        }
    }
}

/// Takes a map out of the object as the type the agent reads it as.
fn typed_map<T>(
    ebpf: &mut Ebpf,
    name: &'static str,
    convert: impl FnOnce(aya::maps::Map) -> Result<T, aya::maps::MapError>,
) -> Result<T> {
    let map = ebpf.take_map(name).ok_or(TracerError::MissingMap(name))?;
    convert(map).map_err(|source| TracerError::MapType { name, source })
}

fn attach(
    ebpf: &mut Ebpf,
    loaded: &mut BTreeMap<&'static str, ()>,
    tracepoint_links: &mut Vec<(&'static str, TracePointLinkId)>,
    program: &'static str,
    hook: &Hook,
) -> Result<()> {
    let prog = ebpf.program_mut(program).ok_or(TracerError::MissingProgram(program))?;
    let first = loaded.insert(program, ()).is_none();
    let attach_error = |source| TracerError::Attach { program, hook: hook.describe(), source: Box::new(source) };
    match hook {
        Hook::TracePoint(category, name) => {
            let tp: &mut TracePoint = prog.try_into().map_err(attach_error)?;
            if first {
                tp.load().map_err(|e| program_load_error(program, e))?;
            }
            tracepoint_links.push((program, tp.attach(category, name).map_err(attach_error)?));
        }
        Hook::RawTracePoint(name) => {
            let tp: &mut RawTracePoint = prog.try_into().map_err(attach_error)?;
            if first {
                tp.load().map_err(|e| program_load_error(program, e))?;
            }
            tp.attach(name).map_err(attach_error)?;
        }
        Hook::SyscallEnter(name) | Hook::SyscallExit(name) => {
            let handler: &mut RawTracePoint = prog.try_into().map_err(attach_error)?;
            if first {
                handler.load().map_err(|e| program_load_error(program, e))?;
            }
            // Not a syscall of this architecture: nothing can call it.
            let Some(nr) = syscalls::number(name) else {
                tracing::debug!(component = "ebpf.Tracer", program, syscall = name, "no such syscall here");
                return Ok(());
            };
            let fd = handler.fd().map_err(attach_error)?.try_clone().map_err(|e| attach_error(e.into()))?;
            let slots = if matches!(hook, Hook::SyscallEnter(_)) { "sys_enter_progs" } else { "sys_exit_progs" };
            let map = ebpf.map_mut(slots).ok_or(TracerError::MissingMap(slots))?;
            let mut array =
                ProgramArray::try_from(map).map_err(|source| TracerError::MapType { name: slots, source })?;
            array.set(nr, &fd, 0).map_err(|source| TracerError::SyscallSlot {
                program,
                hook: hook.describe(),
                map: slots,
                source: Box::new(source),
            })?;
        }
    }
    Ok(())
}

/// Where tracefs is mounted with its events (it holds the tracepoints the
/// programs attach to, and `uprobe_events`), if anywhere.
pub(crate) fn tracefs_path() -> Option<PathBuf> {
    ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.join("events").is_dir())
}
