#!/usr/bin/env python3
"""OTLP trace receiver for the exporter tests, built on the official
`opentelemetry-proto` and `grpcio` packages (installed by scripts/install-deps.sh).

Serves the gRPC TraceService and/or HTTP POST /v1/traces (application/x-protobuf
or application/json) on 127.0.0.1 and prints one JSON line per received span:

  {"transport": "grpc" | "http/protobuf" | "http/json", "header": <x-obi-test header or null>,
   "resource": {attr: value}, "scope": {"name": ..., "version": ...},
   "name": ..., "kind": "SPAN_KIND_SERVER", "traceId": hex, "spanId": hex, "parentSpanId": hex,
   "flags": int, "start": ns, "end": ns, "status": {"code": "STATUS_CODE_ERROR", "message": ...},
   "attributes": {attr: value}}

Attribute values keep their OTLP type: strings as JSON strings, ints as JSON numbers.
Any other path answers 404, so a wrong URL shows up in tests.

Usage: otlp_receiver.py [--grpc PORT] [--http PORT] [--tls CERT KEY]   (prints "ready" when listening)
"""
import argparse
import base64
import json
import ssl
import sys
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

PRINT_LOCK = threading.Lock()


def value_of(any_value):
    kind = any_value.WhichOneof("value")
    if kind is None:
        return None
    v = getattr(any_value, kind)
    if kind == "array_value":
        return [value_of(x) for x in v.values]
    if kind == "kvlist_value":
        return {kv.key: value_of(kv.value) for kv in v.values}
    if kind == "bytes_value":
        return v.hex()
    return v


def attrs(kvs):
    return {kv.key: value_of(kv.value) for kv in kvs}


def emit(request, transport, header):
    lines = []
    for rs in request.resource_spans:
        resource = attrs(rs.resource.attributes)
        for ss in rs.scope_spans:
            scope = {"name": ss.scope.name, "version": ss.scope.version}
            for s in ss.spans:
                lines.append(json.dumps({
                    "transport": transport,
                    "header": header,
                    "resource": resource,
                    "scope": scope,
                    "name": s.name,
                    "kind": trace_pb2.Span.SpanKind.Name(s.kind),
                    "traceId": s.trace_id.hex(),
                    "spanId": s.span_id.hex(),
                    "parentSpanId": s.parent_span_id.hex(),
                    "flags": s.flags,
                    "start": s.start_time_unix_nano,
                    "end": s.end_time_unix_nano,
                    "status": {"code": trace_pb2.Status.StatusCode.Name(s.status.code), "message": s.status.message},
                    "attributes": attrs(s.attributes),
                }))
    with PRINT_LOCK:
        for line in lines:
            print(line)
        sys.stdout.flush()


class TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def Export(self, request, context):
        header = dict(context.invocation_metadata()).get("x-obi-test")
        emit(request, "grpc", header)
        return trace_service_pb2.ExportTraceServiceResponse()


def ids_to_base64(node):
    """OTLP/JSON ids are hex; protobuf's JSON parser expects base64 for bytes."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ("traceId", "spanId", "parentSpanId") and isinstance(v, str):
                node[k] = base64.b64encode(bytes.fromhex(v)).decode()
            else:
                ids_to_base64(v)
    elif isinstance(node, list):
        for v in node:
            ids_to_base64(v)


class HttpHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, code, body, ctype):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path != "/v1/traces":
            self.reply(404, b"not found\n", "text/plain")
            return
        ctype = self.headers.get("Content-Type", "")
        request = trace_service_pb2.ExportTraceServiceRequest()
        if ctype == "application/x-protobuf":
            request.ParseFromString(body)
            transport = "http/protobuf"
            reply = (trace_service_pb2.ExportTraceServiceResponse().SerializeToString(), ctype)
        elif ctype == "application/json":
            doc = json.loads(body)
            ids_to_base64(doc)
            json_format.ParseDict(doc, request)
            transport = "http/json"
            reply = (b"{}", ctype)
        else:
            self.reply(415, b"unsupported content type\n", "text/plain")
            return
        emit(request, transport, self.headers.get("x-obi-test"))
        self.reply(200, *reply)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--grpc", type=int)
    ap.add_argument("--http", type=int)
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    args = ap.parse_args()
    servers = []
    if args.grpc:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(TraceService(), server)
        if args.tls:
            with open(args.tls[0], "rb") as c, open(args.tls[1], "rb") as k:
                creds = grpc.ssl_server_credentials([(k.read(), c.read())])
            server.add_secure_port(f"127.0.0.1:{args.grpc}", creds)
        else:
            server.add_insecure_port(f"127.0.0.1:{args.grpc}")
        server.start()
        servers.append(server)
    if args.http:
        httpd = ThreadingHTTPServer(("127.0.0.1", args.http), HttpHandler)
        if args.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(args.tls[0], args.tls[1])
            httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
