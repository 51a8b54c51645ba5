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

pub(crate) mod exposition;
pub(crate) mod internal;
pub(crate) mod otlp;
pub(crate) mod prom;
pub(crate) mod sink;

use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use hashbrown::{DefaultHashBuilder, HashTable};

use crate::config::instrumentations::Instrumentations;
use crate::config::metrics::{MetricsConfig, SelectEntry};
use crate::service::Service;
use crate::span::Span;
use crate::span::Value as Val;
pub(crate) use crate::span::metric::{Attr, FamilyDef, Measure};

/// Whether a metric name (OTel form, OTel with underscores, or the
/// Prometheus name with its unit suffix) matches a selection entry.
fn entry_matches(e: &SelectEntry, def: &FamilyDef) -> bool {
    let underscored = def.otel.replace('.', "_");
    [def.otel, def.prom, underscored.as_str()].iter().any(|n| e.metric.is_match(n))
}

/// The attributes of a family after `attributes.select`: an entry naming the
/// metric exactly beats every glob entry; matching glob entries are merged.
/// Without `include`, the defaults are used; `exclude` removes from that.
pub(crate) fn select_attrs(def: &FamilyDef, select: &[SelectEntry]) -> Vec<Attr> {
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

/// A stored label value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum OwnedVal {
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
pub(crate) const SERVICE_KEY_LEN: usize = 3;
/// Upper bound of key length (service + every attribute of a family).
const MAX_KEY: usize = SERVICE_KEY_LEN + 8;

// ---------------------------------------------------------------------------
// Store

/// One label set of one family.
#[derive(Debug)]
pub(crate) struct Series {
    hash: u64,
    /// Service name, namespace, instance id, then the family's attributes.
    pub(crate) key: Box<[OwnedVal]>,
    /// Counts per bucket (not cumulative); the last one is `+Inf`.
    pub(crate) counts: Box<[u64]>,
    pub(crate) sum: f64,
    pub(crate) count: u64,
    /// Monotonic time of the last update (for the TTL).
    pub(crate) last_ns: u64,
    /// Wall-clock time the series started (OTLP start time), ns since the epoch.
    pub(crate) start_wall_ns: u64,
    /// The service the series belongs to (resource attributes for OTLP).
    pub(crate) service: Arc<Service>,
}

/// Whether an exporter limited to `instr` reports this family.
pub(crate) fn family_wanted(def: &FamilyDef, instr: &Instrumentations) -> bool {
    instr.includes(def.instrumentation)
}

/// Whether something last updated at `last_ns` is younger than `ttl_ns` at `now_ns`.
pub(crate) fn is_live(last_ns: u64, now_ns: u64, ttl_ns: u64) -> bool {
    now_ns.saturating_sub(last_ns) < ttl_ns
}

pub(crate) struct Family {
    pub(crate) def: &'static FamilyDef,
    pub(crate) attrs: Box<[Attr]>,
    pub(crate) bounds: Box<[f64]>,
    table: HashTable<Series>,
}

impl Family {
    pub(crate) fn series(&self) -> impl Iterator<Item = &Series> {
        self.table.iter()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }
}

/// One instrumented process seen recently (`target_info`).
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) service: Arc<Service>,
    pub(crate) last_ns: u64,
}

pub(crate) struct MetricsStore {
    families: Vec<Family>,
    /// By `service.instance.id`.
    targets: hashbrown::HashMap<Box<str>, Target>,
    hasher: DefaultHashBuilder,
    ttl_ns: u64,
    /// Spans recorded (at least one family updated).
    pub(crate) recorded: u64,
}

impl MetricsStore {
    /// A store whose series live for `cfg.ttl`.
    #[cfg(test)]
    pub(crate) fn new(cfg: &MetricsConfig) -> Self {
        Self::with_ttl(cfg, cfg.ttl)
    }

    /// A store whose series live for `ttl` (the longest TTL of the
    /// exporters reading it; each exporter skips series older than its own).
    pub(crate) fn with_ttl(cfg: &MetricsConfig, ttl: Duration) -> Self {
        let families = crate::span::metric_families()
            .map(|def| {
                let attrs = select_attrs(def, &cfg.select);
                assert!(SERVICE_KEY_LEN + attrs.len() <= MAX_KEY);
                let bounds = match def.measure {
                    Measure::Duration => cfg.duration_buckets.clone(),
                    Measure::Size(_) => cfg.size_buckets.clone(),
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

    pub(crate) fn families(&self) -> &[Family] {
        &self.families
    }

    pub(crate) fn targets(&self) -> impl Iterator<Item = &Target> {
        self.targets.values()
    }

    /// Number of series over all families.
    #[cfg(test)]
    pub(crate) fn series_count(&self) -> usize {
        self.families.iter().map(Family::len).sum()
    }

    /// Adds one span to every family that wants it. `now_ns` is monotonic,
    /// `now_wall_ns` wall clock (only used when a series is created).
    pub(crate) fn record(&mut self, span: &Span, now_ns: u64, now_wall_ns: u64) {
        let mut any = false;
        let mut key = [Val::Int(0); MAX_KEY];
        key[0] = Val::Str(&span.service.name);
        key[1] = Val::Str(&span.service.namespace);
        key[2] = Val::Str(&span.service.instance_id);
        // The family whose label set is in `key`, and its hash: the families
        // of a protocol side usually share their attributes (a duration and
        // two sizes), so the labels are read and hashed once for them.
        let mut last: Option<(usize, u64)> = None;
        for i in 0..self.families.len() {
            if !self.families[i].def.wants(span) {
                continue;
            }
            any = true;
            let same = last.filter(|(j, _)| self.families[*j].attrs == self.families[i].attrs);
            let fam = &mut self.families[i];
            let value = fam.def.measure(span);
            let n = SERVICE_KEY_LEN + fam.attrs.len();
            let hash = match same {
                Some((_, hash)) => hash,
                None => {
                    for (slot, a) in key[SERVICE_KEY_LEN..n].iter_mut().zip(fam.attrs.iter()) {
                        *slot = a.value(span);
                    }
                    let mut h = self.hasher.build_hasher();
                    for v in &key[..n] {
                        v.hash_into(&mut h);
                    }
                    h.finish()
                }
            };
            last = Some((i, hash));
            let key = &key[..n];
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
    pub(crate) fn expire(&mut self, now_ns: u64) -> usize {
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
mod alloc_tests;
#[cfg(test)]
mod tests;
