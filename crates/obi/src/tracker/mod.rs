//! Turns kernel events into spans: one state machine per connection,
//! protocol detection, and span assembly with service identity and
//! wall-clock times. What is specific to a protocol lives in its session
//! file (`http1.rs`, `http2.rs`), behind [`session::Protocol`].

mod broker_relay;
pub(crate) mod event;
mod first_bytes;
mod http1;
mod http2;
mod local_servers;
mod memcached;
mod mqtt;
mod mysql;
mod postgres;
mod redis;
mod session;
mod sql_statement;
pub(crate) mod trace_ids;

#[cfg(test)]
mod harness;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use crate::clock::Clock;
use crate::ebpf::abi;
use crate::service::Service;
use crate::span::{Endpoint, Span, SpanDetail, SpanKind};
use event::Event;
use first_bytes::FirstBytes;
use session::{Detect, Feed, Finished, Io, Protocol, Session, SessionCx, Side};
use trace_ids::TraceRemap;

/// Every protocol the tracker parses, in the order detection asks them.
/// Adding a protocol adds one line here.
static PROTOCOLS: &[&dyn Protocol] = &[
    &http2::Http2,
    &http1::Http1,
    &redis::Redis,
    &postgres::Postgres,
    &memcached::Memcached,
    &mysql::MySql,
    &mqtt::Mqtt,
];

/// Connections idle this long are forgotten (the kernel side ages its own out too).
const IDLE_CONN_NS: u64 = 300 * 1_000_000_000;
/// Hard cap on tracked connections; the least recently active go first.
const MAX_CONNS: usize = 65536;
/// Keys of TLS plaintext connections (their kernel id is the SSL object's
/// address) are kept apart from socket inodes with this bit.
const TLS_KEY: u64 = 1 << 63;
/// Message starts that failed to parse before a connection is ignored.
const MAX_FAILURES: u8 = 3;
/// Spans of a process discovery has not named yet are held this long.
const HOLD_NS: u64 = 10 * 1_000_000_000;
/// ... and at most this many per process.
const MAX_HELD: usize = 1024;
/// Room for spans kept in the settling buffer between turns.
const SETTLING_KEPT: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Unknown,
    Server,
    Client,
}

impl Role {
    fn from_abi(r: u8) -> Role {
        match r {
            abi::ROLE_SERVER => Role::Server,
            abi::ROLE_CLIENT => Role::Client,
            _ => Role::Unknown,
        }
    }
}

enum Proto {
    /// Waiting for bytes that tell the protocol.
    Detecting,
    /// Parsed by this protocol's session.
    Parsed(&'static dyn Protocol, Box<dyn Session>),
    /// Not something we parse: the kernel was told to stop capturing it.
    Ignored,
}

impl Proto {
    fn is(&self, p: &'static dyn Protocol) -> bool {
        matches!(self, Proto::Parsed(q, _) if q.name() == p.name())
    }
}

/// Settings of the tracker and its sessions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TrackerSettings {
    /// Requests unanswered this long are reported as timed out (0: never).
    pub(crate) http_request_timeout_ns: u64,
    /// Connections (and HTTP/2 streams) idle this long are forgotten.
    pub(crate) idle_conn_ns: u64,
    /// Database query texts keep their literals (else they read `?`).
    pub(crate) db_query_literals: bool,
}

/// (pid, local, remote) of a socket.
type SocketKey = (u32, (IpAddr, u16), (IpAddr, u16));

/// Who is on either end of a connection.
#[derive(Debug, Clone, Copy)]
struct ConnMeta {
    pid: u32,
    role: Role,
    local: (IpAddr, u16),
    remote: (IpAddr, u16),
    /// Plaintext of a TLS session (the OpenSSL probes): HTTP on it is https.
    tls: bool,
    /// Seen from its opening (an accept or connect event), not joined midway.
    from_start: bool,
}

struct Conn {
    meta: ConnMeta,
    proto: Proto,
    /// While detecting: the first bytes seen so far, when one event did not
    /// tell the protocol.
    first: Option<Box<FirstBytes>>,
    last_mono: u64,
    failures: u8,
}

/// Counters of what the tracker saw and what it could not use.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TrackerStats {
    pub(crate) events: u64,
    pub(crate) malformed_events: u64,
    pub(crate) spans: u64,
    /// Message starts that were not valid HTTP/1.
    pub(crate) parse_failures: u64,
    /// Connections ignored because their protocol is not supported.
    pub(crate) ignored_conns: u64,
    /// Responses whose request we never saw (joined mid-connection).
    pub(crate) orphan_responses: u64,
    /// Requests dropped: no response before close, or too many pending.
    pub(crate) unanswered_requests: u64,
    pub(crate) active_conns: u64,
    /// Spans dropped because their process was never named (or was rejected).
    pub(crate) unnamed_spans_dropped: u64,
    /// HTTP/2 connections whose header decoding lost sync (no spans after that).
    pub(crate) h2_desynced_conns: u64,
    /// MQTT connections no longer parsed: a malformed packet, or lost framing.
    pub(crate) mqtt_malformed_conns: u64,
    /// MQTT packets whose fields lay beyond the capture (no span for them).
    pub(crate) mqtt_unreadable_packets: u64,
    /// Parents a runtime named for HTTP/2 client streams (Go's grpc-go
    /// probe) that no span used: no HTTP/2 client connection to give them
    /// to, or their stream finished first (the call is then a root).
    pub(crate) stream_parents_unused: u64,
}

/// Spans of a process that is traced but not (yet) named by discovery.
struct Held {
    since_mono: u64,
    spans: Vec<Span>,
}

pub(crate) struct Tracker {
    conns: HashMap<u64, Conn>,
    services: HashMap<u32, Arc<Service>>,
    /// Losses of each process not named yet: counted once it is named (a
    /// process watched from its exec and then rejected is not ours to
    /// count), forgotten if it is rejected or gone first.
    unnamed_losses: HashMap<u32, UnnamedLosses>,
    /// Spans emitted since the last `settle`, with their end (monotonic ns).
    settling: Vec<(Span, u64)>,
    /// When each process that exec'd did so (monotonic ns), until it is gone.
    execs: HashMap<u32, u64>,
    held: HashMap<u32, Held>,
    /// TLS session key by the socket under it.
    tls_by_socket: HashMap<SocketKey, u64>,
    /// Processes whose TLS plaintext was seen (and logged) already.
    tls_seen: HashSet<u32>,
    clock: Clock,
    env: SessionEnv,
    spans: Vec<Span>,
    /// Traced servers of this host by the endpoint they answer on.
    local_servers: local_servers::LocalServers,
    to_ignore: Vec<u64>,
    to_unignore: Vec<u64>,
    /// OBI_DEBUG_EVENTS=1: print every data event on stderr (troubleshooting).
    debug_events: bool,
}

/// What every session works with: settings, id remaps, counters, and the
/// buffer of exchanges finished by the current event (reused).
struct SessionEnv {
    settings: TrackerSettings,
    remap: TraceRemap,
    stats: TrackerStats,
    finished: Vec<Finished>,
    relay: broker_relay::BrokerRelay,
}

impl SessionEnv {
    fn cx(&mut self, meta: &ConnMeta) -> SessionCx<'_> {
        SessionCx {
            server: meta.role == Role::Server,
            from_start: meta.from_start,
            pid: meta.pid,
            settings: &self.settings,
            remap: &mut self.remap,
            stats: &mut self.stats,
            finished: &mut self.finished,
            relay: &mut self.relay,
        }
    }
}

/// What a process not named yet lost, held until it is named.
#[derive(Debug, Default, Clone, Copy)]
struct UnnamedLosses {
    ignored_conns: u64,
    parse_failures: u64,
}

/// A connection of `pid` is given up: counted now if the process is named,
/// else when it is (see `Tracker::unnamed_losses`).
fn count_ignored(
    services: &HashMap<u32, Arc<Service>>,
    unnamed: &mut HashMap<u32, UnnamedLosses>,
    stats: &mut TrackerStats,
    pid: u32,
) {
    if services.contains_key(&pid) {
        stats.ignored_conns += 1;
    } else {
        unnamed.entry(pid).or_default().ignored_conns += 1;
    }
}

fn debug_event(key: u64, ev: &Event<'_>) {
    let h = &ev.hdr;
    eprintln!(
        "event conn={key:x} pid={} tid={} dir={} role={} flags={:#x} syscall={} bytes={} ports={}->{} tp={:032x}-{:016x}-{} data={:?}",
        h.tgid,
        h.tid,
        h.dir,
        h.role,
        h.flags,
        h.syscall,
        h.bytes,
        h.tuple.lport,
        h.tuple.rport,
        u128::from_be_bytes(h.tp.trace_id),
        u64::from_be_bytes(h.tp.span_id),
        h.tp.valid,
        String::from_utf8_lossy(&ev.data[..ev.data.len().min(48)])
    );
}

/// What the protocols make of a connection's first bytes.
enum Detection {
    /// The first protocol that recognised them, and whether their sender
    /// is the client, when the bytes tell.
    Found(&'static dyn Protocol, Option<bool>),
    /// Nobody recognised them yet, but a protocol needs more bytes to tell.
    Wait,
    /// Nobody's: ignore the connection.
    Nobody,
}

/// Detection over the connection's first bytes: `ev` joins those gathered
/// so far in `first` (or starts them anew); on a decision they move to
/// `gathered`, for the session to be fed, and `first` is left empty.
fn gather_and_detect(
    first: &mut Option<Box<FirstBytes>>,
    ev: &Event<'_>,
    gathered: &mut Option<Box<FirstBytes>>,
) -> Detection {
    let joined = first.take().and_then(|mut fb| fb.extend(ev).then_some(fb));
    let decision = match &joined {
        Some(fb) => detect(&fb.event()),
        None => detect(ev),
    };
    match decision {
        Detection::Wait => *first = Some(joined.unwrap_or_else(|| Box::new(FirstBytes::new(ev)))),
        _ => *gathered = joined,
    }
    decision
}

fn detect(ev: &Event<'_>) -> Detection {
    let mut wait = false;
    for &p in PROTOCOLS {
        match p.detect(ev) {
            Detect::Yes { sender_is_client } => return Detection::Found(p, sender_is_client),
            Detect::NeedMore => wait = true,
            Detect::No => {}
        }
    }
    if wait { Detection::Wait } else { Detection::Nobody }
}

impl Tracker {
    pub(crate) fn new(clock: Clock, http_request_timeout_ns: u64) -> Self {
        Tracker {
            conns: HashMap::new(),
            services: HashMap::new(),
            unnamed_losses: HashMap::new(),
            settling: Vec::new(),
            execs: HashMap::new(),
            held: HashMap::new(),
            tls_by_socket: HashMap::new(),
            tls_seen: HashSet::new(),
            clock,
            env: SessionEnv {
                settings: TrackerSettings {
                    http_request_timeout_ns,
                    idle_conn_ns: IDLE_CONN_NS,
                    db_query_literals: false,
                },
                remap: TraceRemap::default(),
                stats: TrackerStats::default(),
                finished: Vec::new(),
                relay: broker_relay::BrokerRelay::default(),
            },
            spans: Vec::new(),
            local_servers: Default::default(),
            to_ignore: Vec::new(),
            to_unignore: Vec::new(),
            debug_events: std::env::var_os("OBI_DEBUG_EVENTS").is_some(),
        }
    }

    /// Database query texts keep their literals instead of `?`.
    pub(crate) fn keep_db_query_literals(&mut self, keep: bool) {
        self.env.settings.db_query_literals = keep;
    }

    /// Names a process; spans it produced while unnamed are released.
    pub(crate) fn add_service(&mut self, svc: Arc<Service>) {
        if let Some(held) = self.held.remove(&svc.pid) {
            for mut span in held.spans {
                span.service = svc.clone();
                self.spans.push(span);
            }
        }
        if let Some(lost) = self.unnamed_losses.remove(&svc.pid) {
            self.env.stats.ignored_conns += lost.ignored_conns;
            self.env.stats.parse_failures += lost.parse_failures;
        }
        self.services.insert(svc.pid, svc);
    }

    /// Names a child `parent` forked with the parent's identity, at once:
    /// a fork-per-connection child may serve its request and exit before
    /// discovery could read its /proc. False when the parent is not named.
    pub(crate) fn adopt_fork(&mut self, child: u32, parent: u32) -> bool {
        if self.services.contains_key(&child) {
            return true;
        }
        let Some(svc) = self.services.get(&parent) else { return false };
        let svc = Arc::new(svc.forked(child));
        self.add_service(svc);
        true
    }

    /// A named process exec'd: it is another program now. Its spans wait
    /// for discovery to name it again; its connections go on (sockets
    /// survive an exec: inetd handlers, CGI scripts).
    pub(crate) fn unname(&mut self, pid: u32, exec_mono: u64) {
        self.services.remove(&pid);
        self.local_servers.forget(pid);
        self.execs.insert(pid, exec_mono);
    }

    /// Forgets a process that is gone. Its connections end with it (an exit
    /// closes them without close()): what they finished, like a response
    /// delimited by the close, becomes spans first. Spans still waiting for
    /// a name keep waiting out their hold: discovery may name the process
    /// from its exec record after the exit was seen.
    pub(crate) fn remove_service(&mut self, pid: u32) {
        let owned: Vec<(u64, u64)> =
            self.conns.iter().filter(|(_, c)| c.meta.pid == pid).map(|(&k, c)| (k, c.last_mono)).collect();
        for (key, last) in owned {
            self.close_conn(key, last);
        }
        self.settle();
        self.services.remove(&pid);
        self.unnamed_losses.remove(&pid);
        self.local_servers.forget(pid);
        self.execs.remove(&pid);
        self.tls_by_socket.retain(|k, _| k.0 != pid);
        self.tls_seen.remove(&pid);
        self.env.relay.forget(pid);
    }

    /// What the tracker saw and could not use.
    pub(crate) fn stats(&self) -> &TrackerStats {
        &self.env.stats
    }

    /// Spans completed since the last call.
    pub(crate) fn take_spans(&mut self) -> Vec<Span> {
        self.settle();
        self.local_servers.apply(&mut self.spans, &self.services);
        std::mem::take(&mut self.spans)
    }

    /// Connections the kernel should stop capturing.
    pub(crate) fn take_ignored(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.to_ignore)
    }

    /// Ignored connections that closed: the kernel should forget them
    /// (after the ones to ignore are marked).
    pub(crate) fn take_unignored(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.to_unignore)
    }

    /// Handles one ring-buffer record.
    pub(crate) fn handle_record(&mut self, record: &[u8]) {
        self.env.stats.events += 1;
        let Some(ev) = Event::decode(record) else {
            self.env.stats.malformed_events += 1;
            return;
        };
        match ev.hdr.kind {
            abi::EV_CONN_OPEN => self.on_open(&ev),
            abi::EV_DATA => self.on_data(&ev),
            abi::EV_CONN_CLOSE => self.on_close(&ev),
            abi::EV_H2_STREAM_PARENT => self.on_stream_parent(&ev),
            _ => self.env.stats.malformed_events += 1,
        }
    }

    fn new_conn(ev: &Event<'_>, from_start: bool) -> Conn {
        let (local, remote) = event::endpoints(&ev.hdr.tuple);
        Conn {
            meta: ConnMeta {
                pid: ev.hdr.tgid,
                role: Role::from_abi(ev.hdr.role),
                local,
                remote,
                tls: ev.has(abi::F_TLS),
                from_start,
            },
            proto: Proto::Detecting,
            first: None,
            last_mono: ev.hdr.ts_exit,
            failures: 0,
        }
    }

    fn on_open(&mut self, ev: &Event<'_>) {
        // An inode reused without a close we saw: start over.
        self.conns.insert(ev.hdr.conn_id, Self::new_conn(ev, true));
        self.enforce_cap();
    }

    /// A runtime named the parent of an HTTP/2 client stream (Go's grpc-go
    /// probe): kept for that stream's span (the connection's frames come
    /// from another goroutine, so no per-socket hint fits).
    fn on_stream_parent(&mut self, ev: &Event<'_>) {
        let taken = match self.conns.get_mut(&ev.hdr.conn_id) {
            Some(Conn { meta, proto: Proto::Parsed(_, session), .. }) if meta.role == Role::Client => {
                let stream = u32::try_from(ev.hdr.bytes).unwrap_or(0);
                session.stream_parent(stream, trace_ids::from_kernel(&ev.hdr.tp), ev.hdr.ts_exit)
            }
            _ => false,
        };
        if !taken {
            self.env.stats.stream_parents_unused += 1;
        }
    }

    fn on_close(&mut self, ev: &Event<'_>) {
        // The socket under a TLS session closes: the session ends with it.
        let (local, remote) = event::endpoints(&ev.hdr.tuple);
        if let Some(key) = self.tls_by_socket.remove(&(ev.hdr.tgid, local, remote)) {
            self.close_conn(key, ev.hdr.ts_enter);
        }
        self.close_conn(ev.hdr.conn_id, ev.hdr.ts_enter);
    }

    fn close_conn(&mut self, key: u64, ts: u64) {
        let Some(mut conn) = self.conns.remove(&key) else { return };
        if matches!(conn.proto, Proto::Ignored) {
            // The kernel forgets an ignored connection when it closes, but
            // it may have closed before it was marked: unmark it for good.
            self.to_ignore.retain(|&id| id != key);
            self.to_unignore.push(key);
        }
        if let Proto::Parsed(_, session) = &mut conn.proto {
            session.on_close(ts, &mut self.env.cx(&conn.meta));
            self.emit_finished(conn.meta);
        }
    }

    fn on_data(&mut self, ev: &Event<'_>) {
        let tls = ev.has(abi::F_TLS);
        let id = if tls { ev.hdr.conn_id | TLS_KEY } else { ev.hdr.conn_id };
        if self.debug_events {
            debug_event(id, ev);
        }
        if tls {
            self.track_tls_socket(id, ev);
            self.announce_tls(ev.hdr.tgid, matches!(ev.hdr.syscall, abi::SC_GO_TLS_READ | abi::SC_GO_TLS_WRITE));
        }
        // Joined midway: what the connection did before is unknown.
        let conn = self.conns.entry(id).or_insert_with(|| Self::new_conn(ev, false));
        conn.last_mono = ev.hdr.ts_exit;
        // The process that moves the bytes serves them: a socket accepted by
        // a parent and handed to a forked child (or exec'd handler) is the
        // child's from its first read.
        conn.meta.pid = ev.hdr.tgid;
        if conn.meta.role == Role::Unknown {
            conn.meta.role = Role::from_abi(ev.hdr.role);
        }
        // Without kernel BTF a non-blocking connect() returns before the
        // kernel knows the connection's addresses: its later events bring them.
        if conn.meta.local.1 == 0 && ev.hdr.tuple.lport != 0 && !tls {
            (conn.meta.local, conn.meta.remote) = event::endpoints(&ev.hdr.tuple);
        }
        if matches!(conn.proto, Proto::Ignored) {
            return;
        }
        // Events the kernel framed for a protocol switch the connection to it.
        if let Some(&p) = PROTOCOLS.iter().find(|p| p.claims(ev))
            && !conn.proto.is(p)
        {
            conn.proto = Proto::Parsed(p, p.new_session());
        }
        // While detecting, the bytes of several events may be needed: they
        // are gathered, and the session is then fed all of them as one event.
        let mut gathered = None;
        match &conn.proto {
            Proto::Detecting => match gather_and_detect(&mut conn.first, ev, &mut gathered) {
                Detection::Wait => return,
                Detection::Found(p, sender_is_client) => {
                    conn.proto = Proto::Parsed(p, p.new_session());
                    set_role(&mut conn.meta.role, sender_is_client, ev.is_send());
                }
                Detection::Nobody => {
                    conn.proto = Proto::Ignored;
                    count_ignored(&self.services, &mut self.unnamed_losses, &mut self.env.stats, conn.meta.pid);
                    self.to_ignore.push(id);
                    return;
                }
            },
            Proto::Parsed(p, _) if conn.meta.role == Role::Unknown => {
                if let Detect::Yes { sender_is_client } = p.detect(ev) {
                    set_role(&mut conn.meta.role, sender_is_client, ev.is_send());
                }
            }
            _ => {}
        }
        let fed = gathered.as_deref().map(FirstBytes::event);
        let ev = fed.as_ref().unwrap_or(ev);
        let side = match (conn.meta.role, ev.is_send()) {
            (Role::Server, false) | (Role::Client, true) => Side::Request,
            (Role::Server, true) | (Role::Client, false) => Side::Response,
            (Role::Unknown, _) => return,
        };
        let Proto::Parsed(_, session) = &mut conn.proto else { return };
        let io = Io {
            side,
            // Server requests count from when the bytes arrived; client
            // requests from when the app started sending.
            ts: if ev.is_send() && side == Side::Request { ev.hdr.ts_enter } else { ev.hdr.ts_exit },
            tid: ev.hdr.tid,
            msg_start: ev.has(abi::F_MSG_START),
            queued: (side == Side::Request && conn.meta.role == Role::Server && ev.hdr.queued_at != 0)
                .then_some(ev.hdr.queued_at),
            kernel_ctx: if ev.has(abi::F_REQUEST) || side == Side::Request {
                trace_ids::from_kernel(&ev.hdr.tp)
            } else {
                None
            },
            data: ev.data,
            missing: ev.missing(),
            tail: ev.tail,
        };
        // Sessions count their own parse failures; a process not named
        // yet has them held (see `unnamed_losses`).
        let failures_before = self.env.stats.parse_failures;
        let mut cx = self.env.cx(&conn.meta);
        let feed = session.on_data(&io, &mut cx);
        // The process map is looked up only when something failed: most
        // events parse.
        let failed = self.env.stats.parse_failures - failures_before + u64::from(feed == Feed::Invalid);
        if failed > 0 {
            if self.services.contains_key(&conn.meta.pid) {
                self.env.stats.parse_failures += u64::from(feed == Feed::Invalid);
            } else {
                self.env.stats.parse_failures = failures_before;
                self.unnamed_losses.entry(conn.meta.pid).or_default().parse_failures += failed;
            }
        }
        match feed {
            Feed::Ok => {}
            Feed::Invalid => {
                conn.failures += 1;
                if conn.failures >= MAX_FAILURES {
                    conn.proto = Proto::Ignored;
                    count_ignored(&self.services, &mut self.unnamed_losses, &mut self.env.stats, conn.meta.pid);
                    self.to_ignore.push(id);
                }
            }
            Feed::Upgraded => conn.proto = Proto::Detecting,
            Feed::Lost => {
                conn.proto = Proto::Ignored;
                self.to_ignore.push(id);
            }
        }
        let meta = conn.meta;
        if !self.env.finished.is_empty() {
            self.emit_finished(meta);
        }
    }

    /// TLS sessions learn their socket's addresses when the kernel ties the
    /// SSL object to it; a new socket under the same SSL address is a new session.
    fn track_tls_socket(&mut self, key: u64, ev: &Event<'_>) {
        if ev.hdr.tuple.lport == 0 {
            return;
        }
        let (local, remote) = event::endpoints(&ev.hdr.tuple);
        let Some(conn) = self.conns.get_mut(&key) else {
            self.tls_by_socket.insert((ev.hdr.tgid, local, remote), key);
            return;
        };
        if conn.meta.local.1 == 0 {
            conn.meta.local = local;
            conn.meta.remote = remote;
        } else if conn.meta.local != local || conn.meta.remote != remote {
            self.conns.remove(&key);
        }
        self.tls_by_socket.insert((ev.hdr.tgid, local, remote), key);
    }

    /// Turns the exchanges sessions finished into spans of `conn`.
    /// Says once per process that its TLS is traced: only processes that
    /// really speak TLS (many map libssl and never do).
    fn announce_tls(&mut self, pid: u32, go: bool) {
        if self.tls_seen.insert(pid) {
            let service = self.services.get(&pid).map(|s| s.name.as_str()).unwrap_or_default();
            if go {
                tracing::info!(
                    component = "ebpf.TLS",
                    pid,
                    service,
                    "tracing TLS plaintext through Go crypto/tls uprobes"
                );
            } else {
                tracing::info!(component = "ebpf.TLS", pid, service, "tracing TLS plaintext through OpenSSL uprobes");
            }
        }
    }

    fn emit_finished(&mut self, conn: ConnMeta) {
        let mut finished = std::mem::take(&mut self.env.finished);
        for f in finished.drain(..) {
            let end = f.end_mono;
            let span = self.build_span(&conn, f);
            self.emit(span, end);
        }
        self.env.finished = finished;
    }

    /// Queues a finished span (`end_mono`: its last byte) until `settle`.
    fn emit(&mut self, span: Span, end_mono: u64) {
        self.env.stats.spans += 1;
        self.settling.push((span, end_mono));
    }

    /// Names the spans emitted since the last call, once the process events
    /// written before their bytes are processed (the loop drains them again
    /// after the data): a span that ended after its process exec'd (an
    /// inetd handler, a CGI script) belongs to the new program, named by
    /// discovery (it waits for that); one that ended before keeps the name
    /// it was emitted with; one of a process not named yet waits.
    pub(crate) fn settle(&mut self) {
        // Drained in place: the buffer is kept for the next turn.
        let mut settling = std::mem::take(&mut self.settling);
        for (mut span, end_mono) in settling.drain(..) {
            let pid = span.service.pid;
            let before_exec = self.execs.get(&pid).is_some_and(|&exec| end_mono < exec);
            if before_exec {
                if span.service.instance_id.is_empty() {
                    self.hold(span);
                } else {
                    self.spans.push(span);
                }
                continue;
            }
            match self.services.get(&pid) {
                Some(svc) => {
                    span.service = svc.clone();
                    self.spans.push(span);
                }
                None => self.hold(span),
            }
        }
        // A burst (a stalled loop catching up) leaves a large buffer: not kept.
        settling.shrink_to(SETTLING_KEPT);
        self.settling = settling;
    }

    /// Holds a span until its process is named.
    fn hold(&mut self, span: Span) {
        let pid = span.service.pid;
        let now = crate::clock::monotonic_ns();
        let held = self.held.entry(pid).or_insert_with(|| Held { since_mono: now, spans: Vec::new() });
        if held.spans.len() < MAX_HELD {
            held.spans.push(span);
        } else {
            self.env.stats.unnamed_spans_dropped += 1;
        }
    }

    /// A span of `conn`: who is the client and who the server, the service
    /// of its process (named later by discovery if not yet, see `emit`),
    /// and wall-clock times.
    fn build_span(&self, conn: &ConnMeta, f: Finished) -> Span {
        let server = conn.role == Role::Server;
        let (client, srv) = if server { (conn.remote, conn.local) } else { (conn.local, conn.remote) };
        let service = match self.services.get(&conn.pid) {
            Some(s) => s.clone(),
            None => Arc::new(Service { pid: conn.pid, ..Default::default() }),
        };
        let start = self.clock.to_wall(f.start_mono);
        // A queue time is only believed when it precedes the handler's start.
        let request_start = match f.queued_mono {
            Some(q) if q <= f.start_mono => self.clock.to_wall(q),
            _ => start,
        };
        let mut detail = f.detail;
        if let SpanDetail::Http(http) = &mut detail {
            http.tls = conn.tls;
        }
        Span {
            kind: if server { SpanKind::Server } else { SpanKind::Client },
            detail,
            peer: Endpoint { addr: Some(client.0), port: client.1, name: String::new() },
            host: Endpoint { addr: Some(srv.0), port: srv.1, name: String::new() },
            request_start_ns: request_start,
            start_ns: start,
            end_ns: self.clock.to_wall(f.end_mono).max(start),
            trace: f.trace,
            service,
            peer_service: None,
        }
    }

    /// Forgets a process discovery rejected: what it produced is dropped now.
    pub(crate) fn reject(&mut self, pid: u32) {
        self.unnamed_losses.remove(&pid);
        self.remove_service(pid);
        if let Some(held) = self.held.remove(&pid) {
            self.env.stats.unnamed_spans_dropped += held.spans.len() as u64;
        }
    }

    /// The agent stops: spans still waiting for their process to be named
    /// are counted dropped (none is lost uncounted).
    pub(crate) fn finish(&mut self) {
        self.settle();
        let held: u64 = self.held.drain().map(|(_, h)| h.spans.len() as u64).sum();
        self.env.stats.unnamed_spans_dropped += held;
    }

    /// Periodic housekeeping: idle connections, sessions' timeouts, id remaps.
    pub(crate) fn tick(&mut self, now_mono: u64) {
        self.env.remap.expire(now_mono, 300 * 1_000_000_000);
        let mut dropped = 0;
        self.held.retain(|_, h| {
            let keep = now_mono.saturating_sub(h.since_mono) < HOLD_NS;
            if !keep {
                dropped += h.spans.len() as u64;
            }
            keep
        });
        self.env.stats.unnamed_spans_dropped += dropped;
        let mut finished = Vec::new();
        for conn in self.conns.values_mut() {
            let Proto::Parsed(_, session) = &mut conn.proto else { continue };
            let mut cx = self.env.cx(&conn.meta);
            session.tick(now_mono, &mut cx);
            if !self.env.finished.is_empty() {
                finished.push((conn.meta, std::mem::take(&mut self.env.finished)));
            }
        }
        for (meta, list) in finished {
            for f in list {
                let end = f.end_mono;
                let span = self.build_span(&meta, f);
                self.emit(span, end);
            }
        }
        let before = self.conns.len();
        self.conns.retain(|_, c| now_mono.saturating_sub(c.last_mono) < IDLE_CONN_NS);
        let conns = &self.conns;
        self.tls_by_socket.retain(|_, key| conns.contains_key(key));
        self.env.stats.active_conns = self.conns.len() as u64;
        if before != self.conns.len() {
            tracing::debug!(component = "tracker", expired = before - self.conns.len(), "forgot idle connections");
        }
    }

    fn enforce_cap(&mut self) {
        if self.conns.len() <= MAX_CONNS {
            return;
        }
        let mut ages: Vec<u64> = self.conns.values().map(|c| c.last_mono).collect();
        ages.sort_unstable();
        let cutoff = ages[ages.len() - MAX_CONNS * 9 / 10];
        self.conns.retain(|_, c| c.last_mono >= cutoff);
    }
}

/// Fills in an unknown role from what detection learnt of the sender.
fn set_role(role: &mut Role, sender_is_client: Option<bool>, is_send: bool) {
    if *role == Role::Unknown
        && let Some(sender_is_client) = sender_is_client
    {
        *role = if sender_is_client == is_send { Role::Client } else { Role::Server };
    }
}
