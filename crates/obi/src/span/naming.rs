//! Names of the two ends of a span, as OBI's name resolver gives them: the
//! instrumented side is named after its service when it has no other name
//! (the server of a server span, the client of a client span); the other
//! side is its resolved name or its IP address. Shared by every exporter.

use super::{Span, Value};

/// OBI's `SpanPeer`: the client side's name.
pub(crate) fn peer_name(span: &Span) -> Value<'_> {
    if !span.peer.name.is_empty() {
        Value::Str(&span.peer.name)
    } else if span.is_client() {
        Value::Str(&span.service.name)
    } else {
        Value::ip(span.peer.addr)
    }
}

/// OBI's `SpanHost`: the server side's name.
pub(crate) fn server_name(span: &Span) -> Value<'_> {
    if !span.host.name.is_empty() {
        Value::Str(&span.host.name)
    } else if !span.is_client() {
        Value::Str(&span.service.name)
    } else {
        Value::ip(span.host.addr)
    }
}

/// The JSON printer's `hostName`, OBI's raw `HostName`: for client spans the
/// name resolver leaves it empty when the host is unresolved.
pub(crate) fn printer_host_name(span: &Span) -> Value<'_> {
    if span.is_client() { Value::Str(&span.host.name) } else { server_name(span) }
}

/// `server.address`: like [`server_name`], except that the server of a
/// client span is better named by the host the client asked for (HTTP
/// `Host`, gRPC `:authority`) than by its address.
pub(crate) fn server_address(span: &Span) -> Value<'_> {
    if span.host.name.is_empty()
        && span.is_client()
        && let Some(host) = span.semantics().requested_host().map(host_without_port).filter(|h| !h.is_empty())
    {
        return Value::Str(host);
    }
    server_name(span)
}

/// `server.port`: absent when the server's port is unknown (its address was
/// never read, e.g. a client span whose connection the kernel missed). Port 0
/// is no port: writing it would name a server that does not exist.
pub(crate) fn server_port(span: &Span) -> Option<i64> {
    (span.host.port != 0).then(|| span.host.port.into())
}

/// Writes `server.port` when it is known (see [`server_port`]).
pub(crate) fn write_server_port(span: &Span, out: &mut super::AttrSink<'_>) {
    if let Some(port) = server_port(span) {
        out("server.port", Value::Int(port));
    }
}

/// The host part of a `Host` header or authority (`example.com:8080` ->
/// `example.com`, `[::1]:80` -> `::1`).
pub(crate) fn host_without_port(h: &str) -> &str {
    let h = h.trim();
    if let Some(rest) = h.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match h.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => h,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_header_host() {
        assert_eq!(host_without_port("example.com:8080"), "example.com");
        assert_eq!(host_without_port("example.com"), "example.com");
        assert_eq!(host_without_port(" [::1]:80"), "::1");
        assert_eq!(host_without_port("127.0.0.1:1"), "127.0.0.1");
    }
}
