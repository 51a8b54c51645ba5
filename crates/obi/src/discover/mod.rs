//! Process discovery: which processes to instrument, and under which service
//! identity.
//!
//! [`Discovery`] keeps the set of instrumented processes (keyed by pid and
//! start time, so pid reuse is noticed) and turns `/proc` scans and kernel
//! triggers into [`DiscoveryEvent`]s. [`run`] drives it: an initial scan, then
//! one every `discovery.poll_interval` and a cheap re-check per trigger.

mod app_name;
pub(crate) mod criteria;
pub(crate) mod lang;
pub(crate) mod naming;
pub(crate) mod procscan;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, watch};

use crate::config::{Config, DEFAULT_POLL_INTERVAL, Selector};
use crate::service::{Language, Service};

pub(crate) use criteria::Matcher;
pub(crate) use lang::detect_language;
pub(crate) use procscan::{ProcessInfo, ScanContext, has_image, list_pids, read_process};

/// What discovery tells the rest of the agent.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum DiscoveryEvent {
    /// Start tracing this process (sent once per process lifetime; after an
    /// `exec` the pid is forgotten and may be instrumented again).
    Instrument(Arc<Service>),
    /// Stop tracing this pid: it exited, was reused or exec'd into something
    /// that no longer matches.
    Forget { pid: u32 },
    /// A freshly exec'd process (which the kernel traces provisionally, so
    /// short-lived clients are not missed) does not match: stop tracing it
    /// and drop what it produced.
    Reject { pid: u32 },
}

/// Kernel events that make discovery look at one process at once instead of
/// waiting for the next scan. Pids are host pids of thread-group leaders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Trigger {
    Exec(ExecInfo),
    Listen(u32),
    Fork { pid: u32, parent: u32 },
    Exit(u32),
}

/// What the kernel reported about an exec, for processes that are gone
/// before /proc can be read (a short curl).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ExecInfo {
    pub(crate) pid: u32,
    pub(crate) ppid: u32,
    /// The file passed to exec.
    pub(crate) path: PathBuf,
    pub(crate) args: Vec<String>,
}

impl ExecInfo {
    #[cfg(test)]
    pub(crate) fn pid_only(pid: u32) -> Self {
        ExecInfo { pid, ..Default::default() }
    }

    fn as_process(&self) -> ProcessInfo {
        let comm = self.path.file_name().map(|n| n.to_string_lossy().chars().take(15).collect()).unwrap_or_default();
        ProcessInfo {
            pid: self.pid,
            ppid: self.ppid,
            exe_path: self.path.clone(),
            cmdline: self.args.clone(),
            comm,
            ..Default::default()
        }
    }
}

/// A "generic" language result is only trusted (cached) once the process is
/// this old: runtimes such as the JVM map their library after exec.
const LANGUAGE_SETTLE_SECS: u64 = 5;

struct Tracked {
    start_time: u64,
    exe_ino: u64,
    exe_dev: u64,
    exe_path: PathBuf,
    /// The selector that matched (inherited by forked children).
    selector: Selector,
    service: Arc<Service>,
}

impl Tracked {
    fn same_process(&self, p: &ProcessInfo) -> bool {
        self.start_time == p.start_time_ticks
            && self.exe_ino == p.exe_ino
            && self.exe_dev == p.exe_dev
            && self.exe_path == p.exe_path
    }
}

struct LangEntry {
    start_time: u64,
    exe_ino: u64,
    lang: Language,
}

/// Discovery state. Not async: [`run`] calls it from blocking tasks.
pub(crate) struct Discovery {
    cfg: Config,
    matcher: Arc<Matcher>,
    hostname: String,
    self_pid: u32,
    needs_ports: bool,
    tracked: HashMap<u32, Tracked>,
    lang_cache: HashMap<u32, LangEntry>,
    clk_tck: u64,
    shared_name: SharedName,
}

/// The executables the agent's `OTEL_SERVICE_NAME` named, to warn once when
/// it gives one name to different programs (OBI applies it to every process
/// the shortcuts select, and so do we).
#[derive(Default)]
struct SharedName {
    executables: HashSet<PathBuf>,
    warned: bool,
}

impl SharedName {
    fn note(&mut self, cfg: &Config, service: &Service, origin: naming::NameOrigin) {
        if self.warned
            || origin != naming::NameOrigin::Selector
            || cfg.service_name.as_deref() != Some(service.name.as_str())
        {
            return;
        }
        self.executables.insert(service.exe_path.clone());
        if self.executables.len() > 1 {
            self.warned = true;
            let mut exes: Vec<String> = self.executables.iter().map(|p| p.display().to_string()).collect();
            exes.sort();
            tracing::warn!(
                component = "discover",
                service = %service.name,
                executables = %exes.join(","),
                "OTEL_SERVICE_NAME gives one service name to different executables: their spans and metrics \
                 merge; name them apart with OTEL_EBPF_SERVICE_NAMES (e.g. 1880=node-red,exe:influxd=influxdb)"
            );
        }
    }
}

impl Discovery {
    pub(crate) fn new(cfg: &Config, self_pid: u32, hostname: String) -> Self {
        let matcher = Arc::new(Matcher::new(cfg, self_pid));
        // SAFETY: sysconf has no preconditions.
        let clk_tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        Discovery {
            cfg: cfg.clone(),
            needs_ports: matcher.needs_ports(),
            matcher,
            hostname,
            self_pid,
            tracked: HashMap::new(),
            lang_cache: HashMap::new(),
            clk_tck: if clk_tck > 0 { clk_tck as u64 } else { 100 },
            shared_name: SharedName::default(),
        }
    }

    /// Whether ports are read at all (some selector uses `open_ports`); when
    /// not, `ProcessListen` triggers are not worth sending.
    #[cfg(test)]
    pub(crate) fn needs_ports(&self) -> bool {
        self.needs_ports
    }

    /// Whether `ProcessExec` triggers can lead to a match.
    #[cfg(test)]
    pub(crate) fn needs_exec_events(&self) -> bool {
        self.matcher.needs_exec_events()
    }

    /// The service of an instrumented pid.
    #[cfg(test)]
    pub(crate) fn service(&self, pid: u32) -> Option<Arc<Service>> {
        self.tracked.get(&pid).map(|t| t.service.clone())
    }

    /// Instrumented pids, ascending.
    #[cfg(test)]
    pub(crate) fn instrumented_pids(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.tracked.keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// One full /proc scan: returns the events needed to go from the current
    /// state to the new one (`Forget`s first).
    pub(crate) fn scan(&mut self) -> Vec<DiscoveryEvent> {
        let now = self.uptime_ticks();
        let mut ctx = if self.needs_ports {
            let m = self.matcher.clone();
            ScanContext::with_port_filter(Arc::new(move |port| m.port_is_relevant(port)))
        } else {
            ScanContext::new()
        };
        let mut events = Vec::new();
        let mut seen = HashSet::new();
        let mut candidates = Vec::new();
        for pid in list_pids() {
            if pid == self.self_pid {
                continue;
            }
            if let Some(t) = self.tracked.get(&pid) {
                match procscan::read_process_with(&mut ctx, pid, false) {
                    Some(p) if t.same_process(&p) => {
                        seen.insert(pid);
                        continue;
                    }
                    // Exec'd or pid reused: forget, then judge it afresh.
                    Some(_) => events.push(self.forget(pid, "changed")),
                    // Gone (or a zombie): forgotten below.
                    None => continue,
                }
            }
            let Some(p) = procscan::read_process_with(&mut ctx, pid, self.needs_ports) else { continue };
            seen.insert(pid);
            candidates.push(p);
        }
        let gone: Vec<u32> = self.tracked.keys().filter(|pid| !seen.contains(pid)).copied().collect();
        for pid in gone {
            events.push(self.forget(pid, "exited"));
        }
        self.lang_cache.retain(|pid, _| seen.contains(pid));

        // Own criteria first, then children of instrumented processes (to a
        // fixpoint, so grandchildren follow their parents).
        let mut pending = Vec::new();
        for p in candidates {
            match self.match_own(&p, now) {
                Some((sel, lang)) => events.push(self.instrument(&p, sel, lang)),
                None => pending.push(p),
            }
        }
        loop {
            let before = pending.len();
            let mut rest = Vec::new();
            for p in pending {
                match self.match_by_parent(&p, now) {
                    Some((sel, lang)) => events.push(self.instrument(&p, sel, lang)),
                    None => rest.push(p),
                }
            }
            pending = rest;
            if pending.len() == before {
                break;
            }
        }
        events
    }

    /// Reacts to a kernel event: a listen/exec/fork re-checks that pid only
    /// (cheap); exit forgets it.
    pub(crate) fn on_trigger(&mut self, t: Trigger) -> Vec<DiscoveryEvent> {
        match t {
            Trigger::Exit(pid) => {
                self.lang_cache.remove(&pid);
                if self.tracked.contains_key(&pid) { vec![self.forget(pid, "exited")] } else { Vec::new() }
            }
            Trigger::Fork { pid, parent } => {
                if pid == self.self_pid || self.tracked.contains_key(&pid) || !self.tracked.contains_key(&parent) {
                    // A child of an untracked parent is a copy of a process
                    // that did not match: the next exec/listen/scan decides.
                    return Vec::new();
                }
                let Some(p) = read_process(pid, false) else { return Vec::new() };
                let now = self.uptime_ticks();
                let Some(sel) = self.tracked.get(&parent).map(|t| t.selector.clone()) else { return Vec::new() };
                let lang = self.language(&p, now);
                if self.matcher.is_excluded(&p, lang) {
                    return Vec::new();
                }
                vec![self.instrument(&p, sel, lang)]
            }
            Trigger::Exec(exec) => {
                let pid = exec.pid;
                let was_tracked = self.tracked.contains_key(&pid);
                let mut events = self.recheck(pid, false);
                if let Some(t) = self.tracked.get(&pid)
                    && was_tracked
                    && events.is_empty()
                {
                    // Read after its exec already (a fork whose /proc we read
                    // late): the loop unnamed it at the exec, name it again.
                    events.push(DiscoveryEvent::Instrument(t.service.clone()));
                } else if was_tracked && !self.tracked.contains_key(&pid) && !has_image(pid) {
                    // A traced process exec'd (an inetd handler) and is gone
                    // already: name the program it became from the exec
                    // record, so what it served is kept.
                    events.extend(self.match_exited(&exec));
                } else if events.is_empty() && !self.tracked.contains_key(&pid) && !has_image(pid) {
                    // Gone already, or exited and not yet reaped (a zombie
                    // keeps its /proc/PID/stat but not its executable):
                    // decide from what the kernel saw at exec.
                    events.extend(self.match_exited(&exec));
                }
                if !self.tracked.contains_key(&pid)
                    && !events.iter().any(|e| matches!(e, DiscoveryEvent::Forget { .. }))
                {
                    events.push(DiscoveryEvent::Reject { pid });
                }
                events
            }
            Trigger::Listen(pid) => self.recheck(pid, true),
        }
    }

    fn recheck(&mut self, pid: u32, listen: bool) -> Vec<DiscoveryEvent> {
        let mut events = Vec::new();
        if pid == self.self_pid {
            return events;
        }
        if let Some(t) = self.tracked.get(&pid) {
            if listen {
                return events;
            }
            match read_process(pid, false) {
                Some(p) if t.same_process(&p) => return events,
                Some(_) => events.push(self.forget(pid, "changed")),
                None => {
                    events.push(self.forget(pid, "exited"));
                    return events;
                }
            }
        }
        let Some(p) = read_process(pid, self.needs_ports) else { return events };
        let now = self.uptime_ticks();
        if let Some((sel, lang)) = self.match_own(&p, now).or_else(|| self.match_by_parent(&p, now)) {
            events.push(self.instrument(&p, sel, lang));
        }
        events
    }

    /// A process that exited before we could read /proc: name it from its
    /// exec record (so its spans are kept), then forget it.
    fn match_exited(&mut self, exec: &ExecInfo) -> Vec<DiscoveryEvent> {
        if exec.path.as_os_str().is_empty() || exec.pid == self.self_pid {
            return Vec::new();
        }
        let p = exec.as_process();
        let now = self.uptime_ticks();
        let Some((sel, lang)) = self.match_own(&p, now).or_else(|| self.match_by_parent(&p, now)) else {
            return Vec::new();
        };
        vec![self.instrument(&p, sel, lang), self.forget(exec.pid, "exited")]
    }

    /// The selector `p` matches by its own criteria, and its language.
    fn match_own(&mut self, p: &ProcessInfo, now: u64) -> Option<(Selector, Language)> {
        let mut lang = None;
        let sel = {
            let cache = &mut self.lang_cache;
            let clk = self.clk_tck;
            self.matcher.matches_lazy(p, &mut || *lang.get_or_insert_with(|| language_of(cache, clk, p, now))).cloned()
        }?;
        let lang = lang.unwrap_or_else(|| self.language(p, now));
        Some((sel, lang))
    }

    /// The selector of `p`'s parent when the parent is instrumented and `p`
    /// is not excluded (OBI matches children of matched processes).
    fn match_by_parent(&mut self, p: &ProcessInfo, now: u64) -> Option<(Selector, Language)> {
        if p.pid == self.self_pid {
            return None;
        }
        let sel = self.tracked.get(&p.ppid)?.selector.clone();
        let lang = self.language(p, now);
        if self.matcher.is_excluded(p, lang) {
            return None;
        }
        Some((sel, lang))
    }

    fn language(&mut self, p: &ProcessInfo, now: u64) -> Language {
        language_of(&mut self.lang_cache, self.clk_tck, p, now)
    }

    fn instrument(&mut self, p: &ProcessInfo, sel: Selector, lang: Language) -> DiscoveryEvent {
        let (service, origin) = naming::build_service_with_origin(p, lang, &sel, &self.cfg, &self.hostname);
        self.shared_name.note(&self.cfg, &service, origin);
        let service = Arc::new(service);
        tracing::debug!(component = "discover", pid = p.pid, cmd = %p.exe_path.display(), "process selected");
        self.tracked.insert(
            p.pid,
            Tracked {
                start_time: p.start_time_ticks,
                exe_ino: p.exe_ino,
                exe_dev: p.exe_dev,
                exe_path: p.exe_path.clone(),
                selector: sel,
                service: service.clone(),
            },
        );
        DiscoveryEvent::Instrument(service)
    }

    fn forget(&mut self, pid: u32, why: &str) -> DiscoveryEvent {
        if let Some(t) = self.tracked.remove(&pid) {
            tracing::debug!(
                component = "discover.traceAttacher",
                cmd = %t.exe_path.display(),
                pid,
                service = %t.service.name,
                reason = why,
                "forgetting process"
            );
        }
        self.lang_cache.remove(&pid);
        DiscoveryEvent::Forget { pid }
    }

    /// Seconds since boot in clock ticks (comparable with start times).
    fn uptime_ticks(&self) -> u64 {
        let secs = std::fs::read_to_string("/proc/uptime")
            .ok()
            .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()))
            .unwrap_or(0.0);
        (secs * self.clk_tck as f64) as u64
    }
}

/// Language of `p`, cached per pid once it is final: any specific language,
/// or `generic` for a process older than [`LANGUAGE_SETTLE_SECS`].
fn language_of(cache: &mut HashMap<u32, LangEntry>, clk_tck: u64, p: &ProcessInfo, now: u64) -> Language {
    if let Some(e) = cache.get(&p.pid)
        && e.start_time == p.start_time_ticks
        && e.exe_ino == p.exe_ino
    {
        return e.lang;
    }
    let lang = detect_language(p);
    let age = now.saturating_sub(p.start_time_ticks);
    if lang != Language::Generic || age >= LANGUAGE_SETTLE_SECS * clk_tck {
        cache.insert(p.pid, LangEntry { start_time: p.start_time_ticks, exe_ino: p.exe_ino, lang });
    }
    lang
}

/// Runs discovery until `shutdown` becomes true (or its sender is dropped, or
/// `events` is closed): an initial scan, then a scan every
/// `discovery.poll_interval` and a re-check per trigger. /proc work runs on
/// the blocking thread pool.
pub(crate) async fn run(
    cfg: Arc<Config>,
    self_pid: u32,
    hostname: String,
    mut triggers: mpsc::Receiver<Trigger>,
    events: mpsc::Sender<DiscoveryEvent>,
    mut shutdown: watch::Receiver<bool>,
) {
    if *shutdown.borrow() {
        return;
    }
    let poll = if cfg.discovery.poll_interval.is_zero() { DEFAULT_POLL_INTERVAL } else { cfg.discovery.poll_interval };
    let disc = Arc::new(Mutex::new(Discovery::new(&cfg, self_pid, hostname)));

    let evs = blocking(&disc, |d| d.scan()).await;
    if !send_all(&events, evs, &mut shutdown).await {
        return;
    }
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + poll, poll);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut triggers_open = true;
    loop {
        let evs = tokio::select! {
            biased;
            _ = wait_for_shutdown(&mut shutdown) => return,
            _ = interval.tick() => blocking(&disc, |d| d.scan()).await,
            t = triggers.recv(), if triggers_open => {
                let Some(first) = t else {
                    triggers_open = false;
                    continue;
                };
                let mut batch = vec![first];
                while batch.len() < 256 {
                    match triggers.try_recv() {
                        Ok(t) => batch.push(t),
                        Err(_) => break,
                    }
                }
                blocking(&disc, move |d| batch.into_iter().flat_map(|t| d.on_trigger(t)).collect()).await
            }
        };
        if !send_all(&events, evs, &mut shutdown).await {
            return;
        }
    }
}

/// OBI's line for a process whose instrumentation is now active (logged by
/// whoever activates it, so it can be relied on as a readiness signal).
pub(crate) fn log_instrumenting(svc: &Service) {
    let shown_name = if svc.name_explicit { svc.name.as_str() } else { "" };
    tracing::info!(
        component = "discover.traceAttacher",
        cmd = %svc.exe_path.display(),
        pid = svc.pid,
        ino = svc.exe_ino,
        r#type = %svc.language,
        service = %shown_name,
        "instrumenting process"
    );
}

/// Runs `f` on the blocking pool. A panic inside loses only that batch: the
/// state survives (poisoning is ignored).
async fn blocking<F>(disc: &Arc<Mutex<Discovery>>, f: F) -> Vec<DiscoveryEvent>
where
    F: FnOnce(&mut Discovery) -> Vec<DiscoveryEvent> + Send + 'static,
{
    let disc = disc.clone();
    let res = tokio::task::spawn_blocking(move || {
        let mut d = disc.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut d)
    })
    .await;
    match res {
        Ok(evs) => evs,
        Err(e) => {
            tracing::error!(component = "discover", error = %e, "process discovery task failed");
            Vec::new()
        }
    }
}

/// Sends events in order; false when the receiver is gone or shutdown began.
async fn send_all(
    tx: &mpsc::Sender<DiscoveryEvent>,
    evs: Vec<DiscoveryEvent>,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    for ev in evs {
        tokio::select! {
            biased;
            r = tx.send(ev) => {
                if r.is_err() {
                    return false;
                }
            }
            _ = wait_for_shutdown(shutdown) => return false,
        }
    }
    true
}

/// Completes when shutdown is requested (value true) or its sender is gone.
async fn wait_for_shutdown(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    use crate::config::Config;

    /// The default config: nothing selected, OBI's default exclusions.
    pub(crate) fn test_config() -> Config {
        Config::default()
    }
}

#[cfg(test)]
mod tests;
