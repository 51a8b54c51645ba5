//! The OTLP traces sink: filters (instrumentations, sampler), converts and
//! batches spans, and exports the batches one at a time with retries.
//!
//! Memory is bounded: at most `queue_size` spans wait (in the open batch, in
//! sealed batches and in the batch being sent). While the endpoint is down
//! the current batch is retried with backoff and new spans beyond the queue
//! are dropped and counted; drops are logged at most every
//! [`DROP_LOG_INTERVAL`], and one "export recovered" line says when the
//! endpoint answers again. The task runs on the runtime's workers and reads
//! its input queue continuously, so the agent's event loop never waits on it.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span as OtlpSpan;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::backoff::Backoff;
use super::connect::TlsSetupError;
use super::convert;
use super::transport::{Encoded, ExportError, ExportOk, Transport};
use super::wire::BatchEncoder;
use crate::config::otlp::OtlpTracesSettings;
use crate::export::fanout::SpanBatch;
use crate::export::resource::HostInfo;
use crate::service::Service;
use crate::span::Span;

/// Drops are logged at most this often.
pub(crate) const DROP_LOG_INTERVAL: Duration = Duration::from_secs(10);

const COMPONENT: &str = "otel.TracesExporter";

/// Counters of the traces exporter. Once it has stopped, every span it
/// received is in exactly one of `filtered`, `sampled_out`, `exported` and
/// `dropped`, and `dropped` is the sum of its reasons.
#[derive(Debug, Default)]
pub(crate) struct ExportStats {
    /// Spans the receiver accepted.
    pub(crate) exported: AtomicU64,
    /// Spans lost, for any of the reasons below.
    pub(crate) dropped: AtomicU64,
    /// Export requests that failed for good.
    pub(crate) failed_requests: AtomicU64,
    /// Attempts repeated after a retryable failure.
    pub(crate) retries: AtomicU64,
    /// Spans not exported by the sampler.
    pub(crate) sampled_out: AtomicU64,
    /// Spans read from the exporter's input queue.
    pub(crate) received: AtomicU64,
    /// Spans of instrumentations not exported (and the agent's pseudo-spans).
    pub(crate) filtered: AtomicU64,
    /// Dropped: the export queue (`queue_size`) was full.
    pub(crate) dropped_queue_full: AtomicU64,
    /// Dropped: the receiver failed for good (permanent error, retries
    /// exhausted, or the batch could not be encoded).
    pub(crate) dropped_failed: AtomicU64,
    /// Dropped: the receiver answered and rejected them (partial success).
    pub(crate) dropped_rejected: AtomicU64,
    /// Dropped: not delivered when the shutdown deadline came (queued, or in
    /// a request the receiver had not answered).
    pub(crate) dropped_shutdown: AtomicU64,
}

/// Why spans were dropped.
#[derive(Debug, Clone, Copy)]
enum DropReason {
    QueueFull,
    Failed,
    Rejected,
    Shutdown,
}

impl ExportStats {
    fn drop_spans(&self, reason: DropReason, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
        let counter = match reason {
            DropReason::QueueFull => &self.dropped_queue_full,
            DropReason::Failed => &self.dropped_failed,
            DropReason::Rejected => &self.dropped_rejected,
            DropReason::Shutdown => &self.dropped_shutdown,
        };
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

impl fmt::Display for ExportStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        write!(
            f,
            "exported={} dropped={} failed_requests={} retries={} sampled_out={} received={} filtered={} \
             dropped_queue_full={} dropped_failed={} dropped_rejected={} dropped_shutdown={}",
            g(&self.exported),
            g(&self.dropped),
            g(&self.failed_requests),
            g(&self.retries),
            g(&self.sampled_out),
            g(&self.received),
            g(&self.filtered),
            g(&self.dropped_queue_full),
            g(&self.dropped_failed),
            g(&self.dropped_rejected),
            g(&self.dropped_shutdown),
        )
    }
}

/// Starts the exporter task reading `rx` until it closes and what it holds
/// is sent, or until `abandon` turns true: then every span not delivered
/// (still in `rx`, queued, or in a request not answered) is counted dropped
/// at once and the task ends. Needs a tokio runtime.
pub(crate) fn spawn(
    cfg: OtlpTracesSettings,
    host: HostInfo,
    rx: mpsc::Receiver<SpanBatch>,
    abandon: watch::Receiver<bool>,
) -> Result<(tokio::task::JoinHandle<()>, Arc<ExportStats>), TlsSetupError> {
    let transport = Transport::new(cfg.endpoint.clone())?;
    let stats = Arc::new(ExportStats::default());
    tracing::info!(
        component = COMPONENT,
        endpoint = %cfg.endpoint.url,
        protocol = cfg.endpoint.protocol.as_str(),
        instrumentations = %cfg.instrumentations.names(),
        sampler = %cfg.sampler.name(),
        "exporting traces"
    );
    let exporter = Exporter::new(cfg, transport, host, stats.clone());
    Ok((tokio::spawn(exporter.run(rx, abandon)), stats))
}

type Attempt = Pin<Box<dyn Future<Output = Result<ExportOk, ExportError>> + Send>>;

/// A sealed batch, already encoded: what waits in the queue and what every
/// retry resends.
struct Batch {
    request: Encoded<ExportTraceServiceRequest>,
    spans: usize,
}

/// The open batch: encoded as spans come for protobuf endpoints; for
/// `http/json`, the message tree serde writes.
enum OpenBatch {
    Protobuf(BatchEncoder),
    Json(Vec<(Arc<Service>, OtlpSpan)>),
}

impl OpenBatch {
    fn for_transport(transport: &Transport, capacity: usize) -> OpenBatch {
        if transport.sends_json() {
            OpenBatch::Json(Vec::with_capacity(capacity))
        } else {
            OpenBatch::Protobuf(BatchEncoder::default())
        }
    }

    /// OTLP spans in the batch.
    fn len(&self) -> usize {
        match self {
            OpenBatch::Protobuf(e) => e.len(),
            OpenBatch::Json(v) => v.len(),
        }
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn add(&mut self, span: &Span, trace: &crate::span::TraceContext) {
        match self {
            OpenBatch::Protobuf(e) => e.add(span, trace),
            OpenBatch::Json(v) => convert::to_otlp_spans(span, trace, &mut |otlp| v.push((span.service.clone(), otlp))),
        }
    }

    /// The request of the batch, which is then empty; a protobuf request is
    /// written into `buffer`.
    fn take_request(
        &mut self,
        host: &HostInfo,
        transport: &Transport,
        buffer: Vec<u8>,
    ) -> Result<Encoded<ExportTraceServiceRequest>, ExportError> {
        match self {
            OpenBatch::Protobuf(e) => Ok(Encoded::protobuf(e.finish(host, buffer))),
            OpenBatch::Json(v) => transport.encode(&convert::build_request(std::mem::take(v), host)),
        }
    }

    fn clear(&mut self) {
        match self {
            OpenBatch::Protobuf(e) => e.clear(),
            OpenBatch::Json(v) => v.clear(),
        }
    }
}

/// The largest buffer kept from one batch for the next.
const MAX_SPARE_BUFFER: usize = 8 << 20;

/// The batch being sent and its retry schedule.
struct Current {
    batch: Batch,
    backoff: Backoff,
    /// Set while waiting to retry.
    retry_at: Option<Instant>,
}

struct Exporter {
    cfg: OtlpTracesSettings,
    transport: Transport,
    host: HostInfo,
    stats: Arc<ExportStats>,
    /// The open batch.
    pending: OpenBatch,
    /// Spans behind `pending` (a server span that waited is three OTLP spans;
    /// queues and counters count spans, as the rest of the agent does).
    pending_spans: usize,
    /// When the open batch is sealed even if not full.
    batch_deadline: Option<Instant>,
    ready: VecDeque<Batch>,
    current: Option<Current>,
    /// Spans in `pending`, `ready` and `current`.
    queued: usize,
    closing: bool,
    /// Set from the first failure until the next success.
    failing_since: Option<Instant>,
    last_error: String,
    dropped_unlogged: u64,
    dropped_while_failing: u64,
    last_drop_log: Option<Instant>,
    /// The buffer of the last batch that ended, for the next one (see
    /// `BatchEncoder::finish`).
    spare_buffer: Vec<u8>,
}

impl Exporter {
    fn new(cfg: OtlpTracesSettings, transport: Transport, host: HostInfo, stats: Arc<ExportStats>) -> Self {
        Exporter {
            pending: OpenBatch::for_transport(&transport, cfg.batch_max_size.min(1024)),
            pending_spans: 0,
            cfg,
            transport,
            host,
            stats,
            batch_deadline: None,
            ready: VecDeque::new(),
            current: None,
            queued: 0,
            closing: false,
            failing_since: None,
            last_error: String::new(),
            dropped_unlogged: 0,
            dropped_while_failing: 0,
            last_drop_log: None,
            spare_buffer: Vec::new(),
        }
    }

    async fn run(mut self, mut rx: mpsc::Receiver<SpanBatch>, mut abandon: watch::Receiver<bool>) {
        let mut attempt: Option<Attempt> = None;
        // Until its sender is gone.
        let mut watching = true;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let retry_at = self.current.as_ref().and_then(|c| c.retry_at);
            tokio::select! {
                msg = rx.recv(), if !self.closing => match msg {
                    Some(batch) => self.accept(&batch),
                    None => self.close(),
                },
                res = async { attempt.as_mut().expect("guarded").await }, if attempt.is_some() => {
                    attempt = None;
                    self.on_result(res);
                }
                _ = tokio::time::sleep_until(retry_at.unwrap_or_else(Instant::now)), if retry_at.is_some() && attempt.is_none() => {
                    if let Some(c) = self.current.as_mut() {
                        c.retry_at = None;
                        attempt = Some(self.attempt());
                    }
                }
                _ = tokio::time::sleep_until(self.batch_deadline.unwrap_or_else(Instant::now)), if self.batch_deadline.is_some() => self.seal(),
                _ = tick.tick() => self.log_drops(false),
                r = abandon.wait_for(|a| *a), if watching => {
                    if r.is_err() {
                        watching = false;
                        continue;
                    }
                    drop(r);
                    // Dropping the attempt cancels the request.
                    drop(attempt.take());
                    self.abandon(&mut rx);
                    break;
                }
            }
            if attempt.is_none() && self.current.is_none() {
                if let Some(batch) = self.ready.pop_front() {
                    self.current = Some(Current { batch, backoff: Backoff::new(self.cfg.backoff), retry_at: None });
                    attempt = Some(self.attempt());
                } else if self.closing {
                    break;
                }
            }
        }
        self.log_drops(true);
        tracing::debug!(component = COMPONENT, stats = %self.stats, "traces exporter stopped");
    }

    /// One export attempt of the current batch.
    fn attempt(&self) -> Attempt {
        let request = self.current.as_ref().expect("a current batch").batch.request.clone();

        let transport = self.transport.clone();
        Box::pin(async move { transport.export_encoded(&request).await })
    }

    /// The trace context of `span` if it is to be exported; counts it
    /// (received, and filtered or sampled out) either way.
    fn admit(&self, span: &Span) -> Option<crate::span::TraceContext> {
        self.stats.received.fetch_add(1, Ordering::Relaxed);
        // Pseudo-spans have no instrumentation and are never exported.
        if !span.semantics().instrumentation().is_some_and(|i| self.cfg.instrumentations.includes(i)) {
            self.stats.filtered.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let trace = convert::complete_ids(&span.trace);
        if !self.cfg.sampler.should_sample(&trace) {
            self.stats.sampled_out.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(trace)
    }

    fn accept(&mut self, batch: &[Span]) {
        for span in batch {
            let Some(trace) = self.admit(span) else { continue };
            if self.queued >= self.cfg.queue_size {
                self.drop_spans(DropReason::QueueFull, 1);
                continue;
            }
            self.pending.add(span, &trace);
            self.pending_spans += 1;
            self.queued += 1;
            if self.pending.len() >= self.cfg.batch_max_size {
                self.seal();
            }
        }
        if !self.pending.is_empty() && self.batch_deadline.is_none() {
            self.batch_deadline = Some(Instant::now() + self.cfg.batch_timeout);
        }
    }

    /// Closes the open batch and queues it for sending.
    fn seal(&mut self) {
        self.batch_deadline = None;
        if self.pending.is_empty() {
            return;
        }
        let n = std::mem::take(&mut self.pending_spans);
        let buffer = std::mem::take(&mut self.spare_buffer);
        match self.pending.take_request(&self.host, &self.transport, buffer) {
            Ok(request) => self.ready.push_back(Batch { request, spans: n }),
            Err(e) => {
                tracing::warn!(component = COMPONENT, error = %e, spans = n, "cannot encode a batch; dropped");
                self.last_error = e.message;
                self.give_up(n);
            }
        }
    }

    /// The input closed (shutdown): send what is left, once, without
    /// waiting for retries.
    fn close(&mut self) {
        self.closing = true;
        self.seal();
        if let Some(c) = &self.current
            && c.retry_at.is_some()
        {
            let c = self.current.take().expect("checked");
            self.give_up(c.batch.spans);
        }
    }

    /// The shutdown deadline came: everything not delivered is dropped,
    /// including what is still in the input queue.
    fn abandon(&mut self, rx: &mut mpsc::Receiver<SpanBatch>) {
        rx.close();
        let mut unsent = 0u64;
        while let Ok(batch) = rx.try_recv() {
            unsent += batch.iter().filter(|s| self.admit(s).is_some()).count() as u64;
        }
        unsent += self.queued as u64;
        self.pending.clear();
        self.pending_spans = 0;
        self.ready.clear();
        self.current = None;
        self.queued = 0;
        if unsent > 0 {
            self.drop_spans(DropReason::Shutdown, unsent);
            tracing::warn!(
                component = COMPONENT,
                endpoint = %self.cfg.endpoint.url,
                spans = unsent,
                last_error = %self.last_error,
                "shutdown deadline reached: undelivered spans dropped"
            );
        }
    }

    fn on_result(&mut self, res: Result<ExportOk, ExportError>) {
        let Some(mut cur) = self.current.take() else { return };
        match res {
            Ok(ok) => {
                self.queued -= cur.batch.spans;
                let rejected = (ok.rejected.max(0) as usize).min(cur.batch.spans);
                self.stats.exported.fetch_add((cur.batch.spans - rejected) as u64, Ordering::Relaxed);
                if rejected > 0 || !ok.message.is_empty() {
                    self.stats.drop_spans(DropReason::Rejected, rejected as u64);
                    tracing::warn!(component = COMPONENT, rejected, message = %ok.message, "the receiver rejected spans");
                }
                if let Some(since) = self.failing_since.take() {
                    tracing::info!(
                        component = COMPONENT,
                        endpoint = %self.cfg.endpoint.url,
                        failing_for = %humantime::format_duration(Duration::from_secs(since.elapsed().as_secs())),
                        dropped = self.dropped_while_failing,
                        "export recovered"
                    );
                    self.dropped_while_failing = 0;
                }
            }
            Err(e) => {
                if self.failing_since.is_none() {
                    self.failing_since = Some(Instant::now());
                    tracing::warn!(
                        component = COMPONENT,
                        endpoint = %self.cfg.endpoint.url,
                        error = %e,
                        retryable = e.retryable,
                        "export failed"
                    );
                }
                self.last_error = e.message.clone();
                if e.retryable
                    && !self.closing
                    && let Some(delay) = cur.backoff.next_delay(e.retry_after)
                {
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(component = COMPONENT, error = %e, retry_in = ?delay, "export failed; retrying");
                    cur.retry_at = Some(Instant::now() + delay);
                    self.current = Some(cur);
                    return;
                }
                self.give_up(cur.batch.spans);
            }
        }
        self.keep_buffer(cur.batch.request);
    }

    /// Keeps the buffer of a batch that ended for the next batch, unless the
    /// batch used little of it (when the load drops, so does what is held).
    fn keep_buffer(&mut self, request: Encoded<ExportTraceServiceRequest>) {
        // Only protobuf batches are written into a given buffer.
        if !matches!(self.pending, OpenBatch::Protobuf(_)) {
            return;
        }
        if let Some(buffer) = request.into_buffer()
            && buffer.len() >= buffer.capacity() / 4
            && buffer.capacity() <= MAX_SPARE_BUFFER
        {
            self.spare_buffer = buffer;
        }
    }

    fn give_up(&mut self, spans: usize) {
        self.queued -= spans;
        self.stats.failed_requests.fetch_add(1, Ordering::Relaxed);
        self.drop_spans(DropReason::Failed, spans as u64);
    }

    fn drop_spans(&mut self, reason: DropReason, n: u64) {
        self.stats.drop_spans(reason, n);
        self.dropped_unlogged += n;
        if self.failing_since.is_some() {
            self.dropped_while_failing += n;
        }
    }

    /// Logs drops since the last report, at most every [`DROP_LOG_INTERVAL`]
    /// (`now`: regardless of the interval).
    fn log_drops(&mut self, now: bool) {
        if self.dropped_unlogged == 0 {
            return;
        }
        if !now && self.last_drop_log.is_some_and(|t| t.elapsed() < DROP_LOG_INTERVAL) {
            return;
        }
        tracing::warn!(
            component = COMPONENT,
            lost = self.dropped_unlogged,
            total = self.stats.dropped.load(Ordering::Relaxed),
            queue_size = self.cfg.queue_size,
            last_error = %self.last_error,
            "spans dropped: OTLP export queue full or endpoint failing"
        );
        self.dropped_unlogged = 0;
        self.last_drop_log = Some(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::instrumentations::Instrumentations;
    use crate::config::otlp::{BackoffConfig, OtlpEndpoint, Protocol, Sampler, Signal};
    use crate::span::fixtures::{self, Shape};

    #[test]
    fn only_enabled_instrumentations_are_exported() {
        let parse = |v: &str| Instrumentations::parse(v.split(',')).unwrap();
        assert!(parse("*").includes("http") && parse("*").includes("grpc"));
        assert!(parse(" grpc , sql").includes("grpc") && !parse(" grpc , sql").includes("http"));
        assert!(!parse("").includes("http"));
    }

    /// An HTTP receiver whose answer can be switched; counts the spans of
    /// the requests it accepted (status 200).
    struct Receiver {
        port: u16,
        status: Arc<std::sync::atomic::AtomicU16>,
        spans: Arc<AtomicU64>,
    }

    async fn receiver() -> Receiver {
        use http_body_util::{BodyExt, Full};
        use prost::Message;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let status = Arc::new(std::sync::atomic::AtomicU16::new(503));
        let spans = Arc::new(AtomicU64::new(0));
        let (st, sp) = (status.clone(), spans.clone());
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let (st, sp) = (st.clone(), sp.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let (st, sp) = (st.clone(), sp.clone());
                        async move {
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let code = st.load(Ordering::SeqCst);
                            if code == 200 {
                                let r = ExportTraceServiceRequest::decode(body).unwrap();
                                let n: usize = r
                                    .resource_spans
                                    .iter()
                                    .flat_map(|rs| &rs.scope_spans)
                                    .map(|ss| ss.spans.len())
                                    .sum();
                                sp.fetch_add(n as u64, Ordering::SeqCst);
                            }
                            let resp =
                                http::Response::builder().status(code).body(Full::new(bytes::Bytes::new())).unwrap();
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    });
                    let io = hyper_util::rt::TokioIo::new(sock);
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, svc).await;
                });
            }
        });
        Receiver { port, status, spans }
    }

    /// A span of `shape`, or the ProcessAlive pseudo-span for `None`.
    fn span(shape: Option<Shape>, n: u8) -> Span {
        let svc = Arc::new(Service { name: "svc".into(), pid: 1, ..Default::default() });
        let mut s = match shape {
            Some(shape) => fixtures::span(shape, svc, "", 200, 1),
            None => Span::process_alive(svc, 1),
        };
        s.trace = crate::span::TraceContext { trace_id: [n; 16], span_id: [n; 8], parent_span_id: [0; 8], flags: 1 };
        s
    }

    async fn wait_for(what: &str, f: impl Fn() -> bool) {
        for _ in 0..500 {
            if f() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out waiting for {what}");
    }

    #[tokio::test]
    async fn queue_is_bounded_while_down_and_drains_after_recovery() {
        let rx = receiver().await;
        let endpoint = OtlpEndpoint {
            signal: Signal::Traces,
            protocol: Protocol::HttpProtobuf,
            url: format!("http://127.0.0.1:{}/v1/traces", rx.port).parse().unwrap(),
            tls: None,
            headers: http::HeaderMap::new(),
            timeout: Duration::from_secs(2),
        };
        let cfg = OtlpTracesSettings {
            endpoint,
            instrumentations: Instrumentations::ALL,
            sampler: Sampler::default(),
            batch_max_size: 5,
            queue_size: 10,
            batch_timeout: Duration::from_millis(20),
            backoff: BackoffConfig {
                initial: Duration::from_millis(20),
                max: Duration::from_millis(50),
                max_elapsed: Duration::ZERO,
            },
        };
        let (tx, input) = mpsc::channel(16);
        let (_keep, abandon) = watch::channel(false);
        let (task, stats) = spawn(cfg, HostInfo::default(), input, abandon).unwrap();
        // 30 HTTP spans (and a pseudo-span, never exported) while the receiver answers 503.
        let mut batch: Vec<Span> = (1..=30).map(|n| span(Some(Shape::HttpServer), n)).collect();
        batch.push(span(None, 0));
        tx.send(Arc::new(batch)).await.unwrap();
        wait_for("retries", || stats.retries.load(Ordering::Relaxed) >= 3).await;
        assert_eq!(stats.dropped.load(Ordering::Relaxed), 20, "only the queue (10 spans) is kept");
        assert_eq!(stats.exported.load(Ordering::Relaxed), 0);
        // More spans while the queue is full are dropped too.
        tx.send(Arc::new(vec![span(Some(Shape::HttpClient), 31)])).await.unwrap();
        wait_for("the drop", || stats.dropped.load(Ordering::Relaxed) == 21).await;

        rx.status.store(200, Ordering::SeqCst);
        wait_for("recovery", || stats.exported.load(Ordering::Relaxed) == 10).await;
        assert_eq!(rx.spans.load(Ordering::SeqCst), 10);
        // New spans flow again; closing the input flushes the open batch.
        tx.send(Arc::new(vec![span(Some(Shape::GrpcServer), 40), span(Some(Shape::HttpClient), 41)])).await.unwrap();
        drop(tx);
        tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap();
        assert_eq!(stats.exported.load(Ordering::Relaxed), 12);
        assert_eq!(rx.spans.load(Ordering::SeqCst), 12);
        assert_eq!(stats.dropped.load(Ordering::Relaxed), 21);
        assert_eq!(stats.failed_requests.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn permanent_errors_drop_the_batch_without_retrying() {
        let rx = receiver().await;
        rx.status.store(400, Ordering::SeqCst);
        let endpoint = format!("http://127.0.0.1:{}", rx.port);
        let env = |k: &str| (k == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| endpoint.clone());
        let mut cfg = crate::config::load_unvalidated(&Default::default(), &env).unwrap().export.otlp_traces.unwrap();
        cfg.batch_timeout = Duration::from_millis(10);
        let (tx, input) = mpsc::channel(16);
        let (_keep, abandon) = watch::channel(false);
        let (task, stats) = spawn(cfg, HostInfo::default(), input, abandon).unwrap();
        tx.send(Arc::new(vec![span(Some(Shape::HttpServer), 1), span(Some(Shape::HttpServer), 2)])).await.unwrap();
        wait_for("the failure", || stats.failed_requests.load(Ordering::Relaxed) == 1).await;
        assert_eq!(stats.dropped.load(Ordering::Relaxed), 2);
        assert_eq!(stats.retries.load(Ordering::Relaxed), 0);
        drop(tx);
        tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap();
    }

    /// A receiver that accepts connections and never answers: at the
    /// deadline the exporter stops at once and every span it received is
    /// counted, the one in the unanswered request and the queued ones as
    /// dropped at shutdown.
    #[tokio::test]
    async fn abandon_counts_every_undelivered_span() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((sock, _)) = listener.accept().await {
                held.push(sock);
            }
        });
        let env = |k: &str| (k == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| format!("http://127.0.0.1:{port}"));
        let mut cfg = crate::config::load_unvalidated(&Default::default(), &env).unwrap().export.otlp_traces.unwrap();
        cfg.batch_timeout = Duration::from_millis(10);
        cfg.batch_max_size = 4;
        let (tx, input) = mpsc::channel(16);
        let (abandon_tx, abandon) = watch::channel(false);
        let (task, stats) = spawn(cfg, HostInfo::default(), input, abandon).unwrap();
        // 10 spans and a pseudo-span; then 3 more the exporter has not read.
        let mut batch: Vec<Span> = (1..=10).map(|n| span(Some(Shape::HttpServer), n)).collect();
        batch.push(span(None, 0));
        tx.send(Arc::new(batch)).await.unwrap();
        wait_for("the first batch", || stats.received.load(Ordering::Relaxed) == 11).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let late: Vec<Span> = (11..=13).map(|n| span(Some(Shape::HttpClient), n)).collect();
        let late = Arc::new(late);
        // The exporter may read it before the deadline or not: counted either way.
        tx.send(late).await.unwrap();
        drop(tx);
        let started = std::time::Instant::now();
        abandon_tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_millis(500), task).await.expect("stops at once").unwrap();
        assert!(started.elapsed() < Duration::from_millis(500));
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        assert_eq!(g(&stats.received), 14, "{stats}");
        assert_eq!(g(&stats.filtered), 1, "{stats}");
        assert_eq!(g(&stats.exported), 0, "{stats}");
        assert_eq!(g(&stats.dropped_shutdown), 13, "{stats}");
        assert_eq!(g(&stats.dropped), 13, "{stats}");
    }
}
