#!/usr/bin/env python3
"""Sends N GET requests to distinct identifier paths over a few keep-alive
connections (one per thread), to exercise route cardinality.

Paths cycle through three shapes, each with a unique identifier:
  /items/<i>                    (number)
  /users/<uuid>/orders/<i>      (UUID and number)
  /docs/<hex>                   (hexadecimal with digits)

Usage: many_paths_client.py HOST PORT N [--threads T]
Prints "done <ok> <failed>" at the end.
"""
import argparse
import http.client
import threading
import uuid


def path_for(i):
    kind = i % 3
    if kind == 0:
        return "/items/%d" % i
    if kind == 1:
        return "/users/%s/orders/%d" % (uuid.UUID(int=i * 7919 + 1), i)
    return "/docs/%x9f" % (i * 2654435761)


def worker(host, port, indexes, results):
    conn = http.client.HTTPConnection(host, port, timeout=30)
    ok = failed = 0
    for i in indexes:
        conn.request("GET", path_for(i))
        resp = conn.getresponse()
        resp.read()
        if resp.status == 404:
            ok += 1
        else:
            failed += 1
    conn.close()
    results.append((ok, failed))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("n", type=int)
    ap.add_argument("--threads", type=int, default=4)
    args = ap.parse_args()
    results = []
    threads = [
        threading.Thread(target=worker, args=(args.host, args.port, range(t, args.n, args.threads), results))
        for t in range(args.threads)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("done", sum(r[0] for r in results), sum(r[1] for r in results), flush=True)


if __name__ == "__main__":
    main()
