#!/usr/bin/env python3
"""Soak: do the kernel tables and the agent's memory come back down?

Runs the agent for a while against three traced servers (the integration
tests' apps) with steady churn, then stops the traffic and checks that every
per-connection and per-process kernel table is back near empty and that the
agent's RSS stayed flat (issue #20, "maps never fill for good"):

  - HTTP connection churn: a new connection per request to a threaded server;
  - non-HTTP churn: connections to a server that speaks no protocol, reset by
    the client (what filled `ignored_conns` before);
  - forking: a ForkingMixIn server, a process per connection.

Usage (root): bench/soak.py [--minutes 30] [--obi target/release/obi]
Prints one line a minute (RSS, table sizes, requests) and a verdict; exits
non-zero when a table stayed full or RSS grew more than --rss-growth-mib over
the second half of the run. Table sizes come from `bpftool map dump` (the
tables are LRU hashes: their size is what is in them now).
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = ROOT / "crates/obi/tests/apps"
# The tables that hold per-connection, per-thread or per-process state.
TABLES = ["traced_pids", "conn_state", "ignored_conns", "pending_io", "server_traces", "mux_threads",
          "h2_state", "arrivals", "tls_state", "outgoing_tp", "connecting"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd, ready="ready"):
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline()
    if ready not in line:
        raise SystemExit(f"{cmd} did not start: {line!r}")
    return p


def agent_map_ids(pid):
    """The ids of the BPF maps the agent holds, from its fds' fdinfo (so other
    agents running meanwhile, such as a test suite's, do not count)."""
    ids = set()
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            info = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
        except OSError:
            continue
        for line in info.splitlines():
            if line.startswith("map_id:"):
                ids.add(int(line.split()[1]))
    return ids


def table_sizes(pid):
    """Entries in each of the agent's tables."""
    out = {}
    for map_id in sorted(agent_map_ids(pid)):
        show = subprocess.run(["bpftool", "-j", "map", "show", "id", str(map_id)], capture_output=True, text=True)
        try:
            name = json.loads(show.stdout).get("name")
        except json.JSONDecodeError:
            continue
        if name not in TABLES:
            continue
        r = subprocess.run(["bpftool", "-j", "map", "dump", "id", str(map_id)], capture_output=True, text=True)
        try:
            out[name] = len(json.loads(r.stdout or "[]"))
        except json.JSONDecodeError:
            continue
    return out


def rss_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Load:
    def __init__(self, http_port, sink_port, fork_port):
        self.stop = threading.Event()
        self.counts = {"http": 0, "sink": 0, "fork": 0, "errors": 0}
        self.lock = threading.Lock()
        self.jobs = [
            (self.http, http_port, 0.01),
            (self.sink, sink_port, 0.01),
            (self.http, fork_port, 0.1, "fork"),
        ]

    def count(self, what):
        with self.lock:
            self.counts[what] += 1

    def http(self, port, kind="http"):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status/200", timeout=10) as r:
            r.read()
        self.count(kind)

    def sink(self, port, _kind=None):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"\x00\x01 not a protocol \xff" * 4)
        # Reset, not a clean close: the peer closes before user space marks it.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()
        self.count("sink")

    def run_job(self, fn, port, pause, kind=None):
        while not self.stop.is_set():
            try:
                fn(port, kind) if kind else fn(port)
            except OSError:
                self.count("errors")
            time.sleep(pause)

    def start(self):
        self.threads = [threading.Thread(target=self.run_job, args=job, daemon=True) for job in self.jobs]
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=15)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--obi", default=str(ROOT / "target/release/obi"))
    ap.add_argument("--rss-growth-mib", type=float, default=4.0)
    ap.add_argument("--settle-seconds", type=int, default=90,
                    help="quiet time before the final table check (idle connections expire)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("soak.py: run as root")

    http_port, sink_port, fork_port = free_port(), free_port(), free_port()
    servers = [
        start([sys.executable, str(APPS / "http_server.py"), str(http_port)]),
        start([sys.executable, str(APPS / "sink_server.py"), str(sink_port)]),
        start([sys.executable, str(APPS / "forking_server.py"), str(fork_port), "fork"]),
    ]
    env = dict(os.environ, OTEL_EBPF_OPEN_PORT=f"{http_port},{sink_port},{fork_port}",
               OTEL_EBPF_TRACE_PRINTER="counter", OTEL_EBPF_LOG_LEVEL="info")
    log = open("/tmp/obi-soak-agent.log", "w")
    agent = subprocess.Popen([args.obi], env=env, stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.time() + 120
    while "obi-rs started" not in Path("/tmp/obi-soak-agent.log").read_text():
        if time.time() > deadline or agent.poll() is not None:
            raise SystemExit("soak.py: the agent did not start (see /tmp/obi-soak-agent.log)")
        time.sleep(0.5)
    time.sleep(3)  # discovery picks the servers up
    base = table_sizes(agent.pid)
    print(f"soak: {args.minutes} min; tables at start {base}", flush=True)

    load = Load(http_port, sink_port, fork_port)
    load.start()
    samples = []
    t0 = time.time()
    try:
        while time.time() - t0 < args.minutes * 60:
            time.sleep(min(60, args.minutes * 60))
            sizes = table_sizes(agent.pid)
            rss = rss_mib(agent.pid)
            samples.append((time.time() - t0, rss))
            print(f"soak: {int(time.time() - t0):5d}s rss={rss:.1f}MiB {load.counts} "
                  + " ".join(f"{k}={v}" for k, v in sizes.items()), flush=True)
    finally:
        load.finish()
    time.sleep(args.settle_seconds)
    end = table_sizes(agent.pid)
    rss_end = rss_mib(agent.pid)
    agent.send_signal(signal.SIGTERM)
    agent.wait(timeout=60)
    for s in servers:
        s.kill()
    totals = [l for l in Path("/tmp/obi-soak-agent.log").read_text().splitlines() if "msg=totals" in l]
    print(f"soak: after {args.settle_seconds}s quiet: rss={rss_end:.1f}MiB tables {end}", flush=True)
    if totals:
        print(f"soak: {totals[-1]}", flush=True)

    failed = []
    # Near empty: what the quiet servers and the agent itself still hold.
    for name, n in end.items():
        if n > base.get(name, 0) + 16:
            failed.append(f"{name} holds {n} entries after the quiet period (started with {base.get(name, 0)})")
    half = [rss for t, rss in samples if t >= args.minutes * 30]
    if len(half) >= 2 and half[-1] - half[0] > args.rss_growth_mib:
        failed.append(f"RSS grew {half[-1] - half[0]:.1f} MiB over the second half ({half[0]:.1f} -> {half[-1]:.1f})")
    if load.counts["http"] == 0 or load.counts["sink"] == 0 or load.counts["fork"] == 0:
        failed.append(f"no traffic of some kind: {load.counts}")
    print("soak: " + ("FAIL: " + "; ".join(failed) if failed else "ok"), flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
