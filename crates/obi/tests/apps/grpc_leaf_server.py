#!/usr/bin/env python3
"""grpcio leaf for tests/go_grpc.rs: answers every unary /leaf/... method
with b"leaf\\n" (raw bytes, as the Go app's raw codec sends them).

Usage: grpc_leaf_server.py PORT   (prints "ready PORT" when listening)
"""
import sys
from concurrent import futures

import grpc

LEAF = grpc.unary_unary_rpc_method_handler(lambda request, context: b"leaf\n")


class Leaves(grpc.GenericRpcHandler):
    def service(self, handler_call_details):
        return LEAF if handler_call_details.method.startswith("/leaf/") else None


def main():
    port = int(sys.argv[1])
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers((Leaves(),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print("ready", port, flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
