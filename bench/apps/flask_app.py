#!/usr/bin/env python3
"""Benchmark app: a small Flask app on Werkzeug's threaded server (one thread per connection).

GET / returns a 1 KiB body. The same file is run plain, under the obi agent, and
under `opentelemetry-instrument` (the OpenTelemetry Python zero-code SDK).

Usage: flask_app.py PORT   (prints "ready PORT" once listening)
"""
import logging
import sys
import threading
import time
import urllib.request

from flask import Flask, Response

BODY = b"x" * 1023 + b"\n"

app = Flask(__name__)


@app.get("/")
def index():
    return Response(BODY, mimetype="text/plain")


def announce_when_listening(port):
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).read()
            print(f"ready {port}", flush=True)
            return
        except OSError:
            time.sleep(0.05)
    print(f"not listening on {port}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    port = int(sys.argv[1])
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    threading.Thread(target=announce_when_listening, args=(port,), daemon=True).start()
    app.run(host="127.0.0.1", port=port, threaded=True, debug=False, use_reloader=False)
