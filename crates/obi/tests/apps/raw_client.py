#!/usr/bin/env python3
"""Sends exact bytes to an HTTP server and prints what the echo server saw.

Usage: raw_client.py PORT CASE_FILE
CASE_FILE is JSON: {"writes": [<hex>, ...], "responses": N, "pause_ms": 0, "wait_stdin": false}
wait_stdin: read a line from stdin before connecting (the test says when).
Each write is sent with one send() call (pause_ms apart); the client then reads
N responses. Prints one JSON line: {"echoed": [<hex of each response body>]}.
"""
import json
import socket
import sys
import time


def read_response(sock, buf):
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(65536)
    head, _, rest = buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(rest) < length:
        rest += sock.recv(65536)
    return rest[:length], rest[length:]


def main():
    port = int(sys.argv[1])
    case = json.load(open(sys.argv[2]))
    if case.get("wait_stdin"):
        sys.stdin.readline()
    sock = socket.create_connection(("127.0.0.1", port))
    for i, w in enumerate(case["writes"]):
        if i and case.get("pause_ms"):
            time.sleep(case["pause_ms"] / 1000)
        sock.sendall(bytes.fromhex(w))
    buf = b""
    echoed = []
    for _ in range(case["responses"]):
        body, buf = read_response(sock, buf)
        echoed.append(body.hex())
    sock.close()
    print(json.dumps({"echoed": echoed}), flush=True)


if __name__ == "__main__":
    main()
