//! Selection by YAML config, naming, cleanup of kernel state, the preflight
//! check and configuration errors, against the real agent binary.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

const WAIT: Duration = Duration::from_secs(20);

/// Two of three servers selected by different selectors, each named by its
/// entry; the environment overrides the file.
#[test]
fn yaml_selects_two_of_three_servers_and_env_overrides_it() {
    require_root();
    let (p1, p2, p3) = (free_port(), free_port(), free_port());
    let by_port = python_server(p1);
    let by_runtime = node_server(p2);
    let unselected = python_server(p3);
    let yaml = format!(
        "trace_printer: text\n\
         discovery:\n  instrument:\n\
         \x20   - open_ports: {p1}\n      name: alpha\n      namespace: lab\n\
         \x20   - exe_path: '*/node'\n      cmd_args: '*http_server.js {p2}*'\n      name: beta\n"
    );
    // YAML says text; the environment says json and wins.
    let agent = Agent::builder().config(&yaml).env("OTEL_EBPF_TRACE_PRINTER", "json").start();
    agent.wait_instrumented(by_port.pid(), WAIT);
    agent.wait_instrumented(by_runtime.pid(), WAIT);
    let line = |pid: u32| {
        agent
            .proc
            .lines()
            .into_iter()
            .find(|l| l.contains("msg=\"instrumenting process\"") && l.contains(&format!(" pid={pid} ")))
            .unwrap()
    };
    assert!(line(by_port.pid()).contains("service=alpha"), "{}", line(by_port.pid()));
    assert!(line(by_port.pid()).contains("type=python"));
    assert!(line(by_runtime.pid()).contains("service=beta"), "{}", line(by_runtime.pid()));
    assert!(line(by_runtime.pid()).contains("type=nodejs"));

    for p in [p1, p2, p3] {
        curl(&[&format!("http://127.0.0.1:{p}/status/200")]);
    }
    let a = agent.wait_spans(1, WAIT, |s| is_type(s, "HTTP") && host_port(s) == p1);
    let b = agent.wait_spans(1, WAIT, |s| is_type(s, "HTTP") && host_port(s) == p2);
    assert_eq!(field(&a[0], "hostName"), "alpha", "{:#}", a[0]);
    assert_eq!(field(&b[0], "hostName"), "beta");
    std::thread::sleep(Duration::from_secs(1));
    assert!(!agent.instrumented(unselected.pid()), "the third server must not be instrumented");
    assert!(agent.spans().iter().all(|s| host_port(s) != p3));
    assert!(!agent.proc.lines().iter().any(|l| l.contains(" HTTP(subType=")), "text printer despite the env override");
}

/// Short-lived servers killed without closing their sockets leave no
/// entries behind in the kernel maps.
#[test]
fn short_lived_processes_leave_no_stale_kernel_state() {
    require_root();
    // Free ports, not derived ones: a derived port can be some other
    // connection's local port (a server then cannot bind it).
    let mut ports: Vec<u16> = Vec::new();
    while ports.len() < 10 {
        let p = free_port();
        if !ports.contains(&p) {
            ports.push(p);
        }
    }
    let range = ports.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(",");
    let mut agent = Agent::builder().env("OTEL_EBPF_OPEN_PORT", &range).start();
    for &port in &ports {
        let mut server = python_server(port);
        agent.wait_instrumented(server.pid(), WAIT);
        // A keep-alive connection left open, then SIGKILL: no close() ever runs.
        let mut client = python_client(port, &["GET:/status/200"], &["--repeat", "3"]);
        client.wait_exit(WAIT);
        server.signal(libc::SIGKILL);
        server.wait_exit(WAIT);
    }
    let spans = agent.wait_spans(30, WAIT, |s| is_type(s, "HTTP"));
    let per_port: Vec<usize> = ports.iter().map(|&p| spans.iter().filter(|s| host_port(s) == p).count()).collect();
    assert_eq!(spans.len(), 30, "spans per server: {per_port:?}");
    // Give discovery a poll interval to notice the exits.
    std::thread::sleep(Duration::from_secs(2));
    assert!(agent.stop().is_some_and(|s| s.success()));
    let totals = agent.proc.lines().into_iter().find(|l| l.contains("msg=totals")).expect("totals line");
    let maps = totals.split("maps=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    for entry in maps.split_whitespace() {
        let (name, count) = entry.split_once('=').unwrap();
        assert_eq!(count, "0", "stale entries in {name}: {totals}\nprocesses instrumented:\n{}", instrumented(&agent));
    }
}

/// The processes the agent said it instruments, and whether each still runs
/// (a failure above says whose entry was left).
fn instrumented(agent: &Agent) -> String {
    let lines = agent.proc.lines();
    let chosen = lines.iter().filter(|l| l.contains("msg=\"instrumenting process\""));
    chosen
        .map(|l| {
            let pid = l.split(" pid=").nth(1).and_then(|r| r.split(' ').next()).unwrap_or("?");
            let alive = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| format!("running: {}", String::from_utf8_lossy(&c).replace('\0', " ")))
                .unwrap_or_else(|_| "gone".into());
            format!("  {l}\n    {alive}")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `obi check` tells the truth about this machine, and names what an
/// unprivileged user lacks.
#[test]
fn check_reports_this_machine() {
    require_root();
    let out = Command::new(env!("CARGO_BIN_EXE_obi")).arg("check").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    // The last step loads and attaches the real programs, then detaches them.
    for needle in [
        "ok    kernel",
        "ok    capabilities",
        "ok    btf",
        "raw tracepoint sys_enter",
        "sched_process_exec",
        "ok    eBPF programs",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    assert!(!text.contains("FAIL"), "{text}");

    // Copy the binary where an unprivileged user can run it.
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("obi");
    std::fs::copy(env!("CARGO_BIN_EXE_obi"), &bin).unwrap();
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .arg("check")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(text.contains("FAIL  capabilities"), "{text}");
    for cap in ["CAP_BPF", "CAP_PERFMON", "CAP_SYS_PTRACE", "CAP_DAC_READ_SEARCH"] {
        assert!(text.contains(cap), "{cap} not named:\n{text}");
    }
    // tracefs is mounted (the root run above read it), only unreadable.
    assert!(
        text.contains("tracefs is mounted at /sys/kernel/tracing but cannot be read (permission denied)"),
        "{text}"
    );
    assert!(!text.contains("not mounted"), "{text}");
    // The agent itself refuses with the same message, said once.
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .env("OTEL_EBPF_OPEN_PORT", "8080")
        .env("OTEL_EBPF_TRACE_PRINTER", "text")
        .output()
        .unwrap();
    // Logs go to stderr.
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(text.matches("the following capabilities are required: CAP_SYS_PTRACE").count(), 1, "{text}");
    assert!(text.contains("this machine cannot run obi-rs: 1 requirement(s) not met, logged above"), "{text}");
    assert!(!text.contains("tracefs reachable"), "an unreadable tracefs is not an unmounted one:\n{text}");
}

/// A BTF file that does not exist is one error line, not two.
#[test]
fn missing_btf_is_reported_once() {
    require_root();
    let out = Command::new(env!("CARGO_BIN_EXE_obi"))
        .env_clear()
        .env("OTEL_EBPF_OPEN_PORT", "8080")
        .env("OTEL_EBPF_TRACE_PRINTER", "text")
        .env("OTEL_EBPF_BTF_PATH", "/nonexistent/vmlinux")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(text.matches("/nonexistent/vmlinux").count(), 1, "{text}");
    assert!(text.contains("level=ERROR msg=\"btf: OTEL_EBPF_BTF_PATH=/nonexistent/vmlinux does not exist"), "{text}");
}

/// A variable whose value is not UTF-8 is named as such, not taken for unset.
#[test]
fn non_utf8_environment_values_are_named() {
    use std::os::unix::ffi::OsStrExt;
    let out = Command::new(env!("CARGO_BIN_EXE_obi"))
        .env_clear()
        .env("OTEL_EBPF_OPEN_PORT", "8080")
        .env("OTEL_EBPF_TRACE_PRINTER", std::ffi::OsStr::from_bytes(b"te\xffxt"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("OTEL_EBPF_TRACE_PRINTER: the value is not valid UTF-8"), "{text}");
    assert_eq!(text.lines().count(), 1, "{text}");
}

/// Bad configuration: one clear error line and exit code 2.
#[test]
fn configuration_errors_exit_2_with_one_clear_line() {
    type Case = (Vec<(&'static str, &'static str)>, Option<&'static str>, &'static str);
    let cases: Vec<Case> = vec![
        (vec![("OTEL_EBPF_OPEN_PORT", "9000-8000")], None, "OTEL_EBPF_OPEN_PORT"),
        (vec![("OTEL_EBPF_OPEN_PORT", "abc")], None, "invalid port range \\\"abc\\\""),
        (vec![], Some("discovery:\n  instrument:\n    - open_port: 80\n"), "did you mean \\\"open_ports\\\""),
        (vec![], Some("discovery: [unclosed\n"), "parsing YAML configuration"),
        (vec![], Some("open_port: 9000-8000\n"), "open_port"),
        (vec![("OTEL_EBPF_OPEN_PORT", "80"), ("OTEL_EBPF_TRACE_PRINTER", "loud")], None, "trace_printer"),
    ];
    for (env, yaml, needle) in cases {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_obi"));
        cmd.env_clear().env("OTEL_EBPF_TRACE_PRINTER", "text");
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let file = tempfile::NamedTempFile::new().unwrap();
        if let Some(y) = yaml {
            std::fs::write(file.path(), y).unwrap();
            cmd.arg("--config").arg(file.path());
        }
        let out = cmd.output().unwrap();
        // The error is a log line: on stderr, stdout stays empty.
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(out.stdout.is_empty(), "stdout is for data: {}", String::from_utf8_lossy(&out.stdout));
        assert_eq!(out.status.code(), Some(2), "{env:?} {yaml:?}: {text}");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "one line expected: {text}");
        assert!(lines[0].contains("level=ERROR msg=\"wrong configuration\""), "{text}");
        assert!(lines[0].contains(needle), "{needle} not in: {text}");
    }
}

/// The capability set the docs give instead of `--privileged`: as root but
/// with only these capabilities (what `docker run --cap-drop=ALL --cap-add=...`
/// gives), `obi check` passes and the agent traces requests, context
/// propagation included.
#[test]
fn runs_with_the_documented_capabilities_only() {
    require_root();
    const CAPS: &str = "-all,+bpf,+perfmon,+sys_ptrace,+dac_read_search,+net_admin";
    let wrapper = ["setpriv", "--inh-caps=-all", &format!("--bounding-set={CAPS}")];
    let check =
        Command::new(wrapper[0]).args(&wrapper[1..]).arg(env!("CARGO_BIN_EXE_obi")).arg("check").output().unwrap();
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{text}");
    assert!(text.contains("ok    program type sock_ops") && !text.contains("FAIL"), "{text}");
    // Not enough without CAP_PERFMON: named.
    let fewer = Command::new("setpriv")
        .args(["--inh-caps=-all", "--bounding-set=-all,+bpf,+sys_ptrace,+dac_read_search,+net_admin"])
        .arg(env!("CARGO_BIN_EXE_obi"))
        .arg("check")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&fewer.stdout);
    assert!(!fewer.status.success() && text.contains("CAP_PERFMON"), "{text}");

    let (front, back) = (free_port(), free_port());
    let a = python_server(front);
    let b = python_server(back);
    let agent = Agent::builder()
        .wrapped(&wrapper)
        .env("OTEL_EBPF_OPEN_PORT", &format!("{front},{back}"))
        .env("OTEL_EBPF_BPF_CONTEXT_PROPAGATION", "headers")
        .start();
    agent.wait_instrumented(a.pid(), WAIT);
    agent.wait_instrumented(b.pid(), WAIT);
    let url = format!("http://127.0.0.1:{front}/call?url=http://127.0.0.1:{back}/status/201");
    assert_eq!(curl(&["-o", "/dev/null", "-w", "%{http_code}", &url]), "200");
    let downstream = agent.wait_spans(1, WAIT, |s| is_type(s, "HTTP") && host_port(s) == back);
    let upstream = agent.wait_spans(1, WAIT, |s| is_type(s, "HTTP") && host_port(s) == front);
    assert_eq!((downstream.len(), upstream.len()), (1, 1));
    assert_eq!(attr(&downstream[0], "status"), "201");
    assert_eq!(field(&downstream[0], "traceID"), field(&upstream[0], "traceID"), "propagation works with these caps");
}
