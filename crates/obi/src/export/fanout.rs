//! Hands each batch of spans to every sink through its own bounded queue.
//! A slow sink loses batches (counted and logged), never stalls the others
//! or the event loop.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;

use crate::span::Span;

pub type SpanBatch = Arc<Vec<Span>>;

/// Batches a sink may have queued before new ones are dropped.
pub const SINK_QUEUE_BATCHES: usize = 256;

pub struct SinkStats {
    pub name: &'static str,
    /// Spans dropped because this sink's queue was full.
    pub dropped_spans: AtomicU64,
    pub sent_spans: AtomicU64,
}

struct Sink {
    tx: mpsc::Sender<SpanBatch>,
    stats: Arc<SinkStats>,
}

#[derive(Default)]
pub struct Fanout {
    sinks: Vec<Sink>,
}

impl Fanout {
    pub fn new() -> Self {
        Fanout { sinks: Vec::new() }
    }

    /// Registers a sink and returns the receiving end of its queue.
    pub fn add_sink(&mut self, name: &'static str) -> (mpsc::Receiver<SpanBatch>, Arc<SinkStats>) {
        let (tx, rx) = mpsc::channel(SINK_QUEUE_BATCHES);
        let stats = Arc::new(SinkStats { name, dropped_spans: AtomicU64::new(0), sent_spans: AtomicU64::new(0) });
        self.sinks.push(Sink { tx, stats: stats.clone() });
        (rx, stats)
    }

    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty()
    }

    /// Offers a batch to every sink without waiting.
    pub fn send(&self, spans: Vec<Span>) {
        if spans.is_empty() || self.sinks.is_empty() {
            return;
        }
        let n = spans.len() as u64;
        let batch: SpanBatch = Arc::new(spans);
        for sink in &self.sinks {
            match sink.tx.try_send(batch.clone()) {
                Ok(()) => sink.stats.sent_spans.fetch_add(n, Ordering::Relaxed),
                Err(_) => sink.stats.dropped_spans.fetch_add(n, Ordering::Relaxed),
            };
        }
    }

    pub fn stats(&self) -> Vec<Arc<SinkStats>> {
        self.sinks.iter().map(|s| s.stats.clone()).collect()
    }

    /// Closes every queue so sinks drain what they have and stop.
    pub fn close(&mut self) {
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
        let (_slow_rx, slow) = f.add_sink("slow");
        let (mut fast_rx, fast) = f.add_sink("fast");
        for _ in 0..SINK_QUEUE_BATCHES + 10 {
            f.send(spans(2));
            while fast_rx.try_recv().is_ok() {}
        }
        assert_eq!(slow.dropped_spans.load(Ordering::Relaxed), 20);
        assert_eq!(slow.sent_spans.load(Ordering::Relaxed), SINK_QUEUE_BATCHES as u64 * 2);
        assert_eq!(fast.dropped_spans.load(Ordering::Relaxed), 0);
    }
}
