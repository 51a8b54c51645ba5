//! Stopping in an order that loses nothing: the kernel side stops writing
//! events and the loop processes what it wrote, then discovery (no new
//! processes), then the kernel side goes, then the sinks drain,
//! then the readers of the metrics store (the last OTLP metrics export holds
//! every span), and the `totals` line once every count is final.

use super::Agent;
use super::stats::{self, Sources};
use crate::config::TracePrinter;

impl Agent {
    pub(super) async fn shutdown(mut self) {
        // No new events, then the last ones through the pipeline: every event
        // the kernel wrote is read, and every span is handed on or counted.
        self.kernel.tracer.stop_events();
        self.turn();
        self.tracker.finish();
        let Agent { cfg, kernel, tracker, discovery, exporters, stats, .. } = self;
        let kernel_stats = kernel.tracer.stats();
        let maps = kernel.tracer.map_sizes();
        let _ = discovery.stop.send(true);
        let _ = tokio::time::timeout(cfg.shutdown_timeout, discovery.task).await;
        // Detaches every program.
        drop(kernel);
        let otlp_traces = exporters.otlp_traces.clone();
        let recorder = exporters.recorder.clone();
        exporters.shutdown(cfg.shutdown_timeout).await;
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
