#!/usr/bin/env python3
"""gRPC test server (grpcio, raw bytes: no generated stubs needed).

Service obi.test.Echo:
  Unary(bytes) -> the same bytes
  Stream(bytes) -> int(request) responses of b"item-<i>"
  Fail(bytes)  -> aborts with NOT_FOUND (5)

Usage: grpc_server.py PORT   (prints "ready PORT" when listening)
"""
import sys
from concurrent import futures

import grpc


def unary(request, context):
    return request


def stream(request, context):
    for i in range(int(request or b"3")):
        yield b"item-%d" % i


def fail(request, context):
    context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")


def main():
    port = int(sys.argv[1])
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Stream": grpc.unary_stream_rpc_method_handler(stream),
        "Fail": grpc.unary_unary_rpc_method_handler(fail),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("obi.test.Echo", handlers),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print("ready", port, flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
