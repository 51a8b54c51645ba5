//! Redis on one connection: recognises a RESP command, decodes both
//! directions and pairs each command with its reply, in order (so a
//! pipeline of N commands in one write is N spans).
//!
//! What is not a reply to a command never makes a span: RESP3 pushes
//! (pub/sub messages, client-side caching invalidations) are skipped, except
//! the push that confirms a `SUBSCRIBE`, which ends its span. A RESP2
//! connection that subscribed (or ran `MONITOR`, or turned replies off with
//! `CLIENT REPLY`) carries server messages that cannot be told from replies:
//! it is no longer parsed once its last command is answered.

use std::collections::VecDeque;

use obi_protocols::resp::{self, Event as RespEvent, Frame, Kind, RespStream};

use super::event::Event;
use super::session::{Detect, Feed, Finished, Io, Piece, Protocol, Session, SessionCx, Side};
use super::trace_ids;
use crate::span::db::{DbCall, DbError};
use crate::span::{RedisSpan, SpanDetail, TraceContext};

/// Redis's RESP, recognised by a command array.
pub(crate) struct Redis;

impl Protocol for Redis {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn detect(&self, ev: &Event<'_>) -> Detect {
        Detect::client_message(resp::looks_like_command(ev.data))
    }

    fn new_session(&self) -> Box<dyn Session> {
        Box::new(RedisSession::default())
    }
}

/// Commands waiting for a reply beyond this: the connection is given up
/// (dropping some would pair the rest with the wrong replies).
const MAX_PENDING: usize = 4096;

/// How a command changes what the server sends next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    Reply,
    /// `(S|P)SUBSCRIBE` and their `UNSUBSCRIBE`s: answered by pushes in RESP3,
    /// by arrays in RESP2 after which messages arrive unasked.
    Subscribe,
    /// `MONITOR`: every command of every client follows.
    Monitor,
    /// `CLIENT REPLY OFF|SKIP`: replies stop.
    NoReplies,
    /// `HELLO 3`: RESP3 from its reply on.
    Resp3,
    /// `SELECT <db>`: the connection's database from its `+OK` on.
    Select(Option<u32>),
}

fn after(name: &str, frame: &Frame<'_>) -> After {
    let arg = |i| frame.part(i).unwrap_or_default();
    match name {
        "SUBSCRIBE" | "PSUBSCRIBE" | "SSUBSCRIBE" | "UNSUBSCRIBE" | "PUNSUBSCRIBE" | "SUNSUBSCRIBE" => After::Subscribe,
        "MONITOR" => After::Monitor,
        "CLIENT" if arg(1).eq_ignore_ascii_case(b"REPLY") => After::NoReplies,
        "HELLO" if arg(1) == b"3" => After::Resp3,
        "SELECT" => After::Select(std::str::from_utf8(arg(1)).ok().and_then(|d| d.parse().ok())),
        "RESET" => After::Select(Some(0)),
        _ => After::Reply,
    }
}

#[derive(Debug)]
struct Pending {
    call: DbCall,
    after: After,
    start_mono: u64,
    ctx: TraceContext,
}

#[derive(Default)]
struct RedisSession {
    requests: RespStream,
    replies: RespStream,
    pending: VecDeque<Pending>,
    /// When the command being decoded started (the send that began it).
    command_start: Option<u64>,
    /// Span id of the last kernel context used, so one context is never
    /// given to two commands.
    last_kernel_span: [u8; 8],
    resp3: bool,
    /// The server sends what is not replies (RESP2 subscriber, monitor):
    /// stop once the commands before are answered.
    stop: bool,
    /// Something in the bytes was not a command or reply.
    invalid: bool,
    /// Replies were turned off: pairing is over.
    give_up: bool,
    /// The database the connection is on (`db.namespace`).
    database: Database,
}

/// Which database a connection is on, as far as its traffic says.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Database {
    /// Nothing seen yet.
    #[default]
    Unset,
    Known(u32),
    /// Joined midway, or a `SELECT` whose effect cannot be known (queued
    /// in a transaction): no namespace, rather than a guess.
    Unknown,
}

impl RedisSession {
    fn on_commands(&mut self, io: &Io<'_>, cx: &mut SessionCx<'_>) {
        let keep = cx.settings.db_query_literals;
        let server = cx.server;
        let Self { requests, pending, command_start, last_kernel_span, invalid, give_up, .. } = self;
        // A command that began in an earlier send started then.
        let mut start = if requests.at_boundary() { io.ts } else { command_start.unwrap_or(io.ts) };
        {
            let mut on = |e: RespEvent<'_>| match e {
                RespEvent::Frame(f) => {
                    // The next command starts in this send too.
                    let began = std::mem::replace(&mut start, io.ts);
                    let Some(name) = resp::command_name(&f) else {
                        *invalid = true;
                        return;
                    };
                    let after = after(&name, &f);
                    if after == After::NoReplies {
                        *give_up = true;
                    }
                    let mut query = String::new();
                    resp::command_text(&f, keep, &mut query);
                    let ctx = trace_ids::request_context(last_kernel_span, io.kernel_ctx, server);
                    pending.push_back(Pending {
                        call: DbCall { system: "redis", operation: name, query, ..Default::default() },
                        after,
                        start_mono: began,
                        ctx,
                    });
                }
                RespEvent::Invalid => *invalid = true,
            };
            feed_event(requests, io, &mut on);
        }
        *command_start = (!requests.at_boundary()).then_some(start);
    }

    fn on_replies(&mut self, io: &Io<'_>, cx: &mut SessionCx<'_>) {
        let Self { replies, pending, resp3, stop, invalid, database, .. } = self;
        let mut on = |e: RespEvent<'_>| {
            let f = match e {
                RespEvent::Frame(f) => f,
                RespEvent::Invalid => {
                    *invalid = true;
                    return;
                }
            };
            if *stop && pending.is_empty() {
                // A RESP2 subscriber's messages: not replies.
                return;
            }
            let front_subscribes = pending.front().is_some_and(|p| p.after == After::Subscribe);
            if f.kind == Kind::Push && !(front_subscribes && confirms_subscription(&f)) {
                // Out-of-band data, not the answer to a command.
                return;
            }
            let Some(mut p) = pending.pop_front() else {
                cx.stats.orphan_responses += 1;
                return;
            };
            if f.kind.is_error() {
                p.call.error = Some(reply_error(&f));
            }
            match p.after {
                After::Resp3 if p.call.error.is_none() => *resp3 = true,
                After::Select(db) if p.call.error.is_none() => {
                    // `+OK` switched; `+QUEUED` (MULTI) may switch at EXEC.
                    let ok = f.kind == Kind::Simple && matches!(f.part(0), Some(b"OK" | b"RESET"));
                    *database = match db {
                        Some(db) if ok => Database::Known(db),
                        _ => Database::Unknown,
                    };
                }
                After::Subscribe if !*resp3 => *stop = true,
                After::Monitor => *stop = true,
                _ => {}
            }
            if let Database::Known(db) = *database {
                p.call.namespace = db.to_string();
            }
            cx.finished.push(Finished {
                detail: SpanDetail::Redis(RedisSpan { call: p.call }),
                start_mono: p.start_mono,
                queued_mono: None,
                end_mono: io.ts,
                trace: cx.joined(p.ctx),
            });
        };
        feed_event(replies, io, &mut on);
    }
}

/// Feeds an event's bytes, captured or not, to a decoder.
fn feed_event(stream: &mut RespStream, io: &Io<'_>, on: &mut dyn FnMut(RespEvent<'_>)) {
    for piece in io.pieces() {
        match piece {
            Piece::Bytes(b) => stream.feed(b, on),
            Piece::Gap(n) => stream.gap(n, on),
        }
    }
}

/// A push that answers a (un)subscribe command: `subscribe`, `psubscribe`...
fn confirms_subscription(f: &Frame<'_>) -> bool {
    f.part(0).is_some_and(|w| {
        let w = w.to_ascii_lowercase();
        w.ends_with(b"subscribe")
    })
}

/// `-WRONGTYPE Operation against a key...`: the prefix is the code.
fn reply_error(f: &Frame<'_>) -> DbError {
    let text = String::from_utf8_lossy(f.part(0).unwrap_or_default());
    let (code, message) = text.split_once(' ').unwrap_or((&text, ""));
    DbError { code: code.to_string(), message: message.to_string() }
}

impl Session for RedisSession {
    fn on_data(&mut self, io: &Io<'_>, cx: &mut SessionCx<'_>) -> Feed {
        if self.database == Database::Unset {
            // Every connection starts on database 0.
            self.database = if cx.from_start { Database::Known(0) } else { Database::Unknown };
        }
        match io.side {
            Side::Request => self.on_commands(io, cx),
            Side::Response => self.on_replies(io, cx),
        }
        let overflow = self.pending.len() > MAX_PENDING;
        if self.invalid || overflow {
            // The framing is gone: which reply answers which command cannot be known.
            cx.stats.parse_failures += 1;
            cx.stats.unanswered_requests += self.pending.len() as u64;
            self.pending.clear();
            return Feed::Lost;
        }
        if self.give_up {
            tracing::debug!(component = "tracker", "redis client turned replies off: connection no longer parsed");
            cx.stats.unanswered_requests += self.pending.len() as u64;
            self.pending.clear();
            return Feed::Lost;
        }
        if self.stop && self.pending.is_empty() {
            tracing::debug!(
                component = "tracker",
                "redis connection sends unasked data (pub/sub, monitor): no longer parsed"
            );
            return Feed::Lost;
        }
        Feed::Ok
    }

    fn on_close(&mut self, _ts: u64, cx: &mut SessionCx<'_>) {
        cx.stats.unanswered_requests += self.pending.len() as u64;
        self.pending.clear();
    }
}

#[cfg(test)]
mod tests;
