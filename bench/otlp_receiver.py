#!/usr/bin/env python3
"""Local OTLP receiver for the benchmark: accepts traces and metrics, counts them, keeps nothing.

It speaks OTLP/gRPC (TraceService, MetricsService, LogsService) and OTLP/HTTP with
protobuf bodies (POST /v1/traces, /v1/metrics, /v1/logs; gzip accepted), using the
official message definitions from the `opentelemetry-proto` package and `grpcio`.

The HTTP port also serves the counters to the harness:
    GET  /counts   JSON: spans, span requests, metric data points, ..., spans per service.name
    POST /reset    set every counter to zero

Usage: otlp_receiver.py --grpc-port P --http-port Q
Prints "ready grpc=P http=Q" on stdout once both listen.
"""
import argparse
import gzip
import json
import sys
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


class Counters:
    """What was received since start or the last reset. Thread-safe."""

    def __init__(self):
        self._lock = threading.Lock()
        self.reset()

    def reset(self):
        with self._lock:
            self.spans = 0
            self.span_requests = 0
            self.span_bytes = 0
            self.metric_points = 0
            self.metric_requests = 0
            self.log_records = 0
            self.by_service = {}

    def add_traces(self, req, size):
        spans = 0
        per_service = {}
        for rs in req.resource_spans:
            name = service_name(rs.resource)
            n = sum(len(ss.spans) for ss in rs.scope_spans)
            per_service[name] = per_service.get(name, 0) + n
            spans += n
        with self._lock:
            self.spans += spans
            self.span_requests += 1
            self.span_bytes += size
            for name, n in per_service.items():
                self.by_service[name] = self.by_service.get(name, 0) + n

    def add_metrics(self, req):
        points = 0
        for rm in req.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    kind = m.WhichOneof("data")
                    if kind is not None:
                        points += len(getattr(m, kind).data_points)
        with self._lock:
            self.metric_points += points
            self.metric_requests += 1

    def add_logs(self, req):
        n = sum(len(sl.log_records) for rl in req.resource_logs for sl in rl.scope_logs)
        with self._lock:
            self.log_records += n

    def snapshot(self):
        with self._lock:
            return {
                "spans": self.spans,
                "span_requests": self.span_requests,
                "span_bytes": self.span_bytes,
                "metric_points": self.metric_points,
                "metric_requests": self.metric_requests,
                "log_records": self.log_records,
                "spans_by_service": dict(self.by_service),
            }


def service_name(resource):
    for kv in resource.attributes:
        if kv.key == "service.name":
            return kv.value.string_value
    return ""


class TraceServicer(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, counters):
        self.counters = counters

    def Export(self, request, context):
        self.counters.add_traces(request, request.ByteSize())
        return trace_service_pb2.ExportTraceServiceResponse()


class MetricsServicer(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, counters):
        self.counters = counters

    def Export(self, request, context):
        self.counters.add_metrics(request)
        return metrics_service_pb2.ExportMetricsServiceResponse()


class LogsServicer(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, counters):
        self.counters = counters

    def Export(self, request, context):
        self.counters.add_logs(request)
        return logs_service_pb2.ExportLogsServiceResponse()


def make_http_handler(counters):
    routes = {
        "/v1/traces": (trace_service_pb2.ExportTraceServiceRequest, trace_service_pb2.ExportTraceServiceResponse),
        "/v1/metrics": (
            metrics_service_pb2.ExportMetricsServiceRequest,
            metrics_service_pb2.ExportMetricsServiceResponse,
        ),
        "/v1/logs": (logs_service_pb2.ExportLogsServiceRequest, logs_service_pb2.ExportLogsServiceResponse),
    }

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def send(self, code, body, ctype):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/counts":
                self.send(200, json.dumps(counters.snapshot()).encode(), "application/json")
            else:
                self.send(404, b"not found\n", "text/plain")

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path == "/reset":
                counters.reset()
                self.send(200, b"{}", "application/json")
                return
            if self.path not in routes:
                self.send(404, b"not found\n", "text/plain")
                return
            if "json" in (self.headers.get("Content-Type") or ""):
                self.send(415, b"only application/x-protobuf\n", "text/plain")
                return
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            req_type, resp_type = routes[self.path]
            req = req_type()
            try:
                req.ParseFromString(body)
            except Exception as e:  # a malformed body is the sender's bug: say so
                self.send(400, f"bad protobuf: {e}\n".encode(), "text/plain")
                return
            if self.path == "/v1/traces":
                counters.add_traces(req, len(body))
            elif self.path == "/v1/metrics":
                counters.add_metrics(req)
            else:
                counters.add_logs(req)
            self.send(200, resp_type().SerializeToString(), "application/x-protobuf")

    return Handler


def serve(grpc_port, http_port, counters=None):
    """Starts both servers and returns (counters, grpc_server, http_server)."""
    counters = counters or Counters()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4),
        options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)],
    )
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(TraceServicer(counters), server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(MetricsServicer(counters), server)
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(LogsServicer(counters), server)
    if server.add_insecure_port(f"127.0.0.1:{grpc_port}") == 0:
        raise OSError(f"cannot listen on 127.0.0.1:{grpc_port} (gRPC)")
    server.start()
    httpd = ThreadingHTTPServer(("127.0.0.1", http_port), make_http_handler(counters))
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return counters, server, httpd


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grpc-port", type=int, required=True)
    ap.add_argument("--http-port", type=int, required=True)
    args = ap.parse_args()
    _, server, _ = serve(args.grpc_port, args.http_port)
    print(f"ready grpc={args.grpc_port} http={args.http_port}", flush=True)
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:
        pass
    server.stop(grace=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
