//! The agent's counters, from one table: where each value comes from, how
//! the internal metrics page shows it, whether its growth is a loss to log,
//! and whether the `totals` line at exit reports it.
//!
//! Adding a counter is one row in [`STATS`] (and, if it belongs in the
//! `totals` line, one field there: `tracing` needs field names at compile
//! time; a test checks the two agree).

use std::sync::atomic::Ordering;

use super::exporters::Exporters;
use crate::ebpf::{KernelStats, Tracer};
use crate::export::metrics::internal::{Exposed, Kind, SinkCounters};
use crate::export::metrics::sink::RecorderStats;
use crate::export::otlp::traces::ExportStats;
use crate::tracker::{Tracker, TrackerStats};

/// Counted by the event loop itself.
#[derive(Debug, Default)]
pub(super) struct LoopCounters {
    /// Spans taken from the tracker (the `counter` trace printer reports them).
    pub(crate) spans_emitted: u64,
    /// Spans the routes kept out of traces, metrics or both.
    pub(crate) spans_ignored: u64,
    /// Process events dropped because the discovery queue was full.
    pub(crate) process_events_dropped: u64,
    /// Server spans of the agent's own inspector connections (Node.js).
    pub(crate) own_spans_dropped: u64,
}

/// Everything a counter can be read from.
pub(super) struct Sources<'a> {
    pub(crate) kernel: KernelStats,
    pub(crate) tracker: &'a TrackerStats,
    pub(crate) counters: &'a LoopCounters,
    pub(crate) recorder: Option<&'a RecorderStats>,
}

/// What growth of a counter means, and how it is logged.
#[derive(Debug, Clone, Copy)]
enum Loss {
    /// Kernel events lost: a warning.
    KernelEvents,
    /// Process events discovery never saw: debug (the periodic scan catches up).
    ProcessEvents,
}

impl Loss {
    fn log(self, counter: &str, lost: u64, total: u64) {
        match self {
            Loss::KernelEvents => {
                tracing::warn!(component = "ebpf.Tracer", counter, lost, total, "events lost")
            }
            Loss::ProcessEvents => {
                tracing::debug!(component = "discover", counter, lost, total, "process events dropped")
            }
        }
    }
}

/// One counter of the agent.
struct Stat {
    /// Its name in the `totals` line and in loss messages.
    key: &'static str,
    read: fn(&Sources) -> u64,
    /// How the internal metrics page shows it, if it does.
    exposed: Option<Exposed>,
    /// Growth is a loss to log as it happens.
    loss: Option<Loss>,
    /// Reported in the `totals` line at exit.
    in_totals: bool,
}

const fn counter(
    name: &'static str,
    help: &'static str,
    labels: &'static [(&'static str, &'static str)],
) -> Option<Exposed> {
    Some(Exposed { name, help, labels, kind: Kind::Counter })
}

const STAT_COUNT: usize = 30;

/// Rows of one page family (same name) must be next to each other.
static STATS: [Stat; STAT_COUNT] = [
    Stat {
        key: "kernel_events",
        read: |s| s.kernel.events,
        exposed: counter("obi_ebpf_events_total", "events written by the kernel side", &[]),
        loss: None,
        in_totals: true,
    },
    Stat {
        key: "ringbuf_full",
        read: |s| s.kernel.ringbuf_full,
        exposed: counter(
            "obi_ebpf_ringbuf_dropped_events_total",
            "events lost because a ring buffer was full",
            &[("ringbuf", "events")],
        ),
        loss: Some(Loss::KernelEvents),
        in_totals: true,
    },
    Stat {
        key: "proc_ringbuf_full",
        read: |s| s.kernel.proc_ringbuf_full,
        exposed: counter(
            "obi_ebpf_ringbuf_dropped_events_total",
            "events lost because a ring buffer was full",
            &[("ringbuf", "process_events")],
        ),
        loss: Some(Loss::KernelEvents),
        in_totals: false,
    },
    Stat {
        key: "conn_table_full",
        read: |s| s.kernel.conn_table_full,
        exposed: counter(
            "obi_ebpf_table_full_total",
            "kernel events not tracked because a kernel table was full",
            &[("table", "connections")],
        ),
        loss: Some(Loss::KernelEvents),
        in_totals: false,
    },
    Stat {
        key: "pending_full",
        read: |s| s.kernel.pending_full,
        exposed: counter(
            "obi_ebpf_table_full_total",
            "kernel events not tracked because a kernel table was full",
            &[("table", "pending_requests")],
        ),
        loss: Some(Loss::KernelEvents),
        in_totals: false,
    },
    Stat {
        key: "ignored_conns_full",
        read: |s| s.kernel.ignored_conns_full,
        exposed: counter(
            "obi_ebpf_table_full_total",
            "kernel events not tracked because a kernel table was full",
            &[("table", "ignored_connections")],
        ),
        loss: None,
        in_totals: false,
    },
    Stat {
        key: "kernel_ignored",
        read: |s| s.kernel.ignored,
        exposed: counter(
            "obi_ebpf_ignored_syscalls_total",
            "syscalls the kernel side skipped on connections user space ignores",
            &[],
        ),
        loss: None,
        in_totals: true,
    },
    Stat {
        key: "wakeups",
        read: |s| s.kernel.wakeups,
        exposed: counter(
            "obi_ebpf_wakeups_total",
            "times the kernel side woke the agent to read a backlog in its ring buffer",
            &[],
        ),
        loss: None,
        in_totals: true,
    },
    Stat {
        key: "events_read",
        read: |s| s.tracker.events,
        exposed: counter("obi_ebpf_events_read_total", "kernel events read and processed by user space", &[]),
        loss: None,
        in_totals: true,
    },
    Stat {
        key: "malformed_events",
        read: |s| s.tracker.malformed_events,
        exposed: counter("obi_malformed_events_total", "kernel events user space could not decode", &[]),
        loss: None,
        in_totals: false,
    },
    Stat {
        key: "spans",
        read: |s| s.tracker.spans,
        exposed: counter("obi_spans_total", "spans produced", &[]),
        loss: None,
        in_totals: true,
    },
    Stat {
        key: "spans_emitted",
        read: |s| s.counters.spans_emitted,
        exposed: counter("obi_spans_emitted_total", "spans handed to the exporters", &[]),
        loss: None,
        in_totals: true,
    },
    Stat {
        key: "parse_failures",
        read: |s| s.tracker.parse_failures,
        exposed: counter("obi_parse_failures_total", "messages that could not be parsed, of any protocol", &[]),
        loss: None,
        in_totals: true,
    },
    Stat {
        key: "ignored_conns",
        read: |s| s.tracker.ignored_conns,
        exposed: counter(
            "obi_ignored_connections_total",
            "connections ignored because their protocol is not supported",
            &[],
        ),
        loss: None,
        in_totals: true,
    },
    Stat {
        key: "orphan_responses",
        read: |s| s.tracker.orphan_responses,
        exposed: counter("obi_orphan_responses_total", "responses whose request was not seen", &[]),
        loss: None,
        in_totals: false,
    },
    Stat {
        key: "unanswered_requests",
        read: |s| s.tracker.unanswered_requests,
        exposed: counter("obi_unanswered_requests_total", "requests dropped without a response", &[]),
        loss: None,
        in_totals: false,
    },
    Stat {
        key: "unnamed_spans_dropped",
        read: |s| s.tracker.unnamed_spans_dropped,
        exposed: counter(
            "obi_unnamed_spans_dropped_total",
            "spans dropped because their process was never named by discovery",
            &[],
        ),
        loss: None,
        in_totals: true,
    },
    Stat {
        key: "h2_desynced_conns",
        read: |s| s.tracker.h2_desynced_conns,
        exposed: None,
        loss: None,
        in_totals: true,
    },
    Stat {
        key: "stream_parents_unused",
        read: |s| s.tracker.stream_parents_unused,
        exposed: None,
        loss: None,
        in_totals: true,
    },
    Stat {
        key: "mqtt_malformed_conns",
        read: |s| s.tracker.mqtt_malformed_conns,
        exposed: counter(
            "obi_mqtt_malformed_connections_total",
            "MQTT connections no longer parsed after a malformed packet or lost framing",
            &[],
        ),
        loss: None,
        in_totals: true,
    },
    Stat {
        key: "mqtt_unreadable_packets",
        read: |s| s.tracker.mqtt_unreadable_packets,
        exposed: counter(
            "obi_mqtt_unreadable_packets_total",
            "MQTT packets whose fields were not captured (no span)",
            &[],
        ),
        loss: None,
        in_totals: false,
    },
    Stat { key: "injected", read: |s| s.kernel.injected, exposed: None, loss: None, in_totals: true },
    Stat {
        key: "parent_hints_used",
        read: |s| s.kernel.hints_used,
        exposed: counter(
            "obi_parent_hints_total",
            "parent hints from runtimes (Node.js) by outcome",
            &[("outcome", "used")],
        ),
        loss: None,
        in_totals: true,
    },
    Stat {
        key: "parent_hints_ignored",
        read: |s| s.kernel.hints_ignored,
        exposed: counter(
            "obi_parent_hints_total",
            "parent hints from runtimes (Node.js) by outcome",
            &[("outcome", "ignored")],
        ),
        loss: None,
        in_totals: true,
    },
    Stat {
        key: "client_roots_event_loop",
        read: |s| s.kernel.root_multiplexed,
        exposed: counter(
            "obi_client_spans_without_parent_total",
            "client requests started as trace roots because the parent could not be known",
            &[("reason", "event_loop")],
        ),
        loss: None,
        in_totals: false,
    },
    Stat {
        key: "process_events_dropped",
        read: |s| s.counters.process_events_dropped,
        exposed: counter(
            "obi_process_events_dropped_total",
            "process events dropped because the discovery queue was full",
            &[],
        ),
        loss: Some(Loss::ProcessEvents),
        in_totals: false,
    },
    Stat {
        key: "spans_ignored",
        read: |s| s.counters.spans_ignored,
        exposed: counter("obi_ignored_spans_total", "spans dropped because they match routes.ignored_patterns", &[]),
        loss: None,
        in_totals: false,
    },
    Stat {
        key: "own_spans_dropped",
        read: |s| s.counters.own_spans_dropped,
        exposed: counter(
            "obi_own_spans_dropped_total",
            "server spans of the agent's own connections to Node.js inspectors, dropped",
            &[],
        ),
        loss: None,
        in_totals: true,
    },
    Stat {
        key: "series_expired",
        read: |s| s.recorder.map_or(0, |r| r.series_expired.load(Ordering::Relaxed)),
        exposed: counter("obi_metric_series_expired_total", "metric series removed after the TTL", &[]),
        loss: None,
        in_totals: false,
    },
    Stat {
        key: "active_conns",
        read: |s| s.tracker.active_conns,
        exposed: Some(Exposed {
            name: "obi_active_connections",
            help: "connections tracked by user space",
            labels: &[],
            kind: Kind::Gauge,
        }),
        loss: None,
        in_totals: false,
    },
];

type Values = [u64; STAT_COUNT];

fn read(sources: &Sources) -> Values {
    std::array::from_fn(|i| (STATS[i].read)(sources))
}

/// The counters the internal metrics page shows, in the order
/// [`Stats::report_and_publish`] publishes them.
pub(super) fn exposed() -> impl Iterator<Item = &'static Exposed> {
    STATS.iter().filter_map(|s| s.exposed.as_ref())
}

#[derive(Debug, Default)]
pub(super) struct Stats {
    pub(crate) counters: LoopCounters,
    /// Values at the last report (all zero before the first).
    reported: Values,
    /// Spans dropped per sink at the last report.
    sink_drops_reported: Vec<u64>,
}

impl Stats {
    /// Logs every loss since the last call (nothing is lost silently) and
    /// publishes the counters to the internal metrics page.
    pub(crate) fn report_and_publish(&mut self, tracer: &Tracer, tracker: &Tracker, exporters: &Exporters) {
        let now = read(&Sources {
            kernel: tracer.stats(),
            tracker: tracker.stats(),
            counters: &self.counters,
            recorder: exporters.recorder.as_deref(),
        });
        for ((stat, &now), &before) in STATS.iter().zip(&now).zip(&self.reported) {
            if let Some(loss) = stat.loss
                && now > before
            {
                loss.log(stat.key, now - before, now);
            }
        }
        self.reported = now;
        let shown = STATS.iter().zip(now).filter(|(s, _)| s.exposed.is_some()).map(|(_, v)| v);
        exporters.internal.publish(shown);
        self.report_sinks(exporters);
    }

    /// Sink counters stay cumulative (the internal metrics read them too);
    /// only their growth is logged.
    fn report_sinks(&mut self, exporters: &Exporters) {
        let sinks = exporters.fanout.stats();
        self.sink_drops_reported.resize(sinks.len(), 0);
        for (s, seen) in sinks.iter().zip(self.sink_drops_reported.iter_mut()) {
            let sent = s.sent_spans.load(Ordering::Relaxed);
            let dropped = s.dropped_spans.load(Ordering::Relaxed);
            exporters.internal.set_sink(s.name, SinkCounters { sent, dropped });
            if dropped > *seen {
                tracing::warn!(
                    component = "export",
                    sink = s.name,
                    lost = dropped - *seen,
                    total = dropped,
                    "spans dropped: exporter queue full"
                );
                *seen = dropped;
            }
        }
    }
}

/// The `totals` line logged at exit; `maps` describes the kernel maps.
pub(super) fn log_totals(sources: &Sources, maps: &str, otlp_traces: Option<&ExportStats>) {
    let values = read(sources);
    let v = |key: &str| {
        let row = STATS.iter().position(|s| s.key == key && s.in_totals);
        debug_assert!(row.is_some(), "{key} is not a totals row of STATS");
        row.map_or(0, |i| values[i])
    };
    tracing::info!(
        component = "obi.Instrumenter",
        kernel_events = v("kernel_events"),
        ringbuf_full = v("ringbuf_full"),
        kernel_ignored = v("kernel_ignored"),
        wakeups = v("wakeups"),
        events_read = v("events_read"),
        spans = v("spans"),
        spans_emitted = v("spans_emitted"),
        parse_failures = v("parse_failures"),
        ignored_conns = v("ignored_conns"),
        unnamed_spans_dropped = v("unnamed_spans_dropped"),
        h2_desynced_conns = v("h2_desynced_conns"),
        stream_parents_unused = v("stream_parents_unused"),
        mqtt_malformed_conns = v("mqtt_malformed_conns"),
        injected = v("injected"),
        parent_hints_used = v("parent_hints_used"),
        parent_hints_ignored = v("parent_hints_ignored"),
        own_spans_dropped = v("own_spans_dropped"),
        maps = %maps,
        otlp_traces = %otlp_traces.map(|s| s.to_string()).unwrap_or_else(|| "disabled".into()),
        "totals"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{LogFormat, LogLevel};
    use crate::logging::Captured;

    fn totals_line(sources: &Sources) -> String {
        let out = Captured::default();
        let subscriber = crate::logging::subscriber(LogLevel::Info, LogFormat::Text, out.clone());
        tracing::subscriber::with_default(subscriber, || log_totals(sources, "m", None));
        out.text()
    }

    #[test]
    fn totals_line_reports_exactly_the_rows_marked_for_it() {
        let tracker = TrackerStats { h2_desynced_conns: 2, ..Default::default() };
        let counters = LoopCounters::default();
        let kernel = KernelStats { events: 7, ..Default::default() };
        let line = totals_line(&Sources { kernel, tracker: &tracker, counters: &counters, recorder: None });
        let fields: Vec<&str> = line
            .split(' ')
            .filter_map(|kv| kv.split_once('=').map(|(k, _)| k))
            .filter(|k| !["time", "level", "msg", "component", "maps", "otlp_traces"].contains(k))
            .collect();
        let marked: Vec<&str> = STATS.iter().filter(|s| s.in_totals).map(|s| s.key).collect();
        assert_eq!(fields, marked, "{line}");
        assert!(line.contains(" kernel_events=7 ") && line.contains(" h2_desynced_conns=2 "), "{line}");
        assert!(line.contains("msg=totals component=obi.Instrumenter ") && line.ends_with("otlp_traces=disabled\n"));
    }

    #[test]
    fn keys_are_unique_and_families_contiguous() {
        for (i, a) in STATS.iter().enumerate() {
            assert!(STATS[i + 1..].iter().all(|b| b.key != a.key), "{} twice", a.key);
        }
        let names: Vec<&str> = exposed().map(|e| e.name).collect();
        for (i, n) in names.iter().enumerate() {
            let last = names.iter().rposition(|m| m == n).unwrap();
            assert!(names[i..=last].iter().all(|m| m == n), "{n} is split");
        }
    }
}
