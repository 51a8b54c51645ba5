//! The container image (Containerfile, deploy/stage-rootfs.sh) built and run
//! with Podman, no registry: the agent in its container traces the HTTP and
//! HTTPS servers of another container, selected by port, with the README's
//! least-privilege set; and each piece of that set taken away is named by
//! `obi check` (non-zero exit) and by the agent at start, with the fix.
//!
//! Podman runs with a private containers.conf (runc, ulimits for these VMs)
//! passed through CONTAINERS_CONF: the machine's configuration is untouched.
//! Both images are `FROM scratch`: the agent's from this test's binary, the
//! servers' from Debian's python3.11 with its libraries.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use common::*;

const WAIT: Duration = Duration::from_secs(30);
const AGENT_IMAGE: &str = "localhost/obi-test-agent";
const SERVERS_IMAGE: &str = "localhost/obi-test-servers";

/// The README's capability set (docs/container.md).
const CAPS: [&str; 5] = ["BPF", "PERFMON", "NET_ADMIN", "SYS_PTRACE", "DAC_READ_SEARCH"];

/// What a container needs besides capabilities (README, docs/container.md).
#[derive(Clone, Copy)]
struct Sandbox {
    seccomp_unconfined: bool,
    host_pid: bool,
    tracefs: bool,
}

const FULL: Sandbox = Sandbox { seccomp_unconfined: true, host_pid: true, tracefs: true };

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn work_dir() -> PathBuf {
    let dir = std::env::temp_dir().join("obi-container-test");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Podman with this test's containers.conf.
fn podman() -> Command {
    static CONF: OnceLock<PathBuf> = OnceLock::new();
    let conf = CONF.get_or_init(|| {
        let path = work_dir().join("containers.conf");
        // crun refuses the hybrid cgroup layout of these VMs; runc works.
        std::fs::write(
            &path,
            "[containers]\ndefault_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n[engine]\nruntime = \"runc\"\n",
        )
        .unwrap();
        path
    });
    let mut c = Command::new("podman");
    c.env("CONTAINERS_CONF", conf);
    c
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Both images, built once per test run (Podman's layer cache makes a
/// rebuild of unchanged files a no-op).
fn images() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        require_root();
        assert!(
            podman().arg("--version").output().is_ok_and(|o| o.status.success()),
            "podman is missing: run scripts/install-deps.sh"
        );
        let dir = work_dir();
        let stage = dir.join("agent");
        let rootfs = stage.join("rootfs-amd64");
        ok(
            Command::new(repo().join("deploy/stage-rootfs.sh"))
                .arg("amd64")
                .arg(&rootfs)
                .arg(env!("CARGO_BIN_EXE_obi"))
                .output()
                .unwrap(),
            "stage-rootfs.sh",
        );
        ok(
            podman()
                .args(["build", "-q", "--build-arg", "ROOTFS=prebuilt", "--build-arg", "TARGETARCH=amd64", "-f"])
                .arg(repo().join("Containerfile"))
                .args(["-t", AGENT_IMAGE])
                .arg(&stage)
                .output()
                .unwrap(),
            "podman build (agent)",
        );
        build_servers_image(&dir.join("servers"));
    });
}

/// Debian's Python 3.11 (http.server, plain and HTTPS: its ssl module calls
/// SSL_read_ex/SSL_write_ex) with its libraries and a self-signed
/// certificate, on an empty base. (busybox httpd was tried first: it forks
/// a child per request, whose first request the agent sometimes missed.)
fn build_servers_image(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    let root = dir.join("root");
    for sub in ["www", "usr/bin", "usr/lib"] {
        std::fs::create_dir_all(root.join(sub)).unwrap();
    }
    std::fs::copy(PYTHON, root.join(PYTHON.trim_start_matches('/'))).expect("Debian's python3.11");
    let stdlib = "/usr/lib/python3.11";
    ok(Command::new("cp").args(["-r", stdlib]).arg(root.join("usr/lib")).output().unwrap(), "copying the stdlib");
    for unused in ["test", "dist-packages", "site-packages"] {
        let _ = std::fs::remove_dir_all(root.join("usr/lib/python3.11").join(unused));
    }
    let mut objects = vec![PYTHON.to_string()];
    for entry in std::fs::read_dir(format!("{stdlib}/lib-dynload")).unwrap() {
        objects.push(entry.unwrap().path().to_string_lossy().into_owned());
    }
    let ldd = ok(Command::new("ldd").args(&objects).output().unwrap(), "ldd");
    for lib in ldd.split_whitespace().filter(|w| w.starts_with("/lib") || w.starts_with("/usr/lib/x86_64")) {
        let target = root.join(lib.trim_start_matches('/'));
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(lib, target).unwrap();
    }
    std::fs::write(root.join("www/index.html"), "hello from a container\n").unwrap();
    self_signed_cert(&root.join("www"));
    std::fs::write(dir.join("Containerfile"), "FROM scratch\nCOPY root/ /\n").unwrap();
    ok(podman().args(["build", "-q", "-t", SERVERS_IMAGE]).arg(dir).output().unwrap(), "podman build (servers)");
}

const PYTHON: &str = "/usr/bin/python3.11";

/// An HTTPS server on `port` serving /www (argv of the server container).
fn https_server_cmd(port: u16) -> Vec<String> {
    let script = format!(
        "import http.server, ssl\n\
         s = http.server.HTTPServer(('127.0.0.1', {port}), http.server.SimpleHTTPRequestHandler)\n\
         c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n\
         c.load_cert_chain('cert.pem', 'key.pem')\n\
         s.socket = c.wrap_socket(s.socket, server_side=True)\n\
         s.serve_forever()\n"
    );
    vec![PYTHON.to_string(), "-c".to_string(), script]
}

/// A container removed (with everything in it) on drop.
struct Container {
    name: String,
    /// Seconds between SIGTERM and SIGKILL when stopped.
    grace: u32,
}

impl Container {
    /// Starts a detached server container on the host network.
    fn server(name: &str, cmd: &[&str]) -> Container {
        let c = Container { name: name.to_string(), grace: 0 };
        c.stop(0);
        ok(
            podman()
                .args(["run", "-d", "--rm", "--network=host", "--name", name, "-w", "/www", SERVERS_IMAGE])
                .args(cmd)
                .output()
                .unwrap(),
            "podman run (server)",
        );
        c
    }

    /// The host PID of the container's first process.
    fn pid(&self) -> u32 {
        let out = ok(
            podman().args(["inspect", "--format", "{{.State.Pid}}", &self.name]).output().unwrap(),
            "podman inspect",
        );
        out.trim().parse().unwrap()
    }

    /// SIGTERM first, SIGKILL after `grace` seconds: the agent deletes its
    /// tracefs uprobe events on a clean stop, not when killed. (Python as
    /// PID 1 ignores SIGTERM: servers get 0.)
    fn stop(&self, grace: u32) {
        let _ = podman().args(["stop", "-t", &grace.to_string(), &self.name]).output();
        let _ = podman().args(["rm", "-f", "-t", "0", &self.name]).output();
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        self.stop(self.grace);
    }
}

/// `podman run` arguments for the agent: `caps` only, and the sandbox.
fn agent_args(name: &str, caps: &[&str], sandbox: Sandbox) -> Vec<String> {
    let mut a: Vec<String> =
        ["run", "--rm", "--read-only", "--network=host", "--name", name, "--cap-drop=ALL"].map(String::from).into();
    a.extend(caps.iter().map(|c| format!("--cap-add={c}")));
    if sandbox.seccomp_unconfined {
        a.extend(["--security-opt".into(), "seccomp=unconfined".into()]);
    }
    if sandbox.host_pid {
        a.push("--pid=host".into());
    }
    if sandbox.tracefs {
        a.extend(["-v".into(), "/sys/kernel/tracing:/sys/kernel/tracing".into()]);
    }
    a
}

/// `obi check` in the agent's container: (exit success, stdout).
fn check_in_container(caps: &[&str], sandbox: Sandbox) -> (bool, String) {
    let name = format!("obi-test-check-{}", free_port());
    let out = podman().args(agent_args(&name, caps, sandbox)).arg(AGENT_IMAGE).arg("check").output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The agent in its container, printing JSON spans on stdout.
fn start_agent(caps: &[&str], sandbox: Sandbox, ports: &str) -> (Container, Agent) {
    let name = format!("obi-test-agent-{}", free_port());
    let guard = Container { name: name.clone(), grace: 10 };
    let mut cmd = podman();
    cmd.args(agent_args(&name, caps, sandbox))
        .args(["-e", &format!("OTEL_EBPF_OPEN_PORT={ports}"), "-e", "OTEL_EBPF_TRACE_PRINTER=json"])
        .args(["-e", "OTEL_EBPF_DISCOVERY_POLL_INTERVAL=500ms", "-e", "OTEL_EBPF_LOG_LEVEL=DEBUG"])
        .arg(AGENT_IMAGE);
    let proc = spawn("obi-container", &mut cmd);
    proc.wait_line(|l| l.contains("msg=\"obi-rs started\""), Duration::from_secs(60))
        .unwrap_or_else(|| panic!("agent container did not start: {:#?}", proc.lines()));
    (guard, Agent { proc, config_file: None })
}

/// The agent's start in a container missing one piece: it must exit with
/// an error that names the piece and its fix.
fn start_fails(caps: &[&str], sandbox: Sandbox) -> String {
    let name = format!("obi-test-fail-{}", free_port());
    let _guard = Container { name: name.clone(), grace: 10 };
    let mut cmd = podman();
    cmd.args(agent_args(&name, caps, sandbox)).args([
        "-e",
        "OTEL_EBPF_OPEN_PORT=1",
        "-e",
        "OTEL_EBPF_TRACE_PRINTER=text",
    ]);
    let mut proc = spawn("obi-container", cmd.arg(AGENT_IMAGE));
    let status =
        proc.wait_exit(Duration::from_secs(60)).unwrap_or_else(|| panic!("agent did not stop: {:#?}", proc.lines()));
    // The reader threads may still hold the last lines.
    std::thread::sleep(Duration::from_millis(300));
    let text = proc.lines().join("\n");
    assert!(!status.success(), "agent started although a piece is missing:\n{text}");
    assert!(text.contains("this machine cannot run obi-rs"), "{text}");
    text
}

/// The documented set: `obi check` passes in the container, and the agent
/// traces a Python http.server and a Python HTTPS server in another
/// container, selected by their ports. The kernel refuses the uprobe PMU to
/// CAP_PERFMON, so the OpenSSL probes are made through tracefs.
#[test]
fn traces_another_containers_http_and_https_servers_with_the_documented_set() {
    images();
    let (http_port, https_port) = (free_port(), free_port());
    let port_arg = http_port.to_string();
    let http = Container::server(
        &format!("obi-test-http-{http_port}"),
        &[PYTHON, "-m", "http.server", "--bind", "127.0.0.1", &port_arg],
    );
    let https_cmd = https_server_cmd(https_port);
    let https = Container::server(
        &format!("obi-test-https-{https_port}"),
        &https_cmd.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    wait_port(http_port, WAIT);
    wait_port(https_port, WAIT);

    let (passed, text) = check_in_container(&CAPS, FULL);
    assert!(passed && !text.contains("FAIL"), "{text}");
    assert!(text.contains("ok    uprobe perf events") && text.contains("through tracefs"), "{text}");

    let (_guard, agent) = start_agent(&CAPS, FULL, &format!("{http_port},{https_port}"));
    agent.wait_instrumented(http.pid(), WAIT);
    agent.wait_instrumented(https.pid(), WAIT);
    agent
        .proc
        .wait_line(
            |l| l.contains("msg=\"OpenSSL probes attached\"") && l.contains(&format!("pid={} ", https.pid())),
            WAIT,
        )
        .unwrap_or_else(|| panic!("no OpenSSL probes: {:#?}", agent.proc.lines()));
    for (scheme, port) in [("http", http_port), ("https", https_port)] {
        let url = format!("{scheme}://127.0.0.1:{port}/index.html");
        assert_eq!(curl(&["-k", "-o", "/dev/null", "-w", "%{http_code}", &url]), "200");
        let spans = agent.wait_spans(1, WAIT, |s| is_type(s, "HTTP") && host_port(s) == port);
        assert_eq!(spans.len(), 1, "{scheme}: {spans:#?}\nagent: {:#?}", agent.proc.lines());
        let span = &spans[0];
        let got = (attr(span, "method"), attr(span, "url"), attr(span, "status"), attr(span, "responseLen"));
        assert_eq!(got, ("GET", "/index.html", "200", "23"), "{scheme}: {span:#}");
    }
    assert!(
        !agent.proc.lines().iter().any(|l| l.contains("level=WARN") || l.contains("level=ERROR")),
        "{:#?}",
        agent.proc.lines()
    );
}

/// tracefs mounted read-only: tracepoints work, uprobes cannot be made, so
/// TLS alone is lost; `obi check` warns with the fix, the agent repeats it.
#[test]
fn a_read_only_tracefs_costs_tls_and_says_so() {
    images();
    let name = format!("obi-test-ro-{}", free_port());
    let mut args = agent_args(&name, &CAPS, Sandbox { tracefs: false, ..FULL });
    args.extend(["-v".into(), "/sys/kernel/tracing:/sys/kernel/tracing:ro".into()]);
    let out = podman().args(&args).arg(AGENT_IMAGE).arg("check").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let warning = text.lines().skip_while(|l| !l.starts_with("warn  uprobe perf events")).take(2).collect::<Vec<_>>();
    assert!(warning.len() == 2 && warning[1].contains("without :ro"), "{text}");
}

/// Each piece of the set taken away, one at a time: `obi check` fails and
/// names it with the fix, and so does the agent at start.
#[test]
fn each_missing_piece_is_named_with_its_fix() {
    images();
    let without = |cap: &str| CAPS.iter().copied().filter(|c| *c != cap).collect::<Vec<_>>();
    let mut cases: Vec<(String, Vec<&str>, Sandbox, String)> =
        CAPS.iter().map(|cap| (format!("without CAP_{cap}"), without(cap), FULL, format!("CAP_{cap}"))).collect();
    let fixes = [
        ("seccomp", Sandbox { seccomp_unconfined: false, ..FULL }, "seccomp=unconfined"),
        ("pid namespace", Sandbox { host_pid: false, ..FULL }, "--pid=host"),
        ("tracefs", Sandbox { tracefs: false, ..FULL }, "-v /sys/kernel/tracing:/sys/kernel/tracing"),
    ];
    for (what, sandbox, fix) in fixes {
        cases.push((what.to_string(), CAPS.to_vec(), sandbox, fix.to_string()));
    }
    for (what, caps, sandbox, needle) in cases {
        let (passed, text) = check_in_container(&caps, sandbox);
        assert!(!passed, "{what}: obi check passed:\n{text}");
        let fail = text.lines().filter(|l| l.starts_with("FAIL")).collect::<Vec<_>>().join("\n");
        assert!(text.contains(&needle) && !fail.is_empty(), "{what}: obi check does not name {needle:?}:\n{text}");
        let log = start_fails(&caps, sandbox);
        assert!(log.contains(&needle), "{what}: the agent's start does not name {needle:?}:\n{log}");
    }
}

/// deploy/compose.yaml gives the agent what this file tests, no more.
#[test]
fn compose_file_grants_the_tested_set() {
    let text = std::fs::read_to_string(repo().join("deploy/compose.yaml")).unwrap();
    let compose: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    let obi = &compose["services"]["obi"];
    let list = |key: &str| -> Vec<String> {
        let items = obi[key].as_array().unwrap_or_else(|| panic!("{key}: {obi:#}"));
        items.iter().map(|v| v.as_str().unwrap().to_string()).collect()
    };
    let mut granted = list("cap_add");
    granted.sort();
    let mut tested: Vec<String> = CAPS.iter().map(|c| c.to_string()).collect();
    tested.sort();
    assert_eq!(granted, tested);
    assert_eq!(list("cap_drop"), ["ALL"]);
    assert_eq!(list("security_opt"), ["seccomp=unconfined"]);
    assert_eq!(list("volumes"), ["/sys/kernel/tracing:/sys/kernel/tracing"]);
    assert_eq!((obi["pid"].as_str(), obi["read_only"].as_bool()), (Some("host"), Some(true)));
    assert!(obi.get("privileged").is_none(), "{obi:#}");
    for service in ["mosquitto", "node-red", "influxdb", "jaeger"] {
        assert!(compose["services"][service]["image"].is_string(), "{service} is missing");
    }
}

/// The agent service of deploy/compose.yaml itself, run by podman-compose
/// with only its ports and OTLP endpoint overridden (the other services'
/// images cannot be pulled here): it traces a server container and its
/// spans reach an OTLP/gRPC receiver on the host, as they would reach Jaeger.
#[test]
fn compose_agent_service_exports_spans_over_otlp() {
    images();
    ok(podman().args(["tag", AGENT_IMAGE, "localhost/obi-rs:latest"]).output().unwrap(), "podman tag");
    let (http_port, grpc_port) = (free_port(), free_port());
    let mut rx_cmd = Command::new(venv_python());
    rx_cmd.arg("-u").arg(apps_dir().join("otlp_receiver.py")).args(["--grpc", &grpc_port.to_string()]);
    let receiver = start_server("otlp-receiver", &mut rx_cmd);
    let port_arg = http_port.to_string();
    let http = Container::server(
        &format!("obi-test-compose-http-{http_port}"),
        &[PYTHON, "-m", "http.server", "--bind", "127.0.0.1", &port_arg],
    );
    wait_port(http_port, WAIT);

    let dir = tempfile::tempdir().unwrap();
    let overrides = dir.path().join("override.yaml");
    std::fs::write(
        &overrides,
        format!(
            "services:\n  obi:\n    environment:\n      OTEL_EBPF_OPEN_PORT: \"{http_port}\"\n      \
             OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: http://localhost:{grpc_port}\n"
        ),
    )
    .unwrap();
    let project = format!("obi-test-{http_port}");
    let compose = |args: &[&str]| {
        let mut c = Command::new(venv_python().with_file_name("podman-compose"));
        c.env("CONTAINERS_CONF", work_dir().join("containers.conf"))
            .args(["-p", &project, "-f"])
            .arg(repo().join("deploy/compose.yaml"))
            .arg("-f")
            .arg(&overrides)
            .args(args);
        c
    };
    /// Stops the project whatever happens.
    struct Down<F: Fn()>(F);
    impl<F: Fn()> Drop for Down<F> {
        fn drop(&mut self) {
            (self.0)()
        }
    }
    let _down = Down(|| {
        let _ = compose(&["down", "-t", "10"]).output();
    });
    let up = spawn("podman-compose", &mut compose(&["up", "--no-build", "--no-deps", "obi"]));
    up.wait_line(|l| l.contains("msg=\"obi-rs started\""), Duration::from_secs(90))
        .unwrap_or_else(|| panic!("the compose agent did not start: {:#?}", up.lines()));
    up.wait_line(|l| l.contains("msg=\"instrumenting process\"") && l.contains(&format!(" pid={} ", http.pid())), WAIT)
        .unwrap_or_else(|| panic!("server not instrumented: {:#?}", up.lines()));

    let url = format!("http://127.0.0.1:{http_port}/index.html");
    assert_eq!(curl(&["-o", "/dev/null", "-w", "%{http_code}", &url]), "200");
    let deadline = std::time::Instant::now() + WAIT;
    let spans = loop {
        let spans: Vec<serde_json::Value> = receiver
            .lines()
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|s| s["attributes"]["url.path"] == "/index.html")
            .collect();
        if !spans.is_empty() || std::time::Instant::now() > deadline {
            break spans;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(spans.len(), 1, "{spans:#?}\nagent: {:#?}", up.lines());
    let span = &spans[0];
    assert_eq!(
        (span["transport"].as_str(), span["kind"].as_str()),
        (Some("grpc"), Some("SPAN_KIND_SERVER")),
        "{span:#}"
    );
    assert_eq!(span["attributes"]["http.response.status_code"], 200, "{span:#}");
    assert_eq!(span["attributes"]["server.port"], http_port, "{span:#}");
}
