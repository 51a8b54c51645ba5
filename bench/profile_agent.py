#!/usr/bin/env python3
"""Where the agent's own CPU goes, per request: nginx saturated as in kernel_cost.py
(1 worker on CPU 0, wrk -c50 on CPU 1), the agent tracing it with one exporter, and
`perf record --call-graph dwarf` of the agent's threads only. Each sample is put in
one part (the first rule that matches, in the table's order) and a part's share of
the samples times the agent's CPU per request (from /proc) is its time per request.

    sudo bench/profile_agent.py [--agent target/release/obi] [--seconds 6]
                                [--exporter otlp|prom|counter] [--reps 1]

Also printed, per request: the agent's minor page faults and its context switches
(all threads, from /proc). Needs perf, wrk, nginx; otlp needs bench/setup.sh's venv
(the receiver of kernel_cost.py). The samples are cpu-clock (no PMU on these VMs).
"""
import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kernel_cost as kc  # noqa: E402  (the servers, wrk and exporters of the harness)

# (part, test on the sample's frames, leaf first). The first that matches wins.
PARTS = [
    ("page faults (fresh memory)", lambda fr: any("exc_page_fault" in f for f in fr)),
    ("allocator (malloc/free)", lambda fr: re.search(r"malloc|_int_free|cfree|unlink_chunk|realloc", fr[0])),
    ("memory copies (memmove)", lambda fr: "memmove" in fr[0] or "memcpy" in fr[0]),
    ("waiting and waking (scheduler, futex, epoll)",
     lambda fr: any(re.search(r"finish_task_switch|__schedule|futex|epoll_wait|try_to_wake_up", f) for f in fr[:12])),
    ("ring buffer reading", lambda fr: owner(fr, ("aya::maps::ring_buf",))),
    ("HTTP and protocol parsing", lambda fr: owner(fr, ("obi_protocols::", "httparse::"))),
    ("OTLP encoding", lambda fr: owner(fr, ("obi::export::otlp::wire",))),
    ("OTLP transport (gRPC/HTTP, socket writes)",
     lambda fr: owner(fr, ("h2::", "tonic::", "hyper::", "tower::", "obi::export::otlp::transport"))
     or any("tcp_sendmsg" in f for f in fr)),
    ("metrics", lambda fr: owner(fr, ("obi::export::metrics", "obi::export::prom"))),
    ("printers", lambda fr: owner(fr, ("obi::export::printer",))),
    ("tracking (sessions, spans, names)", lambda fr: owner(fr, ("obi::tracker", "obi::span", "obi::transform"))),
    ("discovery (/proc, sockets)", lambda fr: owner(fr, ("obi::discover",))),
    ("event loop and the rest of the agent", lambda fr: owner(fr, ("obi::",))),
]


def owner(frames, prefixes):
    """Whether the innermost frame that belongs to a crate we know starts with one of `prefixes`."""
    for f in frames:
        name = f.lstrip("<")
        if name.startswith(("obi", "h2::", "tonic::", "hyper::", "tower::", "httparse::", "aya::", "tokio::")):
            return name.startswith(prefixes)
    return False


def samples(perf_data):
    """Frames (leaf first) of each sample in perf_data."""
    out = subprocess.run(["perf", "script", "-i", perf_data], capture_output=True, text=True, check=True).stdout
    for block in out.split("\n\n"):
        frames = []
        for line in block.splitlines()[1:]:
            m = re.match(r"\s*[0-9a-f]+ (.+?)(\+0x[0-9a-f]+)? \(", line)
            if m:
                frames.append(m.group(1))
        if frames:
            yield frames


def proc_counters(pid):
    """(minor faults, context switches) of all threads of `pid`."""
    faults = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[7])
    switches = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                switches += int(line.split()[1])
    return faults, switches


def run(agent, seconds, exporter, workdir):
    port = kc.free_port()
    srv = subprocess.Popen(["taskset", "-c", "0"] + kc.nginx(workdir, port),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    exp = None
    try:
        kc.wait_port(port)
        exp = kc.Exporter(exporter)
        env = dict(os.environ, OTEL_EBPF_OPEN_PORT=str(port), **exp.env)
        ag = kc.start_agent(agent, env)
        try:
            time.sleep(3)
            kc.wrk(port, 1)  # warm-up
            data = str(workdir / "agent.perf")
            perf = subprocess.Popen(["perf", "record", "-F", "999", "--call-graph", "dwarf,32768", "-p", str(ag.pid),
                                     "-o", data, "--", "sleep", str(seconds)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            exp.scrape_while_running()
            cpu0, (f0, s0) = kc.cpu_seconds(ag.pid), proc_counters(ag.pid)
            requests = kc.wrk(port, seconds)
            cpu_us = (kc.cpu_seconds(ag.pid) - cpu0) * 1e6 / requests
            f1, s1 = proc_counters(ag.pid)
            perf.wait()
        finally:
            ag.send_signal(2)
            ag.wait(timeout=30)
    finally:
        if exp:
            exp.close()
        srv.terminate()
        srv.wait(timeout=10)
    parts = collections.Counter()
    for frames in samples(data):
        parts[next((name for name, test in PARTS if test(frames)), "outside the agent's code (kernel, libc)")] += 1
    return requests / seconds, cpu_us, (f1 - f0) / requests, (s1 - s0) / requests, parts


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agent", default="target/release/obi")
    ap.add_argument("--seconds", type=int, default=6)
    ap.add_argument("--exporter", default="otlp", choices=["otlp", "prom", "counter"])
    ap.add_argument("--reps", type=int, default=1)
    args = ap.parse_args()
    agent = str(Path(args.agent).resolve())
    for rep in range(args.reps):
        with tempfile.TemporaryDirectory() as tmp:
            rate, cpu_us, faults, switches, parts = run(agent, args.seconds, args.exporter, Path(tmp))
        total = sum(parts.values()) or 1
        print(f"\nrep {rep}: {args.exporter}, {rate:,.0f} req/s, agent {cpu_us:.2f} µs/request, "
              f"{faults:.3f} page faults/request, {switches:.3f} context switches/request, {total} samples")
        print("| part | share | µs/request |\n|---|---|---|")
        for name, n in parts.most_common():
            print(f"| {name} | {100 * n / total:.1f} % | {cpu_us * n / total:.2f} |")


if __name__ == "__main__":
    main()
