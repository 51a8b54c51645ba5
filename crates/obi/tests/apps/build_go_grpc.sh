#!/usr/bin/env bash
# Builds go_grpc_fanout/ (a net/http server calling grpc-go) with one of
# Debian's Go toolchains against Debian's Go sources (golang-google-grpc-dev
# and its dependencies under /usr/share/gocode), offline, in GOPATH mode:
# build_go_grpc.sh <GOROOT> <ldflags> <output>. The build cache is shared
# with build_go.sh.
set -euo pipefail
goroot=$1 ldflags=$2 out=$3
cache="${TMPDIR:-/tmp}/obi-go-cache"
mkdir -p "$cache"
if [[ ! -x "$goroot/bin/go" || ! -d /usr/share/gocode/src/google.golang.org/grpc ]]; then
	echo "$goroot/bin/go or golang-google-grpc-dev missing: run scripts/install-deps.sh" >&2
	exit 1
fi
GOCACHE="$cache/build" GOPATH=/usr/share/gocode GO111MODULE=off GOTOOLCHAIN=local GOFLAGS= CGO_ENABLED=0 \
	"$goroot/bin/go" build -trimpath -ldflags "$ldflags" -o "$out.tmp$$" "$(dirname "$0")/go_grpc_fanout/main.go"
mv "$out.tmp$$" "$out"
