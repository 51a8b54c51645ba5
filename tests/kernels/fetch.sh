#!/usr/bin/env bash
# Downloads the matrix's Debian cloud kernels and busybox-static as .deb files
# through a private apt configuration (apt.sh) and unpacks them into the cache:
#   $OBI_KERNELS_CACHE/kernels/<release>/vmlinuz
#   $OBI_KERNELS_CACHE/busybox
# Prints the unpacked kernel releases, one a line. Idempotent; needs the network
# only for what is not cached yet.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/apt.sh"
kernels_apt_setup
kernels_apt_update

# One kernel per line of the matrix: the newest cloud image whose package name
# matches (bullseye 5.10, bookworm 6.1, bookworm-backports 6.12).
patterns=("${OBI_KERNELS_PATTERNS[@]:-}")
if [[ -z "${patterns[0]}" ]]; then
	patterns=('5\.10\.0-[0-9]+' '6\.1\.0-[0-9]+' '6\.12\.[0-9]+\+deb12')
fi
debs="$KERNELS_CACHE/debs"
mkdir -p "$debs" "$KERNELS_CACHE/kernels"
download() { # package -> path of the .deb in $debs
	local pkg="$1" file
	file=$(ls "$debs/${pkg}_"*.deb 2>/dev/null | head -1 || true)
	if [[ -z "$file" ]]; then
		(cd "$debs" && apt-get "${KERNELS_APT_OPTS[@]}" download -qq "$pkg" >/dev/null)
		file=$(ls "$debs/${pkg}_"*.deb | head -1)
	fi
	echo "$file"
}

for pat in "${patterns[@]}"; do
	pkg=$(apt-cache "${KERNELS_APT_OPTS[@]}" pkgnames linux-image- |
		grep -E "^linux-image-${pat}-cloud-amd64$" | sort -V | tail -1)
	[[ -n "$pkg" ]] || { echo "fetch: no cloud kernel matches $pat" >&2; continue; }
	release="${pkg#linux-image-}"
	dir="$KERNELS_CACHE/kernels/$release"
	if [[ ! -f "$dir/vmlinuz" ]]; then
		deb=$(download "$pkg")
		tmp=$(mktemp -d)
		dpkg-deb -x "$deb" "$tmp"
		mkdir -p "$dir"
		cp "$tmp/boot/vmlinuz-$release" "$dir/vmlinuz"
		cp "$tmp/boot/config-$release" "$dir/config" 2>/dev/null || true
		# No module is kept: the guest needs none (see initramfs.sh).
		rm -rf "$tmp"
	fi
	echo "$release"
done

if [[ ! -x "$KERNELS_CACHE/busybox" ]]; then
	deb=$(download busybox-static)
	tmp=$(mktemp -d)
	dpkg-deb -x "$deb" "$tmp"
	cp "$tmp/bin/busybox" "$KERNELS_CACHE/busybox"
	rm -rf "$tmp"
fi
