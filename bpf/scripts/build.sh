#!/usr/bin/env bash
# Compiles every bpf/*.bpf.c for x86_64 and arm64 into bpf/obj/<name>.<arch>.bpf.o.
# The objects are committed and embedded in the agent, so `cargo build` needs no clang.
#
#   bpf/scripts/build.sh            rebuild the committed objects
#   bpf/scripts/build.sh --check    rebuild into a temp dir and fail if they differ
#
# Output is byte-reproducible for a given clang: paths are made relative with
# -ffile-prefix-map and DWARF is stripped (BTF, needed for CO-RE, is kept).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
CLANG=${CLANG:-clang}
STRIP=${LLVM_STRIP:-llvm-strip}
out=bpf/obj
check=0
if [[ ${1:-} == --check ]]; then
	check=1
	out=$(mktemp -d)
	trap 'rm -rf "$out"' EXIT
fi

for tool in "$CLANG" "$STRIP"; do
	command -v "$tool" >/dev/null || { echo "build.sh: $tool not found (apt-get install clang llvm)" >&2; exit 1; }
done

declare -A target_arch=([x86_64]=x86 [arm64]=arm64)
mkdir -p "$out"
for src in bpf/*.bpf.c; do
	name=$(basename "$src" .bpf.c)
	for arch in x86_64 arm64; do
		obj="$out/$name.$arch.bpf.o"
		"$CLANG" -target bpf -D__TARGET_ARCH_${target_arch[$arch]} -g -O2 -Wall -Werror \
			-ffile-prefix-map="$root"=. -fno-ident \
			-Ibpf/include -Ibpf/include/libbpf -Ibpf/include/vmlinux/$arch \
			-c "$src" -o "$obj"
		"$STRIP" -g "$obj"
	done
done

if ((check)); then
	status=0
	for obj in "$out"/*.bpf.o; do
		committed=bpf/obj/$(basename "$obj")
		if ! cmp -s "$obj" "$committed"; then
			echo "stale: $committed does not match its sources; run bpf/scripts/build.sh and commit" >&2
			status=1
		fi
	done
	for committed in bpf/obj/*.bpf.o; do
		[[ -e $out/$(basename "$committed") ]] || { echo "orphan: $committed has no source" >&2; status=1; }
	done
	((status == 0)) && echo "bpf objects are up to date ($("$CLANG" --version | head -1))"
	exit $status
fi
ls -l bpf/obj
