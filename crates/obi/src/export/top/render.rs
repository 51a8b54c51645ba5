//! Draws the view: a status line, the table of rows, the slowest traces of
//! the selected row as trees, and the last log lines.

use std::time::{SystemTime, UNIX_EPOCH};

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span as Text};
use ratatui::widgets::{Block, Borders, Paragraph, Row as TableRow, Table as TableWidget, TableState};

use super::histogram::Histogram;
use super::table::Row;
use super::traces::{TraceSpan, TreeLine};
use super::window::WINDOW_SECS;
use super::{Model, Ui, sorted_rows};
use crate::span::{SpanKind, Value};

/// Traces shown for the selected row.
const TRACES: usize = 5;
const LOG_LINES: usize = 4;

/// Buffers reused from one frame to the next.
#[derive(Default)]
pub(crate) struct Scratch {
    histogram: Histogram,
}

pub(crate) fn draw(frame: &mut Frame<'_>, model: &Model, ui: &mut Ui, queue_dropped: u64, scratch: &mut Scratch) {
    let now_ns = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let rows = sorted_rows(model, ui.sort, now_ns, &mut scratch.histogram);
    ui.selected = ui.selected.min(rows.len().saturating_sub(1));

    let [status, table_area, traces_area, logs_area] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Percentage(45),
        Constraint::Min(4),
        Constraint::Length(LOG_LINES as u16 + 2),
    ])
    .areas(frame.area());

    let mut status_text = format!(
        "obi-rs top | {} rows | {} spans | window {WINDOW_SECS}s | sort: {} (s) | select: up/down j/k | quit: q",
        rows.len(),
        model.spans,
        ui.sort.as_str()
    );
    if queue_dropped > 0 || model.table.dropped_spans > 0 {
        status_text
            .push_str(&format!(" | dropped: {queue_dropped} (queue full), {} (row limit)", model.table.dropped_spans));
    }
    frame.render_widget(Paragraph::new(status_text).style(Style::new().add_modifier(Modifier::REVERSED)), status);

    let header = TableRow::new(["SERVICE", "TYPE", "OPERATION", "RATE/s", "P50", "P99", "REQUESTS", "ERRORS"])
        .style(Style::new().add_modifier(Modifier::BOLD));
    let body = rows.iter().map(|(id, w)| {
        let row = model.table.row(*id);
        let style = if row.errors > 0 { Style::new().fg(Color::Red) } else { Style::new() };
        TableRow::new([
            row.service.clone(),
            row.protocol.to_string(),
            row.operation(),
            format!("{:.1}", w.rate),
            w.p50_us.map_or("-".into(), duration),
            w.p99_us.map_or("-".into(), duration),
            row.requests.to_string(),
            row.errors.to_string(),
        ])
        .style(style)
    });
    let widths = [
        Constraint::Percentage(18),
        Constraint::Length(11),
        Constraint::Fill(1),
        Constraint::Length(8),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(7),
    ];
    let table = TableWidget::new(body, widths)
        .header(header)
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
        .highlight_symbol("> ")
        .block(Block::new().borders(Borders::ALL).title(" services and routes "));
    let mut state = TableState::default().with_selected((!rows.is_empty()).then_some(ui.selected));
    frame.render_stateful_widget(table, table_area, &mut state);

    let (title, lines) = match rows.get(ui.selected) {
        Some((id, _)) => {
            let row = model.table.row(*id);
            let since = now_ns.saturating_sub(WINDOW_SECS * 1_000_000_000);
            let mut lines = Vec::new();
            for root in model.recent.slowest(*id, since, TRACES) {
                for line in model.recent.tree(&root) {
                    lines.push(tree_line(model, &line));
                }
            }
            if lines.is_empty() {
                lines.push(Line::raw(format!("no {} in the last {WINDOW_SECS}s", row.operation())));
            }
            (format!(" slowest traces: {} {} (last {WINDOW_SECS}s) ", row.service, row.operation()), lines)
        }
        None => (" slowest traces ".to_string(), vec![Line::raw("waiting for spans...")]),
    };
    frame.render_widget(Paragraph::new(lines).block(Block::new().borders(Borders::ALL).title(title)), traces_area);

    let logs: Vec<Line<'_>> = super::logs::last(LOG_LINES).into_iter().map(Line::raw).collect();
    frame.render_widget(Paragraph::new(logs).block(Block::new().borders(Borders::ALL).title(" log ")), logs_area);
}

fn tree_line<'a>(model: &Model, line: &TreeLine) -> Line<'a> {
    match line {
        TreeLine::More { depth, n } => Line::raw(format!("{}  └─ ... {n} more", indent(*depth))),
        TreeLine::Span { depth, span } => {
            let row = model.table.row(span.row);
            let branch = if *depth == 0 { String::new() } else { format!("{}  └─ ", indent(*depth)) };
            let style = if span.error { Style::new().fg(Color::Red) } else { Style::new() };
            Line::from(vec![
                Text::raw(branch),
                Text::styled(format!("{:>9}  ", duration(span.duration_ns / 1000)), style),
                Text::styled(describe(row, span), style),
            ])
        }
    }
}

fn indent(depth: usize) -> String {
    "   ".repeat(depth.saturating_sub(1))
}

/// `HTTP GET /users/* 200 [frontend]`, clients with their server.
fn describe(row: &Row, span: &TraceSpan) -> String {
    let mut s = format!("{} {} {}", row.protocol, row.operation(), span.status);
    if span.kind == SpanKind::Client {
        let host = match Value::ip(span.host) {
            Value::Ip(Some(ip)) => ip.to_string(),
            _ => "?".to_string(),
        };
        s.push_str(&format!(" -> {host}:{}", span.host_port));
    }
    s.push_str(&format!(" [{}]", row.service));
    s
}

/// A duration given in microseconds, in the unit that fits.
pub(crate) fn duration(us: u64) -> String {
    match us {
        0..1_000 => format!("{us}µs"),
        1_000..1_000_000 => format!("{:.1}ms", us as f64 / 1e3),
        _ => format!("{:.2}s", us as f64 / 1e6),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    use super::*;
    use crate::service::Service;
    use crate::span::fixtures::{Shape, span};

    #[test]
    fn durations() {
        assert_eq!(duration(850), "850µs");
        assert_eq!(duration(12_340), "12.3ms");
        assert_eq!(duration(1_200_000), "1.20s");
    }

    #[test]
    fn draws_rows_and_a_trace_tree() {
        let svc = Arc::new(Service { name: "shop".into(), ..Service::default() });
        let mut server = span(Shape::HttpServer, svc.clone(), "/checkout", 200, 120);
        let mut client = span(Shape::HttpClient, svc.clone(), "/pay", 503, 100);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
        for (s, id, parent) in [(&mut server, 1u8, 0u8), (&mut client, 2, 1)] {
            s.trace.trace_id = [7; 16];
            s.trace.span_id = [id; 8];
            s.trace.parent_span_id = [parent; 8];
            s.end_ns = now - 1_000_000;
            s.request_start_ns = s.end_ns - if id == 1 { 120_000_000 } else { 100_000_000 };
            s.start_ns = s.request_start_ns;
        }
        let mut model = Model::default();
        model.ingest(&[client, server]);
        let mut ui = Ui { sort: super::super::Sort::P99, selected: 0 };
        let mut terminal = Terminal::new(TestBackend::new(120, 30)).unwrap();
        terminal.draw(|f| draw(f, &model, &mut ui, 0, &mut Scratch::default())).unwrap();
        let screen: Vec<String> = terminal
            .backend()
            .buffer()
            .content()
            .chunks(120)
            .map(|line| line.iter().map(|c| c.symbol()).collect::<String>())
            .collect();
        let text = screen.join("\n");
        let row = screen.iter().find(|l| l.contains("GET /checkout")).unwrap_or_else(|| panic!("{text}"));
        assert!(row.contains("shop") && row.contains("HTTP "), "{text}");
        assert!(text.contains("slowest traces: shop GET /checkout"), "{text}");
        let root = screen.iter().position(|l| l.contains("HTTP GET /checkout 200 [shop]")).expect(&text);
        assert!(
            screen[root + 1].contains("└─") && screen[root + 1].contains("HTTPClient GET /pay 503 -> 127.0.0.1:8080"),
            "{text}"
        );
    }
}
