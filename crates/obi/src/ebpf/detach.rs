//! Closing many probe links at once.
//!
//! Closing a perf-event link (a tracepoint or uprobe) waits for a kernel RCU
//! grace period, ~70 ms each on the test VMs: the 39 tracepoint links took
//! 2.9 s to close one after the other, most of the agent's shutdown time.
//! Closed from several threads, the waits overlap.

/// Threads used to close links; more buys nothing once the waits overlap.
const CLOSERS: usize = 16;

/// A link whose drop detaches it.
pub(crate) type Link = Box<dyn Send>;

/// Drops every link, from up to [`CLOSERS`] threads, and returns once all
/// are closed.
pub(crate) fn close_all(mut links: Vec<Link>) {
    let per_thread = links.len().div_ceil(CLOSERS).max(1);
    std::thread::scope(|s| {
        while !links.is_empty() {
            let chunk: Vec<Link> = links.drain(..per_thread.min(links.len())).collect();
            let closer = std::thread::Builder::new().name("obi-detach".into());
            // No thread to be had: close them here, just more slowly.
            if let Err(err) = closer.spawn_scoped(s, move || drop(chunk)) {
                tracing::debug!(component = "ebpf.Tracer", error = %err, "closing probe links on the main thread");
            }
        }
    });
}
