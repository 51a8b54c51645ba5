//! The metrics store as a sink of the fan-out: it records every span it is
//! handed (the fan-out already left out those the routes keep out of
//! metrics) and removes series past the TTL once a second.
//!
//! Recording holds the store's lock for one batch; scrapes and the OTLP
//! metrics exporter take the same lock to read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use super::MetricsStore;
use crate::clock::{self, Clock};
use crate::export::fanout::SpanBatch;

/// How often series past the TTL are removed.
const EXPIRY_PERIOD: Duration = Duration::from_secs(1);

/// What the sink counts besides what the fan-out counts for it.
#[derive(Debug, Default)]
pub(crate) struct RecorderStats {
    /// Metric series removed after the TTL.
    pub(crate) series_expired: AtomicU64,
}

/// Records batches from `input` into `store` until the fan-out closes it.
pub(crate) fn spawn(
    store: Arc<Mutex<MetricsStore>>,
    mut input: mpsc::Receiver<SpanBatch>,
) -> (tokio::task::JoinHandle<()>, Arc<RecorderStats>) {
    let stats = Arc::new(RecorderStats::default());
    let counted = stats.clone();
    let task = tokio::spawn(async move {
        let mut clock = Clock::new();
        let mut expiry = tokio::time::interval(EXPIRY_PERIOD);
        expiry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                batch = input.recv() => {
                    let Some(batch) = batch else { break };
                    let (now, wall) = (clock::monotonic_ns(), clock.now_wall());
                    let mut store = store.lock().unwrap_or_else(|e| e.into_inner());
                    for span in batch.iter() {
                        store.record(span, now, wall);
                    }
                }
                _ = expiry.tick() => {
                    clock.resync();
                    let expired = store.lock().unwrap_or_else(|e| e.into_inner()).expire(clock::monotonic_ns());
                    counted.series_expired.fetch_add(expired as u64, Ordering::Relaxed);
                }
            }
        }
    });
    (task, stats)
}
