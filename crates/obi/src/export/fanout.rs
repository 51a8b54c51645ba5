//! Hands each batch of spans to every sink through its own bounded queue.
//! A slow sink loses batches (counted and logged), never stalls the others
//! or the event loop.
//!
//! Sinks take traces (printer, OTLP traces) or metrics (the metrics store).
//! The routes decorator may keep a span out of one of the two
//! (`routes.ignored_patterns`): [`Fanout::send_routed`] honours its verdicts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;

use crate::span::Span;
use crate::transform::routes::Verdict;

pub(crate) type SpanBatch = Arc<Vec<Span>>;

/// Batches a sink may have queued before new ones are dropped.
pub(crate) const SINK_QUEUE_BATCHES: usize = 256;

pub(crate) struct SinkStats {
    pub(crate) name: &'static str,
    /// Spans dropped because this sink's queue was full.
    pub(crate) dropped_spans: AtomicU64,
    pub(crate) sent_spans: AtomicU64,
}

/// The signal a sink produces from spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    Traces,
    Metrics,
}

impl Signal {
    fn wants(self, verdict: Verdict) -> bool {
        match self {
            Signal::Traces => verdict.to_traces(),
            Signal::Metrics => verdict.to_metrics(),
        }
    }
}

struct Sink {
    tx: mpsc::Sender<SpanBatch>,
    signal: Signal,
    stats: Arc<SinkStats>,
}

impl Sink {
    fn offer(&self, batch: &SpanBatch) {
        let n = batch.len() as u64;
        match self.tx.try_send(batch.clone()) {
            Ok(()) => self.stats.sent_spans.fetch_add(n, Ordering::Relaxed),
            Err(_) => self.stats.dropped_spans.fetch_add(n, Ordering::Relaxed),
        };
    }
}

#[derive(Default)]
pub(crate) struct Fanout {
    sinks: Vec<Sink>,
}

impl Fanout {
    pub(crate) fn new() -> Self {
        Fanout { sinks: Vec::new() }
    }

    /// Registers a sink of `signal` and returns the receiving end of its queue.
    pub(crate) fn add_sink(
        &mut self,
        name: &'static str,
        signal: Signal,
    ) -> (mpsc::Receiver<SpanBatch>, Arc<SinkStats>) {
        let (tx, rx) = mpsc::channel(SINK_QUEUE_BATCHES);
        let stats = Arc::new(SinkStats { name, dropped_spans: AtomicU64::new(0), sent_spans: AtomicU64::new(0) });
        self.sinks.push(Sink { tx, signal, stats: stats.clone() });
        (rx, stats)
    }

    /// Offers a batch to every sink without waiting.
    pub(crate) fn send(&self, spans: Vec<Span>) {
        if spans.is_empty() || self.sinks.is_empty() {
            return;
        }
        let batch: SpanBatch = Arc::new(spans);
        for sink in &self.sinks {
            sink.offer(&batch);
        }
    }

    /// Offers each span to the sinks of the signals its verdict allows
    /// (`verdicts[i]` is the verdict of `spans[i]`).
    pub(crate) fn send_routed(&self, mut spans: Vec<Span>, verdicts: &[Verdict]) {
        debug_assert_eq!(spans.len(), verdicts.len());
        if verdicts.iter().all(|v| *v == Verdict::Keep) {
            return self.send(spans);
        }
        // Rare (ignored routes matched): the metrics side gets copies, the
        // traces side the spans themselves, both in their original order.
        let has = |signal: Signal| self.sinks.iter().any(|s| s.signal == signal);
        let metrics: SpanBatch = Arc::new(if has(Signal::Metrics) {
            spans.iter().zip(verdicts).filter(|(_, v)| Signal::Metrics.wants(**v)).map(|(s, _)| s.clone()).collect()
        } else {
            Vec::new()
        });
        let mut verdict = verdicts.iter();
        spans.retain(|_| verdict.next().is_some_and(|v| Signal::Traces.wants(*v)));
        let traces: SpanBatch = Arc::new(spans);
        for sink in &self.sinks {
            let batch = match sink.signal {
                Signal::Traces => &traces,
                Signal::Metrics => &metrics,
            };
            if !batch.is_empty() {
                sink.offer(batch);
            }
        }
    }

    pub(crate) fn stats(&self) -> Vec<Arc<SinkStats>> {
        self.sinks.iter().map(|s| s.stats.clone()).collect()
    }

    /// Closes every queue so sinks drain what they have and stop.
    pub(crate) fn close(&mut self) {
        self.sinks.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::Service;

    fn spans(n: usize) -> Vec<Span> {
        (0..n).map(|_| Span::process_alive(Arc::new(Service::default()), 0)).collect()
    }

    #[test]
    fn a_full_sink_drops_and_counts_without_blocking_others() {
        let mut f = Fanout::new();
        let (_slow_rx, slow) = f.add_sink("slow", Signal::Traces);
        let (mut fast_rx, fast) = f.add_sink("fast", Signal::Metrics);
        for _ in 0..SINK_QUEUE_BATCHES + 10 {
            f.send(spans(2));
            while fast_rx.try_recv().is_ok() {}
        }
        assert_eq!(slow.dropped_spans.load(Ordering::Relaxed), 20);
        assert_eq!(slow.sent_spans.load(Ordering::Relaxed), SINK_QUEUE_BATCHES as u64 * 2);
        assert_eq!(fast.dropped_spans.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn routed_spans_reach_only_the_signals_their_verdict_allows() {
        let mut f = Fanout::new();
        let (mut traces, _) = f.add_sink("traces", Signal::Traces);
        let (mut metrics, _) = f.add_sink("metrics", Signal::Metrics);
        let mut batch = spans(4);
        for (i, s) in batch.iter_mut().enumerate() {
            s.request_start_ns = i as u64;
        }
        use Verdict::*;
        f.send_routed(batch, &[Keep, MetricsOnly, TracesOnly, Drop]);
        let tids = |b: SpanBatch| b.iter().map(|s| s.request_start_ns).collect::<Vec<_>>();
        assert_eq!(tids(traces.try_recv().unwrap()), [0, 2]);
        assert_eq!(tids(metrics.try_recv().unwrap()), [0, 1]);
        // Nothing for a signal: no empty batch.
        f.send_routed(spans(1), &[MetricsOnly]);
        assert!(traces.try_recv().is_err());
        assert_eq!(metrics.try_recv().unwrap().len(), 1);
    }
}
