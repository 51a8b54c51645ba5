"""MySQL/MariaDB client of the MySQL integration test: PyMySQL (statements
sent as COM_QUERY, parameters substituted by the client) and
mysql-connector-python's prepared cursor (COM_STMT_PREPARE / EXECUTE).

Usage: mysql_client.py PORT PASSWORD
Connects once a line arrives on stdin (the test waits until the agent
instruments this process, so every connection is seen from its greeting).
"""

import sys

import mysql.connector
import pymysql

port, password = int(sys.argv[1]), sys.argv[2]
sys.stdin.readline()

# PyMySQL: plain queries.
db = pymysql.connect(host="127.0.0.1", port=port, user="obi", password=password, database="obi", autocommit=True)
with db.cursor() as cur:
    cur.execute("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(64))")
    cur.execute("INSERT INTO items (id, name) VALUES (%s, %s)", (1, "apple"))
    cur.execute("SELECT name FROM items WHERE id = %s", (1,))
    print("select", cur.fetchone()[0], flush=True)
    try:
        cur.execute("SELECT * FROM nope WHERE id = %s", (1,))
    except pymysql.err.ProgrammingError as e:
        print("error", e.args[0], flush=True)
    db.ping()
    db.select_db("obi")
    # Rows far beyond one read's capture: 5000 rows of the sequence engine.
    cur.execute("SELECT seq FROM seq_1_to_5000")
    print("rows", len(cur.fetchall()), flush=True)
    cur.execute("SELECT REPEAT('x', 100000)")
    print("big", len(cur.fetchone()[0]), flush=True)
db.close()

# mysql-connector-python: server-side prepared statements.
cx = mysql.connector.connect(
    host="127.0.0.1", port=port, user="obi", password=password, database="obi", use_pure=True, autocommit=True
)
cur = cx.cursor(prepared=True)
for i in range(2, 5):
    cur.execute("UPDATE items SET name = ? WHERE id = ?", ("pear", i))
cur.execute("SELECT count(*) FROM items WHERE name = ?", ("apple",))
print("count", cur.fetchone()[0], flush=True)
try:
    cur.execute("SELECT * FROM nope WHERE id = ?", (1,))
except mysql.connector.Error as e:
    print("error", e.errno, e.sqlstate, flush=True)
cur.close()
cx.close()
print("ok", flush=True)
