//! Prometheus text exposition (format 0.0.4) of the metrics store, and the
//! HTTP endpoint that serves it (`prometheus_export.port` / `.path`).

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use tokio::sync::watch;

use super::exposition::{CONTENT_TYPE, Labels, label_name, write_build_labels, write_float};
use super::internal::InternalMetrics;
use super::{MetricsStore, OwnedVal, SERVICE_KEY_LEN, family_wanted, is_live};
use crate::config::instrumentations::Instrumentations;
use crate::config::metrics::MetricsConfig;
use crate::export::resource::{HostInfo, SDK_NAME, SDK_VERSION};
use crate::service::Service;

fn service_labels(l: &mut Labels<'_>, svc: &Service) {
    l.add("instance", &svc.instance_id);
    l.add("job", &svc.job());
    l.add("service_name", &svc.name);
    l.add("service_namespace", &svc.namespace);
}

/// Labels of one series, as one string without braces: `a="x",b="y"`.
fn series_labels(key: &[OwnedVal], attrs: &[super::Attr], svc: &Service, buf: &mut String) {
    buf.clear();
    let mut tmp = String::new();
    let mut l = Labels::new(buf);
    service_labels(&mut l, svc);
    for (a, v) in attrs.iter().zip(&key[SERVICE_KEY_LEN..]) {
        tmp.clear();
        let _ = write!(tmp, "{v}");
        l.add(a.prom(), &tmp);
    }
    l.close();
}

/// What the Prometheus page shows.
#[derive(Debug, Clone)]
pub(crate) struct PromOptions {
    /// Report `obi_build_info`.
    pub(crate) build_info: bool,
    /// `prometheus_export.instrumentations`.
    pub(crate) instrumentations: Instrumentations,
    /// `prometheus_export.ttl`: older series are not shown.
    pub(crate) ttl: Duration,
}

impl PromOptions {
    pub(crate) fn from_config(cfg: &MetricsConfig) -> Self {
        PromOptions { build_info: !cfg.disable_build_info, instrumentations: cfg.instrumentations, ttl: cfg.ttl }
    }
}

/// The application metrics: RED histograms, `target_info`, `obi_build_info`,
/// as of `now_ns` (monotonic).
pub(crate) fn write_application(
    out: &mut String,
    store: &MetricsStore,
    host: &HostInfo,
    opts: &PromOptions,
    now_ns: u64,
) {
    let mut labels = String::new();
    let ttl = opts.ttl.as_nanos().min(u64::MAX as u128) as u64;
    let mut written: Option<&str> = None;
    for fam in store.families() {
        if !family_wanted(fam.def, &opts.instrumentations) {
            continue;
        }
        let mut live = fam.series().filter(|s| is_live(s.last_ns, now_ns, ttl)).peekable();
        if live.peek().is_none() {
            continue;
        }
        let name = fam.def.prom;
        // Protocols that share a metric (every database client's
        // `db_client_operation_duration_seconds`) are adjacent families: one header.
        if written != Some(name) {
            let _ = writeln!(out, "# HELP {name} {}", fam.def.help);
            let _ = writeln!(out, "# TYPE {name} histogram");
            written = Some(name);
        }
        for s in live {
            series_labels(&s.key, &fam.attrs, &s.service, &mut labels);
            // `{...}` without the closing brace, to append `le`.
            let open = labels.strip_suffix('}').unwrap_or(&labels);
            let sep = if open.is_empty() { "{" } else { "," };
            let mut cumulative = 0u64;
            for (i, count) in s.counts.iter().enumerate() {
                cumulative += count;
                let _ = write!(out, "{name}_bucket{open}{sep}le=\"");
                match fam.bounds.get(i) {
                    Some(b) => write_float(out, *b),
                    None => out.push_str("+Inf"),
                }
                let _ = writeln!(out, "\"}} {cumulative}");
            }
            let _ = write!(out, "{name}_sum{labels} ");
            write_float(out, s.sum);
            out.push('\n');
            let _ = writeln!(out, "{name}_count{labels} {}", s.count);
        }
    }

    let mut targets: Vec<&super::Target> = store.targets().filter(|t| is_live(t.last_ns, now_ns, ttl)).collect();
    targets.sort_by(|a, b| a.service.instance_id.cmp(&b.service.instance_id));
    if !targets.is_empty() {
        out.push_str("# HELP target_info target service information\n# TYPE target_info gauge\n");
        for t in &targets {
            let svc = &t.service;
            out.push_str("target_info");
            let mut l = Labels::new(out);
            service_labels(&mut l, svc);
            l.add("host_name", &host.host_name);
            l.add("host_id", host.host_id.as_deref().unwrap_or_default());
            l.add("telemetry_sdk_language", svc.language.as_str());
            l.add("telemetry_sdk_name", SDK_NAME);
            l.add("telemetry_sdk_version", SDK_VERSION);
            let taken = [
                "instance",
                "job",
                "service_name",
                "service_namespace",
                "host_name",
                "host_id",
                "telemetry_sdk_language",
                "telemetry_sdk_name",
                "telemetry_sdk_version",
            ];
            let mut seen: Vec<String> = Vec::new();
            for (k, v) in &svc.resource_attributes {
                let name = label_name(k);
                if taken.contains(&name.as_str()) || seen.contains(&name) {
                    continue;
                }
                l.add(&name, v);
                seen.push(name);
            }
            l.close();
            out.push_str(" 1\n");
        }
    }

    if opts.build_info {
        out.push_str(
            "# HELP obi_build_info A metric with a constant '1' value labeled by version, revision, goarch, goos, \
             goversion and target_lang from which obi-rs was built\n# TYPE obi_build_info gauge\n",
        );
        let mut langs: Vec<&str> = targets.iter().map(|t| t.service.language.as_str()).collect();
        langs.sort_unstable();
        langs.dedup();
        if langs.is_empty() {
            langs.push("");
        }
        for lang in langs {
            out.push_str("obi_build_info");
            write_build_labels(out, Some(lang));
            out.push_str(" 1\n");
        }
    }
}

// ---------------------------------------------------------------------------
// HTTP endpoint

/// What one path of an endpoint serves.
#[derive(Clone)]
pub(crate) enum Page {
    /// RED metrics, `target_info`, build info.
    Application { store: Arc<Mutex<MetricsStore>>, host: Arc<HostInfo>, opts: PromOptions },
    /// Metrics about obi-rs itself.
    Internal(Arc<InternalMetrics>),
}

impl Page {
    fn render(&self) -> String {
        let mut out = String::with_capacity(64 << 10);
        match self {
            Page::Application { store, host, opts } => {
                let now = crate::clock::monotonic_ns();
                let mut store = store.lock().unwrap_or_else(|e| e.into_inner());
                store.expire(now);
                write_application(&mut out, &store, host, opts, now);
            }
            Page::Internal(m) => m.write_prometheus(&mut out),
        }
        out
    }
}

/// Binds a scrape endpoint on all interfaces (like OBI).
pub(crate) async fn bind(port: u16) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(("0.0.0.0", port))
        .await
        .with_context(|| format!("cannot open the Prometheus scrape endpoint on port {port}"))
}

/// Serves `pages` (path -> page) on `listener` until `shutdown` turns true.
pub(crate) fn spawn_server(
    listener: tokio::net::TcpListener,
    port: u16,
    pages: Vec<(String, Page)>,
    internal: Arc<InternalMetrics>,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let pages = Arc::new(pages);
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                r = listener.accept() => match r {
                    Ok((s, _)) => s,
                    Err(err) => {
                        tracing::debug!(component = "prom.Exporter", error = %err, "accept failed");
                        continue;
                    }
                },
                _ = shutdown.changed() => break,
            };
            let pages = pages.clone();
            let internal = internal.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let pages = pages.clone();
                    let internal = internal.clone();
                    async move {
                        let path = req.uri().path();
                        let resp = match pages.iter().find(|(p, _)| p == path) {
                            Some((p, page)) => {
                                internal.prometheus_request(port, p);
                                let body = page.render();
                                Response::builder()
                                    .header(hyper::header::CONTENT_TYPE, CONTENT_TYPE)
                                    .body(Full::new(Bytes::from(body)))
                            }
                            None => Response::builder()
                                .status(StatusCode::NOT_FOUND)
                                .body(Full::new(Bytes::from_static(b"404 page not found\n"))),
                        };
                        Ok::<_, std::convert::Infallible>(resp.expect("static response parts are valid"))
                    }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                if let Err(err) = hyper::server::conn::http1::Builder::new().serve_connection(io, svc).await {
                    tracing::debug!(component = "prom.Exporter", error = %err, "scrape connection failed");
                }
            });
        }
    })
}
