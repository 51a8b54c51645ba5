//! Stopping in an order that loses nothing, within `shutdown_timeout` in
//! total: discovery first (no new processes), then the kernel side is
//! detached while the sinks drain, then the readers of the metrics store (the
//! last OTLP metrics export holds every span), and the `totals` line once
//! every count is final.

use super::Agent;
use super::stats::{self, Sources};
use crate::config::TracePrinter;

impl Agent {
    pub(super) async fn shutdown(self) {
        let Agent { cfg, kernel, tracker, discovery, exporters, stats, .. } = self;
        // One deadline for every step: `shutdown_timeout` is the whole stop.
        let deadline = std::time::Instant::now() + cfg.shutdown_timeout;
        let kernel_stats = kernel.tracer.stats();
        let maps = kernel.tracer.map_sizes();
        let _ = discovery.stop.send(true);
        let started = std::time::Instant::now();
        let _ = tokio::time::timeout_at(deadline.into(), discovery.task).await;
        // Detaching every program takes seconds (the kernel waits for a grace
        // period per probe): it runs while the sinks drain, which no longer
        // depends on it. What is not detached by the deadline the kernel
        // finishes when the process exits.
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
