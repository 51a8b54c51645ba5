#!/bin/busybox sh
# PID 1 of the kernel-matrix guest (see README.md): mounts what the agent
# needs, runs smoke.sh (obi check, the agent, nginx and curl) and copies its
# tagged results to the second serial port (ttyS1), which the host's
# matrix.sh reads, ending with "@@ end".
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

# Settings from the kernel command line: obi.wait=<seconds for the agent>,
# obi.memlock=unlimited (raise RLIMIT_MEMLOCK by hand before the agent starts),
# obi.btf=hidden (a tmpfs over /sys/kernel/btf: a kernel without BTF, as far
# as the agent can tell; it has to choose its no-BTF mode by itself).
wait_agent=$(sed -n 's/.*obi\.wait=\([0-9]*\).*/\1/p' /proc/cmdline)
: "${wait_agent:=120}"
# Results go to the second serial port; each fact is one short write.
out=/dev/ttyS1
echo "@@ kernel=$(uname -r)" >"$out"
echo "@@ boot_s=$(cut -d' ' -f1 /proc/uptime)" >"$out"
if grep -q 'obi\.memlock=unlimited' /proc/cmdline; then
	ulimit -l unlimited
	echo "@@ memlock=raised by hand" >"$out"
fi
if grep -q 'obi\.btf=hidden' /proc/cmdline; then
	mount -t tmpfs tmpfs /sys/kernel/btf
	echo "@@ btf=hidden" >"$out"
fi
mkdir -p /tmp/work
OUT=/tmp/results SMOKE_OBI=/obi SMOKE_NGINX=/usr/sbin/nginx SMOKE_CURL=/usr/bin/curl \
	CERT=/etc/obi-test/cert.pem KEY=/etc/obi-test/key.pem WORK=/tmp/work PORT=8080 WAIT="$wait_agent" \
	sh /smoke.sh
cat /tmp/results >"$out"
echo "@@ end" >"$out"
sync
poweroff -f
