#!/usr/bin/env python3
"""Kernel-side cost per request, program by program, of one or more agent
builds: the eBPF run time the kernel accounts to each obi program
(kernel.bpf_stats_enabled) divided by the requests served meanwhile.

Three situations per server:
  traced    the agent instruments the server (OTEL_EBPF_OPEN_PORT=its port)
  untraced  the agent runs but instruments something else: what a process
            that is not traced pays for the agent's hooks
  none      no agent (once per server, not per build): the baseline

Besides the BPF run time (which the kernel accounts to the program a hook
runs, so a tail-called handler counts under its dispatcher, and which misses
the tracepoint machinery around the program), each run reports the server's
own CPU time per request (user + system, all its processes: this includes
every cost the agent adds to the app) and the agent's CPU time per request.

Servers: nginx (1 worker, epoll) and Node.js (event loop), 1 KiB responses,
closed-loop wrk load with keep-alive connections; server on CPU 0, wrk on CPU 1.
Go servers (the Go test apps, crates/obi/tests/apps, built with --goroot):
  go          go_fanout.go answering "leaf" (no outgoing call)
  go-fanout   go_fanout.go making 2 net/http calls per request to a leaf
  go-grpc     go_grpc_fanout making 2 grpc-go calls per request (one HTTP/2
              connection) to a leaf
The leaves (copies of the apps, not traced) run on CPU 1 with wrk; only the
front's CPU is counted. The obi_go_* programs are the Go uprobes: their runs
per request are the uprobe hits.
Builds alternate run by run so drift hits each alike.

What the agent exports (--exporters, each a separate variant of every build):
  counter   the counter printer (one line per second on stdout, nothing else)
  prom      Prometheus /metrics on, scraped every 5 s, and the counter printer
  otlp      traces over OTLP/gRPC to bench/otlp_receiver.py (pinned to CPU 1
            with wrk), and the counter printer

Usage (root; needs bpftool, wrk, nginx, node; otlp needs bench/setup.sh's venv):
  bench/kernel_cost.py --agent NEW [--agent OLD ...] [--reps 3] [--duration 8]
                       [--servers nginx,node,go,go-fanout,go-grpc] [--goroot /usr/lib/go-1.23]
                       [--exporters counter,prom,otlp] [--rate N] [--out FILE.md]
--rate paces the load (bench/wrk.lua) instead of saturating the server. The
agent's RSS (VmRSS, and its anonymous part) is read at the end of the load.
Each --agent is LABEL=PATH or PATH (label = path). Ring-buffer drops are read
from the agent's totals line at exit.
"""
import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def nginx(workdir, port):
    root = workdir / f"nginx-{port}"
    (root / "www").mkdir(parents=True, exist_ok=True)
    (root / "www" / "index.html").write_bytes(b"x" * 1023 + b"\n")
    conf = root / "nginx.conf"
    conf.write_text(f"""user root;
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {root}/b; proxy_temp_path {root}/p; fastcgi_temp_path {root}/f;
    uwsgi_temp_path {root}/u; scgi_temp_path {root}/s;
    keepalive_requests 100000000;
    server {{ listen 127.0.0.1:{port}; root {root}/www; }}
}}
""")
    return ["nginx", "-p", str(root), "-c", str(conf)]


def node(_workdir, port):
    return ["node", str(HERE / "apps" / "node_app.js"), str(port)]


APPS = HERE.parent / "crates" / "obi" / "tests" / "apps"
GOROOT = "/usr/lib/go-1.23"
_built = {}
_leaves = {}


def go_binary(script, workdir):
    """The Go test app built by `script` with GOROOT (once per run)."""
    if script not in _built:
        out = workdir / script.replace(".sh", "")
        subprocess.run([str(APPS / script), GOROOT, "-s -w", str(out)], check=True)
        _built[script] = out
    return _built[script]


def go_leaf(script, workdir, args):
    """Port of a leaf server (a copy of the app, untraced, on CPU 1), started once."""
    if script not in _leaves:
        port = free_port()
        leaf = workdir / (script + ".leaf")
        shutil.copy(go_binary(script, workdir), leaf)
        proc = subprocess.Popen(["taskset", "-c", "1", str(leaf), "-listen", f"127.0.0.1:{port}"] + args,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(port)
        _leaves[script] = (proc, port)
    return _leaves[script][1]


def go(workdir, port):
    return [str(go_binary("build_go.sh", workdir)), "-listen", f"127.0.0.1:{port}"]


def go_fanout(workdir, port):
    leaf = go_leaf("build_go.sh", workdir, [])
    return go(workdir, port) + ["-calls", f"http://127.0.0.1:{leaf}/leaf", "-n", "2"]


def go_grpc(workdir, port):
    leaf = go_leaf("build_go_grpc.sh", workdir, ["-leaf"])
    return [str(go_binary("build_go_grpc.sh", workdir)), "-listen", f"127.0.0.1:{port}",
            "-grpc", f"127.0.0.1:{leaf}"]


SERVERS = {"nginx": nginx, "node": node, "go": go, "go-fanout": go_fanout, "go-grpc": go_grpc}
# What wrk requests, when not "/".
PATHS = {"go-grpc": "/fanout/bench/2?via=grpc"}


def prog_ids(pid):
    """Ids of the eBPF programs process `pid` holds (from its fds' fdinfo)."""
    ids = set()
    fdinfo = Path(f"/proc/{pid}/fdinfo")
    for f in fdinfo.iterdir():
        try:
            for line in f.read_text().splitlines():
                if line.startswith("prog_id:"):
                    ids.add(int(line.split()[1]))
        except OSError:
            pass
    return ids


def bpf_stats(ids):
    """{program name: (run_time_ns, run_cnt)} of the programs with these ids
    (other agents running on the machine have programs of the same names)."""
    out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True, check=True).stdout
    stats = defaultdict(lambda: [0, 0])
    for p in json.loads(out):
        name = p.get("name", "")
        if p.get("id") in ids:
            stats[name][0] += p.get("run_time_ns", 0)
            stats[name][1] += p.get("run_cnt", 0)
    return stats


def cpu_seconds(pid):
    """User + system CPU seconds of process `pid` and all its descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            pass
    return total


RATE = 0  # requests/s of the paced load (--rate); 0: closed loop


def wrk(port, duration, conns=50, path="/"):
    paced = ["-s", str(HERE / "wrk.lua")] if RATE else []
    args = ["--", str(RATE), "1"] if RATE else []
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", f"-c{conns}", f"-d{duration}s"] + paced
        + [f"http://127.0.0.1:{port}{path}"] + args,
        capture_output=True, text=True, check=True,
    ).stdout
    m = re.search(r"(\d+) requests in", out)
    return int(m.group(1))


VENV_PY = HERE / ".venv" / "bin" / "python"


class Exporter:
    """The environment and helpers one exporter variant needs."""

    def __init__(self, kind):
        self.kind, self.receiver, self.scraper, self.stop = kind, None, None, threading.Event()
        self.env = {"OTEL_EBPF_TRACE_PRINTER": "counter"}
        if kind == "prom":
            self.port = free_port()
            self.env["OTEL_EBPF_PROMETHEUS_PORT"] = str(self.port)
        elif kind == "otlp":
            grpc_port, http_port = free_port(), free_port()
            self.receiver = subprocess.Popen(
                ["taskset", "-c", "1", str(VENV_PY), str(HERE / "otlp_receiver.py"),
                 "--grpc-port", str(grpc_port), "--http-port", str(http_port)],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            if "ready" not in self.receiver.stdout.readline():
                raise RuntimeError("otlp_receiver.py did not start")
            self.env.update({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://127.0.0.1:{grpc_port}",
                             "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"})
        elif kind != "counter":
            raise SystemExit(f"kernel_cost.py: unknown exporter {kind!r} (counter, prom, otlp)")

    def scrape_while_running(self):
        if self.kind != "prom":
            return

        def scrape():
            while not self.stop.wait(5):
                subprocess.run(["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{self.port}/metrics"])

        self.stop.clear()
        threading.Thread(target=scrape, daemon=True).start()

    def close(self):
        self.stop.set()
        if self.receiver:
            self.receiver.terminate()
            self.receiver.wait(timeout=10)


def rss_mib(pid):
    """(VmRSS, RssAnon) of process `pid`, MiB. VmRSS counts the event ring buffer's data pages twice (the
    kernel maps them twice, for reads across the wrap-around): 2 x its size."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "RssAnon"):
            fields[k] = int(v.split()[0]) / 1024
    return fields.get("VmRSS", 0.0), fields.get("RssAnon", 0.0)


def start_agent(agent, env, on_line=None):
    """The agent running with `env`, once it says it started; its output (logs and the counter printer) is
    read by a thread that hands every line to `on_line`."""
    ag = subprocess.Popen([agent], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    started = threading.Event()

    def drain():
        for line in ag.stdout:
            if "obi-rs started" in line:
                started.set()
            if on_line:
                on_line(line)

    threading.Thread(target=drain, daemon=True).start()
    if not started.wait(90):
        ag.kill()
        raise RuntimeError(f"{agent} did not start")
    return ag


def run_once(agent, server, situation, duration, workdir, exporter="counter"):
    """(requests, {program: (ns/request, runs/request)}, server CPU us/request, agent CPU us/request,
    ring-buffer drops, agent (VmRSS, RssAnon) MiB at the end of the load)"""
    port = free_port()
    srv = subprocess.Popen(["taskset", "-c", "0"] + SERVERS[server](workdir, port),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    path = PATHS.get(server, "/")
    try:
        wait_port(port)
        if situation == "none":
            wrk(port, 1, path=path)  # warm-up
            cpu0 = cpu_seconds(srv.pid)
            requests = wrk(port, duration, path=path)
            return requests, {}, (cpu_seconds(srv.pid) - cpu0) * 1e6 / requests, 0.0, 0, (0.0, 0.0)
        target = port if situation == "traced" else free_port()
        exp = Exporter(exporter)
        env = dict(os.environ, OTEL_EBPF_OPEN_PORT=str(target), **exp.env)
        # Logs and the counter printer share the agent's output here.
        drops = []

        def on_line(line):
            m = re.search(r"msg=totals .*ringbuf_full=(\d+)", line)
            if m:
                drops.append(int(m.group(1)))

        try:
            ag = start_agent(agent, env, on_line)
        except RuntimeError:
            exp.close()
            raise
        try:
            time.sleep(3 if situation == "traced" else 1)  # discovery
            wrk(port, 1, path=path)  # warm-up
            ids = prog_ids(ag.pid)
            before = bpf_stats(ids)
            exp.scrape_while_running()
            cpu0, agent0 = cpu_seconds(srv.pid), cpu_seconds(ag.pid)
            requests = wrk(port, duration, path=path)
            server_us = (cpu_seconds(srv.pid) - cpu0) * 1e6 / requests
            agent_us = (cpu_seconds(ag.pid) - agent0) * 1e6 / requests
            rss = rss_mib(ag.pid)
            after = bpf_stats(ids)
        finally:
            ag.send_signal(2)
            ag.wait(timeout=30)
            exp.close()
    finally:
        srv.terminate()
        srv.wait(timeout=10)
    per_prog = {}
    for name, (ns, cnt) in after.items():
        b_ns, b_cnt = before.get(name, (0, 0))
        per_prog[name] = ((ns - b_ns) / requests, (cnt - b_cnt) / requests)
    time.sleep(0.2)  # the drain thread reads the totals line
    return requests, per_prog, server_us, agent_us, sum(drops), rss


def main():
    global GOROOT
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agent", action="append", required=True)
    ap.add_argument("--servers", default="nginx,node")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--exporters", default="counter")
    ap.add_argument("--goroot", default=GOROOT, help="Go toolchain of the Go servers")
    ap.add_argument("--rate", type=int, default=0,
                    help="paced load at this many requests/s (bench/wrk.lua); 0 (default): closed loop, saturation")
    ap.add_argument("--no-bpf-stats", action="store_true",
                    help="leave kernel.bpf_stats_enabled off: the accounting costs two clock reads per program "
                         "run, which inflates the server's CPU figures, the more the more programs run")
    ap.add_argument("--out")
    args = ap.parse_args()
    global RATE
    RATE = args.rate
    for tool in ["bpftool", "wrk", "taskset"]:
        if not shutil.which(tool):
            sys.exit(f"kernel_cost.py: {tool} not found (bench/setup.sh installs it)")
    agents = [(a.split("=", 1) if "=" in a else (a, a)) for a in args.agent]
    GOROOT = args.goroot
    subprocess.run(["sysctl", "-qw", f"kernel.bpf_stats_enabled={0 if args.no_bpf_stats else 1}"], check=True)
    results = defaultdict(list)  # (server, situation, label) -> [(requests, per_prog)]
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            for server in args.servers.split(","):
                exporters = args.exporters.split(",")
                runs = [("none", "-", None, "-")] + [
                    (sit, label, path, exp) for sit in ["traced", "untraced"] for label, path in agents
                    for exp in (exporters if sit == "traced" else exporters[:1])]
                # Every other repetition in reverse order, so drift hits each alike.
                for situation, label, path, exp in runs if rep % 2 == 0 else reversed(runs):
                    r = run_once(path, server, situation, args.duration, Path(tmp), exp)
                    results[(server, situation, label, exp)].append(r)
                    total = sum(ns for ns, _ in r[1].values())
                    print(f"rep {rep} {server:5} {situation:8} {label:10} {exp:7} {r[0]:8} req  {total:7.0f} BPF "
                          f"ns/req  server {r[2]:6.2f} us/req  agent {r[3]:6.2f} us/req  drops {r[4]}  "
                          f"RSS {r[5][0]:.1f} MiB (anon {r[5][1]:.1f})", flush=True)
        for proc, _ in _leaves.values():
            proc.terminate()
    subprocess.run(["sysctl", "-qw", "kernel.bpf_stats_enabled=0"], check=True)

    lines = ["| server | situation | build | exporter | req/s | server CPU µs/request | agent CPU µs/request "
             "| ring drops | agent RSS MiB (anon) | BPF ns/request (total) | Go uprobes: hits/request (ns/request) "
             "| top programs (ns/request, runs/request) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (server, situation, label, exp), runs in results.items():
        drops = sum(r[4] for r in runs)
        progs = defaultdict(lambda: [0.0, 0.0])
        server_us = sum(r[2] for r in runs) / len(runs)
        agent_us = sum(r[3] for r in runs) / len(runs)
        rss = max(r[5][0] for r in runs)
        anon = max(r[5][1] for r in runs)
        for _, per, *_ in runs:
            for name, (ns, cnt) in per.items():
                progs[name][0] += ns / len(runs)
                progs[name][1] += cnt / len(runs)
        total = sum(v[0] for v in progs.values())
        rate = sum(r[0] for r in runs) / len(runs) / args.duration
        top = sorted(progs.items(), key=lambda kv: -kv[1][0])[:6]
        tops = ", ".join(f"{n} {v[0]:.0f} ({v[1]:.2f})" for n, v in top if v[1] > 0)
        go_progs = [v for n, v in progs.items() if n.startswith("obi_go_")]
        go_cost = f"{sum(v[1] for v in go_progs):.2f} ({sum(v[0] for v in go_progs):.0f})" if go_progs else "-"
        lines.append(f"| {server} | {situation} | {label} | {exp} | {rate:,.0f} | {server_us:.2f} | {agent_us:.2f} "
                     f"| {drops} | {rss:.1f} ({anon:.1f}) | {total:.0f} | {go_cost} | {tops} |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n")


if __name__ == "__main__":
    main()
