#!/usr/bin/env python3
"""asyncio test server (aiohttp) for the parent audit: one event loop serves
every request and makes every outgoing call.

  /fanout/<id>/<n>?base=B   GETs B/leaf/<id>/<k> for k < n, concurrently
  /leaf/...                 200

Usage: aiohttp_server.py PORT   (prints "ready PORT" when listening)
"""
import asyncio
import sys

from aiohttp import ClientSession, TCPConnector, web


async def fanout(request):
    ident, n = request.match_info["id"], int(request.match_info["n"])
    base = request.query["base"]
    session = request.app["client"]

    async def get(k):
        async with session.get("%s/leaf/%s/%d" % (base, ident, k)) as r:
            await r.read()
            return r.status

    statuses = await asyncio.gather(*(get(k) for k in range(n)))
    ok = sum(1 for s in statuses if s == 200)
    return web.Response(text="fanout %d/%d\n" % (ok, n))


async def leaf(request):
    return web.Response(text="leaf\n")


async def main():
    port = int(sys.argv[1])
    app = web.Application()
    app["client"] = ClientSession(connector=TCPConnector(limit=0))
    app.router.add_get("/fanout/{id}/{n}", fanout)
    app.router.add_get("/leaf/{tail:.*}", leaf)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    print("ready", port, flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
