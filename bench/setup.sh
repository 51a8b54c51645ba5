#!/usr/bin/env bash
# Installs what bench/run.py needs. Run as root:  sudo bench/setup.sh
#
# What it installs, and why:
#  - Debian packages (only those missing): wrk (load generator; its LuaJIT runs
#    bench/pace.lua for fixed-rate load), nginx (static server), nodejs + npm
#    (Node.js app and its SDK), python3-venv (the bench virtualenv).
#  - bench/.venv, built on Debian's /usr/bin/python3 so the Python servers the
#    benchmark starts are a plain CPython binary:
#      matplotlib                     the throughput plot
#      opentelemetry-proto, grpcio    the local OTLP receiver (bench/otlp_receiver.py)
#      flask                          the Python app (bench/apps/flask_app.py)
#      opentelemetry-distro, opentelemetry-exporter-otlp-proto-grpc,
#      opentelemetry-instrumentation-flask
#                                     the zero-code SDK comparison
#                                     (`opentelemetry-instrument python app.py`)
#  - bench/node/node_modules: @opentelemetry/auto-instrumentations-node and
#    @opentelemetry/api (`node --require @opentelemetry/auto-instrumentations-node/register`).
#
# The SDK versions are pinned so that runs on different days compare the same
# thing; bump them together (the Python instrumentation packages carry the
# 0.NNbN version that matches SDK 1.NN).
#
# Idempotent: a second run only checks (no network unless something is missing).
# BENCH_SKIP_PY_SDK=1 / BENCH_SKIP_NODE_SDK=1 skip the SDK installs; run.py then
# skips that comparison and says so.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"

if [ "$(id -u)" != 0 ]; then
    echo "setup.sh: run as root (sudo bench/setup.sh)" >&2
    exit 1
fi

OTEL_PY_SDK=1.45.1
OTEL_PY_CONTRIB=0.66b1
OTEL_NODE_AUTO=0.82.0
OTEL_NODE_API=1.10.0

missing=()
for p in wrk nginx python3-venv; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup.sh: apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ ! -x .venv/bin/python ]; then
    echo "setup.sh: creating bench/.venv"
    /usr/bin/python3 -m venv .venv
fi
py=.venv/bin/python
pip_install() {
    $py -m pip install -q --disable-pip-version-check "$@"
}

# Each group is installed only when its import check fails.
if ! $py -c 'import matplotlib, grpc, opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc' 2>/dev/null; then
    echo "setup.sh: pip install matplotlib grpcio opentelemetry-proto==$OTEL_PY_SDK"
    pip_install 'matplotlib>=3.7' 'grpcio>=1.60' "opentelemetry-proto==$OTEL_PY_SDK"
fi
if [ "${BENCH_SKIP_PY_SDK:-0}" != 1 ]; then
    if ! $py -c 'import flask, opentelemetry.instrumentation.flask, opentelemetry.exporter.otlp.proto.grpc.trace_exporter, opentelemetry.distro' 2>/dev/null ||
        [ ! -x .venv/bin/opentelemetry-instrument ]; then
        echo "setup.sh: pip install flask + OpenTelemetry Python zero-code ($OTEL_PY_SDK / $OTEL_PY_CONTRIB)"
        pip_install 'flask>=3' \
            "opentelemetry-sdk==$OTEL_PY_SDK" \
            "opentelemetry-exporter-otlp-proto-grpc==$OTEL_PY_SDK" \
            "opentelemetry-distro==$OTEL_PY_CONTRIB" \
            "opentelemetry-instrumentation-flask==$OTEL_PY_CONTRIB"
    fi
else
    # Flask is still needed for the uninstrumented and obi runs of the Python app.
    $py -c 'import flask' 2>/dev/null || pip_install 'flask>=3'
fi

if [ "${BENCH_SKIP_NODE_SDK:-0}" != 1 ]; then
    mkdir -p node
    if [ ! -f node/package.json ]; then
        printf '{\n  "name": "obi-bench-node-sdk",\n  "private": true\n}\n' > node/package.json
    fi
    if [ ! -f node/node_modules/@opentelemetry/auto-instrumentations-node/package.json ]; then
        echo "setup.sh: npm install @opentelemetry/auto-instrumentations-node@$OTEL_NODE_AUTO"
        (cd node && npm install --no-audit --no-fund --loglevel=error \
            "@opentelemetry/auto-instrumentations-node@$OTEL_NODE_AUTO" "@opentelemetry/api@$OTEL_NODE_API")
    fi
fi

node_sdk=none
if [ -f node/node_modules/@opentelemetry/auto-instrumentations-node/package.json ]; then
    node_sdk=$(node -p 'require("./node/node_modules/@opentelemetry/auto-instrumentations-node/package.json").version')
fi
py_sdk=$($py -c 'from importlib.metadata import version as v
try: print(v("opentelemetry-sdk"))
except Exception: print("none")')
echo "setup.sh: ok (python $($py -c 'import sys; print(sys.version.split()[0])'), wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}')," \
    "nginx $(nginx -v 2>&1 | sed 's/.*nginx\///'), node $(node --version), otel python sdk $py_sdk, otel node auto $node_sdk)"
