#!/usr/bin/env bash
# Cost of traceparent injection (sk_msg + bpf_msg_push_data) per request.
# wrk is the traced client; nginx (1 worker) answers. The agent runs in both
# variants with wrk selected, so only the injection differs:
#   off:  OTEL_EBPF_BPF_CONTEXT_PROPAGATION=disabled
#   on:   OTEL_EBPF_BPF_CONTEXT_PROPAGATION=headers
# Runs alternate (off, on, on, off, ...) to spread the machine's noise.
# Usage: sudo bench/injection.sh [seconds per run] [pairs] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-5}" pairs="${2:-3}" conns="${3:-10}"
obi=target/release/obi
[ -x "$obi" ] || cargo build --release --quiet
work=$(mktemp -d)
trap 'kill $(cat "$work/nginx.pid" 2>/dev/null) 2>/dev/null; pkill -INT -f "$obi" 2>/dev/null; rm -rf "$work"' EXIT
mkdir -p "$work/logs"
cat > "$work/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/logs/error.log;
events { worker_connections 1024; }
http { access_log off; server { listen 127.0.0.1:18600; location / { return 200 "ok\n"; } } }
CONF
taskset -c 0 nginx -p "$work" -c "$work/nginx.conf"
sleep 0.5

run() { # $1 = propagation mode; prints "rps p50_us p99_us"
	OTEL_EBPF_AUTO_TARGET_EXE='*/wrk' OTEL_EBPF_BPF_CONTEXT_PROPAGATION="$1" \
		OTEL_EBPF_PROMETHEUS_PORT=19601 "$obi" >"$work/agent.log" 2>&1 &
	local agent=$!
	until grep -q 'obi-rs started' "$work/agent.log"; do sleep 0.1; done
	sleep 1
	taskset -c 1 wrk -t1 -c"$conns" -d"${secs}s" --latency http://127.0.0.1:18600/ >"$work/wrk.out"
	kill -INT $agent; wait $agent || true
	local injected; injected=$(grep -o 'injected=[0-9]*' "$work/agent.log" | cut -d= -f2)
	awk -v inj="${injected:-0}" '
		/Requests\/sec/ {rps=$2}
		/^ +50%/ {p50=$2} /^ +99%/ {p99=$2}
		function us(v) { if (v ~ /us$/) return v+0; if (v ~ /ms$/) return v*1000; return v*1e6 }
		END {printf "%.0f %.0f %.0f %d\n", rps, us(p50), us(p99), inj}' "$work/wrk.out"
}

echo "mode rps p50_us p99_us injected"
for i in $(seq "$pairs"); do
	if ((i % 2)); then order="disabled headers"; else order="headers disabled"; fi
	for mode in $order; do echo "$mode $(run "$mode")"; done
done | tee "$work/results"
awk '{rps[$1]+=$2; p50[$1]+=$3; p99[$1]+=$4; n[$1]++}
	END {
		off=rps["disabled"]/n["disabled"]; on=rps["headers"]/n["headers"];
		printf "mean req/s: off %.0f, on %.0f, ratio %.3f\n", off, on, on/off;
		printf "mean p50: off %.0f us, on %.0f us; mean p99: off %.0f us, on %.0f us\n",
			p50["disabled"]/n["disabled"], p50["headers"]/n["headers"], p99["disabled"]/n["disabled"], p99["headers"]/n["headers"];
		# wrk (pinned to one CPU) is the bottleneck: the difference in time per
		# request is what injection costs the sending process.
		printf "cost per request on the sending CPU: %.1f us\n", (1/on - 1/off) * 1e6
	}' "$work/results"
