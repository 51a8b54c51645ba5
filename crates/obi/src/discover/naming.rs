//! Service identity of a matched process: name, namespace, resource
//! attributes, instance id and container id.

use std::fs;

use crate::config::service_names::DefaultServiceName;
use crate::config::{Config, Selector};
use crate::service::{Language, Service};

use super::app_name::{ProcFiles, app_name};
use super::procscan::{ProcessInfo, read_proc_file};

/// Where the service name came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameOrigin {
    /// The matched selector's `name` (or `OTEL_SERVICE_NAME` of the agent for
    /// the env-shortcut entry).
    Selector,
    /// The process's own `OTEL_SERVICE_NAME` or `service.name` in its
    /// `OTEL_RESOURCE_ATTRIBUTES`.
    ProcessEnv,
    /// A rule of `OTEL_EBPF_SERVICE_NAMES` (by port or executable).
    Rule,
    /// Nothing set a name: the application's name from its command line
    /// (script, package, jar: see [`super::app_name`]).
    Application,
    /// Nothing set a name: the executable's basename (OBI's auto name).
    Executable,
}

impl NameOrigin {
    /// OBI prints `service=""` in the `instrumenting process` line for
    /// auto-named services.
    pub(crate) fn is_explicit(self) -> bool {
        !matches!(self, NameOrigin::Executable | NameOrigin::Application)
    }
}

/// A process's environment, as `(key, value)` pairs in order.
pub(crate) type Environ = Vec<(String, String)>;

/// Reads `/proc/<pid>/environ` (empty when unreadable).
pub(crate) fn read_environ(pid: u32) -> Environ {
    read_proc_file(&format!("/proc/{pid}/environ"), 16 * 1024).map(|b| parse_environ(&b)).unwrap_or_default()
}

pub(crate) fn parse_environ(data: &[u8]) -> Environ {
    data.split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .filter_map(|kv| {
            let eq = kv.iter().position(|&b| b == b'=')?;
            Some((String::from_utf8_lossy(&kv[..eq]).into_owned(), String::from_utf8_lossy(&kv[eq + 1..]).into_owned()))
        })
        .collect()
}

fn env_get<'a>(env: &'a [(String, String)], key: &str) -> Option<&'a str> {
    // On a duplicated key, the first definition wins (like glibc's getenv).
    env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Builds the service for a matched process (see [`build_service_with_origin`]).
#[cfg(test)]
pub(crate) fn build_service(p: &ProcessInfo, lang: Language, sel: &Selector, cfg: &Config, hostname: &str) -> Service {
    build_service_with_origin(p, lang, sel, cfg, hostname).0
}

/// Builds the service for a matched process, reading its environment and
/// cgroup, and tells where the name came from.
///
/// Name precedence: the process's own `OTEL_SERVICE_NAME` (else
/// `service.name` in its `OTEL_RESOURCE_ATTRIBUTES`); else the first rule of
/// `OTEL_EBPF_SERVICE_NAMES` it matches; else the selector's `name` (OBI's
/// precedence without Kubernetes decoration, where the selector's name is the
/// initial value the process's environment overrides); else the application's
/// name from its command line (unless `OTEL_EBPF_SERVICE_NAME_DEFAULT=executable`);
/// else the executable's basename. The namespace follows OBI's rule with
/// `OTEL_SERVICE_NAMESPACE` / `service.namespace`.
pub(crate) fn build_service_with_origin(
    p: &ProcessInfo,
    lang: Language,
    sel: &Selector,
    cfg: &Config,
    hostname: &str,
) -> (Service, NameOrigin) {
    let env = read_environ(p.pid);
    let cgroup = fs::read_to_string(format!("/proc/{}/cgroup", p.pid)).unwrap_or_default();
    let rule = if cfg.service_names.is_empty() {
        None
    } else if cfg.service_names.needs_ports() && p.local_ports.is_empty() {
        // Processes selected by other criteria were read without their ports.
        let ports = super::read_process(p.pid, true).map(|q| q.local_ports).unwrap_or_default();
        cfg.service_names.name_for(&p.exe_path, &ports)
    } else {
        cfg.service_names.name_for(&p.exe_path, &p.local_ports)
    };
    let names = Names {
        rule,
        app: &|| match cfg.default_service_name {
            DefaultServiceName::App => app_name(&exe_basename(p), &p.cmdline, &ProcFiles(p.pid)),
            DefaultServiceName::Executable => None,
        },
    };
    service_from_parts(p, lang, sel, &env, &cgroup, hostname, &names)
}

/// Names from the agent's side, for [`service_from_parts`].
pub(crate) struct Names<'a> {
    /// The matching `OTEL_EBPF_SERVICE_NAMES` rule's name.
    pub(crate) rule: Option<&'a str>,
    /// The application's name, asked for only when nothing else names the process.
    pub(crate) app: &'a dyn Fn() -> Option<String>,
}

impl Names<'_> {
    /// No rule, no application name: OBI's naming.
    #[cfg(test)]
    pub(crate) const NONE: Names<'static> = Names { rule: None, app: &|| None };
}

/// The pure part of [`build_service_with_origin`].
pub(crate) fn service_from_parts(
    p: &ProcessInfo,
    lang: Language,
    sel: &Selector,
    env: &[(String, String)],
    cgroup: &str,
    hostname: &str,
    names: &Names<'_>,
) -> (Service, NameOrigin) {
    let attrs = env_get(env, "OTEL_RESOURCE_ATTRIBUTES").map(parse_resource_attributes).unwrap_or_default();
    let attr = |key: &str| attrs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()).filter(|v| !v.is_empty());

    let env_name = env_get(env, "OTEL_SERVICE_NAME").filter(|v| !v.is_empty()).map(str::to_string);
    let (name, origin) = if let Some(n) = env_name.or_else(|| attr("service.name")) {
        (n, NameOrigin::ProcessEnv)
    } else if let Some(n) = names.rule {
        (n.to_string(), NameOrigin::Rule)
    } else if let Some(n) = sel.name.clone().filter(|n| !n.is_empty()) {
        (n, NameOrigin::Selector)
    } else if let Some(n) = (names.app)() {
        (n, NameOrigin::Application)
    } else {
        (exe_basename(p), NameOrigin::Executable)
    };

    let env_ns = env_get(env, "OTEL_SERVICE_NAMESPACE").filter(|v| !v.is_empty()).map(str::to_string);
    let namespace = env_ns.or_else(|| attr("service.namespace")).or_else(|| sel.namespace.clone()).unwrap_or_default();

    let resource_attributes =
        attrs.into_iter().filter(|(k, _)| k != "service.name" && k != "service.namespace").collect();

    let service = Service {
        name,
        namespace,
        language: lang,
        pid: p.pid,
        exe_path: p.exe_path.clone(),
        exe_ino: p.exe_ino,
        name_explicit: origin.is_explicit(),
        instance_id: format!("{hostname}:{}", p.pid),
        resource_attributes,
        container_id: container_id_from_cgroup(cgroup),
    };
    (service, origin)
}

fn exe_basename(p: &ProcessInfo) -> String {
    match p.exe_path.file_name() {
        Some(n) => n.to_string_lossy().into_owned(),
        None if !p.comm.is_empty() => p.comm.clone(),
        None => p.exe_path.to_string_lossy().into_owned(),
    }
}

/// Parses `OTEL_RESOURCE_ATTRIBUTES` (`k=v,k2=v2`, percent-encoded values),
/// in order. Entries without `=` or with an empty key are skipped; keys and
/// values are trimmed.
pub(crate) fn parse_resource_attributes(s: &str) -> Vec<(String, String)> {
    s.split(',')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            let k = percent_decode(k.trim());
            if k.is_empty() {
                return None;
            }
            Some((k, percent_decode(v.trim())))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex_val(b[i + 1]), hex_val(b[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The container id of a process from its `/proc/<pid>/cgroup`: the last
/// 64-hex-character id in the cgroup path, as docker (`/docker/<id>`,
/// `docker-<id>.scope`), containerd (`cri-containerd-<id>.scope`), cri-o
/// (`crio-<id>.scope`) and podman (`libpod-<id>.scope`) write it. The first
/// line that has one wins (cgroup v1 lists one line per hierarchy).
pub(crate) fn container_id_from_cgroup(cgroup: &str) -> Option<String> {
    cgroup.lines().find_map(|line| {
        // `hierarchy-ID:controller-list:cgroup-path`; the path may contain ':'.
        let path = line.splitn(3, ':').nth(2)?;
        last_hex64(path)
    })
}

fn last_hex64(path: &str) -> Option<String> {
    let b = path.as_bytes();
    let mut found = None;
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_hexdigit() {
            let start = i;
            while i < b.len() && b[i].is_ascii_hexdigit() {
                i += 1;
            }
            if i - start == 64 {
                found = Some(path[start..i].to_ascii_lowercase());
            }
        } else {
            i += 1;
        }
    }
    found
}

/// Hint for `exclude_otel_instrumented_services`: the process's environment
/// configures an OpenTelemetry SDK exporter (`OTEL_EXPORTER_OTLP_*` set, or
/// `OTEL_TRACES_EXPORTER` set to something other than `none`). OBI itself
/// decides from observed OTLP traffic; this is only a cheap early signal.
#[cfg(test)]
pub(crate) fn exports_otel_itself(env: &[(String, String)]) -> bool {
    env.iter().any(|(k, v)| {
        (k.starts_with("OTEL_EXPORTER_OTLP_") && !v.trim().is_empty())
            || (k == "OTEL_TRACES_EXPORTER" && !v.trim().is_empty() && !v.trim().eq_ignore_ascii_case("none"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    const ID: &str = "3f1c2b6a9d8e7f60123456789abcdef0123456789abcdef0123456789abcdef0";

    fn env(pairs: &[(&str, &str)]) -> Environ {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn proc_info() -> ProcessInfo {
        ProcessInfo {
            pid: 321,
            exe_path: PathBuf::from("/usr/bin/python3.11"),
            comm: "python3".into(),
            ..Default::default()
        }
    }

    #[test]
    fn container_ids() {
        let cases = [
            format!("0::/system.slice/docker-{ID}.scope"),
            format!("12:memory:/docker/{ID}"),
            format!(
                "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1a2b3c4d_5e6f_7a8b_9c0d_1e2f3a4b5c6d.slice/cri-containerd-{ID}.scope"
            ),
            format!("0::/kubepods/besteffort/pod1a2b3c4d-5e6f-7a8b-9c0d-1e2f3a4b5c6d/{ID}"),
            format!("0::/kubepods.slice/kubepods-pod0.slice/crio-{ID}.scope"),
            format!("0::/machine.slice/libpod-{ID}.scope/container"),
            format!("1:name=systemd:/\n0::/system.slice/containerd.service/kubepods-x/cri-containerd:{ID}"),
        ];
        for c in &cases {
            assert_eq!(container_id_from_cgroup(c).as_deref(), Some(ID), "{c}");
        }
        assert_eq!(container_id_from_cgroup("0::/user.slice/user-1000.slice/session-3.scope"), None);
        assert_eq!(container_id_from_cgroup("0::/"), None);
        assert_eq!(container_id_from_cgroup(""), None);
        // 65 hex chars is not an id.
        assert_eq!(container_id_from_cgroup(&format!("0::/docker/{ID}a")), None);
        // The last id of the path wins.
        let other = "a".repeat(64);
        assert_eq!(container_id_from_cgroup(&format!("0::/docker/{ID}/docker/{other}")), Some(other));
    }

    #[test]
    fn resource_attributes() {
        let attrs = parse_resource_attributes("deployment.environment=prod, team = a%20b ,bad,=x,k%3D=v%2C1,empty=");
        assert_eq!(
            attrs,
            vec![
                ("deployment.environment".into(), "prod".into()),
                ("team".into(), "a b".into()),
                ("k=".into(), "v,1".into()),
                ("empty".into(), "".into()),
            ]
        );
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%C3%A9"), "é");
        assert!(parse_resource_attributes("").is_empty());
    }

    #[test]
    fn name_precedence() {
        let p = proc_info();
        let named =
            Selector { name: Some("from-selector".into()), namespace: Some("sel-ns".into()), ..Default::default() };
        let unnamed = Selector::default();

        let (s, o) = service_from_parts(&p, Language::Python, &unnamed, &[], "", "host", &Names::NONE);
        assert_eq!((s.name.as_str(), o), ("python3.11", NameOrigin::Executable));
        assert_eq!(s.namespace, "");
        assert_eq!(s.instance_id, "host:321");
        assert_eq!(s.language, Language::Python);
        assert!(!o.is_explicit());

        let (s, o) = service_from_parts(&p, Language::Python, &named, &[], "", "host", &Names::NONE);
        assert_eq!((s.name.as_str(), o), ("from-selector", NameOrigin::Selector));
        assert_eq!(s.namespace, "sel-ns");

        let e = env(&[("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs,service.namespace=attr-ns,team=x")]);
        let (s, o) = service_from_parts(&p, Language::Python, &named, &e, "", "host", &Names::NONE);
        assert_eq!((s.name.as_str(), o), ("from-attrs", NameOrigin::ProcessEnv));
        assert_eq!(s.namespace, "attr-ns");
        assert_eq!(s.resource_attributes, vec![("team".to_string(), "x".to_string())]);

        let e = env(&[
            ("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs"),
            ("OTEL_SERVICE_NAME", "from-env"),
            ("OTEL_SERVICE_NAMESPACE", "env-ns"),
        ]);
        let (s, o) =
            service_from_parts(&p, Language::Python, &named, &e, &format!("0::/docker/{ID}"), "host", &Names::NONE);
        assert_eq!((s.name.as_str(), o), ("from-env", NameOrigin::ProcessEnv));
        assert_eq!(s.namespace, "env-ns");
        assert_eq!(s.container_id.as_deref(), Some(ID));
        assert!(s.resource_attributes.is_empty());

        // Empty values don't count.
        let e = env(&[("OTEL_SERVICE_NAME", "")]);
        let (s, _) = service_from_parts(&p, Language::Python, &unnamed, &e, "", "host", &Names::NONE);
        assert_eq!(s.name, "python3.11");
    }

    #[test]
    fn rules_and_application_names_in_the_precedence() {
        let p = proc_info();
        let named = Selector { name: Some("from-selector".into()), ..Default::default() };
        let unnamed = Selector::default();
        let app = Names { rule: None, app: &|| Some("app".to_string()) };
        let rule = Names { rule: Some("from-rule"), app: &|| panic!("asked for the application name") };
        let no_app = Names { rule: None, app: &|| None };
        let name = |sel: &Selector, env: &[(String, String)], names: &Names<'_>| {
            let (s, o) = service_from_parts(&p, Language::Python, sel, env, "", "host", names);
            (s.name, o, s.name_explicit)
        };
        let own = env(&[("OTEL_SERVICE_NAME", "from-env")]);
        assert_eq!(name(&named, &own, &rule), ("from-env".into(), NameOrigin::ProcessEnv, true));
        assert_eq!(name(&named, &[], &rule), ("from-rule".into(), NameOrigin::Rule, true));
        assert_eq!(name(&named, &[], &app), ("from-selector".into(), NameOrigin::Selector, true));
        // Like the executable's name, the application's is not explicit.
        assert_eq!(name(&unnamed, &[], &app), ("app".into(), NameOrigin::Application, false));
        assert_eq!(name(&unnamed, &[], &no_app), ("python3.11".into(), NameOrigin::Executable, false));
    }

    #[test]
    fn environ_parsing_and_otel_hint() {
        let e = parse_environ(b"A=1\0B=x=y\0NOEQ\0\0C=\0");
        assert_eq!(e, env(&[("A", "1"), ("B", "x=y"), ("C", "")]));
        assert!(!exports_otel_itself(&e));
        assert!(exports_otel_itself(&env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")])));
        assert!(exports_otel_itself(&env(&[("OTEL_TRACES_EXPORTER", "otlp")])));
        assert!(!exports_otel_itself(&env(&[("OTEL_TRACES_EXPORTER", "none")])));
        assert!(!exports_otel_itself(&env(&[("OTEL_SERVICE_NAME", "x")])));
    }
}
