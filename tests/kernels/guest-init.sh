#!/bin/busybox sh
# PID 1 of the kernel-matrix guest (see README.md). Runs `obi check`, a test
# server, the agent and one HTTP/1 request, and writes tagged results to the
# second serial port (ttyS1), which the host's matrix.sh reads:
#   @@ <section>        starts a section (check: obi check; agent: its log and spans)
#   @@ key=value        one fact (check_rc, agent_started, ...)
#   @@ end              the guest is done
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || true
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null || true
mount -t bpf bpf /sys/fs/bpf
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mkdir -p /tmp && mount -t tmpfs tmpfs /tmp
ip link set lo up

out=/dev/ttyS1
fact() { echo "@@ $1" >"$out"; }
section() { echo "@@ $1" >"$out"; cat "$2" >"$out"; }
up() { cut -d' ' -f1 /proc/uptime; }
# Settings from the kernel command line: obi.wait=<seconds for the agent>,
# obi.memlock=unlimited (raise RLIMIT_MEMLOCK by hand before the agent starts).
wait_agent=$(sed -n 's/.*obi\.wait=\([0-9]*\).*/\1/p' /proc/cmdline)
: "${wait_agent:=120}"

if grep -q 'obi\.memlock=unlimited' /proc/cmdline; then
	ulimit -l unlimited
	fact "memlock=raised by hand"
fi
fact "kernel=$(uname -r)"
fact "boot_s=$(up)"

/obi check >/tmp/check 2>&1
fact "check_rc=$?"
fact "check_done_s=$(up)"
section check /tmp/check

/http-server 8080 >/tmp/server.log 2>&1 &
for _ in 1 2 3 4 5 6 7 8 9 10; do grep -q ready /tmp/server.log && break; sleep 1; done

start=$(up)
# The agent logs and prints spans on stdout (OBI's layout): one file, split below.
OTEL_EBPF_OPEN_PORT=8080 OTEL_EBPF_TRACE_PRINTER=text /obi >/tmp/agent.out 2>&1 &
agent=$!
started=no
i=0
while [ "$i" -lt "$wait_agent" ]; do
	if grep -q 'obi-rs started' /tmp/agent.out; then started=yes; break; fi
	kill -0 "$agent" 2>/dev/null || { started=exited; break; }
	sleep 1
	i=$((i + 1))
done
[ "$started" = no ] && started=timeout
fact "agent_started=$started"
fact "agent_start_s=$(awk -v a="$start" -v b="$(up)" 'BEGIN{printf "%.1f", b-a}')"

if [ "$started" = yes ]; then
	# Discovery runs after "started": a request before the agent logs that it
	# instruments the server is not traced (the integration tests wait the same way).
	instrumented=no
	for _ in $(seq 60); do
		grep -q 'msg="instrumenting process".*cmd=/http-server' /tmp/agent.out && { instrumented=yes; break; }
		sleep 1
	done
	fact "instrumented=$instrumented"
	fact "instrumented_s=$(awk -v a="$start" -v b="$(up)" 'BEGIN{printf "%.1f", b-a}')"
	wget -q -O /tmp/body http://127.0.0.1:8080/kernel-matrix
	fact "wget_rc=$?"
	# The span is printed when the response is complete; give it a little time.
	for _ in 1 2 3 4 5 6 7 8 9 10; do grep -q ' GET /kernel-matrix[( ]' /tmp/agent.out && break; sleep 1; done
	fact "spans=$(grep -c ' GET /kernel-matrix[( ]' /tmp/agent.out)"
fi
kill "$agent" 2>/dev/null
sleep 1
section agent /tmp/agent.out
fact end
sync
poweroff -f
