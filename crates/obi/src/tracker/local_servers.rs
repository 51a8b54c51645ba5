//! Names the server of a client span when that server is a traced process
//! on this host: the endpoint (address, port) a traced server answered on
//! is the endpoint its local clients connected to, so a client span to it
//! learns the server's service (`peer.service`). Learned from server spans
//! as they leave the tracker; a server not seen answering yet, or whose
//! process was forgotten, names nothing (never a guess).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use crate::service::Service;
use crate::span::{Span, SpanKind};

/// Endpoints remembered at most; beyond, the table starts over (servers
/// are learned again from their next span).
const MAX_ENDPOINTS: usize = 16384;

#[derive(Default)]
pub(crate) struct LocalServers {
    /// Endpoint a traced server answered on -> its process.
    by_endpoint: HashMap<(IpAddr, u16), u32>,
}

impl LocalServers {
    /// Learns from server spans and names the server of client spans, in
    /// the order the spans ended. `services`: the processes named now.
    pub(crate) fn apply(&mut self, spans: &mut [Span], services: &HashMap<u32, Arc<Service>>) {
        for span in spans {
            let Some(addr) = span.host.addr else { continue };
            let endpoint = (addr, span.host.port);
            match span.kind {
                SpanKind::Server => self.learn(endpoint, span.service.pid),
                SpanKind::Client => {
                    span.peer_service = self.by_endpoint.get(&endpoint).and_then(|pid| services.get(pid)).cloned();
                }
                _ => {}
            }
        }
    }

    fn learn(&mut self, endpoint: (IpAddr, u16), pid: u32) {
        if self.by_endpoint.get(&endpoint) == Some(&pid) {
            return;
        }
        if self.by_endpoint.len() >= MAX_ENDPOINTS {
            self.by_endpoint.clear();
        }
        self.by_endpoint.insert(endpoint, pid);
    }

    /// A process is gone (or renamed by exec): its endpoints name nothing.
    pub(crate) fn forget(&mut self, pid: u32) {
        self.by_endpoint.retain(|_, p| *p != pid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::{Endpoint, HttpSpan, SpanDetail, TraceContext};

    fn span(kind: SpanKind, pid: u32, host_port: u16) -> Span {
        Span {
            kind,
            detail: SpanDetail::Http(HttpSpan::default()),
            peer: Endpoint::unknown(),
            host: Endpoint { addr: Some([127, 0, 0, 1].into()), port: host_port, name: String::new() },
            request_start_ns: 0,
            start_ns: 0,
            end_ns: 0,
            trace: TraceContext::default(),
            service: Arc::new(Service { pid, ..Default::default() }),
            peer_service: None,
        }
    }

    #[test]
    fn a_client_span_names_the_traced_server_it_called() {
        let mut services = HashMap::new();
        services.insert(2, Arc::new(Service { pid: 2, name: "backend".into(), ..Default::default() }));
        let mut local = LocalServers::default();
        // Before the server answered anyone: unknown.
        let mut spans = vec![span(SpanKind::Client, 1, 8080), span(SpanKind::Server, 2, 8080)];
        spans.push(span(SpanKind::Client, 1, 8080));
        spans.push(span(SpanKind::Client, 1, 9090));
        local.apply(&mut spans, &services);
        let named: Vec<Option<&str>> = spans.iter().map(|s| s.peer_service.as_ref().map(|s| s.name.as_str())).collect();
        assert_eq!(named, [None, None, Some("backend"), None]);
        // The server's process is forgotten: its port names nobody.
        local.forget(2);
        let mut later = vec![span(SpanKind::Client, 1, 8080)];
        local.apply(&mut later, &services);
        assert!(later[0].peer_service.is_none());
    }
}
