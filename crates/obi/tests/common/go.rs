//! Building the Go test apps with Debian's toolchains (scripts/install-deps.sh
//! installs them).

use std::path::PathBuf;
use std::process::Command;

use super::{apps_dir, run};

/// Builds a Go test app with `script` (tests/apps/build_go.sh: go_fanout.go;
/// build_go_grpc.sh: go_grpc_fanout) and the toolchain in `goroot`, into
/// the test target's temp dir as `name`.
pub(crate) fn build(script: &str, goroot: &str, ldflags: &str, name: &str) -> PathBuf {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    run(Command::new(apps_dir().join(script)).args([goroot, ldflags]).arg(&out));
    out
}

/// `go version` of a toolchain: `go1.19.8` -> `1.19.8`.
pub(crate) fn release(goroot: &str) -> String {
    let out = Command::new(format!("{goroot}/bin/go")).arg("version").env("GOTOOLCHAIN", "local").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.split_whitespace().nth(2).unwrap().trim_start_matches("go").to_string()
}
