#!/usr/bin/env python3
"""A broken OTLP receiver, for the fault tests and bench/otlp-faults-rss.sh.

Usage: otlp_broken.py PORT MODE
MODE:
  blackhole       accepts connections and holds them; never reads nor answers
  http500         answers every HTTP request with 500 (keep-alive)
  garbage         reads the client's first bytes, answers bytes that are neither
                  HTTP/1 nor HTTP/2, closes
  garbage-stream  sends random bytes without end, never reads
Prints "ready" once listening.
"""
import os
import socket
import sys
import threading

GARBAGE = bytes((i * 2654435761 >> 13) & 0xFF for i in range(4096))


def http500(conn):
    buf = b""
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            length = 0
            for line in buf[:end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            if len(buf) >= end + 4 + length:
                buf = buf[end + 4 + length:]
                body = b"receiver failure"
                conn.sendall(b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain\r\n"
                             b"content-length: %d\r\n\r\n%s" % (len(body), body))
                continue
        data = conn.recv(65536)
        if not data:
            return
        buf += data


def garbage(conn):
    conn.settimeout(2)
    try:
        conn.recv(4096)
    except socket.timeout:
        pass
    conn.sendall(GARBAGE)


def garbage_stream(conn):
    while True:
        conn.sendall(os.urandom(65536))


HANDLERS = {"http500": http500, "garbage": garbage, "garbage-stream": garbage_stream}


def serve(conn, handler):
    try:
        handler(conn)
    except OSError:
        pass
    finally:
        conn.close()


def main():
    port, mode = int(sys.argv[1]), sys.argv[2]
    if mode != "blackhole" and mode not in HANDLERS:
        sys.exit(f"unknown mode {mode}")
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(1024)
    print("ready", flush=True)
    held = []
    while True:
        conn, _ = srv.accept()
        if mode == "blackhole":
            held.append(conn)
        else:
            threading.Thread(target=serve, args=(conn, HANDLERS[mode]), daemon=True).start()


if __name__ == "__main__":
    main()
