#!/usr/bin/env python3
"""obi-rs benchmark harness: what the agent costs a real server, side by side with no agent and with the
OpenTelemetry zero-code SDKs, on one machine, in one run.

Run as root from the repository (after `sudo bench/setup.sh` and `cargo build --release`):

    sudo bench/.venv/bin/python bench/run.py --quick        # a few minutes
    sudo bench/.venv/bin/python bench/run.py                # the full set (about half an hour)
    sudo bench/.venv/bin/python bench/run.py --scenarios rate,sdk --duration 20 --reps 7

Every measurement is a wrk run against a server that stays up for the whole case. Within a case the
variants (no agent, obi, obi + metrics, the SDK) run one after the other and the order is reversed on every
other repetition (A B C, C B A, ...), so slow drift of the machine's load hits all of them alike. Each
variant's run is compared with the no-agent run of the same repetition; the report gives the median of
those ratios and their spread (min-max). See bench/README.md for what each number means.
"""
import argparse
import datetime
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
VENV_PY = HERE / ".venv" / "bin" / "python"
CLK_TCK = os.sysconf("SC_CLK_TCK")
SDK_FLUSH_S = 6.0  # both SDKs' batch span processors export at least every 5 s

# Variants. "none" is the baseline every other variant is compared with.
NONE, OBI, OBI_METRICS, SDK = "none", "obi", "obi+metrics", "sdk"
SERVICE = {OBI: "bench-obi", OBI_METRICS: "bench-obi", SDK: "bench-sdk"}


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------------------------------------------------
# /proc helpers


def cpu_ticks(pid):
    """utime + stime of one process (all its threads), in clock ticks; 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    # fields[0] is the state (field 3 of stat); utime and stime are fields 14 and 15.
    return int(fields[11]) + int(fields[12])


def process_tree(root):
    """The pid and every live descendant of it."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def tree_cpu_ticks(root):
    return sum(cpu_ticks(p) for p in process_tree(root))


def status_kb(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=2.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read()


def wait_http(url, timeout, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with status {proc.returncode}")
        try:
            if http_get(url, timeout=1.0)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not answering after {timeout}s")


def pinned(cpu):
    """preexec_fn: pin to one CPU (or none) and raise the open-file limit for 1,000 connections."""

    def fn():
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})

    return fn


def stop_process(proc, sig=signal.SIGTERM, timeout=10.0):
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# ---------------------------------------------------------------------------------------------------------
# Servers


class Server:
    """One app under test, listening on 127.0.0.1:port. `sdk` selects the zero-code SDK build of it."""

    kind = ""

    def __init__(self, workdir, cpu, receiver, sdk=False):
        self.workdir, self.cpu, self.receiver, self.sdk = workdir, cpu, receiver, sdk
        self.port = free_port()
        self.proc = None
        self.logfile = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/"

    def processes(self):
        """Number of processes the agent should pick up."""
        return 1

    def command(self):
        raise NotImplementedError

    def env(self):
        return dict(os.environ)

    def cwd(self):
        return self.workdir

    def start(self):
        name = f"{self.kind}{'-sdk' if self.sdk else ''}-{self.port}"
        self.logfile = open(self.workdir / f"{name}.log", "w")
        self.proc = subprocess.Popen(
            self.command(),
            cwd=self.cwd(),
            env=self.env(),
            stdout=self.logfile,
            stderr=subprocess.STDOUT,
            preexec_fn=pinned(self.cpu),
        )
        wait_http(self.url, 60, self.proc)
        return self

    def stop(self):
        stop_process(self.proc)
        if self.logfile:
            self.logfile.close()

    def sdk_env(self):
        env = dict(os.environ)
        env.update(
            {
                "OTEL_SERVICE_NAME": SERVICE[SDK],
                "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_METRICS_EXPORTER": "none",
                "OTEL_LOGS_EXPORTER": "none",
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://127.0.0.1:{self.receiver.grpc_port}",
                "OTEL_EXPORTER_OTLP_TRACES_INSECURE": "true",
            }
        )
        return env


class Nginx(Server):
    kind = "nginx"

    def __init__(self, workdir, cpu, receiver, workers=1):
        super().__init__(workdir, cpu, receiver)
        self.workers = workers
        self.root = workdir / f"nginx-{self.port}"

    def processes(self):
        return self.workers + 1  # the master and its workers

    def command(self):
        www = self.root / "www"
        www.mkdir(parents=True, exist_ok=True)
        (www / "index.html").write_bytes(b"x" * 1023 + b"\n")
        conf = self.root / "nginx.conf"
        r = self.root
        conf.write_text(
            f"""user root;
worker_processes {self.workers};
worker_rlimit_nofile 16384;
daemon off;
pid {r}/nginx.pid;
error_log {r}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {r}/tmp-body;
    proxy_temp_path {r}/tmp-proxy;
    fastcgi_temp_path {r}/tmp-fastcgi;
    uwsgi_temp_path {r}/tmp-uwsgi;
    scgi_temp_path {r}/tmp-scgi;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    server {{
        listen 127.0.0.1:{self.port} backlog=4096;
        root {r}/www;
    }}
}}
"""
        )
        return ["nginx", "-p", str(r), "-c", str(conf)]


class Flask(Server):
    kind = "flask"

    def command(self):
        app = [str(VENV_PY), str(HERE / "apps" / "flask_app.py"), str(self.port)]
        if self.sdk:
            return [str(HERE / ".venv" / "bin" / "opentelemetry-instrument")] + app
        return app

    def env(self):
        return self.sdk_env() if self.sdk else dict(os.environ)


class Node(Server):
    kind = "node"

    def command(self):
        app = [str(HERE / "apps" / "node_app.js"), str(self.port)]
        if self.sdk:
            return ["node", "--require", "@opentelemetry/auto-instrumentations-node/register"] + app
        return ["node"] + app

    def cwd(self):
        # --require resolves the package from bench/node/node_modules.
        return HERE / "node" if self.sdk else self.workdir

    def env(self):
        if not self.sdk:
            return dict(os.environ)
        env = self.sdk_env()
        # The default detector list includes cloud detectors that probe metadata addresses.
        env["OTEL_NODE_RESOURCE_DETECTORS"] = "env,host,os,process"
        return env


SERVERS = {"nginx": Nginx, "flask": Flask, "node": Node}


# ---------------------------------------------------------------------------------------------------------
# OTLP receiver and agent


class Receiver:
    def __init__(self, workdir):
        self.grpc_port, self.http_port = free_port(), free_port()
        self.logfile = open(workdir / "otlp_receiver.log", "w")
        self.proc = subprocess.Popen(
            [str(VENV_PY), str(HERE / "otlp_receiver.py"), "--grpc-port", str(self.grpc_port), "--http-port",
             str(self.http_port)],
            stdout=self.logfile,
            stderr=subprocess.STDOUT,
        )
        wait_http(f"http://127.0.0.1:{self.http_port}/counts", 30, self.proc)

    def counts(self):
        return json.loads(http_get(f"http://127.0.0.1:{self.http_port}/counts")[1])

    def reset(self):
        req = urllib.request.Request(f"http://127.0.0.1:{self.http_port}/reset", data=b"", method="POST")
        urllib.request.urlopen(req, timeout=2).read()

    def stop(self):
        stop_process(self.proc, signal.SIGINT)
        self.logfile.close()


LOGFMT = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')


def parse_logfmt(line):
    out = {}
    for k, v in LOGFMT.findall(line):
        out[k] = v[1:-1] if v.startswith('"') else v
    return out


class Agent:
    """target/release/obi selecting the app by port, exporting traces over OTLP/gRPC to the receiver."""

    def __init__(self, binary, workdir, server, receiver, metrics):
        self.binary, self.server, self.metrics = binary, server, metrics
        self.prom_port = free_port() if metrics else None
        self.log_path = workdir / f"obi-{time.monotonic_ns()}.log"
        self.env = dict(os.environ)
        self.env.update(
            {
                "OTEL_EBPF_OPEN_PORT": str(server.port),
                "OTEL_EBPF_TRACE_PRINTER": "disabled",
                "OTEL_SERVICE_NAME": SERVICE[OBI],
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://127.0.0.1:{receiver.grpc_port}",
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc",
            }
        )
        if metrics:
            self.env["OTEL_EBPF_PROMETHEUS_PORT"] = str(self.prom_port)
        self.proc = None
        self.scrapes = 0
        self.series = 0
        self._stop_scraping = threading.Event()
        self._scraper = None

    def start(self, timeout=30.0):
        self.logfile = open(self.log_path, "w")
        self.proc = subprocess.Popen([str(self.binary)], env=self.env, stdout=self.logfile, stderr=subprocess.STDOUT)
        want = self.server.processes()
        deadline = time.monotonic() + timeout
        while True:
            text = self.log_path.read_text()
            if text.count('msg="instrumenting process"') >= want:
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                stop_process(self.proc, signal.SIGKILL)
                raise RuntimeError(f"agent did not instrument {want} processes; log tail:\n{text[-2000:]}")
            time.sleep(0.05)
        time.sleep(0.3)  # uprobes on libssl are attached right after; let that settle
        if self.metrics:
            wait_http(f"http://127.0.0.1:{self.prom_port}/metrics", 10, self.proc)
        return self

    def start_scraping(self, interval):
        if not self.metrics:
            return

        def loop():
            while not self._stop_scraping.wait(interval):
                self.scrape()

        self._scraper = threading.Thread(target=loop, daemon=True)
        self._scraper.start()

    def scrape(self):
        try:
            _, body = http_get(f"http://127.0.0.1:{self.prom_port}/metrics", timeout=5)
        except OSError:
            return
        self.scrapes += 1
        self.series = sum(1 for line in body.decode().splitlines() if line and not line.startswith("#"))

    def cpu_ticks(self):
        return cpu_ticks(self.proc.pid)

    def kill_if_running(self):
        """After an error or an interrupt: never leave an agent attached."""
        if self.proc.poll() is None:
            self._stop_scraping.set()
            stop_process(self.proc, signal.SIGINT, timeout=30)

    def stop(self):
        """Stops the agent and returns its `msg=totals` line as a dict (empty if it never came)."""
        if self._scraper:
            self._stop_scraping.set()
            self._scraper.join()
            self.scrape()  # one at the end, so the series count reflects the whole run
        self.peak_rss_kb = status_kb(self.proc.pid, "VmHWM")
        self.end_rss_kb = status_kb(self.proc.pid, "VmRSS")
        stop_process(self.proc, signal.SIGINT, timeout=30)
        self.logfile.close()
        for line in self.log_path.read_text().splitlines():
            if "msg=totals" in line:
                return parse_logfmt(line)
        log(f"warning: no totals line from the agent (log {self.log_path})")
        return {}


def otlp_stat(totals, key):
    """A counter from the totals line's otlp_traces="exported=.. dropped=.." field."""
    m = re.search(rf"\b{key}=(\d+)", totals.get("otlp_traces", ""))
    return int(m.group(1)) if m else 0


# ---------------------------------------------------------------------------------------------------------
# Load


def run_wrk(url, conns, duration, rate, cpu):
    threads = 1 if cpu is not None else 2
    threads = min(threads, conns)
    cmd = ["wrk", "-t", str(threads), "-c", str(conns), "-d", f"{duration}s", "--timeout", "5s",
           "-s", str(HERE / "wrk.lua"), url, "--", str(rate), str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=pinned(cpu), check=False)
    for line in out.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line[len("BENCH_JSON "):])
    raise RuntimeError(f"wrk gave no result (status {out.returncode}):\n{out.stdout}\n{out.stderr}")


# ---------------------------------------------------------------------------------------------------------
# Cases


@dataclass
class Case:
    group: str  # main | conns | rate | procs | sdk
    server: str  # nginx | flask | node
    conns: int
    rate: int = 0  # requests/s; 0 = closed loop
    workers: int = 1  # nginx worker processes
    variants: list = field(default_factory=lambda: [NONE, OBI])

    @property
    def scenario(self):
        s = self.server
        if self.server == "nginx":
            s += f" ({self.workers} worker{'s' if self.workers > 1 else ''})"
        return s

    @property
    def load(self):
        if self.rate:
            return f"{self.rate} req/s paced, {self.conns} conns"
        return f"closed loop, {self.conns} conns"

    @property
    def key(self):
        return f"{self.group}/{self.server}/w{self.workers}/c{self.conns}/r{self.rate}"


def build_cases(args):
    groups = set(args.scenarios.split(","))
    unknown = groups - {"main", "conns", "rate", "procs", "sdk"}
    if unknown:
        sys.exit(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    cases = []
    if "main" in groups:
        for server in ["nginx", "node", "flask"]:
            conns = args.flask_conns if server == "flask" else args.main_conns
            cases.append(Case("main", server, conns, variants=[NONE, OBI, OBI_METRICS]))
    if "rate" in groups:
        for rate in args.rates:
            cases.append(Case("rate", "nginx", args.main_conns, rate=rate))
    if "conns" in groups:
        for c in args.conns:
            if not ("main" in groups and c == args.main_conns):
                cases.append(Case("conns", "nginx", c))
    if "procs" in groups:
        for n in args.procs:
            if not ("main" in groups and n == 1):
                cases.append(Case("procs", "nginx", args.main_conns, workers=n))
    if "sdk" in groups:
        for server, conns in (("flask", args.flask_conns), ("node", args.main_conns)):
            cases.append(Case("sdk", server, conns, variants=[NONE, OBI, SDK]))
    return cases


def sdk_available(server):
    if server == "flask":
        return (HERE / ".venv" / "bin" / "opentelemetry-instrument").exists()
    if server == "node":
        return (HERE / "node" / "node_modules" / "@opentelemetry" / "auto-instrumentations-node").is_dir()
    return False


def run_case(case, args, workdir, receiver):
    """Runs every variant of one case `args.reps` times, alternating. Returns the list of run records."""
    variants = list(case.variants)
    if SDK in variants and not sdk_available(case.server):
        log(f"  {case.server}: SDK not installed (bench/setup.sh), SDK runs skipped")
        variants.remove(SDK)
    cls = SERVERS[case.server]
    plain = cls(workdir, args.server_cpu, receiver, **({"workers": case.workers} if case.server == "nginx" else {}))
    plain.start()
    servers = {NONE: plain, OBI: plain, OBI_METRICS: plain}
    sdk_server = None
    if SDK in variants:
        sdk_server = cls(workdir, args.server_cpu, receiver, sdk=True).start()
        servers[SDK] = sdk_server
    records = []
    try:
        for srv in {id(s): s for s in servers.values()}.values():
            run_wrk(srv.url, case.conns, args.warmup, 0, args.load_cpu)
        if sdk_server:
            time.sleep(SDK_FLUSH_S)  # let the warm-up's spans reach the receiver before counting starts
        for rep in range(args.reps):
            order = variants if rep % 2 == 0 else variants[::-1]
            for variant in order:
                rec = run_once(case, variant, servers[variant], args, workdir, receiver)
                rec["rep"] = rep
                records.append(rec)
                log(
                    f"  rep {rep + 1}/{args.reps} {variant:<12} {rec['rps']:>9.0f} req/s  p50 {rec['p50_us']:>6} us"
                    f"  p99 {rec['p99_us']:>6} us"
                    + (f"  agent {rec['agent_cpu_s']:.2f} s cpu, {rec['peak_rss_kb'] / 1024:.1f} MB" if rec.get(
                        "agent_cpu_s") is not None else "")
                    + (f"  spans {rec['spans']}" if variant != NONE else "")
                )
    finally:
        plain.stop()
        if sdk_server:
            sdk_server.stop()
    return records


def run_once(case, variant, server, args, workdir, receiver):
    agent = None
    receiver.reset()
    if variant in (OBI, OBI_METRICS):
        agent = Agent(args.agent, workdir, server, receiver, metrics=variant == OBI_METRICS).start()
        agent.start_scraping(args.scrape_interval)
    try:
        return measure(case, variant, server, args, receiver, agent)
    finally:
        if agent:
            agent.kill_if_running()


def measure(case, variant, server, args, receiver, agent):
    load_before = loadavg()[0]
    app0 = tree_cpu_ticks(server.proc.pid)
    agent0 = agent.cpu_ticks() if agent else 0
    rx0 = cpu_ticks(receiver.proc.pid)
    w = run_wrk(server.url, case.conns, args.duration, case.rate, args.load_cpu)
    app1 = tree_cpu_ticks(server.proc.pid)
    agent1 = agent.cpu_ticks() if agent else 0
    rx1 = cpu_ticks(receiver.proc.pid)
    rec = {
        "case": case.key,
        "group": case.group,
        "scenario": case.scenario,
        "load": case.load,
        "server": case.server,
        "conns": case.conns,
        "rate": case.rate,
        "workers": case.workers,
        "variant": variant,
        "requests": w["requests"],
        "duration_s": w["duration_us"] / 1e6,
        "rps": w["requests"] / (w["duration_us"] / 1e6),
        "p50_us": w["lat_p50_us"],
        "p99_us": w["lat_p99_us"],
        "errors": sum(v for k, v in w.items() if k.startswith("errors_")),
        "app_cpu_s": (app1 - app0) / CLK_TCK,
        # During the load only; SDK exports that arrive after the run are not in it.
        "receiver_cpu_s": (rx1 - rx0) / CLK_TCK,
        "loadavg_1m": load_before,
    }
    if agent:
        totals = agent.stop()
        rec.update(
            {
                "agent_cpu_s": (agent1 - agent0) / CLK_TCK,
                "peak_rss_kb": agent.peak_rss_kb,
                "end_rss_kb": agent.end_rss_kb,
                "kernel_events": int(totals.get("kernel_events", 0)),
                "ringbuf_full": int(totals.get("ringbuf_full", 0)),
                "agent_spans": int(totals.get("spans", 0)),
                "otlp_exported": otlp_stat(totals, "exported"),
                "otlp_dropped": otlp_stat(totals, "dropped"),
                "otlp_failed_requests": otlp_stat(totals, "failed_requests"),
                "scrapes": agent.scrapes,
                "metric_series": agent.series,
                "totals_ok": bool(totals),
            }
        )
    if variant == SDK:
        time.sleep(SDK_FLUSH_S)
    if variant != NONE:
        rec["spans"] = receiver.counts()["spans_by_service"].get(SERVICE[variant], 0)
    return rec


# ---------------------------------------------------------------------------------------------------------
# Summary, report, plot


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def summarize(records):
    """One row per (case, variant): medians over repetitions, ratios against the same repetition's baseline."""
    by_case = {}
    for r in records:
        by_case.setdefault(r["case"], []).append(r)
    rows = []
    for key, recs in by_case.items():
        base = {r["rep"]: r for r in recs if r["variant"] == NONE}
        variants = []
        for r in recs:
            if r["variant"] not in variants:
                variants.append(r["variant"])
        variants.sort(key=lambda v: [NONE, OBI, OBI_METRICS, SDK].index(v))
        for v in variants:
            runs = [r for r in recs if r["variant"] == v]
            paired = [(r, base[r["rep"]]) for r in runs if r["rep"] in base]
            ratios = [r["rps"] / b["rps"] for r, b in paired if b["rps"] > 0]
            row = {
                "case": key,
                "group": runs[0]["group"],
                "scenario": runs[0]["scenario"],
                "load": runs[0]["load"],
                "server": runs[0]["server"],
                "conns": runs[0]["conns"],
                "rate": runs[0]["rate"],
                "workers": runs[0]["workers"],
                "variant": v,
                "reps": len(runs),
                "rps": median([r["rps"] for r in runs]),
                "rps_ratio": median(ratios),
                "rps_ratio_min": min(ratios) if ratios else None,
                "rps_ratio_max": max(ratios) if ratios else None,
                "p50_us": median([r["p50_us"] for r in runs]),
                "p99_us": median([r["p99_us"] for r in runs]),
                "p50_added_us": median([r["p50_us"] - b["p50_us"] for r, b in paired]) if v != NONE else None,
                "p99_added_us": median([r["p99_us"] - b["p99_us"] for r, b in paired]) if v != NONE else None,
                "app_cpu_per_100k": median([r["app_cpu_s"] / r["requests"] * 1e5 for r in runs if r["requests"]]),
                "receiver_cpu_per_100k": median(
                    [r["receiver_cpu_s"] / r["requests"] * 1e5 for r in runs if r["requests"]]),
                "errors": sum(r["errors"] for r in runs),
                "loadavg_1m": median([r["loadavg_1m"] for r in runs]),
            }
            if v in (OBI, OBI_METRICS):
                # Counters from the totals line exist only when the agent stopped cleanly.
                ok = [r for r in runs if r.get("totals_ok")]
                row.update(
                    {
                        "agent_cpu_per_100k": median(
                            [r["agent_cpu_s"] / r["requests"] * 1e5 for r in runs if r["requests"]]),
                        "peak_rss_mb": max(r["peak_rss_kb"] or 0 for r in runs) / 1024,
                        "end_rss_mb": median([(r["end_rss_kb"] or 0) / 1024 for r in runs]),
                        "events_per_s": median([r["kernel_events"] / r["duration_s"] for r in ok]),
                        "drops": sum(r["ringbuf_full"] + r["otlp_dropped"] for r in ok) if ok else None,
                        "ringbuf_full": sum(r["ringbuf_full"] for r in ok) if ok else None,
                        "otlp_dropped": sum(r["otlp_dropped"] for r in ok) if ok else None,
                        "no_totals": len(runs) - len(ok),
                        "metric_series": max(r.get("metric_series", 0) for r in runs),
                    }
                )
            if v != NONE:
                row["spans_per_req"] = median([r["spans"] / r["requests"] for r in runs if r["requests"]])
            rows.append(row)
    return rows


def fmt(x, spec, dash="—"):
    return dash if x is None else format(x, spec)


def rss_cell(r):
    if r.get("peak_rss_mb") is None:
        return "—"
    return f"{r['peak_rss_mb']:.1f} ({r['end_rss_mb']:.1f})"


def signed(x, dash="—"):
    return dash if x is None else f"{x:+.0f}"


def target_checks(rows):
    """(target, measured, verdict) for each target in the issue."""

    def find(group, variant, **kw):
        for r in rows:
            if r["group"] == group and r["variant"] == variant and all(r[k] == v for k, v in kw.items()):
                return r
        return None

    checks = []
    r10k = find("rate", OBI, rate=10000)
    if r10k:
        ok = r10k["rps_ratio"] >= 0.97
        checks.append(("throughput kept ≥ 97 % at 10k req/s (nginx, paced)",
                       f"{r10k['rps_ratio'] * 100:.2f} % (min {r10k['rps_ratio_min'] * 100:.2f} %)",
                       "met" if ok else "NOT met"))
        ok = r10k["p99_added_us"] <= 50
        checks.append(("p99 added ≤ 50 µs at 10k req/s", f"{r10k['p99_added_us']:+.0f} µs (p50 {r10k['p50_added_us']:+.0f} µs)",
                       "met" if ok else "NOT met"))
    else:
        checks.append(("throughput / p99 at 10k req/s", "not measured (rate scenario not run)", "—"))
    rss = [r["peak_rss_mb"] for r in rows if r.get("peak_rss_mb")]
    if rss:
        checks.append(("agent RSS ≤ 40 MB", f"peak {max(rss):.1f} MB (VmHWM, worst run)",
                       "met" if max(rss) <= 40 else "NOT met"))
    r20k = find("rate", OBI, rate=20000)
    if r20k:
        lost = r20k["drops"]
        spans_ok = r20k["spans_per_req"] is not None and r20k["spans_per_req"] >= 0.999
        achieved = r20k["rps"]
        verdict = "met" if lost == 0 and spans_ok and achieved >= 0.97 * 20000 else (
            "NOT met" if lost or not spans_ok else "not reached")
        checks.append(("zero drops at 20k req/s",
                       f"{lost} dropped (ring full + OTLP queue), {r20k['spans_per_req']:.3f} spans/request, "
                       f"{achieved:.0f} req/s achieved", verdict))
    dropped = [r for r in rows if r.get("drops")]
    if dropped:
        checks.append(("zero drops anywhere (all cases)", "; ".join(
            f"{r['scenario']} {r['load']} {r['variant']}: {r['drops']} (ring full {r['ringbuf_full']}, "
            f"OTLP queue {r['otlp_dropped']}), {r['spans_per_req']:.3f} spans/request" for r in dropped), "NOT met"))
    for server in ("flask", "node"):
        o, s = find("sdk", OBI, server=server), find("sdk", SDK, server=server)
        if o and s:
            o_cost = (o["agent_cpu_per_100k"] or 0) + (o["app_cpu_per_100k"] or 0)
            s_cost = s["app_cpu_per_100k"] or 0
            ok = o["rps_ratio"] > s["rps_ratio"] and o_cost < s_cost
            checks.append((f"cost below the SDK's ({server})",
                           f"throughput kept {o['rps_ratio'] * 100:.1f} % (obi) vs {s['rps_ratio'] * 100:.1f} % (SDK); "
                           f"CPU app+agent {o_cost:.2f} vs {s_cost:.2f} s/100k req",
                           "met" if ok else "NOT met"))
    return checks


def write_report(meta, rows, records, out_md, png_name):
    lines = [
        f"# obi-rs benchmark — {meta['date']} on {meta['host']}",
        "",
        f"Mode: **{meta['mode']}** ({meta['reps']} repetitions × {meta['duration_s']} s per run, {meta['warmup_s']} s warm-up per server). "
        f"obi-rs commit `{meta['commit']}` (release build).",
        "",
        f"**Machine:** {meta['cpus']} vCPUs ({meta['cpu_model']}), kernel {meta['kernel']}. It is shared with noisy neighbours "
        f"(other engineers compile Rust on it): load average at start {meta['loadavg_start']}, at end {meta['loadavg_end']}; "
        f"1-minute load average during the runs: median {meta['loadavg_median']:.2f}, range {meta['loadavg_min']:.2f}–{meta['loadavg_max']:.2f}. "
        "Absolute numbers are noisy: read the ratios, each taken against the no-agent run of the same repetition.",
        "",
        f"**Placement:** {meta['placement']}",
        "",
        "**Load:** wrk 4.1 (closed loop: each connection sends its next request when the previous answer is in). "
        "\"Paced\" loads use `bench/wrk.lua`, which gives each wrk thread a send schedule at the target rate "
        "(wrk2's `-R` is not available here; `hey -q` would do the same but costs several times more CPU per request in the "
        "load generator, which on 2 cores is taken from the server). Latency is measured from the moment a request is sent, "
        "so in paced runs it excludes time spent waiting for a slot (coordinated omission is not corrected).",
        "",
        "**Variants:** `none` = the app alone; `obi` = the agent selecting the app by port, trace printer disabled, "
        "traces over OTLP/gRPC to the local receiver (`bench/otlp_receiver.py`); `obi+metrics` = the same plus the "
        f"Prometheus endpoint, scraped every {meta['scrape_interval_s']} s; `sdk` = the OpenTelemetry zero-code SDK in the app "
        "(Python: `opentelemetry-instrument` with the Flask instrumentation; Node.js: "
        "`@opentelemetry/auto-instrumentations-node/register`), exporting OTLP/gRPC to the same receiver with its default "
        "batch processor.",
        "",
        "## Results",
        "",
        "Medians over repetitions. *rps ratio* = variant req/s ÷ no-agent req/s of the same repetition, median [min–max]. "
        "*p50/p99 added* = variant minus no-agent latency, same pairing. *agent CPU* = obi's utime+stime during the load "
        "(/proc/PID/stat) per 100k requests; *app CPU* the same for the server's processes (it includes the kernel-side probe "
        "cost, which runs in the app's syscalls, and the in-process SDK's cost). *receiver CPU* = the local OTLP receiver's "
        "CPU during the load per 100k requests: it shares the 2 vCPUs, so it takes throughput from the app in every traced "
        "variant (obi and SDK alike); a real deployment sends to a collector elsewhere. *RSS* = obi's VmHWM (peak) over its whole life, worst run, and in brackets its VmRSS at the end of the load (median). "
        "*events/s* = kernel events written to the ring buffer per second of load. *drops* = ring buffer full + spans "
        "dropped by the OTLP exporter queue, summed over repetitions. *spans/req* = spans the receiver got per request wrk completed.",
        "",
        "| group | scenario | load | variant | req/s | rps ratio | p50 / p99 (µs) | p50 / p99 added (µs) | agent CPU s/100k | app CPU s/100k | receiver CPU s/100k | agent RSS MB peak (end) | events/s | drops | spans/req |",
        "|---|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ratio = "1 (baseline)" if r["variant"] == NONE else (
            f"{r['rps_ratio']:.3f} [{r['rps_ratio_min']:.3f}–{r['rps_ratio_max']:.3f}]" if r["rps_ratio"] else "—")
        lines.append(
            f"| {r['group']} | {r['scenario']} | {r['load']} | {r['variant']} | {r['rps']:.0f} | {ratio} | "
            f"{r['p50_us']:.0f} / {r['p99_us']:.0f} | {signed(r['p50_added_us'])} / {signed(r['p99_added_us'])} | "
            f"{fmt(r.get('agent_cpu_per_100k'), '.2f')} | {fmt(r['app_cpu_per_100k'], '.2f')} | "
            f"{fmt(r['receiver_cpu_per_100k'] if r['variant'] != NONE else None, '.2f')} | "
            f"{rss_cell(r)} | {fmt(r.get('events_per_s'), '.0f')} | {fmt(r.get('drops'), 'd')} | "
            f"{fmt(r.get('spans_per_req'), '.3f')} |"
        )
    errs = [r for r in rows if r["errors"]]
    if errs:
        lines += ["", "wrk reported errors (connect/read/write/timeout/non-2xx) in: " + ", ".join(
            f"{r['scenario']} {r['load']} {r['variant']} ({r['errors']})" for r in errs)]
    stuck = [r for r in rows if r.get("no_totals")]
    if stuck:
        lines += ["", "**The agent did not stop within 30 s of SIGINT** (killed, so no `msg=totals` line: events/s and "
                  "drops unknown) in: " + ", ".join(f"{r['scenario']} {r['load']} {r['variant']} "
                                                     f"({r['no_totals']} of {r['reps']} runs)" for r in stuck)]
    series = [r for r in rows if r.get("metric_series")]
    if series:
        lines += ["", "Prometheus series in the last scrape: " + ", ".join(
            f"{r['scenario']} {r['load']}: {r['metric_series']}" for r in series)]
    lines += ["", f"![throughput ratio vs load]({png_name})", "", "## Targets", "",
              "| target | measured | verdict |", "|---|---|---|"]
    for t, m, v in target_checks(rows):
        lines.append(f"| {t} | {m} | {v} |")
    lines += [
        "",
        "## Published anchors (shared/reference/test-partners.md, A.1 / A.1b)",
        "",
        "- Beyla/OBI: ~0.5 % CPU for the OTel demo at ~75 req/s; 75 MB RSS steady, 600 MB peak at start-up.",
        "- Coroot node-agent: 200 m CPU at 10k req/s ≈ 2 s CPU per 100k requests; DeepFlow: 1 core at 90k req/s ≈ 1.1 s per 100k.",
        "- Syscall tracepoint + ring-buffer record without wake-up: ~0.35–0.55 µs per syscall measured on this class of machine, "
        "so ~1–2 µs of kernel time per plain HTTP request (it shows in *app CPU* above, not in *agent CPU*).",
        "",
        "Raw per-run data: `" + out_md.with_suffix(".json").name + "`.",
        "",
    ]
    out_md.write_text("\n".join(lines))


def plot(rows, out_png, meta):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = []

    def series(pred, x_of):
        pts = sorted((x_of(r), r) for r in rows if pred(r))
        return [p[0] for p in pts], [p[1] for p in pts]

    nginx_closed = lambda r: r["server"] == "nginx" and r["rate"] == 0  # noqa: E731
    panels.append(("nginx, closed loop: connections", "connections",
                   lambda v: series(lambda r: nginx_closed(r) and r["workers"] == 1 and r["variant"] == v,
                                    lambda r: r["conns"]), True))
    panels.append(("nginx, paced: offered rate", "offered req/s",
                   lambda v: series(lambda r: r["server"] == "nginx" and r["rate"] > 0 and r["variant"] == v,
                                    lambda r: r["rate"]), False))
    panels.append(("nginx, closed loop: instrumented worker processes", "nginx workers",
                   lambda v: series(lambda r: nginx_closed(r) and r["conns"] == meta["main_conns"]
                                    and r["variant"] == v, lambda r: r["workers"]), True))
    fig, axes = plt.subplots(1, 4, figsize=(20, 4.8))
    colors = {OBI: "tab:blue", OBI_METRICS: "tab:orange", SDK: "tab:red"}
    for ax, (title, xlabel, get, logx) in zip(axes, panels):
        for v in (OBI, OBI_METRICS):
            xs, rs = get(v)
            if not xs:
                continue
            ys = [r["rps_ratio"] for r in rs]
            lo = [r["rps_ratio"] - r["rps_ratio_min"] for r in rs]
            hi = [r["rps_ratio_max"] - r["rps_ratio"] for r in rs]
            ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=4, label=v, color=colors[v])
        if not ax.lines:
            ax.text(0.5, 0.5, "not run", ha="center", va="center", transform=ax.transAxes, color="grey")
        elif logx:
            ax.set_xscale("log")
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.axhline(0.97, color="green", lw=0.8, ls="--", label="target 0.97")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("req/s ratio to no agent")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    ax = axes[3]
    sdk_rows = [r for r in rows if r["group"] == "sdk" and r["variant"] != NONE and r["rps_ratio"]]
    if sdk_rows:
        labels = [f"{r['server']}\n{r['variant']}" for r in sdk_rows]
        ys = [r["rps_ratio"] for r in sdk_rows]
        err = [[r["rps_ratio"] - r["rps_ratio_min"] for r in sdk_rows],
               [r["rps_ratio_max"] - r["rps_ratio"] for r in sdk_rows]]
        ax.bar(range(len(ys)), ys, yerr=err, capsize=4, color=[colors.get(r["variant"], "grey") for r in sdk_rows])
        ax.set_xticks(range(len(ys)), labels, fontsize=8)
        ax.axhline(0.97, color="green", lw=0.8, ls="--")
    else:
        ax.text(0.5, 0.5, "not run", ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_title("obi vs OpenTelemetry zero-code SDK (closed loop)", fontsize=10)
    ax.set_ylabel("req/s ratio to no agent")
    ax.set_ylim(0, 1.1)
    ax.grid(alpha=0.3, axis="y")
    fig.suptitle(f"obi-rs throughput kept — {meta['date']} {meta['host']} ({meta['cpus']} vCPUs, noisy neighbours; "
                 f"{meta['mode']}: {meta['reps']}×{meta['duration_s']} s; whiskers = min–max)", fontsize=11)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------------------


def machine_meta(args):
    cpu_model = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    if args.server_cpu is not None:
        placement = (f"server processes pinned to CPU {args.server_cpu}, wrk (1 thread) to CPU {args.load_cpu}; "
                     "the agent and the OTLP receiver are not pinned and share both CPUs with everything else, "
                     "as a node agent would.")
    else:
        placement = "nothing pinned (--no-pin); wrk uses 2 threads."
    return {
        "date": datetime.date.today().isoformat(),
        "host": socket.gethostname(),
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model,
        "kernel": platform.release(),
        "commit": commit + ("-dirty" if dirty else ""),
        "mode": "quick" if args.quick else "full",
        "reps": args.reps,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "scrape_interval_s": args.scrape_interval,
        "main_conns": args.main_conns,
        "placement": placement,
        "loadavg_start": " ".join(f"{x:.2f}" for x in loadavg()),
    }


def int_list(s):
    return [int(x) for x in s.split(",") if x]


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 repetitions of 4 s runs (a few minutes in all)")
    ap.add_argument("--scenarios", default="main,rate,conns,procs,sdk",
                    help="comma list of: main (nginx/node/flask, none vs obi vs obi+metrics), rate (paced nginx), "
                         "conns (connection scale), procs (instrumented-process scale), sdk (obi vs OTel SDKs)")
    ap.add_argument("--duration", type=int, help="seconds of load per run (default 15, quick 4)")
    ap.add_argument("--reps", type=int, help="repetitions of each variant (default 5, quick 2)")
    ap.add_argument("--warmup", type=int, default=2, help="seconds of load on each new server before measuring")
    ap.add_argument("--rates", type=int_list, default=[10000, 20000], help="paced rates, req/s (default 10000,20000)")
    ap.add_argument("--conns", type=int_list, default=[10, 100, 1000], help="connection counts (default 10,100,1000)")
    ap.add_argument("--procs", type=int_list, default=[1, 10, 50], help="nginx worker counts (default 1,10,50)")
    ap.add_argument("--main-conns", type=int, default=100, help="connections for nginx/node and the rate cases")
    ap.add_argument("--flask-conns", type=int, default=10, help="connections for the Flask app (thread per conn)")
    ap.add_argument("--scrape-interval", type=float, default=5.0, help="Prometheus scrape interval for obi+metrics")
    ap.add_argument("--no-pin", action="store_true", help="do not pin the server and wrk to separate CPUs")
    ap.add_argument("--agent", type=Path, default=REPO / "target" / "release" / "obi", help="agent binary")
    ap.add_argument("--out", type=Path, default=HERE / "results", help="results directory")
    ap.add_argument("--report-only", type=Path, metavar="JSON",
                    help="rebuild the .md and .png from a results .json (no measurement)")
    args = ap.parse_args(argv)
    args.duration = args.duration or (4 if args.quick else 15)
    args.reps = args.reps or (2 if args.quick else 5)
    if args.no_pin or (os.cpu_count() or 1) < 2:
        args.server_cpu = args.load_cpu = None
    else:
        args.server_cpu, args.load_cpu = 0, 1
    return args


def preflight(args):
    problems = []
    if os.geteuid() != 0:
        problems.append("run as root (the agent loads eBPF programs)")
    if not args.agent.exists():
        problems.append(f"no agent at {args.agent}: cargo build --release")
    for tool in ("wrk", "nginx", "node"):
        if not shutil.which(tool):
            problems.append(f"{tool} missing: sudo bench/setup.sh")
    if not VENV_PY.exists():
        problems.append("bench/.venv missing: sudo bench/setup.sh")
    if problems:
        sys.exit("run.py: " + "; ".join(problems))
    if Path(sys.executable).resolve() != VENV_PY.resolve():
        log(f"note: running under {sys.executable}; the plot needs matplotlib (bench/.venv has it)")


def main(argv=None):
    args = parse_args(argv if argv is not None else sys.argv[1:])
    if args.report_only:
        data = json.loads(args.report_only.read_text())
        meta, records = data["meta"], data["runs"]
        rows = summarize(records)
        out_md = args.report_only.with_suffix(".md")
        out_png = args.report_only.with_name(args.report_only.stem + "-throughput.png")
        args.report_only.write_text(json.dumps({"meta": meta, "rows": rows, "runs": records}, indent=1))
        plot(rows, out_png, meta)
        write_report(meta, rows, records, out_md, out_png.name)
        log(f"rebuilt {out_md}, {out_png}")
        return 0
    preflight(args)
    cases = build_cases(args)
    meta = machine_meta(args)
    args.out.mkdir(parents=True, exist_ok=True)
    runs_per_case = [len(c.variants) * args.reps for c in cases]
    log(f"{len(cases)} cases, {sum(runs_per_case)} runs of {args.duration} s on {meta['cpus']} vCPUs "
        f"(shared machine, noisy neighbours: load average {meta['loadavg_start']})")
    workdir = Path(tempfile.mkdtemp(prefix="obi-bench-"))
    receiver = Receiver(workdir)
    records = []
    started = time.monotonic()
    try:
        for i, case in enumerate(cases, 1):
            log(f"case {i}/{len(cases)}: {case.group}: {case.scenario}, {case.load}: {', '.join(case.variants)}")
            records += run_case(case, args, workdir, receiver)
    finally:
        receiver.stop()
    meta["loadavg_end"] = " ".join(f"{x:.2f}" for x in loadavg())
    loads = [r["loadavg_1m"] for r in records]
    meta.update(loadavg_median=statistics.median(loads), loadavg_min=min(loads), loadavg_max=max(loads),
                wall_s=round(time.monotonic() - started))
    rows = summarize(records)
    stem = f"{meta['date']}-{meta['host']}"
    out_md = args.out / f"{stem}.md"
    out_png = args.out / f"{stem}-throughput.png"
    (args.out / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows, "runs": records}, indent=1))
    plot(rows, out_png, meta)
    write_report(meta, rows, records, out_md, out_png.name)
    shutil.rmtree(workdir, ignore_errors=True)
    log(f"done in {meta['wall_s']} s: {out_md}, {out_png}")
    for t, m, v in target_checks(rows):
        log(f"  {v:>8}: {t}: {m}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
