#!/usr/bin/env bash
# Builds go_fanout.go with one of Debian's Go toolchains, offline and
# reproducibly: build_go.sh <GOROOT> <ldflags> <output>. The build cache
# lives in $TMPDIR/obi-go-cache (shared by the unit and integration tests).
set -euo pipefail
goroot=$1 ldflags=$2 out=$3
cache="${TMPDIR:-/tmp}/obi-go-cache"
mkdir -p "$cache"
if [[ ! -x "$goroot/bin/go" ]]; then
	echo "$goroot/bin/go missing: run scripts/install-deps.sh" >&2
	exit 1
fi
GOCACHE="$cache/build" GOPATH="$cache/gopath" GO111MODULE=off GOTOOLCHAIN=local GOFLAGS= CGO_ENABLED=0 \
	"$goroot/bin/go" build -trimpath -ldflags "$ldflags" -o "$out.tmp$$" "$(dirname "$0")/go_fanout.go"
mv "$out.tmp$$" "$out"
