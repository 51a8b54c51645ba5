//! The contract between the generic tracker and one protocol: how a
//! connection is recognised, and a per-connection session that is fed the
//! bytes of each direction and hands back finished exchanges.
//!
//! The tracker owns everything protocols share (connections, roles, TLS,
//! timestamps, services, holding spans of unnamed processes); a protocol
//! only sees bytes in and [`Finished`] exchanges out.

use super::broker_relay::BrokerRelay;
use super::event::Event;
use super::trace_ids::TraceRemap;
use super::{TrackerSettings, TrackerStats};
use crate::span::{SpanDetail, TraceContext};

/// Which side of an exchange an event carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Request,
    Response,
}

/// What a protocol makes of a connection's first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Detect {
    /// It is this protocol. `client` says whether the sender of these bytes
    /// is the client, when the bytes tell.
    Yes {
        sender_is_client: Option<bool>,
    },
    /// Too few bytes to tell.
    NeedMore,
    No,
}

impl Detect {
    /// What a check of a client's first message (`Some(true)`: it is one,
    /// `None`: too few bytes) says of a connection.
    pub(crate) fn client_message(looks: Option<bool>) -> Detect {
        match looks {
            Some(true) => Detect::Yes { sender_is_client: Some(true) },
            Some(false) => Detect::No,
            None => Detect::NeedMore,
        }
    }
}

/// A protocol the tracker can parse. Implementations are stateless
/// statics, listed once in [`super::PROTOCOLS`].
pub(crate) trait Protocol: Sync {
    /// Short name, for logs.
    fn name(&self) -> &'static str;

    /// Events the kernel already framed for this protocol (HTTP/2 frame
    /// records, say) belong to it whatever the connection was before.
    fn claims(&self, _ev: &Event<'_>) -> bool {
        false
    }

    /// Looks at an event of a connection whose protocol is not known yet
    /// (or, while the connection's roles are unknown, at each event).
    fn detect(&self, ev: &Event<'_>) -> Detect;

    /// A fresh session for one connection.
    fn new_session(&self) -> Box<dyn Session>;
}

/// One event's bytes, as a session sees them.
pub(crate) struct Io<'a> {
    pub(crate) side: Side,
    /// When these bytes count as sent or arrived: the start of a client's
    /// send, else the end of the syscall.
    pub(crate) ts: u64,
    pub(crate) tid: u32,
    /// The kernel saw a change of direction: these bytes start a message.
    pub(crate) msg_start: bool,
    /// Server requests: when these bytes reached the socket, if the kernel
    /// knows (monotonic ns; before `ts` when the request waited in a queue).
    pub(crate) queued: Option<u64>,
    /// Context the kernel assigned to the request in flight, if any.
    pub(crate) kernel_ctx: Option<TraceContext>,
    /// First bytes the syscall moved.
    pub(crate) data: &'a [u8],
    /// Bytes the syscall moved that were not captured...
    pub(crate) missing: u64,
    /// ...of which these are the last ones.
    pub(crate) tail: &'a [u8],
}

/// A piece of an event's bytes, in order: what was captured, then how
/// many were not, then the last ones (the tail), which are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Piece<'a> {
    Bytes(&'a [u8]),
    Gap(u64),
}

impl<'a> Io<'a> {
    /// The event's bytes as [`Piece`]s, for stream decoders that take
    /// captured bytes and gaps.
    pub(crate) fn pieces(&self) -> impl Iterator<Item = Piece<'a>> {
        // A tail longer than what is missing overlaps captured bytes: only
        // its last ones were not captured.
        let tail = &self.tail[self.tail.len() - self.tail.len().min(self.missing as usize)..];
        let gap = self.missing - tail.len() as u64;
        [Piece::Bytes(self.data), Piece::Gap(gap), Piece::Bytes(tail)]
            .into_iter()
            .filter(|p| !matches!(p, Piece::Gap(0) | Piece::Bytes([])))
    }
}

/// A finished exchange: the protocol's part of a span plus its timing and
/// context. The tracker adds who talked (addresses, service) and wall times.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) detail: SpanDetail,
    /// Monotonic ns: the first byte of the request (server: when the app
    /// read it, the handler's start).
    pub(crate) start_mono: u64,
    /// Monotonic ns: when the request reached the server's socket, if known
    /// (server spans). The time to `start_mono` is its wait "in queue".
    pub(crate) queued_mono: Option<u64>,
    /// Monotonic ns: the last byte of the response.
    pub(crate) end_mono: u64,
    pub(crate) trace: TraceContext,
}

/// What a session may use and where it reports.
pub(crate) struct SessionCx<'a> {
    /// We are the server of this connection.
    pub(crate) server: bool,
    /// The connection was seen from its opening (accept/connect), so its
    /// protocol state starts from the protocol's defaults (a Redis
    /// connection starts on database 0).
    pub(crate) from_start: bool,
    /// The process on our end.
    pub(crate) pid: u32,
    pub(crate) settings: &'a TrackerSettings,
    pub(crate) remap: &'a mut TraceRemap,
    pub(crate) stats: &'a mut TrackerStats,
    pub(crate) finished: &'a mut Vec<Finished>,
    /// What a message broker received last, per process (MQTT fan-out links).
    pub(crate) relay: &'a mut BrokerRelay,
}

impl SessionCx<'_> {
    /// The context a finished span carries: a client span joins the trace
    /// its server request was remapped to (when that request adopted an
    /// incoming `traceparent`).
    pub(crate) fn joined(&self, mut ctx: TraceContext) -> TraceContext {
        if !self.server {
            self.remap.apply(&mut ctx);
        }
        ctx
    }
}

/// What an event did to the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Feed {
    Ok,
    /// Bytes at a message boundary were not this protocol (a few of these
    /// and the connection is ignored).
    Invalid,
    /// The connection switched protocols: detect again.
    Upgraded,
    /// The session cannot follow this connection any more: ignore it.
    Lost,
}

/// Per-connection protocol state.
pub(crate) trait Session: Send {
    fn on_data(&mut self, io: &Io<'_>, cx: &mut SessionCx<'_>) -> Feed;

    /// A runtime named the parent (`None`: a root) of the client stream
    /// `stream` at `ts` (Go's grpc-go probe). False when this protocol has
    /// no streams to give it to.
    fn stream_parent(&mut self, _stream: u32, _parent: Option<TraceContext>, _ts: u64) -> bool {
        false
    }

    /// The connection closed at `ts`.
    fn on_close(&mut self, _ts: u64, _cx: &mut SessionCx<'_>) {}

    /// Periodic housekeeping: request timeouts, forgotten streams.
    fn tick(&mut self, _now_mono: u64, _cx: &mut SessionCx<'_>) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io<'a>(data: &'a [u8], missing: u64, tail: &'a [u8]) -> Io<'a> {
        Io { side: Side::Request, ts: 0, tid: 0, msg_start: true, queued: None, kernel_ctx: None, data, missing, tail }
    }

    #[test]
    fn pieces_are_captured_bytes_then_the_gap_then_the_tail() {
        let pieces: Vec<Piece<'_>> = io(b"abc", 10, b"yz").pieces().collect();
        assert_eq!(pieces, [Piece::Bytes(b"abc"), Piece::Gap(8), Piece::Bytes(b"yz")]);
        let pieces: Vec<Piece<'_>> = io(b"abc", 0, b"").pieces().collect();
        assert_eq!(pieces, [Piece::Bytes(b"abc")]);
        // A tail longer than what is missing: only its last bytes count.
        let pieces: Vec<Piece<'_>> = io(b"", 2, b"wxyz").pieces().collect();
        assert_eq!(pieces, [Piece::Bytes(b"yz")]);
    }
}
