use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use super::exposition::write_float;
use super::internal::InternalMetrics;
use super::prom::{PromOptions, write_application};
use super::*;
use crate::config::GlobPattern;
use crate::config::metrics::{MetricsConfig, SelectEntry};
use crate::export::resource::{HostInfo, SCOPE_NAME};
use crate::service::{Language, Service};
use crate::span::Span;
use crate::span::fixtures::{self, Shape};

fn service(name: &str, pid: u32) -> Arc<Service> {
    Arc::new(Service {
        name: name.into(),
        namespace: "ns".into(),
        language: Language::Python,
        pid,
        instance_id: format!("host:{pid}"),
        resource_attributes: vec![("deployment.environment".into(), "test \"quoted\"".into())],
        ..Service::default()
    })
}

fn span(svc: &Arc<Service>, t: Shape, path: &str, status: i32, dur_ms: u64) -> Span {
    fixtures::span(t, svc.clone(), path, status, dur_ms)
}

fn render(store: &MetricsStore) -> String {
    render_with(store, &PromOptions::from_config(&MetricsConfig::default()), 0)
}

fn render_with(store: &MetricsStore, opts: &PromOptions, now_ns: u64) -> String {
    let mut out = String::new();
    write_application(&mut out, store, &HostInfo { host_name: "h".into(), host_id: Some("id".into()) }, opts, now_ns);
    out
}

/// The sample value of the line starting with `prefix` (exactly one).
fn sample(text: &str, prefix: &str) -> f64 {
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with(prefix)).collect();
    assert_eq!(lines.len(), 1, "{prefix}\n{text}");
    lines[0].rsplit_once(' ').unwrap().1.parse().unwrap()
}

#[test]
fn aggregates_per_label_set_with_cumulative_buckets() {
    let mut store = MetricsStore::new(&MetricsConfig::default());
    let svc = service("shop", 7);
    for (status, ms) in [(200, 3), (200, 30), (200, 300), (500, 3000)] {
        store.record(&span(&svc, Shape::HttpServer, "/a", status, ms), 5, 5);
    }
    store.record(&span(&svc, Shape::HttpServer, "/b", 200, 1), 5, 5);
    assert_eq!(store.recorded, 5);
    // Three families (duration, request size, response size) x 3 label sets.
    assert_eq!(store.series_count(), 9);
    let text = render(&store);
    let l = r#"{instance="host:7",job="ns/shop",service_name="shop",service_namespace="ns",http_request_method="GET",http_response_status_code="200",http_route="/a",server_address="shop",server_port="8080""#;
    let d = "http_server_request_duration_seconds";
    assert_eq!(sample(&text, &format!("{d}_bucket{l},le=\"0\"}}")), 0.0);
    assert_eq!(sample(&text, &format!("{d}_bucket{l},le=\"0.005\"}}")), 1.0);
    assert_eq!(sample(&text, &format!("{d}_bucket{l},le=\"0.025\"}}")), 1.0);
    assert_eq!(sample(&text, &format!("{d}_bucket{l},le=\"0.05\"}}")), 2.0);
    assert_eq!(sample(&text, &format!("{d}_bucket{l},le=\"0.5\"}}")), 3.0);
    assert_eq!(sample(&text, &format!("{d}_bucket{l},le=\"10\"}}")), 3.0);
    assert_eq!(sample(&text, &format!("{d}_bucket{l},le=\"+Inf\"}}")), 3.0);
    assert!((sample(&text, &format!("{d}_sum{l}}}")) - 0.333).abs() < 1e-9);
    assert_eq!(sample(&text, &format!("{d}_count{l}}}")), 3.0);
    let l500 = l.replace("\"200\"", "\"500\"");
    assert_eq!(sample(&text, &format!("{d}_bucket{l500},le=\"2.5\"}}")), 0.0);
    assert_eq!(sample(&text, &format!("{d}_bucket{l500},le=\"5\"}}")), 1.0);
    // Sizes: request 10 bytes -> le=32, response 100 bytes -> le=128.
    let r = "http_server_request_body_size_bytes";
    assert_eq!(sample(&text, &format!("{r}_bucket{l},le=\"0\"}}")), 0.0);
    assert_eq!(sample(&text, &format!("{r}_bucket{l},le=\"32\"}}")), 3.0);
    assert_eq!(sample(&text, &format!("{r}_sum{l}}}")), 30.0);
    let p = "http_server_response_body_size_bytes";
    assert_eq!(sample(&text, &format!("{p}_bucket{l},le=\"64\"}}")), 0.0);
    assert_eq!(sample(&text, &format!("{p}_bucket{l},le=\"128\"}}")), 3.0);
    assert!(text.contains("# TYPE http_server_request_duration_seconds histogram\n"));
    // Hidden by default.
    assert!(!text.contains("url_path") && !text.contains("client_address"), "{text}");
}

#[test]
fn a_boundary_value_falls_in_its_bucket() {
    let mut store = MetricsStore::new(&MetricsConfig::default());
    let svc = service("s", 1);
    store.record(&span(&svc, Shape::HttpServer, "/", 200, 100), 1, 1);
    let text = render(&store);
    let count = |le: &str| {
        text.lines()
            .find(|l| {
                l.starts_with("http_server_request_duration_seconds_bucket") && l.contains(&format!("le=\"{le}\""))
            })
            .unwrap()
            .ends_with(" 1")
    };
    assert!(!count("0.075"));
    assert!(count("0.1"));
}

#[test]
fn client_and_rpc_families() {
    let mut store = MetricsStore::new(&MetricsConfig::default());
    let svc = service("cli", 2);
    let mut c = span(&svc, Shape::HttpClient, "/x", 404, 5);
    fixtures::http(&mut c).host_header = Some("api.example.com:8443".into());
    store.record(&c, 1, 1);
    let g = span(&svc, Shape::GrpcServer, "/pkg.Svc/Get", 0, 5);
    store.record(&g, 1, 1);
    store.record(&span(&svc, Shape::GrpcClient, "/pkg.Svc/Put", 14, 5), 1, 1);
    // ProcessAlive is not a request.
    store.record(&Span::process_alive(svc.clone(), 1), 1, 1);
    assert_eq!(store.recorded, 3);
    let text = render(&store);
    assert!(text.contains(r#"http_client_request_duration_seconds_count{instance="host:2",job="ns/cli",service_name="cli",service_namespace="ns",http_request_method="GET",http_response_status_code="404",http_route="/x",server_address="api.example.com",server_port="8080"} 1"#), "{text}");
    assert!(text.contains(r#"rpc_server_duration_seconds_count{instance="host:2",job="ns/cli",service_name="cli",service_namespace="ns",rpc_method="/pkg.Svc/Get",rpc_system="grpc",rpc_grpc_status_code="0",server_address="cli"} 1"#), "{text}");
    assert!(text.contains(r#"rpc_client_duration_seconds_count{instance="host:2",job="ns/cli",service_name="cli",service_namespace="ns",rpc_method="/pkg.Svc/Put",rpc_system="grpc",rpc_grpc_status_code="14",server_address="127.0.0.1"} 1"#), "{text}");
    assert!(text.contains("http_client_response_body_size_bytes_bucket"));
}

fn sel(metric: &str, include: &[&str], exclude: &[&str]) -> SelectEntry {
    SelectEntry {
        metric: GlobPattern::new(metric).unwrap(),
        is_glob: metric.contains(['*', '?', '[', '{']),
        include: include.iter().map(|g| GlobPattern::new(g).unwrap()).collect(),
        exclude: exclude.iter().map(|g| GlobPattern::new(g).unwrap()).collect(),
    }
}

#[test]
fn attribute_selection_rules() {
    let families: Vec<&FamilyDef> = crate::span::metric_families().collect();
    let attr = |name: &str| *families[0].available.iter().find(|a| a.otel() == name).unwrap();
    let (method, status, route, url_path) =
        (attr("http.request.method"), attr("http.response.status_code"), attr("http.route"), attr("url.path"));
    let def = families[0];
    assert_eq!(select_attrs(def, &[]), def.defaults);
    // Include replaces the defaults; exclude removes; Prom names work.
    let got = select_attrs(def, &[sel("http_server_request_duration_seconds", &["url.path", "http_*"], &[])]);
    assert_eq!(got, [method, status, route, url_path]);
    let got = select_attrs(def, &[sel("http.server.request.duration", &[], &["server.*"])]);
    assert_eq!(got, [method, status, route]);
    // Exact beats glob; globs merge; the underscore form of the OTel name works.
    let entries = [sel("*", &["*"], &[]), sel("http_server_request_duration", &["url_path"], &[])];
    assert_eq!(select_attrs(def, &entries), [url_path]);
    assert_eq!(select_attrs(families[1], &entries), families[1].available);
    let globs = [sel("http_*", &["url.path"], &[]), sel("*duration*", &[], &["url.path"])];
    assert_eq!(select_attrs(def, &globs), Vec::<Attr>::new());
    assert_eq!(select_attrs(families[1], &globs), [url_path]);
    // The store uses the selection.
    let cfg =
        MetricsConfig { select: vec![sel("*", &["url.path", "client.address"], &[])], ..MetricsConfig::default() };
    let mut store = MetricsStore::new(&cfg);
    let svc = service("s", 1);
    store.record(&span(&svc, Shape::HttpServer, "/p", 200, 1), 1, 1);
    let text = render(&store);
    assert!(text.contains(r#"http_server_request_duration_seconds_count{instance="host:1",job="ns/s",service_name="s",service_namespace="ns",url_path="/p",client_address="10.0.0.1"} 1"#), "{text}");
}

#[test]
fn ttl_removes_idle_series_and_targets() {
    let cfg = MetricsConfig { ttl: Duration::from_secs(2), ..MetricsConfig::default() };
    let mut store = MetricsStore::new(&cfg);
    let (a, b) = (service("a", 1), service("b", 2));
    let s = 1_000_000_000u64;
    store.record(&span(&a, Shape::HttpServer, "/", 200, 1), s, 0);
    store.record(&span(&b, Shape::HttpServer, "/", 200, 1), s, 0);
    store.record(&span(&b, Shape::HttpServer, "/", 200, 1), 2 * s, 0);
    assert_eq!(store.expire(2 * s), 0);
    assert_eq!(store.targets().count(), 2);
    // a was last updated at 1s: gone at 3s; b (2s) stays until 4s.
    assert_eq!(store.expire(3 * s), 3);
    let text = render(&store);
    assert!(!text.contains("service_name=\"a\""), "{text}");
    assert!(text.contains("service_name=\"b\""), "{text}");
    assert_eq!(store.targets().count(), 1);
    assert_eq!(store.expire(4 * s), 3);
    assert_eq!(store.series_count(), 0);
    let text = render(&store);
    assert!(!text.contains("target_info") && !text.contains("http_server"), "{text}");
    assert!(text.contains("obi_build_info"), "{text}");
}

#[test]
fn recording_an_existing_series_does_not_grow_the_store() {
    let mut store = MetricsStore::new(&MetricsConfig::default());
    let svc = service("s", 1);
    let sp = span(&svc, Shape::HttpServer, "/", 200, 1);
    for _ in 0..1000 {
        store.record(&sp, 1, 1);
    }
    assert_eq!(store.series_count(), 3);
    // Equal values from different allocations (and IPv4-mapped vs IPv4) are one series.
    let mut other = span(&service("s", 1), Shape::HttpServer, "/", 200, 1);
    other.host.addr = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    store.record(&other, 1, 1);
    assert_eq!(store.series_count(), 3);
    let mut v6 = other.clone();
    v6.peer.addr = Some(IpAddr::V6(Ipv6Addr::LOCALHOST));
    store.record(&v6, 1, 1);
    assert_eq!(store.series_count(), 3, "client.address is not a default attribute");
}

#[test]
fn instrumentations_filter_and_own_ttl_at_render() {
    let cfg = MetricsConfig {
        instrumentations: crate::config::instrumentations::Instrumentations::parse(["grpc"]).unwrap(),
        ..MetricsConfig::default()
    };
    let mut store = MetricsStore::with_ttl(&cfg, Duration::from_secs(100));
    let svc = service("s", 1);
    store.record(&span(&svc, Shape::HttpServer, "/", 200, 1), 1, 1);
    store.record(&span(&svc, Shape::GrpcServer, "/a.B/C", 0, 1), 1, 1);
    assert_eq!(store.series_count(), 4);
    let mut opts = PromOptions::from_config(&cfg);
    let text = render_with(&store, &opts, 1);
    assert!(text.contains("rpc_server_duration_seconds_count") && !text.contains("http_server"), "{text}");
    // The page's own TTL (5m by default) hides what the store still keeps.
    opts.ttl = Duration::from_secs(2);
    let text = render_with(&store, &opts, 3_000_000_000);
    assert!(!text.contains("rpc_server") && !text.contains("target_info"), "{text}");
    assert_eq!(store.expire(3_000_000_000), 0);
}

#[test]
fn target_info_and_build_info() {
    let mut store = MetricsStore::new(&MetricsConfig::default());
    store.record(&span(&service("s", 1), Shape::HttpServer, "/", 200, 1), 1, 1);
    let text = render(&store);
    let ti = text.lines().find(|l| l.starts_with("target_info{")).unwrap();
    for want in [
        r#"instance="host:1""#,
        r#"service_name="s""#,
        r#"host_name="h""#,
        r#"host_id="id""#,
        r#"telemetry_sdk_language="python""#,
        r#"telemetry_sdk_name="opentelemetry-ebpf-instrumentation""#,
        r#"deployment_environment="test \"quoted\"""#,
    ] {
        assert!(ti.contains(want), "{want} in {ti}");
    }
    assert!(ti.ends_with("} 1"));
    let bi = text.lines().find(|l| l.starts_with("obi_build_info{")).unwrap();
    assert!(bi.contains(r#"target_lang="python""#) && bi.contains("version=") && bi.contains("goos=\"linux\""), "{bi}");
}

#[test]
fn go_float_format() {
    let f = |v: f64| {
        let mut s = String::new();
        write_float(&mut s, v);
        s
    };
    assert_eq!(f(0.0), "0");
    assert_eq!(f(0.005), "0.005");
    assert_eq!(f(0.075), "0.075");
    assert_eq!(f(1.0), "1");
    assert_eq!(f(2.5), "2.5");
    assert_eq!(f(8192.0), "8192");
    assert_eq!(f(123456.5), "123456.5");
    assert_eq!(f(1e6), "1e+06");
    assert_eq!(f(1234567.0), "1.234567e+06");
    assert_eq!(f(0.0001), "0.0001");
    assert_eq!(f(0.00001), "1e-05");
    assert_eq!(f(f64::INFINITY), "+Inf");
}

#[test]
fn label_values_are_escaped() {
    let mut store = MetricsStore::new(&MetricsConfig::default());
    let svc = service("s", 1);
    store.record(&span(&svc, Shape::HttpServer, "/a\"b\\c\nd", 200, 1), 1, 1);
    let text = render(&store);
    assert!(text.contains(r#"http_route="/a\"b\\c\nd""#), "{text}");
}

/// Runs `promtool check metrics` over a rendered page when promtool is
/// installed (the Debian `prometheus` package ships it).
fn promtool_check(text: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        eprintln!("promtool not installed: skipping the lint");
        return;
    };
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let msg = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // promtool exits 3 for lint warnings (not errors); any line is a finding.
    assert!(out.status.success() && msg.trim().is_empty(), "promtool: {msg}\n{text}");
}

#[test]
fn exposition_passes_promtool() {
    let mut store = MetricsStore::new(&MetricsConfig::default());
    let svc = service("shop", 7);
    for (t, path, status) in [
        (Shape::HttpServer, "/a", 200),
        (Shape::HttpServer, "/b", 500),
        (Shape::HttpClient, "/c", 200),
        (Shape::GrpcServer, "/p.S/M", 0),
        (Shape::GrpcClient, "/p.S/M", 2),
    ] {
        store.record(&span(&svc, t, path, status, 12), 1, 1);
    }
    promtool_check(&render(&store));
    static EVENTS: internal::Exposed = internal::Exposed {
        name: "obi_ebpf_events_total",
        help: "events written by the kernel side",
        labels: &[],
        kind: internal::Kind::Counter,
    };
    let internal = InternalMetrics::new([&EVENTS]);
    internal.publish([5]);
    internal.prometheus_request(9090, "/metrics");
    internal.process_instrumented(1, "python3");
    internal.set_sink("trace_printer", internal::SinkCounters { sent: 3, dropped: 1 });
    let mut text = String::new();
    internal.write_prometheus(&mut text);
    assert!(text.contains("obi_ebpf_events_total 5\n"), "{text}");
    assert!(text.contains("obi_prometheus_http_requests_total{path=\"/metrics\",port=\"9090\"} 1\n"), "{text}");
    assert!(text.contains("obi_instrumented_processes{process_name=\"python3\"} 1\n"), "{text}");
    assert!(text.contains("obi_exporter_dropped_spans_total{sink=\"trace_printer\"} 1\n"), "{text}");
    promtool_check(&text);
}

#[test]
fn otlp_request_groups_by_process_with_cumulative_histograms() {
    use opentelemetry_proto::tonic::common::v1::any_value::Value as V;
    use opentelemetry_proto::tonic::metrics::v1::{AggregationTemporality, metric::Data};

    let cfg = MetricsConfig::default();
    let mut store = MetricsStore::new(&cfg);
    let (a, b) = (service("a", 1), service("b", 2));
    for status in [200, 200, 500] {
        store.record(&span(&a, Shape::HttpServer, "/x", status, 30), 1, 7);
    }
    store.record(&span(&b, Shape::GrpcClient, "/p.S/M", 0, 5), 1, 7);
    let host = HostInfo { host_name: "h".into(), host_id: Some("id".into()) };
    let all = crate::config::instrumentations::Instrumentations::default();
    let req = super::otlp::build_request(&store, &host, &all, Duration::from_secs(60), 2, 99).unwrap();
    assert_eq!(req.resource_metrics.len(), 2);
    let res_attr =
        |r: usize, k: &str| {
            req.resource_metrics[r].resource.as_ref().unwrap().attributes.iter().find(|a| a.key == k).and_then(|a| {
                match a.value.as_ref()?.value.as_ref()? {
                    V::StringValue(s) => Some(s.clone()),
                    _ => None,
                }
            })
        };
    let ra = (0..2).find(|&r| res_attr(r, "service.name").as_deref() == Some("a")).unwrap();
    assert_eq!(res_attr(ra, "service.instance.id").as_deref(), Some("host:1"));
    assert_eq!(res_attr(ra, "telemetry.sdk.language").as_deref(), Some("python"));
    assert_eq!(res_attr(ra, "host.name").as_deref(), Some("h"));
    assert_eq!(res_attr(ra, "deployment.environment").as_deref(), Some("test \"quoted\""));
    let sm = &req.resource_metrics[ra].scope_metrics[0];
    assert_eq!(sm.scope.as_ref().unwrap().name, SCOPE_NAME);
    let names: Vec<(&str, &str)> = sm.metrics.iter().map(|m| (m.name.as_str(), m.unit.as_str())).collect();
    assert_eq!(
        names,
        [
            ("http.server.request.duration", "s"),
            ("http.server.request.body.size", "By"),
            ("http.server.response.body.size", "By")
        ]
    );
    let Some(Data::Histogram(h)) = &sm.metrics[0].data else { panic!("not a histogram") };
    assert_eq!(h.aggregation_temporality, AggregationTemporality::Cumulative as i32);
    assert_eq!(h.data_points.len(), 2);
    let p200 = h
        .data_points
        .iter()
        .find(|p| {
            p.attributes.iter().any(|a| {
                a.key == "http.response.status_code" && a.value.as_ref().unwrap().value == Some(V::IntValue(200))
            })
        })
        .unwrap();
    assert_eq!(p200.count, 2);
    assert!((p200.sum.unwrap() - 0.06).abs() < 1e-9);
    assert_eq!(p200.explicit_bounds, crate::config::metrics::DEFAULT_DURATION_BUCKETS);
    assert_eq!(p200.bucket_counts.len(), p200.explicit_bounds.len() + 1);
    assert_eq!(p200.bucket_counts.iter().sum::<u64>(), 2);
    assert_eq!(p200.bucket_counts[4], 2, "0.03 s is in (0.025, 0.05]");
    assert_eq!((p200.start_time_unix_nano, p200.time_unix_nano), (7, 99));
    let keys: Vec<&str> = p200.attributes.iter().map(|a| a.key.as_str()).collect();
    assert_eq!(
        keys,
        ["http.request.method", "http.response.status_code", "http.route", "server.address", "server.port"]
    );
    // The gRPC client of b.
    let rb = 1 - ra;
    let m = &req.resource_metrics[rb].scope_metrics[0].metrics;
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].name, "rpc.client.duration");
    // Instrumentations and TTL filter what is sent.
    let http_only = crate::config::instrumentations::Instrumentations::parse(["http"]).unwrap();
    let req = super::otlp::build_request(&store, &host, &http_only, Duration::from_secs(60), 2, 99).unwrap();
    assert_eq!(req.resource_metrics.len(), 1);
    assert!(super::otlp::build_request(&store, &host, &all, Duration::from_secs(1), 2_000_000_000, 99).is_none());
}

/// Redis and SQL calls are two families of one metric: one header, a
/// series per system, and an instrumentations filter that picks one.
#[test]
fn database_families_share_one_metric() {
    use crate::span::db::DbCall;
    use crate::span::{RedisSpan, SpanDetail, SqlSpan};
    let mut store = MetricsStore::new(&MetricsConfig::default());
    let svc = service("app", 9);
    let call = |system: &'static str, op: &str| DbCall { system, operation: op.into(), ..Default::default() };
    for detail in [
        SpanDetail::Redis(RedisSpan { call: call("redis", "GET") }),
        SpanDetail::Sql(SqlSpan { call: call("postgresql", "SELECT") }),
        SpanDetail::Sql(SqlSpan { call: call("postgresql", "SELECT") }),
    ] {
        let mut s = span(&svc, Shape::HttpClient, "/", 0, 2);
        s.detail = detail;
        store.record(&s, 5, 5);
    }
    let text = render(&store);
    let name = "db_client_operation_duration_seconds";
    assert_eq!(text.matches(&format!("# TYPE {name} histogram\n")).count(), 1, "{text}");
    let l = r#"{instance="host:9",job="ns/app",service_name="app",service_namespace="ns",db_operation_name="#;
    assert_eq!(sample(&text, &format!("{name}_count{l}\"GET\",db_system_name=\"redis\"}}")), 1.0);
    assert_eq!(sample(&text, &format!("{name}_count{l}\"SELECT\",db_system_name=\"postgresql\"}}")), 2.0);
    let sql_only = PromOptions {
        instrumentations: crate::config::instrumentations::Instrumentations::parse(["sql"]).unwrap(),
        ..PromOptions::from_config(&MetricsConfig::default())
    };
    let text = render_with(&store, &sql_only, 0);
    assert!(text.contains("db_system_name=\"postgresql\"") && !text.contains("db_system_name=\"redis\""), "{text}");
    // Over OTLP too: one metric of that name in the process's resource, a
    // data point per system.
    let host = HostInfo { host_name: "h".into(), host_id: Some("id".into()) };
    let all = crate::config::instrumentations::Instrumentations::default();
    let req = super::otlp::build_request(&store, &host, &all, Duration::from_secs(60), 2, 99).unwrap();
    let metrics = &req.resource_metrics[0].scope_metrics[0].metrics;
    let db: Vec<_> = metrics.iter().filter(|m| m.name == "db.client.operation.duration").collect();
    assert_eq!(db.len(), 1, "{metrics:#?}");
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;
    let Some(Data::Histogram(h)) = &db[0].data else { panic!("not a histogram") };
    assert_eq!(h.data_points.len(), 2);
}
