//! The running agent: one pipeline on one tokio runtime.
//!
//! ```text
//! discovery ──► kernel (eBPF rings) ──► tracker ──► routes ──► fan-out ──► printer
//!     ▲                                                            ├─────► OTLP traces
//!     └──── process events (exec, fork, exit, listen) ◄── kernel   └─────► metrics store ──► Prometheus, OTLP metrics
//! ```
//!
//! - [`startup`]: checks the machine, loads the kernel side, wires the pieces.
//! - [`exporters`]: the sinks behind the fan-out and the metrics endpoints.
//! - [`event_loop`]: moves events through the pipeline until a signal.
//! - [`discovery`]: what the loop does when processes come and go (Node.js
//!   processes also get their parent-hint script, see [`crate::nodejs`]);
//!   [`fork_log`] summarizes the lines of forked children per parent.
//! - [`stats`]: the one table of counters behind the internal metrics page,
//!   the loss warnings and the `totals` line.
//! - [`shutdown`]: stops the pieces in an order that loses nothing.

mod discovery;
mod event_loop;
mod exporters;
mod fork_log;
mod shutdown;
mod startup;
mod stats;

use std::sync::Arc;

use anyhow::Result;
use tokio::sync::{mpsc, watch};

use crate::clock::Clock;
use crate::config::Config;
use crate::discover::{DiscoveryEvent, Trigger};
use crate::ebpf::Tracer;
use crate::ebpf::ring::Ring;
use crate::tracker::Tracker;
use crate::transform::routes::{RouteDecorator, Verdict};

pub(crate) async fn run(cfg: Config) -> Result<()> {
    let mut agent = startup::start(cfg).await?;
    agent.run_until_signal().await;
    agent.shutdown().await;
    Ok(())
}

/// Everything the event loop moves data through, grouped by stage.
struct Agent {
    cfg: Arc<Config>,
    clock: Clock,
    kernel: Kernel,
    tracker: Tracker,
    discovery: Discovery,
    processes: discovery::Processes,
    /// Gives Node.js processes the parent-hint script.
    nodejs: crate::nodejs::Injector,
    /// What was read from the binaries of Go processes.
    golang: crate::golang::Registry,
    routes: Routes,
    exporters: exporters::Exporters,
    stats: stats::Stats,
    signals: event_loop::Signals,
}

/// The loaded eBPF programs and the two rings they write to.
struct Kernel {
    tracer: Tracer,
    /// Socket data and connection events, for the tracker.
    events: Ring,
    /// Process lifecycle events, for discovery.
    proc_events: Ring,
}

/// The discovery task and the two queues that link it to the loop.
struct Discovery {
    task: tokio::task::JoinHandle<()>,
    /// Process events from the kernel, to discovery.
    triggers: mpsc::Sender<Trigger>,
    /// Decisions from discovery: instrument or forget a process.
    decisions: mpsc::Receiver<DiscoveryEvent>,
    /// Only port selectors care about new listeners.
    needs_ports: bool,
    stop: watch::Sender<bool>,
}

/// The routes decorator and its per-batch verdicts (kept to reuse the buffer).
struct Routes {
    decorator: RouteDecorator,
    verdicts: Vec<Verdict>,
}
