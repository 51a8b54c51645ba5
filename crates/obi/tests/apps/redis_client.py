"""redis-py traffic for the Redis test: plain commands, an error, a
pipeline, a transaction, pub/sub and RESP3.

Usage: redis_client.py PORT
Prints one line per step that the test checks, then "ok".
"""
import sys
import time

import redis

port = int(sys.argv[1])
# Let the agent instrument this process before its first connection.
time.sleep(0.5)

r = redis.Redis(host="127.0.0.1", port=port, protocol=2, single_connection_client=True)
r.set("user:1", "alice")
print("get", r.get("user:1").decode())
try:
    r.incr("user:1")
except redis.ResponseError as e:
    print("error", e)
# 100 kB each way: far more than the agent captures per syscall.
r.set("big", "x" * 100_000)
print("big", len(r.get("big")))

pipe = r.pipeline(transaction=False)
for i in range(5):
    pipe.rpush("list", i)
print("pipeline", pipe.execute())

tx = r.pipeline(transaction=True)
tx.incr("counter")
tx.incr("counter")
print("transaction", tx.execute())

# Pub/sub: a subscriber connection and three messages published from ours.
sub = redis.Redis(host="127.0.0.1", port=port, protocol=2).pubsub()
sub.subscribe("news")
assert sub.get_message(timeout=5)["type"] == "subscribe"
for i in range(3):
    r.publish("news", f"m{i}")
got = [sub.get_message(timeout=5) for _ in range(3)]
print("messages", len([m for m in got if m and m["type"] == "message"]))

# RESP3 on its own connection: HELLO 3, then commands and a pushed invalidation.
r3 = redis.Redis(host="127.0.0.1", port=port, protocol=3, single_connection_client=True)
r3.set("k3", "v3")
print("resp3", r3.get("k3").decode())
sys.stdout.flush()
sub.close()
r3.close()
r.close()
print("ok", flush=True)
