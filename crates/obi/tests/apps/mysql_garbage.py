"""Malformed traffic to a MySQL server, next to one good connection.

Usage: mysql_garbage.py PORT PASSWORD   (starts once a line arrives on stdin)
"""

import socket
import sys

import pymysql

port, password = int(sys.argv[1]), sys.argv[2]
sys.stdin.readline()

db = pymysql.connect(host="127.0.0.1", port=port, user="obi", password=password, database="obi", autocommit=True)
with db.cursor() as cur:
    cur.execute("SELECT 1")
db.close()

# After the greeting, text where the login should be.
s = socket.create_connection(("127.0.0.1", port))
s.recv(4096)
s.sendall(b"GARBAGE\r\n")
s.settimeout(5)
try:
    s.recv(4096)
except OSError:
    pass
s.close()

# Binary noise before reading anything: not MySQL from its first byte.
s = socket.create_connection(("127.0.0.1", port))
s.sendall(bytes(range(7, 64)))
s.settimeout(5)
try:
    while s.recv(4096):
        pass
except OSError:
    pass
s.close()
print("ok", flush=True)
