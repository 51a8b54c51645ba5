//! Pieces of the Prometheus text exposition format (0.0.4) shared by the
//! application page ([`super::prom`]) and the internal metrics page
//! ([`super::internal`]): label writing, escaping, floats, build labels.

use std::fmt::Write as _;

use crate::export::gofmt::GoFloat;

pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Writes a float like Go's `strconv.FormatFloat(v, 'g', -1, 64)`, which is
/// what Prometheus clients print (`le="0.005"`, `le="10"`, `1e+06`).
pub(crate) fn write_float(out: &mut String, v: f64) {
    let _ = write!(out, "{}", GoFloat(v));
}

/// Escapes a label value: backslash, double quote and newline.
pub(crate) fn write_escaped(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// A valid Prometheus label name from an attribute name (`a.b-c` -> `a_b_c`).
pub(crate) fn label_name(name: &str) -> String {
    let mut s: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

/// Writes `{a="x",b="y"}` one label at a time, skipping empty values like
/// Prometheus clients do; nothing at all when every value was empty.
pub(crate) struct Labels<'a> {
    out: &'a mut String,
    any: bool,
}

impl<'a> Labels<'a> {
    pub(crate) fn new(out: &'a mut String) -> Self {
        Labels { out, any: false }
    }

    pub(crate) fn add(&mut self, name: &str, value: &str) {
        if value.is_empty() {
            return;
        }
        self.out.push(if self.any { ',' } else { '{' });
        self.any = true;
        self.out.push_str(name);
        self.out.push_str("=\"");
        write_escaped(self.out, value);
        self.out.push('"');
    }

    pub(crate) fn close(self) {
        if self.any {
            self.out.push('}');
        }
    }
}

/// Writes `{a="x",b="y"}` keeping empty values: internal metrics label by
/// names that may be empty (a process without a name) and must stay apart.
pub(crate) fn write_labels<'a>(out: &mut String, labels: impl IntoIterator<Item = (&'a str, &'a str)>) {
    let mut any = false;
    for (k, v) in labels {
        out.push(if any { ',' } else { '{' });
        any = true;
        out.push_str(k);
        out.push_str("=\"");
        write_escaped(out, v);
        out.push('"');
    }
    if any {
        out.push('}');
    }
}

/// The `goarch`, `goos`, `goversion`, `revision`, `version` labels of OBI's
/// build info metrics, with Rust values (`goversion` holds the minimum Rust
/// version obi-rs is built with).
pub(crate) fn write_build_labels(out: &mut String, target_lang: Option<&str>) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let mut l = Labels::new(out);
    l.add("goarch", arch);
    l.add("goos", std::env::consts::OS);
    l.add("goversion", concat!("rust", env!("CARGO_PKG_RUST_VERSION")));
    l.add("revision", option_env!("OBI_GIT_REVISION").unwrap_or(""));
    if let Some(t) = target_lang {
        l.add("target_lang", t);
    }
    l.add("version", env!("CARGO_PKG_VERSION"));
    l.close();
}
