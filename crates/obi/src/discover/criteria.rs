//! Which processes to instrument: `discovery.instrument` (plus the env
//! shortcuts) minus `exclude_instrument` / `default_exclude_instrument`.

use std::cell::Cell;

use crate::config::{Config, Selector};
use crate::service::Language;

use super::procscan::ProcessInfo;

/// Decides whether a process is instrumented, and by which selector.
#[derive(Debug, Clone)]
pub(crate) struct Matcher {
    /// In priority order: the first match names the service.
    instrument: Vec<Selector>,
    /// Checked after a match: a process matching any of these is not instrumented.
    exclude: Vec<Selector>,
    /// `system_wide`: the catch-all entry (after the explicit ones).
    system_wide: Option<Selector>,
    self_pid: u32,
}

impl Matcher {
    /// Builds the matcher; `self_pid` (the agent) never matches.
    pub(crate) fn new(cfg: &Config, self_pid: u32) -> Self {
        let system_wide = cfg.discovery.system_wide.then(|| Selector {
            name: None,
            namespace: cfg.service_namespace.clone(),
            ..Selector::default()
        });
        Matcher {
            instrument: cfg.effective_instrument_selectors(),
            exclude: cfg.effective_exclude_selectors(),
            system_wide,
            self_pid,
        }
    }

    /// The instrument selectors, in priority order.
    #[cfg(test)]
    pub(crate) fn selectors(&self) -> &[Selector] {
        &self.instrument
    }

    /// Whether any selector (instrument or exclude) looks at open ports: only
    /// then do socket tables need to be read.
    pub(crate) fn needs_ports(&self) -> bool {
        self.instrument.iter().chain(&self.exclude).any(|s| s.open_ports.is_some())
    }

    /// Whether a freshly exec'd process can match without opening a port
    /// (some selector uses exe path, command line, language or pid, or
    /// `system_wide` is on): only then are exec events worth reacting to.
    pub(crate) fn needs_exec_events(&self) -> bool {
        self.system_wide.is_some()
            || self.instrument.iter().any(|s| {
                s.exe_path.is_some()
                    || s.exe_path_regexp.is_some()
                    || s.cmd_args.is_some()
                    || s.languages.is_some()
                    || !s.target_pids.is_empty()
            })
    }

    /// Port predicate for [`super::procscan::ScanContext::with_port_filter`]:
    /// true when some selector's `open_ports` contains the port.
    pub(crate) fn port_is_relevant(&self, port: u16) -> bool {
        self.instrument.iter().chain(&self.exclude).any(|s| s.open_ports.as_ref().is_some_and(|e| e.contains(port)))
    }

    /// The first instrument selector `p` matches, unless `p` is excluded or is
    /// the agent itself.
    #[cfg(test)]
    pub(crate) fn matches(&self, p: &ProcessInfo, lang: Language) -> Option<&Selector> {
        self.matches_lazy(p, &mut || lang)
    }

    /// Like [`Matcher::matches`], detecting the language only if a selector
    /// needs it (at most once).
    pub(crate) fn matches_lazy(&self, p: &ProcessInfo, lang: &mut dyn FnMut() -> Language) -> Option<&Selector> {
        if p.pid == self.self_pid {
            return None;
        }
        let cached: Cell<Option<Language>> = Cell::new(None);
        let mut get_lang = || match cached.get() {
            Some(l) => l,
            None => {
                let l = lang();
                cached.set(Some(l));
                l
            }
        };
        let selected =
            self.instrument.iter().find(|s| selector_matches(s, p, &mut get_lang)).or(self.system_wide.as_ref())?;
        if self.is_excluded_lazy(p, &mut get_lang) {
            return None;
        }
        Some(selected)
    }

    /// Whether an exclusion selector (or the self rule) rejects `p`.
    pub(crate) fn is_excluded(&self, p: &ProcessInfo, lang: Language) -> bool {
        p.pid == self.self_pid || self.is_excluded_lazy(p, &mut || lang)
    }

    fn is_excluded_lazy(&self, p: &ProcessInfo, lang: &mut dyn FnMut() -> Language) -> bool {
        self.exclude.iter().any(|s| selector_matches(s, p, lang))
    }
}

/// A selector matches when every criterion it sets matches. Cheap criteria
/// first; the language (which may read the binary) last.
fn selector_matches(s: &Selector, p: &ProcessInfo, lang: &mut dyn FnMut() -> Language) -> bool {
    if !s.has_criteria() {
        return false;
    }
    if !s.target_pids.is_empty() && !s.target_pids.contains(&p.pid) {
        return false;
    }
    if s.exe_path.is_some() || s.exe_path_regexp.is_some() {
        let exe = p.exe_path.to_string_lossy();
        if s.exe_path.as_ref().is_some_and(|g| !g.is_match(&exe)) {
            return false;
        }
        if s.exe_path_regexp.as_ref().is_some_and(|r| !r.regex.is_match(&exe)) {
            return false;
        }
    }
    if let Some(g) = &s.cmd_args
        && !g.is_match(&p.cmdline_joined())
    {
        return false;
    }
    if let Some(ports) = &s.open_ports
        && !p.local_ports.iter().any(|port| ports.contains(*port))
    {
        return false;
    }
    if let Some(g) = &s.languages
        && !g.is_match(lang().as_str())
    {
        return false;
    }
    true
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::{GlobPattern, PortEnum};
    use crate::discover::testutil::test_config;
    use std::path::PathBuf;

    fn glob(s: &str) -> Option<GlobPattern> {
        Some(GlobPattern::new(s).unwrap())
    }

    fn ports(ranges: &[(u16, u16)]) -> Option<PortEnum> {
        Some(PortEnum { ranges: ranges.to_vec() })
    }

    fn proc_info(pid: u32, exe: &str, cmd: &[&str], ports: &[u16]) -> ProcessInfo {
        ProcessInfo {
            pid,
            ppid: 1,
            exe_path: PathBuf::from(exe),
            exe_ino: 42,
            cmdline: cmd.iter().map(|s| s.to_string()).collect(),
            comm: "x".into(),
            local_ports: ports.to_vec(),
            start_time_ticks: 1,
            ..Default::default()
        }
    }

    #[test]
    fn first_match_wins_and_all_criteria_must_match() {
        let mut cfg = test_config();
        cfg.discovery.instrument = vec![
            Selector {
                name: Some("both".into()),
                exe_path: glob("*/python3*"),
                open_ports: ports(&[(9000, 9000)]),
                ..Default::default()
            },
            Selector { name: Some("exe".into()), exe_path: glob("*/python3*"), ..Default::default() },
            Selector { name: Some("port".into()), open_ports: ports(&[(8000, 8999)]), ..Default::default() },
        ];
        let m = Matcher::new(&cfg, 1);
        let p = proc_info(10, "/usr/bin/python3.12", &["python3", "app.py"], &[9000]);
        assert_eq!(m.matches(&p, Language::Python).unwrap().name.as_deref(), Some("both"));
        let p = proc_info(10, "/usr/bin/python3.12", &["python3", "app.py"], &[8080]);
        assert_eq!(m.matches(&p, Language::Python).unwrap().name.as_deref(), Some("exe"));
        let p = proc_info(10, "/usr/bin/node", &["node"], &[8080]);
        assert_eq!(m.matches(&p, Language::NodeJs).unwrap().name.as_deref(), Some("port"));
        let p = proc_info(10, "/usr/bin/node", &["node"], &[22]);
        assert!(m.matches(&p, Language::NodeJs).is_none());
        assert!(m.needs_ports());
        assert!(m.needs_exec_events());
        assert!(m.port_is_relevant(8500));
        assert!(!m.port_is_relevant(22));
    }

    #[test]
    fn empty_selector_never_matches_and_self_never_matches() {
        let mut cfg = test_config();
        cfg.discovery.instrument = vec![Selector { name: Some("nothing".into()), ..Default::default() }];
        let m = Matcher::new(&cfg, 7);
        assert!(m.matches(&proc_info(10, "/bin/x", &[], &[80]), Language::Generic).is_none());
        assert!(!m.needs_ports());
        assert!(!m.needs_exec_events());

        cfg.discovery.instrument = vec![Selector { exe_path: glob("**"), ..Default::default() }];
        let m = Matcher::new(&cfg, 7);
        assert!(m.matches(&proc_info(10, "/bin/x", &[], &[]), Language::Generic).is_some());
        assert!(m.matches(&proc_info(7, "/bin/x", &[], &[]), Language::Generic).is_none());
    }

    #[test]
    fn cmd_args_languages_pids_regexp() {
        let mut cfg = test_config();
        cfg.discovery.instrument = vec![
            Selector { name: Some("cmd".into()), cmd_args: glob("*http.server*"), ..Default::default() },
            Selector { name: Some("lang".into()), languages: glob("{java,go}"), ..Default::default() },
            Selector { name: Some("pid".into()), target_pids: vec![4242], ..Default::default() },
            Selector {
                name: Some("re".into()),
                exe_path_regexp: Some(crate::config::RegexPattern {
                    source: "server$".into(),
                    regex: regex::Regex::new("server$").unwrap(),
                }),
                ..Default::default()
            },
        ];
        let m = Matcher::new(&cfg, 1);
        assert!(!m.needs_ports());
        let p = proc_info(10, "/usr/bin/python3", &["python3", "-m", "http.server", "8000"], &[]);
        assert_eq!(m.matches(&p, Language::Python).unwrap().name.as_deref(), Some("cmd"));
        let p = proc_info(10, "/opt/app", &["app"], &[]);
        assert_eq!(m.matches(&p, Language::Go).unwrap().name.as_deref(), Some("lang"));
        assert!(m.matches(&p, Language::Python).is_none());
        let p = proc_info(4242, "/opt/app", &["app"], &[]);
        assert_eq!(m.matches(&p, Language::Python).unwrap().name.as_deref(), Some("pid"));
        let p = proc_info(10, "/opt/bin/server", &["server"], &[]);
        assert_eq!(m.matches(&p, Language::Python).unwrap().name.as_deref(), Some("re"));
    }

    #[test]
    fn language_is_detected_lazily_once() {
        let mut cfg = test_config();
        cfg.discovery.instrument = vec![
            Selector { languages: glob("java"), exe_path: glob("*/nope"), ..Default::default() },
            Selector { languages: glob("java"), ..Default::default() },
            Selector { languages: glob("go"), ..Default::default() },
        ];
        cfg.discovery.exclude_instrument = vec![Selector { languages: glob("ruby"), ..Default::default() }];
        let m = Matcher::new(&cfg, 1);
        let calls = Cell::new(0);
        let p = proc_info(10, "/opt/app", &[], &[]);
        let mut detect = || {
            calls.set(calls.get() + 1);
            Language::Go
        };
        assert!(m.matches_lazy(&p, &mut detect).is_some());
        assert_eq!(calls.get(), 1);

        cfg.discovery.instrument = vec![Selector { exe_path: glob("*/nope"), ..Default::default() }];
        cfg.discovery.exclude_instrument.clear();
        let m = Matcher::new(&cfg, 1);
        let calls = Cell::new(0);
        let mut detect = || {
            calls.set(calls.get() + 1);
            Language::Go
        };
        assert!(m.matches_lazy(&p, &mut detect).is_none());
        assert_eq!(calls.get(), 0);
    }

    #[test]
    fn exclusions_apply_after_a_match() {
        let mut cfg = test_config();
        cfg.discovery.instrument = vec![Selector { open_ports: ports(&[(80, 80)]), ..Default::default() }];
        cfg.discovery.exclude_instrument = vec![Selector { exe_path: glob("*/nginx"), ..Default::default() }];
        cfg.discovery.default_exclude_instrument =
            vec![Selector { exe_path: glob("{*/obi,obi,*otelcol,*otelcol-contrib}"), ..Default::default() }];
        let m = Matcher::new(&cfg, 1);
        assert!(m.matches(&proc_info(10, "/usr/sbin/apache2", &[], &[80]), Language::Generic).is_some());
        assert!(m.matches(&proc_info(10, "/usr/sbin/nginx", &[], &[80]), Language::Generic).is_none());
        assert!(m.matches(&proc_info(10, "/usr/bin/otelcol", &[], &[80]), Language::Generic).is_none());
        assert!(m.is_excluded(&proc_info(10, "/usr/local/bin/obi", &[], &[]), Language::Generic));
    }

    #[test]
    fn system_wide_matches_everything_but_excludes() {
        let mut cfg = test_config();
        cfg.discovery.system_wide = true;
        cfg.service_namespace = Some("ns".into());
        cfg.discovery.default_exclude_instrument = vec![Selector { exe_path: glob("*/obi"), ..Default::default() }];
        let m = Matcher::new(&cfg, 1);
        let sel = m.matches(&proc_info(10, "/bin/anything", &[], &[]), Language::Generic).unwrap();
        assert_eq!(sel.namespace.as_deref(), Some("ns"));
        assert!(m.matches(&proc_info(10, "/opt/obi", &[], &[]), Language::Generic).is_none());
        assert!(m.matches(&proc_info(1, "/bin/anything", &[], &[]), Language::Generic).is_none());
        assert!(m.needs_exec_events());
    }

    #[test]
    fn shortcut_entry_is_last_and_named_by_otel_service_name() {
        let mut cfg = test_config();
        cfg.discovery.instrument = vec![Selector { exe_path: glob("*/java"), ..Default::default() }];
        cfg.open_port = ports(&[(8080, 8080)]);
        cfg.auto_target_exe = glob("*/python3*");
        cfg.service_name = Some("svc".into());
        cfg.service_namespace = Some("ns".into());
        let m = Matcher::new(&cfg, 1);
        assert_eq!(m.selectors().len(), 2);
        assert_eq!(m.selectors()[1].name.as_deref(), Some("svc"));
        assert_eq!(m.selectors()[1].namespace.as_deref(), Some("ns"));
        // Both shortcuts must hold.
        assert!(m.matches(&proc_info(10, "/usr/bin/python3", &[], &[8080]), Language::Python).is_some());
        assert!(m.matches(&proc_info(10, "/usr/bin/python3", &[], &[9090]), Language::Python).is_none());
        assert!(m.matches(&proc_info(10, "/usr/bin/ruby", &[], &[8080]), Language::Ruby).is_none());

        assert!(Matcher::new(&test_config(), 1).selectors().is_empty());
    }
}
