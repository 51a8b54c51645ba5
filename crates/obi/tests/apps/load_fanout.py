#!/usr/bin/env python3
"""Sends /fanout/<id>/<n> for ids 0..R-1, all R at once (one connection
each), and prints "ok <count of 200s> <seconds>".

Usage: load_fanout.py BASE_URL R N [ROUNDS]   (ROUNDS batches of R, ids unique)
"""
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            r.read()
            return r.status
    except Exception as e:  # counted as a failure
        print("error", url, e, file=sys.stderr)
        return 0


def main():
    base, r, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    ok = 0
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=r) as pool:
        for b in range(rounds):
            urls = [f"{base}/fanout/{b * r + i}/{n}" for i in range(r)]
            ok += sum(1 for s in pool.map(get, urls) if s == 200)
    print("ok", ok, f"{time.monotonic() - start:.3f}", flush=True)


if __name__ == "__main__":
    main()
