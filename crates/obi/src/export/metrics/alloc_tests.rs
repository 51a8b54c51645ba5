//! Recording into existing series must not allocate: counted with a
//! counting global allocator (in the library's test binary only).

use std::sync::Arc;
use std::time::Instant;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

/// Counts allocations per thread, so other tests running meanwhile do not count.
struct CountingAllocator;

// SAFETY: forwards to the system allocator; the counter is a plain thread-local Cell.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Recording spans into existing series allocates nothing; a new label set does.
#[test]
fn steady_state_aggregation_does_not_allocate() {
    use crate::config::metrics::MetricsConfig;
    use crate::export::metrics::MetricsStore;
    use crate::service::Service;
    use crate::span::{Endpoint, HttpSpan, Span, SpanDetail, SpanKind, TraceContext};

    let svc = Arc::new(Service { name: "alloc-test".into(), instance_id: "h:1".into(), ..Service::default() });
    let spans: Vec<Span> = (0..64)
        .map(|i| Span {
            kind: if i % 2 == 0 { SpanKind::Server } else { SpanKind::Client },
            detail: SpanDetail::Http(HttpSpan {
                method: "GET".into(),
                path: format!("/items/{i}"),
                route: format!("/items/{}", i % 4),
                status: [200, 404, 500][i % 3],
                request_body_size: i as i64,
                response_body_size: 100 * i as i64,
                host_header: (i % 2 == 1).then(|| "api.example.com:8080".to_string()),
                tls: false,
            }),
            peer: Endpoint { addr: Some([127, 0, 0, 1].into()), port: 40000 + i as u16, name: String::new() },
            host: Endpoint { addr: Some([127, 0, 0, 1].into()), port: 8080, name: String::new() },
            request_start_ns: 0,
            start_ns: 0,
            end_ns: 1_000_000 * i as u64,
            trace: TraceContext::default(),
            service: svc.clone(),
            peer_service: None,
        })
        .collect();
    let mut store = MetricsStore::new(&MetricsConfig::default());
    let count = || ALLOCATIONS.with(Cell::get);
    let before = count();
    for s in &spans {
        store.record(s, 1, 1);
    }
    let series = store.series_count();
    assert!(count() > before, "creating series must allocate (is the counter working?)");
    let start = Instant::now();
    let before = count();
    let rounds = 2000;
    for round in 0..rounds {
        for s in &spans {
            store.record(s, 2 + round, 1);
        }
    }
    let per_span = start.elapsed() / (rounds as u32 * spans.len() as u32);
    assert_eq!(count() - before, 0, "allocations while recording into existing series");
    assert_eq!(store.series_count(), series);
    eprintln!("{series} series; {per_span:?} per span (debug build, 3 families per span)");
}
