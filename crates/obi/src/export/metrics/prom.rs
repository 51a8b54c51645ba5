//! Prometheus text exposition (format 0.0.4) of the metrics store, and the
//! HTTP endpoint that serves it (`prometheus_export.port` / `.path` /
//! `.host`), which bounds what clients can hold: connections idle for
//! `idle_timeout` are closed and at most `max_connections` are open (more are
//! closed at once, counted and logged), so a flood of idle connections cannot
//! take the file descriptors the agent needs to trace.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use tokio::sync::{Semaphore, watch};

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

/// How many connections a scrape endpoint keeps open, and for how long.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScrapeLimits {
    /// A connection that sends no (complete) request head for this long is
    /// closed, whether new or kept alive after a scrape.
    pub(crate) idle_timeout: Duration,
    /// Connections beyond this many are closed as soon as accepted.
    pub(crate) max_connections: usize,
}

impl ScrapeLimits {
    pub(crate) fn from_config(cfg: &MetricsConfig) -> Self {
        ScrapeLimits { idle_timeout: cfg.scrape_idle_timeout, max_connections: cfg.scrape_max_connections }
    }
}

/// How often refused connections and failed accepts are logged.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(60);
/// Pause after a failed accept (out of file descriptors): the error would
/// otherwise come back at once, in a busy loop.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// Binds a scrape endpoint on `host`, or on every interface like OBI (`[::]`,
/// which also accepts IPv4 unless the kernel is set to IPv6-only; `0.0.0.0`
/// where IPv6 is unavailable).
pub(crate) async fn bind(host: Option<IpAddr>, port: u16) -> Result<tokio::net::TcpListener> {
    let opened = match host {
        Some(ip) => tokio::net::TcpListener::bind((ip, port)).await,
        None => match tokio::net::TcpListener::bind((Ipv6Addr::UNSPECIFIED, port)).await {
            Err(e) if e.kind() != std::io::ErrorKind::AddrInUse && e.kind() != std::io::ErrorKind::PermissionDenied => {
                tokio::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).await
            }
            r => r,
        },
    };
    opened.with_context(|| match host {
        Some(ip) => format!("cannot open the Prometheus scrape endpoint on {}", SocketAddr::new(ip, port)),
        None => format!("cannot open the Prometheus scrape endpoint on port {port}"),
    })
}

/// Counts and logs (at most every [`REFUSAL_LOG_INTERVAL`]) what the accept
/// loop turned away.
struct Refusals {
    port: u16,
    max_connections: usize,
    unlogged: u64,
    last_log: Option<Instant>,
    accept_errors: u64,
    last_accept_log: Option<Instant>,
}

impl Refusals {
    fn refused(&mut self, internal: &InternalMetrics) {
        internal.prometheus_connection_refused(self.port);
        self.unlogged += 1;
        if self.last_log.is_none_or(|t| t.elapsed() >= REFUSAL_LOG_INTERVAL) {
            tracing::warn!(
                component = "prom.Exporter",
                port = self.port,
                refused = self.unlogged,
                max_connections = self.max_connections,
                "scrape connections refused: too many open (prometheus_export.max_connections)"
            );
            self.unlogged = 0;
            self.last_log = Some(Instant::now());
        }
    }

    fn accept_failed(&mut self, err: &std::io::Error) {
        self.accept_errors += 1;
        if self.last_accept_log.is_none_or(|t| t.elapsed() >= REFUSAL_LOG_INTERVAL) {
            tracing::warn!(
                component = "prom.Exporter",
                port = self.port,
                error = %err,
                failures = self.accept_errors,
                "cannot accept scrape connections"
            );
            self.accept_errors = 0;
            self.last_accept_log = Some(Instant::now());
        }
    }
}

/// Serves `pages` (path -> page) on `listener` until `shutdown` turns true,
/// within `limits`.
pub(crate) fn spawn_server(
    listener: tokio::net::TcpListener,
    port: u16,
    pages: Vec<(String, Page)>,
    limits: ScrapeLimits,
    internal: Arc<InternalMetrics>,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let pages = Arc::new(pages);
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let mut refusals = Refusals {
        port,
        max_connections: limits.max_connections,
        unlogged: 0,
        last_log: None,
        accept_errors: 0,
        last_accept_log: None,
    };
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                r = listener.accept() => match r {
                    Ok((s, _)) => s,
                    Err(err) => {
                        refusals.accept_failed(&err);
                        tokio::time::sleep(ACCEPT_RETRY).await;
                        continue;
                    }
                },
                _ = shutdown.changed() => break,
            };
            let Ok(permit) = open.clone().try_acquire_owned() else {
                drop(stream);
                refusals.refused(&internal);
                continue;
            };
            let pages = pages.clone();
            let internal = internal.clone();
            tokio::spawn(async move {
                let _permit = permit;
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
                // The header read timeout runs from the moment hyper waits for a
                // request head: on a new connection and on one kept alive after
                // a scrape, so it is the idle timeout.
                let served = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(limits.idle_timeout)
                    .serve_connection(io, svc)
                    .await;
                if let Err(err) = served {
                    tracing::debug!(component = "prom.Exporter", error = %err, "scrape connection closed");
                }
            });
        }
    })
}
