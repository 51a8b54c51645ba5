#!/usr/bin/env bash
# Builds the guest's initramfs (one for every kernel: the guest needs no
# module, since the cloud kernels have 8250 serial, devtmpfs, BPF and initrd
# support built in):
#   /init         guest-init.sh
#   /bin/busybox  Debian's busybox-static (fetch.sh)
#   /obi          the agent (OBI_BIN, default target/release/obi), stripped,
#                 with the shared libraries ldd lists
#   /http-server  http_server.rs, built static with rustc
# Usage: initramfs.sh OUTPUT.cpio.gz
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
source "$here/apt.sh"
out="$1"
bin="${OBI_BIN:-$repo/target/release/obi}"
[[ -x "$bin" ]] || { echo "initramfs: no agent binary at $bin (cargo build --release)" >&2; exit 1; }
[[ -x "$KERNELS_CACHE/busybox" ]] || { echo "initramfs: run fetch.sh first" >&2; exit 1; }

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,usr/bin,proc,sys,dev,tmp,etc}
cp "$KERNELS_CACHE/busybox" "$root/bin/busybox"
cp "$here/guest-init.sh" "$root/init"
strip --strip-debug -o "$root/obi" "$bin"
ldd "$bin" | grep -oE '/[^ ]+' | while read -r lib; do
	mkdir -p "$root$(dirname "$lib")"
	cp -L "$lib" "$root$lib"
done
rustc --edition 2021 -O -C target-feature=+crt-static -C debuginfo=0 \
	-o "$root/http-server" "$here/http_server.rs"
(cd "$root" && find . | "$KERNELS_CACHE/busybox" cpio -o -H newc 2>/dev/null) | gzip -1 >"$out"
