#!/usr/bin/env bash
# Builds the guest's initramfs (one for every kernel: the guest needs no
# module, since the cloud kernels have 8250 serial, devtmpfs, BPF and initrd
# support built in):
#   /init            guest-init.sh, which runs /smoke.sh
#   /bin/busybox     Debian's busybox-static (fetch.sh)
#   /obi             the agent (OBI_BIN, default target/release/obi), stripped
#   /usr/sbin/nginx, /usr/bin/curl   the host's, for the smoke test's server and client
#   /etc/obi-test/   a self-signed certificate for nginx's HTTPS port
# with the shared libraries ldd lists for each binary.
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
cp "$here/smoke.sh" "$root/smoke.sh"
strip --strip-debug -o "$root/obi" "$bin"
for tool in nginx curl openssl; do
	command -v "$tool" >/dev/null || { echo "initramfs: $tool missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
done
mkdir -p "$root/usr/sbin" "$root/etc/obi-test"
cp "$(command -v nginx)" "$root/usr/sbin/nginx"
cp "$(command -v curl)" "$root/usr/bin/curl"
for b in "$bin" "$(command -v nginx)" "$(command -v curl)"; do
	ldd "$b" | grep -oE '/[^ ]+' | while read -r lib; do
		[[ -e "$root$lib" ]] && continue
		mkdir -p "$root$(dirname "$lib")"
		cp -L "$lib" "$root$lib"
	done
done
# nginx's `user root;` looks root up.
echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
echo 'root:x:0:' >"$root/etc/group"
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 3650 \
	-keyout "$root/etc/obi-test/key.pem" -out "$root/etc/obi-test/cert.pem" 2>/dev/null
(cd "$root" && find . | "$KERNELS_CACHE/busybox" cpio -o -H newc 2>/dev/null) | gzip -1 >"$out"
