//! Metrics about obi-rs itself (`internal_metrics.exporter: prometheus`).
//!
//! The agent loop copies its counters here once a second (and the scrape
//! endpoint counts its own requests); a scrape renders them. Names follow
//! OBI's `obi_*` internal metrics where OBI has one
//! (`obi_prometheus_http_requests_total`, `obi_instrumented_processes`,
//! `obi_internal_build_info`); the others are obi-rs's own.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::prom::{write_build_labels, write_escaped};

/// Per-sink span counters, as the agent last saw them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkCounters {
    pub sent: u64,
    pub dropped: u64,
}

/// A counter or gauge set by the agent loop.
#[derive(Debug, Default)]
pub struct Cell(AtomicU64);

impl Cell {
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }

    pub fn add(&self, v: u64) {
        self.0.fetch_add(v, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Default)]
pub struct InternalMetrics {
    /// Events the kernel side wrote to the ring buffer.
    pub kernel_events: Cell,
    /// Events lost because the event ring buffer was full.
    pub ringbuf_full: Cell,
    /// Process events lost because their ring buffer was full.
    pub proc_ringbuf_full: Cell,
    /// Kernel connection table full.
    pub conn_table_full: Cell,
    /// Kernel pending-request table full.
    pub pending_full: Cell,
    /// Events read and processed by user space.
    pub events_read: Cell,
    pub malformed_events: Cell,
    /// Message starts that were not valid HTTP/1.
    pub parse_failures: Cell,
    /// Spans produced by the tracker.
    pub spans: Cell,
    pub ignored_conns: Cell,
    pub orphan_responses: Cell,
    pub unanswered_requests: Cell,
    pub unnamed_spans_dropped: Cell,
    pub active_conns: Cell,
    /// Discovery triggers dropped (queue full).
    pub process_events_dropped: Cell,
    /// Spans dropped by the routes decorator (`ignored_patterns`).
    pub spans_ignored: Cell,
    /// Metric series removed by the TTL.
    pub series_expired: Cell,
    /// Successful OTLP metrics exports.
    pub otel_metric_exports: Cell,
    /// Failed OTLP metrics exports by error kind.
    otel_metric_export_errors: Mutex<BTreeMap<String, u64>>,
    /// Per exporter sink.
    pub sinks: Mutex<BTreeMap<&'static str, SinkCounters>>,
    /// Scrapes per (port, path).
    prom_requests: Mutex<BTreeMap<(u16, String), u64>>,
    /// Instrumented processes: pid -> process name.
    processes: Mutex<BTreeMap<u32, String>>,
}

impl InternalMetrics {
    pub fn prometheus_request(&self, port: u16, path: &str) {
        let mut m = self.prom_requests.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry((port, path.to_string())).or_default() += 1;
    }

    pub fn process_instrumented(&self, pid: u32, name: &str) {
        self.processes.lock().unwrap_or_else(|e| e.into_inner()).insert(pid, name.to_string());
    }

    pub fn process_forgotten(&self, pid: u32) {
        self.processes.lock().unwrap_or_else(|e| e.into_inner()).remove(&pid);
    }

    /// Counts a failed OTLP metrics export; the error label is the message
    /// up to its first `:` (e.g. `HTTP status 503 Service Unavailable`).
    pub fn otel_metric_export_error(&self, message: &str) {
        let kind: String = message.split(':').next().unwrap_or_default().trim().chars().take(64).collect();
        *self.otel_metric_export_errors.lock().unwrap_or_else(|e| e.into_inner()).entry(kind).or_default() += 1;
    }

    pub fn set_sink(&self, name: &'static str, c: SinkCounters) {
        self.sinks.lock().unwrap_or_else(|e| e.into_inner()).insert(name, c);
    }

    pub fn write_prometheus(&self, out: &mut String) {
        let counters: [Counter<'_>; 16] = [
            ("obi_ebpf_events_total", "events written by the kernel side", &[], &self.kernel_events),
            ("obi_ebpf_events_read_total", "kernel events read and processed by user space", &[], &self.events_read),
            (
                "obi_ebpf_ringbuf_dropped_events_total",
                "events lost because a ring buffer was full",
                &[("ringbuf", "events")],
                &self.ringbuf_full,
            ),
            ("obi_ebpf_ringbuf_dropped_events_total", "", &[("ringbuf", "process_events")], &self.proc_ringbuf_full),
            (
                "obi_ebpf_table_full_total",
                "kernel events not tracked because a kernel table was full",
                &[("table", "connections")],
                &self.conn_table_full,
            ),
            ("obi_ebpf_table_full_total", "", &[("table", "pending_requests")], &self.pending_full),
            ("obi_malformed_events_total", "kernel events user space could not decode", &[], &self.malformed_events),
            (
                "obi_parse_failures_total",
                "messages that could not be parsed",
                &[("protocol", "http1")],
                &self.parse_failures,
            ),
            ("obi_spans_total", "spans produced", &[], &self.spans),
            (
                "obi_ignored_connections_total",
                "connections ignored because their protocol is not supported",
                &[],
                &self.ignored_conns,
            ),
            ("obi_orphan_responses_total", "responses whose request was not seen", &[], &self.orphan_responses),
            ("obi_unanswered_requests_total", "requests dropped without a response", &[], &self.unanswered_requests),
            (
                "obi_unnamed_spans_dropped_total",
                "spans dropped because their process was never named by discovery",
                &[],
                &self.unnamed_spans_dropped,
            ),
            (
                "obi_process_events_dropped_total",
                "process events dropped because the discovery queue was full",
                &[],
                &self.process_events_dropped,
            ),
            (
                "obi_ignored_spans_total",
                "spans dropped because they match routes.ignored_patterns",
                &[],
                &self.spans_ignored,
            ),
            ("obi_metric_series_expired_total", "metric series removed after the TTL", &[], &self.series_expired),
        ];
        for (name, help, labels, cell) in counters {
            if !help.is_empty() {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            }
            out.push_str(name);
            write_labels(out, labels.iter().map(|(k, v)| (*k, *v)));
            let _ = writeln!(out, " {}", cell.get());
        }
        let _ = writeln!(
            out,
            "# HELP obi_active_connections connections tracked by user space\n# TYPE obi_active_connections gauge\nobi_active_connections {}",
            self.active_conns.get()
        );

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

/// Name, help (empty: same family as the previous one), labels, value.
type Counter<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a Cell);

fn write_labels<'a>(out: &mut String, labels: impl IntoIterator<Item = (&'a str, &'a str)>) {
    let mut any = false;
    for (k, v) in labels {
        out.push(if any { ',' } else { '{' });
        any = true;
        out.push_str(k);
        out.push_str("=\"");
        write_escaped(out, v);
        out.push('"');
    }
    if any {
        out.push('}');
    }
}
