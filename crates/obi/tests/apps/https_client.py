#!/usr/bin/env python3
"""HTTPS client (urllib, certificate checks off): GETs each URL once.

Usage: https_client.py URL [URL ...]   -> prints "<status> <bytes>" per URL, then "done"
"""
import ssl
import sys
import urllib.request


def main():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    for url in sys.argv[1:]:
        try:
            with urllib.request.urlopen(url, context=ctx, timeout=30) as r:
                print(r.status, len(r.read()), flush=True)
        except urllib.error.HTTPError as e:
            print(e.code, len(e.read()), flush=True)
    print("done", flush=True)


if __name__ == "__main__":
    main()
