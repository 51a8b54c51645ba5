//! HTTP spans (HTTP/1.x, and HTTP/2 without gRPC): names, status, the
//! `http.*` semantic-convention attributes and the HTTP RED histograms.

use std::borrow::Cow;

use super::metric::{Attr, CLIENT_ADDRESS, FamilyDef, Measure, SERVER_ADDRESS, SERVER_PORT};
use super::naming::{peer_name, server_address, server_name, write_server_port};
use super::{AttrSink, Semantics, Span, SpanDetail, SpanKind, Summary, Value};

/// What an HTTP exchange adds to a span.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct HttpSpan {
    pub(crate) method: String,
    /// URL path without the query string.
    pub(crate) path: String,
    /// Low-cardinality route (set by the routes decorator); empty when unknown.
    pub(crate) route: String,
    /// 0 when no response was seen.
    pub(crate) status: u16,
    pub(crate) request_body_size: i64,
    pub(crate) response_body_size: i64,
    /// The request's `Host` header (`:authority` for HTTP/2), when captured.
    pub(crate) host_header: Option<String>,
    /// Seen as TLS plaintext (the OpenSSL probes): the scheme is https.
    pub(crate) tls: bool,
}

static NOT_HTTP: HttpSpan = HttpSpan {
    method: String::new(),
    path: String::new(),
    route: String::new(),
    status: 0,
    request_body_size: 0,
    response_body_size: 0,
    host_header: None,
    tls: false,
};

impl HttpSpan {
    /// The HTTP part of a span (empty for spans of other protocols, which
    /// HTTP families never record).
    fn of(span: &Span) -> &HttpSpan {
        match &span.detail {
            SpanDetail::Http(h) => h,
            _ => &NOT_HTTP,
        }
    }
}

impl Semantics for HttpSpan {
    fn type_name(&self, kind: SpanKind) -> &'static str {
        if kind == SpanKind::Client { "HTTPClient" } else { "HTTP" }
    }

    fn instrumentation(&self) -> Option<&'static str> {
        Some("http")
    }

    /// OBI's `TraceName()`: `METHOD route`, or `METHOD` without a route.
    fn name(&self) -> Cow<'_, str> {
        if self.route.is_empty() {
            Cow::Borrowed(&self.method)
        } else {
            Cow::Owned(format!("{} {}", self.method, self.route))
        }
    }

    fn write_name(&self, out: &mut String) {
        out.push_str(&self.method);
        if !self.route.is_empty() {
            out.push(' ');
            out.push_str(&self.route);
        }
    }

    /// 5xx (and no response) on servers, 4xx and 5xx on clients.
    fn is_error(&self, kind: SpanKind) -> bool {
        let s = self.status;
        match kind {
            SpanKind::Client => s == 0 || s >= 400,
            _ => s == 0 || s >= 500,
        }
    }

    fn summary(&self) -> Summary<'_> {
        Summary {
            sub_type: 0,
            status: self.status.into(),
            method: &self.method,
            target: &self.path,
            route: &self.route,
            request_size: self.request_body_size,
            response_size: self.response_body_size,
        }
    }

    fn requested_host(&self) -> Option<&str> {
        self.host_header.as_deref()
    }

    fn otel_attributes(&self, span: &Span, out: &mut AttrSink<'_>) {
        out("http.request.method", Value::Str(&self.method));
        out("http.response.status_code", Value::Int(self.status.into()));
        // Plaintext of TLS only reaches us through the OpenSSL probes, which
        // mark it; bytes read off a socket and parsed as HTTP are plain http.
        let scheme = if self.tls { "https" } else { "http" };
        if span.is_client() {
            match self.host_header.as_deref().map(str::trim).filter(|h| !h.is_empty()) {
                Some(host) => out("url.full", Value::Str(&format!("{scheme}://{host}{}", self.path))),
                None => out("url.full", Value::Str(&self.path)),
            }
            out("http.scheme", Value::Str(scheme));
        } else {
            out("url.path", Value::Str(&self.path));
            out("url.scheme", Value::Str(scheme));
            out("client.address", peer_name(span));
        }
        out("server.address", server_address(span));
        write_server_port(span, out);
        out("http.request.body.size", Value::Int(self.request_body_size));
        out("http.response.body.size", Value::Int(self.response_body_size));
        if !span.is_client() && !self.route.is_empty() {
            out("http.route", Value::Str(&self.route));
        }
    }

    /// OBI's keys; client spans carry the body sizes too (OBI's client key
    /// set lacks them, and users asked for them: issue #19).
    fn printer_attributes(&self, span: &Span, out: &mut AttrSink<'_>) {
        let server = !span.is_client();
        out("clientAddr", peer_name(span));
        out("contentLen", Value::Int(self.request_body_size));
        out("method", Value::Str(&self.method));
        out("responseLen", Value::Int(self.response_body_size));
        if server {
            out("route", Value::Str(&self.route));
        }
        out("serverAddr", server_name(span));
        out("serverPort", Value::Int(span.host.port.into()));
        out("status", Value::Int(self.status.into()));
        out("url", Value::Str(&self.path));
    }
}

const METHOD: Attr = Attr::new("http.request.method", "http_request_method", |s| Value::Str(&HttpSpan::of(s).method));
const STATUS: Attr =
    Attr::new("http.response.status_code", "http_response_status_code", |s| Value::Int(HttpSpan::of(s).status.into()));
const ROUTE: Attr = Attr::new("http.route", "http_route", |s| Value::Str(&HttpSpan::of(s).route));
const URL_PATH: Attr = Attr::new("url.path", "url_path", |s| Value::Str(&HttpSpan::of(s).path));

const SERVER_ATTRS: &[Attr] = &[METHOD, STATUS, ROUTE, URL_PATH, SERVER_ADDRESS, SERVER_PORT, CLIENT_ADDRESS];
const CLIENT_ATTRS: &[Attr] = &[METHOD, STATUS, ROUTE, URL_PATH, SERVER_ADDRESS, SERVER_PORT];
const DEFAULTS: &[Attr] = &[METHOD, STATUS, ROUTE, SERVER_ADDRESS, SERVER_PORT];

fn is_http(span: &Span) -> bool {
    matches!(span.detail, SpanDetail::Http(_))
}

fn request_size(span: &Span) -> i64 {
    HttpSpan::of(span).request_body_size
}

fn response_size(span: &Span) -> i64 {
    HttpSpan::of(span).response_body_size
}

/// OBI's HTTP histograms, with its names, units and default attributes.
pub(super) static FAMILIES: &[FamilyDef] = &[
    FamilyDef {
        otel: "http.server.request.duration",
        prom: "http_server_request_duration_seconds",
        unit: "s",
        help: "duration of HTTP service calls from the server side, in seconds",
        measure: Measure::Duration,
        instrumentation: "http",
        kind: SpanKind::Server,
        records: is_http,
        available: SERVER_ATTRS,
        defaults: DEFAULTS,
    },
    FamilyDef {
        otel: "http.server.request.body.size",
        prom: "http_server_request_body_size_bytes",
        unit: "By",
        help: "size, in bytes, of the HTTP request body as received at the server side",
        measure: Measure::Size(request_size),
        instrumentation: "http",
        kind: SpanKind::Server,
        records: is_http,
        available: SERVER_ATTRS,
        defaults: DEFAULTS,
    },
    FamilyDef {
        otel: "http.server.response.body.size",
        prom: "http_server_response_body_size_bytes",
        unit: "By",
        help: "size, in bytes, of the HTTP response body as sent from the server side",
        measure: Measure::Size(response_size),
        instrumentation: "http",
        kind: SpanKind::Server,
        records: is_http,
        available: SERVER_ATTRS,
        defaults: DEFAULTS,
    },
    FamilyDef {
        otel: "http.client.request.duration",
        prom: "http_client_request_duration_seconds",
        unit: "s",
        help: "duration of HTTP service calls from the client side, in seconds",
        measure: Measure::Duration,
        instrumentation: "http",
        kind: SpanKind::Client,
        records: is_http,
        available: CLIENT_ATTRS,
        defaults: DEFAULTS,
    },
    FamilyDef {
        otel: "http.client.request.body.size",
        prom: "http_client_request_body_size_bytes",
        unit: "By",
        help: "size, in bytes, of the HTTP request body as sent from the client side",
        measure: Measure::Size(request_size),
        instrumentation: "http",
        kind: SpanKind::Client,
        records: is_http,
        available: CLIENT_ATTRS,
        defaults: DEFAULTS,
    },
    FamilyDef {
        otel: "http.client.response.body.size",
        prom: "http_client_response_body_size_bytes",
        unit: "By",
        help: "size, in bytes, of the HTTP response body as received at the client side",
        measure: Measure::Size(response_size),
        instrumentation: "http",
        kind: SpanKind::Client,
        records: is_http,
        available: CLIENT_ATTRS,
        defaults: DEFAULTS,
    },
];
