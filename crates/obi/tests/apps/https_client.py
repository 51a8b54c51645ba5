#!/usr/bin/env python3
"""HTTPS client (urllib, certificate checks off): GETs each URL once.

Usage: https_client.py [--wait-ms N] URL [URL ...]
Prints "<status> <bytes>" per URL, then "done". --wait-ms sleeps first: TLS
probes are attached per process, which takes a few hundred milliseconds.
"""
import ssl
import sys
import time
import urllib.request


def main():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    urls = sys.argv[1:]
    if urls[:1] == ["--wait-ms"]:
        time.sleep(int(urls[1]) / 1000)
        urls = urls[2:]
    for url in urls:
        try:
            with urllib.request.urlopen(url, context=ctx, timeout=30) as r:
                print(r.status, len(r.read()), flush=True)
        except urllib.error.HTTPError as e:
            print(e.code, len(e.read()), flush=True)
    print("done", flush=True)


if __name__ == "__main__":
    main()
