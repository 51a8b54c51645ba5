//! A rolling window of the last [`WINDOW_SECS`] seconds: a ring of slots,
//! each counting the requests, errors and latencies of [`SLOT_SECS`]
//! seconds. A slot is reused once its time has passed, so memory is fixed
//! and recording allocates nothing.

use super::histogram::Histogram;

pub(crate) const SLOT_SECS: u64 = 2;
const SLOTS: usize = 15;
pub(crate) const WINDOW_SECS: u64 = SLOT_SECS * SLOTS as u64;
const NS: u64 = 1_000_000_000;

#[derive(Clone, Default)]
struct Slot {
    /// Which slot of time this is (`end_ns / SLOT_SECS s`); 0 is never used.
    epoch: u64,
    requests: u64,
    errors: u64,
    latency: Histogram,
}

/// What a window holds at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct WindowStats {
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    /// Requests per second over the part of the window that has elapsed.
    pub(crate) rate: f64,
    pub(crate) p50_us: Option<u64>,
    pub(crate) p99_us: Option<u64>,
}

pub(crate) struct Window {
    slots: Box<[Slot]>,
}

impl Default for Window {
    fn default() -> Self {
        Window { slots: vec![Slot::default(); SLOTS].into_boxed_slice() }
    }
}

fn epoch_of(ns: u64) -> u64 {
    ns / (SLOT_SECS * NS) + 1
}

impl Window {
    /// Counts a request that ended at `end_ns` (wall clock). Requests older
    /// than the window are left out.
    pub(crate) fn record(&mut self, end_ns: u64, duration_ns: u64, error: bool) {
        let epoch = epoch_of(end_ns);
        let slot = &mut self.slots[(epoch % SLOTS as u64) as usize];
        if slot.epoch > epoch {
            return;
        }
        if slot.epoch < epoch {
            slot.epoch = epoch;
            slot.requests = 0;
            slot.errors = 0;
            slot.latency.clear();
        }
        slot.requests += 1;
        slot.errors += u64::from(error);
        slot.latency.record_us(duration_ns / 1000);
    }

    /// The window ending at `now_ns`; `since_ns` is when counting began (the
    /// rate of a row younger than the window is over its own age).
    /// `scratch` is reused to merge the histograms.
    pub(crate) fn stats(&self, now_ns: u64, since_ns: u64, scratch: &mut Histogram) -> WindowStats {
        let now = epoch_of(now_ns);
        let oldest = now.saturating_sub(SLOTS as u64 - 1).max(1);
        scratch.clear();
        let mut out = WindowStats::default();
        for slot in self.slots.iter().filter(|s| s.epoch >= oldest && s.epoch <= now) {
            out.requests += slot.requests;
            out.errors += slot.errors;
            scratch.merge(&slot.latency);
        }
        // The window starts at the oldest slot's start.
        let window_start = (oldest - 1) * SLOT_SECS * NS;
        let elapsed = now_ns.saturating_sub(window_start.max(since_ns)).max(NS);
        out.rate = out.requests as f64 / (elapsed as f64 / NS as f64);
        out.p50_us = scratch.quantile_us(0.5);
        out.p99_us = scratch.quantile_us(0.99);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000 * NS;

    #[test]
    fn rate_and_percentiles_over_the_window() {
        let mut w = Window::default();
        let mut h = Histogram::default();
        // 10 requests a second for 30 s, 1 in 10 an error, 1 in 50 slow.
        for i in 0..300u64 {
            let end = T0 + i * NS / 10;
            let dur = if i % 50 == 49 { 500_000_000 } else { 10_000_000 };
            w.record(end, dur, i % 10 == 0);
        }
        let now = T0 + 30 * NS - 1;
        let s = w.stats(now, 0, &mut h);
        assert_eq!((s.requests, s.errors), (300, 30), "{s:?}");
        assert!((s.rate - 10.0).abs() < 0.01, "{s:?}");
        let p50 = s.p50_us.unwrap() as f64;
        assert!((p50 - 10_000.0).abs() / 10_000.0 < 0.07, "{s:?}");
        // 6 slow ones out of 300: the 297th value is one of them.
        assert!(s.p99_us.unwrap() > 400_000, "{s:?}");
    }

    #[test]
    fn old_requests_leave_the_window() {
        let mut w = Window::default();
        let mut h = Histogram::default();
        w.record(T0, 1_000_000, true);
        assert_eq!(w.stats(T0 + NS, 0, &mut h).requests, 1);
        let later = T0 + (WINDOW_SECS + SLOT_SECS) * NS;
        let s = w.stats(later, 0, &mut h);
        assert_eq!((s.requests, s.errors, s.p50_us), (0, 0, None));
        // A slot reused for a new epoch starts from zero.
        w.record(later, 2_000_000, false);
        let s = w.stats(later, 0, &mut h);
        assert_eq!((s.requests, s.errors), (1, 0));
        // A request older than the window is not counted.
        w.record(T0, 1_000_000, true);
        assert_eq!(w.stats(later, 0, &mut h).requests, 1);
    }

    #[test]
    fn a_young_row_rates_over_its_age() {
        let mut w = Window::default();
        let mut h = Histogram::default();
        for i in 0..20 {
            w.record(T0 + i * NS / 10, 1000, false);
        }
        // 20 requests in the 2 s since the row appeared: 10/s, not 20/30.
        let s = w.stats(T0 + 2 * NS, T0, &mut h);
        assert!((s.rate - 10.0).abs() < 0.01, "{s:?}");
    }
}
