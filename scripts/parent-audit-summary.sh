#!/usr/bin/env bash
# Sums the wrong-parent audit lines the concurrency tests append (see
# crates/obi/tests/common/audit.rs) and fails when any parent was wrong or
# when no test recorded anything (the audit would then prove nothing).
set -euo pipefail
log="${1:?usage: parent-audit-summary.sh AUDIT_LOG}"
if [[ ! -s "$log" ]]; then
	echo "parent audit: no audited test ran (expected lines in $log)" >&2
	exit 1
fi
awk '
	{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
	  printf "  %-60s right=%-5d root=%-5d wrong=%d\n", v["test"], v["right"], v["root"], v["wrong"]
	  right += v["right"]; root += v["root"]; wrong += v["wrong"]; n++ }
	END { printf "parent audit: %d tests, %d client spans: right=%d root=%d wrong=%d\n", n, right + root + wrong, right, root, wrong
	      exit wrong > 0 }' "$log"
