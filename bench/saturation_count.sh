#!/usr/bin/env bash
# Spans per request at saturation, exactly: nginx (1 worker) under a closed
# wrk loop (50 connections), traced; nginx's own request counter
# (stub_status, read before and after the load) against the agent's span
# totals at its stop. The two status reads are requests too: nginx counts
# the second, the agent traces both, so an exact agent shows
# spans = counted + 1 and the script prints the difference.
#
#   sudo bench/saturation_count.sh [AGENT] [SECONDS] [RUNS]
set -euo pipefail
agent=${1:-target/release/obi}
secs=${2:-10}
runs=${3:-3}
work=$(mktemp -d)
port=18700
trap 'kill "$(cat "$work/nginx.pid" 2>/dev/null)" 2>/dev/null || true; rm -rf "$work"' EXIT
cat >"$work/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  server {
    listen 127.0.0.1:$port;
    location / { return 200 "0123456789012345678901234567890123456789\n"; }
    location = /status { stub_status; }
  }
}
CONF
nginx -c "$work/nginx.conf" -p "$work"
handled() { curl -s "http://127.0.0.1:$port/status" | awk 'NR==3 {print $3}'; }
# IRQ work interrupts on all CPUs: each forced ring-buffer wakeup raises one.
irq_work() { awk '$1 == "IWI:" {n = 0; for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) n += $i; print n}' /proc/interrupts; }
for ((r = 1; r <= runs; r++)); do
	OTEL_EBPF_OPEN_PORT=$port OTEL_EBPF_TRACE_PRINTER=counter "$agent" >/dev/null 2>"$work/agent.err" &
	pid=$!
	for _ in $(seq 1 150); do grep -q "instrumenting process" "$work/agent.err" && break; sleep 0.2; done
	sleep 1
	before=$(handled)
	iwi_before=$(irq_work)
	rps=$(taskset -c 1 wrk -t1 -c50 -d"${secs}s" "http://127.0.0.1:$port/" | awk '/Requests\/sec/ {print $2}')
	iwi_after=$(irq_work)
	after=$(handled)
	sleep 2
	kill -INT "$pid"
	wait "$pid" || true
	totals=$(grep -o 'msg=totals.*' "$work/agent.err")
	spans=$(grep -o ' spans=[0-9]*' <<<"$totals" | cut -d= -f2)
	ringbuf_full=$(grep -o ' ringbuf_full=[0-9]*' <<<"$totals" | cut -d= -f2)
	# Forced ring-buffer wakeups (agents before 2026-11-29 do not report them).
	wakeups=$(grep -o ' wakeups=[0-9]*' <<<"$totals" | cut -d= -f2 || true)
	counted=$((after - before))
	printf 'run %d: %s req/s, nginx counted %d, spans %d, spans - (counted + 1) = %d, ring full %s, wakeups %s, irq work %d, spans/request %.5f\n' \
		"$r" "$rps" "$counted" "$spans" $((spans - counted - 1)) "$ringbuf_full" "${wakeups:-?}" $((iwi_after - iwi_before)) \
		"$(awk -v s="$spans" -v c="$counted" 'BEGIN {print s / (c + 1)}')"
done
