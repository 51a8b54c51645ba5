#!/usr/bin/env bash
# Cost of the Node.js parent-hint script (docs/nodejs.md) per request.
# The Express fan-out app of the tests (each request makes 2 HTTP calls to an
# nginx leaf, untraced, so the one-threaded app is the bottleneck) under wrk;
# the agent traces the app in every variant, so only the script differs:
#   off:  OTEL_EBPF_NODEJS_ENABLED=false
#   on:   OTEL_EBPF_NODEJS_ENABLED=true (script injected before the run)
# Runs alternate (off, on, on, off, ...) to spread the machine's noise; every
# run starts a fresh app, since the script stays in a process once injected.
# Usage: sudo bench/nodejs.sh [seconds per run] [pairs] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}" pairs="${2:-3}" conns="${3:-50}"
obi=target/release/obi
[ -x "$obi" ] || cargo build --release --quiet
node_modules="${OBI_TEST_NODE:-/opt/obi-node}/apps/node_modules"
apps=crates/obi/tests/apps
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$work"' EXIT
front=18700 leaf=18701
mkdir -p "$work/logs"
cat > "$work/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/logs/error.log;
events { worker_connections 1024; }
http { access_log off; server { listen 127.0.0.1:$leaf; location / { return 200 "leaf\n"; } } }
CONF
nginx -p "$work" -c "$work/nginx.conf"
trap 'kill "${pids[@]}" $(cat "$work/nginx.pid" 2>/dev/null) 2>/dev/null; rm -rf "$work"' EXIT

run() { # $1 = true|false; prints "rps p50_us p99_us hints_used"
	NODE_PATH="$node_modules" node "$apps/fanout_express.js" "$front" >"$work/app.log" 2>&1 &
	local app=$!
	until grep -q ready "$work/app.log"; do sleep 0.1; done
	OTEL_EBPF_OPEN_PORT="$front" OTEL_EBPF_NODEJS_ENABLED="$1" OTEL_EBPF_PROMETHEUS_PORT=19701 \
		"$obi" >"$work/agent.log" 2>&1 &
	local agent=$!
	until grep -q 'obi-rs started' "$work/agent.log"; do sleep 0.1; done
	if [ "$1" = true ]; then
		until grep -q 'Script successfully injected' "$work/agent.log"; do sleep 0.1; done
	fi
	sleep 1
	wrk -t2 -c"$conns" -d"${secs}s" --latency \
		"http://127.0.0.1:$front/fanout/bench/2?base=http%3A%2F%2F127.0.0.1%3A$leaf" >"$work/wrk.out"
	kill -INT $agent; wait $agent || true
	kill $app; wait $app 2>/dev/null || true
	local used; used=$(grep -o 'parent_hints_used=[0-9]*' "$work/agent.log" | cut -d= -f2)
	awk -v used="${used:-0}" '
		/Requests\/sec/ {rps=$2}
		/^ +50%/ {p50=$2} /^ +99%/ {p99=$2}
		function us(v) { if (v ~ /us$/) return v+0; if (v ~ /ms$/) return v*1000; return v*1e6 }
		END {printf "%.0f %.0f %.0f %d\n", rps, us(p50), us(p99), used}' "$work/wrk.out"
}

sleep 0.5
echo "script rps p50_us p99_us hints_used"
for i in $(seq "$pairs"); do
	if ((i % 2)); then order="false true"; else order="true false"; fi
	for mode in $order; do echo "$mode $(run "$mode")"; done
done | tee "$work/results"
awk '{rps[$1]+=$2; p50[$1]+=$3; p99[$1]+=$4; n[$1]++}
	END {
		off=rps["false"]/n["false"]; on=rps["true"]/n["true"];
		printf "mean req/s: off %.0f, on %.0f, ratio %.3f\n", off, on, on/off;
		printf "mean p50: off %.0f us, on %.0f us; mean p99: off %.0f us, on %.0f us\n",
			p50["false"]/n["false"], p50["true"]/n["true"], p99["false"]/n["false"], p99["true"]/n["true"];
		# The app (one thread) is the bottleneck: the difference in time per
		# request is what the script costs it.
		printf "cost per incoming request (2 calls) on the app thread: %.1f us\n", (1/on - 1/off) * 1e6
	}' "$work/results"
