#!/usr/bin/env bash
# Installs qemu-system-x86 and qemu-utils, both from bookworm-backports: the
# image's qemu-utils comes from there, and bookworm's qemu-system-x86 conflicts
# with it. Uses the private apt configuration (apt.sh); idempotent and quiet.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/apt.sh"
installed_from_backports() {
	dpkg-query -W -f='${Status} ${Version}' "$1" 2>/dev/null | grep -q "install ok installed .*bpo12"
}
if installed_from_backports qemu-system-x86 && installed_from_backports qemu-utils; then
	exit 0
fi
kernels_apt_setup
kernels_apt_update
DEBIAN_FRONTEND=noninteractive apt-get "${KERNELS_APT_OPTS[@]}" install -y -qq \
	--no-install-recommends -t bookworm-backports qemu-system-x86 qemu-utils >/dev/null
