//! RED metrics: spans aggregated into histograms per label set, with OBI's
//! metric names, units, default buckets and default attributes, served to
//! Prometheus ([`prom`]) and read by the OTLP metrics exporter.
//!
//! The store is fed by its sink ([`sink`]), one batch at a time, under a
//! mutex that the scrape handler takes briefly. Recording a span into an existing
//! series does not allocate: the label values are borrowed from the span,
//! hashed in place, and compared with the stored ones (hashbrown's
//! `HashTable` with a precomputed hash). Only a new label set allocates.
//!
//! Series not updated for `ttl` are removed ([`MetricsStore::expire`]), so a
//! process that is gone stops being reported.

pub mod attrs;
pub mod exposition;
pub mod internal;
pub mod otlp;
pub mod prom;
pub mod sink;

use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use hashbrown::{DefaultHashBuilder, HashTable};

use crate::config::metrics::{Instrumentations, MetricsConfig, SelectEntry};
use crate::service::Service;
use crate::span::{Span, SpanType};
pub use attrs::Attr;

/// What a histogram measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// `end - request_start`, seconds.
    Duration,
    /// Request body bytes.
    RequestSize,
    /// Response body bytes.
    ResponseSize,
}

/// One metric family (a histogram).
#[derive(Debug)]
pub struct FamilyDef {
    /// OTel name, e.g. `http.server.request.duration`.
    pub otel: &'static str,
    /// Prometheus name with the unit suffix, e.g. `http_server_request_duration_seconds`.
    pub prom: &'static str,
    /// OTel unit (`s`, `By`).
    pub unit: &'static str,
    pub help: &'static str,
    pub measure: Measure,
    pub span_type: SpanType,
    /// Attributes that can be selected, in label order.
    pub available: &'static [Attr],
    /// Attributes reported when `attributes.select` says nothing.
    pub defaults: &'static [Attr],
}

use Attr::*;

const HTTP_SERVER_ATTRS: &[Attr] =
    &[HttpRequestMethod, HttpResponseStatusCode, HttpRoute, UrlPath, ServerAddress, ServerPort, ClientAddress];
const HTTP_SERVER_DEFAULTS: &[Attr] =
    &[HttpRequestMethod, HttpResponseStatusCode, HttpRoute, ServerAddress, ServerPort];
const HTTP_CLIENT_ATTRS: &[Attr] =
    &[HttpRequestMethod, HttpResponseStatusCode, HttpRoute, UrlPath, ServerAddress, ServerPort];
const HTTP_CLIENT_DEFAULTS: &[Attr] =
    &[HttpRequestMethod, HttpResponseStatusCode, HttpRoute, ServerAddress, ServerPort];
const RPC_SERVER_ATTRS: &[Attr] = &[RpcMethod, RpcSystem, RpcGrpcStatusCode, ServerAddress, ServerPort, ClientAddress];
const RPC_CLIENT_ATTRS: &[Attr] = &[RpcMethod, RpcSystem, RpcGrpcStatusCode, ServerAddress, ServerPort];
const RPC_DEFAULTS: &[Attr] = &[RpcMethod, RpcSystem, RpcGrpcStatusCode, ServerAddress];

/// Every family, in exposition order.
pub static FAMILIES: &[FamilyDef] = &[
    FamilyDef {
        otel: "http.server.request.duration",
        prom: "http_server_request_duration_seconds",
        unit: "s",
        help: "duration of HTTP service calls from the server side, in seconds",
        measure: Measure::Duration,
        span_type: SpanType::HttpServer,
        available: HTTP_SERVER_ATTRS,
        defaults: HTTP_SERVER_DEFAULTS,
    },
    FamilyDef {
        otel: "http.server.request.body.size",
        prom: "http_server_request_body_size_bytes",
        unit: "By",
        help: "size, in bytes, of the HTTP request body as received at the server side",
        measure: Measure::RequestSize,
        span_type: SpanType::HttpServer,
        available: HTTP_SERVER_ATTRS,
        defaults: HTTP_SERVER_DEFAULTS,
    },
    FamilyDef {
        otel: "http.server.response.body.size",
        prom: "http_server_response_body_size_bytes",
        unit: "By",
        help: "size, in bytes, of the HTTP response body as sent from the server side",
        measure: Measure::ResponseSize,
        span_type: SpanType::HttpServer,
        available: HTTP_SERVER_ATTRS,
        defaults: HTTP_SERVER_DEFAULTS,
    },
    FamilyDef {
        otel: "http.client.request.duration",
        prom: "http_client_request_duration_seconds",
        unit: "s",
        help: "duration of HTTP service calls from the client side, in seconds",
        measure: Measure::Duration,
        span_type: SpanType::HttpClient,
        available: HTTP_CLIENT_ATTRS,
        defaults: HTTP_CLIENT_DEFAULTS,
    },
    FamilyDef {
        otel: "http.client.request.body.size",
        prom: "http_client_request_body_size_bytes",
        unit: "By",
        help: "size, in bytes, of the HTTP request body as sent from the client side",
        measure: Measure::RequestSize,
        span_type: SpanType::HttpClient,
        available: HTTP_CLIENT_ATTRS,
        defaults: HTTP_CLIENT_DEFAULTS,
    },
    FamilyDef {
        otel: "http.client.response.body.size",
        prom: "http_client_response_body_size_bytes",
        unit: "By",
        help: "size, in bytes, of the HTTP response body as received at the client side",
        measure: Measure::ResponseSize,
        span_type: SpanType::HttpClient,
        available: HTTP_CLIENT_ATTRS,
        defaults: HTTP_CLIENT_DEFAULTS,
    },
    FamilyDef {
        otel: "rpc.server.duration",
        prom: "rpc_server_duration_seconds",
        unit: "s",
        help: "duration of RPC service calls from the server side, in seconds",
        measure: Measure::Duration,
        span_type: SpanType::GrpcServer,
        available: RPC_SERVER_ATTRS,
        defaults: RPC_DEFAULTS,
    },
    FamilyDef {
        otel: "rpc.client.duration",
        prom: "rpc_client_duration_seconds",
        unit: "s",
        help: "duration of RPC service calls from the client side, in seconds",
        measure: Measure::Duration,
        span_type: SpanType::GrpcClient,
        available: RPC_CLIENT_ATTRS,
        defaults: RPC_DEFAULTS,
    },
];

/// Whether a metric name (OTel form, OTel with underscores, or the
/// Prometheus name with its unit suffix) matches a selection entry.
fn entry_matches(e: &SelectEntry, def: &FamilyDef) -> bool {
    let underscored = def.otel.replace('.', "_");
    [def.otel, def.prom, underscored.as_str()].iter().any(|n| e.metric.is_match(n))
}

/// The attributes of a family after `attributes.select`: an entry naming the
/// metric exactly beats every glob entry; matching glob entries are merged.
/// Without `include`, the defaults are used; `exclude` removes from that.
pub fn select_attrs(def: &FamilyDef, select: &[SelectEntry]) -> Vec<Attr> {
    let exact: Vec<&SelectEntry> = select.iter().filter(|e| !e.is_glob && entry_matches(e, def)).collect();
    let chosen: Vec<&SelectEntry> =
        if exact.is_empty() { select.iter().filter(|e| e.is_glob && entry_matches(e, def)).collect() } else { exact };
    let include: Vec<_> = chosen.iter().flat_map(|e| e.include.iter()).collect();
    let exclude: Vec<_> = chosen.iter().flat_map(|e| e.exclude.iter()).collect();
    let matches = |a: Attr, globs: &[&crate::config::GlobPattern]| {
        globs.iter().any(|g| g.is_match(a.otel()) || g.is_match(a.prom()))
    };
    def.available
        .iter()
        .copied()
        .filter(|a| if include.is_empty() { def.defaults.contains(a) } else { matches(*a, &include) })
        .filter(|a| !matches(*a, &exclude))
        .collect()
}

// ---------------------------------------------------------------------------
// Label values

/// A label value borrowed from a span.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Val<'a> {
    Str(&'a str),
    Int(i64),
    /// IPv4-mapped IPv6 addresses are stored as IPv4.
    Ip(Option<IpAddr>),
}

/// A stored label value.
#[derive(Debug, Clone, PartialEq)]
pub enum OwnedVal {
    Str(Box<str>),
    Int(i64),
    Ip(Option<IpAddr>),
}

impl Val<'_> {
    fn hash_into(&self, h: &mut impl Hasher) {
        match self {
            Val::Str(s) => {
                h.write_u8(0);
                h.write(s.as_bytes());
                h.write_u8(0xff);
            }
            Val::Int(i) => {
                h.write_u8(1);
                h.write_i64(*i);
            }
            Val::Ip(None) => h.write_u8(2),
            Val::Ip(Some(IpAddr::V4(a))) => {
                h.write_u8(3);
                h.write(&a.octets());
            }
            Val::Ip(Some(IpAddr::V6(a))) => {
                h.write_u8(4);
                h.write(&a.octets());
            }
        }
    }

    fn eq_owned(&self, o: &OwnedVal) -> bool {
        match (self, o) {
            (Val::Str(a), OwnedVal::Str(b)) => *a == &**b,
            (Val::Int(a), OwnedVal::Int(b)) => a == b,
            (Val::Ip(a), OwnedVal::Ip(b)) => a == b,
            _ => false,
        }
    }

    fn into_owned(self) -> OwnedVal {
        match self {
            Val::Str(s) => OwnedVal::Str(s.into()),
            Val::Int(i) => OwnedVal::Int(i),
            Val::Ip(a) => OwnedVal::Ip(a),
        }
    }
}

impl std::fmt::Display for OwnedVal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OwnedVal::Str(s) => f.write_str(s),
            OwnedVal::Int(i) => write!(f, "{i}"),
            OwnedVal::Ip(Some(a)) => write!(f, "{a}"),
            OwnedVal::Ip(None) => Ok(()),
        }
    }
}

/// Attributes of the service, first in every key: name, namespace, instance id.
pub const SERVICE_KEY_LEN: usize = 3;
/// Upper bound of key length (service + every attribute of a family).
const MAX_KEY: usize = SERVICE_KEY_LEN + 8;

// ---------------------------------------------------------------------------
// Store

/// One label set of one family.
#[derive(Debug)]
pub struct Series {
    hash: u64,
    /// Service name, namespace, instance id, then the family's attributes.
    pub key: Box<[OwnedVal]>,
    /// Counts per bucket (not cumulative); the last one is `+Inf`.
    pub counts: Box<[u64]>,
    pub sum: f64,
    pub count: u64,
    /// Monotonic time of the last update (for the TTL).
    pub last_ns: u64,
    /// Wall-clock time the series started (OTLP start time), ns since the epoch.
    pub start_wall_ns: u64,
    /// The service the series belongs to (resource attributes for OTLP).
    pub service: Arc<Service>,
}

/// Whether an exporter limited to `instr` reports this family.
pub fn family_wanted(def: &FamilyDef, instr: &Instrumentations) -> bool {
    match def.span_type {
        SpanType::HttpServer | SpanType::HttpClient => instr.http,
        SpanType::GrpcServer | SpanType::GrpcClient => instr.grpc,
        SpanType::ProcessAlive => false,
    }
}

/// Whether something last updated at `last_ns` is younger than `ttl_ns` at `now_ns`.
pub fn is_live(last_ns: u64, now_ns: u64, ttl_ns: u64) -> bool {
    now_ns.saturating_sub(last_ns) < ttl_ns
}

pub struct Family {
    pub def: &'static FamilyDef,
    pub attrs: Box<[Attr]>,
    pub bounds: Box<[f64]>,
    table: HashTable<Series>,
}

impl Family {
    pub fn series(&self) -> impl Iterator<Item = &Series> {
        self.table.iter()
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

/// One instrumented process seen recently (`target_info`).
#[derive(Debug)]
pub struct Target {
    pub service: Arc<Service>,
    pub last_ns: u64,
}

pub struct MetricsStore {
    families: Vec<Family>,
    /// By `service.instance.id`.
    targets: hashbrown::HashMap<Box<str>, Target>,
    hasher: DefaultHashBuilder,
    ttl_ns: u64,
    /// Spans recorded (at least one family updated).
    pub recorded: u64,
}

impl MetricsStore {
    /// A store whose series live for `cfg.ttl`.
    pub fn new(cfg: &MetricsConfig) -> Self {
        Self::with_ttl(cfg, cfg.ttl)
    }

    /// A store whose series live for `ttl` (the longest TTL of the
    /// exporters reading it; each exporter skips series older than its own).
    pub fn with_ttl(cfg: &MetricsConfig, ttl: Duration) -> Self {
        let families = FAMILIES
            .iter()
            .map(|def| {
                let attrs = select_attrs(def, &cfg.select);
                assert!(SERVICE_KEY_LEN + attrs.len() <= MAX_KEY);
                let bounds = match def.measure {
                    Measure::Duration => cfg.duration_buckets.clone(),
                    _ => cfg.size_buckets.clone(),
                };
                Family { def, attrs: attrs.into(), bounds: bounds.into(), table: HashTable::new() }
            })
            .collect();
        MetricsStore {
            families,
            targets: hashbrown::HashMap::new(),
            hasher: DefaultHashBuilder::default(),
            ttl_ns: ttl.as_nanos().min(u64::MAX as u128) as u64,
            recorded: 0,
        }
    }

    pub fn ttl(&self) -> Duration {
        Duration::from_nanos(self.ttl_ns)
    }

    pub fn families(&self) -> &[Family] {
        &self.families
    }

    pub fn targets(&self) -> impl Iterator<Item = &Target> {
        self.targets.values()
    }

    /// Number of series over all families.
    pub fn series_count(&self) -> usize {
        self.families.iter().map(Family::len).sum()
    }

    /// Adds one span to every family of its type. `now_ns` is monotonic,
    /// `now_wall_ns` wall clock (only used when a series is created).
    pub fn record(&mut self, span: &Span, now_ns: u64, now_wall_ns: u64) {
        if span.span_type == SpanType::ProcessAlive {
            return;
        }
        let mut any = false;
        for fam in self.families.iter_mut() {
            if fam.def.span_type != span.span_type {
                continue;
            }
            any = true;
            let value = match fam.def.measure {
                Measure::Duration => span.duration_ns() as f64 / 1e9,
                Measure::RequestSize => span.request_body_size.max(0) as f64,
                Measure::ResponseSize => span.response_body_size.max(0) as f64,
            };
            let mut key = [Val::Int(0); MAX_KEY];
            key[0] = Val::Str(&span.service.name);
            key[1] = Val::Str(&span.service.namespace);
            key[2] = Val::Str(&span.service.instance_id);
            let n = SERVICE_KEY_LEN + fam.attrs.len();
            for (slot, a) in key[SERVICE_KEY_LEN..n].iter_mut().zip(fam.attrs.iter()) {
                *slot = a.value(span);
            }
            let key = &key[..n];
            let mut h = self.hasher.build_hasher();
            for v in key {
                v.hash_into(&mut h);
            }
            let hash = h.finish();
            let eq = |s: &Series| s.key.len() == key.len() && key.iter().zip(s.key.iter()).all(|(a, b)| a.eq_owned(b));
            let series = match fam.table.entry(hash, eq, |s| s.hash) {
                hashbrown::hash_table::Entry::Occupied(o) => o.into_mut(),
                hashbrown::hash_table::Entry::Vacant(v) => v
                    .insert(Series {
                        hash,
                        key: key.iter().map(|v| v.into_owned()).collect(),
                        counts: vec![0; fam.bounds.len() + 1].into(),
                        sum: 0.0,
                        count: 0,
                        last_ns: now_ns,
                        start_wall_ns: now_wall_ns,
                        service: span.service.clone(),
                    })
                    .into_mut(),
            };
            let bucket = fam.bounds.partition_point(|b| *b < value);
            series.counts[bucket] += 1;
            series.sum += value;
            series.count += 1;
            series.last_ns = now_ns;
        }
        if any {
            self.recorded += 1;
            match self.targets.get_mut(span.service.instance_id.as_str()) {
                Some(t) => {
                    t.last_ns = now_ns;
                    if !Arc::ptr_eq(&t.service, &span.service) {
                        t.service = span.service.clone();
                    }
                }
                None => {
                    self.targets.insert(
                        span.service.instance_id.as_str().into(),
                        Target { service: span.service.clone(), last_ns: now_ns },
                    );
                }
            }
        }
    }

    /// Removes series (and targets) not updated for the TTL. Returns how
    /// many series went.
    pub fn expire(&mut self, now_ns: u64) -> usize {
        let ttl = self.ttl_ns;
        let mut removed = 0;
        for fam in &mut self.families {
            let before = fam.table.len();
            fam.table.retain(|s| is_live(s.last_ns, now_ns, ttl));
            removed += before - fam.table.len();
        }
        self.targets.retain(|_, t| is_live(t.last_ns, now_ns, ttl));
        removed
    }
}

#[cfg(test)]
mod tests;
