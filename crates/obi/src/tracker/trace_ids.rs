//! Trace ids: random ones for spans the kernel did not assign, W3C
//! `traceparent` parsing, and the bookkeeping that lets children follow a
//! server span that adopted an incoming trace.

use std::collections::HashMap;

use rand::RngCore;

use crate::ebpf::abi::Tp;
use crate::span::TraceContext;

pub(crate) fn random_trace_id() -> [u8; 16] {
    let mut id = [0u8; 16];
    while id == [0; 16] {
        rand::rng().fill_bytes(&mut id);
    }
    id
}

pub(crate) fn random_span_id() -> [u8; 8] {
    let mut id = [0u8; 8];
    while id == [0; 8] {
        rand::rng().fill_bytes(&mut id);
    }
    id
}

/// A fresh root context.
pub(crate) fn new_root() -> TraceContext {
    TraceContext { trace_id: random_trace_id(), span_id: random_span_id(), parent_span_id: [0; 8], flags: 1 }
}

/// The trace context of a request of a protocol without trace headers
/// (databases, caches) that arrived in a send the kernel gave `kernel`: the
/// kernel's for the first request of the send, the same parentage with a
/// span id of its own for the next ones of a client (a pipeline), a new
/// trace for the next ones of a server. `last_kernel_span` (per connection)
/// remembers the kernel context already used.
pub(crate) fn request_context(
    last_kernel_span: &mut [u8; 8],
    kernel: Option<TraceContext>,
    server: bool,
) -> TraceContext {
    match (kernel.filter(|k| k.span_id != *last_kernel_span), kernel) {
        (Some(k), _) => {
            *last_kernel_span = k.span_id;
            k
        }
        (None, Some(k)) if !server => TraceContext { span_id: random_span_id(), ..k },
        _ => new_root(),
    }
}

/// The kernel's context, if it assigned one.
pub(crate) fn from_kernel(tp: &Tp) -> Option<TraceContext> {
    if tp.valid == 0 || tp.trace_id == [0; 16] || tp.span_id == [0; 8] {
        return None;
    }
    Some(TraceContext { trace_id: tp.trace_id, span_id: tp.span_id, parent_span_id: tp.parent_id, flags: tp.flags })
}

/// Parses a W3C `traceparent` value: `00-<32 hex>-<16 hex>-<2 hex>`.
/// Returns (trace id, parent span id, flags). Invalid ids (all zero) and
/// version `ff` are rejected as the spec requires.
pub(crate) fn parse_traceparent(value: &str) -> Option<([u8; 16], [u8; 8], u8)> {
    let v = value.trim().as_bytes();
    if v.len() < 55 || v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let version = hex_byte(&v[0..2])?;
    if version == 0xff || (version == 0 && v.len() != 55) {
        return None;
    }
    let mut trace = [0u8; 16];
    for (i, b) in trace.iter_mut().enumerate() {
        *b = hex_byte(&v[3 + 2 * i..5 + 2 * i])?;
    }
    let mut parent = [0u8; 8];
    for (i, b) in parent.iter_mut().enumerate() {
        *b = hex_byte(&v[36 + 2 * i..38 + 2 * i])?;
    }
    let flags = hex_byte(&v[53..55])?;
    if trace == [0; 16] || parent == [0; 8] {
        return None;
    }
    Some((trace, parent, flags))
}

fn hex_byte(two: &[u8]) -> Option<u8> {
    fn nib(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None, // the spec allows lowercase only
        }
    }
    Some(nib(two[0])? << 4 | nib(two[1])?)
}

/// When a server span adopts an incoming trace id, client spans the kernel
/// already parented under the kernel's provisional trace id must follow.
/// Entries live for `ttl_ns` (a request's lifetime, generously).
#[derive(Default)]
pub(crate) struct TraceRemap {
    map: HashMap<[u8; 16], ([u8; 16], u64)>,
}

impl TraceRemap {
    const MAX: usize = 65536;

    pub(crate) fn insert(&mut self, kernel_trace: [u8; 16], adopted: [u8; 16], now_ns: u64) {
        if self.map.len() >= Self::MAX {
            self.expire(now_ns, 0);
        }
        self.map.insert(kernel_trace, (adopted, now_ns));
    }

    pub(crate) fn apply(&self, ctx: &mut TraceContext) {
        if let Some((adopted, _)) = self.map.get(&ctx.trace_id) {
            ctx.trace_id = *adopted;
        }
    }

    /// Drops entries older than `ttl_ns`.
    pub(crate) fn expire(&mut self, now_ns: u64, ttl_ns: u64) {
        self.map.retain(|_, (_, at)| now_ns.saturating_sub(*at) < ttl_ns);
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valid_traceparent() {
        let (t, p, f) = parse_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").unwrap();
        assert_eq!(t[0], 0x0a);
        assert_eq!(t[15], 0x9c);
        assert_eq!(p, [0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31]);
        assert_eq!(f, 1);
    }

    #[test]
    fn rejects_invalid_traceparents() {
        for bad in [
            "",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            "00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn future_versions_may_carry_extra_fields() {
        assert!(parse_traceparent("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-abcd").is_some());
    }

    #[test]
    fn remap_rewrites_children_until_expiry() {
        let mut r = TraceRemap::default();
        r.insert([1; 16], [2; 16], 100);
        let mut c = TraceContext { trace_id: [1; 16], ..Default::default() };
        r.apply(&mut c);
        assert_eq!(c.trace_id, [2; 16]);
        r.expire(1_000, 500);
        assert!(r.is_empty());
    }
}
