#!/usr/bin/env bash
# The kernel matrix: boots each Debian cloud kernel that fetch.sh provides
# under qemu (TCG, one VM at a time), runs smoke.sh in it (through
# guest-init.sh) and on the host kernel natively, and prints one line per
# kernel. Exits non-zero when the host or a kernel whose series is listed in
# expected-to-work fails. See README.md.
#   tests/kernels/matrix.sh [RELEASE...]
# Settings: OBI_BIN (agent binary), OBI_KERNELS_CACHE, OBI_KERNELS_TIMEOUT
# (seconds per VM, default 180), OBI_KERNELS_AGENT_WAIT (seconds the guest
# waits for the agent to start, default 120), OBI_KERNELS_NICE (default 15),
# OBI_KERNELS_OUT (full guest outputs, default target/kernel-matrix),
# OBI_KERNELS_HOST=0 (skip the host kernel's row), OBI_KERNELS_HOST_PORT
# (first of the host run's three ports, default 18180),
# OBI_KERNELS_MEMLOCK=unlimited (the guest raises RLIMIT_MEMLOCK by hand before
# starting the agent: shows what fails after memlock on kernels before 5.11),
# OBI_KERNELS_MODES (default "btf nobtf": each kernel as it is, then with its
# BTF hidden, which the agent must notice and trace without).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
source "$here/apt.sh"
timeout_s="${OBI_KERNELS_TIMEOUT:-180}"
agent_wait="${OBI_KERNELS_AGENT_WAIT:-120}"
niceness="${OBI_KERNELS_NICE:-15}"
outdir="${OBI_KERNELS_OUT:-$repo/target/kernel-matrix}"
command -v qemu-system-x86_64 >/dev/null || { echo "matrix: qemu-system-x86_64 missing (tests/kernels/install-qemu.sh)" >&2; exit 1; }

if (($#)); then releases=("$@"); else mapfile -t releases < <("$here/fetch.sh"); fi
mkdir -p "$outdir"
initrd="$outdir/initrd.gz"
"$here/initramfs.sh" "$initrd"
OBI_BIN_PATH="${OBI_BIN:-$repo/target/release/obi}"
expected=$(grep -v '^#' "$here/expected-to-work" | grep . || true)

# Facts from a guest's result file: fact FILE KEY
fact() { sed -n "s/^@@ $2=//p" "$1" | tail -1; }
# Lines of a section: section FILE NAME
section() { awk -v s="@@ $2" '/^@@ / { on = ($0 == s); next } on' "$1"; }

# One line of the table for a result file, and whether it passed:
# report RELEASE RESULT_FILE SECS EXPECTED(yes/no) MODE(btf/nobtf); sets $failed.
report() {
	local release="$1" res="$2" secs="$3" expected_ok="$4" mode="$5"
	local check=ok started agent_log agent line
	if [[ "$(fact "$res" check_rc)" != 0 ]]; then
		check=fail
		[[ -z "$(fact "$res" check_rc)" ]] && check=none
	fi
	started=$(fact "$res" agent_started)
	agent_log=$(section "$res" agent)
	local h1 h2 tls prop
	h1=$(fact "$res" h1) h2=$(fact "$res" h2) tls=$(fact "$res" tls) prop=$(fact "$res" prop)
	if [[ "$started" == yes ]]; then
		agent="started in $(fact "$res" agent_start_s) s, nginx instrumented: $(fact "$res" instrumented) at $(fact "$res" instrumented_s) s"
		# What the agent said it lost on this kernel (optional hooks).
		local lost
		lost=$(grep -oE 'hook="[^"]*" lost="([^"\\]|\\.)*"' <<<"$agent_log" |
			sed -E 's/hook="([^"]*)" lost="(.*)"$/\1 (\2)/; s/\\"/"/g' | paste -sd';' - || true)
		[[ -n "$lost" ]] && agent="$agent; without: $lost"
	elif ! grep -qx "@@ end" "$res"; then
		agent="no result: the run did not finish (see $release.console)"
	else
		# The first error the agent logged, else its last line.
		line=$(grep -m1 'level=ERROR' <<<"$agent_log" || tail -1 <<<"$agent_log" || true)
		agent="${started:-not run}: $line"
	fi
	# The first line of obi check that is not ok, for a failing check.
	if [[ "$check" == fail ]]; then
		agent="$agent | check: $(section "$res" check | grep -m1 '^FAIL' || true)"
	fi
	# The no-BTF row passes only if the agent really ran its no-BTF build.
	local no_btf
	no_btf=$(fact "$res" no_btf)
	[[ "$mode" == nobtf && "$started" == yes && "$no_btf" != 1 ]] && agent="$agent; NOT in no-BTF mode"
	[[ "$mode" == nobtf ]] && release="$release no-BTF"
	printf '%-34s %-5s %-6s %-3s %-3s %-3s %-4s %s\n' "$release" "$secs" "$check" "${h1:--}" "${h2:--}" "${tls:--}" \
		"${prop:--}" "$(tr -s ' ' <<<"$agent")"
	if [[ "$expected_ok" == yes ]] &&
		[[ "$check" != ok || "$started" != yes || "$h1" != 1 || "$h2" != 1 || "$tls" != 1 || "$prop" != yes ||
			("$mode" == nobtf && "$no_btf" != 1) ]]; then
		echo "matrix: $release is expected to work and failed (full output: $res)" >&2
		failed=1
	fi
}

read -ra modes <<<"${OBI_KERNELS_MODES:-btf nobtf}"
printf '%-34s %-5s %-6s %-3s %-3s %-3s %-4s %s\n' KERNEL SECS CHECK H1 H2 TLS PROP AGENT
failed=0
for release in "${releases[@]}"; do
for mode in "${modes[@]}"; do
	kdir="$KERNELS_CACHE/kernels/$release"
	name="$release"
	btf_arg=""
	[[ "$mode" == nobtf ]] && name="$release-nobtf" btf_arg=" obi.btf=hidden"
	res="$outdir/$name.txt"
	rm -f "$res" "$res.raw" "$outdir/$name.console"
	t0=$(date +%s)
	# TCG on purpose: KVM is not usable on the CI machines, and TCG is what the
	# timings in README.md were measured with.
	nice -n "$niceness" timeout "$timeout_s" qemu-system-x86_64 -accel tcg -cpu max \
		-m 1024 -smp 1 -no-reboot -display none -monitor none -nic none \
		-kernel "$kdir/vmlinuz" -initrd "$initrd" \
		-append "console=ttyS0 panic=-1 quiet obi.wait=$agent_wait obi.memlock=${OBI_KERNELS_MEMLOCK:-default}$btf_arg" \
		-serial "file:$outdir/$name.console" -serial "file:$res.raw" \
		</dev/null >/dev/null 2>&1 || true
	secs=$(($(date +%s) - t0))
	# The guest's tty turns each newline into CR LF.
	tr -d '\r' <"$res.raw" >"$res" 2>/dev/null || touch "$res"
	rm -f "$res.raw"
	series=$(sed -E 's/^([0-9]+\.[0-9]+).*/\1/' <<<"$release")
	expected_ok=no
	grep -qxF "$series" <<<"$expected" && expected_ok=yes
	report "$release" "$res" "$secs" "$expected_ok" "$mode"
done
done

# The host kernel: the same smoke test, natively (OBI_KERNELS_HOST=0 skips it).
# In the no-BTF mode the smoke runs in a private mount namespace with a tmpfs
# over /sys/kernel/btf, as in the guests.
if [[ "${OBI_KERNELS_HOST:-1}" == 1 ]]; then
for mode in "${modes[@]}"; do
	release="host $(uname -r)"
	res="$outdir/host.txt"
	hide=()
	if [[ "$mode" == nobtf ]]; then
		res="$outdir/host-nobtf.txt"
		hide=(unshare -m sh -c 'mount -t tmpfs tmpfs /sys/kernel/btf && exec "$0" "$@"')
	fi
	work=$(mktemp -d)
	openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 30 \
		-keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
	mkdir "$work/run"
	: >"$res"
	t0=$(date +%s)
	# Ports well away from the integration tests' (they pick free ports).
	OUT="$res" SMOKE_OBI="$OBI_BIN_PATH" SMOKE_NGINX="$(command -v nginx)" SMOKE_CURL="$(command -v curl)" \
		CERT="$work/cert.pem" KEY="$work/key.pem" WORK="$work/run" PORT="${OBI_KERNELS_HOST_PORT:-18180}" \
		WAIT="$agent_wait" timeout "$timeout_s" "${hide[@]}" sh "$here/smoke.sh" || true
	echo "@@ end" >>"$res"
	rm -rf "$work"
	report "$release" "$res" "$(($(date +%s) - t0))" yes "$mode"
done
fi
exit "$failed"
