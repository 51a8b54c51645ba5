#!/usr/bin/env python3
"""A TCP server that speaks no protocol: it reads each connection until the
peer closes (or resets) it, then closes it, one connection at a time.

Usage: sink_server.py PORT   (prints "ready PORT")
"""
import socket
import sys


def main():
    port = int(sys.argv[1])
    lst = socket.socket()
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind(("127.0.0.1", port))
    lst.listen(1024)
    print("ready", port, flush=True)
    while True:
        conn, _ = lst.accept()
        try:
            while conn.recv(4096):
                pass
        except OSError:
            pass
        conn.close()


if __name__ == "__main__":
    main()
