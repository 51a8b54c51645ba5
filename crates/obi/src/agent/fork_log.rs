//! The "instrumenting process" lines of forked children, summarized per
//! parent: a server that forks per connection would otherwise log a line per
//! request. The first child of a parent is logged in full (what its children
//! are); the next ones are counted and reported in one line per
//! [`SUMMARY_EVERY`] children or per [`SUMMARY_INTERVAL`], with their count
//! and pid range. Each child still has its own debug line.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::discover;
use crate::service::Service;

/// Children counted before a summary line.
const SUMMARY_EVERY: u64 = 50;
/// Children counted for this long get their summary line anyway.
const SUMMARY_INTERVAL: Duration = Duration::from_secs(10);
/// A parent without new children for this long is forgotten (its next child
/// is logged in full again).
const FORGET_AFTER: Duration = Duration::from_secs(60);

/// Children of one parent since its last line.
#[derive(Debug)]
struct Parent {
    /// Not yet reported.
    count: u64,
    /// Since the first child.
    total: u64,
    first_pid: u32,
    last_pid: u32,
    /// When the oldest unreported child came.
    since: Instant,
    last_seen: Instant,
}

#[derive(Debug, Default)]
pub(super) struct ForkLog {
    /// Forked children not yet instrumented -> their parent and when they
    /// forked (from the kernel's fork events, which come for traced parents
    /// only). Kept past the child's exit: discovery's decision for a
    /// short-lived child often comes after it.
    parent_of: HashMap<u32, (u32, Instant)>,
    parents: HashMap<u32, Parent>,
}

impl ForkLog {
    pub(super) fn forked(&mut self, child: u32, parent: u32, now: Instant) {
        self.parent_of.insert(child, (parent, now));
    }

    /// `pid` exited: a parent's pending children are reported.
    pub(super) fn exited(&mut self, pid: u32) {
        if let Some(p) = self.parents.remove(&pid) {
            summarize(pid, &p);
        }
    }

    /// Logs that `svc` is instrumented: in full, or counted for its parent's
    /// summary when it is a forked child of a parent already reported.
    pub(super) fn instrumenting(&mut self, svc: &Service, now: Instant) {
        let Some((parent, _)) = self.parent_of.remove(&svc.pid) else {
            discover::log_instrumenting(svc);
            return;
        };
        let Some(p) = self.parents.get_mut(&parent) else {
            discover::log_instrumenting(svc);
            self.parents
                .insert(parent, Parent { count: 0, total: 0, first_pid: 0, last_pid: 0, since: now, last_seen: now });
            return;
        };
        tracing::debug!(component = "discover.traceAttacher", pid = svc.pid, parent, "instrumenting forked process");
        if p.count == 0 {
            p.first_pid = svc.pid;
            p.since = now;
        }
        p.count += 1;
        p.total += 1;
        p.last_pid = svc.pid;
        p.last_seen = now;
        if p.count >= SUMMARY_EVERY {
            summarize(parent, p);
            p.count = 0;
        }
    }

    /// Reports children waiting longer than [`SUMMARY_INTERVAL`], forgets
    /// quiet parents and children never instrumented.
    pub(super) fn flush(&mut self, now: Instant) {
        self.parent_of.retain(|_, (_, at)| now.duration_since(*at) < FORGET_AFTER);
        self.parents.retain(|&parent, p| {
            if p.count > 0 && now.duration_since(p.since) >= SUMMARY_INTERVAL {
                summarize(parent, p);
                p.count = 0;
            }
            p.count > 0 || now.duration_since(p.last_seen) < FORGET_AFTER
        });
    }
}

fn summarize(parent: u32, p: &Parent) {
    if p.count == 0 {
        return;
    }
    tracing::info!(
        component = "discover.traceAttacher",
        parent,
        count = p.count,
        total = p.total,
        first_pid = p.first_pid,
        last_pid = p.last_pid,
        "instrumenting forked processes"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{LogFormat, LogLevel};
    use crate::logging::Captured;

    fn svc(pid: u32) -> Service {
        Service { name: "srv".into(), pid, exe_path: "/usr/bin/python3".into(), ..Default::default() }
    }

    fn captured(f: impl FnOnce()) -> Vec<String> {
        let out = Captured::default();
        let subscriber = crate::logging::subscriber(LogLevel::Info, LogFormat::Text, out.clone());
        tracing::subscriber::with_default(subscriber, f);
        out.text().lines().map(str::to_string).collect()
    }

    fn field(line: &str, key: &str) -> u64 {
        line.split(' ').find_map(|kv| kv.strip_prefix(&format!("{key}="))).unwrap().parse().unwrap()
    }

    /// 200 children of one parent: the first in full, then one line per 50,
    /// the rest at the next flush after the interval; every child is counted.
    #[test]
    fn forked_children_are_summarized_per_parent() {
        let start = Instant::now();
        let lines = captured(|| {
            let mut log = ForkLog::default();
            log.instrumenting(&svc(100), start);
            for child in 1000..1200 {
                log.forked(child, 100, start);
                log.instrumenting(&svc(child), start);
            }
            // A process that is not a forked child is logged in full.
            log.instrumenting(&svc(7), start);
            log.flush(start + Duration::from_secs(1));
            log.flush(start + SUMMARY_INTERVAL);
        });
        let full: Vec<&String> = lines.iter().filter(|l| l.contains("msg=\"instrumenting process\"")).collect();
        assert_eq!(full.len(), 3, "{lines:#?}");
        assert!(full[0].contains(" pid=100 ") && full[1].contains(" pid=1000 ") && full[2].contains(" pid=7 "));
        let summaries: Vec<&String> =
            lines.iter().filter(|l| l.contains("msg=\"instrumenting forked processes\"")).collect();
        assert_eq!(summaries.len(), 4, "{lines:#?}");
        let counted: u64 = summaries.iter().map(|l| field(l, "count")).sum();
        assert_eq!(counted, 199);
        assert_eq!(field(summaries[0], "first_pid"), 1001);
        assert_eq!(field(summaries[3], "last_pid"), 1199);
        assert_eq!(field(summaries[3], "total"), 199);
        assert_eq!(lines.len(), 7, "{lines:#?}");
    }

    #[test]
    fn a_parent_exit_reports_its_children_and_quiet_parents_are_forgotten() {
        let start = Instant::now();
        let lines = captured(|| {
            let mut log = ForkLog::default();
            for child in [11, 12, 13] {
                log.forked(child, 10, start);
                log.instrumenting(&svc(child), start);
            }
            log.exited(10);
            // Forgotten: its next child is logged in full again.
            log.forked(21, 20, start);
            log.instrumenting(&svc(21), start);
            log.flush(start + FORGET_AFTER);
            log.forked(22, 20, start + FORGET_AFTER);
            log.instrumenting(&svc(22), start + FORGET_AFTER);
        });
        let summary = lines.iter().find(|l| l.contains("instrumenting forked processes")).unwrap();
        assert_eq!((field(summary, "count"), field(summary, "parent")), (2, 10));
        assert_eq!(lines.iter().filter(|l| l.contains("msg=\"instrumenting process\"")).count(), 3, "{lines:#?}");
    }
}
