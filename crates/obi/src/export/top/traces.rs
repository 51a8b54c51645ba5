//! The recent spans, kept to show the slowest traces as trees: a server
//! span, the client calls it made (their parent span id is its span id),
//! and whatever those calls reached in other traced services.
//!
//! A ring of fixed capacity holds plain copies (ids, times, row), so
//! keeping a span allocates nothing; "recent" is the last [`CAPACITY`]
//! spans. Trees are built once a second, for the screen, by scanning it.

use std::collections::VecDeque;
use std::net::IpAddr;

use super::table::RowId;
use crate::span::{Span, SpanKind};

pub(crate) const CAPACITY: usize = 8192;
/// Levels below the root shown at most.
pub(crate) const MAX_DEPTH: usize = 4;
/// Children shown per span at most; the rest are summed up in one line.
pub(crate) const MAX_CHILDREN: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct TraceSpan {
    pub(crate) trace_id: [u8; 16],
    pub(crate) span_id: [u8; 8],
    pub(crate) parent_span_id: [u8; 8],
    pub(crate) kind: SpanKind,
    pub(crate) end_ns: u64,
    pub(crate) duration_ns: u64,
    pub(crate) status: i64,
    pub(crate) error: bool,
    pub(crate) row: RowId,
    /// The server's address, for client calls.
    pub(crate) host: Option<IpAddr>,
    pub(crate) host_port: u16,
}

impl TraceSpan {
    pub(crate) fn of(span: &Span, row: RowId) -> TraceSpan {
        let sem = span.semantics();
        TraceSpan {
            trace_id: span.trace.trace_id,
            span_id: span.trace.span_id,
            parent_span_id: span.trace.parent_span_id,
            kind: span.kind,
            end_ns: span.end_ns,
            duration_ns: span.duration_ns(),
            status: sem.summary().status,
            error: sem.is_error(span.kind),
            row,
            host: span.host.addr,
            host_port: span.host.port,
        }
    }

    fn is_child_of(&self, parent: &TraceSpan) -> bool {
        parent.trace_id != [0; 16]
            && self.trace_id == parent.trace_id
            && self.parent_span_id == parent.span_id
            && self.span_id != parent.span_id
    }
}

/// One line of a drawn tree.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TreeLine {
    Span {
        depth: usize,
        span: TraceSpan,
    },
    /// `n` more children of the span above at `depth - 1`, not shown.
    More {
        depth: usize,
        n: usize,
    },
}

pub(crate) struct Recent {
    spans: VecDeque<TraceSpan>,
}

impl Default for Recent {
    fn default() -> Self {
        Recent { spans: VecDeque::with_capacity(CAPACITY) }
    }
}

impl Recent {
    pub(crate) fn push(&mut self, span: TraceSpan) {
        if self.spans.len() == CAPACITY {
            self.spans.pop_front();
        }
        self.spans.push_back(span);
    }

    /// The `n` slowest spans of `row` that ended after `since_ns`, slowest first.
    pub(crate) fn slowest(&self, row: RowId, since_ns: u64, n: usize) -> Vec<TraceSpan> {
        let mut found: Vec<TraceSpan> =
            self.spans.iter().filter(|s| s.row == row && s.end_ns > since_ns).copied().collect();
        found.sort_by(|a, b| b.duration_ns.cmp(&a.duration_ns).then(b.end_ns.cmp(&a.end_ns)));
        found.truncate(n);
        found
    }

    /// `root` and its descendants, depth first, children in start order.
    pub(crate) fn tree(&self, root: &TraceSpan) -> Vec<TreeLine> {
        let mut out = vec![TreeLine::Span { depth: 0, span: *root }];
        self.children_into(root, 1, &mut out);
        out
    }

    fn children_into(&self, parent: &TraceSpan, depth: usize, out: &mut Vec<TreeLine>) {
        if depth > MAX_DEPTH {
            return;
        }
        let mut children: Vec<TraceSpan> = self.spans.iter().filter(|s| s.is_child_of(parent)).copied().collect();
        children.sort_by_key(|s| s.end_ns.saturating_sub(s.duration_ns));
        for child in children.iter().take(MAX_CHILDREN) {
            out.push(TreeLine::Span { depth, span: *child });
            self.children_into(child, depth + 1, out);
        }
        if children.len() > MAX_CHILDREN {
            out.push(TreeLine::More { depth, n: children.len() - MAX_CHILDREN });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(trace: u8, id: u8, parent: u8, kind: SpanKind, row: RowId, start_ms: u64, dur_ms: u64) -> TraceSpan {
        TraceSpan {
            trace_id: [trace; 16],
            span_id: [id; 8],
            parent_span_id: [parent; 8],
            kind,
            end_ns: (start_ms + dur_ms) * 1_000_000,
            duration_ns: dur_ms * 1_000_000,
            status: 200,
            error: false,
            row,
            host: None,
            host_port: 0,
        }
    }

    #[test]
    fn trees_follow_parent_span_ids() {
        let mut r = Recent::default();
        // Trace 1: server 1 -> clients 2 (later) and 3 (earlier); client 2 reached server 4.
        let root = ts(1, 1, 0, SpanKind::Server, 0, 0, 100);
        r.push(ts(1, 2, 1, SpanKind::Client, 1, 50, 40));
        r.push(ts(1, 4, 2, SpanKind::Server, 2, 55, 30));
        r.push(ts(1, 3, 1, SpanKind::Client, 1, 10, 30));
        r.push(root);
        // Same span id in another trace: not a child.
        r.push(ts(2, 5, 1, SpanKind::Client, 1, 10, 30));
        let lines: Vec<(usize, u8)> = r
            .tree(&root)
            .iter()
            .map(|l| match l {
                TreeLine::Span { depth, span } => (*depth, span.span_id[0]),
                TreeLine::More { .. } => panic!("{l:?}"),
            })
            .collect();
        assert_eq!(lines, [(0, 1), (1, 3), (1, 2), (2, 4)]);
    }

    #[test]
    fn spans_without_trace_ids_have_no_children() {
        let mut r = Recent::default();
        let root = ts(0, 0, 0, SpanKind::Server, 0, 0, 10);
        r.push(root);
        r.push(ts(0, 1, 0, SpanKind::Client, 1, 0, 5));
        assert_eq!(r.tree(&root).len(), 1);
    }

    #[test]
    fn many_children_are_summed_up() {
        let mut r = Recent::default();
        let root = ts(1, 1, 0, SpanKind::Server, 0, 0, 100);
        for id in 10..10 + MAX_CHILDREN as u8 + 3 {
            r.push(ts(1, id, 1, SpanKind::Client, 1, u64::from(id), 1));
        }
        let tree = r.tree(&root);
        assert_eq!(tree.len(), 1 + MAX_CHILDREN + 1);
        assert_eq!(tree.last(), Some(&TreeLine::More { depth: 1, n: 3 }));
    }

    #[test]
    fn slowest_of_a_row_within_the_time() {
        let mut r = Recent::default();
        for (id, dur) in [(1, 10), (2, 300), (3, 20), (4, 200)] {
            r.push(ts(id, id, 0, SpanKind::Server, 0, 1000, dur));
        }
        r.push(ts(9, 9, 0, SpanKind::Server, 1, 1000, 900));
        let ids = |v: Vec<TraceSpan>| v.iter().map(|s| s.span_id[0]).collect::<Vec<_>>();
        assert_eq!(ids(r.slowest(0, 0, 2)), [2, 4]);
        // Ended before `since`: left out (span 1 ended at 1010 ms).
        assert_eq!(ids(r.slowest(0, 1_015_000_000, 5)), [2, 4, 3]);
    }

    #[test]
    fn the_ring_keeps_the_latest() {
        let mut r = Recent::default();
        for i in 0..CAPACITY as u64 + 5 {
            r.push(ts(1, 1, 0, SpanKind::Server, 0, i, 1));
        }
        assert_eq!(r.spans.len(), CAPACITY);
        assert_eq!(r.spans.front().unwrap().end_ns, 6_000_000);
    }
}
