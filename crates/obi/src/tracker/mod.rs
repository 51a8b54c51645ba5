//! Turns kernel events into spans: one state machine per connection,
//! protocol detection, and span assembly with service identity and
//! wall-clock times.

pub mod detect;
pub mod event;
pub mod http1;
pub mod http2;
pub mod trace_ids;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use crate::clock::Clock;
use crate::ebpf::abi;
use crate::service::Service;
use crate::span::{Endpoint, Span, SpanType};
use detect::Detected;
use event::Event;
use http1::{EventInfo, Exchange, Http1Session, Side};
use http2::{H2Done, Http2Session};
use trace_ids::TraceRemap;

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
    Http1(Box<Http1Session>),
    Http2(Box<Http2Session>),
    /// Not something we parse: the kernel was told to stop capturing it.
    Ignored,
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
}

struct Conn {
    meta: ConnMeta,
    proto: Proto,
    last_mono: u64,
    failures: u8,
}

/// Counters of what the tracker saw and what it could not use.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TrackerStats {
    pub events: u64,
    pub malformed_events: u64,
    pub spans: u64,
    /// Message starts that were not valid HTTP/1.
    pub parse_failures: u64,
    /// Connections ignored because their protocol is not supported.
    pub ignored_conns: u64,
    /// Responses whose request we never saw (joined mid-connection).
    pub orphan_responses: u64,
    /// Requests dropped: no response before close, or too many pending.
    pub unanswered_requests: u64,
    pub active_conns: u64,
    /// Spans dropped because their process was never named (or was rejected).
    pub unnamed_spans_dropped: u64,
    /// HTTP/2 connections whose header decoding lost sync (no spans after that).
    pub h2_desynced_conns: u64,
}

/// Spans of a process that is traced but not (yet) named by discovery.
struct Held {
    since_mono: u64,
    spans: Vec<Span>,
}

pub struct Tracker {
    conns: HashMap<u64, Conn>,
    services: HashMap<u32, Arc<Service>>,
    held: HashMap<u32, Held>,
    /// TLS session key by the socket under it.
    tls_by_socket: HashMap<SocketKey, u64>,
    clock: Clock,
    remap: TraceRemap,
    spans: Vec<Span>,
    to_ignore: Vec<u64>,
    exchanges: Vec<Exchange>,
    h2_done: Vec<H2Done>,
    http_request_timeout_ns: u64,
    /// OBI_DEBUG_EVENTS=1: print every data event on stderr (troubleshooting).
    debug_events: bool,
    pub stats: TrackerStats,
}

fn debug_event(key: u64, ev: &Event<'_>) {
    let h = &ev.hdr;
    eprintln!(
        "event conn={key:x} pid={} tid={} dir={} role={} flags={:#x} syscall={} bytes={} ports={}->{} data={:?}",
        h.tgid,
        h.tid,
        h.dir,
        h.role,
        h.flags,
        h.syscall,
        h.bytes,
        h.tuple.lport,
        h.tuple.rport,
        String::from_utf8_lossy(&ev.data[..ev.data.len().min(48)])
    );
}

impl Tracker {
    pub fn new(clock: Clock, http_request_timeout_ns: u64) -> Self {
        Tracker {
            conns: HashMap::new(),
            services: HashMap::new(),
            held: HashMap::new(),
            tls_by_socket: HashMap::new(),
            clock,
            remap: TraceRemap::default(),
            spans: Vec::new(),
            to_ignore: Vec::new(),
            exchanges: Vec::new(),
            h2_done: Vec::new(),
            http_request_timeout_ns,
            debug_events: std::env::var_os("OBI_DEBUG_EVENTS").is_some(),
            stats: TrackerStats::default(),
        }
    }

    /// Names a process; spans it produced while unnamed are released.
    pub fn add_service(&mut self, svc: Arc<Service>) {
        if let Some(held) = self.held.remove(&svc.pid) {
            for mut span in held.spans {
                span.service = svc.clone();
                self.spans.push(span);
            }
        }
        self.services.insert(svc.pid, svc);
    }

    /// Forgets a process and everything pending for it.
    pub fn remove_service(&mut self, pid: u32) {
        self.services.remove(&pid);
        if let Some(held) = self.held.remove(&pid) {
            self.stats.unnamed_spans_dropped += held.spans.len() as u64;
        }
        self.conns.retain(|_, c| c.meta.pid != pid);
        self.tls_by_socket.retain(|k, _| k.0 != pid);
    }

    pub fn service(&self, pid: u32) -> Option<&Arc<Service>> {
        self.services.get(&pid)
    }

    /// Spans completed since the last call.
    pub fn take_spans(&mut self) -> Vec<Span> {
        std::mem::take(&mut self.spans)
    }

    /// Connections the kernel should stop capturing.
    pub fn take_ignored(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.to_ignore)
    }

    /// Handles one ring-buffer record.
    pub fn handle_record(&mut self, record: &[u8]) {
        self.stats.events += 1;
        let Some(ev) = Event::decode(record) else {
            self.stats.malformed_events += 1;
            return;
        };
        match ev.hdr.kind {
            abi::EV_CONN_OPEN => self.on_open(&ev),
            abi::EV_DATA => self.on_data(&ev),
            abi::EV_CONN_CLOSE => self.on_close(&ev),
            _ => self.stats.malformed_events += 1,
        }
    }

    fn new_conn(ev: &Event<'_>) -> Conn {
        let (local, remote) = event::endpoints(&ev.hdr.tuple);
        Conn {
            meta: ConnMeta { pid: ev.hdr.tgid, role: Role::from_abi(ev.hdr.role), local, remote },
            proto: Proto::Detecting,
            last_mono: ev.hdr.ts_exit,
            failures: 0,
        }
    }

    fn on_open(&mut self, ev: &Event<'_>) {
        // An inode reused without a close we saw: start over.
        self.conns.insert(ev.hdr.conn_id, Self::new_conn(ev));
        self.enforce_cap();
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
        if let Proto::Http1(session) = &mut conn.proto {
            let outcome = session.on_close(ts, &mut self.exchanges);
            self.stats.orphan_responses += outcome.orphan_responses as u64;
            self.stats.unanswered_requests += session.pending_len() as u64;
            self.flush_exchanges(conn.meta);
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
        }
        let conn = self.conns.entry(id).or_insert_with(|| Self::new_conn(ev));
        conn.last_mono = ev.hdr.ts_exit;
        if conn.meta.role == Role::Unknown {
            conn.meta.role = Role::from_abi(ev.hdr.role);
        }
        if matches!(conn.proto, Proto::Ignored) {
            return;
        }
        if ev.has(abi::F_H2) {
            self.on_h2_data(id, ev);
            return;
        }
        if matches!(conn.proto, Proto::Detecting) && !Self::detect(conn, ev) {
            if matches!(conn.proto, Proto::Ignored) {
                self.stats.ignored_conns += 1;
                self.to_ignore.push(id);
            }
            return;
        }
        let side = match (conn.meta.role, ev.is_send()) {
            (Role::Server, false) | (Role::Client, true) => Side::Request,
            (Role::Server, true) | (Role::Client, false) => Side::Response,
            (Role::Unknown, _) => return,
        };
        let Proto::Http1(session) = &mut conn.proto else { return };
        let info = EventInfo {
            side,
            // Server requests count from when the bytes arrived; client
            // requests from when the app started sending.
            ts: if ev.is_send() && side == Side::Request { ev.hdr.ts_enter } else { ev.hdr.ts_exit },
            tid: ev.hdr.tid,
            kernel_ctx: if ev.has(abi::F_REQUEST) || side == Side::Request {
                trace_ids::from_kernel(&ev.hdr.tp)
            } else {
                None
            },
            server: conn.meta.role == Role::Server,
            msg_start: ev.has(abi::F_MSG_START),
            data: ev.data,
            missing: ev.missing(),
            tail: ev.tail,
        };
        let outcome = session.on_event(&info, &mut self.remap, &mut self.exchanges);
        self.stats.orphan_responses += outcome.orphan_responses as u64;
        self.stats.unanswered_requests += outcome.dropped_requests as u64;
        if outcome.invalid {
            self.stats.parse_failures += 1;
            conn.failures += 1;
        }
        if outcome.upgraded {
            // After `101 Switching Protocols` the bytes are another protocol:
            // HTTP/2 (h2c upgrade; the kernel then sends frame records once it
            // sees the client preface) or something we ignore on sight.
            conn.proto = Proto::Detecting;
        } else if conn.failures >= MAX_FAILURES {
            conn.proto = Proto::Ignored;
            self.stats.ignored_conns += 1;
            self.to_ignore.push(id);
        }
        let meta = conn.meta;
        if !self.exchanges.is_empty() {
            self.flush_exchanges(meta);
        }
    }

    /// HTTP/2 frame records of one connection (the kernel saw its preface).
    fn on_h2_data(&mut self, id: u64, ev: &Event<'_>) {
        let Some(conn) = self.conns.get_mut(&id) else { return };
        if !matches!(conn.proto, Proto::Http2(_)) {
            conn.proto = Proto::Http2(Box::default());
        }
        if conn.meta.role == Role::Unknown && h2_preface_in(ev.data) {
            // Whoever sends the preface is the client.
            conn.meta.role = if ev.is_send() { Role::Client } else { Role::Server };
        }
        let side = match (conn.meta.role, ev.is_send()) {
            (Role::Server, false) | (Role::Client, true) => obi_protocols::http2::Side::Request,
            (Role::Server, true) | (Role::Client, false) => obi_protocols::http2::Side::Response,
            (Role::Unknown, _) => return,
        };
        let Proto::Http2(session) = &mut conn.proto else { return };
        let request_sent = ev.is_send() && side == obi_protocols::http2::Side::Request;
        let ts = if request_sent { ev.hdr.ts_enter } else { ev.hdr.ts_exit };
        if let Err(why) = session.on_event(side, ev.data, ts, ev.hdr.tid) {
            self.stats.h2_desynced_conns += 1;
            tracing::debug!(component = "tracker", conn = format_args!("{id:x}"), reason = ?why, "HTTP/2 decoding lost sync; no more spans from this connection");
        }
        let mut done = std::mem::take(&mut self.h2_done);
        session.drain(&mut done);
        if session.desync().is_some() {
            conn.proto = Proto::Ignored;
            self.to_ignore.push(id);
        }
        let meta = conn.meta;
        for d in done.drain(..) {
            let span = self.build_h2_span(&meta, d);
            self.emit(span);
        }
        self.h2_done = done;
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

    /// Decides the protocol from the first payload. Returns true when the
    /// connection is now parseable.
    fn detect(conn: &mut Conn, ev: &Event<'_>) -> bool {
        let role = &mut conn.meta.role;
        match detect::detect(ev.data) {
            Detected::NeedMore => false,
            Detected::Http1Request => {
                if *role == Role::Unknown {
                    *role = if ev.is_send() { Role::Client } else { Role::Server };
                }
                conn.proto = Proto::Http1(Box::default());
                true
            }
            Detected::Http1Response => {
                if *role == Role::Unknown {
                    *role = if ev.is_send() { Role::Server } else { Role::Client };
                }
                // A response first means we joined mid-exchange; parse from here.
                conn.proto = Proto::Http1(Box::default());
                true
            }
            // Frame records follow once the kernel sees the client's preface.
            Detected::Http2Settings => false,
            Detected::Http2Preface | Detected::Tls | Detected::Unknown => {
                conn.proto = Proto::Ignored;
                false
            }
        }
    }

    fn flush_exchanges(&mut self, conn: ConnMeta) {
        let mut exchanges = std::mem::take(&mut self.exchanges);
        for ex in exchanges.drain(..) {
            let span = self.build_http_span(&conn, ex);
            self.emit(span);
        }
        self.exchanges = exchanges;
    }

    /// Queues a finished span, or holds it until its process is named.
    fn emit(&mut self, span: Span) {
        self.stats.spans += 1;
        let pid = span.service.pid;
        if self.services.contains_key(&pid) {
            self.spans.push(span);
            return;
        }
        let now = crate::clock::monotonic_ns();
        let held = self.held.entry(pid).or_insert_with(|| Held { since_mono: now, spans: Vec::new() });
        if held.spans.len() < MAX_HELD {
            held.spans.push(span);
        } else {
            self.stats.unnamed_spans_dropped += 1;
        }
    }

    /// Who is the client and who the server of a connection, and the
    /// service of its process (named later by discovery if not yet, see `emit`).
    fn parties(&self, conn: &ConnMeta) -> (bool, Endpoint, Endpoint, Arc<Service>) {
        let server = conn.role == Role::Server;
        let (client, srv) = if server { (conn.remote, conn.local) } else { (conn.local, conn.remote) };
        let service = match self.services.get(&conn.pid) {
            Some(s) => s.clone(),
            None => Arc::new(Service { pid: conn.pid, ..Default::default() }),
        };
        let peer = Endpoint { addr: Some(client.0), port: client.1, name: String::new() };
        let host = Endpoint { addr: Some(srv.0), port: srv.1, name: String::new() };
        (server, peer, host, service)
    }

    fn build_http_span(&self, conn: &ConnMeta, ex: Exchange) -> Span {
        let (server, peer, host, service) = self.parties(conn);
        let mut trace = ex.request.ctx;
        if !server {
            self.remap.apply(&mut trace);
        }
        let start = self.clock.to_wall(ex.request.start_mono);
        let req = ex.request.req;
        Span {
            span_type: if server { SpanType::HttpServer } else { SpanType::HttpClient },
            sub_type: 0,
            path: req.path().to_string(),
            method: req.method,
            route: String::new(),
            status: ex.status as i32,
            peer,
            host,
            request_body_size: ex.request.body_bytes as i64,
            response_body_size: ex.response_body_bytes as i64,
            host_header: req.host,
            request_start_ns: start,
            start_ns: start,
            end_ns: self.clock.to_wall(ex.end_mono).max(start),
            trace,
            service,
            tid: ex.request.tid,
        }
    }

    fn build_h2_span(&self, conn: &ConnMeta, d: H2Done) -> Span {
        let (server, peer, host, service) = self.parties(conn);
        let ex = d.ex;
        let grpc = ex.request.is_grpc();
        let span_type = match (grpc, server) {
            (true, true) => SpanType::GrpcServer,
            (true, false) => SpanType::GrpcClient,
            (false, true) => SpanType::HttpServer,
            (false, false) => SpanType::HttpClient,
        };
        let status = if grpc { grpc_status(&ex) } else { ex.status as i32 };
        let start = self.clock.to_wall(ex.start_ts);
        let mut path = ex.request.path;
        if !grpc && let Some(q) = path.find('?') {
            path.truncate(q);
        }
        Span {
            span_type,
            sub_type: 0,
            method: ex.request.method,
            path,
            route: String::new(),
            status,
            peer,
            host,
            request_body_size: ex.request_body_bytes as i64,
            response_body_size: ex.response_body_bytes as i64,
            host_header: (!ex.request.authority.is_empty()).then_some(ex.request.authority),
            request_start_ns: start,
            start_ns: start,
            end_ns: self.clock.to_wall(ex.end_ts).max(start),
            trace: d.ctx,
            service,
            tid: ex.tag as u32,
        }
    }

    /// Periodic housekeeping: idle connections, request timeouts, id remaps.
    pub fn tick(&mut self, now_mono: u64) {
        self.remap.expire(now_mono, 300 * 1_000_000_000);
        let mut dropped = 0;
        self.held.retain(|_, h| {
            let keep = now_mono.saturating_sub(h.since_mono) < HOLD_NS;
            if !keep {
                dropped += h.spans.len() as u64;
            }
            keep
        });
        self.stats.unnamed_spans_dropped += dropped;
        if self.http_request_timeout_ns > 0 {
            self.time_out_requests(now_mono);
        }
        self.expire_h2_streams(now_mono);
        let before = self.conns.len();
        self.conns.retain(|_, c| now_mono.saturating_sub(c.last_mono) < IDLE_CONN_NS);
        let conns = &self.conns;
        self.tls_by_socket.retain(|_, key| conns.contains_key(key));
        self.stats.active_conns = self.conns.len() as u64;
        if before != self.conns.len() {
            tracing::debug!(component = "tracker", expired = before - self.conns.len(), "forgot idle connections");
        }
    }

    /// Requests without a response for too long are reported as 408, as OBI does.
    fn time_out_requests(&mut self, now_mono: u64) {
        let timeout = self.http_request_timeout_ns;
        let mut timed_out = Vec::new();
        for conn in self.conns.values_mut() {
            if let Proto::Http1(session) = &mut conn.proto {
                for request in session.take_timed_out(now_mono, timeout) {
                    timed_out.push((conn.meta, request));
                }
            }
        }
        for (meta, request) in timed_out {
            let end = request.start_mono + timeout;
            let ex = Exchange { request, status: 408, response_body_bytes: 0, end_mono: end };
            let span = self.build_http_span(&meta, ex);
            self.emit(span);
        }
    }

    fn expire_h2_streams(&mut self, now_mono: u64) {
        let older_than = now_mono.saturating_sub(IDLE_CONN_NS);
        for conn in self.conns.values_mut() {
            if let Proto::Http2(session) = &mut conn.proto {
                self.stats.unanswered_requests += session.expire(older_than) as u64;
            }
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

/// Does an HTTP/2 event carry the client connection preface?
fn h2_preface_in(records: &[u8]) -> bool {
    use obi_protocols::http2::records::{Record, Records};
    Records::new(records).any(|r| r == Record::Preface)
}

/// The gRPC status of a finished call: `grpc-status` when the server sent
/// one; a reset stream is CANCELLED (1); otherwise UNKNOWN (2).
fn grpc_status(ex: &obi_protocols::http2::H2Exchange) -> i32 {
    match ex.grpc_status {
        Some(code) => code.min(i32::MAX as u32) as i32,
        None if ex.reset => 1,
        None => 2,
    }
}
