#!/usr/bin/env bash
# Where a saturated nginx's time goes, per request, with the agent tracing it,
# with the agent tracing something else, and with no agent: a `perf record` of
# CPU 0 (nginx, 1 worker, pinned) under wrk (CPU 1, 50 keep-alive connections,
# a 1 KiB static file), reduced to microseconds per request for the parts the
# agent adds: each obi BPF program (inclusive of the helpers it calls), the
# tracepoint machinery around them, and the helpers themselves.
#
#   sudo bench/profile_nginx.sh [AGENT] [SECONDS]     (default target/release/obi, 5)
#
# The agent is not pinned (as a user runs it): its share of CPU 0 is a row.
#
# Needs perf, wrk, nginx. The agent runs with the counter printer only. The
# figures are perf samples (cpu-clock: this VM has no PMU), so a part that runs
# with interrupts off is credited where they come back on; the table lists
# only parts that run with them on. Prints one table per situation.
set -euo pipefail
agent=$(realpath "${1:-target/release/obi}")
secs=${2:-5}
for tool in perf wrk nginx; do
	command -v "$tool" >/dev/null || { echo "profile_nginx: $tool missing" >&2; exit 1; }
done
[[ -x $agent ]] || { echo "profile_nginx: no agent at $agent (cargo build --release)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
port=${PORT:-18555}

mkdir -p "$work/www"
head -c 1023 /dev/zero | tr '\0' x >"$work/www/index.html"
echo >>"$work/www/index.html"
cat >"$work/nginx.conf" <<EOF
user root; worker_processes 1; daemon off; pid $work/nginx.pid; error_log $work/error.log warn;
events { worker_connections 4096; }
http {
	access_log off; keepalive_requests 100000000;
	client_body_temp_path $work/b; proxy_temp_path $work/p; fastcgi_temp_path $work/f;
	uwsgi_temp_path $work/u; scgi_temp_path $work/s;
	server { listen 127.0.0.1:$port; root $work/www; }
}
EOF

run() { # situation: none | traced | untraced
	local situation=$1 ag="" ngx wrk_pid
	taskset -c 0 nginx -p "$work" -c "$work/nginx.conf" &
	ngx=$!
	sleep 0.5
	if [[ $situation != none ]]; then
		local open=$port
		[[ $situation == untraced ]] && open=$((port + 1))
		OTEL_EBPF_OPEN_PORT=$open OTEL_EBPF_TRACE_PRINTER=counter "$agent" >"$work/agent.out" 2>"$work/agent.err" &
		ag=$!
		for _ in $(seq 150); do grep -q "obi-rs started" "$work/agent.err" && break; sleep 0.2; done
		sleep 1
	fi
	taskset -c 1 wrk -t1 -c50 -d$((secs + 4))s "http://127.0.0.1:$port/" >"$work/wrk.out" &
	wrk_pid=$!
	sleep 2
	perf record -q -C 0 -g -o "$work/perf.$situation" -- sleep "$secs" >/dev/null 2>&1
	wait "$wrk_pid"
	[[ -n $ag ]] && { kill -INT "$ag"; wait "$ag" || true; }
	kill "$ngx"
	wait "$ngx" 2>/dev/null || true
	local rate
	rate=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.out")
	perf report -i "$work/perf.$situation" --no-children --sort comm -g none --stdio 2>/dev/null >"$work/comm"
	perf report -i "$work/perf.$situation" --children --sort sym -g none --stdio 2>/dev/null |
		python3 "$(dirname "$0")/profile_reduce.py" "$situation" "$rate" "$work/comm"
}

for situation in none untraced traced; do
	run "$situation"
done
