"""asyncpg traffic for the PostgreSQL test: its statement cache (a query
prepared once, then bound and executed by name), executemany (many
Bind/Execute before one Sync), a transaction, an error and a pool of
connections used at once.

Usage: asyncpg_client.py PORT PASSWORD
Prints one line per step that the test checks, then "ok".
"""
import asyncio
import sys
import time

import asyncpg


async def main(port, password):
    dsn = dict(host="127.0.0.1", port=port, user="obi", password=password, database="postgres")
    conn = await asyncpg.connect(**dsn)
    # No arguments: the simple query protocol.
    await conn.execute("CREATE TABLE fruit (id int PRIMARY KEY, name text)")
    # With arguments: prepared (Parse/Describe), then Bind/Execute; the second
    # and third runs reuse the cached statement by name.
    for i in range(3):
        await conn.execute("INSERT INTO fruit (id, name) VALUES ($1, $2)", i, f"f{i}")
    row = await conn.fetchrow("SELECT name FROM fruit WHERE id = $1", 1)
    print("select", row["name"])
    # Four rows in one round trip.
    await conn.executemany("UPDATE fruit SET name = $1 WHERE id = $2", [("u", i) for i in range(4)])
    async with conn.transaction():
        await conn.execute("DELETE FROM fruit WHERE id = $1", 2)
    try:
        await conn.fetch("SELECT * FROM nope WHERE id = $1", 1)
    except asyncpg.exceptions.UndefinedTableError as e:
        print("error", e.sqlstate)
    await conn.close()
    # Eight queries at once over a pool of four connections.
    pool = await asyncpg.create_pool(min_size=4, max_size=4, **dsn)
    counts = await asyncio.gather(*(pool.fetchval("SELECT count(*) FROM fruit WHERE id >= $1", i) for i in range(8)))
    print("counts", sum(counts))
    await pool.close()


port, password = int(sys.argv[1]), sys.argv[2]
# Let the agent instrument this process before its first connection.
time.sleep(0.5)
asyncio.run(main(port, password))
print("ok", flush=True)
