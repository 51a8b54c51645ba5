//! OTLP metrics export (`otel_metrics_export`): every `interval`, the live
//! series of the metrics store are sent as cumulative explicit-bucket
//! histograms through the shared OTLP transport ([`crate::export::otlp`]).
//!
//! A failed export is not retried: the next one carries the same cumulative
//! values, so nothing is lost but resolution.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use opentelemetry_proto::tonic::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Histogram, HistogramDataPoint, Metric, ResourceMetrics, ScopeMetrics, metric,
};
use tokio::sync::watch;

use super::internal::InternalMetrics;
use super::{MetricsStore, OwnedVal, SERVICE_KEY_LEN, family_wanted, is_live};
use crate::config::instrumentations::Instrumentations;
use crate::config::otlp::OtlpMetricsSettings;
use crate::export::otlp::{ExportRequest, Transport};
use crate::export::resource::{HostInfo, kv, resource, scope};

impl ExportRequest for ExportMetricsServiceRequest {
    type Response = ExportMetricsServiceResponse;
    const GRPC_PATH: &'static str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";

    fn rejected(response: &Self::Response) -> Option<(i64, String)> {
        let p = response.partial_success.as_ref()?;
        (p.rejected_data_points != 0 || !p.error_message.is_empty())
            .then(|| (p.rejected_data_points, p.error_message.clone()))
    }
}

/// The request for the live series of `store` (`None` when there are none):
/// one resource per instrumented process, cumulative histograms.
pub(crate) fn build_request(
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
    // Index of each metric name's Metric in each resource touched so far:
    // families sharing a name (the database client histogram of Redis and
    // of SQL) are one metric, as OTLP wants one stream set per name.
    let mut metric_of: HashMap<(usize, &str), usize> = HashMap::new();
    for fam in store.families() {
        if !family_wanted(fam.def, instr) {
            continue;
        }
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
            let m = *metric_of.entry((r, fam.def.otel)).or_insert_with(|| {
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
pub(crate) fn spawn_exporter(
    settings: OtlpMetricsSettings,
    store: Arc<Mutex<MetricsStore>>,
    host: Arc<HostInfo>,
    internal: Arc<InternalMetrics>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let transport = Transport::new(settings.endpoint.clone()).context("OTLP metrics exporter")?;
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
