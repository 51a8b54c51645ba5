#!/usr/bin/env python3
"""A threaded HTTP server whose requests call a database, for the parent
audit: every call names its request in a key the agent puts in the span's
statement.

Usage: db_fanout_server.py PORT redis REDIS_PORT
       db_fanout_server.py PORT postgres PG_PORT PASSWORD   (role obi)
  -> prints "ready" once listening
  GET /fanout/<id>/<n>   makes n calls naming leaf:<id>:<k>, answers 200:
    redis:    GET leaf:<id>:<k>  (redis-py, one shared connection pool)
    postgres: SELECT 'leaf:<id>:<k>'  (psycopg, one connection per thread)
"""
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def redis_caller(port):
    import redis

    pool = redis.ConnectionPool(host="127.0.0.1", port=port)

    def call(key):
        redis.Redis(connection_pool=pool).get(key)

    return call


def postgres_caller(port, password):
    import psycopg

    local = threading.local()

    def call(key):
        if not hasattr(local, "conn"):
            local.conn = psycopg.connect(
                host="127.0.0.1", port=port, user="obi", password=password, dbname="postgres", autocommit=True
            )
        local.conn.execute(f"SELECT '{key}'").fetchall()

    return call


CALL = None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        parts = self.path.split("?")[0].strip("/").split("/")
        if len(parts) == 3 and parts[0] == "fanout":
            for k in range(int(parts[2])):
                CALL(f"leaf:{parts[1]}:{k}")
            body = b"ok\n"
            self.send_response(200)
        else:
            body = b"not found\n"
            self.send_response(404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main():
    global CALL
    port, kind, db_port = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    CALL = redis_caller(db_port) if kind == "redis" else postgres_caller(db_port, sys.argv[4])
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
