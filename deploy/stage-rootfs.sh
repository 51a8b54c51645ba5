#!/usr/bin/env bash
# Lays out the root file system of the obi-rs image: the stripped release
# binary and the shared libraries it loads, nothing else (no shell).
#
#   deploy/stage-rootfs.sh ARCH OUT [BINARY]
#
# ARCH is amd64 or arm64 (Docker's TARGETARCH names). Without BINARY it runs
# `cargo build --release` for that architecture first. The libraries are the
# ELF NEEDED entries and the interpreter of the binary, found in the
# architecture's multiarch directories (or under $SYSROOT for a cross build,
# e.g. SYSROOT=/usr/aarch64-linux-gnu from Debian's libc6-arm64-cross).
set -euo pipefail
arch=${1:?ARCH (amd64 or arm64)}
out=${2:?OUT directory}
binary=${3:-}
case "$arch" in
amd64) triple=x86_64-unknown-linux-gnu multiarch=x86_64-linux-gnu ;;
arm64) triple=aarch64-unknown-linux-gnu multiarch=aarch64-linux-gnu ;;
*) echo "stage-rootfs: unknown architecture $arch (amd64 or arm64)" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
native=$(dpkg --print-architecture 2>/dev/null || echo "")
strip=strip
if [[ $arch != "$native" ]]; then
	# A cross build: Debian's gcc-aarch64-linux-gnu links and strips; the
	# Rust standard library for the target must be installed (rustup target add).
	strip=$multiarch-strip
	export "CARGO_TARGET_$(echo "$triple" | tr a-z- A-Z_)_LINKER=$multiarch-gcc"
	: "${SYSROOT:=/usr/$multiarch}"
fi
if [[ -z $binary ]]; then
	cargo build --release --locked --target "$triple" --bin obi
	binary=target/$triple/release/obi
fi

rm -rf "$out"
mkdir -p "$out"
"$strip" -o "$out/obi" "$binary"

# Where a library named in the binary is found on this machine.
find_lib() {
	local dir
	for dir in ${SYSROOT:+"$SYSROOT/lib"} "/lib/$multiarch" "/usr/lib/$multiarch"; do
		[[ -e $dir/$1 ]] && { echo "$dir/$1"; return; }
	done
	echo "stage-rootfs: $1 not found for $arch" >&2
	exit 1
}
interp=$(readelf -l "$binary" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
mkdir -p "$out$(dirname "$interp")" "$out/lib/$multiarch"
cp -L "$(find_lib "$(basename "$interp")")" "$out$interp"
for lib in $(readelf -d "$binary" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
	[[ $lib == "$(basename "$interp")" ]] && continue
	cp -L "$(find_lib "$lib")" "$out/lib/$multiarch/$lib"
done
echo "stage-rootfs: $out ($(du -sh "$out" | cut -f1)): $(cd "$out" && find . -type f | sort | tr '\n' ' ')" >&2
