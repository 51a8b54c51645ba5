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
OBJCOPY=${LLVM_OBJCOPY:-llvm-objcopy}
out=bpf/obj
check=0
if [[ ${1:-} == --check ]]; then
	check=1
	out=$(mktemp -d)
	trap 'rm -rf "$out"' EXIT
fi

for tool in "$CLANG" "$STRIP" "$OBJCOPY"; do
	command -v "$tool" >/dev/null || { echo "build.sh: $tool not found (apt-get install clang llvm)" >&2; exit 1; }
done

declare -A target_arch=([x86_64]=x86 [arm64]=arm64)
mkdir -p "$out"
# Bytes 28..31 of .BTF.ext (little endian): the length of its CO-RE
# relocation records. A no-BTF object must have none: aya applies no
# relocation without a target BTF, so each would read at the build's offsets.
core_relo_len() {
	local ext len
	ext=$(mktemp)
	"$OBJCOPY" --dump-section .BTF.ext="$ext" "$1" /dev/null
	len=$(od -An -tu4 -j28 -N4 "$ext" | tr -d ' ')
	rm -f "$ext"
	echo "${len:-0}"
}

# Each source is built twice: <name>.<arch>.bpf.o reads kernel structures
# with CO-RE; <name>-nobtf.<arch>.bpf.o (-DOBI_NO_BTF) reads none, for
# kernels without BTF. BPF_NO_PRESERVE_ACCESS_INDEX makes vmlinux.h's types
# plain C, so what it still uses (tracepoint contexts, pt_regs, iovec: ABI)
# compiles to fixed offsets.
for src in bpf/*.bpf.c; do
	name=$(basename "$src" .bpf.c)
	for arch in x86_64 arm64; do
		for variant in "" -nobtf; do
			obj="$out/$name$variant.$arch.bpf.o"
			defs=()
			[[ -n $variant ]] && defs=(-DOBI_NO_BTF -DBPF_NO_PRESERVE_ACCESS_INDEX)
			"$CLANG" -target bpf -D__TARGET_ARCH_${target_arch[$arch]} "${defs[@]}" -g -O2 -Wall -Werror \
				-ffile-prefix-map="$root"=. -fno-ident \
				-Ibpf/include -Ibpf/include/libbpf -Ibpf/include/vmlinux/$arch \
				-c "$src" -o "$obj"
			"$STRIP" -g "$obj"
			if [[ -n $variant ]] && (($(core_relo_len "$obj") != 0)); then
				echo "build.sh: $obj has CO-RE relocations; the no-BTF build must read no kernel structure" >&2
				exit 1
			fi
		done
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
