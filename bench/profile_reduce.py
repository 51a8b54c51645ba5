#!/usr/bin/env python3
"""Reduces `perf report --children --sort sym -g none --stdio` of one CPU to
microseconds per request for the parts the obi agent adds (profile_nginx.sh).

    perf report ... | profile_reduce.py SITUATION REQUESTS_PER_SECOND [COMM_REPORT]

COMM_REPORT: `perf report --sort comm` of the same data, for the share of
each process on the CPU (the agent, when the scheduler puts it there).

A part's share of the CPU's samples divided by the requests served per second
is its time per request (the CPU is the server's, pinned and saturated)."""
import re
import sys

# Kernel functions worth a row: the machinery that runs BPF programs and the
# helpers they call. Inclusive figures (children counted).
MACHINERY = [
    ("syscall_trace_enter", "syscall entry slow path (tracepoint, incl. BPF)"),
    ("syscall_exit_work", "syscall exit slow path (tracepoint, incl. BPF)"),
    ("bpf_trace_run2", "raw tracepoint runs (sys_enter/sys_exit, incl. BPF)"),
    ("trace_call_bpf", "perf tracepoint runs (sock:*, incl. BPF)"),
]
HELPERS = [
    "bpf_probe_read_kernel", "bpf_probe_read_user", "__htab_map_lookup_elem",
    "htab_lru_map_update_elem", "htab_lru_map_delete_elem", "htab_map_update_elem",
    "htab_map_delete_elem", "bpf_ringbuf_output", "bpf_ringbuf_submit", "ktime_get_mono_fast_ns",
]
IDLE = ("do_idle", "cpu_startup_entry")

LINE = re.compile(r"^\s*([\d.]+)%\s+([\d.]+)%\s+\[[k.]\]\s+(\S+)")


def main():
    situation, rate = sys.argv[1], float(sys.argv[2])
    incl = {}
    for line in sys.stdin:
        m = LINE.match(line)
        if m:
            incl.setdefault(m.group(3), float(m.group(1)))
    us = lambda pct: pct / 100 / rate * 1e6  # noqa: E731
    idle = max((incl.get(s, 0.0) for s in IDLE), default=0.0)
    print(f"\n## {situation}: {rate:,.0f} requests/s; CPU 0 busy {us(100 - idle):.2f} µs/request")
    print("| part | % of CPU 0 | µs/request |")
    print("|---|---|---|")
    if len(sys.argv) > 3:
        for line in open(sys.argv[3]):
            m = re.match(r"^\s*([\d.]+)%\s+(\S.*?)\s*$", line)
            if m and float(m.group(1)) >= 0.5:
                print(f"| process {m.group(2)} | {float(m.group(1)):.2f} | {us(float(m.group(1))):.3f} |")
    for sym, what in MACHINERY:
        if sym in incl:
            print(f"| {what} | {incl[sym]:.2f} | {us(incl[sym]):.3f} |")
    progs = sorted(((p, s) for s, p in incl.items() if s.startswith("bpf_prog_") and "_obi_" in s), reverse=True)
    for pct, sym in progs:
        name = sym.split("_", 3)[-1]
        print(f"| program {name} | {pct:.2f} | {us(pct):.3f} |")
    for sym in HELPERS:
        if sym in incl:
            print(f"| helper {sym} | {incl[sym]:.2f} | {us(incl[sym]):.3f} |")


if __name__ == "__main__":
    main()
