#!/usr/bin/env python3
"""gRPC test client for grpc_server.py, over one channel (one HTTP/2 connection).

Usage: grpc_client.py [--wait-ms=MS] HOST:PORT unary|stream|fail|concurrent [N]
       grpc_client.py HOST:PORT traceparent VALUE   (one unary call carrying it)
Prints "ok <detail>" on success.
"""
import sys
import time

import grpc


def main():
    if len(sys.argv) > 1 and sys.argv[1].startswith("--wait-ms="):
        # Lets the agent instrument this new process before its first
        # connection (a connection whose preface it missed is not decoded).
        time.sleep(int(sys.argv.pop(1).split("=", 1)[1]) / 1000)
    target, mode = sys.argv[1], sys.argv[2]
    arg = sys.argv[3] if len(sys.argv) > 3 else "1"
    n = int(arg) if arg.isdigit() else 1
    with grpc.insecure_channel(target) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        unary = channel.unary_unary("/obi.test.Echo/Unary")
        if mode == "unary":
            for i in range(n):
                assert unary(b"hello-%d" % i, timeout=10) == b"hello-%d" % i
            print("ok", n, flush=True)
        elif mode == "stream":
            items = list(channel.unary_stream("/obi.test.Echo/Stream")(b"%d" % n, timeout=10))
            print("ok", len(items), flush=True)
        elif mode == "fail":
            try:
                channel.unary_unary("/obi.test.Echo/Fail")(b"x", timeout=10)
                sys.exit("expected an error")
            except grpc.RpcError as e:
                print("ok", e.code().value[0], flush=True)
        elif mode == "traceparent":
            unary(b"tp", timeout=10, metadata=(("traceparent", arg),))
            print("ok", 1, flush=True)
        elif mode == "concurrent":
            calls = [unary.future(b"c-%d" % i, timeout=30) for i in range(n)]
            results = [c.result() for c in calls]
            print("ok", len(results), flush=True)
        else:
            sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
