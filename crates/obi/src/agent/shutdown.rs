//! Stopping in an order that loses nothing, within `shutdown_timeout` in
//! total: the kernel side stops writing events and the loop processes what
//! it wrote, then discovery (no new processes), then the rest of the kernel
//! side is released while the sinks drain, then the readers of the metrics
//! store (the last OTLP metrics export holds every span), and the `totals`
//! line once every count is final.

use super::Agent;
use super::stats::{self, Sources};
use crate::config::TracePrinter;

impl Agent {
    pub(super) async fn shutdown(mut self) {
        // One deadline for every step: `shutdown_timeout` is the whole stop.
        let deadline = std::time::Instant::now() + self.cfg.shutdown_timeout;
        // No new events, then the last ones through the pipeline: every event
        // the kernel wrote is read, and every span is handed on or counted.
        let stopping = std::time::Instant::now();
        self.kernel.tracer.stop_events();
        tracing::debug!(component = "obi.Instrumenter", took = ?stopping.elapsed(), "kernel events stopped");
        self.turn();
        self.tracker.finish();
        let Agent { cfg, kernel, tracker, discovery, exporters, stats, .. } = self;
        let kernel_stats = kernel.tracer.stats();
        let maps = kernel.tracer.map_sizes();
        let _ = discovery.stop.send(true);
        let started = std::time::Instant::now();
        let _ = tokio::time::timeout_at(deadline.into(), discovery.task).await;
        tracing::debug!(component = "obi.Instrumenter", took = ?started.elapsed(), "discovery stopped");
        // The slow links went in stop_events (in parallel); what is left
        // (programs, maps, other links) is released while the sinks drain,
        // which no longer depends on it. What is not released by the deadline
        // the kernel finishes when the process exits.
        let mut detach = tokio::task::spawn_blocking(move || drop(kernel));
        let otlp_traces = exporters.otlp_traces.clone();
        let recorder = exporters.recorder.clone();
        exporters.shutdown(deadline).await;
        tracing::debug!(component = "obi.Instrumenter", took = ?started.elapsed(), "exporters stopped");
        match tokio::time::timeout_at(deadline.into(), &mut detach).await {
            Ok(_) => {
                tracing::debug!(component = "obi.Instrumenter", took = ?started.elapsed(), "eBPF programs detached")
            }
            Err(_) => tracing::info!(
                component = "obi.Instrumenter",
                shutdown_timeout = ?cfg.shutdown_timeout,
                "eBPF programs still detaching at the shutdown deadline; the kernel completes it as the process exits"
            ),
        }
        let sources = Sources {
            kernel: kernel_stats,
            tracker: tracker.stats(),
            counters: &stats.counters,
            recorder: recorder.as_deref(),
        };
        stats::log_totals(&sources, &maps, otlp_traces.as_deref());
        if cfg.trace_printer == TracePrinter::Counter {
            println!("Processed {} requests", stats.counters.spans_emitted);
        }
        tracing::info!(component = "obi.Instrumenter", "stopped");
    }
}
