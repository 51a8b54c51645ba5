//! Memcached (text protocol) on one connection: recognises a storage,
//! retrieval or keyed command, decodes both directions and pairs each
//! command with its response, in order. Commands sent with `noreply` (and
//! `quit`) get no response and so no span: their duration is not known.

use std::collections::VecDeque;

use obi_protocols::memcached::{self, Command, CommandStream, Event as McEvent, Response, ResponseStream};

use super::event::Event;
use super::session::{Detect, Feed, Finished, Io, Piece, Protocol, Session, SessionCx, Side};
use super::trace_ids;
use crate::span::db::{DbCall, DbError};
use crate::span::{MemcachedSpan, SpanDetail, TraceContext};

/// The memcached text protocol, recognised by its first command.
pub(crate) struct Memcached;

impl Protocol for Memcached {
    fn name(&self) -> &'static str {
        "memcached"
    }

    fn detect(&self, ev: &Event<'_>) -> Detect {
        Detect::client_message(memcached::looks_like_command(ev.data))
    }

    fn new_session(&self) -> Box<dyn Session> {
        Box::new(McSession::default())
    }
}

/// Commands waiting for a response beyond this: the connection is given up.
const MAX_PENDING: usize = 4096;

#[derive(Debug)]
struct Pending {
    call: DbCall,
    start_mono: u64,
    ctx: TraceContext,
}

#[derive(Default)]
struct McSession {
    commands: CommandStream,
    responses: ResponseStream,
    pending: VecDeque<Pending>,
    last_kernel_span: [u8; 8],
    invalid: bool,
}

fn call_of(cmd: &Command<'_>) -> DbCall {
    let query = if cmd.keys.is_empty() { cmd.name.to_string() } else { format!("{} {}", cmd.name, cmd.keys) };
    DbCall { system: "memcached", operation: cmd.name.to_string(), query, ..Default::default() }
}

impl McSession {
    fn on_commands(&mut self, io: &Io<'_>, server: bool) {
        let Self { commands, pending, last_kernel_span, invalid, .. } = self;
        let mut on = |e: McEvent<Command<'_>>| match e {
            McEvent::Item(cmd) if cmd.silent => {}
            McEvent::Item(cmd) => pending.push_back(Pending {
                call: call_of(&cmd),
                start_mono: io.ts,
                ctx: trace_ids::request_context(last_kernel_span, io.kernel_ctx, server),
            }),
            McEvent::Invalid => *invalid = true,
        };
        for piece in io.pieces() {
            match piece {
                Piece::Bytes(b) => commands.feed(b, &mut on),
                Piece::Gap(n) => commands.gap(n, &mut on),
            }
        }
    }

    fn on_responses(&mut self, io: &Io<'_>, cx: &mut SessionCx<'_>) {
        let Self { responses, pending, invalid, .. } = self;
        let mut on = |e: McEvent<Response<'_>>| {
            let r = match e {
                McEvent::Item(r) => r,
                McEvent::Invalid => {
                    *invalid = true;
                    return;
                }
            };
            let Some(mut p) = pending.pop_front() else {
                cx.stats.orphan_responses += 1;
                return;
            };
            if let Response::Error(code, message) = r {
                p.call.error = Some(DbError { code: code.to_string(), message: message.to_string() });
            }
            cx.finished.push(Finished {
                detail: SpanDetail::Memcached(MemcachedSpan { call: p.call }),
                start_mono: p.start_mono,
                queued_mono: None,
                end_mono: io.ts,
                trace: cx.joined(p.ctx),
            });
        };
        for piece in io.pieces() {
            match piece {
                Piece::Bytes(b) => responses.feed(b, &mut on),
                Piece::Gap(n) => responses.gap(n, &mut on),
            }
        }
    }
}

impl Session for McSession {
    fn on_data(&mut self, io: &Io<'_>, cx: &mut SessionCx<'_>) -> Feed {
        match io.side {
            Side::Request => self.on_commands(io, cx.server),
            Side::Response => self.on_responses(io, cx),
        }
        if self.invalid || self.pending.len() > MAX_PENDING {
            cx.stats.parse_failures += 1;
            cx.stats.unanswered_requests += self.pending.len() as u64;
            self.pending.clear();
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
