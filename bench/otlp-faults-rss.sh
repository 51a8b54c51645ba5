#!/usr/bin/env bash
# Memory and shutdown time of the agent exporting traces to broken OTLP
# receivers (crates/obi/tests/apps/otlp_broken.py): a closed port, a black
# hole, HTTP 500, garbage over HTTP and over gRPC, endless garbage over gRPC.
# Per fault: nginx under wrk load, traced; the agent's RSS sampled every 10 s;
# then SIGTERM, timed against OTEL_EBPF_SHUTDOWN_TIMEOUT (10 s), and the
# `otlp_traces` totals (every span exported or counted dropped with a reason).
# Prints one line per fault: RSS at 1 min, at the end, max, growth after the
# first minute (KiB), shutdown seconds, totals.
# Usage: sudo bench/otlp-faults-rss.sh [seconds per fault, default 300] [faults...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-300}"
shift || true
faults=("$@")
[ ${#faults[@]} -gt 0 ] || faults=(closed/http blackhole/http blackhole/grpc http500/http garbage/http garbage/grpc garbage-stream/grpc)
obi=target/release/obi
[ -x "$obi" ] || cargo build --release --quiet
work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	kill "$(cat "$work/nginx.pid" 2>/dev/null)" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/logs"
cat >"$work/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/logs/error.log;
events { worker_connections 1024; }
http { access_log off; server { listen 127.0.0.1:18610; location / { return 200 "ok\n"; } } }
CONF
nginx -p "$work" -c "$work/nginx.conf"
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

for fault in "${faults[@]}"; do
	mode=${fault%/*} proto=${fault#*/} port=18611
	if [ "$mode" != closed ]; then
		python3 -u crates/obi/tests/apps/otlp_broken.py $port "$mode" >"$work/rx.log" 2>&1 &
		rx=$!
		pids+=("$rx")
		until grep -q ready "$work/rx.log"; do sleep 0.1; done
	fi
	if [ "$proto" = grpc ]; then
		endpoint=http://127.0.0.1:$port protocol=grpc
	else
		endpoint=http://127.0.0.1:$port/v1/traces protocol=http/protobuf
	fi
	OTEL_EBPF_OPEN_PORT=18610 OTEL_EBPF_TRACE_PRINTER=disabled \
		OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=$endpoint OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=$protocol \
		"$obi" 2>"$work/agent.log" &
	agent=$!
	pids+=("$agent")
	until grep -q 'obi-rs started' "$work/agent.log"; do sleep 0.1; done
	sleep 1
	wrk -t1 -c4 -d"${secs}s" http://127.0.0.1:18610/ >"$work/wrk.out" &
	load=$!
	start=$SECONDS at1m="" max=0 now=0
	while kill -0 $load 2>/dev/null; do
		sleep 10
		now=$(rss $agent)
		[ "$now" -gt "$max" ] && max=$now
		[ -z "$at1m" ] && [ $((SECONDS - start)) -ge 60 ] && at1m=$now
	done
	at1m=${at1m:-$now}
	t0=$(date +%s.%N)
	kill -TERM $agent
	wait $agent || true
	took=$(echo "$(date +%s.%N) - $t0" | bc)
	[ "$mode" != closed ] && kill "$rx" 2>/dev/null && wait "$rx" 2>/dev/null || true
	rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.out")
	totals=$(grep -o 'otlp_traces="[^"]*"' "$work/agent.log" || echo 'otlp_traces=?')
	printf '%-20s rps=%s rss_1m=%s rss_end=%s rss_max=%s growth_after_1m=%s shutdown_s=%.2f %s\n' \
		"$fault" "$rps" "$at1m" "$now" "$max" $((now - at1m)) "$took" "$totals"
done
