//! MySQL (and MariaDB) on one connection, from either side:
//! recognises the server's greeting (or, on a connection joined later, a
//! client's first `COM_QUERY`/`COM_STMT_PREPARE`), follows the login
//! without showing it, then pairs each command with its answer, in order.
//!
//! Spans: one per `COM_QUERY` (a multi-statement query is one span, ending
//! with its last result set), one per `COM_STMT_EXECUTE` with the text of
//! the statement its id was prepared from, and one per *failed*
//! `COM_STMT_PREPARE` (a prepared statement that never runs; a successful
//! prepare is remembered, not shown, as PostgreSQL's `Parse`). Pings,
//! `COM_INIT_DB` (which sets `db.namespace`), closes and the rest are
//! followed but are not spans.
//!
//! A connection that switches to TLS stops being parsed at its TLS
//! request (not a failure); when the client's libssl is traced, the
//! plaintext comes as a connection of its own that starts with the rest of
//! the login, and is parsed from there (the greeting, and with it the
//! server's name, is not part of it: such spans say `mysql`).
//!
//! Not parsed: compressed connections. A traced server gives the same spans
//! as server spans (`SQLServer`, which OBI does not have: it traces clients
//! only).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use obi_protocols::mysql::{self, Event as MyEvent, Packet, PacketStream};
use obi_protocols::sql::Dialect;

use super::event::Event;
use super::session::{Detect, Feed, Io, Piece, Protocol, Session, SessionCx, Side};
use super::sql_statement::{Op, Statement, finish};
use super::trace_ids;
use crate::span::db::{DbCall, DbError};

/// MySQL, recognised by the server's greeting or a client's first statement.
pub(crate) struct MySql;

impl Protocol for MySql {
    fn name(&self) -> &'static str {
        "mysql"
    }

    fn detect(&self, ev: &Event<'_>) -> Detect {
        let greeting = match mysql::looks_like_greeting(ev.data) {
            Some(false) => mysql::looks_like_greeting_payload(ev.data),
            other => other,
        };
        let client = match mysql::looks_like_command(ev.data) {
            Some(false) => mysql::looks_like_tls_login(ev.data),
            other => other,
        };
        match (greeting, client) {
            (Some(true), _) => Detect::Yes { sender_is_client: Some(false) },
            (_, Some(true)) => Detect::Yes { sender_is_client: Some(true) },
            (Some(false), Some(false)) => Detect::No,
            _ => Detect::NeedMore,
        }
    }

    fn new_session(&self) -> Box<dyn Session> {
        Box::new(MySession::default())
    }
}

/// Prepared statements remembered per connection beyond this: the oldest
/// are forgotten (their executions get spans without text).
const MAX_STATEMENTS: usize = 4096;
/// Commands waiting for the server beyond this: the connection is given up.
const MAX_PENDING: usize = 16384;
/// The statement id MariaDB clients execute to mean "the one just prepared".
const LAST_PREPARED: u32 = u32::MAX;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing seen yet.
    #[default]
    Start,
    /// The greeting came: the client's login is next.
    Login,
    /// Authentication: ends with the server's OK.
    Auth,
    Commands,
    /// Login failed: the server closes the connection.
    Closed,
}

/// A command the server will answer, in order.
#[derive(Debug)]
enum Pending {
    /// `COM_QUERY`: result sets until one that says no more follow.
    Query(Op),
    /// `COM_STMT_EXECUTE`: the same answer, rows in binary.
    Execute(Op),
    /// `COM_STMT_PREPARE`: a span only if it fails.
    Prepare(Op, Arc<Statement>),
    /// `COM_INIT_DB`: the database becomes the namespace when it succeeds.
    InitDb(String),
    /// One OK, ERR or EOF packet (ping, reset, set option...).
    Simple,
    /// `COM_STATISTICS`: one packet of text.
    Statistics,
    /// `COM_FIELD_LIST`, `COM_STMT_FETCH`: packets up to an EOF/OK or ERR.
    Rows,
    /// `COM_CHANGE_USER`: the login starts over.
    ChangeUser,
}

/// Where the answer to the oldest pending command is.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Stage {
    #[default]
    First,
    /// Column (or parameter) definitions still to come.
    Defs {
        left: u64,
        then: After,
    },
    /// The EOF that follows definitions unless `CLIENT_DEPRECATE_EOF`.
    MaybeEof(After),
    Rows,
    /// `LOAD DATA LOCAL`: the client sends a file, then the server answers.
    LocalInfile,
}

/// What follows a block of definitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    Rows,
    /// A prepared statement's column definitions (after its parameters').
    Columns(u16),
    Done,
}

/// What a server packet did to the answer.
enum Step {
    Consumed,
    /// The packet belongs to the next stage (or the next answer): again.
    Again,
    Invalid,
}

struct Conversation {
    phase: Phase,
    /// `mysql`, or `mariadb` when the greeting's version says so.
    system: &'static str,
    database: String,
    server_capabilities: u32,
    /// Whether result sets skip the EOF after definitions; unknown on
    /// connections joined after their login (then each packet tells).
    deprecate_eof: Option<bool>,
    /// `COM_QUERY` carries query attributes before its text (MySQL 8);
    /// unknown on connections joined after their login.
    query_attributes: Option<bool>,
    statements: HashMap<u32, Arc<Statement>>,
    last_prepared: Option<Arc<Statement>>,
    pending: VecDeque<Pending>,
    stage: Stage,
    /// Sequence id the next server packet of the answer must carry (the
    /// first carries 1); any, after `LOAD DATA LOCAL` or a skipped gap.
    next_seq: Option<u8>,
    any_seq: bool,
    /// A gap hid rows: waiting for a read that ends with the result's end.
    skipping: bool,
    /// When the command being decoded started (the send that began it).
    cmd_start: Option<u64>,
    last_kernel_span: [u8; 8],
    invalid: bool,
    /// The connection switched to TLS or compression: nothing more to read here.
    stopped: Option<&'static str>,
}

impl Default for Conversation {
    fn default() -> Self {
        Conversation {
            phase: Phase::Start,
            system: "mysql",
            database: String::new(),
            server_capabilities: 0,
            deprecate_eof: None,
            query_attributes: None,
            statements: HashMap::new(),
            last_prepared: None,
            pending: VecDeque::new(),
            stage: Stage::First,
            next_seq: None,
            any_seq: false,
            skipping: false,
            cmd_start: None,
            last_kernel_span: [0; 8],
            invalid: false,
            stopped: None,
        }
    }
}

#[derive(Default)]
struct MySession {
    client: PacketStream,
    server: PacketStream,
    conv: Conversation,
}

impl MySession {
    fn on_client(&mut self, io: &Io<'_>, cx: &mut SessionCx<'_>) {
        let conv = &mut self.conv;
        let mut start = if self.client.at_boundary() { io.ts } else { conv.cmd_start.unwrap_or(io.ts) };
        let mut on = |e: MyEvent<'_>| match e {
            MyEvent::Packet(p) => {
                let began = std::mem::replace(&mut start, io.ts);
                conv.client_packet(&p, began, io, cx);
            }
            MyEvent::Invalid => conv.invalid = true,
        };
        for piece in io.pieces() {
            match piece {
                Piece::Bytes(b) => self.client.feed(b, &mut on),
                Piece::Gap(n) => self.client.gap(n, &mut on),
            }
        }
        self.conv.cmd_start = (!self.client.at_boundary()).then_some(start);
        // A packet still coming must be numbered as the login or a command
        // is: garbage is told at once, not after megabytes.
        let conv = &mut self.conv;
        let expected = match conv.phase {
            Phase::Login => Some(1),
            Phase::Commands if conv.stage != Stage::LocalInfile => Some(0),
            _ => None,
        };
        if let (Some(seq), Some(expected)) = (self.client.started_seq(), expected)
            && seq != expected
        {
            conv.invalid = true;
        }
    }

    fn on_server(&mut self, io: &Io<'_>, cx: &mut SessionCx<'_>) {
        if self.conv.phase == Phase::Start && mysql::looks_like_greeting_payload(io.data) == Some(true) {
            // The client read the greeting's header apart, before the
            // connection was recognised: the payload comes alone.
            let packet = Packet { seq: 0, len: io.data.len() as u32, payload: io.data, cut: io.missing > 0 };
            if !self.conv.server_packet(&packet, io.ts, cx) {
                self.conv.invalid = true;
            }
            return;
        }
        let mut pieces = io.pieces().peekable();
        while let Some(piece) = pieces.next() {
            let last = pieces.peek().is_none();
            let conv = &mut self.conv;
            if conv.skipping {
                // Only the end of the read tells whether the rows ended.
                if let (true, Piece::Bytes(b)) = (last, piece)
                    && let Some(status) = mysql::ends_with_terminator(b)
                {
                    conv.skipping = false;
                    conv.any_seq = true;
                    conv.result_ended(status, io.ts, cx);
                    self.server.reset();
                }
                continue;
            }
            let mut on = |e: MyEvent<'_>| match e {
                MyEvent::Packet(p) => {
                    if !conv.server_packet(&p, io.ts, cx) {
                        conv.invalid = true;
                    }
                }
                // Rows need not be read: the read's end may tell where they end.
                MyEvent::Invalid if conv.stage == Stage::Rows && !conv.pending.is_empty() => conv.skipping = true,
                MyEvent::Invalid => conv.invalid = true,
            };
            match piece {
                Piece::Bytes(b) => self.server.feed(b, &mut on),
                Piece::Gap(n) => self.server.gap(n, &mut on),
            }
        }
        // A packet still coming must be numbered as one of this answer or
        // the next: garbage is told at once, not after megabytes.
        let conv = &mut self.conv;
        if let Some(seq) = self.server.started_seq()
            && conv.phase == Phase::Commands
            && !conv.any_seq
            && !conv.skipping
            && seq != 1
            && Some(seq) != conv.next_seq
        {
            conv.invalid = true;
        }
    }
}

impl Conversation {
    fn client_packet(&mut self, p: &Packet<'_>, start: u64, io: &Io<'_>, cx: &mut SessionCx<'_>) {
        match self.phase {
            Phase::Start if p.seq == 0 => {
                // Joined after the login: the first command tells the protocol.
                self.phase = Phase::Commands;
                self.command(p, start, io, cx);
            }
            Phase::Login if p.seq == 1 => self.login(p.payload),
            // TLS plaintext (the OpenSSL probes) starts with the login's second part.
            Phase::Start if p.seq == 2 => self.login(p.payload),
            Phase::Auth | Phase::Closed => {}
            Phase::Commands if p.seq == 0 => self.command(p, start, io, cx),
            // The file of a `LOAD DATA LOCAL`.
            Phase::Commands if self.stage == Stage::LocalInfile => {}
            _ => self.invalid = true,
        }
    }

    /// The client's login: its database, whether TLS or compression follows.
    /// The password is skipped, never read into anything.
    fn login(&mut self, payload: &[u8]) {
        let Some(login) = mysql::login(payload) else {
            self.invalid = true;
            return;
        };
        if login.ssl_request {
            self.stopped = Some("switched to TLS");
            return;
        }
        if login.capabilities & mysql::CLIENT_COMPRESS != 0 {
            self.stopped = Some("compressed");
            return;
        }
        if self.phase == Phase::Login {
            let both = login.capabilities & self.server_capabilities;
            self.deprecate_eof = Some(both & mysql::CLIENT_DEPRECATE_EOF != 0);
            self.query_attributes = Some(both & mysql::CLIENT_QUERY_ATTRIBUTES != 0);
        }
        self.database = login.database.map(|d| String::from_utf8_lossy(d).into_owned()).unwrap_or_default();
        self.phase = Phase::Auth;
    }

    fn command(&mut self, p: &Packet<'_>, start: u64, io: &Io<'_>, cx: &mut SessionCx<'_>) {
        let Some((&code, body)) = p.payload.split_first() else {
            self.invalid = true;
            return;
        };
        if self.skipping {
            // A new command: the last answer ended unseen.
            self.skipping = false;
            cx.stats.unanswered_requests += 1;
            self.end_answer();
        }
        let keep = cx.settings.db_query_literals;
        let mut op = |call: DbCall| Op {
            call,
            start_mono: start,
            ctx: trace_ids::request_context(&mut self.last_kernel_span, io.kernel_ctx, cx.server),
        };
        let item = match code {
            mysql::COM_QUERY => {
                // With attributes (or unknown, and the body cannot be text:
                // it starts with a NUL count), the text follows them.
                let with_attributes = match self.query_attributes {
                    Some(known) => known,
                    None => body.first() == Some(&0),
                };
                let text = if with_attributes { mysql::query_text_after_attributes(body) } else { Some(body) };
                let call = match text {
                    Some(text) => Statement::new(text, p.cut, Dialect::MySql, keep).call(self.system, &self.database),
                    None => DbCall { system: self.system, namespace: self.database.clone(), ..Default::default() },
                };
                Pending::Query(op(call))
            }
            mysql::COM_STMT_PREPARE => {
                let stmt = Arc::new(Statement::new(body, p.cut, Dialect::MySql, keep));
                Pending::Prepare(op(stmt.call(self.system, &self.database)), stmt)
            }
            mysql::COM_STMT_EXECUTE => {
                let id = mysql::statement_id(p.payload);
                let stmt = match id {
                    // Sent with its prepare (MariaDB's execute-direct), or after it.
                    Some(LAST_PREPARED) => self
                        .pending
                        .iter()
                        .rev()
                        .find_map(|p| if let Pending::Prepare(_, s) = p { Some(s) } else { None })
                        .or(self.last_prepared.as_ref()),
                    Some(id) => self.statements.get(&id),
                    None => None,
                };
                let call = match stmt {
                    Some(s) => s.call(self.system, &self.database),
                    None => DbCall { system: self.system, namespace: self.database.clone(), ..Default::default() },
                };
                Pending::Execute(op(call))
            }
            mysql::COM_STMT_CLOSE => {
                if let Some(id) = mysql::statement_id(p.payload) {
                    self.statements.remove(&id);
                }
                return;
            }
            // No answer.
            mysql::COM_QUIT | mysql::COM_STMT_SEND_LONG_DATA => return,
            mysql::COM_INIT_DB => Pending::InitDb(String::from_utf8_lossy(body).into_owned()),
            mysql::COM_RESET_CONNECTION => {
                self.statements.clear();
                Pending::Simple
            }
            mysql::COM_PING
            | mysql::COM_STMT_RESET
            | mysql::COM_SET_OPTION
            | mysql::COM_PROCESS_KILL
            | mysql::COM_REFRESH
            | mysql::COM_DEBUG => Pending::Simple,
            mysql::COM_STATISTICS => Pending::Statistics,
            mysql::COM_FIELD_LIST | mysql::COM_STMT_FETCH => Pending::Rows,
            mysql::COM_CHANGE_USER => Pending::ChangeUser,
            // Replication, or not MySQL.
            _ => {
                self.invalid = true;
                return;
            }
        };
        self.pending.push_back(item);
    }

    /// A server packet; false if it cannot be (we lost track of the conversation).
    fn server_packet(&mut self, p: &Packet<'_>, ts: u64, cx: &mut SessionCx<'_>) -> bool {
        let first = p.payload.first().copied();
        match self.phase {
            Phase::Start => {
                let Some(greeting) = mysql::greeting(p.payload).filter(|_| p.seq == 0) else {
                    return false;
                };
                if greeting.server_version.windows(7).any(|w| w == b"MariaDB") {
                    self.system = "mariadb";
                }
                self.server_capabilities = greeting.capabilities;
                self.phase = Phase::Login;
                true
            }
            // Refused before the login (too many connections, blocked host).
            Phase::Login => first == Some(0xff),
            Phase::Auth => {
                match first {
                    Some(0x00) => self.phase = Phase::Commands,
                    Some(0xff) => self.phase = Phase::Closed,
                    // Auth switch, more auth data.
                    _ => {}
                }
                true
            }
            Phase::Closed => true,
            Phase::Commands => self.answer(p, ts, cx),
        }
    }

    fn answer(&mut self, p: &Packet<'_>, ts: u64, cx: &mut SessionCx<'_>) -> bool {
        if mysql::error(p.payload).is_some_and(|e| e.code == mysql::PROGRESS_REPORT) {
            self.next_seq = Some(p.seq.wrapping_add(1));
            return true;
        }
        loop {
            if self.pending.is_empty() {
                // The server closing the connection says why (idle timeout, kill).
                return mysql::error(p.payload).is_some();
            }
            let expected = self.next_seq;
            if !self.any_seq && p.seq != expected.unwrap_or(1) {
                // A prepare's definitions may end its answer without an EOF.
                if self.stage == Stage::MaybeEof(After::Done) && p.seq == 1 && self.deprecate_eof != Some(false) {
                    self.deprecate_eof = Some(true);
                    self.end_answer();
                    continue;
                }
                return false;
            }
            self.next_seq = Some(p.seq.wrapping_add(1));
            match self.step(p, ts, cx) {
                Step::Consumed => return true,
                Step::Invalid => return false,
                Step::Again => {
                    // Still the same answer: the packet's sequence id was right.
                    if self.next_seq.is_some() {
                        self.next_seq = expected;
                    }
                }
            }
        }
    }

    fn step(&mut self, p: &Packet<'_>, ts: u64, cx: &mut SessionCx<'_>) -> Step {
        let Some(&first) = p.payload.first() else { return Step::Invalid };
        let Some(front) = self.pending.front() else { return Step::Invalid };
        match self.stage {
            Stage::First => match front {
                Pending::Query(_) | Pending::Execute(_) => match first {
                    0x00 => match mysql::status(p.payload, p.len) {
                        Some(status) => self.result_ended(status, ts, cx),
                        None => return Step::Invalid,
                    },
                    0xff => self.failed(p.payload, ts, cx),
                    0xfb if matches!(front, Pending::Query(_)) => {
                        self.stage = Stage::LocalInfile;
                        self.any_seq = true;
                    }
                    _ => match mysql::column_count(p.payload) {
                        Some((0, _)) | None => return Step::Invalid,
                        Some((n, true)) => self.stage = Stage::Defs { left: n, then: After::Rows },
                        Some((_, false)) => self.stage = Stage::MaybeEof(After::Rows),
                    },
                },
                Pending::Prepare(..) => match first {
                    0x00 => {
                        let Some(ok) = mysql::prepared(p.payload) else { return Step::Invalid };
                        if let Some(Pending::Prepare(_, stmt)) = self.pending.front() {
                            self.remember(ok.statement_id, stmt.clone());
                        }
                        self.stage = match (ok.params, ok.columns) {
                            (0, 0) => {
                                self.end_answer();
                                return Step::Consumed;
                            }
                            (0, c) => Stage::Defs { left: c.into(), then: After::Done },
                            (n, 0) => Stage::Defs { left: n.into(), then: After::Done },
                            (n, c) => Stage::Defs { left: n.into(), then: After::Columns(c) },
                        };
                    }
                    0xff => self.failed(p.payload, ts, cx),
                    _ => return Step::Invalid,
                },
                Pending::InitDb(_) | Pending::Simple => {
                    if !matches!(first, 0x00 | 0xfe | 0xff) {
                        return Step::Invalid;
                    }
                    if let (0x00, Some(Pending::InitDb(db))) = (first, self.pending.front_mut()) {
                        self.database = std::mem::take(db);
                    }
                    self.end_answer();
                }
                Pending::Statistics => self.end_answer(),
                Pending::Rows => {
                    self.stage = Stage::Rows;
                    return Step::Again;
                }
                Pending::ChangeUser => {
                    if !matches!(first, 0x00 | 0xff) {
                        // Authentication goes on: it ends with OK or ERR.
                        self.phase = Phase::Auth;
                    }
                    self.end_answer();
                }
            },
            Stage::Defs { left, then } => {
                // A column definition starts with its catalog, always "def".
                if !p.payload.starts_with(b"\x03def") {
                    return Step::Invalid;
                }
                self.stage = if left > 1 { Stage::Defs { left: left - 1, then } } else { Stage::MaybeEof(then) };
            }
            Stage::MaybeEof(then) => {
                let eof = mysql::is_eof(p.payload, p.len);
                match (self.deprecate_eof, eof) {
                    (Some(true), _) | (None, false) => {
                        self.deprecate_eof = Some(true);
                        self.after_defs(then);
                        return Step::Again;
                    }
                    (Some(false), false) => return Step::Invalid,
                    (_, true) => {
                        self.deprecate_eof = Some(false);
                        let status = mysql::status(p.payload, p.len).unwrap_or(0);
                        if then == After::Rows && status & mysql::SERVER_STATUS_CURSOR_EXISTS != 0 {
                            // Rows will come with COM_STMT_FETCH.
                            self.result_ended(status, ts, cx);
                        } else {
                            self.after_defs(then);
                        }
                    }
                }
            }
            Stage::Rows => {
                if first == 0xff {
                    self.failed(p.payload, ts, cx);
                } else if mysql::is_terminator(p.payload, p.len) {
                    let Some(status) = mysql::status(p.payload, p.len) else { return Step::Invalid };
                    self.result_ended(status, ts, cx);
                }
            }
            Stage::LocalInfile => match first {
                0x00 => match mysql::status(p.payload, p.len) {
                    Some(status) => self.result_ended(status, ts, cx),
                    None => return Step::Invalid,
                },
                0xff => self.failed(p.payload, ts, cx),
                _ => return Step::Invalid,
            },
        }
        Step::Consumed
    }

    fn after_defs(&mut self, then: After) {
        match then {
            After::Rows => self.stage = Stage::Rows,
            After::Columns(c) => self.stage = Stage::Defs { left: c.into(), then: After::Done },
            After::Done => self.end_answer(),
        }
    }

    /// A result (OK, or the end of rows): the statement is over unless
    /// another result set follows.
    fn result_ended(&mut self, status: u16, ts: u64, cx: &mut SessionCx<'_>) {
        if status & mysql::SERVER_MORE_RESULTS_EXISTS != 0 {
            self.stage = Stage::First;
            return;
        }
        match self.pending.pop_front() {
            Some(Pending::Query(op)) => {
                if let Some(db) = used_database(&op.call) {
                    self.database = db.to_string();
                }
                finish(op, ts, cx);
            }
            Some(Pending::Execute(op)) => finish(op, ts, cx),
            _ => {}
        }
        self.end_answer_popped();
    }

    /// An ERR packet ends the answer; a statement gets it as its error.
    fn failed(&mut self, payload: &[u8], ts: u64, cx: &mut SessionCx<'_>) {
        let error = mysql::error(payload).map(|e| DbError {
            code: e.code.to_string(),
            // As the client library prints it: `(42S02) Table ... doesn't exist`.
            message: if e.state.is_empty() {
                String::from_utf8_lossy(e.message).into_owned()
            } else {
                format!("({}) {}", String::from_utf8_lossy(e.state), String::from_utf8_lossy(e.message))
            },
        });
        if let Some(Pending::Query(mut op) | Pending::Execute(mut op) | Pending::Prepare(mut op, _)) =
            self.pending.pop_front()
        {
            op.call.error = error;
            finish(op, ts, cx);
        }
        self.end_answer_popped();
    }

    fn end_answer(&mut self) {
        self.pending.pop_front();
        self.end_answer_popped();
    }

    fn end_answer_popped(&mut self) {
        self.stage = Stage::First;
        self.next_seq = None;
        self.any_seq = false;
    }

    fn remember(&mut self, id: u32, stmt: Arc<Statement>) {
        if self.statements.len() >= MAX_STATEMENTS && !self.statements.contains_key(&id) {
            tracing::debug!(component = "tracker", "mysql connection holds too many statements: forgetting them");
            self.statements.clear();
        }
        self.last_prepared = Some(stmt.clone());
        self.statements.insert(id, stmt);
    }

    fn unanswered(&self) -> u64 {
        self.pending.iter().filter(|p| matches!(p, Pending::Query(_) | Pending::Execute(_))).count() as u64
    }
}

/// The database a successful `USE db` switched to (as `COM_INIT_DB` does).
fn used_database(call: &DbCall) -> Option<&str> {
    if !call.operation.eq_ignore_ascii_case("USE") {
        return None;
    }
    let mut words = call.query.split_ascii_whitespace();
    let _use = words.next()?;
    let db = words.next()?.trim_end_matches(';').trim_matches('`');
    (!db.is_empty() && words.next().is_none()).then_some(db)
}

impl Session for MySession {
    fn on_data(&mut self, io: &Io<'_>, cx: &mut SessionCx<'_>) -> Feed {
        match io.side {
            Side::Request => self.on_client(io, cx),
            Side::Response => self.on_server(io, cx),
        }
        let conv = &mut self.conv;
        if conv.invalid || conv.pending.len() > MAX_PENDING {
            cx.stats.parse_failures += 1;
            cx.stats.unanswered_requests += conv.unanswered();
            conv.pending.clear();
            return Feed::Lost;
        }
        if let Some(why) = conv.stopped {
            tracing::debug!(component = "tracker", why, "mysql connection no longer parsed");
            return Feed::Lost;
        }
        Feed::Ok
    }

    fn on_close(&mut self, _ts: u64, cx: &mut SessionCx<'_>) {
        cx.stats.unanswered_requests += self.conv.unanswered();
        self.conv.pending.clear();
    }
}

#[cfg(test)]
mod tests;
