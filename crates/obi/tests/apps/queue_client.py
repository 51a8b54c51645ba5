#!/usr/bin/env python3
"""Sends N GET requests at the same moment, each on its own connection, and
prints for each how long it waited before the server's handler started:
one JSON line {"path", "sending_ns", "sent_ns", "handler_ns"} per request:
the request's bytes left between sending_ns and sent_ns (a busy machine can
put milliseconds between the two), and handler_ns is the server's
X-Handler-Start header (wall clock, ns).

Usage: queue_client.py PORT PATH_PREFIX N [--keepalive]
  request i goes to PATH_PREFIX/q<i>
  --keepalive: each connection first serves one warm-up request and stays
               open, so the timed requests are keep-alive requests
"""
import http.client
import json
import sys
import threading
import time


def main():
    port, prefix, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    keepalive = "--keepalive" in sys.argv[4:]
    conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=60) for _ in range(n)]
    for c in conns:
        c.connect()
        if keepalive:
            c.request("GET", "/")
            c.getresponse().read()
    barrier = threading.Barrier(n)
    results = [None] * n

    def run(i):
        path = "%s/q%d" % (prefix, i)
        barrier.wait()
        sending = time.time_ns()
        # Without keep-alive, say so: a one-request-at-a-time server would
        # otherwise wait on this connection for a next request.
        conns[i].request("GET", path, headers={} if keepalive else {"Connection": "close"})
        sent = time.time_ns()
        resp = conns[i].getresponse()
        resp.read()
        handler = int(resp.getheader("X-Handler-Start", "0"))
        results[i] = {"path": path, "sending_ns": sending, "sent_ns": sent, "handler_ns": handler}

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
