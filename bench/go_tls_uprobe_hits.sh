#!/usr/bin/env bash
# Uprobe hits per request of the Go crypto/tls probes (bpf/include/obi/go.bpf.h):
# crypto/tls.(*Conn).Read is probed at its entry and at its `ret`s (one of
# them per call), (*Conn).Write at its entry, so a request costs
# 2 x Reads + Writes. Counted with tracefs uprobe events of our own group
# (removed afterwards) on the Go test app (crates/obi/tests/apps/go_fanout.go),
# no agent needed. Only the probed copy of the binary counts: the peer is a
# copy. A uprobe hit costs ~4 us on this machine's kernel: multiply.
# Root; the binary must have its symbol table (no -s).
#   bench/go_tls_uprobe_hits.sh GOROOT [N]     e.g. /usr/lib/go-1.23 200
set -euo pipefail
goroot=$1 N=${2:-200}
here="$(cd "$(dirname "$0")" && pwd)"
work=$(mktemp -d)
T=/sys/kernel/tracing G=obigotls_$$
B="$work/fanout"
"$here/../crates/obi/tests/apps/build_go.sh" "$goroot" "" "$B"
cp "$B" "$B.peer"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/key.pem" -out "$work/cert.pem" -days 1 \
	-subj /CN=localhost -addext "subjectAltName=IP:127.0.0.1" 2>/dev/null
fns=("crypto/tls.(*Conn).Read" "crypto/tls.(*Conn).Write")
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
tls=(-cert "$work/cert.pem" -key "$work/key.pem")
"$B" -listen "127.0.0.1:$port" "${tls[@]}" >/dev/null & pids+=($!)
"$B.peer" -listen "127.0.0.1:$((port + 1))" "${tls[@]}" >/dev/null & pids+=($!)
"$B" -listen "127.0.0.1:$((port + 2))" -insecure >/dev/null & pids+=($!)
"$B" -listen "127.0.0.1:$((port + 3))" -insecure -h2 >/dev/null & pids+=($!)
sleep 1
urls() { for i in $(seq "$N"); do printf -- '-o /dev/null https://127.0.0.1:%s/leaf/%s\n' "$1" "$i"; done; }
count() { # label, per: what a "request" is; runs the rest
	local label=$1 per=$2
	shift 2
	local before after
	before=$(cat "$T/uprobe_profile")
	"$@" >/dev/null
	after=$(cat "$T/uprobe_profile")
	awk -v l="$label" -v n="$per" -v b="$before" -v a="$after" 'BEGIN {
		split(b, bl, "\n"); split(a, al, "\n")
		for (i in bl) { split(bl[i], f, " "); B[f[2]] = f[3] }
		for (i in al) { split(al[i], f, " "); A[f[2]] = f[3] }
		r = (A["f0"] - B["f0"]) / n; w = (A["f1"] - B["f1"]) / n
		printf "%-58s Read %5.2f  Write %5.2f  hits %5.2f\n", l, r, w, 2 * r + w }'
}
echo "$("$goroot/bin/go" version), N=$N: per request"
# shellcheck disable=SC2046
count "server, HTTP/1.1, one keep-alive connection (curl)" "$N" curl -sk --http1.1 $(urls "$port")
count "server, HTTP/1.1, a new connection per request (curl)" 50 \
	bash -c "for i in \$(seq 50); do curl -sk --http1.1 -o /dev/null https://127.0.0.1:$port/leaf/\$i; done"
# shellcheck disable=SC2046
count "server, HTTP/2, one connection (curl)" "$N" curl -sk --http2 $(urls "$port")
count "client, HTTP/1.1, per call (50 at once, 2 calls each)" $((2 * N)) python3 \
	"$here/../crates/obi/tests/apps/concurrent_get.py" \
	"http://127.0.0.1:$((port + 2))/fanout/{i}/2?via=inline&base=https%3A%2F%2F127.0.0.1%3A$((port + 1))" "$N" 50
count "client, HTTP/2, per call (50 at once, 2 calls each)" $((2 * N)) python3 \
	"$here/../crates/obi/tests/apps/concurrent_get.py" \
	"http://127.0.0.1:$((port + 3))/fanout/{i}/2?via=inline&base=https%3A%2F%2F127.0.0.1%3A$((port + 1))" "$N" 50
