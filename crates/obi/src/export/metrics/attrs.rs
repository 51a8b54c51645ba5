//! Metric attributes: their OTel and Prometheus names and how each is read
//! from a span without allocating.

use std::net::IpAddr;

use super::Val;
use crate::span::Span;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Attr {
    HttpRequestMethod,
    HttpResponseStatusCode,
    HttpRoute,
    UrlPath,
    ServerAddress,
    ServerPort,
    ClientAddress,
    RpcMethod,
    RpcSystem,
    RpcGrpcStatusCode,
}

fn normalize(a: Option<IpAddr>) -> Option<IpAddr> {
    match a {
        Some(IpAddr::V6(v6)) => Some(v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6))),
        other => other,
    }
}

/// The host part of a `Host` header (`example.com:8080` -> `example.com`,
/// `[::1]:80` -> `::1`).
fn header_host(h: &str) -> &str {
    if let Some(rest) = h.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match h.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => h,
    }
}

impl Attr {
    pub(crate) fn otel(self) -> &'static str {
        match self {
            Attr::HttpRequestMethod => "http.request.method",
            Attr::HttpResponseStatusCode => "http.response.status_code",
            Attr::HttpRoute => "http.route",
            Attr::UrlPath => "url.path",
            Attr::ServerAddress => "server.address",
            Attr::ServerPort => "server.port",
            Attr::ClientAddress => "client.address",
            Attr::RpcMethod => "rpc.method",
            Attr::RpcSystem => "rpc.system",
            Attr::RpcGrpcStatusCode => "rpc.grpc.status_code",
        }
    }

    /// Prometheus label name: dots become underscores.
    pub(crate) fn prom(self) -> &'static str {
        match self {
            Attr::HttpRequestMethod => "http_request_method",
            Attr::HttpResponseStatusCode => "http_response_status_code",
            Attr::HttpRoute => "http_route",
            Attr::UrlPath => "url_path",
            Attr::ServerAddress => "server_address",
            Attr::ServerPort => "server_port",
            Attr::ClientAddress => "client_address",
            Attr::RpcMethod => "rpc_method",
            Attr::RpcSystem => "rpc_system",
            Attr::RpcGrpcStatusCode => "rpc_grpc_status_code",
        }
    }

    /// The value for `span`. Names follow OBI's name resolver, as the trace
    /// printer does: the server of a server span is the service itself, the
    /// server of a client span is the `Host` header host if captured, else
    /// the resolved name, else the address.
    pub(crate) fn value(self, span: &Span) -> Val<'_> {
        match self {
            Attr::HttpRequestMethod => Val::Str(&span.method),
            Attr::HttpResponseStatusCode | Attr::RpcGrpcStatusCode => Val::Int(span.status.into()),
            Attr::HttpRoute => Val::Str(&span.route),
            Attr::UrlPath | Attr::RpcMethod => Val::Str(&span.path),
            Attr::RpcSystem => Val::Str("grpc"),
            Attr::ServerPort => Val::Int(span.host.port.into()),
            Attr::ServerAddress => {
                if span.span_type.is_client() {
                    if let Some(h) = span.host_header.as_deref().map(header_host).filter(|h| !h.is_empty()) {
                        Val::Str(h)
                    } else if !span.host.name.is_empty() {
                        Val::Str(&span.host.name)
                    } else {
                        Val::Ip(normalize(span.host.addr))
                    }
                } else if !span.host.name.is_empty() {
                    Val::Str(&span.host.name)
                } else {
                    Val::Str(&span.service.name)
                }
            }
            Attr::ClientAddress => {
                if !span.peer.name.is_empty() {
                    Val::Str(&span.peer.name)
                } else {
                    Val::Ip(normalize(span.peer.addr))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_header_host() {
        assert_eq!(header_host("example.com:8080"), "example.com");
        assert_eq!(header_host("example.com"), "example.com");
        assert_eq!(header_host("[::1]:80"), "::1");
        assert_eq!(header_host("127.0.0.1:1"), "127.0.0.1");
    }

    #[test]
    fn prom_names_are_otel_names_with_underscores() {
        use Attr::*;
        for a in [
            HttpRequestMethod,
            HttpResponseStatusCode,
            HttpRoute,
            UrlPath,
            ServerAddress,
            ServerPort,
            ClientAddress,
            RpcMethod,
            RpcSystem,
            RpcGrpcStatusCode,
        ] {
            assert_eq!(a.prom(), a.otel().replace('.', "_"));
        }
    }
}
