//! Where and how one OTLP signal is sent: turns the raw `OTEL_EXPORTER_OTLP_*` variables and
//! the YAML exporter section into what the transport needs, with errors that
//! name the variable (or YAML key) at fault.
//!
//! Rules (OTel specification, as OBI applies them):
//! - the signal-specific endpoint (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, YAML
//!   `otel_traces_export.endpoint`) is used as is; the common one
//!   (`OTEL_EXPORTER_OTLP_ENDPOINT`) gets `/v1/traces` appended for HTTP;
//! - gRPC uses only `scheme://host:port`;
//! - the protocol is the signal-specific one, then YAML, then the common one,
//!   else guessed from the port: ending in `4317` means `grpc`, anything else
//!   `http/protobuf`;
//! - `http://` means plaintext, `https://` TLS; a gRPC endpoint without a
//!   scheme uses TLS unless `..._INSECURE=true`;
//! - headers are `key=value` pairs separated by commas, URL-decoded; the
//!   signal-specific list overrides the common one key by key;
//! - timeouts are milliseconds (a Go duration such as `5s` is accepted too).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::signal::Signal;
use super::sources::{Lookup, Setting};
use crate::config::ConfigError;
use crate::config::parse::{parse_go_bool, parse_go_duration};

/// Default time allowed for one export request.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The OTLP wire protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    Grpc,
    HttpProtobuf,
    HttpJson,
}

impl Protocol {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "grpc" => Some(Protocol::Grpc),
            "http/protobuf" => Some(Protocol::HttpProtobuf),
            "http/json" => Some(Protocol::HttpJson),
            _ => None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http/protobuf",
            Protocol::HttpJson => "http/json",
        }
    }

    pub(crate) fn is_http(self) -> bool {
        !matches!(self, Protocol::Grpc)
    }

    /// OBI's guess from the endpoint port: one ending in `4317` is gRPC,
    /// anything else (`4318`, none...) is `http/protobuf`.
    pub(crate) fn guess(port: Option<u16>) -> Self {
        match port {
            Some(p) if p.to_string().ends_with("4317") => Protocol::Grpc,
            _ => Protocol::HttpProtobuf,
        }
    }
}

/// How to verify the server of a TLS endpoint.
#[derive(Clone, PartialEq, Default)]
pub(crate) struct TlsSettings {
    /// Extra trusted CAs (`..._CERTIFICATE`); the system roots are used too.
    pub(crate) ca_certificates: Vec<CertificateDer<'static>>,
    pub(crate) ca_file: Option<PathBuf>,
    /// `OTEL_EBPF_INSECURE_SKIP_VERIFY`: accept any server certificate.
    pub(crate) skip_verify: bool,
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSettings")
            .field("ca_file", &self.ca_file)
            .field("ca_certificates", &self.ca_certificates.len())
            .field("skip_verify", &self.skip_verify)
            .finish()
    }
}

/// Where and how one signal is sent: everything the transport needs.
#[derive(Clone, PartialEq)]
pub(crate) struct OtlpEndpoint {
    pub(crate) signal: Signal,
    pub(crate) protocol: Protocol,
    /// HTTP: the full URL to POST to. gRPC: `scheme://host:port`.
    pub(crate) url: Uri,
    /// `None` for plaintext.
    pub(crate) tls: Option<TlsSettings>,
    pub(crate) headers: HeaderMap,
    /// Time allowed for one export request.
    pub(crate) timeout: Duration,
}

impl fmt::Debug for OtlpEndpoint {
    // Header values are often credentials: only their names are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpEndpoint")
            .field("signal", &self.signal)
            .field("protocol", &self.protocol)
            .field("url", &self.url)
            .field("tls", &self.tls)
            .field("headers", &self.headers.keys().map(|k| k.as_str()).collect::<Vec<_>>())
            .field("timeout", &self.timeout)
            .finish()
    }
}

fn err(s: &Setting, message: impl fmt::Display) -> ConfigError {
    ConfigError::value(s.source.clone(), message.to_string())
}

/// Resolves the endpoint of `signal`; `None` when neither the signal-specific
/// nor the common endpoint is set.
pub(crate) fn resolve_endpoint(signal: Signal, lookup: &Lookup<'_>) -> Result<Option<OtlpEndpoint>, ConfigError> {
    let specific = lookup.get(&signal.var("ENDPOINT"), "endpoint");
    let common = lookup.env("OTEL_EXPORTER_OTLP_ENDPOINT");
    let Some((ep, is_specific)) = specific.map(|s| (s, true)).or_else(|| common.map(|s| (s, false))) else {
        return Ok(None);
    };
    let parsed = ParsedUrl::parse(&ep)?;

    let protocol = match lookup
        .env(&signal.var("PROTOCOL"))
        .or_else(|| lookup.yaml("protocol"))
        .or_else(|| lookup.env("OTEL_EXPORTER_OTLP_PROTOCOL"))
    {
        Some(p) => Protocol::parse(&p.value).ok_or_else(|| {
            err(&p, format!("unknown OTLP protocol {:?} (expected grpc, http/protobuf or http/json)", p.value))
        })?,
        None => Protocol::guess(parsed.port),
    };

    let insecure = match lookup.env(&signal.var("INSECURE")).or_else(|| lookup.env("OTEL_EXPORTER_OTLP_INSECURE")) {
        Some(s) => parse_go_bool(&s.value).map_err(|m| err(&s, m))?,
        None => false,
    };
    let secure = match parsed.scheme.as_deref() {
        Some("https") => true,
        Some(_) => false,
        None if protocol.is_http() => {
            return Err(err(
                &ep,
                format!(
                    "invalid OTLP endpoint {:?}: an HTTP endpoint needs a scheme, e.g. http://{}",
                    ep.value, ep.value
                ),
            ));
        }
        None => !insecure,
    };
    let scheme = if secure { "https" } else { "http" };

    let url_text = if protocol.is_http() {
        let path = if is_specific {
            parsed.path_and_query.clone()
        } else {
            let (path, query) = match parsed.path_and_query.split_once('?') {
                Some((p, q)) => (p, format!("?{q}")),
                None => (parsed.path_and_query.as_str(), String::new()),
            };
            format!("{}{}{query}", path.trim_end_matches('/'), signal.http_path())
        };
        format!("{scheme}://{}{path}", parsed.authority)
    } else {
        format!("{scheme}://{}", parsed.authority)
    };
    let url: Uri =
        url_text.parse().map_err(|e| err(&ep, format!("invalid OTLP endpoint {:?} ({url_text}): {e}", ep.value)))?;

    let ca = lookup.env(&signal.var("CERTIFICATE")).or_else(|| lookup.env("OTEL_EXPORTER_OTLP_CERTIFICATE"));
    let ca_certificates = match &ca {
        Some(s) => read_ca_file(s)?,
        None => Vec::new(),
    };
    let skip_verify = match lookup.get("OTEL_EBPF_INSECURE_SKIP_VERIFY", "insecure_skip_verify") {
        Some(s) => parse_go_bool(&s.value).map_err(|m| err(&s, m))?,
        None => false,
    };
    let tls = secure.then(|| TlsSettings { ca_certificates, ca_file: ca.map(|s| PathBuf::from(s.value)), skip_verify });

    let mut headers = HeaderMap::new();
    for var in ["OTEL_EXPORTER_OTLP_HEADERS".to_string(), signal.var("HEADERS")] {
        if let Some(s) = lookup.env(&var) {
            for (k, v) in parse_headers(&s)? {
                headers.insert(k, v);
            }
        }
    }

    let timeout = match lookup.env(&signal.var("TIMEOUT")).or_else(|| lookup.env("OTEL_EXPORTER_OTLP_TIMEOUT")) {
        Some(s) => parse_timeout(&s)?,
        None => DEFAULT_TIMEOUT,
    };

    Ok(Some(OtlpEndpoint { signal, protocol, url, tls, headers, timeout }))
}

/// An endpoint URL split into what the rules need.
struct ParsedUrl {
    /// `None` for `host:port` without a scheme.
    scheme: Option<String>,
    authority: String,
    port: Option<u16>,
    /// Path and query, empty when the URL has none.
    path_and_query: String,
}

impl ParsedUrl {
    fn parse(s: &Setting) -> Result<Self, ConfigError> {
        let text = s.value.trim();
        let bad = |why: String| err(s, format!("invalid OTLP endpoint {text:?}: {why}"));
        if !text.contains("://") {
            let authority: http::uri::Authority =
                text.parse().map_err(|e| bad(format!("{e} (expected a URL such as http://localhost:4318)")))?;
            if authority.host().is_empty() {
                return Err(bad("no host".into()));
            }
            return Ok(ParsedUrl {
                scheme: None,
                port: port_of(&authority).map_err(|e| bad(e.to_string()))?,
                authority: authority.to_string(),
                path_and_query: String::new(),
            });
        }
        let scheme = text.split_once("://").map(|(s, _)| s.to_ascii_lowercase()).unwrap_or_default();
        match scheme.as_str() {
            "http" | "https" => {}
            "unix" => {
                return Err(bad("unix socket endpoints are not supported by obi-rs; use http://host:port".into()));
            }
            other => return Err(bad(format!("unsupported scheme {other:?} (expected http or https)"))),
        }
        let uri: Uri = text.parse().map_err(|e| bad(format!("{e}")))?;
        let Some(authority) = uri.authority().filter(|a| !a.host().is_empty()) else {
            return Err(bad("no host".into()));
        };
        if authority.as_str().contains('@') {
            return Err(bad("user information in the URL is not supported; use OTEL_EXPORTER_OTLP_HEADERS".into()));
        }
        let path_and_query = match uri.path_and_query() {
            Some(pq) if pq.as_str() != "/" => pq.as_str().to_string(),
            _ => String::new(),
        };
        let port = port_of(authority).map_err(|e| bad(e.to_string()))?;
        Ok(ParsedUrl { scheme: Some(scheme), port, authority: authority.to_string(), path_and_query })
    }
}

/// A port number that does not fit in 16 bits.
#[derive(Debug, thiserror::Error)]
#[error("invalid port {0:?}")]
struct InvalidPort(String);

/// The port of `host:port` (`[v6]:port`), checked to fit in 16 bits.
fn port_of(a: &http::uri::Authority) -> Result<Option<u16>, InvalidPort> {
    let after_host = a.as_str().rsplit(']').next().unwrap_or_default();
    match after_host.rsplit_once(':') {
        Some((_, p)) => p.parse::<u16>().map(Some).map_err(|_| InvalidPort(p.to_string())),
        None => Ok(None),
    }
}

/// Parses `key=value,key2=value2`: split on commas, then on the first `=`;
/// keys and values are trimmed and URL-decoded; empty items are skipped.
pub(crate) fn parse_headers(s: &Setting) -> Result<Vec<(HeaderName, HeaderValue)>, ConfigError> {
    let mut out = Vec::new();
    for item in s.value.split(',') {
        if item.trim().is_empty() {
            continue;
        }
        let Some((k, v)) = item.split_once('=') else {
            return Err(err(s, format!("invalid header {:?}: expected key=value", item.trim())));
        };
        let decode = |t: &str| {
            percent_encoding::percent_decode_str(t.trim())
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| err(s, format!("invalid header {:?}: not UTF-8 once URL-decoded", item.trim())))
        };
        let (key, value) = (decode(k)?, decode(v)?);
        let name =
            HeaderName::from_bytes(key.as_bytes()).map_err(|_| err(s, format!("invalid header name {key:?}")))?;
        let value = HeaderValue::from_str(&value)
            .map_err(|_| err(s, format!("invalid value for header {key:?}: control characters are not allowed")))?;
        out.push((name, value));
    }
    Ok(out)
}

/// Milliseconds (`10000`) or a Go duration (`10s`); must be positive.
fn parse_timeout(s: &Setting) -> Result<Duration, ConfigError> {
    let v = s.value.trim();
    let d = match v.parse::<u64>() {
        Ok(ms) => Duration::from_millis(ms),
        Err(_) => parse_go_duration(v)
            .map_err(|_| err(s, format!("invalid timeout {v:?}: expected milliseconds, e.g. 10000")))?,
    };
    if d.is_zero() {
        return Err(err(s, "the timeout must be greater than 0"));
    }
    Ok(d)
}

fn read_ca_file(s: &Setting) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let path = s.value.trim();
    let bytes = std::fs::read(path).map_err(|e| err(s, format!("cannot read CA certificate file {path:?}: {e}")))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| err(s, format!("invalid PEM in CA certificate file {path:?}: {e}")))?;
    if certs.is_empty() {
        return Err(err(s, format!("no PEM certificate found in CA certificate file {path:?}")));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn lookup_of(env: &[(&'static str, &str)]) -> BTreeMap<&'static str, Setting> {
        env.iter().map(|(k, v)| (*k, Setting::new(*k, *v))).collect()
    }

    fn resolve(env: &[(&'static str, &str)]) -> Result<Option<OtlpEndpoint>, ConfigError> {
        let env = lookup_of(env);
        resolve_endpoint(Signal::Traces, &Lookup::from_parts(&env, None, "otel_traces_export"))
    }

    fn ok(env: &[(&'static str, &str)]) -> OtlpEndpoint {
        resolve(env).unwrap().unwrap()
    }

    fn error(env: &[(&'static str, &str)]) -> String {
        resolve(env).unwrap_err().to_string()
    }

    #[test]
    fn nothing_set_means_no_exporter() {
        assert!(resolve(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]).unwrap().is_none());
    }

    #[test]
    fn protocol_is_guessed_from_the_port() {
        let e = ok(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4317")]);
        assert_eq!(e.protocol, Protocol::Grpc);
        assert_eq!(e.url, "http://localhost:4317");
        assert!(e.tls.is_none());
        // Any port ending in 4317.
        assert_eq!(ok(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:14317")]).protocol, Protocol::Grpc);
        assert_eq!(ok(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")]).protocol, Protocol::HttpProtobuf);
        assert_eq!(ok(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:9999")]).protocol, Protocol::HttpProtobuf);
        assert_eq!(ok(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c")]).protocol, Protocol::HttpProtobuf);
        // An explicit protocol wins over the guess.
        let e = ok(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"), ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")]);
        assert_eq!(e.protocol, Protocol::HttpJson);
        assert_eq!(e.url, "http://c:4317/v1/traces");
    }

    #[test]
    fn common_endpoint_gets_the_signal_path_for_http_only() {
        let e = ok(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")]);
        assert_eq!(e.url, "http://c:4318/v1/traces");
        let e = ok(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/")]);
        assert_eq!(e.url, "http://c:4318/v1/traces");
        let e = ok(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c:4318/otlp/")]);
        assert_eq!(e.url, "https://c:4318/otlp/v1/traces");
        assert!(e.tls.is_some());
        let e = ok(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/otlp?tenant=a")]);
        assert_eq!(e.url, "http://c:4318/otlp/v1/traces?tenant=a");
        // gRPC: only host and port.
        let e = ok(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317/ignored")]);
        assert_eq!(e.url, "http://c:4317");
    }

    #[test]
    fn signal_endpoint_is_used_as_is_and_wins() {
        let e = ok(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://common:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4318/custom/path"),
        ]);
        assert_eq!(e.url, "http://traces:4318/custom/path");
        let e = ok(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4318")]);
        assert_eq!(e.url, "http://traces:4318/");
    }

    #[test]
    fn signal_specific_settings_win_over_common_ones() {
        let e = ok(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000"),
            ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "2500"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "a=1,b=2"),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "b=3,c=4"),
        ]);
        assert_eq!(e.protocol, Protocol::Grpc);
        assert_eq!(e.url, "http://c:4318");
        assert_eq!(e.timeout, Duration::from_millis(2500));
        assert_eq!(e.headers["a"], "1");
        assert_eq!(e.headers["b"], "3");
        assert_eq!(e.headers["c"], "4");
        assert_eq!(e.headers.len(), 3);
        let e = ok(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"), ("OTEL_EXPORTER_OTLP_TIMEOUT", "3s")]);
        assert_eq!(e.timeout, Duration::from_secs(3));
        assert_eq!(ok(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")]).timeout, DEFAULT_TIMEOUT);
    }

    #[test]
    fn yaml_section_sits_between_signal_env_and_common_env() {
        let env = lookup_of(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")]);
        let yaml = serde_json::json!({"endpoint": "http://y:4318/v1/traces", "protocol": "grpc"});
        let e = resolve_endpoint(Signal::Traces, &Lookup::from_parts(&env, Some(&yaml), "otel_traces_export"))
            .unwrap()
            .unwrap();
        assert_eq!(e.protocol, Protocol::Grpc);
        assert_eq!(e.url, "http://y:4318");
        let yaml = serde_json::json!({"endpoint": "http://y:4318/v1/traces", "protocol": "grpcc"});
        let msg = resolve_endpoint(Signal::Traces, &Lookup::from_parts(&env, Some(&yaml), "otel_traces_export"))
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with("otel_traces_export.protocol: unknown OTLP protocol \"grpcc\""), "{msg}");
    }

    #[test]
    fn headers_are_url_decoded_and_split_on_the_first_equals() {
        let s =
            Setting::new("OTEL_EXPORTER_OTLP_HEADERS", " Authorization=Basic%20dXNlcjpwYXNz== , x-tenant = a%2Cb ,,");
        let h = parse_headers(&s).unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].0, "authorization");
        assert_eq!(h[0].1, "Basic dXNlcjpwYXNz==");
        assert_eq!(h[1].0, "x-tenant");
        assert_eq!(h[1].1, "a,b");
        for (bad, why) in [
            ("novalue", "expected key=value"),
            ("=v", "invalid header name \"\""),
            ("bad key=v", "invalid header name"),
            ("k=a%0Ab", "control characters"),
            ("k=%FF", "not UTF-8"),
        ] {
            let e = parse_headers(&Setting::new("OTEL_EXPORTER_OTLP_TRACES_HEADERS", bad)).unwrap_err().to_string();
            assert!(e.starts_with("OTEL_EXPORTER_OTLP_TRACES_HEADERS: "), "{e}");
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn tls_follows_the_scheme_or_insecure() {
        assert!(ok(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c:4317")]).tls.is_some());
        // gRPC without a scheme: TLS unless insecure.
        let e = ok(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "collector:4317")]);
        assert_eq!(e.protocol, Protocol::Grpc);
        assert_eq!(e.url, "https://collector:4317");
        assert!(e.tls.is_some());
        let e =
            ok(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "collector:4317"), ("OTEL_EXPORTER_OTLP_INSECURE", "true")]);
        assert_eq!(e.url, "http://collector:4317");
        assert!(e.tls.is_none());
        let e = ok(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c"), ("OTEL_EBPF_INSECURE_SKIP_VERIFY", "true")]);
        assert!(e.tls.unwrap().skip_verify);
    }

    #[test]
    fn ca_file_is_read_at_startup() {
        let e = error(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c:4318"),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem"),
        ]);
        assert!(
            e.starts_with("OTEL_EXPORTER_OTLP_CERTIFICATE: cannot read CA certificate file \"/nonexistent/ca.pem\"")
        );
        let empty = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(empty.path(), "not a certificate\n").unwrap();
        let path = empty.path().to_str().unwrap().to_string();
        let e = error(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", &path),
        ]);
        assert!(e.starts_with("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE: no PEM certificate found"), "{e}");
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (env, starts) in [
            (
                vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318")],
                "OTEL_EXPORTER_OTLP_ENDPOINT: invalid OTLP endpoint \"localhost:4318\": an HTTP endpoint needs a scheme",
            ),
            (
                vec![("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "ftp://c:21")],
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: invalid OTLP endpoint \"ftp://c:21\": unsupported scheme \"ftp\"",
            ),
            (
                vec![("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://")],
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: invalid OTLP endpoint",
            ),
            (
                vec![("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:99999")],
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: invalid OTLP endpoint",
            ),
            (
                vec![("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "unix:///run/otel.sock")],
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: invalid OTLP endpoint \"unix:///run/otel.sock\": unix socket",
            ),
            (
                vec![
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                    ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "thrift"),
                ],
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: unknown OTLP protocol \"thrift\"",
            ),
            (
                vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"), ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon")],
                "OTEL_EXPORTER_OTLP_TIMEOUT: invalid timeout",
            ),
            (
                vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"), ("OTEL_EXPORTER_OTLP_TIMEOUT", "0")],
                "OTEL_EXPORTER_OTLP_TIMEOUT: the timeout must be",
            ),
            (
                vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "c:4317"), ("OTEL_EXPORTER_OTLP_INSECURE", "maybe")],
                "OTEL_EXPORTER_OTLP_INSECURE: ",
            ),
        ] {
            let e = error(&env);
            assert!(e.starts_with(starts), "{env:?}: {e}");
        }
    }
}
