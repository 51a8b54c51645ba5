//! The instrumented Go processes and what was read from their binaries;
//! logs, once per process, what was found or why the binary cannot be
//! handled.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use super::{GoProgram, SymbolSource, inspect};
use crate::service::{Language, Service};

/// What still works for a Go process whose binary cannot be handled (said
/// in the log line).
const STILL_WORKS: &str = "no Go probes for it; its requests are still traced from its socket calls \
                           (syscall-level spans)";

#[derive(Debug, Default)]
pub(crate) struct Registry {
    programs: HashMap<u32, GoProgram>,
}

impl Registry {
    /// A process discovery decided to instrument: inspects its binary when
    /// it runs Go (through `/proc/<pid>/exe`, which also reaches binaries
    /// in other mount namespaces and deleted ones). Returns what was read
    /// when the Go probes can handle it.
    pub(crate) fn instrumented(&mut self, svc: &Service) -> Option<&GoProgram> {
        if svc.language != Language::Go {
            return None;
        }
        let started = Instant::now();
        let exe = PathBuf::from(format!("/proc/{}/exe", svc.pid));
        let cmd = svc.exe_path.display();
        match inspect(&exe) {
            Ok(program) => {
                tracing::info!(
                    component = "golang",
                    pid = svc.pid,
                    cmd = %cmd,
                    go_version = %program.version,
                    symbols = source_name(program.source),
                    functions = %functions_summary(&program),
                    goid_offset = program.offsets.g_goid,
                    grpc = %grpc_summary(&program),
                    took_ms = started.elapsed().as_millis() as u64,
                    "Go binary understood"
                );
                if let Some(Err(err)) = &program.grpc {
                    tracing::warn!(
                        component = "golang",
                        pid = svc.pid,
                        cmd = %cmd,
                        reason = %err,
                        "grpc-go client not followed: its calls are roots (never a guessed parent)"
                    );
                }
                self.programs.insert(svc.pid, program);
                self.programs.get(&svc.pid)
            }
            Err(err) => {
                tracing::warn!(
                    component = "golang",
                    pid = svc.pid,
                    cmd = %cmd,
                    reason = %err,
                    "Go binary cannot be handled: {STILL_WORKS}"
                );
                None
            }
        }
    }

    pub(crate) fn forgotten(&mut self, pid: u32) {
        self.programs.remove(&pid);
    }
}

fn source_name(source: SymbolSource) -> &'static str {
    match source {
        SymbolSource::Symtab => "symtab",
        SymbolSource::Pclntab(_) => "gopclntab",
    }
}

/// grpc-go's release when its client is followed, else `none` (no grpc-go
/// client) or `unknown` (the warning says why).
fn grpc_summary(p: &GoProgram) -> String {
    match &p.grpc {
        None => "none".to_string(),
        Some(Ok(c)) => format!("{}.{}", c.major, c.minor),
        Some(Err(_)) => "unknown".to_string(),
    }
}

/// `name@0xaddr` for each function found, `(rets:N)` after those
/// whose returns are probed.
fn functions_summary(p: &GoProgram) -> String {
    let mut out = String::new();
    for f in &p.functions {
        if !out.is_empty() {
            out.push(',');
        }
        let _ = write!(out, "{}@{:#x}", f.name, f.entry);
        if !f.returns.is_empty() {
            let _ = write!(out, "(rets:{})", f.returns.len());
        }
    }
    out
}
