//! Processes coming and going: kernel process events go to discovery, and
//! discovery's decisions (instrument, forget) are applied to the kernel side,
//! the tracker and the internal metrics.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use super::Agent;
use crate::discover::{DiscoveryEvent, ExecInfo, Trigger};
use crate::ebpf::abi;
use crate::span::Span;
use crate::transform::routes::Verdict;

/// Processes with work the loop must finish at the right moment.
#[derive(Debug, Default)]
pub(super) struct Processes {
    /// Gone: removed once their last events are processed.
    forgotten: Vec<u32>,
    /// Exits read after the turn's data: forgotten next turn.
    exited_late: Vec<u32>,
    /// Rejected by discovery: removed, with what they produced, once their
    /// last events are processed.
    rejected: Vec<u32>,
    /// Traced, with libssl mapped or just instrumented: TLS probes to attach.
    tls_pending: Vec<u32>,
    /// Traced processes that exec'd, with the inode of their new program,
    /// until discovery names them (or forgets them).
    execed: HashMap<u32, u64>,
    /// Logs instrumented forked children per parent.
    pub(super) forks: super::fork_log::ForkLog,
}

impl Agent {
    pub(super) fn on_discovery(&mut self, ev: DiscoveryEvent) {
        match ev {
            DiscoveryEvent::Instrument(svc) => {
                let tracer = &mut self.kernel.tracer;
                // Read from /proc before an exec the kernel reported since:
                // the name of the program it was. Discovery names the new
                // one when it handles the exec.
                if let Some(&ino) = self.processes.execed.get(&svc.pid) {
                    if svc.exe_ino != 0 && svc.exe_ino != ino {
                        return;
                    }
                    self.processes.execed.remove(&svc.pid);
                }
                // Forget-then-instrument (an exec): the old identity goes, but the
                // pid stays in the kernel filter so nothing it does meanwhile
                // (like mapping libssl) is missed, and its connections stay
                // (sockets survive an exec).
                let forgotten = &mut self.processes.forgotten;
                if let Some(i) = forgotten.iter().position(|&p| p == svc.pid) {
                    forgotten.swap_remove(i);
                    tracer.reset_tls(svc.pid);
                    self.tracker.unname(svc.pid, crate::clock::monotonic_ns());
                }
                if let Err(err) = tracer.trace_pid(svc.pid) {
                    tracing::warn!(component = "ebpf.Tracer", pid = svc.pid, error = %format!("{:#}", anyhow::Error::new(err)), "cannot trace process");
                    return;
                }
                self.processes.forks.instrumenting(&svc, std::time::Instant::now());
                let exe = svc.exe_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                self.exporters.internal.process_instrumented(svc.pid, &exe);
                self.tracker.add_service(svc.clone());
                // Slow (ELF symbols, uprobe attach): after every pending process
                // is in the kernel filter, so none misses its first requests.
                self.processes.tls_pending.push(svc.pid);
                self.nodejs.instrumented(&svc);
                if let Some(program) = self.golang.instrumented(&svc) {
                    attach_go(&mut self.kernel.tracer, svc.pid, program);
                }
                // A trace-side event: the metrics store has nothing to record.
                let alive = Span::process_alive(svc, self.clock.now_wall());
                self.exporters.fanout.send_routed(vec![alive], &[Verdict::TracesOnly]);
            }
            DiscoveryEvent::Forget { pid } => {
                self.processes.execed.remove(&pid);
                self.exporters.internal.process_forgotten(pid);
                self.nodejs.forgotten(pid);
                self.golang.forgotten(pid);
                self.processes.forgotten.push(pid);
            }
            DiscoveryEvent::Reject { pid } => {
                self.processes.execed.remove(&pid);
                self.exporters.internal.process_forgotten(pid);
                self.nodejs.forgotten(pid);
                self.golang.forgotten(pid);
                self.processes.rejected.push(pid);
            }
        }
    }

    /// Kernel process events: libssl mappings are ours to act on, the rest
    /// goes to discovery (dropped, and counted, when its queue is full).
    /// A fork of a named process is named at once, before its first event is
    /// read (discovery names it again later, if it still runs); an exec
    /// unnames it until discovery names the new program; an exit is
    /// forgotten once this turn's events are processed (the kernel already
    /// took the pid out of its filter).
    ///
    /// `after_data`: this drain follows the turn's data drain; an exit it
    /// reads may come after data events not read yet, so that process is
    /// forgotten at the end of the next turn.
    pub(super) fn drain_process_events(&mut self, after_data: bool) {
        let Agent { kernel, processes, discovery, stats, tracker, .. } = self;
        if !after_data {
            processes.forgotten.append(&mut processes.exited_late);
        }
        kernel.proc_events.drain(|rec| {
            if let Some(ev) = abi::ProcEvent::read(rec) {
                match ev.kind {
                    abi::PEV_TLS_LIB => {
                        processes.tls_pending.push(ev.pid);
                        return;
                    }
                    abi::PEV_FORK => {
                        tracker.adopt_fork(ev.pid, ev.ppid);
                    }
                    abi::PEV_EXEC => {
                        tracker.unname(ev.pid, ev.ts);
                        if let Some(exec) = abi::ExecEvent::read(rec)
                            && exec.exe_ino != 0
                        {
                            processes.execed.insert(ev.pid, exec.exe_ino);
                        }
                    }
                    abi::PEV_EXIT if after_data => processes.exited_late.push(ev.pid),
                    abi::PEV_EXIT => processes.forgotten.push(ev.pid),
                    _ => {}
                }
            }
            let Some(t) = to_trigger(rec) else { return };
            match t {
                Trigger::Fork { pid, parent } => processes.forks.forked(pid, parent, std::time::Instant::now()),
                Trigger::Exit(pid) => processes.forks.exited(pid),
                _ => {}
            }
            if matches!(t, Trigger::Listen(_)) && !discovery.needs_ports {
                return;
            }
            if discovery.triggers.try_send(t).is_err() {
                stats.counters.process_events_dropped += 1;
            }
        });
    }

    pub(super) fn attach_pending_tls(&mut self) {
        for pid in self.processes.tls_pending.drain(..) {
            attach_tls(&mut self.kernel.tracer, pid);
        }
    }

    pub(super) fn forget_exited(&mut self) {
        for pid in self.processes.forgotten.drain(..) {
            self.kernel.tracer.untrace_pid(pid);
            self.tracker.remove_service(pid);
        }
        for pid in self.processes.rejected.drain(..) {
            self.kernel.tracer.untrace_pid(pid);
            self.tracker.reject(pid);
        }
    }
}

fn attach_tls(tracer: &mut crate::ebpf::Tracer, pid: u32) {
    match tracer.trace_tls(pid) {
        // Many processes map libssl and never speak TLS: the tracker says
        // so at info level only once TLS plaintext arrives.
        Ok(files) if !files.is_empty() => tracing::debug!(
            component = "ebpf.TLS",
            pid,
            files = %files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(","),
            "OpenSSL probes attached"
        ),
        Ok(_) => {}
        // Short-lived processes (a forked child per request) are often gone
        // by the time their probes are attached: nothing was missed.
        Err(err) if process_gone(pid) => tracing::debug!(
            component = "ebpf.TLS",
            pid,
            error = %format!("{:#}", anyhow::Error::new(err)),
            "process exited before its TLS probes were attached"
        ),
        Err(err) => tracing::warn!(
            component = "ebpf.TLS",
            pid,
            error = %format!("{:#}", anyhow::Error::new(err)),
            "cannot trace TLS of this process; its HTTPS traffic will not be seen"
        ),
    }
}

fn attach_go(tracer: &mut crate::ebpf::Tracer, pid: u32, program: &crate::golang::GoProgram) {
    use crate::ebpf::golang::GoProbeError;
    match tracer.trace_go(pid, program) {
        Ok(probes) => {
            let grpc = program.grpc.as_ref().is_some_and(|g| g.is_ok());
            tracing::info!(component = "ebpf.Go", pid, probes, grpc, "Go net/http and crypto/tls probes attached")
        }
        // A Go program that uses neither net/http nor crypto/tls.
        Err(GoProbeError::NoNetHttp) => {
            tracing::debug!(component = "ebpf.Go", pid, "no net/http or crypto/tls in this Go program: no Go probes")
        }
        Err(err) if process_gone(pid) => tracing::debug!(
            component = "ebpf.Go",
            pid,
            error = %format!("{:#}", anyhow::Error::new(err)),
            "process exited before its Go probes were attached"
        ),
        Err(err) => tracing::warn!(
            component = "ebpf.Go",
            pid,
            error = %format!("{:#}", anyhow::Error::new(err)),
            "cannot attach the Go probes: this process's client calls get no goroutine-aware parents (they are roots) and its Go TLS (HTTPS) is not seen"
        ),
    }
}

/// The process has exited (reaped, or a zombie: state `Z` or `X`).
fn process_gone(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return true };
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next());
    matches!(state, Some('Z' | 'X') | None)
}

fn to_trigger(rec: &[u8]) -> Option<Trigger> {
    let ev = abi::ProcEvent::read(rec)?;
    Some(match ev.kind {
        abi::PEV_EXEC => {
            let exec = abi::ExecEvent::read(rec);
            Trigger::Exec(ExecInfo {
                pid: ev.pid,
                ppid: ev.ppid,
                path: exec.map(|e| PathBuf::from(OsStr::from_bytes(e.path()))).unwrap_or_default(),
                args: exec.map(|e| e.args()).unwrap_or_default(),
            })
        }
        abi::PEV_LISTEN => Trigger::Listen(ev.pid),
        abi::PEV_FORK => Trigger::Fork { pid: ev.pid, parent: ev.ppid },
        abi::PEV_EXIT => Trigger::Exit(ev.pid),
        _ => return None,
    })
}
