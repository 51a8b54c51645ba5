//! The sinks behind the fan-out (trace printer, OTLP traces, the metrics
//! store) and what reads the metrics store (Prometheus scrape endpoints, the
//! OTLP metrics exporter), started from the configuration and stopped in
//! order.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::metrics::InternalExporter;
use crate::config::{Config, TracePrinter};
use crate::export::fanout::{Fanout, Signal};
use crate::export::metrics::internal::{Exposed, InternalMetrics};
use crate::export::metrics::sink::RecorderStats;
use crate::export::metrics::{self, MetricsStore, prom};
use crate::export::otlp::traces::ExportStats;
use crate::export::resource::HostInfo;
use crate::export::{otlp, printer, top};

pub(super) struct Exporters {
    pub(crate) fanout: Fanout,
    pub(crate) internal: Arc<InternalMetrics>,
    /// Totals of the OTLP traces exporter, when it runs.
    pub(crate) otlp_traces: Option<Arc<ExportStats>>,
    /// The OTLP traces exporter's task and what tells it to give up.
    otlp_traces_task: Option<(JoinHandle<()>, watch::Sender<bool>)>,
    /// Counts of the metrics store's sink, when it runs.
    pub(crate) recorder: Option<Arc<RecorderStats>>,
    /// Set when the user quits the live view of `obi top`.
    pub(crate) quit: Option<watch::Receiver<bool>>,
    /// The printer runs on its own thread (it writes to stdout).
    sink_threads: Vec<std::thread::JoinHandle<()>>,
    sink_tasks: Vec<JoinHandle<()>>,
    /// Scrape endpoints and the OTLP metrics exporter: they read the store.
    readers: Vec<JoinHandle<()>>,
    stop_readers: watch::Sender<bool>,
}

impl Exporters {
    /// Starts every configured exporter; `exposed` are the agent's counters
    /// on the internal metrics page.
    pub(crate) async fn start(
        cfg: &Config,
        host: HostInfo,
        exposed: impl IntoIterator<Item = &'static Exposed>,
    ) -> Result<Exporters> {
        let mut fanout = Fanout::new();
        let mut sink_threads = Vec::new();
        let mut sink_tasks = Vec::new();
        if let Some(format) = printer_format(cfg.trace_printer) {
            let (rx, _) = fanout.add_sink("trace_printer", Signal::Traces);
            sink_threads.push(printer::spawn_printer(format, rx));
        }
        let mut quit = None;
        if cfg.trace_printer == TracePrinter::Top {
            let (rx, stats) = fanout.add_sink("top", Signal::Traces);
            let (tx, quit_rx) = watch::channel(false);
            sink_threads.push(top::spawn(rx, stats, tx));
            quit = Some(quit_rx);
        }
        let mut otlp_traces = None;
        let mut otlp_traces_task = None;
        if let Some(traces) = &cfg.export.otlp_traces {
            let (rx, _) = fanout.add_sink("otlp_traces", Signal::Traces);
            let (abandon, abandon_rx) = watch::channel(false);
            let (task, stats) = otlp::traces::spawn(traces.clone(), host.clone(), rx, abandon_rx)
                .context("cannot start the OTLP traces exporter")?;
            otlp_traces_task = Some((task, abandon));
            otlp_traces = Some(stats);
        }

        let internal = Arc::new(InternalMetrics::new(exposed));
        let (stop_readers, stop_rx) = watch::channel(false);
        let otlp_metrics = cfg.export.otlp_metrics.clone();
        // One store for both metrics exporters, kept for the longer TTL; each
        // exporter skips series older than its own.
        let store_ttl = [cfg.export.prometheus_port.map(|_| cfg.metrics.ttl), otlp_metrics.as_ref().map(|o| o.ttl)]
            .into_iter()
            .flatten()
            .max();
        let store = store_ttl.map(|ttl| Arc::new(Mutex::new(MetricsStore::with_ttl(&cfg.metrics, ttl))));
        let mut recorder = None;
        if let Some(store) = &store {
            let (rx, _) = fanout.add_sink("metrics", Signal::Metrics);
            let (task, stats) = metrics::sink::spawn(store.clone(), rx);
            sink_tasks.push(task);
            recorder = Some(stats);
        }
        let host = Arc::new(host);
        let mut readers = start_metrics_endpoints(cfg, &host, store.clone(), &internal, &stop_rx).await?;
        if let (Some(settings), Some(store)) = (otlp_metrics, store) {
            readers.push(metrics::otlp::spawn_exporter(settings, store, host, internal.clone(), stop_rx)?);
        }
        Ok(Exporters {
            fanout,
            internal,
            otlp_traces,
            otlp_traces_task,
            recorder,
            quit,
            sink_threads,
            sink_tasks,
            readers,
            stop_readers,
        })
    }

    /// Closes the sinks' queues and lets them drain, all by `deadline`: the
    /// printer and the metrics store first, then what reads the store (the
    /// last OTLP metrics export holds every span) while the OTLP traces
    /// exporter still sends. Just before the deadline the traces exporter
    /// gives up and counts what it could not deliver; readers still running
    /// at the deadline are stopped.
    pub(crate) async fn shutdown(mut self, deadline: Instant) {
        self.fanout.close();
        for t in self.sink_threads {
            while !t.is_finished() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        for t in self.sink_tasks {
            let _ = tokio::time::timeout_at(deadline.into(), t).await;
        }
        let _ = self.stop_readers.send(true);
        if let Some((mut task, abandon)) = self.otlp_traces_task {
            let give_up_at = deadline.checked_sub(ABANDON_MARGIN).unwrap_or(deadline);
            if tokio::time::timeout_at(give_up_at.into(), &mut task).await.is_err() {
                let _ = abandon.send(true);
                // Counting what is left takes no time; the margin is for a busy runtime.
                if tokio::time::timeout(ABANDON_MARGIN, &mut task).await.is_err() {
                    task.abort();
                    tracing::warn!(component = "otel.TracesExporter", "the traces exporter did not stop in time");
                }
            }
        }
        for mut r in self.readers {
            if tokio::time::timeout_at(deadline.into(), &mut r).await.is_err() {
                r.abort();
                tracing::warn!(
                    component = "export",
                    "an exporter did not finish before the shutdown deadline; stopped"
                );
            }
        }
    }
}

/// Time kept before the shutdown deadline for the OTLP traces exporter to
/// count what it could not deliver.
const ABANDON_MARGIN: Duration = Duration::from_millis(200);

fn printer_format(p: TracePrinter) -> Option<printer::PrinterFormat> {
    match p {
        TracePrinter::Text => Some(printer::PrinterFormat::Text),
        TracePrinter::Json => Some(printer::PrinterFormat::Json),
        TracePrinter::JsonIndent => Some(printer::PrinterFormat::JsonIndent),
        TracePrinter::Disabled | TracePrinter::Counter | TracePrinter::Top => None,
    }
}

/// Opens the Prometheus endpoints: application metrics on
/// `prometheus_export.port`, internal metrics on their port (the same
/// server when the ports are equal).
async fn start_metrics_endpoints(
    cfg: &Config,
    host: &Arc<HostInfo>,
    store: Option<Arc<Mutex<MetricsStore>>>,
    internal: &Arc<InternalMetrics>,
    stop: &watch::Receiver<bool>,
) -> Result<Vec<JoinHandle<()>>> {
    let mut by_port: Vec<(u16, Vec<(String, prom::Page)>)> = Vec::new();
    let mut add = |port: u16, path: &str, page: prom::Page| match by_port.iter_mut().find(|(p, _)| *p == port) {
        Some((_, pages)) => pages.push((path.to_string(), page)),
        None => by_port.push((port, vec![(path.to_string(), page)])),
    };
    if let (Some(port), Some(store)) = (cfg.export.prometheus_port, store) {
        let opts = prom::PromOptions::from_config(&cfg.metrics);
        add(port, &cfg.metrics.prometheus_path, prom::Page::Application { store, host: host.clone(), opts });
    }
    if cfg.metrics.internal_exporter == InternalExporter::Prometheus
        && let Some(port) = cfg.metrics.internal_port.or(cfg.export.prometheus_port)
    {
        add(port, &cfg.metrics.internal_path, prom::Page::Internal(internal.clone()));
    }
    let mut handles = Vec::new();
    for (port, pages) in by_port {
        let listener = prom::bind(cfg.metrics.scrape_host, port).await?;
        let address = listener.local_addr().map(|a| a.ip().to_string()).unwrap_or_default();
        for (path, _) in &pages {
            tracing::info!(component = "prom.Exporter", port, path = %path, address = %address, "opening prometheus scrape endpoint");
        }
        let limits = prom::ScrapeLimits::from_config(&cfg.metrics);
        handles.push(prom::spawn_server(listener, port, pages, limits, internal.clone(), stop.clone()));
    }
    Ok(handles)
}
