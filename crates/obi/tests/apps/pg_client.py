"""psycopg traffic for the PostgreSQL test: simple and extended protocol,
prepared statements, a pipeline, COPY, errors and a password change.

Usage: pg_client.py PORT PASSWORD [--ssl]
--ssl: the connection is encrypted (sslmode=require), with psycopg-binary's
own libpq and OpenSSL.
Prints one line per step that the test checks, then "ok".
"""
import sys
import time

import psycopg

port, password = int(sys.argv[1]), sys.argv[2]
# Let the agent instrument this process before its first connection.
time.sleep(0.5)

sslmode = "require" if "--ssl" in sys.argv[3:] else "disable"
conn = psycopg.connect(
    host="127.0.0.1", port=port, user="obi", password=password, dbname="postgres", autocommit=True, sslmode=sslmode
)
print("ssl", conn.info.pgconn.ssl_in_use)
cur = conn.cursor()
# Simple query protocol: no parameters, two statements.
cur.execute("CREATE TABLE items (id int PRIMARY KEY, name text); CREATE INDEX items_name ON items (name)")
# Extended protocol: parameters bound server-side.
cur.execute("INSERT INTO items (id, name) VALUES (%s, %s)", (1, "apple"))
cur.execute("SELECT name FROM items WHERE id = %s", (1,))
print("select", cur.fetchone()[0])
try:
    cur.execute("SELECT * FROM nope WHERE id = %s", (1,))
except psycopg.errors.UndefinedTable as e:
    print("error", e.sqlstate)
# A named prepared statement, parsed once and executed three times.
for i in range(3):
    cur.execute("UPDATE items SET name = %s WHERE id = %s", (f"v{i}", 1), prepare=True)
# Pipeline mode: four statements sent before any result is read.
with conn.pipeline():
    for i in range(2, 5):
        cur.execute("INSERT INTO items (id, name) VALUES (%s, %s)", (i, f"n{i}"))
    cur.execute("DELETE FROM items WHERE id = %s", (4,))
with cur.copy("COPY items (id, name) FROM STDIN") as copy:
    for i in range(10, 13):
        copy.write_row((i, f"c{i}"))
cur.execute("SELECT count(*) FROM items")
print("count", cur.fetchone()[0])
cur.execute(f"ALTER ROLE obi PASSWORD '{password}'")
conn.close()
print("ok", flush=True)
