#!/usr/bin/env bash
# The whole test suite, as CI runs it. Needs root (real eBPF). Steps:
#   0. install what this machine lacks (scripts/install-deps.sh; a second or
#      so when everything is there already)
#   1. the committed eBPF objects match their sources (needs clang/llvm)
#   2. formatting and lints
#   3. unit, property and integration tests (real servers, real clients, real kernel)
#      and the wrong-parent audit summed over every concurrency test: 0 wrong
#   4. the kernel matrix: Debian's 5.10, 6.1 and 6.12 cloud kernels booted under
#      qemu and the host kernel: obi check, then HTTP/1, HTTP/2, HTTPS and
#      propagation through nginx and curl in each (tests/kernels)
#   5. every protocol fuzz target for a bounded time (OBI_FUZZ_SECONDS, default 20)
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== dependencies"
# A root tool that writes its output "to /dev/null" can chmod it (seen once on
# a development machine: mode 0755), and every test server that drops root
# (PostgreSQL's initdb, MariaDB) then fails far from the cause. Say so and mend it.
devnull_mode=$(stat -c %a /dev/null 2>/dev/null || echo missing)
if [[ ! -c /dev/null || $devnull_mode != 666 ]]; then
	echo "test.sh: /dev/null is not a world-writable character device (mode $devnull_mode); restoring it" >&2
	[[ -c /dev/null ]] || { rm -f /dev/null && mknod -m 666 /dev/null c 1 3; }
	chmod 666 /dev/null
fi
scripts/install-deps.sh

echo "== eBPF objects are fresh"
bpf/scripts/build.sh --check

echo "== cargo fmt"
cargo fmt --all -- --check
(cd fuzz && cargo fmt -- --check)

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo test"
export OBI_PARENT_AUDIT="$PWD/target/parent-audit.log"
rm -f "$OBI_PARENT_AUDIT"
cargo test --workspace --locked -- --test-threads="${OBI_TEST_THREADS:-2}"

echo "== parent audit (client spans against the request that caused them)"
scripts/parent-audit-summary.sh "$OBI_PARENT_AUDIT"

echo "== kernel matrix (tests/kernels/README.md)"
OBI_BIN="$PWD/target/debug/obi" tests/kernels/matrix.sh

echo "== fuzz (bounded)"
scripts/fuzz.sh "${OBI_FUZZ_SECONDS:-20}"
