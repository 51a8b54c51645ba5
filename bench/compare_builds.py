#!/usr/bin/env python3
"""Do two builds of the agent print the same spans for the same traffic?

For refactors that must not change behaviour: both agents run at once on this
machine, watching the same servers, while one fixed workload runs (HTTP/1
from curl and Python over keep-alive, chunked and big bodies, errors, a POST,
HTTP/2 and gRPC through grpcio, a traced server calling out). Each agent prints
JSON spans; ids, times and ephemeral ports are dropped, and the two multisets
of spans must be equal.

  sudo bench/.venv/bin/python bench/compare_builds.py OLD_BINARY NEW_BINARY

Prints the span count per type and exits 1 with the differences if any.
Needs what scripts/install-deps.sh installs (node, the test venv's grpcio).
"""
import collections
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
APPS = REPO / "crates" / "obi" / "tests" / "apps"
VENV_PY = Path(os.environ.get("OBI_TEST_VENV", "/opt/obi-test-venv")) / "bin" / "python3"
# Fields that differ between two observations of the same exchange.
VOLATILE = {"traceID", "spanID", "parentSpanID", "start", "end", "handlerStart", "duration", "durationUSec",
            "handlerDuration", "handlerDurationUSec", "peerPort"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd, ready=None):
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    if ready:
        deadline = time.time() + 20
        while time.time() < deadline:
            line = p.stdout.readline()
            if ready in line:
                return p
        raise SystemExit(f"{cmd[0]} did not print {ready!r}")
    return p


def start_agent(binary, ports, out, prom_port):
    env = dict(os.environ)
    env.update({"OTEL_EBPF_TRACE_PRINTER": "json", "OTEL_EBPF_LOG_LEVEL": "info",
                "OTEL_EBPF_PROMETHEUS_PORT": str(prom_port)})
    # curl and the Python clients are selected by executable and command line.
    config = out.with_suffix(".yaml")
    config.write_text(
        "discovery:\n  instrument:\n"
        + "".join(f"    - open_ports: {p}\n" for p in ports)
        + "    - exe_path: '*/curl'\n    - cmd_args: '*http_client.py*'\n    - cmd_args: '*grpc_client.py*'\n"
    )
    log = open(out.with_suffix(".log"), "w")
    return subprocess.Popen([binary, "--config", str(config)], stdout=open(out, "w"), stderr=log, env=env)


def workload(http_port, node_port, grpc_port):
    def run(cmd):
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60, check=False)

    base = f"http://127.0.0.1:{http_port}"
    for path in ["/", "/status/404", "/status/500", "/chunked/5", "/big/100000", "/headers"]:
        run(["curl", "-s", "-o", "/dev/null", base + path])
    run(["curl", "-s", "-o", "/dev/null", "-d", "x" * 17, base + "/echo"])
    run(["curl", "-s", "-o", "/dev/null", f"{base}/call?url=http://127.0.0.1:{node_port}/status/201"])
    run([sys.executable, str(APPS / "http_client.py"), "127.0.0.1", str(http_port), "GET:/", "POST:/echo",
         "GET:/chunked/3", "--repeat", "5", "--body", "100"])
    run([sys.executable, str(APPS / "http_client.py"), "127.0.0.1", str(node_port), "GET:/", "GET:/status/503",
         "--repeat", "3"])
    time.sleep(0.6)  # gRPC clients that connect right after exec may be missed (known; see docs)
    for args in (["unary", "3"], ["stream", "4"], ["fail"]):
        run([str(VENV_PY), str(APPS / "grpc_client.py"), f"127.0.0.1:{grpc_port}", *args])


def same_process_name(text):
    """A client that exits before discovery reads /proc is named from the
    kernel's exec record (`python`, `python3`: the symlink it was started
    through) instead of /proc/PID/exe (`python3.11`), and its language is
    then unknown (`generic`). Which agent wins that race is chance, not code,
    so these count as one."""
    text = re.sub(r"\bpython3?(\.\d+)?\b", "python", text)
    return re.sub(r'telemetry_sdk_language="[a-z]*",?', "", text)


def scrape(port):
    """The application metric samples (not the agent's own `obi_*` ones), as
    {series: value}."""
    import urllib.request
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith(("#", "obi_")):
            series, _, value = line.rpartition(" ")
            samples[same_process_name(series)] = float(value)
    return samples


def metric_differences(old, new):
    """Series present in one scrape only, and values that differ. Each agent
    timestamps the syscalls with its own programs, microseconds apart, so
    duration sums may differ by a little; counts and buckets must not."""
    out = [f"series only in old: {k}" for k in sorted(old.keys() - new.keys())]
    out += [f"series only in new: {k}" for k in sorted(new.keys() - old.keys())]
    for k in sorted(old.keys() & new.keys()):
        a, b = old[k], new[k]
        close = abs(a - b) <= 1e-3 + 0.05 * max(abs(a), abs(b)) if "_seconds_sum" in k else a == b
        if not close:
            out.append(f"value differs: {k} old {a} new {b}")
    return out


def normalise(span):
    s = {k: v for k, v in span.items() if k not in VOLATILE}
    s["attributes"] = {k: v for k, v in span.get("attributes", {}).items()}
    if s.get("type") in ("HTTPClient", "GRPCClient"):
        s["attributes"].pop("clientAddr", None)
    return same_process_name(json.dumps(s, sort_keys=True))


def read_spans(path):
    spans = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            spans.extend(json.loads(line))
    return [s for s in spans if s.get("type") != "ProcessAlive"]


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    old, new = sys.argv[1], sys.argv[2]
    http_port, node_port, grpc_port = free_port(), free_port(), free_port()
    servers = [
        start([sys.executable, str(APPS / "http_server.py"), str(http_port)], "ready"),
        start(["node", str(APPS / "http_server.js"), str(node_port)], "ready"),
        start([str(VENV_PY), str(APPS / "grpc_server.py"), str(grpc_port)], "ready"),
    ]
    out = Path(tempfile.mkdtemp(prefix="compare-builds-"))
    prom = {"old": free_port(), "new": free_port()}
    agents = [start_agent(b, [http_port, node_port, grpc_port], out / f"{name}.json", prom[name])
              for name, b in (("old", old), ("new", new))]
    metrics = {}
    try:
        time.sleep(4)  # both agents attached and have named the servers
        workload(http_port, node_port, grpc_port)
        time.sleep(3)
        metrics = {name: scrape(port) for name, port in prom.items()}
    finally:
        for a in agents:
            a.terminate()
        for a in agents:
            a.wait(timeout=30)
        for s in servers:
            s.terminate()
    got = {name: collections.Counter(normalise(s) for s in read_spans(out / f"{name}.json")) for name in ("old", "new")}
    types = collections.Counter(json.loads(k)["type"] for k in got["new"].elements())
    print(f"spans per type (new): {dict(sorted(types.items()))}; total old {sum(got['old'].values())}, "
          f"new {sum(got['new'].values())}; outputs in {out}")
    only_old, only_new = got["old"] - got["new"], got["new"] - got["old"]
    for label, diff in (("span only in old", only_old), ("span only in new", only_new)):
        for k, n in diff.items():
            print(f"{label} x{n}: {k}")
    print(f"application metric samples: old {len(metrics['old'])}, new {len(metrics['new'])}")
    metric_diff = metric_differences(metrics["old"], metrics["new"])
    for line in metric_diff:
        print(line)
    same = not only_old and not only_new and not metric_diff
    print("same spans and metrics" if same else "DIFFERENT")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
