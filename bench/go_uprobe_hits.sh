#!/usr/bin/env bash
# How often each Go function a goroutine-following probe could attach to
# runs per request: the Go test app (crates/obi/tests/apps/go_fanout.go)
# serves N requests, 50 at once, each making 2 net/http calls to a leaf
# server (a copy of the binary, so its own calls are not counted). Counts
# come from tracefs uprobe events of our own group (removed afterwards), so
# no agent is needed. A uprobe hit costs ~4 us on this machine's kernel:
# multiply. Root; the binary must have its symbol table (no -s).
#   bench/go_uprobe_hits.sh GOROOT [N]     e.g. /usr/lib/go-1.23 200
set -euo pipefail
goroot=$1 N=${2:-200}
here="$(cd "$(dirname "$0")" && pwd)"
work=$(mktemp -d)
T=/sys/kernel/tracing G=obigohits_$$
B="$work/fanout"
"$here/../crates/obi/tests/apps/build_go.sh" "$goroot" "" "$B"
cp "$B" "$B.leaf"
fns=("runtime.newproc1" "runtime.goexit1" "runtime.casgstatus" "net/http.(*conn).serve"
	"net/http.serverHandler.ServeHTTP" "net/http.(*persistConn).roundTrip" "net/http.(*Transport).roundTrip"
	"internal/poll.(*FD).Read" "internal/poll.(*FD).Write")
pids=()
cleanup() {
	kill "${pids[@]}" 2>/dev/null || true
	echo 0 >"$T/events/$G/enable" 2>/dev/null || true
	for j in "${!fns[@]}"; do echo "-:$G/f$j" >>"$T/uprobe_events" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT
# Go's linker puts the text of a non-PIE amd64 binary at file offset = address - 0x400000.
for j in "${!fns[@]}"; do
	addr=$(nm "$B" | awk -v f="${fns[$j]}" '$3==f {print $1}')
	echo "p:$G/f$j $B:$(printf '0x%x' $((0x$addr - 0x400000)))" >>"$T/uprobe_events"
done
echo 1 >"$T/events/$G/enable"
port=$((20000 + RANDOM % 10000))
"$B.leaf" -listen "127.0.0.1:$port" >/dev/null & pids+=($!)
"$B" -listen "127.0.0.1:$((port + 1))" -calls "http://127.0.0.1:$port/leaf" >/dev/null & pids+=($!)
sleep 1
before=$(cat "$T/uprobe_profile")
python3 "$here/../crates/obi/tests/apps/concurrent_get.py" "http://127.0.0.1:$((port + 1))/fanout/{i}" "$N" 50 >/dev/null
after=$(cat "$T/uprobe_profile")
echo "$("$goroot/bin/go" version), $N requests x 2 calls, 50 at once: hits per request"
for j in "${!fns[@]}"; do
	b=$(awk -v e="f$j" '$2==e {print $3}' <<<"$before")
	a=$(awk -v e="f$j" '$2==e {print $3}' <<<"$after")
	awk -v f="${fns[$j]}" -v a="$a" -v b="$b" -v n="$N" 'BEGIN { printf "%-40s %8.2f\n", f, (a - b) / n }'
done
