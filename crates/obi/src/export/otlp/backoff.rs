//! Exponential backoff between retries of one export, with jitter, a cap,
//! and a give-up time (the OpenTelemetry Collector's defaults: 5s initial,
//! 30s max, 5m elapsed, x1.5 per attempt, +-50% jitter).

use std::time::{Duration, Instant};

use rand::Rng;

use crate::config::otlp::BackoffConfig;

const MULTIPLIER: f64 = 1.5;
const JITTER: f64 = 0.5;

/// Retry schedule of one request.
#[derive(Debug)]
pub(crate) struct Backoff {
    cfg: BackoffConfig,
    /// The next delay before jitter.
    interval: Duration,
    started: Instant,
}

impl Backoff {
    pub(crate) fn new(cfg: BackoffConfig) -> Self {
        Backoff { cfg, interval: cfg.initial, started: Instant::now() }
    }

    /// The delay before the next attempt, or `None` when the request should
    /// be given up. A server's `Retry-After`/`RetryInfo` replaces the computed
    /// delay (capped by `max`).
    pub(crate) fn next_delay(&mut self, retry_after: Option<Duration>) -> Option<Duration> {
        let base = self.interval;
        self.interval = self.interval.mul_f64(MULTIPLIER).min(self.cfg.max);
        let delay = match retry_after {
            Some(d) => d.min(self.cfg.max),
            None => {
                let spread = base.as_secs_f64() * JITTER;
                let secs = base.as_secs_f64() + rand::rng().random_range(-spread..=spread);
                Duration::from_secs_f64(secs.max(0.0)).min(self.cfg.max)
            }
        };
        if !self.cfg.max_elapsed.is_zero() && self.started.elapsed() + delay > self.cfg.max_elapsed {
            return None;
        }
        Some(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_with_jitter_up_to_the_cap() {
        let cfg = BackoffConfig {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(400),
            max_elapsed: Duration::from_secs(60),
        };
        let mut b = Backoff::new(cfg);
        let mut bases = vec![100.0, 150.0, 225.0, 337.5, 400.0, 400.0];
        bases.reverse();
        for _ in 0..6 {
            let base = bases.pop().unwrap();
            let d = b.next_delay(None).unwrap().as_secs_f64() * 1000.0;
            assert!(d >= base * 0.5 - 0.001 && d <= (base * 1.5).min(400.0) + 0.001, "{d} vs {base}");
        }
    }

    #[test]
    fn retry_after_replaces_the_delay_and_is_capped() {
        let mut b = Backoff::new(BackoffConfig::default());
        assert_eq!(b.next_delay(Some(Duration::from_secs(7))), Some(Duration::from_secs(7)));
        assert_eq!(b.next_delay(Some(Duration::from_secs(600))), Some(Duration::from_secs(30)));
    }

    #[test]
    fn gives_up_after_max_elapsed_unless_zero() {
        let cfg = BackoffConfig {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(1),
            max_elapsed: Duration::from_millis(500),
        };
        assert_eq!(Backoff::new(cfg).next_delay(Some(Duration::from_secs(1))), None);
        let forever = BackoffConfig { max_elapsed: Duration::ZERO, ..cfg };
        assert!(Backoff::new(forever).next_delay(Some(Duration::from_secs(1))).is_some());
    }
}
