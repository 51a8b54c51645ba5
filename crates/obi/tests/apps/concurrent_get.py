#!/usr/bin/env python3
"""Sends N GET requests with C concurrent threads (one connection each).

Usage: concurrent_get.py URL N C   -> prints "ok <count of 200s>"
A "{i}" in URL becomes the request's index (0..N-1), so each request is
distinguishable in the spans (the parent audit's /fanout/{i}/... paths).
"""
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor


def get(url):
    with urllib.request.urlopen(url, timeout=60) as r:
        r.read()
        return r.status


def main():
    url, n, c = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with ThreadPoolExecutor(max_workers=c) as pool:
        statuses = list(pool.map(get, [url.replace("{i}", str(i)) for i in range(n)]))
    print("ok", sum(1 for s in statuses if s == 200), flush=True)


if __name__ == "__main__":
    main()
