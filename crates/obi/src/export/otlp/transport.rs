//! Sends one OTLP export request over gRPC (tonic) or HTTP (hyper,
//! `application/x-protobuf` or `application/json`) and classifies failures
//! as retryable or not. Generic over the signal: anything implementing
//! [`ExportRequest`] (traces here; metrics implement it the same way with
//! their service's path and `/v1/metrics`).
//!
//! A request is encoded once ([`Transport::encode`]) and the bytes are what
//! waits in queues and what every retry sends: the encoded form is several
//! times smaller than the message tree, and a retry costs no re-encoding.
//! gRPC sends the bytes through a pass-through codec.

use std::marker::PhantomData;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use prost::Message;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic_types::StatusExt;

use super::connect::{Connector, TlsSetupError, tls_config};
use crate::config::otlp::{OtlpEndpoint, Protocol};

/// Largest response body read (partial-success details, error text).
const MAX_RESPONSE_BODY: usize = 64 << 10;

/// An OTLP export request of one signal.
pub(crate) trait ExportRequest: prost::Message + serde::Serialize + Send + Sync + 'static {
    type Response: prost::Message + Default + serde::de::DeserializeOwned + Send + 'static;
    /// The gRPC method of this signal's `Export` call.
    const GRPC_PATH: &'static str;

    /// Items the receiver rejected and its message (OTLP partial success).
    fn rejected(response: &Self::Response) -> Option<(i64, String)>;
}

impl ExportRequest for ExportTraceServiceRequest {
    type Response = ExportTraceServiceResponse;
    const GRPC_PATH: &'static str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

    fn rejected(response: &Self::Response) -> Option<(i64, String)> {
        let p = response.partial_success.as_ref()?;
        (p.rejected_spans != 0 || !p.error_message.is_empty()).then(|| (p.rejected_spans, p.error_message.clone()))
    }
}

/// A request encoded for its endpoint: cheap to clone and to resend.
pub(crate) struct Encoded<R> {
    body: Bytes,
    _signal: PhantomData<fn() -> R>,
}

impl<R> Clone for Encoded<R> {
    fn clone(&self) -> Self {
        Encoded { body: self.body.clone(), _signal: PhantomData }
    }
}

impl<R> Encoded<R> {
    /// A request already encoded as protobuf (see [`Transport::sends_json`]).
    pub(crate) fn protobuf(body: Vec<u8>) -> Self {
        Encoded { body: Bytes::from(body), _signal: PhantomData }
    }

    /// The request's buffer, for the next batch to be written into, once
    /// nothing else holds it (every attempt to send it has ended).
    pub(crate) fn into_buffer(self) -> Option<Vec<u8>> {
        self.body.try_into_mut().ok().map(Vec::from)
    }
}

/// gRPC codec that sends already-encoded protobuf bytes and decodes the
/// response message.
struct RawCodec<Resp> {
    /// Bytes of the request: tonic's frame buffer is allocated at its size
    /// once, instead of growing from 8 KiB by doubling (a copy and fresh
    /// pages at every step of a megabyte batch).
    body_len: usize,
    _response: PhantomData<fn() -> Resp>,
}

impl<Resp> RawCodec<Resp> {
    fn for_body(body: &Bytes) -> Self {
        RawCodec { body_len: body.len(), _response: PhantomData }
    }
}

impl<Resp: prost::Message + Default + Send + 'static> Codec for RawCodec<Resp> {
    type Encode = Bytes;
    type Decode = Resp;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder<Resp>;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder { body_len: self.body_len }
    }

    fn decoder(&mut self) -> RawDecoder<Resp> {
        RawDecoder(PhantomData)
    }
}

struct RawEncoder {
    body_len: usize,
}

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }

    fn buffer_settings(&self) -> BufferSettings {
        // The gRPC frame header is 5 bytes; 32 KiB is tonic's default yield threshold.
        BufferSettings::new(self.body_len + 5, 32 << 10)
    }
}

struct RawDecoder<Resp>(PhantomData<fn() -> Resp>);

impl<Resp: prost::Message + Default> Decoder for RawDecoder<Resp> {
    type Item = Resp;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Resp>, tonic::Status> {
        Resp::decode(src).map(Some).map_err(|e| tonic::Status::internal(e.to_string()))
    }
}

/// A failed export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExportError {
    /// Worth sending the same data again later.
    pub(crate) retryable: bool,
    /// The receiver's requested delay (`Retry-After`, gRPC `RetryInfo`).
    pub(crate) retry_after: Option<Duration>,
    pub(crate) message: String,
}

impl std::fmt::Display for ExportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ExportError {}

impl ExportError {
    fn retryable(message: String) -> Self {
        ExportError { retryable: true, retry_after: None, message }
    }
}

/// gRPC codes worth retrying (OTLP specification), plus `RESOURCE_EXHAUSTED`
/// (the receiver is overloaded); `RetryInfo` gives the delay when present.
pub(crate) fn classify_grpc(status: &tonic::Status) -> ExportError {
    use tonic::Code;
    let retryable = matches!(
        status.code(),
        Code::Cancelled
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
            | Code::Aborted
            | Code::OutOfRange
            | Code::Unavailable
            | Code::DataLoss
    );
    let retry_after = status.get_details_retry_info().and_then(|r| r.retry_delay);
    let mut message = format!("gRPC status {:?}", status.code());
    if !status.message().is_empty() {
        message.push_str(": ");
        message.push_str(status.message());
    }
    ExportError { retryable, retry_after, message }
}

/// HTTP statuses worth retrying (OTLP specification): 429, 502, 503, 504;
/// `Retry-After` in seconds gives the delay.
pub(crate) fn classify_http(status: StatusCode, retry_after: Option<&HeaderValue>, body: &[u8]) -> ExportError {
    let retryable = matches!(status.as_u16(), 429 | 502 | 503 | 504);
    let retry_after =
        retry_after.and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok()).map(Duration::from_secs);
    let mut message = format!("HTTP status {status}");
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    let text = text.trim();
    if !text.is_empty() && text.chars().all(|c| !c.is_control() || c == ' ') {
        message.push_str(": ");
        message.push_str(text);
    }
    ExportError { retryable, retry_after, message }
}

/// What a successful export returned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ExportOk {
    /// Items the receiver rejected (partial success), and why.
    pub(crate) rejected: i64,
    pub(crate) message: String,
}

#[derive(Clone)]
enum Inner {
    Grpc(Channel),
    Http(Box<Client<Connector, Full<Bytes>>>),
}

/// A client for one endpoint. Cheap to clone; connects lazily, reconnects
/// after failures by itself.
#[derive(Clone)]
pub(crate) struct Transport {
    endpoint: OtlpEndpoint,
    inner: Inner,
}

impl Transport {
    /// Builds the client (no connection yet). Needs a tokio runtime.
    pub(crate) fn new(endpoint: OtlpEndpoint) -> Result<Self, TlsSetupError> {
        let alpn: &[u8] = if endpoint.protocol == Protocol::Grpc { b"h2" } else { b"http/1.1" };
        let tls = endpoint.tls.as_ref().map(|t| tls_config(t, alpn)).transpose()?;
        let connector = Connector::new(tls, endpoint.timeout);
        let inner = match endpoint.protocol {
            Protocol::Grpc => Inner::Grpc(
                tonic::transport::Endpoint::from(endpoint.url.clone())
                    .timeout(endpoint.timeout)
                    .connect_with_connector_lazy(connector),
            ),
            Protocol::HttpProtobuf | Protocol::HttpJson => Inner::Http(Box::new(
                Client::builder(TokioExecutor::new())
                    .pool_idle_timeout(Duration::from_secs(90))
                    .pool_max_idle_per_host(2)
                    .build(connector),
            )),
        };
        Ok(Transport { endpoint, inner })
    }

    /// Whether this endpoint takes JSON (`http/json`), not protobuf.
    pub(crate) fn sends_json(&self) -> bool {
        self.endpoint.protocol == Protocol::HttpJson
    }

    /// Encodes a request the way this endpoint sends it (JSON for
    /// `http/json`, protobuf otherwise).
    pub(crate) fn encode<R: ExportRequest>(&self, request: &R) -> Result<Encoded<R>, ExportError> {
        let body = if self.sends_json() {
            serde_json::to_vec(request).map_err(|e| ExportError {
                retryable: false,
                retry_after: None,
                message: format!("JSON encoding: {e}"),
            })?
        } else {
            request.encode_to_vec()
        };
        Ok(Encoded { body: Bytes::from(body), _signal: PhantomData })
    }

    /// Encodes and sends one request.
    pub(crate) async fn export<R: ExportRequest>(&self, request: R) -> Result<ExportOk, ExportError> {
        let encoded = self.encode(&request)?;
        drop(request);
        self.export_encoded(&encoded).await
    }

    /// Sends one encoded request, within the endpoint's timeout.
    pub(crate) async fn export_encoded<R: ExportRequest>(&self, request: &Encoded<R>) -> Result<ExportOk, ExportError> {
        let timeout = self.endpoint.timeout;
        let call = async {
            match &self.inner {
                Inner::Grpc(channel) => self.export_grpc(channel.clone(), request).await,
                Inner::Http(client) => self.export_http(client, request).await,
            }
        };
        match tokio::time::timeout(timeout, call).await {
            Ok(r) => r,
            Err(_) => Err(ExportError::retryable(format!("export timed out after {timeout:?}"))),
        }
    }

    async fn export_grpc<R: ExportRequest>(
        &self,
        channel: Channel,
        request: &Encoded<R>,
    ) -> Result<ExportOk, ExportError> {
        let mut req = tonic::Request::new(request.body.clone());
        *req.metadata_mut() = tonic::metadata::MetadataMap::from_headers(self.endpoint.headers.clone());
        req.set_timeout(self.endpoint.timeout);
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.map_err(|e| ExportError::retryable(error_chain(&e)))?;
        let path = http::uri::PathAndQuery::from_static(R::GRPC_PATH);
        let resp = grpc
            .unary(req, path, RawCodec::<R::Response>::for_body(&request.body))
            .await
            .map_err(|s| classify_grpc(&s))?;
        Ok(R::rejected(resp.get_ref()).map(|(rejected, message)| ExportOk { rejected, message }).unwrap_or_default())
    }

    async fn export_http<R: ExportRequest>(
        &self,
        client: &Client<Connector, Full<Bytes>>,
        request: &Encoded<R>,
    ) -> Result<ExportOk, ExportError> {
        let json = self.endpoint.protocol == Protocol::HttpJson;
        let content_type = if json { "application/json" } else { "application/x-protobuf" };
        let body = request.body.clone();
        let mut req = http::Request::post(self.endpoint.url.clone())
            .body(Full::new(body))
            .map_err(|e| ExportError { retryable: false, retry_after: None, message: e.to_string() })?;
        let headers = req.headers_mut();
        for (k, v) in &self.endpoint.headers {
            headers.insert(k, v.clone());
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));

        let resp = client.request(req).await.map_err(|e| ExportError::retryable(error_chain(&e)))?;
        let status = resp.status();
        let retry_after = resp.headers().get(RETRY_AFTER).cloned();
        let body =
            Limited::new(resp.into_body(), MAX_RESPONSE_BODY).collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        if !status.is_success() {
            return Err(classify_http(status, retry_after.as_ref(), &body));
        }
        // A body that does not decode is not worth failing the export for.
        let decoded = if json {
            serde_json::from_slice::<R::Response>(&body).ok()
        } else {
            R::Response::decode(body.as_ref()).ok()
        };
        Ok(decoded
            .as_ref()
            .and_then(R::rejected)
            .map(|(rejected, message)| ExportOk { rejected, message })
            .unwrap_or_default())
    }
}

/// An error with its causes (`connection refused` sits a few levels down).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::otlp::Signal;

    #[test]
    fn grpc_retryable_codes() {
        use tonic::Code;
        for code in [Code::Unavailable, Code::ResourceExhausted, Code::DeadlineExceeded, Code::Aborted, Code::Cancelled]
        {
            assert!(classify_grpc(&tonic::Status::new(code, "x")).retryable, "{code:?}");
        }
        for code in [Code::InvalidArgument, Code::Unauthenticated, Code::PermissionDenied, Code::Unimplemented] {
            assert!(!classify_grpc(&tonic::Status::new(code, "x")).retryable, "{code:?}");
        }
        let e = classify_grpc(&tonic::Status::new(Code::Unavailable, "down"));
        assert_eq!(e.message, "gRPC status Unavailable: down");
        assert_eq!(e.retry_after, None);
    }

    #[test]
    fn grpc_retry_info_gives_the_delay() {
        use tonic_types::{ErrorDetails, StatusExt};
        let status = tonic::Status::with_error_details(
            tonic::Code::ResourceExhausted,
            "slow down",
            ErrorDetails::with_retry_info(Some(Duration::from_secs(3))),
        );
        let e = classify_grpc(&status);
        assert!(e.retryable);
        assert_eq!(e.retry_after, Some(Duration::from_secs(3)));
    }

    #[test]
    fn http_retryable_statuses_and_retry_after() {
        for code in [429, 502, 503, 504] {
            assert!(classify_http(StatusCode::from_u16(code).unwrap(), None, b"").retryable, "{code}");
        }
        for code in [400, 401, 403, 404, 413, 500] {
            assert!(!classify_http(StatusCode::from_u16(code).unwrap(), None, b"").retryable, "{code}");
        }
        let e = classify_http(StatusCode::TOO_MANY_REQUESTS, Some(&HeaderValue::from_static("7")), b"busy");
        assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
        assert_eq!(e.message, "HTTP status 429 Too Many Requests: busy");
        // HTTP dates are not interpreted; the backoff decides.
        let date = HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT");
        assert_eq!(classify_http(StatusCode::SERVICE_UNAVAILABLE, Some(&date), b"").retry_after, None);
        // Binary bodies (a protobuf Status) are not pasted into messages.
        assert_eq!(
            classify_http(StatusCode::BAD_REQUEST, None, b"\x08\x03\x12").message,
            "HTTP status 400 Bad Request"
        );
    }

    fn endpoint(protocol: Protocol, url: &str) -> OtlpEndpoint {
        OtlpEndpoint {
            signal: Signal::Traces,
            protocol,
            url: url.parse().unwrap(),
            tls: None,
            headers: http::HeaderMap::new(),
            timeout: Duration::from_secs(5),
        }
    }

    fn closed_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }

    #[tokio::test]
    async fn connection_refused_is_retryable() {
        let port = closed_port();
        for (protocol, url) in [
            (Protocol::Grpc, format!("http://127.0.0.1:{port}")),
            (Protocol::HttpProtobuf, format!("http://127.0.0.1:{port}/v1/traces")),
        ] {
            let t = Transport::new(endpoint(protocol, &url)).unwrap();
            let e = t.export(ExportTraceServiceRequest::default()).await.unwrap_err();
            assert!(e.retryable, "{protocol:?}: {e:?}");
            assert!(e.message.to_lowercase().contains("refused") || e.message.contains("Unavailable"), "{e:?}");
        }
    }

    /// A one-shot HTTP server answering every request with `status`, headers and body;
    /// returns its port and the requests it saw (method, path, content type, x-token, body).
    async fn http_server(
        status: u16,
        headers: Vec<(&'static str, &'static str)>,
        body: Vec<u8>,
    ) -> (u16, tokio::sync::mpsc::UnboundedReceiver<(String, String, String, String, Vec<u8>)>) {
        use hyper::service::service_fn;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let (tx, headers, body) = (tx.clone(), headers.clone(), body.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let (tx, headers, body) = (tx.clone(), headers.clone(), body.clone());
                        async move {
                            let h = |k: &str| {
                                req.headers().get(k).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
                            };
                            let (m, p, ct, tok) = (
                                req.method().to_string(),
                                req.uri().path().to_string(),
                                h("content-type"),
                                h("x-token"),
                            );
                            let got = req.into_body().collect().await.unwrap().to_bytes().to_vec();
                            tx.send((m, p, ct, tok, got)).unwrap();
                            let mut resp = http::Response::builder().status(status);
                            for (k, v) in headers {
                                resp = resp.header(k, v);
                            }
                            Ok::<_, std::convert::Infallible>(resp.body(Full::new(Bytes::from(body))).unwrap())
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(sock), svc).await;
                });
            }
        });
        (port, rx)
    }

    use hyper_util::rt::TokioIo;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess;
    use opentelemetry_proto::tonic::trace::v1::ResourceSpans;

    #[tokio::test]
    async fn http_protobuf_posts_and_reads_partial_success() {
        let reply = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess { rejected_spans: 2, error_message: "too old".into() }),
        };
        let (port, mut seen) = http_server(200, vec![], reply.encode_to_vec()).await;
        let mut ep = endpoint(Protocol::HttpProtobuf, &format!("http://127.0.0.1:{port}/v1/traces"));
        ep.headers.insert("x-token", HeaderValue::from_static("secret"));
        let t = Transport::new(ep).unwrap();
        let req = ExportTraceServiceRequest { resource_spans: vec![ResourceSpans::default()] };
        let ok = t.export(req.clone()).await.unwrap();
        assert_eq!(ok, ExportOk { rejected: 2, message: "too old".into() });
        let (method, path, ct, token, body) = seen.recv().await.unwrap();
        assert_eq!(
            (method.as_str(), path.as_str(), ct.as_str(), token.as_str()),
            ("POST", "/v1/traces", "application/x-protobuf", "secret")
        );
        assert_eq!(ExportTraceServiceRequest::decode(body.as_slice()).unwrap(), req);
    }

    #[tokio::test]
    async fn http_json_posts_json() {
        let (port, mut seen) = http_server(200, vec![], b"{}".to_vec()).await;
        let t = Transport::new(endpoint(Protocol::HttpJson, &format!("http://127.0.0.1:{port}/v1/traces"))).unwrap();
        assert_eq!(t.export(ExportTraceServiceRequest::default()).await.unwrap(), ExportOk::default());
        let (_, _, ct, _, body) = seen.recv().await.unwrap();
        assert_eq!(ct, "application/json");
        assert_eq!(String::from_utf8(body).unwrap(), r#"{"resourceSpans":[]}"#);
    }

    #[tokio::test]
    async fn http_503_with_retry_after_is_retryable() {
        let (port, _seen) = http_server(503, vec![("retry-after", "4")], b"overloaded".to_vec()).await;
        let t =
            Transport::new(endpoint(Protocol::HttpProtobuf, &format!("http://127.0.0.1:{port}/v1/traces"))).unwrap();
        let e = t.export(ExportTraceServiceRequest::default()).await.unwrap_err();
        assert_eq!(
            e,
            ExportError {
                retryable: true,
                retry_after: Some(Duration::from_secs(4)),
                message: "HTTP status 503 Service Unavailable: overloaded".into()
            }
        );
        let (port, _seen) = http_server(400, vec![], vec![]).await;
        let t =
            Transport::new(endpoint(Protocol::HttpProtobuf, &format!("http://127.0.0.1:{port}/v1/traces"))).unwrap();
        assert!(!t.export(ExportTraceServiceRequest::default()).await.unwrap_err().retryable);
    }
}
