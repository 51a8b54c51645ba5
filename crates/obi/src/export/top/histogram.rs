//! A latency histogram of fixed size: recording is an index computation and
//! an increment, never an allocation.
//!
//! Buckets are log-linear over microseconds: exact below 8 µs, then eight
//! buckets per power of two, so a bucket is at most 1/8 of its lower bound
//! wide and a percentile read at its midpoint is off by at most ~6%. The last
//! bucket holds everything from ~2.2 hours on.

/// Buckets per power of two (and the exact range below the first one).
const SUB: usize = 8;
const SUB_BITS: u32 = 3;
/// Powers of two covered above the exact range.
const OCTAVES: usize = 30;
pub(crate) const BUCKETS: usize = SUB + SUB * OCTAVES;

/// The bucket of a latency in microseconds.
pub(crate) fn bucket_of(us: u64) -> usize {
    if us < SUB as u64 {
        return us as usize;
    }
    let exp = 63 - us.leading_zeros(); // >= SUB_BITS
    let sub = ((us >> (exp - SUB_BITS)) as usize) & (SUB - 1);
    (SUB + (exp - SUB_BITS) as usize * SUB + sub).min(BUCKETS - 1)
}

/// The lowest value of a bucket and its width, in microseconds.
fn bucket_range(bucket: usize) -> (u64, u64) {
    if bucket < SUB {
        return (bucket as u64, 1);
    }
    let octave = ((bucket - SUB) / SUB) as u32;
    let sub = ((bucket - SUB) % SUB) as u64;
    ((SUB as u64 + sub) << octave, 1 << octave)
}

#[derive(Clone)]
pub(crate) struct Histogram {
    counts: [u32; BUCKETS],
    total: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counts: [0; BUCKETS], total: 0 }
    }
}

impl Histogram {
    pub(crate) fn record_us(&mut self, us: u64) {
        let c = &mut self.counts[bucket_of(us)];
        *c = c.saturating_add(1);
        self.total += 1;
    }

    pub(crate) fn clear(&mut self) {
        self.counts.fill(0);
        self.total = 0;
    }

    pub(crate) fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a = a.saturating_add(*b);
        }
        self.total += other.total;
    }

    #[cfg(test)]
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// The `q`-quantile (0 < q <= 1) in microseconds: the midpoint of the
    /// bucket holding the ceil(q * n)-th smallest value; `None` when empty.
    pub(crate) fn quantile_us(&self, q: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0u64;
        for (bucket, &n) in self.counts.iter().enumerate() {
            seen += u64::from(n);
            if seen >= rank {
                let (low, width) = bucket_range(bucket);
                return Some(low + width / 2);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_contain_their_values() {
        let mut next_low = 0;
        for b in 0..BUCKETS {
            let (low, width) = bucket_range(b);
            assert_eq!(low, next_low, "bucket {b}");
            assert_eq!(bucket_of(low), b);
            assert_eq!(bucket_of(low + width - 1), b);
            assert!(width * SUB as u64 <= low.max(SUB as u64), "bucket {b} is wider than 1/8 of its low end");
            next_low = low + width;
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles_are_within_the_bucket_error() {
        let mut h = Histogram::default();
        // 1..=1000 ms.
        for ms in 1..=1000u64 {
            h.record_us(ms * 1000);
        }
        for (q, want) in [(0.5, 500_000.0), (0.99, 990_000.0), (1.0, 1_000_000.0), (0.001, 1000.0)] {
            let got = h.quantile_us(q).unwrap() as f64;
            assert!((got - want).abs() / want <= 0.0625, "q={q}: {got} vs {want}");
        }
        assert_eq!(Histogram::default().quantile_us(0.5), None);
    }

    #[test]
    fn small_values_are_exact_and_merge_adds() {
        let mut a = Histogram::default();
        a.record_us(3);
        let mut b = Histogram::default();
        b.record_us(5);
        b.record_us(5);
        a.merge(&b);
        assert_eq!(a.total(), 3);
        assert_eq!(a.quantile_us(0.33), Some(3));
        assert_eq!(a.quantile_us(0.5), Some(5));
        a.clear();
        assert_eq!(a.total(), 0);
    }
}
