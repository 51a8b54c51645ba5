//! Stopping in an order that loses nothing: discovery first (no new
//! processes), then the kernel side (no new events), then the sinks drain,
//! then the readers of the metrics store (the last OTLP metrics export holds
//! every span), and the `totals` line once every count is final.

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
        let _ = tokio::time::timeout_at(deadline.into(), discovery.task).await;
        // Detaches every program.
        drop(kernel);
        let otlp_traces = exporters.otlp_traces.clone();
        let recorder = exporters.recorder.clone();
        exporters.shutdown(deadline).await;
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
