# Sourced by the kernel-matrix scripts: a private apt configuration that reads
# Debian's bullseye, bookworm and bookworm-backports indexes into the cache
# directory, leaving the machine's own sources and lists untouched.
KERNELS_CACHE="${OBI_KERNELS_CACHE:-/var/cache/obi-kernels}"
KERNELS_APT="$KERNELS_CACHE/apt"
kernels_apt_setup() {
	mkdir -p "$KERNELS_APT/lists/partial" "$KERNELS_APT/archives/partial" "$KERNELS_APT/parts" "$KERNELS_APT/prefs"
	cat >"$KERNELS_APT/sources.list" <<SRC
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bullseye main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security bullseye-security main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security bookworm-security main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm-updates main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm-backports main
SRC
	KERNELS_APT_OPTS=(
		-o "Dir::Etc::SourceList=$KERNELS_APT/sources.list"
		-o "Dir::Etc::SourceParts=$KERNELS_APT/parts"
		-o "Dir::Etc::Preferences=$KERNELS_APT/prefs/none"
		-o "Dir::Etc::PreferencesParts=$KERNELS_APT/prefs"
		-o "Dir::State::Lists=$KERNELS_APT/lists"
		-o "Dir::Cache=$KERNELS_APT/cache"
		-o "Dir::Cache::Archives=$KERNELS_APT/archives"
		-o "APT::Get::List-Cleanup=0"
		-o "Acquire::Languages=none"
		-o "APT::Sandbox::User=root"
	)
	mkdir -p "$KERNELS_APT/cache"
}
# Refreshes the private indexes at most once a day.
kernels_apt_update() {
	local stamp="$KERNELS_APT/updated"
	if [[ ! -f "$stamp" || -n "$(find "$stamp" -mmin +1440)" ]]; then
		apt-get "${KERNELS_APT_OPTS[@]}" update -qq
		touch "$stamp"
	fi
}
