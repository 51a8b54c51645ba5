//! The identity of an instrumented process: what every span and metric it
//! produces is attributed to.

use std::fmt;
use std::path::PathBuf;

/// The runtime an executable was built with, as OBI reports it in
/// `telemetry.sdk.language` and the printer's `svc=[name lang]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub(crate) enum Language {
    Go,
    Java,
    NodeJs,
    Python,
    Ruby,
    DotNet,
    Rust,
    Php,
    #[default]
    Generic,
}

impl Language {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Language::Go => "go",
            Language::Java => "java",
            Language::NodeJs => "nodejs",
            Language::Python => "python",
            Language::Ruby => "ruby",
            Language::DotNet => "dotnet",
            Language::Rust => "rust",
            Language::Php => "php",
            Language::Generic => "generic",
        }
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One instrumented process. Shared (behind `Arc`) by all its spans.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Service {
    /// `service.name`.
    pub(crate) name: String,
    /// `service.namespace`, empty when unset.
    pub(crate) namespace: String,
    pub(crate) language: Language,
    /// Host PID of the process.
    pub(crate) pid: u32,
    /// Full path of the executable (`/proc/<pid>/exe`).
    pub(crate) exe_path: PathBuf,
    /// Inode of the executable.
    pub(crate) exe_ino: u64,
    /// The name was given (selector, process env), not derived from the
    /// executable; OBI logs `service=""` for derived names.
    pub(crate) name_explicit: bool,
    /// `service.instance.id`: `<hostname>:<pid>` like OBI.
    pub(crate) instance_id: String,
    /// Extra resource attributes from the process's own
    /// `OTEL_RESOURCE_ATTRIBUTES`, in the order given.
    pub(crate) resource_attributes: Vec<(String, String)>,
    /// Container id from the process's cgroup, when it runs in one.
    pub(crate) container_id: Option<String>,
}

impl Service {
    /// The identity of a child this process forked (and that has not
    /// exec'd): the same program, environment and selection, its own pid.
    pub(crate) fn forked(&self, pid: u32) -> Service {
        let host = self.instance_id.rsplit_once(':').map_or(self.instance_id.as_str(), |(h, _)| h);
        Service { pid, instance_id: format!("{host}:{pid}"), ..self.clone() }
    }

    /// OBI's `Service.Job()`: `namespace/name`, or just `name`.
    pub(crate) fn job(&self) -> String {
        if self.namespace.is_empty() { self.name.clone() } else { format!("{}/{}", self.namespace, self.name) }
    }
}
