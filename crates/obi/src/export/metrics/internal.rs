//! Metrics about obi-rs itself (`internal_metrics.exporter: prometheus`).
//!
//! The agent publishes its counters here once a second (which ones, and
//! under which names, its stats table decides: [`InternalMetrics::new`]);
//! exporters and the scrape endpoint count their own; a scrape renders them. Names follow
//! OBI's `obi_*` internal metrics where OBI has one
//! (`obi_prometheus_http_requests_total`, `obi_instrumented_processes`,
//! `obi_internal_build_info`); the others are obi-rs's own.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::exposition::{write_build_labels, write_labels};

/// Per-sink span counters, as the agent last saw them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SinkCounters {
    pub(crate) sent: u64,
    pub(crate) dropped: u64,
}

/// A counter or gauge set by the agent loop.
#[derive(Debug, Default)]
pub(crate) struct Cell(AtomicU64);

impl Cell {
    pub(crate) fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }

    pub(crate) fn add(&self, v: u64) {
        self.0.fetch_add(v, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// How a published value is exposed on the internal metrics page.
#[derive(Debug)]
pub(crate) struct Exposed {
    /// Metric name; rows with the same name form one family (one `# HELP`).
    pub(crate) name: &'static str,
    pub(crate) help: &'static str,
    pub(crate) labels: &'static [(&'static str, &'static str)],
    pub(crate) kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct InternalMetrics {
    /// The agent's counters, in the order the agent publishes them.
    published: Box<[(&'static Exposed, Cell)]>,
    /// Successful OTLP metrics exports.
    pub(crate) otel_metric_exports: Cell,
    /// Failed OTLP metrics exports by error kind.
    otel_metric_export_errors: Mutex<BTreeMap<String, u64>>,
    /// Per exporter sink.
    pub(crate) sinks: Mutex<BTreeMap<&'static str, SinkCounters>>,
    /// Scrapes per (port, path).
    prom_requests: Mutex<BTreeMap<(u16, String), u64>>,
    /// Scrape connections refused (over `prometheus_export.max_connections`) per port.
    prom_refused: Mutex<BTreeMap<u16, u64>>,
    /// Instrumented processes: pid -> process name.
    processes: Mutex<BTreeMap<u32, String>>,
}

impl InternalMetrics {
    /// A page showing `exposed` (values set by [`InternalMetrics::publish`])
    /// besides the metrics every agent has (exporters, scrapes, processes).
    pub(crate) fn new(exposed: impl IntoIterator<Item = &'static Exposed>) -> Self {
        InternalMetrics { published: exposed.into_iter().map(|e| (e, Cell::default())).collect(), ..Default::default() }
    }

    /// Sets the values of the exposed metrics, in the order given to [`InternalMetrics::new`].
    pub(crate) fn publish(&self, values: impl IntoIterator<Item = u64>) {
        for ((_, cell), v) in self.published.iter().zip(values) {
            cell.set(v);
        }
    }

    pub(crate) fn prometheus_request(&self, port: u16, path: &str) {
        let mut m = self.prom_requests.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry((port, path.to_string())).or_default() += 1;
    }

    /// Counts a scrape connection closed at once because `port` had too many open.
    pub(crate) fn prometheus_connection_refused(&self, port: u16) {
        *self.prom_refused.lock().unwrap_or_else(|e| e.into_inner()).entry(port).or_default() += 1;
    }

    pub(crate) fn process_instrumented(&self, pid: u32, name: &str) {
        self.processes.lock().unwrap_or_else(|e| e.into_inner()).insert(pid, name.to_string());
    }

    pub(crate) fn process_forgotten(&self, pid: u32) {
        self.processes.lock().unwrap_or_else(|e| e.into_inner()).remove(&pid);
    }

    /// Counts a failed OTLP metrics export; the error label is the message
    /// up to its first `:` (e.g. `HTTP status 503 Service Unavailable`).
    pub(crate) fn otel_metric_export_error(&self, message: &str) {
        let kind: String = message.split(':').next().unwrap_or_default().trim().chars().take(64).collect();
        *self.otel_metric_export_errors.lock().unwrap_or_else(|e| e.into_inner()).entry(kind).or_default() += 1;
    }

    pub(crate) fn set_sink(&self, name: &'static str, c: SinkCounters) {
        self.sinks.lock().unwrap_or_else(|e| e.into_inner()).insert(name, c);
    }

    pub(crate) fn write_prometheus(&self, out: &mut String) {
        let mut family = "";
        for (e, cell) in self.published.iter() {
            if e.name != family {
                family = e.name;
                let _ = writeln!(out, "# HELP {} {}\n# TYPE {} {}", e.name, e.help, e.name, e.kind.as_str());
            }
            out.push_str(e.name);
            write_labels(out, e.labels.iter().copied());
            let _ = writeln!(out, " {}", cell.get());
        }

        let sinks = self.sinks.lock().unwrap_or_else(|e| e.into_inner()).clone();
        out.push_str(
            "# HELP obi_exporter_spans_total spans handed to an exporter\n# TYPE obi_exporter_spans_total counter\n",
        );
        for (sink, c) in &sinks {
            out.push_str("obi_exporter_spans_total");
            write_labels(out, [("sink", *sink)]);
            let _ = writeln!(out, " {}", c.sent);
        }
        out.push_str(
            "# HELP obi_exporter_dropped_spans_total spans dropped because an exporter queue was full\n# TYPE obi_exporter_dropped_spans_total counter\n",
        );
        for (sink, c) in &sinks {
            out.push_str("obi_exporter_dropped_spans_total");
            write_labels(out, [("sink", *sink)]);
            let _ = writeln!(out, " {}", c.dropped);
        }

        let _ = writeln!(
            out,
            "# HELP obi_otel_metric_exports_total OTLP metrics exports\n# TYPE obi_otel_metric_exports_total counter\nobi_otel_metric_exports_total {}",
            self.otel_metric_exports.get()
        );
        let errors = self.otel_metric_export_errors.lock().unwrap_or_else(|e| e.into_inner()).clone();
        out.push_str("# HELP obi_otel_metric_export_errors_total failed OTLP metrics exports\n# TYPE obi_otel_metric_export_errors_total counter\n");
        for (kind, n) in &errors {
            out.push_str("obi_otel_metric_export_errors_total");
            write_labels(out, [("error", kind.as_str())]);
            let _ = writeln!(out, " {n}");
        }

        let reqs = self.prom_requests.lock().unwrap_or_else(|e| e.into_inner()).clone();
        out.push_str("# HELP obi_prometheus_http_requests_total requests to the Prometheus scrape endpoints\n# TYPE obi_prometheus_http_requests_total counter\n");
        for ((port, path), n) in &reqs {
            out.push_str("obi_prometheus_http_requests_total");
            write_labels(out, [("path", path.as_str()), ("port", &port.to_string())]);
            let _ = writeln!(out, " {n}");
        }

        let refused = self.prom_refused.lock().unwrap_or_else(|e| e.into_inner()).clone();
        out.push_str("# HELP obi_prometheus_connections_refused_total scrape connections closed at once because the endpoint had prometheus_export.max_connections open\n# TYPE obi_prometheus_connections_refused_total counter\n");
        for (port, n) in &refused {
            out.push_str("obi_prometheus_connections_refused_total");
            write_labels(out, [("port", port.to_string().as_str())]);
            let _ = writeln!(out, " {n}");
        }

        let mut by_name: BTreeMap<String, u64> = BTreeMap::new();
        for name in self.processes.lock().unwrap_or_else(|e| e.into_inner()).values() {
            *by_name.entry(name.clone()).or_default() += 1;
        }
        out.push_str("# HELP obi_instrumented_processes instrumented processes by name\n# TYPE obi_instrumented_processes gauge\n");
        for (name, n) in &by_name {
            out.push_str("obi_instrumented_processes");
            write_labels(out, [("process_name", name.as_str())]);
            let _ = writeln!(out, " {n}");
        }

        out.push_str("# HELP obi_internal_build_info build information of obi-rs\n# TYPE obi_internal_build_info gauge\nobi_internal_build_info");
        write_build_labels(out, None);
        out.push_str(" 1\n");
    }
}
