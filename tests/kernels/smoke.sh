#!/bin/sh
# The kernel matrix's smoke test, run in each guest by guest-init.sh (busybox
# sh) and on the host by matrix.sh (for the host kernel's row): `obi check`,
# then the agent with context propagation on, tracing nginx serving one
# HTTP/1 request, one HTTP/2 (h2c) request and one HTTPS request, made by curl.
#
# Writes tagged results to $OUT (see matrix.sh):
#   @@ <section>        starts a section (check: obi check; agent: its log and spans)
#   @@ key=value        one fact (check_rc, agent_started, h1, h2, tls, prop, ...)
#
# Environment: SMOKE_OBI, SMOKE_NGINX, SMOKE_CURL (binaries; nginx reads a
# variable named NGINX itself), CERT and KEY (a TLS certificate),
# WORK (an empty writable directory), PORT (the HTTP/1 port; PORT+1 is h2c,
# PORT+2 HTTPS), WAIT (seconds to wait for the agent to start), OUT.
set -u
: "${OUT:?}" "${SMOKE_OBI:?}" "${SMOKE_NGINX:?}" "${SMOKE_CURL:?}" "${CERT:?}" "${KEY:?}" "${WORK:?}"
: "${PORT:=8080}" "${WAIT:=120}"
h2_port=$((PORT + 1))
tls_port=$((PORT + 2))

fact() { echo "@@ $1" >>"$OUT"; }
section() { echo "@@ $1" >>"$OUT"; cat "$2" >>"$OUT"; }
up() { cut -d' ' -f1 /proc/uptime; }
since() { awk -v a="$1" -v b="$(up)" 'BEGIN{printf "%.1f", b-a}'; }

"$SMOKE_OBI" check >"$WORK/check" 2>&1
fact "check_rc=$?"
fact "check_done_s=$(up)"
section check "$WORK/check"

mkdir -p "$WORK/nginx"
cat >"$WORK/nginx.conf" <<EOF
daemon off;
worker_processes 1;
user root;
pid $WORK/nginx/pid;
error_log $WORK/nginx/error.log;
events { worker_connections 64; }
http {
	access_log off;
	client_body_temp_path $WORK/nginx/body;
	proxy_temp_path $WORK/nginx/proxy;
	fastcgi_temp_path $WORK/nginx/fastcgi;
	uwsgi_temp_path $WORK/nginx/uwsgi;
	scgi_temp_path $WORK/nginx/scgi;
	server { listen 127.0.0.1:$PORT; location / { return 200 "h1\n"; } }
	server { listen 127.0.0.1:$h2_port http2; location / { return 200 "h2\n"; } }
	server {
		listen 127.0.0.1:$tls_port ssl;
		ssl_certificate $CERT;
		ssl_certificate_key $KEY;
		location / { return 200 "tls\n"; }
	}
}
EOF
"$SMOKE_NGINX" -e "$WORK/nginx/error.log" -c "$WORK/nginx.conf" >"$WORK/nginx/out" 2>&1 &
nginx=$!
for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do
	"$SMOKE_CURL" -s -o /dev/null "http://127.0.0.1:$PORT/ready" && break
	sleep 1
done

# curl is selected by executable, so its requests carry the agent's
# traceparent to nginx (propagation) and give client spans.
cat >"$WORK/obi.yml" <<EOF
discovery:
  instrument:
    - open_ports: $PORT-$tls_port
    - exe_path: '*/curl'
    - cmd_args: '*obi-smoke-prop*'
EOF
start=$(up)
# Created before the agent starts, so the wait below never reads a missing file.
: >"$WORK/log"
OTEL_EBPF_BPF_CONTEXT_PROPAGATION=headers OTEL_EBPF_TRACE_PRINTER=text \
	"$SMOKE_OBI" --config "$WORK/obi.yml" >"$WORK/spans" 2>"$WORK/log" &
agent=$!
started=no
i=0
while [ "$i" -lt "$WAIT" ]; do
	if grep -q 'obi-rs started' "$WORK/log"; then started=yes; break; fi
	kill -0 "$agent" 2>/dev/null || { started=exited; break; }
	sleep 1
	i=$((i + 1))
done
[ "$started" = no ] && started=timeout
fact "agent_started=$started"
# 1 when the agent runs its no-BTF build (a kernel without BTF).
fact "no_btf=$(grep -c 'running without BTF' "$WORK/log")"
fact "agent_start_s=$(since "$start")"

if [ "$started" = yes ]; then
	# Discovery runs after "started": a request before the agent logs that it
	# instruments nginx is not traced (the integration tests wait the same way).
	instrumented=no
	for _ in $(seq 60); do
		grep -q 'msg="instrumenting process".*cmd=[^ ]*nginx' "$WORK/log" && { instrumented=yes; break; }
		sleep 1
	done
	fact "instrumented=$instrumented"
	fact "instrumented_s=$(since "$start")"
	# Only a process discovery has chosen gets a traceparent injected, and a
	# curl selected by its executable is chosen some time after its exec (a
	# slow guest: after its request). So the HTTP/1 request's curl is exec'd
	# by a shell that discovery chose first (the pid survives the exec).
	sh -c 'i=0; while [ $i -lt 100 ] && ! grep -q "instrumenting process.* pid=$$ " "$0"; do sleep 0.2; i=$((i+1)); done; shift; exec "$@"' \
		"$WORK/log" obi-smoke-prop "$SMOKE_CURL" -s -o /dev/null "http://127.0.0.1:$PORT/matrix-h1"
	fact "curl_h1_rc=$?"
	"$SMOKE_CURL" -s -o /dev/null --http2-prior-knowledge "http://127.0.0.1:$h2_port/matrix-h2"
	fact "curl_h2_rc=$?"
	"$SMOKE_CURL" -s -o /dev/null -k --http1.1 "https://127.0.0.1:$tls_port/matrix-tls"
	fact "curl_tls_rc=$?"
	# Spans are printed once a response is complete; give them a little time.
	# Text printer: "... HTTP(subType=0) 200 GET /path(route) [peer]->[host as name:port] ..."
	server_spans() { grep -c "HTTP(subType=0) 200 GET $1[( ].*->\[[^]]*:$2\]" "$WORK/spans"; }
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		[ "$(server_spans /matrix-tls "$tls_port")" -ge 1 ] && break
		sleep 1
	done
	sleep 1
	fact "h1=$(server_spans /matrix-h1 "$PORT")"
	fact "h2=$(server_spans /matrix-h2 "$h2_port")"
	fact "tls=$(server_spans /matrix-tls "$tls_port")"
	# Propagation: nginx's span of the HTTP/1 request is the child of curl's
	# client span (same trace, parent = the client span's id).
	client=$(grep "HTTPClient(subType=0) 200 GET /matrix-h1[( ]" "$WORK/spans" | sed -n 's/.*traceparent=\[00-\([0-9a-f]*\)-\([0-9a-f]*\)\[.*/\1-\2/p' | head -1)
	server=$(grep "HTTP(subType=0) 200 GET /matrix-h1[( ]" "$WORK/spans" | sed -n 's/.*traceparent=\[00-\([0-9a-f]*\)-[0-9a-f]*\[\([0-9a-f]*\)\].*/\1-\2/p' | head -1)
	if [ -n "$client" ] && [ "$client" = "$server" ]; then fact "prop=yes"; else fact "prop=no"; fi
fi
kill "$agent" 2>/dev/null
kill "$nginx" 2>/dev/null
sleep 1
cat "$WORK/log" "$WORK/spans" >"$WORK/agent"
section agent "$WORK/agent"
