//! The contract between the generic tracker and one protocol: how a
//! connection is recognised, and a per-connection session that is fed the
//! bytes of each direction and hands back finished exchanges.
//!
//! The tracker owns everything protocols share (connections, roles, TLS,
//! timestamps, services, holding spans of unnamed processes); a protocol
//! only sees bytes in and [`Finished`] exchanges out.

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
    pub(crate) settings: &'a TrackerSettings,
    pub(crate) remap: &'a mut TraceRemap,
    pub(crate) stats: &'a mut TrackerStats,
    pub(crate) finished: &'a mut Vec<Finished>,
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

    /// The connection closed at `ts`.
    fn on_close(&mut self, _ts: u64, _cx: &mut SessionCx<'_>) {}

    /// Periodic housekeeping: request timeouts, forgotten streams.
    fn tick(&mut self, _now_mono: u64, _cx: &mut SessionCx<'_>) {}
}
