//! Closing many probe links at once.
//!
//! Closing a perf-event link (a tracepoint or uprobe) waits for a kernel RCU
//! grace period, 40-70 ms each on the test VMs. Closed from several threads,
//! the waits overlap where the kernel lets them: uprobes do, but tracepoint
//! events queue on the kernel's event_mutex (6.18: 39 syscall events took
//! 1.7 s from 16 threads). That is why syscalls now come through two raw
//! tracepoints (bpf/include/obi/syscalls.bpf.h), which close at once, and
//! only a handful of perf-event tracepoints are left for this.

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
