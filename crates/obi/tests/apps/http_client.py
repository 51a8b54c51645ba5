#!/usr/bin/env python3
"""Test HTTP client: sends requests over ONE keep-alive connection (http.client).

Usage: http_client.py HOST PORT METHOD:PATH [METHOD:PATH ...] [--repeat N] [--body BYTES]
Prints one line per response: "<status> <body bytes>", then "done".
"""
import argparse
import http.client


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("requests", nargs="+")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--body", type=int, default=0)
    args = ap.parse_args()
    conn = http.client.HTTPConnection(args.host, args.port, timeout=30)
    for _ in range(args.repeat):
        for spec in args.requests:
            method, _, path = spec.partition(":")
            body = b"b" * args.body if method in ("POST", "PUT") else None
            conn.request(method, path, body=body)
            resp = conn.getresponse()
            data = resp.read()
            print(resp.status, len(data), flush=True)
    conn.close()
    print("done", flush=True)


if __name__ == "__main__":
    main()
