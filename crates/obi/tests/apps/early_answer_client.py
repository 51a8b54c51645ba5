#!/usr/bin/env python3
"""POSTs whose body is sent only after a pause, so that a server answering
without reading the body (nginx `return 500;`) answers first.

Usage: early_answer_client.py PORT PATH COUNT BODY [--pause-ms N]
Waits for a line on stdin (the test's go-ahead), then for each of COUNT
requests: connects, sends the head (with Content-Length), pauses, sends
BODY, reads the response until the server closes or its Content-Length is
read. Prints "<status> <response body bytes>" per request, then "done".
"""
import argparse
import socket
import sys
import time


def read_response(sock):
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise SystemExit(f"connection closed mid-head: {buf!r}")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while length is None or len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, len(body) if length is None else length


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("path")
    ap.add_argument("count", type=int)
    ap.add_argument("body")
    ap.add_argument("--pause-ms", type=int, default=200)
    args = ap.parse_args()
    sys.stdin.readline()
    body = args.body.encode()
    head = (
        f"POST {args.path} HTTP/1.1\r\nHost: 127.0.0.1:{args.port}\r\n"
        f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    for _ in range(args.count):
        sock = socket.create_connection(("127.0.0.1", args.port))
        sock.sendall(head)
        time.sleep(args.pause_ms / 1000)
        sock.sendall(body)
        status, size = read_response(sock)
        sock.close()
        print(status, size, flush=True)
    print("done", flush=True)


if __name__ == "__main__":
    main()
