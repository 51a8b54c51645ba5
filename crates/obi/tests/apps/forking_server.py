#!/usr/bin/env python3
"""HTTP servers that fork a process per connection (tests/loss.rs).

Usage: forking_server.py PORT fork
         socketserver.ForkingMixIn: the child serves the connection
         (HTTP/1.1, keep-alive until the client closes) and exits.
       forking_server.py PORT inetd HANDLER [ARGS...]
         inetd style: accept, fork, the child moves the socket to fds 0 and
         1 with dup2, closes the original and execs HANDLER, which speaks
         HTTP on stdin/stdout.
       forking_server.py - handler
         a handler for inetd mode: one HTTP/1.0 request on stdin, its
         response on stdout.
Every response is 200 with a Content-Length body naming the path.
Prints "ready PORT" when listening.
"""
import os
import signal
import socket
import socketserver
import sys
from http.server import BaseHTTPRequestHandler


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = ("path %s\n" % self.path).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class ForkingServer(socketserver.ForkingMixIn, socketserver.TCPServer):
    allow_reuse_address = True
    block_on_close = False


def serve_fork(port):
    with ForkingServer(("127.0.0.1", port), Handler) as srv:
        print("ready", port, flush=True)
        srv.serve_forever()


def serve_inetd(port, argv):
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children reap themselves
    lst = socket.socket()
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind(("127.0.0.1", port))
    lst.listen(128)
    print("ready", port, flush=True)
    while True:
        conn, _ = lst.accept()
        if os.fork() == 0:
            lst.close()
            fd = conn.detach()
            os.dup2(fd, 0)
            os.dup2(fd, 1)
            os.close(fd)
            os.execv(argv[0], argv)
        conn.close()


def handle_stdin():
    """One request read from fd 0, answered on fd 1, as an inetd service."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = os.read(0, 4096)
        if not chunk:
            return
        data += chunk
    path = data.split(b" ", 2)[1].decode()
    body = ("path %s\n" % path).encode()
    head = "HTTP/1.0 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
    os.write(1, head.encode() + body)


def main():
    mode = sys.argv[2]
    if mode == "fork":
        serve_fork(int(sys.argv[1]))
    elif mode == "inetd":
        serve_inetd(int(sys.argv[1]), sys.argv[3:])
    elif mode == "handler":
        handle_stdin()
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main()
