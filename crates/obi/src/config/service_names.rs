//! Service names without YAML: `OTEL_EBPF_SERVICE_NAMES` names the selected
//! processes by the ports they have a socket on or by their executable, and
//! `OTEL_EBPF_SERVICE_NAME_DEFAULT` chooses what an unnamed process is
//! called (see docs/configuration.md, "Service names").
//!
//! ```text
//! OTEL_EBPF_SERVICE_NAMES=1880=node-red,exe:influxd=influxdb,8000-8099=api,exe:*/bin/mosquitto=broker
//! ```
//!
//! Entries are `SELECTOR=NAME`, the first matching entry wins. A selector is
//! a port or a port range (the process has a local socket on it, like
//! `OTEL_EBPF_OPEN_PORT`), or `exe:GLOB` (over the executable's basename, or
//! over its full path when the glob has a `/`). These entries only name:
//! they select nothing (the usual selectors do).

use std::path::Path;

use super::GlobPattern;
use super::ports::{PortEnum, PortEnumError};

#[derive(Debug, thiserror::Error)]
pub(crate) enum ServiceNamesError {
    #[error("entry {0:?} is not SELECTOR=NAME (e.g. 1880=node-red or exe:influxd=influxdb)")]
    NotAnEntry(String),
    #[error("entry {0:?} has an empty name")]
    EmptyName(String),
    #[error("entry {entry:?}: {source}")]
    Ports { entry: String, source: PortEnumError },
    #[error("entry {entry:?}: invalid glob: {source}")]
    Glob { entry: String, source: globset::Error },
}

#[derive(Debug, Clone, PartialEq)]
enum NameSelector {
    Ports(PortEnum),
    /// Over the executable's basename.
    ExeName(GlobPattern),
    /// Over the executable's full path.
    ExePath(GlobPattern),
}

/// The rules of `OTEL_EBPF_SERVICE_NAMES`, in order.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct ServiceNames {
    rules: Vec<(NameSelector, String)>,
}

impl ServiceNames {
    pub(crate) fn parse(text: &str) -> Result<ServiceNames, ServiceNamesError> {
        let mut rules = Vec::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            // The name is after the last `=`: a glob may hold one, a name may not.
            let (selector, name) =
                entry.rsplit_once('=').ok_or_else(|| ServiceNamesError::NotAnEntry(entry.to_string()))?;
            let (selector, name) = (selector.trim(), name.trim());
            if name.is_empty() {
                return Err(ServiceNamesError::EmptyName(entry.to_string()));
            }
            let selector = match selector.strip_prefix("exe:") {
                Some(glob) => {
                    let pattern = GlobPattern::new(glob.trim())
                        .map_err(|source| ServiceNamesError::Glob { entry: entry.to_string(), source })?;
                    if glob.contains('/') { NameSelector::ExePath(pattern) } else { NameSelector::ExeName(pattern) }
                }
                None if selector.is_empty() => return Err(ServiceNamesError::NotAnEntry(entry.to_string())),
                None => NameSelector::Ports(
                    PortEnum::parse(selector)
                        .map_err(|source| ServiceNamesError::Ports { entry: entry.to_string(), source })?,
                ),
            };
            rules.push((selector, name.to_string()));
        }
        Ok(ServiceNames { rules })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether some rule needs the process's ports.
    pub(crate) fn needs_ports(&self) -> bool {
        self.rules.iter().any(|(s, _)| matches!(s, NameSelector::Ports(_)))
    }

    /// The name of the first rule the process matches.
    pub(crate) fn name_for(&self, exe_path: &Path, local_ports: &[u16]) -> Option<&str> {
        let path = exe_path.to_string_lossy();
        let base = exe_path.file_name().map(|b| b.to_string_lossy());
        self.rules
            .iter()
            .find(|(selector, _)| match selector {
                NameSelector::Ports(ports) => local_ports.iter().any(|p| ports.contains(*p)),
                NameSelector::ExeName(glob) => base.as_deref().is_some_and(|b| glob.is_match(b)),
                NameSelector::ExePath(glob) => glob.is_match(&path),
            })
            .map(|(_, name)| name.as_str())
    }
}

/// What a process that nothing names is called (`OTEL_EBPF_SERVICE_NAME_DEFAULT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum DefaultServiceName {
    /// The application's name from the command line where the executable
    /// is a runtime (Node.js, Python, Java), else the executable's basename.
    #[default]
    App,
    /// The executable's basename, as OBI does.
    Executable,
}

#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a default service name: use app or executable")]
pub(crate) struct DefaultServiceNameError(String);

impl std::str::FromStr for DefaultServiceName {
    type Err = DefaultServiceNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "app" => Ok(DefaultServiceName::App),
            "executable" | "exe" => Ok(DefaultServiceName::Executable),
            _ => Err(DefaultServiceNameError(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_matching_rule_names() {
        let n =
            ServiceNames::parse("1880=node-red, exe:influxd=influxdb,8000-8099=api,exe:/opt/*/bin/*=opt-app").unwrap();
        assert!(n.needs_ports());
        let name = |exe: &str, ports: &[u16]| n.name_for(Path::new(exe), ports);
        assert_eq!(name("/usr/bin/node", &[1880, 45000]), Some("node-red"));
        assert_eq!(name("/usr/bin/influxd", &[8086]), Some("influxdb"));
        // A basename glob does not match a directory of the path.
        assert_eq!(name("/usr/bin/influxd/x", &[]), None);
        assert_eq!(name("/usr/bin/python3", &[8050]), Some("api"));
        assert_eq!(name("/opt/tool/bin/run", &[]), Some("opt-app"));
        assert_eq!(name("/usr/bin/python3", &[9000]), None);
        // Order matters: a port rule before an exe rule.
        assert_eq!(name("/usr/bin/influxd", &[1880]), Some("node-red"));
    }

    #[test]
    fn bad_entries_are_named() {
        for (text, want) in [
            ("1880", "not SELECTOR=NAME"),
            ("1880=", "empty name"),
            ("=x", "not SELECTOR=NAME"),
            ("0=x", "port 0"),
            ("http=x", "not a number"),
            ("exe:[=x", "invalid glob"),
        ] {
            let e = ServiceNames::parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
        assert!(ServiceNames::parse(" , ").unwrap().is_empty());
        assert!(!ServiceNames::parse("exe:x=y").unwrap().needs_ports());
    }

    #[test]
    fn default_names() {
        assert_eq!("app".parse::<DefaultServiceName>().unwrap(), DefaultServiceName::App);
        assert_eq!("Executable".parse::<DefaultServiceName>().unwrap(), DefaultServiceName::Executable);
        assert!("node".parse::<DefaultServiceName>().is_err());
    }
}
