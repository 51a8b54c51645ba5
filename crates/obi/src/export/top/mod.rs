//! `obi top`: a live view of the agent's spans in the terminal, for whoever
//! has no trace backend. It is a sink of the fan-out in the trace printer's
//! place (OTLP and Prometheus keep working beside it) and shows, refreshed
//! each second:
//!
//! - one row per service and operation: rate and p50/p99 over the last
//!   [`window::WINDOW_SECS`] seconds, requests and errors since start;
//! - the slowest recent traces of the selected row, as trees;
//! - the last log lines ([`logs`]: nothing is written to stderr meanwhile).
//!
//! Keys: `q`, `Esc` or Ctrl-C quit (the agent stops too), arrows or `j`/`k`
//! select a row, `s` changes the sort. The terminal is restored on quit,
//! when the agent stops (SIGTERM) and on panic.

mod histogram;
pub(crate) mod logs;
mod render;
mod table;
mod traces;
mod window;

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use tokio::sync::{mpsc, watch};

use super::fanout::{SinkStats, SpanBatch};
use crate::span::Span;
use table::{RowId, Table};
use traces::{Recent, TraceSpan};

/// How often the screen is redrawn when nothing is pressed.
const REFRESH: Duration = Duration::from_secs(1);
/// How long to wait for a key between looks at the span queue.
const POLL: Duration = Duration::from_millis(100);

/// What the view knows: every span seen goes through [`Model::ingest`].
#[derive(Default)]
pub(crate) struct Model {
    table: Table,
    recent: Recent,
    spans: u64,
}

impl Model {
    pub(crate) fn ingest(&mut self, spans: &[Span]) {
        for span in spans {
            if let Some(row) = self.table.record(span) {
                self.spans += 1;
                self.recent.push(TraceSpan::of(span, row));
            }
        }
    }
}

/// How rows are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Sort {
    #[default]
    Rate,
    Errors,
    P99,
    Name,
}

impl Sort {
    fn next(self) -> Sort {
        match self {
            Sort::Rate => Sort::Errors,
            Sort::Errors => Sort::P99,
            Sort::P99 => Sort::Name,
            Sort::Name => Sort::Rate,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Sort::Rate => "rate",
            Sort::Errors => "errors",
            Sort::P99 => "p99",
            Sort::Name => "name",
        }
    }
}

/// What the user chose: the sort and the selected row (by position, as
/// top does: the row under the cursor changes when the order does).
#[derive(Debug, Default)]
pub(crate) struct Ui {
    pub(crate) sort: Sort,
    pub(crate) selected: usize,
}

/// What a key asks for.
#[derive(Debug, PartialEq, Eq)]
enum Action {
    Quit,
    Redraw,
    Nothing,
}

impl Ui {
    fn on_key(&mut self, key: KeyEvent, rows: usize) -> Action {
        if key.kind == KeyEventKind::Release {
            return Action::Nothing;
        }
        match key.code {
            KeyCode::Char('q') | KeyCode::Esc => Action::Quit,
            KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => Action::Quit,
            KeyCode::Down | KeyCode::Char('j') => {
                self.selected = (self.selected + 1).min(rows.saturating_sub(1));
                Action::Redraw
            }
            KeyCode::Up | KeyCode::Char('k') => {
                self.selected = self.selected.saturating_sub(1);
                Action::Redraw
            }
            KeyCode::Char('s') => {
                self.sort = self.sort.next();
                Action::Redraw
            }
            _ => Action::Nothing,
        }
    }
}

/// Runs the view on its own thread until the user quits or the queue
/// closes (the agent stops). Quitting sets `quit`, which stops the agent.
pub(crate) fn spawn(
    rx: mpsc::Receiver<SpanBatch>,
    stats: Arc<SinkStats>,
    quit: watch::Sender<bool>,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("top-view".into())
        .spawn(move || {
            if let Err(err) = run(rx, &stats) {
                tracing::error!(component = "top.View", error = %err, "the terminal view failed");
            }
            let _ = quit.send(true);
        })
        .expect("spawning the view thread")
}

fn run(mut rx: mpsc::Receiver<SpanBatch>, stats: &SinkStats) -> io::Result<()> {
    // Log lines go to the pane before the screen is taken: one written in
    // between would stay on it, in the cells the first frame leaves blank.
    logs::capture(true);
    let mut terminal = match ratatui::try_init() {
        Ok(t) => t,
        Err(e) => {
            logs::capture(false);
            return Err(e);
        }
    };
    // Whatever reached the screen before: cleared, and every cell drawn.
    terminal.clear()?;
    // ratatui's hook restores the terminal on panic; log lines must reach
    // stderr again too.
    let restore_terminal = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        logs::capture(false);
        restore_terminal(info);
    }));
    let result = view_loop(&mut terminal, &mut rx, stats);
    let restored = ratatui::try_restore();
    logs::capture(false);
    result.and(restored)
}

fn view_loop(
    terminal: &mut ratatui::DefaultTerminal,
    rx: &mut mpsc::Receiver<SpanBatch>,
    stats: &SinkStats,
) -> io::Result<()> {
    let mut model = Model::default();
    let mut ui = Ui::default();
    let mut scratch = render::Scratch::default();
    let mut last_draw: Option<Instant> = None;
    loop {
        loop {
            match rx.try_recv() {
                Ok(batch) => model.ingest(&batch),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => return Ok(()),
            }
        }
        if last_draw.is_none_or(|t| t.elapsed() >= REFRESH) {
            let queue_dropped = stats.dropped_spans.load(Ordering::Relaxed);
            terminal.draw(|f| render::draw(f, &model, &mut ui, queue_dropped, &mut scratch))?;
            last_draw = Some(Instant::now());
        }
        if event::poll(POLL)? {
            match event::read()? {
                Event::Key(key) => match ui.on_key(key, model.table.rows().len()) {
                    Action::Quit => return Ok(()),
                    Action::Redraw => last_draw = None,
                    Action::Nothing => {}
                },
                Event::Resize(..) => last_draw = None,
                _ => {}
            }
        }
    }
}

/// The rows in the order `sort` asks for, each with its window statistics.
pub(crate) fn sorted_rows(
    model: &Model,
    sort: Sort,
    now_ns: u64,
    scratch: &mut histogram::Histogram,
) -> Vec<(RowId, window::WindowStats)> {
    let mut rows: Vec<(RowId, window::WindowStats)> = model
        .table
        .rows()
        .iter()
        .enumerate()
        .map(|(id, row)| (id as RowId, row.window.stats(now_ns, row.first_seen_ns, scratch)))
        .collect();
    let table = &model.table;
    let name = |id: RowId| {
        let r = table.row(id);
        (r.service.as_str(), r.protocol, r.method.as_str(), r.route.as_str())
    };
    rows.sort_by(|(a, sa), (b, sb)| {
        let by = match sort {
            Sort::Rate => sb.rate.total_cmp(&sa.rate).then(table.row(*b).requests.cmp(&table.row(*a).requests)),
            Sort::Errors => table.row(*b).errors.cmp(&table.row(*a).errors),
            Sort::P99 => sb.p99_us.cmp(&sa.p99_us),
            Sort::Name => std::cmp::Ordering::Equal,
        };
        by.then_with(|| name(*a).cmp(&name(*b)))
    });
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::Service;
    use crate::span::fixtures::{Shape, span};

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn keys() {
        let mut ui = Ui::default();
        assert_eq!(ui.on_key(key(KeyCode::Down), 3), Action::Redraw);
        assert_eq!(ui.on_key(key(KeyCode::Char('j')), 3), Action::Redraw);
        assert_eq!(ui.on_key(key(KeyCode::Char('j')), 3), Action::Redraw);
        assert_eq!(ui.selected, 2);
        ui.on_key(key(KeyCode::Up), 3);
        ui.on_key(key(KeyCode::Char('k')), 3);
        ui.on_key(key(KeyCode::Char('k')), 3);
        assert_eq!(ui.selected, 0);
        ui.on_key(key(KeyCode::Char('s')), 3);
        assert_eq!(ui.sort, Sort::Errors);
        assert_eq!(ui.on_key(key(KeyCode::Char('q')), 3), Action::Quit);
        assert_eq!(ui.on_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL), 3), Action::Quit);
        assert_eq!(ui.on_key(key(KeyCode::Char('c')), 3), Action::Nothing);
    }

    #[test]
    fn sorts() {
        let svc = Arc::new(Service { name: "svc".into(), ..Service::default() });
        let mut model = Model::default();
        let mut batch = Vec::new();
        for _ in 0..3 {
            batch.push(span(Shape::HttpServer, svc.clone(), "/busy", 200, 1));
        }
        batch.push(span(Shape::HttpServer, svc.clone(), "/slow", 500, 900));
        batch.push(span(Shape::HttpServer, svc.clone(), "/a", 200, 5));
        model.ingest(&batch);
        assert_eq!(model.spans, 5);
        let now = batch[0].end_ns + 1_000_000_000;
        let mut h = histogram::Histogram::default();
        let order = |sort| {
            sorted_rows(&model, sort, now, &mut h.clone())
                .iter()
                .map(|(id, _)| model.table.row(*id).route.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(order(Sort::Rate), ["/busy", "/a", "/slow"]);
        assert_eq!(order(Sort::Errors), ["/slow", "/a", "/busy"]);
        assert_eq!(order(Sort::P99), ["/slow", "/a", "/busy"]);
        assert_eq!(order(Sort::Name), ["/a", "/busy", "/slow"]);
        let stats = sorted_rows(&model, Sort::Rate, now, &mut h);
        assert_eq!(stats[0].1.requests, 3);
    }
}
