//! RED metrics end to end: real servers and clients, the real agent with
//! real eBPF, its Prometheus endpoint, and a real Prometheus server
//! (Debian `prometheus`) scraping it. Runs as root (see common::require_root).

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::prom::*;
use common::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

/// The tests run one at a time: the histogram test measures latencies, and
/// the cardinality test loads both cores.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The agent with a Prometheus endpoint on `prom_port`, instrumenting `app_port`.
fn agent(app_port: u16, prom_port: u16, service: &str, extra: &[(&str, &str)]) -> Agent {
    let mut b = Agent::builder()
        .printer("disabled")
        .env("OTEL_EBPF_OPEN_PORT", &app_port.to_string())
        .env("OTEL_EBPF_PROMETHEUS_PORT", &prom_port.to_string())
        .env("OTEL_SERVICE_NAME", service);
    for (k, v) in extra {
        b = b.env(k, v);
    }
    let a = b.start();
    a.proc
        .wait_line(
            |l| l.contains("msg=\"opening prometheus scrape endpoint\"") && l.contains(&format!("port={prom_port}")),
            WAIT,
        )
        .expect("no 'opening prometheus scrape endpoint' line");
    a
}

/// A real Prometheus server scraping one target every second, with its
/// database in a temporary directory; killed on drop.
struct Prometheus {
    port: u16,
    _proc: Proc,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target_port: u16) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("prometheus.yml");
        std::fs::write(
            &cfg,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: obi\n    \
                 static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let proc = spawn(
            "prometheus",
            Command::new("prometheus")
                .arg(format!("--config.file={}", cfg.display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
                .stderr(Stdio::from(log)),
        );
        let p = Prometheus { port, _proc: proc, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !curl(&[&format!("http://127.0.0.1:{port}/-/ready")]).contains("Ready") {
            assert!(Instant::now() < deadline, "prometheus did not become ready");
            std::thread::sleep(Duration::from_millis(200));
        }
        p
    }

    /// Runs an instant PromQL query; the value of the first result, if any.
    fn query(&self, q: &str) -> Option<f64> {
        let body = curl(&[
            "-G",
            "--data-urlencode",
            &format!("query={q}"),
            &format!("http://127.0.0.1:{}/api/v1/query", self.port),
        ]);
        let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("bad answer to {q}: {e}: {body}"));
        assert_eq!(v["status"], "success", "{q}: {body}");
        v["data"]["result"][0]["value"][1].as_str().map(|s| s.parse().unwrap())
    }

    fn query_until(&self, q: &str, want: f64, timeout: Duration) -> Option<f64> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.query(q);
            if got == Some(want) || Instant::now() >= deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

/// 100 requests, 10 of them answered with 500, counted by a real Prometheus.
#[test]
fn prometheus_scrapes_request_and_error_counts() {
    require_root();
    let _serial = serial();
    let (app, prom_port) = (free_port(), free_port());
    let server = python_server(app);
    let agent = agent(app, prom_port, "red-test", &[]);
    agent.wait_instrumented(server.pid(), WAIT);
    let prometheus = Prometheus::start(prom_port);
    assert_eq!(prometheus.query_until("up{job=\"obi\"}", 1.0, Duration::from_secs(30)), Some(1.0), "target not up");

    let mut reqs = vec!["GET:/status/200"; 9];
    reqs.push("GET:/status/500");
    let mut client = python_client(app, &reqs, &["--repeat", "10"]);
    assert!(client.wait_exit(WAIT).is_some_and(|s| s.success()));
    assert_eq!(client.lines().iter().filter(|l| l.starts_with("500 ")).count(), 10);

    let all = "sum(http_server_request_duration_seconds_count{service_name=\"red-test\"})";
    assert_eq!(prometheus.query_until(all, 100.0, Duration::from_secs(30)), Some(100.0));
    let errors =
        "sum(http_server_request_duration_seconds_count{service_name=\"red-test\",http_response_status_code=~\"5..\"})";
    assert_eq!(prometheus.query(errors), Some(10.0));
    let ok =
        "sum(http_server_request_duration_seconds_count{service_name=\"red-test\",http_response_status_code=\"200\",\
              http_route=\"/status/*\",http_request_method=\"GET\",server_port=\"APP\"})"
            .replace("APP", &app.to_string());
    assert_eq!(prometheus.query(&ok), Some(90.0));
    // Body sizes and the info metrics reach Prometheus too.
    assert_eq!(
        prometheus.query("sum(http_server_response_body_size_bytes_count{service_name=\"red-test\"})"),
        Some(100.0)
    );
    assert_eq!(
        prometheus.query("count(target_info{service_name=\"red-test\",telemetry_sdk_language=\"python\"})"),
        Some(1.0)
    );
    assert_eq!(prometheus.query("count(obi_build_info{target_lang=\"python\"})"), Some(1.0));
    // The agent's own endpoint is not traced.
    assert_eq!(prometheus.query("count(http_server_request_duration_seconds_count{http_route=\"/metrics\"})"), None);
}

/// Histogram buckets count requests with known delays.
#[test]
fn histogram_buckets_match_known_delays() {
    require_root();
    let _serial = serial();
    let (app, prom_port) = (free_port(), free_port());
    let server = node_server(app);
    let agent = agent(app, prom_port, "hist-test", &[]);
    agent.wait_instrumented(server.pid(), WAIT);

    // Node's server answers in one write (no Nagle stall on the response).
    // 4 x 60 ms, 3 x 300 ms, 2 x 1200 ms on one keep-alive connection. Each
    // lower bound is the sleep itself; each asserted upper bucket leaves at
    // least 40 ms for the server's own overhead.
    let mut reqs = vec!["GET:/slow/60"; 4];
    reqs.extend(["GET:/slow/300"; 3]);
    reqs.extend(["GET:/slow/1200"; 2]);
    let mut client = python_client(app, &reqs, &[]);
    assert!(client.wait_exit(Duration::from_secs(30)).is_some_and(|s| s.success()));

    let svc = [("service_name", "hist-test")];
    let d = "http_server_request_duration_seconds";
    let samples = scrape_until(prom_port, WAIT, |s| total(s, &format!("{d}_count"), &svc) >= 9.0);
    let count = |le: &str| total(&samples, &format!("{d}_bucket"), &[svc[0], ("le", le)]);
    assert_eq!(total(&samples, &format!("{d}_count"), &svc), 9.0);
    for (le, want) in [
        ("0", 0.0),
        ("0.005", 0.0),
        ("0.05", 0.0),
        ("0.1", 4.0),
        ("0.25", 4.0),
        ("0.5", 7.0),
        ("1", 7.0),
        ("2.5", 9.0),
        ("10", 9.0),
        ("+Inf", 9.0),
    ] {
        assert_eq!(count(le), want, "le={le}");
    }
    let sum = total(&samples, &format!("{d}_sum"), &svc);
    assert!((4.0 * 0.06 + 3.0 * 0.3 + 2.0 * 1.2..4.0).contains(&sum), "sum {sum}");
    // Every bucket line has the same labels as _count, plus le.
    assert_eq!(find(&samples, &format!("{d}_bucket"), &svc).len(), 16);

    // Bodies: empty requests; responses are "slow\n" (5 bytes).
    let req = "http_server_request_body_size_bytes";
    assert_eq!(total(&samples, &format!("{req}_bucket"), &[svc[0], ("le", "0")]), 9.0);
    assert_eq!(total(&samples, &format!("{req}_sum"), &svc), 0.0);
    let resp = "http_server_response_body_size_bytes";
    assert_eq!(total(&samples, &format!("{resp}_bucket"), &[svc[0], ("le", "0")]), 0.0);
    assert_eq!(total(&samples, &format!("{resp}_bucket"), &[svc[0], ("le", "32")]), 9.0);
    assert_eq!(total(&samples, &format!("{resp}_sum"), &svc), 45.0);
    let labels = &find(&samples, &format!("{d}_count"), &svc)[0].labels;
    assert_eq!(labels["http_route"], "/slow/*");
    assert_eq!(labels["http_request_method"], "GET");
    assert_eq!(labels["http_response_status_code"], "200");
    assert_eq!(labels["server_port"], app.to_string());
    assert_eq!(labels["instance"], format!("{}:{}", hostname(), server.pid()));
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_string()
}

/// Series of a process that exits disappear after the TTL; a live one stays.
#[test]
fn series_of_a_gone_process_expire_after_the_ttl() {
    require_root();
    let _serial = serial();
    let (gone_port, live_port, prom_port) = (free_port(), free_port(), free_port());
    let mut gone = python_server(gone_port);
    let live = python_server(live_port);
    let agent = Agent::builder()
        .printer("disabled")
        .config(&format!(
            "discovery:\n  instrument:\n    - open_ports: {gone_port}\n      name: ttl-gone\n    - open_ports: {live_port}\n      name: ttl-live\n\
             prometheus_export:\n  port: {prom_port}\n  ttl: 3s\n"
        ))
        .start();
    agent.wait_instrumented(gone.pid(), WAIT);
    agent.wait_instrumented(live.pid(), WAIT);

    let mut c = python_client(gone_port, &["GET:/"], &["--repeat", "5"]);
    assert!(c.wait_exit(WAIT).is_some_and(|s| s.success()));
    let gone_svc = [("service_name", "ttl-gone")];
    let count = "http_server_request_duration_seconds_count";
    let s = scrape_until(prom_port, WAIT, |s| total(s, count, &gone_svc) == 5.0);
    assert_eq!(total(&s, count, &gone_svc), 5.0);
    assert_eq!(find(&s, "target_info", &gone_svc).len(), 1);
    let last_request = Instant::now();
    gone.signal(libc::SIGKILL);
    gone.wait_exit(WAIT);

    // Keep the live service busy: one request every 200 ms for ~7 s.
    let mut busy = python_client(live_port, &["GET:/slow/200"], &["--repeat", "35"]);
    let deadline = last_request + Duration::from_secs(15);
    let mut seen_after_1s = false;
    let disappeared = loop {
        let s = parse(&scrape(prom_port, "/metrics"));
        let present = !find(&s, count, &gone_svc).is_empty();
        if present && last_request.elapsed() >= Duration::from_secs(1) {
            seen_after_1s = true;
        }
        if !present {
            assert!(find(&s, "target_info", &gone_svc).is_empty(), "target_info outlived the series");
            assert!(!find(&s, count, &[("service_name", "ttl-live")]).is_empty(), "the live service expired too");
            break last_request.elapsed();
        }
        assert!(Instant::now() < deadline, "series of the exited process never expired");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(seen_after_1s, "series vanished before the TTL");
    // Last update happened before `last_request`: expiry is 3 s after it,
    // at the next scrape.
    assert!(disappeared >= Duration::from_millis(2500) && disappeared <= Duration::from_secs(5), "{disappeared:?}");
    busy.wait_exit(WAIT);
}

/// 10,000 requests to distinct identifier paths give three routes with the
/// default (heuristic) route mode.
#[test]
fn distinct_ids_in_paths_keep_cardinality_bounded() {
    require_root();
    let _serial = serial();
    let (app, prom_port) = (free_port(), free_port());
    // Node answers in one write per response (Python's server writes headers
    // and body separately and stalls on Nagle + delayed ACKs).
    let server = node_server(app);
    let agent = agent(app, prom_port, "card-test", &[("OTEL_EBPF_INTERNAL_METRICS_EXPORTER", "prometheus")]);
    agent.wait_instrumented(server.pid(), WAIT);

    let started = Instant::now();
    let mut client = spawn(
        "many-paths",
        Command::new(python()).arg(apps_dir().join("many_paths_client.py")).args([
            "127.0.0.1",
            &app.to_string(),
            "10000",
            "--threads",
            "4",
        ]),
    );
    assert!(client.wait_exit(Duration::from_secs(60)).is_some_and(|s| s.success()));
    assert_eq!(client.lines().last().map(String::as_str), Some("done 10000 0"));
    let sent_in = started.elapsed();

    let svc = [("service_name", "card-test")];
    let count = "http_server_request_duration_seconds_count";
    let samples = scrape_until(prom_port, WAIT, |s| total(s, count, &svc) >= 10_000.0);
    assert_eq!(total(&samples, count, &svc), 10_000.0);
    let series = find(&samples, count, &svc);
    let routes: Vec<&str> = series.iter().map(|s| s.labels["http_route"].as_str()).collect();
    eprintln!("10000 requests sent in {sent_in:?}; {} series: {routes:?}", series.len());
    let mut sorted = routes.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, ["/docs/*", "/items/*", "/users/*/orders/*"]);
    for s in &series {
        assert!((3333.0..=3334.0).contains(&s.value), "{s:?}");
    }
    // Whole page: three families x three routes of histograms, one target.
    let families: usize = samples
        .iter()
        .filter(|s| s.name.ends_with("_count") && s.labels.get("service_name").map(String::as_str) == Some("card-test"))
        .count();
    assert_eq!(families, 9);

    // Internal metrics report the work and no loss (published once a second).
    let deadline = Instant::now() + Duration::from_secs(5);
    let internal = loop {
        let page = parse(&scrape(prom_port, "/internal/metrics"));
        if total(&page, "obi_spans_total", &[]) >= 10_000.0 || Instant::now() >= deadline {
            break page;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let one = |name: &str, with: &[(&str, &str)]| total(&internal, name, with);
    assert!(one("obi_ebpf_events_read_total", &[]) >= 20_000.0);
    assert!(one("obi_spans_total", &[]) >= 10_000.0);
    assert_eq!(one("obi_ebpf_ringbuf_dropped_events_total", &[]), 0.0);
    assert_eq!(one("obi_exporter_dropped_spans_total", &[]), 0.0);
    assert!(one("obi_exporter_spans_total", &[("sink", "metrics")]) >= 10_000.0);
    assert!(
        one("obi_prometheus_http_requests_total", &[("path", "/metrics"), ("port", &prom_port.to_string())]) >= 1.0
    );
    assert_eq!(one("obi_instrumented_processes", &[]), 1.0);
    assert_eq!(find(&internal, "obi_internal_build_info", &[]).len(), 1);
}

// ---------------------------------------------------------------------------
// OTLP metrics export

use opentelemetry_proto::tonic::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyV;
use opentelemetry_proto::tonic::metrics::v1::{AggregationTemporality, metric::Data};
use std::sync::{Arc, Mutex};

/// Export requests received, with the HTTP path (`grpc` for gRPC).
type Received = Arc<Mutex<Vec<(String, ExportMetricsServiceRequest)>>>;

/// A minimal OTLP/HTTP receiver (protobuf): answers 200 to every POST and
/// decodes `/v1/metrics` bodies.
fn http_receiver() -> (u16, Received) {
    use prost::Message;
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got: Received = Arc::default();
    let sink = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let sink = sink.clone();
            std::thread::spawn(move || {
                let mut w = stream.try_clone().unwrap();
                let mut r = BufReader::new(stream);
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or_default().to_string();
                    let (mut len, mut ctype) = (0usize, String::new());
                    loop {
                        let mut h = String::new();
                        r.read_line(&mut h).unwrap();
                        let h = h.trim_end();
                        if h.is_empty() {
                            break;
                        }
                        let (k, v) = h.split_once(':').unwrap();
                        match k.to_ascii_lowercase().as_str() {
                            "content-length" => len = v.trim().parse().unwrap(),
                            "content-type" => ctype = v.trim().to_string(),
                            _ => {}
                        }
                    }
                    let mut body = vec![0; len];
                    r.read_exact(&mut body).unwrap();
                    if path == "/v1/metrics" {
                        assert_eq!(ctype, "application/x-protobuf");
                        let req = ExportMetricsServiceRequest::decode(&body[..]).expect("valid protobuf");
                        sink.lock().unwrap().push((path, req));
                    }
                    let ok = ExportMetricsServiceResponse::default().encode_to_vec();
                    write!(
                        w,
                        "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\n\r\n",
                        ok.len()
                    )
                    .unwrap();
                    w.write_all(&ok).unwrap();
                }
            });
        }
    });
    (port, got)
}

/// An OTLP/gRPC receiver (tonic) on its own runtime thread.
fn grpc_receiver() -> (u16, Received) {
    use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
        MetricsService, MetricsServiceServer,
    };
    struct Recv(Received);
    #[tonic::async_trait]
    impl MetricsService for Recv {
        async fn export(
            &self,
            request: tonic::Request<ExportMetricsServiceRequest>,
        ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
            self.0.lock().unwrap().push(("grpc".to_string(), request.into_inner()));
            Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
        }
    }
    let port = free_port();
    let got: Received = Arc::default();
    let svc = MetricsServiceServer::new(Recv(got.clone()));
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            tonic::transport::Server::builder().add_service(svc).serve(([127, 0, 0, 1], port).into()).await.unwrap();
        });
    });
    wait_port(port, WAIT);
    (port, got)
}

fn str_attr(attrs: &[opentelemetry_proto::tonic::common::v1::KeyValue], key: &str) -> Option<String> {
    attrs.iter().find(|a| a.key == key).and_then(|a| match a.value.as_ref()?.value.as_ref()? {
        AnyV::StringValue(s) => Some(s.clone()),
        AnyV::IntValue(i) => Some(i.to_string()),
        _ => None,
    })
}

/// Per status code: (count, bucket count total) of `http.server.request.duration`
/// for `service` in one export request.
fn durations_by_status(req: &ExportMetricsServiceRequest, service: &str) -> BTreeMap<String, (u64, u64)> {
    let mut out = BTreeMap::new();
    for rm in &req.resource_metrics {
        let attrs = &rm.resource.as_ref().unwrap().attributes;
        if str_attr(attrs, "service.name").as_deref() != Some(service) {
            continue;
        }
        assert_eq!(str_attr(attrs, "telemetry.sdk.language").as_deref(), Some("python"));
        assert!(str_attr(attrs, "service.instance.id").is_some_and(|i| i.contains(':')));
        for m in rm.scope_metrics.iter().flat_map(|s| &s.metrics) {
            if m.name != "http.server.request.duration" {
                continue;
            }
            assert_eq!(m.unit, "s");
            let Some(Data::Histogram(h)) = &m.data else { panic!("{} is not a histogram", m.name) };
            assert_eq!(h.aggregation_temporality, AggregationTemporality::Cumulative as i32);
            for p in &h.data_points {
                assert_eq!(p.bucket_counts.len(), p.explicit_bounds.len() + 1);
                let status = str_attr(&p.attributes, "http.response.status_code").unwrap();
                let e = out.entry(status).or_insert((0, 0));
                e.0 += p.count;
                e.1 += p.bucket_counts.iter().sum::<u64>();
            }
        }
    }
    out
}

fn otlp_export_counts(endpoint_env: (&str, String), extra: &[(&str, &str)], service: &str, got: &Received, app: u16) {
    let server = python_server(app);
    let mut b = Agent::builder()
        .printer("disabled")
        .env("OTEL_EBPF_OPEN_PORT", &app.to_string())
        .env("OTEL_SERVICE_NAME", service)
        .env("OTEL_METRIC_EXPORT_INTERVAL", "500")
        .env(endpoint_env.0, &endpoint_env.1);
    for (k, v) in extra {
        b = b.env(k, v);
    }
    let mut agent = b.start();
    agent.proc.wait_line(|l| l.contains("msg=\"exporting metrics over OTLP\""), WAIT).expect("exporter not started");
    agent.wait_instrumented(server.pid(), WAIT);

    let mut reqs = vec!["GET:/status/200"; 3];
    reqs.push("GET:/status/500");
    let mut client = python_client(app, &reqs, &["--repeat", "5"]);
    assert!(client.wait_exit(WAIT).is_some_and(|s| s.success()));

    let want: BTreeMap<String, (u64, u64)> = [("200".to_string(), (15, 15)), ("500".to_string(), (5, 5))].into();
    let deadline = Instant::now() + WAIT;
    let first_full = loop {
        let found = got.lock().unwrap().iter().position(|(_, r)| durations_by_status(r, service) == want);
        if let Some(i) = found {
            break i;
        }
        assert!(
            Instant::now() < deadline,
            "no export with the expected counts; last: {:?}",
            got.lock().unwrap().last().map(|(_, r)| durations_by_status(r, service))
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    // Cumulative: later exports repeat the totals (no new traffic).
    std::thread::sleep(Duration::from_millis(1200));
    let all = got.lock().unwrap().clone();
    assert!(all.len() > first_full + 1, "exports stopped after the first full one");
    for (_, r) in &all[first_full..] {
        assert_eq!(durations_by_status(r, service), want);
    }
    assert!(agent.stop().is_some_and(|s| s.success()));
}

/// OTLP/HTTP with the common endpoint: `/v1/metrics` is appended.
#[test]
fn otlp_http_metrics_export() {
    require_root();
    let _serial = serial();
    let (port, got) = http_receiver();
    otlp_export_counts(
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://127.0.0.1:{port}")),
        &[],
        "otlp-http-test",
        &got,
        free_port(),
    );
    assert!(got.lock().unwrap().iter().all(|(path, _)| path == "/v1/metrics"));
}

/// OTLP/gRPC with the metrics endpoint and protocol variables.
#[test]
fn otlp_grpc_metrics_export() {
    require_root();
    let _serial = serial();
    let (port, got) = grpc_receiver();
    otlp_export_counts(
        ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", format!("http://127.0.0.1:{port}")),
        &[("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "grpc")],
        "otlp-grpc-test",
        &got,
        free_port(),
    );
}

// ---------------------------------------------------------------------------
// gRPC

/// gRPC server and client spans become `rpc_server_duration_seconds` and
/// `rpc_client_duration_seconds` with method, system and status code.
#[test]
fn grpc_calls_produce_rpc_histograms() {
    require_root();
    let _serial = serial();
    let (app, prom_port) = (free_port(), free_port());
    let server = grpc_server(app);
    let agent = Agent::builder()
        .printer("disabled")
        .config(&format!(
            "discovery:\n  instrument:\n    - open_ports: {app}\n      name: rpc-server\n    \
             - cmd_args: '*grpc_client.py * 127.0.0.1:{app}*'\n      name: rpc-client\n\
             prometheus_export:\n  port: {prom_port}\n"
        ))
        .start();
    agent.wait_instrumented(server.pid(), WAIT);
    for args in [&["unary", "3"][..], &["fail"][..]] {
        grpc_client(app, args);
    }
    let server_count = "rpc_server_duration_seconds_count";
    let client_count = "rpc_client_duration_seconds_count";
    let s = scrape_until(prom_port, WAIT, |s| {
        total(s, server_count, &[("service_name", "rpc-server")]) >= 4.0
            && total(s, client_count, &[("service_name", "rpc-client")]) >= 4.0
    });
    let unary = [("service_name", "rpc-server"), ("rpc_method", "/obi.test.Echo/Unary"), ("rpc_system", "grpc")];
    assert_eq!(total(&s, server_count, &[unary[0], unary[1], unary[2], ("rpc_grpc_status_code", "0")]), 3.0);
    let fail = [("service_name", "rpc-server"), ("rpc_method", "/obi.test.Echo/Fail"), ("rpc_grpc_status_code", "5")];
    assert_eq!(total(&s, server_count, &fail), 1.0);
    assert_eq!(total(&s, server_count, &[("service_name", "rpc-server")]), 4.0);
    let client_fail =
        [("service_name", "rpc-client"), ("rpc_method", "/obi.test.Echo/Fail"), ("rpc_grpc_status_code", "5")];
    assert_eq!(total(&s, client_count, &client_fail), 1.0);
    assert_eq!(total(&s, client_count, &[("service_name", "rpc-client")]), 4.0);
    // gRPC is not counted as HTTP.
    assert!(find(&s, "http_server_request_duration_seconds_count", &[("service_name", "rpc-server")]).is_empty());
    let b = total(&s, "rpc_server_duration_seconds_bucket", &[("service_name", "rpc-server"), ("le", "+Inf")]);
    assert_eq!(b, 4.0);
}

/// Raises this test process's soft open file limit to its hard limit (it
/// holds thousands of client sockets) and returns that limit.
fn allow_open_files() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit read and write one valid rlimit.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = lim.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0, "{}", std::io::Error::last_os_error());
    }
    lim.rlim_max
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}

/// 2,000 idle connections to the scrape port, twice the 1,024 descriptors
/// of a default soft limit, change nothing for tracing: the agent raises its
/// soft limit to the hard one, keeps at most `max_connections` open (the rest
/// are closed at once, counted and logged once), closes idle ones after the
/// idle timeout, and a server started afterwards is instrumented and traced
/// with exact counts while /metrics still answers.
#[test]
fn idle_scrape_connections_cannot_blind_the_agent() {
    require_root();
    let _serial = serial();
    const IDLE: usize = 2000;
    const MAX: usize = 64;
    let hard = allow_open_files();
    assert!(hard >= 4096, "this test needs a hard open file limit of at least 4096, not {hard}");
    let (app, prom_port) = (free_port(), free_port());
    // The agent starts with the usual soft limit of 1024.
    let agent = Agent::builder()
        .wrapped(&["prlimit", &format!("--nofile=1024:{hard}")])
        .env("OTEL_EBPF_OPEN_PORT", &app.to_string())
        .env("OTEL_EBPF_PROMETHEUS_PORT", &prom_port.to_string())
        .env("OTEL_EBPF_PROMETHEUS_HOST", "127.0.0.1")
        .env("OTEL_EBPF_PROMETHEUS_IDLE_TIMEOUT", "12s")
        .env("OTEL_EBPF_INTERNAL_METRICS_EXPORTER", "prometheus")
        .env("OTEL_SERVICE_NAME", "fd-test")
        .start();
    let limit = agent.proc.lines().into_iter().find(|l| l.contains("msg=\"open file limit\"")).expect("limit line");
    assert!(limit.contains(&format!(" open_files={hard} ")) && limit.contains(" was=1024"), "{limit}");
    let opened = agent
        .proc
        .wait_line(|l| l.contains("msg=\"opening prometheus scrape endpoint\""), WAIT)
        .expect("endpoint line");
    assert!(opened.contains(" address=127.0.0.1"), "{opened}");
    let pid = agent.proc.pid();
    let fds_before = open_fds(pid);

    let started = Instant::now();
    let idle: Vec<std::net::TcpStream> =
        (0..IDLE).map(|_| std::net::TcpStream::connect(("127.0.0.1", prom_port)).expect("connect")).collect();
    let connect_time = started.elapsed();
    // The flood must end before the idle timeout (12 s) starts closing what it
    // opened; 2,000 connects took 6.2 s once on a busy machine.
    assert!(connect_time < Duration::from_secs(10), "connecting took {connect_time:?}, too close to the idle timeout");
    std::thread::sleep(Duration::from_millis(500));
    let fds_during = open_fds(pid);
    assert!(fds_during <= fds_before + MAX + 4, "agent holds {fds_during} fds (before: {fds_before})");

    // A server started after the flood is instrumented and traced exactly.
    let server = python_server(app);
    agent.wait_instrumented(server.pid(), WAIT);
    let mut client = python_client(app, &["GET:/status/200"], &["--repeat", "50"]);
    assert!(client.wait_exit(WAIT).is_some_and(|s| s.success()));
    let spans = agent.wait_spans(50, WAIT, |s| is_type(s, "HTTP") && host_port(s) == app);
    assert_eq!(spans.len(), 50);

    // The idle connections the agent kept are closed after the idle timeout;
    // /metrics answers again, with every refusal counted.
    // Scrapes before then are refused (and counted) too.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut refused_scrapes = 0;
    let page = loop {
        let page = scrape(prom_port, "/internal/metrics");
        if page.contains("obi_prometheus_connections_refused_total") {
            break page;
        }
        refused_scrapes += 1;
        assert!(Instant::now() < deadline, "/internal/metrics did not answer");
        std::thread::sleep(Duration::from_millis(500));
    };
    let refused = parse(&page)
        .into_iter()
        .find(|s| s.name == "obi_prometheus_connections_refused_total")
        .expect("refused counter");
    assert_eq!(refused.labels.get("port").map(String::as_str), Some(prom_port.to_string().as_str()));
    assert_eq!(refused.value, (IDLE - MAX + refused_scrapes) as f64);
    eprintln!(
        "{IDLE} idle connections in {connect_time:?}; agent fds {fds_before} before, {fds_during} during; \
         refused {} (of which {refused_scrapes} scrapes before the idle timeout)",
        refused.value
    );
    let metrics = scrape(prom_port, "/metrics");
    let count = parse(&metrics)
        .into_iter()
        .filter(|s| s.name == "http_server_request_duration_seconds_count")
        .filter(|s| s.labels.get("service_name").map(String::as_str) == Some("fd-test"))
        .map(|s| s.value)
        .sum::<f64>();
    assert_eq!(count, 50.0, "{metrics}");
    let refusal_logs = agent.proc.lines().iter().filter(|l| l.contains("scrape connections refused")).count();
    assert_eq!(refusal_logs, 1, "one line for the burst");
    // Every idle connection was closed by the agent: refused at once, or
    // after the idle timeout.
    let closed = idle
        .iter()
        .filter(|s| {
            s.set_nonblocking(true).unwrap();
            matches!(std::io::Read::read(&mut &**s, &mut [0u8; 16]), Ok(0))
        })
        .count();
    assert_eq!(closed, IDLE, "connections still open on the agent's side");
}
