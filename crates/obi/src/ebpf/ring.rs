//! Reading a BPF ring buffer from tokio.
//!
//! The programs submit with BPF_RB_NO_WAKEUP until a backlog builds up, so
//! readiness alone would leave records waiting: callers wait for readiness
//! OR a short tick, then drain everything in one go.

use std::time::Duration;

use aya::maps::{MapData, RingBuf};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

pub(crate) struct Ring {
    fd: AsyncFd<RingBuf<MapData>>,
}

impl Ring {
    pub(crate) fn new(ring: RingBuf<MapData>) -> std::io::Result<Ring> {
        // SAFETY: RingBuf owns its file descriptor for as long as the AsyncFd
        // holds it, which is the I/O-safety contract register_with_interest asks for.
        let fd = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }.map_err(std::io::Error::from)?;
        Ok(Ring { fd })
    }

    /// Waits until the kernel signals data or `tick` passes.
    pub(crate) async fn wait(&mut self, tick: Duration) {
        if let Ok(Ok(mut guard)) = tokio::time::timeout(tick, self.fd.readable_mut()).await {
            guard.clear_ready();
        }
    }

    /// Hands every available record to `f`; returns how many there were.
    pub(crate) fn drain(&mut self, mut f: impl FnMut(&[u8])) -> usize {
        let ring = self.fd.get_mut();
        let mut n = 0;
        while let Some(item) = ring.next() {
            f(&item);
            n += 1;
        }
        n
    }
}
