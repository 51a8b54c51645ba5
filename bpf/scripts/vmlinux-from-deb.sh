#!/usr/bin/env bash
# Generates a CO-RE vmlinux.h from the BTF inside a Debian kernel image package,
# without booting that kernel (works for a foreign architecture, e.g. arm64 on x86_64).
#
#   bpf/scripts/vmlinux-from-deb.sh PKG_OR_DEB OUT.h
#
# PKG_OR_DEB is a downloaded .deb or a package name for `apt-get download`, e.g.
#   dpkg --add-architecture arm64 && apt-get update
#   bpf/scripts/vmlinux-from-deb.sh linux-image-6.1.0-56-arm64-unsigned:arm64 \
#       bpf/include/vmlinux/arm64/vmlinux.h
# Needs: dpkg-deb, python3, bpftool (and zstd/lz4 only for such zboot payloads).
set -euo pipefail

[[ $# == 2 ]] || { echo "usage: $0 PKG_OR_DEB OUT.h" >&2; exit 2; }
src=$1
out=$(realpath -m "$2")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [[ -f $src ]]; then
	deb=$(realpath "$src")
else
	(cd "$work" && apt-get download "$src" >/dev/null)
	deb=$(echo "$work"/*.deb)
fi
dpkg-deb -x "$deb" "$work/root"
vmlinuz=$(ls "$work"/root/boot/vmlinuz-* | head -n1)

# 1. Unwrap the kernel into a raw Image: it may be raw, gzip'ed, or an EFI zboot
#    PE ("MZ" + "zimg" at 4; payload offset/size at 8/12; compression name at 24).
# 2. Find the BTF blob: struct btf_header {u16 magic=0xEB9F; u8 version=1, flags=0;
#    u32 hdr_len=24, type_off, type_len, str_off, str_len}, little-endian. Every
#    candidate that lies within the file is written out as btf.N for step 3.
python3 - "$vmlinuz" "$work" <<'EOF'
import bz2, gzip, lzma, struct, subprocess, sys
path, work = sys.argv[1], sys.argv[2]
data = open(path, "rb").read()

def unwrap(d):
    if d[:2] == b"\x1f\x8b":
        return unwrap(gzip.decompress(d))
    if d[:2] == b"MZ" and d[4:8] == b"zimg":
        off, size = struct.unpack_from("<II", d, 8)
        kind = d[24:32].rstrip(b"\0").decode()
        p = d[off:off + size]
        if kind == "gzip": return unwrap(gzip.decompress(p))
        if kind in ("xz", "lzma"): return unwrap(lzma.decompress(p))
        if kind == "bzip2": return unwrap(bz2.decompress(p))
        tool = {"zstd22": "zstd", "zstd": "zstd", "lz4": "lz4"}[kind]
        return unwrap(subprocess.run([tool, "-dc"], input=p, capture_output=True, check=True).stdout)
    return d

img = unwrap(data)
magic = b"\x9f\xeb\x01\x00\x18\x00\x00\x00"   # magic, version 1, flags 0, hdr_len 24
n, pos = 0, img.find(magic)
while pos >= 0:
    hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from("<5I", img, pos + 4)
    total = hdr_len + str_off + str_len
    if (type_off + type_len <= str_off and str_len > 0 and pos + total <= len(img)
            and img[pos + hdr_len + str_off] == 0):  # string section starts with ""
        open(f"{work}/btf.{n}", "wb").write(img[pos:pos + total])
        n += 1
    pos = img.find(magic, pos + 1)
print(f"{n} BTF candidate(s) in {path}", file=sys.stderr)
EOF

# 3. Keep the first candidate that bpftool can dump as a full kernel header.
for blob in "$work"/btf.*; do
	[[ -e $blob ]] || break
	if bpftool btf dump file "$blob" format c >"$work/vmlinux.h" 2>/dev/null &&
		grep -q '^struct task_struct {' "$work/vmlinux.h"; then
		mkdir -p "$(dirname "$out")"
		mv "$work/vmlinux.h" "$out"
		echo "wrote $out from $(basename "$deb")" >&2
		exit 0
	fi
done
echo "no usable BTF found in $vmlinuz" >&2
exit 1
