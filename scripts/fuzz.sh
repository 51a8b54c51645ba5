#!/usr/bin/env bash
# Runs every fuzz target for a bounded time:  scripts/fuzz.sh [SECONDS per target]
#
# Works on the stable toolchain: libFuzzer comes from the libfuzzer-sys crate
# and the coverage instrumentation from stable -C flags (no nightly, no
# cargo-fuzz). Crashes are saved under fuzz/artifacts/<target>/; the corpus
# grows under fuzz/corpus/<target>/ (both ignored by git).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-30}"
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing"
# libFuzzer itself is C++ (built by libfuzzer-sys): any C++ compiler will do.
if [ -z "${CXX:-}" ] && ! command -v c++ >/dev/null; then
	export CXX=clang++
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
# An explicit --target keeps RUSTFLAGS off build scripts and proc macros.
host="$(rustc -vV | sed -n 's/^host: //p')"
targets=(http1_streams http2_records hpack mqtt resp postgres memcached mysql)
cargo build --release --locked --quiet --bins --target "$host"
bin="$CARGO_TARGET_DIR/$host/release"
for t in "${targets[@]}"; do
	mkdir -p "corpus/$t" "artifacts/$t"
	echo "fuzz: $t for ${secs}s"
	"$bin/$t" -max_total_time="$secs" -max_len=8192 -print_final_stats=1 \
		-artifact_prefix="artifacts/$t/" "corpus/$t" 2>&1 | grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|==|SUMMARY|Done)" || true
	if compgen -G "artifacts/$t/*" >/dev/null; then
		echo "fuzz: $t found a crash: $(ls artifacts/$t)" >&2
		exit 1
	fi
done
echo "fuzz: ok"
