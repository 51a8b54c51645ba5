#!/usr/bin/env python3
"""HTTP/1.1 client whose requests start with tiny writes (tests/loss.rs).

Usage: tiny_writes_client.py PORT
Waits for a line on stdin (the test starts it, then lets it go once the
agent traces it), then on one keep-alive connection sends two requests a
byte at a time, and on four more connections three requests each, the first
one after a first write of 1, 2, 3 or 4 bytes. Prints "done N" (responses).
"""
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
    return head, rest[length:]


def connect(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def send(sock, req, pieces):
    at = 0
    for n in pieces:
        sock.sendall(req[at:at + n])
        at += n
        time.sleep(0.005)
    sock.sendall(req[at:])


def main():
    port = int(sys.argv[1])
    sys.stdin.readline()
    request = lambda path: ("GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n" % path).encode()
    done = 0
    s = connect(port)
    buf = b""
    for i in range(2):
        req = request("/leaf/client-bytewise/%d" % i)
        send(s, req, [1] * (len(req) - 1))
        head, buf = read_response(s, buf)
        done += head.startswith(b"HTTP/1.1 200")
    s.close()
    for first in range(1, 5):
        s = connect(port)
        buf = b""
        for i in range(3):
            send(s, request("/leaf/client-first%d/%d" % (first, i)), [first] if i == 0 else [])
            head, buf = read_response(s, buf)
            done += head.startswith(b"HTTP/1.1 200")
        s.close()
    print("done", done, flush=True)


if __name__ == "__main__":
    main()
