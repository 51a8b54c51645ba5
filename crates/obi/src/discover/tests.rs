//! Tests against real processes (they run as root here).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::naming::{NameOrigin, build_service};
use super::testutil::test_config;
use super::*;
use crate::config::service_names::{DefaultServiceName, ServiceNames};
use crate::config::{GlobPattern, PortEnum};

/// Kills and reaps the child however the test ends.
struct ChildGuard(Child);

impl ChildGuard {
    fn pid(&self) -> u32 {
        self.0.id()
    }

    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `python3 -m http.server <port> --bind 127.0.0.1`, once it listens.
fn spawn_http_server(env: &[(&str, &str)]) -> (ChildGuard, u16) {
    for _ in 0..5 {
        let port = free_port();
        let mut cmd = Command::new("python3");
        cmd.args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = ChildGuard(cmd.spawn().expect("python3"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(p) = read_process(child.pid(), true)
                && p.local_ports.contains(&port)
            {
                return (child, port);
            }
            if let Ok(Some(_)) = child.0.try_wait() {
                break; // port taken meanwhile: retry
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.kill();
    }
    panic!("python3 http.server did not start");
}

fn glob(s: &str) -> Option<GlobPattern> {
    Some(GlobPattern::new(s).unwrap())
}

fn port_enum(p: u16) -> Option<PortEnum> {
    Some(PortEnum { ranges: vec![(p, p)] })
}

fn matcher_with(instrument: Vec<Selector>, exclude: Vec<Selector>) -> Matcher {
    let mut cfg = test_config();
    cfg.discovery.instrument = instrument;
    cfg.discovery.exclude_instrument = exclude;
    Matcher::new(&cfg, std::process::id())
}

#[test]
fn python_server_ports_language_and_matching() {
    let (server, port) = spawn_http_server(&[]);
    let p = read_process(server.pid(), true).unwrap();
    assert!(p.local_ports.contains(&port), "{:?}", p.local_ports);
    assert_eq!(p.ppid, std::process::id());
    assert!(p.exe_path.file_name().unwrap().to_string_lossy().starts_with("python3"), "{:?}", p.exe_path);
    assert_eq!(p.cmdline[1..3], ["-m".to_string(), "http.server".to_string()]);
    assert_eq!(detect_language(&p), Language::Python);

    // Without ports requested, none are read.
    assert!(read_process(server.pid(), false).unwrap().local_ports.is_empty());

    let lang = Language::Python;
    let by_port = matcher_with(vec![Selector { open_ports: port_enum(port), ..Default::default() }], vec![]);
    assert!(by_port.matches(&p, lang).is_some());
    let other = if port == 65535 { port - 1 } else { port + 1 };
    let by_other = matcher_with(vec![Selector { open_ports: port_enum(other), ..Default::default() }], vec![]);
    assert!(by_other.matches(&p, lang).is_none());

    let by_exe = matcher_with(vec![Selector { exe_path: glob("*/python3*"), ..Default::default() }], vec![]);
    assert!(by_exe.matches(&p, lang).is_some());
    let by_wrong_exe = matcher_with(vec![Selector { exe_path: glob("*/node"), ..Default::default() }], vec![]);
    assert!(by_wrong_exe.matches(&p, lang).is_none());

    let by_cmd =
        matcher_with(vec![Selector { cmd_args: glob(&format!("*http.server {port}*")), ..Default::default() }], vec![]);
    assert!(by_cmd.matches(&p, lang).is_some());

    let by_lang = matcher_with(vec![Selector { languages: glob("python"), ..Default::default() }], vec![]);
    assert!(by_lang.matches(&p, lang).is_some());

    let excluded = matcher_with(
        vec![Selector { open_ports: port_enum(port), ..Default::default() }],
        vec![Selector { cmd_args: glob("*http.server*"), ..Default::default() }],
    );
    assert!(excluded.matches(&p, lang).is_none());
}

#[test]
fn service_naming_from_process_env() {
    let (named, _) = spawn_http_server(&[
        ("OTEL_SERVICE_NAME", "foo"),
        ("OTEL_RESOURCE_ATTRIBUTES", "service.name=ignored,deployment.environment=test%20env"),
    ]);
    let (unnamed, port) = spawn_http_server(&[]);
    let cfg = test_config();
    let sel = Selector { name: Some("from-selector".into()), namespace: Some("ns".into()), ..Default::default() };

    let p = read_process(named.pid(), false).unwrap();
    let (svc, origin) = naming::build_service_with_origin(&p, Language::Python, &sel, &cfg, "myhost");
    assert_eq!(svc.name, "foo");
    assert_eq!(origin, NameOrigin::ProcessEnv);
    assert_eq!(svc.namespace, "ns");
    assert_eq!(svc.instance_id, format!("myhost:{}", p.pid));
    assert_eq!(svc.resource_attributes, vec![("deployment.environment".to_string(), "test env".to_string())]);
    assert_eq!(svc.exe_path, p.exe_path);

    let p = read_process(unnamed.pid(), false).unwrap();
    let svc = build_service(&p, Language::Python, &sel, &cfg, "myhost");
    assert_eq!(svc.name, "from-selector");
    // Unnamed: the module it runs (`python3 -m http.server`)...
    let (svc, origin) = naming::build_service_with_origin(&p, Language::Python, &Selector::default(), &cfg, "myhost");
    assert_eq!((svc.name.as_str(), origin), ("http.server", NameOrigin::Application));
    // ... or, as OBI names it, the executable.
    let obi = Config { default_service_name: DefaultServiceName::Executable, ..cfg.clone() };
    let (svc, origin) = naming::build_service_with_origin(&p, Language::Python, &Selector::default(), &obi, "myhost");
    assert_eq!(svc.name, p.exe_path.file_name().unwrap().to_string_lossy());
    assert!(svc.name.starts_with("python3"));
    assert_eq!(origin, NameOrigin::Executable);
    // A rule by port wins over the selector's name; the process was read
    // without its ports, naming reads them.
    let rules = Config { service_names: ServiceNames::parse(&format!("exe:nothing=x,{port}=web")).unwrap(), ..cfg };
    let (svc, origin) = naming::build_service_with_origin(&p, Language::Python, &sel, &rules, "myhost");
    assert_eq!((svc.name.as_str(), origin), ("web", NameOrigin::Rule));
}

#[test]
fn scan_instruments_then_forgets() {
    let (mut server, port) = spawn_http_server(&[("OTEL_SERVICE_NAME", "scanned")]);
    let mut cfg = test_config();
    cfg.discovery.instrument = vec![Selector { open_ports: port_enum(port), ..Default::default() }];
    let mut d = Discovery::new(&cfg, std::process::id(), "h".into());
    let pid = server.pid();

    let evs = d.scan();
    let svc = match evs.as_slice() {
        [DiscoveryEvent::Instrument(s)] => s.clone(),
        other => panic!("unexpected events {other:?}"),
    };
    assert_eq!(svc.pid, pid);
    assert_eq!(svc.name, "scanned");
    assert_eq!(svc.language, Language::Python);
    assert_eq!(d.service(pid).map(|s| s.name_explicit), Some(true));
    assert_eq!(d.instrumented_pids(), vec![pid]);

    // Instrumented once.
    assert!(d.scan().is_empty());
    assert!(d.on_trigger(Trigger::Listen(pid)).is_empty());
    // An exec the kernel reported of a process already read as what it runs
    // now: its name is confirmed (the loop unnamed it at the exec).
    assert_eq!(d.on_trigger(Trigger::Exec(ExecInfo::pid_only(pid))), vec![DiscoveryEvent::Instrument(svc.clone())]);

    server.kill();
    assert_eq!(d.scan(), vec![DiscoveryEvent::Forget { pid }]);
    assert!(d.scan().is_empty());
    assert!(d.instrumented_pids().is_empty());
}

#[test]
fn triggers_check_one_process() {
    let (server, _port) = spawn_http_server(&[]);
    let marker = format!("{}", 1000 + std::process::id());
    let mut sleeper = ChildGuard(Command::new("sleep").arg(&marker).spawn().unwrap());
    let mut cfg = test_config();
    cfg.discovery.instrument = vec![Selector { cmd_args: glob("*-m http.server*"), ..Default::default() }];
    cfg.discovery.exclude_instrument = vec![Selector { exe_path: glob("*/bash"), ..Default::default() }];
    let mut d = Discovery::new(&cfg, std::process::id(), "h".into());
    assert!(d.needs_exec_events());
    assert!(!d.needs_ports());

    // A non-matching process is not instrumented by exec; the kernel's
    // provisional tracing of it is rejected.
    assert_eq!(
        d.on_trigger(Trigger::Exec(ExecInfo::pid_only(sleeper.pid()))),
        vec![DiscoveryEvent::Reject { pid: sleeper.pid() }]
    );
    // A fork from an untracked parent is ignored.
    assert!(d.on_trigger(Trigger::Fork { pid: sleeper.pid(), parent: 1 }).is_empty());

    let evs = d.on_trigger(Trigger::Exec(ExecInfo::pid_only(server.pid())));
    let svc = match evs.as_slice() {
        [DiscoveryEvent::Instrument(s)] => s.clone(),
        other => panic!("unexpected events {other:?}"),
    };
    // Auto-named after the module it runs: OBI prints service="" for it.
    assert_eq!(svc.name, "http.server");
    assert_eq!(d.service(server.pid()).map(|s| s.name_explicit), Some(false));

    // A child of an instrumented process inherits its selector, with its own identity.
    let evs = d.on_trigger(Trigger::Fork { pid: sleeper.pid(), parent: server.pid() });
    let child = match evs.as_slice() {
        [DiscoveryEvent::Instrument(s)] => s.clone(),
        other => panic!("unexpected events {other:?}"),
    };
    assert_eq!(child.pid, sleeper.pid());
    assert_eq!(child.name, "sleep");
    assert_eq!(child.instance_id, format!("h:{}", sleeper.pid()));
    // Only once.
    assert!(d.on_trigger(Trigger::Fork { pid: sleeper.pid(), parent: server.pid() }).is_empty());

    assert_eq!(d.on_trigger(Trigger::Exit(sleeper.pid())), vec![DiscoveryEvent::Forget { pid: sleeper.pid() }]);
    assert!(d.on_trigger(Trigger::Exit(sleeper.pid())).is_empty());
    sleeper.kill();

    // Never the agent itself.
    assert_eq!(
        d.on_trigger(Trigger::Exec(ExecInfo::pid_only(std::process::id()))),
        vec![DiscoveryEvent::Reject { pid: std::process::id() }]
    );
    assert_eq!(d.instrumented_pids(), vec![server.pid()]);
}

#[test]
fn scan_follows_children_of_instrumented_processes() {
    // `sh -c 'sleep N & wait'`: the shell matches by command line, its sleep child by parent.
    let marker = format!("{}", 2000 + std::process::id() % 1000);
    let mut sh = ChildGuard(
        Command::new("sh").args(["-c", &format!("sleep {marker} & wait"), "obi-discover-test-parent"]).spawn().unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let child_pid = loop {
        let found = list_pids()
            .into_iter()
            .filter_map(|pid| read_process(pid, false))
            .find(|p| p.ppid == sh.pid() && p.cmdline.first().is_some_and(|c| c == "sleep"));
        if let Some(p) = found {
            break p.pid;
        }
        assert!(Instant::now() < deadline, "sleep child not found");
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut cfg = test_config();
    cfg.discovery.instrument =
        vec![Selector { cmd_args: glob(&format!("sh -c sleep {marker} & wait*")), ..Default::default() }];
    let mut d = Discovery::new(&cfg, std::process::id(), "h".into());
    let evs = d.scan();
    let mut pids: Vec<u32> = evs
        .iter()
        .map(|e| match e {
            DiscoveryEvent::Instrument(s) => s.pid,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    pids.sort_unstable();
    let mut want = vec![sh.pid(), child_pid];
    want.sort_unstable();
    assert_eq!(pids, want);

    // Killing the sleep ends the shell's `wait`: both are forgotten (and
    // reaped by their parents, so nothing is left behind).
    // SAFETY: plain kill(2) of the sleep our shell started.
    unsafe { libc::kill(child_pid as i32, libc::SIGKILL) };
    let _ = sh.0.wait();
    let mut forgotten: Vec<u32> = d
        .scan()
        .iter()
        .map(|e| match e {
            DiscoveryEvent::Forget { pid } => *pid,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    forgotten.sort_unstable();
    assert_eq!(forgotten, want);
    sh.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_loop_emits_and_stops() {
    let (mut server, port) = spawn_http_server(&[]);
    let mut cfg = test_config();
    cfg.discovery.instrument = vec![Selector { open_ports: port_enum(port), ..Default::default() }];
    cfg.discovery.poll_interval = Duration::from_millis(100);
    let (trig_tx, trig_rx) = mpsc::channel(16);
    let (ev_tx, mut ev_rx) = mpsc::channel(16);
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(run(Arc::new(cfg), std::process::id(), "h".into(), trig_rx, ev_tx, stop_rx));

    let ev = tokio::time::timeout(Duration::from_secs(5), ev_rx.recv()).await.unwrap().unwrap();
    assert!(matches!(ev, DiscoveryEvent::Instrument(ref s) if s.pid == server.pid()), "{ev:?}");

    let pid = server.pid();
    server.kill();
    trig_tx.send(Trigger::Exit(pid)).await.unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(5), ev_rx.recv()).await.unwrap().unwrap();
    assert_eq!(ev, DiscoveryEvent::Forget { pid });

    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap();
}

/// Full-scan cost with ~300 processes. Prints the figures; the bound is loose
/// because debug builds and busy CI machines are slow.
#[test]
fn full_scan_is_fast() {
    let (_server, port) = spawn_http_server(&[]);
    let mut sleepers: Vec<ChildGuard> = Vec::new();
    let existing = list_pids().len();
    for _ in existing..300 {
        sleepers.push(ChildGuard(Command::new("sleep").arg("600").stdin(Stdio::null()).spawn().unwrap()));
    }
    let n = list_pids().len();

    let mut report = Vec::new();
    let cases: [(&str, Selector); 3] = [
        ("exe glob (no ports)", Selector { exe_path: glob("*/does-not-exist"), ..Default::default() }),
        (
            "open port in use (every fd read)",
            Selector { open_ports: port_enum(port), exe_path: glob("*/nope"), ..Default::default() },
        ),
        ("open port unused (fds skipped)", Selector { open_ports: port_enum(1), ..Default::default() }),
    ];
    for (label, sel) in cases {
        let mut cfg = test_config();
        cfg.discovery.instrument = vec![sel];
        let mut d = Discovery::new(&cfg, std::process::id(), "h".into());
        d.scan();
        let rounds = 5;
        let start = Instant::now();
        for _ in 0..rounds {
            d.scan();
        }
        let per = start.elapsed() / rounds;
        report.push(format!("{label}: {per:?}"));
        assert!(per < Duration::from_millis(500), "{label}: {per:?}");
    }
    eprintln!("full scan of {n} processes: {}", report.join(", "));
    for s in &mut sleepers {
        s.kill();
    }
}

/// Records every event's fields, in order, as `key=value`.
#[derive(Clone, Default)]
struct FieldRecorder(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for FieldRecorder {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: tracing_subscriber::layer::Context<'_, S>) {
        struct V(Vec<String>);
        impl tracing::field::Visit for V {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push(format!("{}={:?}", field.name(), value));
            }
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                self.0.push(format!("{}={value:?}", field.name()));
            }
            fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
                self.0.push(format!("{}={value}", field.name()));
            }
        }
        let mut v = V(vec![format!("level={}", event.metadata().level())]);
        event.record(&mut v);
        self.0.lock().unwrap().push(v.0.join(" "));
    }
}

#[test]
fn instrumenting_process_log_line() {
    use tracing_subscriber::layer::SubscriberExt;
    let rec = FieldRecorder::default();
    let subscriber = tracing_subscriber::registry().with(rec.clone());
    let (server, port) = spawn_http_server(&[]);
    let (named, named_port) = spawn_http_server(&[("OTEL_SERVICE_NAME", "named")]);
    tracing::subscriber::with_default(subscriber, || {
        let mut cfg = test_config();
        cfg.discovery.instrument = vec![Selector {
            open_ports: Some(PortEnum { ranges: vec![(port, port), (named_port, named_port)] }),
            ..Default::default()
        }];
        let mut d = Discovery::new(&cfg, std::process::id(), "h".into());
        let events = d.scan();
        assert_eq!(events.len(), 2);
        for e in &events {
            if let DiscoveryEvent::Instrument(svc) = e {
                log_instrumenting(svc);
            }
        }
        d.on_trigger(Trigger::Exit(server.pid()));
    });
    let lines = rec.0.lock().unwrap().clone();
    let p = read_process(server.pid(), false).unwrap();
    let auto = format!(
        "level=INFO message=instrumenting process component=\"discover.traceAttacher\" cmd={} pid={} ino={} type=python service=",
        p.exe_path.display(),
        p.pid,
        p.exe_ino
    );
    assert!(lines.contains(&auto), "{lines:#?}");
    assert!(
        lines.iter().any(|l| l.contains(&format!("pid={} ", named.pid())) && l.ends_with(" type=python service=named")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("level=DEBUG message=forgetting process") && l.contains(&format!("pid={}", p.pid))),
        "{lines:#?}"
    );
}

/// A short-lived client that has exited but is not reaped yet (a zombie keeps
/// /proc/PID/stat, not its executable) is named from its exec record, so its
/// spans are kept, not rejected.
#[test]
fn exec_of_a_zombie_is_decided_from_the_exec_record() {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::read_to_string(format!("/proc/{pid}/stat")).map(|s| !s.contains(") Z ")).unwrap_or(true) {
        assert!(Instant::now() < deadline, "the child did not become a zombie");
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut cfg = test_config();
    cfg.discovery.instrument = vec![Selector { exe_path: glob("*/true"), ..Default::default() }];
    let mut d = Discovery::new(&cfg, std::process::id(), "h".into());
    let exec = ExecInfo { pid, ppid: std::process::id(), path: "/usr/bin/true".into(), args: vec!["true".into()] };
    let evs = d.on_trigger(Trigger::Exec(exec));
    child.wait().unwrap();
    match evs.as_slice() {
        [DiscoveryEvent::Instrument(svc), DiscoveryEvent::Forget { pid: gone }] => {
            assert_eq!((svc.pid, *gone), (pid, pid));
            assert_eq!(svc.name, "true");
        }
        other => panic!("unexpected events {other:?}"),
    }
}

#[test]
fn agent_service_name_on_two_executables_warns_once() {
    let cfg = Config { service_name: Some("lab".into()), ..Config::default() };
    let svc = |name: &str, exe: &str| Service { name: name.into(), exe_path: exe.into(), ..Service::default() };
    let mut shared = SharedName::default();
    shared.note(&cfg, &svc("lab", "/usr/bin/node"), NameOrigin::Selector);
    // The same executable again (another worker): fine.
    shared.note(&cfg, &svc("lab", "/usr/bin/node"), NameOrigin::Selector);
    // Named otherwise: not the agent's name at work.
    shared.note(&cfg, &svc("lab", "/usr/bin/influxd"), NameOrigin::ProcessEnv);
    shared.note(&cfg, &svc("influxdb", "/usr/bin/influxd"), NameOrigin::Rule);
    assert!(!shared.warned);
    shared.note(&cfg, &svc("lab", "/usr/bin/mosquitto"), NameOrigin::Selector);
    assert!(shared.warned);
    assert_eq!(shared.executables.len(), 2);
}
