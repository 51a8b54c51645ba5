"""pymemcache traffic for the memcached test: set, get, multi-get, a miss,
delete, incr on a non-number (an error) and a noreply set.

Usage: memcached_client.py PORT
Prints one line per step that the test checks, then "ok".
"""
import sys
import time

from pymemcache.client.base import Client
from pymemcache.exceptions import MemcacheClientError

port = int(sys.argv[1])
# Let the agent instrument this process before its first connection.
time.sleep(0.5)

c = Client(("127.0.0.1", port), default_noreply=False)
c.set("user:1", "alice")
c.set("user:2", "bob")
print("get", c.get("user:1").decode())
print("many", sorted(c.get_many(["user:1", "user:2", "user:3"])))
print("miss", c.get("nope"))
print("delete", c.delete("user:2"))
try:
    c.incr("user:1", 1)
except MemcacheClientError as e:
    print("error", e)
c.set("fire", "and forget", noreply=True)
print("after", c.get("fire").decode())
c.close()
print("ok", flush=True)
