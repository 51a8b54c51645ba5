#!/usr/bin/env bash
# What the agent adds to one syscall of a process it does NOT trace: every
# process on the host pays this. A small C loop times getppid and fstat
# (syscalls no obi program handles) and 1-byte read and write (handled, then
# dropped: the process is not traced), pinned to CPU 0, with no agent and
# under each agent binary given, alternating.
#
#   sudo bench/syscall_cost.sh [ROUNDS] AGENT...      (needs gcc)
# Prints ns per call for each run.
set -euo pipefail
rounds=2
[[ ${1:-} =~ ^[0-9]+$ ]] && { rounds=$1; shift; }
(($#)) || { echo "usage: $0 [ROUNDS] AGENT..." >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/loop.c" <<'C'
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e9 + t.tv_nsec; }
int main(void) {
	const int n = 2000000;
	struct stat st;
	char b[1] = {0};
	int zero = open("/dev/zero", O_RDONLY), null = open("/dev/null", O_WRONLY);
	double t0 = now();
	for (int i = 0; i < n; i++) syscall(SYS_getppid);
	double t1 = now();
	for (int i = 0; i < n; i++) fstat(zero, &st);
	double t2 = now();
	for (int i = 0; i < n; i++) if (read(zero, b, 1) != 1) return 1;
	double t3 = now();
	for (int i = 0; i < n; i++) if (write(null, b, 1) != 1) return 1;
	double t4 = now();
	printf("getppid %4.0f  fstat %4.0f  read %4.0f  write %4.0f ns/call\n",
	       (t1 - t0) / n, (t2 - t1) / n, (t3 - t2) / n, (t4 - t3) / n);
	return 0;
}
C
gcc -O2 -o "$work/loop" "$work/loop.c"
measure() {
	local agent=$1 pid=""
	if [[ $agent != none ]]; then
		# Traces a port nobody listens on: the loop is not traced.
		OTEL_EBPF_TRACE_PRINTER=counter OTEL_EBPF_OPEN_PORT=1 "$agent" >/dev/null 2>"$work/agent.log" &
		pid=$!
		for _ in $(seq 1 300); do grep -q "obi-rs started" "$work/agent.log" && break; sleep 0.1; done
		grep -q "obi-rs started" "$work/agent.log" || { echo "$agent did not start" >&2; kill "$pid"; exit 1; }
	fi
	printf '%-40s %s\n' "$agent" "$(taskset -c 0 "$work/loop")"
	if [[ -n $pid ]]; then kill -INT "$pid"; wait "$pid" || true; fi
}
for ((r = 0; r < rounds; r++)); do
	measure none
	for a in "$@"; do measure "$a"; done
done
