#!/usr/bin/env python3
"""A threaded HTTP server whose requests call Redis (redis-py, one shared
connection pool, as web apps use it), for the parent audit.

Usage: redis_fanout_server.py PORT REDIS_PORT   -> prints "ready" once listening
  GET /fanout/<id>/<n>   runs GET leaf:<id>:<k> for k in 0..n-1, answers 200
"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import redis

POOL = None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        parts = self.path.split("?")[0].strip("/").split("/")
        if len(parts) == 3 and parts[0] == "fanout":
            client = redis.Redis(connection_pool=POOL)
            for k in range(int(parts[2])):
                client.get(f"leaf:{parts[1]}:{k}")
            body = b"ok\n"
            self.send_response(200)
        else:
            body = b"not found\n"
            self.send_response(404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main():
    global POOL
    port, redis_port = int(sys.argv[1]), int(sys.argv[2])
    POOL = redis.ConnectionPool(host="127.0.0.1", port=redis_port)
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
