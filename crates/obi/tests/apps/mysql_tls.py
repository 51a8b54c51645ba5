"""PyMySQL over TLS (the system libssl, which the agent probes).

Usage: mysql_tls.py PORT PASSWORD CA   (starts once a line arrives on stdin)
"""

import sys

import pymysql

port, password, ca = int(sys.argv[1]), sys.argv[2], sys.argv[3]
sys.stdin.readline()

db = pymysql.connect(
    host="127.0.0.1",
    port=port,
    user="obi",
    password=password,
    database="obi",
    autocommit=True,
    ssl={"ca": ca, "check_hostname": False},
)
with db.cursor() as cur:
    cur.execute("SHOW STATUS LIKE 'Ssl_cipher'")
    print("cipher", bool(cur.fetchone()[1]), flush=True)
    try:
        cur.execute("SELECT 1 FROM nope")
    except pymysql.err.ProgrammingError as e:
        print("error", e.args[0], flush=True)
db.close()
print("ok", flush=True)
