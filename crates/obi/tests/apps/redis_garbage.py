"""Malformed and unknown traffic to a Redis port, between two good commands.

Usage: redis_garbage.py PORT
1. PING, then an array that is not a command (`*1 :5`): Redis answers with a
   protocol error and closes.
2. Text that is not RESP (Redis takes it for an unknown inline command).
3. Binary bytes that are not RESP (Redis does not answer).
4. PING on a fresh connection.
Prints "ok".
"""
import socket
import sys
import time

port = int(sys.argv[1])
time.sleep(0.5)


def exchange(sock, data):
    sock.sendall(data)
    return sock.recv(4096)


with socket.create_connection(("127.0.0.1", port)) as s:
    assert exchange(s, b"*1\r\n$4\r\nPING\r\n") == b"+PONG\r\n"
    assert exchange(s, b"*1\r\n:5\r\n").startswith(b"-ERR Protocol error")
with socket.create_connection(("127.0.0.1", port)) as s:
    assert exchange(s, b"garbage here\r\n").startswith(b"-ERR unknown command")
with socket.create_connection(("127.0.0.1", port)) as s:
    # Redis does not answer these; send and go.
    s.sendall(b"\x16\x03\x01\x00\x05hello\r\n")
with socket.create_connection(("127.0.0.1", port)) as s:
    assert exchange(s, b"*1\r\n$4\r\nPING\r\n") == b"+PONG\r\n"
print("ok", flush=True)
