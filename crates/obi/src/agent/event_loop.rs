//! The event loop: each turn moves what arrived through the pipeline, in an
//! order that matters (see the comments), and once a second does the
//! housekeeping.

use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::sync::watch;

use super::Agent;
use crate::clock;
use crate::transform::routes::Verdict;

/// How often counters are checked for new drops and housekeeping runs.
const HOUSEKEEPING: Duration = Duration::from_secs(1);

impl Agent {
    pub(super) async fn run_until_signal(&mut self) {
        let tick = self.cfg.ebpf.batch_timeout.max(Duration::from_millis(1));
        let mut last_housekeeping = Instant::now();
        loop {
            tokio::select! {
                _ = self.kernel.events.wait(tick) => {}
                _ = self.kernel.proc_events.wait(tick) => {}
                Some(ev) = self.discovery.decisions.recv() => self.on_discovery(ev),
                sig = self.signals.recv() => {
                    tracing::info!(component = "obi.Instrumenter", signal = sig, "shutting down");
                    return;
                }
            }
            self.turn();
            if last_housekeeping.elapsed() >= HOUSEKEEPING {
                last_housekeeping = Instant::now();
                self.housekeeping();
            }
        }
    }

    /// One pass through the pipeline.
    pub(super) fn turn(&mut self) {
        while let Ok(ev) = self.discovery.decisions.try_recv() {
            self.on_discovery(ev);
        }
        self.drain_process_events(false);
        // The kernel reports libssl mappings only for traced processes,
        // including ones traced provisionally since exec and not yet named:
        // probing them now, not after discovery, catches their first request.
        self.attach_pending_tls();
        let tracker = &mut self.tracker;
        self.kernel.events.drain(|rec| tracker.handle_record(rec));
        // Process events written before the data just read (an exec) decide
        // the name of the spans it made (named when they are taken).
        self.drain_process_events(true);
        // A process's last events are in the ring before its exit reaches us:
        // forget it only once they are processed.
        self.forget_exited();
        for conn in self.tracker.take_ignored() {
            self.kernel.tracer.ignore_conn(conn);
        }
        for conn in self.tracker.take_unignored() {
            self.kernel.tracer.unignore_conn(conn);
        }
        self.route_spans();
    }

    /// Sets routes and hands the spans to the sinks; spans matching
    /// `routes.ignored_patterns` skip traces, metrics or both.
    fn route_spans(&mut self) {
        let mut spans = self.tracker.take_spans();
        if spans.is_empty() {
            return;
        }
        let own = self.nodejs.own_connections();
        if own.any() {
            let before = spans.len();
            spans.retain(|s| !own.owns(s));
            self.stats.counters.own_spans_dropped += (before - spans.len()) as u64;
        }
        self.stats.counters.spans_emitted += spans.len() as u64;
        let verdicts = &mut self.routes.verdicts;
        verdicts.clear();
        verdicts.extend(spans.iter_mut().map(|s| self.routes.decorator.decorate(s)));
        self.stats.counters.spans_ignored += verdicts.iter().filter(|v| **v != Verdict::Keep).count() as u64;
        self.exporters.fanout.send_routed(spans, verdicts);
    }

    fn housekeeping(&mut self) {
        self.clock.resync();
        self.tracker.tick(clock::monotonic_ns());
        self.processes.forks.flush(Instant::now());
        self.stats.report_and_publish(&self.kernel.tracer, &self.tracker, &self.exporters);
    }
}

/// SIGINT, SIGTERM, and the user quitting the live view of `obi top`
/// (its terminal is in raw mode: Ctrl-C there is a key, not a signal).
pub(super) struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    quit: Option<watch::Receiver<bool>>,
}

impl Signals {
    pub(crate) fn new(quit: Option<watch::Receiver<bool>>) -> Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals { int: signal(SignalKind::interrupt())?, term: signal(SignalKind::terminate())?, quit })
    }

    async fn recv(&mut self) -> &'static str {
        let Signals { int, term, quit } = self;
        let quit = async {
            match quit {
                // A view that is gone (its sender dropped) counts as quitting.
                Some(q) => drop(q.wait_for(|quit| *quit).await),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
            _ = quit => "quit",
        }
    }
}
