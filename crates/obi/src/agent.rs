//! The running agent: wires discovery, the kernel side, the tracker and the
//! exporters together on one tokio runtime, and shuts them down cleanly.

use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::sync::{mpsc, watch};

use crate::clock::{self, Clock};
use crate::config::metrics::InternalExporter;
use crate::config::{Config, TracePrinter};
use crate::discover::{self, DiscoveryEvent, Trigger};
use crate::ebpf::ring::Ring;
use crate::ebpf::{KernelStats, LoadOptions, Tracer, abi};
use crate::export::fanout::Fanout;
use crate::export::metrics::internal::{InternalMetrics, SinkCounters};
use crate::export::metrics::{MetricsStore, prom};
use crate::export::otlp::{self, convert::HostInfo};
use crate::export::printer;
use crate::preflight;
use crate::span::Span;
use crate::tracker::Tracker;
use crate::transform::routes::{RouteDecorator, Verdict};

/// How often counters are checked for new drops and housekeeping runs.
const HOUSEKEEPING: Duration = Duration::from_secs(1);

pub async fn run(cfg: Config) -> Result<()> {
    let cfg = Arc::new(cfg);
    let checks = preflight::run(&preflight::Needs::from_config(&cfg));
    let failures = preflight::failures(&checks);
    if !failures.is_empty() {
        for f in &failures {
            tracing::error!(component = "obi.Preflight", "{f}");
        }
        bail!("this machine cannot run obi-rs: {}", failures.join("; "));
    }
    preflight::ensure_tracefs().context("tracefs is needed to attach tracepoints")?;

    if cfg.ebpf.context_propagation.wants_tcp_options() {
        tracing::warn!(
            component = "obi.Instrumenter",
            context_propagation = cfg.ebpf.context_propagation.as_str(),
            "context propagation through TCP options is not implemented in obi-rs; only HTTP headers are injected"
        );
    }
    let hostname = hostname(&cfg);
    let self_pid = std::process::id();
    let matcher = discover::criteria::Matcher::new(&cfg, self_pid);
    let needs_ports = matcher.needs_ports();
    let mut tracer = Tracer::load(&LoadOptions::from_config(&cfg, matcher.needs_exec_events()))
        .context("Unable to load eBPF programs")?;
    let mut events = Ring::new(tracer.take_events()?)?;
    let mut proc_events = Ring::new(tracer.take_proc_events()?)?;
    release_freed_heap();

    let mut fanout = Fanout::new();
    let mut sink_threads = Vec::new();
    if let Some(format) = printer_format(cfg.trace_printer) {
        let (rx, _) = fanout.add_sink("trace_printer");
        sink_threads.push(printer::spawn_printer(format, rx));
    }
    let mut sink_tasks = Vec::new();
    let mut otlp_traces_stats = None;
    if let Some(traces) = &cfg.export.otlp_traces {
        let (rx, _) = fanout.add_sink("otlp_traces");
        let (task, stats) = otlp::traces::spawn(traces.clone(), HostInfo::detect(&hostname), rx)
            .map_err(|e| anyhow::anyhow!("cannot start the OTLP traces exporter: {e}"))?;
        sink_tasks.push(task);
        otlp_traces_stats = Some(stats);
    }

    let (trigger_tx, trigger_rx) = mpsc::channel::<Trigger>(4096);
    let (disc_tx, mut disc_rx) = mpsc::channel::<DiscoveryEvent>(4096);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);

    let internal = Arc::new(InternalMetrics::default());
    let mut routes = RouteDecorator::new(&cfg.metrics.routes);
    let otlp_metrics = cfg.export.otlp_metrics.clone();
    // One store for both metrics exporters, kept for the longer TTL; each
    // exporter skips series older than its own.
    let store_ttl = [cfg.export.prometheus_port.map(|_| cfg.metrics.ttl), otlp_metrics.as_ref().map(|o| o.ttl)]
        .into_iter()
        .flatten()
        .max();
    let store = store_ttl.map(|ttl| Arc::new(Mutex::new(MetricsStore::with_ttl(&cfg.metrics, ttl))));
    let host_info = Arc::new(prom::HostInfo::detect(&hostname));
    let mut servers =
        start_metrics_endpoints(&cfg, host_info.clone(), store.clone(), internal.clone(), shutdown_rx.clone()).await?;
    if let (Some(settings), Some(store)) = (otlp_metrics, &store) {
        servers.push(crate::export::metrics::otlp::spawn_exporter(
            settings,
            store.clone(),
            host_info.clone(),
            internal.clone(),
            shutdown_rx.clone(),
        )?);
    }
    let discovery =
        tokio::spawn(discover::run(cfg.clone(), self_pid, hostname.clone(), trigger_rx, disc_tx, shutdown_rx.clone()));

    let mut clock = Clock::new();
    let mut tracker = Tracker::new(clock, cfg.ebpf.http_request_timeout.as_nanos() as u64);
    let mut signals = Signals::new()?;
    let tick = cfg.ebpf.batch_timeout.max(Duration::from_millis(1));
    let mut last_housekeeping = Instant::now();
    let mut reported = KernelStats::default();
    let mut trigger_drops = 0u64;
    let mut counted = 0u64;
    let mut tls_loaded: Vec<u32> = Vec::new();
    let mut forgotten: Vec<u32> = Vec::new();
    let mut verdicts: Vec<Verdict> = Vec::new();
    let mut sink_counters: Vec<SinkCounters> = Vec::new();

    tracing::info!(component = "obi.Instrumenter", version = env!("CARGO_PKG_VERSION"), "obi-rs started");
    loop {
        tokio::select! {
            _ = events.wait(tick) => {}
            _ = proc_events.wait(tick) => {}
            Some(ev) = disc_rx.recv() => on_discovery(ev, &mut tracer, &mut tracker, &fanout, &clock, &mut forgotten, &mut tls_loaded, &internal),
            sig = signals.recv() => {
                tracing::info!(component = "obi.Instrumenter", signal = sig, "shutting down");
                break;
            }
        }
        while let Ok(ev) = disc_rx.try_recv() {
            on_discovery(ev, &mut tracer, &mut tracker, &fanout, &clock, &mut forgotten, &mut tls_loaded, &internal);
        }
        proc_events.drain(|rec| {
            if let Some(ev) = abi::ProcEvent::read(rec)
                && ev.kind == abi::PEV_TLS_LIB
            {
                tls_loaded.push(ev.pid);
                return;
            }
            let Some(t) = to_trigger(rec) else { return };
            // New listeners matter only to port selectors.
            if matches!(t, Trigger::ProcessListen(_)) && !needs_ports {
                return;
            }
            if trigger_tx.try_send(t).is_err() {
                trigger_drops += 1;
            }
        });
        // The kernel reports libssl mappings only for traced processes,
        // including ones traced provisionally since exec and not yet named:
        // probing them now, not after discovery, catches their first request.
        for pid in tls_loaded.drain(..) {
            attach_tls(&mut tracer, pid);
        }
        events.drain(|rec| tracker.handle_record(rec));
        // A process's last events are in the ring before its exit reaches us:
        // forget it only once they are processed.
        for pid in forgotten.drain(..) {
            forget(pid, &mut tracer, &mut tracker);
        }
        for conn in tracker.take_ignored() {
            tracer.ignore_conn(conn);
        }
        let mut spans = tracker.take_spans();
        counted += spans.len() as u64;
        decorate_and_record(&mut spans, &mut routes, &mut verdicts, store.as_deref(), &clock, &internal);
        fanout.send(spans);

        if last_housekeeping.elapsed() >= HOUSEKEEPING {
            last_housekeeping = Instant::now();
            clock.resync();
            tracker.tick(clock::monotonic_ns());
            reported = report_drops(&tracer, reported, &fanout, trigger_drops, &mut sink_counters);
            publish_internal(&internal, &tracer, &tracker, trigger_drops, &fanout, store.as_deref());
        }
    }

    let k = tracer.stats();
    let maps = tracer.map_sizes();
    // Shutdown: stop discovery, detach the kernel side, let sinks drain.
    let _ = shutdown_tx.send(true);
    let _ = tokio::time::timeout(cfg.shutdown_timeout, discovery).await;
    // Scrape endpoints stop; the OTLP metrics exporter sends a last export.
    for s in servers {
        let _ = tokio::time::timeout(cfg.shutdown_timeout, s).await;
    }
    drop(tracer);
    fanout.close();
    let deadline = Instant::now() + cfg.shutdown_timeout;
    for t in sink_threads {
        while !t.is_finished() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    for t in sink_tasks {
        let _ = tokio::time::timeout_at(deadline.into(), t).await;
    }
    // After the sinks drained, so that exporter counts are final.
    tracing::info!(
        component = "obi.Instrumenter",
        kernel_events = k.events,
        ringbuf_full = k.ringbuf_full,
        events_read = tracker.stats.events,
        spans = tracker.stats.spans,
        parse_failures = tracker.stats.parse_failures,
        ignored_conns = tracker.stats.ignored_conns,
        unnamed_spans_dropped = tracker.stats.unnamed_spans_dropped,
        h2_desynced_conns = tracker.stats.h2_desynced_conns,
        injected = k.injected,
        maps = %maps,
        otlp_traces = %otlp_traces_stats.map(|s| s.to_string()).unwrap_or_else(|| "disabled".into()),
        "totals"
    );
    if cfg.trace_printer == TracePrinter::Counter {
        println!("Processed {counted} requests");
    }
    tracing::info!(component = "obi.Instrumenter", "stopped");
    Ok(())
}

fn printer_format(p: TracePrinter) -> Option<printer::PrinterFormat> {
    match p {
        TracePrinter::Text => Some(printer::PrinterFormat::Text),
        TracePrinter::Json => Some(printer::PrinterFormat::Json),
        TracePrinter::JsonIndent => Some(printer::PrinterFormat::JsonIndent),
        TracePrinter::Disabled | TracePrinter::Counter => None,
    }
}

/// Sets routes, feeds the metrics store, and removes the spans that must
/// not reach the trace sinks (`routes.ignored_patterns`).
fn decorate_and_record(
    spans: &mut Vec<Span>,
    routes: &mut RouteDecorator,
    verdicts: &mut Vec<Verdict>,
    store: Option<&Mutex<MetricsStore>>,
    clock: &Clock,
    internal: &InternalMetrics,
) {
    if spans.is_empty() {
        return;
    }
    verdicts.clear();
    verdicts.extend(spans.iter_mut().map(|s| routes.decorate(s)));
    if let Some(store) = store {
        let (now, wall) = (clock::monotonic_ns(), clock.now_wall());
        let mut store = store.lock().unwrap_or_else(|e| e.into_inner());
        for (s, v) in spans.iter().zip(verdicts.iter()) {
            if v.to_metrics() {
                store.record(s, now, wall);
            }
        }
    }
    let ignored = verdicts.iter().filter(|v| **v != Verdict::Keep).count();
    if ignored > 0 {
        internal.spans_ignored.add(ignored as u64);
        let mut i = 0;
        spans.retain(|_| {
            i += 1;
            verdicts[i - 1].to_traces()
        });
    }
}

/// Opens the Prometheus endpoints: application metrics on
/// `prometheus_export.port`, internal metrics on their port (the same
/// server when the ports are equal).
async fn start_metrics_endpoints(
    cfg: &Config,
    host: Arc<prom::HostInfo>,
    store: Option<Arc<Mutex<MetricsStore>>>,
    internal: Arc<InternalMetrics>,
    shutdown: watch::Receiver<bool>,
) -> Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut by_port: Vec<(u16, Vec<(String, prom::Page)>)> = Vec::new();
    let mut add = |port: u16, path: &str, page: prom::Page| match by_port.iter_mut().find(|(p, _)| *p == port) {
        Some((_, pages)) => pages.push((path.to_string(), page)),
        None => by_port.push((port, vec![(path.to_string(), page)])),
    };
    if let (Some(port), Some(store)) = (cfg.export.prometheus_port, store) {
        add(
            port,
            &cfg.metrics.prometheus_path,
            prom::Page::Application { store, host, opts: prom::PromOptions::from_config(&cfg.metrics) },
        );
    }
    if cfg.metrics.internal_exporter == InternalExporter::Prometheus
        && let Some(port) = cfg.metrics.internal_port.or(cfg.export.prometheus_port)
    {
        add(port, &cfg.metrics.internal_path, prom::Page::Internal(internal.clone()));
    }
    let mut handles = Vec::new();
    for (port, pages) in by_port {
        let listener = prom::bind(port).await?;
        for (path, _) in &pages {
            tracing::info!(component = "prom.Exporter", port, path = %path, "opening prometheus scrape endpoint");
        }
        handles.push(prom::spawn_server(listener, port, pages, internal.clone(), shutdown.clone()));
    }
    Ok(handles)
}

/// Copies the agent's counters where the internal metrics endpoint reads
/// them, and applies the metrics TTL.
fn publish_internal(
    internal: &InternalMetrics,
    tracer: &Tracer,
    tracker: &Tracker,
    trigger_drops: u64,
    fanout: &Fanout,
    store: Option<&Mutex<MetricsStore>>,
) {
    let k = tracer.stats();
    internal.kernel_events.set(k.events);
    internal.ringbuf_full.set(k.ringbuf_full);
    internal.proc_ringbuf_full.set(k.proc_ringbuf_full);
    internal.conn_table_full.set(k.conn_table_full);
    internal.pending_full.set(k.pending_full);
    let t = &tracker.stats;
    internal.events_read.set(t.events);
    internal.malformed_events.set(t.malformed_events);
    internal.parse_failures.set(t.parse_failures);
    internal.spans.set(t.spans);
    internal.ignored_conns.set(t.ignored_conns);
    internal.orphan_responses.set(t.orphan_responses);
    internal.unanswered_requests.set(t.unanswered_requests);
    internal.unnamed_spans_dropped.set(t.unnamed_spans_dropped);
    internal.active_conns.set(t.active_conns);
    internal.process_events_dropped.set(trigger_drops);
    for s in fanout.stats() {
        internal.set_sink(
            s.name,
            SinkCounters {
                sent: s.sent_spans.load(std::sync::atomic::Ordering::Relaxed),
                dropped: s.dropped_spans.load(std::sync::atomic::Ordering::Relaxed),
            },
        );
    }
    if let Some(store) = store {
        let mut store = store.lock().unwrap_or_else(|e| e.into_inner());
        let expired = store.expire(clock::monotonic_ns());
        internal.series_expired.add(expired as u64);
        internal.set_sink("metrics", SinkCounters { sent: store.recorded, dropped: 0 });
    }
}

#[allow(clippy::too_many_arguments)]
fn on_discovery(
    ev: DiscoveryEvent,
    tracer: &mut Tracer,
    tracker: &mut Tracker,
    fanout: &Fanout,
    clock: &Clock,
    forgotten: &mut Vec<u32>,
    tls_pending: &mut Vec<u32>,
    internal: &InternalMetrics,
) {
    match ev {
        DiscoveryEvent::Instrument(svc) => {
            // Forget-then-instrument (an exec): the old identity goes, but the
            // pid stays in the kernel filter so nothing it does meanwhile
            // (like mapping libssl) is missed.
            if let Some(i) = forgotten.iter().position(|&p| p == svc.pid) {
                forgotten.swap_remove(i);
                tracer.reset_tls(svc.pid);
                tracker.remove_service(svc.pid);
            }
            if let Err(err) = tracer.trace_pid(svc.pid) {
                tracing::warn!(component = "ebpf.Tracer", pid = svc.pid, error = %format!("{:#}", anyhow::Error::new(err)), "cannot trace process");
                return;
            }
            discover::log_instrumenting(&svc);
            let exe = svc.exe_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            internal.process_instrumented(svc.pid, &exe);
            tracker.add_service(svc.clone());
            // Slow (ELF symbols, uprobe attach): after every pending process
            // is in the kernel filter, so none misses its first requests.
            tls_pending.push(svc.pid);
            fanout.send(vec![Span::process_alive(svc, clock.now_wall())]);
        }
        DiscoveryEvent::Forget { pid } | DiscoveryEvent::Reject { pid } => {
            internal.process_forgotten(pid);
            forgotten.push(pid);
        }
    }
}

fn forget(pid: u32, tracer: &mut Tracer, tracker: &mut Tracker) {
    tracer.untrace_pid(pid);
    tracker.remove_service(pid);
}

fn attach_tls(tracer: &mut Tracer, pid: u32) {
    match tracer.trace_tls(pid) {
        Ok(files) if !files.is_empty() => tracing::info!(
            component = "ebpf.TLS",
            pid,
            files = %files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(","),
            "tracing TLS plaintext through OpenSSL uprobes"
        ),
        Ok(_) => {}
        Err(err) => tracing::warn!(
            component = "ebpf.TLS",
            pid,
            error = %format!("{:#}", anyhow::Error::new(err)),
            "cannot trace TLS of this process; its HTTPS traffic will not be seen"
        ),
    }
}

fn to_trigger(rec: &[u8]) -> Option<Trigger> {
    let ev = abi::ProcEvent::read(rec)?;
    Some(match ev.kind {
        abi::PEV_EXEC => {
            let exec = abi::ExecEvent::read(rec);
            Trigger::ProcessExec(discover::ExecInfo {
                pid: ev.pid,
                ppid: ev.ppid,
                path: exec.map(|e| std::path::PathBuf::from(std::ffi::OsStr::from_bytes(e.path()))).unwrap_or_default(),
                args: exec.map(|e| e.args()).unwrap_or_default(),
            })
        }
        abi::PEV_LISTEN => Trigger::ProcessListen(ev.pid),
        abi::PEV_FORK => Trigger::ProcessFork { pid: ev.pid, parent: ev.ppid },
        abi::PEV_EXIT => Trigger::ProcessExit(ev.pid),
        _ => return None,
    })
}

/// Logs every counter that grew since the last report: nothing is lost silently.
fn report_drops(
    tracer: &Tracer,
    last: KernelStats,
    fanout: &Fanout,
    trigger_drops: u64,
    sinks_seen: &mut Vec<SinkCounters>,
) -> KernelStats {
    let now = tracer.stats();
    let grew = |name: &str, before: u64, after: u64| {
        if after > before {
            tracing::warn!(
                component = "ebpf.Tracer",
                counter = name,
                lost = after - before,
                total = after,
                "events lost"
            );
        }
    };
    grew("ringbuf_full", last.ringbuf_full, now.ringbuf_full);
    grew("proc_ringbuf_full", last.proc_ringbuf_full, now.proc_ringbuf_full);
    grew("conn_table_full", last.conn_table_full, now.conn_table_full);
    grew("pending_full", last.pending_full, now.pending_full);
    // The counters stay cumulative (the internal metrics read them too).
    let stats = fanout.stats();
    sinks_seen.resize(stats.len(), SinkCounters::default());
    for (s, seen) in stats.iter().zip(sinks_seen.iter_mut()) {
        let total = s.dropped_spans.load(std::sync::atomic::Ordering::Relaxed);
        if total > seen.dropped {
            tracing::warn!(
                component = "export",
                sink = s.name,
                lost = total - seen.dropped,
                total,
                "spans dropped: exporter queue full"
            );
            seen.dropped = total;
        }
    }
    if trigger_drops > 0 {
        tracing::debug!(component = "discover", lost = trigger_drops, "process events dropped");
    }
    now
}

fn hostname(cfg: &Config) -> String {
    if let Some(h) = &cfg.hostname {
        return h.clone();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default()
}

/// SIGINT and SIGTERM.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals { int: signal(SignalKind::interrupt())?, term: signal(SignalKind::terminate())? })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
        }
    }
}

/// Loading parsed the kernel's BTF and relocated every program: megabytes
/// that are freed by now but that glibc keeps mapped. Hand them back so the
/// agent's resident size is what it actually uses.
fn release_freed_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free heap pages; no pointer is involved.
    unsafe {
        libc::malloc_trim(0);
    }
}
