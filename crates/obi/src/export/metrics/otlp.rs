//! OTLP metrics export (`otel_metrics_export`): every `interval`, the live
//! series of the metrics store are sent as cumulative explicit-bucket
//! histograms through the shared OTLP transport ([`crate::export::otlp`]).
//!
//! A failed export is not retried: the next one carries the same cumulative
//! values, so nothing is lost but resolution.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Histogram, HistogramDataPoint, Metric, ResourceMetrics, ScopeMetrics, metric,
};
use tokio::sync::watch;

use super::internal::InternalMetrics;
use super::{MetricsStore, OwnedVal, SERVICE_KEY_LEN, family_wanted, is_live};
use crate::config::metrics::{DEFAULT_TTL, Instrumentations};
use crate::config::parse::parse_go_duration;
use crate::config::{Config, ConfigError, Setting};
use crate::export::otlp::config::{Lookup, resolve_endpoint};
use crate::export::otlp::{ExportRequest, OtlpEndpoint, Signal, Transport};
use crate::export::resource::{HostInfo, kv, resource, scope};

/// OTel's default `OTEL_METRIC_EXPORT_INTERVAL`.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

impl ExportRequest for ExportMetricsServiceRequest {
    type Response = ExportMetricsServiceResponse;
    const SIGNAL: Signal = Signal::Metrics;
    const GRPC_PATH: &'static str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";

    fn rejected(response: &Self::Response) -> Option<(i64, String)> {
        let p = response.partial_success.as_ref()?;
        (p.rejected_data_points != 0 || !p.error_message.is_empty())
            .then(|| (p.rejected_data_points, p.error_message.clone()))
    }
}

/// Resolved `otel_metrics_export` settings.
#[derive(Debug, Clone)]
pub struct OtlpMetricsSettings {
    pub endpoint: OtlpEndpoint,
    pub interval: Duration,
    pub instrumentations: Instrumentations,
    pub ttl: Duration,
}

fn bad(s: &Setting, message: impl Into<String>) -> ConfigError {
    ConfigError::value(s.source.clone(), message)
}

/// The OTLP metrics exporter settings; `None` when no metrics (or common)
/// OTLP endpoint is set. Errors name the variable or YAML key.
pub fn resolve(cfg: &Config) -> Result<Option<OtlpMetricsSettings>, ConfigError> {
    let lookup = Lookup::new(cfg, Signal::Metrics);
    let Some(endpoint) = resolve_endpoint(Signal::Metrics, &lookup)? else {
        return Ok(None);
    };
    let interval = if let Some(s) = lookup.get("OTEL_EBPF_METRICS_INTERVAL", "interval") {
        parse_go_duration(&s.value).map_err(|m| bad(&s, m))?
    } else if let Some(s) = lookup.env("OTEL_METRIC_EXPORT_INTERVAL") {
        let ms: u64 = s
            .value
            .trim()
            .parse()
            .map_err(|_| bad(&s, format!("invalid interval {:?}: expected milliseconds, e.g. 60000", s.value)))?;
        Duration::from_millis(ms)
    } else {
        DEFAULT_INTERVAL
    };
    if interval.is_zero() {
        let s = lookup
            .get("OTEL_EBPF_METRICS_INTERVAL", "interval")
            .or_else(|| lookup.env("OTEL_METRIC_EXPORT_INTERVAL"))
            .expect("a zero interval was read from a setting");
        return Err(bad(&s, "the export interval must be greater than 0"));
    }
    let instrumentations = match lookup.get("OTEL_EBPF_METRICS_INSTRUMENTATIONS", "instrumentations") {
        Some(s) => Instrumentations::parse(s.value.split(',')).map_err(|m| bad(&s, m))?,
        None => Instrumentations::default(),
    };
    if let Some(s) = lookup.get("OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION", "histogram_aggregation") {
        match s.value.trim() {
            "explicit_bucket_histogram" => {}
            "base2_exponential_bucket_histogram" => {
                return Err(bad(
                    &s,
                    "base2_exponential_bucket_histogram is not supported by obi-rs; use explicit_bucket_histogram",
                ));
            }
            other => {
                return Err(bad(
                    &s,
                    format!(
                        "invalid value {other:?} (expected explicit_bucket_histogram or base2_exponential_bucket_histogram)"
                    ),
                ));
            }
        }
    }
    let ttl = match lookup.yaml("ttl") {
        Some(s) => {
            let d = parse_go_duration(&s.value).map_err(|m| bad(&s, m))?;
            if d.is_zero() {
                return Err(bad(&s, "must be greater than zero, e.g. 5m"));
            }
            d
        }
        None => DEFAULT_TTL,
    };
    Ok(Some(OtlpMetricsSettings { endpoint, interval, instrumentations, ttl }))
}

/// The request for the live series of `store` (`None` when there are none):
/// one resource per instrumented process, cumulative histograms.
pub fn build_request(
    store: &MetricsStore,
    host: &HostInfo,
    instr: &Instrumentations,
    ttl: Duration,
    now_ns: u64,
    now_wall_ns: u64,
) -> Option<ExportMetricsServiceRequest> {
    let ttl = ttl.as_nanos().min(u64::MAX as u128) as u64;
    let mut resources: Vec<ResourceMetrics> = Vec::new();
    let mut by_instance: HashMap<&str, usize> = HashMap::new();
    for fam in store.families() {
        if !family_wanted(fam.def, instr) {
            continue;
        }
        // Index of this family's Metric in each resource touched so far.
        let mut metric_of: HashMap<usize, usize> = HashMap::new();
        for s in fam.series().filter(|s| is_live(s.last_ns, now_ns, ttl)) {
            let r = *by_instance.entry(s.service.instance_id.as_str()).or_insert_with(|| {
                resources.push(ResourceMetrics {
                    resource: Some(resource(&s.service, host)),
                    scope_metrics: vec![ScopeMetrics { scope: Some(scope()), ..Default::default() }],
                    ..Default::default()
                });
                resources.len() - 1
            });
            let metrics = &mut resources[r].scope_metrics[0].metrics;
            let m = *metric_of.entry(r).or_insert_with(|| {
                metrics.push(Metric {
                    name: fam.def.otel.to_string(),
                    description: fam.def.help.to_string(),
                    unit: fam.def.unit.to_string(),
                    data: Some(metric::Data::Histogram(Histogram {
                        data_points: Vec::new(),
                        aggregation_temporality: AggregationTemporality::Cumulative as i32,
                    })),
                    ..Default::default()
                });
                metrics.len() - 1
            });
            let attributes = fam
                .attrs
                .iter()
                .zip(&s.key[SERVICE_KEY_LEN..])
                .filter_map(|(a, v)| {
                    let value = match v {
                        OwnedVal::Str(t) if t.is_empty() => return None,
                        OwnedVal::Str(t) => any_value::Value::StringValue(t.to_string()),
                        OwnedVal::Int(i) => any_value::Value::IntValue(*i),
                        OwnedVal::Ip(None) => return None,
                        OwnedVal::Ip(Some(ip)) => any_value::Value::StringValue(ip.to_string()),
                    };
                    Some(kv(a.otel(), value))
                })
                .collect();
            let Some(metric::Data::Histogram(h)) = &mut metrics[m].data else { unreachable!() };
            h.data_points.push(HistogramDataPoint {
                attributes,
                start_time_unix_nano: s.start_wall_ns,
                time_unix_nano: now_wall_ns,
                count: s.count,
                sum: Some(s.sum),
                bucket_counts: s.counts.to_vec(),
                explicit_bounds: fam.bounds.to_vec(),
                ..Default::default()
            });
        }
    }
    (!resources.is_empty()).then_some(ExportMetricsServiceRequest { resource_metrics: resources })
}

/// Exports every `interval` until `shutdown`, then once more.
pub fn spawn_exporter(
    settings: OtlpMetricsSettings,
    store: Arc<Mutex<MetricsStore>>,
    host: Arc<HostInfo>,
    internal: Arc<InternalMetrics>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let transport =
        Transport::new(settings.endpoint.clone()).map_err(|e| anyhow::anyhow!("OTLP metrics exporter: {e}"))?;
    tracing::info!(
        component = "otel.MetricsExporter",
        endpoint = %settings.endpoint.url,
        protocol = settings.endpoint.protocol.as_str(),
        interval = ?settings.interval,
        "exporting metrics over OTLP"
    );
    Ok(tokio::spawn(async move {
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + settings.interval, settings.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let last = tokio::select! {
                _ = ticker.tick() => false,
                _ = shutdown.changed() => true,
            };
            let request = {
                let now = crate::clock::monotonic_ns();
                let wall = crate::clock::realtime_ns();
                let store = store.lock().unwrap_or_else(|e| e.into_inner());
                build_request(&store, &host, &settings.instrumentations, settings.ttl, now, wall)
            };
            if let Some(request) = request {
                match transport.export(request).await {
                    Ok(ok) => {
                        internal.otel_metric_exports.add(1);
                        if ok.rejected > 0 || !ok.message.is_empty() {
                            tracing::warn!(
                                component = "otel.MetricsExporter",
                                rejected = ok.rejected,
                                message = %ok.message,
                                "the receiver rejected part of the metrics"
                            );
                        }
                    }
                    Err(err) => {
                        internal.otel_metric_export_error(&err.message);
                        tracing::warn!(
                            component = "otel.MetricsExporter",
                            error = %err.message,
                            "metrics export failed; the next export sends the same cumulative values"
                        );
                    }
                }
            }
            if last {
                break;
            }
        }
    }))
}
