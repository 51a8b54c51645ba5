#!/usr/bin/env python3
"""Test HTTP/1.1 server (keep-alive, threaded) with routes that exercise the tracer.

  /                  200, small body
  /status/<code>     that status code
  /chunked/<n>       200, chunked body of n chunks
  /big/<bytes>       200, body of that many bytes (Content-Length)
  /echo (POST)       200, body = number of request body bytes read
  /slow/<ms>         200 after sleeping; X-Handler-Start: when the handler
                     started (wall clock ns), for the in-queue tests
  /headers           200, JSON of the request headers as received
  /call?url=U        makes a GET to U (http.client) and returns its status
  /call-in-thread?url=U  the same, from a new thread the handler waits for
  /fanout/<id>/<n>?base=B[&via=inline|thread|pool]
                     GETs B/leaf/<id>/<k> for k < n (in the handler's thread,
                     a new thread per call, or a shared lazily grown pool);
                     the paths say which request caused which call (parent audit)
  /leaf/...          200, small body

Usage: http_server.py PORT [--tls CERT KEY] [--single]
  --single: one request at a time (no threads), so requests queue up
  (prints "ready PORT" when listening)
"""
import http.client
import json
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer


def call(target):
    conn = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
    path = (target.path or "/") + ("?" + target.query if target.query else "")
    conn.request("GET", path)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, len(data)


POOL = ThreadPoolExecutor(max_workers=8)


def fanout(base, ident, n, via):
    targets = [urllib.parse.urlsplit("%s/leaf/%s/%d" % (base, ident, k)) for k in range(n)]
    if via == "pool":
        return [f.result() for f in [POOL.submit(call, t) for t in targets]]
    if via == "thread":
        results = [None] * n
        threads = [threading.Thread(target=lambda k=k: results.__setitem__(k, call(targets[k]))) for k in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return results
    return [call(t) for t in targets]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, code, body=b"", ctype="text/plain", extra=()):
        self.send_response(code)
        for k, v in extra:
            self.send_header(k, v)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self):
        self.reply(200, b"hello\n")

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        if url.path == "/":
            self.reply(200, b"hello\n")
        elif parts[0] == "status":
            self.reply(int(parts[1]), b"status %s\n" % parts[1].encode())
        elif parts[0] == "chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(int(parts[1])):
                chunk = b"chunk-%d\n" % i
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        elif parts[0] == "big":
            self.reply(200, b"x" * int(parts[1]))
        elif parts[0] == "slow":
            started = time.time_ns()
            time.sleep(int(parts[1]) / 1000)
            self.reply(200, b"slow\n", extra=[("X-Handler-Start", str(started))])
        elif parts[0] == "headers":
            body = json.dumps([[k, v] for k, v in self.headers.items()]).encode()
            self.reply(200, body, "application/json")
        elif parts[0] == "leaf":
            self.reply(200, b"leaf\n")
        elif parts[0] == "fanout":
            q = urllib.parse.parse_qs(url.query)
            results = fanout(q["base"][0], parts[1], int(parts[2]), q.get("via", ["inline"])[0])
            ok = sum(1 for status, _ in results if status == 200)
            self.reply(200, b"fanout %d/%d\n" % (ok, len(results)))
        elif parts[0] in ("call", "call-in-thread"):
            target = urllib.parse.urlsplit(urllib.parse.parse_qs(url.query)["url"][0])
            result = []
            if parts[0] == "call":
                result.append(call(target))
            else:
                t = threading.Thread(target=lambda: result.append(call(target)))
                t.start()
                t.join()
            status, size = result[0]
            self.reply(200, b"called %d %d\n" % (status, size))
        else:
            self.reply(404, b"not found\n")

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        remaining = length
        while remaining > 0:
            got = self.rfile.read(min(remaining, 65536))
            if not got:
                break
            remaining -= len(got)
        self.reply(200, b"%d\n" % (length - remaining))


class Server(ThreadingHTTPServer):
    # socketserver's default backlog of 5 overflows under the concurrency
    # tests; real servers listen with a deep queue.
    request_queue_size = 1024


class SingleServer(HTTPServer):
    request_queue_size = 1024


def main():
    port = int(sys.argv[1])
    server = (SingleServer if "--single" in sys.argv else Server)(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    if len(sys.argv) >= 5 and sys.argv[2] == "--tls":
        import ssl

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[3], sys.argv[4])
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print("ready", port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
