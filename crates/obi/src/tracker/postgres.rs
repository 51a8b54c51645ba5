//! PostgreSQL on one connection, from either side: recognises the
//! startup message, decodes both directions and turns each simple `Query`
//! and each extended-protocol `Execute` into a span that ends with its
//! result (or error), in order, so pipelined statements pair correctly.
//!
//! The text of an `Execute` is that of the statement its portal was bound
//! to, remembered per connection: the unnamed statement and every named
//! one (`Parse`), and each portal (`Bind`), until `Close`.
//!
//! Not parsed: connections that switch to TLS (their plaintext reaches the
//! tracker through the OpenSSL probes as a connection of its own only when
//! the client uses a traced libssl) and connections joined after their
//! startup message. A traced server's backends give the same spans as
//! server spans (`SQLServer`, which OBI does not have: it traces clients only).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use obi_protocols::postgres::{self, Event as PgEvent, Message, MessageStream};
use obi_protocols::sql::Dialect;

use super::event::Event;
use super::session::{Detect, Feed, Io, Piece, Protocol, Session, SessionCx, Side};
use super::sql_statement::{Op, Statement, finish};
use super::trace_ids;
use crate::span::TraceContext;
use crate::span::db::{DbCall, DbError};

/// PostgreSQL, recognised by the client's startup (or SSL request) message.
pub(crate) struct Postgres;

impl Protocol for Postgres {
    fn name(&self) -> &'static str {
        "postgresql"
    }

    fn detect(&self, ev: &Event<'_>) -> Detect {
        Detect::client_message(postgres::looks_like_startup(ev.data))
    }

    fn new_session(&self) -> Box<dyn Session> {
        Box::new(PgSession::default())
    }
}

/// Statements, or portals, remembered per connection beyond this: the
/// oldest are forgotten (their executions get spans without text).
const MAX_NAMED: usize = 4096;
/// Messages waiting for the server beyond this: the connection is given up.
const MAX_PENDING: usize = 16384;

/// A client message the server will answer, in order.
#[derive(Debug)]
enum Pending {
    Parse(Prepare),
    Bind,
    Describe,
    Close,
    Sync,
    Execute(Op),
    Query(Op),
    /// A `FunctionCall` (no span: it runs a function by its OID).
    Function,
}

/// A `Parse`, kept until the server answers it: a statement the server
/// refuses with no `Execute` of it before the `Sync` (asyncpg prepares in a
/// round trip of its own) failed all the same, and is the span.
#[derive(Debug)]
struct Prepare {
    statement: Arc<Statement>,
    start_mono: u64,
    kernel: Option<TraceContext>,
}

#[derive(Default)]
struct PgSession {
    client: Option<MessageStream>,
    server: Option<MessageStream>,
    statements: HashMap<Vec<u8>, Arc<Statement>>,
    portals: HashMap<Vec<u8>, Arc<Statement>>,
    pending: VecDeque<Pending>,
    /// When the message being decoded started (the send that began it).
    msg_start: Option<u64>,
    last_kernel_span: [u8; 8],
    /// The client asked for SSL or GSS encryption: the server answers with one byte.
    encryption_requested: bool,
    /// The connection became encrypted: nothing more to read here.
    encrypted: bool,
    invalid: bool,
    /// The database the client connected to (its startup message).
    database: String,
    /// Messages of the current event (buffers reused).
    copied: Copied,
}

impl PgSession {
    fn on_client(&mut self, io: &Io<'_>, cx: &mut SessionCx<'_>) {
        let keep = cx.settings.db_query_literals;
        let stream = self.client.get_or_insert_with(|| MessageStream::new(true));
        let mut start = if stream.at_boundary() { io.ts } else { self.msg_start.unwrap_or(io.ts) };
        let mut copied = std::mem::take(&mut self.copied);
        copied.clear();
        {
            let invalid = &mut self.invalid;
            let mut on = |e: PgEvent<'_>| match e {
                // Only the bodies that carry statement text or names.
                PgEvent::Message(m) => copied.push(&m, matches!(m.tag, 0 | b'Q' | b'P' | b'B' | b'E' | b'C')),
                PgEvent::Invalid => *invalid = true,
            };
            feed_event(stream, io, &mut on);
        }
        let at_boundary = stream.at_boundary();
        for h in &copied.heads {
            let began = std::mem::replace(&mut start, io.ts);
            self.client_message(h.tag, h.code, &copied.bytes[h.body.clone()], h.cut, began, io, keep, cx.server);
        }
        self.copied = copied;
        self.msg_start = (!at_boundary).then_some(start);
    }

    #[allow(clippy::too_many_arguments)]
    fn client_message(
        &mut self,
        tag: u8,
        code: Option<u32>,
        body: &[u8],
        cut: bool,
        start: u64,
        io: &Io<'_>,
        keep: bool,
        server: bool,
    ) {
        let op = |call: DbCall, last: &mut [u8; 8]| Op {
            call,
            start_mono: start,
            ctx: trace_ids::request_context(last, io.kernel_ctx, server),
        };
        let item = match tag {
            0 => {
                match code {
                    Some(postgres::SSL_REQUEST | postgres::GSS_REQUEST) => self.encryption_requested = true,
                    Some(postgres::PROTOCOL_3) => self.database = postgres::startup_database(body).to_string(),
                    _ => self.invalid = true,
                }
                return;
            }
            b'Q' => {
                let text = postgres::cstr(body).map_or(body, |(q, _)| q);
                let call = Statement::new(text, cut, Dialect::Postgres, keep).call("postgresql", &self.database);
                Pending::Query(op(call, &mut self.last_kernel_span))
            }
            b'P' => {
                let Some((name, text)) = postgres::parse_message(body) else {
                    self.invalid = !cut;
                    return;
                };
                let statement = Arc::new(Statement::new(text, cut, Dialect::Postgres, keep));
                remember(&mut self.statements, name, statement.clone());
                Pending::Parse(Prepare { statement, start_mono: start, kernel: io.kernel_ctx })
            }
            b'B' => {
                if let Some((portal, stmt)) = postgres::bind_message(body) {
                    match self.statements.get(stmt).cloned() {
                        Some(s) => remember(&mut self.portals, portal, s),
                        None => {
                            self.portals.remove(portal);
                        }
                    }
                }
                Pending::Bind
            }
            b'E' => {
                let portal = postgres::cstr(body).map_or(&b""[..], |(p, _)| p);
                let call = self.portals.get(portal).map(|s| s.call("postgresql", &self.database));
                let call = call.unwrap_or_else(|| DbCall { system: "postgresql", ..Default::default() });
                Pending::Execute(op(call, &mut self.last_kernel_span))
            }
            b'C' => {
                match postgres::target_message(body) {
                    Some((b'S', name)) => self.statements.remove(name),
                    Some((_, name)) => self.portals.remove(name),
                    None => None,
                };
                Pending::Close
            }
            b'D' => Pending::Describe,
            b'S' => Pending::Sync,
            b'F' => Pending::Function,
            // Flush, Terminate, password and SASL messages (never shown),
            // COPY data from the client: nothing to answer or to show.
            b'H' | b'X' | b'p' | b'd' | b'c' | b'f' => return,
            _ => {
                self.invalid = true;
                return;
            }
        };
        self.pending.push_back(item);
    }

    fn on_server(&mut self, io: &Io<'_>, cx: &mut SessionCx<'_>) {
        let mut data = io.data;
        if self.encryption_requested {
            // One byte, `S` (or `G`): encryption follows; `N`: plaintext goes on.
            let Some((&answer, rest)) = data.split_first() else { return };
            self.encryption_requested = false;
            if answer != b'N' {
                self.encrypted = true;
                return;
            }
            if let Some(c) = self.client.as_mut() {
                c.expect_untyped();
            }
            data = rest;
        }
        let stream = self.server.get_or_insert_with(|| MessageStream::new(false));
        let mut copied = std::mem::take(&mut self.copied);
        copied.clear();
        {
            let invalid = &mut self.invalid;
            let mut on = |e: PgEvent<'_>| match e {
                // Only errors' bodies: their SQLSTATE and message.
                PgEvent::Message(m) => copied.push(&m, m.tag == b'E'),
                PgEvent::Invalid => *invalid = true,
            };
            let io = Io { data, ..*io };
            feed_event(stream, &io, &mut on);
        }
        for h in &copied.heads {
            if !self.answer(h.tag, &copied.bytes[h.body.clone()], io.ts, cx) {
                self.invalid = true;
                break;
            }
        }
        self.copied = copied;
    }

    /// A server message answers the oldest pending client message; false if
    /// it cannot (we lost track of the conversation).
    fn answer(&mut self, tag: u8, body: &[u8], ts: u64, cx: &mut SessionCx<'_>) -> bool {
        match tag {
            b'1' => matches!(self.pending.pop_front(), Some(Pending::Parse(_))),
            b'2' => matches!(self.pending.pop_front(), Some(Pending::Bind)),
            b'3' => matches!(self.pending.pop_front(), Some(Pending::Close)),
            b'n' => matches!(self.pending.pop_front(), Some(Pending::Describe)),
            b'T' => {
                if matches!(self.pending.front(), Some(Pending::Describe)) {
                    self.pending.pop_front();
                }
                true
            }
            b'C' | b'I' | b's' => match self.pending.front() {
                Some(Pending::Execute(_)) => {
                    if let Some(Pending::Execute(op)) = self.pending.pop_front() {
                        finish(op, ts, cx);
                    }
                    true
                }
                // A simple query ends with ReadyForQuery (it may hold several statements).
                Some(Pending::Query(_)) => true,
                _ => false,
            },
            b'E' => {
                self.on_error(body, ts, cx);
                true
            }
            b'Z' => {
                self.on_ready(ts, cx);
                true
            }
            // Rows, COPY, notices, notifications, parameters, startup and
            // authentication messages, function results: nothing to pair.
            b'D' | b'd' | b'c' | b'G' | b'H' | b'W' | b'N' | b'A' | b'S' | b'K' | b'R' | b'v' | b't' | b'V' => true,
            _ => false,
        }
    }

    /// An `ErrorResponse`: the statement running fails; in the extended
    /// protocol the server then skips everything up to `Sync`.
    fn on_error(&mut self, body: &[u8], ts: u64, cx: &mut SessionCx<'_>) {
        let fields = postgres::error_fields(body);
        let error = DbError {
            code: String::from_utf8_lossy(fields.code).into_owned(),
            message: String::from_utf8_lossy(fields.message).into_owned(),
        };
        match self.pending.front_mut() {
            Some(Pending::Query(op)) => {
                op.call.error.get_or_insert(error);
            }
            Some(Pending::Execute(_)) => {
                if let Some(Pending::Execute(mut op)) = self.pending.pop_front() {
                    op.call.error = Some(error);
                    finish(op, ts, cx);
                }
            }
            Some(Pending::Parse(_) | Pending::Bind | Pending::Describe | Pending::Close | Pending::Function) => {
                // The statement this message prepared fails: its Execute,
                // if one was sent before the Sync, carries the error; else a
                // refused Parse is the failed call.
                let failed = self.pending.pop_front();
                let execute = self
                    .pending
                    .iter()
                    .take_while(|p| !matches!(p, Pending::Sync))
                    .position(|p| matches!(p, Pending::Execute(_)));
                if let Some(Some(Pending::Execute(mut op))) = execute.map(|i| self.pending.remove(i)) {
                    op.call.error = Some(error);
                    finish(op, ts, cx);
                } else if let Some(Pending::Parse(prepare)) = failed {
                    let mut call = prepare.statement.call("postgresql", &self.database);
                    call.error = Some(error);
                    let ctx = trace_ids::request_context(&mut self.last_kernel_span, prepare.kernel, cx.server);
                    finish(Op { call, start_mono: prepare.start_mono, ctx }, ts, cx);
                }
            }
            // Startup or authentication failed: no statement ran.
            Some(Pending::Sync) | None => {}
        }
    }

    /// `ReadyForQuery`: the simple query, or everything up to the `Sync`, is over.
    fn on_ready(&mut self, ts: u64, cx: &mut SessionCx<'_>) {
        while let Some(p) = self.pending.pop_front() {
            match p {
                Pending::Query(op) => return finish(op, ts, cx),
                Pending::Sync | Pending::Function => return,
                // Skipped by the server after an error: never ran.
                Pending::Execute(_) => cx.stats.unanswered_requests += 1,
                _ => {}
            }
        }
    }
}

/// The messages of one event, copied out of the stream's buffer into
/// buffers reused from event to event.
#[derive(Default)]
struct Copied {
    heads: Vec<Head>,
    bytes: Vec<u8>,
}

struct Head {
    tag: u8,
    /// For an untyped message, its code.
    code: Option<u32>,
    body: std::ops::Range<usize>,
    cut: bool,
}

impl Copied {
    fn clear(&mut self) {
        self.heads.clear();
        self.bytes.clear();
    }

    fn push(&mut self, m: &Message<'_>, with_body: bool) {
        let start = self.bytes.len();
        if with_body {
            self.bytes.extend_from_slice(m.body);
        }
        self.heads.push(Head { tag: m.tag, code: m.startup_code(), body: start..self.bytes.len(), cut: m.cut });
    }
}

fn remember(map: &mut HashMap<Vec<u8>, Arc<Statement>>, name: &[u8], stmt: Arc<Statement>) {
    if map.len() >= MAX_NAMED && !map.contains_key(name) {
        tracing::debug!(component = "tracker", "postgresql connection holds too many statements: forgetting them");
        map.clear();
    }
    map.insert(name.to_vec(), stmt);
}

/// Feeds an event's bytes, captured or not, to a decoder.
fn feed_event(stream: &mut MessageStream, io: &Io<'_>, on: &mut dyn FnMut(PgEvent<'_>)) {
    for piece in io.pieces() {
        match piece {
            Piece::Bytes(b) => stream.feed(b, on),
            Piece::Gap(n) => stream.gap(n, on),
        }
    }
}

impl Session for PgSession {
    fn on_data(&mut self, io: &Io<'_>, cx: &mut SessionCx<'_>) -> Feed {
        match io.side {
            Side::Request => self.on_client(io, cx),
            Side::Response => self.on_server(io, cx),
        }
        if self.invalid || self.pending.len() > MAX_PENDING {
            cx.stats.parse_failures += 1;
            cx.stats.unanswered_requests += self.pending.iter().filter(|p| is_op(p)).count() as u64;
            self.pending.clear();
            return Feed::Lost;
        }
        if self.encrypted {
            tracing::debug!(component = "tracker", "postgresql connection switched to TLS: no longer parsed here");
            return Feed::Lost;
        }
        Feed::Ok
    }

    fn on_close(&mut self, _ts: u64, cx: &mut SessionCx<'_>) {
        cx.stats.unanswered_requests += self.pending.iter().filter(|p| is_op(p)).count() as u64;
        self.pending.clear();
    }
}

fn is_op(p: &Pending) -> bool {
    matches!(p, Pending::Execute(_) | Pending::Query(_))
}

#[cfg(test)]
mod tests;
