//! Node.js: right parents for client calls of a process that serves many
//! requests on one thread. A small script (hints.js), injected once per
//! process through the Node.js inspector, follows each server request
//! through async code and, before every outgoing HTTP request, tells the
//! kernel side which server request it belongs to (bpf/include/obi/hints.bpf.h).
//!
//! Injection runs on its own thread, one process at a time, off the event
//! loop: SIGUSR1 opens the inspector, `Runtime.evaluate` runs the script,
//! and the inspector is closed again so its port is free for the next
//! process. When the inspector cannot be opened the process is left alone
//! (one warning) and its client spans start their own traces.

mod inspector;
mod own_conns;

use std::collections::HashSet;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use crate::ebpf::abi;
use crate::service::{Language, Service};
pub(crate) use own_conns::OwnConnections;

/// The script, evaluated as `(<script>)(<hint prefix>)`.
const SCRIPT: &str = include_str!("hints.js");
/// Closes the inspector after our session has gone: stopping it with a
/// session still attached once killed a Node 20 process in our tests.
const CLOSE_INSPECTOR: &str = "(r => { setTimeout(() => r('inspector').close(), 500).unref(); })(require)";
/// Bound of every step (inspector opening, connecting, each answer).
const STEP_TIMEOUT: Duration = Duration::from_secs(3);
/// Processes waiting for injection; more are dropped (and logged).
const QUEUE_LEN: usize = 256;

#[derive(Debug, thiserror::Error)]
pub(crate) enum InjectError {
    #[error("the process does not handle SIGUSR1 (started with --disable-sigusr1, or without inspector)")]
    Sigusr1Disabled,
    #[error("cannot read /proc: {0}")]
    Proc(#[source] std::io::Error),
    #[error("the process is in another network namespace, where the agent cannot reach its inspector")]
    OtherNetwork,
    #[error("cannot signal the process: {0}")]
    Signal(#[source] std::io::Error),
    #[error("no inspector port opened (its port may be taken by another process)")]
    NoInspector,
    #[error("cannot connect to the inspector: {0}")]
    Connect(#[source] std::io::Error),
    #[error("the inspector's target list is unusable")]
    BadList,
    #[error("inspector WebSocket: {0}")]
    WebSocket(#[from] tungstenite::Error),
    #[error("inspector protocol: {0}")]
    Protocol(#[source] serde_json::Error),
    #[error("timed out")]
    Timeout,
    #[error("the script failed: {0}")]
    Script(String),
}

struct Target {
    pid: u32,
    service: String,
}

/// Hands Node.js processes to the injection thread, each once.
pub(crate) struct Injector {
    queue: Option<mpsc::SyncSender<Target>>,
    queued: HashSet<u32>,
    own: Arc<OwnConnections>,
}

impl Injector {
    /// Starts the injection thread, unless `enabled` is false.
    pub(crate) fn start(enabled: bool) -> Injector {
        let own = Arc::new(OwnConnections::default());
        let queue = enabled.then(|| {
            let (tx, rx) = mpsc::sync_channel(QUEUE_LEN);
            let own = own.clone();
            let spawned = std::thread::Builder::new().name("obi-nodejs".into()).spawn(move || {
                for t in rx {
                    inject_logged(t, &own);
                }
            });
            match spawned {
                Ok(_) => Some(tx),
                Err(err) => {
                    tracing::warn!(component = "nodejs.Injector", error = %err, "cannot start the Node.js injector; Node.js client spans start their own traces");
                    None
                }
            }
        });
        Injector { queue: queue.flatten(), queued: HashSet::new(), own }
    }

    /// The agent's own inspector connections, whose spans are dropped.
    pub(crate) fn own_connections(&self) -> &OwnConnections {
        &self.own
    }

    /// A process was instrumented: Node.js ones get the script.
    pub(crate) fn instrumented(&mut self, svc: &Service) {
        let Some(queue) = &self.queue else { return };
        if svc.language != Language::NodeJs || !self.queued.insert(svc.pid) {
            return;
        }
        if queue.try_send(Target { pid: svc.pid, service: svc.name.clone() }).is_err() {
            self.queued.remove(&svc.pid);
            tracing::warn!(component = "nodejs.Injector", pid = svc.pid, service = %svc.name, "Node.js injection queue full; its client spans start their own traces");
        }
    }

    /// The process is gone; its pid may come back as another process.
    pub(crate) fn forgotten(&mut self, pid: u32) {
        self.queued.remove(&pid);
    }
}

fn inject_logged(t: Target, own: &OwnConnections) {
    match inject(t.pid, own) {
        Ok(outcome) => {
            tracing::info!(component = "nodejs.Injector", pid = t.pid, service = %t.service, outcome = %outcome, "Script successfully injected")
        }
        Err(err) => tracing::warn!(
            component = "nodejs.Injector",
            pid = t.pid,
            service = %t.service,
            error = %err,
            "cannot inject the Node.js script; client spans of this process start their own traces"
        ),
    }
}

/// Opens the inspector, runs the script, closes the inspector.
fn inject(pid: u32, own: &OwnConnections) -> Result<String, InjectError> {
    if !inspector::catches_sigusr1(pid)? {
        return Err(InjectError::Sigusr1Disabled);
    }
    if !inspector::same_network(pid)? {
        return Err(InjectError::OtherNetwork);
    }
    let port = inspector::open(pid, STEP_TIMEOUT)?;
    let mut session = inspector::Session::connect(pid, port, STEP_TIMEOUT, own)?;
    let outcome = session.evaluate(&expression());
    // Close even when the script failed: the port must not stay open.
    let closed = session.evaluate(CLOSE_INSPECTOR);
    session.close();
    let outcome = outcome?;
    closed?;
    Ok(outcome.as_str().unwrap_or("unknown").to_owned())
}

fn expression() -> String {
    let prefix = serde_json::Value::from(abi::HINT_PREFIX);
    format!("({})({prefix})", SCRIPT.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expression_calls_the_script_with_the_kernel_prefix() {
        let e = expression();
        assert!(e.starts_with("(// Injected by obi-rs"));
        assert!(e.ends_with("}))(\"/dev/null/obi-rs/\")"), "{}", &e[e.len() - 40..]);
    }
}
