//! Converts kernel CLOCK_MONOTONIC timestamps to wall-clock time.

use std::time::{SystemTime, UNIX_EPOCH};

/// Offset between CLOCK_REALTIME and CLOCK_MONOTONIC, measured once.
/// Spans keep the wall-clock time of the moment they happened even if the
/// system clock is stepped later; call [`Clock::resync`] to follow steps.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    offset_ns: i128,
}

impl Clock {
    pub(crate) fn new() -> Self {
        let mut c = Clock { offset_ns: 0 };
        c.resync();
        c
    }

    /// Measures the offset again.
    pub(crate) fn resync(&mut self) {
        let mono = monotonic_ns() as i128;
        let real = realtime_ns() as i128;
        self.offset_ns = real - mono;
    }

    /// Wall-clock ns since the Unix epoch for a kernel monotonic timestamp.
    pub(crate) fn to_wall(self, mono_ns: u64) -> u64 {
        (mono_ns as i128 + self.offset_ns).max(0) as u64
    }

    pub(crate) fn now_wall(&self) -> u64 {
        realtime_ns()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// CLOCK_MONOTONIC in ns: the clock `bpf_ktime_get_ns` reads.
pub(crate) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

pub(crate) fn realtime_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_now_to_now() {
        let c = Clock::new();
        let wall = c.to_wall(monotonic_ns());
        let diff = wall.abs_diff(realtime_ns());
        assert!(diff < 50_000_000, "diff {diff}ns");
    }
}
